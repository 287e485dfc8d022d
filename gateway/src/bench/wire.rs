//! HTTP/1.1 as the lean loop speaks it: requests whose bytes are prepared
//! before the run, and a reader of the answers that parses only the status
//! line and headers (`httparse`, as hyper does) and reads exactly
//! `Content-Length` bytes of body.
//!
//! The gateway answers every envelope with a whole body and its length
//! (never chunked), as does nginx's `return`; an answer without a length is
//! counted as a transport error rather than read until the connection
//! closes.

use tokio::io::{AsyncRead, AsyncReadExt as _};

use xgate_server::http::JOSE;

/// Where envelopes are posted.
pub const ENVELOPES: &str = "/v1/envelopes";

/// Headers an answer may carry (the gateway sends five or six).
const MAX_HEADERS: usize = 32;
/// The largest status line and headers accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The largest body accepted (a receipt is a few KiB).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The read buffer's initial size: any answer of the gateway's fits.
const BUFFER: usize = 16 * 1024;

/// A request ready to be written as it is: request line, headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    wire: Box<[u8]>,
    body_at: usize,
}

impl Prepared {
    /// `POST /v1/envelopes` of the compact JWS `jws` to the gateway at
    /// `authority` (`host:port`), with the headers the agency client sends:
    /// `host`, `content-type: application/jose`, `content-length`.
    pub fn envelope(authority: &str, jws: &str) -> Prepared {
        let head = format!(
            "POST {ENVELOPES} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: {JOSE}\r\n\
             content-length: {}\r\n\r\n",
            jws.len()
        );
        let mut wire = Vec::with_capacity(head.len() + jws.len());
        wire.extend_from_slice(head.as_bytes());
        wire.extend_from_slice(jws.as_bytes());
        Prepared {
            wire: wire.into_boxed_slice(),
            body_at: head.len(),
        }
    }

    /// The bytes to write.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The body alone (the envelope), for the client path.
    pub fn body(&self) -> &[u8] {
        &self.wire[self.body_at..]
    }
}

/// Why an answer could not be read: each is a transport error to the
/// report, and the connection is dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Reading or writing the connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The connection closed before a whole answer arrived (`mid_answer`:
    /// part of one had).
    #[error("the connection closed {}", if *.mid_answer { "mid-answer" } else { "before an answer" })]
    Closed {
        /// Some of the answer had arrived.
        mid_answer: bool,
    },
    /// The status line or headers are not HTTP/1.1.
    #[error("a malformed answer: {0}")]
    Malformed(#[from] httparse::Error),
    /// An answer with a body but no valid `Content-Length` (chunked, or
    /// delimited by closing the connection).
    #[error("an answer without a Content-Length")]
    NoLength,
    /// A head or body beyond the limits.
    #[error("an answer too large")]
    TooLarge,
}

/// What the connection needs to know of an answer; its body is
/// [`Answers::body`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The server closes the connection after it (`Connection: close`, or
    /// HTTP/1.0).
    pub close: bool,
}

/// A parsed head: what [`Head`] holds, the head's length and the body's.
struct Parsed {
    head: Head,
    head_len: usize,
    body_len: usize,
}

/// Parses the head at the start of `buf`; `None` if it is not whole yet.
fn parse_head(buf: &[u8]) -> Result<Option<Parsed>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(WireError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    let mut close = response.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(WireError::NoLength)?;
            if length.is_some_and(|l| l != value) {
                return Err(WireError::NoLength);
            }
            length = Some(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    // RFC 9112 section 6.3: no body after 1xx, 204 and 304.
    let body_len = if matches!(status, 100..=199 | 204 | 304) {
        0
    } else {
        match length {
            Some(n) if !chunked => n,
            _ => return Err(WireError::NoLength),
        }
    };
    if body_len > MAX_BODY {
        return Err(WireError::TooLarge);
    }
    Ok(Some(Parsed {
        head: Head { status, close },
        head_len,
        body_len,
    }))
}

/// Reads the answers of one connection, in order, into one buffer that is
/// reused for the connection's life.
#[derive(Debug)]
pub struct Answers {
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The last answer's body, within `buf`.
    body: std::ops::Range<usize>,
}

impl Default for Answers {
    fn default() -> Self {
        Answers {
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            body: 0..0,
        }
    }
}

impl Answers {
    /// Reads the next whole answer from `io` (skipping interim 1xx ones)
    /// and returns its head; its body is [`Answers::body`] until the next
    /// call.
    ///
    /// # Errors
    /// [`WireError`]: the connection failed or closed, or the answer is
    /// not one this reader takes.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<Head, WireError> {
        // The previous answer's bytes are released now.
        self.start = self.body.end.max(self.start);
        self.body = self.start..self.start;
        loop {
            let Some(parsed) = parse_head(&self.buf[self.start..self.end])? else {
                self.fill(io).await?;
                continue;
            };
            let whole = parsed.head_len + parsed.body_len;
            if matches!(parsed.head.status, 100..=199) && parsed.head.status != 101 {
                self.start += whole;
                self.body = self.start..self.start;
                continue;
            }
            while self.end - self.start < whole {
                self.fill(io).await?;
            }
            let body_at = self.start + parsed.head_len;
            self.body = body_at..body_at + parsed.body_len;
            return Ok(parsed.head);
        }
    }

    /// The body of the answer [`Answers::next`] returned last.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.clone()]
    }

    /// Forgets everything buffered: for a new connection.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.body = 0..0;
    }

    /// Reads more of the answer, making room first.
    async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<(), WireError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_HEAD + MAX_BODY {
                return Err(WireError::TooLarge);
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(WireError::Closed {
                mid_answer: self.end > self.start,
            });
        }
        self.end += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// A connection that yields its bytes in the given pieces, each one
    /// read at a time (a `Pending` between them, as a network would), then
    /// closes.
    struct Pieces {
        pieces: VecDeque<Vec<u8>>,
        pending: bool,
    }

    impl Pieces {
        fn new<I: IntoIterator<Item = Vec<u8>>>(pieces: I) -> Pieces {
            Pieces {
                pieces: pieces.into_iter().collect(),
                pending: false,
            }
        }

        fn bytewise(text: &[u8]) -> Pieces {
            Pieces::new(text.iter().map(|b| vec![*b]))
        }
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.pending {
                self.pending = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pending = true;
            if let Some(mut piece) = self.pieces.pop_front() {
                let n = piece.len().min(out.remaining());
                out.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.pieces.push_front(piece.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    const RECEIPT: &[u8] = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
        content-length: 17\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n{\"id\":\"abcdefgh\"}";
    const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 33\r\n\
        retry-after: 2\r\n\r\n{\"error\":{\"code\":\"rate_limited\"}}";

    #[test]
    fn a_prepared_envelope_is_the_request_the_client_sends() {
        let p = Prepared::envelope("127.0.0.1:8443", "a.b.c");
        assert_eq!(
            p.wire(),
            b"POST /v1/envelopes HTTP/1.1\r\nhost: 127.0.0.1:8443\r\n\
              content-type: application/jose\r\ncontent-length: 5\r\n\r\na.b.c"
        );
        assert_eq!(p.body(), b"a.b.c");
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut request = httparse::Request::new(&mut headers);
        assert_eq!(
            request.parse(p.wire()).expect("parses"),
            httparse::Status::Complete(p.wire().len() - 5)
        );
    }

    #[test]
    fn answers_arriving_byte_by_byte_are_read_whole_in_order() {
        let rt = runtime();
        let text = [RECEIPT, REFUSAL].concat();
        let mut io = Pieces::bytewise(&text);
        let mut answers = Answers::default();
        rt.block_on(async {
            let head = answers.next(&mut io).await.expect("first");
            assert_eq!(
                head,
                Head {
                    status: 201,
                    close: false
                }
            );
            assert_eq!(answers.body(), b"{\"id\":\"abcdefgh\"}");
            let head = answers.next(&mut io).await.expect("second");
            assert_eq!(head.status, 429);
            assert_eq!(
                crate::client::error_code(answers.body()).as_deref(),
                Some("rate_limited")
            );
            // Then the server closed between answers.
            assert!(matches!(
                answers.next(&mut io).await,
                Err(WireError::Closed { mid_answer: false })
            ));
        });
    }

    #[test]
    fn a_body_in_pieces_and_two_answers_in_one_read_are_both_handled() {
        let rt = runtime();
        let (head, body) = RECEIPT.split_at(RECEIPT.len() - 17);
        let mut io = Pieces::new([
            head.to_vec(),
            body[..3].to_vec(),
            body[3..10].to_vec(),
            [&body[10..], RECEIPT, &REFUSAL[..20]].concat(),
            REFUSAL[20..].to_vec(),
        ]);
        let mut answers = Answers::default();
        rt.block_on(async {
            for _ in 0..2 {
                assert_eq!(answers.next(&mut io).await.expect("receipt").status, 201);
                assert_eq!(answers.body(), b"{\"id\":\"abcdefgh\"}");
            }
            assert_eq!(answers.next(&mut io).await.expect("refusal").status, 429);
        });
    }

    #[test]
    fn a_connection_closed_mid_answer_is_an_error() {
        let rt = runtime();
        rt.block_on(async {
            for cut in [1, 20, RECEIPT.len() - 17, RECEIPT.len() - 1] {
                let mut io = Pieces::bytewise(&RECEIPT[..cut]);
                let outcome = Answers::default().next(&mut io).await;
                assert!(
                    matches!(outcome, Err(WireError::Closed { mid_answer: true })),
                    "cut at {cut}: {outcome:?}"
                );
            }
        });
    }

    #[test]
    fn answers_this_reader_does_not_take_are_errors() {
        let rt = runtime();
        let read = |text: &'static [u8]| {
            rt.block_on(async {
                Answers::default()
                    .next(&mut Pieces::new([text.to_vec()]))
                    .await
            })
        };
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            Err(WireError::NoLength)
        ));
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\n\r\nuntil close"),
            Err(WireError::NoLength)
        ));
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc"),
            Err(WireError::NoLength)
        ));
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"),
            Err(WireError::NoLength)
        ));
        assert!(matches!(
            read(b"SMTP ready\r\n\r\n"),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn interim_answers_are_skipped_and_close_is_noticed() {
        let rt = runtime();
        let text = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: keep-alive, Close\r\n\r\n";
        let mut io = Pieces::new([text.to_vec()]);
        let mut answers = Answers::default();
        let head = rt.block_on(answers.next(&mut io)).expect("answer");
        assert_eq!(
            head,
            Head {
                status: 204,
                close: true
            }
        );
        assert_eq!(answers.body(), b"");
        let old = b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        let head = rt
            .block_on(Answers::default().next(&mut Pieces::new([old.to_vec()])))
            .expect("answer");
        assert!(head.close);
    }

    #[test]
    fn an_answer_larger_than_the_buffer_grows_it() {
        let rt = runtime();
        let body = vec![b'x'; BUFFER * 3];
        let text = [
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes(),
            &body,
            RECEIPT,
        ]
        .concat();
        let mut io = Pieces::new(text.chunks(5000).map(<[u8]>::to_vec));
        let mut answers = Answers::default();
        rt.block_on(async {
            assert_eq!(answers.next(&mut io).await.expect("big").status, 200);
            assert_eq!(answers.body(), &body[..]);
            assert_eq!(answers.next(&mut io).await.expect("next").status, 201);
        });
    }
}

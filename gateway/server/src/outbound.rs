//! Requests the gateway itself makes to other services (witnesses today):
//! HTTP/1.1 over TCP, or over TLS for `https://` URLs, one keep-alive
//! connection per peer, opened again when it drops.
//!
//! Peers are addressed by a URL prefix (`http://host:port/path`): each
//! request names a path below it. Every exchange has a deadline, so a
//! peer that stops answering holds up nothing but its own next attempt.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

/// Largest response body read from a peer.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why a request to a peer got no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// The URL is not `http://` or `https://` with a host.
    #[error("bad URL {0:?}: use http://host[:port][/prefix] or https://...")]
    Url(String),
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("{0}")]
    Transport(String),
    /// No response within the deadline.
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

/// A response: status, content type and body.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The `Content-Type`, if any and readable.
    pub content_type: Option<String>,
    /// The body, at most the peer's limit (64 KiB by default).
    pub body: Bytes,
}

/// One peer: its URL prefix and the connection to it.
pub struct Peer {
    host: String,
    port: u16,
    /// The URL's path, without a trailing `/`.
    prefix: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    deadline: Duration,
    /// Largest response body read.
    max_response: usize,
    connection: Mutex<Option<Connection>>,
}

/// An open connection: the half that sends requests and the task driving
/// it, whose result says why the connection ended (a TLS alert from the
/// peer, a reset) when the sending half only sees "channel closed".
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<Result<(), hyper::Error>>,
}

impl Connection {
    /// Why the exchange failed: the driver's error when it ended with one
    /// (it ends at once when the connection is gone), else `e`'s.
    async fn failure(self, what: &str, e: hyper::Error) -> OutboundError {
        drop(self.sender);
        let ended = tokio::time::timeout(DRIVER_GRACE, self.driver).await;
        let why = match ended {
            Ok(Ok(Err(driver))) => with_sources(&driver),
            _ => with_sources(&e),
        };
        OutboundError::Transport(format!("{what}: {why}"))
    }
}

/// How long a failed exchange waits for the connection's driver to say why
/// the connection ended.
const DRIVER_GRACE: Duration = Duration::from_millis(500);

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("prefix", &self.prefix)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer at `url`; `tls` is the client configuration for `https://`
    /// URLs (whose roots decide which servers are believed).
    ///
    /// # Errors
    /// [`OutboundError::Url`] for anything but an `http://` or `https://`
    /// URL with a host, or `https://` without a TLS configuration.
    pub fn new(
        url: &str,
        tls: Option<Arc<ClientConfig>>,
        deadline: Duration,
    ) -> Result<Peer, OutboundError> {
        let bad = || OutboundError::Url(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let host = uri.host().ok_or_else(bad)?.to_owned();
        let secure = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad()),
        };
        if uri.query().is_some() {
            return Err(bad());
        }
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tls = if secure {
            let config = tls.ok_or_else(bad)?;
            // An IPv6 literal comes bracketed from the URI.
            let name = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let name = ServerName::try_from(name).map_err(|_| bad())?;
            Some((TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Peer {
            host,
            port,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            tls,
            deadline,
            max_response: MAX_RESPONSE_BYTES,
            connection: Mutex::new(None),
        })
    }

    /// The same peer, reading response bodies of up to `bytes` (default
    /// 64 KiB).
    #[must_use]
    pub fn with_max_response(mut self, bytes: usize) -> Peer {
        self.max_response = bytes;
        self
    }

    /// Closes the open connection, if any: the next request opens a new
    /// one, with a new handshake (which a new CRL then applies to).
    pub async fn disconnect(&self) {
        *self.connection.lock().await = None;
    }

    /// POSTs `body` to `<prefix><path>`, reusing the open connection if
    /// there is one; a connection that failed is dropped, so the next
    /// call opens a new one.
    ///
    /// # Errors
    /// [`OutboundError`] when no response came back.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Response, OutboundError> {
        let exchange = self.exchange(Method::POST, path, content_type, body);
        match tokio::time::timeout(self.deadline, exchange).await {
            Ok(result) => result,
            Err(_) => {
                // The connection is in an unknown state.
                *self.connection.lock().await = None;
                Err(OutboundError::Timeout(self.deadline))
            }
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Response, OutboundError> {
        let mut slot = self.connection.lock().await;
        let mut connection = match slot.take() {
            Some(c) if !c.sender.is_closed() => c,
            _ => self.connect().await?,
        };
        if let Err(e) = connection.sender.ready().await {
            return Err(connection.failure("connection lost", e).await);
        }
        let host =
            if self.tls.is_some() && self.port == 443 || self.tls.is_none() && self.port == 80 {
                self.host.clone()
            } else {
                format!("{}:{}", self.host, self.port)
            };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, host)
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|e| OutboundError::Transport(format!("cannot build the request: {e}")))?;
        let response = match connection.sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => return Err(connection.failure("request failed", e).await),
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), self.max_response)
            .collect()
            .await
            .map_err(|e| {
                OutboundError::Transport(format!("reading the response: {}", with_sources(&*e)))
            })?
            .to_bytes();
        // Only a connection whose exchange completed is used again.
        *slot = Some(connection);
        Ok(Response {
            status,
            content_type,
            body,
        })
    }

    async fn connect(&self) -> Result<Connection, OutboundError> {
        let transport = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| OutboundError::Transport(format!("{what}: {e}"))
        };
        let tcp = TcpStream::connect((
            self.host.trim_start_matches('[').trim_end_matches(']'),
            self.port,
        ))
        .await
        .map_err(transport("cannot connect"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(TokioIo::new(tcp)).await,
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(transport("TLS handshake failed"))?;
                handshake(TokioIo::new(stream)).await
            }
        }
    }
}

/// `e` and each of its sources, colon-separated: hyper's errors name only
/// their kind ("connection error"); their sources say what happened (a
/// TLS alert from the peer, a reset), which is what an operator needs.
fn with_sources(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        // Some errors repeat their source's text in their own.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

async fn handshake<T>(io: TokioIo<T>) -> Result<Connection, OutboundError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(io).await.map_err(|e| {
        OutboundError::Transport(format!("HTTP handshake failed: {}", with_sources(&e)))
    })?;
    // The connection's driver; it ends when the peer or we drop it.
    let driver = tokio::spawn(connection);
    Ok(Connection { sender, driver })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let d = Duration::from_secs(1);
        for bad in [
            "ftp://example/x",
            "example.org",
            "http://",
            "http://h/x?y=1",
            "https://h/x",
        ] {
            assert!(Peer::new(bad, None, d).is_err(), "{bad}");
        }
        let peer = Peer::new("http://127.0.0.1:9000/witness/", None, d).expect("ok");
        assert_eq!(peer.prefix, "/witness");
        assert_eq!(peer.port, 9000);
        let peer = Peer::new("http://localhost", None, d).expect("ok");
        assert_eq!((peer.port, peer.prefix.as_str()), (80, ""));
    }

    /// An error that names only its kind, as hyper's do.
    #[derive(Debug)]
    struct Kind(&'static str, std::io::Error);

    impl std::fmt::Display for Kind {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Kind {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn transport_errors_say_what_happened() {
        let alert = || std::io::Error::other("received fatal alert: CertificateRevoked");
        assert_eq!(
            with_sources(&Kind("connection error", alert())),
            "connection error: received fatal alert: CertificateRevoked"
        );
        // A source already quoted is not repeated.
        assert_eq!(
            with_sources(&Kind("received fatal alert: CertificateRevoked", alert())),
            "received fatal alert: CertificateRevoked"
        );
    }
}

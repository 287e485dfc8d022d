//! The hostile-input corpus, HTTP and connection half: requests a peer
//! controls end to end (paths, queries, headers, bodies, raw bytes on the
//! TLS stream, half-open connections) against a real gateway. Each table
//! case has its status and error code, and nothing is stored; the
//! connection cases check that a slow or hostile client never delays a
//! well-behaved one.
//!
//! `XGATE_HOSTILE_CONNECTIONS` sets how many idle connections the flood
//! case opens (default 1,500 here; the figure is 10,000:
//! `XGATE_HOSTILE_CONNECTIONS=10000 cargo test -p xgate --test hostile_http`).

mod federation;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use federation::assets::{AGENCIES, federation};
use federation::{address, error_code, raw_tls, runtime, snapshot};

struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn case(method: Method, path: &str, status: StatusCode, code: &'static str) -> Case {
    Case {
        method,
        path: path.to_owned(),
        content_type: None,
        body: Vec::new(),
        status,
        code,
    }
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let post = |content_type, body: Vec<u8>, status, code| Case {
        method: Method::POST,
        path: "/v1/envelopes".into(),
        content_type,
        body,
        status,
        code,
    };
    vec![
        post(
            Some("text/plain"),
            b"a.b.c".to_vec(),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        post(
            None,
            b"a.b.c".to_vec(),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        post(
            Some("application/json"),
            b"{}".to_vec(),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        post(
            Some("application/jose"),
            vec![b'a'; (1 << 20) + 1],
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        case(
            Method::GET,
            "/v1/envelopes",
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        case(
            Method::DELETE,
            "/v1/inbox",
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        case(
            Method::PUT,
            "/v1/assets/LAP-1",
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        case(
            Method::POST,
            "/v1/reviews",
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        case(Method::GET, "/v1/nothing", S::NOT_FOUND, "not_found"),
        case(Method::GET, "/", S::NOT_FOUND, "not_found"),
        case(
            Method::GET,
            "/v1/../../etc/passwd",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::POST,
            "/v1/inbox/../../state/ack",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::POST,
            "/v1/inbox/%2e%2e%2f%2e%2e/ack",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::POST,
            &format!("/v1/inbox/{}/ack", "0".repeat(64)),
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::POST,
            &format!("/v1/inbox/{}/ack", "A".repeat(64)),
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            "/v1/assets/..%2F..%2Fregistry.toml",
            S::NOT_FOUND,
            "not_found",
        ),
        case(Method::GET, "/v1/assets/%00", S::NOT_FOUND, "not_found"),
        case(
            Method::GET,
            "/v1/medical/requests/..%2Fq1?requester=state",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            "/v1/medical/requests/q1?requester=..%2Fstate",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/medical/responses/-1",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/medical/responses/99999999999999999999999",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/reconciliations/../1",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            "/v1/reconciliations/1e3",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/log/entries/-1",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/log/entries/18446744073709551616",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/log/entries/999999",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            "/v1/log/proof/inclusion?index=abc&size=1",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/log/proof/inclusion?size=1",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/log/proof/inclusion?index=5&size=2",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            "/v1/log/proof/consistency?from=9&to=2",
            S::NOT_FOUND,
            "not_found",
        ),
        case(
            Method::GET,
            "/v1/inbox?after=x",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/assets?holder_agency=..%2Fx",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/assets?status=stolen",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/assets?evil=1",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/assets?limit=1&limit=2",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/reviews?after=nocolon",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/reviews?after=hhs:x",
            S::BAD_REQUEST,
            "malformed",
        ),
        case(
            Method::GET,
            "/v1/reconciliations/stream?after=x.y",
            S::BAD_REQUEST,
            "malformed",
        ),
    ]
}

#[test]
fn every_hostile_request_gets_its_code_and_changes_nothing() {
    let fed = federation(&[]);
    let cases = cases();
    let mut client = fed.client("state");
    runtime().block_on(async {
        let before = snapshot(&fed, &AGENCIES).await;
        for c in &cases {
            let reply = client
                .request(c.method.clone(), &c.path, c.content_type, c.body.clone())
                .await
                .expect("a response");
            let what = format!(
                "{} {}: {}",
                c.method,
                c.path,
                String::from_utf8_lossy(&reply.body)
            );
            assert_eq!(reply.status, c.status, "{what}");
            assert_eq!(error_code(&reply), c.code, "{what}");
        }
        assert_eq!(snapshot(&fed, &AGENCIES).await, before);
    });
}

/// Reads what the server sends until it closes the connection or stays
/// silent for `quiet`.
async fn read_all(stream: &mut (impl AsyncReadExt + Unpin), quiet: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(quiet, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// RFC 9112 section 6.3: a message with both Content-Length and
/// Transfer-Encoding is refused, or read by Transfer-Encoding and the
/// connection closed after it; a request smuggled behind it is never
/// answered.
#[test]
fn conflicting_content_length_and_transfer_encoding_never_desynchronise() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let before = snapshot(&fed, &AGENCIES).await;
        for smuggle in [
            // TE first, a CL that would cut the chunked body short.
            "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /v1/inbox HTTP/1.1\r\nHost: x\r\n\r\n",
            // CL first, covering a chunked body that hides a request.
            "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/inbox HTTP/1.1\r\nHost: x\r\n\r\n",
            // An obfuscated Transfer-Encoding.
            "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\nTransfer-Encoding: xchunked\r\nContent-Length: 0\r\n\r\nGET /v1/inbox HTTP/1.1\r\nHost: x\r\n\r\n",
            // Two different Content-Lengths.
            "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\nGET /v1/inbox HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let mut tls = raw_tls(&fed, "state", b"http/1.1").await;
            tls.write_all(smuggle.as_bytes()).await.expect("write");
            let (bytes, closed) = read_all(&mut tls, Duration::from_secs(3)).await;
            let text = String::from_utf8_lossy(&bytes);
            let responses = text.matches("HTTP/1.1 ").count();
            assert!(responses <= 1, "the smuggled request was answered: {text}");
            assert!(!text.contains("\"envelopes\""), "the inbox was served: {text}");
            assert!(closed, "the connection stays open after a conflicting request: {text}");
        }
        assert_eq!(snapshot(&fed, &AGENCIES).await, before);
    });
}

/// A client that sends its headers a byte at a time, and one that never
/// finishes its TLS handshake, are cut off by the header timeout; a
/// well-behaved client meanwhile is answered at once.
#[test]
fn slow_and_half_open_clients_never_delay_a_good_one() {
    let fed = federation(&[("XGATE_HEADER_TIMEOUT_SECS", "2")]);
    runtime().block_on(async {
        // A slow-loris client: a valid handshake, then headers dribbled.
        let mut slow = raw_tls(&fed, "treasury", b"http/1.1").await;
        slow.write_all(b"GET /v1/inbox HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        // A truncated TLS handshake: half a ClientHello, then silence.
        let mut half = TcpStream::connect(address(&fed)).await.expect("tcp");
        half.write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .await
        .expect("write");
        // Plain TCP, nothing sent at all.
        let mut mute = TcpStream::connect(address(&fed)).await.expect("tcp");
        let mut good = fed.client("state");
        let started = Instant::now();
        for _ in 0..20 {
            let reply = good
                .request(Method::GET, "/v1/inbox", None, Vec::new())
                .await
                .expect("reply");
            assert_eq!(reply.status, StatusCode::OK);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the good client waited {:?}",
            started.elapsed()
        );
        // Within the header timeout (and a margin), every bad one is closed.
        for _ in 0..12 {
            let _ = slow.write_all(b"X").await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (_, slow_closed) = read_all(&mut slow, Duration::from_secs(2)).await;
        let (_, half_closed) = read_all(&mut half, Duration::from_secs(2)).await;
        let (_, mute_closed) = read_all(&mut mute, Duration::from_secs(2)).await;
        assert!(
            slow_closed && half_closed && mute_closed,
            "slow {slow_closed}, half {half_closed}, mute {mute_closed}"
        );
    });
}

/// Thousands of idle connections (TCP only, never a handshake) do not keep
/// a well-behaved client out: past `max_handshakes` (256) each new one
/// displaces the oldest handshake, and the rest are dropped at the header
/// timeout. (`serve_slow_clients` fills every slot with each kind of slow
/// client.)
#[test]
fn a_flood_of_idle_connections_does_not_shut_out_a_good_client() {
    let count: usize = std::env::var("XGATE_HOSTILE_CONNECTIONS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1500);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let fed = federation(&[("XGATE_HEADER_TIMEOUT_SECS", "5")]);
    runtime().block_on(async {
        let mut idle = Vec::with_capacity(count);
        for _ in 0..count {
            match TcpStream::connect(address(&fed)).await {
                Ok(s) => idle.push(s),
                Err(e) => panic!("connection {} of {count} failed: {e}", idle.len() + 1),
            }
        }
        let mut good = fed.client("state");
        let started = Instant::now();
        let reply = good
            .request(Method::GET, "/v1/inbox", None, Vec::new())
            .await
            .expect("reply");
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the good client waited {:?} behind {count} idle connections",
            started.elapsed()
        );
        drop(idle);
    });
}

//! Connection slots against slow, idle and greedy clients, through the real
//! binary and real TLS: every kind of client that holds a connection without
//! using it (TCP only, TLS done but silent, half an HTTP/2 preface, HTTP/2
//! opened but never asked, idle HTTP/2 and HTTP/1.1 keep-alive) is closed on
//! a clock, and while such clients fill every slot a well-behaved client is
//! still served within the header timeout; one agency cannot take more than
//! its share of connections, nor slow handshakes all the handshake room.

mod federation;

use std::any::Any;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use xgate::client::Protocol;

use federation::{Federation, address, error_code, raw_tls, runtime};

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: what a client sends right after the preface.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
/// The first bytes of a TLS ClientHello, and no more.
const HALF_HELLO: [u8; 11] = [
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

/// The task driving a client connection; it ends, with the time it ended,
/// when the gateway closes the connection.
type Driver = JoinHandle<Instant>;

/// An HTTP/2 client connection as `agency`, and its driver.
async fn h2(fed: &Federation, agency: &str) -> (http2::SendRequest<Empty<Bytes>>, Driver) {
    let io = TokioIo::new(raw_tls(fed, agency, b"h2").await);
    let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
        .await
        .expect("HTTP/2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
        Instant::now()
    });
    (sender, driver)
}

/// An HTTP/1.1 client connection as `agency`, and its driver.
async fn h1(fed: &Federation, agency: &str) -> (http1::SendRequest<Empty<Bytes>>, Driver) {
    let io = TokioIo::new(raw_tls(fed, agency, b"http/1.1").await);
    let (sender, conn) = http1::handshake(io).await.expect("HTTP/1.1 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
        Instant::now()
    });
    (sender, driver)
}

fn get(path: &str, http2: bool) -> Request<Empty<Bytes>> {
    let builder = Request::builder().method(Method::GET);
    let builder = if http2 {
        builder.uri(format!("https://127.0.0.1{path}"))
    } else {
        builder.uri(path).header(http::header::HOST, "127.0.0.1")
    };
    builder.body(Empty::new()).expect("request")
}

async fn get_h2(sender: &mut http2::SendRequest<Empty<Bytes>>, path: &str) -> StatusCode {
    let response = sender
        .send_request(get(path, true))
        .await
        .expect("a response");
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

async fn get_h1(sender: &mut http1::SendRequest<Empty<Bytes>>, path: &str) -> StatusCode {
    sender.ready().await.expect("ready");
    let response = sender
        .send_request(get(path, false))
        .await
        .expect("a response");
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

/// Whether the gateway closes `stream` within `wait` (reading and
/// discarding whatever it sends meanwhile).
async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), wait: Duration) -> bool {
    let until = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// How many connections the gateway says it closed for `reason`.
async fn closed_for(fed: &Federation, reason: &str) -> u64 {
    let reply = fed
        .client("gsa")
        .request(Method::GET, "/metrics", None, Vec::new())
        .await
        .expect("metrics");
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let name = format!("xgate_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// The kinds of client that hold a connection without using it.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// TCP connected, nothing sent.
    TcpOnly,
    /// Half a TLS ClientHello, then nothing.
    HalfHandshake,
    /// TLS handshake done, nothing sent.
    TlsSilent,
    /// TLS done, half the HTTP/2 preface.
    HalfPreface,
    /// TLS done, the HTTP/2 preface and SETTINGS, no request.
    PrefaceOnly,
    /// HTTP/2, one request answered, then idle.
    IdleH2,
    /// HTTP/1.1 keep-alive, one request answered, then idle.
    IdleH1,
}

const SLOW: [Slow; 7] = [
    Slow::TcpOnly,
    Slow::HalfHandshake,
    Slow::TlsSilent,
    Slow::HalfPreface,
    Slow::PrefaceOnly,
    Slow::IdleH2,
    Slow::IdleH1,
];

/// The agencies slow clients connect as: two, since one agency may hold at
/// most half of the slots.
const SLOW_AGENCIES: [&str; 2] = ["treasury", "gsa"];

/// Opens one slow client of `kind` as `agency`; the value keeps it open.
async fn open(fed: &Federation, kind: Slow, agency: &str) -> Box<dyn Any> {
    match kind {
        Slow::TcpOnly => Box::new(TcpStream::connect(address(fed)).await.expect("tcp")),
        Slow::HalfHandshake => {
            let mut tcp = TcpStream::connect(address(fed)).await.expect("tcp");
            tcp.write_all(&HALF_HELLO).await.expect("write");
            Box::new(tcp)
        }
        Slow::TlsSilent => Box::new(raw_tls(fed, agency, b"h2").await),
        Slow::HalfPreface => {
            let mut s = raw_tls(fed, agency, b"h2").await;
            s.write_all(&PREFACE[..12]).await.expect("write");
            Box::new(s)
        }
        Slow::PrefaceOnly => {
            let mut s = raw_tls(fed, agency, b"h2").await;
            s.write_all(PREFACE).await.expect("write");
            s.write_all(&SETTINGS).await.expect("write");
            Box::new(s)
        }
        Slow::IdleH2 => {
            let (mut sender, conn) = h2(fed, agency).await;
            assert_eq!(get_h2(&mut sender, "/healthz").await, StatusCode::OK);
            Box::new((sender, conn))
        }
        Slow::IdleH1 => {
            let (mut sender, conn) = h1(fed, agency).await;
            assert_eq!(get_h1(&mut sender, "/healthz").await, StatusCode::OK);
            Box::new((sender, conn))
        }
    }
}

/// A well-behaved client's request on a connection of its own, and how
/// long it took; `None` if no answer came within `limit`.
async fn good_request(fed: &Federation, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut client = fed.client("state");
    let reply = tokio::time::timeout(
        limit,
        client.request(Method::GET, "/v1/inbox", None, Vec::new()),
    )
    .await
    .ok()?
    .expect("a response");
    assert_eq!(reply.status, StatusCode::OK);
    Some(started.elapsed())
}

/// With every slot held by slow clients of one kind (and then of every kind
/// at once, and with more queued behind them), a well-behaved client is
/// served within the header timeout plus a second: here, with a generous
/// margin for a loaded machine, within header timeout + 3 s. Idle
/// keep-alive clients would hold their slots for the whole idle timeout
/// (60 s here), so this holds only because a full table gives the slot of
/// the connection idle the longest to the newcomer.
#[test]
fn a_gateway_full_of_slow_clients_still_serves_a_good_one_within_the_header_timeout() {
    const MAX: usize = 8;
    const HEADER: Duration = Duration::from_secs(2);
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_MAX_CONNECTIONS", "8"),
            ("XGATE_HEADER_TIMEOUT_SECS", "2"),
            ("XGATE_IDLE_TIMEOUT_SECS", "60"),
        ],
    );
    let limit = HEADER + Duration::from_secs(3);
    runtime().block_on(async {
        let mut rounds: Vec<(String, Vec<Slow>)> = SLOW
            .iter()
            .map(|k| (format!("{MAX} x {k:?}"), vec![*k; MAX]))
            .collect();
        rounds.push(("every kind".into(), SLOW.iter().cycle().take(MAX).copied().collect()));
        for (what, kinds) in rounds {
            let mut held = Vec::new();
            for (kind, agency) in kinds.into_iter().zip(SLOW_AGENCIES.iter().cycle()) {
                held.push(open(&fed, kind, agency).await);
            }
            let took = good_request(&fed, limit).await;
            assert!(
                took.is_some_and(|t| t < limit),
                "with {what} holding every slot, a good client waited {took:?} (limit {limit:?})"
            );
            drop(held);
        }
        // More slow clients than slots, the extra ones queued before the
        // good client: it is still not served after them.
        let mut held = Vec::new();
        for i in 0..MAX {
            held.push(open(&fed, Slow::TlsSilent, SLOW_AGENCIES[i % 2]).await);
        }
        for _ in 0..3 * MAX {
            held.push(open(&fed, Slow::TcpOnly, "treasury").await);
        }
        let took = good_request(&fed, limit).await;
        assert!(
            took.is_some_and(|t| t < limit),
            "with {MAX} silent TLS clients holding the slots and {} more queued, a good client waited {took:?}",
            3 * MAX
        );
        drop(held);
        assert!(closed_for(&fed, "evicted").await >= SLOW.len() as u64);
    });
}

/// A client that completes the TLS handshake and then sends nothing, half
/// an HTTP/2 preface, or a preface and never a request, is closed within
/// the header timeout: the timeout covers the first request, not only the
/// handshake.
#[test]
fn connections_without_a_first_request_are_closed_at_the_header_timeout() {
    let fed = Federation::start_with(&[], &[("XGATE_HEADER_TIMEOUT_SECS", "2")]);
    runtime().block_on(async {
        let opened = Instant::now();
        let mut silent_h1 = raw_tls(&fed, "treasury", b"http/1.1").await;
        let mut silent_h2 = raw_tls(&fed, "treasury", b"h2").await;
        let mut half = raw_tls(&fed, "treasury", b"h2").await;
        half.write_all(&PREFACE[..12]).await.expect("write");
        let mut preface = raw_tls(&fed, "treasury", b"h2").await;
        preface.write_all(PREFACE).await.expect("write");
        preface.write_all(&SETTINGS).await.expect("write");
        let by = Duration::from_secs(2 + 3);
        for (what, stream) in [
            ("silent after TLS (http/1.1)", &mut silent_h1),
            ("silent after TLS (h2)", &mut silent_h2),
            ("half an HTTP/2 preface", &mut half),
            ("HTTP/2 preface, no request", &mut preface),
        ] {
            let left = by.saturating_sub(opened.elapsed());
            assert!(
                closed_within(stream, left).await,
                "{what}: still open {:?} after connecting",
                opened.elapsed()
            );
        }
        assert!(
            opened.elapsed() >= Duration::from_secs(1),
            "closed before the header timeout could have run out"
        );
        assert!(closed_for(&fed, "header_timeout").await >= 4);
    });
}

/// A keep-alive connection with no request in flight is closed after the
/// idle timeout, HTTP/2 and HTTP/1.1 alike (the header timeout is longer
/// here, so it is the idle timeout that closes them); one that keeps
/// asking stays open.
#[test]
fn idle_connections_are_closed_after_the_idle_timeout_and_busy_ones_are_not() {
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_HEADER_TIMEOUT_SECS", "6"),
            ("XGATE_IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    runtime().block_on(async {
        let (mut idle2, conn2) = h2(&fed, "treasury").await;
        let (mut idle1, conn1) = h1(&fed, "treasury").await;
        let (mut busy, busy_conn) = h2(&fed, "state").await;
        assert_eq!(get_h2(&mut idle2, "/healthz").await, StatusCode::OK);
        assert_eq!(get_h1(&mut idle1, "/healthz").await, StatusCode::OK);
        let idle_since = Instant::now();
        // The busy client asks every half second for twice the idle timeout.
        while idle_since.elapsed() < Duration::from_secs(4) {
            assert_eq!(get_h2(&mut busy, "/healthz").await, StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            !busy_conn.is_finished(),
            "a connection with a request every 0.5 s was closed as idle"
        );
        for (what, conn) in [("HTTP/2", conn2), ("HTTP/1.1", conn1)] {
            let ended = tokio::time::timeout(Duration::from_secs(3), conn)
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "an idle {what} connection is still open {:?} after its last response",
                        idle_since.elapsed()
                    )
                })
                .expect("connection task");
            let idle = ended.duration_since(idle_since);
            assert!(
                idle >= Duration::from_millis(1500) && idle < Duration::from_secs(4),
                "an idle {what} connection was closed {idle:?} after its last response; the idle timeout is 2 s"
            );
        }
        assert!(closed_for(&fed, "idle_timeout").await >= 2);
    });
}

/// Every connection is closed gracefully at its maximum age, even one that
/// is never idle: requests sent before the close are all answered.
#[test]
fn connections_are_closed_gracefully_at_their_maximum_age() {
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_HEADER_TIMEOUT_SECS", "6"),
            ("XGATE_MAX_CONNECTION_AGE_SECS", "3"),
        ],
    );
    runtime().block_on(async {
        let opened = Instant::now();
        let (mut sender, conn) = h2(&fed, "state").await;
        let mut answered = 0;
        while !conn.is_finished() && opened.elapsed() < Duration::from_secs(10) {
            if sender.ready().await.is_err() {
                break;
            }
            // A request racing the GOAWAY may be refused by the client
            // side; one the gateway took is answered in full.
            match sender.send_request(get("/healthz", true)).await {
                Ok(response) => {
                    assert_eq!(response.status(), StatusCode::OK);
                    answered += 1;
                }
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let ended = tokio::time::timeout(Duration::from_secs(3), conn)
            .await
            .expect("the connection closes")
            .expect("connection task");
        let age = ended.duration_since(opened);
        assert!(
            age >= Duration::from_millis(2500) && age < Duration::from_secs(8),
            "closed after {age:?}, its maximum age is 3 s"
        );
        assert!(answered >= 5, "only {answered} requests answered");
        assert!(closed_for(&fed, "max_age").await >= 1);
    });
}

/// An agency holding `max_connections_per_agency` connections gets 429
/// `too_many_connections` on a new one (HTTP/2 and HTTP/1.1), which is then
/// closed; other agencies are served; once one of its connections closes,
/// it can open another.
#[test]
fn an_agency_past_its_connection_cap_is_refused_with_429() {
    let fed = Federation::start_with(&[], &[("XGATE_MAX_CONNECTIONS_PER_AGENCY", "2")]);
    runtime().block_on(async {
        let inbox = |mut c: xgate::client::Client| async move {
            let reply = c
                .request(Method::GET, "/v1/inbox", None, Vec::new())
                .await
                .expect("a response");
            (reply, c)
        };
        let (first, first_client) = inbox(fed.client("state")).await;
        let (second, _second_client) = inbox(fed.client("state")).await;
        assert_eq!(
            (first.status, second.status),
            (StatusCode::OK, StatusCode::OK)
        );
        for protocol in [Protocol::Auto, Protocol::Http1] {
            let (third, _) = inbox(fed.client_with("state", protocol)).await;
            assert_eq!(
                third.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{protocol:?}: {}",
                String::from_utf8_lossy(&third.body)
            );
            assert_eq!(error_code(&third), "too_many_connections");
        }
        let (other, _other_client) = inbox(fed.client("treasury")).await;
        assert_eq!(other.status, StatusCode::OK);
        drop(first_client);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (again, _client) = inbox(fed.client("state")).await;
            if again.status == StatusCode::OK {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "state still refused 5 s after closing a connection: {}",
                String::from_utf8_lossy(&again.body)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(closed_for(&fed, "agency_limit").await >= 2);
    });
}

/// Past `max_handshakes` connections in their TLS handshake, each new
/// connection displaces a handshake (picked at random) at once, long before
/// the header timeout, and a well-behaved client is served.
#[test]
fn past_the_handshake_cap_new_connections_displace_other_handshakes() {
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_MAX_HANDSHAKES", "2"),
            ("XGATE_HEADER_TIMEOUT_SECS", "20"),
        ],
    );
    runtime().block_on(async {
        let mut stalled = Vec::new();
        for _ in 0..6 {
            let mut tcp = TcpStream::connect(address(&fed)).await.expect("tcp");
            tcp.write_all(&HALF_HELLO).await.expect("write");
            stalled.push(tcp);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let until = Instant::now() + Duration::from_secs(3);
        let mut closed = 0;
        for tcp in &mut stalled {
            if closed_within(tcp, until.saturating_duration_since(Instant::now())).await {
                closed += 1;
            }
        }
        assert_eq!(
            closed, 4,
            "of 6 stalled handshakes with a cap of 2, {closed} were closed"
        );
        let took = good_request(&fed, Duration::from_secs(5)).await;
        assert!(
            took.is_some(),
            "a good client was not served past stalled handshakes"
        );
        assert!(closed_for(&fed, "handshake_limit").await >= 4);
    });
}

/// A registered agency's connection, its handshake done and no request sent
/// yet, is not displaced by a flood of newer connections when the gateway
/// is full: TCP connections that never start a handshake, then TLS
/// connections that never send a request. Those displace each other, and
/// the good connection is served when it asks.
#[test]
fn a_flood_after_a_good_connection_displaces_itself_not_the_good_connection() {
    const MAX: usize = 8;
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_MAX_CONNECTIONS", "8"),
            ("XGATE_HEADER_TIMEOUT_SECS", "20"),
            ("XGATE_IDLE_TIMEOUT_SECS", "60"),
        ],
    );
    runtime().block_on(async {
        let (mut good, good_conn) = h2(&fed, "state").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut flood = Vec::new();
        for _ in 0..3 * MAX {
            flood.push(open(&fed, Slow::TcpOnly, "treasury").await);
        }
        for _ in 0..3 * MAX {
            flood.push(open(&fed, Slow::TlsSilent, "treasury").await);
        }
        // Let the gateway act on the last arrivals.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !good_conn.is_finished(),
            "the good connection was closed by a flood that came after it"
        );
        let status = tokio::time::timeout(Duration::from_secs(5), get_h2(&mut good, "/v1/inbox"))
            .await
            .expect("the good connection is answered");
        assert_eq!(status, StatusCode::OK);
        drop(flood);
        assert!(closed_for(&fed, "evicted").await >= 3 * MAX as u64);
    });
}

/// A client that sends a request head and then trickles its body, a byte at
/// a time, until the gateway answers or closes; what it read (empty if
/// nothing), and when the answer came after the head was sent.
async fn trickle(fed: &Federation, agency: &str) -> JoinHandle<(String, Duration)> {
    let mut s = raw_tls(fed, agency, b"http/1.1").await;
    tokio::spawn(async move {
        let head = "POST /v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                        Content-Type: application/jose\r\nContent-Length: 100000\r\n\r\n";
        let sent = Instant::now();
        let mut read = Vec::new();
        let mut answered = None;
        if s.write_all(head.as_bytes()).await.is_err() {
            return (String::new(), sent.elapsed());
        }
        let mut writing = true;
        let mut buf = [0u8; 4096];
        while sent.elapsed() < Duration::from_secs(20) {
            tokio::select! {
                n = s.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        answered = answered.or(Some(sent.elapsed()));
                        read.extend_from_slice(&buf[..n]);
                    }
                },
                () = tokio::time::sleep(Duration::from_millis(200)), if writing => {
                    writing = s.write_all(b"e").await.is_ok();
                }
                () = tokio::time::sleep(Duration::from_millis(200)), if !writing => {}
            }
        }
        let when = answered.unwrap_or_else(|| sent.elapsed());
        (String::from_utf8_lossy(&read).into_owned(), when)
    })
}

/// One agency trickling request bodies on as many connections as the
/// gateway has slots holds at most half of them (the others are refused
/// `429 too_many_connections`), so a well-behaved client of another agency
/// is served at once; and each trickled body is answered
/// `408 body_timeout` at the header timeout, and its connection closed,
/// not held for the 30 s request timeout.
#[test]
fn one_agency_trickling_request_bodies_cannot_hold_the_slots() {
    const MAX: usize = 8;
    const HEADER: Duration = Duration::from_secs(3);
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_MAX_CONNECTIONS", "8"),
            ("XGATE_HEADER_TIMEOUT_SECS", "3"),
            ("XGATE_REQUEST_TIMEOUT_SECS", "30"),
        ],
    );
    runtime().block_on(async {
        let mut tricklers = Vec::new();
        for _ in 0..MAX {
            tricklers.push(trickle(&fed, "treasury").await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let limit = HEADER + Duration::from_secs(3);
        let took = good_request(&fed, limit).await;
        assert!(
            took.is_some_and(|t| t < limit),
            "with one agency trickling bodies on {MAX} connections, a good client waited {took:?} (limit {limit:?})"
        );
        let (mut refused, mut timed_out) = (0, 0);
        for t in tricklers {
            let (reply, when) = t.await.expect("trickler");
            if reply.starts_with("HTTP/1.1 429") && reply.contains("too_many_connections") {
                refused += 1;
            } else if reply.starts_with("HTTP/1.1 408") && reply.contains("body_timeout") {
                assert!(
                    when >= HEADER - Duration::from_millis(500) && when < HEADER + Duration::from_secs(4),
                    "a trickled body was answered 408 after {when:?}; the header timeout is {HEADER:?}"
                );
                timed_out += 1;
            } else {
                panic!("a trickler got, after {when:?}: {reply:?}");
            }
        }
        assert_eq!(
            (refused, timed_out),
            (MAX / 2, MAX / 2),
            "one agency may hold half of the {MAX} slots"
        );
        assert!(closed_for(&fed, "body_timeout").await >= (MAX / 2) as u64);
    });
}

/// One HPACK header field, literal without indexing, new name, no Huffman
/// coding (RFC 7541, section 6.2.2); names and values under 127 bytes.
fn hpack_literal(name: &str, value: &str) -> Vec<u8> {
    let mut field = vec![0, name.len() as u8];
    field.extend_from_slice(name.as_bytes());
    field.push(value.len() as u8);
    field.extend_from_slice(value.as_bytes());
    field
}

/// Reads one HTTP/2 frame header and payload: (type, flags, stream id);
/// `None` once the gateway closes the connection.
async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<(u8, u8, u32)> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some((head[3], head[4], id))
}

/// An HTTP/2 connection busy with an event stream is not idle, so no idle
/// timeout closes it; the gateway pings it instead, and closes it when the
/// ping goes unanswered (a dead peer) within the header timeout.
#[test]
fn a_busy_http2_connection_is_pinged_and_closed_when_the_peer_stops_answering() {
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_IDLE_TIMEOUT_SECS", "1"),
            ("XGATE_HEADER_TIMEOUT_SECS", "2"),
        ],
    );
    runtime().block_on(async {
        let mut s = raw_tls(&fed, "state", b"h2").await;
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/v1/reconciliations/stream"),
            (":authority", "127.0.0.1"),
        ] {
            block.extend(hpack_literal(name, value));
        }
        let len = (block.len() as u32).to_be_bytes();
        // HEADERS, END_STREAM | END_HEADERS, stream 1.
        let mut headers = vec![len[1], len[2], len[3], 1, 0x5, 0, 0, 0, 1];
        headers.extend(block);
        s.write_all(PREFACE).await.expect("write");
        s.write_all(&SETTINGS).await.expect("write");
        s.write_all(&headers).await.expect("write");
        let opened = Instant::now();
        let (mut answered, mut pinged) = (false, None);
        // Read, never answering a ping, until the gateway closes.
        while let Ok(Some((kind, flags, id))) =
            tokio::time::timeout(Duration::from_secs(10), read_frame(&mut s)).await
        {
            match (kind, id) {
                (1, 1) => answered = true,
                (6, 0) if flags & 1 == 0 => pinged = pinged.or(Some(opened.elapsed())),
                _ => {}
            }
        }
        let closed = opened.elapsed();
        assert!(answered, "the event stream was not answered");
        let pinged = pinged.expect("no keep-alive ping on a busy HTTP/2 connection");
        assert!(
            pinged < Duration::from_secs(4),
            "the first ping came {pinged:?} after the request; the interval is 1 s"
        );
        assert!(
            closed >= pinged + Duration::from_millis(1500) && closed < Duration::from_secs(9),
            "closed {closed:?} after the request, the unanswered ping went out at {pinged:?} (timeout 2 s)"
        );
    });
}

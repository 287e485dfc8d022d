//! Helpers shared by the gateway's end-to-end tests: a federation PKI made
//! by the real `xgate certs init`, a real `xgate serve` on a loopback port,
//! and agency clients speaking mutual TLS to it.

#![allow(dead_code)] // each test file uses a different subset

pub mod assets;
pub mod contracts;
pub mod witnesses;

use std::path::{Path, PathBuf};

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use xgate::client::{Client, EnvelopeSigner, Protocol, Reply};
use xgate_ledger::{ConsistencyProof, Hash};
use xgate_server::registry::AgencyId;
use xgate_tests::{Gateway, Xgate};

/// The binary cargo built for this package.
pub fn xgate() -> Xgate {
    Xgate::new(env!("CARGO_BIN_EXE_xgate"))
}

/// A federation on loopback: a PKI, a data directory and a running gateway.
pub struct Federation {
    /// Holds the PKI and data directories.
    pub root: tempfile::TempDir,
    /// The running gateway.
    pub gateway: Gateway,
}

impl Federation {
    /// A PKI for `state`, `treasury` and `gsa`, and a gateway over it.
    pub fn start() -> Federation {
        Federation::start_with(&[], &[])
    }

    /// As [`Federation::start`], with extra `serve` arguments and
    /// environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Federation {
        let root = tempfile::tempdir().expect("tempdir");
        let pki = root.path().join("pki");
        make_pki(&pki, &["state", "treasury", "gsa"]);
        let gateway = start_gateway(root.path(), args, env);
        Federation { root, gateway }
    }

    /// The PKI directory.
    pub fn pki(&self) -> PathBuf {
        self.root.path().join("pki")
    }

    /// The gateway's data directory.
    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A client for `agency`.
    pub fn client(&self, agency: &str) -> Client {
        self.client_with(agency, Protocol::Auto)
    }

    /// A client for `agency` speaking `protocol`.
    pub fn client_with(&self, agency: &str, protocol: Protocol) -> Client {
        Client::for_agency(&self.pki(), &id(agency), self.gateway.url(), protocol).expect("client")
    }

    /// The envelope signer of `agency`.
    pub fn signer(&self, agency: &str) -> EnvelopeSigner {
        EnvelopeSigner::for_agency(&self.pki(), &id(agency)).expect("signer")
    }

    /// The log's verifier key, as `xgate log key` prints it while the
    /// gateway runs.
    pub fn log_key(&self) -> xgate_ledger::NoteVerifier {
        xgate_ledger::NoteVerifier::parse(&log_vkey(&self.data())).expect("verifier key")
    }
}

/// The verifier key of the log in `data`, as `xgate log key` prints it
/// (while a gateway runs on it, too).
pub fn log_vkey(data: &Path) -> String {
    xgate()
        .run(
            &["log", "key", "--data-dir", &data.display().to_string()],
            b"",
        )
        .expect_ok()
        .trim()
        .to_owned()
}

/// Runs `xgate certs init` for `agencies` into `dir`.
pub fn make_pki(dir: &Path, agencies: &[&str]) {
    let mut args = vec![
        "certs".to_owned(),
        "init".into(),
        "--dir".into(),
        dir.display().to_string(),
    ];
    for a in agencies {
        args.push("--agency".into());
        args.push((*a).to_owned());
    }
    xgate().run(&args, b"").expect_ok();
}

/// Starts `xgate serve` with data in `root/data` and the PKI in `root/pki`.
pub fn start_gateway(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
    let pki = root.join("pki").display().to_string();
    let mut all = vec!["--pki", pki.as_str()];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    env.push(("XGATE_LOG", "info"));
    Gateway::start(env!("CARGO_BIN_EXE_xgate"), &root.join("data"), &all, &env)
}

/// An agency id.
pub fn id(agency: &str) -> AgencyId {
    agency.parse().expect("agency id")
}

/// A single-threaded runtime for driving clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A record body.
pub fn body(text: &str) -> Map<String, Value> {
    match json!({ "record": text }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// POSTs a compact JWS as an envelope.
pub async fn submit(client: &mut Client, jws: &str) -> Reply {
    client.submit(jws.to_owned()).await.expect("a response")
}

/// Sends `count` records, "record 0" on, from `signer`'s agency to `to`
/// through `client`, each acknowledged 201; their receipts.
pub async fn send_records(
    client: &mut Client,
    signer: &EnvelopeSigner,
    to: &str,
    count: usize,
) -> Vec<xgate_server::receipt::Receipt> {
    let mut receipts = Vec::with_capacity(count);
    for n in 0..count {
        let jws = signer
            .sign(
                &id(to),
                "record.send",
                body(&format!("record {n}")),
                60,
                None,
            )
            .expect("sign");
        let reply = submit(client, &jws).await;
        assert_eq!(reply.status, StatusCode::CREATED, "record {n}");
        receipts.push(serde_json::from_slice(&reply.body).expect("receipt"));
    }
    receipts
}

/// Reads the first page (up to `limit`) of `client`'s agency's inbox and
/// acknowledges all of it in one request.
pub async fn ack_first_page(client: &mut Client, limit: usize) {
    let page = get_json(client, &format!("/v1/inbox?limit={limit}"), StatusCode::OK).await;
    let ids: Vec<Value> = page["envelopes"]
        .as_array()
        .expect("envelopes")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    let acked = client
        .request(
            Method::POST,
            "/v1/inbox/ack",
            Some("application/json"),
            json!({ "ids": ids }).to_string().into_bytes(),
        )
        .await
        .expect("ack");
    assert_eq!(acked.status, StatusCode::OK);
}

/// GETs `path` and parses the JSON body, asserting `status`.
pub async fn get_json(client: &mut Client, path: &str, status: StatusCode) -> Value {
    let reply = client
        .request(Method::GET, path, None, Vec::new())
        .await
        .expect("a response");
    assert_eq!(
        reply.status,
        status,
        "GET {path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).expect("JSON body")
}

/// The value of the series `series` (a metric name with its labels, as
/// `/metrics` prints it) as `client` reads it, or `None` if absent.
pub async fn metric(client: &mut Client, series: &str) -> Option<f64> {
    let reply = client
        .request(Method::GET, "/metrics", None, Vec::new())
        .await
        .expect("a response");
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8(reply.body.to_vec()).expect("utf-8");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The `{"error":{"code"}}` of a refusal, asserting the body's shape.
pub fn error_code(reply: &Reply) -> String {
    let v: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
        panic!(
            "error body is not JSON: {}",
            String::from_utf8_lossy(&reply.body)
        )
    });
    let error = v["error"].as_object().expect("an error object");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(error.len(), 2, "error has exactly code and message: {v}");
    error["code"].as_str().expect("code").to_owned()
}

/// The gateway's latest signed checkpoint note.
pub async fn checkpoint_note(client: &mut Client) -> String {
    let reply = client
        .request(Method::GET, "/v1/log/checkpoint", None, Vec::new())
        .await
        .expect("a response");
    assert_eq!(reply.status, StatusCode::OK);
    String::from_utf8(reply.body.to_vec()).expect("utf-8")
}

/// The log's size as the gateway's latest checkpoint says (0 if none).
pub async fn log_size(client: &mut Client) -> u64 {
    let reply = client
        .request(Method::GET, "/v1/log/checkpoint", None, Vec::new())
        .await
        .expect("a response");
    if reply.status == StatusCode::NOT_FOUND {
        return 0;
    }
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8(reply.body.to_vec()).expect("utf-8");
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("size line")
}

/// The gateway's consistency proof from size `old` to size `new`.
pub async fn consistency_proof(client: &mut Client, old: u64, new: u64) -> ConsistencyProof {
    let path = format!("/v1/log/proof/consistency?from={old}&to={new}");
    let proof = get_json(client, &path, StatusCode::OK).await;
    let hashes = proof["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h.as_str().expect("base64 string"))
                .expect("base64");
            Hash::from_slice(&bytes).expect("hash")
        })
        .collect();
    ConsistencyProof {
        old_size: old,
        new_size: new,
        hashes,
    }
}

/// How many envelopes wait in the client's inbox, over every page (a page
/// holds at most `inbox_page`, 100 by default).
pub async fn inbox_len(client: &mut Client) -> usize {
    let mut path = "/v1/inbox".to_owned();
    let mut len = 0;
    loop {
        let page = get_json(client, &path, StatusCode::OK).await;
        len += page["envelopes"].as_array().map_or(0, Vec::len);
        match page["next"].as_u64() {
            Some(next) => path = format!("/v1/inbox?after={next}"),
            None => return len,
        }
    }
}

impl Federation {
    /// A PKI for `agencies` and, with the auditor role, `auditors` (as
    /// `xgate certs init --auditor` makes them), and a gateway over it with
    /// the environment variables `env`.
    pub fn start_audited(agencies: &[&str], auditors: &[&str], env: &[(&str, &str)]) -> Federation {
        let root = tempfile::tempdir().expect("tempdir");
        make_audited_pki(&root.path().join("pki"), agencies, auditors);
        let gateway = start_gateway(root.path(), &[], env);
        Federation { root, gateway }
    }

    /// Opens `path` as `agency` on a connection of its own and, if the
    /// gateway answers 200, returns the body as a stream of Server-Sent
    /// Events; otherwise the status and JSON body. `headers` are added to
    /// the request (`Last-Event-ID`, for one).
    pub async fn open_events(
        &self,
        agency: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<EventStream, (StatusCode, Value)> {
        EventStream::open(&self.pki(), &id(agency), self.gateway.url(), path, headers).await
    }
}

/// Runs `xgate certs init` for `agencies` and `auditors` into `dir`.
pub fn make_audited_pki(dir: &Path, agencies: &[&str], auditors: &[&str]) {
    let mut args = vec![
        "certs".to_owned(),
        "init".into(),
        "--dir".into(),
        dir.display().to_string(),
    ];
    for a in agencies {
        args.extend(["--agency".to_owned(), (*a).to_owned()]);
    }
    for a in auditors {
        args.extend(["--auditor".to_owned(), (*a).to_owned()]);
    }
    xgate().run(&args, b"").expect_ok();
}

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `id:`.
    pub id: String,
    /// `event:`.
    pub event: String,
    /// `data:`, parsed as JSON.
    pub data: Value,
}

/// A `text/event-stream` response read as it arrives, over a mutual-TLS
/// HTTP/1.1 connection of its own ([`Client`] only reads whole bodies).
/// Dropping it closes the connection.
pub struct EventStream {
    body: hyper::body::Incoming,
    pending: String,
    connection: tokio::task::JoinHandle<()>,
}

impl EventStream {
    async fn open(
        pki: &Path,
        agency: &AgencyId,
        url: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<EventStream, (StatusCode, Value)> {
        use http_body_util::BodyExt;
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

        let home = pki.join(agency.as_str());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(pki.join(xgate_server::pki::CA_CERT)).expect("CA")
        {
            roots.add(cert.expect("CA cert")).expect("CA root");
        }
        let chain = CertificateDer::pem_file_iter(home.join(xgate_server::pki::TLS_CERT))
            .expect("cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("cert chain");
        let key = PrivateKeyDer::from_pem_file(home.join(xgate_server::pki::TLS_KEY)).expect("key");
        let mut config = rustls::ClientConfig::builder_with_provider(xgate_server::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let authority = url.strip_prefix("https://").expect("https URL").to_owned();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h);
        let server_name = ServerName::try_from(host.to_owned()).expect("server name");
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(server_name, tcp)
            .await
            .expect("TLS handshake");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .expect("HTTP/1.1 handshake");
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = http::Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(http::header::HOST, authority.as_str())
            .header(http::header::ACCEPT, "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("a response");
        let status = response.status();
        if status != StatusCode::OK {
            let body = response
                .into_body()
                .collect()
                .await
                .expect("error body")
                .to_bytes();
            connection.abort();
            return Err((status, serde_json::from_slice(&body).expect("JSON error")));
        }
        let content_type = response.headers().get(http::header::CONTENT_TYPE);
        assert_eq!(
            content_type.and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Ok(EventStream {
            body: response.into_body(),
            pending: String::new(),
            connection,
        })
    }

    /// The next event (comments skipped), or `None` if none arrives within
    /// `wait` or the stream ends.
    pub async fn next_within(&mut self, wait: std::time::Duration) -> Option<Event> {
        tokio::time::timeout(wait, self.next()).await.ok().flatten()
    }

    /// Whether the stream ends (the body finishes or the connection
    /// closes) within `wait`; events arriving meanwhile are skipped.
    pub async fn ends_within(&mut self, wait: std::time::Duration) -> bool {
        tokio::time::timeout(wait, async { while self.next().await.is_some() {} })
            .await
            .is_ok()
    }

    /// The next `n` events, each arriving within ten seconds.
    pub async fn take(&mut self, n: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            match self.next_within(std::time::Duration::from_secs(10)).await {
                Some(e) => events.push(e),
                None => panic!("only {} of {n} events arrived: {events:#?}", events.len()),
            }
        }
        events
    }

    async fn next(&mut self) -> Option<Event> {
        use http_body_util::BodyExt;
        loop {
            while let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Some(event);
                }
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                self.pending
                    .push_str(std::str::from_utf8(&data).expect("UTF-8 events"));
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// One event block; `None` for a comment-only block.
fn parse_event(block: &str) -> Option<Event> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).expect("event data is JSON"));
        } else {
            assert!(
                line.is_empty() || line.starts_with(':'),
                "unexpected SSE line {line:?}"
            );
        }
    }
    let data = data?;
    Some(Event {
        id: id.expect("every event has an id"),
        event: event.expect("every event has a type"),
        data,
    })
}

/// The log's size and the inbox length of each of `agencies`: what a
/// refused request must leave unchanged.
pub async fn snapshot(fed: &Federation, agencies: &[&str]) -> (u64, Vec<usize>) {
    let mut sizes = Vec::new();
    let mut size = 0;
    for agency in agencies {
        let mut client = fed.client(agency);
        size = log_size(&mut client).await;
        sizes.push(inbox_len(&mut client).await);
    }
    (size, sizes)
}

/// Stops the gateway and checks that `xgate audit replay` recomputes the
/// stored state, signatures included.
pub fn replays_clean(fed: Federation) {
    let Federation { root, gateway } = fed;
    gateway.stop();
    let out = replay_data(root.path(), &[]).expect_ok();
    assert!(out.contains("the stored state equals"), "{out}");
}

/// `xgate audit replay` of the (stopped) gateway's data directory under
/// `root`, with its registry and the `extra` arguments.
pub fn replay_data(root: &Path, extra: &[&str]) -> xgate_tests::Run {
    let data = root.join("data").display().to_string();
    let registry = root.join("pki/registry.toml").display().to_string();
    let mut args = vec![
        "audit",
        "replay",
        "--data-dir",
        &data,
        "--registry",
        &registry,
    ];
    args.extend_from_slice(extra);
    xgate().run(&args, b"")
}

/// The gateway's `host:port`, for raw connections.
pub fn address(fed: &Federation) -> String {
    fed.gateway.url().trim_start_matches("https://").to_owned()
}

/// A raw TLS stream to the gateway as `agency` (its client certificate),
/// offering `alpn`: for tests that write HTTP, or nothing, by hand.
pub async fn raw_tls(
    fed: &Federation,
    agency: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let pki = fed.pki();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join("ca.crt")).expect("ca") {
        roots.add(c.expect("cert")).expect("root");
    }
    let chain = CertificateDer::pem_file_iter(pki.join(agency).join("tls.crt"))
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_file(pki.join(agency).join("tls.key")).expect("key");
    let mut config = rustls::ClientConfig::builder_with_provider(xgate_server::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth");
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(address(fed))
        .await
        .expect("tcp");
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("handshake")
}

/// Every file under `dir`, at any depth (directories themselves left out).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

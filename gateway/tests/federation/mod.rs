//! Helpers shared by the gateway's end-to-end tests: a federation PKI made
//! by the real `xgate certs init`, a real `xgate serve` on a loopback port,
//! and agency clients speaking mutual TLS to it.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use xgate::client::{Client, EnvelopeSigner, Protocol, Reply};
use xgate::registry::AgencyId;
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
        let data = self.data();
        let out = xgate()
            .run(
                &["log", "key", "--data-dir", &data.display().to_string()],
                b"",
            )
            .expect_ok();
        xgate_ledger::NoteVerifier::parse(out.trim()).expect("verifier key")
    }
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
    client
        .request(
            Method::POST,
            "/v1/envelopes",
            Some("application/jose"),
            jws.as_bytes().to_vec(),
        )
        .await
        .expect("a response")
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

/// How many envelopes wait in the client's inbox.
pub async fn inbox_len(client: &mut Client) -> usize {
    let page = get_json(client, "/v1/inbox", StatusCode::OK).await;
    page["envelopes"].as_array().map_or(0, Vec::len)
}

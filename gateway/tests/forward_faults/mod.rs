//! Helpers of `forwarding_faults.rs`: a federation of real gateways on
//! loopback with the files and clients a test needs around it (an agency's
//! or a gateway's own mutual-TLS client, the outbox and inbox as lists,
//! the log's size), a proof that receipts are still in a log as it now
//! stands (recomputed from its public tiles), a stream of records from
//! agencies of one gateway ([`stream`]) and receipts forged with a
//! gateway's own log key ([`forge`]).

#![allow(dead_code)] // each test uses a different subset

pub mod forge;
pub mod stream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::{Method, StatusCode};
use serde_json::Value;
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate::tiles::{Edge, Fetcher, LogClient};
use xgate_ledger::{NoteVerifier, verify_checkpoint};
use xgate_server::receipt::Receipt;
use xgate_server::registry::Registry;
use xgate_tests::federation::Federation;
use xgate_tests::{Run, Xgate};

// Shared with the other end-to-end tests.
pub use crate::federation::{error_code, id, log_size};

/// The binary cargo built for this package.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xgate"))
}

/// The `xgate` command line.
pub fn xgate() -> Xgate {
    Xgate::new(bin())
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// A single-threaded runtime for driving clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

thread_local! {
    /// The runtime [`block`] runs on: one per test thread, so that a
    /// client's connection (a task on it) outlives each call.
    static RUNTIME: tokio::runtime::Runtime = runtime();
}

/// Runs `future` to completion on this thread's runtime.
pub fn block<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(future))
}

/// The envelope id of a compact JWS: lowercase hex SHA-256.
pub fn envelope_id(jws: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(jws.as_bytes()))
}

/// A federation on loopback and what its tests read from it.
pub struct Net {
    /// The running gateways.
    pub fed: Federation,
    /// The federation's registry, as `certs init` wrote it.
    pub registry: Registry,
    /// Holds the PKI and every data directory; dropped last.
    pub tmp: tempfile::TempDir,
}

impl Net {
    /// Starts `layout` (each gateway with the agencies it serves) with
    /// `env` added to every gateway's environment (`XGATE_LOG=warn`
    /// unless `env` sets it).
    pub fn start(layout: &[(&str, &[&str])], env: &[(&str, &str)]) -> Net {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut all = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "XGATE_LOG") {
            all.push(("XGATE_LOG", "warn"));
        }
        let fed = Federation::start(bin(), tmp.path(), layout, &all);
        let registry = Registry::load(&fed.pki().join("registry.toml")).expect("registry");
        Net { fed, registry, tmp }
    }

    /// The PKI directory.
    pub fn pki(&self) -> PathBuf {
        self.fed.pki()
    }

    /// The federation's CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.pki().join(xgate_server::pki::CA_CERT)
    }

    /// A scratch file path under the federation's directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Gateway `gateway`'s log key as the registry lists it.
    pub fn log_key(&self, gateway: &str) -> String {
        self.registry
            .gateway(&gateway.parse().expect("gateway id"))
            .expect("a registered gateway")
            .log_key
            .clone()
    }

    /// Gateway `gateway`'s log key, parsed.
    pub fn verifier(&self, gateway: &str) -> NoteVerifier {
        NoteVerifier::parse(&self.log_key(gateway)).expect("a verifier key")
    }

    /// A client of `agency` at gateway `gateway`.
    pub fn agency(&self, agency: &str, gateway: &str) -> Client {
        Client::for_agency(
            &self.pki(),
            &id(agency),
            &self.fed.url(gateway),
            Protocol::Auto,
        )
        .expect("agency client")
    }

    /// A client presenting gateway `caller`'s own certificate
    /// (`gateways/<caller>/tls.{crt,key}`) to gateway `target`.
    pub fn as_gateway(&self, caller: &str, target: &str) -> Client {
        let dir = self.pki().join("gateways").join(caller);
        Client::new(
            &self.ca(),
            &dir.join(xgate_server::pki::TLS_CERT),
            &dir.join(xgate_server::pki::TLS_KEY),
            &self.fed.url(target),
            Protocol::Auto,
        )
        .expect("gateway client")
    }

    /// The envelope signer of `agency`.
    pub fn signer(&self, agency: &str) -> EnvelopeSigner {
        EnvelopeSigner::for_agency(&self.pki(), &id(agency)).expect("signer")
    }

    /// `xgate outbox --wait WAIT` of `agency` at `gateway`.
    pub fn outbox(&self, agency: &str, gateway: &str, wait: u32) -> Run {
        xgate().run(
            &[
                "outbox",
                "--pki",
                &arg(&self.pki()),
                "--as",
                agency,
                "--gateway",
                &self.fed.url(gateway),
                "--wait",
                &wait.to_string(),
            ],
            b"",
        )
    }

    /// `agency`'s outbox at `gateway` once nothing is queued (within
    /// `wait` seconds, else the test fails), by envelope id; each id
    /// listed once.
    pub fn settled(&self, agency: &str, gateway: &str, wait: u32) -> BTreeMap<String, Value> {
        let lines = json_lines(&self.outbox(agency, gateway, wait).expect_ok());
        let mut by_id = BTreeMap::new();
        for line in lines {
            let id = line["id"].as_str().expect("an id").to_owned();
            assert!(
                by_id.insert(id.clone(), line).is_none(),
                "{id} is listed twice in {agency}'s outbox"
            );
        }
        by_id
    }

    /// Every envelope in `agency`'s inbox at `gateway`, oldest first, read
    /// page by page without acknowledging any.
    pub fn inbox(&self, agency: &str, gateway: &str) -> Vec<Value> {
        let mut client = self.agency(agency, gateway);
        block(async move {
            let mut path = "/v1/inbox".to_owned();
            let mut all = Vec::new();
            loop {
                let page = get_json(&mut client, &path).await;
                all.extend(page["envelopes"].as_array().expect("envelopes").clone());
                match page["next"].as_u64() {
                    Some(next) => path = format!("/v1/inbox?after={next}"),
                    None => return all,
                }
            }
        })
    }

    /// Gateway `gateway`'s log size as its latest checkpoint says, read
    /// by `agency` (one it serves).
    pub fn log_size(&self, agency: &str, gateway: &str) -> u64 {
        let mut client = self.agency(agency, gateway);
        block(async move { log_size(&mut client).await })
    }

    /// The value of `series` in gateway `gateway`'s `/metrics`, read by
    /// `agency`.
    pub fn metric(&self, agency: &str, gateway: &str, series: &str) -> Option<f64> {
        let mut client = self.agency(agency, gateway);
        block(async move {
            let reply = client
                .request(Method::GET, "/metrics", None, Vec::new())
                .await
                .expect("a response");
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Asserts that each of `receipts`, issued by gateway `gateway`, is in
    /// its log as it stands now. The whole log is read from its public
    /// tiles (every entry bundle, each entry checked against its level-0
    /// tile) and folded into the root of the log's current checkpoint,
    /// signed by the registry's key; then each receipt verifies with that
    /// key, its entry is the log's entry at its index, and its checkpoint's
    /// root is the root of the log's first `tree_size` entries (so it is
    /// consistent with the current one, which includes the entry). The
    /// same as `xgate audit verify-receipt --log` checks, for many
    /// receipts at the cost of one read of the log.
    pub fn assert_in_log(&self, gateway: &str, receipts: &[&Receipt]) {
        if receipts.is_empty() {
            return;
        }
        let key = self.verifier(gateway);
        let public = self.fed.public_url(gateway).to_owned();
        let ca = self.ca();
        let last = receipts.iter().map(|r| r.log_index).max().unwrap_or(0);
        let (now, entries, roots) = block(async move {
            let mut log = LogClient::new(Fetcher::new(&public, Some(&ca)).expect("fetcher"));
            // The log publishes at most once a second: its checkpoint may
            // trail the last commit (or not be there yet) for a while.
            let deadline = Instant::now() + Duration::from_secs(15);
            let now = loop {
                let now = match log.checkpoint().await {
                    Ok(note) => Some(verify_checkpoint(&note, &key).expect("signed by its key")),
                    Err(e) if Instant::now() > deadline => panic!("{gateway}'s checkpoint: {e}"),
                    Err(_) => None,
                };
                match now {
                    Some(now) if now.size > last || Instant::now() > deadline => break now,
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let mut entries = Vec::new();
            let mut edge = Edge::default();
            let mut roots = BTreeMap::new();
            for bundle in 0..now.size.div_ceil(256) {
                for (entry, leaf) in log.bundle(&now, bundle).await.expect("an entry bundle") {
                    edge.push(leaf);
                    roots.insert(edge.size(), edge.root());
                    entries.push(entry);
                }
            }
            assert_eq!(
                edge.root(),
                now.root,
                "{gateway}'s tiles are not its checkpoint's tree"
            );
            (now, entries, roots)
        });
        for receipt in receipts {
            let index = receipt.log_index;
            let own = receipt
                .verify(&self.verifier(gateway))
                .unwrap_or_else(|e| panic!("{gateway}'s receipt for entry {index}: {e}"));
            let entry = B64.decode(&receipt.entry).expect("base64 entry");
            let logged = usize::try_from(index).ok().and_then(|i| entries.get(i));
            assert_eq!(
                logged,
                Some(&entry),
                "{gateway}'s log (size {}) does not hold the receipt's entry at {index}",
                now.size
            );
            assert_eq!(
                roots.get(&own.size),
                Some(&own.root),
                "{gateway}: the checkpoint of size {} of the receipt for entry {index} \
                 is not a prefix of the log now",
                own.size
            );
        }
    }

    /// `xgate audit verify-receipt --receipt R --key KEY --log PUBLIC --ca
    /// CA` of `receipt` against gateway `gateway`'s log: its output.
    pub fn verify_receipt_cli(&self, gateway: &str, receipt: &Receipt) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.scratch(&format!("receipt-{n}.json"));
        std::fs::write(&file, serde_json::to_vec(receipt).expect("encode")).expect("write");
        xgate()
            .run(
                &[
                    "audit",
                    "verify-receipt",
                    "--receipt",
                    &arg(&file),
                    "--key",
                    &self.log_key(gateway),
                    "--log",
                    self.fed.public_url(gateway),
                    "--ca",
                    &arg(&self.ca()),
                ],
                b"",
            )
            .expect_ok()
    }
}

/// One JSON value per line.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A receipt as JSON (a forward's, an outbox's) parsed.
pub fn receipt(value: &Value) -> Receipt {
    serde_json::from_value(value.clone()).expect("a receipt")
}

/// GETs `path` and parses the JSON body, asserting 200.
pub async fn get_json(client: &mut Client, path: &str) -> Value {
    let reply = client
        .request(Method::GET, path, None, Vec::new())
        .await
        .expect("a response");
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "GET {path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).expect("JSON body")
}

//! Several `xgate serve` replicas on one PostgreSQL database (issue 23):
//! one log, whichever replica an agency talks to.
//!
//! - Two replicas take envelopes from several agencies at once: every
//!   receipt, from either, verifies with the one log key; the indices are
//!   exactly `0..N`; a receipt one replica handed out is proven by the
//!   other (its inclusion proof API, and its public tlog-tiles listener,
//!   whose bundles recompute its checkpoint's root); the other's inboxes
//!   hold what the first accepted; the log verifies whole.
//! - The rules that depend on state hold across replicas: one envelope
//!   sent to both at the same instant, again and again, is accepted once
//!   and refused `replayed` otherwise; one tag registered through both at
//!   once is registered once (`asset_exists`); an offer answered through
//!   both at once is answered once (`no_open_offer`); a single-use
//!   break-the-glass grant is used once (`grant_used`) and reviewed once
//!   (`already_reviewed`).
//! - `kill -9` under load: `xgate bench` drives both replicas, one of them
//!   is SIGKILLed at a random instant and started again on its data
//!   directory, round after round. No acknowledged receipt is lost (each is
//!   in the log at its index, as the survivor's public tiles show, and its
//!   inclusion proof from the survivor verifies), no index is used twice,
//!   no `(iss, jti)` is logged twice, the log verifies, and the survivor
//!   answered throughout (its generator saw no error at all, and it
//!   accepted an envelope while the other was down).
//!
//! CI runs 3 kills; `XGATE_CRASH_ROUNDS=N` runs N (as `serve_crash`).

mod federation;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::future::join_all;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use xgate::client::{Client, EnvelopeSigner, Protocol, Reply};
use xgate::tiles::{Edge, Fetcher, LogClient};
use xgate_ledger::pg::PgLog;
use xgate_ledger::{
    Checkpoint, Hash, InclusionProof, NoteSigner, NoteVerifier, OpenOptions, leaf_hash,
    verify_checkpoint, verify_inclusion,
};
use xgate_server::entry::Logged;
use xgate_server::pki::SAMPLE_AGENCIES;
use xgate_server::receipt::Receipt;
use xgate_tests::Gateway;
use xgate_tests::postgres::{TestDatabase, TestPostgres};
use xgate_tests::replicas::{Replica, copy_data_dir};

use federation::assets::{ACCEPT, Desk, REGISTER, REJECT, answer, register_body};
use federation::{body, error_code, get_json, id, make_audited_pki, runtime};

const BIN: &str = env!("CARGO_BIN_EXE_xgate");

/// The generator's mix: every kind it can send without set-up.
const MIX: &str = "record.send=6,medical.request=1,asset.register=1";

/// A log on a fresh database and the replicas serving it.
struct Site {
    root: tempfile::TempDir,
    db: TestDatabase,
    replicas: Vec<Replica>,
}

impl Site {
    /// A PKI for `agencies` and `auditors`, a fresh database, and `n`
    /// replicas: the first creates the log's key, the others start on
    /// copies of its data directory.
    fn start(pg: &TestPostgres, agencies: &[&str], auditors: &[&str], n: usize) -> Site {
        let root = tempfile::tempdir().expect("tempdir");
        make_audited_pki(&root.path().join("pki"), agencies, auditors);
        let db = pg.database();
        let pki = root.path().join("pki").display().to_string();
        let first = Replica::first(
            BIN,
            &root.path().join("r0"),
            db.url(),
            &["--pki", &pki],
            &[("XGATE_LOG", "info")],
        );
        let mut replicas = vec![first];
        for i in 1..n {
            let next = replicas[0].another(&root.path().join(format!("r{i}")));
            replicas.push(next);
        }
        Site { root, db, replicas }
    }

    fn pki(&self) -> PathBuf {
        self.root.path().join("pki")
    }

    fn ca(&self) -> PathBuf {
        self.pki().join("ca.crt")
    }

    fn gateway(&self, replica: usize) -> &Gateway {
        self.replicas[replica].gateway()
    }

    /// The log's verifier key, from the first replica's data directory.
    fn key(&self) -> NoteVerifier {
        log_key(self.replicas[0].data_dir())
    }

    /// A client of `agency` connected to `replica`.
    fn client(&self, replica: usize, agency: &str) -> Client {
        let url = self.gateway(replica).url();
        Client::for_agency(&self.pki(), &id(agency), url, Protocol::Http1).expect("client")
    }

    fn signer(&self, agency: &str) -> EnvelopeSigner {
        EnvelopeSigner::for_agency(&self.pki(), &id(agency)).expect("signer")
    }

    /// `agency`'s desk at `replica`.
    fn desk(&self, replica: usize, agency: &str) -> Desk {
        Desk {
            client: self.client(replica, agency),
            signer: self.signer(agency),
        }
    }

    /// Opens the log in this process, as one more replica would (with a
    /// copy of the key), and recomputes it whole.
    fn verify_log(&self) -> xgate_ledger::VerifyReport {
        let dir = self.root.path().join("auditor");
        if !dir.exists() {
            copy_data_dir(self.replicas[0].data_dir(), &dir).expect("copy the key");
        }
        let log = PgLog::open(self.db.url(), &dir, &OpenOptions::default()).expect("open the log");
        log.verify().expect("the log verifies")
    }
}

/// The verifier key of the signing key in a replica's data directory
/// (`checkpoint.key`: all the directory holds of a log on PostgreSQL).
fn log_key(data: &Path) -> NoteVerifier {
    let text = std::fs::read_to_string(data.join("checkpoint.key")).expect("checkpoint.key");
    NoteSigner::from_private_key(text.trim())
        .expect("a signing key")
        .verifier()
}

/// A multi-threaded runtime: requests to both replicas really at once.
fn threads() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Signs a `record.send` from `signer` to `to`.
fn record(signer: &EnvelopeSigner, to: &str, text: &str) -> String {
    signer
        .sign(&id(to), "record.send", body(text), 120, None)
        .expect("sign")
}

/// The receipt of a 201.
fn receipt_of(reply: &Reply) -> Receipt {
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).expect("a receipt")
}

fn unb64_hash(text: &str) -> Hash {
    Hash::from_slice(&B64.decode(text).expect("base64")).expect("a hash")
}

/// The log as `gateway`'s public tlog-tiles listener serves it, once its
/// checkpoint covers `size` entries: the checkpoint, verified with `key`,
/// and every entry up to it, read from the entry bundles (each checked
/// against its level-0 tile) whose leaf hashes recompute the checkpoint's
/// root here.
fn public_log(
    gateway: &Gateway,
    ca: &Path,
    key: &NoteVerifier,
    size: u64,
) -> (Checkpoint, Vec<Vec<u8>>) {
    runtime().block_on(async {
        let fetcher = Fetcher::new(gateway.public_url(), Some(ca)).expect("fetcher");
        let mut client = LogClient::new(fetcher);
        let deadline = Instant::now() + Duration::from_secs(30);
        let checkpoint = loop {
            if let Ok(note) = client.checkpoint().await {
                let checkpoint = verify_checkpoint(&note, key).expect("signed with the log key");
                if checkpoint.size >= size {
                    break checkpoint;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the public checkpoint never reached size {size}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut edge = Edge::default();
        let mut entries = Vec::new();
        for bundle in 0..checkpoint.size.div_ceil(256) {
            let got = client.bundle(&checkpoint, bundle).await.expect("a bundle");
            for (entry, leaf) in got {
                edge.push(leaf);
                entries.push(entry);
            }
        }
        assert_eq!(edge.size(), checkpoint.size);
        assert_eq!(
            edge.root(),
            checkpoint.root,
            "the public bundles recompute the root"
        );
        (checkpoint, entries)
    })
}

/// The checkpoint `client`'s replica serves through its API once it
/// covers `size` entries, verified with `key`.
async fn api_checkpoint(client: &mut Client, key: &NoteVerifier, size: u64) -> Checkpoint {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let note = federation::checkpoint_note(client).await;
        let checkpoint = verify_checkpoint(&note, key).expect("signed with the log key");
        if checkpoint.size >= size {
            return checkpoint;
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoint never reached size {size}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks that `client`'s replica proves each of `receipts` (an inclusion
/// proof to the checkpoint it serves, of at least every receipt's index)
/// and serves its entry at its index.
async fn proven_by(client: &mut Client, key: &NoteVerifier, receipts: &[&Receipt]) {
    let size = receipts.iter().map(|r| r.log_index + 1).max().unwrap_or(0);
    let checkpoint = api_checkpoint(client, key, size).await;
    for receipt in receipts {
        let leaf = unb64_hash(&receipt.leaf_hash);
        let path = format!(
            "/v1/log/proof/inclusion?index={}&size={}",
            receipt.log_index, checkpoint.size
        );
        let proof = get_json(client, &path, StatusCode::OK).await;
        assert_eq!(proof["leaf_hash"], receipt.leaf_hash.as_str(), "{path}");
        let proof = InclusionProof {
            leaf_index: receipt.log_index,
            tree_size: checkpoint.size,
            hashes: proof["hashes"]
                .as_array()
                .expect("hashes")
                .iter()
                .map(|h| unb64_hash(h.as_str().expect("a string")))
                .collect(),
        };
        verify_inclusion(&proof, &leaf, &checkpoint.root)
            .unwrap_or_else(|e| panic!("entry {} is not proven: {e}", receipt.log_index));
        let path = format!("/v1/log/entries/{}", receipt.log_index);
        let entry = get_json(client, &path, StatusCode::OK).await;
        assert_eq!(entry["leaf_hash"], receipt.leaf_hash.as_str(), "{path}");
    }
}

/// Every envelope id in `agency`'s inbox at `client`'s replica.
async fn inbox(client: &mut Client) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut path = "/v1/inbox".to_owned();
    loop {
        let page = get_json(client, &path, StatusCode::OK).await;
        for item in page["envelopes"].as_array().expect("envelopes") {
            ids.insert(item["id"].as_str().expect("id").to_owned());
        }
        match page["next"].as_u64() {
            Some(after) => path = format!("/v1/inbox?after={after}"),
            None => return ids,
        }
    }
}

/// The entry a receipt carries.
fn logged(receipt: &Receipt) -> Logged {
    Logged::parse(&B64.decode(&receipt.entry).expect("base64")).expect("a gateway entry")
}

#[test]
fn two_replicas_append_to_one_log_and_either_proves_it() {
    let pg = xgate_tests::require_postgres!();
    let site = Site::start(pg, &SAMPLE_AGENCIES, &[], 2);
    let key = site.key();
    const EACH: usize = 20;

    // Every agency sends through both replicas at once, each to the next.
    let rt = threads();
    let sent: Vec<(usize, Receipt)> = rt.block_on(async {
        let mut tasks = Vec::new();
        for replica in 0..2 {
            for (i, agency) in SAMPLE_AGENCIES.iter().enumerate() {
                let to = SAMPLE_AGENCIES[(i + 1) % SAMPLE_AGENCIES.len()];
                let mut client = site.client(replica, agency);
                let signer = site.signer(agency);
                tasks.push(tokio::spawn(async move {
                    let mut receipts = Vec::new();
                    for n in 0..EACH {
                        let jws = record(&signer, to, &format!("{agency} {n} via {replica}"));
                        let reply = client.submit(jws).await.expect("a response");
                        receipts.push((replica, receipt_of(&reply)));
                    }
                    receipts
                }));
            }
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("a sender"));
        }
        all
    });
    drop(rt);

    let total = 2 * SAMPLE_AGENCIES.len() * EACH;
    let mut indices: Vec<u64> = sent.iter().map(|(_, r)| r.log_index).collect();
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..total as u64).collect::<Vec<_>>(),
        "one log, no gap, no index twice"
    );
    for (_, receipt) in &sent {
        receipt.verify(&key).expect("every receipt verifies");
    }
    for replica in 0..2 {
        assert!(
            sent.iter().any(|(r, _)| *r == replica),
            "both replicas took some"
        );
    }

    // What the first replica acknowledged, the second proves and delivers.
    let by_first: Vec<&Receipt> = sent
        .iter()
        .filter(|(r, _)| *r == 0)
        .map(|(_, r)| r)
        .collect();
    runtime().block_on(async {
        let mut client = site.client(1, "state");
        proven_by(&mut client, &key, &by_first).await;
        for agency in SAMPLE_AGENCIES {
            let waiting = inbox(&mut site.client(1, agency)).await;
            for receipt in by_first.iter().filter(|r| logged(r).aud == agency) {
                assert!(
                    waiting.contains(&receipt.id),
                    "{agency}'s inbox at the second replica lacks {}",
                    receipt.id
                );
            }
        }
    });
    let (checkpoint, entries) = public_log(site.gateway(1), &site.ca(), &key, total as u64);
    for (_, receipt) in &sent {
        let entry = &entries[receipt.log_index as usize];
        assert_eq!(B64.encode(leaf_hash(entry).as_bytes()), receipt.leaf_hash);
    }
    let report = site.verify_log();
    assert!(report.size >= checkpoint.size, "verified {}", report.size);
    assert!(report.checkpoints > 0);
}

#[test]
fn what_one_replica_acknowledged_the_other_proves_at_once() {
    let pg = xgate_tests::require_postgres!();
    let site = Site::start(pg, &SAMPLE_AGENCIES, &[], 2);
    let key = site.key();
    runtime().block_on(async {
        let (mut first, mut second) = (site.client(0, "state"), site.client(1, "state"));
        let mut at_second = site.client(1, "gsa");
        let signer = site.signer("state");
        // Each receipt races the second replica's cached size, which it
        // reads again only every few milliseconds unless asked for more:
        // an index the first handed out must be found at once.
        for n in 0..30 {
            let reply = first
                .submit(record(&signer, "gsa", &format!("at once {n}")))
                .await
                .expect("a response");
            let receipt = receipt_of(&reply);
            let (index, size) = (receipt.log_index, receipt.tree_size);
            let path = format!("/v1/log/entries/{index}");
            let entry = get_json(&mut second, &path, StatusCode::OK).await;
            assert_eq!(entry["leaf_hash"], receipt.leaf_hash.as_str(), "{path}");
            let path = format!("/v1/log/proof/inclusion?index={index}&size={size}");
            let proof = get_json(&mut second, &path, StatusCode::OK).await;
            assert_eq!(proof["root_hash"], receipt_root(&receipt, &key), "{path}");
            let path = format!("/v1/log/proof/consistency?from=1&to={size}");
            get_json(&mut second, &path, StatusCode::OK).await;
            assert!(
                inbox(&mut at_second).await.contains(&receipt.id),
                "gsa's inbox at the second replica lacks {}",
                receipt.id
            );
        }
    });
}

#[test]
fn an_envelope_acknowledged_on_two_replicas_at_once_is_removed_once() {
    let pg = xgate_tests::require_postgres!();
    let site = Site::start(pg, &SAMPLE_AGENCIES, &[], 2);
    let signer = site.signer("state");
    runtime().block_on(async {
        let mut sender = site.client(0, "state");
        let mut ids = Vec::new();
        for n in 0..20 {
            let reply = sender
                .submit(record(&signer, "gsa", &format!("ack race {n}")))
                .await
                .expect("a response");
            ids.push(receipt_of(&reply).id);
        }
        let (mut first, mut second) = (site.client(0, "gsa"), site.client(1, "gsa"));
        for id in &ids {
            let path = format!("/v1/inbox/{id}/ack");
            let (a, b) = tokio::join!(
                first.request(Method::POST, &path, None, Vec::new()),
                second.request(Method::POST, &path, None, Vec::new()),
            );
            let mut statuses = [a.expect("a response").status, b.expect("a response").status];
            statuses.sort();
            assert_eq!(
                statuses,
                [StatusCode::OK, StatusCode::NOT_FOUND],
                "{id}: exactly one replica removes it, the other has no such envelope"
            );
        }
        assert!(inbox(&mut first).await.is_empty(), "every envelope is gone");
    });
}

/// The root hash of the checkpoint a receipt carries, base64.
fn receipt_root(receipt: &Receipt, key: &NoteVerifier) -> String {
    let checkpoint = verify_checkpoint(&receipt.checkpoint, key).expect("signed with the log key");
    B64.encode(checkpoint.root.as_bytes())
}

/// Sends each of `jws` through the client beside it, all at once; the
/// replies in the same order.
async fn at_once(sends: Vec<(&mut Client, String)>) -> Vec<Reply> {
    join_all(
        sends
            .into_iter()
            .map(|(client, jws)| async move { client.submit(jws).await.expect("a response") }),
    )
    .await
}

/// Asserts that exactly one of `replies` is a 201 and every other is
/// refused `409 code`; returns the index of the 201.
fn one_wins(replies: &[Reply], code: &str, what: &str) -> usize {
    let winners: Vec<usize> = (0..replies.len())
        .filter(|&i| replies[i].status == StatusCode::CREATED)
        .collect();
    assert_eq!(winners.len(), 1, "{what}: {replies:?}");
    for (i, reply) in replies.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(
                (reply.status, error_code(reply)),
                (StatusCode::CONFLICT, code.to_owned()),
                "{what}"
            );
        }
    }
    winners[0]
}

#[test]
fn replay_asset_and_medical_rules_hold_across_replicas() {
    let pg = xgate_tests::require_postgres!();
    let agencies = ["state", "treasury", "gsa", "hhs"];
    let site = Site::start(pg, &agencies, &["gao"], 2);
    let key = site.key();
    runtime().block_on(async {
        // Two connections of `state` to each replica, all open before.
        let mut state: Vec<Client> = [0, 1, 0, 1].map(|r| site.client(r, "state")).into();
        for client in &mut state {
            client.connect().await.expect("connect");
        }
        let signer = site.signer("state");
        let mut winners = [0; 2];
        for round in 0..15 {
            let jws = record(&signer, "treasury", &format!("once {round}"));
            let sends = state.iter_mut().map(|c| (c, jws.clone())).collect();
            let replies = at_once(sends).await;
            let won = one_wins(
                &replies,
                "replayed",
                &format!("the same jti, round {round}"),
            );
            receipt_of(&replies[won]).verify(&key).expect("verifies");
            winners[won % 2] += 1;
        }
        eprintln!("first replica won {}, second {}", winners[0], winners[1]);

        let [mut t0, mut t1] = [0, 1].map(|r| site.desk(r, "treasury"));
        let [mut g0, mut g1] = [0, 1].map(|r| site.desk(r, "gsa"));
        let [mut s0, mut s1] = [0, 1].map(|r| site.desk(r, "state"));
        for desk in [&mut t0, &mut t1, &mut g0, &mut g1, &mut s0, &mut s1] {
            desk.client.connect().await.expect("connect");
        }
        for round in 0..5 {
            // One tag registered by two agencies, one through each replica.
            let tag = format!("RACE-{round}");
            let (a, _) = t0.sign(
                "treasury",
                REGISTER,
                register_body(&tag, "treasury", "p-1", "HQ"),
            );
            let (b, _) = g1.sign("gsa", REGISTER, register_body(&tag, "gsa", "p-2", "Depot"));
            let replies = at_once(vec![(&mut t0.client, a), (&mut g1.client, b)]).await;
            let won = one_wins(&replies, "asset_exists", &format!("register {tag}"));
            let holder = ["treasury", "gsa"][won];
            for desk in [&mut t0, &mut g1] {
                let mine = desk.me() == holder;
                assert_eq!(visible(desk, &tag).await, mine, "{tag}");
            }

            // An offer answered twice at once: two acceptances, or an
            // acceptance and a rejection, one through each replica.
            let offering = if won == 0 { &mut t0 } else { &mut g1 };
            let (_, offer) = offering.offer(&tag, "state", "p-3").await;
            let first = s0.sign(holder, ACCEPT, answer(&tag, &offer)).0;
            let kind = if round % 2 == 0 { ACCEPT } else { REJECT };
            let second = s1.sign(holder, kind, answer(&tag, &offer)).0;
            let replies = at_once(vec![(&mut s0.client, first), (&mut s1.client, second)]).await;
            let won = one_wins(&replies, "no_open_offer", &format!("answers to {offer}"));
            let accepted = won == 0 || kind == ACCEPT;
            let expected = if accepted { "state" } else { holder };
            for desk in [&mut t0, &mut t1, &mut g0, &mut g1] {
                if desk.me() == holder {
                    let asset = desk.show(&tag).await;
                    assert_eq!(asset["holder"]["agency"], expected, "{tag} at {round}");
                    assert_eq!(asset["offer"], Value::Null);
                }
            }
        }
    });
    runtime().block_on(medical(&site, &key));
    site.verify_log();
}

/// Whether `tag` is visible to `desk`'s agency (200) rather than hidden
/// (404).
async fn visible(desk: &mut Desk, tag: &str) -> bool {
    let path = format!("/v1/assets/{tag}");
    let reply = desk
        .client
        .request(Method::GET, &path, None, Vec::new())
        .await
        .expect("a response");
    match reply.status {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => false,
        other => panic!("GET {path}: {other}"),
    }
}

/// A break-the-glass request from `state` to `hhs`; then two responses,
/// and two reviews, each pair sent through both replicas at once.
async fn medical(site: &Site, key: &NoteVerifier) {
    let registry = xgate_server::registry::Registry::load(&site.pki().join("registry.toml"))
        .expect("registry");
    let mut state = site.desk(0, "state");
    let [mut h0, mut h1] = [0, 1].map(|r| site.desk(r, "hhs"));
    let mut request = json!({"subject": "hhs-mrn-000123", "purpose": "ETREAT",
        "incident": "INC-1", "responder": {"name": "Dr. Casey Example", "role": "medical-officer"},
        "sections": ["allergies", "medications"]});
    let state_key = &registry.get(&id("state")).expect("state").encryption_key;
    request["reply_key"] = state_key.get("kid").cloned().expect("kid");
    let (_, jti) = state.accepted("hhs", "medical.request", request).await;
    let response = || {
        let payload =
            xgate_server::medical::jwe::encrypt(br#"{"resourceType":"Bundle"}"#, state_key)
                .expect("encrypt");
        json!({"request": jti, "payload": payload})
    };
    for desk in [&mut h0, &mut h1] {
        desk.client.connect().await.expect("connect");
    }
    let a = h0.sign("state", "medical.response", response()).0;
    let b = h1.sign("state", "medical.response", response()).0;
    let replies = at_once(vec![(&mut h0.client, a), (&mut h1.client, b)]).await;
    let won = one_wins(&replies, "grant_used", "two uses of a one-use grant");
    receipt_of(&replies[won]).verify(key).expect("verifies");
    let note = json!({"request": jti, "outcome": "appropriate", "note": "a real emergency"});
    let a = h0.sign("hhs", "review.decision", note.clone()).0;
    let b = h1.sign("hhs", "review.decision", note).0;
    let replies = at_once(vec![(&mut h0.client, a), (&mut h1.client, b)]).await;
    one_wins(&replies, "already_reviewed", "two reviews of one request");
}

/// What `xgate bench --json` reported, and the receipts it kept.
struct BenchRun {
    report: Value,
    receipts: Vec<Receipt>,
}

/// `xgate bench` against one replica, writing its receipts to a file.
struct Bench {
    child: std::process::Child,
    receipts: PathBuf,
}

impl Bench {
    fn start(pki: &Path, gateway: &Gateway, receipts: PathBuf, seconds: u64) -> Bench {
        let child = Command::new(BIN)
            .args(["bench", "--pki"])
            .arg(pki)
            .args(["--gateway", gateway.url(), "--connections", "4"])
            .args(["--duration", &seconds.to_string(), "--envelopes", "3000"])
            .args(["--json", "--mix", MIX, "--receipts"])
            .arg(&receipts)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xgate bench");
        Bench { child, receipts }
    }

    /// Waits until the generator has written its first receipts.
    fn wait_for_receipts(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&self.receipts).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < deadline, "no receipts after a minute");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(self) -> BenchRun {
        let out = self.child.wait_with_output().expect("xgate bench");
        assert!(out.status.success(), "xgate bench failed");
        let report: Value = serde_json::from_slice(&out.stdout).expect("the bench report");
        let text = std::fs::read_to_string(&self.receipts).expect("receipts");
        let receipts: Vec<Receipt> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a receipt per line"))
            .collect();
        assert_eq!(
            Some(receipts.len() as u64),
            report["ok"].as_u64(),
            "a receipt per exchange: {report}"
        );
        BenchRun { report, receipts }
    }
}

/// Adds an acknowledged envelope's receipt to `acked`, which must not
/// hold its envelope yet.
fn keep(acked: &mut BTreeMap<String, Receipt>, receipt: Receipt) {
    let id = receipt.id.clone();
    assert!(
        acked.insert(id.clone(), receipt).is_none(),
        "{id} acknowledged twice"
    );
}

/// A pseudo-random number generator (xorshift64), seeded from the clock:
/// the seed is printed, for a rerun.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let seed = std::env::var("XGATE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(nanos | 1);
        eprintln!("XGATE_CRASH_SEED={seed}");
        Dice(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_replica_killed_under_load_loses_nothing_and_the_other_keeps_serving() {
    let pg = xgate_tests::require_postgres!();
    let rounds: usize = ["XGATE_CRASH_ROUNDS", "XGATE_GATEWAY_CRASH_ROUNDS"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut site = Site::start(pg, &SAMPLE_AGENCIES, &[], 2);
    let key = site.key();
    let mut dice = Dice::new();
    // Every acknowledged envelope, by id.
    let mut acked: BTreeMap<String, Receipt> = BTreeMap::new();
    for round in 0..rounds {
        let victim = dice.below(2) as usize;
        let survivor = 1 - victim;
        let file = |r: usize| site.root.path().join(format!("receipts-{round}-{r}.jsonl"));
        let benches = [0, 1].map(|r| Bench::start(&site.pki(), site.gateway(r), file(r), 6));
        benches[victim].wait_for_receipts();
        std::thread::sleep(Duration::from_millis(20 + dice.below(600)));
        site.replicas[victim].kill();

        // The survivor answers while the other is down.
        let probe = runtime().block_on(async {
            let mut client = site.client(survivor, "state");
            let jws = record(&site.signer("state"), "treasury", "while the other is down");
            receipt_of(&client.submit(jws).await.expect("a response"))
        });
        keep(&mut acked, probe);
        let [first, second] = benches;
        let (dead, alive) = if victim == 0 {
            (first, second)
        } else {
            (second, first)
        };
        let dead = dead.finish();
        let errors = dead.report["errors"].as_object().expect("errors");
        assert!(
            errors.keys().all(|k| k == "transport"),
            "round {round}: the killed replica's clients saw {}",
            dead.report
        );
        site.replicas[victim].start();
        let alive = alive.finish();
        assert_eq!(
            alive.report["errors"],
            json!({}),
            "round {round}: the survivor's clients saw errors"
        );
        assert!(
            !alive.receipts.is_empty(),
            "round {round}: {}",
            alive.report
        );
        eprintln!(
            "round {round}: killed replica {victim} after {} receipts; the survivor gave {}",
            dead.receipts.len(),
            alive.receipts.len()
        );
        for receipt in dead.receipts.into_iter().chain(alive.receipts) {
            keep(&mut acked, receipt);
        }
    }

    // Indices: never one twice; every receipt verifies offline.
    let mut by_index: BTreeMap<u64, &Receipt> = BTreeMap::new();
    for receipt in acked.values() {
        receipt
            .verify(&key)
            .unwrap_or_else(|e| panic!("receipt {}: {e}", receipt.id));
        if let Some(other) = by_index.insert(receipt.log_index, receipt) {
            panic!(
                "index {} given to {} and {}",
                receipt.log_index, other.id, receipt.id
            );
        }
    }
    let size = by_index.keys().next_back().map_or(0, |i| i + 1);
    // Every receipt's entry is in the log at its index, as both replicas'
    // public tiles show; no (iss, jti) twice in the whole log.
    for replica in 0..2 {
        let (_, entries) = public_log(site.gateway(replica), &site.ca(), &key, size);
        for (index, receipt) in &by_index {
            let entry = &entries[*index as usize];
            assert_eq!(
                B64.encode(leaf_hash(entry).as_bytes()),
                receipt.leaf_hash,
                "entry {index} at replica {replica}"
            );
        }
        let mut seen = BTreeSet::new();
        for (i, entry) in entries.iter().enumerate() {
            let entry = Logged::parse(entry).expect("a gateway entry");
            assert!(
                seen.insert((entry.iss, entry.jti)),
                "entry {i} repeats a jti"
            );
        }
    }
    // Inclusion proofs from each replica, for a sample of the receipts.
    let step = (by_index.len() / 60).max(1);
    let sample: Vec<&Receipt> = by_index.values().step_by(step).copied().collect();
    runtime().block_on(async {
        for replica in 0..2 {
            let mut client = site.client(replica, "gsa");
            proven_by(&mut client, &key, &sample).await;
        }
    });
    let report = site.verify_log();
    assert!(report.size >= size);
    for replica in &mut site.replicas {
        assert_eq!(replica.stop(), Some(0), "a clean stop");
    }
    eprintln!(
        "{} acknowledged envelopes checked after {rounds} kills; {} entries verified",
        acked.len(),
        report.size
    );
}

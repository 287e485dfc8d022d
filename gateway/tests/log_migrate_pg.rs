//! `xgate log migrate` across backends, against a real PostgreSQL: a
//! stopped gateway's data directory (records, inboxes partly acknowledged,
//! assets, a medical exchange) moves into an empty database, a gateway on
//! PostgreSQL goes on from it with the same data directory; then the
//! database moves back into a new data directory and a gateway on disk goes
//! on from that. At each end: the same entries (the same root at every
//! size), checkpoints, state and bodies, read through the ledger; the same
//! checkpoint served; every earlier receipt verifying against the new
//! gateway's proofs; the same inboxes with their envelopes; the medical
//! case and its encrypted answer; `xgate audit replay` and `xgate log
//! verify` passing; and new envelopes accepted after the old ones.

mod federation;

use std::path::{Path, PathBuf};

use http::StatusCode;
use serde_json::Value;
use xgate::client::{Client, Protocol};
use xgate_ledger::pg::PgLog;
use xgate_ledger::{
    Hash, InclusionProof, Ledger, Log, NoteVerifier, OpenOptions, StoredBody, verify_checkpoint,
    verify_consistency, verify_inclusion,
};
use xgate_server::receipt::Receipt;
use xgate_tests::Gateway;

use federation::{body, consistency_proof, get_json, id, runtime, submit, xgate};

/// The agencies whose inboxes are compared.
const INBOXES: [&str; 3] = ["state", "treasury", "hhs"];

/// A log's contents as the ledger gives them: what a move must keep.
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    size: u64,
    /// The root at every size.
    roots: Vec<Hash>,
    /// The owner's state: every key not starting with `L`.
    state: Vec<(Vec<u8>, Vec<u8>)>,
    /// Every body, sorted.
    bodies: Vec<StoredBody>,
}

fn contents(log: &dyn Ledger) -> Contents {
    let size = log.size();
    let mut bodies: Vec<StoredBody> = log.bodies().map(|b| b.expect("body")).collect();
    bodies.sort_by(|a, b| (&a.0, a.1 as u8, &a.2).cmp(&(&b.0, b.1 as u8, &b.2)));
    Contents {
        size,
        roots: (1..=size).map(|n| log.root_at(n).expect("root")).collect(),
        state: log
            .store()
            .scan_prefix(b"")
            .map(|kv| kv.expect("state"))
            .filter(|(k, _)| !k.starts_with(b"L"))
            .collect(),
        bodies,
    }
}

/// Every published checkpoint of `from` is one of `to`'s.
fn checkpoints_kept(from: &dyn Ledger, to: &dyn Ledger) -> usize {
    let kept = to.checkpoints().expect("checkpoints");
    let old = from.checkpoints().expect("checkpoints");
    for note in &old {
        assert!(kept.contains(note), "checkpoint {} was not kept", note.0);
    }
    old.len()
}

fn open_disk(dir: &Path) -> Log {
    Log::open_existing(dir, &OpenOptions::default()).expect("open the log on disk")
}

fn open_pg(url: &str, dir: &Path) -> PgLog {
    PgLog::open_existing(url, dir, &OpenOptions::default()).expect("open the log in postgres")
}

/// The synthetic IPS bundle of `tests/fixtures/ips`.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ips/ips-avery.json")
}

/// Runs `xgate medical ARGS` as `agency` against `url`; its lines.
fn medical(pki: &Path, url: &str, agency: &str, args: &[&str]) -> Vec<String> {
    let pki = pki.display().to_string();
    let mut all = vec!["medical", args[0], "--pki", &pki, "--as", agency];
    all.extend(["--gateway", url]);
    all.extend_from_slice(&args[1..]);
    let out = xgate().run(&all, b"").expect_ok();
    out.lines().map(str::to_owned).collect()
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).expect("one line of JSON")
}

fn client(pki: &Path, gateway: &Gateway, agency: &str) -> Client {
    Client::for_agency(pki, &id(agency), gateway.url(), Protocol::Auto).expect("client")
}

/// Every page of `client`'s inbox.
async fn inbox_pages(client: &mut Client) -> Vec<Value> {
    let mut path = "/v1/inbox".to_owned();
    let mut pages = Vec::new();
    loop {
        let page = get_json(client, &path, StatusCode::OK).await;
        let next = page["next"].as_u64();
        pages.push(page);
        match next {
            Some(next) => path = format!("/v1/inbox?after={next}"),
            None => return pages,
        }
    }
}

/// What the gateway served before the move, to be served the same after.
struct Served {
    /// The log's size and root once the gateway stopped.
    size: u64,
    root: Hash,
    verifier: NoteVerifier,
    receipts: Vec<Receipt>,
    inboxes: Vec<Vec<Value>>,
    /// The medical request (jti), as HHS's `medical show` prints it.
    case: (String, String),
    /// The response id and the bundle it opens to.
    response: (String, Value),
}

/// Runs a gateway on disk with records (treasury acknowledges some),
/// assets and a medical exchange; stops it. The root of the PKI and data
/// directories, and what it served.
fn traffic() -> (tempfile::TempDir, Served) {
    let fed = federation::assets::federation(&[]);
    let pki = fed.pki();
    let state = fed.signer("state");
    let mut receipts = Vec::new();
    let (mut sender, mut treasury) = (fed.client("state"), fed.client("treasury"));
    runtime().block_on(async {
        receipts.extend(federation::send_records(&mut sender, &state, "treasury", 60).await);
        federation::ack_first_page(&mut treasury, 25).await;
    });
    let [mut state_desk, mut treasury_desk, ..] = federation::assets::desks(&fed);
    runtime().block_on(async {
        for n in 0..3 {
            state_desk
                .register(&format!("STATE-LAPTOP-{n:04}"), "p-1", "hq")
                .await;
        }
        let (_, offer) = state_desk
            .offer("STATE-LAPTOP-0001", "treasury", "p-9")
            .await;
        treasury_desk
            .accept("state", "STATE-LAPTOP-0001", &offer, Some("annex"))
            .await;
    });
    let url = fed.gateway.url().to_owned();
    let request = json_line(
        &medical(
            &pki,
            &url,
            "state",
            &[
                "request",
                "--to",
                "hhs",
                "--subject",
                "hhs-mrn-000123",
                "--purpose",
                "ETREAT",
                "--incident",
                "INC-2026-0042",
                "--responder",
                "Dr. Casey Example",
                "--role",
                "medical-officer",
                "--section",
                "allergies",
                "--section",
                "medications",
                "--section",
                "problems",
                "--section",
                "immunizations",
            ],
        )[0],
    );
    let jti = request["jti"].as_str().expect("jti").to_owned();
    let bundle = fixture().display().to_string();
    let answered = json_line(
        &medical(
            &pki,
            &url,
            "hhs",
            &["respond", "--request", &jti, "--bundle", &bundle],
        )[0],
    );
    let response = answered["response"].as_u64().expect("response").to_string();
    for receipt in [&request["receipt"], &answered["receipt"]] {
        receipts.push(serde_json::from_value(receipt.clone()).expect("receipt"));
    }
    let opened = medical(&pki, &url, "state", &["open", "--response", &response]);
    let opened = json_line(&opened[1]);
    assert_eq!(opened["resourceType"], "Bundle");
    let case = medical(&pki, &url, "hhs", &["show", &jti]).join("\n");
    let inboxes = runtime().block_on(async {
        let mut all = Vec::new();
        for agency in INBOXES {
            all.push(inbox_pages(&mut fed.client(agency)).await);
        }
        all
    });
    assert_eq!(
        inboxes[1]
            .iter()
            .map(|p| p["envelopes"].as_array().map_or(0, Vec::len))
            .sum::<usize>(),
        35 + 1,
        "a page of treasury's inbox was acknowledged (35 records wait, and the offer)"
    );
    let federation::Federation { root, gateway } = fed;
    assert_eq!(gateway.stop(), Some(0));

    let data = root.path().join("data");
    let log = open_disk(&data);
    let (size, verifier) = (log.size(), log.verifier());
    let root_hash = log.root_at(size).expect("root");
    drop(log);
    (
        root,
        Served {
            size,
            root: root_hash,
            verifier,
            receipts,
            inboxes,
            case: (jti, case),
            response: (response, opened),
        },
    )
}

/// Checks a gateway started on the moved log against what was served
/// before; then it accepts a new envelope, after the old ones. Stops it;
/// returns what it served then, for the next move.
fn goes_on(gateway: Gateway, pki: &Path, served: Served) -> Served {
    let mut reader = client(pki, &gateway, "treasury");
    runtime().block_on(async {
        let note = federation::checkpoint_note(&mut reader).await;
        let checkpoint = verify_checkpoint(&note, &served.verifier).expect("the same key");
        assert_eq!(
            (checkpoint.size, checkpoint.root),
            (served.size, served.root),
            "the same log"
        );
        // Every receipt handed out before the move verifies against the
        // new gateway's proofs: the entry in today's tree, and the tree of
        // the receipt's checkpoint consistent with today's.
        for receipt in &served.receipts {
            let then = receipt.verify(&served.verifier).expect("receipt");
            let proof = get_json(
                &mut reader,
                &format!(
                    "/v1/log/proof/inclusion?index={}&size={}",
                    receipt.log_index, served.size
                ),
                StatusCode::OK,
            )
            .await;
            let hashes = proof["hashes"]
                .as_array()
                .expect("hashes")
                .iter()
                .map(|h| unb64(h.as_str().expect("base64")))
                .collect();
            let inclusion = InclusionProof {
                leaf_index: receipt.log_index,
                tree_size: served.size,
                hashes,
            };
            verify_inclusion(&inclusion, &unb64(&receipt.leaf_hash), &checkpoint.root)
                .expect("the receipt's entry is in the new gateway's tree");
            let consistency = consistency_proof(&mut reader, then.size, served.size).await;
            verify_consistency(&consistency, &then.root, &checkpoint.root)
                .expect("the receipt's tree is the new gateway's");
        }
        for (agency, before) in INBOXES.iter().zip(&served.inboxes) {
            let now = inbox_pages(&mut client(pki, &gateway, agency)).await;
            assert_eq!(&now, before, "{agency}'s inbox");
        }
    });
    let url = gateway.url().to_owned();
    let (jti, case) = &served.case;
    assert_eq!(
        &medical(pki, &url, "hhs", &["show", jti]).join("\n"),
        case,
        "the medical case"
    );
    let (response, bundle) = &served.response;
    let opened = medical(pki, &url, "state", &["open", "--response", response]);
    assert_eq!(&json_line(&opened[1]), bundle, "the encrypted answer opens");

    let state = xgate::client::EnvelopeSigner::for_agency(pki, &id("state")).expect("signer");
    let mut sender = client(pki, &gateway, "state");
    let (receipt, inboxes) = runtime().block_on(async {
        let jws = state
            .sign(
                &id("treasury"),
                "record.send",
                body("after the move"),
                60,
                None,
            )
            .expect("sign");
        let reply = submit(&mut sender, &jws).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let receipt: Receipt = serde_json::from_slice(&reply.body).expect("receipt");
        assert_eq!(receipt.log_index, served.size, "after the old entries");
        let mut inboxes = Vec::new();
        for agency in INBOXES {
            inboxes.push(inbox_pages(&mut client(pki, &gateway, agency)).await);
        }
        (receipt, inboxes)
    });
    assert_eq!(gateway.stop(), Some(0));
    let mut receipts = served.receipts;
    receipts.push(receipt);
    Served {
        size: served.size + 1,
        receipts,
        inboxes,
        ..served
    }
}

fn unb64(text: &str) -> Hash {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    Hash::from_slice(&bytes).expect("a hash")
}

/// `xgate audit replay` on the stopped gateway's log passes, signatures
/// checked.
fn replays(data: &Path, store: Option<&str>, registry: &Path) {
    let (data, registry) = (data.display().to_string(), registry.display().to_string());
    let mut args = vec![
        "audit",
        "replay",
        "--data-dir",
        &data,
        "--registry",
        &registry,
    ];
    if let Some(store) = store {
        args.extend(["--store", store]);
    }
    let out = xgate().run(&args, b"").expect_ok();
    assert!(out.contains("the stored state equals"), "{out}");
}

/// `xgate log verify` passes for `size` entries with `root`.
fn verifies(data: &Path, store: Option<&str>, size: u64, root: Option<Hash>) {
    let data = data.display().to_string();
    let mut args = vec!["log", "verify", "--data-dir", &data];
    if let Some(store) = store {
        args.extend(["--store", store]);
    }
    let out = xgate().run(&args, b"").expect_ok();
    assert!(out.starts_with(&format!("ok: {size} entries, ")), "{out}");
    if let Some(root) = root {
        let root = xgate_server::logview::b64(&root);
        assert!(out.ends_with(&format!(" root {root}\n")), "{out}");
    }
}

/// Runs `xgate log migrate ARGS`; its one line of JSON.
fn migrate(args: &[&str]) -> Value {
    let mut all = vec!["log", "migrate"];
    all.extend_from_slice(args);
    let out = xgate().run(&all, b"").expect_ok();
    assert_eq!(out.lines().count(), 1, "{out}");
    let report = json_line(out.trim());
    let fields: Vec<&str> = report
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields.len(), 4, "{out}");
    assert!(
        out.starts_with("{\"entries\":") && out.contains(",\"checkpoints\":"),
        "{out}"
    );
    assert!(
        out.contains(",\"keys\":") && out.contains(",\"bodies\":"),
        "{out}"
    );
    report
}

#[test]
fn a_data_dir_moves_into_postgres_and_back_and_gateways_go_on_from_it() {
    let pg = xgate_tests::require_postgres!();
    let db = pg.database();
    let url = db.url().to_owned();
    let (root, served) = traffic();
    let pki = root.path().join("pki");
    let registry = pki.join("registry.toml");
    let data = root.path().join("data");
    let data_arg = data.display().to_string();

    // Into PostgreSQL: every entry, checkpoint, key and body.
    let before = contents(&open_disk(&data));
    assert!(
        before
            .bodies
            .iter()
            .any(|b| b.1 == xgate_ledger::BodyKind::Put)
    );
    assert!(
        before
            .bodies
            .iter()
            .any(|b| b.1 == xgate_ledger::BodyKind::Kept)
    );
    let report = migrate(&["--data-dir", &data_arg, "--into", &url]);
    assert_eq!(report["entries"], served.size);
    assert_eq!(report["keys"], before.state.len());
    assert_eq!(report["bodies"], before.bodies.len());
    {
        let (disk, pg_log) = (open_disk(&data), open_pg(&url, &data));
        assert_eq!(contents(&pg_log), before);
        assert_eq!(report["checkpoints"], checkpoints_kept(&disk, &pg_log));
        assert!(report["checkpoints"].as_u64() >= Some(1));
    }
    verifies(&data, Some(&url), served.size, Some(served.root));
    // The target is not empty any more: a second move is refused.
    let again = xgate()
        .run(
            &["log", "migrate", "--data-dir", &data_arg, "--into", &url],
            b"",
        )
        .expect_error(1);
    assert!(again.contains("not empty"), "{again}");

    // A gateway on PostgreSQL, with the same data directory for its key.
    let pki_arg = pki.display().to_string();
    let env = [("XGATE_STORE", url.as_str())];
    let gateway = Gateway::start(
        env!("CARGO_BIN_EXE_xgate"),
        &data,
        &["--pki", &pki_arg],
        &env,
    );
    let mut served = goes_on(gateway, &pki, served);
    replays(&data, Some(&url), &registry);
    verifies(&data, Some(&url), served.size, None);

    // And back, into a new data directory.
    let back = root.path().join("back");
    let back_arg = back.display().to_string();
    let pg_before = contents(&open_pg(&url, &data));
    let report = migrate(&[
        "--store",
        &url,
        "--data-dir",
        &data_arg,
        "--into",
        &back_arg,
    ]);
    assert_eq!(report["entries"], served.size);
    assert_eq!(report["keys"], pg_before.state.len());
    assert_eq!(report["bodies"], pg_before.bodies.len());
    {
        let (pg_log, disk) = (open_pg(&url, &data), open_disk(&back));
        assert_eq!(contents(&disk), pg_before);
        assert_eq!(report["checkpoints"], checkpoints_kept(&pg_log, &disk));
    }
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock")
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&back), names(&data), "what else the directory held");
    assert!(
        names(root.path()).iter().all(|n| !n.contains("partial")),
        "no staging directory is left"
    );
    let again = xgate()
        .run(
            &[
                "log",
                "migrate",
                "--store",
                &url,
                "--data-dir",
                &data_arg,
                "--into",
                &back_arg,
            ],
            b"",
        )
        .expect_error(1);
    assert!(again.contains("not empty"), "{again}");

    served.root = *pg_before.roots.last().expect("entries");
    assert_eq!(pg_before.size, served.size);
    let gateway = Gateway::start(
        env!("CARGO_BIN_EXE_xgate"),
        &back,
        &["--pki", &pki_arg],
        &[],
    );
    assert!(back.join("db").is_dir(), "a gateway on disk");
    let served = goes_on(gateway, &pki, served);
    replays(&back, None, &registry);
    verifies(&back, None, served.size, None);
}

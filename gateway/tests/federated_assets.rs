//! Assets across the gateways of a federation (issue 21), end to end with
//! real gateways: an offer from an agency on one gateway to an agency on
//! another carries the asset's dossier; the receiving gateway installs the
//! asset and its custody chain with the sending log's receipts; the answer
//! is logged by both; each gateway then holds the state of what its
//! agencies hold and have held, and each recomputes it from its own log
//! (`xgate audit replay --data-dir`), and the auditor from both public logs
//! (`xgate audit replay --log`).

use std::path::Path;

use serde_json::Value;
use xgate_tests::federation::Federation;
use xgate_tests::{Run, Xgate};

/// `hub` serves state and gsa; `g-hhs` serves hhs.
const LAYOUT: &[(&str, &[&str])] = &[("hub", &["state", "gsa"]), ("g-hhs", &["hhs"])];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xgate"))
}

fn xgate() -> Xgate {
    Xgate::new(bin())
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// An agency of the federation at its gateway.
struct Agency<'a> {
    pki: &'a Path,
    id: &'a str,
    gateway: String,
}

impl Agency<'_> {
    fn run(&self, command: &[&str], rest: &[&str]) -> Run {
        let pki = arg(self.pki);
        let mut all: Vec<&str> = command.to_vec();
        all.extend(["--pki", &pki, "--as", self.id, "--gateway", &self.gateway]);
        all.extend(rest);
        xgate().run(&all, b"")
    }

    fn ok(&self, command: &[&str], rest: &[&str]) -> Value {
        let out = self.run(command, rest).expect_ok();
        serde_json::from_str(out.lines().next().expect("a line")).expect("JSON")
    }

    fn register(&self, tag: &str, location: &str) -> Value {
        self.ok(
            &["asset", "register"],
            &[
                "--tag",
                tag,
                "--serial",
                "SN-1",
                "--category",
                "laptop",
                "--description",
                "ThinkPad",
                "--person",
                "p-1",
                "--location",
                location,
            ],
        )
    }

    fn offer(&self, tag: &str, to: &str) -> Value {
        self.ok(
            &["asset", "offer"],
            &[
                "--tag",
                tag,
                "--to",
                to,
                "--person",
                "p-2",
                "--reason",
                "reassignment",
            ],
        )
    }

    fn show(&self, tag: &str) -> Value {
        self.ok(&["asset", "show"], &[tag])
    }

    /// Waits until nothing this agency sent is queued at its gateway.
    fn delivered(&self) -> Vec<Value> {
        let out = self.run(&["outbox"], &["--wait", "30"]).expect_ok();
        out.lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect()
    }
}

/// The origin (first line) of a receipt's checkpoint.
fn origin(receipt: &Value) -> String {
    receipt["checkpoint"]
        .as_str()
        .and_then(|c| c.lines().next())
        .expect("checkpoint")
        .to_owned()
}

#[test]
fn an_asset_moves_between_gateways_and_both_hold_its_history() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut federation = Federation::start(bin(), tmp.path(), LAYOUT, &[("XGATE_LOG", "warn")]);
    let pki = federation.pki();
    let at = |id: &'static str, gateway: &str| Agency {
        pki: &pki,
        id,
        gateway: federation.url(gateway),
    };
    let (state, gsa, hhs) = (at("state", "hub"), at("gsa", "hub"), at("hhs", "g-hhs"));

    state.register("LAP-1", "HQ");
    let offer = state.offer("LAP-1", "hhs");
    assert_eq!(origin(&offer["receipt"]), "xgate/hub");
    assert!(state.delivered().iter().all(|f| f["state"] == "delivered"));

    // hhs's gateway knows the asset now, offered to hhs, with the chain
    // before the offer proven by hub's log and the offer by its own.
    let seen = hhs.show("LAP-1");
    assert_eq!(seen["serial"], "SN-1");
    assert_eq!(seen["holder"]["agency"], "state");
    assert_eq!(seen["offer"]["to"]["agency"], "hhs");
    let chain = seen["chain"].as_array().expect("chain");
    let kinds: Vec<&str> = chain
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["registered", "offered"], "{seen}");
    assert_eq!(origin(&chain[0]["receipt"]), "xgate/hub");
    assert_eq!(origin(&chain[1]["receipt"]), "xgate/g-hhs");

    // A made-up offer is refused at hhs's gateway with the usual code.
    let wrong = hhs.run(
        &["asset", "accept"],
        &[
            "--tag",
            "LAP-1",
            "--offer",
            "no-such-offer",
            "--from",
            "state",
        ],
    );
    assert!(wrong.expect_error(1).contains("no_open_offer"));

    let jti = offer["jti"].as_str().expect("jti");
    let accepted = hhs.ok(
        &["asset", "accept"],
        &[
            "--tag",
            "LAP-1",
            "--offer",
            jti,
            "--from",
            "state",
            "--location",
            "Clinic",
        ],
    );
    assert_eq!(origin(&accepted["receipt"]), "xgate/g-hhs");
    assert!(hhs.delivered().iter().all(|f| f["state"] == "delivered"));

    // Both gateways agree: hhs holds it, at the clinic.
    let there = hhs.show("LAP-1");
    assert_eq!(there["holder"]["agency"], "hhs");
    assert_eq!(there["location"], "Clinic");
    let here = state.show("LAP-1");
    assert_eq!(here["holder"]["agency"], "hhs", "{here}");
    let listed = hhs.ok(&["asset", "list"], &["--all"]);
    assert_eq!(listed["assets"][0]["tag"], "LAP-1");

    // Counts reconcile against each gateway's state: hhs finds it at the
    // clinic, where its gateway expects it; state finds it at HQ, where
    // hub knows it no longer is.
    let count = |agency: &Agency<'_>, location: &str| -> Value {
        let file = tmp.path().join(format!("count-{}.json", agency.id));
        let body = format!(
            r#"{{"location":"{location}","reported_by":"p-9","observed":[{{"tag":"LAP-1","person":"p-2"}}]}}"#
        );
        std::fs::write(&file, body).expect("write");
        let out = agency
            .run(&["inventory", "report"], &["--show", &arg(&file)])
            .expect_ok();
        serde_json::from_str(out.lines().nth(1).expect("the report")).expect("JSON")
    };
    let clinic = count(&hhs, "Clinic");
    assert_eq!(
        clinic["unexpected"].as_array().map(Vec::len),
        Some(0),
        "{clinic}"
    );
    assert_eq!(
        clinic["missing"].as_array().map(Vec::len),
        Some(0),
        "{clinic}"
    );
    let hq = count(&state, "HQ");
    assert_eq!(hq["unexpected"], serde_json::json!(["LAP-1"]), "{hq}");

    // And back: hhs offers it to gsa, on hub; gsa accepts there.
    let back = hhs.offer("LAP-1", "gsa");
    assert!(hhs.delivered().iter().all(|f| f["state"] == "delivered"));
    let jti = back["jti"].as_str().expect("jti");
    gsa.ok(
        &["asset", "accept"],
        &[
            "--tag",
            "LAP-1",
            "--offer",
            jti,
            "--from",
            "hhs",
            "--location",
            "Annex",
        ],
    );
    assert!(gsa.delivered().iter().all(|f| f["state"] == "delivered"));
    assert_eq!(gsa.show("LAP-1")["holder"]["agency"], "gsa");
    assert_eq!(hhs.show("LAP-1")["holder"]["agency"], "gsa");
    // Every event of its chain at hub is proven by hub's log; those hhs
    // sent (its accept, its offer) also by g-hhs's, where they were
    // logged first.
    let chain = gsa.show("LAP-1")["chain"].clone();
    let events: Vec<(String, String, Option<String>)> = chain
        .as_array()
        .expect("chain")
        .iter()
        .map(|e| {
            let sender = e.get("sender_receipt").map(origin);
            (
                e["kind"].as_str().expect("kind").to_owned(),
                origin(&e["receipt"]),
                sender,
            )
        })
        .collect();
    let expected: Vec<(String, String, Option<String>)> = [
        ("registered", "xgate/hub", None),
        ("offered", "xgate/hub", None),
        ("accepted", "xgate/hub", Some("xgate/g-hhs")),
        ("offered", "xgate/hub", Some("xgate/g-hhs")),
        ("accepted", "xgate/hub", None),
    ]
    .iter()
    .map(|(k, o, s)| ((*k).to_owned(), (*o).to_owned(), s.map(str::to_owned)))
    .collect();
    assert_eq!(events, expected);

    // A rejection across gateways keeps custody where it is, on both.
    state.register("LAP-2", "HQ");
    let offer = state.offer("LAP-2", "hhs");
    state.delivered();
    let jti = offer["jti"].as_str().expect("jti");
    hhs.ok(
        &["asset", "reject"],
        &["--tag", "LAP-2", "--offer", jti, "--from", "state"],
    );
    assert!(hhs.delivered().iter().all(|f| f["state"] == "delivered"));
    let kept = state.show("LAP-2");
    assert_eq!(kept["holder"]["agency"], "state");
    assert!(kept["offer"].is_null(), "{kept}");

    // The auditor replays both public logs together; each gateway,
    // stopped, recomputes its own state from its own log.
    let line = federation.replay_public_logs();
    assert!(line.starts_with("ok: replayed 2 logs"), "{line}");
    federation.replay_each_stopped();
}

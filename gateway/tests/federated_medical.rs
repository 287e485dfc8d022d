//! The medical exchange across the gateways of a federation (issue 21):
//! a responder's agency on one gateway asks the holder's agency on another
//! in an emergency; the request breaks the glass at both gateways (each
//! applies its own policy, here the same default); the holder's answer,
//! encrypted to the requester, is logged at the holder's gateway,
//! forwarded, checked against the requester gateway's grant, and opened by
//! the requester at its own gateway; the holder's reviewer closes the case
//! at the holder's gateway. Each gateway recomputes its state from its own
//! log, and the auditor replays both public logs.

use std::path::{Path, PathBuf};

use serde_json::Value;
use xgate_tests::federation::Federation;
use xgate_tests::{Run, Xgate};

/// `hub` serves state (the requester); `g-hhs` serves hhs (the holder).
const LAYOUT: &[(&str, &[&str])] = &[("hub", &["state", "auditor:gao"]), ("g-hhs", &["hhs"])];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xgate"))
}

fn xgate() -> Xgate {
    Xgate::new(bin())
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ips")
        .join(name)
}

/// `xgate COMMAND... --pki --as --gateway REST...`.
fn run(pki: &Path, agency: &str, gateway: &str, command: &[&str], rest: &[&str]) -> Run {
    let pki = arg(pki);
    let mut all: Vec<&str> = command.to_vec();
    all.extend(["--pki", &pki, "--as", agency, "--gateway", gateway]);
    all.extend(rest);
    xgate().run(&all, b"")
}

fn json_lines(run: Run) -> Vec<Value> {
    run.expect_ok()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

/// Waits until nothing `agency` sent is queued at `gateway`; all delivered.
fn all_delivered(pki: &Path, agency: &str, gateway: &str) {
    let out = json_lines(run(pki, agency, gateway, &["outbox"], &["--wait", "30"]));
    assert!(out.iter().all(|f| f["state"] == "delivered"), "{out:?}");
}

#[test]
fn an_emergency_request_crosses_gateways_and_is_answered_opened_and_reviewed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut federation = Federation::start(bin(), tmp.path(), LAYOUT, &[("XGATE_LOG", "warn")]);
    let pki = federation.pki();
    let (hub, g_hhs) = (federation.url("hub"), federation.url("g-hhs"));

    let request = json_lines(run(
        &pki,
        "state",
        &hub,
        &["medical", "request"],
        &[
            "--to",
            "hhs",
            "--subject",
            "hhs-mrn-000123",
            "--purpose",
            "ETREAT",
            "--incident",
            "INC-1",
            "--responder",
            "Dr. Example",
            "--role",
            "medical-officer",
            "--section",
            "allergies",
            "--section",
            "medications",
        ],
    ));
    let jti = request[0]["jti"].as_str().expect("jti").to_owned();
    all_delivered(&pki, "state", &hub);

    // Both gateways hold the case, granted by breaking the glass.
    for (agency, gateway) in [("state", &hub), ("hhs", &g_hhs)] {
        let case = &json_lines(run(&pki, agency, gateway, &["medical", "show"], &[&jti]))[0];
        assert_eq!(case["status"], "granted", "{agency}: {case}");
        assert_eq!(case["break_glass"], true);
    }

    // The holder answers at its gateway; the requester opens it at its own.
    let bundle = fixture("ips-avery.json");
    json_lines(run(
        &pki,
        "hhs",
        &g_hhs,
        &["medical", "respond"],
        &["--request", &jti, "--bundle", &arg(&bundle)],
    ));
    all_delivered(&pki, "hhs", &g_hhs);
    let case = &json_lines(run(&pki, "state", &hub, &["medical", "show"], &[&jti]))[0];
    let responses = case["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 1, "{case}");
    // Its id at the requester's gateway: where that gateway logged it.
    let response = responses[0]["log_index"]
        .as_u64()
        .expect("a response id")
        .to_string();
    let out = tmp.path().join("bundle.json");
    let opened = &json_lines(run(
        &pki,
        "state",
        &hub,
        &["medical", "open"],
        &["--response", &response, "--out", &arg(&out)],
    ))[0];
    assert_eq!(opened["from"], "hhs");
    assert_eq!(
        std::fs::read(&out).expect("written"),
        std::fs::read(&bundle).expect("fixture"),
        "the bundle arrives byte for byte across gateways"
    );
    // A second answer is refused at the holder's gateway: the grant is used.
    let again = run(
        &pki,
        "hhs",
        &g_hhs,
        &["medical", "respond"],
        &["--request", &jti, "--bundle", &arg(&bundle)],
    );
    assert!(again.expect_error(1).contains("grant_used"));

    // The holder's reviewer closes it where the grant was made.
    let queue = &json_lines(run(&pki, "hhs", &g_hhs, &["medical", "reviews"], &[]))[0];
    assert_eq!(queue["reviews"][0]["request"], jti.as_str(), "{queue}");
    json_lines(run(
        &pki,
        "hhs",
        &g_hhs,
        &["medical", "review"],
        &[
            "--request",
            &jti,
            "--outcome",
            "appropriate",
            "--note",
            "cardiac arrest",
        ],
    ));
    let queue = &json_lines(run(&pki, "hhs", &g_hhs, &["medical", "reviews"], &[]))[0];
    assert_eq!(queue["reviews"].as_array().map(Vec::len), Some(0));

    // The auditor replays both public logs together; each gateway,
    // stopped, recomputes its own state from its own log.
    let line = federation.replay_public_logs();
    assert!(line.starts_with("ok: replayed 2 logs"), "{line}");
    federation.replay_each_stopped();
}

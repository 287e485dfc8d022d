//! Does every acknowledgement rest on a barrier? A real `xgate serve`
//! runs under strace while `xgate bench` drives it at low load with the
//! default mix (records, medical requests and asset registrations 8:1:1)
//! and drains every inbox, writing when each acknowledged request was sent
//! and answered (`--timings`). The trace is then checked against those
//! windows with [`xgate_tests::barriers::check`]: each acknowledged
//! exchange and inbox acknowledgement must have an `fdatasync` of the
//! journal inside its window, after its record was written there, with the
//! directories of created names synced; and nothing may call
//! `sync_file_range` under the data directory, except sled on its own
//! database, which holds only state the journal also holds and is flushed
//! off the acknowledgement path (docs/reliability.md, "What an
//! acknowledgement promises").
//!
//! The negative control: the same run with the journal told to skip its
//! barrier (`XGATE_FAULT_FILE` naming `nobarrier`) must fail the check.
//!
//! Needs `strace`; without it the test says so and passes, unless
//! `XGATE_REQUIRE_STRACE` is set (CI installs strace: `.ci/run`).

mod federation;

use std::path::Path;

use federation::{make_pki, xgate};
use serde_json::Value;
use xgate_server::pki::SAMPLE_AGENCIES;
use xgate_tests::Gateway;
use xgate_tests::barriers::{self, Request, Scope, Verdict};

/// The default mix of the soak and the performance figures.
const MIX: &str = "record.send=8,medical.request=1,asset.register=1";
/// Exchanges sent: enough for the figures, few enough for a debug build
/// under strace on two cores.
const EXCHANGES: &str = "1500";
/// Exchanges per second: low, as strace slows every traced call.
const RATE: &str = "150";

#[test]
fn every_acknowledgement_rests_on_a_journal_barrier() {
    let Some((verdict, requests)) = traced_run(None) else {
        return;
    };
    assert!(verdict.passed(), "{verdict}");
    assert_eq!(verdict.stats.with_barrier, requests);
    assert_eq!(verdict.stats.failed_barriers, 0, "{verdict}");
}

#[test]
fn a_journal_that_skips_its_barrier_fails_the_check() {
    let faults = tempfile::tempdir().expect("tempdir");
    let fault_file = faults.path().join("fault");
    std::fs::write(&fault_file, "nobarrier").expect("fault file");
    let Some((verdict, requests)) = traced_run(Some(&fault_file)) else {
        return;
    };
    assert!(!verdict.passed(), "passed without barriers:\n{verdict}");
    // Nearly every acknowledgement lacks one (a request whose window holds
    // the first journal write of a fresh segment may find the preparer's
    // fsync of it).
    assert!(
        verdict.missing.len() * 10 >= requests * 9,
        "{} of {requests} missing:\n{verdict}",
        verdict.missing.len()
    );
}

/// Runs the traced gateway and the bench; `None` if strace is missing (and
/// not required).
fn traced_run(fault_file: Option<&Path>) -> Option<(Verdict, usize)> {
    if !barriers::strace_available() {
        assert!(
            std::env::var_os("XGATE_REQUIRE_STRACE").is_none(),
            "XGATE_REQUIRE_STRACE is set but strace cannot be run"
        );
        eprintln!(
            "skipped: strace is not installed (Debian: apt-get install strace); set XGATE_REQUIRE_STRACE=1 to make this a failure"
        );
        return None;
    }
    let root = tempfile::tempdir().expect("tempdir");
    // strace prints resolved paths; so must the scope be.
    let root_path = std::fs::canonicalize(root.path()).expect("canonical tempdir");
    let pki = root_path.join("pki");
    make_pki(&pki, &SAMPLE_AGENCIES);
    let data = root_path.join("data");
    let trace = root_path.join("strace.txt");
    let timings = root_path.join("timings.jsonl");

    let pki_arg = pki.display().to_string();
    let fault_var = fault_file.map(|f| f.display().to_string());
    let env: Vec<(&str, &str)> = fault_var
        .as_deref()
        .map(|f| ("XGATE_FAULT_FILE", f))
        .into_iter()
        .collect();
    let gateway = Gateway::start_traced(
        env!("CARGO_BIN_EXE_xgate"),
        &data,
        &["--pki", &pki_arg],
        &env,
        &trace,
    );
    let timings_arg = timings.display().to_string();
    let out = xgate()
        .run(
            &[
                "bench",
                "--pki",
                &pki_arg,
                "--gateway",
                gateway.url(),
                "--connections",
                "4",
                "--rate",
                RATE,
                "--duration",
                "40",
                "--envelopes",
                EXCHANGES,
                "--mix",
                MIX,
                "--drain",
                "--timings",
                &timings_arg,
                "--json",
            ],
            b"",
        )
        .expect_ok();
    let report: Value = serde_json::from_str(out.trim()).expect("bench report");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    assert_eq!(gateway.stop(), Some(0), "the gateway stops cleanly");

    let requests = acknowledged(&timings);
    let exchanges = requests
        .iter()
        .filter(|r| !r.label.starts_with("inbox.ack"))
        .count();
    assert_eq!(Some(exchanges as u64), report["ok"].as_u64(), "{report}");
    assert!(exchanges >= 1000, "{exchanges} exchanges: {report}");
    assert!(
        requests.len() > exchanges,
        "the inbox acknowledgements are checked too"
    );

    let text = std::fs::read_to_string(&trace).expect("trace");
    let calls = barriers::parse(&text).expect("a readable trace");
    let scope = Scope {
        barrier_under: Some(data.join("ledger/journal")),
        tolerated: vec![data.join("db")],
        ..Scope::new(&data)
    };
    let verdict = barriers::check(&calls, &scope, &requests).expect("checked");
    eprintln!("{verdict}");
    assert_eq!(verdict.stats.requests, requests.len());
    Some((verdict, requests.len()))
}

/// The acknowledged requests of the bench's timings file.
fn acknowledged(timings: &Path) -> Vec<Request> {
    let text = std::fs::read_to_string(timings).expect("timings");
    text.lines()
        .map(|line| {
            let t: Value = serde_json::from_str(line).expect("a JSON line");
            let request = t["request"].as_str().expect("request");
            let label = match t["id"].as_str() {
                Some(id) => format!("{request} {id}"),
                None => format!("{request} of {}", t["acked"]),
            };
            Request {
                label,
                sent: t["sent_us"].as_u64().expect("sent_us"),
                received: t["received_us"].as_u64().expect("received_us"),
            }
        })
        .collect()
}

//! Does every acknowledgement rest on a barrier? A real `xgate serve`
//! runs under strace while `xgate bench` drives it at low load with the
//! default mix (records, medical requests and asset registrations 8:1:1)
//! and drains every inbox, writing when each acknowledged request was sent
//! and answered (`--timings`). The trace is then checked against those
//! windows with [`xgate_tests::barriers::check`]: each acknowledged
//! exchange and inbox acknowledgement must have an `fsync`/`fdatasync` of
//! a file under the data directory inside its window, after the data
//! written to that file, with the directories of created names synced; and
//! nothing may call `sync_file_range` there (docs/reliability.md, "What an
//! acknowledgement promises").
//!
//! Today's store is sled, whose log is made durable with
//! `sync_file_range`: the check must fail, and this test asserts that it
//! does, for both reasons (a negative control of the checker on the real
//! gateway). When the journal replaces it, this becomes the positive test,
//! with a fault-injected negative control beside it.
//!
//! Needs `strace`; without it the test says so and passes, unless
//! `XGATE_REQUIRE_STRACE` is set (CI installs strace: `.ci/run`).

mod federation;

use std::path::Path;

use federation::{make_pki, xgate};
use serde_json::Value;
use xgate_server::pki::SAMPLE_AGENCIES;
use xgate_tests::Gateway;
use xgate_tests::barriers::{self, Request, Scope};

/// The default mix of the soak and the performance figures.
const MIX: &str = "record.send=8,medical.request=1,asset.register=1";
/// Exchanges sent: enough for the figures, few enough for a debug build
/// under strace on two cores.
const EXCHANGES: &str = "1500";
/// Exchanges per second: low, as strace slows every traced call.
const RATE: &str = "150";

#[test]
fn sled_gateway_fails_the_barrier_check() {
    if !barriers::strace_available() {
        assert!(
            std::env::var_os("XGATE_REQUIRE_STRACE").is_none(),
            "XGATE_REQUIRE_STRACE is set but strace cannot be run"
        );
        eprintln!(
            "skipped: strace is not installed (Debian: apt-get install strace); set XGATE_REQUIRE_STRACE=1 to make this a failure"
        );
        return;
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
    let gateway = Gateway::start_traced(
        env!("CARGO_BIN_EXE_xgate"),
        &data,
        &["--pki", &pki_arg],
        &[],
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
    let verdict = barriers::check(&calls, &Scope::new(&data), &requests).expect("checked");
    eprintln!("{verdict}");
    assert_eq!(verdict.stats.requests, requests.len());
    // The checkpoint's fsync, once a second, falls inside some windows: the
    // client's clock and strace's line up, so what is missing is missing.
    assert!(
        verdict.stats.with_barrier > 0,
        "no window holds any barrier (clocks?):\n{verdict}"
    );
    // sled: acknowledgements without a barrier, and sync_file_range.
    assert!(
        !verdict.passed(),
        "sled passed the barrier check:\n{verdict}"
    );
    assert!(
        !verdict.missing.is_empty(),
        "no acknowledgement without a barrier:\n{verdict}"
    );
    assert!(
        verdict.stats.sync_file_range > 0
            && verdict
                .forbidden
                .iter()
                .any(|f| f.call == "sync_file_range"),
        "no sync_file_range:\n{verdict}"
    );
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

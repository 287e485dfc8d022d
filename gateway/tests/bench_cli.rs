//! `xgate bench` against a real gateway: a short mixed run over HTTP/1.1
//! (the lean loop) and over HTTP/2 (the agency client), its JSON report's
//! fields, the receipts it keeps, refusals counted by status and code, the
//! CPU shares it reports, and refused mixes.

mod federation;

use serde_json::Value;

use federation::Federation;
use federation::assets::federation;
use federation::xgate;

/// Runs `xgate bench` against `fed`'s gateway with `extra` arguments.
fn bench(fed: &Federation, extra: &[&str]) -> xgate_tests::Run {
    let pki = fed.pki().display().to_string();
    let mut args = vec!["bench", "--pki", &pki, "--gateway", fed.gateway.url()];
    args.extend_from_slice(extra);
    xgate().run(&args, b"")
}

/// Runs `xgate bench --json` with `extra` arguments and parses its report.
fn report(fed: &Federation, extra: &[&str]) -> Value {
    let out = bench(fed, &[extra, &["--json"]].concat()).expect_ok();
    serde_json::from_str(out.trim()).expect("one line of JSON")
}

#[test]
fn a_short_mixed_run_reports_rates_percentiles_and_no_errors() {
    let fed = federation(&[]);
    let key = fed.log_key();
    let receipts = fed.root.path().join("receipts.jsonl");
    let receipts_arg = receipts.display().to_string();
    for extra in [&[][..], &["--http2"][..]] {
        let mut args = vec![
            "--duration",
            "1",
            "--connections",
            "8",
            "--envelopes",
            "3000",
            "--mix",
            "record.send=3,medical.request=1,asset.register=1",
            "--receipts",
            &receipts_arg,
        ];
        args.extend_from_slice(extra);
        let report = report(&fed, &args);
        assert!(report["ok"].as_u64().unwrap_or(0) > 50, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        assert_eq!(report["http2"], !extra.is_empty());
        let engine = if extra.is_empty() { "lean" } else { "client" };
        assert_eq!(report["engine"], engine, "{report}");
        assert_cpu_sane(&report);
        for kind in ["record.send", "medical.request", "asset.register"] {
            let k = &report["kinds"][kind];
            assert!(k["count"].as_u64().unwrap_or(0) > 0, "{kind}: {report}");
            let (p50, p99, max) = (k["p50"].as_f64(), k["p99"].as_f64(), k["max"].as_f64());
            assert!(p50 <= p99 && p99 <= max, "{kind}: {report}");
        }
        assert!(report["latency_ms"]["p99.9"].is_f64());
        // --receipts: one verifiable receipt per acknowledged exchange.
        let text = std::fs::read_to_string(&receipts).expect("receipts");
        assert_eq!(Some(text.lines().count() as u64), report["ok"].as_u64());
        for line in text.lines() {
            let receipt: xgate_server::receipt::Receipt =
                serde_json::from_str(line).expect("receipt");
            receipt.verify(&key).expect("the receipt verifies");
        }
    }
    for bad in ["asset.transfer.accept", "record.send=0", "teleport"] {
        bench(&fed, &["--mix", bad]).expect_error(2);
    }
}

#[test]
fn handshake_runs_open_a_new_connection_per_exchange() {
    let fed = federation(&[]);
    let report = report(
        &fed,
        &["--duration", "1", "--connections", "4", "--handshakes"],
    );
    assert_eq!(report["mode"], "handshakes", "{report}");
    assert!(report["ok"].as_u64().unwrap_or(0) > 10, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    assert_eq!(report["kinds"], serde_json::json!({}), "{report}");
    // Each exchange was a full handshake of its own: the gateway counted
    // them, and resumed none.
    let mut client = fed.client("state");
    let metrics = federation::runtime().block_on(async {
        let reply = client
            .request(http::Method::GET, "/metrics", None, Vec::new())
            .await
            .expect("metrics");
        String::from_utf8(reply.body.to_vec()).expect("utf-8")
    });
    let count = |outcome: &str| -> f64 {
        let name = format!("xgate_tls_handshakes_total{{outcome=\"{outcome}\"}}");
        metrics
            .lines()
            .find(|l| l.starts_with(&name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count("full") >= report["ok"].as_f64().unwrap_or(f64::MAX),
        "{} full handshakes for {report}",
        count("full")
    );
    assert_eq!(count("resumed"), 0.0, "{metrics}");
    // With --handshakes there is no mix to send or receipts to keep.
    bench(&fed, &["--handshakes", "--mix", "record.send"]).expect_error(2);
}

#[test]
fn a_draining_run_reads_and_acknowledges_the_inboxes() {
    let fed = federation(&[]);
    let report = report(
        &fed,
        &[
            "--duration",
            "2",
            "--connections",
            "4",
            "--envelopes",
            "2000",
            "--drain",
        ],
    );
    let (ok, drained) = (report["ok"].as_u64(), report["drained"].as_u64());
    assert!(drained.is_some_and(|d| d > 0 && Some(d) <= ok), "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    // What is left in the inboxes is what arrived after the readers' last
    // pass: every record sent is either acknowledged or still there.
    let rt = federation::runtime();
    let mut waiting = 0;
    for agency in xgate_server::pki::SAMPLE_AGENCIES {
        let mut client = fed.client(agency);
        waiting += rt.block_on(federation::inbox_len(&mut client)) as u64;
    }
    assert_eq!(Some(waiting + drained.unwrap_or(0)), ok, "{report}");
}

/// The report's `cpu` object is there and sane: the generator took some of
/// the machine and not all of it, and the server's processes, found by the
/// gateway's listening socket, are `xgate serve`.
fn assert_cpu_sane(report: &Value) {
    let cpu = &report["cpu"];
    let cores = cpu["cores"].as_u64().unwrap_or(0);
    assert!(cores >= 1, "{report}");
    let share = cpu["generator"]["share"].as_f64().unwrap_or(-1.0);
    assert!(share > 0.0 && share < 1.0, "{report}");
    assert!(
        cpu["generator"]["us_per_exchange"]
            .as_f64()
            .is_some_and(|u| u > 0.0)
    );
    let server = cpu["server"]["share"].as_f64().unwrap_or(-1.0);
    assert!(server > 0.0 && server <= 1.0, "{report}");
    let pids = cpu["server"]["pids"].as_array().expect("server pids");
    assert_eq!(pids.len(), 1, "one gateway process: {report}");
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        assert!(args.contains(&&b"serve"[..]), "pid {pid} is the gateway");
    }
    let busy = cpu["machine_busy"].as_f64().unwrap_or(-1.0);
    assert!(busy > 0.0 && busy <= 1.0, "{report}");
    // However fast the run was (a fixed count of envelopes can take less
    // than its --duration), it took some time.
    assert!(cpu["seconds"].as_f64().is_some_and(|s| s > 0.0), "{report}");
}

#[test]
fn refusals_are_counted_by_status_and_code_and_receipts_still_verify() {
    // state may send one request every two seconds, three at once:
    // nearly every one of its envelopes is refused, treasury's are not.
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    let text = format!(
        "{}\n[rate.agencies]\nstate = {{ requests_per_second = 0.5, burst = 3 }}\n",
        xgate_server::policy::DEFAULT_POLICY
    );
    std::fs::write(&policy, text).expect("policy");
    let policy_arg = policy.display().to_string();
    let fed = federation(&[("XGATE_POLICY", &policy_arg)]);
    let receipts = fed.root.path().join("receipts.jsonl");
    let receipts_arg = receipts.display().to_string();
    let report = report(
        &fed,
        &[
            "--duration",
            "1",
            "--connections",
            "4",
            "--envelopes",
            "4000",
            "--senders",
            "state,treasury",
            "--receipts",
            &receipts_arg,
        ],
    );
    assert_eq!(report["engine"], "lean", "{report}");
    let errors = report["errors"].as_object().expect("errors");
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["429 rate_limited"],
        "{report}"
    );
    let refused = errors["429 rate_limited"].as_u64().unwrap_or(0);
    let ok = report["ok"].as_u64().unwrap_or(0);
    assert!(refused > 10 && ok > 10, "{report}");
    // Every receipt kept is an acknowledged one, and verifies.
    let key = fed.log_key();
    let text = std::fs::read_to_string(&receipts).expect("receipts");
    assert_eq!(text.lines().count() as u64, ok, "{report}");
    for line in text.lines() {
        let receipt: xgate_server::receipt::Receipt = serde_json::from_str(line).expect("receipt");
        receipt.verify(&key).expect("the receipt verifies");
    }
    assert_cpu_sane(&report);
}

#[test]
fn a_server_named_by_hand_is_used_and_one_not_found_is_null() {
    let fed = federation(&[]);
    let args = [
        "--duration",
        "1",
        "--connections",
        "2",
        "--envelopes",
        "1000",
    ];
    // Pid 0 is never a process: the run goes on, the server is unknown.
    let unknown = report(&fed, &[&args[..], &["--server-pid", "0"]].concat());
    assert!(unknown["ok"].as_u64().unwrap_or(0) > 0, "{unknown}");
    assert_eq!(unknown["cpu"]["server"], Value::Null, "{unknown}");
    assert!(
        unknown["cpu"]["generator"]["share"]
            .as_f64()
            .is_some_and(|s| s > 0.0)
    );
    // The text report says so.
    let text = bench(&fed, &[&args[..], &["--server-pid", "0"]].concat()).expect_ok();
    assert!(text.contains("server not found"), "{text}");
    assert!(text.contains("generator"), "{text}");
    // A pid named by hand is the server, found or not by its socket.
    let me = std::process::id().to_string();
    let named = report(&fed, &[&args[..], &["--server-pid", &me]].concat());
    assert_eq!(
        named["cpu"]["server"]["pids"],
        serde_json::json!([std::process::id()])
    );
    // Two threads for the generator work as well as one.
    let two = report(&fed, &[&args[..], &["--threads", "2"]].concat());
    assert_eq!(two["threads"], 2, "{two}");
    assert_eq!(two["errors"], serde_json::json!({}), "{two}");
    assert_cpu_sane(&two);
}

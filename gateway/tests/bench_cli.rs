//! `xgate bench` against a real gateway: a short mixed run over HTTP/1.1
//! and over HTTP/2, its JSON report's fields, the receipts it keeps, and
//! refused mixes.

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

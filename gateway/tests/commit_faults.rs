//! The commit thread under faults, through a real gateway whose store is
//! the test build's fault injector (`XGATE_FAULT_FILE`, as in
//! `storage_faults.rs`):
//!
//! - an envelope that was valid on arrival but expires while it waits in
//!   the commit queue (behind a commit the `stall` fault holds up) is
//!   refused as `expired` when its turn comes, and leaves no trace;
//! - a panic on the commit thread (the `panic` fault: the store's write
//!   panics, as a bug would) answers the waiting request 503 and stops the
//!   gateway with a non-zero exit, rather than leaving it accepting
//!   connections it can never commit for; restarted, it serves again and
//!   has lost nothing acknowledged.

mod federation;

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use xgate::client::Protocol;

use federation::{Federation, body, error_code, id, log_size, runtime, start_gateway, submit};

fn set_fault(file: &Path, fault: &str) {
    std::fs::write(file, fault).expect("write the fault file");
}

#[test]
fn an_envelope_that_expires_while_waiting_to_commit_is_refused_as_expired() {
    let faults = tempfile::tempdir().expect("tempdir");
    let fault_file = faults.path().join("fault");
    let fault_arg = fault_file.display().to_string();
    // No clock skew: an envelope is expired the second after its exp.
    let fed = Federation::start_with(
        &[],
        &[
            ("XGATE_FAULT_FILE", &fault_arg),
            ("XGATE_CLOCK_SKEW_SECS", "0"),
        ],
    );
    let signer = fed.signer("state");
    let treasury = id("treasury");
    let (mut first, mut second, mut reader) = (
        fed.client("state"),
        fed.client("state"),
        fed.client("treasury"),
    );
    runtime().block_on(async {
        // Connected beforehand, so the timings below are the commit's.
        assert_eq!(log_size(&mut first).await, 0);
        assert_eq!(log_size(&mut second).await, 0);
        let held = signer
            .sign(&treasury, "record.send", body("held up"), 60, None)
            .expect("sign");
        set_fault(&fault_file, "stall");
        let held_up = submit(&mut first, &held);
        let late = async {
            // The first envelope's commit is stalled by now; this one,
            // valid for 2 s, queues behind it.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let jws = signer
                .sign(&treasury, "record.send", body("late"), 2, None)
                .expect("sign");
            submit(&mut second, &jws).await
        };
        let release = async {
            // Well past the second envelope's exp.
            tokio::time::sleep(Duration::from_secs(9)).await;
            set_fault(&fault_file, "none");
        };
        let (held_up, late, ()) = tokio::join!(held_up, late, release);
        assert_eq!(
            held_up.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&held_up.body)
        );
        let message = String::from_utf8_lossy(&late.body).into_owned();
        assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{message}");
        assert_eq!(error_code(&late), "expired");
        assert!(
            message.contains("while it waited to be committed"),
            "refused at the commit, not on arrival: {message}"
        );
        // Only the first is anywhere: the log and the inbox.
        assert_eq!(log_size(&mut reader).await, 1);
        assert_eq!(federation::inbox_len(&mut reader).await, 1);
    });
}

#[test]
fn a_panic_on_the_commit_thread_answers_503_and_stops_the_gateway() {
    let faults = tempfile::tempdir().expect("tempdir");
    let fault_file = faults.path().join("fault");
    let fault_arg = fault_file.display().to_string();
    let env = [("XGATE_FAULT_FILE", fault_arg.as_str())];
    let Federation { root, mut gateway } = Federation::start_with(&[], &env);
    let fed_pki = root.path().join("pki");
    let client = |url: &str, agency: &str| {
        xgate::client::Client::for_agency(&fed_pki, &id(agency), url, Protocol::Auto)
            .expect("client")
    };
    let signer = xgate::client::EnvelopeSigner::for_agency(&fed_pki, &id("state")).expect("signer");
    let record = |text: &str| {
        signer
            .sign(&id("treasury"), "record.send", body(text), 60, None)
            .expect("sign")
    };
    let mut state = client(gateway.url(), "state");
    runtime().block_on(async {
        let before = submit(&mut state, &record("before")).await;
        assert_eq!(before.status, StatusCode::CREATED);
        set_fault(&fault_file, "panic");
        let reply = tokio::time::timeout(
            Duration::from_secs(20),
            submit(&mut state, &record("the one that panics")),
        )
        .await
        .expect("answered, not left waiting");
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(error_code(&reply), "unavailable");
        let message: Value = serde_json::from_slice(&reply.body).expect("json");
        assert!(
            message["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("resubmit")),
            "{message}"
        );
    });
    let status = gateway
        .wait_exit(Duration::from_secs(60))
        .expect("the gateway stops by itself");
    assert!(!status.success(), "exits non-zero: {status:?}");
    let log = gateway.log_output();
    assert!(log.contains("the commit thread panicked"), "{log}");
    assert!(
        log.contains("xgate: error: the commit thread failed"),
        "{log}"
    );

    // A supervisor restarts it: it serves again, with everything
    // acknowledged before the panic.
    set_fault(&fault_file, "none");
    drop(gateway);
    let gateway = start_gateway(root.path(), &[], &env);
    let mut state = client(gateway.url(), "state");
    let mut treasury = client(gateway.url(), "treasury");
    runtime().block_on(async {
        let after = submit(&mut state, &record("after")).await;
        assert_eq!(after.status, StatusCode::CREATED);
        let receipt: Value = serde_json::from_slice(&after.body).expect("receipt");
        assert_eq!(
            receipt["log_index"], 1,
            "the panicking envelope was not logged"
        );
        assert_eq!(federation::inbox_len(&mut treasury).await, 2);
    });
}

//! The review-queue gauges of `/metrics` over real TLS: kept as grants and
//! reviews commit, so a scrape reads no store (it answers while every
//! store read fails, the `read` fault of the test build's fault injector),
//! overdue grants are counted as time passes with no commit, and a
//! restarted gateway starts from the queue in its store.

mod federation;

use std::path::Path;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use xgate_server::registry::Registry;

use federation::assets::{Desk, desks, federation};
use federation::{Federation, id, runtime, start_gateway};

fn set_fault(file: &Path, fault: &str) {
    std::fs::write(file, fault).expect("write the fault file");
}

/// An emergency request that breaks the glass under the default policy,
/// answered to the requester's registered key.
fn emergency(fed: &Federation, requester: &str) -> Value {
    let registry = Registry::load(&fed.pki().join("registry.toml")).expect("registry");
    let kid = registry
        .get(&id(requester))
        .and_then(|a| a.encryption_key.get("kid"))
        .cloned()
        .expect("kid");
    json!({"subject": "hhs-mrn-000123", "purpose": "ETREAT", "incident": "INC-1",
        "responder": {"name": "Dr. Casey Example", "role": "medical-officer"},
        "sections": ["allergies"], "reply_key": kid})
}

/// `(xgate_reviews_pending, xgate_reviews_overdue)`, asserting the scrape
/// succeeds.
async fn gauges(desk: &mut Desk) -> (String, String) {
    let reply = desk
        .client
        .request(Method::GET, "/metrics", None, Vec::new())
        .await
        .expect("metrics");
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, StatusCode::OK, "{text}");
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| format!("{name} missing"))
    };
    (
        value("xgate_reviews_pending "),
        value("xgate_reviews_overdue "),
    )
}

fn pair(pending: &str, overdue: &str) -> (String, String) {
    (pending.to_owned(), overdue.to_owned())
}

#[test]
fn review_gauges_are_kept_as_the_queue_changes_not_read_at_each_scrape() {
    let faults = tempfile::tempdir().expect("tempdir");
    let fault_file = faults.path().join("fault");
    let fault_arg = fault_file.display().to_string();
    let env = [
        ("XGATE_FAULT_FILE", fault_arg.as_str()),
        ("XGATE_REVIEW_DUE_SECS", "3"),
    ];
    let fed = federation(&env);
    let body = emergency(&fed, "state");
    let [mut state, _, _, mut hhs, _] = desks(&fed);
    let first = runtime().block_on(async {
        assert_eq!(gauges(&mut hhs).await, pair("0", "0"));
        let (_, first) = state.accepted("hhs", "medical.request", body.clone()).await;
        state.accepted("hhs", "medical.request", body.clone()).await;
        assert_eq!(gauges(&mut hhs).await, pair("2", "0"));

        // Every store read fails now: the inbox cannot be read, the
        // gauges still can, and they follow the clock.
        set_fault(&fault_file, "read");
        let inbox = hhs
            .client
            .request(Method::GET, "/v1/inbox", None, Vec::new())
            .await
            .expect("inbox");
        assert_eq!(
            inbox.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "the fault is on"
        );
        assert_eq!(gauges(&mut hhs).await, pair("2", "0"));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(
            gauges(&mut hhs).await,
            pair("2", "2"),
            "both overdue by now"
        );
        set_fault(&fault_file, "none");

        // A review takes one off the queue.
        let review = json!({"request": first, "outcome": "appropriate", "note": "n"});
        hhs.accepted("hhs", "review.decision", review).await;
        assert_eq!(gauges(&mut hhs).await, pair("1", "1"));
        first
    });

    // Restarted, the gateway reads the queue from its store once.
    let Federation { root, gateway } = fed;
    assert_eq!(gateway.stop(), Some(0));
    let fed = Federation {
        gateway: start_gateway(root.path(), &[], &env),
        root,
    };
    let [mut state, _, _, mut hhs, _] = desks(&fed);
    runtime().block_on(async {
        assert_eq!(gauges(&mut hhs).await, pair("1", "1"));
        let (_, fresh) = state.accepted("hhs", "medical.request", body).await;
        assert_ne!(fresh, first);
        assert_eq!(gauges(&mut hhs).await, pair("2", "1"));
    });
}

//! Asset kinds are subject to policy like any other: a federation can let an
//! agency receive transfers from some agencies and not others. In process,
//! over a real sled log, with the policy a federation would write.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use xgate::client::EnvelopeSigner;
use xgate_ledger::{Log, OpenOptions};
use xgate_server::envelope::Limits;
use xgate_server::http::error::{ApiError, Code};
use xgate_server::pipeline::Gateway;
use xgate_server::policy::Policy;
use xgate_server::registry::AgencyId;

/// Treasury takes transfers from gsa only; everything else about assets is
/// open to everyone.
const POLICY: &str = r#"
version = 1

[[rule]]
name = "treasury takes transfers from gsa only"
kinds = ["asset.transfer.offer"]
from = ["state", "hhs"]
to = ["treasury"]
effect = "deny"

[[rule]]
name = "asset custody"
kinds = ["asset.register", "asset.transfer.offer", "asset.transfer.accept",
         "asset.transfer.reject", "inventory.report"]
from = ["*"]
to = ["*"]
effect = "allow"
"#;

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn a_policy_decides_who_may_offer_assets_to_whom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["state", "treasury", "gsa", "hhs"];
    let ids: Vec<AgencyId> = names.iter().map(|a| a.parse().expect("id")).collect();
    let pki = dir.path().join("pki");
    let registry = Arc::new(xgate_server::pki::init(&pki, &ids, &[], false).expect("pki"));
    let policy = Policy::parse(POLICY, "test policy", &registry).expect("policy");
    let log = Arc::new(
        Log::create_or_open(&dir.path().join("data"), &OpenOptions::default()).expect("log"),
    );
    let gateway = Gateway::new(
        Arc::clone(&log) as Arc<dyn xgate_ledger::Ledger>,
        Arc::clone(&registry),
        policy,
        Limits::default(),
    )
    .expect("gateway");
    let signer = |a: usize| EnvelopeSigner::for_agency(&pki, &ids[a]).expect("signer");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let submit = |by: usize, to: usize, kind: &str, body: Value| {
        let jws = signer(by)
            .sign(&ids[to], kind, object(body), 60, None)
            .expect("sign");
        runtime
            .block_on(gateway.submit(&ids[by], jws.as_bytes()))
            .map_err(ApiError::from)
    };
    let register = |by: usize, tag: &str| {
        submit(
            by,
            by,
            "asset.register",
            json!({"tag": tag, "serial": "s", "category": "radio",
            "description": "d", "location": "HQ", "holder": {"agency": names[by], "person": "p"}}),
        )
        .expect("register");
    };
    let offer = |by: usize, tag: &str| {
        submit(
            by,
            1,
            "asset.transfer.offer",
            json!({"tag": tag, "to": {"agency": "treasury", "person": "q"}, "reason": "r"}),
        )
    };
    register(0, "S-1");
    register(2, "G-1");
    let size = log.size();
    let refused = offer(0, "S-1").expect_err("state may not offer to treasury");
    assert_eq!(refused.code, Code::PolicyDenied);
    assert!(
        refused
            .message
            .contains("treasury takes transfers from gsa only"),
        "{}",
        refused.message
    );
    assert_eq!(log.size(), size, "a denied offer leaves no trace");
    offer(2, "G-1").expect("gsa may");
}

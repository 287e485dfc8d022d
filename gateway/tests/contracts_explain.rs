//! `GET /v1/contracts/explain/{index}` and `xgate contracts explain`
//! through a real gateway (issue 25): for an entry, the events it caused,
//! each contract in force on them with the act it took or the condition
//! that was false, and the acts of the chain it started; an act entry
//! explained by the discrepancies it opened, a clock.tick by the deadline
//! its contracts acted on; a bad index refused as
//! `GET /v1/log/entries/{index}` refuses it; and after a reload to
//! another policy, the acts still told but no contract.

mod federation;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use federation::assets::desks;
use federation::contracts::{entry, index};
use federation::{Federation, error_code, get_json, runtime, xgate};
use xgate::client::Client;

/// The contracts this test adds to the shared ones
/// (`federation::contracts::CONTRACTS`): two on the deadline.
const MORE: &str = r#"
[[contract]]
name = "overdue-to-auditors"
on = "deadline:recount-now"
when = 'deadline.agency == "treasury"'
do = "escalate"

[[contract]]
name = "overdue-to-gsa"
on = "deadline:recount-now"
when = 'deadline.agency == "gsa"'
do = "escalate"
"#;

fn policy() -> String {
    federation::contracts::policy(MORE)
}

/// The explanation of entry `at`, as the gateway answers it.
async fn explain(client: &mut Client, at: u64) -> Value {
    get_json(
        client,
        &format!("/v1/contracts/explain/{at}"),
        StatusCode::OK,
    )
    .await
}

/// The act entry at `at` with its index, as `acts` lists it.
async fn act(client: &mut Client, at: u64) -> Value {
    let mut act = json!({"index": at});
    let logged = entry(client, at).await;
    assert_eq!(logged["kind"], "contract.act", "{logged}");
    for (k, v) in logged.as_object().expect("object") {
        act[k] = v.clone();
    }
    act
}

/// The keys of a JSON object, in the order the answer wrote them.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// The status and error of `method` on `path`.
async fn refused(client: &mut Client, method: Method, path: &str) -> (StatusCode, String, Value) {
    let reply = client
        .request(method, path, None, Vec::new())
        .await
        .expect("a response");
    let body: Value = serde_json::from_slice(&reply.body).expect("JSON");
    (
        reply.status,
        error_code(&reply),
        body["error"]["message"].clone(),
    )
}

/// What `xgate contracts explain ENTRY` prints, as `agency`.
fn cli(fed: &Federation, agency: &str, at: u64) -> String {
    let pki = fed.pki().display().to_string();
    let entry = at.to_string();
    xgate()
        .run(
            &[
                "contracts",
                "explain",
                &entry,
                "--pki",
                &pki,
                "--as",
                agency,
                "--gateway",
                fed.gateway.url(),
            ],
            b"",
        )
        .expect_ok()
}

#[test]
fn an_entry_is_explained_by_its_triggers_contracts_and_acts() {
    let (fed, _dir, policy_path) = federation::contracts::start(MORE);
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(policy().as_bytes()));
    let rt = runtime();
    let [mut state, mut treasury, _gsa, _hhs, mut gao] = rt.block_on(async { desks(&fed) });

    let (registered, offered, bad, rejected) = rt.block_on(async {
        let registered = index(&treasury.register("LAP-1", "p-1", "DESK").await);
        let offered = index(&treasury.offer("LAP-1", "gsa", "p-2").await.0);
        let bad = index(&treasury.register("BAD-1", "p-1", "DESK").await);
        treasury.register("LAP-2", "p-1", "DESK").await;
        let (_, offer) = treasury.offer("LAP-2", "state", "p-3").await;
        let rejected = index(&state.reject("treasury", "LAP-2", &offer).await);
        (registered, offered, bad, rejected)
    });

    // The offer auto-accepted, exactly as the endpoint answers it.
    rt.block_on(async {
        let listed = get_json(&mut gao.client, "/v1/contracts", StatusCode::OK).await;
        let contract_hash = |name: &str| {
            listed["contracts"]
                .as_array()
                .expect("contracts")
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["hash"].clone())
                .expect("listed")
        };
        // Any agency may ask, not only the parties.
        let explained = explain(&mut state.client, offered).await;
        let accepted = act(&mut gao.client, offered + 1).await;
        assert_eq!(accepted["act"], "accept_offer");
        assert_eq!(
            explained,
            json!({
                "entry": offered,
                "kind": "asset.transfer.offer",
                "policy": hash,
                "in_force": true,
                "triggers": ["envelope:asset.transfer.offer", "offer.opened"],
                "contracts": [
                    {"name": "treasury-to-gsa-laptops", "on": "envelope:asset.transfer.offer",
                     "when": r#"offer.from == "treasury" && offer.to == "gsa" && asset.category == "laptop""#,
                     "do": "accept_offer", "hash": contract_hash("treasury-to-gsa-laptops"),
                     "fired": true, "act": offered + 1, "outcome": "done", "error": null},
                    {"name": "no-phones-to-hhs", "on": "offer.opened",
                     "when": r#"offer.to == "hhs" && asset.category == "phone""#,
                     "do": "reject_offer", "hash": contract_hash("no-phones-to-hhs"),
                     "fired": false, "act": null, "outcome": null, "error": null},
                ],
                "acts": [accepted],
            })
        );
        assert_eq!(
            keys(&explained),
            ["entry", "kind", "policy", "in_force", "triggers", "contracts", "acts"]
        );
        assert_eq!(
            keys(&explained["contracts"][0]),
            ["name", "on", "when", "do", "hash", "fired", "act", "outcome", "error"]
        );
        assert_eq!(keys(&explained["acts"][0])[0], "index");
    });
    let out = cli(&fed, "gsa", offered);
    assert_eq!(
        out,
        format!(
            "entry {offered}: asset.transfer.offer, policy {hash} (in force)\n\
             trigger: envelope:asset.transfer.offer\n\
             trigger: offer.opened\n\
             fired: treasury-to-gsa-laptops on envelope:asset.transfer.offer, do accept_offer: act {} done\n\
             not fired: no-phones-to-hhs on offer.opened: condition false: offer.to == \"hhs\" && asset.category == \"phone\"\n\
             act {}: accept_offer by treasury-to-gsa-laptops (trigger {offered}), done\n",
            offered + 1,
            offered + 1
        )
    );

    // A registration whose contract's condition was false: no act, and
    // the condition says why.
    let explained = rt.block_on(explain(&mut gao.client, registered));
    assert_eq!(explained["contracts"].as_array().map(Vec::len), Some(2));
    assert_eq!(explained["contracts"][0]["fired"], false);
    assert_eq!(explained["acts"], json!([]));
    assert_eq!(
        cli(&fed, "state", registered),
        format!(
            "entry {registered}: asset.register, policy {hash} (in force)\n\
             trigger: envelope:asset.register\n\
             not fired: broken-arithmetic on envelope:asset.register: condition false: \
             asset.tag == \"BAD-1\" && entry.time / (size(asset.tag) - 5) > 0\n\
             not fired: recount-at-once on envelope:asset.register: condition false: \
             asset.location == \"SOON\"\n"
        )
    );

    // A contract whose condition failed to evaluate: fired, failed.
    let explained = rt.block_on(explain(&mut gao.client, bad));
    assert_eq!(explained["contracts"][0]["outcome"], "failed");
    assert_eq!(explained["contracts"][0]["error"], "division_by_zero");
    assert_eq!(explained["acts"][0]["error"], "division_by_zero");
    assert_eq!(
        cli(&fed, "treasury", bad),
        format!(
            "entry {bad}: asset.register, policy {hash} (in force)\n\
             trigger: envelope:asset.register\n\
             fired: broken-arithmetic on envelope:asset.register, do escalate: act {} failed (division_by_zero)\n\
             not fired: recount-at-once on envelope:asset.register: condition false: \
             asset.location == \"SOON\"\n\
             act {}: escalate by broken-arithmetic (trigger {bad}), failed (division_by_zero)\n",
            bad + 1,
            bad + 1
        )
    );

    // A chain: the rejection's act opens a discrepancy, which is escalated.
    // The rejection's explanation lists both acts; the first act's lists
    // the discrepancy as its trigger and the escalation as fired.
    let (opened, escalated) = (rejected + 1, rejected + 2);
    let explained = rt.block_on(explain(&mut gao.client, rejected));
    let acts: Vec<(u64, &str, u64)> = explained["acts"]
        .as_array()
        .expect("acts")
        .iter()
        .map(|a| {
            (
                a["index"].as_u64().expect("index"),
                a["act"].as_str().expect("act"),
                a["trigger"].as_u64().expect("trigger"),
            )
        })
        .collect();
    assert_eq!(
        acts,
        [
            (opened, "open_discrepancy", rejected),
            (escalated, "escalate", opened)
        ]
    );
    assert_eq!(
        cli(&fed, "gao", rejected),
        format!(
            "entry {rejected}: asset.transfer.reject, policy {hash} (in force)\n\
             trigger: envelope:asset.transfer.reject\n\
             fired: flag-rejections on envelope:asset.transfer.reject, do open_discrepancy: act {opened} done\n\
             act {opened}: open_discrepancy by flag-rejections (trigger {rejected}), done\n\
             act {escalated}: escalate by escalate-flags (trigger {opened}), done\n"
        )
    );
    let first = rt.block_on(explain(&mut gao.client, opened));
    assert_eq!(first["kind"], "contract.act");
    assert_eq!(first["triggers"], json!(["discrepancy.opened"]));
    assert_eq!(first["contracts"][0]["act"], escalated);
    assert_eq!(
        cli(&fed, "gao", opened),
        format!(
            "entry {opened}: contract.act, policy {hash} (in force)\n\
             trigger: discrepancy.opened\n\
             fired: escalate-flags on discrepancy.opened, do escalate: act {escalated} done\n\
             not fired: clear-flags-at-hq on discrepancy.opened: condition false: \
             discrepancy.type == \"flagged\" && discrepancy.location == \"HQ-CLEAR\"\n\
             act {escalated}: escalate by escalate-flags (trigger {opened}), done\n"
        )
    );

    // A deadline due at once fires at the next clock.tick: the tick is
    // explained by the deadline its contracts acted on.
    let tick = rt.block_on(async {
        let soon = index(&treasury.register("LAP-9", "p-1", "SOON").await);
        let tick = soon + 2;
        let deadline = Instant::now() + Duration::from_secs(30);
        while federation::log_size(&mut gao.client).await <= tick + 1 {
            assert!(Instant::now() < deadline, "no tick within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tick
    });
    let explained = rt.block_on(explain(&mut gao.client, tick));
    assert_eq!(explained["kind"], "clock.tick");
    assert_eq!(explained["acts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        cli(&fed, "gao", tick),
        format!(
            "entry {tick}: clock.tick, policy {hash} (in force)\n\
             trigger: deadline:recount-now\n\
             fired: overdue-to-auditors on deadline:recount-now, do escalate: act {} done\n\
             not fired: overdue-to-gsa on deadline:recount-now: condition false: \
             deadline.agency == \"gsa\"\n\
             act {}: escalate by overdue-to-auditors (trigger {tick}), done\n",
            tick + 1,
            tick + 1
        )
    );

    // A bad index gets what the log's own entry route gives it; another
    // method, 405.
    let size = rt.block_on(federation::log_size(&mut gao.client));
    rt.block_on(async {
        for bad_index in ["x1".to_owned(), "-1".to_owned(), size.to_string()] {
            let explain_path = format!("/v1/contracts/explain/{bad_index}");
            let entry_path = format!("/v1/log/entries/{bad_index}");
            let got = refused(&mut gao.client, Method::GET, &explain_path).await;
            let want = refused(&mut gao.client, Method::GET, &entry_path).await;
            assert_eq!(got, want, "{bad_index}");
        }
        let (status, code, _) =
            refused(&mut gao.client, Method::GET, "/v1/contracts/explain/x1").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "malformed")
        );
        let (status, code, message) = refused(
            &mut gao.client,
            Method::GET,
            &format!("/v1/contracts/explain/{size}"),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "not_found")
        );
        assert_eq!(
            message,
            format!("index {size} is out of range: the log has {size} entries")
        );
        let (status, code, _) =
            refused(&mut gao.client, Method::POST, "/v1/contracts/explain/0").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        );
    });
    let pki = fed.pki().display().to_string();
    let past = size.to_string();
    let err = xgate()
        .run(
            &[
                "contracts",
                "explain",
                &past,
                "--pki",
                &pki,
                "--as",
                "gao",
                "--gateway",
                fed.gateway.url(),
            ],
            b"",
        )
        .expect_error(1);
    assert_eq!(
        err,
        format!(
            "the gateway refused the request (404 not_found): index {size} is out of range: \
             the log has {size} entries"
        )
    );

    // Reloaded to another policy file: the offer's policy is no longer in
    // force, so its contracts are not known here; its act still is.
    let other = policy().replace("name = \"no-phones-to-hhs\"", "name = \"no-phones-at-all\"");
    std::fs::write(&policy_path, &other).expect("other policy");
    let other_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(other.as_bytes()));
    fed.gateway.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = rt.block_on(get_json(&mut gao.client, "/v1/contracts", StatusCode::OK));
        if now["policy"] == other_hash.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", fed.gateway.log_output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let explained = rt.block_on(explain(&mut gao.client, offered));
    assert_eq!(explained["in_force"], false);
    assert_eq!(explained["policy"], hash.as_str());
    assert_eq!(explained["contracts"], json!([]));
    assert_eq!(explained["acts"][0]["index"], offered + 1);
    assert_eq!(
        cli(&fed, "gao", offered),
        format!(
            "entry {offered}: asset.transfer.offer, policy {hash} (not in force)\n\
             trigger: envelope:asset.transfer.offer\n\
             trigger: offer.opened\n\
             act {}: accept_offer by treasury-to-gsa-laptops (trigger {offered}), done\n",
            offered + 1
        )
    );
}

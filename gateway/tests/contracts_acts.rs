//! Contracts acting through a real gateway (issue 25): each act logged as a
//! `contract.act` entry right after the entry that triggered it, in the
//! same commit, with the effect it names on the state; notices in the
//! inboxes they go to, provable by their receipts; a contract that fails
//! logged as failed, counted, and never blocking the commit; and `xgate
//! audit replay`, given the policy file, recomputing every act.

mod federation;

use base64::Engine as _;
use http::StatusCode;
use serde_json::{Value, json};

use federation::assets::{ACCEPT, OFFER, REGISTER, desks, register_body};
use federation::contracts::{entry, index};
use federation::{Federation, get_json, metric, replay_data, runtime, xgate};
use xgate::client::Client;

/// The kind of a second person's approval of a held offer.
const APPROVE: &str = "contract.approve";
/// The kind of its denial.
const DENY: &str = "contract.deny";

/// The contracts these tests add to the shared ones
/// (`federation::contracts::CONTRACTS`).
const MORE: &str = r#"
[[contract]]
name = "tell-hhs-of-registrations"
on = "envelope:asset.register"
when = 'asset.location.startsWith("HQ")'
do = "notify"
to = "hhs"

[[contract]]
name = "recount-after-registration"
on = "envelope:asset.register"
when = 'asset.location == "VAULT"'
do = "set_deadline"
deadline = "recount"
after_hours = 72

[[contract]]
name = "overdue-to-auditors"
on = "deadline:recount-now"
when = 'deadline.agency == "treasury" && entry.kind == "asset.register"'
do = "escalate"

[[contract]]
name = "overdue-to-sender"
on = "deadline:recount-now"
when = 'has(deadline.tag) && deadline.tag.startsWith("LAP")'
do = "notify"
to = "sender"

[[contract]]
name = "armory-needs-two"
on = "envelope:asset.transfer.offer"
when = 'offer.to == "state" && asset.location == "ARMORY"'
do = "require_second_approval"
"#;

/// The acts logged right after the entry at `index`, up to the next entry
/// that is not an act.
async fn acts_after(client: &mut Client, index: u64, size: u64) -> Vec<Value> {
    let mut acts = Vec::new();
    for i in index + 1..size {
        let e = entry(client, i).await;
        if e["kind"] != "contract.act" {
            break;
        }
        acts.push(e);
    }
    acts
}

/// The acts logged right after the entry `receipt` is for, and its index.
async fn acts_of(client: &mut Client, receipt: &Value) -> (u64, Vec<Value>) {
    let at = index(receipt);
    let size = federation::log_size(client).await;
    (at, acts_after(client, at, size).await)
}

/// `agency`'s inbox items of kind `contract.act`.
async fn notices(client: &mut Client) -> Vec<Value> {
    let page = get_json(client, "/v1/inbox", StatusCode::OK).await;
    page["envelopes"]
        .as_array()
        .expect("envelopes")
        .iter()
        .filter(|i| i["kind"] == "contract.act")
        .cloned()
        .collect()
}

/// What `xgate audit monitor --replay` makes of the public log once it
/// serves all `size` entries: acts and ticks fold with the envelopes, an
/// offer answered or held by a contract as one answered by its recipient.
fn public_replay(fed: &Federation, size: u64) -> String {
    let root = fed.root.path();
    let vkey = federation::log_vkey(&root.join("data"));
    let ca = root.join("pki/ca.crt").display().to_string();
    let state = root.join("monitor.json");
    let state_arg = state.display().to_string();
    let args = [
        "audit",
        "monitor",
        "--log",
        fed.gateway.public_url(),
        "--ca",
        &ca,
        "--key",
        &vkey,
        "--state",
        &state_arg,
        "--once",
        "--replay",
    ];
    // The public checkpoint follows the log within a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let _ = std::fs::remove_file(&state);
        let run = xgate().run(&args, b"");
        let out = String::from_utf8_lossy(&run.stdout).into_owned();
        if run.code == Some(0) && out.starts_with(&format!("size {size}:")) {
            return out;
        }
        assert!(std::time::Instant::now() < deadline, "{out} {}", run.stderr);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn start() -> (Federation, tempfile::TempDir, std::path::PathBuf) {
    federation::contracts::start(MORE)
}

#[test]
fn each_act_is_logged_after_its_trigger_with_its_effect_and_replays() {
    let (fed, _dir, policy_path) = start();
    let policy_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&policy_path).expect("policy"),
    ));
    runtime().block_on(async {
        let [mut state, mut treasury, mut gsa, mut hhs, mut gao] = desks(&fed);

        // A registration at HQ: hhs is told, with a notice whose receipt
        // carries the act itself.
        let registered = treasury.register("LAP-1", "p-1", "HQ-3").await;
        let (at, acts) = acts_of(&mut gao.client, &registered).await;
        assert_eq!(acts.len(), 1, "{acts:?}");
        let notify = &acts[0];
        assert_eq!(notify["act"], "notify");
        assert_eq!(notify["contract"], "tell-hhs-of-registrations");
        assert_eq!(notify["outcome"], "done");
        assert_eq!(notify["to"], "hhs");
        assert_eq!(notify["tag"], "LAP-1");
        assert_eq!(notify["trigger"], at);
        assert_eq!(notify["policy"], policy_hash.as_str());
        let logged = entry(&mut gao.client, at).await;
        assert_eq!(
            notify["time"], logged["time"],
            "the trigger's time, not the clock"
        );
        assert_eq!(notify["contract_hash"].as_str().map(str::len), Some(64));
        let told = notices(&mut hhs.client).await;
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["from"], "treasury");
        assert_eq!(told[0]["receipt"]["log_index"], at + 1);
        let proven = base64::engine::general_purpose::STANDARD
            .decode(told[0]["receipt"]["entry"].as_str().expect("entry"))
            .expect("base64");
        assert_eq!(
            serde_json::from_slice::<Value>(&proven).expect("json"),
            *notify
        );
        assert!(notices(&mut gsa.client).await.is_empty());

        // An offer between treasury and gsa of a laptop is accepted on
        // gsa's behalf in the same commit: gsa holds it at once.
        let (offered, _) = treasury.offer("LAP-1", "gsa", "p-2").await;
        let (at, acts) = acts_of(&mut gao.client, &offered).await;
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0]["act"], "accept_offer");
        assert_eq!(acts[0]["outcome"], "done");
        let held = gsa.show("LAP-1").await;
        assert_eq!(held["holder"], json!({"agency": "gsa", "person": "p-2"}));
        assert_eq!(held["status"], "held");
        let chain = held["chain"].as_array().expect("chain");
        let last = chain.last().expect("an event");
        assert_eq!(last["kind"], "accepted");
        assert_eq!(last["by"], "gsa");
        assert_eq!(last["log_index"], at + 1);
        // Both parties hear of it.
        assert_eq!(notices(&mut treasury.client).await.len(), 1);
        assert_eq!(notices(&mut gsa.client).await.len(), 1);

        // A phone offered to hhs is rejected on hhs's behalf.
        let me = treasury.me();
        let mut phone = register_body("PH-1", &me, "p-1", "DESK");
        phone["category"] = json!("phone");
        treasury.accepted(&me, REGISTER, phone).await;
        let (offered, _) = treasury
            .accepted(
                "hhs",
                OFFER,
                json!({"tag": "PH-1", "to": {"agency": "hhs", "person": "p-7"}, "reason": "loan"}),
            )
            .await;
        let (_, acts) = acts_of(&mut gao.client, &offered).await;
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0]["act"], "reject_offer");
        let held = treasury.show("PH-1").await;
        assert_eq!(held["holder"]["agency"], "treasury");
        assert_eq!(held["offer"], Value::Null);

        // A rejection by a person opens a flagged discrepancy, which is
        // escalated to the auditor (a chain of two); at HQ-CLEAR another
        // contract closes it again (a chain of two on one event).
        treasury.register("LAP-2", "p-1", "DESK").await;
        let (_, offer) = treasury.offer("LAP-2", "state", "p-3").await;

        let rejected = state.reject("treasury", "LAP-2", &offer).await;
        let (at, acts) = acts_of(&mut gao.client, &rejected).await;
        let names: Vec<&str> = acts
            .iter()
            .map(|a| a["act"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["open_discrepancy", "escalate"], "{acts:?}");
        assert_eq!(
            acts[1]["trigger"],
            at + 1,
            "the escalation's trigger is the act"
        );
        let open = gao.show("LAP-2").await;
        assert_eq!(open["discrepancies"][0]["type"], "flagged", "{open}");
        let escalated = notices(&mut gao.client).await;
        assert_eq!(escalated.len(), 1, "{escalated:?}");
        assert_eq!(escalated[0]["receipt"]["log_index"], at + 2);

        // At HQ-CLEAR, a second contract on the same event closes the
        // discrepancy the first act opened (a chain of three entries).
        treasury.register("LAP-4", "p-1", "HQ-CLEAR").await;
        let (_, offer) = treasury.offer("LAP-4", "state", "p-3").await;
        let rejected = state.reject("treasury", "LAP-4", &offer).await;
        let (at, acts) = acts_of(&mut gao.client, &rejected).await;
        let names: Vec<&str> = acts
            .iter()
            .map(|a| a["act"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            ["open_discrepancy", "escalate", "close_discrepancy"],
            "{acts:?}"
        );
        assert_eq!(acts[2]["trigger"], at + 1);
        assert_eq!(gao.show("LAP-4").await["discrepancies"], json!([]));

        // A contract whose condition fails on this entry is logged as
        // failed with its code and counted; the registration commits.
        let bad = treasury.register("BAD-1", "p-1", "DESK").await;
        let (_, acts) = acts_of(&mut gao.client, &bad).await;
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0]["contract"], "broken-arithmetic");
        assert_eq!(acts[0]["outcome"], "failed");
        assert_eq!(acts[0]["error"], "division_by_zero");
        assert_eq!(treasury.show("BAD-1").await["holder"]["agency"], "treasury");
        assert_eq!(
            metric(
                &mut gao.client,
                r#"xgate_contract_failures_total{contract="broken-arithmetic"}"#
            )
            .await,
            Some(1.0)
        );
        assert_eq!(
            metric(
                &mut gao.client,
                r#"xgate_contract_acts_total{contract="treasury-to-gsa-laptops",outcome="done"}"#
            )
            .await,
            Some(1.0)
        );

        // A deadline is logged with its due time, from the entry's time.
        let vault = treasury.register("LAP-3", "p-1", "VAULT").await;
        let (at, acts) = acts_of(&mut gao.client, &vault).await;
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0]["act"], "set_deadline");
        assert_eq!(acts[0]["deadline"], "recount");
        let time = entry(&mut gao.client, at).await["time"]
            .as_i64()
            .expect("time");
        assert_eq!(acts[0]["due"], time + 72 * 3600);
    });

    let size = runtime().block_on(async { federation::log_size(&mut fed.client("gao")).await });
    let public = public_replay(&fed, size);
    assert!(public.contains(" 0 findings"), "{public}");

    // `xgate inbox` shows a notice as the act its receipt proves.
    let pki = fed.pki().display().to_string();
    let listed = xgate()
        .run(
            &[
                "inbox",
                "--pki",
                &pki,
                "--as",
                "hhs",
                "--gateway",
                fed.gateway.url(),
            ],
            b"",
        )
        .expect_ok();
    let items: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let notice = items
        .iter()
        .find(|i| i["kind"] == "contract.act")
        .expect("the notice");
    assert_eq!(notice["body"]["act"], "notify", "{notice}");
    assert_eq!(notice["body"]["contract"], "tell-hhs-of-registrations");
    assert_eq!(notice["sealed"], false);
    assert!(notice.get("refused").is_none(), "{notice}");

    // The replay, given the policy file, recomputes every act and the state
    // they left; without it, the acts cannot be checked.
    let Federation { root, gateway } = fed;
    gateway.stop();
    let policy_arg = policy_path.display().to_string();
    let out = replay_data(root.path(), &["--policy", &policy_arg]).expect_ok();
    assert!(out.contains("the stored state equals"), "{out}");
    assert!(out.contains("; 11 contract acts recomputed)"), "{out}");
    let without = replay_data(root.path(), &[]);
    assert_eq!(without.code, Some(1), "{}", without.stderr);
    let said = String::from_utf8_lossy(&without.stdout);
    assert!(
        said.starts_with(&format!(
            "difference: entry 1: an act under policy {policy_hash}, whose file was not given (--policy FILE)\n"
        )),
        "{said}"
    );
}

#[test]
fn a_deadline_fires_at_a_logged_tick_with_the_ticks_time_and_replays() {
    let (fed, _dir, policy_path) = start();
    let (tick, set_at) = runtime().block_on(async {
        let [_, mut treasury, _, _, mut gao] = desks(&fed);
        let registered = treasury.register("LAP-9", "p-1", "SOON").await;
        let (at, acts) = acts_of(&mut gao.client, &registered).await;
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0]["act"], "set_deadline");
        let time = entry(&mut gao.client, at).await["time"].clone();
        assert_eq!(acts[0]["due"], time, "after 0 hours: due at once");

        // The gateway logs a clock.tick once it is due; the deadline's
        // contracts act right after it, at the tick's time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let tick = loop {
            let size = federation::log_size(&mut gao.client).await;
            if size > at + 2 {
                break at + 2;
            }
            assert!(std::time::Instant::now() < deadline, "no tick within 30 s");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let logged = entry(&mut gao.client, tick).await;
        assert_eq!(logged["kind"], "clock.tick", "{logged}");
        let keys: Vec<&str> = logged
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["kind", "policy", "time", "v"]);
        let tick_time = logged["time"].as_i64().expect("time");
        assert!(tick_time >= time.as_i64().expect("time"));
        let size = federation::log_size(&mut gao.client).await;
        let fired = acts_after(&mut gao.client, tick, size).await;
        let names: Vec<&str> = fired
            .iter()
            .map(|a| a["contract"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            ["overdue-to-auditors", "overdue-to-sender"],
            "{fired:?}"
        );
        for act in &fired {
            assert_eq!(act["trigger"], tick, "{act}");
            assert_eq!(act["time"], tick_time, "the tick's time");
            assert_eq!(act["outcome"], "done", "{act}");
        }
        assert_eq!(fired[1]["to"], "treasury");
        assert_eq!(notices(&mut gao.client).await.len(), 1);
        assert_eq!(notices(&mut treasury.client).await.len(), 1);

        // It fired once: no tick follows while nothing is due.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        assert_eq!(federation::log_size(&mut gao.client).await, size);
        (tick, at)
    });
    assert_eq!(tick, set_at + 2);

    let Federation { root, gateway } = fed;
    gateway.stop();
    let policy_arg = policy_path.display().to_string();
    let out = replay_data(root.path(), &["--policy", &policy_arg]).expect_ok();
    assert!(out.contains("; 3 contract acts recomputed)"), "{out}");
}

#[test]
fn the_two_person_rule_holds_an_offer_until_another_person_approves() {
    let (fed, _dir, policy_path) = start();
    let size = runtime().block_on(async {
        let [mut state, mut treasury, _, _, mut gao] = desks(&fed);
        treasury.register("LAP-7", "p-1", "ARMORY").await;
        let (offered, offer) = treasury.offer("LAP-7", "state", "p-3").await;
        let (at, acts) = acts_of(&mut gao.client, &offered).await;
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0]["act"], "require_second_approval");
        assert_eq!(acts[0]["outcome"], "done");
        let hold = at + 1;
        let held = treasury.show("LAP-7").await;
        assert_eq!(held["status"], "awaiting_approval", "{held}");
        assert_eq!(held["offer"]["hold"]["act"], hold);

        // Nobody can answer it yet.
        let me = treasury.me();
        let answer = json!({"tag": "LAP-7", "offer": offer});
        let refused = |code: &str, status: StatusCode, reply: &xgate::client::Reply| {
            assert_eq!(
                reply.status,
                status,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            assert_eq!(federation::error_code(reply), code);
        };
        let (jws, _) = state.sign(&me, ACCEPT, answer.clone());
        refused(
            "awaiting_approval",
            StatusCode::CONFLICT,
            &state.post(&jws).await,
        );

        // The person who offered it cannot approve it; a wrong act is no
        // hold; another person of treasury can.
        let approval =
            |act: u64, approver: &str| json!({"tag": "LAP-7", "act": act, "approver": approver});
        let (jws, _) = treasury.sign(&me, APPROVE, approval(hold, "p-1"));
        refused(
            "same_person",
            StatusCode::FORBIDDEN,
            &treasury.post(&jws).await,
        );
        let (jws, _) = treasury.sign(&me, APPROVE, approval(hold + 5, "p-5"));
        refused("no_hold", StatusCode::CONFLICT, &treasury.post(&jws).await);
        let (jws, _) = state.sign("state", APPROVE, approval(hold, "p-5"));
        refused("not_holder", StatusCode::FORBIDDEN, &state.post(&jws).await);
        // None of the four refusals was logged or changed the hold.
        assert_eq!(federation::log_size(&mut gao.client).await, hold + 1);
        let still = treasury.show("LAP-7").await;
        assert_eq!(
            (&still["status"], &still["offer"]),
            (&held["status"], &held["offer"])
        );
        // `xgate asset approve` sends the approval.
        let pki = fed.pki().display().to_string();
        let hold_arg = hold.to_string();
        let approved = xgate()
            .run(
                &[
                    "asset",
                    "approve",
                    "--pki",
                    &pki,
                    "--as",
                    "treasury",
                    "--gateway",
                    fed.gateway.url(),
                    "--tag",
                    "LAP-7",
                    "--act",
                    &hold_arg,
                    "--approver",
                    "p-5",
                ],
                b"",
            )
            .expect_ok();
        let approved: Value = serde_json::from_str(approved.trim()).expect("a JSON line");
        assert_eq!(approved["kind"], APPROVE, "{approved}");
        assert_eq!(treasury.show("LAP-7").await["status"], "offered");
        state.accept(&me, "LAP-7", &offer, None).await;
        let moved = state.show("LAP-7").await;
        assert_eq!(moved["holder"], json!({"agency": "state", "person": "p-3"}));
        let kinds: Vec<&str> = moved["chain"]
            .as_array()
            .expect("chain")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["registered", "offered", "approved", "accepted"]);

        // A denial withdraws the held offer.
        treasury.register("LAP-8", "p-1", "ARMORY").await;
        let (offered, offer) = treasury.offer("LAP-8", "state", "p-3").await;
        let (at, _) = acts_of(&mut gao.client, &offered).await;
        let deny = json!({"tag": "LAP-8", "act": at + 1, "approver": "p-1"});
        treasury.accepted(&me, DENY, deny).await;
        let withdrawn = treasury.show("LAP-8").await;
        assert_eq!(withdrawn["status"], "held");
        assert_eq!(withdrawn["offer"], Value::Null);
        let (jws, _) = state.sign(&me, ACCEPT, json!({"tag": "LAP-8", "offer": offer}));
        refused(
            "no_open_offer",
            StatusCode::CONFLICT,
            &state.post(&jws).await,
        );
        federation::log_size(&mut gao.client).await
    });
    let public = public_replay(&fed, size);
    assert!(public.contains(" 0 findings"), "{public}");

    let Federation { root, gateway } = fed;
    gateway.stop();
    let policy_arg = policy_path.display().to_string();
    let out = replay_data(root.path(), &["--policy", &policy_arg]).expect_ok();
    assert!(out.contains("; 2 contract acts recomputed)"), "{out}");
}

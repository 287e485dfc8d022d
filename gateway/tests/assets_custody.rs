//! Asset custody end to end, over real mutual TLS on loopback: custody
//! moving between agencies with a verifiable receipt for every event, and
//! offers that lapse.
//!
//! The rules themselves are unit- and property-tested in
//! `gateway/server/src/assets`; these tests pin what a client sees. Reports and the
//! discrepancy feed are in `assets_reconcile`, refusals and listings in
//! `assets_rules`.

mod federation;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use federation::assets::{ACCEPT, REJECT, answer, desks, federation, now};
use federation::{Federation, get_json, inbox_len, runtime};
use http::StatusCode;
use serde_json::{Value, json};
use xgate::client::Client;
use xgate_server::receipt::Receipt;

#[test]
fn custody_moves_on_accept_stays_on_reject_and_every_event_has_a_receipt() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [mut state, mut treasury, mut gsa, mut hhs, mut gao] = desks(&fed);

        let registered = treasury.register("LAP-1", "p-1", "HQ").await;
        assert!(
            registered.get("reconciliation_id").is_none(),
            "{registered}"
        );
        let held = treasury.show("LAP-1").await;
        assert_eq!(held["status"], "held");
        assert_eq!(
            held["holder"],
            json!({"agency": "treasury", "person": "p-1"})
        );
        assert_eq!(held["offer"], Value::Null);
        assert_eq!(held["chain"].as_array().map(Vec::len), Some(1));
        gsa.hidden("LAP-1").await;

        // An open offer: the offered agency may read the asset, and the
        // offer is in its inbox; a third agency sees nothing.
        let (offered, o1) = treasury.offer("LAP-1", "gsa", "p-9").await;
        let offer = treasury.show("LAP-1").await;
        assert_eq!(offer["status"], "offered");
        assert_eq!(offer["offer"]["jti"], o1.as_str());
        assert_eq!(
            offer["offer"]["to"],
            json!({"agency": "gsa", "person": "p-9"})
        );
        let expires = offer["offer"]["expires"].as_i64().expect("expires");
        assert!((expires - now() - 72 * 3600).abs() < 10, "72 h: {expires}");
        assert_eq!(gsa.show("LAP-1").await["status"], "offered");
        assert_eq!(inbox_len(&mut gsa.client).await, 1);
        state.hidden("LAP-1").await;
        // The log entry names the tag, the offer's expiry and a salted
        // hash of the person, never the person.
        let entry = log_entry(&mut gao.client, &offered).await;
        assert_eq!(entry["tag"], "LAP-1");
        assert_eq!(entry["expires"], expires);
        let person = entry["person"].as_str().expect("person hash");
        assert!(person.len() == 64 && person.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!entry.to_string().contains("p-9"), "{entry}");

        let accepted = gsa.accept("treasury", "LAP-1", &o1, Some("Annex")).await;
        for desk in [&mut treasury, &mut gsa, &mut gao] {
            let asset = desk.show("LAP-1").await;
            assert_eq!(asset["holder"], json!({"agency": "gsa", "person": "p-9"}));
            assert_eq!(asset["location"], "Annex");
            assert_eq!(
                (&asset["status"], &asset["offer"]),
                (&json!("held"), &Value::Null)
            );
        }
        state.hidden("LAP-1").await;
        hhs.hidden("LAP-1").await;
        let asset = gsa.show("LAP-1").await;
        let chain = chain_of(&fed, &asset);
        assert_eq!(
            chain.iter().map(|(e, _)| kind_by(e)).collect::<Vec<_>>(),
            [
                ("registered", "treasury"),
                ("offered", "treasury"),
                ("accepted", "gsa")
            ]
        );
        let receipts: Vec<Receipt> = [&registered, &offered, &accepted]
            .into_iter()
            .map(|r| serde_json::from_value(r.clone()).expect("receipt"))
            .collect();
        for ((_, receipt), submitted) in chain.iter().zip(&receipts) {
            assert_eq!(receipt.id, submitted.id);
            assert_eq!(receipt.log_index, submitted.log_index);
        }
        assert_eq!(
            chain[0].0["holder"],
            json!({"agency": "treasury", "person": "p-1"})
        );
        assert_eq!(chain[1].0["jti"], o1.as_str());
        assert_eq!(
            chain[2].0["holder"],
            json!({"agency": "gsa", "person": "p-9"})
        );

        // A rejection closes the offer and leaves custody where it was; the
        // rejecting agency never held the asset, so it cannot read it.
        let (_, o2) = gsa.offer("LAP-1", "state", "p-3").await;
        state.reject("gsa", "LAP-1", &o2).await;
        let asset = gsa.show("LAP-1").await;
        assert_eq!(asset["holder"], json!({"agency": "gsa", "person": "p-9"}));
        assert_eq!(
            (&asset["status"], &asset["offer"]),
            (&json!("held"), &Value::Null)
        );
        let last = asset["chain"]
            .as_array()
            .and_then(|c| c.last())
            .expect("event");
        assert_eq!(
            (&last["kind"], &last["by"]),
            (&json!("rejected"), &json!("state"))
        );
        assert!(last.get("holder").is_none(), "{last}");
        state.hidden("LAP-1").await;

        // The new holder passes it on; the first holder still sees the
        // whole chain, every receipt of which verifies.
        let (_, o3) = gsa.offer("LAP-1", "hhs", "p-4").await;
        hhs.accept("gsa", "LAP-1", &o3, None).await;
        let asset = treasury.show("LAP-1").await;
        assert_eq!(asset["holder"], json!({"agency": "hhs", "person": "p-4"}));
        assert_eq!(
            asset["location"], "Annex",
            "an accept without location keeps it"
        );
        let chain = chain_of(&fed, &asset);
        assert_eq!(
            chain.iter().map(|(e, _)| kind_by(e)).collect::<Vec<_>>(),
            [
                ("registered", "treasury"),
                ("offered", "treasury"),
                ("accepted", "gsa"),
                ("offered", "gsa"),
                ("rejected", "state"),
                ("offered", "gsa"),
                ("accepted", "hhs"),
            ]
        );
        assert_eq!(hhs.show("LAP-1").await["chain"], asset["chain"]);
    });
}

#[test]
fn an_offer_lapses_after_its_ttl_and_a_new_one_may_follow() {
    let fed = federation(&[("XGATE_OFFER_TTL_SECS", "2")]);
    runtime().block_on(async {
        let [mut state, mut treasury, mut gsa, _, mut gao] = desks(&fed);
        treasury.register("RAD-7", "p-1", "Depot").await;
        let (_, o1) = treasury.offer("RAD-7", "gsa", "p-2").await;
        let asset = gsa.show("RAD-7").await;
        let expires = asset["offer"]["expires"].as_i64().expect("expires");
        // Offer times are whole seconds: it lapses once the clock reaches
        // `expires`.
        let lapse = UNIX_EPOCH + Duration::from_secs(u64::try_from(expires).expect("positive"));
        let wait = lapse.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(100)).await;

        let lapsed = treasury.show("RAD-7").await;
        assert_eq!(
            (&lapsed["status"], &lapsed["offer"]),
            (&json!("held"), &Value::Null)
        );
        gsa.hidden("RAD-7").await;
        for kind in [ACCEPT, REJECT] {
            let body = answer("RAD-7", &o1);
            let code = "no_open_offer";
            gsa.refused(&mut gao, "treasury", kind, body, &["RAD-7"], code)
                .await;
        }
        // The lapsed offer no longer blocks a new one.
        let (_, o2) = treasury.offer("RAD-7", "state", "p-3").await;
        let chain = treasury.show("RAD-7").await["chain"].clone();
        let last = chain.as_array().and_then(|c| c.last()).expect("event");
        assert_eq!(
            (&last["kind"], &last["jti"]),
            (&json!("offered"), &json!(o2))
        );
        state.show("RAD-7").await;
    });
}

/// The chain of an asset view, each event with its receipt, which must
/// verify with the log's key and name the event's envelope and index.
fn chain_of(fed: &Federation, asset: &Value) -> Vec<(Value, Receipt)> {
    let key = fed.log_key();
    let chain = asset["chain"].as_array().expect("chain");
    let mut last = None;
    chain
        .iter()
        .map(|link| {
            let receipt: Receipt =
                serde_json::from_value(link["receipt"].clone()).expect("receipt");
            receipt.verify(&key).expect("the receipt verifies");
            assert_eq!(receipt.id, link["envelope"].as_str().expect("envelope"));
            assert_eq!(Some(receipt.log_index), link["log_index"].as_u64());
            assert!(last < Some(receipt.log_index), "oldest first");
            last = Some(receipt.log_index);
            let mut event = link.clone();
            event.as_object_mut().expect("object").remove("receipt");
            (event, receipt)
        })
        .collect()
}

/// The decoded log entry of an accepted envelope's receipt.
async fn log_entry(client: &mut Client, receipt: &Value) -> Value {
    let path = format!("/v1/log/entries/{}", receipt["log_index"]);
    let view = get_json(client, &path, StatusCode::OK).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(view["entry"].as_str().expect("entry"))
        .expect("base64");
    serde_json::from_slice(&bytes).expect("entry JSON")
}

fn kind_by(event: &Value) -> (&str, &str) {
    (
        event["kind"].as_str().expect("kind"),
        event["by"].as_str().expect("by"),
    )
}

//! Asset custody and reconciliation end to end, over real mutual TLS on
//! loopback: custody moving between agencies with a verifiable receipt for
//! every event, offers that lapse, inventory reports and the discrepancy
//! feed (SSE, live and resumed), every custody rule refusing without a
//! trace, and what each agency (and an auditor) may list and read.
//!
//! The rules themselves are unit- and property-tested in
//! `gateway/src/assets`; these tests pin what a client sees.

mod federation;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use federation::{Event, Federation, error_code, get_json, id, inbox_len, log_size, runtime};
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use xgate::client::{Client, EnvelopeSigner, Reply, random_jti};
use xgate::receipt::Receipt;

const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];

fn federation(env: &[(&str, &str)]) -> Federation {
    Federation::start_audited(&AGENCIES, &["gao"], env)
}

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

#[test]
fn an_inventory_report_lists_each_discrepancy_and_the_feed_carries_them_live() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [mut state, mut treasury, mut gsa, _, mut gao] = desks(&fed);
        treasury.register("A-OK", "p-1", "HQ").await;
        treasury.register("B-WHO", "p-2", "HQ").await;
        treasury.register("C-GONE", "p-3", "HQ").await;
        treasury.register("D-ANNEX", "p-4", "Annex").await;
        gsa.register("E-GSA", "p-5", "HQ").await;

        let mut feeds = Vec::new();
        for agency in ["treasury", "gsa", "gao", "state"] {
            feeds.push(fed.open_events(agency, STREAM, &[]).await.expect("feed"));
        }
        let [mut t_feed, mut g_feed, mut gao_feed, mut s_feed] =
            <[_; 4]>::try_from(feeds).ok().expect("four feeds");

        // One of each: confirmed (listed twice, the first counts), another
        // person, not counted, kept elsewhere, held by another agency, and
        // never registered.
        let observed = json!([
            {"tag": "A-OK", "person": "p-1"},
            {"tag": "B-WHO", "person": "p-7"},
            {"tag": "D-ANNEX"},
            {"tag": "E-GSA"},
            {"tag": "F-NEW", "person": "p-8"},
            {"tag": "A-OK", "person": "p-9"},
        ]);
        let first = treasury.report("HQ", observed).await;
        let report = treasury.reconciliation(&first).await;
        let index: u64 = first.parse().expect("id is a log index");
        let expected = json!({
            "reconciliation_id": first, "log_index": index, "agency": "treasury",
            "location": "HQ", "time": report["time"], "observed": 5,
            "counts": {"missing": 1, "unexpected": 2, "holder_mismatch": 1, "unknown_tag": 1},
            "missing": ["C-GONE"], "unexpected": ["D-ANNEX", "E-GSA"],
            "holder_mismatch": ["B-WHO"], "unknown_tag": ["F-NEW"], "resolved": [],
        });
        assert_eq!(report, expected);
        assert_eq!(gao.reconciliation(&first).await, expected);
        for desk in [&mut gsa, &mut state] {
            let path = format!("/v1/reconciliations/{first}");
            let body = get_json(&mut desk.client, &path, StatusCode::NOT_FOUND).await;
            assert_eq!(body["error"]["code"], "not_found");
        }
        let bad = "/v1/reconciliations/abc";
        let body = get_json(&mut gao.client, bad, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "malformed");
        let none = "/v1/reconciliations/99999";
        let body = get_json(&mut gao.client, none, StatusCode::NOT_FOUND).await;
        assert_eq!(body["error"]["code"], "not_found");

        let mut live = t_feed.take(5).await;
        assert_eq!(
            live.iter().map(summary).collect::<Vec<_>>(),
            [
                ("discrepancy", "holder_mismatch", "B-WHO"),
                ("discrepancy", "unexpected", "D-ANNEX"),
                ("discrepancy", "unexpected", "E-GSA"),
                ("discrepancy", "unknown_tag", "F-NEW"),
                ("discrepancy", "missing", "C-GONE"),
            ]
        );
        for (seq, e) in live.iter().enumerate() {
            assert_eq!(e.id, format!("{first}.{seq}"));
            assert_notice(e, &first, index, "inventory.report");
            let agencies = match e.data["tag"].as_str() {
                Some("E-GSA") => json!(["gsa", "treasury"]),
                _ => json!(["treasury"]),
            };
            assert_eq!(e.data["agencies"], agencies);
        }
        assert_eq!(gao_feed.take(5).await, live, "an auditor sees every notice");
        assert_eq!(
            g_feed.take(1).await,
            [live[2].clone()],
            "gsa sees its asset's only"
        );

        // The asset counted missing says so, and so does the listing.
        let gone = treasury.show("C-GONE").await;
        assert_eq!(gone["status"], "missing");
        let missing = json!({"type": "missing", "reconciliation_id": first,
            "location": "HQ", "agencies": ["treasury"]});
        assert_eq!(gone["discrepancies"], json!([missing]));
        assert_eq!(treasury.list("status=missing").await.0, ["C-GONE"]);
        assert_eq!(
            gsa.show("E-GSA").await["discrepancies"][0]["type"],
            "unexpected"
        );

        // Resolutions, live: a recount finding the missing asset and the
        // right person, an accepted transfer, a registration.
        let observed = json!([
            {"tag": "A-OK", "person": "p-1"},
            {"tag": "B-WHO", "person": "p-2"},
            {"tag": "C-GONE"},
        ]);
        let second = treasury.report("HQ", observed).await;
        let recount = treasury.reconciliation(&second).await;
        let none = json!({"missing": 0, "unexpected": 0, "holder_mismatch": 0, "unknown_tag": 0});
        assert_eq!(recount["counts"], none);
        assert_eq!(recount["resolved"], json!(["B-WHO", "C-GONE"]));
        let resolved = t_feed.take(2).await;
        assert_eq!(
            resolved.iter().map(summary).collect::<Vec<_>>(),
            [
                ("resolved", "holder_mismatch", "B-WHO"),
                ("resolved", "missing", "C-GONE")
            ]
        );
        let at = second.parse().expect("index");
        for e in &resolved {
            // Named for the report that found it, at the entry that cleared it.
            assert_notice(e, &first, at, "inventory.report");
        }
        assert_eq!(treasury.show("C-GONE").await["status"], "held");
        live.extend(resolved);

        let (_, offer) = gsa.offer("E-GSA", "treasury", "p-6").await;
        treasury.accept("gsa", "E-GSA", &offer, Some("HQ")).await;
        let cleared = t_feed.take(1).await;
        assert_eq!(summary(&cleared[0]), ("resolved", "unexpected", "E-GSA"));
        assert_notice(
            &cleared[0],
            &first,
            index_of(&cleared[0]),
            "asset.transfer.accept",
        );
        assert_eq!(cleared[0].data["agencies"], json!(["gsa", "treasury"]));
        assert_eq!(g_feed.take(1).await, cleared);
        live.extend(cleared);

        treasury.register("F-NEW", "p-8", "HQ").await;
        let known = t_feed.take(1).await;
        assert_eq!(summary(&known[0]), ("resolved", "unknown_tag", "F-NEW"));
        assert_notice(&known[0], &first, index_of(&known[0]), "asset.register");
        live.extend(known);
        assert_eq!(gao_feed.take(4).await, live[5..]);

        // Another agency's count reaches it and the auditor, not treasury:
        // state's feed was open all along and this is its first event.
        let theirs = state.report("Embassy", json!([{"tag": "Z-UNK"}])).await;
        let s_first = s_feed.take(1).await;
        assert_eq!(
            summary(&s_first[0]),
            ("discrepancy", "unknown_tag", "Z-UNK")
        );
        assert_eq!(s_first[0].data["reconciliation_id"], theirs.as_str());
        assert_eq!(gao_feed.take(1).await, s_first);

        // A feed opened without a position starts at the next commit.
        let mut fresh = fed
            .open_events("treasury", STREAM, &[])
            .await
            .expect("feed");
        treasury.report("Annex", json!([])).await;
        let annex = fresh.take(1).await;
        assert_eq!(summary(&annex[0]), ("discrepancy", "missing", "D-ANNEX"));
        assert_eq!(t_feed.take(1).await, annex);
        live.extend(annex);

        // Resuming after any event replays exactly what followed it.
        let resume = [("last-event-id", live[1].id.as_str())];
        let mut resumed = fed
            .open_events("treasury", STREAM, &resume)
            .await
            .expect("feed");
        assert_eq!(resumed.take(live.len() - 2).await, live[2..]);
        let path = format!("{STREAM}?after={}", live[4].id);
        let mut resumed = fed.open_events("gao", &path, &[]).await.expect("feed");
        let next = resumed.take(3).await;
        assert_eq!(next, live[5..8]);
        let refusals = [
            (format!("{STREAM}?after=7"), None),
            (format!("{STREAM}?since=1.0"), None),
            (STREAM.to_owned(), Some(("last-event-id", "x.1"))),
        ];
        for (path, header) in refusals {
            let headers: Vec<_> = header.into_iter().collect();
            let refused = fed.open_events("treasury", &path, &headers).await;
            let (status, body) = refused.err().expect("refused");
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {headers:?}");
            assert_eq!(body["error"]["code"], "malformed");
        }
    });
}

#[test]
fn every_refused_custody_envelope_changes_nothing() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [mut state, mut treasury, mut gsa, mut hhs, mut gao] = desks(&fed);
        treasury.register("LAP-1", "p-1", "HQ").await;
        treasury.register("LAP-2", "p-1", "HQ").await;
        let (_, o2) = treasury.offer("LAP-2", "gsa", "p-2").await;
        let watched = ["LAP-1", "LAP-2", "NEW-1", "NOPE-1"];

        // (sender, aud, kind, body, code): every custody rule, then bodies
        // that do not parse, each naming the field at fault.
        let reg = |tag: &str, holder: &str| register_body(tag, holder, "p-5", "Annex");
        let offer = |tag: &str, to: &str| offer_body(tag, to, "p-6");
        let lap2 = || answer("LAP-2", &o2);
        let count = || json!({"location": "HQ", "reported_by": "p", "observed": [{"tag": "ok"}]});
        let secret = || Some(json!("secret-x"));
        let rules = [
            (
                "treasury",
                "treasury",
                REGISTER,
                reg("LAP-1", "treasury"),
                "asset_exists",
            ),
            (
                "treasury",
                "treasury",
                REGISTER,
                reg("NEW-1", "gsa"),
                "not_holder",
            ),
            (
                "treasury",
                "gsa",
                REGISTER,
                reg("NEW-1", "treasury"),
                "wrong_audience",
            ),
            ("gsa", "state", OFFER, offer("LAP-1", "state"), "not_holder"),
            ("hhs", "hhs", OFFER, offer("LAP-1", "hhs"), "not_holder"),
            (
                "treasury",
                "state",
                OFFER,
                offer("LAP-1", "gsa"),
                "wrong_audience",
            ),
            (
                "treasury",
                "gsa",
                OFFER,
                offer("NOPE-1", "gsa"),
                "not_found",
            ),
            (
                "treasury",
                "state",
                OFFER,
                offer("LAP-2", "state"),
                "offer_pending",
            ),
            (
                "gsa",
                "treasury",
                ACCEPT,
                answer("LAP-2", "not-it"),
                "no_open_offer",
            ),
            (
                "gsa",
                "treasury",
                ACCEPT,
                answer("LAP-1", &o2),
                "no_open_offer",
            ),
            (
                "gsa",
                "treasury",
                REJECT,
                answer("NOPE-1", &o2),
                "not_found",
            ),
            ("state", "treasury", ACCEPT, lap2(), "not_holder"),
            ("hhs", "treasury", REJECT, lap2(), "not_holder"),
            ("gsa", "state", ACCEPT, lap2(), "wrong_audience"),
            ("gsa", "gsa", REJECT, lap2(), "wrong_audience"),
            (
                "treasury",
                "treasury",
                "record.send",
                json!({"r": 1}),
                "wrong_audience",
            ),
        ];
        let bodies = [
            (
                REGISTER,
                edited(reg("N-2", "treasury"), "serial", None),
                "serial",
            ),
            (
                REGISTER,
                edited(reg("N-2", "treasury"), "tag", Some(json!("a b"))),
                "tag",
            ),
            (
                REGISTER,
                edited(reg("N-2", "treasury"), "holder.person", Some(json!(" "))),
                "holder.person",
            ),
            (
                REGISTER,
                edited(reg("N-2", "treasury"), "colour", secret()),
                "colour",
            ),
            (
                OFFER,
                edited(offer("LAP-1", "gsa"), "reason", None),
                "reason",
            ),
            (
                OFFER,
                edited(
                    offer("LAP-1", "gsa"),
                    "to.person",
                    Some(json!("p".repeat(129))),
                ),
                "to.person",
            ),
            (
                OFFER,
                edited(offer("LAP-1", "gsa"), "to.agency", Some(json!("GSA!"))),
                "agency",
            ),
            (ACCEPT, edited(lap2(), "offer", Some(json!(""))), "offer"),
            (
                ACCEPT,
                edited(lap2(), "location", Some(json!("\u{7}"))),
                "location",
            ),
            (REJECT, edited(lap2(), "note", secret()), "note"),
            (REPORT, edited(count(), "reported_by", None), "reported_by"),
            (
                REPORT,
                edited(count(), "location", Some(json!(""))),
                "location",
            ),
            (
                REPORT,
                edited(count(), "observed.0.person", Some(json!("a\nb"))),
                "observed[0].person",
            ),
            (
                REPORT,
                edited(count(), "observed.1", Some(json!({"tag": ""}))),
                "observed[1].tag",
            ),
        ];
        let rules = rules.map(|(by, aud, kind, body, code)| (by, aud, kind, body, code, None));
        let malformed = bodies.into_iter().map(|(kind, body, field)| {
            let (by, aud) = match kind {
                REGISTER | REPORT => ("treasury", "treasury"),
                OFFER => ("treasury", "gsa"),
                _ => ("gsa", "treasury"),
            };
            (by, aud, kind, body, "malformed", Some(field))
        });
        for (by, aud, kind, body, code, field) in rules.into_iter().chain(malformed) {
            let desk = match by {
                "state" => &mut state,
                "treasury" => &mut treasury,
                "gsa" => &mut gsa,
                _ => &mut hhs,
            };
            let message = desk
                .refused(&mut gao, aud, kind, body, &watched, code)
                .await;
            if let Some(field) = field {
                assert!(
                    message.contains(field),
                    "{kind}: {message:?} names no {field}"
                );
                assert!(
                    !message.contains("secret-x") && !message.contains("GSA!"),
                    "{message}"
                );
            }
        }

        // An asset envelope cannot be replayed either.
        let new = register_body("NEW-1", "treasury", "p", "HQ");
        let (jws, _) = treasury.sign("treasury", REGISTER, new);
        assert_eq!(treasury.post(&jws).await.status, StatusCode::CREATED);
        let before = snapshot(&mut gao, &watched).await;
        let again = treasury.post(&jws).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(error_code(&again), "replayed");
        assert_eq!(snapshot(&mut gao, &watched).await, before);

        // None of that touched the open offer: it is accepted, and is then
        // answered for good.
        gsa.accept("treasury", "LAP-2", &o2, None).await;
        assert_eq!(gsa.show("LAP-2").await["holder"]["agency"], "gsa");
        for kind in [ACCEPT, REJECT] {
            let code = "no_open_offer";
            gsa.refused(&mut gao, "treasury", kind, lap2(), &watched, code)
                .await;
        }
    });
}

#[test]
fn an_inventory_report_is_addressed_to_the_reporting_agency() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [_, mut treasury, mut gsa, _, mut gao] = desks(&fed);
        treasury.register("LAP-1", "p-1", "HQ").await;
        let observed = json!([{"tag": "LAP-1", "person": "p-1"}]);
        let body = json!({"location": "HQ", "reported_by": "p-1", "observed": observed});
        let watched = ["LAP-1"];
        treasury
            .refused(&mut gao, "gsa", REPORT, body, &watched, "wrong_audience")
            .await;
        assert_eq!(inbox_len(&mut gsa.client).await, 0, "persons never leave");
    });
}

#[test]
fn a_field_of_the_wrong_type_is_named() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [_, mut treasury, _, _, mut gao] = desks(&fed);
        let mut body = register_body("NEW-1", "treasury", "p-1", "HQ");
        body["location"] = json!(42);
        let watched = ["NEW-1"];
        let message = treasury
            .refused(&mut gao, "treasury", REGISTER, body, &watched, "malformed")
            .await;
        assert!(message.contains("location"), "{message}");
    });
}

#[test]
fn a_rejection_carries_no_location() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [_, mut treasury, mut gsa, _, mut gao] = desks(&fed);
        treasury.register("LAP-1", "p-1", "HQ").await;
        let (_, offer) = treasury.offer("LAP-1", "gsa", "p-2").await;
        let body = json!({"tag": "LAP-1", "offer": offer, "location": "Annex"});
        let watched = ["LAP-1"];
        let message = gsa
            .refused(&mut gao, "treasury", REJECT, body, &watched, "malformed")
            .await;
        assert!(message.contains("location"), "{message}");
    });
}

#[test]
fn listings_filter_and_page_and_an_auditor_sees_everything() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [mut state, mut treasury, mut gsa, mut hhs, mut gao] = desks(&fed);
        treasury.register("T-01", "p-1", "HQ").await;
        treasury.register("T-02", "p-2", "HQ").await;
        treasury.register("T-03", "p-1", "Annex").await;
        treasury.register("T-04", "p-3", "HQ").await;
        treasury.register("T-05", "p-1", "HQ").await;
        gsa.register("G-01", "p-8", "Depot").await;
        gsa.register("G-02", "p-9", "Room 101").await;
        hhs.register("H-01", "p-7", "Lab").await;
        let (_, o5) = treasury.offer("T-05", "gsa", "p-8").await;
        gsa.accept("treasury", "T-05", &o5, Some("Depot")).await;
        treasury.offer("T-04", "state", "p-6").await;
        treasury.report("Annex", json!([])).await;

        let cases: [(&str, &[&str]); 10] = [
            ("", &["T-01", "T-02", "T-03", "T-04", "T-05"]),
            ("holder_agency=treasury", &["T-01", "T-02", "T-03", "T-04"]),
            ("holder_agency=gsa", &["T-05"]),
            ("person=p-1", &["T-01", "T-03"]),
            ("location=HQ", &["T-01", "T-02", "T-04"]),
            ("location=HQ&person=p-1", &["T-01"]),
            ("status=held", &["T-01", "T-02", "T-05"]),
            ("status=offered", &["T-04"]),
            ("status=missing", &["T-03"]),
            ("holder_agency=hhs", &[]),
        ];
        for (query, tags) in cases {
            assert_eq!(treasury.list(query).await, (owned(tags), None), "?{query}");
            assert_eq!(
                treasury.list_paged(query, 2).await,
                owned(tags),
                "?{query} by 2"
            );
        }
        let (page, next) = treasury.list("limit=2").await;
        assert_eq!(
            (page, next.as_deref()),
            (owned(&["T-01", "T-02"]), Some("T-02"))
        );
        assert_eq!(treasury.list("after=T-03").await.0, ["T-04", "T-05"]);
        assert_eq!(treasury.list("limit=0").await.0, ["T-01"], "at least one");
        let path = "/v1/assets?location=HQ&person=p-2";
        let page = get_json(&mut treasury.client, path, StatusCode::OK).await;
        let t02 = json!({"tag": "T-02", "category": "laptop", "location": "HQ", "status": "held",
            "holder": {"agency": "treasury", "person": "p-2"}});
        assert_eq!(page, json!({"assets": [t02], "next": null}));

        assert_eq!(gsa.list("").await.0, ["G-01", "G-02", "T-05"]);
        assert_eq!(gsa.list("location=Room%20101").await.0, ["G-02"]);
        assert_eq!(gsa.list("location=Room+101").await.0, ["G-02"]);
        assert!(hhs.list("holder_agency=treasury").await.0.is_empty());
        gsa.hidden("T-01").await;
        hhs.hidden("G-01").await;

        let everything = [
            "G-01", "G-02", "H-01", "T-01", "T-02", "T-03", "T-04", "T-05",
        ];
        assert_eq!(gao.list("").await, (owned(&everything), None));
        assert_eq!(gao.list_paged("", 3).await, everything);
        assert_eq!(
            gao.list_paged("holder_agency=gsa", 1).await,
            ["G-01", "G-02", "T-05"]
        );
        assert_eq!(gao.list("status=missing").await.0, ["T-03"]);
        for tag in everything {
            assert_eq!(gao.show(tag).await["tag"], tag);
        }

        for bad in [
            "colour=red",
            "status=lost",
            "holder_agency=NOT!",
            "limit=x",
            "person=a&person=b",
        ] {
            let path = format!("/v1/assets?{bad}");
            let page = get_json(&mut treasury.client, &path, StatusCode::BAD_REQUEST).await;
            assert_eq!(page["error"]["code"], "malformed", "?{bad}");
        }
        state.show("T-04").await;
    });
}

/// Listings hold the assets an agency holds or has held (docs/assets.md);
/// an agency offered an asset may read it, to decide, but it joins the
/// agency's listing only once accepted (offers arrive in its inbox).
#[test]
fn an_offered_asset_is_readable_and_listed_once_accepted() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [mut state, mut treasury, ..] = desks(&fed);
        treasury.register("T-04", "p-3", "HQ").await;
        let (_, offer) = treasury.offer("T-04", "state", "p-6").await;
        assert_eq!(state.show("T-04").await["status"], "offered");
        assert!(state.list("").await.0.is_empty());
        assert_eq!(
            inbox_len(&mut state.client).await,
            1,
            "the offer is delivered"
        );
        state.accept("treasury", "T-04", &offer, None).await;
        assert_eq!(state.list("").await.0, ["T-04"]);
    });
}

const STREAM: &str = "/v1/reconciliations/stream";
const REGISTER: &str = "asset.register";
const OFFER: &str = "asset.transfer.offer";
const ACCEPT: &str = "asset.transfer.accept";
const REJECT: &str = "asset.transfer.reject";
const REPORT: &str = "inventory.report";

/// One agency's desk: its client and its signer.
struct Desk {
    client: Client,
    signer: EnvelopeSigner,
}

/// The desks of state, treasury, gsa, hhs and the auditor gao.
fn desks(fed: &Federation) -> [Desk; 5] {
    ["state", "treasury", "gsa", "hhs", "gao"].map(|a| Desk {
        client: fed.client(a),
        signer: fed.signer(a),
    })
}

impl Desk {
    fn me(&self) -> String {
        self.signer.iss().to_string()
    }

    /// Signs `kind` to `aud` with a fresh `jti`: the JWS and the `jti`.
    fn sign(&self, aud: &str, kind: &str, body: Value) -> (String, String) {
        let jti = random_jti().expect("jti");
        let jws = self
            .signer
            .sign(&id(aud), kind, object(body), 60, Some(jti.clone()))
            .expect("sign");
        (jws, jti)
    }

    async fn post(&mut self, jws: &str) -> Reply {
        federation::submit(&mut self.client, jws).await
    }

    /// Submits an envelope that must be accepted: the 201 body and `jti`.
    async fn accepted(&mut self, aud: &str, kind: &str, body: Value) -> (Value, String) {
        let (jws, jti) = self.sign(aud, kind, body);
        let reply = self.post(&jws).await;
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{kind} by {}: {text}",
            self.me()
        );
        (serde_json::from_slice(&reply.body).expect("JSON"), jti)
    }

    /// Submits an envelope that must be refused with `code`, and checks
    /// that neither the log nor any of `watched` (as `auditor` sees them)
    /// changed. Returns the error message.
    async fn refused(
        &mut self,
        auditor: &mut Desk,
        aud: &str,
        kind: &str,
        body: Value,
        watched: &[&str],
        code: &str,
    ) -> String {
        let before = snapshot(auditor, watched).await;
        let (jws, _) = self.sign(aud, kind, body);
        let reply = self.post(&jws).await;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        let status = match code {
            "malformed" => StatusCode::BAD_REQUEST,
            "not_holder" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "wrong_audience" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        };
        let what = format!("{kind} by {} to {aud}: {text}", self.me());
        assert_eq!(reply.status, status, "{what}");
        assert_eq!(error_code(&reply), code, "{what}");
        assert_eq!(
            snapshot(auditor, watched).await,
            before,
            "{kind} {code} left a trace"
        );
        let body: Value = serde_json::from_str(&text).expect("JSON");
        body["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    }

    async fn register(&mut self, tag: &str, person: &str, location: &str) -> Value {
        let me = self.me();
        self.accepted(&me, REGISTER, register_body(tag, &me, person, location))
            .await
            .0
    }

    /// Offers `tag` to `person` of `to`: the 201 body and the offer's `jti`.
    async fn offer(&mut self, tag: &str, to: &str, person: &str) -> (Value, String) {
        self.accepted(to, OFFER, offer_body(tag, to, person)).await
    }

    async fn accept(
        &mut self,
        holder: &str,
        tag: &str,
        offer: &str,
        location: Option<&str>,
    ) -> Value {
        let mut body = json!({"tag": tag, "offer": offer});
        if let Some(l) = location {
            body["location"] = json!(l);
        }
        self.accepted(holder, ACCEPT, body).await.0
    }

    async fn reject(&mut self, holder: &str, tag: &str, offer: &str) -> Value {
        self.accepted(holder, REJECT, json!({"tag": tag, "offer": offer}))
            .await
            .0
    }

    /// Reports a count at `location`: the reconciliation id.
    async fn report(&mut self, location: &str, observed: Value) -> String {
        let me = self.me();
        let body = json!({"location": location, "reported_by": "counter-1", "observed": observed});
        let (receipt, _) = self.accepted(&me, REPORT, body).await;
        let id = receipt["reconciliation_id"]
            .as_str()
            .expect("reconciliation_id");
        assert_eq!(
            id,
            receipt["log_index"].to_string(),
            "the id is the log index"
        );
        let keys: Vec<&str> = receipt
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.last(),
            Some(&"reconciliation_id"),
            "after the receipt's fields"
        );
        id.to_owned()
    }

    async fn reconciliation(&mut self, id: &str) -> Value {
        get_json(
            &mut self.client,
            &format!("/v1/reconciliations/{id}"),
            StatusCode::OK,
        )
        .await
    }

    async fn show(&mut self, tag: &str) -> Value {
        get_json(
            &mut self.client,
            &format!("/v1/assets/{tag}"),
            StatusCode::OK,
        )
        .await
    }

    /// `tag` answers 404 to this agency.
    async fn hidden(&mut self, tag: &str) {
        let body = get_json(
            &mut self.client,
            &format!("/v1/assets/{tag}"),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(body["error"]["code"], "not_found");
    }

    /// One page of `GET /v1/assets?{query}`: its tags and `next`.
    async fn list(&mut self, query: &str) -> (Vec<String>, Option<String>) {
        let page = get_json(
            &mut self.client,
            &format!("/v1/assets?{query}"),
            StatusCode::OK,
        )
        .await;
        let tags = page["assets"]
            .as_array()
            .expect("assets")
            .iter()
            .map(|a| a["tag"].as_str().expect("tag").to_owned())
            .collect();
        (tags, page["next"].as_str().map(str::to_owned))
    }

    /// Every tag of `GET /v1/assets?{query}`, `limit` a page, following `next`.
    async fn list_paged(&mut self, query: &str, limit: usize) -> Vec<String> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = format!("{query}&limit={limit}");
            if let Some(a) = &after {
                q.push_str(&format!("&after={a}"));
            }
            let (tags, next) = self.list(q.trim_start_matches('&')).await;
            assert!(tags.len() <= limit);
            assert_eq!(
                next.is_some(),
                tags.len() == limit && next.as_ref() == tags.last(),
                "?{q}"
            );
            all.extend(tags);
            match next {
                Some(n) => after = Some(n),
                None => return all,
            }
        }
    }
}

/// What `auditor` sees of the log's size and of `tags`.
async fn snapshot(auditor: &mut Desk, tags: &[&str]) -> (u64, Vec<(StatusCode, Value)>) {
    let size = log_size(&mut auditor.client).await;
    let mut seen = Vec::new();
    for tag in tags {
        let path = format!("/v1/assets/{tag}");
        let reply = auditor
            .client
            .request(Method::GET, &path, None, Vec::new())
            .await
            .expect("reply");
        seen.push((
            reply.status,
            serde_json::from_slice(&reply.body).expect("JSON"),
        ));
    }
    (size, seen)
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

/// A notice's data: exactly the documented fields, matching its SSE id
/// and event, for a discrepancy found by report `found_by` and opened or
/// cleared by the entry at `log_index`, of kind `by_kind`.
fn assert_notice(e: &Event, found_by: &str, log_index: u64, by_kind: &str) {
    let mut keys: Vec<&str> = e
        .data
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let fields = [
        "agencies",
        "by_kind",
        "event",
        "id",
        "location",
        "log_index",
        "reconciliation_id",
        "tag",
        "time",
        "type",
    ];
    assert_eq!(keys, fields);
    assert_eq!(
        (&e.data["id"], &e.data["event"]),
        (&json!(e.id), &json!(e.event))
    );
    assert_eq!(e.data["reconciliation_id"], found_by);
    assert_eq!(e.data["log_index"], log_index);
    assert_eq!(e.data["by_kind"], by_kind);
    assert!(
        e.data["time"]
            .as_i64()
            .is_some_and(|t| (t - now()).abs() < 60)
    );
    assert!(e.id.starts_with(&format!("{log_index}.")), "{}", e.id);
}

fn index_of(e: &Event) -> u64 {
    e.data["log_index"].as_u64().expect("log_index")
}

fn kind_by(event: &Value) -> (&str, &str) {
    (
        event["kind"].as_str().expect("kind"),
        event["by"].as_str().expect("by"),
    )
}

fn summary(e: &Event) -> (&str, &str, &str) {
    let field = |name: &str| e.data[name].as_str().expect("string field");
    assert_eq!(field("event"), e.event);
    (e.event.as_str(), field("type"), field("tag"))
}

fn register_body(tag: &str, agency: &str, person: &str, location: &str) -> Value {
    json!({"tag": tag, "serial": format!("SN-{tag}"), "category": "laptop",
        "description": "issued laptop", "holder": {"agency": agency, "person": person},
        "location": location})
}

fn offer_body(tag: &str, to: &str, person: &str) -> Value {
    json!({"tag": tag, "to": {"agency": to, "person": person}, "reason": "reassignment"})
}

fn answer(tag: &str, offer: &str) -> Value {
    json!({"tag": tag, "offer": offer})
}

/// `body` with the field at `path` (dot-separated; an index for a list
/// item) set to `value`, or removed if `None`.
fn edited(mut body: Value, path: &str, value: Option<Value>) -> Value {
    let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
    let mut target = &mut body;
    for part in parent.split('.').filter(|p| !p.is_empty()) {
        target = match part.parse::<usize>() {
            Ok(i) => &mut target[i],
            Err(_) => &mut target[part],
        };
    }
    match (target, last.parse::<usize>(), value) {
        (Value::Array(items), Ok(i), Some(v)) if i == items.len() => items.push(v),
        (Value::Array(items), Ok(i), Some(v)) => items[i] = v,
        (Value::Object(fields), _, Some(v)) => drop(fields.insert(last.to_owned(), v)),
        (Value::Object(fields), _, None) => drop(fields.remove(last)),
        (other, ..) => panic!("cannot edit {path} in {other}"),
    }
    body
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn owned(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| (*t).to_owned()).collect()
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("seconds")
}

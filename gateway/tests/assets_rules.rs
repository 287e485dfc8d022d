//! Asset custody rules end to end, over real mutual TLS on loopback: every
//! rule refusing without a trace, and what each agency (and an auditor) may
//! list and read.
//!
//! The rules themselves are unit- and property-tested in
//! `gateway/server/src/assets`; these tests pin what a client sees. Custody is in
//! `assets_custody`, reports and the discrepancy feed in `assets_reconcile`.

mod federation;

use federation::assets::{
    ACCEPT, OFFER, REGISTER, REJECT, REPORT, answer, desks, federation, offer_body, register_body,
    snapshot,
};
use federation::{error_code, get_json, inbox_len, runtime};
use http::StatusCode;
use serde_json::{Value, json};

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

/// An agency lists the assets it holds or has held and those offered to it
/// while the offer is open (docs/assets.md), so it finds what awaits its
/// answer; a rejected offer leaves its listing.
#[test]
fn an_agency_lists_what_is_offered_to_it_while_the_offer_is_open() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [mut state, mut treasury, mut gsa, ..] = desks(&fed);
        treasury.register("T-03", "p-3", "HQ").await;
        treasury.register("T-04", "p-3", "HQ").await;
        treasury.register("T-05", "p-3", "HQ").await;
        let (_, offer3) = treasury.offer("T-03", "state", "p-6").await;
        let (_, offer4) = treasury.offer("T-04", "state", "p-6").await;
        treasury.offer("T-05", "gsa", "p-7").await;
        assert_eq!(state.show("T-04").await["status"], "offered");
        assert_eq!(state.list("").await.0, ["T-03", "T-04"]);
        assert_eq!(state.list("status=offered").await.0, ["T-03", "T-04"]);
        assert_eq!(gsa.list("").await.0, ["T-05"]);
        assert_eq!(
            inbox_len(&mut state.client).await,
            2,
            "the offers are delivered"
        );
        state.reject("treasury", "T-03", &offer3).await;
        state.accept("treasury", "T-04", &offer4, None).await;
        assert_eq!(state.list("").await.0, ["T-04"]);
        assert_eq!(state.list("status=held").await.0, ["T-04"]);
    });
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

fn owned(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| (*t).to_owned()).collect()
}

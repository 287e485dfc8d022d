//! Asset reconciliation end to end, over real mutual TLS on loopback:
//! inventory reports, and the discrepancy feed (SSE, live and resumed) that
//! carries what they find and what clears it.
//!
//! The rules themselves are unit- and property-tested in
//! `gateway/server/src/assets`; these tests pin what a client sees. Custody is in
//! `assets_custody`, refusals and listings in `assets_rules`.

mod federation;

use federation::assets::{REPORT, desks, federation, now};
use federation::{Event, get_json, inbox_len, runtime};
use http::StatusCode;
use serde_json::json;

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
            // Each agency is named alone in what it is sent.
            assert_eq!(e.data["agencies"], json!(["treasury"]));
        }
        let audited = gao_feed.take(5).await;
        assert_eq!(
            seen_by_all(&audited, "treasury"),
            live,
            "an auditor sees every notice"
        );
        assert_eq!(
            audited[2].data["agencies"],
            json!(["gsa", "treasury"]),
            "whole"
        );
        assert_eq!(
            g_feed.take(1).await,
            [seen_by(&audited[2], "gsa")],
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
        assert_eq!(cleared[0].data["agencies"], json!(["treasury"]));
        assert_eq!(g_feed.take(1).await, [seen_by(&cleared[0], "gsa")]);
        live.extend(cleared);

        treasury.register("F-NEW", "p-8", "HQ").await;
        let known = t_feed.take(1).await;
        assert_eq!(summary(&known[0]), ("resolved", "unknown_tag", "F-NEW"));
        assert_notice(&known[0], &first, index_of(&known[0]), "asset.register");
        live.extend(known);
        let audited = gao_feed.take(4).await;
        assert_eq!(seen_by_all(&audited, "treasury"), live[5..]);
        assert_eq!(audited[2].data["agencies"], json!(["gsa", "treasury"]));

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
        assert_eq!(seen_by_all(&next, "treasury"), live[5..8]);
        // From the start of the log: the whole feed, first event included.
        let path = format!("{STREAM}?from=0");
        let mut whole = fed.open_events("treasury", &path, &[]).await.expect("feed");
        assert_eq!(whole.take(live.len()).await, live);
        let refusals = [
            (format!("{STREAM}?from=x"), None),
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

/// Issue 17, item 6: an agency that counts a tag another agency holds is
/// told it is `unexpected`, never who holds it: not in its report, not in
/// its notices, live, resumed or replayed from the start of the feed. The
/// holder is told (and sees in its asset who counted it); an auditor sees
/// the notice whole.
#[test]
fn a_count_never_tells_the_counter_who_holds_a_tag_it_does_not() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [_, mut treasury, mut gsa, _, _] = desks(&fed);
        gsa.register("LAP-HELD", "p-1", "Annex").await;
        let mut t_feed = fed
            .open_events("treasury", STREAM, &[])
            .await
            .expect("feed");
        let mut g_feed = fed.open_events("gsa", STREAM, &[]).await.expect("feed");
        let mut gao_feed = fed.open_events("gao", STREAM, &[]).await.expect("feed");
        // A first count, so that there is an event to resume after.
        treasury.report("Vault", json!([{"tag": "UNK-0"}])).await;
        let before = t_feed.take(1).await;
        let id = treasury.report("Vault", json!([{"tag": "LAP-HELD"}])).await;

        let report = treasury.reconciliation(&id).await;
        assert_eq!(report["unexpected"], json!(["LAP-HELD"]));
        assert!(!report.to_string().contains("gsa"), "{report}");
        let path = "/v1/assets/LAP-HELD";
        get_json(&mut treasury.client, path, StatusCode::NOT_FOUND).await;

        let mine = t_feed.take(1).await;
        assert_eq!(summary(&mine[0]), ("discrepancy", "unexpected", "LAP-HELD"));
        assert_eq!(mine[0].data["agencies"], json!(["treasury"]));
        assert!(!mine[0].data.to_string().contains("gsa"), "{:?}", mine[0]);
        let theirs = g_feed.take(1).await;
        assert_eq!(theirs, [seen_by(&mine[0], "gsa")]);
        let audited = gao_feed.take(2).await;
        assert_eq!(audited[1].data["agencies"], json!(["gsa", "treasury"]));
        assert_eq!(seen_by(&audited[1], "treasury"), mine[0]);

        // Read again from the store: from the start, from the count's
        // entry, and resumed after the event before it.
        for (path, header) in [
            (format!("{STREAM}?from=0"), None),
            (format!("{STREAM}?from={id}"), None),
            (
                STREAM.to_owned(),
                Some(("last-event-id", before[0].id.as_str())),
            ),
        ] {
            let headers: Vec<_> = header.into_iter().collect();
            let mut again = fed
                .open_events("treasury", &path, &headers)
                .await
                .expect("feed");
            let mut events = again.take(if path.ends_with("=0") { 2 } else { 1 }).await;
            assert_eq!(events.pop().as_ref(), Some(&mine[0]), "{path} {headers:?}");
        }

        // The holder sees in its asset who counted it where.
        let asset = gsa.show("LAP-HELD").await;
        assert_eq!(
            asset["discrepancies"][0]["agencies"],
            json!(["gsa", "treasury"])
        );
    });
}

const STREAM: &str = "/v1/reconciliations/stream";

/// `e` as `agency` is sent it: named alone among the agencies concerned.
fn seen_by(e: &Event, agency: &str) -> Event {
    let mut e = e.clone();
    e.data["agencies"] = json!([agency]);
    e
}

fn seen_by_all(events: &[Event], agency: &str) -> Vec<Event> {
    events.iter().map(|e| seen_by(e, agency)).collect()
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

fn summary(e: &Event) -> (&str, &str, &str) {
    let field = |name: &str| e.data[name].as_str().expect("string field");
    assert_eq!(field("event"), e.event);
    (e.event.as_str(), field("type"), field("tag"))
}

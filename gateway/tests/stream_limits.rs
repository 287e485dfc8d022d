//! The reconciliation feed's bounds, end to end: an open stream ends
//! within one CRL poll of its agency's revocation; each agency holds at
//! most `max_streams_per_agency` streams (429 `too_many_streams`); one
//! reader fans each commit out to every stream, and a stream that falls
//! behind it reads the store instead, losing nothing; a replay from
//! `from=0` pages through the backlog and joins the live feed with no gap
//! and no duplicate.

mod federation;

use std::time::{Duration, Instant};

use federation::assets::{desks, federation};
use federation::{Event, EventStream, metric, runtime, xgate};
use http::StatusCode;
use serde_json::{Value, json};

const STREAM: &str = "/v1/reconciliations/stream";

/// An inventory report by `desk` at HQ observing `tags`, none registered:
/// one `unknown_tag` notice per tag, for the reporter (and auditors).
fn unknown(tags: impl IntoIterator<Item = String>) -> Value {
    Value::Array(tags.into_iter().map(|t| json!({ "tag": t })).collect())
}

fn position(e: &Event) -> (u64, u32) {
    let (index, seq) = e.id.split_once('.').expect("id is <index>.<seq>");
    (index.parse().expect("index"), seq.parse().expect("seq"))
}

#[test]
fn an_open_stream_ends_within_a_poll_of_its_agency_s_revocation() {
    let fed = federation(&[("XGATE_CRL_POLL_SECS", "1")]);
    runtime().block_on(async {
        let mut gsa = fed
            .open_events("gsa", STREAM, &[])
            .await
            .expect("gsa's feed");
        let mut treasury = fed
            .open_events("treasury", STREAM, &[])
            .await
            .expect("feed");
        let pki = fed.pki().display().to_string();
        xgate()
            .run(&["certs", "revoke", "--dir", &pki, "--agency", "gsa"], b"")
            .expect_ok();
        // One poll is a second; ten leave room for a loaded machine.
        assert!(
            gsa.ends_within(Duration::from_secs(10)).await,
            "gsa's stream outlived its revocation"
        );
        assert!(
            !treasury.ends_within(Duration::from_secs(2)).await,
            "treasury's stream goes on"
        );
        // And it still carries treasury's notices.
        let [_, mut t_desk, ..] = desks(&fed);
        t_desk.report("HQ", unknown(["Z-1".to_owned()])).await;
        let event = treasury.take(1).await.remove(0);
        assert_eq!(event.data["tag"], "Z-1");
    });
}

#[test]
fn streams_are_capped_per_agency() {
    let fed = federation(&[("XGATE_MAX_STREAMS_PER_AGENCY", "2")]);
    runtime().block_on(async {
        let first = fed
            .open_events("treasury", STREAM, &[])
            .await
            .expect("first");
        let _second = fed
            .open_events("treasury", STREAM, &[])
            .await
            .expect("second");
        let (status, body) = fed
            .open_events("treasury", STREAM, &[])
            .await
            .err()
            .expect("a third is refused");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains("max_streams_per_agency"), "{message}");
        // The cap is per agency: others are not affected.
        let _gsa = fed.open_events("gsa", STREAM, &[]).await.expect("gsa");
        let _gao = fed.open_events("gao", STREAM, &[]).await.expect("gao");
        let mut client = fed.client("state");
        let open = metric(&mut client, "xgate_event_streams_open").await;
        assert_eq!(open, Some(4.0));
        // Closing one gives its slot back.
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(30);
        let reopened: EventStream = loop {
            match fed.open_events("treasury", STREAM, &[]).await {
                Ok(s) => break s,
                Err((status, _)) if Instant::now() < deadline => {
                    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the slot was never given back: {e:?}"),
            }
        };
        drop(reopened);
    });
}

#[test]
fn one_reader_fans_each_commit_out_to_every_stream() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [_, mut treasury, ..] = desks(&fed);
        let mut streams = Vec::new();
        for agency in ["treasury", "treasury", "treasury", "gao", "gao", "gsa"] {
            streams.push(fed.open_events(agency, STREAM, &[]).await.expect("feed"));
        }
        let mut client = fed.client("state");
        let reads = |by: &str| format!("xgate_event_feed_reads_total{{by=\"{by}\"}}");
        // Every stream has joined (read its backlog, subscribed): a first
        // notice reaches all the treasury and gao streams.
        treasury.report("HQ", unknown(["W-0".to_owned()])).await;
        for s in &mut streams[..5] {
            assert_eq!(s.take(1).await[0].data["tag"], "W-0");
        }
        let catch_up = metric(&mut client, &reads("catch_up"))
            .await
            .expect("catch-up reads");
        let reader = metric(&mut client, &reads("reader"))
            .await
            .expect("reader reads");
        let commits = 10;
        for i in 1..=commits {
            treasury.report("HQ", unknown([format!("W-{i}")])).await;
        }
        for s in &mut streams[..5] {
            let tags: Vec<Value> = s
                .take(commits)
                .await
                .iter()
                .map(|e| e.data["tag"].clone())
                .collect();
            let expected: Vec<Value> = (1..=commits).map(|i| json!(format!("W-{i}"))).collect();
            assert_eq!(tags, expected);
        }
        assert!(
            streams[5]
                .next_within(Duration::from_millis(500))
                .await
                .is_none(),
            "gsa sees none of treasury's notices"
        );
        // Six streams, ten commits: the store was read once per commit at
        // most (fewer when commits coalesce), and no stream read it.
        let after_catch_up = metric(&mut client, &reads("catch_up"))
            .await
            .expect("reads");
        let after_reader = metric(&mut client, &reads("reader")).await.expect("reads");
        assert_eq!(after_catch_up, catch_up, "no stream read the store");
        let per_commit = (after_reader - reader) / commits as f64;
        assert!(
            per_commit <= 1.0,
            "{after_reader} - {reader} reads for {commits} commits"
        );
    });
}

#[test]
fn a_replay_from_zero_pages_through_the_backlog_and_joins_the_live_feed() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [_, mut treasury, ..] = desks(&fed);
        // Over two pages (256 notices a page) of backlog.
        let backlog = 600;
        for batch in 0..3 {
            let tags = (0..backlog / 3).map(|i| format!("B-{batch}-{i}"));
            treasury.report("HQ", unknown(tags)).await;
        }
        let mut replay = fed
            .open_events("treasury", &format!("{STREAM}?from=0"), &[])
            .await
            .expect("replay");
        // More commits while the replay reads its backlog and joins.
        let live = 40;
        let mut reporter = tokio::task::spawn({
            let [_, mut treasury, ..] = desks(&fed);
            async move {
                for i in 0..live {
                    treasury.report("HQ", unknown([format!("L-{i}")])).await;
                }
            }
        });
        let events = replay.take(backlog + live).await;
        (&mut reporter).await.expect("reporter");
        let positions: Vec<(u64, u32)> = events.iter().map(position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "in feed order, each once"
        );
        let tags: Vec<&str> = events
            .iter()
            .map(|e| e.data["tag"].as_str().expect("tag"))
            .collect();
        for i in 0..live {
            let tag = format!("L-{i}");
            assert_eq!(tags.iter().filter(|t| **t == tag).count(), 1, "{tag}");
        }
        assert!(
            replay
                .next_within(Duration::from_millis(500))
                .await
                .is_none(),
            "nothing more"
        );
        // A second replay, after the fact, sees exactly the same feed.
        let mut again = fed
            .open_events("treasury", &format!("{STREAM}?from=0"), &[])
            .await
            .expect("replay");
        assert_eq!(again.take(backlog + live).await, events);
    });
}

#[test]
fn a_stream_that_falls_behind_reads_the_store_and_loses_nothing() {
    let fed = federation(&[]);
    runtime().block_on(async {
        let [_, mut treasury, ..] = desks(&fed);
        let mut slow = fed
            .open_events("treasury", STREAM, &[])
            .await
            .expect("feed");
        let mut client = fed.client("state");
        let catch_up = "xgate_event_feed_reads_total{by=\"catch_up\"}";
        // The labelled series appears with the first catch-up read; the
        // stream may or may not have read its (empty) backlog yet.
        let before = metric(&mut client, catch_up).await.unwrap_or(0.0);
        // Far more notices (10 MB of events) than the broadcast keeps (1024)
        // and the connection's buffers hold, while the client reads
        // nothing: its stream stalls and falls behind the broadcast.
        let total = 30_000;
        treasury
            .report("HQ", unknown((0..total).map(|i| format!("S-{i}"))))
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let events = slow.take(total).await;
        let tags: Vec<String> = events
            .iter()
            .map(|e| e.data["tag"].as_str().expect("tag").to_owned())
            .collect();
        let positions: Vec<(u64, u32)> = events.iter().map(position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "in order, once");
        let mut expected: Vec<String> = (0..total).map(|i| format!("S-{i}")).collect();
        let mut sorted = tags.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected);
        // It did fall behind, and read the store to catch up.
        let after = metric(&mut client, catch_up).await.expect("reads");
        assert!(after > before, "catch-up reads: {before} -> {after}");
    });
}

//! Inbox readers for a bench run (`--drain`): one per agency, each reading
//! its agency's inbox and acknowledging every envelope in it, as receiving
//! agencies do in real use. Without them every exchange leaves an inbox
//! record behind, so a long run measures a store that grows by every
//! envelope sent; with them the stored data is the log and the state.
//!
//! Each page is acknowledged with one `POST /v1/inbox/ack`: one durable
//! write per page rather than one per envelope, which is what lets a reader
//! keep up with a loaded gateway. With a timings file, each acknowledgement
//! that removed something is recorded there with when it was sent and
//! answered ([`Timings`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::Method;

use super::timings::Timings;
use crate::client::Client;

/// Envelopes read per inbox page (the gateway's default page).
const PAGE: usize = 100;
/// How long an empty inbox is left before it is read again.
const IDLE: Duration = Duration::from_millis(50);

/// Reads and acknowledges an agency's inbox over `client` until `stop`,
/// counting each acknowledged envelope in `drained` and recording each
/// acknowledgement in `timings`, if given.
pub async fn drain(
    mut client: Client,
    stop: Arc<AtomicBool>,
    drained: Arc<AtomicU64>,
    timings: Option<Arc<Timings>>,
) {
    let page = format!("/v1/inbox?limit={PAGE}");
    while !stop.load(Ordering::Relaxed) {
        let ids = match client.request(Method::GET, &page, None, Vec::new()).await {
            Ok(reply) if reply.status.is_success() => ids(&reply.body),
            _ => Vec::new(),
        };
        if ids.is_empty() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        let body = serde_json::json!({ "ids": ids }).to_string().into_bytes();
        let sent = SystemTime::now();
        let reply = client
            .request(
                Method::POST,
                "/v1/inbox/ack",
                Some("application/json"),
                body,
            )
            .await;
        let received = SystemTime::now();
        if let Ok(reply) = reply
            && reply.status.is_success()
        {
            let removed = acked(&reply.body);
            drained.fetch_add(removed, Ordering::Relaxed);
            if let Some(timings) = timings.as_deref()
                && removed > 0
            {
                timings.ack(removed, sent, received);
            }
        }
    }
}

/// The envelope ids of an inbox page.
fn ids(body: &[u8]) -> Vec<String> {
    let Ok(page) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    page["envelopes"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// How many ids an acknowledgement removed.
fn acked(body: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|reply| reply["acked"].as_array().map(|ids| ids.len() as u64))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_gives_its_ids_and_anything_else_none() {
        let page = br#"{"envelopes":[{"id":"a1"},{"id":"b2"},{"no":"id"}],"next":null}"#;
        assert_eq!(ids(page), ["a1", "b2"]);
        assert!(ids(b"not json").is_empty());
        assert!(ids(br#"{"envelopes":"x"}"#).is_empty());
    }

    #[test]
    fn an_acknowledgement_counts_what_it_removed() {
        assert_eq!(acked(br#"{"acked":["a1","b2"],"unknown":["c3"]}"#), 2);
        assert_eq!(acked(br#"{"acked":[],"unknown":["c3"]}"#), 0);
        assert_eq!(acked(b"not json"), 0);
    }
}

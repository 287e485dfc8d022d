//! Inbox readers for a bench run (`--drain`): one per agency, each reading
//! its agency's inbox and acknowledging every envelope in it, as receiving
//! agencies do in real use. Without them every exchange leaves an inbox
//! record behind, so a long run measures a store that grows by every
//! envelope sent; with them the stored data is the log and the state.
//!
//! Each acknowledgement is a durable commit, so a reader acknowledging one
//! envelope at a time waited a commit per envelope and kept up with under
//! a third of a loaded gateway's arrivals; it acknowledges each page over
//! [`CONNECTIONS`] connections at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::Method;
use tokio::task::JoinSet;

use crate::client::Client;

/// Connections per agency, acknowledging at once.
pub const CONNECTIONS: usize = 8;
/// Envelopes read per inbox page.
const PAGE: usize = 200;
/// How long an empty inbox is left before it is read again.
const IDLE: Duration = Duration::from_millis(50);

/// Reads and acknowledges an agency's inbox until `stop`, over `clients`
/// (the agency's connections: the first reads, all acknowledge), counting
/// each acknowledged envelope in `drained`.
pub async fn drain(mut clients: Vec<Client>, stop: Arc<AtomicBool>, drained: Arc<AtomicU64>) {
    let page = format!("/v1/inbox?limit={PAGE}");
    while !stop.load(Ordering::Relaxed) {
        let Some(reader) = clients.first_mut() else {
            return;
        };
        let ids = match reader.request(Method::GET, &page, None, Vec::new()).await {
            Ok(reply) if reply.status.is_success() => ids(&reply.body),
            _ => Vec::new(),
        };
        if ids.is_empty() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        let chunks = ids.chunks(ids.len().div_ceil(clients.len()));
        // As many connections as there are chunks; any others stay idle.
        let busy = clients.drain(..chunks.len()).collect::<Vec<_>>();
        let mut acks = JoinSet::new();
        for (client, chunk) in busy.into_iter().zip(chunks) {
            let (stop, drained) = (Arc::clone(&stop), Arc::clone(&drained));
            acks.spawn(ack(client, chunk.to_vec(), stop, drained));
        }
        while let Some(done) = acks.join_next().await {
            if let Ok(client) = done {
                clients.push(client);
            }
        }
    }
}

/// Acknowledges `ids` one after another on `client`, and hands it back.
async fn ack(
    mut client: Client,
    ids: Vec<String>,
    stop: Arc<AtomicBool>,
    drained: Arc<AtomicU64>,
) -> Client {
    for id in ids {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let path = format!("/v1/inbox/{id}/ack");
        let acked = client.request(Method::POST, &path, None, Vec::new()).await;
        if acked.is_ok_and(|r| r.status.is_success()) {
            drained.fetch_add(1, Ordering::Relaxed);
        }
    }
    client
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
}

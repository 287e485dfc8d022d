//! Reading `GET /v1/reconciliations/stream` as it arrives: Server-Sent
//! Events (WHATWG HTML, "Server-sent events"), as the gateway writes them
//! (`xgate_server::http` `stream`): blocks separated by a blank line, each
//! `id: <log index>.<seq>`, `event: discrepancy|resolved` and one `data:`
//! line of JSON; comment lines (`:`) keep the connection open.

use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::cli::error::Error;
use crate::client::Client;
use xgate_server::assets::reconcile::Notice;

/// An open feed of reconciliation notices. Dropping it closes the
/// connection.
pub(super) struct Feed {
    body: Incoming,
    /// Bytes read and not yet parsed: a frame may end inside an event, or
    /// inside a character.
    pending: Vec<u8>,
}

impl Feed {
    /// Opens the feed with `client`'s identity; it starts at the next
    /// commit.
    ///
    /// # Errors
    /// A transport failure, or a status other than 200.
    pub async fn open(client: &Client) -> Result<Feed, Error> {
        let (status, body) = client
            .open_stream("/v1/reconciliations/stream", "text/event-stream")
            .await?;
        if status != StatusCode::OK {
            return Err(Error::Request(format!(
                "the reconciliation feed answered {status}"
            )));
        }
        Ok(Feed {
            body,
            pending: Vec::new(),
        })
    }

    /// The next notice, or `None` if none arrives within `wait`.
    ///
    /// # Errors
    /// The feed ending, or an event that is not a notice.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Notice>, Error> {
        match tokio::time::timeout(wait, self.next()).await {
            Ok(notice) => notice.map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn next(&mut self) -> Result<Notice, Error> {
        loop {
            while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.pending.drain(..end + 2).collect();
                let block = std::str::from_utf8(&block).map_err(|_| {
                    Error::Request("the feed sent an event that is not UTF-8".into())
                })?;
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).map_err(|_| {
                        Error::Request("the feed sent an event that is not a notice".into())
                    });
                }
            }
            let frame = self
                .body
                .frame()
                .await
                .ok_or_else(|| Error::Request("the reconciliation feed ended".into()))?
                .map_err(|e| Error::Request(format!("reading the reconciliation feed: {e}")))?;
            if let Ok(data) = frame.into_data() {
                self.pending.extend_from_slice(&data);
            }
        }
    }
}

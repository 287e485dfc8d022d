//! `xgate audit replay --log`: one log of a federation fetched whole
//! through its public tlog-tiles resources and checked against the
//! registry, never against anything its server says about itself.
//!
//! The checkpoint names its origin on its first line; the log's key is the
//! registry's `log_key` of the gateway whose key bears that name, and the
//! note must verify with it (and carry the witnesses' quorum if one is
//! asked). Then every entry bundle up to the checkpoint's size is fetched,
//! each entry checked against its leaf hash in the level-0 tile, and every
//! leaf hash folded into the tree's right edge: the root it gives must be
//! the checkpoint's, so the entries are exactly the log's, none missing,
//! none added, none changed.

use std::path::Path;

use xgate_ledger::NoteVerifier;
use xgate_server::registry::{GatewayId, Registry};

use super::super::error::Error;
use super::trust::Trust;
use crate::tiles::{Edge, Fetcher, LogClient};

/// At most this much of an origin a server sent is repeated in a message.
const SHOWN_ORIGIN: usize = 80;

/// What `--witness` and `--quorum` ask of every log.
#[derive(Clone, Copy, Debug)]
pub struct Witnesses<'a> {
    /// The witnesses' cosigner keys.
    pub keys: &'a [String],
    /// How many must have cosigned; default all listed.
    pub quorum: Option<usize>,
}

/// A log fetched whole and checked.
#[derive(Debug)]
pub struct Fetched {
    /// The registry's gateway whose log it is.
    pub gateway: GatewayId,
    /// Its checkpoint's size.
    pub size: u64,
    /// Every entry, in log order.
    pub entries: Vec<Vec<u8>>,
}

/// Fetches the log at `url` (trusting `ca` for HTTPS), identifies its
/// gateway in `registry`, verifies its checkpoint and fetches every entry
/// the checkpoint covers.
///
/// # Errors
/// [`Error::Request`] naming the URL and what does not check out: a log
/// that cannot be reached, a checkpoint no registry key verifies (or
/// without the quorum), entries that do not hash to its root.
pub async fn fetch(
    url: &str,
    ca: Option<&Path>,
    registry: &Registry,
    witnesses: Witnesses<'_>,
) -> Result<Fetched, Error> {
    let fail = |why: String| Error::Request(format!("--log {url}: {why}"));
    let fetcher = Fetcher::new(url, ca).map_err(|e| fail(e.to_string()))?;
    let mut client = LogClient::new(fetcher);
    let note = client
        .checkpoint()
        .await
        .map_err(|e| fail(format!("cannot fetch its checkpoint: {e}")))?;
    let (gateway, trust) = identify(&note, registry, witnesses).map_err(fail)?;
    // The log's signature verified in `identify`: what fails here is the
    // witnesses' part.
    let cosigned = trust.verify(&note).map_err(|e| {
        fail(format!(
            "its checkpoint verifies with gateway {gateway}'s log key but not with the witnesses asked: {e}"
        ))
    })?;
    let checkpoint = cosigned.checkpoint.checkpoint;
    let fail = |why: String| fail(format!("(gateway {gateway}) {why}"));
    let mut edge = Edge::default();
    let mut entries = Vec::new();
    for bundle in 0..checkpoint.size.div_ceil(256) {
        let fetched = client.bundle(&checkpoint, bundle).await.map_err(|e| {
            fail(match e.is_misbehaviour() {
                true => format!("its entries are not the log's: {e}"),
                false => e.to_string(),
            })
        })?;
        for (entry, leaf) in fetched {
            edge.push(leaf);
            entries.push(entry);
        }
    }
    if edge.size() != checkpoint.size || edge.root() != checkpoint.root {
        return Err(fail(format!(
            "its entries do not hash to the root of its checkpoint of size {}",
            checkpoint.size
        )));
    }
    Ok(Fetched {
        gateway,
        size: checkpoint.size,
        entries,
    })
}

/// The gateway whose log key is named as the checkpoint's origin, and the
/// trust to verify it with. Several gateways may bear the name: the first
/// whose key verifies the note is taken.
fn identify(
    note: &str,
    registry: &Registry,
    witnesses: Witnesses<'_>,
) -> Result<(GatewayId, Trust), String> {
    let origin = note.split('\n').next().unwrap_or_default();
    let named: Vec<_> = registry
        .gateways()
        .filter(|g| NoteVerifier::parse(&g.log_key).is_ok_and(|k| k.name() == origin))
        .collect();
    let mut refused = None;
    for gateway in &named {
        let trust = Trust::from_args(&gateway.log_key, witnesses.keys, witnesses.quorum)
            .map_err(|e| e.to_string())?;
        if xgate_ledger::verify_checkpoint(note, &trust.log).is_ok() {
            return Ok((gateway.id.clone(), trust));
        }
        refused.get_or_insert(&gateway.id);
    }
    let shown: String = origin.chars().take(SHOWN_ORIGIN).collect();
    Err(match refused {
        Some(id) => format!(
            "its checkpoint (origin {shown:?}) does not verify with the log key the registry gives gateway {id}: no registry key verifies it"
        ),
        None => format!(
            "its checkpoint's origin {shown:?} names no gateway's log key in the registry: no registry key verifies it"
        ),
    })
}

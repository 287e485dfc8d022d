//! The auditor's steps. gao trusts nothing but the log's public key: each
//! receipt is checked offline exactly as `xgate audit verify-receipt`
//! checks it ([`Receipt::verify`]: the checkpoint's signature, then the
//! inclusion proof against its root, RFC 9162 section 2.1.3.2); then the
//! first checkpoint any receipt carried is proven a prefix of the log's
//! latest (RFC 9162 section 2.1.4.2), with a consistency proof fetched from
//! the gateway and checked against the two signed roots, never against
//! roots the gateway states. Once the gateway has stopped, gao replays the
//! log as `xgate audit replay` does.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use xgate_ledger::{ConsistencyProof, Hash, OpenOptions, verify_checkpoint, verify_consistency};

use super::cast::Story;
use crate::cli::demo::out::Out;
use crate::cli::demo::summary::{Consistency, Tally};
use crate::cli::error::Error;
use xgate_server::logview::ConsistencyView;
use xgate_server::recompute;
use xgate_server::registry::Registry;

/// Verifies every receipt of the story and the log's consistency.
///
/// # Errors
/// The first check that fails.
pub(super) fn verify(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let key = story.federation.verifier.clone();
    story.out.step(
        "audit",
        &format!(
            "gao checks each receipt offline with nothing but the log's public key ({})",
            key.name()
        ),
    )?;
    let mut first = None;
    for i in 0..story.tally.rows.len() {
        let row = &story.tally.rows[i];
        let checkpoint = row.receipt.verify(&key).map_err(|e| {
            Error::Request(format!(
                "the receipt of entry {} does not verify: {e}",
                row.receipt.log_index
            ))
        })?;
        let line = format!(
            "ok  entry {:>2}  {:<22} {:<18} in the signed checkpoint of size {}",
            row.receipt.log_index,
            row.kind.as_str(),
            row.subject,
            checkpoint.size
        );
        first.get_or_insert(checkpoint);
        story.tally.rows[i].verified = true;
        story.out.more(&line)?;
    }
    let first =
        first.ok_or_else(|| Error::Request("the story produced no receipts to check".into()))?;
    story.out.step(
        "consistency",
        "gao fetches the latest checkpoint and proves the first one a prefix of it",
    )?;
    let note = story.call("gao", http::Method::GET, "/v1/log/checkpoint")?;
    let note = String::from_utf8(note.body.to_vec())
        .map_err(|_| Error::Request("the checkpoint is not text".into()))?;
    let latest = verify_checkpoint(&note, &key)
        .map_err(|e| Error::Request(format!("the latest checkpoint does not verify: {e}")))?;
    let view: ConsistencyView = serde_json::from_value(story.get(
        "gao",
        &format!(
            "/v1/log/proof/consistency?from={}&to={}",
            first.size, latest.size
        ),
    )?)
    .map_err(|_| Error::Request("the consistency proof is not the JSON expected".into()))?;
    let proof = ConsistencyProof {
        old_size: first.size,
        new_size: latest.size,
        hashes: view
            .hashes
            .iter()
            .map(|h| unb64(h))
            .collect::<Result<_, _>>()?,
    };
    verify_consistency(&proof, &first.root, &latest.root).map_err(|e| {
        Error::Request(format!(
            "the log of size {} is not an extension of size {}: {e}",
            latest.size, first.size
        ))
    })?;
    story.out.more(&format!(
        "ok  the tree of size {} is a prefix of the tree of size {} ({} proof hashes): \
         nothing logged was changed or dropped",
        first.size,
        latest.size,
        proof.hashes.len()
    ))?;
    story.tally.log_size = latest.size;
    story.tally.consistency = Some(Consistency {
        from: first.size,
        to: latest.size,
    });
    Ok(())
}

/// The last step, once the gateway has stopped and let go of its data:
/// gao recomputes the state from the log and compares.
///
/// # Errors
/// A log that cannot be opened, or a state that differs from the replay.
pub(in crate::cli::demo) fn after_stop(
    dir: &Path,
    kept: bool,
    tally: &mut Tally,
    out: &mut Out<'_>,
) -> Result<(), Error> {
    out.step(
        "replay",
        "the gateway stops; gao replays its log offline and recomputes the asset and medical state",
    )?;
    let registry = Registry::load(&dir.join("pki").join(xgate_server::pki::REGISTRY))?;
    let log = xgate_ledger::Log::open_existing(dir, &OpenOptions::default())?;
    let outcome = recompute::replay(&log, Some(&registry))?;
    drop(log);
    if !outcome.is_clean() {
        return Err(Error::Request(format!(
            "the stored state differs from the replay in {} places",
            outcome.difference_count
        )));
    }
    tally.replayed = Some(outcome.entries);
    out.more(&format!(
        "ok  {} entries, {} asset and medical envelopes, signatures checked: \
         the stored state equals the recomputed state",
        outcome.entries, outcome.applied
    ))?;
    if kept {
        out.more(&format!("the data stays in {}", dir.display()))
    } else {
        out.more("nothing is left running; the temporary directory is removed")
    }
}

fn unb64(text: &str) -> Result<Hash, Error> {
    B64.decode(text)
        .ok()
        .and_then(|b| Hash::from_slice(&b))
        .ok_or_else(|| Error::Request("the consistency proof holds a bad hash".into()))
}

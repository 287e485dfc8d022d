//! The auditor's steps. gao trusts nothing but public keys: the log's and
//! the agencies' witnesses'. Each receipt is checked exactly as `xgate
//! audit verify-receipt --key LOG --witness W... --quorum K --log URL --ca
//! CA` checks it: offline first ([`Receipt::verify`]: the checkpoint's
//! signature, then the inclusion proof against its root, RFC 9162 section
//! 2.1.3.2), then against the checkpoint the public listener serves, which
//! must carry the quorum's cosignatures, with the receipt's checkpoint
//! proven consistent with it and the entry included in it, both
//! recomputed from the log's tiles ([`prove_in_cosigned`]). Then the
//! first checkpoint any receipt carried is proven a prefix of the log's
//! latest (RFC 9162 section 2.1.4.2), with a consistency proof fetched
//! from the gateway's API and checked against the two signed roots, never
//! against roots the gateway states. Once the gateway has stopped, gao
//! replays the log as `xgate audit replay` does.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use xgate_ledger::{ConsistencyProof, Hash, OpenOptions, verify_checkpoint, verify_consistency};

use super::cast::Story;
use super::cosigned::{public_log, trust};
use crate::cli::audit::verify::prove_in_cosigned;
use crate::cli::demo::out::Out;
use crate::cli::demo::summary::{Consistency, QuorumCheck, Tally};
use crate::cli::error::Error;
use xgate_server::logview::ConsistencyView;
use xgate_server::recompute;
use xgate_server::registry::Registry;

/// Verifies every receipt of the story, against the witnesses' quorum
/// too, and the log's consistency.
///
/// # Errors
/// The first check that fails.
pub(super) fn verify(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let federation = story.federation;
    let key = federation.verifier.clone();
    let trust = trust(story)?;
    story.out.step(
        "audit",
        &format!(
            "gao checks each receipt with nothing but public keys: the log's ({}) and \
             the {} witnesses', {} cosignatures required",
            key.name(),
            federation.witnesses.len(),
            federation.quorum
        ),
    )?;
    let mut client = public_log(story)?;
    let note = story
        .runtime
        .block_on(client.checkpoint())
        .map_err(|e| Error::Request(format!("cannot get the log's checkpoint: {e}")))?;
    let mut first = None;
    let mut cosigned = None;
    for i in 0..story.tally.rows.len() {
        let receipt = story.tally.rows[i].receipt.clone();
        let own = receipt.verify(&key).map_err(|e| {
            Error::Request(format!(
                "the receipt of entry {} does not verify: {e}",
                receipt.log_index
            ))
        })?;
        let covered = story.runtime.block_on(prove_in_cosigned(
            &trust,
            &receipt,
            &own,
            &note,
            "the public listener",
            Some(&mut client),
        ))?;
        let row = &story.tally.rows[i];
        let line = format!(
            "ok  entry {:>2}  {:<22} {:<18} in the signed checkpoint of size {:>2}, \
             the cosigned one of size {}",
            receipt.log_index,
            row.kind.as_str(),
            row.subject,
            own.size,
            covered.cosigned.checkpoint.checkpoint.size
        );
        first.get_or_insert(own);
        cosigned = Some(covered.cosigned);
        story.tally.rows[i].verified = true;
        story.out.more(&line)?;
    }
    if let Some(cosigned) = cosigned {
        story.out.more(&format!(
            "ok  all {} receipts in the checkpoint of size {} {}",
            story.tally.rows.len(),
            cosigned.checkpoint.checkpoint.size,
            trust.describe(&cosigned),
        ))?;
        story.out.more(
            "    consistency and inclusion recomputed from the log's public tiles, \
             as xgate audit verify-receipt --witness ... --quorum K --log URL does",
        )?;
        story.tally.quorum = Some(QuorumCheck {
            receipts: story.tally.rows.len(),
            size: cosigned.checkpoint.checkpoint.size,
            cosigners: cosigned.cosignatures.len(),
            witnesses: federation.witnesses.len(),
            required: federation.quorum,
        });
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

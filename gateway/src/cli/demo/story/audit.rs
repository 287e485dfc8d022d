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
//! replays the log as `xgate audit replay --policy` does, with the demo's
//! policy file, so every act its contracts took is recomputed too.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use xgate_ledger::cosign::Cosigned;
use xgate_ledger::{
    Checkpoint, ConsistencyProof, Hash, OpenOptions, verify_checkpoint, verify_consistency,
};

use super::cast::{Story, origin};
use super::cosigned::{public_log, trust};
use crate::cli::audit::trust::Trust;
use crate::cli::audit::verify::prove_in_cosigned;
use crate::cli::demo::federation::Site;
use crate::cli::demo::out::Out;
use crate::cli::demo::policy;
use crate::cli::demo::summary::{Consistency, QuorumCheck, Replayed, Tally};
use crate::cli::error::Error;
use crate::tiles::LogClient;
use xgate_server::logview::ConsistencyView;
use xgate_server::policy::Policy;
use xgate_server::receipt::Receipt;
use xgate_server::recompute;
use xgate_server::registry::Registry;

/// One log the auditor reads: its gateway, what it trusts of it, a
/// tlog-tiles client of its public listener and the checkpoint served
/// there; and what was proven in it.
struct Audited<'f> {
    site: &'f Site,
    trust: Trust,
    client: LogClient,
    note: String,
    receipts: usize,
    first: Option<Checkpoint>,
    cosigned: Option<Cosigned>,
}

/// Verifies every receipt of the story (in a federation, the senders'
/// and the delivery receipts, each against the log that gave it),
/// against the witnesses' quorum too, and the single log's consistency.
///
/// # Errors
/// The first check that fails.
pub(super) fn verify(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let federation = story.federation;
    let intro = match federation.is_federated() {
        true => "gao checks each receipt, the senders' and the delivery receipts, with nothing \
                 but public keys: each log's key, from the registry"
            .to_owned(),
        false => format!(
            "gao checks each receipt with nothing but public keys: the log's ({}) and \
             the {} witnesses', {} cosignatures required",
            federation.sites[0].verifier.name(),
            federation.witnesses.len(),
            federation.quorum
        ),
    };
    story.out.step("audit", &intro)?;
    let mut logs = Vec::with_capacity(federation.sites.len());
    for site in &federation.sites {
        let mut client = public_log(story, site)?;
        let note = story
            .runtime
            .block_on(client.checkpoint())
            .map_err(|e| Error::Request(format!("cannot get the log's checkpoint: {e}")))?;
        logs.push(Audited {
            site,
            trust: trust(story, site)?,
            client,
            note,
            receipts: 0,
            first: None,
            cosigned: None,
        });
    }
    for i in 0..story.tally.rows.len() {
        let row = &story.tally.rows[i];
        let (kind, subject) = (row.kind, row.subject.clone());
        let receipts: Vec<Receipt> = std::iter::once(row.receipt.clone())
            .chain(row.delivery.clone())
            .collect();
        for receipt in receipts {
            let log = logs
                .iter_mut()
                .find(|l| l.site.origin == origin(&receipt))
                .ok_or_else(|| {
                    Error::Request(format!("no gateway's log is {}", origin(&receipt)))
                })?;
            let line = prove(story, log, &receipt, kind.as_str(), &subject)?;
            story.out.more(&line)?;
        }
        story.tally.rows[i].verified = true;
    }
    for log in &logs {
        let Some(cosigned) = &log.cosigned else {
            continue;
        };
        let size = cosigned.checkpoint.checkpoint.size;
        story.out.more(&format!(
            "ok  {}all {} receipts in the checkpoint of size {size} {}",
            match federation.is_federated() {
                true => format!("{}: ", log.site.name()),
                false => String::new(),
            },
            log.receipts,
            log.trust.describe(cosigned),
        ))?;
        story
            .tally
            .log_sizes
            .push((log.site.name().to_owned(), size));
    }
    story.out.more(match federation.is_federated() {
        true => {
            "    consistency and inclusion recomputed from each log's public tiles, \
                 as xgate audit verify-receipt --key LOG_KEY --log URL does"
        }
        false => {
            "    consistency and inclusion recomputed from the log's public tiles, \
                  as xgate audit verify-receipt --witness ... --quorum K --log URL does"
        }
    })?;
    let single = &logs[0];
    if let (false, Some(cosigned)) = (federation.is_federated(), &single.cosigned) {
        story.tally.quorum = Some(QuorumCheck {
            receipts: single.receipts,
            size: cosigned.checkpoint.checkpoint.size,
            cosigners: cosigned.cosignatures.len(),
            witnesses: federation.witnesses.len(),
            required: federation.quorum,
        });
    }
    match (federation.is_federated(), single.first.clone()) {
        (true, _) => Ok(()),
        (false, Some(first)) => consistency(story, first),
        (false, None) => Err(Error::Request(
            "the story produced no receipts to check".into(),
        )),
    }
}

/// Proves `receipt` of an envelope of `kind` about `subject` in the
/// checkpoint `log` serves; returns the line that says so.
fn prove(
    story: &Story<'_, '_, '_>,
    log: &mut Audited<'_>,
    receipt: &Receipt,
    kind: &str,
    subject: &str,
) -> Result<String, Error> {
    let own = receipt.verify(&log.trust.log).map_err(|e| {
        Error::Request(format!(
            "the receipt of {} does not verify: {e}",
            story.entry(receipt)
        ))
    })?;
    let covered = story.runtime.block_on(prove_in_cosigned(
        &log.trust,
        receipt,
        &own,
        &log.note,
        "the public listener",
        Some(&mut log.client),
    ))?;
    let pad = match story.federation.is_federated() {
        true => 12,
        false => 0,
    };
    let served = match story.federation.witnesses.is_empty() {
        true => "served",
        false => "cosigned",
    };
    let line = format!(
        "ok  {:<pad$}entry {:>2}  {:<22} {:<18} in the signed checkpoint of size {:>2}, \
         the {served} one of size {}",
        story.prefix(log.site),
        receipt.log_index,
        kind,
        subject,
        own.size,
        covered.cosigned.checkpoint.checkpoint.size
    );
    log.first.get_or_insert(own);
    log.cosigned = Some(covered.cosigned);
    log.receipts += 1;
    Ok(line)
}

/// Proves the first checkpoint any receipt carried a prefix of the log's
/// latest, fetched from the gateway's API as gao.
fn consistency(story: &mut Story<'_, '_, '_>, first: Checkpoint) -> Result<(), Error> {
    let key = story.federation.sites[0].verifier.clone();
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

/// The last step, once the gateways have stopped and let go of their
/// data: gao recomputes each one's state from its log, with the policy
/// file in its data directory (so each contract act is recomputed and
/// checked against the one logged), and compares. `stores` names each
/// gateway and its data directory; `registry` is the registry file;
/// `kept` is where the data stays, if it does.
///
/// # Errors
/// A log that cannot be opened, or a state that differs from the replay.
pub(in crate::cli::demo) fn after_stop(
    stores: &[(String, PathBuf)],
    registry: &Path,
    kept: Option<&Path>,
    tally: &mut Tally,
    out: &mut Out<'_>,
) -> Result<(), Error> {
    let federated = stores.len() > 1;
    out.step(
        "replay",
        match federated {
            true => {
                "the gateways stop; gao replays each one's log offline with its policy file and \
                 recomputes its asset and medical state and every contract act"
            }
            false => {
                "the gateway stops; gao replays its log offline with the policy file and \
                 recomputes the asset and medical state and every contract act"
            }
        },
    )?;
    let registry = Registry::load(registry)?;
    let (mut entries, mut acts) = (0, 0);
    for (name, dir) in stores {
        let policy = Policy::load(&dir.join(policy::FILE), &registry)?;
        let log = xgate_ledger::Log::open_existing(dir, &OpenOptions::default())?;
        let outcome = recompute::replay(&log, Some(&registry), std::slice::from_ref(&policy))?;
        drop(log);
        if !outcome.is_clean() {
            return Err(Error::Request(format!(
                "{name}: the stored state differs from the replay in {} places",
                outcome.difference_count
            )));
        }
        entries += outcome.entries;
        acts += outcome.acts;
        out.more(&format!(
            "ok  {}{} entries, {} asset and medical envelopes, {} contract acts recomputed, \
             signatures checked: the stored state equals the recomputed state",
            match federated {
                true => format!("{name:<12}"),
                false => String::new(),
            },
            outcome.entries,
            outcome.applied,
            outcome.acts
        ))?;
    }
    // Every act the logs hold is one the story saw: no contract fired
    // anywhere else (a failed evaluation is an act too).
    let told = u64::try_from(tally.acts.len()).unwrap_or(u64::MAX);
    if acts != told {
        return Err(Error::Request(format!(
            "the logs hold {acts} contract acts, the story told {told}"
        )));
    }
    tally.replayed = Some(Replayed {
        logs: stores.len(),
        entries,
        acts,
    });
    match kept {
        Some(dir) => out.more(&format!("the data stays in {}", dir.display())),
        None => out.more("nothing is left running; the temporary directory is removed"),
    }
}

fn unb64(text: &str) -> Result<Hash, Error> {
    B64.decode(text)
        .ok()
        .and_then(|b| Hash::from_slice(&b))
        .ok_or_else(|| Error::Request("the consistency proof holds a bad hash".into()))
}

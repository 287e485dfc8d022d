//! The witnesses' step: anyone, with no certificate of the federation,
//! reads the log's newest checkpoint from the public tlog-tiles listener
//! (`GET /checkpoint`) and sees which agencies' witnesses cosigned it and
//! the time they vouch for. The gateway serves a checkpoint there only
//! once a quorum cosigned it, a moment after the envelopes it covers were
//! logged, so the step waits (briefly) for the one covering every
//! envelope of the story.
//!
//! In a federation of gateways each gateway serves its own log's
//! checkpoint; the step shows each one, covering what the story logged
//! there.

use std::time::{Duration, Instant};

use xgate_ledger::cosign::Cosigned;

use super::cast::{Story, origin};
use crate::cli::audit::trust::{Trust, rfc3339};
use crate::cli::demo::federation::Site;
use crate::cli::demo::witnesses::Listed;
use crate::cli::error::Error;
use crate::tiles::{Fetcher, LogClient, TilesError};
use xgate_server::config::default_federation_quorum;
use xgate_server::pki::REGISTRY;
use xgate_server::registry::Registry;

/// How long the gateway gets to gather the quorum for the last envelope;
/// at the demo's pace it takes a fraction of a second.
const PATIENCE: Duration = Duration::from_secs(20);

/// How often `/checkpoint` is asked again meanwhile.
const POLL: Duration = Duration::from_millis(50);

/// Shows the cosigned checkpoint covering every envelope of the story.
///
/// # Errors
/// A listener that cannot be read, a checkpoint that does not verify, or
/// none covering the story within [`PATIENCE`].
pub(super) fn show(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let federation = story.federation;
    if federation.witnesses.is_empty() {
        return checkpoints(story);
    }
    let site = &federation.sites[0];
    let trust = trust(story, site)?;
    story.out.step(
        "witnesses",
        &format!(
            "each agency runs a witness; the gateway serves a checkpoint to anyone \
             once {} of the {} cosigned it",
            federation.quorum,
            federation.witnesses.len()
        ),
    )?;
    let cosigned = served(story, site, &trust)?;
    story.out.more(&format!(
        "GET /checkpoint from the public tlog-tiles listener (no client certificate): \
         size {}, signed by the log and cosigned by {} of the {} witnesses:",
        cosigned.checkpoint.checkpoint.size,
        cosigned.cosignatures.len(),
        federation.witnesses.len(),
    ))?;
    for cosignature in &cosigned.cosignatures {
        story
            .out
            .more(&describe(&federation.witnesses, &cosignature.witness))?;
    }
    if let Some(earliest) = cosigned.earliest_time() {
        let by = cosigned
            .cosignatures
            .iter()
            .find(|c| c.timestamp == earliest)
            .map_or("?", |c| c.witness.as_str());
        story.out.more(&format!(
            "trusted time: {}, the earliest cosignature ({by}): the witnesses vouch that \
             all {} entries were logged by then",
            rfc3339(earliest),
            cosigned.checkpoint.checkpoint.size
        ))?;
    }
    Ok(())
}

/// In a federation: each gateway's checkpoint, from its public listener,
/// covering what the story logged there.
fn checkpoints(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let federation = story.federation;
    story.out.step(
        "checkpoints",
        "each gateway serves its log's checkpoint to anyone on its public tlog-tiles \
         listener (no client certificate)",
    )?;
    for site in &federation.sites {
        let trust = trust(story, site)?;
        let cosigned = served(story, site, &trust)?;
        let checkpoint = &cosigned.checkpoint.checkpoint;
        story.out.more(&format!(
            "  {:<12}GET /checkpoint: size {:>2}, signed by {} with the key the registry lists, \
             cosigned by {} of its peers' witnesses",
            site.name(),
            checkpoint.size,
            checkpoint.origin,
            cosigned.cosignatures.len()
        ))?;
    }
    Ok(())
}

/// The checkpoint `site`'s public listener serves once it covers every
/// entry the story logged there, accepted by `trust`.
fn served(story: &Story<'_, '_, '_>, site: &Site, trust: &Trust) -> Result<Cosigned, Error> {
    let size = story
        .tally
        .rows
        .iter()
        .flat_map(|r| std::iter::once(&r.receipt).chain(&r.delivery))
        .filter(|r| origin(r) == site.origin)
        .map(|r| r.log_index + 1)
        .max()
        .unwrap_or(0);
    let mut client = public_log(story, site)?;
    story.runtime.block_on(covering(&mut client, trust, size))
}

/// What gao trusts of `site`: its log's key and the witnesses' keys, with
/// the quorum the gateway was given (as `xgate audit verify-receipt --key
/// LOG --witness W... --quorum K` would).
///
/// In a federation the witnesses of a gateway's log are its peers' (their
/// `witness_key`s from the registry, never from a server's answer), with
/// the default quorum, a majority of them.
pub(super) fn trust(story: &Story<'_, '_, '_>, site: &Site) -> Result<Trust, Error> {
    let federation = story.federation;
    let (keys, quorum): (Vec<String>, usize) = match &site.id {
        Some(id) => {
            let registry = Registry::load(&federation.pki.join(REGISTRY))?;
            let keys: Vec<String> = registry
                .gateways()
                .filter(|g| &g.id != id)
                .filter_map(|g| g.witness_key.clone())
                .collect();
            let quorum = default_federation_quorum(keys.len());
            (keys, quorum)
        }
        None => (
            federation
                .witnesses
                .iter()
                .map(|w| w.vkey.clone())
                .collect(),
            federation.quorum,
        ),
    };
    let quorum = (!keys.is_empty()).then_some(quorum);
    Trust::from_args(&site.verifier.to_string(), &keys, quorum)
}

/// A tlog-tiles client of `site`'s public listener, trusting the
/// federation's CA for its certificate (`--log URL --ca FILE`).
pub(super) fn public_log(story: &Story<'_, '_, '_>, site: &Site) -> Result<LogClient, Error> {
    let fetcher = Fetcher::new(&site.public_url, Some(&story.federation.ca))
        .map_err(|e| Error::Request(format!("the public listener: {e}")))?;
    Ok(LogClient::new(fetcher))
}

/// The first checkpoint served that `trust` accepts and that covers `size`
/// entries.
async fn covering(client: &mut LogClient, trust: &Trust, size: u64) -> Result<Cosigned, Error> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.checkpoint().await {
            Ok(note) => {
                let cosigned = trust.verify(&note).map_err(|e| {
                    Error::Request(format!("the public checkpoint is not accepted: {e}"))
                })?;
                if cosigned.checkpoint.checkpoint.size >= size {
                    return Ok(cosigned);
                }
            }
            // Nothing is served before the first quorum: ask again.
            Err(TilesError::Missing { .. }) => {}
            Err(e) => {
                return Err(Error::Request(format!(
                    "cannot read the public checkpoint: {e}"
                )));
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Request(format!(
                "no checkpoint of size {size} cosigned by the quorum within {} s",
                PATIENCE.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `  witness.hhs.example       run by hhs       ml-dsa-44` for a
/// witness's name.
fn describe(witnesses: &[Listed], name: &str) -> String {
    match witnesses
        .iter()
        .find(|w| w.vkey.split('+').next() == Some(name))
    {
        Some(w) => format!("  {name:<26}run by {:<10}{}", w.agency, w.alg),
        None => format!("  {name}"),
    }
}

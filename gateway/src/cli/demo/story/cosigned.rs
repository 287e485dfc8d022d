//! The witnesses' step: anyone, with no certificate of the federation,
//! reads the log's newest checkpoint from the public tlog-tiles listener
//! (`GET /checkpoint`) and sees which agencies' witnesses cosigned it and
//! the time they vouch for. The gateway serves a checkpoint there only
//! once a quorum cosigned it, a moment after the envelopes it covers were
//! logged, so the step waits (briefly) for the one covering every
//! envelope of the story.

use std::time::{Duration, Instant};

use xgate_ledger::cosign::Cosigned;

use super::cast::Story;
use crate::cli::audit::trust::{Trust, rfc3339};
use crate::cli::demo::witnesses::Listed;
use crate::cli::error::Error;
use crate::tiles::{Fetcher, LogClient, TilesError};

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
    let trust = trust(story)?;
    story.out.step(
        "witnesses",
        &format!(
            "each agency runs a witness; the gateway serves a checkpoint to anyone \
             once {} of the {} cosigned it",
            federation.quorum,
            federation.witnesses.len()
        ),
    )?;
    let size = story
        .tally
        .rows
        .iter()
        .map(|r| r.receipt.log_index + 1)
        .max()
        .unwrap_or(0);
    let mut client = public_log(story)?;
    let cosigned = story
        .runtime
        .block_on(covering(&mut client, &trust, size))?;
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

/// What gao trusts: the log's key and the witnesses' keys, with the quorum
/// the gateway was given (as `xgate audit verify-receipt --key LOG
/// --witness W... --quorum K` would).
pub(super) fn trust(story: &Story<'_, '_, '_>) -> Result<Trust, Error> {
    let federation = story.federation;
    let keys: Vec<String> = federation
        .witnesses
        .iter()
        .map(|w| w.vkey.clone())
        .collect();
    Trust::from_args(
        &federation.verifier.to_string(),
        &keys,
        Some(federation.quorum),
    )
}

/// A tlog-tiles client of the public listener, trusting the federation's
/// CA for its certificate (`--log URL --ca FILE`).
pub(super) fn public_log(story: &Story<'_, '_, '_>) -> Result<LogClient, Error> {
    let federation = story.federation;
    let fetcher = Fetcher::new(&federation.public_url, Some(&federation.ca))
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

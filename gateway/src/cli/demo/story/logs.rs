//! The auditor's replay of a federation: every gateway's public log
//! fetched whole and checked with the registry's keys, each cross-gateway
//! exchange matched on both sides by sender and `jti`, and the
//! federation-wide asset and medical state recomputed. It runs `xgate
//! audit replay --log URL... --registry FILE --ca FILE` itself
//! ([`ReplayArgs::run`]) and shows what it prints.

use super::cast::Story;
use crate::cli::audit::replay::ReplayArgs;
use crate::cli::error::Error;
use xgate_server::pki::{CA_CERT, REGISTRY};

/// Replays every gateway's log together while they serve.
///
/// # Errors
/// A log that cannot be fetched or checked, or any finding.
pub(super) fn replay(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    let federation = story.federation;
    let args = ReplayArgs {
        data_dir: None,
        store: None,
        policies: Vec::new(),
        logs: federation
            .sites
            .iter()
            .map(|s| s.public_url.clone())
            .collect(),
        registry: Some(federation.pki.join(REGISTRY)),
        ca: Some(federation.ca.clone()),
        witnesses: Vec::new(),
        quorum: None,
    };
    story.out.step(
        "federation",
        &format!(
            "gao replays the {} gateways' public logs together, matching each cross-gateway \
             exchange on both sides by sender and jti:",
            federation.sites.len()
        ),
    )?;
    story.out.more(&format!(
        "xgate audit replay{} --registry PKI/{REGISTRY} --ca PKI/{CA_CERT}",
        " --log URL".repeat(args.logs.len())
    ))?;
    let mut printed = Vec::new();
    let replayed = args.run(&mut printed);
    let printed = String::from_utf8_lossy(&printed);
    for line in printed.lines() {
        story.out.more(line)?;
    }
    replayed?;
    story.tally.federation = printed.lines().next().map(str::to_owned);
    Ok(())
}

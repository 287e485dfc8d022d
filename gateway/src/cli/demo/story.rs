//! The story: who sends what, in order, through the real client stack
//! (mutual TLS as each agency, envelopes signed with each agency's key),
//! and what each step shows. The agencies' connections and what every
//! step shares are in [`cast`]; the asset steps are in [`assets`], the
//! medical steps in [`medical`], the contracts acting (an auto-accept and
//! the two-person rule) in [`contracts`], the witnesses' cosigned
//! checkpoint in [`cosigned`], the auditor's checks in [`audit`] and, in
//! a federation, its replay of every gateway's log in [`logs`].
//!
//! The story is the same on one gateway and across a federation of a
//! gateway per agency: each agency talks to the gateway that serves it,
//! an envelope to an agency served elsewhere is followed to its delivery
//! receipt ([`outbox`]), and every entry is named with the log that holds
//! it.
//!
//! Every tag, person and `jti` is fixed and synthetic, and the envelopes
//! are sent one after another, so the log indices (and so every line
//! printed) are the same on every run.

mod assets;
mod audit;
mod cast;
mod contracts;
mod cosigned;
mod logs;
mod medical;
mod outbox;

use super::federation::Federation;
use super::out::Out;
use super::summary::Tally;
use crate::cli::error::Error;
use cast::Story;

pub(super) use audit::after_stop;

/// Tells the story against a running federation; returns what happened.
///
/// # Errors
/// Any step that does not go as told.
pub(super) fn tell(federation: &Federation, out: &mut Out<'_>) -> Result<Tally, Error> {
    let mut story = Story::open(federation, out)?;
    story.setup()?;
    assets::tell(&mut story)?;
    medical::tell(&mut story)?;
    contracts::tell(&mut story)?;
    cosigned::show(&mut story)?;
    audit::verify(&mut story)?;
    if federation.is_federated() {
        logs::replay(&mut story)?;
    }
    Ok(story.into_tally())
}

//! The demo's policy: the default rules (`policies/default.toml`), then
//! two contracts (docs/contracts.md) that act in the story: transfers
//! between treasury's own offices accepted on the receiving office's
//! behalf, and the two-person rule for hardware security modules.
//!
//! Each gateway of the demo gets the file as its `policy.toml` in its
//! data directory, where `xgate serve` looks for it, so a gateway served
//! again on a kept directory (`--dir`) has the same contracts in force,
//! and `xgate audit replay --data-dir DIR --policy DIR/policy.toml`
//! recomputes the acts they took.

use std::path::{Path, PathBuf};

use crate::cli::error::Error;
use xgate_server::policy::DEFAULT_POLICY;

/// The policy's file name in a gateway's data directory (the default of
/// `xgate serve`'s `policy`).
pub(super) const FILE: &str = "policy.toml";

/// The contract that accepts an offer between treasury's offices.
pub(super) const AUTO_ACCEPT: &str = "treasury-offices-auto-accept";

/// The contract that holds an offer of a hardware security module for a
/// second person's approval.
pub(super) const TWO_PERSON: &str = "hsm-two-person-rule";

/// The contracts, after the default rules. Their names are
/// [`AUTO_ACCEPT`] and [`TWO_PERSON`].
const CONTRACTS: &str = r#"
# The demo's contracts (docs/contracts.md), after the default rules. Each
# act one takes is logged as a contract.act entry right after the entry
# that triggered it, in the same commit.

# Treasury hands assets between its own offices without a person
# clicking: an offer from treasury to treasury (the envelope's sender and
# recipient: an offer is addressed to the receiving agency) of an asset
# kept at headquarters or at the field office is accepted on the
# receiving office's behalf.
[[contract]]
name = "treasury-offices-auto-accept"
on = "envelope:asset.transfer.offer"
when = 'entry.from == "treasury" && entry.to == "treasury" && asset.location in ["TRE-HQ-1", "TRE-FO-2"]'
do = "accept_offer"

# A hardware security module changes hands only once a second person of
# the holding agency approves the offer (the two-person rule): until
# then the offer cannot be answered.
[[contract]]
name = "hsm-two-person-rule"
on = "envelope:asset.transfer.offer"
when = 'asset.category == "hsm"'
do = "require_second_approval"
"#;

/// The whole policy file.
pub(super) fn text() -> String {
    format!("{DEFAULT_POLICY}{CONTRACTS}")
}

/// Writes the policy as `data_dir`/[`FILE`] (the directory made, private,
/// if it is not there yet); returns where.
///
/// # Errors
/// A directory or file that cannot be written.
pub(super) fn write(data_dir: &Path) -> Result<PathBuf, Error> {
    xgate_server::data_dir::make_private(data_dir)
        .map_err(|e| Error::Serve(format!("cannot make {} private: {e}", data_dir.display())))?;
    let path = data_dir.join(FILE);
    xgate_ledger::fsutil::write_atomic(&path, text().as_bytes(), 0o600)
        .map_err(|e| Error::Serve(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_are_named_as_the_story_expects() {
        let text = text();
        assert!(text.starts_with(DEFAULT_POLICY));
        for name in [AUTO_ACCEPT, TWO_PERSON] {
            assert_eq!(
                text.matches(&format!("name = \"{name}\"\n")).count(),
                1,
                "{name}"
            );
        }
    }
}

//! The kinds a bench run sends, by ratio (`record.send=8,medical.request=1`).
//!
//! Kinds that need no state set up first can be benchmarked: `record.send`
//! (to the next agency), `medical.request` (purpose ETREAT, role
//! `medical-officer`, which the default policy grants at once as
//! break-the-glass) and `asset.register` (a fresh tag each, to oneself).

use xgate_server::kind::{Kind, UnknownKind};

/// Why a mix does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// Not a kind.
    #[error("{0}")]
    Kind(#[from] UnknownKind),
    /// A kind that needs state set up first.
    #[error(
        "{0} cannot be benchmarked on its own (it needs state set up first); \
         use record.send, medical.request or asset.register"
    )]
    NeedsState(Kind),
    /// A share that is not a positive integer.
    #[error("the share of {0} must be a positive integer")]
    Share(Kind),
    /// No kind at all.
    #[error("the mix names no kind")]
    Empty,
}

/// Kinds and their integer shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix(pub(super) Vec<(Kind, u32)>);

impl Mix {
    /// Parses `kind=share,...` (a kind alone means share 1).
    ///
    /// # Errors
    /// An unknown kind, one that cannot be benchmarked, or a zero share.
    pub fn parse(text: &str) -> Result<Mix, MixError> {
        let mut out = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, share) = part.split_once('=').unwrap_or((part, "1"));
            let kind: Kind = name.trim().parse()?;
            if !matches!(
                kind,
                Kind::RecordSend | Kind::MedicalRequest | Kind::AssetRegister
            ) {
                return Err(MixError::NeedsState(kind));
            }
            let share: u32 = share
                .trim()
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or(MixError::Share(kind))?;
            out.push((kind, share));
        }
        if out.is_empty() {
            return Err(MixError::Empty);
        }
        Ok(Mix(out))
    }

    /// One cycle of kinds, interleaved: each kind as often as its share.
    pub fn schedule(&self) -> Vec<Kind> {
        let total: u32 = self.0.iter().map(|(_, s)| s).sum();
        let mut credit: Vec<i64> = vec![0; self.0.len()];
        (0..total)
            .map(|_| {
                // Smooth weighted round-robin: each turn goes to the kind
                // furthest behind its share.
                for (c, (_, share)) in credit.iter_mut().zip(&self.0) {
                    *c += i64::from(*share);
                }
                let (best, _) = credit
                    .iter()
                    .enumerate()
                    .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
                    .unwrap_or((0, &0));
                credit[best] -= i64::from(total);
                self.0[best].0
            })
            .collect()
    }

    /// The kinds and shares.
    pub fn kinds(&self) -> &[(Kind, u32)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_interleave_by_share() {
        let mix = Mix::parse("record.send=3,medical.request").expect("mix");
        let schedule = mix.schedule();
        assert_eq!(schedule.len(), 4);
        assert_eq!(
            schedule.iter().filter(|k| **k == Kind::RecordSend).count(),
            3
        );
        let even = Mix::parse("record.send,asset.register")
            .expect("mix")
            .schedule();
        assert_eq!(even, vec![Kind::RecordSend, Kind::AssetRegister]);
        assert!(Mix::parse("asset.transfer.accept").is_err());
        assert!(Mix::parse("record.send=0").is_err());
        assert!(Mix::parse("teleport").is_err());
        assert!(Mix::parse("").is_err());
    }
}

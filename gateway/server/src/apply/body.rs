//! Why an envelope's body is not one the apply stage can take.

use std::fmt::Display;

use crate::kind::Kind;

/// An envelope body that is not valid for its kind, or of a kind the
/// gateway does not apply.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A field is missing or wrong; the message names the field, never a
    /// value.
    #[error("{0}")]
    Invalid(String),
    /// The gateway applies no envelope of this kind.
    #[error("kind {0} is not handled by this gateway")]
    Unsupported(Kind),
}

impl BodyError {
    /// The error for a body whose parse failed with `why`.
    pub fn invalid(why: impl Display) -> BodyError {
        BodyError::Invalid(why.to_string())
    }
}

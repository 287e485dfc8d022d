//! The record operation: a `record.send` is carried as is, in clear or
//! sealed end to end (a compact JWE the gateway cannot open), and changes
//! no state; it is delivered to its recipient's inbox and logged.

use serde_json::{Map, Value};

use super::body::BodyError;
use crate::sealed;

/// A `record.send` body, as the gateway sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Whether the body is a sealed part ([`crate::sealed`]).
    pub sealed: bool,
}

impl Record {
    /// Reads `body` as a record's: in clear, or exactly one sealed part.
    ///
    /// # Errors
    /// A sealed part beside other members, or not a string.
    pub fn parse(body: &Map<String, Value>) -> Result<Record, BodyError> {
        let part = sealed::record_part(body).map_err(BodyError::invalid)?;
        Ok(Record {
            sealed: part.is_some(),
        })
    }

    /// The sealed part of `body`, the body this record was parsed from.
    pub fn sealed_part<'b>(&self, body: &'b Map<String, Value>) -> Option<&'b str> {
        if !self.sealed {
            return None;
        }
        body.get(sealed::MEMBER).and_then(Value::as_str)
    }
}

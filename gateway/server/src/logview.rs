//! The JSON views of the log shared by `xgate log` and the HTTP log API, so
//! both print exactly the same shapes (an exact contract):
//!
//! ```text
//! inclusion    {"leaf_index":I,"tree_size":N,"leaf_hash":"...","root_hash":"...","hashes":[...]}
//! consistency  {"from":M,"to":N,"old_root":"...","new_root":"...","hashes":[...]}
//! entry        {"index":I,"entry":"<base64>","leaf_hash":"..."}
//! ```
//!
//! Hashes and entries are standard base64 with padding. Messages name the
//! parameter as the caller spelt it: `--index` on the command line, `index`
//! in a query string (`prefix`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use xgate_ledger::{Hash, Ledger};

/// An inclusion proof with the hashes it connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionView {
    /// The proven entry.
    pub leaf_index: u64,
    /// The tree size proven against.
    pub tree_size: u64,
    /// The entry's leaf hash.
    pub leaf_hash: String,
    /// The root at `tree_size`.
    pub root_hash: String,
    /// The audit path.
    pub hashes: Vec<String>,
}

/// A consistency proof with the roots it connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyView {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The root at `from`.
    pub old_root: String,
    /// The root at `to`.
    pub new_root: String,
    /// The proof.
    pub hashes: Vec<String>,
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// Its index.
    pub index: u64,
    /// The entry bytes, base64.
    pub entry: String,
    /// Its leaf hash.
    pub leaf_hash: String,
}

/// Why a view could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The request asks for something the log cannot give (out of range).
    #[error("{0}")]
    Request(String),
    /// The log failed.
    #[error(transparent)]
    Ledger(#[from] xgate_ledger::Error),
}

/// Inclusion of entry `index` in the tree of `size` (default: the whole log).
///
/// # Errors
/// [`ViewError::Request`] for an empty log or a size or index out of range.
pub fn inclusion(
    log: &dyn Ledger,
    index: u64,
    size: Option<u64>,
    prefix: &str,
) -> Result<InclusionView, ViewError> {
    let known = log.size_at_least(size.unwrap_or(0).max(index.saturating_add(1)))?;
    non_empty(known)?;
    let size = size.unwrap_or(known);
    check_tree_size(&format!("{prefix}size"), size, known)?;
    if index >= size {
        return Err(ViewError::Request(format!(
            "{prefix}index {index} is out of range for a tree of size {size}"
        )));
    }
    let proof = log.inclusion(index, size)?;
    Ok(InclusionView {
        leaf_index: proof.leaf_index,
        tree_size: proof.tree_size,
        leaf_hash: b64(&log.leaf_hash(index)?),
        root_hash: b64(&log.root_at(size)?),
        hashes: proof.hashes.iter().map(b64).collect(),
    })
}

/// Consistency from size `from` to `to` (default: the whole log).
///
/// # Errors
/// [`ViewError::Request`] for an empty log, `from` 0 or past `to`, or `to`
/// past the end.
pub fn consistency(
    log: &dyn Ledger,
    from: u64,
    to: Option<u64>,
    prefix: &str,
) -> Result<ConsistencyView, ViewError> {
    let known = log.size_at_least(to.unwrap_or(from))?;
    non_empty(known)?;
    let to = to.unwrap_or(known);
    if from == 0 {
        return Err(ViewError::Request(format!(
            "{prefix}from must be at least 1: every tree is consistent with the empty one"
        )));
    }
    if from > to {
        return Err(ViewError::Request(format!(
            "{prefix}from {from} is larger than {prefix}to {to}"
        )));
    }
    check_tree_size(&format!("{prefix}to"), to, known)?;
    let proof = log.consistency(from, to)?;
    Ok(ConsistencyView {
        from: proof.old_size,
        to: proof.new_size,
        old_root: b64(&log.root_at(from)?),
        new_root: b64(&log.root_at(to)?),
        hashes: proof.hashes.iter().map(b64).collect(),
    })
}

/// Entry `index`.
///
/// # Errors
/// [`ViewError::Request`] past the end of the log.
pub fn entry(log: &dyn Ledger, index: u64, prefix: &str) -> Result<EntryView, ViewError> {
    let known = log.size_at_least(index.saturating_add(1))?;
    if index >= known {
        return Err(ViewError::Request(format!(
            "{prefix}index {index} is out of range: the log has {known} entries"
        )));
    }
    Ok(EntryView {
        index,
        entry: B64.encode(log.entry(index)?),
        leaf_hash: b64(&log.leaf_hash(index)?),
    })
}

/// Standard base64 of a hash, as every view prints it.
pub fn b64(hash: &Hash) -> String {
    B64.encode(hash.as_bytes())
}

fn non_empty(size: u64) -> Result<(), ViewError> {
    if size == 0 {
        return Err(ViewError::Request(
            "the log is empty: there is nothing to prove".into(),
        ));
    }
    Ok(())
}

fn check_tree_size(name: &str, size: u64, log_size: u64) -> Result<(), ViewError> {
    if size == 0 {
        return Err(ViewError::Request(format!("{name} must be at least 1")));
    }
    if size > log_size {
        return Err(ViewError::Request(format!(
            "{name} {size} is beyond the end of the log, which has {log_size} entries"
        )));
    }
    Ok(())
}

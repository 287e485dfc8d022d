//! What a condition can read: the types of the contract language, and the
//! records each trigger binds (`entry`, `asset`, `offer`, `discrepancy`,
//! `grant`, `report`, `deadline`), with their fields.
//!
//! Every field is a fact the log or the state holds at the triggering
//! entry; none is the wall clock, and none is a person's identifier (a
//! condition reads agencies, tags, places, kinds and times).

use std::fmt;

/// Whether `name` is a contract's or a deadline's name: 1 to 64 of
/// `a-z`, `0-9` and `-`, starting with a letter or digit (it goes into
/// log entries, whose strings are from a restricted alphabet).
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The longest string a field holds, for the cost of scanning one.
pub const MAX_STRING: u64 = 1024;

/// A scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// `true` or `false`.
    Bool,
    /// A 64-bit integer (times are seconds since the epoch).
    Int,
    /// A string.
    Str,
}

/// A type of the contract language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// A bool.
    Bool,
    /// An integer.
    Int,
    /// A string.
    Str,
    /// A list of scalars, and the most items it may hold.
    List(Scalar, u64),
    /// One of the records a trigger binds.
    Record(&'static Record),
}

impl Type {
    /// The scalar this type is, if it is one.
    pub fn scalar(&self) -> Option<Scalar> {
        match self {
            Type::Bool => Some(Scalar::Bool),
            Type::Int => Some(Scalar::Int),
            Type::Str => Some(Scalar::Str),
            Type::List(..) | Type::Record(_) => None,
        }
    }
}

impl From<Scalar> for Type {
    fn from(s: Scalar) -> Type {
        match s {
            Scalar::Bool => Type::Bool,
            Scalar::Int => Type::Int,
            Scalar::Str => Type::Str,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Str => f.write_str("string"),
            Type::List(item, _) => write!(f, "list({})", Type::from(*item)),
            Type::Record(r) => f.write_str(r.name),
        }
    }
}

/// A record a trigger binds: a name and its fields.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    /// The name it is bound to.
    pub name: &'static str,
    /// Its fields.
    pub fields: &'static [Field],
}

/// One field of a record.
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Whether a record may lack it (`has(r.f)` tells).
    pub optional: bool,
}

const fn field(name: &'static str, ty: Type) -> Field {
    Field {
        name,
        ty,
        optional: false,
    }
}

const fn optional(name: &'static str, ty: Type) -> Field {
    Field {
        name,
        ty,
        optional: true,
    }
}

/// The triggering log entry, as the log records it.
pub static ENTRY: Record = Record {
    name: "entry",
    fields: &[
        field("index", Type::Int),
        field("kind", Type::Str),
        field("from", Type::Str),
        field("to", Type::Str),
        field("jti", Type::Str),
        field("time", Type::Int),
        optional("tag", Type::Str),
        optional("purpose", Type::Str),
        optional("request", Type::Str),
        optional("outcome", Type::Str),
        optional("expires", Type::Int),
    ],
};

/// An asset, as the state holds it after the triggering entry.
pub static ASSET: Record = Record {
    name: "asset",
    fields: &[
        field("tag", Type::Str),
        field("category", Type::Str),
        field("holder", Type::Str),
        field("location", Type::Str),
        field("status", Type::Str),
    ],
};

/// An open offer of an asset.
pub static OFFER: Record = Record {
    name: "offer",
    fields: &[
        field("jti", Type::Str),
        field("from", Type::Str),
        field("to", Type::Str),
        field("expires", Type::Int),
    ],
};

/// A discrepancy a count found or resolved.
pub static DISCREPANCY: Record = Record {
    name: "discrepancy",
    fields: &[
        field("type", Type::Str),
        field("tag", Type::Str),
        field("location", Type::Str),
        field("reconciliation", Type::Str),
        field("agency", Type::Str),
    ],
};

/// A medical grant, made by break-the-glass or an approval.
pub static GRANT: Record = Record {
    name: "grant",
    fields: &[
        field("request", Type::Str),
        field("requester", Type::Str),
        field("holder", Type::Str),
        field("purpose", Type::Str),
        field("break_glass", Type::Bool),
        field("expires", Type::Int),
        field("uses", Type::Int),
    ],
};

/// The most tags an inventory report lists.
const MAX_OBSERVED: u64 = crate::assets::model::MAX_OBSERVED as u64;

/// An inventory report.
pub static REPORT: Record = Record {
    name: "report",
    fields: &[
        field("location", Type::Str),
        field("observed", Type::List(Scalar::Str, MAX_OBSERVED)),
    ],
};

/// A deadline that came due.
pub static DEADLINE: Record = Record {
    name: "deadline",
    fields: &[
        field("name", Type::Str),
        field("due", Type::Int),
        field("set_by", Type::Str),
        optional("tag", Type::Str),
        optional("agency", Type::Str),
    ],
};

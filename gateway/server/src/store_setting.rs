//! The `store` setting: where a gateway keeps its log and state.
//!
//! `"embedded"` (the default) is the data directory on this machine: the
//! journal, the tile files and sled, for one gateway process. A
//! `postgres://` (or `postgresql://`) URL puts everything but the log's
//! signing key in that PostgreSQL database, which any number of gateway
//! processes may share (issue 23; docs/operations.md, "Replicas on
//! PostgreSQL"). The URL may hold a password: it is never printed, logged
//! or echoed in an error; [`Store::redacted`] is what may be shown.

use std::fmt;

use serde::Deserialize;

/// Where a gateway keeps its log and state.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Store {
    /// The data directory, on this machine.
    #[default]
    Embedded,
    /// A PostgreSQL database, by its libpq URL.
    Postgres(String),
}

/// Why a `store` value was refused. It never holds the value itself,
/// which may hold a password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "store must be \"embedded\" or a postgres:// or postgresql:// URL (the value given is not shown: it may hold a password)"
)]
pub struct BadStore;

impl std::str::FromStr for Store {
    type Err = BadStore;

    fn from_str(value: &str) -> Result<Store, BadStore> {
        let value = value.trim();
        if value == "embedded" {
            return Ok(Store::Embedded);
        }
        let scheme = value.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("postgres" | "postgresql") if value.len() > scheme.map_or(0, str::len) + 3 => {
                Ok(Store::Postgres(value.to_owned()))
            }
            _ => Err(BadStore),
        }
    }
}

impl TryFrom<String> for Store {
    type Error = BadStore;

    fn try_from(value: String) -> Result<Store, BadStore> {
        value.parse()
    }
}

impl Store {
    /// The setting as it may be shown: a URL with its password (and any
    /// query, which may hold one too) replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Store::Embedded => "embedded".into(),
            Store::Postgres(url) => redact(url),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with the password of its user info and its query hidden.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, _)) => (r, "?***"),
        None => (rest, ""),
    };
    let rest = match rest.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => rest.to_owned(),
    };
    format!("{scheme}://{rest}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_and_postgres_urls_parse_and_anything_else_is_refused() {
        assert_eq!("embedded".parse(), Ok(Store::Embedded));
        assert_eq!(
            "postgres://x@127.0.0.1:5432/db".parse(),
            Ok(Store::Postgres("postgres://x@127.0.0.1:5432/db".into()))
        );
        assert!(matches!(
            "postgresql://h/db".parse::<Store>(),
            Ok(Store::Postgres(_))
        ));
        for bad in [
            "",
            "sled",
            "postgres://",
            "mysql://h/db",
            "postgres:/h",
            "/var/db",
        ] {
            assert_eq!(bad.parse::<Store>(), Err(BadStore), "{bad:?}");
        }
    }

    #[test]
    fn a_password_is_never_shown() {
        let store: Store = "postgres://xgate:s3cret@db.example:5432/x?password=other"
            .parse()
            .expect("url");
        let shown = format!("{store:?} {}", store.redacted());
        assert!(
            !shown.contains("s3cret") && !shown.contains("other"),
            "{shown}"
        );
        assert_eq!(
            store.redacted(),
            "postgres://xgate:***@db.example:5432/x?***"
        );
        let e = "postgres:/xgate:s3cret@h"
            .parse::<Store>()
            .expect_err("bad");
        assert!(!e.to_string().contains("s3cret"));
    }
}

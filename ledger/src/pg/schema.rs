//! The schema, versioned in the repository (`ledger/migrations/*.sql`,
//! embedded at build time), and [`migrate`], which brings a database up to
//! date.
//!
//! Each migration runs in a transaction of its own that first takes a
//! transaction-level advisory lock, so replicas starting together apply
//! each one exactly once; `xgate_schema_migrations` records what is
//! applied, and migrating an up-to-date database changes nothing.

use std::sync::Arc;
use std::time::Duration;

use super::db::{Db, Fail, Held, get, pg};
use crate::error::Error;

/// One schema change.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order: never edit one that shipped, add the next.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "0001_log",
    sql: include_str!("../../migrations/0001_log.sql"),
}];

/// How long migrating may take: a migration may rewrite a large table,
/// and a replica starting meanwhile waits for it.
const MIGRATE_LIMIT: Duration = Duration::from_secs(600);

/// The advisory lock key migrations serialise on ("xgate" and 23).
const LOCK_KEY: i64 = 0x7867_6174_6500_0017;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS xgate_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT statement_timestamp()
)";

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateReport {
    /// The versions this call applied, oldest first (empty if the database
    /// was up to date).
    pub applied: Vec<u32>,
    /// The database's schema version now.
    pub version: u32,
}

/// The schema version this build knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version as u32)
}

/// Applies to the database at `url` every migration it does not have yet,
/// each in its own transaction; safe to run from several processes at
/// once, and a no-op on a database that is up to date.
///
/// # Errors
/// [`Error::Invalid`] for a URL that does not parse or a database whose
/// schema is newer than this build knows; [`Error::Store`] if the database
/// cannot be reached or refuses a migration (which then changes nothing).
pub fn migrate(url: &str) -> Result<MigrateReport, Error> {
    migrate_on(&Db::connect(url)?)
}

/// [`migrate`] on an open pool.
pub(super) fn migrate_on(db: &Arc<Db>) -> Result<MigrateReport, Error> {
    let pool = db.pool();
    db.run_within(MIGRATE_LIMIT, async move {
        let mut applied = Vec::new();
        for m in MIGRATIONS {
            let held = Held::new(get(&pool).await?);
            let client = held.client()?;
            // The sessions' statement timeout is for the log's batches.
            client
                .batch_execute("BEGIN; SET LOCAL statement_timeout = 0")
                .await
                .map_err(pg("migrate"))?;
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
                .await
                .map_err(pg("migrate: lock"))?;
            client
                .batch_execute(CREATE_TABLE)
                .await
                .map_err(pg("migrate"))?;
            let newest: Option<i32> = client
                .query_one("SELECT max(version) FROM xgate_schema_migrations", &[])
                .await
                .map_err(pg("migrate"))?
                .try_get(0)
                .map_err(pg("migrate"))?;
            if newest.unwrap_or(0) > latest_version() as i32 {
                return Err(Fail::Log(Error::Invalid(format!(
                    "the database's schema is version {}, newer than this build knows ({})",
                    newest.unwrap_or(0),
                    latest_version()
                ))));
            }
            if newest.unwrap_or(0) < m.version {
                client
                    .batch_execute(m.sql)
                    .await
                    .map_err(pg("migrate: apply"))?;
                client
                    .execute(
                        "INSERT INTO xgate_schema_migrations (version, name) VALUES ($1, $2)",
                        &[&m.version, &m.name],
                    )
                    .await
                    .map_err(pg("migrate: record"))?;
                applied.push(m.version as u32);
            }
            client
                .batch_execute("COMMIT")
                .await
                .map_err(pg("migrate: commit"))?;
            held.release();
        }
        Ok(MigrateReport {
            applied,
            version: latest_version(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_named_after_their_files() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as u32);
    }
}

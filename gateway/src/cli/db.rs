//! `xgate db`: the PostgreSQL database a gateway's replicas share.
//!
//! ```text
//! xgate db migrate [--config FILE] [--store URL]
//! ```
//!
//! `migrate` applies every schema migration this build carries that the
//! database does not have yet (`ledger/migrations/`, each in a transaction
//! of its own, safe while replicas start and run) and prints one line of
//! JSON: `{"version":N,"applied":[...]}`, the schema version now and the
//! versions this run applied (empty when the database was up to date).
//! `xgate serve` runs the same migrations on start; run this first to
//! upgrade a database before replicas of a new version start. The store
//! comes from `--store`, else `XGATE_STORE`, else the config file's
//! `store`; it must be a `postgres://` URL.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use xgate_server::config::Config;
use xgate_server::store_setting::Store;

use super::error::Error;

/// What to do with the database.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create or upgrade the database's schema to this build's version.
    Migrate(MigrateArgs),
}

/// Arguments of `xgate db migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// TOML configuration file whose `store` names the database.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The database (`postgres://...`); overrides the config file and
    /// `XGATE_STORE`.
    #[arg(long, value_name = "URL")]
    /// (Taken as text and parsed here: clap would echo a bad value, and
    /// a URL may hold a password.)
    pub store: Option<String>,
}

impl DbCommand {
    /// Runs the command.
    ///
    /// # Errors
    /// A store that is not PostgreSQL, a database that cannot be reached,
    /// or a migration it refuses (which then changes nothing).
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            DbCommand::Migrate(args) => args.run(stdout),
        }
    }
}

impl MigrateArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let store = match &self.store {
            Some(store) => store
                .parse()
                .map_err(|e| Error::Usage(format!("--store: {e}")))?,
            None => Config::load(self.config.as_deref(), std::env::vars())?.store,
        };
        // The store may come from the environment or the file, not the
        // command line: a request that cannot be met (exit 1), not usage.
        let Store::Postgres(url) = store else {
            return Err(Error::Request(
                "xgate db migrate needs a postgres:// store (--store, XGATE_STORE or the config \
                 file's store); the embedded store has no schema to migrate"
                    .into(),
            ));
        };
        let report = xgate_ledger::pg::migrate(&url)?;
        let line = json!({ "version": report.version, "applied": report.applied });
        writeln!(stdout, "{line}").map_err(Error::Stdout)?;
        Ok(())
    }
}

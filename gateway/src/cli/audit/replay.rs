//! `xgate audit replay`: the asset and medical state recomputed from a
//! stopped gateway's data directory ([`xgate_server::recompute`]) and
//! compared with the stored state.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use xgate_server::recompute;
use xgate_server::registry::Registry;

use super::super::error::Error;

/// Arguments of `xgate audit replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The gateway's data directory (stopped).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The agency registry to check signatures with; default
    /// DIR/pki/registry.toml if it exists, else signatures are not checked.
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
}

impl ReplayArgs {
    /// Runs the replay; prints one `ok:` line or the differences.
    ///
    /// # Errors
    /// [`Error::Request`] when the states differ, or why the replay could
    /// not run.
    pub fn run(&self, stdout: &mut dyn Write) -> Result<(), Error> {
        run_replay(self, stdout)
    }
}

fn run_replay(args: &ReplayArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let default = args.data_dir.join("pki").join(xgate_server::pki::REGISTRY);
    let registry_path = args
        .registry
        .clone()
        .or_else(|| default.is_file().then_some(default));
    let registry = registry_path
        .as_deref()
        .map(Registry::load)
        .transpose()
        .map_err(|e| Error::Request(e.to_string()))?;
    let log =
        xgate_ledger::Log::open_existing(&args.data_dir, &xgate_ledger::OpenOptions::default())?;
    let outcome = recompute::replay(&log, registry.as_ref())?;
    let signatures = match &registry_path {
        Some(p) => format!("signatures checked against {}", p.display()),
        None => "signatures not checked (no registry)".to_owned(),
    };
    if outcome.is_clean() {
        return writeln!(
            stdout,
            "ok: replayed {} entries ({} asset and medical envelopes, {signatures}); the stored state equals the recomputed state ({} keys)",
            outcome.entries, outcome.applied, outcome.keys
        )
        .map_err(Error::Stdout);
    }
    for d in &outcome.differences {
        writeln!(stdout, "difference: {d}").map_err(Error::Stdout)?;
    }
    Err(Error::Request(format!(
        "the stored state differs from the replay of {} entries in {} places",
        outcome.entries, outcome.difference_count
    )))
}

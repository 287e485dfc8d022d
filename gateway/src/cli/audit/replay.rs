//! `xgate audit replay`, in one of two modes:
//! - `--data-dir DIR [--store STORE]`: the asset and medical state
//!   recomputed from a stopped gateway's kept envelopes
//!   ([`xgate_server::recompute`]) and compared with the stored state, in
//!   the data directory or, with a `postgres://` store (`--store`, else
//!   `XGATE_STORE`), in that database with the log's key in DIR. Every
//!   replica must be stopped: a state that moves during the replay shows
//!   as differences;
//! - `--log URL...` with `--registry FILE`: a federation's public logs,
//!   each fetched whole and checked against the registry's keys
//!   ([`super::logs`]), their cross-gateway exchanges matched by sender and
//!   `jti` ([`super::exchanges`]), and their entries folded into the
//!   federation-wide state they allow ([`super::entries`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use xgate_server::entry::Logged;
use xgate_server::policy::Policy;
use xgate_server::recompute;
use xgate_server::registry::Registry;

use super::super::error::Error;
use super::super::log::{open_existing, store_setting};
use super::super::session::runtime;
use super::entries::EntryState;
use super::exchanges::{Contractual, LogEntries, SKEW, at, match_logs};
use super::logs::{Witnesses, fetch};
use super::trust::Trust;

/// Findings printed; the rest are counted.
const SHOWN: usize = 50;

/// Arguments of `xgate audit replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The gateway's data directory (stopped).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "logs",
        required_unless_present = "logs"
    )]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: where the log is kept, `embedded` (the data
    /// directory) or a `postgres://` URL [default: XGATE_STORE, else
    /// embedded].
    #[arg(long, value_name = "STORE", requires = "data_dir")]
    pub store: Option<String>,
    /// A federation gateway's public tlog-tiles prefix (`https://host:port`),
    /// repeatable: the logs are replayed together.
    #[arg(long = "log", value_name = "URL", requires = "registry")]
    pub logs: Vec<String>,
    /// The agency registry. With --data-dir, to check signatures with
    /// (default DIR/pki/registry.toml if it exists, else signatures are not
    /// checked); with --log, the federation's, where every log's key comes
    /// from (required).
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// With --data-dir: a policy file that was in force (repeatable),
    /// matched to each entry by the hash the entry logs: the acts of its
    /// contracts are recomputed and checked against the log's.
    #[arg(long = "policy", value_name = "FILE", requires = "data_dir")]
    pub policies: Vec<PathBuf>,
    /// With --log: the CA to trust for the logs' HTTPS certificates.
    #[arg(long, value_name = "FILE", requires = "logs")]
    pub ca: Option<PathBuf>,
    /// With --log: a witness's cosigner key (repeatable); every log's
    /// checkpoint must carry the quorum.
    #[arg(long = "witness", value_name = "VKEY", requires = "logs")]
    pub witnesses: Vec<String>,
    /// How many of the witnesses must have cosigned; default all listed.
    #[arg(long, value_name = "K", requires = "witnesses")]
    pub quorum: Option<usize>,
}

impl ReplayArgs {
    /// Runs the replay; prints one `ok:` line, or the differences or
    /// findings.
    ///
    /// # Errors
    /// [`Error::Request`] when the states differ or the logs show
    /// findings, or why the replay could not run.
    pub fn run(&self, stdout: &mut dyn Write) -> Result<(), Error> {
        match &self.data_dir {
            Some(dir) => run_replay(
                dir,
                self.store.as_deref(),
                self.registry.as_deref(),
                &self.policies,
                stdout,
            ),
            None => run_logs(self, stdout),
        }
    }
}

fn run_replay(
    data_dir: &Path,
    store: Option<&str>,
    registry: Option<&Path>,
    policies: &[PathBuf],
    stdout: &mut dyn Write,
) -> Result<(), Error> {
    let default = data_dir.join("pki").join(xgate_server::pki::REGISTRY);
    let registry_path = registry
        .map(Path::to_path_buf)
        .or_else(|| default.is_file().then_some(default));
    let registry = registry_path
        .as_deref()
        .map(Registry::load)
        .transpose()
        .map_err(|e| Error::Request(e.to_string()))?;
    let policies = match (&registry, policies) {
        (_, []) => Vec::new(),
        (Some(registry), files) => files
            .iter()
            .map(|f| Policy::load(f, registry).map_err(|e| Error::Request(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?,
        (None, _) => {
            return Err(Error::Request(
                "--policy needs the registry its contracts were checked against (--registry)"
                    .into(),
            ));
        }
    };
    let log = open_existing(data_dir, &store_setting(store)?)?;
    let outcome = recompute::replay(log.as_ref(), registry.as_ref(), &policies)?;
    let signatures = match &registry_path {
        Some(p) => format!("signatures checked against {}", p.display()),
        None => "signatures not checked (no registry)".to_owned(),
    };
    if outcome.is_clean() {
        return writeln!(
            stdout,
            "ok: replayed {} entries ({} asset and medical envelopes, {signatures}; {} contract acts recomputed); the stored state equals the recomputed state ({} keys)",
            outcome.entries, outcome.applied, outcome.acts, outcome.keys
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

/// `--log`: fetch and check every log, match their exchanges, fold their
/// entries.
fn run_logs(args: &ReplayArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let path = args
        .registry
        .as_ref()
        .ok_or_else(|| Error::Usage("--log needs --registry FILE".into()))?;
    let registry = Registry::load(path).map_err(|e| Error::Request(e.to_string()))?;
    if !registry.is_federated() {
        return Err(Error::Request(format!(
            "{} lists no [[gateway]]: the logs' keys come from a federation registry",
            path.display()
        )));
    }
    // Refuse witness keys that do not parse or a quorum no note could
    // meet before fetching anything.
    if let Some(gateway) = registry.gateways().next() {
        Trust::from_args(&gateway.log_key, &args.witnesses, args.quorum)?;
    }
    let witnesses = Witnesses {
        keys: &args.witnesses,
        quorum: args.quorum,
    };
    let fetched = runtime()?.block_on(async {
        let mut fetched = Vec::with_capacity(args.logs.len());
        for url in &args.logs {
            fetched.push((
                url,
                fetch(url, args.ca.as_deref(), &registry, witnesses).await?,
            ));
        }
        Ok::<_, Error>(fetched)
    })?;
    let mut logs: Vec<LogEntries> = Vec::with_capacity(fetched.len());
    let mut total = 0u64;
    for (url, log) in fetched {
        if let Some(n) = logs.iter().position(|l| l.gateway == log.gateway) {
            return Err(Error::Request(format!(
                "--log {url} and --log {} are both gateway {}'s log",
                args.logs[n], log.gateway
            )));
        }
        total += log.size;
        let mut acts = BTreeMap::new();
        let entries = log
            .entries
            .into_iter()
            .enumerate()
            .map(|(index, bytes)| {
                if let Some(entry) = Contractual::parse(&bytes) {
                    acts.insert(index as u64, entry);
                    return Err("a contract's entry".to_owned());
                }
                Logged::parse(&bytes).map_err(|e| e.to_string())
            })
            .collect();
        logs.push(LogEntries {
            gateway: log.gateway,
            entries,
            acts,
        });
    }
    let exchanges = match_logs(&logs, &registry);
    let mut findings: Vec<String> = exchanges.findings.into_iter().map(|(_, f)| f).collect();
    let mut state = EntryState::default();
    for place in exchanges.order {
        let (log, index) = place;
        let finding = match logs.get(log).and_then(|l| l.acts.get(&index)) {
            Some(Contractual::Act(act)) => state.apply_act(&at(&logs, place), index, act, SKEW),
            Some(Contractual::Tick(tick)) => state.apply_tick(tick),
            None => usize::try_from(index)
                .ok()
                .and_then(|i| logs.get(log)?.entries.get(i)?.as_ref().ok())
                .and_then(|entry| state.apply_logged(&at(&logs, place), index, entry, SKEW)),
        };
        if let Some(f) = finding {
            findings.push(format!("state: {f}"));
        }
    }
    if findings.is_empty() {
        return writeln!(
            stdout,
            "ok: replayed {} logs, {total} entries, {} cross-gateway exchanges matched, {} unchecked, {} assets, {} medical requests",
            logs.len(),
            exchanges.matched,
            exchanges.unchecked,
            state.assets.len(),
            state.requests.len()
        )
        .map_err(Error::Stdout);
    }
    for finding in findings.iter().take(SHOWN) {
        writeln!(stdout, "{finding}").map_err(Error::Stdout)?;
    }
    let shown = match findings.len() > SHOWN {
        true => format!(", the first {SHOWN} printed"),
        false => String::new(),
    };
    Err(Error::Request(format!(
        "the replay of {} logs ({total} entries) shows {} findings{shown}",
        logs.len(),
        findings.len()
    )))
}

//! `xgate contracts`: the contracts of a policy file (issue 25).
//!
//! ```text
//! xgate contracts check FILE [--registry FILE]
//!     ok: NAME: on TRIGGER, do ACTION, cost C     (one line per contract)
//!     ok: FILE: N contracts
//! xgate contracts list --pki DIR --as AGENCY --gateway URL
//!     {"name","on","when","do",("to","deadline","after_hours"),"hash","cost"}
//!     one line per contract the gateway has in force (GET /v1/contracts),
//!     in file order
//! xgate contracts explain ENTRY --pki DIR --as AGENCY --gateway URL
//!     entry I: KIND, policy HASH (in force|not in force)
//!     trigger: T                                        (per event it caused)
//!     fired: NAME on T, do ACT: act J done|failed (CODE)
//!     not fired: NAME on T: condition false: WHEN       (per contract on them)
//!     act J: ACT by NAME (trigger K), done|failed (CODE) (per act of its chain)
//! ```
//!
//! `check` loads the whole policy as the gateway does, against a registry
//! (`--registry`, else the configuration's PKI), so a file it passes is one
//! the gateway takes; a file it refuses is named with its line. `list`
//! asks the gateway, so it shows the set in force, not a file that a
//! reload may have refused. `explain` asks the gateway too
//! (`GET /v1/contracts/explain/{index}`): the events the entry caused, the
//! contracts in force on them and what each did, read from the log; under
//! a policy no longer in force it lists no contract, only the acts.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;
use xgate_server::acts::explain::{Explained, Verdict};
use xgate_server::config::Config;
use xgate_server::pki::REGISTRY;
use xgate_server::policy::Policy;
use xgate_server::registry::Registry;

use super::error::Error;
use super::session::{Connection, Session, emit, emit_json, parse};

/// The `xgate contracts` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// Check a policy file's contracts before it is deployed.
    Check(CheckArgs),
    /// List the contracts the gateway has in force.
    List(ListArgs),
    /// Tell which contracts fired for a log entry, and why.
    Explain(ExplainArgs),
}

/// Arguments of `xgate contracts check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The registry to check it against (default: the configuration's
    /// PKI's registry.toml).
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
}

/// Arguments of `xgate contracts list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
}

/// Arguments of `xgate contracts explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The log index of the entry.
    #[arg(value_name = "ENTRY")]
    pub entry: u64,
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
}

impl ContractsCommand {
    /// Runs the subcommand, printing on `stdout`.
    ///
    /// # Errors
    /// A file that cannot be read, or a policy refused (its line named).
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            ContractsCommand::Check(args) => args.run(stdout),
            ContractsCommand::List(args) => args.run(stdout),
            ContractsCommand::Explain(args) => args.run(stdout),
        }
    }
}

impl CheckArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let registry = match &self.registry {
            Some(file) => Registry::load(file)?,
            None => configured_registry(&Config::load(None, std::env::vars())?)?,
        };
        let policy = Policy::load(&self.file, &registry)?;
        for c in policy.contracts().all() {
            let line = format!(
                "ok: {}: on {}, do {}, cost {}",
                c.spec.name, c.trigger, c.action, c.checked.cost
            );
            emit(stdout, line.as_bytes())?;
        }
        let n = policy.contracts().all().len();
        let line = format!("ok: {}: {n} contract{}", self.file.display(), plural(n));
        emit(stdout, line.as_bytes())
    }
}

impl ListArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let mut session = Session::open(&self.conn)?;
        let answer: Value = parse(&session.get("/v1/contracts")?, "contract list")?;
        let contracts = answer["contracts"]
            .as_array()
            .ok_or_else(|| Error::Request("the gateway's contract list has no contracts".into()))?;
        for c in contracts {
            emit_json(stdout, c)?;
        }
        Ok(())
    }
}

impl ExplainArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let mut session = Session::open(&self.conn)?;
        let path = format!("/v1/contracts/explain/{}", self.entry);
        let explained: Explained = parse(&session.get(&path)?, "explanation")?;
        for line in explanation(&explained) {
            emit(stdout, line.as_bytes())?;
        }
        Ok(())
    }
}

/// The lines `xgate contracts explain` prints for `e` (`xgate demo`
/// prints them too).
pub(crate) fn explanation(e: &Explained) -> Vec<String> {
    let force = if e.in_force {
        "in force"
    } else {
        "not in force"
    };
    let mut lines = vec![format!(
        "entry {}: {}, policy {} ({force})",
        e.entry, e.kind, e.policy
    )];
    lines.extend(e.triggers.iter().map(|t| format!("trigger: {t}")));
    lines.extend(e.contracts.iter().map(verdict));
    lines.extend(e.acts.iter().map(|a| {
        format!(
            "act {}: {} by {} (trigger {}), {}",
            a.index,
            a.act.act,
            a.act.contract,
            a.act.trigger,
            outcome(&a.act.outcome, a.act.error.as_deref())
        )
    }));
    lines
}

/// One contract's line: the act it took, or its condition, on one line.
fn verdict(v: &Verdict) -> String {
    match (v.fired, v.act) {
        (true, Some(act)) => format!(
            "fired: {} on {}, do {}: act {act} {}",
            v.name,
            v.on,
            v.action,
            outcome(v.outcome.as_deref().unwrap_or("done"), v.error.as_deref())
        ),
        _ => format!(
            "not fired: {} on {}: condition false: {}",
            v.name,
            v.on,
            v.when.replace(['\n', '\r'], " ")
        ),
    }
}

/// `done`, or `failed (CODE)`.
fn outcome(outcome: &str, error: Option<&str>) -> String {
    match error {
        Some(code) => format!("failed ({code})"),
        None => outcome.to_owned(),
    }
}

/// The registry of the configuration's PKI.
fn configured_registry(config: &Config) -> Result<Registry, Error> {
    let file = config.pki_dir().join(REGISTRY);
    if !file.exists() {
        return Err(Error::Request(format!(
            "no registry at {} (give --registry FILE)",
            file.display()
        )));
    }
    Ok(Registry::load(&file)?)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

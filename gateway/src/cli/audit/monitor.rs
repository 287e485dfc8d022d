//! `xgate audit monitor`: follows a log through its public tlog-tiles
//! resources and stops, with evidence, at the first sign that it is not
//! one append-only history.
//!
//! Each round: fetch `/checkpoint`; verify the log's signature and the
//! witnesses' quorum; prove it consistent with the last checkpoint verified
//! (recomputed from the larger one's tiles, which must hash to its root);
//! fetch the new entry bundles, check each entry against its leaf hash in
//! the level-0 tile, and fold the leaf hashes into the saved right edge,
//! which must give the new root; with `--replay` fold the entries into the
//! entry-level state ([`super::entries`]); save the state durably; print
//! one line.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use xgate_ledger::Checkpoint;

use super::super::error::Error;
use super::super::session::runtime;
use super::entries::{EntryState, describe};
use super::state::{State, write_evidence};
use super::trust::{Trust, rfc3339};
use crate::tiles::{Fetcher, LogClient, TilesError};

/// How long a following monitor waits between rounds.
const INTERVAL: Duration = Duration::from_secs(3);

/// Arguments of `xgate audit monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The log's public tlog-tiles prefix (`https://host:port`).
    #[arg(long, value_name = "URL")]
    pub log: String,
    /// The log's verifier key, `name+hexid+base64key`.
    #[arg(long, value_name = "VKEY")]
    pub key: String,
    /// A witness's cosigner key (repeatable).
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the witnesses must have cosigned; default all listed.
    #[arg(long, value_name = "K")]
    pub quorum: Option<usize>,
    /// Where the monitor keeps what it verified (created if absent);
    /// evidence files are written beside it.
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// One round, then exit.
    #[arg(long)]
    pub once: bool,
    /// Also fold the entries into the asset and medical state they allow.
    #[arg(long)]
    pub replay: bool,
    /// The CA to trust for the log's HTTPS certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Why a round did not complete.
enum Stop {
    /// The log could not be reached or is incomplete: retry later.
    Unavailable(String),
    /// The log contradicts itself: `conflicting` is the note it served.
    Inconsistent { reason: String, conflicting: String },
    /// A local failure (the state file cannot be written, stdout gone).
    Local(Error),
}

impl MonitorArgs {
    /// Follows the log until SIGINT or SIGTERM (or one round with
    /// `--once`).
    ///
    /// # Errors
    /// [`Error::Request`] naming the inconsistency (after writing the
    /// evidence) or why the monitor could not run.
    pub fn run(&self, stdout: &mut dyn Write) -> Result<(), Error> {
        let trust = Trust::from_args(&self.key, &self.witnesses, self.quorum)?;
        let fetcher = Fetcher::new(&self.log, self.ca.as_deref())
            .map_err(|e| Error::Request(e.to_string()))?;
        let mut state = State::load(&self.state, &trust.log)?;
        if self.replay && state.replay.is_none() {
            if state.last.as_ref().is_some_and(|(c, _)| c.size > 0) {
                return Err(Error::Request(format!(
                    "--replay needs every entry from the first: {} was made without it; use a new state file",
                    self.state.display()
                )));
            }
            state.replay = Some(EntryState::default());
        }
        runtime()?.block_on(self.follow(&trust, LogClient::new(fetcher), state, stdout))
    }

    async fn follow(
        &self,
        trust: &Trust,
        mut client: LogClient,
        mut state: State,
        stdout: &mut dyn Write,
    ) -> Result<(), Error> {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| Error::Request(format!("cannot watch for SIGTERM: {e}")))?;
        loop {
            match self.round(trust, &mut client, &mut state, stdout).await {
                Ok(()) => {}
                Err(Stop::Local(e)) => return Err(e),
                Err(Stop::Unavailable(why)) if self.once => {
                    return Err(Error::Request(format!("the log is unavailable: {why}")));
                }
                Err(Stop::Unavailable(why)) => {
                    say(
                        stdout,
                        &format!("warning: the log is unavailable, retrying: {why}"),
                    )?;
                }
                Err(Stop::Inconsistent {
                    reason,
                    conflicting,
                }) => {
                    let last = state.last.as_ref().map(|(_, note)| note.as_str());
                    let path =
                        write_evidence(&self.state, &self.log, &reason, last, &conflicting, now())?;
                    say(stdout, &format!("evidence: {}", path.display()))?;
                    return Err(Error::Request(format!(
                        "the log is inconsistent: {reason}; evidence written to {}",
                        path.display()
                    )));
                }
            }
            if self.once {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(INTERVAL) => {}
                _ = tokio::signal::ctrl_c() => return stopped(stdout),
                _ = terminate.recv() => return stopped(stdout),
            }
        }
    }

    /// One round: the checkpoint, its checks, the new entries, the state.
    async fn round(
        &self,
        trust: &Trust,
        client: &mut LogClient,
        state: &mut State,
        stdout: &mut dyn Write,
    ) -> Result<(), Stop> {
        let note = client.checkpoint().await.map_err(|e| match e {
            TilesError::Malformed { .. } => Stop::Inconsistent {
                reason: e.to_string(),
                conflicting: "(not a note)\n".into(),
            },
            other => Stop::Unavailable(other.to_string()),
        })?;
        let inconsistent = |reason: String| Stop::Inconsistent {
            reason,
            conflicting: note.clone(),
        };
        let cosigned = trust
            .verify(&note)
            .map_err(|e| inconsistent(format!("its checkpoint is not accepted: {e}")))?;
        let new = cosigned.checkpoint.checkpoint.clone();
        let last = match &state.last {
            Some((c, _)) => c.clone(),
            None => Checkpoint {
                origin: new.origin.clone(),
                size: 0,
                root: xgate_ledger::Hash::EMPTY_ROOT,
            },
        };
        let checked = client.check_consistent(&last, &new).await;
        if new.size <= last.size {
            return match checked {
                Ok(()) if new.size == last.size => {
                    if self.once {
                        say(stdout, &format!("size {}: no new entries", new.size))
                            .map_err(Stop::Local)?;
                    }
                    Ok(())
                }
                Ok(()) => say(
                    stdout,
                    &format!(
                        "size {}: an older checkpoint than the last verified ({}), consistent with it; ignored",
                        new.size, last.size
                    ),
                )
                .map_err(Stop::Local),
                Err(e) if e.is_misbehaviour() || new.size == last.size => Err(inconsistent(e.to_string())),
                // A smaller checkpoint whose consistency the log cannot
                // show from its own tiles: it went back on its history.
                Err(e) => Err(inconsistent(format!(
                    "a checkpoint of size {} after one of size {}, not shown consistent: {e}",
                    new.size, last.size
                ))),
            };
        }
        checked.map_err(|e| match e.is_misbehaviour() {
            true => inconsistent(e.to_string()),
            false => Stop::Unavailable(e.to_string()),
        })?;
        let mut edge = state.edge.clone();
        let mut replay = state.replay.clone();
        let mut printed = 0;
        for bundle in last.size / 256..new.size.div_ceil(256) {
            let entries =
                client
                    .bundle(&new, bundle)
                    .await
                    .map_err(|e| match e.is_misbehaviour() {
                        true => inconsistent(e.to_string()),
                        false => Stop::Unavailable(e.to_string()),
                    })?;
            for (offset, (entry, leaf)) in entries.into_iter().enumerate() {
                let index = bundle * 256 + offset as u64;
                if index < last.size {
                    continue;
                }
                edge.push(leaf);
                if let Some(finding) = replay.as_mut().and_then(|r| r.apply(index, &entry)) {
                    if describe(printed) {
                        say(stdout, &format!("finding: {finding}")).map_err(Stop::Local)?;
                    }
                    printed += 1;
                }
            }
        }
        if edge.size() != new.size || edge.root() != new.root {
            return Err(inconsistent(format!(
                "the entries it serves do not hash to the root of its checkpoint of size {}",
                new.size
            )));
        }
        *state = State {
            last: Some((new.clone(), note.clone())),
            edge,
            replay,
        };
        state.save(&self.state).map_err(Stop::Local)?;
        let mut line = format!(
            "size {}: {} new entries, verified {}; {}",
            new.size,
            new.size - last.size,
            rfc3339(now()),
            trust.describe(&cosigned)
        );
        if let Some(time) = cosigned.earliest_time() {
            line.push_str(&format!(", earliest cosignature {}", rfc3339(time)));
        }
        if let Some(r) = &state.replay {
            line.push_str(&format!("; {}", r.summary()));
        }
        say(stdout, &line).map_err(Stop::Local)
    }
}

fn say(stdout: &mut dyn Write, line: &str) -> Result<(), Error> {
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}

fn stopped(stdout: &mut dyn Write) -> Result<(), Error> {
    say(stdout, "stopped")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

//! `xgate bench`: drive a running gateway with pre-signed envelopes from N
//! keep-alive connections and print what it sustained ([`crate::bench`]).
//!
//! ```text
//! xgate bench --pki DIR --gateway URL [--connections 64] [--duration 10]
//!             [--mix record.send=8,medical.request=1,asset.register=1]
//!             [--envelopes N] [--http2] [--rate PER_SECOND] [--json]
//!             [--receipts FILE] [--timings FILE] [--handshakes] [--drain]
//!             [--threads N] [--server-pid PID]...
//! ```
//!
//! A progress bar runs on stderr; the result is a table on stdout, or with
//! `--json` one line of JSON: `{"connections","http2","mode","seconds","ok",
//! "per_second","latency_ms":{"count","p50","p90","p99","p99.9","max"},
//! "kinds":{...},"errors":{"<status> <code>":n},"drained":n|null,
//! "engine":"lean"|"client","threads":n,"cpu":{"cores","seconds",
//! "generator":{"cpu_seconds","share","us_per_exchange"},
//! "server":{"pids","cpu_seconds","share","us_per_exchange"}|null,
//! "machine_busy":share|null}}` (shares of the whole machine, 0 to 1).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::error::Error;
use crate::bench::{self, Mix, Plan};
use xgate_server::pki::SAMPLE_AGENCIES;
use xgate_server::registry::AgencyId;

/// Arguments of `xgate bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// PKI directory holding the agencies' keys and `registry.toml`.
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The gateway, as https://host:port.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// Keep-alive connections, each sending its next envelope when the last
    /// one's receipt is back.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds to run (at most 240: envelopes are signed before the run and
    /// live 300 s).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=240))]
    pub duration: u64,
    /// Kinds and shares: record.send, medical.request, asset.register.
    #[arg(long, default_value = "record.send", value_parser = Mix::parse)]
    pub mix: Mix,
    /// Envelopes to sign in advance (default 8,000 per second of run).
    #[arg(long)]
    pub envelopes: Option<usize>,
    /// Offer HTTP/2 (ALPN h2); otherwise HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// Hold the load to this many exchanges per second (default: as fast
    /// as the gateway answers).
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Print one line of JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Measure new mutual-TLS connections instead of exchanges: each opens
    /// a new connection (no session resumption) and sends `GET /healthz`.
    #[arg(long, conflicts_with_all = ["mix", "receipts", "timings", "envelopes"])]
    pub handshakes: bool,
    /// Read and acknowledge every agency's inbox while the load runs, as
    /// receiving agencies do (for long runs: inboxes then stay drained).
    #[arg(long, conflicts_with = "handshakes")]
    pub drain: bool,
    /// Write every receipt to FILE, one JSON object per line (each can be
    /// checked with `xgate audit verify-receipt`).
    #[arg(long, value_name = "FILE")]
    pub receipts: Option<PathBuf>,
    /// Write when each acknowledged request (exchanges, and inbox
    /// acknowledgements with --drain) was sent and answered to FILE, one
    /// JSON object per line with `sent_us` and `received_us`
    /// (microseconds since the Unix epoch).
    #[arg(long, value_name = "FILE")]
    pub timings: Option<PathBuf>,
    /// The sending agencies (default: state, treasury, gsa, hhs, each
    /// sending to the next); with a federation, agencies the gateway serves.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "handshakes"
    )]
    pub senders: Vec<AgencyId>,
    /// Whom the senders send to, in turn (default: the next sender):
    /// agencies another gateway serves measure forwarding.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "handshakes"
    )]
    pub recipients: Vec<AgencyId>,
    /// The generator's runtime threads: 1 runs every connection on one
    /// thread, leaving the other cores to the server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// A process of the server, whose CPU the report shows beside the
    /// generator's (repeatable; default: the processes listening on the
    /// gateway's port, when it is on this machine).
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,
}

impl BenchArgs {
    /// Runs the load and prints the report.
    ///
    /// # Errors
    /// Keys that cannot be loaded, or a run that cannot start.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let agencies = if self.senders.is_empty() {
            SAMPLE_AGENCIES
                .iter()
                .map(|a| a.parse())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Request(format!("{e}")))?
        } else {
            self.senders
        };
        let recipients = (!self.recipients.is_empty()).then_some(self.recipients);
        let plan = Plan {
            url: self.gateway,
            pki: self.pki,
            agencies,
            recipients,
            connections: self.connections.max(1),
            duration: Duration::from_secs(self.duration),
            mix: self.mix,
            envelopes: self.envelopes.unwrap_or(8_000 * self.duration as usize),
            http2: self.http2,
            rate: self.rate,
            receipts: self.receipts,
            timings: self.timings,
            handshakes: self.handshakes,
            drain: self.drain,
            threads: usize::try_from(self.threads).unwrap_or(1),
            server_pids: self.server_pids,
        };
        let bar = indicatif::ProgressBar::new(plan.duration.as_secs());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed}/{len}s {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(if plan.handshakes {
            "connecting".to_owned()
        } else {
            format!("signing {} envelopes", plan.envelopes)
        });
        let started = std::time::Instant::now();
        let report = bench::run(&plan, &|done| {
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!("{done} exchanges"));
        })
        .map_err(|e| Error::Request(e.to_string()))?;
        bar.finish_and_clear();
        let text = if self.json {
            format!("{}\n", report.to_json())
        } else {
            report.to_string()
        };
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(Error::Stdout)
    }
}

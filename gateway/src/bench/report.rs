//! What a bench run measured: exchanges per second, latency percentiles
//! from an HDR histogram (microseconds, three significant figures), per
//! kind and overall, errors by status and code, and who used how much CPU
//! meanwhile ([`CpuUsage`]).
//!
//! Each connection keeps a report of its own, merged when the run ends
//! ([`Report::merge`]), so that no exchange waits on a shared lock.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::cpu::CpuUsage;
use super::error::Failure;
use super::plan::Plan;
use xgate_server::kind::Kind;

/// Latencies kept: 1 µs to 60 s.
const MAX_MICROS: u64 = 60_000_000;

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    connections: usize,
    http2: bool,
    handshakes: bool,
    /// The lean loop sent the exchanges (else the agency client).
    lean: bool,
    threads: usize,
    elapsed: Duration,
    drained: Option<u64>,
    cpu: Option<CpuUsage>,
    all: Histogram<u64>,
    kinds: BTreeMap<Kind, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    // Constant bounds and precision that hdrhistogram accepts (1 <= low,
    // 2 * low <= high, 3 significant figures): this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

impl Report {
    /// An empty report for `plan`.
    pub fn new(plan: &Plan) -> Report {
        Report {
            connections: plan.connections,
            http2: plan.http2,
            handshakes: plan.handshakes,
            lean: plan.lean(),
            threads: plan.threads,
            elapsed: Duration::ZERO,
            drained: None,
            cpu: None,
            all: histogram(),
            kinds: if plan.handshakes {
                BTreeMap::new()
            } else {
                plan.mix
                    .kinds()
                    .iter()
                    .map(|(k, _)| (*k, histogram()))
                    .collect()
            },
            errors: BTreeMap::new(),
        }
    }

    /// Counts one exchange (of `kind`, unless it was a handshake) that took
    /// `took`: a receipt, or an error named by status and code.
    pub fn record(&mut self, kind: Option<Kind>, took: Duration, outcome: Result<(), Failure>) {
        match outcome {
            Ok(()) => {
                let micros = u64::try_from(took.as_micros())
                    .unwrap_or(MAX_MICROS)
                    .clamp(1, MAX_MICROS);
                self.all.saturating_record(micros);
                if let Some(h) = kind.and_then(|k| self.kinds.get_mut(&k)) {
                    h.saturating_record(micros);
                }
            }
            Err(e) => *self.errors.entry(e.to_string()).or_default() += 1,
        }
    }

    /// Adds what `other` (another connection's report of the same plan)
    /// counted.
    pub fn merge(&mut self, other: &Report) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.all.add(&other.all);
        for (kind, h) in &other.kinds {
            if let Some(mine) = self.kinds.get_mut(kind) {
                let _ = mine.add(h);
            }
        }
        for (e, n) in &other.errors {
            *self.errors.entry(e.clone()).or_default() += n;
        }
    }

    /// Closes the run after `elapsed`, with the count of inbox envelopes
    /// acknowledged if the inboxes were drained, and the CPU each used.
    pub fn finish(&mut self, elapsed: Duration, drained: Option<u64>, cpu: Option<CpuUsage>) {
        self.elapsed = elapsed;
        self.drained = drained;
        self.cpu = cpu;
    }

    /// Exchanges answered with a receipt.
    pub fn ok(&self) -> u64 {
        self.all.len()
    }

    /// Exchanges that failed, for any reason.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The CPU each used over the run, once finished.
    pub fn cpu(&self) -> Option<&CpuUsage> {
        self.cpu.as_ref()
    }

    /// Receipted exchanges per second.
    pub fn rate(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The report for machines.
    pub fn to_json(&self) -> Value {
        let kinds: serde_json::Map<String, Value> = self
            .kinds
            .iter()
            .map(|(k, h)| (k.as_str().to_owned(), percentiles(h)))
            .collect();
        json!({
            "connections": self.connections,
            "http2": self.http2,
            "mode": if self.handshakes { "handshakes" } else { "exchanges" },
            "seconds": self.elapsed.as_secs_f64(),
            "ok": self.ok(),
            "per_second": self.rate(),
            "latency_ms": percentiles(&self.all),
            "kinds": kinds,
            "errors": self.errors,
            "drained": self.drained,
            "engine": if self.lean { "lean" } else { "client" },
            "threads": self.threads,
            "cpu": self.cpu.as_ref().map(|c| c.to_json(self.ok() + self.failed())),
        })
    }
}

fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"count": h.len(), "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99),
        "p99.9": ms(0.999), "max": h.max() as f64 / 1000.0})
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.failed();
        writeln!(
            f,
            "{} {} in {:.1} s over {} connections ({}): {:.0}/s, {errors} errors",
            self.ok(),
            if self.handshakes {
                "new mTLS connections (GET /healthz on each)"
            } else {
                "exchanges"
            },
            self.elapsed.as_secs_f64(),
            self.connections,
            if self.http2 {
                "HTTP/2 offered"
            } else {
                "HTTP/1.1"
            },
            self.rate()
        )?;
        writeln!(
            f,
            "{:<18} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        )?;
        let mut row = |name: &str, h: &Histogram<u64>| {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            writeln!(
                f,
                "{name:<18} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                h.len(),
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0
            )
        };
        row("all", &self.all)?;
        for (k, h) in &self.kinds {
            row(k.as_str(), h)?;
        }
        for (e, n) in &self.errors {
            writeln!(f, "error {e}: {n}")?;
        }
        if let Some(n) = self.drained {
            writeln!(f, "inbox envelopes read and acknowledged: {n}")?;
        }
        if let Some(cpu) = &self.cpu {
            writeln!(f, "{}", cpu.line())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::mix::Mix;

    fn plan() -> Plan {
        Plan {
            url: "https://127.0.0.1:1".into(),
            pki: "pki".into(),
            agencies: vec!["state".parse().expect("id")],
            recipients: None,
            connections: 2,
            duration: Duration::from_secs(1),
            mix: Mix::parse("record.send,asset.register").expect("mix"),
            envelopes: 10,
            http2: false,
            rate: None,
            handshakes: false,
            receipts: None,
            timings: None,
            drain: false,
            threads: 1,
            server_pids: Vec::new(),
        }
    }

    #[test]
    fn connection_reports_merge_into_the_runs() {
        let plan = plan();
        let (mut a, mut b) = (Report::new(&plan), Report::new(&plan));
        let ms = Duration::from_millis;
        a.record(Some(Kind::RecordSend), ms(2), Ok(()));
        a.record(Some(Kind::RecordSend), ms(1), Err(Failure::Transport));
        b.record(Some(Kind::AssetRegister), ms(8), Ok(()));
        b.record(Some(Kind::RecordSend), ms(4), Ok(()));
        b.record(Some(Kind::RecordSend), ms(1), Err(Failure::Transport));
        let refused = Failure::Refused {
            status: 429,
            code: "rate_limited".into(),
        };
        b.record(Some(Kind::RecordSend), ms(1), Err(refused));
        let mut run = Report::new(&plan);
        run.merge(&a);
        run.merge(&b);
        run.finish(Duration::from_secs(2), None, None);
        assert_eq!((run.ok(), run.failed()), (3, 3));
        assert_eq!(run.rate(), 1.5);
        let json = run.to_json();
        assert_eq!(
            json["errors"],
            json!({"transport": 2, "429 rate_limited": 1})
        );
        assert_eq!(json["kinds"]["record.send"]["count"], 2);
        assert_eq!(json["kinds"]["asset.register"]["count"], 1);
        assert_eq!(
            json["latency_ms"]["max"].as_f64().map(f64::round),
            Some(8.0)
        );
        assert_eq!(json["engine"], "lean");
        assert_eq!(json["cpu"], Value::Null);
    }
}

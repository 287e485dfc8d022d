//! Prometheus metrics for `GET /metrics`: requests by kind and outcome,
//! rejections by code, append latency, log size, open connections, TLS
//! handshakes by outcome, connections closed by reason, replay attempts,
//! the CRL's health, the event streams, the public tlog-tiles
//! listener's requests by resource class and status, and the batches of
//! EdDSA signature checks. Labels are kinds,
//! codes, outcomes, reasons and resource classes only (never a path or an
//! index): never an agency's data, never personal data.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use xgate_ledger::turn::TurnStats;

/// Labels of a submitted envelope.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: String,
    outcome: String,
}

/// Labels of a rejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// Labels of a TLS handshake: `full`, `resumed`, `failed` or `timeout`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    outcome: &'static str,
}

/// Labels of a connection the gateway closed: `header_timeout`,
/// `idle_timeout`, `max_age`, `evicted`, `handshake_limit` or
/// `agency_limit`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    reason: &'static str,
}

/// Labels of a request to the public listener: the class of resource
/// (`checkpoint`, `tile`, `tile_partial`, `entries`, `entries_partial`,
/// `page` for the auditor's page and its files, or `other` for anything
/// that names none) and the HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PublicRequestLabels {
    resource: &'static str,
    status: u16,
}

/// The public tlog-tiles listener: its requests, connections and
/// handshakes, apart from the main listener's.
#[derive(Debug, Default)]
struct PublicMetrics {
    requests: Family<PublicRequestLabels, Counter>,
    open: Gauge<i64, AtomicI64>,
    handshakes: Family<HandshakeLabels, Counter>,
    closed: Family<CloseLabels, Counter>,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rejections: Family<CodeLabels, Counter>,
    append_seconds: Histogram,
    log_size: Gauge<i64, AtomicI64>,
    connections: Gauge<i64, AtomicI64>,
    handshakes: Family<HandshakeLabels, Counter>,
    connections_closed: Family<CloseLabels, Counter>,
    replays: Counter,
    break_glass: Counter,
    reviews_pending: Gauge<i64, AtomicI64>,
    reviews_overdue: Gauge<i64, AtomicI64>,
    crl: CrlMetrics,
    streams: StreamMetrics,
    witnesses: WitnessMetrics,
    public: PublicMetrics,
    forwards: ForwardMetrics,
    signatures: SignatureMetrics,
    store: StoreMetrics,
    contracts: ContractMetrics,
}

/// Labels of a contract's act: the contract's name (from the policy file,
/// never data) and the outcome (`done`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActLabels {
    contract: String,
    outcome: &'static str,
}

/// Labels naming a contract.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContractLabels {
    contract: String,
}

/// The acts contracts took, and those that failed (the operator's alarm).
#[derive(Debug, Default)]
struct ContractMetrics {
    acts: Family<ActLabels, Counter>,
    failures: Family<ContractLabels, Counter>,
}

/// The batches EdDSA envelope signatures are checked in
/// ([`crate::signatures`]): their sizes, and those that failed as a whole
/// (then checked one by one). Clones count into the same metrics.
#[derive(Clone, Debug)]
pub struct SignatureMetrics {
    batch_size: Histogram,
    batches_failed: Counter,
}

impl SignatureMetrics {
    /// Records one batch of `size` signatures; `failed` if it did not
    /// verify as a whole.
    pub fn batch(&self, size: usize, failed: bool) {
        self.batch_size
            .observe(f64::from(u32::try_from(size).unwrap_or(u32::MAX)));
        if failed {
            self.batches_failed.inc();
        }
    }
}

/// What the log's turns cost its backend (a PostgreSQL log's lock, round
/// trips and bytes), from [`xgate_ledger::Ledger::turn_stats`]: counters
/// brought up to the ledger's own totals at each scrape.
#[derive(Debug, Default)]
struct StoreMetrics {
    batches: Counter,
    entries: Counter,
    lock_wait_us: Counter,
    lock_hold_us: Counter,
    commit_us: Counter,
    round_trips: Counter,
    bytes_sent: Counter,
    lock_hold_max_us: Gauge<i64, AtomicI64>,
    /// The totals counted so far.
    seen: std::sync::Mutex<TurnStats>,
}

/// The CRL's health: what is in force, and refusals of what was offered.
#[derive(Debug, Default)]
struct CrlMetrics {
    reload_failures: Counter,
    file_refused: Gauge<i64, AtomicI64>,
    stale: Gauge<i64, AtomicI64>,
    next_update: Gauge<i64, AtomicI64>,
    number: Gauge<i64, AtomicI64>,
}

/// Labels of a read of the reconciliation feed from the store: `reader`
/// (the one task that fans new notices out) or `catch_up` (a subscriber
/// reading its backlog, or after it fell behind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedReadLabels {
    by: &'static str,
}

/// Labels of a submission to a witness: the witness's name (from its
/// configured key) and the outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabels {
    witness: String,
    outcome: &'static str,
}

/// Labels of an answer of the gateway's witness of its peers: the
/// outcome only (never the log, the size or the caller).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    outcome: &'static str,
}

/// Submissions to witnesses, and the checkpoint served with a quorum;
/// and, in a federation, what this gateway's own witness answered.
#[derive(Debug, Default)]
struct WitnessMetrics {
    submissions: Family<WitnessLabels, Counter>,
    cosigned_size: Gauge<i64, AtomicI64>,
    cosignatures: Gauge<i64, AtomicI64>,
    answers: Family<AnswerLabels, Counter>,
    evidence: Counter,
}

/// Labels of forwarding to a peer gateway: its id, and the outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ForwardLabels {
    gateway: String,
    outcome: &'static str,
}

/// Labels naming a peer gateway.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    gateway: String,
}

/// Store-and-forward to the federation's other gateways.
#[derive(Debug)]
struct ForwardMetrics {
    forwards: Family<ForwardLabels, Counter>,
    waiting: Family<PeerLabels, Gauge<i64, AtomicI64>>,
    delivery_seconds: Histogram,
}

/// Event streams open, and the feed's reads from the store.
#[derive(Debug, Default)]
struct StreamMetrics {
    open: Gauge<i64, AtomicI64>,
    reads: Family<FeedReadLabels, Counter>,
}

impl Metrics {
    /// Fresh metrics for a log of `log_size` entries.
    pub fn new(log_size: u64) -> Metrics {
        let mut registry = Registry::with_prefix("xgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let rejections = Family::<CodeLabels, Counter>::default();
        // 100 us .. ~3.3 s
        let append_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let log_size_gauge = Gauge::<i64, AtomicI64>::default();
        let connections = Gauge::<i64, AtomicI64>::default();
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        let connections_closed = Family::<CloseLabels, Counter>::default();
        let replays = Counter::default();
        let break_glass = Counter::default();
        let reviews_pending = Gauge::<i64, AtomicI64>::default();
        let reviews_overdue = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "envelopes",
            "Envelopes submitted, by kind and outcome",
            requests.clone(),
        );
        registry.register(
            "rejections",
            "Requests refused, by error code",
            rejections.clone(),
        );
        registry.register(
            "append_seconds",
            "Time from append to durable commit",
            append_seconds.clone(),
        );
        registry.register("log_size", "Entries in the log", log_size_gauge.clone());
        registry.register(
            "open_connections",
            "TLS connections open",
            connections.clone(),
        );
        registry.register(
            "tls_handshakes",
            "TLS handshakes, by outcome: full, resumed, failed or timeout",
            handshakes.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections the gateway closed, by reason: header_timeout (no request within the \
             header timeout), idle_timeout, max_age, evicted (its slot went to a new connection), \
             handshake_limit (too many handshakes at once) or agency_limit (refused: its agency \
             holds too many)",
            connections_closed.clone(),
        );
        registry.register(
            "replay_attempts",
            "Envelopes refused because their jti was used before",
            replays.clone(),
        );
        registry.register(
            "break_glass_grants",
            "Medical requests granted at once as break-the-glass access",
            break_glass.clone(),
        );
        registry.register(
            "reviews_pending",
            "Break-the-glass grants awaiting review",
            reviews_pending.clone(),
        );
        registry.register(
            "reviews_overdue",
            "Break-the-glass grants whose review is past due",
            reviews_overdue.clone(),
        );
        let crl = CrlMetrics::default();
        registry.register(
            "crl_reload_failures",
            "CRL files refused (unreadable, not signed by the federation CA, an older or reissued number); the CRL in force stayed",
            crl.reload_failures.clone(),
        );
        registry.register(
            "crl_file_refused",
            "1 while crl.pem holds content that was refused, so the CRL in force is not the file's",
            crl.file_refused.clone(),
        );
        registry.register(
            "crl_stale",
            "1 while the CRL in force is past its nextUpdate",
            crl.stale.clone(),
        );
        registry.register(
            "crl_next_update_seconds",
            "nextUpdate of the CRL in force, in seconds since the Unix epoch",
            crl.next_update.clone(),
        );
        registry.register(
            "crl_number",
            "CRL number of the CRL in force",
            crl.number.clone(),
        );
        let streams = StreamMetrics::default();
        registry.register(
            "event_streams_open",
            "Reconciliation event streams open",
            streams.open.clone(),
        );
        registry.register(
            "event_feed_reads",
            "Reads of the reconciliation feed from the store, by reader (the one fan-out task) or catch_up (a subscriber's backlog)",
            streams.reads.clone(),
        );
        let witnesses = WitnessMetrics::default();
        registry.register(
            "witness_submissions",
            "Checkpoints submitted to witnesses, by witness and outcome (cosigned, unreachable, refused, conflict, ahead, invalid, proof_failed)",
            witnesses.submissions.clone(),
        );
        registry.register(
            "cosigned_checkpoint_size",
            "Size of the newest checkpoint served with the witness quorum",
            witnesses.cosigned_size.clone(),
        );
        registry.register(
            "cosigned_checkpoint_cosignatures",
            "Cosignatures on the newest checkpoint served with the witness quorum",
            witnesses.cosignatures.clone(),
        );
        registry.register(
            "peer_witness_answers",
            "add-checkpoint requests this gateway's witness answered for its peers' logs, by \
             outcome (cosigned, unknown_origin, untrusted, bad_request, conflict, inconsistent, \
             timeout, error)",
            witnesses.answers.clone(),
        );
        registry.register(
            "peer_witness_evidence",
            "Checkpoints this gateway's witness refused as conflicting with one it cosigned, \
             kept as evidence of a fork",
            witnesses.evidence.clone(),
        );
        let public = PublicMetrics::default();
        registry.register(
            "public_requests",
            "Requests to the public tlog-tiles listener, by resource class (checkpoint, tile, \
             tile_partial, entries, entries_partial, page, other) and HTTP status",
            public.requests.clone(),
        );
        registry.register(
            "public_open_connections",
            "TLS connections open on the public tlog-tiles listener",
            public.open.clone(),
        );
        registry.register(
            "public_tls_handshakes",
            "TLS handshakes on the public tlog-tiles listener, by outcome: full, resumed, failed \
             or timeout",
            public.handshakes.clone(),
        );
        registry.register(
            "public_connections_closed",
            "Connections the public tlog-tiles listener closed, by reason (as \
             xgate_connections_closed)",
            public.closed.clone(),
        );
        let forwards = ForwardMetrics {
            forwards: Family::default(),
            waiting: Family::default(),
            // Ratio 1.25: p50 and p99 read from the buckets within 12 %.
            delivery_seconds: Histogram::new(exponential_buckets(0.0005, 1.25, 64)),
        };
        registry.register(
            "forwards",
            "Envelopes forwarded to another gateway, by gateway and outcome (delivered, refused, \
             retry: not taken now, or the gateway unreachable)",
            forwards.forwards.clone(),
        );
        registry.register(
            "forward_queue",
            "Envelopes waiting to be forwarded, by gateway (counted up to 10,000)",
            forwards.waiting.clone(),
        );
        registry.register(
            "forward_delivery_seconds",
            "From an envelope's commit here to its receipt from the recipient's gateway, \
             settled",
            forwards.delivery_seconds.clone(),
        );
        let signatures = SignatureMetrics {
            // 1, 2, 4 .. 256: a batch is at most 64 by default.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            batches_failed: Counter::default(),
        };
        registry.register(
            "signature_batch_size",
            "EdDSA envelope signatures checked together, per batch (1: checked alone)",
            signatures.batch_size.clone(),
        );
        registry.register(
            "signature_batches_failed",
            "Batches of EdDSA signatures that did not verify as a whole, each signature then \
             checked alone",
            signatures.batches_failed.clone(),
        );
        let store = StoreMetrics::default();
        for (name, help, counter) in [
            (
                "store_batches",
                "Batches this process committed to a shared (PostgreSQL) log",
                &store.batches,
            ),
            (
                "store_entries",
                "Entries those batches appended",
                &store.entries,
            ),
            (
                "store_lock_wait_microseconds",
                "Time from a batch's BEGIN to the log's lock being granted (a round trip, and the \
                 wait behind other replicas' batches)",
                &store.lock_wait_us,
            ),
            (
                "store_lock_hold_microseconds",
                "Time the log's lock was held, from being granted to COMMIT returning: what is \
                 serial across replicas",
                &store.lock_hold_us,
            ),
            (
                "store_commit_microseconds",
                "Of the hold, the round trip sending the writes and the durable COMMIT",
                &store.commit_us,
            ),
            (
                "store_round_trips",
                "Round trips to the database of batches",
                &store.round_trips,
            ),
            (
                "store_bytes_sent",
                "Bytes of data committed batches sent to the database",
                &store.bytes_sent,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "store_lock_hold_max_microseconds",
            "The longest the log's lock was held by one batch of this process",
            store.lock_hold_max_us.clone(),
        );
        let contracts = ContractMetrics::default();
        registry.register(
            "contract_acts",
            "Acts contracts took, logged as contract.act entries, by contract and outcome (done, \
             failed)",
            contracts.acts.clone(),
        );
        registry.register(
            "contract_failures",
            "Acts logged as failed (an evaluation error, an act that did not apply, a bound \
             reached), by contract: each is a contract to look at",
            contracts.failures.clone(),
        );
        log_size_gauge.set(i64::try_from(log_size).unwrap_or(i64::MAX));
        Metrics {
            registry,
            requests,
            rejections,
            append_seconds,
            log_size: log_size_gauge,
            connections,
            handshakes,
            connections_closed,
            replays,
            break_glass,
            reviews_pending,
            reviews_overdue,
            crl,
            streams,
            witnesses,
            public,
            forwards,
            signatures,
            store,
            contracts,
        }
    }

    /// Counts one act of `contract`, logged and durable; `failed` if it
    /// was logged as failed.
    pub fn act(&self, contract: &str, failed: bool) {
        let outcome = if failed { "failed" } else { "done" };
        self.contracts
            .acts
            .get_or_create(&ActLabels {
                contract: contract.to_owned(),
                outcome,
            })
            .inc();
        if failed {
            self.contracts
                .failures
                .get_or_create(&ContractLabels {
                    contract: contract.to_owned(),
                })
                .inc();
        }
    }

    /// Brings the store's counters up to `stats`, the ledger's totals.
    pub fn store(&self, stats: TurnStats) {
        let m = &self.store;
        let mut seen = m
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let add = |c: &Counter, now: u64, was: u64| {
            c.inc_by(now.saturating_sub(was));
        };
        add(&m.batches, stats.batches, seen.batches);
        add(&m.entries, stats.entries, seen.entries);
        add(&m.lock_wait_us, stats.wait_total_us, seen.wait_total_us);
        add(&m.lock_hold_us, stats.hold_total_us, seen.hold_total_us);
        add(&m.commit_us, stats.commit_total_us, seen.commit_total_us);
        add(&m.round_trips, stats.round_trips, seen.round_trips);
        add(&m.bytes_sent, stats.bytes_sent, seen.bytes_sent);
        m.lock_hold_max_us
            .set(i64::try_from(stats.hold_max_us).unwrap_or(i64::MAX));
        *seen = stats;
    }

    /// The metrics of batched EdDSA signature checks.
    pub fn signatures(&self) -> &SignatureMetrics {
        &self.signatures
    }

    /// Counts `n` envelopes forwarded to `gateway` with `outcome`
    /// (`delivered`, `refused` or `retry`).
    pub fn forwarded(&self, gateway: &str, outcome: &'static str, n: u64) {
        self.forwards
            .forwards
            .get_or_create(&ForwardLabels {
                gateway: gateway.to_owned(),
                outcome,
            })
            .inc_by(n);
    }

    /// How many envelopes wait for `gateway`.
    pub fn forward_queue(&self, gateway: &str, waiting: usize) {
        self.forwards
            .waiting
            .get_or_create(&PeerLabels {
                gateway: gateway.to_owned(),
            })
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// Records one delivery, `seconds` after the envelope was accepted.
    pub fn delivery(&self, seconds: f64) {
        self.forwards.delivery_seconds.observe(seconds);
    }

    /// Counts one request to the public listener by resource class (see
    /// `PublicRequestLabels`) and HTTP status.
    pub fn public_request(&self, resource: &'static str, status: u16) {
        self.public
            .requests
            .get_or_create(&PublicRequestLabels { resource, status })
            .inc();
    }

    /// A connection to the public listener opened (`+1`) or closed (`-1`).
    pub fn public_connection(&self, delta: i64) {
        self.public.open.inc_by(delta);
    }

    /// Counts one TLS handshake on the public listener by its outcome.
    pub fn public_handshake(&self, outcome: &'static str) {
        self.public
            .handshakes
            .get_or_create(&HandshakeLabels { outcome })
            .inc();
    }

    /// Counts one connection the public listener closed, by `reason`.
    pub fn public_connection_closed(&self, reason: &'static str) {
        self.public
            .closed
            .get_or_create(&CloseLabels { reason })
            .inc();
    }

    /// Counts a CRL file that was refused, and flags that the file is not
    /// the CRL in force.
    pub fn crl_reload_failed(&self) {
        self.crl.reload_failures.inc();
        self.crl.file_refused.set(1);
    }

    /// Whether the CRL file holds refused content (`true`) or the CRL in
    /// force (`false`).
    pub fn crl_file_refused(&self, refused: bool) {
        self.crl.file_refused.set(i64::from(refused));
    }

    /// The number and `nextUpdate` of the CRL in force.
    pub fn crl_in_force(&self, number: &x509_parser::num_bigint::BigUint, next_update: i64) {
        self.crl
            .number
            .set(i64::try_from(number).unwrap_or(i64::MAX));
        self.crl.next_update.set(next_update);
    }

    /// Whether the CRL in force is past its `nextUpdate`.
    pub fn crl_stale(&self, stale: bool) {
        self.crl.stale.set(i64::from(stale));
    }

    /// An event stream opened (`+1`) or closed (`-1`).
    pub fn event_stream(&self, delta: i64) {
        self.streams.open.inc_by(delta);
    }

    /// Counts one submission of a checkpoint to `witness` with `outcome`.
    pub fn witness(&self, witness: &str, outcome: &'static str) {
        self.witnesses
            .submissions
            .get_or_create(&WitnessLabels {
                witness: witness.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts one answer of this gateway's witness of its peers, with
    /// `outcome`; `evidence` if it kept the refused checkpoint as evidence.
    pub fn peer_witness(&self, outcome: &'static str, evidence: bool) {
        let w = &self.witnesses;
        w.answers.get_or_create(&AnswerLabels { outcome }).inc();
        if evidence {
            w.evidence.inc();
        }
    }

    /// Records the checkpoint now served: its size and its cosignatures.
    pub fn cosigned(&self, size: u64, cosignatures: usize) {
        let w = &self.witnesses;
        w.cosigned_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        w.cosignatures
            .set(i64::try_from(cosignatures).unwrap_or(i64::MAX));
    }

    /// Counts one read of the reconciliation feed from the store, by
    /// `reader` or `catch_up`.
    pub fn feed_read(&self, by: &'static str) {
        self.streams
            .reads
            .get_or_create(&FeedReadLabels { by })
            .inc();
    }

    /// Counts one submitted envelope of `kind` ("unknown" before it parses)
    /// with `outcome` ("accepted" or an error code).
    pub fn envelope(&self, kind: &str, outcome: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one refused request.
    pub fn rejection(&self, code: &str) {
        self.rejections
            .get_or_create(&CodeLabels {
                code: code.to_owned(),
            })
            .inc();
    }

    /// Records one durable append and the log's new size.
    pub fn appended(&self, took: Duration, log_size: u64) {
        self.append_seconds.observe(took.as_secs_f64());
        self.log_size
            .set(i64::try_from(log_size).unwrap_or(i64::MAX));
    }

    /// Counts a replayed `jti`.
    pub fn replay_attempt(&self) {
        self.replays.inc();
    }

    /// A medical request was granted as break-the-glass access.
    pub fn break_glass(&self) {
        self.break_glass.inc();
    }

    /// The review queue's length, and how much of it is past due.
    pub fn reviews(&self, pending: u64, overdue: u64) {
        self.reviews_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.reviews_overdue
            .set(i64::try_from(overdue).unwrap_or(i64::MAX));
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// Counts one TLS handshake by its outcome (`full`, `resumed`,
    /// `failed` or `timeout`).
    pub fn handshake(&self, outcome: &'static str) {
        self.handshakes
            .get_or_create(&HandshakeLabels { outcome })
            .inc();
    }

    /// Counts one connection the gateway closed, by `reason`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&CloseLabels { reason })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

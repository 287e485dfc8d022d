//! The database restarted under load (issue 23): two replicas on a
//! PostgreSQL cluster of the test's own take envelopes without pause; the
//! cluster crashes (`pg_ctl stop -m immediate`) and, seconds later, starts
//! again.
//!
//! While it is away, every envelope gets an answer within seconds, and
//! that answer is `503 storage_unavailable` (nothing is acknowledged);
//! `/healthz` still answers `200 ok` (it says the process is alive and its
//! TLS works, not that the database is: docs/api.md); a replica started
//! meanwhile exits at once with one error line, which does not repeat the
//! password of its store URL (`PgLog::open` does not wait for the
//! database: a supervisor restarts it). Once the database is back, both
//! replicas, the same processes on the same ports, accept envelopes again
//! by themselves. Every receipt handed out before and after verifies with
//! the log key, is in the log at its own index, and the log verifies whole.

mod federation;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::{Method, StatusCode};
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate_ledger::pg::PgLog;
use xgate_ledger::{NoteSigner, OpenOptions, verify_checkpoint};
use xgate_server::pki::SAMPLE_AGENCIES;
use xgate_server::receipt::Receipt;
use xgate_tests::postgres::TestPostgres;
use xgate_tests::replicas::{Replica, copy_data_dir};

use federation::{body, id, make_pki, runtime};

const BIN: &str = env!("CARGO_BIN_EXE_xgate");

/// The longest any answer may take. The log bounds every database call
/// (connecting 2 s, waiting for a pooled connection 3 s, a call 10 s) well
/// inside the request timeout (30 s): a request never hangs on a database
/// that is away.
const PROMPT: Duration = Duration::from_secs(12);

/// A password the store URL of the replica started during the outage
/// carries (the throwaway cluster trusts loopback, so it is never checked):
/// no output may repeat it.
const PASSWORD: &str = "s3cret-pw";

/// One request of the load and its answer.
#[derive(Debug)]
struct Outcome {
    replica: usize,
    sent: Instant,
    answered: Instant,
    /// `None`: no HTTP answer at all.
    status: Option<StatusCode>,
    code: Option<String>,
    receipt: Option<Receipt>,
}

/// Senders sending to each replica without pause until told to stop,
/// recording every answer.
struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(rt: &tokio::runtime::Runtime, pki: &Path, replicas: &[Replica]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (replica, r) in replicas.iter().enumerate() {
            for (from, to) in [("state", "treasury"), ("gsa", "hhs")] {
                let mut client =
                    Client::for_agency(pki, &id(from), r.gateway().url(), Protocol::Http1)
                        .expect("client");
                let signer = EnvelopeSigner::for_agency(pki, &id(from)).expect("signer");
                let (stop, outcomes) = (Arc::clone(&stop), Arc::clone(&outcomes));
                tasks.push(rt.spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let jws = signer
                            .sign(
                                &id(to),
                                "record.send",
                                body(&format!("{from} {n}")),
                                120,
                                None,
                            )
                            .expect("sign");
                        let sent = Instant::now();
                        let reply = client.submit(jws).await;
                        let answered = Instant::now();
                        let outcome = match reply {
                            Ok(reply) => Outcome {
                                replica,
                                sent,
                                answered,
                                status: Some(reply.status),
                                code: reply.error_code(),
                                receipt: (reply.status == StatusCode::CREATED).then(|| {
                                    serde_json::from_slice(&reply.body).expect("a receipt")
                                }),
                            },
                            Err(_) => Outcome {
                                replica,
                                sent,
                                answered,
                                status: None,
                                code: None,
                                receipt: None,
                            },
                        };
                        let refused = outcome.receipt.is_none();
                        outcomes.lock().expect("outcomes").push(outcome);
                        if refused {
                            // Refusals come fast: do not spin on them.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }));
            }
        }
        Load {
            stop,
            outcomes,
            tasks,
        }
    }

    /// How many answers so far satisfy `test`, on each replica.
    fn count(&self, replicas: usize, test: impl Fn(&Outcome) -> bool) -> Vec<usize> {
        let outcomes = self.outcomes.lock().expect("outcomes");
        (0..replicas)
            .map(|r| {
                outcomes
                    .iter()
                    .filter(|o| o.replica == r && test(o))
                    .count()
            })
            .collect()
    }

    /// Waits (at most `within`) until every one of `replicas` has given at
    /// least `n` answers that satisfy `test`.
    fn wait_for(
        &self,
        what: &str,
        replicas: usize,
        n: usize,
        within: Duration,
        test: impl Fn(&Outcome) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let counts = self.count(replicas, &test);
            if counts.iter().all(|&c| c >= n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: only {counts:?} after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(self, rt: &tokio::runtime::Runtime) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            rt.block_on(task).expect("a sender");
        }
        Arc::try_unwrap(self.outcomes)
            .expect("the senders are done")
            .into_inner()
            .expect("outcomes")
    }
}

#[test]
fn replicas_answer_503_while_the_database_is_away_and_recover_by_themselves() {
    let pg = xgate_tests::require_postgres!(TestPostgres::private());
    let db = pg.database();
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    make_pki(&pki, &SAMPLE_AGENCIES);
    let pki_arg = pki.display().to_string();
    let first = Replica::first(
        BIN,
        &root.path().join("r0"),
        db.url(),
        &["--pki", &pki_arg],
        &[("XGATE_LOG", "info")],
    );
    let second = first.another(&root.path().join("r1"));
    let replicas = [first, second];
    let key = std::fs::read_to_string(replicas[0].data_dir().join("checkpoint.key"))
        .map(|text| NoteSigner::from_private_key(text.trim()).expect("a signing key"))
        .expect("checkpoint.key")
        .verifier();
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| r.gateway().url().to_owned())
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let load = Load::start(&rt, &pki, &replicas);
    let created = |o: &Outcome| o.status == Some(StatusCode::CREATED);
    load.wait_for("receipts before", 2, 10, Duration::from_secs(60), created);

    pg.stop().expect("crash the database");
    let stopped = Instant::now();
    let refused = |o: &Outcome| {
        o.sent > stopped
            && o.status == Some(StatusCode::SERVICE_UNAVAILABLE)
            && o.code.as_deref() == Some("storage_unavailable")
    };
    load.wait_for("503 storage_unavailable", 2, 3, PROMPT, refused);
    eprintln!(
        "503 from both replicas {:?} after the crash",
        stopped.elapsed()
    );
    healthz_is_ok(&pki, &urls);
    a_replica_started_now_fails_at_once(root.path(), &pki_arg, replicas[0].data_dir(), db.url());
    // A few seconds away in all.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed()));
    let restarting = Instant::now();
    pg.start().expect("start the database again");
    let started = Instant::now();
    eprintln!(
        "the database was away {:?} (its start took {:?})",
        started.duration_since(stopped),
        started.duration_since(restarting)
    );
    let after = |o: &Outcome| o.sent > started && o.status == Some(StatusCode::CREATED);
    load.wait_for("receipts after", 2, 1, Duration::from_secs(60), after);
    eprintln!(
        "both replicas acknowledged again {:?} after the start",
        started.elapsed()
    );
    load.wait_for("receipts after", 2, 10, Duration::from_secs(60), after);
    let outcomes = load.finish(&rt);
    drop(rt);

    // Every request got an answer, promptly; while the database was
    // away, only 503 storage_unavailable.
    for o in &outcomes {
        let took = o.answered.duration_since(o.sent);
        assert!(
            o.status.is_some(),
            "no answer from replica {}: {o:?}",
            o.replica
        );
        assert!(took < PROMPT, "an answer took {took:?}: {o:?}");
        if o.sent > stopped && o.answered < restarting {
            assert_eq!(
                (o.status, o.code.as_deref()),
                (
                    Some(StatusCode::SERVICE_UNAVAILABLE),
                    Some("storage_unavailable")
                ),
                "while the database was away: {o:?}"
            );
        }
        if o.status != Some(StatusCode::CREATED) {
            assert_eq!(
                (o.status, o.code.as_deref()),
                (
                    Some(StatusCode::SERVICE_UNAVAILABLE),
                    Some("storage_unavailable")
                ),
                "the only refusal is the outage's: {o:?}"
            );
        }
    }
    // Recovered for good: once a replica acknowledged again, it refused
    // nothing sent after.
    for replica in 0..2 {
        let back = outcomes
            .iter()
            .filter(|o| o.replica == replica && after(o))
            .map(|o| o.answered)
            .min()
            .expect("acknowledged after the start");
        let late = outcomes
            .iter()
            .filter(|o| o.replica == replica && o.sent > back && o.receipt.is_none())
            .count();
        assert_eq!(
            late, 0,
            "replica {replica} refused {late} after it recovered"
        );
    }
    let refusals = outcomes.iter().filter(|o| o.receipt.is_none()).count();
    let slowest = outcomes
        .iter()
        .map(|o| o.answered.duration_since(o.sent))
        .max();
    eprintln!("the slowest answer took {slowest:?}");

    // Every receipt is in the log at its index, none shares one.
    let audit = root.path().join("auditor");
    copy_data_dir(replicas[0].data_dir(), &audit).expect("copy the key");
    let log = PgLog::open(db.url(), &audit, &OpenOptions::default()).expect("open the log");
    let mut indices = std::collections::BTreeSet::new();
    let receipts: Vec<&Receipt> = outcomes.iter().filter_map(|o| o.receipt.as_ref()).collect();
    for receipt in &receipts {
        receipt.verify(&key).expect("the receipt verifies");
        assert!(
            indices.insert(receipt.log_index),
            "index {} reused",
            receipt.log_index
        );
        let leaf = log
            .leaf_hash(receipt.log_index)
            .expect("the entry is in the log");
        assert_eq!(B64.encode(leaf.as_bytes()), receipt.leaf_hash);
    }
    let report = log.verify().expect("the log verifies");
    assert!(report.size > *indices.last().expect("receipts"));
    // Both replicas serve a checkpoint covering every receipt.
    runtime().block_on(async {
        for url in &urls {
            let mut client =
                Client::for_agency(&pki, &id("hhs"), url, Protocol::Http1).expect("client");
            let note = federation::checkpoint_note(&mut client).await;
            let checkpoint = verify_checkpoint(&note, &key).expect("signed");
            assert!(checkpoint.size >= report.size.min(*indices.last().unwrap_or(&0) + 1));
        }
    });
    eprintln!(
        "{} receipts checked, {refusals} refusals while the database was away",
        receipts.len()
    );
}

/// `/healthz` at each replica still answers `200 ok`.
fn healthz_is_ok(pki: &Path, urls: &[String]) {
    runtime().block_on(async {
        for url in urls {
            let mut client =
                Client::for_agency(pki, &id("state"), url, Protocol::Http1).expect("client");
            let reply = client
                .request(Method::GET, "/healthz", None, Vec::new())
                .await
                .expect("an answer");
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(&reply.body[..], b"ok\n");
        }
    });
}

/// A replica started (on a copy of `data`) while the database is away
/// exits with an error at once, in one line naming the database and not
/// its password, and listens nowhere.
fn a_replica_started_now_fails_at_once(root: &Path, pki: &str, data: &Path, url: &str) {
    let dir = root.join("late");
    copy_data_dir(data, &dir).expect("copy the data directory");
    let store = url.replacen("://xgate@", &format!("://xgate:{PASSWORD}@"), 1);
    assert_ne!(store, url, "a password in the URL");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(&dir)
        .args(["--pki", pki, "--listen", "127.0.0.1:0"])
        .args(["--public-listen", "127.0.0.1:0"])
        .env("XGATE_STORE", &store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xgate serve");
    let exited = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > PROMPT {
            let _ = child.kill();
            panic!("xgate serve waited for the database past {PROMPT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!exited.success(), "it started: {stdout}");
    assert!(stdout.is_empty(), "it listened: {stdout}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(xgate_tests::ERROR_PREFIX))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
    eprintln!(
        "started while the database was away, after {:?}: {}",
        started.elapsed(),
        errors[0]
    );
}

//! Checking envelopes' EdDSA signatures in batches, like group commit for
//! signatures: whatever is waiting, up to a bound, is checked as one
//! batch, which costs about half as much per signature as checking each
//! alone.
//!
//! A batch check says only whether every signature in it verifies. When
//! one does not, the batch is checked again one signature at a time, so
//! that the bad one is refused alone, with its own code (`bad_signature`),
//! and the others are held up by one batch at most. Batch and single
//! checks decide alike on every input because both follow ZIP-215
//! (`ed25519-zebra`; the rule is in [`crate::envelope`]'s docs): a replay,
//! or another gateway checking one by one, can never disagree with a
//! decision made in a batch. (A batch with an invalid signature passes
//! only if its random coefficients, 128 bits from the OS, are guessed.)
//!
//! Two ways in:
//! - [`verify_all`] checks signatures that arrive together (a forward
//!   request's envelopes) as one batch, on the caller's thread;
//! - [`BatchVerifier`] runs threads (by default one per two cores) that each
//!   take whatever envelopes are queued, up to [`DEFAULT_MAX_BATCH`],
//!   check them as one batch and answer each waiting request; submitted
//!   envelopes wait there, each on its own answer.
//!
//! ES256 signatures have no batch check: [`verify_all`] checks them one
//! by one, and the gateway checks them where they arrive.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use ed25519_zebra::batch;
use rand_core::OsRng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::envelope::{Rejection, Signed, Verified};
pub use crate::metrics::SignatureMetrics;

/// The most signatures checked in one batch, by default: past 64 a batch
/// saves little more per signature, and each waits longer for it.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// How many envelopes may wait for a [`BatchVerifier`] by default; more
/// wait to be queued.
pub const DEFAULT_QUEUE: usize = 4096;

/// How a [`BatchVerifier`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Threads checking batches (at least one).
    pub threads: usize,
    /// The most signatures in one batch (at least one).
    pub max_batch: usize,
    /// The most envelopes waiting to be checked; past it, callers wait
    /// for room.
    pub queue: usize,
}

impl Default for BatchConfig {
    /// A thread per two cores (at least one), batches of
    /// [`DEFAULT_MAX_BATCH`], a queue of [`DEFAULT_QUEUE`].
    ///
    /// Fewer threads than cores: the threads share what is queued, so each
    /// more of them makes every batch smaller (at a thread per core on two
    /// cores, half the batches held one signature), and a batch's saving
    /// grows with its size; one thread checks 30,000 to 60,000 signatures a
    /// second, more than the rest of an exchange lets two cores reach.
    fn default() -> BatchConfig {
        BatchConfig {
            threads: std::thread::available_parallelism()
                .map_or(1, |n| (usize::from(n) / 2).max(1)),
            max_batch: DEFAULT_MAX_BATCH,
            queue: DEFAULT_QUEUE,
        }
    }
}

/// Why an envelope's signature was not found good.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The signature does not verify (or could not be read as one).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The verifier stopped before it checked this one.
    #[error("the signature verifier has stopped")]
    Stopped,
}

/// Checks the signature of each of `signed`, the EdDSA ones as one batch
/// (one by one if that batch fails), the others one by one; recorded in
/// `metrics`. Returns each one's outcome, in order.
pub fn verify_all(
    signed: Vec<Signed>,
    metrics: &SignatureMetrics,
) -> Vec<Result<Verified, Rejection>> {
    let items: Vec<Option<batch::Item>> = signed.iter().map(batch_item).collect();
    let size = items.iter().flatten().count();
    let together = match size {
        0 => false,
        1 => {
            metrics.batch(1, false);
            false
        }
        _ => {
            let mut verifier = batch::Verifier::new();
            for item in items.iter().flatten() {
                verifier.queue(item.clone());
            }
            let verified = verifier.verify(OsRng).is_ok();
            metrics.batch(size, !verified);
            verified
        }
    };
    signed
        .into_iter()
        .zip(items)
        .map(|(signed, item)| match item {
            Some(_) if together => Ok(signed.verified_in_batch()),
            // Alone (the batch failed, or was of one), with the key
            // decompressed once at start; ES256 too, and a signature that
            // is not 64 bytes, which is refused.
            _ => signed.verify(),
        })
        .collect()
}

/// `signed`'s signature as an item of an Ed25519 batch; `None` if its
/// sender's key is not Ed25519 or the signature is not 64 bytes.
fn batch_item(signed: &Signed) -> Option<batch::Item> {
    let key = signed.key().ed25519()?;
    let signature = ed25519_zebra::Signature::from_slice(signed.signature()).ok()?;
    Some(batch::Item::from((
        ed25519_zebra::VerificationKeyBytes::from(*key),
        signature,
        signed.signing_input(),
    )))
}

/// Threads that check queued envelopes' signatures in batches.
/// Dropping it stops them ([`BatchVerifier::shutdown`]) and waits for
/// them.
#[derive(Debug)]
pub struct BatchVerifier {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when an envelope is queued, or the verifier stops.
    ready: Condvar,
    /// One permit per place in the queue; closed when the verifier stops.
    room: Arc<Semaphore>,
    max_batch: usize,
    metrics: SignatureMetrics,
}

#[derive(Debug)]
struct Queue {
    waiting: VecDeque<Waiter>,
    open: bool,
}

/// An envelope waiting for its check, and where its answer goes.
#[derive(Debug)]
struct Waiter {
    signed: Signed,
    answer: oneshot::Sender<Result<Verified, Rejection>>,
    /// Its place in the queue, given back once it is answered.
    place: OwnedSemaphorePermit,
}

impl BatchVerifier {
    /// Starts `config.threads` threads checking batches, recording them in
    /// `metrics`.
    ///
    /// # Errors
    /// A thread could not be started (those started are stopped).
    pub fn start(config: BatchConfig, metrics: SignatureMetrics) -> std::io::Result<BatchVerifier> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                open: true,
            }),
            ready: Condvar::new(),
            room: Arc::new(Semaphore::new(
                config.queue.clamp(1, Semaphore::MAX_PERMITS),
            )),
            max_batch: config.max_batch.max(1),
            metrics,
        });
        let mut verifier = BatchVerifier {
            shared,
            threads: Vec::new(),
        };
        for n in 0..config.threads.max(1) {
            let shared = Arc::clone(&verifier.shared);
            let thread = std::thread::Builder::new()
                .name(format!("xgate-verify-{n}"))
                .spawn(move || shared.run())?;
            verifier.threads.push(thread);
        }
        Ok(verifier)
    }

    /// Checks `signed`'s signature in the next batch a thread takes, and
    /// returns once it is checked.
    ///
    /// # Errors
    /// [`CheckError::Rejected`] (`bad_signature`) if it does not verify;
    /// [`CheckError::Stopped`] if the verifier stopped first.
    pub async fn verify(&self, signed: Signed) -> Result<Verified, CheckError> {
        let place = Arc::clone(&self.shared.room)
            .acquire_owned()
            .await
            .map_err(|_| CheckError::Stopped)?;
        let (answer, answered) = oneshot::channel();
        {
            let mut queue = self.shared.lock();
            if !queue.open {
                return Err(CheckError::Stopped);
            }
            queue.waiting.push_back(Waiter {
                signed,
                answer,
                place,
            });
        }
        self.shared.ready.notify_one();
        // Dropped unanswered only when the verifier stops.
        let outcome = answered.await.map_err(|_| CheckError::Stopped)?;
        Ok(outcome?)
    }

    /// Stops the threads once the batches they hold are checked; every
    /// envelope still queued, and any queued later, is answered
    /// [`CheckError::Stopped`].
    pub fn shutdown(&self) {
        let dropped = {
            let mut queue = self.shared.lock();
            queue.open = false;
            std::mem::take(&mut queue.waiting)
        };
        self.shared.room.close();
        self.shared.ready.notify_all();
        // Their answers are dropped unsent: each waiter hears `Stopped`.
        drop(dropped);
    }
}

impl Drop for BatchVerifier {
    fn drop(&mut self) {
        self.shutdown();
        for thread in self.threads.drain(..) {
            // A thread that panicked has nothing left to answer: its
            // waiters heard `Stopped` as their answers were dropped.
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// The queue; a panic elsewhere while holding it leaves it whole (it
    /// is only pushed to and drained), so a poisoned lock is taken as is.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A checking thread: takes whatever is queued, up to the bound,
    /// checks it as one batch and answers each waiter, until stopped.
    fn run(&self) {
        loop {
            let taken: Vec<Waiter> = {
                let mut queue = self.lock();
                while queue.open && queue.waiting.is_empty() {
                    queue = self
                        .ready
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if !queue.open {
                    return;
                }
                let n = queue.waiting.len().min(self.max_batch);
                queue.waiting.drain(..n).collect()
            };
            let (signed, answers): (Vec<Signed>, Vec<_>) = taken
                .into_iter()
                .map(|w| (w.signed, (w.answer, w.place)))
                .unzip();
            let outcomes = verify_all(signed, &self.metrics);
            for ((answer, _place), outcome) in answers.into_iter().zip(outcomes) {
                // A waiter that went away (its request ended) needs none.
                let _ = answer.send(outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{ENVELOPE_TYP, Verifiers, check};
    use crate::metrics::Metrics;
    use crate::registry::{Agency, AgencyId, CertificateBinding, Registry};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::Signer as _;
    use proptest::prelude::*;
    use serde_json::json;

    const AGENCIES: [&str; 4] = ["a1", "a2", "a3", "es"];

    /// Agencies `a1`-`a3` signing with Ed25519 and `es` with ES256, their
    /// keys, and the verifiers.
    struct Keys {
        registry: Registry,
        verifiers: Verifiers,
        ed: Vec<ed25519_dalek::SigningKey>,
        es: josekit::jwk::Jwk,
    }

    fn keys() -> Keys {
        let ed: Vec<_> = (0..3)
            .map(|_| {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).expect("random");
                ed25519_dalek::SigningKey::from_bytes(&seed)
            })
            .collect();
        let es =
            josekit::jwk::Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256).expect("ec");
        let agency = |id: &str, mut signing: serde_json::Map<String, serde_json::Value>| {
            signing.insert("kid".into(), json!(format!("{id}-sig")));
            signing.insert("use".into(), json!("sig"));
            let mut encryption = es.to_public_key().expect("public").as_ref().clone();
            encryption.insert("kid".into(), json!(format!("{id}-enc")));
            encryption.insert("use".into(), json!("enc"));
            Agency {
                id: id.parse().expect("id"),
                name: id.into(),
                gateway: None,
                certificate: CertificateBinding {
                    uri: format!("urn:xgate:agency:{id}"),
                    sha256: None,
                },
                signing_key: signing,
                encryption_key: encryption,
                roles: Vec::new(),
            }
        };
        let mut agencies: Vec<Agency> = ed
            .iter()
            .zip(AGENCIES)
            .map(|(key, id)| {
                let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
                agency(id, jwk.as_object().expect("object").clone())
            })
            .collect();
        agencies.push(agency(
            "es",
            es.to_public_key().expect("public").as_ref().clone(),
        ));
        let registry = Registry::from_agencies(agencies).expect("registry");
        let verifiers = Verifiers::from_registry(&registry).expect("verifiers");
        Keys {
            registry,
            verifiers,
            ed,
            es,
        }
    }

    impl Keys {
        /// Envelope `n` from agency `from` (0-2: Ed25519; 3: ES256),
        /// signed by its own key.
        fn envelope(&self, from: usize, n: usize) -> String {
            self.envelope_signed_with(from, from, n)
        }

        /// Envelope `n` from agency `from`, signed with agency `key`'s key
        /// under `from`'s `kid`.
        fn envelope_signed_with(&self, from: usize, key: usize, n: usize) -> String {
            let alg = if from == 3 { "ES256" } else { "EdDSA" };
            let iss = AGENCIES[from];
            let header = json!({"alg": alg, "typ": ENVELOPE_TYP, "kid": format!("{iss}-sig")});
            let claims = json!({"iss": iss, "aud": "es", "jti": format!("j{n}"),
                "iat": 1, "exp": 2, "kind": "record.send", "body": {"record": n}});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = if key == 3 {
                use josekit::jws::JwsSigner as _;
                josekit::jws::ES256
                    .signer_from_jwk(&self.es)
                    .expect("signer")
                    .sign(input.as_bytes())
                    .expect("sign")
            } else {
                self.ed[key].sign(input.as_bytes()).to_bytes().to_vec()
            };
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
        }

        fn signed(&self, from: usize, jws: &str) -> Signed {
            let sender: AgencyId = AGENCIES[from].parse().expect("id");
            check(jws.as_bytes(), &sender, &self.verifiers, &self.registry).expect("checked")
        }
    }

    /// `jws` with bit `bit` of its signature flipped.
    fn flipped(jws: &str, bit: usize) -> String {
        let (input, sig64) = jws.rsplit_once('.').expect("three parts");
        let mut sig = URL_SAFE_NO_PAD.decode(sig64).expect("b64");
        let len = sig.len();
        sig[(bit / 8) % len] ^= 1 << (bit % 8);
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn is_bad_signature(outcome: &Result<Verified, Rejection>) -> bool {
        matches!(outcome, Err(Rejection::BadSignature(_)))
    }

    #[test]
    fn a_batch_of_good_signatures_verifies_together() {
        let keys = keys();
        let metrics = Metrics::new(0);
        let signed = (0..64)
            .map(|n| keys.signed(n % 3, &keys.envelope(n % 3, n)))
            .collect();
        let outcomes = verify_all(signed, metrics.signatures());
        assert_eq!(outcomes.len(), 64);
        assert!(outcomes.iter().all(Result::is_ok));
        let text = metrics.render();
        assert!(
            text.contains("xgate_signature_batch_size_sum 64.0"),
            "{text}"
        );
        assert!(
            text.contains("xgate_signature_batch_size_count 1"),
            "{text}"
        );
        assert!(
            text.contains("xgate_signature_batches_failed_total 0"),
            "{text}"
        );
    }

    #[test]
    fn one_bad_signature_is_refused_alone() {
        let keys = keys();
        let metrics = Metrics::new(0);
        let mut jws: Vec<(usize, String)> =
            (0..40).map(|n| (n % 4, keys.envelope(n % 4, n))).collect();
        jws[17].1 = flipped(&jws[17].1, 300);
        // Another agency's key under a1's kid: the wrong key.
        jws[21] = (0, keys.envelope_signed_with(0, 1, 21));
        let signed = jws.iter().map(|(from, j)| keys.signed(*from, j)).collect();
        let outcomes = verify_all(signed, metrics.signatures());
        for (n, outcome) in outcomes.iter().enumerate() {
            assert_eq!(
                is_bad_signature(outcome),
                n == 17 || n == 21,
                "envelope {n}"
            );
            assert!(outcome.is_ok() || is_bad_signature(outcome), "envelope {n}");
        }
        let text = metrics.render();
        assert!(
            text.contains("xgate_signature_batches_failed_total 1"),
            "{text}"
        );
        // The ES256 ones (every fourth) are not in the batch.
        assert!(
            text.contains("xgate_signature_batch_size_sum 30.0"),
            "{text}"
        );
    }

    #[test]
    fn signatures_of_the_wrong_length_are_refused_alone() {
        let keys = keys();
        let metrics = Metrics::new(0);
        let good = keys.envelope(0, 0);
        let (input, sig64) = good.rsplit_once('.').expect("three parts");
        let sig = URL_SAFE_NO_PAD.decode(sig64).expect("b64");
        let short = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig[..63]));
        let signed = vec![
            keys.signed(0, &good),
            keys.signed(0, &short),
            keys.signed(1, &keys.envelope(1, 1)),
        ];
        let outcomes = verify_all(signed, metrics.signatures());
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
        assert!(is_bad_signature(&outcomes[1]));
        assert!(
            metrics
                .render()
                .contains("xgate_signature_batches_failed_total 0")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever is flipped, a batch decides each signature as the
        /// single check does.
        #[test]
        fn batch_and_single_agree(
            flips in proptest::collection::vec(proptest::option::of(0usize..512), 1..24),
        ) {
            let keys = keys();
            let metrics = Metrics::new(0);
            let jws: Vec<(usize, String)> = flips
                .iter()
                .enumerate()
                .map(|(n, flip)| {
                    let good = keys.envelope(n % 3, n);
                    (n % 3, flip.map_or(good.clone(), |bit| flipped(&good, bit)))
                })
                .collect();
            let batch = verify_all(
                jws.iter().map(|(from, j)| keys.signed(*from, j)).collect(),
                metrics.signatures(),
            );
            for ((from, j), outcome) in jws.iter().zip(&batch) {
                let single = keys.signed(*from, j).verify();
                prop_assert_eq!(single.is_ok(), outcome.is_ok());
                prop_assert!(outcome.is_ok() || is_bad_signature(outcome));
            }
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn many_tasks_at_once_each_get_their_own_answer() {
        let keys = Arc::new(keys());
        let metrics = Metrics::new(0);
        let config = BatchConfig {
            threads: 2,
            max_batch: 16,
            queue: 32,
        };
        let verifier =
            Arc::new(BatchVerifier::start(config, metrics.signatures().clone()).expect("start"));
        let outcomes = runtime().block_on(async {
            let tasks: Vec<_> = (0..300)
                .map(|n| {
                    let (keys, verifier) = (Arc::clone(&keys), Arc::clone(&verifier));
                    tokio::spawn(async move {
                        let mut jws = keys.envelope(n % 3, n);
                        if n % 37 == 5 {
                            jws = flipped(&jws, n);
                        }
                        let outcome = verifier.verify(keys.signed(n % 3, &jws)).await;
                        (
                            n,
                            outcome.map(|v| v.open(&keys.registry, Default::default(), 1)),
                        )
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.expect("task"));
            }
            outcomes
        });
        for (n, outcome) in outcomes {
            match outcome {
                Ok(Ok(envelope)) => {
                    assert_ne!(n % 37, 5, "envelope {n}");
                    assert_eq!(envelope.jti, format!("j{n}"));
                }
                Err(CheckError::Rejected(Rejection::BadSignature(_))) => {
                    assert_eq!(n % 37, 5, "envelope {n}");
                }
                other => panic!("envelope {n}: {other:?}"),
            }
        }
        let text = metrics.render();
        assert!(
            text.contains("xgate_signature_batch_size_sum 300.0"),
            "{text}"
        );
    }

    #[test]
    fn shutdown_answers_every_waiter_and_every_later_caller() {
        let keys = Arc::new(keys());
        let metrics = Metrics::new(0);
        // No thread takes anything: whatever is queued waits for shutdown.
        let verifier = Arc::new(BatchVerifier {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    waiting: VecDeque::new(),
                    open: true,
                }),
                ready: Condvar::new(),
                room: Arc::new(Semaphore::new(4)),
                max_batch: 64,
                metrics: metrics.signatures().clone(),
            }),
            threads: Vec::new(),
        });
        let rt = runtime();
        let waiting: Vec<_> = (0..10)
            .map(|n| {
                let (keys, verifier) = (Arc::clone(&keys), Arc::clone(&verifier));
                rt.spawn(async move { verifier.verify(keys.signed(0, &keys.envelope(0, n))).await })
            })
            .collect();
        // Four are queued, six wait for room.
        rt.block_on(async {
            while verifier.shared.lock().waiting.len() < 4 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        verifier.shutdown();
        rt.block_on(async {
            for task in waiting {
                let answer = tokio::time::timeout(std::time::Duration::from_secs(10), task)
                    .await
                    .expect("answered, not hung")
                    .expect("task");
                assert!(matches!(answer, Err(CheckError::Stopped)), "{answer:?}");
            }
            let later = verifier.verify(keys.signed(0, &keys.envelope(0, 99))).await;
            assert!(matches!(later, Err(CheckError::Stopped)));
        });
    }

    #[test]
    fn dropping_a_busy_verifier_never_hangs() {
        let keys = Arc::new(keys());
        let metrics = Metrics::new(0);
        let config = BatchConfig {
            threads: 1,
            max_batch: 1,
            queue: 1000,
        };
        let verifier =
            Arc::new(BatchVerifier::start(config, metrics.signatures().clone()).expect("start"));
        let rt = runtime();
        let waiting: Vec<_> = (0..200)
            .map(|n| {
                let (keys, verifier) = (Arc::clone(&keys), Arc::clone(&verifier));
                rt.spawn(async move { verifier.verify(keys.signed(0, &keys.envelope(0, n))).await })
            })
            .collect();
        verifier.shutdown();
        rt.block_on(async {
            for task in waiting {
                let answer = tokio::time::timeout(std::time::Duration::from_secs(10), task)
                    .await
                    .expect("answered, not hung")
                    .expect("task");
                // Checked before the shutdown, or told it stopped.
                assert!(
                    matches!(answer, Ok(_) | Err(CheckError::Stopped)),
                    "{answer:?}"
                );
            }
        });
        // The last reference: joins the thread.
        drop(Arc::try_unwrap(verifier).expect("no task holds it"));
    }
}

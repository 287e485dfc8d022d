//! A load run against a running gateway: many agencies' clients, each on its
//! own keep-alive mutual-TLS connection, submitting pre-signed `record.send`
//! envelopes as fast as their receipts come back; then the raw ES256 verify
//! rate of this machine, measured in the same process, for comparison.
//!
//! ```text
//! xgate serve --data-dir /tmp/load-data --listen 127.0.0.1:8443 &
//! cargo run --release -p xgate --example load -- https://127.0.0.1:8443 /tmp/load-data/pki [CONNECTIONS] [SECONDS] [h1|h2]
//! ```
//!
//! Prints one JSON line: exchanges/s, latency percentiles (each a durable,
//! receipted exchange), errors by status, and the verify rates. `xgate
//! bench` (a later issue) grows out of this.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate::registry::AgencyId;

const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "https://127.0.0.1:8443".into());
    let pki = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "xgate-data/pki".into()),
    );
    let connections: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    let protocol = match args.get(5).map(String::as_str) {
        Some("h2") => Protocol::Auto,
        _ => Protocol::Http1,
    };

    // Pre-sign more envelopes than the run can use, so signing is not
    // measured: a generous 20,000 per second of run, spread over agencies.
    let total = 20_000 * seconds as usize;
    eprintln!("signing {total} envelopes...");
    let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
    let signers: Vec<EnvelopeSigner> = ids
        .iter()
        .map(|id| EnvelopeSigner::for_agency(&pki, id).expect("signer"))
        .collect();
    let per_agency: Vec<Arc<Mutex<Vec<String>>>> = (0..ids.len())
        .map(|a| {
            let n = total / ids.len();
            let to = &ids[(a + 1) % ids.len()];
            let body = match json!({"record": "load run", "pages": 1}) {
                serde_json::Value::Object(m) => m,
                _ => unreachable!(),
            };
            let envelopes = (0..n)
                .map(|_| {
                    signers[a]
                        .sign(to, "record.send", body.clone(), 290, None)
                        .expect("sign")
                })
                .collect();
            Arc::new(Mutex::new(envelopes))
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(total)));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..connections {
            let a = c % ids.len();
            let mut client = Client::for_agency(&pki, &ids[a], &url, protocol).expect("client");
            let queue = Arc::clone(&per_agency[a]);
            let (latencies, errors, done) = (
                Arc::clone(&latencies),
                Arc::clone(&errors),
                Arc::clone(&done),
            );
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    let Some(jws) = queue.lock().expect("queue").pop() else {
                        break;
                    };
                    let t = Instant::now();
                    let reply = client.submit(jws).await;
                    match reply {
                        Ok(r) if r.status == StatusCode::CREATED => {
                            mine.push(t.elapsed().as_micros() as u64);
                        }
                        Ok(r) => {
                            *errors
                                .lock()
                                .expect("errors")
                                .entry(r.status.to_string())
                                .or_default() += 1
                        }
                        Err(e) => {
                            *errors
                                .lock()
                                .expect("errors")
                                .entry(e.to_string())
                                .or_default() += 1
                        }
                    }
                }
                done.fetch_add(mine.len(), Ordering::Relaxed);
                latencies.lock().expect("latencies").extend(mine);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().expect("latencies").clone();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let (verify_1, verify_2) = verify_rates(&pki, &ids[0], &signers[0]);
    println!(
        "{}",
        json!({
            "connections": connections,
            "protocol": if protocol == Protocol::Auto { "h2" } else { "http/1.1" },
            "seconds": elapsed,
            "exchanges": lat.len(),
            "exchanges_per_s": lat.len() as f64 / elapsed,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "errors": *errors.lock().expect("errors"),
            "es256_verify_per_s_1_thread": verify_1,
            "es256_verify_per_s_2_threads": verify_2,
            "exchanges_per_verify_ceiling_2_threads": lat.len() as f64 / elapsed / verify_2,
        })
    );
}

/// ES256 verifications per second with josekit (the gateway's own
/// verifier), on one thread and on two.
fn verify_rates(pki: &std::path::Path, id: &AgencyId, signer: &EnvelopeSigner) -> (f64, f64) {
    let registry = xgate::registry::Registry::load(&pki.join("registry.toml")).expect("registry");
    let jwk = josekit::jwk::Jwk::from_map(registry.get(id).expect("agency").signing_key.clone())
        .expect("jwk");
    let verifier = Arc::new(
        josekit::jws::ES256
            .verifier_from_jwk(&jwk)
            .expect("verifier"),
    );
    let jws = signer
        .sign(
            &"treasury".parse().expect("id"),
            "record.send",
            serde_json::Map::new(),
            60,
            None,
        )
        .expect("sign");
    let run = |threads: usize| {
        let n = 4000;
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (verifier, jws) = (Arc::clone(&verifier), jws.clone());
                s.spawn(move || {
                    for _ in 0..n {
                        josekit::jws::deserialize_compact(&jws, &*verifier).expect("verifies");
                    }
                });
            }
        });
        (n * threads) as f64 / t.elapsed().as_secs_f64()
    };
    (run(1), run(2))
}

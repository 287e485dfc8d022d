//! A load run of the public tlog-tiles listener: CONNECTIONS anonymous
//! keep-alive HTTPS clients fetch the log's full tiles and entry bundles as
//! fast as it answers, for SECONDS.
//!
//! ```text
//! xgate serve --data-dir /tmp/t-data --listen 127.0.0.1:8443 --public-listen 127.0.0.1:8444 &
//! cargo run --release -p xgate --example tiles_load -- https://127.0.0.1:8444 /tmp/t-data/pki/ca.crt [CONNECTIONS] [SECONDS] [--http2]
//! ```
//!
//! The log's size is read from `/checkpoint` once; each connection then
//! cycles through every full level-0 tile and full entry bundle that size
//! holds (the resources a monitor downloads), starting at a different one,
//! so the files are hot in the page cache and what is measured is the
//! listener: TLS, HTTP, the read and the response.
//!
//! Prints one JSON line: `{"connections","seconds","fetches","per_second",
//! "mib_per_second","latency_ms":{"p50","p99","max"},"errors"}`.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use xgate::client::{Client, Protocol};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let http2 = args.iter().any(|a| a == "--http2");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--http2").collect();
    let url = args.first().ok_or_else(|| {
        anyhow::anyhow!("usage: tiles_load URL CA [CONNECTIONS] [SECONDS] [--http2]")
    })?;
    let ca = std::path::PathBuf::from(args.get(1).ok_or_else(|| anyhow::anyhow!("the CA file"))?);
    let connections: usize = args.get(2).map_or(Ok(16), |a| a.parse())?;
    let seconds: u64 = args.get(3).map_or(Ok(10), |a| a.parse())?;
    let protocol = if http2 {
        Protocol::Auto
    } else {
        Protocol::Http1
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut first = Client::anonymous(&ca, url, protocol)?;
        let reply = first.request(Method::GET, "/checkpoint", None, Vec::new()).await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "no checkpoint: {}", reply.status);
        let note = String::from_utf8(reply.body.to_vec())?;
        let size: u64 = note.lines().nth(1).unwrap_or("0").parse()?;
        let full = size / 256;
        anyhow::ensure!(full > 0, "the log has no full tile yet ({size} entries)");
        let paths: Vec<String> = (0..full)
            .flat_map(|n| [format!("/tile/0/{}", index(n)), format!("/tile/entries/{}", index(n))])
            .collect();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..connections {
            let mut client = Client::anonymous(&ca, url, protocol)?;
            let paths = paths.clone();
            tasks.spawn(async move {
                let mut latency = Histogram::<u64>::new(3).expect("histogram");
                let (mut bytes, mut errors) = (0u64, 0u64);
                let mut i = c;
                while Instant::now() < deadline {
                    let path = &paths[i % paths.len()];
                    i += 1;
                    let sent = Instant::now();
                    match client.request(Method::GET, path, None, Vec::new()).await {
                        Ok(r) if r.status == StatusCode::OK => {
                            bytes += r.body.len() as u64;
                            let _ = latency.record(sent.elapsed().as_micros() as u64);
                        }
                        _ => errors += 1,
                    }
                }
                (latency, bytes, errors)
            });
        }
        let mut latency = Histogram::<u64>::new(3)?;
        let (mut bytes, mut errors) = (0u64, 0u64);
        while let Some(done) = tasks.join_next().await {
            let (l, b, e) = done?;
            latency.add(&l)?;
            bytes += b;
            errors += e;
        }
        let secs = started.elapsed().as_secs_f64();
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{}",
            serde_json::json!({
                "connections": connections,
                "http2": http2,
                "seconds": secs,
                "fetches": latency.len(),
                "per_second": latency.len() as f64 / secs,
                "mib_per_second": bytes as f64 / secs / (1 << 20) as f64,
                "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": latency.max() as f64 / 1000.0},
                "errors": errors,
            })
        );
        Ok(())
    })
}

/// `<N>` of a tlog-tiles path.
fn index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

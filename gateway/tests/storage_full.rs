//! A real full disk: the gateway's data directory on a small tmpfs, filled
//! until commits are refused. While space is short every envelope gets 503
//! `storage_unavailable` at once (no hang, nothing acknowledged that is not
//! durable); once space is freed the gateway accepts again by itself; and
//! afterwards the log verifies and holds every acknowledged envelope.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); where the machine does not allow
//! it the test says so and passes without running.

mod federation;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use xgate_server::receipt::Receipt;

use federation::{error_code, get_json, id, make_pki, runtime, xgate};
use xgate_tests::Gateway;

/// A tmpfs mounted for the test, unmounted when dropped (also on panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_refused_cleanly_and_the_gateway_recovers_when_space_returns() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(disk) = Tmpfs::mount(&root.path().join("disk"), "64m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    };
    let pki = root.path().join("pki");
    make_pki(&pki, &["state", "treasury", "gsa"]);
    let pki_arg = pki.display().to_string();
    let data = disk.0.join("data");
    let env = [("XGATE_MIN_FREE_BYTES", "4194304")];
    let gateway = Gateway::start(
        env!("CARGO_BIN_EXE_xgate"),
        &data,
        &["--pki", &pki_arg],
        &env,
    );
    // Leave about 10 MiB free once the gateway has made its files (the
    // journal's first segment and the one prepared ahead, 8 MiB each),
    // then send 200 KB records into it.
    std::thread::sleep(Duration::from_millis(500));
    let stat = rustix::fs::statvfs(&disk.0).expect("statvfs");
    let free = stat.f_bavail * stat.f_frsize;
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; (free - (10 << 20)) as usize]).expect("filler");
    let signer = xgate::client::EnvelopeSigner::for_agency(&pki, &id("state")).expect("signer");
    let mut client = xgate::client::Client::for_agency(
        &pki,
        &id("state"),
        gateway.url(),
        xgate::client::Protocol::Http1,
    )
    .expect("client");
    let big = match json!({"record": "x".repeat(200_000)}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let rt = runtime();
    let mut acked: Vec<Receipt> = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let jws = signer
            .sign(&id("treasury"), "record.send", big.clone(), 60, None)
            .expect("sign");
        let started = Instant::now();
        let reply = rt.block_on(client.submit(jws)).expect("a response");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a commit hung on the full disk"
        );
        match reply.status {
            StatusCode::CREATED => {
                acked.push(serde_json::from_slice(&reply.body).expect("receipt"))
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(error_code(&reply), "storage_unavailable");
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
            other => panic!(
                "unexpected {other}: {}",
                String::from_utf8_lossy(&reply.body)
            ),
        }
    }
    assert!(
        refused == 5,
        "the disk never filled ({} acknowledged)",
        acked.len()
    );
    assert!(
        !acked.is_empty(),
        "nothing was accepted before the disk filled"
    );
    // Space returns: the very next envelope is accepted.
    std::fs::remove_file(&filler).expect("free space");
    let jws = signer
        .sign(&id("treasury"), "record.send", big, 60, None)
        .expect("sign");
    let reply = rt.block_on(client.submit(jws)).expect("a response");
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    acked.push(serde_json::from_slice(&reply.body).expect("receipt"));
    assert_eq!(gateway.stop(), Some(0));
    let out = xgate()
        .run(
            &["log", "verify", "--data-dir", &data.display().to_string()],
            b"",
        )
        .expect_ok();
    assert!(out.starts_with("ok: "), "{out}");
    // Every acknowledged envelope is in the log, at its index.
    let gateway = Gateway::start(
        env!("CARGO_BIN_EXE_xgate"),
        &data,
        &["--pki", &pki_arg],
        &[],
    );
    let mut reader = xgate::client::Client::for_agency(
        &pki,
        &id("state"),
        gateway.url(),
        xgate::client::Protocol::Http1,
    )
    .expect("client");
    for receipt in &acked {
        let entry = rt.block_on(get_json(
            &mut reader,
            &format!("/v1/log/entries/{}", receipt.log_index),
            StatusCode::OK,
        ));
        assert_eq!(entry["leaf_hash"], receipt.leaf_hash.as_str());
    }
    assert_eq!(gateway.stop(), Some(0));
    drop(disk);
}

//! The auditor's page's verifier (`gateway/web/tlog.js`) against its own
//! tests (`gateway/web/tlog.test.mjs`: RFC 9162 proofs, signed notes,
//! cosignatures, tiles and receipts made by the real binary, and every
//! single-byte flip refused), run by Node 20 or newer when it is
//! installed. The page's behaviour in a browser is `auditor_page.rs`'s.

use std::path::Path;
use std::process::Command;

/// Node's major version, if `node` runs.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_verifier_passes_its_own_tests_under_node() {
    match node_major() {
        Some(major) if major >= 20 => {}
        found => {
            eprintln!(
                "web verifier tests skipped: they need Node 20 or newer (found {found:?}); \
                 the browser test covers the verifier in Chromium"
            );
            return;
        }
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let out = Command::new("node")
        .arg("--test")
        .arg(&web)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node --test {}:\n{}\n{}",
        web.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

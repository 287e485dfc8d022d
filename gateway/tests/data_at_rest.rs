//! Data at rest is the gateway's user's alone: a real gateway started on a
//! fresh data directory and exercised (records, inbox reads and acks, a
//! medical request, an asset, more than a tile of entries, a reload, a
//! clean stop) leaves every directory in it 0700 and every file 0600; a
//! directory an earlier version left readable is narrowed at start; a
//! symlink planted where a temporary file used to be written is never
//! written through; and `xgate medical open --out` writes the decrypted
//! bundle 0600, replacing a file or symlink rather than writing into it.

mod federation;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use http::StatusCode;
use serde_json::{Value, json};
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate_server::registry::Registry;
use xgate_tests::Gateway;

use federation::assets::federation;
use federation::{Federation, body, id, runtime, submit, xgate};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every path under `dir`, `dir` included, without following symlinks.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    if std::fs::symlink_metadata(dir).expect("metadata").is_dir() {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            all.extend(walk(&entry.expect("entry").path()));
        }
    }
    all
}

/// `xgate serve` on `data`, with nothing else given: the development PKI
/// and the default policy are created inside it.
fn serve(data: &Path) -> Gateway {
    Gateway::start(
        env!("CARGO_BIN_EXE_xgate"),
        data,
        &[],
        &[("XGATE_LOG", "info")],
    )
}

struct Agency {
    client: Client,
    signer: EnvelopeSigner,
}

fn agency(pki: &Path, gateway: &Gateway, name: &str) -> Agency {
    Agency {
        client: Client::for_agency(pki, &id(name), gateway.url(), Protocol::Auto).expect("client"),
        signer: EnvelopeSigner::for_agency(pki, &id(name)).expect("signer"),
    }
}

impl Agency {
    async fn send(&mut self, to: &str, kind: &str, body: Value) {
        let Value::Object(body) = body else {
            panic!("a body is an object")
        };
        let jws = self
            .signer
            .sign(&id(to), kind, body, 60, None)
            .expect("sign");
        let reply = submit(&mut self.client, &jws).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{kind}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
}

#[test]
fn every_directory_and_file_of_a_new_data_dir_is_private() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let gateway = serve(&data);
    let pki = data.join("pki");
    let registry = Registry::load(&pki.join("registry.toml")).expect("registry");
    let kid = registry
        .get(&id("state"))
        .and_then(|a| a.encryption_key.get("kid"))
        .cloned()
        .expect("kid");
    let mut state = agency(&pki, &gateway, "state");
    let mut treasury = agency(&pki, &gateway, "treasury");
    runtime().block_on(async {
        // More than a tile (256 entries), so the tile files exist.
        for n in 0..300 {
            let record = Value::Object(body(&format!("record {n}")));
            state.send("treasury", "record.send", record).await;
        }
        let request = json!({"subject": "hhs-mrn-1", "purpose": "ETREAT", "incident": "I-1",
            "responder": {"name": "Dr. Example", "role": "medical-officer"},
            "sections": ["allergies"], "reply_key": kid});
        state.send("hhs", "medical.request", request).await;
        let asset = federation::assets::register_body("STATE-LAPTOP-1", "state", "p-1", "hq");
        state.send("state", "asset.register", asset).await;
        federation::ack_first_page(&mut treasury.client, 100).await;
    });
    gateway.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(gateway.stop(), Some(0));

    let all = walk(&data);
    for expected in [
        "db",
        "ledger/journal",
        "ledger/checkpoints",
        "ledger/kept",
        "log/tile/0/000",
        "log/tile/entries/000",
        "log/checkpoint",
        "checkpoint",
        "checkpoint.key",
        "policy.toml",
    ] {
        assert!(all.contains(&data.join(expected)), "{expected} exists");
    }
    assert!(all.contains(&pki.join("state/tls.key")));
    let served = data.join("log");
    for path in all {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        // The tlog-tiles tree is made to be served or copied: readable
        // (inside the private data directory), its files immutable.
        let want = match (path.starts_with(&served), meta.is_dir()) {
            (true, true) => 0o755,
            (true, false) if path == served.join("checkpoint") => 0o644,
            (true, false) => 0o444,
            (false, true) => 0o700,
            (false, false) => 0o600,
        };
        assert!(!meta.file_type().is_symlink(), "{}", path.display());
        assert_eq!(mode(&path), want, "{} is {:o}", path.display(), mode(&path));
    }
}

#[test]
fn an_old_data_dir_is_narrowed_and_planted_symlinks_are_not_followed() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let stray = data.join("notes.txt");
    std::fs::write(&stray, b"operator notes").expect("write");
    std::fs::set_permissions(&stray, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"untouched").expect("write");
    // Where earlier versions wrote the key and the checkpoint copy first.
    for name in ["checkpoint.tmp", "checkpoint.key.tmp"] {
        std::os::unix::fs::symlink(&victim, data.join(name)).expect("symlink");
    }

    let gateway = serve(&data);
    let pki = data.join("pki");
    let mut state = agency(&pki, &gateway, "state");
    runtime().block_on(state.send("treasury", "record.send", Value::Object(body("hello"))));
    assert_eq!(gateway.stop(), Some(0));

    assert_eq!(std::fs::read(&victim).expect("read"), b"untouched");
    for file in ["checkpoint.key", "checkpoint"] {
        let meta = std::fs::symlink_metadata(data.join(file)).expect("metadata");
        assert!(meta.is_file(), "{file} is a file of its own");
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&stray), 0o600, "narrowed at start");

    // A revocation replaces the CRL the same way, keeping its mode.
    let crl = pki.join("crl.pem");
    let before = mode(&crl);
    std::os::unix::fs::symlink(&victim, pki.join(".crl.pem.tmp")).expect("symlink");
    let pki_arg = pki.display().to_string();
    xgate()
        .run(
            &["certs", "revoke", "--dir", &pki_arg, "--agency", "gsa"],
            b"",
        )
        .expect_ok();
    assert_eq!(std::fs::read(&victim).expect("read"), b"untouched");
    assert!(std::fs::symlink_metadata(&crl).expect("crl").is_file());
    assert_eq!(mode(&crl), before);
}

/// Runs `xgate medical ARGS` as `agency`; the first line it printed, as JSON.
fn medical(fed: &Federation, agency: &str, args: &[&str]) -> Value {
    let pki = fed.pki().display().to_string();
    let mut all = vec!["medical", args[0], "--pki", &pki, "--as", agency];
    all.extend(["--gateway", fed.gateway.url()]);
    all.extend_from_slice(&args[1..]);
    let out = xgate().run(&all, b"").expect_ok();
    serde_json::from_str(out.lines().next().expect("a line")).expect("JSON")
}

#[test]
fn medical_open_writes_the_bundle_readable_by_its_user_only() {
    let fed = federation(&[]);
    let request = medical(
        &fed,
        "state",
        &[
            "request",
            "--to",
            "hhs",
            "--subject",
            "hhs-mrn-000123",
            "--purpose",
            "ETREAT",
            "--incident",
            "INC-1",
            "--responder",
            "Dr. Casey Example",
            "--role",
            "medical-officer",
            "--section",
            "allergies",
        ],
    );
    let jti = request["jti"].as_str().expect("jti");
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ips/ips-avery.json");
    let bundle_arg = bundle.display().to_string();
    let answered = medical(
        &fed,
        "hhs",
        &["respond", "--request", jti, "--bundle", &bundle_arg],
    );
    let response = answered["response"].as_u64().expect("response").to_string();

    let dir = tempfile::tempdir().expect("tempdir");
    // An existing file others could read: replaced by a private one.
    let out = dir.path().join("bundle.json");
    std::fs::write(&out, b"old").expect("write");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out_arg = out.display().to_string();
    medical(
        &fed,
        "state",
        &["open", "--response", &response, "--out", &out_arg],
    );
    assert_eq!(
        std::fs::read(&out).expect("read"),
        std::fs::read(&bundle).expect("fixture")
    );
    assert_eq!(mode(&out), 0o600);

    // A symlink there is replaced, not written through.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"untouched").expect("write");
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let link_arg = link.display().to_string();
    medical(
        &fed,
        "state",
        &["open", "--response", &response, "--out", &link_arg],
    );
    assert_eq!(std::fs::read(&victim).expect("read"), b"untouched");
    assert!(std::fs::symlink_metadata(&link).expect("meta").is_file());
    assert_eq!(mode(&link), 0o600);
    // Nothing but the two outputs and the victim is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 3);
}

//! The `xgate certs` contract, end to end against the real binary: the exact
//! files of a PKI directory, private keys readable by their owner only,
//! certificates, CRL and JOSE keys that an independent implementation
//! (the `openssl` command) and the JOSE library accept, and revocation.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use josekit::jwk::Jwk;
use xgate_server::registry::Registry;
use xgate_tests::Xgate;

fn xgate() -> Xgate {
    Xgate::new(env!("CARGO_BIN_EXE_xgate"))
}

fn init(dir: &Path, agencies: &[&str]) -> String {
    let mut args = vec!["certs".to_owned(), "init".into(), "--dir".into()];
    args.push(dir.display().to_string());
    for a in agencies {
        args.push("--agency".into());
        args.push((*a).to_owned());
    }
    xgate().run(&args, b"").expect_ok()
}

/// `openssl verify` of an agency certificate against the CA and the CRL.
fn openssl_verify(dir: &Path, agency: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.join("ca.crt"))
        .arg("-crl_check")
        .arg("-CRLfile")
        .arg(dir.join("crl.pem"))
        .arg(dir.join(agency).join("tls.crt"))
        .output()
        .expect("run openssl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn openssl_text(file: &Path, what: &str) -> String {
    let out = Command::new("openssl")
        .args([what, "-noout", "-text", "-in"])
        .arg(file)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {what} {}", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn init_writes_every_file_of_the_contract_with_private_keys_0600() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let out = init(&dir, &["state", "treasury"]);
    assert!(out.contains("state, treasury"), "{out}");
    let private = [
        "ca.key",
        "gateway/tls.key",
        "state/tls.key",
        "state/signing.jwk",
        "state/encryption.jwk",
        "treasury/tls.key",
        "treasury/signing.jwk",
        "treasury/encryption.jwk",
    ];
    let public = [
        "ca.crt",
        "crl.pem",
        "registry.toml",
        "gateway/tls.crt",
        "state/tls.crt",
        "treasury/tls.crt",
    ];
    for f in private {
        let mode = std::fs::metadata(dir.join(f))
            .expect(f)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    for f in public {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected = [
        "ca.crt",
        "ca.key",
        "crl.pem",
        "gateway",
        "registry.toml",
        "state",
        "treasury",
    ];
    assert_eq!(names, expected);
}

#[test]
fn certificates_and_the_empty_crl_verify_with_openssl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    init(&dir, &["state"]);
    let (ok, text) = openssl_verify(&dir, "state");
    assert!(ok, "{text}");
    let (ok, text) = openssl_verify(&dir, "gateway");
    assert!(ok, "{text}");

    let agency = openssl_text(&dir.join("state/tls.crt"), "x509");
    assert!(agency.contains("URI:urn:xgate:agency:state"), "{agency}");
    assert!(
        agency.contains("TLS Web Client Authentication")
            && agency.contains("TLS Web Server Authentication"),
        "{agency}"
    );
    let gateway = openssl_text(&dir.join("gateway/tls.crt"), "x509");
    assert!(gateway.contains("DNS:localhost"), "{gateway}");
    assert!(gateway.contains("IP Address:127.0.0.1"), "{gateway}");
    let crl = openssl_text(&dir.join("crl.pem"), "crl");
    assert!(crl.contains("No Revoked Certificates"), "{crl}");
}

#[test]
fn jwks_are_private_es256_and_ecdh_keys_whose_public_halves_are_registered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    init(&dir, &["state", "gsa"]);
    let registry = Registry::load(&dir.join("registry.toml")).expect("registry loads");
    assert_eq!(registry.len(), 2);
    let state = registry.get(&"state".parse().expect("id")).expect("state");
    assert_eq!(state.name, "Department of State");
    assert_eq!(state.certificate.uri, "urn:xgate:agency:state");
    let der_fp = {
        let pem = std::fs::read(dir.join("state/tls.crt")).expect("cert");
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(&pem)?;
                c.wait_with_output()
            })
            .expect("openssl fingerprint");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.trim()
            .rsplit('=')
            .next()
            .expect("fingerprint")
            .replace(':', "")
            .to_lowercase()
    };
    assert_eq!(state.certificate.sha256.as_deref(), Some(der_fp.as_str()));

    let signing = Jwk::from_bytes(std::fs::read(dir.join("state/signing.jwk")).expect("jwk"))
        .expect("signing.jwk parses");
    assert_eq!(signing.key_use(), Some("sig"));
    assert_eq!(signing.algorithm(), Some("ES256"));
    assert!(
        signing.parameter("d").is_some(),
        "signing.jwk is the private key"
    );
    assert_eq!(
        signing.key_id(),
        state.signing_key.get("kid").and_then(|v| v.as_str())
    );
    assert!(
        !state.signing_key.contains_key("d"),
        "registry holds public keys only"
    );
    // What the private key signs, the registered public key verifies.
    let signer = josekit::jws::ES256
        .signer_from_jwk(&signing)
        .expect("signer");
    let public = Jwk::from_map(state.signing_key.clone()).expect("public jwk");
    let verifier = josekit::jws::ES256
        .verifier_from_jwk(&public)
        .expect("verifier");
    let mut header = josekit::jws::JwsHeader::new();
    header.set_token_type("xgate-envelope+jwt");
    let jws = josekit::jws::serialize_compact(b"{}", &header, &signer).expect("sign");
    josekit::jws::deserialize_compact(&jws, &verifier).expect("verifies");

    let encryption = Jwk::from_bytes(std::fs::read(dir.join("state/encryption.jwk")).expect("jwk"))
        .expect("encryption.jwk parses");
    assert_eq!(encryption.key_use(), Some("enc"));
    assert_eq!(encryption.algorithm(), Some("ECDH-ES+A256KW"));
    assert_ne!(encryption.key_id(), signing.key_id());
}

#[test]
fn revoke_puts_the_certificate_on_the_crl_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    init(&dir, &["state", "gsa"]);
    let out = xgate()
        .run(
            &[
                "certs",
                "revoke",
                "--dir",
                &dir.display().to_string(),
                "--agency",
                "gsa",
            ],
            b"",
        )
        .expect_ok();
    assert!(out.contains("revoked the TLS certificate of gsa"), "{out}");
    assert!(out.contains("CRL number 2"), "{out}");
    let (ok, text) = openssl_verify(&dir, "gsa");
    assert!(!ok && text.contains("revoked"), "{text}");
    let (ok, text) = openssl_verify(&dir, "state");
    assert!(ok, "only gsa is revoked: {text}");

    let again = xgate()
        .run(
            &[
                "certs",
                "revoke",
                "--dir",
                &dir.display().to_string(),
                "--agency",
                "gsa",
            ],
            b"",
        )
        .expect_ok();
    assert!(again.contains("already revoked"), "{again}");
    let crl = openssl_text(&dir.join("crl.pem"), "crl");
    assert_eq!(crl.matches("Serial Number:").count(), 1, "{crl}");
}

fn certs(args: &[&str], dir: &Path) -> xgate_tests::Run {
    let dir = dir.display().to_string();
    let mut all = vec!["certs", args[0], "--dir", &dir];
    all.extend_from_slice(&args[1..]);
    xgate().run(&all, b"")
}

#[test]
fn crl_reissues_the_list_under_the_next_number() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    init(&dir, &["state", "gsa"]);
    certs(&["revoke", "--agency", "gsa"], &dir).expect_ok();
    let out = certs(&["crl"], &dir).expect_ok();
    assert!(out.contains("issued CRL number 3"), "{out}");
    let crl = openssl_text(&dir.join("crl.pem"), "crl");
    assert!(crl.contains("X509v3 CRL Number"), "{crl}");
    assert!(crl.contains("Next Update"), "{crl}");
    assert_eq!(crl.matches("Serial Number:").count(), 1, "{crl}");
    let (ok, text) = openssl_verify(&dir, "gsa");
    assert!(!ok && text.contains("revoked"), "still revoked: {text}");
    let (ok, text) = openssl_verify(&dir, "state");
    assert!(ok, "{text}");
}

#[test]
fn revoke_and_crl_never_sign_over_a_crl_the_ca_did_not_issue() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    init(&dir, &["state", "gsa"]);
    certs(&["revoke", "--agency", "gsa"], &dir).expect_ok();
    // A forger's list naming the CA as issuer, with gsa taken off and a
    // higher number: re-signing it would launder it with the CA's key.
    let ca = std::fs::read_to_string(dir.join("ca.crt")).expect("CA");
    let forger = rcgen::KeyPair::generate().expect("key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca, forger).expect("issuer");
    let now = time::OffsetDateTime::now_utc();
    let forged = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(30),
        crl_number: rcgen::SerialNumber::from_slice(&[9]),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .expect("sign")
    .pem()
    .expect("PEM");
    for content in [forged.as_str(), "", "garbage\n"] {
        std::fs::write(dir.join("crl.pem"), content).expect("write");
        for args in [&["revoke", "--agency", "state"][..], &["crl"][..]] {
            let message = certs(args, &dir).expect_error(1);
            assert!(message.contains("crl.pem"), "{args:?}: {message}");
            assert!(
                message.contains("refusing to build on it"),
                "{args:?}: {message}"
            );
            let after = std::fs::read_to_string(dir.join("crl.pem")).expect("read");
            assert_eq!(after, content, "{args:?} left crl.pem alone");
        }
    }
}

#[test]
fn init_refuses_an_existing_directory_unless_forced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    init(&dir, &["state"]);
    let before = std::fs::read(dir.join("ca.crt")).expect("ca");
    let d = dir.display().to_string();
    let msg = xgate()
        .run(&["certs", "init", "--dir", &d, "--agency", "gsa"], b"")
        .expect_error(1);
    assert!(
        msg.contains("already exists") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(dir.join("ca.crt")).expect("ca"),
        before,
        "unchanged"
    );
    assert!(!dir.join("gsa").exists());

    xgate()
        .run(
            &["certs", "init", "--dir", &d, "--agency", "gsa", "--force"],
            b"",
        )
        .expect_ok();
    assert_ne!(
        std::fs::read(dir.join("ca.crt")).expect("ca"),
        before,
        "replaced"
    );
    assert!(dir.join("gsa/tls.crt").is_file() && !dir.join("state").exists());
}

#[test]
fn bad_certs_arguments_get_one_clear_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let d = dir.display().to_string();
    let msg = xgate()
        .run(&["certs", "init", "--dir", &d, "--agency", "Bad_Id"], b"")
        .expect_error(2);
    assert!(msg.contains("invalid agency id"), "{msg}");
    let msg = xgate()
        .run(&["certs", "init", "--dir", &d], b"")
        .expect_error(2);
    assert!(msg.contains("--agency"), "{msg}");
    let msg = xgate()
        .run(
            &[
                "certs", "init", "--dir", &d, "--agency", "a", "--agency", "a",
            ],
            b"",
        )
        .expect_error(1);
    assert!(msg.contains("named twice"), "{msg}");
    assert!(!dir.exists(), "nothing created");

    init(&dir, &["state"]);
    let msg = xgate()
        .run(&["certs", "revoke", "--dir", &d, "--agency", "nasa"], b"")
        .expect_error(1);
    assert!(msg.contains("no agency nasa"), "{msg}");
    let (ok, _) = openssl_verify(&dir, "state");
    assert!(ok, "CRL untouched");
}

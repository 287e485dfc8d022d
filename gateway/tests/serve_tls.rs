//! Mutual TLS, end to end: connections without a client certificate, with
//! one from another CA, with an expired one and with a revoked one are all
//! refused at the handshake; a revocation reaches a running gateway through
//! SIGHUP and through polling, and also stops connections already open.

mod federation;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use federation::{Federation, body, error_code, id, make_pki, runtime, submit, xgate};
use http::StatusCode;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xgate::client::{Client, Protocol};

/// Whether an HTTP/1.1 request over a connection made with `client` gets
/// any response at all (a refused handshake ends in a TLS alert).
fn answered(client: &mut Client) -> bool {
    let rt = runtime();
    rt.block_on(client.request(http::Method::GET, "/v1/inbox", None, Vec::new()))
        .is_ok()
}

#[test]
fn a_connection_without_a_client_certificate_is_refused() {
    let fed = Federation::start();
    let rt = runtime();
    let ca = fed.pki().join("ca.crt");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(&ca).expect("ca") {
        roots.add(c.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(xgate_server::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = fed.gateway.url().trim_start_matches("https://").to_owned();
    let outcome = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let mut tls = match tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
        {
            Ok(t) => t,
            Err(_) => return None,
        };
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if tls.write_all(request).await.is_err() {
            return None;
        }
        let mut response = Vec::new();
        match tls.read_to_end(&mut response).await {
            Ok(_) if !response.is_empty() => Some(response),
            _ => None,
        }
    });
    assert!(
        outcome.is_none(),
        "no HTTP answer without a client certificate"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let fed = Federation::start();
    let other = tempfile::tempdir().expect("tempdir");
    make_pki(&other.path().join("pki"), &["state"]);
    let home = other.path().join("pki/state");
    let mut client = Client::new(
        &fed.pki().join("ca.crt"),
        &home.join("tls.crt"),
        &home.join("tls.key"),
        fed.gateway.url(),
        Protocol::Http1,
    )
    .expect("client");
    assert!(!answered(&mut client));
    // The genuine certificate gets an answer.
    assert!(answered(&mut fed.client_with("state", Protocol::Http1)));
}

#[test]
fn an_expired_certificate_is_refused() {
    let fed = Federation::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = expired_state_certificate(&fed.pki(), dir.path());
    let mut client = Client::new(
        &fed.pki().join("ca.crt"),
        &cert,
        &key,
        fed.gateway.url(),
        Protocol::Http1,
    )
    .expect("client");
    assert!(!answered(&mut client));
}

#[test]
fn a_revocation_applies_on_sighup_to_new_and_open_connections() {
    // Polling is made too slow to matter here: only the signal can do it.
    let fed = Federation::start_with(&[], &[("XGATE_CRL_POLL_SECS", "3600")]);
    let rt = runtime();
    let pki = fed.pki().display().to_string();
    // A connection gsa opens before the revocation, driven by `rt` (whose
    // tasks keep it alive) throughout.
    let mut open_gsa = fed.client_with("gsa", Protocol::Http1);
    let first = rt.block_on(open_gsa.request(http::Method::GET, "/v1/inbox", None, Vec::new()));
    assert_eq!(first.expect("answered").status, StatusCode::OK);

    xgate()
        .run(&["certs", "revoke", "--dir", &pki, "--agency", "gsa"], b"")
        .expect_ok();
    fed.gateway.signal("HUP");
    let refused = wait_until(|| !answered(&mut fed.client_with("gsa", Protocol::Http1)));
    assert!(refused, "gsa's new connections are refused");
    let jws = fed
        .signer("gsa")
        .sign(&id("state"), "record.send", body("x"), 60, None)
        .expect("sign");
    let reply = rt.block_on(submit(&mut open_gsa, &jws));
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "the open connection is cut off"
    );
    assert_eq!(error_code(&reply), "unknown_agency");
    assert!(answered(&mut fed.client_with("state", Protocol::Http1)));
}

#[test]
fn a_revocation_is_picked_up_by_polling_the_crl_file() {
    let fed = Federation::start_with(&[], &[("XGATE_CRL_POLL_SECS", "1")]);
    let pki = fed.pki().display().to_string();
    assert!(answered(&mut fed.client_with("treasury", Protocol::Http1)));
    xgate()
        .run(
            &["certs", "revoke", "--dir", &pki, "--agency", "treasury"],
            b"",
        )
        .expect_ok();
    let refused = wait_until(|| !answered(&mut fed.client_with("treasury", Protocol::Http1)));
    assert!(refused, "treasury refused once the CRL file is polled");
    assert!(answered(&mut fed.client_with("state", Protocol::Http1)));
    assert!(fed.gateway.log_output().contains("CRL reloaded"));
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A certificate for state, signed by the federation CA, that expired
/// yesterday; returns the certificate and key paths.
fn expired_state_certificate(pki: &Path, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).expect("ca key"))
        .expect("ca key");
    let ca_pem = std::fs::read_to_string(pki.join("ca.crt")).expect("ca cert");
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "state");
    params.subject_alt_names = vec![SanType::URI(
        "urn:xgate:agency:state".try_into().expect("uri"),
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let (cert_path, key_path) = (dir.join("expired.crt"), dir.join("expired.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

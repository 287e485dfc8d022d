//! Revocation fails closed, end to end: a CRL file the gateway cannot
//! trust (empty, garbage, no CRL in it, signed by another key, an older or
//! reissued number) never lifts a revocation, is logged and counted; a
//! stale CRL raises the alarm and, with `crl_strict`, refuses every
//! client until a fresh one is installed; `xgate serve` does not start
//! without a CRL it can trust.

mod federation;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use federation::{Federation, error_code, make_pki, metric, runtime, xgate};
use http::{Method, StatusCode};
use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use xgate::client::{Client, Protocol};

const FAILURES: &str = "xgate_crl_reload_failures_total";
const FILE_REFUSED: &str = "xgate_crl_file_refused";
const STALE: &str = "xgate_crl_stale";
const NUMBER: &str = "xgate_crl_number";

/// Whether an HTTP/1.1 request over a new connection made with `client`
/// gets any response at all (a refused handshake ends in a TLS alert).
fn answered(client: &mut Client) -> bool {
    runtime()
        .block_on(client.request(Method::GET, "/v1/inbox", None, Vec::new()))
        .is_ok()
}

/// A metric as state reads it from `/metrics` on a connection of its own.
fn read_metric(fed: &Federation, series: &str) -> Option<f64> {
    runtime().block_on(metric(
        &mut fed.client_with("state", Protocol::Http1),
        series,
    ))
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Replaces `crl.pem` at once, as `xgate certs revoke` does, so the poll
/// never reads half a file.
fn install(pki: &Path, bytes: &[u8]) {
    let tmp = pki.join(".crl.pem.test");
    std::fs::write(&tmp, bytes).expect("write CRL");
    std::fs::rename(&tmp, pki.join("crl.pem")).expect("install CRL");
}

fn ca_key(pki: &Path) -> KeyPair {
    KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).expect("CA key"))
        .expect("CA key")
}

/// A PEM CRL naming the federation CA as its issuer, signed with `key`
/// (the CA's, or a forger's), numbered `number`, current until
/// `next_update`, revoking `revoked`.
fn crl(
    pki: &Path,
    key: KeyPair,
    number: u64,
    next_update: OffsetDateTime,
    revoked: &[Vec<u8>],
) -> Vec<u8> {
    let ca = std::fs::read_to_string(pki.join("ca.crt")).expect("CA certificate");
    let issuer = Issuer::from_ca_cert_pem(&ca, key).expect("issuer");
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: next_update.min(now) - time::Duration::hours(1),
        next_update,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: now - time::Duration::minutes(1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let signed = params.signed_by(&issuer).expect("sign CRL");
    signed.pem().expect("PEM").into_bytes()
}

fn in_days(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(days)
}

fn revoke(pki: &Path, agency: &str) {
    let dir = pki.display().to_string();
    xgate()
        .run(&["certs", "revoke", "--dir", &dir, "--agency", agency], b"")
        .expect_ok();
}

#[test]
fn a_crl_the_gateway_cannot_trust_keeps_the_revocation_in_force() {
    let fed = Federation::start_with(&[], &[("XGATE_CRL_POLL_SECS", "1")]);
    let rt = runtime();
    let pki = fed.pki();
    let first = std::fs::read(pki.join("crl.pem")).expect("CRL 1");
    // A connection gsa opened before its revocation, kept throughout.
    let mut open_gsa = fed.client_with("gsa", Protocol::Http1);
    let reply = rt.block_on(open_gsa.request(Method::GET, "/v1/inbox", None, Vec::new()));
    assert_eq!(reply.expect("answered").status, StatusCode::OK);

    revoke(&pki, "gsa");
    let revoked = std::fs::read(pki.join("crl.pem")).expect("CRL 2");
    assert!(
        wait_until(|| !answered(&mut fed.client_with("gsa", Protocol::Http1))),
        "gsa refused once CRL 2 is polled"
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an empty file", Vec::new()),
        ("garbage", b"this is not a CRL\n\x00\xff\xfe".to_vec()),
        (
            "a PEM with a certificate and no CRL",
            std::fs::read(pki.join("ca.crt")).expect("CA certificate"),
        ),
        (
            "half of the CRL in force",
            revoked[..revoked.len() / 2].to_vec(),
        ),
        (
            "a CRL naming the CA but signed by another key",
            crl(
                &pki,
                KeyPair::generate().expect("key"),
                99,
                in_days(30),
                &[],
            ),
        ),
        ("the older CRL 1, signed by the CA", first),
        (
            "another CRL numbered 2, signed by the CA",
            crl(&pki, ca_key(&pki), 2, in_days(30), &[]),
        ),
    ];
    for (n, (what, bytes)) in cases.iter().enumerate() {
        install(&pki, bytes);
        // Until the poll has looked at it: counted, or (the old fail-open
        // behaviour) gsa let in again.
        let counted = wait_until(|| {
            read_metric(&fed, FAILURES) == Some((n + 1) as f64)
                || answered(&mut fed.client_with("gsa", Protocol::Http1))
        });
        assert!(
            !answered(&mut fed.client_with("gsa", Protocol::Http1)),
            "{what}: gsa's new connections are still refused"
        );
        assert!(counted, "{what}: refused and counted");
        assert_eq!(
            read_metric(&fed, FAILURES),
            Some((n + 1) as f64),
            "{what}: counted once"
        );
        assert_eq!(read_metric(&fed, FILE_REFUSED), Some(1.0), "{what}");
        assert_eq!(
            read_metric(&fed, NUMBER),
            Some(2.0),
            "{what}: CRL 2 in force"
        );
        let reply = rt
            .block_on(open_gsa.request(Method::GET, "/v1/inbox", None, Vec::new()))
            .expect("answered on the open connection");
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{what}");
        assert_eq!(error_code(&reply), "unknown_agency", "{what}");
        assert!(
            answered(&mut fed.client_with("state", Protocol::Http1)),
            "{what}: state is served"
        );
    }
    let log = fed.gateway.log_output();
    assert_eq!(
        log.matches("CRL refused").count(),
        cases.len(),
        "one error per refused file: {log}"
    );
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains("lower than 2"), "{log}");
    assert!(log.contains("signature does not verify"), "{log}");

    // The CRL in force back in the file clears the flag; nothing reloads.
    install(&pki, &revoked);
    assert!(wait_until(|| read_metric(&fed, FILE_REFUSED) == Some(0.0)));
    assert_eq!(read_metric(&fed, FAILURES), Some(cases.len() as f64));
    // A newer CRL from the CA is taken: revoking another agency.
    revoke(&pki, "treasury");
    assert!(wait_until(|| read_metric(&fed, NUMBER) == Some(3.0)));
    assert!(!answered(&mut fed.client_with("treasury", Protocol::Http1)));
    assert!(!answered(&mut fed.client_with("gsa", Protocol::Http1)));
    assert!(answered(&mut fed.client_with("state", Protocol::Http1)));
}

#[test]
fn a_stale_crl_under_crl_strict_refuses_every_client_until_a_fresh_one() {
    let fed = Federation::start_with(
        &[],
        &[("XGATE_CRL_POLL_SECS", "1"), ("XGATE_CRL_STRICT", "true")],
    );
    let rt = runtime();
    let pki = fed.pki();
    let mut state = fed.client_with("state", Protocol::Http1);
    let reply = rt.block_on(state.request(Method::GET, "/v1/inbox", None, Vec::new()));
    assert_eq!(reply.expect("answered").status, StatusCode::OK);

    // Signed by the CA and newer, so it is taken, but its nextUpdate has
    // passed.
    install(&pki, &crl(&pki, ca_key(&pki), 5, in_days(-1), &[]));
    let alarmed = wait_until(|| read_metric(&fed, STALE) == Some(1.0));
    for agency in ["state", "treasury", "gsa"] {
        let mut client = fed.client_with(agency, Protocol::Http1);
        let reply = rt
            .block_on(client.request(Method::GET, "/v1/inbox", None, Vec::new()))
            .expect("an answer");
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{agency}");
        assert_eq!(error_code(&reply), "crl_stale", "{agency}");
    }
    let reply = rt
        .block_on(state.request(Method::GET, "/v1/inbox", None, Vec::new()))
        .expect("an answer on the open connection");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&reply), "crl_stale");
    let health = rt
        .block_on(state.request(Method::GET, "/healthz", None, Vec::new()))
        .expect("an answer");
    assert_eq!(
        health.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not healthy"
    );
    assert!(alarmed, "alarm raised");
    assert_eq!(read_metric(&fed, NUMBER), Some(5.0));
    let log = fed.gateway.log_output();
    assert!(log.contains("past its nextUpdate"), "{log}");

    // The operator's answer to the alarm: a fresh CRL.
    let dir = pki.display().to_string();
    let out = xgate()
        .run(&["certs", "crl", "--dir", &dir], b"")
        .expect_ok();
    assert!(out.contains("issued CRL number 6"), "{out}");
    assert!(
        wait_until(|| read_metric(&fed, STALE) == Some(0.0)),
        "alarm cleared"
    );
    let reply = rt
        .block_on(state.request(Method::GET, "/v1/inbox", None, Vec::new()))
        .expect("an answer");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(fed.gateway.log_output().contains("the CRL is current"));
}

#[test]
fn a_stale_crl_without_crl_strict_raises_the_alarm_and_serves() {
    let fed = Federation::start_with(&[], &[("XGATE_CRL_POLL_SECS", "1")]);
    let pki = fed.pki();
    install(&pki, &crl(&pki, ca_key(&pki), 5, in_days(-1), &[]));
    assert!(
        wait_until(|| read_metric(&fed, STALE) == Some(1.0)),
        "alarm raised"
    );
    let next_update = read_metric(&fed, "xgate_crl_next_update_seconds").expect("gauge");
    let now = OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(next_update < now - 3600.0, "{next_update} vs {now}");
    assert!(answered(&mut fed.client_with("state", Protocol::Http1)));
    let log = fed.gateway.log_output();
    assert!(
        log.contains("ERROR") && log.contains("past its nextUpdate"),
        "{log}"
    );
}

/// Runs `xgate serve` on `root` and returns its exit code and stderr if it
/// exits within 30 s; a gateway still running then is killed and the test
/// fails.
fn serve_exits(root: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .arg("serve")
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--pki")
        .arg(root.join("pki"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--public-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xgate serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            return (
                status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xgate serve started on a CRL it cannot trust");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_refuses_to_start_without_a_crl_it_can_trust() {
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    make_pki(&pki, &["state"]);
    let good = std::fs::read(pki.join("crl.pem")).expect("CRL");
    let forged = crl(&pki, KeyPair::generate().expect("key"), 9, in_days(30), &[]);
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("a missing CRL", None, "cannot read it"),
        (
            "an empty CRL file",
            Some(Vec::new()),
            "holds no PEM X509 CRL",
        ),
        (
            "garbage",
            Some(b"garbage\n".to_vec()),
            "holds no PEM X509 CRL",
        ),
        (
            "a CRL signed by another key",
            Some(forged),
            "signature does not verify",
        ),
    ];
    for (what, bytes, says) in cases {
        match bytes {
            Some(b) => install(&pki, &b),
            None => std::fs::remove_file(pki.join("crl.pem")).expect("remove CRL"),
        }
        let (code, stderr) = serve_exits(root.path());
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(stderr.contains("crl.pem"), "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
    }
    // The CA's own CRL back: it starts (and is stopped by the harness).
    install(&pki, &good);
    let gateway = federation::start_gateway(root.path(), &[], &[]);
    assert!(gateway.url().starts_with("https://"));
}

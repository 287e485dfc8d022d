//! A federation of gateways is created and started (issue 21), end to end
//! with the real binary: `xgate certs init --gateway ID=URL --agency
//! ID@GATEWAY` issues each gateway its certificate, log key and witness
//! key and lists it in the registry; `xgate serve --gateway-id ID` runs
//! each gateway on its own data directory, serving its own agencies,
//! sending the others to where they are served, and refusing to start
//! outside its place in the federation. Forwarding between gateways is
//! not tested here.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value, json};
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate_ledger::NoteSigner;
use xgate_ledger::cosign::Cosigner;
use xgate_server::registry::{GatewayId, Registry, Role};
use xgate_tests::federation::Federation;
use xgate_tests::{Run, Xgate};

/// Three gateways: `hub` serves two agencies (and an auditor), `g-c` and
/// `g-d` one each.
const LAYOUT: &[(&str, &[&str])] = &[
    ("hub", &["state", "gsa", "auditor:gao"]),
    ("g-c", &["hhs"]),
    ("g-d", &["treasury"]),
];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xgate"))
}

fn xgate() -> Xgate {
    Xgate::new(bin())
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// `xgate serve ARGS` on free ports, expected to refuse to start. Run
/// under `timeout`, so a gateway that starts after all fails the test
/// instead of hanging it; returns the one error line. Its log is off:
/// opening an existing data directory may log a warning first.
fn serve_refused(env: &[(&str, &str)], args: &[&str]) -> String {
    let mut argv: Vec<String> = vec!["60".into(), "env".into(), "XGATE_LOG=off".into()];
    argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push(path_arg(bin()));
    argv.extend(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-listen",
            "127.0.0.1:0",
        ]
        .map(String::from),
    );
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    Xgate::new("timeout").run(&argv, b"").expect_error(1)
}

/// `name+hexid` and the key material of a verifier key.
fn key_id_and_material(vkey: &str) -> (String, String) {
    // A key name has no `+`; base64 material may.
    let mut parts = vkey.splitn(3, '+');
    let (name, id, material) = (
        parts.next().expect("a name"),
        parts.next().expect("an id"),
        parts.next().expect("material"),
    );
    (format!("{name}+{id}"), material.to_owned())
}

/// `xgate send` of a record in clear from `from` to `to` at `gateway`.
fn send(pki: &Path, from: &str, to: &str, gateway: &str, record: &Path) -> Run {
    xgate().run(
        &[
            "send",
            "--pki",
            &path_arg(pki),
            "--as",
            from,
            "--to",
            to,
            "--gateway",
            gateway,
            "--plain",
            &path_arg(record),
        ],
        b"",
    )
}

/// `xgate inbox --ack` of `agency` at `gateway`.
fn inbox(pki: &Path, agency: &str, gateway: &str) -> Run {
    xgate().run(
        &[
            "inbox",
            "--pki",
            &path_arg(pki),
            "--as",
            agency,
            "--gateway",
            gateway,
            "--ack",
        ],
        b"",
    )
}

#[test]
fn each_gateway_serves_its_own_agencies_and_names_where_the_others_are_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let federation = Federation::start(bin(), tmp.path(), LAYOUT, &[("XGATE_LOG", "warn")]);
    let pki = federation.pki();
    let registry = Registry::load(&pki.join("registry.toml")).expect("registry");

    // Each listens where the registry says, with the log key it lists.
    for (gateway, _) in LAYOUT {
        assert_eq!(federation.process(gateway).url(), federation.url(gateway));
        let listed = registry
            .gateway(&gateway.parse().expect("id"))
            .expect("listed");
        assert_eq!(listed.url, federation.url(gateway));
        let key = xgate()
            .run(
                &[
                    "log",
                    "key",
                    "--data-dir",
                    &path_arg(&federation.data_dir(gateway)),
                ],
                b"",
            )
            .expect_ok();
        assert_eq!(key.trim(), listed.log_key, "{gateway}");
        assert!(key.starts_with(&format!("xgate/{gateway}+")), "{key}");
    }

    // Two agencies of one gateway exchange a record through it.
    let record = tmp.path().join("record.json");
    std::fs::write(&record, r#"{"subject":"hello from state"}"#).expect("write");
    let hub = federation.url("hub");
    let receipt = send(&pki, "state", "gsa", &hub, &record).expect_ok();
    let parsed: Value = serde_json::from_str(&receipt).expect("receipt JSON");
    let checkpoint = parsed["checkpoint"].as_str().expect("checkpoint");
    assert!(checkpoint.starts_with("xgate/hub\n"), "{checkpoint}");
    let receipt_file = tmp.path().join("receipt.json");
    std::fs::write(&receipt_file, &receipt).expect("write");
    let hub_key = &registry
        .gateway(&"hub".parse().expect("id"))
        .expect("hub")
        .log_key;
    let verified = xgate()
        .run(
            &[
                "audit",
                "verify-receipt",
                "--receipt",
                &path_arg(&receipt_file),
                "--key",
                hub_key,
            ],
            b"",
        )
        .expect_ok();
    assert!(verified.contains("of xgate/hub at tree size"), "{verified}");
    let delivered = inbox(&pki, "gsa", &hub).expect_ok();
    let lines: Vec<Value> = delivered
        .lines()
        .map(|l| serde_json::from_str(l).expect("inbox JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{delivered}");
    assert_eq!(lines[0]["from"], "state");
    assert_eq!(lines[0]["body"], json!({"subject": "hello from state"}));

    // Every agency reaches its own gateway.
    for (agency, gateway) in [("hhs", "g-c"), ("treasury", "g-d"), ("gao", "hub")] {
        let out = inbox(&pki, agency, &federation.url(gateway)).expect_ok();
        assert_eq!(out, "", "{agency} at {gateway}");
    }

    // An agency at a gateway that does not serve it is told where it is
    // served, whatever it asks.
    let msg = send(&pki, "hhs", "state", &hub, &record).expect_error(1);
    assert!(msg.contains("(403 wrong_gateway)"), "{msg}");
    assert!(
        msg.contains(&format!("gateway g-c at {}", federation.url("g-c"))),
        "{msg}"
    );
    let msg = inbox(&pki, "treasury", &hub).expect_error(1);
    assert!(msg.contains("(403 wrong_gateway)"), "{msg}");
    assert!(msg.contains("gateway g-d at"), "{msg}");
    let msg = inbox(&pki, "state", &federation.url("g-c")).expect_error(1);
    assert!(msg.contains("(403 wrong_gateway)"), "{msg}");
    assert!(msg.contains(&format!("gateway hub at {hub}")), "{msg}");

    // A gateway's certificate speaks for no agency: submitting an
    // envelope with it (even one an agency signed) is refused.
    let g_c = pki.join("gateways/g-c");
    let mut client = Client::new(
        &pki.join("ca.crt"),
        &g_c.join("tls.crt"),
        &g_c.join("tls.key"),
        &hub,
        Protocol::Auto,
    )
    .expect("client");
    let signer = EnvelopeSigner::for_agency(&pki, &"state".parse().expect("id")).expect("signer");
    let mut body = Map::new();
    body.insert("record".into(), json!("from a gateway"));
    let jws = signer
        .sign(&"gsa".parse().expect("id"), "record.send", body, 300, None)
        .expect("sign");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reply = runtime.block_on(client.submit(jws)).expect("a response");
    assert_eq!(
        reply.status,
        403,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.error_code().as_deref(), Some("unknown_agency"));
    // Nothing reached gsa.
    assert_eq!(inbox(&pki, "gsa", &hub).expect_ok(), "");
}

#[test]
fn serve_refuses_to_start_outside_its_place_in_the_federation() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout: &[(&str, &[&str])] = &[("hub", &["state"]), ("g-c", &["hhs"])];
    let mut federation = Federation::start(bin(), tmp.path(), layout, &[("XGATE_LOG", "warn")]);
    let pki = path_arg(&federation.pki());
    let spare = path_arg(&tmp.path().join("spare"));

    // A federation's gateway must say which one it is.
    let msg = serve_refused(&[], &["--pki", &pki, "--data-dir", &spare]);
    assert!(msg.contains("lists gateways (g-c, hub)"), "{msg}");
    assert!(msg.contains("--gateway-id"), "{msg}");
    // And be one of them, by flag or by variable.
    for (env, args) in [
        (&[][..], &["--gateway-id", "nope"][..]),
        (&[("XGATE_GATEWAY_ID", "nope")][..], &[][..]),
    ] {
        let mut all = vec!["--pki", pki.as_str(), "--data-dir", spare.as_str()];
        all.extend_from_slice(args);
        let msg = serve_refused(env, &all);
        assert!(
            msg.contains("gateway nope is not in") && msg.contains("g-c, hub"),
            "{msg}"
        );
    }
    // A single gateway's registry has no gateway ids.
    let single = tmp.path().join("single");
    xgate()
        .run(
            &[
                "certs",
                "init",
                "--dir",
                &path_arg(&single),
                "--agency",
                "state",
            ],
            b"",
        )
        .expect_ok();
    let msg = serve_refused(
        &[],
        &[
            "--pki",
            &path_arg(&single),
            "--data-dir",
            &spare,
            "--gateway-id",
            "hub",
        ],
    );
    assert!(msg.contains("lists no gateways"), "{msg}");

    // A data directory whose log is another gateway's: g-c on hub's.
    assert_eq!(federation.stop("hub"), Some(0));
    let hub_data = path_arg(&federation.data_dir("hub"));
    let registry = Registry::load(&federation.pki().join("registry.toml")).expect("registry");
    let vkey = |id: &str| {
        let id: GatewayId = id.parse().expect("id");
        key_id_and_material(&registry.gateway(&id).expect("listed").log_key)
    };
    let ((hub_id, hub_material), (g_c_id, g_c_material)) = (vkey("hub"), vkey("g-c"));
    for (env, args) in [
        (&[][..], &["--gateway-id", "g-c"][..]),
        (&[("XGATE_GATEWAY_ID", "g-c")][..], &[][..]),
    ] {
        let mut all = vec!["--pki", pki.as_str(), "--data-dir", hub_data.as_str()];
        all.extend_from_slice(args);
        let msg = serve_refused(env, &all);
        assert!(msg.contains(&hub_id) && msg.contains(&g_c_id), "{msg}");
        assert!(msg.contains("for gateway g-c"), "{msg}");
        assert!(
            !msg.contains(&hub_material) && !msg.contains(&g_c_material),
            "{msg}"
        );
    }
    // The refusals changed nothing: hub starts again on its own log.
    federation.restart("hub");
    let key = xgate()
        .run(&["log", "key", "--data-dir", &hub_data], b"")
        .expect_ok();
    assert!(key.starts_with(&format!("{hub_id}+")), "{key}");

    // The log key file in the PKI: needed for a new log only, and never
    // one the registry does not list.
    let key_file = federation.pki().join("gateways/g-c/checkpoint.key");
    let kept = tmp.path().join("g-c.checkpoint.key");
    std::fs::rename(&key_file, &kept).expect("move the key away");
    let msg = serve_refused(
        &[],
        &["--pki", &pki, "--data-dir", &spare, "--gateway-id", "g-c"],
    );
    assert!(msg.contains("checkpoint.key is missing"), "{msg}");
    assert!(!tmp.path().join("spare/checkpoint.key").exists());
    federation.restart("g-c");
    assert_eq!(federation.stop("g-c"), Some(0));
    std::fs::copy(
        federation.pki().join("gateways/hub/checkpoint.key"),
        &key_file,
    )
    .expect("copy");
    let msg = serve_refused(
        &[],
        &["--pki", &pki, "--data-dir", &spare, "--gateway-id", "g-c"],
    );
    assert!(
        msg.contains("g-c/checkpoint.key holds log key") && msg.contains(&hub_id),
        "{msg}"
    );
    assert!(!msg.contains(&hub_material), "{msg}");
    std::fs::rename(&kept, &key_file).expect("put the key back");
    federation.restart("g-c");
}

/// `openssl verify` of `cert` against the PKI's CA (and CRL, with `crl`)
/// for `purpose`.
fn openssl_verify(pki: &Path, cert: &Path, purpose: &str, crl: bool) -> (bool, String) {
    let mut command = Command::new("openssl");
    command
        .arg("verify")
        .args(["-purpose", purpose])
        .arg("-CAfile")
        .arg(pki.join("ca.crt"));
    if crl {
        command
            .arg("-crl_check")
            .arg("-CRLfile")
            .arg(pki.join("crl.pem"));
    }
    let out = command.arg(cert).output().expect("run openssl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// What `openssl x509` says of `cert`: its text, and its SHA-256
/// fingerprint as lowercase hex.
fn openssl_x509(cert: &Path) -> (String, String) {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl x509 {}", cert.display());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fingerprint = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("sha256 Fingerprint=")
                .or_else(|| l.strip_prefix("SHA256 Fingerprint="))
        })
        .expect("a fingerprint line")
        .replace(':', "")
        .to_lowercase();
    (text, fingerprint)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn certs_init_issues_each_gateway_its_files_and_its_registry_entry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = tmp.path().join("pki");
    let out = xgate()
        .run(
            &[
                "certs",
                "init",
                "--dir",
                &path_arg(&pki),
                "--gateway",
                "hub=https://127.0.0.1:8443",
                "--gateway",
                "g-c=https://gc.example:9443",
                "--agency",
                "state@hub",
                "--agency",
                "hhs@g-c",
                "--auditor",
                "gao@hub",
            ],
            b"",
        )
        .expect_ok();
    assert_eq!(
        out,
        format!(
            "created a development PKI in {} for 3 agencies: gao, hhs, state; 2 gateways: g-c, hub\n",
            pki.display()
        )
    );
    let registry = Registry::load(&pki.join("registry.toml")).expect("the registry parses");
    assert!(registry.is_federated());
    let ids: Vec<&str> = registry.gateways().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["g-c", "hub"]);
    let mut names: Vec<String> = std::fs::read_dir(pki.join("gateways"))
        .expect("gateways/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["g-c", "hub"]);

    for (id, url, host) in [
        ("hub", "https://127.0.0.1:8443", "IP Address:127.0.0.1"),
        ("g-c", "https://gc.example:9443", "DNS:gc.example"),
    ] {
        let gateway = registry.gateway(&id.parse().expect("id")).expect("listed");
        let home = pki.join("gateways").join(id);
        let mut files: Vec<String> = std::fs::read_dir(&home)
            .expect("gateway dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["checkpoint.key", "tls.crt", "tls.key", "witness.key"],
            "{id}"
        );
        for private in ["tls.key", "checkpoint.key", "witness.key"] {
            assert_eq!(mode(&home.join(private)), 0o600, "{id}/{private}");
        }
        assert_eq!(mode(&home), 0o700, "{id}");
        assert_eq!(gateway.url, url);

        // The certificate: the CA's, for both uses, named by its URI,
        // valid for the hosts peers and agencies reach it by.
        let cert = home.join("tls.crt");
        for purpose in ["sslserver", "sslclient"] {
            let (ok, text) = openssl_verify(&pki, &cert, purpose, true);
            assert!(ok, "{id} {purpose}: {text}");
        }
        let (text, fingerprint) = openssl_x509(&cert);
        let uri = format!("URI:urn:xgate:gateway:{id}");
        for san in [uri.as_str(), "DNS:localhost", "IP Address:127.0.0.1", host] {
            assert!(text.contains(san), "{id}: {san} in {text}");
        }
        assert!(text.contains("ASN1 OID: prime256v1"), "{id}: P-256");
        assert_eq!(gateway.certificate.uri, format!("urn:xgate:gateway:{id}"));
        assert_eq!(
            gateway.certificate.sha256.as_deref(),
            Some(fingerprint.as_str())
        );

        // The log key and the witness key the registry lists are the
        // files' (both named after the gateway).
        let log_key = std::fs::read_to_string(home.join("checkpoint.key")).expect("key");
        let signer = NoteSigner::from_private_key(&log_key).expect("a note private key");
        assert_eq!(signer.name(), format!("xgate/{id}"));
        assert_eq!(gateway.log_key, signer.verifier().to_string());
        let witness = std::fs::read_to_string(home.join("witness.key")).expect("key");
        let cosigner = Cosigner::from_private_key(&witness).expect("a cosigner key");
        assert_eq!(cosigner.name(), format!("xgate/{id}/witness"));
        assert_eq!(
            gateway.witness_key.as_deref(),
            Some(cosigner.verifier().to_string().as_str())
        );
    }
    let gateway_of = |agency: &str| {
        let agency = registry.get(&agency.parse().expect("id")).expect("listed");
        (
            agency.gateway.as_ref().map(|g| g.as_str().to_owned()),
            agency.has_role(Role::Auditor),
        )
    };
    assert_eq!(gateway_of("state"), (Some("hub".into()), false));
    assert_eq!(gateway_of("hhs"), (Some("g-c".into()), false));
    assert_eq!(gateway_of("gao"), (Some("hub".into()), true));
    // The single gateway's certificate stays, for the tools that use it.
    let (ok, text) = openssl_verify(&pki, &pki.join("gateway/tls.crt"), "sslserver", true);
    assert!(ok, "{text}");

    // A gateway's certificate is revoked as an agency's is.
    let out = xgate()
        .run(
            &[
                "certs",
                "revoke",
                "--dir",
                &path_arg(&pki),
                "--gateway",
                "g-c",
            ],
            b"",
        )
        .expect_ok();
    assert!(
        out.starts_with("revoked the TLS certificate of gateway g-c (serial ")
            && out.ends_with("); CRL number 2\n"),
        "{out}"
    );
    let (ok, _) = openssl_verify(&pki, &pki.join("gateways/g-c/tls.crt"), "sslserver", true);
    assert!(!ok, "g-c is revoked");
    let (ok, text) = openssl_verify(&pki, &pki.join("gateways/hub/tls.crt"), "sslserver", true);
    assert!(ok, "{text}");
    let msg = xgate()
        .run(
            &[
                "certs",
                "revoke",
                "--dir",
                &path_arg(&pki),
                "--gateway",
                "nope",
            ],
            b"",
        )
        .expect_error(1);
    assert!(msg.contains("no gateway nope"), "{msg}");
}

#[test]
fn certs_init_refuses_agencies_and_gateways_that_do_not_fit_together() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let init = |args: &[&str]| {
        let mut all = vec!["certs", "init", "--dir"];
        let d = path_arg(&dir);
        all.push(&d);
        all.extend_from_slice(args);
        xgate().run(&all, b"")
    };
    let hub = ["--gateway", "hub=https://127.0.0.1:8443"];
    for (args, code, expected) in [
        // `@` names a gateway: only in a federation.
        (
            vec!["--agency", "state@hub"],
            1,
            "agency state@hub names a gateway, but no --gateway is given",
        ),
        (
            vec!["--agency", "state", "--auditor", "gao@hub"],
            1,
            "agency gao@hub names a gateway, but no --gateway is given",
        ),
        (
            [&hub[..], &["--agency", "state@elsewhere"]].concat(),
            1,
            "agency state names gateway elsewhere, which no --gateway lists",
        ),
        (
            [&hub[..], &["--agency", "state"]].concat(),
            1,
            "agency state names no gateway",
        ),
        (
            [&hub[..], &hub[..], &["--agency", "state@hub"]].concat(),
            1,
            "gateway hub is named twice",
        ),
        // Values that do not parse.
        (
            vec!["--gateway", "hub=http://h:1", "--agency", "state@hub"],
            2,
            "a gateway url must be https://HOST[:PORT]",
        ),
        (
            vec!["--gateway", "hub", "--agency", "state@hub"],
            2,
            "ID=URL",
        ),
        (
            [&hub[..], &["--agency", "state@Hub"]].concat(),
            2,
            "invalid gateway id",
        ),
    ] {
        let msg = init(&args).expect_error(code);
        assert!(msg.contains(expected), "{args:?}: {msg}");
        assert!(!dir.exists(), "{args:?}: nothing was created");
    }
}

#[test]
fn without_gateways_the_pki_is_a_single_gateways_as_before() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let out = xgate()
        .run(
            &[
                "certs",
                "init",
                "--dir",
                &path_arg(&dir),
                "--agency",
                "state",
                "--auditor",
                "gao",
            ],
            b"",
        )
        .expect_ok();
    assert_eq!(
        out,
        format!(
            "created a development PKI in {} for 2 agencies: gao, state\n",
            dir.display()
        )
    );
    assert!(!dir.join("gateways").exists());
    let toml = std::fs::read_to_string(dir.join("registry.toml")).expect("registry");
    assert!(
        !toml
            .lines()
            .any(|l| l.starts_with("[[gateway]]") || l.starts_with("gateway =")),
        "{toml}"
    );
    let registry = Registry::parse(&toml).expect("parses");
    assert!(!registry.is_federated());
}

//! Operating `xgate serve`: the zero-configuration first start, policy
//! reload on SIGHUP (a broken policy keeps the old one), and limits on
//! request heads.

mod federation;

use std::time::{Duration, Instant};

use federation::{Federation, body, error_code, id, runtime, submit};
use http::StatusCode;
use xgate::client::{Client, EnvelopeSigner, Protocol};
use xgate_server::registry::Registry;
use xgate_tests::Gateway;

#[test]
fn first_start_creates_a_pki_with_the_sample_agencies_and_the_default_policy() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("xgate-data");
    let gateway = Gateway::start(env!("CARGO_BIN_EXE_xgate"), &data, &[], &[]);
    let pki = data.join("pki");
    let registry = Registry::load(&pki.join("registry.toml")).expect("registry");
    let ids: Vec<&str> = registry.agencies().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["gao", "gsa", "hhs", "state", "treasury"]);
    let auditors: Vec<&str> = registry
        .agencies()
        .filter(|a| a.has_role(xgate_server::registry::Role::Auditor))
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(auditors, ["gao"]);
    assert_eq!(
        std::fs::read_to_string(data.join("policy.toml")).expect("policy"),
        xgate_server::policy::DEFAULT_POLICY
    );
    let rt = runtime();
    let mut state =
        Client::for_agency(&pki, &id("state"), gateway.url(), Protocol::Auto).expect("client");
    let jws = EnvelopeSigner::for_agency(&pki, &id("state"))
        .expect("signer")
        .sign(&id("hhs"), "record.send", body("first"), 60, None)
        .expect("sign");
    assert_eq!(
        rt.block_on(submit(&mut state, &jws)).status,
        StatusCode::CREATED
    );
    drop(state);
    drop(rt);
    assert_eq!(gateway.stop(), Some(0));

    // A second start reuses everything.
    let again = Gateway::start(env!("CARGO_BIN_EXE_xgate"), &data, &[], &[]);
    assert_eq!(
        Registry::load(&pki.join("registry.toml")).expect("registry"),
        registry
    );
    drop(again);
}

#[test]
fn sighup_reloads_the_policy_and_a_broken_one_keeps_the_old() {
    let root = tempfile::tempdir().expect("tempdir");
    let policy = root.path().join("policy.toml");
    let allow_all = "version = 1\n\n[[rule]]\nname = \"all records\"\nkinds = [\"record.send\"]\nfrom = [\"*\"]\nto = [\"*\"]\neffect = \"allow\"\n";
    std::fs::write(&policy, allow_all).expect("policy");
    let policy_arg = policy.display().to_string();
    let fed = Federation::start_with(&[], &[("XGATE_POLICY", &policy_arg)]);
    let rt = runtime();
    let mut state = fed.client("state");
    let signer = fed.signer("state");
    let send = |state: &mut Client| {
        let jws = signer
            .sign(&id("treasury"), "record.send", body("x"), 60, None)
            .expect("sign");
        rt.block_on(submit(state, &jws))
    };
    assert_eq!(send(&mut state).status, StatusCode::CREATED);

    let deny = format!(
        "{allow_all}\n[[rule]]\nname = \"no records to treasury\"\nkinds = [\"record.send\"]\nfrom = [\"*\"]\nto = [\"treasury\"]\neffect = \"deny\"\n"
    );
    std::fs::write(&policy, deny).expect("policy");
    fed.gateway.signal("HUP");
    let denied = wait_until(|| {
        let reply = send(&mut state);
        reply.status == StatusCode::FORBIDDEN && error_code(&reply) == "policy_denied"
    });
    assert!(denied, "the new policy is in force");

    std::fs::write(&policy, "version = 1\n[[rule]]\nname = \n").expect("broken");
    fed.gateway.signal("HUP");
    let logged = wait_until(|| fed.gateway.log_output().contains("policy not reloaded"));
    assert!(logged, "{}", fed.gateway.log_output());
    let log = fed.gateway.log_output();
    assert!(
        log.contains("policy.toml:"),
        "the error names the file: {log}"
    );
    let reply = send(&mut state);
    assert_eq!(
        error_code(&reply),
        "policy_denied",
        "the previous policy stays"
    );
}

#[test]
fn an_oversized_request_head_is_refused_and_the_gateway_goes_on() {
    let fed = Federation::start();
    let rt = runtime();
    let mut state = fed.client_with("state", Protocol::Http1);
    let long = "a".repeat(32 * 1024);
    let reply = rt.block_on(state.request(
        http::Method::GET,
        &format!("/v1/inbox?pad={long}"),
        None,
        Vec::new(),
    ));
    let reply = reply.expect("hyper answers before closing");
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut fresh = fed.client("state");
    let page = rt
        .block_on(fresh.request(http::Method::GET, "/v1/inbox", None, Vec::new()))
        .expect("answered");
    assert_eq!(page.status, StatusCode::OK);
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The README's first command, `xgate serve` with nothing else: the
/// embedded defaults, a relative data directory (`xgate-data`) created in
/// the working directory, both listeners up. (It once failed there: a new
/// relative directory's parent, "", could not be synced.)
#[test]
fn serve_with_no_arguments_starts_in_the_working_directory() {
    use std::io::BufRead;
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xgate"))
        .arg("serve")
        // Free ports, so that tests may run side by side; nothing else set.
        .env("XGATE_LISTEN", "127.0.0.1:0")
        .env("XGATE_PUBLIC_LISTEN", "127.0.0.1:0")
        .current_dir(cwd.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start xgate serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let second = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    assert!(
        first.starts_with("xgate: listening on https://127.0.0.1:"),
        "{first:?}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        second.starts_with("xgate: tlog-tiles on https://127.0.0.1:"),
        "{second:?}"
    );
    assert!(cwd.path().join("xgate-data/pki/registry.toml").is_file());
    assert!(cwd.path().join("xgate-data/log").is_dir());
}

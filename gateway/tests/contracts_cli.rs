//! `xgate contracts check` and `list`, and contracts loaded with the policy
//! by a real gateway: a good file is taken and listed as in force, a file
//! with a contract that does not check is refused with its line, by
//! `check` and by a reload alike, and the set in force stays.

mod federation;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use federation::{Federation, xgate};
use xgate_tests::Run;

const POLICY: &str = r#"version = 1

[[rule]]
name = "assets"
kinds = ["asset.register", "asset.transfer.offer", "asset.transfer.accept", "asset.transfer.reject", "inventory.report"]
from = ["*"]
to = ["*"]
effect = "allow"

[[contract]]
name = "treasury-to-gsa-laptops"
on = "envelope:asset.transfer.offer"
when = 'offer.from == "treasury" && offer.to == "gsa" && asset.category == "laptop"'
do = "accept_offer"

[[contract]]
name = "count-overdue"
on = "envelope:inventory.report"
when = '"LAP-0042" in report.observed'
do = "set_deadline"
deadline = "recount"
after_hours = 72
"#;

/// `POLICY` with one more contract, whose condition reads a field assets
/// do not have, its table starting on line `BAD_LINE`.
fn broken() -> String {
    format!(
        "{POLICY}\n[[contract]]\nname = \"by-value\"\non = \"offer.opened\"\n\
         when = 'asset.value > 1000'\ndo = \"accept_offer\"\n"
    )
}
const BAD_LINE: usize = 24;

/// `xgate contracts check FILE` against the registry of `fed`'s PKI.
fn check(fed: &Federation, file: &Path) -> Run {
    let registry = fed.pki().join("registry.toml");
    let (file, registry) = (file.display().to_string(), registry.display().to_string());
    xgate().run(&["contracts", "check", &file, "--registry", &registry], b"")
}

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn check_takes_a_good_file_and_names_the_line_of_a_bad_contract() {
    let fed = Federation::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, POLICY).expect("write");
    let out = check(&fed, &good).expect_ok();
    let said: Vec<&str> = out.lines().collect();
    assert_eq!(said.len(), 3, "{out}");
    assert!(
        said[0].starts_with(
            "ok: treasury-to-gsa-laptops: on envelope:asset.transfer.offer, do accept_offer, cost "
        ),
        "{out}"
    );
    assert!(
        said[1].starts_with(
            "ok: count-overdue: on envelope:inventory.report, do set_deadline recount after 72 h, cost "
        ),
        "{out}"
    );
    assert_eq!(said[2], format!("ok: {}: 2 contracts", good.display()));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, broken()).expect("write");
    let err = check(&fed, &bad).expect_error(1);
    assert_eq!(
        err.trim(),
        format!(
            "{}:{BAD_LINE}: contract \"by-value\": the condition: asset has no field \
             \"value\" (it has: tag, category, holder, location, status)",
            bad.display()
        )
    );
}

#[test]
fn the_gateway_lists_what_is_in_force_and_a_bad_reload_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("policy");
    let policy_arg = policy.display().to_string();
    let fed = Federation::start_with(&[], &[("XGATE_POLICY", &policy_arg)]);
    let pki = fed.pki();
    let list = || {
        let out = xgate()
            .run(
                &[
                    "contracts",
                    "list",
                    "--pki",
                    pki.to_str().expect("utf-8"),
                    "--as",
                    "state",
                    "--gateway",
                    fed.gateway.url(),
                ],
                b"",
            )
            .expect_ok();
        lines(&out)
    };
    let first = list();
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0]["name"], "treasury-to-gsa-laptops");
    assert_eq!(first[0]["do"], "accept_offer");
    assert_eq!(first[0]["on"], "envelope:asset.transfer.offer");
    assert_eq!(first[1]["deadline"], "recount");
    assert_eq!(first[1]["after_hours"], 72);
    for c in &first {
        assert_eq!(c["hash"].as_str().map(str::len), Some(64), "{c}");
        assert!(c["cost"].as_u64() > Some(0), "{c}");
    }

    // A reload with a bad contract is refused, naming file and line; the
    // set in force stays.
    std::fs::write(&policy, broken()).expect("broken");
    fed.gateway.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fed.gateway.log_output().contains("policy not reloaded") {
        assert!(Instant::now() < deadline, "{}", fed.gateway.log_output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = fed.gateway.log_output();
    assert!(
        log.contains(&format!("policy.toml:{BAD_LINE}: contract \"by-value\"")),
        "{log}"
    );
    assert_eq!(list(), first);

    // A good one replaces it.
    let one = POLICY
        .split("\n[[contract]]\nname = \"count-overdue\"")
        .next()
        .expect("head");
    std::fs::write(&policy, one).expect("one contract");
    fed.gateway.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = list();
        if now.len() == 1 {
            assert_eq!(now[0], first[0]);
            break;
        }
        assert!(Instant::now() < deadline, "{now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The examples docs/contracts.md offers agencies to copy are taken by
/// `xgate contracts check` as they are written there.
#[test]
fn the_documented_examples_check() {
    let fed = Federation::start();
    let doc = include_str!("../../docs/contracts.md");
    let section = doc
        .split("## Examples an agency would copy")
        .nth(1)
        .expect("the examples section");
    let examples = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("examples.toml");
    let rules = include_str!("../../policies/default.toml");
    std::fs::write(&file, format!("{rules}{examples}")).expect("write");
    let out = check(&fed, &file).expect_ok();
    let count = examples.matches("[[contract]]").count();
    assert!(count >= 5, "{examples}");
    assert!(
        out.ends_with(&format!("ok: {}: {count} contracts\n", file.display())),
        "{out}"
    );
}

/// A contract whose condition may cost too much on one entry (a loop in a
/// loop over a count's 100,000 tags) is refused by `check` with its line
/// and its cost, as the gateway refuses it when it loads the file.
#[test]
fn a_too_costly_contract_is_refused_with_its_cost() {
    let fed = Federation::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let costly = format!(
        "{POLICY}\n[[contract]]\nname = \"pairs\"\non = \"envelope:inventory.report\"\n\
         when = 'report.observed.exists(a, report.observed.exists(b, a == b))'\ndo = \"escalate\"\n"
    );
    let file = dir.path().join("costly.toml");
    std::fs::write(&file, costly).expect("write");
    let err = check(&fed, &file).expect_error(1);
    assert!(
        err.starts_with(&format!(
            "{}:{BAD_LINE}: contract \"pairs\": ",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("over the limit of 200000"), "{err}");
}

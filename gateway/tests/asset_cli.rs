//! `xgate asset ...` and `xgate inventory report` end to end: the real
//! binary against a real gateway on loopback, with a PKI made by
//! `xgate certs init` (three agencies and the auditor `gao`). One gateway
//! serves every scenario of the file; each scenario uses its own tags and
//! locations, so they do not see each other's assets.

mod federation;

use federation::{start_gateway, xgate};
use serde_json::Value;
use xgate_tests::{Gateway, Run};

#[test]
fn asset_commands_drive_custody_and_reconciliation_end_to_end() {
    let fed = Fed::start();
    custody_moves_on_accept_and_both_agencies_see_it(&fed);
    a_rejected_offer_leaves_custody_where_it_was(&fed);
    list_filters_and_pages_through_the_assets_an_agency_may_see(&fed);
    an_inventory_report_finds_each_discrepancy_type_and_a_recount_resolves_them(&fed);
    refusals_exit_non_zero_naming_the_gateways_code(&fed);
}

#[test]
fn a_malformed_inventory_file_is_refused_before_anything_is_sent() {
    // No PKI and no gateway: the count is checked before either is used.
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &[u8], &str); 5] = [
        ("not-json.json", b"location: HQ", "does not hold one JSON object"),
        ("array.json", b"[]", "does not hold one JSON object"),
        (
            "no-observed.json",
            br#"{"location":"HQ","reported_by":"p-1"}"#,
            "missing field `observed`",
        ),
        (
            "bad-tag.json",
            br#"{"location":"HQ","reported_by":"p-1","observed":[{"tag":"ok"},{"tag":"no spaces"}]}"#,
            "observed[1].tag",
        ),
        (
            "extra.json",
            br#"{"location":"HQ","reported_by":"p-1","observed":[],"note":"x"}"#,
            "unknown field `note`",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let path = path.display().to_string();
        let msg = report_offline(&[&path], b"").expect_error(1);
        assert!(msg.contains(&path), "{name}: {msg}");
        assert!(msg.contains(want), "{name}: {msg}");
    }
    let msg = report_offline(
        &["-"],
        b"{\"location\":\"\",\"reported_by\":\"p\",\"observed\":[]}",
    )
    .expect_error(1);
    assert!(
        msg.starts_with("standard input is not a valid inventory report: location"),
        "{msg}"
    );
    assert!(msg.ends_with("nothing was sent"), "{msg}");
    let msg = report_offline(&["/nonexistent/count.json"], b"").expect_error(1);
    assert!(msg.contains("cannot read /nonexistent/count.json"), "{msg}");
}

#[test]
fn bad_flag_values_are_refused_by_the_command_line() {
    let conn = [
        "--pki",
        "/nonexistent",
        "--as",
        "state",
        "--gateway",
        "https://127.0.0.1:9",
    ];
    let run = |args: &[&str]| {
        let mut all = vec!["asset"];
        all.extend_from_slice(&args[..1]);
        all.extend_from_slice(&conn);
        all.extend_from_slice(&args[1..]);
        xgate().run(&all, b"")
    };
    let msg = run(&["list", "--status", "lost"]).expect_error(2);
    assert!(
        msg.contains("--status")
            && msg.contains("must be held, offered, awaiting_approval or missing"),
        "{msg}"
    );
    let msg = run(&["list", "--limit", "-1"]).expect_error(2);
    assert!(msg.contains("must be a non-negative integer"), "{msg}");
    let msg = run(&[
        "offer", "--tag", "T-1", "--to", "GSA!", "--person", "p", "--reason", "r",
    ])
    .expect_error(2);
    assert!(msg.contains("invalid agency id"), "{msg}");
    // A tag no asset can have is refused before the PKI is read.
    let msg = run(&["show", "../etc"]).expect_error(1);
    assert!(msg.contains("a tag must be 1-64 letters"), "{msg}");
    let msg = run(&[
        "register",
        "--tag",
        "T 1",
        "--serial",
        "s",
        "--category",
        "c",
        "--description",
        "d",
        "--person",
        "p",
        "--location",
        "l",
    ])
    .expect_error(1);
    assert_eq!(
        msg,
        "the body of asset.register is not valid: tag must be 1-64 letters, digits, '-', '_', '.' or ':'; nothing was sent"
    );
}

fn custody_moves_on_accept_and_both_agencies_see_it(fed: &Fed) {
    let registered = fed.register("treasury", "LAP-1", "p-1017", "HQ-3");
    assert_eq!(registered["kind"], "asset.register");
    assert_eq!(registered["tag"], "LAP-1");
    assert!(registered["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert!(registered["receipt"]["log_index"].is_u64());
    assert!(registered.get("reconciliation_id").is_none());
    // Not gsa's to see until it is offered to gsa.
    let msg = fed.asset("gsa", "show", &["LAP-1"]).expect_error(1);
    assert!(msg.contains("(404 not_found)"), "{msg}");

    let offer = fed.json(fed.asset(
        "treasury",
        "offer",
        &[
            "--tag",
            "LAP-1",
            "--to",
            "gsa",
            "--person",
            "p-5521",
            "--reason",
            "detail",
            "--jti",
            "offer-lap-1",
        ],
    ));
    assert_eq!(offer["kind"], "asset.transfer.offer");
    assert_eq!(offer["jti"], "offer-lap-1");
    fed.verify_receipt(&offer["receipt"]);
    let seen = fed.show("gsa", "LAP-1");
    assert_eq!(seen["status"], "offered");
    assert_eq!(seen["offer"]["jti"], "offer-lap-1");
    assert_eq!(seen["offer"]["to"]["agency"], "gsa");

    // No --from: the offering agency is the holder the gateway names.
    let accepted = fed.json(fed.asset(
        "gsa",
        "accept",
        &[
            "--tag",
            "LAP-1",
            "--offer",
            "offer-lap-1",
            "--location",
            "Annex",
        ],
    ));
    assert_eq!(accepted["kind"], "asset.transfer.accept");
    for agency in ["treasury", "gsa", "gao"] {
        let view = fed.show(agency, "LAP-1");
        assert_eq!(view["holder"]["agency"], "gsa", "{agency}");
        assert_eq!(view["holder"]["person"], "p-5521", "{agency}");
        assert_eq!(view["location"], "Annex", "{agency}");
        assert_eq!(view["status"], "held", "{agency}");
        assert_eq!(view["offer"], Value::Null, "{agency}");
        let chain = view["chain"].as_array().expect("chain");
        let kinds: Vec<&str> = chain.iter().filter_map(|e| e["kind"].as_str()).collect();
        assert_eq!(kinds, ["registered", "offered", "accepted"], "{agency}");
        assert_eq!(chain[1]["jti"], "offer-lap-1");
        assert_eq!(chain[2]["receipt"]["id"], accepted["receipt"]["id"]);
    }
    // The former holder still lists it, under its new holder.
    let listed = fed.list(
        "treasury",
        &["--holder-agency", "gsa", "--location", "Annex"],
    );
    assert_eq!(tags(&listed), ["LAP-1"]);
}

fn a_rejected_offer_leaves_custody_where_it_was(fed: &Fed) {
    fed.register("treasury", "LAP-2", "p-1017", "HQ-3");
    let offer = fed.json(fed.asset(
        "treasury",
        "offer",
        &[
            "--tag", "LAP-2", "--to", "gsa", "--person", "p-5521", "--reason", "loan",
        ],
    ));
    let jti = offer["jti"].as_str().expect("the offer's jti");
    let rejected = fed.json(fed.asset(
        "gsa",
        "reject",
        &["--tag", "LAP-2", "--offer", jti, "--from", "treasury"],
    ));
    assert_eq!(rejected["kind"], "asset.transfer.reject");
    let view = fed.show("treasury", "LAP-2");
    assert_eq!(view["holder"]["agency"], "treasury");
    assert_eq!(view["status"], "held");
    assert_eq!(view["offer"], Value::Null);
    let kinds: Vec<&str> = view["chain"]
        .as_array()
        .expect("chain")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["registered", "offered", "rejected"]);
    // The offer is closed and gsa never held it: no longer gsa's to see.
    let msg = fed.asset("gsa", "show", &["LAP-2"]).expect_error(1);
    assert!(msg.contains("(404 not_found)"), "{msg}");
}

fn list_filters_and_pages_through_the_assets_an_agency_may_see(fed: &Fed) {
    // A location that needs percent-encoding in the query.
    let depot = "Depot 9/B&C";
    for tag in ["L-A", "L-B", "L-C"] {
        fed.register("treasury", tag, "p-list", depot);
    }
    fed.json(fed.asset(
        "treasury",
        "offer",
        &[
            "--tag", "L-B", "--to", "gsa", "--person", "p-5521", "--reason", "r",
        ],
    ));
    let all = fed.list("treasury", &["--location", depot]);
    assert_eq!(tags(&all), ["L-A", "L-B", "L-C"]);
    assert_eq!(all["next"], Value::Null);

    let first = fed.list("treasury", &["--location", depot, "--limit", "1"]);
    assert_eq!(
        (tags(&first), &first["next"]),
        (vec!["L-A"], &Value::from("L-A"))
    );
    let second = fed.list(
        "treasury",
        &["--location", depot, "--limit", "1", "--after", "L-A"],
    );
    assert_eq!(
        (tags(&second), &second["next"]),
        (vec!["L-B"], &Value::from("L-B"))
    );
    let last = fed.list(
        "treasury",
        &["--location", depot, "--limit", "1", "--after", "L-B"],
    );
    assert_eq!((tags(&last), &last["next"]), (vec!["L-C"], &Value::Null));
    let every = fed.list("treasury", &["--location", depot, "--limit", "1", "--all"]);
    assert_eq!(every, all, "--all joins every page");

    let offered = fed.list("treasury", &["--location", depot, "--status", "offered"]);
    assert_eq!(tags(&offered), ["L-B"]);
    let held = fed.list("treasury", &["--person", "p-list", "--status", "held"]);
    assert_eq!(tags(&held), ["L-A", "L-C"]);
    // The auditor sees them; an agency that never held them does not.
    assert_eq!(
        tags(&fed.list("gao", &["--location", depot])),
        ["L-A", "L-B", "L-C"]
    );
    assert!(tags(&fed.list("state", &["--location", depot])).is_empty());
}

fn an_inventory_report_finds_each_discrepancy_type_and_a_recount_resolves_them(fed: &Fed) {
    for tag in ["INV-1", "INV-2", "INV-3"] {
        fed.register("treasury", tag, "p-2001", "Vault-7");
    }
    // Treasury's, but kept elsewhere.
    fed.register("treasury", "INV-4", "p-2001", "HQ-3");
    let count = fed.root.path().join("count.json");
    std::fs::write(
        &count,
        r#"{"location":"Vault-7","reported_by":"p-3090","observed":[
            {"tag":"INV-1","person":"p-2001"},
            {"tag":"INV-2","person":"p-9999"},
            {"tag":"INV-4"},
            {"tag":"INV-404"}]}"#,
    )
    .expect("write count");
    let out = fed
        .inventory("treasury", &["--show", &count.display().to_string()], b"")
        .expect_ok();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let (submitted, report) = (&lines[0], &lines[1]);
    assert_eq!(submitted["kind"], "inventory.report");
    assert!(submitted.get("tag").is_none());
    let id = submitted["reconciliation_id"]
        .as_str()
        .expect("reconciliation_id");
    assert_eq!(id, submitted["receipt"]["log_index"].to_string());
    assert_eq!(report["reconciliation_id"], id);
    assert_eq!(report["location"], "Vault-7");
    assert_eq!(report["missing"], serde_json::json!(["INV-3"]));
    assert_eq!(report["unexpected"], serde_json::json!(["INV-4"]));
    assert_eq!(report["holder_mismatch"], serde_json::json!(["INV-2"]));
    assert_eq!(report["unknown_tag"], serde_json::json!(["INV-404"]));
    assert_eq!(
        report["counts"],
        serde_json::json!({"missing": 1, "unexpected": 1, "holder_mismatch": 1, "unknown_tag": 1})
    );
    let missing = fed.list(
        "treasury",
        &["--location", "Vault-7", "--status", "missing"],
    );
    assert_eq!(tags(&missing), ["INV-3"]);

    // A recount from standard input finds them all with their holders.
    let recount = br#"{"location":"Vault-7","reported_by":"p-3090","observed":[
        {"tag":"INV-1"},{"tag":"INV-2","person":"p-2001"},{"tag":"INV-3"}]}"#;
    let out = fed
        .inventory("treasury", &["--show", "-"], recount)
        .expect_ok();
    let report: Value =
        serde_json::from_str(out.lines().nth(1).expect("report line")).expect("json");
    assert_eq!(report["resolved"], serde_json::json!(["INV-2", "INV-3"]));
    assert_eq!(
        report["counts"],
        serde_json::json!({"missing": 0, "unexpected": 0, "holder_mismatch": 0, "unknown_tag": 0})
    );
    assert!(
        tags(&fed.list(
            "treasury",
            &["--location", "Vault-7", "--status", "missing"]
        ))
        .is_empty()
    );
    // INV-4 was not counted where it is kept: still unexpected.
    let view = fed.show("treasury", "INV-4");
    assert_eq!(view["discrepancies"][0]["type"], "unexpected");
    assert_eq!(view["discrepancies"][0]["reconciliation_id"], id);
    // Without --show, one line.
    let out = fed.inventory("treasury", &["-"], recount).expect_ok();
    assert_eq!(out.lines().count(), 1, "{out}");
}

fn refusals_exit_non_zero_naming_the_gateways_code(fed: &Fed) {
    fed.register("treasury", "REF-1", "p-1", "HQ-3");
    let refused = |agency: &str, command: &str, args: &[&str], code: &str| {
        let msg = fed.asset(agency, command, args).expect_error(1);
        assert!(
            msg.starts_with("the gateway refused the request (") && msg.contains(code),
            "{command}: {msg}"
        );
    };
    let offer = [
        "--tag", "REF-1", "--to", "state", "--person", "p-2", "--reason", "r",
    ];
    refused("gsa", "offer", &offer, "(403 not_holder)");
    refused(
        "treasury",
        "register",
        &[
            "--tag",
            "REF-1",
            "--serial",
            "s",
            "--category",
            "c",
            "--description",
            "d",
            "--person",
            "p-1",
            "--location",
            "HQ-3",
        ],
        "(409 asset_exists)",
    );
    fed.json(fed.asset("treasury", "offer", &offer));
    refused("treasury", "offer", &offer, "(409 offer_pending)");
    refused(
        "state",
        "accept",
        &["--tag", "REF-1", "--offer", "not-the-offer"],
        "(409 no_open_offer)",
    );
    refused("treasury", "show", &["NO-SUCH-TAG"], "(404 not_found)");
    let jti = ["--jti", "once-only"];
    fed.json(fed.asset(
        "treasury",
        "register",
        &register_args("REF-2", "p-1", "HQ-3", &jti),
    ));
    refused(
        "treasury",
        "register",
        &register_args("REF-3", "p-1", "HQ-3", &jti),
        "(409 replayed)",
    );
}

/// The test federation: its directory, PKI and gateway.
struct Fed {
    root: tempfile::TempDir,
    gateway: Gateway,
    pki: String,
}

impl Fed {
    fn start() -> Fed {
        let root = tempfile::tempdir().expect("tempdir");
        let pki = root.path().join("pki").display().to_string();
        let args = [
            "certs",
            "init",
            "--dir",
            &pki,
            "--agency",
            "state",
            "--agency",
            "treasury",
            "--agency",
            "gsa",
            "--auditor",
            "gao",
        ];
        xgate().run(&args, b"").expect_ok();
        let gateway = start_gateway(root.path(), &[], &[]);
        Fed { root, gateway, pki }
    }

    /// `xgate asset COMMAND --pki .. --as AGENCY --gateway .. ARGS`.
    fn asset(&self, agency: &str, command: &str, args: &[&str]) -> Run {
        let mut all = vec!["asset", command];
        all.extend_from_slice(&self.conn(agency));
        all.extend_from_slice(args);
        xgate().run(&all, b"")
    }

    /// `xgate inventory report --pki .. --as AGENCY --gateway .. ARGS`.
    fn inventory(&self, agency: &str, args: &[&str], stdin: &[u8]) -> Run {
        let mut all = vec!["inventory", "report"];
        all.extend_from_slice(&self.conn(agency));
        all.extend_from_slice(args);
        xgate().run(&all, stdin)
    }

    fn conn<'a>(&'a self, agency: &'a str) -> [&'a str; 6] {
        [
            "--pki",
            &self.pki,
            "--as",
            agency,
            "--gateway",
            self.gateway.url(),
        ]
    }

    /// The one line of JSON a successful run printed.
    fn json(&self, run: Run) -> Value {
        let out = run.expect_ok();
        assert_eq!(out.lines().count(), 1, "{out}");
        serde_json::from_str(&out).expect("JSON")
    }

    fn register(&self, agency: &str, tag: &str, person: &str, location: &str) -> Value {
        self.json(self.asset(
            agency,
            "register",
            &register_args(tag, person, location, &[]),
        ))
    }

    fn show(&self, agency: &str, tag: &str) -> Value {
        self.json(self.asset(agency, "show", &[tag]))
    }

    fn list(&self, agency: &str, args: &[&str]) -> Value {
        self.json(self.asset(agency, "list", args))
    }

    /// Checks a printed receipt with `xgate audit verify-receipt`.
    fn verify_receipt(&self, receipt: &Value) {
        let data = self.root.path().join("data").display().to_string();
        let key = xgate()
            .run(&["log", "key", "--data-dir", &data], b"")
            .expect_ok();
        let file = self.root.path().join("receipt.json");
        std::fs::write(&file, receipt.to_string()).expect("write receipt");
        let out = xgate()
            .run(
                &[
                    "audit",
                    "verify-receipt",
                    "--receipt",
                    &file.display().to_string(),
                    "--key",
                    key.trim(),
                ],
                b"",
            )
            .expect_ok();
        assert!(out.starts_with("ok: envelope "), "{out}");
    }
}

fn register_args<'a>(
    tag: &'a str,
    person: &'a str,
    location: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "--tag",
        tag,
        "--serial",
        "SN-1",
        "--category",
        "laptop",
        "--description",
        "a laptop",
        "--person",
        person,
        "--location",
        location,
    ];
    args.extend_from_slice(extra);
    args
}

/// `xgate inventory report` with a connection that is never reached.
fn report_offline(args: &[&str], stdin: &[u8]) -> Run {
    let mut all = vec![
        "inventory",
        "report",
        "--pki",
        "/nonexistent",
        "--as",
        "state",
        "--gateway",
        "https://127.0.0.1:9",
    ];
    all.extend_from_slice(args);
    xgate().run(&all, stdin)
}

/// The tags of a listing, in order.
fn tags(page: &Value) -> Vec<&str> {
    page["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .filter_map(|a| a["tag"].as_str())
        .collect()
}

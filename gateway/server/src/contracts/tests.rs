use serde_json::json;

use super::action::MAX_AFTER_HOURS;
use super::*;
use crate::registry::{Registry, for_tests};

fn registry() -> Registry {
    for_tests(&["state", "treasury", "gsa", "gao"])
}

fn spec(on: &str, when: &str, act: &str) -> ContractSpec {
    ContractSpec::for_tests("c", on, when, act)
}

fn load(on: &str, when: &str, act: &str) -> Result<Contract, ContractError> {
    Contract::load(&spec(on, when, act), &registry())
}

fn refused(on: &str, when: &str, act: &str) -> String {
    match load(on, when, act) {
        Ok(c) => panic!("{when:?} loaded: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn offer_bindings(from: &str, to: &str) -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "entry",
            json!({"index": 7, "kind": "asset.transfer.offer", "from": from, "to": to,
                   "jti": "j-1", "time": 1_796_000_000, "tag": "LAP-1", "expires": 1_796_086_400}),
        ),
        (
            "asset",
            json!({"tag": "LAP-1", "category": "laptop", "holder": from,
                   "location": "HQ-3", "status": "offered"}),
        ),
        (
            "offer",
            json!({"jti": "j-1", "from": from, "to": to, "expires": 1_796_086_400}),
        ),
    ])
}

#[test]
fn a_contract_loads_and_decides_on_the_facts_it_is_given() {
    let c = load(
        "envelope:asset.transfer.offer",
        r#"offer.from == "treasury" && offer.to in ["treasury", "gsa"] && asset.category == "laptop""#,
        "accept_offer",
    )
    .expect("loads");
    assert_eq!(c.action, Action::AcceptOffer);
    assert!(c.checked.cost > 0 && c.checked.cost < check::MAX_COST);
    assert_eq!(c.holds(&offer_bindings("treasury", "gsa")), Ok(true));
    assert_eq!(c.holds(&offer_bindings("state", "gsa")), Ok(false));
    // Integers from JSON compare with integer literals and each other.
    let times = load(
        "offer.opened",
        "offer.expires - entry.time == 86400 && entry.index > 6 && -entry.index < 0",
        "reject_offer",
    )
    .expect("loads");
    assert_eq!(times.holds(&offer_bindings("treasury", "gsa")), Ok(true));
    let tags = load(
        "offer.opened",
        r#"[asset.tag, "LAP-2"].exists(t, t.startsWith("LAP-")) && size(asset.tag) == 5"#,
        "reject_offer",
    )
    .expect("loads");
    assert_eq!(tags.holds(&offer_bindings("treasury", "gsa")), Ok(true));
}

/// The hash covers the contract's meaning, not how the file lays it out,
/// and changes with any field.
#[test]
fn the_hash_is_of_the_canonical_contract() {
    let a = load("offer.opened", "true", "reject_offer").expect("a");
    let b = load("offer.opened", "true", "reject_offer").expect("b");
    assert_eq!(a.hash, b.hash);
    let c = load("offer.opened", "false", "reject_offer").expect("c");
    assert_ne!(a.hash, c.hash);
    assert_eq!(a.hash_hex().len(), 64);
}

#[test]
fn names_fields_and_types_are_checked_before_anything_runs() {
    let on = "envelope:asset.transfer.offer";
    let msg = refused(on, "grant.purpose == \"ETREAT\"", "accept_offer");
    assert!(msg.contains("unknown name \"grant\""), "{msg}");
    assert!(msg.contains("entry, asset, offer"), "{msg}");
    let msg = refused(on, "asset.value > 1000", "accept_offer");
    assert!(msg.contains("asset has no field \"value\""), "{msg}");
    let msg = refused(on, "entry.time == \"noon\"", "accept_offer");
    assert!(
        msg.contains("== is not defined for int and string"),
        "{msg}"
    );
    let msg = refused(on, "entry.time + 1", "accept_offer");
    assert!(msg.contains("the condition is int, not a bool"), "{msg}");
    let msg = refused(on, "entry.from < 3", "accept_offer");
    assert!(msg.contains("< is not defined for string and int"), "{msg}");
    let msg = refused(
        on,
        "entry.from.size() > 2 && entry.kind.matches(\"a.*\")",
        "accept_offer",
    );
    assert!(
        msg.contains("the function matches() is not in the contract language"),
        "{msg}"
    );
    let msg = refused(on, "entry.time > 1.5", "accept_offer");
    assert!(msg.contains("floating-point"), "{msg}");
    let msg = refused(on, "{\"a\": 1}.size() == 1", "accept_offer");
    assert!(msg.contains("map literal"), "{msg}");
    let msg = refused(on, "entry.time < now()", "accept_offer");
    assert!(msg.contains("now()"), "{msg}");
    let msg = refused(on, "entry.from + entry.to == \"ab\"", "accept_offer");
    assert!(
        msg.contains("+ is not defined for string and string"),
        "{msg}"
    );
    let msg = refused("envelope:medical.request", "grant.break_glass", "escalate");
    assert!(msg.contains("unknown name \"grant\""), "{msg}");
    let msg = refused(on, "entry.from ==", "accept_offer");
    assert!(msg.contains("does not parse"), "{msg}");
}

#[test]
fn optional_fields_are_read_through_has() {
    let on = "envelope:record.send";
    load(
        on,
        "has(entry.tag) && entry.tag.startsWith(\"LAP-\")",
        "escalate",
    )
    .expect("has");
    let msg = refused(on, "has(entry.from)", "escalate");
    assert!(msg.contains("has() on \"from\""), "{msg}");
}

#[test]
fn a_condition_costs_what_its_loops_can_run_over() {
    let on = "envelope:inventory.report";
    // One scan of a full report is within the bound...
    let scan = load(on, "\"LAP-1\" in report.observed", "escalate").expect("scan");
    assert!(scan.checked.cost > 100_000, "{:?}", scan.checked);
    // ...a search through each of its tags is not.
    let msg = refused(
        on,
        "report.observed.exists(t, t.contains(\"LAP\"))",
        "escalate",
    );
    assert!(msg.contains("over the limit of 200000"), "{msg}");
    // Deep nesting is refused by the parser's bound, not by the stack.
    let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    let msg = refused(on, &deep, "escalate");
    assert!(msg.contains("does not parse"), "{msg}");
    let long = format!("entry.from == \"{}\"", "a".repeat(MAX_CONDITION));
    assert!(refused(on, &long, "escalate").contains("bytes, over"));
}

#[test]
fn actions_take_their_parameters_and_only_their_triggers() {
    let msg = refused("envelope:record.send", "true", "accept_offer");
    assert!(
        msg.contains("accept_offer cannot act on envelope:record.send"),
        "{msg}"
    );
    let msg = refused("offer.opened", "true", "close_discrepancy");
    assert!(
        msg.contains("close_discrepancy cannot act on offer.opened"),
        "{msg}"
    );
    let msg = refused("offer.opened", "true", "self_destruct");
    assert!(msg.contains("unknown action \"self_destruct\""), "{msg}");

    let mut deadline = spec("envelope:inventory.report", "true", "set_deadline");
    let e = Contract::load(&deadline, &registry()).expect_err("no name");
    assert!(e.to_string().contains("needs deadline"), "{e}");
    deadline.deadline = Some("count-due".into());
    deadline.after_hours = Some(MAX_AFTER_HOURS + 1);
    let e = Contract::load(&deadline, &registry()).expect_err("over a year");
    assert!(
        e.to_string().contains("after_hours must be 0 to 8784"),
        "{e}"
    );
    deadline.after_hours = Some(0);
    Contract::load(&deadline, &registry()).expect("due at the next tick");
    deadline.after_hours = Some(72);
    let c = Contract::load(&deadline, &registry()).expect("deadline");
    assert_eq!(
        c.action,
        Action::SetDeadline {
            name: "count-due".into(),
            hours: 72
        }
    );

    let mut notify = spec("discrepancy.opened", "true", "notify");
    notify.to = Some("nasa".into());
    let e = Contract::load(&notify, &registry()).expect_err("unknown agency");
    assert!(e.to_string().contains("lists no such agency"), "{e}");
    notify.to = Some("gao".into());
    Contract::load(&notify, &registry()).expect("notify gao");
    notify.to = Some("holder".into());
    let e = Contract::load(&notify, &registry()).expect_err("no asset here");
    assert!(e.to_string().contains("bind an asset"), "{e}");
    let mut extra = spec("offer.opened", "true", "accept_offer");
    extra.to = Some("gao".into());
    let e = Contract::load(&extra, &registry()).expect_err("extra");
    assert!(e.to_string().contains("accept_offer takes no to"), "{e}");
}

#[test]
fn a_failing_evaluation_is_an_error_not_a_panic() {
    let c = load(
        "envelope:record.send",
        "entry.time / (entry.index - 7) > 0",
        "escalate",
    )
    .expect("loads");
    let bindings = BTreeMap::from([(
        "entry",
        json!({"index": 7, "kind": "record.send", "from": "state", "to": "gsa",
               "jti": "j", "time": 10}),
    )]);
    assert_eq!(c.holds(&bindings), Err(EvalError::DivisionByZero));
    assert_eq!(EvalError::DivisionByZero.code(), "division_by_zero");
    let missing = load("envelope:record.send", "entry.tag == \"x\"", "escalate").expect("loads");
    assert_eq!(missing.holds(&bindings), Err(EvalError::Missing));
    // A null field is one the record lacks.
    let nulls = BTreeMap::from([(
        "entry",
        json!({"index": 7, "kind": "record.send", "from": "state", "to": "gsa",
               "jti": "j", "time": 10, "tag": null}),
    )]);
    let has = load("envelope:record.send", "!has(entry.tag)", "escalate").expect("loads");
    assert_eq!(has.holds(&nulls), Ok(true));
}

/// Loops inside loops cost the product of what they run over, which
/// saturates rather than wrapping round to a small number.
#[test]
fn nested_loops_cannot_wrap_the_cost_round() {
    let on = "envelope:inventory.report";
    let mut when = "true".to_owned();
    for v in ["a", "b", "c", "d", "e"] {
        when = format!("report.observed.all({v}, {when})");
    }
    let msg = refused(on, &when, "escalate");
    assert!(msg.contains("over the limit of 200000"), "{msg}");
    let msg = refused(on, &format!("[{when}][0]"), "escalate");
    assert!(msg.contains("over the limit"), "{msg}");
}

/// A chain of operators nests as deep as it is long: it is bounded before
/// the parser, the checker or the evaluator recurse over it, so the
/// longest one taken loads and runs on a worker's 2 MiB stack.
#[test]
fn operator_chains_are_bounded_before_anything_recurses() {
    let chain = |n: usize| format!("entry.index{} > 0", " + 1".repeat(n));
    let msg = refused("envelope:record.send", &chain(300), "escalate");
    assert!(msg.contains("operators, over 256"), "{msg}");
    let longest = chain(240);
    let ran = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let c = load("envelope:record.send", &longest, "escalate").expect("loads");
            let bindings = BTreeMap::from([(
                "entry",
                json!({"index": 7, "kind": "record.send", "from": "state", "to": "gsa",
                       "jti": "j", "time": 10}),
            )]);
            c.holds(&bindings)
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert_eq!(ran, Ok(true));
    // Operators inside string literals are text, not operators.
    let text = format!("entry.from != \"{}\"", "+".repeat(1000));
    load("envelope:record.send", &text, "escalate").expect("a long literal");
}

#[test]
fn a_set_refuses_names_twice_and_triggers_that_cost_too_much() {
    let a = load("offer.opened", "true", "reject_offer").expect("a");
    let e = Contracts::new(vec![a.clone(), a.clone()]).expect_err("twice");
    assert_eq!(e, SetError::Duplicate("c".into()));
    let scan = |i: usize| {
        let mut s = spec(
            "envelope:inventory.report",
            "\"X\" in report.observed",
            "escalate",
        );
        s.name = format!("scan-{i}");
        Contract::load(&s, &registry()).expect("scan")
    };
    let e = Contracts::new((0..20).map(scan).collect()).expect_err("costly");
    assert!(matches!(e, SetError::TooCostly { .. }), "{e}");
    let set = Contracts::new((0..3).map(scan).collect()).expect("three");
    let on: Vec<&str> = set
        .on(&"envelope:inventory.report".parse().expect("trigger"))
        .map(|c| c.spec.name.as_str())
        .collect();
    assert_eq!(on, ["scan-0", "scan-1", "scan-2"]);
    assert_eq!(set.on(&Trigger::GrantMade).count(), 0);
}

#[test]
fn names_are_a_restricted_alphabet() {
    for good in ["a", "count-due", "x9", &"a".repeat(64)] {
        assert!(is_name(good), "{good}");
    }
    for bad in ["", "-a", "A", "a b", "a_b", "é", &"a".repeat(65)] {
        assert!(!is_name(bad), "{bad}");
    }
}

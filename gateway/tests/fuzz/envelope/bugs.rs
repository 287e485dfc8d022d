//! The envelope targets that found bugs in `envelope::open` (an overflow in
//! the time messages, an echoed `alg`, echoed claim names and numbers), now
//! fixed and kept as regressions; their minimal inputs are in
//! `fuzz/corpus/envelope-regressions/` (docs/fuzzing.md).

use proptest::prelude::*;
use serde_json::json;
use xgate_server::envelope::{Envelope, Rejection};

use super::{ClaimsEdit, FED, json_bytes, mutate_seed, time};
use crate::check;
use crate::mutate::{MARKER, marked_string};

/// What opening a regression seed did: `Err(())` if it panicked.
type Outcome = Result<Result<Envelope, Rejection>, ()>;

/// Opens the regression seeds whose names start with `prefix`, catching
/// panics.
fn regressions(prefix: &str) -> Vec<(String, Outcome)> {
    let fed = &*FED;
    fed.regressions
        .iter()
        .filter(|(name, _, _)| name.starts_with(prefix))
        .map(|(name, header, claims)| {
            let compact = fed.sign(&json_bytes(header), &json_bytes(claims));
            let open = std::panic::AssertUnwindSafe(|| fed.open(compact.as_bytes()));
            let result = std::panic::catch_unwind(open).map_err(drop);
            (name.clone(), result)
        })
        .collect()
}

#[test]
fn envelope_times_at_the_edge_of_i64_never_panic() {
    for (name, result) in regressions("panic-") {
        assert!(result.is_ok(), "{name}: open panicked");
    }
    let strategy = (time(), 1i64..=300);
    check(strategy, |(iat, lifetime)| {
        let (header, payload) = mutate_seed(0, &[], &[ClaimsEdit::Lifetime(iat, lifetime)]);
        let result =
            std::panic::catch_unwind(|| FED.open(FED.sign(&header, &payload).as_bytes()).map(drop));
        prop_assert!(
            result.is_ok(),
            "open panicked on iat {iat}, exp {}",
            iat.saturating_add(lifetime)
        );
        Ok(())
    });
}

#[test]
fn envelope_rejections_never_echo_header_values() {
    for (name, result) in regressions("echo-alg") {
        let message = result.expect("no panic").expect_err("refused").to_string();
        assert!(!message.contains(MARKER), "{name}: {message}");
    }
    check(marked_string(), |alg| {
        let (header, claims) = &FED.seeds[0];
        let mut header = header.clone();
        header["alg"] = json!(alg);
        let err = FED.open(
            FED.sign(&json_bytes(&header), &json_bytes(claims))
                .as_bytes(),
        );
        let message = err.expect_err("refused").to_string();
        prop_assert!(!message.contains(MARKER), "echoes input: {message}");
        Ok(())
    });
}

#[test]
fn envelope_rejections_never_echo_claim_names_or_numbers() {
    for (name, result) in regressions("echo-claim-") {
        let message = result.expect("no panic").expect_err("refused").to_string();
        let quoted = message.contains(MARKER) || message.contains("7357911131719");
        assert!(!quoted, "{name}: {message}");
    }
    let claim = prop::sample::select(vec!["jti", "iss", "aud", "kind", "body", "iat", "exp"]);
    let value = prop_oneof![
        (1_000_000_000_000i64..i64::MAX).prop_map(|n| (None, json!(n))),
        (1e12f64..1e15).prop_map(|n| (None, json!(n + 0.5))),
        Just((None, json!(u64::MAX))),
        marked_string().prop_map(|k| (Some(k), json!(1))),
    ];
    check((claim, value), |(claim, (unknown, value))| {
        let (header, claims) = &FED.seeds[0];
        let mut claims = claims.clone();
        claims[unknown.as_deref().unwrap_or(claim)] = value.clone();
        let err = FED.open(
            FED.sign(&json_bytes(header), &json_bytes(&claims))
                .as_bytes(),
        );
        let message = err.expect_err("refused").to_string();
        let quoted = unknown.as_ref().map_or(value.to_string(), Clone::clone);
        prop_assert!(!message.contains(&quoted), "quotes {quoted}: {message}");
        Ok(())
    });
}

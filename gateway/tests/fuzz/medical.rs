//! `medical::jwe::inspect` and `bundle::validate` on arbitrary
//! bytes and on mutations of valid inputs: a fresh JWE, the IPS fixtures in
//! `tests/fixtures/ips/`, and the seeds in `fuzz/corpus/{jwe,bundle}/`.

use std::path::PathBuf;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use xgate::bundle::{self, Section};
use xgate_server::medical::jwe;

use crate::bodies::KEYS;
use crate::check;
use crate::mutate::{MARKER, apply_bytes, apply_json, byte_edits, corpus, json_edits};

/// JWE seeds: the fresh valid one first, then the corpus.
static JWES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut seeds = vec![KEYS.1.clone()];
    seeds.extend(
        corpus("jwe")
            .into_iter()
            .map(|(_, b)| String::from_utf8_lossy(&b).trim_end().to_owned()),
    );
    seeds
});

/// Bundle seeds: the IPS fixtures, then the corpus.
static BUNDLES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ips");
    let mut seeds: Vec<Vec<u8>> = ["ips-jordan.json", "ips-avery.json"]
        .iter()
        .map(|f| std::fs::read(fixtures.join(f)).expect("fixture"))
        .collect();
    seeds.extend(corpus("bundle").into_iter().map(|(_, b)| b));
    seeds
});

#[test]
fn jwe_inspect_never_panics_on_arbitrary_or_mutated_input() {
    let strategy = (any::<Option<Index>>(), "\\PC{0,300}", byte_edits(4));
    check(strategy, |(seed, text, edits)| {
        let input = match seed {
            None => text,
            Some(i) => {
                let base = &JWES[i.index(JWES.len())];
                String::from_utf8_lossy(&apply_bytes(base.as_bytes(), &edits)).into_owned()
            }
        };
        let _ = jwe::inspect(&input);
        Ok(())
    });
}

#[test]
fn jwe_inspect_refuses_mutated_headers_without_quoting_them() {
    let strategy = (json_edits(4), any::<Index>(), byte_edits(2), any::<bool>());
    check(strategy, |(edits, part, bytes, mutate_part)| {
        let valid = &JWES[0];
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        let header: Value =
            serde_json::from_slice(&B64URL.decode(&parts[0]).expect("b64")).expect("json");
        parts[0] = B64URL.encode(serde_json::to_vec(&apply_json(&header, &edits)).expect("json"));
        if mutate_part {
            let p = part.index(parts.len());
            parts[p] =
                String::from_utf8_lossy(&apply_bytes(parts[p].as_bytes(), &bytes)).into_owned();
        }
        match jwe::inspect(&parts.join(".")) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().contains(MARKER), "quotes input: {e}"),
        }
        Ok(())
    });
}

#[test]
fn bundle_validate_never_panics_or_quotes_values() {
    let strategy = (
        any::<Index>(),
        prop_oneof![
            json_edits(4).prop_map(|e| (Some(e), None)),
            byte_edits(4).prop_map(|e| (None, Some(e))),
        ],
        prop::sample::subsequence(Section::ALL.to_vec(), 0..=3),
    );
    check(strategy, |(seed, (json, bytes), required)| {
        let base = &BUNDLES[seed.index(BUNDLES.len())];
        let input = match (json, bytes) {
            (Some(edits), _) => {
                let Ok(value) = serde_json::from_slice::<Value>(base) else {
                    return Ok(());
                };
                serde_json::to_vec(&apply_json(&value, &edits)).expect("json")
            }
            (_, Some(edits)) => apply_bytes(base, &edits),
            _ => base.clone(),
        };
        if let Err(e) = bundle::validate(&input, &required) {
            prop_assert!(!e.to_string().contains(MARKER), "quotes input: {e}");
        }
        Ok(())
    });
}

#[test]
fn bundle_validate_never_panics_on_arbitrary_bytes() {
    check(prop::collection::vec(any::<u8>(), 0..300), |bytes| {
        prop_assert!(bundle::validate(&bytes, &[]).is_err());
        Ok(())
    });
}

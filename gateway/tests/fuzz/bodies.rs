//! The asset and medical body schemas (`Op::parse` of every kind) on
//! arbitrary JSON trees and on mutations of valid bodies. Every string the
//! generators make, and every free-text value in the seeds, carries the
//! marker: a refusal that contains it quotes input.

use std::sync::LazyLock;

use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};
use xgate_server::apply::{asset, medical as medical_ops};
use xgate_server::kind::Kind;
use xgate_server::medical;

use crate::check;
use crate::mutate::{MARKER, apply_json, json_corpus, json_edits, json_value};

/// A public reply key and a JWE to it, made fresh: seeds say `$reply_jwk`
/// and `$jwe` where they go.
pub static KEYS: LazyLock<(Value, String)> = LazyLock::new(|| {
    let mut key = Jwk::generate_ec_key(EcCurve::P256).expect("key");
    key.set_key_id("QZX-reply");
    let public = key.to_public_key().expect("public");
    let map: Map<String, Value> = public.as_ref().clone();
    let jwe = medical::jwe::encrypt(b"{\"QZX\": 1}", &map).expect("jwe");
    (Value::Object(map), jwe)
});

/// `(kind, body)` seeds, valid for their kind.
static SEEDS: LazyLock<Vec<(Kind, Value)>> = LazyLock::new(|| {
    json_corpus("bodies")
        .into_iter()
        .map(|(name, seed)| {
            let kind: Kind = seed["kind"]
                .as_str()
                .expect("kind")
                .parse()
                .expect("a kind");
            let mut body = seed["body"].clone();
            for v in body.as_object_mut().expect("object").values_mut() {
                match v.as_str() {
                    Some("$reply_jwk") => *v = KEYS.0.clone(),
                    Some("$jwe") => *v = Value::String(KEYS.1.clone()),
                    _ => {}
                }
            }
            assert!(parse(kind, &body).is_ok(), "seed {name} is valid");
            (kind, body)
        })
        .collect()
});

/// Parses `body` as `kind` with whichever module handles it.
fn parse(kind: Kind, body: &Value) -> Result<(), String> {
    let empty = Map::new();
    let map = body.as_object().unwrap_or(&empty);
    asset::Op::parse(kind, map).map_err(|e| e.to_string())?;
    medical_ops::Op::parse(kind, map).map_err(|e| e.to_string())?;
    Ok(())
}

fn refuses_cleanly(kind: Kind, body: &Value) -> Result<(), TestCaseError> {
    if let Err(e) = parse(kind, body) {
        prop_assert!(!e.contains(MARKER), "{kind} refusal quotes input: {e}");
    }
    Ok(())
}

#[test]
fn body_schemas_never_panic_or_echo_on_arbitrary_json() {
    let strategy = (prop::sample::select(Kind::ALL.to_vec()), json_value(4));
    check(strategy, |(kind, value)| {
        let body = match value {
            Value::Object(_) => value,
            other => Value::Object(Map::from_iter([("tag".to_owned(), other)])),
        };
        refuses_cleanly(kind, &body)
    });
}

#[test]
fn body_schemas_never_panic_or_echo_on_mutated_bodies() {
    let strategy = (any::<Index>(), json_edits(4), any::<Option<Index>>());
    check(strategy, |(seed, edits, other_kind)| {
        let (kind, body) = &SEEDS[seed.index(SEEDS.len())];
        // Sometimes a valid body of one kind, parsed as another.
        let kind = other_kind.map_or(*kind, |i| Kind::ALL[i.index(Kind::ALL.len())]);
        let body = apply_json(body, &edits);
        if body.is_object() {
            refuses_cleanly(kind, &body)?;
        }
        Ok(())
    });
}

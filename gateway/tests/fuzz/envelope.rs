//! `envelope::open` on arbitrary bytes, on byte-level mutations of signed
//! envelopes, and on mutated headers and claims signed again with the
//! sender's real key (so every check past the signature is reached).

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use josekit::jwk::Jwk;
use josekit::jws::JwsSigner;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use xgate_server::envelope::{
    self, ENVELOPE_TYP, Envelope, Limits, MAX_JTI_LEN, Rejection, Verifiers,
};
use xgate_server::registry::{AgencyId, Registry};

use crate::check;

/// Targets that found bugs, kept as regressions once fixed.
mod bugs;
use crate::mutate::{
    ByteEdit, JsonEdit, MARKER, apply_bytes, apply_json, byte_edits, json_corpus, json_edits,
    marked_string,
};

/// The gateway's clock in every case; seeds are written for it.
pub const NOW: i64 = 1_800_000_000;

/// A federation made by `xgate_server::pki::init`, its sender's key, and the
/// corpus seeds signed with it.
struct Federation {
    _dir: tempfile::TempDir,
    registry: Registry,
    verifiers: Verifiers,
    sender: AgencyId,
    signer: Box<dyn JwsSigner>,
    /// (header, claims) seeds, `$kid` replaced with the real kid.
    seeds: Vec<(Value, Value)>,
    /// Inputs that found bugs, by file name.
    regressions: Vec<(String, Value, Value)>,
    /// The seeds signed: every one opens.
    valid: Vec<String>,
}

static FED: LazyLock<Federation> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    let ids: Vec<AgencyId> = ["state", "hhs"]
        .iter()
        .map(|a| a.parse().expect("id"))
        .collect();
    let registry = xgate_server::pki::init(&pki, &ids, &[], false).expect("pki");
    let verifiers = Verifiers::from_registry(&registry).expect("verifiers");
    let bytes = std::fs::read(pki.join("state").join(xgate_server::pki::SIGNING_JWK)).expect("jwk");
    let jwk = Jwk::from_bytes(bytes).expect("jwk");
    let kid = jwk.key_id().expect("kid").to_owned();
    let signer: Box<dyn JwsSigner> =
        Box::new(josekit::jws::ES256.signer_from_jwk(&jwk).expect("signer"));
    let load = |target: &str| -> Vec<(String, Value, Value)> {
        json_corpus(target)
            .into_iter()
            .map(|(name, seed)| {
                let text = seed["header"].to_string().replace("$kid", &kid);
                let header = serde_json::from_str(&text).expect("header");
                (name, header, seed["claims"].clone())
            })
            .collect()
    };
    let seeds = load("envelope")
        .into_iter()
        .map(|(_, h, c)| (h, c))
        .collect();
    let regressions = load("envelope-regressions");
    let mut fed = Federation {
        _dir: dir,
        registry,
        verifiers,
        sender: ids[0].clone(),
        signer,
        seeds,
        regressions,
        valid: Vec::new(),
    };
    fed.valid = fed
        .seeds
        .iter()
        .map(|(h, c)| fed.sign(&json_bytes(h), &json_bytes(c)))
        .collect();
    fed
});

impl Federation {
    /// A compact JWS over exactly these header and payload bytes.
    fn sign(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
        let signature = self.signer.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", B64URL.encode(signature))
    }

    fn open(&self, compact: &[u8]) -> Result<Envelope, Rejection> {
        envelope::open(
            compact,
            &self.sender,
            &self.verifiers,
            &self.registry,
            Limits::default(),
            NOW,
        )
    }
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

/// What an envelope that opens must satisfy, whatever it was made from.
fn check_accepted(env: &Envelope) -> Result<(), TestCaseError> {
    let fed = &*FED;
    let (h64, _) = env.compact.split_once('.').expect("compact");
    let header: Value = serde_json::from_slice(&B64URL.decode(h64).expect("b64")).expect("json");
    prop_assert_eq!(&header["alg"], "ES256");
    prop_assert_eq!(&header["typ"], ENVELOPE_TYP);
    prop_assert!(header.get("crit").is_none());
    prop_assert_eq!(&env.iss, &fed.sender);
    prop_assert!(fed.registry.get(&env.aud).is_some());
    prop_assert!(!env.jti.is_empty() && env.jti.len() <= MAX_JTI_LEN);
    prop_assert!(env.iat < env.exp && env.exp - env.iat <= Limits::default().max_lifetime);
    prop_assert!(env.iat <= NOW + 60 && env.exp >= NOW - 60);
    Ok(())
}

/// Header edits that reach past the `alg` check: forbidden and pointing
/// members, wrong `typ` and `kid`, duplicate members in the raw text.
#[derive(Clone, Debug)]
enum HeaderEdit {
    Alg(&'static str),
    Set(&'static str, Value),
    Remove(&'static str),
    /// A second member with the same name, as raw JSON text.
    Duplicate(&'static str, Value),
}

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    let member = prop::sample::select(vec![
        "typ", "kid", "crit", "jku", "x5u", "x5c", "jwk", "cty", "b64",
    ]);
    let value = prop_oneof![
        marked_string().prop_map(Value::String),
        Just(json!(["exp"])),
        Just(json!({"kty": "oct", "k": "QZXc2VjcmV0"})),
        Just(json!(ENVELOPE_TYP)),
        Just(json!(false)),
        Just(Value::Null),
    ];
    prop_oneof![
        2 => prop::sample::select(vec!["none", "HS256", "RS256", "EdDSA", "ES256", "es256", ""])
            .prop_map(HeaderEdit::Alg),
        3 => (member.clone(), value.clone()).prop_map(|(m, v)| HeaderEdit::Set(m, v)),
        1 => prop::sample::select(vec!["typ", "kid", "alg"]).prop_map(HeaderEdit::Remove),
        1 => (prop::sample::select(vec!["typ", "kid", "crit"]), value)
            .prop_map(|(m, v)| HeaderEdit::Duplicate(m, v)),
        // Marked `alg` values are echoed: envelope_rejections_never_echo_...
        1 => prop::sample::select(vec!["none", "HS256", "ES256"])
            .prop_map(|a| HeaderEdit::Duplicate("alg", json!(a))),
    ]
}

/// Claims edits: times at the edges of `i64`, and general JSON edits whose
/// strings carry the marker.
#[derive(Clone, Debug)]
enum ClaimsEdit {
    Json(Vec<JsonEdit>),
    Times(i64, i64),
    /// `exp` just after `iat`, `iat` anywhere.
    Lifetime(i64, i64),
    /// Raw payload bytes spliced in: invalid UTF-8, a duplicate member.
    Raw(Vec<ByteEdit>),
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            NOW - 61,
            NOW,
            NOW + 61,
            i64::MAX
        ]),
        (NOW - 400)..(NOW + 400),
        any::<i64>(),
    ]
}

fn claims_edit() -> impl Strategy<Value = ClaimsEdit> {
    prop_oneof![
        4 => json_edits(3).prop_map(ClaimsEdit::Json),
        2 => (time(), time()).prop_map(|(a, b)| ClaimsEdit::Times(a, b)),
        1 => (time(), 1i64..=300).prop_map(|(a, d)| ClaimsEdit::Lifetime(a, d)),
        1 => byte_edits(3).prop_map(ClaimsEdit::Raw),
    ]
}

/// The seed's header and claims with `edits` applied, as bytes to sign.
fn mutate_seed(
    seed: usize,
    header_edits: &[HeaderEdit],
    claims_edits: &[ClaimsEdit],
) -> (Vec<u8>, Vec<u8>) {
    let (header, claims) = &FED.seeds[seed % FED.seeds.len()];
    let mut header = header.clone();
    let mut duplicates = String::new();
    for edit in header_edits {
        match edit {
            HeaderEdit::Alg(a) => header["alg"] = json!(a),
            HeaderEdit::Set(m, v) => header[*m] = v.clone(),
            HeaderEdit::Remove(m) => drop(header.as_object_mut().and_then(|o| o.remove(*m))),
            HeaderEdit::Duplicate(m, v) => duplicates.push_str(&format!(",{}:{v}", json!(m))),
        }
    }
    let mut header = json_bytes(&header);
    header.splice(header.len() - 1..header.len() - 1, duplicates.into_bytes());
    let mut claims = claims.clone();
    let mut raw = Vec::new();
    for edit in claims_edits {
        match edit {
            ClaimsEdit::Json(edits) => claims = apply_json(&claims, edits),
            ClaimsEdit::Times(iat, exp) => set_times(&mut claims, *iat, *exp),
            ClaimsEdit::Lifetime(iat, d) => set_times(&mut claims, *iat, iat.saturating_add(*d)),
            ClaimsEdit::Raw(edits) => raw.extend(edits.iter().cloned()),
        }
    }
    (header, apply_bytes(&json_bytes(&claims), &raw))
}

/// Sets `iat` and `exp` when the claims are still an object.
fn set_times(claims: &mut Value, iat: i64, exp: i64) {
    if let Some(object) = claims.as_object_mut() {
        object.insert("iat".into(), json!(iat));
        object.insert("exp".into(), json!(exp));
    }
}

#[test]
fn envelope_open_never_panics_on_arbitrary_bytes() {
    let parts =
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..5).prop_map(|parts| {
            parts
                .iter()
                .map(|p| B64URL.encode(p))
                .collect::<Vec<_>>()
                .join(".")
                .into_bytes()
        });
    let strategy = prop_oneof![prop::collection::vec(any::<u8>(), 0..400), parts];
    check(strategy, |bytes| {
        prop_assert!(FED.open(&bytes).is_err());
        Ok(())
    });
}

#[test]
fn envelope_open_refuses_byte_mutations_of_signed_envelopes() {
    let strategy = (any::<Index>(), any::<Index>(), byte_edits(4), 0usize..4);
    check(strategy, |(a, b, edits, swap)| {
        let fed = &*FED;
        let original = &fed.valid[a.index(fed.valid.len())];
        let mut input = apply_bytes(original.as_bytes(), &edits);
        if swap > 0 {
            // Swap one base64 part with the same part of another envelope.
            let other = &fed.valid[b.index(fed.valid.len())];
            let mut parts: Vec<&str> = original.split('.').collect();
            parts[swap - 1] = other.split('.').nth(swap - 1).expect("part");
            input = parts.join(".").into_bytes();
        }
        if let Ok(env) = fed.open(&input) {
            prop_assert!(
                fed.valid.contains(&env.compact),
                "a mutated envelope opened: {:?}",
                env.compact
            );
        }
        Ok(())
    });
}

#[test]
fn envelope_open_never_panics_and_refuses_cleanly() {
    let strategy = (
        any::<Index>(),
        prop::collection::vec(header_edit(), 0..3),
        prop::collection::vec(claims_edit(), 0..3),
    );
    check(strategy, |(seed, header_edits, claims_edits)| {
        let (header, payload) = mutate_seed(seed.index(usize::MAX), &header_edits, &claims_edits);
        match FED.open(FED.sign(&header, &payload).as_bytes()) {
            Ok(env) => check_accepted(&env)?,
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.contains(MARKER), "echoes input: {message}");
            }
        }
        Ok(())
    });
}

#[test]
fn envelope_seeds_open() {
    for compact in &FED.valid {
        FED.open(compact.as_bytes())
            .expect("every envelope seed is valid");
    }
}

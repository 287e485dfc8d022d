//! The hostile-input corpus, envelope half: a table of crafted JWS bodies
//! posted to a real gateway over mutual TLS, each with the status and error
//! code it must get, and a check that nothing was stored (the log's size
//! and every agency's inbox are unchanged). The rules pinned here: keys
//! come from the registry only (`jku`, `jwk`, `x5u`, `x5c` are refused as
//! `unsupported_header`, so are `crit` and `b64`), `none` and HMAC never
//! verify, `jti` is a non-empty string of at most 128 characters, another
//! agency's envelope (even validly signed by it) is `identity_mismatch`,
//! duplicate keys or deep nesting are `malformed`, and so is a sealed part
//! that is not a JWE for the recipient's registered encryption key.
//!
//! The HTTP and connection half is `hostile_http.rs`.

mod federation;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, HS256, JwsSigner};
use serde_json::{Value, json};
use xgate_server::medical::jwe;
use xgate_server::registry::Registry;

use federation::assets::{AGENCIES, federation};
use federation::{Federation, error_code, runtime, snapshot};

/// What a case sends: a whole JWS, or the parts to sign.
enum Jws {
    /// Header and claims JSON as text (so duplicate keys survive), signed
    /// with state's key.
    Signed(String, String),
    /// Header and claims as text, signed with another agency's key.
    SignedBy(&'static str, String, String),
    /// Exactly these bytes.
    Raw(Vec<u8>),
}

struct Case {
    name: &'static str,
    jws: Jws,
    status: StatusCode,
    code: &'static str,
}

fn now() -> i64 {
    federation::assets::now()
}

/// state's usual header, with `extra` members merged in.
fn header(extra: Value) -> String {
    let mut h = json!({"alg": "ES256", "typ": "xgate-envelope+jwt", "kid": KID.with(|k| k.borrow().clone())});
    if let (Some(h), Value::Object(extra)) = (h.as_object_mut(), extra) {
        h.extend(extra);
    }
    h.to_string()
}

/// A valid record from state to treasury, with `edit` applied to the claims.
fn claims(edit: impl Fn(&mut Value)) -> String {
    let mut c = json!({"iss": "state", "aud": "treasury", "jti": xgate::client::random_jti().expect("jti"),
        "iat": now(), "exp": now() + 60, "kind": "record.send", "body": {"record": "x"}});
    edit(&mut c);
    c.to_string()
}

thread_local! {
    static KID: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    static REGISTRY: std::cell::RefCell<Option<Registry>> = const { std::cell::RefCell::new(None) };
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sign_with(jwk: &Jwk, header: &str, claims: &str) -> String {
    let signer = ES256.signer_from_jwk(jwk).expect("signer");
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = signer.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(&sig))
}

fn private_key(fed: &Federation, agency: &str) -> Jwk {
    let path = fed.pki().join(agency).join(xgate_server::pki::SIGNING_JWK);
    Jwk::from_bytes(std::fs::read(path).expect("key")).expect("jwk")
}

fn cases(fed: &Federation) -> Vec<Case> {
    let state = private_key(fed, "state");
    let treasury_kid = private_key(fed, "treasury")
        .key_id()
        .expect("kid")
        .to_owned();
    let public = state.to_public_key().expect("public");
    KID.with(|k| *k.borrow_mut() = state.key_id().expect("kid").to_owned());
    let registry = Registry::load(&fed.pki().join(xgate_server::pki::REGISTRY)).expect("registry");
    REGISTRY.with(|r| *r.borrow_mut() = Some(registry));
    let ok = || claims(|_| {});
    let hs256 = {
        // HMAC keyed with the bytes of state's public key: the classic
        // algorithm-confusion forgery.
        let secret = public.to_string();
        let h = header(json!({"alg": "HS256"}));
        let input = format!("{}.{}", b64(h.as_bytes()), b64(ok().as_bytes()));
        let signer = HS256.signer_from_bytes(secret.as_bytes()).expect("hmac");
        format!(
            "{input}.{}",
            b64(&signer.sign(input.as_bytes()).expect("sign"))
        )
    };
    let unsigned = format!(
        "{}.{}.",
        b64(header(json!({"alg": "none"})).as_bytes()),
        b64(ok().as_bytes())
    );
    let swapped = {
        // A valid signature over other claims.
        let a = sign_with(&state, &header(json!({})), &ok());
        let b = sign_with(&state, &header(json!({})), &ok());
        let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
        format!("{}.{}.{}", pa[0], pb[1], pa[2])
    };
    let dup_header = format!(
        r#"{{"alg":"ES256","typ":"xgate-envelope+jwt","kid":"{}","alg":"none"}}"#,
        KID.with(|k| k.borrow().clone())
    );
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let signed = |name, h: String, c: String, status, code| Case {
        name,
        jws: Jws::Signed(h, c),
        status,
        code,
    };
    let bad = StatusCode::BAD_REQUEST;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let h = || header(json!({}));
    vec![
        // The algorithm and the keys.
        Case {
            name: "alg none, no signature",
            jws: Jws::Raw(unsigned.into_bytes()),
            status: bad,
            code: "unsupported_alg",
        },
        Case {
            name: "HS256 keyed with the public key",
            jws: Jws::Raw(hs256.into_bytes()),
            status: bad,
            code: "unsupported_alg",
        },
        signed(
            "alg RS256",
            header(json!({"alg": "RS256"})),
            ok(),
            bad,
            "unsupported_alg",
        ),
        signed(
            "alg missing",
            r#"{"typ":"xgate-envelope+jwt"}"#.into(),
            ok(),
            bad,
            "malformed",
        ),
        signed(
            "kid of another key",
            header(json!({"kid": "not-the-key"})),
            ok(),
            unauthorized,
            "bad_signature",
        ),
        signed(
            "kid missing",
            r#"{"alg":"ES256","typ":"xgate-envelope+jwt"}"#.into(),
            ok(),
            unauthorized,
            "bad_signature",
        ),
        Case {
            name: "signed with treasury's key as state",
            jws: Jws::SignedBy("treasury", h(), ok()),
            status: unauthorized,
            code: "bad_signature",
        },
        Case {
            // Treasury's own envelope, validly signed with its registered
            // key, sent over state's connection: issue 17, item 9.
            name: "another agency's validly signed envelope",
            jws: Jws::SignedBy(
                "treasury",
                header(json!({"kid": treasury_kid})),
                claims(|c| {
                    c["iss"] = json!("treasury");
                    c["aud"] = json!("gsa");
                }),
            ),
            status: StatusCode::FORBIDDEN,
            code: "identity_mismatch",
        },
        Case {
            name: "a signature over other claims",
            jws: Jws::Raw(swapped.into_bytes()),
            status: unauthorized,
            code: "bad_signature",
        },
        signed(
            "jku header",
            header(json!({"jku": "https://evil.example/keys"})),
            ok(),
            bad,
            "unsupported_header",
        ),
        signed(
            "x5u header",
            header(json!({"x5u": "https://evil.example/cert"})),
            ok(),
            bad,
            "unsupported_header",
        ),
        signed(
            "x5c header",
            header(json!({"x5c": ["MIIB"]})),
            ok(),
            bad,
            "unsupported_header",
        ),
        signed(
            "embedded jwk header",
            header(json!({"jwk": public.as_ref()})),
            ok(),
            bad,
            "unsupported_header",
        ),
        signed(
            "unknown crit",
            header(json!({"crit": ["exp"], "exp": 1})),
            ok(),
            bad,
            "unsupported_header",
        ),
        signed(
            "b64 false",
            header(json!({"b64": false, "crit": ["b64"]})),
            ok(),
            bad,
            "unsupported_header",
        ),
        signed(
            "b64 false without crit",
            header(json!({"b64": false})),
            ok(),
            bad,
            "unsupported_header",
        ),
        signed(
            "typ missing",
            format!(
                r#"{{"alg":"ES256","kid":"{}"}}"#,
                KID.with(|k| k.borrow().clone())
            ),
            ok(),
            bad,
            "malformed",
        ),
        signed(
            "typ JWT",
            header(json!({"typ": "JWT"})),
            ok(),
            bad,
            "malformed",
        ),
        signed(
            "duplicate alg in the header",
            dup_header,
            ok(),
            bad,
            "malformed",
        ),
        signed("header is an array", "[1,2]".into(), ok(), bad, "malformed"),
        // The structure.
        Case {
            name: "empty body",
            jws: Jws::Raw(Vec::new()),
            status: bad,
            code: "malformed",
        },
        Case {
            name: "two parts",
            jws: Jws::Raw(b"eyJhIjoxfQ.eyJhIjoxfQ".to_vec()),
            status: bad,
            code: "malformed",
        },
        Case {
            name: "four parts",
            jws: Jws::Raw(b"a.b.c.d".to_vec()),
            status: bad,
            code: "malformed",
        },
        Case {
            name: "invalid UTF-8",
            jws: Jws::Raw(vec![0xff, 0xfe, b'.', 0x80, b'.', 0x81]),
            status: bad,
            code: "malformed",
        },
        Case {
            name: "header not base64url",
            jws: Jws::Raw(b"***.e30.AA".to_vec()),
            status: bad,
            code: "malformed",
        },
        Case {
            name: "flattened JSON serialization",
            jws: Jws::Raw(br#"{"payload":"e30","protected":"e30","signature":"AA"}"#.to_vec()),
            status: bad,
            code: "malformed",
        },
        // The claims.
        signed("claims not JSON", h(), "not json".into(), bad, "malformed"),
        signed("claims an array", h(), "[]".into(), bad, "malformed"),
        signed(
            "iat beyond i64",
            h(),
            claims(|c| c["iat"] = json!(1e20)),
            bad,
            "malformed",
        ),
        signed(
            "iat as a string",
            h(),
            claims(|c| c["iat"] = json!("now")),
            bad,
            "malformed",
        ),
        signed(
            "exp as a float",
            h(),
            claims(|c| c["exp"] = json!(1.5)),
            bad,
            "malformed",
        ),
        signed(
            "negative iat and exp",
            h(),
            claims(|c| {
                c["iat"] = json!(-100);
                c["exp"] = json!(-50);
            }),
            unauthorized,
            "expired",
        ),
        signed(
            "iat at i64::MIN",
            h(),
            claims(|c| {
                c["iat"] = json!(i64::MIN);
                c["exp"] = json!(i64::MIN + 1);
            }),
            unauthorized,
            "expired",
        ),
        signed(
            "exp at i64::MAX",
            h(),
            claims(|c| c["exp"] = json!(i64::MAX)),
            bad,
            "lifetime_too_long",
        ),
        signed(
            "exp before iat",
            h(),
            claims(|c| c["exp"] = json!(now() - 10)),
            bad,
            "malformed",
        ),
        signed(
            "lifetime over 300 s",
            h(),
            claims(|c| c["exp"] = json!(now() + 301)),
            bad,
            "lifetime_too_long",
        ),
        signed(
            "iat in the future",
            h(),
            claims(|c| {
                c["iat"] = json!(now() + 600);
                c["exp"] = json!(now() + 660);
            }),
            unauthorized,
            "not_yet_valid",
        ),
        signed(
            "expired",
            h(),
            claims(|c| {
                c["iat"] = json!(now() - 600);
                c["exp"] = json!(now() - 540);
            }),
            unauthorized,
            "expired",
        ),
        signed(
            "jti a number",
            h(),
            claims(|c| c["jti"] = json!(42)),
            bad,
            "malformed",
        ),
        signed(
            "jti null",
            h(),
            claims(|c| c["jti"] = Value::Null),
            bad,
            "malformed",
        ),
        signed(
            "jti empty",
            h(),
            claims(|c| c["jti"] = json!("")),
            bad,
            "malformed",
        ),
        signed(
            "jti of 129 characters",
            h(),
            claims(|c| c["jti"] = json!("j".repeat(129))),
            bad,
            "malformed",
        ),
        signed(
            "jti with a slash",
            h(),
            claims(|c| c["jti"] = json!("../../etc")),
            bad,
            "malformed",
        ),
        signed(
            "jti with a NUL",
            h(),
            claims(|c| c["jti"] = json!("a\u{0}b")),
            bad,
            "malformed",
        ),
        signed(
            "iss another agency",
            h(),
            claims(|c| c["iss"] = json!("treasury")),
            StatusCode::FORBIDDEN,
            "identity_mismatch",
        ),
        signed(
            "iss a number",
            h(),
            claims(|c| c["iss"] = json!(7)),
            bad,
            "malformed",
        ),
        signed(
            "aud unknown",
            h(),
            claims(|c| c["aud"] = json!("nowhere")),
            unprocessable,
            "wrong_audience",
        ),
        signed(
            "aud with path traversal",
            h(),
            claims(|c| c["aud"] = json!("../treasury")),
            unprocessable,
            "wrong_audience",
        ),
        signed(
            "record to oneself",
            h(),
            claims(|c| c["aud"] = json!("state")),
            unprocessable,
            "wrong_audience",
        ),
        signed(
            "kind unknown",
            h(),
            claims(|c| c["kind"] = json!("record.teleport")),
            unprocessable,
            "unsupported_kind",
        ),
        signed(
            "kind an object",
            h(),
            claims(|c| c["kind"] = json!({})),
            bad,
            "malformed",
        ),
        signed(
            "body a string",
            h(),
            claims(|c| c["body"] = json!("x")),
            bad,
            "malformed",
        ),
        signed(
            "claim missing",
            h(),
            claims(|c| {
                c.as_object_mut().map(|m| m.remove("exp"));
            }),
            bad,
            "malformed",
        ),
        signed(
            "extra claim",
            h(),
            claims(|c| c["nbf"] = json!(0)),
            bad,
            "malformed",
        ),
        signed(
            "duplicate iss claim",
            h(),
            ok().replacen("{", r#"{"iss":"treasury","#, 1),
            bad,
            "malformed",
        ),
        signed(
            "duplicate key deep in the body",
            h(),
            claims(|c| c["body"] = json!({"a": {"b": 1}})).replace(r#""b":1"#, r#""b":1,"b":2"#),
            bad,
            "malformed",
        ),
        signed(
            "body nested 40 deep",
            h(),
            claims(|c| c["body"] = json!({"x": 0})).replace(r#""x":0"#, &format!(r#""x":{deep}"#)),
            bad,
            "malformed",
        ),
        // Bodies of the other kinds are checked too.
        signed(
            "asset tag of 65 characters",
            h(),
            claims(|c| {
                c["kind"] = json!("asset.register");
                c["aud"] = json!("state");
                c["body"] = json!({"tag": "T".repeat(65), "serial": "s", "category": "c", "description": "d",
                "holder": {"agency": "state", "person": "p"}, "location": "l"});
            }),
            bad,
            "malformed",
        ),
        signed(
            "medical request with a private reply key",
            h(),
            claims(|c| {
                c["kind"] = json!("medical.request");
                c["aud"] = json!("hhs");
                c["body"] = json!({"subject": "s", "purpose": "ETREAT", "incident": "i",
                "responder": {"name": "n", "role": "medical-officer"}, "sections": ["allergies"],
                "reply_key": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}});
            }),
            bad,
            "malformed",
        ),
        signed(
            "medical response with a payload that is not a JWE",
            h(),
            claims(|c| {
                c["kind"] = json!("medical.response");
                c["aud"] = json!("hhs");
                c["body"] = json!({"request": "r1", "payload": "a.b.c.d.e"});
            }),
            bad,
            "malformed",
        ),
        signed(
            "sealed record that is not a JWE",
            h(),
            claims(|c| c["body"] = json!({"sealed": "a.b.c.d.e"})),
            bad,
            "malformed",
        ),
        signed(
            "sealed record that is not a string",
            h(),
            claims(|c| c["body"] = json!({"sealed": {"a": 1}})),
            bad,
            "malformed",
        ),
        signed(
            "sealed record with a member in clear beside it",
            h(),
            claims(|c| c["body"] = json!({"sealed": sealed_to("treasury", SEALED), "note": "x"})),
            bad,
            "malformed",
        ),
        signed(
            "sealed record encrypted to another agency's key",
            h(),
            claims(|c| c["body"] = json!({"sealed": sealed_to("gsa", SEALED)})),
            bad,
            "malformed",
        ),
        signed(
            "sealed record whose JWE is a medical bundle",
            h(),
            claims(|c| c["body"] = json!({"sealed": sealed_to("treasury", jwe::BUNDLE_CTY)})),
            bad,
            "malformed",
        ),
        signed(
            "sealed medical request with its subject in clear too",
            h(),
            claims(|c| {
                c["kind"] = json!("medical.request");
                c["aud"] = json!("hhs");
                c["body"] = json!({"subject": "s", "purpose": "ETREAT",
                "responder": {"role": "medical-officer"}, "sections": ["allergies"],
                "reply_key": "k1", "sealed": sealed_to("hhs", SEALED)});
            }),
            bad,
            "malformed",
        ),
    ]
}

/// The `cty` of a sealed part.
const SEALED: &str = xgate_server::sealed::TYP;

/// A well-formed compact JWE with content type `cty` to `agency`'s
/// registered encryption key (what it holds is never looked at: the
/// gateway cannot decrypt it).
fn sealed_to(agency: &str, cty: &str) -> String {
    let registry = REGISTRY
        .with(|r| r.borrow().clone())
        .expect("the registry is loaded");
    let key = &registry
        .get(&agency.parse().expect("id"))
        .expect("registered")
        .encryption_key;
    jwe::encrypt_as(b"opaque", key, cty).expect("encrypt")
}

#[test]
fn every_hostile_envelope_gets_its_code_and_changes_nothing() {
    let fed = federation(&[]);
    let cases = cases(&fed);
    assert!(cases.len() >= 66, "the corpus has {} cases", cases.len());
    let mut client = fed.client("state");
    runtime().block_on(async {
        let before = snapshot(&fed, &AGENCIES).await;
        for case in &cases {
            let body = match &case.jws {
                Jws::Signed(h, c) => sign_with(&private_key(&fed, "state"), h, c).into_bytes(),
                Jws::SignedBy(agency, h, c) => {
                    sign_with(&private_key(&fed, agency), h, c).into_bytes()
                }
                Jws::Raw(bytes) => bytes.clone(),
            };
            let reply = client
                .request(
                    http::Method::POST,
                    "/v1/envelopes",
                    Some("application/jose"),
                    body,
                )
                .await
                .expect("a response");
            let text = String::from_utf8_lossy(&reply.body);
            assert_eq!(reply.status, case.status, "{}: {text}", case.name);
            assert_eq!(error_code(&reply), case.code, "{}: {text}", case.name);
        }
        assert_eq!(
            snapshot(&fed, &AGENCIES).await,
            before,
            "a refused envelope left a trace"
        );
        // The same client, the same connection: a valid envelope still goes
        // through, and its replay is refused.
        let jws = sign_with(
            &private_key(&fed, "state"),
            &header(json!({})),
            &claims(|_| {}),
        );
        let first = federation::submit(&mut client, &jws).await;
        assert_eq!(first.status, StatusCode::CREATED);
        let after = snapshot(&fed, &AGENCIES).await;
        let again = federation::submit(&mut client, &jws).await;
        assert_eq!(
            (again.status, error_code(&again)),
            (StatusCode::CONFLICT, "replayed".into())
        );
        assert_eq!(snapshot(&fed, &AGENCIES).await, after);
        // 128 characters is the longest jti, and it is accepted.
        let long = claims(|c| c["jti"] = json!("j".repeat(128)));
        let reply = federation::submit(
            &mut client,
            &sign_with(&private_key(&fed, "state"), &header(json!({})), &long),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    });
}

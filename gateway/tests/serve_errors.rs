//! Every refusal of `POST /v1/envelopes`, end to end: the exact status and
//! error code, a JSON error body, and no trace of the refused envelope in
//! the log, the recipient's inbox or the replay store.

mod federation;

use federation::{Federation, body, error_code, id, inbox_len, log_size, runtime, submit};
use http::{Method, StatusCode};
use josekit::jwk::Jwk;
use josekit::jws::{HS256, JwsHeader};
use serde_json::{Value, json};
use xgate::client::{Client, EnvelopeSigner};
use xgate_server::registry::Registry;

/// A policy that lets everyone send records, except gsa to state.
const POLICY: &str = r#"
version = 1

[[rule]]
name = "gsa may not send records to state"
kinds = ["record.send"]
from = ["gsa"]
to = ["state"]
effect = "deny"

[[rule]]
name = "records between members"
kinds = ["record.send"]
from = ["*"]
to = ["*"]
effect = "allow"
"#;

struct Setup {
    _policy_dir: tempfile::TempDir,
    fed: Federation,
    rt: tokio::runtime::Runtime,
    state: Client,
    treasury: Client,
    signer: EnvelopeSigner,
    jwk: Jwk,
}

impl Setup {
    /// A federation with one record already delivered to treasury, so the
    /// checks below compare against a non-empty log and inbox.
    fn new() -> Setup {
        let root = tempfile::tempdir().expect("tempdir");
        let policy = root.path().join("policy.toml");
        std::fs::write(&policy, POLICY).expect("policy");
        let policy = policy.display().to_string();
        let fed = Federation::start_with(
            &[],
            &[("XGATE_POLICY", &policy), ("XGATE_MAX_BODY_BYTES", "4096")],
        );
        let rt = runtime();
        let mut state = fed.client("state");
        let treasury = fed.client("treasury");
        let signer = fed.signer("state");
        let jwk = Jwk::from_bytes(std::fs::read(fed.pki().join("state/signing.jwk")).expect("jwk"))
            .expect("jwk");
        let jws = signer
            .sign(&id("treasury"), "record.send", body("first"), 60, None)
            .expect("sign");
        assert_eq!(
            rt.block_on(submit(&mut state, &jws)).status,
            StatusCode::CREATED
        );
        Setup {
            _policy_dir: root,
            fed,
            rt,
            state,
            treasury,
            signer,
            jwk,
        }
    }

    /// Signs `claims` with state's key and exactly the header fields
    /// `header` (josekit would otherwise fill in the key's own `kid`).
    fn sign_raw(&self, header: Value, claims: Value) -> String {
        let mut anonymous = self.jwk.clone();
        anonymous.set_parameter("kid", None).expect("drop kid");
        let signer = josekit::jws::ES256
            .signer_from_jwk(&anonymous)
            .expect("signer");
        let mut h = JwsHeader::new();
        for (k, v) in header.as_object().expect("header") {
            h.set_claim(k, Some(v.clone())).expect("header claim");
        }
        let payload = serde_json::to_vec(&claims).expect("claims");
        josekit::jws::serialize_compact(&payload, &h, &signer).expect("sign")
    }

    fn header(&self) -> Value {
        json!({"typ": "xgate-envelope+jwt", "kid": self.jwk.key_id().expect("kid")})
    }

    fn claims(&self) -> Value {
        let now = now();
        json!({
            "iss": "state", "aud": "treasury", "jti": xgate::client::random_jti().expect("jti"),
            "iat": now, "exp": now + 60, "kind": "record.send", "body": {"record": "x"},
        })
    }

    /// Submits `bytes` with `content_type` as state and checks the refusal
    /// and that nothing changed.
    fn refused(&mut self, content_type: &str, bytes: Vec<u8>, status: StatusCode, code: &str) {
        let before = (
            self.rt.block_on(log_size(&mut self.state)),
            self.rt.block_on(inbox_len(&mut self.treasury)),
        );
        let reply = self
            .rt
            .block_on(
                self.state
                    .request(Method::POST, "/v1/envelopes", Some(content_type), bytes),
            )
            .expect("a response");
        assert_eq!(
            reply.status,
            status,
            "{code}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(error_code(&reply), code);
        let after = (
            self.rt.block_on(log_size(&mut self.state)),
            self.rt.block_on(inbox_len(&mut self.treasury)),
        );
        assert_eq!(before, after, "{code}: the log and inbox are unchanged");
    }

    fn refused_jws(&mut self, jws: &str, status: StatusCode, code: &str) {
        self.refused("application/jose", jws.as_bytes().to_vec(), status, code);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn every_refusal_has_its_code_and_changes_nothing() {
    let mut s = Setup::new();
    let ok_claims = s.claims();

    // Transport-level refusals.
    s.refused(
        "text/plain",
        b"x.y.z".to_vec(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    s.refused(
        "application/jose",
        vec![b'a'; 5000],
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    // Structure and header.
    s.refused_jws("not a jws", StatusCode::BAD_REQUEST, "malformed");
    s.refused_jws("a.b.c", StatusCode::BAD_REQUEST, "malformed");
    let unsigned = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"xgate-envelope+jwt"}"#),
            b64.encode(serde_json::to_vec(&ok_claims).expect("claims"))
        )
    };
    s.refused_jws(&unsigned, StatusCode::BAD_REQUEST, "unsupported_alg");
    let hmac = {
        let key = HS256
            .signer_from_bytes(b"a shared secret of thirty-two b.")
            .expect("hmac");
        let mut h = JwsHeader::new();
        h.set_token_type("xgate-envelope+jwt");
        josekit::jws::serialize_compact(&serde_json::to_vec(&ok_claims).expect("claims"), &h, &key)
            .expect("sign")
    };
    s.refused_jws(&hmac, StatusCode::BAD_REQUEST, "unsupported_alg");
    let mut no_typ = s.header();
    no_typ["typ"] = json!("JWT");
    let jws = s.sign_raw(no_typ, ok_claims.clone());
    s.refused_jws(&jws, StatusCode::BAD_REQUEST, "malformed");

    // Signatures.
    let mut other_kid = s.header();
    other_kid["kid"] = json!("someone-else");
    let jws = s.sign_raw(other_kid, ok_claims.clone());
    s.refused_jws(&jws, StatusCode::UNAUTHORIZED, "bad_signature");
    let good = s.sign_raw(s.header(), ok_claims.clone());
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = {
        use base64::Engine as _;
        let mut tampered = ok_claims.clone();
        tampered["body"] = json!({"record": "changed"});
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&tampered).expect("claims"))
    };
    s.refused_jws(&parts.join("."), StatusCode::UNAUTHORIZED, "bad_signature");
    let gsa = s.fed.signer("gsa");
    let by_gsa = gsa
        .sign(&id("treasury"), "record.send", body("x"), 60, None)
        .expect("sign");
    // gsa's own envelope, validly signed, over state's connection: not a
    // bad signature but someone else's envelope (issue 17, item 9).
    s.refused_jws(&by_gsa, StatusCode::FORBIDDEN, "identity_mismatch");

    // Claims.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = ok_claims.clone();
        c["jti"] = json!(xgate::client::random_jti().expect("jti"));
        f(&mut c);
        c
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            with(&|c| c["iss"] = json!("treasury")),
            StatusCode::FORBIDDEN,
            "identity_mismatch",
        ),
        (
            with(&|c| c["aud"] = json!("nasa")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_audience",
        ),
        (
            with(&|c| c["aud"] = json!("state")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_audience",
        ),
        (
            with(&|c| {
                c["iat"] = json!(now() - 400);
                c["exp"] = json!(now() - 200);
            }),
            StatusCode::UNAUTHORIZED,
            "expired",
        ),
        (
            with(&|c| {
                c["iat"] = json!(now() + 200);
                c["exp"] = json!(now() + 300);
            }),
            StatusCode::UNAUTHORIZED,
            "not_yet_valid",
        ),
        (
            with(&|c| c["exp"] = json!(now() + 301)),
            StatusCode::BAD_REQUEST,
            "lifetime_too_long",
        ),
        (
            // A record's body under a medical kind: the body is checked.
            with(&|c| c["kind"] = json!("medical.request")),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            // A record's body under an asset kind: the body is checked.
            with(&|c| c["kind"] = json!("asset.register")),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            with(&|c| c["kind"] = json!("teleport")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_kind",
        ),
        (
            with(&|c| c["body"] = json!("not an object")),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            with(&|c| c["extra"] = json!(1)),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            with(&|c| c["jti"] = json!("has spaces")),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            with(&|c| c["iat"] = json!("yesterday")),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
    ];
    for (claims, status, code) in cases {
        let jws = s.sign_raw(s.header(), claims);
        s.refused_jws(&jws, status, code);
    }

    // Policy: gsa may not send to state.
    let mut gsa_client = s.fed.client("gsa");
    let denied = gsa
        .sign(&id("state"), "record.send", body("x"), 60, None)
        .expect("sign");
    let reply = s.rt.block_on(submit(&mut gsa_client, &denied));
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&reply), "policy_denied");
    assert_eq!(s.rt.block_on(log_size(&mut s.state)), 1);

    // Replay: the same envelope twice, and a new one reusing a jti.
    let jti = "reused-jti".to_owned();
    let first = s
        .signer
        .sign(
            &id("treasury"),
            "record.send",
            body("a"),
            60,
            Some(jti.clone()),
        )
        .expect("sign");
    assert_eq!(
        s.rt.block_on(submit(&mut s.state, &first)).status,
        StatusCode::CREATED
    );
    s.refused_jws(&first, StatusCode::CONFLICT, "replayed");
    let second = s
        .signer
        .sign(&id("treasury"), "record.send", body("b"), 60, Some(jti))
        .expect("sign");
    s.refused_jws(&second, StatusCode::CONFLICT, "replayed");
    // A refused envelope leaves its jti free: the same jti, refused first
    // for its audience, is then accepted.
    let mut refused = ok_claims.clone();
    refused["jti"] = json!("refused-then-fine");
    refused["aud"] = json!("state");
    let jws = s.sign_raw(s.header(), refused);
    s.refused_jws(&jws, StatusCode::UNPROCESSABLE_ENTITY, "wrong_audience");
    let fine = s
        .signer
        .sign(
            &id("treasury"),
            "record.send",
            body("d"),
            60,
            Some("refused-then-fine".into()),
        )
        .expect("sign");
    assert_eq!(
        s.rt.block_on(submit(&mut s.state, &fine)).status,
        StatusCode::CREATED
    );
    // Another sender may use the same jti: ids are unique per sender.
    let by_gsa = gsa
        .sign(
            &id("treasury"),
            "record.send",
            body("c"),
            60,
            Some("reused-jti".into()),
        )
        .expect("sign");
    assert_eq!(
        s.rt.block_on(submit(&mut gsa_client, &by_gsa)).status,
        StatusCode::CREATED
    );
}

#[test]
fn an_agency_missing_from_the_registry_is_refused_as_unknown() {
    let fed = Federation::start_with(&[], &[]);
    // A second PKI directory whose registry lacks gsa, over the same CA.
    let pki = fed.pki();
    let registry = Registry::load(&pki.join("registry.toml")).expect("registry");
    let kept: Vec<_> = registry
        .agencies()
        .filter(|a| a.id.as_str() != "gsa")
        .cloned()
        .collect();
    let smaller = Registry::from_agencies(kept).expect("registry");
    let root = tempfile::tempdir().expect("tempdir");
    let copy = root.path().join("pki");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&pki)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    std::fs::write(copy.join("registry.toml"), smaller.to_toml()).expect("write");
    let gateway = federation::start_gateway(root.path(), &[], &[]);
    let rt = runtime();
    let mut gsa = Client::for_agency(
        &copy,
        &id("gsa"),
        gateway.url(),
        xgate::client::Protocol::Auto,
    )
    .expect("client");
    let jws = EnvelopeSigner::for_agency(&copy, &id("gsa"))
        .expect("signer")
        .sign(&id("state"), "record.send", body("x"), 60, None)
        .expect("sign");
    let reply = rt.block_on(submit(&mut gsa, &jws));
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&reply), "unknown_agency");
    let inbox = rt
        .block_on(gsa.request(Method::GET, "/v1/inbox", None, Vec::new()))
        .expect("reply");
    assert_eq!(error_code(&inbox), "unknown_agency");
}

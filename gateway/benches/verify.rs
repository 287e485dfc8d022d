//! The envelope's hot path: checking one ES256 signature, and opening a
//! whole envelope (parse, verify, claims), against the raw verify rates of
//! the libraries underneath, measured in the same run.
//!
//! ```text
//! cargo bench -p xgate --bench verify
//! ```
//!
//! - `es256/josekit`: josekit's `JwsVerifier::verify`, built once, as the
//!   gateway used it first (OpenSSL 3 EVP, one context per call).
//! - `es256/openssl_low_level`: `ECDSA_do_verify` on a cached `EC_KEY`
//!   over a SHA-256 digest, through the `openssl` crate.
//! - `es256/ring`: *ring*'s `ECDSA_P256_SHA256_FIXED` on the raw point
//!   (*ring* is linked for TLS already).
//! - `envelope/open`: `xgate_server::envelope::open` on a real envelope: parsing,
//!   the signature check, the claim checks.
//!
//! The gateway keeps josekit (a mandated crate, one verifier per registry
//! key). Run each alone, alternating (`-- es256/josekit`, `-- es256/ring`):
//! run in one process, whichever goes first is measured slower on this
//! machine. docs/performance.md has the figures and the profile that decided.

use criterion::Criterion;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jws::{JwsHeader, JwsVerifier};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use serde_json::json;
use sha2::{Digest, Sha256};

fn bench(c: &mut Criterion) {
    let mut jwk = Jwk::generate_ec_key(EcCurve::P256).expect("key");
    jwk.set_key_id("k");
    let signer = josekit::jws::ES256.signer_from_jwk(&jwk).expect("signer");
    let mut header = JwsHeader::new();
    header.set_token_type("xgate-envelope+jwt");
    let payload = serde_json::to_vec(&json!({"iss": "state", "aud": "gsa", "jti": "j",
        "iat": 1, "exp": 2, "kind": "record.send", "body": {"record": "x".repeat(200)}}))
    .expect("claims");
    let jws = josekit::jws::serialize_compact(&payload, &header, &signer).expect("sign");
    let (signed, sig64) = jws.rsplit_once('.').expect("three parts");
    use base64::Engine as _;
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig64)
        .expect("b64");

    let public = jwk.to_public_key().expect("public");
    let verifier = josekit::jws::ES256
        .verifier_from_jwk(&public)
        .expect("verifier");
    let mut group = c.benchmark_group("es256");
    group.bench_function("josekit", |b| {
        b.iter(|| {
            verifier
                .verify(signed.as_bytes(), &signature)
                .expect("valid")
        })
    });

    let coord = |k: &str| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                public
                    .parameter(k)
                    .and_then(|v| v.as_str())
                    .expect("coordinate"),
            )
            .expect("b64");
        BigNum::from_slice(&bytes).expect("bn")
    };
    let ec = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let key =
        EcKey::from_public_key_affine_coordinates(&ec, &coord("x"), &coord("y")).expect("ec key");
    let _ = BigNumContext::new();
    group.bench_function("openssl_low_level", |b| {
        b.iter(|| {
            let r = BigNum::from_slice(&signature[..32]).expect("r");
            let s = BigNum::from_slice(&signature[32..]).expect("s");
            let sig = EcdsaSig::from_private_components(r, s).expect("sig");
            let digest = Sha256::digest(signed.as_bytes());
            assert!(sig.verify(&digest, &key).expect("verify"));
        })
    });
    // ring (already linked for rustls): the uncompressed point 0x04 || x || y
    // and the fixed-length r || s signature JWS uses.
    let point: Vec<u8> = [
        &[4u8][..],
        &coord("x").to_vec_padded(32).expect("x"),
        &coord("y").to_vec_padded(32).expect("y"),
    ]
    .concat();
    let ring_key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    group.bench_function("ring", |b| {
        b.iter(|| {
            ring_key
                .verify(signed.as_bytes(), &signature)
                .expect("valid")
        })
    });
    group.finish();

    // The whole envelope check the gateway runs per request.
    let registry = registry(&public);
    let verifiers = xgate_server::envelope::Verifiers::from_registry(&registry).expect("verifiers");
    let sender = "state".parse().expect("id");
    let mut header = JwsHeader::new();
    header.set_token_type("xgate-envelope+jwt");
    let now = 1_800_000_000;
    let claims = serde_json::to_vec(&json!({"iss": "state", "aud": "gsa", "jti": "j",
        "iat": now, "exp": now + 60, "kind": "record.send", "body": {"record": "x".repeat(200)}}))
    .expect("claims");
    let envelope = josekit::jws::serialize_compact(&claims, &header, &signer).expect("sign");
    c.bench_function("envelope/open", |b| {
        b.iter(|| {
            xgate_server::envelope::open(
                envelope.as_bytes(),
                &sender,
                &verifiers,
                &registry,
                xgate_server::envelope::Limits::default(),
                now,
            )
            .expect("opens")
        })
    });
}

/// A registry of `state` (signing with `public`) and `gsa`.
fn registry(public: &Jwk) -> xgate_server::registry::Registry {
    let agency = |id: &str| {
        let mut signing = public.as_ref().clone();
        signing.insert("kid".into(), json!("k"));
        signing.insert("use".into(), json!("sig"));
        let mut encryption = signing.clone();
        encryption.insert("use".into(), json!("enc"));
        xgate_server::registry::Agency {
            id: id.parse().expect("id"),
            name: id.into(),
            gateway: None,
            certificate: xgate_server::registry::CertificateBinding {
                uri: format!("urn:xgate:agency:{id}"),
                sha256: None,
            },
            signing_key: signing,
            encryption_key: encryption,
            roles: Vec::new(),
        }
    };
    xgate_server::registry::Registry::from_agencies(vec![agency("state"), agency("gsa")])
        .expect("registry")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}

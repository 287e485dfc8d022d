//! The envelope's hot path: checking one signature, ES256 or EdDSA, and
//! opening a whole envelope (parse, verify, claims), against the raw verify
//! rates of the libraries underneath, measured in the same run, on the
//! same signing input (an envelope's `header.payload`, about 450 bytes).
//!
//! ```text
//! cargo bench -p xgate --bench verify
//! cargo bench -p xgate --bench verify --features bench-aws-lc   # + aws-lc-rs
//! ```
//!
//! ES256, one check (`es256/...`):
//! - `josekit`: josekit's `JwsVerifier::verify`, built once, as the gateway
//!   used it first (OpenSSL 3 EVP, one context per call).
//! - `openssl_low_level`: `ECDSA_do_verify` on a cached `EC_KEY` over a
//!   SHA-256 digest, through the `openssl` crate.
//! - `ring`: *ring*'s `ECDSA_P256_SHA256_FIXED` on the raw point (*ring* is
//!   linked for TLS already): what the gateway uses now.
//! - `p256`: RustCrypto's `p256` (pure Rust).
//! - `aws_lc`: aws-lc-rs's `ECDSA_P256_SHA256_FIXED` (with
//!   `--features bench-aws-lc` only: it builds AWS-LC).
//!
//! EdDSA, one check (`ed25519/...`): `josekit` (OpenSSL), `dalek`
//! (ed25519-dalek's `verify`), `zebra` and `consensus` (the two ZIP-215
//! implementations: ed25519-zebra, which the gateway uses, and
//! ed25519-consensus), `ring`.
//!
//! EdDSA in batches (`ed25519_batch/{zebra,consensus}/N`, N = 8, 32, 64,
//! each signature by its own key): criterion's time is per batch, its
//! throughput per signature. `ed25519_batch/zebra_3_keys/N`: the same
//! with three keys, as when a few agencies send (ed25519-zebra merges the
//! terms of a key's signatures).
//!
//! `envelope/open/{es256,eddsa}`: `xgate_server::envelope::open` on a real
//! envelope: parsing, the signature check, the claim checks.
//!
//! Run each alone, alternating (`-- es256/josekit`, `-- es256/ring`, ...):
//! run in one process, whichever goes first is measured slower on this
//! machine. docs/performance.md (sections 9 and 14) has the figures.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, Throughput};
use ed25519_dalek::Signer as _;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jws::{JwsHeader, JwsVerifier};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The claims of the envelopes signed here (about 330 bytes).
fn claims(jti: usize, iat: i64) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"iss": "state", "aud": "gsa", "jti": format!("j{jti}"),
        "iat": iat, "exp": iat + 60, "kind": "record.send", "body": {"record": "x".repeat(200)}}),
    )
    .expect("claims")
}

/// The signing input of an envelope with `claims`, under `alg` and `kid`.
fn signing_input(alg: &str, claims: &[u8]) -> String {
    let header = json!({"alg": alg, "typ": "xgate-envelope+jwt", "kid": "k"});
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

fn es256(c: &mut Criterion) {
    let mut jwk = Jwk::generate_ec_key(EcCurve::P256).expect("key");
    jwk.set_key_id("k");
    let signer = josekit::jws::ES256.signer_from_jwk(&jwk).expect("signer");
    let input = signing_input("ES256", &claims(0, 1));
    let signature = {
        use josekit::jws::JwsSigner as _;
        signer.sign(input.as_bytes()).expect("sign")
    };
    eprintln!("signing input: {} bytes", input.len());
    let signed = input.as_bytes();

    let public = jwk.to_public_key().expect("public");
    let verifier = josekit::jws::ES256
        .verifier_from_jwk(&public)
        .expect("verifier");
    let mut group = c.benchmark_group("es256");
    group.bench_function("josekit", |b| {
        b.iter(|| verifier.verify(signed, &signature).expect("valid"))
    });

    let coordinate = |k: &str| {
        URL_SAFE_NO_PAD
            .decode(
                public
                    .parameter(k)
                    .and_then(|v| v.as_str())
                    .expect("coordinate"),
            )
            .expect("b64")
    };
    let (x, y) = (coordinate("x"), coordinate("y"));
    let ec = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let key = EcKey::from_public_key_affine_coordinates(
        &ec,
        &BigNum::from_slice(&x).expect("x"),
        &BigNum::from_slice(&y).expect("y"),
    )
    .expect("ec key");
    group.bench_function("openssl_low_level", |b| {
        b.iter(|| {
            let r = BigNum::from_slice(&signature[..32]).expect("r");
            let s = BigNum::from_slice(&signature[32..]).expect("s");
            let sig = EcdsaSig::from_private_components(r, s).expect("sig");
            let digest = Sha256::digest(signed);
            assert!(sig.verify(&digest, &key).expect("verify"));
        })
    });
    // The uncompressed point 0x04 || x || y and the fixed-length r || s
    // signature JWS uses.
    let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
    let ring_key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        point.clone(),
    );
    group.bench_function("ring", |b| {
        b.iter(|| ring_key.verify(signed, &signature).expect("valid"))
    });
    let p256_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).expect("p256 key");
    let p256_sig = p256::ecdsa::Signature::from_slice(&signature).expect("p256 signature");
    group.bench_function("p256", |b| {
        use p256::ecdsa::signature::Verifier as _;
        b.iter(|| p256_key.verify(signed, &p256_sig).expect("valid"))
    });
    #[cfg(feature = "bench-aws-lc")]
    {
        let aws_key = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            point.clone(),
        );
        group.bench_function("aws_lc", |b| {
            b.iter(|| aws_key.verify(signed, &signature).expect("valid"))
        });
    }
    group.finish();

    // The whole envelope check the gateway runs per request.
    let registry = registry(public.as_ref().clone());
    let verifiers = xgate_server::envelope::Verifiers::from_registry(&registry).expect("verifiers");
    let mut header = JwsHeader::new();
    header.set_token_type("xgate-envelope+jwt");
    header.set_key_id("k");
    let envelope =
        josekit::jws::serialize_compact(&claims(0, NOW), &header, &signer).expect("sign");
    open(c, "envelope/open/es256", &envelope, &verifiers, &registry);
}

/// When the envelopes opened here were issued.
const NOW: i64 = 1_800_000_000;

/// Benches `envelope::open` on `envelope`, from `state`.
fn open(
    c: &mut Criterion,
    name: &str,
    envelope: &str,
    verifiers: &xgate_server::envelope::Verifiers,
    registry: &xgate_server::registry::Registry,
) {
    let sender = "state".parse().expect("id");
    c.bench_function(name, |b| {
        b.iter(|| {
            xgate_server::envelope::open(
                envelope.as_bytes(),
                &sender,
                verifiers,
                registry,
                xgate_server::envelope::Limits::default(),
                NOW,
            )
            .expect("opens")
        })
    });
}

/// A fresh Ed25519 key.
fn ed25519_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random");
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

fn ed25519(c: &mut Criterion) {
    let key = ed25519_key();
    let public = key.verifying_key();
    let input = signing_input("EdDSA", &claims(0, 1));
    let signed = input.as_bytes();
    let signature = key.sign(signed);
    let bytes = signature.to_bytes();

    let mut group = c.benchmark_group("ed25519");
    let jwk = Jwk::from_map(
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "k", "use": "sig",
               "x": URL_SAFE_NO_PAD.encode(public.as_bytes())})
        .as_object()
        .expect("object")
        .clone(),
    )
    .expect("jwk");
    let jose = josekit::jws::EdDSA
        .verifier_from_jwk(&jwk)
        .expect("verifier");
    group.bench_function("josekit", |b| {
        b.iter(|| jose.verify(signed, &bytes).expect("valid"))
    });
    group.bench_function("dalek", |b| {
        b.iter(|| public.verify_strict(signed, &signature).expect("valid"))
    });
    let zebra = ed25519_zebra::VerificationKey::try_from(public.to_bytes()).expect("key");
    let zebra_sig = ed25519_zebra::Signature::from_bytes(&bytes);
    group.bench_function("zebra", |b| {
        b.iter(|| zebra.verify(&zebra_sig, signed).expect("valid"))
    });
    let consensus = ed25519_consensus::VerificationKey::try_from(public.to_bytes()).expect("key");
    let consensus_sig = ed25519_consensus::Signature::from(bytes);
    group.bench_function("consensus", |b| {
        b.iter(|| consensus.verify(&consensus_sig, signed).expect("valid"))
    });
    let ring_key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public.to_bytes());
    group.bench_function("ring", |b| {
        b.iter(|| ring_key.verify(signed, &bytes).expect("valid"))
    });
    group.finish();

    let mut group = c.benchmark_group("ed25519_batch");
    for n in [8usize, 32, 64] {
        let batch = |keys: usize| -> Vec<(ed25519_dalek::VerifyingKey, String, [u8; 64])> {
            let keys: Vec<_> = (0..keys).map(|_| ed25519_key()).collect();
            (0..n)
                .map(|i| {
                    let key = &keys[i % keys.len()];
                    let input = signing_input("EdDSA", &claims(i, 1));
                    let signature = key.sign(input.as_bytes()).to_bytes();
                    (key.verifying_key(), input, signature)
                })
                .collect()
        };
        group.throughput(Throughput::Elements(n as u64));
        for (name, keys) in [("zebra", n), ("zebra_3_keys", 3)] {
            let items = batch(keys);
            group.bench_with_input(BenchmarkId::new(name, n), &items, |b, items| {
                b.iter(|| {
                    let mut verifier = ed25519_zebra::batch::Verifier::new();
                    for (key, input, signature) in items {
                        verifier.queue((
                            ed25519_zebra::VerificationKeyBytes::from(key.to_bytes()),
                            ed25519_zebra::Signature::from_bytes(signature),
                            input.as_bytes(),
                        ));
                    }
                    verifier.verify(rand_core::OsRng).expect("valid")
                })
            });
        }
        let items = batch(n);
        group.bench_with_input(BenchmarkId::new("consensus", n), &items, |b, items| {
            b.iter(|| {
                let mut verifier = ed25519_consensus::batch::Verifier::new();
                for (key, input, signature) in items {
                    verifier.queue((
                        ed25519_consensus::VerificationKeyBytes::from(key.to_bytes()),
                        ed25519_consensus::Signature::from(*signature),
                        input.as_bytes(),
                    ));
                }
                verifier.verify(rand_core::OsRng).expect("valid")
            })
        });
    }
    group.finish();

    let mut jwk = jwk;
    jwk.set_parameter("d", Some(json!(URL_SAFE_NO_PAD.encode(key.to_bytes()))))
        .expect("d");
    let signer = josekit::jws::EdDSA.signer_from_jwk(&jwk).expect("signer");
    let mut header = JwsHeader::new();
    header.set_token_type("xgate-envelope+jwt");
    header.set_key_id("k");
    let envelope =
        josekit::jws::serialize_compact(&claims(0, NOW), &header, &signer).expect("sign");
    let mut public_jwk = jwk.as_ref().clone();
    public_jwk.remove("d");
    let registry = registry(public_jwk);
    let verifiers = xgate_server::envelope::Verifiers::from_registry(&registry).expect("verifiers");
    open(c, "envelope/open/eddsa", &envelope, &verifiers, &registry);
}

/// A registry of `state` (signing with `signing`, a public JWK) and `gsa`.
fn registry(
    signing: serde_json::Map<String, serde_json::Value>,
) -> xgate_server::registry::Registry {
    let encryption = Jwk::generate_ec_key(EcCurve::P256)
        .and_then(|k| k.to_public_key())
        .expect("encryption key");
    let agency = |id: &str| {
        let mut signing = signing.clone();
        signing.insert("kid".into(), json!("k"));
        signing.insert("use".into(), json!("sig"));
        let mut encryption = encryption.as_ref().clone();
        encryption.insert("kid".into(), json!("e"));
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
    es256(&mut c);
    ed25519(&mut c);
    c.final_summary();
}

//! The medical JWE profile (ECDH-ES+A256KW, A256GCM) on a ~52 KiB IPS
//! bundle, against the raw P-256 key agreement underneath, measured in the
//! same run.
//!
//! ```text
//! cargo bench -p xgate --bench jwe
//! ```
//!
//! - `jwe/encrypt`: `xgate_server::medical::jwe::encrypt` of
//!   `tests/fixtures/ips/ips-large.json` to a public JWK: loading the key,
//!   an ephemeral keygen, one ECDH, Concat KDF, AES key wrap, AES-GCM.
//! - `jwe/decrypt`: `xgate_server::medical::jwe::decrypt` of that JWE with the
//!   private JWK: the shape check, loading the key and the `epk`, one ECDH,
//!   unwrap, AES-GCM.
//! - `jwe/inspect`: `xgate_server::medical::jwe::inspect`, the only thing the
//!   gateway does with such a JWE: no key, base64 and header checks.
//! - `ecdh_p256/keygen+derive`: what ECDH-ES costs at the least, a fresh
//!   ephemeral P-256 key and one `openssl::derive::Deriver` against a fixed
//!   peer key.
//! - `ecdh_p256/derive_only`: the derive alone, with a fixed ephemeral key.
//!
//! Every benchmark counts one operation per iteration, so criterion
//! reports operations per second.
//!
//! First run (2-core dev VM, OpenSSL 3.0.19; medians, about 5% noise):
//! encrypt 1.45 k/s, decrypt 0.71 k/s, inspect 17.0 k/s, keygen+derive
//! 3.22 k/s, derive only 5.41 k/s. Encrypt runs at 0.45x the raw
//! keygen+derive rate and decrypt at 0.22x. The gap is key loading more
//! than cryptography: josekit turns each JWK (the recipient's on encrypt,
//! the private key and the `epk` on decrypt) into an OpenSSL key through
//! DER on every call, and in a breakdown run loading the private JWK alone
//! took about half of decrypt, loading the public one about 0.3 ms of
//! encrypt. A caller decrypting many JWEs with one key would gain from a
//! decrypter built once; the gateway itself only ever runs `inspect`.

use criterion::{Criterion, Throughput};
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use xgate_server::medical::jwe;

const BUNDLE: &[u8] = include_bytes!("../../tests/fixtures/ips/ips-large.json");

fn bench(c: &mut Criterion) {
    let mut private = Jwk::generate_ec_key(EcCurve::P256).expect("key");
    private.set_key_id("requester");
    let public = private.to_public_key().expect("public");
    let public = public.as_ref().clone();
    let sealed = jwe::encrypt(BUNDLE, &public).expect("encrypts");

    let mut group = c.benchmark_group("jwe");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encrypt", |b| {
        b.iter(|| jwe::encrypt(BUNDLE, &public).expect("encrypts"))
    });
    group.bench_function("decrypt", |b| {
        b.iter(|| jwe::decrypt(&sealed, &private).expect("decrypts"))
    });
    group.bench_function("inspect", |b| {
        b.iter(|| jwe::inspect(&sealed).expect("valid"))
    });
    group.finish();

    let curve = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
    let keypair = || PKey::from_ec_key(EcKey::generate(&curve).expect("keygen")).expect("pkey");
    let peer = keypair();
    let ephemeral = keypair();
    let mut group = c.benchmark_group("ecdh_p256");
    group.throughput(Throughput::Elements(1));
    group.bench_function("keygen+derive", |b| {
        b.iter(|| {
            let ephemeral = keypair();
            let mut deriver = Deriver::new(&ephemeral).expect("deriver");
            deriver.set_peer(&peer).expect("peer");
            deriver.derive_to_vec().expect("derive")
        })
    });
    group.bench_function("derive_only", |b| {
        b.iter(|| {
            let mut deriver = Deriver::new(&ephemeral).expect("deriver");
            deriver.set_peer(&peer).expect("peer");
            deriver.derive_to_vec().expect("derive")
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}

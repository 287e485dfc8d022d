//! Where the federation's development PKI keeps each file.
//!
//! Layout of a PKI directory (an exact contract; outside tools rely on it):
//!
//! ```text
//! DIR/ca.crt  DIR/ca.key  DIR/crl.pem  DIR/registry.toml
//! DIR/gateway/tls.crt  DIR/gateway/tls.key
//! DIR/<agency>/tls.crt  DIR/<agency>/tls.key  DIR/<agency>/signing.jwk  DIR/<agency>/encryption.jwk
//! ```
//!
//! and in a federation of gateways (`certs init --gateway ID=URL`), per
//! gateway:
//!
//! ```text
//! DIR/gateways/<id>/tls.crt  DIR/gateways/<id>/tls.key  DIR/gateways/<id>/checkpoint.key  DIR/gateways/<id>/witness.key
//! ```

use std::path::{Path, PathBuf};

use crate::registry::GatewayId;

/// The CA certificate.
pub const CA_CERT: &str = "ca.crt";
/// The CA private key.
pub const CA_KEY: &str = "ca.key";
/// The certificate revocation list.
pub const CRL: &str = "crl.pem";
/// The agency registry.
pub const REGISTRY: &str = "registry.toml";
/// Directory of the gateway's TLS certificate and key.
pub const GATEWAY_DIR: &str = "gateway";
/// Directory holding one directory per gateway of a federation.
pub const GATEWAYS_DIR: &str = "gateways";
/// A TLS certificate, in the gateway's or an agency's directory.
pub const TLS_CERT: &str = "tls.crt";
/// A TLS private key, beside its certificate.
pub const TLS_KEY: &str = "tls.key";
/// A federation gateway's log signing key (Go note `PRIVATE+KEY+...`),
/// which signs the checkpoints of the log it creates.
pub const CHECKPOINT_KEY: &str = "checkpoint.key";
/// A federation gateway's witness (cosigner) key, as `xgate witness init`
/// writes one.
pub const WITNESS_KEY: &str = "witness.key";
/// An agency's private signing JWK.
pub const SIGNING_JWK: &str = "signing.jwk";
/// An agency's private encryption JWK.
pub const ENCRYPTION_JWK: &str = "encryption.jwk";

/// The agencies a zero-configuration gateway starts with.
pub const SAMPLE_AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];
/// The auditor of the development federation `xgate serve` creates.
pub const SAMPLE_AUDITORS: [&str; 1] = ["gao"];

/// The directory of gateway `id`'s files in the PKI `pki`:
/// `gateways/<id>`.
pub fn gateway_dir(pki: &Path, id: &GatewayId) -> PathBuf {
    pki.join(GATEWAYS_DIR).join(id.as_str())
}

/// The directory of the TLS certificate and key a gateway presents:
/// gateway `local`'s (`gateways/<id>`) in a federation, else the single
/// gateway's (`gateway`).
pub fn tls_dir(pki: &Path, local: Option<&GatewayId>) -> PathBuf {
    match local {
        Some(id) => gateway_dir(pki, id),
        None => pki.join(GATEWAY_DIR),
    }
}

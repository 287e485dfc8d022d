//! Where the federation's development PKI keeps each file.
//!
//! Layout of a PKI directory (an exact contract; outside tools rely on it):
//!
//! ```text
//! DIR/ca.crt  DIR/ca.key  DIR/crl.pem  DIR/registry.toml
//! DIR/gateway/tls.crt  DIR/gateway/tls.key
//! DIR/<agency>/tls.crt  DIR/<agency>/tls.key  DIR/<agency>/signing.jwk  DIR/<agency>/encryption.jwk
//! ```

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
/// A TLS certificate, in the gateway's or an agency's directory.
pub const TLS_CERT: &str = "tls.crt";
/// A TLS private key, beside its certificate.
pub const TLS_KEY: &str = "tls.key";
/// An agency's private signing JWK.
pub const SIGNING_JWK: &str = "signing.jwk";
/// An agency's private encryption JWK.
pub const ENCRYPTION_JWK: &str = "encryption.jwk";

/// The agencies a zero-configuration gateway starts with.
pub const SAMPLE_AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];
/// The auditor of the development federation `xgate serve` creates.
pub const SAMPLE_AUDITORS: [&str; 1] = ["gao"];

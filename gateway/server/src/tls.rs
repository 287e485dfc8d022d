//! Mutual TLS: the server configuration (client certificate required,
//! chain checked against the federation CA and its CRL), reloading the CRL
//! without a restart, and reading the calling agency from the client
//! certificate.
//!
//! rustls does the verification (`WebPkiClientVerifier` with the CRL); we
//! only read the verified leaf certificate's SAN URI with x509-parser and
//! look the agency up in the registry. The one crypto provider is *ring*,
//! passed explicitly to every builder.
//!
//! A new CRL (checked by `crl` first: signed by the CA, numbered
//! higher than the one in force) applies to new handshakes through a
//! rebuilt configuration, and to connections already open through
//! [`Tls::refuses`], which each request and each open event stream checks
//! (streams are woken by [`Tls::changes`]), so a revoked agency cannot keep
//! a connection alive to go on sending or listening.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use x509_parser::extensions::GeneralName;

pub use crate::crl::{Crl, CrlError, Fault};
use crate::pki::files::{CA_CERT, CRL, TLS_CERT, TLS_KEY, tls_dir};
use crate::registry::{self, AgencyId, CertificateBinding, GatewayId, Registry};

/// ALPN protocols offered, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file is missing or unreadable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The CRL file holds no CRL the gateway may trust.
    #[error(transparent)]
    Crl(#[from] CrlError),
}

/// The crypto provider every TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Who is calling, as read from the client certificate once per connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A registered agency.
    Agency {
        /// The agency.
        id: AgencyId,
        /// The certificate's serial, to notice a later revocation.
        serial: Vec<u8>,
    },
    /// A registered gateway of the federation (forwarding to this one).
    Gateway {
        /// The gateway.
        id: GatewayId,
        /// The certificate's serial, to notice a later revocation.
        serial: Vec<u8>,
    },
    /// A certificate the CA signed that names no registered agency or
    /// gateway; the reason is safe to tell the caller.
    Unknown(String),
}

/// The server's TLS state: the configuration for new handshakes, rebuilt
/// when a new CRL is taken, and the CRL in force, which requests on open
/// connections are checked against.
#[derive(Debug)]
pub struct Tls {
    pki: PathBuf,
    /// The directory of the certificate and key the gateway presents.
    identity: PathBuf,
    strict: bool,
    config: RwLock<Arc<ServerConfig>>,
    crl: RwLock<Arc<Crl>>,
    /// What `crl.pem` held at the last look.
    seen: Mutex<Seen>,
    /// Whether the CRL in force was past its `nextUpdate` at the last check.
    stale: AtomicBool,
    /// Bumped whenever the answer to [`Tls::refuses`] may have changed (a
    /// new CRL, the CRL going stale), so open event streams check again.
    changes: watch::Sender<u64>,
}

/// What the CRL file held when it was last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// The CRL in force (SHA-256 of the file).
    InForce([u8; 32]),
    /// Content that was refused (SHA-256 of the file).
    Refused([u8; 32]),
    /// Nothing readable.
    Unreadable,
}

/// What a look at the CRL file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The file holds what it held at the last look.
    Unchanged,
    /// A newer CRL is now in force.
    Loaded,
    /// The file holds the CRL in force again, after refused content.
    Restored,
}

/// Why a connection's agency is refused though its certificate verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The CRL in force revokes its certificate.
    Revoked,
    /// `crl_strict` is on and the CRL in force is past its `nextUpdate`.
    CrlStale,
}

impl Tls {
    /// Loads the gateway certificate, CA and CRL from the PKI directory;
    /// with `strict`, a stale CRL refuses every request (`crl_strict`).
    /// The certificate is gateway `local`'s (`gateways/<id>/tls.crt`) in a
    /// federation, else the single gateway's (`gateway/tls.crt`).
    ///
    /// # Errors
    /// [`TlsError`] naming the file or setting at fault; a CRL that is
    /// missing, not signed by the CA, or without a number or `nextUpdate`
    /// among them.
    pub fn load(pki: &Path, local: Option<&GatewayId>, strict: bool) -> Result<Tls, TlsError> {
        let crl_path = pki.join(CRL);
        let bytes = std::fs::read(&crl_path).map_err(|e| CrlError {
            path: crl_path.clone(),
            fault: Fault::Unreadable(e.to_string()),
        })?;
        let crl = Crl::parse(&bytes, &ca_certs(pki)?).map_err(|fault| CrlError {
            path: crl_path.clone(),
            fault,
        })?;
        let identity = tls_dir(pki, local);
        let config = build(pki, &identity, &crl)?;
        Ok(Tls {
            pki: pki.to_path_buf(),
            identity,
            strict,
            config: RwLock::new(config),
            crl: RwLock::new(Arc::new(crl)),
            seen: Mutex::new(Seen::InForce(Sha256::digest(&bytes).into())),
            stale: AtomicBool::new(false),
            changes: watch::Sender::new(0),
        })
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The CRL in force.
    pub fn crl(&self) -> Arc<Crl> {
        match self.crl.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Whether a stale CRL refuses every request.
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// Reads the CRL file and, if it holds a newer CRL that passes every
    /// check ([`Crl::parse`], [`Crl::replaces`]), puts it in force. Content
    /// already looked at is not checked again unless `forced`.
    ///
    /// # Errors
    /// Why the file's content was refused; the CRL in force stays.
    pub fn reload(&self, forced: bool) -> Result<Reload, TlsError> {
        let crl_path = self.pki.join(CRL);
        let bytes = match std::fs::read(&crl_path) {
            Ok(b) => b,
            Err(e) => {
                let first = *lock(&self.seen) != Seen::Unreadable;
                *lock(&self.seen) = Seen::Unreadable;
                return if first || forced {
                    Err(file_error(&crl_path)(e))
                } else {
                    Ok(Reload::Unchanged)
                };
            }
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let seen = *lock(&self.seen);
        if !forced && (seen == Seen::InForce(digest) || seen == Seen::Refused(digest)) {
            return Ok(Reload::Unchanged);
        }
        let outcome = self.take(&bytes);
        *lock(&self.seen) = match outcome {
            Ok(_) => Seen::InForce(digest),
            Err(_) => Seen::Refused(digest),
        };
        match outcome {
            Ok(Reload::Unchanged) if matches!(seen, Seen::InForce(_)) => Ok(Reload::Unchanged),
            Ok(Reload::Unchanged) => Ok(Reload::Restored),
            other => other,
        }
    }

    /// Checks `bytes` as the new CRL and puts it in force if it is newer.
    fn take(&self, bytes: &[u8]) -> Result<Reload, TlsError> {
        let crl_path = self.pki.join(CRL);
        let cas = ca_certs(&self.pki)?;
        let refused = |fault| CrlError {
            path: crl_path.clone(),
            fault,
        };
        let crl = Crl::parse(bytes, &cas).map_err(refused)?;
        if !crl.replaces(&self.crl()).map_err(refused)? {
            return Ok(Reload::Unchanged);
        }
        let config = build(&self.pki, &self.identity, &crl)?;
        *write(&self.config) = config;
        *write(&self.crl) = Arc::new(crl);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(Reload::Loaded)
    }

    /// Records whether the CRL in force is stale; returns whether that
    /// changed (and then wakes whoever watches [`Tls::changes`]).
    pub fn set_stale(&self, stale: bool) -> bool {
        let changed = self.stale.swap(stale, Ordering::SeqCst) != stale;
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        changed
    }

    /// Changes whenever a request's refusal may have changed: a new CRL,
    /// or the CRL going stale or fresh.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether the CRL in force revokes the certificate with this serial.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.crl().revokes(serial)
    }

    /// Whether every request is refused now: `crl_strict` and the CRL in
    /// force past its `nextUpdate` (read from the clock, so this holds from
    /// the second `nextUpdate` passes, not only from the next poll).
    pub fn refuses_all(&self) -> bool {
        self.strict && self.crl().is_stale_at(crate::crl::now())
    }

    /// Why a request from a certificate with this serial is refused, if it
    /// is: checked on every request and by open event streams.
    pub fn refuses(&self, serial: &[u8]) -> Option<Refusal> {
        if self.refuses_all() {
            Some(Refusal::CrlStale)
        } else if self.is_revoked(serial) {
            Some(Refusal::Revoked)
        } else {
            None
        }
    }
}

/// Reads the calling agency, or gateway, from a verified client
/// certificate: its SAN URI `urn:xgate:agency:<id>` (or
/// `urn:xgate:gateway:<id>`) must name a registered agency (or gateway),
/// and if the registry pins a certificate fingerprint, this must be that
/// certificate.
pub fn identify(cert: &CertificateDer<'_>, registry: &Registry) -> Identity {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Identity::Unknown("the client certificate cannot be parsed".into());
    };
    let uris = san_uris(&parsed);
    let pinned_to = |binding: &CertificateBinding| {
        binding
            .sha256
            .as_ref()
            .is_none_or(|pinned| *pinned == hex::encode(Sha256::digest(cert.as_ref())))
    };
    let serial = parsed.raw_serial().to_vec();
    if let Some(id) = uris.iter().find_map(|u| AgencyId::from_uri(u)) {
        let Some(agency) = registry.get(&id) else {
            return Identity::Unknown(format!("agency {id} is not in the registry"));
        };
        if !pinned_to(&agency.certificate) {
            return Identity::Unknown(format!(
                "the client certificate is not the one registered for {id}"
            ));
        }
        return Identity::Agency { id, serial };
    }
    if let Some(id) = uris.iter().find_map(|u| GatewayId::from_uri(u)) {
        let Some(gateway) = registry.gateway(&id) else {
            return Identity::Unknown(format!("gateway {id} is not in the registry"));
        };
        if !pinned_to(&gateway.certificate) {
            return Identity::Unknown(format!(
                "the client certificate is not the one registered for gateway {id}"
            ));
        }
        return Identity::Gateway { id, serial };
    }
    Identity::Unknown("the client certificate has no SAN URI urn:xgate:agency:<id>".into())
}

/// The SAN URIs of a certificate (none if it has no SAN extension, or one
/// that does not parse).
fn san_uris<'c>(cert: &'c x509_parser::certificate::X509Certificate<'_>) -> Vec<&'c str> {
    match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A client configuration for the gateway's own requests (to witnesses):
/// a server is believed if its certificate chains to the federation's CA
/// ([`FederationServer`]); no client certificate is presented (a witness
/// judges checkpoints by their signatures, not by who sends them).
///
/// # Errors
/// [`TlsError`] for an unreadable CA file or a configuration rustls refuses.
pub fn outbound_config(pki: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(FederationServer {
        roots: federation_roots(pki)?,
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Believes a server whose certificate chains to the federation's CA,
/// whatever host name it was reached by.
///
/// Federation certificates name agencies (a URI), not hosts, so the usual
/// host-name check would refuse every agency-run service; and what the
/// gateway asks of such services is checked by signature anyway (a
/// witness's cosignature by the key in the configuration). The chain, the
/// validity period and the handshake signature are checked as usual.
#[derive(Debug)]
struct FederationServer {
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for FederationServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for this gateway's requests to its peer `peer`
/// (forwarding), from the server's TLS state `tls` (gateway `local` of a
/// federation): it presents `local`'s certificate
/// (`gateways/<local>/tls.crt`) and believes the server only if its
/// certificate chains to the federation's CA, is not revoked by the CRL
/// `tls` has in force at that handshake, carries the SAN URI
/// `urn:xgate:gateway:<peer>` and, if the registry pins one, is that very
/// certificate ([`PeerGateway`]). The host name the peer was reached by
/// is not checked: the URI is its identity.
///
/// So a CRL the gateway takes later (SIGHUP, `crl_poll_secs`) applies to
/// every later handshake of a configuration built before it, as it does to
/// the listener's; a connection opened before it is the caller's to drop
/// ([`Tls::changes`] says when). No ALPN is offered; a caller speaking
/// HTTP/2 sets `alpn_protocols` on a copy.
///
/// # Errors
/// [`TlsError`] for an unreadable CA file, `local`'s certificate or key
/// missing, or a configuration rustls refuses.
pub fn peer_client_config(
    tls: &Arc<Tls>,
    peer: &registry::Gateway,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PeerGateway {
        chain: FederationServer {
            roots: federation_roots(&tls.pki)?,
            provider: Arc::clone(&provider),
        },
        crl: Arc::clone(tls),
        uri: peer.id.uri(),
        sha256: peer.certificate.sha256.clone(),
    });
    let (chain, key) = certificate_and_key(&tls.identity)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Believes one peer gateway: a certificate [`FederationServer`] believes
/// (the federation's CA, in its validity period, for server use), not on
/// the CRL in force, whose SAN URI names that gateway and which, if the registry
/// pins one, is that certificate. An agency's certificate, or another
/// gateway's, is refused: each names someone else.
#[derive(Debug)]
struct PeerGateway {
    chain: FederationServer,
    /// The gateway's TLS state, whose CRL in force is read at each
    /// handshake.
    crl: Arc<Tls>,
    /// `urn:xgate:gateway:<id>`.
    uri: String,
    /// The pinned fingerprint, lowercase hex.
    sha256: Option<String>,
}

impl rustls::client::danger::ServerCertVerifier for PeerGateway {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError;
        let refused = |e: CertificateError| rustls::Error::InvalidCertificate(e);
        let verified = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| refused(CertificateError::BadEncoding))?;
        if self.crl.is_revoked(parsed.raw_serial()) {
            return Err(refused(CertificateError::Revoked));
        }
        if !san_uris(&parsed).contains(&self.uri.as_str()) {
            return Err(refused(CertificateError::NotValidForName));
        }
        let pinned = self
            .sha256
            .as_ref()
            .is_none_or(|pin| *pin == hex::encode(Sha256::digest(end_entity.as_ref())));
        if !pinned {
            return Err(refused(CertificateError::ApplicationVerificationFailure));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The federation CA's certificates as trust anchors.
fn federation_roots(pki: &Path) -> Result<RootCertStore, TlsError> {
    let ca_path = pki.join(CA_CERT);
    let mut roots = RootCertStore::empty();
    for cert in ca_certs(pki)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(format!("{}: {e}", ca_path.display())))?;
    }
    Ok(roots)
}

/// The federation CA's certificates.
fn ca_certs(pki: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let ca_path = pki.join(CA_CERT);
    CertificateDer::pem_file_iter(&ca_path)
        .map_err(file_error(&ca_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error(&ca_path))
}

/// The server configuration: the gateway's certificate (from `identity`),
/// client certificates required and verified against the CA and `crl`.
fn build(pki: &Path, identity: &Path, crl: &Crl) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let roots = federation_roots(pki)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls([crl.der().clone()])
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let (chain, key) = certificate_and_key(identity)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The server configuration of a listener anyone may connect to (the
/// public tlog-tiles listener): the gateway's certificate (gateway
/// `local`'s in a federation, as [`Tls::load`]), no client certificate
/// asked for, the same protocols.
///
/// # Errors
/// [`TlsError`] naming the certificate or key file at fault.
pub fn without_client_auth(
    pki: &Path,
    local: Option<&GatewayId>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = certificate_and_key(&tls_dir(pki, local))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The certificate chain and private key in `dir` (`tls.crt`, `tls.key`).
fn certificate_and_key(
    dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_path = dir.join(TLS_CERT);
    let key_path = dir.join(TLS_KEY);
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(file_error(&cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error(&cert_path))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(file_error(&key_path))?;
    Ok((chain, key))
}

fn file_error<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> TlsError + '_ {
    move |e| TlsError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{self, GatewayPlan, Member};
    use rustls::CertificateError;

    /// A federation of gateways `a`, `b` and `c`, serving `state`, `gsa`
    /// and `hhs`.
    struct Federation {
        _tmp: tempfile::TempDir,
        pki: PathBuf,
        registry: Registry,
    }

    fn gateway(id: &str) -> GatewayId {
        id.parse().expect("gateway id")
    }

    fn federation() -> Federation {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = tmp.path().join("pki");
        let members: Vec<Member> = [("state", "a"), ("gsa", "b"), ("hhs", "c")]
            .iter()
            .map(|(agency, at)| Member {
                id: agency.parse().expect("agency id"),
                auditor: false,
                gateway: Some(gateway(at)),
            })
            .collect();
        let plans: Vec<GatewayPlan> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                GatewayPlan::new(gateway(id), &format!("https://127.0.0.1:{}", 9000 + i))
                    .expect("plan")
            })
            .collect();
        let registry = pki::init_federation(&pki, &members, &plans, false).expect("pki");
        Federation {
            _tmp: tmp,
            pki,
            registry,
        }
    }

    impl Federation {
        fn peer(&self, id: &str) -> registry::Gateway {
            self.registry.gateway(&gateway(id)).expect("listed").clone()
        }

        /// Gateway `a`'s TLS state, with the CRL of the PKI as it is now.
        fn tls_of_a(&self) -> Arc<Tls> {
            Arc::new(Tls::load(&self.pki, Some(&gateway("a")), false).expect("a's tls"))
        }

        /// `a`'s configuration for calling `peer`.
        fn calling(&self, peer: &registry::Gateway) -> Arc<rustls::ClientConfig> {
            peer_client_config(&self.tls_of_a(), peer).expect("client config")
        }

        /// The main listener's configuration of gateway `id`.
        fn serving(&self, id: &str) -> Arc<ServerConfig> {
            Tls::load(&self.pki, Some(&gateway(id)), false)
                .expect("server tls")
                .config()
        }

        /// A server presenting the certificate and key in `dir`.
        fn presenting(&self, dir: &str) -> Arc<ServerConfig> {
            let (chain, key) = certificate_and_key(&self.pki.join(dir)).expect("files");
            let config = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server config");
            Arc::new(config)
        }
    }

    /// A TLS handshake between the two configurations, in memory; the
    /// first error either side reports.
    fn handshake(
        client: Arc<rustls::ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> Result<(), rustls::Error> {
        let name = rustls_pki_types::ServerName::try_from("peer.invalid").expect("name");
        let mut client = rustls::ClientConnection::new(client, name)?;
        let mut server = rustls::ServerConnection::new(server)?;
        for _ in 0..16 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).expect("in memory");
            }
            if !bytes.is_empty() {
                server.read_tls(&mut bytes.as_slice()).expect("in memory");
                server.process_new_packets()?;
            }
            bytes.clear();
            while server.wants_write() {
                server.write_tls(&mut bytes).expect("in memory");
            }
            if !bytes.is_empty() {
                client.read_tls(&mut bytes.as_slice()).expect("in memory");
                client.process_new_packets()?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    fn refused_for(result: Result<(), rustls::Error>) -> CertificateError {
        match result {
            Err(rustls::Error::InvalidCertificate(e)) => e,
            other => panic!("not refused for its certificate: {other:?}"),
        }
    }

    #[test]
    fn a_config_for_one_peer_believes_it_and_no_other_gateway() {
        let fed = federation();
        let b = fed.calling(&fed.peer("b"));
        handshake(Arc::clone(&b), fed.serving("b")).expect("b is b");
        // Signed by the same CA, valid for the same host: but c, not b.
        assert_eq!(
            refused_for(handshake(Arc::clone(&b), fed.serving("c"))),
            CertificateError::NotValidForName
        );
        // The single gateway's certificate names no gateway.
        assert_eq!(
            refused_for(handshake(Arc::clone(&b), fed.presenting("gateway"))),
            CertificateError::NotValidForName
        );
        // And the config for c believes c.
        handshake(fed.calling(&fed.peer("c")), fed.serving("c")).expect("c is c");
    }

    #[test]
    fn an_agency_certificate_is_refused_as_a_server() {
        let fed = federation();
        let b = fed.calling(&fed.peer("b"));
        for agency in ["gsa", "state"] {
            assert_eq!(
                refused_for(handshake(Arc::clone(&b), fed.presenting(agency))),
                CertificateError::NotValidForName,
                "{agency}"
            );
        }
    }

    #[test]
    fn a_revoked_peer_is_refused_once_the_crl_revoking_it_is_in_force() {
        let fed = federation();
        let tls = fed.tls_of_a();
        let before = peer_client_config(&tls, &fed.peer("b")).expect("client config");
        let revoked = pki::revoke_gateway(&fed.pki, &gateway("b")).expect("revoke");
        assert!(matches!(revoked, pki::Revoked::Added { .. }), "{revoked:?}");
        // Not until the gateway takes the new CRL (SIGHUP, or the poll).
        handshake(Arc::clone(&before), fed.serving("b")).expect("the old CRL");
        assert_eq!(tls.reload(false).expect("a newer CRL"), Reload::Loaded);
        // Then a configuration built before refuses it too, at once.
        assert_eq!(
            refused_for(handshake(before, fed.serving("b"))),
            CertificateError::Revoked
        );
        let after = peer_client_config(&tls, &fed.peer("b")).expect("client config");
        assert_eq!(
            refused_for(handshake(after, fed.serving("b"))),
            CertificateError::Revoked
        );
        // Others are unaffected.
        handshake(
            peer_client_config(&tls, &fed.peer("c")).expect("client config"),
            fed.serving("c"),
        )
        .expect("c");
    }

    #[test]
    fn a_pinned_fingerprint_must_be_the_certificate_presented() {
        let fed = federation();
        let mut b = fed.peer("b");
        b.certificate.sha256 = fed.peer("c").certificate.sha256;
        assert_eq!(
            refused_for(handshake(fed.calling(&b), fed.serving("b"))),
            CertificateError::ApplicationVerificationFailure
        );
        b.certificate.sha256 = None;
        handshake(fed.calling(&b), fed.serving("b")).expect("unpinned");
    }

    #[test]
    fn a_revoked_gateway_is_refused_as_a_client_too() {
        let fed = federation();
        let a_calls_b = fed.calling(&fed.peer("b"));
        pki::revoke_gateway(&fed.pki, &gateway("a")).expect("revoke");
        // b's listener, loaded after the revocation, refuses a's certificate.
        let err = handshake(a_calls_b, fed.serving("b")).expect_err("a is revoked");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::Revoked)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn the_listener_of_a_gateway_of_a_federation_needs_its_files() {
        let fed = federation();
        // (Its configuration for calling peers is built from this state.)
        let err = Tls::load(&fed.pki, Some(&gateway("nobody")), false).expect_err("no files");
        assert!(err.to_string().contains("gateways/nobody/tls.crt"), "{err}");
    }
}

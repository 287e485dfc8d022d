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
use crate::pki::files::{CA_CERT, CRL, GATEWAY_DIR, TLS_CERT, TLS_KEY};
use crate::registry::{AgencyId, CertificateBinding, GatewayId, Registry};

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
    ///
    /// # Errors
    /// [`TlsError`] naming the file or setting at fault; a CRL that is
    /// missing, not signed by the CA, or without a number or `nextUpdate`
    /// among them.
    pub fn load(pki: &Path, strict: bool) -> Result<Tls, TlsError> {
        let crl_path = pki.join(CRL);
        let bytes = std::fs::read(&crl_path).map_err(|e| CrlError {
            path: crl_path.clone(),
            fault: Fault::Unreadable(e.to_string()),
        })?;
        let crl = Crl::parse(&bytes, &ca_certs(pki)?).map_err(|fault| CrlError {
            path: crl_path.clone(),
            fault,
        })?;
        let config = build(pki, &crl)?;
        Ok(Tls {
            pki: pki.to_path_buf(),
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
        let config = build(&self.pki, &crl)?;
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
    let uris: Vec<&str> = match parsed.subject_alternative_name() {
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
    };
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

/// A client configuration for the gateway's own requests (to witnesses):
/// a server is believed if its certificate chains to the federation's CA
/// ([`FederationServer`]); no client certificate is presented (a witness
/// judges checkpoints by their signatures, not by who sends them).
///
/// # Errors
/// [`TlsError`] for an unreadable CA file or a configuration rustls refuses.
pub fn outbound_config(pki: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let ca_path = pki.join(CA_CERT);
    let mut roots = RootCertStore::empty();
    for cert in ca_certs(pki)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(format!("{}: {e}", ca_path.display())))?;
    }
    let provider = provider();
    let verifier = Arc::new(FederationServer {
        roots,
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

/// The federation CA's certificates.
fn ca_certs(pki: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let ca_path = pki.join(CA_CERT);
    CertificateDer::pem_file_iter(&ca_path)
        .map_err(file_error(&ca_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error(&ca_path))
}

/// The server configuration: the gateway's certificate, client
/// certificates required and verified against the CA and `crl`.
fn build(pki: &Path, crl: &Crl) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let ca_path = pki.join(CA_CERT);
    let mut roots = RootCertStore::empty();
    for cert in ca_certs(pki)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(format!("{}: {e}", ca_path.display())))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls([crl.der().clone()])
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let (chain, key) = gateway_identity(pki)?;
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
/// public tlog-tiles listener): the gateway's certificate, no client
/// certificate asked for, the same protocols.
///
/// # Errors
/// [`TlsError`] naming the certificate or key file at fault.
pub fn without_client_auth(pki: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = gateway_identity(pki)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The gateway's certificate chain and private key.
fn gateway_identity(
    pki: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_path = pki.join(GATEWAY_DIR).join(TLS_CERT);
    let key_path = pki.join(GATEWAY_DIR).join(TLS_KEY);
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

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
//! A new CRL applies to new handshakes through a rebuilt configuration, and
//! to connections already open through [`Tls::is_revoked`], which each
//! request checks, so a revoked agency cannot keep a connection alive to go
//! on sending.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

use crate::pki::{CA_CERT, CRL, GATEWAY_DIR, TLS_CERT, TLS_KEY};
use crate::registry::{AgencyId, Registry};

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
    /// A certificate the CA signed that names no registered agency; the
    /// reason is safe to tell the caller.
    Unknown(String),
}

/// The server's TLS state: the current configuration, rebuilt when the CRL
/// changes, and the serials the CRL revokes.
#[derive(Debug)]
pub struct Tls {
    pki: PathBuf,
    config: RwLock<Arc<ServerConfig>>,
    revoked: RwLock<HashSet<Vec<u8>>>,
    /// SHA-256 of the CRL file the configuration was built from.
    crl_digest: Mutex<[u8; 32]>,
}

impl Tls {
    /// Loads the gateway certificate, CA and CRL from the PKI directory.
    ///
    /// # Errors
    /// [`TlsError`] naming the file or setting at fault.
    pub fn load(pki: &Path) -> Result<Tls, TlsError> {
        let (config, revoked, digest) = build(pki)?;
        Ok(Tls {
            pki: pki.to_path_buf(),
            config: RwLock::new(config),
            revoked: RwLock::new(revoked),
            crl_digest: Mutex::new(digest),
        })
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Rebuilds the configuration if the CRL file changed; returns whether
    /// it did. A CRL that does not load keeps the old configuration.
    ///
    /// # Errors
    /// Why the new CRL (or other PKI file) was refused.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let crl_path = self.pki.join(CRL);
        let bytes = std::fs::read(&crl_path).map_err(file_error(&crl_path))?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if *lock(&self.crl_digest) == digest {
            return Ok(false);
        }
        let (config, revoked, digest) = build(&self.pki)?;
        *write(&self.config) = config;
        *write(&self.revoked) = revoked;
        *lock(&self.crl_digest) = digest;
        Ok(true)
    }

    /// Whether the CRL now revokes the certificate with this serial.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        match self.revoked.read() {
            Ok(r) => r.contains(serial),
            Err(poisoned) => poisoned.into_inner().contains(serial),
        }
    }
}

/// Reads the calling agency from a verified client certificate: its SAN
/// URI `urn:xgate:agency:<id>` must name a registered agency, and if the
/// registry pins a certificate fingerprint, this must be that certificate.
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
    let Some(id) = uris.iter().find_map(|u| AgencyId::from_uri(u)) else {
        return Identity::Unknown(
            "the client certificate has no SAN URI urn:xgate:agency:<id>".into(),
        );
    };
    let Some(agency) = registry.get(&id) else {
        return Identity::Unknown(format!("agency {id} is not in the registry"));
    };
    if let Some(pinned) = &agency.certificate.sha256
        && *pinned != hex::encode(Sha256::digest(cert.as_ref()))
    {
        return Identity::Unknown(format!(
            "the client certificate is not the one registered for {id}"
        ));
    }
    Identity::Agency {
        id,
        serial: parsed.raw_serial().to_vec(),
    }
}

type Built = (Arc<ServerConfig>, HashSet<Vec<u8>>, [u8; 32]);

fn build(pki: &Path) -> Result<Built, TlsError> {
    let provider = provider();
    let ca_path = pki.join(CA_CERT);
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca_path).map_err(file_error(&ca_path))? {
        roots
            .add(cert.map_err(file_error(&ca_path))?)
            .map_err(|e| TlsError::Config(format!("{}: {e}", ca_path.display())))?;
    }
    let crl_path = pki.join(CRL);
    let crl_bytes = std::fs::read(&crl_path).map_err(file_error(&crl_path))?;
    let digest: [u8; 32] = Sha256::digest(&crl_bytes).into();
    let crls = CertificateRevocationListDer::pem_slice_iter(&crl_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error(&crl_path))?;
    let mut revoked = HashSet::new();
    for crl in &crls {
        let (_, parsed) =
            x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| TlsError::File {
                path: crl_path.clone(),
                message: format!("not a CRL: {e}"),
            })?;
        revoked.extend(
            parsed
                .iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec()),
        );
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let cert_path = pki.join(GATEWAY_DIR).join(TLS_CERT);
    let key_path = pki.join(GATEWAY_DIR).join(TLS_KEY);
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(file_error(&cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error(&cert_path))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(file_error(&key_path))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok((Arc::new(config), revoked, digest))
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

//! The certificate revocation list: what `crl.pem` must hold before the
//! gateway trusts it (the background check that reloads it is
//! `crl_watch`).
//!
//! Revocation fails closed. A CRL is taken only if the file holds exactly
//! one PEM `X509 CRL`, issued by the federation CA (its issuer is the CA's
//! subject and its signature verifies with the CA's key, checked here at
//! load time rather than left to the handshake), with a CRL number and a
//! `nextUpdate` (RFC 5280 section 5 requires both). A new CRL must also
//! carry a higher number than the one in force: a lower number is a
//! rollback to an older list, and the same number with other content is a
//! second list under one number (we refuse it: which of the two is the
//! real one cannot be told, and the issuer always has a higher number to
//! hand). Anything refused leaves the CRL in force as it was, is logged as
//! an error and counted (`xgate_crl_reload_failures_total`).
//!
//! A CRL past its `nextUpdate` is stale: it may miss revocations made
//! since. That raises an alarm (an error in the log, `xgate_crl_stale` 1)
//! and, with `crl_strict`, every request is refused (`crl_stale`) until a
//! fresh CRL arrives.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::num_bigint::BigUint;

use crate::pki::files::{CA_CERT, CRL};

/// A CRL that passed every check: issued and signed by the federation CA,
/// numbered, with a `nextUpdate`.
#[derive(Clone, Debug)]
pub struct Crl {
    number: BigUint,
    next_update: i64,
    revoked: HashSet<Vec<u8>>,
    der: CertificateRevocationListDer<'static>,
}

/// Why a CRL was refused. Messages name files and numbers, never serials.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {fault}")]
pub struct CrlError {
    /// The CRL file (or the CA certificate, if that is what failed).
    pub path: PathBuf,
    /// What is wrong with it.
    pub fault: Fault,
}

/// What is wrong with a CRL file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// The file is missing or unreadable.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// The CA certificate cannot be read.
    #[error("cannot read the federation CA certificate: {0}")]
    Ca(String),
    /// No PEM `X509 CRL` block (an empty file, garbage, another PEM type).
    #[error("holds no PEM X509 CRL")]
    NoCrl,
    /// More than one CRL block.
    #[error("holds {0} CRLs; the federation CA issues one")]
    Several(usize),
    /// A block that is not a DER CRL.
    #[error("not a CRL: {0}")]
    Malformed(String),
    /// Issued by someone other than the federation CA.
    #[error("the CRL's issuer is not the federation CA")]
    Issuer,
    /// The signature does not verify with the CA's key.
    #[error("the CRL's signature does not verify with the federation CA's key")]
    Signature,
    /// No CRL number extension.
    #[error("the CRL has no CRL number")]
    NoNumber,
    /// No `nextUpdate`.
    #[error("the CRL has no nextUpdate")]
    NoNextUpdate,
    /// A lower number than the CRL in force: an older list.
    #[error("CRL number {offered} is lower than {in_force}, the number of the CRL in force")]
    Rollback {
        /// The number offered.
        offered: BigUint,
        /// The number in force.
        in_force: BigUint,
    },
    /// The number in force with different content.
    #[error(
        "CRL number {0} is the number of the CRL in force but the list differs; a new CRL needs a higher number"
    )]
    Reissued(BigUint),
}

impl Crl {
    /// Reads and checks `DIR/crl.pem` against `DIR/ca.crt`.
    ///
    /// # Errors
    /// [`CrlError`] naming the file and what is wrong with it.
    pub fn read(pki: &Path) -> Result<Crl, CrlError> {
        let ca_path = pki.join(CA_CERT);
        let ca_error = |e: &dyn std::fmt::Display| CrlError {
            path: ca_path.clone(),
            fault: Fault::Ca(e.to_string()),
        };
        let cas = CertificateDer::pem_file_iter(&ca_path)
            .map_err(|e| ca_error(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_error(&e))?;
        let crl_path = pki.join(CRL);
        let bytes = std::fs::read(&crl_path).map_err(|e| CrlError {
            path: crl_path.clone(),
            fault: Fault::Unreadable(e.to_string()),
        })?;
        Crl::parse(&bytes, &cas).map_err(|fault| CrlError {
            path: crl_path,
            fault,
        })
    }

    /// Checks the PEM text `pem` against the CA certificates `cas`.
    ///
    /// # Errors
    /// The [`Fault`] found.
    pub fn parse(pem: &[u8], cas: &[CertificateDer<'_>]) -> Result<Crl, Fault> {
        let blocks = CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Fault::Malformed(e.to_string()))?;
        let der = match blocks.as_slice() {
            [] => return Err(Fault::NoCrl),
            [one] => one.clone(),
            several => return Err(Fault::Several(several.len())),
        };
        let (rest, crl) = x509_parser::parse_x509_crl(der.as_ref())
            .map_err(|e| Fault::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Fault::Malformed("trailing bytes after the CRL".into()));
        }
        let mut issued_by_ca = false;
        for ca in cas {
            let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca.as_ref()) else {
                continue;
            };
            if ca.subject().as_raw() != crl.issuer().as_raw() {
                continue;
            }
            issued_by_ca = true;
            if crl.verify_signature(ca.public_key()).is_ok() {
                return Crl::checked(&crl, der.clone());
            }
        }
        Err(if issued_by_ca {
            Fault::Signature
        } else {
            Fault::Issuer
        })
    }

    fn checked(
        crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
        der: CertificateRevocationListDer<'static>,
    ) -> Result<Crl, Fault> {
        let number = crl.crl_number().cloned().ok_or(Fault::NoNumber)?;
        let next_update = crl.next_update().ok_or(Fault::NoNextUpdate)?.timestamp();
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        Ok(Crl {
            number,
            next_update,
            revoked,
            der,
        })
    }

    /// Whether this CRL may replace `in_force`: `Ok(true)` if it is newer,
    /// `Ok(false)` if it is the same list.
    ///
    /// # Errors
    /// [`Fault::Rollback`] for a lower number, [`Fault::Reissued`] for the
    /// same number with other content.
    pub fn replaces(&self, in_force: &Crl) -> Result<bool, Fault> {
        match self.number.cmp(&in_force.number) {
            std::cmp::Ordering::Greater => Ok(true),
            std::cmp::Ordering::Equal if self.der == in_force.der => Ok(false),
            std::cmp::Ordering::Equal => Err(Fault::Reissued(self.number.clone())),
            std::cmp::Ordering::Less => Err(Fault::Rollback {
                offered: self.number.clone(),
                in_force: in_force.number.clone(),
            }),
        }
    }

    /// Whether the CRL revokes the certificate with this serial.
    pub fn revokes(&self, serial: &[u8]) -> bool {
        self.revoked.contains(serial)
    }

    /// How many certificates it revokes.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether it revokes none.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// Its CRL number.
    pub fn number(&self) -> &BigUint {
        &self.number
    }

    /// Its `nextUpdate`, in seconds since the Unix epoch.
    pub fn next_update(&self) -> i64 {
        self.next_update
    }

    /// Whether it is past its `nextUpdate` at `now` (seconds since the
    /// epoch).
    pub fn is_stale_at(&self, now: i64) -> bool {
        now > self.next_update
    }

    /// Its DER encoding, for rustls.
    pub fn der(&self) -> &CertificateRevocationListDer<'static> {
        &self.der
    }
}

/// The wall clock in seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

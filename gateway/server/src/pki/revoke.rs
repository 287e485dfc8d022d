//! Revoking a certificate of the PKI: an agency's or a gateway's TLS
//! certificate goes on the CRL, which is re-signed with the next number
//! and replaced atomically; and re-issuing the CRL before it goes stale.

use std::path::Path;

use rcgen::{Issuer, KeyPair, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;

use super::cert::{cert_serial, pem_block, sign_crl};
use super::error::{PkiError, invalid, io};
use super::files::{CA_CERT, CA_KEY, CRL, TLS_CERT, gateway_dir};
use super::write::read;
use crate::crl::Crl;
use crate::registry::{AgencyId, GatewayId};

/// What `revoke` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The certificate is newly on the CRL, which now has this number.
    Added {
        /// Serial of the revoked certificate, lowercase hex.
        serial: String,
        /// The new CRL's number.
        crl_number: u64,
    },
    /// The certificate was already on the CRL; nothing changed.
    AlreadyRevoked {
        /// Serial of the certificate, lowercase hex.
        serial: String,
    },
}

/// Adds `agency`'s TLS certificate to the CRL in `dir`, re-signing it with
/// the next CRL number. The new CRL replaces the old one atomically, so a
/// gateway polling the file never reads half of it.
///
/// # Errors
/// [`PkiError::UnknownAgency`] if the PKI has no certificate for it; I/O,
/// parse and crypto failures.
pub fn revoke(dir: &Path, agency: &AgencyId) -> Result<Revoked, PkiError> {
    let cert_path = dir.join(agency.as_str()).join(TLS_CERT);
    if !cert_path.is_file() {
        return Err(PkiError::UnknownAgency {
            agency: agency.clone(),
            dir: dir.to_path_buf(),
            missing: cert_path,
        });
    }
    revoke_certificate(dir, &cert_path)
}

/// Adds gateway `gateway`'s TLS certificate (`gateways/<id>/tls.crt`) to
/// the CRL in `dir`, as [`revoke`] does an agency's: its peers refuse it
/// as a server, and gateways refuse it as a client.
///
/// # Errors
/// [`PkiError::UnknownGateway`] if the PKI has no certificate for it; I/O,
/// parse and crypto failures.
pub fn revoke_gateway(dir: &Path, gateway: &GatewayId) -> Result<Revoked, PkiError> {
    let cert_path = gateway_dir(dir, gateway).join(TLS_CERT);
    if !cert_path.is_file() {
        return Err(PkiError::UnknownGateway {
            gateway: gateway.clone(),
            dir: dir.to_path_buf(),
            missing: cert_path,
        });
    }
    revoke_certificate(dir, &cert_path)
}

/// Puts the certificate in `cert_path` on the CRL of `dir`.
fn revoke_certificate(dir: &Path, cert_path: &Path) -> Result<Revoked, PkiError> {
    let serial = cert_serial(&read(cert_path)?, cert_path)?;
    let (number, mut revoked) = current_crl(dir)?;
    let hex_serial = hex::encode(&serial);
    if revoked.iter().any(|r| r.serial_number.to_bytes() == serial) {
        return Ok(Revoked::AlreadyRevoked { serial: hex_serial });
    }
    revoked.push(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&serial),
        revocation_time: OffsetDateTime::now_utc(),
        reason_code: None,
        invalidity_date: None,
    });
    let crl_number = number + 1;
    replace_crl(dir, crl_number, revoked)?;
    Ok(Revoked::Added {
        serial: hex_serial,
        crl_number,
    })
}

/// Re-issues the CRL in `dir`: the same revocations under the next CRL
/// number, with a fresh `nextUpdate` (30 days on). Run it before the CRL
/// in force goes stale; returns the new number.
///
/// # Errors
/// As [`revoke`]: a CRL not signed by this CA is never re-issued.
pub fn reissue_crl(dir: &Path) -> Result<u64, PkiError> {
    let (number, revoked) = current_crl(dir)?;
    let crl_number = number + 1;
    replace_crl(dir, crl_number, revoked)?;
    Ok(crl_number)
}

/// The number and entries of the CRL in `dir`, which must pass the
/// gateway's own checks first: signing whatever `crl.pem` holds would
/// launder a forged or truncated list under the CA's signature.
fn current_crl(dir: &Path) -> Result<(u64, Vec<RevokedCertParams>), PkiError> {
    Crl::read(dir).map_err(|e| PkiError::Invalid {
        path: e.path.clone(),
        message: format!(
            "{}; refusing to build on it (restore the last CRL this CA issued)",
            e.fault
        ),
    })?;
    let crl_path = dir.join(CRL);
    crl_contents(&read(&crl_path)?, &crl_path)
}

/// Signs a CRL of `revoked` numbered `crl_number` and puts it in place
/// atomically, so a gateway polling the file never reads half of it.
fn replace_crl(
    dir: &Path,
    crl_number: u64,
    revoked: Vec<RevokedCertParams>,
) -> Result<(), PkiError> {
    let crl_path = dir.join(CRL);
    let ca_path = dir.join(CA_KEY);
    let ca_key = KeyPair::from_pem(&read(&ca_path)?).map_err(invalid(&ca_path))?;
    let ca_cert_path = dir.join(CA_CERT);
    let issuer =
        Issuer::from_ca_cert_pem(&read(&ca_cert_path)?, ca_key).map_err(invalid(&ca_cert_path))?;
    let pem = sign_crl(&issuer, crl_number, revoked)?;
    // The new CRL may be read by whoever could read the old one (the
    // gateway may run as another user), and by nobody else; written to a
    // unique temporary file, fsynced, renamed, and the directory fsynced.
    let mode = std::fs::metadata(&crl_path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .map_err(io(&crl_path))?;
    xgate_ledger::fsutil::write_atomic(&crl_path, pem.as_bytes(), mode).map_err(io(&crl_path))
}

/// The CRL's number and its revoked entries.
fn crl_contents(pem: &str, path: &Path) -> Result<(u64, Vec<RevokedCertParams>), PkiError> {
    let der = pem_block(pem, "X509 CRL", path)?;
    let (_, crl) =
        x509_parser::parse_x509_crl(&der).map_err(|e| invalid(path)(format!("not a CRL: {e}")))?;
    // Checked before (`current_crl`): the number exists; ours fit 64 bits.
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .and_then(|n| n.checked_add(1).map(|_| n))
        .ok_or_else(|| invalid(path)("the CRL number is not one this tool can follow"))?;
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| {
            let time = OffsetDateTime::from_unix_timestamp(r.revocation_date.timestamp())
                .unwrap_or_else(|_| OffsetDateTime::now_utc());
            RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.raw_serial()),
                revocation_time: time,
                reason_code: None,
                invalidity_date: None,
            }
        })
        .collect();
    Ok((number, revoked))
}

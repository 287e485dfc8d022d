//! Certificates and CRLs signed by the federation CA: TLS leaf
//! certificates (for both client and server use), their serials and
//! fingerprints, and the CRL. Every key is ECDSA P-256.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rcgen::{
    CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, Issuer,
    KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::error::{PkiError, crypto, invalid};

/// How long a leaf certificate is valid.
const LEAF_DAYS: i64 = 397;
/// How long a CRL claims to be current; `revoke` issues a fresh one.
const CRL_DAYS: i64 = 30;

/// The lowercase hex SHA-256 of a certificate's DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The host names a gateway certificate is valid for: `localhost` and
/// `127.0.0.1` (the development gateway's), and `host` if given and not
/// one of those (an IP address or a DNS name).
///
/// # Errors
/// [`PkiError::Crypto`] for a host that is no DNS name.
pub(crate) fn gateway_sans(host: Option<&str>) -> Result<Vec<SanType>, PkiError> {
    let mut sans = vec![
        SanType::DnsName("localhost".try_into().map_err(crypto)?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    ];
    let extra = match host {
        None => None,
        Some(host) => Some(match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.to_owned().try_into().map_err(crypto)?),
        }),
    };
    if let Some(extra) = extra.filter(|e| !sans.contains(e)) {
        sans.push(extra);
    }
    Ok(sans)
}

/// A TLS certificate for both client and server use, signed by the CA.
pub(crate) fn leaf(
    common_name: &str,
    sans: Vec<SanType>,
    issuer: &Issuer<'_, KeyPair>,
    now: OffsetDateTime,
) -> Result<(rcgen::Certificate, KeyPair), PkiError> {
    let key = KeyPair::generate().map_err(crypto)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    params.serial_number = Some(random_serial()?);
    let cert = params.signed_by(&key, issuer).map_err(crypto)?;
    Ok((cert, key))
}

/// A CRL numbered `number` revoking `revoked`, current for
/// [`CRL_DAYS`], in PEM.
pub(crate) fn sign_crl(
    issuer: &Issuer<'_, KeyPair>,
    number: u64,
    revoked: Vec<RevokedCertParams>,
) -> Result<String, PkiError> {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(CRL_DAYS),
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params
        .signed_by(issuer)
        .and_then(|crl| crl.pem())
        .map_err(crypto)
}

/// A positive 16-byte serial (RFC 5280 section 4.1.2.2 allows up to 20).
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PkiError::Crypto(e.to_string()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The serial of the PEM certificate read from `path`.
pub(crate) fn cert_serial(pem: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
    let der = pem_block(pem, "CERTIFICATE", path)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| invalid(path)(format!("not a certificate: {e}")))?;
    Ok(cert.raw_serial().to_vec())
}

/// The DER of the first PEM block labelled `label` (`CERTIFICATE` or
/// `X509 CRL`) in `text`, read from `path`.
pub(crate) fn pem_block(text: &str, label: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    match label {
        "CERTIFICATE" => {
            rustls_pki_types::CertificateDer::from_pem_slice(text.as_bytes()).map(|c| c.to_vec())
        }
        _ => rustls_pki_types::CertificateRevocationListDer::from_pem_slice(text.as_bytes())
            .map(|c| c.to_vec()),
    }
    .map_err(|e| invalid(path)(format!("no PEM {label}: {e}")))
}

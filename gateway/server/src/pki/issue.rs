//! Issuing the federation's development PKI: the CA, TLS certificates for
//! the gateway and for each agency, each agency's JOSE keys, the CRL, and
//! the registry that ties them together. `xgate certs` is a thin wrapper
//! over this.
//!
//! Every key is ECDSA P-256. Private key files are created with mode 0600,
//! exclusively (never through an existing file or symlink), and fsynced;
//! the directories are 0700. A new PKI is written into a temporary sibling
//! directory with a unique name, fsynced, and renamed into place, so an
//! interrupted `init` leaves no half-made PKI behind.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::files::{
    CA_CERT, CA_KEY, CRL, ENCRYPTION_JWK, GATEWAY_DIR, REGISTRY, SIGNING_JWK, TLS_CERT, TLS_KEY,
};
use crate::crl::Crl;
use crate::registry::{Agency, AgencyId, CertificateBinding, Registry, Role};

const CA_YEARS: i64 = 10;
const LEAF_DAYS: i64 = 397;
/// How long a CRL claims to be current; `revoke` issues a fresh one.
const CRL_DAYS: i64 = 30;

/// Why a PKI operation failed. Messages name files and agencies, never key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The target directory exists and `--force` was not given.
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    /// No agency was named, or one was named twice.
    #[error("{0}")]
    Agencies(String),
    /// The agency has no certificate in this PKI.
    #[error("no agency {agency} in {dir} ({missing} is missing)")]
    UnknownAgency {
        /// The agency asked for.
        agency: AgencyId,
        /// The PKI directory.
        dir: PathBuf,
        /// The file that would have held its certificate.
        missing: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A file holds something other than what it should.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Key generation or signing failed.
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

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

/// Creates a new PKI in `dir` for `agencies` and, with the auditor role,
/// `auditors`; with `force`, replaces an existing `dir`. Returns the
/// registry it wrote.
///
/// # Errors
/// [`PkiError::Exists`] without `force`, [`PkiError::Agencies`] for an
/// empty or repeated list, I/O and crypto failures.
pub fn init(
    dir: &Path,
    agencies: &[AgencyId],
    auditors: &[AgencyId],
    force: bool,
) -> Result<Registry, PkiError> {
    if agencies.is_empty() {
        return Err(PkiError::Agencies("name at least one --agency".into()));
    }
    let members: Vec<(AgencyId, Vec<Role>)> = agencies
        .iter()
        .map(|a| (a.clone(), Vec::new()))
        .chain(auditors.iter().map(|a| (a.clone(), vec![Role::Auditor])))
        .collect();
    for (i, (a, _)) in members.iter().enumerate() {
        if members[..i].iter().any(|(b, _)| b == a) {
            return Err(PkiError::Agencies(format!("agency {a} is named twice")));
        }
    }
    if dir.exists() && !force {
        return Err(PkiError::Exists(dir.to_path_buf()));
    }
    // Removed on any error until it is renamed into place.
    let staging = staging_dir(dir)?;
    let registry = write_pki(staging.path(), &members)?;
    sync_dirs(staging.path())?;
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    fs::rename(staging.path(), dir).map_err(io(dir))?;
    // Renamed: nothing left to remove.
    let _ = staging.keep();
    sync_dir(&parent_of(dir))?;
    Ok(registry)
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
    let serial = cert_serial(&read(&cert_path)?, &cert_path)?;
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
    let mode = fs::metadata(&crl_path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .map_err(io(&crl_path))?;
    xgate_ledger::fsutil::write_atomic(&crl_path, pem.as_bytes(), mode).map_err(io(&crl_path))
}

/// A display name for an agency: the sample agencies' full names, else the id.
pub fn display_name(id: &AgencyId) -> String {
    match id.as_str() {
        "state" => "Department of State",
        "treasury" => "Department of the Treasury",
        "gsa" => "General Services Administration",
        "hhs" => "Department of Health and Human Services",
        "gao" => "Government Accountability Office",
        other => other,
    }
    .to_owned()
}

/// The lowercase hex SHA-256 of a certificate's DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn write_pki(dir: &Path, members: &[(AgencyId, Vec<Role>)]) -> Result<Registry, PkiError> {
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().map_err(crypto)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "xgate development federation CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "xgate development federation");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(365 * CA_YEARS);
    ca.serial_number = Some(random_serial()?);
    let ca_cert = ca.self_signed(&ca_key).map_err(crypto)?;
    write_file(&dir.join(CA_CERT), ca_cert.pem().as_bytes(), 0o644)?;
    write_file(&dir.join(CA_KEY), ca_key.serialize_pem().as_bytes(), 0o600)?;
    let issuer = Issuer::new(ca, ca_key);
    write_file(
        &dir.join(CRL),
        sign_crl(&issuer, 1, Vec::new())?.as_bytes(),
        0o644,
    )?;

    let gateway_sans = vec![
        SanType::DnsName("localhost".try_into().map_err(crypto)?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    ];
    let (cert, key) = leaf("xgate gateway", gateway_sans, &issuer, now)?;
    let gateway = dir.join(GATEWAY_DIR);
    write_file(&gateway.join(TLS_CERT), cert.pem().as_bytes(), 0o644)?;
    write_file(
        &gateway.join(TLS_KEY),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;

    let mut entries = Vec::new();
    for (id, roles) in members {
        let uri = SanType::URI(id.uri().try_into().map_err(crypto)?);
        let (cert, key) = leaf(id.as_str(), vec![uri], &issuer, now)?;
        let home = dir.join(id.as_str());
        write_file(&home.join(TLS_CERT), cert.pem().as_bytes(), 0o644)?;
        write_file(&home.join(TLS_KEY), key.serialize_pem().as_bytes(), 0o600)?;
        let signing = jose_key("sig", "ES256")?;
        let encryption = jose_key("enc", "ECDH-ES+A256KW")?;
        write_file(
            &home.join(SIGNING_JWK),
            jwk_file(&signing).as_bytes(),
            0o600,
        )?;
        write_file(
            &home.join(ENCRYPTION_JWK),
            jwk_file(&encryption).as_bytes(),
            0o600,
        )?;
        entries.push(Agency {
            id: id.clone(),
            name: display_name(id),
            gateway: None,
            certificate: CertificateBinding {
                uri: id.uri(),
                sha256: Some(fingerprint(cert.der())),
            },
            signing_key: public_map(&signing)?,
            encryption_key: public_map(&encryption)?,
            roles: roles.clone(),
        });
    }
    let registry =
        Registry::from_agencies(entries).map_err(|e| PkiError::Agencies(e.to_string()))?;
    write_file(&dir.join(REGISTRY), registry.to_toml().as_bytes(), 0o644)?;
    Ok(registry)
}

/// A TLS certificate for both client and server use, signed by the CA.
fn leaf(
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

fn sign_crl(
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

/// A private JWK on P-256 with a `kid` that is its RFC 7638 thumbprint.
fn jose_key(key_use: &str, alg: &str) -> Result<Jwk, PkiError> {
    let mut jwk = Jwk::generate_ec_key(EcCurve::P256).map_err(crypto)?;
    jwk.set_key_use(key_use);
    jwk.set_algorithm(alg);
    jwk.set_key_id(thumbprint(&jwk)?);
    Ok(jwk)
}

/// RFC 7638 section 3.2: SHA-256 over the required EC members in
/// lexicographic order, no whitespace; base64url without padding.
fn thumbprint(jwk: &Jwk) -> Result<String, PkiError> {
    let member = |k: &str| {
        jwk.parameter(k)
            .and_then(Value::as_str)
            .ok_or_else(|| PkiError::Crypto(format!("generated JWK lacks {k:?}")))
    };
    let canonical = serde_json::json!({
        "crv": member("crv")?,
        "kty": member("kty")?,
        "x": member("x")?,
        "y": member("y")?,
    });
    // serde_json's Map is a BTreeMap here, so members come out sorted.
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

/// The public half of an EC private JWK, keeping `kid`, `use` and `alg`
/// (josekit's `to_public_key` drops them).
fn public_map(jwk: &Jwk) -> Result<serde_json::Map<String, Value>, PkiError> {
    let mut map = jwk.as_ref().clone();
    if map.remove("d").is_none() {
        return Err(PkiError::Crypto("generated JWK has no private part".into()));
    }
    Ok(map)
}

fn jwk_file(jwk: &Jwk) -> String {
    let pretty = serde_json::to_string_pretty(jwk.as_ref()).unwrap_or_else(|_| jwk.to_string());
    format!("{pretty}\n")
}

/// A positive 16-byte serial (RFC 5280 section 4.1.2.2 allows up to 20).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PkiError::Crypto(e.to_string()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn cert_serial(pem: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
    let der = pem_block(pem, "CERTIFICATE", path)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| invalid(path)(format!("not a certificate: {e}")))?;
    Ok(cert.raw_serial().to_vec())
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

fn pem_block(text: &str, label: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
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

/// A new, empty directory beside `dir` (mode 0700, a unique name, created
/// exclusively), removed when dropped.
fn staging_dir(dir: &Path) -> Result<tempfile::TempDir, PkiError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pki".into());
    let parent = parent_of(dir);
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(&parent)
        .map_err(io(&parent))
}

fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Fsyncs `dir` and every directory under it, so the names of the files
/// written there are durable before the PKI is renamed into place.
fn sync_dirs(dir: &Path) -> Result<(), PkiError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if fs::symlink_metadata(&path).map_err(io(&path))?.is_dir() {
            sync_dirs(&path)?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io(path))
}

/// Creates `path` (and its directory, mode 0700) with `mode`; never
/// follows or reuses an existing file or symlink (`O_EXCL`), so a key is
/// never written into a file others can read.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        xgate_ledger::fsutil::create_private_dir(parent).map_err(io(parent))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> PkiError + '_ {
    move |e| PkiError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn crypto<E: std::fmt::Display>(e: E) -> PkiError {
    PkiError::Crypto(e.to_string())
}

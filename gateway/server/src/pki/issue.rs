//! Issuing the federation's development PKI: the CA, TLS certificates for
//! the gateway and for each agency, each agency's JOSE keys, the CRL, in a
//! federation each gateway's files ([`super::gateways`]), and the registry
//! that ties them together. `xgate certs` is a thin wrapper over this.
//!
//! Every key is ECDSA P-256, except the agencies' envelope signing keys
//! when Ed25519 is asked for ([`SigningAlg::EdDsa`]). Private key files are created with mode 0600,
//! exclusively (never through an existing file or symlink), and fsynced;
//! the directories are 0700. A new PKI is written into a temporary sibling
//! directory with a unique name, fsynced, and renamed into place, so an
//! interrupted `init` leaves no half-made PKI behind.

use std::fs;
use std::path::Path;

use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::cert::{fingerprint, gateway_sans, leaf, random_serial, sign_crl};
use super::error::{PkiError, crypto, io};
use super::files::{
    CA_CERT, CA_KEY, CRL, ENCRYPTION_JWK, GATEWAY_DIR, REGISTRY, SIGNING_JWK, TLS_CERT, TLS_KEY,
};
use super::gateways::{self, GatewayPlan};
use super::write::{parent_of, staging_dir, sync_dir, sync_dirs, write_file};
use crate::registry::{Agency, AgencyId, CertificateBinding, GatewayId, Registry, Role};

const CA_YEARS: i64 = 10;

/// The algorithm the agencies sign envelopes with: the JWS `alg` of the
/// signing keys a PKI issues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256 (`ES256`).
    #[default]
    Es256,
    /// Ed25519 (`EdDSA`), checked in batches by the gateway.
    EdDsa,
}

impl SigningAlg {
    /// The JWS `alg`: `ES256` or `EdDSA`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }
}

/// An agency to issue keys for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The agency.
    pub id: AgencyId,
    /// Whether it holds the auditor role.
    pub auditor: bool,
    /// The gateway that serves it, in a federation of gateways.
    pub gateway: Option<GatewayId>,
}

/// Creates a new PKI in `dir` for `agencies` and, with the auditor role,
/// `auditors`, served by one gateway; with `force`, replaces an existing
/// `dir`. Returns the registry it wrote.
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
    let member = |auditor: bool| {
        move |id: &AgencyId| Member {
            id: id.clone(),
            auditor,
            gateway: None,
        }
    };
    let members: Vec<Member> = agencies
        .iter()
        .map(member(false))
        .chain(auditors.iter().map(member(true)))
        .collect();
    init_federation(dir, &members, &[], force)
}

/// Creates a new PKI in `dir` for `members` and the `gateways` that serve
/// them (none: one gateway serves every member, and no member names
/// one); with `force`, replaces an existing `dir`. Returns the registry it
/// wrote, which [`Registry::federation`] checked. Agencies sign with
/// ES256 ([`init_federation_with`] chooses).
///
/// # Errors
/// [`PkiError::Exists`] without `force`; [`PkiError::Agencies`] for no
/// member, a member or gateway named twice, a member naming a gateway
/// that is not listed, or naming none (or one, without gateways); I/O
/// and crypto failures. Nothing is left behind on any error.
pub fn init_federation(
    dir: &Path,
    members: &[Member],
    gateways: &[GatewayPlan],
    force: bool,
) -> Result<Registry, PkiError> {
    init_federation_with(dir, members, gateways, SigningAlg::Es256, force)
}

/// [`init_federation`], with the agencies' envelope signing keys for
/// `signing` (ES256: P-256; EdDSA: Ed25519).
///
/// # Errors
/// As [`init_federation`].
pub fn init_federation_with(
    dir: &Path,
    members: &[Member],
    gateways: &[GatewayPlan],
    signing: SigningAlg,
    force: bool,
) -> Result<Registry, PkiError> {
    check_plan(members, gateways)?;
    if dir.exists() && !force {
        return Err(PkiError::Exists(dir.to_path_buf()));
    }
    // Removed on any error until it is renamed into place.
    let staging = staging_dir(dir)?;
    let registry = write_pki(staging.path(), members, gateways, signing)?;
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

/// Checks that `members` and `gateways` make a registry, with messages in
/// the terms of `xgate certs init`'s flags.
fn check_plan(members: &[Member], gateways: &[GatewayPlan]) -> Result<(), PkiError> {
    let refuse = |message: String| Err(PkiError::Agencies(message));
    if members.is_empty() {
        return refuse("name at least one --agency".into());
    }
    for (i, m) in members.iter().enumerate() {
        if members[..i].iter().any(|b| b.id == m.id) {
            return refuse(format!("agency {} is named twice", m.id));
        }
    }
    for (i, g) in gateways.iter().enumerate() {
        if gateways[..i].iter().any(|b| b.id == g.id) {
            return refuse(format!("gateway {} is named twice", g.id));
        }
    }
    for m in members {
        match &m.gateway {
            Some(g) if gateways.is_empty() => {
                return refuse(format!(
                    "agency {}@{g} names a gateway, but no --gateway is given: without \
                     --gateway one gateway serves every agency, and agencies name none",
                    m.id
                ));
            }
            Some(g) if !gateways.iter().any(|p| p.id == *g) => {
                return refuse(format!(
                    "agency {} names gateway {g}, which no --gateway lists",
                    m.id
                ));
            }
            None if !gateways.is_empty() => {
                return refuse(format!(
                    "agency {} names no gateway: with --gateway, say which one serves it \
                     ({}@GATEWAY)",
                    m.id, m.id
                ));
            }
            _ => {}
        }
    }
    Ok(())
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

fn write_pki(
    dir: &Path,
    members: &[Member],
    gateways: &[GatewayPlan],
    signing: SigningAlg,
) -> Result<Registry, PkiError> {
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

    // The single gateway's certificate stays in a federation too: tools
    // (the demo, the bench) use it.
    let (cert, key) = leaf("xgate gateway", gateway_sans(None)?, &issuer, now)?;
    let gateway = dir.join(GATEWAY_DIR);
    write_file(&gateway.join(TLS_CERT), cert.pem().as_bytes(), 0o644)?;
    write_file(
        &gateway.join(TLS_KEY),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    let mut listed = Vec::new();
    for plan in gateways {
        listed.push(gateways::issue(dir, plan, &issuer, now)?);
    }

    let mut entries = Vec::new();
    for member in members {
        let id = &member.id;
        let uri = SanType::URI(id.uri().try_into().map_err(crypto)?);
        let (cert, key) = leaf(id.as_str(), vec![uri], &issuer, now)?;
        let home = dir.join(id.as_str());
        write_file(&home.join(TLS_CERT), cert.pem().as_bytes(), 0o644)?;
        write_file(&home.join(TLS_KEY), key.serialize_pem().as_bytes(), 0o600)?;
        let signing = match signing {
            SigningAlg::Es256 => jose_key("sig", "ES256")?,
            SigningAlg::EdDsa => ed25519_key()?,
        };
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
            gateway: member.gateway.clone(),
            certificate: CertificateBinding {
                uri: id.uri(),
                sha256: Some(fingerprint(cert.der())),
            },
            signing_key: public_map(&signing)?,
            encryption_key: public_map(&encryption)?,
            roles: if member.auditor {
                vec![Role::Auditor]
            } else {
                Vec::new()
            },
        });
    }
    let registry =
        Registry::federation(entries, listed).map_err(|e| PkiError::Agencies(e.to_string()))?;
    write_file(&dir.join(REGISTRY), registry.to_toml().as_bytes(), 0o644)?;
    Ok(registry)
}

/// A private JWK on P-256 with a `kid` that is its RFC 7638 thumbprint.
fn jose_key(key_use: &str, alg: &str) -> Result<Jwk, PkiError> {
    let mut jwk = Jwk::generate_ec_key(EcCurve::P256).map_err(crypto)?;
    jwk.set_key_use(key_use);
    jwk.set_algorithm(alg);
    jwk.set_key_id(thumbprint(&jwk)?);
    Ok(jwk)
}

/// A private Ed25519 signing JWK (RFC 8037: `OKP`, `Ed25519`), `alg`
/// EdDSA, with a `kid` that is its RFC 7638 thumbprint.
fn ed25519_key() -> Result<Jwk, PkiError> {
    let mut jwk = Jwk::generate_ed_key(EdCurve::Ed25519).map_err(crypto)?;
    jwk.set_key_use("sig");
    jwk.set_algorithm("EdDSA");
    jwk.set_key_id(thumbprint(&jwk)?);
    Ok(jwk)
}

/// RFC 7638 section 3.2: SHA-256 over the required members in
/// lexicographic order, no whitespace; base64url without padding. The
/// required members are `crv`, `kty`, `x`, `y` for an EC key, and `crv`,
/// `kty`, `x` for an OKP key (RFC 8037 section 2).
fn thumbprint(jwk: &Jwk) -> Result<String, PkiError> {
    let member = |k: &str| {
        jwk.parameter(k)
            .and_then(Value::as_str)
            .ok_or_else(|| PkiError::Crypto(format!("generated JWK lacks {k:?}")))
    };
    let mut canonical = serde_json::json!({
        "crv": member("crv")?,
        "kty": member("kty")?,
        "x": member("x")?,
    });
    if jwk.key_type() == "EC" {
        canonical["y"] = Value::from(member("y")?);
    }
    // serde_json's Map is a BTreeMap here, so members come out sorted.
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

/// The public half of an EC or OKP private JWK, keeping `kid`, `use` and `alg`
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_are_rfc_7638s() {
        // RFC 8037 appendix A.3: the Ed25519 key of A.2 and its thumbprint.
        let okp = Jwk::from_map(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        )
        .expect("jwk");
        assert_eq!(
            thumbprint(&okp).expect("thumbprint"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // An EC key: over crv, kty, x, y, written from RFC 7638 here.
        let ec = Jwk::generate_ec_key(EcCurve::P256).expect("ec");
        let member = |k: &str| ec.parameter(k).and_then(Value::as_str).expect("member");
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("kty"),
            member("x"),
            member("y")
        );
        use base64::Engine as _;
        assert_eq!(
            thumbprint(&ec).expect("thumbprint"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
        );
    }

    #[test]
    fn an_eddsa_pki_registers_ed25519_signing_keys() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("pki");
        let member = |id: &str| Member {
            id: id.parse().expect("id"),
            auditor: false,
            gateway: None,
        };
        let registry = init_federation_with(
            &dir,
            &[member("state"), member("gsa")],
            &[],
            SigningAlg::EdDsa,
            false,
        )
        .expect("pki");
        for agency in registry.agencies() {
            let key = &agency.signing_key;
            let text = |k: &str| key.get(k).and_then(Value::as_str);
            assert_eq!(text("kty"), Some("OKP"));
            assert_eq!(text("crv"), Some("Ed25519"));
            assert_eq!(text("alg"), Some("EdDSA"));
            assert_eq!(text("use"), Some("sig"));
            assert!(!key.contains_key("d") && !key.contains_key("y"));
            let public = Jwk::from_map(key.clone()).expect("jwk");
            assert_eq!(
                text("kid"),
                Some(thumbprint(&public).expect("kid").as_str())
            );
            // The private key is the agency's own, beside its certificate.
            let file = fs::read(dir.join(agency.id.as_str()).join(SIGNING_JWK)).expect("jwk");
            let private = Jwk::from_bytes(file).expect("private jwk");
            assert_eq!(private.key_id(), text("kid"));
            assert!(private.parameter("d").is_some());
            // Encryption keys stay P-256 (ECDH-ES).
            assert_eq!(
                agency.encryption_key.get("kty").and_then(Value::as_str),
                Some("EC")
            );
        }
        let verifiers = crate::envelope::Verifiers::from_registry(&registry).expect("verifiers");
        assert!(verifiers.any_ed25519());
    }
}

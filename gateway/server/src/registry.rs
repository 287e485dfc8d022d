//! The agency registry: who is in the federation, how their TLS certificates
//! name them, and the public JOSE keys their envelopes are checked with.
//!
//! It is one TOML file, `registry.toml` in the PKI directory, written by
//! `xgate certs init` and read by the gateway at start:
//!
//! ```toml
//! [[agency]]
//! id = "state"
//! name = "Department of State"
//!
//! [agency.certificate]          # the binding between a TLS certificate and the agency
//! uri = "urn:xgate:agency:state"
//! sha256 = "9f86d0...e1b"       # fingerprint of the certificate issued to it
//!
//! [agency.signing_key]          # public JWK (RFC 7517), ES256 or EdDSA
//! kty = "EC"
//! ...
//!
//! [agency.encryption_key]       # public JWK, ECDH-ES+A256KW
//! ...
//! ```
//!
//! A certificate binds to an agency through its SAN URI; `sha256`, when
//! present, pins the one certificate accepted for it. Parsing checks every
//! field, so a loaded [`Registry`] is usable as is.
//!
//! A federation of gateways (docs/federation.md) also lists its gateways,
//! and each agency names the one that serves it:
//!
//! ```toml
//! [[gateway]]
//! id = "hub"
//! url = "https://hub.example:8443"             # where peers forward to
//! log_key = "xgate/hub+1a2b3c4d+AXJ0..."       # its log's verifier key
//! witness_key = "xgate/hub/witness+..."        # its witness's verifier key
//!
//! [gateway.certificate]
//! uri = "urn:xgate:gateway:hub"
//!
//! [[agency]]
//! id = "state"
//! gateway = "hub"
//! ...
//! ```
//!
//! Without `[[gateway]]` tables the registry is a single gateway's, which
//! serves every agency (and no agency may name a gateway).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The prefix of the SAN URI that names an agency in its TLS certificate.
pub const AGENCY_URI_PREFIX: &str = "urn:xgate:agency:";

/// An agency identifier: 1 to 63 characters of lowercase ASCII letters,
/// digits and inner hyphens (a DNS label), so it is safe in paths, URIs and
/// log lines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgencyId(String);

impl AgencyId {
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SAN URI a certificate for this agency carries.
    pub fn uri(&self) -> String {
        format!("{AGENCY_URI_PREFIX}{}", self.0)
    }

    /// The agency named by a certificate's SAN URI, if it is one of ours.
    pub fn from_uri(uri: &str) -> Option<AgencyId> {
        uri.strip_prefix(AGENCY_URI_PREFIX)
            .and_then(|id| AgencyId::try_from(id.to_owned()).ok())
    }
}

impl TryFrom<String> for AgencyId {
    type Error = InvalidAgencyId;

    fn try_from(id: String) -> Result<AgencyId, InvalidAgencyId> {
        let bytes = id.as_bytes();
        let ok_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.iter().all(ok_char)
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        if valid {
            Ok(AgencyId(id))
        } else {
            Err(InvalidAgencyId)
        }
    }
}

impl std::str::FromStr for AgencyId {
    type Err = InvalidAgencyId;

    fn from_str(s: &str) -> Result<AgencyId, InvalidAgencyId> {
        AgencyId::try_from(s.to_owned())
    }
}

/// A text that is not an agency id. The text is not repeated: the message
/// can reach other parties (an envelope's `aud`, a body's `agency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid agency id: use 1-63 lowercase letters, digits and inner hyphens")]
pub struct InvalidAgencyId;

impl From<AgencyId> for String {
    fn from(id: AgencyId) -> String {
        id.0
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of the SAN URI that names a gateway in its TLS certificate.
pub const GATEWAY_URI_PREFIX: &str = "urn:xgate:gateway:";

/// A gateway identifier, with the rules of an [`AgencyId`] (a DNS label).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GatewayId(String);

impl GatewayId {
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SAN URI a certificate for this gateway carries.
    pub fn uri(&self) -> String {
        format!("{GATEWAY_URI_PREFIX}{}", self.0)
    }

    /// The gateway named by a certificate's SAN URI, if it names one.
    pub fn from_uri(uri: &str) -> Option<GatewayId> {
        uri.strip_prefix(GATEWAY_URI_PREFIX)
            .and_then(|id| GatewayId::try_from(id.to_owned()).ok())
    }
}

impl TryFrom<String> for GatewayId {
    type Error = InvalidAgencyId;

    fn try_from(id: String) -> Result<GatewayId, InvalidAgencyId> {
        AgencyId::try_from(id).map(|a| GatewayId(a.0))
    }
}

impl std::str::FromStr for GatewayId {
    type Err = InvalidAgencyId;

    fn from_str(s: &str) -> Result<GatewayId, InvalidAgencyId> {
        GatewayId::try_from(s.to_owned())
    }
}

impl From<GatewayId> for String {
    fn from(id: GatewayId) -> String {
        id.0
    }
}

impl fmt::Display for GatewayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a TLS certificate is bound to an agency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateBinding {
    /// The SAN URI the certificate must carry: `urn:xgate:agency:<id>`.
    pub uri: String,
    /// If set, the lowercase hex SHA-256 of the one certificate accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One member of the federation, as the registry file lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    /// The agency's identifier.
    pub id: AgencyId,
    /// A human-readable name.
    pub name: String,
    /// The gateway that serves it, in a federation of gateways; `None` in
    /// a single gateway's registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayId>,
    /// Which TLS certificate speaks for it.
    pub certificate: CertificateBinding,
    /// Public JWK its envelopes are signed with.
    pub signing_key: Map<String, Value>,
    /// Public JWK payloads for it are encrypted to.
    pub encryption_key: Map<String, Value>,
    /// What else the agency may do; none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
}

/// A federation-wide role an agency can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads every asset, reconciliation and review, whoever holds them.
    Auditor,
}

impl Agency {
    /// Whether the agency holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// One gateway of a federation, as the registry file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// The gateway's identifier.
    pub id: GatewayId,
    /// Where its peers forward envelopes to: `https://HOST:PORT`.
    pub url: String,
    /// Its log's verifier key (a signed-note vkey): its receipts and
    /// checkpoints are checked with this, never with a key it sends.
    pub log_key: String,
    /// Its witness's verifier key, if it witnesses its peers' logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_key: Option<String>,
    /// Which TLS certificate speaks for it (SAN URI
    /// `urn:xgate:gateway:<id>`).
    pub certificate: CertificateBinding,
}

/// The registry file's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gateway: Vec<Gateway>,
    #[serde(default)]
    agency: Vec<Agency>,
}

/// The agency registry, keyed by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    agencies: BTreeMap<AgencyId, Agency>,
    /// Empty for a single gateway's registry.
    gateways: BTreeMap<GatewayId, Gateway>,
}

/// Why a registry could not be loaded or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The registry file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not a valid registry.
    #[error("{path}: {problem}")]
    Invalid {
        /// The registry file.
        path: String,
        /// What is wrong with it. Shown in this error's message, so not
        /// also its `source`: a printer walking the chain would say it
        /// twice.
        problem: InvalidRegistry,
    },
}

/// Why a list of agencies, or the TOML holding it, is not a registry. Each
/// message names the agency and the field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRegistry {
    /// The text is not TOML of a registry's shape.
    #[error("{}", one_line(&.0.to_string()))]
    Syntax(toml::de::Error),
    /// Two agencies have the same id.
    #[error("agency {0} is listed twice")]
    Duplicate(AgencyId),
    /// The certificate binding names another agency's URI.
    #[error("agency {id}: certificate uri must be {:?}, not {found:?}", .id.uri())]
    CertificateUri {
        /// The agency.
        id: AgencyId,
        /// The URI the file gives.
        found: String,
    },
    /// The pinned fingerprint is not a SHA-256 in lowercase hex.
    #[error("agency {id}: certificate sha256 must be 64 lowercase hex digits")]
    CertificateSha256 {
        /// The agency.
        id: AgencyId,
    },
    /// A key holds its private part.
    #[error(
        "agency {id}: {field} holds a private key (\"d\"); the registry takes public keys only"
    )]
    PrivateKey {
        /// The agency.
        id: AgencyId,
        /// `signing_key` or `encryption_key`.
        field: &'static str,
    },
    /// A key has no `kid`, so envelopes and JWEs could not name it.
    #[error("agency {id}: {field} needs a \"kid\"")]
    MissingKid {
        /// The agency.
        id: AgencyId,
        /// `signing_key` or `encryption_key`.
        field: &'static str,
    },
    /// A key's `use` is not the one its field is for.
    #[error("agency {id}: {field} must have \"use\" = \"{expected}\"")]
    KeyUse {
        /// The agency.
        id: AgencyId,
        /// `signing_key` or `encryption_key`.
        field: &'static str,
        /// `sig` or `enc`.
        expected: &'static str,
    },
    /// A key is neither an EC nor an OKP key.
    #[error("agency {id}: {field} must be an EC or OKP key (\"kty\")")]
    KeyType {
        /// The agency.
        id: AgencyId,
        /// `signing_key` or `encryption_key`.
        field: &'static str,
    },
    /// Two gateways have the same id.
    #[error("gateway {0} is listed twice")]
    DuplicateGateway(GatewayId),
    /// A gateway's certificate binding names another URI.
    #[error("gateway {id}: certificate uri must be {:?}, not {found:?}", .id.uri())]
    GatewayUri {
        /// The gateway.
        id: GatewayId,
        /// The URI the file gives.
        found: String,
    },
    /// A gateway's pinned fingerprint is not a SHA-256 in lowercase hex.
    #[error("gateway {id}: certificate sha256 must be 64 lowercase hex digits")]
    GatewaySha256 {
        /// The gateway.
        id: GatewayId,
    },
    /// A gateway's URL is not `https://HOST[:PORT]`.
    #[error("gateway {id}: url must be https://HOST[:PORT] with nothing after it")]
    GatewayUrl {
        /// The gateway.
        id: GatewayId,
    },
    /// A gateway's `log_key` or `witness_key` is not a verifier key.
    #[error("gateway {id}: {field} is not a verifier key: {reason}")]
    GatewayKey {
        /// The gateway.
        id: GatewayId,
        /// `log_key` or `witness_key`.
        field: &'static str,
        /// Why it does not parse.
        reason: String,
    },
    /// In a federation, an agency that names no gateway.
    #[error("agency {0}: gateway is required when the registry lists gateways")]
    NoGateway(AgencyId),
    /// An agency names a gateway the registry does not list.
    #[error("agency {agency}: gateway {gateway} is not listed")]
    UnknownGateway {
        /// The agency.
        agency: AgencyId,
        /// The gateway it names.
        gateway: GatewayId,
    },
    /// An agency holds a value TOML cannot write (a JSON `null`, an
    /// integer beyond 64-bit signed): refused here, so that every
    /// [`Registry`] can be written back with [`Registry::to_toml`].
    #[error("agency {id}: cannot be written as TOML: {reason}")]
    Unwritable {
        /// The agency.
        id: AgencyId,
        /// What the TOML writer refused.
        reason: toml::ser::Error,
    },
}

impl Registry {
    /// Builds a single gateway's registry from a list of agencies.
    ///
    /// # Errors
    /// [`InvalidRegistry`] naming the problem: a duplicate id, a
    /// certificate binding that names another agency, keys that are not
    /// public JWKs of the right use, or values TOML cannot hold.
    pub fn from_agencies(agencies: Vec<Agency>) -> Result<Registry, InvalidRegistry> {
        Registry::federation(agencies, Vec::new())
    }

    /// Builds a registry of agencies and the gateways that serve them;
    /// with no gateways, a single gateway's registry.
    ///
    /// # Errors
    /// As [`Registry::from_agencies`], and for gateways: a duplicate id, a
    /// certificate URI that is not the gateway's, a URL that is not
    /// `https://`, a key that is not a verifier key, or an agency that
    /// names no listed gateway (or any, without gateways).
    pub fn federation(
        agencies: Vec<Agency>,
        gateways: Vec<Gateway>,
    ) -> Result<Registry, InvalidRegistry> {
        let mut by_id = BTreeMap::new();
        for gateway in gateways {
            check_gateway(&gateway)?;
            if by_id.contains_key(&gateway.id) {
                return Err(InvalidRegistry::DuplicateGateway(gateway.id));
            }
            by_id.insert(gateway.id.clone(), gateway);
        }
        let mut map = BTreeMap::new();
        for agency in agencies {
            check_agency(&agency)?;
            match &agency.gateway {
                None if !by_id.is_empty() => {
                    return Err(InvalidRegistry::NoGateway(agency.id));
                }
                Some(gateway) if !by_id.contains_key(gateway) => {
                    return Err(InvalidRegistry::UnknownGateway {
                        agency: agency.id.clone(),
                        gateway: gateway.clone(),
                    });
                }
                _ => {}
            }
            if map.contains_key(&agency.id) {
                return Err(InvalidRegistry::Duplicate(agency.id));
            }
            map.insert(agency.id.clone(), agency);
        }
        Ok(Registry {
            agencies: map,
            gateways: by_id,
        })
    }

    /// Reads and checks a registry file.
    ///
    /// # Errors
    /// [`RegistryError`] naming the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Registry::parse(&text).map_err(|problem| RegistryError::Invalid {
            path: path.display().to_string(),
            problem,
        })
    }

    /// Parses and checks registry TOML.
    ///
    /// # Errors
    /// [`InvalidRegistry`] naming the problem (and its line, for TOML
    /// syntax errors).
    pub fn parse(text: &str) -> Result<Registry, InvalidRegistry> {
        let file: RegistryFile = toml::from_str(text).map_err(InvalidRegistry::Syntax)?;
        Registry::federation(file.agency, file.gateway)
    }

    /// The registry as TOML, agencies in id order.
    pub fn to_toml(&self) -> String {
        let file = RegistryFile {
            gateway: self.gateways.values().cloned().collect(),
            agency: self.agencies.values().cloned().collect(),
        };
        // Every agency was written once already, alone, when the registry
        // was built (`check_agency`), and an array of such tables is TOML
        // too: this cannot fail, and if it ever did, writing an empty
        // registry would silently drop the federation.
        let body = toml::to_string(&file).expect("every agency of a Registry is writable as TOML");
        format!(
            "# The xgate agency registry: each member's id, name, TLS certificate\n\
             # binding and public JOSE keys, and in a federation each gateway's URL,\n\
             # certificate binding and log key. Written by `xgate certs init`.\n\n{body}"
        )
    }

    /// Whether `id` is a registered agency with the auditor role.
    pub fn is_auditor(&self, id: &AgencyId) -> bool {
        self.get(id).is_some_and(|a| a.has_role(Role::Auditor))
    }

    /// The agency with this id.
    pub fn get(&self, id: &AgencyId) -> Option<&Agency> {
        self.agencies.get(id)
    }

    /// Every agency, in id order.
    pub fn agencies(&self) -> impl Iterator<Item = &Agency> {
        self.agencies.values()
    }

    /// How many agencies there are.
    pub fn len(&self) -> usize {
        self.agencies.len()
    }

    /// Whether the registry lists no agency.
    pub fn is_empty(&self) -> bool {
        self.agencies.is_empty()
    }

    /// Whether the registry lists gateways: a federation where each
    /// agency is served by the gateway it names.
    pub fn is_federated(&self) -> bool {
        !self.gateways.is_empty()
    }

    /// The gateway with this id.
    pub fn gateway(&self, id: &GatewayId) -> Option<&Gateway> {
        self.gateways.get(id)
    }

    /// Every gateway, in id order (none in a single gateway's registry).
    pub fn gateways(&self) -> impl Iterator<Item = &Gateway> {
        self.gateways.values()
    }

    /// The gateway that serves `agency`: `None` for an unknown agency and
    /// in a single gateway's registry.
    pub fn gateway_of(&self, agency: &AgencyId) -> Option<&Gateway> {
        self.get(agency)
            .and_then(|a| a.gateway.as_ref())
            .and_then(|g| self.gateways.get(g))
    }

    /// Whether the gateway `local` (`None`: the only gateway) serves
    /// `agency`, a registered agency.
    pub fn serves(&self, local: Option<&GatewayId>, agency: &AgencyId) -> bool {
        let Some(found) = self.get(agency) else {
            return false;
        };
        match (local, &found.gateway) {
            (None, None) => true,
            (Some(local), Some(gateway)) => local == gateway,
            _ => false,
        }
    }
}

/// Checks one agency's fields, beyond what its type already guarantees.
fn check_agency(agency: &Agency) -> Result<(), InvalidRegistry> {
    let id = &agency.id;
    if agency.certificate.uri != id.uri() {
        return Err(InvalidRegistry::CertificateUri {
            id: id.clone(),
            found: agency.certificate.uri.clone(),
        });
    }
    if agency
        .certificate
        .sha256
        .as_deref()
        .is_some_and(|fp| !is_sha256_hex(fp))
    {
        return Err(InvalidRegistry::CertificateSha256 { id: id.clone() });
    }
    check_public_jwk(id, "signing_key", &agency.signing_key, "sig")?;
    check_public_jwk(id, "encryption_key", &agency.encryption_key, "enc")?;
    // The keys are JSON maps, which may hold what TOML cannot: found now,
    // with the agency named, rather than when the registry is written.
    toml::to_string(agency).map_err(|reason| InvalidRegistry::Unwritable {
        id: id.clone(),
        reason,
    })?;
    Ok(())
}

/// Checks one gateway's fields, beyond what its type already guarantees.
fn check_gateway(gateway: &Gateway) -> Result<(), InvalidRegistry> {
    let id = &gateway.id;
    if gateway.certificate.uri != id.uri() {
        return Err(InvalidRegistry::GatewayUri {
            id: id.clone(),
            found: gateway.certificate.uri.clone(),
        });
    }
    if gateway
        .certificate
        .sha256
        .as_deref()
        .is_some_and(|fp| !is_sha256_hex(fp))
    {
        return Err(InvalidRegistry::GatewaySha256 { id: id.clone() });
    }
    let authority = gateway.url.strip_prefix("https://").unwrap_or_default();
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(InvalidRegistry::GatewayUrl { id: id.clone() });
    }
    let key_error = |field: &'static str, reason: String| InvalidRegistry::GatewayKey {
        id: id.clone(),
        field,
        reason,
    };
    xgate_ledger::NoteVerifier::parse(&gateway.log_key)
        .map_err(|e| key_error("log_key", e.to_string()))?;
    if let Some(key) = &gateway.witness_key {
        xgate_ledger::cosign::CosignerVerifier::parse(key)
            .map_err(|e| key_error("witness_key", e.to_string()))?;
    }
    Ok(())
}

/// Whether `text` is a SHA-256 in lowercase hex.
fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Checks that `jwk`, the agency's `field`, is a public key for
/// `expected_use`. Whether it is a usable key of its curve is checked where
/// it is loaded, by the envelope verifiers and the medical JWE profile,
/// which know the algorithms.
fn check_public_jwk(
    id: &AgencyId,
    field: &'static str,
    jwk: &Map<String, Value>,
    expected_use: &'static str,
) -> Result<(), InvalidRegistry> {
    let text = |k: &str| jwk.get(k).and_then(Value::as_str);
    let id = id.clone();
    if jwk.contains_key("d") {
        return Err(InvalidRegistry::PrivateKey { id, field });
    }
    if text("kid").is_none_or(str::is_empty) {
        return Err(InvalidRegistry::MissingKid { id, field });
    }
    if text("use") != Some(expected_use) {
        return Err(InvalidRegistry::KeyUse {
            id,
            field,
            expected: expected_use,
        });
    }
    if !matches!(text("kty"), Some("EC" | "OKP")) {
        return Err(InvalidRegistry::KeyType { id, field });
    }
    Ok(())
}

/// TOML errors span several lines (a source excerpt); keep the first, which
/// names the line and column, and the last, which says what is wrong.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} {last}"),
        (Some(first), _) => (*first).to_owned(),
        _ => message.to_owned(),
    }
}

/// A registry of these agencies, for unit tests: the keys have only the
/// fields a registry checks, so nothing can be signed or sealed with them.
#[cfg(test)]
pub(crate) fn for_tests(ids: &[&str]) -> Registry {
    let agency = |id: &&str| {
        format!(
            "[[agency]]\nid = '{id}'\nname = '{id}'\n\
             [agency.certificate]\nuri = 'urn:xgate:agency:{id}'\n\
             [agency.signing_key]\nkty = 'EC'\ncrv = 'P-256'\nkid = 's-{id}'\n\
             x = 'x'\ny = 'y'\nuse = 'sig'\nalg = 'ES256'\n\
             [agency.encryption_key]\nkty = 'EC'\ncrv = 'P-256'\nkid = 'e-{id}'\n\
             x = 'x'\ny = 'y'\nuse = 'enc'\nalg = 'ECDH-ES+A256KW'\n"
        )
    };
    Registry::parse(&ids.iter().map(agency).collect::<String>()).expect("registry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_ids_are_dns_labels() {
        for good in ["state", "gsa", "a", "hhs-2", "x9"] {
            assert!(good.parse::<AgencyId>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "State",
            "-a",
            "a-",
            "a_b",
            "a/b",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<AgencyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn agency_uri_round_trips() {
        let id: AgencyId = "treasury".parse().expect("id");
        assert_eq!(id.uri(), "urn:xgate:agency:treasury");
        assert_eq!(AgencyId::from_uri(&id.uri()), Some(id));
        assert_eq!(AgencyId::from_uri("urn:other:treasury"), None);
        assert_eq!(AgencyId::from_uri("urn:xgate:agency:Bad"), None);
    }

    #[test]
    fn a_registry_holds_only_what_it_can_write_back() {
        let key = |use_: &str| {
            let mut jwk = Map::new();
            for (k, v) in [("kty", "EC"), ("kid", "k"), ("use", use_)] {
                jwk.insert(k.into(), Value::from(v));
            }
            jwk
        };
        let mut agency = Agency {
            id: "state".parse().expect("id"),
            name: "State".into(),
            gateway: None,
            certificate: CertificateBinding {
                uri: "urn:xgate:agency:state".into(),
                sha256: None,
            },
            signing_key: key("sig"),
            encryption_key: key("enc"),
            roles: Vec::new(),
        };
        let registry = Registry::from_agencies(vec![agency.clone()]).expect("valid");
        assert_eq!(
            Registry::parse(&registry.to_toml()).expect("reads"),
            registry
        );
        // JSON null has no TOML form: refused when built, not written empty.
        agency.signing_key.insert("x5t".into(), Value::Null);
        let err = Registry::from_agencies(vec![agency]).expect_err("null");
        assert!(matches!(err, InvalidRegistry::Unwritable { .. }), "{err}");
        assert!(err.to_string().starts_with("agency state: "), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Registry::parse("[[agency]]\nid = \n")
            .expect_err("invalid")
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains('\n'));
    }

    fn agency(id: &str, gateway: Option<&str>) -> Agency {
        let key = |use_: &str| {
            let mut jwk = Map::new();
            for (k, v) in [("kty", "EC"), ("kid", "k"), ("use", use_)] {
                jwk.insert(k.into(), Value::from(v));
            }
            jwk
        };
        Agency {
            id: id.parse().expect("id"),
            name: id.into(),
            gateway: gateway.map(|g| g.parse().expect("gateway id")),
            certificate: CertificateBinding {
                uri: format!("urn:xgate:agency:{id}"),
                sha256: None,
            },
            signing_key: key("sig"),
            encryption_key: key("enc"),
            roles: Vec::new(),
        }
    }

    fn gateway(id: &str) -> Gateway {
        let signer = xgate_ledger::NoteSigner::generate(&format!("xgate/{id}")).expect("key");
        Gateway {
            id: id.parse().expect("id"),
            url: format!("https://{id}.example:8443"),
            log_key: signer.verifier().to_string(),
            witness_key: None,
            certificate: CertificateBinding {
                uri: format!("urn:xgate:gateway:{id}"),
                sha256: None,
            },
        }
    }

    #[test]
    fn a_federation_says_which_gateway_serves_each_agency() {
        let registry = Registry::federation(
            vec![
                agency("state", Some("hub")),
                agency("gsa", Some("hub")),
                agency("hhs", Some("g-hhs")),
            ],
            vec![gateway("hub"), gateway("g-hhs")],
        )
        .expect("valid");
        assert!(registry.is_federated());
        assert_eq!(
            Registry::parse(&registry.to_toml()).expect("reads"),
            registry
        );
        let hub: GatewayId = "hub".parse().expect("id");
        let hhs: AgencyId = "hhs".parse().expect("id");
        let state: AgencyId = "state".parse().expect("id");
        assert_eq!(
            registry.gateway_of(&hhs).map(|g| g.id.as_str()),
            Some("g-hhs")
        );
        assert!(registry.serves(Some(&hub), &state));
        assert!(!registry.serves(Some(&hub), &hhs));
        // A federation's gateway must say which one it is.
        assert!(!registry.serves(None, &state));
        assert!(!registry.serves(Some(&hub), &"nobody".parse().expect("id")));

        let single = Registry::from_agencies(vec![agency("state", None)]).expect("valid");
        assert!(!single.is_federated());
        assert!(single.serves(None, &state));
        assert!(!single.serves(Some(&hub), &state));
    }

    #[test]
    fn gateways_are_checked_field_by_field() {
        let refused = |agencies: Vec<Agency>, gateways: Vec<Gateway>| {
            Registry::federation(agencies, gateways)
                .expect_err("refused")
                .to_string()
        };
        let with = |f: fn(&mut Gateway)| {
            let mut g = gateway("hub");
            f(&mut g);
            vec![g]
        };
        let served = || vec![agency("state", Some("hub"))];
        assert_eq!(
            refused(vec![agency("state", None)], vec![gateway("hub")]),
            "agency state: gateway is required when the registry lists gateways"
        );
        assert_eq!(
            refused(
                vec![agency("state", Some("elsewhere"))],
                vec![gateway("hub")]
            ),
            "agency state: gateway elsewhere is not listed"
        );
        assert_eq!(
            refused(vec![agency("state", Some("hub"))], Vec::new()),
            "agency state: gateway hub is not listed"
        );
        assert_eq!(
            refused(served(), vec![gateway("hub"), gateway("hub")]),
            "gateway hub is listed twice"
        );
        assert!(
            refused(
                served(),
                with(|g| g.certificate.uri = "urn:xgate:agency:hub".into())
            )
            .starts_with("gateway hub: certificate uri must be \"urn:xgate:gateway:hub\"")
        );
        for url in [
            "http://hub:8443",
            "https://",
            "https://hub/path",
            "hub:8443",
        ] {
            let mut g = gateway("hub");
            g.url = url.into();
            assert!(
                refused(served(), vec![g]).contains("url must be https://"),
                "{url}"
            );
        }
        assert!(
            refused(served(), with(|g| g.log_key = "nonsense".into()))
                .starts_with("gateway hub: log_key is not a verifier key")
        );
        assert!(
            refused(served(), with(|g| g.witness_key = Some("x+y+z".into())))
                .starts_with("gateway hub: witness_key is not a verifier key")
        );
        assert!(
            refused(served(), with(|g| g.certificate.sha256 = Some("AB".into())))
                .contains("sha256 must be 64 lowercase hex digits")
        );
    }
}

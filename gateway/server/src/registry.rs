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

/// The registry file's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    agency: Vec<Agency>,
}

/// The agency registry, keyed by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    agencies: BTreeMap<AgencyId, Agency>,
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
    /// Builds a registry from a list of agencies.
    ///
    /// # Errors
    /// [`InvalidRegistry`] naming the problem: a duplicate id, a
    /// certificate binding that names another agency, keys that are not
    /// public JWKs of the right use, or values TOML cannot hold.
    pub fn from_agencies(agencies: Vec<Agency>) -> Result<Registry, InvalidRegistry> {
        let mut map = BTreeMap::new();
        for agency in agencies {
            check_agency(&agency)?;
            if map.contains_key(&agency.id) {
                return Err(InvalidRegistry::Duplicate(agency.id));
            }
            map.insert(agency.id.clone(), agency);
        }
        Ok(Registry { agencies: map })
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
        Registry::from_agencies(file.agency)
    }

    /// The registry as TOML, agencies in id order.
    pub fn to_toml(&self) -> String {
        let file = RegistryFile {
            agency: self.agencies.values().cloned().collect(),
        };
        // Every agency was written once already, alone, when the registry
        // was built (`check_agency`), and an array of such tables is TOML
        // too: this cannot fail, and if it ever did, writing an empty
        // registry would silently drop the federation.
        let body = toml::to_string(&file).expect("every agency of a Registry is writable as TOML");
        format!(
            "# The xgate agency registry: each member's id, name, TLS certificate\n\
             # binding and public JOSE keys. Written by `xgate certs init`.\n\n{body}"
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
    if let Some(fp) = &agency.certificate.sha256
        && (fp.len() != 64
            || !fp
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
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
}

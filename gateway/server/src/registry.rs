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
    type Error = String;

    fn try_from(id: String) -> Result<AgencyId, String> {
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
            // The value is not repeated: messages can reach other parties.
            Err("invalid agency id: use 1-63 lowercase letters, digits and inner hyphens".into())
        }
    }
}

impl std::str::FromStr for AgencyId {
    type Err = String;

    fn from_str(s: &str) -> Result<AgencyId, String> {
        AgencyId::try_from(s.to_owned())
    }
}

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
    /// The file is not a valid registry; the message names the problem and,
    /// where TOML knows it, the line.
    #[error("{path}: {message}")]
    Invalid {
        /// The registry file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Registry {
    /// Builds a registry from a list of agencies.
    ///
    /// # Errors
    /// A message naming the problem: a duplicate id, a certificate binding
    /// that names another agency, or keys that are not public JWKs of the
    /// right use.
    pub fn from_agencies(agencies: Vec<Agency>) -> Result<Registry, String> {
        let mut map = BTreeMap::new();
        for agency in agencies {
            check_agency(&agency)?;
            if map.contains_key(&agency.id) {
                return Err(format!("agency {} is listed twice", agency.id));
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
        Registry::parse(&text).map_err(|message| RegistryError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks registry TOML.
    ///
    /// # Errors
    /// A message naming the problem (and its line, for TOML syntax errors).
    pub fn parse(text: &str) -> Result<Registry, String> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        Registry::from_agencies(file.agency)
    }

    /// The registry as TOML, agencies in id order.
    pub fn to_toml(&self) -> String {
        let file = RegistryFile {
            agency: self.agencies.values().cloned().collect(),
        };
        // Strings, tables and arrays of tables only: serialization cannot fail.
        let body = toml::to_string(&file).unwrap_or_default();
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

fn check_agency(agency: &Agency) -> Result<(), String> {
    let id = &agency.id;
    if agency.certificate.uri != id.uri() {
        return Err(format!(
            "agency {id}: certificate uri must be {:?}, not {:?}",
            id.uri(),
            agency.certificate.uri
        ));
    }
    if let Some(fp) = &agency.certificate.sha256
        && (fp.len() != 64
            || !fp
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    {
        return Err(format!(
            "agency {id}: certificate sha256 must be 64 lowercase hex digits"
        ));
    }
    check_public_jwk(id, "signing_key", &agency.signing_key, "sig")?;
    check_public_jwk(id, "encryption_key", &agency.encryption_key, "enc")
}

fn check_public_jwk(
    id: &AgencyId,
    field: &str,
    jwk: &Map<String, Value>,
    expected_use: &str,
) -> Result<(), String> {
    let text = |k: &str| jwk.get(k).and_then(Value::as_str);
    if jwk.contains_key("d") {
        return Err(format!(
            "agency {id}: {field} holds a private key (\"d\"); the registry takes public keys only"
        ));
    }
    if text("kid").is_none_or(str::is_empty) {
        return Err(format!("agency {id}: {field} needs a \"kid\""));
    }
    if text("use") != Some(expected_use) {
        return Err(format!(
            "agency {id}: {field} must have \"use\" = \"{expected_use}\""
        ));
    }
    if !matches!(text("kty"), Some("EC" | "OKP")) {
        return Err(format!(
            "agency {id}: {field} must be an EC or OKP key (\"kty\")"
        ));
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
    fn syntax_errors_name_the_line() {
        let err = Registry::parse("[[agency]]\nid = \n").expect_err("invalid");
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains('\n'));
    }
}

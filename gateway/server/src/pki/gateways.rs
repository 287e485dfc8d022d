//! The gateways of a federation, as `certs init --gateway ID=URL` issues
//! them: for each, in `gateways/<id>/`, a TLS certificate for serving its
//! agencies and calling its peers (SAN URI `urn:xgate:gateway:<id>`), the
//! key that signs its log's checkpoints, and its witness's key; and its
//! `[[gateway]]` entry of the registry, which names the three.

use std::path::Path;

use rcgen::{Issuer, KeyPair, SanType};
use time::OffsetDateTime;
use xgate_ledger::NoteSigner;
use xgate_ledger::cosign::CosignatureAlg;

use super::cert::{fingerprint, gateway_sans, leaf};
use super::error::{PkiError, crypto};
use super::files::{CHECKPOINT_KEY, TLS_CERT, TLS_KEY, gateway_dir};
use super::write::write_file;
use crate::registry::{CertificateBinding, Gateway, GatewayId};

/// A gateway of a federation to issue: its id and where its peers reach
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayPlan {
    /// The gateway's id.
    pub id: GatewayId,
    /// `https://HOST[:PORT]`, nothing after it.
    pub url: String,
}

/// Why a gateway URL is refused: the text is not repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a gateway url must be https://HOST[:PORT], with nothing after it")]
pub struct InvalidGatewayUrl;

impl GatewayPlan {
    /// The plan for gateway `id` at `url`, which must be
    /// `https://HOST[:PORT]` with nothing after it (no path, not even `/`).
    ///
    /// # Errors
    /// [`InvalidGatewayUrl`].
    pub fn new(id: GatewayId, url: &str) -> Result<GatewayPlan, InvalidGatewayUrl> {
        url_host(url)?;
        Ok(GatewayPlan {
            id,
            url: url.to_owned(),
        })
    }

    /// The origin of its log, which is its checkpoint key's name:
    /// `xgate/<id>` (a C2SP key name: no spaces, no `+`).
    pub fn origin(&self) -> String {
        format!("xgate/{}", self.id)
    }

    /// The name of its witness's key: `xgate/<id>/witness`.
    pub fn witness_name(&self) -> String {
        format!("xgate/{}/witness", self.id)
    }
}

/// The host of a gateway URL, without the brackets of an IPv6 address.
///
/// # Errors
/// [`InvalidGatewayUrl`] unless `url` is `https://HOST[:PORT]` exactly.
pub fn url_host(url: &str) -> Result<String, InvalidGatewayUrl> {
    let uri: http::Uri = url.parse().map_err(|_| InvalidGatewayUrl)?;
    let authority = uri.authority().ok_or(InvalidGatewayUrl)?;
    // Exactly scheme and authority: no user info, path, query or fragment
    // (the registry refuses them; they would change where peers forward).
    if uri.scheme_str() != Some("https")
        || url != format!("https://{authority}")
        || authority.as_str().contains('@')
    {
        return Err(InvalidGatewayUrl);
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(InvalidGatewayUrl);
    }
    Ok(host.to_owned())
}

/// Writes gateway `plan`'s files into the PKI being made in `dir` and
/// returns its registry entry: `gateways/<id>/tls.crt` and `tls.key`
/// (signed by `issuer`, for client and server use), `checkpoint.key` (a
/// new log key named [`GatewayPlan::origin`]) and `witness.key` (a new
/// Ed25519 cosigner named [`GatewayPlan::witness_name`], as `xgate witness
/// init` writes it). Keys are 0600.
pub(crate) fn issue(
    dir: &Path,
    plan: &GatewayPlan,
    issuer: &Issuer<'_, KeyPair>,
    now: OffsetDateTime,
) -> Result<Gateway, PkiError> {
    let host =
        url_host(&plan.url).map_err(|e| PkiError::Agencies(format!("gateway {}: {e}", plan.id)))?;
    let mut sans = vec![SanType::URI(plan.id.uri().try_into().map_err(crypto)?)];
    sans.extend(gateway_sans(Some(&host))?);
    let (cert, key) = leaf(&format!("xgate gateway {}", plan.id), sans, issuer, now)?;
    let home = gateway_dir(dir, &plan.id);
    write_file(&home.join(TLS_CERT), cert.pem().as_bytes(), 0o644)?;
    write_file(&home.join(TLS_KEY), key.serialize_pem().as_bytes(), 0o600)?;

    let log_key = NoteSigner::generate(&plan.origin()).map_err(crypto)?;
    let text = format!("{}\n", log_key.to_private_key());
    write_file(&home.join(CHECKPOINT_KEY), text.as_bytes(), 0o600)?;
    let witness = xgate_ledger::witness::init(&home, &plan.witness_name(), CosignatureAlg::Ed25519)
        .map_err(|e| PkiError::Crypto(format!("witness key of gateway {}: {e}", plan.id)))?;

    Ok(Gateway {
        id: plan.id.clone(),
        url: plan.url.clone(),
        log_key: log_key.verifier().to_string(),
        witness_key: Some(witness.verifier().to_string()),
        certificate: CertificateBinding {
            uri: plan.id.uri(),
            sha256: Some(fingerprint(cert.der())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(url: &str) -> Result<GatewayPlan, InvalidGatewayUrl> {
        GatewayPlan::new("hub".parse().expect("id"), url)
    }

    #[test]
    fn a_gateway_url_is_scheme_and_authority_only() {
        for (url, host) in [
            ("https://127.0.0.1:8443", "127.0.0.1"),
            ("https://hub.example", "hub.example"),
            ("https://[::1]:9000", "::1"),
        ] {
            assert_eq!(url_host(url).as_deref(), Ok(host), "{url}");
            assert!(plan(url).is_ok(), "{url}");
        }
        for url in [
            "http://hub:8443",
            "https://hub:8443/",
            "https://hub:8443/v1",
            "https://hub:8443?x",
            "https://user@hub:8443",
            "https://",
            "hub:8443",
            "",
        ] {
            assert_eq!(plan(url), Err(InvalidGatewayUrl), "{url}");
        }
    }

    #[test]
    fn names_are_c2sp_key_names() {
        let p = plan("https://hub.example").expect("plan");
        assert_eq!(p.origin(), "xgate/hub");
        assert_eq!(p.witness_name(), "xgate/hub/witness");
        for name in [p.origin(), p.witness_name()] {
            xgate_ledger::checkpoint::check_name(&name).expect("a key name");
        }
    }

    #[test]
    fn the_witness_key_file_is_the_witness_directorys() {
        assert_eq!(
            super::super::files::WITNESS_KEY,
            xgate_ledger::witness::KEY_FILE
        );
    }
}

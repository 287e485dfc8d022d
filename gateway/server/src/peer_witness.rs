//! The witness every gateway of a federation runs for its peers' logs
//! (C2SP tlog-witness, [`xgate_ledger::witness`]), answering on the main
//! listener at `POST /witness/add-checkpoint`: the registry's `url` +
//! `/witness` is its submission prefix.
//!
//! - Its key is the private key whose verifier key the registry lists as
//!   this gateway's `witness_key` (`PKI/gateways/<id>/witness.key` unless
//!   `witness_key` names another file); any other key refuses the start.
//!   A gateway whose registry entry lists no `witness_key` runs none.
//! - Its state (the latest checkpoint cosigned per log, evidence of
//!   refused conflicting checkpoints) lives in `DATA_DIR/witness/`, 0700,
//!   created durably and locked by the process.
//! - It trusts exactly the other gateways' `log_key`s: never its own
//!   gateway's log (a log cannot witness itself), nor a key with its own
//!   log's origin.

use std::path::{Path, PathBuf};

use xgate_ledger::NoteVerifier;
use xgate_ledger::cosign::{CosignError, Cosigner, CosignerVerifier};
use xgate_ledger::witness::{Witness, WitnessError};

use crate::pki::files::{WITNESS_KEY, gateway_dir};
use crate::registry::{GatewayId, Registry};

/// The witness's directory inside the data directory.
pub const WITNESS_DIR: &str = "witness";
/// The witness's submission prefix below a gateway's URL: peers submit to
/// `<url>/witness/add-checkpoint`.
pub const SUBMISSION_PREFIX: &str = "/witness";

/// Why the gateway's witness cannot run. Messages name files and key ids,
/// never what a key file holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerWitnessError {
    /// The key file is missing or unreadable.
    #[error(
        "cannot read {path}, the key of gateway {gateway}'s witness (the registry lists a \
         witness_key for it; set witness_key to the file that holds it): {source}"
    )]
    Read {
        /// The key file.
        path: PathBuf,
        /// The gateway.
        gateway: GatewayId,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The key file holds no witness key.
    #[error("{path}: not a witness key: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: CosignError,
    },
    /// The registry's `witness_key` is not a cosigner key.
    #[error("the registry's witness_key for gateway {gateway}: {source}")]
    ListedKey {
        /// The gateway.
        gateway: GatewayId,
        /// Why.
        #[source]
        source: CosignError,
    },
    /// The key is not the one the registry lists.
    #[error(
        "{path} holds witness key {found}, but the registry lists {expected} as gateway \
         {gateway}'s witness_key: it belongs to another witness or an earlier PKI"
    )]
    WrongKey {
        /// The key file.
        path: PathBuf,
        /// The gateway.
        gateway: GatewayId,
        /// The key found, by name and id.
        found: String,
        /// The key listed, by name and id.
        expected: String,
    },
    /// `witness_key` is set for a gateway the registry lists no
    /// `witness_key` for (or without a federation).
    #[error(
        "witness_key is set, but the registry lists no witness_key for {0}: add this witness's \
         verifier key to its [[gateway]] entry, or unset witness_key"
    )]
    NotListed(String),
    /// The gateway is not in the registry.
    #[error("gateway {0} is not in the registry")]
    UnknownGateway(GatewayId),
    /// The witness's state cannot be opened.
    #[error("the witness's state: {0}")]
    State(#[from] WitnessError),
}

/// Opens gateway `local`'s witness of its peers' logs, with its state in
/// `data_dir/witness` and its key in `key_file` (`witness_key`), by
/// default `pki/gateways/<local>/witness.key`. `None` when the registry
/// lists no `witness_key` for `local` and no `key_file` was named.
///
/// # Errors
/// [`PeerWitnessError`]: a key file missing, unreadable or not the
/// registry's, a key named for a gateway listed without one, or state
/// that cannot be opened (locked, corrupt, unwritable).
pub fn open(
    data_dir: &Path,
    pki: &Path,
    key_file: Option<&Path>,
    registry: &Registry,
    local: &GatewayId,
) -> Result<Option<Witness>, PeerWitnessError> {
    let gateway = registry
        .gateway(local)
        .ok_or_else(|| PeerWitnessError::UnknownGateway(local.clone()))?;
    let Some(listed) = &gateway.witness_key else {
        if key_file.is_some() {
            return Err(PeerWitnessError::NotListed(format!("gateway {local}")));
        }
        return Ok(None);
    };
    let default = gateway_dir(pki, local).join(WITNESS_KEY);
    let key_file = key_file.unwrap_or(&default);
    // The registry checked it when it loaded; a registry built otherwise
    // may not have.
    let expected =
        CosignerVerifier::parse(listed).map_err(|source| PeerWitnessError::ListedKey {
            gateway: local.clone(),
            source,
        })?;
    let text = std::fs::read_to_string(key_file).map_err(|source| PeerWitnessError::Read {
        path: key_file.to_path_buf(),
        gateway: local.clone(),
        source,
    })?;
    let cosigner = Cosigner::from_private_key(&text).map_err(|source| PeerWitnessError::Key {
        path: key_file.to_path_buf(),
        source,
    })?;
    if *cosigner.verifier() != expected {
        return Err(PeerWitnessError::WrongKey {
            path: key_file.to_path_buf(),
            gateway: local.clone(),
            found: label(cosigner.verifier()),
            expected: label(&expected),
        });
    }
    let logs = trusted_logs(registry, local);
    let witness = Witness::open_with_key(&data_dir.join(WITNESS_DIR), cosigner, &logs)?;
    Ok(Some(witness))
}

/// The log keys gateway `local`'s witness trusts: every other gateway's
/// `log_key`, except one that is `local`'s own or has its origin (the
/// witness keeps one state per origin, and its own log is not its to
/// witness).
pub fn trusted_logs(registry: &Registry, local: &GatewayId) -> Vec<NoteVerifier> {
    let own = registry
        .gateway(local)
        .and_then(|g| NoteVerifier::parse(&g.log_key).ok());
    registry
        .gateways()
        .filter(|g| g.id != *local)
        .filter_map(|g| NoteVerifier::parse(&g.log_key).ok())
        .filter(|key| {
            own.as_ref()
                .is_none_or(|own| key != own && key.name() != own.name())
        })
        .collect()
}

/// A cosigner key by name and id, as messages show it.
fn label(key: &CosignerVerifier) -> String {
    format!("{}+{}", key.name(), hex::encode(key.key_id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CertificateBinding, Gateway};
    use std::os::unix::fs::PermissionsExt;
    use xgate_ledger::NoteSigner;
    use xgate_ledger::cosign::CosignatureAlg;

    fn gateway(id: &str, log: &NoteSigner, witness: Option<&Cosigner>) -> Gateway {
        let id: GatewayId = id.parse().expect("id");
        Gateway {
            url: format!("https://{id}.example:8443"),
            log_key: log.verifier().to_string(),
            witness_key: witness.map(|w| w.verifier().to_string()),
            certificate: CertificateBinding {
                uri: id.uri(),
                sha256: None,
            },
            id,
        }
    }

    fn log(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::from_seed(name, [seed; 32]).expect("log key")
    }

    fn witness_key(name: &str, seed: u8) -> Cosigner {
        Cosigner::from_seed(name, CosignatureAlg::Ed25519, [seed; 32]).expect("witness key")
    }

    #[test]
    fn it_trusts_the_other_gateways_logs_never_its_own() {
        let (a, b, c) = (log("xgate/a", 1), log("xgate/b", 2), log("xgate/c", 3));
        // A gateway listing a's key, or a's origin, is not trusted by a.
        let (copy, same_origin) = (log("xgate/a", 1), log("xgate/a", 4));
        let registry = Registry::federation(
            Vec::new(),
            vec![
                gateway("a", &a, None),
                gateway("b", &b, None),
                gateway("c", &c, None),
                gateway("d", &copy, None),
                gateway("e", &same_origin, None),
            ],
        )
        .expect("registry");
        let trusted = trusted_logs(&registry, &"a".parse().expect("id"));
        assert_eq!(trusted, vec![b.verifier(), c.verifier()]);
        let trusted = trusted_logs(&registry, &"b".parse().expect("id"));
        assert!(trusted.contains(&a.verifier()) && !trusted.contains(&b.verifier()));
    }

    /// The refusal of an `open` that must fail (a witness has no `Debug`).
    fn refused(opened: Result<Option<Witness>, PeerWitnessError>) -> PeerWitnessError {
        match opened {
            Ok(_) => panic!("a witness opened"),
            Err(e) => e,
        }
    }

    #[test]
    fn it_runs_only_with_the_registry_s_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, b) = (log("xgate/a", 1), log("xgate/b", 2));
        let key = witness_key("xgate/a/witness", 9);
        let other = witness_key("xgate/a/witness", 8);
        let registry = Registry::federation(
            Vec::new(),
            vec![gateway("a", &a, Some(&key)), gateway("b", &b, None)],
        )
        .expect("registry");
        let local: GatewayId = "a".parse().expect("id");
        let data = tmp.path().join("data");
        let file = tmp.path().join("witness.key");
        let pki = tmp.path().join("pki");

        // Missing, then not a key, then another key: refused, by file.
        let err = refused(open(&data, &pki, Some(&file), &registry, &local));
        assert!(matches!(err, PeerWitnessError::Read { .. }), "{err}");
        std::fs::write(&file, "not a key\n").expect("write");
        let err = refused(open(&data, &pki, Some(&file), &registry, &local));
        assert!(matches!(err, PeerWitnessError::Key { .. }), "{err}");
        std::fs::write(&file, other.to_private_key()).expect("write");
        let err = refused(open(&data, &pki, Some(&file), &registry, &local));
        let message = err.to_string();
        assert!(
            matches!(err, PeerWitnessError::WrongKey { .. }),
            "{message}"
        );
        assert!(
            !message.contains(&other.to_private_key()),
            "never the key itself"
        );
        assert!(!data.join(WITNESS_DIR).exists(), "nothing made on refusal");

        // The registry's key: the state directory is made, private.
        std::fs::write(&file, key.to_private_key()).expect("write");
        let witness = open(&data, &pki, Some(&file), &registry, &local)
            .expect("opens")
            .expect("a witness");
        assert_eq!(witness.cosigner().verifier(), key.verifier());
        assert_eq!(
            witness.origins().collect::<Vec<_>>(),
            vec!["xgate/b"],
            "b's log only"
        );
        let mode = std::fs::metadata(data.join(WITNESS_DIR))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // Held by this process.
        let err = refused(open(&data, &pki, Some(&file), &registry, &local));
        assert!(
            matches!(err, PeerWitnessError::State(WitnessError::Locked(_))),
            "{err}"
        );
        drop(witness);

        // By default, the key is the PKI's file for the gateway.
        let err = refused(open(&data, &pki, None, &registry, &local));
        assert!(
            err.to_string().contains("pki/gateways/a/witness.key"),
            "{err}"
        );
        let home = gateway_dir(&pki, &local);
        std::fs::create_dir_all(&home).expect("mkdir");
        std::fs::write(home.join(WITNESS_KEY), key.to_private_key()).expect("write");
        let witness = open(&data, &pki, None, &registry, &local)
            .expect("opens")
            .expect("a witness");
        assert_eq!(witness.cosigner().verifier(), key.verifier());
        drop(witness);

        // b lists no witness_key: none runs, unless one is named.
        let b_id: GatewayId = "b".parse().expect("id");
        assert!(
            open(&data, &pki, None, &registry, &b_id)
                .expect("no witness")
                .is_none()
        );
        let err = refused(open(&data, &pki, Some(&file), &registry, &b_id));
        assert!(matches!(err, PeerWitnessError::NotListed(_)), "{err}");
    }
}

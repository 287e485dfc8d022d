//! `xgate serve` configuration: one TOML file whose every field has a
//! default, overridden by `XGATE_*` environment variables, overridden by
//! command-line flags.
//!
//! ```toml
//! listen = "127.0.0.1:8443"        # XGATE_LISTEN
//! public_listen = "127.0.0.1:8444" # XGATE_PUBLIC_LISTEN: the log as C2SP tlog-tiles (checkpoint, tiles, entry bundles), HTTPS, no client certificate
//! public_client_auth = false       # XGATE_PUBLIC_CLIENT_AUTH: true: public_listen requires a federation certificate (as listen does)
//! public_max_connections = 1024    # XGATE_PUBLIC_MAX_CONNECTIONS: connections public_listen serves at once
//! data_dir = "xgate-data"          # XGATE_DATA_DIR: the log, inboxes, replay ids (with a postgres store: the log's key only)
//! store = "embedded"               # XGATE_STORE: "embedded" (data_dir on this machine) or a postgres:// URL shared by replicas
//! pki = "xgate-data/pki"           # XGATE_PKI: CA, CRL, gateway cert, registry.toml
//! policy = "xgate-data/policy.toml"  # XGATE_POLICY: written from the default on first start
//! origin = "localhost/xgate"       # XGATE_ORIGIN: the log's origin, for a new log
//! gateway_id = "hub"               # XGATE_GATEWAY_ID: this gateway's [[gateway]] in a federation's registry (unset: the only gateway)
//! max_body_bytes = 1048576         # XGATE_MAX_BODY_BYTES: larger bodies get 413
//! max_connections = 4096           # XGATE_MAX_CONNECTIONS: when full, an idle connection gives its slot up (unproven ones first)
//! request_timeout_secs = 30        # XGATE_REQUEST_TIMEOUT_SECS: whole request, 503 after
//! header_timeout_secs = 10         # XGATE_HEADER_TIMEOUT_SECS: TLS handshake, each request head (the first one included), each request body (408)
//! idle_timeout_secs = 60           # XGATE_IDLE_TIMEOUT_SECS: a keep-alive connection with no request in flight is closed after
//! max_connection_age_secs = 3600   # XGATE_MAX_CONNECTION_AGE_SECS: any connection is closed (gracefully) after
//! max_connections_per_agency = 1024  # XGATE_MAX_CONNECTIONS_PER_AGENCY: more from one agency get 429 and are closed; at most max_connections / 2
//! max_handshakes = 256             # XGATE_MAX_HANDSHAKES: connections still in the TLS handshake at once
//! crl_strict = false               # XGATE_CRL_STRICT: past the CRL's nextUpdate, refuse every client
//! max_streams_per_agency = 8       # XGATE_MAX_STREAMS_PER_AGENCY: open event streams per agency
//! crl_poll_secs = 5                # XGATE_CRL_POLL_SECS: how often the CRL file is checked
//! max_lifetime_secs = 300          # XGATE_MAX_LIFETIME_SECS: longest exp - iat
//! clock_skew_secs = 60             # XGATE_CLOCK_SKEW_SECS
//! inbox_page = 100                 # XGATE_INBOX_PAGE: most envelopes per inbox page
//! cache_bytes = 134217728         # XGATE_CACHE_BYTES: sled page cache (asset reads and reconciliation)
//! offer_ttl_secs = 259200          # XGATE_OFFER_TTL_SECS: how long a transfer offer stays open (72 h)
//! max_grant_secs = 2592000         # XGATE_MAX_GRANT_SECS: caps every medical grant's lifetime (30 days)
//! review_due_secs = 259200         # XGATE_REVIEW_DUE_SECS: a break-the-glass review is overdue after (72 h)
//! min_free_bytes = 67108864        # XGATE_MIN_FREE_BYTES: refuse commits (503) while less is free on the data dir's disk
//! witness_quorum = 0               # XGATE_WITNESS_QUORUM: cosignatures a checkpoint needs before it is served (0: none)
//! witness_interval_ms = 1000       # XGATE_WITNESS_INTERVAL_MS: how often the newest checkpoint goes to the witnesses
//! federation_quorum = 2            # XGATE_FEDERATION_QUORUM: peer gateways' cosignatures a checkpoint needs before it is served (default: a majority of the peers that list a witness_key; 0: none)
//! witness_key = "pki/gateways/hub/witness.key"  # XGATE_WITNESS_KEY: this gateway's witness key (default: PKI/gateways/<gateway_id>/witness.key)
//!
//! [[witnesses]]                    # one table per witness (none by default)
//! url = "https://witness.example/w1"   # its submission prefix, http:// or https://
//! vkey = "witness.example/w1+...+..."  # its verifier key, which also names it
//! ```
//!
//! `pki` and `policy` default to paths inside `data_dir` when not set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::registry::GatewayId;
use crate::store_setting::{BadStore, Store};

/// The configuration of a gateway.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address of the public listener, which serves the log as C2SP
    /// tlog-tiles (`/checkpoint`, `/tile/...`) over HTTPS to anyone.
    pub public_listen: SocketAddr,
    /// Whether the public listener requires a client certificate from the
    /// federation, verified as the main listener verifies one (CA and CRL):
    /// for a federation whose exchange metadata must stay inside it.
    pub public_client_auth: bool,
    /// Most connections the public listener serves at once; when full, the
    /// connection idle the longest gives its slot up.
    pub public_max_connections: usize,
    /// Directory of the log and the gateway's state.
    pub data_dir: PathBuf,
    /// Where the log and state are kept: the data directory, or a
    /// PostgreSQL database several gateway processes share.
    pub store: Store,
    /// PKI directory; `data_dir/pki` if unset.
    pub pki: Option<PathBuf>,
    /// Policy file; `data_dir/policy.toml` if unset.
    pub policy: Option<PathBuf>,
    /// Origin of a new log.
    pub origin: Option<String>,
    /// This gateway's id in a federation's registry (its `[[gateway]]`
    /// table): it serves the agencies that name it and forwards to the
    /// others' gateways. Unset for a single gateway, which serves every
    /// agency of a registry without gateways.
    pub gateway_id: Option<GatewayId>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Longest a request may take, in seconds.
    pub request_timeout_secs: u64,
    /// Longest a TLS handshake or request head may take, in seconds; it
    /// also bounds the wait for the first request after the handshake.
    pub header_timeout_secs: u64,
    /// A keep-alive connection (HTTP/1.1 or HTTP/2) with no request in
    /// flight is closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// Every connection is closed gracefully after this many seconds, so
    /// no client holds a slot for good.
    pub max_connection_age_secs: u64,
    /// Most connections one agency may hold open at once.
    pub max_connections_per_agency: usize,
    /// Most connections still in the TLS handshake at once.
    pub max_handshakes: usize,
    /// Past the CRL's `nextUpdate`, refuse every client until a fresh CRL
    /// arrives (the alarm is raised either way).
    pub crl_strict: bool,
    /// Most open event streams per agency.
    pub max_streams_per_agency: usize,
    /// How often the CRL file is checked for changes, in seconds.
    pub crl_poll_secs: u64,
    /// Longest `exp - iat` accepted, in seconds.
    pub max_lifetime_secs: i64,
    /// Clock skew tolerated, in seconds.
    pub clock_skew_secs: i64,
    /// Most envelopes returned per inbox page.
    pub inbox_page: usize,
    /// sled's page cache, in bytes: reconciliation reads one asset record
    /// per observed tag, so this bounds how much of the register stays hot.
    pub cache_bytes: u64,
    /// How long an asset transfer offer stays open, in seconds. Each offer's
    /// expiry is written into its log entry, so changing this affects new
    /// offers only.
    pub offer_ttl_secs: u64,
    /// The longest a medical grant lasts, in seconds, whatever the policy
    /// or an approval asks for. Each grant's expiry is written into its log
    /// entry, so changing this affects new grants only.
    pub max_grant_secs: u64,
    /// How long after a break-the-glass grant its review falls due, in
    /// seconds; later, it counts in the `xgate_reviews_overdue` metric.
    pub review_due_secs: u64,
    /// Commits are refused (`storage_unavailable`) while the data
    /// directory's file system has fewer bytes free than this; 0 turns
    /// the check off.
    pub min_free_bytes: u64,
    /// The witnesses the log submits its checkpoints to.
    pub witnesses: Vec<WitnessSpec>,
    /// Cosignatures a checkpoint needs before it is served; 0 serves each
    /// checkpoint at once.
    pub witness_quorum: usize,
    /// How often, at most, the newest checkpoint goes to the witnesses.
    pub witness_interval_ms: u64,
    /// In a federation, how many peer gateways' witnesses must cosign a
    /// checkpoint before it is served, besides `witness_quorum` of the
    /// `[[witnesses]]`; unset: a majority of the peers whose registry
    /// entry lists a `witness_key` ([`default_federation_quorum`]); 0:
    /// checkpoints still go to the peers, but are served without waiting.
    pub federation_quorum: Option<usize>,
    /// The private key of this gateway's witness of its peers' logs;
    /// unset: `PKI/gateways/<gateway_id>/witness.key`
    /// (`peer_witness::open`).
    pub witness_key: Option<PathBuf>,
}

/// The peer quorum of a federation when `federation_quorum` is unset: a
/// majority of the `peers` that can cosign (`peers / 2 + 1`), 0 if none
/// can.
pub fn default_federation_quorum(peers: usize) -> usize {
    if peers == 0 { 0 } else { peers / 2 + 1 }
}

/// A `[[witnesses]]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessSpec {
    /// The witness's submission prefix: `http://` or `https://`.
    pub url: String,
    /// The witness's verifier key (signed-note vkey, type 0x04 or 0x06),
    /// which also names it.
    pub vkey: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            public_client_auth: false,
            public_max_connections: 1024,
            data_dir: PathBuf::from("xgate-data"),
            store: Store::Embedded,
            pki: None,
            policy: None,
            origin: None,
            gateway_id: None,
            max_body_bytes: 1 << 20,
            max_connections: 4096,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connection_age_secs: 3600,
            max_connections_per_agency: 1024,
            max_handshakes: 256,
            crl_strict: false,
            max_streams_per_agency: 8,
            crl_poll_secs: 5,
            max_lifetime_secs: 300,
            clock_skew_secs: 60,
            inbox_page: 100,
            cache_bytes: 128 << 20,
            offer_ttl_secs: 72 * 3600,
            max_grant_secs: 720 * 3600,
            review_due_secs: 72 * 3600,
            min_free_bytes: 64 << 20,
            witnesses: Vec::new(),
            witness_quorum: 0,
            witness_interval_ms: 1000,
            federation_quorum: None,
            witness_key: None,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file or an environment variable holds a bad value.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads `file` (if given) over the defaults, then applies `XGATE_*`
    /// variables from `env`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and line, or the variable, at fault.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| {
                    // toml quotes the offending line, which for `store`
                    // may hold a password: say only what is wrong.
                    let what = if e.message().contains(&BadStore.to_string()) {
                        BadStore.to_string()
                    } else {
                        one_line(&e)
                    };
                    ConfigError::Invalid(format!("{}: {what}", path.display()))
                })?
            }
            None => Config::default(),
        };
        for (name, value) in env {
            config.set_env(&name, &value)?;
        }
        config.check()?;
        Ok(config)
    }

    /// The PKI directory in use.
    pub fn pki_dir(&self) -> PathBuf {
        self.pki
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pki"))
    }

    /// The policy file in use.
    pub fn policy_file(&self) -> PathBuf {
        self.policy
            .clone()
            .unwrap_or_else(|| self.data_dir.join("policy.toml"))
    }

    fn set_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
            value
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("{name}={value:?} is not a valid value")))
        }
        match name {
            "XGATE_LISTEN" => self.listen = parse(name, value)?,
            "XGATE_PUBLIC_LISTEN" => self.public_listen = parse(name, value)?,
            "XGATE_PUBLIC_CLIENT_AUTH" => self.public_client_auth = parse(name, value)?,
            "XGATE_PUBLIC_MAX_CONNECTIONS" => self.public_max_connections = parse(name, value)?,
            "XGATE_DATA_DIR" => self.data_dir = PathBuf::from(value),
            // Never echoed: the URL may hold a password.
            "XGATE_STORE" => {
                self.store = value
                    .parse()
                    .map_err(|e| ConfigError::Invalid(format!("XGATE_STORE: {e}")))?;
            }
            "XGATE_PKI" => self.pki = Some(PathBuf::from(value)),
            "XGATE_POLICY" => self.policy = Some(PathBuf::from(value)),
            "XGATE_ORIGIN" => self.origin = Some(value.to_owned()),
            "XGATE_GATEWAY_ID" => self.gateway_id = Some(parse(name, value)?),
            "XGATE_MAX_BODY_BYTES" => self.max_body_bytes = parse(name, value)?,
            "XGATE_MAX_CONNECTIONS" => self.max_connections = parse(name, value)?,
            "XGATE_REQUEST_TIMEOUT_SECS" => self.request_timeout_secs = parse(name, value)?,
            "XGATE_HEADER_TIMEOUT_SECS" => self.header_timeout_secs = parse(name, value)?,
            "XGATE_IDLE_TIMEOUT_SECS" => self.idle_timeout_secs = parse(name, value)?,
            "XGATE_MAX_CONNECTION_AGE_SECS" => self.max_connection_age_secs = parse(name, value)?,
            "XGATE_MAX_CONNECTIONS_PER_AGENCY" => {
                self.max_connections_per_agency = parse(name, value)?;
            }
            "XGATE_MAX_HANDSHAKES" => self.max_handshakes = parse(name, value)?,
            "XGATE_CRL_STRICT" => self.crl_strict = parse(name, value)?,
            "XGATE_MAX_STREAMS_PER_AGENCY" => self.max_streams_per_agency = parse(name, value)?,
            "XGATE_CRL_POLL_SECS" => self.crl_poll_secs = parse(name, value)?,
            "XGATE_MAX_LIFETIME_SECS" => self.max_lifetime_secs = parse(name, value)?,
            "XGATE_CLOCK_SKEW_SECS" => self.clock_skew_secs = parse(name, value)?,
            "XGATE_INBOX_PAGE" => self.inbox_page = parse(name, value)?,
            "XGATE_OFFER_TTL_SECS" => self.offer_ttl_secs = parse(name, value)?,
            "XGATE_CACHE_BYTES" => self.cache_bytes = parse(name, value)?,
            "XGATE_MAX_GRANT_SECS" => self.max_grant_secs = parse(name, value)?,
            "XGATE_REVIEW_DUE_SECS" => self.review_due_secs = parse(name, value)?,
            "XGATE_MIN_FREE_BYTES" => self.min_free_bytes = parse(name, value)?,
            "XGATE_WITNESS_QUORUM" => self.witness_quorum = parse(name, value)?,
            "XGATE_WITNESS_INTERVAL_MS" => self.witness_interval_ms = parse(name, value)?,
            "XGATE_FEDERATION_QUORUM" => self.federation_quorum = Some(parse(name, value)?),
            "XGATE_WITNESS_KEY" => self.witness_key = Some(PathBuf::from(value)),
            // Other XGATE_* variables belong to tests and tools.
            _ => {}
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_connections", self.max_connections as u64),
            ("request_timeout_secs", self.request_timeout_secs),
            ("header_timeout_secs", self.header_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("max_connection_age_secs", self.max_connection_age_secs),
            (
                "max_connections_per_agency",
                self.max_connections_per_agency as u64,
            ),
            ("max_handshakes", self.max_handshakes as u64),
            ("public_max_connections", self.public_max_connections as u64),
            ("max_streams_per_agency", self.max_streams_per_agency as u64),
            ("crl_poll_secs", self.crl_poll_secs),
            ("inbox_page", self.inbox_page as u64),
            ("offer_ttl_secs", self.offer_ttl_secs),
            ("cache_bytes", self.cache_bytes),
            ("max_grant_secs", self.max_grant_secs),
            ("review_due_secs", self.review_due_secs),
            ("witness_interval_ms", self.witness_interval_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
        if self.witness_quorum > self.witnesses.len() {
            return Err(ConfigError::Invalid(format!(
                "witness_quorum is {} but {} [[witnesses]] are listed",
                self.witness_quorum,
                self.witnesses.len()
            )));
        }
        if self.public_listen == self.listen && self.listen.port() != 0 {
            return Err(ConfigError::Invalid(format!(
                "public_listen and listen are both {}; the public listener needs an address of its own",
                self.listen
            )));
        }
        if self.max_lifetime_secs < 1 || self.clock_skew_secs < 0 {
            return Err(ConfigError::Invalid(
                "max_lifetime_secs must be at least 1 and clock_skew_secs at least 0".into(),
            ));
        }
        Ok(())
    }
}

fn one_line(e: &toml::de::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_embedded_by_default_and_set_by_file_or_variable_never_echoed() {
        assert_eq!(Config::default().store, Store::Embedded);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("xgate.toml");
        std::fs::write(&file, "store = \"postgres://x:pw@127.0.0.1/db\"\n").expect("write");
        let c = Config::load(Some(&file), std::iter::empty()).expect("config");
        assert_eq!(
            c.store,
            Store::Postgres("postgres://x:pw@127.0.0.1/db".into())
        );
        let env = [("XGATE_STORE".to_owned(), "embedded".to_owned())];
        let c = Config::load(Some(&file), env.into_iter()).expect("config");
        assert_eq!(c.store, Store::Embedded);
        std::fs::write(&file, "store = \"postgres:/x:s3cret@h/db\"\n").expect("write");
        let e = Config::load(Some(&file), std::iter::empty()).expect_err("bad store");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let env = [("XGATE_STORE".to_owned(), "mysql://x:s3cret@h/db".to_owned())];
        let e = Config::load(None, env.into_iter()).expect_err("bad store");
        assert!(
            e.to_string().contains("XGATE_STORE") && !e.to_string().contains("s3cret"),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides_the_file_defaults() {
        let env = [
            ("XGATE_LISTEN".to_owned(), "127.0.0.1:9000".to_owned()),
            ("XGATE_MAX_BODY_BYTES".to_owned(), "2048".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        let c = Config::load(None, env.into_iter()).expect("config");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_body_bytes, 2048);
        assert_eq!(c.pki_dir(), PathBuf::from("xgate-data/pki"));
    }

    #[test]
    fn the_public_listener_has_its_defaults_file_keys_and_variables() {
        let c = Config::load(None, std::iter::empty()).expect("config");
        assert_eq!(c.public_listen, SocketAddr::from(([127, 0, 0, 1], 8444)));
        assert!(!c.public_client_auth);
        assert_eq!(c.public_max_connections, 1024);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("xgate.toml");
        std::fs::write(
            &file,
            "public_listen = \"0.0.0.0:9444\"\npublic_client_auth = true\npublic_max_connections = 8\n",
        )
        .expect("write");
        let c = Config::load(Some(&file), std::iter::empty()).expect("config");
        assert_eq!(c.public_listen, SocketAddr::from(([0, 0, 0, 0], 9444)));
        assert!(c.public_client_auth);
        assert_eq!(c.public_max_connections, 8);

        // The environment overrides the file.
        let env = [
            ("XGATE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("XGATE_PUBLIC_CLIENT_AUTH".to_owned(), "false".to_owned()),
        ];
        let c = Config::load(Some(&file), env.into_iter()).expect("config");
        assert_eq!(c.public_listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert!(!c.public_client_auth);
    }

    #[test]
    fn bad_public_listener_settings_are_refused_by_name() {
        let cases = [
            ("XGATE_PUBLIC_LISTEN", "anywhere", "XGATE_PUBLIC_LISTEN"),
            (
                "XGATE_PUBLIC_CLIENT_AUTH",
                "yes",
                "XGATE_PUBLIC_CLIENT_AUTH",
            ),
            (
                "XGATE_PUBLIC_MAX_CONNECTIONS",
                "0",
                "public_max_connections",
            ),
            ("XGATE_PUBLIC_LISTEN", "127.0.0.1:8443", "public_listen"),
        ];
        for (name, value, named) in cases {
            let env = [(name.to_owned(), value.to_owned())];
            let err = Config::load(None, env.into_iter()).expect_err(value);
            assert!(err.to_string().contains(named), "{name}={value}: {err}");
        }
    }

    #[test]
    fn a_federation_s_witness_settings_have_defaults_file_keys_and_variables() {
        let c = Config::load(None, std::iter::empty()).expect("config");
        assert_eq!(c.federation_quorum, None);
        assert_eq!(c.witness_key, None);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("xgate.toml");
        std::fs::write(
            &file,
            "gateway_id = \"g-a\"\nfederation_quorum = 0\nwitness_key = \"/keys/w.key\"\n",
        )
        .expect("write");
        let c = Config::load(Some(&file), std::iter::empty()).expect("config");
        assert_eq!(c.federation_quorum, Some(0));
        assert_eq!(c.witness_key, Some(PathBuf::from("/keys/w.key")));
        let env = [
            ("XGATE_FEDERATION_QUORUM".to_owned(), "3".to_owned()),
            ("XGATE_WITNESS_KEY".to_owned(), "/other.key".to_owned()),
        ];
        let c = Config::load(Some(&file), env.into_iter()).expect("config");
        assert_eq!(c.federation_quorum, Some(3));
        assert_eq!(c.witness_key, Some(PathBuf::from("/other.key")));
        let env = [("XGATE_FEDERATION_QUORUM".to_owned(), "most".to_owned())];
        let err = Config::load(None, env.into_iter()).expect_err("bad");
        assert!(err.to_string().contains("XGATE_FEDERATION_QUORUM"), "{err}");
    }

    #[test]
    fn the_default_federation_quorum_is_a_majority_of_the_peers() {
        let quorums: Vec<usize> = (0..7).map(default_federation_quorum).collect();
        assert_eq!(quorums, [0, 1, 2, 2, 3, 3, 4]);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let env = [("XGATE_MAX_CONNECTIONS".to_owned(), "lots".to_owned())];
        let err = Config::load(None, env.into_iter()).expect_err("bad");
        assert!(err.to_string().contains("XGATE_MAX_CONNECTIONS"), "{err}");
        let env = [("XGATE_INBOX_PAGE".to_owned(), "0".to_owned())];
        let err = Config::load(None, env.into_iter()).expect_err("zero");
        assert!(err.to_string().contains("inbox_page"), "{err}");
    }
}

//! Gathering witnesses' cosignatures for the log's checkpoints (C2SP
//! tlog-witness, from the log's side), and serving a checkpoint once a
//! quorum of them cosigned it.
//!
//! Every `witness_interval_ms` the newest published checkpoint (its tiles,
//! partial ones included, are on disk) goes to every configured witness
//! with a consistency proof from the size that witness last cosigned. A
//! witness that answers 409 names the size it has; the request is made
//! again from there at once. A witness that cannot be reached, or refuses,
//! is asked again after a pause that doubles up to a minute. Each cosignature is checked with the
//! witness's own key from the configuration, never one a witness sends.
//! Once `witness_quorum` witnesses cosigned one checkpoint, it is written,
//! with every cosignature gathered, as the tlog-tiles `checkpoint` file
//! ([`Log::publish_cosigned`]): what anyone reading the log is shown.
//!
//! Receipts do not wait for any of this: they carry the log-signed
//! checkpoint of their commit, and an auditor later proves it consistent
//! with a cosigned one.
//!
//! With `witness_quorum = 0` and witnesses listed, checkpoints are still
//! submitted (each witness keeps the log to one history and keeps evidence
//! of a fork) but the log serves its own checkpoints without waiting.
//!
//! In a federation the other gateways are witnesses too
//! ([`Witnessing::with_peers`], [`peers::peer_witnesses`]): each one whose
//! registry entry lists a `witness_key`, at its `url` + `/witness`, over
//! mutual TLS that presents this gateway's certificate and believes only
//! that peer's. Their quorum is counted apart: a checkpoint is served once
//! `federation_quorum` peers **and** `witness_quorum` of the configured
//! witnesses cosigned it. Neither can stand in for the other: external
//! witnesses, however many, do not show that the federation saw this
//! history, and peers do not replace a witness an operator requires.

mod add_checkpoint;
pub mod peers;
mod witness;

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use xgate_ledger::cosign::CosignerVerifier;
use xgate_ledger::{Ledger, SignedCheckpoint};

use crate::config::WitnessSpec;
use crate::outbound::Peer;
use crate::pipeline::Gateway;
use crate::registry::GatewayId;
use peers::PeerWitness;
use witness::{NoCosignature, Witness};

/// How long one witness gets to answer one request.
const DEADLINE: Duration = Duration::from_secs(10);

/// Why the witness configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessConfigError {
    /// A vkey does not parse as a cosigner key.
    #[error("witness {index}: bad vkey: {reason}")]
    Key {
        /// Its position in `[[witnesses]]`, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A URL is not usable.
    #[error("witness {index}: {reason}")]
    Url {
        /// Its position in `[[witnesses]]`, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Two witnesses have the same key.
    #[error("witness {0}: the same vkey as an earlier witness")]
    Duplicate(usize),
    /// The quorum asks for more witnesses than are listed.
    #[error("witness_quorum is {quorum} but {listed} witnesses are listed")]
    Quorum {
        /// `witness_quorum`.
        quorum: usize,
        /// How many are listed.
        listed: usize,
    },
    /// A peer gateway's witness key does not parse.
    #[error("gateway {gateway}: bad witness_key: {reason}")]
    PeerKey {
        /// The peer.
        gateway: GatewayId,
        /// Why.
        reason: String,
    },
    /// A peer gateway's witness URL is not usable.
    #[error("gateway {gateway}: witness at {url}: {reason}")]
    PeerUrl {
        /// The peer.
        gateway: GatewayId,
        /// Its submission prefix.
        url: String,
        /// Why.
        reason: String,
    },
    /// A peer gateway's witness key is another witness's too.
    #[error("gateway {0}: its witness_key is also another witness's")]
    PeerDuplicate(GatewayId),
    /// The peer quorum asks for more peers than can cosign.
    #[error(
        "federation_quorum is {quorum} but {peers} peer gateways list a witness_key \
         (a gateway never counts towards its own quorum)"
    )]
    FederationQuorum {
        /// `federation_quorum`.
        quorum: usize,
        /// How many peers can cosign.
        peers: usize,
    },
}

/// Every witness's state as the log last heard it, for anyone to read
/// (`GET /audit/witnesses` on the public listener).
#[derive(Clone, Debug, Default)]
pub struct WitnessBoard {
    quorum: usize,
    peer_quorum: usize,
    members: Vec<(Arc<Witness>, bool)>,
}

impl WitnessBoard {
    /// `{"quorum":{"witnesses","peers"},"witnesses":[{"name","vkey","peer",
    /// "cosigned_size","outcome","failures","last_asked"}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        /// One witness's line: who it is, then its [`witness::Status`].
        #[derive(serde::Serialize)]
        struct Line<'a> {
            name: &'a str,
            vkey: String,
            peer: bool,
            #[serde(flatten)]
            status: witness::Status,
        }
        let witnesses: Vec<Line<'_>> = self
            .members
            .iter()
            .map(|(witness, peer)| Line {
                name: witness.key.name(),
                vkey: witness.key.to_string(),
                peer: *peer,
                status: witness.status(),
            })
            .collect();
        serde_json::json!({
            "quorum": { "witnesses": self.quorum, "peers": self.peer_quorum },
            "witnesses": witnesses,
        })
    }
}

/// One witness the log submits to, and whose quorum it counts in.
#[derive(Debug)]
struct Member {
    witness: Arc<Witness>,
    /// A peer gateway of the federation (`federation_quorum`), or a
    /// configured witness (`witness_quorum`).
    peer: bool,
}

/// The witnesses, the quorum and the pace: built from the configuration,
/// then run with [`Witnessing::run`].
#[derive(Debug)]
pub struct Witnessing {
    witnesses: Vec<Member>,
    /// Cosignatures needed from configured witnesses.
    quorum: usize,
    /// Cosignatures needed from peer gateways.
    peer_quorum: usize,
    interval: Duration,
}

impl Witnessing {
    /// Checks the configuration: every key parses, no key twice, every URL
    /// is `http://` or `https://` (with `tls`, whose roots decide which
    /// witness servers are believed), and `quorum` at most the witnesses
    /// listed.
    ///
    /// # Errors
    /// [`WitnessConfigError`] naming the witness at fault.
    pub fn new(
        specs: &[WitnessSpec],
        quorum: usize,
        interval: Duration,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Witnessing, WitnessConfigError> {
        if quorum > specs.len() {
            return Err(WitnessConfigError::Quorum {
                quorum,
                listed: specs.len(),
            });
        }
        let mut witnesses: Vec<Member> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let index = i + 1;
            let key = CosignerVerifier::parse(&spec.vkey).map_err(|e| WitnessConfigError::Key {
                index,
                reason: e.to_string(),
            })?;
            if witnesses.iter().any(|m| m.witness.key == key) {
                return Err(WitnessConfigError::Duplicate(index));
            }
            let peer = Peer::new(&spec.url, tls.clone(), DEADLINE).map_err(|e| {
                WitnessConfigError::Url {
                    index,
                    reason: e.to_string(),
                }
            })?;
            witnesses.push(Member {
                witness: Arc::new(Witness::new(key, peer)),
                peer: false,
            });
        }
        Ok(Witnessing {
            witnesses,
            quorum,
            peer_quorum: 0,
            interval: interval.max(Duration::from_millis(10)),
        })
    }

    /// Adds the federation's other gateways as witnesses, each reached
    /// with its own TLS configuration, and the quorum of them every served
    /// checkpoint needs besides `witness_quorum` of the configured ones.
    ///
    /// # Errors
    /// [`WitnessConfigError`] naming the peer at fault: a key that does not
    /// parse or is another witness's, a URL that is not usable, or a
    /// quorum above the number of peers.
    pub fn with_peers(
        mut self,
        peers: Vec<PeerWitness>,
        quorum: usize,
    ) -> Result<Witnessing, WitnessConfigError> {
        if quorum > peers.len() {
            return Err(WitnessConfigError::FederationQuorum {
                quorum,
                peers: peers.len(),
            });
        }
        for peer in peers {
            let gateway = peer.gateway;
            let key =
                CosignerVerifier::parse(&peer.vkey).map_err(|e| WitnessConfigError::PeerKey {
                    gateway: gateway.clone(),
                    reason: e.to_string(),
                })?;
            if self.witnesses.iter().any(|m| m.witness.key == key) {
                return Err(WitnessConfigError::PeerDuplicate(gateway));
            }
            let connection = Peer::new(&peer.url, Some(peer.tls), DEADLINE).map_err(|e| {
                WitnessConfigError::PeerUrl {
                    gateway: gateway.clone(),
                    url: peer.url.clone(),
                    reason: e.to_string(),
                }
            })?;
            self.witnesses.push(Member {
                witness: Arc::new(Witness::new(key, connection)),
                peer: true,
            });
        }
        self.peer_quorum = quorum;
        Ok(self)
    }

    /// Whether the log serves only checkpoints that reached the quorum.
    pub fn gates(&self) -> bool {
        self.quorum > 0 || self.peer_quorum > 0
    }

    /// The quorums: of configured witnesses, and of peer gateways.
    pub fn quorums(&self) -> (usize, usize) {
        (self.quorum, self.peer_quorum)
    }

    /// Whether cosignatures from `configured` configured witnesses and
    /// `peers` peer gateways reach both quorums.
    fn reached(&self, configured: usize, peers: usize) -> bool {
        configured >= self.quorum && peers >= self.peer_quorum
    }

    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.witnesses.is_empty()
    }

    /// A view of every witness's state that stays current while
    /// [`Witnessing::run`] goes on: what the public listener serves.
    pub fn board(&self) -> WitnessBoard {
        WitnessBoard {
            quorum: self.quorum,
            peer_quorum: self.peer_quorum,
            members: self
                .witnesses
                .iter()
                .map(|m| (Arc::clone(&m.witness), m.peer))
                .collect(),
        }
    }

    /// Gathers cosignatures every interval until the task is dropped.
    pub async fn run(self, gateway: Arc<Gateway>) {
        let (log, metrics) = (&gateway.log, &gateway.metrics);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut served = 0u64;
        loop {
            tick.tick().await;
            let Some(newest) = log.published_checkpoint() else {
                continue;
            };
            if newest.checkpoint.size <= served && served > 0 {
                continue;
            }
            let lines = self.gather(log, &newest, metrics).await;
            let peers = lines.iter().filter(|(peer, _)| *peer).count();
            if !self.gates() || !self.reached(lines.len() - peers, peers) {
                continue;
            }
            let mut note = newest.note.clone();
            for (_, line) in &lines {
                note.push_str(line);
            }
            let log = Arc::clone(log);
            match tokio::task::spawn_blocking(move || log.publish_cosigned(&note)).await {
                Ok(Ok(size)) => {
                    served = size;
                    metrics.cosigned(size, lines.len());
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "serving a cosigned checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "serving a cosigned checkpoint panicked"),
            }
        }
    }

    /// Asks every witness at once; returns the cosignature lines that
    /// verified, one per witness that gave one, each with whether a peer
    /// gateway gave it.
    async fn gather(
        &self,
        log: &Arc<dyn Ledger>,
        newest: &SignedCheckpoint,
        metrics: &crate::metrics::Metrics,
    ) -> Vec<(bool, String)> {
        let mut asks = tokio::task::JoinSet::new();
        for (i, member) in self.witnesses.iter().enumerate() {
            let (witness, log, newest) =
                (Arc::clone(&member.witness), Arc::clone(log), newest.clone());
            asks.spawn(async move { (i, witness.cosign(&log, &newest).await) });
        }
        let mut answers = Vec::with_capacity(self.witnesses.len());
        while let Some(joined) = asks.join_next().await {
            // A task that panicked (a bug) is a witness that did not answer.
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(i, _)| *i);
        let mut lines = Vec::new();
        for (i, answer) in answers {
            let Member { witness, peer } = &self.witnesses[i];
            match answer {
                Ok(line) => {
                    metrics.witness(witness.key.name(), "cosigned");
                    lines.push((*peer, line));
                }
                Err(NoCosignature::Waiting) => {}
                Err(e) => {
                    metrics.witness(witness.key.name(), e.outcome());
                    tracing::warn!(witness = witness.key.name(), error = %e, "no cosignature");
                }
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::cosign::{CosignatureAlg, Cosigner};

    fn vkey(name: &str, seed: u8) -> String {
        Cosigner::from_seed(name, CosignatureAlg::Ed25519, [seed; 32])
            .expect("key")
            .verifier()
            .to_string()
    }

    fn tls() -> Arc<ClientConfig> {
        let config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Arc::new(config)
    }

    fn peer(id: &str, seed: u8) -> PeerWitness {
        PeerWitness {
            gateway: id.parse().expect("id"),
            url: format!("https://{id}.example:8443/witness"),
            vkey: vkey(&format!("xgate/{id}/witness"), seed),
            tls: tls(),
        }
    }

    fn configured(n: u8, quorum: usize) -> Witnessing {
        let specs: Vec<WitnessSpec> = (0..n)
            .map(|i| WitnessSpec {
                url: format!("http://w{i}.example"),
                vkey: vkey(&format!("w{i}.example"), 100 + i),
            })
            .collect();
        Witnessing::new(&specs, quorum, Duration::from_millis(100), None).expect("witnesses")
    }

    #[test]
    fn both_quorums_must_be_reached_and_neither_stands_in_for_the_other() {
        let w = configured(2, 1)
            .with_peers(vec![peer("b", 1), peer("c", 2)], 2)
            .expect("peers");
        assert!(w.gates());
        assert_eq!(w.quorums(), (1, 2));
        assert_eq!(w.witnesses.iter().filter(|m| m.peer).count(), 2);
        assert!(w.reached(1, 2));
        assert!(w.reached(2, 2));
        assert!(
            !w.reached(2, 1),
            "configured witnesses do not make up for a peer"
        );
        assert!(
            !w.reached(0, 2),
            "peers do not make up for a configured witness"
        );

        // Peers only, today's configuration untouched otherwise.
        let w = configured(0, 0)
            .with_peers(vec![peer("b", 1), peer("c", 2)], 1)
            .expect("peers");
        assert!(w.gates() && w.reached(0, 1) && !w.reached(0, 0));
        // A quorum of 0 submits without gating.
        let w = configured(0, 0)
            .with_peers(vec![peer("b", 1)], 0)
            .expect("peers");
        assert!(!w.gates() && !w.is_empty());
        // Without peers, as before.
        let w = configured(2, 2);
        assert!(w.gates() && w.reached(2, 0) && !w.reached(1, 0));
    }

    #[test]
    fn peers_are_checked_as_configured_witnesses_are() {
        let err = configured(0, 0)
            .with_peers(vec![peer("b", 1), peer("c", 2)], 3)
            .expect_err("quorum");
        assert!(
            matches!(
                err,
                WitnessConfigError::FederationQuorum {
                    quorum: 3,
                    peers: 2
                }
            ),
            "{err}"
        );
        // A peer's key that is a configured witness's, or another peer's.
        let mut twin = peer("c", 1);
        twin.vkey = peer("b", 1).vkey;
        let err = configured(0, 0)
            .with_peers(vec![peer("b", 1), twin], 1)
            .expect_err("duplicate");
        assert!(matches!(err, WitnessConfigError::PeerDuplicate(ref g) if g.as_str() == "c"));
        let mut same = peer("b", 1);
        same.vkey = vkey("w0.example", 100);
        let err = configured(1, 0)
            .with_peers(vec![same], 1)
            .expect_err("duplicate");
        assert!(matches!(err, WitnessConfigError::PeerDuplicate(_)), "{err}");
        let mut bad = peer("b", 1);
        bad.vkey = "not a key".into();
        let err = configured(0, 0).with_peers(vec![bad], 1).expect_err("key");
        assert!(matches!(err, WitnessConfigError::PeerKey { .. }), "{err}");
        let mut bad = peer("b", 1);
        bad.url = "ftp://b.example/witness".into();
        let err = configured(0, 0).with_peers(vec![bad], 1).expect_err("url");
        assert!(err.to_string().contains("gateway b"), "{err}");
    }
}

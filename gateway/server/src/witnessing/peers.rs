//! The federation's other gateways as witnesses of this gateway's log:
//! each peer whose registry entry lists a `witness_key` runs a witness on
//! its main listener, at the registry's `url` + `/witness`
//! ([`crate::peer_witness`]), reached over mutual TLS that presents this
//! gateway's certificate and believes only that peer's
//! ([`tls::peer_client_config`]).

use std::sync::Arc;

use rustls::ClientConfig;

use crate::peer_witness::SUBMISSION_PREFIX;
use crate::registry::{GatewayId, Registry};
use crate::tls::{self, Tls, TlsError};

/// A peer gateway's witness, as this gateway's log reaches it.
#[derive(Clone, Debug)]
pub struct PeerWitness {
    /// The peer.
    pub gateway: GatewayId,
    /// Its witness's submission prefix: `<url>/witness`.
    pub url: String,
    /// Its witness's verifier key, from the registry.
    pub vkey: String,
    /// The TLS configuration that reaches it.
    pub tls: Arc<ClientConfig>,
}

/// The witnesses of gateway `local`'s log among its peers: every other
/// gateway of `registry` that lists a `witness_key`, in id order, each
/// reached as the forwarder reaches it (`tls::peer_client_config`: this
/// gateway's certificate, the peer's checked against the CRL in force).
///
/// # Errors
/// [`TlsError`]: the CA, the CRL, or `local`'s certificate or key
/// unusable.
pub fn peer_witnesses(
    tls: &Arc<Tls>,
    registry: &Registry,
    local: &GatewayId,
) -> Result<Vec<PeerWitness>, TlsError> {
    registry
        .gateways()
        .filter(|g| g.id != *local)
        .filter_map(|g| Some((g, g.witness_key.clone()?)))
        .map(|(peer, vkey)| {
            Ok(PeerWitness {
                gateway: peer.id.clone(),
                url: format!("{}{SUBMISSION_PREFIX}", peer.url),
                vkey,
                tls: tls::peer_client_config(tls, peer)?,
            })
        })
        .collect()
}

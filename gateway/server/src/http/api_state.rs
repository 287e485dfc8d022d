//! What every request handler of the API can reach.

use std::sync::Arc;

use xgate_ledger::witness::Witness;

use super::fanout::Hub;
use crate::pipeline::Gateway;
use crate::tls::Tls;

/// The HTTP API's shared state: the gateway and the limits of its routes.
pub struct ApiState {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// TLS state, for revocation checks on open connections.
    pub tls: Arc<Tls>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most envelopes per inbox page.
    pub inbox_page: usize,
    /// Set when the server stops, to end open streams.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// The reconciliation feed's one reader and its subscribers.
    pub streams: Arc<Hub>,
    /// The witness this gateway runs for its peers' logs, in a federation
    /// whose registry lists a `witness_key` for it
    /// ([`crate::peer_witness`]).
    pub witness: Option<Arc<Witness>>,
}

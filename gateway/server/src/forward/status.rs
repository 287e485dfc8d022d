//! How forwarding to each peer gateway is going, as the forwarder last
//! saw it: what `GET /v1/outbox` shows beside an envelope still queued.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::registry::GatewayId;

/// Forwarding to one peer gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Failed attempts in a row (0 while it takes what it is sent).
    pub attempts: u32,
    /// Why the last attempt failed, if it did: the transport error, or the
    /// peer's status and code (never an envelope's content).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due, seconds since the epoch, while the
    /// forwarder backs off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<i64>,
}

/// Every peer's [`PeerStatus`].
#[derive(Debug, Default)]
pub struct Peers(Mutex<BTreeMap<GatewayId, PeerStatus>>);

impl Peers {
    /// The status of forwarding to `peer` (the default if never tried).
    pub fn get(&self, peer: &GatewayId) -> PeerStatus {
        self.lock().get(peer).cloned().unwrap_or_default()
    }

    /// Sets the status of forwarding to `peer`.
    pub fn set(&self, peer: &GatewayId, status: PeerStatus) {
        self.lock().insert(peer.clone(), status);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<GatewayId, PeerStatus>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

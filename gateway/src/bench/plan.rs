//! What a bench run does: where, as whom, how hard and for how long.

use std::path::PathBuf;
use std::time::Duration;

use super::mix::Mix;
use crate::client::Protocol;
use xgate_server::registry::AgencyId;

impl Plan {
    /// Whether the exchanges go through the lean loop: everything but
    /// HTTP/2 and handshakes, which take the agency client.
    pub fn lean(&self) -> bool {
        !self.http2 && !self.handshakes
    }

    /// The HTTP version the agency client offers: HTTP/2 if `http2`.
    pub fn protocol(&self) -> Protocol {
        if self.http2 {
            Protocol::Auto
        } else {
            Protocol::Http1
        }
    }

    /// Whom sender `i` (an index into `agencies`) sends to.
    pub fn recipient(&self, sender: usize) -> &AgencyId {
        match &self.recipients {
            Some(r) if !r.is_empty() => &r[sender % r.len()],
            _ => &self.agencies[(sender + 1) % self.agencies.len()],
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The gateway, as https://host:port.
    pub url: String,
    /// The PKI directory with the agencies' keys and `registry.toml`.
    pub pki: PathBuf,
    /// The agencies sending (each sends to the next, unless `recipients`).
    pub agencies: Vec<AgencyId>,
    /// Whom the sending agencies send to: the `i`th sender to the
    /// `i mod n`th (agencies another gateway serves, to measure
    /// forwarding); `None`: each sender to the next sender.
    pub recipients: Option<Vec<AgencyId>>,
    /// Connections, each one task.
    pub connections: usize,
    /// How long to run.
    pub duration: Duration,
    /// The kinds and their shares.
    pub mix: Mix,
    /// Most envelopes to sign in advance.
    pub envelopes: usize,
    /// Offer HTTP/2 (ALPN); otherwise HTTP/1.1 only.
    pub http2: bool,
    /// Exchanges per second over all connections; `None`: as fast as the
    /// gateway answers. Paced per connection, never above the rate.
    pub rate: Option<f64>,
    /// Measure handshakes instead: every exchange opens a new connection
    /// (a full mutual-TLS handshake, no session resumption) and sends
    /// `GET /healthz` on it.
    pub handshakes: bool,
    /// Where to write every receipt, one JSON object per line, so a test
    /// (or an auditor) can check afterwards what the gateway acknowledged.
    pub receipts: Option<PathBuf>,
    /// Where to write when each acknowledged request (exchanges, and inbox
    /// acknowledgements with `drain`) was sent and answered
    /// ([`timings`](super::timings)).
    pub timings: Option<PathBuf>,
    /// Read and acknowledge every agency's inbox while the load runs
    /// ([`drain`](super::drain)), as receiving agencies do.
    pub drain: bool,
    /// The generator's runtime threads (1: one thread runs everything).
    pub threads: usize,
    /// The server's processes, whose CPU the report shows beside the
    /// generator's; empty: found by the gateway's listening socket if it is
    /// on this machine ([`cpu::server_pids`](super::cpu::server_pids)).
    pub server_pids: Vec<u32>,
}

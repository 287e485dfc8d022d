//! One connection to the public listener: the TLS handshake (no client
//! certificate, or the federation's with `public_client_auth`), then
//! HTTP/1.1 or HTTP/2 answered by [`crate::public_log::answer`], under the
//! same clocks as the main listener's connections (see `connection`).
//!
//! Nothing here touches the commit path: requests read files through
//! [`crate::public_log::PublicLog`], a few at a time on blocking threads.

use std::convert::Infallible;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::connection::{Clocks, Tracked, drive, eviction_reason};
use super::table::Conn;
use crate::public_log::{Access, Named, PublicSite, answer};
use crate::tls::{Identity, identify};

/// Serves one accepted connection of the public listener until it closes.
pub(super) async fn serve(
    tcp: TcpStream,
    conn: Conn,
    site: Arc<PublicSite>,
    builder: Arc<Builder<TokioExecutor>>,
    clocks: Clocks,
) {
    let opened = Instant::now();
    let metrics = &site.gateway.metrics;
    let acceptor = TlsAcceptor::from(site.access.config());
    let handshake = tokio::time::timeout_at(opened + clocks.header_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            // With `public_client_auth`, a missing, unknown or revoked
            // certificate ends here, with rustls's alert.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed on the public listener");
                metrics.public_handshake("failed");
                return;
            }
            Err(_) => {
                metrics.public_handshake("timeout");
                metrics.public_connection_closed("header_timeout");
                return;
            }
        },
        why = conn.evicted() => {
            if let Some(reason) = eviction_reason(why) {
                metrics.public_connection_closed(reason);
            }
            return;
        }
    };
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    metrics.public_handshake(if resumed { "resumed" } else { "full" });
    let identity = match &site.access {
        Access::Anyone(_) => None,
        Access::Federation(_) => Some(
            match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                Some(cert) => identify(cert, &site.gateway.registry),
                None => Identity::Unknown("no client certificate".into()),
            },
        ),
    };
    // Anonymous: no agency's cap applies (the table's per-agency cap is
    // the whole table).
    if conn.identified(None).is_err() {
        return;
    }
    metrics.public_connection(1);
    let _open = OpenConnection(Arc::clone(&site));
    let service = {
        let site = Arc::clone(&site);
        let identity = Arc::new(identity);
        let requests = conn.requests();
        service_fn(move |req: Request<Incoming>| {
            let in_flight = requests.start();
            let site = Arc::clone(&site);
            let identity = Arc::clone(&identity);
            // The request is read for its method and path only; a body is
            // never read.
            let named = Named::of(req.method(), req.uri());
            async move {
                let identity: Option<&Identity> = (*identity).as_ref();
                let response = answer(&site, identity, named, clocks.request_timeout).await;
                Ok::<_, Infallible>(response.map(|body| Tracked { body, in_flight }))
            }
        })
    };
    let http = builder.serve_connection(TokioIo::new(tls), service);
    let closed = |reason| metrics.public_connection_closed(reason);
    drive(http, &conn, &closed, clocks, opened, false).await;
}

/// Counts a connection as open from its handshake until its task ends.
struct OpenConnection(Arc<PublicSite>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.gateway.metrics.public_connection(-1);
    }
}

//! The log as C2SP tlog-tiles, to anyone: what the public listener
//! (`public_listen`, [`crate::server::serve_public`]) serves.
//!
//! ```text
//! GET /checkpoint                  the checkpoint (text/plain; charset=utf-8, no-store)
//! GET /tile/<L>/<N>[.p/<W>]        a tile: 32-byte hashes (application/octet-stream, immutable)
//! GET /tile/entries/<N>[.p/<W>]    an entry bundle: u16 length + entry, each (immutable)
//! GET /, /audit/*.js, /audit/*.css the auditor's page ([`page`])
//! GET /audit/witnesses             each witness's state as this log last heard it
//!                                  (JSON, no-store; [`WitnessBoard::to_json`])
//! anything else                    404
//! ```
//!
//! An auditor needs nothing from xgate but the log's public key: every tile
//! and bundle is checked against a signed checkpoint by the client, so the
//! listener serves files, not answers (no proofs computed on request).
//!
//! - [`route`]: which request names which resource, and its headers;
//! - [`source`] ([`PublicLog`]): reading the files, off the async runtime;
//! - [`Access`]: who may connect: anyone, or (`public_client_auth`) only
//!   the federation, verified as the main listener verifies it.

pub mod page;
pub mod route;
mod source;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use rustls::ServerConfig;
use xgate_ledger::tlog::Resource;

pub use source::{MAX_READS, PublicLog, ReadError};

use crate::pipeline::Gateway;
use crate::tls::{Identity, Tls};
use crate::witnessing::WitnessBoard;

/// Who may connect to the public listener.
pub enum Access {
    /// Anyone: the gateway's certificate, no client certificate asked for.
    Anyone(Arc<ServerConfig>),
    /// Only the federation (`public_client_auth = true`): the main
    /// listener's TLS configuration (client certificate required, checked
    /// against the CA and the CRL in force, rebuilt when the CRL changes),
    /// and each request refused unless the certificate names a registered
    /// agency whose certificate the CRL in force does not revoke.
    Federation(Arc<Tls>),
}

impl Access {
    /// The TLS configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self {
            Access::Anyone(config) => Arc::clone(config),
            Access::Federation(tls) => tls.config(),
        }
    }

    /// Whether a request from a connection of `identity` (`None`: no client
    /// certificate was asked for) is refused. With [`Access::Federation`]
    /// this is the main listener's check (see `http::caller`): an unknown
    /// or revoked certificate, or every certificate while `crl_strict` and
    /// the CRL is past its `nextUpdate`; fail closed.
    pub fn refuses(&self, identity: Option<&Identity>) -> bool {
        match (self, identity) {
            (Access::Anyone(_), _) => false,
            (
                Access::Federation(tls),
                Some(Identity::Agency { serial, .. } | Identity::Gateway { serial, .. }),
            ) => tls.refuses(serial).is_some(),
            (Access::Federation(_), _) => true,
        }
    }
}

/// What the public listener's connections share.
pub struct PublicSite {
    /// The gateway: its registry (to identify a federation certificate) and
    /// metrics. Nothing on the commit path is called from here.
    pub gateway: Arc<Gateway>,
    /// The files served.
    pub log: PublicLog,
    /// Who may connect.
    pub access: Access,
    /// The witnesses this log asks to cosign, and what it last heard from
    /// each (empty when it asks none).
    pub witnesses: WitnessBoard,
}

/// A response of the public listener.
pub type PublicResponse = Response<Full<Bytes>>;

/// What a request of the public listener names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// A resource of the log ([`route::resource`]).
    Log(Resource),
    /// A file of the auditor's page ([`page::asset`]).
    Page(page::Asset),
    /// The witnesses' state.
    Witnesses,
    /// Nothing: 404.
    Nothing,
}

impl Named {
    /// What `method` of `uri` names.
    pub fn of(method: &http::Method, uri: &http::Uri) -> Named {
        match (route::resource(method, uri), page::asset(method, uri)) {
            (Some(resource), _) => Named::Log(resource),
            (None, Some(asset)) => Named::Page(asset),
            (None, None) if page::names_witnesses(method, uri) => Named::Witnesses,
            (None, None) => Named::Nothing,
        }
    }
}

/// Answers one request naming `named` from a connection of `identity`,
/// within `timeout` (503 past it), and counts it.
pub async fn answer(
    site: &PublicSite,
    identity: Option<&Identity>,
    named: Named,
    timeout: Duration,
) -> PublicResponse {
    let class = match &named {
        Named::Log(resource) => route::class(Some(resource)),
        Named::Page(_) | Named::Witnesses => "page",
        Named::Nothing => route::class(None),
    };
    let response = if site.access.refuses(identity) {
        status_only(StatusCode::FORBIDDEN)
    } else {
        match named {
            Named::Nothing => status_only(StatusCode::NOT_FOUND),
            Named::Page(asset) => page::response(asset),
            Named::Witnesses => page::witnesses(&site.witnesses.to_json()),
            Named::Log(resource) => tokio::time::timeout(timeout, serve(site, resource))
                .await
                .unwrap_or_else(|_| status_only(StatusCode::SERVICE_UNAVAILABLE)),
        }
    };
    site.gateway
        .metrics
        .public_request(class, response.status().as_u16());
    response
}

/// The response for `resource`.
async fn serve(site: &PublicSite, resource: Resource) -> PublicResponse {
    match site.log.get(resource).await {
        Ok(Some(bytes)) => {
            let (kind, cache) = route::headers(&resource);
            let mut response = Response::new(Full::new(bytes));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, kind);
            headers.insert(CACHE_CONTROL, cache);
            response
        }
        // Not (yet) written, or a partial tile pruned once its full tile
        // exists.
        Ok(None) => status_only(StatusCode::NOT_FOUND),
        Err(e) => {
            let class = route::class(Some(&resource));
            tracing::warn!(error = %e, resource = class, "the public listener could not read the log");
            status_only(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// A response of `status` alone: its reason phrase as a plain-text body,
/// and never cached (a tile missing now may exist in a second).
pub fn status_only(status: StatusCode) -> PublicResponse {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("error"));
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(route::NO_STORE));
    response
}

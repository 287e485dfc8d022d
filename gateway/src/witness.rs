//! The witness's HTTP server: C2SP tlog-witness `POST /add-checkpoint`
//! over [`xgate_ledger::witness::Witness`], plain HTTP or HTTPS, HTTP/1.1
//! or HTTP/2.
//!
//! The submission prefix is the server's root: `POST /add-checkpoint`
//! answers as the spec says (200 with cosignature lines, 400, 403, 404,
//! 409 with `Content-Type: text/x.tlog.size` and the latest size, 422),
//! with [`xgate_server::witness_http`], as the witness every gateway of a
//! federation runs for its peers does; the same path with another method
//! is 405 with `Allow: POST`; every other path is 404. A body longer than
//! the witness accepts is 400 without being read further. The check, the
//! durable write and the signature run on a blocking thread; a failure
//! there (storage) is 500.
//!
//! Connections are bounded in number, each must send its request head
//! (TLS handshake included) within [`HEADER_TIMEOUT`] and its body within
//! [`BODY_TIMEOUT`]; on shutdown the listener stops accepting and
//! requests in flight finish (at most [`DRAIN`]).

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use xgate_ledger::witness::Witness;
use xgate_server::witness_http::{self, text};

/// The one path served.
pub use xgate_server::witness_http::ADD_CHECKPOINT;
/// Longest a request body may take to arrive.
pub use xgate_server::witness_http::BODY_TIMEOUT;
/// Most connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// Longest a connection may take to present a request head, TLS
/// handshake included.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight get to finish after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Why the witness's HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessTlsError {
    /// A certificate or key file is missing or unreadable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A TLS server configuration presenting the certificate chain in `cert`
/// with the key in `key` (PEM), asking no client certificate (tlog-witness
/// authenticates requests by the log's signature alone).
///
/// # Errors
/// [`WitnessTlsError`] naming the file at fault.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, WitnessTlsError> {
    let file = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustls_pki_types::pem::Error| WitnessTlsError::File {
            path,
            message: e.to_string(),
        }
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(file(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file(cert))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(file(key))?;
    let mut config = ServerConfig::builder_with_provider(xgate_server::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| WitnessTlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| WitnessTlsError::Config(e.to_string()))?;
    config.alpn_protocols = xgate_server::tls::ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Serves `witness` on `listener` (over TLS with `tls`, plain HTTP
/// without) until `shutdown` completes, then lets requests in flight
/// finish.
///
/// # Errors
/// Only if the listener itself fails.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors, a connection reset before accept:
                // the listener goes on.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let witness = Arc::clone(&witness);
        let service = service_fn(move |req| {
            let witness = Arc::clone(&witness);
            async move { Ok::<_, Infallible>(handle(&witness, req).await) }
        });
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("requests still in flight after the drain period; stopping anyway");
        }
    }
    Ok(())
}

/// Routes one request: `POST /add-checkpoint` is answered by
/// [`xgate_server::witness_http`], which the gateway's own witness of its
/// peers shares.
async fn handle(witness: &Arc<Witness>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != ADD_CHECKPOINT {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::POST {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    witness_http::add_checkpoint(witness, req).await.response
}

//! The listener: accepts TCP connections up to a limit, completes the mutual
//! TLS handshake, reads the caller's identity once per connection, serves
//! HTTP/1.1 or HTTP/2 on it, and shuts down gracefully.
//!
//! Background work lives here too: the CRL is re-read when its file changes
//! (polled) and on SIGHUP, which also reloads the policy (a CRL that fails
//! its checks is refused and the one in force kept, see [`crate::crl`]); replay ids past
//! their keep-until time are purged. On SIGTERM or SIGINT the server stops
//! accepting, lets in-flight requests (and their appends) finish, and
//! returns; dropping the log then leaves everything flushed.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::errors::{ApiError, Code};
use crate::http::{Context, error_response, handle};
use crate::policy::Policy;
use crate::tls::{Identity, identify};

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers) accepted, in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How often expired replay ids are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Limits and timings of the listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Longest a TLS handshake or a request head may take.
    pub header_timeout: Duration,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// How often the CRL file is checked.
    pub crl_poll: Duration,
}

/// Serves `listener` until `shutdown` completes, then drains.
///
/// `policy_file` is reloaded on SIGHUP; a reload that fails keeps the old
/// policy.
///
/// # Errors
/// Only if the listener itself fails.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    limits: Limits,
    policy_file: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let background = spawn_background(Arc::clone(&ctx), limits.crl_poll, policy_file);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot first: past the limit, connections wait in
        // the kernel's backlog instead of costing us memory.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let (header_timeout, request_timeout) = (limits.header_timeout, limits.request_timeout);
        tokio::spawn(async move {
            let _permit = permit;
            let acceptor = TlsAcceptor::from(ctx.tls.config());
            let tls = match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                // Refused certificates end here: rustls has already sent
                // the alert; there is no HTTP to answer.
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    ctx.gateway.metrics.handshake("failed");
                    return;
                }
                Err(_) => {
                    ctx.gateway.metrics.handshake("timeout");
                    return;
                }
            };
            let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            ctx.gateway
                .metrics
                .handshake(if resumed { "resumed" } else { "full" });
            let identity = {
                let (_, conn) = tls.get_ref();
                match conn.peer_certificates().and_then(|c| c.first()) {
                    Some(cert) => identify(cert, &ctx.gateway.registry),
                    None => Identity::Unknown("no client certificate".into()),
                }
            };
            let identity = Arc::new(identity);
            ctx.gateway.metrics.connection(1);
            let _open = OpenConnection(Arc::clone(&ctx));
            let service = service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                let identity = Arc::clone(&identity);
                async move {
                    let response = tokio::time::timeout(
                        request_timeout,
                        handle(Arc::clone(&ctx), identity, req),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        error_response(&ApiError::new(
                            Code::Unavailable,
                            "the request took too long; it may or may not have been applied",
                        ))
                    });
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    background.abort();
    // Open event streams end now, or the drain would wait for them.
    ctx.closing.send_replace(true);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN:?}; stopping anyway");
    }
    Ok(())
}

/// Counts a connection as closed when its task ends, however it ends.
struct OpenConnection(Arc<Context>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.gateway.metrics.connection(-1);
    }
}

fn spawn_background(
    ctx: Arc<Context>,
    crl_poll: Duration,
    policy_file: PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = hangup_signal();
        let mut poll = tokio::time::interval(crl_poll);
        let mut purge = tokio::time::interval(PURGE_EVERY);
        loop {
            tokio::select! {
                _ = poll.tick() => reload_crl(&ctx, false),
                Some(()) = next_hangup(&mut hangup) => {
                    reload_crl(&ctx, true);
                    reload_policy(&ctx, &policy_file);
                }
                _ = purge.tick() => {
                    let gateway = Arc::clone(&ctx.gateway);
                    let purged = tokio::task::spawn_blocking(move || gateway.purge_replay()).await;
                    if let Ok(Err(e)) = purged {
                        tracing::warn!(error = %e, "purging expired replay ids failed");
                    }
                }
            }
        }
    })
}

/// Reloads the CRL if it changed (`forced`: re-read it anyway), keeping the
/// one in force when the new one is refused, and raises the staleness
/// alarm; see [`crate::crl::check`].
fn reload_crl(ctx: &Context, forced: bool) {
    crate::crl::check(&ctx.tls, &ctx.gateway.metrics, forced);
}

fn reload_policy(ctx: &Context, path: &std::path::Path) {
    match Policy::load(path, &ctx.gateway.registry) {
        Ok(policy) => {
            tracing::info!(policy = %policy.hash_hex(), "policy reloaded");
            ctx.gateway.set_policy(policy);
        }
        Err(e) => tracing::warn!(error = %e, "policy not reloaded; keeping the previous one"),
    }
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

async fn next_hangup(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

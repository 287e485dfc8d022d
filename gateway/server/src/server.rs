//! The listener: accepts TCP connections, gives each a slot in the
//! connection table (`table`: the global, per-agency and handshake caps,
//! and which connection gives its slot up when the table is full), and
//! serves each (`connection`: the mutual TLS handshake, the caller's
//! identity read once per connection, HTTP/1.1 or HTTP/2 under header,
//! idle and age clocks), and shuts down gracefully.
//!
//! Background work lives here too: the CRL is re-read when its file changes
//! (polled) and on SIGHUP, which also reloads the policy (a CRL that fails
//! its checks is refused and the one in force kept, see `crl`); replay ids past
//! their keep-until time are purged. On SIGTERM or SIGINT the server stops
//! accepting, lets in-flight requests (and their appends) finish, and
//! returns; dropping the log then leaves everything flushed.
//!
//! The public listener ([`serve_public`], `public`) serves the log as C2SP
//! tlog-tiles ([`crate::public_log`]) on a second address, with a table,
//! clocks and drain of its own, so that its clients can never take a slot
//! of the agencies' listener.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

use crate::http::ApiState;
use crate::policy::Policy;
use crate::public_log::PublicSite;

mod connection;
mod public;
mod table;

use connection::Clocks;
use table::{Caps, Table};

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers) accepted, in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How often expired replay ids are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Most HTTP/2 streams at once on one connection of the public listener:
/// enough to fetch a proof's tiles in parallel, few enough that one
/// connection holds at most this many responses in memory.
const PUBLIC_STREAMS: u32 = 32;

/// Limits and timings of the listener (the envelope's time limits are
/// [`crate::envelope::Limits`]).
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Most connections served at once; past it, a new connection takes
    /// the slot of the one that has had nothing in flight the longest.
    pub max_connections: usize,
    /// Longest the TLS handshake and the first request head may take
    /// together, and each later request head.
    pub header_timeout: Duration,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Every connection is closed gracefully after this long.
    pub max_connection_age: Duration,
    /// Most connections one agency may hold open at once; never more than
    /// half of `max_connections` (see `agency_cap`).
    pub max_connections_per_agency: usize,
    /// Most connections in their TLS handshake at once.
    pub max_handshakes: usize,
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
    ctx: Arc<ApiState>,
    limits: ListenerLimits,
    policy_file: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let background = spawn_background(Arc::clone(&ctx), limits.crl_poll, policy_file);
    let table = Table::new(Caps {
        max_connections: limits.max_connections,
        max_handshakes: limits.max_handshakes,
        max_per_agency: agency_cap(limits.max_connections_per_agency, limits.max_connections),
    });
    let clocks = clocks(&limits);
    let builder = Arc::new(builder(&limits));
    accept_until(listener, &table, shutdown, |tcp, conn| {
        tokio::spawn(connection::serve(
            tcp,
            conn,
            Arc::clone(&ctx),
            Arc::clone(&builder),
            clocks,
        ));
    })
    .await;
    background.abort();
    // Open event streams end now, or the drain would wait for them.
    ctx.closing.send_replace(true);
    drain(&table).await;
    Ok(())
}

/// Serves the public tlog-tiles listener until `shutdown` completes, then
/// drains: `limits` as for the main listener, except that no connection is
/// counted against an agency (its clients are anonymous) and each
/// connection runs at most [`PUBLIC_STREAMS`] HTTP/2 streams at once.
///
/// # Errors
/// Only if the listener itself fails.
pub async fn serve_public(
    listener: TcpListener,
    site: Arc<PublicSite>,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let table = Table::new(Caps {
        max_connections: limits.max_connections,
        max_handshakes: limits.max_handshakes.min(limits.max_connections),
        max_per_agency: limits.max_connections,
    });
    let clocks = clocks(&limits);
    let mut builder = builder(&limits);
    builder.http2().max_concurrent_streams(PUBLIC_STREAMS);
    let builder = Arc::new(builder);
    accept_until(listener, &table, shutdown, |tcp, conn| {
        tokio::spawn(public::serve(
            tcp,
            conn,
            Arc::clone(&site),
            Arc::clone(&builder),
            clocks,
        ));
    })
    .await;
    drain(&table).await;
    Ok(())
}

/// Accepts connections on `listener` until `shutdown` completes, giving
/// each a slot in `table` and handing it to `spawn`; then closes the
/// listener.
async fn accept_until(
    listener: TcpListener,
    table: &Arc<Table>,
    shutdown: impl Future<Output = ()>,
    mut spawn: impl FnMut(tokio::net::TcpStream, table::Conn),
) {
    tokio::pin!(shutdown);
    loop {
        // Accept at once, whatever the table holds: connections left in
        // the kernel's backlog would be served in arrival order, behind
        // every slow client queued before them (see `table`).
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
        // A free slot, or the slot of an idle connection (see `table`);
        // waits only while every connection is serving a request.
        let permit = tokio::select! {
            permit = table.slot() => permit,
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        spawn(tcp, table.open(permit));
    }
    drop(listener);
}

/// Tells every connection of `table` to close and waits for in-flight
/// requests, at most [`DRAIN`].
async fn drain(table: &Arc<Table>) {
    table.shutdown();
    if tokio::time::timeout(DRAIN, table.closed()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {DRAIN:?}; stopping anyway");
    }
}

/// The clocks of every connection, from the listener's limits.
fn clocks(limits: &ListenerLimits) -> Clocks {
    Clocks {
        header_timeout: limits.header_timeout,
        request_timeout: limits.request_timeout,
        idle_timeout: limits.idle_timeout,
        max_age: limits.max_connection_age,
    }
}

/// The per-agency connection cap in force: `configured`, but at most half
/// of `max_connections` (and at least 1), logged when lower. Connections
/// serving a request are never evicted, so an agency allowed every slot
/// could keep them all busy (with slow bodies, each bounded by the header
/// timeout but started again at once) and keep every other agency out.
fn agency_cap(configured: usize, max_connections: usize) -> usize {
    let cap = configured.min((max_connections / 2).max(1));
    if cap < configured {
        tracing::info!(
            configured,
            max_connections,
            max_connections_per_agency = cap,
            "max_connections_per_agency lowered to half of max_connections"
        );
    }
    cap
}

/// hyper's HTTP/1.1 and HTTP/2 settings.
fn builder(limits: &ListenerLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper times each request head from the moment it starts waiting for
    // it, which on a keep-alive connection is the end of the previous
    // response: an idle HTTP/1.1 connection is closed after
    // `header_timeout` even when `idle_timeout` is longer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    // Pings find dead peers under long responses (event streams): a ping
    // goes out after `idle_timeout` without a frame from the client, and
    // the connection closes if it is not answered within `header_timeout`.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.header_timeout);
    builder
}

/// How often the gateway looks for deadlines due.
const TICK_EVERY: Duration = Duration::from_secs(1);

fn spawn_background(
    ctx: Arc<ApiState>,
    crl_poll: Duration,
    policy_file: PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = hangup_signal();
        let mut poll = tokio::time::interval(crl_poll);
        let mut purge = tokio::time::interval(PURGE_EVERY);
        let mut tick = tokio::time::interval(TICK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // A deadline a contract set fires through a logged
                    // `clock.tick` entry, never by reading the clock in a
                    // rule (docs/contracts.md, "Deadlines").
                    if let Err(e) = ctx.gateway.tick().await {
                        tracing::warn!(error = %e, "a clock.tick for the deadlines due was not logged; retrying");
                    }
                }
                _ = poll.tick() => reload_crl(&ctx, false),
                Some(()) = next_hangup(&mut hangup) => {
                    reload_crl(&ctx, true);
                    // Loading checks every contract's condition: off the
                    // async workers, which go on serving meanwhile.
                    let (ctx, file) = (Arc::clone(&ctx), policy_file.clone());
                    if tokio::task::spawn_blocking(move || reload_policy(&ctx, &file))
                        .await
                        .is_err()
                    {
                        tracing::error!("reloading the policy panicked; keeping the previous one");
                    }
                }
                _ = purge.tick() => {
                    let gateway = Arc::clone(&ctx.gateway);
                    let purged = tokio::task::spawn_blocking(move || gateway.purge_replay()).await;
                    if let Ok(Err(e)) = purged {
                        tracing::warn!(error = %e, "purging expired replay ids failed");
                    }
                    let gateway = Arc::clone(&ctx.gateway);
                    let purged = tokio::task::spawn_blocking(move || gateway.purge_outbox()).await;
                    if let Ok(Err(e)) = purged {
                        tracing::warn!(error = %e, "purging settled outbox records failed");
                    }
                }
            }
        }
    })
}

/// Reloads the CRL if it changed (`forced`: re-read it anyway), keeping the
/// one in force when the new one is refused, and raises the staleness
/// alarm; see [`crate::crl_watch::check`].
fn reload_crl(ctx: &ApiState, forced: bool) {
    crate::crl_watch::check(&ctx.tls, &ctx.gateway.metrics, forced);
}

fn reload_policy(ctx: &ApiState, path: &std::path::Path) {
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

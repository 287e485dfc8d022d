//! The database as the rest of `pg` sees it: the connection settings, the
//! pool, running a query from a synchronous caller ([`Db::run`],
//! [`Db::read`]), a connection held for a transaction ([`Held`]),
//! pipelining ([`pipeline`]) and the one error type of a query ([`Fail`]).
//!
//! Every call fails in bounded time when the database is away: connecting
//! gives up after [`CONNECT`], waiting for a pooled connection after
//! [`POOL_WAIT`], a statement after the server's `statement_timeout`, and
//! the whole call after [`CALL_LIMIT`] whatever happens on the network. The
//! pool replaces closed connections by itself, so calls succeed again as
//! soon as the database is back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::SslMode;
use tokio_postgres::{NoTls, Row, Statement};

use super::runtime::Bridge;
use crate::error::Error;
use crate::store::StoreError;

/// Connections in the pool.
pub(super) const POOL_SIZE: usize = 16;
/// How long a new connection may take to be made.
const CONNECT: Duration = Duration::from_secs(2);
/// How long a call waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(3);
/// The longest any call may take, end to end.
pub(super) const CALL_LIMIT: Duration = Duration::from_secs(10);
/// Settings of every session: commits durable on the server before they
/// are acknowledged (whatever the server's default), a statement (a lock
/// wait included) bounded, and a session that sits in a transaction
/// without a word (a replica frozen while it holds the log's lock) ended
/// so that the others go on.
const SESSION: &str = "-c synchronous_commit=on -c statement_timeout=4000 \
                       -c idle_in_transaction_session_timeout=10000";

/// Why a query failed: the database's answer (by SQLSTATE and message,
/// never its `DETAIL`, which can quote the values of a row), or a failure
/// of the log itself found while talking to it.
#[derive(Debug, thiserror::Error)]
pub(super) enum Fail {
    /// The database refused, or could not be reached.
    #[error("postgres: {what}: {reason}")]
    Db {
        /// What was being done.
        what: &'static str,
        /// The error, with no row data.
        reason: String,
        /// A lost or refused connection, worth one retry on a fresh one.
        transient: bool,
    },
    /// Anything else.
    #[error(transparent)]
    Log(#[from] Error),
}

impl From<Fail> for Error {
    fn from(fail: Fail) -> Error {
        match fail {
            Fail::Log(e) => e,
            db @ Fail::Db { .. } => Error::Store(StoreError(db.to_string())),
        }
    }
}

impl Fail {
    fn transient(&self) -> bool {
        matches!(
            self,
            Fail::Db {
                transient: true,
                ..
            }
        )
    }
}

/// Maps a driver error while doing `what` to a [`Fail`], for `map_err`.
pub(super) fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Fail {
    move |e| {
        let (reason, transient) = describe(&e);
        Fail::Db {
            what,
            reason,
            transient,
        }
    }
}

/// The error's message without row data, and whether it is about the
/// connection rather than the statement.
fn describe(e: &tokio_postgres::Error) -> (String, bool) {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // 08: connection exceptions; 57P: the server shutting down or
        // ending this session.
        let transient = code.starts_with("08") || code.starts_with("57P");
        return (format!("{code} {}", db.message()), transient);
    }
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    let transient = e.is_closed() || io;
    // The causes say what went wrong (the socket's error, the TLS
    // handshake's "certificate verify failed"); none repeats the URL.
    let mut reason = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !reason.contains(&text) {
            reason = format!("{reason}: {text}");
        }
        cause = c.source();
    }
    (reason, transient)
}

/// Maps a failure to get a pooled connection.
fn pool_fail(e: PoolError) -> Fail {
    match e {
        PoolError::Backend(e) => pg("connect")(e),
        PoolError::Timeout(_) => Fail::Db {
            what: "connect",
            reason: "no connection within the time allowed".into(),
            transient: true,
        },
        other => Fail::Db {
            what: "connect",
            reason: match other {
                PoolError::Closed => "the pool is closed".into(),
                _ => "the pool is misconfigured".into(),
            },
            transient: false,
        },
    }
}

/// The pool and the runtime its connections live on. Fields drop in
/// order: the pool (closing its connections) before the runtime.
pub(super) struct Db {
    pool: Pool,
    bridge: Bridge,
}

impl Db {
    /// A pool of connections to `url` (a libpq URL or key-value string);
    /// no connection is made yet.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL that does not parse (the message never
    /// repeats it: it may hold a password).
    pub(super) fn connect(url: &str) -> Result<Arc<Db>, Error> {
        let config = session_config(url)?;
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.get_ssl_mode() {
            SslMode::Require => Manager::from_config(config, tls()?, recycling()),
            // `prefer` (the default) would take plaintext from any server
            // that declines, or any attacker in the middle: it is taken as
            // `disable`, and only `require` encrypts, always verified.
            _ => Manager::from_config(config, NoTls, recycling()),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT + Duration::from_secs(1)))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|_| Error::Invalid("cannot build the database connection pool".into()))?;
        Ok(Arc::new(Db {
            pool,
            bridge: Bridge::new()?,
        }))
    }

    /// Runs `future` on the database runtime and waits for it, at most
    /// [`CALL_LIMIT`].
    pub(super) fn run<T, F>(&self, future: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Fail>> + Send + 'static,
    {
        self.run_within(CALL_LIMIT, future)
    }

    /// [`Db::run`], for a call allowed to take up to `limit`.
    pub(super) fn run_within<T, F>(&self, limit: Duration, future: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Fail>> + Send + 'static,
    {
        self.bridge
            .run(limit, async move { future.await.map_err(Error::from) })
    }

    /// Runs a read (`make` builds it from a pooled connection), once more
    /// on a fresh connection if the first one turned out to be dead (the
    /// database restarted since it was pooled).
    pub(super) fn read<T, F, Fut>(&self, make: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Fn(Object) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Fail>> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.run(async move {
            let first = make(get(&pool).await?).await;
            match first {
                Err(fail) if fail.transient() => make(get(&pool).await?).await,
                other => other,
            }
        })
    }

    /// The pool, for futures that take their own connections.
    pub(super) fn pool(&self) -> Pool {
        self.pool.clone()
    }
}

/// A pooled connection.
pub(super) async fn get(pool: &Pool) -> Result<Object, Fail> {
    pool.get().await.map_err(pool_fail)
}

/// The settings of `url` with the session settings every connection needs
/// added to its own `options`.
/// The TLS connector for `sslmode=require`: the server's certificate must
/// chain to the system's trust store (or `SSL_CERT_FILE`, `SSL_CERT_DIR`)
/// and name the host connected to, as libpq's `verify-full` checks.
///
/// # Errors
/// [`Error::Invalid`] if OpenSSL cannot be set up.
fn tls() -> Result<postgres_openssl::MakeTlsConnector, Error> {
    let builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())
        .map_err(|e| Error::Invalid(format!("cannot set up TLS to the database: {e}")))?;
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}

fn session_config(url: &str) -> Result<tokio_postgres::Config, Error> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
        Error::Invalid("the database URL is not a valid PostgreSQL connection string".into())
    })?;
    let options = match config.get_options() {
        Some(own) if !own.trim().is_empty() => format!("{own} {SESSION}"),
        _ => SESSION.to_owned(),
    };
    config.options(options);
    if config.get_application_name().is_none() {
        config.application_name("xgate");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT);
    }
    // A peer that vanished (a power cut, a partition) is noticed within
    // seconds rather than after the kernel's retransmissions.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .tcp_user_timeout(Duration::from_secs(5));
    Ok(config)
}

/// A connection taken for a transaction. Unless it is handed back with
/// [`Held::release`] once the transaction is over, dropping it closes the
/// connection, which makes the server roll back whatever it was in the
/// middle of: a connection is never pooled inside a transaction.
pub(super) struct Held {
    object: Option<Object>,
}

impl Held {
    /// Takes `object` for a transaction.
    pub(super) fn new(object: Object) -> Held {
        Held {
            object: Some(object),
        }
    }

    /// The connection.
    pub(super) fn client(&self) -> Result<&ClientWrapper, Fail> {
        self.object.as_deref().ok_or_else(|| Fail::Db {
            what: "transaction",
            reason: "the connection was already released".into(),
            transient: false,
        })
    }

    /// Hands the connection back to the pool: its transaction is over.
    pub(super) fn release(mut self) {
        drop(self.object.take());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            // Out of the pool for good; dropping the client closes it.
            drop(Object::take(object));
        }
    }
}

/// Prepares `sql` on `client` (each statement once per connection),
/// pipelined: one round trip at most, none once they are cached.
pub(super) async fn prepare(client: &ClientWrapper, sql: &[&str]) -> Result<Vec<Statement>, Fail> {
    let calls = sql
        .iter()
        .map(|s| Box::pin(client.prepare_cached(s)) as Pending<'_, _>)
        .collect();
    pipeline(calls)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(pg("prepare"))
}

/// A query in a pipeline.
pub(super) type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A query's rows.
pub(super) type Rows = Result<Vec<Row>, tokio_postgres::Error>;

/// Runs `calls` pipelined on one connection: each is polled once, in
/// order, which sends its request (the driver sends a request on a
/// query's first poll), then all are awaited together. The server runs
/// them in that order and their answers share round trips. Results come
/// back in the same order.
pub(super) async fn pipeline<T>(calls: Vec<Pending<'_, T>>) -> Vec<T> {
    enum Slot<'a, T> {
        Waiting(Pending<'a, T>),
        Done(Option<T>),
    }
    let mut slots: Vec<Slot<'_, T>> = calls.into_iter().map(Slot::Waiting).collect();
    let mut first = true;
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for slot in &mut slots {
            if let Slot::Waiting(call) = slot {
                match call.as_mut().poll(cx) {
                    Poll::Ready(out) => *slot = Slot::Done(Some(out)),
                    Poll::Pending => waiting = true,
                }
            }
        }
        // The first pass polled every call in order: all are sent.
        first = false;
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    debug_assert!(!first);
    slots
        .into_iter()
        .filter_map(|slot| match slot {
            Slot::Done(out) => out,
            Slot::Waiting(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_does_not_parse_is_refused_without_repeating_it() {
        let err = match Db::connect("postgres://xgate:s3cret@[::1:5432/db") {
            Err(e) => e,
            Ok(_) => panic!("parsed"),
        };
        assert!(matches!(err, Error::Invalid(_)));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn sessions_get_the_durability_and_timeout_settings() {
        let config = session_config("postgres://u@127.0.0.1:1/db?options=-c%20work_mem%3D8MB")
            .expect("config");
        let options = config.get_options().expect("options");
        assert!(options.starts_with("-c work_mem=8MB "), "{options}");
        assert!(options.contains("synchronous_commit=on"), "{options}");
        assert!(options.contains("statement_timeout="), "{options}");
        assert_eq!(config.get_application_name(), Some("xgate"));
    }

    #[test]
    fn a_pipeline_returns_results_in_order() {
        let bridge = Bridge::new().expect("bridge");
        let out = bridge.run(Duration::from_secs(5), async {
            let calls: Vec<Pending<'_, u32>> = vec![
                Box::pin(async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    1
                }),
                Box::pin(async { 2 }),
                Box::pin(async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    3
                }),
            ];
            Ok(pipeline(calls).await)
        });
        assert_eq!(out.ok(), Some(vec![1, 2, 3]));
    }
}

//! `xgate serve`: run the gateway.
//!
//! With no arguments it runs on its embedded defaults: data in
//! `./xgate-data`, a development PKI created there on first start for the
//! sample agencies, the default policy written beside it, listening on
//! `127.0.0.1:8443`. The first line on stdout is always
//! `xgate: listening on https://ADDR` (tools wait for it); the second is
//! `xgate: tlog-tiles on https://ADDR`, the public listener that serves the
//! log as C2SP tlog-tiles (default `127.0.0.1:8444`); what to run next
//! follows.
//!
//! With `--gateway-id ID` (`gateway_id`, `XGATE_GATEWAY_ID`) it is gateway
//! `ID` of a federation whose registry lists its gateways: it presents
//! `PKI/gateways/ID/tls.crt`, creates a new log with the key in
//! `PKI/gateways/ID/checkpoint.key`, and refuses to start on a log whose
//! key is not the registry's `log_key` for `ID`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use xgate_ledger::pg::PgLog;
use xgate_ledger::{Ledger, Log, NoteSigner, NoteVerifier, OpenOptions};
use xgate_server::store_setting::Store;

use super::error::Error;
use xgate_server::config::{Config, default_federation_quorum};
use xgate_server::crl_watch;
use xgate_server::data_dir;
use xgate_server::envelope::Limits;
use xgate_server::forward::forwarder::Forwarder;
use xgate_server::http::ApiState;
use xgate_server::http::fanout::Hub;
use xgate_server::peer_witness;
use xgate_server::pipeline::{Gateway, Medical};
use xgate_server::pki::{self, CHECKPOINT_KEY, REGISTRY, SAMPLE_AGENCIES, SAMPLE_AUDITORS};
use xgate_server::policy::{DEFAULT_POLICY, Policy};
use xgate_server::public_log::{Access, PublicLog, PublicSite};
use xgate_server::registry::{self, AgencyId, GatewayId, Registry};
use xgate_server::server;
use xgate_server::tls::{self, Tls};
use xgate_server::witnessing::Witnessing;
use xgate_server::witnessing::peers::peer_witnesses;

/// Arguments of `xgate serve`; each overrides the config file and `XGATE_*`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (every field optional; see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: the log, inboxes and replay ids.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PKI directory from `xgate certs init` (default: DATA_DIR/pki, created
    /// with sample agencies if missing).
    #[arg(long, value_name = "DIR")]
    pub pki: Option<PathBuf>,
    /// Where the log and state are kept: `embedded` (the data directory)
    /// or a `postgres://` URL that several gateway processes may share.
    #[arg(long, value_name = "STORE")]
    /// (Taken as text and parsed here: clap would echo a bad value, and
    /// a URL may hold a password.)
    pub store: Option<String>,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the public listener, which serves the log as C2SP
    /// tlog-tiles (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub public_listen: Option<SocketAddr>,
    /// Which gateway of a federation this is (the registry's [[gateway]]
    /// id): required when the registry lists gateways, refused otherwise.
    #[arg(long, value_name = "ID")]
    pub gateway_id: Option<GatewayId>,
}

impl ServeArgs {
    /// Runs the gateway until SIGTERM or SIGINT.
    ///
    /// # Errors
    /// Anything that stops the gateway from starting, naming the file or
    /// setting at fault.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(d) = self.data_dir {
            config.data_dir = d;
        }
        if let Some(p) = self.pki {
            config.pki = Some(p);
        }
        if let Some(store) = &self.store {
            config.store = store
                .parse()
                .map_err(|e| Error::Usage(format!("--store: {e}")))?;
        }
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(l) = self.public_listen {
            config.public_listen = l;
        }
        if let Some(id) = self.gateway_id {
            config.gateway_id = Some(id);
        }
        init_tracing();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            // Appends wait for their group commit on blocking threads; this
            // bounds them (and thus memory) under any load.
            .max_blocking_threads(512)
            .build()
            .map_err(|e| Error::Serve(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(serve(config, stdout))
    }
}

async fn serve(config: Config, stdout: &mut dyn Write) -> Result<(), Error> {
    let prepared = prepare(&config).await?;
    // Before the greeting: whoever reads it may signal at once.
    let shutdown = shutdown_signal();
    let log = Arc::clone(&prepared.ctx.gateway.log);
    let greeting = greeting(
        prepared.addr,
        prepared.public_addr,
        &config,
        &prepared.pki_dir,
        prepared.created_pki,
        log.origin(),
    );
    stdout
        .write_all(greeting.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)?;
    tracing::info!(
        addr = %prepared.addr,
        public_addr = %prepared.public_addr,
        public_client_auth = config.public_client_auth,
        origin = log.origin(),
        size = log.size(),
        "gateway started"
    );
    prepared.run(shutdown).await?;
    tracing::info!(size = log.size(), "gateway stopped");
    Ok(())
}

/// A gateway set up from a [`Config`]: PKI and policy in place, log open,
/// both listeners bound; [`Prepared::run`] serves it. `xgate serve` and
/// `xgate demo` both start their gateway this way.
pub(crate) struct Prepared {
    /// The address it listens on (the port is chosen if the config said 0).
    pub addr: SocketAddr,
    /// The public listener's address (tlog-tiles), chosen likewise.
    pub public_addr: SocketAddr,
    /// The PKI directory in use.
    pub pki_dir: PathBuf,
    /// Whether the development PKI was created just now.
    pub created_pki: bool,
    /// What the request handlers share: the gateway (and its log) among it.
    pub ctx: Arc<ApiState>,
    listener: tokio::net::TcpListener,
    limits: server::ListenerLimits,
    policy_file: PathBuf,
    public: Public,
    witnessing: Witnessing,
    /// Store-and-forward to the federation's other gateways, if any.
    forwarder: Option<Forwarder>,
}

/// The public listener, bound, and what it serves.
struct Public {
    listener: tokio::net::TcpListener,
    site: Arc<PublicSite>,
    limits: server::ListenerLimits,
}

impl Prepared {
    /// Serves both listeners until `shutdown` completes, then drains them
    /// together; or until the commit thread dies, then drains (every
    /// waiting request has had its 503) and fails, so the process exits
    /// non-zero and its supervisor restarts it.
    ///
    /// # Errors
    /// [`Error::Serve`] if a listener fails or the commit thread died.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), Error> {
        let gateway = Arc::clone(&self.ctx.gateway);
        // Gathering cosignatures runs beside the listeners; it holds
        // nothing a drain waits for, so it is simply stopped at the end.
        let witnessing = (!self.witnessing.is_empty())
            .then(|| tokio::spawn(self.witnessing.run(Arc::clone(&gateway))));
        // Forwarding likewise: what it has not settled stays queued,
        // durably, and is sent again after a restart.
        let forwarder = self
            .forwarder
            .map(|f| tokio::spawn(f.run(Arc::clone(&gateway))));
        let stopping = tokio::sync::watch::Sender::new(false);
        let public = {
            let mut stopped = stopping.subscribe();
            tokio::spawn(server::serve_public(
                self.public.listener,
                self.public.site,
                self.public.limits,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ))
        };
        let stop = async {
            tokio::select! {
                () = shutdown => {}
                () = gateway.commit_failed() => {}
            }
            stopping.send_replace(true);
        };
        let served = server::serve(self.listener, self.ctx, self.limits, self.policy_file, stop)
            .await
            .map_err(|e| Error::Serve(format!("the listener failed: {e}")));
        stopping.send_replace(true);
        if let Some(task) = witnessing {
            task.abort();
        }
        if let Some(task) = forwarder {
            task.abort();
        }
        match public.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Serve(format!("the public listener failed: {e}"))),
            Err(e) => return Err(Error::Serve(format!("the public listener stopped: {e}"))),
        }
        served?;
        if gateway.has_commit_failed() {
            return Err(Error::Serve(
                "the commit thread failed (a panic, or the log stopped after a failed write \
                 or barrier), so nothing could be committed any more; stopped (see the log \
                 above; restarting the gateway recovers)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Sets up the gateway `config` describes, creating the development PKI
/// and the default policy on first start, and binds its listener.
///
/// # Errors
/// Anything that stops the gateway from starting, naming the file or
/// setting at fault.
pub(crate) async fn prepare(config: &Config) -> Result<Prepared, Error> {
    // Before anything is created: every file of this process is private.
    data_dir::restrict_umask();
    let narrowed = data_dir::make_private(&config.data_dir).map_err(|e| {
        Error::Serve(format!(
            "cannot make {} private: {e}",
            config.data_dir.display()
        ))
    })?;
    if narrowed > 0 {
        tracing::warn!(
            entries = narrowed,
            "other users could read parts of the data directory; they no longer can"
        );
    }
    let pki_dir = config.pki_dir();
    let created_pki = ensure_pki(config, &pki_dir)?;
    let registry = Arc::new(Registry::load(&pki_dir.join(REGISTRY))?);
    let local = this_gateway(config, &pki_dir, &registry)?;
    let log_key = match local {
        Some(gateway) => federation_log_key(config, &pki_dir, gateway)?,
        None => None,
    };
    let policy_file = config.policy_file();
    ensure_policy(config, &policy_file)?;
    let policy = Policy::load(&policy_file, &registry)?;
    // A missing CRL, or one the CA did not sign, stops the start: the
    // gateway never serves without knowing what is revoked.
    let tls = Arc::new(Tls::load(
        &pki_dir,
        config.gateway_id.as_ref(),
        config.crl_strict,
    )?);
    let witnessing = witnessing(config, &pki_dir, &tls, &registry, local)?;
    let forwarder = match local {
        Some(gateway) => Some(forwarder(config, &tls, &registry, gateway)?),
        None => None,
    };
    let options = OpenOptions {
        origin: config.origin.clone(),
        key: log_key,
        cache_bytes: config.cache_bytes,
        witnessed: witnessing.gates(),
        ..OpenOptions::default()
    };
    let log: Arc<dyn Ledger> = match &config.store {
        Store::Embedded => Arc::new(Log::create_or_open(&config.data_dir, &options)?),
        // Every part but the log's key lives in the database, which other
        // replicas share; the data directory holds the key.
        Store::Postgres(url) => Arc::new(PgLog::open(url, &config.data_dir, &options)?),
    };
    if let Some(gateway) = local {
        // Checked before opening too; this covers a log another process
        // created in between.
        registered_key(gateway, &log.verifier(), &config.data_dir)?;
    }
    let witness = peer_witness(config, &registry, local)?;
    let limits = Limits {
        max_lifetime: config.max_lifetime_secs,
        skew: config.clock_skew_secs,
    };
    let seconds = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    let offer_ttl = seconds(config.offer_ttl_secs);
    // The reserve keeps the embedded store off a full disk. On PostgreSQL
    // a commit writes nothing here (the data directory holds the key), and
    // a database short of space refuses by itself: 503, then recovery.
    let reserve = match &config.store {
        Store::Embedded => config.min_free_bytes,
        Store::Postgres(_) => 0,
    };
    let gateway = Arc::new(
        Gateway::new(Arc::clone(&log), registry, policy, limits)
            .map_err(|e| Error::Serve(e.to_string()))?
            .with_offer_ttl(offer_ttl)
            .with_medical_times(Medical {
                max_grant: seconds(config.max_grant_secs),
                review_due: seconds(config.review_due_secs),
            })
            .with_disk_reserve(config.data_dir.clone(), reserve)
            .with_request_timeout(seconds(config.request_timeout_secs))
            .with_local(config.gateway_id.clone()),
    );
    let (listener, addr) = listen(config.listen).await?;
    let public_listener = tokio::net::TcpListener::bind(config.public_listen)
        .await
        .map_err(|e| {
            Error::Serve(format!(
                "cannot listen on {} (public_listen): {e}",
                config.public_listen
            ))
        })?;
    let public_addr = public_listener
        .local_addr()
        .map_err(|e| Error::Serve(format!("cannot read the public listening address: {e}")))?;
    let access = if config.public_client_auth {
        Access::Federation(Arc::clone(&tls))
    } else {
        Access::Anyone(tls::without_client_auth(
            &pki_dir,
            config.gateway_id.as_ref(),
        )?)
    };
    crl_watch::publish(&tls, &gateway.metrics);
    let closing = tokio::sync::watch::Sender::new(false);
    let streams = Hub::start(
        Arc::clone(&gateway),
        config.max_streams_per_agency,
        closing.subscribe(),
    );
    let public_site = Arc::new(PublicSite {
        gateway: Arc::clone(&gateway),
        log: PublicLog::new(Arc::clone(&log)),
        access,
        witnesses: witnessing.board(),
    });
    let ctx = Arc::new(ApiState {
        gateway,
        tls,
        max_body_bytes: config.max_body_bytes,
        inbox_page: config.inbox_page,
        closing,
        streams,
        witness,
    });
    let (max_connections, public_max_connections) =
        connection_limits(config.max_connections, config.public_max_connections);
    let limits = server::ListenerLimits {
        max_connections,
        header_timeout: Duration::from_secs(config.header_timeout_secs),
        request_timeout: Duration::from_secs(config.request_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        max_connection_age: Duration::from_secs(config.max_connection_age_secs),
        max_connections_per_agency: config.max_connections_per_agency,
        max_handshakes: config.max_handshakes,
        crl_poll: Duration::from_secs(config.crl_poll_secs),
    };
    let public = Public {
        listener: public_listener,
        site: public_site,
        limits: server::ListenerLimits {
            max_connections: public_max_connections,
            ..limits.clone()
        },
    };
    Ok(Prepared {
        addr,
        public_addr,
        pki_dir,
        created_pki,
        ctx,
        listener,
        limits,
        policy_file,
        public,
        witnessing,
        forwarder,
    })
}

/// Creates the development PKI on first start, unless the PKI directory was
/// given explicitly: a named PKI that is missing is an operator's mistake.
/// So is one missing for a gateway of a federation (the development PKI
/// is a single gateway's).
fn ensure_pki(config: &Config, dir: &Path) -> Result<bool, Error> {
    if dir.join(REGISTRY).is_file() {
        return Ok(false);
    }
    if let Some(id) = &config.gateway_id {
        return Err(Error::Serve(format!(
            "gateway_id is {id}, but {} has no {REGISTRY}; create a federation's PKI with \
             `xgate certs init --dir DIR --gateway {id}=https://HOST:PORT --agency ID@{id} ...` \
             and pass --pki DIR",
            dir.display()
        )));
    }
    if config.pki.is_some() {
        return Err(Error::Serve(format!(
            "{} has no {REGISTRY}; create a PKI with `xgate certs init --dir {}`",
            dir.display(),
            dir.display()
        )));
    }
    let ids =
        |names: &[&str]| -> Vec<AgencyId> { names.iter().filter_map(|a| a.parse().ok()).collect() };
    pki::init(dir, &ids(&SAMPLE_AGENCIES), &ids(&SAMPLE_AUDITORS), false)?;
    Ok(true)
}

/// This gateway's entry in a federation's registry (`None` for a single
/// gateway's registry), refusing a federation's registry without
/// `gateway_id`, and `gateway_id` without a federation or not in it.
fn this_gateway<'r>(
    config: &Config,
    pki: &Path,
    registry: &'r Registry,
) -> Result<Option<&'r registry::Gateway>, Error> {
    let file = pki.join(REGISTRY);
    let listed = || {
        registry
            .gateways()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &config.gateway_id {
        None if registry.is_federated() => Err(Error::Serve(format!(
            "{} lists gateways ({}): say which one this is with --gateway-id ID \
             (gateway_id, XGATE_GATEWAY_ID)",
            file.display(),
            listed()
        ))),
        None => Ok(None),
        Some(id) if !registry.is_federated() => Err(Error::Serve(format!(
            "gateway_id is {id}, but {} lists no gateways (it is a single gateway's \
             registry); unset gateway_id, or use a federation's PKI",
            file.display()
        ))),
        Some(id) => registry.gateway(id).map(Some).ok_or_else(|| {
            Error::Serve(format!(
                "gateway {id} is not in {}, which lists gateways {}",
                file.display(),
                listed()
            ))
        }),
    }
}

/// The private key a new log of federation gateway `gateway` is created
/// with: `PKI/gateways/<id>/checkpoint.key`, which must be the key the
/// registry lists. `None` if the file is absent (an operator may remove it
/// once the log exists); then the data directory must hold a log already.
/// A data directory whose log has another key is refused here, before
/// anything is opened.
fn federation_log_key(
    config: &Config,
    pki: &Path,
    gateway: &registry::Gateway,
) -> Result<Option<String>, Error> {
    let path = pki::gateway_dir(pki, &gateway.id).join(CHECKPOINT_KEY);
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => {
            // The message names the file, never what it holds.
            let signer = NoteSigner::from_private_key(&text)
                .map_err(|e| Error::Serve(format!("{}: {e}", path.display())))?;
            registered_key(gateway, &signer.verifier(), &path)?;
            Some(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::Serve(format!("cannot read {}: {e}", path.display()))),
    };
    if config.data_dir.join(xgate_ledger::KEY_FILE).is_file() {
        // Unreadable here: opening the log says why.
        if let Ok(existing) = xgate_ledger::verifier_of(&config.data_dir) {
            registered_key(gateway, &existing, &config.data_dir)?;
        }
    } else if key.is_none() {
        return Err(Error::Serve(format!(
            "{} is missing: gateway {}'s new log in {} is created with it",
            path.display(),
            gateway.id,
            config.data_dir.display()
        )));
    }
    Ok(key)
}

/// Refuses a log key (`found`, of the log or key file at `place`) that is
/// not the one the registry lists for `gateway`, naming both by their ids.
fn registered_key(
    gateway: &registry::Gateway,
    found: &NoteVerifier,
    place: &Path,
) -> Result<(), Error> {
    let label =
        |v: &NoteVerifier| format!("{}+{}", v.name(), xgate_ledger::note::hex_id(v.key_id()));
    let expected = NoteVerifier::parse(&gateway.log_key).map_err(|e| {
        Error::Serve(format!(
            "the registry's log_key for gateway {} is not a verifier key: {e}",
            gateway.id
        ))
    })?;
    if *found == expected {
        return Ok(());
    }
    Err(Error::Serve(format!(
        "{} holds log key {}, but the registry lists {} for gateway {}: it belongs to \
         another gateway or an earlier PKI",
        place.display(),
        label(found),
        label(&expected),
        gateway.id
    )))
}

/// Writes the default policy where the configuration expects one, on first
/// start, so operators have a file to edit and reload.
fn ensure_policy(config: &Config, path: &Path) -> Result<(), Error> {
    if path.exists() {
        return Ok(());
    }
    if config.policy.is_some() {
        return Err(Error::Serve(format!(
            "policy file {} does not exist",
            path.display()
        )));
    }
    xgate_ledger::fsutil::write_atomic(path, DEFAULT_POLICY.as_bytes(), 0o600)
        .map_err(|e| Error::Serve(format!("cannot write {}: {e}", path.display())))
}

fn greeting(
    addr: SocketAddr,
    public_addr: SocketAddr,
    config: &Config,
    pki: &Path,
    created: bool,
    origin: &str,
) -> String {
    let data = config.data_dir.display();
    let pki = pki.display();
    let created = if created {
        format!(
            "created a development PKI in {pki} for agencies state, treasury, gsa, hhs and auditor gao\n"
        )
    } else {
        String::new()
    };
    format!(
        "xgate: listening on https://{addr}\n\
         xgate: tlog-tiles on https://{public_addr}\n\
         {created}\
         log {origin} in {data}; policy {}\n\
         next, in another terminal:\n  \
         echo '{{\"subject\":\"hello\"}}' > record.json\n  \
         xgate send --pki {pki} --as state --to treasury --gateway https://{addr} record.json > receipt.json\n  \
         xgate inbox --pki {pki} --as treasury --gateway https://{addr} --ack\n  \
         xgate audit verify-receipt --receipt receipt.json --key \"$(xgate log key --data-dir {data})\"\n",
        config.policy_file().display()
    )
}

/// Logs to stderr at the level `XGATE_LOG` says (default `info`).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests running the command in-process) keeps the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// A listener bound to `addr` (port 0: a free one), and the address it
/// got: what every listening command (`serve`, `witness serve`, `console`)
/// starts with.
///
/// # Errors
/// [`Error::Serve`] naming the address.
pub(crate) async fn listen(
    addr: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Serve(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Serve(format!("cannot read the listening address: {e}")))?;
    Ok((listener, bound))
}

/// Completes on SIGTERM or SIGINT. The handlers are installed by this
/// call, not when the future is first polled: a signal that arrives once
/// the caller has announced itself (the listening lines) must stop it
/// gracefully, never kill it with the default action.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(term) => {}
            () = wait(interrupt) => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}

/// Descriptors kept for the store, the log's files and the listener.
const RESERVED_FDS: u64 = 64;

/// Raises the open-file limit to the hard limit (a connection is a file
/// descriptor) and returns how many connections each listener can serve:
/// `main` and `public`, or fewer if the limit is lower (the public
/// listener then gets at most a quarter of what fits), so the accept loops
/// never run out of descriptors under a flood of connections and the log
/// always has its own.
fn connection_limits(main: usize, public: usize) -> (usize, usize) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fits = usize::try_from(limit.saturating_sub(RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(2);
    let (main_served, public_served) = split_connections(fits, main, public);
    if (main_served, public_served) != (main, public) {
        tracing::warn!(
            max_connections = main,
            public_max_connections = public,
            open_file_limit = limit,
            serving = main_served,
            public_serving = public_served,
            "the open-file limit allows fewer connections than max_connections and public_max_connections"
        );
    }
    tracing::info!(
        open_file_limit = limit,
        max_connections = main_served,
        public_max_connections = public_served,
        "connection limits"
    );
    (main_served, public_served)
}

/// Shares `fits` descriptors between the listeners: both get what they
/// want if it fits; otherwise the public listener gets at most a quarter
/// (at least 1) and the main listener the rest.
fn split_connections(fits: usize, main: usize, public: usize) -> (usize, usize) {
    if main.saturating_add(public) <= fits {
        return (main, public);
    }
    let public = public.min(fits / 4).max(1);
    (main.min(fits - public).max(1), public)
}

/// The witnesses the log's checkpoints go to: the configured
/// `[[witnesses]]` and, for a gateway of a federation, every peer gateway
/// that lists a `witness_key`, reached as it forwards to them. A
/// checkpoint is served once `witness_quorum` of the first and
/// `federation_quorum` of the peers (default: a majority of them) cosigned
/// it.
fn witnessing(
    config: &Config,
    pki_dir: &Path,
    tls: &Arc<Tls>,
    registry: &Registry,
    local: Option<&xgate_server::registry::Gateway>,
) -> Result<Witnessing, Error> {
    let configured = Witnessing::new(
        &config.witnesses,
        config.witness_quorum,
        Duration::from_millis(config.witness_interval_ms),
        Some(tls::outbound_config(pki_dir)?),
    )
    .map_err(|e| Error::Serve(format!("witnesses: {e}")))?;
    let Some(local) = local else {
        return match config.federation_quorum {
            Some(n) if n > 0 => Err(Error::Serve(format!(
                "federation_quorum is {n}, but this gateway is not in a federation (no \
                 gateway_id): it has no peers to cosign; unset federation_quorum"
            ))),
            _ => Ok(configured),
        };
    };
    let peers = peer_witnesses(tls, registry, &local.id)?;
    let quorum = config
        .federation_quorum
        .unwrap_or_else(|| default_federation_quorum(peers.len()));
    let witnessing = configured
        .with_peers(peers, quorum)
        .map_err(|e| Error::Serve(format!("witnesses: {e}")))?;
    tracing::info!(
        witness_quorum = config.witness_quorum,
        federation_quorum = quorum,
        "checkpoints are served once cosigned by the quorums"
    );
    Ok(witnessing)
}

/// The witness gateway `local` runs for its peers' logs, with its state
/// in `DATA_DIR/witness` and the key `witness_key` names (default
/// `PKI/gateways/<id>/witness.key`), which must be the registry's
/// `witness_key` for `local`. `None` for a single gateway, and for a
/// gateway whose registry entry lists no `witness_key`.
fn peer_witness(
    config: &Config,
    registry: &Registry,
    local: Option<&xgate_server::registry::Gateway>,
) -> Result<Option<Arc<xgate_ledger::witness::Witness>>, Error> {
    let Some(local) = local else {
        if config.witness_key.is_some() {
            return Err(Error::Serve(
                "witness_key is set, but this gateway is not in a federation (no gateway_id): \
                 only a federation's gateways witness their peers; unset witness_key"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let witness = peer_witness::open(
        &config.data_dir,
        &config.pki_dir(),
        config.witness_key.as_deref(),
        registry,
        &local.id,
    )
    .map_err(|e| Error::Serve(format!("the witness of the peers' logs: {e}")))?;
    if let Some(witness) = &witness {
        let mut origins: Vec<&str> = witness.origins().collect();
        origins.sort_unstable();
        tracing::info!(
            name = witness.cosigner().name(),
            logs = origins.join(" "),
            "witnessing the peers' logs at /witness/add-checkpoint"
        );
    }
    Ok(witness.map(Arc::new))
}

/// The forwarder of gateway `local` to every other gateway of the
/// registry, each reached with a TLS configuration that presents
/// `local`'s certificate, believes only that peer's, and checks it
/// against the CRL `tls` has in force.
fn forwarder(
    config: &Config,
    tls: &Arc<Tls>,
    registry: &Registry,
    local: &xgate_server::registry::Gateway,
) -> Result<Forwarder, Error> {
    let peers = registry
        .gateways()
        .filter(|g| g.id != local.id)
        .map(|peer| Ok((peer.clone(), tls::peer_client_config(tls, peer)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    Forwarder::new(
        peers,
        Duration::from_secs(config.request_timeout_secs),
        // What a peer with the same max_body_bytes takes (twice that,
        // plus room for the JSON around it).
        config.max_body_bytes.saturating_mul(2),
        tls.changes(),
    )
    .map_err(|e| Error::Serve(format!("forwarding: {e}")))
}

#[cfg(test)]
mod tests {
    use super::split_connections;

    #[test]
    fn the_listeners_share_the_descriptors_that_fit() {
        assert_eq!(split_connections(10_000, 4096, 1024), (4096, 1024));
        assert_eq!(split_connections(960, 4096, 1024), (720, 240));
        assert_eq!(split_connections(960, 100, 1024), (100, 240));
        assert_eq!(split_connections(960, 4096, 10), (950, 10));
        assert_eq!(split_connections(2, 4096, 1024), (1, 1));
    }
}

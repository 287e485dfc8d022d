//! A real PostgreSQL server for tests, started by the harness itself.
//!
//! [`available`] gives the server every test of one test process shares,
//! started on first use:
//!
//! - If `XGATE_TEST_POSTGRES` holds a libpq URL
//!   (`postgres://user@127.0.0.1:5432/postgres`), that server is used as it
//!   is: never started, stopped or restarted.
//! - Otherwise a throwaway cluster is made from Debian's binaries
//!   (`pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`,
//!   else `initdb` on `PATH`): `initdb -A trust -U xgate` into a fresh
//!   directory `$TMPDIR/xgate-pg-<pid>-<random>`, then `pg_ctl start` on a
//!   free loopback port with the durability settings on (`fsync`,
//!   `synchronous_commit`, `full_page_writes`): the crash tests depend on
//!   them. PostgreSQL refuses to run as root, so as root the binaries run as
//!   the `postgres` system user (`setpriv`), which owns the directory. It
//!   serves TLS with a certificate from a CA of its own
//!   ([`TestPostgres::tls_ca`], [`crate::postgres_tls`]).
//!
//! Each test takes a fresh, empty database with [`TestPostgres::database`],
//! dropped when the [`TestDatabase`] drops.
//!
//! # No server left behind
//! A `static` is never dropped, so the cluster cannot be stopped by a
//! destructor. Instead a *watchdog* owns it: a tiny `sh` started before the
//! server, in its own process group and ignoring the terminal's signals,
//! that blocks reading a pipe whose only writer is the test process. However
//! that process ends (returns, panics, Ctrl-C, `kill -9`), the kernel closes
//! the pipe; the watchdog then stops the server (`pg_ctl stop -m immediate`)
//! and removes the directory. A cluster the watchdog could not clean up (the
//! watchdog itself killed, a reboot) is swept by the next harness to start:
//! a directory whose pid is gone has its server stopped (if it still runs
//! there) and is removed.
//!
//! ```no_run
//! let pg = xgate_tests::require_postgres!(); // skips the test if not installed
//! let db = pg.database();
//! db.psql("CREATE TABLE t (v int)").expect("create");
//! println!("connect to {}", db.url());
//! ```

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Once, PoisonError};

/// The one line printed (once per test process) when the tests skip.
pub const SKIP_LINE: &str = "postgres tests skipped: PostgreSQL is not installed \
                             (set XGATE_TEST_POSTGRES or install Debian's postgresql)";
/// The variable naming an existing server to use instead of a throwaway one.
pub const URL_VAR: &str = "XGATE_TEST_POSTGRES";
/// The variable that, set to `1`, makes a missing PostgreSQL fail the tests.
pub const REQUIRE_VAR: &str = "XGATE_REQUIRE_POSTGRES";

/// The throwaway cluster's superuser (trusted on loopback, no password).
const SUPERUSER: &str = "xgate";
const DIR_PREFIX: &str = "xgate-pg-";
/// Switches to the `postgres` user, as root (no PAM session, unlike `runuser`).
const AS_POSTGRES: [&str; 5] = [
    "setpriv",
    "--reuid=postgres",
    "--regid=postgres",
    "--init-groups",
    "--",
];
/// Waits for EOF on stdin (the test process gone), then stops the server
/// and removes the cluster directory. `$1` is the directory, the rest the
/// `pg_ctl` command. Ignored signals stay ignored in `cat` and `pg_ctl`.
const WATCHDOG: &str = r#"trap '' HUP INT QUIT TERM PIPE
dir=$1; shift
cat >/dev/null
"$@" -D "$dir/data" -m immediate stop
rm -rf -- "$dir""#;

/// Why the harness could not set up or drive a server.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// A program could not be started at all.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// How it exited.
        status: ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// A file operation on the cluster directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Running as root, the binaries need the `postgres` user.
    #[error("running as root needs the `postgres` system user, which does not exist")]
    NoPostgresUser,
    /// The server did not start (or not within 30 s); its log says why.
    #[error("PostgreSQL did not start on 127.0.0.1:{port}; its log ends:\n{log}")]
    Start {
        /// The port it was given.
        port: u16,
        /// The end of its log.
        log: String,
    },
    /// Every free port tried was taken before the server could bind it.
    #[error("no free loopback port for PostgreSQL after {0} attempts")]
    NoPort(usize),
    /// Stopping, starting and crashing need the harness's own cluster.
    #[error("{0} needs a throwaway cluster, not the server XGATE_TEST_POSTGRES names")]
    NotThrowaway(&'static str),
    /// `XGATE_TEST_POSTGRES` is not a libpq URL.
    #[error("XGATE_TEST_POSTGRES is not a postgres:// or postgresql:// URL")]
    BadUrl,
    /// No `psql` to create databases with.
    #[error("psql was not found (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH)")]
    NoPsql,
}

/// Why there is no server for the tests.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Unavailable {
    /// Neither `XGATE_TEST_POSTGRES` nor PostgreSQL's binaries: skip.
    #[error("PostgreSQL is not installed (set XGATE_TEST_POSTGRES or install Debian's postgresql)")]
    NotInstalled,
    /// There should be a server but it failed: never a reason to skip.
    #[error("the test PostgreSQL server is unusable: {0}")]
    Failed(#[source] Arc<PostgresError>),
}

impl From<PostgresError> for Unavailable {
    fn from(e: PostgresError) -> Unavailable {
        Unavailable::Failed(Arc::new(e))
    }
}

/// A PostgreSQL server tests can use: the harness's throwaway cluster or
/// the one `XGATE_TEST_POSTGRES` names.
#[derive(Debug)]
pub struct TestPostgres {
    /// The maintenance database, where databases are created and dropped.
    admin_url: String,
    psql: PathBuf,
    cluster: Option<Cluster>,
}

/// The harness's own cluster.
#[derive(Debug)]
struct Cluster {
    bindir: PathBuf,
    /// Holds `data/`, `server.log` and the Unix socket.
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    /// Serialises stop and start.
    state: Mutex<()>,
    /// Stops the server and removes `dir` once its stdin closes.
    watchdog: Child,
}

/// A fresh, empty database of the test server, dropped (with its
/// connections) when this drops.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    psql: PathBuf,
}

static SHARED: LazyLock<Result<TestPostgres, Unavailable>> = LazyLock::new(TestPostgres::from_env);

/// The server shared by every test of this process, started on first use.
pub fn available() -> Result<&'static TestPostgres, Unavailable> {
    SHARED.as_ref().map_err(Clone::clone)
}

/// The shared server, or `None` after printing [`SKIP_LINE`] (once per
/// process, past the test harness's capture) if PostgreSQL is not installed.
///
/// # Panics
/// If it is not installed and `XGATE_REQUIRE_POSTGRES=1`, or if it is
/// installed but cannot be used.
pub fn postgres_or_skip() -> Option<&'static TestPostgres> {
    or_skip(available())
}

/// `result`'s server, or `None` after printing [`SKIP_LINE`] if PostgreSQL
/// is not installed; for [`TestPostgres::private`].
///
/// # Panics
/// As [`postgres_or_skip`].
pub fn or_skip<T>(result: Result<T, Unavailable>) -> Option<T> {
    static SKIPPED: Once = Once::new();
    let required = std::env::var_os(REQUIRE_VAR).is_some_and(|v| v == "1");
    match result {
        Ok(server) => Some(server),
        Err(Unavailable::NotInstalled) if !required => {
            // Straight to fd 2: the test harness captures `eprintln!`.
            SKIPPED.call_once(|| {
                let _ = writeln!(std::io::stderr(), "{SKIP_LINE}");
            });
            None
        }
        Err(e) if required => panic!("{REQUIRE_VAR}=1: {e}"),
        Err(e) => panic!("{e}"),
    }
}

/// The prefix of a test binary whose gateways keep their log and state in
/// PostgreSQL: `gateway/tests/pg_suite.rs` runs the contract suite's files
/// again that way, so both backends pass the same tests in one
/// `cargo test --workspace`.
pub const SUITE_PREFIX: &str = "pg_suite";

/// The `XGATE_STORE` for a gateway on data directory `data`, if this test
/// binary is a PostgreSQL suite ([`SUITE_PREFIX`]): a fresh database of the
/// shared server the first time `data` is seen, the same one after (a
/// gateway restarted on its data directory finds its log again). `None`
/// for every other test binary, and (after [`SKIP_LINE`]) where
/// PostgreSQL is not installed.
///
/// # Panics
/// As [`postgres_or_skip`].
pub fn suite_store(data: &Path) -> Option<String> {
    if !in_suite() {
        return None;
    }
    let server = postgres_or_skip()?;
    let mut databases = suite_databases();
    let database = databases
        .entry(data.to_path_buf())
        .or_insert_with(|| server.database());
    Some(database.url().to_owned())
}

/// The `XGATE_STORE` [`suite_store`] gave the gateway on `data`, if it
/// gave one: what an offline command run on that data directory needs
/// (`xgate log ... --data-dir DATA`, [`crate::Xgate::run`]).
pub fn known_suite_store(data: &Path) -> Option<String> {
    if !in_suite() {
        return None;
    }
    suite_databases()
        .get(data)
        .map(|database| database.url().to_owned())
}

/// Whether this test binary is a PostgreSQL suite ([`SUITE_PREFIX`]).
fn in_suite() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.file_name()?
                .to_str()
                .map(|n| n.starts_with(SUITE_PREFIX))
        })
        .unwrap_or(false)
}

/// The suite's database of each data directory; never dropped: they go
/// with the throwaway cluster when the process ends (on a server named by
/// `XGATE_TEST_POSTGRES` they stay until it is cleaned).
fn suite_databases() -> std::sync::MutexGuard<'static, HashMap<PathBuf, TestDatabase>> {
    static DATABASES: LazyLock<Mutex<HashMap<PathBuf, TestDatabase>>> =
        LazyLock::new(Default::default);
    DATABASES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared server ([`postgres_or_skip`]), or with an argument the server
/// of a `Result<_, Unavailable>` ([`or_skip`]); returns from the test if
/// PostgreSQL is not installed.
#[macro_export]
macro_rules! require_postgres {
    () => {
        $crate::require_postgres!($crate::postgres::available())
    };
    ($result:expr) => {
        match $crate::postgres::or_skip($result) {
            ::core::option::Option::Some(server) => server,
            ::core::option::Option::None => return,
        }
    };
}

impl TestPostgres {
    /// `XGATE_TEST_POSTGRES`'s server, checked with a query, else a new
    /// throwaway cluster.
    fn from_env() -> Result<TestPostgres, Unavailable> {
        let bindir = find_bindir();
        let url = std::env::var(URL_VAR).unwrap_or_default();
        if url.is_empty() {
            let bindir = bindir.ok_or(Unavailable::NotInstalled)?;
            return Ok(TestPostgres::start_cluster(bindir)?);
        }
        with_database(&url, "postgres")?;
        let psql = find_psql(bindir.as_deref()).ok_or(PostgresError::NoPsql)?;
        let server = TestPostgres {
            admin_url: url,
            psql,
            cluster: None,
        };
        server.psql("SELECT 1")?;
        Ok(server)
    }

    /// A throwaway cluster of the caller's own, whatever
    /// `XGATE_TEST_POSTGRES` says, stopped and removed when it drops: for a
    /// test that crashes the server while other tests of the process run.
    pub fn private() -> Result<TestPostgres, Unavailable> {
        let bindir = find_bindir().ok_or(Unavailable::NotInstalled)?;
        Ok(TestPostgres::start_cluster(bindir)?)
    }

    fn start_cluster(bindir: PathBuf) -> Result<TestPostgres, PostgresError> {
        let as_postgres = rustix::process::geteuid().is_root();
        let owner = if as_postgres {
            Some(postgres_ids()?)
        } else {
            None
        };
        let psql = find_psql(Some(&bindir)).ok_or(PostgresError::NoPsql)?;
        sweep_stale(&bindir, as_postgres);
        let temp = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(io("create the cluster directory"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(temp.path(), Some(uid), Some(gid))
                .map_err(io("hand the cluster directory to postgres"))?;
        }
        let dir = temp.path().to_path_buf();
        run(
            "initdb",
            command(as_postgres, &bindir.join("initdb"), &dir)
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-A", "trust", "-U", SUPERUSER, "--no-sync"])
                .args(["-E", "UTF8", "--locale=C"]),
        )?;
        crate::postgres_tls::prepare(&dir, &dir.join("data"), owner)
            .map_err(io("give the cluster its TLS certificate"))?;
        let mut watchdog = Command::new("/bin/sh");
        watchdog
            .args(["-c", WATCHDOG, "xgate-pg-watchdog"])
            .arg(&dir);
        if as_postgres {
            watchdog.args(AS_POSTGRES);
        }
        let watchdog = watchdog
            .arg(bindir.join("pg_ctl"))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the terminal's process group: Ctrl-C kills the tests,
            // not the one who cleans up after them.
            .process_group(0)
            .spawn()
            .map_err(|source| PostgresError::Spawn {
                program: "sh".into(),
                source,
            })?;
        // The watchdog owns the directory now: dropping `cluster` (on an
        // error below) closes its pipe and it removes everything.
        let _ = temp.keep();
        let mut cluster = Cluster {
            bindir,
            dir,
            port: 0,
            as_postgres,
            state: Mutex::new(()),
            watchdog,
        };
        cluster.port = cluster.start_on_free_port()?;
        Ok(TestPostgres {
            admin_url: format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", cluster.port),
            psql,
            cluster: Some(cluster),
        })
    }

    /// A fresh, empty database (from `template0`), named uniquely.
    ///
    /// # Panics
    /// If the server refuses to create it: nothing a test could go on from.
    pub fn database(&self) -> TestDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Unique across processes sharing an external server, < 64 bytes.
        let name = format!("xgate_test_{}_{n}_{nanos:08x}", std::process::id());
        let url = with_database(&self.admin_url, &name)
            .unwrap_or_else(|e| panic!("test database {name}: {e}"));
        self.psql(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        TestDatabase {
            name,
            url,
            admin_url: self.admin_url.clone(),
            psql: self.psql.clone(),
        }
    }

    /// Runs `sql` with `psql` in the maintenance database (`postgres`) and
    /// returns its rows, unaligned (`|` between columns), one per line.
    pub fn psql(&self, sql: &str) -> Result<String, PostgresError> {
        run_psql(&self.psql, &self.admin_url, sql)
    }

    /// The CA that signed the throwaway cluster's TLS certificate (it
    /// serves TLS, and refuses [`crate::postgres_tls::TLS_ONLY_ROLE`]
    /// without it); `None` for `XGATE_TEST_POSTGRES`'s server.
    pub fn tls_ca(&self) -> Option<PathBuf> {
        self.cluster
            .as_ref()
            .map(|c| c.dir.join(crate::postgres_tls::CA_FILE))
    }

    /// The URL of the maintenance database (`postgres`), as the server's
    /// superuser.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The `psql` the harness uses, for tests that need a client of their own.
    pub fn psql_program(&self) -> &Path {
        &self.psql
    }

    /// Whether this is the harness's own cluster (which can be stopped).
    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }

    /// The throwaway cluster's directory (`data/`, `server.log`, socket).
    pub fn cluster_dir(&self) -> Option<&Path> {
        self.cluster.as_ref().map(|c| c.dir.as_path())
    }

    /// Crashes the server (`pg_ctl stop -m immediate`: no checkpoint, the
    /// next start replays the WAL) and waits until it has exited.
    pub fn stop(&self) -> Result<(), PostgresError> {
        let cluster = self.cluster("stop")?;
        let _state = cluster.state.lock().unwrap_or_else(PoisonError::into_inner);
        cluster.stop()
    }

    /// Starts the server again on the same port and waits until it accepts
    /// connections (at most 30 s).
    pub fn start(&self) -> Result<(), PostgresError> {
        let cluster = self.cluster("start")?;
        let _state = cluster.state.lock().unwrap_or_else(PoisonError::into_inner);
        cluster.start(cluster.port)
    }

    /// [`stop`](TestPostgres::stop) (a crash), then
    /// [`start`](TestPostgres::start).
    pub fn restart(&self) -> Result<(), PostgresError> {
        let cluster = self.cluster("restart")?;
        let _state = cluster.state.lock().unwrap_or_else(PoisonError::into_inner);
        cluster.stop()?;
        cluster.start(cluster.port)
    }

    /// The running postmaster's process id.
    pub fn server_pid(&self) -> Result<u32, PostgresError> {
        let cluster = self.cluster("server_pid")?;
        let pidfile = fs::read_to_string(cluster.dir.join("data/postmaster.pid"))
            .map_err(io("read postmaster.pid (is the server running?)"))?;
        pidfile
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or(PostgresError::Io {
                what: "parse postmaster.pid",
                source: std::io::ErrorKind::InvalidData.into(),
            })
    }

    /// Everything the throwaway server has logged, across restarts.
    pub fn server_log(&self) -> Result<String, PostgresError> {
        let cluster = self.cluster("server_log")?;
        let log = fs::read(cluster.dir.join("server.log")).map_err(io("read server.log"))?;
        Ok(String::from_utf8_lossy(&log).into_owned())
    }

    fn cluster(&self, what: &'static str) -> Result<&Cluster, PostgresError> {
        self.cluster
            .as_ref()
            .ok_or(PostgresError::NotThrowaway(what))
    }
}

impl Cluster {
    /// Starts on a port the kernel just had free, again on a new one if
    /// someone else took it in between.
    fn start_on_free_port(&self) -> Result<u16, PostgresError> {
        const ATTEMPTS: usize = 8;
        for _ in 0..ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(io("find a free loopback port"))?
                .port();
            match self.start(port) {
                Err(PostgresError::Start { log, .. }) if log.contains("already in use") => {}
                other => return other.map(|()| port),
            }
        }
        Err(PostgresError::NoPort(ATTEMPTS))
    }

    fn start(&self, port: u16) -> Result<(), PostgresError> {
        let log = self.dir.join("server.log");
        let before = fs::metadata(&log).map_or(0, |m| m.len());
        // pg_ctl hands `-o` to `sh`: the directory is quoted.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=on \
             -c synchronous_commit=on -c full_page_writes=on \
             -c max_connections=200 -c shared_buffers=64MB -c ssl=on",
            shell_quote(&self.dir.to_string_lossy())
        );
        let started = run(
            "pg_ctl start",
            command(self.as_postgres, &self.bindir.join("pg_ctl"), &self.dir)
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "30", "-o", &options, "start"]),
        );
        match started {
            Ok(_) => Ok(()),
            Err(PostgresError::Failed { .. }) => {
                let text = fs::read(&log).unwrap_or_default();
                let start = usize::try_from(before).unwrap_or(0).min(text.len());
                let log = String::from_utf8_lossy(&text[start..]).into_owned();
                Err(PostgresError::Start { port, log })
            }
            Err(e) => Err(e),
        }
    }

    fn stop(&self) -> Result<(), PostgresError> {
        run(
            "pg_ctl stop",
            command(self.as_postgres, &self.bindir.join("pg_ctl"), &self.dir)
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"]),
        )
        .map(drop)
    }
}

impl Drop for Cluster {
    /// Only a private cluster drops: the watchdog sees EOF, stops the server
    /// and removes the directory; waiting for it makes that done on return.
    fn drop(&mut self) {
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }
}

impl TestDatabase {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL, `postgres://xgate@127.0.0.1:PORT/NAME` for the throwaway
    /// cluster.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` with `psql` in this database and returns its rows,
    /// unaligned (`|` between columns), one per line.
    pub fn psql(&self, sql: &str) -> Result<String, PostgresError> {
        run_psql(&self.psql, &self.url, sql)
    }
}

impl Drop for TestDatabase {
    /// Best effort: a test that left the server stopped leaves the database
    /// to go with the cluster.
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = run_psql(&self.psql, &self.admin_url, &sql);
    }
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    // Debian's libpq-dev has a pg_config naming a bindir without a server.
    if let Some(dir) = from_pg_config.filter(|d| has_server(d)) {
        return Some(dir);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    // Through symlinks: pg_ctl finds `postgres` next to its real self.
    let initdb = fs::canonicalize(on_path("initdb")?).ok()?;
    initdb
        .parent()
        .map(Path::to_path_buf)
        .filter(|d| has_server(d))
}

fn find_psql(bindir: Option<&Path>) -> Option<PathBuf> {
    bindir
        .map(|dir| dir.join("psql"))
        .filter(|psql| psql.is_file())
        .or_else(|| on_path("psql"))
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// The `postgres` user's uid and gid.
fn postgres_ids() -> Result<(u32, u32), PostgresError> {
    let out = Command::new("getent")
        .args(["passwd", "postgres"])
        .output()
        .map_err(|source| PostgresError::Spawn {
            program: "getent".into(),
            source,
        })?;
    let entry = String::from_utf8_lossy(&out.stdout);
    let mut fields = entry.trim().split(':').skip(2).map(|f| f.parse().ok());
    match (fields.next().flatten(), fields.next().flatten()) {
        (Some(uid), Some(gid)) if out.status.success() => Ok((uid, gid)),
        _ => Err(PostgresError::NoPostgresUser),
    }
}

/// Stops and removes the clusters of test processes that are gone and whose
/// watchdog could not clean up.
fn sweep_stale(bindir: &Path, as_postgres: bool) {
    // Without /proc every process would look gone.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if alive(pid) {
            continue;
        }
        let dir = entry.path();
        let data = dir.join("data");
        // pg_ctl signals whatever process has the pid in postmaster.pid: only
        // if it is this cluster's postmaster (after a reboot it may not be).
        let postmaster = fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|p| p.lines().next().map(str::to_owned))
            .and_then(|pid| fs::read(format!("/proc/{}/cmdline", pid.trim())).ok());
        let ours = data.to_str().map(str::as_bytes);
        if let (Some(cmdline), Some(ours)) = (postmaster, ours)
            && cmdline.split(|&b| b == 0).any(|arg| arg == ours)
        {
            let _ = run(
                "pg_ctl stop",
                command(as_postgres, &bindir.join("pg_ctl"), Path::new("/"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "stop"]),
            );
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Whether process `pid` exists and is not a zombie (which holds no files:
/// a killed test process may wait long for a busy init to reap it).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(!stat.rsplit_once(") ")?.1.starts_with('Z')))
        .unwrap_or(false)
}

/// `program` run in `dir`, as the `postgres` user if `as_postgres`.
fn command(as_postgres: bool, program: &Path, dir: &Path) -> Command {
    let mut command = if as_postgres {
        let mut command = Command::new(AS_POSTGRES[0]);
        command.args(&AS_POSTGRES[1..]).arg(program);
        command
    } else {
        Command::new(program)
    };
    // The binaries look up their own path and fail in a cwd they cannot read.
    command.current_dir(dir);
    command
}

/// Runs `command` to completion; an error unless it succeeds.
fn run(program: &str, command: &mut Command) -> Result<Output, PostgresError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PostgresError::Spawn {
            program: program.into(),
            source,
        })?;
    if out.status.success() {
        return Ok(out);
    }
    Err(PostgresError::Failed {
        program: program.into(),
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

fn run_psql(psql: &Path, url: &str, sql: &str) -> Result<String, PostgresError> {
    let out = run(
        "psql",
        Command::new(psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10"),
    )?;
    let rows = String::from_utf8_lossy(&out.stdout);
    Ok(rows.strip_suffix('\n').unwrap_or(&rows).to_owned())
}

/// `url` with its database replaced by `name`, keeping any parameters.
fn with_database(url: &str, name: &str) -> Result<String, PostgresError> {
    let rest = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or(PostgresError::BadUrl)?;
    let scheme = &url[..url.len() - rest.len()];
    let (location, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let authority = location.split('/').next().unwrap_or(location);
    Ok(format!("{scheme}{authority}/{name}{query}"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> PostgresError {
    move |source| PostgresError::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_path() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/db"),
            (
                "postgresql://u:p%2F@h/x?sslmode=disable",
                "postgresql://u:p%2F@h/db?sslmode=disable",
            ),
            ("postgres://h", "postgres://h/db"),
            (
                "postgres://h?sslmode=require",
                "postgres://h/db?sslmode=require",
            ),
            ("postgres://[::1]:5433/", "postgres://[::1]:5433/db"),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "db").expect(url), want);
        }
        assert!(matches!(
            with_database("host=h dbname=x", "db"),
            Err(PostgresError::BadUrl)
        ));
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}

//! The PostgreSQL test harness against a real server: databases, a crash
//! and restart, durability settings, who runs the server, and that no
//! server or directory outlives the test process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use xgate_tests::postgres::{TestPostgres, available};
use xgate_tests::require_postgres;

/// Tests share one server; the one that crashes it runs alone.
static SERVER: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(PoisonError::into_inner)
}

/// Tables outside the system schemas.
const USER_TABLES: &str = "SELECT count(*) FROM pg_tables \
                           WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";

#[test]
fn two_databases_are_distinct_and_empty() {
    let pg = require_postgres!();
    let _shared = shared();
    let (a, b) = (pg.database(), pg.database());
    assert_ne!(a.name(), b.name());
    assert_ne!(a.url(), b.url());
    for db in [&a, &b] {
        assert_eq!(
            db.psql("SELECT current_database()").expect("query"),
            db.name()
        );
        assert_eq!(db.psql(USER_TABLES).expect("query"), "0");
        assert!(db.url().starts_with("postgres://"), "{}", db.url());
        assert!(
            db.url().contains(&format!("/{}", db.name())),
            "{}",
            db.url()
        );
    }
    a.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('only in a')")
        .expect("write a");
    assert_eq!(a.psql("SELECT v FROM t").expect("read a"), "only in a");
    assert_eq!(b.psql(USER_TABLES).expect("query b"), "0");
    assert!(b.psql("SELECT v FROM t").is_err(), "b sees a's table");
}

#[test]
fn a_dropped_database_is_gone_even_with_a_client_connected() {
    let pg = require_postgres!();
    let _shared = shared();
    let db = pg.database();
    let name = db.name().to_owned();
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(pg.psql(&exists).expect("query"), "1");
    // A client still connected: a plain DROP DATABASE would refuse.
    let mut client = Command::new(pg.psql_program())
        .args(["-X", "-q", "-d", db.url(), "-c", "SELECT pg_sleep(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start psql");
    let connected = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
    wait_for("the client to connect", || {
        pg.psql(&connected).expect("query") != "0"
    });
    let started = Instant::now();
    drop(db);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(pg.psql(&exists).expect("query"), "0");
    let status = client.wait().expect("wait for psql");
    assert!(!status.success(), "the client's session survived the drop");
}

#[test]
fn a_committed_row_survives_a_crash() {
    let pg = require_postgres!();
    if !pg.is_throwaway() {
        assert!(pg.restart().is_err(), "restarted a server it does not own");
        return;
    }
    let _alone = SERVER.write().unwrap_or_else(PoisonError::into_inner);
    let db = pg.database();
    db.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('before stop')")
        .expect("write");
    let first = pg.server_pid().expect("server pid");

    pg.stop().expect("stop");
    assert!(pg.server_pid().is_err(), "postmaster.pid outlived the stop");
    assert!(db.psql("SELECT 1").is_err(), "a stopped server answered");
    assert!(pg.stop().is_err(), "stopped a stopped server");
    pg.start().expect("start");
    let second = pg.server_pid().expect("server pid");
    assert_ne!(first, second);
    assert_eq!(db.psql("SELECT v FROM t").expect("read"), "before stop");

    db.psql("INSERT INTO t VALUES ('before restart')")
        .expect("write");
    pg.restart().expect("restart");
    assert_ne!(pg.server_pid().expect("server pid"), second);
    assert_eq!(
        db.psql("SELECT v FROM t ORDER BY v").expect("read"),
        "before restart\nbefore stop"
    );

    // Both stops were crashes: no shutdown checkpoint, WAL replayed.
    let log = pg.server_log().expect("log");
    assert_eq!(
        log.matches("received immediate shutdown request").count(),
        2
    );
    assert_eq!(
        log.matches("database system was not properly shut down; automatic recovery in progress")
            .count(),
        2,
        "{log}"
    );
}

#[test]
fn durability_settings_are_on() {
    let pg = require_postgres!();
    let _shared = shared();
    if !pg.is_throwaway() {
        return; // XGATE_TEST_POSTGRES's settings are its operator's.
    }
    for (setting, want) in [
        ("fsync", "on"),
        ("synchronous_commit", "on"),
        ("full_page_writes", "on"),
        ("listen_addresses", "127.0.0.1"),
        ("max_connections", "200"),
        ("shared_buffers", "64MB"),
    ] {
        assert_eq!(
            pg.psql(&format!("SHOW {setting}")).expect("show"),
            want,
            "{setting}"
        );
    }
    let url = pg.admin_url();
    assert!(url.starts_with("postgres://xgate@127.0.0.1:"), "{url}");
}

#[test]
fn the_server_runs_as_postgres_when_tests_run_as_root() {
    let pg = require_postgres!();
    let _shared = shared();
    if !pg.is_throwaway() {
        return;
    }
    let pid = pg.server_pid().expect("server pid");
    let owner = uid_of(pid);
    let want = if rustix::process::geteuid().is_root() {
        let id = Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&id.stdout)
            .trim()
            .parse()
            .expect("uid")
    } else {
        rustix::process::geteuid().as_raw()
    };
    assert_eq!(owner, want);
    assert_ne!(owner, 0, "the server runs as root");
}

#[test]
fn a_private_cluster_is_gone_when_dropped() {
    let Some(pg) = xgate_tests::postgres::or_skip(TestPostgres::private()) else {
        return;
    };
    let dir = pg.cluster_dir().expect("throwaway").to_path_buf();
    let pid = pg.server_pid().expect("server pid");
    assert_eq!(pg.psql("SELECT 1").expect("query"), "1");
    assert_ne!(pg.admin_url(), available().expect("shared").admin_url());
    drop(pg);
    assert!(!dir.exists(), "{} outlived its cluster", dir.display());
    wait_for("the server to exit", || !running(pid));
}

/// What the child prints before its cluster's pid and directory.
const CHILD_MARKER: &str = "xgate-pg-child: ";

/// The harness's child process: starts the shared cluster, says where it
/// is, and waits to be killed.
#[test]
#[ignore = "run by a_killed_test_process_leaves_no_server"]
fn child_holding_the_shared_cluster() {
    if std::env::var_os("XGATE_PG_CHILD").is_none() {
        return;
    }
    let pg = available().expect("postgres");
    let dir = pg.cluster_dir().expect("throwaway");
    // libtest may have begun a line (`test NAME ... `): a marker, not a line.
    println!(
        "{CHILD_MARKER}{} {}",
        pg.server_pid().expect("pid"),
        dir.display()
    );
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_killed_test_process_leaves_no_server() {
    let pg = require_postgres!();
    if !pg.is_throwaway() {
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_holding_the_shared_cluster"])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env("XGATE_PG_CHILD", "1")
        .env_remove(xgate_tests::postgres::URL_VAR)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("piped");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| Some(l.split_once(CHILD_MARKER)?.1.to_owned()));
    let Some(line) = line else {
        let _ = child.kill();
        panic!("the child did not start a cluster");
    };
    let (pid, dir) = line.split_once(' ').expect("pid and dir");
    let (pid, dir): (u32, &Path) = (pid.parse().expect("pid"), Path::new(dir));
    assert!(dir.exists() && running(pid));
    // SIGKILL: no destructor, no atexit, only the kernel closing its pipe.
    child.kill().expect("kill the child");
    child.wait().expect("reap the child");
    wait_for("the watchdog to clean up", || {
        !dir.exists() && !running(pid)
    });
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

/// The real uid of process `pid`.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next()?.parse().ok())
        .expect("Uid line")
}

/// Polls `done` for up to 30 seconds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

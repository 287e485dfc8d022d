//! Support for xgate's end-to-end tests: run the real `xgate` binary and
//! check the parts of its contract every command shares.
//!
//! The tests themselves live in the package that defines the binary
//! (`gateway/tests/`), because only there does cargo both build the binary
//! before the tests and tell them where it is (`CARGO_BIN_EXE_xgate`). A
//! dependency on `xgate` from here would build its library, not its binary,
//! and tests could silently run a stale one. So this crate takes the path.
//!
//! ```no_run
//! use xgate_tests::Xgate;
//!
//! let xgate = Xgate::new("target/debug/xgate");
//! let run = xgate.run(&["log", "key", "--data-dir", "/nonexistent"], b"");
//! let message = run.expect_error(1);
//! assert!(message.contains("not an xgate log"));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod barriers;
pub mod browser;
pub mod federation;
pub mod postgres;
pub mod postgres_tls;
pub mod replicas;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The prefix of the one stderr line every failing command prints.
pub const ERROR_PREFIX: &str = "xgate: error: ";

/// The `xgate` binary under test.
#[derive(Clone, Debug)]
pub struct Xgate {
    bin: PathBuf,
}

/// What one run of the binary did.
#[derive(Clone, Debug)]
pub struct Run {
    /// What the run was, for failure messages.
    pub args: Vec<String>,
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr, lossily decoded.
    pub stderr: String,
}

impl Xgate {
    /// The binary at `bin`, normally `env!("CARGO_BIN_EXE_xgate")`.
    pub fn new(bin: impl AsRef<Path>) -> Xgate {
        Xgate {
            bin: bin.as_ref().to_path_buf(),
        }
    }

    /// Runs the binary with `args`, feeding it `stdin`, and waits for it.
    ///
    /// # Panics
    /// If the binary cannot be started: nothing a test could go on from.
    pub fn run<A: AsRef<OsStr>>(&self, args: &[A], stdin: &[u8]) -> Run {
        let mut command = Command::new(&self.bin);
        // In a PostgreSQL suite, a command on a gateway's data directory
        // reads the log where that gateway keeps it.
        let data_dir = args
            .windows(2)
            .find(|w| w[0].as_ref() == "--data-dir")
            .map(|w| Path::new(w[1].as_ref()));
        if let Some(url) = data_dir.and_then(postgres::known_suite_store) {
            command.env("XGATE_STORE", url);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        // Feed stdin from another thread: a child that fails early and fills
        // its stderr pipe must not deadlock against us writing.
        let input = stdin.to_vec();
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let feeder = std::thread::spawn(move || {
            // A child that exits without reading all of stdin closes the
            // pipe; that is its business, not a test failure.
            let _ = pipe.write_all(&input);
        });
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.bin.display()));
        feeder.join().expect("stdin feeder panicked");
        Run {
            args: args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect(),
            code: output.status.code(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the run succeeded with nothing on stderr, and returns stdout
    /// as UTF-8.
    ///
    /// # Panics
    /// If it failed, wrote to stderr, or printed something that is not UTF-8.
    pub fn expect_ok(&self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "xgate {:?} failed: {}",
            self.args,
            self.stderr
        );
        assert!(
            self.stderr.is_empty(),
            "xgate {:?} succeeded but wrote to stderr: {}",
            self.args,
            self.stderr
        );
        String::from_utf8(self.stdout.clone())
            .unwrap_or_else(|_| panic!("xgate {:?} printed non-UTF-8", self.args))
    }

    /// Asserts the run failed with exit code `code`, nothing on stdout and
    /// exactly one line on stderr of the form `xgate: error: <message>`;
    /// returns the message.
    ///
    /// # Panics
    /// If any of that does not hold.
    pub fn expect_error(&self, code: i32) -> String {
        assert_eq!(
            self.code,
            Some(code),
            "xgate {:?}: wrong exit code; stderr: {}",
            self.args,
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "xgate {:?} failed but printed to stdout: {:?}",
            self.args,
            String::from_utf8_lossy(&self.stdout)
        );
        let line = self.stderr.strip_suffix('\n').unwrap_or_else(|| {
            panic!(
                "xgate {:?}: stderr does not end in a newline: {:?}",
                self.args, self.stderr
            )
        });
        assert!(
            !line.contains('\n'),
            "xgate {:?}: stderr is not one line: {:?}",
            self.args,
            self.stderr
        );
        let message = line.strip_prefix(ERROR_PREFIX).unwrap_or_else(|| {
            panic!(
                "xgate {:?}: stderr lacks {ERROR_PREFIX:?}: {line:?}",
                self.args
            )
        });
        assert!(
            !message.trim().is_empty(),
            "xgate {:?}: empty error message",
            self.args
        );
        message.to_owned()
    }
}

/// A gateway (`xgate serve`) running as a child process on a loopback port.
///
/// Started with `--listen 127.0.0.1:0 --public-listen 127.0.0.1:0` unless
/// its arguments give either; the addresses are read from the first two
/// lines the gateway prints. Its stderr (the tracing log) is collected for
/// tests that inspect it. Dropping it kills the process.
#[derive(Debug)]
pub struct Gateway {
    /// The gateway, or strace running it ([`Gateway::start_traced`]).
    child: std::process::Child,
    /// The gateway's own process id (the child's, unless traced).
    pid: u32,
    url: String,
    public_url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Gateway {
    /// Starts `xgate serve --data-dir DATA --listen 127.0.0.1:0
    /// --public-listen 127.0.0.1:0` plus `args` (which may give either
    /// address instead), with `env` added to its environment, and waits
    /// until it listens.
    ///
    /// # Panics
    /// If it does not start listening within 60 seconds.
    pub fn start(
        bin: impl AsRef<Path>,
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        Gateway::spawn(Command::new(bin.as_ref()), data, args, env, false)
    }

    /// As [`Gateway::start`], under `strace` writing its trace to `trace`
    /// with [`barriers::strace_args`]. Signals go to the gateway itself;
    /// strace exits with it, passing on its exit status.
    ///
    /// # Panics
    /// If it does not start listening within 60 seconds.
    pub fn start_traced(
        bin: impl AsRef<Path>,
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        trace: &Path,
    ) -> Gateway {
        let mut strace = Command::new("strace");
        strace.args(barriers::strace_args(trace)).arg(bin.as_ref());
        Gateway::spawn(strace, data, args, env, true)
    }

    fn spawn(
        mut command: Command,
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        traced: bool,
    ) -> Gateway {
        use std::io::BufRead;
        command.arg("serve").arg("--data-dir").arg(data);
        // clap refuses a flag given twice: a default only if not given.
        for flag in ["--listen", "--public-listen"] {
            let given = args
                .iter()
                .any(|a| *a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')));
            if !given {
                command.args([flag, "127.0.0.1:0"]);
            }
        }
        // A PostgreSQL suite's gateways keep their log in a database of
        // their own; a test's own XGATE_STORE still wins.
        if let Some(url) = postgres::suite_store(data) {
            command.env("XGATE_STORE", url);
        }
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xgate serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let (Some(Ok(first)), Some(Ok(second))) = (lines.next(), lines.next()) {
                let _ = tx.send((first, second));
            }
            // Keep draining so the gateway never blocks on a full pipe.
            for _ in lines {}
        });
        let (first, second) = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(lines) => lines,
            Err(_) => {
                let _ = child.kill();
                let log = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("xgate serve did not start listening; stderr:\n{log}");
            }
        };
        let url = first
            .strip_prefix("xgate: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from xgate serve: {first:?}"))
            .to_owned();
        let public_url = second
            .strip_prefix("xgate: tlog-tiles on ")
            .unwrap_or_else(|| panic!("unexpected second line from xgate serve: {second:?}"))
            .to_owned();
        // Listening, the gateway is strace's one child.
        let pid = if traced {
            children(child.id()).into_iter().next().unwrap_or_else(|| {
                let _ = child.kill();
                panic!("strace runs no gateway")
            })
        } else {
            child.id()
        };
        Gateway {
            child,
            pid,
            url,
            public_url,
            stderr,
        }
    }

    /// The gateway's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The public listener's URL (the log as C2SP tlog-tiles),
    /// `https://127.0.0.1:PORT`.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Everything the gateway has logged so far.
    pub fn log_output(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends `signal` (a name `kill` accepts, such as `TERM` or `HUP`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Kills the gateway with SIGKILL, as a crash would, and waits for it.
    pub fn kill(mut self) {
        self.kill_now();
    }

    /// SIGKILL to the gateway (and to strace, if traced), then waits.
    fn kill_now(&mut self) {
        // Once the child is reaped the pid may be another process's.
        if self.pid != self.child.id() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `within` for the gateway to exit by itself; its exit
    /// status, or `None` if it is still running.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => return None,
            }
        }
    }

    /// Asks the gateway to stop (SIGTERM) and returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal("TERM");
        let status = self.child.wait().expect("wait for xgate serve");
        status.code()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// The processes whose parent is `parent` (from `/proc/PID/stat`).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `PID (COMM) STATE PPID ...`; COMM may hold spaces and `)`.
            let after = stat.rsplit_once(") ")?.1;
            let ppid: u32 = after.split(' ').nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// A running `xgate witness serve`; its URL is read from the first line it
/// prints. Dropping it kills the process.
#[derive(Debug)]
pub struct WitnessServer {
    child: std::process::Child,
    url: String,
}

impl WitnessServer {
    /// Starts `bin witness serve --dir DIR --listen LISTEN` (`127.0.0.1:0`
    /// for any free port) with a `--log` for each of `logs`, plus `extra`,
    /// and waits until it listens.
    ///
    /// # Panics
    /// If it does not print its address within 60 seconds.
    pub fn start(
        bin: impl AsRef<Path>,
        dir: &Path,
        listen: &str,
        logs: &[&str],
        extra: &[&str],
    ) -> WitnessServer {
        let mut command = Command::new(bin.as_ref());
        command
            .args(["witness", "serve", "--dir"])
            .arg(dir)
            .args(["--listen", listen]);
        for vkey in logs {
            command.args(["--log", vkey]);
        }
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xgate witness serve");
        let first = first_line(&mut child, "xgate witness serve");
        let url = first
            .strip_prefix("xgate: witness listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from xgate witness serve: {first:?}"))
            .to_owned();
        WitnessServer { child, url }
    }

    /// Its submission prefix, `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks it to stop (SIGTERM) and returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for WitnessServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line `child` prints on its piped stdout (the rest is read and
/// dropped, so it never blocks on a full pipe).
///
/// # Panics
/// If none comes within 60 seconds (the child is killed).
fn first_line(child: &mut std::process::Child, what: &str) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    let Ok(first) = rx.recv_timeout(std::time::Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("{what} printed nothing within 60 s");
    };
    first
}

/// A running `xgate console`.
#[derive(Debug)]
pub struct ConsoleServer {
    child: std::process::Child,
    url: String,
}

impl ConsoleServer {
    /// Starts `bin console --pki PKI --as AGENCY --gateway GATEWAY --listen
    /// 127.0.0.1:0` plus `extra` and waits for the address it prints.
    ///
    /// # Panics
    /// If it prints no address within 60 seconds.
    pub fn start(
        bin: impl AsRef<Path>,
        pki: &Path,
        agency: &str,
        gateway: &str,
        extra: &[&str],
    ) -> ConsoleServer {
        let mut child = Command::new(bin.as_ref())
            .arg("console")
            .arg("--pki")
            .arg(pki)
            .args([
                "--as",
                agency,
                "--gateway",
                gateway,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xgate console");
        let first = first_line(&mut child, "xgate console");
        let prefix = format!("xgate: console for {agency} at ");
        let url = first
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("unexpected first line from xgate console: {first:?}"))
            .to_owned();
        ConsoleServer { child, url }
    }

    /// The address it printed, `http://127.0.0.1:PORT/#token=T`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:PORT`, without the token.
    pub fn origin(&self) -> &str {
        self.url.split("/#").next().unwrap_or(&self.url)
    }

    /// The token in its address.
    pub fn token(&self) -> &str {
        self.url.rsplit("#token=").next().unwrap_or_default()
    }
}

impl Drop for ConsoleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

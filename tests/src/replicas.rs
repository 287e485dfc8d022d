//! Several `xgate serve` processes ("replicas") on one PostgreSQL database,
//! as issue 23 runs them: the first replica creates the log's key in its
//! data directory, every other one starts on a copy of that directory (so
//! they all sign with the one key), and all of them get the same
//! `XGATE_STORE` and arguments (`--pki` among them).
//!
//! A [`Replica`] can be killed (`SIGKILL`, as a crash) and started again on
//! its data directory, which is what the crash and restart tests do to
//! them.
//!
//! ```no_run
//! use std::path::Path;
//! use xgate_tests::replicas::Replica;
//!
//! let store = "postgres://xgate@127.0.0.1:5432/db";
//! let args = ["--pki", "/tmp/pki"];
//! let a = Replica::first("target/debug/xgate", Path::new("/tmp/a"), store, &args, &[]);
//! let mut b = a.another(Path::new("/tmp/b"));
//! println!("{} and {}", a.gateway().url(), b.gateway().url());
//! b.kill();
//! b.start();
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Gateway;

/// The variable naming the store a gateway keeps its log and state in.
pub const STORE_VAR: &str = "XGATE_STORE";

/// One `xgate serve` of a group sharing a database, and how to start it
/// again after a kill.
#[derive(Debug)]
pub struct Replica {
    bin: PathBuf,
    data: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    gateway: Option<Gateway>,
}

impl Replica {
    /// Starts the first replica: `bin serve --data-dir DATA` plus `args`,
    /// with `XGATE_STORE=store` and `env` in its environment (see
    /// [`Gateway::start`]), and waits until it listens.
    ///
    /// # Panics
    /// If it does not start listening within 60 seconds.
    pub fn first(
        bin: impl AsRef<Path>,
        data: &Path,
        store: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Replica {
        let mut all = vec![(STORE_VAR.to_owned(), store.to_owned())];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut replica = Replica {
            bin: bin.as_ref().to_path_buf(),
            data: data.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: all,
            gateway: None,
        };
        replica.start();
        replica
    }

    /// Another replica of the same log: a copy of this one's data directory
    /// at `data` (which must not exist yet), started with the same
    /// arguments and environment.
    ///
    /// # Panics
    /// If the copy fails, or the replica does not start listening within
    /// 60 seconds.
    pub fn another(&self, data: &Path) -> Replica {
        copy_data_dir(&self.data, data)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", self.data.display(), data.display()));
        let mut replica = Replica {
            bin: self.bin.clone(),
            data: data.to_path_buf(),
            args: self.args.clone(),
            env: self.env.clone(),
            gateway: None,
        };
        replica.start();
        replica
    }

    /// Starts the replica (again) on its data directory, on new ports, and
    /// waits until it listens. A replica already running is left as it is.
    ///
    /// # Panics
    /// If it does not start listening within 60 seconds.
    pub fn start(&mut self) {
        if self.gateway.is_some() {
            return;
        }
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.gateway = Some(Gateway::start(&self.bin, &self.data, &args, &env));
    }

    /// The running gateway.
    ///
    /// # Panics
    /// If the replica is not running (killed or stopped).
    pub fn gateway(&self) -> &Gateway {
        self.gateway
            .as_ref()
            .unwrap_or_else(|| panic!("replica {} is not running", self.data.display()))
    }

    /// Whether the replica is running (started, and neither killed nor
    /// stopped since).
    pub fn is_running(&self) -> bool {
        self.gateway.is_some()
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Its `XGATE_STORE`.
    pub fn store(&self) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == STORE_VAR)
            .map_or("", |(_, v)| v.as_str())
    }

    /// `SIGKILL`s the replica, as a crash would, and waits for it to die.
    /// Nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.kill();
        }
    }

    /// Asks the replica to stop (`SIGTERM`) and returns its exit code;
    /// `None` if it was not running or died of a signal.
    pub fn stop(&mut self) -> Option<i32> {
        self.gateway.take().and_then(Gateway::stop)
    }
}

/// Copies the data directory `from` to `to` (created, mode 0700): every
/// file and directory under it, with its permission bits, as an operator
/// copies the first replica's directory for the next one.
///
/// # Errors
/// The first file operation that fails.
pub fn copy_data_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_data_dir(&source, &target)?;
        } else if kind.is_file() {
            fs::copy(&source, &target)?;
            let mode = fs::metadata(&source)?.permissions().mode();
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        }
        // Sockets, symlinks and the like are nobody's data.
    }
    Ok(())
}

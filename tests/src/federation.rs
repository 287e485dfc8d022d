//! A federation of gateways on loopback: one PKI made by the real
//! `xgate certs init --gateway ...`, and one real `xgate serve
//! --gateway-id G` per gateway, each with its own data directory and a
//! fixed port (the one the registry lists), which it keeps across
//! restarts.
//!
//! ```no_run
//! use std::path::Path;
//! use xgate_tests::federation::Federation;
//!
//! let layout: &[(&str, &[&str])] = &[
//!     ("hub", &["state", "gsa", "auditor:gao"]),
//!     ("g-c", &["hhs"]),
//! ];
//! let bin = Path::new("target/debug/xgate");
//! let mut federation = Federation::start(bin, Path::new("/tmp/federation"), layout, &[]);
//! let hub = federation.url("hub");
//! federation.kill("g-c");
//! federation.restart("g-c");
//! ```
//!
//! An agency written `auditor:ID` is issued with `--auditor ID@G` (the
//! auditor role) instead of `--agency ID@G`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::{Gateway, Xgate};

/// How an agency of the layout is marked as an auditor.
pub const AUDITOR_PREFIX: &str = "auditor:";

/// Gateways of one federation, running as child processes. Dropping it
/// kills them all (SIGKILL, as [`Gateway`]'s drop does).
#[derive(Debug)]
pub struct Federation {
    bin: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
    members: Vec<Member>,
}

/// One gateway of the federation.
#[derive(Debug)]
struct Member {
    id: String,
    /// The port of its main listener, which the registry's URL names.
    port: u16,
    /// The running process; `None` while stopped.
    process: Option<Gateway>,
}

impl Federation {
    /// Makes the PKI `DIR/pki` for `layout` (each gateway with the
    /// agencies it serves; `auditor:ID` for an auditor) and starts every
    /// gateway: `xgate serve --pki DIR/pki --data-dir DIR/<G>
    /// --gateway-id G --listen 127.0.0.1:PORT --public-listen 127.0.0.1:0`,
    /// with `extra_env` in its environment. Each serves the default policy,
    /// which it writes into its data directory on first start.
    ///
    /// # Panics
    /// If `certs init` fails or a gateway does not start listening.
    pub fn start(
        bin: &Path,
        dir: &Path,
        layout: &[(&str, &[&str])],
        extra_env: &[(&str, &str)],
    ) -> Federation {
        let ports = free_ports(layout.len());
        let mut args: Vec<String> = vec!["certs".into(), "init".into(), "--dir".into()];
        args.push(dir.join("pki").display().to_string());
        for ((gateway, _), port) in layout.iter().zip(&ports) {
            args.push("--gateway".into());
            args.push(format!("{gateway}=https://127.0.0.1:{port}"));
        }
        for (gateway, agencies) in layout {
            for agency in *agencies {
                let (flag, id) = match agency.strip_prefix(AUDITOR_PREFIX) {
                    Some(id) => ("--auditor", id),
                    None => ("--agency", *agency),
                };
                args.push(flag.into());
                args.push(format!("{id}@{gateway}"));
            }
        }
        Xgate::new(bin).run(&args, b"").expect_ok();
        let mut federation = Federation {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            members: layout
                .iter()
                .zip(ports)
                .map(|((id, _), port)| Member {
                    id: (*id).to_owned(),
                    port,
                    process: None,
                })
                .collect(),
        };
        for (gateway, _) in layout {
            federation.launch(gateway);
        }
        federation
    }

    /// The PKI directory, `DIR/pki`.
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }

    /// Gateway `gateway`'s data directory, `DIR/<gateway>`.
    pub fn data_dir(&self, gateway: &str) -> PathBuf {
        self.dir.join(gateway)
    }

    /// Gateway `gateway`'s URL, `https://127.0.0.1:PORT`, as the registry
    /// lists it (also while it is stopped).
    pub fn url(&self, gateway: &str) -> String {
        format!("https://127.0.0.1:{}", self.member(gateway).port)
    }

    /// The URL of gateway `gateway`'s public (tlog-tiles) listener, which
    /// is on a new port after each start.
    ///
    /// # Panics
    /// If the gateway is stopped.
    pub fn public_url(&self, gateway: &str) -> &str {
        self.running(gateway).public_url()
    }

    /// The running process of gateway `gateway` (its log output, signals).
    ///
    /// # Panics
    /// If the gateway is stopped.
    pub fn process(&self, gateway: &str) -> &Gateway {
        self.running(gateway)
    }

    /// Stops gateway `gateway` (SIGTERM: it drains and exits) and returns
    /// its exit code.
    ///
    /// # Panics
    /// If the gateway is stopped already.
    pub fn stop(&mut self, gateway: &str) -> Option<i32> {
        self.take(gateway).stop()
    }

    /// Kills gateway `gateway` with SIGKILL, as a crash would.
    ///
    /// # Panics
    /// If the gateway is stopped already.
    pub fn kill(&mut self, gateway: &str) {
        self.take(gateway).kill();
    }

    /// Starts gateway `gateway` again on its port and data directory,
    /// stopping it first (SIGTERM) if it is running.
    ///
    /// # Panics
    /// If it does not start listening.
    pub fn restart(&mut self, gateway: &str) {
        if self.member(gateway).process.is_some() {
            self.stop(gateway);
        }
        self.launch(gateway);
    }

    /// What the auditor sees: `xgate audit replay --log URL...` over the
    /// public logs of every gateway, against the federation's registry and
    /// CA, run until it is clean (each gateway publishes its checkpoint
    /// within about a second of its commits, or of its peers' cosigning:
    /// until then the other side of an exchange looks one-sided). Returns
    /// its `ok:` line.
    ///
    /// # Panics
    /// If the replay is still not clean after 15 s (with its findings).
    pub fn replay_public_logs(&self) -> String {
        let pki = self.pki();
        let (registry, ca) = (pki.join("registry.toml"), pki.join("ca.crt"));
        let mut args: Vec<String> = vec!["audit".into(), "replay".into()];
        for member in &self.members {
            args.push("--log".into());
            args.push(self.public_url(&member.id).to_owned());
        }
        args.extend(["--registry".into(), registry.display().to_string()]);
        args.extend(["--ca".into(), ca.display().to_string()]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let replay = Xgate::new(&self.bin).run(&args, b"");
            let out = String::from_utf8_lossy(&replay.stdout).into_owned();
            if replay.code == Some(0) {
                return out;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{out}{}",
                replay.stderr
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    /// Stops every gateway, then runs `xgate audit replay --data-dir` on
    /// each one's data directory with the registry: each recomputes its own
    /// state from its own log.
    ///
    /// # Panics
    /// If a replay does not print its `ok:` line.
    pub fn replay_each_stopped(&mut self) {
        let registry = self.pki().join("registry.toml").display().to_string();
        let ids: Vec<String> = self.members.iter().map(|m| m.id.clone()).collect();
        for id in ids {
            if self.member(&id).process.is_some() {
                self.stop(&id);
            }
            let data = self.data_dir(&id).display().to_string();
            let replayed = Xgate::new(&self.bin)
                .run(
                    &[
                        "audit",
                        "replay",
                        "--data-dir",
                        &data,
                        "--registry",
                        &registry,
                    ],
                    b"",
                )
                .expect_ok();
            assert!(replayed.starts_with("ok: replayed"), "{id}: {replayed}");
        }
    }

    fn launch(&mut self, gateway: &str) {
        let pki = self.pki().display().to_string();
        let listen = format!("127.0.0.1:{}", self.member(gateway).port);
        let args = [
            "--pki",
            &pki,
            "--gateway-id",
            gateway,
            "--listen",
            &listen,
            "--public-listen",
            "127.0.0.1:0",
        ];
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let process = Gateway::start(&self.bin, &self.data_dir(gateway), &args, &env);
        self.member_mut(gateway).process = Some(process);
    }

    fn take(&mut self, gateway: &str) -> Gateway {
        self.member_mut(gateway)
            .process
            .take()
            .unwrap_or_else(|| panic!("gateway {gateway} is not running"))
    }

    fn running(&self, gateway: &str) -> &Gateway {
        self.member(gateway)
            .process
            .as_ref()
            .unwrap_or_else(|| panic!("gateway {gateway} is not running"))
    }

    fn member(&self, gateway: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.id == gateway)
            .unwrap_or_else(|| panic!("no gateway {gateway} in this federation"))
    }

    fn member_mut(&mut self, gateway: &str) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.id == gateway)
            .unwrap_or_else(|| panic!("no gateway {gateway} in this federation"))
    }
}

/// `n` distinct free loopback ports: each bound on port 0, read, and let
/// go once all are chosen (so no two are the same). Another process may
/// take one before its gateway binds it; on loopback in a test that race
/// is rare, and it fails loudly (the gateway cannot listen), so it is
/// acceptable. The registry needs each port before any gateway starts.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

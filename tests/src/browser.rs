//! A real browser for tests: Debian's Chromium, driven through its
//! ChromeDriver, headless. [`Driver::start`] runs `chromedriver` on a free
//! loopback port and stops it on drop; a test connects a WebDriver client
//! to [`Driver::url`] with [`chromium_args`].
//!
//! Without Chromium and ChromeDriver the browser tests say so in one line
//! and return, unless `XGATE_REQUIRE_BROWSER=1` (set by `.ci/run`, which
//! installs both), which makes their absence a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to `1` to fail, not skip, when there is no browser.
pub const REQUIRE_VAR: &str = "XGATE_REQUIRE_BROWSER";

/// The Chromium binary, if installed.
pub fn chromium() -> Option<PathBuf> {
    find(
        "XGATE_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    )
}

/// The ChromeDriver binary, if installed.
pub fn chromedriver() -> Option<PathBuf> {
    find("XGATE_CHROMEDRIVER", &["/usr/bin/chromedriver"])
}

fn find(var: &str, defaults: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    defaults.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The flags a test browser runs with: headless, no sandbox (tests may run
/// as root), a profile of its own, none of the background traffic this
/// machine's closed network refuses, the test gateway's certificate (from
/// a throwaway CA) accepted, and no network beyond loopback: every other
/// address goes through a proxy on a port nothing listens on (Chromium
/// never proxies loopback), so a page that needs a CDN, a font or any
/// other host fails its test.
pub fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--ignore-certificate-errors",
        "--window-size=1280,1600",
        "--proxy-server=http://127.0.0.1:9",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// A running ChromeDriver.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts ChromeDriver, or says why not: `None` with the reason printed
    /// when there is no browser and none is required.
    ///
    /// # Panics
    /// When a browser is required and missing, or ChromeDriver does not
    /// answer within 20 s.
    pub fn start() -> Option<Driver> {
        let (Some(_), Some(driver)) = (chromium(), chromedriver()) else {
            let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{REQUIRE_VAR}=1 but Chromium or ChromeDriver is missing \
                 (Debian: apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "browser tests skipped: Chromium and ChromeDriver are not installed \
                 (Debian: apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }

    /// Where WebDriver clients connect.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Whose CPU a bench run used, read from `/proc`: the generator's own, the
//! server's, and the whole machine's, over the same window.
//!
//! On a small machine the generator competes with the server it measures:
//! every core-second it spends is one the server did not have. So every
//! report says how much each took, as a share of the machine (`cores`, the
//! available parallelism, which honours CPU affinity and quotas).
//!
//! - The generator: `utime + stime` of `/proc/self/stat`.
//! - The server: the same fields of every process holding the listening
//!   socket of the gateway's port ([`server_pids`]: the socket's inode from
//!   `/proc/net/tcp` and `tcp6`, then each `/proc/PID/fd` link to
//!   `socket:[inode]`), so that all of nginx's workers count; or the
//!   processes named by hand (`--server-pid`). A server on another machine
//!   has none, and the report says so instead of guessing.
//! - The machine: the busy share of the `cpu` line of `/proc/stat` (all
//!   online CPUs; busy is everything but `idle` and `iowait`).
//!
//! The times are in clock ticks (`USER_HZ`, usually 100 a second), so they
//! resolve 10 ms: ample over a run of seconds. Nothing here fails a run:
//! what cannot be read is reported missing.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `st` field of a listening socket in `/proc/net/tcp` (`TCP_LISTEN`).
const TCP_LISTEN: u8 = 0x0a;

/// CPU time of one process so far (user and system, all its threads).
///
/// `None` if the process is gone or its stat cannot be read.
pub fn process_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    ticks(stat_ticks(&text)?)
}

/// `utime + stime`, in clock ticks, of a `/proc/PID/stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself: the fields after it start at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags,
    // minflt, cminflt, majflt, cmajflt, utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks as a duration.
fn ticks(n: u64) -> Option<Duration> {
    let hz = rustix::param::clock_ticks_per_second();
    (hz > 0).then(|| Duration::from_secs_f64(n as f64 / hz as f64))
}

/// The machine's CPU time so far from `/proc/stat`: (busy, total), in
/// clock ticks summed over all online CPUs.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    stat_busy_total(&text)
}

/// (busy, total) of the `cpu` line of a `/proc/stat` text. `guest` and
/// `guest_nice` are already inside `user` and `nice`, so only the first
/// eight fields are summed.
fn stat_busy_total(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The processes serving `url` on this machine, found by their listening
/// socket; empty when none is (the server is elsewhere, or its processes
/// are not ours to read).
///
/// The port's listening sockets count when bound to the URL's address, or
/// to every address (`0.0.0.0`, `::`) if that address is on this machine:
/// a loopback address, or one some socket here is bound to (the server's
/// end of the bench's own open connections, for one).
pub fn server_pids(url: &str) -> Vec<u32> {
    let Some(targets) = targets(url) else {
        return Vec::new();
    };
    let sockets = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| parse_sockets(&text))
        .collect::<Vec<_>>();
    let inodes = listening_inodes(&sockets, &targets);
    if inodes.is_empty() {
        return Vec::new();
    }
    holders(Path::new("/proc"), &inodes)
}

/// The addresses `url` (`https://host:port`) names.
fn targets(url: &str) -> Option<Vec<SocketAddr>> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (host, port).to_socket_addrs().ok()?.collect(),
    };
    Some(addrs)
}

/// One line of `/proc/net/tcp` or `tcp6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Socket {
    local: SocketAddr,
    state: u8,
    inode: u64,
}

/// The sockets of a `/proc/net/tcp` or `tcp6` text; lines that do not
/// parse are skipped.
fn parse_sockets(text: &str) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            // sl, local_address, rem_address, st, tx:rx, tr:when, retrnsmt,
            // uid, timeout, inode.
            let local = parse_address(fields.get(1)?)?;
            let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some(Socket {
                local,
                state,
                inode,
            })
        })
        .collect()
}

/// `0100007F:20FB` or a 32-digit IPv6 form: the kernel prints each 32-bit
/// word of the address as a number in the machine's byte order, and the
/// port in hex.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// An IPv4-mapped IPv6 address as the IPv4 one; any other as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The inodes of the listening sockets that serve one of `targets`.
fn listening_inodes(sockets: &[Socket], targets: &[SocketAddr]) -> BTreeSet<u64> {
    let mut inodes = BTreeSet::new();
    for target in targets {
        let ip = canonical(target.ip());
        let bound_here =
            |s: &Socket| canonical(s.local.ip()) == ip && s.local.port() == target.port();
        let local = ip.is_loopback() || sockets.iter().any(bound_here);
        for s in sockets {
            if s.state != TCP_LISTEN || s.local.port() != target.port() {
                continue;
            }
            let own = canonical(s.local.ip());
            // A socket bound to `::` takes IPv4 too, unless it is
            // IPV6_ONLY, which /proc does not show: counted either way, as
            // the port is the same and the server's.
            let wildcard = own.is_unspecified() && (own.is_ipv6() || ip.is_ipv4());
            if own == ip || (wildcard && local) {
                inodes.insert(s.inode);
            }
        }
    }
    inodes
}

/// The processes under `proc` (the `/proc` root) with a descriptor open on
/// one of the sockets `inodes`, in order.
fn holders(proc: &Path, inodes: &BTreeSet<u64>) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Other users' descriptors cannot be read: skipped.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| inodes.contains(&n))
            })
        });
        if holds {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// CPU readings at the start of a run, to be closed by [`Window::finish`].
#[derive(Debug)]
pub struct Window {
    started: Instant,
    generator: Option<Duration>,
    /// Each server process with its CPU time at the start (`None` if it
    /// could not be read).
    servers: Vec<(u32, Option<Duration>)>,
    machine: Option<(u64, u64)>,
}

impl Window {
    /// Starts a window now, over the generator and the server processes
    /// `servers`.
    pub fn start(servers: &[u32]) -> Window {
        Window {
            servers: servers
                .iter()
                .map(|&pid| (pid, process_time(Some(pid))))
                .collect(),
            generator: process_time(None),
            machine: machine_ticks(),
            started: Instant::now(),
        }
    }

    /// What each used since the start.
    pub fn finish(self) -> CpuUsage {
        let wall = self.started.elapsed();
        let generator = process_time(None)
            .zip(self.generator)
            .map(|(end, start)| end.saturating_sub(start));
        let machine = machine_ticks();
        // A process that cannot be read at either end (it exited) adds
        // nothing: the figure is a lower bound then.
        let mut server = None;
        for &(pid, start) in &self.servers {
            if let (Some(start), Some(end)) = (start, process_time(Some(pid))) {
                *server.get_or_insert(Duration::ZERO) += end.saturating_sub(start);
            }
        }
        let machine_busy = self.machine.zip(machine).and_then(|((b0, t0), (b1, t1))| {
            let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
            Some(b1.saturating_sub(b0) as f64 / total as f64)
        });
        CpuUsage {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            wall,
            generator,
            server_pids: self.servers.iter().map(|(pid, _)| *pid).collect(),
            server,
            machine_busy,
        }
    }
}

/// Who used how much CPU over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuUsage {
    /// The cores the shares are of (the available parallelism).
    pub cores: usize,
    /// The window's length.
    pub wall: Duration,
    /// The generator's CPU time, if `/proc/self/stat` could be read.
    pub generator: Option<Duration>,
    /// The server's processes (empty: none found).
    pub server_pids: Vec<u32>,
    /// Their CPU time together, if any could be read.
    pub server: Option<Duration>,
    /// The busy share of the whole machine (0 to 1), from `/proc/stat`.
    pub machine_busy: Option<f64>,
}

impl CpuUsage {
    /// `cpu` as a share of the machine over the window (0 to 1).
    pub fn share(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / (self.wall.as_secs_f64() * self.cores as f64).max(1e-9)
    }

    /// The report's `cpu` object; `exchanges` (answered or not) gives the
    /// CPU per exchange.
    pub fn to_json(&self, exchanges: u64) -> Value {
        let one = |cpu: Duration| {
            json!({
                "cpu_seconds": cpu.as_secs_f64(),
                "share": self.share(cpu),
                "us_per_exchange": (exchanges > 0)
                    .then(|| cpu.as_secs_f64() * 1e6 / exchanges as f64),
            })
        };
        let server = self.server.map(|cpu| {
            let mut v = one(cpu);
            v["pids"] = json!(self.server_pids);
            v
        });
        json!({
            "cores": self.cores,
            "seconds": self.wall.as_secs_f64(),
            "generator": self.generator.map(one),
            "server": server,
            "machine_busy": self.machine_busy,
        })
    }

    /// One line for people: each share of the machine.
    pub fn line(&self) -> String {
        let pct = |cpu: Duration| format!("{:.1} %", self.share(cpu) * 100.0);
        let generator = self.generator.map_or_else(|| "unknown".to_owned(), pct);
        let server = match self.server {
            Some(cpu) => {
                let pids: Vec<String> = self.server_pids.iter().map(u32::to_string).collect();
                format!("{} (pid {})", pct(cpu), pids.join(", "))
            }
            None => "not found on this machine (name it with --server-pid)".to_owned(),
        };
        let machine = self
            .machine_busy
            .map_or_else(|| "unknown".to_owned(), |b| format!("{:.1} %", b * 100.0));
        format!(
            "CPU of {} cores: generator {generator}, server {server}, machine busy {machine}",
            self.cores
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_user_plus_system_time_whatever_the_name() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 2061 0 0 0 170 35 0 0 20 0 9 0 \
                    123 4096 512 18446744073709551615";
        assert_eq!(stat_ticks(line), Some(205));
        assert_eq!(stat_ticks("4242 (x) S 1"), None);
        assert_eq!(stat_ticks("no parenthesis"), None);
    }

    #[test]
    fn the_machine_line_is_busy_over_total_with_guest_inside_user() {
        let text = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        // total: 100+5+50+800+40+3+2+0; idle: 800 + iowait 40.
        assert_eq!(stat_busy_total(text), Some((160, 1000)));
        assert_eq!(stat_busy_total("intr 1 2 3"), None);
    }

    #[test]
    fn addresses_are_read_in_the_kernels_byte_order() {
        // 127.0.0.1:8443 and [::1]:8443 as this machine's kernel prints them.
        let v4 = format!("{:08X}:20FB", u32::from_ne_bytes([127, 0, 0, 1]));
        assert_eq!(
            parse_address(&v4),
            Some("127.0.0.1:8443".parse().expect("addr"))
        );
        let one = Ipv6Addr::LOCALHOST.octets();
        let v6: String = one
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .collect();
        assert_eq!(
            parse_address(&format!("{v6}:20FB")),
            Some("[::1]:8443".parse().expect("addr"))
        );
        assert_eq!(parse_address("0100007F"), None);
        assert_eq!(parse_address("01007F:20FB"), None);
    }

    fn socket(local: &str, state: u8, inode: u64) -> Socket {
        Socket {
            local: local.parse().expect("addr"),
            state,
            inode,
        }
    }

    #[test]
    fn listeners_match_their_address_or_a_wildcard_on_a_local_one() {
        let sockets = [
            socket("127.0.0.1:8443", TCP_LISTEN, 1),
            socket("0.0.0.0:9443", TCP_LISTEN, 2),
            socket("[::]:7443", TCP_LISTEN, 3),
            socket("127.0.0.1:8444", TCP_LISTEN, 4),
            // An established connection on the port: not a listener.
            socket("127.0.0.1:8443", 0x01, 5),
            // The server's end of a connection to 10.1.2.3:9443.
            socket("10.1.2.3:9443", 0x01, 6),
        ];
        let at = |s: &str| [s.parse::<SocketAddr>().expect("addr")];
        assert_eq!(
            listening_inodes(&sockets, &at("127.0.0.1:8443")),
            [1].into()
        );
        assert_eq!(
            listening_inodes(&sockets, &at("127.0.0.1:9443")),
            [2].into()
        );
        assert_eq!(
            listening_inodes(&sockets, &at("127.0.0.1:7443")),
            [3].into()
        );
        assert_eq!(listening_inodes(&sockets, &at("[::1]:7443")), [3].into());
        // A non-loopback address is local if a socket here is bound to it.
        assert_eq!(listening_inodes(&sockets, &at("10.1.2.3:9443")), [2].into());
        // Another machine that happens to use the same port: not ours.
        assert!(listening_inodes(&sockets, &at("10.9.9.9:9443")).is_empty());
        assert!(listening_inodes(&sockets, &at("127.0.0.1:1")).is_empty());
    }

    #[test]
    fn a_listener_this_test_opens_is_found_with_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let me = std::process::id();
        assert_eq!(server_pids(&format!("https://127.0.0.1:{port}")), [me]);
        assert_eq!(server_pids(&format!("https://localhost:{port}")), [me]);
        if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
            let port = v6.local_addr().expect("addr").port();
            assert_eq!(server_pids(&format!("https://[::1]:{port}")), [me]);
        }
        drop(listener);
        // Nothing listens there any more.
        assert!(server_pids(&format!("https://127.0.0.1:{port}")).is_empty());
        assert!(server_pids("not a url").is_empty());
    }

    /// This thread's own CPU time so far.
    fn thread_time() -> Duration {
        let text = std::fs::read_to_string("/proc/thread-self/stat").expect("thread stat");
        ticks(stat_ticks(&text).expect("ticks")).expect("clock tick")
    }

    #[test]
    fn a_busy_thread_is_counted_and_the_window_is_sane() {
        const BUSY: Duration = Duration::from_millis(300);
        let me = std::process::id();
        let window = Window::start(&[me]);
        // Busy until the thread itself has had 300 ms of CPU, however
        // loaded the machine is (within reason).
        let spin = std::thread::spawn(|| {
            let start = thread_time();
            let give_up = Instant::now() + Duration::from_secs(20);
            let mut n = 0u64;
            while thread_time() - start < BUSY && Instant::now() < give_up {
                for _ in 0..100_000 {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            thread_time() - start
        });
        let spun = spin.join().expect("spinner");
        assert!(spun >= BUSY, "the spinner got {spun:?}");
        let usage = window.finish();
        // The thread's time is the process's (other tests' threads may
        // add to it), within a tick at each end.
        let tick = Duration::from_millis(20);
        let generator = usage.generator.expect("our own stat");
        assert!(generator + tick >= BUSY, "{usage:?}");
        assert!(
            generator <= usage.wall * usage.cores as u32 + tick,
            "{usage:?}"
        );
        // The server here is this process too.
        assert_eq!(usage.server_pids, [me]);
        let server = usage.server.expect("our own stat by pid");
        assert!(server + tick >= BUSY, "{usage:?}");
        let share = usage.share(generator);
        assert!(share > 0.0 && share <= 1.0, "{usage:?}");
        let busy = usage.machine_busy.expect("/proc/stat");
        assert!(busy > 0.0 && busy <= 1.0, "{usage:?}");
        let json = usage.to_json(100);
        assert_eq!(json["server"]["pids"], json!([me]));
        assert!(
            json["generator"]["us_per_exchange"]
                .as_f64()
                .is_some_and(|u| u > 0.0)
        );
        assert!(usage.line().contains(&format!("of {} cores", usage.cores)));
    }

    #[test]
    fn a_server_that_cannot_be_read_is_reported_missing() {
        // Pid 0 is never a process.
        let usage = Window::start(&[0]).finish();
        assert_eq!(usage.server, None);
        assert_eq!(usage.to_json(1)["server"], Value::Null);
        assert!(
            usage.line().contains("server not found"),
            "{}",
            usage.line()
        );
        let none = Window::start(&[]).finish();
        assert_eq!(none.server, None);
    }
}

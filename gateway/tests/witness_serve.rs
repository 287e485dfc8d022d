//! `xgate witness init` and `xgate witness serve`, the real binary over
//! loopback, against checkpoints of real logs (the ledger's `Log` in a
//! temporary directory): every status code of C2SP tlog-witness
//! `add-checkpoint`, the 409's content type and body, the 200's
//! cosignature verifying with the printed vkey, state kept across a
//! restart, evidence of a fork (two logs with one key diverging), and
//! HTTPS with an agency's certificate from the development PKI.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xgate_ledger::checkpoint::Checkpoint;
use xgate_ledger::cosign::{CosignatureAlg, CosignerVerifier, verify_quorum};
use xgate_ledger::witness::format_body;
use xgate_ledger::{Log, OpenOptions};

const ORIGIN: &str = "example.org/witnessed-log";

/// A real log in a temporary directory.
struct TestLog {
    log: Log,
}

impl TestLog {
    fn create(dir: &Path) -> TestLog {
        let options = OpenOptions {
            origin: Some(ORIGIN.into()),
            ..OpenOptions::default()
        };
        TestLog {
            log: Log::create_or_open(dir, &options).expect("log"),
        }
    }

    fn append(&self, tag: &str, n: usize) {
        let entries: Vec<String> = (0..n).map(|i| format!("{tag} {i}")).collect();
        self.log.append_batch(&entries).expect("append");
    }

    fn vkey(&self) -> String {
        self.log.verifier().to_string()
    }

    /// The current checkpoint note and its body text.
    fn checkpoint(&self) -> (String, String, u64) {
        let signed = self.log.checkpoint().expect("checkpoint");
        let size = signed.checkpoint.size;
        (signed.note, signed.checkpoint.body(), size)
    }

    /// A request from `old` to the current checkpoint.
    fn body(&self, old: u64) -> (Vec<u8>, String) {
        let (note, text, size) = self.checkpoint();
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            self.log.consistency(old, size).expect("proof").hashes
        };
        (format_body(old, &proof, &note).into_bytes(), text)
    }
}

/// `xgate witness serve` as a child process.
struct Server {
    child: Child,
    url: String,
    greeting: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &Path, logs: &[String], extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xgate"));
        command
            .args(["witness", "serve", "--dir"])
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"]);
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
        let stdout = child.stdout.take().expect("stdout");
        let greeting = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&greeting);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.lock().expect("lock").is_empty() {
                    let _ = tx.send(line.clone());
                }
                lines.lock().expect("lock").push(line);
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the witness prints its address");
        let url = first
            .strip_prefix("xgate: witness listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Server {
            child,
            url,
            greeting,
        }
    }

    /// The first `n` lines it printed, waiting for them.
    fn greeting(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.greeting.lock().expect("lock").clone();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned()
    }

    fn post(&self, body: &[u8]) -> Reply {
        http(&self.addr(), "POST", "/add-checkpoint", body)
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait").code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection, written by hand.
fn exchange(stream: &mut dyn ReadWrite, method: &str, path: &str, body: &[u8]) -> Reply {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: witness\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    exchange(&mut stream, method, path, body)
}

fn init(dir: &Path, name: &str, alg: &str) -> (String, CosignerVerifier) {
    let out = common::xgate()
        .run(
            &[
                "witness",
                "init",
                "--dir",
                dir.to_str().expect("utf-8"),
                "--name",
                name,
                "--alg",
                alg,
            ],
            b"",
        )
        .expect_ok();
    let vkey = out.lines().last().expect("a last line").to_owned();
    let verifier = CosignerVerifier::parse(&vkey).expect("the last line is a vkey");
    (vkey, verifier)
}

#[test]
fn init_prints_the_vkey_last_and_never_replaces_a_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("w");
    let (vkey, verifier) = init(&dir, "witness.example/w1", "ml-dsa-44");
    assert_eq!(verifier.alg(), CosignatureAlg::MlDsa44);
    assert_eq!(verifier.name(), "witness.example/w1");
    assert_eq!(verifier.to_string(), vkey);
    let key = dir.join("witness.key");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let secret = std::fs::read_to_string(&key).expect("read");
    let before = secret.clone();
    let again = common::xgate().run(
        &[
            "witness",
            "init",
            "--dir",
            dir.to_str().expect("utf-8"),
            "--name",
            "x.example/w",
        ],
        b"",
    );
    let message = again.expect_error(1);
    assert!(message.contains("already holds a witness key"), "{message}");
    assert_eq!(std::fs::read_to_string(&key).expect("read"), before);
    // The private key is never printed.
    let seed = secret.trim_end().rsplit('+').next().expect("key");
    assert!(!again.stderr.contains(seed));

    let other = tmp.path().join("e");
    let (_, ed) = init(&other, "witness.example/w2", "ed25519");
    assert_eq!(ed.alg(), CosignatureAlg::Ed25519);
    let bad = common::xgate().run(
        &[
            "witness", "init", "--dir", "x", "--name", "n", "--alg", "rsa",
        ],
        b"",
    );
    bad.expect_error(2);
    let bad = common::xgate().run(&["witness", "init", "--dir", "x", "--name", "a b"], b"");
    bad.expect_error(2);
}

#[test]
fn serves_every_status_of_add_checkpoint_and_keeps_state_across_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wdir = tmp.path().join("w");
    let (vkey, verifier) = init(&wdir, "witness.example/w1", "ml-dsa-44");
    let log = TestLog::create(&tmp.path().join("log"));
    log.append("a", 5);
    let server = Server::start(&wdir, &[log.vkey()], &[]);
    assert!(server.url.starts_with("http://127.0.0.1:"));
    let greeting = server.greeting(3);
    assert_eq!(
        greeting.get(1).map(String::as_str),
        Some(&*format!("witness {vkey}"))
    );
    assert_eq!(
        greeting.get(2).map(String::as_str),
        Some(&*format!("log {ORIGIN}: latest cosigned size 0"))
    );

    // 200, and the line verifies with the printed vkey.
    let (body, text) = log.body(0);
    let reply = server.post(&body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        verifier.verify_line(&text, &reply.body).map(|t| t > 0),
        Ok(true)
    );
    assert!(reply.body.ends_with('\n') && reply.body.starts_with("\u{2014} witness.example/w1 "));
    // The checkpoint with the line attached meets a quorum of one.
    let (note, _, _) = log.checkpoint();
    let cosigned = xgate_ledger::cosign::attach(&note, &reply.body).expect("attach");
    let ok = verify_quorum(
        &cosigned,
        &log.log.verifier(),
        std::slice::from_ref(&verifier),
        1,
    )
    .expect("quorum");
    assert!(ok.earliest_time().is_some());

    log.append("b", 3);
    let (body, text) = log.body(5);
    let reply = server.post(&body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(verifier.verify_line(&text, &reply.body).is_ok());

    // 409: the old size is not the latest cosigned (8).
    let (stale, _) = log.body(5);
    let reply = server.post(&stale);
    assert_eq!(reply.status, 409);
    assert_eq!(reply.header("content-type"), Some("text/x.tlog.size"));
    assert_eq!(reply.body, "8\n");

    // 400: old size above the checkpoint's; a malformed body.
    let (note, _, _) = log.checkpoint();
    assert_eq!(
        server.post(format_body(9, &[], &note).as_bytes()).status,
        400
    );
    assert_eq!(server.post(b"old 01\n\nwhatever").status, 400);
    assert_eq!(server.post(b"").status, 400);
    let huge = vec![b'x'; 200 * 1024];
    assert_eq!(server.post(&huge).status, 400);

    // 404: a log this witness does not witness.
    let other = TestLog::create(&tmp.path().join("other"));
    other.append("z", 2);
    let foreign = other.checkpoint().0.replace(ORIGIN, "example.org/another");
    assert_eq!(
        server.post(format_body(0, &[], &foreign).as_bytes()).status,
        404
    );

    // 403: the origin is known, the key is not (another log of the same
    // name), or the signature is bad.
    let (impostor, _) = other.body(0);
    assert_eq!(server.post(&impostor).status, 403);
    let tampered = note.replacen("\n8\n", "\n9\n", 1);
    assert_eq!(
        server
            .post(format_body(8, &[], &tampered).as_bytes())
            .status,
        403
    );

    // 422: a consistency proof that does not verify.
    log.append("c", 4);
    let (note, _, _) = log.checkpoint();
    let mut proof = log.log.consistency(8, 12).expect("proof").hashes;
    proof[0].0[5] ^= 1;
    assert_eq!(
        server.post(format_body(8, &proof, &note).as_bytes()).status,
        422
    );

    // Anything else: 405 on the path, 404 elsewhere.
    let reply = http(&server.addr(), "GET", "/add-checkpoint", b"");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    assert_eq!(http(&server.addr(), "POST", "/checkpoint", b"").status, 404);
    assert_eq!(http(&server.addr(), "GET", "/", b"").status, 404);

    // SIGTERM: a clean exit; the state is kept.
    assert_eq!(server.stop(), Some(0));
    let server = Server::start(&wdir, &[log.vkey()], &[]);
    assert_eq!(
        server.greeting(3).get(2).map(String::as_str),
        Some(&*format!("log {ORIGIN}: latest cosigned size 8"))
    );
    let (body, _) = log.body(5);
    let reply = server.post(&body);
    assert_eq!((reply.status, reply.body.as_str()), (409, "8\n"));
    let (body, text) = log.body(8);
    let reply = server.post(&body);
    assert_eq!(reply.status, 200);
    assert!(verifier.verify_line(&text, &reply.body).is_ok());

    // A second witness process on the same directory is refused.
    let second = common::xgate().run(
        &[
            "witness",
            "serve",
            "--dir",
            wdir.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--log",
            &log.vkey(),
        ],
        b"",
    );
    assert!(second.expect_error(1).contains("in use by another process"));
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.expect("entry").path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_fork_signed_with_the_same_key_is_refused_and_kept_as_evidence() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wdir = tmp.path().join("w");
    let (_, verifier) = init(&wdir, "witness.example/w1", "ed25519");
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    {
        let log = TestLog::create(&a_dir);
        log.append("shared", 6);
    }
    xgate_ledger::fsutil::copy_tree(&a_dir, &b_dir).expect("copy the log");
    let a = TestLog::create(&a_dir);
    let b = TestLog::create(&b_dir);
    assert_eq!(a.vkey(), b.vkey(), "one key, two histories");
    a.append("to state", 4);
    b.append("to hhs", 4);
    let server = Server::start(&wdir, &[a.vkey()], &[]);
    let (body, text) = a.body(0);
    let reply = server.post(&body);
    assert_eq!(reply.status, 200);
    assert!(verifier.verify_line(&text, &reply.body).is_ok());
    // The fork at the same size: refused (422: same size, other root).
    let (forked, _) = b.body(10);
    assert_eq!(server.post(&forked).status, 422);
    // With a stale old size: 409, evidence too.
    let (forked_stale, _) = b.body(6);
    let reply = server.post(&forked_stale);
    assert_eq!((reply.status, reply.body.as_str()), (409, "10\n"));
    let evidence = files(&wdir.join("evidence"));
    let refused: Vec<&PathBuf> = evidence
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{evidence:?}");
    for path in refused {
        let dir = path.parent().expect("dir");
        let key = a.log.verifier();
        let theirs = xgate_ledger::verify_checkpoint(
            &std::fs::read_to_string(dir.join("refused")).expect("read"),
            &key,
        )
        .expect("log-signed");
        let ours = xgate_ledger::verify_checkpoint(
            &std::fs::read_to_string(dir.join("cosigned")).expect("read"),
            &key,
        )
        .expect("log-signed");
        assert_eq!((theirs.size, ours.size), (10, 10));
        assert_ne!(theirs.root, ours.root, "a pair that proves the fork");
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size: 10,
            root: ours.root,
        }
        .body();
        let cosigned = std::fs::read_to_string(dir.join("cosigned")).expect("read");
        let line = cosigned.lines().last().expect("line");
        assert!(
            verifier.verify_line(&text, line).is_ok(),
            "with the witness's cosignature"
        );
    }
}

#[test]
fn serves_https_with_an_agencys_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = tmp.path().join("pki");
    common::xgate()
        .run(
            &[
                "certs",
                "init",
                "--dir",
                pki.to_str().expect("utf-8"),
                "--agency",
                "state",
                "--agency",
                "hhs",
            ],
            b"",
        )
        .expect_ok();
    let wdir = tmp.path().join("w");
    let (_, verifier) = init(&wdir, "witness.state.example/w1", "ml-dsa-44");
    let log = TestLog::create(&tmp.path().join("log"));
    log.append("a", 3);
    let server = Server::start(
        &wdir,
        &[log.vkey()],
        &["--pki", pki.to_str().expect("utf-8"), "--as", "state"],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // A client trusting the federation CA; the agency certificate names
    // the agency (a URI), not the address, so the name is checked by hand.
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut connector = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    connector.set_ca_file(pki.join("ca.crt")).expect("ca");
    connector.set_verify(SslVerifyMode::PEER);
    let connector = connector.build();
    let tcp = TcpStream::connect(server.addr()).expect("connect");
    let mut config = connector.configure().expect("configure");
    config.set_verify_hostname(false);
    let mut tls = config
        .connect("witness", tcp)
        .expect("TLS verifies against the CA");
    let cert = tls.ssl().peer_certificate().expect("a certificate");
    let uris: Vec<String> = cert
        .subject_alt_names()
        .expect("SANs")
        .iter()
        .filter_map(|n| n.uri().map(str::to_owned))
        .collect();
    assert!(uris.iter().any(|u| u.contains("state")), "{uris:?}");
    let (body, text) = log.body(0);
    let reply = exchange(&mut tls, "POST", "/add-checkpoint", &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(verifier.verify_line(&text, &reply.body).is_ok());

    // A client that does not trust the CA is refused.
    let tcp = TcpStream::connect(server.addr()).expect("connect");
    let strict = SslConnector::builder(SslMethod::tls_client())
        .expect("connector")
        .build();
    assert!(strict.connect("localhost", tcp).is_err());

    // An agency not in the PKI: an error, one line.
    let run = common::xgate().run(
        &[
            "witness",
            "serve",
            "--dir",
            tmp.path().join("w2").to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--log",
            &log.vkey(),
            "--pki",
            pki.to_str().expect("utf-8"),
            "--as",
            "gsa",
        ],
        b"",
    );
    assert!(run.expect_error(1).contains("no agency gsa"));
    // --pki without --as is a usage error.
    let run = common::xgate().run(
        &[
            "witness",
            "serve",
            "--dir",
            "w",
            "--listen",
            "127.0.0.1:0",
            "--log",
            &log.vkey(),
            "--pki",
            "p",
        ],
        b"",
    );
    run.expect_error(2);
}

//! The public listener serves the log as C2SP tlog-tiles to anyone, over
//! real TLS on loopback, and a client written here from the specs alone
//! (signed-note, tlog-checkpoint, tlog-tiles, RFC 9162 hashing; none of the
//! ledger's tile or proof code) reads it: it verifies the checkpoint's
//! Ed25519 signature by hand, fetches every tile and bundle the checkpoint
//! needs, checks each level against the one below and the bundles against
//! level 0, and recomputes the root of the checkpoint and of every earlier
//! size a checkpoint of the log was signed for. Then: the headers, 404 for
//! everything else, `public_client_auth`, the metrics, a bind failure, and
//! no personal data in any byte served.

mod federation;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use xgate::client::{Client, Protocol, Reply};

use federation::assets::{desks, federation as asset_federation, offer_body, register_body};
use federation::{Federation, body, id, log_vkey, metric, runtime, xgate};

/// A tlog-tiles client from the specs, independent of `xgate_ledger`.
mod spec {
    use super::*;
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    use sha2::{Digest, Sha256};

    pub type Hash = [u8; 32];

    /// RFC 9162 2.1.1: the hash of a leaf.
    pub fn leaf(entry: &[u8]) -> Hash {
        Sha256::new()
            .chain_update([0u8])
            .chain_update(entry)
            .finalize()
            .into()
    }

    /// RFC 9162 2.1.1: the hash of an interior node.
    pub fn node(left: &Hash, right: &Hash) -> Hash {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }

    /// The root of a perfect tree over `hashes` (a power of two of them).
    pub fn perfect(hashes: &[Hash]) -> Hash {
        assert!(hashes.len().is_power_of_two(), "{}", hashes.len());
        let mut row = hashes.to_vec();
        while row.len() > 1 {
            row = row.chunks(2).map(|p| node(&p[0], &p[1])).collect();
        }
        row[0]
    }

    /// `<N>` of a tile path: three-digit groups, all but the last `x`-prefixed.
    pub fn index(n: u64) -> String {
        let digits = n.to_string();
        let padded = format!("{}{digits}", "0".repeat((3 - digits.len() % 3) % 3));
        let groups: Vec<&str> = (0..padded.len())
            .step_by(3)
            .map(|i| &padded[i..i + 3])
            .collect();
        let (last, rest) = groups.split_last().expect("a group");
        rest.iter()
            .map(|g| format!("x{g}/"))
            .chain([last.to_string()])
            .collect()
    }

    /// The path of tile `n` at `level` (`None`: the entry bundle), partial
    /// of width `w` if `w` is not 0.
    pub fn path(level: Option<u32>, n: u64, w: u64) -> String {
        let level = level.map_or("entries".to_owned(), |l| l.to_string());
        let partial = if w == 0 {
            String::new()
        } else {
            format!(".p/{w}")
        };
        format!("/tile/{level}/{}{partial}", index(n))
    }

    /// A verifier key (signed-note: `name+hex(id)+base64(0x01 || key)`).
    pub struct Vkey {
        pub name: String,
        id: [u8; 4],
        key: VerifyingKey,
    }

    pub fn vkey(text: &str) -> Vkey {
        let mut parts = text.trim().splitn(3, '+');
        let name = parts.next().expect("name").to_owned();
        let id = hex::decode(parts.next().expect("id")).expect("hex id");
        let raw = B64.decode(parts.next().expect("key")).expect("base64 key");
        assert_eq!(raw.len(), 33);
        assert_eq!(raw[0], 0x01, "an Ed25519 key");
        let computed: Hash = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([b'\n', 0x01])
            .chain_update(&raw[1..])
            .finalize()
            .into();
        assert_eq!(
            id,
            computed[..4],
            "the key id is SHA-256(name||0x0A||0x01||key)[:4]"
        );
        Vkey {
            name,
            id: id.try_into().expect("4 bytes"),
            key: VerifyingKey::from_bytes(&raw[1..].try_into().expect("32 bytes")).expect("key"),
        }
    }

    /// A checkpoint's body (tlog-checkpoint).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Checkpoint {
        pub origin: String,
        pub size: u64,
        pub root: Hash,
    }

    /// Verifies `note` (signed-note) with `vkey` and parses its body; the
    /// number of signatures it carries.
    pub fn open(note: &str, vkey: &Vkey) -> (Checkpoint, usize) {
        assert!(note.ends_with('\n'));
        assert!(!note.chars().any(|c| c < ' ' && c != '\n'), "{note:?}");
        let split = note
            .rfind("\n\n")
            .expect("a blank line before the signatures");
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        let mut verified = 0;
        let mut count = 0;
        for line in signatures.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .expect("an em dash and a space");
            let (name, sig) = rest.split_once(' ').expect("name and signature");
            let raw = B64.decode(sig).expect("base64 signature");
            count += 1;
            if name == vkey.name && raw[..4] == vkey.id {
                let signature = Signature::from_slice(&raw[4..]).expect("64 bytes");
                vkey.key
                    .verify(text.as_bytes(), &signature)
                    .expect("the log's signature verifies");
                verified += 1;
            }
        }
        assert!(verified >= 1, "no signature of the log: {note}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 3, "{text}");
        let size = lines[1];
        assert!(size == "0" || !size.starts_with('0'), "{size}");
        let root = B64.decode(lines[2]).expect("base64 root");
        let checkpoint = Checkpoint {
            origin: lines[0].to_owned(),
            size: size.parse().expect("decimal size"),
            root: root.try_into().expect("32 bytes"),
        };
        (checkpoint, count)
    }

    /// The entries of a bundle (big-endian u16 length, entry).
    pub fn entries(bundle: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = bundle;
        while !rest.is_empty() {
            assert!(rest.len() >= 2, "a length cut short");
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            assert!(rest.len() >= 2 + len, "an entry cut short");
            out.push(&rest[2..2 + len]);
            rest = &rest[2 + len..];
        }
        out
    }

    /// The tree of one size as tiles: `rows[l][k]` is the hash of leaves
    /// `k * 256^l .. (k + 1) * 256^l`; and the entries.
    pub struct Tree {
        pub size: u64,
        pub rows: Vec<Vec<Hash>>,
        pub entries: Vec<Vec<u8>>,
        /// Partial tiles or bundles that were gone (fetched from the full one).
        pub fell_back: usize,
        /// Every body fetched, for searching.
        pub bundles: Vec<Vec<u8>>,
        /// (path, content-type, cache-control) of every resource fetched.
        pub served: Vec<(String, String, String)>,
    }

    /// Fetches every tile and bundle a tree of `size` needs, checking each
    /// level against the one below and the bundles against level 0.
    pub async fn fetch(client: &mut Client, size: u64) -> Tree {
        let mut tree = Tree {
            size,
            rows: Vec::new(),
            entries: Vec::new(),
            fell_back: 0,
            bundles: Vec::new(),
            served: Vec::new(),
        };
        for level in 0u32.. {
            let count = size.checked_shr(8 * level).unwrap_or(0);
            if count == 0 {
                break;
            }
            let mut row = Vec::new();
            for n in 0..count.div_ceil(256) {
                let w = if (n + 1) * 256 <= count {
                    0
                } else {
                    count % 256
                };
                let bytes = tree.get(client, Some(level), n, w).await;
                assert_eq!(bytes.len(), 32 * if w == 0 { 256 } else { w as usize });
                row.extend(bytes.chunks(32).map(|h| Hash::try_from(h).expect("32")));
            }
            if level > 0 {
                let below = &tree.rows[level as usize - 1];
                for (k, hash) in row.iter().enumerate() {
                    assert_eq!(
                        *hash,
                        perfect(&below[k * 256..(k + 1) * 256]),
                        "tile level {level} hash {k} is not the root of the full tile below"
                    );
                }
            }
            tree.rows.push(row);
        }
        for n in 0..size.div_ceil(256) {
            let w = if (n + 1) * 256 <= size { 0 } else { size % 256 };
            let bytes = tree.get(client, None, n, w).await;
            let entries = entries(&bytes);
            assert_eq!(entries.len() as u64, if w == 0 { 256 } else { w });
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(
                    leaf(e),
                    tree.rows[0][n as usize * 256 + i],
                    "entry {} does not hash to its level-0 tile",
                    n * 256 + i as u64
                );
                tree.entries.push(e.to_vec());
            }
            tree.bundles.push(bytes);
        }
        tree
    }

    impl Tree {
        /// GETs a tile or bundle; a partial one that is gone is read from
        /// the full one (the spec's fallback).
        async fn get(
            &mut self,
            client: &mut Client,
            level: Option<u32>,
            n: u64,
            w: u64,
        ) -> Vec<u8> {
            let path = path(level, n, w);
            let reply = get(client, &path).await;
            let reply = if reply.status == StatusCode::NOT_FOUND && w > 0 {
                self.fell_back += 1;
                let full = get(client, &super::spec::path(level, n, 0)).await;
                assert_eq!(
                    full.status,
                    StatusCode::OK,
                    "{path}: neither partial nor full"
                );
                let keep = if level.is_some() {
                    32 * w as usize
                } else {
                    prefix_len(&full.body, w)
                };
                Reply {
                    body: full.body.slice(..keep),
                    ..full
                }
            } else {
                reply
            };
            assert_eq!(reply.status, StatusCode::OK, "GET {path}");
            let header = |name| {
                reply
                    .headers
                    .get(name)
                    .map(|v| v.to_str().expect("ascii").to_owned())
                    .unwrap_or_default()
            };
            self.served.push((
                path,
                header(http::header::CONTENT_TYPE),
                header(http::header::CACHE_CONTROL),
            ));
            reply.body.to_vec()
        }

        /// RFC 9162 2.1.1 MTH of the first `n` leaves, from the tiles.
        pub fn root(&self, n: u64) -> Hash {
            assert!(n <= self.size);
            self.mth(0, n)
        }

        fn mth(&self, start: u64, n: u64) -> Hash {
            if n == 0 {
                return Sha256::digest(b"").into();
            }
            if n.is_power_of_two() {
                assert_eq!(start % n, 0);
                // The highest tile level whose hashes fit in the subtree.
                let mut level = 0;
                while 256u64.pow(level + 1) <= n {
                    level += 1;
                }
                let unit = 256u64.pow(level);
                let first = (start / unit) as usize;
                return perfect(&self.rows[level as usize][first..first + (n / unit) as usize]);
            }
            let k = 1u64 << (63 - (n - 1).leading_zeros());
            node(&self.mth(start, k), &self.mth(start + k, n - k))
        }
    }

    /// The bytes of the first `w` entries of a bundle.
    fn prefix_len(bundle: &[u8], w: u64) -> usize {
        let mut at = 0;
        for _ in 0..w {
            at += 2 + usize::from(u16::from_be_bytes([bundle[at], bundle[at + 1]]));
        }
        at
    }
}

/// GETs `path` from the public listener.
async fn get(client: &mut Client, path: &str) -> Reply {
    client
        .request(Method::GET, path, None, Vec::new())
        .await
        .expect("a response")
}

/// A client of the public listener that presents no certificate.
fn anonymous(fed: &Federation, protocol: Protocol) -> Client {
    Client::anonymous(
        &fed.pki().join("ca.crt"),
        fed.gateway.public_url(),
        protocol,
    )
    .expect("client")
}

/// Waits until the public checkpoint is for `size` entries at least, and
/// returns it, verified.
async fn checkpoint_at(
    client: &mut Client,
    vkey: &spec::Vkey,
    size: u64,
) -> (spec::Checkpoint, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = get(client, "/checkpoint").await;
        if reply.status == StatusCode::OK {
            let note = String::from_utf8(reply.body.to_vec()).expect("utf-8");
            let (checkpoint, _) = spec::open(&note, vkey);
            if checkpoint.size >= size {
                return (checkpoint, note);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no public checkpoint for {size} entries"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits `count` record.send envelopes from state to treasury, from 8
/// connections at once; every receipt.
async fn exchange(fed: &Federation, count: usize, text: &str) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..8 {
        let mut client = fed.client("state");
        let signer = fed.signer("state");
        let text = format!("{text} {c}");
        tasks.spawn_local(async move {
            let mut receipts = Vec::new();
            for i in (c..count).step_by(8) {
                let jws = signer
                    .sign(
                        &id("treasury"),
                        "record.send",
                        body(&format!("{text} {i}")),
                        60,
                        None,
                    )
                    .expect("sign");
                let reply = client.submit(jws).await.expect("a response");
                assert_eq!(
                    reply.status,
                    StatusCode::CREATED,
                    "{}",
                    String::from_utf8_lossy(&reply.body)
                );
                receipts.push(serde_json::from_slice(&reply.body).expect("receipt"));
            }
            receipts
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("task"));
    }
    all
}

#[test]
fn a_client_from_the_spec_reads_the_log_and_recomputes_every_root() {
    let fed = Federation::start();
    let vkey = spec::vkey(&log_vkey(&fed.data()));
    let local = tokio::task::LocalSet::new();
    let rt = runtime();
    local.block_on(&rt, async {
        let mut public = anonymous(&fed, Protocol::Auto);
        // Before the first publication there is no checkpoint (or one for
        // the empty log).
        let first = get(&mut public, "/checkpoint").await;
        assert!(
            matches!(first.status, StatusCode::OK | StatusCode::NOT_FOUND),
            "{first:?}"
        );

        // The log grows in batches; each batch's public checkpoint is kept.
        let mut notes: BTreeMap<u64, spec::Checkpoint> = BTreeMap::new();
        let mut receipts = Vec::new();
        let mut total = 0;
        for batch in [1usize, 255, 1, 300, 45] {
            receipts.extend(exchange(&fed, batch, "batch").await);
            total += batch as u64;
            let (checkpoint, _) = checkpoint_at(&mut public, &vkey, total).await;
            notes.insert(checkpoint.size, checkpoint);
        }
        let (latest, _) = checkpoint_at(&mut public, &vkey, total).await;
        assert_eq!(latest.size, total, "the log holds exactly what was sent");
        assert_eq!(latest.origin, vkey.name, "the key is named for the origin");

        let tree = spec::fetch(&mut public, latest.size).await;
        assert_eq!(
            tree.fell_back, 0,
            "every partial of the published size is served"
        );
        assert_eq!(tree.root(latest.size), latest.root, "the checkpoint's root");
        // 602 entries: level 0 has 2 full tiles and a partial of 90, level
        // 1 a partial of 2; 2 full bundles and a partial.
        assert_eq!(tree.rows[0].len(), 602);
        assert_eq!(tree.rows[1].len(), 2);
        assert_eq!(tree.rows.len(), 2);

        // Every earlier size the log signed a checkpoint for: the public
        // ones of each batch, and the one in every receipt.
        for receipt in &receipts {
            let (checkpoint, _) = spec::open(receipt["checkpoint"].as_str().expect("note"), &vkey);
            notes.insert(checkpoint.size, checkpoint);
            // The receipt's entry is the one the bundle serves.
            let index = receipt["log_index"].as_u64().expect("index") as usize;
            let entry = B64
                .decode(receipt["entry"].as_str().expect("entry"))
                .expect("b64");
            assert_eq!(tree.entries[index], entry, "entry {index}");
        }
        assert!(notes.len() > 5, "{} sizes", notes.len());
        for (size, checkpoint) in &notes {
            assert_eq!(tree.root(*size), checkpoint.root, "the root at size {size}");
        }

        // Headers, per the spec and the issue.
        for (path, kind, cache) in &tree.served {
            assert_eq!(kind, "application/octet-stream", "{path}");
            assert_eq!(cache, "public, max-age=31536000, immutable", "{path}");
        }
        let checkpoint = get(&mut public, "/checkpoint").await;
        assert_eq!(
            checkpoint.headers["content-type"],
            "text/plain; charset=utf-8"
        );
        assert_eq!(checkpoint.headers["cache-control"], "no-store");
        assert!(checkpoint.http2, "HTTP/2 is offered");

        // The same over HTTP/1.1, and a query string changes nothing.
        let mut h1 = anonymous(&fed, Protocol::Http1);
        let full = get(&mut h1, "/tile/0/000?v=1").await;
        assert_eq!(full.status, StatusCode::OK);
        assert_eq!(&full.body[..32], &tree.rows[0][0]);

        // The metrics count by class and status, nothing else.
        let mut state = fed.client("state");
        for (series, at_least) in [
            (
                r#"xgate_public_requests_total{resource="tile",status="200"}"#,
                2.0,
            ),
            (
                r#"xgate_public_requests_total{resource="tile_partial",status="200"}"#,
                2.0,
            ),
            (
                r#"xgate_public_requests_total{resource="entries",status="200"}"#,
                2.0,
            ),
            (
                r#"xgate_public_requests_total{resource="entries_partial",status="200"}"#,
                1.0,
            ),
            (
                r#"xgate_public_requests_total{resource="checkpoint",status="200"}"#,
                6.0,
            ),
        ] {
            let value = metric(&mut state, series).await.unwrap_or(0.0);
            assert!(value >= at_least, "{series} = {value}");
        }
    });
    assert_eq!(fed.gateway.stop(), Some(0), "SIGTERM drains both listeners");
}

#[test]
fn everything_else_is_404_and_never_cached() {
    let fed = Federation::start();
    let local = tokio::task::LocalSet::new();
    let rt = runtime();
    local.block_on(&rt, async {
        exchange(&fed, 3, "a few").await;
        let mut public = anonymous(&fed, Protocol::Http1);
        let vkey = spec::vkey(&log_vkey(&fed.data()));
        checkpoint_at(&mut public, &vkey, 3).await;
        for (path, status) in [
            ("/checkpoint", 200),
            ("/tile/0/000.p/3", 200),
            ("/tile/entries/000.p/3", 200),
        ] {
            assert_eq!(
                get(&mut public, path).await.status.as_u16(),
                status,
                "{path}"
            );
        }
        // `/` is the auditor's page (tests/auditor_page.rs).
        let bad_paths = [
            "/index.html",
            "/checkpoint/",
            "//checkpoint",
            "/CHECKPOINT",
            "/checkpoint.txt",
            "/v1/log/checkpoint",
            "/healthz",
            "/metrics",
            "/tile",
            "/tile/",
            "/tile/0",
            "/tile/0/",
            "/tile/0/0",
            "/tile/0/00",
            "/tile/0/0000",
            "/tile/00/000.p/3",
            "/tile/0/x000/000.p/3",
            "/tile/0/000.p/03",
            "/tile/0/000.p/+3",
            "/tile/0/000.p/3/",
            "/tile/0/000.p/0",
            "/tile/0/000.p/256",
            "/tile/64/000",
            "/tile/0/000",
            "/tile/0/000.p/2",
            "/tile/0/000.p/4",
            "/tile/1/000.p/1",
            "/tile/entries/000",
            "/tile/entries/001.p/3",
            "/tile/entries/000.p/03",
            "/tile/entry/000.p/3",
            "/tile/../checkpoint",
            "/tile/0/../../checkpoint",
            "/tile/entries/../0/000.p/3",
            "/tile/0/%30%30%30.p/3",
            "/%63heckpoint",
            "/tile/0/000.p%2f3",
            "/../../etc/passwd",
            "/tile/0/000.p/3%00",
        ];
        for path in bad_paths {
            let reply = get(&mut public, path).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "GET {path}");
            assert_eq!(reply.headers["cache-control"], "no-store", "GET {path}");
        }
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
            Method::HEAD,
        ] {
            let body = if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                b"x".to_vec()
            } else {
                Vec::new()
            };
            for path in ["/checkpoint", "/tile/0/000.p/3", "/tile/entries/000.p/3"] {
                // A connection whose request body was not read may be
                // closed after the answer: each on a connection of its own.
                let mut fresh = anonymous(&fed, Protocol::Http1);
                let reply = fresh
                    .request(method.clone(), path, Some("text/plain"), body.clone())
                    .await
                    .expect("a response");
                assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
            }
        }
        let mut state = fed.client("state");
        let other = metric(
            &mut state,
            r#"xgate_public_requests_total{resource="other",status="404"}"#,
        )
        .await;
        assert!(other.unwrap_or(0.0) >= 20.0, "{other:?}");
    });
}

#[test]
fn public_client_auth_requires_a_federation_certificate() {
    let fed = Federation::start_with(&[], &[("XGATE_PUBLIC_CLIENT_AUTH", "true")]);
    let rt = runtime();
    // No certificate: the handshake is refused, no HTTP answer.
    let mut public = anonymous(&fed, Protocol::Http1);
    let refused = rt.block_on(public.request(Method::GET, "/checkpoint", None, Vec::new()));
    assert!(refused.is_err(), "{refused:?}");
    // A certificate from another CA: refused too.
    let other = tempfile::tempdir().expect("tempdir");
    federation::make_pki(&other.path().join("pki"), &["state"]);
    let home = other.path().join("pki/state");
    let mut stranger = Client::new(
        &fed.pki().join("ca.crt"),
        &home.join("tls.crt"),
        &home.join("tls.key"),
        fed.gateway.public_url(),
        Protocol::Http1,
    )
    .expect("client");
    assert!(
        rt.block_on(stranger.request(Method::GET, "/checkpoint", None, Vec::new()))
            .is_err()
    );
    // A federation certificate: served.
    let mut member = Client::for_agency(
        &fed.pki(),
        &id("treasury"),
        fed.gateway.public_url(),
        Protocol::Auto,
    )
    .expect("client");
    let reply = rt.block_on(async {
        exchange_one(&fed).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reply = get(&mut member, "/checkpoint").await;
            if reply.status == StatusCode::OK || Instant::now() > deadline {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(reply.status, StatusCode::OK);
    // ...and its certificate, once revoked, no longer is.
    let pki = fed.pki().display().to_string();
    xgate()
        .run(
            &["certs", "revoke", "--dir", &pki, "--agency", "treasury"],
            b"",
        )
        .expect_ok();
    fed.gateway.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The open connection is refused per request, a new one at the handshake.
        let open = rt.block_on(member.request(Method::GET, "/checkpoint", None, Vec::new()));
        if matches!(&open, Ok(r) if r.status == StatusCode::FORBIDDEN) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a revoked member is still served: {open:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut fresh = Client::for_agency(
        &fed.pki(),
        &id("treasury"),
        fed.gateway.public_url(),
        Protocol::Http1,
    )
    .expect("client");
    assert!(
        rt.block_on(fresh.request(Method::GET, "/checkpoint", None, Vec::new()))
            .is_err()
    );
}

async fn exchange_one(fed: &Federation) {
    let mut client = fed.client("state");
    let jws = fed
        .signer("state")
        .sign(&id("treasury"), "record.send", body("one"), 60, None)
        .expect("sign");
    assert_eq!(
        client.submit(jws).await.expect("reply").status,
        StatusCode::CREATED
    );
}

#[test]
fn a_public_address_in_use_stops_the_start_with_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let root = tempfile::tempdir().expect("tempdir");
    federation::make_pki(&root.path().join("pki"), &["state"]);
    let out = Command::new(env!("CARGO_BIN_EXE_xgate"))
        .arg("serve")
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .arg("--pki")
        .arg(root.path().join("pki"))
        .args(["--listen", "127.0.0.1:0", "--public-listen", &addr])
        .stdin(Stdio::null())
        .output()
        .expect("run xgate serve");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (public_listen)")),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing was announced: {:?}",
        out.stdout
    );
}

/// Distinctive personal data, each sent in a field of an envelope.
const MARKERS: [&str; 9] = [
    "ZQXNAME-Okonkwo-Haldane",
    "ZQX-MRN-7730119",
    "ZQX-FREE-TEXT-broken-left-tibia",
    "ZQX-LOCATION-Room-4417",
    "ZQX-PERSON-Ferreira-Aline",
    "ZQX-SUBJECT-MRN-5520",
    "ZQX-INCIDENT-8812",
    "ZQX-RESPONDER-Lindqvist",
    "ZQX-REVIEWNOTE-late-night",
];

#[test]
fn entries_carry_no_personal_data() {
    let fed = asset_federation(&[]);
    let [
        name,
        mrn,
        text,
        location,
        person,
        subject,
        incident,
        responder,
        note,
    ] = MARKERS;
    let rt = runtime();
    let tag = "ZQXTAG-0042";
    rt.block_on(async {
        let mut desks = desks(&fed);
        let [state, ..] = &mut desks;
        // Records carrying names, an MRN and free text in their bodies.
        for (i, value) in [name, mrn, text].into_iter().enumerate() {
            let record =
                json!({"record": {"patient": value, "mrn": mrn, "note": format!("{text} {i}")}});
            state.accepted("treasury", "record.send", record).await;
        }
        // An asset held by a named person at a named location, offered to another.
        let me = state.me();
        state
            .accepted(
                &me,
                "asset.register",
                register_body(tag, &me, person, location),
            )
            .await;
        state
            .accepted(
                "treasury",
                "asset.transfer.offer",
                offer_body(tag, "treasury", name),
            )
            .await;
    });
    // A medical emergency request, answered and reviewed, with a marker in
    // every personal field.
    let pki = fed.pki().display().to_string();
    let gateway = fed.gateway.url().to_owned();
    let medical = |agency: &str, args: &[&str]| -> String {
        let mut all = vec![
            "medical",
            args[0],
            "--pki",
            &pki,
            "--as",
            agency,
            "--gateway",
            &gateway,
        ];
        all.extend_from_slice(&args[1..]);
        xgate().run(&all, b"").expect_ok()
    };
    let out = medical(
        "state",
        &[
            "request",
            "--to",
            "hhs",
            "--subject",
            subject,
            "--purpose",
            "ETREAT",
            "--incident",
            incident,
            "--responder",
            responder,
            "--role",
            "medical-officer",
            "--section",
            "allergies",
        ],
    );
    let first: Value = serde_json::from_str(out.lines().next().expect("a line")).expect("json");
    let jti = first["jti"].as_str().expect("jti").to_owned();
    let bundle = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ips/ips-avery.json");
    let marked_dir = tempfile::tempdir().expect("tempdir");
    let marked = marked_dir.path().join("bundle.json");
    let fixture = std::fs::read_to_string(&bundle).expect("fixture");
    std::fs::write(
        &marked,
        fixture.replacen("\"family\": \"", &format!("\"family\": \"{name} "), 1),
    )
    .expect("write");
    medical(
        "hhs",
        &[
            "respond",
            "--request",
            &jti,
            "--bundle",
            &marked.display().to_string(),
        ],
    );
    medical(
        "hhs",
        &[
            "review",
            "--request",
            &jti,
            "--outcome",
            "appropriate",
            "--note",
            note,
        ],
    );
    // The same request sent in clear (`--plain`): the gateway reads its
    // subject, and logs only its salted hash.
    medical(
        "state",
        &[
            "request",
            "--to",
            "hhs",
            "--subject",
            mrn,
            "--purpose",
            "ETREAT",
            "--incident",
            incident,
            "--responder",
            responder,
            "--role",
            "medical-officer",
            "--section",
            "allergies",
            "--plain",
        ],
    );
    let bytes = rt.block_on(async {
        let size = federation::log_size(&mut fed.client("gao")).await;
        assert!(size >= 9, "{size} entries");
        served_bytes(&fed, size).await
    });

    // The search is not vacuous: the entries hold the flows' metadata.
    let all = String::from_utf8_lossy(&bytes).into_owned();
    for expected in [
        "\"kind\":\"asset.register\"",
        "\"purpose\":\"ETREAT\"",
        "\"outcome\":\"appropriate\"",
        "\"iss\":\"state\"",
    ] {
        assert!(all.contains(expected), "{expected} not served: {all}");
    }
    // The asset's tag is in its entries by design (an auditor follows an
    // asset through the log by it), and a person only as a salted hash.
    assert!(all.contains(tag));
    assert!(all.contains("\"person\":\""));
    for marker in MARKERS {
        let encodings = [
            marker.as_bytes().to_vec(),
            B64.encode(marker).into_bytes(),
            B64URL.encode(marker).into_bytes(),
            hex::encode(marker).into_bytes(),
            hex::encode_upper(marker).into_bytes(),
            // Inside a longer base64 text the encoding depends on the
            // offset: the marker's middle, at each of the three.
            B64.encode(&marker.as_bytes()[1..]).into_bytes()[4..16].to_vec(),
            B64.encode(&marker.as_bytes()[2..]).into_bytes()[4..16].to_vec(),
        ];
        for encoded in encodings {
            assert!(
                !bytes.windows(encoded.len()).any(|w| w == encoded),
                "{marker} appears in a served bundle ({})",
                String::from_utf8_lossy(&encoded)
            );
        }
    }
}

/// Every byte of every entry bundle the public listener serves for its
/// checkpoint, once that checkpoint holds `size` entries at least.
async fn served_bytes(fed: &Federation, size: u64) -> Vec<u8> {
    let vkey = spec::vkey(&log_vkey(&fed.data()));
    let mut public = anonymous(fed, Protocol::Auto);
    let (checkpoint, note) = checkpoint_at(&mut public, &vkey, size).await;
    let tree = spec::fetch(&mut public, checkpoint.size).await;
    assert_eq!(tree.root(checkpoint.size), checkpoint.root);
    let mut all = note.into_bytes();
    for b in &tree.bundles {
        all.extend_from_slice(b);
    }
    all
}

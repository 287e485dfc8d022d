//! `xgate audit replay --log URL... --registry FILE`: a federation's
//! public logs replayed together. Each log is a real log made by `xgate log
//! append` (entries in the exact encoding the gateway writes, from
//! `xgate_server::entry::Entry`), served as static tlog-tiles over HTTPS by
//! a file server in the test (a data directory's `log/` is exactly a
//! tlog-tiles tree), its key from `xgate log key`, in a registry written by
//! hand. Cases: a clean federation of three logs; an entry only on the
//! sender's side, only on the recipient's; the same sender and `jti` with
//! another envelope; an entry logged by a gateway serving neither party; a
//! checkpoint no registry key verifies; entries tampered with after the
//! checkpoint; a log not given (unchecked); an asset's chain of holders
//! across two logs.

mod federation;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use xgate_server::entry::Entry;
use xgate_tests::Run;

use federation::{log_vkey, runtime, xgate};

/// 2025-11-25T00:00:00Z, the time of the first entry.
const T: i64 = 1_764_028_800;

/// The policy hash every entry names.
const POLICY: &str = "9c1f0000000000000000000000000000000000000000000000000000000000e0";

/// Which gateway serves which agencies.
const GATEWAYS: [(&str, &[&str]); 3] = [
    ("east", &["state"]),
    ("west", &["treasury"]),
    ("north", &["gsa", "hhs"]),
];

/// One entry, as a gateway logs it.
#[derive(Clone, Debug)]
struct E {
    kind: &'static str,
    iss: &'static str,
    aud: &'static str,
    jti: &'static str,
    time: i64,
    decision: &'static str,
    tag: Option<&'static str>,
    expires: Option<i64>,
    uses: Option<u32>,
    request: Option<&'static str>,
    outcome: Option<&'static str>,
    /// For a recipient's copy, when the sender's gateway logged it.
    sent: Option<i64>,
    /// What the envelope hash is computed from (by default the sender and
    /// `jti`, so both sides of an exchange agree).
    envelope: String,
}

fn e(kind: &'static str, iss: &'static str, aud: &'static str, jti: &'static str, at: i64) -> E {
    E {
        kind,
        iss,
        aud,
        jti,
        time: T + at,
        decision: "allow",
        tag: None,
        expires: None,
        uses: None,
        request: None,
        outcome: None,
        sent: None,
        envelope: format!("{iss} {jti}"),
    }
}

impl E {
    fn tag(mut self, tag: &'static str) -> E {
        self.tag = Some(tag);
        self
    }

    fn expires(mut self, at: i64) -> E {
        self.expires = Some(T + at);
        self
    }

    fn about(mut self, request: &'static str) -> E {
        self.request = Some(request);
        self
    }

    /// The recipient's copy: the same envelope, logged at `at`, judged at
    /// the time the sender's gateway logged it (`sent`): an offer keeps
    /// the expiry that gateway logged, and a grant (the same policy) the
    /// same terms.
    fn copy(&self, at: i64) -> E {
        let mut copy = self.clone();
        copy.time = T + at;
        copy.sent = Some(self.time);
        copy
    }

    /// The canonical line the gateway would log.
    fn line(&self) -> String {
        let envelope = hex::encode(Sha256::digest(self.envelope.as_bytes()));
        let entry = Entry {
            aud: self.aud,
            decision: self.decision,
            envelope,
            expires: self.expires,
            iss: self.iss,
            jti: self.jti,
            kind: self.kind,
            outcome: self.outcome,
            person: None,
            policy: POLICY,
            purpose: (self.kind == "medical.request").then_some("ETREAT"),
            request: self.request,
            sent: self.sent,
            tag: self.tag,
            time: self.time,
            uses: self.uses,
            v: 1,
        };
        String::from_utf8(entry.encode().expect("encodes")).expect("utf-8")
    }
}

/// The clean story across three gateways: an asset registered at east
/// and transferred to treasury at west; records from state to treasury and
/// gsa; a break-the-glass medical request from treasury to hhs at north,
/// answered and reviewed; an asset registered at north.
fn story() -> BTreeMap<&'static str, Vec<E>> {
    let record = e("record.send", "state", "treasury", "r-1", 1);
    let offer = e("asset.transfer.offer", "state", "treasury", "o-1", 2)
        .tag("LAP-1")
        .expires(1000);
    let accept = e("asset.transfer.accept", "treasury", "state", "a-1", 5).tag("LAP-1");
    let to_gsa = e("record.send", "state", "gsa", "r-2", 7);
    let mut request = e("medical.request", "treasury", "hhs", "q-1", 8).expires(3600);
    request.decision = "break-glass";
    request.uses = Some(1);
    let response = e("medical.response", "hhs", "treasury", "s-1", 10).about("q-1");
    let mut review = e("review.decision", "hhs", "hhs", "v-1", 11).about("q-1");
    review.outcome = Some("appropriate");
    BTreeMap::from([
        (
            "east",
            vec![
                e("asset.register", "state", "state", "g-1", 0).tag("LAP-1"),
                record.clone(),
                offer.clone(),
                accept.copy(6),
                to_gsa.clone(),
            ],
        ),
        (
            "west",
            vec![
                record.copy(2),
                offer.copy(3),
                accept,
                request.clone(),
                response.copy(11),
            ],
        ),
        (
            "north",
            vec![
                to_gsa.copy(8),
                request.copy(9),
                response,
                review,
                e("asset.register", "gsa", "gsa", "g-2", 12).tag("LAP-2"),
                e("inventory.report", "gsa", "gsa", "i-1", 13),
            ],
        ),
    ])
}

/// A federation's logs on disk, served over HTTPS, and its registry.
struct Fed {
    root: tempfile::TempDir,
    addr: SocketAddr,
}

impl Fed {
    /// Makes one log per gateway of `logs` with `xgate log append` (origin
    /// `xgate/<gateway>`), serves them, and writes the registry.
    fn new(logs: &BTreeMap<&'static str, Vec<E>>) -> Fed {
        let root = tempfile::tempdir().expect("tempdir");
        for (gateway, entries) in logs {
            append(
                &root.path().join(gateway),
                &format!("xgate/{gateway}"),
                entries,
            );
        }
        let fed = Fed {
            addr: serve(root.path()),
            root,
        };
        fed.write_registry(&BTreeMap::new());
        fed
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The registry, each gateway's `log_key` its log's key unless
    /// `keys` names another.
    fn write_registry(&self, keys: &BTreeMap<&str, String>) {
        let mut text = String::new();
        for (gateway, agencies) in GATEWAYS {
            let key = keys.get(gateway).cloned().unwrap_or_else(|| {
                let data = self.path(gateway);
                match data.exists() {
                    true => log_vkey(&data),
                    // A gateway whose log the test never made: any key.
                    false => other_key(gateway),
                }
            });
            text.push_str(&format!(
                "[[gateway]]\nid = \"{gateway}\"\nurl = \"https://{gateway}.example:8443\"\nlog_key = \"{key}\"\n\n[gateway.certificate]\nuri = \"urn:xgate:gateway:{gateway}\"\n\n"
            ));
            for agency in agencies {
                text.push_str(&format!(
                    "[[agency]]\nid = \"{agency}\"\nname = \"{agency}\"\ngateway = \"{gateway}\"\n\n\
                     [agency.certificate]\nuri = \"urn:xgate:agency:{agency}\"\n\n\
                     [agency.signing_key]\nkty = \"OKP\"\ncrv = \"Ed25519\"\nx = \"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\nkid = \"{agency}-sig\"\nuse = \"sig\"\n\n\
                     [agency.encryption_key]\nkty = \"OKP\"\ncrv = \"X25519\"\nx = \"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"\nkid = \"{agency}-enc\"\nuse = \"enc\"\n\n"
                ));
            }
        }
        std::fs::write(self.path("registry.toml"), text).expect("registry");
    }

    fn url(&self, gateway: &str) -> String {
        format!("https://{}/{gateway}/log", self.addr)
    }

    /// `xgate audit replay --log` over the logs of `gateways`.
    fn replay(&self, gateways: &[&str]) -> Run {
        let registry = self.path("registry.toml").display().to_string();
        let ca = self.path("ca.crt").display().to_string();
        let mut args = vec![
            "audit".to_owned(),
            "replay".into(),
            "--registry".into(),
            registry,
            "--ca".into(),
            ca,
        ];
        for gateway in gateways {
            args.push("--log".into());
            args.push(self.url(gateway));
        }
        xgate().run(&args, b"")
    }
}

/// Appends `entries` to a new log in `data` with `xgate log append`.
fn append(data: &Path, origin: &str, entries: &[E]) {
    let lines: String = entries.iter().map(|e| e.line() + "\n").collect();
    let data = data.display().to_string();
    let out = xgate()
        .run(
            &["log", "append", "--data-dir", &data, "--origin", origin],
            lines.as_bytes(),
        )
        .expect_ok();
    assert!(
        out.contains(&format!("\"appended\":{}", entries.len())),
        "{out}"
    );
}

/// The key of a log made elsewhere with the origin of `gateway`'s: same
/// name, another key.
fn other_key(gateway: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    append(
        dir.path(),
        &format!("xgate/{gateway}"),
        &[e("record.send", "state", "state", "x", 0)],
    );
    log_vkey(dir.path())
}

/// The findings a failed replay printed, checking its exit and its one
/// error line.
fn findings(run: &Run) -> Vec<String> {
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.starts_with("xgate: error: ") && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );
    let lines: Vec<String> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty() && lines.len() <= 50, "{lines:?}");
    lines
}

#[test]
fn a_clean_federation_of_three_logs_replays_with_exact_counts() {
    let fed = Fed::new(&story());
    let out = fed.replay(&["east", "west", "north"]).expect_ok();
    assert_eq!(
        out,
        "ok: replayed 3 logs, 16 entries, 6 cross-gateway exchanges matched, 0 unchecked, 2 assets, 1 medical requests\n"
    );
    // The order the logs are given in does not matter.
    let again = fed.replay(&["north", "east", "west"]).expect_ok();
    assert_eq!(again, out);
}

#[test]
fn an_entry_only_in_the_senders_log_is_one_sided() {
    let mut logs = story();
    logs.get_mut("west").expect("west").remove(0);
    let fed = Fed::new(&logs);
    let lines = findings(&fed.replay(&["east", "west", "north"]));
    assert_eq!(
        lines,
        [
            "one-sided: gateway east entry 1: iss state jti r-1 kind record.send: missing on the recipient's side, gateway west's log"
        ]
    );
}

#[test]
fn an_entry_only_in_the_recipients_log_is_one_sided() {
    let mut logs = story();
    logs.get_mut("east").expect("east").remove(4);
    let fed = Fed::new(&logs);
    let lines = findings(&fed.replay(&["east", "west", "north"]));
    assert_eq!(
        lines,
        [
            "one-sided: gateway north entry 0: iss state jti r-2 kind record.send: missing on the sender's side, gateway east's log"
        ]
    );
}

#[test]
fn the_same_sender_and_jti_with_another_envelope_or_a_stray_entry_are_findings() {
    let mut logs = story();
    let west = logs.get_mut("west").expect("west");
    west[0].envelope = "another envelope".into();
    // North serves neither state nor treasury.
    let stray = e("record.send", "state", "treasury", "r-9", 20);
    logs.get_mut("north").expect("north").push(stray);
    let fed = Fed::new(&logs);
    let lines = findings(&fed.replay(&["east", "west", "north"]));
    assert_eq!(
        lines,
        [
            "mismatch: gateway east entry 1 and gateway west entry 0: iss state jti r-1: the same iss and jti with another envelope hash",
            "stray: gateway north entry 6: iss state jti r-9 kind record.send: logged by gateway north, which serves neither state (gateway east) nor treasury (gateway west)",
        ]
    );
}

#[test]
fn a_copy_logged_long_before_its_sender_logged_it_is_a_finding() {
    let mut logs = story();
    // West's copy of r-1 at T - 120: two minutes before east logged it.
    logs.get_mut("west").expect("west")[0].time = T - 120;
    let fed = Fed::new(&logs);
    let lines = findings(&fed.replay(&["east", "west", "north"]));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "early: gateway west entry 0: iss state jti r-1 kind record.send: logged at"
        ) && lines[0].contains("more than 60 s before gateway east entry 1"),
        "{lines:?}"
    );
}

#[test]
fn a_checkpoint_no_registry_key_verifies_is_refused() {
    let fed = Fed::new(&story());
    // Another key under west's name.
    fed.write_registry(&BTreeMap::from([("west", other_key("west"))]));
    let message = fed.replay(&["east", "west"]).expect_error(1);
    assert!(
        message.contains(&fed.url("west"))
            && message.contains("does not verify with the log key the registry gives gateway west"),
        "{message}"
    );
    // A log whose origin names no gateway of the registry.
    append(
        &fed.path("elsewhere"),
        "xgate/elsewhere",
        &[e("record.send", "state", "state", "x", 0)],
    );
    let message = fed.replay(&["east", "elsewhere"]).expect_error(1);
    assert!(
        message.contains(&fed.url("elsewhere"))
            && message.contains("origin \"xgate/elsewhere\" names no gateway's log key"),
        "{message}"
    );
}

#[test]
fn entries_tampered_with_after_the_checkpoint_are_refused() {
    let fed = Fed::new(&story());
    let log = fed.path("west").join("log").join("tile");
    let bundle = log.join("entries").join("000.p").join("5");
    let tile = log.join("0").join("000.p").join("5");
    let original = std::fs::read(&bundle).expect("bundle");
    // Entry 2 (treasury's accept) names another tag: same length.
    let text = String::from_utf8(original.clone()).expect("utf-8");
    let tampered = text.replacen(
        "\"tag\":\"LAP-1\",\"time\":1764028805",
        "\"tag\":\"LAP-9\",\"time\":1764028805",
        1,
    );
    assert_ne!(tampered, text, "the accept is in the bundle");
    writable(&bundle);
    std::fs::write(&bundle, &tampered).expect("tamper");
    // The bundle no longer matches its tile.
    let message = fed.replay(&["east", "west"]).expect_error(1);
    assert!(
        message.contains("(gateway west) its entries are not the log's")
            && message.contains("entry 2"),
        "{message}"
    );
    // The tile rewritten to match: the entries no longer hash to the root.
    let hashes = leaf_hashes(tampered.as_bytes());
    writable(&tile);
    std::fs::write(&tile, hashes.concat()).expect("tamper the tile");
    let message = fed.replay(&["east", "west"]).expect_error(1);
    assert!(
        message.contains(&fed.url("west"))
            && message.contains("its entries do not hash to the root of its checkpoint of size 5"),
        "{message}"
    );
}

#[test]
fn a_log_not_given_leaves_its_exchanges_unchecked() {
    let fed = Fed::new(&story());
    // Without north: east's record to gsa, west's request to hhs and
    // west's copy of hhs's response are unchecked.
    let out = fed.replay(&["east", "west"]).expect_ok();
    assert_eq!(
        out,
        "ok: replayed 2 logs, 10 entries, 3 cross-gateway exchanges matched, 3 unchecked, 1 assets, 1 medical requests\n"
    );
    // East alone: every cross-gateway entry is unchecked.
    let out = fed.replay(&["east"]).expect_ok();
    assert_eq!(
        out,
        "ok: replayed 1 logs, 5 entries, 0 cross-gateway exchanges matched, 4 unchecked, 1 assets, 0 medical requests\n"
    );
}

#[test]
fn an_assets_holders_follow_transfers_across_two_logs() {
    // Register at east, offer state -> treasury (both logs), accept
    // treasury -> state (both logs): treasury holds it, so treasury may
    // offer it on to gsa, and state may not offer it any more.
    let register = e("asset.register", "state", "state", "g-1", 0).tag("LAP-1");
    let offer = e("asset.transfer.offer", "state", "treasury", "o-1", 1)
        .tag("LAP-1")
        .expires(1000);
    let accept = e("asset.transfer.accept", "treasury", "state", "a-1", 3).tag("LAP-1");
    let onward = e("asset.transfer.offer", "treasury", "gsa", "o-2", 5)
        .tag("LAP-1")
        .expires(1000);
    let logs = BTreeMap::from([
        (
            "east",
            vec![register.clone(), offer.clone(), accept.copy(4)],
        ),
        ("west", vec![offer.copy(2), accept.clone(), onward.clone()]),
    ]);
    let fed = Fed::new(&logs);
    let out = fed.replay(&["east", "west"]).expect_ok();
    assert_eq!(
        out,
        "ok: replayed 2 logs, 6 entries, 2 cross-gateway exchanges matched, 1 unchecked, 1 assets, 0 medical requests\n"
    );

    // State, no longer the holder, offers it again: the recomputed holder
    // is treasury.
    let stale = e("asset.transfer.offer", "state", "gsa", "o-3", 6)
        .tag("LAP-1")
        .expires(1000);
    let mut logs = logs;
    logs.get_mut("east").expect("east").push(stale);
    let fed = Fed::new(&logs);
    let lines = findings(&fed.replay(&["east", "west"]));
    assert_eq!(
        lines,
        [
            "state: gateway east entry 3: an offer of tag LAP-1 by state, which does not hold it (treasury does)"
        ]
    );

    // An accept by an agency the offer was not made to, on both sides.
    let wrong = e("asset.transfer.accept", "treasury", "state", "a-1", 3).tag("LAP-2");
    let logs = BTreeMap::from([
        (
            "east",
            vec![
                register,
                e("asset.register", "state", "state", "g-2", 0).tag("LAP-2"),
                wrong.copy(4),
            ],
        ),
        ("west", vec![wrong]),
    ]);
    let fed = Fed::new(&logs);
    let lines = findings(&fed.replay(&["east", "west"]));
    assert_eq!(
        lines,
        ["state: gateway west entry 0: asset.transfer.accept of tag LAP-2 with no open offer"]
    );
}

#[test]
fn a_tag_registered_at_two_gateways_and_a_response_with_no_request_are_contradictions() {
    let logs = BTreeMap::from([
        (
            "east",
            vec![e("asset.register", "state", "state", "g-1", 0).tag("LAP-1")],
        ),
        (
            "north",
            vec![
                e("asset.register", "gsa", "gsa", "g-2", 1).tag("LAP-1"),
                e("medical.response", "hhs", "treasury", "s-9", 2).about("q-9"),
            ],
        ),
    ]);
    let fed = Fed::new(&logs);
    let lines = findings(&fed.replay(&["east", "north"]));
    assert_eq!(
        lines,
        [
            "state: gateway north entry 0: a second registration of tag LAP-1, by gsa (first by state)",
            "state: gateway north entry 1: medical.response by hhs about request q-9, a request never logged (for hhs)",
        ]
    );
}

#[test]
fn at_most_fifty_findings_are_printed_and_all_are_counted() {
    // Entries hold `&'static str`s: sixty jtis for the life of the test.
    let sent: Vec<E> = (0..60)
        .map(|i| {
            let jti: &'static str = Box::leak(format!("j{i:02}").into_boxed_str());
            e("record.send", "state", "treasury", jti, 0)
        })
        .collect();
    let logs = BTreeMap::from([
        ("east", sent),
        (
            "west",
            vec![e("record.send", "treasury", "treasury", "x", 0)],
        ),
    ]);
    let fed = Fed::new(&logs);
    let run = fed.replay(&["east", "west"]);
    let lines = findings(&run);
    assert_eq!(lines.len(), 50);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("one-sided: gateway east entry "))
    );
    assert!(
        run.stderr
            .contains("the replay of 2 logs (61 entries) shows 60 findings, the first 50 printed"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_witness_quorum_is_required_when_asked() {
    let fed = Fed::new(&story());
    let (w1, w2) = (witness(1), witness(2));
    // Every log's served checkpoint cosigned by w1 only.
    for gateway in ["east", "west", "north"] {
        let path = fed.path(gateway).join("log").join("checkpoint");
        let note = std::fs::read_to_string(&path).expect("checkpoint");
        let text = &note[..=note.rfind("\n\n").expect("a signed note")];
        let line = w1.cosign(text, T as u64 + 60).expect("cosign");
        let cosigned = xgate_ledger::cosign::attach(&note, &line).expect("attach");
        writable(&path);
        std::fs::write(&path, cosigned).expect("write");
    }
    let (v1, v2) = (w1.verifier().to_string(), w2.verifier().to_string());
    let with = |extra: &[&str]| {
        let registry = fed.path("registry.toml").display().to_string();
        let ca = fed.path("ca.crt").display().to_string();
        let (east, west) = (fed.url("east"), fed.url("west"));
        let mut args = vec![
            "audit",
            "replay",
            "--registry",
            &registry,
            "--ca",
            &ca,
            "--log",
            &east,
            "--log",
            &west,
        ];
        args.extend_from_slice(extra);
        xgate().run(&args, b"")
    };
    let out = with(&["--witness", &v1, "--witness", &v2, "--quorum", "1"]).expect_ok();
    assert!(out.starts_with("ok: replayed 2 logs, 10 entries"), "{out}");
    let message = with(&["--witness", &v1, "--witness", &v2]).expect_error(1);
    assert!(
        message.contains(&fed.url("east"))
            && message.contains("not with the witnesses asked: 1 of the 2"),
        "{message}"
    );
    // A quorum no checkpoint could meet is refused before any fetch.
    let message = with(&["--witness", &v1, "--quorum", "2"]).expect_error(1);
    assert!(message.starts_with("--quorum: "), "{message}");
}

/// A witness of the test: a fixed Ed25519 cosigner.
fn witness(n: u8) -> xgate_ledger::cosign::Cosigner {
    use xgate_ledger::cosign::{CosignatureAlg, Cosigner};
    Cosigner::from_seed(&format!("w{n}.example"), CosignatureAlg::Ed25519, [n; 32])
        .expect("cosigner")
}

#[test]
fn the_modes_exclude_each_other_and_log_needs_a_registry() {
    let fed = Fed::new(&BTreeMap::from([(
        "east",
        vec![e("record.send", "state", "state", "x", 0)],
    )]));
    let url = fed.url("east");
    let data = fed.path("east").display().to_string();
    xgate()
        .run(&["audit", "replay", "--log", &url], b"")
        .expect_error(2);
    let registry = fed.path("registry.toml").display().to_string();
    xgate()
        .run(
            &[
                "audit",
                "replay",
                "--data-dir",
                &data,
                "--log",
                &url,
                "--registry",
                &registry,
            ],
            b"",
        )
        .expect_error(2);
    xgate().run(&["audit", "replay"], b"").expect_error(2);
    // The same log twice.
    let ca = fed.path("ca.crt").display().to_string();
    let message = xgate()
        .run(
            &[
                "audit",
                "replay",
                "--registry",
                &registry,
                "--ca",
                &ca,
                "--log",
                &url,
                "--log",
                &url,
            ],
            b"",
        )
        .expect_error(1);
    assert!(message.contains("both gateway east's log"), "{message}");
}

/// The leaf hashes (RFC 9162) of a bundle's entries.
fn leaf_hashes(bundle: &[u8]) -> Vec<Vec<u8>> {
    let mut hashes = Vec::new();
    let mut rest = bundle;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let (entry, tail) = rest[2..].split_at(len);
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(entry);
        hashes.push(h.finalize().to_vec());
        rest = tail;
    }
    hashes
}

fn writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// Serves the files under `root` over HTTPS on loopback (a static
/// tlog-tiles server: `GET /<path>` is the file `root/<path>`, 404 if
/// absent), with a certificate from a CA written to `root/ca.crt`.
fn serve(root: &Path) -> SocketAddr {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "replay test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    std::fs::write(root.join("ca.crt"), ca_cert.pem()).expect("ca.crt");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    leaf.subject_alt_names
        .push(rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    let mut config = rustls::ServerConfig::builder_with_provider(xgate_server::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let root = Arc::new(root.to_path_buf());
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, root) = (acceptor.clone(), Arc::clone(&root));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let root = Arc::clone(&root);
                            async move {
                                let path = req.uri().path().trim_start_matches('/').to_owned();
                                let file = (!path.split('/').any(|p| p == ".." || p.is_empty()))
                                    .then(|| std::fs::read(root.join(&path)).ok())
                                    .flatten();
                                let (status, body) = match file {
                                    Some(bytes) => (200, bytes),
                                    None => (404, Vec::new()),
                                };
                                http::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    addr
}

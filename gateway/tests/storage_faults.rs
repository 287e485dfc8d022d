//! Storage faults under a running gateway: its journal and store obey the
//! test build's fault injector (`xgate_ledger::faults`), switched through
//! the file `XGATE_FAULT_FILE` names. Under a write refused before it wrote
//! anything (an I/O error, a full disk) every envelope gets 503
//! `storage_unavailable` at once, no receipt or checkpoint is handed out,
//! and when the fault clears the gateway accepts again by itself. A failed
//! barrier (`flush`) is different (fsyncgate: the page cache can no longer
//! be trusted): the batch gets 503 and the gateway stops, exiting 1 for its
//! supervisor; the restart recovers everything acknowledged. At the end
//! `xgate log verify` passes, every acknowledged envelope is in the log at
//! its index and in its recipient's inbox, and `xgate audit replay`
//! recomputes the stored state.

mod federation;

use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use xgate::client::{Client, EnvelopeSigner};
use xgate_ledger::{NoteVerifier, verify_checkpoint, verify_consistency};
use xgate_server::receipt::Receipt;

use federation::assets::register_body;
use federation::{
    Federation, body, checkpoint_note, consistency_proof, error_code, get_json, log_size,
    replays_clean, runtime, snapshot, start_gateway, submit, xgate,
};

/// Switches the gateway's store to `fault` (`none`, `write`, `full`,
/// `flush`); it takes effect at the next write.
fn set_fault(file: &Path, fault: &str) {
    std::fs::write(file, fault).expect("write the fault file");
}

/// What a sender has been told: the receipts of acknowledged envelopes,
/// and how many of them were records for treasury's inbox.
struct Sender {
    signer: EnvelopeSigner,
    client: Client,
    sent: u64,
    acked: Vec<Receipt>,
    records: usize,
}

impl Sender {
    fn new(fed: &Federation) -> Sender {
        Sender {
            signer: fed.signer("state"),
            client: fed.client("state"),
            sent: 0,
            acked: Vec::new(),
            records: 0,
        }
    }

    /// Sends one record to treasury and one asset registration, keeping
    /// the receipts of those acknowledged; returns the statuses.
    async fn send_pair(&mut self) -> Vec<StatusCode> {
        self.sent += 1;
        let n = self.sent;
        let record = self
            .signer
            .sign(
                &"treasury".parse().expect("id"),
                "record.send",
                body(&format!("record {n}")),
                60,
                None,
            )
            .expect("sign");
        let asset = register_body(&format!("STATE-LAPTOP-{n:04}"), "state", "p-1", "hq");
        let serde_json::Value::Object(asset) = asset else {
            unreachable!()
        };
        let register = self
            .signer
            .sign(
                &"state".parse().expect("id"),
                "asset.register",
                asset,
                60,
                None,
            )
            .expect("sign");
        let mut statuses = Vec::new();
        for (jws, is_record) in [(record, true), (register, false)] {
            let started = Instant::now();
            let reply = submit(&mut self.client, &jws).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "a commit hung under a storage fault"
            );
            match reply.status {
                StatusCode::CREATED => {
                    self.acked
                        .push(serde_json::from_slice(&reply.body).expect("receipt"));
                    self.records += usize::from(is_record);
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(error_code(&reply), "storage_unavailable");
                }
                other => panic!(
                    "unexpected {other}: {}",
                    String::from_utf8_lossy(&reply.body)
                ),
            }
            statuses.push(reply.status);
        }
        statuses
    }
}

/// Checks that `new` extends `old` (both notes signed by `key`), with a
/// consistency proof from the gateway.
async fn assert_extends(client: &mut Client, key: &NoteVerifier, old: &str, new: &str) {
    let old = verify_checkpoint(old, key).expect("old checkpoint");
    let new = verify_checkpoint(new, key).expect("new checkpoint");
    assert!(new.size >= old.size, "the log shrank");
    if new.size == old.size {
        assert_eq!(new.root, old.root, "same size, different root");
        return;
    }
    let proof = consistency_proof(client, old.size, new.size).await;
    verify_consistency(&proof, &old.root, &new.root).expect("consistent");
}

#[test]
fn under_each_storage_fault_nothing_is_acknowledged_and_the_gateway_recovers_by_itself() {
    let faults = tempfile::tempdir().expect("tempdir");
    let fault_file = faults.path().join("fault");
    set_fault(&fault_file, "none");
    let fault_var = fault_file.display().to_string();
    let env = [("XGATE_FAULT_FILE", fault_var.as_str())];
    let fed = Federation::start_with(&[], &env);
    let key = fed.log_key();
    let rt = runtime();
    let mut sender = Sender::new(&fed);
    let mut reader = fed.client("treasury");

    rt.block_on(async {
        for _ in 0..5 {
            assert_eq!(sender.send_pair().await, [StatusCode::CREATED; 2]);
        }
        for fault in ["write", "full"] {
            let before_note = checkpoint_note(&mut reader).await;
            let before = snapshot(&fed, &["state", "treasury"]).await;
            set_fault(&fault_file, fault);
            for _ in 0..3 {
                assert_eq!(
                    sender.send_pair().await,
                    [StatusCode::SERVICE_UNAVAILABLE; 2],
                    "{fault}: an envelope was acknowledged"
                );
            }
            // No checkpoint for anything that is not durable, and nothing
            // written at all.
            assert_eq!(checkpoint_note(&mut reader).await, before_note, "{fault}");
            assert_eq!(
                snapshot(&fed, &["state", "treasury"]).await,
                before,
                "{fault}"
            );
            set_fault(&fault_file, "none");
            assert_eq!(
                sender.send_pair().await,
                [StatusCode::CREATED; 2],
                "{fault}: the gateway did not recover by itself"
            );
            let after_note = checkpoint_note(&mut reader).await;
            assert_extends(&mut reader, &key, &before_note, &after_note).await;
        }
    });

    // A failed barrier: the batch is refused and the gateway stops by
    // itself, exiting 1; everything acknowledged survives the restart.
    let last_note = rt.block_on(checkpoint_note(&mut reader));
    set_fault(&fault_file, "flush");
    rt.block_on(async {
        let record = sender
            .signer
            .sign(
                &"treasury".parse().expect("id"),
                "record.send",
                body("a record whose barrier fails"),
                60,
                None,
            )
            .expect("sign");
        let refused = submit(&mut sender.client, &record).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(&refused), "storage_unavailable");
    });
    let Federation { root, mut gateway } = fed;
    let exit = gateway
        .wait_exit(Duration::from_secs(30))
        .expect("the gateway stops after a failed barrier");
    assert_eq!(exit.code(), Some(1), "{exit:?}");
    let data = root.path().join("data").display().to_string();
    let out = xgate()
        .run(&["log", "verify", "--data-dir", &data], b"")
        .expect_ok();
    assert!(out.starts_with("ok: "), "{out}");
    set_fault(&fault_file, "none");
    let gateway = start_gateway(root.path(), &[], &env);
    let fed = Federation { root, gateway };
    let mut reader = fed.client("treasury");
    rt.block_on(async {
        let now = checkpoint_note(&mut reader).await;
        assert_extends(&mut reader, &key, &last_note, &now).await;
        assert!(log_size(&mut reader).await >= sender.acked.len() as u64);
        let inbox = get_json(&mut reader, "/v1/inbox?limit=1000", StatusCode::OK).await;
        let held = inbox["envelopes"].as_array().expect("envelopes").len();
        let records = sender.records;
        assert!(
            held >= records,
            "{held} in the inbox, {records} acknowledged"
        );
        for receipt in &sender.acked {
            let entry = get_json(
                &mut reader,
                &format!("/v1/log/entries/{}", receipt.log_index),
                StatusCode::OK,
            )
            .await;
            assert_eq!(entry["leaf_hash"], receipt.leaf_hash.as_str());
        }
    });
    assert_eq!(sender.acked.len(), 5 * 2 + 2 * 2, "acknowledged envelopes");
    // Open connections, driven by this runtime, would hold the gateway's
    // drain open.
    drop((reader, sender, rt));
    replays_clean(fed);
}

#[test]
fn an_envelope_refused_by_a_failed_write_is_accepted_when_sent_again() {
    let faults = tempfile::tempdir().expect("tempdir");
    let fault_file = faults.path().join("fault");
    set_fault(&fault_file, "none");
    let fault_var = fault_file.display().to_string();
    let fed = Federation::start_with(&[], &[("XGATE_FAULT_FILE", fault_var.as_str())]);
    let signer = fed.signer("state");
    let mut client = fed.client("state");
    let treasury = "treasury".parse().expect("id");
    let sign = |n: u32| {
        signer
            .sign(
                &treasury,
                "record.send",
                body(&format!("record {n}")),
                60,
                None,
            )
            .expect("sign")
    };
    let (first, second) = (sign(1), sign(2));
    runtime().block_on(async {
        assert_eq!(
            submit(&mut client, &first).await.status,
            StatusCode::CREATED
        );
        set_fault(&fault_file, "write");
        let refused = submit(&mut client, &second).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        set_fault(&fault_file, "none");
        // Its jti never reached the store, so it is not a replay; the one
        // that did is.
        let again = submit(&mut client, &second).await;
        assert_eq!(
            again.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&again.body)
        );
        let replayed = submit(&mut client, &first).await;
        assert_eq!(error_code(&replayed), "replayed");
    });
}

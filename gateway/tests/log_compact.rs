//! `xgate log compact` on a real gateway's data directory: refused while
//! the gateway runs; once it is stopped, the copy serves the same log, the
//! same inboxes and asset state, and remembers the replay ids, and
//! `xgate audit replay` recomputes its state.

mod federation;

use http::StatusCode;
use xgate_ledger::verify_checkpoint;

use federation::assets::register_body;
use federation::{
    Federation, body, checkpoint_note, error_code, get_json, inbox_len, log_size, replays_clean,
    runtime, start_gateway, submit, xgate,
};

#[test]
fn a_compacted_data_directory_serves_the_same_log_and_state() {
    let fed = Federation::start();
    let key = fed.log_key();
    let signer = fed.signer("state");
    let (treasury, state) = (
        "treasury".parse().expect("id"),
        "state".parse().expect("id"),
    );
    let records: Vec<String> = (0..30)
        .map(|n| {
            signer
                .sign(
                    &treasury,
                    "record.send",
                    body(&format!("record {n}")),
                    300,
                    None,
                )
                .expect("sign")
        })
        .collect();
    let register = |n: u32| {
        let serde_json::Value::Object(b) =
            register_body(&format!("STATE-PHONE-{n:03}"), "state", "p-1", "hq")
        else {
            unreachable!()
        };
        signer
            .sign(&state, "asset.register", b, 300, None)
            .expect("sign")
    };
    let rt = runtime();
    let mut sender = fed.client("state");
    let mut reader = fed.client("treasury");
    let (size, note, inbox, asset) = rt.block_on(async {
        for jws in records.iter().cloned().chain((0..10).map(register)) {
            assert_eq!(submit(&mut sender, &jws).await.status, StatusCode::CREATED);
        }
        let note = checkpoint_note(&mut reader).await;
        let asset = get_json(&mut sender, "/v1/assets/STATE-PHONE-007", StatusCode::OK).await;
        (
            log_size(&mut reader).await,
            note,
            inbox_len(&mut reader).await,
            asset,
        )
    });
    assert_eq!((size, inbox), (40, 30));

    let data = fed.data();
    let into = fed.root.path().join("compacted");
    let args = |into: &std::path::Path| {
        vec![
            "log".to_owned(),
            "compact".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--into".into(),
            into.display().to_string(),
        ]
    };
    let locked = xgate().run(&args(&into), b"").expect_error(1);
    assert!(locked.contains("locked"), "{locked}");
    assert!(!into.exists(), "nothing written while the gateway runs");

    // Open connections, driven by this runtime, would hold the gateway's
    // drain open.
    drop((sender, reader, rt));
    let Federation { root, gateway } = fed;
    gateway.stop();
    let out = xgate().run(&args(&into), b"").expect_ok();
    assert!(out.starts_with("{\"entries\":40,\"keys\":"), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    for field in ["keys", "bytes_before", "bytes_after"] {
        assert!(report[field].as_u64().is_some_and(|n| n > 0), "{out}");
    }
    // The operator's swap, the gateway stopped.
    std::fs::rename(&data, root.path().join("data.old")).expect("rename");
    std::fs::rename(&into, &data).expect("rename");
    let gateway = start_gateway(root.path(), &[], &[]);
    let fed = Federation { root, gateway };
    let mut sender = fed.client("state");
    let mut reader = fed.client("treasury");
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(log_size(&mut reader).await, size);
        let before = verify_checkpoint(&note, &key).expect("old note");
        let now = verify_checkpoint(&checkpoint_note(&mut reader).await, &key).expect("same key");
        assert_eq!((now.size, now.root), (before.size, before.root));
        assert_eq!(inbox_len(&mut reader).await, inbox);
        let same = get_json(&mut sender, "/v1/assets/STATE-PHONE-007", StatusCode::OK).await;
        assert_eq!(same, asset);
        // The replay ids came along.
        let again = submit(&mut sender, &records[3]).await;
        assert_eq!(error_code(&again), "replayed");
        let fresh = signer
            .sign(&treasury, "record.send", body("after"), 300, None)
            .expect("sign");
        assert_eq!(
            submit(&mut sender, &fresh).await.status,
            StatusCode::CREATED
        );
    });
    drop((sender, reader, rt));
    replays_clean(fed);
}

//! Inbox paging over real TLS: each page continues from its cursor (the
//! `next` of the page before), also when the envelope the cursor names was
//! acknowledged meanwhile, and a cursor past the end is an empty last page.
//! That a page is read from its cursor rather than from the start of the
//! inbox is `inbox::tests::a_page_reads_from_its_cursor_not_from_the_start`
//! and `benches/inbox.rs`.

mod federation;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use federation::{Federation, body, get_json, id, runtime, submit};

#[test]
fn pages_continue_from_their_cursor() {
    let fed = Federation::start();
    let signer = fed.signer("state");
    let (mut state, mut treasury) = (fed.client("state"), fed.client("treasury"));
    runtime().block_on(async {
        let mut sent = Vec::new();
        for n in 0..25 {
            let jws = signer
                .sign(
                    &id("treasury"),
                    "record.send",
                    body(&format!("r{n}")),
                    60,
                    None,
                )
                .expect("sign");
            let reply = submit(&mut state, &jws).await;
            assert_eq!(reply.status, StatusCode::CREATED);
            let receipt: Value = serde_json::from_slice(&reply.body).expect("receipt");
            sent.push(receipt["log_index"].as_u64().expect("index"));
        }
        let indices = |page: &Value| -> Vec<u64> {
            page["envelopes"]
                .as_array()
                .expect("envelopes")
                .iter()
                .map(|e| e["receipt"]["log_index"].as_u64().expect("index"))
                .collect()
        };
        let first = get_json(&mut treasury, "/v1/inbox?limit=10", StatusCode::OK).await;
        assert_eq!(indices(&first), sent[..10]);
        let cursor = first["next"].as_u64().expect("more follow");
        assert_eq!(cursor, sent[9]);

        // The envelope the cursor names is acknowledged before the next page.
        let last_id = first["envelopes"][9]["id"].as_str().expect("id").to_owned();
        let acked = treasury
            .request(
                Method::POST,
                "/v1/inbox/ack",
                Some("application/json"),
                json!({"ids": [last_id]}).to_string().into_bytes(),
            )
            .await
            .expect("ack");
        assert_eq!(acked.status, StatusCode::OK);

        let path = format!("/v1/inbox?after={cursor}&limit=10");
        let second = get_json(&mut treasury, &path, StatusCode::OK).await;
        assert_eq!(indices(&second), sent[10..20]);
        let cursor = second["next"].as_u64().expect("more follow");
        let path = format!("/v1/inbox?after={cursor}&limit=10");
        let third = get_json(&mut treasury, &path, StatusCode::OK).await;
        assert_eq!(indices(&third), sent[20..]);
        assert_eq!(third["next"], Value::Null);

        for after in [sent[24], u64::MAX] {
            let path = format!("/v1/inbox?after={after}");
            let past = get_json(&mut treasury, &path, StatusCode::OK).await;
            assert_eq!(indices(&past), Vec::<u64>::new());
            assert_eq!(past["next"], Value::Null);
        }
    });
}

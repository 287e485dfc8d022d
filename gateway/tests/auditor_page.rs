//! The auditor's page on the public listener, in a real browser (Debian's
//! Chromium, headless, through ChromeDriver): it shows the log as its
//! public files say, lists the entries newest first, and verifies a real
//! receipt entirely in the browser, rejecting one with a flipped byte in
//! the proof, the leaf or the checkpoint's signature at the step that
//! catches it; and axe-core finds nothing against WCAG 2.1 A and AA.

mod browser;
mod federation;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use fantoccini::{Client as Browser, Locator};
use serde_json::{Value, json};
use xgate_server::receipt::Receipt;
use xgate_tests::browser::Driver;

use browser::{accessibility, eval, fill, foreign_loads, screenshot, text_of, wait_for};
use federation::{Federation, log_vkey};

/// Verifies `receipt` with the page's verifier; its verdict.
async fn verdict(browser: &Browser, receipt: &Value) -> String {
    eval(
        browser,
        "document.getElementById('verdict').textContent = '';",
        vec![],
    )
    .await;
    fill(browser, "receipt", &receipt.to_string()).await;
    browser
        .find(Locator::Id("verify"))
        .await
        .expect("the verify button")
        .click()
        .await
        .expect("click");
    wait_for(browser, "verdict", |t| !t.is_empty()).await
}

/// `bytes` (standard base64) with one bit of byte `at` flipped.
fn flipped(base64: &str, at: usize) -> String {
    let mut bytes = B64.decode(base64).expect("base64");
    bytes[at] ^= 1;
    B64.encode(bytes)
}

#[test]
fn the_auditor_page_shows_the_log_and_verifies_receipts_in_the_browser() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let fed = Federation::start();
    let vkey = log_vkey(&fed.data());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let profile = tempfile::tempdir().expect("profile");
    rt.block_on(async {
        let signer = fed.signer("state");
        let mut client = fed.client("state");
        let receipts: Vec<Receipt> =
            federation::send_records(&mut client, &signer, "treasury", 3).await;
        let browser = browser::session(&driver, profile.path()).await;
        browser
            .goto(fed.gateway.public_url())
            .await
            .expect("open the page");

        // The log as its public files say: the checkpoint's size, then
        // the entries, newest first.
        wait_for(&browser, "log-size", |t| t == "3 entries").await;
        let rows = eval(
            &browser,
            "return [...document.querySelectorAll('#entries tbody tr')]\
                .map(r => [...r.cells].map(c => c.textContent));",
            vec![],
        )
        .await;
        let rows = rows.as_array().expect("rows");
        assert_eq!(rows.len(), 3, "{rows:?}");
        for (row, index) in rows.iter().zip(["2", "1", "0"]) {
            assert_eq!(row[0], index, "{row}");
            assert_eq!(row[1], "record.send", "{row}");
            assert_eq!(row[2], "state", "{row}");
            assert_eq!(row[3], "treasury", "{row}");
        }

        // A receipt is refused until a log key is given, then verified.
        let receipt = serde_json::to_value(&receipts[1]).expect("receipt JSON");
        let refused = verdict(&browser, &receipt).await;
        assert!(refused.contains("log's verifier key"), "{refused}");
        fill(&browser, "log-key", &vkey).await;
        let verified = verdict(&browser, &receipt).await;
        assert_eq!(verified, "Verified: every step passed.");
        // The same receipt dropped on the verifier as a file.
        eval(
            &browser,
            "document.getElementById('verdict').textContent = '';\
             document.getElementById('receipt').value = '';\
             const files = new DataTransfer();\
             files.items.add(new File([arguments[0]], 'receipt.json', { type: 'application/json' }));\
             document.getElementById('receipt-drop').dispatchEvent(\
               new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));",
            vec![json!(receipt.to_string())],
        )
        .await;
        let dropped = wait_for(&browser, "verdict", |t| !t.is_empty()).await;
        assert_eq!(dropped, "Verified: every step passed.");
        let violations = accessibility(&browser).await;
        assert!(violations.is_empty(), "accessibility: {violations:#?}");
        let signature = text_of(&browser, "log-signature").await;
        assert_eq!(signature, "signed by the key you trust");

        // One flipped bit anywhere fails at the step that checks it.
        let mut bad_proof = receipt.clone();
        let first = bad_proof["inclusion_proof"][0]
            .as_str()
            .expect("a proof hash")
            .to_owned();
        bad_proof["inclusion_proof"][0] = json!(flipped(&first, 7));
        let mut bad_leaf = receipt.clone();
        let leaf = receipt["leaf_hash"].as_str().expect("leaf").to_owned();
        bad_leaf["leaf_hash"] = json!(flipped(&leaf, 0));
        let mut bad_signature = receipt.clone();
        let note = receipt["checkpoint"].as_str().expect("note").to_owned();
        let (body, signature_line) = note.split_once("\n\n").expect("a signed note");
        let (head, sig) = signature_line.rsplit_once(' ').expect("a signature line");
        let tampered = format!("{body}\n\n{head} {}\n", flipped(sig.trim_end(), 10));
        bad_signature["checkpoint"] = json!(tampered);
        for (bad, step) in [
            (bad_proof, "inclusion"),
            (bad_leaf, "entry-hash"),
            (bad_signature, "log-signature"),
        ] {
            let said = verdict(&browser, &bad).await;
            assert!(
                said.starts_with(&format!("REJECTED at {step}:")),
                "{step}: {said}"
            );
        }
        // It needed nothing but the listener it came from.
        assert_eq!(foreign_loads(&browser).await, Vec::<String>::new());
        browser.close().await.expect("close the browser");
    });
}

/// Each witness's state: one witness that cosigns and one that is down.
/// `GET /audit/witnesses` says what the gateway last heard from each (the
/// exact fields), and the page shows it beside the cosignature it checks
/// with the key the auditor pinned.
#[test]
fn the_auditor_page_shows_each_witness_as_the_gateway_last_heard_it() {
    use federation::witnesses::{init_witness, send_records, served_at_least, witness_config};
    use xgate_tests::WitnessServer;

    let Some(driver) = Driver::start() else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_xgate");
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    federation::make_pki(&pki, &["state", "treasury", "gsa"]);
    let first = federation::start_gateway(root.path(), &[], &[]);
    let vkey = log_vkey(&root.path().join("data"));
    assert_eq!(first.stop(), Some(0));

    let up_dir = root.path().join("up");
    let up_key = init_witness(&up_dir, "up.witness.example", "ed25519");
    let up = WitnessServer::start(bin, &up_dir, "127.0.0.1:0", &[&vkey], &[]);
    // The second witness is set up, then stopped: nothing answers at its
    // address.
    let down_dir = root.path().join("down");
    let down_key = init_witness(&down_dir, "down.witness.example", "ed25519");
    let down = WitnessServer::start(bin, &down_dir, "127.0.0.1:0", &[&vkey], &[]);
    let down_url = down.url().to_owned();
    drop(down);
    let listed = [
        (up.url().to_owned(), up_key.clone()),
        (down_url, down_key.clone()),
    ];
    let cfg = witness_config(&root.path().join("gateway.toml"), &listed, 1);
    let gateway = federation::start_gateway(root.path(), &["--config", &cfg], &[]);
    send_records(&gateway, &pki, "w", 3);
    let log = xgate_ledger::NoteVerifier::parse(&vkey).expect("log key");
    served_at_least(&gateway, &pki.join("ca.crt"), 3, &log);

    let rt = federation::runtime();
    let profile = tempfile::tempdir().expect("profile");
    rt.block_on(async {
        // The contract: exact fields, one entry per witness, in the
        // configuration's order.
        let mut client = xgate::client::Client::anonymous(
            &pki.join("ca.crt"),
            gateway.public_url(),
            xgate::client::Protocol::Auto,
        )
        .expect("client");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let board = loop {
            let reply = client
                .request(http::Method::GET, "/audit/witnesses", None, Vec::new())
                .await
                .expect("a response");
            assert_eq!(reply.status, http::StatusCode::OK);
            assert_eq!(reply.headers["cache-control"], "no-store");
            let board: Value = serde_json::from_slice(&reply.body).expect("JSON");
            if board["witnesses"][1]["outcome"] != "not_asked_yet" {
                break board;
            }
            assert!(std::time::Instant::now() < deadline, "{board}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(
            board["quorum"],
            json!({"witnesses": 1, "peers": 0}),
            "{board}"
        );
        let (w_up, w_down) = (&board["witnesses"][0], &board["witnesses"][1]);
        let mut fields: Vec<&str> = w_up
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "cosigned_size",
                "failures",
                "last_asked",
                "name",
                "outcome",
                "peer",
                "vkey"
            ]
        );
        assert_eq!(w_up["name"], "up.witness.example");
        assert_eq!(w_up["vkey"], up_key.as_str());
        assert_eq!(w_up["peer"], false);
        assert_eq!(w_up["outcome"], "cosigned");
        assert!(w_up["cosigned_size"].as_u64() >= Some(3), "{board}");
        assert_eq!(w_up["failures"], 0);
        assert!(w_up["last_asked"].is_u64(), "{board}");
        assert_eq!(w_down["name"], "down.witness.example");
        assert_eq!(w_down["outcome"], "unreachable", "{board}");
        assert!(w_down["failures"].as_u64() >= Some(1), "{board}");
        assert_eq!(w_down["cosigned_size"], 0);

        let browser = browser::session(&driver, profile.path()).await;
        browser
            .goto(gateway.public_url())
            .await
            .expect("open the page");
        fill(&browser, "log-key", &vkey).await;
        fill(&browser, "witness-keys", &up_key).await;
        let quorum = wait_for(&browser, "witness-quorum", |t| t.starts_with("This log")).await;
        assert!(quorum.contains("once 1 configured witness(es)"), "{quorum}");
        // The page reads the keys again at its next poll.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let rows = loop {
            let rows = eval(
                &browser,
                "return [...document.querySelectorAll('#witness-states tbody tr')]\
                    .map(r => [...r.cells].map(c => c.textContent));",
                vec![],
            )
            .await;
            let rows: Vec<Vec<String>> = serde_json::from_value(rows).expect("rows");
            if rows
                .first()
                .is_some_and(|r| r.get(6).is_some_and(|k| k == "pinned"))
            {
                break rows;
            }
            assert!(std::time::Instant::now() < deadline, "{rows:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0][0], "up.witness.example");
        assert_eq!(rows[0][1], "witness");
        assert_eq!(rows[0][3], "cosigned");
        assert_eq!(rows[0][6], "pinned");
        assert_eq!(rows[1][0], "down.witness.example");
        assert_eq!(rows[1][3], "unreachable");
        assert_eq!(rows[1][6], "not pinned");
        // The cosignature itself, checked with the pinned key.
        wait_for(&browser, "witnesses", |t| t.contains("verified")).await;
        eval(&browser, "window.scrollTo(0, 0);", vec![]).await;
        screenshot(&browser, "auditor-page.png").await;
        let violations = accessibility(&browser).await;
        assert!(violations.is_empty(), "accessibility: {violations:#?}");
        assert_eq!(foreign_loads(&browser).await, Vec::<String>::new());
        browser.close().await.expect("close the browser");
    });
    drop(up);
}

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
        screenshot(&browser, "auditor-page.png").await;
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

//! The auditor's page on the public listener, in a real browser (Debian's
//! Chromium, headless, through ChromeDriver): it shows the log as its
//! public files say, lists the entries newest first, and verifies a real
//! receipt entirely in the browser, rejecting one with a flipped byte in
//! the proof, the leaf or the checkpoint's signature at the step that
//! catches it; and axe-core finds nothing against WCAG 2.1 A and AA.

mod federation;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{Value, json};
use xgate_server::receipt::Receipt;
use xgate_tests::browser::{Driver, chromium, chromium_args};

use federation::{Federation, log_vkey};

/// A browser session on `driver`, headless, with a profile in `profile`.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Browser {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium().expect("chromium"),
            "args": chromium_args(profile),
        }),
    );
    caps.insert("acceptInsecureCerts".into(), json!(true));
    ClientBuilder::native()
        .capabilities(caps)
        .connect(driver.url())
        .await
        .expect("a browser session")
}

/// Runs `script` in the page and returns what it returns.
async fn eval(browser: &Browser, script: &str, args: Vec<Value>) -> Value {
    browser.execute(script, args).await.expect("script")
}

/// The text of element `id`.
async fn text_of(browser: &Browser, id: &str) -> String {
    let value = eval(
        browser,
        "return document.getElementById(arguments[0]).textContent;",
        vec![json!(id)],
    )
    .await;
    value.as_str().unwrap_or_default().to_owned()
}

/// Waits until element `id`'s text satisfies `done`; returns it.
async fn wait_for(browser: &Browser, id: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = text_of(browser, id).await;
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "#{id} stayed {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `value` in the form field `id`.
async fn fill(browser: &Browser, id: &str, value: &str) {
    eval(
        browser,
        "document.getElementById(arguments[0]).value = arguments[1];",
        vec![json!(id), json!(value)],
    )
    .await;
}

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

/// Where the page's screenshots go when they are being regenerated:
/// `XGATE_SCREENSHOTS=docs/img cargo test -p xgate --test auditor_page`.
const SCREENSHOTS: &str = "XGATE_SCREENSHOTS";

/// Saves what the browser shows as `name` in [`SCREENSHOTS`], if set.
async fn screenshot(browser: &Browser, name: &str) {
    let Some(dir) = std::env::var_os(SCREENSHOTS) else {
        return;
    };
    let png = browser.screenshot().await.expect("a screenshot");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir)
        .join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// axe-core, vendored (`tests/vendor/README.md`).
const AXE: &str = include_str!("vendor/axe-core-4.14.1.min.js");

/// What axe-core finds against WCAG 2 A and AA in the page as it stands:
/// one line per rule broken, with how many elements break it.
async fn accessibility(browser: &Browser) -> Vec<String> {
    eval(browser, AXE, vec![]).await;
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] })\
               .then(r => done(r.violations.map(v => \
                 `${v.id}: ${v.help} (${v.nodes.length}: ${v.nodes.map(n => n.target).join(' ')})`)))\
               .catch(e => done([`axe failed: ${e}`]));",
            vec![],
        )
        .await
        .expect("axe");
    serde_json::from_value(found).expect("a list of violations")
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
        let browser = browser(&driver, profile.path()).await;
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
        browser.close().await.expect("close the browser");
    });
}

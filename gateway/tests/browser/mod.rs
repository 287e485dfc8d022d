//! What the browser tests share: a headless Chromium session through
//! ChromeDriver, reading and driving the page, screenshots for docs/img,
//! the axe-core accessibility check, and the check that a page loaded
//! nothing from anywhere but its own origin.

#![allow(dead_code)] // each test file uses a different subset

use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{Value, json};
use xgate_tests::ConsoleServer;
use xgate_tests::browser::{Driver, chromium, chromium_args};

use crate::federation::{Federation, log_vkey};

/// A browser session on `driver`, headless, with a profile in `profile`.
pub async fn session(driver: &Driver, profile: &std::path::Path) -> Browser {
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
pub async fn eval(browser: &Browser, script: &str, args: Vec<Value>) -> Value {
    browser.execute(script, args).await.expect("script")
}

/// The text of element `id`.
pub async fn text_of(browser: &Browser, id: &str) -> String {
    let value = eval(
        browser,
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
        vec![json!(id)],
    )
    .await;
    value.as_str().unwrap_or_default().to_owned()
}

/// Waits until element `id`'s text satisfies `done`; returns it.
pub async fn wait_for(browser: &Browser, id: &str, done: impl Fn(&str) -> bool) -> String {
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
pub async fn fill(browser: &Browser, id: &str, value: &str) {
    eval(
        browser,
        "document.getElementById(arguments[0]).value = arguments[1];",
        vec![json!(id), json!(value)],
    )
    .await;
}

/// Clicks the element `css` selects.
pub async fn click(browser: &Browser, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Where screenshots go when they are being regenerated
/// (`tests/screenshots.sh` sets it to `docs/img`).
const SCREENSHOTS: &str = "XGATE_SCREENSHOTS";

/// Saves what the browser shows as `name` in [`SCREENSHOTS`], if set.
pub async fn screenshot(browser: &Browser, name: &str) {
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
const AXE: &str = include_str!("../vendor/axe-core-4.14.1.min.js");

/// What axe-core finds against WCAG 2 A and AA in the page as it stands:
/// one line per rule broken, with how many elements break it.
pub async fn accessibility(browser: &Browser) -> Vec<String> {
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

/// Every address the page loaded or fetched that is not its own origin
/// (the browser can reach nothing else: [`chromium_args`] sends all but
/// loopback to a proxy that does not exist, so a page needing the network
/// would fail its test; this names what it tried).
pub async fn foreign_loads(browser: &Browser) -> Vec<String> {
    let found = eval(
        browser,
        "return performance.getEntriesByType('resource')\
            .map(e => e.name).filter(n => new URL(n).origin !== location.origin);",
        vec![],
    )
    .await;
    serde_json::from_value(found).expect("a list of addresses")
}

/// The cells of each row of table `id`'s body.
pub async fn rows(browser: &Browser, id: &str) -> Vec<Vec<String>> {
    let found = eval(
        browser,
        "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)]\
            .map(r => [...r.cells].map(c => c.textContent));",
        vec![json!(id)],
    )
    .await;
    serde_json::from_value(found).expect("rows")
}

/// Waits until a row of table `id` satisfies `done`; returns it.
pub async fn wait_for_row(
    browser: &Browser,
    id: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = rows(browser, id).await;
        if let Some(row) = all.iter().find(|r| done(r)) {
            return row.clone();
        }
        let status = text_of(browser, "status").await;
        assert!(
            Instant::now() < deadline,
            "#{id} never showed the row: {all:?} (status: {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the button of table `id` reading `label`, again if a refresh
/// replaced the row between finding the button and clicking it.
pub async fn click_button(browser: &Browser, id: &str, label: &str) {
    let xpath = format!("//table[@id='{id}']//button[normalize-space()='{label}']");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let clicked = match browser.find(Locator::XPath(&xpath)).await {
            Ok(button) => button.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "{label} in #{id}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `xgate console` for `agency` at `fed`'s gateway, checking each receipt
/// against the gateway's log key.
pub fn console(fed: &Federation, agency: &str) -> ConsoleServer {
    ConsoleServer::start(
        env!("CARGO_BIN_EXE_xgate"),
        &fed.pki(),
        agency,
        fed.gateway.url(),
        &["--log-key", &log_vkey(&fed.data())],
    )
}

//! The agency console (`xgate console`) in a real browser (Debian's
//! Chromium, headless, through ChromeDriver) against a real gateway: an
//! offer another agency made appears, is accepted from the page (an
//! envelope the console signs as `xgate asset accept` does), and the asset
//! then shows as held with its custody timeline; a count reported from the
//! page opens a discrepancy that arrives live through the event stream;
//! the page loads nothing but its own files and passes axe-core's WCAG 2.1
//! A and AA rules. Its local API refuses a request without the token, or
//! under another host name.

mod browser;
mod federation;

use http::StatusCode;
use serde_json::{Value, json};
use xgate_tests::ConsoleServer;
use xgate_tests::browser::Driver;

use browser::{accessibility, click, eval, fill, foreign_loads, screenshot, text_of, wait_for};
use federation::{Federation, log_vkey, xgate};

/// Runs `xgate ARGS --pki PKI --as AGENCY --gateway URL` and returns its
/// first line as JSON.
fn cli(fed: &Federation, agency: &str, args: &[&str]) -> Value {
    let pki = fed.pki();
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--pki",
        pki.to_str().expect("utf-8 path"),
        "--as",
        agency,
        "--gateway",
        fed.gateway.url(),
    ]);
    let out = xgate().run(&all, b"").expect_ok();
    serde_json::from_str(out.lines().next().expect("a line")).expect("JSON")
}

/// The cells of each row of table `id`'s body.
async fn rows(browser: &fantoccini::Client, id: &str) -> Vec<Vec<String>> {
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
async fn wait_for_row(
    browser: &fantoccini::Client,
    id: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let all = rows(browser, id).await;
        if let Some(row) = all.iter().find(|r| done(r)) {
            return row.clone();
        }
        let status = text_of(browser, "status").await;
        assert!(
            std::time::Instant::now() < deadline,
            "#{id} never showed the row: {all:?} (status: {status})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A plain HTTP/1.1 request to the console with `headers`; its status.
fn status_of(origin: &str, path: &str, headers: &[(&str, &str)]) -> StatusCode {
    use std::io::{Read, Write};
    let addr = origin.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the console");
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let code = answer.split(' ').nth(1).expect("a status line");
    StatusCode::from_u16(code.parse().expect("a status")).expect("a status code")
}

#[test]
fn the_console_accepts_an_offer_and_shows_a_discrepancy_live() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let fed = Federation::start();

    // treasury registers a laptop and offers it to state, from the CLI.
    cli(
        &fed,
        "treasury",
        &[
            "asset",
            "register",
            "--tag",
            "LAP-0042",
            "--serial",
            "PF3X9Q",
            "--category",
            "laptop",
            "--description",
            "ThinkPad T14",
            "--person",
            "emp-1017",
            "--location",
            "HQ-3",
        ],
    );
    let offer = cli(
        &fed,
        "treasury",
        &[
            "asset",
            "offer",
            "--tag",
            "LAP-0042",
            "--to",
            "state",
            "--person",
            "emp-5521",
            "--reason",
            "posting abroad",
        ],
    );

    let console = ConsoleServer::start(
        env!("CARGO_BIN_EXE_xgate"),
        &fed.pki(),
        "state",
        fed.gateway.url(),
        &["--log-key", &log_vkey(&fed.data())],
    );
    let host = console.origin().trim_start_matches("http://").to_owned();
    let bearer = format!("Bearer {}", console.token());
    assert_eq!(
        status_of(console.origin(), "/api/session", &[("Host", &host)]),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(
            console.origin(),
            "/api/session",
            &[("Host", &host), ("Authorization", "Bearer not-the-token")]
        ),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(
            console.origin(),
            "/api/session",
            &[("Host", "attacker.example:80"), ("Authorization", &bearer)]
        ),
        StatusCode::MISDIRECTED_REQUEST
    );
    assert_eq!(
        status_of(
            console.origin(),
            "/api/session",
            &[("Host", &host), ("Authorization", &bearer)]
        ),
        StatusCode::OK
    );

    let rt = federation::runtime();
    let profile = tempfile::tempdir().expect("profile");
    rt.block_on(async {
        let browser = browser::session(&driver, profile.path()).await;
        browser.goto(console.url()).await.expect("open the console");
        wait_for(&browser, "who", |t| t.starts_with("Acting as state ")).await;
        // The token left the address bar as soon as the page read it.
        let address = browser.current_url().await.expect("url");
        assert!(!address.as_str().contains("token"), "{address}");

        // The offer, then its acceptance from the page.
        let row = wait_for_row(&browser, "offers", |r| r[0].starts_with("LAP-0042")).await;
        assert_eq!(row[1], "treasury", "{row:?}");
        assert_eq!(row[2], "emp-5521", "{row:?}");
        eval(
            &browser,
            "document.querySelector(`#offers tr[data-tag='LAP-0042'] input`).value = 'Embassy-2';",
            vec![],
        )
        .await;
        click(&browser, "#offers tr[data-tag='LAP-0042'] button.accept").await;
        let held = wait_for_row(&browser, "assets", |r| r[0] == "LAP-0042").await;
        assert_eq!(held[2], "state / emp-5521", "{held:?}");
        assert_eq!(held[3], "Embassy-2", "{held:?}");
        assert_eq!(held[4], "held", "{held:?}");
        wait_for_row(&browser, "offers", |r| r[0] == "No open offers.").await;

        // Its custody timeline, each event with its receipt.
        click(&browser, "#assets tr[data-tag='LAP-0042'] button").await;
        let timeline = wait_for(&browser, "timeline", |t| t.contains("accepted")).await;
        for kind in ["registered", "offered", "accepted"] {
            assert!(timeline.contains(kind), "{timeline}");
        }
        // Checked in the browser against the log key the console was given.
        assert_eq!(
            timeline.matches("receipt verified").count(),
            3,
            "{timeline}"
        );

        // A count at the embassy that does not see the laptop: the
        // discrepancy arrives on the live stream.
        wait_for(&browser, "live", |t| t.starts_with("Live:")).await;
        fill(&browser, "report-location", "Embassy-2").await;
        fill(&browser, "report-by", "emp-5521").await;
        fill(&browser, "report-tags", "").await;
        click(&browser, "#report-form button[type=submit]").await;
        let live = wait_for_row(&browser, "discrepancies", |r| r[0] == "discrepancy").await;
        assert_eq!(live[1], "missing", "{live:?}");
        assert_eq!(live[2], "LAP-0042", "{live:?}");
        assert_eq!(live[3], "Embassy-2", "{live:?}");
        assert_eq!(live[4], "inventory.report", "{live:?}");
        let result = wait_for(&browser, "report-result", |t| !t.is_empty()).await;
        assert!(result.contains("missing: LAP-0042"), "{result}");

        eval(&browser, "window.scrollTo(0, 0);", vec![]).await;
        screenshot(&browser, "agency-console.png").await;
        let violations = accessibility(&browser).await;
        assert!(violations.is_empty(), "accessibility: {violations:#?}");
        assert_eq!(foreign_loads(&browser).await, Vec::<String>::new());
        browser.close().await.expect("close the browser");
    });

    // What the page did is what the CLI sees: state holds the laptop,
    // accepted by the offer the CLI made.
    let view = cli(&fed, "treasury", &["asset", "show", "LAP-0042"]);
    assert_eq!(view["holder"]["agency"], "state", "{view}");
    let chain = view["chain"].as_array().expect("chain");
    let accepted = chain.last().expect("an event");
    assert_eq!(accepted["kind"], "accepted", "{view}");
    assert_eq!(accepted["by"], "state", "{view}");
    assert_eq!(chain[1]["jti"], offer["jti"], "{view}");
}

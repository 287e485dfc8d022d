//! The agency console (`xgate console`) in a real browser (Debian's
//! Chromium, headless, through ChromeDriver) against a real gateway: an
//! offer another agency made appears, is accepted from the page (an
//! envelope the console signs as `xgate asset accept` does), and the asset
//! then shows as held with its custody timeline; a count reported from the
//! page opens a discrepancy that arrives live through the event stream;
//! the page loads nothing but its own files and passes axe-core's WCAG 2.1
//! A and AA rules. Its local API refuses a request without the token, or
//! under another host name.
//!
//! The medical side, across two consoles (state's and hhs's, each a page
//! of its own origin in a browser of its own): state asks for a person's
//! summary in an emergency, which breaks the glass; hhs sees the request
//! and the review it owes, answers with `xgate medical respond`; state
//! opens the answer in its page; hhs's reviewer closes the review from the
//! page, the outcome and note surviving the page's refreshes.

mod browser;
mod federation;

use std::time::Duration;

use fantoccini::Locator;
use http::StatusCode;
use serde_json::{Value, json};
use xgate_tests::ConsoleServer;
use xgate_tests::browser::Driver;

use browser::{
    accessibility, click, click_button, eval, fill, foreign_loads, screenshot, text_of, wait_for,
    wait_for_row,
};
use federation::{Federation, xgate};

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

/// A plain HTTP/1.1 request to the console with `headers`; its status.
fn status_of(origin: &str, path: &str, headers: &[(&str, &str)]) -> StatusCode {
    call(origin, "GET", path, headers, "").0
}

/// A plain HTTP/1.1 `method` of `path` to the console with `headers` and
/// `body`; its status and body.
fn call(
    origin: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    use std::io::{Read, Write};
    let addr = origin.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the console");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let code = answer.split(' ').nth(1).expect("a status line");
    let status = StatusCode::from_u16(code.parse().expect("a status")).expect("a status code");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

/// The console refuses what its page could not have sent, before any
/// command runs: no token, another host, a body that is not one action, an
/// action it does not know, a field the action does not take (the
/// connection's own flags among them). Nothing reaches the gateway.
#[test]
fn the_console_refuses_bad_requests_and_sends_nothing() {
    let fed = Federation::start();
    let rt = federation::runtime();
    let mut client = fed.client("state");
    let before = rt.block_on(federation::log_size(&mut client));
    let console = ConsoleServer::start(
        env!("CARGO_BIN_EXE_xgate"),
        &fed.pki(),
        "state",
        fed.gateway.url(),
        &[],
    );
    let host = console.origin().trim_start_matches("http://").to_owned();
    let bearer = format!("Bearer {}", console.token());
    let run = |headers: &[(&str, &str)], body: &str| {
        let (status, body) = call(console.origin(), "POST", "/api/run", headers, body);
        let answer: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        (
            status,
            answer["error"]["code"].clone(),
            answer["error"]["message"].clone(),
        )
    };
    let good = [("Host", host.as_str()), ("Authorization", bearer.as_str())];
    let offer = r#"{"action":"asset.offer","fields":{"tag":"LAP-1","to":"treasury","person":"p","reason":"r"}}"#;
    assert_eq!(
        run(&[("Host", &host)], offer),
        (
            StatusCode::UNAUTHORIZED,
            json!("unauthorized"),
            json!("open the address the console printed at start (it carries the token)")
        )
    );
    assert_eq!(
        run(
            &[("Host", "attacker.example"), ("Authorization", &bearer)],
            offer
        ),
        (
            StatusCode::MISDIRECTED_REQUEST,
            json!("wrong_host"),
            json!("this console answers only at its own address")
        )
    );
    assert_eq!(
        run(&good, "not json"),
        (
            StatusCode::BAD_REQUEST,
            json!("malformed"),
            json!("send {\"action\": NAME, \"fields\": {...}}")
        )
    );
    assert_eq!(
        run(&good, r#"{"action":"serve"}"#),
        (
            StatusCode::BAD_REQUEST,
            json!("malformed"),
            json!("there is no action \"serve\"")
        )
    );
    assert_eq!(
        run(
            &good,
            r#"{"action":"asset.offer","fields":{"as":"treasury","tag":"LAP-1"}}"#
        ),
        (
            StatusCode::BAD_REQUEST,
            json!("malformed"),
            json!("action asset.offer takes no field \"as\"")
        )
    );
    assert_eq!(
        run(
            &good,
            r#"{"action":"asset.offer","fields":{"tag":["LAP-1"]}}"#
        ),
        (
            StatusCode::BAD_REQUEST,
            json!("malformed"),
            json!("field \"tag\" must be a string")
        )
    );
    assert_eq!(rt.block_on(federation::log_size(&mut client)), before);
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

    let console = browser::console(&fed, "state");
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

/// The synthetic IPS bundles of `tests/fixtures/ips`.
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ips")
        .join(name)
}

#[test]
fn two_consoles_request_answer_open_and_review_a_medical_summary() {
    let Some(driver) = Driver::start() else {
        return;
    };
    // The medical tests' federation: state, treasury, gsa, hhs and the
    // auditor gao, under the default policy (any member may break the
    // glass for ETREAT and role medical-officer).
    let fed = federation::assets::federation(&[]);
    let console = |agency| browser::console(&fed, agency);
    let (state, hhs) = (console("state"), console("hhs"));
    let bundle = fixture("ips-avery.json");

    let rt = federation::runtime();
    let profiles = [(); 2].map(|()| tempfile::tempdir().expect("profile"));
    let jti = rt.block_on(async {
        let requester = browser::session(&driver, profiles[0].path()).await;
        let holder = browser::session(&driver, profiles[1].path()).await;
        requester
            .goto(state.url())
            .await
            .expect("open state's console");
        holder.goto(hhs.url()).await.expect("open hhs's console");
        wait_for(&requester, "who", |t| t.starts_with("Acting as state ")).await;
        wait_for(&holder, "who", |t| t.starts_with("Acting as hhs ")).await;

        // State's medical officer asks hhs for a summary in an emergency.
        requester
            .find(Locator::Id("med-to"))
            .await
            .expect("#med-to")
            .select_by_value("hhs")
            .await
            .expect("choose hhs");
        requester
            .find(Locator::Id("med-purpose"))
            .await
            .expect("#med-purpose")
            .select_by_value("ETREAT")
            .await
            .expect("choose ETREAT");
        fill(&requester, "med-subject", "hhs-mrn-000123").await;
        fill(&requester, "med-incident", "INC-2026-0042").await;
        fill(&requester, "med-responder", "Dr. Casey Example").await;
        fill(&requester, "med-role", "medical-officer").await;
        for section in ["problems", "immunizations"] {
            click(&requester, &format!("#medical-form input[value={section}]")).await;
        }
        let checked = eval(
            &requester,
            "return [...document.querySelectorAll('#medical-form input[name=section]:checked')]\
                .map(c => c.value);",
            vec![],
        )
        .await;
        assert_eq!(
            checked,
            json!(["allergies", "medications", "problems", "immunizations"])
        );
        click(&requester, "#medical-form button[type=submit]").await;
        let sent = wait_for_row(&requester, "outgoing", |r| r.len() == 4).await;
        assert_eq!(sent[1], "hhs", "{sent:?}");
        assert_eq!(sent[2], "granted (break the glass)", "{sent:?}");
        assert_eq!(sent[3], "none yet", "{sent:?}");
        let jti = sent[0].clone();

        // At hhs: the request, granted at once, and the review it owes.
        let incoming = wait_for_row(&holder, "incoming", |r| r[0] == jti).await;
        assert_eq!(incoming[1], "state", "{incoming:?}");
        assert_eq!(incoming[2], "ETREAT", "{incoming:?}");
        assert_eq!(incoming[3], "granted (break the glass)", "{incoming:?}");
        assert_eq!(
            incoming[4], "answered with xgate medical respond",
            "{incoming:?}"
        );
        let review = wait_for_row(&holder, "reviews", |r| r[0] == jti).await;
        assert_eq!(review[1], "state", "{review:?}");
        assert!(!review[3].contains("overdue"), "{review:?}");
        let violations = accessibility(&holder).await;
        assert!(
            violations.is_empty(),
            "accessibility (hhs): {violations:#?}"
        );

        // hhs answers from the command line, as its page says.
        let answered = cli(
            &fed,
            "hhs",
            &[
                "medical",
                "respond",
                "--request",
                &jti,
                "--bundle",
                bundle.to_str().expect("utf-8 path"),
            ],
        );
        assert_eq!(answered["kind"], "medical.response", "{answered}");
        let response = answered["response"].as_u64().expect("a response id");

        // State's page shows the answer on a later refresh; opened there.
        let open = format!("Open answer {response}");
        let sent = wait_for_row(&requester, "outgoing", |r| r[0] == jti && r[3] == open).await;
        assert_eq!(sent[2], "used (break the glass)", "{sent:?}");
        click_button(&requester, "outgoing", &open).await;
        let opened = wait_for(&requester, "opened", |t| t.contains("decrypted here")).await;
        assert!(
            opened.contains(&format!("Answer {response} from hhs, decrypted here")),
            "{opened}"
        );
        assert!(opened.contains("bundle validated"), "{opened}");
        for expected in [
            "TEST-AVERY-0001",
            "Allergy to penicillin",
            "Shellfish allergy",
            "Ramipril 5 mg tablet",
            "Tdap",
        ] {
            assert!(opened.contains(expected), "{expected} not in {opened}");
        }
        let entries = eval(
            &requester,
            "return document.querySelectorAll('#opened li').length;",
            vec![],
        )
        .await;
        let fixture: Value =
            serde_json::from_slice(&std::fs::read(&bundle).expect("fixture")).expect("JSON");
        assert_eq!(
            entries,
            json!(fixture["entry"].as_array().expect("entries").len()),
            "one item per entry of the bundle"
        );
        eval(&requester, "window.scrollTo(0, 0);", vec![]).await;
        let violations = accessibility(&requester).await;
        assert!(
            violations.is_empty(),
            "accessibility (state): {violations:#?}"
        );
        assert_eq!(foreign_loads(&requester).await, Vec::<String>::new());

        // hhs's reviewer chooses an outcome and writes the note, taking
        // longer than the page's refresh (5 s), then closes the review.
        let incoming = wait_for_row(&holder, "incoming", |r| {
            r[0] == jti && r[3] == "used (break the glass)"
        })
        .await;
        assert_eq!(incoming[1], "state", "{incoming:?}");
        holder
            .find(Locator::Css(&format!(
                "#reviews select[aria-label='Outcome for {jti}']"
            )))
            .await
            .expect("the outcome")
            .select_by_value("inappropriate")
            .await
            .expect("choose inappropriate");
        holder
            .find(Locator::Css(&format!(
                "#reviews input[aria-label='Review note for {jti}']"
            )))
            .await
            .expect("the note")
            .send_keys("no emergency on record for INC-2026-0042")
            .await
            .expect("type the note");
        tokio::time::sleep(Duration::from_millis(6500)).await;
        let kept = eval(
            &holder,
            "const row = [...document.querySelectorAll('#reviews tbody tr')]\
                .find(r => r.cells[0].textContent === arguments[0]);\
             return [row.querySelector('select').value, row.querySelector('input').value,\
                 document.activeElement === row.querySelector('input')];",
            vec![json!(jti)],
        )
        .await;
        assert_eq!(
            kept,
            json!([
                "inappropriate",
                "no emergency on record for INC-2026-0042",
                true
            ]),
            "a refresh kept what the reviewer chose and typed, and the focus"
        );
        click_button(&holder, "reviews", "Close review").await;
        wait_for_row(&holder, "reviews", |r| {
            r[0] == "Nothing awaits your review."
        })
        .await;
        let status = text_of(&holder, "status").await;
        assert_eq!(status, format!("review of {jti}: done"));
        let violations = accessibility(&holder).await;
        assert!(
            violations.is_empty(),
            "accessibility (hhs): {violations:#?}"
        );
        assert_eq!(foreign_loads(&holder).await, Vec::<String>::new());

        requester.close().await.expect("close state's browser");
        holder.close().await.expect("close hhs's browser");
        jti
    });

    // What the pages did is what the command line sees.
    let case = cli(&fed, "hhs", &["medical", "show", &jti]);
    assert_eq!(case["status"], "used", "{case}");
    assert_eq!(case["break_glass"], true, "{case}");
    assert_eq!(case["requester"], "state", "{case}");
    assert_eq!(case["review"]["outcome"], "inappropriate", "{case}");
    assert_eq!(
        case["responses"].as_array().map(Vec::len),
        Some(1),
        "{case}"
    );
    let queue = cli(&fed, "hhs", &["medical", "reviews"]);
    assert_eq!(queue["reviews"], json!([]), "{queue}");
}

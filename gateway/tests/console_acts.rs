//! Contracts' acts in the agency console (issue 25), in a real browser
//! (Debian's Chromium, headless, through ChromeDriver) against a real
//! gateway whose policy file holds contracts: an offer of an armory laptop
//! to state is held for a second approval (`require_second_approval`) and
//! state is told of it (`notify`). State's page shows the notice as an act
//! (what was done, by which contract, about what, how it went, the entry
//! that triggered it, its receipt verified in the page, no JWS) and, asked
//! why, the gateway's explanation of that entry, exactly as `xgate
//! contracts explain` prints it, beside the contracts in force. Treasury's
//! page shows the asset awaiting approval; the person who offered it
//! cannot approve it, another person of treasury approves it from the
//! page, and state accepts it from its own page: the asset changes
//! holder. A second held offer is denied from the page and withdrawn.

mod browser;
mod federation;

use serde_json::{Value, json};
use sha2::Digest;
use xgate_tests::browser::Driver;

use browser::{
    accessibility, click, click_button, eval, fill, foreign_loads, rows, text_of, wait_for,
    wait_for_row,
};
use federation::{Federation, xgate};

/// The contracts this test adds to the shared ones
/// (`federation::contracts::CONTRACTS`): an armory laptop offered to state
/// needs a second person of the offering agency, and state hears of it.
const MORE: &str = r#"
[[contract]]
name = "armory-needs-two"
on = "envelope:asset.transfer.offer"
when = 'offer.to == "state" && asset.location == "ARMORY"'
do = "require_second_approval"

[[contract]]
name = "tell-state-of-armory-offers"
on = "envelope:asset.transfer.offer"
when = 'offer.to == "state" && asset.location == "ARMORY"'
do = "notify"
to = "recipient"
"#;

/// Runs `xgate ARGS --pki PKI --as AGENCY --gateway URL`: what it printed.
fn cli_out(fed: &Federation, agency: &str, args: &[&str]) -> String {
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
    xgate().run(&all, b"").expect_ok()
}

/// The same, each line as JSON.
fn cli(fed: &Federation, agency: &str, args: &[&str]) -> Vec<Value> {
    cli_out(fed, agency, args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Treasury registers `tag` at the armory, held by p-1.
fn register(fed: &Federation, tag: &str) {
    cli(
        fed,
        "treasury",
        &[
            "asset",
            "register",
            "--tag",
            tag,
            "--serial",
            &format!("SN-{tag}"),
            "--category",
            "laptop",
            "--description",
            "armory laptop",
            "--person",
            "p-1",
            "--location",
            "ARMORY",
        ],
    );
}

/// Treasury offers `tag` to p-3 of state: the offer's log index and `jti`.
fn offer(fed: &Federation, tag: &str) -> (u64, String) {
    let made = cli(
        fed,
        "treasury",
        &[
            "asset", "offer", "--tag", tag, "--to", "state", "--person", "p-3", "--reason",
            "posting",
        ],
    );
    let index = made[0]["receipt"]["log_index"].as_u64().expect("log_index");
    (index, made[0]["jti"].as_str().expect("jti").to_owned())
}

/// Sets the approver of `tag`'s held offer in `browser`'s asset table.
async fn approver(browser: &fantoccini::Client, tag: &str, name: &str) {
    eval(
        browser,
        "document.querySelector(`#assets tr[data-tag='${arguments[0]}'] input.approver`).value = arguments[1];",
        vec![json!(tag), json!(name)],
    )
    .await;
}

/// Waits until table `id` has no row whose first cell is `first`.
async fn wait_for_no_row(browser: &fantoccini::Client, id: &str, first: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let all = rows(browser, id).await;
        if !all.iter().any(|r| r[0].starts_with(first)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "#{id} kept {first}: {all:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[test]
fn the_console_shows_acts_explains_them_and_decides_a_held_offer() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let (fed, _dir, policy_path) = federation::contracts::start(MORE);
    let policy_hash = hex::encode(sha2::Sha256::digest(
        std::fs::read(&policy_path).expect("policy"),
    ));
    register(&fed, "LAP-0099");
    register(&fed, "LAP-0100");
    // The offer, then its two acts in the same commit: the hold, then the
    // notice to state.
    let (trigger, _) = offer(&fed, "LAP-0099");
    let (hold, notice) = (trigger + 1, trigger + 2);

    let console = |agency| browser::console(&fed, agency);
    let (state, treasury) = (console("state"), console("treasury"));
    let explained_by_cli = cli_out(
        &fed,
        "state",
        &["contracts", "explain", &trigger.to_string()],
    );
    let in_force: Vec<String> = cli(&fed, "state", &["contracts", "list"])
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();

    let rt = federation::runtime();
    let profiles = [(); 2].map(|()| tempfile::tempdir().expect("profile"));
    rt.block_on(async {
        let recipient = browser::session(&driver, profiles[0].path()).await;
        let holder = browser::session(&driver, profiles[1].path()).await;
        recipient
            .goto(state.url())
            .await
            .expect("open state's console");
        holder
            .goto(treasury.url())
            .await
            .expect("open treasury's console");
        wait_for(&recipient, "who", |t| t.starts_with("Acting as state ")).await;
        wait_for(&holder, "who", |t| t.starts_with("Acting as treasury ")).await;

        // (a) The notice in state's inbox, rendered as the act it is, its
        // receipt verified in the page, and no JWS anywhere in the row.
        let act = wait_for_row(&recipient, "inbox", |r| r[2] == "contract.act").await;
        assert_eq!(act[0], notice.to_string(), "{act:?}");
        assert_eq!(act[1], "treasury", "{act:?}");
        assert!(
            act[3].contains(&format!("receipt verified: entry {notice} in a tree of ")),
            "{act:?}"
        );
        assert!(
            act[4].starts_with(&format!(
                "notify by contract tell-state-of-armory-offers: tag LAP-0099, to state; done; \
                 triggered by entry {trigger} at "
            )),
            "{act:?}"
        );
        let row_html = eval(
            &recipient,
            "return document.querySelector(`#inbox tr.act`).outerHTML;",
            vec![],
        )
        .await;
        let row_html = row_html.as_str().expect("html");
        assert!(
            !row_html.contains("eyJ") && !row_html.contains("jws"),
            "{row_html}"
        );

        // The held offer, at state: no answer yet.
        let held = wait_for_row(&recipient, "offers", |r| r[0].starts_with("LAP-0099")).await;
        assert_eq!(
            held[4], "awaiting a second approval at treasury (a contract's two-person rule)",
            "{held:?}"
        );

        // (c) Why: the gateway's explanation of the triggering entry, as
        // `xgate contracts explain` prints it.
        click_button(
            &recipient,
            "inbox",
            &format!("Why: explain entry {trigger}"),
        )
        .await;
        let why = wait_for(&recipient, "explained", |t| t.contains("fired:")).await;
        assert!(
            why.starts_with(&format!(
                "Why: entry {trigger} (xgate contracts explain {trigger})"
            )),
            "{why}"
        );
        let shown = eval(
            &recipient,
            "return document.querySelector('#explained pre').textContent;",
            vec![],
        )
        .await;
        assert_eq!(
            shown.as_str().map(|s| format!("{s}\n")),
            Some(explained_by_cli.clone())
        );
        for line in [
            format!("entry {trigger}: asset.transfer.offer, policy {policy_hash} (in force)"),
            "trigger: envelope:asset.transfer.offer".to_owned(),
            format!(
                "fired: armory-needs-two on envelope:asset.transfer.offer, do \
                 require_second_approval: act {hold} done"
            ),
            format!(
                "fired: tell-state-of-armory-offers on envelope:asset.transfer.offer, do notify: \
                 act {notice} done"
            ),
            "not fired: treasury-to-gsa-laptops on envelope:asset.transfer.offer: condition \
             false: offer.from == \"treasury\" && offer.to == \"gsa\" && asset.category == \
             \"laptop\""
                .to_owned(),
            format!(
                "act {hold}: require_second_approval by armory-needs-two (trigger {trigger}), done"
            ),
            format!(
                "act {notice}: notify by tell-state-of-armory-offers (trigger {trigger}), done"
            ),
        ] {
            assert!(
                explained_by_cli.lines().any(|l| l == line),
                "{line} not in {explained_by_cli}"
            );
        }

        // The contracts in force, as `xgate contracts list` has them.
        let contracts = rows(&recipient, "contracts").await;
        let names: Vec<&str> = contracts.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, in_force, "{contracts:?}");
        let two = contracts
            .iter()
            .find(|r| r[0] == "armory-needs-two")
            .expect("the rule");
        assert_eq!(two[1], "envelope:asset.transfer.offer", "{two:?}");
        assert_eq!(two[3], "require_second_approval", "{two:?}");
        let tell = contracts
            .iter()
            .find(|r| r[0] == "tell-state-of-armory-offers")
            .expect("the notice");
        assert_eq!(tell[3], "notify (to recipient)", "{tell:?}");

        // Any entry can be asked about: the hold itself.
        fill(&recipient, "explain-entry", &hold.to_string()).await;
        click(&recipient, "#explain-form button[type=submit]").await;
        let why = wait_for(&recipient, "explained", |t| {
            t.contains(&format!("entry {hold}: contract.act"))
        })
        .await;
        assert!(why.contains(&format!("Why: entry {hold} ")), "{why}");

        // (b) At treasury, the asset awaits a second approval.
        let row = wait_for_row(&holder, "assets", |r| {
            r[0] == "LAP-0099" && r[4].starts_with("awaiting_approval")
        })
        .await;
        assert!(
            row[4].contains(&format!("held by a contract (act {hold})")),
            "{row:?}"
        );
        assert!(row[4].contains("anyone of your agency but p-1"), "{row:?}");
        // The person who offered it cannot approve it: refused, and the
        // page says why.
        approver(&holder, "LAP-0099", "p-1").await;
        click(&holder, "#assets tr[data-tag='LAP-0099'] button.approve").await;
        let status = wait_for(&holder, "status", |t| t.contains("same_person")).await;
        assert!(
            status.starts_with("approval of LAP-0099 refused: "),
            "{status}"
        );
        let row = wait_for_row(&holder, "assets", |r| r[0] == "LAP-0099").await;
        assert!(row[4].starts_with("awaiting_approval"), "{row:?}");
        // Another person of treasury approves it.
        approver(&holder, "LAP-0099", "p-5").await;
        click(&holder, "#assets tr[data-tag='LAP-0099'] button.approve").await;
        wait_for(&holder, "status", |t| t == "approval of LAP-0099: done").await;
        // The table follows at its next refresh.
        wait_for_row(&holder, "assets", |r| {
            r[0] == "LAP-0099" && r[4] == "offered"
        })
        .await;

        // State can now answer it, and accepts it from its page.
        wait_for_row(&recipient, "offers", |r| {
            r[0].starts_with("LAP-0099") && r[4].contains("Accept LAP-0099")
        })
        .await;
        click(&recipient, "#offers tr[data-tag='LAP-0099'] button.accept").await;
        let moved = wait_for_row(&recipient, "assets", |r| r[0] == "LAP-0099").await;
        assert_eq!(moved[2], "state / p-3", "{moved:?}");
        assert_eq!(moved[4], "held", "{moved:?}");
        wait_for_no_row(&holder, "assets", "LAP-0099").await;

        // A second held offer, denied from the page: withdrawn.
        let (trigger, _) = offer(&fed, "LAP-0100");
        wait_for_row(&recipient, "offers", |r| {
            r[0].starts_with("LAP-0100") && r[4].starts_with("awaiting a second approval")
        })
        .await;
        wait_for_row(&holder, "assets", |r| {
            r[0] == "LAP-0100" && r[4].contains(&format!("(act {})", trigger + 1))
        })
        .await;
        approver(&holder, "LAP-0100", "p-1").await;
        click(&holder, "#assets tr[data-tag='LAP-0100'] button.deny").await;
        wait_for(&holder, "status", |t| t == "denial of LAP-0100: done").await;
        wait_for_row(&holder, "assets", |r| r[0] == "LAP-0100" && r[4] == "held").await;
        wait_for_no_row(&recipient, "offers", "LAP-0100").await;

        for (page, who) in [(&recipient, "state"), (&holder, "treasury")] {
            eval(page, "window.scrollTo(0, 0);", vec![]).await;
            let violations = accessibility(page).await;
            assert!(
                violations.is_empty(),
                "accessibility ({who}): {violations:#?}"
            );
            assert_eq!(foreign_loads(page).await, Vec::<String>::new(), "{who}");
        }
        let status = text_of(&recipient, "status").await;
        assert!(!status.contains("cannot read"), "{status}");
        recipient.close().await.expect("close state's browser");
        holder.close().await.expect("close treasury's browser");
    });

    // What the pages did is what the command line sees: state holds the
    // laptop, approved by a second person of treasury; the other offer
    // was withdrawn.
    let moved = &cli(&fed, "state", &["asset", "show", "LAP-0099"])[0];
    assert_eq!(
        moved["holder"],
        json!({"agency": "state", "person": "p-3"}),
        "{moved}"
    );
    let kinds: Vec<&str> = moved["chain"]
        .as_array()
        .expect("chain")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["registered", "offered", "approved", "accepted"],
        "{moved}"
    );
    let kept = &cli(&fed, "treasury", &["asset", "show", "LAP-0100"])[0];
    assert_eq!(
        kept["holder"],
        json!({"agency": "treasury", "person": "p-1"}),
        "{kept}"
    );
    assert_eq!(kept["status"], "held", "{kept}");
    assert_eq!(kept["offer"], Value::Null, "{kept}");
}

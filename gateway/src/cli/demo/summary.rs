//! What the demo did, as a table of its envelopes and a few totals (the
//! contracts' acts among them). Only the elapsed time differs between
//! runs.

use std::io::Write;
use std::time::Duration;

use xgate_server::kind::Kind;
use xgate_server::receipt::Receipt;
use xgate_server::registry::AgencyId;

use crate::cli::error::Error;

/// One envelope of the story, for the summary and the auditor.
pub(super) struct Row {
    /// The step that sent it.
    pub step: usize,
    /// Its kind.
    pub kind: Kind,
    /// Sender.
    pub from: AgencyId,
    /// Recipient.
    pub to: AgencyId,
    /// The tag or request it is about.
    pub subject: String,
    /// Its receipt, as the sender's gateway returned it.
    pub receipt: Receipt,
    /// In a federation, the recipient gateway's receipt, if another
    /// gateway serves the recipient.
    pub delivery: Option<Receipt>,
    /// Whether the auditor verified its receipts.
    pub verified: bool,
}

/// What happened, step by step and in all.
#[derive(Default)]
pub(super) struct Tally {
    /// Every envelope the story sent, in order.
    pub rows: Vec<Row>,
    /// Discrepancies received on the live feed.
    pub live_events: usize,
    /// The log's size at the auditor's last checkpoint.
    pub log_size: u64,
    /// Each log's size in the checkpoint the auditor proved its receipts
    /// in, by gateway.
    pub log_sizes: Vec<(String, u64)>,
    /// The consistency the auditor proved, if it got that far.
    pub consistency: Option<Consistency>,
    /// The cosigned checkpoint the auditor proved every receipt in, if it
    /// got that far.
    pub quorum: Option<QuorumCheck>,
    /// In a federation, the ok line of the auditor's replay of every log.
    pub federation: Option<String>,
    /// The acts contracts took in the story, in log order.
    pub acts: Vec<Acted>,
    /// What the replay after the gateways stopped recomputed, each state
    /// matching.
    pub replayed: Option<Replayed>,
    /// From start to finish.
    pub elapsed: Duration,
}

/// An act a contract took, as its log entry names it.
pub(super) struct Acted {
    /// Where it was logged: `entry N`, or in a federation `GATEWAY entry
    /// N`.
    pub entry: String,
    /// The act (`accept_offer`, `require_second_approval`).
    pub act: String,
    /// The contract that took it.
    pub contract: String,
}

/// The offline replay of the stopped gateways' logs.
pub(super) struct Replayed {
    /// The logs replayed.
    pub logs: usize,
    /// Their entries, in all.
    pub entries: u64,
    /// The contracts' acts recomputed and found logged as computed.
    pub acts: u64,
}

/// Two checkpoint sizes proven consistent.
pub(super) struct Consistency {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
}

/// Every receipt proven in one checkpoint a quorum of witnesses cosigned.
pub(super) struct QuorumCheck {
    /// The receipts proven.
    pub receipts: usize,
    /// The cosigned checkpoint's size.
    pub size: u64,
    /// The witnesses that cosigned it.
    pub cosigners: usize,
    /// The witnesses listed.
    pub witnesses: usize,
    /// The cosignatures required.
    pub required: usize,
}

/// Prints the table and the totals; `federated` for a federation of
/// gateways, where an entry delivered to another gateway shows both its
/// indices (`sender's -> recipient's`).
///
/// # Errors
/// If stdout fails.
pub(super) fn print(tally: &Tally, federated: bool, stdout: &mut dyn Write) -> Result<(), Error> {
    let entries: Vec<String> = tally
        .rows
        .iter()
        .map(|r| match &r.delivery {
            Some(d) => format!("{} -> {}", r.receipt.log_index, d.log_index),
            None => r.receipt.log_index.to_string(),
        })
        .collect();
    let width = entries.iter().map(String::len).max().unwrap_or(0).max(5);
    let mut text = String::from("summary\n");
    text.push_str(&format!(
        "{:>4}  {:<22}  {:<20}  {:<18}  {:>width$}  {}\n",
        "step", "kind", "from -> to", "about", "entry", "receipt"
    ));
    for (row, entry) in tally.rows.iter().zip(&entries) {
        text.push_str(&format!(
            "{:>4}  {:<22}  {:<20}  {:<18}  {:>width$}  {}\n",
            row.step,
            row.kind.as_str(),
            format!("{} -> {}", row.from, row.to),
            row.subject,
            entry,
            if row.verified {
                "verified"
            } else {
                "not verified"
            }
        ));
    }
    let totals = match federated {
        true => federated_totals(tally),
        false => single_totals(tally),
    };
    text.push('\n');
    for (name, value) in totals {
        text.push_str(&format!("{name:<19} {value}\n"));
    }
    text.push_str(&format!(
        "{:<19} {:.1} s\n",
        "elapsed",
        tally.elapsed.as_secs_f64()
    ));
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}

/// The totals of one gateway with its witnesses.
fn single_totals(tally: &Tally) -> Vec<(&'static str, String)> {
    let verified = tally.rows.iter().filter(|r| r.verified).count();
    let consistency = match &tally.consistency {
        Some(c) => format!("ok, size {} -> {}", c.from, c.to),
        None => "not checked".to_owned(),
    };
    let quorum = match &tally.quorum {
        Some(q) => format!(
            "ok, {} receipts in the checkpoint of size {} cosigned by {} of {} witnesses, {} required",
            q.receipts, q.size, q.cosigners, q.witnesses, q.required
        ),
        None => "not checked".to_owned(),
    };
    let replay = match &tally.replayed {
        Some(r) => format!(
            "ok, {} entries, {} contract acts recomputed, state equal",
            r.entries, r.acts
        ),
        None => "not run".to_owned(),
    };
    vec![
        ("envelopes", tally.rows.len().to_string()),
        (
            "receipts verified",
            format!("{verified} of {}", tally.rows.len()),
        ),
        ("log size", tally.log_size.to_string()),
        ("consistency", consistency),
        ("witness quorum", quorum),
        ("live discrepancies", tally.live_events.to_string()),
        ("contract acts", acts(tally)),
        ("replay", replay),
    ]
}

/// The acts contracts took: how many, and each with where it was logged.
fn acts(tally: &Tally) -> String {
    let each: Vec<String> = tally
        .acts
        .iter()
        .map(|a| format!("{} by {} at {}", a.act, a.contract, a.entry))
        .collect();
    match each.is_empty() {
        true => "0".to_owned(),
        false => format!("{}: {}", each.len(), each.join(", ")),
    }
}

/// The totals of a federation of gateways.
fn federated_totals(tally: &Tally) -> Vec<(&'static str, String)> {
    let delivered = tally.rows.iter().filter(|r| r.delivery.is_some()).count();
    let verified = tally.rows.iter().filter(|r| r.verified);
    let receipts = verified.clone().count();
    let deliveries = verified.filter(|r| r.delivery.is_some()).count();
    let sizes: Vec<String> = tally
        .log_sizes
        .iter()
        .map(|(gateway, size)| format!("{gateway} {size}"))
        .collect();
    let federation = match &tally.federation {
        Some(line) => format!("ok, {}", line.trim_start_matches("ok: ")),
        None => "not run".to_owned(),
    };
    let replay = match &tally.replayed {
        Some(r) => format!(
            "ok, {} logs, {} entries, {} contract acts recomputed, each state equal",
            r.logs, r.entries, r.acts
        ),
        None => "not run".to_owned(),
    };
    vec![
        (
            "envelopes",
            format!("{}, {delivered} across gateways", tally.rows.len()),
        ),
        (
            "receipts verified",
            format!(
                "{receipts} of {}, and {deliveries} delivery receipts of {delivered}",
                tally.rows.len()
            ),
        ),
        ("log sizes", sizes.join(", ")),
        (
            "witness quorum",
            "each log's checkpoint served once a majority of its peers cosigned it".to_owned(),
        ),
        ("federation replay", federation),
        ("live discrepancies", tally.live_events.to_string()),
        ("contract acts", acts(tally)),
        ("replay", replay),
    ]
}

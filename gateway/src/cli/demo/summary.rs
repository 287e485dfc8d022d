//! What the demo did, as a table of its envelopes and a few totals. Only
//! the elapsed time differs between runs.

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
    /// Its receipt, as the gateway returned it.
    pub receipt: Receipt,
    /// Whether the auditor verified the receipt.
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
    /// The consistency the auditor proved, if it got that far.
    pub consistency: Option<Consistency>,
    /// The cosigned checkpoint the auditor proved every receipt in, if it
    /// got that far.
    pub quorum: Option<QuorumCheck>,
    /// Entries replayed after the gateway stopped, the state matching.
    pub replayed: Option<u64>,
    /// From start to finish.
    pub elapsed: Duration,
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

/// Prints the table and the totals.
///
/// # Errors
/// If stdout fails.
pub(super) fn print(tally: &Tally, stdout: &mut dyn Write) -> Result<(), Error> {
    let mut text = String::from("summary\n");
    text.push_str(&format!(
        "{:>4}  {:<22}  {:<20}  {:<18}  {:>5}  {}\n",
        "step", "kind", "from -> to", "about", "entry", "receipt"
    ));
    for row in &tally.rows {
        text.push_str(&format!(
            "{:>4}  {:<22}  {:<20}  {:<18}  {:>5}  {}\n",
            row.step,
            row.kind.as_str(),
            format!("{} -> {}", row.from, row.to),
            row.subject,
            row.receipt.log_index,
            if row.verified {
                "verified"
            } else {
                "not verified"
            }
        ));
    }
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
    let replay = match tally.replayed {
        Some(n) => format!("ok, {n} entries, state equal"),
        None => "not run".to_owned(),
    };
    let totals = [
        ("envelopes", tally.rows.len().to_string()),
        (
            "receipts verified",
            format!("{verified} of {}", tally.rows.len()),
        ),
        ("log size", tally.log_size.to_string()),
        ("consistency", consistency),
        ("witness quorum", quorum),
        ("live discrepancies", tally.live_events.to_string()),
        ("replay", replay),
        ("elapsed", format!("{:.1} s", tally.elapsed.as_secs_f64())),
    ];
    text.push('\n');
    for (name, value) in totals {
        text.push_str(&format!("{name:<19} {value}\n"));
    }
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}

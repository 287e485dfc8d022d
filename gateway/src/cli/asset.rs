//! The asset custody commands (docs/assets.md): thin clients of the HTTP
//! API that sign one asset envelope and submit it, or read the asset state.
//! The rules themselves live in the gateway ([`xgate_server::assets`]); these
//! commands only build bodies, check them with the same field checks the
//! gateway runs (so a bad value is refused before anything is sent), and
//! print what the gateway answers.
//!
//! ```text
//! xgate asset register CONN --tag T --serial S --category C --description D --person P --location L [--jti J]
//! xgate asset offer    CONN --tag T --to AGENCY --person P --reason R [--jti J]
//! xgate asset accept   CONN --tag T --offer JTI [--from AGENCY] [--location L] [--jti J]
//! xgate asset reject   CONN --tag T --offer JTI [--from AGENCY] [--jti J]
//! xgate asset approve  CONN --tag T --act I --approver P [--jti J]
//! xgate asset deny     CONN --tag T --act I --approver P [--jti J]
//! xgate asset show     CONN TAG
//! xgate asset list     CONN [--holder-agency A] [--person P] [--location L] [--status S] [--after TAG] [--limit N] [--all]
//! xgate inventory report CONN [--show] [--jti J] FILE|-
//! ```
//!
//! `CONN` is the connection of `xgate send`: `--pki DIR --as ID --gateway URL`.
//!
//! Every submitting command prints one line of JSON,
//! `{"kind","jti","tag"?,"receipt","reconciliation_id"?}`: the envelope's
//! kind and `jti` (an offer's `jti` is what `accept` and `reject` name), the
//! asset's tag, the receipt exactly as the gateway returned it (ready for
//! `xgate audit verify-receipt`), and for an inventory report the id of its
//! reconciliation report; `inventory report --show` then prints that report
//! on a second line. `show` prints the gateway's answer as is; `list` prints
//! `{"assets":[...],"next":...}`, with `--all` every page in one object.
//! A refusal by the gateway is an error naming its status and code.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::Error;
use super::session::{Connection, Session, emit, emit_json, parse};
use super::values::non_negative;
use xgate_server::assets::model::{Answer, Approval, AssetBody, Holder, Offer, Register, Report};
use xgate_server::kind::Kind;
use xgate_server::receipt::Receipt;
use xgate_server::registry::AgencyId;

/// The `xgate asset` subcommands.
#[derive(Debug, Subcommand)]
pub enum AssetCommand {
    /// Register an asset, held by a person of your own agency.
    Register(RegisterArgs),
    /// Offer an asset you hold to a person of another (or your own) agency.
    Offer(OfferArgs),
    /// Accept an offer made to you: custody moves to you.
    Accept(AcceptArgs),
    /// Reject an offer made to you: custody stays where it is.
    Reject(AnswerArgs),
    /// As a second person of the holder's agency, approve an offer a
    /// contract held for approval (the two-person rule): it may then be
    /// answered.
    Approve(DecideArgs),
    /// Deny an offer a contract held for approval: it is withdrawn.
    Deny(DecideArgs),
    /// Print an asset's state and custody chain, with a receipt per event.
    Show(ShowArgs),
    /// List the assets you may see, filtered.
    List(ListArgs),
}

/// The `xgate inventory` subcommands.
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Submit a physical count at one location for reconciliation.
    Report(ReportArgs),
}

/// Arguments of `xgate asset register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The asset's tag, unique in the federation.
    #[arg(long, value_name = "TAG")]
    pub tag: String,
    /// Manufacturer serial number.
    #[arg(long, value_name = "S")]
    pub serial: String,
    /// Kind of asset (laptop, phone, radio...).
    #[arg(long, value_name = "C")]
    pub category: String,
    /// Free text.
    #[arg(long, value_name = "D")]
    pub description: String,
    /// The person of your agency who holds it.
    #[arg(long, value_name = "P")]
    pub person: String,
    /// Where it is kept.
    #[arg(long, value_name = "L")]
    pub location: String,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
}

/// Arguments of `xgate asset offer`.
#[derive(Debug, Args)]
pub struct OfferArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The asset.
    #[arg(long, value_name = "TAG")]
    pub tag: String,
    /// The agency offered the asset.
    #[arg(long, value_name = "AGENCY")]
    pub to: AgencyId,
    /// The person in that agency who would hold it.
    #[arg(long, value_name = "P")]
    pub person: String,
    /// Why.
    #[arg(long, value_name = "R")]
    pub reason: String,
    /// The envelope's id, which accept and reject name (default: random).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
}

/// Arguments of `xgate asset reject`, and the common part of `accept`.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The asset.
    #[arg(long, value_name = "TAG")]
    pub tag: String,
    /// The `jti` of the offer answered.
    #[arg(long, value_name = "JTI", allow_hyphen_values = true)]
    pub offer: String,
    /// The offering agency (default: the asset's holder, asked of the
    /// gateway).
    #[arg(long, value_name = "AGENCY")]
    pub from: Option<AgencyId>,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
}

/// Arguments of `xgate asset approve` and `deny`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The asset whose offer is held.
    #[arg(long, value_name = "TAG")]
    pub tag: String,
    /// The log index of the contract's act that holds it (the asset's
    /// `offer.hold.act`).
    #[arg(long, value_name = "I")]
    pub act: u64,
    /// The person deciding: for an approval, another person than the
    /// holder who offered it.
    #[arg(long, value_name = "P")]
    pub approver: String,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
}

/// Arguments of `xgate asset accept`.
#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// The tag, offer, offering agency and `jti`.
    #[command(flatten)]
    pub answer: AnswerArgs,
    /// Where you will keep the asset (default: where it is kept now).
    #[arg(long, value_name = "L")]
    pub location: Option<String>,
}

/// Arguments of `xgate asset show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The asset's tag.
    #[arg(value_name = "TAG")]
    pub tag: String,
}

/// Where an asset stands, as `--status` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusArg {
    /// Held, no offer open, not reported missing.
    Held,
    /// An offer is open.
    Offered,
    /// An offer is open, held by a contract for a second approval.
    AwaitingApproval,
    /// A count expected it and did not find it.
    Missing,
}

impl StatusArg {
    /// Parses `--status`; the message says what is wanted, on one line.
    fn parse(text: &str) -> Result<StatusArg, String> {
        match text {
            "held" => Ok(StatusArg::Held),
            "offered" => Ok(StatusArg::Offered),
            "awaiting_approval" => Ok(StatusArg::AwaitingApproval),
            "missing" => Ok(StatusArg::Missing),
            _ => Err("must be held, offered, awaiting_approval or missing".into()),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            StatusArg::Held => "held",
            StatusArg::Offered => "offered",
            StatusArg::AwaitingApproval => "awaiting_approval",
            StatusArg::Missing => "missing",
        }
    }
}

/// Arguments of `xgate asset list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// Only assets held by this agency.
    #[arg(long, value_name = "A")]
    pub holder_agency: Option<AgencyId>,
    /// Only assets held by this person.
    #[arg(long, value_name = "P")]
    pub person: Option<String>,
    /// Only assets kept at this location.
    #[arg(long, value_name = "L")]
    pub location: Option<String>,
    /// Only assets in this state: held, offered, awaiting_approval or
    /// missing.
    #[arg(long, value_name = "S", value_parser = StatusArg::parse)]
    pub status: Option<StatusArg>,
    /// Start after this tag (the `next` of the previous page).
    #[arg(long, value_name = "TAG")]
    pub after: Option<String>,
    /// Assets per page (the gateway caps it at 100).
    #[arg(long, value_name = "N", value_parser = non_negative, allow_negative_numbers = true)]
    pub limit: Option<u64>,
    /// Follow `next` through every page and print them as one.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `xgate inventory report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// Then fetch the reconciliation report and print it on a second line.
    #[arg(long)]
    pub show: bool,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
    /// The count, `{"location","reported_by","observed":[{"tag","person"?}]}`,
    /// or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

impl AssetCommand {
    /// Runs the subcommand, printing its result on `stdout`.
    ///
    /// # Errors
    /// A body the field checks refuse, a bad key, a transport failure, or
    /// the gateway's refusal ([`Error::Refused`], naming its code).
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            AssetCommand::Register(a) => a.run(stdout),
            AssetCommand::Offer(a) => a.run(stdout),
            AssetCommand::Accept(a) => {
                let location = a.location;
                a.answer.run(Kind::AssetTransferAccept, location, stdout)
            }
            AssetCommand::Reject(a) => a.run(Kind::AssetTransferReject, None, stdout),
            AssetCommand::Approve(a) => a.run(Kind::ContractApprove, stdout),
            AssetCommand::Deny(a) => a.run(Kind::ContractDeny, stdout),
            AssetCommand::Show(a) => a.run(stdout),
            AssetCommand::List(a) => a.run(stdout),
        }
    }
}

impl InventoryCommand {
    /// Runs the subcommand, reading `-` from `stdin`, printing on `stdout`.
    ///
    /// # Errors
    /// As [`AssetCommand::run`], and an unreadable or invalid count.
    pub fn run(self, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            InventoryCommand::Report(a) => a.run(stdin, stdout),
        }
    }
}

impl RegisterArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let body = Register {
            tag: self.tag,
            serial: self.serial,
            category: self.category,
            description: self.description,
            holder: Holder {
                agency: self.conn.agency.clone(),
                person: self.person,
            },
            location: self.location,
        };
        let kind = Kind::AssetRegister;
        let map = checked(kind, &body)?;
        let mut session = Session::open(&self.conn)?;
        let aud = self.conn.agency.clone();
        let out = submit(&mut session, &aud, kind, map, self.jti, Some(body.tag))?;
        emit_json(stdout, &out)
    }
}

impl OfferArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let body = Offer {
            tag: self.tag,
            to: Holder {
                agency: self.to.clone(),
                person: self.person,
            },
            reason: self.reason,
        };
        let kind = Kind::AssetTransferOffer;
        let map = checked(kind, &body)?;
        let mut session = Session::open(&self.conn)?;
        let out = submit(&mut session, &self.to, kind, map, self.jti, Some(body.tag))?;
        emit_json(stdout, &out)
    }
}

impl DecideArgs {
    /// Sends the decision of `kind` (approve or deny), addressed to the
    /// sender's own agency.
    fn run(self, kind: Kind, stdout: &mut dyn Write) -> Result<(), Error> {
        let body = Approval {
            tag: self.tag,
            act: self.act,
            approver: self.approver,
        };
        let map = checked(kind, &body)?;
        let mut session = Session::open(&self.conn)?;
        let aud = self.conn.agency.clone();
        let out = submit(&mut session, &aud, kind, map, self.jti, Some(body.tag))?;
        emit_json(stdout, &out)
    }
}

impl AnswerArgs {
    /// Answers the offer with `kind` (accept or reject), addressed to the
    /// offering agency: `--from`, or the holder the gateway names.
    fn run(
        self,
        kind: Kind,
        location: Option<String>,
        stdout: &mut dyn Write,
    ) -> Result<(), Error> {
        let body = Answer {
            tag: self.tag,
            offer: self.offer,
            location,
        };
        let map = checked(kind, &body)?;
        let mut session = Session::open(&self.conn)?;
        let aud = match self.from {
            Some(from) => from,
            None => holder(&mut session, &body.tag)?,
        };
        let out = submit(&mut session, &aud, kind, map, self.jti, Some(body.tag))?;
        emit_json(stdout, &out)
    }
}

impl ShowArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        check_tag(&self.tag)?;
        let mut session = Session::open(&self.conn)?;
        let reply = session.get(&format!("/v1/assets/{}", self.tag))?;
        emit(stdout, &reply.body)
    }
}

impl ListArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let mut session = Session::open(&self.conn)?;
        let mut after = self.after.clone();
        let mut assets = Vec::new();
        loop {
            let page: Value = parse(&session.get(&self.path(after.as_deref()))?, "asset page")?;
            let next = page["next"].as_str().map(str::to_owned);
            if !self.all {
                return emit_json(stdout, &page);
            }
            match page["assets"].as_array() {
                Some(items) => assets.extend(items.iter().cloned()),
                None => {
                    return Err(Error::Request(
                        "the gateway's asset page has no assets".into(),
                    ));
                }
            }
            // A `next` that does not move on would loop for ever.
            match next {
                Some(n) if after.as_deref() != Some(n.as_str()) => after = Some(n),
                _ => break,
            }
        }
        emit_json(
            stdout,
            &serde_json::json!({ "assets": assets, "next": null }),
        )
    }

    /// `/v1/assets?...` with the filters given and `after`.
    fn path(&self, after: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(a) = &self.holder_agency {
            query.append_pair("holder_agency", a.as_str());
        }
        if let Some(p) = &self.person {
            query.append_pair("person", p);
        }
        if let Some(l) = &self.location {
            query.append_pair("location", l);
        }
        if let Some(s) = self.status {
            query.append_pair("status", s.as_str());
        }
        if let Some(a) = after {
            query.append_pair("after", a);
        }
        if let Some(l) = self.limit {
            query.append_pair("limit", &l.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/v1/assets".to_owned()
        } else {
            format!("/v1/assets?{query}")
        }
    }
}

impl ReportArgs {
    fn run(self, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Error> {
        // The count is read and checked before the PKI is touched: a bad
        // file is refused without a connection.
        let (text, name) = if self.file.as_os_str() == "-" {
            let mut text = Vec::new();
            stdin.read_to_end(&mut text).map_err(Error::Stdin)?;
            (text, "standard input".to_owned())
        } else {
            let text = std::fs::read(&self.file)
                .map_err(|e| Error::Request(format!("cannot read {}: {e}", self.file.display())))?;
            (text, self.file.display().to_string())
        };
        let map: Map<String, Value> = serde_json::from_slice(&text)
            .map_err(|_| Error::Request(format!("{name} does not hold one JSON object")))?;
        Report::parse(&map).map_err(|m| {
            Error::Request(format!(
                "{name} is not a valid inventory report: {m}; nothing was sent"
            ))
        })?;
        let mut session = Session::open(&self.conn)?;
        let aud = self.conn.agency.clone();
        let out = submit(
            &mut session,
            &aud,
            Kind::InventoryReport,
            map,
            self.jti,
            None,
        )?;
        emit_json(stdout, &out)?;
        if self.show {
            let id = out.reconciliation_id.as_deref().ok_or_else(|| {
                Error::Request("the gateway's answer names no reconciliation report".into())
            })?;
            let reply = session.get(&format!("/v1/reconciliations/{id}"))?;
            emit(stdout, &reply.body)?;
        }
        Ok(())
    }
}

/// What a submitting command prints.
#[derive(Debug, Serialize)]
struct Submitted {
    /// The envelope kind.
    kind: &'static str,
    /// The envelope's `jti`: for an offer, what accept and reject name.
    jti: String,
    /// The asset, for the asset kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    /// The receipt, as the gateway returned it.
    receipt: Receipt,
    /// For an inventory report, its reconciliation report's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    reconciliation_id: Option<String>,
}

/// Signs `body` as an envelope of `kind` to `aud`, submits it and says
/// what was made of it.
fn submit(
    session: &mut Session<'_>,
    aud: &AgencyId,
    kind: Kind,
    body: Map<String, Value>,
    jti: Option<String>,
    tag: Option<String>,
) -> Result<Submitted, Error> {
    let (jti, mut created) = session.submit(aud, kind, body, jti)?;
    let reconciliation_id = match created.remove("reconciliation_id") {
        None => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err(Error::Request(
                "the gateway's reconciliation_id is not a string".into(),
            ));
        }
    };
    let receipt: Receipt = serde_json::from_value(Value::Object(created))
        .map_err(|e| Error::Request(format!("the gateway's answer is not a receipt: {e}")))?;
    Ok(Submitted {
        kind: kind.as_str(),
        jti,
        tag,
        receipt,
        reconciliation_id,
    })
}

/// The agency holding `tag`, as the gateway shows it to this agency.
fn holder(session: &mut Session<'_>, tag: &str) -> Result<AgencyId, Error> {
    check_tag(tag)?;
    let reply = session.get(&format!("/v1/assets/{tag}")).map_err(|e| {
        Error::Request(format!(
            "cannot find who offered asset {tag} (give --from): {e}"
        ))
    })?;
    let view: Value = parse(&reply, "asset")?;
    view["holder"]["agency"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Error::Request("the gateway's asset names no holder agency".into()))
}

/// `body` as a JSON object, after the field checks the gateway runs on it.
fn checked<T: Serialize + AssetBody>(kind: Kind, body: &T) -> Result<Map<String, Value>, Error> {
    let refused = |m: String| {
        Error::Request(format!(
            "the body of {} is not valid: {m}; nothing was sent",
            kind.as_str()
        ))
    };
    let map = match serde_json::to_value(body) {
        Ok(Value::Object(map)) => map,
        _ => return Err(refused("it is not a JSON object".into())),
    };
    T::parse(&map).map_err(|e| refused(e.to_string()))?;
    Ok(map)
}

/// Refuses a tag no asset can have; it also goes into a URL path.
fn check_tag(tag: &str) -> Result<(), Error> {
    xgate_server::assets::model::check_tag(tag, "a tag").map_err(|e| Error::Request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct List {
        #[command(flatten)]
        args: ListArgs,
    }

    fn list(extra: &[&str]) -> ListArgs {
        let mut argv = vec![
            "list",
            "--pki",
            "p",
            "--as",
            "treasury",
            "--gateway",
            "https://h:1",
        ];
        argv.extend_from_slice(extra);
        List::try_parse_from(argv).map(|l| l.args).expect("parses")
    }

    #[test]
    fn list_query_values_are_percent_encoded() {
        let args = list(&[
            "--location",
            "HQ 3/B&C",
            "--person",
            "p=1",
            "--status",
            "missing",
            "--limit",
            "5",
        ]);
        assert_eq!(
            args.path(Some("T+1")),
            "/v1/assets?person=p%3D1&location=HQ+3%2FB%26C&status=missing&after=T%2B1&limit=5"
        );
        assert_eq!(list(&[]).path(None), "/v1/assets");
    }

    #[test]
    fn tags_outside_the_alphabet_are_refused_locally() {
        assert!(check_tag("LAP-001:a_b.c").is_ok());
        for bad in [
            "",
            "a/b",
            "a b",
            "../x",
            &"x".repeat(xgate_server::assets::model::MAX_TAG + 1),
        ] {
            assert!(check_tag(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bodies_are_checked_with_the_gateways_field_checks() {
        let offer = Offer {
            tag: "LAP-1".into(),
            to: Holder {
                agency: "gsa".parse().expect("id"),
                person: String::new(),
            },
            reason: "loan".into(),
        };
        let msg = checked(Kind::AssetTransferOffer, &offer)
            .expect_err("empty person")
            .to_string();
        assert!(msg.contains("to.person"), "{msg}");
        assert!(msg.contains("nothing was sent"), "{msg}");
    }
}

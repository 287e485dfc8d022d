//! The contracts' steps (docs/contracts.md): the demo's policy
//! ([`crate::cli::demo::policy`]) adds two contracts to the default rules,
//! and the story shows each acting, at treasury's gateway.
//!
//! - An auto-accept between two offices of one agency: treasury offers a
//!   laptop kept at headquarters to another treasury person, and
//!   `treasury-offices-auto-accept` accepts it on the receiving office's
//!   behalf; the act is the log entry right after the offer, in the same
//!   commit, and `xgate contracts explain` (the same request and lines)
//!   tells why it fired and why the other contract did not.
//! - The two-person rule: treasury registers a hardware security module
//!   and offers it to another treasury person; `hsm-two-person-rule` holds
//!   the offer (`awaiting_approval`, held by the act's log index), so an
//!   answer is refused (409 `awaiting_approval`), and so is an approval by
//!   the person who offered it (403 `same_person`); a second person of
//!   treasury approves it (`contract.approve`, as `xgate asset approve`
//!   sends it), and the offer is accepted.
//!
//! Everything stays at treasury's gateway, so the story is the same on a
//! single gateway and across a federation. The refused envelopes are not
//! logged: the approval's entry follows the act that held the offer.

use serde_json::Value;

use super::cast::{Story, agency};
use crate::cli::contracts::explanation;
use crate::cli::demo::policy::{AUTO_ACCEPT, TWO_PERSON};
use crate::cli::demo::summary::Acted;
use crate::cli::error::Error;
use xgate_server::acts::explain::Explained;
use xgate_server::assets::model::{Answer, Approval, Holder, Offer, Register};
use xgate_server::kind::Kind;

/// The laptop handed between treasury's offices, who holds it, and who
/// receives it.
const HANDED: (&str, &str, &str) = ("LAP-003", "trs-emp-0103", "trs-emp-0201");
/// Where the laptop is kept (a location the auto-accept names).
const HQ: &str = "TRE-HQ-1";
/// The hardware security module: tag, description, holder and location.
const HSM: (&str, &str, &str, &str) = ("HSM-001", "Luna Network HSM 7", "trs-emp-0106", "TRE-DC-1");
/// Who is offered the module, and where it goes.
const HSM_TO: (&str, &str) = ("trs-emp-0202", "TRE-DC-2");
/// The second person of treasury, who approves the held offer.
const SECOND: &str = "trs-emp-0900";
/// The module's offer's `jti`.
const HSM_OFFER: &str = "demo-offer-HSM-001";

/// Tells the contracts' steps.
///
/// # Errors
/// Any step that does not go as told.
pub(super) fn tell(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    story.in_force()?;
    story.auto_accept()?;
    let hold = story.two_person()?;
    story.approve(hold)?;
    story.accept_approved()
}

impl Story<'_, '_, '_> {
    /// The contracts treasury's gateway has in force, as `xgate contracts
    /// list` reads them.
    fn in_force(&mut self) -> Result<(), Error> {
        let at = match self.federation.is_federated() {
            true => format!(
                "every gateway has them in force, {} among them",
                self.site("treasury").name()
            ),
            false => "the gateway has them in force".to_owned(),
        };
        self.out.step(
            "contracts",
            &format!(
                "the demo's policy adds two contracts to the default rules; {at} \
                 (GET /v1/contracts, as xgate contracts list shows them):"
            ),
        )?;
        let answer = self.get("treasury", "/v1/contracts")?;
        let contracts = answer["contracts"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = contracts
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default())
            .collect();
        if names != [AUTO_ACCEPT, TWO_PERSON] {
            return Err(Error::Request(format!(
                "the gateway has the contracts {names:?} in force, not the demo's"
            )));
        }
        for c in &contracts {
            let text = |field: &str| c[field].as_str().unwrap_or("?").to_owned();
            self.out.more(&format!(
                "  {:<29} on {}, do {}",
                text("name"),
                text("on"),
                text("do")
            ))?;
            self.out.more(&format!("    when {}", text("when")))?;
        }
        self.out.more(
            "each act a contract takes is logged as a contract.act entry right after the entry \
             that triggered it, in the same commit",
        )
    }

    /// An offer between treasury's offices, accepted by a contract.
    fn auto_accept(&mut self) -> Result<(), Error> {
        let (tag, from, to) = HANDED;
        self.out.step(
            "auto-accept",
            &format!(
                "treasury's {from} hands {tag} to {to} of another treasury office: an offer \
                 from treasury to treasury, of a laptop kept at {HQ}"
            ),
        )?;
        let offer = Offer {
            tag: tag.into(),
            to: Holder {
                agency: agency("treasury"),
                person: to.into(),
            },
            reason: "handover between offices".into(),
        };
        let jti = format!("demo-offer-{tag}");
        let sent = self.submit(
            "treasury",
            "treasury",
            Kind::AssetTransferOffer,
            &offer,
            &jti,
            tag,
        )?;
        let at = sent.receipt.log_index;
        let explained = self.explain(at)?;
        let act = self.act_of(&explained, "accept_offer", AUTO_ACCEPT)?;
        self.out.more(&format!(
            "offer {jti}: {}; in the same commit, {}: the act accept_offer of {AUTO_ACCEPT}, \
             on treasury's behalf: done",
            self.logged(&sent),
            self.treasury_entry(act)
        ))?;
        let view = self.asset(tag)?;
        if view["holder"]["person"] != to {
            return Err(Error::Request(format!(
                "{tag} is not held by {to} after the contract accepted it"
            )));
        }
        self.out.more(&format!(
            "{} (was {from}); custody chain{}: {}",
            held(&view),
            self.at_treasury(),
            self.chain(&view)?
        ))?;
        self.out.more(&format!(
            "why, as xgate contracts explain {at} tells it (GET /v1/contracts/explain/{at}{}):",
            self.at_treasury()
        ))?;
        for line in explanation(&explained) {
            self.out.more(&format!("  {line}"))?;
        }
        Ok(())
    }

    /// A hardware security module registered and offered; the two-person
    /// rule holds the offer, and nobody can answer or approve it alone.
    /// Returns the index of the act that holds it.
    fn two_person(&mut self) -> Result<u64, Error> {
        let (tag, description, holder, location) = HSM;
        let (to, _) = HSM_TO;
        self.out.step(
            "two-person",
            &format!(
                "treasury registers {tag}, a hardware security module (category hsm) held by \
                 {holder} at {location}, and offers it to {to} of treasury (a move to the \
                 backup data center)"
            ),
        )?;
        let register = Register {
            tag: tag.into(),
            serial: format!("SN-{tag}"),
            category: "hsm".into(),
            description: description.into(),
            holder: Holder {
                agency: agency("treasury"),
                person: holder.into(),
            },
            location: location.into(),
        };
        let registered = self.submit(
            "treasury",
            "treasury",
            Kind::AssetRegister,
            &register,
            &format!("demo-register-{tag}"),
            tag,
        )?;
        let offer = Offer {
            tag: tag.into(),
            to: Holder {
                agency: agency("treasury"),
                person: to.into(),
            },
            reason: "move to the backup data center".into(),
        };
        let sent = self.submit(
            "treasury",
            "treasury",
            Kind::AssetTransferOffer,
            &offer,
            HSM_OFFER,
            tag,
        )?;
        let explained = self.explain(sent.receipt.log_index)?;
        let act = self.act_of(&explained, "require_second_approval", TWO_PERSON)?;
        self.out.more(&format!(
            "{tag}: {}; offer {HSM_OFFER}: {}; in the same commit, {}: the act \
             require_second_approval of {TWO_PERSON}: done",
            self.logged(&registered),
            self.logged(&sent),
            self.treasury_entry(act)
        ))?;
        let view = self.asset(tag)?;
        if view["status"] != "awaiting_approval" || view["offer"]["hold"]["act"] != act {
            return Err(Error::Request(format!(
                "{tag}'s offer is not held by act {act}"
            )));
        }
        self.out.more(&format!(
            "{tag} shows status awaiting_approval, its offer held by act {act} (the act's log \
             index, which an approval names)"
        ))?;
        let answer = Answer {
            tag: tag.into(),
            offer: HSM_OFFER.into(),
            location: Some(HSM_TO.1.into()),
        };
        let early = format!("demo-accept-{tag}-early");
        let (status, code) = self.refused(
            "treasury",
            "treasury",
            Kind::AssetTransferAccept,
            &answer,
            &early,
        )?;
        expect_refusal(status, &code, 409, "awaiting_approval")?;
        self.out.more(&format!(
            "treasury accepts it for {to} at once: refused, {status} {code}"
        ))?;
        let alone = Approval {
            tag: tag.into(),
            act,
            approver: holder.into(),
        };
        let (status, code) = self.refused(
            "treasury",
            "treasury",
            Kind::ContractApprove,
            &alone,
            &format!("demo-approve-{tag}-alone"),
        )?;
        expect_refusal(status, &code, 403, "same_person")?;
        self.out.more(&format!(
            "{holder}, who offered it, approves it: refused, {status} {code}; neither refusal \
             is logged"
        ))?;
        Ok(act)
    }

    /// A second person of treasury approves the offer held by `act`.
    fn approve(&mut self, act: u64) -> Result<(), Error> {
        let tag = HSM.0;
        self.out.step(
            "approve",
            &format!(
                "a second person of treasury, {SECOND}, approves the held offer: \
                 contract.approve naming act {act}, as xgate asset approve --tag {tag} --act \
                 {act} --approver {SECOND} sends it"
            ),
        )?;
        let approval = Approval {
            tag: tag.into(),
            act,
            approver: SECOND.into(),
        };
        let sent = self.submit(
            "treasury",
            "treasury",
            Kind::ContractApprove,
            &approval,
            &format!("demo-approve-{tag}"),
            tag,
        )?;
        // The refused envelopes took no place in the log.
        if sent.receipt.log_index != act + 1 {
            return Err(Error::Request(format!(
                "the approval is entry {}, not the one after act {act}",
                sent.receipt.log_index
            )));
        }
        let view = self.asset(tag)?;
        if view["status"] != "offered" {
            return Err(Error::Request(format!(
                "{tag} is not offered once approved"
            )));
        }
        self.out.more(&format!(
            "{}: {tag} shows status offered; the offer may now be answered",
            self.logged(&sent)
        ))
    }

    /// The approved offer accepted.
    fn accept_approved(&mut self) -> Result<(), Error> {
        let tag = HSM.0;
        let (to, location) = HSM_TO;
        self.out.step(
            "accept",
            &format!("treasury accepts {tag} for {to} at {location}"),
        )?;
        let answer = Answer {
            tag: tag.into(),
            offer: HSM_OFFER.into(),
            location: Some(location.into()),
        };
        let sent = self.submit(
            "treasury",
            "treasury",
            Kind::AssetTransferAccept,
            &answer,
            &format!("demo-accept-{tag}"),
            tag,
        )?;
        let view = self.asset(tag)?;
        if view["holder"]["person"] != to {
            return Err(Error::Request(format!("{tag} is not held by {to}")));
        }
        self.out.more(&format!(
            "{}: {}; custody chain{}: {}",
            self.logged(&sent),
            held(&view),
            self.at_treasury(),
            self.chain(&view)?
        ))
    }

    /// `GET /v1/contracts/explain/{index}` at treasury's gateway.
    fn explain(&mut self, index: u64) -> Result<Explained, Error> {
        let answer = self.get("treasury", &format!("/v1/contracts/explain/{index}"))?;
        serde_json::from_value(answer).map_err(|_| {
            Error::Request(format!(
                "the explanation of entry {index} is not the JSON expected"
            ))
        })
    }

    /// The index of the one act `explained` lists, which must be `act` by
    /// `contract` on the entry itself, done; recorded for the summary.
    fn act_of(&mut self, explained: &Explained, act: &str, contract: &str) -> Result<u64, Error> {
        let found = match explained.acts.as_slice() {
            [one]
                if one.act.act == act
                    && one.act.contract == contract
                    && one.act.outcome == "done"
                    && one.act.trigger == explained.entry =>
            {
                one.index
            }
            _ => {
                return Err(Error::Request(format!(
                    "entry {} was not followed by the one act {act} of {contract} expected",
                    explained.entry
                )));
            }
        };
        let entry = self.treasury_entry(found);
        self.tally.acts.push(Acted {
            entry,
            act: act.to_owned(),
            contract: contract.to_owned(),
        });
        Ok(found)
    }

    /// `GET /v1/assets/{tag}` as treasury.
    fn asset(&mut self, tag: &str) -> Result<Value, Error> {
        self.get("treasury", &format!("/v1/assets/{tag}"))
    }

    /// `entry N`, or in a federation `GATEWAY entry N`: entry `index` of
    /// treasury's gateway's log.
    fn treasury_entry(&self, index: u64) -> String {
        format!("{}entry {index}", self.prefix(self.site("treasury")))
    }

    /// ` at GATEWAY` for treasury's gateway in a federation, nothing on a
    /// single gateway.
    fn at_treasury(&self) -> String {
        match self.federation.is_federated() {
            true => format!(" at {}", self.site("treasury").name()),
            false => String::new(),
        }
    }
}

/// `TAG is now held by PERSON of AGENCY at LOCATION`, from an asset's
/// view.
fn held(view: &Value) -> String {
    format!(
        "{} is now held by {} of {} at {}",
        view["tag"].as_str().unwrap_or("?"),
        view["holder"]["person"].as_str().unwrap_or("?"),
        view["holder"]["agency"].as_str().unwrap_or("?"),
        view["location"].as_str().unwrap_or("?"),
    )
}

/// Checks that a refusal is `want_status` `want_code`.
fn expect_refusal(status: u16, code: &str, want_status: u16, want_code: &str) -> Result<(), Error> {
    match status == want_status && code == want_code {
        true => Ok(()),
        false => Err(Error::Request(format!(
            "the gateway refused with {status} {code}, not {want_status} {want_code}"
        ))),
    }
}

//! What a contract may do: a fixed, safe set of acts, each on the
//! triggers it makes sense on, with the parameters it takes.
//!
//! ```text
//! accept_offer              accept an open offer on the receiving agency's behalf
//! reject_offer              reject it on the receiving agency's behalf
//! require_second_approval   hold the offer until a second person of the
//!                           holder's agency approves it (contract.approve)
//! open_discrepancy          open a discrepancy on the asset (type "flagged")
//! close_discrepancy         resolve the discrepancy that triggered it
//! set_deadline              deadline = NAME, after_hours = H: a deadline:NAME
//!                           trigger H hours after the entry's time, fired
//!                           by the first clock.tick entry at or after it
//!                           (H = 0: the next tick)
//! notify                    to = AGENCY | "sender" | "recipient" | "holder":
//!                           a notice in that agency's inbox
//! escalate                  a notice in every auditor's inbox
//! ```

use std::fmt;

use super::trigger::Trigger;
use crate::kind::Kind;
use crate::registry::{AgencyId, Registry};

/// The longest a deadline may be set ahead: a year.
pub const MAX_AFTER_HOURS: u32 = 24 * 366;

/// Whom a notice goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// A named agency of the registry.
    Agency(AgencyId),
    /// The triggering entry's sender.
    Sender,
    /// The triggering entry's recipient.
    Recipient,
    /// The asset's holder (triggers that bind an asset).
    Holder,
}

/// An act a contract may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Accept the open offer on the receiving agency's behalf.
    AcceptOffer,
    /// Reject it on the receiving agency's behalf.
    RejectOffer,
    /// Hold the triggering envelope's effect until a second approval.
    RequireSecondApproval,
    /// Open a discrepancy on the asset.
    OpenDiscrepancy,
    /// Resolve the discrepancy that triggered it.
    CloseDiscrepancy,
    /// Set a deadline `hours` after the entry's time.
    SetDeadline {
        /// The deadline's name (`deadline:<name>` fires).
        name: String,
        /// Hours after the triggering entry's time.
        hours: u32,
    },
    /// A notice in an agency's inbox.
    Notify(Recipient),
    /// A notice in every auditor's inbox.
    Escalate,
}

/// The parameters of a contract's `do`, as the file gives them.
#[derive(Clone, Debug, Default)]
pub struct Params<'a> {
    /// `to`.
    pub to: Option<&'a str>,
    /// `deadline`.
    pub deadline: Option<&'a str>,
    /// `after_hours`.
    pub after_hours: Option<u32>,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Not an action.
    #[error(
        "unknown action {0:?}: use accept_offer, reject_offer, require_second_approval, \
         open_discrepancy, close_discrepancy, set_deadline, notify or escalate"
    )]
    Unknown(String),
    /// Not on this trigger.
    #[error("{action} cannot act on {trigger} (it acts on {on})")]
    Trigger {
        /// The action.
        action: &'static str,
        /// The trigger.
        trigger: String,
        /// The triggers it acts on.
        on: &'static str,
    },
    /// A parameter missing, extra or wrong.
    #[error("{0}")]
    Param(String),
}

impl Action {
    /// The action `name` with `params`, on `trigger`, against `registry`.
    ///
    /// # Errors
    /// [`ActionError`]: an unknown action, one that cannot act on this
    /// trigger, or a parameter missing, extra or wrong.
    pub fn parse(
        name: &str,
        params: &Params<'_>,
        trigger: &Trigger,
        registry: &Registry,
    ) -> Result<Action, ActionError> {
        let action = match name {
            "accept_offer" => Action::AcceptOffer,
            "reject_offer" => Action::RejectOffer,
            "require_second_approval" => Action::RequireSecondApproval,
            "open_discrepancy" => Action::OpenDiscrepancy,
            "close_discrepancy" => Action::CloseDiscrepancy,
            "set_deadline" => {
                let name = params.deadline.ok_or_else(|| {
                    ActionError::Param("set_deadline needs deadline = NAME".into())
                })?;
                if !super::schema::is_name(name) {
                    return Err(ActionError::Param(format!(
                        "deadline {name:?} is not a name (a-z, 0-9 and -, at most 64)"
                    )));
                }
                let hours = params.after_hours.ok_or_else(|| {
                    ActionError::Param("set_deadline needs after_hours = H".into())
                })?;
                // 0: due at once, fired by the next tick (in its own entry).
                if hours > MAX_AFTER_HOURS {
                    return Err(ActionError::Param(format!(
                        "after_hours must be 0 to {MAX_AFTER_HOURS}, not {hours}"
                    )));
                }
                Action::SetDeadline {
                    name: name.to_owned(),
                    hours,
                }
            }
            "notify" => {
                let to = params.to.ok_or_else(|| {
                    ActionError::Param(
                        "notify needs to = AGENCY, \"sender\", \"recipient\" or \"holder\"".into(),
                    )
                })?;
                Action::Notify(match to {
                    "sender" => Recipient::Sender,
                    "recipient" => Recipient::Recipient,
                    "holder" => Recipient::Holder,
                    id => {
                        let agency: AgencyId = id.parse().map_err(|_| {
                            ActionError::Param(format!("to = {id:?} is not an agency id"))
                        })?;
                        if registry.get(&agency).is_none() {
                            return Err(ActionError::Param(format!(
                                "to = {id:?}: the registry lists no such agency"
                            )));
                        }
                        Recipient::Agency(agency)
                    }
                })
            }
            "escalate" => Action::Escalate,
            other => return Err(ActionError::Unknown(other.chars().take(64).collect())),
        };
        action.check_params(params)?;
        action.check_trigger(trigger)?;
        Ok(action)
    }

    /// The action's name, as in the file and in the log.
    pub fn name(&self) -> &'static str {
        match self {
            Action::AcceptOffer => "accept_offer",
            Action::RejectOffer => "reject_offer",
            Action::RequireSecondApproval => "require_second_approval",
            Action::OpenDiscrepancy => "open_discrepancy",
            Action::CloseDiscrepancy => "close_discrepancy",
            Action::SetDeadline { .. } => "set_deadline",
            Action::Notify(_) => "notify",
            Action::Escalate => "escalate",
        }
    }

    /// Refuses a parameter this action does not take.
    fn check_params(&self, params: &Params<'_>) -> Result<(), ActionError> {
        let takes: &[&str] = match self {
            Action::SetDeadline { .. } => &["deadline", "after_hours"],
            Action::Notify(_) => &["to"],
            _ => &[],
        };
        let given = [
            ("to", params.to.is_some()),
            ("deadline", params.deadline.is_some()),
            ("after_hours", params.after_hours.is_some()),
        ];
        match given.iter().find(|(p, set)| *set && !takes.contains(p)) {
            Some((p, _)) => Err(ActionError::Param(format!("{} takes no {p}", self.name()))),
            None => Ok(()),
        }
    }

    /// Refuses a trigger this action cannot act on.
    fn check_trigger(&self, trigger: &Trigger) -> Result<(), ActionError> {
        let offer = matches!(
            trigger,
            Trigger::OfferOpened | Trigger::Envelope(Kind::AssetTransferOffer)
        );
        let asset = offer
            || matches!(
                trigger,
                Trigger::Envelope(
                    Kind::AssetRegister
                        | Kind::AssetTransferAccept
                        | Kind::AssetTransferReject
                        | Kind::ContractApprove
                        | Kind::ContractDeny
                )
            );
        let (ok, on) = match self {
            Action::AcceptOffer | Action::RejectOffer => {
                (offer, "envelope:asset.transfer.offer and offer.opened")
            }
            // The offer is held before anyone can answer it; an
            // acceptance, once logged, has moved custody already.
            Action::RequireSecondApproval => {
                (offer, "envelope:asset.transfer.offer and offer.opened")
            }
            Action::OpenDiscrepancy => (asset, "the triggers that bind an asset"),
            Action::CloseDiscrepancy => {
                (*trigger == Trigger::DiscrepancyOpened, "discrepancy.opened")
            }
            Action::Notify(Recipient::Holder) => (asset, "the triggers that bind an asset"),
            Action::SetDeadline { .. } | Action::Notify(_) | Action::Escalate => {
                (true, "every trigger")
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ActionError::Trigger {
                action: self.name(),
                trigger: trigger.to_string(),
                on,
            })
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SetDeadline { name, hours } => {
                write!(f, "set_deadline {name} after {hours} h")
            }
            Action::Notify(Recipient::Agency(a)) => write!(f, "notify {a}"),
            Action::Notify(Recipient::Sender) => f.write_str("notify the sender"),
            Action::Notify(Recipient::Recipient) => f.write_str("notify the recipient"),
            Action::Notify(Recipient::Holder) => f.write_str("notify the holder"),
            other => f.write_str(other.name()),
        }
    }
}

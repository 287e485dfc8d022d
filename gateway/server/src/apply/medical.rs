//! The medical and review operations: an accepted medical envelope applied
//! to the state, with the rules of break-the-glass access, one step of the
//! fold [`crate::apply::apply`] runs for the live commit and for `xgate
//! audit replay` alike.
//!
//! - `medical.request`: opens a case. When the policy broke the glass the
//!   request carries its grant (expiry and uses, as logged) and joins the
//!   holder's review queue.
//! - `medical.approve`: the holder grants a case without a live grant.
//! - `medical.response`: accepted only from the agency asked, under a live
//!   grant (not expired, not used up); it uses the grant once.
//! - `review.decision`: the holder's reviewer closes a break-the-glass
//!   case, once.
//!
//! The committer runs [`apply`] in log order with the entry's time and
//! grant terms, and a replay runs the same function with the same facts,
//! so a grant's expiry is decided the same way both times.

use serde_json::{Map, Value};
use xgate_ledger::{StoreError, WriteBatch};

use super::body::BodyError;
use super::facts::Facts;
use super::state::{EncodeError, StateError, StateRead};
use crate::kind::Kind;
use crate::medical::model::{Approve, ReplyKey, Request, Response, Review};
use crate::medical::state::{self, Answered, Basis, Case, Grant, Reviewed};

/// A medical envelope's body, parsed for its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `medical.request`.
    Request(Request),
    /// `medical.approve`.
    Approve(Approve),
    /// `medical.response`.
    Response(Response),
    /// `review.decision`.
    Review(Review),
}

/// Why a medical envelope is refused. Messages name agencies and `jti`s,
/// never a subject or a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// 409 `request_exists`: a case is already named by this `jti`, the
    /// holder's (another request to it) or the requester's (its request to
    /// any holder). The message says which, naming only the two parties.
    #[error("{0}")]
    RequestExists(String),
    /// 404 `not_found`: no such request for this holder.
    #[error("{0} was sent no medical request with this jti")]
    UnknownRequest(String),
    /// 403 `no_grant`: the sender holds no grant to answer.
    #[error("{0}")]
    NoGrant(String),
    /// 403 `grant_expired`.
    #[error("the grant for this request expired; nothing was delivered")]
    GrantExpired,
    /// 409 `grant_used`.
    #[error("the grant for this request is used up (single-use unless approved for more)")]
    GrantUsed,
    /// 409 `grant_exists`: an approval while a grant is live.
    #[error("this request already has a live grant")]
    GrantExists,
    /// 409 `not_reviewable`: the request did not break the glass.
    #[error("this request did not break the glass; there is nothing to review")]
    NotReviewable,
    /// 409 `already_reviewed`.
    #[error("this break-the-glass access was already reviewed")]
    AlreadyReviewed,
    /// 422 `wrong_audience`.
    #[error("{0}")]
    WrongAudience(String),
    /// 400 `malformed`: the payload is not encrypted to the reply key.
    #[error("payload is not encrypted to the request's reply key (its kid differs)")]
    WrongKey,
}

/// Why a medical envelope could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MedicalError {
    /// A rule refuses it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The state could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl From<StateError> for MedicalError {
    fn from(e: StateError) -> MedicalError {
        match e {
            StateError::Store(e) => MedicalError::Store(e),
            StateError::Encode(e) => MedicalError::Encode(e),
        }
    }
}

impl Op {
    /// Parses `body` as the body of `kind`: `Ok(None)` if `kind` is not a
    /// medical kind.
    ///
    /// # Errors
    /// The field at fault.
    pub fn parse(kind: Kind, body: &Map<String, Value>) -> Result<Option<Op>, BodyError> {
        let op = match kind {
            Kind::MedicalRequest => Request::parse(body).map(Op::Request),
            Kind::MedicalApprove => Approve::parse(body).map(Op::Approve),
            Kind::MedicalResponse => Response::parse(body).map(Op::Response),
            Kind::ReviewDecision => Review::parse(body).map(Op::Review),
            _ => return Ok(None),
        };
        op.map(Some).map_err(BodyError::invalid)
    }

    /// The request this envelope is about, for the log entry (a request is
    /// named by its own `jti`, already in the entry).
    pub fn request(&self) -> Option<&str> {
        match self {
            Op::Request(_) => None,
            Op::Approve(a) => Some(&a.request),
            Op::Response(r) => Some(&r.request),
            Op::Review(r) => Some(&r.request),
        }
    }

    /// The person it is about, whose salted hash goes into the log entry:
    /// a request's subject, unless the request is sealed (then the gateway
    /// does not know it).
    pub fn subject(&self) -> Option<&str> {
        match self {
            Op::Request(r) => r.subject.as_deref(),
            _ => None,
        }
    }
}

/// Applies `op`, the body of the envelope `facts` describes, to `state`,
/// adding its writes to `batch`. The grant the entry records, if any
/// ([`Facts::grant`]), is a break-the-glass request's or an approval's.
///
/// # Errors
/// The rule broken (then `batch` may hold partial writes and must be
/// dropped), or a storage failure.
pub fn apply(
    op: &Op,
    facts: &Facts<'_>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<(), MedicalError> {
    let terms = facts.grant();
    let grant = |basis| {
        terms.map(|t| Grant {
            basis,
            log_index: facts.log_index,
            time: facts.time,
            expires: t.expires,
            uses: t.uses,
            used: 0,
        })
    };
    match op {
        Op::Request(r) => {
            if facts.recipient == facts.sender {
                return Err(wrong_audience("a medical request goes to the holding agency").into());
            }
            // A request's jti names its case twice, by requester (the case
            // itself) and by holder (the index); both names must be new, or
            // the case would be overwritten and the other holder's index
            // and review queue would point at a case that is not theirs. The
            // replay window does not cover this: it ends with `exp`, a case
            // does not.
            if state
                .get(&state::case_key(facts.sender, facts.jti))?
                .is_some()
            {
                return Err(Refusal::RequestExists(format!(
                    "{} already made a medical request with this jti (a request's jti names \
                     its case for good; use a new one)",
                    facts.sender
                ))
                .into());
            }
            let holder_key = state::holder_key(facts.recipient, facts.jti);
            if state.get(&holder_key)?.is_some() {
                return Err(Refusal::RequestExists(format!(
                    "{} was already sent a medical request with this jti",
                    facts.recipient
                ))
                .into());
            }
            let case = Case {
                request: facts.jti.to_owned(),
                requester: facts.sender.clone(),
                holder: facts.recipient.clone(),
                log_index: facts.log_index,
                time: facts.time,
                envelope: facts.envelope.to_owned(),
                purpose: r.purpose,
                role: r.responder.role.clone(),
                sections: r.sections.clone(),
                reply_key: r.reply_key.clone(),
                grant: grant(Basis::BreakGlass),
                break_glass: terms.is_some(),
                responses: Vec::new(),
                review: None,
            };
            batch.put(holder_key, facts.sender.as_str().as_bytes().to_vec());
            if case.break_glass {
                batch.put(
                    state::queue_key(facts.recipient, facts.log_index),
                    state::queue_value(facts.sender, facts.jti),
                );
            }
            state::put_case(batch, &case)?;
        }
        Op::Approve(a) => {
            let mut case = holders_case(state, facts, &a.request)?;
            if &case.requester != facts.recipient {
                return Err(
                    wrong_audience("a medical.approve goes to the requesting agency").into(),
                );
            }
            if case.grant.as_ref().is_some_and(|g| g.is_live(facts.time)) {
                return Err(Refusal::GrantExists.into());
            }
            case.grant = grant(Basis::Approved);
            state::put_case(batch, &case)?;
        }
        Op::Response(r) => {
            let no_grant = || {
                Refusal::NoGrant(format!(
                    "{} holds no grant to answer this request of {}",
                    facts.sender, facts.recipient
                ))
            };
            let mut case = state::case(state, facts.recipient, &r.request)?
                .filter(|c| &c.holder == facts.sender)
                .ok_or_else(no_grant)?;
            let grant = case.grant.as_mut().ok_or_else(|| {
                Refusal::NoGrant("this request has no grant: the holder has not approved it".into())
            })?;
            if facts.time >= grant.expires {
                return Err(Refusal::GrantExpired.into());
            }
            if grant.used >= grant.uses {
                return Err(Refusal::GrantUsed.into());
            }
            if !case.reply_key_matches(r.kid.as_deref()) {
                return Err(Refusal::WrongKey.into());
            }
            if let Some(g) = case.grant.as_mut() {
                g.used += 1;
            }
            case.responses.push(Answered {
                log_index: facts.log_index,
                envelope: facts.envelope.to_owned(),
                time: facts.time,
            });
            state::put_case(batch, &case)?;
        }
        Op::Review(r) => {
            if facts.recipient != facts.sender {
                return Err(wrong_audience(
                    "a review.decision is addressed to the reviewer's own agency",
                )
                .into());
            }
            let mut case = holders_case(state, facts, &r.request)?;
            if !case.break_glass {
                return Err(Refusal::NotReviewable.into());
            }
            if case.review.is_some() {
                return Err(Refusal::AlreadyReviewed.into());
            }
            case.review = Some(Reviewed {
                outcome: r.outcome,
                log_index: facts.log_index,
                time: facts.time,
            });
            batch.delete(state::queue_key(&case.holder, case.log_index));
            state::put_case(batch, &case)?;
        }
    }
    Ok(())
}

/// The case the sender, as holder, was asked with `jti`.
fn holders_case(
    state: &impl StateRead,
    facts: &Facts<'_>,
    jti: &str,
) -> Result<Case, MedicalError> {
    state::case_of_holder(state, facts.sender, jti)?
        .ok_or_else(|| Refusal::UnknownRequest(facts.sender.to_string()).into())
}

fn wrong_audience(message: &str) -> Refusal {
    Refusal::WrongAudience(message.to_owned())
}

impl Case {
    /// Whether a payload whose header names `kid` may be for this case's
    /// reply key: a key with a `kid` must be named by it.
    fn reply_key_matches(&self, kid: Option<&str>) -> bool {
        let wanted = match &self.reply_key {
            ReplyKey::Kid(k) => Some(k.as_str()),
            ReplyKey::Jwk(jwk) => jwk.get("kid").and_then(Value::as_str),
        };
        wanted.is_none_or(|w| kid == Some(w))
    }
}

/// A request in clear for `purpose`, for unit tests.
#[cfg(test)]
pub(crate) fn request_for_tests(purpose: crate::medical::model::Purpose) -> Op {
    Op::Request(Request {
        subject: Some("s".into()),
        purpose,
        incident: Some("i".into()),
        responder: crate::medical::model::Responder {
            name: Some("n".into()),
            role: "medical-officer".into(),
        },
        sections: vec![crate::medical::section::Section::Allergies],
        reply_key: ReplyKey::Kid("k1".into()),
        sealed: None,
    })
}

#[cfg(test)]
mod tests {
    //! The fold over an in-memory state: a grant's life (uses, expiry), who
    //! may answer, approvals and reviews, and the review queue.

    use super::request_for_tests as request;
    use super::*;
    use crate::apply::facts::Terms;
    use crate::apply::state::Memory;
    use crate::entry::Stamp;
    use crate::medical::model::{Outcome, Purpose};
    use crate::registry::AgencyId;

    struct World {
        state: Memory,
        index: u64,
    }

    fn id(a: &str) -> AgencyId {
        a.parse().expect("agency id")
    }

    fn response(request: &str, kid: &str) -> Op {
        Op::Response(Response {
            request: request.into(),
            payload: String::new(),
            kid: Some(kid.into()),
        })
    }

    fn review(request: &str) -> Op {
        Op::Review(Review {
            request: request.into(),
            outcome: Outcome::Appropriate,
            note: "n".into(),
        })
    }

    impl World {
        /// Applies `op` from `by` to `to` at `time`, as entry `jti`.
        fn send(
            &mut self,
            by: &str,
            to: &str,
            jti: &str,
            op: &Op,
            terms: Option<Terms>,
            time: i64,
        ) -> Result<(), MedicalError> {
            let (sender, recipient) = (id(by), id(to));
            let stamp = Stamp {
                time,
                expires: terms.map(|t| t.expires),
                uses: terms.map(|t| t.uses),
                sent: None,
            };
            let facts = Facts::new(&sender, &recipient, jti, "e", stamp, self.index);
            let mut batch = WriteBatch::new();
            apply(op, &facts, &self.state, &mut batch)?;
            self.state.apply(batch);
            self.index += 1;
            Ok(())
        }

        fn case(&self, requester: &str, jti: &str) -> Case {
            state::case(&self.state, &id(requester), jti)
                .expect("read")
                .expect("case")
        }

        fn queue_len(&self) -> usize {
            self.state
                .keys(&state::queue_prefix(None))
                .expect("keys")
                .len()
        }
    }

    fn refused(result: Result<(), MedicalError>) -> Refusal {
        match result {
            Err(MedicalError::Refused(r)) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    const GRANT: Option<Terms> = Some(Terms {
        expires: 200,
        uses: 1,
    });

    #[test]
    fn a_break_glass_grant_covers_its_uses_until_it_expires() {
        let mut w = World {
            state: Memory::default(),
            index: 0,
        };
        let etreat = request(Purpose::Etreat);
        w.send("state", "hhs", "q1", &etreat, GRANT, 100)
            .expect("request");
        assert_eq!(w.queue_len(), 1);
        // Only the agency asked may answer, to the key asked for.
        let other = refused(w.send("treasury", "state", "r0", &response("q1", "k1"), None, 101));
        assert!(matches!(other, Refusal::NoGrant(_)), "{other:?}");
        let key = refused(w.send("hhs", "state", "r0", &response("q1", "k2"), None, 101));
        assert_eq!(key, Refusal::WrongKey);
        w.send("hhs", "state", "r1", &response("q1", "k1"), None, 150)
            .expect("answer");
        let used = refused(w.send("hhs", "state", "r2", &response("q1", "k1"), None, 151));
        assert_eq!(used, Refusal::GrantUsed);
        let case = w.case("state", "q1");
        assert_eq!(case.grant.as_ref().map(|g| g.used), Some(1));
        assert_eq!(case.responses.len(), 1);

        // A second request, answered too late.
        w.send("state", "hhs", "q2", &etreat, GRANT, 100)
            .expect("request");
        let late = refused(w.send("hhs", "state", "r3", &response("q2", "k1"), None, 200));
        assert_eq!(late, Refusal::GrantExpired);
        // The same jti to the same holder is taken, even from another agency.
        let again = refused(w.send("gsa", "hhs", "q2", &etreat, GRANT, 201));
        assert!(matches!(again, Refusal::RequestExists(_)));
    }

    #[test]
    fn a_requester_cannot_reuse_a_request_jti_for_another_holder() {
        let mut w = World {
            state: Memory::default(),
            index: 0,
        };
        let etreat = request(Purpose::Etreat);
        w.send("state", "hhs", "q1", &etreat, GRANT, 100)
            .expect("request");
        let before = w.state.clone();
        // Long after its replay window: the case is still there, and names it.
        let again = refused(w.send("state", "gsa", "q1", &etreat, GRANT, 10_000));
        assert!(
            matches!(&again, Refusal::RequestExists(m) if m.starts_with("state already made")),
            "{again:?}"
        );
        assert_eq!(w.state, before, "nothing overwritten or re-keyed");
        assert_eq!(w.case("state", "q1").holder, id("hhs"));
        assert_eq!(w.queue_len(), 1);
    }

    #[test]
    fn approvals_grant_what_policy_did_not_and_reviews_close_the_queue() {
        let mut w = World {
            state: Memory::default(),
            index: 0,
        };
        w.send("state", "hhs", "t1", &request(Purpose::Treat), None, 100)
            .expect("request");
        assert_eq!(w.queue_len(), 0, "no glass broken, nothing to review");
        let none = refused(w.send("hhs", "state", "r1", &response("t1", "k1"), None, 101));
        assert!(matches!(none, Refusal::NoGrant(_)));
        let approve = Op::Approve(Approve {
            request: "t1".into(),
            ttl_hours: None,
            uses: Some(2),
        });
        let wrong = refused(w.send("hhs", "gsa", "a0", &approve, GRANT, 102));
        assert!(matches!(wrong, Refusal::WrongAudience(_)));
        let two = Some(Terms {
            expires: 500,
            uses: 2,
        });
        w.send("hhs", "state", "a1", &approve, two, 102)
            .expect("approve");
        let live = refused(w.send("hhs", "state", "a2", &approve, two, 103));
        assert_eq!(live, Refusal::GrantExists);
        w.send("hhs", "state", "r2", &response("t1", "k1"), None, 104)
            .expect("first");
        w.send("hhs", "state", "r3", &response("t1", "k1"), None, 105)
            .expect("second");
        assert_eq!(
            refused(w.send("hhs", "hhs", "v0", &review("t1"), None, 106)),
            Refusal::NotReviewable
        );

        w.send("state", "hhs", "e1", &request(Purpose::Etreat), GRANT, 107)
            .expect("emergency");
        assert_eq!(w.queue_len(), 1);
        let misaddressed = refused(w.send("hhs", "state", "v1", &review("e1"), None, 108));
        assert!(matches!(misaddressed, Refusal::WrongAudience(_)));
        let stranger = refused(w.send("gsa", "gsa", "v1", &review("e1"), None, 108));
        assert!(matches!(stranger, Refusal::UnknownRequest(_)));
        w.send("hhs", "hhs", "v1", &review("e1"), None, 108)
            .expect("review");
        assert_eq!(w.queue_len(), 0);
        assert_eq!(
            refused(w.send("hhs", "hhs", "v2", &review("e1"), None, 109)),
            Refusal::AlreadyReviewed
        );
    }
}

//! The API's errors: one stable code per reason, its HTTP status, the JSON
//! body every rejection carries, `{"error":{"code":"...","message":"..."}}`,
//! and the mapping of every domain error to them. The stages below `http`
//! refuse with their own error types and know nothing of codes or
//! statuses; this is the one place that does.
//!
//! Codes are a contract (docs/api.md); messages are for people and never
//! hold an envelope body or personal data.

use http::StatusCode;
use serde_json::{Map, Value};

use crate::acts::explain::ExplainError;
use crate::apply::ApplyError;
use crate::apply::asset::AssetError;
use crate::apply::medical::{MedicalError, Refusal as MedicalRefusal};
use crate::assets::custody::Refusal as CustodyRefusal;
use crate::committer::CommitError;
use crate::envelope::Rejection;
use crate::logview::ViewError;
use crate::pipeline::{Declined, Reason, Refused};
use crate::rate::RateLimited;
use crate::registry::AgencyId;
use crate::space::DiskFull;

/// Every error code the API returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// 400: not a well-formed request or envelope.
    Malformed,
    /// 400: a JWS algorithm the sender is not registered for.
    UnsupportedAlg,
    /// 400: a JWS header parameter the gateway never honours (`jku`,
    /// `jwk`, `x5u`, `x5c`, `crit`, `b64`).
    UnsupportedHeader,
    /// 401: the signature does not verify with the sender's key.
    BadSignature,
    /// 403: the TLS certificate names no registered agency.
    UnknownAgency,
    /// 403: `iss` differs from the TLS identity.
    IdentityMismatch,
    /// 422: `aud` unknown or the sender itself.
    WrongAudience,
    /// 401: past `exp`.
    Expired,
    /// 401: before `iat`.
    NotYetValid,
    /// 400: `exp - iat` too long.
    LifetimeTooLong,
    /// 409: this sender already used this `jti`.
    Replayed,
    /// 403: the policy does not allow it.
    PolicyDenied,
    /// 403: a record body or medical request in clear, to a recipient the
    /// policy says takes them sealed only (`[encryption] required_for`).
    EncryptionRequired,
    /// 422: a kind the gateway does not handle.
    UnsupportedKind,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 408: the request body did not arrive in full within
    /// `header_timeout_secs` of the request head; the connection is closed.
    BodyTimeout,
    /// 415: not `application/jose`.
    UnsupportedMediaType,
    /// 429: the agency is over its request rate limit (`Retry-After` says
    /// when to try again).
    RateLimited,
    /// 404: no such resource (or not the caller's).
    NotFound,
    /// 409: an asset with this tag is already registered.
    AssetExists,
    /// 403: the sender does not hold the asset (or was not offered it).
    NotHolder,
    /// 409: the asset already has an open transfer offer.
    OfferPending,
    /// 409: the asset has no open offer with that `jti` (never made,
    /// answered or expired).
    NoOpenOffer,
    /// 409: the open offer awaits a second approval (a contract's
    /// two-person rule).
    AwaitingApproval,
    /// 409: the asset has no open offer held by that act.
    NoHold,
    /// 403: a second approval names the person who offered the asset.
    SamePerson,
    /// 403: no live grant covers this medical response (the sender was not
    /// asked, or the request was never granted).
    NoGrant,
    /// 403: the grant for this medical request has expired.
    GrantExpired,
    /// 409: the grant for this medical request is used up.
    GrantUsed,
    /// 409: an approval for a request whose grant is still live.
    GrantExists,
    /// 409: this agency was already sent a medical request with this `jti`.
    RequestExists,
    /// 409: a review of a request that did not break the glass.
    NotReviewable,
    /// 409: the break-the-glass access was already reviewed.
    AlreadyReviewed,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 429: the agency already holds `max_connections_per_agency`
    /// connections; this one is answered with this and closed.
    TooManyConnections,
    /// 503: the log cannot make anything durable right now.
    StorageUnavailable,
    /// 503: the gateway is shutting down or over its limits.
    Unavailable,
    /// 429: the agency already has `max_streams_per_agency` event streams
    /// open.
    TooManyStreams,
    /// 503: `crl_strict` is on and the CRL is past its `nextUpdate`, so no
    /// certificate's revocation status is known.
    CrlStale,
    /// 403: the wrong gateway of a federation: an agency submitting to a
    /// gateway that does not serve it, or a forward from a gateway that
    /// does not serve the sender, to one that does not serve the
    /// recipient, or from a certificate that is not a gateway's.
    WrongGateway,
    /// 500: a bug or a corrupt store; details are in the gateway's log.
    Internal,
}

impl Code {
    /// The code as it appears in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Malformed => "malformed",
            Code::UnsupportedAlg => "unsupported_alg",
            Code::UnsupportedHeader => "unsupported_header",
            Code::BadSignature => "bad_signature",
            Code::UnknownAgency => "unknown_agency",
            Code::IdentityMismatch => "identity_mismatch",
            Code::WrongAudience => "wrong_audience",
            Code::Expired => "expired",
            Code::NotYetValid => "not_yet_valid",
            Code::LifetimeTooLong => "lifetime_too_long",
            Code::Replayed => "replayed",
            Code::PolicyDenied => "policy_denied",
            Code::EncryptionRequired => "encryption_required",
            Code::UnsupportedKind => "unsupported_kind",
            Code::PayloadTooLarge => "payload_too_large",
            Code::BodyTimeout => "body_timeout",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::RateLimited => "rate_limited",
            Code::NotFound => "not_found",
            Code::AssetExists => "asset_exists",
            Code::NotHolder => "not_holder",
            Code::OfferPending => "offer_pending",
            Code::NoOpenOffer => "no_open_offer",
            Code::AwaitingApproval => "awaiting_approval",
            Code::NoHold => "no_hold",
            Code::SamePerson => "same_person",
            Code::NoGrant => "no_grant",
            Code::GrantExpired => "grant_expired",
            Code::GrantUsed => "grant_used",
            Code::GrantExists => "grant_exists",
            Code::RequestExists => "request_exists",
            Code::NotReviewable => "not_reviewable",
            Code::AlreadyReviewed => "already_reviewed",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::TooManyConnections => "too_many_connections",
            Code::StorageUnavailable => "storage_unavailable",
            Code::Unavailable => "unavailable",
            Code::TooManyStreams => "too_many_streams",
            Code::CrlStale => "crl_stale",
            Code::WrongGateway => "wrong_gateway",
            Code::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::Malformed
            | Code::UnsupportedAlg
            | Code::UnsupportedHeader
            | Code::LifetimeTooLong => StatusCode::BAD_REQUEST,
            Code::BadSignature | Code::Expired | Code::NotYetValid => StatusCode::UNAUTHORIZED,
            Code::UnknownAgency
            | Code::IdentityMismatch
            | Code::PolicyDenied
            | Code::EncryptionRequired
            | Code::NotHolder
            | Code::NoGrant
            | Code::GrantExpired
            | Code::SamePerson
            | Code::WrongGateway => StatusCode::FORBIDDEN,
            Code::WrongAudience | Code::UnsupportedKind => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Replayed
            | Code::AssetExists
            | Code::OfferPending
            | Code::NoOpenOffer
            | Code::AwaitingApproval
            | Code::NoHold
            | Code::GrantUsed
            | Code::GrantExists
            | Code::RequestExists
            | Code::NotReviewable
            | Code::AlreadyReviewed => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::StorageUnavailable | Code::Unavailable | Code::CrlStale => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::TooManyConnections | Code::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A refused request: a code and a message for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The stable code.
    pub code: Code,
    /// What is wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The JSON body: `{"error":{"code":"...","message":"..."}}`.
    pub fn body(&self) -> String {
        // Built as a JSON value, whose text form cannot fail (unlike
        // serializing a type), so a refusal always has its body.
        let mut inner = Map::new();
        inner.insert("code".into(), Value::from(self.code.as_str()));
        inner.insert("message".into(), Value::from(self.message.as_str()));
        let mut outer = Map::new();
        outer.insert("error".into(), Value::Object(inner));
        Value::Object(outer).to_string()
    }

    /// The answer when something went wrong inside the gateway: the
    /// details go to its log, never to the caller.
    pub fn internal() -> ApiError {
        ApiError::new(Code::Internal, "internal error; see the gateway's log")
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        let code = match &r {
            Rejection::Malformed(_) => Code::Malformed,
            Rejection::UnsupportedAlg(_) => Code::UnsupportedAlg,
            Rejection::UnsupportedHeader(_) => Code::UnsupportedHeader,
            Rejection::BadSignature(_) => Code::BadSignature,
            Rejection::IdentityMismatch(_) => Code::IdentityMismatch,
            Rejection::WrongAudience(_) => Code::WrongAudience,
            Rejection::Expired(_) => Code::Expired,
            Rejection::NotYetValid(_) => Code::NotYetValid,
            Rejection::LifetimeTooLong(_) => Code::LifetimeTooLong,
            Rejection::UnsupportedKind(_) => Code::UnsupportedKind,
        };
        ApiError::new(code, r.to_string())
    }
}

impl From<CustodyRefusal> for ApiError {
    fn from(r: CustodyRefusal) -> ApiError {
        use CustodyRefusal as R;
        let code = match &r {
            R::AssetExists(_) => Code::AssetExists,
            R::UnknownAsset(_) => Code::NotFound,
            R::NotHolder(_) => Code::NotHolder,
            R::OfferPending(_) => Code::OfferPending,
            R::NoOpenOffer(_) => Code::NoOpenOffer,
            R::WrongAudience(_) => Code::WrongAudience,
            R::AwaitingApproval(_) => Code::AwaitingApproval,
            R::NoHold(_) => Code::NoHold,
            R::SamePerson(_) => Code::SamePerson,
        };
        ApiError::new(code, r.to_string())
    }
}

impl From<AssetError> for ApiError {
    fn from(e: AssetError) -> ApiError {
        match e {
            AssetError::Refused(r) => r.into(),
            AssetError::Store(e) => xgate_ledger::Error::from(e).into(),
            AssetError::Encode(e) => internal(&e),
            AssetError::OfferWithoutExpiry => internal(&e),
        }
    }
}

impl From<MedicalRefusal> for ApiError {
    fn from(r: MedicalRefusal) -> ApiError {
        use MedicalRefusal as R;
        let code = match &r {
            R::RequestExists(_) => Code::RequestExists,
            R::UnknownRequest(_) => Code::NotFound,
            R::NoGrant(_) => Code::NoGrant,
            R::GrantExpired => Code::GrantExpired,
            R::GrantUsed => Code::GrantUsed,
            R::GrantExists => Code::GrantExists,
            R::NotReviewable => Code::NotReviewable,
            R::AlreadyReviewed => Code::AlreadyReviewed,
            R::WrongAudience(_) => Code::WrongAudience,
            R::WrongKey => Code::Malformed,
        };
        ApiError::new(code, r.to_string())
    }
}

impl From<MedicalError> for ApiError {
    fn from(e: MedicalError) -> ApiError {
        match e {
            MedicalError::Refused(r) => r.into(),
            MedicalError::Store(e) => xgate_ledger::Error::from(e).into(),
            MedicalError::Encode(e) => internal(&e),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        match e {
            ApplyError::Asset(e) => e.into(),
            ApplyError::Medical(e) => e.into(),
        }
    }
}

/// A bug inside the gateway: logged with its details, answered without.
fn internal(e: &dyn std::error::Error) -> ApiError {
    tracing::error!(error = %e, "internal error");
    ApiError::internal()
}

impl From<xgate_ledger::Error> for ApiError {
    fn from(e: xgate_ledger::Error) -> ApiError {
        ledger(&e)
    }
}

/// A failure of the log: the storage is unavailable, or (anything else)
/// a bug or a corrupt store.
fn ledger(e: &xgate_ledger::Error) -> ApiError {
    match e {
        xgate_ledger::Error::Store(_)
        | xgate_ledger::Error::Io { .. }
        | xgate_ledger::Error::Journal(_)
        | xgate_ledger::Error::Tiles(_)
        | xgate_ledger::Error::Bodies(_) => ApiError::new(
            Code::StorageUnavailable,
            "the log cannot make writes durable right now; this envelope was not acknowledged \
             (resubmit it later: if it was logged after all, the resubmission is refused as replayed)",
        ),
        _ => ApiError::internal(),
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> ApiError {
        match e {
            ViewError::Request(m) => ApiError::new(Code::NotFound, m),
            ViewError::Ledger(e) => e.into(),
        }
    }
}

impl From<ExplainError> for ApiError {
    fn from(e: ExplainError) -> ApiError {
        match e {
            ExplainError::OutOfRange { .. } => ApiError::new(Code::NotFound, e.to_string()),
            ExplainError::Unexplained(_) => ApiError::new(Code::UnsupportedKind, e.to_string()),
            ExplainError::Ledger(e) => e.into(),
            ExplainError::State(e) => ledger(&xgate_ledger::Error::Store(e)),
        }
    }
}

impl From<DiskFull> for ApiError {
    fn from(_: DiskFull) -> ApiError {
        ApiError::new(
            Code::StorageUnavailable,
            "the gateway's disk is nearly full; nothing was accepted, retry later",
        )
    }
}

impl<E> From<CommitError<E>> for ApiError
where
    ApiError: From<E>,
{
    fn from(e: CommitError<E>) -> ApiError {
        match e {
            CommitError::Declined(d) => d.into(),
            CommitError::DiskFull(d) => d.into(),
            CommitError::Append(e) => ledger(&e),
            CommitError::NoCheckpoint => {
                ApiError::new(Code::Internal, "the commit signed no checkpoint")
            }
            CommitError::OtherWriter => ApiError::internal(),
            // Shutting down, or the thread died with this job queued or in
            // its batch (which may or may not have reached the store).
            CommitError::Stopped => ApiError::new(
                Code::Unavailable,
                "the gateway stopped committing (it is shutting down or restarting); this envelope \
                 was not acknowledged (resubmit it later: if it was logged after all, the \
                 resubmission is refused as replayed)",
            ),
        }
    }
}

impl From<Declined> for ApiError {
    fn from(d: Declined) -> ApiError {
        match d {
            Declined::Expired { .. } => ApiError::new(Code::Expired, d.to_string()),
            Declined::Replayed(_) => ApiError::new(Code::Replayed, d.to_string()),
            Declined::Apply(e) => e.into(),
            Declined::Inbox(e) => internal(&e),
            Declined::Outbox(e) => internal(&e),
            // Answered with the first copy's receipt, or not at all (a
            // tick), before it gets here.
            Declined::Delivered(_) | Declined::NothingDue => internal(&d),
            Declined::NotNow => ApiError::new(Code::Unavailable, d.to_string()),
            Declined::State(e) => ledger(&xgate_ledger::Error::Store(e)),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        let message = refused.to_string();
        match refused.reason {
            Reason::Envelope(r) => r.into(),
            Reason::Malformed { .. } => ApiError::new(Code::Malformed, message),
            Reason::RecordToSelf => ApiError::new(Code::WrongAudience, message),
            Reason::UnsupportedKind(_) => ApiError::new(Code::UnsupportedKind, message),
            Reason::EncryptionRequired { .. } => ApiError::new(Code::EncryptionRequired, message),
            Reason::PolicyDenied(_) | Reason::BreakGlassUnavailable => {
                ApiError::new(Code::PolicyDenied, message)
            }
            Reason::Commit(e) => e.into(),
            Reason::Entry(e) => internal(&e),
            Reason::Receipt(e) => e.into(),
            Reason::WrongGateway(_) => ApiError::new(Code::WrongGateway, message),
            Reason::ForwardReceipt(_) | Reason::Dossier(_) => {
                ApiError::new(Code::Malformed, message)
            }
        }
    }
}

/// The refusal of a request over its agency's rate limit, naming the limit
/// (the federation's own policy).
pub fn rate_limited(limited: &RateLimited, agency: &AgencyId) -> ApiError {
    ApiError::new(
        Code::RateLimited,
        format!(
            "{agency} is over its rate limit of {} requests per second (burst {}); retry \
             after {} s",
            limited.rate.per_second, limited.rate.burst, limited.retry_after
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_the_contract_shape() {
        let e = ApiError::new(Code::Replayed, "jti \"a\" was used before");
        let v: serde_json::Value = serde_json::from_str(&e.body()).expect("json");
        assert_eq!(v["error"]["code"], "replayed");
        assert_eq!(v["error"]["message"], "jti \"a\" was used before");
        assert_eq!(e.code.status(), StatusCode::CONFLICT);
    }
}

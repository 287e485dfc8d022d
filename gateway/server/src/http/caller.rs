//! Who is calling: the agency of the connection's TLS identity, refused if
//! its certificate is revoked or (with `crl_strict`) revocations cannot be
//! checked. Checked on every request, and again by open event streams
//! whenever the CRL changes.

use super::api_state::ApiState;
use super::error::{ApiError, Code};
use crate::registry::AgencyId;
use crate::tls::{Identity, Refusal};

/// The caller's agency, if it is registered and its certificate not
/// revoked (and, with `crl_strict`, the CRL not stale).
pub fn agency(api: &ApiState, identity: &Identity) -> Result<AgencyId, ApiError> {
    if api.tls.refuses_all() {
        return Err(crl_stale());
    }
    match identity {
        Identity::Agency { id, serial } => match api.tls.refuses(serial) {
            None => Ok(id.clone()),
            Some(Refusal::Revoked) => Err(ApiError::new(
                Code::UnknownAgency,
                format!("the TLS certificate of {id} has been revoked"),
            )),
            Some(Refusal::CrlStale) => Err(crl_stale()),
        },
        Identity::Unknown(reason) => Err(ApiError::new(Code::UnknownAgency, reason.clone())),
    }
}

/// The refusal of every request while the CRL is past its `nextUpdate`
/// under `crl_strict`.
pub fn crl_stale() -> ApiError {
    ApiError::new(
        Code::CrlStale,
        "the gateway's CRL is past its nextUpdate, so revocations cannot be checked; \
         every request is refused until the operator installs a fresh CRL",
    )
}

//! Who is calling: the agency of the connection's TLS identity, refused if
//! its certificate is revoked or (with `crl_strict`) revocations cannot be
//! checked. Checked on every request, and again by open event streams
//! whenever the CRL changes.

use super::api_state::ApiState;
use super::error::{ApiError, Code};
use crate::registry::{AgencyId, GatewayId};
use crate::tls::{Identity, Refusal};

/// The caller's agency, if it is registered and its certificate not
/// revoked (and, with `crl_strict`, the CRL not stale).
pub fn agency(api: &ApiState, identity: &Identity) -> Result<AgencyId, ApiError> {
    if api.tls.refuses_all() {
        return Err(crl_stale());
    }
    match identity {
        Identity::Agency { id, serial } => match api.tls.refuses(serial) {
            None if api.gateway.serves(id) => Ok(id.clone()),
            None => Err(wrong_gateway(api, id)),
            Some(Refusal::Revoked) => Err(ApiError::new(
                Code::UnknownAgency,
                format!("the TLS certificate of {id} has been revoked"),
            )),
            Some(Refusal::CrlStale) => Err(crl_stale()),
        },
        Identity::Gateway { id, .. } => Err(ApiError::new(
            Code::UnknownAgency,
            format!(
                "the TLS certificate of gateway {id} speaks for no agency: a gateway only \
                 forwards (POST /v1/forward)"
            ),
        )),
        Identity::Unknown(reason) => Err(ApiError::new(Code::UnknownAgency, reason.clone())),
    }
}

/// The calling gateway, for a forward: a registered gateway of the
/// federation whose certificate is not revoked.
pub fn gateway(api: &ApiState, identity: &Identity) -> Result<GatewayId, ApiError> {
    if api.tls.refuses_all() {
        return Err(crl_stale());
    }
    match identity {
        Identity::Gateway { id, serial } => match api.tls.refuses(serial) {
            None => Ok(id.clone()),
            Some(Refusal::Revoked) => Err(ApiError::new(
                Code::WrongGateway,
                format!("the TLS certificate of gateway {id} has been revoked"),
            )),
            Some(Refusal::CrlStale) => Err(crl_stale()),
        },
        Identity::Agency { id, .. } => Err(ApiError::new(
            Code::WrongGateway,
            format!(
                "only a gateway of the federation forwards; {id} submits with POST /v1/envelopes"
            ),
        )),
        Identity::Unknown(reason) => Err(ApiError::new(Code::WrongGateway, reason.clone())),
    }
}

/// The refusal of an agency that this gateway does not serve: where it is
/// served instead.
fn wrong_gateway(api: &ApiState, agency: &AgencyId) -> ApiError {
    let message = match api.gateway.registry.gateway_of(agency) {
        Some(gateway) => format!(
            "{agency} is served by gateway {} at {}; connect there",
            gateway.id, gateway.url
        ),
        None => format!("{agency} is not served by this gateway"),
    };
    ApiError::new(Code::WrongGateway, message)
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

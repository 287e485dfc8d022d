//! `POST /witness/add-checkpoint`: the C2SP tlog-witness endpoint of the
//! witness this gateway runs for its peers' logs
//! ([`crate::peer_witness`]). Only the federation's other gateways may
//! submit (a registered, unrevoked gateway certificate, not this
//! gateway's own: a log cannot witness itself); anyone else gets 403
//! `wrong_gateway`. What they submit is answered exactly as tlog-witness
//! says ([`crate::witness_http`]): 200 with the cosignature line, 400, 403,
//! 404 (a log this witness does not witness), 409 with the latest size,
//! 422.

use std::sync::Arc;

use http::{Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

use super::api_state::ApiState;
use super::caller;
use super::error::{ApiError, Code};
use super::response::ResponseBody;
use crate::tls::Identity;
use crate::witness_http;

/// Answers an `add-checkpoint` request from the connection of `identity`.
pub(super) async fn add_checkpoint(
    ctx: &Arc<ApiState>,
    identity: &Identity,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let from = caller::gateway(ctx, identity).map_err(|e| match identity {
        Identity::Agency { id, .. } if e.code == Code::WrongGateway => ApiError::new(
            Code::WrongGateway,
            format!(
                "only the federation's other gateways submit checkpoints to this gateway's \
                 witness; {id} is an agency"
            ),
        ),
        _ => e,
    })?;
    if ctx.gateway.local() == Some(&from) {
        return Err(ApiError::new(
            Code::WrongGateway,
            "a gateway's witness does not witness its own gateway's log",
        ));
    }
    let Some(witness) = &ctx.witness else {
        return Err(ApiError::new(
            Code::NotFound,
            "this gateway runs no witness: the registry lists no witness_key for it",
        ));
    };
    let answered = witness_http::add_checkpoint(witness, req).await;
    ctx.gateway
        .metrics
        .peer_witness(answered.outcome, answered.evidence);
    tracing::debug!(gateway = %from, outcome = answered.outcome, "add-checkpoint answered");
    Ok(answered.response.map(Either::Left))
}

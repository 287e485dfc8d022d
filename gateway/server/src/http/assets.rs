//! The asset and reconciliation reads: `GET /v1/assets/{tag}`,
//! `GET /v1/assets?...` and `GET /v1/reconciliations/{id}`. What each agency
//! may see is decided in [`crate::assets::query`].

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::Serialize;

use super::api_state::ApiState;
use super::error::{ApiError, Code};
use super::request::{blocking, number, page_limit, params};
use super::response::{ResponseBody, json};
use crate::assets::query::{self, Filter, Status, Summary};
use crate::pipeline::unix_now;
use crate::registry::AgencyId;

/// Most assets per page, and the default page.
const PAGE: usize = 100;

#[derive(Debug, Serialize)]
struct Page {
    assets: Vec<Summary>,
    /// Pass as `after` for the next page; `null` when there is none.
    next: Option<String>,
}

pub(super) async fn show(
    ctx: &Arc<ApiState>,
    caller: AgencyId,
    tag: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let tag = tag.to_owned();
    let gateway = Arc::clone(&ctx.gateway);
    let view =
        blocking(move || query::show(&*gateway.log, &gateway.registry, &caller, &tag, unix_now()))
            .await??;
    match view {
        Some(view) => Ok(json(StatusCode::OK, &view)),
        None => Err(unknown_asset()),
    }
}

pub(super) async fn list(
    ctx: &Arc<ApiState>,
    caller: AgencyId,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut params = params(
        query,
        &[
            "holder_agency",
            "person",
            "location",
            "status",
            "after",
            "limit",
        ],
    )?;
    let filter = Filter {
        holder_agency: params
            .remove("holder_agency")
            .map(|a| {
                a.parse().map_err(|_| {
                    ApiError::new(Code::Malformed, "holder_agency is not an agency id")
                })
            })
            .transpose()?,
        person: params.remove("person"),
        location: params.remove("location"),
        status: params
            .remove("status")
            .map(|s| {
                Status::parse(&s).ok_or_else(|| {
                    ApiError::new(Code::Malformed, "status must be held, offered or missing")
                })
            })
            .transpose()?,
    };
    let after = params.remove("after");
    let limit = page_limit(&mut params, PAGE)?;
    let gateway = Arc::clone(&ctx.gateway);
    let (assets, more) = blocking(move || {
        query::list(
            gateway.log.store(),
            &gateway.registry,
            &caller,
            &filter,
            after.as_deref(),
            limit,
            unix_now(),
        )
    })
    .await?
    .map_err(xgate_ledger::Error::from)?;
    let next = if more {
        assets.last().map(|a| a.tag.clone())
    } else {
        None
    };
    Ok(json(StatusCode::OK, &Page { assets, next }))
}

pub(super) async fn report(
    ctx: &Arc<ApiState>,
    caller: AgencyId,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let index = number("reconciliation id", id)?;
    let gateway = Arc::clone(&ctx.gateway);
    let report =
        blocking(move || query::report(gateway.log.store(), &gateway.registry, &caller, index))
            .await?
            .map_err(xgate_ledger::Error::from)?;
    report
        .map(|r| json(StatusCode::OK, &r))
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such reconciliation report of yours"))
}

fn unknown_asset() -> ApiError {
    ApiError::new(Code::NotFound, "no such asset among those you may see")
}

//! The medical reads: a request's case, a response (still encrypted) and
//! the review queue. Who may see what is decided in
//! [`crate::medical::query`]; here the query strings are parsed.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::Serialize;

use super::api_state::ApiState;
use super::error::{ApiError, Code};
use super::request::{blocking, number, page_limit, params};
use super::response::{ResponseBody, json};
use crate::medical::query::{self, ReviewItem};
use crate::pipeline::unix_now;
use crate::registry::AgencyId;

/// Most reviews per page, and the default page.
const PAGE: usize = 100;

#[derive(Debug, Serialize)]
struct ReviewPage {
    reviews: Vec<ReviewItem>,
    /// Pass as `after` for the next page; `null` when there is none.
    next: Option<String>,
}

pub(super) async fn request(
    ctx: &Arc<ApiState>,
    caller: AgencyId,
    jti: &str,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut params = params(query, &["requester"])?;
    let requester = params
        .remove("requester")
        .map(|r| agency("requester", &r))
        .transpose()?;
    let jti = jti.to_owned();
    let gateway = Arc::clone(&ctx.gateway);
    let view = blocking(move || {
        query::case(
            &*gateway.log,
            &gateway.registry,
            &caller,
            &jti,
            requester.as_ref(),
            unix_now(),
        )
    })
    .await??;
    view.map(|v| json(StatusCode::OK, &v)).ok_or_else(|| {
        ApiError::new(
            Code::NotFound,
            "no such medical request among those you may see",
        )
    })
}

pub(super) async fn response(
    ctx: &Arc<ApiState>,
    caller: AgencyId,
    index: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let index = number("response id", index)?;
    let gateway = Arc::clone(&ctx.gateway);
    let view = blocking(move || query::response(&*gateway.log, &gateway.registry, &caller, index))
        .await??;
    view.map(|v| json(StatusCode::OK, &v)).ok_or_else(|| {
        ApiError::new(
            Code::NotFound,
            "no such medical response among those you may see",
        )
    })
}

pub(super) async fn reviews(
    ctx: &Arc<ApiState>,
    caller: AgencyId,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut params = params(query, &["after", "limit"])?;
    let after = params.remove("after").map(|a| cursor(&a)).transpose()?;
    let limit = page_limit(&mut params, PAGE)?;
    let gateway = Arc::clone(&ctx.gateway);
    let (reviews, more) = blocking(move || {
        let auditor = gateway.registry.is_auditor(&caller);
        let due = gateway.review_due();
        query::reviews(
            gateway.log.store(),
            &caller,
            auditor,
            after,
            limit,
            unix_now(),
            due,
        )
    })
    .await?
    .map_err(xgate_ledger::Error::from)?;
    let next = if more {
        reviews
            .last()
            .map(|r| format!("{}:{}", r.holder, r.log_index))
    } else {
        None
    };
    Ok(json(StatusCode::OK, &ReviewPage { reviews, next }))
}

/// A review page's `after`: `holder:index`, as the last page's `next` said.
fn cursor(value: &str) -> Result<(AgencyId, u64), ApiError> {
    let (holder, index) = value
        .split_once(':')
        .ok_or_else(|| ApiError::new(Code::Malformed, "after must be a page's next value"))?;
    Ok((agency("after", holder)?, number("after", index)?))
}

fn agency(name: &str, value: &str) -> Result<AgencyId, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::new(Code::Malformed, format!("{name} is not an agency id")))
}

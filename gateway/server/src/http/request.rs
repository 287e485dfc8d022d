//! Requests: reading a body within its limits and deadline, and reading
//! query parameters, refusing (rather than ignoring) what is not as
//! expected.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::Request;
use http::header::CONTENT_LENGTH;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::error::{ApiError, Code};

/// When a request's body must have arrived in full: the server sets it,
/// `header_timeout` after the request head, on every request it hands to
/// [`super::handle`]. A body still incomplete then is answered `408 body_timeout`
/// (a request in flight keeps its connection's slot, so a trickled body
/// must not keep one for long).
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// The body of `req`, which must be of `media_type` and at most `limit`
/// bytes long (refused from its `Content-Length` before any of it is read),
/// and arrive by the request's [`BodyDeadline`], if it has one.
pub async fn read_body(
    req: Request<Incoming>,
    media_type: &str,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let sent = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if sent.as_deref() != Some(media_type) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("this body is sent as Content-Type: {media_type}"),
        ));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("the body is over the {limit}-byte limit"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let deadline = req.extensions().get::<BodyDeadline>().copied();
    let collect = Limited::new(req.into_body(), limit).collect();
    let collected = match deadline {
        Some(BodyDeadline(at)) => tokio::time::timeout_at(at, collect).await.map_err(|_| {
            ApiError::new(
                Code::BodyTimeout,
                "the request body did not arrive in full within header_timeout_secs \
                 of the request head; the connection is closed",
            )
        })?,
        None => collect.await,
    };
    let body = collected
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::new(Code::Malformed, "the request body could not be read")
            }
        })?
        .to_bytes();
    Ok(body)
}

/// Runs blocking work (storage, group commit) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "a blocking task did not finish");
        ApiError::internal()
    })
}

/// The query parameter `name`, a non-negative integer, required.
pub fn required(query: &str, name: &str) -> Result<u64, ApiError> {
    optional(query, name)?.ok_or_else(|| {
        ApiError::new(
            Code::Malformed,
            format!("query parameter {name} is required"),
        )
    })
}

/// The query parameter `name`, a non-negative integer, if given.
pub fn optional(query: &str, name: &str) -> Result<Option<u64>, ApiError> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| number(name, v))
        .transpose()
}

/// `value` of parameter `name` as a non-negative integer.
pub fn number(name: &str, value: &str) -> Result<u64, ApiError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(
            Code::Malformed,
            format!("{name} must be a non-negative integer"),
        ));
    }
    value
        .parse()
        .map_err(|_| ApiError::new(Code::Malformed, format!("{name} is too large")))
}

/// A paged listing's cursor, from a plain query: `after` (none: from the
/// start) and `limit`, 1 to `page` (default `page`). The inbox and the
/// outbox page this way.
pub fn cursor(query: &str, page: usize) -> Result<(Option<u64>, usize), ApiError> {
    let after = optional(query, "after")?;
    let limit = optional(query, "limit")?
        .map_or(page, |l| usize::try_from(l).unwrap_or(page).clamp(1, page));
    Ok((after, limit))
}

/// The `limit` parameter, 1 to `page` (default `page`).
pub fn page_limit(params: &mut BTreeMap<String, String>, page: usize) -> Result<usize, ApiError> {
    Ok(params
        .remove("limit")
        .map(|l| number("limit", &l))
        .transpose()?
        .map_or(page, |l| usize::try_from(l).unwrap_or(page).clamp(1, page)))
}

/// The query's parameters, percent-decoded; a name not in `allowed`, or
/// given twice, is refused rather than ignored.
pub fn params(query: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(ApiError::new(
                Code::Malformed,
                format!(
                    "unknown query parameter; expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(ApiError::new(
                Code::Malformed,
                format!("query parameter {name} is given twice"),
            ));
        }
    }
    Ok(out)
}

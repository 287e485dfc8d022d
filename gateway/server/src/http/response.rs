//! Responses: the body type every route answers with, and the JSON, text
//! and error responses built on it. Each is built without a fallible
//! builder, and a value that cannot be encoded is answered `500 internal`
//! (and logged), never with an empty body.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{Either, Full};
use hyper::body::{Frame, SizeHint};
use serde::Serialize;
use tokio::sync::oneshot;

use super::error::ApiError;

/// A response body: whole, or streamed (the reconciliation feed).
pub type ResponseBody = Either<Full<Bytes>, EventBody>;

/// The body of an event stream. Dropping it (the connection closed) tells
/// the stream's task to stop at once, giving back its slot.
pub struct EventBody {
    inner: Channel<Bytes>,
    _gone: oneshot::Sender<()>,
}

impl EventBody {
    /// The body read from `inner`; `gone` fires when it is dropped.
    pub fn new(inner: Channel<Bytes>, gone: oneshot::Sender<()>) -> EventBody {
        EventBody { inner, _gone: gone }
    }
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Either::Left(Full::new(bytes.into()))
}

/// A response of `status` with `body` of media type `content_type`.
pub fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `value` as JSON; `500 internal` if it cannot be encoded.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, "application/json", full(body)),
        Err(e) => {
            tracing::error!(error = %e, "a response could not be encoded as JSON");
            error_response(&ApiError::internal())
        }
    }
}

/// Plain text.
pub fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    with_body(status, "text/plain; charset=utf-8", full(body.to_owned()))
}

/// The response for a refused request: its status and JSON error body.
pub fn error_response(e: &ApiError) -> Response<ResponseBody> {
    with_body(e.code.status(), "application/json", full(e.body()))
}

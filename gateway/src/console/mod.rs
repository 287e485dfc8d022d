//! The agency console (`xgate console`): a page on loopback for one
//! agency, served by a process that holds the agency's keys and talks to
//! its gateway with its certificate, as a wallet does.
//!
//! ```text
//! GET  /, /console/*     the page (public: it holds nothing)        [page]
//! GET  /api/session      who the console acts as, the registry's agencies,
//!                        the log key receipts are checked against
//! POST /api/run          {"action","fields"}: one `xgate` command   [actions]
//!                        -> {"lines":[...]} (its JSON output, or for a
//!                        text action its lines as strings), or the
//!                        gateway's refusal with its status and code
//! GET  /api/events       the agency's reconciliation event stream, relayed
//! ```
//!
//! Every `/api/` request carries `Authorization: Bearer <token>`, the
//! token printed at start in the page's address (after `#`, so it is
//! never sent in a request line, logged, or leaked in a `Referer`): other
//! local users can reach the port but cannot act. A `Host` other than the
//! console's own address is refused, so a web page under another name
//! that resolves to 127.0.0.1 (DNS rebinding) reaches nothing.
//!
//! Every action is an `xgate` command run in this process ([`Runner`]):
//! envelopes are signed, sealed and checked exactly as the command line
//! does, and the inbox is opened and signature-checked here with the
//! registry the console holds, never with keys from the gateway.

pub mod actions;
pub mod page;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use xgate_server::registry::{AgencyId, Registry};

use crate::cli::error::Error;
use crate::client::{Client, Protocol};
use actions::{Identity, Output, invocation};

/// Runs one `xgate` command line (the words after the program name) with
/// `stdin` as its standard input: what it printed, and how it ended (a
/// command may print, then fail: `xgate inbox` after a refused envelope,
/// `inventory report --show` after sending).
pub type Runner = fn(&[String], &[u8]) -> (Vec<u8>, Result<(), Error>);

/// The largest `/api/run` body: an inventory report of many tags.
const MAX_BODY: usize = 1 << 20;
/// Connections the console serves at once: one person's browser.
const MAX_CONNECTIONS: usize = 64;
/// Time for a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A console's response body: a whole answer, or the gateway's event
/// stream as it arrives.
pub type ConsoleBody = Either<Full<Bytes>, Incoming>;

/// What one console serves.
pub struct Console {
    /// The agency, its PKI directory and gateway: every command's flags.
    pub identity: Identity,
    /// The PKI directory.
    pub pki: PathBuf,
    /// The agency.
    pub agency: AgencyId,
    /// The registry the console holds (keys are taken from it only).
    pub registry: Registry,
    /// The log key given on the command line, for a registry that lists
    /// none.
    pub log_key: Option<String>,
    /// The secret every `/api/` request must carry.
    pub token: String,
    /// The address the console listens on.
    pub addr: SocketAddr,
    /// Runs a command.
    pub runner: Runner,
}

/// A fresh token: 256 random bits, base64url.
///
/// # Errors
/// If the system has no randomness to give.
pub fn new_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Request(format!("no randomness for the console's token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Console {
    /// The address to open, token included.
    pub fn url(&self) -> String {
        format!("http://{}/#token={}", self.addr, self.token)
    }

    /// Serves `listener` until `shutdown` completes.
    ///
    /// # Errors
    /// Never after start; the signature keeps the listener's contract.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let graceful = GracefulShutdown::new();
        // HTTP/1.1 only: every request then carries the `Host` the
        // rebinding check reads, and a head must arrive in time.
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let console = Arc::clone(&self);
            let service = service_fn(move |req| {
                let console = Arc::clone(&console);
                async move { Ok::<_, Infallible>(console.handle(req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let watched = graceful.watch(conn);
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = watched.await {
                    tracing::debug!(error = %e, "console connection ended with an error");
                }
            });
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        Ok(())
    }

    /// Answers one request.
    async fn handle(&self, req: Request<Incoming>) -> Response<ConsoleBody> {
        if !self.is_own_host(&req) {
            return whole(error(
                StatusCode::MISDIRECTED_REQUEST,
                "wrong_host",
                "this console answers only at its own address",
            ));
        }
        let path = req.uri().path().to_owned();
        if let Some(file) = page::file(req.method(), &path) {
            return whole(page::response(file));
        }
        if !path.starts_with("/api/") {
            return whole(error(StatusCode::NOT_FOUND, "not_found", "no such page"));
        }
        if !self.is_authorized(&req) {
            return whole(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "open the address the console printed at start (it carries the token)",
            ));
        }
        match (req.method(), path.as_str()) {
            (&Method::GET, "/api/session") => whole(json_response(StatusCode::OK, &self.session())),
            (&Method::POST, "/api/run") => whole(self.run(req).await),
            (&Method::GET, "/api/events") => self.events(&req).await,
            (_, "/api/session" | "/api/run" | "/api/events") => whole(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "not with this method",
            )),
            _ => whole(error(StatusCode::NOT_FOUND, "not_found", "no such call")),
        }
    }

    /// Whether the request names this console's own address (`Host`): its
    /// IP address or `localhost`, with its port (implied for 80).
    fn is_own_host(&self, req: &Request<Incoming>) -> bool {
        let Some(host) = req.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let port = self.addr.port();
        let ip = match self.addr.ip() {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        [ip.as_str(), "localhost"]
            .iter()
            .any(|name| host == format!("{name}:{port}") || (port == 80 && host == *name))
    }

    /// Whether the request carries the token (compared in constant time).
    fn is_authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(given) = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        given.len() == self.token.len() && bool::from(given.as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// `GET /api/session`.
    fn session(&self) -> Value {
        let gateway = self.registry.gateway_of(&self.agency);
        let agencies: Vec<Value> = self
            .registry
            .agencies()
            .map(|a| json!({ "id": a.id.as_str(), "name": a.name, "roles": a.roles }))
            .collect();
        let me = self.registry.get(&self.agency);
        json!({
            "agency": self.agency.as_str(),
            "name": me.map(|a| a.name.as_str()),
            "roles": me.map(|a| a.roles.clone()).unwrap_or_default(),
            "gateway": self.identity.gateway,
            // Receipts are checked against the registry's key (or the one
            // the operator gave), never one the gateway names.
            "log_key": gateway.map(|g| g.log_key.as_str()).or(self.log_key.as_deref()),
            // Every log a receipt may come from (a custody chain across
            // gateways carries receipts of several), picked by origin.
            "log_keys": self
                .registry
                .gateways()
                .map(|g| g.log_key.as_str())
                .chain(self.log_key.as_deref())
                .collect::<Vec<_>>(),
            "agencies": agencies,
        })
    }

    /// `POST /api/run`: one command, its output as lines (JSON values, or
    /// strings for a text action).
    async fn run(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the request is over 1 MiB or was cut short",
                );
            }
        };
        let request: Map<String, Value> = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "send {\"action\": NAME, \"fields\": {...}}",
                );
            }
        };
        let action = request.get("action").and_then(Value::as_str).unwrap_or("");
        let empty = Map::new();
        let fields = match request.get("fields") {
            None => &empty,
            Some(Value::Object(f)) => f,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "fields must be a JSON object",
                );
            }
        };
        let call = match invocation(&self.identity, action, fields) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, "malformed", &e.to_string()),
        };
        let runner = self.runner;
        let (signs, output) = (call.signs, call.output);
        let ran = tokio::task::spawn_blocking(move || runner(&call.args, &call.stdin)).await;
        let Ok((out, result)) = ran else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the command stopped unexpectedly",
            );
        };
        let lines = output_lines(&out, output);
        if signs && !lines.is_empty() {
            tracing::info!(action, "signed and submitted");
        }
        let (status, mut body) = match result {
            Ok(()) => (StatusCode::OK, json!({})),
            Err(e) => refusal(&e, !lines.is_empty()),
        };
        body["lines"] = Value::Array(lines);
        json_response(status, &body)
    }

    /// `GET /api/events`: the gateway's reconciliation stream, relayed
    /// (resumed after `Last-Event-ID` when the page gives one).
    async fn events(&self, req: &Request<Incoming>) -> Response<ConsoleBody> {
        let mut path = "/v1/reconciliations/stream".to_owned();
        if let Some(last) = req
            .headers()
            .get("last-event-id")
            .and_then(|h| h.to_str().ok())
            .filter(|l| {
                !l.is_empty() && l.len() < 48 && l.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            })
        {
            path.push_str("?after=");
            path.push_str(last);
        }
        let client = match Client::for_agency(
            &self.pki,
            &self.agency,
            &self.identity.gateway,
            Protocol::Http1,
        ) {
            Ok(c) => c,
            Err(e) => return whole(answer(refusal(&Error::Client(e), false))),
        };
        match client.open_stream(&path, "text/event-stream").await {
            Ok((StatusCode::OK, body)) => {
                let mut response = Response::new(Either::Right(body));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                page::protect(response.headers_mut(), "no-store");
                response
            }
            // The gateway's refusal, its code and message kept
            // (`429 too_many_streams`, say).
            Ok((status, body)) => {
                let bytes = Limited::new(body, 64 * 1024)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let refused: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let text = |f: &str, d: &str| refused["error"][f].as_str().unwrap_or(d).to_owned();
                whole(error(
                    status,
                    &text("code", "stream_refused"),
                    &text("message", "the gateway refused the event stream"),
                ))
            }
            Err(e) => whole(answer(refusal(&Error::Client(e), false))),
        }
    }
}

/// What a command printed, as the page gets it: each non-empty line of
/// JSON output as its value (a line that is not JSON, as a string), each
/// line of text output as a string, never read as JSON.
fn output_lines(out: &[u8], output: Output) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| match output {
            Output::Json => serde_json::from_str(l).unwrap_or_else(|_| Value::from(l)),
            Output::Text => Value::from(l),
        })
        .collect()
}

/// A whole response as a console response.
fn whole(response: Response<Full<Bytes>>) -> Response<ConsoleBody> {
    response.map(Either::Left)
}

/// `value` as a JSON response.
fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    page::protect(response.headers_mut(), "no-store");
    response
}

/// An error body, as the gateway's API writes them.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// What a failed command answers, as a status and an error body: the
/// gateway's own status and code when it refused; 400 for a form the
/// command line refuses; 502 when the gateway could not be reached; when
/// the command had printed something (`printed`: an envelope was sent, or
/// an inbox listed), 502 `incomplete`, so the page never takes what was
/// sent for a refusal; else 422 `not_sent` (refused here, nothing sent).
fn refusal(e: &Error, printed: bool) -> (StatusCode, Value) {
    let body = |code: &str, message: &str| json!({ "error": { "code": code, "message": message } });
    match e {
        Error::Refused {
            status,
            code,
            message,
        } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
            body(code, message),
        ),
        Error::Usage(m) => (StatusCode::BAD_REQUEST, body("malformed", m)),
        _ if printed => (
            StatusCode::BAD_GATEWAY,
            body(
                "incomplete",
                &format!("the command went part way, then: {e}"),
            ),
        ),
        Error::Client(crate::client::ClientError::Transport(m)) => {
            (StatusCode::BAD_GATEWAY, body("gateway_unreachable", m))
        }
        other => (
            StatusCode::UNPROCESSABLE_ENTITY,
            body("not_sent", &other.to_string()),
        ),
    }
}

/// A status and a JSON body as a response.
fn answer((status, body): (StatusCode, Value)) -> Response<Full<Bytes>> {
    json_response(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: &Error, printed: bool) -> (u16, String) {
        let (status, body) = refusal(e, printed);
        (
            status.as_u16(),
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// Text output stays text, even a line that happens to be JSON; JSON
    /// output is read line by line.
    #[test]
    fn text_output_is_never_read_as_json() {
        let out = b"entry 4: asset.register, policy ab (in force)\n\n17\ntrue\n";
        assert_eq!(
            output_lines(out, Output::Text),
            [
                json!("entry 4: asset.register, policy ab (in force)"),
                json!("17"),
                json!("true")
            ]
        );
        assert_eq!(
            output_lines(b"{\"a\":1}\n17\nnot json\n", Output::Json),
            [json!({"a": 1}), json!(17), json!("not json")]
        );
    }

    /// A command that printed before failing sent something (or listed an
    /// inbox): never reported as refused before sending.
    #[test]
    fn what_a_command_printed_before_failing_is_never_called_not_sent() {
        let local = Error::Request("1 envelope(s) refused".into());
        assert_eq!(code(&local, false), (422, "not_sent".into()));
        assert_eq!(code(&local, true), (502, "incomplete".into()));
        let gone = Error::Client(crate::client::ClientError::Transport("reset".into()));
        assert_eq!(code(&gone, false), (502, "gateway_unreachable".into()));
        assert_eq!(code(&gone, true), (502, "incomplete".into()));
        let refused = Error::Refused {
            status: 409,
            code: "no_open_offer".into(),
            message: "m".into(),
        };
        assert_eq!(code(&refused, false), (409, "no_open_offer".into()));
        assert_eq!(code(&refused, true), (409, "no_open_offer".into()));
        assert_eq!(
            code(&Error::Usage("bad".into()), false),
            (400, "malformed".into())
        );
    }
}

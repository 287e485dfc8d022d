//! What every client command shares: the connection flags
//! (`--pki DIR --as ID --gateway URL`), a session that signs and submits
//! envelopes or reads the API over one mutual-TLS connection, and the
//! printing of answers and refusals.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::Error;
use crate::client::{Client, EnvelopeSigner, Protocol, Reply, random_jti};
use xgate_server::envelope::{self, Envelope, Limits, Verifiers};
use xgate_server::kind::Kind;
use xgate_server::registry::{AgencyId, Registry};

/// How long a sent envelope is valid.
pub const LIFETIME_SECS: i64 = 120;

/// The gateway connection of every client command.
#[derive(Debug, Args)]
pub struct Connection {
    /// PKI directory holding the agency's keys (`xgate certs init`).
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The agency acting.
    #[arg(long = "as", value_name = "ID")]
    pub agency: AgencyId,
    /// The gateway, as https://host:port.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
}

/// One agency's connection to the gateway, and the runtime driving it.
pub struct Session<'a> {
    /// The flags it was opened with.
    pub conn: &'a Connection,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl<'a> Session<'a> {
    /// Opens a connection as `conn` says.
    ///
    /// # Errors
    /// Unusable keys or certificates, or a runtime that cannot start.
    pub fn open(conn: &'a Connection) -> Result<Session<'a>, Error> {
        let client = Client::for_agency(&conn.pki, &conn.agency, &conn.gateway, Protocol::Auto)?;
        Ok(Session {
            conn,
            client,
            runtime: runtime()?,
        })
    }

    /// GETs `path`, which must answer 200.
    ///
    /// # Errors
    /// A transport failure or the gateway's refusal.
    pub fn get(&mut self, path: &str) -> Result<Reply, Error> {
        let reply =
            self.runtime
                .block_on(self.client.request(Method::GET, path, None, Vec::new()))?;
        expect(&reply, StatusCode::OK)?;
        Ok(reply)
    }

    /// Signs `body` as an envelope of `kind` to `aud` and submits it:
    /// returns its `jti` (`jti`, or a random one) and the gateway's 201
    /// answer (the receipt, and what the kind adds to it).
    ///
    /// # Errors
    /// A bad key, a transport failure or the gateway's refusal.
    pub fn submit(
        &mut self,
        aud: &AgencyId,
        kind: Kind,
        body: Map<String, Value>,
        jti: Option<String>,
    ) -> Result<(String, Map<String, Value>), Error> {
        let signer = EnvelopeSigner::for_agency(&self.conn.pki, &self.conn.agency)?;
        // Chosen here rather than by the signer, so it can be printed.
        let jti = match jti {
            Some(j) => j,
            None => random_jti()?,
        };
        let jws = signer.sign(aud, kind.as_str(), body, LIFETIME_SECS, Some(jti.clone()))?;
        let reply = self.runtime.block_on(self.client.submit(jws))?;
        expect(&reply, StatusCode::CREATED)?;
        Ok((jti, parse(&reply, "receipt")?))
    }
}

/// A runtime for one command's requests.
///
/// # Errors
/// If it cannot start.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Request(format!("cannot start the runtime: {e}")))
}

/// Turns a response other than `want` into the gateway's refusal.
///
/// # Errors
/// [`Error::Refused`] with the gateway's status, code and message.
pub fn expect(reply: &Reply, want: StatusCode) -> Result<(), Error> {
    if reply.status == want {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let text =
        |field: &str, default: &str| body["error"][field].as_str().unwrap_or(default).to_owned();
    Err(Error::Refused {
        status: reply.status.as_u16(),
        code: text("code", "unknown"),
        message: text("message", "no message"),
    })
}

/// The reply's JSON body as a `T`; `what` names it in the error.
///
/// # Errors
/// If the body is not the JSON expected.
pub fn parse<T: DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, Error> {
    serde_json::from_slice(&reply.body)
        .map_err(|_| Error::Request(format!("the gateway's {what} is not the JSON expected")))
}

/// Prints `value` as one line of JSON.
///
/// # Errors
/// If stdout fails.
pub fn emit_json<T: Serialize>(stdout: &mut dyn Write, value: &T) -> Result<(), Error> {
    let line = serde_json::to_vec(value).map_err(|e| Error::Stdout(std::io::Error::other(e)))?;
    emit(stdout, &line)
}

/// Prints `bytes` as one line.
///
/// # Errors
/// If stdout fails.
pub fn emit(stdout: &mut dyn Write, bytes: &[u8]) -> Result<(), Error> {
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}

/// An agency's private encryption JWK, read from `file`.
///
/// # Errors
/// A file that cannot be read or is not a JWK.
pub fn encryption_key(file: &std::path::Path) -> Result<josekit::jwk::Jwk, Error> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::Request(format!("cannot read {}: {e}", file.display())))?;
    josekit::jwk::Jwk::from_bytes(bytes)
        .map_err(|_| Error::Request(format!("{} is not a JWK", file.display())))
}

/// The body of an envelope `from` sent to `to`, after checking its
/// signature with the sender's registered key (time limits do not apply
/// to delivered envelopes).
///
/// # Errors
/// A signature that does not check out, or an envelope for another agency.
pub fn delivered_body(
    jws: &str,
    from: &AgencyId,
    to: &AgencyId,
    registry: &Registry,
) -> Result<Map<String, Value>, Error> {
    let verifiers =
        Verifiers::from_registry(registry).map_err(|e| Error::Request(e.to_string()))?;
    Ok(delivered(jws, from, to, registry, &verifiers)?.body)
}

/// The envelope `from` sent to `to`, after checking its signature with the
/// sender's key in `registry` (the caller's own copy, which `verifiers` is
/// built from); time limits do not apply to delivered envelopes.
///
/// # Errors
/// A signature that does not check out, or an envelope for another agency.
pub fn delivered(
    jws: &str,
    from: &AgencyId,
    to: &AgencyId,
    registry: &Registry,
    verifiers: &Verifiers,
) -> Result<Envelope, Error> {
    let unlimited = Limits {
        max_lifetime: i64::MAX,
        skew: i64::MAX,
    };
    let opened = envelope::open(jws.as_bytes(), from, verifiers, registry, unlimited, 0)
        .map_err(|e| Error::Request(format!("an envelope from {from} does not check out: {e}")))?;
    if &opened.aud != to {
        return Err(Error::Request(format!(
            "envelope {} is addressed to {}, not {to}",
            opened.id(),
            opened.aud
        )));
    }
    Ok(opened)
}

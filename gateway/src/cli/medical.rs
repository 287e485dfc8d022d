//! The medical commands (docs/medical.md): a responder's agency asks for a
//! person's summary, the holding agency approves or answers it encrypted to
//! the requester, the requester opens the answer, and the holder's reviewer
//! works the break-the-glass queue. The gateway never sees a key that
//! could decrypt an answer: encryption and decryption happen here.
//!
//! ```text
//! xgate medical request  CONN --to HOLDER --subject S --purpose ETREAT|TREAT --incident I
//!                        --responder NAME --role ROLE --section S... [--reply-key FILE] [--jti J]
//!                        [--plain]
//! xgate medical approve  CONN --request JTI [--ttl-hours H] [--uses N] [--jti J]
//! xgate medical respond  CONN --request JTI --bundle FILE [--jti J]
//! xgate medical open     CONN --response ID [--key FILE] [--out FILE]
//! xgate medical show     CONN JTI [--requester AGENCY]
//! xgate medical review   CONN --request JTI --outcome appropriate|inappropriate --note TEXT [--jti J]
//! xgate medical reviews  CONN
//! ```
//!
//! `CONN` is `--pki DIR --as ID --gateway URL`. Submitting commands print
//! one line of JSON, `{"kind","jti","request","receipt"}` (a request's
//! `request` is its own `jti`; a response adds `response`, the id `open`
//! takes). `open` checks the holder's signature, decrypts with the agency's
//! private encryption key (`DIR/<agency>/encryption.jwk`, or `--key`),
//! validates the bundle's structure against the sections asked for, prints
//! `{"request","response","from","summary"}` and then the bundle itself on
//! a second line, or writes it to `--out`.
//!
//! `request` seals the subject, the incident and the responder's name to
//! the holder's registered encryption key ([`xgate_server::sealed`]), so the
//! gateway sees only the purpose, the role, the sections and the reply key;
//! `--plain` sends them in clear. The holder reads them in its inbox.
//!
//! `approve`, `respond` and `open` take the requester, the holder, the
//! sections and the reply key from the signed request envelope (which the
//! gateway keeps and shows to the two agencies), checked against the
//! agency's own copy of the registry; never from the gateway's JSON view of
//! the case, which they only compare with it: a view that differs (a reply
//! key swapped in the gateway's store, say) is refused and nothing is
//! sent.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use josekit::jwk::Jwk;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::Error;
use super::session::{Connection, Session, delivered_body, emit_json, parse};
use crate::bundle::{self, Section, Summary};
use crate::client::{EnvelopeSigner, random_jti};
use crate::seal::{self, Binding};
use xgate_server::envelope::{Limits, Verifiers};
use xgate_server::kind::Kind;
use xgate_server::medical::jwe;
use xgate_server::medical::model::{
    Approve, Outcome, Purpose, ReplyKey, Request, Responder, Review,
};
use xgate_server::pki::{ENCRYPTION_JWK, REGISTRY};
use xgate_server::receipt::Receipt;
use xgate_server::registry::{AgencyId, Registry};

/// The `xgate medical` subcommands.
#[derive(Debug, Subcommand)]
pub enum MedicalCommand {
    /// Ask a holding agency for a person's summary (responders).
    Request(RequestArgs),
    /// Grant a request that did not break the glass (holders).
    Approve(ApproveArgs),
    /// Answer a granted request with an IPS bundle, encrypted to the
    /// requester (holders).
    Respond(RespondArgs),
    /// Decrypt and check an answer to your request (responders).
    Open(OpenArgs),
    /// Print a request: its grant, responses and review.
    Show(ShowArgs),
    /// Close a break-the-glass grant with a review (holders' reviewers).
    Review(ReviewArgs),
    /// List break-the-glass grants awaiting your review.
    Reviews(ReviewsArgs),
}

/// Arguments of `xgate medical request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The agency holding the records.
    #[arg(long, value_name = "AGENCY")]
    pub to: AgencyId,
    /// Whom the records are about, as the holder knows them.
    #[arg(long, value_name = "S")]
    pub subject: String,
    /// HL7 ActReason purpose of use: ETREAT (emergency) or TREAT.
    #[arg(long, value_name = "P", value_parser = purpose)]
    pub purpose: Purpose,
    /// The incident id.
    #[arg(long, value_name = "I")]
    pub incident: String,
    /// The responder's name.
    #[arg(long = "responder", value_name = "NAME")]
    pub name: String,
    /// The responder's role, e.g. medical-officer.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// An IPS section wanted (repeat): allergies, medications, problems,
    /// immunizations, procedures, results.
    #[arg(long = "section", value_name = "S", required = true, value_parser = section)]
    pub sections: Vec<Section>,
    /// A public JWK file to encrypt the answer to (default: your agency's
    /// registered encryption key, by kid).
    #[arg(long, value_name = "FILE")]
    pub reply_key: Option<PathBuf>,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
    /// Send the subject, incident and responder's name in clear (signed,
    /// not encrypted): the gateway's operator can read them. By default
    /// they are sealed to the holder's registered encryption key.
    #[arg(long)]
    pub plain: bool,
}

/// Arguments of `xgate medical approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The request's `jti`.
    #[arg(long, value_name = "JTI", allow_hyphen_values = true)]
    pub request: String,
    /// How long the grant lasts (default 24).
    #[arg(long, value_name = "H")]
    pub ttl_hours: Option<u32>,
    /// How many responses it covers (default 1).
    #[arg(long, value_name = "N")]
    pub uses: Option<u32>,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
}

/// Arguments of `xgate medical respond`.
#[derive(Debug, Args)]
pub struct RespondArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The request's `jti`.
    #[arg(long, value_name = "JTI", allow_hyphen_values = true)]
    pub request: String,
    /// The FHIR R4 IPS bundle (JSON) to send.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
}

/// Arguments of `xgate medical open`.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The response's id (its log index, as `respond` and `show` print).
    #[arg(long, value_name = "ID")]
    pub response: u64,
    /// The private JWK to decrypt with (default:
    /// `DIR/<agency>/encryption.jwk`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Write the bundle here instead of printing it, readable by this user
    /// only (mode 0600); an existing FILE, or a symlink there, is replaced.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Arguments of `xgate medical show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The request's `jti` (one starting with `-` is taken as the value).
    #[arg(value_name = "JTI", allow_hyphen_values = true)]
    pub request: String,
    /// The requesting agency (auditors must name it).
    #[arg(long, value_name = "AGENCY")]
    pub requester: Option<AgencyId>,
}

/// Arguments of `xgate medical review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
    /// The request's `jti`.
    #[arg(long, value_name = "JTI", allow_hyphen_values = true)]
    pub request: String,
    /// appropriate or inappropriate.
    #[arg(long, value_name = "O", value_parser = outcome)]
    pub outcome: Outcome,
    /// The reviewer's reasons (kept in the signed envelope, never logged).
    #[arg(long, value_name = "TEXT")]
    pub note: String,
    /// The envelope's id (default: 128 random bits).
    #[arg(long, value_name = "J")]
    pub jti: Option<String>,
}

/// Arguments of `xgate medical reviews`.
#[derive(Debug, Args)]
pub struct ReviewsArgs {
    /// How to reach the gateway, and as whom.
    #[command(flatten)]
    pub conn: Connection,
}

/// What a submitting command prints.
#[derive(Debug, Serialize)]
struct Submitted {
    kind: &'static str,
    jti: String,
    request: String,
    /// A response's id, for `open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<u64>,
    receipt: Receipt,
}

/// What `open` prints first.
#[derive(Debug, Serialize)]
struct Opened {
    request: String,
    response: u64,
    from: String,
    summary: Summary,
}

impl MedicalCommand {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// Bad arguments or files, a transport failure, the gateway's refusal,
    /// or an answer that does not decrypt or validate.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            MedicalCommand::Request(a) => a.run(stdout),
            MedicalCommand::Approve(a) => a.run(stdout),
            MedicalCommand::Respond(a) => a.run(stdout),
            MedicalCommand::Open(a) => a.run(stdout),
            MedicalCommand::Show(a) => a.run(stdout),
            MedicalCommand::Review(a) => a.run(stdout),
            MedicalCommand::Reviews(a) => a.run(stdout),
        }
    }
}

impl RequestArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let reply_key = match &self.reply_key {
            Some(file) => ReplyKey::Jwk(json_object(file)?),
            None => ReplyKey::Kid(own_kid(&self.conn)?),
        };
        let body = Request {
            subject: Some(self.subject),
            purpose: self.purpose,
            incident: Some(self.incident),
            responder: Responder {
                name: Some(self.name),
                role: self.role,
            },
            sections: self.sections,
            reply_key,
            sealed: None,
        };
        // Checked in clear first, so a bad field is refused here by name.
        checked(Kind::MedicalRequest, &body, |m| Request::parse(m).map(drop))?;
        let jti = match self.jti {
            Some(j) => j,
            None => random_jti()?,
        };
        let body = if self.plain {
            body
        } else {
            let registry = Registry::load(&self.conn.pki.join(REGISTRY))?;
            let signer = EnvelopeSigner::for_agency(&self.conn.pki, &self.conn.agency)?;
            seal_request(body, &signer, &registry, &self.to, &jti)?
        };
        let map = checked(Kind::MedicalRequest, &body, |m| Request::parse(m).map(drop))?;
        let mut session = Session::open(&self.conn)?;
        let out = submit(
            &mut session,
            &self.to,
            Kind::MedicalRequest,
            map,
            Some(jti),
            None,
        )?;
        emit_json(stdout, &out)
    }
}

/// `request`, in clear, with its subject, incident and responder's name
/// sealed by `signer` to `holder`'s encryption key in `registry` (the
/// requester's own copy) for the envelope `jti`.
///
/// # Errors
/// A holder missing from the registry, or a key that cannot be sealed to.
pub(crate) fn seal_request(
    mut request: Request,
    signer: &EnvelopeSigner,
    registry: &Registry,
    holder: &AgencyId,
    jti: &str,
) -> Result<Request, Error> {
    let Some(private) = request.take_private() else {
        return Ok(request);
    };
    let key = &registry
        .get(holder)
        .ok_or_else(|| Error::Request(format!("{holder} is not in your registry")))?
        .encryption_key;
    let body = match serde_json::to_value(private) {
        Ok(Value::Object(map)) => map,
        _ => return Err(Error::Request("the sealed fields are not an object".into())),
    };
    let binding = Binding {
        iss: signer.iss().clone(),
        aud: holder.clone(),
        jti: jti.to_owned(),
        kind: Kind::MedicalRequest,
    };
    let part = seal::seal(signer, key, &binding, body).map_err(|e| {
        Error::Request(format!(
            "cannot seal the request to {holder}'s encryption key: {e} (--plain sends it in clear)"
        ))
    })?;
    request.sealed = Some(part);
    Ok(request)
}

impl ApproveArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let body = Approve {
            request: self.request.clone(),
            ttl_hours: self.ttl_hours,
            uses: self.uses,
        };
        let map = checked(Kind::MedicalApprove, &body, |m| Approve::parse(m).map(drop))?;
        let registry = Registry::load(&self.conn.pki.join(REGISTRY))?;
        let mut session = Session::open(&self.conn)?;
        let view = case(&mut session, &self.request, None)?;
        let signed = Signed::from_view(&view, &self.request, &self.conn.agency, &registry)?;
        let out = submit(
            &mut session,
            &signed.requester,
            Kind::MedicalApprove,
            map,
            self.jti,
            Some(self.request),
        )?;
        emit_json(stdout, &out)
    }
}

impl RespondArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let bundle = std::fs::read(&self.bundle)
            .map_err(|e| Error::Request(format!("cannot read {}: {e}", self.bundle.display())))?;
        let registry = Registry::load(&self.conn.pki.join(REGISTRY))?;
        let mut session = Session::open(&self.conn)?;
        let view = case(&mut session, &self.request, None)?;
        // The requester, sections and reply key as the requester signed
        // them: a key the gateway substituted never gets the bundle.
        let signed = Signed::from_view(&view, &self.request, &self.conn.agency, &registry)?;
        if signed.holder != self.conn.agency {
            return Err(Error::Request(format!(
                "request {} was sent to {}, not to you; nothing was sent",
                self.request, signed.holder
            )));
        }
        // What the responder asked for must be in the bundle before it is
        // sent: once encrypted, nobody on the way can check it.
        bundle::validate(&bundle, &signed.request.sections).map_err(|e| {
            Error::Request(format!(
                "{} is not the bundle asked for: {e}",
                self.bundle.display()
            ))
        })?;
        let payload = jwe::encrypt(&bundle, &signed.reply_key)
            .map_err(|e| Error::Request(format!("cannot encrypt to the reply key: {e}")))?;
        let requester = signed.requester;
        let mut map = Map::new();
        map.insert("request".into(), Value::String(self.request.clone()));
        map.insert("payload".into(), Value::String(payload));
        let mut out = submit(
            &mut session,
            &requester,
            Kind::MedicalResponse,
            map,
            self.jti,
            Some(self.request),
        )?;
        out.response = Some(out.receipt.log_index);
        emit_json(stdout, &out)
    }
}

impl OpenArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let key_file = self.key.clone().unwrap_or_else(|| {
            self.conn
                .pki
                .join(self.conn.agency.as_str())
                .join(ENCRYPTION_JWK)
        });
        let key_bytes = std::fs::read(&key_file)
            .map_err(|e| Error::Request(format!("cannot read {}: {e}", key_file.display())))?;
        let key = Jwk::from_bytes(key_bytes)
            .map_err(|_| Error::Request(format!("{} is not a JWK", key_file.display())))?;
        let registry = Registry::load(&self.conn.pki.join(REGISTRY))?;
        let mut session = Session::open(&self.conn)?;
        let view: Value = parse(
            &session.get(&format!("/v1/medical/responses/{}", self.response))?,
            "response",
        )?;
        let from = agency_field(&view, "from")?;
        let jws = view["jws"].as_str().unwrap_or_default();
        let body = delivered_body(jws, &from, &self.conn.agency, &registry)?;
        let request = body
            .get("request")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let payload = body
            .get("payload")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plain = jwe::decrypt(payload, &key).map_err(|e| {
            Error::Request(format!(
                "the response does not decrypt with {}: {e}",
                key_file.display()
            ))
        })?;
        let view = case(&mut session, &request, None)?;
        let signed = Signed::from_view(&view, &request, &self.conn.agency, &registry)?;
        // The answer must come from the agency the signed request asked,
        // not from any agency that found the request's id.
        if from != signed.holder {
            return Err(Error::Request(format!(
                "response {} is from {from}, but request {request} asked {}",
                self.response, signed.holder
            )));
        }
        let summary = bundle::validate(&plain, &signed.request.sections)
            .map_err(|e| Error::Request(format!("the decrypted bundle is not valid: {e}")))?;
        // The file (or a symlink there) is replaced by a rename: a device
        // or a pipe named here (`/dev/null`, `/dev/stdout`) would be
        // replaced by a regular file, not written to. Refused before
        // anything is printed.
        if let Some(path) = &self.out
            && std::fs::symlink_metadata(path)
                .is_ok_and(|m| !m.file_type().is_file() && !m.file_type().is_symlink())
        {
            return Err(Error::Request(format!(
                "{} exists and is not a regular file; --out names a file to create or replace",
                path.display()
            )));
        }
        emit_json(
            stdout,
            &Opened {
                request,
                response: self.response,
                from: from.to_string(),
                summary,
            },
        )?;
        match &self.out {
            // A health record: readable by this user only, and written
            // whole or not at all, never through a symlink.
            Some(path) => xgate_ledger::fsutil::write_atomic(path, &plain, 0o600)
                .map_err(|e| Error::Request(format!("cannot write {}: {e}", path.display()))),
            // One line, as every command prints: the bundle re-encoded
            // compactly (it parsed as JSON when validated).
            None => {
                let value: Value = serde_json::from_slice(&plain)
                    .map_err(|_| Error::Request("the decrypted bundle is not JSON".into()))?;
                emit_json(stdout, &value)
            }
        }
    }
}

impl ShowArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let mut session = Session::open(&self.conn)?;
        let view = case(&mut session, &self.request, self.requester.as_ref())?;
        emit_json(stdout, &view)
    }
}

impl ReviewArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let body = Review {
            request: self.request.clone(),
            outcome: self.outcome,
            note: self.note,
        };
        let map = checked(Kind::ReviewDecision, &body, |m| Review::parse(m).map(drop))?;
        let mut session = Session::open(&self.conn)?;
        let own = self.conn.agency.clone();
        let out = submit(
            &mut session,
            &own,
            Kind::ReviewDecision,
            map,
            self.jti,
            Some(self.request),
        )?;
        emit_json(stdout, &out)
    }
}

impl ReviewsArgs {
    fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let mut session = Session::open(&self.conn)?;
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(a) => format!("/v1/reviews?after={a}"),
                None => "/v1/reviews".to_owned(),
            };
            let page: Value = parse(&session.get(&path)?, "review page")?;
            all.extend(page["reviews"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_owned()),
                None => break,
            }
        }
        emit_json(stdout, &serde_json::json!({ "reviews": all }))
    }
}

/// A medical request as its signed envelope says, checked against the
/// agency's own copy of the registry.
pub(crate) struct Signed {
    /// Who asked: the envelope's `iss`.
    pub requester: AgencyId,
    /// Who was asked: its `aud`.
    pub holder: AgencyId,
    /// Its body (a sealed request's private fields are not opened here).
    pub request: Request,
    /// The public JWK answers are encrypted to: the body's JWK, or the
    /// requester's encryption key in the agency's own registry, by `kid`.
    pub reply_key: Map<String, Value>,
}

impl Signed {
    /// Request `jti` from the signed envelope in `view`, the gateway's
    /// answer to `GET /v1/medical/requests/{jti}`, for `me` (its requester
    /// or its holder): the envelope's signature is checked with the key
    /// `registry` (the caller's own copy) holds for the requester, it must
    /// be a `medical.request` named `jti` between the requester and `me`,
    /// and the view's own fields must say the same as the envelope, or
    /// the gateway's state was altered and nothing is taken from it.
    ///
    /// # Errors
    /// A view without the envelope, an envelope that does not check out, a
    /// reply key the registry does not hold, or a view that differs.
    pub fn from_view(
        view: &Value,
        jti: &str,
        me: &AgencyId,
        registry: &Registry,
    ) -> Result<Signed, Error> {
        let refused =
            |why: String| Error::Request(format!("request {jti}: {why}; nothing was sent"));
        let jws = view["jws"]
            .as_str()
            .ok_or_else(|| refused("the gateway's answer holds no signed request".into()))?;
        // The view names the requester; the signature then has to be that
        // agency's, by the registry's key, so a wrong name only fails.
        let requester = agency_field(view, "requester")?;
        let verifiers =
            Verifiers::from_registry(registry).map_err(|e| Error::Request(e.to_string()))?;
        let unlimited = Limits {
            max_lifetime: i64::MAX,
            skew: i64::MAX,
        };
        let envelope = xgate_server::envelope::open(
            jws.as_bytes(),
            &requester,
            &verifiers,
            registry,
            unlimited,
            0,
        )
        .map_err(|e| refused(format!("the signed request does not check out: {e}")))?;
        if envelope.kind != Kind::MedicalRequest || envelope.jti != jti {
            return Err(refused(format!(
                "the gateway's envelope is not the medical.request {jti}"
            )));
        }
        if &envelope.iss != me && &envelope.aud != me {
            return Err(refused("the signed request is not yours".into()));
        }
        let request = Request::parse(&envelope.body)
            .map_err(|e| refused(format!("the signed request is not valid: {e}")))?;
        let reply_key = match &request.reply_key {
            ReplyKey::Jwk(jwk) => jwk.clone(),
            ReplyKey::Kid(kid) => registry
                .get(&envelope.iss)
                .map(|a| &a.encryption_key)
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
                .cloned()
                .ok_or_else(|| {
                    refused(format!(
                        "its reply key is not {}'s encryption key in your registry",
                        envelope.iss
                    ))
                })?,
        };
        let signed = Signed {
            requester: envelope.iss,
            holder: envelope.aud,
            request,
            reply_key,
        };
        let differs = [
            ("requester", view["requester"] == signed.requester.as_str()),
            ("holder", view["holder"] == signed.holder.as_str()),
            (
                "sections",
                serde_json::to_value(&signed.request.sections).ok().as_ref()
                    == Some(&view["sections"]),
            ),
            (
                "reply_key",
                view["reply_key"] == Value::Object(signed.reply_key.clone()),
            ),
        ];
        if let Some((field, _)) = differs.iter().find(|(_, same)| !same) {
            return Err(refused(format!(
                "the gateway's view differs from the signed request in {field}: its stored \
                 state was altered, or its registry is not yours"
            )));
        }
        Ok(signed)
    }
}

/// Signs and submits a medical envelope; says what was made of it.
fn submit(
    session: &mut Session<'_>,
    aud: &AgencyId,
    kind: Kind,
    body: Map<String, Value>,
    jti: Option<String>,
    request: Option<String>,
) -> Result<Submitted, Error> {
    let (jti, created) = session.submit(aud, kind, body, jti)?;
    let receipt: Receipt = serde_json::from_value(Value::Object(created))
        .map_err(|e| Error::Request(format!("the gateway's answer is not a receipt: {e}")))?;
    Ok(Submitted {
        kind: kind.as_str(),
        request: request.unwrap_or_else(|| jti.clone()),
        jti,
        response: None,
        receipt,
    })
}

/// The gateway's view of request `jti`.
fn case(
    session: &mut Session<'_>,
    jti: &str,
    requester: Option<&AgencyId>,
) -> Result<Value, Error> {
    xgate_server::fields::token(jti, "the request id", xgate_server::envelope::MAX_JTI_LEN)
        .map_err(|e| Error::Request(e.to_string()))?;
    let path = match requester {
        Some(r) => format!("/v1/medical/requests/{jti}?requester={r}"),
        None => format!("/v1/medical/requests/{jti}"),
    };
    parse(&session.get(&path)?, "medical request")
}

fn agency_field(view: &Value, field: &str) -> Result<AgencyId, Error> {
    view[field]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Error::Request(format!("the gateway's answer names no valid {field}")))
}

/// `body` as a JSON object, after the field checks the gateway runs.
fn checked<T: Serialize, E: std::fmt::Display>(
    kind: Kind,
    body: &T,
    parse: impl Fn(&Map<String, Value>) -> Result<(), E>,
) -> Result<Map<String, Value>, Error> {
    let refused = |m: String| {
        Error::Request(format!(
            "the body of {kind} is not valid: {m}; nothing was sent"
        ))
    };
    let map = match serde_json::to_value(body) {
        Ok(Value::Object(map)) => map,
        _ => return Err(refused("it is not a JSON object".into())),
    };
    parse(&map).map_err(|e| refused(e.to_string()))?;
    Ok(map)
}

/// The `kid` of the agency's own registered encryption key.
fn own_kid(conn: &Connection) -> Result<String, Error> {
    let registry = Registry::load(&conn.pki.join(REGISTRY))?;
    registry
        .get(&conn.agency)
        .and_then(|a| a.encryption_key.get("kid"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::Request(format!(
                "{} has no registered encryption key kid; give --reply-key",
                conn.agency
            ))
        })
}

fn json_object(file: &PathBuf) -> Result<Map<String, Value>, Error> {
    let text = std::fs::read(file)
        .map_err(|e| Error::Request(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_slice(&text)
        .map_err(|_| Error::Request(format!("{} does not hold one JSON object", file.display())))
}

fn purpose(text: &str) -> Result<Purpose, String> {
    serde_json::from_value(Value::String(text.to_owned()))
        .map_err(|_| "the purpose must be ETREAT or TREAT".to_owned())
}

fn section(text: &str) -> Result<Section, String> {
    text.parse()
        .map_err(|e: crate::bundle::UnknownSection| e.to_string())
}

fn outcome(text: &str) -> Result<Outcome, String> {
    serde_json::from_value(Value::String(text.to_owned()))
        .map_err(|_| "the outcome must be appropriate or inappropriate".to_owned())
}

//! An agency's side of the API: a mutual-TLS HTTP client presenting the
//! agency's certificate, and an envelope signer using its signing JWK.
//! `xgate send` and `xgate inbox` are built on it, and so are the
//! end-to-end tests.
//!
//! One [`Client`] holds one connection (HTTP/2 if the gateway offers it,
//! else HTTP/1.1 keep-alive) and reconnects if it drops.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner};
use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use xgate_server::envelope::ENVELOPE_TYP;
use xgate_server::pki::{CA_CERT, SIGNING_JWK, TLS_CERT, TLS_KEY};
use xgate_server::registry::AgencyId;
use xgate_server::tls::{ALPN, provider};

/// Why a client call failed (as opposed to the gateway refusing it, which
/// is a response like any other).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A key or certificate file could not be used.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The gateway URL is not `https://host:port`.
    #[error("bad gateway URL {0:?}: use https://host:port")]
    Url(String),
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("{0}")]
    Transport(String),
}

/// Why an envelope (or an inner JWS) could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The JWK has no `kid`, so a verifier could not tell which key signed.
    #[error("the JWK has no kid")]
    NoKid,
    /// The JWK is neither an EC (ES256) nor an OKP (EdDSA) key.
    #[error("a {0} key cannot sign envelopes")]
    KeyType(String),
    /// josekit refused the key or the signature.
    #[error("{0}")]
    Jose(#[from] josekit::JoseError),
    /// The system clock reads before 1970, so `iat` cannot be set.
    #[error("the system clock is before 1970")]
    Clock,
    /// The system's random source failed, so no `jti` could be drawn.
    #[error("the system's random source failed: {0}")]
    Random(getrandom::Error),
    /// The claims could not be encoded.
    #[error("the claims cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Which HTTP version to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/2 if the gateway offers it (ALPN), else HTTP/1.1.
    Auto,
    /// HTTP/1.1 only.
    Http1,
}

/// A response: status, headers and body.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers (`Retry-After` on a 429, for one).
    pub headers: http::HeaderMap,
    /// The body bytes.
    pub body: Bytes,
    /// The negotiated protocol was HTTP/2.
    pub http2: bool,
}

impl Reply {
    /// The error code of a refusal's `{"error":{"code",...}}` body.
    pub fn error_code(&self) -> Option<String> {
        error_code(&self.body)
    }
}

/// The error code of a refusal's body, `{"error":{"code",...}}`; `None` if
/// the body is not one.
pub fn error_code(body: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body["error"]["code"].as_str().map(str::to_owned)
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A mutual-TLS connection to a gateway as one agency.
pub struct Client {
    config: Arc<ClientConfig>,
    authority: String,
    server_name: ServerName<'static>,
    sender: Option<Sender>,
}

impl Client {
    /// A client for agency `id` with the files of a PKI directory laid out
    /// by `xgate certs init`, for the gateway at `url`.
    ///
    /// # Errors
    /// [`ClientError::File`] or [`ClientError::Url`].
    pub fn for_agency(
        pki: &Path,
        id: &AgencyId,
        url: &str,
        protocol: Protocol,
    ) -> Result<Client, ClientError> {
        let home = pki.join(id.as_str());
        Client::new(
            &pki.join(CA_CERT),
            &home.join(TLS_CERT),
            &home.join(TLS_KEY),
            url,
            protocol,
        )
    }

    /// A client trusting the CA in `ca`, presenting the certificate `cert`
    /// with key `key`.
    ///
    /// # Errors
    /// [`ClientError::File`] or [`ClientError::Url`].
    pub fn new(
        ca: &Path,
        cert: &Path,
        key: &Path,
        url: &str,
        protocol: Protocol,
    ) -> Result<Client, ClientError> {
        let roots = roots(ca)?;
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(file(cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(file(cert))?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(file(key))?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der)
            .map_err(file(cert))?;
        Client::with_config(config, url, protocol)
    }

    /// A client trusting the CA in `ca` that presents no certificate: for
    /// the public listener, which serves the log as C2SP tlog-tiles to
    /// anyone.
    ///
    /// # Errors
    /// [`ClientError::File`] or [`ClientError::Url`].
    pub fn anonymous(ca: &Path, url: &str, protocol: Protocol) -> Result<Client, ClientError> {
        let roots = roots(ca)?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client::with_config(config, url, protocol)
    }

    /// The client for `url` over `config`, speaking `protocol`.
    fn with_config(
        mut config: ClientConfig,
        url: &str,
        protocol: Protocol,
    ) -> Result<Client, ClientError> {
        config.alpn_protocols = match protocol {
            Protocol::Auto => ALPN.iter().map(|p| p.to_vec()).collect(),
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
        };
        let uri: Uri = url.parse().map_err(|_| ClientError::Url(url.to_owned()))?;
        if uri.scheme_str() != Some("https") {
            return Err(ClientError::Url(url.to_owned()));
        }
        let host = uri.host().ok_or_else(|| ClientError::Url(url.to_owned()))?;
        let port = uri.port_u16().unwrap_or(443);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| ClientError::Url(url.to_owned()))?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Client {
            config: Arc::new(config),
            authority,
            server_name,
            sender: None,
        })
    }

    /// The TLS configuration its connections use (roots, the agency's
    /// certificate, ALPN, session resumption): for a caller that speaks
    /// HTTP over it itself, such as the bench's lean loop.
    pub fn tls_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The gateway's `host:port`, as connected to and sent in `Host`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The name the gateway's certificate is checked against.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// The same client, but every connection it opens makes a full
    /// handshake: no TLS session is resumed. For measuring handshakes.
    #[must_use]
    pub fn without_resumption(mut self) -> Client {
        let mut config = ClientConfig::clone(&self.config);
        config.resumption = rustls::client::Resumption::disabled();
        self.config = Arc::new(config);
        self
    }

    /// Submits one signed envelope (`POST /v1/envelopes`, a compact JWS).
    ///
    /// # Errors
    /// [`ClientError::Transport`] if no response arrived.
    pub async fn submit(&mut self, jws: String) -> Result<Reply, ClientError> {
        self.request(
            Method::POST,
            "/v1/envelopes",
            Some(xgate_server::http::JOSE),
            jws.into_bytes(),
        )
        .await
    }

    /// Sends one request and reads the whole response.
    ///
    /// # Errors
    /// [`ClientError::Transport`] if no response arrived.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        let authority = self.authority.clone();
        let sender = self.connected().await?;
        let mut builder = request_head(&authority, method, path, matches!(sender, Sender::H2(_)));
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        let req = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        // Wait until the connection can take a request: on HTTP/1.1 the
        // previous response's end may still be in flight, and sending
        // before then fails the request.
        let ready = match sender {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        };
        if let Err(e) = ready {
            self.sender = None;
            return Err(ClientError::Transport(format!(
                "the connection closed: {e}"
            )));
        }
        let (response, http2) = match sender {
            Sender::H1(s) => (s.send_request(req).await, false),
            Sender::H2(s) => (s.send_request(req).await, true),
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(ClientError::Transport(format!("request failed: {e}")));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport(format!("reading the response: {e}")))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
            http2,
        })
    }

    /// GETs `path` on a connection of its own, asking for `accept`, and
    /// returns the status with the body unread: for streams whose body does
    /// not end (Server-Sent Events), which [`Client::request`] would wait on
    /// for ever. Dropping the body closes the connection.
    ///
    /// # Errors
    /// [`ClientError::Transport`] if no response head arrived.
    pub async fn open_stream(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<(StatusCode, Incoming), ClientError> {
        let sender = self.open().await?;
        let req = request_head(
            &self.authority,
            Method::GET,
            path,
            matches!(sender, Sender::H2(_)),
        )
        .header(ACCEPT, accept)
        .body(Full::new(Bytes::new()))
        .map_err(|e| ClientError::Transport(e.to_string()))?;
        let response = match sender {
            Sender::H1(mut s) => s.send_request(req).await,
            Sender::H2(mut s) => s.send_request(req).await,
        }
        .map_err(|e| ClientError::Transport(format!("request failed: {e}")))?;
        Ok((response.status(), response.into_body()))
    }

    /// Opens a fresh connection now, returning whether it speaks HTTP/2;
    /// a handshake the gateway refuses is an error here.
    ///
    /// # Errors
    /// [`ClientError::Transport`] if the connection or handshake fails.
    pub async fn connect(&mut self) -> Result<bool, ClientError> {
        self.sender = None;
        Ok(matches!(self.connected().await?, Sender::H2(_)))
    }

    async fn connected(&mut self) -> Result<&mut Sender, ClientError> {
        let usable = match &self.sender {
            Some(Sender::H1(s)) => !s.is_closed(),
            Some(Sender::H2(s)) => !s.is_closed(),
            None => false,
        };
        if !usable {
            self.sender = Some(self.open().await?);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| ClientError::Transport("not connected".into()))
    }

    async fn open(&self) -> Result<Sender, ClientError> {
        let transport = |what: &str, e: &dyn std::fmt::Display| {
            ClientError::Transport(format!("{what} {}: {e}", self.authority))
        };
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| transport("cannot connect to", &e))?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| transport("TLS handshake with", &e))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| transport("HTTP/2 with", &e))?;
            tokio::spawn(conn);
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| transport("HTTP/1.1 with", &e))?;
            tokio::spawn(conn);
            Ok(Sender::H1(sender))
        }
    }
}

/// A request's method and target: on HTTP/2 an absolute URI (hyper sends
/// its authority as `:authority`); on HTTP/1.1 the origin form with a
/// `Host` header, which every HTTP/1.1 request must carry (RFC 9112
/// section 3.2).
fn request_head(
    authority: &str,
    method: Method,
    path: &str,
    http2: bool,
) -> http::request::Builder {
    let builder = Request::builder().method(method);
    if http2 {
        builder.uri(format!("https://{authority}{path}"))
    } else {
        builder.uri(path).header(HOST, authority)
    }
}

/// Signs envelopes as one agency.
#[derive(Debug)]
pub struct EnvelopeSigner {
    iss: AgencyId,
    kid: String,
    signer: Box<dyn JwsSigner>,
}

impl EnvelopeSigner {
    /// The signer for agency `id` from its `signing.jwk` in a PKI directory.
    ///
    /// # Errors
    /// [`ClientError::File`] if the JWK is missing or not an ES256 key.
    pub fn for_agency(pki: &Path, id: &AgencyId) -> Result<EnvelopeSigner, ClientError> {
        let path = pki.join(id.as_str()).join(SIGNING_JWK);
        let bytes = std::fs::read(&path).map_err(file(&path))?;
        let jwk = Jwk::from_bytes(bytes).map_err(file(&path))?;
        EnvelopeSigner::from_jwk(id.clone(), &jwk).map_err(file(&path))
    }

    /// The signer for `iss` with the private JWK `jwk` (ES256 or EdDSA).
    ///
    /// # Errors
    /// [`SignError`] if the JWK is not a private signing key with a `kid`.
    pub fn from_jwk(iss: AgencyId, jwk: &Jwk) -> Result<EnvelopeSigner, SignError> {
        let kid = jwk.key_id().ok_or(SignError::NoKid)?.to_owned();
        let signer: Box<dyn JwsSigner> = match jwk.key_type() {
            "EC" => Box::new(josekit::jws::ES256.signer_from_jwk(jwk)?),
            "OKP" => Box::new(josekit::jws::EdDSA.signer_from_jwk(jwk)?),
            other => return Err(SignError::KeyType(other.to_owned())),
        };
        Ok(EnvelopeSigner { iss, kid, signer })
    }

    /// The agency this signer signs as.
    pub fn iss(&self) -> &AgencyId {
        &self.iss
    }

    /// Signs an envelope of `kind` to `aud` with `body`, valid from now for
    /// `lifetime` seconds, with `jti` (a fresh random one if `None`).
    ///
    /// # Errors
    /// [`SignError`] if signing fails.
    pub fn sign(
        &self,
        aud: &AgencyId,
        kind: &str,
        body: Map<String, Value>,
        lifetime: i64,
        jti: Option<String>,
    ) -> Result<String, SignError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError::Clock)?
            .as_secs() as i64;
        let jti = match jti {
            Some(j) => j,
            None => random_jti()?,
        };
        let claims = serde_json::json!({
            "iss": self.iss.as_str(),
            "aud": aud.as_str(),
            "jti": jti,
            "iat": iat,
            "exp": iat + lifetime,
            "kind": kind,
            "body": body,
        });
        let payload = serde_json::to_vec(&claims)?;
        self.sign_typed(ENVELOPE_TYP, &payload)
    }

    /// Signs `payload` as a compact JWS with header `typ` and this agency's
    /// `kid` and algorithm: an envelope ([`EnvelopeSigner::sign`]), or the
    /// inner JWS of a sealed part ([`xgate_server::sealed`]).
    ///
    /// # Errors
    /// [`SignError::Jose`] if signing fails.
    pub fn sign_typed(&self, typ: &str, payload: &[u8]) -> Result<String, SignError> {
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&self.kid);
        Ok(josekit::jws::serialize_compact(
            payload,
            &header,
            self.signer.as_ref(),
        )?)
    }
}

/// 128 random bits, base64url: a `jti` nobody else will pick.
///
/// # Errors
/// [`SignError::Random`] if the system's random source fails.
pub fn random_jti() -> Result<String, SignError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(SignError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The CA certificates in `ca`, as the roots a client trusts.
fn roots(ca: &Path) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(file(ca))? {
        roots.add(c.map_err(file(ca))?).map_err(file(ca))?;
    }
    Ok(roots)
}

fn file<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> ClientError + '_ {
    move |e| ClientError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

//! Fetching a log's resources: `GET <prefix>/<path>` over HTTPS (trusting
//! one CA, no client certificate) or plain HTTP.
//!
//! Nothing fetched is trusted: every byte is checked against a signed
//! checkpoint by the callers, so the transport only has to deliver bytes.
//! HTTPS keeps who reads what from the network; plain `http://` is
//! accepted because tlog-tiles authenticates its resources by signatures
//! and hashes, not by the channel. One HTTP/1.1 keep-alive connection,
//! reopened when it drops. Bodies may come `Content-Encoding: gzip` (the
//! spec lets a log compress entry bundles without negotiation).

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, HOST};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest response accepted, before and after decompression: a full
/// entry bundle of 256 entries of at most 65,535 bytes each, and change.
pub const MAX_BODY: usize = 256 * (2 + 65_535) + 4096;

/// Why a resource could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The prefix is not an `https://` or `http://` URL, or HTTPS was asked
    /// for without a CA to trust.
    #[error("bad log URL {url:?}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The CA file could not be used.
    #[error("{path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("{0}")]
    Transport(String),
    /// The log answered with a status other than 200 or 404.
    #[error("GET {path}: the log answered {status}")]
    Status {
        /// The resource's path.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is larger than [`MAX_BODY`] or its encoding is not one we
    /// asked for.
    #[error("GET {path}: {why}")]
    Body {
        /// The resource's path.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// A connection to one log's prefix.
pub struct Fetcher {
    /// `host:port`, for connecting and the `Host` header.
    authority: String,
    /// The path part of the prefix, without a trailing slash.
    base: String,
    /// TLS configuration and the name to check the certificate for; `None`
    /// for plain HTTP.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    sender: Option<http1::SendRequest<Empty<Bytes>>>,
}

impl Fetcher {
    /// A fetcher for the log at `prefix` (`https://host[:port][/path]` or
    /// `http://...`); `ca` is the PEM file of the CA to trust for HTTPS.
    ///
    /// # Errors
    /// [`FetchError::Url`] or [`FetchError::Ca`].
    pub fn new(prefix: &str, ca: Option<&Path>) -> Result<Fetcher, FetchError> {
        let bad = |why| FetchError::Url {
            url: prefix.to_owned(),
            why,
        };
        let uri: Uri = prefix.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("use https:// (or http://)")),
        };
        if uri.query().is_some() {
            return Err(bad("a log prefix has no query"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let authority = if bare.contains(':') {
            format!("[{bare}]:{port}")
        } else {
            format!("{bare}:{port}")
        };
        let tls = if https {
            let ca = ca.ok_or_else(|| bad("https needs --ca FILE, the CA to trust"))?;
            let name = ServerName::try_from(bare.to_owned()).map_err(|_| bad("bad host name"))?;
            Some((Arc::new(tls_config(ca)?), name))
        } else {
            None
        };
        Ok(Fetcher {
            authority,
            base: uri.path().trim_end_matches('/').to_owned(),
            tls,
            sender: None,
        })
    }

    /// GETs `path` (relative to the prefix, no leading slash): the body on
    /// 200, `None` on 404.
    ///
    /// # Errors
    /// [`FetchError::Transport`], [`FetchError::Status`] for any other
    /// status, [`FetchError::Body`].
    pub async fn get(&mut self, path: &str) -> Result<Option<Bytes>, FetchError> {
        let target = format!("{}/{path}", self.base);
        let request = Request::get(target)
            .header(HOST, &self.authority)
            .header(ACCEPT_ENCODING, "gzip, identity")
            .body(Empty::new())
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let sender = self.connected().await?;
        if let Err(e) = sender.ready().await {
            self.sender = None;
            return Err(FetchError::Transport(format!("the connection closed: {e}")));
        }
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(FetchError::Transport(format!("GET {path}: {e}")));
            }
        };
        let status = response.status();
        let gzip = match response.headers().get(CONTENT_ENCODING) {
            None => false,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"identity") => false,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"gzip") => true,
            Some(_) => {
                self.sender = None;
                return Err(body_error(path, "a content encoding other than gzip"));
            }
        };
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                self.sender = None;
                body_error(path, &format!("reading the body: {e}"))
            })?
            .to_bytes();
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            other => {
                return Err(FetchError::Status {
                    path: path.to_owned(),
                    status: other.as_u16(),
                });
            }
        }
        if !gzip {
            return Ok(Some(body));
        }
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut plain)
            .map_err(|e| body_error(path, &format!("bad gzip: {e}")))?;
        if plain.len() > MAX_BODY {
            return Err(body_error(path, "the body is too large"));
        }
        Ok(Some(Bytes::from(plain)))
    }

    async fn connected(&mut self) -> Result<&mut http1::SendRequest<Empty<Bytes>>, FetchError> {
        if self
            .sender
            .as_ref()
            .is_none_or(http1::SendRequest::is_closed)
        {
            self.sender = Some(self.open().await?);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| FetchError::Transport("not connected".into()))
    }

    async fn open(&self) -> Result<http1::SendRequest<Empty<Bytes>>, FetchError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            FetchError::Transport(format!("{what} {}: {e}", self.authority))
        };
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| failed("cannot connect to", &e))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((config, name)) => {
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| failed("TLS handshake with", &e))?;
                let (sender, conn) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| failed("HTTP/1.1 with", &e))?;
                tokio::spawn(conn);
                Ok(sender)
            }
            None => {
                let (sender, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| failed("HTTP/1.1 with", &e))?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    }
}

/// A client configuration trusting only the CA certificates in `ca`.
fn tls_config(ca: &Path) -> Result<ClientConfig, FetchError> {
    let file = |e: &dyn std::fmt::Display| FetchError::Ca {
        path: ca.display().to_string(),
        message: e.to_string(),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| file(&e))? {
        roots
            .add(cert.map_err(|e| file(&e))?)
            .map_err(|e| file(&e))?;
    }
    if roots.is_empty() {
        return Err(file(&"no certificate in the file"));
    }
    let mut config = ClientConfig::builder_with_provider(xgate_server::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Transport(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn body_error(path: &str, why: &str) -> FetchError {
    FetchError::Body {
        path: path.to_owned(),
        why: why.to_owned(),
    }
}

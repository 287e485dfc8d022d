//! The auditor's page (issue 24): a page and its scripts, embedded in the
//! binary and served by the public listener beside the tiles, so anyone
//! with a browser can read the log and verify a receipt against it without
//! trusting this gateway (the scripts check every byte themselves, with
//! keys the auditor types or pins). No I/O, no personal data: the page
//! reads what the listener already serves to anyone.
//!
//! ```text
//! GET /                   the page (text/html)
//! GET /audit/audit.js     its script (text/javascript)
//! GET /audit/tlog.js      the verifier it runs: RFC 9162, signed notes,
//!                         cosignatures, tlog-tiles, receipts
//! GET /audit/audit.css    its style (text/css)
//! GET /audit/witnesses     what it shows of the witnesses (JSON)
//! ```

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use http_body_util::Full;

/// One file of a page (this one, or the agency console's), embedded in
/// the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    /// An HTML page.
    pub const fn html(body: &'static [u8]) -> Asset {
        Asset {
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    /// A script (an ES module).
    pub const fn script(body: &'static [u8]) -> Asset {
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body,
        }
    }

    /// A style sheet.
    pub const fn style(body: &'static [u8]) -> Asset {
        Asset {
            content_type: "text/css; charset=utf-8",
            body,
        }
    }

    /// Its bytes.
    pub fn body(&self) -> &'static [u8] {
        self.body
    }
}

const PAGE: Asset = Asset::html(include_bytes!("../../../web/index.html"));
const SCRIPT: Asset = Asset::script(include_bytes!("../../../web/audit.js"));
/// The verifier both pages run (RFC 9162, signed notes, receipts).
pub const VERIFIER: Asset = Asset::script(include_bytes!("../../../web/tlog.js"));
const STYLE: Asset = Asset::style(include_bytes!("../../../web/audit.css"));

/// What a page may load and run: only itself, from the origin that served
/// it. No inline script, no other origin, never inside a frame. The agency
/// console's page is held to the same.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The headers every page response carries: `cache` as its
/// `Cache-Control`, [`POLICY`], never sniffed, framed, or sent a referrer
/// from.
pub fn protect(headers: &mut http::HeaderMap, cache: &'static str) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    for (name, value) in [
        ("content-security-policy", POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// The page file a request names, if it names one: `GET` (or `HEAD`) of
/// an exact path; anything else is not the page's.
pub fn asset(method: &Method, uri: &Uri) -> Option<Asset> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    match uri.path() {
        "/" => Some(PAGE),
        "/audit/audit.js" => Some(SCRIPT),
        "/audit/tlog.js" => Some(VERIFIER),
        "/audit/audit.css" => Some(STYLE),
        _ => None,
    }
}

/// Whether the request is `GET` (or `HEAD`) `/audit/witnesses`.
pub fn names_witnesses(method: &Method, uri: &Uri) -> bool {
    (method == Method::GET || method == Method::HEAD) && uri.path() == "/audit/witnesses"
}

/// The witnesses' state (`board`, from
/// [`crate::witnessing::WitnessBoard::to_json`]) as JSON, never cached.
pub fn witnesses(board: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(board.to_string())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    protect(headers, "no-store");
    response
}

/// The response serving `asset`: revalidated on every load (a new binary
/// may serve new scripts).
pub fn response(asset: Asset) -> Response<Full<Bytes>> {
    serve(asset, "no-cache")
}

/// The response serving `asset` with `cache` as its `Cache-Control`, under
/// [`protect`].
pub fn serve(asset: Asset, cache: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    protect(headers, cache);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(method: Method, target: &str) -> Option<Asset> {
        asset(&method, &target.parse().expect("a request target"))
    }

    #[test]
    fn only_the_exact_paths_name_the_page_and_its_files() {
        assert_eq!(named(Method::GET, "/"), Some(PAGE));
        assert_eq!(named(Method::GET, "/?size=3"), Some(PAGE));
        assert_eq!(named(Method::GET, "/audit/tlog.js"), Some(VERIFIER));
        assert_eq!(named(Method::HEAD, "/audit/audit.css"), Some(STYLE));
        for path in [
            "/index.html",
            "//",
            "/audit/",
            "/audit/../audit/tlog.js",
            "/audit/tlog.js/",
            "/audit/TLOG.js",
            "/audit/%74log.js",
            "/checkpoint",
        ] {
            assert_eq!(named(Method::GET, path), None, "{path}");
        }
        assert_eq!(named(Method::POST, "/"), None);
    }

    #[test]
    fn the_page_runs_nothing_from_elsewhere() {
        let page = std::str::from_utf8(PAGE.body).expect("utf-8");
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<script>"), "no inline script");
        let response = response(PAGE);
        assert_eq!(
            response.headers()["content-security-policy"],
            HeaderValue::from_static(POLICY)
        );
    }
}

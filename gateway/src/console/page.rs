//! The console's page: its files, embedded in the binary, and the headers
//! they are served with.
//!
//! ```text
//! GET /                      the page (text/html)
//! GET /console/console.js    its script
//! GET /console/tlog.js       the receipt verifier the auditor's page runs
//! GET /console/console.css   its style
//! ```
//!
//! The files are public (they hold nothing of the agency's): what the
//! token guards is `/api/`, which acts with the agency's keys.

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;
pub use xgate_server::public_log::page::protect;
use xgate_server::public_log::page::{Asset, VERIFIER, serve};

/// One file of the page.
pub type File = Asset;

const PAGE: File = Asset::html(include_bytes!("../../web/console.html"));
const SCRIPT: File = Asset::script(include_bytes!("../../web/console.js"));
const STYLE: File = Asset::style(include_bytes!("../../web/console.css"));

/// The file `method` of `path` names, if any: exact paths only.
pub fn file(method: &Method, path: &str) -> Option<File> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    match path {
        "/" => Some(PAGE),
        "/console/console.js" => Some(SCRIPT),
        "/console/tlog.js" => Some(VERIFIER),
        "/console/console.css" => Some(STYLE),
        _ => None,
    }
}

/// The response serving `file`: never stored, under the auditor's page's
/// policy ([`protect`]: only this origin, no inline script, no frames, no
/// referrer).
pub fn response(file: File) -> Response<Full<Bytes>> {
    serve(file, "no-store")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_paths_name_a_file() {
        assert_eq!(file(&Method::GET, "/"), Some(PAGE));
        assert_eq!(file(&Method::HEAD, "/console/tlog.js"), Some(VERIFIER));
        for path in [
            "/index.html",
            "/console/",
            "/console/../console/console.js",
            "/api/run",
        ] {
            assert_eq!(file(&Method::GET, path), None, "{path}");
        }
        assert_eq!(file(&Method::POST, "/"), None);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let page = std::str::from_utf8(PAGE.body()).expect("utf-8");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "inline script");
    }
}

//! Which request names which resource of the log, and how each class of
//! resource is served (C2SP tlog-tiles). No I/O.
//!
//! A request names a resource only as `GET` of `/` followed by the exact
//! spelling [`tlog::path::parse`] accepts: `checkpoint`,
//! `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`. Every other
//! method, path or spelling of a path (leading zeros, `x000/` groups,
//! `..`, doubled or trailing slashes, percent-encoding) names nothing and
//! is answered 404: the path is parsed, never joined onto a directory.
//!
//! A query string is not part of the path (RFC 3986) and is ignored, as
//! the static file servers tlog-tiles is designed for ignore it: the spec
//! gives it no meaning and does not ask for a refusal.

use http::header::HeaderValue;
use http::{Method, Uri};
use xgate_ledger::tlog::path;
use xgate_ledger::tlog::{Resource, Width};

/// `Cache-Control` of tiles and entry bundles: the spec's "This endpoint is
/// immutable, so its caching headers SHOULD be long-lived". A partial
/// tile's bytes never change either (`.p/<W>` names the first `W` hashes,
/// written once, never rewritten); it may only disappear once the full
/// tile exists, and clients fall back to that (spec: "MAY fetch the full
/// tile in parallel as a fallback").
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of the checkpoint, the one mutable resource (the spec:
/// "its headers SHOULD prevent caching beyond a few seconds"), and of
/// every error, so that no cache keeps a 404 for a tile that exists later.
pub const NO_STORE: &str = "no-store";
/// `Content-Type` of the checkpoint (exact, from the spec).
pub const CHECKPOINT_TYPE: &str = "text/plain; charset=utf-8";
/// `Content-Type` of tiles and entry bundles (exact, from the spec).
pub const TILE_TYPE: &str = "application/octet-stream";

/// The resource a request names, if it names one.
pub fn resource(method: &Method, uri: &Uri) -> Option<Resource> {
    if method != Method::GET {
        return None;
    }
    path::parse(uri.path().strip_prefix('/')?)
}

/// The resource class, as the metrics label it: `checkpoint`, `tile`,
/// `tile_partial`, `entries`, `entries_partial`, or `other` for a request
/// that names no resource.
pub fn class(resource: Option<&Resource>) -> &'static str {
    match resource {
        None => "other",
        Some(Resource::Checkpoint) => "checkpoint",
        Some(Resource::Tile {
            width: Width::Full, ..
        }) => "tile",
        Some(Resource::Tile { .. }) => "tile_partial",
        Some(Resource::Bundle {
            width: Width::Full, ..
        }) => "entries",
        Some(Resource::Bundle { .. }) => "entries_partial",
    }
}

/// `Content-Type` and `Cache-Control` of a resource served.
pub fn headers(resource: &Resource) -> (HeaderValue, HeaderValue) {
    match resource {
        Resource::Checkpoint => (
            HeaderValue::from_static(CHECKPOINT_TYPE),
            HeaderValue::from_static(NO_STORE),
        ),
        Resource::Tile { .. } | Resource::Bundle { .. } => (
            HeaderValue::from_static(TILE_TYPE),
            HeaderValue::from_static(IMMUTABLE),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(method: Method, target: &str) -> Option<Resource> {
        let uri: Uri = target.parse().expect("a request target");
        resource(&method, &uri)
    }

    #[test]
    fn get_of_the_spec_paths_names_their_resource() {
        assert_eq!(
            named(Method::GET, "/checkpoint"),
            Some(Resource::Checkpoint)
        );
        assert_eq!(
            named(Method::GET, "/tile/0/x001/x234/067"),
            Some(Resource::Tile {
                level: 0,
                index: 1_234_067,
                width: Width::Full
            })
        );
        assert_eq!(
            named(Method::GET, "/tile/2/000.p/1"),
            Some(Resource::Tile {
                level: 2,
                index: 0,
                width: Width::Partial(1)
            })
        );
        assert_eq!(
            named(Method::GET, "/tile/entries/x001/002.p/255"),
            Some(Resource::Bundle {
                index: 1002,
                width: Width::Partial(255)
            })
        );
        // The query is no part of the path.
        assert_eq!(
            named(Method::GET, "/checkpoint?t=1"),
            Some(Resource::Checkpoint)
        );
        // An absolute-form target names the same path.
        assert_eq!(
            named(Method::GET, "https://log.example/tile/entries/000"),
            Some(Resource::Bundle {
                index: 0,
                width: Width::Full
            })
        );
    }

    #[test]
    fn anything_else_names_nothing() {
        for method in [
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
        ] {
            assert_eq!(named(method.clone(), "/checkpoint"), None, "{method}");
        }
        for target in [
            "/",
            "*",
            "//checkpoint",
            "/checkpoint/",
            "/Checkpoint",
            "/v1/log/checkpoint",
            "/tile/0/0",
            "/tile/0/000/",
            "/tile/00/000",
            "/tile/0/x000/001",
            "/tile/0/000.p/0",
            "/tile/0/000.p/256",
            "/tile/0/000.p/07",
            "/tile/64/000",
            "/tile/../checkpoint",
            "/tile/0/../../checkpoint",
            "/tile/entries/../0/000",
            "/tile/%30/000",
            "/tile/0/%30%30%30",
            "/%63heckpoint",
            "/tile/entries/000.p/",
            "/tile/entries",
            "/tile",
            "/metrics",
            "/healthz",
        ] {
            assert_eq!(named(Method::GET, target), None, "{target}");
        }
    }

    #[test]
    fn classes_and_headers_follow_the_spec() {
        let full = Resource::Tile {
            level: 1,
            index: 0,
            width: Width::Full,
        };
        let partial = Resource::Bundle {
            index: 0,
            width: Width::Partial(3),
        };
        assert_eq!(class(Some(&Resource::Checkpoint)), "checkpoint");
        assert_eq!(class(Some(&full)), "tile");
        assert_eq!(class(Some(&partial)), "entries_partial");
        assert_eq!(class(None), "other");
        let (kind, cache) = headers(&Resource::Checkpoint);
        assert_eq!(kind, "text/plain; charset=utf-8");
        assert_eq!(cache, "no-store");
        for r in [full, partial] {
            let (kind, cache) = headers(&r);
            assert_eq!(kind, "application/octet-stream");
            assert_eq!(cache, "public, max-age=31536000, immutable");
        }
    }
}

//! The web UI at `/`: the files Vite built (`ui/dist`), embedded at build
//! time by `build.rs`. Hashed files under `/assets/` are cached for good;
//! any other path that is not the API's answers `index.html`, whose script
//! routes on the client (`/catalog/default/component/x`, `/scorecards`...),
//! so every page of the UI can be linked to and reloaded.

use axum::http::header::{
    ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub(crate) struct Asset {
    pub path: &'static str,
    pub media_type: &'static str,
    pub body: &'static [u8],
    /// The same, gzipped, when that is smaller.
    pub gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// What `/` answers when the binary was built without the UI.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Catalog</title></head><body><main><h1>Catalog</h1><p>This build has no web UI: \
build it with <code>scripts/ui</code> (Node.js 20 and npm), then build the binary again. \
The API answers under <a href=\"/api/openapi.json\">/api</a>.</p></main></body></html>";

/// The UI's pages may load only their own scripts and styles and talk only
/// to this server; xyflow and Chart.js set inline styles.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether `path` belongs to the API (or the agents' endpoint) rather
/// than the UI: those keep their JSON 404.
fn is_api(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path == "/mcp"
        || path.starts_with("/mcp/")
        || path == "/metrics"
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The fallback of every path no route serves: a UI file, the UI's page,
/// or the API's 404.
pub(crate) async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if is_api(path) || (method != Method::GET && method != Method::HEAD) {
        return crate::error::not_found(method, uri).await.into_response();
    }
    if let Some(asset) = find(path).filter(|a| a.path != "/index.html") {
        let immutable = path.starts_with("/assets/");
        return send(asset, &headers, immutable, method == Method::HEAD);
    }
    // A missing file (its name has an extension) is a 404; anything else is
    // a page of the UI, when the client takes HTML.
    let last = path.rsplit('/').next().unwrap_or("");
    let wants_html = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.contains("text/html") || v.contains("*/*"));
    if last.contains('.') || path.starts_with("/assets/") || !wants_html {
        return crate::error::not_found(method, uri).await.into_response();
    }
    match find("/index.html") {
        Some(index) => send(index, &headers, false, method == Method::HEAD),
        None => (
            StatusCode::OK,
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            NOT_BUILT,
        )
            .into_response(),
    }
}

fn send(asset: &'static Asset, headers: &HeaderMap, immutable: bool, head: bool) -> Response {
    let gzip_ok = headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let (body, gzipped) = match asset.gzip {
        Some(gz) if gzip_ok => (gz, true),
        _ => (asset.body, false),
    };
    let mut response = if head {
        StatusCode::OK.into_response()
    } else {
        body.into_response()
    };
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if asset.media_type.starts_with("text/html") {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    if asset.gzip.is_some() {
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzipped {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// Whether an `Accept-Encoding` value takes gzip (not refused with q=0).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|part| {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        let refused = it.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// Whether this binary carries a built UI.
pub fn built() -> bool {
    find("/index.html").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip(""));
    }

    #[test]
    fn api_paths_are_not_the_uis() {
        for p in ["/api", "/api/catalog/entities", "/mcp", "/metrics"] {
            assert!(is_api(p), "{p}");
        }
        for p in ["/", "/catalog/default/component/x", "/apis", "/scorecards"] {
            assert!(!is_api(p), "{p}");
        }
    }
}

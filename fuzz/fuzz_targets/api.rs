//! The HTTP API as a client may call it: any route, path segments, query
//! string, headers and body. Every parser behind it (filters, predicates,
//! cursors, fields, order, location and exemption bodies, dry runs, tokens)
//! answers a client error or a result, never a panic or a 500.
#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
struct Call {
    route: u8,
    segments: Vec<String>,
    query: String,
    body: Vec<u8>,
    json: bool,
    token: Option<bool>,
}

/// Percent-encodes what a path segment or query may not hold as is.
fn escape(s: &str, keep: &[u8]) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|call: Call| {
    let routes = query::routes();
    let (method, template) = &routes[usize::from(call.route) % routes.len()];
    let mut segments = call.segments.iter();
    let path: Vec<String> = template
        .split('/')
        .map(|part| {
            if part.starts_with('{') {
                escape(segments.next().map_or("x", String::as_str), b"")
            } else {
                part.to_owned()
            }
        })
        .collect();
    let mut uri = path.join("/");
    if !call.query.is_empty() {
        uri.push('?');
        uri.push_str(&escape(&call.query, b"=&,:"));
    }
    let mut req = Request::builder().method(method.clone()).uri(&uri);
    if call.json {
        req = req.header("content-type", "application/json");
    }
    match call.token {
        Some(true) => {
            req = req.header(
                "authorization",
                format!("Bearer {}", catalog_fuzz::ADMIN_TOKEN),
            )
        }
        Some(false) => req = req.header("authorization", "Bearer not-a-token"),
        None => {}
    }
    let Ok(req) = req.body(Body::from(call.body)) else {
        return;
    };
    let status = catalog_fuzz::runtime().block_on(async {
        let resp = catalog_fuzz::app()
            .clone()
            .oneshot(req)
            .await
            .expect("the router answers");
        let status = resp.status();
        let endless = resp
            .headers()
            .get("content-type")
            .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
        if endless {
            // An event stream (the change feed) never ends by itself.
            return status;
        }
        // Read the whole answer: a streamed body fails here if it fails.
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("the body streams to its end");
        status
    });
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{} {uri}",
        method
    );
});

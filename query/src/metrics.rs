//! The query service's metrics, named in one place, and the middleware
//! that records them.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Requests answered, by route template and status code.
pub const REQUESTS: &str = "catalog_http_requests_total";
/// Time to answer, by route template.
pub const REQUEST_SECONDS: &str = "catalog_http_request_seconds";

pub fn describe() {
    metrics::describe_counter!(REQUESTS, "HTTP requests answered, by route and status");
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "time to answer an HTTP request, by route"
    );
}

/// Middleware: counts and times every request by its route template (not
/// the raw path, which would explode the label set).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(REQUESTS, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    resp
}

//! The one error type of the API and its one mapping to Backstage's error
//! body:
//!
//! ```json
//! {"error": {"name": "NotFoundError", "message": "..."},
//!  "request": {"method": "GET", "url": "/api/catalog/..."},
//!  "response": {"statusCode": 404}}
//! ```
//!
//! A handler's response does not know the request, so [`ApiError`] leaves
//! an [`ErrorInfo`] in the response extensions and [`with_request`] (a
//! middleware around every route) writes the final body with the request's
//! method and URL.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 `NotFoundError`.
    #[error("{0}")]
    NotFound(String),
    /// 400 `InputError`: a parameter or body the API cannot accept.
    #[error("{0}")]
    Input(String),
    /// 401 `AuthenticationError`: no or a wrong token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `NotAllowedError`: this process does not allow that.
    #[error("{0}")]
    Forbidden(String),
    /// 429 `TooManyRequestsError`, with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 413 `PayloadTooLargeError`.
    #[error("{0}")]
    TooLarge(String),
    /// 409 `ConflictError`.
    #[error("{0}")]
    Conflict(String),
    /// 503 `ServiceUnavailableError`: this process cannot do that.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the detail is logged, the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "NotFoundError", m.clone()),
            ApiError::Input(m) => (StatusCode::BAD_REQUEST, "InputError", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "ConflictError", m.clone()),
            ApiError::Unauthorized(m) => {
                (StatusCode::UNAUTHORIZED, "AuthenticationError", m.clone())
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "NotAllowedError", m.clone()),
            ApiError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeError",
                m.clone(),
            ),
            ApiError::TooManyRequests { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsError",
                message.clone(),
            ),
            ApiError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableError",
                m.clone(),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "Internal server error".to_string(),
            ),
        }
    }
}

impl From<projector::StoreError> for ApiError {
    fn from(e: projector::StoreError) -> Self {
        ApiError::Internal(format!("store: {e}"))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("blocking task: {e}"))
    }
}

/// What [`with_request`] needs to write the final body.
#[derive(Debug, Clone)]
struct ErrorInfo {
    name: &'static str,
    message: String,
}

fn body(info: &ErrorInfo, status: StatusCode, request: Option<(&Method, &str)>) -> Vec<u8> {
    let mut v = json!({
        "error": {"name": info.name, "message": info.message},
        "response": {"statusCode": status.as_u16()},
    });
    if let Some((method, url)) = request {
        v["request"] = json!({"method": method.as_str(), "url": url});
    }
    serde_json::to_vec(&v).expect("json values serialise")
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, name, message) = self.parts();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let info = ErrorInfo { name, message };
        // Complete without the request part, in case the middleware is not
        // in place; `with_request` rewrites it.
        let mut resp = json_response(status, body(&info, status, None));
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if let ApiError::Unauthorized(_) = &self {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"catalog\""),
            );
        }
        resp.extensions_mut().insert(info);
        resp
    }
}

/// Middleware: completes error bodies with the request's method and URL.
pub(crate) async fn with_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let url = req.uri().path_and_query().map_or_else(
        || req.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let resp = next.run(req).await;
    let info = match resp.extensions().get::<ErrorInfo>().cloned() {
        Some(info) => info,
        // A body over the limit, refused by an extractor before a handler
        // could say so.
        None if resp.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorInfo {
            name: "PayloadTooLargeError",
            message: TOO_LARGE.into(),
        },
        None => return resp,
    };
    let (mut parts, _) = resp.into_parts();
    let bytes = body(&info, parts.status, Some((&method, &url)));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Why a body over `serve.max_body_bytes` is refused.
const TOO_LARGE: &str = "the request body is larger than this API accepts (serve.max_body_bytes)";

/// A request body an extractor could not read: too large (413), or else
/// what `malformed` makes of the reason.
pub(crate) fn unreadable_body(
    e: &axum::extract::rejection::BytesRejection,
    malformed: impl FnOnce(String) -> ApiError,
) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(TOO_LARGE.into()),
        _ => malformed(e.body_text()),
    }
}

/// Middleware: a request whose response has not started after `limit`
/// answers 503 (a streamed body, once started, is not cut).
pub(crate) async fn with_timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Unavailable(format!(
            "the request took longer than {} s (serve.request_timeout_secs)",
            limit.as_secs()
        ))
        .into_response(),
    }
}

/// The fallback of unknown paths.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("No route for {method} {}", uri.path()))
}

//! Health, metrics and the OpenAPI document.

use crate::AppState;
use crate::error::ApiError;
use crate::respond::{json, json_status};
use crate::views;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET /livez`: the process answers.
#[utoipa::path(
    get,
    path = "/livez",
    operation_id = "Livez",
    tag = "Operations",
    description = "Liveness: 200 while the process answers.",
    responses(
        (status = 200, description = "Ok", body = inline(views::LivezResponse))
    )
)]
pub async fn livez() -> Response {
    json(&json!({"live": true}))
}

/// `GET /readyz`: 200 once the projector knows its lag, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "Readyz",
    tag = "Operations",
    description = "Readiness: 200 once the projector knows its lag (messages not yet applied), else 503.",
    responses(
        (status = 200, description = "Ok", body = inline(views::ReadyzResponse)),
        (status = 503, description = "Not ready", body = inline(views::ReadyzResponse503))
    )
)]
pub async fn readyz(State(st): State<AppState>) -> Response {
    match (st.lag)() {
        Ok(lag) => json(&json!({"ready": true, "lag": lag})),
        Err(reason) => json_status(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::to_vec(&json!({"ready": false, "lag": null, "reason": reason}))
                .expect("json serialises"),
        ),
    }
}

/// `GET /metrics`: Prometheus text, when a recorder is installed.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "Metrics",
    tag = "Operations",
    description = "Prometheus metrics (text exposition format).",
    responses(
        (status = 200, description = "Ok", body = String, content_type = "text/plain"),
        (status = 404, response = views::ErrorResponse)
    )
)]
pub async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let Some(handle) = &st.metrics else {
        return Err(ApiError::NotFound(
            "No metrics recorder is installed".into(),
        ));
    };
    let mut resp = handle.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

/// `GET /api/openapi.json`
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "OpenApi",
    tag = "Operations",
    description = "This document.",
    responses(
        (status = 200, description = "Ok", body = Object)
    )
)]
pub async fn openapi() -> Response {
    crate::respond::json_bytes(crate::openapi_json().as_bytes().to_vec())
}

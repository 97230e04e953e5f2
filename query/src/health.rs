//! Health, metrics and the OpenAPI document.

use crate::AppState;
use crate::error::ApiError;
use crate::respond::{json, json_status};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET /livez`: the process answers.
pub async fn livez() -> Response {
    json(&json!({"live": true}))
}

/// `GET /readyz`: 200 once the projector knows its lag, else 503.
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
pub async fn openapi() -> Response {
    crate::respond::json_bytes(crate::OPENAPI_JSON.as_bytes().to_vec())
}

//! Small helpers to build responses from stored JSON without re-parsing it.

use crate::error::ApiError;
use crate::project::project;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A 200 response with a JSON body.
pub fn json_bytes(bytes: Vec<u8>) -> Response {
    json_status(StatusCode::OK, bytes)
}

pub fn json_status(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// A 200 response with `value` as JSON.
pub fn json<T: Serialize>(value: &T) -> Response {
    json_bytes(serde_json::to_vec(value).expect("response types serialise"))
}

/// `[a,b,...]` from JSON documents.
pub fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let len = items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
}

/// A stored entity as served: as stored, or reduced to `fields`.
pub fn entity(stored: Vec<u8>, fields: Option<&[String]>) -> Result<Vec<u8>, ApiError> {
    let Some(fields) = fields else {
        return Ok(stored);
    };
    let value: serde_json::Value = serde_json::from_slice(&stored)
        .map_err(|e| ApiError::Internal(format!("stored entity is not JSON: {e}")))?;
    Ok(serde_json::to_vec(&project(&value, fields)).expect("json values serialise"))
}

/// Runs a store scan off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

//! `POST /api/catalog/validate-entity`: whether an entity would be accepted
//! from a location, checked by the processor's own code (the same parsing,
//! validation and normalisation as ingestion), without writing anything.

use crate::error::ApiError;
use crate::views;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use proto::{Content, LocationKey, LocationOutcome, Observation, ObservedContent, SourceId};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidateRequest {
    entity: Option<Value>,
    location: Option<String>,
}

/// Backstage's answer: 200 with no body when valid; 400 with
/// `{"errors": [{"name", "message", ...}]}` when not. A request that is
/// not a validation request at all is an ordinary 400 `InputError`.
#[utoipa::path(
    post,
    path = "/api/catalog/validate-entity",
    operation_id = "ValidateEntity",
    tag = "Entity",
    description = "Whether an entity would be accepted from a location, checked as ingestion checks it; nothing is written.",
    request_body(content = views::ValidateEntityRequest),
    responses(
        (status = 200, description = "The entity is valid."),
        (status = 400, description = "The entity is not valid (errors), or the request is malformed (an error).", body = views::ValidateEntityFailure),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn validate_entity(body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let bytes = body.map_err(|e| {
        crate::error::unreadable_body(&e, |why| {
            ApiError::Input(format!("Malformed request body: {why}"))
        })
    })?;
    let req: ValidateRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Input(format!("Malformed request body: {e}")))?;
    let entity = match req.entity {
        Some(e @ Value::Object(_)) => e,
        Some(_) => return Err(ApiError::Input("entity must be an object".into())),
        None => return Err(ApiError::Input("entity is required".into())),
    };
    let location = req
        .location
        .ok_or_else(|| ApiError::Input("location is required".into()))?;
    match location.split_once(':') {
        Some((kind, target)) if !kind.is_empty() && !target.is_empty() => {}
        _ => {
            return Err(ApiError::Input(format!(
                "location {location:?} is not a location reference (type:target, e.g. url:https://...)"
            )));
        }
    }
    let text = serde_json::to_string(&entity).expect("json values serialise");
    let now = Utc::now();
    let key = LocationKey::new(&location);
    let obs = Observation {
        event_id: uuid::Uuid::now_v7(),
        source: SourceId::new("api"),
        observed_at: now,
        location: key.clone(),
        origin: key,
        first_seen_at: now,
        content: ObservedContent::Present {
            content: Content::Utf8 { text },
        },
    };
    let event = tokio::task::spawn_blocking(move || {
        processor::process(&obs, &processor::ProcessorConfig::default())
    })
    .await?;
    let errors = match event.outcome {
        LocationOutcome::Processed { entities, errors }
            if errors.is_empty() && entities.len() == 1 =>
        {
            return Ok(StatusCode::OK.into_response());
        }
        LocationOutcome::Processed { errors, .. } => errors,
        _ => Vec::new(),
    };
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| {
            let mut v = json!({
                "name": "InputError",
                "message": e.message,
                "kind": e.kind,
            });
            if let Some(line) = e.line {
                v["line"] = json!(line);
            }
            if let Some(column) = e.column {
                v["column"] = json!(column);
            }
            v
        })
        .collect();
    Ok((
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "errors": errors })),
    )
        .into_response())
}

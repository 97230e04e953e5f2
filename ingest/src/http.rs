//! Ingest's HTTP routes: the GitHub webhook receiver and the sources'
//! status (last sync, held-back removals, rate limits).
//!
//! `catalog ingest` serves these on its own listener; `catalog dev` merges
//! them into the API server.
//!
//! A delivery is accepted only when its `X-Hub-Signature-256` verifies
//! against the secret of a GitHub source; the payload is parsed only after
//! that. An accepted delivery queues a re-read of what it names and wakes
//! the scheduler, which syncs just that (a scoped listing), so a push is an
//! observation within a second. Rejections are logged and counted.

use crate::Ingest;
use crate::github::webhook::{self, Delivery};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;

/// The routes, over a shared [`Ingest`].
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/webhooks/github", post(github_webhook))
        .route("/api/ingest/sources", get(sources))
        .with_state(ingest)
}

async fn sources(State(ingest): State<Arc<Ingest>>) -> Response {
    Json(json!({ "sources": ingest.status() })).into_response()
}

fn error(status: StatusCode, name: &str, message: String) -> Response {
    (
        status,
        Json(json!({
            "error": { "name": name, "message": message },
            "response": { "statusCode": status.as_u16() },
        })),
    )
        .into_response()
}

fn rejected(reason: &'static str) {
    metrics::counter!("catalog_github_webhooks_total", "outcome" => "rejected", "reason" => reason)
        .increment(1);
}

async fn github_webhook(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let event = h("x-github-event").unwrap_or("").to_string();
    let delivery_id = h("x-github-delivery").unwrap_or("").to_string();
    let signature = h("x-hub-signature-256");
    let sources = ingest.github_sources();
    let with_secret: Vec<_> = sources
        .iter()
        .filter_map(|(id, s)| s.webhook_secret().map(|k| (*id, s, k)))
        .collect();
    if with_secret.is_empty() {
        rejected("no_secret");
        tracing::warn!(delivery = %delivery_id, event = %event, "webhook rejected: no GitHub source has a webhook secret");
        return error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            "no GitHub source accepts webhooks (set webhook_secret_env)".into(),
        );
    }
    // Sources whose secret signed this body.
    let mut last_err = None;
    let verified: Vec<_> = with_secret
        .iter()
        .filter(
            |(_, _, k)| match webhook::verify_signature(k, &body, signature) {
                Ok(()) => true,
                Err(e) => {
                    last_err = Some(e);
                    false
                }
            },
        )
        .collect();
    if verified.is_empty() {
        let e = last_err.expect("at least one secret was tried");
        let reason = match e {
            webhook::SignatureError::Missing => "missing_signature",
            webhook::SignatureError::Malformed => "malformed_signature",
            webhook::SignatureError::Mismatch => "bad_signature",
        };
        rejected(reason);
        tracing::warn!(delivery = %delivery_id, event = %event, reason, "webhook rejected");
        return error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            e.to_string(),
        );
    }
    if event.is_empty() {
        rejected("no_event");
        return error(
            StatusCode::BAD_REQUEST,
            "InputError",
            "missing X-GitHub-Event header".into(),
        );
    }
    let delivery = match webhook::parse(&event, &body) {
        Ok(d) => d,
        Err(e) => {
            rejected("bad_payload");
            tracing::warn!(delivery = %delivery_id, event = %event, error = %e, "webhook payload rejected");
            return error(StatusCode::BAD_REQUEST, "InputError", e.to_string());
        }
    };
    let mut queued = Vec::new();
    for (id, source, _) in &verified {
        if source.note(&delivery) {
            queued.push(id.to_string());
        }
    }
    let outcome = if queued.is_empty() {
        "ignored"
    } else {
        "queued"
    };
    metrics::counter!("catalog_github_webhooks_total", "outcome" => outcome, "reason" => event.clone())
        .increment(1);
    if !queued.is_empty() {
        ingest.trigger().poke();
    }
    tracing::info!(delivery = %delivery_id, event = %event, ?queued, "webhook accepted");
    let kind = match &delivery {
        Delivery::Ping { .. } => "ping",
        Delivery::Ignored { .. } => "ignored",
        _ => "change",
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({ "delivery": delivery_id, "event": event, "kind": kind, "queued": queued })),
    )
        .into_response()
}

//! The query service: the catalog's HTTP API.
//!
//! Owns: the Backstage-compatible catalog REST API under `/api/catalog`
//! (entities, by-query, by-name, by-uid, by-refs, ancestry, facets,
//! locations and their errors), the entity history API under
//! `/api/history`, health (`/livez`, `/readyz`), Prometheus metrics
//! (`/metrics`), the OpenAPI document of all of it
//! (`/api/openapi.json`, generated from the handlers' annotations and the
//! types in [`views`]), and the web
//! UI at `/` (built from `ui/`, embedded at build time).
//!
//! It serves from the projector's read model ([`projector::Catalog`]) and
//! must never write to the store. Errors leave through one type,
//! [`ApiError`], in Backstage's error body shape.

mod adoption;
mod asof;
pub mod auth;
mod entities;
mod error;
mod export;
pub mod feed;
mod health;
mod locations;
mod mcp;
pub mod metrics;
mod openapi;
mod params;
mod project;
mod respond;
pub mod scorecards;
mod ui;
mod validate;
pub mod views;

pub use auth::{Access, Auth, Principal, Scope};
pub use error::ApiError;
pub use locations::{LocationAccess, LogWriter};
pub use ui::built as ui_built;

use axum::Router;
use axum::http::Method;
use std::future::Future;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The read model.
    pub catalog: projector::Catalog,
    /// Messages the projector has not applied yet, or why that is not
    /// known (then `/readyz` answers 503 with the reason).
    pub lag: Arc<dyn Fn() -> Result<i64, String> + Send + Sync>,
    /// Renders `/metrics`; `None` answers 404.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Appends to the event log (registrations, refreshes, deletions);
    /// `None`: those writes answer 503.
    pub log_writer: Option<locations::LogWriter>,
    /// Checks and reads registrable locations; `None`: registration and
    /// analysis answer 503.
    pub location_access: Option<Arc<dyn locations::LocationAccess>>,
    /// Appends scorecard events (exemptions) to the log; `None`: this
    /// process cannot write, and exemption writes answer 403.
    pub scorecard_writer: Option<scorecards::ScorecardWriter>,
    /// Who may call what (tokens, scopes, rates).
    pub auth: Arc<Auth>,
    /// Request body and time limits.
    pub limits: Limits,
}

/// Limits of every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Longest a request may take until its response starts (a streamed
    /// body may take longer); 503 beyond.
    pub request_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            request_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Every route the API serves, with what it asks of its caller: the one
/// list the router, its guards and the OpenAPI document are built from
/// (each handler's `#[utoipa::path]` gives its method, path and
/// operation).
fn route_table() -> Vec<(Access, UtoipaMethodRouter<AppState>)> {
    use Access::{Public, Read};
    const WRITE: Access = Access::Need(Scope::CatalogWrite);
    const EXEMPT: Access = Access::Need(Scope::ScorecardsWrite);
    vec![
        (Read, routes!(entities::list)),
        (Read, routes!(entities::by_query)),
        (Read, routes!(entities::by_name)),
        (Read, routes!(entities::ancestry)),
        (Read, routes!(entities::by_uid)),
        (Read, routes!(entities::by_refs)),
        (Read, routes!(entities::by_predicate)),
        (Read, routes!(entities::facets)),
        (Read, routes!(entities::facets_by_predicate)),
        (Read, routes!(validate::validate_entity)),
        (Read, routes!(locations::list)),
        (WRITE, routes!(locations::create)),
        (Read, routes!(locations::by_query)),
        (Read, routes!(locations::by_entity)),
        (Read, routes!(locations::by_id)),
        (WRITE, routes!(locations::update)),
        (WRITE, routes!(locations::remove)),
        (WRITE, routes!(locations::delete_entity)),
        (WRITE, routes!(locations::analyze)),
        (Read, routes!(locations::errors)),
        (Read, routes!(locations::all_errors)),
        (WRITE, routes!(locations::refresh)),
        (Read, routes!(entities::history)),
        (Read, routes!(feed::events)),
        (Read, routes!(adoption::metric)),
        (Read, routes!(export::export_route)),
        (Read, routes!(feed::stream)),
        (Read, routes!(scorecards::list)),
        (Read, routes!(scorecards::dry_run)),
        (Read, routes!(scorecards::entity)),
        (EXEMPT, routes!(scorecards::revoke)),
        (Read, routes!(scorecards::one)),
        (Read, routes!(scorecards::entities)),
        (Read, routes!(scorecards::rollup)),
        (Read, routes!(scorecards::trend)),
        (Read, routes!(scorecards::exemptions)),
        (EXEMPT, routes!(scorecards::grant)),
        (Public, routes!(health::livez)),
        (Public, routes!(health::readyz)),
        (Public, routes!(health::metrics)),
        (Public, routes!(health::openapi)),
    ]
}

/// The API's routes, each behind its guard when `auth` is given, and the
/// OpenAPI document of them.
fn api(auth: Option<&Arc<Auth>>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi());
    for (access, (schemas, mut paths, handler)) in route_table() {
        openapi::require(&mut paths, access);
        let handler = match auth {
            Some(auth) => {
                let guard = auth::Guard {
                    auth: auth.clone(),
                    access,
                };
                handler.route_layer(axum::middleware::from_fn_with_state(guard, auth::guard))
            }
            None => handler,
        };
        api = api.routes((schemas, paths, handler));
    }
    api.split_for_parts()
}

/// The OpenAPI document of every route [`router`] serves (the `/mcp`
/// endpoint and the UI aside).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api(None).1
}

/// [`openapi`] as served at `/api/openapi.json`.
pub fn openapi_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// Every `(method, path)` the router serves, paths in OpenAPI/axum syntax
/// (`/api/catalog/locations/{id}`).
pub fn routes() -> Vec<(Method, String)> {
    route_access()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// What each route asks of its caller.
pub fn route_access() -> Vec<(Method, String, Access)> {
    let mut out = Vec::new();
    for (access, (_, paths, _)) in route_table() {
        for (path, item) in paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
                (Method::OPTIONS, &item.options),
                (Method::TRACE, &item.trace),
            ] {
                if op.is_some() {
                    out.push((method, path.clone(), access));
                }
            }
        }
    }
    out
}

/// The whole HTTP API over `state`.
pub fn router(state: AppState) -> Router {
    metrics::describe();
    let (mut router, _) = api(Some(&state.auth));
    let limits = state.limits;
    // Agents' tools ask the API itself, as their caller.
    let api = router.clone().with_state(state.clone());
    let guard = auth::Guard {
        auth: state.auth.clone(),
        access: Access::Read,
    };
    router = router.route(
        "/mcp",
        axum::routing::any_service(mcp::service(api))
            .layer(axum::middleware::from_fn_with_state(guard, auth::guard)),
    );
    router
        .fallback(ui::fallback)
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            error::with_timeout,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(error::with_request))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, None, shutdown).await
}

/// Like [`serve`], with `extra` routes (another stage's, such as ingest's
/// webhook receiver in `catalog dev`) beside the API's.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = router(state);
    if let Some(extra) = extra {
        app = extra.merge(app);
    }
    // The client's address keys the rate of callers without a token.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

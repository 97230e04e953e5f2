//! The query service: the catalog's HTTP API.
//!
//! Owns: the Backstage-compatible catalog REST API under `/api/catalog`
//! (entities, by-query, by-name, by-uid, by-refs, ancestry, facets,
//! locations and their errors), the entity history API under
//! `/api/history`, health (`/livez`, `/readyz`), Prometheus metrics
//! (`/metrics`), the OpenAPI document of all of it
//! (`/api/openapi.json`, hand-written in `query/openapi.json`), and the web
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
mod params;
mod project;
mod respond;
pub mod scorecards;
mod ui;
mod validate;

pub use auth::{Access, Auth, Principal, Scope};
pub use error::ApiError;
pub use locations::{LocationAccess, LogWriter};
pub use ui::built as ui_built;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};
use std::future::Future;
use std::sync::Arc;
use tower_http::trace::TraceLayer;

/// The OpenAPI 3.0 document of every route [`router`] serves.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

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

/// One served route: the single list the router and the OpenAPI test use.
struct Route {
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
}

/// A route readers may call (open when reads are, `catalog.read` else).
fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        method,
        path,
        access: Access::Read,
        handler,
    }
}

/// A route that needs `scope`.
fn write(
    method: Method,
    path: &'static str,
    scope: Scope,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        access: Access::Need(scope),
        ..route(method, path, handler)
    }
}

/// A route anyone may call.
fn public(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        access: Access::Public,
        ..route(method, path, handler)
    }
}

fn route_table() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/api/catalog/entities", get(entities::list)),
        route(
            M::GET,
            "/api/catalog/entities/by-query",
            get(entities::by_query),
        ),
        route(
            M::GET,
            "/api/catalog/entities/by-name/{kind}/{namespace}/{name}",
            get(entities::by_name),
        ),
        route(
            M::GET,
            "/api/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry",
            get(entities::ancestry),
        ),
        route(
            M::GET,
            "/api/catalog/entities/by-uid/{uid}",
            get(entities::by_uid),
        ),
        route(
            M::POST,
            "/api/catalog/entities/by-refs",
            post(entities::by_refs),
        ),
        route(
            M::POST,
            "/api/catalog/entities/by-query",
            post(entities::by_predicate),
        ),
        route(M::GET, "/api/catalog/entity-facets", get(entities::facets)),
        route(
            M::POST,
            "/api/catalog/entity-facets",
            post(entities::facets_by_predicate),
        ),
        route(
            M::POST,
            "/api/catalog/validate-entity",
            post(validate::validate_entity),
        ),
        route(M::GET, "/api/catalog/locations", get(locations::list)),
        write(
            M::POST,
            "/api/catalog/locations",
            Scope::CatalogWrite,
            post(locations::create),
        ),
        route(
            M::POST,
            "/api/catalog/locations/by-query",
            post(locations::by_query),
        ),
        route(
            M::GET,
            "/api/catalog/locations/by-entity/{kind}/{namespace}/{name}",
            get(locations::by_entity),
        ),
        route(M::GET, "/api/catalog/locations/{id}", get(locations::by_id)),
        write(
            M::PUT,
            "/api/catalog/locations/{id}",
            Scope::CatalogWrite,
            put(locations::update),
        ),
        write(
            M::DELETE,
            "/api/catalog/locations/{id}",
            Scope::CatalogWrite,
            delete(locations::remove),
        ),
        write(
            M::DELETE,
            "/api/catalog/entities/by-uid/{uid}",
            Scope::CatalogWrite,
            delete(locations::delete_entity),
        ),
        write(
            M::POST,
            "/api/catalog/analyze-location",
            Scope::CatalogWrite,
            post(locations::analyze),
        ),
        route(
            M::GET,
            "/api/catalog/locations/{id}/errors",
            get(locations::errors),
        ),
        route(M::GET, "/api/catalog/errors", get(locations::all_errors)),
        write(
            M::POST,
            "/api/catalog/refresh",
            Scope::CatalogWrite,
            post(locations::refresh),
        ),
        route(
            M::GET,
            "/api/history/entities/{kind}/{namespace}/{name}",
            get(entities::history),
        ),
        route(M::GET, "/api/history/events", get(feed::events)),
        route(M::GET, "/api/metrics/{metric}", get(adoption::metric)),
        route(M::GET, "/api/export/{what}", get(export::export_route)),
        route(M::GET, "/api/history/events/stream", get(feed::stream)),
        route(M::GET, "/api/scorecards", get(scorecards::list)),
        route(
            M::POST,
            "/api/scorecards/dry-run",
            post(scorecards::dry_run),
        ),
        route(
            M::GET,
            "/api/scorecards/entity/{kind}/{namespace}/{name}",
            get(scorecards::entity),
        ),
        write(
            M::DELETE,
            "/api/scorecards/exemptions/{exemptionId}",
            Scope::ScorecardsWrite,
            delete(scorecards::revoke),
        ),
        route(M::GET, "/api/scorecards/{id}", get(scorecards::one)),
        route(
            M::GET,
            "/api/scorecards/{id}/entities",
            get(scorecards::entities),
        ),
        route(
            M::GET,
            "/api/scorecards/{id}/rollup",
            get(scorecards::rollup),
        ),
        route(M::GET, "/api/scorecards/{id}/trend", get(scorecards::trend)),
        route(
            M::GET,
            "/api/scorecards/{id}/exemptions",
            get(scorecards::exemptions),
        ),
        write(
            M::POST,
            "/api/scorecards/{id}/exemptions",
            Scope::ScorecardsWrite,
            post(scorecards::grant),
        ),
        public(M::GET, "/livez", get(health::livez)),
        public(M::GET, "/readyz", get(health::readyz)),
        public(M::GET, "/metrics", get(health::metrics)),
        public(M::GET, "/api/openapi.json", get(health::openapi)),
    ]
}

/// Every `(method, path)` the router serves, paths in OpenAPI/axum syntax
/// (`/api/catalog/locations/{id}`).
pub fn routes() -> Vec<(Method, &'static str)> {
    route_table()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect()
}

/// What each route asks of its caller.
pub fn route_access() -> Vec<(Method, &'static str, Access)> {
    route_table()
        .into_iter()
        .map(|r| (r.method, r.path, r.access))
        .collect()
}

/// The whole HTTP API over `state`.
pub fn router(state: AppState) -> Router {
    metrics::describe();
    let mut router = Router::new();
    for r in route_table() {
        let guard = auth::Guard {
            auth: state.auth.clone(),
            access: r.access,
        };
        router = router.route(
            r.path,
            r.handler
                .route_layer(axum::middleware::from_fn_with_state(guard, auth::guard)),
        );
    }
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

//! `/mcp`: the catalog for agents, as a Model Context Protocol server
//! (streamable HTTP, stateless, JSON answers) built with the official Rust
//! SDK, `rmcp`.
//!
//! Each tool is a request to the HTTP API itself, made in process with the
//! caller's `Authorization` header, so a tool answers exactly what the
//! route does (filters, `asOf`, paging, errors) and needs the same scopes.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use tower::ServiceExt;

/// The largest answer a tool returns; a larger one asks for a narrower
/// question.
const MAX_ANSWER: usize = 4 << 20;

/// Entities a relations walk visits at most.
const MAX_WALK: usize = 200;

/// The MCP service over `api`, the HTTP API it asks.
pub fn service(api: Router) -> StreamableHttpService<CatalogTools, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // Served behind the API's own authentication under any host name.
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(CatalogTools::new(api.clone())),
        Default::default(),
        config,
    )
}

/// The tools.
#[derive(Clone)]
pub struct CatalogTools {
    api: Router,
    tool_router: ToolRouter<CatalogTools>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// Backstage filters, each `key=value[,key=value...]` (conditions of one
    /// filter must all hold; any filter may match), e.g.
    /// `kind=component,spec.type=service`.
    #[serde(default)]
    pub filter: Vec<String>,
    /// Words to find in names, titles and descriptions.
    pub text: Option<String>,
    /// At most this many entities (default 50, at most 500).
    pub limit: Option<u32>,
    /// The catalog as it stood at this RFC 3339 instant.
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EntityArgs {
    /// `kind:namespace/name`, e.g. `component:default/payments` (the
    /// namespace may be left out: `component:payments`).
    pub entity_ref: String,
    /// The entity as it stood at this RFC 3339 instant.
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RelationsArgs {
    /// Where the walk starts, `kind:namespace/name`.
    pub entity_ref: String,
    /// How many steps to follow (1 to 3, default 1).
    pub depth: Option<u32>,
    /// Only these relation types (e.g. `ownedBy`, `dependsOn`,
    /// `providesApi`); all when empty.
    #[serde(default)]
    pub types: Vec<String>,
    pub as_of: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct HistoryArgs {
    /// Only changes of this entity.
    pub entity_ref: Option<String>,
    /// Only changes after this cursor (an earlier answer's `eventId`).
    pub after: Option<String>,
    /// Only these changes: `entity`, `location`, an event type such as
    /// `entity_updated`, or an entity kind.
    pub kind: Option<String>,
    /// At most this many changes (default 50, at most 200).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScorecardArgs {
    /// One entity's scorecards (`kind:namespace/name`); without it, the
    /// list of scorecards.
    pub entity_ref: Option<String>,
    /// One scorecard's rollup by `owner`, `system` or `domain`.
    pub scorecard: Option<String>,
    /// How the rollup is grouped (default `owner`).
    pub by: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MetricArgs {
    /// `entities`, `ownership-coverage`, `catalog-coverage`,
    /// `scorecard-levels`, `technology` or `changes`.
    pub metric: String,
    /// How series are split (e.g. `kind`, `owner`, `type`, `tag`).
    pub by: Option<String>,
    /// `day`, `week` (default) or `month`.
    pub interval: Option<String>,
    /// RFC 3339 start (default 12 weeks before `to`).
    pub from: Option<String>,
    /// RFC 3339 end (default now).
    pub to: Option<String>,
    /// Backstage filters of the entities counted.
    #[serde(default)]
    pub filter: Vec<String>,
    /// Further parameters of the metric (e.g. `scorecard`, `target`).
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
}

/// `kind:namespace/name` as the by-name route's path.
fn by_name_path(entity_ref: &str) -> Result<String, String> {
    let (kind, rest) = entity_ref.split_once(':').ok_or_else(|| {
        format!("entity_ref: '{entity_ref}' is not kind:namespace/name (the kind is required)")
    })?;
    let (ns, name) = rest.split_once('/').unwrap_or(("default", rest));
    if kind.is_empty() || ns.is_empty() || name.is_empty() {
        return Err(format!(
            "entity_ref: '{entity_ref}' is not kind:namespace/name"
        ));
    }
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    Ok(format!("{}/{}/{}", enc(kind), enc(ns), enc(name)))
}

/// A query string from (name, value) pairs.
fn query(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
    }
    out
}

fn fail(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

#[tool_router]
impl CatalogTools {
    fn new(api: Router) -> CatalogTools {
        CatalogTools {
            api,
            tool_router: Self::tool_router(),
        }
    }

    /// GETs `path` from the API as the caller; `Ok` is the JSON answer,
    /// `Err` what to tell the agent.
    async fn get(&self, parts: &axum::http::request::Parts, path: &str) -> Result<Value, String> {
        let mut req = Request::get(path);
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let mut req = req
            .body(Body::empty())
            .map_err(|e| format!("bad request {path}: {e}"))?;
        if let Some(addr) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            req.extensions_mut().insert(*addr);
        }
        let resp = self
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .map_err(|_| {
                format!("{path}: the answer is over {MAX_ANSWER} bytes; ask a narrower question")
            })?;
        if !status.is_success() {
            return Err(format!(
                "{path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{path}: not JSON: {e}"))
    }

    async fn answer(&self, parts: &axum::http::request::Parts, path: &str) -> CallToolResult {
        match self.get(parts, path).await {
            Ok(v) => CallToolResult::success(vec![ContentBlock::text(v.to_string())]),
            Err(e) => fail(e),
        }
    }

    #[tool(
        description = "Find catalog entities by Backstage filters and/or text; answers each entity's kind, name, namespace, title, type, owner, lifecycle and system. Optionally as of a past instant."
    )]
    async fn search_entities(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<SearchArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut q = vec![
            ("limit", args.limit.unwrap_or(50).clamp(1, 500).to_string()),
            (
                "fields",
                "kind,metadata.name,metadata.namespace,metadata.title,metadata.description,spec.type,spec.owner,spec.lifecycle,spec.system"
                    .to_owned(),
            ),
        ];
        q.extend(args.filter.into_iter().map(|f| ("filter", f)));
        if let Some(t) = args.text.filter(|t| !t.is_empty()) {
            q.push(("fullTextFilterTerm", t));
        }
        if let Some(t) = args.as_of {
            q.push(("asOf", t));
        }
        let path = format!("/api/catalog/entities/by-query{}", query(&q));
        Ok(self.answer(&parts, &path).await)
    }

    #[tool(
        description = "One catalog entity, whole (metadata, spec, relations), by its ref kind:namespace/name; optionally as of a past instant."
    )]
    async fn get_entity(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<EntityArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = match by_name_path(&args.entity_ref) {
            Ok(p) => p,
            Err(e) => return Ok(fail(e)),
        };
        let q: Vec<_> = args.as_of.map(|t| ("asOf", t)).into_iter().collect();
        let path = format!("/api/catalog/entities/by-name/{name}{}", query(&q));
        Ok(self.answer(&parts, &path).await)
    }

    #[tool(
        description = "The relations around an entity to a depth of 1 to 3 (owner, system, dependencies, APIs provided and consumed, children...), as edges {source, type, target}; optionally only some relation types."
    )]
    async fn entity_relations(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<RelationsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let depth = args.depth.unwrap_or(1).clamp(1, 3);
        let types: BTreeSet<String> = args.types.into_iter().collect();
        let q: Vec<_> = args.as_of.map(|t| ("asOf", t)).into_iter().collect();
        let start = args.entity_ref.to_ascii_lowercase();
        let mut seen = BTreeSet::from([start.clone()]);
        let mut todo = VecDeque::from([(start.clone(), 0)]);
        let mut edges = Vec::new();
        let mut missing = Vec::new();
        while let Some((r, d)) = todo.pop_front() {
            let name = match by_name_path(&r) {
                Ok(p) => p,
                Err(e) => return Ok(fail(e)),
            };
            let path = format!("/api/catalog/entities/by-name/{name}{}", query(&q));
            let entity = match self.get(&parts, &path).await {
                Ok(v) => v,
                Err(e) if r == start => return Ok(fail(e)),
                Err(_) => {
                    missing.push(r);
                    continue;
                }
            };
            for rel in entity["relations"].as_array().into_iter().flatten() {
                let (Some(ty), Some(target)) = (rel["type"].as_str(), rel["targetRef"].as_str())
                else {
                    continue;
                };
                if !types.is_empty() && !types.contains(ty) {
                    continue;
                }
                edges.push(serde_json::json!({"source": r, "type": ty, "target": target}));
                let target = target.to_ascii_lowercase();
                if d + 1 < depth && seen.len() < MAX_WALK && seen.insert(target.clone()) {
                    todo.push_back((target, d + 1));
                }
            }
        }
        let v = serde_json::json!({
            "entityRef": start, "depth": depth, "edges": edges,
            "notInCatalog": missing, "truncated": seen.len() >= MAX_WALK,
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(
            v.to_string(),
        )]))
    }

    #[tool(
        description = "The catalog's change feed in commit order: entities and locations created, updated and deleted, each with time, source, who, and a JSON patch of the change. Page with `after` set to the last eventId."
    )]
    async fn history(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<HistoryArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut q = vec![
            ("limit", args.limit.unwrap_or(50).clamp(1, 200).to_string()),
            ("diff", "patch".to_owned()),
        ];
        q.extend(args.entity_ref.map(|r| ("entityRef", r)));
        q.extend(args.after.map(|a| ("after", a)));
        q.extend(args.kind.map(|k| ("kind", k)));
        let path = format!("/api/history/events{}", query(&q));
        Ok(self.answer(&parts, &path).await)
    }

    #[tool(
        description = "Scorecards: without arguments, the scorecards defined; with entity_ref, that entity's level, score and failing checks per scorecard; with scorecard, its rollup (level distribution, pass rate per check) by owner, system or domain."
    )]
    async fn scorecards(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<ScorecardArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = if let Some(r) = args.entity_ref {
            match by_name_path(&r) {
                Ok(p) => format!("/api/scorecards/entity/{p}"),
                Err(e) => return Ok(fail(e)),
            }
        } else if let Some(id) = args.scorecard {
            format!(
                "/api/scorecards/{}/rollup{}",
                utf8_percent_encode(&id, NON_ALPHANUMERIC),
                query(&[("by", args.by.unwrap_or_else(|| "owner".into()))])
            )
        } else {
            "/api/scorecards".to_owned()
        };
        Ok(self.answer(&parts, &path).await)
    }

    #[tool(
        description = "An adoption metric over time, computed from history: entities, ownership-coverage, catalog-coverage, scorecard-levels, technology or changes, by day, week or month, split by kind, type, lifecycle, tag, owner, system, domain (and more per metric)."
    )]
    async fn adoption_metric(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<MetricArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut q = Vec::new();
        q.extend(args.by.map(|v| ("by", v)));
        q.extend(args.interval.map(|v| ("interval", v)));
        q.extend(args.from.map(|v| ("from", v)));
        q.extend(args.to.map(|v| ("to", v)));
        q.extend(args.filter.into_iter().map(|f| ("filter", f)));
        let extra: Vec<(String, String)> = args.params.into_iter().collect();
        let mut path = format!(
            "/api/metrics/{}{}",
            utf8_percent_encode(&args.metric, NON_ALPHANUMERIC),
            query(&q)
        );
        for (k, v) in extra {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&utf8_percent_encode(&k, NON_ALPHANUMERIC).to_string());
            path.push('=');
            path.push_str(&utf8_percent_encode(&v, NON_ALPHANUMERIC).to_string());
        }
        Ok(self.answer(&parts, &path).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CatalogTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("catalog", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "A software catalog: entities (components, APIs, systems, groups, users, resources) with owners and relations, its full change history, scorecards and adoption metrics over time. Refs are kind:namespace/name.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_become_by_name_paths() {
        assert_eq!(
            by_name_path("component:default/a b").unwrap(),
            "component/default/a%20b"
        );
        assert_eq!(by_name_path("group:team").unwrap(), "group/default/team");
        assert!(by_name_path("payments").is_err());
        assert!(by_name_path(":x/y").is_err());
        assert_eq!(
            query(&[("filter", "kind=a,b".into()), ("limit", "5".into())]),
            "?filter=kind%3Da%2Cb&limit=5"
        );
    }
}

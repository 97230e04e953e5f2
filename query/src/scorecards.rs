//! The scorecard routes under `/api/scorecards`: definitions, results,
//! rollups, trends, exemptions and dry runs.
//!
//! Reads come from the projector's store. Exemptions are written as events
//! to `catalog.scorecards.v1` (the projector applies them, as any other
//! replica would), behind a bearer token; the answer is `202 Accepted`.

use crate::error::ApiError;
use crate::params::{Params, PathArgs, decode_cursor, encode_cursor};
use crate::respond::{blocking, json};
use crate::views;
use crate::{AppState, Principal};
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use projector::scorecard::{RollupBy, TrendInterval, TrendQuery};
use proto::{EntityRef, Exemption, ScorecardChange, ScorecardEvent, SourceId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// Results per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Most results per page.
pub const MAX_LIMIT: usize = 1000;

/// Appends a scorecard event to the log.
pub type ScorecardWriter = Arc<dyn Fn(&ScorecardEvent) -> Result<(), String> + Send + Sync>;

fn definition(
    catalog: &projector::Catalog,
    id: &str,
) -> Result<
    (
        projector::scorecard::DefinitionInfo,
        Arc<projector::scorecard::Definition>,
    ),
    ApiError,
> {
    catalog
        .scorecard(id)?
        .ok_or_else(|| ApiError::NotFound(format!("No scorecard '{id}'")))
}

/// `GET /api/scorecards`
#[utoipa::path(
    get,
    path = "/api/scorecards",
    operation_id = "GetScorecards",
    tag = "Scorecards",
    description = "Every scorecard in force, and the definition files whose last text was rejected (their previous text stays in force).",
    responses(
        (status = 200, description = "Ok", body = views::ScorecardList),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn list(State(st): State<AppState>) -> Result<Response, ApiError> {
    let catalog = st.catalog.clone();
    let (items, rejected) = blocking(move || {
        let items: Vec<_> = catalog
            .scorecard_definitions()?
            .into_iter()
            .map(|(d, c)| projector::scorecard::read::view(&c, &d.source, &d.file, d.updated_at))
            .collect();
        Ok((items, catalog.rejected_definitions()?))
    })
    .await?;
    Ok(json(&json!({ "items": items, "rejected": rejected })))
}

/// `GET /api/scorecards/{id}`
#[utoipa::path(
    get,
    path = "/api/scorecards/{id}",
    operation_id = "GetScorecard",
    tag = "Scorecards",
    description = "One scorecard in force.",
    params(views::params::ScorecardId),
    responses(
        (status = 200, description = "Ok", body = views::ScorecardDefinition),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn one(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let catalog = st.catalog.clone();
    let view = blocking(move || {
        let (d, c) = definition(&catalog, &id)?;
        Ok(projector::scorecard::read::view(
            &c,
            &d.source,
            &d.file,
            d.updated_at,
        ))
    })
    .await?;
    Ok(json(&view))
}

#[derive(Serialize, Deserialize)]
struct ResultsCursor {
    after: String,
}

/// `GET /api/scorecards/{id}/entities?level=&owner=&cursor=&limit=&asOf=`
/// (`asOf`: the results as they stood then, from their history)
#[utoipa::path(
    get,
    path = "/api/scorecards/{id}/entities",
    operation_id = "GetScorecardResults",
    tag = "Scorecards",
    description = "A page of the scorecard's results, by entity ref.",
    params(views::params::ScorecardId, views::params::ScorecardLevel, views::params::ScorecardOwner, views::params::ResultsCursor, views::params::ResultsLimit, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::ResultsPage),
        (status = 400, response = views::ErrorResponse),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn entities(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let limit = params
        .int("limit", 1)?
        .unwrap_or(DEFAULT_LIMIT)
        .min(MAX_LIMIT);
    let level = params.one("level")?.map(str::to_string);
    let owner = params.one("owner")?.map(owner_key).transpose()?;
    let after = match params.one("cursor")? {
        Some(c) => Some(decode_cursor::<ResultsCursor>(c, "cursor")?.after),
        None => None,
    };
    let at = crate::asof::param(&params)?;
    let catalog = st.catalog.clone();
    let (items, next) = blocking(move || {
        let (_, def) = definition(&catalog, &id)?;
        let level = match level.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(l) => Some(Some(def.levels.iter().position(|x| x == l).ok_or_else(
                || {
                    ApiError::Input(format!(
                        "level '{l}' is not a level of '{}' ({}, or none)",
                        def.id,
                        def.levels.join(", ")
                    ))
                },
            )?)),
        };
        Ok(match at {
            Some(at) => catalog.scorecard_results_at(
                &def,
                level,
                owner.as_deref(),
                after.as_deref(),
                limit,
                at,
            )?,
            None => {
                catalog.scorecard_results(&def, level, owner.as_deref(), after.as_deref(), limit)?
            }
        })
    })
    .await?;
    let next = next.map(|after| encode_cursor(&ResultsCursor { after }));
    Ok(json(
        &json!({ "items": items, "pageInfo": { "nextCursor": next } }),
    ))
}

/// `owner=team-a`, `owner=group:default/team-a` -> a ref key.
fn owner_key(s: &str) -> Result<String, ApiError> {
    EntityRef::parse(s, Some("group"), "default")
        .map(|r| r.key())
        .map_err(|e| ApiError::Input(format!("owner: {e}")))
}

/// `GET /api/scorecards/entity/{kind}/{namespace}/{name}?history=&asOf=`
/// (`asOf`: the results as they stood then, from their history: levels,
/// scores and check statuses)
#[utoipa::path(
    get,
    path = "/api/scorecards/entity/{kind}/{namespace}/{name}",
    operation_id = "GetEntityScorecards",
    tag = "Scorecards",
    description = "Every scorecard's result for one entity, with each check's outcome and the recent history. With asOf, the results as they stood then, from their history (levels, scores, check statuses; values and reasons are kept for the present only). 404 when the entity does not exist and has no results.",
    params(views::params::Kind, views::params::Namespace, views::params::Name, views::params::History, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::EntityScorecards),
        (status = 400, response = views::ErrorResponse),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn entity(
    State(st): State<AppState>,
    PathArgs((kind, namespace, name)): PathArgs<(String, String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let r = EntityRef::new(&kind, &namespace, &name);
    let history = params.int("history", 0)?.unwrap_or(10).min(1000);
    let catalog = st.catalog.clone();
    let key = r.key();
    let at = crate::asof::param(&params)?;
    let (exists, cards) = blocking(move || {
        let cards = match at {
            Some(at) => catalog.entity_cards_at(&key, at, history)?,
            None => catalog.entity_cards(&key, history)?,
        };
        Ok((catalog.entity(&key)?.is_some(), cards))
    })
    .await?;
    if !exists && cards.is_empty() {
        return Err(ApiError::NotFound(format!("No entity named '{r}' found")));
    }
    Ok(json(
        &json!({ "entityRef": r.to_string(), "scorecards": cards }),
    ))
}

/// `GET /api/scorecards/{id}/rollup?by=owner|system|domain|all&group=&checks=&asOf=`
/// (`asOf`: as the results stood then, from their history)
#[utoipa::path(
    get,
    path = "/api/scorecards/{id}/rollup",
    operation_id = "GetScorecardRollup",
    tag = "Scorecards",
    description = "Current aggregates of the scorecard's results: entities per level, mean score and per-check pass rates, per group.",
    params(views::params::ScorecardId, views::params::RollupBy, views::params::RollupGroup, views::params::RollupChecks, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::Rollup),
        (status = 400, response = views::ErrorResponse),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn rollup(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let by = by_param(&params, RollupBy::All)?;
    let with_checks = match params.one("checks")? {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::Input(format!(
                "checks: '{other}' is not true or false"
            )));
        }
    };
    let group = group_param(&params, by)?;
    let catalog = st.catalog.clone();
    if let Some(at) = crate::asof::param(&params)? {
        let view = blocking(move || {
            let (_, def) = definition(&catalog, &id)?;
            Ok(catalog.scorecard_rollups_at(&def, by, group.as_deref(), at, with_checks)?)
        })
        .await?;
        return Ok(json(&view));
    }
    // Dashboards ask the same rollups again and again: the rendered answer
    // is kept until the store changes.
    let key = format!("rollup\0{id}\0{}\0{with_checks}\0{group:?}", by.dim());
    let bytes = blocking(move || {
        catalog.cached_view(&key, || {
            let (_, def) = definition(&catalog, &id)?;
            let view = match group {
                // One group: a point lookup.
                Some(g) => projector::scorecard::RollupView {
                    scorecard: def.id.clone(),
                    by: by.dim(),
                    groups: catalog
                        .scorecard_rollup_of(&def, by, &g, with_checks)?
                        .into_iter()
                        .collect(),
                },
                None => catalog.scorecard_rollups(&def, by, with_checks)?,
            };
            Ok::<_, ApiError>(serde_json::to_vec(&view).expect("views serialise"))
        })
    })
    .await?;
    Ok(crate::respond::json_bytes(bytes.to_vec()))
}

/// `group=` as the rollups of `by` name it: an owner as a group ref key
/// (`team-a` -> `group:default/team-a`), a system or domain ref lower-cased.
fn group_param(params: &Params, by: RollupBy) -> Result<Option<String>, ApiError> {
    Ok(match (by, params.one("group")?) {
        (_, None) => None,
        (RollupBy::All, Some(g)) => Some(g.to_string()),
        (RollupBy::Owner, Some(g)) => Some(owner_key(g)?),
        (_, Some(g)) => Some(g.to_ascii_lowercase()),
    })
}

fn by_param(params: &Params, default: RollupBy) -> Result<RollupBy, ApiError> {
    match params.one("by")? {
        None => Ok(default),
        Some(b) => RollupBy::parse(b).ok_or_else(|| {
            ApiError::Input(format!(
                "by: '{b}' is not one of owner, system, domain, all"
            ))
        }),
    }
}

pub(crate) fn time_param(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = params.one(name)? else {
        return Ok(None);
    };
    let t = match DateTime::parse_from_rfc3339(v) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .ok_or_else(|| {
                ApiError::Input(format!(
                    "{name}: '{v}' is neither a date (2026-01-31) nor an RFC 3339 time"
                ))
            })?,
    };
    // Buckets around the time must stay RFC 3339 times (years 0000-9999).
    use chrono::Datelike;
    if !(1970..=9000).contains(&t.year()) {
        return Err(ApiError::Input(format!(
            "{name}: '{v}' is outside the years 1970 to 9000"
        )));
    }
    Ok(Some(t))
}

/// `GET /api/scorecards/{id}/trend?by=owner&group=&from=&to=&interval=day|week`
#[utoipa::path(
    get,
    path = "/api/scorecards/{id}/trend",
    operation_id = "GetScorecardTrend",
    tag = "Scorecards",
    description = "The rollups at the end of each interval from `from` to `to`, from the result history.",
    params(views::params::ScorecardId, views::params::RollupBy, views::params::TrendGroup, views::params::TrendFrom, views::params::TrendTo, views::params::TrendInterval),
    responses(
        (status = 200, description = "Ok", body = views::Trend),
        (status = 400, response = views::ErrorResponse),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn trend(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let by = by_param(&params, RollupBy::All)?;
    let interval = match params.one("interval")? {
        None | Some("day") => TrendInterval::Day,
        Some("week") => TrendInterval::Week,
        Some(other) => {
            return Err(ApiError::Input(format!(
                "interval: '{other}' is not day or week"
            )));
        }
    };
    let to = time_param(&params, "to")?.unwrap_or_else(Utc::now);
    let from = time_param(&params, "from")?.unwrap_or_else(|| match interval {
        TrendInterval::Day => to - Duration::days(29),
        TrendInterval::Week => to - Duration::weeks(11),
    });
    if from > to {
        return Err(ApiError::Input("from is after to".into()));
    }
    let span = match interval {
        TrendInterval::Day => (to - from).num_days(),
        TrendInterval::Week => (to - from).num_weeks(),
    };
    if span >= projector::scorecard::read::MAX_BUCKETS {
        return Err(ApiError::Input(format!(
            "at most {} intervals per request",
            projector::scorecard::read::MAX_BUCKETS
        )));
    }
    if by == RollupBy::All && params.one("group")?.is_some() {
        return Err(ApiError::Input(
            "group needs by=owner, system or domain".into(),
        ));
    }
    let group = group_param(&params, by)?;
    let q = TrendQuery {
        by,
        group,
        from,
        to,
        interval,
    };
    let catalog = st.catalog.clone();
    let (sc, buckets) = blocking(move || {
        let (_, def) = definition(&catalog, &id)?;
        Ok((def.id.clone(), catalog.scorecard_trend(&def, &q)?))
    })
    .await?;
    Ok(json(&json!({
        "scorecard": sc,
        "by": by.dim(),
        "interval": match interval { TrendInterval::Day => "day", TrendInterval::Week => "week" },
        "buckets": buckets,
    })))
}

/// `GET /api/scorecards/{id}/exemptions`
#[utoipa::path(
    get,
    path = "/api/scorecards/{id}/exemptions",
    operation_id = "GetScorecardExemptions",
    tag = "Scorecards",
    description = "Every exemption of the scorecard, revoked and expired ones included.",
    params(views::params::ScorecardId),
    responses(
        (status = 200, description = "Ok", body = views::ExemptionList),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn exemptions(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let catalog = st.catalog.clone();
    let items = blocking(move || Ok(catalog.exemptions(&id)?)).await?;
    Ok(json(&json!({ "items": items })))
}

/// The log writer of this process (the route's guard has checked the
/// caller's scope already).
fn writer(st: &AppState) -> Result<ScorecardWriter, ApiError> {
    st.scorecard_writer
        .clone()
        .ok_or_else(|| ApiError::Forbidden("this process cannot write scorecard events".into()))
}

/// Who made a request, for the event it produces.
pub(crate) fn by(principal: Option<&Principal>) -> Option<String> {
    principal.map(|p| p.subject.clone())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExemptionRequest {
    entity_ref: String,
    check: String,
    reason: String,
    author: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Input(format!("invalid body: {e}")))
}

/// `POST /api/scorecards/{id}/exemptions`
#[utoipa::path(
    post,
    path = "/api/scorecards/{id}/exemptions",
    operation_id = "GrantScorecardExemption",
    tag = "Scorecards",
    description = "Exempts one check for one entity until `expiresAt` or revocation (written as an event; the read side applies it shortly). An exempt check counts as passing.",
    params(views::params::ScorecardId),
    request_body(content = views::ExemptionRequest),
    responses(
        (status = 202, description = "Accepted: the exemption is written to the event log.", body = views::Exemption,
            links(
                ("RevokeScorecardExemption" = (operation_id = "RevokeScorecardExemption", parameters(("exemptionId" = "$response.body#/id")), description = "Revoke the exemption."))
            )
        ),
        (status = 400, response = views::ErrorResponse),
        (status = 401, response = views::Unauthorized),
        (status = 403, response = views::Forbidden),
        (status = 404, response = views::ErrorResponse),
        (status = 503, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn grant(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
    principal: Option<Extension<Principal>>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let writer = writer(&st)?;
    let by = by(principal.as_ref().map(|p| &p.0));
    let req: ExemptionRequest = body(&bytes)?;
    if req.reason.trim().is_empty() || req.author.trim().is_empty() {
        return Err(ApiError::Input(
            "reason and author must not be empty".into(),
        ));
    }
    let entity = EntityRef::parse(&req.entity_ref, None, "default")
        .map_err(|e| ApiError::Input(format!("entityRef: {e}")))?;
    let catalog = st.catalog.clone();
    let (sc, check) = (id.clone(), req.check.clone());
    blocking(move || {
        let (_, def) = definition(&catalog, &sc)?;
        if !def.checks.iter().any(|c| c.id == check) {
            return Err(ApiError::Input(format!(
                "check '{check}' is not a check of '{sc}' ({})",
                def.checks
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    })
    .await?;
    let exemption = Exemption {
        id: uuid::Uuid::now_v7(),
        scorecard: id,
        entity: entity.clone(),
        check: req.check,
        reason: req.reason,
        author: req.author,
        expires_at: req.expires_at,
    };
    let event = ScorecardEvent {
        event_id: uuid::Uuid::now_v7(),
        source: SourceId::new("api"),
        at: Utc::now(),
        by,
        change: ScorecardChange::ExemptionGranted {
            exemption: exemption.clone(),
        },
    };
    write(writer, event).await?;
    Ok((StatusCode::ACCEPTED, json(&exemption)).into_response())
}

async fn write(writer: ScorecardWriter, event: ScorecardEvent) -> Result<(), ApiError> {
    tokio::task::spawn_blocking(move || writer(&event))
        .await?
        .map_err(|e| ApiError::Unavailable(format!("cannot write to the event log: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeRequest {
    author: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `DELETE /api/scorecards/exemptions/{exemptionId}` (body: author, reason)
#[utoipa::path(
    delete,
    path = "/api/scorecards/exemptions/{exemptionId}",
    operation_id = "RevokeScorecardExemption",
    tag = "Scorecards",
    description = "Revokes an exemption (written as an event; the read side applies it shortly). The author and reason come from the JSON body or, without a body, from the query.",
    params(views::params::ExemptionId, views::params::RevokeAuthor, views::params::RevokeReason),
    request_body(content = Option<views::RevokeRequest>),
    responses(
        (status = 202, description = "Accepted: the revocation is written to the event log.", body = views::RevokeResponse),
        (status = 400, response = views::ErrorResponse),
        (status = 401, response = views::Unauthorized),
        (status = 403, response = views::Forbidden),
        (status = 404, response = views::ErrorResponse),
        (status = 409, response = views::ErrorResponse),
        (status = 503, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn revoke(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
    principal: Option<Extension<Principal>>,
    params: Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let writer = writer(&st)?;
    let by = by(principal.as_ref().map(|p| &p.0));
    let req: RevokeRequest = if bytes.is_empty() {
        RevokeRequest {
            author: params.one("author")?.unwrap_or_default().to_string(),
            reason: params.one("reason")?.map(str::to_string),
        }
    } else {
        body(&bytes)?
    };
    if req.author.trim().is_empty() {
        return Err(ApiError::Input("author is required".into()));
    }
    let uuid = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::Input(format!("'{id}' is not an exemption id")))?;
    let catalog = st.catalog.clone();
    let found = blocking(move || Ok(catalog.exemption(&uuid)?)).await?;
    match found {
        None => return Err(ApiError::NotFound(format!("No exemption '{id}'"))),
        Some(x) if x.revoked.is_some() => {
            return Err(ApiError::Conflict(format!(
                "exemption '{id}' is already revoked"
            )));
        }
        Some(_) => {}
    }
    let event = ScorecardEvent {
        event_id: uuid::Uuid::now_v7(),
        source: SourceId::new("api"),
        at: Utc::now(),
        by,
        change: ScorecardChange::ExemptionRevoked {
            id: uuid,
            author: req.author,
            reason: req.reason,
        },
    };
    write(writer, event).await?;
    Ok((
        StatusCode::ACCEPTED,
        json(&json!({ "id": id, "revoked": true })),
    )
        .into_response())
}

/// `POST /api/scorecards/dry-run`: the body is a definition (YAML or
/// JSON); the answer is what it would give against the catalog now.
#[utoipa::path(
    post,
    path = "/api/scorecards/dry-run",
    operation_id = "DryRunScorecard",
    tag = "Scorecards",
    description = "Compiles the posted definition and evaluates it against the whole catalog now, saving nothing. A definition that does not compile answers 400 with every compile error, joined by `; `.",
    params(views::params::DryRunLimit),
    request_body(content((views::ScorecardDefinitionSource = "application/yaml"), (views::ScorecardDefinitionSource = "application/json"), (String = "text/plain")), description = "A definition, as YAML or JSON text (the content type is not looked at)."),
    responses(
        (status = 200, description = "Ok", body = views::DryRun),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn dry_run(
    State(st): State<AppState>,
    params: Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::Input("the definition must be UTF-8 text".into()))?;
    let keep = params.int("limit", 0)?.unwrap_or(50).min(MAX_LIMIT);
    let def = projector::scorecard::compile("request", &text).map_err(|errors| {
        ApiError::Input(
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let catalog = st.catalog.clone();
    let run = blocking(move || Ok(catalog.dry_run(&def, "request", Utc::now(), keep)?)).await?;
    Ok(json(&run))
}

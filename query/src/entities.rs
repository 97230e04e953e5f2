//! The entity routes of Backstage's catalog API, and entity history.

use crate::AppState;
use crate::error::ApiError;
use crate::params::{
    OrderField, Params, PathArgs, decode_cursor, encode_cursor, fields, order_field_params,
    order_params, parse_filter,
};
use crate::respond::{self, blocking, json, json_bytes};
use crate::views;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use projector::order::{FullText, SortKey, Start};
use proto::EntityRef;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `/entities/by-query` page size when `limit` is not given. Backstage's
/// `DefaultEntitiesCatalog.queryEntities` uses 200 (its OpenAPI text says
/// 20, the code wins).
pub const DEFAULT_QUERY_LIMIT: usize = 200;
/// Items of a `POST /entities/by-query` page without `limit` (Backstage's).
pub const DEFAULT_PREDICATE_LIMIT: usize = 200;

/// The `after` cursor of `GET /entities`: the page size, and where the next
/// page starts: after a ref key (default order) or at an offset (custom
/// order).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AfterCursor {
    limit: usize,
    #[serde(default)]
    offset: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_ref: Option<String>,
}

/// `GET /api/catalog/entities`
#[utoipa::path(
    get,
    path = "/api/catalog/entities",
    operation_id = "GetEntities",
    tag = "Entity",
    description = "All entities matching the filters, as a JSON array. With `limit`, a `Link: <...after=...>; rel=\"next\"` header points at the next page while more remain.",
    params(views::params::Filter, views::params::Fields, views::params::Limit, views::params::Offset, views::params::After, views::params::Order, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = [views::Entity], headers(("Link" = String, description = "`<url>; rel=\"next\"` when more entities remain."))),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn list(State(st): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let filter = params.filter()?;
    let fields = params.fields()?;
    let order = order_params(&params.all("order"))?;
    let mut limit = params.int("limit", 1)?;
    let mut offset = params.int("offset", 0)?.unwrap_or(0);
    let mut after_ref = None;
    if let Some(after) = params.one("after")? {
        if after.is_empty() {
            return Err(ApiError::Input("Invalid after, must not be empty".into()));
        }
        let c: AfterCursor = decode_cursor(after, "after cursor")?;
        if c.limit == 0 {
            return Err(ApiError::Input(
                "Malformed after cursor: limit must be greater than zero".into(),
            ));
        }
        limit = Some(c.limit);
        offset = c.offset;
        after_ref = c.after_ref;
    }
    let catalog = crate::asof::catalog_at(&st, crate::asof::param(&params)?).await?;
    if limit.is_none() && offset == 0 && after_ref.is_none() {
        return Ok(stream_list(catalog, filter, order, fields));
    }
    let (items, next) = blocking(move || {
        // A cursor of the ref order carries the last ref served; any other
        // page starts at an offset. The read model pages; one more than
        // asked tells whether there is a next page.
        let (start, skip) = match &after_ref {
            Some(a) if order.is_empty() => (
                projector::Start::After(projector::SortKey {
                    values: vec![],
                    refkey: a.clone(),
                }),
                offset,
            ),
            _ => (projector::Start::Offset(offset), 0),
        };
        let want = limit.map_or(usize::MAX, |l| skip.saturating_add(l).saturating_add(1));
        let selection = filter.as_ref().map(projector::Predicate::from_filter);
        let refs: Vec<String> = catalog
            .ordered_page(selection.as_ref(), &order, None, &start, want)?
            .keys
            .into_iter()
            .map(|k| k.refkey)
            .collect();
        let rest = refs.get(skip..).unwrap_or_default();
        let page = &rest[..limit.map_or(rest.len(), |l| l.min(rest.len()))];
        let next = match limit {
            Some(l) if rest.len() > l => Some(if order.is_empty() {
                AfterCursor {
                    limit: l,
                    offset: 0,
                    after_ref: page.last().cloned(),
                }
            } else {
                AfterCursor {
                    limit: l,
                    offset: offset + l,
                    after_ref: None,
                }
            }),
            _ => None,
        };
        let mut items = Vec::with_capacity(page.len());
        // Gone since the scan: skipped rather than failed.
        for stored in catalog.entities(page)?.into_iter().flatten() {
            items.push(respond::entity(stored, fields.as_deref())?);
        }
        Ok((items, next))
    })
    .await?;
    let mut resp = json_bytes(respond::array(&items));
    if let Some(next) = next {
        let query = params.replaced(&["offset"], "after", &encode_cursor(&next));
        let link = format!("</api/catalog/entities?{query}>; rel=\"next\"");
        let value = HeaderValue::from_str(&link)
            .map_err(|e| ApiError::Internal(format!("link header: {e}")))?;
        resp.headers_mut().insert(header::LINK, value);
    }
    Ok(resp)
}

/// Bytes of JSON sent per chunk of a streamed list.
const STREAM_CHUNK: usize = 256 * 1024;
/// Entities read per scan of a streamed unfiltered list.
const STREAM_SCAN: usize = 512;
/// Refs selected per page of a streamed filtered list.
const STREAM_REFS: usize = 4096;

/// The whole list, streamed: entities are read and sent a chunk at a time
/// (from the entity table directly when there is no filter and no order),
/// so a list of a million entities neither waits to be built nor is held
/// in memory. An error after the first byte cuts the answer short (the
/// status is sent by then); it is logged.
fn stream_list(
    catalog: projector::Catalog,
    filter: Option<projector::EntityFilter>,
    order: Vec<OrderField>,
    fields: Option<Vec<String>>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = Chunker {
            buf: Vec::with_capacity(STREAM_CHUNK + 4096),
            first: true,
            tx: &tx,
        };
        // Sends the entities of `refs` that are still served (gone since
        // the selection: skipped); false once the client has gone.
        let send = |out: &mut Chunker<'_>, refs: &[String]| -> Result<bool, ApiError> {
            for stored in catalog.entities(refs)?.into_iter().flatten() {
                if !out.push(respond::entity(stored, fields.as_deref())?) {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        let result = (|| -> Result<bool, ApiError> {
            out.buf.push(b'[');
            if order.is_empty() && filter.is_none() {
                let mut after: Option<String> = None;
                loop {
                    let batch = catalog.entities_after(after.as_deref(), STREAM_SCAN)?;
                    let Some((last, _)) = batch.last() else { break };
                    after = Some(last.clone());
                    let n = batch.len();
                    for (_, stored) in batch {
                        if !out.push(respond::entity(stored, fields.as_deref())?) {
                            return Ok(false);
                        }
                    }
                    if n < STREAM_SCAN {
                        break;
                    }
                }
            } else if order.is_empty() {
                // Filtered, in ref order: a page of refs at a time from the
                // posting lists.
                let selection = filter.as_ref().map(projector::Predicate::from_filter);
                let mut after: Option<String> = None;
                loop {
                    let start = match &after {
                        Some(a) => projector::RefStart::After(a),
                        None => projector::RefStart::Offset(0),
                    };
                    let page = catalog.page_in_ref_order(selection.as_ref(), start, STREAM_REFS)?;
                    for refs in page.refs.chunks(STREAM_SCAN) {
                        if !send(&mut out, refs)? {
                            return Ok(false);
                        }
                    }
                    if page.refs.len() < STREAM_REFS {
                        break;
                    }
                    after = page.refs.last().cloned();
                }
            } else {
                let selection = filter.as_ref().map(projector::Predicate::from_filter);
                let sorted = catalog.ordered(selection.as_ref(), &order)?;
                for keys in sorted.chunks(STREAM_SCAN) {
                    let refs: Vec<String> = keys.iter().map(|k| k.refkey.clone()).collect();
                    if !send(&mut out, &refs)? {
                        return Ok(false);
                    }
                }
            }
            out.buf.push(b']');
            Ok(out.flush())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "a streamed list was cut short");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = axum::body::Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Gathers a streamed JSON array into chunks.
struct Chunker<'a> {
    buf: Vec<u8>,
    first: bool,
    tx: &'a tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
}

impl Chunker<'_> {
    /// Adds one item; false when the client went away.
    fn push(&mut self, item: Vec<u8>) -> bool {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.extend_from_slice(&item);
        if self.buf.len() >= STREAM_CHUNK {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(STREAM_CHUNK + 4096));
        chunk.is_empty() || self.tx.blocking_send(Ok(chunk)).is_ok()
    }
}

/// What a by-query cursor carries so that following pages need only it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuerySpec {
    #[serde(default)]
    filter: Vec<String>,
    /// A predicate query (`POST /entities/by-query`), instead of `filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
    /// `totalItems=exclude`: report 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    exclude_total: bool,
    #[serde(default)]
    order_fields: Vec<OrderField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_text_filter: Option<FullTextFilter>,
    /// `asOf`: the instant read (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    as_of: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FullTextFilter {
    term: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fields: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryCursor {
    query: QuerySpec,
    /// The last item of the page before (next) or first of the page after
    /// (previous).
    position: SortKey,
    is_previous: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_cursor: Option<String>,
}

/// `GET /api/catalog/entities/by-query`
#[utoipa::path(
    get,
    path = "/api/catalog/entities/by-query",
    operation_id = "GetEntitiesByQuery",
    tag = "Entity",
    description = "A page of the entities matching a query, with their total count and cursors.",
    params(views::params::Filter, views::params::Fields, views::params::QueryLimit, views::params::Offset, views::params::OrderField, views::params::Cursor, views::params::FullTextFilterTerm, views::params::FullTextFilterFields, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::EntitiesQueryResponse),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn by_query(State(st): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let fields = params.fields()?;
    let limit = params.int("limit", 0)?.unwrap_or(DEFAULT_QUERY_LIMIT);
    // As in Backstage, a cursor carries the query; filter, orderField and
    // the full-text filter of the request are then ignored.
    let (spec, start) = match params.one("cursor")? {
        Some(c) => from_cursor(c)?,
        None => {
            let filter = params.all("filter");
            parse_filter(&filter)?;
            let order_fields = order_field_params(&params.all("orderField"))?;
            let term = params
                .one("fullTextFilterTerm")?
                .map(str::trim)
                .unwrap_or_default();
            let full_text_filter = (!term.is_empty()).then(|| FullTextFilter {
                term: term.to_string(),
                fields: params
                    .list("fullTextFilterFields")
                    .iter()
                    .map(|f| f.to_lowercase())
                    .collect(),
            });
            let spec = QuerySpec {
                filter,
                query: None,
                exclude_total: total_items(params.one("totalItems")?)?,
                order_fields,
                full_text_filter,
                as_of: crate::asof::param(&params)?,
            };
            (spec, Start::Offset(params.int("offset", 0)?.unwrap_or(0)))
        }
    };
    let catalog = crate::asof::catalog_at(&st, spec.as_of).await?;
    let exclude = spec.exclude_total;
    let (items, total, next, prev) =
        blocking(move || run_query(&catalog, &spec, start, limit, fields.as_deref())).await?;
    respond_page(items, if exclude { 0 } else { total }, next, prev)
}

/// The query a cursor carries, and where its page starts.
fn from_cursor(c: &str) -> Result<(QuerySpec, Start), ApiError> {
    if c.is_empty() {
        return Err(ApiError::Input("Cursor cannot be empty".into()));
    }
    let c: QueryCursor = decode_cursor(c, "cursor")?;
    // Fail on a forged cursor here rather than in the scan.
    selection(&c.query)?;
    let start = if c.is_previous {
        Start::Before(c.position)
    } else {
        Start::After(c.position)
    };
    Ok((c.query, start))
}

/// `totalItems`: `include` (default) or `exclude`; whether to exclude.
fn total_items(v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("include") => Ok(false),
        Some("exclude") => Ok(true),
        Some(other) => Err(ApiError::Input(format!(
            "Invalid totalItems value {other:?}, must be include or exclude"
        ))),
    }
}

/// What a query selects: its predicate, or its GET filters as one;
/// `None`: everything.
fn selection(spec: &QuerySpec) -> Result<Option<projector::Predicate>, ApiError> {
    if let Some(q) = &spec.query {
        return projector::Predicate::parse(q)
            .map(Some)
            .map_err(|e| ApiError::Input(e.to_string()));
    }
    Ok(parse_filter(&spec.filter)?.map(|f| projector::Predicate::from_filter(&f)))
}

/// The body of `POST /entities/by-query`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PredicateQuery {
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    order_by: Option<Vec<OrderBy>>,
    #[serde(default)]
    full_text_filter: Option<BodyFullText>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    total_items: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBy {
    field: String,
    order: crate::params::Direction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyFullText {
    #[serde(default)]
    term: Option<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
}

/// Parses a JSON request body, naming what is wrong with it.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    required: bool,
) -> Result<Option<T>, ApiError> {
    let bytes = body.map_err(|e| {
        crate::error::unreadable_body(&e, |why| {
            ApiError::Input(format!("Malformed request body: {why}"))
        })
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if required {
            Err(ApiError::Input("A request body is required".into()))
        } else {
            Ok(None)
        };
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::Input(format!("Malformed request body: {e}")))
}

/// `POST /api/catalog/entities/by-query`: a predicate query
/// (`@backstage/filter-predicates`) with Backstage's body: `query`,
/// `cursor`, `limit`, `offset`, `orderBy`, `fullTextFilter`, `fields`,
/// `totalItems`. A cursor carries the query; with one, only `limit` and
/// `fields` of the body count.
#[utoipa::path(
    post,
    path = "/api/catalog/entities/by-query",
    operation_id = "QueryEntitiesByPredicate",
    tag = "Entity",
    description = "A page of the entities matching a predicate query, with their total count and cursors. A cursor carries the query: with one, only limit and fields count.",
    params(views::params::AsOf),
    request_body(content = Option<views::EntitiesPredicateQuery>),
    responses(
        (status = 200, description = "Ok", body = views::EntitiesQueryResponse),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn by_predicate(
    State(st): State<AppState>,
    params: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: PredicateQuery = json_body(body, false)?.unwrap_or(PredicateQuery {
        query: None,
        cursor: None,
        limit: None,
        offset: None,
        order_by: None,
        full_text_filter: None,
        fields: None,
        total_items: None,
    });
    let fields = crate::params::fields(
        req.fields
            .unwrap_or_default()
            .iter()
            .flat_map(|f| f.split(','))
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    )?;
    let limit = req.limit.map_or(DEFAULT_PREDICATE_LIMIT, |l| {
        usize::try_from(l).unwrap_or(usize::MAX)
    });
    let (spec, start) = match req.cursor.as_deref() {
        Some(c) => from_cursor(c)?,
        None => {
            let query = match req.query {
                Some(q @ Value::Object(_)) => Some(q),
                Some(other) => {
                    return Err(ApiError::Input(format!(
                        "Invalid query: at $: expected an object, found {other}"
                    )));
                }
                None => None,
            };
            let spec = QuerySpec {
                filter: Vec::new(),
                query,
                exclude_total: total_items(req.total_items.as_deref())?,
                order_fields: req
                    .order_by
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| OrderField {
                        field: o.field.to_lowercase(),
                        order: o.order,
                    })
                    .collect(),
                full_text_filter: req.full_text_filter.and_then(|ft| {
                    let term = ft.term.unwrap_or_default().trim().to_string();
                    (!term.is_empty()).then(|| FullTextFilter {
                        term,
                        fields: ft
                            .fields
                            .unwrap_or_default()
                            .iter()
                            .map(|f| f.to_lowercase())
                            .collect(),
                    })
                }),
                as_of: crate::asof::param(&params)?,
            };
            selection(&spec)?;
            let offset = req
                .offset
                .map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX));
            (spec, Start::Offset(offset))
        }
    };
    let catalog = crate::asof::catalog_at(&st, spec.as_of).await?;
    let exclude = spec.exclude_total;
    let (items, total, next, prev) =
        blocking(move || run_query(&catalog, &spec, start, limit, fields.as_deref())).await?;
    respond_page(items, if exclude { 0 } else { total }, next, prev)
}

/// The body of `POST /entity-facets`.
#[derive(Debug, Deserialize)]
struct PredicateFacets {
    facets: Option<Vec<String>>,
    #[serde(default)]
    query: Option<Value>,
}

/// `POST /api/catalog/entity-facets`: facets (`facets`) over the entities
/// a predicate (`query`) selects, or all.
#[utoipa::path(
    post,
    path = "/api/catalog/entity-facets",
    operation_id = "QueryEntityFacetsByPredicate",
    tag = "Entity",
    description = "Value counts of each facet over the entities a predicate query selects (all without one).",
    params(views::params::AsOf),
    request_body(content = views::EntityFacetsPredicateQuery),
    responses(
        (status = 200, description = "Ok", body = views::EntityFacetsResponse),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn facets_by_predicate(
    State(st): State<AppState>,
    params: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: PredicateFacets = json_body(body, true)?.expect("a body is required");
    let facet_keys: Vec<String> = req
        .facets
        .unwrap_or_default()
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect();
    if facet_keys.is_empty() {
        return Err(ApiError::Input("Missing or empty facets parameter".into()));
    }
    let predicate = match &req.query {
        Some(q) => {
            Some(projector::Predicate::parse(q).map_err(|e| ApiError::Input(e.to_string()))?)
        }
        None => None,
    };
    let catalog = crate::asof::catalog_at(&st, crate::asof::param(&params)?).await?;
    let body = blocking(move || {
        let key = format!("facets {facet_keys:?} {predicate:?}");
        Ok(catalog.cached(&key, || {
            catalog
                .facets_matching(&facet_keys, predicate.as_ref())
                .map(|f| facets_body(&f))
        })?)
    })
    .await?;
    Ok(json_bytes(body.as_ref().clone()))
}

/// The entities of a query (GET filters or a POST predicate) from `start`.
fn run_query(
    catalog: &projector::Catalog,
    spec: &QuerySpec,
    start: Start,
    limit: usize,
    fields: Option<&[String]>,
) -> Result<QueryPage, ApiError> {
    let selection = selection(spec)?;
    let full_text = spec.full_text_filter.as_ref().map(|ft| FullText {
        term: ft.term.clone(),
        fields: ft.fields.clone(),
    });
    let page = catalog.ordered_page(
        selection.as_ref(),
        &spec.order_fields,
        full_text.as_ref(),
        &start,
        limit,
    )?;
    page_response(
        catalog,
        spec,
        &page.keys,
        page.from,
        page.to(),
        page.total,
        limit,
        fields,
    )
}

fn respond_page(
    items: Vec<Vec<u8>>,
    total: usize,
    next: Option<String>,
    prev: Option<String>,
) -> Result<Response, ApiError> {
    let page_info = PageInfo {
        next_cursor: next,
        prev_cursor: prev,
    };
    let mut body = b"{\"items\":".to_vec();
    body.extend(respond::array(&items));
    body.extend(format!(",\"totalItems\":{total},\"pageInfo\":").as_bytes());
    body.extend(serde_json::to_vec(&page_info).expect("page info serialises"));
    body.push(b'}');
    Ok(json_bytes(body))
}

fn not_named(kind: &str, namespace: &str, name: &str) -> ApiError {
    // Backstage's wording.
    ApiError::NotFound(format!(
        "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
    ))
}

/// `GET /api/catalog/entities/by-name/{kind}/{namespace}/{name}`
/// (case-insensitive, as the ref key is).
#[utoipa::path(
    get,
    path = "/api/catalog/entities/by-name/{kind}/{namespace}/{name}",
    operation_id = "GetEntityByName",
    tag = "Entity",
    description = "One entity by its ref.",
    params(views::params::Kind, views::params::Namespace, views::params::Name, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::Entity),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn by_name(
    State(st): State<AppState>,
    PathArgs((kind, namespace, name)): PathArgs<(String, String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let key = EntityRef::new(&kind, &namespace, &name).key();
    let catalog = crate::asof::catalog_at(&st, crate::asof::param(&params)?).await?;
    match catalog.entity(&key)? {
        Some(stored) => Ok(json_bytes(stored)),
        None => Err(not_named(&kind, &namespace, &name)),
    }
}

/// `GET /api/catalog/entities/by-uid/{uid}`
#[utoipa::path(
    get,
    path = "/api/catalog/entities/by-uid/{uid}",
    operation_id = "GetEntityByUid",
    tag = "Entity",
    description = "One entity by its metadata.uid.",
    params(views::params::Uid, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::Entity),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn by_uid(
    State(st): State<AppState>,
    PathArgs(uid): PathArgs<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let catalog = crate::asof::catalog_at(&st, crate::asof::param(&params)?).await?;
    match catalog.entity_by_uid(&uid)? {
        Some(stored) => Ok(json_bytes(stored)),
        None => Err(ApiError::NotFound(format!("No entity with uid {uid}"))),
    }
}

/// `GET /api/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry`
///
/// Backstage walks up the entities that emitted this one (a Location
/// entity, the Location that found it, ...). This catalog does not model
/// Location entities or their parentage yet, so the entity is its own root
/// and the only item, with no parents.
#[utoipa::path(
    get,
    path = "/api/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry",
    operation_id = "GetEntityAncestryByName",
    tag = "Entity",
    description = "An entity's ancestry. Location-entity parentage is not tracked yet: the entity is its own root and only item.",
    params(views::params::Kind, views::params::Namespace, views::params::Name, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::EntityAncestryResponse),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn ancestry(
    State(st): State<AppState>,
    PathArgs((kind, namespace, name)): PathArgs<(String, String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let r = EntityRef::new(&kind, &namespace, &name);
    let catalog = crate::asof::catalog_at(&st, crate::asof::param(&params)?).await?;
    let Some(stored) = catalog.entity(&r.key())? else {
        return Err(ApiError::NotFound(format!("No such entity {r}")));
    };
    let entity: Value = serde_json::from_slice(&stored)
        .map_err(|e| ApiError::Internal(format!("stored entity is not JSON: {e}")))?;
    let root = served_ref(&entity).unwrap_or(r).to_string();
    Ok(json(&json!({
        "rootEntityRef": root,
        "items": [{"entity": entity, "parentEntityRefs": []}],
    })))
}

/// The ref of a served entity, as Backstage's `stringifyEntityRef` writes it.
pub(crate) fn served_ref(entity: &Value) -> Option<EntityRef> {
    let kind = entity.get("kind")?.as_str()?;
    let meta = entity.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    Some(EntityRef::new(kind, namespace, name))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByRefsBody {
    entity_refs: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
    /// A predicate query (as `POST /entities/by-query`'s) the entities
    /// must also match.
    #[serde(default)]
    query: Option<serde_json::Value>,
}

/// `POST /api/catalog/entities/by-refs`: `{"items": [entity or null]}` in
/// request order. A ref that does not parse, is not served or does not
/// match the `filter` parameters or the body's `query` gives `null`.
#[utoipa::path(
    post,
    path = "/api/catalog/entities/by-refs",
    operation_id = "GetEntitiesByRefs",
    tag = "Entity",
    description = "A batch of entities by ref, in request order, null for those not found.",
    params(views::params::Filter, views::params::Fields, views::params::AsOf),
    request_body(content = views::EntitiesBatchRequest),
    responses(
        (status = 200, description = "Ok", body = views::EntitiesBatchResponse),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn by_refs(
    State(st): State<AppState>,
    params: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let malformed = |why: String| {
        ApiError::Input(format!(
            "Malformed request body (did you remember to specify an application/json content type?), {why}"
        ))
    };
    let body = body.map_err(|e| crate::error::unreadable_body(&e, malformed))?;
    let request: ByRefsBody =
        serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
    let filter = params.filter()?;
    let mut wanted = params.list("fields");
    wanted.extend(
        request
            .fields
            .iter()
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty()),
    );
    let fields = fields(wanted)?;
    let predicate = request
        .query
        .as_ref()
        .map(projector::Predicate::parse)
        .transpose()
        .map_err(|e| ApiError::Input(e.to_string()))?;
    let catalog = crate::asof::catalog_at(&st, crate::asof::param(&params)?).await?;
    let items = blocking(move || {
        let selected = predicate.as_ref().map(|p| catalog.select(p)).transpose()?;
        let mut items = Vec::with_capacity(request.entity_refs.len());
        for r in &request.entity_refs {
            let key = match EntityRef::parse(r, None, "default") {
                Ok(r) => r.key(),
                Err(_) => {
                    items.push(b"null".to_vec());
                    continue;
                }
            };
            let chosen = selected
                .as_ref()
                .is_none_or(|refs| refs.binary_search(&key).is_ok());
            let stored = match catalog.entity(&key)? {
                Some(s) if chosen && catalog.entity_matches(&key, filter.as_ref())? => s,
                _ => {
                    items.push(b"null".to_vec());
                    continue;
                }
            };
            items.push(respond::entity(stored, fields.as_deref())?);
        }
        Ok(items)
    })
    .await?;
    let mut body = b"{\"items\":".to_vec();
    body.extend(respond::array(&items));
    body.push(b'}');
    Ok(json_bytes(body))
}

#[derive(Serialize)]
struct FacetValue<'a> {
    value: &'a str,
    count: u64,
}

#[derive(Serialize)]
struct FacetsBody<'a> {
    facets: BTreeMap<&'a str, Vec<FacetValue<'a>>>,
}

/// `GET /api/catalog/entity-facets?facet=kind&filter=...`
#[utoipa::path(
    get,
    path = "/api/catalog/entity-facets",
    operation_id = "GetEntityFacets",
    tag = "Entity",
    description = "Value counts of the given facets over the entities matching the filters.",
    params(views::params::Facet, views::params::Filter, views::params::AsOf),
    responses(
        (status = 200, description = "Ok", body = views::EntityFacetsResponse),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn facets(State(st): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let facet_keys: Vec<String> = params
        .all("facet")
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect();
    if facet_keys.is_empty() {
        return Err(ApiError::Input("Missing facet parameter".into()));
    }
    let filter = params.filter()?;
    let catalog = crate::asof::catalog_at(&st, crate::asof::param(&params)?).await?;
    // Counted and written once per store version, facet keys and filter.
    let body = blocking(move || {
        let key = format!("facets {facet_keys:?} {filter:?}");
        Ok(catalog.cached(&key, || {
            catalog
                .facets(&facet_keys, filter.as_ref())
                .map(|f| facets_body(&f))
        })?)
    })
    .await?;
    Ok(json_bytes(body.as_ref().clone()))
}

/// `{"facets": {key: [{value, count}]}}`.
/// The answer of the facets routes, written once (a high-cardinality
/// facet has thousands of values) and kept with the counts.
fn facets_body(facets: &BTreeMap<String, Vec<(String, u64)>>) -> Vec<u8> {
    let body = FacetsBody {
        facets: facets
            .iter()
            .map(|(k, values)| {
                let values = values
                    .iter()
                    .map(|(value, count)| FacetValue {
                        value,
                        count: *count,
                    })
                    .collect();
                (k.as_str(), values)
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("facets serialise")
}

/// `GET /api/history/entities/{kind}/{namespace}/{name}`: every effective
/// change of the entity, oldest first, deletions included.
#[utoipa::path(
    get,
    path = "/api/history/entities/{kind}/{namespace}/{name}",
    operation_id = "GetEntityHistory",
    tag = "History",
    description = "Every effective change of an entity, oldest first, deletions included.",
    params(views::params::Kind, views::params::Namespace, views::params::Name),
    responses(
        (status = 200, description = "Ok", body = views::EntityHistory),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn history(
    State(st): State<AppState>,
    PathArgs((kind, namespace, name)): PathArgs<(String, String, String)>,
) -> Result<Response, ApiError> {
    let r = EntityRef::new(&kind, &namespace, &name);
    let catalog = st.catalog.clone();
    let key = r.key();
    let changes = blocking(move || Ok(catalog.history(&key)?)).await?;
    if changes.is_empty() {
        return Err(ApiError::NotFound(format!("No history for entity '{r}'")));
    }
    // The name as the entity spells it, when a change recorded it.
    let entity_ref = changes
        .iter()
        .rev()
        .find_map(|c| c.entity.as_ref().map(|e| e.entity_ref().to_string()))
        .unwrap_or_else(|| r.to_string());
    Ok(json(
        &json!({ "entityRef": entity_ref, "changes": changes }),
    ))
}

/// Items, total and cursors of one by-query page.
type QueryPage = (Vec<Vec<u8>>, usize, Option<String>, Option<String>);

/// Reads the page's entities and makes the cursors around it.
#[allow(clippy::too_many_arguments)]
fn page_response(
    catalog: &projector::Catalog,
    spec: &QuerySpec,
    page: &[SortKey],
    from: usize,
    to: usize,
    total: usize,
    limit: usize,
    fields: Option<&[String]>,
) -> Result<QueryPage, ApiError> {
    let cursor = |position: &SortKey, is_previous: bool| {
        encode_cursor(&QueryCursor {
            query: spec.clone(),
            position: position.clone(),
            is_previous,
        })
    };
    let next = page
        .last()
        .filter(|_| limit > 0 && to < total)
        .map(|k| cursor(k, false));
    let prev = page.first().filter(|_| from > 0).map(|k| cursor(k, true));
    let refs: Vec<String> = page.iter().map(|k| k.refkey.clone()).collect();
    let mut items = Vec::with_capacity(page.len());
    // Gone since the page was selected: skipped.
    for stored in catalog.entities(&refs)?.into_iter().flatten() {
        items.push(respond::entity(stored, fields)?);
    }
    Ok((items, total, next, prev))
}

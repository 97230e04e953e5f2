//! The change feed: `GET /api/history/events` (pages, long polls) and
//! `GET /api/history/events/stream` (Server-Sent Events), every effective
//! change in the order the projector committed it. Shaped after Backstage's
//! catalog history module (`eventId`, `eventAt`, `eventType` named
//! `entity_created` ... `location_deleted`, `entityRef`, `entityId`,
//! `locationRef`, `locationId`; a cursor to continue from; a blocking
//! read), with the body before and after each entity change, or their JSON
//! Patch with `diff=patch`.

use crate::AppState;
use crate::error::ApiError;
use crate::params::Params;
use crate::respond::{blocking, json_bytes};
use crate::views;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use projector::feed::{FeedEntry, FeedKind, FeedRecord};
use projector::{Catalog, EntityFilter};
use proto::EntityRef;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue as RawJson;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// Items per page unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Feed records one request reads at most, so that a selective filter over
/// a long feed answers in bounded time (its cursor moves on regardless).
const SCAN_BUDGET: usize = 50_000;
/// The longest `wait`.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting reader looks for new changes.
const POLL: Duration = Duration::from_millis(100);

/// What a reader asked for.
#[derive(Debug, Clone)]
struct Selection {
    /// Change types; empty: all.
    types: BTreeSet<FeedKind>,
    /// Entity kinds (lower case); empty: all.
    entity_kinds: BTreeSet<String>,
    /// Entity ref keys; empty: all.
    refs: BTreeSet<String>,
    /// Location keys; empty: all.
    locations: BTreeSet<String>,
    /// The GET filter language, on the entity's body (after the change, or
    /// before it for a deletion); only entity changes pass it.
    filter: Option<EntityFilter>,
    patch: bool,
}

impl Selection {
    fn parse(p: &Params) -> Result<Selection, ApiError> {
        let mut sel = Selection {
            types: BTreeSet::new(),
            entity_kinds: BTreeSet::new(),
            refs: BTreeSet::new(),
            locations: p.list("location").into_iter().collect(),
            filter: crate::params::parse_filter(&p.all("filter"))?,
            patch: false,
        };
        for t in p.list("kind") {
            let t = t.to_ascii_lowercase();
            match t.as_str() {
                "entity" => sel
                    .types
                    .extend(FeedKind::ALL.iter().filter(|k| k.is_entity())),
                "location" => sel
                    .types
                    .extend(FeedKind::ALL.iter().filter(|k| k.is_location())),
                "scorecard" => {
                    sel.types.insert(FeedKind::ScorecardChanged);
                }
                _ => match FeedKind::ALL.iter().find(|k| k.as_str() == t) {
                    Some(k) => {
                        sel.types.insert(*k);
                    }
                    // Anything else names an entity kind (`component`).
                    None => {
                        sel.entity_kinds.insert(t);
                    }
                },
            }
        }
        for r in p.all("entityRef") {
            let parsed = EntityRef::parse(&r, None, "default")
                .map_err(|e| ApiError::Input(format!("Invalid entityRef {r:?}: {e}")))?;
            sel.refs.insert(parsed.key());
        }
        sel.patch = match p.one("diff")? {
            None | Some("full") => false,
            Some("patch") => true,
            Some(other) => {
                return Err(ApiError::Input(format!(
                    "Invalid diff {other:?}: expected full or patch"
                )));
            }
        };
        Ok(sel)
    }

    /// What can be decided from the record alone.
    fn keeps(&self, r: &FeedRecord) -> bool {
        if !self.types.is_empty() && !self.types.contains(&r.kind) {
            return false;
        }
        if !self.locations.is_empty() && !self.locations.contains(r.location.as_str()) {
            return false;
        }
        let entity_only =
            !self.refs.is_empty() || !self.entity_kinds.is_empty() || self.filter.is_some();
        match &r.entity {
            None => !entity_only,
            Some(e) => {
                (self.refs.is_empty() || self.refs.contains(e))
                    && (self.entity_kinds.is_empty()
                        || e.split_once(':')
                            .is_some_and(|(kind, _)| self.entity_kinds.contains(kind)))
            }
        }
    }
}

/// The cursor: the last sequence number a reader has seen. `now` is the
/// feed's current end, for a reader that wants only what comes next (a
/// page opening a live view); a reconnecting stream's `Last-Event-ID` wins
/// over it.
fn cursor(catalog: &Catalog, p: &Params, headers: Option<&HeaderMap>) -> Result<u64, ApiError> {
    let from_header = headers
        .and_then(|h| h.get("last-event-id"))
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let given = match (p.one("after")?, p.one("cursor")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Input("Give after or cursor, not both".into()));
        }
        (Some("now"), None) if from_header.is_some() => from_header,
        (Some(c), None) | (None, Some(c)) => Some(c.to_owned()),
        (None, None) => from_header,
    };
    match given.as_deref() {
        None | Some("") | Some("0") => Ok(0),
        Some("now") => Ok(catalog.feed_last()?),
        Some(c) => c.parse::<u64>().map_err(|_| {
            ApiError::Input(format!(
                "Malformed cursor {c:?}: expected the eventId of a change, or now"
            ))
        }),
    }
}

/// One change as the API shows it: its JSON, written once (the bodies
/// before and after go in as their stored text, never parsed unless a
/// filter or a patch needs them), and what the event stream labels it with.
pub struct Shown {
    pub event_id: u64,
    pub event_type: &'static str,
    pub json: Box<RawJson>,
    /// How many entity bodies it carries (before, after).
    pub bodies: usize,
}

/// The item's fields in the order they are written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemOut<'a> {
    event_id: String,
    event_at: String,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scorecard: Option<&'a projector::feed::ScorecardOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location_ref: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location_id: Option<String>,
    source: &'a str,
    log_event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<json_patch::Patch>,
    /// Present (`null` when there is none) for entity changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<Option<&'a RawJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<Option<&'a RawJson>>,
}

/// The served ref's parts of an entity body, read without building a tree.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    metadata: HeadMeta<'a>,
}

#[derive(Deserialize)]
struct HeadMeta<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
}

fn served_ref(body: &RawJson) -> Option<EntityRef> {
    let h: Head = serde_json::from_str(body.get()).ok()?;
    let namespace = h.metadata.namespace.as_deref().unwrap_or("default");
    Some(EntityRef::new(&h.kind, namespace, &h.metadata.name))
}

fn tree(body: Option<&RawJson>) -> Option<Value> {
    body.and_then(|b| serde_json::from_str(b.get()).ok())
}

/// One change as the API shows it, with its bodies read already.
fn item(
    catalog: &Catalog,
    e: &FeedEntry,
    bodies: projector::read::FeedBodies,
    sel: &Selection,
) -> Result<Option<Shown>, ApiError> {
    let r = &e.record;
    let mut out = ItemOut {
        event_id: e.seq.to_string(),
        event_at: r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event_type: r.kind.as_str(),
        entity_ref: None,
        entity_id: None,
        scorecard: None,
        location_ref: None,
        location_id: None,
        source: r.source.as_str(),
        log_event_id: r.event_id.to_string(),
        by: r.by.as_deref(),
        errors: r.errors,
        patch: None,
        before: None,
        after: None,
    };
    let (mut before, mut after) = (None, None);
    if let (Some(key), Some(sc)) = (&r.entity, &r.scorecard) {
        if let Some(filter) = &sel.filter {
            let now = catalog
                .entity(key)?
                .and_then(|b| serde_json::from_slice(&b).ok());
            if !now.is_some_and(|b: Value| filter.matches(&b)) {
                return Ok(None);
            }
        }
        out.entity_ref = Some(key.clone());
        out.entity_id = Some(proto::ids::entity_id(key).to_string());
        out.scorecard = Some(sc);
    } else if let Some(key) = &r.entity {
        (before, after) = bodies;
        if r.kind == FeedKind::EntityDeleted {
            after = None;
        }
        if r.kind == FeedKind::EntityCreated {
            before = None;
        }
        let seen = after.as_deref().or(before.as_deref());
        if let Some(filter) = &sel.filter
            && !tree(seen).is_some_and(|b| filter.matches(&b))
        {
            return Ok(None);
        }
        out.entity_ref = Some(
            seen.and_then(served_ref)
                .map(|r| r.to_string())
                .unwrap_or_else(|| key.clone()),
        );
        out.entity_id = Some(proto::ids::entity_id(key).to_string());
    }
    if !r.location.as_str().is_empty() {
        out.location_ref = Some(r.location.as_str());
        out.location_id = Some(proto::ids::location_id(r.location.as_str()).to_string());
    }
    let mut bodies = 0;
    if r.entity.is_some() && r.scorecard.is_none() {
        if sel.patch {
            let empty = Value::Object(Map::new());
            let (b, a) = (tree(before.as_deref()), tree(after.as_deref()));
            out.patch = Some(json_patch::diff(
                b.as_ref().unwrap_or(&empty),
                a.as_ref().unwrap_or(&empty),
            ));
        } else {
            bodies = usize::from(before.is_some()) + usize::from(after.is_some());
            out.before = Some(before.as_deref());
            out.after = Some(after.as_deref());
        }
    }
    let json = serde_json::value::to_raw_value(&out).expect("feed items serialise");
    Ok(Some(Shown {
        event_id: e.seq,
        event_type: r.kind.as_str(),
        json,
        bodies,
    }))
}

/// One page after `after`: the items and the cursor to continue from.
fn page(
    catalog: &Catalog,
    after: u64,
    limit: usize,
    sel: &Selection,
) -> Result<(Vec<Shown>, u64), ApiError> {
    let (entries, last) = catalog.feed(after, limit, SCAN_BUDGET, &mut |r| sel.keeps(r))?;
    // Reading the bodies before and after each change is most of the
    // work, and from a cold store most of that is waiting for the disk: a
    // long page is read by eight threads at once (in order), which keeps
    // enough reads in flight (measured at 100k entities from a cold page
    // cache: 23k changes/s on two threads, 31k on four, 42k on eight, 45k
    // on sixteen; from memory 83k, 73k, 66k).
    let workers = 8;
    let show = |part: &[FeedEntry]| -> Result<Vec<Shown>, ApiError> {
        let records: Vec<&FeedRecord> = part.iter().map(|e| &e.record).collect();
        let bodies = catalog.feed_entities_each(&records)?;
        let mut items = Vec::with_capacity(part.len());
        for (e, b) in part.iter().zip(bodies) {
            if let Some(v) = item(catalog, e, b, sel)? {
                items.push(v);
            }
        }
        Ok(items)
    };
    if entries.len() < 64 {
        return Ok((show(&entries)?, last));
    }
    let per = entries.len().div_ceil(workers);
    let parts: Vec<Result<Vec<Shown>, ApiError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(per)
            .map(|part| scope.spawn(move || show(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut items = Vec::with_capacity(entries.len());
    for part in parts {
        items.extend(part?);
    }
    Ok((items, last))
}

/// A page as `GET /api/history/events` answers it.
fn page_json(items: &[Shown], last: u64) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PageOut<'a> {
        items: Vec<&'a RawJson>,
        page_info: PageInfo,
    }
    #[derive(Serialize)]
    struct PageInfo {
        cursor: String,
    }
    serde_json::to_vec(&PageOut {
        items: items.iter().map(|i| &*i.json).collect(),
        page_info: PageInfo {
            cursor: last.to_string(),
        },
    })
    .expect("feed pages serialise")
}

/// Every change after `after` as `GET /api/history/events` shows it (all
/// types, bodies before and after), `limit` at a time: the items and the
/// cursor to continue from. For measuring the feed as clients read it.
pub fn page_of_everything(
    catalog: &Catalog,
    after: u64,
    limit: usize,
) -> Result<(Vec<Shown>, u64), String> {
    let sel = Selection {
        types: BTreeSet::new(),
        entity_kinds: BTreeSet::new(),
        refs: BTreeSet::new(),
        locations: BTreeSet::new(),
        filter: None,
        patch: false,
    };
    page(catalog, after, limit, &sel).map_err(|e| format!("{e:?}"))
}

/// `GET /api/history/events?after=&limit=&kind=&entityRef=&location=&filter=&diff=&wait=`:
/// changes after the cursor, oldest first. With `wait=<seconds>` an empty
/// page waits that long for a change (a long poll).
#[utoipa::path(
    get,
    path = "/api/history/events",
    operation_id = "GetHistoryEvents",
    tag = "History",
    description = "Every effective change (entities created, updated, deleted; locations created, updated, deleted; scorecard outcomes changed, with `scorecard`: id, levels and scores before and after, checks that changed, cause) in commit order, after a cursor. Shaped after Backstage's catalog history module.",
    params(views::params::Filter, views::params::HistoryEventsQuery, views::params::LongPoll),
    responses(
        (status = 200, description = "Ok", body = views::HistoryEventPage),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn events(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let sel = Selection::parse(&p)?;
    let after = cursor(&st.catalog, &p, None)?;
    let limit = p.int("limit", 1)?.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let wait = match p.one("wait")? {
        None => Duration::ZERO,
        Some(w) => {
            let secs: f64 = w
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| ApiError::Input(format!("Invalid wait {w:?}: expected seconds")))?;
            // Answer before the request's own time limit.
            let cap = MAX_WAIT.min(
                st.limits
                    .request_timeout
                    .saturating_sub(Duration::from_secs(1)),
            );
            Duration::from_secs_f64(secs.min(cap.as_secs_f64()))
        }
    };
    let deadline = Instant::now() + wait;
    let mut from = after;
    loop {
        let catalog = st.catalog.clone();
        let s = sel.clone();
        let (items, last) = blocking(move || page(&catalog, from, limit, &s)).await?;
        if !items.is_empty() || Instant::now() >= deadline {
            return Ok(json_bytes(page_json(&items, last)));
        }
        from = last;
        tokio::time::sleep(POLL).await;
    }
}

/// `GET /api/history/events/stream`: the same changes as Server-Sent
/// Events (`id` the eventId, `event` the eventType, `data` the item),
/// from `after` or the `Last-Event-ID` a reconnecting client sends, then
/// live as they are committed.
#[utoipa::path(
    get,
    path = "/api/history/events/stream",
    operation_id = "StreamHistoryEvents",
    tag = "History",
    description = "The same changes as Server-Sent Events (`id`: eventId, `event`: eventType, `data`: the change as JSON), from `after` or the `Last-Event-ID` header, then live. Never ends by itself.",
    params(views::params::Filter, views::params::HistoryEventsQuery, views::params::StreamHistoryEventsHeader),
    responses(
        (status = 200, description = "An event stream", body = String, content_type = "text/event-stream"),
        (status = 400, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn stream(
    State(st): State<AppState>,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    let sel = Selection::parse(&p)?;
    let after = cursor(&st.catalog, &p, Some(&headers))?;
    let catalog = st.catalog.clone();
    let events = feed_stream(catalog, sel, after);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn feed_stream(
    catalog: Catalog,
    sel: Selection,
    after: u64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct At {
        catalog: Catalog,
        sel: Selection,
        after: u64,
        ready: std::collections::VecDeque<Event>,
        done: bool,
    }
    // A first comment, at once, so the client sees the stream open (its
    // headers and this line) before any change arrives, and a reconnect
    // delay to follow after a dropped connection.
    let opening = Event::default()
        .comment("following the change feed")
        .retry(Duration::from_secs(2));
    let start = At {
        catalog,
        sel,
        after,
        ready: std::collections::VecDeque::from([opening]),
        done: false,
    };
    stream::unfold(start, |mut at| async move {
        loop {
            if let Some(e) = at.ready.pop_front() {
                return Some((Ok(e), at));
            }
            if at.done {
                return None;
            }
            let (catalog, s, from) = (at.catalog.clone(), at.sel.clone(), at.after);
            let read = blocking(move || page(&catalog, from, DEFAULT_LIMIT, &s)).await;
            match read {
                Ok((items, last)) => {
                    at.after = last;
                    for v in items {
                        at.ready.push_back(
                            Event::default()
                                .id(v.event_id.to_string())
                                .event(v.event_type)
                                .data(v.json.get()),
                        );
                    }
                    if at.ready.is_empty() {
                        tokio::time::sleep(POLL).await;
                    }
                }
                Err(e) => {
                    // Tell the client and end; it reconnects from its last id.
                    at.ready
                        .push_back(Event::default().event("error").data(e.to_string()));
                    at.done = true;
                }
            }
        }
    })
}

//! Locations, as Backstage's location API reports them, and their errors;
//! registering, updating and unregistering them, and the deletion of one
//! entity, as events in the log.

use crate::error::ApiError;
use crate::params::PathArgs;
use crate::respond::{blocking, json};
use crate::views;
use crate::{AppState, Principal};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use projector::{Catalog, Predicate};
use proto::{
    EntityEvent, EntityRef, LocationChange, LocationCommand, LocationKey, LocationOutcome,
    Observation, ObservedContent, ProcessingError, SourceId, Versioned, topics,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the API may know of registrable locations: which targets may be
/// registered, and what one holds now (for dry runs and analysis). The
/// binary implements it with ingest's reader, so the API reads a location
/// exactly as ingest will.
pub trait LocationAccess: Send + Sync {
    /// The location key of registering `target` as `kind`, or why it may
    /// not be registered (in Backstage's words where it has some).
    fn key_of(&self, kind: &str, target: &str) -> Result<LocationKey, String>;
    /// What the location holds now, and every location it reaches through
    /// its `Location` entities: `(location, origin, content)`.
    fn read(&self, key: &LocationKey) -> Vec<(LocationKey, LocationKey, ObservedContent)>;
}

/// Appends one message to the event log and flushes: `(topic, key, value)`.
pub type LogWriter = Arc<dyn Fn(&str, &[u8], &[u8]) -> Result<(), String> + Send + Sync>;

/// How long a write waits for its effect to be readable before answering
/// (the event is in the log either way).
const SETTLE: Duration = Duration::from_secs(10);

/// Backstage's `Location`: `{"id", "type", "target", "entityRef"}`.
#[derive(Serialize)]
struct Location<'a> {
    id: String,
    #[serde(rename = "type")]
    location_type: &'a str,
    target: &'a str,
    #[serde(rename = "entityRef")]
    entity_ref: String,
}

/// The ref Backstage gives the `Location` entity of a registered location:
/// `location:default/generated-` + SHA-1 of `type:target`.
fn location_entity_ref(location_type: &str, target: &str) -> String {
    let digest = sha1::Sha1::digest(format!("{location_type}:{target}").as_bytes());
    format!("location:default/generated-{}", hex::encode(digest))
}

impl<'a> Location<'a> {
    fn of(rec: &'a projector::Location) -> Self {
        let (location_type, target) = rec.location.type_and_target();
        Location {
            id: rec.id.to_string(),
            location_type,
            target,
            entity_ref: location_entity_ref(location_type, target),
        }
    }
}

#[derive(Serialize)]
struct Data<'a> {
    data: Location<'a>,
}

#[derive(Serialize)]
struct LocationErrors<'a> {
    location: Location<'a>,
    errors: Vec<ProcessingError>,
}

/// `GET /api/catalog/locations`
#[utoipa::path(
    get,
    path = "/api/catalog/locations",
    operation_id = "GetLocations",
    tag = "Locations",
    description = "All locations.",
    responses(
        (status = 200, description = "Ok", body = inline(Vec<views::GetLocationsResponseItem>)),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn list(State(st): State<AppState>) -> Result<Response, ApiError> {
    let catalog = st.catalog.clone();
    let locations = blocking(move || Ok(catalog.locations()?)).await?;
    let out: Vec<Data> = locations
        .iter()
        .map(|l| Data {
            data: Location::of(l),
        })
        .collect();
    Ok(json(&out))
}

async fn find(st: &AppState, id: String) -> Result<projector::Location, ApiError> {
    let catalog = st.catalog.clone();
    let found = blocking({
        let id = id.clone();
        move || Ok(catalog.location_by_id(&id)?)
    })
    .await?;
    // Backstage's wording.
    found.ok_or_else(|| ApiError::NotFound(format!("Found no location with ID {id}")))
}

/// `GET /api/catalog/locations/{id}`
#[utoipa::path(
    get,
    path = "/api/catalog/locations/{id}",
    operation_id = "GetLocation",
    tag = "Locations",
    description = "One location by id.",
    params(views::params::LocationId),
    responses(
        (status = 200, description = "Ok", body = views::Location),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn by_id(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let rec = find(&st, id).await?;
    Ok(json(&Location::of(&rec)))
}

/// `GET /api/catalog/locations/{id}/errors`: the location's processing
/// errors and a conflict error for every entity another location provides.
#[utoipa::path(
    get,
    path = "/api/catalog/locations/{id}/errors",
    operation_id = "GetLocationErrors",
    tag = "Locations",
    description = "A location's processing errors, plus a conflict error for each entity another location already provides.",
    params(views::params::LocationId),
    responses(
        (status = 200, description = "Ok", body = views::LocationErrors),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn errors(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let rec = find(&st, id).await?;
    let errors = st.catalog.location_errors(&rec)?;
    Ok(json(&LocationErrors {
        location: Location::of(&rec),
        errors,
    }))
}

/// `GET /api/catalog/errors`: every location that has errors, for operators.
#[utoipa::path(
    get,
    path = "/api/catalog/errors",
    operation_id = "GetErrors",
    tag = "Locations",
    description = "Every location that has errors, with them.",
    responses(
        (status = 200, description = "Ok", body = [views::LocationErrors]),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn all_errors(State(st): State<AppState>) -> Result<Response, ApiError> {
    let catalog = st.catalog.clone();
    let found = blocking(move || {
        let mut out = Vec::new();
        for rec in catalog.locations()? {
            let errors = catalog.location_errors(&rec)?;
            if !errors.is_empty() {
                out.push((rec, errors));
            }
        }
        Ok(out)
    })
    .await?;
    let out: Vec<LocationErrors> = found
        .iter()
        .map(|(rec, errors)| LocationErrors {
            location: Location::of(rec),
            errors: errors.clone(),
        })
        .collect();
    Ok(json(&out))
}

/// Who made a request, for the event it produces.
fn by(principal: Option<&Extension<Principal>>) -> Option<String> {
    crate::scorecards::by(principal.map(|p| &p.0))
}

fn log_writer(st: &AppState) -> Result<LogWriter, ApiError> {
    st.log_writer
        .clone()
        .ok_or_else(|| ApiError::Unavailable("this process cannot write to the event log".into()))
}

fn access(st: &AppState) -> Result<Arc<dyn LocationAccess>, ApiError> {
    st.location_access.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "this process cannot read locations; ask the one that runs ingest".into(),
        )
    })
}

async fn append(
    writer: LogWriter,
    topic: &'static str,
    key: String,
    value: Vec<u8>,
) -> Result<(), ApiError> {
    tokio::task::spawn_blocking(move || writer(topic, key.as_bytes(), &value))
        .await?
        .map_err(|e| ApiError::Unavailable(format!("cannot write to the event log: {e}")))
}

async fn command(
    st: &AppState,
    location: &LocationKey,
    change: LocationChange,
    by: Option<String>,
) -> Result<(), ApiError> {
    let cmd = LocationCommand {
        event_id: uuid::Uuid::now_v7(),
        at: Utc::now(),
        by,
        location: location.clone(),
        change,
    };
    append(
        log_writer(st)?,
        topics::LOCATIONS,
        location.as_str().to_owned(),
        cmd.encode(),
    )
    .await
}

/// Polls the read model until `done` holds or [`SETTLE`] passes; whether
/// it held.
async fn settle(
    catalog: &Catalog,
    done: impl Fn(&Catalog) -> Result<bool, ApiError> + Send + Sync + 'static,
) -> Result<bool, ApiError> {
    let done = Arc::new(done);
    let start = Instant::now();
    loop {
        let (c, d) = (catalog.clone(), done.clone());
        if blocking(move || d(&c)).await? {
            return Ok(true);
        }
        if start.elapsed() > SETTLE {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A request body: JSON of `T`, refused with Backstage's wording.
fn body_of<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    optional_body(body)?.ok_or_else(|| ApiError::Input("Missing request body".into()))
}

/// [`body_of`] for a body that may be absent (`None` when empty).
fn optional_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<T>, ApiError> {
    let bytes = body.map_err(|e| {
        crate::error::unreadable_body(&e, |why| {
            ApiError::Input(format!("Malformed request: {why}"))
        })
    })?;
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::Input(format!("Malformed request: {e}")))
}

/// Backstage's `LocationInput`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationInput {
    #[serde(rename = "type")]
    location_type: String,
    target: String,
    #[serde(default)]
    #[allow(dead_code)]
    presence: Option<Presence>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Presence {
    Required,
    Optional,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateParams {
    #[serde(default)]
    dry_run: Option<String>,
    #[serde(default)]
    on_conflict: Option<String>,
}

/// `yn`'s reading of a flag: `true`, `yes`, `y`, `1`, `on` (any case).
fn yes(s: Option<&str>) -> bool {
    s.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "y" | "1" | "on"
        )
    })
}

fn key_of(st: &AppState, input: &LocationInput) -> Result<LocationKey, ApiError> {
    if input.location_type.is_empty() || input.target.is_empty() {
        return Err(ApiError::Input("type and target must not be empty".into()));
    }
    access(st)?
        .key_of(&input.location_type, &input.target)
        .map_err(ApiError::Input)
}

/// `POST /api/catalog/locations[?dryRun=true][&onConflict=reject|refresh]`:
/// registers a location (an event that ingest acts on), answering once the
/// location is readable (or after 10 s); a dry run reads and processes it
/// now and registers nothing. 201 either way, as Backstage.
#[utoipa::path(
    post,
    path = "/api/catalog/locations",
    operation_id = "CreateLocation",
    tag = "Locations",
    description = "Registers a location: an event in catalog.locations.v1 that ingest acts on (its entities then flow through the pipeline like any source's). Answers once the location is readable (or after 10 s). Needs catalog.write.",
    params(views::params::CreateLocationQuery),
    request_body(content = views::LocationInput),
    responses(
        (status = 201, description = "Registered (or, in a dry run, what it would yield)", body = views::CreateLocationResponse,
            links(
                ("GetLocation" = (operation_id = "GetLocation", parameters(("id" = "$response.body#/location/id")), description = "The registered location.")),
                ("GetLocationErrors" = (operation_id = "GetLocationErrors", parameters(("id" = "$response.body#/location/id")), description = "Its processing errors.")),
                ("UpdateLocation" = (operation_id = "UpdateLocation", parameters(("id" = "$response.body#/location/id")), description = "Change its type or target.")),
                ("DeleteLocation" = (operation_id = "DeleteLocation", parameters(("id" = "$response.body#/location/id")), description = "Unregister it."))
            )
        ),
        (status = 400, response = views::ErrorResponse),
        (status = 401, response = views::Unauthorized),
        (status = 403, response = views::Forbidden),
        (status = 409, response = views::ErrorResponse),
        (status = 503, response = views::ErrorResponse)
    )
)]
pub async fn create(
    State(st): State<AppState>,
    params: Result<Query<CreateParams>, axum::extract::rejection::QueryRejection>,
    principal: Option<Extension<Principal>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::Input(e.body_text()))?;
    let refresh_on_conflict = match params.on_conflict.as_deref() {
        None | Some("reject") => false,
        Some("refresh") => true,
        Some(other) => {
            return Err(ApiError::Input(format!(
                "request/query/onConflict must be equal to one of the allowed values: refresh, reject (got {other:?})"
            )));
        }
    };
    let input: LocationInput = body_of(body)?;
    let key = key_of(&st, &input)?;
    let (location_type, target) = {
        let (t, g) = key.type_and_target();
        (t.to_owned(), g.to_owned())
    };
    let catalog = st.catalog.clone();
    let existing = blocking({
        let key = key.clone();
        move || Ok(catalog.location(key.as_str())?)
    })
    .await?;
    if yes(params.dry_run.as_deref()) {
        return dry_run(&st, key, existing.is_some()).await;
    }
    if let Some(rec) = existing {
        if !refresh_on_conflict {
            return Err(ApiError::Conflict(format!(
                "Location {location_type}:{target} already exists"
            )));
        }
        command(&st, &key, LocationChange::Refresh, by(principal.as_ref())).await?;
        return Ok(created(&rec));
    }
    command(
        &st,
        &key,
        LocationChange::Registered,
        by(principal.as_ref()),
    )
    .await?;
    let settled = settle(&st.catalog, {
        let key = key.clone();
        move |c| Ok(c.location(key.as_str())?.is_some())
    })
    .await?;
    let id = proto::ids::location_id(key.as_str());
    if !settled {
        tracing::warn!(location = %key, "registered; not yet readable after {SETTLE:?}");
    }
    Ok((
        StatusCode::CREATED,
        json(&json!({
            "location": {
                "id": id.to_string(),
                "type": location_type,
                "target": target,
                "entityRef": location_entity_ref(&location_type, &target),
            },
            "entities": [],
        })),
    )
        .into_response())
}

fn created(rec: &projector::Location) -> Response {
    (
        StatusCode::CREATED,
        json(&json!({ "location": Location::of(rec), "entities": [] })),
    )
        .into_response()
}

/// What registering `key` would yield, processed now: Backstage's
/// `{exists, location, entities}` with the location's own `Location`
/// entity first. A location that cannot be read or processed is a 400
/// naming every error.
async fn dry_run(st: &AppState, key: LocationKey, exists: bool) -> Result<Response, ApiError> {
    let access = access(st)?;
    let (location_type, target) = {
        let (t, g) = key.type_and_target();
        (t.to_owned(), g.to_owned())
    };
    let read = {
        let key = key.clone();
        blocking(move || Ok(process_all(access.read(&key)))).await?
    };
    let (entities, errors) = read;
    if !errors.is_empty() {
        return Err(ApiError::Input(
            errors
                .iter()
                .map(|e| format!("{}: {}", error_name(e), e.message))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    let entity_ref = location_entity_ref(&location_type, &target);
    let name = entity_ref
        .trim_start_matches("location:default/")
        .to_owned();
    let mut out = vec![json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {
                "backstage.io/managed-by-location": key.as_str(),
                "backstage.io/managed-by-origin-location": key.as_str(),
            },
        },
        "spec": {"type": location_type, "target": target},
    })];
    out.extend(entities);
    Ok((
        StatusCode::CREATED,
        json(&json!({
            "exists": exists,
            "location": {
                "id": key.as_str(),
                "type": location_type,
                "target": target,
                "entityRef": entity_ref,
            },
            "entities": out,
        })),
    )
        .into_response())
}

fn error_name(e: &ProcessingError) -> &'static str {
    match e.kind {
        proto::ErrorKind::Unreadable => "NotFoundError",
        proto::ErrorKind::Conflict => "ConflictError",
        _ => "InputError",
    }
}

/// Processes what a read returned, as the processor will: the entities
/// (as JSON) and the errors of every location read.
fn process_all(
    read: Vec<(LocationKey, LocationKey, ObservedContent)>,
) -> (Vec<Value>, Vec<ProcessingError>) {
    let cfg = processor::ProcessorConfig::default();
    let now = Utc::now();
    let mut entities = Vec::new();
    let mut errors = Vec::new();
    for (location, origin, content) in read {
        let obs = Observation {
            event_id: uuid::Uuid::now_v7(),
            source: SourceId::new("api"),
            observed_at: now,
            location: location.clone(),
            origin,
            first_seen_at: now,
            content,
        };
        if let LocationOutcome::Processed {
            entities: e,
            errors: r,
        } = processor::process(&obs, &cfg).outcome
        {
            entities.extend(
                e.into_iter()
                    .map(|pe| serde_json::to_value(&pe.entity).expect("entities serialise")),
            );
            errors.extend(r);
        }
    }
    (entities, errors)
}

/// A registered location's own record (not one it reached), or why it
/// cannot be changed through the API.
fn registered_root(rec: &projector::Location) -> Result<(), ApiError> {
    let (t, g) = rec.location.type_and_target();
    if rec.source.as_str() != REGISTERED_SOURCE {
        return Err(ApiError::Forbidden(format!(
            "Location {t}:{g} comes from the source {:?}, not from a registration; change it at its source",
            rec.source.as_str()
        )));
    }
    if rec.origin != rec.location {
        return Err(ApiError::Forbidden(format!(
            "Location {t}:{g} was reached through the registered location {}; change that one",
            rec.origin
        )));
    }
    Ok(())
}

/// The source id ingest gives the locations registered through the API.
pub const REGISTERED_SOURCE: &str = "registered";

/// `DELETE /api/catalog/locations/{id}`: unregisters a registered
/// location; what only it yielded goes. 204 once that is readable (or
/// after 10 s).
#[utoipa::path(
    delete,
    path = "/api/catalog/locations/{id}",
    operation_id = "DeleteLocation",
    tag = "Locations",
    description = "Unregisters a location registered through the API; what only it yielded goes. Locations of configured sources cannot be (403). Needs catalog.write.",
    params(views::params::LocationId),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 401, response = views::Unauthorized),
        (status = 403, response = views::Forbidden),
        (status = 404, response = views::ErrorResponse),
        (status = 503, response = views::ErrorResponse)
    )
)]
pub async fn remove(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
    principal: Option<Extension<Principal>>,
) -> Result<Response, ApiError> {
    let rec = find(&st, id).await?;
    registered_root(&rec)?;
    command(
        &st,
        &rec.location,
        LocationChange::Unregistered,
        by(principal.as_ref()),
    )
    .await?;
    let key = rec.location.clone();
    settle(&st.catalog, move |c| {
        Ok(c.location(key.as_str())?.is_none())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /api/catalog/locations/{id}`: points a registered location at
/// another target: the old one is unregistered and the new one registered
/// (its id is derived from the target, so it changes). 200 with the new
/// location.
#[utoipa::path(
    put,
    path = "/api/catalog/locations/{id}",
    operation_id = "UpdateLocation",
    tag = "Locations",
    description = "Points a registered location at another target: the old one is unregistered and the new one registered (the id, derived from the target, changes). Needs catalog.write.",
    params(views::params::LocationId),
    request_body(content = views::LocationInput),
    responses(
        (status = 200, description = "The location now", body = views::Location),
        (status = 400, response = views::ErrorResponse),
        (status = 401, response = views::Unauthorized),
        (status = 403, response = views::Forbidden),
        (status = 404, response = views::ErrorResponse),
        (status = 409, response = views::ErrorResponse),
        (status = 503, response = views::ErrorResponse)
    )
)]
pub async fn update(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
    principal: Option<Extension<Principal>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: LocationInput = body_of(body)?;
    let key = key_of(&st, &input)?;
    let catalog = st.catalog.clone();
    let other = blocking({
        let key = key.clone();
        move || Ok(catalog.location(key.as_str())?)
    })
    .await?;
    let rec = find(&st, id).await?;
    if other.as_ref().is_some_and(|o| o.location != rec.location) {
        let (t, g) = key.type_and_target();
        return Err(ApiError::Conflict(format!(
            "Location {t}:{g} already exists"
        )));
    }
    registered_root(&rec)?;
    let who = by(principal.as_ref());
    if rec.location != key {
        command(
            &st,
            &rec.location,
            LocationChange::Unregistered,
            who.clone(),
        )
        .await?;
        command(&st, &key, LocationChange::Registered, who).await?;
    }
    let settled = {
        let (key, old) = (key.clone(), rec.location.clone());
        settle(&st.catalog, move |c| {
            Ok(c.location(key.as_str())?.is_some()
                && (old == key || c.location(old.as_str())?.is_none()))
        })
        .await?
    };
    let (t, g) = key.type_and_target();
    let id = proto::ids::location_id(key.as_str());
    if !settled {
        tracing::warn!(location = %key, "updated; not yet readable after {SETTLE:?}");
    }
    Ok(json(&json!({
        "id": id.to_string(),
        "type": t,
        "target": g,
        "entityRef": location_entity_ref(t, g),
    })))
}

/// `GET /api/catalog/locations/by-entity/{kind}/{namespace}/{name}`: the
/// location an entity came from: its origin (the registered or configured
/// root it was reached from) when that is a location, else its own.
#[utoipa::path(
    get,
    path = "/api/catalog/locations/by-entity/{kind}/{namespace}/{name}",
    operation_id = "GetLocationByEntity",
    tag = "Locations",
    description = "The location an entity came from: the root it was reached from when that is a location, else its own.",
    params(views::params::Kind, views::params::Namespace, views::params::Name),
    responses(
        (status = 200, description = "Ok", body = views::Location),
        (status = 404, response = views::ErrorResponse)
    )
)]
pub async fn by_entity(
    State(st): State<AppState>,
    PathArgs((kind, namespace, name)): PathArgs<(String, String, String)>,
) -> Result<Response, ApiError> {
    let r = EntityRef::new(&kind, &namespace, &name).key();
    let catalog = st.catalog.clone();
    let found = blocking(move || {
        let Some(winner) = catalog.claimants(&r)?.into_iter().next() else {
            return Err(ApiError::NotFound(format!("found no entity for ref {r}")));
        };
        let Some(own) = catalog.location(winner.as_str())? else {
            return Err(ApiError::NotFound(format!("found no entity for ref {r}")));
        };
        Ok(match catalog.location(own.origin.as_str())? {
            Some(origin) => origin,
            None => own,
        })
    })
    .await?;
    Ok(json(&Location::of(&found)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationsQuery {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    query: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct LocationsCursor {
    limit: usize,
    #[serde(rename = "afterId", default, skip_serializing_if = "Option::is_none")]
    after_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
}

/// The fields a location query may name, lower-cased.
const LOCATION_FIELDS: [&str; 4] = ["id", "type", "target", "entityref"];

fn check_location_keys(p: &Predicate) -> Result<(), ApiError> {
    let bad = |k: &str| {
        Err(ApiError::Input(format!(
            "Invalid filter predicate, expected key to be 'id', 'type', 'target', or 'entityRef', got '{k}'"
        )))
    };
    match p {
        Predicate::All(items) | Predicate::Any(items) => {
            items.iter().try_for_each(check_location_keys)
        }
        Predicate::Not(inner) => check_location_keys(inner),
        Predicate::Has(c) if !LOCATION_FIELDS.contains(&c.key.as_str()) => bad(&c.key),
        Predicate::Prefix { key, .. } if !LOCATION_FIELDS.contains(&key.as_str()) => bad(key),
        _ => Ok(()),
    }
}

fn location_matches(p: &Predicate, fields: &[(&str, String)]) -> bool {
    let value = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| *f == k)
            .map(|(_, v)| v.as_str())
    };
    match p {
        // Empty `$all`/`$any` match nothing, as Backstage's location query.
        Predicate::All(items) => {
            !items.is_empty() && items.iter().all(|i| location_matches(i, fields))
        }
        Predicate::Any(items) => items.iter().any(|i| location_matches(i, fields)),
        Predicate::Not(inner) => !location_matches(inner, fields),
        Predicate::Has(c) => {
            value(&c.key).is_some_and(|v| c.values.is_empty() || c.values.iter().any(|x| x == v))
        }
        Predicate::Prefix { key, prefix } => {
            value(key).is_some_and(|v| v.starts_with(prefix.as_str()))
        }
    }
}

/// `POST /api/catalog/locations/by-query`: locations matching a predicate
/// on `id`, `type`, `target` and `entityRef`, ordered by id, paged by a
/// cursor: `{items, totalItems, pageInfo: {nextCursor?}}`.
#[utoipa::path(
    post,
    path = "/api/catalog/locations/by-query",
    operation_id = "QueryLocations",
    tag = "Locations",
    description = "Locations matching a predicate on id, type, target and entityRef (case-insensitive), ordered by id, paged by cursor.",
    request_body(content = Option<views::LocationsQuery>),
    responses(
        (status = 200, description = "A page", body = views::LocationsQueryResponse),
        (status = 400, response = views::ErrorResponse)
    )
)]
pub async fn by_query(
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: LocationsQuery = optional_body(body)?.unwrap_or(LocationsQuery {
        cursor: None,
        limit: None,
        query: None,
    });
    let cursor = match req.cursor {
        Some(c) if c.is_empty() => return Err(ApiError::Input("Cursor cannot be empty".into())),
        Some(c) => crate::params::decode_cursor::<LocationsCursor>(&c, "cursor")?,
        None => {
            let limit = match req.limit {
                None => 1000,
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(l) if l >= 1 => l as usize,
                    _ => {
                        return Err(ApiError::Input(
                            "Limit must be a positive integer >= 1".into(),
                        ));
                    }
                },
                Some(_) => return Err(ApiError::Input("request/body/limit must be number".into())),
            };
            LocationsCursor {
                limit,
                after_id: None,
                query: req.query,
            }
        }
    };
    let predicate = match &cursor.query {
        Some(q) => {
            let p = Predicate::parse(q).map_err(|e| ApiError::Input(e.to_string()))?;
            check_location_keys(&p)?;
            Some(p)
        }
        None => None,
    };
    let catalog = st.catalog.clone();
    let mut matching: Vec<projector::Location> = blocking(move || {
        let mut all = catalog.locations()?;
        if let Some(p) = &predicate {
            all.retain(|rec| {
                let (t, g) = rec.location.type_and_target();
                let fields = [
                    ("id", rec.id.to_string()),
                    ("type", t.to_lowercase()),
                    ("target", g.to_lowercase()),
                    ("entityref", location_entity_ref(t, g)),
                ];
                location_matches(p, &fields)
            });
        }
        Ok(all)
    })
    .await?;
    matching.sort_by_key(|r| r.id.to_string());
    let total = matching.len();
    let start = match &cursor.after_id {
        Some(after) => matching.partition_point(|r| r.id.to_string().as_str() <= after.as_str()),
        None => 0,
    };
    let page: Vec<&projector::Location> = matching[start..].iter().take(cursor.limit).collect();
    let next = (start + page.len() < total).then(|| {
        let c = LocationsCursor {
            limit: cursor.limit,
            after_id: page.last().map(|r| r.id.to_string()),
            query: cursor.query.clone(),
        };
        crate::params::encode_cursor(&c)
    });
    let items: Vec<Location> = page.into_iter().map(Location::of).collect();
    let mut page_info = serde_json::Map::new();
    if let Some(n) = next {
        page_info.insert("nextCursor".into(), Value::String(n));
    }
    Ok(json(&json!({
        "items": items,
        "totalItems": total,
        "pageInfo": page_info,
    })))
}

/// `DELETE /api/catalog/entities/by-uid/{uid}`: Backstage's semantics: the
/// entity goes, and comes back when its location is next processed and
/// still yields it (an edit, or `POST /refresh`). The deletion is an event
/// of every location that yields the entity. 204, also for an unknown uid.
#[utoipa::path(
    delete,
    path = "/api/catalog/entities/by-uid/{uid}",
    operation_id = "DeleteEntityByUid",
    tag = "Entity",
    description = "Deletes an entity (an event of every location that yields it); it comes back when its location is next processed and still yields it (an edit, or POST /refresh). 204 also for an unknown uid. Needs catalog.write.",
    params(views::params::Uid),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = views::Unauthorized),
        (status = 403, response = views::Forbidden),
        (status = 503, response = views::ErrorResponse)
    )
)]
pub async fn delete_entity(
    State(st): State<AppState>,
    PathArgs(uid): PathArgs<String>,
    principal: Option<Extension<Principal>>,
) -> Result<Response, ApiError> {
    let writer = log_writer(&st)?;
    let catalog = st.catalog.clone();
    let found = blocking({
        let uid = uid.clone();
        move || {
            let Some(r) = catalog.ref_of_uid(&uid)? else {
                return Ok(None);
            };
            let mut locations = Vec::new();
            for l in catalog.claimants(&r)? {
                if let Some(rec) = catalog.location(l.as_str())? {
                    locations.push(rec);
                }
            }
            Ok(Some((r, locations)))
        }
    })
    .await?;
    let Some((r, locations)) = found else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let entity = EntityRef::parse(&r, None, "default")
        .map_err(|e| ApiError::Internal(format!("stored ref {r:?}: {e}")))?;
    let who = by(principal.as_ref());
    for rec in locations {
        let id = uuid::Uuid::now_v7();
        let event = EntityEvent {
            event_id: id,
            source: SourceId::new("api"),
            observed_at: Utc::now(),
            location: rec.location.clone(),
            origin: rec.origin.clone(),
            first_seen_at: rec.first_seen_at,
            observation_id: id,
            outcome: LocationOutcome::EntityDeleted {
                entity: entity.clone(),
                by: who.clone(),
            },
        };
        append(
            writer.clone(),
            topics::ENTITIES,
            rec.location.as_str().to_owned(),
            event.encode(),
        )
        .await?;
    }
    settle(&st.catalog, move |c| Ok(c.entity(&r)?.is_none())).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    entity_ref: String,
    #[serde(default)]
    #[allow(dead_code)]
    authorization_token: Option<String>,
}

/// `POST /api/catalog/refresh`: the entity's location is read again now
/// and processed even if unchanged (a refresh event that ingest acts on).
/// 404 for an entity that is not served.
#[utoipa::path(
    post,
    path = "/api/catalog/refresh",
    operation_id = "RefreshEntity",
    tag = "Entity",
    description = "Reads the entity's location again now and processes it even if unchanged (an event in catalog.locations.v1 that ingest acts on). The entity must exist. Needs catalog.write.",
    request_body(content = inline(views::RefreshEntityBody)),
    responses(
        (status = 200, description = "Refresh requested"),
        (status = 400, response = views::ErrorResponse),
        (status = 404, response = views::ErrorResponse),
        (status = 503, response = views::ErrorResponse)
    )
)]
pub async fn refresh(
    State(st): State<AppState>,
    principal: Option<Extension<Principal>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: RefreshBody = body_of(body)?;
    let lower = request.entity_ref.to_lowercase();
    let not_found = || ApiError::NotFound(format!("Entity {lower} not found"));
    let entity_ref =
        EntityRef::parse(&request.entity_ref, None, "default").map_err(|_| not_found())?;
    let catalog = st.catalog.clone();
    let r = entity_ref.key();
    let location = blocking(move || {
        if catalog.entity(&r)?.is_none() {
            return Ok(None);
        }
        Ok(catalog.claimants(&r)?.into_iter().next())
    })
    .await?
    .ok_or_else(not_found)?;
    command(
        &st,
        &location,
        LocationChange::Refresh,
        by(principal.as_ref()),
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnalyzeRequest {
    location: LocationInput,
    #[serde(default, alias = "catalogFileName")]
    catalog_filename: Option<String>,
}

/// `POST /api/catalog/analyze-location`: what a repository or file holds
/// for the catalog: the descriptor files found (with their entities and
/// whether they are registered), or, when there are none, a Component to
/// generate for a repository URL.
#[utoipa::path(
    post,
    path = "/api/catalog/analyze-location",
    operation_id = "AnalyzeLocation",
    tag = "Locations",
    description = "What a repository (its catalog-info.yaml on the default branch) or a file holds for the catalog: the descriptor's entities and whether it is registered, or a Component to generate. Needs catalog.write.",
    request_body(content = views::AnalyzeLocationRequest),
    responses(
        (status = 200, description = "Ok", body = views::AnalyzeLocationResponse),
        (status = 400, response = views::ErrorResponse),
        (status = 401, response = views::Unauthorized),
        (status = 403, response = views::Forbidden),
        (status = 503, response = views::ErrorResponse)
    )
)]
pub async fn analyze(
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: AnalyzeRequest = body_of(body)?;
    let filename = req
        .catalog_filename
        .as_deref()
        .unwrap_or("catalog-info.yaml");
    let (kind, target) = (
        req.location.location_type.as_str(),
        req.location.target.as_str(),
    );
    // A repository URL names the descriptor at its root on its default
    // branch; any other target is read as it is.
    let mut generated = None;
    // For a repository URL, what marks its descriptor as registered: a
    // location of the same repository (on whichever branch).
    let mut repo_prefix: Option<String> = None;
    let target = if kind == "url" {
        let url = url::Url::parse(target)
            .map_err(|_| ApiError::Input("The given location.target is not a URL".into()))?;
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        match segments.as_slice() {
            [owner, repo] | [owner, repo, "tree", ..] => {
                let repo = repo.trim_end_matches(".git");
                let branch = match segments.as_slice() {
                    [_, _, "tree", branch, ..] => branch,
                    _ => "HEAD",
                };
                generated = Some(json!({
                    "entity": {
                        "apiVersion": "backstage.io/v1alpha1",
                        "kind": "Component",
                        "metadata": {
                            "name": repo,
                            "annotations": {"github.com/project-slug": format!("{owner}/{repo}")},
                        },
                        "spec": {"type": "other", "lifecycle": "unknown"},
                    },
                    "fields": [],
                }));
                let host = url.host_str().unwrap_or_default();
                repo_prefix = Some(format!(
                    "url:{}://{host}/{owner}/{repo}/blob/",
                    url.scheme()
                ));
                format!(
                    "{}://{host}/{owner}/{repo}/blob/{branch}/{filename}",
                    url.scheme()
                )
            }
            _ => target.to_owned(),
        }
    } else {
        target.to_owned()
    };
    let input = LocationInput {
        location_type: kind.to_owned(),
        target,
        presence: None,
    };
    let key = key_of(&st, &input)?;
    let access = access(&st)?;
    let catalog = st.catalog.clone();
    let found = blocking({
        let key = key.clone();
        move || {
            let read = access.read(&key);
            let mine: Vec<_> = read.into_iter().filter(|(l, _, _)| *l == key).collect();
            let readable = mine
                .iter()
                .any(|(_, _, c)| matches!(c, ObservedContent::Present { .. }));
            if !readable {
                return Ok(Vec::new());
            }
            let here = catalog.location(key.as_str())?.is_some();
            let mut out = Vec::new();
            for entity in process_all(mine).0 {
                let r = serde_json::from_value::<proto::Entity>(entity.clone())
                    .map(|e| e.entity_ref().key())
                    .unwrap_or_default();
                let registered = here
                    || repo_prefix.as_deref().is_some_and(|prefix| {
                        catalog
                            .claimants(&r)
                            .is_ok_and(|c| c.iter().any(|l| l.as_str().starts_with(prefix)))
                    });
                out.push((entity, registered));
            }
            Ok(out)
        }
    })
    .await?;
    let (t, g) = key.type_and_target();
    match found {
        entities if !entities.is_empty() => Ok(json(&json!({
            "existingEntityFiles": entities
                .into_iter()
                .map(|(entity, registered)| json!({
                    "location": {"type": t, "target": g},
                    "isRegistered": registered,
                    "entity": entity,
                }))
                .collect::<Vec<_>>(),
            "generateEntities": [],
        }))),
        _ => Ok(json(&json!({
            "existingEntityFiles": [],
            "generateEntities": generated.into_iter().collect::<Vec<_>>(),
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_entity_refs_are_backstages() {
        // sha1("url:https://x/catalog-info.yaml")
        let r = location_entity_ref("url", "https://x/catalog-info.yaml");
        assert!(r.starts_with("location:default/generated-"));
        assert_eq!(r.len(), "location:default/generated-".len() + 40);
        assert_ne!(r, location_entity_ref("url", "https://y/catalog-info.yaml"));
    }

    #[test]
    fn location_queries_match_fields_case_insensitively() {
        let p = Predicate::parse(&json!({"$all": [
            {"type": "FILE"},
            {"target": {"$hasPrefix": "/Org/"}},
            {"$not": {"id": {"$in": ["x"]}}}
        ]}))
        .unwrap();
        check_location_keys(&p).unwrap();
        let fields = [
            ("id", "a".to_string()),
            ("type", "file".to_string()),
            ("target", "/org/a.yaml".to_string()),
            ("entityref", "location:default/generated-0".to_string()),
        ];
        assert!(location_matches(&p, &fields));
        let other = [
            ("id", "x".to_string()),
            ("type", "file".to_string()),
            ("target", "/org/a".to_string()),
        ];
        assert!(!location_matches(&p, &other));
        let bad = Predicate::parse(&json!({"kind": "x"})).unwrap();
        assert!(
            check_location_keys(&bad)
                .unwrap_err()
                .to_string()
                .contains("got 'kind'")
        );
        assert!(!location_matches(&Predicate::All(vec![]), &fields));
        assert!(!location_matches(&Predicate::Any(vec![]), &fields));
    }
}

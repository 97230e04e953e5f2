//! Locations, as Backstage's location API reports them, and their errors.

use crate::AppState;
use crate::error::ApiError;
use crate::params::PathArgs;
use crate::respond::{blocking, json};
use axum::extract::State;
use axum::response::Response;
use projector::records::LocationRecord;
use proto::ProcessingError;
use serde::Serialize;

/// Backstage's `Location`: `{"id", "type", "target"}`.
#[derive(Serialize)]
struct Location<'a> {
    id: String,
    #[serde(rename = "type")]
    location_type: &'a str,
    target: &'a str,
}

impl<'a> Location<'a> {
    fn of(rec: &'a LocationRecord) -> Self {
        let (location_type, target) = rec.location.type_and_target();
        Location {
            id: rec.id.to_string(),
            location_type,
            target,
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

async fn find(st: &AppState, id: String) -> Result<LocationRecord, ApiError> {
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
pub async fn by_id(
    State(st): State<AppState>,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let rec = find(&st, id).await?;
    Ok(json(&Location::of(&rec)))
}

/// `GET /api/catalog/locations/{id}/errors`: the location's processing
/// errors and a conflict error for every entity another location provides.
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

//! `asOf=<RFC 3339>` on the catalog's read routes: the answer as the
//! catalog stood at that instant (see `projector::asof`).

use crate::AppState;
use crate::error::ApiError;
use crate::params::Params;
use crate::respond::blocking;
use projector::Catalog;

/// The `asOf` parameter, in milliseconds since the epoch. A time in the
/// future is refused: the catalog cannot say yet how it will stand.
pub fn param(p: &Params) -> Result<Option<i64>, ApiError> {
    let Some(v) = p.one("asOf")? else {
        return Ok(None);
    };
    let t = chrono::DateTime::parse_from_rfc3339(v.trim()).map_err(|e| {
        ApiError::Input(format!(
            "Invalid asOf {v:?}: expected an RFC 3339 time such as 2026-01-31T00:00:00Z ({e})"
        ))
    })?;
    let ms = t.timestamp_millis();
    if ms > chrono::Utc::now().timestamp_millis() {
        return Err(ApiError::Input(format!(
            "Invalid asOf {v:?}: the time is in the future"
        )));
    }
    Ok(Some(ms))
}

/// The catalog to answer from: as of `at_ms`, or as it stands.
pub async fn catalog_at(st: &AppState, at_ms: Option<i64>) -> Result<Catalog, ApiError> {
    match at_ms {
        None => Ok(st.catalog.clone()),
        Some(at) => {
            let catalog = st.catalog.clone();
            blocking(move || Ok(catalog.as_of(at)?)).await
        }
    }
}

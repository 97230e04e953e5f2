//! `GET /api/export/{what}?format=jsonl|csv|parquet&asOf=`: the catalog, its
//! relations, the change feed or the scorecard results as one streamed file for a warehouse
//! (`projector::export` writes the rows; memory stays flat).

use crate::AppState;
use crate::error::ApiError;
use crate::params::{Params, PathArgs};
use crate::views;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use projector::export::{Format, What, export};
use std::io::Write;

/// Bytes gathered before a chunk goes to the client.
const CHUNK: usize = 256 << 10;

type Chunks = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// A `Write` that hands the response body to the client in chunks; a
/// client gone away fails the next write, which ends the export.
struct Body {
    buf: Vec<u8>,
    tx: Chunks,
}

impl Write for Body {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 4096));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

#[utoipa::path(
    get,
    path = "/api/export/{what}",
    operation_id = "Export",
    tag = "Exports",
    description = "One streamed file for a warehouse, as JSON Lines, CSV or Parquet: `entities` (JSON Lines: the served entities; CSV and Parquet: entity_ref, kind, namespace, name, uid, title, type, lifecycle, owner, system, domain, tags, location), `relations` (source_ref, type, target_ref), `history` (the change feed: event_id, event_at, event_type, entity_ref, location_ref, source, log_event_id, by) or `scorecard-results` (scorecard, entity_ref, level, score, failing, exempt, owners). Entities are named by their lower-case ref key everywhere, so exports join. `asOf` applies to entities and relations.",
    params(views::params::AsOf, views::params::ExportPath, views::params::ExportQuery),
    responses(
        (status = 200, description = "The file", content((String = "application/x-ndjson"), (String = "text/csv"), (views::ParquetFile = "application/vnd.apache.parquet"))),
        (status = 400, response = views::ErrorResponse),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
pub async fn export_route(
    State(st): State<AppState>,
    PathArgs(what): PathArgs<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let names = What::ALL.map(What::name).join(", ");
    let what = What::parse(&what)
        .ok_or_else(|| ApiError::NotFound(format!("No export '{what}'; there are: {names}")))?;
    let f = p.one("format")?.unwrap_or("jsonl");
    let format = Format::parse(f)
        .ok_or_else(|| ApiError::Input(format!("format: '{f}' is not jsonl, csv or parquet")))?;
    let as_of = crate::asof::param(&p)?;
    match what {
        What::History if as_of.is_some() => {
            return Err(ApiError::Input(
                "asOf: the history export is the whole feed; select by time in the warehouse"
                    .into(),
            ));
        }
        What::ScorecardResults if as_of.is_some() => {
            return Err(ApiError::Input(
                "asOf: scorecard results are exported as they stand; their history is in /api/scorecards/{id}/trend".into(),
            ));
        }
        _ => {}
    }
    let catalog = crate::asof::catalog_at(&st, as_of).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut body = Body {
            buf: Vec::with_capacity(CHUNK + 4096),
            tx: tx.clone(),
        };
        let result = export(&catalog, what, format, &mut body)
            .map_err(|e| e.to_string())
            .and_then(|_| body.flush().map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::warn!(error = %e, export = what.name(), "an export was cut short");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = axum::body::Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let ext = format.extension();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"catalog-{}.{ext}\"",
        what.name()
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

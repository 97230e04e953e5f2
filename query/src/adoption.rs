//! `GET /api/metrics/{metric}`: adoption metrics over time, computed from
//! history (`projector::adoption`), as JSON or CSV.

use crate::AppState;
use crate::error::ApiError;
use crate::params::{Params, PathArgs};
use crate::respond::{blocking, json};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use projector::adoption::{Dimension, Interval, Metric, Series, buckets};
use serde_json::json;
use std::fmt::Write;

/// `GET /api/metrics/{metric}?from=&to=&interval=day|week|month&by=&filter=&format=json|csv`
pub async fn metric(
    State(st): State<AppState>,
    PathArgs(name): PathArgs<String>,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    let names = || {
        Metric::ALL
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let metric = Metric::parse(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "No metric '{name}'; this catalog computes: {}",
            names()
        ))
    })?;
    let interval = match p.one("interval")? {
        None => Interval::Week,
        Some(v) => Interval::parse(v)
            .ok_or_else(|| ApiError::Input(format!("interval: '{v}' is not day, week or month")))?,
    };
    let dim = match p.one("by")? {
        None => Dimension::All,
        Some(v) => Dimension::parse(v).ok_or_else(|| {
            ApiError::Input(format!(
                "by: '{v}' is not one of all, kind, type, lifecycle, tag, owner, system, domain, namespace, source, change"
            ))
        })?,
    };
    let fits = match metric {
        Metric::Changes => matches!(
            dim,
            Dimension::All | Dimension::Kind | Dimension::Source | Dimension::Change
        ),
        _ => !matches!(dim, Dimension::Source | Dimension::Change),
    };
    if !fits {
        return Err(ApiError::Input(format!(
            "by: {name} cannot be split that way (changes: all, kind, source, change; entities: all, kind, type, lifecycle, tag, owner, system, domain, namespace)"
        )));
    }
    let mut filter = crate::params::parse_filter(&p.all("filter"))?;
    if filter.is_some() && metric == Metric::Changes {
        return Err(ApiError::Input("filter: changes are not filtered".into()));
    }
    if filter.is_none() && metric == Metric::OwnershipCoverage {
        filter = crate::params::parse_filter(&["kind=component".to_owned()])?;
    }
    let to = crate::scorecards::time_param(&p, "to")?.unwrap_or_else(Utc::now);
    let from = crate::scorecards::time_param(&p, "from")?.unwrap_or(to - Duration::weeks(12));
    if from > to {
        return Err(ApiError::Input("from is after to".into()));
    }
    let buckets = buckets(from, to, interval);
    let csv = match p.one("format")? {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::Input(format!(
                "format: '{other}' is not json or csv"
            )));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let catalog = st.catalog.clone();
    let b = buckets.clone();
    let series = blocking(move || Ok(catalog.metric(metric, &b, dim, filter.as_ref())?)).await?;
    if csv {
        return Ok(as_csv(&buckets, &series));
    }
    Ok(json(&json!({
        "metric": metric.name(),
        "interval": interval.as_str(),
        "by": p.one("by")?.unwrap_or("all"),
        "buckets": buckets,
        "series": series,
    })))
}

/// One row per interval, series and measure.
fn as_csv(buckets: &[projector::adoption::Bucket], series: &[Series]) -> Response {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = String::from("start,end,key,measure,value\n");
    for s in series {
        for (b, v) in buckets.iter().zip(&s.values) {
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                b.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                b.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                field(&s.key),
                s.measure,
                v
            );
        }
    }
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    resp
}

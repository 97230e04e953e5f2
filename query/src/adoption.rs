//! `GET /api/metrics/{metric}`: adoption metrics over time, computed from
//! history (`projector::adoption`), as JSON or CSV.

use crate::AppState;
use crate::error::ApiError;
use crate::params::{Params, PathArgs};
use crate::respond::{blocking, json};
use crate::views;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use projector::adoption::{Dimension, Interval, Metric, Options, Series, buckets, movers};
use serde_json::json;
use std::fmt::Write;

/// `GET /api/metrics/{metric}?from=&to=&interval=day|week|month&by=&filter=&scorecard=&target=&format=json|csv`
#[utoipa::path(
    get,
    path = "/api/metrics/{metric}",
    operation_id = "GetMetric",
    tag = "Metrics",
    description = "An adoption metric over time, computed from history: `entities` (count at each interval's end), `ownership-coverage` (of components, or the filter: owned by a Group then, orphaned, total, coverage), `catalog-coverage` (unarchived GitHub repositories with a catalog descriptor: with_descriptor, repositories, coverage; by all, org, or team: the Group of each team with push, maintain or admin access, `(none)` without one), `scorecard-levels` (needs `scorecard`: entities, level:<name>, mean_score, pass_rate:<check>, by all, owner with child groups, system or domain; the JSON adds `movers`, the groups whose mean score rose or fell most), `technology` (by language or topic of repositories, tag, api-type, or dependency with an optional `target` ref: count and share), `changes` (changes within each interval). Each metric takes the splits it names; the first is its default. JSON, or CSV with `format=csv` or `Accept: text/csv` (columns start,end,key,measure,value).",
    params(views::params::GetMetricPath, views::params::GetMetricQuery),
    responses(
        (status = 200, description = "Ok", content((views::MetricSeries = "application/json"), (String = "text/csv"))),
        (status = 400, response = views::ErrorResponse),
        (status = 404, response = views::ErrorResponse),
        (status = "default", response = views::ErrorResponse)
    )
)]
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
    let splits = metric.dimensions();
    let dim = match p.one("by")? {
        None => splits[0],
        Some(v) => Dimension::parse(v)
            .filter(|d| splits.contains(d))
            .ok_or_else(|| {
                ApiError::Input(format!(
                    "by: {name} is split by one of {}, not '{v}'",
                    splits
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    };
    let mut filter = crate::params::parse_filter(&p.all("filter"))?;
    let filtered = matches!(
        metric,
        Metric::Entities | Metric::OwnershipCoverage | Metric::Technology
    ) && !(metric == Metric::Technology
        && matches!(dim, Dimension::Language | Dimension::Topic));
    if filter.is_some() && !filtered {
        return Err(ApiError::Input(format!(
            "filter: {name} by {} counts no entities to filter",
            dim.as_str()
        )));
    }
    if filter.is_none() && metric == Metric::OwnershipCoverage {
        filter = crate::params::parse_filter(&["kind=component".to_owned()])?;
    }
    let scorecard = match (metric, p.one("scorecard")?) {
        (Metric::ScorecardLevels, None) => {
            return Err(ApiError::Input(
                "scorecard: scorecard-levels needs the scorecard's id".into(),
            ));
        }
        (Metric::ScorecardLevels, Some(id)) => Some(
            st.catalog
                .scorecard(id)?
                .map(|(_, def)| def)
                .ok_or_else(|| ApiError::NotFound(format!("No scorecard '{id}'")))?,
        ),
        (_, Some(_)) => {
            return Err(ApiError::Input(format!(
                "scorecard: {name} is not about one scorecard"
            )));
        }
        (_, None) => None,
    };
    let target = p.one("target")?.map(str::to_ascii_lowercase);
    if target.is_some() && dim != Dimension::Dependency {
        return Err(ApiError::Input(
            "target: only technology by dependency takes a target".into(),
        ));
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
    let series = blocking(move || {
        let opts = Options {
            filter: filter.as_ref(),
            scorecard,
            target,
        };
        Ok(catalog.metric(metric, &b, dim, &opts)?)
    })
    .await?;
    if csv {
        return Ok(as_csv(&buckets, &series));
    }
    let mut answer = json!({
        "metric": metric.name(),
        "interval": interval.as_str(),
        "by": dim.as_str(),
        "buckets": buckets,
        "series": series,
    });
    if metric == Metric::ScorecardLevels {
        let (improved, regressed) = movers(&series, 10);
        answer["movers"] = json!({"improved": improved, "regressed": regressed});
    }
    Ok(json(&answer))
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

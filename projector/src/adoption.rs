//! Adoption metrics over time, computed from history rather than from
//! snapshots taken on a schedule: the served versions (table `P`, see
//! [`crate::asof`]) give every entity's state at every instant, the change
//! feed (table `N`) every change.
//!
//! A series' value for an interval is the state at the interval's end (for
//! counts of entities) or what happened within it (for changes). One pass
//! over the versions fills every interval at once: a version counts in the
//! intervals whose ends fall between it and the ref's next version, added
//! with a difference array, and its body is parsed only when it counts in
//! at least one.

use crate::feed::FeedRecord;
use crate::keys;
use crate::read::EntityFilter;
use crate::records;
use crate::scorecard::Definition;
use crate::scorecard::records::{CheckStatus, FACT_HISTORY, ResultChange};
use crate::scorecard::{RollupBy, read::each_timeline, read::state_runs, read::trend_groups};
use crate::store::{Store, StoreError};
use crate::temporal::Versions;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use roaring::RoaringBitmap;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The metrics computed here (the route's `{metric}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Entities,
    OwnershipCoverage,
    CatalogCoverage,
    ScorecardLevels,
    Technology,
    Changes,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Entities,
        Metric::OwnershipCoverage,
        Metric::CatalogCoverage,
        Metric::ScorecardLevels,
        Metric::Technology,
        Metric::Changes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Entities => "entities",
            Metric::OwnershipCoverage => "ownership-coverage",
            Metric::CatalogCoverage => "catalog-coverage",
            Metric::ScorecardLevels => "scorecard-levels",
            Metric::Technology => "technology",
            Metric::Changes => "changes",
        }
    }

    /// The splits this metric answers (the first is its default).
    pub fn dimensions(self) -> &'static [Dimension] {
        use Dimension as D;
        const ENTITY: [D; 9] = [
            D::All,
            D::Kind,
            D::Type,
            D::Lifecycle,
            D::Tag,
            D::Owner,
            D::System,
            D::Domain,
            D::Namespace,
        ];
        match self {
            Metric::Entities | Metric::OwnershipCoverage => &ENTITY,
            Metric::CatalogCoverage => &[D::All, D::Org, D::Team],
            Metric::ScorecardLevels => &[D::All, D::Owner, D::System, D::Domain],
            Metric::Technology => &[D::Language, D::Topic, D::Tag, D::ApiType, D::Dependency],
            Metric::Changes => &[D::All, D::Kind, D::Source, D::Change],
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What a metric is asked beyond its intervals and split.
#[derive(Default)]
pub struct Options<'a> {
    pub filter: Option<&'a EntityFilter>,
    /// `scorecard-levels`: the scorecard.
    pub scorecard: Option<Arc<Definition>>,
    /// `technology` by dependency: only entities depending on this ref.
    pub target: Option<String>,
}

/// Computes `metric` over `buckets`.
pub fn compute(
    store: &dyn Store,
    metric: Metric,
    buckets: &[Bucket],
    dim: Dimension,
    opts: &Options,
) -> Result<Vec<Series>, StoreError> {
    let filter = opts.filter;
    match metric {
        Metric::Entities => entities(store, buckets, dim, filter),
        Metric::OwnershipCoverage => ownership(store, buckets, dim, filter),
        Metric::CatalogCoverage => catalog_coverage(store, buckets, dim),
        Metric::ScorecardLevels => match &opts.scorecard {
            Some(def) => scorecard_levels(store, buckets, dim, def),
            None => Ok(Vec::new()),
        },
        Metric::Technology => technology(store, buckets, dim, opts),
        Metric::Changes => changes(store, buckets, dim),
    }
}

/// Intervals one request may ask for.
pub const MAX_BUCKETS: usize = 1000;

/// The length of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// One interval: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The intervals from the one holding `from` to the one holding `to`: days
/// from midnight UTC, weeks from Monday, months from the first; at most
/// [`MAX_BUCKETS`].
pub fn buckets(from: DateTime<Utc>, to: DateTime<Utc>, interval: Interval) -> Vec<Bucket> {
    let midnight = |t: DateTime<Utc>| {
        Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
            .single()
            .unwrap_or(t)
    };
    let first_of_month = |y: i32, m: u32| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single();
    let mut start = match interval {
        Interval::Day => midnight(from),
        Interval::Week => {
            midnight(from) - Duration::days(i64::from(from.weekday().num_days_from_monday()))
        }
        Interval::Month => first_of_month(from.year(), from.month()).unwrap_or(from),
    };
    let mut out = Vec::new();
    while start <= to && out.len() < MAX_BUCKETS {
        let end = match interval {
            Interval::Day => start + Duration::days(1),
            Interval::Week => start + Duration::weeks(1),
            Interval::Month => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                match first_of_month(y, m) {
                    Some(e) => e,
                    None => break,
                }
            }
        };
        out.push(Bucket { start, end });
        start = end;
    }
    out
}

/// What series are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// One series, `all`.
    All,
    Kind,
    Type,
    Lifecycle,
    Tag,
    Owner,
    System,
    Domain,
    Namespace,
    /// Changes only: the source that observed them.
    Source,
    /// Changes only: the event type (`entity_updated`, ...).
    Change,
    /// Repositories: the GitHub organisation (`github.com/acme`).
    Org,
    /// Repositories: each team that works on them (push, maintain or
    /// admin), as the catalog Group made of it (`group:default/payments`).
    Team,
    /// Repositories: each language GitHub counts in them.
    Language,
    /// Repositories: each topic.
    Topic,
    /// APIs: `spec.type`.
    ApiType,
    /// Entities: each entity they depend on (`dependsOn`, `consumesApi`).
    Dependency,
}

impl Dimension {
    pub fn parse(s: &str) -> Option<Dimension> {
        Some(match s {
            "all" => Dimension::All,
            "kind" => Dimension::Kind,
            "type" => Dimension::Type,
            "lifecycle" => Dimension::Lifecycle,
            "tag" => Dimension::Tag,
            "owner" => Dimension::Owner,
            "system" => Dimension::System,
            "domain" => Dimension::Domain,
            "namespace" => Dimension::Namespace,
            "source" => Dimension::Source,
            "change" => Dimension::Change,
            "org" => Dimension::Org,
            "team" => Dimension::Team,
            "language" => Dimension::Language,
            "topic" => Dimension::Topic,
            "api-type" => Dimension::ApiType,
            "dependency" => Dimension::Dependency,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::All => "all",
            Dimension::Kind => "kind",
            Dimension::Type => "type",
            Dimension::Lifecycle => "lifecycle",
            Dimension::Tag => "tag",
            Dimension::Owner => "owner",
            Dimension::System => "system",
            Dimension::Domain => "domain",
            Dimension::Namespace => "namespace",
            Dimension::Source => "source",
            Dimension::Change => "change",
            Dimension::Org => "org",
            Dimension::Team => "team",
            Dimension::Language => "language",
            Dimension::Topic => "topic",
            Dimension::ApiType => "api-type",
            Dimension::Dependency => "dependency",
        }
    }
}

/// The label of an entity without a value for the dimension.
pub const NONE: &str = "(none)";

/// The targets of a relation type in a served body, as ref keys.
pub fn related(body: &Value, relation: &str) -> Vec<String> {
    body.get("relations")
        .and_then(Value::as_array)
        .map(|rels| {
            rels.iter()
                .filter(|r| r.get("type").and_then(Value::as_str) == Some(relation))
                .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// The strings of the array at `pointer` (none when it is not an array).
pub fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn text(body: &Value, path: &[&str]) -> Option<String> {
    let mut v = body;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str().map(str::to_owned)
}

/// The values of `dim` for an entity's served body (several for tags).
pub fn values_of(dim: Dimension, body: &Value) -> Vec<String> {
    let vals: Vec<String> = match dim {
        Dimension::All => return vec!["all".into()],
        Dimension::Kind => text(body, &["kind"])
            .map(|k| k.to_ascii_lowercase())
            .into_iter()
            .collect(),
        Dimension::Type => text(body, &["spec", "type"]).into_iter().collect(),
        Dimension::Lifecycle => text(body, &["spec", "lifecycle"]).into_iter().collect(),
        Dimension::Namespace => text(body, &["metadata", "namespace"]).into_iter().collect(),
        Dimension::Tag => strings_at(body, "/metadata/tags"),
        Dimension::Owner => related(body, "ownedBy"),
        Dimension::System => related(body, "partOf")
            .into_iter()
            .filter(|r| r.starts_with("system:"))
            .collect(),
        Dimension::Domain => {
            let mut d: Vec<String> = related(body, "partOf")
                .into_iter()
                .filter(|r| r.starts_with("domain:"))
                .collect();
            if d.is_empty() {
                d.extend(text(body, &["spec", "domain"]));
            }
            d
        }
        Dimension::ApiType => text(body, &["spec", "type"]).into_iter().collect(),
        Dimension::Dependency => {
            let mut d = related(body, "dependsOn");
            d.extend(related(body, "consumesApi"));
            d.sort();
            d.dedup();
            d
        }
        Dimension::Source
        | Dimension::Change
        | Dimension::Org
        | Dimension::Team
        | Dimension::Language
        | Dimension::Topic => Vec::new(),
    };
    if vals.is_empty() {
        vec![NONE.into()]
    } else {
        vals
    }
}

/// One series: `measure` of the entities (or changes) with `key` as their
/// value of the dimension, per interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub key: String,
    pub measure: Cow<'static, str>,
    pub values: Vec<f64>,
}

/// Calls `visit` with each ref's versions (oldest first; bodies only
/// `with_bodies`), in ref order.
pub(crate) fn each_ref(
    store: &dyn Store,
    prefix: &[u8],
    with_bodies: bool,
    visit: &mut dyn FnMut(&str, &Versions) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    crate::temporal::scan_versions(store, prefix, None, with_bodies, &mut |r, versions| {
        visit(r, &versions).map(|()| true)
    })
}

/// The bucket indexes `[a, b)` whose end instant (state as of `end - 1 ms`)
/// sees a version valid from `from` until `until`.
fn covered(ends: &[i64], from: i64, until: Option<i64>) -> (usize, usize) {
    let a = ends.partition_point(|e| *e - 1 < from);
    let b = match until {
        Some(u) => ends.partition_point(|e| *e - 1 < u),
        None => ends.len(),
    };
    (a, b.max(a))
}

fn ends_ms(buckets: &[Bucket]) -> Vec<i64> {
    buckets.iter().map(|b| b.end.timestamp_millis()).collect()
}

fn parse(r: &str, body: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
        key: format!("version of {r}"),
        reason: e.to_string(),
    })
}

/// Calls `visit(body, a, b)` for every served version of every ref that
/// the buckets `[a, b)` see.
fn each_seen(
    store: &dyn Store,
    buckets: &[Bucket],
    visit: &mut dyn FnMut(&str, &Value, usize, usize),
) -> Result<(), StoreError> {
    let ends = ends_ms(buckets);
    // Versions hold no relations: each is seen with those it had then.
    let mut relations = crate::relations::HistoryCursor::new(store);
    each_ref(store, &[keys::VERSION], true, &mut |r, versions| {
        let history = relations.of(r)?;
        for (i, (t, body)) in versions.iter().enumerate() {
            let Some(body) = body else { continue };
            let (a, b) = covered(&ends, *t, versions.get(i + 1).map(|v| v.0));
            if a < b {
                let mut value = parse(r, body)?;
                let rels = crate::relations::at(&history, *t);
                if !rels.is_empty()
                    && let Some(map) = value.as_object_mut()
                {
                    map.insert(
                        "relations".into(),
                        serde_json::to_value(&rels).expect("relations serialise"),
                    );
                }
                visit(r, &value, a, b);
            }
        }
        Ok(())
    })
}

fn finish(diffs: BTreeMap<String, Vec<i64>>, measure: &'static str, n: usize) -> Vec<Series> {
    diffs
        .into_iter()
        .map(|(key, diff)| {
            let mut acc = 0i64;
            let values = diff[..n]
                .iter()
                .map(|d| {
                    acc += d;
                    acc as f64
                })
                .collect();
            Series {
                key,
                measure: measure.into(),
                values,
            }
        })
        .collect()
}

fn add(diffs: &mut BTreeMap<String, Vec<i64>>, key: String, a: usize, b: usize, n: usize) {
    let d = diffs.entry(key).or_insert_with(|| vec![0; n + 1]);
    d[a] += 1;
    d[b] -= 1;
}

/// `entities`: how many entities (matching `filter`) there were at the end
/// of each interval, by `dim`.
pub fn entities(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let mut diffs = BTreeMap::new();
    each_seen(store, buckets, &mut |_, body, a, b| {
        if filter.is_none_or(|f| f.matches(body)) {
            for key in values_of(dim, body) {
                add(&mut diffs, key, a, b, n);
            }
        }
    })?;
    Ok(finish(diffs, "entities", n))
}

/// The entities of each value of a split at each of several instants,
/// from the posting lists' history (see [`crate::temporal`]).
struct Split {
    /// What is counted at each instant: every served entity, or those the
    /// filter selects then.
    base: Vec<RoaringBitmap>,
    /// Every served entity at each instant.
    every: Vec<RoaringBitmap>,
    /// Per label (a value of the split, or [`NONE`]), its counted entities
    /// at each instant; only labels with some.
    labels: BTreeMap<String, Vec<RoaringBitmap>>,
}

/// [`Split`] of `dim` at `instants` (ascending), `None` for a split the
/// lists do not answer (domain, which falls back to `spec.domain`) or a
/// store without the lists' history.
fn split_from_history(
    catalog: &crate::Catalog,
    instants: &[i64],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Option<Split>, StoreError> {
    // The search key, a value prefix, and whether a value is labelled as
    // written (else lower-cased, as refs and kinds are).
    let (key, prefix, as_written) = match dim {
        Dimension::All => ("", "", false),
        Dimension::Kind => ("kind", "", false),
        Dimension::Type => ("spec.type", "", true),
        Dimension::Lifecycle => ("spec.lifecycle", "", true),
        Dimension::Namespace => ("metadata.namespace", "", true),
        Dimension::Tag => ("metadata.tags", "", true),
        Dimension::Owner => ("relations.ownedby", "", false),
        Dimension::System => ("relations.partof", "system:", false),
        _ => return Ok(None),
    };
    let store = catalog.store().as_ref();
    if !crate::temporal::available(store)? {
        return Ok(None);
    }
    let n = instants.len();
    let mut every = vec![RoaringBitmap::new(); n];
    for (_, states) in crate::temporal::lists_at_each(store, "kind", "", instants)? {
        for (all, p) in every.iter_mut().zip(states) {
            *all |= p.members();
        }
    }
    let base: Vec<RoaringBitmap> = match filter {
        Some(f) => filter_at_each(store, f, instants)?,
        None => every.clone(),
    };
    let mut labels: BTreeMap<String, Vec<RoaringBitmap>> = BTreeMap::new();
    if dim == Dimension::All {
        if base.iter().any(|b| !b.is_empty()) {
            labels.insert("all".into(), base.clone());
        }
        return Ok(Some(Split {
            base,
            every,
            labels,
        }));
    }
    let mut with_value = vec![RoaringBitmap::new(); n];
    for (value, states) in crate::temporal::lists_at_each(store, key, prefix, instants)? {
        if value.is_empty() {
            // Values too long to index: counted as without one.
            continue;
        }
        for (i, p) in states.into_iter().enumerate() {
            for (casing, mut members) in p.casings {
                // A list holds served entities only: unfiltered, all of
                // its members count.
                if filter.is_some() {
                    members &= &base[i];
                }
                if members.is_empty() {
                    continue;
                }
                with_value[i] |= &members;
                let label = if as_written { casing } else { value.clone() };
                let at = labels
                    .entry(label)
                    .or_insert_with(|| vec![RoaringBitmap::new(); n]);
                at[i] |= members;
            }
        }
    }
    let none: Vec<RoaringBitmap> = base.iter().zip(&with_value).map(|(b, w)| b - w).collect();
    if none.iter().any(|b| !b.is_empty()) {
        labels.insert(NONE.into(), none);
    }
    Ok(Some(Split {
        base,
        every,
        labels,
    }))
}

/// What a filter selects at each of `instants` (ascending), from the
/// histories of the lists its conditions name, each read once: the
/// filter's set algebra (a clause intersects its conditions, clauses are
/// united) applied at every instant.
fn filter_at_each(
    store: &dyn Store,
    filter: &EntityFilter,
    instants: &[i64],
) -> Result<Vec<RoaringBitmap>, StoreError> {
    let n = instants.len();
    let mut out = vec![RoaringBitmap::new(); n];
    for clause in &filter.any_of {
        let mut acc: Option<Vec<RoaringBitmap>> = None;
        for c in &clause.all_of {
            let mut lists = Vec::new();
            if c.values.is_empty() {
                lists = crate::temporal::lists_at_each(store, &c.key, "", instants)?;
            } else {
                for v in &c.values {
                    lists.extend(
                        crate::temporal::lists_at_each(store, &c.key, v, instants)?
                            .into_iter()
                            .filter(|(value, _)| value == v),
                    );
                }
            }
            let mut bits = vec![RoaringBitmap::new(); n];
            for (_, states) in lists {
                for (b, p) in bits.iter_mut().zip(states) {
                    *b |= p.members();
                }
            }
            acc = Some(match acc {
                None => bits,
                Some(a) => a.into_iter().zip(bits).map(|(x, y)| x & y).collect(),
            });
        }
        if let Some(a) = acc {
            for (o, b) in out.iter_mut().zip(a) {
                *o |= b;
            }
        }
    }
    Ok(out)
}

/// The instant each bucket's state is read at (its end, less a
/// millisecond).
fn instants_of(buckets: &[Bucket]) -> Vec<i64> {
    ends_ms(buckets).iter().map(|e| e - 1).collect()
}

/// `entities` from the posting lists' history: for each list of the
/// split's key, its members at every interval's end in one pass over its
/// changes, counted against what the filter selects then. The same counts
/// as [`entities`] without reading a version; `None` where
/// [`split_from_history`] is.
pub fn entities_from_history(
    catalog: &crate::Catalog,
    buckets: &[Bucket],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Option<Vec<Series>>, StoreError> {
    let Some(split) = split_from_history(catalog, &instants_of(buckets), dim, filter)? else {
        return Ok(None);
    };
    Ok(Some(
        split
            .labels
            .into_iter()
            .map(|(key, at)| Series {
                key,
                measure: "entities".into(),
                values: at.iter().map(|b| b.len() as f64).collect(),
            })
            .collect(),
    ))
}

/// `ownership-coverage` from the posting lists' history: at each
/// interval's end, an entity is owned when one of its `ownedBy` targets is
/// a Group served then, orphaned when none of them is served then. The
/// same counts as [`ownership`] without reading a version; `None` where
/// [`split_from_history`] is.
pub fn ownership_from_history(
    catalog: &crate::Catalog,
    buckets: &[Bucket],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Option<Vec<Series>>, StoreError> {
    let instants = instants_of(buckets);
    let Some(split) = split_from_history(catalog, &instants, dim, filter)? else {
        return Ok(None);
    };
    let store = catalog.store().as_ref();
    let n = instants.len();
    let (mut owned, mut has_owner) = (vec![RoaringBitmap::new(); n], vec![RoaringBitmap::new(); n]);
    for (target, states) in
        crate::temporal::lists_at_each(store, "relations.ownedby", "", &instants)?
    {
        // An owner that was never indexed was never served.
        let Some(ordinal) = crate::postings::ordinal(store, &target)? else {
            continue;
        };
        let group = target.starts_with("group:");
        for (i, p) in states.into_iter().enumerate() {
            if !split.every[i].contains(ordinal) {
                continue;
            }
            let mut members = p.members();
            members &= &split.base[i];
            if group {
                owned[i] |= &members;
            }
            has_owner[i] |= members;
        }
    }
    let mut out = Vec::new();
    for (key, at) in split.labels {
        let total: Vec<f64> = at.iter().map(|b| b.len() as f64).collect();
        let own: Vec<f64> = at
            .iter()
            .zip(&owned)
            .map(|(b, o)| b.intersection_len(o) as f64)
            .collect();
        let orphaned: Vec<f64> = at
            .iter()
            .zip(&has_owner)
            .map(|(b, h)| (b.len() - b.intersection_len(h)) as f64)
            .collect();
        let coverage = own
            .iter()
            .zip(&total)
            .map(|(o, t)| if *t == 0.0 { 0.0 } else { o / t })
            .collect();
        for (measure, values) in [
            ("owned", own),
            ("orphaned", orphaned),
            ("total", total),
            ("coverage", coverage),
        ] {
            out.push(Series {
                key: key.clone(),
                measure: measure.into(),
                values,
            });
        }
    }
    Ok(Some(out))
}

/// `ownership-coverage`: of the entities matching `filter`, at the end of
/// each interval, how many were owned by a Group in the catalog then
/// (`owned`), how many had no owner or one not in the catalog then
/// (`orphaned`), all of them (`total`), and `owned / total` (`coverage`),
/// by `dim`.
pub fn ownership(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
    filter: Option<&EntityFilter>,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let ends = ends_ms(buckets);
    // Which buckets see each ref served (bodies not needed).
    let mut alive: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    each_ref(store, &[keys::VERSION], false, &mut |r, versions| {
        for (i, (t, body)) in versions.iter().enumerate() {
            if body.is_some() {
                let (a, b) = covered(&ends, *t, versions.get(i + 1).map(|v| v.0));
                if a < b {
                    alive.entry(r.to_owned()).or_default().push((a, b));
                }
            }
        }
        Ok(())
    })?;
    let alive_at = |r: &str, i: usize| {
        alive
            .get(r)
            .is_some_and(|spans| spans.iter().any(|(a, b)| (*a..*b).contains(&i)))
    };
    // Per key and bucket: owned, orphaned, total.
    let mut counts: BTreeMap<String, Vec<[i64; 3]>> = BTreeMap::new();
    each_seen(store, buckets, &mut |_, body, a, b| {
        if !filter.is_none_or(|f| f.matches(body)) {
            return;
        }
        let owners = related(body, "ownedBy");
        for key in values_of(dim, body) {
            let cells = counts.entry(key).or_insert_with(|| vec![[0; 3]; n]);
            for (i, cell) in cells.iter_mut().enumerate().take(b).skip(a) {
                cell[2] += 1;
                if owners
                    .iter()
                    .any(|o| o.starts_with("group:") && alive_at(o, i))
                {
                    cell[0] += 1;
                } else if !owners.iter().any(|o| alive_at(o, i)) {
                    cell[1] += 1;
                }
            }
        }
    })?;
    let mut out = Vec::new();
    for (key, cells) in counts {
        let column = |j: usize| cells.iter().map(|c| c[j] as f64).collect::<Vec<f64>>();
        let coverage = cells
            .iter()
            .map(|c| {
                if c[2] == 0 {
                    0.0
                } else {
                    c[0] as f64 / c[2] as f64
                }
            })
            .collect();
        out.push(Series {
            key: key.clone(),
            measure: "owned".into(),
            values: column(0),
        });
        out.push(Series {
            key: key.clone(),
            measure: "orphaned".into(),
            values: column(1),
        });
        out.push(Series {
            key: key.clone(),
            measure: "total".into(),
            values: column(2),
        });
        out.push(Series {
            key,
            measure: "coverage".into(),
            values: coverage,
        });
    }
    Ok(out)
}

/// Calls `visit(subject, facts, a, b)` for every present version of every
/// GitHub repository's facts that the buckets `[a, b)` see, archived
/// repositories left out.
fn each_repository(
    store: &dyn Store,
    buckets: &[Bucket],
    visit: &mut dyn FnMut(&Value, usize, usize),
) -> Result<(), StoreError> {
    let ends = ends_ms(buckets);
    each_ref(store, &[FACT_HISTORY], true, &mut |subject, versions| {
        for (i, (t, body)) in versions.iter().enumerate() {
            let Some(body) = body else { continue };
            let (a, b) = covered(&ends, *t, versions.get(i + 1).map(|v| v.0));
            if a >= b {
                continue;
            }
            let facts = parse(subject, body)?;
            if facts.get("kind").and_then(Value::as_str) == Some("github_repository")
                && facts.get("archived").and_then(Value::as_bool) != Some(true)
            {
                visit(&facts, a, b);
            }
        }
        Ok(())
    })
}

/// The teams' roles on a repository that make it theirs: they push to it
/// or administer it. `pull` and `triage` only read it.
const WORKING_PERMISSIONS: [&str; 3] = ["push", "maintain", "admin"];

/// The Group refs of the teams working on a repository (see
/// [`WORKING_PERMISSIONS`]), each once; [`NONE`] when there is none, or
/// its teams were not read.
fn working_teams(facts: &Value) -> Vec<String> {
    let teams = facts
        .get("teams")
        .filter(|t| t.get("access").and_then(Value::as_str) == Some("granted"))
        .and_then(|t| t.get("teams"))
        .and_then(Value::as_array);
    let mut groups: Vec<String> = teams
        .into_iter()
        .flatten()
        .filter(|t| {
            t.get("permission")
                .and_then(Value::as_str)
                .is_some_and(|p| WORKING_PERMISSIONS.contains(&p))
        })
        .filter_map(|t| t.get("group").and_then(Value::as_str))
        .filter(|g| !g.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    groups.sort();
    groups.dedup();
    if groups.is_empty() {
        groups.push(NONE.into());
    }
    groups
}

/// `catalog-coverage`: of the (unarchived) repositories the GitHub sources
/// listed, how many had a catalog descriptor at the end of each interval
/// (`with_descriptor`), all of them (`repositories`) and the share
/// (`coverage`), overall, by organisation, or by team: a repository counts
/// under each team with push, maintain or admin access to it (keyed by the
/// team's Group ref), or under [`NONE`] without one.
pub fn catalog_coverage(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let mut all = BTreeMap::new();
    let mut covered_ = BTreeMap::new();
    each_repository(store, buckets, &mut |facts, a, b| {
        let keys = match dim {
            Dimension::Org => vec![format!(
                "{}/{}",
                facts.get("host").and_then(Value::as_str).unwrap_or(""),
                facts
                    .get("owner")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_ascii_lowercase()
            )],
            Dimension::Team => working_teams(facts),
            _ => vec!["all".to_owned()],
        };
        let described = facts
            .get("descriptors")
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty());
        for key in keys {
            add(&mut all, key.clone(), a, b, n);
            if described {
                add(&mut covered_, key, a, b, n);
            }
        }
    })?;
    let totals = finish(all, "repositories", n);
    let mut described: BTreeMap<String, Series> = finish(covered_, "with_descriptor", n)
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();
    let mut out = Vec::new();
    for total in totals {
        let with = described.remove(&total.key).unwrap_or_else(|| Series {
            key: total.key.clone(),
            measure: "with_descriptor".into(),
            values: vec![0.0; n],
        });
        out.push(ratio(&with, &total, "coverage"));
        out.push(with);
        out.push(total);
    }
    Ok(out)
}

/// `part / whole` per interval (0 where the whole is 0), as `measure`.
fn ratio(part: &Series, whole: &Series, measure: &'static str) -> Series {
    Series {
        key: part.key.clone(),
        measure: measure.into(),
        values: part
            .values
            .iter()
            .zip(&whole.values)
            .map(|(p, w)| if *w == 0.0 { 0.0 } else { p / w })
            .collect(),
    }
}

/// Counts per key, each with its share of `total`, as `measure` and
/// `share`.
fn with_shares(
    counts: BTreeMap<String, Vec<i64>>,
    total: Vec<i64>,
    measure: &'static str,
    n: usize,
) -> Vec<Series> {
    let total = finish(BTreeMap::from([(String::new(), total)]), measure, n)
        .pop()
        .unwrap_or(Series {
            key: String::new(),
            measure: measure.into(),
            values: vec![0.0; n],
        });
    let mut out = Vec::new();
    for s in finish(counts, measure, n) {
        out.push(ratio(&s, &total, "share"));
        out.push(s);
    }
    out
}

/// `technology`: adoption of languages and topics (repositories, from the
/// GitHub facts), tags and API types (entities), and of what entities
/// depend on (`dependsOn` and `consumesApi` targets; `target` narrows to
/// one), each as a count and a share at the end of each interval. The
/// share is of all unarchived repositories, or of all entities matching
/// the filter (APIs for `api-type`).
pub fn technology(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
    opts: &Options,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let mut counts = BTreeMap::new();
    let mut total = vec![0i64; n + 1];
    match dim {
        Dimension::Language | Dimension::Topic => {
            each_repository(store, buckets, &mut |facts, a, b| {
                total[a] += 1;
                total[b] -= 1;
                let keys: Vec<String> = if dim == Dimension::Language {
                    facts
                        .get("languages")
                        .and_then(Value::as_object)
                        .map(|l| l.keys().cloned().collect())
                        .unwrap_or_default()
                } else {
                    strings_at(facts, "/topics")
                };
                for k in keys {
                    add(&mut counts, k, a, b, n);
                }
            })?;
            Ok(with_shares(counts, total, "repositories", n))
        }
        _ => {
            let apis = EntityFilter::parse(&["kind=api".to_owned()]).ok().flatten();
            let filter = match (dim, opts.filter) {
                (_, Some(f)) => Some(f),
                (Dimension::ApiType, None) => apis.as_ref(),
                _ => None,
            };
            each_seen(store, buckets, &mut |_, body, a, b| {
                if !filter.is_none_or(|f| f.matches(body)) {
                    return;
                }
                total[a] += 1;
                total[b] -= 1;
                for key in values_of(dim, body) {
                    if key == NONE || opts.target.as_ref().is_some_and(|t| *t != key) {
                        continue;
                    }
                    add(&mut counts, key, a, b, n);
                }
            })?;
            Ok(with_shares(counts, total, "entities", n))
        }
    }
}

/// Per group and interval: entities, entities per level, score sum, and
/// entities passing (or exempt from) each check.
#[derive(Clone)]
struct LevelCell {
    entities: i64,
    levels: Vec<i64>,
    score: i64,
    passing: Vec<i64>,
}

/// `scorecard-levels`: one scorecard's results at the end of each
/// interval, by owner (a group counts its child groups' entities too),
/// system, domain or all: `entities`, `level:<name>` (and `level:(none)`),
/// `mean_score`, and `pass_rate:<check>` (passing or exempt / entities).
pub fn scorecard_levels(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
    def: &Definition,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let ends = ends_ms(buckets);
    let by = match dim {
        Dimension::Owner => RollupBy::Owner,
        Dimension::System => RollupBy::System,
        Dimension::Domain => RollupBy::Domain,
        _ => RollupBy::All,
    };
    let checks: Vec<&str> = def.checks.iter().map(|c| c.id.as_str()).collect();
    let empty = LevelCell {
        entities: 0,
        levels: vec![0; def.levels.len() + 1],
        score: 0,
        passing: vec![0; checks.len()],
    };
    // Per group, per interval: what starts counting there (+) and what
    // stops (-). An entity's state (its level, score and checks) usually
    // holds over many intervals: it costs two changes per group per state,
    // not one per interval, and the cells are summed at the end.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut deltas: Vec<Vec<LevelCell>> = Vec::new();
    each_timeline(store, &def.id, &mut |timeline| {
        let mut count = |state: &ResultChange,
                         status: &HashMap<&str, Option<CheckStatus>>,
                         from: usize,
                         to: usize| {
            if !state.applies {
                return;
            }
            let level = state.level_index.map_or(0, |l| l + 1);
            let score = i64::from(state.score_after.unwrap_or(0));
            let passing: Vec<usize> = checks
                .iter()
                .enumerate()
                .filter(|(_, id)| {
                    matches!(
                        status.get(*id),
                        Some(Some(CheckStatus::Pass | CheckStatus::Exempt))
                    )
                })
                .map(|(c, _)| c)
                .collect();
            for g in trend_groups(state, by) {
                let key = if g == "*" { "all".to_owned() } else { g };
                let at = match index.get(&key) {
                    Some(&at) => at,
                    None => {
                        index.insert(key, deltas.len());
                        deltas.push(vec![empty.clone(); n + 1]);
                        deltas.len() - 1
                    }
                };
                for (b, sign) in [(from, 1), (to, -1)] {
                    let cell = &mut deltas[at][b];
                    cell.entities += sign;
                    if let Some(c) = cell.levels.get_mut(level) {
                        *c += sign;
                    }
                    cell.score += sign * score;
                    for c in &passing {
                        cell.passing[*c] += sign;
                    }
                }
            }
        };
        // Each check's status as of the state counted: the last status each
        // change up to it recorded (runs come in the order of their states).
        let mut status: HashMap<&str, Option<CheckStatus>> = HashMap::new();
        let mut folded = 0;
        state_runs(
            timeline.len(),
            |i| timeline[i].at.timestamp_millis(),
            ends.iter().copied(),
            &mut |j, from, to| {
                while folded <= j {
                    for (id, (_, after)) in &timeline[folded].checks {
                        status.insert(id.as_str(), *after);
                    }
                    folded += 1;
                }
                count(&timeline[j], &status, from, to);
            },
        );
    })?;
    let mut groups: BTreeMap<String, Vec<LevelCell>> = BTreeMap::new();
    for (key, at) in index {
        let mut total = empty.clone();
        let cells = deltas[at]
            .iter()
            .take(n)
            .map(|d| {
                total.entities += d.entities;
                for (t, x) in total.levels.iter_mut().zip(&d.levels) {
                    *t += x;
                }
                total.score += d.score;
                for (t, x) in total.passing.iter_mut().zip(&d.passing) {
                    *t += x;
                }
                total.clone()
            })
            .collect();
        groups.insert(key, cells);
    }
    let mut out = Vec::new();
    let level_names: Vec<String> = std::iter::once(format!("level:{NONE}"))
        .chain(def.levels.iter().map(|l| format!("level:{l}")))
        .collect();
    for (key, cells) in groups {
        let per = |f: &dyn Fn(&LevelCell) -> f64| cells.iter().map(f).collect::<Vec<f64>>();
        let share = |num: &dyn Fn(&LevelCell) -> i64| {
            per(&|c| {
                if c.entities == 0 {
                    0.0
                } else {
                    num(c) as f64 / c.entities as f64
                }
            })
        };
        out.push(Series {
            key: key.clone(),
            measure: "entities".into(),
            values: per(&|c| c.entities as f64),
        });
        for (l, name) in level_names.iter().enumerate() {
            out.push(Series {
                key: key.clone(),
                measure: name.clone().into(),
                values: per(&|c| c.levels[l] as f64),
            });
        }
        out.push(Series {
            key: key.clone(),
            measure: "mean_score".into(),
            values: share(&|c| c.score),
        });
        for (c, id) in checks.iter().enumerate() {
            out.push(Series {
                key: key.clone(),
                measure: format!("pass_rate:{id}").into(),
                values: share(&|cell| cell.passing[c]),
            });
        }
    }
    Ok(out)
}

/// A group's move over the window: its mean score in the first interval
/// where it had entities, and in the last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mover {
    pub key: String,
    pub from: f64,
    pub to: f64,
    pub change: f64,
}

/// The groups whose mean score rose most and fell most over the window
/// (at most `top` each), from `scorecard-levels` series.
pub fn movers(series: &[Series], top: usize) -> (Vec<Mover>, Vec<Mover>) {
    let mut moves = Vec::new();
    for s in series.iter().filter(|s| s.measure == "mean_score") {
        let Some(entities) = series
            .iter()
            .find(|e| e.key == s.key && e.measure == "entities")
        else {
            continue;
        };
        let seen: Vec<usize> = (0..s.values.len())
            .filter(|i| entities.values[*i] > 0.0)
            .collect();
        let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
            continue;
        };
        let (from, to) = (s.values[*first], s.values[*last]);
        moves.push(Mover {
            key: s.key.clone(),
            from,
            to,
            change: to - from,
        });
    }
    let mut up: Vec<Mover> = moves.iter().filter(|m| m.change > 0.0).cloned().collect();
    up.sort_by(|a, b| b.change.total_cmp(&a.change).then(a.key.cmp(&b.key)));
    up.truncate(top);
    let mut down: Vec<Mover> = moves.into_iter().filter(|m| m.change < 0.0).collect();
    down.sort_by(|a, b| a.change.total_cmp(&b.change).then(a.key.cmp(&b.key)));
    down.truncate(top);
    (up, down)
}

/// `changes`: how many changes the feed recorded within each interval, by
/// `dim` (`source`, `kind`: the entity's kind or `location`, `change`: the
/// event type, or `all`).
pub fn changes(
    store: &dyn Store,
    buckets: &[Bucket],
    dim: Dimension,
) -> Result<Vec<Series>, StoreError> {
    let n = buckets.len();
    let starts: Vec<i64> = buckets.iter().map(|b| b.start.timestamp_millis()).collect();
    let last_end = buckets
        .last()
        .map_or(i64::MIN, |b| b.end.timestamp_millis());
    let mut counts: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut err = None;
    store.scan(&[keys::FEED], None, &mut |k, v| {
        let r: FeedRecord = match records::decode(k, v) {
            Ok(r) => r,
            Err(e) => {
                err = Some(e);
                return false;
            }
        };
        let t = r.at.timestamp_millis();
        if r.kind == crate::feed::FeedKind::ScorecardChanged
            || t >= last_end
            || starts.first().is_none_or(|s| t < *s)
        {
            return true;
        }
        let i = starts.partition_point(|s| *s <= t) - 1;
        let key = match dim {
            Dimension::Source => r.source.to_string(),
            Dimension::Change => r.kind.as_str().to_owned(),
            Dimension::Kind => r
                .entity
                .as_deref()
                .and_then(|e| e.split_once(':'))
                .map_or_else(|| "location".to_owned(), |(k, _)| k.to_owned()),
            _ => "all".to_owned(),
        };
        counts.entry(key).or_insert_with(|| vec![0.0; n])[i] += 1.0;
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    Ok(counts
        .into_iter()
        .map(|(key, values)| Series {
            key,
            measure: "changes".into(),
            values,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::Fold;
    use crate::fold::tests::{component, event, group};
    use crate::store::MemStore;
    use proto::{EntityEvent, FactEvent, LocationOutcome, ProcessedEntity};

    fn day(d: i64, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap() + Duration::days(d)
    }

    fn at(mut e: EntityEvent, t: DateTime<Utc>) -> EntityEvent {
        e.observed_at = t;
        e
    }

    fn apply(store: &MemStore, e: &EntityEvent) {
        let mut fold = Fold::new(store);
        fold.apply(e).unwrap();
        store.write(fold.finish().unwrap()).unwrap();
    }

    fn values<'a>(series: &'a [Series], key: &str, measure: &str) -> &'a [f64] {
        &series
            .iter()
            .find(|s| s.key == key && s.measure == measure)
            .unwrap_or_else(|| panic!("no {key}/{measure} in {series:?}"))
            .values
    }

    #[test]
    fn counts_ownership_and_changes_follow_history() {
        let store = MemStore::new();
        let (a, b) = ("file:/org/a.yaml", "file:/org/b.yaml");
        // Day 1: c1 owned by team-a, which exists. Day 3: c2, owned by a
        // group nobody defined. Day 5: c1 goes.
        apply(
            &store,
            &at(
                event(a, 1, vec![component("c1", "team-a", a), group("team-a")]),
                day(1, 12),
            ),
        );
        apply(
            &store,
            &at(event(b, 2, vec![component("c2", "ghost", b)]), day(3, 12)),
        );
        apply(&store, &at(event(a, 1, vec![group("team-a")]), day(5, 12)));
        let days = buckets(day(0, 5), day(6, 5), Interval::Day);
        assert_eq!(days.len(), 7);
        assert_eq!(days[0].start, day(0, 0));

        let by_kind = entities(&store, &days, Dimension::Kind, None).unwrap();
        assert_eq!(
            values(&by_kind, "component", "entities"),
            [0.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0]
        );
        assert_eq!(
            values(&by_kind, "group", "entities"),
            [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
        let by_owner = entities(&store, &days, Dimension::Owner, None).unwrap();
        assert_eq!(
            values(&by_owner, "group:default/team-a", "entities")[4],
            1.0
        );
        assert_eq!(values(&by_owner, "group:default/ghost", "entities")[4], 1.0);
        assert_eq!(
            values(&by_owner, NONE, "entities")[4],
            1.0,
            "the group has no owner"
        );
        let filter = EntityFilter::parse(&["kind=component".into()])
            .unwrap()
            .unwrap();
        let own = ownership(&store, &days, Dimension::All, Some(&filter)).unwrap();
        assert_eq!(
            values(&own, "all", "owned"),
            [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(
            values(&own, "all", "orphaned"),
            [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(values(&own, "all", "coverage")[3], 0.5);

        let ch = changes(&store, &days, Dimension::Change).unwrap();
        assert_eq!(
            values(&ch, "entity_created", "changes"),
            [0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(values(&ch, "entity_deleted", "changes")[5], 1.0);
        assert_eq!(values(&ch, "location_created", "changes")[3], 1.0);

        // The location gone: nothing left at the end of day 6.
        let mut gone = event(a, 1, vec![]);
        gone.outcome = LocationOutcome::Removed;
        apply(&store, &at(gone, day(6, 1)));
        let by_kind = entities(&store, &days, Dimension::Kind, None).unwrap();
        assert_eq!(values(&by_kind, "group", "entities")[6], 0.0);
        assert_eq!(values(&by_kind, "group", "entities")[5], 1.0);
    }

    /// A component with tags and a type, written as `variant` says.
    fn tagged(name: &str, owner: &str, loc: &str, variant: usize) -> ProcessedEntity {
        let mut e = component(name, owner, loc);
        let tags = [vec!["Java"], vec!["java", "go"], vec![], vec!["GO", "rust"]];
        e.entity.metadata.tags = tags[variant % 4].iter().map(|t| t.to_string()).collect();
        if let Some(spec) = e.entity.spec.as_mut().and_then(|s| s.as_object_mut()) {
            let types = ["service", "Service", "library"];
            spec.insert("type".into(), types[variant % 3].into());
        }
        e
    }

    #[test]
    fn entity_counts_from_the_lists_history_are_the_counts_from_versions() {
        let store = Arc::new(MemStore::new());
        crate::temporal::upgrade(store.as_ref()).unwrap();
        let locs = ["file:/org/a.yaml", "file:/org/b.yaml", "file:/org/c.yaml"];
        // Forty changes over twenty days, some observed late (before
        // changes already applied), owners moving, tags and types in
        // several casings, entities coming and going.
        for i in 0..40usize {
            let loc = locs[i % 3];
            let d = ((i * 7) % 20) as i64;
            let mut entities = vec![group(&format!("team-{}", i % 2))];
            for k in 0..(i % 4) {
                entities.push(tagged(
                    &format!("c{}", (i + k) % 6),
                    &format!("team-{}", (i + k) % 3),
                    loc,
                    i + k,
                ));
            }
            let mut e = event(loc, i as i64 % 3, entities);
            if i % 9 == 8 {
                e.outcome = LocationOutcome::Removed;
            }
            apply(&store, &at(e, day(d, (i % 24) as u32)));
        }
        let catalog = crate::Catalog::new(store.clone());
        let days = buckets(day(-1, 0), day(21, 0), Interval::Day);
        let filter = EntityFilter::parse(&["kind=component,spec.type=service".into()])
            .unwrap()
            .unwrap();
        // Two clauses, one a key with any value.
        let either = EntityFilter::parse(&["kind=group".into(), "metadata.tags".into()])
            .unwrap()
            .unwrap();
        for dim in [
            Dimension::All,
            Dimension::Kind,
            Dimension::Type,
            Dimension::Lifecycle,
            Dimension::Namespace,
            Dimension::Tag,
            Dimension::Owner,
            Dimension::System,
        ] {
            for f in [None, Some(&filter), Some(&either)] {
                let slow = entities(store.as_ref(), &days, dim, f).unwrap();
                let fast = entities_from_history(&catalog, &days, dim, f)
                    .unwrap()
                    .expect("answered from history");
                assert_eq!(fast, slow, "{dim:?}, filtered: {}", f.is_some());
                let slow = ownership(store.as_ref(), &days, dim, f).unwrap();
                let fast = ownership_from_history(&catalog, &days, dim, f)
                    .unwrap()
                    .expect("answered from history");
                assert_eq!(
                    fast,
                    slow,
                    "ownership by {dim:?}, filtered: {}",
                    f.is_some()
                );
            }
        }
        let by_tag = entities(store.as_ref(), &days, Dimension::Tag, None).unwrap();
        assert!(by_tag.iter().any(|s| s.key == "GO") && by_tag.iter().any(|s| s.key == "go"));
        assert!(
            entities_from_history(&catalog, &days, Dimension::Domain, None)
                .unwrap()
                .is_none()
        );
    }

    fn repo(name: &str, descriptor: bool, languages: &[&str], at: DateTime<Utc>) -> FactEvent {
        FactEvent {
            event_id: uuid::Uuid::now_v7(),
            source: proto::SourceId::new("gh"),
            observed_at: at,
            subject: proto::SubjectKey::github_repository("github.com", "acme", name),
            state: proto::FactState::Present {
                facts: proto::Facts::GithubRepository(proto::RepositoryFacts {
                    host: "github.com".into(),
                    owner: "acme".into(),
                    name: name.into(),
                    id: 1,
                    url: format!("https://github.com/acme/{name}"),
                    default_branch: "main".into(),
                    branch: "main".into(),
                    visibility: "private".into(),
                    archived: false,
                    fork: false,
                    topics: vec!["payments".into()],
                    primary_language: languages.first().map(|l| l.to_string()),
                    languages: languages.iter().map(|l| (l.to_string(), 10)).collect(),
                    pushed_at: None,
                    files: Default::default(),
                    descriptors: if descriptor {
                        vec![proto::LocationKey::new(format!("url:{name}"))]
                    } else {
                        vec![]
                    },
                    branch_protection: proto::Access::Denied {
                        reason: "off".into(),
                    },
                    dependabot_alerts: proto::Access::Denied {
                        reason: "off".into(),
                    },
                    teams: proto::Access::Granted(proto::facts::RepoTeams::default()),
                }),
            },
        }
    }

    /// `e` with these teams (slug, permission) in the `default` namespace,
    /// or with its teams denied (`None`).
    fn with_teams(mut e: FactEvent, teams: Option<&[(&str, &str)]>) -> FactEvent {
        if let proto::FactState::Present {
            facts: proto::Facts::GithubRepository(f),
        } = &mut e.state
        {
            f.teams = match teams {
                Some(teams) => proto::Access::Granted(proto::facts::RepoTeams {
                    teams: teams
                        .iter()
                        .map(|(slug, permission)| proto::facts::RepoTeam {
                            slug: slug.to_string(),
                            permission: permission.to_string(),
                            group: format!("group:default/{slug}"),
                        })
                        .collect(),
                }),
                None => proto::Access::Denied {
                    reason: "Must have admin rights to Repository.".into(),
                },
            };
        }
        e
    }

    fn apply_facts(store: &MemStore, e: &FactEvent) {
        let mut fold = Fold::new(store);
        fold.apply_facts(e).unwrap();
        store.write(fold.finish().unwrap()).unwrap();
    }

    #[test]
    fn catalog_coverage_and_languages_follow_the_facts_history() {
        let store = MemStore::new();
        // Day 1: two repositories, one described, Go and Rust. Day 3: the
        // second gets a descriptor and drops Go. Day 4: the first goes.
        apply_facts(&store, &repo("a", true, &["Go"], day(1, 9)));
        apply_facts(&store, &repo("b", false, &["Go", "Rust"], day(1, 10)));
        apply_facts(&store, &repo("b", true, &["Rust"], day(3, 10)));
        // The same facts again change nothing and add no version.
        apply_facts(&store, &repo("b", true, &["Rust"], day(3, 11)));
        let mut gone = repo("a", true, &["Go"], day(4, 9));
        gone.state = proto::FactState::Removed;
        apply_facts(&store, &gone);
        let days = buckets(day(0, 5), day(5, 5), Interval::Day);
        let cov = catalog_coverage(&store, &days, Dimension::All).unwrap();
        assert_eq!(
            values(&cov, "all", "repositories"),
            [0.0, 2.0, 2.0, 2.0, 1.0, 1.0]
        );
        assert_eq!(
            values(&cov, "all", "with_descriptor"),
            [0.0, 1.0, 1.0, 2.0, 1.0, 1.0]
        );
        assert_eq!(values(&cov, "all", "coverage")[1], 0.5);
        let by_org = catalog_coverage(&store, &days, Dimension::Org).unwrap();
        assert_eq!(values(&by_org, "github.com/acme", "coverage")[3], 1.0);
        let opts = Options::default();
        let langs = technology(&store, &days, Dimension::Language, &opts).unwrap();
        assert_eq!(
            values(&langs, "Go", "repositories"),
            [0.0, 2.0, 2.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(values(&langs, "Go", "share")[3], 0.5);
        assert_eq!(values(&langs, "Rust", "share")[4], 1.0);
        let topics = technology(&store, &days, Dimension::Topic, &opts).unwrap();
        assert_eq!(values(&topics, "payments", "share")[2], 1.0);
    }

    #[test]
    fn catalog_coverage_by_team_follows_the_teams_access() {
        let store = MemStore::new();
        // Day 1: `a` (described) is pushed to by payments and read by sre;
        // `b` (not described) is administered by payments and maintained
        // by platform; `c` (described) has no team. Day 3: payments loses
        // its access to `b`. Day 4: `d` (not described), whose teams the
        // source may not read.
        let payments_and_sre: &[(&str, &str)] = &[("payments", "push"), ("sre", "pull")];
        apply_facts(
            &store,
            &with_teams(repo("a", true, &["Go"], day(1, 9)), Some(payments_and_sre)),
        );
        apply_facts(
            &store,
            &with_teams(
                repo("b", false, &["Go"], day(1, 10)),
                Some(&[("payments", "admin"), ("platform", "maintain")]),
            ),
        );
        apply_facts(
            &store,
            &with_teams(repo("c", true, &["Go"], day(1, 11)), Some(&[])),
        );
        apply_facts(
            &store,
            &with_teams(
                repo("b", false, &["Go"], day(3, 10)),
                Some(&[("platform", "maintain")]),
            ),
        );
        apply_facts(
            &store,
            &with_teams(repo("d", false, &["Go"], day(4, 10)), None),
        );
        let days = buckets(day(0, 5), day(5, 5), Interval::Day);
        let by_team = catalog_coverage(&store, &days, Dimension::Team).unwrap();
        let payments = "group:default/payments";
        assert_eq!(
            values(&by_team, payments, "repositories"),
            [0.0, 2.0, 2.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(
            values(&by_team, payments, "with_descriptor"),
            [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(
            values(&by_team, payments, "coverage"),
            [0.0, 0.5, 0.5, 1.0, 1.0, 1.0]
        );
        let platform = "group:default/platform";
        assert_eq!(
            values(&by_team, platform, "repositories"),
            [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(values(&by_team, platform, "coverage"), [0.0; 6]);
        // Readers do not own: sre has no series.
        assert!(
            by_team.iter().all(|s| s.key != "group:default/sre"),
            "{by_team:?}"
        );
        // Without a working team (none, or not readable): `(none)`.
        assert_eq!(
            values(&by_team, NONE, "repositories"),
            [0.0, 1.0, 1.0, 1.0, 2.0, 2.0]
        );
        assert_eq!(
            values(&by_team, NONE, "with_descriptor"),
            [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(values(&by_team, NONE, "coverage")[4], 0.5);
        // The overall split still counts each repository once.
        let all = catalog_coverage(&store, &days, Dimension::All).unwrap();
        assert_eq!(
            values(&all, "all", "repositories"),
            [0.0, 3.0, 3.0, 3.0, 4.0, 4.0]
        );
        assert_eq!(
            Metric::CatalogCoverage.dimensions(),
            [Dimension::All, Dimension::Org, Dimension::Team]
        );
        assert_eq!(Dimension::parse("team"), Some(Dimension::Team));
        assert_eq!(Dimension::Team.as_str(), "team");
    }

    #[test]
    fn dependencies_count_their_dependents_over_time() {
        let store = MemStore::new();
        let a = "file:/org/a.yaml";
        let mut c1 = component("c1", "team-a", a);
        let me = proto::EntityRef::new("component", "default", "c1");
        c1.relations.push(proto::Relation {
            source: me,
            relation_type: proto::RelationType::DependsOn,
            target: proto::EntityRef::new("component", "default", "db"),
        });
        apply(
            &store,
            &at(
                event(a, 1, vec![c1, component("c2", "team-a", a)]),
                day(1, 9),
            ),
        );
        let days = buckets(day(0, 5), day(2, 5), Interval::Day);
        let opts = Options {
            target: Some("component:default/db".into()),
            ..Options::default()
        };
        let deps = technology(&store, &days, Dimension::Dependency, &opts).unwrap();
        assert_eq!(
            values(&deps, "component:default/db", "entities"),
            [0.0, 1.0, 1.0]
        );
        assert_eq!(values(&deps, "component:default/db", "share")[2], 0.5);
        assert_eq!(deps.len(), 2, "only the target: {deps:?}");
    }

    #[test]
    fn buckets_align_to_days_weeks_and_months() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 15, 30, 0).unwrap();
        let w = buckets(t, t, Interval::Week);
        assert_eq!(
            w[0].start,
            Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
        );
        let m = buckets(t - Duration::days(60), t, Interval::Month);
        let starts: Vec<u32> = m.iter().map(|b| b.start.month()).collect();
        assert_eq!(starts, [9, 10, 11]);
        assert_eq!(
            m[2].end,
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
        let dec = buckets(
            Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2027, 1, 2, 0, 0, 0).unwrap(),
            Interval::Month,
        );
        assert_eq!(
            dec[0].end,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(dec.len(), 2);
        assert_eq!(
            buckets(t - Duration::days(5000), t, Interval::Day).len(),
            MAX_BUCKETS
        );
    }
}

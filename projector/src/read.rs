//! The read side: what the query service asks of the projections.
//! Filters follow Backstage: repeated filters are OR'ed, the conditions of
//! one filter AND'ed, values of one key within a filter OR'ed, all
//! case-insensitive; a key alone asks only that the key exists.

use crate::keys;
use crate::predicate::Predicate;
use crate::records::{self, FacetCount, HistoryRecord, LocationRecord, SearchRows};
use crate::store::{Store, StoreError};
use proto::{ErrorKind, ProcessingError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A parsed entity filter: any of the clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityFilter {
    pub any_of: Vec<FilterClause>,
}

/// All of the conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterClause {
    pub all_of: Vec<Condition>,
}

/// `key` in `values` (any value when `values` is empty), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: String,
    pub values: Vec<String>,
}

/// Why a filter string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter {filter:?}: {reason}")]
pub struct FilterError {
    pub filter: String,
    pub reason: String,
}

impl EntityFilter {
    /// Whether the filter selects `entity` (a JSON body), by the same search
    /// rows the index holds for a served entity.
    pub fn matches(&self, entity: &serde_json::Value) -> bool {
        let rows = crate::search::rows(entity);
        self.any_of.iter().any(|clause| {
            clause.all_of.iter().all(|c| {
                rows.iter().any(|row| {
                    row.key == c.key && (c.values.is_empty() || c.values.contains(&row.value))
                })
            })
        })
    }

    /// Parses Backstage `filter` query parameters; `None` when there are none.
    pub fn parse(filters: &[String]) -> Result<Option<EntityFilter>, FilterError> {
        let mut any_of = Vec::new();
        for f in filters {
            let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for part in f.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let (k, v) = match part.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim())),
                    None => (part, None),
                };
                if k.is_empty() {
                    return Err(FilterError {
                        filter: f.clone(),
                        reason: format!("condition {part:?} has no key"),
                    });
                }
                let values = by_key.entry(k.to_lowercase()).or_default();
                if let Some(v) = v {
                    values.push(v.to_lowercase());
                }
            }
            if by_key.is_empty() {
                continue;
            }
            any_of.push(FilterClause {
                all_of: by_key
                    .into_iter()
                    .map(|(key, values)| Condition { key, values })
                    .collect(),
            });
        }
        Ok((!any_of.is_empty()).then_some(EntityFilter { any_of }))
    }
}

/// The catalog's read model over a store.
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn Store>,
    cache: Arc<Mutex<FilterCache>>,
    views: Arc<Mutex<ViewCache>>,
    derived: Arc<Mutex<DerivedCache>>,
    past: Arc<Mutex<PastCache>>,
}

/// Catalogs as of past instants ([`Catalog::as_of`]), most recent use last.
#[derive(Default)]
struct PastCache {
    entries: Vec<PastEntry>,
}

struct PastEntry {
    at_ms: i64,
    /// The store version it was read at, and when.
    version: u64,
    built_ms: i64,
    catalog: Catalog,
}

/// Past catalogs kept: each holds a whole catalog in memory.
const PAST_ENTRIES: usize = 2;
/// A past catalog for an instant this much older than its reading is kept
/// across store writes (new changes carry later times); a newer one is read
/// again after any write.
const SETTLED_MS: i64 = 5 * 60 * 1000;

/// Derived answers of any type (orderings, say) per key, valid for one
/// store version, like [`FilterCache`].
#[derive(Default)]
struct DerivedCache {
    version: u64,
    entries: HashMap<String, Arc<dyn std::any::Any + Send + Sync>>,
}

/// Rendered answers (rollups) per request, valid for one store version,
/// like [`FilterCache`].
#[derive(Default)]
struct ViewCache {
    version: u64,
    entries: HashMap<String, Arc<Vec<u8>>>,
}

/// Matching refs per filter, valid for one store version: any write (or a
/// secondary catching up) changes the version and empties the cache, so a
/// cached answer is never stale.
#[derive(Default)]
struct FilterCache {
    version: u64,
    entries: HashMap<String, Arc<Vec<String>>>,
}

const FILTER_CACHE_ENTRIES: usize = 256;

impl Catalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Catalog {
            store,
            cache: Arc::default(),
            views: Arc::default(),
            derived: Arc::default(),
            past: Arc::default(),
        }
    }

    /// A derived value for `key`, made by `make` unless the store has not
    /// changed since it was last made (never stale, like filter answers).
    pub fn cached<T: Send + Sync + 'static, E>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let version = self.store.version();
        {
            let mut c = self.derived.lock().expect("lock");
            if c.version != version {
                c.entries.clear();
                c.version = version;
            }
            if let Some(hit) = c
                .entries
                .get(key)
                .and_then(|v| v.clone().downcast::<T>().ok())
            {
                return Ok(hit);
            }
        }
        let made = Arc::new(make()?);
        let mut c = self.derived.lock().expect("lock");
        if c.version == version {
            if c.entries.len() >= FILTER_CACHE_ENTRIES {
                c.entries.clear();
            }
            c.entries.insert(key.to_string(), made.clone());
        }
        Ok(made)
    }

    /// Every indexed (lower-cased, non-empty) value of search key `field`
    /// with its entity's ref key, in one scan of the index: what sorting
    /// many entities by a field needs, without reading each entity.
    pub fn field_values(&self, field: &str) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = keys::prefix(keys::SEARCH, &[field.as_bytes()]);
        let mut out = Vec::new();
        self.store.scan(&prefix, None, &mut |k, _| {
            let rest = &k[prefix.len()..];
            if let Some(i) = rest.iter().position(|b| *b == 0) {
                let (value, refkey) = (&rest[..i], &rest[i + 1..]);
                if !value.is_empty() {
                    out.push((
                        String::from_utf8_lossy(value).into_owned(),
                        String::from_utf8_lossy(refkey).into_owned(),
                    ));
                }
            }
            true
        })?;
        Ok(out)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The served JSON of an entity by ref key (lower-cased `kind:ns/name`).
    pub fn entity(&self, refkey: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&keys::entity(&refkey.to_ascii_lowercase()))
    }

    /// The ref key of the entity with this uid, if one is served.
    pub fn ref_of_uid(&self, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&keys::uid(uid))?
            .map(|r| String::from_utf8_lossy(&r).into_owned()))
    }

    /// The locations that yield a ref, the one served first (the conflict
    /// rule's order).
    pub fn claimants(&self, refkey: &str) -> Result<Vec<proto::LocationKey>, StoreError> {
        let k = keys::claims(&refkey.to_ascii_lowercase());
        let Some(bytes) = self.store.get(&k)? else {
            return Ok(Vec::new());
        };
        let claims: records::Claims = records::decode(&k, &bytes)?;
        Ok(claims.claims.into_iter().map(|c| c.location).collect())
    }

    pub fn entity_by_uid(&self, uid: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.store.get(&keys::uid(uid))? {
            Some(r) => self.entity(&String::from_utf8_lossy(&r)),
            None => Ok(None),
        }
    }

    /// Ref keys of all served entities, sorted, after `after`, at most `limit`.
    pub fn all_refs(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let prefix = [keys::ENTITY];
        let from = after.map(|a| {
            let mut k = keys::entity(a);
            k.push(0);
            k
        });
        let mut out = Vec::new();
        self.store.scan(&prefix, from.as_deref(), &mut |k, _| {
            out.push(String::from_utf8_lossy(&k[1..]).into_owned());
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Up to `limit` served entities (ref key, JSON) in ref order, after
    /// `after`: one scan of the entity table, for answers that stream.
    pub fn entities_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = [keys::ENTITY];
        let from = after.map(|a| {
            let mut k = keys::entity(a);
            k.push(0);
            k
        });
        let mut out = Vec::new();
        self.store.scan(&prefix, from.as_deref(), &mut |k, v| {
            out.push((String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()));
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Ref keys matching the filter (all entities when `None`), sorted.
    /// Answers are cached until the store changes.
    pub fn refs(&self, filter: Option<&EntityFilter>) -> Result<Arc<Vec<String>>, StoreError> {
        let key = format!("{:?}", filter.map(|f| &f.any_of));
        self.cached_refs(key, || self.evaluate(filter))
    }

    /// The refs cached under `key` for this store version, or `compute`d
    /// and cached.
    fn cached_refs(
        &self,
        key: String,
        compute: impl FnOnce() -> Result<Vec<String>, StoreError>,
    ) -> Result<Arc<Vec<String>>, StoreError> {
        let version = self.store.version();
        {
            let mut cache = self.cache.lock().expect("lock");
            if cache.version != version {
                cache.entries.clear();
                cache.version = version;
            }
            if let Some(hit) = cache.entries.get(&key) {
                return Ok(hit.clone());
            }
        }
        let refs = Arc::new(compute()?);
        let mut cache = self.cache.lock().expect("lock");
        if cache.version == version {
            if cache.entries.len() >= FILTER_CACHE_ENTRIES {
                cache.entries.clear();
            }
            cache.entries.insert(key, refs.clone());
        }
        Ok(refs)
    }

    /// Ref keys matching a predicate, sorted; cached like [`Catalog::refs`].
    pub fn select(&self, predicate: &Predicate) -> Result<Arc<Vec<String>>, StoreError> {
        if let Some(filter) = predicate.as_filter() {
            return self.refs(Some(&filter));
        }
        self.cached_refs(format!("p:{predicate:?}"), || {
            self.evaluate_predicate(predicate)
        })
    }

    /// Evaluates a predicate against the index, without the cache: set
    /// algebra over the refs of each condition (a part that is a GET
    /// filter narrows from its most selective condition).
    pub fn evaluate_predicate(&self, predicate: &Predicate) -> Result<Vec<String>, StoreError> {
        if let Some(filter) = predicate.as_filter() {
            return self.evaluate(Some(&filter));
        }
        Ok(match predicate {
            Predicate::Has(c) => self.condition(c)?,
            Predicate::Prefix { key, prefix } => {
                let mut scan = keys::prefix(keys::SEARCH, &[key.as_bytes()]);
                scan.extend_from_slice(prefix.as_bytes());
                let mut out = Vec::new();
                self.store.scan(&scan, None, &mut |k, _| {
                    out.push(String::from_utf8_lossy(keys::last_part(k)).into_owned());
                    true
                })?;
                out.sort_unstable();
                out.dedup();
                out
            }
            Predicate::All(items) => {
                // What the positive parts select, less what the negated
                // parts select (no complement is taken unless nothing
                // positive narrows first).
                let (negated, positive): (Vec<&Predicate>, Vec<&Predicate>) =
                    items.iter().partition(|p| matches!(p, Predicate::Not(_)));
                let mut acc: Option<Vec<String>> = None;
                for item in positive {
                    let refs = self.evaluate_predicate(item)?;
                    acc = Some(match acc {
                        None => refs,
                        Some(mut a) => {
                            a.retain(|r| refs.binary_search(r).is_ok());
                            a
                        }
                    });
                    if acc.as_ref().is_some_and(Vec::is_empty) {
                        return Ok(Vec::new());
                    }
                }
                let mut acc = match acc {
                    Some(a) => a,
                    None => self.every_ref()?,
                };
                for item in negated {
                    let Predicate::Not(inner) = item else {
                        unreachable!("partitioned by Not");
                    };
                    let excluded = self.evaluate_predicate(inner)?;
                    acc.retain(|r| excluded.binary_search(r).is_err());
                }
                acc
            }
            Predicate::Any(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.extend(self.evaluate_predicate(item)?);
                }
                out.sort_unstable();
                out.dedup();
                out
            }
            Predicate::Not(inner) => {
                let excluded = self.evaluate_predicate(inner)?;
                let mut all = self.every_ref()?;
                all.retain(|r| excluded.binary_search(r).is_err());
                all
            }
        })
    }

    /// Every served ref, sorted, from the index rows of `kind` (which every
    /// entity has): keys only, not the entities' JSON.
    fn every_ref(&self) -> Result<Vec<String>, StoreError> {
        self.condition(&Condition {
            key: "kind".into(),
            values: Vec::new(),
        })
    }

    /// A rendered answer for `key`, made by `render` unless the store has
    /// not changed since it was last made. Never stale: any write (or a
    /// secondary catching up) changes the version.
    pub fn cached_view<E>(
        &self,
        key: &str,
        render: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<Vec<u8>>, E> {
        let version = self.store.version();
        {
            let mut views = self.views.lock().expect("lock");
            if views.version != version {
                views.entries.clear();
                views.version = version;
            }
            if let Some(hit) = views.entries.get(key) {
                return Ok(hit.clone());
            }
        }
        let bytes = Arc::new(render()?);
        let mut views = self.views.lock().expect("lock");
        if views.version == version {
            if views.entries.len() >= FILTER_CACHE_ENTRIES {
                views.entries.clear();
            }
            views.entries.insert(key.to_string(), bytes.clone());
        }
        Ok(bytes)
    }

    /// Evaluates a filter against the index, without the cache.
    pub fn evaluate(&self, filter: Option<&EntityFilter>) -> Result<Vec<String>, StoreError> {
        let Some(filter) = filter else {
            return self.all_refs(None, usize::MAX);
        };
        let mut out = Vec::new();
        for clause in &filter.any_of {
            out.extend(self.clause(clause)?);
        }
        if filter.any_of.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        Ok(out)
    }

    fn clause(&self, clause: &FilterClause) -> Result<Vec<String>, StoreError> {
        // The most selective condition (facet counts tell) is materialised,
        // sorted by ref; every other one is streamed against it in ref
        // order, or probed per candidate when the candidates are few.
        let mut conds: Vec<(u64, &Condition)> = Vec::new();
        for c in &clause.all_of {
            conds.push((self.estimate(c)?, c));
        }
        conds.sort_by_key(|(n, _)| *n);
        let mut acc: Option<Vec<String>> = None;
        for (estimate, c) in conds {
            acc = Some(match acc {
                None => self.condition(c)?,
                Some(candidates) => self.narrow(candidates, c, estimate)?,
            });
            if acc.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        Ok(acc.unwrap_or_default())
    }

    fn estimate(&self, c: &Condition) -> Result<u64, StoreError> {
        if c.values.is_empty() || !crate::search::counted(&c.key) {
            return Ok(u64::MAX);
        }
        let mut n = 0;
        for v in &c.values {
            let key = keys::facet(&c.key, v);
            if let Some(bytes) = self.store.get(&key)? {
                n += records::decode::<FacetCount>(&key, &bytes)?.count;
            }
        }
        Ok(n)
    }

    /// Refs matching one condition, sorted, without duplicates.
    fn condition(&self, c: &Condition) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let prefixes: Vec<Vec<u8>> = if c.values.is_empty() {
            vec![keys::prefix(keys::SEARCH, &[c.key.as_bytes()])]
        } else {
            c.values
                .iter()
                .map(|v| keys::prefix(keys::SEARCH, &[c.key.as_bytes(), v.as_bytes()]))
                .collect()
        };
        for prefix in &prefixes {
            self.store.scan(prefix, None, &mut |k, _| {
                out.push(String::from_utf8_lossy(keys::last_part(k)).into_owned());
                true
            })?;
        }
        // One value's rows come sorted by ref; several values (or any
        // value) interleave.
        if prefixes.len() > 1 || c.values.is_empty() {
            out.sort_unstable();
            out.dedup();
        }
        Ok(out)
    }

    /// The candidates (sorted) that also match `c`.
    fn narrow(
        &self,
        mut candidates: Vec<String>,
        c: &Condition,
        estimate: u64,
    ) -> Result<Vec<String>, StoreError> {
        let [value] = c.values.as_slice() else {
            let other = self.condition(c)?;
            candidates.retain(|r| other.binary_search(r).is_ok());
            return Ok(candidates);
        };
        if (candidates.len() as u64).saturating_mul(8) < estimate {
            // Few candidates: one point lookup each.
            let mut out = Vec::with_capacity(candidates.len());
            for r in candidates {
                if self.store.get(&keys::search(&c.key, value, &r))?.is_some() {
                    out.push(r);
                }
            }
            return Ok(out);
        }
        // Otherwise merge the condition's rows (sorted by ref) with them.
        let prefix = keys::prefix(keys::SEARCH, &[c.key.as_bytes(), value.as_bytes()]);
        let mut out = Vec::new();
        let mut i = 0;
        self.store.scan(&prefix, None, &mut |k, _| {
            let r = keys::last_part(k);
            while i < candidates.len() && candidates[i].as_bytes() < r {
                i += 1;
            }
            if i == candidates.len() {
                return false;
            }
            if candidates[i].as_bytes() == r {
                out.push(std::mem::take(&mut candidates[i]));
                i += 1;
            }
            true
        })?;
        Ok(out)
    }

    /// The search rows of a served entity (for sorting and filtered facets).
    pub fn search_rows(&self, refkey: &str) -> Result<SearchRows, StoreError> {
        let key = keys::search_rows(refkey);
        match self.store.get(&key)? {
            Some(bytes) => records::decode(&key, &bytes),
            None => Ok(SearchRows::default()),
        }
    }

    /// Value counts per facet key, over all entities or those matching.
    pub fn facets(
        &self,
        facet_keys: &[String],
        filter: Option<&EntityFilter>,
    ) -> Result<BTreeMap<String, Vec<(String, u64)>>, StoreError> {
        let refs = match filter {
            Some(f) => Some(self.refs(Some(f))?),
            None => None,
        };
        self.facets_of(facet_keys, refs.as_deref().map(Vec::as_slice))
    }

    /// Value counts per facet key, over all entities or those matching a
    /// predicate.
    pub fn facets_matching(
        &self,
        facet_keys: &[String],
        predicate: Option<&Predicate>,
    ) -> Result<BTreeMap<String, Vec<(String, u64)>>, StoreError> {
        let refs = match predicate {
            Some(p) => Some(self.select(p)?),
            None => None,
        };
        self.facets_of(facet_keys, refs.as_deref().map(Vec::as_slice))
    }

    fn facets_of(
        &self,
        facet_keys: &[String],
        matching: Option<&[String]>,
    ) -> Result<BTreeMap<String, Vec<(String, u64)>>, StoreError> {
        let mut out = BTreeMap::new();
        match matching {
            None => {
                for f in facet_keys {
                    let key = f.to_lowercase();
                    let values = if crate::search::counted(&key) {
                        self.counted_facet(&key)?
                    } else {
                        self.scanned_facet(&key)?
                    };
                    out.insert(f.clone(), sort_facet(values));
                }
            }
            Some(refs) => {
                let wanted: BTreeMap<String, &String> =
                    facet_keys.iter().map(|f| (f.to_lowercase(), f)).collect();
                let mut counts: BTreeMap<&String, BTreeMap<String, (String, u64)>> =
                    facet_keys.iter().map(|f| (f, BTreeMap::new())).collect();
                for r in refs {
                    for row in self.search_rows(r)?.rows {
                        if let Some(f) = wanted.get(&row.key) {
                            let slot = counts
                                .get_mut(f)
                                .expect("every wanted key has a slot")
                                .entry(row.value)
                                .or_insert((row.original, 0));
                            slot.1 += 1;
                        }
                    }
                }
                for (f, values) in counts {
                    out.insert(f.clone(), sort_facet(values.into_values().collect()));
                }
            }
        }
        Ok(out)
    }

    fn counted_facet(&self, key: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = keys::prefix(keys::FACET, &[key.as_bytes()]);
        let mut counts = Vec::new();
        let mut err = None;
        self.store.scan(&prefix, None, &mut |k, v| {
            match records::decode::<FacetCount>(k, v) {
                Ok(c) => counts.push((k[prefix.len()..].to_vec(), c.count)),
                Err(e) => err = Some(e),
            }
            err.is_none()
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        // The casing of the first entity (in ref order) with each value:
        // one seek per value on one iterator.
        let prefixes: Vec<Vec<u8>> = counts
            .iter()
            .map(|(value, _)| keys::prefix(keys::SEARCH, &[key.as_bytes(), value]))
            .collect();
        let firsts = self.store.first_under(&prefixes)?;
        let mut out = Vec::with_capacity(counts.len());
        for ((value, count), first) in counts.into_iter().zip(firsts) {
            let original = match first {
                Some((_, v)) => String::from_utf8_lossy(&v).into_owned(),
                None => String::from_utf8_lossy(&value).into_owned(),
            };
            out.push((original, count));
        }
        Ok(out)
    }

    /// Every record under `prefix`, decoded, in key order.
    fn scan_records<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut err = None;
        self.store.scan(prefix, None, &mut |k, v| {
            match records::decode(k, v) {
                Ok(r) => out.push(r),
                Err(e) => err = Some(e),
            }
            err.is_none()
        })?;
        err.map_or(Ok(out), Err)
    }

    /// Counts a facet from the index rows (keys without kept counters).
    fn scanned_facet(&self, key: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let mut counts: BTreeMap<Vec<u8>, (String, u64)> = BTreeMap::new();
        let prefix = keys::prefix(keys::SEARCH, &[key.as_bytes()]);
        self.store.scan(&prefix, None, &mut |k, v| {
            let rest = &k[prefix.len()..];
            let value = rest.split(|b| *b == 0).next().unwrap_or_default();
            counts
                .entry(value.to_vec())
                .or_insert_with(|| (String::from_utf8_lossy(v).into_owned(), 0))
                .1 += 1;
            true
        })?;
        Ok(counts.into_values().collect())
    }

    pub fn locations(&self) -> Result<Vec<LocationRecord>, StoreError> {
        self.scan_records(&[keys::LOCATION])
    }

    pub fn location(&self, key: &str) -> Result<Option<LocationRecord>, StoreError> {
        let k = keys::location(key);
        match self.store.get(&k)? {
            Some(bytes) => Ok(Some(records::decode(&k, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn location_by_id(&self, id: &str) -> Result<Option<LocationRecord>, StoreError> {
        let Ok(id) = uuid::Uuid::parse_str(id) else {
            return Ok(None);
        };
        let k = keys::location_id(&id);
        match self.store.get(&k)? {
            Some(bytes) => {
                let location: proto::LocationKey = records::decode(&k, &bytes)?;
                self.location(location.as_str())
            }
            None => Ok(None),
        }
    }

    /// The errors of a location: its processing errors plus a conflict
    /// error for every ref another location provides.
    pub fn location_errors(
        &self,
        rec: &LocationRecord,
    ) -> Result<Vec<ProcessingError>, StoreError> {
        let mut errors = rec.errors.clone();
        for r in &rec.refs {
            let k = keys::claims(r);
            let Some(bytes) = self.store.get(&k)? else {
                continue;
            };
            let claims: records::Claims = records::decode(&k, &bytes)?;
            if let Some(winner) = claims.winner().filter(|w| **w != rec.location) {
                errors.push(ProcessingError {
                    location: rec.location.clone(),
                    kind: ErrorKind::Conflict,
                    message: format!(
                        "{r} is already provided by {winner}, which was seen first; this location's copy is ignored"
                    ),
                    document: None,
                    line: None,
                    column: None,
                    entity: Some(r.clone()),
                });
            }
        }
        Ok(errors)
    }

    /// Up to `limit` changes of the feed after sequence `after` that `keep`
    /// accepts, oldest first, reading at most `budget`; and the last
    /// sequence read. See [`crate::feed`].
    pub fn feed(
        &self,
        after: u64,
        limit: usize,
        budget: usize,
        keep: &mut dyn FnMut(&crate::feed::FeedRecord) -> bool,
    ) -> Result<(Vec<crate::feed::FeedEntry>, u64), StoreError> {
        crate::feed::read(self.store.as_ref(), after, limit, budget, keep)
    }

    /// The last sequence number of the feed (0: empty).
    pub fn feed_last(&self) -> Result<u64, StoreError> {
        crate::feed::last_seq(self.store.as_ref())
    }

    /// The history records before and after an entity change of the feed.
    pub fn feed_bodies(
        &self,
        record: &crate::feed::FeedRecord,
    ) -> Result<(Option<HistoryRecord>, Option<HistoryRecord>), StoreError> {
        crate::feed::bodies(self.store.as_ref(), record)
    }

    /// The catalog as it stood at `at_ms` (see [`crate::asof`]): an empty
    /// catalog before the first change.
    pub fn as_of(&self, at_ms: i64) -> Result<Catalog, StoreError> {
        let version = self.store.version();
        let now_ms = chrono::Utc::now().timestamp_millis();
        {
            let mut past = self.past.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = past.entries.iter().position(|e| {
                e.at_ms == at_ms && (e.version == version || e.at_ms < e.built_ms - SETTLED_MS)
            }) {
                let entry = past.entries.remove(i);
                let catalog = entry.catalog.clone();
                past.entries.push(entry);
                return Ok(catalog);
            }
        }
        let store: Arc<dyn Store> = Arc::new(crate::asof::materialize(self.store.as_ref(), at_ms)?);
        let catalog = Catalog::new(store);
        let mut past = self.past.lock().unwrap_or_else(|e| e.into_inner());
        past.entries.retain(|e| e.at_ms != at_ms);
        if past.entries.len() >= PAST_ENTRIES {
            past.entries.remove(0);
        }
        past.entries.push(PastEntry {
            at_ms,
            version,
            built_ms: now_ms,
            catalog: catalog.clone(),
        });
        Ok(catalog)
    }

    /// An adoption metric over time (see [`crate::adoption`]).
    pub fn metric(
        &self,
        metric: crate::adoption::Metric,
        buckets: &[crate::adoption::Bucket],
        dim: crate::adoption::Dimension,
        opts: &crate::adoption::Options,
    ) -> Result<Vec<crate::adoption::Series>, StoreError> {
        crate::adoption::compute(self.store.as_ref(), metric, buckets, dim, opts)
    }

    /// Every effective change of an entity, oldest first.
    pub fn history(&self, refkey: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        let prefix = keys::prefix(keys::HISTORY, &[refkey.to_ascii_lowercase().as_bytes()]);
        self.scan_records(&prefix)
    }

    /// Applied offsets: (topic, partition) -> next offset.
    pub fn offsets(&self) -> Result<BTreeMap<(String, u32), i64>, StoreError> {
        let mut out = BTreeMap::new();
        self.store.scan(&[keys::OFFSET], None, &mut |k, v| {
            if let (Some(sep), Ok(off)) = (k.iter().position(|b| *b == 0), <[u8; 8]>::try_from(v))
                && k.len() == sep + 5
            {
                let topic = String::from_utf8_lossy(&k[1..sep]).into_owned();
                let p = u32::from_be_bytes(k[sep + 1..].try_into().expect("4 bytes"));
                out.insert((topic, p), i64::from_be_bytes(off));
            }
            true
        })?;
        Ok(out)
    }
}

fn sort_facet(mut values: Vec<(String, u64)>) -> Vec<(String, u64)> {
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backstage_filters() {
        let f = EntityFilter::parse(&[
            "kind=Component,spec.type=service,spec.type=website".into(),
            "metadata.tags".into(),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(f.any_of.len(), 2);
        assert_eq!(
            f.any_of[0].all_of,
            vec![
                Condition {
                    key: "kind".into(),
                    values: vec!["component".into()]
                },
                Condition {
                    key: "spec.type".into(),
                    values: vec!["service".into(), "website".into()]
                },
            ]
        );
        assert_eq!(f.any_of[1].all_of[0].values, Vec::<String>::new());
        assert!(EntityFilter::parse(&[]).unwrap().is_none());
        assert!(EntityFilter::parse(&["=x".into()]).is_err());
    }
}

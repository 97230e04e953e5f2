//! The read side: what the query service asks of the projections.
//! Filters follow Backstage: repeated filters are OR'ed, the conditions of
//! one filter AND'ed, values of one key within a filter OR'ed, all
//! case-insensitive; a key alone asks only that the key exists.

use crate::keys;
use crate::order::Direction;
use crate::postings::Posting;
use crate::predicate::Predicate;
pub use crate::records::ChangeKind;
use crate::records::{self, HistoryRecord, LocationRecord, SearchRows};
use crate::store::{Store, StoreError};
use proto::{ErrorKind, ProcessingError};
use roaring::RoaringBitmap;
use serde_json::value::RawValue as RawJson;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// An entity's JSON text before and after a change of the feed, as stored.
pub type FeedBodies = (Option<Box<RawJson>>, Option<Box<RawJson>>);

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
        let keys: Vec<&str> = self
            .any_of
            .iter()
            .flat_map(|c| c.all_of.iter().map(|c| c.key.as_str()))
            .collect();
        let rows = crate::search::rows_for(entity, &keys);
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

/// Where a page in ref order starts.
#[derive(Debug, Clone, Copy)]
pub enum RefStart<'a> {
    /// After skipping this many.
    Offset(usize),
    /// After this ref.
    After(&'a str),
    /// The page that ends just before this ref.
    Before(&'a str),
}

/// One effective change of an entity, as the read API gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EntityChange {
    pub at: chrono::DateTime<chrono::Utc>,
    pub event_id: uuid::Uuid,
    /// The location whose yield changed (`type:target`).
    pub location: String,
    pub change: ChangeKind,
    /// The entity as its location yielded it after the change (no
    /// relations, uid or etag); absent for a deletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<proto::Entity>,
    /// Who caused it through the API (the subject of the caller's token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl From<HistoryRecord> for EntityChange {
    fn from(r: HistoryRecord) -> Self {
        EntityChange {
            at: r.at,
            event_id: r.event_id,
            location: r.location.to_string(),
            change: r.change,
            entity: r.entity,
            by: r.by,
        }
    }
}

/// A page of selected refs in ref order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPage {
    pub refs: Vec<String>,
    /// How many selected refs come before the page.
    pub from: usize,
    /// How many refs are selected in all.
    pub total: usize,
}

/// A location as the read model serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub id: uuid::Uuid,
    pub location: proto::LocationKey,
    pub origin: proto::LocationKey,
    pub source: proto::SourceId,
    pub first_seen_at: chrono::DateTime<chrono::Utc>,
    /// When the last effective change of this location was observed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Ref keys the location yields, sorted.
    pub refs: Vec<String>,
    /// Its own processing errors (see [`Catalog::location_errors`] for
    /// those with conflicts).
    pub errors: Vec<ProcessingError>,
}

impl From<LocationRecord> for Location {
    fn from(r: LocationRecord) -> Self {
        Location {
            id: r.id,
            location: r.location,
            origin: r.origin,
            source: r.source,
            first_seen_at: r.first_seen_at,
            updated_at: r.updated_at,
            refs: r.refs,
            errors: r.errors,
        }
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
    ordinals: Arc<RwLock<OrdinalMap>>,
    hubs: Arc<Mutex<HubCache>>,
}

/// The relations of entities that have many (a hub's, as JSON items),
/// kept until they change (the count of batches that changed them, in
/// their [`crate::relations::Mark`]): a page that holds a hub stitches its
/// relations once, not once per request, however often the rest of the
/// store changes.
#[derive(Default)]
struct HubCache {
    entries: HashMap<String, (u64, Arc<Vec<u8>>)>,
}

/// Relations (as JSON) at least this long are kept in [`HubCache`].
const HUB_RELATIONS_BYTES: usize = 64 * 1024;
/// Entries of [`HubCache`] before it starts over.
const HUB_ENTRIES: usize = 64;

/// The posting lists' ordinal -> ref map, kept in memory: ordinals are
/// never given to another ref, so the map only grows and a refresh reads
/// only the ordinals given since the last one.
#[derive(Default)]
struct OrdinalMap {
    /// The store version the map was last brought up to.
    version: Option<u64>,
    refs: Vec<Arc<str>>,
    /// Every ordinal in ref order.
    by_ref: Permutation,
    /// The ordinals of each kind, by the prefix its refs share (`kind:`):
    /// a kind's refs are one run of `by_ref`, so a page in ref order
    /// starts its walk at the first kind the selection holds instead of
    /// walking past every ref of the kinds before it.
    kinds: BTreeMap<Arc<str>, RoaringBitmap>,
    /// Every ordinal in the order of a field a ref holds (`kind`,
    /// `metadata.namespace`, `metadata.name`) and a direction, made when
    /// first asked for and kept up to date from then on.
    by_field: HashMap<(String, Direction), Permutation>,
}

/// An order of ordinals: each one's position, and the ordinals by
/// position (the inverse).
#[derive(Default)]
struct Permutation {
    pos: Vec<u32>,
    by_pos: Vec<u32>,
}

/// Where a page starts: after skipping this many, or at a position (the
/// first one after a cursor), or ending at a position (the first one at
/// or after a cursor).
#[derive(Debug, Clone, Copy)]
enum Bound {
    Offset(usize),
    From(u32),
    Until(u32),
    /// After skipping this many, knowing that `before` of them come
    /// before position `at` (so the walk may start there).
    OffsetAt {
        offset: usize,
        at: u32,
        before: usize,
    },
}

impl Permutation {
    /// Places the ordinals from the last one placed up to `n` (exclusive)
    /// under `cmp`. Only the new ordinals are sorted; each finds its place
    /// among the ordered ones by binary search, and the order is spliced
    /// together in one pass (no full sort of a million refs while readers
    /// wait).
    fn extend(&mut self, n: usize, cmp: impl Fn(u32, u32) -> std::cmp::Ordering) {
        let known = self.by_pos.len();
        if known >= n {
            return;
        }
        let mut fresh: Vec<u32> = (known as u32..n as u32).collect();
        fresh.sort_unstable_by(|a, b| cmp(*a, *b));
        let places: Vec<usize> = fresh
            .iter()
            .map(|o| {
                self.by_pos
                    .partition_point(|x| cmp(*x, *o) == std::cmp::Ordering::Less)
            })
            .collect();
        let mut order = Vec::with_capacity(n);
        let mut from = 0;
        for (o, at) in fresh.iter().zip(&places) {
            order.extend_from_slice(&self.by_pos[from..*at]);
            order.push(*o);
            from = *at;
        }
        order.extend_from_slice(&self.by_pos[from..]);
        self.pos.resize(n, 0);
        for (i, o) in order.iter().enumerate() {
            self.pos[*o as usize] = i as u32;
        }
        self.by_pos = order;
    }

    /// Whether `bits` is so large a part of every ordinal that walking the
    /// order beats sorting its positions.
    fn dense(&self, bits: &RoaringBitmap) -> bool {
        bits.len() > (self.by_pos.len() / 8) as u64
    }

    /// The ordinals of `bits` in this order (ordinals placed after the
    /// last refresh are left out: they were written after the reading
    /// began).
    fn sorted(&self, bits: &RoaringBitmap) -> Vec<u32> {
        self.positions(bits)
            .into_iter()
            .map(|p| self.by_pos[p as usize])
            .collect()
    }

    /// The positions of the ordinals of `bits`, ascending.
    fn positions(&self, bits: &RoaringBitmap) -> Vec<u32> {
        if self.dense(bits) {
            return self
                .by_pos
                .iter()
                .enumerate()
                .filter(|(_, o)| bits.contains(**o))
                .map(|(i, _)| i as u32)
                .collect();
        }
        let mut positions: Vec<u32> = bits
            .iter()
            .filter_map(|o| self.pos.get(o as usize).copied())
            .collect();
        positions.sort_unstable();
        positions
    }

    /// How many positions come before the first ordinal `before` is false
    /// of (`before` holds of a prefix of the order).
    fn boundary(&self, before: impl Fn(u32) -> bool) -> u32 {
        self.by_pos.partition_point(|o| before(*o)) as u32
    }

    /// A page of `bits` in this order: the ordinals, how many of `bits`
    /// come before them, and how many `bits` holds. A small set is sorted
    /// by position; a large one is walked in order from where the page
    /// starts, only as far as the page goes.
    fn page(&self, bits: &RoaringBitmap, start: Bound, limit: usize) -> (Vec<u32>, usize, usize) {
        let total = bits.len() as usize;
        let ordinals = |positions: &mut dyn Iterator<Item = usize>| -> Vec<u32> {
            positions.map(|p| self.by_pos[p]).collect()
        };
        if !self.dense(bits) {
            let positions = self.positions(bits);
            let total = positions.len();
            let (from, to) = match start {
                Bound::Offset(o) | Bound::OffsetAt { offset: o, .. } => {
                    let from = o.min(total);
                    (from, from.saturating_add(limit).min(total))
                }
                Bound::From(p) => {
                    let from = positions.partition_point(|x| *x < p);
                    (from, from.saturating_add(limit).min(total))
                }
                Bound::Until(p) => {
                    let to = positions.partition_point(|x| *x < p);
                    (to.saturating_sub(limit), to)
                }
            };
            let page = ordinals(&mut positions[from..to].iter().map(|p| *p as usize));
            return (page, from, total);
        }
        let member = |p: &usize| bits.contains(self.by_pos[*p]);
        match start {
            Bound::Offset(o) => {
                let from = o.min(total);
                let mut positions = (0..self.by_pos.len()).filter(member).skip(from).take(limit);
                (ordinals(&mut positions), from, total)
            }
            Bound::OffsetAt { offset, at, before } => {
                let from = offset.min(total);
                let mut positions = (at as usize..self.by_pos.len())
                    .filter(member)
                    .skip(from.saturating_sub(before))
                    .take(limit);
                (ordinals(&mut positions), from, total)
            }
            Bound::From(p) => {
                let from = self.count_before(bits, p);
                let mut positions = (p as usize..self.by_pos.len()).filter(member).take(limit);
                (ordinals(&mut positions), from, total)
            }
            Bound::Until(p) => {
                let to = self.count_before(bits, p);
                let mut positions: Vec<usize> =
                    (0..p as usize).rev().filter(member).take(limit).collect();
                positions.reverse();
                let from = to - positions.len();
                (ordinals(&mut positions.into_iter()), from, total)
            }
        }
    }

    /// How many of `bits` come before position `p`.
    fn count_before(&self, bits: &RoaringBitmap, p: u32) -> usize {
        bits.iter()
            .filter(|o| self.pos.get(*o as usize).is_some_and(|r| *r < p))
            .count()
    }
}

impl OrdinalMap {
    fn refresh(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        let version = store.version();
        if self.version == Some(version) {
            return Ok(());
        }
        let from = keys::ordinal_ref(self.refs.len() as u32);
        let mut gap = None;
        store.scan(
            &[keys::ORDINAL_REF],
            Some(&from),
            &mut |k, v| match keys::ordinal_of_key(k) {
                Some(o) if o as usize == self.refs.len() => {
                    let r: Arc<str> = Arc::from(String::from_utf8_lossy(v).as_ref());
                    let kind = kind_prefix(&r);
                    match self.kinds.get_mut(kind) {
                        Some(bits) => {
                            bits.insert(o);
                        }
                        None => {
                            self.kinds
                                .insert(Arc::from(kind), RoaringBitmap::from_iter([o]));
                        }
                    }
                    self.refs.push(r);
                    true
                }
                _ => {
                    gap = Some(k.to_vec());
                    false
                }
            },
        )?;
        if let Some(k) = gap {
            return Err(StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: format!("expected ordinal {} next", self.refs.len()),
            });
        }
        let (n, refs) = (self.refs.len(), &self.refs);
        self.by_ref
            .extend(n, |a, b| refs[a as usize].cmp(&refs[b as usize]));
        for ((field, direction), order) in &mut self.by_field {
            order.extend(n, |a, b| {
                field_order(field, *direction, &refs[a as usize], &refs[b as usize])
            });
        }
        self.version = Some(version);
        Ok(())
    }

    /// The order of every ordinal by `field` (one a ref holds) in
    /// `direction`, made now if it was never asked for.
    fn by_field(&mut self, field: &str, direction: Direction) -> &Permutation {
        let refs = &self.refs;
        let order = self
            .by_field
            .entry((field.to_string(), direction))
            .or_default();
        order.extend(refs.len(), |a, b| {
            field_order(field, direction, &refs[a as usize], &refs[b as usize])
        });
        order
    }

    /// The refs of `bits` in ref order (ordinals given after the last
    /// refresh are left out: they were written after the reading began).
    fn sorted_refs(&self, bits: &RoaringBitmap) -> Vec<String> {
        self.by_ref
            .sorted(bits)
            .into_iter()
            .map(|o| self.refs[o as usize].to_string())
            .collect()
    }

    /// A page of `bits` in ref order.
    fn page(&self, bits: &RoaringBitmap, start: RefStart<'_>, limit: usize) -> RefPage {
        let start = match start {
            RefStart::Offset(o) if self.by_ref.dense(bits) => self.offset_at(bits, o),
            RefStart::Offset(o) => Bound::Offset(o),
            RefStart::After(r) => Bound::From(self.position(r, true)),
            RefStart::Before(r) => Bound::Until(self.position(r, false)),
        };
        let (page, from, total) = self.by_ref.page(bits, start, limit);
        RefPage {
            refs: page
                .into_iter()
                .map(|o| self.refs[o as usize].to_string())
                .collect(),
            from,
            total,
        }
    }

    /// Where a walk in ref order for the page at `offset` of `bits` may
    /// start: at the first ref of the kind that holds that page's first
    /// member, with the members of the kinds before it counted from the
    /// kinds' ordinals rather than walked past.
    fn offset_at(&self, bits: &RoaringBitmap, offset: usize) -> Bound {
        let mut before = 0usize;
        for (kind, members) in &self.kinds {
            let here = bits.intersection_len(members) as usize;
            if before + here > offset {
                return Bound::OffsetAt {
                    offset,
                    at: self.position(kind, false),
                    before,
                };
            }
            before += here;
        }
        Bound::Offset(offset)
    }

    /// How many refs (of all the map holds) sort before `r`, or before or
    /// equal to it.
    fn position(&self, r: &str, or_equal: bool) -> u32 {
        self.by_ref.boundary(|o| {
            let x: &str = &self.refs[o as usize];
            if or_equal { x <= r } else { x < r }
        })
    }

    /// The casing of the first entity in ref order among `casings`.
    fn first_casing(&self, mut casings: Vec<(String, RoaringBitmap)>) -> String {
        if casings.len() == 1 {
            return casings.pop().expect("one").0;
        }
        casings
            .into_iter()
            .filter_map(|(c, b)| {
                b.iter()
                    .filter_map(|o| self.by_ref.pos.get(o as usize).copied())
                    .min()
                    .map(|r| (r, c))
            })
            .min()
            .map(|(_, c)| c)
            .unwrap_or_default()
    }
}

/// The part of a ref its kind's refs share, `kind:` (the whole ref if
/// it holds no colon). Every ref of a kind sorts in one run, and runs
/// sort as these prefixes do: a kind holds no colon, so no other ref
/// falls between two refs that share the prefix.
fn kind_prefix(r: &str) -> &str {
    match r.find(':') {
        Some(i) => &r[..=i],
        None => r,
    }
}

/// How two refs compare under the order of `field` (one a ref holds) in
/// `direction`: as [`crate::order::compare`] orders their sort keys.
fn field_order(field: &str, direction: Direction, a: &str, b: &str) -> std::cmp::Ordering {
    crate::order::compare_values(
        direction,
        crate::order::ref_part(field, a),
        crate::order::ref_part(field, b),
    )
    .then_with(|| a.cmp(b))
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
            ordinals: Arc::default(),
            hubs: Arc::default(),
        }
    }

    /// How many batches changed the relations of `r` (`None`: never, or
    /// a store that does not keep marks, such as the past).
    fn relation_changes(&self, r: &str) -> Result<Option<u64>, StoreError> {
        Ok(crate::relations::Mark::read(self.store.as_ref(), r)?.map(|m| m.changes))
    }

    /// A hub's relations kept after `changes` batches changed them.
    fn hub_relations(&self, r: &str, changes: u64) -> Option<Arc<Vec<u8>>> {
        let c = self.hubs.lock().expect("lock");
        c.entries
            .get(r)
            .filter(|(n, _)| *n == changes)
            .map(|(_, items)| items.clone())
    }

    /// Keeps `items` as the relations of `r` after `changes` batches
    /// changed them, if they are a hub's (many).
    fn keep_hub_relations(&self, r: &str, changes: Option<u64>, items: &[u8]) {
        let Some(changes) = changes else { return };
        if items.len() < HUB_RELATIONS_BYTES {
            return;
        }
        let mut c = self.hubs.lock().expect("lock");
        if c.entries.len() >= HUB_ENTRIES {
            c.entries.clear();
        }
        c.entries
            .insert(r.to_string(), (changes, Arc::new(items.to_vec())));
    }

    /// The relations of `r` as JSON items (see [`crate::relations::json_of`]).
    fn relations_json(&self, r: &str) -> Result<Arc<Vec<u8>>, StoreError> {
        // The mark is read before the rows: rows written after it was read
        // are kept under the older count, and read again next time.
        let changes = self.relation_changes(r)?;
        if let Some(hit) = changes.and_then(|n| self.hub_relations(r, n)) {
            return Ok(hit);
        }
        let items = crate::relations::json_of(self.store.as_ref(), r)?;
        self.keep_hub_relations(r, changes, &items);
        Ok(Arc::new(items))
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
    /// with its entity's ref key, from the posting lists of `field`: what
    /// sorting many entities by a field needs, without reading each entity.
    pub fn field_values(&self, field: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut postings = Vec::new();
        crate::postings::scan(self.store.as_ref(), field, "", &mut |value, k, v| {
            if !value.is_empty() {
                postings.push((value.to_string(), Posting::decode(k, v)?.members()));
            }
            Ok(true)
        })?;
        self.with_ordinals(|ords| {
            let mut out = Vec::new();
            for (value, members) in postings {
                for o in &members {
                    if let Some(r) = ords.refs.get(o as usize) {
                        out.push((value.clone(), r.to_string()));
                    }
                }
            }
            out
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The served JSON of an entity by ref key (lower-cased `kind:ns/name`),
    /// its relations stitched in.
    pub fn entity(&self, refkey: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = refkey.to_ascii_lowercase();
        match self.store.get(&keys::entity(&r))? {
            Some(served) => Ok(Some(crate::relations::splice_json(
                served,
                &self.relations_json(&r)?,
            ))),
            None => Ok(None),
        }
    }

    /// [`Catalog::entity`] of each of `refs`, in their order: one read of
    /// the served entities and one iterator over their relations for the
    /// lot, where reading them one by one costs an iterator each (a page,
    /// a streamed list).
    pub fn entities(&self, refs: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let lower: Vec<String> = refs.iter().map(|r| r.to_ascii_lowercase()).collect();
        // Marks before rows (see `relations_json`).
        let mut wanted: Vec<Vec<u8>> = lower.iter().map(|r| keys::latest_relation(r)).collect();
        wanted.extend(lower.iter().map(|r| keys::entity(r)));
        let mut got = self.store.get_many(&wanted)?;
        let served = got.split_off(lower.len());
        let mut relations: Vec<Option<Arc<Vec<u8>>>> = vec![None; lower.len()];
        let mut changes: Vec<Option<u64>> = vec![None; lower.len()];
        // Those to read, in key order: (prefix, index).
        let mut scans: Vec<(Vec<u8>, usize)> = Vec::new();
        for (i, r) in lower.iter().enumerate() {
            if served[i].is_none() {
                continue;
            }
            let mark = crate::relations::Mark::decode(&wanted[i], got[i].as_deref())?;
            changes[i] = mark.map(|m| m.changes);
            match changes[i].and_then(|n| self.hub_relations(r, n)) {
                Some(hit) => relations[i] = Some(hit),
                None => scans.push((keys::relations_of(r), i)),
            }
        }
        scans.sort();
        scans.dedup_by(|a, b| a.0 == b.0);
        let prefixes: Vec<Vec<u8>> = scans.iter().map(|(p, _)| p.clone()).collect();
        let mut items: Vec<Vec<u8>> = vec![Vec::new(); scans.len()];
        let mut err = None;
        self.store.scan_each(&prefixes, &mut |j, k, v| {
            if let Err(e) = crate::relations::push_json(&mut items[j], k, v) {
                err = Some(e);
            }
            err.is_none()
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let by_ref: HashMap<&str, Arc<Vec<u8>>> = scans
            .iter()
            .zip(items)
            .map(|((_, i), json)| {
                self.keep_hub_relations(&lower[*i], changes[*i], &json);
                (lower[*i].as_str(), Arc::new(json))
            })
            .collect();
        Ok(served
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.map(|s| {
                    let items = relations[i]
                        .take()
                        .or_else(|| by_ref.get(lower[i].as_str()).cloned())
                        .unwrap_or_default();
                    crate::relations::splice_json(s, &items)
                })
            })
            .collect())
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
        // Their relations: one scan over the same run of refs.
        if let (Some((first, _)), Some((last, _))) = (out.first(), out.last()) {
            let mut relations =
                crate::relations::json_of_range(self.store.as_ref(), first, last, false)?;
            for (r, served) in &mut out {
                if let Some(items) = relations.remove(r.as_str()) {
                    *served = crate::relations::splice_json(std::mem::take(served), &items);
                }
            }
        }
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
    /// algebra over the posting lists of its conditions.
    pub fn evaluate_predicate(&self, predicate: &Predicate) -> Result<Vec<String>, StoreError> {
        let bits = self.predicate_bits(predicate)?;
        self.sorted_refs(&bits)
    }

    /// The ordinals a predicate selects. `$all` intersects its positive
    /// parts, smallest first, and subtracts its negated ones; a complement
    /// is taken from every entity only when nothing positive narrows.
    pub fn predicate_bits(&self, predicate: &Predicate) -> Result<RoaringBitmap, StoreError> {
        if let Some(filter) = predicate.as_filter() {
            return self.filter_bits(&filter);
        }
        Ok(match predicate {
            Predicate::Has(c) => self.condition_bits(c)?,
            Predicate::Prefix { key, prefix } => {
                crate::postings::union(self.store.as_ref(), key, prefix)?
            }
            Predicate::All(items) => {
                let (negated, positive): (Vec<&Predicate>, Vec<&Predicate>) =
                    items.iter().partition(|p| matches!(p, Predicate::Not(_)));
                let mut parts = positive
                    .into_iter()
                    .map(|p| self.predicate_bits(p))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.sort_by_key(RoaringBitmap::len);
                let mut parts = parts.into_iter();
                let mut acc = match parts.next() {
                    Some(first) => first,
                    None => self.every_bits()?,
                };
                for p in parts {
                    acc &= p;
                }
                for item in negated {
                    if acc.is_empty() {
                        break;
                    }
                    let Predicate::Not(inner) = item else {
                        unreachable!("partitioned by Not");
                    };
                    acc -= self.predicate_bits(inner)?;
                }
                acc
            }
            Predicate::Any(items) => {
                let mut out = RoaringBitmap::new();
                for item in items {
                    out |= self.predicate_bits(item)?;
                }
                out
            }
            Predicate::Not(inner) => self.every_bits()? - self.predicate_bits(inner)?,
        })
    }

    /// Every served entity: the posting lists of `kind`, which every
    /// entity has.
    fn every_bits(&self) -> Result<RoaringBitmap, StoreError> {
        crate::postings::union(self.store.as_ref(), "kind", "")
    }

    /// The ordinals `selection` selects (every entity when `None`).
    pub(crate) fn selection_bits(
        &self,
        selection: Option<&Predicate>,
    ) -> Result<RoaringBitmap, StoreError> {
        match selection {
            Some(p) => self.predicate_bits(p),
            None => self.every_bits(),
        }
    }

    /// One page of the entities a predicate selects (all when `None`), in
    /// ref order, straight from the posting lists: no list of every
    /// matching ref is built.
    pub fn page_in_ref_order(
        &self,
        selection: Option<&Predicate>,
        start: RefStart<'_>,
        limit: usize,
    ) -> Result<RefPage, StoreError> {
        let bits = self.selection_bits(selection)?;
        self.with_ordinals(|ords| ords.page(&bits, start, limit))
    }

    /// One page of `bits` ordered by `field` (one a ref holds: `kind`,
    /// `metadata.namespace`, `metadata.name`) in `direction`, then by ref,
    /// from `start`: its refs, how many of `bits` come before it and how
    /// many `bits` holds. It is read from an order of every ordinal kept
    /// in memory, so a page of a large selection costs about its length
    /// and one of a small selection a sort of its positions, never a sort
    /// of its refs.
    pub(crate) fn page_by_ref_field(
        &self,
        bits: &RoaringBitmap,
        field: &str,
        direction: Direction,
        start: &crate::order::Start,
        limit: usize,
    ) -> Result<(Vec<String>, usize, usize), StoreError> {
        use crate::order::{Start, compare_values, ref_part};
        self.with_field_order(field, direction, |ords, order| {
            let position = |key: &crate::order::SortKey, or_equal: bool| {
                order.boundary(|o| {
                    let r: &str = &ords.refs[o as usize];
                    let c = compare_values(
                        direction,
                        ref_part(field, r),
                        key.values.first().and_then(Option::as_deref),
                    )
                    .then_with(|| r.cmp(&key.refkey));
                    c == std::cmp::Ordering::Less || (or_equal && c == std::cmp::Ordering::Equal)
                })
            };
            let bound = match start {
                Start::Offset(o) => Bound::Offset(*o),
                Start::After(key) => Bound::From(position(key, true)),
                Start::Before(key) => Bound::Until(position(key, false)),
            };
            let (page, from, total) = order.page(bits, bound, limit);
            let refs = page
                .into_iter()
                .map(|o| ords.refs[o as usize].to_string())
                .collect();
            (refs, from, total)
        })
    }

    /// The refs of `bits` ordered by `field` (one a ref holds) in
    /// `direction`, then by ref (see [`Catalog::page_by_ref_field`]).
    pub(crate) fn sorted_by_ref_field(
        &self,
        bits: &RoaringBitmap,
        field: &str,
        direction: Direction,
    ) -> Result<Vec<String>, StoreError> {
        self.with_field_order(field, direction, |ords, order| {
            order
                .sorted(bits)
                .into_iter()
                .map(|o| ords.refs[o as usize].to_string())
                .collect()
        })
    }

    /// Runs `f` over the ordinal -> ref map and its order by `field` in
    /// `direction`, both brought up to the store's current state (the
    /// order is made on first use). Readers share them; only a refresh or
    /// a new order takes the map alone.
    fn with_field_order<T>(
        &self,
        field: &str,
        direction: Direction,
        f: impl FnOnce(&OrdinalMap, &Permutation) -> T,
    ) -> Result<T, StoreError> {
        let key = (field.to_string(), direction);
        self.read_ordinals(
            |ords| ords.by_field.contains_key(&key),
            |ords| {
                ords.by_field(field, direction);
            },
            |ords| {
                let order = ords.by_field.get(&key).expect("an order once made is kept");
                f(ords, order)
            },
        )
    }

    /// Makes now the order by name, ascending (the order Backstage's UI
    /// lists entities in), which is then kept up to date as refs arrive:
    /// made on first use instead, at a million entities, the first page
    /// sorted by name waited about 0.6 s for it. Meant for a background
    /// thread when serving starts; a reader arriving meanwhile waits for
    /// it as it would have on first use.
    pub fn warm(&self) -> Result<(), StoreError> {
        self.with_field_order("metadata.name", Direction::Asc, |_, _| ())
    }

    /// Refs of `bits`, in ref order.
    pub fn sorted_refs(&self, bits: &RoaringBitmap) -> Result<Vec<String>, StoreError> {
        self.with_ordinals(|ords| ords.sorted_refs(bits))
    }

    /// Runs `f` over the ordinal -> ref map, brought up to the store's
    /// current state (only the ordinals given since the last call are read).
    fn with_ordinals<T>(&self, f: impl FnOnce(&OrdinalMap) -> T) -> Result<T, StoreError> {
        self.read_ordinals(|_| true, |_| {}, f)
    }

    /// Runs `f` over the ordinal -> ref map once it is up to the store's
    /// current state and `ready` holds of it (`prepare` makes it hold).
    /// Readers share the map; only a refresh after the store changed, or
    /// what `prepare` makes, takes it alone.
    fn read_ordinals<T>(
        &self,
        ready: impl Fn(&OrdinalMap) -> bool,
        prepare: impl FnOnce(&mut OrdinalMap),
        f: impl FnOnce(&OrdinalMap) -> T,
    ) -> Result<T, StoreError> {
        {
            let ords = self.ordinals.read().unwrap_or_else(|e| e.into_inner());
            if ords.version == Some(self.store.version()) && ready(&ords) {
                return Ok(f(&ords));
            }
        }
        {
            let mut ords = self.ordinals.write().unwrap_or_else(|e| e.into_inner());
            ords.refresh(self.store.as_ref())?;
            prepare(&mut ords);
        }
        let ords = self.ordinals.read().unwrap_or_else(|e| e.into_inner());
        Ok(f(&ords))
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
        let bits = match filter {
            Some(filter) => self.filter_bits(filter)?,
            None => self.every_bits()?,
        };
        self.sorted_refs(&bits)
    }

    /// The ordinals a filter selects: the union of its clauses.
    pub fn filter_bits(&self, filter: &EntityFilter) -> Result<RoaringBitmap, StoreError> {
        let mut out = RoaringBitmap::new();
        for clause in &filter.any_of {
            out |= self.clause_bits(clause)?;
        }
        Ok(out)
    }

    /// The intersection of a clause's conditions, the smallest (as the
    /// postings' headers count) first.
    fn clause_bits(&self, clause: &FilterClause) -> Result<RoaringBitmap, StoreError> {
        let mut conds: Vec<(u64, &Condition)> = Vec::new();
        for c in &clause.all_of {
            conds.push((self.estimate(c)?, c));
        }
        conds.sort_by_key(|(n, _)| *n);
        let mut acc: Option<RoaringBitmap> = None;
        for (_, c) in conds {
            let bits = self.condition_bits(c)?;
            acc = Some(match acc {
                None => bits,
                Some(a) => a & bits,
            });
            if acc.as_ref().is_some_and(RoaringBitmap::is_empty) {
                break;
            }
        }
        Ok(acc.unwrap_or_default())
    }

    /// How many entities a condition selects at most (any value of a key:
    /// unknown without reading every posting of the key).
    fn estimate(&self, c: &Condition) -> Result<u64, StoreError> {
        if c.values.is_empty() {
            return Ok(u64::MAX);
        }
        let mut n = 0;
        for v in &c.values {
            n += crate::postings::count(self.store.as_ref(), &c.key, v)?;
        }
        Ok(n)
    }

    /// The entities with one of the condition's values (any value when it
    /// names none).
    fn condition_bits(&self, c: &Condition) -> Result<RoaringBitmap, StoreError> {
        if c.values.is_empty() {
            return crate::postings::union(self.store.as_ref(), &c.key, "");
        }
        let mut out = RoaringBitmap::new();
        for v in &c.values {
            out |= crate::postings::get(self.store.as_ref(), &c.key, v)?.members();
        }
        Ok(out)
    }

    /// The search rows of a served entity (for sorting and filtered facets).
    pub fn search_rows(&self, refkey: &str) -> Result<SearchRows, StoreError> {
        self.search_rows_with(refkey, true)
    }

    /// [`Catalog::search_rows`], those of its relations (`relations.*`,
    /// kept with the relations) only `with_relations`.
    pub fn search_rows_with(
        &self,
        refkey: &str,
        with_relations: bool,
    ) -> Result<SearchRows, StoreError> {
        let key = keys::search_rows(refkey);
        let mut rows: SearchRows = match self.store.get(&key)? {
            Some(bytes) => records::decode(&key, &bytes)?,
            None => return Ok(SearchRows::default()),
        };
        if !with_relations {
            return Ok(rows);
        }
        let relations = crate::relations::of(self.store.as_ref(), refkey)?;
        if !relations.is_empty() {
            rows.rows.extend(crate::relations::search_rows(&relations));
            rows.rows.sort();
            rows.rows.dedup();
        }
        Ok(rows)
    }

    /// Whether the served entity `refkey` matches `filter` (any entity
    /// when `None`), judged on its search rows (the rows the filter index
    /// holds).
    pub fn entity_matches(
        &self,
        refkey: &str,
        filter: Option<&EntityFilter>,
    ) -> Result<bool, StoreError> {
        let Some(filter) = filter else {
            return Ok(true);
        };
        let relations = filter
            .any_of
            .iter()
            .flat_map(|c| &c.all_of)
            .any(|c| c.key.starts_with("relations"));
        let rows = self.search_rows_with(refkey, relations)?;
        Ok(filter.any_of.iter().any(|clause| {
            clause.all_of.iter().all(|c| {
                rows.rows.iter().any(|row| {
                    row.key == c.key && (c.values.is_empty() || c.values.contains(&row.value))
                })
            })
        }))
    }

    /// Value counts per facet key, over all entities or those matching.
    pub fn facets(
        &self,
        facet_keys: &[String],
        filter: Option<&EntityFilter>,
    ) -> Result<BTreeMap<String, Vec<(String, u64)>>, StoreError> {
        let matching = filter.map(|f| self.filter_bits(f)).transpose()?;
        self.facets_of(facet_keys, matching.as_ref())
    }

    /// Value counts per facet key, over all entities or those matching a
    /// predicate.
    pub fn facets_matching(
        &self,
        facet_keys: &[String],
        predicate: Option<&Predicate>,
    ) -> Result<BTreeMap<String, Vec<(String, u64)>>, StoreError> {
        let matching = predicate.map(|p| self.predicate_bits(p)).transpose()?;
        self.facets_of(facet_keys, matching.as_ref())
    }

    /// Each value of each facet key with how many of the matching entities
    /// (all when `None`) have it, from the posting lists: one scan per key.
    /// A value shows in the casing of the first entity in ref order that
    /// has it.
    fn facets_of(
        &self,
        facet_keys: &[String],
        matching: Option<&RoaringBitmap>,
    ) -> Result<BTreeMap<String, Vec<(String, u64)>>, StoreError> {
        let mut out = BTreeMap::new();
        for f in facet_keys {
            let key = f.to_lowercase();
            let mut values: Vec<(Vec<(String, RoaringBitmap)>, u64)> = Vec::new();
            crate::postings::scan(self.store.as_ref(), &key, "", &mut |_, k, v| {
                if matching.is_none() {
                    // The header counts; the casing needs the bitmaps only
                    // when the value is written in several.
                    let (n, single) = Posting::peek(k, v)?;
                    let casings = match single {
                        Some(c) => vec![(c, RoaringBitmap::new())],
                        None => Posting::decode(k, v)?.casings,
                    };
                    values.push((casings, n));
                    return Ok(true);
                }
                let posting = Posting::decode(k, v)?;
                let mut casings = posting.casings;
                if let Some(m) = matching {
                    for (_, b) in &mut casings {
                        *b &= m;
                    }
                    casings.retain(|(_, b)| !b.is_empty());
                }
                let n = match casings.as_slice() {
                    [] => 0,
                    [(_, only)] => only.len(),
                    many => many
                        .iter()
                        .fold(RoaringBitmap::new(), |a, (_, b)| a | b)
                        .len(),
                };
                if n > 0 {
                    values.push((casings, n));
                }
                Ok(true)
            })?;
            let counted = self.with_ordinals(|ords| {
                values
                    .into_iter()
                    .map(|(casings, n)| (ords.first_casing(casings), n))
                    .collect::<Vec<_>>()
            })?;
            out.insert(f.clone(), sort_facet(counted));
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

    /// Every location, in key order.
    pub fn locations(&self) -> Result<Vec<Location>, StoreError> {
        let records: Vec<LocationRecord> = self.scan_records(&[keys::LOCATION])?;
        Ok(records.into_iter().map(Location::from).collect())
    }

    /// The location of a key, if known.
    pub fn location(&self, key: &str) -> Result<Option<Location>, StoreError> {
        let k = keys::location(key);
        match self.store.get(&k)? {
            Some(bytes) => Ok(Some(records::decode::<LocationRecord>(&k, &bytes)?.into())),
            None => Ok(None),
        }
    }

    /// The location of an id (a uuid), if known.
    pub fn location_by_id(&self, id: &str) -> Result<Option<Location>, StoreError> {
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
    pub fn location_errors(&self, rec: &Location) -> Result<Vec<ProcessingError>, StoreError> {
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

    /// The entity's JSON text before and after an entity change of the
    /// feed, as stored (not parsed into a tree).
    pub fn feed_entities(
        &self,
        record: &crate::feed::FeedRecord,
    ) -> Result<FeedBodies, StoreError> {
        let (b, a) = crate::feed::bodies::<crate::feed::EntityText>(self.store.as_ref(), record)?;
        Ok((b.and_then(|b| b.entity), a.and_then(|a| a.entity)))
    }

    /// [`Catalog::feed_entities`] of each of `records`, read together (one
    /// iterator for them all).
    pub fn feed_entities_each(
        &self,
        records: &[&crate::feed::FeedRecord],
    ) -> Result<Vec<FeedBodies>, StoreError> {
        Ok(
            crate::feed::bodies_each::<crate::feed::EntityText>(self.store.as_ref(), records)?
                .into_iter()
                .map(|(b, a)| (b.and_then(|b| b.entity), a.and_then(|a| a.entity)))
                .collect(),
        )
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
        let catalog = if crate::temporal::available(self.store.as_ref())? {
            // Read from the history as it is asked: nothing is built, and
            // the ordinal map is the live one (the past reads its ordinals).
            self.past(at_ms)
        } else {
            Catalog::new(Arc::new(crate::asof::materialize(
                self.store.as_ref(),
                at_ms,
            )?))
        };
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
        use crate::adoption::{Metric, entities_from_history, ownership_from_history};
        let fast = match metric {
            Metric::Entities => entities_from_history(self, buckets, dim, opts.filter)?,
            Metric::OwnershipCoverage => ownership_from_history(self, buckets, dim, opts.filter)?,
            _ => None,
        };
        if let Some(series) = fast {
            return Ok(series);
        }
        crate::adoption::compute(self.store.as_ref(), metric, buckets, dim, opts)
    }

    /// The catalog as of `at_ms` read from the posting lists' history,
    /// uncached (for stores that keep it, see [`crate::temporal`]).
    pub fn past(&self, at_ms: i64) -> Catalog {
        Catalog {
            ordinals: self.ordinals.clone(),
            ..Catalog::new(Arc::new(crate::asof::PastStore::new(
                self.store.clone(),
                at_ms,
            )))
        }
    }

    /// Every effective change of an entity, oldest first.
    pub fn history(&self, refkey: &str) -> Result<Vec<EntityChange>, StoreError> {
        let prefix = keys::prefix(keys::HISTORY, &[refkey.to_ascii_lowercase().as_bytes()]);
        let records: Vec<HistoryRecord> = self.scan_records(&prefix)?;
        Ok(records.into_iter().map(EntityChange::from).collect())
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

    /// The write of a relation row of `source`, emitted by `emitter`.
    fn relation_row(
        source: &str,
        relation_type: proto::RelationType,
        target: &str,
        emitter: &str,
    ) -> (Vec<u8>, Option<Vec<u8>>) {
        (
            keys::relation(source, relation_type.as_str(), target),
            Some(records::encode(&records::RelationRow {
                relation_type,
                target: proto::EntityRef::parse(target, None, "default").unwrap(),
                emitters: [emitter.to_string()].into(),
            })),
        )
    }

    /// A store with entities whose relations differ (none, a few, a hub's
    /// thousands), two refs one a prefix of the other.
    fn store_with_relations(store: &dyn Store) {
        let rel = |source: &str, i: usize| {
            let target = format!("component:default/t-{i:05}");
            relation_row(source, proto::RelationType::DependsOn, &target, source)
        };
        let mut writes = crate::WriteSet::new();
        for (r, n) in [
            ("component:default/a", 2),
            ("component:default/ab", 0),
            ("component:default/b", 3000),
            ("component:default/c", 1),
        ] {
            writes.push((
                keys::entity(r),
                Some(format!(r#"{{"ref":"{r}"}}"#).into_bytes()),
            ));
            writes.extend((0..n).map(|i| rel(r, i)));
            if n > 0 {
                let m = crate::relations::Mark {
                    latest: 0,
                    changes: 1,
                    late: false,
                };
                writes.push((keys::latest_relation(r), Some(m.encode())));
            }
        }
        // Rows of a source that is not served are not read.
        writes.push(rel("component:default/gone", 7));
        store.write(writes).unwrap();
    }

    fn reads_many_as_it_reads_one(store: Arc<dyn Store>) {
        store_with_relations(store.as_ref());
        let catalog = Catalog::new(store);
        let refs: Vec<String> = [
            "component:default/c",
            "component:default/ab",
            "Component:Default/A",
            "component:default/gone",
            "component:default/b",
            "component:default/a",
            "component:default/b",
        ]
        .iter()
        .map(|r| r.to_string())
        .collect();
        let one: Vec<Option<Vec<u8>>> = refs.iter().map(|r| catalog.entity(r).unwrap()).collect();
        // Twice: the hub's relations are kept after the first.
        for _ in 0..2 {
            let many = catalog.entities(&refs).unwrap();
            assert_eq!(many.len(), refs.len());
            for (i, (m, o)) in many.iter().zip(&one).enumerate() {
                assert_eq!(
                    m.as_deref().map(String::from_utf8_lossy),
                    o.as_deref().map(String::from_utf8_lossy),
                    "{}",
                    refs[i]
                );
            }
        }
        let relations = |i: usize| -> usize {
            let e: serde_json::Value = serde_json::from_slice(one[i].as_ref().unwrap()).unwrap();
            e.get("relations")
                .map_or(0, |r| r.as_array().unwrap().len())
        };
        assert_eq!(
            (relations(0), relations(1), relations(2), relations(4)),
            (1, 0, 2, 3000)
        );
        assert!(one[3].is_none());
        assert_eq!(catalog.hubs.lock().unwrap().entries.len(), 1);
    }

    #[test]
    fn many_entities_read_at_once_are_what_each_reads_alone() {
        reads_many_as_it_reads_one(Arc::new(crate::store::MemStore::new()));
        #[cfg(feature = "rocksdb")]
        {
            let dir = tempfile::tempdir().unwrap();
            let store = crate::store::RocksStore::open(dir.path(), 1 << 20).unwrap();
            reads_many_as_it_reads_one(Arc::new(store));
        }
    }

    #[test]
    fn a_hubs_relations_are_kept_until_they_change() {
        use crate::store::MemStore;
        let store = Arc::new(MemStore::new());
        let hub = "component:default/hub";
        let row = |i: usize| {
            let target = format!("component:default/repo-{i:05}");
            relation_row(hub, proto::RelationType::DependencyOf, &target, &target)
        };
        let mark = |changes: u64| {
            let m = crate::relations::Mark {
                latest: 0,
                changes,
                late: false,
            };
            (keys::latest_relation(hub), Some(m.encode()))
        };
        let mut writes: crate::WriteSet = (0..2000).map(row).collect();
        writes.push((keys::entity(hub), Some(br#"{"kind":"Component"}"#.to_vec())));
        writes.push(mark(1));
        store.write(writes).unwrap();
        let catalog = Catalog::new(store.clone());
        let count = |c: &Catalog| -> usize {
            let e: serde_json::Value =
                serde_json::from_slice(&c.entity(hub).unwrap().unwrap()).unwrap();
            e["relations"].as_array().unwrap().len()
        };
        assert_eq!(count(&catalog), 2000);
        assert_eq!(count(&catalog), 2000, "read again from what was kept");
        assert_eq!(catalog.hubs.lock().unwrap().entries.len(), 1);
        // Other writes do not make it read again; a change of its
        // relations (the fold counts it in the mark) does.
        store
            .write(vec![(
                keys::entity("component:default/other"),
                Some(b"{}".to_vec()),
            )])
            .unwrap();
        assert_eq!(count(&catalog), 2000);
        store.write(vec![row(2000), mark(2)]).unwrap();
        assert_eq!(
            count(&catalog),
            2001,
            "a change of its relations makes it read again"
        );
        // The streamed list stitches the same relations.
        let listed = catalog.entities_after(None, 10).unwrap();
        let e: serde_json::Value = serde_json::from_slice(&listed[0].1).unwrap();
        assert_eq!(e["relations"].as_array().unwrap().len(), 2001);
    }

    #[test]
    fn the_ordinal_map_keeps_ref_order_as_ordinals_arrive() {
        let store = crate::store::MemStore::new();
        let mut map = OrdinalMap::default();
        let mut next = 0u32;
        // Rounds of new refs in no particular order, some sorting before,
        // between and after the ones already known.
        for round in 0..5u32 {
            let mut w = crate::store::WriteSet::new();
            for k in 0..7u32 {
                let r = format!(
                    "component:default/n{}",
                    (k * 37 + round * 11) % 50 + round * 100
                );
                w.push((keys::ordinal_ref(next), Some(r.into_bytes())));
                next += 1;
            }
            store.write(w).unwrap();
            map.refresh(&store).unwrap();
            let mut want: Vec<u32> = (0..next).collect();
            want.sort_by(|a, b| map.refs[*a as usize].cmp(&map.refs[*b as usize]));
            assert_eq!(map.by_ref.by_pos, want, "round {round}");
            for (i, o) in map.by_ref.by_pos.iter().enumerate() {
                assert_eq!(map.by_ref.pos[*o as usize], i as u32);
            }
        }
    }

    #[test]
    fn the_name_order_made_ahead_is_kept_up_to_date_as_refs_arrive() {
        let store = Arc::new(crate::store::MemStore::new());
        let catalog = Catalog::new(store.clone());
        catalog.warm().unwrap();
        let name_asc = ("metadata.name".to_string(), Direction::Asc);
        // Refs arrive in three writes, each read by a reader that asks for
        // no field's order; names sort unlike refs (kinds interleave).
        let kinds = ["api", "component", "user"];
        let mut refs = Vec::new();
        for round in 0..3u32 {
            let mut w = crate::store::WriteSet::new();
            for i in round * 100..(round + 1) * 100 {
                let r = format!(
                    "{}:default/n{:03}",
                    kinds[(i % 3) as usize],
                    (i * 211) % 300
                );
                w.push((keys::ordinal_ref(i), Some(r.clone().into_bytes())));
                refs.push(r);
            }
            store.write(w).unwrap();
            let all: RoaringBitmap = (0..refs.len() as u32).collect();
            assert_eq!(catalog.sorted_refs(&all).unwrap().len(), refs.len());
            let ords = catalog.ordinals.read().unwrap();
            let order = ords
                .by_field
                .get(&name_asc)
                .expect("the name order is kept once made");
            assert_eq!(order.by_pos.len(), refs.len(), "round {round}");
            let got: Vec<&str> = order
                .by_pos
                .iter()
                .map(|o| &*ords.refs[*o as usize])
                .collect();
            let mut want: Vec<&str> = refs.iter().map(String::as_str).collect();
            want.sort_by_key(|r| (r.rsplit('/').next().unwrap().to_string(), r.to_string()));
            assert_eq!(got, want, "round {round}");
        }
    }

    #[test]
    fn pages_in_ref_order_start_at_the_kind_that_holds_them() {
        let store = crate::store::MemStore::new();
        // Kinds whose names sort differently with and without the colon
        // (`a-b:` before `a:`), arriving interleaved.
        let kinds = ["a", "a-b", "api", "component", "user", "zz"];
        let mut w = crate::store::WriteSet::new();
        let mut refs = Vec::new();
        for i in 0..600u32 {
            let kind = kinds[(i as usize * 7) % kinds.len()];
            let r = format!("{kind}:default/n{:03}", (i * 389) % 600);
            w.push((keys::ordinal_ref(i), Some(r.clone().into_bytes())));
            refs.push(r);
        }
        store.write(w).unwrap();
        let mut map = OrdinalMap::default();
        map.refresh(&store).unwrap();
        // Selections dense enough to be walked: none of the first kinds,
        // every other member of some, all of one.
        let selections: Vec<RoaringBitmap> = vec![
            (0..600u32)
                .filter(|o| !refs[*o as usize].starts_with('a'))
                .collect(),
            (0..600u32).filter(|o| o % 2 == 0).collect(),
            (0..600u32)
                .filter(|o| refs[*o as usize].starts_with("user:") || o % 5 == 0)
                .collect(),
            (0..600u32).collect(),
        ];
        for (n, bits) in selections.iter().enumerate() {
            assert!(map.by_ref.dense(bits), "selection {n} is walked");
            let mut want: Vec<&String> = bits.iter().map(|o| &refs[o as usize]).collect();
            want.sort();
            for offset in [
                0,
                1,
                49,
                50,
                99,
                100,
                101,
                250,
                want.len() - 1,
                want.len(),
                900,
            ] {
                let page = map.page(bits, RefStart::Offset(offset), 30);
                let expect: Vec<String> = want
                    .iter()
                    .skip(offset)
                    .take(30)
                    .map(|r| r.to_string())
                    .collect();
                assert_eq!(page.refs, expect, "selection {n}, offset {offset}");
                assert_eq!(
                    page.from,
                    offset.min(want.len()),
                    "selection {n}, offset {offset}"
                );
                assert_eq!(page.total, want.len());
            }
        }
    }

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

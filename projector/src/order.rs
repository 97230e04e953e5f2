//! Ordering and paging of selections: the sort keys of entities under an
//! order by arbitrary search keys, how two keys compare, and the page of a
//! selection (a predicate, an optional full-text filter) under an order
//! from a start position. The query service parses its parameters into
//! these types and shapes the answer; what is read and in which order is
//! decided here, from the index, without reading the entities.

use crate::predicate::Predicate;
use crate::read::{Catalog, RefStart};
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// One sort key: a search key (lower-cased) and a direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderField {
    pub field: String,
    pub order: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    /// `asc` or `desc` (surrounding blanks ignored).
    pub fn parse(s: &str) -> Option<Direction> {
        match s.trim() {
            "asc" => Some(Direction::Asc),
            "desc" => Some(Direction::Desc),
            _ => None,
        }
    }
}

/// The position of an entity in an ordering: the values of the order
/// fields (`None` when the entity has no such field; those sort last) and
/// the ref key that breaks ties. A page cursor carries one, so its
/// serialised shape is part of the cursors clients hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKey {
    pub values: Vec<Option<String>>,
    #[serde(rename = "ref")]
    pub refkey: String,
}

/// Where a page of an ordered selection starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// After skipping this many.
    Offset(usize),
    /// Just after this position.
    After(SortKey),
    /// The page that ends just before this position.
    Before(SortKey),
}

/// A full-text filter: entities with `term` in one of `fields` (search
/// keys). Without fields, Backstage's default: the first order field,
/// else `metadata.uid`.
#[derive(Debug, Clone, Default)]
pub struct FullText {
    pub term: String,
    pub fields: Vec<String>,
}

/// One page of an ordered selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page's entities, in order.
    pub keys: Vec<SortKey>,
    /// How many selected entities come before the page.
    pub from: usize,
    /// How many entities are selected in all.
    pub total: usize,
}

impl Page {
    /// How many selected entities come before the end of the page.
    pub fn to(&self) -> usize {
        self.from + self.keys.len()
    }
}

/// Compares two keys under `order` (missing values last in either
/// direction, then ref keys ascending).
pub fn compare(order: &[OrderField], a: &SortKey, b: &SortKey) -> Ordering {
    for (i, o) in order.iter().enumerate() {
        let c = compare_values(
            o.order,
            a.values.get(i).and_then(Option::as_deref),
            b.values.get(i).and_then(Option::as_deref),
        );
        if c != Ordering::Equal {
            return c;
        }
    }
    a.refkey.cmp(&b.refkey)
}

/// Compares two values of one order field in `direction` (missing last
/// either way).
pub(crate) fn compare_values(direction: Direction, a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => match direction {
            Direction::Asc => x.cmp(y),
            Direction::Desc => y.cmp(x),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The sort key of one entity from its search rows. An entity with several
/// values for a key (array items) sorts by its first value in the
/// direction asked; an empty value (null, or too long to index) counts as
/// missing.
fn sort_key(order: &[OrderField], refkey: &str, rows: &crate::records::SearchRows) -> SortKey {
    let values = order
        .iter()
        .map(|o| {
            let candidates = rows
                .rows
                .iter()
                .filter(|r| r.key == o.field && !r.value.is_empty())
                .map(|r| &r.value);
            match o.order {
                Direction::Asc => candidates.min(),
                Direction::Desc => candidates.max(),
            }
            .cloned()
        })
        .collect();
    SortKey {
        values,
        refkey: refkey.to_string(),
    }
}

/// Sort keys of `refs` under `order`, sorted. Fields a ref key holds
/// (`kind`, `metadata.namespace`, `metadata.name`) come from the key
/// itself; any other field from one scan of its index rows; so ordering
/// many entities reads none of them.
fn sorted_keys(
    catalog: &Catalog,
    refs: &[String],
    order: &[OrderField],
) -> Result<Vec<SortKey>, StoreError> {
    // Per order field: ref -> (min, max) value, unless the ref holds it.
    let mut columns: Vec<Option<HashMap<String, (String, String)>>> = Vec::new();
    for o in order {
        if ref_part(&o.field, "x:y/z").is_some() {
            columns.push(None);
            continue;
        }
        let mut m: HashMap<String, (String, String)> = HashMap::new();
        for (value, refkey) in catalog.field_values(&o.field)? {
            match m.get_mut(&refkey) {
                Some((lo, hi)) => {
                    if value < *lo {
                        *lo = value;
                    } else if value > *hi {
                        *hi = value;
                    }
                }
                None => {
                    m.insert(refkey, (value.clone(), value));
                }
            }
        }
        columns.push(Some(m));
    }
    let mut keys: Vec<SortKey> = refs
        .iter()
        .map(|r| SortKey {
            values: order
                .iter()
                .zip(&columns)
                .map(|(o, col)| match col {
                    None => ref_part(&o.field, r).map(str::to_owned),
                    Some(m) => m.get(r).map(|(lo, hi)| match o.order {
                        Direction::Asc => lo.clone(),
                        Direction::Desc => hi.clone(),
                    }),
                })
                .collect(),
            refkey: r.clone(),
        })
        .collect();
    keys.sort_by(|a, b| compare(order, a, b));
    Ok(keys)
}

/// The part of a ref key (`kind:namespace/name`, lower-cased like index
/// values) that is the value of `field`, for the fields a ref holds.
pub(crate) fn ref_part<'a>(field: &str, refkey: &'a str) -> Option<&'a str> {
    let (kind, rest) = refkey.split_once(':')?;
    let (namespace, name) = rest.split_once('/')?;
    match field {
        "kind" => Some(kind),
        "metadata.namespace" => Some(namespace),
        "metadata.name" => Some(name),
        _ => None,
    }
}

/// The page of `keys` (sorted under `order`) from `start`.
fn page_of(keys: &[SortKey], order: &[OrderField], start: &Start, limit: usize) -> Page {
    let total = keys.len();
    let (from, to) = match start {
        Start::Offset(o) => {
            let from = (*o).min(total);
            (from, from.saturating_add(limit).min(total))
        }
        Start::After(p) => {
            let from = keys.partition_point(|k| compare(order, k, p) != Ordering::Greater);
            (from, from.saturating_add(limit).min(total))
        }
        Start::Before(p) => {
            let to = keys.partition_point(|k| compare(order, k, p) == Ordering::Less);
            (to.saturating_sub(limit), to)
        }
    };
    Page {
        keys: keys[from..to].to_vec(),
        from,
        total,
    }
}

/// The only field of `order` when it is one a ref holds.
fn one_ref_field(order: &[OrderField]) -> Option<&OrderField> {
    match order {
        [o] if ref_part(&o.field, "x:y/z").is_some() => Some(o),
        _ => None,
    }
}

/// The sort key of `refkey` under an order by `field`, one a ref holds.
fn ref_field_key(field: &str, refkey: String) -> SortKey {
    SortKey {
        values: vec![ref_part(field, &refkey).map(str::to_owned)],
        refkey,
    }
}

impl Catalog {
    /// Sort keys of every entity `selection` selects (all when `None`)
    /// under `order`, sorted; made once per store version, selection and
    /// order.
    pub fn ordered(
        &self,
        selection: Option<&Predicate>,
        order: &[OrderField],
    ) -> Result<Arc<Vec<SortKey>>, StoreError> {
        let key = format!("order {selection:?} {order:?}");
        self.cached(&key, || {
            if let Some(field) = one_ref_field(order) {
                // Walked from the kept order of the field: no sort.
                let bits = self.selection_bits(selection)?;
                let refs = self.sorted_by_ref_field(&bits, &field.field, field.order)?;
                return Ok(refs
                    .into_iter()
                    .map(|r| ref_field_key(&field.field, r))
                    .collect());
            }
            let matching = match selection {
                Some(p) => self.select(p)?,
                None => self.refs(None)?,
            };
            sorted_keys(self, &matching, order)
        })
    }

    /// One page of at most `limit` entities that `selection` selects (all
    /// when `None`) and `full_text` keeps, under `order` (ref order when
    /// empty), from `start`. In ref order without a full-text filter the
    /// page comes straight from the posting lists (no sort key, no list of
    /// every match); otherwise the selection is ordered once per store
    /// version and order, then paged.
    pub fn ordered_page(
        &self,
        selection: Option<&Predicate>,
        order: &[OrderField],
        full_text: Option<&FullText>,
        start: &Start,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let full_text = full_text.map(|ft| {
            let fields = if ft.fields.is_empty() {
                vec![
                    order
                        .first()
                        .map_or("metadata.uid", |o| o.field.as_str())
                        .to_string(),
                ]
            } else {
                ft.fields.clone()
            };
            (ft.term.to_lowercase(), fields)
        });
        if order.is_empty() && full_text.is_none() {
            let start = match start {
                Start::Offset(o) => RefStart::Offset(*o),
                Start::After(p) => RefStart::After(&p.refkey),
                Start::Before(p) => RefStart::Before(&p.refkey),
            };
            let page = self.page_in_ref_order(selection, start, limit)?;
            return Ok(Page {
                keys: page
                    .refs
                    .into_iter()
                    .map(|refkey| SortKey {
                        values: vec![],
                        refkey,
                    })
                    .collect(),
                from: page.from,
                total: page.total,
            });
        }
        if let (Some(field), None) = (one_ref_field(order), &full_text) {
            // One field a ref holds (say, by name): paged from the kept
            // order of that field, without ordering the selection.
            let bits = self.selection_bits(selection)?;
            let (refs, from, total) =
                self.page_by_ref_field(&bits, &field.field, field.order, start, limit)?;
            return Ok(Page {
                keys: refs
                    .into_iter()
                    .map(|r| ref_field_key(&field.field, r))
                    .collect(),
                from,
                total,
            });
        }
        let keys: Arc<Vec<SortKey>> = match &full_text {
            None => self.ordered(selection, order)?,
            Some((term, fields)) => {
                let matching = match selection {
                    Some(p) => self.select(p)?,
                    None => self.refs(None)?,
                };
                Arc::new(self.full_text_keys(&matching, order, term, fields)?)
            }
        };
        Ok(page_of(&keys, order, start, limit))
    }

    /// Sort keys of the refs of `matching` with `term` in one of `fields`,
    /// sorted under `order`.
    fn full_text_keys(
        &self,
        matching: &[String],
        order: &[OrderField],
        term: &str,
        fields: &[String],
    ) -> Result<Vec<SortKey>, StoreError> {
        let mut keys = Vec::new();
        // An entity's relation rows are read only if a field names them.
        let relations = fields
            .iter()
            .chain(order.iter().map(|o| &o.field))
            .any(|f| f.starts_with("relations"));
        for r in matching {
            let rows = self.search_rows_with(r, relations)?;
            let hit = rows
                .rows
                .iter()
                .any(|row| fields.contains(&row.key) && row.value.contains(term));
            if hit {
                keys.push(sort_key(order, r, &rows));
            }
        }
        if !order.is_empty() {
            keys.sort_by(|a, b| compare(order, a, b));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(values: &[Option<&str>], r: &str) -> SortKey {
        SortKey {
            values: values.iter().map(|v| v.map(str::to_string)).collect(),
            refkey: r.into(),
        }
    }

    fn by(field: &str, order: Direction) -> Vec<OrderField> {
        vec![OrderField {
            field: field.into(),
            order,
        }]
    }

    #[test]
    fn missing_values_sort_last_both_ways() {
        let asc = by("spec.type", Direction::Asc);
        let desc = by("spec.type", Direction::Desc);
        let a = key(&[Some("a")], "x:default/2");
        let b = key(&[Some("b")], "x:default/1");
        let none = key(&[None], "x:default/0");
        assert_eq!(compare(&asc, &a, &b), Ordering::Less);
        assert_eq!(compare(&desc, &a, &b), Ordering::Greater);
        assert_eq!(compare(&asc, &none, &a), Ordering::Greater);
        assert_eq!(compare(&desc, &none, &a), Ordering::Greater);
        assert_eq!(
            compare(&asc, &key(&[Some("a")], "x:default/1"), &a),
            Ordering::Less
        );
    }

    /// An entity of `kind` named `name` in `namespace`.
    fn entity(kind: &str, namespace: &str, name: &str) -> proto::ProcessedEntity {
        let entity: proto::Entity = serde_json::from_value(serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
        }))
        .unwrap();
        proto::ProcessedEntity {
            entity,
            relations: vec![],
        }
    }

    /// Pages ordered by one field a ref holds come from the kept order of
    /// that field; they must be exactly the pages of the selection sorted
    /// whole, for every start, direction and selection, dense or sparse,
    /// and stay so as entities arrive after the order was first made.
    #[test]
    fn pages_by_a_field_a_ref_holds_are_the_selection_sorted() {
        use crate::fold::tests::event;
        use crate::store::{MemStore, Store};
        // Names, kinds and namespaces whose order differs from the refs'
        // ('-', '.', '_' sort around ':' and '/'), names shared across
        // kinds and namespaces (ties broken by ref), mixed case.
        let kinds = ["Component", "API", "Group", "Compo"];
        let namespaces = ["default", "de", "default-x", "z.a"];
        let names = ["a", "a-b", "A.b", "a_b", "ab", "svc", "svc-1", "b", "Zed"];
        let store: Arc<MemStore> = Arc::new(MemStore::new());
        let catalog = Catalog::new(store.clone());
        let mut x = 7u64;
        for round in 0..3 {
            let mut batch = Vec::new();
            for _ in 0..40 {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let k = (x >> 33) as usize;
                let e = entity(
                    kinds[k % 4],
                    namespaces[(k / 4) % 4],
                    &format!(
                        "{}{}",
                        names[(k / 16) % 9],
                        if round == 2 { "x" } else { "" }
                    ),
                );
                batch.push(event(
                    &format!("file:/l{round}-{}", batch.len()),
                    1,
                    vec![e],
                ));
            }
            let mut fold = crate::fold::Fold::new(store.as_ref());
            for e in &batch {
                fold.apply(e).unwrap();
            }
            store.write(fold.finish().unwrap()).unwrap();
            let filter = |f: &str| {
                let f = crate::read::EntityFilter::parse(&[f.to_string()])
                    .unwrap()
                    .unwrap();
                Some(Predicate::from_filter(&f))
            };
            // Every entity; many (dense); few (sparse); none.
            for selection in [
                None,
                filter("kind=component,kind=api"),
                filter("kind=group,metadata.namespace=de"),
                filter("kind=nothing"),
            ] {
                for field in ["metadata.name", "kind", "metadata.namespace"] {
                    for direction in [Direction::Asc, Direction::Desc] {
                        let order = by(field, direction);
                        let matching = match &selection {
                            Some(p) => catalog.select(p).unwrap(),
                            None => catalog.refs(None).unwrap(),
                        };
                        let want = sorted_keys(&catalog, &matching, &order).unwrap();
                        let at = format!("round {round} {selection:?} {field} {direction:?}");
                        assert_eq!(
                            *catalog.ordered(selection.as_ref(), &order).unwrap(),
                            want,
                            "{at}"
                        );
                        let mut starts: Vec<Start> =
                            (0..=want.len() + 1).map(Start::Offset).collect();
                        // Cursors at every key, and between and beyond them.
                        let mut cursors = want.clone();
                        cursors.push(key(&[Some("b")], "api:default/b"));
                        cursors.push(key(&[Some("zzz")], "a:b/c"));
                        cursors.push(key(&[None], "component:default/a"));
                        cursors.push(key(&[], "component:de/svc"));
                        for c in cursors {
                            starts.push(Start::After(c.clone()));
                            starts.push(Start::Before(c));
                        }
                        for start in &starts {
                            for limit in [0, 1, 3, 50] {
                                let got = catalog
                                    .ordered_page(selection.as_ref(), &order, None, start, limit)
                                    .unwrap();
                                assert_eq!(
                                    got,
                                    page_of(&want, &order, start, limit),
                                    "{at} {start:?} {limit}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn ref_parts_are_the_fields_a_ref_holds() {
        assert_eq!(ref_part("kind", "component:default/a"), Some("component"));
        assert_eq!(
            ref_part("metadata.namespace", "component:default/a"),
            Some("default")
        );
        assert_eq!(ref_part("metadata.name", "component:default/a"), Some("a"));
        assert_eq!(ref_part("spec.type", "component:default/a"), None);
    }
}

//! Filter predicates: the query language of Backstage's `POST
//! /entities/by-query` and `POST /entity-facets` (`@backstage/filter-predicates`),
//! with the meaning the catalog backend gives them over its search index,
//! which is also the index of the GET `filter` parameter (so the two agree):
//!
//! - `{"kind": "Component", "spec.type": "service"}`: every key has the
//!   value, case-insensitively, numbers and booleans as their text; an
//!   array matches when any item does (`{"metadata.tags": "java"}`);
//! - `{"$all": [..]}`, `{"$any": [..]}`, `{"$not": ..}`, each the only key
//!   of its object (`$all: []` matches everything, `$any: []` nothing);
//! - values `{"$exists": bool}`, `{"$in": [..]}`, `{"$hasPrefix": ".."}`,
//!   `{"$contains": primitive}` (equality with an item) and, on
//!   `relations`, `{"$contains": {"type": "ownedBy", "targetRef": ..}}`
//!   (`targetRef` a ref or `{"$in": [..]}`, or absent: any target).
//!
//! Anything else is an error naming where in the query it is.

use crate::read::{Condition, EntityFilter, FilterClause};
use serde_json::Value;

/// A parsed predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    /// The key has one of the values (any value when empty); lower-cased.
    Has(Condition),
    /// The key has a value starting with `prefix`; lower-cased.
    Prefix {
        key: String,
        prefix: String,
    },
}

/// Why a query was refused: where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid query: at {at}: {reason}")]
pub struct PredicateError {
    /// A JSON path into the query (`$`, `$.$all[1]`, `$["spec.type"]`).
    pub at: String,
    pub reason: String,
}

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most operators and conditions in one query.
pub const MAX_NODES: usize = 4096;

struct Parser {
    nodes: usize,
}

fn err(at: &str, reason: impl Into<String>) -> PredicateError {
    PredicateError {
        at: at.to_string(),
        reason: reason.into(),
    }
}

/// A primitive's text as the index holds it (lower-cased).
fn primitive(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Predicate {
    /// Parses a query (a JSON object).
    pub fn parse(query: &Value) -> Result<Predicate, PredicateError> {
        Parser { nodes: 0 }.predicate(query, "$", 0)
    }

    /// The predicate of GET `filter` parameters: any of the filters, each
    /// all of its conditions.
    pub fn from_filter(filter: &EntityFilter) -> Predicate {
        Predicate::Any(
            filter
                .any_of
                .iter()
                .map(|c| Predicate::All(c.all_of.iter().cloned().map(Predicate::Has).collect()))
                .collect(),
        )
    }

    /// The same predicate as a GET filter (any of all of conditions), when
    /// it is one: the index then narrows from its most selective condition.
    pub fn as_filter(&self) -> Option<EntityFilter> {
        fn clause(p: &Predicate) -> Option<FilterClause> {
            match p {
                Predicate::Has(c) => Some(FilterClause {
                    all_of: vec![c.clone()],
                }),
                Predicate::All(items) if !items.is_empty() => {
                    let mut all_of = Vec::new();
                    for i in items {
                        all_of.extend(clause(i)?.all_of);
                    }
                    Some(FilterClause { all_of })
                }
                _ => None,
            }
        }
        let any_of = match self {
            Predicate::Any(items) if !items.is_empty() => {
                items.iter().map(clause).collect::<Option<Vec<_>>>()?
            }
            p => vec![clause(p)?],
        };
        // A condition with no value matches any value; one whose values
        // were an empty `$in` matches nothing, which a filter cannot say.
        Some(EntityFilter { any_of })
    }
}

impl Parser {
    fn count(&mut self, at: &str) -> Result<(), PredicateError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(err(
                at,
                format!("the query has more than {MAX_NODES} parts"),
            ));
        }
        Ok(())
    }

    fn predicate(
        &mut self,
        v: &Value,
        at: &str,
        depth: usize,
    ) -> Result<Predicate, PredicateError> {
        self.count(at)?;
        if depth > MAX_DEPTH {
            return Err(err(at, format!("nested deeper than {MAX_DEPTH}")));
        }
        let Value::Object(map) = v else {
            return Err(err(at, format!("expected an object, found {}", kind_of(v))));
        };
        let operators: Vec<&String> = map.keys().filter(|k| k.starts_with('$')).collect();
        if let Some(op) = operators.first() {
            if map.len() != 1 {
                return Err(err(
                    at,
                    format!(
                        "operator {op} must be the only key of its object; wrap in $all to combine it with other conditions"
                    ),
                ));
            }
            let inner = &map[op.as_str()];
            let at_op = format!("{at}.{op}");
            return match op.as_str() {
                "$all" | "$any" => {
                    let Value::Array(items) = inner else {
                        return Err(err(
                            &at_op,
                            format!("expected an array, found {}", kind_of(inner)),
                        ));
                    };
                    let parsed = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.predicate(item, &format!("{at_op}[{i}]"), depth + 1))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(if op.as_str() == "$all" {
                        Predicate::All(parsed)
                    } else {
                        Predicate::Any(parsed)
                    })
                }
                "$not" => Ok(Predicate::Not(Box::new(self.predicate(
                    inner,
                    &at_op,
                    depth + 1,
                )?))),
                other => Err(err(
                    at,
                    format!("unknown operator {other} (known: $all, $any, $not)"),
                )),
            };
        }
        let mut all = Vec::with_capacity(map.len());
        for (key, value) in map {
            let at_key = format!("{at}[{key:?}]");
            if key.is_empty() || key.starts_with(['\n', '\r']) {
                return Err(err(&at_key, "a field path must not be empty"));
            }
            all.push(self.field(&key.to_lowercase(), value, &at_key, depth + 1)?);
        }
        Ok(match all.len() {
            1 => all.pop().expect("one"),
            _ => Predicate::All(all),
        })
    }

    fn field(
        &mut self,
        key: &str,
        v: &Value,
        at: &str,
        depth: usize,
    ) -> Result<Predicate, PredicateError> {
        self.count(at)?;
        if let Some(value) = primitive(v) {
            return Ok(has(key, vec![value]));
        }
        let Value::Object(map) = v else {
            return Err(err(
                at,
                format!(
                    "expected a string, number, boolean or an operator object, found {}",
                    kind_of(v)
                ),
            ));
        };
        let (op, inner) = match map.iter().next() {
            Some((op, inner)) if map.len() == 1 => (op.as_str(), inner),
            _ => {
                return Err(err(
                    at,
                    "expected one of {\"$exists\": ..}, {\"$in\": ..}, {\"$hasPrefix\": ..}, {\"$contains\": ..}",
                ));
            }
        };
        if !op.starts_with('$') {
            return Err(err(
                at,
                format!(
                    "nested objects are not values; use a dotted path such as \"{key}.{}\"",
                    op.to_lowercase()
                ),
            ));
        }
        let at_op = format!("{at}.{op}");
        match op {
            "$exists" => match inner {
                Value::Bool(true) => Ok(has(key, Vec::new())),
                Value::Bool(false) => Ok(Predicate::Not(Box::new(has(key, Vec::new())))),
                other => Err(err(
                    &at_op,
                    format!("expected a boolean, found {}", kind_of(other)),
                )),
            },
            "$in" => {
                let values = self.values(inner, &at_op)?;
                Ok(if values.is_empty() {
                    Predicate::Any(Vec::new())
                } else {
                    has(key, values)
                })
            }
            "$hasPrefix" => match inner {
                Value::String(p) => Ok(Predicate::Prefix {
                    key: key.to_string(),
                    prefix: p.to_lowercase(),
                }),
                other => Err(err(
                    &at_op,
                    format!("expected a string, found {}", kind_of(other)),
                )),
            },
            "$contains" => {
                if let Some(value) = primitive(inner) {
                    return Ok(has(key, vec![value]));
                }
                if key != "relations" {
                    return Err(err(
                        &at_op,
                        format!(
                            "the object form of $contains is supported only on relations, not on {key:?}"
                        ),
                    ));
                }
                self.relation(inner, &at_op, depth)
            }
            other => Err(err(
                at,
                format!("unknown operator {other} (known: $exists, $in, $hasPrefix, $contains)"),
            )),
        }
    }

    /// `{"type": "ownedBy", "targetRef": ref | {"$in": [refs]}}`.
    fn relation(&mut self, v: &Value, at: &str, depth: usize) -> Result<Predicate, PredicateError> {
        let _ = depth;
        let Value::Object(map) = v else {
            return Err(err(
                at,
                format!("expected a primitive or an object, found {}", kind_of(v)),
            ));
        };
        if let Some(k) = map.keys().find(|k| *k != "type" && *k != "targetRef") {
            return Err(err(
                at,
                format!("unknown key {k:?} (a relation has type and targetRef)"),
            ));
        }
        let Some(Value::String(t)) = map.get("type") else {
            return Err(err(at, "a relation needs a string type"));
        };
        let key = format!("relations.{}", t.to_lowercase());
        match map.get("targetRef") {
            None => Ok(has(&key, Vec::new())),
            Some(Value::String(r)) => Ok(has(&key, vec![r.to_lowercase()])),
            Some(Value::Object(m)) if m.len() == 1 && m.contains_key("$in") => {
                let at_in = format!("{at}.targetRef.$in");
                let values = self.values(&m["$in"], &at_in)?;
                if values.is_empty() {
                    return Err(err(&at_in, "must name at least one ref"));
                }
                Ok(has(&key, values))
            }
            Some(other) => Err(err(
                &format!("{at}.targetRef"),
                format!(
                    "expected a ref or {{\"$in\": [refs]}}, found {}",
                    kind_of(other)
                ),
            )),
        }
    }

    fn values(&mut self, v: &Value, at: &str) -> Result<Vec<String>, PredicateError> {
        let Value::Array(items) = v else {
            return Err(err(at, format!("expected an array, found {}", kind_of(v))));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            self.count(at)?;
            out.push(primitive(item).ok_or_else(|| {
                err(
                    &format!("{at}[{i}]"),
                    format!(
                        "expected a string, number or boolean, found {}",
                        kind_of(item)
                    ),
                )
            })?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn has(key: &str, values: Vec<String>) -> Predicate {
    Predicate::Has(Condition {
        key: key.to_string(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Predicate, PredicateError> {
        Predicate::parse(&v)
    }

    #[test]
    fn fields_operators_and_logic() {
        assert_eq!(
            parse(json!({"kind": "Component", "spec.type": {"$in": ["service", 7, true]}}))
                .unwrap(),
            Predicate::All(vec![
                has("kind", vec!["component".into()]),
                has(
                    "spec.type",
                    vec!["7".into(), "service".into(), "true".into()]
                ),
            ])
        );
        assert_eq!(
            parse(json!({"$not": {"spec.owner": {"$exists": true}}})).unwrap(),
            Predicate::Not(Box::new(has("spec.owner", vec![])))
        );
        assert_eq!(
            parse(json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": {"$in": ["group:default/A"]}}}}))
                .unwrap(),
            has("relations.ownedby", vec!["group:default/a".into()])
        );
        assert_eq!(
            parse(json!({"metadata.name": {"$hasPrefix": "Pay"}})).unwrap(),
            Predicate::Prefix {
                key: "metadata.name".into(),
                prefix: "pay".into()
            }
        );
        assert_eq!(parse(json!({"$any": []})).unwrap(), Predicate::Any(vec![]));
        assert_eq!(
            parse(json!({"x": {"$in": []}})).unwrap(),
            Predicate::Any(vec![])
        );
        assert_eq!(parse(json!({})).unwrap(), Predicate::All(vec![]));
    }

    #[test]
    fn errors_say_where_and_why() {
        for (q, at, why) in [
            (json!("component"), "$", "expected an object"),
            (
                json!({"$all": [{"kind": "a"}], "kind": "b"}),
                "$",
                "only key",
            ),
            (
                json!({"$all": {"kind": "a"}}),
                "$.$all",
                "expected an array",
            ),
            (
                json!({"$any": [{"kind": "a"}, 3]}),
                "$.$any[1]",
                "expected an object",
            ),
            (json!({"$nor": []}), "$", "unknown operator $nor"),
            (
                json!({"spec.type": {"$startsWith": "x"}}),
                "$[\"spec.type\"]",
                "unknown operator $startsWith",
            ),
            (
                json!({"spec.type": {"$in": [{"a": 1}]}}),
                "$[\"spec.type\"].$in[0]",
                "expected a string",
            ),
            (
                json!({"spec.type": {"$exists": "yes"}}),
                "$[\"spec.type\"].$exists",
                "boolean",
            ),
            (
                json!({"spec": {"type": "x"}}),
                "$[\"spec\"]",
                "dotted path such as \"spec.type\"",
            ),
            (
                json!({"spec.type": {"$in": ["a"], "$exists": true}}),
                "$[\"spec.type\"]",
                "expected one of",
            ),
            (json!({"spec.type": null}), "$[\"spec.type\"]", "found null"),
            (
                json!({"metadata.tags": {"$contains": {"a": 1}}}),
                "$[\"metadata.tags\"].$contains",
                "only on relations",
            ),
            (
                json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": {"$in": []}}}}),
                "$in",
                "at least one",
            ),
        ] {
            let e = parse(q.clone()).unwrap_err();
            assert!(e.at.ends_with(at) || e.at == at, "{q}: {e}");
            assert!(e.reason.contains(why), "{q}: {e}");
        }
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut q = json!({"kind": "a"});
        for _ in 0..(MAX_DEPTH + 2) {
            q = json!({"$not": q});
        }
        assert!(parse(q).unwrap_err().reason.contains("deeper"));
        let many: Vec<Value> = (0..MAX_NODES + 1).map(|i| json!({"kind": i})).collect();
        assert!(
            parse(json!({"$any": many}))
                .unwrap_err()
                .reason
                .contains("parts")
        );
    }

    #[test]
    fn filters_and_predicates_convert_both_ways() {
        let f =
            EntityFilter::parse(&["kind=component,spec.type=service".into(), "kind=api".into()])
                .unwrap()
                .unwrap();
        assert_eq!(Predicate::from_filter(&f).as_filter(), Some(f));
        assert_eq!(
            parse(json!({"$not": {"kind": "a"}})).unwrap().as_filter(),
            None
        );
    }
}

#[cfg(test)]
mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON, biased towards the operators and keys of the language.
    fn json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("$all".to_string()),
            Just("$any".to_string()),
            Just("$not".to_string()),
            Just("$in".to_string()),
            Just("$exists".to_string()),
            Just("$hasPrefix".to_string()),
            Just("$contains".to_string()),
            Just("relations".to_string()),
            Just("type".to_string()),
            Just("targetRef".to_string()),
            "[a-z$.]{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        /// Outside input never panics the parser; what it accepts converts
        /// to a filter and back consistently, and what it refuses says where.
        #[test]
        fn any_json_is_parsed_or_refused_with_a_place(v in json()) {
            match Predicate::parse(&v) {
                Ok(p) => {
                    if let Some(f) = p.as_filter() {
                        prop_assert_eq!(Predicate::from_filter(&f).as_filter(), Some(f));
                    }
                }
                Err(e) => prop_assert!(e.at.starts_with('$'), "{}", e),
            }
        }
    }
}

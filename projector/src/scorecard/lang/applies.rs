//! Which entities a scorecard applies to (`applies_to`): a mapping of
//! catalog filter keys to a value or a list of values.

use super::compile::scalar_text;
use super::paths::get_key;
use super::syntax::Definition;
use serde_json::Value;

/// Which entities a scorecard applies to: every key must match one of its
/// values (no values: the key must be present). Keys and values as in the
/// catalog's `filter` parameter, compared without regard to case.
#[derive(Debug, Clone, Default)]
pub struct EntityMatch {
    pub conditions: Vec<(String, Vec<String>)>,
}

pub(super) fn compile_match(v: &Value) -> Result<EntityMatch, String> {
    let Value::Object(m) = v else {
        return Err("must be a mapping of filter keys to a value or a list of values".into());
    };
    let mut conditions = Vec::new();
    for (k, v) in m {
        let values = match v {
            Value::Null => vec![],
            Value::Array(items) => items.iter().map(scalar_text).collect::<Result<_, _>>()?,
            other => vec![scalar_text(other)?],
        };
        conditions.push((k.to_lowercase(), values));
    }
    Ok(EntityMatch { conditions })
}

impl Definition {
    /// Whether the scorecard applies to this entity.
    pub fn applies(&self, entity: &Value) -> bool {
        self.applies_to.matches(entity)
    }
}

impl EntityMatch {
    /// The kinds a `kind` condition allows (lower case), if there is one.
    pub fn kinds(&self) -> Option<Vec<String>> {
        self.conditions
            .iter()
            .find(|(k, values)| k == "kind" && !values.is_empty())
            .map(|(_, values)| values.clone())
    }

    pub fn matches(&self, entity: &Value) -> bool {
        self.conditions.iter().all(|(key, values)| {
            let mut found = Vec::new();
            filter_values(entity, key, &mut found);
            if values.is_empty() {
                !found.is_empty()
            } else {
                found.iter().any(|f| values.contains(f))
            }
        })
    }
}

/// The lower-cased values at a filter key (`kind`, `spec.type`,
/// `metadata.tags`, `relations.ownedby`), as the catalog's filter sees them.
fn filter_values(entity: &Value, key: &str, out: &mut Vec<String>) {
    if let Some(rel) = key.strip_prefix("relations.") {
        for r in entity
            .get("relations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if r.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(rel))
                && let Some(t) = r.get("targetRef").and_then(Value::as_str)
            {
                out.push(t.to_lowercase());
            }
        }
        return;
    }
    fn walk(v: &Value, parts: &[&str], out: &mut Vec<String>) {
        match (parts.split_first(), v) {
            (_, Value::Array(items)) => items.iter().for_each(|i| walk(i, parts, out)),
            (None, Value::String(s)) => out.push(s.to_lowercase()),
            (None, Value::Number(n)) => out.push(n.to_string()),
            (None, Value::Bool(b)) => out.push(b.to_string()),
            (None, _) => {}
            // Keys may hold dots (`metadata.annotations.github.com/x`):
            // try each split of the remaining parts.
            (Some(_), Value::Object(m)) => {
                for i in 1..=parts.len() {
                    if let Some(x) = get_key(m, &parts[..i].join(".")) {
                        walk(x, &parts[i..], out)
                    }
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = key.split('.').collect();
    walk(entity, &parts, out);
}

//! Which entities a scorecard applies to (`applies_to`): a mapping of
//! catalog filter keys to a value or a list of values, compiled into the
//! catalog's own [`EntityFilter`] and evaluated by it, so a card applies to
//! exactly the entities `filter=` selects with the same conditions (array
//! items, Backstage's `metadata.tags.java` form, null fields, relations).
//!
//! ```yaml
//! applies_to: {kind: component, spec.lifecycle: [production, experimental]}
//! ```
//!
//! is `filter=kind=component,spec.lifecycle=production,spec.lifecycle=experimental`.

use super::compile::scalar_text;
use super::syntax::Definition;
use crate::read::{Condition, EntityFilter, FilterClause};
use serde_json::Value;

/// Which entities a scorecard applies to: every key must match one of its
/// values (no values: the key must be present). Keys and values as in the
/// catalog's `filter` parameter, compared without regard to case; no
/// conditions: every entity.
#[derive(Debug, Clone, Default)]
pub struct EntityMatch {
    /// One clause of the catalog's filter; `None`: no conditions.
    filter: Option<EntityFilter>,
}

/// Compiles an `applies_to` mapping; an error names the key at fault.
pub(super) fn compile_match(v: &Value) -> Result<EntityMatch, String> {
    let Value::Object(m) = v else {
        return Err("must be a mapping of filter keys to a value or a list of values".into());
    };
    let mut all_of = Vec::new();
    for (k, v) in m {
        let key = k.trim();
        if key.is_empty() {
            return Err("a key is empty (expected a filter key such as kind or spec.type)".into());
        }
        let value = |v: &Value| scalar_text(v).map_err(|e| format!("`{key}`: {e}"));
        let values = match v {
            Value::Null => vec![],
            Value::Array(items) => items.iter().map(value).collect::<Result<_, _>>()?,
            other => vec![value(other)?],
        };
        all_of.push(Condition {
            key: key.to_lowercase(),
            values,
        });
    }
    Ok(EntityMatch::new(all_of))
}

impl Definition {
    /// Whether the scorecard applies to this entity.
    pub fn applies(&self, entity: &Value) -> bool {
        self.applies_to.matches(entity)
    }
}

impl EntityMatch {
    /// Every entity that passes all of the conditions.
    pub fn new(all_of: Vec<Condition>) -> Self {
        EntityMatch {
            filter: (!all_of.is_empty()).then(|| EntityFilter {
                any_of: vec![FilterClause { all_of }],
            }),
        }
    }

    /// The conditions: each key with its values (lower case; none: the key
    /// must be present).
    pub fn conditions(&self) -> &[Condition] {
        self.filter
            .as_ref()
            .map_or(&[][..], |f| &f.any_of[0].all_of)
    }

    /// The same conditions as the catalog's filter (`None`: no conditions).
    /// Whether a condition looks at relations (`relations.<type>`).
    pub fn reads_relations(&self) -> bool {
        self.conditions()
            .iter()
            .any(|c| c.key.starts_with("relations"))
    }

    pub fn filter(&self) -> Option<&EntityFilter> {
        self.filter.as_ref()
    }

    /// The kinds a `kind` condition allows (lower case), if there is one.
    pub fn kinds(&self) -> Option<Vec<String>> {
        self.conditions()
            .iter()
            .find(|c| c.key == "kind" && !c.values.is_empty())
            .map(|c| c.values.clone())
    }

    /// Whether `entity` (served JSON) passes, as the catalog's filter sees it.
    pub fn matches(&self, entity: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(entity))
    }
}

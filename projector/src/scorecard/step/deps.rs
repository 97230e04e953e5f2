//! The dependency index: what each evaluation read besides its entity
//! (`D` rows, with a `d` marker per dependency), and the results that read
//! a changed entity, grouping link or subject's facts.

use super::evaluate::Evaluator;
use super::subjects::{cloud_subject, github_subject};
use crate::keys;
use crate::scorecard::lang::{self, Context, FactProvider};
use crate::scorecard::records as rk;
use crate::store::{Store, StoreError, WriteSet};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// (scorecard, ref) of every result that read `dep`.
pub(super) fn dependents(
    store: &dyn Store,
    dep: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    // Most refs are read by no result (a user, where no card reads users):
    // the marker's absence says so without a seek through every level.
    if store.get(&rk::depended(dep))?.is_none() {
        return Ok(Vec::new());
    }
    let p = keys::prefix(rk::DEPENDENCY, &[dep.as_bytes()]);
    let mut out = Vec::new();
    store.scan(&p, None, &mut |k, _| {
        if let Ok(rest) = std::str::from_utf8(&k[p.len()..])
            && let Some((sc, r)) = rest.split_once('\0')
        {
            out.push((sc.to_string(), r.to_string()));
        }
        true
    })?;
    Ok(out)
}

/// What one evaluation read, for the dependency index.
pub(super) struct Reads<'e, 'a> {
    pub(super) ev: &'e mut Evaluator<'a>,
    pub(super) deps: BTreeSet<String>,
    /// Reads since each open [`Context::begin`], innermost last.
    pub(super) captures: Vec<Vec<String>>,
}

impl Reads<'_, '_> {
    pub(super) fn note(&mut self, dep: String) {
        for c in &mut self.captures {
            c.push(dep.clone());
        }
        self.deps.insert(dep);
    }
}

impl Context for Reads<'_, '_> {
    fn entity(&mut self, refkey: &str) -> Option<Arc<Value>> {
        self.note(format!("e:{refkey}"));
        self.ev.entity(refkey)
    }
    fn recall(&mut self, key: &lang::Recall) -> Option<lang::Remembered> {
        let (value, deps) = self.ev.memo.get(key)?.clone();
        for d in deps {
            self.note(d);
        }
        Some(value)
    }
    fn begin(&mut self) {
        self.captures.push(Vec::new());
    }
    fn remember(&mut self, key: lang::Recall, value: lang::Remembered) {
        let deps = self.captures.pop().unwrap_or_default();
        if self.ev.memo.len() > 100_000 {
            self.ev.memo.clear();
        }
        self.ev.memo.insert(key, (value, deps));
    }
    fn facts(
        &mut self,
        entity: &Value,
        provider: FactProvider,
    ) -> (Option<String>, Option<Arc<Value>>) {
        match provider {
            FactProvider::Github | FactProvider::Cloud => {
                let subject = match provider {
                    FactProvider::Github => github_subject(entity),
                    FactProvider::Cloud => cloud_subject(entity),
                };
                let Some(subject) = subject else {
                    return (None, None);
                };
                self.note(format!("f:{subject}"));
                let facts = self.ev.facts(&subject);
                (Some(subject), facts)
            }
        }
    }
}

/// Writes the `d` marker of every dependency the store holds, once: a
/// store written before the markers existed gets them before anything is
/// folded (a missing marker would hide dependents). Returns how many.
pub fn complete_depended_markers(store: &dyn Store) -> Result<usize, StoreError> {
    if store.get(rk::DEPENDED_COMPLETE)?.is_some() {
        return Ok(0);
    }
    let mut deps = std::collections::BTreeSet::new();
    store.scan(&[rk::DEPENDENCY], None, &mut |k, _| {
        let parts: Vec<&[u8]> = k[1..].splitn(2, |b| *b == 0).collect();
        if let Some(dep) = parts.first() {
            deps.insert(dep.to_vec());
        }
        true
    })?;
    let n = deps.len();
    let mut out: WriteSet = deps
        .into_iter()
        .map(|d| {
            let mut k = vec![rk::DEPENDED];
            k.extend_from_slice(&d);
            (k, Some(Vec::new()))
        })
        .collect();
    out.push((rk::DEPENDED_COMPLETE.to_vec(), Some(Vec::new())));
    store.write(out)?;
    Ok(n)
}

#[cfg(test)]
mod depended_markers {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn an_older_store_gets_its_markers_once_and_dependents_are_found() {
        let store = MemStore::new();
        store
            .write(vec![
                (
                    rk::dependency("e:group:default/a", "card", "component:default/x"),
                    Some(vec![]),
                ),
                (
                    rk::dependency("e:group:default/a", "card", "component:default/y"),
                    Some(vec![]),
                ),
                (
                    rk::dependency("f:github/acme/x", "card", "component:default/x"),
                    Some(vec![]),
                ),
            ])
            .unwrap();
        // Without markers, a lookup would miss what the store holds.
        assert!(dependents(&store, "e:group:default/a").unwrap().is_empty());
        assert_eq!(complete_depended_markers(&store).unwrap(), 2);
        assert_eq!(complete_depended_markers(&store).unwrap(), 0, "once");
        assert_eq!(
            dependents(&store, "e:group:default/a").unwrap(),
            [
                ("card".to_string(), "component:default/x".to_string()),
                ("card".to_string(), "component:default/y".to_string())
            ]
        );
        assert_eq!(dependents(&store, "f:github/acme/x").unwrap().len(), 1);
        assert!(
            dependents(&store, "e:user:default/nobody")
                .unwrap()
                .is_empty()
        );
    }
}

//! The dependency index: what each evaluation read besides its entity
//! (`D` rows, with a `d` marker per dependency), and the results that read
//! a changed entity, grouping link or subject's facts.
//!
//! A dependency is a typed [`Dependency`]; its text (`e:{ref}`,
//! `p:{ref}`, `f:{subject}`) is what results (`deps`) and the `D` and `d`
//! keys store, converted only here, so the stored formats are unchanged.

use super::evaluate::Evaluator;
use super::subjects::{cloud_subject, github_subject};
use crate::keys;
use crate::scorecard::lang::{self, Context, FactProvider};
use crate::scorecard::records as rk;
use crate::store::{Store, StoreError, WriteSet};
use proto::SubjectKey;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// Something an evaluation read besides its entity. Variants are in the
/// order of their stored prefixes, so sets of dependencies sort as their
/// stored text does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    /// The served JSON of another entity (a relation's target read by a
    /// `target` rule), by ref key: `e:{ref}`.
    Entity(String),
    /// The facts of a subject (the repository or cloud resource an entity
    /// is linked to): `f:{subject}`.
    Facts(SubjectKey),
    /// What results group by, read through an entity: a group's parent
    /// (`childOf`), a system's domain (`partOf`): `p:{ref}`. Re-evaluated
    /// only when that link changes, not whenever the entity does.
    Links(String),
}

impl Dependency {
    /// The stored text.
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// A stored text back; `None` for a prefix this build does not know.
    pub fn parse(text: &str) -> Option<Dependency> {
        let (prefix, rest) = text.split_once(':')?;
        match prefix {
            "e" => Some(Dependency::Entity(rest.to_string())),
            "f" => Some(Dependency::Facts(SubjectKey::new(rest))),
            "p" => Some(Dependency::Links(rest.to_string())),
            _ => None,
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dependency::Entity(r) => write!(f, "e:{r}"),
            Dependency::Facts(s) => write!(f, "f:{s}"),
            Dependency::Links(r) => write!(f, "p:{r}"),
        }
    }
}

/// The index rows that move when a result's dependencies (as stored in
/// [`rk::ResultRecord::deps`]) go from `old` to `new`: `D` rows removed and
/// added, and the `d` marker of each added one.
pub(super) fn index_changes(
    old: &[String],
    new: &[String],
    scorecard: &str,
    r: &str,
    out: &mut WriteSet,
) {
    let old: BTreeSet<&String> = old.iter().collect();
    let new: BTreeSet<&String> = new.iter().collect();
    for d in old.difference(&new) {
        out.push((rk::dependency(d, scorecard, r), None));
    }
    for d in new.difference(&old) {
        out.push((rk::dependency(d, scorecard, r), Some(Vec::new())));
        out.push((rk::depended(d), Some(Vec::new())));
    }
}

/// (scorecard, ref) of every result that read `dep`.
pub(super) fn dependents(
    store: &dyn Store,
    dep: &Dependency,
) -> Result<Vec<(String, String)>, StoreError> {
    let dep = dep.encode();
    // Most refs are read by no result (a user, where no card reads users):
    // the marker's absence says so without a seek through every level.
    if store.get(&rk::depended(&dep))?.is_none() {
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
    pub(super) deps: BTreeSet<Dependency>,
    /// Reads since each open [`Context::begin`], innermost last.
    pub(super) captures: Vec<Vec<Dependency>>,
}

impl Reads<'_, '_> {
    pub(super) fn note(&mut self, dep: Dependency) {
        for c in &mut self.captures {
            c.push(dep.clone());
        }
        self.deps.insert(dep);
    }
}

impl Context for Reads<'_, '_> {
    fn entity(&mut self, refkey: &str) -> Option<Arc<Value>> {
        self.note(Dependency::Entity(refkey.to_string()));
        self.ev.entity(refkey)
    }
    fn recall(&mut self, key: &lang::Recall) -> Option<lang::Remembered> {
        let (value, deps) = self.ev.caches.memo.get(key)?.clone();
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
        if self.ev.caches.memo.len() > 100_000 {
            self.ev.caches.memo.clear();
        }
        self.ev.caches.memo.insert(key, (value, deps));
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
                self.note(Dependency::Facts(SubjectKey::new(subject.as_str())));
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
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn entity(r: &str) -> Dependency {
        Dependency::Entity(r.to_string())
    }

    #[test]
    fn dependencies_keep_their_stored_text_and_key_bytes() {
        let cases = [
            (entity("group:default/a"), "e:group:default/a"),
            (
                Dependency::Facts(SubjectKey::new("github:github.com/acme/pay")),
                "f:github:github.com/acme/pay",
            ),
            (
                Dependency::Links("system:default/pay".into()),
                "p:system:default/pay",
            ),
        ];
        for (dep, text) in &cases {
            assert_eq!(dep.encode(), *text);
            assert_eq!(Dependency::parse(text).as_ref(), Some(dep));
        }
        assert_eq!(Dependency::parse("x:y"), None);
        assert_eq!(Dependency::parse("nothing"), None);
        // The keys as stores written before the type hold them.
        assert_eq!(
            rk::dependency(&cases[0].0.encode(), "card", "component:default/x"),
            b"De:group:default/a\0card\0component:default/x".to_vec()
        );
        assert_eq!(
            rk::depended(&cases[1].0.encode()),
            b"df:github:github.com/acme/pay".to_vec()
        );
    }

    #[test]
    fn dependencies_sort_as_their_text() {
        let mut deps = [
            Dependency::Links("group:default/a".into()),
            Dependency::Facts(SubjectKey::new("github:github.com/a/b")),
            entity("system:default/z"),
            entity("group:default/b"),
            Dependency::Links("a".into()),
            entity("group:default/b-2"),
            Dependency::Facts(SubjectKey::new("aws:x")),
        ];
        deps.sort();
        let texts: Vec<String> = deps.iter().map(Dependency::encode).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }

    #[test]
    fn index_changes_move_rows_and_mark_new_dependencies() {
        let mut out = WriteSet::new();
        let old = vec!["e:group:default/a".to_string(), "f:aws:x".to_string()];
        let new = vec!["f:aws:x".to_string(), "p:group:default/a".to_string()];
        index_changes(&old, &new, "card", "component:default/x", &mut out);
        assert_eq!(
            out,
            vec![
                (
                    rk::dependency("e:group:default/a", "card", "component:default/x"),
                    None
                ),
                (
                    rk::dependency("p:group:default/a", "card", "component:default/x"),
                    Some(vec![])
                ),
                (rk::depended("p:group:default/a"), Some(vec![])),
            ]
        );
    }

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
        let group = entity("group:default/a");
        // Without markers, a lookup would miss what the store holds.
        assert!(dependents(&store, &group).unwrap().is_empty());
        assert_eq!(complete_depended_markers(&store).unwrap(), 2);
        assert_eq!(complete_depended_markers(&store).unwrap(), 0, "once");
        assert_eq!(
            dependents(&store, &group).unwrap(),
            [
                ("card".to_string(), "component:default/x".to_string()),
                ("card".to_string(), "component:default/y".to_string())
            ]
        );
        let facts = Dependency::Facts(SubjectKey::new("github/acme/x"));
        assert_eq!(dependents(&store, &facts).unwrap().len(), 1);
        assert!(
            dependents(&store, &entity("user:default/nobody"))
                .unwrap()
                .is_empty()
        );
    }
}

//! The scorecard part of the fold.
//!
//! While a batch is applied, [`ScoreState`] records what changed besides
//! entities: facts, definitions, exemptions, deadlines that came due. In
//! [`crate::Fold::finish`], after the served entities are derived, it
//! re-evaluates exactly what those changes affect:
//!
//! - a changed or new definition: every entity, and its rollups are rebuilt;
//! - an entity whose served JSON changed (its fields or its relations):
//!   that entity under every scorecard;
//! - entities that read a changed entity (owner group and its parents,
//!   system, relation targets) or changed facts: found through the
//!   dependency index (`D`) each evaluation writes;
//! - an exemption or a deadline: that entity under that scorecard.
//!
//! Each evaluation runs as of the time of the event that caused it (a
//! deadline's own time for time-bound changes), so a replay gives the same
//! results. A result whose outcome changed is stored with a history record
//! naming the cause, and its rollup contributions move in the same batch.
//!
//! - [`batch`]: what a batch changed besides entities (facts, definitions,
//!   exemptions, deadlines come due);
//! - [`deps`]: the dependency index: what each result read, and the
//!   results that read a changed entity or facts;
//! - [`evaluate`]: one result computed from an entity and what it reads;
//!   every entity under a new definition;
//! - [`results`]: a changed result stored with its indexes, history and
//!   change-feed record;
//! - [`rollups`]: per-group aggregates moved by result changes;
//! - [`subjects`]: what an entity links to (its repository, its cloud
//!   resource, relation targets).

mod batch;
mod deps;
mod evaluate;
mod results;
mod rollups;
mod subjects;

pub(crate) use batch::{ScoreState, compiled};
pub use deps::Dependency;
pub use deps::complete_depended_markers;
use deps::dependents;
pub use evaluate::Parts;
use evaluate::{Evaluator, kind_filter, scan_entities};
pub use results::complete_history_ends;
pub use subjects::{cloud_subject, github_subject};

use super::lang::{self, Definition};
use super::records::{self as rk, Cause, CauseKind, DefinitionRecord, ResultRecord};
use crate::feed::FeedRecord;
use crate::fold::Table;
use crate::records as rec;
use crate::store::{Store, StoreError, WriteSet};
use chrono::{DateTime, Utc};
use proto::SubjectKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Why and as of when something must be evaluated.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub cause: Cause,
    pub at: DateTime<Utc>,
}

/// The served JSON of entities changed in this batch (`None`: deleted).
pub type Served = HashMap<String, Option<Arc<Value>>>;

impl ScoreState {
    /// Re-evaluates what this batch affects and adds every write to `out`
    /// (or, for whole scorecards with `parts`, writes them as it goes).
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        store: &dyn Store,
        served: &Served,
        causes: &crate::FastMap<String, Trigger>,
        links_changed: &BTreeSet<String>,
        out: &mut WriteSet,
        feed: &mut Vec<FeedRecord>,
        parts: Option<Parts<'_>>,
    ) -> Result<(), StoreError> {
        let defs: Vec<(DefinitionRecord, Arc<Definition>)> = self
            .all_definitions(store)?
            .into_iter()
            .filter_map(|d| match compiled(&d.file, &d.text) {
                Ok(c) => Some((d, c)),
                Err(errors) => {
                    // Only compiled text is ever in force; a build whose
                    // language changed may still refuse it.
                    tracing::error!(scorecard = %d.id, ?errors, "definition in force does not compile; skipped");
                    None
                }
            })
            .collect();
        let redefined = std::mem::take(&mut self.redefined);
        out.append(&mut self.fact_versions);
        // Written first: a result that sets the same deadline again wins.
        for k in self.taken_due.drain(..) {
            out.push((k, None));
        }
        let mut eval = Evaluator::new(store, served, &self.facts, &self.exemptions, out, feed);
        eval.parts = parts;
        let mut read = lang::RelationsRead::Nothing;
        for (_, def) in &defs {
            read.add(def);
        }
        eval.relations = read;
        // Scorecards that went away: their results, indexes and rollups go.
        for (id, trigger) in &redefined {
            if !defs.iter().any(|(d, _)| &d.id == id) {
                eval.drop_scorecard(id, trigger)?;
            }
        }
        for (record, def) in &defs {
            if let Some(trigger) = redefined.get(&record.id) {
                let started = std::time::Instant::now();
                let before = eval.evaluated;
                eval.reevaluate_all(def, trigger)?;
                let took = started.elapsed();
                metrics::histogram!(crate::metrics::SCORECARD_FULL_SECONDS)
                    .record(took.as_secs_f64());
                tracing::info!(
                    scorecard = %def.id, file = %record.file, evaluated = eval.evaluated - before,
                    seconds = took.as_secs_f64(), "scorecard evaluated for every entity"
                );
            }
        }
        // Everything else: only what this batch touched.
        let mut work: BTreeMap<(String, String), Trigger> = BTreeMap::new();
        let mut add = |sc: &str, r: &str, t: &Trigger| {
            if !redefined.contains_key(sc) {
                work.entry((sc.to_string(), r.to_string()))
                    .or_insert_with(|| t.clone());
            }
        };
        // Sorted, and direct changes before dependents, so the cause
        // recorded for an entity touched both ways does not depend on hash
        // order: replays give the same bytes.
        let mut changed: Vec<&String> = served.keys().collect();
        changed.sort();
        for r in &changed {
            let Some(t) = causes.get(*r) else { continue };
            for (d, _) in &defs {
                add(&d.id, r, t);
            }
        }
        for r in changed {
            let Some(t) = causes.get(r) else { continue };
            let related = Trigger {
                cause: Cause {
                    kind: CauseKind::Related,
                    event_id: t.cause.event_id,
                    detail: r.clone(),
                },
                at: t.at,
            };
            for (sc, dependent) in dependents(store, &Dependency::Entity(r.clone()))? {
                add(&sc, &dependent, &related);
            }
            // What results group by (a group's parent, a system's domain)
            // is read as a link of its own: a group that gains an owned
            // entity does not re-evaluate everything below it.
            if links_changed.contains(r) {
                for (sc, dependent) in dependents(store, &Dependency::Links(r.clone()))? {
                    add(&sc, &dependent, &related);
                }
            }
        }
        for (subject, t) in &self.changed_facts {
            for (sc, dependent) in
                dependents(store, &Dependency::Facts(SubjectKey::new(subject.as_str())))?
            {
                add(&sc, &dependent, t);
            }
        }
        for ((sc, r), t) in &self.targeted {
            add(sc, r, t);
        }
        let by_id: HashMap<&str, &Arc<Definition>> =
            defs.iter().map(|(d, c)| (d.id.as_str(), c)).collect();
        for ((sc, r), t) in work {
            let Some(def) = by_id.get(sc.as_str()) else {
                continue;
            };
            let entity = eval.subject(&r);
            let old = ResultRecord::read(store, &rk::result(&sc, &r))?;
            let new = eval.evaluate(def, &r, entity.as_deref(), &t)?;
            eval.store_result(def, &r, old, new, &t, true)?;
        }
        eval.flush_rollups(&redefined)?;
        let ends = eval.history_end_writes()?;
        eval.out.extend(ends);
        metrics::counter!(crate::metrics::SCORECARD_EVALUATIONS).increment(eval.evaluated);
        metrics::counter!(crate::metrics::SCORECARD_CHANGES).increment(eval.changed);
        self.facts.drain_into(out);
        self.sets.drain_into(out);
        self.definitions.drain_into(out);
        self.exemptions.drain_into(out);
        self.exemption_ids.drain_into(out);
        Ok(())
    }
}

/// Evaluates `def` for every entity in the store as of `now` and hands
/// each result to `visit`; writes nothing (a dry run).
pub(crate) fn evaluate_catalog(
    store: &dyn Store,
    def: &Definition,
    now: DateTime<Utc>,
    visit: &mut dyn FnMut(&str, ResultRecord),
) -> Result<(), StoreError> {
    let served = Served::new();
    let facts = Table::new(rk::FACTS);
    let exemptions = Table::new(rk::EXEMPTIONS);
    let mut out = WriteSet::new();
    let mut feed = Vec::new();
    let mut eval = Evaluator::new(store, &served, &facts, &exemptions, &mut out, &mut feed);
    let trigger = Trigger {
        cause: Cause {
            kind: CauseKind::Definition,
            event_id: None,
            detail: "dry run".into(),
        },
        at: now,
    };
    let wanted = kind_filter(def);
    scan_entities(store, &wanted, &mut |r, body| {
        let Ok(entity) = serde_json::from_slice::<Value>(&body) else {
            return Ok(());
        };
        if let Some(result) = eval.evaluate(def, &r, Some(&entity), &trigger)? {
            visit(&r, result);
        }
        Ok(())
    })?;
    Ok(())
}

pub(super) fn get<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match store.get(key)? {
        Some(b) => Ok(Some(rec::decode(key, &b)?)),
        None => Ok(None),
    }
}

//! What one batch changed besides entities: facts, definition sets,
//! exemptions, and deadlines that came due, each with the trigger (cause
//! and time) its re-evaluation runs with.

use super::Trigger;
use crate::fold::Table;
use crate::scorecard::lang::{self, Definition};
use crate::scorecard::records::{
    self as rk, Cause, CauseKind, DefinitionFile, DefinitionRecord, DefinitionSet, ExemptionRecord,
    ExemptionSet, FactRecord, InForce, Revocation,
};
use crate::store::{Store, StoreError, WriteSet};
use chrono::{DateTime, Utc};
use proto::{FactEvent, FactState, ScorecardChange, ScorecardEvent};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Scorecard state touched by one batch.
pub(crate) struct ScoreState {
    pub(super) facts: Table<FactRecord>,
    pub(super) sets: Table<DefinitionSet>,
    pub(super) definitions: Table<DefinitionRecord>,
    pub(super) exemptions: Table<ExemptionSet>,
    pub(super) exemption_ids: Table<(String, String)>,
    pub(super) changed_facts: BTreeMap<String, Trigger>,
    /// Versions of facts that changed in this batch, for history.
    pub(super) fact_versions: WriteSet,
    pub(super) targeted: BTreeMap<(String, String), Trigger>,
    pub(super) redefined: BTreeMap<String, Trigger>,
    /// Deadlines taken up by [`ScoreState::due`]: deleted unless rewritten.
    pub(super) taken_due: Vec<Vec<u8>>,
}

/// Compiled definitions by text hash: compiling is pure, so it is cached.
pub(crate) fn compiled(
    file: &str,
    text: &str,
) -> Result<Arc<Definition>, Vec<lang::DefinitionError>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Definition>>>> = OnceLock::new();
    let sha = sha(text);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(d) = cache.lock().expect("lock").get(&sha) {
        return Ok(d.clone());
    }
    let def = Arc::new(lang::compile(file, text)?);
    let mut c = cache.lock().expect("lock");
    if c.len() > 256 {
        c.clear();
    }
    c.insert(sha, def.clone());
    Ok(def)
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl ScoreState {
    pub fn new() -> Self {
        ScoreState {
            facts: Table::new(rk::FACTS),
            sets: Table::new(rk::DEFINITION_SET),
            definitions: Table::new(rk::DEFINITION),
            exemptions: Table::new(rk::EXEMPTIONS),
            exemption_ids: Table::new(rk::EXEMPTION_ID),
            changed_facts: BTreeMap::new(),
            fact_versions: Vec::new(),
            targeted: BTreeMap::new(),
            redefined: BTreeMap::new(),
            taken_due: Vec::new(),
        }
    }

    /// Stores what a fact event says now. Returns whether it changed.
    pub fn apply_facts(&mut self, store: &dyn Store, ev: &FactEvent) -> Result<bool, StoreError> {
        let subject = ev.subject.as_str();
        let key = rk::facts(subject);
        let new = match &ev.state {
            FactState::Present { facts } => {
                Some(serde_json::to_value(facts).expect("facts serialise"))
            }
            FactState::Removed => None,
        };
        let old = self.facts.get(store, key.clone())?;
        if old.map(|o| &o.facts) == new.as_ref() {
            return Ok(false);
        }
        let version = new
            .as_ref()
            .map(|f| serde_json::to_vec(f).expect("facts serialise"));
        self.fact_versions.push((
            rk::fact_version(subject, ev.observed_at.timestamp_millis()),
            Some(crate::records::encode_version(version.as_deref())),
        ));
        self.facts.set(
            key,
            new.map(|facts| FactRecord {
                observed_at: ev.observed_at,
                event_id: ev.event_id,
                source: ev.source.to_string(),
                facts,
            }),
        );
        self.changed_facts.insert(
            subject.to_string(),
            Trigger {
                cause: Cause {
                    kind: CauseKind::Fact,
                    event_id: Some(ev.event_id),
                    detail: subject.to_string(),
                },
                at: ev.observed_at,
            },
        );
        Ok(true)
    }

    /// Applies a definition set or an exemption. Returns whether it changed
    /// anything.
    pub fn apply_scorecard(
        &mut self,
        store: &dyn Store,
        ev: &ScorecardEvent,
    ) -> Result<bool, StoreError> {
        match &ev.change {
            ScorecardChange::DefinitionsPublished { files } => self.publish(store, ev, files),
            ScorecardChange::ExemptionGranted { exemption } => {
                let r = exemption.entity.key();
                let key = rk::exemptions(&exemption.scorecard, &r);
                let slot = self.exemptions.get_mut(store, key)?;
                let set = slot.get_or_insert_with(ExemptionSet::default);
                if set.items.iter().any(|x| x.exemption.id == exemption.id) {
                    return Ok(false);
                }
                set.items.push(ExemptionRecord {
                    exemption: exemption.clone(),
                    granted_at: ev.at,
                    event_id: ev.event_id,
                    revoked: None,
                });
                self.exemption_ids.set(
                    rk::exemption_id(&exemption.id),
                    Some((exemption.scorecard.clone(), r.clone())),
                );
                self.target(
                    &exemption.scorecard,
                    &r,
                    ev,
                    format!(
                        "exemption {} of `{}` granted by {}: {}",
                        exemption.id, exemption.check, exemption.author, exemption.reason
                    ),
                );
                Ok(true)
            }
            ScorecardChange::ExemptionRevoked { id, author, reason } => {
                let Some((sc, r)) = self
                    .exemption_ids
                    .get(store, rk::exemption_id(id))?
                    .cloned()
                else {
                    tracing::warn!(exemption = %id, "revocation of an unknown exemption; ignored");
                    return Ok(false);
                };
                let slot = self.exemptions.get_mut(store, rk::exemptions(&sc, &r))?;
                let Some(item) = slot
                    .as_mut()
                    .and_then(|s| s.items.iter_mut().find(|x| x.exemption.id == *id))
                else {
                    return Ok(false);
                };
                if item.revoked.is_some() {
                    return Ok(false);
                }
                item.revoked = Some(Revocation {
                    at: ev.at,
                    author: author.clone(),
                    reason: reason.clone(),
                    event_id: ev.event_id,
                });
                self.target(&sc, &r, ev, format!("exemption {id} revoked by {author}"));
                Ok(true)
            }
        }
    }

    pub(super) fn target(&mut self, sc: &str, r: &str, ev: &ScorecardEvent, detail: String) {
        self.targeted.insert(
            (sc.to_string(), r.to_string()),
            Trigger {
                cause: Cause {
                    kind: CauseKind::Exemption,
                    event_id: Some(ev.event_id),
                    detail,
                },
                at: ev.at,
            },
        );
    }

    pub(super) fn publish(
        &mut self,
        store: &dyn Store,
        ev: &ScorecardEvent,
        files: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let source = ev.source.as_str().to_string();
        let set_key = rk::definition_set(&source);
        let old = self
            .sets
            .get(store, set_key.clone())?
            .cloned()
            .unwrap_or_default();
        // Ids defined by other sources keep them (first come, first kept).
        let taken: BTreeMap<String, String> = self
            .all_definitions(store)?
            .into_iter()
            .filter(|d| d.source != source)
            .map(|d| (d.id.clone(), format!("{}:{}", d.source, d.file)))
            .collect();
        let mut new = DefinitionSet::default();
        let mut ids: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (file, text) in files {
            let published_sha = sha(text);
            let before = old.files.get(file);
            let mut entry = DefinitionFile {
                published_sha,
                in_force: before.and_then(|b| b.in_force.clone()),
                errors: vec![],
                rejected_at: None,
            };
            let reject = |entry: &mut DefinitionFile, errors: Vec<lang::DefinitionError>| {
                metrics::counter!(crate::metrics::SCORECARD_REJECTED).increment(1);
                for e in &errors {
                    tracing::warn!(source = %source, error = %e, "scorecard definition rejected; the previous one stays in force");
                }
                entry.rejected_at = Some(
                    before
                        .filter(|b| b.published_sha == entry.published_sha)
                        .and_then(|b| b.rejected_at)
                        .unwrap_or(ev.at),
                );
                entry.errors = errors;
            };
            match compiled(file, text) {
                Ok(def) => {
                    let clash = taken
                        .get(&def.id)
                        .cloned()
                        .or_else(|| ids.get(&def.id).map(|(f, _)| format!("{source}:{f}")));
                    match clash {
                        Some(other) => reject(
                            &mut entry,
                            vec![lang::DefinitionError {
                                file: file.clone(),
                                check: None,
                                reason: format!(
                                    "scorecard id `{}` is already defined by {other}",
                                    def.id
                                ),
                            }],
                        ),
                        None => {
                            entry.in_force = Some(InForce {
                                id: def.id.clone(),
                                text: text.clone(),
                            })
                        }
                    }
                }
                Err(errors) => reject(&mut entry, errors),
            }
            if let Some(f) = &entry.in_force
                && !ids.contains_key(&f.id)
            {
                ids.insert(f.id.clone(), (file.clone(), f.text.clone()));
            }
            new.files.insert(file.clone(), entry);
        }
        let mut changed = new != old;
        if changed {
            self.sets
                .set(set_key, (!new.files.is_empty()).then_some(new));
        }
        let cause = |detail: String| Trigger {
            cause: Cause {
                kind: CauseKind::Definition,
                event_id: Some(ev.event_id),
                detail,
            },
            at: ev.at,
        };
        for old_def in self.all_definitions(store)? {
            if old_def.source == source && !ids.contains_key(&old_def.id) {
                self.definitions.set(rk::definition(&old_def.id), None);
                self.redefined.insert(
                    old_def.id.clone(),
                    cause(format!("{} removed", old_def.file)),
                );
                changed = true;
            }
        }
        for (id, (file, text)) in ids {
            let key = rk::definition(&id);
            let current = self.definitions.get(store, key.clone())?;
            if current.is_some_and(|c| c.text == text && c.file == file) {
                continue;
            }
            self.definitions.set(
                key,
                Some(DefinitionRecord {
                    id: id.clone(),
                    source: source.clone(),
                    file: file.clone(),
                    text,
                    updated_at: ev.at,
                    event_id: ev.event_id,
                }),
            );
            self.redefined
                .insert(id, cause(format!("{file} published")));
            changed = true;
        }
        Ok(changed)
    }

    /// Every definition in force, this batch's changes included.
    /// The relation types the scorecards in force (in the store or this
    /// batch) read of an entity.
    pub fn relations_read(&mut self, store: &dyn Store) -> Result<lang::RelationsRead, StoreError> {
        let mut read = lang::RelationsRead::Nothing;
        for d in self.all_definitions(store)? {
            if let Ok(def) = compiled(&d.file, &d.text) {
                read.add(&def);
            }
        }
        Ok(read)
    }

    pub(super) fn all_definitions(
        &mut self,
        store: &dyn Store,
    ) -> Result<Vec<DefinitionRecord>, StoreError> {
        let mut ids = BTreeSet::new();
        store.scan(&[rk::DEFINITION], None, &mut |k, _| {
            ids.insert(k[1..].to_vec());
            true
        })?;
        for k in self.definitions.keys() {
            ids.insert(k[1..].to_vec());
        }
        let mut out = Vec::new();
        for id in ids {
            let mut k = vec![rk::DEFINITION];
            k.extend_from_slice(&id);
            if let Some(d) = self.definitions.get(store, k)? {
                out.push(d.clone());
            }
        }
        Ok(out)
    }

    /// Marks every result whose deadline is at or before `now` for
    /// evaluation as of that deadline.
    pub fn due(&mut self, store: &dyn Store, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut found = Vec::new();
        let end = now.timestamp_millis();
        store.scan(&[rk::DUE], None, &mut |k, _| match rk::parse_due(k) {
            Some((ms, sc, r)) if ms <= end => {
                self.taken_due.push(k.to_vec());
                found.push((ms, sc, r));
                true
            }
            _ => false,
        })?;
        let n = found.len();
        for (ms, sc, r) in found {
            let at = DateTime::from_timestamp_millis(ms).unwrap_or(now);
            self.targeted.insert(
                (sc.clone(), r.clone()),
                Trigger {
                    cause: Cause {
                        kind: CauseKind::Time,
                        event_id: None,
                        detail: format!(
                            "a time-bound rule or exemption came due at {}",
                            at.to_rfc3339()
                        ),
                    },
                    at,
                },
            );
        }
        Ok(n)
    }
}

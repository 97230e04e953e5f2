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

use super::lang::{self, Context, Definition, FactProvider};
use super::records::{
    self as rk, Cause, CauseKind, CheckResult, CheckStatus, DefinitionFile, DefinitionRecord,
    DefinitionSet, ExemptionRecord, ExemptionSet, FactRecord, InForce, ResultChange, ResultRecord,
    Revocation, Rollup,
};
use crate::feed::{FeedKind, FeedRecord, ScorecardOutcome};
use crate::fold::{Table, derived_id};
use crate::keys;
use crate::records as rec;
use crate::store::{Store, StoreError, WriteSet};
use chrono::{DateTime, Utc};
use proto::{FactEvent, FactState, ScorecardChange, ScorecardEvent};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Why and as of when something must be evaluated.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub cause: Cause,
    pub at: DateTime<Utc>,
}

/// The served JSON of entities changed in this batch (`None`: deleted).
pub type Served = HashMap<String, Option<Arc<Value>>>;

/// Scorecard state touched by one batch.
pub(crate) struct ScoreState {
    facts: Table<FactRecord>,
    sets: Table<DefinitionSet>,
    definitions: Table<DefinitionRecord>,
    exemptions: Table<ExemptionSet>,
    exemption_ids: Table<(String, String)>,
    changed_facts: BTreeMap<String, Trigger>,
    /// Versions of facts that changed in this batch, for history.
    fact_versions: WriteSet,
    targeted: BTreeMap<(String, String), Trigger>,
    redefined: BTreeMap<String, Trigger>,
    /// Deadlines taken up by [`ScoreState::due`]: deleted unless rewritten.
    taken_due: Vec<Vec<u8>>,
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

    fn target(&mut self, sc: &str, r: &str, ev: &ScorecardEvent, detail: String) {
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

    fn publish(
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
    fn all_definitions(&mut self, store: &dyn Store) -> Result<Vec<DefinitionRecord>, StoreError> {
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

    /// Re-evaluates what this batch affects and adds every write to `out`.
    pub fn finish(
        &mut self,
        store: &dyn Store,
        served: &Served,
        causes: &HashMap<String, Trigger>,
        links_changed: &BTreeSet<String>,
        out: &mut WriteSet,
        feed: &mut Vec<FeedRecord>,
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
        let mut eval = Evaluator::new(
            store,
            served,
            &mut self.facts,
            &mut self.exemptions,
            out,
            feed,
        );
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
            for (sc, dependent) in dependents(store, &format!("e:{r}"))? {
                add(&sc, &dependent, &related);
            }
            // What results group by (a group's parent, a system's domain)
            // is read as a link of its own: a group that gains an owned
            // entity does not re-evaluate everything below it.
            if links_changed.contains(r) {
                for (sc, dependent) in dependents(store, &format!("p:{r}"))? {
                    add(&sc, &dependent, &related);
                }
            }
        }
        for (subject, t) in &self.changed_facts {
            for (sc, dependent) in dependents(store, &format!("f:{subject}"))? {
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
            let old = get::<ResultRecord>(store, &rk::result(&sc, &r))?;
            let new = eval.evaluate(def, &r, entity.as_deref(), &t)?;
            eval.store_result(def, &r, old, new, &t, true)?;
        }
        eval.flush_rollups(&redefined)?;
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
    let mut facts = Table::new(rk::FACTS);
    let mut exemptions = Table::new(rk::EXEMPTIONS);
    let mut out = WriteSet::new();
    let mut feed = Vec::new();
    let mut eval = Evaluator::new(
        store,
        &served,
        &mut facts,
        &mut exemptions,
        &mut out,
        &mut feed,
    );
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

fn get<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    match store.get(key)? {
        Some(b) => Ok(Some(rec::decode(key, &b)?)),
        None => Ok(None),
    }
}

/// (scorecard, ref) of every result that read `dep`.
fn dependents(store: &dyn Store, dep: &str) -> Result<Vec<(String, String)>, StoreError> {
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

/// Whether a ref may be of a kind the definition applies to: a `kind`
/// condition is answered by the ref key itself, so entities of other kinds
/// are not even read.
fn kind_filter(def: &Definition) -> impl Fn(&str) -> bool + use<> {
    let kinds = def.applies_to.kinds();
    move |r: &str| {
        let kind = r.split(':').next();
        kinds
            .as_ref()
            .is_none_or(|ks| ks.iter().any(|k| kind == Some(k.as_str())))
    }
}

/// Visits every stored entity that `wanted` keeps, in ref order, reading
/// the store in chunks (a scan merges level-0 files once; point lookups
/// would probe each of them).
fn scan_entities(
    store: &dyn Store,
    wanted: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(String, Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut from: Option<Vec<u8>> = None;
    loop {
        let mut chunk: Vec<(String, Vec<u8>)> = Vec::new();
        let mut last = None;
        store.scan(&[keys::ENTITY], from.as_deref(), &mut |k, v| {
            last = Some(k.to_vec());
            if let Ok(r) = std::str::from_utf8(&k[1..])
                && wanted(r)
            {
                chunk.push((r.to_string(), v.to_vec()));
            }
            chunk.len() < 2048
        })?;
        let Some(mut next) = last else {
            return Ok(());
        };
        next.push(0);
        from = Some(next);
        for (r, body) in chunk {
            visit(r, body)?;
        }
    }
}

/// The subject of the GitHub repository an entity lives in: from
/// `github.com/project-slug`, else from its source or managed-by location.
pub fn github_subject(entity: &Value) -> Option<String> {
    let ann = entity.get("metadata")?.get("annotations")?;
    let text = |k: &str| ann.get(k).and_then(Value::as_str);
    let from_url = |loc: &str| -> Option<(String, String, String)> {
        let url = loc.strip_prefix("url:").unwrap_or(loc);
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let mut parts = rest.split('/');
        let host = parts.next()?;
        let owner = parts.next()?;
        let repo = parts.next()?;
        (!owner.is_empty() && !repo.is_empty()).then(|| {
            (
                host.to_string(),
                owner.to_string(),
                repo.trim_end_matches(".git").to_string(),
            )
        })
    };
    let located = text("backstage.io/source-location")
        .and_then(from_url)
        .or_else(|| text("backstage.io/managed-by-location").and_then(from_url));
    if let Some(slug) = text("github.com/project-slug")
        && let Some((owner, repo)) = slug.trim().split_once('/')
    {
        let host = located
            .map(|(h, _, _)| h)
            .unwrap_or_else(|| "github.com".into());
        return Some(proto::SubjectKey::github_repository(&host, owner, repo).to_string());
    }
    let (host, owner, repo) = located?;
    (host.contains("github"))
        .then(|| proto::SubjectKey::github_repository(&host, &owner, &repo).to_string())
}

/// The subject of the cloud resource an entity was made of: a cloud
/// source's location key (`aws:`, `gcp:`, `azure:`) is the key of the
/// resource's facts too.
pub fn cloud_subject(entity: &Value) -> Option<String> {
    let location = entity
        .get("metadata")?
        .get("annotations")?
        .get("backstage.io/managed-by-location")?
        .as_str()?;
    ["aws:", "gcp:", "azure:"]
        .iter()
        .any(|p| location.starts_with(p))
        .then(|| location.to_string())
}

/// Relation targets of one type in served JSON, as ref keys.
fn targets<'v>(entity: &'v Value, relation: &'v str) -> impl Iterator<Item = String> + 'v {
    entity
        .get("relations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |r| r.get("type").and_then(Value::as_str) == Some(relation))
        .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
}

fn kind_of(r: &str) -> &str {
    r.split(':').next().unwrap_or("")
}

struct Evaluator<'a> {
    store: &'a dyn Store,
    served: &'a Served,
    facts: &'a mut Table<FactRecord>,
    exemptions: &'a mut Table<ExemptionSet>,
    entities: HashMap<String, Option<Arc<Value>>>,
    /// The facts last read (several fact rules of one entity read them).
    last_facts: Option<(String, Option<Arc<Value>>)>,
    /// Outcomes of rules on related entities, with what they read.
    memo: HashMap<lang::Recall, (lang::Remembered, Vec<String>)>,
    /// The parent group of a group, the domain of a system (their
    /// relation lists hold every owned entity or part: read them once).
    parent: HashMap<String, Option<String>>,
    domain: HashMap<String, Option<String>>,
    rollups: HashMap<(String, String, String), Rollup>,
    /// A scorecard's stored exemptions, read at once for a full evaluation.
    known_exemptions: Option<HashMap<String, ExemptionSet>>,
    /// Results evaluated, and results whose outcome changed.
    evaluated: u64,
    changed: u64,
    out: &'a mut WriteSet,
    /// Outcome changes, for the change feed.
    feed: &'a mut Vec<FeedRecord>,
}

/// What one evaluation read, for the dependency index.
struct Reads<'e, 'a> {
    ev: &'e mut Evaluator<'a>,
    deps: BTreeSet<String>,
    /// Reads since each open [`Context::begin`], innermost last.
    captures: Vec<Vec<String>>,
}

impl Reads<'_, '_> {
    fn note(&mut self, dep: String) {
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

impl<'a> Evaluator<'a> {
    fn new(
        store: &'a dyn Store,
        served: &'a Served,
        facts: &'a mut Table<FactRecord>,
        exemptions: &'a mut Table<ExemptionSet>,
        out: &'a mut WriteSet,
        feed: &'a mut Vec<FeedRecord>,
    ) -> Self {
        Evaluator {
            store,
            served,
            facts,
            exemptions,
            entities: HashMap::new(),
            last_facts: None,
            memo: HashMap::new(),
            parent: HashMap::new(),
            domain: HashMap::new(),
            rollups: HashMap::new(),
            known_exemptions: None,
            evaluated: 0,
            changed: 0,
            out,
            feed,
        }
    }
}

impl Evaluator<'_> {
    /// An entity as this batch leaves it, not cached: what is evaluated is
    /// read once; [`Evaluator::entity`] caches the owners, systems and
    /// targets many entities read.
    fn subject(&self, r: &str) -> Option<Arc<Value>> {
        if let Some(v) = self.served.get(r) {
            return v.clone();
        }
        self.store
            .get(&keys::entity(r))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(Arc::new)
    }

    fn entity(&mut self, r: &str) -> Option<Arc<Value>> {
        if let Some(v) = self.served.get(r) {
            return v.clone();
        }
        if let Some(v) = self.entities.get(r) {
            return v.clone();
        }
        let v = self.subject(r);
        if self.entities.len() > 10_000 {
            self.entities.clear();
        }
        self.entities.insert(r.to_string(), v.clone());
        v
    }

    fn facts(&mut self, subject: &str) -> Option<Arc<Value>> {
        if let Some((s, v)) = &self.last_facts
            && s == subject
        {
            return v.clone();
        }
        let v = match self.facts.cached(&rk::facts(subject)) {
            // Changed in this batch.
            Some(row) => row.as_ref().map(|f| Arc::new(f.facts.clone())),
            None => get::<FactRecord>(self.store, &rk::facts(subject))
                .ok()
                .flatten()
                .map(|f| Arc::new(f.facts)),
        };
        self.last_facts = Some((subject.to_string(), v.clone()));
        v
    }

    /// The result of `def` for entity `r` as of the trigger's time.
    fn evaluate(
        &mut self,
        def: &Definition,
        r: &str,
        entity: Option<&Value>,
        t: &Trigger,
    ) -> Result<Option<ResultRecord>, StoreError> {
        let Some(entity) = entity else {
            return Ok(None);
        };
        if !def.applies(entity) {
            return Ok(None);
        }
        self.evaluated += 1;
        let now = t.at;
        let mut reads = Reads {
            ev: self,
            deps: BTreeSet::new(),
            captures: Vec::new(),
        };
        let evaluation = def.evaluate(entity, &mut reads, now);
        // Owner and its parents, system and domain: what rollups group by.
        let owner = targets(entity, "ownedBy").min();
        let mut groups = Vec::new();
        if let Some(owner) = owner {
            let mut next = Some(owner);
            while let Some(g) = next.take() {
                if groups.contains(&g) || groups.len() >= 32 {
                    break;
                }
                groups.push(g.clone());
                if kind_of(&g) == "group" {
                    reads.note(format!("p:{g}"));
                    next = match reads.ev.parent.get(&g) {
                        Some(p) => p.clone(),
                        None => {
                            let p = reads
                                .ev
                                .entity(&g)
                                .and_then(|ge| targets(&ge, "childOf").min());
                            reads.ev.parent.insert(g.clone(), p.clone());
                            p
                        }
                    };
                }
            }
        }
        let own_kind = entity
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let system = if own_kind == "system" {
            None
        } else {
            targets(entity, "partOf")
                .filter(|t| kind_of(t) == "system")
                .min()
        };
        let domain = if own_kind == "system" {
            targets(entity, "partOf")
                .filter(|t| kind_of(t) == "domain")
                .min()
        } else {
            match &system {
                Some(s) => {
                    reads.note(format!("p:{s}"));
                    match reads.ev.domain.get(s) {
                        Some(d) => d.clone(),
                        None => {
                            let d = reads.ev.entity(s).and_then(|se| {
                                targets(&se, "partOf")
                                    .filter(|t| kind_of(t) == "domain")
                                    .min()
                            });
                            reads.ev.domain.insert(s.clone(), d.clone());
                            d
                        }
                    }
                }
                None => None,
            }
        };
        let deps: Vec<String> = reads.deps.into_iter().collect();
        // Exemptions turn failing checks into exempt ones until they end.
        let key = rk::exemptions(&def.id, r);
        let exemptions = match (self.exemptions.cached(&key), &self.known_exemptions) {
            (Some(set), _) => set.clone().unwrap_or_default(),
            (None, Some(known)) => known.get(r).cloned().unwrap_or_default(),
            (None, None) => self
                .exemptions
                .get(self.store, key)?
                .cloned()
                .unwrap_or_default(),
        };
        let mut next_change = evaluation.next_change;
        let mut checks = Vec::with_capacity(def.checks.len());
        for (check, outcome) in def.checks.iter().zip(evaluation.checks) {
            let mut result = CheckResult {
                status: if outcome.pass {
                    CheckStatus::Pass
                } else {
                    CheckStatus::Fail
                },
                value: outcome.value,
                reason: outcome.reason,
                exemption: None,
            };
            if !outcome.pass
                && let Some(x) = exemptions
                    .items
                    .iter()
                    .filter(|x| x.exemption.check == check.id && x.active(now))
                    .min_by_key(|x| x.exemption.id)
            {
                result.status = CheckStatus::Exempt;
                result.exemption = Some(x.exemption.id);
                if let Some(e) = x.exemption.expires_at {
                    next_change = Some(next_change.map_or(e, |n| n.min(e)));
                }
            }
            checks.push(result);
        }
        let passing = |c: &CheckResult| c.status != CheckStatus::Fail;
        let mut level = None;
        for l in 0..def.levels.len() {
            let ok = def
                .checks
                .iter()
                .zip(&checks)
                .filter(|(c, _)| c.level <= l)
                .all(|(_, r)| passing(r));
            if !ok {
                break;
            }
            level = Some(l);
        }
        let total: u64 = def.checks.iter().map(|c| u64::from(c.weight)).sum();
        let earned: u64 = def
            .checks
            .iter()
            .zip(&checks)
            .filter(|(_, r)| passing(r))
            .map(|(c, _)| u64::from(c.weight))
            .sum();
        // No checks: nothing to fail.
        let score = (earned * 100 + total / 2)
            .checked_div(total)
            .map_or(100, |s| s as u32);
        // Deadlines are kept in whole milliseconds, rounded up, so that
        // evaluating at the deadline sees the change.
        let next_change = next_change.map(|t| {
            let ms = t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0);
            DateTime::from_timestamp_millis(ms).unwrap_or(t)
        });
        Ok(Some(ResultRecord {
            level,
            score,
            checks,
            groups,
            system,
            domain,
            deps,
            next_change,
        }))
    }

    /// Writes a result (and its indexes, history and rollup deltas) if it
    /// differs from `old`. `counted`: whether `old` is in the rollups.
    fn store_result(
        &mut self,
        def: &Definition,
        r: &str,
        old: Option<ResultRecord>,
        new: Option<ResultRecord>,
        t: &Trigger,
        counted: bool,
    ) -> Result<(), StoreError> {
        let sc = def.id.as_str();
        if old.is_none() && new.is_none() {
            return Ok(());
        }
        let same = match (&old, &new) {
            (Some(o), Some(n)) => o.same_outcome(n),
            _ => false,
        };
        if let (true, Some(o), Some(n)) = (same, &old, &new)
            && o == n
        {
            if !counted {
                self.rollup_add(def, n, 1);
            }
            return Ok(());
        }
        let old_deps: BTreeSet<&String> = old.iter().flat_map(|o| &o.deps).collect();
        let new_deps: BTreeSet<&String> = new.iter().flat_map(|n| &n.deps).collect();
        for d in old_deps.difference(&new_deps) {
            self.out.push((rk::dependency(d, sc, r), None));
        }
        for d in new_deps.difference(&old_deps) {
            self.out.push((rk::dependency(d, sc, r), Some(Vec::new())));
            self.out.push((rk::depended(d), Some(Vec::new())));
        }
        let old_level = old.as_ref().map(|o| o.level);
        let new_level = new.as_ref().map(|n| n.level);
        if old_level != new_level {
            if let Some(l) = old_level {
                self.out.push((rk::by_level(sc, l, r), None));
            }
            if let Some(l) = new_level {
                self.out.push((rk::by_level(sc, l, r), Some(Vec::new())));
            }
        }
        let old_due = old.as_ref().and_then(|o| o.next_change);
        let new_due = new.as_ref().and_then(|n| n.next_change);
        if old_due != new_due {
            if let Some(d) = old_due {
                self.out.push((rk::due(d.timestamp_millis(), sc, r), None));
            }
            if let Some(d) = new_due {
                self.out
                    .push((rk::due(d.timestamp_millis(), sc, r), Some(Vec::new())));
            }
        }
        if let Some(o) = &old
            && counted
        {
            self.rollup_add(def, o, -1);
        }
        if let Some(n) = &new {
            self.rollup_add(def, n, 1);
        }
        if !same {
            self.changed += 1;
            let level_name = |x: &Option<ResultRecord>| {
                x.as_ref()
                    .and_then(|x| x.level)
                    .and_then(|l| def.levels.get(l).cloned())
            };
            let mut checks = BTreeMap::new();
            for (i, c) in def.checks.iter().enumerate() {
                let b = old.as_ref().and_then(|o| o.checks.get(i)).map(|x| x.status);
                let a = new.as_ref().and_then(|n| n.checks.get(i)).map(|x| x.status);
                if a != b {
                    checks.insert(c.id.clone(), (b, a));
                }
            }
            let basis = new.as_ref().or(old.as_ref()).expect("one side exists");
            // A result's history never goes back in time: events of other
            // partitions can be applied after later-stamped ones, and a
            // change takes effect when it is applied. A result changes at
            // most once per batch, so the store holds all its history; the
            // sequence orders changes that share a millisecond.
            let (mut at_ms, mut seq) = (t.at.timestamp_millis(), 0u16);
            let hp = keys::prefix(rk::RESULT_HISTORY, &[sc.as_bytes(), r.as_bytes()]);
            let mut last: Option<(i64, u16)> = None;
            self.store.scan(&hp, None, &mut |k, _| {
                if let Some(ms) = k.get(hp.len()..hp.len() + 8) {
                    let ms = i64::from_be_bytes(ms.try_into().expect("8 bytes"));
                    last = Some(match last {
                        Some((l, n)) if l == ms => (ms, n.saturating_add(1)),
                        _ => (ms, 1),
                    });
                }
                true
            })?;
            if let Some((last_ms, count)) = last
                && last_ms >= at_ms
            {
                (at_ms, seq) = (last_ms, count);
            }
            let at = if at_ms == t.at.timestamp_millis() {
                t.at
            } else {
                DateTime::from_timestamp_millis(at_ms).unwrap_or(t.at)
            };
            let change = ResultChange {
                at,
                cause: t.cause.clone(),
                level_before: level_name(&old),
                level_after: level_name(&new),
                score_before: old.as_ref().map(|o| o.score),
                score_after: new.as_ref().map(|n| n.score),
                applies: new.is_some(),
                checks,
                groups: basis.groups.clone(),
                system: basis.system.clone(),
                domain: basis.domain.clone(),
                level_index: new.as_ref().and_then(|n| n.level),
            };
            let event = t.cause.event_id.unwrap_or_else(|| {
                derived_id("due", &format!("{sc}\0{r}\0{}", t.at.timestamp_millis()))
            });
            self.feed.push(FeedRecord {
                at,
                kind: FeedKind::ScorecardChanged,
                entity: Some(r.to_string()),
                location: proto::LocationKey::new(if t.cause.kind == CauseKind::Entity {
                    t.cause.detail.as_str()
                } else {
                    ""
                }),
                source: proto::SourceId::new("scorecards"),
                event_id: event,
                by: None,
                errors: None,
                scorecard: Some(ScorecardOutcome {
                    id: sc.to_string(),
                    level_before: change.level_before.clone(),
                    level_after: change.level_after.clone(),
                    score_before: change.score_before,
                    score_after: change.score_after,
                    checks: change.checks.clone(),
                    cause: t.cause.kind,
                    detail: t.cause.detail.clone(),
                }),
            });
            self.out.push((
                rk::result_history(sc, r, at_ms, seq, &event),
                Some(rec::encode(&change)),
            ));
        }
        self.out
            .push((rk::result(sc, r), new.as_ref().map(rec::encode)));
        Ok(())
    }

    /// Every rollup of a scorecard has one slot per level and per check,
    /// so that equal counts are equal bytes however they were reached.
    fn rollup_add(&mut self, def: &Definition, r: &ResultRecord, sign: i64) {
        for (dim, group) in rk::memberships(r) {
            self.rollups
                .entry((def.id.clone(), dim.to_string(), group))
                .or_insert_with(|| Rollup::new(def.levels.len(), def.checks.len()))
                .add(r, sign);
        }
    }

    /// Every entity under a new or changed definition. Rollups are rebuilt
    /// from the new results.
    fn reevaluate_one(
        &mut self,
        def: &Definition,
        r: &str,
        entity: Option<Arc<Value>>,
        old: &mut HashMap<String, Vec<u8>>,
        t: &Trigger,
    ) -> Result<(), StoreError> {
        let before = match old.remove(r) {
            Some(bytes) => Some(rec::decode::<ResultRecord>(
                &rk::result(&def.id, r),
                &bytes,
            )?),
            None => None,
        };
        let new = self.evaluate(def, r, entity.as_deref(), t)?;
        self.store_result(def, r, before, new, t, false)
    }

    fn reevaluate_all(&mut self, def: &Definition, t: &Trigger) -> Result<(), StoreError> {
        let wanted = kind_filter(def);
        // Everything is read by prefix scans (entities, old results, the
        // scorecard's exemptions), not point lookups: right after a bulk
        // load, a lookup probes every level-0 file, a scan merges them once.
        let p = keys::prefix(rk::RESULT, &[def.id.as_bytes()]);
        let mut old: HashMap<String, Vec<u8>> = HashMap::new();
        self.store.scan(&p, None, &mut |k, v| {
            old.insert(
                String::from_utf8_lossy(&k[p.len()..]).into_owned(),
                v.to_vec(),
            );
            true
        })?;
        let ep = keys::prefix(rk::EXEMPTIONS, &[def.id.as_bytes()]);
        let mut exempt: HashMap<String, ExemptionSet> = HashMap::new();
        let mut bad = None;
        self.store.scan(&ep, None, &mut |k, v| {
            match rec::decode(k, v) {
                Ok(x) => {
                    exempt.insert(String::from_utf8_lossy(&k[ep.len()..]).into_owned(), x);
                }
                Err(e) => bad = Some(e),
            }
            true
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        self.known_exemptions = Some(exempt);
        let mut pending: Vec<String> = self.served.keys().filter(|r| wanted(r)).cloned().collect();
        pending.sort();
        let served = self.served;
        scan_entities(self.store, &wanted, &mut |r, body| {
            let entity = match served.get(&r) {
                Some(v) => v.clone(),
                None => serde_json::from_slice::<Value>(&body).ok().map(Arc::new),
            };
            self.reevaluate_one(def, &r, entity, &mut old, t)
        })?;
        // Entities created in this batch are not in the store yet.
        for r in pending {
            if self.store.get(&keys::entity(&r))?.is_none() {
                let entity = self.served.get(&r).cloned().flatten();
                self.reevaluate_one(def, &r, entity, &mut old, t)?;
            }
        }
        // Results of entities that are gone.
        let mut gone: Vec<_> = old.into_iter().collect();
        gone.sort();
        for (r, bytes) in gone {
            let before: ResultRecord = rec::decode(&rk::result(&def.id, &r), &bytes)?;
            self.store_result(def, &r, Some(before), None, t, false)?;
        }
        self.known_exemptions = None;
        Ok(())
    }

    /// A scorecard no longer defined: results, indexes and rollups go;
    /// history stays, ending with a change to "does not apply".
    fn drop_scorecard(&mut self, id: &str, t: &Trigger) -> Result<(), StoreError> {
        let p = keys::prefix(rk::RESULT, &[id.as_bytes()]);
        let mut gone = Vec::new();
        self.store.scan(&p, None, &mut |k, v| {
            gone.push((k.to_vec(), v.to_vec()));
            true
        })?;
        let stub = Definition {
            id: id.to_string(),
            title: String::new(),
            description: None,
            applies_to: Default::default(),
            levels: vec![],
            checks: vec![],
        };
        for (k, v) in gone {
            let r = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            let old: ResultRecord = rec::decode(&k, &v)?;
            self.store_result(&stub, &r, Some(old), None, t, false)?;
        }
        let kp = keys::prefix(rk::ROLLUP, &[id.as_bytes()]);
        let mut rollups = Vec::new();
        self.store.scan(&kp, None, &mut |k, _| {
            rollups.push(k.to_vec());
            true
        })?;
        for k in rollups {
            self.out.push((k, None));
        }
        self.rollups.retain(|(sc, _, _), _| sc != id);
        Ok(())
    }

    /// Applies the rollup deltas: onto the stored rollups, or for a
    /// redefined scorecard, onto nothing (its old rollups are replaced).
    fn flush_rollups(&mut self, redefined: &BTreeMap<String, Trigger>) -> Result<(), StoreError> {
        let mut fresh_keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        for sc in redefined.keys() {
            let kp = keys::prefix(rk::ROLLUP, &[sc.as_bytes()]);
            self.store.scan(&kp, None, &mut |k, _| {
                fresh_keys.insert(k.to_vec());
                true
            })?;
        }
        let mut deltas: Vec<_> = self.rollups.drain().collect();
        deltas.sort_by(|a, b| a.0.cmp(&b.0));
        for ((sc, dim, group), delta) in deltas {
            let key = rk::rollup(&sc, &dim, &group);
            let mut current = if redefined.contains_key(&sc) {
                fresh_keys.remove(&key);
                Rollup::new(delta.levels.len().saturating_sub(1), delta.checks.len())
            } else {
                get::<Rollup>(self.store, &key)?.unwrap_or_else(|| {
                    Rollup::new(delta.levels.len().saturating_sub(1), delta.checks.len())
                })
            };
            current.merge(&delta);
            let value = (current.entities > 0).then(|| rec::encode(&current));
            self.out.push((key, value));
        }
        for k in fresh_keys {
            self.out.push((k, None));
        }
        Ok(())
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

//! One sync of one source: list, compare with the sync state, ship what is
//! new, changed or removed, and only then remember it (at-least-once: a
//! crash between the flush and the state write re-ships, never loses).

use crate::config::RemovalGuard;
use crate::source::{Fetched, Listed, Listing, Source, SourceError, SyncMode};
use crate::state::{
    ContentState, FactChange, FactRecord, LocationRecord, StateChange, StateError, StateStore,
};
use chrono::{DateTime, Utc};
use eventlog::{EventLog, LogError};
use proto::{
    FactEvent, FactState, LocationKey, Observation, ObservedContent, SourceId, SubjectKey,
    Versioned,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a sync waits for the log to store its observations.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a sync failed. Nothing of a failed sync is remembered, so the next
/// sync ships it again.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("listing failed: {0}")]
    Source(#[from] SourceError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("event log: {0}")]
    Log(#[from] LogError),
}

/// Removals a sync held back because there were too many of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HeldBack {
    /// Locations missing from the listing.
    pub would_remove: usize,
    /// Locations known before the sync.
    pub known: usize,
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncReport {
    pub source: SourceId,
    /// Locations in the listing.
    pub listed: usize,
    /// Whether the listing was complete (only then are removals considered).
    pub complete: bool,
    /// Why the listing was incomplete, if it was.
    pub problems: Vec<String>,
    /// Locations whose content was read (or found too large) because their
    /// fingerprint did not vouch for them; the rest cost a stat only.
    pub fetched: usize,
    pub emitted_new: usize,
    pub emitted_changed: usize,
    pub emitted_removed: usize,
    pub unchanged: usize,
    pub held_back: Option<HeldBack>,
    /// Fact messages shipped (new, changed or removed subjects).
    pub facts_emitted: usize,
    /// Subject removals held back by the guard.
    pub facts_held_back: Option<HeldBack>,
    /// Whether this sync covered only part of the source (a webhook's).
    pub scoped: bool,
    pub duration: Duration,
    /// When the sync finished.
    pub finished_at: DateTime<Utc>,
}

impl SyncReport {
    /// Observations shipped by this sync.
    pub fn emitted(&self) -> usize {
        self.emitted_new + self.emitted_changed + self.emitted_removed
    }
}

/// What a sync is going to do, computed without side effects.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub observations: Vec<Observation>,
    pub changes: Vec<StateChange>,
    pub new: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub held_back: Option<HeldBack>,
    pub facts: Vec<FactEvent>,
    pub fact_changes: Vec<FactChange>,
    pub facts_held_back: Option<HeldBack>,
}

/// Compares a listing with the prior state. A location in `force` that
/// was read is shipped even if it holds what it held (a refresh).
pub fn plan(
    source: &SourceId,
    prior: &BTreeMap<LocationKey, LocationRecord>,
    prior_facts: &BTreeMap<SubjectKey, FactRecord>,
    mut listing: Listing,
    guard: &RemovalGuard,
    now: DateTime<Utc>,
    force: &BTreeSet<LocationKey>,
) -> Plan {
    let mut planner = Planner::new(source, prior, now, force);
    let mut observations = Vec::new();
    for l in std::mem::take(&mut listing.locations) {
        observations.extend(planner.location(l));
    }
    let mut p = planner.finish(prior_facts, &listing, guard);
    observations.append(&mut p.observations);
    p.observations = observations;
    p
}

/// [`plan`] one location at a time, in listing order: each listed location
/// is compared as it comes (its observation, if any, handed back to be
/// shipped at once), and what the listing lacks is decided at the end.
pub struct Planner<'a> {
    source: &'a SourceId,
    prior: &'a BTreeMap<LocationKey, LocationRecord>,
    now: DateTime<Utc>,
    force: &'a BTreeSet<LocationKey>,
    /// The locations listed so far (a source lists a location once; be
    /// safe anyway: only the first counts).
    listed: HashSet<LocationKey>,
    /// Everything but the listed locations' observations.
    plan: Plan,
}

impl<'a> Planner<'a> {
    pub fn new(
        source: &'a SourceId,
        prior: &'a BTreeMap<LocationKey, LocationRecord>,
        now: DateTime<Utc>,
        force: &'a BTreeSet<LocationKey>,
    ) -> Self {
        Planner {
            source,
            prior,
            now,
            force,
            listed: HashSet::new(),
            plan: Plan {
                observations: Vec::new(),
                changes: Vec::new(),
                new: 0,
                changed: 0,
                removed: 0,
                unchanged: 0,
                held_back: None,
                facts: Vec::new(),
                fact_changes: Vec::new(),
                facts_held_back: None,
            },
        }
    }

    fn observation(
        &self,
        location: &LocationKey,
        origin: &LocationKey,
        first_seen_at: DateTime<Utc>,
        content: ObservedContent,
    ) -> Observation {
        Observation {
            event_id: Uuid::now_v7(),
            source: self.source.clone(),
            observed_at: self.now,
            location: location.clone(),
            origin: origin.clone(),
            first_seen_at,
            content,
        }
    }

    /// Compares one listed location with what the state remembers of it;
    /// the observation to ship, if it is new or changed.
    pub fn location(&mut self, l: Listed) -> Option<Observation> {
        if !self.listed.insert(l.location.clone()) {
            return None;
        }
        let p = &mut self.plan;
        let old = self.prior.get(&l.location);
        let (state, content) = match l.fetched {
            Fetched::Unchanged => {
                p.unchanged += 1;
                if let Some(old) = old
                    && old.fingerprint != l.fingerprint
                {
                    let mut rec = old.clone();
                    rec.fingerprint = l.fingerprint;
                    p.changes.push(StateChange::Put(l.location, rec));
                }
                return None;
            }
            Fetched::Present { content, sha256 } => (
                ContentState::Present { sha256 },
                ObservedContent::Present { content },
            ),
            Fetched::TooLarge { size, limit } => (
                ContentState::TooLarge { size, limit },
                ObservedContent::TooLarge { size, limit },
            ),
            Fetched::Unreadable { reason } => (
                ContentState::Unreadable {
                    reason: reason.clone(),
                },
                ObservedContent::Unreadable { reason },
            ),
        };
        let first_seen_at = match old {
            None => {
                p.new += 1;
                self.now
            }
            Some(old)
                if old.content != state
                    || old.origin != l.origin
                    || self.force.contains(&l.location) =>
            {
                p.changed += 1;
                old.first_seen_at
            }
            Some(old) => {
                p.unchanged += 1;
                if old.fingerprint != l.fingerprint || old.targets != l.targets {
                    let mut rec = old.clone();
                    rec.fingerprint = l.fingerprint;
                    rec.targets = l.targets;
                    p.changes.push(StateChange::Put(l.location, rec));
                }
                return None;
            }
        };
        let observation = self.observation(&l.location, &l.origin, first_seen_at, content);
        self.plan.changes.push(StateChange::Put(
            l.location,
            LocationRecord {
                origin: l.origin,
                first_seen_at,
                content: state,
                fingerprint: l.fingerprint,
                targets: l.targets,
            },
        ));
        Some(observation)
    }

    /// The rest of the plan, once every location of `listing` was compared
    /// (its own `locations` are not looked at): removals of what it lacks,
    /// and facts. Its observations are the removals only.
    pub fn finish(
        mut self,
        prior_facts: &BTreeMap<SubjectKey, FactRecord>,
        listing: &Listing,
        guard: &RemovalGuard,
    ) -> Plan {
        let (facts, fact_changes, facts_held_back) =
            plan_facts(self.source, prior_facts, listing, guard, self.now);
        self.plan.facts = facts;
        self.plan.fact_changes = fact_changes;
        self.plan.facts_held_back = facts_held_back;
        let prior = self.prior;
        // Known locations the listing lacks.
        let gone: Vec<(&LocationKey, &LocationRecord)> = if listing.complete {
            prior
                .iter()
                .filter(|(k, _)| listing.covers(k.as_str()) && !self.listed.contains(*k))
                .collect()
        } else {
            Vec::new()
        };
        // What a user asked to remove goes whatever the guard says, and does
        // not count against it.
        let (released, gone): (Vec<_>, Vec<_>) = gone
            .into_iter()
            .partition(|(_, rec)| listing.released.contains(&rec.origin));
        let in_scope = match listing.scope {
            None => prior.len(),
            Some(_) => prior.keys().filter(|k| listing.covers(k.as_str())).count(),
        };
        let remove = |planner: &mut Planner<'_>, k: &LocationKey, rec: &LocationRecord| {
            let o =
                planner.observation(k, &rec.origin, rec.first_seen_at, ObservedContent::Removed);
            let p = &mut planner.plan;
            p.removed += 1;
            p.observations.push(o);
            p.changes.push(StateChange::Delete(k.clone()));
        };
        for (k, rec) in released {
            remove(&mut self, k, rec);
        }
        let in_scope = in_scope.saturating_sub(self.plan.removed);
        if guard.holds_back(gone.len(), in_scope) {
            self.plan.held_back = Some(HeldBack {
                would_remove: gone.len(),
                known: in_scope,
            });
        } else {
            for (k, rec) in gone {
                remove(&mut self, k, rec);
            }
        }
        self.plan
    }
}

/// Compares the listing's facts with what was last shipped: new or changed
/// facts go out, subjects missing from a complete listing are removed
/// (under the same guard as locations).
fn plan_facts(
    source: &SourceId,
    prior: &BTreeMap<SubjectKey, FactRecord>,
    listing: &Listing,
    guard: &RemovalGuard,
    now: DateTime<Utc>,
) -> (Vec<FactEvent>, Vec<FactChange>, Option<HeldBack>) {
    let mut events = Vec::new();
    let mut changes = Vec::new();
    let event = |subject: &SubjectKey, state: FactState| FactEvent {
        event_id: Uuid::now_v7(),
        source: source.clone(),
        observed_at: now,
        subject: subject.clone(),
        state,
    };
    let mut listed = HashSet::with_capacity(listing.facts.len());
    for f in &listing.facts {
        if !listed.insert(&f.subject) {
            continue;
        }
        let Some(facts) = &f.facts else { continue };
        let json = serde_json::to_vec(facts).expect("facts serialise");
        let sha256 = hex::encode(Sha256::digest(&json));
        if prior.get(&f.subject).is_some_and(|r| r.sha256 == sha256) {
            continue;
        }
        events.push(event(
            &f.subject,
            FactState::Present {
                facts: facts.clone(),
            },
        ));
        changes.push(FactChange::Put(f.subject.clone(), FactRecord { sha256 }));
    }
    if !listing.complete {
        return (events, changes, None);
    }
    let in_scope: Vec<&SubjectKey> = prior
        .keys()
        .filter(|k| listing.covers(k.as_str()))
        .collect();
    let gone: Vec<&SubjectKey> = in_scope
        .iter()
        .copied()
        .filter(|k| !listed.contains(k))
        .collect();
    if guard.holds_back(gone.len(), in_scope.len()) {
        let held = HeldBack {
            would_remove: gone.len(),
            known: in_scope.len(),
        };
        return (events, changes, Some(held));
    }
    for k in gone {
        events.push(event(k, FactState::Removed));
        changes.push(FactChange::Delete(k.clone()));
    }
    (events, changes, None)
}

/// Ships the plan's messages, flushes, and only then writes the state.
/// Each observation is dropped once appended: a first sync's observations
/// hold every file's content, and need not be held all at once twice over
/// (as themselves and as the log's copy).
fn ship(
    log: &dyn EventLog,
    state: &StateStore,
    id: &SourceId,
    plan: &mut Plan,
    appended: bool,
) -> Result<(), SyncError> {
    let observations = std::mem::take(&mut plan.observations);
    let shipped = appended || !observations.is_empty();
    for o in observations {
        log.append(
            proto::topics::OBSERVATIONS,
            o.location.as_str().as_bytes(),
            &o.encode(),
        )?;
    }
    for f in &plan.facts {
        log.append(
            proto::topics::FACTS,
            f.subject.as_str().as_bytes(),
            &f.encode(),
        )?;
    }
    if shipped || !plan.facts.is_empty() {
        log.flush(FLUSH_TIMEOUT)?;
    }
    state.apply(id, std::mem::take(&mut plan.changes))?;
    state.apply_facts(id, &plan.fact_changes)?;
    Ok(())
}

/// Syncs `source` once: ships an observation for every new, changed or
/// removed location to [`proto::topics::OBSERVATIONS`] (key = location key),
/// flushes, and only then updates the sync state.
pub fn sync_source(
    source: &dyn Source,
    state: &StateStore,
    log: &dyn EventLog,
    guard: &RemovalGuard,
    now: DateTime<Utc>,
    mode: SyncMode,
) -> Result<SyncReport, SyncError> {
    sync_source_forced(source, state, log, guard, now, mode, &BTreeSet::new())
}

/// [`sync_source`], reading the locations in `force` again (the source is
/// shown them without their fingerprints) and shipping them even if they
/// hold what they held: a refresh asked for through the API.
pub fn sync_source_forced(
    source: &dyn Source,
    state: &StateStore,
    log: &dyn EventLog,
    guard: &RemovalGuard,
    now: DateTime<Utc>,
    mode: SyncMode,
    force: &BTreeSet<LocationKey>,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let id = source.id().clone();
    let prior = state.load(&id)?;
    let prior_facts = state.facts(&id)?;
    let forced: Option<crate::source::Known> =
        force.iter().any(|k| prior.contains_key(k)).then(|| {
            let mut known = (*prior).clone();
            for k in force {
                if let Some(rec) = known.get_mut(k) {
                    rec.fingerprint = None;
                }
            }
            known
        });
    let known = forced.as_ref().unwrap_or(&prior);
    // Each listed location is compared as it is read and, if new or
    // changed, appended at once: its content is not held past that (a first
    // sync of half a million files holds none of them for long). The state
    // is written only after the flush at the end, as before.
    let mut planner = Planner::new(&id, &prior, now, force);
    let (mut listed, mut fetched, mut streamed) = (0usize, 0usize, 0usize);
    let mut failed: Option<LogError> = None;
    let mut each = |l: Listed| {
        listed += 1;
        if l.fetched != Fetched::Unchanged {
            fetched += 1;
        }
        let Some(o) = planner.location(l) else {
            return;
        };
        if failed.is_some() {
            return;
        }
        // The content is freed as soon as it is encoded.
        let (location, encoded) = (o.location.clone(), o.encode());
        drop(o);
        match log.append_owned(
            proto::topics::OBSERVATIONS,
            location.as_str().as_bytes(),
            encoded,
        ) {
            Ok(_) => streamed += 1,
            Err(e) => failed = Some(e),
        }
    };
    let listing = match mode {
        SyncMode::Full => source.list_each(known, &mut each),
        SyncMode::Pending => source.list_pending(known).map(|mut l| {
            for x in std::mem::take(&mut l.locations) {
                each(x);
            }
            l
        }),
    };
    let listing = match (listing, failed) {
        (Ok(l), None) => l,
        (Err(e), _) => {
            // What was appended is not remembered: shipped again next time.
            source.discard();
            return Err(e.into());
        }
        (Ok(_), Some(e)) => {
            source.discard();
            return Err(e.into());
        }
    };
    drop(forced);
    let scoped = listing.scope.is_some();
    if !listing.complete {
        tracing::warn!(
            source = %id,
            problems = listing.problems.len(),
            first = listing.problems.first().map(String::as_str).unwrap_or(""),
            "listing is incomplete; nothing will be removed"
        );
    }
    let problems = listing.problems.clone();
    let complete = listing.complete;
    let mut plan = planner.finish(&prior_facts, &listing, guard);
    drop(prior); // lets `apply` update the cached records in place
    let shipped = ship(log, state, &id, &mut plan, streamed > 0);
    if let Err(e) = shipped {
        source.discard();
        return Err(e);
    }
    source.commit();

    if let Some(h) = plan.held_back {
        tracing::warn!(
            source = %id,
            would_remove = h.would_remove,
            known = h.known,
            max_share = guard.max_share,
            min_count = guard.min_count,
            "holding back removals: too many locations vanished at once"
        );
    }
    if let Some(h) = plan.facts_held_back {
        tracing::warn!(
            source = %id,
            would_remove = h.would_remove,
            known = h.known,
            "holding back fact removals: too many subjects vanished at once"
        );
    }
    let report = SyncReport {
        source: id,
        listed,
        complete,
        problems,
        fetched,
        emitted_new: plan.new,
        emitted_changed: plan.changed,
        emitted_removed: plan.removed,
        unchanged: plan.unchanged,
        held_back: plan.held_back,
        facts_emitted: plan.facts.len(),
        facts_held_back: plan.facts_held_back,
        scoped,
        duration: started.elapsed(),
        finished_at: Utc::now(),
    };
    crate::metrics::record_sync(&report);
    Ok(report)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::source::{Known, Listed};
    use crate::state::Fingerprint;
    use eventlog::Reader;
    use proto::Content;
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;

    /// The public in-memory log (one partition, so observations keep the
    /// order they were appended in), and a reader of what was flushed.
    pub(crate) struct MemLog {
        log: eventlog::memory::MemoryLog,
        observations: Mutex<Box<dyn Reader>>,
    }

    impl Default for MemLog {
        fn default() -> Self {
            let log = eventlog::memory::MemoryLog::new(&proto::topics::ALL, 1);
            let observations = Mutex::new(
                log.assign(proto::topics::OBSERVATIONS, &[(0, 0)])
                    .expect("reader"),
            );
            MemLog { log, observations }
        }
    }

    impl MemLog {
        /// The observations flushed since the last call.
        pub(crate) fn take(&self) -> Vec<Observation> {
            let mut reader = self.observations.lock().unwrap();
            let mut out = Vec::new();
            loop {
                let got = reader.poll(Duration::ZERO).unwrap();
                if got.is_empty() {
                    return out;
                }
                for r in got {
                    let o = Observation::decode(&r.value).unwrap();
                    assert_eq!(r.key, o.location.as_str().as_bytes());
                    out.push(o);
                }
            }
        }
    }

    impl std::ops::Deref for MemLog {
        type Target = eventlog::memory::MemoryLog;
        fn deref(&self) -> &Self::Target {
            &self.log
        }
    }

    /// A source whose listing the test sets.
    pub(crate) struct Scripted {
        id: SourceId,
        pub(crate) listing: Mutex<Listing>,
        pub(crate) seen_known: Mutex<Option<Known>>,
    }

    impl Scripted {
        fn new() -> Self {
            Scripted {
                id: SourceId::new("s"),
                listing: Mutex::new(Listing {
                    complete: true,
                    ..Listing::default()
                }),
                seen_known: Mutex::new(None),
            }
        }
        fn set(&self, complete: bool, files: &[(&str, &str)]) {
            *self.listing.lock().unwrap() = Listing {
                complete,
                locations: files.iter().map(|(n, t)| listed(n, t)).collect(),
                ..Listing::default()
            };
        }
    }

    impl Source for Scripted {
        fn id(&self) -> &SourceId {
            &self.id
        }
        fn list(&self, known: &Known) -> Result<Listing, SourceError> {
            *self.seen_known.lock().unwrap() = Some(known.clone());
            Ok(self.listing.lock().unwrap().clone())
        }
    }

    fn key(name: &str) -> LocationKey {
        LocationKey::new(format!("file:/r/{name}"))
    }

    fn fp(size: u64) -> Fingerprint {
        Fingerprint {
            size,
            mtime_ns: 1,
            ctime_ns: 1,
            inode: 1,
        }
    }

    fn listed(name: &str, text: &str) -> Listed {
        Listed {
            location: key(name),
            origin: LocationKey::new("file:/r"),
            fetched: Fetched::Present {
                content: Content::Utf8 { text: text.into() },
                sha256: format!("sha-of-{text}"),
            },
            fingerprint: Some(fp(text.len() as u64)),
            targets: Vec::new(),
        }
    }

    struct Env {
        _dir: tempfile::TempDir,
        state: StateStore,
        log: MemLog,
        src: Scripted,
        guard: RemovalGuard,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        Env {
            state: StateStore::open(dir.path()).unwrap(),
            _dir: dir,
            log: MemLog::default(),
            src: Scripted::new(),
            guard: RemovalGuard::default(),
        }
    }

    fn t(s: u32) -> DateTime<Utc> {
        format!("2024-05-01T00:00:{s:02}Z").parse().unwrap()
    }

    impl Env {
        fn sync(&self, at: u32) -> SyncReport {
            sync_source(
                &self.src,
                &self.state,
                &*self.log,
                &self.guard,
                t(at),
                SyncMode::Full,
            )
            .unwrap()
        }
    }

    #[test]
    fn first_sync_emits_all_then_nothing() {
        let e = env();
        e.src.set(true, &[("a", "A"), ("b", "B")]);
        let r = e.sync(1);
        assert_eq!((r.listed, r.emitted_new, r.emitted()), (2, 2, 2));
        let obs = e.log.take();
        assert_eq!(obs.len(), 2);
        let a = &obs[0];
        assert_eq!(a.location, key("a"));
        assert_eq!(a.source, SourceId::new("s"));
        assert_eq!(a.origin, LocationKey::new("file:/r"));
        assert_eq!((a.observed_at, a.first_seen_at), (t(1), t(1)));
        assert_eq!(a.event_id.get_version_num(), 7);
        assert_ne!(obs[0].event_id, obs[1].event_id);
        assert_eq!(
            a.content,
            ObservedContent::Present {
                content: Content::Utf8 { text: "A".into() }
            }
        );

        let r = e.sync(2);
        assert_eq!((r.emitted(), r.unchanged), (0, 2));
        assert!(e.log.take().is_empty());
        // The source was offered the fingerprints to skip reading.
        let known = e.src.seen_known.lock().unwrap().clone().unwrap();
        assert_eq!(known[&key("a")].fingerprint, Some(fp(1)));
    }

    #[test]
    fn a_change_keeps_first_seen_and_a_readd_gets_a_new_one() {
        let e = env();
        e.src.set(true, &[("a", "A"), ("b", "B")]);
        e.sync(1);
        e.log.take();
        e.src.set(true, &[("a", "A2"), ("b", "B")]);
        let r = e.sync(2);
        assert_eq!((r.emitted_changed, r.emitted(), r.unchanged), (1, 1, 1));
        let obs = e.log.take();
        assert_eq!(obs[0].location, key("a"));
        assert_eq!((obs[0].observed_at, obs[0].first_seen_at), (t(2), t(1)));

        e.src.set(true, &[("b", "B")]);
        let r = e.sync(3);
        assert_eq!((r.emitted_removed, r.held_back), (1, None));
        let obs = e.log.take();
        assert_eq!(obs[0].content, ObservedContent::Removed);
        assert_eq!(obs[0].first_seen_at, t(1));
        assert_eq!(e.state.get(&SourceId::new("s"), &key("a")).unwrap(), None);

        e.src.set(true, &[("a", "A2"), ("b", "B")]);
        let r = e.sync(4);
        assert_eq!(r.emitted_new, 1);
        assert_eq!(e.log.take()[0].first_seen_at, t(4));
    }

    #[test]
    fn state_and_origin_changes_are_changes() {
        let e = env();
        e.src.set(true, &[("a", "A")]);
        e.sync(1);
        e.log.take();
        let mut l = listed("a", "A");
        l.fetched = Fetched::TooLarge { size: 9, limit: 5 };
        e.src.listing.lock().unwrap().locations = vec![l.clone()];
        assert_eq!(e.sync(2).emitted_changed, 1);
        assert_eq!(
            e.log.take()[0].content,
            ObservedContent::TooLarge { size: 9, limit: 5 }
        );
        assert_eq!(e.sync(3).emitted(), 0);
        l.origin = LocationKey::new("file:/other");
        e.src.listing.lock().unwrap().locations = vec![l];
        assert_eq!(e.sync(4).emitted_changed, 1);
        assert_eq!(e.log.take()[0].origin, LocationKey::new("file:/other"));
    }

    #[test]
    fn same_content_with_new_fingerprint_updates_state_silently() {
        let e = env();
        let mut l = listed("a", "A");
        l.fingerprint = None; // racy on the first read
        e.src.listing.lock().unwrap().locations = vec![l.clone()];
        e.sync(1);
        e.log.take();
        let s = SourceId::new("s");
        assert_eq!(
            e.state.get(&s, &key("a")).unwrap().unwrap().fingerprint,
            None
        );
        l.fingerprint = Some(fp(1));
        e.src.listing.lock().unwrap().locations = vec![l];
        let r = e.sync(2);
        assert_eq!((r.emitted(), r.unchanged), (0, 1));
        let rec = e.state.get(&s, &key("a")).unwrap().unwrap();
        assert_eq!(rec.fingerprint, Some(fp(1)));
        assert_eq!(rec.first_seen_at, t(1));
    }

    #[test]
    fn mass_removal_is_held_back_single_goes_through() {
        let e = env();
        let all = [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D"), ("e", "E")];
        e.src.set(true, &all);
        e.sync(1);
        e.log.take();
        // 3 of 5 gone: 3 > 2.5 and 3 >= 3: held back.
        e.src.set(true, &[("a", "A"), ("b", "B2")]);
        let r = e.sync(2);
        assert_eq!(
            r.held_back,
            Some(HeldBack {
                would_remove: 3,
                known: 5
            })
        );
        assert_eq!((r.emitted_removed, r.emitted_changed), (0, 1));
        let obs = e.log.take();
        assert_eq!(obs.len(), 1, "the change still goes out");
        assert_eq!(obs[0].location, key("b"));
        assert_eq!(e.state.load(&SourceId::new("s")).unwrap().len(), 5);

        // One of five gone: goes through.
        e.src
            .set(true, &[("a", "A"), ("b", "B2"), ("c", "C"), ("d", "D")]);
        let r = e.sync(3);
        assert_eq!((r.emitted_removed, r.emitted(), r.held_back), (1, 1, None));
        let obs = e.log.take();
        assert_eq!(obs[0].location, key("e"));
        assert_eq!(obs[0].content, ObservedContent::Removed);
        assert_eq!(e.state.load(&SourceId::new("s")).unwrap().len(), 4);
    }

    #[test]
    fn incomplete_listing_removes_nothing() {
        let e = env();
        e.src.set(true, &[("a", "A"), ("b", "B")]);
        e.sync(1);
        e.log.take();
        e.src.set(false, &[("a", "A2")]);
        let r = e.sync(2);
        assert!(!r.complete);
        assert_eq!(
            (r.emitted_removed, r.emitted_changed, r.held_back),
            (0, 1, None)
        );
        assert_eq!(e.state.load(&SourceId::new("s")).unwrap().len(), 2);
        e.src.set(false, &[]);
        assert_eq!(e.sync(3).emitted(), 0);
    }

    /// A source that hands its locations out one at a time, noting before
    /// each how many messages the log holds appended but not yet flushed,
    /// and making the log refuse the append after the `fail_after`th.
    struct OneByOne<'l> {
        id: SourceId,
        log: &'l eventlog::memory::MemoryLog,
        files: Vec<Listed>,
        fail_after: Option<usize>,
        pending_before: Mutex<Vec<usize>>,
    }

    impl Source for OneByOne<'_> {
        fn id(&self) -> &SourceId {
            &self.id
        }
        fn list(&self, _known: &Known) -> Result<Listing, SourceError> {
            unreachable!("a full sync lists through list_each")
        }
        fn list_each(
            &self,
            _known: &Known,
            each: &mut dyn FnMut(Listed),
        ) -> Result<Listing, SourceError> {
            for (i, l) in self.files.iter().enumerate() {
                self.pending_before.lock().unwrap().push(self.log.pending());
                each(l.clone());
                if self.fail_after == Some(i + 1) {
                    self.log.faults().appends.store(1, Ordering::SeqCst);
                }
            }
            Ok(Listing {
                complete: true,
                ..Listing::default()
            })
        }
    }

    #[test]
    fn a_listing_handed_out_piecewise_is_shipped_as_it_comes_and_remembered_after_the_flush() {
        let e = env();
        let source = |files: &[(&str, &str)], fail_after| OneByOne {
            id: SourceId::new("s"),
            log: &e.log,
            files: files.iter().map(|(n, t)| listed(n, t)).collect(),
            fail_after,
            pending_before: Mutex::new(Vec::new()),
        };
        let sync = |src: &OneByOne<'_>, at| {
            sync_source(src, &e.state, &*e.log, &e.guard, t(at), SyncMode::Full)
        };
        let remembered = || e.state.load(&SourceId::new("s")).unwrap().len();

        // The log refuses b's append: c is not shipped, nothing is
        // remembered, and the sync fails.
        let src = source(&[("a", "A"), ("b", "B"), ("c", "C")], Some(1));
        let err = sync(&src, 1).unwrap_err();
        assert!(matches!(err, SyncError::Log(_)), "{err}");
        assert_eq!(remembered(), 0);
        assert_eq!(*src.pending_before.lock().unwrap(), vec![0, 1, 1]);

        // Each location is appended before the next one is read; all are
        // remembered once flushed (a's first append goes out with them).
        let src = source(&[("a", "A"), ("b", "B"), ("c", "C")], None);
        let r = sync(&src, 2).unwrap();
        assert_eq!((r.listed, r.fetched, r.emitted_new), (3, 3, 3));
        assert_eq!(*src.pending_before.lock().unwrap(), vec![1, 2, 3]);
        assert_eq!(e.log.pending(), 0);
        let names = |obs: Vec<Observation>| -> Vec<String> {
            obs.iter().map(|o| o.location.to_string()).collect()
        };
        assert_eq!(
            names(e.log.take()),
            ["a", "a", "b", "c"].map(|n| key(n).to_string())
        );
        assert_eq!(remembered(), 3);

        // b vanishes and c changes: c's change as it is listed, b's
        // removal at the end.
        let src = source(&[("a", "A"), ("c", "C2")], None);
        let r = sync(&src, 3).unwrap();
        assert_eq!(
            (r.emitted_changed, r.emitted_removed, r.unchanged),
            (1, 1, 1)
        );
        let obs = e.log.take();
        assert_eq!(
            names(obs.clone()),
            [key("c").to_string(), key("b").to_string()]
        );
        assert_eq!(obs[1].content, ObservedContent::Removed);
        assert_eq!(remembered(), 2);
    }

    #[test]
    fn failed_flush_remembers_nothing() {
        let e = env();
        e.src.set(true, &[("a", "A")]);
        e.log.faults().flushes.store(1, Ordering::SeqCst);
        let err =
            sync_source(&e.src, &e.state, &*e.log, &e.guard, t(1), SyncMode::Full).unwrap_err();
        assert!(matches!(err, SyncError::Log(_)), "{err}");
        assert!(e.state.load(&SourceId::new("s")).unwrap().is_empty());
        assert_eq!(e.sync(2).emitted_new, 1, "shipped again");
        assert_eq!(e.log.take().len(), 1);
    }

    #[test]
    fn plan_is_pure_arithmetic() {
        let prior: BTreeMap<LocationKey, LocationRecord> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| {
                (
                    key(n),
                    LocationRecord {
                        origin: LocationKey::new("file:/r"),
                        first_seen_at: t(0),
                        content: ContentState::Present {
                            sha256: format!("sha-of-{}", n.to_uppercase()),
                        },
                        fingerprint: Some(fp(1)),
                        targets: Vec::new(),
                    },
                )
            })
            .collect();
        let listing = |names: &[&str]| Listing {
            complete: true,
            locations: names.iter().map(|n| listed(n, &n.to_uppercase())).collect(),
            ..Listing::default()
        };
        let s = SourceId::new("s");
        let g = RemovalGuard::default();
        // 2 of 4 gone: not more than half: removed.
        let p = plan(
            &s,
            &prior,
            &BTreeMap::new(),
            listing(&["a", "b"]),
            &g,
            t(1),
            &BTreeSet::new(),
        );
        assert_eq!((p.removed, p.unchanged, p.held_back), (2, 2, None));
        assert_eq!(p.changes.len(), 2);
        // 3 of 4 gone: held back.
        let p = plan(
            &s,
            &prior,
            &BTreeMap::new(),
            listing(&["a", "x"]),
            &g,
            t(1),
            &BTreeSet::new(),
        );
        assert_eq!((p.removed, p.new, p.unchanged), (0, 1, 1));
        assert_eq!(
            p.held_back,
            Some(HeldBack {
                would_remove: 3,
                known: 4
            })
        );
        // Unchanged listing entries cost nothing.
        let mut l = listing(&["a", "b", "c", "d"]);
        for x in &mut l.locations {
            x.fetched = Fetched::Unchanged;
        }
        let p = plan(&s, &prior, &BTreeMap::new(), l, &g, t(1), &BTreeSet::new());
        assert_eq!(
            (p.unchanged, p.observations.len(), p.changes.len()),
            (4, 0, 0)
        );
        // What a user asked to remove (a released origin) goes whatever the
        // guard says, and does not count against it.
        let mut l = listing(&["a"]);
        l.released = vec![LocationKey::new("file:/r")];
        let p = plan(&s, &prior, &BTreeMap::new(), l, &g, t(1), &BTreeSet::new());
        assert_eq!((p.removed, p.held_back), (3, None));
        // A refresh ships a location that holds what it held, keeping its
        // first-seen time; without it, nothing is shipped.
        let force: BTreeSet<LocationKey> = [key("a")].into();
        let p = plan(
            &s,
            &prior,
            &BTreeMap::new(),
            listing(&["a", "b", "c", "d"]),
            &g,
            t(1),
            &force,
        );
        assert_eq!((p.changed, p.unchanged, p.observations.len()), (1, 3, 1));
        assert_eq!(p.observations[0].location, key("a"));
        assert_eq!(p.observations[0].first_seen_at, t(0));
    }
}

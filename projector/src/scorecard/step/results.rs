//! A result stored when it changed: its dependency, level and deadline
//! indexes, its history record and change-feed record, its rollup deltas;
//! and every result of a scorecard that is no longer defined.

use super::Trigger;
use super::deps::index_changes;
use super::evaluate::{Evaluator, OldResults};
use crate::feed::{FeedKind, FeedRecord, ScorecardOutcome};
use crate::keys;
use crate::records as rec;
use crate::scorecard::lang::Definition;
use crate::scorecard::records::{self as rk, CauseKind, ResultChange, ResultRecord};
use crate::store::{Store, StoreError, WriteSet};
use chrono::DateTime;
use proto::derived_id;
use std::collections::BTreeMap;

/// Where a result's history ends: the time (ms) of its last change and the
/// sequence a further change at that millisecond takes.
pub(super) type HistoryTail = Option<(i64, u16)>;

/// A result about to be stored: the stored one and the new one, whether
/// they report the same (`same`) and are equal (`identical`). A whole
/// scorecard's evaluation makes it on whichever thread evaluated, with the
/// new result encoded and both lightened there (each check's value and
/// reason, which storing no longer reads, dropped where they were made).
pub(super) struct Ready {
    pub(super) old: Option<ResultRecord>,
    pub(super) new: Option<ResultRecord>,
    pub(super) encoded: Option<Vec<u8>>,
    same: bool,
    identical: bool,
}

impl Ready {
    pub(super) fn of(old: Option<ResultRecord>, new: Option<ResultRecord>) -> Ready {
        let (same, identical) = match (&old, &new) {
            (Some(o), Some(n)) => (o.same_outcome(n), o == n),
            _ => (false, false),
        };
        Ready {
            old,
            new,
            encoded: None,
            same,
            identical,
        }
    }

    pub(super) fn make(
        def: &Definition,
        r: &str,
        old: Option<&[u8]>,
        new: Option<ResultRecord>,
    ) -> Result<Ready, StoreError> {
        let old: Option<ResultRecord> = match old {
            Some(bytes) => Some(ResultRecord::decode(&rk::result(&def.id, r), bytes)?),
            None => None,
        };
        let mut ready = Ready::of(old, new);
        if !ready.identical {
            ready.encoded = ready.new.as_ref().map(ResultRecord::encode);
        }
        for x in ready.old.iter_mut().chain(ready.new.iter_mut()) {
            for c in &mut x.checks {
                c.value = None;
                c.reason = None;
            }
        }
        Ok(ready)
    }
}

/// Where a scorecard's stored result history ends, as the store says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum HistoryEnd {
    /// Not said: a store from before `k` records (see
    /// [`complete_history_ends`]), or an unreadable record.
    Unknown,
    /// It has none.
    Empty,
    /// Its newest record's time (ms).
    At(i64),
}

/// Writes the `k` record of every scorecard with result history, once: a
/// store written before they existed gets them before anything is folded.
/// Returns how many.
pub fn complete_history_ends(store: &dyn Store) -> Result<usize, StoreError> {
    if store.get(rk::HISTORY_END_COMPLETE)?.is_some() {
        return Ok(0);
    }
    let mut ends: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    store.scan(&[rk::RESULT_HISTORY], None, &mut |k, _| {
        let sc = k[1..].split(|b| *b == 0).next().unwrap_or_default();
        if let Some(at) = k.len().checked_sub(rk::HISTORY_SUFFIX)
            && let Some(ms) = k.get(at..at + 8)
        {
            let ms = i64::from_be_bytes(ms.try_into().expect("8 bytes"));
            let end = ends.entry(sc.to_vec()).or_insert(ms);
            *end = (*end).max(ms);
        }
        true
    })?;
    let n = ends.len();
    let mut out: WriteSet = ends
        .into_iter()
        .map(|(sc, ms)| {
            let mut k = vec![rk::HISTORY_END];
            k.extend_from_slice(&sc);
            (k, Some(ms.to_be_bytes().to_vec()))
        })
        .collect();
    out.push((rk::HISTORY_END_COMPLETE.to_vec(), Some(Vec::new())));
    store.write(out)?;
    Ok(n)
}

impl Evaluator<'_> {
    /// Where `sc`'s stored history ends (read once per batch).
    fn history_end(&mut self, sc: &str) -> Result<HistoryEnd, StoreError> {
        if let Some(end) = self.history_ends.get(sc) {
            return Ok(*end);
        }
        let end = if self.store.get(rk::HISTORY_END_COMPLETE)?.is_none() {
            HistoryEnd::Unknown
        } else {
            match self.store.get(&rk::history_end(sc))? {
                None => HistoryEnd::Empty,
                Some(v) => v.try_into().map_or(HistoryEnd::Unknown, |b| {
                    HistoryEnd::At(i64::from_be_bytes(b))
                }),
            }
        };
        self.history_ends.insert(sc.to_string(), end);
        Ok(end)
    }

    /// Whether every stored history record of `sc` is older than `at_ms`:
    /// then a change at `at_ms` needs no result's history read. The end is
    /// the one stored before this batch: what the batch has written since
    /// (the parts of a whole evaluation) is history of other results, as a
    /// result is stored at most once per batch.
    pub(super) fn history_before(&mut self, sc: &str, at_ms: i64) -> Result<bool, StoreError> {
        Ok(match self.history_end(sc)? {
            HistoryEnd::Unknown => false,
            HistoryEnd::Empty => true,
            HistoryEnd::At(end) => end < at_ms,
        })
    }

    /// The `k` records that the history this evaluator wrote moves on,
    /// to go with it.
    pub(super) fn history_end_writes(&mut self) -> Result<WriteSet, StoreError> {
        let mut out = WriteSet::new();
        let mut newest: Vec<(String, i64)> = self.newest_history.drain().collect();
        newest.sort();
        for (sc, ms) in newest {
            let stored = match self.history_end(&sc)? {
                HistoryEnd::Unknown => continue,
                HistoryEnd::At(end) => Some(end),
                HistoryEnd::Empty => None,
            };
            if stored.max(self.ends_written.get(&sc).copied()) >= Some(ms) {
                continue;
            }
            out.push((rk::history_end(&sc), Some(ms.to_be_bytes().to_vec())));
            self.ends_written.insert(sc, ms);
        }
        Ok(out)
    }

    /// Writes a result (and its indexes, history and rollup deltas) if it
    /// differs from `old`. `counted`: whether `old` is in the rollups.
    pub(super) fn store_result(
        &mut self,
        def: &Definition,
        r: &str,
        old: Option<ResultRecord>,
        new: Option<ResultRecord>,
        t: &Trigger,
        counted: bool,
    ) -> Result<(), StoreError> {
        self.store_ready(def, r, Ready::of(old, new), t, counted, None)
    }

    /// [`Evaluator::store_result`] of a result made ready; `tail`, when
    /// known, is where its history ends (else it is read).
    pub(super) fn store_ready(
        &mut self,
        def: &Definition,
        r: &str,
        ready: Ready,
        t: &Trigger,
        counted: bool,
        tail: Option<HistoryTail>,
    ) -> Result<(), StoreError> {
        let Ready {
            old,
            new,
            encoded,
            same,
            identical,
        } = ready;
        let sc = def.id.as_str();
        if old.is_none() && new.is_none() {
            return Ok(());
        }
        if let (true, Some(n)) = (identical, &new) {
            if !counted {
                self.rollup_add(def, n, 1);
            }
            return Ok(());
        }
        index_changes(
            old.as_ref().map_or(&[][..], |o| &o.deps),
            new.as_ref().map_or(&[][..], |n| &n.deps),
            sc,
            r,
            self.out,
        );
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
            let tail = match tail {
                Some(tail) => tail,
                None if self.history_before(sc, at_ms)? => None,
                None => self.history_tail(sc, r)?,
            };
            if let Some((last_ms, next)) = tail
                && last_ms >= at_ms
            {
                (at_ms, seq) = (last_ms, next);
            }
            let newest = self.newest_history.entry(sc.to_string()).or_insert(at_ms);
            *newest = (*newest).max(at_ms);
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
        let bytes = encoded.or_else(|| new.as_ref().map(ResultRecord::encode));
        self.out.push((rk::result(sc, r), bytes));
        Ok(())
    }

    /// Where the history of `r`'s result ends: a scan of its history (a
    /// result changes a few times; a reverse seek on an unbounded iterator
    /// cost more in a replay, where most changes read it).
    fn history_tail(&self, sc: &str, r: &str) -> Result<HistoryTail, StoreError> {
        let hp = keys::prefix(rk::RESULT_HISTORY, &[sc.as_bytes(), r.as_bytes()]);
        let mut last: HistoryTail = None;
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
        Ok(last)
    }

    /// A scorecard no longer defined: results, indexes and rollups go;
    /// history stays, ending with a change to "does not apply". Results
    /// are read a chunk at a time (with [`super::evaluate::Parts`], a part
    /// deletes the results it read, and the next chunk starts after them).
    pub(super) fn drop_scorecard(&mut self, id: &str, t: &Trigger) -> Result<(), StoreError> {
        let stub = Definition {
            id: id.to_string(),
            title: String::new(),
            description: None,
            applies_to: Default::default(),
            levels: vec![],
            checks: vec![],
        };
        let mut results = OldResults::new(keys::prefix(rk::RESULT, &[id.as_bytes()]));
        self.whole_scorecard(|ev| {
            loop {
                let chunk = results.next_chunk(ev.store)?;
                if chunk.is_empty() {
                    return Ok(());
                }
                for (r, v) in chunk {
                    let old = ResultRecord::decode(&rk::result(id, &r), &v)?;
                    ev.store_result(&stub, &r, Some(old), None, t, false)?;
                    ev.part_done()?;
                }
            }
        })?;
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
}

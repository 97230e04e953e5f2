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
use crate::store::StoreError;
use chrono::DateTime;
use proto::derived_id;
use std::collections::BTreeMap;

impl Evaluator<'_> {
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
                    let old: ResultRecord = rec::decode(&rk::result(id, &r), &v)?;
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

//! Rollups: per scorecard, dimension (all, owner, system, domain) and
//! group, counts of results by level and by check; moved by each result
//! change and written once per batch.

use super::evaluate::Evaluator;
use super::{Trigger, get};
use crate::keys;
use crate::records as rec;
use crate::scorecard::lang::Definition;
use crate::scorecard::records::{self as rk, ResultRecord, Rollup};
use crate::store::StoreError;
use std::collections::{BTreeMap, BTreeSet};

impl Evaluator<'_> {
    /// Every rollup of a scorecard has one slot per level and per check,
    /// so that equal counts are equal bytes however they were reached.
    pub(super) fn rollup_add(&mut self, def: &Definition, r: &ResultRecord, sign: i64) {
        for (dim, group) in rk::memberships(r) {
            self.rollups
                .entry((def.id.clone(), dim.to_string(), group))
                .or_insert_with(|| Rollup::new(def.levels.len(), def.checks.len()))
                .add(r, sign);
        }
    }

    /// Applies the rollup deltas: onto the stored rollups, or for a
    /// redefined scorecard, onto nothing (its old rollups are replaced).
    pub(super) fn flush_rollups(
        &mut self,
        redefined: &BTreeMap<String, Trigger>,
    ) -> Result<(), StoreError> {
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

//! The read side of scorecards: definitions, results, rollups, trends,
//! exemptions and dry runs, as the API serves them.

use super::lang::Definition;
use super::records::{
    self as rk, CheckStatus, DefinitionRecord, DefinitionSet, ExemptionRecord, ExemptionSet,
    ResultChange, ResultRecord, Rollup,
};
use super::step;
use crate::keys;
use crate::read::Catalog;
use crate::records as rec;
use crate::store::StoreError;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// A scorecard as `GET /api/scorecards` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScorecardView {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub applies_to: BTreeMap<String, Vec<String>>,
    pub levels: Vec<String>,
    pub checks: Vec<CheckView>,
    pub source: String,
    pub file: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub level: String,
    pub weight: u32,
    /// The rule, written out.
    pub rule: String,
}

/// A definition file that was rejected (its previous text stays in force).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedFile {
    pub source: String,
    pub file: String,
    pub rejected_at: Option<DateTime<Utc>>,
    /// The scorecard the file's last good text defines, still in force.
    pub in_force: Option<String>,
    pub errors: Vec<super::DefinitionError>,
}

/// One check's result, for the API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcomeView {
    pub id: String,
    pub title: String,
    pub level: String,
    pub weight: u32,
    pub status: CheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<ExemptionRecord>,
}

/// One scorecard's result for one entity.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityCard {
    pub scorecard: String,
    pub title: String,
    pub entity_ref: String,
    pub level: Option<String>,
    pub score: u32,
    pub checks: Vec<CheckOutcomeView>,
    pub owners: Vec<String>,
    pub system: Option<String>,
    pub domain: Option<String>,
    /// When the outcome last changed, and why (from the history).
    pub changed_at: Option<DateTime<Utc>>,
    pub cause: Option<super::records::Cause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_change: Option<DateTime<Utc>>,
    /// Most recent result changes first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ResultChange>,
}

/// How rollups are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupBy {
    All,
    Owner,
    System,
    Domain,
}

impl RollupBy {
    pub fn parse(s: &str) -> Option<RollupBy> {
        Some(match s {
            "all" => RollupBy::All,
            "owner" => RollupBy::Owner,
            "system" => RollupBy::System,
            "domain" => RollupBy::Domain,
            _ => return None,
        })
    }
    pub fn dim(self) -> &'static str {
        match self {
            RollupBy::All => "all",
            RollupBy::Owner => "owner",
            RollupBy::System => "system",
            RollupBy::Domain => "domain",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelCount {
    /// `null`: no level reached.
    pub level: Option<String>,
    pub entities: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRate {
    pub id: String,
    pub passing: i64,
    pub exempt: i64,
    /// (passing + exempt) / entities.
    pub pass_rate: f64,
}

/// Aggregates of one group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRollup {
    pub group: String,
    pub entities: i64,
    pub levels: Vec<LevelCount>,
    pub mean_score: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRate>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollupView {
    pub scorecard: String,
    pub by: &'static str,
    pub groups: Vec<GroupRollup>,
}

/// One page of results.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultItem {
    pub entity_ref: String,
    pub level: Option<String>,
    pub score: u32,
    pub failing: Vec<String>,
    pub exempt: Vec<String>,
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendInterval {
    Day,
    Week,
}

/// What a trend asks for.
#[derive(Debug, Clone)]
pub struct TrendQuery {
    pub by: RollupBy,
    /// Only this group (`None`: every group).
    pub group: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: TrendInterval,
}

/// The state at the end of one interval.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendBucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub groups: Vec<GroupRollup>,
}

/// What a posted definition would give now, without saving it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub scorecard: ScorecardView,
    pub evaluated: usize,
    pub total: GroupRollup,
    /// The first results (by entity ref).
    pub entities: Vec<EntityCard>,
}

/// Most trend buckets one request may ask for.
pub const MAX_BUCKETS: i64 = 400;

impl Catalog {
    fn definition_records(&self) -> Result<Vec<DefinitionRecord>, StoreError> {
        let mut out = Vec::new();
        self.store().scan(&[rk::DEFINITION], None, &mut |k, v| {
            out.push(rec::decode(k, v));
            true
        })?;
        out.into_iter().collect()
    }

    /// Every scorecard in force, compiled, with where it came from.
    pub fn scorecard_definitions(
        &self,
    ) -> Result<Vec<(DefinitionInfo, Arc<Definition>)>, StoreError> {
        Ok(self
            .definition_records()?
            .into_iter()
            .filter_map(|d| {
                step::compiled(&d.file, &d.text)
                    .ok()
                    .map(|c| (DefinitionInfo::of(d), c))
            })
            .collect())
    }

    /// One scorecard in force, compiled, with where it came from.
    pub fn scorecard(
        &self,
        id: &str,
    ) -> Result<Option<(DefinitionInfo, Arc<Definition>)>, StoreError> {
        let key = rk::definition(id);
        let Some(bytes) = self.store().get(&key)? else {
            return Ok(None);
        };
        let d: DefinitionRecord = rec::decode(&key, &bytes)?;
        Ok(step::compiled(&d.file, &d.text)
            .ok()
            .map(|c| (DefinitionInfo::of(d), c)))
    }

    /// Definition files whose last text was rejected.
    pub fn rejected_definitions(&self) -> Result<Vec<RejectedFile>, StoreError> {
        let mut sets = Vec::new();
        self.store()
            .scan(&[rk::DEFINITION_SET], None, &mut |k, v| {
                sets.push((
                    String::from_utf8_lossy(&k[1..]).into_owned(),
                    rec::decode::<DefinitionSet>(k, v),
                ));
                true
            })?;
        let mut out = Vec::new();
        for (source, set) in sets {
            for (file, f) in set?.files {
                if !f.errors.is_empty() {
                    out.push(RejectedFile {
                        source: source.clone(),
                        file,
                        rejected_at: f.rejected_at,
                        in_force: f.in_force.map(|i| i.id),
                        errors: f.errors,
                    });
                }
            }
        }
        Ok(out)
    }

    pub fn scorecard_result(&self, id: &str, r: &str) -> Result<Option<ResultRecord>, StoreError> {
        ResultRecord::read(self.store().as_ref(), &rk::result(id, r))
    }

    /// Result changes of one entity under one scorecard, oldest first.
    pub fn scorecard_history(&self, id: &str, r: &str) -> Result<Vec<ResultChange>, StoreError> {
        let p = keys::prefix(rk::RESULT_HISTORY, &[id.as_bytes(), r.as_bytes()]);
        let mut out = Vec::new();
        self.store().scan(&p, None, &mut |k, v| {
            out.push(rec::decode(k, v));
            true
        })?;
        out.into_iter().collect()
    }

    /// The exemptions of one entity under one scorecard, revoked included.
    pub fn exemptions_of(&self, id: &str, r: &str) -> Result<ExemptionSet, StoreError> {
        let key = rk::exemptions(id, r);
        match self.store().get(&key)? {
            Some(b) => rec::decode(&key, &b),
            None => Ok(ExemptionSet::default()),
        }
    }

    /// Every exemption of a scorecard, revoked included.
    pub fn exemptions(&self, id: &str) -> Result<Vec<ExemptionInfo>, StoreError> {
        let p = keys::prefix(rk::EXEMPTIONS, &[id.as_bytes()]);
        let mut sets = Vec::new();
        self.store().scan(&p, None, &mut |k, v| {
            sets.push(rec::decode::<ExemptionSet>(k, v));
            true
        })?;
        let mut out = Vec::new();
        for s in sets {
            out.extend(s?.items.into_iter().map(ExemptionInfo::from));
        }
        Ok(out)
    }

    /// An exemption by id.
    pub fn exemption(&self, id: &Uuid) -> Result<Option<ExemptionInfo>, StoreError> {
        let key = rk::exemption_id(id);
        let Some(b) = self.store().get(&key)? else {
            return Ok(None);
        };
        let (sc, r): (String, String) = rec::decode(&key, &b)?;
        Ok(self
            .exemptions_of(&sc, &r)?
            .items
            .into_iter()
            .find(|x| x.exemption.id == *id)
            .map(ExemptionInfo::from))
    }

    /// Every scorecard's result for one entity, with failing checks and
    /// why, and the recent history of each (see [`newest_first`]).
    pub fn entity_cards(&self, r: &str, history: usize) -> Result<Vec<EntityCard>, StoreError> {
        let mut out = Vec::new();
        for (_, def) in self.scorecard_definitions()? {
            if let Some(result) = self.scorecard_result(&def.id, r)? {
                let exemptions = self.exemptions_of(&def.id, r)?;
                let mut card = card(&def, r, &result, &exemptions);
                let h = self.scorecard_history(&def.id, r)?;
                if let Some(last) = h.last() {
                    card.changed_at = Some(last.at);
                    card.cause = Some(last.cause.clone());
                }
                card.history = newest_first(h, history);
                out.push(card);
            }
        }
        Ok(out)
    }

    /// Every scorecard's result for one entity as it stood at `at_ms`, from
    /// the result history: level, score and the status of each check (the
    /// value seen and the reason are kept for the present result only),
    /// under the current definitions. A scorecard that did not apply then
    /// is left out.
    pub fn entity_cards_at(
        &self,
        r: &str,
        at_ms: i64,
        history: usize,
    ) -> Result<Vec<EntityCard>, StoreError> {
        let mut out = Vec::new();
        for (_, def) in self.scorecard_definitions()? {
            let mut h = self.scorecard_history(&def.id, r)?;
            h.retain(|c| c.at.timestamp_millis() <= at_ms);
            let Some(last) = h.last() else { continue };
            if !last.applies {
                continue;
            }
            // Each change names the checks whose status changed; folded in
            // order they give every check's status then.
            let mut status: HashMap<&str, CheckStatus> = HashMap::new();
            for c in &h {
                for (id, (_, after)) in &c.checks {
                    match after {
                        Some(s) => status.insert(id.as_str(), *s),
                        None => status.remove(id.as_str()),
                    };
                }
            }
            let checks = def
                .checks
                .iter()
                .filter_map(|c| {
                    status.get(c.id.as_str()).map(|s| CheckOutcomeView {
                        id: c.id.clone(),
                        title: c.title.clone(),
                        level: def.levels.get(c.level).cloned().unwrap_or_default(),
                        weight: c.weight,
                        status: *s,
                        value: None,
                        reason: None,
                        exemption: None,
                    })
                })
                .collect();
            let (level, score) = (last.level_after.clone(), last.score_after.unwrap_or(0));
            let (owners, system, domain) = (
                last.groups.clone(),
                last.system.clone(),
                last.domain.clone(),
            );
            let (changed_at, cause) = (last.at, last.cause.clone());
            out.push(EntityCard {
                scorecard: def.id.clone(),
                title: def.title.clone(),
                entity_ref: r.to_string(),
                level,
                score,
                checks,
                owners,
                system,
                domain,
                changed_at: Some(changed_at),
                cause: Some(cause),
                next_change: None,
                history: newest_first(h, history),
            });
        }
        Ok(out)
    }

    /// Results of one scorecard, by entity ref, after `cursor`.
    pub fn scorecard_results(
        &self,
        def: &Definition,
        level: Option<Option<usize>>,
        owner: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ResultItem>, Option<String>), StoreError> {
        if let Some(level) = level {
            return self.results_at_level(def, level, owner, cursor, limit);
        }
        let p = keys::prefix(rk::RESULT, &[def.id.as_bytes()]);
        let from = after(&p, cursor);
        let mut items = Vec::new();
        let mut more = false;
        let mut err = None;
        self.store().scan(&p, from.as_deref(), &mut |k, v| {
            let r = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            let result = match ResultRecord::decode(k, v) {
                Ok(x) => x,
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            };
            if owner.is_some_and(|o| !result.groups.iter().any(|g| g == o)) {
                return true;
            }
            if items.len() == limit {
                more = true;
                return false;
            }
            items.push(item(def, r, &result));
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let next = more
            .then(|| items.last().map(|i: &ResultItem| i.entity_ref.clone()))
            .flatten();
        Ok((items, next))
    }

    /// [`Catalog::scorecard_results`] as the results stood at `at_ms`, from
    /// the result history: each entity's last change at or before then,
    /// with the check statuses its changes recorded, under the scorecard's
    /// current definition.
    pub fn scorecard_results_at(
        &self,
        def: &Definition,
        level: Option<Option<usize>>,
        owner: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
        at_ms: i64,
    ) -> Result<(Vec<ResultItem>, Option<String>), StoreError> {
        let mut items = Vec::new();
        let mut more = false;
        each_timeline_of::<ResultChange>(
            self.store().as_ref(),
            &def.id,
            cursor,
            &mut |r, timeline| {
                let seen = timeline.partition_point(|c| c.at.timestamp_millis() <= at_ms);
                let Some(state) = seen.checked_sub(1).map(|j| &timeline[j]) else {
                    return true;
                };
                if !state.applies {
                    return true;
                }
                let level_now = state.level_index.filter(|l| *l < def.levels.len());
                if level.is_some_and(|want| want != level_now) {
                    return true;
                }
                if owner.is_some_and(|o| !state.groups.iter().any(|g| g == o)) {
                    return true;
                }
                if items.len() == limit {
                    more = true;
                    return false;
                }
                let status = statuses(&timeline[..seen]);
                let with = |s: CheckStatus| -> Vec<String> {
                    def.checks
                        .iter()
                        .filter(|c| status.get(c.id.as_str()) == Some(&Some(s)))
                        .map(|c| c.id.clone())
                        .collect()
                };
                items.push(ResultItem {
                    entity_ref: r.to_string(),
                    level: level_now.and_then(|l| def.levels.get(l).cloned()),
                    score: state.score_after.unwrap_or(0),
                    failing: with(CheckStatus::Fail),
                    exempt: with(CheckStatus::Exempt),
                    owners: state.groups.clone(),
                });
                true
            },
        )?;
        let next = more
            .then(|| items.last().map(|i: &ResultItem| i.entity_ref.clone()))
            .flatten();
        Ok((items, next))
    }

    /// Results at one level, through the level index.
    fn results_at_level(
        &self,
        def: &Definition,
        level: Option<usize>,
        owner: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ResultItem>, Option<String>), StoreError> {
        let p = keys::prefix(
            rk::BY_LEVEL,
            &[def.id.as_bytes(), rk::level_part(level).as_bytes()],
        );
        let mut from = after(&p, cursor);
        let mut items = Vec::new();
        let mut more = false;
        let mut refs = Vec::new();
        // Read in chunks: the index says which, the results say the rest.
        'chunks: loop {
            refs.clear();
            let mut last = None;
            self.store().scan(&p, from.as_deref(), &mut |k, _| {
                last = Some(k.to_vec());
                refs.push(String::from_utf8_lossy(&k[p.len()..]).into_owned());
                refs.len() < 256
            })?;
            let Some(mut next) = last else { break };
            next.push(0);
            from = Some(next);
            for r in &refs {
                let Some(result) = self.scorecard_result(&def.id, r)? else {
                    continue;
                };
                if owner.is_some_and(|o| !result.groups.iter().any(|g| g == o)) {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break 'chunks;
                }
                items.push(item(def, r.clone(), &result));
            }
        }
        let next = more
            .then(|| items.last().map(|i: &ResultItem| i.entity_ref.clone()))
            .flatten();
        Ok((items, next))
    }

    /// One group's rollup: a point lookup.
    pub fn scorecard_rollup_of(
        &self,
        def: &Definition,
        by: RollupBy,
        group: &str,
        with_checks: bool,
    ) -> Result<Option<GroupRollup>, StoreError> {
        let key = rk::rollup(&def.id, by.dim(), group);
        let Some(bytes) = self.store().get(&key)? else {
            return Ok(None);
        };
        let r: Rollup = rec::decode(&key, &bytes)?;
        Ok(Some(group_rollup(def, group.to_string(), &r, with_checks)))
    }

    /// The rollups of one scorecard.
    pub fn scorecard_rollup(
        &self,
        def: &Definition,
        by: RollupBy,
    ) -> Result<RollupView, StoreError> {
        self.scorecard_rollups(def, by, true)
    }

    /// The rollups of one scorecard; `with_checks: false` leaves out the
    /// pass rate per check (a smaller answer for many groups).
    pub fn scorecard_rollups(
        &self,
        def: &Definition,
        by: RollupBy,
        with_checks: bool,
    ) -> Result<RollupView, StoreError> {
        let p = keys::prefix(rk::ROLLUP, &[def.id.as_bytes(), by.dim().as_bytes()]);
        let mut rows = Vec::new();
        self.store().scan(&p, None, &mut |k, v| {
            let group = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            rows.push((group, rec::decode::<Rollup>(k, v)));
            true
        })?;
        let mut groups = Vec::new();
        for (group, r) in rows {
            groups.push(group_rollup(def, group, &r?, with_checks));
        }
        Ok(RollupView {
            scorecard: def.id.clone(),
            by: by.dim(),
            groups,
        })
    }

    /// The rollups as they stood at `at_ms` (only `group`'s, when given),
    /// from the result history, with the scorecard's current definition.
    pub fn scorecard_rollups_at(
        &self,
        def: &Definition,
        by: RollupBy,
        group: Option<&str>,
        at_ms: i64,
        with_checks: bool,
    ) -> Result<RollupView, StoreError> {
        let ids: Vec<&str> = def.checks.iter().map(|c| c.id.as_str()).collect();
        let mut sums: BTreeMap<String, Rollup> = BTreeMap::new();
        each_timeline(self.store().as_ref(), &def.id, &mut |timeline| {
            let seen = timeline.partition_point(|c| c.at.timestamp_millis() <= at_ms);
            let Some(state) = seen.checked_sub(1).map(|j| &timeline[j]) else {
                return;
            };
            if !state.applies {
                return;
            }
            let status = statuses(&timeline[..seen]);
            for g in trend_groups(state, by) {
                if group.is_some_and(|want| want != g) {
                    continue;
                }
                let r = sums
                    .entry(g)
                    .or_insert_with(|| Rollup::new(def.levels.len(), ids.len()));
                r.entities += 1;
                let l = state.level_index.map_or(0, |l| l + 1);
                if let Some(n) = r.levels.get_mut(l) {
                    *n += 1;
                }
                r.score_sum += i64::from(state.score_after.unwrap_or(0));
                for (i, id) in ids.iter().enumerate() {
                    match status.get(id) {
                        Some(Some(CheckStatus::Pass)) => r.checks[i].0 += 1,
                        Some(Some(CheckStatus::Exempt)) => r.checks[i].1 += 1,
                        _ => {}
                    }
                }
            }
        })?;
        Ok(RollupView {
            scorecard: def.id.clone(),
            by: by.dim(),
            groups: sums
                .into_iter()
                .map(|(g, r)| group_rollup(def, g, &r, with_checks))
                .collect(),
        })
    }

    /// The rollups at the end of each interval, from the result history.
    pub fn scorecard_trend(
        &self,
        def: &Definition,
        q: &TrendQuery,
    ) -> Result<Vec<TrendBucket>, StoreError> {
        let bounds = buckets(q.from, q.to, q.interval);
        let levels = def.levels.len();
        // Per group, per interval: what starts counting there (+) and what
        // stops (-). An entity's state usually holds over many intervals:
        // it costs two changes per group per state, not one per interval,
        // and the counts are summed over the intervals at the end.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut deltas: Vec<Vec<Rollup>> = Vec::new();
        // Each entity's timeline is read once (only what a trend needs of
        // each change), and its state at the end of every interval counted.
        each_timeline_of::<TrendState>(
            self.store().as_ref(),
            &def.id,
            None,
            &mut |_, timeline| {
                let mut count = |state: &TrendState, from: usize, to: usize| {
                    if !state.applies {
                        return;
                    }
                    let level = state.level_index.map_or(0, |l| l + 1);
                    let score = i64::from(state.score_after.unwrap_or(0));
                    for g in state.groups(q.by) {
                        if q.group.as_ref().is_some_and(|want| want != g) {
                            continue;
                        }
                        let at = match index.get(g) {
                            Some(&at) => at,
                            None => {
                                index.insert(g.to_string(), deltas.len());
                                deltas.push(vec![Rollup::new(levels, 0); bounds.len() + 1]);
                                deltas.len() - 1
                            }
                        };
                        for (b, sign) in [(from, 1), (to, -1)] {
                            let d = &mut deltas[at][b];
                            d.entities += sign;
                            if let Some(n) = d.levels.get_mut(level) {
                                *n += sign;
                            }
                            d.score_sum += sign * score;
                        }
                    }
                };
                let ends = bounds.iter().map(|(_, end)| end.timestamp_millis());
                state_runs(
                    timeline.len(),
                    |i| timeline[i].at.timestamp_millis(),
                    ends,
                    &mut |j, from, to| count(&timeline[j], from, to),
                );
                true
            },
        )?;
        let mut groups: Vec<(String, usize)> = index.into_iter().collect();
        groups.sort();
        let mut sums: Vec<Vec<(String, Rollup)>> = vec![Vec::new(); bounds.len()];
        for (g, at) in groups {
            let mut total = Rollup::new(levels, 0);
            for (b, d) in deltas[at].iter().take(bounds.len()).enumerate() {
                total.entities += d.entities;
                for (n, dn) in total.levels.iter_mut().zip(&d.levels) {
                    *n += dn;
                }
                total.score_sum += d.score_sum;
                if total.entities > 0 {
                    sums[b].push((g.clone(), total.clone()));
                }
            }
        }
        Ok(bounds
            .into_iter()
            .zip(sums)
            .map(|((start, end), groups)| TrendBucket {
                start,
                end,
                groups: groups
                    .into_iter()
                    .map(|(g, r)| group_rollup(def, g, &r, false))
                    .collect(),
            })
            .collect())
    }

    /// Evaluates `def` against the whole catalog as of `now`, saving nothing.
    pub fn dry_run(
        &self,
        def: &Definition,
        file: &str,
        now: DateTime<Utc>,
        keep: usize,
    ) -> Result<DryRun, StoreError> {
        let mut total = Rollup::new(def.levels.len(), def.checks.len());
        let mut entities = Vec::new();
        let mut evaluated = 0;
        step::evaluate_catalog(self.store().as_ref(), def, now, &mut |r, result| {
            evaluated += 1;
            total.add(&result, 1);
            if entities.len() < keep {
                entities.push(card(def, r, &result, &ExemptionSet::default()));
            }
        })?;
        Ok(DryRun {
            scorecard: view(def, "dry-run", file, now),
            evaluated,
            total: group_rollup(def, "*".into(), &total, true),
            entities,
        })
    }
}

/// Where a page after `cursor` (a ref key) starts under `prefix`.
fn after(prefix: &[u8], cursor: Option<&str>) -> Option<Vec<u8>> {
    cursor.map(|c| {
        let mut k = prefix.to_vec();
        k.extend_from_slice(c.as_bytes());
        k.push(0);
        k
    })
}

/// An exemption as the API serves it: what was granted, when, and its
/// revocation if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExemptionInfo {
    pub exemption: proto::Exemption,
    pub granted_at: DateTime<Utc>,
    pub event_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<RevocationInfo>,
}

/// Who revoked an exemption, when and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevocationInfo {
    pub at: DateTime<Utc>,
    pub author: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub event_id: Uuid,
}

impl From<ExemptionRecord> for ExemptionInfo {
    fn from(r: ExemptionRecord) -> Self {
        ExemptionInfo {
            exemption: r.exemption,
            granted_at: r.granted_at,
            event_id: r.event_id,
            revoked: r.revoked.map(|v| RevocationInfo {
                at: v.at,
                author: v.author,
                reason: v.reason,
                event_id: v.event_id,
            }),
        }
    }
}

/// The API view of a definition.
/// Where a scorecard in force came from, as its view shows it beside the
/// compiled definition (the stored record stays private to the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionInfo {
    pub id: String,
    /// The source whose file defines it.
    pub source: String,
    /// The definition file's path in that source.
    pub file: String,
    /// When the text in force was accepted.
    pub updated_at: DateTime<Utc>,
}

impl DefinitionInfo {
    fn of(d: DefinitionRecord) -> Self {
        DefinitionInfo {
            id: d.id,
            source: d.source,
            file: d.file,
            updated_at: d.updated_at,
        }
    }
}

pub fn view(
    def: &Definition,
    source: &str,
    file: &str,
    updated_at: DateTime<Utc>,
) -> ScorecardView {
    ScorecardView {
        id: def.id.clone(),
        title: def.title.clone(),
        description: def.description.clone(),
        applies_to: def
            .applies_to
            .conditions()
            .iter()
            .map(|c| (c.key.clone(), c.values.clone()))
            .collect(),
        levels: def.levels.clone(),
        checks: def
            .checks
            .iter()
            .map(|c| CheckView {
                id: c.id.clone(),
                title: c.title.clone(),
                description: c.description.clone(),
                level: def.levels.get(c.level).cloned().unwrap_or_default(),
                weight: c.weight,
                rule: c.rule.to_string(),
            })
            .collect(),
        source: source.to_string(),
        file: file.to_string(),
        updated_at,
    }
}

/// Calls `visit` with each entity's result history under scorecard `id`
/// (oldest first), one entity at a time, in ref order.
pub(crate) fn each_timeline(
    store: &dyn crate::store::Store,
    id: &str,
    visit: &mut dyn FnMut(&[ResultChange]),
) -> Result<(), StoreError> {
    each_timeline_of::<ResultChange>(store, id, None, &mut |_, timeline| {
        visit(timeline);
        true
    })
}

/// [`each_timeline`] with each entity's ref key, in ref order, from after
/// `after`, until `visit` says stop.
pub(crate) fn each_timeline_of<T: serde::de::DeserializeOwned>(
    store: &dyn crate::store::Store,
    id: &str,
    after: Option<&str>,
    visit: &mut dyn FnMut(&str, &[T]) -> bool,
) -> Result<(), StoreError> {
    let p = keys::prefix(rk::RESULT_HISTORY, &[id.as_bytes()]);
    let from = after.map(|a| {
        let mut k = p.clone();
        k.extend_from_slice(a.as_bytes());
        k.push(1);
        k
    });
    let mut stopped = false;
    let mut current: Option<Vec<u8>> = None;
    let mut timeline: Vec<T> = Vec::new();
    let mut err = None;
    store.scan(&p, from.as_deref(), &mut |k, v| {
        let rest = &k[p.len()..];
        let Some(end) = rest.len().checked_sub(rk::HISTORY_SUFFIX) else {
            return true;
        };
        let r = &rest[..end.saturating_sub(1)];
        if current.as_deref() != Some(r) {
            if let Some(done) = &current
                && !timeline.is_empty()
            {
                if !visit(&String::from_utf8_lossy(done), &timeline) {
                    stopped = true;
                    return false;
                }
                timeline.clear();
            }
            current = Some(r.to_vec());
        }
        match rec::decode::<T>(k, v) {
            Ok(c) => timeline.push(c),
            Err(e) => {
                err = Some(e);
                return false;
            }
        }
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if !stopped
        && let Some(done) = &current
        && !timeline.is_empty()
    {
        visit(&String::from_utf8_lossy(done), &timeline);
    }
    Ok(())
}

/// Each check's status after a run of an entity's result changes (the
/// last each recorded).
fn statuses(changes: &[ResultChange]) -> HashMap<&str, Option<CheckStatus>> {
    let mut status = HashMap::new();
    for c in changes {
        for (id, (_, after)) in &c.checks {
            status.insert(id.as_str(), *after);
        }
    }
    status
}

/// Each run of consecutive intervals (ending at `ends`, in order) at whose
/// ends a timeline of `len` changes (the `i`th at `at_ms(i)`, in order)
/// stands in one state: `visit(state, first interval, interval after the
/// run)`, in order. A change counts in the intervals ending after it;
/// intervals before the first change are in no run.
pub(crate) fn state_runs(
    len: usize,
    at_ms: impl Fn(usize) -> i64,
    ends: impl Iterator<Item = i64>,
    visit: &mut dyn FnMut(usize, usize, usize),
) {
    let mut run: Option<(usize, usize)> = None;
    let mut i = 0;
    let mut intervals = 0;
    for (b, end) in ends.enumerate() {
        intervals = b + 1;
        while i < len && at_ms(i) < end {
            i += 1;
        }
        let state = i.checked_sub(1);
        if run.map(|(j, _)| j) != state {
            if let Some((j, from)) = run.take() {
                visit(j, from, b);
            }
            run = state.map(|j| (j, b));
        }
    }
    if let Some((j, from)) = run {
        visit(j, from, intervals);
    }
}

/// What a trend reads of a result change (`ResultChange` without its
/// cause and checks, which are not decoded).
#[derive(serde::Deserialize)]
pub(crate) struct TrendState {
    at: DateTime<Utc>,
    #[serde(default)]
    score_after: Option<u32>,
    applies: bool,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    level_index: Option<usize>,
}

impl TrendState {
    /// [`trend_groups`], borrowed.
    fn groups(&self, by: RollupBy) -> Vec<&str> {
        match by {
            RollupBy::All => vec!["*"],
            RollupBy::Owner => self.groups.iter().map(String::as_str).collect(),
            RollupBy::System => self.system.as_deref().into_iter().collect(),
            RollupBy::Domain => self.domain.as_deref().into_iter().collect(),
        }
    }
}

pub(crate) fn trend_groups(c: &ResultChange, by: RollupBy) -> Vec<String> {
    match by {
        RollupBy::All => vec!["*".into()],
        RollupBy::Owner => c.groups.clone(),
        RollupBy::System => c.system.iter().cloned().collect(),
        RollupBy::Domain => c.domain.iter().cloned().collect(),
    }
}

/// The (start, end) of each interval from the one holding `from` to the
/// one holding `to`, days from midnight UTC, weeks from Monday.
fn buckets(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval: TrendInterval,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let day = |t: DateTime<Utc>| {
        Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
            .single()
            .unwrap_or(t)
    };
    let (mut start, step) = match interval {
        TrendInterval::Day => (day(from), Duration::days(1)),
        TrendInterval::Week => (
            day(from) - Duration::days(i64::from(from.weekday().num_days_from_monday())),
            Duration::weeks(1),
        ),
    };
    let mut out = Vec::new();
    while start <= to && (out.len() as i64) < MAX_BUCKETS {
        out.push((start, start + step));
        start += step;
    }
    out
}

fn group_rollup(def: &Definition, group: String, r: &Rollup, with_checks: bool) -> GroupRollup {
    let mut levels = vec![LevelCount {
        level: None,
        entities: r.levels.first().copied().unwrap_or(0),
    }];
    for (i, name) in def.levels.iter().enumerate() {
        levels.push(LevelCount {
            level: Some(name.clone()),
            entities: r.levels.get(i + 1).copied().unwrap_or(0),
        });
    }
    let n = r.entities.max(1) as f64;
    let checks = if with_checks {
        def.checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (passing, exempt) = r.checks.get(i).copied().unwrap_or((0, 0));
                CheckRate {
                    id: c.id.clone(),
                    passing,
                    exempt,
                    pass_rate: round3((passing + exempt) as f64 / n),
                }
            })
            .collect()
    } else {
        vec![]
    };
    GroupRollup {
        group,
        entities: r.entities,
        levels,
        mean_score: round3(r.score_sum as f64 / n),
        checks,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn item(def: &Definition, r: String, result: &ResultRecord) -> ResultItem {
    let ids = |s: CheckStatus| {
        def.checks
            .iter()
            .zip(&result.checks)
            .filter(|(_, c)| c.status == s)
            .map(|(d, _)| d.id.clone())
            .collect()
    };
    ResultItem {
        entity_ref: r,
        level: result.level.and_then(|l| def.levels.get(l).cloned()),
        score: result.score,
        failing: ids(CheckStatus::Fail),
        exempt: ids(CheckStatus::Exempt),
        owners: result.groups.clone(),
    }
}

fn card(def: &Definition, r: &str, result: &ResultRecord, exemptions: &ExemptionSet) -> EntityCard {
    let by_id: HashMap<Uuid, &ExemptionRecord> = exemptions
        .items
        .iter()
        .map(|x| (x.exemption.id, x))
        .collect();
    EntityCard {
        scorecard: def.id.clone(),
        title: def.title.clone(),
        entity_ref: r.to_string(),
        level: result.level.and_then(|l| def.levels.get(l).cloned()),
        score: result.score,
        checks: def
            .checks
            .iter()
            .zip(&result.checks)
            .map(|(c, o)| CheckOutcomeView {
                id: c.id.clone(),
                title: c.title.clone(),
                level: def.levels.get(c.level).cloned().unwrap_or_default(),
                weight: c.weight,
                status: o.status,
                value: o.value.clone(),
                reason: o.reason.clone(),
                exemption: o
                    .exemption
                    .and_then(|id| by_id.get(&id).map(|x| (*x).clone())),
            })
            .collect(),
        owners: result.groups.clone(),
        system: result.system.clone(),
        domain: result.domain.clone(),
        changed_at: None,
        cause: None,
        next_change: result.next_change,
        history: vec![],
    }
}

/// The last `n` changes of a result history (oldest first), newest first.
fn newest_first<T>(mut changes: Vec<T>, n: usize) -> Vec<T> {
    changes.reverse();
    changes.truncate(n);
    changes
}

//! Stored scorecard records and their keys (tables of [`crate::keys`]).
//!
//! | table | key | value |
//! |---|---|---|
//! | `q` | definition source | [`DefinitionSet`]: its files, what each holds in force, errors |
//! | `Q` | scorecard id | [`DefinitionRecord`]: the text in force |
//! | `A` | scorecard, ref key | [`ResultRecord`] |
//! | `a` | scorecard, ref key, time (ms, BE), sequence (BE u16), event id | [`ResultChange`] |
//! | `K` | scorecard, dimension, group | [`Rollup`] |
//! | `D` | dependency (`e:{ref}`, `p:{ref}` or `f:{subject}`: a [`crate::scorecard::step::Dependency`] as text), scorecard, ref key | empty |
//! | `T` | time (ms, BE), scorecard, ref key | empty: re-evaluate then |
//! | `X` | subject | [`FactRecord`] |
//! | `W` | scorecard, ref key | [`ExemptionSet`] |
//! | `w` | exemption id | (scorecard, ref key) |
//! | `V` | scorecard, level (`none` or its index), ref key | empty: results by level |
//! | `k` | scorecard | the time (ms, BE) of its newest result history record |

use crate::keys::{key, prefix};
use chrono::{DateTime, Utc};
use proto::Exemption;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

pub const DEFINITION_SET: u8 = b'q';
pub const DEFINITION: u8 = b'Q';
pub const RESULT: u8 = b'A';
pub const RESULT_HISTORY: u8 = b'a';
pub const ROLLUP: u8 = b'K';
pub const DEPENDENCY: u8 = b'D';
/// `d{dep}`: some result read `dep` (written with its first `D` row, never
/// removed), so that a dependency nobody read is known absent by a point
/// lookup, which bloom filters answer, instead of a seek into `D`.
pub const DEPENDED: u8 = b'd';
pub const DUE: u8 = b'T';
pub const FACTS: u8 = b'X';
/// Every version of every subject's facts: subject, 0, time (as
/// [`crate::keys::time_part`]) -> [`crate::records::encode_version`] of the
/// facts' JSON (or removed). Written once per change, whatever the
/// batching, so replicas and replays agree byte for byte.
pub const FACT_HISTORY: u8 = b'Y';
pub const EXEMPTIONS: u8 = b'W';
pub const EXEMPTION_ID: u8 = b'w';
pub const BY_LEVEL: u8 = b'V';
/// Per scorecard, where its result history ends: the time of its newest
/// record (ms, i64 BE), so a change stamped later knows without a read that
/// its result's history holds nothing at or after it.
pub const HISTORY_END: u8 = b'k';
/// Says every scorecard with history has its `k` record (before every
/// scorecard's: an id is never empty).
pub const HISTORY_END_COMPLETE: &[u8] = b"k\0complete";

/// The level part of a `V` key.
pub fn level_part(level: Option<usize>) -> String {
    level.map_or_else(|| "none".to_string(), |l| format!("{l:03}"))
}
pub fn by_level(scorecard: &str, level: Option<usize>, r: &str) -> Vec<u8> {
    key(
        BY_LEVEL,
        &[
            scorecard.as_bytes(),
            level_part(level).as_bytes(),
            r.as_bytes(),
        ],
    )
}

pub fn definition_set(source: &str) -> Vec<u8> {
    key(DEFINITION_SET, &[source.as_bytes()])
}
pub fn definition(id: &str) -> Vec<u8> {
    key(DEFINITION, &[id.as_bytes()])
}
pub fn result(scorecard: &str, r: &str) -> Vec<u8> {
    key(RESULT, &[scorecard.as_bytes(), r.as_bytes()])
}
/// Every history key of one result at one millisecond starts so.
pub fn result_history_at(scorecard: &str, r: &str, at_ms: i64) -> Vec<u8> {
    let mut k = prefix(RESULT_HISTORY, &[scorecard.as_bytes(), r.as_bytes()]);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k
}
/// A history key: time, then the number of earlier changes of the result
/// at the same millisecond (so changes that share a time, as the locations
/// of one listing do, keep the order they were applied in), then the event.
pub fn result_history(scorecard: &str, r: &str, at_ms: i64, seq: u16, event: &Uuid) -> Vec<u8> {
    let mut k = result_history_at(scorecard, r, at_ms);
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(event.as_bytes());
    k
}
/// Bytes after the ref key's separator in a history key.
pub const HISTORY_SUFFIX: usize = 8 + 2 + 16;
pub fn history_end(scorecard: &str) -> Vec<u8> {
    key(HISTORY_END, &[scorecard.as_bytes()])
}
pub fn rollup(scorecard: &str, dim: &str, group: &str) -> Vec<u8> {
    key(
        ROLLUP,
        &[scorecard.as_bytes(), dim.as_bytes(), group.as_bytes()],
    )
}
pub fn dependency(dep: &str, scorecard: &str, r: &str) -> Vec<u8> {
    key(
        DEPENDENCY,
        &[dep.as_bytes(), scorecard.as_bytes(), r.as_bytes()],
    )
}
pub fn depended(dep: &str) -> Vec<u8> {
    key(DEPENDED, &[dep.as_bytes()])
}
/// Says every `D` row of the store has its `d` marker (in the `d` table,
/// before every marker: a dependency is never empty).
pub const DEPENDED_COMPLETE: &[u8] = b"d\0complete";
pub fn due(at_ms: i64, scorecard: &str, r: &str) -> Vec<u8> {
    let mut k = vec![DUE];
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(scorecard.as_bytes());
    k.push(0);
    k.extend_from_slice(r.as_bytes());
    k
}
/// (time, scorecard, ref) of a `T` key.
pub fn parse_due(k: &[u8]) -> Option<(i64, String, String)> {
    let ms = i64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
    let rest = std::str::from_utf8(k.get(9..)?).ok()?;
    let (sc, r) = rest.split_once('\0')?;
    Some((ms, sc.to_string(), r.to_string()))
}
pub fn facts(subject: &str) -> Vec<u8> {
    key(FACTS, &[subject.as_bytes()])
}
pub fn fact_version(subject: &str, at_ms: i64) -> Vec<u8> {
    let mut k = prefix(FACT_HISTORY, &[subject.as_bytes()]);
    k.extend_from_slice(&crate::keys::time_part(at_ms));
    k
}
pub fn exemptions(scorecard: &str, r: &str) -> Vec<u8> {
    key(EXEMPTIONS, &[scorecard.as_bytes(), r.as_bytes()])
}
pub fn exemption_id(id: &Uuid) -> Vec<u8> {
    key(EXEMPTION_ID, &[id.as_hyphenated().to_string().as_bytes()])
}

/// The definition files of one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DefinitionSet {
    pub files: BTreeMap<String, DefinitionFile>,
}

/// One definition file: the text last published, the text in force (the
/// last one that compiled) and the errors of the last one, if it did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionFile {
    pub published_sha: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_force: Option<InForce>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::scorecard::DefinitionError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InForce {
    pub id: String,
    pub text: String,
}

/// The definition in force for one scorecard id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionRecord {
    pub id: String,
    pub source: String,
    pub file: String,
    pub text: String,
    pub updated_at: DateTime<Utc>,
    pub event_id: Uuid,
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Failing, but exempted: counts as passing until the exemption ends.
    Exempt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<Uuid>,
}

/// What caused an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    pub kind: CauseKind,
    /// The event, when one caused it (none for a time-bound change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// The location, subject, file, exemption or deadline.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// The entity itself, or its relations, changed.
    Entity,
    /// A related entity (owner, system, relation target) changed.
    Related,
    Fact,
    Definition,
    Exemption,
    /// A time-bound rule or an exemption's expiry came due.
    Time,
}

/// The result of one scorecard for one entity: a function of what it
/// read, so replicas hold the same bytes however their batches fell. When
/// and why it last changed is in its history (`a`), which records the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Index into the definition's levels; `None`: no level reached.
    pub level: Option<usize>,
    pub score: u32,
    pub checks: Vec<CheckResult>,
    /// Owner and its ancestor groups (through `childOf`), nearest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// What the evaluation read besides the entity, sorted: each a
    /// [`crate::scorecard::step::Dependency`] as text (`e:{ref}`, `p:{ref}`,
    /// `f:{subject}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_change: Option<DateTime<Utc>>,
}

impl ResultRecord {
    /// Whether two results differ in what they report (not in bookkeeping).
    pub fn same_outcome(&self, other: &ResultRecord) -> bool {
        self.level == other.level
            && self.score == other.score
            && self.checks == other.checks
            && self.groups == other.groups
            && self.system == other.system
            && self.domain == other.domain
    }
}

/// Record version of a result in its compact form (the first byte of an
/// `A` value; version 1, the JSON object, is still read).
pub const RESULT_COMPACT: u8 = 2;

impl ResultRecord {
    /// The stored form: a JSON array of the fields in order, each check an
    /// array of its status (0 pass, 1 fail, 2 exempt) and then its value,
    /// reason and exemption as far as any is present. As an object, a
    /// result of 20 checks took 1.7 KB, a third of it field names repeated
    /// per check, written again at every change and by every compaction.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RESULT_COMPACT];
        let compact = (
            self.level,
            self.score,
            self.checks.iter().map(CompactCheck).collect::<Vec<_>>(),
            &self.groups,
            &self.system,
            &self.domain,
            &self.deps,
            self.next_change,
        );
        serde_json::to_writer(&mut out, &compact).expect("results serialise infallibly");
        out
    }

    /// The result stored at `key`, if any, in either form.
    pub fn read(
        store: &dyn crate::store::Store,
        key: &[u8],
    ) -> Result<Option<ResultRecord>, crate::store::StoreError> {
        store
            .get(key)?
            .map(|b| ResultRecord::decode(key, &b))
            .transpose()
    }

    /// A stored result, in either form.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<ResultRecord, crate::store::StoreError> {
        let Some((&RESULT_COMPACT, rest)) = bytes.split_first() else {
            return crate::records::decode(key, bytes);
        };
        type Compact = (
            Option<usize>,
            u32,
            Vec<OwnedCheck>,
            Vec<String>,
            Option<String>,
            Option<String>,
            Vec<String>,
            Option<DateTime<Utc>>,
        );
        let (level, score, checks, groups, system, domain, deps, next_change): Compact =
            serde_json::from_slice(rest).map_err(|e| crate::store::StoreError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: e.to_string(),
            })?;
        Ok(ResultRecord {
            level,
            score,
            checks: checks.into_iter().map(|c| c.0).collect(),
            groups,
            system,
            domain,
            deps,
            next_change,
        })
    }
}

fn status_code(s: CheckStatus) -> u8 {
    match s {
        CheckStatus::Pass => 0,
        CheckStatus::Fail => 1,
        CheckStatus::Exempt => 2,
    }
}

/// A check as [`ResultRecord::encode`] writes it.
struct CompactCheck<'a>(&'a CheckResult);

impl Serialize for CompactCheck<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let c = self.0;
        let len = if c.exemption.is_some() {
            4
        } else if c.reason.is_some() {
            3
        } else if c.value.is_some() {
            2
        } else {
            1
        };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&status_code(c.status))?;
        if len > 1 {
            seq.serialize_element(&c.value)?;
        }
        if len > 2 {
            seq.serialize_element(&c.reason)?;
        }
        if len > 3 {
            seq.serialize_element(&c.exemption)?;
        }
        seq.end()
    }
}

/// A check as [`ResultRecord::decode`] reads it.
struct OwnedCheck(CheckResult);

impl<'de> Deserialize<'de> for OwnedCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OwnedCheck;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a check: [status, value, reason, exemption], from the status on")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OwnedCheck, A::Error> {
                let status = match seq.next_element::<u8>()? {
                    Some(0) => CheckStatus::Pass,
                    Some(1) => CheckStatus::Fail,
                    Some(2) => CheckStatus::Exempt,
                    Some(n) => {
                        return Err(serde::de::Error::custom(format!(
                            "unknown check status {n}"
                        )));
                    }
                    None => return Err(serde::de::Error::invalid_length(0, &self)),
                };
                let value = seq.next_element::<Option<Value>>()?.flatten();
                let reason = seq.next_element::<Option<String>>()?.flatten();
                let exemption = seq.next_element::<Option<Uuid>>()?.flatten();
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(5, &self));
                }
                Ok(OwnedCheck(CheckResult {
                    status,
                    value,
                    reason,
                    exemption,
                }))
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// One change of a result, with what caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultChange {
    pub at: DateTime<Utc>,
    pub cause: Cause,
    /// Level name before / after (`None`: no level, or no result).
    #[serde(default)]
    pub level_before: Option<String>,
    #[serde(default)]
    pub level_after: Option<String>,
    #[serde(default)]
    pub score_before: Option<u32>,
    #[serde(default)]
    pub score_after: Option<u32>,
    /// Whether the scorecard applies after the change.
    pub applies: bool,
    /// Checks whose status changed: id -> (before, after).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, (Option<CheckStatus>, Option<CheckStatus>)>,
    /// Owner groups, system and domain after the change (before, if it
    /// no longer applies): what trends group by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The level index after the change, for trends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_index: Option<usize>,
}

/// Aggregates of the results of one scorecard within one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    pub entities: i64,
    /// Entities per level: index 0 is "no level", then the levels in order.
    pub levels: Vec<i64>,
    pub score_sum: i64,
    /// Per check: (passing, exempt).
    pub checks: Vec<(i64, i64)>,
}

impl Rollup {
    pub fn new(levels: usize, checks: usize) -> Self {
        Rollup {
            entities: 0,
            levels: vec![0; levels + 1],
            score_sum: 0,
            checks: vec![(0, 0); checks],
        }
    }

    /// Adds (`sign` 1) or removes (-1) one result.
    pub fn add(&mut self, r: &ResultRecord, sign: i64) {
        self.entities += sign;
        let l = r.level.map_or(0, |l| l + 1);
        if l >= self.levels.len() {
            self.levels.resize(l + 1, 0);
        }
        self.levels[l] += sign;
        self.score_sum += sign * i64::from(r.score);
        if self.checks.len() < r.checks.len() {
            self.checks.resize(r.checks.len(), (0, 0));
        }
        for (slot, c) in self.checks.iter_mut().zip(&r.checks) {
            match c.status {
                CheckStatus::Pass => slot.0 += sign,
                CheckStatus::Exempt => slot.1 += sign,
                CheckStatus::Fail => {}
            }
        }
    }

    /// Adds another rollup (a delta).
    pub fn merge(&mut self, d: &Rollup) {
        self.entities += d.entities;
        if self.levels.len() < d.levels.len() {
            self.levels.resize(d.levels.len(), 0);
        }
        for (a, b) in self.levels.iter_mut().zip(&d.levels) {
            *a += b;
        }
        self.score_sum += d.score_sum;
        if self.checks.len() < d.checks.len() {
            self.checks.resize(d.checks.len(), (0, 0));
        }
        for (a, b) in self.checks.iter_mut().zip(&d.checks) {
            a.0 += b.0;
            a.1 += b.1;
        }
    }

    pub fn is_zero(&self) -> bool {
        self.entities == 0
            && self.score_sum == 0
            && self.levels.iter().all(|x| *x == 0)
            && self.checks.iter().all(|c| *c == (0, 0))
    }
}

/// The facts of one subject as the projector keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactRecord {
    pub observed_at: DateTime<Utc>,
    pub event_id: Uuid,
    pub source: String,
    pub facts: Value,
}

/// The exemptions of one scorecard for one entity, revoked ones included
/// (who exempted what stays readable).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExemptionSet {
    pub items: Vec<ExemptionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemptionRecord {
    pub exemption: Exemption,
    pub granted_at: DateTime<Utc>,
    pub event_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: DateTime<Utc>,
    pub author: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub event_id: Uuid,
}

impl ExemptionRecord {
    /// Whether it exempts at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.revoked.is_none() && self.exemption.expires_at.is_none_or(|e| e > now)
    }
}

/// The dimensions rollups are kept in.
pub const DIMENSIONS: [&str; 4] = ["all", "owner", "system", "domain"];

/// The groups one result counts in, per dimension.
pub fn memberships(r: &ResultRecord) -> Vec<(&'static str, String)> {
    let mut out = vec![("all", "*".to_string())];
    for g in &r.groups {
        out.push(("owner", g.clone()));
    }
    if let Some(s) = &r.system {
        out.push(("system", s.clone()));
    }
    if let Some(d) = &r.domain {
        out.push(("domain", d.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_compact_and_the_object_form_still_reads() {
        let check = |status, value: Option<Value>, reason: Option<&str>, exemption| CheckResult {
            status,
            value,
            reason: reason.map(str::to_string),
            exemption,
        };
        let x = Uuid::from_u128(7);
        let full = ResultRecord {
            level: Some(1),
            score: 85,
            checks: vec![
                check(CheckStatus::Pass, None, None, None),
                check(
                    CheckStatus::Pass,
                    Some(serde_json::json!(["group:default/a"])),
                    None,
                    None,
                ),
                check(CheckStatus::Fail, None, Some("it is missing"), None),
                check(
                    CheckStatus::Fail,
                    Some(serde_json::json!({"a": [1, false]})),
                    Some("r"),
                    None,
                ),
                check(CheckStatus::Exempt, None, None, Some(x)),
                check(
                    CheckStatus::Exempt,
                    Some(serde_json::json!(0)),
                    Some("r"),
                    Some(x),
                ),
            ],
            groups: vec!["group:default/a".into(), "group:default/p".into()],
            system: Some("system:default/s".into()),
            domain: None,
            deps: vec!["e:group:default/a".into()],
            next_change: Some(DateTime::from_timestamp_millis(1_700_000_000_123).unwrap()),
        };
        let bare = ResultRecord {
            level: None,
            score: 0,
            checks: vec![],
            groups: vec![],
            system: None,
            domain: None,
            deps: vec![],
            next_change: None,
        };
        for r in [&full, &bare] {
            let key = result("card", "component:default/a");
            let compact = r.encode();
            assert_eq!(compact[0], RESULT_COMPACT);
            assert_eq!(&ResultRecord::decode(&key, &compact).unwrap(), r);
            let object = crate::records::encode(r);
            assert_eq!(&ResultRecord::decode(&key, &object).unwrap(), r);
            assert!(compact.len() < object.len());
        }
        let key = result("card", "x");
        for bad in [
            &b"\x02[0,0,[[3]],[],null,null,[],null]"[..],
            b"\x02[0,0,[[]],[],null,null,[],null]",
            b"\x02{}",
        ] {
            assert!(
                ResultRecord::decode(&key, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn due_keys_sort_by_time_and_parse_back() {
        let a = due(5, "card", "component:default/a");
        let b = due(300, "card", "component:default/a");
        assert!(a < b);
        assert_eq!(
            parse_due(&b),
            Some((300, "card".into(), "component:default/a".into()))
        );
    }
}

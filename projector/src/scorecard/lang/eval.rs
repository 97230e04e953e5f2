//! Evaluation of a definition's checks against one entity: a pure
//! function of the entity, what it reads through [`Context`] (related
//! entities, facts) and the evaluation time.

use super::paths::{Path, Resolved};
use super::syntax::{Definition, FactProvider, Rule, Test, ValueSource, show};
use chrono::{DateTime, Utc};
use proto::RelationType;
use serde_json::Value;

/// What evaluation may read besides the entity itself.
pub trait Context {
    /// The served JSON of another entity (a relation's target).
    fn entity(&mut self, refkey: &str) -> Option<std::sync::Arc<Value>>;
    /// The facts of the entity's subject of `provider`: the subject key
    /// (when the entity links to one) and its facts (when known).
    fn facts(
        &mut self,
        entity: &Value,
        provider: FactProvider,
    ) -> (Option<String>, Option<std::sync::Arc<Value>>);
    /// A remembered outcome of a rule on a related entity (many entities
    /// share one owner or system); `None`: evaluate it. A context that
    /// remembers must also replay what that evaluation read.
    /// The inner `None`: the entity is not in the catalog.
    fn recall(&mut self, _key: &Recall) -> Option<Remembered> {
        None
    }
    /// Starts recording what is read, for [`Context::remember`].
    fn begin(&mut self) {}
    /// Keeps an outcome and what was read since the matching `begin`.
    fn remember(&mut self, _key: Recall, _value: Remembered) {}
}

/// A remembered outcome (`None`: no such entity) and its next change.
pub type Remembered = (Option<Outcome>, Option<DateTime<Utc>>);

/// Which outcome [`Context::recall`] looks for: a rule (by address, valid
/// while its definition lives), a related entity and the evaluation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recall {
    pub rule: usize,
    pub entity: String,
    pub at_ms: i64,
}

/// The outcome of a rule for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub pass: bool,
    /// False when the value could not be read (facts denied, unknown or
    /// not linked): such a rule fails, and so does its negation.
    pub known: bool,
    /// The value seen (a failing leaf's, for combinators).
    pub value: Option<Value>,
    /// Why it failed (`None` when it passed).
    pub reason: Option<String>,
}

/// The outcome of every check of a definition for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub checks: Vec<Outcome>,
    /// Moments after `now` at which a time-bound rule changes its answer.
    pub next_change: Option<DateTime<Utc>>,
}

struct Eval<'c> {
    ctx: &'c mut dyn Context,
    now: DateTime<Utc>,
    next_change: Option<DateTime<Utc>>,
}

impl Definition {
    /// Evaluates every check against `entity` as of `now`.
    pub fn evaluate(
        &self,
        entity: &Value,
        ctx: &mut dyn Context,
        now: DateTime<Utc>,
    ) -> Evaluation {
        let mut ev = Eval {
            ctx,
            now,
            next_change: None,
        };
        let checks = self
            .checks
            .iter()
            .map(|c| ev.rule(&c.rule, entity))
            .collect();
        Evaluation {
            checks,
            next_change: ev.next_change,
        }
    }
}

fn pass() -> Outcome {
    Outcome {
        pass: true,
        known: true,
        value: None,
        reason: None,
    }
}

impl Eval<'_> {
    fn merge_next(&mut self, next: Option<DateTime<Utc>>) {
        if let Some(n) = next {
            self.next_change = Some(self.next_change.map_or(n, |c| c.min(n)));
        }
    }

    fn rule(&mut self, rule: &Rule, entity: &Value) -> Outcome {
        match rule {
            Rule::All(rules) => {
                for r in rules {
                    let o = self.rule(r, entity);
                    if !o.pass {
                        return o;
                    }
                }
                pass()
            }
            Rule::Any(rules) => {
                let mut reasons = Vec::new();
                let mut value = None;
                for r in rules {
                    let o = self.rule(r, entity);
                    if o.pass {
                        return o;
                    }
                    value = value.or(o.value);
                    reasons.extend(o.reason);
                }
                Outcome {
                    pass: false,
                    known: true,
                    value,
                    reason: Some(format!("none of these hold: {}", reasons.join("; "))),
                }
            }
            Rule::Not(inner) => {
                let o = self.rule(inner, entity);
                if !o.known {
                    return o;
                }
                Outcome {
                    pass: !o.pass,
                    known: true,
                    reason: o
                        .pass
                        .then(|| format!("expected not {inner}, and it holds")),
                    value: o.value,
                }
            }
            Rule::Relation {
                relation,
                target_kind,
                target,
            } => self.relation(
                rule,
                *relation,
                target_kind.as_deref(),
                target.as_deref(),
                entity,
            ),
            Rule::Value { source, test } => self.value(rule, source, test, entity),
        }
    }

    fn relation(
        &mut self,
        rule: &Rule,
        relation: RelationType,
        kind: Option<&str>,
        target: Option<&Rule>,
        entity: &Value,
    ) -> Outcome {
        let targets: Vec<&str> = entity
            .get("relations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("type").and_then(Value::as_str) == Some(relation.as_str()))
            .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
            .collect();
        let seen = || {
            Some(Value::from(
                targets.iter().map(|t| Value::from(*t)).collect::<Vec<_>>(),
            ))
        };
        let of_kind: Vec<&str> = targets
            .iter()
            .copied()
            .filter(|t| {
                kind.is_none_or(|k| {
                    t.split(':')
                        .next()
                        .is_some_and(|tk| tk.eq_ignore_ascii_case(k))
                })
            })
            .collect();
        if of_kind.is_empty() {
            let found = if targets.is_empty() {
                format!("it has no {} relation", relation.as_str())
            } else {
                format!("found {}", targets.join(", "))
            };
            return Outcome {
                pass: false,
                known: true,
                value: seen(),
                reason: Some(format!("expected {rule}; {found}")),
            };
        }
        let Some(target) = target else {
            return Outcome {
                pass: true,
                known: true,
                value: seen(),
                reason: None,
            };
        };
        let mut reasons = Vec::new();
        for t in &of_kind {
            let key = t.to_lowercase();
            let recall = Recall {
                rule: target as *const Rule as usize,
                entity: key.clone(),
                at_ms: self.now.timestamp_millis(),
            };
            let outcome = match self.ctx.recall(&recall) {
                Some((o, next)) => {
                    self.merge_next(next);
                    o
                }
                None => {
                    self.ctx.begin();
                    let outer = self.next_change.take();
                    let o = self.ctx.entity(&key).map(|te| self.rule(target, &te));
                    let inner = std::mem::replace(&mut self.next_change, outer);
                    self.merge_next(inner);
                    self.ctx.remember(recall, (o.clone(), inner));
                    o
                }
            };
            match outcome {
                Some(o) => {
                    if o.pass {
                        return Outcome {
                            pass: true,
                            known: true,
                            value: seen(),
                            reason: None,
                        };
                    }
                    reasons.push(format!("{t}: {}", o.reason.unwrap_or_default()));
                }
                None => reasons.push(format!("{t} is not in the catalog")),
            }
        }
        Outcome {
            pass: false,
            known: true,
            value: seen(),
            reason: Some(format!("expected {rule}; {}", reasons.join("; "))),
        }
    }

    fn value(&mut self, rule: &Rule, source: &ValueSource, test: &Test, entity: &Value) -> Outcome {
        let facts;
        let (root, path): (&Value, &Path) = match source {
            ValueSource::Field(p) => (entity, p),
            ValueSource::Fact { provider, path } => match self.ctx.facts(entity, *provider) {
                (_, Some(f)) => {
                    facts = f;
                    (&*facts, path)
                }
                (subject, None) => {
                    let why = match subject {
                        Some(s) => format!("no facts known for {s} yet"),
                        None => provider.unlinked().to_string(),
                    };
                    return Outcome {
                        pass: false,
                        known: false,
                        value: None,
                        reason: Some(format!("expected {rule}; {why}")),
                    };
                }
            },
        };
        let values = match path.resolve(root) {
            Resolved::Values(v) => v,
            Resolved::Denied(why) => {
                return Outcome {
                    pass: false,
                    known: false,
                    value: None,
                    reason: Some(format!("expected {rule}; {why}")),
                };
            }
        };
        let values: Vec<&Value> = values.into_iter().filter(|v| !is_empty(v)).collect();
        let seen = match values.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            many => Some(Value::from(
                many.iter().map(|v| (*v).clone()).collect::<Vec<_>>(),
            )),
        };
        let ok = match test {
            Test::Exists(want) => values.is_empty() != *want,
            Test::Equals(want) => values.iter().any(|v| same(v, want)),
            Test::In(wants) => values.iter().any(|v| wants.iter().any(|w| same(v, w))),
            Test::Matches(re) => values.iter().any(|v| match v {
                Value::String(s) => re.is_match(s),
                Value::Number(_) | Value::Bool(_) => re.is_match(&v.to_string()),
                _ => false,
            }),
            Test::Compare(c, n) => values
                .iter()
                .any(|v| number(v).is_some_and(|x| c.holds(x, *n))),
            Test::Within(d) => {
                let mut ok = false;
                for v in &values {
                    if let Some(t) = v
                        .as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    {
                        let until = t.with_timezone(&Utc) + *d;
                        // The deadline itself is outside: evaluating at it
                        // sees the change.
                        if until > self.now {
                            ok = true;
                            self.next_change =
                                Some(self.next_change.map_or(until, |n| n.min(until)));
                        }
                    }
                }
                ok
            }
        };
        if ok {
            return Outcome {
                pass: true,
                known: true,
                value: seen,
                reason: None,
            };
        }
        let found = match &seen {
            None => "it is missing".to_string(),
            Some(v) => match test {
                Test::Compare(..) if values.iter().all(|v| number(v).is_none()) => {
                    format!("found {}, not a number", show(v))
                }
                Test::Within(_)
                    if values.iter().all(|v| {
                        v.as_str()
                            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                            .is_none()
                    }) =>
                {
                    format!("found {}, not a timestamp", show(v))
                }
                _ => format!("found {}", show(v)),
            },
        };
        Outcome {
            pass: false,
            known: true,
            value: seen,
            reason: Some(format!("expected {rule}; {found}")),
        }
    }
}

/// Missing, empty text, an empty list or map all count as absent.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

/// Equality of scalars, whichever side is text: numbers by value (`3` and
/// `"3"` are equal), everything else as text without regard to case.
fn same(v: &Value, want: &Value) -> bool {
    if let (Some(a), Some(b)) = (number(v), number(want)) {
        return a == b;
    }
    match (scalar(v), scalar(want)) {
        (Some(a), Some(b)) => a.to_lowercase() == b.to_lowercase(),
        _ => false,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

//! The compiled form of a scorecard: its definition, checks and typed rule
//! tree, the errors compilation reports, and how a rule reads in a failing
//! check's reason.

use super::applies::EntityMatch;
use super::paths::Path;
use chrono::Duration;
use proto::RelationType;
use regex::Regex;
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// What is wrong with a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DefinitionError {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub reason: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.check {
            Some(c) => write!(f, "{}: check `{c}`: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// A compiled scorecard.
#[derive(Debug, Clone)]
pub struct Definition {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub applies_to: EntityMatch,
    pub levels: Vec<String>,
    pub checks: Vec<Check>,
}

/// One check: a rule, the level it belongs to and its weight.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    /// Index into [`Definition::levels`].
    pub level: usize,
    pub weight: u32,
    pub rule: Rule,
}

/// A rule.
#[derive(Debug, Clone)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Value {
        source: ValueSource,
        test: Test,
    },
    Relation {
        relation: RelationType,
        target_kind: Option<String>,
        target: Option<Box<Rule>>,
    },
}

/// The relation types scorecards read of an entity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RelationsRead {
    /// None: no scorecard is defined.
    #[default]
    Nothing,
    Types(std::collections::BTreeSet<RelationType>),
    /// Any: a field path or an `applies_to` condition reads `relations`.
    All,
}

impl RelationsRead {
    /// Whether a relation of type `t` may be read.
    pub fn reads(&self, t: RelationType) -> bool {
        match self {
            RelationsRead::Nothing => false,
            RelationsRead::Types(types) => types.contains(&t),
            RelationsRead::All => true,
        }
    }

    /// Adds what `def` reads: its `relation` rules (nested ones read the
    /// targets' relations), field paths into `relations`, `applies_to`
    /// conditions on them, and what every result is grouped by (the owner
    /// and its parent groups, the system and its domain).
    pub fn add(&mut self, def: &Definition) {
        use RelationType::{ChildOf, OwnedBy, PartOf};
        if matches!(self, RelationsRead::All) {
            return;
        }
        let mut types: std::collections::BTreeSet<RelationType> = match std::mem::take(self) {
            RelationsRead::Types(t) => t,
            _ => Default::default(),
        };
        types.extend([OwnedBy, PartOf, ChildOf]);
        let mut all = def.applies_to.reads_relations();
        fn walk(rule: &Rule, types: &mut std::collections::BTreeSet<RelationType>, all: &mut bool) {
            match rule {
                Rule::All(rules) | Rule::Any(rules) => {
                    rules.iter().for_each(|r| walk(r, types, all));
                }
                Rule::Not(r) => walk(r, types, all),
                Rule::Value { source, .. } => {
                    if let ValueSource::Field(path) = source
                        && matches!(path.segments.first(), Some(super::paths::Segment::Key(k)) if k == "relations")
                    {
                        *all = true;
                    }
                }
                Rule::Relation {
                    relation, target, ..
                } => {
                    types.insert(*relation);
                    if let Some(t) = target {
                        walk(t, types, all);
                    }
                }
            }
        }
        for check in &def.checks {
            walk(&check.rule, &mut types, &mut all);
        }
        *self = if all {
            RelationsRead::All
        } else {
            RelationsRead::Types(types)
        };
    }
}

/// Where a value comes from.
#[derive(Debug, Clone)]
pub enum ValueSource {
    /// A path in the entity.
    Field(Path),
    /// A path in the facts of the entity's subject of one provider.
    Fact { provider: FactProvider, path: Path },
}

/// Providers of facts an entity can be linked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactProvider {
    /// The GitHub repository the entity lives in.
    Github,
    /// The cloud resource (AWS, GCP, Azure) the entity was made of.
    Cloud,
}

impl FactProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            FactProvider::Github => "github",
            FactProvider::Cloud => "cloud",
        }
    }

    /// Why an entity has no subject of this provider.
    pub fn unlinked(self) -> &'static str {
        match self {
            FactProvider::Github => {
                "the entity is not linked to a GitHub repository (no github.com/project-slug annotation or GitHub location)"
            }
            FactProvider::Cloud => {
                "the entity is not a cloud resource (it was not read by an aws, gcp or azure source)"
            }
        }
    }
}

/// A test of the value(s) a path yields.
#[derive(Debug, Clone)]
pub enum Test {
    Exists(bool),
    Equals(Value),
    In(Vec<Value>),
    Matches(Regex),
    Compare(Cmp, f64),
    /// A timestamp no older than this.
    Within(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
    pub(super) fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Gte => a >= b,
            Cmp::Lt => a < b,
            Cmp::Lte => a <= b,
        }
    }
}

// --------------------------------------------------------------- describe

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, rules: &[Rule], sep: &str| {
            write!(f, "(")?;
            for (i, r) in rules.iter().enumerate() {
                if i > 0 {
                    write!(f, " {sep} ")?;
                }
                write!(f, "{r}")?;
            }
            write!(f, ")")
        };
        match self {
            Rule::All(rs) => join(f, rs, "and"),
            Rule::Any(rs) => join(f, rs, "or"),
            Rule::Not(r) => write!(f, "not {r}"),
            Rule::Relation {
                relation,
                target_kind,
                target,
            } => {
                write!(f, "relation {}", relation.as_str())?;
                if let Some(k) = target_kind {
                    write!(f, " to a {k}")?;
                }
                if let Some(t) = target {
                    write!(f, " whose {t}")?;
                }
                Ok(())
            }
            Rule::Value { source, test } => {
                match source {
                    ValueSource::Field(p) => write!(f, "{}", p.text)?,
                    ValueSource::Fact { provider, path } => {
                        write!(f, "fact {}.{}", provider.as_str(), path.text)?
                    }
                }
                match test {
                    Test::Exists(true) => write!(f, " exists"),
                    Test::Exists(false) => write!(f, " is absent"),
                    Test::Equals(v) => write!(f, " = {}", show(v)),
                    Test::In(vs) => write!(
                        f,
                        " in [{}]",
                        vs.iter().map(show).collect::<Vec<_>>().join(", ")
                    ),
                    Test::Matches(re) => write!(f, " matches /{}/", re.as_str()),
                    Test::Compare(c, n) => write!(f, " {} {n}", c.symbol()),
                    Test::Within(d) => write!(f, " within {}", show_duration(*d)),
                }
            }
        }
    }
}

pub(super) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_duration(d: Duration) -> String {
    let s = d.num_seconds();
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

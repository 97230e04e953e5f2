//! The scorecard language: a definition file (YAML) compiled into typed
//! rules, and their evaluation against one entity.
//!
//! ```yaml
//! id: production-readiness
//! title: Production readiness
//! applies_to: {kind: component, spec.lifecycle: production}
//! levels: [bronze, silver, gold]
//! checks:
//!   - id: owner-is-group
//!     level: bronze
//!     weight: 3
//!     rule: {relation: ownedBy, target_kind: group}
//!   - id: reviews
//!     level: gold
//!     rule: {fact: github.branch_protection.required_reviews, gte: 2}
//! ```
//!
//! A rule is exactly one of: `all: [rules]`, `any: [rules]`, `not: rule`,
//! `field: PATH` or `fact: PROVIDER.PATH` with one operator (`exists`,
//! `equals`, `in`, `matches`, `gt`, `gte`, `lt`, `lte`, `within`), or
//! `relation: TYPE` with an optional `target_kind` and an optional `target`
//! rule that a related entity must pass. Paths are dotted, with bracketed
//! keys (`metadata.annotations["pagerduty.com/service-id"]`), indexes
//! (`[0]`) and `[*]` (any item). Text compares without regard to case.
//!
//! Compilation collects every error, each naming the file, the check and
//! the reason. Evaluation is a pure function of the entity, what it reads
//! through [`Context`] (related entities, facts) and the evaluation time.

use chrono::{DateTime, Duration, Utc};
use proto::RelationType;
use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// Largest definition file accepted.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Deepest nesting of rules.
const MAX_RULE_DEPTH: usize = 8;

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

/// Which entities a scorecard applies to: every key must match one of its
/// values (no values: the key must be present). Keys and values as in the
/// catalog's `filter` parameter, compared without regard to case.
#[derive(Debug, Clone, Default)]
pub struct EntityMatch {
    pub conditions: Vec<(String, Vec<String>)>,
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
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Gte => a >= b,
            Cmp::Lt => a < b,
            Cmp::Lte => a <= b,
        }
    }
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub text: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Key(String),
    Index(usize),
    Any,
}

impl Path {
    /// Parses `a.b["c.d"][0][*].e`.
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut segments = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("empty path".into());
        }
        let mut expect_key = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = if let Some(quoted) = r.strip_prefix('"') {
                    let close = quoted
                        .find('"')
                        .ok_or_else(|| format!("path `{text}`: unterminated quoted key"))?;
                    segments.push(Segment::Key(quoted[..close].to_string()));
                    1 + close + 1
                } else {
                    let close = r
                        .find(']')
                        .ok_or_else(|| format!("path `{text}`: missing `]`"))?;
                    let inner = r[..close].trim();
                    if inner == "*" {
                        segments.push(Segment::Any);
                    } else {
                        let i = inner.parse::<usize>().map_err(|_| {
                            format!(
                                "path `{text}`: `[{inner}]` is neither an index, `*` nor a quoted key"
                            )
                        })?;
                        segments.push(Segment::Index(i));
                    }
                    close
                };
                rest = r[end..]
                    .strip_prefix(']')
                    .ok_or_else(|| format!("path `{text}`: missing `]`"))?;
                expect_key = false;
            } else if let Some(r) = rest.strip_prefix('.') {
                if expect_key {
                    return Err(format!("path `{text}`: empty segment"));
                }
                rest = r;
                expect_key = true;
            } else {
                if !expect_key {
                    return Err(format!("path `{text}`: expected `.` or `[`"));
                }
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let key = &rest[..end];
                if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "[]\"".contains(c))
                {
                    return Err(format!("path `{text}`: bad segment `{key}`"));
                }
                segments.push(Segment::Key(key.to_string()));
                rest = &rest[end..];
                expect_key = false;
            }
        }
        if expect_key {
            return Err(format!("path `{text}`: ends with `.`"));
        }
        Ok(Path {
            text: text.trim().to_string(),
            segments,
        })
    }

    /// Every value the path reaches in `root` (`[*]` fans out).
    pub fn resolve<'v>(&self, root: &'v Value) -> Resolved<'v> {
        let mut current = vec![root];
        for (depth, seg) in self.segments.iter().enumerate() {
            let mut next = Vec::new();
            for v in current {
                if let Some(reason) = denied(v) {
                    let what = match prefix_text(&self.segments[..depth]) {
                        p if p.is_empty() => "the facts".to_string(),
                        p => p,
                    };
                    return Resolved::Denied(format!("{what} is not readable: {reason}"));
                }
                match (seg, v) {
                    (Segment::Key(k), Value::Object(m)) => {
                        if let Some(x) = get_key(m, k) {
                            next.push(x);
                        }
                    }
                    (Segment::Index(i), Value::Array(a)) => {
                        if let Some(x) = a.get(*i) {
                            next.push(x);
                        }
                    }
                    (Segment::Any, Value::Array(a)) => next.extend(a.iter()),
                    (Segment::Any, Value::Object(m)) => next.extend(m.values()),
                    _ => {}
                }
            }
            current = next;
        }
        if let Some(reason) = current.iter().find_map(|v| denied(v)) {
            return Resolved::Denied(format!("{} is not readable: {reason}", self.text));
        }
        Resolved::Values(current.into_iter().filter(|v| !v.is_null()).collect())
    }
}

/// What a path reached.
pub enum Resolved<'v> {
    Values(Vec<&'v Value>),
    /// The source may not read this part (a fact recorded as denied).
    Denied(String),
}

/// Facts that the source could not read are `{"access": "denied", "reason"}`.
fn denied(v: &Value) -> Option<&str> {
    let m = v.as_object()?;
    (m.get("access")?.as_str()? == "denied")
        .then(|| m.get("reason").and_then(Value::as_str).unwrap_or("denied"))
}

fn prefix_text(segs: &[Segment]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Segment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
            Segment::Any => s.push_str("[*]"),
        }
    }
    s
}

/// An object key, exactly or else without regard to case.
fn get_key<'v>(m: &'v Map<String, Value>, k: &str) -> Option<&'v Value> {
    m.get(k).or_else(|| {
        m.iter()
            .find(|(mk, _)| mk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    })
}

// ---------------------------------------------------------------- compile

/// Compiles one definition file. Every problem found is returned.
pub fn compile(file: &str, text: &str) -> Result<Definition, Vec<DefinitionError>> {
    let err = |check: Option<&str>, reason: String| DefinitionError {
        file: file.to_string(),
        check: check.map(str::to_string),
        reason,
    };
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(vec![err(
            None,
            format!(
                "definition is {} bytes, more than the {MAX_DEFINITION_BYTES} allowed",
                text.len()
            ),
        )]);
    }
    let doc: Value = serde_saphyr::from_str(text)
        .map_err(|e| vec![err(None, format!("not valid YAML: {e}"))])?;
    let Value::Object(doc) = doc else {
        return Err(vec![err(None, "a definition must be a mapping".into())]);
    };
    let mut errors = Vec::new();
    const TOP: [&str; 6] = [
        "id",
        "title",
        "description",
        "applies_to",
        "levels",
        "checks",
    ];
    for k in doc.keys() {
        if !TOP.contains(&k.as_str()) {
            errors.push(err(
                None,
                format!("unknown field `{k}` (expected one of {})", TOP.join(", ")),
            ));
        }
    }
    let id = match doc.get("id").and_then(Value::as_str) {
        Some(id) if valid_id(id) => id.to_string(),
        Some(id) => {
            errors.push(err(
                None,
                format!(
                    "id `{id}` must be lower-case letters, digits, `-`, `_` or `.`, at most 100"
                ),
            ));
            String::new()
        }
        None => {
            errors.push(err(None, "`id` is required (a string)".into()));
            String::new()
        }
    };
    let title = opt_string(&doc, "title").unwrap_or_else(|| id.clone());
    let description = opt_string(&doc, "description");
    let applies_to = match doc.get("applies_to") {
        None => EntityMatch::default(),
        Some(v) => compile_match(v).unwrap_or_else(|reason| {
            errors.push(err(None, format!("applies_to: {reason}")));
            EntityMatch::default()
        }),
    };
    let mut levels: Vec<String> = Vec::new();
    match doc.get("levels") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for item in items {
                match item.as_str() {
                    Some(l) if !l.trim().is_empty() && !levels.iter().any(|x| x == l) => {
                        levels.push(l.to_string())
                    }
                    _ => errors.push(err(
                        None,
                        format!("levels: {item} is not a distinct, non-empty name"),
                    )),
                }
            }
        }
        _ => errors.push(err(
            None,
            "`levels` is required: a list of level names, lowest first".into(),
        )),
    }
    let mut checks = Vec::new();
    match doc.get("checks") {
        Some(Value::Array(items)) => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                match compile_check(item, &levels) {
                    Ok(c) => {
                        if !seen.insert(c.id.clone()) {
                            errors.push(err(Some(&c.id), "duplicate check id".into()));
                        }
                        checks.push(c);
                    }
                    Err((name, reason)) => {
                        let name = name.unwrap_or_else(|| format!("#{}", i + 1));
                        errors.push(err(Some(&name), reason));
                    }
                }
            }
        }
        _ => errors.push(err(None, "`checks` is required: a list of checks".into())),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Definition {
        id,
        title,
        description,
        applies_to,
        levels,
        checks,
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn opt_string(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

fn compile_match(v: &Value) -> Result<EntityMatch, String> {
    let Value::Object(m) = v else {
        return Err("must be a mapping of filter keys to a value or a list of values".into());
    };
    let mut conditions = Vec::new();
    for (k, v) in m {
        let values = match v {
            Value::Null => vec![],
            Value::Array(items) => items.iter().map(scalar_text).collect::<Result<_, _>>()?,
            other => vec![scalar_text(other)?],
        };
        conditions.push((k.to_lowercase(), values));
    }
    Ok(EntityMatch { conditions })
}

fn scalar_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.to_lowercase()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{other} is not a scalar")),
    }
}

fn compile_check(v: &Value, levels: &[String]) -> Result<Check, (Option<String>, String)> {
    let Value::Object(m) = v else {
        return Err((None, "a check must be a mapping".into()));
    };
    let id = match m.get("id").and_then(Value::as_str) {
        Some(id) if valid_id(id) => id.to_string(),
        Some(id) => {
            return Err((
                Some(id.to_string()),
                "id must be lower-case letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        None => return Err((None, "`id` is required".into())),
    };
    let fail = |reason: String| (Some(id.clone()), reason);
    const KEYS: [&str; 6] = ["id", "title", "description", "level", "weight", "rule"];
    if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(fail(format!(
            "unknown field `{k}` (expected one of {})",
            KEYS.join(", ")
        )));
    }
    let level = match m.get("level") {
        None => 0,
        Some(Value::String(l)) => levels.iter().position(|x| x == l).ok_or_else(|| {
            fail(format!(
                "level `{l}` is not one of the scorecard's levels {levels:?}"
            ))
        })?,
        Some(other) => return Err(fail(format!("level {other} is not a level name"))),
    };
    let weight = match m.get("weight") {
        None => 1,
        Some(w) => match w.as_u64() {
            Some(w) if (1..=1000).contains(&w) => w as u32,
            _ => {
                return Err(fail(format!(
                    "weight {w} must be a whole number from 1 to 1000"
                )));
            }
        },
    };
    let rule = m
        .get("rule")
        .ok_or_else(|| fail("`rule` is required".into()))
        .and_then(|r| compile_rule(r, 0).map_err(fail))?;
    Ok(Check {
        title: opt_string(m, "title").unwrap_or_else(|| id.clone()),
        description: opt_string(m, "description"),
        id,
        level,
        weight,
        rule,
    })
}

const OPERATORS: [&str; 9] = [
    "exists", "equals", "in", "matches", "gt", "gte", "lt", "lte", "within",
];

/// Compiles one rule.
pub fn compile_rule(v: &Value, depth: usize) -> Result<Rule, String> {
    if depth > MAX_RULE_DEPTH {
        return Err(format!("rules nest deeper than {MAX_RULE_DEPTH}"));
    }
    let Value::Object(m) = v else {
        return Err(format!("a rule must be a mapping, found {v}"));
    };
    let list = |v: &Value, name: &str| -> Result<Vec<Rule>, String> {
        match v {
            Value::Array(items) if !items.is_empty() => {
                items.iter().map(|r| compile_rule(r, depth + 1)).collect()
            }
            _ => Err(format!("`{name}` takes a non-empty list of rules")),
        }
    };
    let only = |allowed: &[&str]| -> Result<(), String> {
        match m.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "unexpected `{k}` here (allowed: {})",
                allowed.join(", ")
            )),
            None => Ok(()),
        }
    };
    if let Some(v) = m.get("all") {
        only(&["all"])?;
        return Ok(Rule::All(list(v, "all")?));
    }
    if let Some(v) = m.get("any") {
        only(&["any"])?;
        return Ok(Rule::Any(list(v, "any")?));
    }
    if let Some(v) = m.get("not") {
        only(&["not"])?;
        return Ok(Rule::Not(Box::new(compile_rule(v, depth + 1)?)));
    }
    if let Some(v) = m.get("relation") {
        only(&["relation", "target_kind", "target"])?;
        let name = v.as_str().ok_or("`relation` takes a relation type")?;
        let relation = RelationType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "unknown relation `{name}` (known: {})",
                    RelationType::ALL.map(|t| t.as_str()).join(", ")
                )
            })?;
        let target_kind = match m.get("target_kind") {
            None => None,
            Some(Value::String(k)) => Some(k.to_lowercase()),
            Some(other) => return Err(format!("target_kind {other} is not a kind")),
        };
        let target = match m.get("target") {
            None => None,
            Some(r) => Some(Box::new(compile_rule(r, depth + 1)?)),
        };
        return Ok(Rule::Relation {
            relation,
            target_kind,
            target,
        });
    }
    if m.contains_key("field") && m.contains_key("fact") {
        return Err("`field` and `fact` cannot be combined in one rule (use all/any)".into());
    }
    let source = if let Some(p) = m.get("field") {
        let p = p.as_str().ok_or("`field` takes a path")?;
        ValueSource::Field(Path::parse(p)?)
    } else if let Some(p) = m.get("fact") {
        let p = p.as_str().ok_or("`fact` takes PROVIDER.PATH")?;
        let (provider, rest) = p.split_once('.').ok_or_else(|| {
            format!("fact `{p}`: expected PROVIDER.PATH, e.g. github.files.README")
        })?;
        let provider = match provider {
            "github" => FactProvider::Github,
            "cloud" => FactProvider::Cloud,
            other => {
                return Err(format!(
                    "fact `{p}`: unknown provider `{other}` (known: github, cloud)"
                ));
            }
        };
        // `last_push` reads better in a check than the field's name.
        let rest = match rest {
            "last_push" => "pushed_at",
            r => r,
        };
        ValueSource::Fact {
            provider,
            path: Path::parse(rest)?,
        }
    } else {
        return Err(format!(
            "a rule needs one of all, any, not, relation, field or fact; found {}",
            m.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    };
    let ops: Vec<&String> = m.keys().filter(|k| *k != "field" && *k != "fact").collect();
    let op = match ops.as_slice() {
        [op] => op.as_str(),
        [] => {
            return Err(format!("no operator: add one of {}", OPERATORS.join(", ")));
        }
        more => {
            return Err(format!(
                "one operator per rule, found {} (combine rules with all/any)",
                more.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    let arg = &m[op];
    let number = |v: &Value| {
        v.as_f64()
            .ok_or_else(|| format!("`{op}` takes a number, found {v}"))
    };
    let test = match op {
        "exists" => Test::Exists(
            arg.as_bool()
                .ok_or_else(|| format!("`exists` takes true or false, found {arg}"))?,
        ),
        "equals" => {
            scalar_text(arg).map_err(|e| format!("`equals`: {e}"))?;
            Test::Equals(arg.clone())
        }
        "in" => match arg {
            Value::Array(items) if !items.is_empty() => {
                for i in items {
                    scalar_text(i).map_err(|e| format!("`in`: {e}"))?;
                }
                Test::In(items.clone())
            }
            _ => return Err(format!("`in` takes a non-empty list, found {arg}")),
        },
        "matches" => {
            let re = arg
                .as_str()
                .ok_or_else(|| format!("`matches` takes a regular expression, found {arg}"))?;
            Test::Matches(
                regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("`matches`: invalid regular expression: {e}"))?,
            )
        }
        "gt" => Test::Compare(Cmp::Gt, number(arg)?),
        "gte" => Test::Compare(Cmp::Gte, number(arg)?),
        "lt" => Test::Compare(Cmp::Lt, number(arg)?),
        "lte" => Test::Compare(Cmp::Lte, number(arg)?),
        "within" => {
            Test::Within(parse_duration(arg.as_str().ok_or_else(|| {
                format!("`within` takes a duration like 90d, found {arg}")
            })?)?)
        }
        other => {
            return Err(format!(
                "unknown operator `{other}` (known: {})",
                OPERATORS.join(", ")
            ));
        }
    };
    Ok(Rule::Value { source, test })
}

/// `90d`, `12h`, `30m`, `45s`, `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("duration `{s}`: expected a number and a unit (s, m, h, d, w), e.g. 90d");
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let per_unit: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(bad()),
    };
    // Up to 100 years, whatever the unit.
    if n <= 0 || n.saturating_mul(per_unit) > 36_500 * 86_400 {
        return Err(format!(
            "duration `{s}`: must be positive and at most 100 years"
        ));
    }
    Ok(Duration::seconds(n * per_unit))
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

fn show(v: &Value) -> String {
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

// --------------------------------------------------------------- evaluate

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
    /// Whether the scorecard applies to this entity.
    pub fn applies(&self, entity: &Value) -> bool {
        self.applies_to.matches(entity)
    }

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

impl EntityMatch {
    /// The kinds a `kind` condition allows (lower case), if there is one.
    pub fn kinds(&self) -> Option<Vec<String>> {
        self.conditions
            .iter()
            .find(|(k, values)| k == "kind" && !values.is_empty())
            .map(|(_, values)| values.clone())
    }

    pub fn matches(&self, entity: &Value) -> bool {
        self.conditions.iter().all(|(key, values)| {
            let mut found = Vec::new();
            filter_values(entity, key, &mut found);
            if values.is_empty() {
                !found.is_empty()
            } else {
                found.iter().any(|f| values.contains(f))
            }
        })
    }
}

/// The lower-cased values at a filter key (`kind`, `spec.type`,
/// `metadata.tags`, `relations.ownedby`), as the catalog's filter sees them.
fn filter_values(entity: &Value, key: &str, out: &mut Vec<String>) {
    if let Some(rel) = key.strip_prefix("relations.") {
        for r in entity
            .get("relations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if r.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(rel))
                && let Some(t) = r.get("targetRef").and_then(Value::as_str)
            {
                out.push(t.to_lowercase());
            }
        }
        return;
    }
    fn walk(v: &Value, parts: &[&str], out: &mut Vec<String>) {
        match (parts.split_first(), v) {
            (_, Value::Array(items)) => items.iter().for_each(|i| walk(i, parts, out)),
            (None, Value::String(s)) => out.push(s.to_lowercase()),
            (None, Value::Number(n)) => out.push(n.to_string()),
            (None, Value::Bool(b)) => out.push(b.to_string()),
            (None, _) => {}
            // Keys may hold dots (`metadata.annotations.github.com/x`):
            // try each split of the remaining parts.
            (Some(_), Value::Object(m)) => {
                for i in 1..=parts.len() {
                    if let Some(x) = get_key(m, &parts[..i].join(".")) {
                        walk(x, &parts[i..], out)
                    }
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = key.split('.').collect();
    walk(entity, &parts, out);
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

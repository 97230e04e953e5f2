//! Compilation of a definition file (YAML) into a [`Definition`]: every
//! problem is collected, each naming the file, the check and the reason.

use super::applies::EntityMatch;
use super::applies::compile_match;
use super::paths::Path;
use super::syntax::{
    Check, Cmp, Definition, DefinitionError, FactProvider, Rule, Test, ValueSource,
};
use chrono::Duration;
use proto::RelationType;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Largest definition file accepted.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Deepest nesting of rules.
const MAX_RULE_DEPTH: usize = 8;

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

pub(super) fn scalar_text(v: &Value) -> Result<String, String> {
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

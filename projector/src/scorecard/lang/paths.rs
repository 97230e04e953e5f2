//! Paths into an entity or its facts (`a.b["c.d"][0][*]`): parsed once
//! when a definition compiles, resolved against JSON at evaluation, with
//! facts the source could not read reported as such.

use serde_json::{Map, Value};

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

//! The search index rows of an entity, as Backstage's `search` table builds
//! them: every leaf of the entity flattened to a dotted, lower-cased key
//! with a lower-cased value; arrays give one row per item; relations give
//! `relations.<type>` = target ref. Values over 200 characters are indexed
//! as present but empty (Backstage stores them as null).

use crate::records::SearchRow;
use serde_json::Value;

const MAX_VALUE_LEN: usize = 200;
const MAX_KEY_LEN: usize = 200;

/// All rows of one served entity, sorted and without duplicates.
pub fn rows(entity: &Value) -> Vec<SearchRow> {
    let mut out = Vec::new();
    if let Value::Object(map) = entity {
        for (k, v) in map {
            if k == "relations" {
                relation_rows(v, &mut out);
            } else if k == "metadata" {
                // The etag changes on every update and is never filtered on.
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta.iter().filter(|(mk, _)| *mk != "etag") {
                        walk(&format!("metadata.{mk}"), mv, &mut out);
                    }
                }
            } else {
                walk(k, v, &mut out);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The rows of `entity` that may have one of `keys` (lower case): what
/// [`rows`] gives, but for subtrees no such key can come from (unsorted).
/// A filter asks about a few keys; flattening the rest of the entity
/// was most of what testing it cost.
pub fn rows_for(entity: &Value, keys: &[&str]) -> Vec<SearchRow> {
    let mut out = Vec::new();
    if let Value::Object(map) = entity {
        for (k, v) in map {
            if !may_hold(k, keys) {
                continue;
            }
            if k == "relations" {
                relation_rows(v, &mut out);
            } else if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta.iter().filter(|(mk, _)| *mk != "etag") {
                        walk_for(&format!("metadata.{mk}"), mv, &mut out, keys);
                    }
                }
            } else {
                walk_for(k, v, &mut out, keys);
            }
        }
    }
    out
}

/// Whether a row under `path` (the path itself, or `path.` and more) may
/// have one of `keys`. Keys are lower-cased whole; an ASCII path's prefix
/// lower-cases alike whatever follows it. Any other path may.
fn may_hold(path: &str, keys: &[&str]) -> bool {
    if !path.is_ascii() {
        return true;
    }
    let n = path.len();
    keys.iter().any(|k| {
        let k = k.as_bytes();
        k.len() >= n
            && k[..n].eq_ignore_ascii_case(path.as_bytes())
            && k[..n].iter().all(|b| !b.is_ascii_uppercase())
            && (k.len() == n || k[n] == b'.')
    })
}

fn walk_for(path: &str, v: &Value, out: &mut Vec<SearchRow>, keys: &[&str]) {
    if !may_hold(path, keys) {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                walk_for(&format!("{path}.{k}"), v, out, keys);
            }
        }
        Value::Array(items) => {
            for item in items {
                if let Value::String(s) = item {
                    push(out, &format!("{path}.{s}"), Some("true"));
                }
                walk_for(path, item, out, keys);
            }
        }
        other => walk(path, other, out),
    }
}

/// The row of one relation: `relations.<type>` = target ref.
pub fn relation_row(relation_type: &str, target: &str) -> Option<SearchRow> {
    let mut out = Vec::with_capacity(1);
    push(
        &mut out,
        &format!("relations.{relation_type}"),
        Some(target),
    );
    out.pop()
}

fn relation_rows(relations: &Value, out: &mut Vec<SearchRow>) {
    let Value::Array(items) = relations else {
        return;
    };
    for item in items {
        if let (Some(t), Some(target)) = (
            item.get("type").and_then(Value::as_str),
            item.get("targetRef").and_then(Value::as_str),
        ) {
            push(out, &format!("relations.{t}"), Some(target));
        }
    }
}

fn walk(path: &str, v: &Value, out: &mut Vec<SearchRow>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                walk(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                // Backstage also indexes `path.item = true` for string
                // items, which is how `filter=metadata.tags.java` works.
                if let Value::String(s) = item {
                    push(out, &format!("{path}.{s}"), Some("true"));
                }
                walk(path, item, out);
            }
        }
        Value::String(s) => push(out, path, Some(s)),
        Value::Bool(b) => push(out, path, Some(if *b { "true" } else { "false" })),
        Value::Number(n) => push(out, path, Some(&n.to_string())),
        Value::Null => push(out, path, None),
    }
}

fn push(out: &mut Vec<SearchRow>, key: &str, value: Option<&str>) {
    if key.len() > MAX_KEY_LEN || key.contains('\0') {
        return;
    }
    let value = value.filter(|v| v.len() <= MAX_VALUE_LEN && !v.contains('\0'));
    out.push(SearchRow {
        key: key.to_lowercase(),
        value: value.map(str::to_lowercase).unwrap_or_default(),
        original: value.unwrap_or_default().to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_like_backstage() {
        let e = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "Pay", "tags": ["Java", "grpc"],
                          "annotations": {"github.com/project-slug": "acme/pay"},
                          "links": [{"url": "https://x", "title": "Runbook"}]},
            "spec": {"type": "service", "replicas": 3, "public": true, "definition": "x".repeat(300)},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/Team-A"}]
        });
        let rows = rows(&e);
        let has = |k: &str, v: &str| rows.iter().any(|r| r.key == k && r.value == v);
        assert!(has("kind", "component"));
        assert!(has("metadata.name", "pay"));
        assert!(has("metadata.tags", "java") && has("metadata.tags", "grpc"));
        assert!(has("metadata.tags.java", "true"));
        assert!(has(
            "metadata.annotations.github.com/project-slug",
            "acme/pay"
        ));
        assert!(has("metadata.links.title", "runbook"));
        assert!(has("spec.replicas", "3") && has("spec.public", "true"));
        assert!(
            has("spec.definition", ""),
            "long values are present but empty"
        );
        assert!(has("relations.ownedby", "group:default/team-a"));
        let orig = rows.iter().find(|r| r.key == "kind").unwrap();
        assert_eq!(orig.original, "Component");
    }

    #[test]
    fn rows_for_some_keys_are_the_rows_with_those_keys() {
        let e = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "Pay", "tags": ["Java", "grpc"], "etag": "x",
                          "Annotations": {"github.com/Project-Slug": "acme/pay"},
                          "links": [{"url": "https://x", "title": "Runbook"}],
                          "ΣΑΣ": {"Σ": "greek"}},
            "spec": {"type": "service", "replicas": 3, "owner": null, "items": [{"a": [1, 2]}]},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/Team-A"}]
        });
        let all = rows(&e);
        let mut keys: Vec<&str> = all.iter().map(|r| r.key.as_str()).collect();
        keys.extend([
            "metadata",
            "spec.items",
            "metadata.tags.jav",
            "nothing",
            "relations",
        ]);
        keys.dedup();
        for k in &keys {
            let mut some: Vec<SearchRow> = rows_for(&e, &[k])
                .into_iter()
                .filter(|r| r.key == *k)
                .collect();
            some.sort();
            some.dedup();
            let want: Vec<SearchRow> = all.iter().filter(|r| r.key == *k).cloned().collect();
            assert_eq!(some, want, "key {k}");
        }
        // Subtrees no key can come from are not flattened.
        let few = rows_for(&e, &["kind", "spec.type"]);
        assert_eq!(few.len(), 2, "{few:?}");
    }
}

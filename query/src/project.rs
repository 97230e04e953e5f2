//! `fields` projection: keep only the given dotted paths of an entity.
//!
//! As in Backstage, a path's parts are matched greedily against object
//! keys, so keys that contain dots work
//! (`metadata.annotations.backstage.io/managed-by-location`), and a path
//! that names a subtree keeps all of it. A path that does not resolve
//! fully keeps nothing (Backstage would keep the longest prefix that
//! resolves, e.g. all of `metadata` for `metadata.nope`; that is a quirk we
//! do not copy). Arrays are not descended into.

use serde_json::{Map, Value};

/// `entity` reduced to `fields`.
pub fn project(entity: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for field in fields {
        if let Some((path, value)) = resolve(entity, field) {
            insert(&mut out, &path, value);
        }
    }
    Value::Object(out)
}

/// The object keys along `field` and the value at its end.
fn resolve<'a>(root: &'a Value, field: &str) -> Option<(Vec<String>, &'a Value)> {
    let mut path = Vec::new();
    let mut current = root;
    let mut pending: Option<String> = None;
    for part in field.split('.') {
        let candidate = match pending.take() {
            Some(p) => format!("{p}.{part}"),
            None => part.to_string(),
        };
        match current.as_object().and_then(|m| m.get(&candidate)) {
            Some(next) => {
                current = next;
                path.push(candidate);
            }
            None => pending = Some(candidate),
        }
    }
    (pending.is_none() && !path.is_empty()).then_some((path, current))
}

fn insert(out: &mut Map<String, Value>, path: &[String], value: &Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        out.insert(first.clone(), value.clone());
        return;
    }
    let child = out
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(child) = child {
        insert(child, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_the_paths() {
        let e = json!({
            "kind": "Component",
            "metadata": {"name": "pay", "namespace": "default",
                         "annotations": {"backstage.io/managed-by-location": "file:/a.yaml"}},
            "spec": {"type": "service", "owner": "team-a"},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/team-a"}]
        });
        let f = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            project(&e, &f(&["kind", "metadata.name"])),
            json!({"kind": "Component", "metadata": {"name": "pay"}})
        );
        assert_eq!(
            project(
                &e,
                &f(&["metadata.annotations.backstage.io/managed-by-location"])
            ),
            json!({"metadata": {"annotations": {"backstage.io/managed-by-location": "file:/a.yaml"}}})
        );
        assert_eq!(
            project(&e, &f(&["spec", "spec.type"])),
            json!({"spec": e["spec"]})
        );
        assert_eq!(project(&e, &f(&["metadata.nope", "nope"])), json!({}));
        assert_eq!(project(&e, &f(&["relations"]))["relations"], e["relations"]);
    }
}

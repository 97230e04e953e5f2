//! Relation derivation, as Backstage's `BuiltinKindsEntityProcessor`
//! (`plugins/catalog-backend/src/processors/BuiltinKindsEntityProcessor.ts`)
//! and, for `Template.spec.owner`, the scaffolder's entities processor do it:
//! every reference in a relation field yields the outgoing row from the
//! entity and the incoming row from the target, with the target parsed by
//! `parseEntityRef(target, { defaultKind, defaultNamespace: <entity's> })`.

use proto::{EntityRef, RefError, Relation, RelationType};
use serde_json::Value;
use std::collections::BTreeSet;

/// One relation field of a kind.
struct Rule {
    field: &'static str,
    default_kind: Option<&'static str>,
    outgoing: RelationType,
}

const fn rule(
    field: &'static str,
    default_kind: Option<&'static str>,
    outgoing: RelationType,
) -> Rule {
    Rule {
        field,
        default_kind,
        outgoing,
    }
}

use RelationType::*;

const OWNER: Rule = rule("owner", Some("Group"), OwnedBy);
const SYSTEM: Rule = rule("system", Some("System"), PartOf);
const DEPENDS_ON: Rule = rule("dependsOn", None, DependsOn);
const DEPENDENCY_OF: Rule = rule("dependencyOf", None, DependencyOf);

const COMPONENT: &[Rule] = &[
    OWNER,
    rule("subcomponentOf", Some("Component"), PartOf),
    rule("providesApis", Some("API"), ProvidesApi),
    rule("consumesApis", Some("API"), ConsumesApi),
    DEPENDS_ON,
    DEPENDENCY_OF,
    SYSTEM,
];
const API: &[Rule] = &[OWNER, SYSTEM];
const RESOURCE: &[Rule] = &[OWNER, DEPENDS_ON, DEPENDENCY_OF, SYSTEM];
const USER: &[Rule] = &[rule("memberOf", Some("Group"), MemberOf)];
const GROUP: &[Rule] = &[
    rule("parent", Some("Group"), ChildOf),
    rule("children", Some("Group"), ParentOf),
    rule("members", Some("User"), HasMember),
];
const SYSTEM_KIND: &[Rule] = &[OWNER, rule("domain", Some("Domain"), PartOf)];
const DOMAIN: &[Rule] = &[OWNER, rule("subdomainOf", Some("Domain"), PartOf)];
const TEMPLATE: &[Rule] = &[OWNER];

fn rules(kind: &str) -> &'static [Rule] {
    match kind {
        "Component" => COMPONENT,
        "API" => API,
        "Resource" => RESOURCE,
        "User" => USER,
        "Group" => GROUP,
        "System" => SYSTEM_KIND,
        "Domain" => DOMAIN,
        "Template" => TEMPLATE,
        _ => &[],
    }
}

/// A reference that could not be parsed, with the JSON pointer of the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRef {
    pub path: String,
    pub message: String,
}

/// Backstage's message for a reference `parseEntityRef` rejects.
fn ref_message(input: &str, err: &RefError) -> String {
    match err {
        RefError::Empty => "Entity reference must not be empty".to_string(),
        RefError::MissingKind(_) => format!(
            "Entity reference \"{input}\" had missing or empty kind (e.g. did not start with \"component:\" or similar)"
        ),
        RefError::EmptyPart(_) => {
            format!(
                "Entity reference \"{input}\" was not on the form [<kind>:][<namespace>/]<name>"
            )
        }
    }
}

/// The relations of an entity of `kind` with reference `me` and `spec`,
/// both directions, deduplicated and sorted; or the references that do not
/// parse.
pub(crate) fn derive(
    kind: &str,
    me: &EntityRef,
    spec: Option<&Value>,
) -> Result<Vec<Relation>, Vec<BadRef>> {
    let mut out = BTreeSet::new();
    let mut bad = Vec::new();
    let Some(spec) = spec else {
        return Ok(Vec::new());
    };
    for rule in rules(kind) {
        let targets: Vec<(String, &str)> = match spec.get(rule.field) {
            Some(Value::String(s)) => vec![(format!("/spec/{}", rule.field), s.as_str())],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_str().map(|s| (format!("/spec/{}/{i}", rule.field), s)))
                .collect(),
            _ => Vec::new(),
        };
        for (path, target) in targets {
            // Backstage skips falsy targets (`if (!targets) return`).
            if target.is_empty() {
                continue;
            }
            match EntityRef::parse(target, rule.default_kind, me.namespace()) {
                Ok(target) => {
                    out.insert(Relation {
                        source: me.clone(),
                        relation_type: rule.outgoing,
                        target: target.clone(),
                    });
                    out.insert(Relation {
                        source: target,
                        relation_type: rule.outgoing.inverse(),
                        target: me.clone(),
                    });
                }
                Err(e) => bad.push(BadRef {
                    message: format!("{path}: {}", ref_message(target, &e)),
                    path,
                }),
            }
        }
    }
    if bad.is_empty() {
        Ok(out.into_iter().collect())
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(rels: &[Relation]) -> Vec<String> {
        rels.iter()
            .map(|r| format!("{} {} {}", r.source, r.relation_type.as_str(), r.target))
            .collect()
    }

    #[test]
    fn owner_defaults_to_group_in_the_entity_namespace() {
        let me = EntityRef::new("Component", "ops", "pay");
        let rels = derive("Component", &me, Some(&json!({"owner": "team-a"}))).unwrap();
        assert_eq!(
            rows(&rels),
            vec![
                "component:ops/pay ownedBy group:ops/team-a",
                "group:ops/team-a ownerOf component:ops/pay",
            ]
        );
    }

    #[test]
    fn depends_on_needs_a_kind() {
        let me = EntityRef::new("Component", "default", "pay");
        let err = derive("Component", &me, Some(&json!({"dependsOn": ["db"]}))).unwrap_err();
        assert_eq!(err[0].path, "/spec/dependsOn/0");
        assert!(
            err[0].message.contains("had missing or empty kind"),
            "{err:?}"
        );
        let ok = derive(
            "Component",
            &me,
            Some(&json!({"dependsOn": ["resource:db"]})),
        )
        .unwrap();
        assert_eq!(
            rows(&ok),
            vec![
                "component:default/pay dependsOn resource:default/db",
                "resource:default/db dependencyOf component:default/pay",
            ]
        );
    }

    #[test]
    fn unknown_kinds_have_no_relations() {
        let me = EntityRef::new("Location", "default", "x");
        assert!(
            derive("Location", &me, Some(&json!({"owner": "a"})))
                .unwrap()
                .is_empty()
        );
    }
}

//! What the cloud sources (AWS, GCP, Azure) share: a resource as a cloud
//! lists it, the mapping from tags to a Backstage `Resource` (configuration,
//! not code), entity names derived from the provider's id, and the listing
//! with its scopes.
//!
//! ```yaml
//! mapping:
//!   owner_tag: owner              # spec.owner (default `owner`)
//!   system_tag: system            # spec.system
//!   lifecycle_tag: lifecycle      # spec.lifecycle
//!   dependency_of_tag: dependency-of   # spec.dependencyOf, comma-separated refs
//!   title_tag: Name               # metadata.title
//!   namespace: default
//!   default_owner: unowned        # spec.owner of resources without an owner tag
//!   types: {"rds:db": database}   # spec.type by service:type (else "{service}-{type}")
//! ```
//!
//! Each resource is one location keyed `{provider}:{account}/{scope}/{id}`
//! (`aws:123456789012/eu-west-1/arn:aws:sqs:eu-west-1:123456789012:orders`),
//! whose content is the generated entity as JSON, and one subject of facts
//! under the same key (`Facts::CloudResource`), so that a scorecard reaches
//! the facts of the entity through its `backstage.io/managed-by-location`.
//! An account and region (a project, a subscription) is listed as a whole
//! or not at all: a scope whose calls failed is left out of the listing's
//! scope, so nothing in it is removed.

use crate::source::{Fetched, Listed, ListedFacts, Listing, ScopeEntry};
use proto::{CloudResourceFacts, Content, Facts, LocationKey, SubjectKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// How tags become the fields of a `Resource` entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    pub owner_tag: String,
    pub system_tag: String,
    pub lifecycle_tag: String,
    /// Comma-separated entity refs.
    pub dependency_of_tag: String,
    pub title_tag: String,
    pub namespace: String,
    /// `spec.owner` of a resource without an owner tag (the schema requires
    /// one). By default a ref no group should have, so that ownership
    /// coverage counts such resources as orphans.
    pub default_owner: String,
    /// `spec.type` by `service:type` (as in the facts); otherwise
    /// `{service}-{type}`, lower case.
    pub types: BTreeMap<String, String>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            owner_tag: "owner".into(),
            system_tag: "system".into(),
            lifecycle_tag: "lifecycle".into(),
            dependency_of_tag: "dependency-of".into(),
            title_tag: "Name".into(),
            namespace: "default".into(),
            default_owner: "unowned".into(),
            types: BTreeMap::new(),
        }
    }
}

impl Mapping {
    /// Checks the mapping, naming the field (relative to the mapping).
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (field, v) in [
            ("owner_tag", &self.owner_tag),
            ("system_tag", &self.system_tag),
            ("lifecycle_tag", &self.lifecycle_tag),
            ("dependency_of_tag", &self.dependency_of_tag),
            ("title_tag", &self.title_tag),
            ("namespace", &self.namespace),
            ("default_owner", &self.default_owner),
        ] {
            if v.trim().is_empty() {
                return Err((field.into(), "must not be empty".into()));
            }
        }
        if !is_valid_name(&self.namespace) {
            return Err((
                "namespace".into(),
                format!("{:?} is not a valid namespace", self.namespace),
            ));
        }
        for (k, v) in &self.types {
            if !k.contains(':') {
                return Err((
                    format!("types.{k}"),
                    "keys are SERVICE:TYPE (e.g. rds:db)".into(),
                ));
            }
            if v.trim().is_empty() {
                return Err((format!("types.{k}"), "must not be empty".into()));
            }
        }
        Ok(())
    }

    fn spec_type(&self, service: &str, resource_type: &str) -> String {
        let key = format!("{service}:{resource_type}");
        if let Some(t) = self
            .types
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            .map(|(_, v)| v)
        {
            return t.clone();
        }
        if let Some(t) = default_type(service, resource_type) {
            return t.into();
        }
        let mut t = sanitize(&format!("{service}-{resource_type}"), 63).to_ascii_lowercase();
        if t.is_empty() {
            t = "cloud-resource".into();
        }
        t
    }
}

/// `spec.type` of the resource types every AWS catalog has, in the words
/// Backstage users use.
fn default_type(service: &str, resource_type: &str) -> Option<&'static str> {
    Some(match (service, resource_type) {
        ("ec2", "instance") => "ec2-instance",
        ("lambda", "function") => "lambda-function",
        ("s3", "bucket") => "s3-bucket",
        ("rds", "db") => "database",
        ("dynamodb", "table") => "dynamodb-table",
        ("sqs", "queue") => "queue",
        ("sns", "topic") => "topic",
        ("eks", "cluster") => "kubernetes-cluster",
        ("ecs", "service") => "ecs-service",
        _ => return None,
    })
}

/// One resource as a cloud lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudResource {
    /// `aws`, `gcp`, `azure`.
    pub provider: &'static str,
    /// Account, project or subscription.
    pub account: String,
    /// The part of the account listed as a whole (a region; `-` for a
    /// provider listed per account).
    pub scope: String,
    /// Region or location, if the resource has one.
    pub region: Option<String>,
    pub service: String,
    pub resource_type: String,
    /// The provider's id (ARN, full resource name, resource id).
    pub id: String,
    /// The provider's short name of the resource (bucket name, instance id).
    pub short_name: String,
    pub tags: BTreeMap<String, String>,
    /// What a scorecard may check; `provider`, `account`, `region`,
    /// `service`, `resource_type`, `id` and `tags` are filled in from the
    /// fields above.
    pub facts: CloudResourceFacts,
}

impl CloudResource {
    /// The location (and subject) key.
    pub fn key(&self) -> String {
        scope_prefix(self.provider, &self.account, &self.scope) + &self.id
    }
}

/// The prefix of every key of one scope.
pub fn scope_prefix(provider: &str, account: &str, scope: &str) -> String {
    format!("{provider}:{account}/{scope}/")
}

/// The annotations a provider puts on its entities: (account, region, id).
fn annotation_names(provider: &str) -> (&'static str, &'static str, &'static str) {
    match provider {
        "gcp" => (
            "cloud.google.com/project-id",
            "cloud.google.com/location",
            "cloud.google.com/resource-name",
        ),
        "azure" => (
            "azure.com/subscription-id",
            "azure.com/location",
            "azure.com/resource-id",
        ),
        _ => (
            "amazonaws.com/account-id",
            "amazonaws.com/region",
            "amazonaws.com/arn",
        ),
    }
}

/// Whether `s` is a valid Backstage name (`[a-zA-Z0-9]` at both ends,
/// `[-_.]` between, at most 63 characters).
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Keeps `[A-Za-z0-9]`, turns runs of anything else into one `-`, trims
/// `-` from both ends, and cuts at `max` characters (never ending on `-`).
fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut dash = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The entity name of a resource: readable (`{service}-{short name}`) and
/// unique (ten hex digits of the SHA-256 of the provider's full id, so the
/// same queue name in two regions or accounts gives two names). It depends
/// on the id alone, so renaming or retagging a resource never renames its
/// entity; within Backstage's rules (63 characters, `[a-z0-9A-Z]` at the
/// ends, `[-_.]` between).
pub fn entity_name(service: &str, short_name: &str, id: &str) -> String {
    let hash = hex::encode(Sha256::digest(id.as_bytes()));
    let readable = sanitize(&format!("{service}-{short_name}"), 63 - 11).to_ascii_lowercase();
    if readable.is_empty() {
        format!("r-{}", &hash[..10])
    } else {
        format!("{readable}-{}", &hash[..10])
    }
}

/// The `Resource` entity of a resource, under `mapping`.
pub fn entity(r: &CloudResource, mapping: &Mapping) -> Value {
    let tag = |name: &str| {
        r.tags
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let (account_ann, region_ann, id_ann) = annotation_names(r.provider);
    let mut annotations = Map::new();
    annotations.insert(account_ann.into(), json!(r.account));
    if let Some(region) = &r.region {
        annotations.insert(region_ann.into(), json!(region));
    }
    annotations.insert(id_ann.into(), json!(r.id));
    let mut metadata = Map::new();
    metadata.insert(
        "name".into(),
        json!(entity_name(&r.service, &r.short_name, &r.id)),
    );
    metadata.insert("namespace".into(), json!(mapping.namespace));
    let title = tag(&mapping.title_tag).unwrap_or(&r.short_name);
    if !title.is_empty() {
        metadata.insert("title".into(), json!(title));
    }
    metadata.insert("annotations".into(), Value::Object(annotations));
    metadata.insert("tags".into(), json!([r.provider]));
    let mut spec = Map::new();
    spec.insert(
        "type".into(),
        json!(mapping.spec_type(&r.service, &r.resource_type)),
    );
    spec.insert(
        "owner".into(),
        json!(tag(&mapping.owner_tag).unwrap_or(&mapping.default_owner)),
    );
    if let Some(system) = tag(&mapping.system_tag) {
        spec.insert("system".into(), json!(system));
    }
    if let Some(lifecycle) = tag(&mapping.lifecycle_tag) {
        spec.insert("lifecycle".into(), json!(lifecycle));
    }
    if let Some(deps) = tag(&mapping.dependency_of_tag) {
        let refs: Vec<&str> = deps
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if !refs.is_empty() {
            spec.insert("dependencyOf".into(), json!(refs));
        }
    }
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": metadata,
        "spec": spec,
    })
}

/// Whether the resource has no owner tag (its entity has the default
/// owner).
pub fn is_unowned(r: &CloudResource, mapping: &Mapping) -> bool {
    r.tags
        .get(&mapping.owner_tag)
        .is_none_or(|v| v.trim().is_empty())
}

/// The listing of what a cloud source read: one location and one subject
/// per resource. `failed` are the scopes (prefixes from [`scope_prefix`])
/// that could not be listed, with why: when any failed, the listing covers
/// only the scopes that were listed, so nothing of the failed ones is
/// removed.
pub fn listing(
    resources: &[CloudResource],
    mapping: &Mapping,
    listed_scopes: &[String],
    failed: &[(String, String)],
) -> Listing {
    let mut locations = Vec::with_capacity(resources.len());
    let mut facts = Vec::with_capacity(resources.len());
    let mut seen = std::collections::HashSet::with_capacity(resources.len());
    for r in resources {
        let key = r.key();
        if !seen.insert(key.clone()) {
            continue;
        }
        let text = serde_json::to_string(&entity(r, mapping)).expect("JSON serialises");
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        locations.push(Listed {
            location: LocationKey::new(key.clone()),
            origin: LocationKey::new(key.clone()),
            fetched: Fetched::Present {
                content: Content::Utf8 { text },
                sha256,
            },
            fingerprint: None,
            targets: Vec::new(),
        });
        let mut f = r.facts.clone();
        f.provider = r.provider.into();
        f.account.clone_from(&r.account);
        f.region.clone_from(&r.region);
        f.service.clone_from(&r.service);
        f.resource_type.clone_from(&r.resource_type);
        f.id.clone_from(&r.id);
        f.tags.clone_from(&r.tags);
        facts.push(ListedFacts {
            subject: SubjectKey::new(key),
            facts: Some(Facts::CloudResource(f)),
        });
    }
    Listing {
        complete: true,
        locations,
        problems: failed
            .iter()
            .map(|(scope, why)| format!("{scope}: {why} (nothing in it is removed)"))
            .collect(),
        facts,
        scope: (!failed.is_empty()).then(|| {
            listed_scopes
                .iter()
                .map(|p| ScopeEntry::Prefix(p.clone()))
                .collect()
        }),
        released: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(account: &str, region: &str, name: &str, tags: &[(&str, &str)]) -> CloudResource {
        CloudResource {
            provider: "aws",
            account: account.into(),
            scope: region.into(),
            region: Some(region.into()),
            service: "sqs".into(),
            resource_type: "queue".into(),
            id: format!("arn:aws:sqs:{region}:{account}:{name}"),
            short_name: name.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            facts: CloudResourceFacts::default(),
        }
    }

    #[test]
    fn names_are_valid_unique_and_stable() {
        let a = queue("1", "eu-west-1", "orders", &[]);
        let b = queue("1", "us-east-1", "orders", &[]);
        let na = entity_name("sqs", "orders", &a.id);
        let nb = entity_name("sqs", "orders", &b.id);
        assert!(na.starts_with("sqs-orders-"), "{na}");
        assert_ne!(na, nb);
        assert!(is_valid_name(&na) && is_valid_name(&nb));
        // Retagging changes nothing of the name.
        let mut c = a.clone();
        c.tags.insert("Name".into(), "Renamed".into());
        let m = Mapping::default();
        assert_eq!(
            entity(&a, &m)["metadata"]["name"],
            entity(&c, &m)["metadata"]["name"]
        );
        for (short, id) in [
            ("", "x"),
            ("---", "y"),
            (&"a_very.long:name/".repeat(20) as &str, "z"),
            ("ünïcödé bücket", "w"),
            ("i-0abc", "arn:aws:ec2:eu-west-1:1:instance/i-0abc"),
        ] {
            let n = entity_name("s3", short, id);
            assert!(is_valid_name(&n), "{short:?} -> {n:?}");
        }
    }

    #[test]
    fn tags_map_to_the_entity() {
        let m = Mapping {
            lifecycle_tag: "env".into(),
            types: [("sqs:queue".to_string(), "message-queue".to_string())].into(),
            ..Mapping::default()
        };
        let r = queue(
            "123",
            "eu-west-1",
            "orders",
            &[
                ("owner", "group:default/payments"),
                ("system", "checkout"),
                ("env", "production"),
                ("dependency-of", "component:orders, component:billing"),
                ("Name", "Orders queue"),
            ],
        );
        let e = entity(&r, &m);
        assert_eq!(e["kind"], "Resource");
        assert_eq!(e["spec"]["type"], "message-queue");
        assert_eq!(e["spec"]["owner"], "group:default/payments");
        assert_eq!(e["spec"]["system"], "checkout");
        assert_eq!(e["spec"]["lifecycle"], "production");
        assert_eq!(
            e["spec"]["dependencyOf"],
            json!(["component:orders", "component:billing"])
        );
        assert_eq!(e["metadata"]["title"], "Orders queue");
        assert_eq!(
            e["metadata"]["annotations"]["amazonaws.com/arn"],
            "arn:aws:sqs:eu-west-1:123:orders"
        );
        assert_eq!(
            e["metadata"]["annotations"]["amazonaws.com/region"],
            "eu-west-1"
        );
        assert!(!is_unowned(&r, &m));
        // Without tags: the default owner, no system, the default type.
        let bare = queue("123", "eu-west-1", "orders", &[]);
        let e = entity(&bare, &Mapping::default());
        assert_eq!(e["spec"]["owner"], "unowned");
        assert_eq!(e["spec"]["type"], "queue");
        assert!(e["spec"].get("system").is_none());
        assert!(is_unowned(&bare, &Mapping::default()));
        let odd = CloudResource {
            service: "elasticache".into(),
            resource_type: "cluster".into(),
            ..bare
        };
        assert_eq!(entity(&odd, &m)["spec"]["type"], "elasticache-cluster");
    }

    #[test]
    fn a_failed_scope_narrows_the_listing() {
        let m = Mapping::default();
        let rs = vec![
            queue("1", "eu-west-1", "a", &[]),
            queue("1", "eu-west-1", "a", &[]),
        ];
        let whole = listing(&rs, &m, &[scope_prefix("aws", "1", "eu-west-1")], &[]);
        assert_eq!(whole.locations.len(), 1, "duplicates listed once");
        assert_eq!(whole.facts.len(), 1);
        assert!(whole.scope.is_none());
        assert_eq!(
            whole.locations[0].location.as_str(),
            "aws:1/eu-west-1/arn:aws:sqs:eu-west-1:1:a"
        );
        let part = listing(
            &rs,
            &m,
            &[scope_prefix("aws", "1", "eu-west-1")],
            &[(scope_prefix("aws", "1", "us-east-1"), "denied".into())],
        );
        assert!(part.covers("aws:1/eu-west-1/x"));
        assert!(!part.covers("aws:1/us-east-1/x"));
        assert_eq!(part.problems.len(), 1);
    }

    #[test]
    fn mapping_is_checked() {
        assert!(Mapping::default().validate().is_ok());
        let bad = Mapping {
            namespace: "not a namespace".into(),
            ..Mapping::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "namespace");
        let bad = Mapping {
            types: [("rds".to_string(), "db".to_string())].into(),
            ..Mapping::default()
        };
        assert!(bad.validate().unwrap_err().0.starts_with("types."));
    }
}

//! Identifiers: entity references, location keys, source ids.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid entity reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("entity reference is empty")]
    Empty,
    #[error("entity reference {0:?} has no kind and no default kind applies")]
    MissingKind(String),
    #[error("entity reference {0:?} has an empty part")]
    EmptyPart(String),
}

/// A reference to an entity: `kind:namespace/name`.
///
/// Kind and namespace compare case-insensitively as in Backstage; the name
/// keeps its case for display but the [`EntityRef::key`] is fully lower-cased,
/// which is what identity and every index use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    kind: String,
    namespace: String,
    name: String,
}

impl EntityRef {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        EntityRef {
            kind: kind.to_ascii_lowercase(),
            namespace: namespace.to_ascii_lowercase(),
            name: name.to_string(),
        }
    }

    /// Parses `[kind:][namespace/]name` as Backstage's `parseEntityRef` does,
    /// filling the missing parts from the defaults.
    pub fn parse(
        input: &str,
        default_kind: Option<&str>,
        default_namespace: &str,
    ) -> Result<Self, RefError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(RefError::Empty);
        }
        let (kind, rest) = match s.split_once(':') {
            Some((k, rest)) => (Some(k), rest),
            None => (None, s),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, rest),
        };
        let kind = match kind.or(default_kind) {
            Some(k) => k,
            None => return Err(RefError::MissingKind(input.to_string())),
        };
        let namespace = namespace.unwrap_or(default_namespace);
        if kind.is_empty() || namespace.is_empty() || name.is_empty() {
            return Err(RefError::EmptyPart(input.to_string()));
        }
        Ok(EntityRef::new(kind, namespace, name))
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The identity key: `kind:namespace/name`, all lower case.
    pub fn key(&self) -> String {
        let mut key = self.joined();
        let name_at = key.len() - self.name.len();
        key[name_at..].make_ascii_lowercase();
        key
    }

    /// `kind:namespace/name` as written (the name's case kept).
    fn joined(&self) -> String {
        let mut joined =
            String::with_capacity(self.kind.len() + self.namespace.len() + self.name.len() + 2);
        joined.push_str(&self.kind);
        joined.push(':');
        joined.push_str(&self.namespace);
        joined.push('/');
        joined.push_str(&self.name);
        joined
    }
}

/// Backstage's `stringifyEntityRef`: kind and namespace lower-cased, name as given.
impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

impl Serialize for EntityRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Joined first and written as one string: `collect_str` escapes and
        // writes each of the five pieces through the formatter, which was
        // most of the cost of encoding a relation row.
        s.serialize_str(&self.joined())
    }
}

impl<'de> Deserialize<'de> for EntityRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntityRef::parse(&s, None, "default").map_err(serde::de::Error::custom)
    }
}

/// Where a source found something: `file:/abs/path.yaml`,
/// `url:https://github.com/acme/pay/blob/main/catalog-info.yaml`, `aws:arn:...`.
/// It is the Kafka message key of observations and entity events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocationKey(String);

impl LocationKey {
    pub fn new(s: impl Into<String>) -> Self {
        LocationKey(s.into())
    }
    /// The key of a file on the local file system, as Backstage writes it.
    pub fn file(path: &std::path::Path) -> Self {
        LocationKey(format!("file:{}", path.display()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `(type, target)` as Backstage's location API reports them.
    pub fn type_and_target(&self) -> (&str, &str) {
        self.0.split_once(':').unwrap_or(("unknown", &self.0))
    }
}

impl fmt::Display for LocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configured name of a source instance (`demo`, `github-acme`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(String);

impl SourceId {
    pub fn new(s: impl Into<String>) -> Self {
        SourceId(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults() {
        let r = EntityRef::parse("group:Platform", None, "default").unwrap();
        assert_eq!(r.to_string(), "group:default/Platform");
        assert_eq!(r.key(), "group:default/platform");
        let r = EntityRef::parse("team-a", Some("Group"), "ops").unwrap();
        assert_eq!(r.to_string(), "group:ops/team-a");
        let r = EntityRef::parse("Component:Prod/Pay", None, "default").unwrap();
        assert_eq!(r.to_string(), "component:prod/Pay");
    }

    #[test]
    fn key_and_json_name_the_ref_as_written_and_in_lower_case() {
        let r = EntityRef::new("Component", "Prod", "Pay-ÄPI\"x");
        assert_eq!(r.key(), "component:prod/pay-Äpi\"x");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string(&r.to_string()).unwrap()
        );
        let back: EntityRef = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn rejects_incomplete_refs() {
        assert_eq!(EntityRef::parse("", None, "default"), Err(RefError::Empty));
        assert!(matches!(
            EntityRef::parse("x", None, "default"),
            Err(RefError::MissingKind(_))
        ));
        assert!(matches!(
            EntityRef::parse("group:/x", None, "default"),
            Err(RefError::EmptyPart(_))
        ));
    }

    #[test]
    fn location_type_and_target() {
        let k = LocationKey::new("url:https://github.com/a/b/blob/main/catalog-info.yaml");
        assert_eq!(
            k.type_and_target(),
            ("url", "https://github.com/a/b/blob/main/catalog-info.yaml")
        );
    }
}

//! The Backstage entity model: `apiVersion`, `kind`, `metadata`, `spec`,
//! `relations`. Specs stay open JSON (Backstage allows any field); the
//! processor validates the fields of the built-in kinds.

use crate::refs::EntityRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A catalog entity in Backstage's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub api_version: String,
    pub kind: String,
    pub metadata: EntityMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<EntityRelation>,
}

impl Entity {
    /// The entity's reference (namespace already defaulted by the processor).
    pub fn entity_ref(&self) -> EntityRef {
        EntityRef::new(
            &self.kind,
            self.metadata.namespace.as_deref().unwrap_or("default"),
            &self.metadata.name,
        )
    }
}

/// `metadata` of an entity. Fields that Backstage does not define are kept
/// in `extra`, in order, so nothing a user wrote is lost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EntityMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<EntityLink>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An entry of `metadata.links`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityLink {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub link_type: Option<String>,
}

/// A relation as it appears in an entity's `relations` array.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRelation {
    #[serde(rename = "type")]
    pub relation_type: RelationType,
    pub target_ref: EntityRef,
}

/// Backstage's seven relation pairs, by their stable wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RelationType {
    #[serde(rename = "ownedBy")]
    OwnedBy,
    #[serde(rename = "ownerOf")]
    OwnerOf,
    #[serde(rename = "providesApi")]
    ProvidesApi,
    #[serde(rename = "apiProvidedBy")]
    ApiProvidedBy,
    #[serde(rename = "consumesApi")]
    ConsumesApi,
    #[serde(rename = "apiConsumedBy")]
    ApiConsumedBy,
    #[serde(rename = "dependsOn")]
    DependsOn,
    #[serde(rename = "dependencyOf")]
    DependencyOf,
    #[serde(rename = "parentOf")]
    ParentOf,
    #[serde(rename = "childOf")]
    ChildOf,
    #[serde(rename = "memberOf")]
    MemberOf,
    #[serde(rename = "hasMember")]
    HasMember,
    #[serde(rename = "partOf")]
    PartOf,
    #[serde(rename = "hasPart")]
    HasPart,
}

impl RelationType {
    pub const ALL: [RelationType; 14] = [
        RelationType::OwnedBy,
        RelationType::OwnerOf,
        RelationType::ProvidesApi,
        RelationType::ApiProvidedBy,
        RelationType::ConsumesApi,
        RelationType::ApiConsumedBy,
        RelationType::DependsOn,
        RelationType::DependencyOf,
        RelationType::ParentOf,
        RelationType::ChildOf,
        RelationType::MemberOf,
        RelationType::HasMember,
        RelationType::PartOf,
        RelationType::HasPart,
    ];

    /// The wire name, e.g. `ownedBy`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationType::OwnedBy => "ownedBy",
            RelationType::OwnerOf => "ownerOf",
            RelationType::ProvidesApi => "providesApi",
            RelationType::ApiProvidedBy => "apiProvidedBy",
            RelationType::ConsumesApi => "consumesApi",
            RelationType::ApiConsumedBy => "apiConsumedBy",
            RelationType::DependsOn => "dependsOn",
            RelationType::DependencyOf => "dependencyOf",
            RelationType::ParentOf => "parentOf",
            RelationType::ChildOf => "childOf",
            RelationType::MemberOf => "memberOf",
            RelationType::HasMember => "hasMember",
            RelationType::PartOf => "partOf",
            RelationType::HasPart => "hasPart",
        }
    }

    /// The other half of the pair.
    pub fn inverse(self) -> RelationType {
        use RelationType::*;
        match self {
            OwnedBy => OwnerOf,
            OwnerOf => OwnedBy,
            ProvidesApi => ApiProvidedBy,
            ApiProvidedBy => ProvidesApi,
            ConsumesApi => ApiConsumedBy,
            ApiConsumedBy => ConsumesApi,
            DependsOn => DependencyOf,
            DependencyOf => DependsOn,
            ParentOf => ChildOf,
            ChildOf => ParentOf,
            MemberOf => HasMember,
            HasMember => MemberOf,
            PartOf => HasPart,
            HasPart => PartOf,
        }
    }

    /// Case-insensitive lookup of a wire name (filters lower-case keys).
    pub fn from_name(s: &str) -> Option<RelationType> {
        RelationType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relation_is_its_inverse_inverse() {
        for t in RelationType::ALL {
            assert_eq!(t.inverse().inverse(), t);
            assert_ne!(t.inverse(), t);
            assert_eq!(RelationType::from_name(&t.as_str().to_uppercase()), Some(t));
        }
    }

    #[test]
    fn entity_keeps_unknown_metadata() {
        let json = r#"{"apiVersion":"backstage.io/v1alpha1","kind":"Component",
            "metadata":{"name":"a","custom":{"x":1}},"spec":{"type":"service"}}"#;
        let e: Entity = serde_json::from_str(json).unwrap();
        assert_eq!(e.metadata.extra["custom"]["x"], 1);
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["metadata"]["custom"]["x"], 1);
        assert_eq!(e.entity_ref().to_string(), "component:default/a");
    }
}

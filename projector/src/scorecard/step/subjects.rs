//! What an entity links to, read from its served JSON: the GitHub
//! repository it lives in, the cloud resource it was made of, and its
//! relation targets.

use proto::RelationType;
use serde_json::Value;

/// The subject of the GitHub repository an entity lives in: from
/// `github.com/project-slug`, else from its source or managed-by location.
pub fn github_subject(entity: &Value) -> Option<String> {
    let ann = entity.get("metadata")?.get("annotations")?;
    let text = |k: &str| ann.get(k).and_then(Value::as_str);
    let from_url = |loc: &str| -> Option<(String, String, String)> {
        let url = loc.strip_prefix("url:").unwrap_or(loc);
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let mut parts = rest.split('/');
        let host = parts.next()?;
        let owner = parts.next()?;
        let repo = parts.next()?;
        (!owner.is_empty() && !repo.is_empty()).then(|| {
            (
                host.to_string(),
                owner.to_string(),
                repo.trim_end_matches(".git").to_string(),
            )
        })
    };
    let located = text("backstage.io/source-location")
        .and_then(from_url)
        .or_else(|| text("backstage.io/managed-by-location").and_then(from_url));
    if let Some(slug) = text("github.com/project-slug")
        && let Some((owner, repo)) = slug.trim().split_once('/')
    {
        let host = located
            .map(|(h, _, _)| h)
            .unwrap_or_else(|| "github.com".into());
        return Some(proto::SubjectKey::github_repository(&host, owner, repo).to_string());
    }
    let (host, owner, repo) = located?;
    (host.contains("github"))
        .then(|| proto::SubjectKey::github_repository(&host, &owner, &repo).to_string())
}

/// The subject of the cloud resource an entity was made of: a cloud
/// source's location key (`aws:`, `gcp:`, `azure:`) is the key of the
/// resource's facts too.
pub fn cloud_subject(entity: &Value) -> Option<String> {
    let location = entity
        .get("metadata")?
        .get("annotations")?
        .get("backstage.io/managed-by-location")?
        .as_str()?;
    ["aws:", "gcp:", "azure:"]
        .iter()
        .any(|p| location.starts_with(p))
        .then(|| location.to_string())
}

/// Relation targets of one type in served JSON, as ref keys.
pub(super) fn targets(entity: &Value, relation: RelationType) -> impl Iterator<Item = String> + '_ {
    entity
        .get("relations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |r| r.get("type").and_then(Value::as_str) == Some(relation.as_str()))
        .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
}

pub(super) fn kind_of(r: &str) -> &str {
    r.split(':').next().unwrap_or("")
}

//! The `gcp` source: every resource of a set of projects, from Cloud Asset
//! Inventory's `searchAllResources` (REST, paginated), authenticated as a
//! service account (a JWT signed with its key, exchanged for an OAuth2
//! token), mapped by [`super::cloud`].
//!
//! ```yaml
//! - id: gcp-prod
//!   type: gcp
//!   gcp:
//!     projects: [acme-prod, acme-data]
//!     credentials_file: /run/secrets/gcp-sa.json   # a service account key
//!     asset_types: ["sqladmin.googleapis.com/Instance"]   # default: all
//!     endpoint_url: http://127.0.0.1:8085          # tests only
//!     mapping: {owner_tag: owner}                  # labels, as tags
//! ```
//!
//! Each project is listed as a whole or not at all (its scope is `-`): a
//! project whose calls fail removes nothing.

use super::cloud::{CloudResource, Mapping};
use proto::CloudResourceFacts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
#[cfg(feature = "clouds")]
use {
    super::rest::{CallError, RestClient, TokenSource, list_scopes},
    crate::source::{Known, Listing, Source, SourceDetails, SourceError},
    proto::SourceId,
    std::sync::Mutex,
    std::time::Duration,
};

/// The `gcp:` settings of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    pub projects: Vec<String>,
    /// A service account key (JSON, as the console downloads it).
    pub credentials_file: PathBuf,
    /// Asset types to list (`compute.googleapis.com/Instance`); empty: all.
    #[serde(default)]
    pub asset_types: Vec<String>,
    /// Cloud Asset API base URL (default `https://cloudasset.googleapis.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default)]
    pub mapping: Mapping,
}

fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    500
}

impl GcpConfig {
    pub fn new(projects: &[&str], credentials_file: impl Into<PathBuf>) -> Self {
        GcpConfig {
            projects: projects.iter().map(|p| p.to_string()).collect(),
            credentials_file: credentials_file.into(),
            asset_types: Vec::new(),
            endpoint_url: None,
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            mapping: Mapping::default(),
        }
    }

    /// Checks the settings, naming the field (relative to `gcp`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.projects.is_empty() {
            return Err(("projects".into(), "must list at least one project".into()));
        }
        for (i, p) in self.projects.iter().enumerate() {
            let ok = !p.is_empty()
                && p.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | ':' | '.')
                });
            if !ok {
                return Err((
                    format!("projects[{i}]"),
                    format!("{p:?} is not a project id"),
                ));
            }
        }
        if let Some(url) = &self.endpoint_url
            && url::Url::parse(url).is_err()
        {
            return Err(("endpoint_url".into(), format!("{url:?} is not a URL")));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts".into(), "must be at least 1".into()));
        }
        self.mapping
            .validate()
            .map_err(|(f, m)| (format!("mapping.{f}"), m))
    }
}

/// The fields of a service account key the source uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

/// Parses a service account key file's text, saying what is wrong.
pub fn parse_key(text: &str) -> Result<ServiceAccountKey, String> {
    let key: ServiceAccountKey =
        serde_json::from_str(text).map_err(|e| format!("not a service account key: {e}"))?;
    if !key.private_key.contains("PRIVATE KEY") {
        return Err("private_key is not a PEM private key".into());
    }
    Ok(key)
}

#[cfg(feature = "clouds")]
/// Signs the JWT of the service account's token request (RFC 7523).
struct JwtBearer {
    key: ServiceAccountKey,
    encoding: jsonwebtoken::EncodingKey,
}

#[cfg(feature = "clouds")]
impl TokenSource for JwtBearer {
    fn token_request(&self) -> Result<(String, Vec<(String, String)>), String> {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": self.key.client_email,
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": self.key.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.encoding,
        )
        .map_err(|e| format!("signing the token request: {e}"))?;
        Ok((
            self.key.token_uri.clone(),
            vec![
                (
                    "grant_type".into(),
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                ("assertion".into(), jwt),
            ],
        ))
    }
}

/// A GCP source's status.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CloudDetails {
    /// Accounts, projects or subscriptions read.
    pub scopes: Vec<String>,
    pub resources: usize,
    pub unowned: usize,
    pub calls: u64,
    pub retries: u64,
    pub throttled: u64,
    pub tokens: u64,
    pub failed_scopes: Vec<String>,
}

#[cfg(feature = "clouds")]
/// A `gcp` source instance.
pub struct GcpSource {
    id: SourceId,
    cfg: GcpConfig,
    client: RestClient,
    last: Mutex<CloudDetails>,
}

#[cfg(feature = "clouds")]
impl std::fmt::Debug for GcpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpSource")
            .field("id", &self.id)
            .field("projects", &self.cfg.projects)
            .finish()
    }
}

#[cfg(feature = "clouds")]
impl GcpSource {
    pub fn new(id: SourceId, cfg: GcpConfig) -> Result<Self, String> {
        cfg.validate().map_err(|(f, m)| format!("gcp.{f}: {m}"))?;
        let text = std::fs::read_to_string(&cfg.credentials_file).map_err(|e| {
            format!(
                "gcp.credentials_file: {}: {e}",
                cfg.credentials_file.display()
            )
        })?;
        let key = parse_key(&text).map_err(|e| {
            format!(
                "gcp.credentials_file: {}: {e}",
                cfg.credentials_file.display()
            )
        })?;
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|e| {
                format!(
                    "gcp.credentials_file: {}: private_key: {e}",
                    cfg.credentials_file.display()
                )
            })?;
        let client = RestClient::new(
            Box::new(JwtBearer { key, encoding }),
            cfg.max_attempts,
            Duration::from_millis(cfg.initial_backoff_ms),
        );
        Ok(GcpSource {
            id,
            cfg,
            client,
            last: Mutex::default(),
        })
    }

    fn base(&self) -> &str {
        self.cfg
            .endpoint_url
            .as_deref()
            .unwrap_or("https://cloudasset.googleapis.com")
            .trim_end_matches('/')
    }

    fn list_project(&self, project: &str) -> Result<Vec<CloudResource>, CallError> {
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut url = url::Url::parse(&format!(
                "{}/v1/projects/{project}:searchAllResources",
                self.base()
            ))
            .map_err(|e| CallError(e.to_string()))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("pageSize", "500");
                for t in &self.cfg.asset_types {
                    q.append_pair("assetTypes", t);
                }
                if let Some(t) = &page_token {
                    q.append_pair("pageToken", t);
                }
            }
            let page = self.client.call(url.as_str(), None)?;
            for r in page["results"].as_array().into_iter().flatten() {
                if let Some(res) = resource(project, r) {
                    out.push(res);
                }
            }
            match page["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page_token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

/// One result of `searchAllResources` as a resource (`None`: no name or
/// type).
pub fn resource(project: &str, r: &Value) -> Option<CloudResource> {
    let name = r["name"].as_str()?;
    let asset_type = r["assetType"].as_str()?;
    let (service, resource_type) = asset_type.split_once('/')?;
    let short = r["displayName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(name));
    let tags = r["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let location = r["location"]
        .as_str()
        .filter(|l| !l.is_empty() && *l != "global")
        .map(str::to_string);
    let kms = r["kmsKeys"].as_array().is_some_and(|k| !k.is_empty())
        || r["kmsKey"].as_str().is_some_and(|k| !k.is_empty());
    let facts = CloudResourceFacts {
        // Google encrypts every resource's data at rest; a customer key
        // (CMEK) is named in `engine`.
        encrypted: Some(true),
        engine: kms.then(|| "cmek".to_string()),
        status: r["state"].as_str().map(str::to_string),
        ..CloudResourceFacts::default()
    };
    Some(CloudResource {
        provider: "gcp",
        account: project.to_string(),
        scope: "-".into(),
        region: location,
        service: service.trim_end_matches(".googleapis.com").to_string(),
        resource_type: resource_type.to_string(),
        id: name.to_string(),
        short_name: short.to_string(),
        tags,
        facts,
    })
}

#[cfg(feature = "clouds")]
impl Source for GcpSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn list(&self, _known: &Known) -> Result<Listing, SourceError> {
        Ok(list_scopes(
            "gcp",
            &self.cfg.projects,
            |p| self.list_project(p),
            &self.cfg.mapping,
            &self.client,
            &self.last,
        ))
    }

    fn details(&self) -> SourceDetails {
        SourceDetails::Cloud(self.last.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_result_maps_to_a_resource() {
        let r = serde_json::json!({
            "name": "//sqladmin.googleapis.com/projects/acme-prod/instances/orders-db",
            "assetType": "sqladmin.googleapis.com/Instance",
            "project": "projects/1234",
            "displayName": "orders-db",
            "location": "europe-west1",
            "labels": {"owner": "payments", "env": "prod"},
            "state": "RUNNABLE",
            "kmsKeys": ["projects/acme-prod/locations/europe-west1/keyRings/r/cryptoKeys/k"]
        });
        let res = resource("acme-prod", &r).unwrap();
        assert_eq!(res.service, "sqladmin");
        assert_eq!(res.resource_type, "Instance");
        assert_eq!(res.region.as_deref(), Some("europe-west1"));
        assert_eq!(res.tags["owner"], "payments");
        assert_eq!(res.facts.engine.as_deref(), Some("cmek"));
        assert_eq!(
            res.key(),
            "gcp:acme-prod/-///sqladmin.googleapis.com/projects/acme-prod/instances/orders-db"
        );
        assert!(resource("p", &serde_json::json!({"name": "x"})).is_none());
        assert!(
            resource(
                "p",
                &serde_json::json!({"name": "x", "assetType": "no-slash"})
            )
            .is_none()
        );
    }

    #[test]
    fn keys_are_checked() {
        assert!(parse_key("{}").is_err());
        assert!(
            parse_key(r#"{"client_email": "a@b", "private_key": "nope"}"#)
                .unwrap_err()
                .contains("PEM")
        );
        let k = parse_key(
            r#"{"client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\n..."}"#,
        )
        .unwrap();
        assert_eq!(k.token_uri, "https://oauth2.googleapis.com/token");
    }
}

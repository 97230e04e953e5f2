//! The `azure` source: every resource of a set of subscriptions, from a
//! Resource Graph query (REST, paginated with `$skipToken`), authenticated
//! with an app registration's client credentials, mapped by
//! [`super::cloud`].
//!
//! ```yaml
//! - id: azure-prod
//!   type: azure
//!   azure:
//!     subscriptions: ["00000000-0000-0000-0000-000000000001"]
//!     tenant_id: "00000000-0000-0000-0000-0000000000aa"
//!     client_id: "00000000-0000-0000-0000-0000000000bb"
//!     client_secret_file: /run/secrets/azure-secret
//!     endpoint_url: http://127.0.0.1:8086      # tests only
//!     login_url: http://127.0.0.1:8086         # tests only
//!     mapping: {owner_tag: owner}
//! ```
//!
//! Each subscription is queried on its own and listed as a whole or not at
//! all: a subscription whose calls fail removes nothing.

use super::cloud::{CloudResource, Mapping};
use proto::CloudResourceFacts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
#[cfg(feature = "clouds")]
use {
    super::gcp::CloudDetails,
    super::rest::{CallError, RestClient, TokenSource, list_scopes},
    crate::source::{Known, Listing, Source, SourceDetails, SourceError},
    proto::SourceId,
    serde_json::json,
    std::sync::Mutex,
    std::time::Duration,
};

/// The Resource Graph query: every resource, with what the mapping and the
/// facts need.
pub const QUERY: &str = "Resources | project id, name, type, location, tags, subscriptionId, resourceGroup, properties | order by id asc";

/// The `azure:` settings of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    pub subscriptions: Vec<String>,
    pub tenant_id: String,
    pub client_id: String,
    /// A file holding the client secret (never the secret itself).
    pub client_secret_file: PathBuf,
    /// Azure Resource Manager (default `https://management.azure.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Microsoft Entra ID (default `https://login.microsoftonline.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
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

impl AzureConfig {
    /// Checks the settings, naming the field (relative to `azure`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.subscriptions.is_empty() {
            return Err((
                "subscriptions".into(),
                "must list at least one subscription".into(),
            ));
        }
        let guid = |s: &str| {
            s.len() == 36
                && s.chars().enumerate().all(|(i, c)| {
                    matches!(i, 8 | 13 | 18 | 23) == (c == '-')
                        && (c == '-' || c.is_ascii_hexdigit())
                })
        };
        for (i, s) in self.subscriptions.iter().enumerate() {
            if !guid(s) {
                return Err((
                    format!("subscriptions[{i}]"),
                    format!("{s:?} is not a subscription id"),
                ));
            }
        }
        for (field, v) in [
            ("tenant_id", &self.tenant_id),
            ("client_id", &self.client_id),
        ] {
            if v.trim().is_empty() {
                return Err((field.into(), "must not be empty".into()));
            }
        }
        for (field, url) in [
            ("endpoint_url", &self.endpoint_url),
            ("login_url", &self.login_url),
        ] {
            if let Some(u) = url
                && url::Url::parse(u).is_err()
            {
                return Err((field.into(), format!("{u:?} is not a URL")));
            }
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts".into(), "must be at least 1".into()));
        }
        self.mapping
            .validate()
            .map_err(|(f, m)| (format!("mapping.{f}"), m))
    }
}

#[cfg(feature = "clouds")]
/// The client-credentials grant of Microsoft Entra ID.
struct ClientCredentials {
    url: String,
    client_id: String,
    secret_file: PathBuf,
}

#[cfg(feature = "clouds")]
impl TokenSource for ClientCredentials {
    fn token_request(&self) -> Result<(String, Vec<(String, String)>), String> {
        // Read at each token request, so a rotated secret is picked up.
        let secret = std::fs::read_to_string(&self.secret_file).map_err(|e| {
            format!(
                "azure.client_secret_file: {}: {e}",
                self.secret_file.display()
            )
        })?;
        Ok((
            self.url.clone(),
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), self.client_id.clone()),
                ("client_secret".into(), secret.trim().to_string()),
                (
                    "scope".into(),
                    "https://management.azure.com/.default".into(),
                ),
            ],
        ))
    }
}

#[cfg(feature = "clouds")]
/// An `azure` source instance.
pub struct AzureSource {
    id: SourceId,
    cfg: AzureConfig,
    client: RestClient,
    last: Mutex<CloudDetails>,
}

#[cfg(feature = "clouds")]
impl std::fmt::Debug for AzureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSource")
            .field("id", &self.id)
            .field("subscriptions", &self.cfg.subscriptions)
            .finish()
    }
}

#[cfg(feature = "clouds")]
impl AzureSource {
    pub fn new(id: SourceId, cfg: AzureConfig) -> Result<Self, String> {
        cfg.validate().map_err(|(f, m)| format!("azure.{f}: {m}"))?;
        if !cfg.client_secret_file.is_file() {
            return Err(format!(
                "azure.client_secret_file: {} is not a readable file",
                cfg.client_secret_file.display()
            ));
        }
        let login = cfg
            .login_url
            .as_deref()
            .unwrap_or("https://login.microsoftonline.com")
            .trim_end_matches('/');
        let client = RestClient::new(
            Box::new(ClientCredentials {
                url: format!("{login}/{}/oauth2/v2.0/token", cfg.tenant_id),
                client_id: cfg.client_id.clone(),
                secret_file: cfg.client_secret_file.clone(),
            }),
            cfg.max_attempts,
            Duration::from_millis(cfg.initial_backoff_ms),
        );
        Ok(AzureSource {
            id,
            cfg,
            client,
            last: Mutex::default(),
        })
    }

    fn list_subscription(&self, subscription: &str) -> Result<Vec<CloudResource>, CallError> {
        let base = self
            .cfg
            .endpoint_url
            .as_deref()
            .unwrap_or("https://management.azure.com")
            .trim_end_matches('/');
        let url =
            format!("{base}/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01");
        let mut out = Vec::new();
        let mut skip: Option<String> = None;
        loop {
            let mut options = json!({"$top": 1000, "resultFormat": "objectArray"});
            if let Some(s) = &skip {
                options["$skipToken"] = json!(s);
            }
            let body = json!({
                "subscriptions": [subscription],
                "query": QUERY,
                "options": options,
            });
            let page = self.client.call(&url, Some(&body))?;
            let rows = page["data"]
                .as_array()
                .ok_or_else(|| CallError(format!("{url}: the answer has no data array")))?;
            for r in rows {
                if let Some(res) = resource(subscription, r) {
                    out.push(res);
                }
            }
            match page["$skipToken"].as_str() {
                Some(t) if !t.is_empty() => skip = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

/// One Resource Graph row as a resource (`None`: no id or type).
pub fn resource(subscription: &str, r: &Value) -> Option<CloudResource> {
    let id = r["id"].as_str()?;
    let ty = r["type"].as_str()?.to_ascii_lowercase();
    let (service, resource_type) = ty.split_once('/')?;
    let name = r["name"]
        .as_str()
        .unwrap_or_else(|| id.rsplit('/').next().unwrap_or(id));
    let tags = r["tags"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let p = &r["properties"];
    let text = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).map(str::to_string);
    let public = text("/publicNetworkAccess")
        .map(|v| v.eq_ignore_ascii_case("enabled"))
        .or_else(|| p.pointer("/allowBlobPublicAccess").and_then(Value::as_bool));
    let encrypted = p
        .pointer("/encryption/services/blob/enabled")
        .and_then(Value::as_bool)
        .or_else(|| {
            text("/encryption/status")
                .or_else(|| text("/transparentDataEncryption/status"))
                .map(|s| s.eq_ignore_ascii_case("enabled"))
        })
        .or_else(|| p.get("encryption").map(|e| !e.is_null()));
    let facts = CloudResourceFacts {
        encrypted,
        public,
        engine_version: text("/version").or_else(|| text("/kubernetesVersion")),
        status: text("/provisioningState"),
        runtime: text("/siteConfig/linuxFxVersion"),
        ..CloudResourceFacts::default()
    };
    Some(CloudResource {
        provider: "azure",
        account: subscription.to_ascii_lowercase(),
        scope: "-".into(),
        region: r["location"]
            .as_str()
            .filter(|l| !l.is_empty() && *l != "global")
            .map(str::to_string),
        service: service.to_string(),
        resource_type: resource_type.to_string(),
        // Azure matches ids without regard to case.
        id: id.to_ascii_lowercase(),
        short_name: name.to_string(),
        tags,
        facts,
    })
}

#[cfg(feature = "clouds")]
impl Source for AzureSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn list(&self, _known: &Known) -> Result<Listing, SourceError> {
        Ok(list_scopes(
            "azure",
            &self.cfg.subscriptions,
            |s| self.list_subscription(s),
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
    fn a_graph_row_maps_to_a_resource() {
        let r = json!({
            "id": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/Invoices",
            "name": "Invoices",
            "type": "Microsoft.Storage/storageAccounts",
            "location": "westeurope",
            "tags": {"owner": "billing"},
            "properties": {
                "provisioningState": "Succeeded",
                "allowBlobPublicAccess": false,
                "encryption": {"services": {"blob": {"enabled": true}}}
            }
        });
        let res = resource("00000000-0000-0000-0000-000000000001", &r).unwrap();
        assert_eq!(res.service, "microsoft.storage");
        assert_eq!(res.resource_type, "storageaccounts");
        assert_eq!(res.short_name, "Invoices");
        assert!(res.id.ends_with("/storageaccounts/invoices"));
        assert_eq!(
            (res.facts.encrypted, res.facts.public),
            (Some(true), Some(false))
        );
        assert_eq!(res.facts.status.as_deref(), Some("Succeeded"));
        assert!(resource("s", &json!({"id": "x"})).is_none());
    }

    #[test]
    fn subscriptions_must_be_guids() {
        let mut c = AzureConfig {
            subscriptions: vec!["00000000-0000-0000-0000-000000000001".into()],
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret_file: "/s".into(),
            endpoint_url: None,
            login_url: None,
            max_attempts: 5,
            initial_backoff_ms: 10,
            mapping: Mapping::default(),
        };
        assert!(c.validate().is_ok());
        c.subscriptions[0] = "prod".into();
        assert_eq!(c.validate().unwrap_err().0, "subscriptions[0]");
    }
}

//! Settings of a `github` source.
//!
//! ```yaml
//! sources:
//!   - id: github-acme
//!     type: github
//!     schedule: "0 */5 * * * *"        # full re-poll; webhooks act at once
//!     github:
//!       organizations: [acme, acme-labs]
//!       host: github.com               # or a GitHub Enterprise Server host
//!       api_base_url: https://api.github.com   # default from host
//!       auth:                          # one of:
//!         token_env: GITHUB_TOKEN      #   a personal access token (or token_file)
//!         # app_id: 12345              #   or a GitHub App
//!         # private_key_path: /secrets/app.pem
//!         # installation_id: 678       #   default: the org's installation
//!       catalog_path: /catalog-info.yaml   # globs allowed: /**/catalog-info.yaml
//!       branch: main                   # default: each repository's default branch
//!       filters:
//!         repository: "^(svc|lib)-"    # regex on the repository name
//!         topics_include: [catalog]
//!         topics_exclude: [experimental]
//!         visibility: [public, private, internal]
//!         archived: false              # include archived repositories
//!         forks: false
//!       org_data: true                 # teams -> Groups, members -> Users
//!       org_interval_secs: 3600        # re-read teams at most this often
//!       facts: true                    # repository facts to catalog.facts.v1
//!       facts_interval_secs: 21600     # re-read facts of unchanged repos
//!       concurrency: 8
//!       webhook_secret_env: GITHUB_WEBHOOK_SECRET   # or webhook_secret_file
//!       rate_limit: { max_wait_secs: 900, secondary_backoff_secs: 60 }
//! ```
//!
//! Secrets are never written in the file itself: `token_env`,
//! `private_key_env` and `webhook_secret_env` name environment variables;
//! `token_file`, `private_key_path` and `webhook_secret_file` name files.

use serde::{Deserialize, Serialize};

/// The `github:` block of a `github` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    #[serde(alias = "organization", deserialize_with = "one_or_many")]
    pub organizations: Vec<String>,
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default, alias = "apiBaseUrl", skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    pub auth: GithubAuth,
    #[serde(default = "default_catalog_path", alias = "catalogPath")]
    pub catalog_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default)]
    pub filters: RepoFilters,
    #[serde(default = "yes")]
    pub org_data: bool,
    #[serde(default = "default_org_interval")]
    pub org_interval_secs: u64,
    #[serde(default = "yes")]
    pub facts: bool,
    #[serde(default = "default_facts_interval")]
    pub facts_interval_secs: u64,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_env: Option<String>,
    /// File holding the webhook secret (a mounted secret, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
}

/// How the source authenticates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubAuth {
    /// Environment variable holding a personal access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// File holding a personal access token (surrounding whitespace is
    /// ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<std::path::PathBuf>,
    /// GitHub App id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<u64>,
    /// File holding the App's PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<std::path::PathBuf>,
    /// Environment variable holding the App's PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_env: Option<String>,
    /// The installation to act as; default: the installation on each
    /// organization (one token per organization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
}

/// Which repositories are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoFilters {
    /// Regular expression the repository name must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// A repository must carry at least one of these topics (if any).
    #[serde(default)]
    pub topics_include: Vec<String>,
    /// A repository with any of these topics is skipped.
    #[serde(default)]
    pub topics_exclude: Vec<String>,
    /// Visibilities read (default: all).
    #[serde(default = "default_visibility")]
    pub visibility: Vec<String>,
    /// Whether archived repositories are read.
    #[serde(default)]
    pub archived: bool,
    /// Whether forks are read.
    #[serde(default = "yes")]
    pub forks: bool,
}

impl Default for RepoFilters {
    fn default() -> Self {
        RepoFilters {
            repository: None,
            topics_include: Vec::new(),
            topics_exclude: Vec::new(),
            visibility: default_visibility(),
            archived: false,
            forks: true,
        }
    }
}

/// Limits of waiting on GitHub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The longest single wait for a limit to lift; a longer one makes the
    /// sync incomplete instead (it resumes on the next poll).
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: u64,
    /// First backoff after a secondary limit without `retry-after`.
    #[serde(default = "default_secondary_backoff")]
    pub secondary_backoff_secs: u64,
    /// First backoff after a server error, in milliseconds.
    #[serde(default = "default_error_backoff_ms")]
    pub error_backoff_ms: u64,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_wait_secs: default_max_wait(),
            secondary_backoff_secs: default_secondary_backoff(),
            error_backoff_ms: default_error_backoff_ms(),
            max_retries: default_max_retries(),
            request_timeout_secs: default_request_timeout(),
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn yes() -> bool {
    true
}
fn default_host() -> String {
    "github.com".into()
}
fn default_catalog_path() -> String {
    "/catalog-info.yaml".into()
}
fn default_org_interval() -> u64 {
    3600
}
fn default_facts_interval() -> u64 {
    6 * 3600
}
fn default_concurrency() -> usize {
    8
}
fn default_visibility() -> Vec<String> {
    vec!["public".into(), "private".into(), "internal".into()]
}
fn default_max_wait() -> u64 {
    900
}
fn default_secondary_backoff() -> u64 {
    60
}
fn default_error_backoff_ms() -> u64 {
    1000
}
fn default_max_retries() -> u32 {
    4
}
fn default_request_timeout() -> u64 {
    30
}

impl GithubConfig {
    /// A config for `orgs` on `api_base_url` with the token in
    /// `token_file` and every other setting at its default.
    pub fn new(orgs: &[&str], api_base_url: Option<&str>, token_file: &std::path::Path) -> Self {
        GithubConfig {
            organizations: orgs.iter().map(|s| s.to_string()).collect(),
            host: default_host(),
            api_base_url: api_base_url.map(str::to_string),
            auth: GithubAuth {
                token_file: Some(token_file.into()),
                ..GithubAuth::default()
            },
            catalog_path: default_catalog_path(),
            branch: None,
            filters: RepoFilters::default(),
            org_data: true,
            org_interval_secs: default_org_interval(),
            facts: true,
            facts_interval_secs: default_facts_interval(),
            concurrency: default_concurrency(),
            webhook_secret_env: None,
            webhook_secret_file: None,
            rate_limit: RateLimitConfig::default(),
        }
    }

    /// The REST API base: the configured one, `https://api.github.com` for
    /// github.com, `https://{host}/api/v3` for GitHub Enterprise Server.
    pub fn api_base(&self) -> String {
        match &self.api_base_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if self.host == "github.com" => "https://api.github.com".into(),
            None => format!("https://{}/api/v3", self.host),
        }
    }

    /// The catalog path without its leading `/`.
    pub fn catalog_path(&self) -> &str {
        self.catalog_path.trim_start_matches('/')
    }

    /// Whether the catalog path is a glob (read through the tree API).
    pub fn catalog_path_is_glob(&self) -> bool {
        self.catalog_path.contains(['*', '?', '[', '{'])
    }

    /// Checks what serde cannot; errors name the field under `github.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let e = |f: &str, m: String| Err((format!("github.{f}"), m));
        if self.organizations.is_empty() {
            return e(
                "organizations",
                "must name at least one organization".into(),
            );
        }
        for (i, o) in self.organizations.iter().enumerate() {
            if o.is_empty() || !o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return e(
                    &format!("organizations[{i}]"),
                    format!("{o:?} is not a GitHub organization name"),
                );
            }
        }
        if self.host.is_empty() || self.host.contains('/') {
            return e("host", format!("{:?} is not a host name", self.host));
        }
        if let Some(u) = &self.api_base_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return e("api_base_url", format!("{u:?} is not an http(s) URL"));
        }
        let a = &self.auth;
        let app = a.app_id.is_some();
        let key = a.private_key_path.is_some() || a.private_key_env.is_some();
        let token = a.token_env.is_some() || a.token_file.is_some();
        if a.token_env.is_some() && a.token_file.is_some() {
            return e("auth", "set token_env or token_file, not both".into());
        }
        if self.webhook_secret_env.is_some() && self.webhook_secret_file.is_some() {
            return e(
                "webhook_secret_env",
                "set webhook_secret_env or webhook_secret_file, not both".into(),
            );
        }
        match (token, app) {
            (true, true) => return e("auth", "set a token or app_id, not both".into()),
            (false, false) => {
                return e(
                    "auth",
                    "set token_env or token_file, or app_id with a private key".into(),
                );
            }
            (false, true) if !key => {
                return e(
                    "auth",
                    "a GitHub App needs private_key_path or private_key_env".into(),
                );
            }
            _ => {}
        }
        if self.catalog_path().is_empty() {
            return e("catalog_path", "must name a file".into());
        }
        if self.catalog_path_is_glob()
            && let Err(err) = crate::files::compile_glob(self.catalog_path())
        {
            return e("catalog_path", format!("invalid glob: {err}"));
        }
        if let Some(r) = &self.filters.repository
            && let Err(err) = regex::Regex::new(r)
        {
            return e(
                "filters.repository",
                format!("invalid regular expression: {err}"),
            );
        }
        for (i, v) in self.filters.visibility.iter().enumerate() {
            if !matches!(v.as_str(), "public" | "private" | "internal") {
                return e(
                    &format!("filters.visibility[{i}]"),
                    format!("{v:?} is not one of public, private, internal"),
                );
            }
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            return e("concurrency", "must be between 1 and 64".into());
        }
        if self.rate_limit.request_timeout_secs == 0 {
            return e(
                "rate_limit.request_timeout_secs",
                "must be greater than 0".into(),
            );
        }
        Ok(())
    }
}

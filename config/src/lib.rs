//! The configuration of every service: one YAML file, environment
//! overrides, command-line flags last. Unknown fields are errors that name
//! the field; values are checked at start.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded log, ingest state and projections live.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub ingest: ingest::IngestConfig,
    pub processor: processor::ProcessorConfig,
    pub projector: projector::ProjectorConfig,
    pub serve: ServeConfig,
    /// Locations registered through the API: which `file` roots are
    /// allowed, and whether this ingest observes them.
    pub locations: ingest::LocationsConfig,
    /// Who may call the API. Absent: reads open, and no token unless the
    /// legacy `serve.write_token_*` names one (`catalog dev` then makes a
    /// token of its own, see [`AuthConfig`]).
    pub auth: Option<AuthConfig>,
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            ingest: ingest::IngestConfig::default(),
            processor: processor::ProcessorConfig::default(),
            projector: projector::ProjectorConfig::default(),
            serve: ServeConfig::default(),
            locations: ingest::LocationsConfig::default(),
            auth: None,
            telemetry: TelemetryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The durable log in RocksDB: one process only (`catalog dev`).
    Embedded,
    /// Any Kafka-protocol cluster.
    Kafka,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub backend: Backend,
    /// `host:port[,host:port]`; required for `kafka`.
    pub brokers: Option<String>,
    /// Partitions of each topic when the catalog creates them; an existing
    /// topic with fewer stops the services.
    pub partitions: u32,
    /// Prepended to every topic and consumer group name on the broker, so
    /// several catalogs (or test runs) share one cluster. Default empty.
    pub topic_prefix: String,
    /// Replicas per partition of created topics (default: the broker's
    /// `default.replication.factor`); an existing topic with fewer stops
    /// the services.
    pub replication_factor: Option<u16>,
    /// `min.insync.replicas` of created topics (default: the broker's); an
    /// existing topic with fewer stops the services.
    pub min_insync_replicas: Option<u16>,
    /// Extra librdkafka properties (e.g. `security.protocol`).
    pub kafka: BTreeMap<String, String>,
}

impl LogConfig {
    /// What every topic must look like (`catalog topics`, and each service
    /// at start).
    pub fn topic_requirements(&self) -> eventlog::topics::TopicRequirements {
        eventlog::topics::TopicRequirements {
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            backend: Backend::Embedded,
            brokers: None,
            partitions: 4,
            topic_prefix: String::new(),
            replication_factor: None,
            min_insync_replicas: None,
            kafka: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Legacy: a file holding a token with the scopes `catalog.write` and
    /// `scorecards.write` (prefer `auth.tokens`).
    pub write_token_file: Option<PathBuf>,
    /// Legacy: or the environment variable that holds it.
    pub write_token_env: Option<String>,
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Longest a request may take until its response starts, seconds (503
    /// beyond; a streamed list, once started, is not cut).
    pub request_timeout_secs: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7007)),
            write_token_file: None,
            write_token_env: None,
            max_body_bytes: 4 << 20,
            request_timeout_secs: 60,
        }
    }
}

/// `auth`: who may call the API.
///
/// ```yaml
/// auth:
///   read: open            # or: token (catalog.read needed)
///   tokens:
///     - {name: ci, token_file: /run/secrets/ci, scopes: [catalog.read, catalog.write]}
///   oidc: {issuer: https://sso.example.com, audience: catalog, scopes_claim: scp}
///   rate_limit: {per_second: 50, burst: 100}
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub read: ReadAccess,
    pub tokens: Vec<TokenConfig>,
    pub oidc: Option<OidcConfig>,
    pub rate_limit: Option<RateLimitConfig>,
}

/// Whether reads need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadAccess {
    #[default]
    Open,
    Token,
}

/// A static bearer token: its secret in a file or an environment variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: the subject its writes are attributed to.
    pub name: String,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// `catalog.read`, `catalog.write`, `scorecards.write`, `admin`.
    pub scopes: Vec<String>,
}

/// JWTs of an OpenID Connect issuer, verified against its JWKS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` claim; the keys come from its discovery document unless
    /// `jwks_uri` is given (e.g. Backstage's
    /// `/api/auth/.well-known/jwks.json`).
    pub issuer: String,
    pub jwks_uri: Option<String>,
    /// Accepted `aud` values (one or a list); none: any audience.
    #[serde(default)]
    pub audience: OneOrMany,
    /// The claim holding scopes: a space-separated string or an array.
    #[serde(default = "default_scopes_claim")]
    pub scopes_claim: String,
    /// Claim values (e.g. group names) -> scopes, besides values that name
    /// a scope themselves.
    #[serde(default)]
    pub scope_map: BTreeMap<String, Vec<String>>,
    /// Keys older than this are fetched again, seconds.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
}

fn default_scopes_claim() -> String {
    "scope".into()
}

fn default_jwks_refresh() -> u64 {
    600
}

/// A value or a list of them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Requests per principal (per client address without a token).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// Where `catalog process` and `catalog project` serve `/metrics` and
    /// `/livez` (they have no API listener); none by default.
    pub metrics_listen: Option<SocketAddr>,
}

/// The `CATALOG_*` variables the services read.
const KNOWN_ENV: [&str; 10] = [
    "CATALOG_DATA_DIR",
    "CATALOG_BROKERS",
    "CATALOG_LISTEN",
    "CATALOG_INGEST_LISTEN",
    "CATALOG_PARTITIONS",
    "CATALOG_TOPIC_PREFIX",
    "CATALOG_REPLICATION_FACTOR",
    "CATALOG_MIN_INSYNC_REPLICAS",
    "CATALOG_METRICS_LISTEN",
    "CATALOG_LOG_FORMAT",
];

/// `CATALOG_*` variables of the scripts and tests around the services
/// (`scripts/kafka`, `scripts/check-manifests`, the test suites), which a
/// service may inherit and ignores.
fn reserved_env(name: &str) -> bool {
    name.starts_with("CATALOG_TEST_")
        || name.starts_with("CATALOG_KAFKA_")
        || matches!(
            name,
            "CATALOG_TOOLS_CACHE" | "CATALOG_KUBERNETES_VERSION" | "CATALOG_CRASH_ROUNDS"
        )
}

impl Config {
    /// Reads the file (if any), then applies `CATALOG_*` environment
    /// overrides from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                Self::parse(&text).with_context(|| format!("config file {}", path.display()))?
            }
            None => Config::default(),
        };
        for (k, v) in env {
            cfg.apply_env(&k, &v)?;
        }
        Ok(cfg)
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn apply_env(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let bad = |what: &str| anyhow::anyhow!("environment variable {key}={value:?}: {what}");
        match key {
            "CATALOG_DATA_DIR" => self.data_dir = PathBuf::from(value),
            "CATALOG_BROKERS" => self.set_brokers(value),
            "CATALOG_LISTEN" => {
                self.serve.listen = value.parse().map_err(|_| bad("not a socket address"))?
            }
            "CATALOG_INGEST_LISTEN" => {
                self.ingest.listen = Some(value.parse().map_err(|_| bad("not a socket address"))?)
            }
            "CATALOG_PARTITIONS" => {
                self.log.partitions = value.parse().map_err(|_| bad("not a whole number"))?
            }
            "CATALOG_TOPIC_PREFIX" => value.clone_into(&mut self.log.topic_prefix),
            "CATALOG_REPLICATION_FACTOR" => {
                self.log.replication_factor =
                    Some(value.parse().map_err(|_| bad("not a whole number"))?)
            }
            "CATALOG_MIN_INSYNC_REPLICAS" => {
                self.log.min_insync_replicas =
                    Some(value.parse().map_err(|_| bad("not a whole number"))?)
            }
            "CATALOG_METRICS_LISTEN" => {
                self.telemetry.metrics_listen =
                    Some(value.parse().map_err(|_| bad("not a socket address"))?)
            }
            "CATALOG_LOG_FORMAT" => {
                self.telemetry.log_format = match value {
                    "json" => LogFormat::Json,
                    "text" => LogFormat::Text,
                    _ => return Err(bad("expected json or text")),
                }
            }
            other if other.starts_with("CATALOG_") && !reserved_env(other) => {
                return Err(anyhow::anyhow!(
                    "environment variable {other}: not a setting of the catalog (known: {})",
                    KNOWN_ENV.join(", ")
                ));
            }
            _ => {}
        }
        Ok(())
    }

    pub fn set_brokers(&mut self, brokers: &str) {
        self.log.backend = Backend::Kafka;
        self.log.brokers = Some(brokers.to_string());
    }

    /// Checks what serde cannot; errors name the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.log.partitions == 0 || self.log.partitions > 1024 {
            bail!(
                "log.partitions: must be 1..=1024, got {}",
                self.log.partitions
            );
        }
        if self.log.backend == Backend::Kafka
            && self
                .log
                .brokers
                .as_deref()
                .is_none_or(|b| b.trim().is_empty())
        {
            bail!("log.brokers: required when log.backend is kafka");
        }
        if let Some(bad) = self
            .log
            .topic_prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            bail!(
                "log.topic_prefix: {:?} has {bad:?}; Kafka topic names allow ASCII letters, \
                 digits, '.', '_' and '-'",
                self.log.topic_prefix
            );
        }
        if self.log.topic_prefix.len() > 200 {
            bail!("log.topic_prefix: longer than 200 characters");
        }
        if self.log.replication_factor == Some(0) {
            bail!("log.replication_factor: must be at least 1");
        }
        if let (Some(isr), Some(rf)) = (self.log.min_insync_replicas, self.log.replication_factor)
            && (isr == 0 || isr > rf)
        {
            bail!("log.min_insync_replicas: must be 1..={rf} (log.replication_factor), got {isr}");
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        if self.serve.max_body_bytes == 0 || self.serve.request_timeout_secs == 0 {
            bail!("serve.max_body_bytes and serve.request_timeout_secs: must be at least 1");
        }
        if self.projector.batch_max == 0 {
            bail!("projector.batch_max: must be at least 1");
        }
        if self.projector.batch_max_bytes == 0 {
            bail!("projector.batch_max_bytes: must be at least 1");
        }
        if self.projector.feed_retention_days == Some(0) {
            bail!(
                "projector.feed_retention_days: must be at least 1 (leave it out to keep the feed forever)"
            );
        }
        if self.projector.part_entities == 0 {
            bail!("projector.part_entities: must be at least 1");
        }
        self.ingest.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

impl AuthConfig {
    /// Checks names, scopes and where each secret comes from (not the
    /// secrets themselves: they are read at start).
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let at = format!("auth.tokens[{i}]");
            if t.name.trim().is_empty() {
                bail!("{at}.name: must not be empty");
            }
            if !names.insert(t.name.as_str()) {
                bail!("{at}.name: {:?} is used twice", t.name);
            }
            if t.token_file.is_some() == t.token_env.is_some() {
                bail!("{at}: give exactly one of token_file and token_env");
            }
            if t.scopes.is_empty() {
                bail!("{at}.scopes: must name at least one scope");
            }
            for (j, s) in t.scopes.iter().enumerate() {
                query::Scope::parse(s).map_err(|e| anyhow::anyhow!("{at}.scopes[{j}]: {e}"))?;
            }
        }
        if let Some(o) = &self.oidc {
            if !(o.issuer.starts_with("https://") || o.issuer.starts_with("http://")) {
                bail!("auth.oidc.issuer: {:?} is not an http(s) URL", o.issuer);
            }
            if o.scopes_claim.is_empty() {
                bail!("auth.oidc.scopes_claim: must not be empty");
            }
            for (value, scopes) in &o.scope_map {
                for s in scopes {
                    query::Scope::parse(s)
                        .map_err(|e| anyhow::anyhow!("auth.oidc.scope_map[{value:?}]: {e}"))?;
                }
            }
        }
        if let Some(r) = &self.rate_limit
            && (r.per_second == 0 || r.burst == 0)
        {
            bail!("auth.rate_limit: per_second and burst must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_seed_is_a_valid_config() {
        let text = include_str!("../../fuzz/seeds/config/full.yaml");
        let cfg = Config::parse(text).unwrap();
        cfg.validate().unwrap();
        let kinds: Vec<&str> = cfg
            .ingest
            .sources
            .iter()
            .map(|s| match s.kind {
                ingest::SourceKind::Files(_) => "files",
                ingest::SourceKind::Github(_) => "github",
                ingest::SourceKind::Aws(_) => "aws",
                ingest::SourceKind::Gcp(_) => "gcp",
                ingest::SourceKind::Azure(_) => "azure",
            })
            .collect();
        assert_eq!(kinds, ["files", "aws", "gcp", "azure"]);
        assert_eq!(cfg.ingest.retired_sources, ["old-source"]);
        assert!(cfg.auth.is_some());
    }

    #[test]
    fn defaults_and_overrides() {
        let cfg = Config::load(
            None,
            [
                ("CATALOG_BROKERS".to_string(), "localhost:9092".to_string()),
                ("CATALOG_LISTEN".to_string(), "0.0.0.0:8080".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(cfg.log.backend, Backend::Kafka);
        assert_eq!(cfg.serve.listen.port(), 8080);
        cfg.validate().unwrap();
    }

    #[test]
    fn topic_settings_are_checked_and_named() {
        let cfg = Config::parse("log:\n  topic_prefix: 'team a.'\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("log.topic_prefix"), "{err}");
        let cfg =
            Config::parse("log:\n  replication_factor: 2\n  min_insync_replicas: 3\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("log.min_insync_replicas"), "{err}");
        let cfg = Config::load(
            None,
            [
                ("CATALOG_TOPIC_PREFIX".into(), "t1.".into()),
                ("CATALOG_REPLICATION_FACTOR".into(), "3".into()),
                ("CATALOG_MIN_INSYNC_REPLICAS".into(), "2".into()),
            ],
        )
        .unwrap();
        cfg.validate().unwrap();
        let req = cfg.log.topic_requirements();
        assert_eq!(cfg.log.topic_prefix, "t1.");
        assert_eq!(req.replication_factor, Some(3));
        assert_eq!(req.min_insync_replicas, Some(2));
    }

    #[test]
    fn projector_batch_and_part_sizes_are_read_and_checked() {
        let cfg = Config::parse("projector:\n  part_entities: 500\n  batch_max_bytes: 1048576\n")
            .unwrap();
        assert_eq!(cfg.projector.part_entities, 500);
        assert_eq!(cfg.projector.batch_max_bytes, 1 << 20);
        cfg.validate().unwrap();
        let cfg = Config::parse("projector:\n  part_entities: 0\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("projector.part_entities"), "{err}");
    }

    #[test]
    fn auth_is_read_and_checked_naming_the_field() {
        let cfg = Config::parse(
            "auth:\n  read: token\n  tokens:\n    - {name: ci, token_file: /run/secrets/ci, scopes: [catalog.read, catalog.write]}\n  oidc: {issuer: https://sso.example.com, audience: catalog, scopes_claim: scp, scope_map: {platform: [admin]}}\n  rate_limit: {per_second: 50, burst: 100}\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        let auth = cfg.auth.as_ref().unwrap();
        assert_eq!(auth.read, ReadAccess::Token);
        assert_eq!(auth.tokens[0].scopes, ["catalog.read", "catalog.write"]);
        let oidc = auth.oidc.as_ref().unwrap();
        assert_eq!(oidc.audience.to_vec(), ["catalog"]);
        assert_eq!(oidc.jwks_refresh_secs, 600);
        for (yaml, named) in [
            (
                "auth:\n  tokens:\n    - {name: ci, token_env: T, scopes: [catalog.raed]}\n",
                "auth.tokens[0].scopes[0]",
            ),
            (
                "auth:\n  tokens:\n    - {name: ci, token_env: T, token_file: /x, scopes: [admin]}\n",
                "exactly one of token_file and token_env",
            ),
            (
                "auth:\n  tokens:\n    - {name: a, token_env: T, scopes: [admin]}\n    - {name: a, token_env: U, scopes: [admin]}\n",
                "auth.tokens[1].name",
            ),
            (
                "auth:\n  oidc: {issuer: sso.example.com}\n",
                "auth.oidc.issuer",
            ),
            (
                "auth:\n  rate_limit: {per_second: 0, burst: 1}\n",
                "auth.rate_limit",
            ),
        ] {
            let err = Config::parse(yaml)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{yaml}: {err}");
        }
        let err = Config::parse("auth:\n  read: everyone\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("everyone"), "{err}");
    }

    #[test]
    fn unknown_field_is_named() {
        let err = Config::parse("log:\n  partitons: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("partitons"), "{err}");
    }

    #[test]
    fn unknown_catalog_variables_are_named_and_the_scripts_own_are_not() {
        let err = Config::load(None, [("CATALOG_LISTN".into(), "0.0.0.0:1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CATALOG_LISTN") && err.contains("CATALOG_LISTEN"),
            "{err}"
        );
        Config::load(
            None,
            [
                ("CATALOG_TEST_BROKERS".into(), "127.0.0.1:1".into()),
                ("CATALOG_KAFKA_HEAP".into(), "512m".into()),
                ("CATALOG_CRASH_ROUNDS".into(), "9".into()),
                ("PATH".into(), "/bin".into()),
            ],
        )
        .unwrap();
    }

    #[test]
    fn bad_env_is_named() {
        let err = Config::load(None, [("CATALOG_PARTITIONS".into(), "many".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CATALOG_PARTITIONS"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut cfg = Config::default();
        cfg.log.partitions = 0;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("log.partitions")
        );
        let cfg = Config::parse("log:\n  backend: kafka\n").unwrap();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("log.brokers")
        );
    }
}

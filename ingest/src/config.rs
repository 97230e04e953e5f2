//! Configuration of the ingest stage: which sources exist, how often they
//! are polled, and the limits that protect the pipeline.
//!
//! ```yaml
//! sources:
//!   - id: demo
//!     type: files
//!     path: ./catalog            # the directory to walk
//!     patterns: ["**/*.yaml"]    # default: **/*.yaml, **/*.yml
//!     schedule: "*/5 * * * * *"  # cron, seconds first; default: every second
//!     max_file_bytes: 268435456  # a file over this is too_large, unread (default 256 MiB)
//!     removal_guard: { max_share: 0.5, min_count: 3 }
//! ```
//!
//! Every struct rejects unknown fields, so a typo is an error rather than a
//! silently ignored setting. [`IngestConfig::validate`] checks what serde
//! cannot (cron syntax, globs, ranges) and names the offending field.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;

/// Default cron schedule: every second (`sec min hour dom month dow`).
pub const DEFAULT_SCHEDULE: &str = "*/1 * * * * *";
/// Default schedule of a cloud source (every 5 minutes).
pub const DEFAULT_CLOUD_SCHEDULE: &str = "0 */5 * * * *";
/// Default largest file a source reads and ships (256 MiB); documents have
/// their own limit in the processor.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Default file patterns of a `files` source.
pub const DEFAULT_PATTERNS: [&str; 2] = ["**/*.yaml", "**/*.yml"];

/// The `ingest` section of the configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Where `catalog ingest` serves webhooks and source status (`catalog
    /// dev` serves them on the API's listener); `None`: no listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
    /// Scorecard definition files, published to the scorecards topic.
    #[serde(default)]
    pub scorecards: crate::scorecards::ScorecardsConfig,
    /// Ids of sources taken out of `sources` whose removal is confirmed:
    /// what they yielded is removed whatever the removal guard says. A
    /// source that is simply gone from the configuration is removed under
    /// the guard (held back and reported when it held many locations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_sources: Vec<String>,
}

/// One configured source instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSourceConfig", into = "RawSourceConfig")]
pub struct SourceConfig {
    /// Stable name of the source (`[A-Za-z0-9._-]+`); part of every
    /// observation and of the sync state's keys.
    pub id: String,
    /// What kind of source this is, with its own settings.
    pub kind: SourceKind,
    /// Cron expression with seconds (6 or 7 fields).
    pub schedule: String,
    /// Locations larger than this are observed as `too_large`, unread.
    pub max_file_bytes: u64,
    /// Protection against a listing that suddenly lacks most locations.
    pub removal_guard: RemovalGuard,
}

/// The kinds of sources, with their settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A directory of descriptor files (`type: files`).
    Files(FilesConfig),
    /// GitHub organizations (`type: github`, settings under `github:`).
    Github(Box<crate::github::config::GithubConfig>),
    /// AWS accounts and regions (`type: aws`, settings under `aws:`).
    Aws(Box<crate::sources::aws::AwsConfig>),
    /// GCP projects (`type: gcp`, settings under `gcp:`).
    Gcp(Box<crate::sources::gcp::GcpConfig>),
    /// Azure subscriptions (`type: azure`, settings under `azure:`).
    Azure(Box<crate::sources::azure::AzureConfig>),
}

/// Settings of a `files` source.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesConfig {
    /// The directory to walk. Relative paths are resolved against the
    /// working directory when ingest opens.
    pub path: PathBuf,
    /// Globs, relative to `path`, of the files that are locations.
    pub patterns: Vec<String>,
    /// Watch the tree (inotify) and ship each change at once; full
    /// listings then run only every `rescan_interval_secs` (the schedule
    /// applies while the watch cannot be set up).
    pub watch: bool,
    /// Seconds between full listings while the tree is watched.
    pub rescan_interval_secs: u64,
    /// Read files that a symbolic link in the tree leads to outside the
    /// root. Off by default: such a link is an error on its location, so
    /// that a link to a system file placed in the tree is never read.
    pub follow_links_outside_root: bool,
}

/// Default seconds between full listings of a watched tree.
pub const DEFAULT_RESCAN_INTERVAL_SECS: u64 = 300;

/// Removals are held back when they are more than `max_share` of the known
/// locations AND at least `min_count`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovalGuard {
    #[serde(default = "default_max_share")]
    pub max_share: f64,
    #[serde(default = "default_min_count")]
    pub min_count: u32,
}

impl Default for RemovalGuard {
    fn default() -> Self {
        RemovalGuard {
            max_share: default_max_share(),
            min_count: default_min_count(),
        }
    }
}

impl RemovalGuard {
    /// Whether `removals` out of `known` locations must be held back.
    pub fn holds_back(&self, removals: usize, known: usize) -> bool {
        removals > 0
            && removals as f64 > self.max_share * known as f64
            && removals >= self.min_count as usize
    }
}

fn default_max_share() -> f64 {
    0.5
}
fn default_min_count() -> u32 {
    3
}
fn default_schedule() -> String {
    DEFAULT_SCHEDULE.to_string()
}
fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}
fn default_patterns() -> Vec<String> {
    DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect()
}

impl SourceConfig {
    /// A `github` source with every other setting at its default.
    pub fn github(id: impl Into<String>, cfg: crate::github::config::GithubConfig) -> Self {
        SourceConfig {
            id: id.into(),
            kind: SourceKind::Github(Box::new(cfg)),
            schedule: default_schedule(),
            max_file_bytes: default_max_file_bytes(),
            removal_guard: RemovalGuard::default(),
        }
    }

    /// An `aws` source with every other setting at its default.
    pub fn aws(id: impl Into<String>, cfg: crate::sources::aws::AwsConfig) -> Self {
        SourceConfig {
            id: id.into(),
            kind: SourceKind::Aws(Box::new(cfg)),
            schedule: DEFAULT_CLOUD_SCHEDULE.into(),
            max_file_bytes: default_max_file_bytes(),
            removal_guard: RemovalGuard::default(),
        }
    }

    /// A cloud source (`gcp` or `azure`) with every other setting at its
    /// default.
    pub fn cloud(id: impl Into<String>, kind: SourceKind) -> Self {
        SourceConfig {
            id: id.into(),
            kind,
            schedule: DEFAULT_CLOUD_SCHEDULE.into(),
            max_file_bytes: default_max_file_bytes(),
            removal_guard: RemovalGuard::default(),
        }
    }

    /// A `files` source with every other setting at its default.
    pub fn files(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        SourceConfig {
            id: id.into(),
            kind: SourceKind::Files(FilesConfig {
                path: path.into(),
                patterns: default_patterns(),
                watch: true,
                rescan_interval_secs: DEFAULT_RESCAN_INTERVAL_SECS,
                follow_links_outside_root: false,
            }),
            schedule: default_schedule(),
            max_file_bytes: default_max_file_bytes(),
            removal_guard: RemovalGuard::default(),
        }
    }

    /// The parsed schedule. Call [`IngestConfig::validate`] first for an
    /// error that names the field.
    pub fn cron(&self) -> Result<cron::Schedule, cron::error::Error> {
        cron::Schedule::from_str(&self.schedule)
    }
}

/// The flat shape of a source in the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSourceConfig {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patterns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rescan_interval_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    follow_links_outside_root: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<String>,
    #[serde(default = "default_max_file_bytes")]
    max_file_bytes: u64,
    #[serde(default)]
    removal_guard: RemovalGuard,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    github: Option<crate::github::config::GithubConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aws: Option<crate::sources::aws::AwsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gcp: Option<crate::sources::gcp::GcpConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    azure: Option<crate::sources::azure::AzureConfig>,
}

impl TryFrom<RawSourceConfig> for SourceConfig {
    type Error = String;

    fn try_from(raw: RawSourceConfig) -> Result<Self, String> {
        let blocks = [
            ("github", raw.github.is_some()),
            ("aws", raw.aws.is_some()),
            ("gcp", raw.gcp.is_some()),
            ("azure", raw.azure.is_some()),
            ("path", raw.path.is_some() && raw.kind != "files"),
        ];
        let known = ["files", "github", "aws", "gcp", "azure"].contains(&raw.kind.as_str());
        if let Some((block, _)) = blocks
            .iter()
            .filter(|_| known)
            .find(|(name, set)| *set && *name != raw.kind && *name != "path")
            .or_else(|| {
                blocks
                    .iter()
                    .filter(|_| known)
                    .find(|(name, set)| *set && *name == "path")
            })
        {
            return Err(format!(
                "source {:?}: `{block}` does not apply to a {} source",
                raw.id, raw.kind
            ));
        }
        let kind = match raw.kind.as_str() {
            "files" => SourceKind::Files(FilesConfig {
                path: raw
                    .path
                    .ok_or_else(|| format!("source {:?}: a files source needs `path`", raw.id))?,
                patterns: raw.patterns.unwrap_or_else(default_patterns),
                watch: raw.watch.unwrap_or(true),
                rescan_interval_secs: match raw.rescan_interval_secs {
                    Some(0) => {
                        return Err(format!(
                            "source {:?}: rescan_interval_secs must be greater than 0",
                            raw.id
                        ));
                    }
                    Some(n) => n,
                    None => DEFAULT_RESCAN_INTERVAL_SECS,
                },
                follow_links_outside_root: raw.follow_links_outside_root.unwrap_or(false),
            }),
            _ if raw.kind != "files"
                && (raw.watch.is_some()
                    || raw.rescan_interval_secs.is_some()
                    || raw.follow_links_outside_root.is_some()) =>
            {
                return Err(format!(
                    "source {:?}: watch, rescan_interval_secs and follow_links_outside_root apply to files sources only",
                    raw.id
                ));
            }
            "github" => SourceKind::Github(Box::new(raw.github.ok_or_else(|| {
                format!(
                    "source {:?}: a github source needs a `github:` block",
                    raw.id
                )
            })?)),
            "aws" => SourceKind::Aws(Box::new(raw.aws.ok_or_else(|| {
                format!("source {:?}: an aws source needs an `aws:` block", raw.id)
            })?)),
            "gcp" => SourceKind::Gcp(Box::new(raw.gcp.ok_or_else(|| {
                format!("source {:?}: a gcp source needs a `gcp:` block", raw.id)
            })?)),
            "azure" => SourceKind::Azure(Box::new(raw.azure.ok_or_else(|| {
                format!(
                    "source {:?}: an azure source needs an `azure:` block",
                    raw.id
                )
            })?)),
            other => {
                return Err(format!(
                    "source {:?}: unknown source type {other:?} (known: files, github, aws, gcp, azure)",
                    raw.id
                ));
            }
        };
        Ok(SourceConfig {
            id: raw.id,
            kind,
            schedule: raw.schedule.unwrap_or_else(|| match raw.kind.as_str() {
                // Every listing of a cloud costs calls against its quotas.
                "aws" | "gcp" | "azure" => DEFAULT_CLOUD_SCHEDULE.into(),
                _ => default_schedule(),
            }),
            max_file_bytes: raw.max_file_bytes,
            removal_guard: raw.removal_guard,
        })
    }
}

impl From<SourceConfig> for RawSourceConfig {
    fn from(c: SourceConfig) -> Self {
        let (aws, gcp, azure) = match &c.kind {
            SourceKind::Aws(a) => (Some((**a).clone()), None, None),
            SourceKind::Gcp(g) => (None, Some((**g).clone()), None),
            SourceKind::Azure(z) => (None, None, Some((**z).clone())),
            _ => (None, None, None),
        };
        let (kind, path, patterns, watch, github) = match c.kind {
            SourceKind::Files(f) => (
                "files".to_string(),
                Some(f.path),
                Some(f.patterns),
                Some((f.watch, f.rescan_interval_secs, f.follow_links_outside_root)),
                None,
            ),
            SourceKind::Github(g) => ("github".to_string(), None, None, None, Some(*g)),
            SourceKind::Aws(_) => ("aws".to_string(), None, None, None, None),
            SourceKind::Gcp(_) => ("gcp".to_string(), None, None, None, None),
            SourceKind::Azure(_) => ("azure".to_string(), None, None, None, None),
        };
        RawSourceConfig {
            id: c.id,
            kind,
            path,
            patterns,
            watch: watch.map(|w| w.0),
            rescan_interval_secs: watch.map(|w| w.1),
            follow_links_outside_root: watch.and_then(|w| w.2.then_some(true)),
            schedule: Some(c.schedule),
            max_file_bytes: c.max_file_bytes,
            removal_guard: c.removal_guard,
            github,
            aws,
            gcp,
            azure,
        }
    }
}

/// A configuration value that breaks a rule, with the path of its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// E.g. `ingest.sources[0].schedule`.
    pub field: String,
    pub message: String,
}

impl IngestConfig {
    /// Checks every rule serde cannot express; the first broken one is
    /// returned, naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut ids = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let err = |field: &str, message: String| ConfigError {
                field: format!("ingest.sources[{i}].{field}"),
                message,
            };
            if s.id.is_empty() {
                return Err(err("id", "must not be empty".into()));
            }
            if !s
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(err(
                    "id",
                    format!(
                        "{:?} may only hold ASCII letters, digits, '-', '_' and '.'",
                        s.id
                    ),
                ));
            }
            if s.id == crate::registered::SOURCE_ID {
                return Err(err(
                    "id",
                    format!(
                        "{:?} is the source of locations registered through the API",
                        s.id
                    ),
                ));
            }
            if !ids.insert(s.id.as_str()) {
                return Err(err("id", format!("{:?} is used by another source", s.id)));
            }
            if let Err(e) = s.cron() {
                return Err(err(
                    "schedule",
                    format!("invalid cron expression {:?}: {e}", s.schedule),
                ));
            }
            if s.max_file_bytes == 0 {
                return Err(err("max_file_bytes", "must be greater than 0".into()));
            }
            let g = &s.removal_guard;
            if !(g.max_share.is_finite() && (0.0..=1.0).contains(&g.max_share)) {
                return Err(err(
                    "removal_guard.max_share",
                    format!("must be between 0 and 1, is {}", g.max_share),
                ));
            }
            match &s.kind {
                SourceKind::Files(f) => {
                    if f.path.as_os_str().is_empty() {
                        return Err(err("path", "must not be empty".into()));
                    }
                    if f.patterns.is_empty() {
                        return Err(err("patterns", "must hold at least one glob".into()));
                    }
                    for (j, p) in f.patterns.iter().enumerate() {
                        if let Err(e) = crate::files::compile_glob(p) {
                            return Err(err(
                                &format!("patterns[{j}]"),
                                format!("invalid glob {p:?}: {e}"),
                            ));
                        }
                    }
                }
                SourceKind::Github(g) => {
                    if let Err((field, message)) = g.validate() {
                        return Err(err(&field, message));
                    }
                }
                SourceKind::Aws(a) => {
                    if let Err((field, message)) = a.validate() {
                        return Err(err(&format!("aws.{field}"), message));
                    }
                }
                SourceKind::Gcp(g) => {
                    if let Err((field, message)) = g.validate() {
                        return Err(err(&format!("gcp.{field}"), message));
                    }
                }
                SourceKind::Azure(z) => {
                    if let Err((field, message)) = z.validate() {
                        return Err(err(&format!("azure.{field}"), message));
                    }
                }
            }
        }
        for (i, id) in self.retired_sources.iter().enumerate() {
            if ids.contains(id.as_str()) {
                return Err(ConfigError {
                    field: format!("ingest.retired_sources[{i}]"),
                    message: format!(
                        "{id:?} is a configured source; take it out of `sources` to retire it"
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<IngestConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply() {
        let cfg = parse("sources:\n  - id: demo\n    type: files\n    path: ./cat\n").unwrap();
        let s = &cfg.sources[0];
        assert_eq!(s.schedule, "*/1 * * * * *");
        assert_eq!(s.max_file_bytes, 256 * 1024 * 1024);
        assert_eq!(s.removal_guard.max_share, 0.5);
        assert_eq!(s.removal_guard.min_count, 3);
        let SourceKind::Files(f) = &s.kind else {
            panic!()
        };
        assert_eq!(f.path, PathBuf::from("./cat"));
        assert_eq!(f.patterns, vec!["**/*.yaml", "**/*.yml"]);
        assert_eq!(s, &SourceConfig::files("demo", "./cat"));
        cfg.validate().unwrap();
    }

    #[test]
    fn explicit_values_are_kept() {
        let cfg = parse(
            "sources:\n  - id: a\n    type: files\n    path: /x\n    patterns: ['*.json']\n    \
             schedule: '0 */5 * * * *'\n    max_file_bytes: 10\n    \
             removal_guard: { max_share: 0.25, min_count: 7 }\n",
        )
        .unwrap();
        let s = &cfg.sources[0];
        assert_eq!(s.schedule, "0 */5 * * * *");
        assert_eq!(s.max_file_bytes, 10);
        assert_eq!(
            s.removal_guard,
            RemovalGuard {
                max_share: 0.25,
                min_count: 7
            }
        );
        let SourceKind::Files(f) = &s.kind else {
            panic!()
        };
        assert_eq!(f.patterns, vec!["*.json"]);
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = parse("sources:\n  - id: a\n    type: files\n    path: /x\n    shedule: x\n")
            .unwrap_err();
        assert!(e.contains("shedule"), "{e}");
        let e = parse("sources: []\nextra: 1\n").unwrap_err();
        assert!(e.contains("extra"), "{e}");
        let e = parse(
            "sources:\n  - id: a\n    type: files\n    path: /x\n    removal_guard: {max: 1}\n",
        )
        .unwrap_err();
        assert!(e.contains("max"), "{e}");
    }

    #[test]
    fn unknown_type_and_missing_path_are_rejected() {
        let e = parse("sources:\n  - id: a\n    type: ftp\n    path: /x\n").unwrap_err();
        assert!(e.contains("unknown source type \"ftp\""), "{e}");
        let e = parse("sources:\n  - id: a\n    type: files\n").unwrap_err();
        assert!(e.contains("needs `path`"), "{e}");
        let e = parse(
            "sources:\n  - id: a\n    type: files\n    path: /x\n    aws: {regions: [eu-west-1]}\n",
        )
        .unwrap_err();
        assert!(e.contains("`aws` does not apply to a files source"), "{e}");
        let e = parse(
            "sources:\n  - id: a\n    type: aws\n    path: /x\n    aws: {regions: [eu-west-1]}\n",
        )
        .unwrap_err();
        assert!(e.contains("`path` does not apply to a aws source"), "{e}");
    }

    #[test]
    fn round_trips_through_serde() {
        let cfg = IngestConfig {
            sources: vec![SourceConfig::files("demo", "/srv/catalog")],
            ..IngestConfig::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(r#""type":"files""#), "{json}");
        let back: IngestConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
    }

    fn with(f: impl FnOnce(&mut SourceConfig)) -> ConfigError {
        let mut s = SourceConfig::files("ok", "/x");
        f(&mut s);
        IngestConfig {
            sources: vec![SourceConfig::files("first", "/y"), s],
            ..IngestConfig::default()
        }
        .validate()
        .unwrap_err()
    }

    #[test]
    fn invalid_cron_names_the_field() {
        let e = with(|s| s.schedule = "every minute".into());
        assert_eq!(e.field, "ingest.sources[1].schedule");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "ingest.sources[1].schedule: invalid cron expression \"every minute\": "
            ),
            "{text}"
        );
        // Five fields (classic cron without seconds) is not accepted.
        let e = with(|s| s.schedule = "* * * * *".into());
        assert_eq!(e.field, "ingest.sources[1].schedule");
    }

    #[test]
    fn other_rules_name_their_fields() {
        assert_eq!(with(|s| s.id = String::new()).field, "ingest.sources[1].id");
        assert_eq!(with(|s| s.id = "a b".into()).field, "ingest.sources[1].id");
        let e = with(|s| s.id = "first".into());
        assert!(e.message.contains("another source"), "{e}");
        assert_eq!(
            with(|s| s.max_file_bytes = 0).field,
            "ingest.sources[1].max_file_bytes"
        );
        assert_eq!(
            with(|s| s.removal_guard.max_share = 1.5).field,
            "ingest.sources[1].removal_guard.max_share"
        );
        assert_eq!(
            with(|s| s.removal_guard.max_share = f64::NAN).field,
            "ingest.sources[1].removal_guard.max_share"
        );
        let e = with(|s| {
            let SourceKind::Files(f) = &mut s.kind else {
                panic!()
            };
            f.patterns = vec!["**/*.yaml".into(), "a[".into()];
        });
        assert_eq!(e.field, "ingest.sources[1].patterns[1]");
        let e = with(|s| {
            let SourceKind::Files(f) = &mut s.kind else {
                panic!()
            };
            f.patterns.clear();
        });
        assert_eq!(e.field, "ingest.sources[1].patterns");
    }

    #[test]
    fn guard_arithmetic() {
        let g = RemovalGuard::default(); // share 0.5, min 3
        assert!(!g.holds_back(0, 0));
        assert!(!g.holds_back(1, 1), "one of one is below min_count");
        assert!(!g.holds_back(2, 2), "below min_count");
        assert!(g.holds_back(3, 3));
        assert!(g.holds_back(3, 5), "3 > 2.5");
        assert!(!g.holds_back(3, 6), "3 is exactly half: not more than");
        assert!(g.holds_back(4, 6));
        assert!(!g.holds_back(1, 10));
        let strict = RemovalGuard {
            max_share: 0.0,
            min_count: 1,
        };
        assert!(strict.holds_back(1, 100));
        let off = RemovalGuard {
            max_share: 1.0,
            min_count: 0,
        };
        assert!(!off.holds_back(10, 10));
    }
}

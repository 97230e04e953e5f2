//! Scorecard definitions as a source: the YAML files of a directory (and
//! the built-in ones) published to `catalog.scorecards.v1` whenever any of
//! them changes.
//!
//! ```yaml
//! ingest:
//!   scorecards:
//!     dir: ./scorecards     # *.yaml / *.yml, not recursive
//!     builtin: true         # also publish production-readiness
//!     poll_secs: 2
//! ```
//!
//! Each message holds every file of the set, so a deleted file is simply
//! absent from the next one. Ingest does not judge the files: the projector
//! compiles them, reports a bad file with its errors and keeps the file's
//! previous good text in force. A directory that cannot be read publishes
//! nothing (what is in force stays).

use eventlog::EventLog;
use proto::{ScorecardChange, ScorecardEvent, SourceId, Versioned, topics};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The scorecards the catalog ships with: (file name, text).
pub const BUILTIN: [(&str, &str); 1] = [(
    "builtin/production-readiness.yaml",
    include_str!("../../scorecards/production-readiness.yaml"),
)];

/// Largest definition file published; larger ones are reported and skipped.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// The `ingest.scorecards` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorecardsConfig {
    /// Directory of definition files; `None`: the built-in ones only.
    pub dir: Option<PathBuf>,
    /// Publish the built-in definitions too.
    pub builtin: bool,
    /// How often the directory is read.
    pub poll_secs: u64,
    /// The definition set's name (one publisher per name).
    pub source: String,
}

impl Default for ScorecardsConfig {
    fn default() -> Self {
        ScorecardsConfig {
            dir: None,
            builtin: true,
            poll_secs: 2,
            source: "scorecards".into(),
        }
    }
}

/// Appends a scorecard event under its key and waits until it is written.
pub fn append(log: &dyn EventLog, event: &ScorecardEvent) -> Result<(), eventlog::LogError> {
    log.append(topics::SCORECARDS, event.key().as_bytes(), &event.encode())?;
    log.flush(Duration::from_secs(10))
}

/// Reads the definition files and publishes them when they change.
pub struct DefinitionPublisher {
    cfg: ScorecardsConfig,
    log: Arc<dyn EventLog>,
    last: Option<BTreeMap<String, String>>,
    published_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl DefinitionPublisher {
    pub fn new(cfg: ScorecardsConfig, log: Arc<dyn EventLog>) -> Self {
        DefinitionPublisher {
            cfg,
            log,
            last: None,
            published_at: None,
        }
    }

    /// The files as they are now, or why the directory cannot be read.
    pub fn read(&self) -> Result<BTreeMap<String, String>, String> {
        let mut files = BTreeMap::new();
        if self.cfg.builtin {
            for (name, text) in BUILTIN {
                files.insert(name.to_string(), text.to_string());
            }
        }
        let Some(dir) = &self.cfg.dir else {
            return Ok(files);
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("scorecards directory {}: {e}", dir.display()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| format!("scorecards directory {}: {e}", dir.display()))?;
            let path = entry.path();
            let is_yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if !is_yaml || !path.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if size > MAX_FILE_BYTES {
                tracing::error!(file = %path.display(), size, "scorecard definition larger than {MAX_FILE_BYTES} bytes; not published");
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    files.insert(name, text);
                }
                // One unreadable file must not drop its definition: the
                // whole set waits until it can be read.
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(files)
    }

    /// Publishes the set if it differs from the last one published.
    /// Returns whether it published.
    pub fn tick(&mut self) -> Result<bool, eventlog::LogError> {
        let files = match self.read() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot read scorecard definitions; what is in force stays");
                return Ok(false);
            }
        };
        if self.last.as_ref() == Some(&files) {
            return Ok(false);
        }
        let event = ScorecardEvent {
            event_id: uuid::Uuid::now_v7(),
            source: SourceId::new(self.cfg.source.clone()),
            at: chrono::Utc::now(),
            by: None,
            change: ScorecardChange::DefinitionsPublished {
                files: files.clone(),
            },
        };
        append(self.log.as_ref(), &event)?;
        tracing::info!(files = files.len(), "published scorecard definitions");
        self.last = Some(files);
        self.published_at = Some(event.at);
        Ok(true)
    }

    /// The definition set's name.
    pub fn source_id(&self) -> &str {
        &self.cfg.source
    }

    /// How often the directory is read.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.cfg.poll_secs.max(1))
    }

    /// What the status API shows of the publisher.
    pub fn details(&self) -> crate::source::SourceDetails {
        crate::source::SourceDetails::Scorecards(crate::source::ScorecardsDetails {
            dir: self.cfg.dir.clone(),
            files: self.last.as_ref().map_or(0, BTreeMap::len),
            published_at: self.published_at,
        })
    }
}

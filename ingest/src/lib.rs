//! The ingest stage: owns the configured sources, their schedules and their
//! per-source sync state, and turns what the sources hold into
//! [`proto::Observation`]s on [`proto::topics::OBSERVATIONS`].
//!
//! An observation goes out only when a location is new, changed or removed;
//! an unchanged re-poll costs a stat per file and ships nothing. Removals
//! come only from complete listings, and a removal guard holds back a
//! listing that suddenly lacks most of what was known.
//!
//! Ingest knows sources, the event log and its own small state store. It
//! does not know the RocksDB projections or the HTTP API: it parses YAML
//! only to follow `Location` targets, and leaves everything else about the
//! content to the processor.
//!
//! ```no_run
//! # use std::sync::{Arc, atomic::AtomicBool};
//! # fn demo(log: Arc<dyn eventlog::EventLog>) -> Result<(), ingest::IngestError> {
//! let cfg = ingest::IngestConfig {
//!     sources: vec![ingest::SourceConfig::files("demo", "./catalog")],
//!     ..Default::default()
//! };
//! let ingest = ingest::Ingest::open(cfg, log, std::path::Path::new("./state/ingest"))?;
//! let stop = Arc::new(AtomicBool::new(false));
//! ingest.run(stop)?; // until `stop` is set
//! # Ok(()) }
//! ```

pub mod config;
pub mod http;
pub mod metrics;
pub mod source;
pub mod sources;
pub mod state;
pub mod sync;
pub mod targets;
pub mod watch;

pub use sources::{files, github, registered, scorecards};

pub use config::{ConfigError, FilesConfig, IngestConfig, RemovalGuard, SourceConfig, SourceKind};
pub use files::FilesSource;
pub use registered::{LocationReader, LocationsConfig, Registry, TargetError};
pub use source::{Listing, Source, SourceError, SyncMode};
pub use state::{StateError, StateStore};
pub use sync::{HeldBack, SyncError, SyncReport, sync_source};

use chrono::Utc;
use eventlog::EventLog;
use proto::SourceId;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The longest the scheduler sleeps before looking at `stop` again.
pub const SLEEP_SLICE: Duration = Duration::from_millis(100);
/// How long the scheduler lets a burst of changes settle before a change
/// sync.
pub const CHANGE_DEBOUNCE: Duration = Duration::from_millis(50);

/// Why ingest could not start or a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no source {0:?} is configured")]
    UnknownSource(String),
    #[error("source {source_id}: {message}")]
    Setup { source_id: String, message: String },
    #[error("sync of source {source_id} failed: {error}")]
    Sync {
        source_id: SourceId,
        #[source]
        error: SyncError,
    },
}

struct SourceRuntime {
    id: String,
    kind: &'static str,
    /// `None` for the source of registered locations, which is not
    /// configured but made by [`Ingest::with_registered`].
    config: Option<SourceConfig>,
    removal_guard: RemovalGuard,
    schedule: cron::Schedule,
    source: Arc<dyn Source>,
    /// The same source when it is a GitHub one (webhooks go there).
    github: Option<Arc<github::GithubSource>>,
    /// One sync of a source at a time (scheduler and `sync_now` callers).
    lock: Mutex<()>,
}

/// The ingest stage.
pub struct Ingest {
    sources: Vec<SourceRuntime>,
    state: Arc<StateStore>,
    log: Arc<dyn EventLog>,
    trigger: Trigger,
    /// The last sync of each source, for the status API.
    last: Mutex<std::collections::HashMap<String, SyncReport>>,
    /// The locations registered through the API, when this ingest reads
    /// them ([`Ingest::with_registered`]).
    registry: Option<Arc<Registry>>,
    reader: Option<Arc<LocationReader>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("sources", &self.source_ids())
            .field("state", &self.state)
            .field("log", &self.log.describe())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ingest {
    /// Validates `cfg`, sets up its sources and opens the sync state under
    /// `state_dir`. A source's root need not exist yet.
    pub fn open(
        cfg: IngestConfig,
        log: Arc<dyn EventLog>,
        state_dir: &Path,
    ) -> Result<Self, IngestError> {
        cfg.validate()?;
        metrics::describe();
        let state = Arc::new(StateStore::open(state_dir)?);
        let mut sources = Vec::with_capacity(cfg.sources.len());
        for sc in cfg.sources {
            let setup = |message: String| IngestError::Setup {
                source_id: sc.id.clone(),
                message,
            };
            let schedule = sc.cron().map_err(|e| setup(e.to_string()))?;
            let (source, github): (Arc<dyn Source>, _) = match &sc.kind {
                SourceKind::Files(f) => {
                    let root = std::path::absolute(&f.path)
                        .map_err(|e| setup(format!("path {}: {e}", f.path.display())))?;
                    let mut files = FilesSource::new(
                        SourceId::new(&sc.id),
                        root,
                        &f.patterns,
                        sc.max_file_bytes,
                    )
                    .map_err(|e| setup(e.to_string()))?;
                    if f.watch {
                        files = files.with_watch(Duration::from_secs(f.rescan_interval_secs));
                    }
                    (Arc::new(files), None)
                }
                SourceKind::Github(g) => {
                    let gh = Arc::new(
                        github::GithubSource::new(
                            SourceId::new(&sc.id),
                            (**g).clone(),
                            sc.max_file_bytes,
                            state.clone(),
                        )
                        .map_err(|e| setup(e.to_string()))?,
                    );
                    (gh.clone(), Some(gh))
                }
            };
            sources.push(SourceRuntime {
                id: sc.id.clone(),
                kind: match sc.kind {
                    SourceKind::Files(_) => "files",
                    SourceKind::Github(_) => "github",
                },
                removal_guard: sc.removal_guard,
                config: Some(sc),
                schedule,
                source,
                github,
                lock: Mutex::new(()),
            });
        }
        Ok(Ingest {
            sources,
            state,
            log,
            trigger: Trigger::default(),
            last: Mutex::new(std::collections::HashMap::new()),
            registry: None,
            reader: None,
        })
    }

    /// Adds the source of locations registered through the API: [`Ingest::run`]
    /// then follows `catalog.locations.v1` and observes what is registered
    /// (files under `config.allow_file_roots`, GitHub URLs through the
    /// GitHub sources configured here).
    pub fn with_registered(mut self, config: LocationsConfig) -> Self {
        let github = self
            .sources
            .iter()
            .filter_map(|rt| rt.github.clone())
            .collect();
        let max_file_bytes = self
            .sources
            .iter()
            .filter_map(|rt| rt.config.as_ref().map(|c| c.max_file_bytes))
            .max()
            .unwrap_or(config::DEFAULT_MAX_FILE_BYTES);
        let reader = Arc::new(LocationReader::new(config, github, max_file_bytes));
        let registry = Arc::new(Registry::default());
        let source = Arc::new(registered::RegisteredSource::new(
            registry.clone(),
            reader.clone(),
        ));
        self.sources.push(SourceRuntime {
            id: registered::SOURCE_ID.into(),
            kind: "registered",
            config: None,
            removal_guard: RemovalGuard::default(),
            schedule: registered::SCHEDULE
                .parse()
                .expect("a valid cron expression"),
            source,
            github: None,
            lock: Mutex::new(()),
        });
        self.registry = Some(registry);
        self.reader = Some(reader);
        self
    }

    /// What reads registered locations (for a dry run through the API).
    pub fn location_reader(&self) -> Option<Arc<LocationReader>> {
        self.reader.clone()
    }

    /// The ids of the configured sources, in configuration order.
    pub fn source_ids(&self) -> Vec<&str> {
        self.sources.iter().map(|s| s.id.as_str()).collect()
    }

    /// The configuration of each source.
    pub fn sources(&self) -> impl Iterator<Item = &SourceConfig> {
        self.sources.iter().filter_map(|s| s.config.as_ref())
    }

    /// Syncs one source (`Some(id)`) or all of them now, on this thread.
    /// Every selected source is attempted; the first failure is returned.
    pub fn sync_now(&self, source_id: Option<&str>) -> Result<Vec<SyncReport>, IngestError> {
        let selected: Vec<&SourceRuntime> = match source_id {
            Some(id) => vec![
                self.sources
                    .iter()
                    .find(|s| s.id == id)
                    .ok_or_else(|| IngestError::UnknownSource(id.to_string()))?,
            ],
            None => self.sources.iter().collect(),
        };
        let mut reports = Vec::with_capacity(selected.len());
        let mut first_error = None;
        for rt in selected {
            match self.sync_one(rt, SyncMode::Full) {
                Ok(r) => reports.push(r),
                Err(e) => {
                    tracing::error!(source = %rt.id, error = %e, "sync failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reports),
        }
    }

    fn sync_one(&self, rt: &SourceRuntime, mode: SyncMode) -> Result<SyncReport, IngestError> {
        self.sync_forced(rt, mode, &std::collections::BTreeSet::new())
    }

    fn sync_forced(
        &self,
        rt: &SourceRuntime,
        mode: SyncMode,
        force: &std::collections::BTreeSet<proto::LocationKey>,
    ) -> Result<SyncReport, IngestError> {
        let _one_at_a_time = lock(&rt.lock);
        let r = sync::sync_source_forced(
            rt.source.as_ref(),
            &self.state,
            self.log.as_ref(),
            &rt.removal_guard,
            Utc::now(),
            mode,
            force,
        )
        .map_err(|error| {
            metrics::record_error(rt.source.id());
            IngestError::Sync {
                source_id: rt.source.id().clone(),
                error,
            }
        })?;
        lock(&self.last).insert(rt.id.clone(), r.clone());
        Ok(r)
    }

    /// Syncs, now and on this thread, what webhooks queued for `source_id`
    /// (or for every source).
    pub fn sync_pending(&self, source_id: Option<&str>) -> Result<Vec<SyncReport>, IngestError> {
        let mut out = Vec::new();
        for rt in &self.sources {
            if source_id.is_some_and(|id| id != rt.id) || !rt.source.has_pending() {
                continue;
            }
            out.push(self.sync_one(rt, SyncMode::Pending)?);
        }
        Ok(out)
    }

    /// The GitHub sources, for the webhook receiver.
    pub fn github_sources(&self) -> Vec<(&str, &Arc<github::GithubSource>)> {
        self.sources
            .iter()
            .filter_map(|rt| rt.github.as_ref().map(|g| (rt.id.as_str(), g)))
            .collect()
    }

    /// What each source did last, and what it holds back.
    pub fn status(&self) -> Vec<SourceStatus> {
        let last = lock(&self.last);
        self.sources
            .iter()
            .map(|rt| SourceStatus {
                id: rt.id.clone(),
                kind: rt.kind,
                last_sync: last.get(&rt.id).cloned(),
                details: rt.source.status(),
            })
            .collect()
    }

    /// A handle that makes [`Ingest::run`] sync every source at once.
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone()
    }

    /// The scheduler loop, on the calling thread, until `stop` is set: syncs
    /// every source once at start, then whenever its cron schedule fires or
    /// a [`Trigger`] asks. A failed sync is logged and counted; the loop
    /// goes on. Fire times missed while a sync ran are skipped, not queued.
    pub fn run(&self, stop: Arc<AtomicBool>) -> Result<(), IngestError> {
        let start = Utc::now();
        // Per source: when the last full listing ran (None: never), and the
        // next cron fire time after it.
        let mut last_full: Vec<Option<chrono::DateTime<Utc>>> = vec![None; self.sources.len()];
        let mut next: Vec<Option<chrono::DateTime<Utc>>> = vec![Some(start); self.sources.len()];
        for rt in &self.sources {
            rt.source.bind_stop(stop.clone());
            let trigger = self.trigger.clone();
            rt.source.bind_waker(Arc::new(move || trigger.poke()));
        }
        tracing::info!(sources = ?self.source_ids(), log = %self.log.describe(), "ingest running");
        let follower = self.registry.clone().map(|registry| {
            let log = self.log.clone();
            let stop = stop.clone();
            let trigger = self.trigger.clone();
            std::thread::Builder::new()
                .name("registrations".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match registry.follow(log.as_ref(), &stop, &|| trigger.poke()) {
                            Ok(()) => break,
                            Err(e) => {
                                // The registry keeps what it folded; reading
                                // again from the start folds it again to the
                                // same set.
                                tracing::error!(error = %e, "reading catalog.locations.v1 failed; retrying");
                                std::thread::sleep(Duration::from_secs(1));
                            }
                        }
                    }
                })
                .expect("a thread can be spawned")
        });
        while !stop.load(Ordering::SeqCst) {
            let (triggered, poked) = self.trigger.take();
            // Refreshes asked through the API: every source that knows the
            // location (and only those: a GitHub listing costs requests)
            // reads it again and ships it even if unchanged.
            let force = self
                .registry
                .as_ref()
                .map(|r| r.take_refresh())
                .unwrap_or_default();
            if !force.is_empty() {
                for rt in &self.sources {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let knows = self
                        .state
                        .load(rt.source.id())
                        .is_ok_and(|known| force.iter().any(|k| known.contains_key(k)));
                    if !knows {
                        continue;
                    }
                    match self.sync_forced(rt, SyncMode::Full, &force) {
                        Ok(r) => log_report(&r),
                        Err(e) => tracing::error!(source = %rt.id, error = %e, "refresh failed"),
                    }
                }
            }
            if poked {
                // A burst of changes (an editor's save, a checkout) is
                // shipped as one sync, and a file is not read half written.
                std::thread::sleep(CHANGE_DEBOUNCE);
                for rt in &self.sources {
                    if stop.load(Ordering::SeqCst) || !rt.source.has_pending() {
                        continue;
                    }
                    match self.sync_one(rt, SyncMode::Pending) {
                        Ok(r) => log_report(&r),
                        Err(e) => {
                            tracing::error!(source = %rt.id, error = %e, "change sync failed")
                        }
                    }
                }
            }
            let now = Utc::now();
            // A source that hears of changes by itself (a watched tree)
            // lists fully only now and then; otherwise on its schedule.
            let due_at = |rt: &SourceRuntime,
                          last: Option<chrono::DateTime<Utc>>,
                          cron: Option<chrono::DateTime<Utc>>| {
                match (rt.source.full_listing_every(), last) {
                    (Some(every), Some(last)) => chrono::Duration::from_std(every)
                        .ok()
                        .and_then(|d| last.checked_add_signed(d)),
                    _ => cron,
                }
            };
            for (i, rt) in self.sources.iter().enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let due = due_at(rt, last_full[i], next[i]).is_some_and(|t| t <= now);
                if !(triggered || due) {
                    continue;
                }
                match self.sync_one(rt, SyncMode::Full) {
                    Ok(r) => log_report(&r),
                    Err(e) => tracing::error!(source = %rt.id, error = %e, "sync failed"),
                }
                last_full[i] = Some(Utc::now());
                next[i] = rt.schedule.after(&Utc::now()).next();
            }
            let now = Utc::now();
            let wait = (0..self.sources.len())
                .filter_map(|i| due_at(&self.sources[i], last_full[i], next[i]))
                .min()
                .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(SLEEP_SLICE)
                .min(SLEEP_SLICE);
            if !wait.is_zero() {
                self.trigger.wait(wait);
            }
        }
        if let Some(f) = follower {
            let _ = f.join();
        }
        tracing::info!("ingest stopped");
        Ok(())
    }
}

fn log_report(r: &SyncReport) {
    if r.emitted() > 0 || r.held_back.is_some() {
        tracing::info!(
            source = %r.source,
            listed = r.listed,
            complete = r.complete,
            new = r.emitted_new,
            changed = r.emitted_changed,
            removed = r.emitted_removed,
            unchanged = r.unchanged,
            held_back = ?r.held_back,
            duration_ms = r.duration.as_millis() as u64,
            "sync shipped observations"
        );
    } else {
        tracing::debug!(
            source = %r.source,
            listed = r.listed,
            complete = r.complete,
            unchanged = r.unchanged,
            duration_ms = r.duration.as_millis() as u64,
            "sync: nothing changed"
        );
    }
}

/// A source's state for the status API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    pub id: String,
    pub kind: &'static str,
    /// The last sync, with what it held back (`held_back`).
    pub last_sync: Option<SyncReport>,
    /// Source-specific details (a GitHub source's rate limit).
    pub details: serde_json::Value,
}

/// Wakes [`Ingest::run`] to sync every source now. Cheap to clone; usable
/// from any thread (an API handler, a signal handler thread).
#[derive(Clone, Default)]
pub struct Trigger {
    inner: Arc<TriggerInner>,
}

#[derive(Default)]
struct TriggerInner {
    /// (sync everything, sync what webhooks queued)
    pending: Mutex<(bool, bool)>,
    wake: Condvar,
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("pending", &*lock(&self.inner.pending))
            .finish()
    }
}

impl Trigger {
    /// Asks the scheduler to sync every source as soon as it can. Requests
    /// made before the scheduler gets to them are merged into one.
    pub fn sync_now(&self) {
        lock(&self.inner.pending).0 = true;
        self.inner.wake.notify_all();
    }

    /// Asks the scheduler to sync what webhooks queued, as soon as it can.
    pub fn poke(&self) {
        lock(&self.inner.pending).1 = true;
        self.inner.wake.notify_all();
    }

    /// Takes pending requests: (full, queued).
    fn take(&self) -> (bool, bool) {
        std::mem::take(&mut *lock(&self.inner.pending))
    }

    /// Sleeps up to `timeout`, less if a request arrives.
    fn wait(&self, timeout: Duration) {
        let pending = lock(&self.inner.pending);
        if !(pending.0 || pending.1) {
            let _ = self
                .inner
                .wake
                .wait_timeout_while(pending, timeout, |p| !(p.0 || p.1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn trigger_wakes_a_waiter_and_is_taken_once() {
        let t = Trigger::default();
        assert_eq!(t.take(), (false, false));
        let waiter = {
            let t = t.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                t.wait(Duration::from_secs(10));
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        t.sync_now();
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(5), "woken early: {waited:?}");
        assert_eq!(t.take(), (true, false));
        assert_eq!(t.take(), (false, false));
        t.poke();
        assert_eq!(t.take(), (false, true));
    }

    #[test]
    fn wait_times_out_without_a_request() {
        let t = Trigger::default();
        let started = Instant::now();
        t.wait(Duration::from_millis(30));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn open_rejects_invalid_config_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SourceConfig::files("a", dir.path());
        s.schedule = "nope".into();
        let log: Arc<dyn EventLog> =
            Arc::new(eventlog::memory::MemoryLog::new(&proto::topics::ALL, 1));
        let err = Ingest::open(
            IngestConfig {
                sources: vec![s],
                ..IngestConfig::default()
            },
            log,
            &dir.path().join("state"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("ingest.sources[0].schedule"),
            "{err}"
        );
    }
}

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
    /// `None` for the sources that are not configured: registered
    /// locations ([`Ingest::with_registered`]) and retired sources.
    config: Option<SourceConfig>,
    removal_guard: RemovalGuard,
    schedule: cron::Schedule,
    schedule_text: String,
    source: Arc<dyn Source>,
    /// The same source when it is a GitHub one (webhooks go there).
    github: Option<Arc<github::GithubSource>>,
    /// The same source when it is a retired one (its thread ends when
    /// nothing of it is left).
    retired: Option<Arc<sources::retired::RetiredSource>>,
    /// One sync of a source at a time (its thread and `sync_now` callers).
    lock: Mutex<()>,
    /// What wakes the source's thread.
    signal: Arc<Signal>,
    health: Mutex<Health>,
}

/// What a source's syncs did, for the status API.
#[derive(Debug, Default, Clone)]
struct Health {
    last_sync: Option<SyncReport>,
    last_error: Option<SyncFailure>,
    syncs: u64,
    failures: u64,
    next_sync_at: Option<chrono::DateTime<Utc>>,
}

/// A failed sync.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncFailure {
    pub at: chrono::DateTime<Utc>,
    pub message: String,
}

/// The scorecard definition publisher, run beside the sources.
struct PublisherRuntime {
    publisher: Mutex<scorecards::DefinitionPublisher>,
    signal: Arc<Signal>,
    health: Mutex<Health>,
}

/// The ingest stage.
pub struct Ingest {
    sources: Vec<SourceRuntime>,
    publisher: Option<PublisherRuntime>,
    state: Arc<StateStore>,
    log: Arc<dyn EventLog>,
    /// Wakes the thread that hands refreshes out to the sources.
    dispatch: Arc<Signal>,
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
    /// `state_dir`. A source's root need not exist yet. Sources found in
    /// the state but no longer configured are retired: a sync removes what
    /// they yielded, under the removal guard unless `cfg.retired_sources`
    /// confirms it.
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
                    files = files.following_links_outside_root(f.follow_links_outside_root);
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
                #[cfg(feature = "clouds")]
                SourceKind::Aws(a) => (
                    Arc::new(
                        sources::aws::AwsSource::new(SourceId::new(&sc.id), (**a).clone())
                            .map_err(setup)?,
                    ),
                    None,
                ),
                #[cfg(feature = "clouds")]
                SourceKind::Gcp(g) => (
                    Arc::new(
                        sources::gcp::GcpSource::new(SourceId::new(&sc.id), (**g).clone())
                            .map_err(setup)?,
                    ),
                    None,
                ),
                #[cfg(feature = "clouds")]
                SourceKind::Azure(z) => (
                    Arc::new(
                        sources::azure::AzureSource::new(SourceId::new(&sc.id), (**z).clone())
                            .map_err(setup)?,
                    ),
                    None,
                ),
                #[cfg(not(feature = "clouds"))]
                SourceKind::Aws(_) | SourceKind::Gcp(_) | SourceKind::Azure(_) => {
                    return Err(setup(
                        "this build has no cloud sources (the ingest crate's `clouds` feature)"
                            .into(),
                    ));
                }
            };
            sources.push(SourceRuntime {
                id: sc.id.clone(),
                kind: match sc.kind {
                    SourceKind::Files(_) => "files",
                    SourceKind::Github(_) => "github",
                    SourceKind::Aws(_) => "aws",
                    SourceKind::Gcp(_) => "gcp",
                    SourceKind::Azure(_) => "azure",
                },
                removal_guard: sc.removal_guard,
                schedule_text: sc.schedule.clone(),
                config: Some(sc),
                schedule,
                source,
                github,
                retired: None,
                lock: Mutex::new(()),
                signal: Arc::default(),
                health: Mutex::default(),
            });
        }
        for id in state.source_ids()? {
            let configured = sources.iter().any(|rt| rt.id == id.as_str());
            if configured || id.as_str() == registered::SOURCE_ID {
                continue;
            }
            let confirmed = cfg.retired_sources.iter().any(|r| r == id.as_str());
            tracing::warn!(source = %id, confirmed, "source no longer configured: removing what it yielded");
            let retired = Arc::new(sources::retired::RetiredSource::new(
                id.clone(),
                confirmed,
                state.clone(),
            ));
            sources.push(SourceRuntime {
                id: id.to_string(),
                kind: "retired",
                config: None,
                // Confirmed: nothing is held back.
                removal_guard: if confirmed {
                    RemovalGuard {
                        max_share: 1.0,
                        min_count: u32::MAX,
                    }
                } else {
                    RemovalGuard::default()
                },
                schedule: sources::retired::SCHEDULE
                    .parse()
                    .expect("a valid cron expression"),
                schedule_text: sources::retired::SCHEDULE.into(),
                source: retired.clone(),
                github: None,
                retired: Some(retired),
                lock: Mutex::new(()),
                signal: Arc::default(),
                health: Mutex::default(),
            });
        }
        let publisher = PublisherRuntime {
            publisher: Mutex::new(scorecards::DefinitionPublisher::new(
                cfg.scorecards,
                log.clone(),
            )),
            signal: Arc::default(),
            health: Mutex::default(),
        };
        Ok(Ingest {
            sources,
            publisher: Some(publisher),
            state,
            log,
            dispatch: Arc::default(),
            registry: None,
            reader: None,
        })
    }

    /// Leaves the scorecard definitions to another publisher: [`Ingest::run`]
    /// runs the sources only.
    pub fn without_scorecards(mut self) -> Self {
        self.publisher = None;
        self
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
            schedule_text: registered::SCHEDULE.into(),
            source,
            github: None,
            retired: None,
            lock: Mutex::new(()),
            signal: Arc::default(),
            health: Mutex::default(),
        });
        self.registry = Some(registry);
        self.reader = Some(reader);
        self
    }

    /// What reads registered locations (for a dry run through the API).
    pub fn location_reader(&self) -> Option<Arc<LocationReader>> {
        self.reader.clone()
    }

    /// The ids of the sources (configured ones in configuration order,
    /// then retired ones, then registered locations).
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
        );
        let mut health = lock(&rt.health);
        health.syncs += 1;
        match r {
            Ok(r) => {
                health.last_sync = Some(r.clone());
                Ok(r)
            }
            Err(error) => {
                metrics::record_error(rt.source.id());
                health.failures += 1;
                health.last_error = Some(SyncFailure {
                    at: Utc::now(),
                    message: error.to_string(),
                });
                Err(IngestError::Sync {
                    source_id: rt.source.id().clone(),
                    error,
                })
            }
        }
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

    /// What each source did last, what it holds back, and what went wrong.
    pub fn status(&self) -> Vec<SourceStatus> {
        let mut out: Vec<SourceStatus> = self
            .sources
            .iter()
            .map(|rt| {
                let h = lock(&rt.health).clone();
                SourceStatus {
                    id: rt.id.clone(),
                    kind: rt.kind,
                    schedule: rt.schedule_text.clone(),
                    last_sync: h.last_sync,
                    last_error: h.last_error,
                    syncs: h.syncs,
                    failures: h.failures,
                    next_sync_at: h.next_sync_at,
                    details: rt.source.details(),
                }
            })
            .collect();
        if let Some(p) = &self.publisher {
            let h = lock(&p.health).clone();
            let publisher = lock(&p.publisher);
            out.push(SourceStatus {
                id: publisher.source_id().to_string(),
                kind: "scorecards",
                schedule: format!("every {} s", publisher.poll_interval().as_secs()),
                last_sync: None,
                last_error: h.last_error,
                syncs: h.syncs,
                failures: h.failures,
                next_sync_at: h.next_sync_at,
                details: publisher.details(),
            });
        }
        out
    }

    /// A handle that wakes every source's thread (to sync everything, or
    /// to look at what webhooks queued).
    pub fn trigger(&self) -> Trigger {
        let mut signals: Vec<Arc<Signal>> =
            self.sources.iter().map(|rt| rt.signal.clone()).collect();
        signals.extend(self.publisher.iter().map(|p| p.signal.clone()));
        signals.push(self.dispatch.clone());
        Trigger {
            signals: signals.into(),
        }
    }

    /// Runs every source on a thread of its own until `stop` is set: each
    /// syncs once at start, then whenever its cron schedule fires, a
    /// [`Trigger`] asks, or it hears of changes (webhooks, a watched tree).
    /// One source's wait (a rate limit's reset, a slow listing) never
    /// delays another's sync. A failed sync is logged and counted; the
    /// source goes on. Fire times missed while a sync ran are skipped, not
    /// queued. This thread follows registrations and hands refreshes asked
    /// through the API to the sources that know the location.
    pub fn run(&self, stop: Arc<AtomicBool>) -> Result<(), IngestError> {
        for rt in &self.sources {
            rt.source.bind_stop(stop.clone());
            let signal = rt.signal.clone();
            rt.source.bind_waker(Arc::new(move || signal.changes()));
        }
        tracing::info!(sources = ?self.source_ids(), log = %self.log.describe(), "ingest running");
        std::thread::scope(|scope| {
            for rt in &self.sources {
                std::thread::Builder::new()
                    .name(format!("source-{}", rt.id))
                    .spawn_scoped(scope, || {
                        self.supervise(&rt.id, &rt.health, &stop, || self.source_loop(rt, &stop))
                    })
                    .expect("a thread can be spawned");
            }
            if let Some(p) = &self.publisher {
                std::thread::Builder::new()
                    .name("source-scorecards".into())
                    .spawn_scoped(scope, || {
                        self.supervise("scorecards", &p.health, &stop, || publisher_loop(p, &stop))
                    })
                    .expect("a thread can be spawned");
            }
            if let Some(registry) = &self.registry {
                let trigger = self.trigger();
                let stop = &stop;
                std::thread::Builder::new()
                    .name("registrations".into())
                    .spawn_scoped(scope, move || {
                        while !stop.load(Ordering::SeqCst) {
                            match registry.follow(self.log.as_ref(), stop, &|| trigger.poke()) {
                                Ok(()) => break,
                                Err(e) => {
                                    // The registry keeps what it folded;
                                    // reading again from the start folds
                                    // it again to the same set.
                                    tracing::error!(error = %e, "reading catalog.locations.v1 failed; retrying");
                                    std::thread::sleep(Duration::from_secs(1));
                                }
                            }
                        }
                    })
                    .expect("a thread can be spawned");
            }
            self.dispatch_refreshes(&stop);
        });
        tracing::info!("ingest stopped");
        Ok(())
    }

    /// Runs `body` (a source's loop) until it returns; a panic is logged,
    /// counted as a failure, and the loop starts again a little later,
    /// while the other sources go on.
    fn supervise(&self, id: &str, health: &Mutex<Health>, stop: &AtomicBool, body: impl Fn()) {
        while !stop.load(Ordering::SeqCst) {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&body)) {
                Ok(()) => return,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panicked".into());
                    tracing::error!(source = id, panic = %message, "source thread panicked; restarting it in 5 s");
                    let mut h = lock(health);
                    h.failures += 1;
                    h.last_error = Some(SyncFailure {
                        at: Utc::now(),
                        message: format!("panicked: {message}"),
                    });
                    drop(h);
                    sleep_unless_stopped(Duration::from_secs(5), stop);
                }
            }
        }
    }

    /// Hands refreshes asked through the API to every source that knows the
    /// location (and only those: a GitHub listing costs requests).
    fn dispatch_refreshes(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let force = self
                .registry
                .as_ref()
                .map(|r| r.take_refresh())
                .unwrap_or_default();
            if !force.is_empty() {
                for rt in &self.sources {
                    let knows = self
                        .state
                        .load(rt.source.id())
                        .is_ok_and(|known| force.iter().any(|k| known.contains_key(k)));
                    if knows {
                        rt.signal.force(&force);
                    }
                }
            }
            self.dispatch.wait(SLEEP_SLICE);
            self.dispatch.take();
        }
    }

    /// One source's schedule, on its own thread.
    fn source_loop(&self, rt: &SourceRuntime, stop: &AtomicBool) {
        // When the last full listing ran (None: never), and the next cron
        // fire time after it.
        let mut last_full: Option<chrono::DateTime<Utc>> = None;
        let mut next: Option<chrono::DateTime<Utc>> = Some(Utc::now());
        // A source that hears of changes by itself (a watched tree) lists
        // fully only now and then; otherwise on its schedule.
        let due_at =
            |last: Option<chrono::DateTime<Utc>>, cron: Option<chrono::DateTime<Utc>>| match (
                rt.source.full_listing_every(),
                last,
            ) {
                (Some(every), Some(last)) => chrono::Duration::from_std(every)
                    .ok()
                    .and_then(|d| last.checked_add_signed(d)),
                _ => cron,
            };
        while !stop.load(Ordering::SeqCst) {
            let wake = rt.signal.take();
            // Refreshes: the source reads the locations again and ships
            // them even if unchanged.
            if !wake.force.is_empty() {
                match self.sync_forced(rt, SyncMode::Full, &wake.force) {
                    Ok(r) => log_report(&r),
                    Err(e) => tracing::error!(source = %rt.id, error = %e, "refresh failed"),
                }
            }
            if wake.changes && rt.source.has_pending() && !stop.load(Ordering::SeqCst) {
                // A burst of changes (an editor's save, a checkout) is
                // shipped as one sync, and a file is not read half written.
                std::thread::sleep(CHANGE_DEBOUNCE);
                match self.sync_one(rt, SyncMode::Pending) {
                    Ok(r) => log_report(&r),
                    Err(e) => tracing::error!(source = %rt.id, error = %e, "change sync failed"),
                }
            }
            let due = due_at(last_full, next).is_some_and(|t| t <= Utc::now());
            if (wake.full || due) && !stop.load(Ordering::SeqCst) {
                match self.sync_one(rt, SyncMode::Full) {
                    Ok(r) => log_report(&r),
                    Err(e) => tracing::error!(source = %rt.id, error = %e, "sync failed"),
                }
                last_full = Some(Utc::now());
                next = rt.schedule.after(&Utc::now()).next();
                if rt.retired.as_ref().is_some_and(|r| r.is_gone()) {
                    tracing::info!(source = %rt.id, "retired source removed");
                    lock(&rt.health).next_sync_at = None;
                    return;
                }
            }
            let due = due_at(last_full, next);
            lock(&rt.health).next_sync_at = due;
            let wait = due
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(SLEEP_SLICE)
                .min(SLEEP_SLICE);
            if !wait.is_zero() {
                rt.signal.wait(wait);
            }
        }
    }
}

/// The scorecard definition publisher's schedule, on its own thread.
fn publisher_loop(p: &PublisherRuntime, stop: &AtomicBool) {
    let every = lock(&p.publisher).poll_interval();
    while !stop.load(Ordering::SeqCst) {
        p.signal.take();
        let r = lock(&p.publisher).tick();
        let mut h = lock(&p.health);
        h.syncs += 1;
        if let Err(e) = r {
            tracing::error!(error = %e, "publishing scorecard definitions failed");
            h.failures += 1;
            h.last_error = Some(SyncFailure {
                at: Utc::now(),
                message: e.to_string(),
            });
        }
        let next = Utc::now() + every;
        h.next_sync_at = Some(next);
        drop(h);
        while !stop.load(Ordering::SeqCst) && Utc::now() < next {
            let left = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if p.signal.wait_for_full(left.min(SLEEP_SLICE)) {
                break;
            }
        }
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
        std::thread::sleep(SLEEP_SLICE);
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
    /// `files`, `github`, `registered`, `scorecards`, or `retired` (no
    /// longer configured; what it yielded is being removed).
    pub kind: &'static str,
    /// The cron expression (or interval) of its full syncs.
    pub schedule: String,
    /// The last sync that ran through, with what it held back
    /// (`held_back`, `facts_held_back`).
    pub last_sync: Option<SyncReport>,
    /// The last sync that failed, and why.
    pub last_error: Option<SyncFailure>,
    /// Syncs attempted and failed since start.
    pub syncs: u64,
    pub failures: u64,
    /// When the next full sync is due.
    pub next_sync_at: Option<chrono::DateTime<Utc>>,
    /// What the source reports beyond its syncs (quota, what it covers).
    pub details: source::SourceDetails,
}

/// What wakes one source's thread, and why.
#[derive(Default)]
struct Signal {
    wake: Mutex<Wake>,
    cv: Condvar,
}

/// Why a source's thread was woken.
#[derive(Debug, Default)]
struct Wake {
    /// Sync everything now.
    full: bool,
    /// Look at what the source heard of (webhooks, a watched tree).
    changes: bool,
    /// Read these locations again and ship them even if unchanged.
    force: std::collections::BTreeSet<proto::LocationKey>,
}

impl Wake {
    fn is_empty(&self) -> bool {
        !self.full && !self.changes && self.force.is_empty()
    }
}

impl Signal {
    fn full(&self) {
        lock(&self.wake).full = true;
        self.cv.notify_all();
    }

    fn changes(&self) {
        lock(&self.wake).changes = true;
        self.cv.notify_all();
    }

    fn force(&self, keys: &std::collections::BTreeSet<proto::LocationKey>) {
        lock(&self.wake).force.extend(keys.iter().cloned());
        self.cv.notify_all();
    }

    /// Takes what is pending.
    fn take(&self) -> Wake {
        std::mem::take(&mut *lock(&self.wake))
    }

    /// Sleeps up to `timeout`, less if something arrives (left in place
    /// for [`Signal::take`]).
    fn wait(&self, timeout: Duration) {
        let pending = lock(&self.wake);
        if pending.is_empty() {
            drop(
                self.cv
                    .wait_timeout_while(pending, timeout, |w| w.is_empty())
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
    }

    /// Sleeps up to `timeout`, less if a full sync is asked; says whether
    /// one was (left in place for [`Signal::take`]). What else is pending
    /// (changes heard of, refreshes of locations) is dropped: a waiter
    /// that has no use for them would otherwise be woken at once, again
    /// and again, until its own time came (the scorecard publisher spun a
    /// core that way after every webhook or registration).
    fn wait_for_full(&self, timeout: Duration) -> bool {
        let mut pending = lock(&self.wake);
        pending.changes = false;
        pending.force.clear();
        if pending.full {
            return true;
        }
        let (pending, _) = self
            .cv
            .wait_timeout_while(pending, timeout, |w| !w.full)
            .unwrap_or_else(|e| e.into_inner());
        pending.full
    }
}

/// Wakes the sources' threads from anywhere (an API handler, a signal
/// handler thread, the webhook receiver). Cheap to clone.
#[derive(Clone)]
pub struct Trigger {
    signals: Arc<[Arc<Signal>]>,
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("sources", &self.signals.len())
            .finish()
    }
}

impl Trigger {
    /// Asks every source to sync everything as soon as it can. Requests
    /// made before a source gets to them are merged into one.
    pub fn sync_now(&self) {
        for s in self.signals.iter() {
            s.full();
        }
    }

    /// Asks every source to sync what it heard of (webhooks queued), as
    /// soon as it can.
    pub fn poke(&self) {
        for s in self.signals.iter() {
            s.changes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_signal_wakes_a_waiter_and_is_taken_once() {
        let s = Arc::new(Signal::default());
        assert!(s.take().is_empty());
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                s.wait(Duration::from_secs(10));
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let t = Trigger {
            signals: vec![s.clone()].into(),
        };
        t.sync_now();
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(5), "woken early: {waited:?}");
        let w = s.take();
        assert!(w.full && !w.changes);
        assert!(s.take().is_empty());
        t.poke();
        let w = s.take();
        assert!(!w.full && w.changes);
        let keys: std::collections::BTreeSet<_> = [proto::LocationKey::new("file:/a")].into();
        s.force(&keys);
        s.force(&[proto::LocationKey::new("file:/b")].into());
        assert_eq!(s.take().force.len(), 2);
    }

    #[test]
    fn a_waiter_for_full_syncs_drops_other_wakes_and_sleeps() {
        let s = Arc::new(Signal::default());
        let t = Trigger {
            signals: vec![s.clone()].into(),
        };
        t.poke();
        s.force(&[proto::LocationKey::new("file:/a")].into());
        // Woken for changes it has no use for, it drops them and sleeps
        // its time instead of returning at once (and being called again).
        let started = Instant::now();
        assert!(!s.wait_for_full(Duration::from_millis(30)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(s.take().is_empty());
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait_for_full(Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        t.poke();
        t.sync_now();
        assert!(waiter.join().unwrap());
        assert!(s.take().full);
        t.sync_now();
        assert!(s.wait_for_full(Duration::from_secs(10)));
    }

    #[test]
    fn wait_times_out_without_a_request() {
        let s = Signal::default();
        let started = Instant::now();
        s.wait(Duration::from_millis(30));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(s.take().is_empty());
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

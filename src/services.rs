//! Each service as a function `run_*(config, shutdown)`, and `dev`, which
//! runs all of them in one process. Only `main` installs signal handlers;
//! tests call these directly and shut them down through [`Shutdown`].
//!
//! Shutdown order: stop polling sources, let the processor and projector
//! finish their batch (flush, commit, write offsets), then stop HTTP.

use crate::config::{Backend, Config};
use anyhow::{Context, anyhow, bail};
use eventlog::EventLog;
use eventlog::embedded::EmbeddedLog;
use eventlog::kafka::KafkaLog;
use metrics_exporter_prometheus::PrometheusHandle;
use projector::{Catalog, RocksStore, Status, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// Asks every part of a service to stop.
#[derive(Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(watch::channel(false).0),
        }
    }
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}

pub fn log_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("log")
}
pub fn store_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("projections")
}
pub fn ingest_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("ingest")
}

/// How long topic creation and checks may take at start.
const TOPICS_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to the configured Kafka cluster (with the topic prefix).
pub fn kafka_log(cfg: &Config) -> anyhow::Result<KafkaLog> {
    let brokers = cfg.log.brokers.as_deref().unwrap_or_default();
    let extra: Vec<(String, String)> = cfg
        .log
        .kafka
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(KafkaLog::connect(brokers, &extra)?.with_topic_prefix(&cfg.log.topic_prefix))
}

/// Opens the configured event log. For Kafka, creates the missing topics
/// and checks the existing ones: a setting that would lose data stops the
/// service with an error naming the topic and the setting.
pub fn open_log(cfg: &Config) -> anyhow::Result<Arc<dyn EventLog>> {
    match cfg.log.backend {
        Backend::Embedded => {
            let dir = log_dir(cfg);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let log = EmbeddedLog::open(&dir, &proto::topics::ALL, cfg.log.partitions)?;
            Ok(Arc::new(log))
        }
        Backend::Kafka => {
            let log = kafka_log(cfg)?;
            let report = log.apply_topics(
                &proto::topics::SPECS,
                &cfg.log.topic_requirements(),
                TOPICS_TIMEOUT,
            )?;
            for note in &report.notes {
                tracing::info!(note = %note, "kafka topics");
            }
            if !report.created.is_empty() {
                tracing::info!(topics = ?report.created, "kafka: created topics");
            }
            if !report.problems.is_empty() {
                bail!(
                    "kafka topics would lose data, refusing to start: {} (fix the topics, or \
                     see `catalog topics --check`)",
                    report.problems_text()
                );
            }
            Ok(Arc::new(log))
        }
    }
}

/// `catalog topics --check|--apply`: prints what each topic is and fails
/// when one is missing (check) or would lose data.
pub fn run_topics(cfg: &Config, apply: bool) -> anyhow::Result<()> {
    require_kafka(cfg, "topics")?;
    cfg.validate()?;
    let log = kafka_log(cfg)?;
    let req = cfg.log.topic_requirements();
    let report = if apply {
        log.apply_topics(&proto::topics::SPECS, &req, TOPICS_TIMEOUT)?
    } else {
        log.check_topics(&proto::topics::SPECS, &req, TOPICS_TIMEOUT)?
    };
    for name in &report.created {
        println!("created  {name}");
    }
    for name in &report.ok {
        println!("ok       {name}");
    }
    for name in &report.missing {
        println!("missing  {name}");
    }
    for problem in &report.problems {
        println!("PROBLEM  {problem}");
    }
    for note in &report.notes {
        println!("note     {note}");
    }
    if !report.problems.is_empty() {
        bail!(
            "{} topic setting(s) would lose data: {}",
            report.problems.len(),
            report.problems_text()
        );
    }
    if !report.missing.is_empty() {
        bail!(
            "{} topic(s) missing: {} (create them with `catalog topics --apply`)",
            report.missing.len(),
            report.missing.join(", ")
        );
    }
    Ok(())
}

/// `catalog checksum`: the projections' checksum, read through a
/// temporary RocksDB secondary so that a running projector is not disturbed.
pub fn store_checksum(
    cfg: &Config,
    include_path: bool,
) -> anyhow::Result<projector::checksum::StoreChecksum> {
    let (store, _scratch) = read_beside(cfg)?;
    Ok(projector::checksum::checksum(&store, include_path)?)
}

/// The projections opened as a temporary RocksDB secondary, caught up, so
/// that a running projector is undisturbed; the scratch directory lives as
/// long as the store is used.
fn read_beside(cfg: &Config) -> anyhow::Result<(RocksStore, tempfile::TempDir)> {
    let primary = store_dir(cfg);
    if !primary.join("CURRENT").exists() {
        bail!("no projections under {}", primary.display());
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let store = RocksStore::open_secondary(&primary, scratch.path(), 64 << 20)
        .with_context(|| format!("cannot open {}", primary.display()))?;
    store.catch_up()?;
    Ok((store, scratch))
}

/// `catalog export`: writes `what` of the projections (as of `as_of`, in
/// milliseconds since the epoch, when given) to `out`, read through a
/// temporary RocksDB secondary so that it works while the catalog runs.
/// Returns the rows written.
pub fn export_store(
    cfg: &Config,
    what: projector::export::What,
    format: projector::export::Format,
    as_of: Option<i64>,
    out: &std::path::Path,
) -> anyhow::Result<u64> {
    let (store, _scratch) = read_beside(cfg)?;
    let mut catalog = projector::Catalog::new(Arc::new(store));
    if let Some(t) = as_of {
        catalog = catalog.as_of(t)?;
    }
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let rows = projector::export::export(&catalog, what, format, &mut w)?;
    std::io::Write::flush(&mut w).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(rows)
}

fn require_kafka(cfg: &Config, service: &str) -> anyhow::Result<()> {
    if cfg.log.backend != Backend::Kafka {
        bail!(
            "`catalog {service}` runs as its own process and talks to Kafka: give --brokers \
             (the embedded log serves one process only; use `catalog dev` for that)"
        );
    }
    Ok(())
}

fn open_store(cfg: &Config) -> anyhow::Result<Arc<RocksStore>> {
    let dir = store_dir(cfg);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(Arc::new(RocksStore::open(
        &dir,
        cfg.projector.cache_mb << 20,
    )?))
}

/// A stage thread that reports its end.
struct Stage {
    name: &'static str,
    handle: JoinHandle<anyhow::Result<()>>,
}

fn spawn_stage(
    name: &'static str,
    shutdown: &Shutdown,
    f: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> Stage {
    let sd = shutdown.clone();
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let result = f();
            if let Err(e) = &result {
                tracing::error!(stage = name, error = %format!("{e:#}"), "stage failed; shutting down");
                sd.trigger();
            }
            result
        })
        .expect("spawn stage thread");
    Stage { name, handle }
}

async fn join_stages(stages: Vec<Stage>) -> anyhow::Result<()> {
    let mut first_err = None;
    for s in stages {
        let name = s.name;
        let res = tokio::task::spawn_blocking(move || s.handle.join())
            .await
            .map_err(|e| anyhow!("{name}: {e}"))?;
        match res {
            Ok(Ok(())) => tracing::info!(stage = name, "stopped"),
            Ok(Err(e)) => first_err = first_err.or(Some(e.context(name))),
            Err(_) => first_err = first_err.or(Some(anyhow!("{name} panicked"))),
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn open_ingest(cfg: &Config, log: Arc<dyn EventLog>) -> anyhow::Result<Arc<ingest::Ingest>> {
    let dir = ingest_dir(cfg);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ingest = ingest::Ingest::open(cfg.ingest.clone(), log, &dir)?;
    Ok(Arc::new(if cfg.locations.observe {
        ingest.with_registered(cfg.locations.clone())
    } else {
        ingest
    }))
}

/// Registration checks and reads for the API, through ingest's reader (the
/// one ingest uses, with its GitHub clients, where ingest runs here).
struct LocationAccess(Arc<ingest::LocationReader>);

impl query::LocationAccess for LocationAccess {
    fn key_of(&self, kind: &str, target: &str) -> Result<proto::LocationKey, String> {
        self.0
            .config()
            .key_of(kind, target)
            .map_err(|e| e.to_string())
    }

    fn read(
        &self,
        key: &proto::LocationKey,
    ) -> Vec<(
        proto::LocationKey,
        proto::LocationKey,
        proto::ObservedContent,
    )> {
        use ingest::source::Fetched;
        use proto::ObservedContent;
        let listing = self
            .0
            .list(std::slice::from_ref(key), &ingest::source::Known::new());
        listing
            .locations
            .into_iter()
            .map(|l| {
                let content = match l.fetched {
                    Fetched::Present { content, .. } => ObservedContent::Present { content },
                    Fetched::TooLarge { size, limit } => ObservedContent::TooLarge { size, limit },
                    Fetched::Unreadable { reason } => ObservedContent::Unreadable { reason },
                    Fetched::Unchanged => ObservedContent::Unreadable {
                        reason: "not read".into(),
                    },
                };
                (l.location, l.origin, content)
            })
            .collect()
    }
}

/// The API's location access: ingest's reader where ingest runs in this
/// process, else one of its own (files only; GitHub URLs are read by the
/// ingest service).
fn location_access(
    cfg: &Config,
    ingest: Option<&ingest::Ingest>,
) -> Arc<dyn query::LocationAccess> {
    let reader = ingest
        .and_then(ingest::Ingest::location_reader)
        .unwrap_or_else(|| {
            Arc::new(ingest::LocationReader::new(
                cfg.locations.clone(),
                Vec::new(),
                ingest::config::DEFAULT_MAX_FILE_BYTES,
            ))
        });
    Arc::new(LocationAccess(reader))
}

/// Appends the API's events (registrations, refreshes, deletions) to the
/// log, flushed before the request is answered.
fn log_writer(log: Arc<dyn EventLog>) -> query::LogWriter {
    Arc::new(move |topic: &str, key: &[u8], value: &[u8]| {
        log.append(topic, key, value)
            .and_then(|()| log.flush(Duration::from_secs(10)))
            .map_err(|e| e.to_string())
    })
}

fn ingest_stage(ingest: Arc<ingest::Ingest>, shutdown: &Shutdown) -> Stage {
    let stop = shutdown.flag();
    spawn_stage("ingest", shutdown, move || {
        ingest.run(stop)?;
        Ok(())
    })
}

/// Appends exemptions (and other scorecard events) to the log.
fn scorecard_writer(log: Arc<dyn EventLog>) -> query::scorecards::ScorecardWriter {
    Arc::new(move |event: &proto::ScorecardEvent| {
        ingest::scorecards::append(log.as_ref(), event).map_err(|e| e.to_string())
    })
}

/// Reads a token's secret from `file` or the variable `env` names; `at`
/// names the setting in errors.
fn read_secret(at: &str, file: Option<&Path>, env: Option<&str>) -> anyhow::Result<String> {
    let secret = match (file, env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("{at}: cannot read {}", path.display()))?,
        (None, Some(var)) => {
            std::env::var(var).with_context(|| format!("{at}: ${var} is not set"))?
        }
        (None, None) => bail!("{at}: no token_file or token_env"),
    };
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        bail!("{at}: the token is empty");
    }
    Ok(secret)
}

/// Who may call the API, from `auth` (and the legacy
/// `serve.write_token_*`). With `dev` and neither configured, a token with
/// every scope is made, printed, and written to `DATA_DIR/dev-token`, so a
/// newcomer can try every route.
fn api_auth(cfg: &Config, dev: bool) -> anyhow::Result<Arc<query::Auth>> {
    use query::{Auth, Scope};
    let section = cfg.auth.clone().unwrap_or_default();
    let mut auth = Auth::new(section.read == crate::config::ReadAccess::Open);
    for (i, t) in section.tokens.iter().enumerate() {
        let at = format!("auth.tokens[{i}]");
        let secret = read_secret(&at, t.token_file.as_deref(), t.token_env.as_deref())?;
        let scopes = t
            .scopes
            .iter()
            .map(|s| Scope::parse(s).map_err(|e| anyhow::anyhow!("{at}.scopes: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        auth = auth.with_token(&t.name, &secret, &scopes);
    }
    let legacy = cfg.serve.write_token_file.is_some() || cfg.serve.write_token_env.is_some();
    if legacy {
        let secret = read_secret(
            "serve.write_token_file/serve.write_token_env",
            cfg.serve.write_token_file.as_deref(),
            cfg.serve.write_token_env.as_deref(),
        )?;
        auth = auth.with_token(
            "write-token",
            &secret,
            &[Scope::CatalogWrite, Scope::ScorecardsWrite],
        );
    }
    if let Some(o) = &section.oidc {
        let mut oidc = query::auth::Oidc::new(&o.issuer, o.audience.to_vec(), &o.scopes_claim)
            .with_refresh(Duration::from_secs(o.jwks_refresh_secs.max(1)));
        if let Some(uri) = &o.jwks_uri {
            oidc = oidc.with_jwks_uri(uri);
        }
        for (value, scopes) in &o.scope_map {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(|e| anyhow::anyhow!("auth.oidc.scope_map: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            oidc = oidc.with_mapping(value, scopes);
        }
        auth = auth.with_oidc(oidc);
    }
    if let Some(r) = &section.rate_limit {
        let nz =
            |v: u32| std::num::NonZeroU32::new(v).context("auth.rate_limit: must be at least 1");
        auth = auth.with_rate_limit(nz(r.per_second)?, nz(r.burst)?);
    }
    if dev && cfg.auth.is_none() && !legacy {
        let token = query::auth::random_token().map_err(|e| anyhow::anyhow!(e))?;
        let path = cfg.data_dir.join("dev-token");
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
        write_private(&path, &token)?;
        println!(
            "catalog dev: API token with every scope (also in {}):\n  {token}",
            path.display()
        );
        auth = auth.with_token("dev", &token, &[Scope::Admin]);
    }
    Ok(Arc::new(auth))
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Request limits from `serve`.
fn limits(cfg: &Config) -> query::Limits {
    query::Limits {
        max_body_bytes: cfg.serve.max_body_bytes,
        request_timeout: Duration::from_secs(cfg.serve.request_timeout_secs),
    }
}

fn processor_stage(cfg: &Config, log: Arc<dyn EventLog>, shutdown: &Shutdown) -> Stage {
    let pcfg = cfg.processor.clone();
    let stop = shutdown.flag();
    spawn_stage("processor", shutdown, move || {
        processor::run(log, &pcfg, stop)?;
        Ok(())
    })
}

fn projector_stage(
    cfg: &Config,
    log: Arc<dyn EventLog>,
    store: Arc<dyn Store>,
    status: Arc<Status>,
    shutdown: &Shutdown,
) -> Stage {
    let pcfg = cfg.projector.clone();
    let stop = shutdown.flag();
    spawn_stage("projector", shutdown, move || {
        projector::run(log, store, &pcfg, status, stop)?;
        Ok(())
    })
}

/// Where a running service listens (for tests that bind port 0).
pub type Listening = tokio::sync::oneshot::Sender<std::net::SocketAddr>;

/// A running HTTP server and the switch that stops it.
struct Http {
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: Shutdown,
}

/// Binds `serve.listen`, reports the bound address to `listening`, serves.
async fn http(
    cfg: &Config,
    state: query::AppState,
    extra: Option<axum::Router>,
    listening: Option<Listening>,
) -> anyhow::Result<Http> {
    let listener = tokio::net::TcpListener::bind(cfg.serve.listen)
        .await
        .with_context(|| format!("serve.listen: cannot listen on {}", cfg.serve.listen))?;
    let addr = listener.local_addr()?;
    let stop = Shutdown::new();
    let sd = stop.clone();
    let catalog = state.catalog.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = catalog.warm() {
            tracing::warn!(error = %e, "cannot order the entities by name ahead of use");
        }
    });
    let server = tokio::spawn(query::serve_with(listener, state, extra, async move {
        sd.wait().await
    }));
    tracing::info!(%addr, "serving the catalog API");
    if query::ui_built() {
        tracing::info!(url = %format!("http://{addr}/"), "serving the web UI");
    } else {
        tracing::warn!("this build has no web UI (scripts/ui builds it)");
    }
    if let Some(tx) = listening {
        let _ = tx.send(addr);
    }
    Ok(Http { server, stop })
}

/// Waits for shutdown, lets the stages finish their batch, then stops HTTP.
async fn until_shutdown(
    shutdown: &Shutdown,
    stages: Vec<Stage>,
    http: Option<Http>,
) -> anyhow::Result<()> {
    shutdown.wait().await;
    let result = join_stages(stages).await;
    if let Some(http) = http {
        http.stop.trigger();
        http.server.await??;
    }
    result
}

/// `catalog dev`: every stage in one process, on the embedded log by default.
pub async fn run_dev(
    cfg: Config,
    metrics: Option<PrometheusHandle>,
    shutdown: Shutdown,
    listening: Option<Listening>,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let log = open_log(&cfg)?;
    let store = open_store(&cfg)?;
    let status = Arc::new(Status::default());
    let lag_status = status.clone();
    let ingest = open_ingest(&cfg, log.clone())?;
    let state = query::AppState {
        catalog: Catalog::new(store.clone()),
        lag: Arc::new(move || lag_status.lag_or_reason()),
        metrics,
        log_writer: Some(log_writer(log.clone())),
        location_access: Some(location_access(&cfg, Some(&ingest))),
        scorecard_writer: Some(scorecard_writer(log.clone())),
        auth: api_auth(&cfg, true)?,
        limits: limits(&cfg),
    };
    let webhooks = ingest::http::router(ingest.clone());
    let http = http(&cfg, state, Some(webhooks), listening).await?;
    let stages = vec![
        ingest_stage(ingest, &shutdown),
        processor_stage(&cfg, log.clone(), &shutdown),
        projector_stage(&cfg, log, store, status, &shutdown),
    ];
    until_shutdown(&shutdown, stages, Some(http)).await
}

/// `catalog ingest`: sources -> observations.
pub async fn run_ingest(
    cfg: Config,
    metrics: Option<PrometheusHandle>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    cfg.validate()?;
    require_kafka(&cfg, "ingest")?;
    let log = open_log(&cfg)?;
    let ingest = open_ingest(&cfg, log.clone())?;
    let http = match cfg.ingest.listen {
        Some(addr) => Some(ingest_http(addr, ingest.clone(), metrics).await?),
        None => None,
    };
    let stages = vec![ingest_stage(ingest, &shutdown)];
    until_shutdown(&shutdown, stages, http).await
}

/// Ingest's own listener: webhooks, source status, `/livez`, `/metrics`.
async fn ingest_http(
    addr: std::net::SocketAddr,
    ingest: Arc<ingest::Ingest>,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<Http> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("ingest.listen: cannot listen on {addr}"))?;
    let app = ingest::http::router(ingest)
        .route("/livez", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = metrics.clone();
                async move { m.map(|m| m.render()).unwrap_or_default() }
            }),
        );
    let stop = Shutdown::new();
    let sd = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { sd.wait().await })
            .await
    });
    tracing::info!(%addr, "serving ingest's webhooks and status");
    Ok(Http { server, stop })
}

/// `catalog process`: observations -> entity events.
pub async fn run_process(
    cfg: Config,
    metrics: Option<PrometheusHandle>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    cfg.validate()?;
    require_kafka(&cfg, "process")?;
    let log = open_log(&cfg)?;
    let http = metrics_http(&cfg, metrics).await?;
    let stages = vec![processor_stage(&cfg, log, &shutdown)];
    until_shutdown(&shutdown, stages, http).await
}

/// `/metrics` and `/livez` on `telemetry.metrics_listen`, for the services
/// without an API of their own (`process`, `project`): the consumer lag
/// gauges and stage metrics that autoscalers and alerts read.
async fn metrics_http(
    cfg: &Config,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<Option<Http>> {
    let Some(addr) = cfg.telemetry.metrics_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("telemetry.metrics_listen: cannot listen on {addr}"))?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let text = metrics.as_ref().map(PrometheusHandle::render);
                async move {
                    match text {
                        Some(t) => (axum::http::StatusCode::OK, t),
                        None => (
                            axum::http::StatusCode::NOT_FOUND,
                            "no metrics recorder\n".to_owned(),
                        ),
                    }
                }
            }),
        )
        .route("/livez", axum::routing::get(|| async { "ok\n" }));
    let stop = Shutdown::new();
    let sd = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { sd.wait().await })
            .await
    });
    tracing::info!(%addr, "serving /metrics");
    Ok(Some(Http { server, stop }))
}

/// `catalog project`: entity events -> the RocksDB store it owns.
pub async fn run_project(
    cfg: Config,
    metrics: Option<PrometheusHandle>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    cfg.validate()?;
    require_kafka(&cfg, "project")?;
    let log = open_log(&cfg)?;
    let store = open_store(&cfg)?;
    let http = metrics_http(&cfg, metrics).await?;
    let status = Arc::new(Status::default());
    let stages = vec![projector_stage(&cfg, log, store, status, &shutdown)];
    until_shutdown(&shutdown, stages, http).await
}

/// `catalog serve`: the API, over the projector's store opened as a RocksDB
/// secondary (following the primary), or with its own projector.
pub async fn run_serve(
    cfg: Config,
    with_projector: bool,
    metrics: Option<PrometheusHandle>,
    shutdown: Shutdown,
    listening: Option<Listening>,
) -> anyhow::Result<()> {
    cfg.validate()?;
    require_kafka(&cfg, "serve")?;
    let log = open_log(&cfg)?;
    let status = Arc::new(Status::default());
    let lag_status = status.clone();
    let lag = Arc::new(move || lag_status.lag_or_reason());
    if with_projector {
        let store = open_store(&cfg)?;
        let state = query::AppState {
            catalog: Catalog::new(store.clone()),
            lag,
            metrics,
            log_writer: Some(log_writer(log.clone())),
            location_access: Some(location_access(&cfg, None)),
            scorecard_writer: Some(scorecard_writer(log.clone())),
            auth: api_auth(&cfg, false)?,
            limits: limits(&cfg),
        };
        let http = http(&cfg, state, None, listening).await?;
        let stages = vec![projector_stage(&cfg, log, store, status, &shutdown)];
        return until_shutdown(&shutdown, stages, Some(http)).await;
    }
    let primary = store_dir(&cfg);
    let secondary = secondary_dir(&cfg.data_dir);
    let store = open_secondary(&primary, &secondary, cfg.projector.cache_mb << 20).await?;
    let catalog = Catalog::new(store.clone());
    let follow = {
        let (catalog, log, sd) = (catalog.clone(), log.clone(), shutdown.clone());
        spawn_stage("follower", &shutdown, move || {
            while !sd.is_triggered() {
                catalog.store().catch_up()?;
                for ((topic, p), next) in catalog.offsets()? {
                    if topic == proto::topics::ENTITIES {
                        status.set_applied(p, next);
                    }
                }
                // The broker away is no reason to stop answering: the
                // projections serve as of what was applied, and /readyz
                // says why the lag is unknown.
                match log.end_offsets(proto::topics::ENTITIES) {
                    Ok(ends) => status.set_ends(ends),
                    Err(e) => {
                        status.set_unknown(format!("cannot read the entity log's end offsets: {e}"))
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        })
    };
    let state = query::AppState {
        catalog,
        lag,
        metrics,
        log_writer: Some(log_writer(log.clone())),
        location_access: Some(location_access(&cfg, None)),
        scorecard_writer: Some(scorecard_writer(log.clone())),
        auth: api_auth(&cfg, false)?,
        limits: limits(&cfg),
    };
    let http = http(&cfg, state, None, listening).await?;
    let result = until_shutdown(&shutdown, vec![follow], Some(http)).await;
    let _ = std::fs::remove_dir_all(&secondary);
    result
}

fn secondary_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("secondary-{}", std::process::id()))
}

/// Waits for the projector to create its store, then opens a secondary.
async fn open_secondary(
    primary: &Path,
    secondary: &Path,
    cache: usize,
) -> anyhow::Result<Arc<RocksStore>> {
    let mut waited = Duration::ZERO;
    loop {
        if primary.join("CURRENT").exists() {
            std::fs::create_dir_all(secondary)?;
            return Ok(Arc::new(RocksStore::open_secondary(
                primary, secondary, cache,
            )?));
        }
        if waited >= Duration::from_secs(60) {
            bail!(
                "no projector store at {} after 60 s: start `catalog project` with the same --data-dir",
                primary.display()
            );
        }
        if waited.is_zero() {
            tracing::info!(path = %primary.display(), "waiting for the projector to create its store");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
}

//! `catalog`: parse the command line, load the configuration, install
//! telemetry and signal handlers, and call the service's `run`.

use anyhow::Context;
use catalog::config::{Config, LogFormat};
use catalog::services::{self, Shutdown};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

// The fold and the processor allocate many small strings and maps;
// mimalloc's thread-local free lists make that markedly cheaper than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "catalog", version, about = "An event-sourced software catalog")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct Common {
    /// Configuration file (YAML). `CATALOG_*` variables override it; flags override both.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers; selects the Kafka log.
    #[arg(long, global = true)]
    brokers: Option<String>,
    /// Directory for the embedded log, ingest state and projections.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: ingest DIR (default: the demo org), serve the API.
    Dev {
        dir: Option<PathBuf>,
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        common: Common,
    },
    /// Poll sources and publish observations.
    Ingest {
        /// A directory of descriptor files to ingest (in addition to configured sources).
        dir: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Turn observations into entity events.
    Process {
        #[command(flatten)]
        common: Common,
    },
    /// Fold entity events into the RocksDB projections.
    Project {
        #[command(flatten)]
        common: Common,
    },
    /// Serve the API from the projections (as a RocksDB secondary, or with its own projector).
    Serve {
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[arg(long)]
        with_projector: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Topics as code: check the Kafka topics against the configuration
    /// (partitions, replication, retention, min.insync.replicas), or create
    /// the missing ones. Exits non-zero when a topic is missing (--check) or
    /// would lose data.
    Topics {
        /// Only report; change nothing (the default).
        #[arg(long, conflicts_with = "apply")]
        check: bool,
        /// Create the missing topics, then check every topic.
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Print a checksum of the projections under --data-dir (JSON: sha256,
    /// keys): equal on every replica that consumed the same log. Works
    /// while the projector runs (reads as a RocksDB secondary).
    Checksum {
        /// Also hash the tables that record the path state took (the
        /// scorecard result history), which may differ between replicas.
        #[arg(long)]
        include_path: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Write the catalog (entities, relations) or its history to a file for
    /// a warehouse. Works while the catalog runs (reads as a RocksDB
    /// secondary). Prints the rows written.
    Export {
        /// entities, relations or history.
        #[arg(long)]
        what: String,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// The catalog as it stood at this RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

fn load(common: &Common) -> anyhow::Result<Config> {
    let mut cfg = Config::load(
        common.config.as_deref(),
        std::env::vars().filter(|(k, _)| k.starts_with("CATALOG_")),
    )?;
    if let Some(b) = &common.brokers {
        cfg.set_brokers(b);
    }
    if let Some(d) = &common.data_dir {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

fn add_dir_source(cfg: &mut Config, dir: PathBuf) {
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("files", dir));
}

fn telemetry(format: LogFormat) -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    catalog::prometheus_builder().install_recorder().ok()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    catalog::memory::return_freed_memory(catalog::memory::TRIM_EVERY);
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = Shutdown::new();
        let on_signal = shutdown.clone();
        // The services stop in order on a signal.
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
            on_signal.trigger();
        });
        match cli.command {
            Command::Dev {
                dir,
                listen,
                common,
            } => {
                let mut cfg = load(&common)?;
                let metrics = telemetry(cfg.telemetry.log_format);
                if let Some(l) = listen {
                    cfg.serve.listen = l;
                }
                if dir.is_some() || cfg.ingest.sources.is_empty() {
                    add_dir_source(&mut cfg, dir.unwrap_or_else(catalog::demo_org_dir));
                }
                services::run_dev(cfg, metrics, shutdown, None).await
            }
            Command::Ingest { dir, common } => {
                let mut cfg = load(&common)?;
                let metrics = telemetry(cfg.telemetry.log_format);
                if let Some(d) = dir {
                    add_dir_source(&mut cfg, d);
                }
                services::run_ingest(cfg, metrics, shutdown).await
            }
            Command::Process { common } => {
                let cfg = load(&common)?;
                let metrics = telemetry(cfg.telemetry.log_format);
                services::run_process(cfg, metrics, shutdown).await
            }
            Command::Project { common } => {
                let cfg = load(&common)?;
                let metrics = telemetry(cfg.telemetry.log_format);
                services::run_project(cfg, metrics, shutdown).await
            }
            Command::Serve {
                listen,
                with_projector,
                common,
            } => {
                let mut cfg = load(&common)?;
                let metrics = telemetry(cfg.telemetry.log_format);
                if let Some(l) = listen {
                    cfg.serve.listen = l;
                }
                services::run_serve(cfg, with_projector, metrics, shutdown, None).await
            }
            Command::Topics {
                check: _,
                apply,
                common,
            } => {
                let cfg = load(&common)?;
                telemetry(cfg.telemetry.log_format);
                services::run_topics(&cfg, apply)
            }
            Command::Checksum {
                include_path,
                common,
            } => {
                let cfg = load(&common)?;
                let sum = services::store_checksum(&cfg, include_path)?;
                println!("{}", serde_json::to_string(&sum)?);
                Ok(())
            }
            Command::Export {
                what,
                format,
                as_of,
                out,
                common,
            } => {
                use projector::export::{Format, What};
                let what = What::parse(&what).ok_or_else(|| {
                    anyhow::anyhow!("--what: '{what}' is not entities, relations or history")
                })?;
                let format = Format::parse(&format).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--format: '{format}' is not jsonl or csv (parquet is not available yet)"
                    )
                })?;
                let as_of = as_of
                    .map(|t| {
                        chrono::DateTime::parse_from_rfc3339(&t)
                            .map(|t| t.timestamp_millis())
                            .map_err(|e| {
                                anyhow::anyhow!("--as-of: '{t}' is not an RFC 3339 time: {e}")
                            })
                    })
                    .transpose()?;
                let cfg = load(&common)?;
                let rows = services::export_store(&cfg, what, format, as_of, &out)?;
                println!("{}", serde_json::json!({"rows": rows, "out": out}));
                Ok(())
            }
        }
    })
}

//! `catalog-bench`: the benchmark, apart from the production binary (its
//! load generators, the simulated GitHub and the AWS emulator's client stay
//! out of `catalog`). It generates an org of N entities as descriptor
//! files, runs the whole pipeline in this process (embedded log, or Kafka
//! with `--brokers`), and measures through the HTTP API: ingest throughput
//! (first observation to all queryable), edit-to-visible latency, query
//! latencies, memory and disk. A measurement, not a test: it asserts
//! nothing. The other shapes are its modules: `realistic`, `history`,
//! `scorecards`, `kafka` (the pipeline as separate `catalog` processes),
//! `github`, `aws`, `auth`.

pub mod auth;
pub mod aws;
pub mod github;
pub mod history;
pub mod kafka;
pub mod realistic;
pub mod scorecards;

use anyhow::{Context, bail};
use catalog::config::Config;
use catalog::services::{self, Shutdown};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Entities to generate.
    #[arg(long, default_value_t = 10_000)]
    pub entities: usize,
    /// Entities per descriptor file (multi-document YAML).
    #[arg(long, default_value_t = 10)]
    pub per_file: usize,
    /// Requests per latency measurement.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Edits for the edit-to-visible measurement.
    #[arg(long, default_value_t = 10)]
    pub edits: usize,
    /// Run on Kafka at these brokers instead of the embedded log.
    #[arg(long)]
    pub brokers: Option<String>,
    /// With --brokers: run the pipeline as separate processes (ingest, this
    /// many `process` instances in one group, `serve --with-projector`),
    /// once per count, e.g. `1,2,3`, then `catalog dev` on the embedded log
    /// for comparison; prints each stage's lag over time.
    #[arg(long, value_delimiter = ',', requires = "brokers")]
    pub processors: Vec<usize>,
    /// The org's shape: `demo` (many small files of a few entities) or
    /// `realistic` (one users file of 30% of the org, a deep group tree,
    /// one Location listing a file per repository; reports ingest,
    /// edit-to-visible, idle CPU, peak RSS, disk, queries under 16
    /// connections idle and while the store changes, rebuild by replay).
    #[arg(long, default_value = "demo", value_parser = ["demo", "realistic"])]
    pub shape: String,
    /// With `--shape realistic --dir`: only rebuild the projections of the
    /// org already ingested there from its entity log (time and peak RSS);
    /// the realistic run ends with this, in a process of its own.
    #[arg(long, requires = "dir")]
    pub rebuild_only: bool,
    /// Only time the stages alone (processor, projector fold), no pipeline.
    #[arg(long)]
    pub stages_only: bool,
    /// Working directory (default: a fresh temporary one, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Instead of the pipeline: the GitHub source against a simulated org
    /// of this many repositories.
    #[arg(long)]
    pub github_repos: Option<usize>,
    /// Instead of the pipeline: the AWS source against the moto emulator
    /// holding this many tagged resources.
    #[arg(long)]
    pub aws_resources: Option<usize>,
    /// Resources retagged between the AWS re-polls.
    #[arg(long, default_value_t = 10)]
    pub aws_changed: usize,
    /// A running moto to use (default: start scripts/moto-server).
    #[arg(long)]
    pub aws_endpoint: Option<String>,
    /// Repositories pushed to between the GitHub re-polls.
    #[arg(long, default_value_t = 10)]
    pub github_changed: usize,
    /// Instead of the pipeline measurements: a 20-check scorecard over the
    /// generated org (evaluation, change-to-visible, rollup latency).
    #[arg(long)]
    pub scorecards: bool,
    /// Instead of the pipeline measurements: the generated org with a year
    /// of daily changes (about ten per entity), then the analysts' reads on
    /// the store (asOf, a 52-week metric, the feed, a Parquet export).
    #[arg(long)]
    pub history: bool,
    /// After the pipeline measurements: the web UI in Chromium
    /// (`ui/bench/first-render.mjs`: first render of the catalog page, a
    /// jump to the middle of the table, a facet choice, an entity page).
    #[arg(long)]
    pub ui: bool,
    /// Instead of the pipeline measurements: what verifying a request's
    /// bearer token costs (JWTs of an OIDC issuer with cached keys, and a
    /// static token).
    #[arg(long)]
    pub auth: bool,
    /// Internal: the load process of `--shape realistic` (a case as JSON
    /// on stdin, latencies as JSON on stdout).
    #[arg(long, hide = true)]
    pub load_client: bool,
}

/// Runs the UI benchmark (`ui/bench/first-render.mjs`) against `base`,
/// printing what it prints.
fn ui_bench(base: &str) -> anyhow::Result<()> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/bench/first-render.mjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(base)
        .arg("10")
        .output()
        .with_context(|| format!("node runs {}", script.display()))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the UI benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// GET a JSON document: (status, body).
pub(crate) fn get_json(agent: &ureq::Agent, url: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut r = agent.get(url).call()?;
    let status = r.status().as_u16();
    // Rollups of a 1M org (every owner group, every check's rate) are
    // larger than ureq's default 10 MiB.
    let body = r.body_mut().with_config().limit(1 << 30).read_to_string()?;
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    ))
}

/// Writes the org: groups, systems, components, APIs, resources.
/// Returns the ref key of one component per file (for edits).
pub fn generate_org(
    dir: &Path,
    n: usize,
    per_file: usize,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    std::fs::create_dir_all(dir)?;
    let groups = (n / 200).max(2);
    let systems = (n / 50).max(2);
    let mut docs: Vec<(String, String)> = Vec::with_capacity(n);
    for g in 0..groups {
        docs.push((
            format!("group:default/team-{g}"),
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-{g}\nspec:\n  type: team\n  children: []\n"
            ),
        ));
    }
    for s in 0..systems {
        docs.push((
            format!("system:default/system-{s}"),
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata:\n  name: system-{s}\nspec:\n  owner: team-{}\n",
                s % groups
            ),
        ));
    }
    let lifecycles = ["production", "experimental", "deprecated"];
    let types = ["service", "website", "library"];
    let mut i = 0;
    while docs.len() < n {
        let owner = i % groups;
        let system = i % systems;
        let doc = match i % 5 {
            0 => (
                format!("api:default/api-{i}"),
                format!(
                    "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: api-{i}\n  description: API number {i}\nspec:\n  type: openapi\n  lifecycle: {}\n  owner: team-{owner}\n  system: system-{system}\n  definition: |\n    openapi: 3.0.0\n",
                    lifecycles[i % 3]
                ),
            ),
            1 => (
                format!("resource:default/db-{i}"),
                format!(
                    "apiVersion: backstage.io/v1alpha1\nkind: Resource\nmetadata:\n  name: db-{i}\nspec:\n  type: database\n  owner: team-{owner}\n  system: system-{system}\n"
                ),
            ),
            _ => (
                format!("component:default/svc-{i}"),
                format!(
                    "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc-{i}\n  description: Service number {i}\n  tags: [t{}, lang-{}]\n  annotations:\n    github.com/project-slug: acme/svc-{i}\nspec:\n  type: {}\n  lifecycle: {}\n  owner: group:default/team-{owner}\n  system: system-{system}\n  providesApis: [api-{}]\n  dependsOn: [resource:db-{}]\n",
                    i % 7,
                    i % 4,
                    types[i % 3],
                    lifecycles[i % 3],
                    i - i % 5,
                    i - i % 5 + 1
                ),
            ),
        };
        docs.push(doc);
        i += 1;
    }
    let mut edit_targets = Vec::new();
    for (f, chunk) in docs.chunks(per_file.max(1)).enumerate() {
        let sub = dir.join(format!("d{}", f / 500));
        std::fs::create_dir_all(&sub)?;
        let path = sub.join(format!("f{f}.yaml"));
        let text: Vec<&str> = chunk.iter().map(|(_, d)| d.as_str()).collect();
        std::fs::write(&path, text.join("---\n"))?;
        if let Some((r, _)) = chunk.iter().find(|(r, _)| r.starts_with("component:")) {
            edit_targets.push((path, r.clone()));
        }
    }
    Ok(edit_targets)
}

/// A field of this process's `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`).
pub(crate) fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes of the files under `p`, recursively.
pub(crate) fn dir_size(p: &Path) -> u64 {
    walk_size(p).unwrap_or(0)
}

fn walk_size(p: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            walk_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(total)
}

/// Polls `url` until its answer contains `marker` (an edit made just
/// before), every `every`; how long that took. An error after `timeout`.
pub(crate) fn until_visible(
    agent: &ureq::Agent,
    url: &str,
    marker: &str,
    every: Duration,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let body = agent.get(url).call()?.body_mut().read_to_string()?;
        if body.contains(marker) {
            return Ok(t.elapsed());
        }
        if t.elapsed() > timeout {
            bail!(
                "{marker} not visible at {url} after {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(every);
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub(crate) fn fmt_d(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

/// Times `n` sequential GETs over one keep-alive connection.
pub(crate) fn measure(
    agent: &ureq::Agent,
    urls: &[String],
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let url = &urls[i % urls.len()];
        let t = Instant::now();
        let mut resp = agent
            .get(url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let _ = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

/// Entities visible now (a count alone: no item, however large, is sent).
pub(crate) fn total_items(agent: &ureq::Agent, base: &str) -> anyhow::Result<u64> {
    let v: serde_json::Value = agent
        .get(format!("{base}/api/catalog/entities/by-query?limit=0"))
        .call()?
        .body_mut()
        .read_json()?;
    Ok(v["totalItems"].as_u64().unwrap_or(0))
}

/// Times the processor and the projector's fold alone, on this org.
fn stage_timings(org: &Path, scratch: &Path) -> anyhow::Result<String> {
    use proto::{Content, LocationKey, Observation, ObservedContent, SourceId};
    let files: Vec<PathBuf> = walk_files(org)?;
    let now = chrono::Utc::now();
    let observations: Vec<Observation> = files
        .iter()
        .map(|p| {
            Ok(Observation {
                event_id: uuid::Uuid::now_v7(),
                source: SourceId::new("bench"),
                observed_at: now,
                location: LocationKey::file(p),
                origin: LocationKey::file(org),
                first_seen_at: now,
                content: ObservedContent::Present {
                    content: Content::Utf8 {
                        text: std::fs::read_to_string(p)?,
                    },
                },
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let cfg = processor::ProcessorConfig::default();
    let t = Instant::now();
    let events: Vec<proto::EntityEvent> = observations
        .iter()
        .map(|o| processor::process(o, &cfg))
        .collect();
    let processed = t.elapsed();
    let entities: usize = events
        .iter()
        .map(|e| match &e.outcome {
            proto::LocationOutcome::Processed { entities, .. } => entities.len(),
            _ => 0,
        })
        .sum();
    let store = projector::RocksStore::open(&scratch.join("fold"), 256 << 20)?;
    let t = Instant::now();
    let (mut ta, mut tf, mut tw, mut nw) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
    for chunk in events.chunks(projector::ProjectorConfig::default().batch_max) {
        let t0 = Instant::now();
        let mut fold = projector::Fold::new(&store);
        for e in chunk {
            fold.apply(e)?;
        }
        let t1 = Instant::now();
        let w = fold.finish()?;
        nw += w.len();
        let t2 = Instant::now();
        projector::Store::write(&store, w)?;
        ta += t1 - t0;
        tf += t2 - t1;
        tw += t2.elapsed();
    }
    let folded = t.elapsed();
    // The filtered page without the cache: index evaluation + 20 reads.
    let catalog = projector::Catalog::new(std::sync::Arc::new(store));
    let filter =
        projector::EntityFilter::parse(&["kind=component,spec.lifecycle=production".into()])?;
    let mut cold = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let refs = catalog.evaluate(filter.as_ref())?;
        for r in refs.iter().take(20) {
            catalog.entity(r)?;
        }
        cold.push(t.elapsed());
    }
    cold.sort();
    Ok(format!(
        "stages alone: processor {:.0} entities/s ({entities} in {:.2} s); projector {:.0} entities/s ({:.2} s: apply {:.2} s, derive {:.2} s, RocksDB write {:.2} s of {nw} keys)\nfiltered page uncached (index evaluation + 20 reads, no HTTP): p50 {}\n",
        entities as f64 / processed.as_secs_f64(),
        processed.as_secs_f64(),
        entities as f64 / folded.as_secs_f64(),
        folded.as_secs_f64(),
        ta.as_secs_f64(),
        tf.as_secs_f64(),
        tw.as_secs_f64(),
        fmt_d(percentile(&cold, 0.5))
    ))
}

pub(crate) fn walk_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk_files(&p)?);
        } else {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.load_client {
        return tokio::task::spawn_blocking(crate::realistic::load_client).await?;
    }
    if args.auth {
        return crate::auth::run().await;
    }
    if let Some(n) = args.aws_resources {
        let (changed, endpoint) = (args.aws_changed, args.aws_endpoint.clone());
        return tokio::task::spawn_blocking(move || crate::aws::run(n, changed, endpoint)).await?;
    }
    if let Some(repos) = args.github_repos {
        let changed = args.github_changed;
        return tokio::task::spawn_blocking(move || crate::github::run(repos, changed)).await?;
    }
    let tmp;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    if let (Some(brokers), false) = (&args.brokers, args.processors.is_empty()) {
        let (brokers, processors) = (brokers.clone(), args.processors.clone());
        let (entities, per_file) = (args.entities, args.per_file);
        return tokio::task::spawn_blocking(move || {
            crate::kafka::run(&brokers, &processors, entities, per_file, &root)
        })
        .await?;
    }
    if args.rebuild_only && args.shape != "realistic" {
        bail!("--rebuild-only rebuilds an org of --shape realistic");
    }
    if args.rebuild_only {
        return crate::realistic::rebuild(args.entities, &root).await;
    }
    if args.shape == "realistic" {
        return crate::realistic::run(args.entities, args.requests, args.edits, &root).await;
    }
    if args.history {
        let (entities, per_file) = (args.entities, args.per_file);
        return tokio::task::spawn_blocking(move || crate::history::run(entities, per_file, &root))
            .await?;
    }
    if args.scorecards {
        return crate::scorecards::run(
            args.entities,
            args.per_file,
            args.requests,
            args.edits,
            &root,
        )
        .await;
    }
    let org = root.join("org");
    let t = Instant::now();
    let edit_targets = generate_org(&org, args.entities, args.per_file)?;
    println!(
        "generated {} entities in {} files in {:.1} s",
        args.entities,
        args.entities.div_ceil(args.per_file),
        t.elapsed().as_secs_f64()
    );
    print!("{}", stage_timings(&org, &root)?);
    if args.stages_only {
        return Ok(());
    }
    let mut cfg = Config {
        data_dir: root.join("data"),
        ..Config::default()
    };
    cfg.serve.listen = "127.0.0.1:0".parse()?;
    if let Some(b) = &args.brokers {
        cfg.set_brokers(b);
    }
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("bench", &org));
    let shutdown = Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let sd = shutdown.clone();
    let pipeline = tokio::spawn(services::run_dev(cfg, None, sd, Some(tx)));
    let addr = rx.await.context("the pipeline did not start")?;
    let base = format!("http://{addr}");
    let n = args.entities as u64;
    let ui = args.ui;
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        // Ingest throughput: until every entity is queryable.
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            if total_items(&agent, &base)? >= n {
                break;
            }
            if Instant::now() > deadline {
                bail!("not all entities visible after 30 minutes");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ingest = started.elapsed();
        println!(
            "ingest: {n} entities queryable after {:.2} s = {:.0} entities/s (start of first poll to all visible)",
            ingest.as_secs_f64(),
            n as f64 / ingest.as_secs_f64()
        );
        // Edit to visible.
        let mut lat = Vec::new();
        for (k, (path, r)) in edit_targets.iter().take(args.edits).enumerate() {
            let text = std::fs::read_to_string(path)?;
            let name = r.rsplit('/').next().unwrap_or_default();
            let marker = format!("edited-{k}-{}", std::process::id());
            let needle = format!("  name: {name}\n");
            let edited = text.replacen(&needle, &format!("{needle}  title: {marker}\n"), 1);
            // Edits land at a random point of the 1 s poll schedule.
            let jitter = (k as u64 * 7919 + u64::from(std::process::id())) % 1000;
            std::thread::sleep(Duration::from_millis(jitter));
            std::fs::write(path, edited)?;
            let url = format!("{base}/api/catalog/entities/by-name/component/default/{name}");
            lat.push(until_visible(
                &agent,
                &url,
                &marker,
                Duration::from_millis(5),
                Duration::from_secs(60),
            )?);
        }
        lat.sort();
        println!(
            "edit-to-visible over {} edits: p50 {} max {}",
            lat.len(),
            fmt_d(percentile(&lat, 0.5)),
            fmt_d(lat.last().copied().unwrap_or_default())
        );
        // Query latencies.
        let names: Vec<String> = (0..200)
            .map(|i| {
                let (_, r) = &edit_targets[(i * 7919) % edit_targets.len()];
                let name = r.rsplit('/').next().unwrap_or_default();
                format!("{base}/api/catalog/entities/by-name/component/default/{name}")
            })
            .collect();
        let cases: Vec<(&str, Vec<String>, usize)> = vec![
            ("by-name", names, args.requests),
            (
                "by-query filtered page (kind=component,spec.lifecycle=production, 20; cached until the next change)",
                vec![format!(
                    "{base}/api/catalog/entities/by-query?filter=kind=component,spec.lifecycle=production&limit=20"
                )],
                (args.requests / 10).max(20),
            ),
            (
                "facets (kind, spec.type, spec.lifecycle)",
                vec![format!(
                    "{base}/api/catalog/entity-facets?facet=kind&facet=spec.type&facet=spec.lifecycle"
                )],
                (args.requests / 10).max(20),
            ),
            (
                "full list of components",
                vec![format!("{base}/api/catalog/entities?filter=kind=component")],
                5,
            ),
        ];
        for (label, urls, count) in cases {
            let d = measure(&agent, &urls, count)?;
            println!(
            "{label}: p50 {} p99 {} ({count} requests, 1 connection)",
                fmt_d(percentile(&d, 0.5)),
                fmt_d(percentile(&d, 0.99))
            );
        }
        if ui {
            ui_bench(&base)?;
        }
        Ok(())
    })
    .await?;
    let rss = rss_kib("VmRSS:");
    let hwm = rss_kib("VmHWM:");
    // Stop the pipeline before anything is removed, also after a failure.
    shutdown.trigger();
    pipeline.await??;
    measured?;
    println!(
        "memory: RSS {} MiB now, peak {} MiB (whole process: ingest, processor, projector, HTTP)",
        rss / 1024,
        hwm / 1024
    );
    let data = root.join("data");
    println!(
        "disk: log {} MiB, projections {} MiB, ingest state {} MiB",
        dir_size(&data.join("log")) >> 20,
        dir_size(&data.join("projections")) >> 20,
        dir_size(&data.join("ingest")) >> 20
    );
    Ok(())
}

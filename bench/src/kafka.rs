//! `catalog-bench --brokers B --processors 1,2,3`: the pipeline as separate
//! processes on a Kafka cluster, as an SRE runs it: one `ingest`, N
//! `process` (one consumer group), one `serve --with-projector`; and, for
//! comparison, `catalog dev` on the embedded log. For each run it prints
//! the consumer lag of each stage over time and the ingest throughput
//! (start to every entity queryable with the projection lag at zero).
//! A measurement, not a test: it asserts nothing.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One run's outcome.
struct Run {
    label: String,
    seconds: f64,
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn(exe: &Path, args: &[&str], env: &[(&str, String)], log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)?;
    Command::new(exe)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()
        .with_context(|| format!("cannot start {} {args:?}", exe.display()))
}

/// Sum of `catalog_consumer_lag` series of `stage` in a Prometheus text.
fn lag_in(text: &str, stage: &str) -> Option<i64> {
    let label = format!("stage=\"{stage}\"");
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with("catalog_consumer_lag{") && line.contains(&label) {
            found = true;
            sum += line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    found.then_some(sum as i64)
}

fn text(agent: &ureq::Agent, url: &str) -> Option<String> {
    let mut r = agent.get(url).call().ok()?;
    r.body_mut().read_to_string().ok()
}

/// Waits until `base` serves `n` entities with lag 0, printing the lag of
/// every stage every two seconds.
fn follow(
    agent: &ureq::Agent,
    base: &str,
    processors: &[String],
    n: u64,
    started: Instant,
) -> anyhow::Result<f64> {
    let mut last_print = Instant::now() - Duration::from_secs(10);
    loop {
        let visible = crate::total_items(agent, base).unwrap_or(0);
        let (_, ready) = crate::get_json(agent, &format!("{base}/readyz"))
            .unwrap_or((0, serde_json::Value::Null));
        let projector_lag = ready["lag"].as_i64();
        if visible >= n && projector_lag == Some(0) {
            return Ok(started.elapsed().as_secs_f64());
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            let processor_lag: Option<i64> = processors
                .iter()
                .filter_map(|m| text(agent, m).and_then(|t| lag_in(&t, "processor")))
                .reduce(|a, b| a + b);
            println!(
                "  t={:>5.1}s visible={visible:>7} processor_lag={} projector_lag={}",
                started.elapsed().as_secs_f64(),
                processor_lag.map_or("-".into(), |l| l.to_string()),
                projector_lag.map_or("-".into(), |l| l.to_string()),
            );
            last_print = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("not caught up after 30 minutes ({visible} of {n} visible)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the multi-process pipeline with `processors` processors.
fn kafka_run(
    exe: &Path,
    brokers: &str,
    org: &Path,
    root: &Path,
    processors: usize,
    n: u64,
) -> anyhow::Result<Run> {
    let run = root.join(format!("kafka-{processors}"));
    std::fs::create_dir_all(&run)?;
    let prefix = format!("bench-{}-{processors}-", std::process::id());
    let env = vec![
        ("CATALOG_BROKERS", brokers.to_owned()),
        ("CATALOG_TOPIC_PREFIX", prefix),
    ];
    let listen = format!("127.0.0.1:{}", free_port()?);
    let host = run.join("host");
    let mut procs = Procs(Vec::new());
    procs.0.push(spawn(
        exe,
        &[
            "serve",
            "--with-projector",
            "--data-dir",
            host.to_str().context("path")?,
            "--listen",
            &listen,
        ],
        &env,
        &run.join("serve.log"),
    )?);
    let mut metrics = Vec::new();
    for i in 0..processors {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut penv = env.clone();
        penv.push(("CATALOG_METRICS_LISTEN", addr.clone()));
        procs.0.push(spawn(
            exe,
            &["process"],
            &penv,
            &run.join(format!("process-{i}.log")),
        )?);
        metrics.push(format!("http://{addr}/metrics"));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = format!("http://{listen}");
    // Everything up before the clock starts (topics exist, groups joined).
    let up = Instant::now();
    while crate::get_json(&agent, &format!("{base}/readyz")).is_err() {
        if up.elapsed() > Duration::from_secs(60) {
            bail!(
                "serve did not start; see {}",
                run.join("serve.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    procs.0.push(spawn(
        exe,
        &[
            "ingest",
            org.to_str().context("path")?,
            "--data-dir",
            run.join("ingest").to_str().context("path")?,
        ],
        &env,
        &run.join("ingest.log"),
    )?);
    println!("kafka, {processors} processor(s):");
    let seconds = follow(&agent, &base, &metrics, n, started)?;
    Ok(Run {
        label: format!("kafka, {processors} processor(s)"),
        seconds,
    })
}

/// `catalog dev` on the embedded log, for comparison.
fn embedded_run(exe: &Path, org: &Path, root: &Path, n: u64) -> anyhow::Result<Run> {
    let run = root.join("embedded");
    std::fs::create_dir_all(&run)?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let started = Instant::now();
    let _procs = Procs(vec![spawn(
        exe,
        &[
            "dev",
            org.to_str().context("path")?,
            "--data-dir",
            run.join("data").to_str().context("path")?,
            "--listen",
            &listen,
        ],
        &[],
        &run.join("dev.log"),
    )?]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    println!("embedded log (catalog dev):");
    let seconds = follow(&agent, &format!("http://{listen}"), &[], n, started)?;
    Ok(Run {
        label: "embedded log, catalog dev".into(),
        seconds,
    })
}

/// The whole comparison.
pub fn run(
    brokers: &str,
    processors: &[usize],
    entities: usize,
    per_file: usize,
    root: &Path,
) -> anyhow::Result<()> {
    // The services run as `catalog` processes, built beside this binary.
    let exe: PathBuf = std::env::current_exe()
        .context("cannot find this binary")?
        .with_file_name("catalog");
    if !exe.is_file() {
        anyhow::bail!(
            "{} is missing: build it too (cargo build --bin catalog)",
            exe.display()
        );
    }
    let org = root.join("org");
    crate::generate_org(&org, entities, per_file)?;
    println!(
        "generated {entities} entities in {} files",
        entities.div_ceil(per_file)
    );
    let n = entities as u64;
    let mut runs = Vec::new();
    for &p in processors {
        runs.push(kafka_run(&exe, brokers, &org, root, p, n)?);
    }
    runs.push(embedded_run(&exe, &org, root, n)?);
    println!("\nstart of ingest to all {entities} entities queryable, projection lag 0:");
    for r in &runs {
        println!(
            "  {:<32} {:>7.1} s = {:>7.0} entities/s",
            r.label,
            r.seconds,
            entities as f64 / r.seconds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lag_in;

    #[test]
    fn lag_sums_the_series_of_one_stage() {
        let text = "# TYPE catalog_consumer_lag gauge\n\
            catalog_consumer_lag{stage=\"processor\",topic=\"t\",partition=\"0\"} 5\n\
            catalog_consumer_lag{stage=\"processor\",topic=\"t\",partition=\"1\"} 7\n\
            catalog_consumer_lag{stage=\"projector\",topic=\"t\",partition=\"0\"} 100\n";
        assert_eq!(lag_in(text, "processor"), Some(12));
        assert_eq!(lag_in(text, "projector"), Some(100));
        assert_eq!(lag_in(text, "ingest"), None);
    }
}

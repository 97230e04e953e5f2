//! `catalog-bench --shape realistic`: an org shaped like a large company's
//! rather than like a demo, run through `catalog dev` in this process and
//! measured through the HTTP API.
//!
//! The shape, for N entities:
//! - `org/users.yaml`: 30% of N users in one file (30k documents at 100k);
//! - `org/groups.yaml`: 1% of N groups in a ternary tree (depth 8 at 1M);
//! - `org/systems.yaml`: domains and 1% of N systems;
//! - `org/all.yaml`: one Location listing every repository file;
//! - `repos/rNNN/repo-I.yaml`: one file per repository (a component, and an
//!   API in every fourth), found only through the Location; tags from a
//!   pool of 5,000 (high cardinality); each depends on an earlier one,
//!   and one in ten also on one of twenty shared libraries (the hubs).
//!
//! Reported: ingest (start to all entities and relations queryable),
//! edit-to-visible p50/p99, idle CPU, peak RSS, disk, query latencies
//! under 16 concurrent connections (by-name, a filtered page of 100,
//! facets over `metadata.tags`, count of a kind, an OR filter sorted by
//! name, an orphan scan, the full list of components: first byte and
//! whole), each both with the store idle (answers cached by store version)
//! and while the store changes (every answer computed), and the time to
//! rebuild the projections by replaying the entity log. The 16 clients run
//! in a process of their own, as a load generator would.

use crate::{dir_size, fmt_d, percentile, rss_kib, total_items};
use anyhow::{Context, bail};
use catalog::config::Config;
use catalog::services::{self, Shutdown};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Concurrent connections of the latency measurements.
const CONNECTIONS: usize = 16;

/// What the generator wrote, for the measurements.
struct Org {
    entities: usize,
    users: usize,
    groups: usize,
    repos: usize,
}

fn repo_path(root: &Path, i: usize) -> PathBuf {
    root.join("repos")
        .join(format!("r{:03}", i / 1000))
        .join(format!("repo-{i}.yaml"))
}

/// A well-mixed hash of `x` (SplitMix64's finaliser), for picking
/// repeatably what looks random.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn repo_doc(i: usize, groups: usize, systems: usize, marker: &str) -> String {
    let types = ["service", "website", "library"];
    let lifecycles = ["production", "experimental", "deprecated"];
    let langs = ["java", "go", "python", "typescript", "rust", "kotlin"];
    let mut doc = format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc-{i}\n{marker}  \
         description: Repository {i} of the org\n  tags: [{}, t{}, t{}]\n  annotations:\n    \
         github.com/project-slug: acme/repo-{i}\n    backstage.io/techdocs-ref: dir:.\n  \
         links:\n    - url: https://runbooks.example.com/repo-{i}\n      title: Runbook\n\
         spec:\n  type: {}\n  lifecycle: {}\n  owner: group:default/team-{}\n  system: system-{}\n",
        langs[i % langs.len()],
        (i * 7919) % 5000,
        (i * 104_729) % 5000,
        types[i % 3],
        lifecycles[(i / 3) % 3],
        i % groups,
        i % systems,
    );
    // Dependencies as an org has them: each repository on one earlier
    // repository picked at random, and one in ten also on one of twenty
    // shared libraries, the hubs (2.7k dependents each at 1M entities).
    if i > 0 {
        let h = mix(i as u64);
        let mut deps = format!("component:svc-{}", h % i as u64);
        if i.is_multiple_of(10) {
            deps.push_str(&format!(", component:svc-{}", 1 + (h >> 32) % 20));
        }
        doc.push_str(&format!("  dependsOn: [{deps}]\n"));
    }
    if i.is_multiple_of(4) {
        doc.push_str(&format!(
            "  providesApis: [api-{i}]\n---\napiVersion: backstage.io/v1alpha1\nkind: API\n\
             metadata:\n  name: api-{i}\n  tags: [rest]\nspec:\n  type: openapi\n  lifecycle: production\n  \
             owner: group:default/team-{}\n  system: system-{}\n  definition: |\n    openapi: 3.0.0\n",
            i % groups,
            i % systems
        ));
    }
    doc
}

/// Writes the org under `root`; returns its counts.
fn generate(root: &Path, n: usize) -> anyhow::Result<Org> {
    let org = root.join("org");
    std::fs::create_dir_all(&org)?;
    let users = n * 3 / 10;
    let groups = (n / 100).max(3);
    let domains = 20;
    let systems = (n / 100).max(2);
    // Repositories hold the rest: 1.25 entities each, and the Location.
    let rest = n.saturating_sub(users + groups + domains + systems + 1);
    let mut repos = rest * 4 / 5;
    while repos + repos.div_ceil(4) < rest {
        repos += 1;
    }
    while repos + repos.div_ceil(4) > rest {
        repos -= 1;
    }
    let entities = users + groups + domains + systems + 1 + repos + repos.div_ceil(4);

    let mut text = String::with_capacity(users * 260);
    for i in 0..users {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&format!(
            "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: user-{i}\n  \
             annotations:\n    hr.example.com/employee-id: 'E{i:07}'\nspec:\n  profile:\n    \
             displayName: User {i}\n    email: user-{i}@example.com\n  memberOf: [team-{}]\n",
            i % groups
        ));
    }
    std::fs::write(org.join("users.yaml"), &text)?;

    text.clear();
    for g in 0..groups {
        if g > 0 {
            text.push_str("---\n");
        }
        text.push_str(&format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-{g}\n\
             spec:\n  type: team\n  children: []\n"
        ));
        if g > 0 {
            text.push_str(&format!("  parent: team-{}\n", (g - 1) / 3));
        }
    }
    std::fs::write(org.join("groups.yaml"), &text)?;

    text.clear();
    for d in 0..domains {
        text.push_str(&format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Domain\nmetadata:\n  name: domain-{d}\n\
             spec:\n  owner: group:default/team-{}\n---\n",
            d % groups
        ));
    }
    for s in 0..systems {
        if s > 0 {
            text.push_str("---\n");
        }
        text.push_str(&format!(
            "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata:\n  name: system-{s}\n\
             spec:\n  owner: group:default/team-{}\n  domain: domain-{}\n",
            s % groups,
            s % domains
        ));
    }
    std::fs::write(org.join("systems.yaml"), &text)?;

    text.clear();
    text.push_str(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: all-repositories\n\
         spec:\n  targets:\n",
    );
    for i in 0..repos {
        text.push_str(&format!("    - ../repos/r{:03}/repo-{i}.yaml\n", i / 1000));
        let path = repo_path(root, i);
        if i.is_multiple_of(1000) {
            std::fs::create_dir_all(path.parent().unwrap_or(root))?;
        }
        std::fs::write(&path, repo_doc(i, groups, systems, ""))?;
    }
    std::fs::write(org.join("all.yaml"), &text)?;
    Ok(Org {
        entities,
        users,
        groups,
        repos,
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// The load process's client: a timeout on connecting only. ureq's
/// per-request timeouts cost the client about 0.6 ms per request on this
/// machine (p50 of by-name under 16 connections: 0.97 ms with one, 0.36 ms
/// without, against the same server), which is the client's cost, not the
/// service's; the benchmark bounds the whole load instead.
fn load_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// How long one load may take before the benchmark gives up on it.
const LOAD_LIMIT: Duration = Duration::from_secs(600);

fn get(agent: &ureq::Agent, url: &str) -> anyhow::Result<serde_json::Value> {
    let mut r = agent
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    Ok(r.body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_json()
        .unwrap_or(serde_json::Value::Null))
}

/// Whether `entity` has a relation of `kind` to `target`.
fn related(entity: &serde_json::Value, kind: &str, target: &str) -> bool {
    entity["relations"].as_array().is_some_and(|rs| {
        rs.iter()
            .any(|r| r["type"] == kind && r["targetRef"] == target)
    })
}

/// Whether a sample of entities carries every relation it should.
fn relations_stitched(agent: &ureq::Agent, base: &str, org: &Org) -> anyhow::Result<bool> {
    let url = |kind: &str, name: &str| {
        format!("{base}/api/catalog/entities/by-name/{kind}/default/{name}")
    };
    for k in 0..10 {
        let i = org.repos - 1 - k * (org.repos / 10);
        let c = get(agent, &url("component", &format!("svc-{i}")))?;
        let owner = format!("group:default/team-{}", i % org.groups);
        if !related(&c, "ownedBy", &owner) {
            return Ok(false);
        }
        let u = org.users - 1 - k * (org.users / 10);
        let user = get(agent, &url("user", &format!("user-{u}")))?;
        let team = format!("group:default/team-{}", u % org.groups);
        if !related(&user, "memberOf", &team) {
            return Ok(false);
        }
        let g = org.groups - 1 - k * (org.groups / 10);
        if g > 0 {
            let group = get(agent, &url("group", &format!("team-{g}")))?;
            let parent = format!("group:default/team-{}", (g - 1) / 3);
            if !related(&group, "childOf", &parent) {
                return Ok(false);
            }
        }
        // The reverse direction: the owner lists what it owns.
        let owner_entity = get(agent, &url("group", &format!("team-{}", i % org.groups)))?;
        if !related(
            &owner_entity,
            "ownerOf",
            &format!("component:default/svc-{i}"),
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// CPU seconds this process used so far.
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// One latency case: requests spread over [`CONNECTIONS`] connections.
struct Case {
    label: &'static str,
    load: Load,
}

/// What the load process sends: `requests` spread over [`CONNECTIONS`]
/// connections, round-robin over `urls`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Load {
    urls: Vec<String>,
    requests: usize,
    /// A JSON body to POST instead of a GET.
    body: Option<String>,
}

/// What the load process measured.
#[derive(serde::Serialize, serde::Deserialize)]
struct Measured {
    /// Each request's latency, in nanoseconds.
    nanos: Vec<u64>,
    /// Requests per second over the whole case.
    rate: f64,
}

/// Runs a case in a process of its own (this executable with
/// `--load-client`), as clients on other machines would be: in this
/// process, 16 client threads would share the scheduler's share of the
/// service they measure and the clients' own work would be most of what
/// is timed. Returns (sorted latencies, requests per second).
fn concurrent(case: &Case) -> anyhow::Result<(Vec<Duration>, f64)> {
    use std::io::Write;
    let exe = std::env::current_exe().context("the benchmark's own path")?;
    let mut child = std::process::Command::new(exe)
        .arg("--load-client")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("start the load process")?;
    let mut stdin = child.stdin.take().context("the load process's input")?;
    stdin.write_all(&serde_json::to_vec(&case.load)?)?;
    drop(stdin);
    // Its clients set no timeout of their own (see `load_agent`): this
    // process ends it if it takes too long.
    let mut stdout = child.stdout.take().context("the load process's output")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out)
    });
    let deadline = Instant::now() + LOAD_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{}: no answer within {LOAD_LIMIT:?}", case.label);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the load process's reader panicked"))??;
    if !status.success() {
        bail!("{}: the load process failed ({status})", case.label);
    }
    // Its last line (a log line may come before).
    let printed = String::from_utf8_lossy(&stdout);
    let last = printed
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let m: Measured = serde_json::from_str(last)
        .with_context(|| format!("{}: what the load process printed", case.label))?;
    Ok((
        m.nanos.into_iter().map(Duration::from_nanos).collect(),
        m.rate,
    ))
}

/// `--load-client`: reads a [`Load`] (JSON) from stdin, runs it, prints
/// what it measured (JSON) on stdout.
pub fn load_client() -> anyhow::Result<()> {
    let load: Load =
        serde_json::from_reader(std::io::stdin().lock()).context("a load (JSON) on stdin")?;
    let (all, rate) = run_load(&load)?;
    let nanos = all.iter().map(|d| d.as_nanos() as u64).collect();
    let line = serde_json::to_string(&Measured { nanos, rate })?;
    println!("{line}");
    Ok(())
}

/// Runs `load` over [`CONNECTIONS`] threads, one keep-alive connection
/// each; returns (sorted latencies, requests per second).
fn run_load(load: &Load) -> anyhow::Result<(Vec<Duration>, f64)> {
    let per = load.requests.div_ceil(CONNECTIONS).max(1);
    let started = Instant::now();
    let results: Vec<anyhow::Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles = (0..CONNECTIONS)
            .map(|c| {
                std::thread::Builder::new()
                    .name("bench-client".into())
                    .spawn_scoped(s, move || -> anyhow::Result<Vec<Duration>> {
                        let agent = load_agent();
                        let mut out = Vec::with_capacity(per);
                        for k in 0..per {
                            let url = &load.urls[(c * per + k) % load.urls.len()];
                            let t = Instant::now();
                            let mut r = match &load.body {
                                Some(b) => agent
                                    .post(url)
                                    .header("content-type", "application/json")
                                    .send(b.as_str()),
                                None => agent.get(url).call(),
                            }
                            .with_context(|| url.clone())?;
                            let status = r.status().as_u16();
                            let body = r.body_mut().with_config().limit(u64::MAX).read_to_vec()?;
                            if status != 200 {
                                bail!("{url}: {status} {}", String::from_utf8_lossy(&body));
                            }
                            out.push(t.elapsed());
                        }
                        Ok(out)
                    })
            })
            .collect::<std::io::Result<Vec<_>>>();
        let handles = match handles {
            Ok(h) => h,
            Err(e) => return vec![Err(anyhow::Error::from(e).context("starting a client"))],
        };
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
            })
            .collect()
    });
    let took = started.elapsed();
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort();
    let rate = all.len() as f64 / took.as_secs_f64();
    Ok((all, rate))
}

/// First byte and whole answer of one streamed list, on its own.
fn streamed_list(url: &str, times: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, usize)> {
    let agent = agent();
    let (mut first, mut whole, mut bytes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..times {
        let t = Instant::now();
        let mut r = agent.get(url).call()?;
        let mut reader = r.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = [0u8; 1];
        std::io::Read::read_exact(&mut reader, &mut buf)?;
        first.push(t.elapsed());
        // Counted, not kept: a client holding the list (523 MiB at 1M
        // entities) would be counted in the process's peak RSS.
        let rest = std::io::copy(&mut reader, &mut std::io::sink())?;
        whole.push(t.elapsed());
        bytes = rest as usize + 1;
    }
    first.sort();
    whole.sort();
    Ok((first, whole, bytes))
}

/// Edits one repository file now and then until `stop`, so that the store
/// keeps changing (every answer is computed, none cached).
fn churn(root: PathBuf, org_repos: usize, groups: usize, systems: usize, stop: Arc<AtomicBool>) {
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let i = (k * 7919) % org_repos;
        let marker = format!("  title: churn {k}\n");
        let _ = std::fs::write(repo_path(&root, i), repo_doc(i, groups, systems, &marker));
        k += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn config(root: &Path) -> anyhow::Result<Config> {
    let mut cfg = Config {
        data_dir: root.join("data"),
        ..Config::default()
    };
    cfg.serve.listen = "127.0.0.1:0".parse()?;
    let mut source = ingest::SourceConfig::files("org", root.join("tree"));
    if let ingest::config::SourceKind::Files(f) = &mut source.kind {
        // Repositories are found through the Location, not by walking.
        f.patterns = vec!["org/*.yaml".into()];
    }
    cfg.ingest.sources.push(source);
    Ok(cfg)
}

/// The task running the pipeline.
type Pipeline = tokio::task::JoinHandle<anyhow::Result<()>>;

/// The whole pipeline (`catalog dev`) on the org under `root`: its
/// shutdown, its task and the API's base URL once it listens.
async fn start(root: &Path) -> anyhow::Result<(Shutdown, Pipeline, String)> {
    let shutdown = Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let pipeline = tokio::spawn(services::run_dev(
        config(root)?,
        None,
        shutdown.clone(),
        Some(tx),
    ));
    let addr = rx.await.context("the pipeline did not start")?;
    Ok((shutdown, pipeline, format!("http://{addr}")))
}

/// Waits until `n` entities are visible; returns when.
fn wait_visible(agent: &ureq::Agent, base: &str, n: u64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while total_items(agent, base)? < n {
        if Instant::now() > deadline {
            bail!("not all {n} entities visible after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub async fn run(
    entities: usize,
    requests: usize,
    edits: usize,
    root: &Path,
) -> anyhow::Result<()> {
    let tree = root.join("tree");
    let t = Instant::now();
    let org = generate(&tree, entities)?;
    println!(
        "generated a realistic org of {} entities in {:.1} s: {} users in one file ({} MiB), {} groups (ternary tree), {} repository files behind one Location ({} MiB)",
        org.entities,
        t.elapsed().as_secs_f64(),
        org.users,
        std::fs::metadata(tree.join("org/users.yaml"))?.len() >> 20,
        org.groups,
        org.repos,
        std::fs::metadata(tree.join("org/all.yaml"))?.len() >> 20,
    );
    let n = org.entities as u64;
    let (groups, systems) = (org.groups, (entities / 100).max(2));

    let started = Instant::now();
    let (shutdown, pipeline, base) = start(root).await?;
    let tree2 = tree.clone();
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let agent = agent();
        wait_visible(&agent, &base, n, Duration::from_secs(3600))?;
        let visible = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !relations_stitched(&agent, &base, &org)? {
            if Instant::now() > deadline {
                bail!("relations not stitched after an hour");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let stitched = started.elapsed();
        println!(
            "ingest: all {n} entities visible after {:.1} s, relations stitched after {:.1} s = {:.0} entities/s (start to all relations queryable)",
            visible.as_secs_f64(),
            stitched.as_secs_f64(),
            n as f64 / stitched.as_secs_f64()
        );

        // Idle: nothing changes for 10 s.
        std::thread::sleep(Duration::from_secs(3));
        let (c0, t0) = (cpu_seconds(), Instant::now());
        std::thread::sleep(Duration::from_secs(10));
        println!(
            "idle CPU: {:.1}% of a core (whole process, over {:.0} s with nothing changing)",
            100.0 * (cpu_seconds() - c0) / t0.elapsed().as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );

        // Edit to visible.
        let mut lat = Vec::new();
        for k in 0..edits {
            let i = (k * 104_729 + 17) % org.repos;
            let marker = format!("edited-{k}-{}", std::process::id());
            std::thread::sleep(Duration::from_millis((k as u64 * 7919) % 700));
            std::fs::write(
                repo_path(&tree2, i),
                repo_doc(i, groups, systems, &format!("  title: {marker}\n")),
            )?;
            let url = format!("{base}/api/catalog/entities/by-name/component/default/svc-{i}");
            lat.push(crate::until_visible(
                &agent,
                &url,
                &marker,
                Duration::from_millis(2),
                Duration::from_secs(120),
            )?);
        }
        lat.sort();
        println!(
            "edit-to-visible over {} edits: p50 {} p99 {} max {}",
            lat.len(),
            fmt_d(percentile(&lat, 0.5)),
            fmt_d(percentile(&lat, 0.99)),
            fmt_d(lat.last().copied().unwrap_or_default())
        );

        let names: Vec<String> = (0..500)
            .map(|k| {
                let i = (k * 7919) % org.repos;
                format!("{base}/api/catalog/entities/by-name/component/default/svc-{i}")
            })
            .collect();
        let q = |s: &str| vec![format!("{base}{s}")];
        let page = requests.div_ceil(10).max(CONNECTIONS);
        let cases = [
            Case { label: "by-name", load: Load { urls: names, requests, body: None } },
            Case {
                label: "filtered page of 100 (kind=component,spec.type=service)",
                load: Load {
                    urls: q("/api/catalog/entities/by-query?filter=kind=component,spec.type=service&limit=100"),
                    requests: page,
                    body: None,
                },
            },
            Case {
                label: "facets (metadata.tags, spec.type)",
                load: Load {
                    urls: q("/api/catalog/entity-facets?facet=metadata.tags&facet=spec.type"),
                    requests: page,
                    body: None,
                },
            },
            Case {
                label: "count of a kind (kind=user, limit 0)",
                load: Load {
                    urls: q("/api/catalog/entities/by-query?filter=kind=user&limit=0"),
                    requests: page,
                    body: None,
                },
            },
            Case {
                label: "OR filter sorted by name (kind=api | spec.type=website, 100)",
                load: Load {
                    urls: q("/api/catalog/entities/by-query?filter=kind=api&filter=kind=component,spec.type=website&orderField=metadata.name,asc&limit=100"),
                    requests: page,
                    body: None,
                },
            },
            Case {
                label: "orphan scan (metadata.annotations.backstage.io/orphan=true)",
                load: Load {
                    urls: q("/api/catalog/entities/by-query?filter=metadata.annotations.backstage.io/orphan=true&limit=100"),
                    requests: page,
                    body: None,
                },
            },
            Case {
                label: "predicate, the same OR sorted by name (POST by-query, 100)",
                load: Load {
                    urls: q("/api/catalog/entities/by-query"),
                    requests: page,
                    body: Some(r#"{"query":{"$any":[{"kind":"api"},{"kind":"component","spec.type":"website"}]},"orderBy":[{"field":"metadata.name","order":"asc"}],"limit":100}"#.into()),
                },
            },
            Case {
                label: "predicate beyond filters (components that are not websites, $not, 100)",
                load: Load {
                    urls: q("/api/catalog/entities/by-query"),
                    requests: page,
                    body: Some(r#"{"query":{"$all":[{"kind":"component"},{"$not":{"spec.type":"website"}}]},"limit":100}"#.into()),
                },
            },
        ];
        for changing in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let churner = changing.then(|| {
                let (tree, stop) = (tree2.clone(), stop.clone());
                let repos = org.repos;
                std::thread::spawn(move || churn(tree, repos, groups, systems, stop))
            });
            println!(
                "queries, {CONNECTIONS} connections, {}:",
                if changing {
                    "while a repository file changes every 100 ms (answers computed, not cached)"
                } else {
                    "store idle (answers cached until the store changes)"
                }
            );
            for case in &cases {
                let (d, rate) = concurrent(case)?;
                println!(
                    "  {}: p50 {} p99 {} ({} requests, {rate:.0} req/s)",
                    case.label,
                    fmt_d(percentile(&d, 0.5)),
                    fmt_d(percentile(&d, 0.99)),
                    d.len()
                );
            }
            let before = rss_kib("VmRSS:");
            let (first, whole, bytes) = streamed_list(
                &format!("{base}/api/catalog/entities?filter=kind=component"),
                3,
            )?;
            println!(
                "  full list of components ({} MiB): first byte p50 {}, whole p50 {}; RSS {} -> {} MiB",
                bytes >> 20,
                fmt_d(percentile(&first, 0.5)),
                fmt_d(percentile(&whole, 0.5)),
                before >> 10,
                rss_kib("VmRSS:") >> 10
            );
            stop.store(true, Ordering::Relaxed);
            if let Some(c) = churner {
                let _ = c.join();
            }
        }
        Ok(())
    })
    .await?;
    shutdown.trigger();
    pipeline.await??;
    measured?;
    println!(
        "memory: peak RSS {} MiB (whole process: ingest, processor, projector, HTTP)",
        rss_kib("VmHWM:") >> 10
    );
    let data = root.join("data");
    println!(
        "disk: log {} MiB, projections {} MiB, ingest state {} MiB",
        dir_size(&data.join("log")) >> 20,
        dir_size(&data.join("projections")) >> 20,
        dir_size(&data.join("ingest")) >> 20
    );

    // Rebuild: the projections from the entity log alone, in a process of
    // its own, as an operator rebuilds them (in this one, what the first
    // pipeline left to the allocator would count in the rebuild's peak).
    let exe = std::env::current_exe().context("the benchmark's own path")?;
    let status = std::process::Command::new(exe)
        .args(["--shape", "realistic", "--rebuild-only", "--entities"])
        .arg(n.to_string())
        .arg("--dir")
        .arg(root)
        .status()
        .context("start the rebuild")?;
    if !status.success() {
        bail!("the rebuild failed: {status}");
    }
    Ok(())
}

/// Drops the projections of an org already ingested under `root` (by
/// [`run`]) and rebuilds them from the entity log: the time until all
/// `entities` are visible, and this process's peak RSS.
pub async fn rebuild(entities: usize, root: &Path) -> anyhow::Result<()> {
    let n = entities as u64;
    let projections = root.join("data").join("projections");
    if !root.join("data").join("log").is_dir() {
        bail!(
            "{} holds no entity log: run `--shape realistic --dir {}` first",
            root.display(),
            root.display()
        );
    }
    if projections.exists() {
        std::fs::remove_dir_all(&projections)?;
    }
    let started = Instant::now();
    let (shutdown, pipeline, base) = start(root).await?;
    let rebuilt = tokio::task::spawn_blocking(move || {
        wait_visible(&agent(), &base, n, Duration::from_secs(3600))
    })
    .await?;
    let took = started.elapsed();
    shutdown.trigger();
    pipeline.await??;
    rebuilt?;
    println!(
        "rebuild by replay: {n} entities from the entity log in {:.1} s; peak RSS {} MiB (a process of its own)",
        took.as_secs_f64(),
        rss_kib("VmHWM:") >> 10
    );
    Ok(())
}

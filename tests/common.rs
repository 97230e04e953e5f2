//! Helpers shared by the end-to-end tests: `catalog dev` in-process, an
//! HTTP client, waiting, and copying the demo org into a scratch directory.
#![allow(dead_code)]

use catalog::Config;
use catalog::services::{self, Shutdown};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// GET a JSON document: (status, body).
pub fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    answer(agent.get(url).call())
}

/// (status, body as JSON, or as text when it is not JSON); status 0 when
/// the request failed.
pub fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    match response {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// Polls `check` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `read` until it returns `want`; after `timeout`, fails showing the
/// last value read.
pub fn wait_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    want: T,
    mut read: impl FnMut() -> T,
) {
    let start = Instant::now();
    loop {
        let got = read();
        if got == want {
            return;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}: {got:?}, want {want:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

pub fn demo_org() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/acme")
}

/// Number of served entities, from by-query's totalItems.
pub fn total(agent: &ureq::Agent, base: &str, filter: &str) -> u64 {
    total_as(agent, base, filter, None)
}

/// [`total`], read with `token` when given (a catalog whose reads need one).
pub fn total_as(agent: &ureq::Agent, base: &str, filter: &str, token: Option<&str>) -> u64 {
    let mut req = agent.get(format!(
        "{base}/api/catalog/entities/by-query?limit=1&filter={filter}"
    ));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (s, v) = answer(req.call());
    if s != 200 {
        return 0;
    }
    v["totalItems"].as_u64().unwrap_or(0)
}

/// Counts documents of a kind in the demo org's files, excluding the
/// intentionally broken file: what the catalog should serve.
pub fn count_kind_in(dir: &Path, kind: &str) -> u64 {
    let mut n = 0;
    for e in walk(dir) {
        if e.to_string_lossy().contains("broken") {
            continue;
        }
        let text = std::fs::read_to_string(&e).unwrap();
        n += text
            .lines()
            .filter(|l| l.trim_end() == format!("kind: {kind}"))
            .count() as u64;
    }
    n
}

/// The kinds of entity the demo org defines (besides its Location).
pub const DEMO_KINDS: [&str; 7] = [
    "API",
    "Component",
    "Domain",
    "Group",
    "Resource",
    "System",
    "User",
];

/// Entities of each of [`DEMO_KINDS`] the catalog should serve for the demo
/// org copied to `dir`: those of its files, and the valid Component of the
/// intentionally broken one.
pub fn demo_counts(dir: &Path) -> Vec<(&'static str, u64)> {
    let broken = u64::from(dir.join("broken").is_dir());
    DEMO_KINDS
        .into_iter()
        .map(|k| {
            let extra = if k == "Component" { broken } else { 0 };
            (k, count_kind_in(dir, k) + extra)
        })
        .collect()
}

/// Entities of each of [`DEMO_KINDS`] served.
pub fn served_counts(agent: &ureq::Agent, base: &str) -> Vec<(&'static str, u64)> {
    served_counts_as(agent, base, None)
}

/// Entities of each of [`DEMO_KINDS`] served, read with `token` when given
/// (a catalog whose reads need one).
pub fn served_counts_as(
    agent: &ureq::Agent,
    base: &str,
    token: Option<&str>,
) -> Vec<(&'static str, u64)> {
    DEMO_KINDS
        .into_iter()
        .map(|k| {
            let filter = format!("kind={}", k.to_lowercase());
            (k, total_as(agent, base, &filter, token))
        })
        .collect()
}

pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out
}

/// Adds `title` to the component named `name` in whichever file of `org`
/// holds it.
pub fn set_title(org: &Path, name: &str, title: &str) {
    let needle = format!("name: {name}\n");
    let file = walk(org)
        .into_iter()
        .find(|p| std::fs::read_to_string(p).unwrap().contains(&needle))
        .unwrap_or_else(|| panic!("no file defines {name}"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen(&needle, &format!("{needle}  title: {title}\n"), 1),
    )
    .unwrap();
}

/// Every served entity as `{kind, metadata.name}`, sorted.
pub fn served_names(agent: &ureq::Agent, base: &str) -> Vec<String> {
    let (_, all) = get(
        agent,
        &format!("{base}/api/catalog/entities?fields=metadata.name,kind"),
    );
    let mut v: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.to_string())
        .collect();
    v.sort();
    v
}

/// `catalog dev` running on a thread of the test, serving on `base`.
pub struct Running {
    pub shutdown: Shutdown,
    pub thread: std::thread::JoinHandle<anyhow::Result<()>>,
    pub base: String,
}

/// Starts `catalog dev` with `cfg`, listening on a free port.
pub fn run_dev(mut cfg: Config) -> Running {
    cfg.serve.listen = "127.0.0.1:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sd = shutdown.clone();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(services::run_dev(cfg, None, sd, Some(tx)))
    });
    let addr = rx.blocking_recv().expect("dev started");
    Running {
        shutdown,
        thread,
        base: format!("http://{addr}"),
    }
}

impl Running {
    /// Shuts down in order and checks that the services ended cleanly.
    pub fn stop(self) {
        self.shutdown.trigger();
        self.thread.join().unwrap().unwrap();
    }
}

/// `catalog dev` over a copy of the demo org that allows `file` locations
/// to be registered under `files`, with the token dev made.
pub struct DevWithFiles {
    pub running: Running,
    pub token: String,
    pub files: std::path::PathBuf,
    pub tmp: tempfile::TempDir,
}

pub fn dev_allowing_files() -> DevWithFiles {
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    let files = tmp.path().join("registered");
    std::fs::create_dir_all(&files).unwrap();
    let files = std::fs::canonicalize(&files).unwrap();
    let data = tmp.path().join("data");
    let mut cfg = Config {
        data_dir: data.clone(),
        ..Config::default()
    };
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("demo", org));
    cfg.locations.allow_file_roots = vec![files.clone()];
    let running = run_dev(cfg);
    let token = std::fs::read_to_string(data.join("dev-token"))
        .unwrap()
        .trim()
        .to_string();
    DevWithFiles {
        running,
        token,
        files,
        tmp,
    }
}

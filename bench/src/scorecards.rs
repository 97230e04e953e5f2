//! `catalog-bench --scorecards`: an org of N entities (with GitHub facts
//! for every component) and a 20-check scorecard, measured through the
//! HTTP API of `catalog dev`: the full evaluation after a definition is
//! published or changed, change-to-visible latency of one entity's result,
//! rollup, results and trend query latencies; then the full re-evaluation
//! alone, inside the fold, on the same store. A measurement, not a test.

use crate::{fmt_d, generate_org, measure, percentile, total_items};
use anyhow::{Context, bail};
use catalog::config::Config;
use catalog::services::{self, Shutdown};
use eventlog::EventLog;
use projector::{Fold, RocksStore, Store};
use proto::{
    FactEvent, FactState, ScorecardChange, ScorecardEvent, SourceId, SubjectKey, Versioned,
};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// The scorecard measured: 20 checks over fields, relations and facts.
pub const CARD: &str = r#"id: bench
title: Bench readiness
applies_to: {kind: component}
levels: [bronze, silver, gold]
checks:
  - {id: owner-is-group, level: bronze, weight: 3, rule: {relation: ownedBy, target_kind: group}}
  - {id: owner-exists, level: bronze, rule: {relation: ownedBy, target_kind: group, target: {field: metadata.name, exists: true}}}
  - {id: description, level: bronze, rule: {field: metadata.description, exists: true}}
  - {id: system, level: bronze, weight: 2, rule: {relation: partOf, target_kind: system}}
  - {id: lifecycle, level: bronze, rule: {field: spec.lifecycle, in: [experimental, production, deprecated]}}
  - {id: type, level: bronze, rule: {field: spec.type, in: [service, website, library]}}
  - {id: slug, level: bronze, rule: {field: 'metadata.annotations["github.com/project-slug"]', exists: true}}
  - {id: tags, level: silver, rule: {field: metadata.tags, exists: true}}
  - {id: named, level: silver, rule: {field: metadata.name, matches: "^svc-[0-9]+$"}}
  - {id: provides-api, level: silver, rule: {relation: providesApi}}
  - {id: depends-on-resource, level: silver, rule: {relation: dependsOn, target_kind: resource}}
  - {id: readme, level: silver, rule: {fact: github.files.README, exists: true}}
  - {id: codeowners, level: silver, rule: {fact: github.files.CODEOWNERS, exists: true}}
  - {id: visibility, level: silver, rule: {fact: github.visibility, in: [private, internal]}}
  - {id: protected, level: gold, weight: 2, rule: {fact: github.branch_protection.protected, equals: true}}
  - {id: reviews, level: gold, rule: {fact: github.branch_protection.required_reviews, gte: 2}}
  - {id: no-critical, level: gold, weight: 2, rule: {fact: github.dependabot_alerts.critical, lte: 0}}
  - {id: recent-push, level: gold, rule: {fact: github.last_push, within: 90d}}
  - {id: domain, level: gold, rule: {relation: partOf, target_kind: system, target: {relation: partOf, target_kind: domain}}}
  - id: runbook
    level: gold
    rule:
      any:
        - {field: "metadata.links[*].type", equals: runbook}
        - {field: 'metadata.annotations["pagerduty.com/service-id"]', exists: true}
"#;

/// Waits until this process has used under a tenth of a core for 5 s
/// (at most `limit`); how long it waited.
pub fn until_quiet(limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let c0 = crate::realistic::cpu_seconds();
        std::thread::sleep(Duration::from_secs(5));
        if crate::realistic::cpu_seconds() - c0 < 0.5 || t.elapsed() > limit {
            return t.elapsed();
        }
    }
}

/// Facts for every generated component's repository, written to the log
/// before the pipeline starts (the embedded log has one writer at a time).
fn write_facts(data: &Path, names: &[String], partitions: u32) -> anyhow::Result<()> {
    let dir = data.join("log");
    std::fs::create_dir_all(&dir)?;
    let log = eventlog::embedded::EmbeddedLog::open(&dir, &proto::topics::ALL, partitions)?;
    let now = chrono::Utc::now();
    for (i, name) in names.iter().enumerate() {
        let visibility = ["private", "public", "internal"][i % 3];
        let files = if i % 4 == 0 {
            json!({"README": "README.md"})
        } else {
            json!({"README": "README.md", "CODEOWNERS": ".github/CODEOWNERS"})
        };
        let facts = serde_json::from_value(json!({
            "kind": "github_repository", "host": "github.com", "owner": "acme", "name": name,
            "id": i, "url": format!("https://github.com/acme/{name}"), "default_branch": "main",
            "branch": "main", "visibility": visibility,
            "archived": false, "fork": false, "topics": [], "primary_language": "Rust",
            "languages": {"Rust": 1000}, "pushed_at": now - chrono::Duration::days((i % 120) as i64),
            "files": files,
            "descriptors": [],
            "branch_protection": {"access": "granted", "protected": i % 5 != 0,
                "required_reviews": i % 3, "require_code_owner_reviews": false,
                "dismiss_stale_reviews": false, "enforce_admins": false,
                "required_status_checks": [], "allow_force_pushes": false, "allow_deletions": false},
            "dependabot_alerts": {"access": "granted", "critical": i % 7 / 6, "high": 0,
                "medium": 0, "low": 0, "total": i % 7 / 6},
        }))?;
        let ev = FactEvent {
            event_id: uuid::Uuid::now_v7(),
            source: SourceId::new("bench-github"),
            observed_at: now,
            subject: SubjectKey::github_repository("github.com", "acme", name),
            state: FactState::Present { facts },
        };
        log.append(
            proto::topics::FACTS,
            ev.subject.as_str().as_bytes(),
            &ev.encode(),
        )?;
    }
    log.flush(Duration::from_secs(30))?;
    Ok(())
}

/// Polls `url` until `done` holds for its body; returns the time taken.
fn until(
    agent: &ureq::Agent,
    url: &str,
    limit: Duration,
    done: impl Fn(u16, &str) -> bool,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let mut r = agent.get(url).call()?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string()?;
        if done(status, &body) {
            return Ok(t.elapsed());
        }
        if t.elapsed() > limit {
            bail!(
                "{url}: not as expected after {limit:?}: {status} {}",
                &body[..body.len().min(300)]
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub async fn run(
    n: usize,
    per_file: usize,
    requests: usize,
    edits: usize,
    root: &Path,
) -> anyhow::Result<()> {
    let org = root.join("org");
    let cards = root.join("cards");
    std::fs::create_dir_all(&cards)?;
    let data = root.join("data");
    let t = Instant::now();
    let targets = generate_org(&org, n, per_file)?;
    let components: Vec<String> = (0..n)
        .filter(|i| i % 5 >= 2)
        .map(|i| format!("svc-{i}"))
        .collect();
    let partitions = Config::default().log.partitions;
    write_facts(&data, &components, partitions)?;
    println!(
        "generated {n} entities ({} components, each with GitHub facts) in {:.1} s",
        components.len(),
        t.elapsed().as_secs_f64()
    );
    let mut cfg = Config {
        data_dir: data.clone(),
        ..Config::default()
    };
    cfg.serve.listen = "127.0.0.1:0".parse()?;
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("bench", &org));
    cfg.ingest.scorecards.dir = Some(cards.clone());
    cfg.ingest.scorecards.builtin = false;
    cfg.ingest.scorecards.poll_secs = 1;
    let shutdown = Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sd = shutdown.clone();
    let pipeline = tokio::spawn(services::run_dev(cfg, None, sd, Some(tx)));
    let addr = rx.await.context("the pipeline did not start")?;
    let base = format!("http://{addr}");
    let cards_dir = cards.clone();
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let t = Instant::now();
        while total_items(&agent, &base)? < n as u64 {
            if t.elapsed() > Duration::from_secs(1800) {
                bail!("not all entities visible after 30 minutes");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("catalog loaded: {n} entities queryable after {:.1} s", t.elapsed().as_secs_f64());
        // Publish the scorecard: everything is evaluated in the batch that
        // makes the definition visible.
        std::fs::write(cards_dir.join("bench.yaml"), CARD)?;
        let url = format!("{base}/api/scorecards/bench");
        let first = until(&agent, &url, Duration::from_secs(600), |s, _| s == 200)?;
        let (_, rollup) = crate::get_json(&agent, &format!("{base}/api/scorecards/bench/rollup"))?;
        println!(
            "definition published -> {} components evaluated x 20 checks, visible: {:.2} s (includes up to 1 s of directory polling)",
            rollup["groups"][0]["entities"], first.as_secs_f64()
        );
        // Change it: every result is evaluated again.
        std::fs::write(cards_dir.join("bench.yaml"), CARD.replace("weight: 3", "weight: 4"))?;
        let again = until(&agent, &url, Duration::from_secs(600), |_, b| b.contains("\"weight\":4"))?;
        println!(
            "definition changed -> full re-evaluation visible: {:.2} s (includes up to 1 s of directory polling)",
            again.as_secs_f64()
        );
        // Right after the first evaluation, RocksDB is still compacting
        // what it wrote (and the load before it) and takes a core from the
        // fold. Once the process is quiet, change it again.
        let quiet = until_quiet(Duration::from_secs(600));
        std::fs::write(cards_dir.join("bench.yaml"), CARD.replace("weight: 3", "weight: 5"))?;
        let settled = until(&agent, &url, Duration::from_secs(600), |_, b| b.contains("\"weight\":5"))?;
        println!(
            "definition changed, store settled ({:.0} s after the last change) -> full re-evaluation visible: {:.2} s (includes up to 1 s of directory polling)",
            quiet.as_secs_f64(),
            settled.as_secs_f64()
        );
        // One entity changes: its result follows.
        let mut lat = Vec::new();
        for (k, (path, r)) in targets.iter().take(edits).enumerate() {
            let name = r.rsplit('/').next().unwrap_or_default().to_string();
            let text = std::fs::read_to_string(path)?;
            let needle = format!("  name: {name}\n  description: Service number {}\n", &name[4..]);
            if !text.contains(&needle) {
                continue;
            }
            let jitter = (k as u64 * 7919 + u64::from(std::process::id())) % 1000;
            std::thread::sleep(Duration::from_millis(jitter));
            std::fs::write(path, text.replacen(&needle, &format!("  name: {name}\n"), 1))?;
            let card = format!("{base}/api/scorecards/entity/component/default/{name}");
            lat.push(until(&agent, &card, Duration::from_secs(60), |_, b| {
                serde_json::from_str::<serde_json::Value>(b).is_ok_and(|v| {
                    v["scorecards"][0]["checks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["id"] == "description" && c["status"] == "fail")
                })
            })?);
        }
        lat.sort();
        println!(
            "entity change -> new result visible via the API, over {} edits: p50 {} max {} (files polled every 1 s)",
            lat.len(),
            fmt_d(percentile(&lat, 0.5)),
            fmt_d(lat.last().copied().unwrap_or_default())
        );
        // Rollups are cached until the store changes; the first request
        // after a change renders them: measure that after each of 5 edits.
        let mut cold = Vec::new();
        for (k, (path, r)) in targets.iter().skip(edits).take(5).enumerate() {
            let name = r.rsplit('/').next().unwrap_or_default().to_string();
            let text = std::fs::read_to_string(path)?;
            let needle = format!("  name: {name}\n");
            std::fs::write(path, text.replacen(&needle, &format!("{needle}  title: cold-{k}\n"), 1))?;
            let url = format!("{base}/api/catalog/entities/by-name/component/default/{name}");
            until(&agent, &url, Duration::from_secs(60), |_, b| b.contains(&format!("cold-{k}")))?;
            std::thread::sleep(Duration::from_millis(200));
            let t = Instant::now();
            agent
                .get(&format!("{base}/api/scorecards/bench/rollup?by=owner"))
                .call()?
                .body_mut()
                .read_to_string()?;
            cold.push(t.elapsed());
        }
        cold.sort();
        println!(
            "rollup by owner, first request after a change (uncached), over {}: p50 {} max {}",
            cold.len(),
            fmt_d(percentile(&cold, 0.5)),
            fmt_d(cold.last().copied().unwrap_or_default())
        );
        let (_, owners) = crate::get_json(&agent, &format!("{base}/api/scorecards/bench/rollup?by=owner"))?;
        let (_, systems) = crate::get_json(&agent, &format!("{base}/api/scorecards/bench/rollup?by=system"))?;
        let cases: Vec<(String, String, usize)> = vec![
            ("rollup, whole scorecard (repeated: cached until the next change)".into(), format!("{base}/api/scorecards/bench/rollup"), requests),
            (
                format!("rollup by owner ({} groups)", owners["groups"].as_array().map_or(0, Vec::len)),
                format!("{base}/api/scorecards/bench/rollup?by=owner"),
                requests,
            ),
            (
                format!("rollup by system ({} systems)", systems["groups"].as_array().map_or(0, Vec::len)),
                format!("{base}/api/scorecards/bench/rollup?by=system"),
                requests / 4,
            ),
            (
                "rollup by system without per-check rates".into(),
                format!("{base}/api/scorecards/bench/rollup?by=system&checks=false"),
                requests / 4,
            ),
            (
                "rollup of one owner group (group=team-1)".into(),
                format!("{base}/api/scorecards/bench/rollup?by=owner&group=team-1"),
                requests,
            ),
            (
                "results page (level=gold, 100)".into(),
                format!("{base}/api/scorecards/bench/entities?level=gold"),
                requests / 10,
            ),
            (
                "one entity's cards".into(),
                format!("{base}/api/scorecards/entity/component/default/svc-2"),
                requests,
            ),
            (
                "trend by owner, 30 days, from history".into(),
                format!("{base}/api/scorecards/bench/trend?by=owner&interval=day"),
                10,
            ),
        ];
        for (label, url, count) in cases {
            let d = measure(&agent, &[url], count.max(5))?;
            println!(
                "{label}: p50 {} p99 {} ({} requests, 1 connection)",
                fmt_d(percentile(&d, 0.5)),
                fmt_d(percentile(&d, 0.99)),
                count.max(5)
            );
        }
        Ok(())
    })
    .await?;
    shutdown.trigger();
    pipeline.await??;
    measured?;
    // The full re-evaluation alone, in the fold, on the same store.
    let store = RocksStore::open(&data.join("projections"), 256 << 20)?;
    let part = projector::run::ProjectorConfig::default().part_entities;
    let (evaluated, written, keys) = reevaluate(&store, 6, part)?;
    println!(
        "full re-evaluation in the fold after a definition change: {:.2} s ({:.2} s evaluating and writing parts, {:.2} s writing the last {keys} keys)",
        (evaluated + written).as_secs_f64(),
        evaluated.as_secs_f64(),
        written.as_secs_f64()
    );
    Ok(())
}

/// Publishes [`CARD`] with the first check's weight set to `weight` into
/// `store` through a fold of its own, as the projector folds a definition
/// (alone; its results written `part` at a time as they are evaluated, or
/// in one write if `part` is 0). Returns the time folding (parts written
/// included), the time writing the rest, and how many keys that was.
pub fn reevaluate(
    store: &RocksStore,
    weight: u32,
    part: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let event = ScorecardEvent {
        event_id: uuid::Uuid::now_v7(),
        source: SourceId::new("scorecards"),
        at: chrono::Utc::now(),
        by: None,
        change: ScorecardChange::DefinitionsPublished {
            files: [(
                "bench.yaml".to_string(),
                CARD.replace("weight: 3", &format!("weight: {weight}")),
            )]
            .into_iter()
            .collect(),
        },
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    // As the projector does when it starts (a store from an older build).
    projector::scorecard::step::complete_history_ends(store)?;
    let t = Instant::now();
    let mut fold = Fold::new(store);
    if part > 0 {
        fold.evaluate_in_parts(part, &stop);
    }
    fold.apply_scorecard(&event)?;
    let changes = fold.finish()?;
    let evaluated = t.elapsed();
    let keys = changes.len();
    let t = Instant::now();
    store.write(changes)?;
    Ok((evaluated, t.elapsed(), keys))
}

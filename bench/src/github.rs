//! `catalog-bench --github-repos N`: the GitHub source against a simulated
//! organization of N repositories (real response shapes, ETags, rate-limit
//! accounting): discovery, a re-poll of the unchanged org, a re-poll after
//! K pushes, and a webhook-scoped sync of one push. Reports requests made,
//! rate-limit points spent, time and observations emitted for each.

use eventlog::EventLog;
use eventlog::embedded::EmbeddedLog;
use githubsim::{RepoSpec, Sim, TeamSpec, UserSpec};
use ingest::github::config::GithubConfig;
use ingest::github::webhook::{Delivery, RepoRef};
use ingest::{Ingest, IngestConfig, SourceConfig, SyncReport};
use std::sync::Arc;
use std::time::Instant;

fn component(name: &str, rev: u32) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  \
         annotations:\n    github.com/project-slug: acme/{name}\n    revision: \"{rev}\"\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: group:default/team-{}\n",
        name.len() % 7
    )
}

fn line(
    what: &str,
    r: &SyncReport,
    secs: f64,
    before: &githubsim::Stats,
    after: &githubsim::Stats,
) {
    println!(
        "{what}: {:.2} s, {} requests ({} answered 304), {} rate-limit points, {} observations + {} fact messages emitted{}",
        secs,
        after.requests - before.requests,
        after.not_modified - before.not_modified,
        after.points - before.points,
        r.emitted(),
        r.facts_emitted,
        if r.complete { "" } else { " (INCOMPLETE)" },
    );
}

/// Runs the GitHub benchmark.
pub fn run(repos: usize, changed: usize) -> anyhow::Result<()> {
    let sim = Sim::new();
    sim.require_token("bench-token");
    sim.set_quota(1_000_000, 1_000_000, 3600);
    let t = Instant::now();
    for i in 0..repos {
        let name = format!("svc-{i:05}");
        let mut r = RepoSpec::new(&name);
        r.languages = vec![("Go".into(), 10_000 + i as u64)];
        r.files.insert("README.md".into(), format!("# {name}\n"));
        // Four in five repositories are in the catalog.
        if i % 5 != 4 {
            r.files
                .insert("catalog-info.yaml".into(), component(&name, 0));
        }
        sim.add_repo("acme", r);
    }
    for t in 0..20 {
        let members: Vec<String> = (0..10).map(|u| format!("user-{}", t * 10 + u)).collect();
        for m in &members {
            sim.put_member(
                "acme",
                UserSpec {
                    login: m.clone(),
                    name: Some(m.to_uppercase()),
                    email: None,
                },
            );
        }
        sim.put_team(
            "acme",
            TeamSpec {
                slug: format!("team-{t}"),
                name: format!("Team {t}"),
                description: None,
                parent: (t > 0).then(|| "team-0".to_string()),
                members,
            },
        );
    }
    let server = sim.spawn();
    println!(
        "simulated org: {repos} repositories ({} with a descriptor), 20 teams, 200 members (built in {:.1} s)",
        (0..repos).filter(|i| i % 5 != 4).count(),
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("token"), "bench-token")?;
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(
        &dir.path().join("log"),
        &proto::topics::ALL,
        4,
    )?);
    let g = GithubConfig::new(
        &["acme"],
        Some(&server.base_url()),
        &dir.path().join("token"),
    );
    let ingest = Ingest::open(
        IngestConfig {
            sources: vec![SourceConfig::github("github", g)],
            ..IngestConfig::default()
        },
        log,
        &dir.path().join("state"),
    )?;
    let sync = |what: &str| -> anyhow::Result<()> {
        let before = sim.stats();
        let t = Instant::now();
        let r = ingest.sync_now(Some("github"))?.pop().expect("one report");
        line(what, &r, t.elapsed().as_secs_f64(), &before, &sim.stats());
        Ok(())
    };
    sync("discovery (first poll)")?;
    sync("re-poll, nothing changed")?;
    for i in 0..changed {
        let idx = (i * repos / changed.max(1)) / 5 * 5; // a repository with a descriptor
        let name = format!("svc-{idx:05}");
        sim.set_file(
            "acme",
            &name,
            "catalog-info.yaml",
            Some(&component(&name, 1)),
        );
    }
    sync(&format!("re-poll after {changed} pushes"))?;

    // One push through the webhook path: a scoped sync of that repository.
    let name = format!("svc-{:05}", 5);
    sim.set_file(
        "acme",
        &name,
        "catalog-info.yaml",
        Some(&component(&name, 2)),
    );
    let source = ingest.github_sources()[0].1.clone();
    let id = 1000 + 5;
    source.note(&Delivery::Push {
        repo: RepoRef {
            id,
            owner: "acme".into(),
            name: name.clone(),
            default_branch: "main".into(),
        },
        branch: "main".into(),
        paths: vec!["catalog-info.yaml".into()],
        paths_incomplete: false,
    });
    let before = sim.stats();
    let t = Instant::now();
    let r = ingest.sync_pending(None)?.pop().expect("a pending sync");
    line(
        "webhook push (scoped sync)",
        &r,
        t.elapsed().as_secs_f64(),
        &before,
        &sim.stats(),
    );
    Ok(())
}

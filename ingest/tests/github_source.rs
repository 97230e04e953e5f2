//! The `github` source against a simulated GitHub (real response shapes and
//! headers: ETag/304, Link pagination, rate-limit headers, 301 on renames)
//! into an embedded event log.

use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, Reader};
use githubsim::{Fault, Protection, RepoSpec, Sim, SimServer, TeamSpec, UserSpec};
use ingest::github::config::GithubConfig;
use ingest::github::webhook;
use ingest::{Ingest, IngestConfig, SourceConfig, SyncReport};
use proto::facts::RepoTeams;
use proto::{
    Access, Content, FactEvent, FactState, Facts, LocationKey, Observation, ObservedContent,
    Versioned,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const TOKEN: &str = "ghp_test_token";
const SECRET: &str = "It's a Secret to Everybody";

fn component(name: &str, title: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  title: {title}\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: group:default/platform\n"
    )
}

/// An org of `n` repositories; every `every`-th one has a descriptor.
fn org(sim: &Sim, n: usize, every: usize) {
    for i in 0..n {
        let name = format!("svc-{i:04}");
        let mut r = RepoSpec::new(&name);
        r.languages = vec![("Rust".into(), 1000 + i as u64)];
        r.files.insert("README.md".into(), format!("# {name}\n"));
        if i % every == 0 {
            r.files
                .insert("catalog-info.yaml".into(), component(&name, "first"));
        }
        if i == 0 {
            r.files
                .insert(".github/CODEOWNERS".into(), "* @acme/platform\n".into());
            r.protection = Protection::Protected {
                required_reviews: 2,
                enforce_admins: true,
                required_status_checks: vec!["ci/build".into()],
            };
            r.alerts = vec!["critical".into(), "high".into(), "high".into()];
            // Payments owns it; platform reads it.
            r.teams = vec![
                ("payments".into(), "admin".into()),
                ("platform".into(), "pull".into()),
            ];
        }
        if i == 1 {
            r.protection = Protection::Forbidden;
        }
        sim.add_repo("acme", r);
    }
    sim.put_member(
        "acme",
        UserSpec {
            login: "ann".into(),
            name: Some("Ann Example".into()),
            email: Some("ann@acme.test".into()),
        },
    );
    sim.put_member(
        "acme",
        UserSpec {
            login: "bob".into(),
            name: None,
            email: None,
        },
    );
    sim.put_team(
        "acme",
        TeamSpec {
            slug: "platform".into(),
            name: "Platform".into(),
            description: Some("Paved roads".into()),
            parent: None,
            members: vec!["ann".into()],
        },
    );
    sim.put_team(
        "acme",
        TeamSpec {
            slug: "payments".into(),
            name: "Payments".into(),
            description: None,
            parent: Some("platform".into()),
            members: vec!["ann".into(), "bob".into()],
        },
    );
}

struct Harness {
    _dir: tempfile::TempDir,
    server: SimServer,
    log: Arc<EmbeddedLog>,
    obs: Box<dyn Reader>,
    facts: Box<dyn Reader>,
    ingest: Arc<Ingest>,
}

fn config(
    dir: &std::path::Path,
    base_url: &str,
    tweak: impl FnOnce(&mut GithubConfig),
) -> GithubConfig {
    // Secrets come from files, as mounted secrets do in production.
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let secret = dir.join("webhook-secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut g = GithubConfig::new(&["acme"], Some(base_url), &token);
    g.webhook_secret_file = Some(secret);
    g.rate_limit.error_backoff_ms = 50;
    g.rate_limit.max_retries = 2;
    g.rate_limit.secondary_backoff_secs = 1;
    tweak(&mut g);
    g
}

/// Ingest with the one GitHub source `gh`, its state under `dir`.
fn open_ingest(dir: &std::path::Path, log: Arc<EmbeddedLog>, g: GithubConfig) -> Ingest {
    Ingest::open(
        IngestConfig {
            sources: vec![SourceConfig::github("gh", g)],
            ..IngestConfig::default()
        },
        log,
        &dir.join("state"),
    )
    .unwrap()
}

impl Harness {
    fn new(n: usize, every: usize, tweak: impl FnOnce(&mut GithubConfig)) -> Self {
        let sim = Sim::new();
        sim.require_token(TOKEN);
        org(&sim, n, every);
        let server = sim.spawn();
        let dir = tempfile::tempdir().unwrap();
        let log =
            Arc::new(EmbeddedLog::open(&dir.path().join("log"), &proto::topics::ALL, 2).unwrap());
        let obs = log.subscribe(proto::topics::OBSERVATIONS, "t").unwrap();
        let facts = log.subscribe(proto::topics::FACTS, "t").unwrap();
        let g = config(dir.path(), &server.base_url(), tweak);
        let ingest = open_ingest(dir.path(), log.clone(), g);
        Harness {
            _dir: dir,
            server,
            log,
            obs,
            facts,
            ingest: Arc::new(ingest),
        }
    }

    fn sim(&self) -> &Sim {
        self.server.sim()
    }

    fn sync(&self) -> SyncReport {
        self.ingest.sync_now(Some("gh")).unwrap().pop().unwrap()
    }

    fn observed(&mut self) -> BTreeMap<String, Observation> {
        let mut out = BTreeMap::new();
        while let Ok(batch) = self.obs.poll(Duration::from_millis(50)) {
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let o = Observation::decode(&r.value).unwrap();
                out.insert(o.location.as_str().to_string(), o);
            }
        }
        out
    }

    fn facts(&mut self) -> BTreeMap<String, FactEvent> {
        let mut out = BTreeMap::new();
        while let Ok(batch) = self.facts.poll(Duration::from_millis(50)) {
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let f = FactEvent::decode(&r.value).unwrap();
                assert_eq!(r.key, f.subject.as_str().as_bytes());
                out.insert(f.subject.as_str().to_string(), f);
            }
        }
        out
    }

    /// Posts a delivery to the webhook route; returns the status.
    fn deliver(&self, event: &str, body: &str, signature: Option<String>) -> u16 {
        let router = ingest::http::router(self.ingest.clone());
        let mut req = axum::http::Request::post("/webhooks/github")
            .header("x-github-event", event)
            .header("x-github-delivery", "d-1")
            .header("content-type", "application/json");
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        let req = req.body(axum::body::Body::from(body.to_string())).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { router.oneshot(req).await.unwrap().status().as_u16() })
    }
}

fn loc(repo: &str) -> String {
    format!("url:https://github.com/acme/{repo}/blob/main/catalog-info.yaml")
}

fn text(o: &Observation) -> &str {
    match &o.content {
        ObservedContent::Present {
            content: Content::Utf8 { text },
        } => text,
        other => panic!("not text: {other:?}"),
    }
}

fn repo_facts(f: &FactEvent) -> &proto::RepositoryFacts {
    match &f.state {
        FactState::Present {
            facts: Facts::GithubRepository(r),
        } => r,
        other => panic!("not repository facts: {other:?}"),
    }
}

/// A repository's teams as (slug, permission, group), if read.
fn teams_of(f: &proto::RepositoryFacts) -> Vec<(&str, &str, &str)> {
    match &f.teams {
        Access::Granted(t) => t
            .teams
            .iter()
            .map(|t| (t.slug.as_str(), t.permission.as_str(), t.group.as_str()))
            .collect(),
        other => panic!("teams not read: {other:?}"),
    }
}

#[test]
fn discovers_a_paginated_org_then_a_repoll_costs_nothing() {
    let mut h = Harness::new(230, 10, |_| {});
    let r = h.sync();
    assert!(r.complete, "{:?}", r.problems);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let obs = h.observed();
    // 23 descriptors, 2 teams, 2 users.
    let descriptors: Vec<&String> = obs.keys().filter(|k| k.starts_with("url:")).collect();
    assert_eq!(descriptors.len(), 23, "{descriptors:?}");
    assert!(text(&obs[&loc("svc-0010")]).contains("name: svc-0010"));
    assert_eq!(
        obs[&loc("svc-0010")].origin,
        LocationKey::new("url:https://github.com/acme")
    );
    let team = text(&obs["github-team:github.com/acme/payments"]);
    let team: serde_json::Value = serde_json::from_str(team).unwrap();
    assert_eq!(team["spec"]["parent"], "group:default/platform");
    let ann: serde_json::Value =
        serde_json::from_str(text(&obs["github-user:github.com/ann"])).unwrap();
    assert_eq!(ann["spec"]["profile"]["displayName"], "Ann Example");
    assert_eq!(
        ann["spec"]["memberOf"],
        serde_json::json!(["group:default/payments", "group:default/platform"])
    );
    // Three pages of repositories were read.
    let stats = h.sim().stats();
    let pages = stats
        .paths
        .iter()
        .filter(|p| p.starts_with("/orgs/acme/repos"))
        .count();
    assert_eq!(pages, 3, "{:?}", &stats.paths[..5]);

    // Facts: every repository, with or without a descriptor.
    let facts = h.facts();
    assert_eq!(facts.len(), 230);
    let f0 = repo_facts(&facts["github:github.com/acme/svc-0000"]);
    assert_eq!(f0.descriptors, vec![LocationKey::new(loc("svc-0000"))]);
    assert_eq!(
        f0.files.get("CODEOWNERS").map(String::as_str),
        Some(".github/CODEOWNERS")
    );
    assert_eq!(
        f0.files.get("README").map(String::as_str),
        Some("README.md")
    );
    match &f0.branch_protection {
        Access::Granted(p) => assert_eq!((p.protected, p.required_reviews), (true, 2)),
        other => panic!("{other:?}"),
    }
    match &f0.dependabot_alerts {
        Access::Granted(a) => assert_eq!((a.critical, a.high, a.total), (1, 2, 3)),
        other => panic!("{other:?}"),
    }
    let f1 = repo_facts(&facts["github:github.com/acme/svc-0001"]);
    assert!(f1.descriptors.is_empty(), "no descriptor: a coverage gap");
    assert!(matches!(f1.branch_protection, Access::Denied { .. }));
    let f2 = repo_facts(&facts["github:github.com/acme/svc-0002"]);
    match &f2.branch_protection {
        Access::Granted(p) => assert!(!p.protected),
        other => panic!("{other:?}"),
    }
    assert_eq!(f2.languages.get("Rust"), Some(&1002));
    // Teams with access, with the Group the org data makes of each.
    assert_eq!(
        teams_of(f0),
        vec![
            ("payments", "admin", "group:default/payments"),
            ("platform", "pull", "group:default/platform"),
        ]
    );
    assert_eq!(
        f2.teams,
        Access::Granted(RepoTeams { teams: vec![] }),
        "no team: an empty list, read"
    );

    // A re-poll of the unchanged org: three 304s, no point, nothing shipped.
    h.sim().reset_stats();
    let r = h.sync();
    assert_eq!((r.emitted(), r.facts_emitted), (0, 0));
    let stats = h.sim().stats();
    assert_eq!(stats.requests, 3, "{:?}", stats.paths);
    assert_eq!((stats.not_modified, stats.points), (3, 0));
    assert!(h.observed().is_empty());

    // A push to one repository: only it is read again, one observation.
    h.sim().set_file(
        "acme",
        "svc-0020",
        "catalog-info.yaml",
        Some(&component("svc-0020", "second")),
    );
    h.sim().reset_stats();
    let r = h.sync();
    assert_eq!((r.emitted_changed, r.emitted()), (1, 1));
    let obs = h.observed();
    assert!(text(&obs[&loc("svc-0020")]).contains("title: second"));
    let stats = h.sim().stats();
    assert!(stats.points <= 10, "{stats:?}");
}

#[test]
fn repository_teams_are_facts_and_follow_changes_of_access() {
    // Facts are re-read at every sync here.
    let mut h = Harness::new(3, 1, |g| g.facts_interval_secs = 0);
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{:?}", r.problems);
    let facts = h.facts();
    let f1 = repo_facts(&facts["github:github.com/acme/svc-0001"]);
    assert!(teams_of(f1).is_empty());
    // One request for the teams of each repository read.
    let stats = h.sim().stats();
    let teams: Vec<&String> = stats
        .paths
        .iter()
        .filter(|p| p.starts_with("/repos/") && p.contains("/teams"))
        .collect();
    assert_eq!(teams.len(), 3, "{teams:?}");
    assert!(teams.iter().all(|p| p.ends_with("/teams?per_page=100")));

    // Payments loses svc-0000 and starts pushing to svc-0001.
    h.sim()
        .set_repo_teams("acme", "svc-0000", vec![("platform".into(), "pull".into())]);
    h.sim()
        .set_repo_teams("acme", "svc-0001", vec![("payments".into(), "push".into())]);
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.facts_emitted, 2, "{r:?}");
    let facts = h.facts();
    assert_eq!(
        teams_of(repo_facts(&facts["github:github.com/acme/svc-0000"])),
        vec![("platform", "pull", "group:default/platform")]
    );
    assert_eq!(
        teams_of(repo_facts(&facts["github:github.com/acme/svc-0001"])),
        vec![("payments", "push", "group:default/payments")]
    );
    assert!(!facts.contains_key("github:github.com/acme/svc-0002"));
}

#[test]
fn rate_limits_are_waited_out_and_the_sync_completes() {
    let mut h = Harness::new(30, 10, |_| {});
    h.sim().fail_next(
        "/orgs/acme/repos",
        Fault::SecondaryLimit {
            retry_after_secs: 1,
            status: 403,
        },
    );
    h.sim().fail_next(
        "/repos/acme/svc-0010/contents/catalog-info.yaml",
        Fault::PrimaryExhausted { reset_in_secs: 1 },
    );
    let started = Instant::now();
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{:?}", r.problems);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for retry-after"
    );
    assert_eq!(
        h.observed()
            .keys()
            .filter(|k| k.starts_with("url:"))
            .count(),
        3
    );
    let status = serde_json::to_value(h.ingest.status()).unwrap();
    let requests = &status[0]["details"]["requests"];
    assert!(requests["rate_limited"].as_u64().unwrap() >= 2, "{status}");
    assert!(
        status[0]["details"]["rate_limit"][0]["remaining"]
            .as_u64()
            .is_some(),
        "{status}"
    );
}

#[test]
fn a_server_error_mid_listing_removes_nothing() {
    let mut h = Harness::new(250, 10, |g| g.org_data = false);
    assert!(h.sync().complete);
    h.observed();
    assert_eq!(h.facts().len(), 250);
    h.sim().delete_repo("acme", "svc-0000");
    h.sim().delete_repo("acme", "svc-0010");
    // Page 2 fails on every attempt.
    for _ in 0..3 {
        h.sim().fail_next(
            "/orgs/acme/repos?type=all&sort=created&direction=asc&per_page=100&page=2",
            Fault::Status(502),
        );
    }
    let r = h.sync();
    assert!(!r.complete);
    assert_eq!(r.emitted_removed, 0);
    assert!(r.problems[0].contains("502"), "{:?}", r.problems);
    assert!(h.observed().is_empty());
    assert!(h.facts().is_empty(), "no fact removal either");
    // Once GitHub answers again, the two deleted repositories go.
    let r = h.sync();
    assert!(r.complete, "{:?}", r.problems);
    assert_eq!(r.emitted_removed, 2);
    let obs = h.observed();
    assert_eq!(obs[&loc("svc-0000")].content, ObservedContent::Removed);
    let facts = h.facts();
    assert_eq!(
        facts["github:github.com/acme/svc-0010"].state,
        FactState::Removed
    );
}

#[test]
fn webhooks_need_a_good_signature_and_act_on_one_repository() {
    let mut h = Harness::new(20, 5, |_| {});
    h.sync();
    h.observed();
    h.sim().set_file(
        "acme",
        "svc-0005",
        "catalog-info.yaml",
        Some(&component("svc-0005", "pushed")),
    );
    let push = serde_json::json!({
        "ref": "refs/heads/main",
        "before": "a", "after": "b", "created": false, "deleted": false, "forced": false,
        "repository": {"id": 1005, "name": "svc-0005", "full_name": "acme/svc-0005",
                        "owner": {"login": "acme"}, "default_branch": "main"},
        "commits": [{"id": "b", "added": [], "removed": [], "modified": ["catalog-info.yaml"]}],
        "head_commit": {"id": "b", "added": [], "removed": [], "modified": ["catalog-info.yaml"]}
    })
    .to_string();
    // Bad and missing signatures are refused; nothing is queued.
    let bad = webhook::sign(b"wrong secret", push.as_bytes());
    assert_eq!(h.deliver("push", &push, Some(bad)), 401);
    assert_eq!(h.deliver("push", &push, None), 401);
    assert!(h.ingest.sync_pending(None).unwrap().is_empty());
    // A good one queues the repository; the scoped sync reads it alone.
    let good = webhook::sign(SECRET.as_bytes(), push.as_bytes());
    assert_eq!(h.deliver("push", &push, Some(good)), 202);
    h.sim().reset_stats();
    let reports = h.ingest.sync_pending(None).unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].scoped);
    assert_eq!(reports[0].emitted(), 1);
    let obs = h.observed();
    assert!(text(&obs[&loc("svc-0005")]).contains("title: pushed"));
    let stats = h.sim().stats();
    assert!(
        !stats
            .paths
            .iter()
            .any(|p| p.starts_with("/orgs/acme/repos")),
        "no org listing: {:?}",
        stats.paths
    );
}

#[test]
fn a_renamed_repository_moves_its_descriptor() {
    let mut h = Harness::new(10, 5, |_| {});
    h.sync();
    let before = h.observed();
    assert!(before.contains_key(&loc("svc-0005")));
    h.sim().rename_repo("acme", "svc-0005", "payments");
    let renamed = serde_json::json!({
        "action": "renamed",
        "changes": {"repository": {"name": {"from": "svc-0005"}}},
        "repository": {"id": 1005, "name": "payments", "full_name": "acme/payments",
                        "owner": {"login": "acme"}, "default_branch": "main"}
    })
    .to_string();
    let sig = webhook::sign(SECRET.as_bytes(), renamed.as_bytes());
    assert_eq!(h.deliver("repository", &renamed, Some(sig)), 202);
    let r = h.ingest.sync_pending(None).unwrap().pop().unwrap();
    assert_eq!((r.emitted_new, r.emitted_removed), (1, 1), "{r:?}");
    let obs = h.observed();
    assert_eq!(obs[&loc("svc-0005")].content, ObservedContent::Removed);
    // Same descriptor, same entity, at the new location.
    assert_eq!(
        text(&obs[&loc("payments")]),
        text(&before[&loc("svc-0005")])
    );
    let facts = h.facts();
    assert_eq!(
        facts["github:github.com/acme/svc-0005"].state,
        FactState::Removed
    );
    assert_eq!(
        repo_facts(&facts["github:github.com/acme/payments"]).id,
        1005
    );
    // A full re-poll agrees: nothing more to do.
    let r = h.sync();
    assert_eq!(r.emitted(), 0, "{r:?}");
    let _ = h.log.end_offsets(proto::topics::OBSERVATIONS).unwrap();
}

#[test]
fn a_github_app_mints_installation_tokens_and_renews_them() {
    let sim = Sim::new();
    sim.enable_app(4242, 77, "acme");
    let mut r = RepoSpec::new("svc-0");
    r.files
        .insert("catalog-info.yaml".into(), component("svc-0", "app"));
    sim.add_repo("acme", r);
    // Tokens live 1 s here; octocrab renews one that is about to expire.
    sim.set_installation_token_ttl(1);
    let server = sim.spawn();
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), &proto::topics::ALL, 1).unwrap());
    let mut g = config(dir.path(), &server.base_url(), |g| g.org_data = false);
    g.auth = ingest::github::config::GithubAuth {
        app_id: Some(4242),
        private_key_path: Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/test-app-key.pem"),
        ),
        ..Default::default()
    };
    let ingest = open_ingest(dir.path(), log.clone(), g);
    let r = ingest.sync_now(Some("gh")).unwrap().pop().unwrap();
    assert!(r.complete && r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.emitted_new, 1);
    let minted = server.sim().tokens_minted();
    assert!(minted >= 1);
    std::thread::sleep(Duration::from_millis(1500));
    let r = ingest.sync_now(Some("gh")).unwrap().pop().unwrap();
    assert!(r.complete && r.problems.is_empty(), "{:?}", r.problems);
    assert!(
        server.sim().tokens_minted() > minted,
        "an expired token was renewed"
    );
}

/// Each source runs on its own thread: a GitHub source waiting for its rate
/// limit to reset does not delay a files source's syncs, and both stop
/// promptly.
#[test]
fn a_source_waiting_on_its_rate_limit_does_not_delay_another() {
    let sim = Sim::new();
    sim.require_token(TOKEN);
    org(&sim, 3, 1);
    // No requests left for ten minutes.
    sim.set_quota(5000, 0, 600);
    let server = sim.spawn();
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), &proto::topics::ALL, 2).unwrap());
    let mut obs = log.subscribe(proto::topics::OBSERVATIONS, "t").unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let mut files = SourceConfig::files("files", &root);
    if let ingest::config::SourceKind::Files(f) = &mut files.kind {
        f.watch = false;
    }
    files.schedule = "*/1 * * * * *".into();
    let g = config(dir.path(), &server.base_url(), |_| {});
    let ingest = Arc::new(
        Ingest::open(
            IngestConfig {
                sources: vec![SourceConfig::github("gh", g), files],
                ..IngestConfig::default()
            },
            log.clone(),
            &dir.path().join("state"),
        )
        .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let (ingest, stop) = (ingest.clone(), stop.clone());
        std::thread::spawn(move || ingest.run(stop))
    };
    // The GitHub source is started first and is now waiting for the reset.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(
        root.join("a.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: a}\nspec: {type: service, lifecycle: production, owner: team-a}\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.is_empty() && Instant::now() < deadline {
        for rec in obs.poll(Duration::from_millis(100)).unwrap() {
            seen.push(Observation::decode(&rec.value).unwrap());
        }
    }
    assert_eq!(seen.len(), 1, "the files source synced: {seen:?}");
    assert!(seen[0].location.as_str().ends_with("/files/a.yaml"));
    let status = ingest.status();
    let gh = status.iter().find(|s| s.id == "gh").unwrap();
    assert!(gh.last_sync.is_none(), "GitHub is still waiting: {gh:?}");
    let fs_status = status.iter().find(|s| s.id == "files").unwrap();
    assert_eq!(fs_status.kind, "files");
    assert!(
        fs_status.syncs >= 1 && fs_status.failures == 0,
        "{fs_status:?}"
    );
    assert!(fs_status.next_sync_at.is_some());
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json[0]["details"]["rate_limit"][0]["remaining"], 0,
        "{json}"
    );
    assert_eq!(json[1]["details"]["watching"], false, "{json}");

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    runner.join().unwrap().unwrap();
}

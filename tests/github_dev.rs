//! `catalog dev` with a `github` source against a simulated GitHub, end to
//! end through HTTP: repositories, teams and members are served as
//! entities; a signed push webhook shows within a second or so; a renamed
//! repository keeps its entities' identity; and a mass disappearance is
//! held back and reported by the status API.

mod common;

use catalog::Config;
use common::*;
use githubsim::{RepoSpec, Sim, SimServer, TeamSpec, UserSpec};
use ingest::github::config::GithubConfig;
use ingest::github::webhook;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "webhook-secret";

fn component(name: &str, title: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  title: {title}\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: group:default/platform\n"
    )
}

fn world() -> SimServer {
    let sim = Sim::new();
    sim.require_token("t0ken");
    for i in 0..8 {
        let name = format!("svc-{i}");
        let mut r = RepoSpec::new(&name);
        r.files
            .insert("catalog-info.yaml".into(), component(&name, "first"));
        sim.add_repo("acme", r);
    }
    // A repository nobody described: what catalog coverage counts.
    sim.add_repo("acme", RepoSpec::new("scratch"));
    sim.put_member(
        "acme",
        UserSpec {
            login: "ann".into(),
            name: Some("Ann".into()),
            email: None,
        },
    );
    sim.put_team(
        "acme",
        TeamSpec {
            slug: "platform".into(),
            name: "Platform".into(),
            description: None,
            parent: None,
            members: vec!["ann".into()],
        },
    );
    sim.spawn()
}

fn start(dir: &Path, api: &str) -> Running {
    let token = dir.join("token");
    std::fs::write(&token, "t0ken").unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut g = GithubConfig::new(&["acme"], Some(api), &token);
    g.webhook_secret_file = Some(secret);
    let mut source = ingest::SourceConfig::github("github", g);
    // Polls are rare here: what shows quickly came through the webhook.
    source.schedule = "0 0 0 1 1 * *".into();
    let mut cfg = Config {
        data_dir: dir.join("data"),
        ..Config::default()
    };
    cfg.ingest.sources.push(source);
    run_dev(cfg)
}

fn post(agent: &ureq::Agent, url: &str, event: &str, body: &Value, secret: &str) -> u16 {
    let text = body.to_string();
    agent
        .post(url)
        .header("x-github-event", event)
        .header("x-github-delivery", "e2e")
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            &webhook::sign(secret.as_bytes(), text.as_bytes()),
        )
        .send(text.as_str())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn entity(agent: &ureq::Agent, base: &str, kind: &str, name: &str) -> (u16, Value) {
    get(
        agent,
        &format!("{base}/api/catalog/entities/by-name/{kind}/default/{name}"),
    )
}

fn repo(id: u64, name: &str) -> Value {
    json!({"id": id, "name": name, "full_name": format!("acme/{name}"),
           "owner": {"login": "acme"}, "default_branch": "main"})
}

#[test]
fn github_org_is_served_and_webhooks_show_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let server = world();
    let sim = server.sim().clone();
    let run = start(tmp.path(), &server.base_url());
    let agent = agent();
    let base = run.base.clone();

    // Discovery: components, the team and its member.
    wait_for("8 components", WAIT, || {
        (total(&agent, &base, "kind=component") == 8).then_some(())
    });
    // Catalog coverage, from the repositories' facts: 8 of 9 described.
    wait_for("catalog coverage", WAIT, || {
        let (_, m) = get(
            &agent,
            &format!("{base}/api/metrics/catalog-coverage?interval=day&by=org"),
        );
        let last = |measure: &str| {
            m["series"]
                .as_array()?
                .iter()
                .find(|s| s["key"] == "github.com/acme" && s["measure"] == measure)?["values"]
                .as_array()?
                .last()?
                .as_f64()
        };
        (last("repositories") == Some(9.0) && last("with_descriptor") == Some(8.0)).then_some(())
    });
    let (s, svc) = entity(&agent, &base, "component", "svc-3");
    assert_eq!(s, 200);
    assert_eq!(
        svc["metadata"]["annotations"]["backstage.io/managed-by-location"],
        "url:https://github.com/acme/svc-3/blob/main/catalog-info.yaml"
    );
    let uid = svc["metadata"]["uid"].as_str().unwrap().to_string();
    // The team and its member are read apart from the repositories.
    let team = wait_for("the team", WAIT, || {
        let (s, team) = entity(&agent, &base, "group", "platform");
        (s == 200).then_some(team)
    });
    assert_eq!(
        team["metadata"]["annotations"]["github.com/team-slug"],
        "acme/platform"
    );
    let ann = wait_for("the team's member", WAIT, || {
        let (s, ann) = entity(&agent, &base, "user", "ann");
        (s == 200).then_some(ann)
    });
    assert_eq!(ann["spec"]["memberOf"], json!(["group:default/platform"]));

    // A bad signature is refused.
    let push = json!({"ref": "refs/heads/main", "repository": repo(1003, "svc-3"),
        "commits": [{"id": "b", "added": [], "removed": [], "modified": ["catalog-info.yaml"]}]});
    let hook = format!("{base}/webhooks/github");
    assert_eq!(post(&agent, &hook, "push", &push, "not the secret"), 401);

    // A push with a good one: the new title shows quickly.
    sim.set_file(
        "acme",
        "svc-3",
        "catalog-info.yaml",
        Some(&component("svc-3", "pushed")),
    );
    let started = Instant::now();
    assert_eq!(post(&agent, &hook, "push", &push, SECRET), 202);
    wait_for("the pushed title", WAIT, || {
        let (_, e) = entity(&agent, &base, "component", "svc-3");
        (e["metadata"]["title"] == "pushed").then_some(())
    });
    eprintln!("push webhook to visible: {:?}", started.elapsed());

    // A rename: same entity (uid), new location.
    sim.rename_repo("acme", "svc-3", "payments-api");
    let renamed = json!({"action": "renamed",
        "changes": {"repository": {"name": {"from": "svc-3"}}},
        "repository": repo(1003, "payments-api")});
    assert_eq!(post(&agent, &hook, "repository", &renamed, SECRET), 202);
    let moved = wait_for("the moved location", WAIT, || {
        let (_, e) = entity(&agent, &base, "component", "svc-3");
        (e["metadata"]["annotations"]["backstage.io/managed-by-location"]
            == "url:https://github.com/acme/payments-api/blob/main/catalog-info.yaml")
            .then_some(e)
    });
    assert_eq!(moved["metadata"]["uid"], uid.as_str(), "identity kept");
    assert_eq!(total(&agent, &base, "kind=component"), 8);

    // Most repositories vanish at once: held back, reported, nothing removed.
    for i in [0, 1, 2, 4, 5, 6] {
        sim.delete_repo("acme", &format!("svc-{i}"));
    }
    let token = std::fs::read_to_string(tmp.path().join("data/dev-token")).unwrap();
    let s = agent
        .post(&format!("{base}/api/catalog/refresh"))
        .header("content-type", "application/json")
        .header("authorization", &format!("Bearer {}", token.trim()))
        .send(r#"{"entityRef":"component:default/svc-7"}"#)
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert!(s == 200 || s == 202, "{s}");
    let status = wait_for("a held-back sync", WAIT, || {
        let (_, st) = get(&agent, &format!("{base}/api/ingest/sources"));
        let held = &st["sources"][0]["last_sync"]["held_back"];
        (!held.is_null()).then_some(st)
    });
    let held = &status["sources"][0]["last_sync"]["held_back"];
    assert_eq!(held["would_remove"], 6, "{status}");
    assert_eq!(total(&agent, &base, "kind=component"), 8, "nothing removed");
    assert!(
        status["sources"][0]["details"]["rate_limit"][0]["remaining"].is_u64(),
        "{status}"
    );
    run.stop();
}

/// A location registered by URL is read through the GitHub source's client
/// and credentials (the simulator requires the token); analysis of a
/// repository URL finds its descriptor.
#[test]
fn a_github_url_registered_through_the_api_is_read_by_the_github_source() {
    let tmp = tempfile::tempdir().unwrap();
    let server = world();
    let sim = server.sim().clone();
    sim.set_file(
        "acme",
        "svc-0",
        "extra/catalog-info.yaml",
        Some(&component("registered-by-url", "by url")),
    );
    let run = start(tmp.path(), &server.base_url());
    let a = agent();
    let base = run.base.clone();
    let token = std::fs::read_to_string(tmp.path().join("data/dev-token")).unwrap();
    let send = |method: &str, path: &str, body: Value| {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{base}/api/catalog{path}"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", token.trim()))
            .body(body.to_string())
            .unwrap();
        answer(a.run(req))
    };
    let target = "https://github.com/acme/svc-0/blob/main/extra/catalog-info.yaml";
    let (s, dry) = send(
        "POST",
        "/locations?dryRun=true",
        json!({"type": "url", "target": target}),
    );
    assert_eq!(s, 201, "{dry}");
    assert_eq!(dry["entities"][1]["metadata"]["name"], "registered-by-url");
    let (s, created) = send(
        "POST",
        "/locations",
        json!({"type": "url", "target": target}),
    );
    assert_eq!(s, 201, "{created}");
    let e = wait_for("the registered URL's entity", WAIT, || {
        let (s, e) = entity(&a, &base, "component", "registered-by-url");
        (s == 200).then_some(e)
    });
    assert_eq!(
        e["metadata"]["annotations"]["backstage.io/managed-by-location"],
        format!("url:{target}")
    );
    // A file that is not there is an error on the location, not a failure.
    let missing = "https://github.com/acme/svc-0/blob/main/nope.yaml";
    let (s, _) = send(
        "POST",
        "/locations",
        json!({"type": "url", "target": missing}),
    );
    assert_eq!(s, 201);
    let id = proto::ids::location_id(&format!("url:{missing}"));
    let errors = wait_for("the missing file's error", WAIT, || {
        let (_, errors) = get(&a, &format!("{base}/api/catalog/locations/{id}/errors"));
        (!errors["errors"][0].is_null()).then_some(errors)
    });
    assert!(
        errors["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{errors}"
    );
    // Analysis of a repository URL reads its descriptor on the default
    // branch; a repository without one gets a Component to generate.
    // svc-1's descriptor is registered once discovery has read it.
    wait_for("svc-1 discovered", WAIT, || {
        (entity(&a, &base, "component", "svc-1").0 == 200).then_some(())
    });
    let (s, found) = send(
        "POST",
        "/analyze-location",
        json!({"location": {"type": "url", "target": "https://github.com/acme/svc-1"}}),
    );
    assert_eq!(s, 200, "{found}");
    assert_eq!(
        found["existingEntityFiles"][0]["entity"]["metadata"]["name"],
        "svc-1"
    );
    assert_eq!(found["existingEntityFiles"][0]["isRegistered"], true);
    sim.add_repo("acme", RepoSpec::new("bare"));
    let (s, generated) = send(
        "POST",
        "/analyze-location",
        json!({"location": {"type": "url", "target": "https://github.com/acme/bare"}}),
    );
    assert_eq!(s, 200, "{generated}");
    assert_eq!(generated["existingEntityFiles"], json!([]));
    assert_eq!(
        generated["generateEntities"][0]["entity"]["metadata"]["name"],
        "bare"
    );
    run.stop();
}

//! Drives the simulator over HTTP with a small blocking client.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use githubsim::{Fault, Protection, RepoSpec, Sim, SimServer, TeamSpec, UserSpec};
use serde_json::{Value, json};

struct Resp {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn remaining(&self) -> u64 {
        self.header("x-ratelimit-remaining").parse().unwrap()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn collect(mut r: ureq::http::Response<ureq::Body>) -> Resp {
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

fn get_with(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.call().expect("request"))
}

fn get(url: &str) -> Resp {
    get_with(url, &[])
}

fn post(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.send_empty().expect("request"))
}

/// The URLs of a `Link` header by relation.
fn links(r: &Resp) -> BTreeMap<String, String> {
    let Some(link) = r.headers.get("link") else {
        return BTreeMap::new();
    };
    link.split(", ")
        .map(|part| {
            let (url, rel) = part.split_once("; ").unwrap();
            let url = url.trim_start_matches('<').trim_end_matches('>');
            let rel = rel.trim_start_matches("rel=\"").trim_end_matches('"');
            (rel.to_string(), url.to_string())
        })
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn world_with_repos(n: usize) -> (Sim, SimServer) {
    let sim = Sim::new();
    for i in 0..n {
        sim.add_repo("acme", RepoSpec::new(&format!("repo-{i:02}")));
    }
    let server = sim.spawn();
    (sim, server)
}

#[test]
fn org_repos_paginate_with_link_headers() {
    let (sim, server) = world_with_repos(5);
    let first = get(&server.url("/orgs/acme/repos?per_page=2&sort=created&direction=asc"));
    assert_eq!(first.status, 200);
    assert_eq!(names(&first.json()), ["repo-00", "repo-01"]);
    let l = links(&first);
    assert_eq!(
        l["next"],
        server.url("/orgs/acme/repos?per_page=2&sort=created&direction=asc&page=2")
    );
    assert_eq!(
        l["last"],
        server.url("/orgs/acme/repos?per_page=2&sort=created&direction=asc&page=3")
    );
    assert!(!l.contains_key("prev") && !l.contains_key("first"));

    let second = get(&l["next"]);
    assert_eq!(names(&second.json()), ["repo-02", "repo-03"]);
    let l2 = links(&second);
    assert_eq!(
        l2.keys().collect::<Vec<_>>(),
        ["first", "last", "next", "prev"]
    );
    let link = second.header("link");
    let at = |rel: &str| link.find(&format!("rel=\"{rel}\"")).unwrap();
    assert!(
        at("prev") < at("next") && at("next") < at("last") && at("last") < at("first"),
        "GitHub's order is prev, next, last, first: {link}"
    );
    assert!(l2["prev"].ends_with("page=1") && l2["first"].ends_with("page=1"));

    let third = get(&l2["next"]);
    assert_eq!(names(&third.json()), ["repo-04"]);
    let l3 = links(&third);
    assert!(!l3.contains_key("next") && !l3.contains_key("last"));
    assert!(l3["prev"].ends_with("page=2"));

    // Default order for created is newest first; full_name defaults to asc.
    let desc = get(&server.url("/orgs/acme/repos?sort=created"));
    assert_eq!(names(&desc.json())[0], "repo-04");
    assert!(!desc.headers.contains_key("link"), "one page: no Link");
    let by_name = get(&server.url("/orgs/acme/repos?sort=full_name"));
    assert_eq!(names(&by_name.json())[0], "repo-00");

    // Ids count from 1000 and the shape is GitHub's.
    let repo = &first.json()[0];
    assert_eq!(repo["id"], 1000);
    assert_eq!(repo["full_name"], "acme/repo-00");
    assert_eq!(repo["owner"]["login"], "acme");
    assert_eq!(repo["owner"]["type"], "Organization");
    assert_eq!(repo["visibility"], "public");
    assert_eq!(repo["private"], false);
    assert_eq!(repo["default_branch"], "main");
    assert_eq!(repo["url"], server.url("/repos/acme/repo-00"));
    assert_eq!(repo["html_url"], "https://github.com/acme/repo-00");
    assert_eq!(repo["created_at"], "2024-01-01T00:00:01Z");

    let missing = get(&server.url("/orgs/nobody/repos"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["message"], "Not Found");
    assert!(missing.json()["documentation_url"].is_string());
    assert_eq!(sim.stats().requests, 6);
}

#[test]
fn per_page_defaults_to_30_and_caps_at_100() {
    let (_sim, server) = world_with_repos(105);
    let default = get(&server.url("/orgs/acme/repos"));
    assert_eq!(default.json().as_array().unwrap().len(), 30);
    assert!(links(&default)["last"].ends_with("page=4"));
    let capped = get(&server.url("/orgs/acme/repos?per_page=500"));
    assert_eq!(capped.json().as_array().unwrap().len(), 100);
    let last = get(&server.url("/orgs/acme/repos?per_page=500&page=2"));
    assert_eq!(last.json().as_array().unwrap().len(), 5);
}

#[test]
fn conditional_requests_cost_nothing_and_pushes_change_etags() {
    let sim = Sim::new();
    let mut spec = RepoSpec::new("svc");
    spec.files
        .insert("catalog-info.yaml".into(), "kind: Component\n".into());
    sim.add_repo("acme", spec);
    let server = sim.spawn();
    let list_url = server.url("/orgs/acme/repos?per_page=100");
    let file_url = server.url("/repos/acme/svc/contents/catalog-info.yaml");

    let first = get(&list_url);
    let etag = first.header("etag").to_string();
    assert!(
        etag.starts_with("W/\"") && etag.len() == 3 + 32 + 1,
        "{etag}"
    );
    assert_eq!(
        first.header("cache-control"),
        "private, max-age=60, s-maxage=60"
    );
    assert_eq!(
        first.header("content-type"),
        "application/json; charset=utf-8"
    );
    assert_eq!(
        first.header("x-github-media-type"),
        "github.v3; format=json"
    );
    assert_eq!(first.header("x-ratelimit-resource"), "core");
    assert!(!first.header("x-github-request-id").is_empty());
    assert_eq!(first.remaining(), 4999);
    assert_eq!(first.header("x-ratelimit-used"), "1");

    let points = sim.stats().points;
    let bare = etag.trim_start_matches("W/");
    for tag in [etag.as_str(), bare, &format!("\"nope\", {etag}")] {
        let again = get_with(&list_url, &[("If-None-Match", tag)]);
        assert_eq!(again.status, 304, "If-None-Match: {tag}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), etag);
        assert_eq!(again.remaining(), 4999);
    }
    let stats = sim.stats();
    assert_eq!(stats.points, points);
    assert_eq!(stats.not_modified, 3);
    assert_eq!(stats.by_status[&304], 3);

    let file = get(&file_url);
    let file_etag = file.header("etag").to_string();
    assert_eq!(
        get_with(&file_url, &[("If-None-Match", &file_etag)]).status,
        304
    );

    sim.set_file("acme", "svc", "catalog-info.yaml", Some("kind: System\n"));
    let changed = get_with(&list_url, &[("If-None-Match", &etag)]);
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), etag);
    assert_eq!(changed.json()[0]["pushed_at"], "2024-01-01T00:00:02Z");
    let changed_file = get_with(&file_url, &[("If-None-Match", &file_etag)]);
    assert_eq!(changed_file.status, 200);
    assert_ne!(changed_file.header("etag"), file_etag);
    assert_eq!(changed.remaining(), 4997);
    assert_eq!(changed_file.remaining(), 4996);
    assert_eq!(sim.stats().points, 4);
}

#[test]
fn etags_do_not_depend_on_the_port() {
    let build = || {
        let sim = Sim::new();
        let mut spec = RepoSpec::new("svc");
        spec.files.insert("a/b.txt".into(), "hello".into());
        sim.add_repo("acme", spec);
        sim.spawn()
    };
    let (one, two) = (build(), build());
    assert_ne!(one.base_url(), two.base_url());
    for path in [
        "/orgs/acme/repos",
        "/repos/acme/svc",
        "/repos/acme/svc/contents/a",
    ] {
        let (a, b) = (get(&one.url(path)), get(&two.url(path)));
        assert_eq!(a.header("etag"), b.header("etag"), "{path}");
        assert_ne!(a.body, b.body, "bodies link to their own server");
    }
}

#[test]
fn contents_trees_blobs_and_languages() {
    let sim = Sim::new();
    let mut spec = RepoSpec::new("svc");
    let long = "x".repeat(100);
    spec.files.insert("README.md".into(), "# svc\n".into());
    spec.files
        .insert("docs/guide/intro.md".into(), long.clone());
    spec.files.insert("docs/index.md".into(), "index".into());
    spec.languages = vec![("Rust".into(), 100), ("Shell".into(), 500), ("C".into(), 7)];
    spec.topics = vec!["backend".into()];
    spec.description = Some("A service".into());
    sim.add_repo("acme", spec);
    sim.add_repo("acme", RepoSpec::new("empty"));
    let server = sim.spawn();

    let file = get(&server.url("/repos/acme/svc/contents/docs/guide/intro.md"));
    assert_eq!(file.status, 200);
    let f = file.json();
    assert_eq!(f["type"], "file");
    assert_eq!(f["encoding"], "base64");
    assert_eq!(f["name"], "intro.md");
    assert_eq!(f["path"], "docs/guide/intro.md");
    assert_eq!(f["size"], 100);
    let sha = f["sha"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 40);
    let content = f["content"].as_str().unwrap();
    assert!(content.lines().all(|l| l.len() <= 60) && content.ends_with('\n'));
    assert!(content.lines().count() > 1);
    let decoded = STANDARD.decode(content.replace('\n', "")).unwrap();
    assert_eq!(decoded, long.as_bytes());
    assert_eq!(
        f["git_url"],
        server.url(&format!("/repos/acme/svc/git/blobs/{sha}"))
    );
    assert_eq!(f["_links"]["git"], f["git_url"]);
    assert_eq!(
        f["download_url"],
        "https://raw.githubusercontent.com/acme/svc/main/docs/guide/intro.md"
    );

    let blob = get(f["git_url"].as_str().unwrap()).json();
    assert_eq!(blob["sha"], sha);
    assert_eq!(blob["encoding"], "base64");
    assert_eq!(blob["size"], 100);
    assert_eq!(blob["content"], f["content"]);

    for root in ["/repos/acme/svc/contents", "/repos/acme/svc/contents/"] {
        let listing = get(&server.url(root)).json();
        let entries: Vec<(String, String)> = listing
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().into(),
                    e["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("README.md".into(), "file".into()),
                ("docs".into(), "dir".into())
            ]
        );
    }
    let docs = get(&server.url("/repos/acme/svc/contents/docs?ref=main")).json();
    assert_eq!(docs[0]["path"], "docs/guide");
    assert_eq!(docs[1]["path"], "docs/index.md");
    assert!(docs[1].get("content").is_none());

    assert_eq!(
        get(&server.url("/repos/acme/svc/contents/nope.md")).status,
        404
    );
    let bad_ref = get(&server.url("/repos/acme/svc/contents/README.md?ref=dev"));
    assert_eq!(bad_ref.status, 404);
    assert_eq!(bad_ref.json()["message"], "No commit found for the ref dev");
    let empty = get(&server.url("/repos/acme/empty/contents/"));
    assert_eq!(empty.status, 404);
    assert_eq!(empty.json()["message"], "This repository is empty.");

    let top = get(&server.url("/repos/acme/svc/git/trees/main")).json();
    let paths: Vec<&str> = top["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["README.md", "docs"]);
    assert_eq!(top["truncated"], false);
    let all = get(&server.url("/repos/acme/svc/git/trees/main?recursive=1")).json();
    let entries: Vec<(&str, &str, &str)> = all["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
                e["mode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("README.md", "blob", "100644"),
            ("docs", "tree", "040000"),
            ("docs/guide", "tree", "040000"),
            ("docs/guide/intro.md", "blob", "100644"),
            ("docs/index.md", "blob", "100644"),
        ]
    );
    assert_eq!(all["tree"][3]["sha"], sha.as_str());
    assert_eq!(all["tree"][3]["size"], 100);
    assert!(all["tree"][1].get("size").is_none());
    let subtree_sha = all["tree"][1]["sha"].as_str().unwrap();
    let sub = get(&server.url(&format!("/repos/acme/svc/git/trees/{subtree_sha}"))).json();
    assert_eq!(sub["tree"].as_array().unwrap().len(), 2);

    let langs = get(&server.url("/repos/acme/svc/languages"));
    assert_eq!(langs.body, r#"{"Rust":100,"Shell":500,"C":7}"#);
    let repo = get(&server.url("/repos/acme/svc")).json();
    assert_eq!(repo["language"], "Shell");
    assert_eq!(repo["topics"], json!(["backend"]));
    assert_eq!(repo["description"], "A service");
    assert_eq!(repo["organization"]["login"], "acme");

    // Deleting the last file under a directory removes the directory.
    sim.set_file("acme", "svc", "docs/guide/intro.md", None);
    let after = get(&server.url("/repos/acme/svc/git/trees/main?recursive=1")).json();
    assert_eq!(after["tree"].as_array().unwrap().len(), 3);
    // The old blob is still reachable by its id, as in git.
    assert_eq!(
        get(&server.url(&format!("/repos/acme/svc/git/blobs/{sha}"))).status,
        200
    );
}

#[test]
fn renamed_repositories_redirect_and_deleted_ones_vanish() {
    let sim = Sim::new();
    let mut spec = RepoSpec::new("old");
    spec.files.insert("a.txt".into(), "a".into());
    let id = sim.add_repo("acme", spec);
    let server = sim.spawn();
    sim.rename_repo("acme", "old", "new");

    let moved = get(&server.url("/repos/acme/old"));
    assert_eq!(moved.status, 301);
    let location = server.url(&format!("/repositories/{id}"));
    assert_eq!(moved.header("location"), location);
    assert_eq!(moved.json()["message"], "Moved Permanently");
    assert_eq!(moved.json()["url"], location);

    let target = get(moved.header("location"));
    assert_eq!(target.status, 200);
    assert_eq!(target.json()["name"], "new");
    assert_eq!(target.json()["full_name"], "acme/new");
    assert_eq!(get(&server.url("/repos/acme/new")).json()["id"], id);

    let sub = get(&server.url("/repos/acme/old/contents/a.txt?ref=main"));
    assert_eq!(sub.status, 301);
    let sub_location = server.url(&format!("/repositories/{id}/contents/a.txt?ref=main"));
    assert_eq!(sub.header("location"), sub_location);
    assert_eq!(get(&sub_location).json()["path"], "a.txt");

    // Following redirects, as clients do, lands on the repository.
    let followed = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(&server.url("/repos/acme/old"))
        .call()
        .unwrap();
    assert_eq!(collect(followed).json()["name"], "new");

    sim.delete_repo("acme", "new");
    for path in [
        "/repos/acme/new",
        "/repos/acme/old",
        &format!("/repositories/{id}"),
    ] {
        let gone = get(&server.url(path));
        assert_eq!(gone.status, 404, "{path}");
        assert_eq!(gone.json()["message"], "Not Found");
    }
}

#[test]
fn branch_protection_shapes() {
    let sim = Sim::new();
    sim.add_repo("acme", RepoSpec::new("open"));
    sim.add_repo("acme", RepoSpec::new("hidden"));
    let mut spec = RepoSpec::new("guarded");
    spec.protection = Protection::Protected {
        required_reviews: 2,
        enforce_admins: true,
        required_status_checks: vec!["ci/build".into()],
    };
    sim.add_repo("acme", spec);
    sim.set_protection("acme", "hidden", Protection::Forbidden);
    let server = sim.spawn();

    let none = get(&server.url("/repos/acme/open/branches/main/protection"));
    assert_eq!(none.status, 404);
    assert_eq!(none.json()["message"], "Branch not protected");
    let forbidden = get(&server.url("/repos/acme/hidden/branches/main/protection"));
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.json()["message"],
        "Resource not accessible by integration"
    );
    let other = get(&server.url("/repos/acme/guarded/branches/dev/protection"));
    assert_eq!(other.status, 404);

    let p = get(&server.url("/repos/acme/guarded/branches/main/protection"));
    assert_eq!(p.status, 200);
    let p = p.json();
    assert_eq!(
        p["url"],
        server.url("/repos/acme/guarded/branches/main/protection")
    );
    assert_eq!(p["required_status_checks"]["contexts"], json!(["ci/build"]));
    assert_eq!(
        p["required_status_checks"]["checks"],
        json!([{"context": "ci/build", "app_id": null}])
    );
    assert_eq!(p["required_status_checks"]["strict"], true);
    assert_eq!(p["enforce_admins"]["enabled"], true);
    assert_eq!(
        p["required_pull_request_reviews"]["required_approving_review_count"],
        2
    );
    assert_eq!(
        p["required_pull_request_reviews"]["dismiss_stale_reviews"],
        false
    );
    assert_eq!(p["required_signatures"]["enabled"], false);
    assert_eq!(p["allow_force_pushes"]["enabled"], false);
    assert_eq!(p["allow_deletions"]["enabled"], false);
    assert_eq!(p["required_linear_history"]["enabled"], false);
}

#[test]
fn dependabot_alerts() {
    let sim = Sim::new();
    let mut spec = RepoSpec::new("svc");
    spec.alerts = vec!["critical".into(), "high".into(), "low".into()];
    sim.add_repo("acme", spec);
    sim.add_repo("acme", RepoSpec::new("locked"));
    sim.set_alerts_forbidden("acme", "locked", true);
    let server = sim.spawn();

    let page = get(&server.url("/repos/acme/svc/dependabot/alerts?state=open&per_page=2"));
    assert_eq!(page.status, 200);
    let alerts = page.json();
    assert_eq!(alerts.as_array().unwrap().len(), 2);
    assert!(links(&page)["next"].ends_with("per_page=2&page=2"));
    let a = &alerts[0];
    assert_eq!(a["state"], "open");
    assert!(a["number"].is_u64());
    assert!(a["dependency"]["package"]["ecosystem"].is_string());
    assert!(a["dependency"]["package"]["name"].is_string());
    assert!(
        a["security_advisory"]["ghsa_id"]
            .as_str()
            .unwrap()
            .starts_with("GHSA-")
    );
    assert_eq!(
        a["security_advisory"]["severity"],
        a["security_vulnerability"]["severity"]
    );
    assert!(a["security_vulnerability"]["package"]["name"].is_string());
    assert!(a["url"].as_str().unwrap().contains("/dependabot/alerts/"));
    assert!(a["created_at"].is_string());

    let all = get(&server.url("/repos/acme/svc/dependabot/alerts?state=open&per_page=100")).json();
    let mut severities: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["security_advisory"]["severity"].as_str().unwrap())
        .collect();
    severities.sort_unstable();
    assert_eq!(severities, ["critical", "high", "low"]);
    let fixed = get(&server.url("/repos/acme/svc/dependabot/alerts?state=fixed")).json();
    assert_eq!(fixed, json!([]));

    sim.set_alerts("acme", "svc", vec!["critical".into()]);
    let after = get(&server.url("/repos/acme/svc/dependabot/alerts?state=open")).json();
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_eq!(after[0]["number"], 1, "an unchanged alert keeps its number");

    let forbidden = get(&server.url("/repos/acme/locked/dependabot/alerts?state=open"));
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.json()["message"],
        "Resource not accessible by integration"
    );
}

#[test]
fn teams_members_and_users() {
    let sim = Sim::new();
    for (login, name) in [("alice", "Alice A"), ("bob", "Bob B"), ("carol", "Carol C")] {
        sim.put_member(
            "acme",
            UserSpec {
                login: login.into(),
                name: Some(name.into()),
                email: Some(format!("{login}@example.com")),
            },
        );
    }
    sim.put_team(
        "acme",
        TeamSpec {
            slug: "platform".into(),
            name: "Platform".into(),
            description: Some("Runs things".into()),
            parent: None,
            members: vec!["alice".into()],
        },
    );
    sim.put_team(
        "acme",
        TeamSpec {
            slug: "sre".into(),
            name: "SRE".into(),
            description: None,
            parent: Some("platform".into()),
            members: vec!["bob".into(), "carol".into()],
        },
    );
    let server = sim.spawn();

    let teams = get(&server.url("/orgs/acme/teams?per_page=100")).json();
    assert_eq!(teams.as_array().unwrap().len(), 2);
    let sre = &teams[1];
    assert_eq!(sre["slug"], "sre");
    assert_eq!(sre["privacy"], "closed");
    assert_eq!(sre["permission"], "pull");
    assert_eq!(sre["parent"]["slug"], "platform");
    assert_eq!(sre["parent"]["id"], teams[0]["id"]);
    assert_eq!(teams[0]["parent"], Value::Null);
    assert_eq!(teams[0]["description"], "Runs things");
    assert!(
        sre["members_url"]
            .as_str()
            .unwrap()
            .ends_with("/members{/member}")
    );

    let first = get(&server.url("/orgs/acme/teams/sre/members?per_page=1"));
    assert_eq!(first.json()[0]["login"], "bob");
    assert_eq!(first.json()[0]["type"], "User");
    assert_eq!(first.json()[0]["site_admin"], false);
    assert!(first.json()[0]["node_id"].is_string());
    let second = get(&links(&first)["next"]);
    assert_eq!(second.json()[0]["login"], "carol");
    assert_eq!(
        get(&server.url("/orgs/acme/teams/nope/members")).status,
        404
    );
    let one = get(&server.url("/orgs/acme/teams/sre")).json();
    assert_eq!(one["members_count"], 2);
    assert_eq!(one["organization"]["login"], "acme");
    assert_eq!(one["parent"]["slug"], "platform");

    let members = get(&server.url("/orgs/acme/members?per_page=2"));
    assert_eq!(members.json().as_array().unwrap().len(), 2);
    assert!(links(&members)["last"].ends_with("page=2"));

    let alice = get(&server.url("/users/alice")).json();
    assert_eq!(alice["name"], "Alice A");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["type"], "User");
    assert!(alice["created_at"].is_string() && alice["updated_at"].is_string());
    assert_eq!(get(&server.url("/users/nobody")).status, 404);

    sim.remove_member("acme", "carol");
    sim.remove_team("acme", "platform");
    let members = get(&server.url("/orgs/acme/members")).json();
    assert_eq!(members.as_array().unwrap().len(), 2);
    let teams = get(&server.url("/orgs/acme/teams")).json();
    assert_eq!(teams.as_array().unwrap().len(), 1);
    assert_eq!(teams[0]["parent"], Value::Null);
}

#[test]
fn quota_exhaustion_then_refill_after_reset() {
    let (sim, server) = world_with_repos(1);
    sim.set_quota(10, 2, 2);
    let url = server.url("/orgs/acme/repos");
    let a = get(&url);
    assert_eq!((a.status, a.remaining()), (200, 1));
    assert_eq!(a.header("x-ratelimit-used"), "9");
    let b = get(&url);
    assert_eq!((b.status, b.remaining()), (200, 0));
    let refused = get(&url);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.remaining(), 0);
    assert_eq!(
        refused.json()["message"],
        "API rate limit exceeded for installation ID 1."
    );
    assert!(
        refused.json()["documentation_url"]
            .as_str()
            .unwrap()
            .contains("rate-limiting")
    );
    let reset: i64 = refused.header("x-ratelimit-reset").parse().unwrap();

    // /rate_limit is free and still answers.
    let rl = get(&server.url("/rate_limit"));
    assert_eq!(rl.status, 200);
    assert_eq!(rl.json()["resources"]["core"]["remaining"], 0);
    assert_eq!(rl.json()["resources"]["core"]["limit"], 10);
    assert_eq!(rl.json()["rate"]["reset"], reset);

    std::thread::sleep(Duration::from_millis(3100));
    let refilled = get(&url);
    assert_eq!(refilled.status, 200);
    assert_eq!(refilled.remaining(), 9);
    let new_reset: i64 = refilled.header("x-ratelimit-reset").parse().unwrap();
    assert!(new_reset >= reset + 3600 - 5);
    assert_eq!(sim.stats().points, 3);
}

#[test]
fn injected_faults() {
    let (sim, server) = world_with_repos(1);
    let url = server.url("/orgs/acme/repos");
    sim.fail_next("/orgs/acme/repos", Fault::Status(502));
    sim.fail_next(
        "/orgs/acme/repos",
        Fault::SecondaryLimit {
            retry_after_secs: 30,
            status: 429,
        },
    );
    sim.fail_next(
        "/orgs/acme/repos",
        Fault::PrimaryExhausted { reset_in_secs: 120 },
    );
    sim.fail_next(
        "/orgs/acme/repos",
        Fault::Timeout(Duration::from_millis(300)),
    );

    // A request elsewhere does not consume the queued faults.
    assert_eq!(get(&server.url("/repos/acme/repo-00")).status, 200);
    let points = sim.stats().points;

    let e502 = get(&url);
    assert_eq!(e502.status, 502);
    assert_eq!(e502.json()["message"], "Server Error");

    let secondary = get(&url);
    assert_eq!(secondary.status, 429);
    assert_eq!(secondary.header("retry-after"), "30");
    assert_eq!(
        secondary.json()["message"],
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    );

    let primary = get(&url);
    assert_eq!(primary.status, 403);
    assert_eq!(primary.remaining(), 0);
    let reset: i64 = primary.header("x-ratelimit-reset").parse().unwrap();
    let now = chrono_now();
    assert!((now + 110..=now + 130).contains(&reset), "{reset} vs {now}");
    assert!(
        primary.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("API rate limit exceeded for")
    );
    assert_eq!(sim.stats().points, points, "faults cost no point");

    let started = Instant::now();
    let slow = get(&url);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow.status, 200);
    assert_eq!(slow.remaining(), 4998);

    let normal = get(&url);
    assert_eq!(normal.status, 200);
    let stats = sim.stats();
    assert_eq!(stats.by_status[&502], 1);
    assert_eq!(stats.by_status[&429], 1);
    assert_eq!(stats.by_status[&403], 1);
    assert_eq!(stats.by_status[&200], 3);
    assert_eq!(stats.paths.len(), 6);
    assert_eq!(stats.paths[1], "/orgs/acme/repos");

    sim.reset_stats();
    assert_eq!(sim.stats(), githubsim::Stats::default());
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jwt(iss: Value) -> String {
    let now = chrono_now();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = json!({"iat": now - 60, "exp": now + 540, "iss": iss});
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

#[test]
fn app_installation_tokens_and_expiry() {
    let (sim, server) = world_with_repos(1);
    sim.require_token("static-token");
    sim.enable_app(42, 7, "acme");
    let repos = server.url("/orgs/acme/repos");

    let anonymous = get(&repos);
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["message"], "Bad credentials");
    assert_eq!(
        get_with(&repos, &[("Authorization", "token wrong")]).status,
        401
    );
    assert_eq!(
        get_with(&repos, &[("Authorization", "token static-token")]).status,
        200
    );

    let app_jwt = format!("Bearer {}", jwt(json!(42)));
    let installation = get_with(
        &server.url("/orgs/acme/installation"),
        &[("Authorization", &app_jwt)],
    );
    assert_eq!(installation.status, 200);
    let inst = installation.json();
    assert_eq!(inst["id"], 7);
    assert_eq!(inst["app_id"], 42);
    assert_eq!(inst["account"]["login"], "acme");
    assert_eq!(
        inst["access_tokens_url"],
        server.url("/app/installations/7/access_tokens")
    );
    let string_iss = format!("Bearer {}", jwt(json!("42")));
    assert_eq!(
        get_with(
            &server.url("/orgs/acme/installation"),
            &[("Authorization", &string_iss)]
        )
        .status,
        200
    );
    let other_app = format!("Bearer {}", jwt(json!(43)));
    assert_eq!(
        get_with(
            &server.url("/orgs/acme/installation"),
            &[("Authorization", &other_app)]
        )
        .status,
        404
    );
    assert_eq!(get(&server.url("/orgs/acme/installation")).status, 401);

    let minted = post(
        inst["access_tokens_url"].as_str().unwrap(),
        &[("Authorization", &app_jwt)],
    );
    assert_eq!(minted.status, 201);
    let token = minted.json()["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_"));
    assert!(minted.json()["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(minted.json()["permissions"].is_object());
    assert_eq!(sim.tokens_minted(), 1);
    assert_eq!(
        post(
            &server.url("/app/installations/8/access_tokens"),
            &[("Authorization", &app_jwt)]
        )
        .status,
        404
    );

    let bearer = format!("Bearer {token}");
    let ok = get_with(&repos, &[("Authorization", &bearer)]);
    assert_eq!(ok.status, 200);

    sim.set_installation_token_ttl(-1);
    let stale = post(
        &server.url("/app/installations/7/access_tokens"),
        &[("Authorization", &app_jwt)],
    )
    .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sim.tokens_minted(), 2);
    let expired = get_with(&repos, &[("Authorization", &format!("token {stale}"))]);
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json()["message"], "Bad credentials");
    // The first token is still good.
    assert_eq!(get_with(&repos, &[("Authorization", &bearer)]).status, 200);
}

#[test]
fn unknown_routes_and_methods_are_404_json() {
    let (_sim, server) = world_with_repos(1);
    let r = get(&server.url("/nope/nothing"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "Not Found");
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    assert_eq!(post(&server.url("/orgs/acme/repos"), &[]).status, 404);
    assert_eq!(get(&server.url("/repos/acme/repo-00/unknown")).status, 404);
    assert_eq!(get(&server.url("/orgs/acme")).json()["login"], "acme");
}

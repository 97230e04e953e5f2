//! Scorecards in `catalog dev`, end to end through HTTP: definitions from a
//! directory, levels and owner rollups (through `childOf`) that follow an
//! entity edit, exemptions (token-protected, an expired one does not count,
//! a live one counts until it expires), a bad definition rejected with its
//! reason while the old one keeps serving, trend and history, dry runs.

mod common;

use catalog::Config;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cret-token";

const CARD: &str = "id: basics
title: Basics
applies_to: {kind: component}
levels: [bronze, silver]
checks:
  - id: owner-is-group
    level: bronze
    weight: 2
    rule: {relation: ownedBy, target_kind: group}
  - id: description
    level: silver
    rule: {field: metadata.description, exists: true}
  - id: domain
    level: silver
    rule:
      relation: partOf
      target_kind: system
      target: {relation: partOf, target_kind: domain}
";

fn org(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let doc = |kind: &str, name: &str, extra_meta: &str, spec: &str| {
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n{extra_meta}spec:\n{spec}"
        )
    };
    let files = [
        (
            "groups.yaml",
            [
                doc(
                    "Group",
                    "platform",
                    "",
                    "  type: department\n  children: []\n",
                ),
                doc(
                    "Group",
                    "team-a",
                    "",
                    "  type: team\n  parent: platform\n  children: []\n",
                ),
            ]
            .join("---\n"),
        ),
        (
            "arch.yaml",
            [
                doc("Domain", "commerce", "", "  owner: platform\n"),
                doc(
                    "System",
                    "shop",
                    "",
                    "  owner: team-a\n  domain: commerce\n",
                ),
            ]
            .join("---\n"),
        ),
        ("svc-a.yaml", svc("svc-a", None)),
        ("svc-b.yaml", svc("svc-b", Some("Takes orders"))),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn svc(name: &str, description: Option<&str>) -> String {
    let desc = description
        .map(|d| format!("  description: {d}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n{desc}spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n  system: shop\n"
    )
}

fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let req = match method {
        "POST" => agent.post(url),
        _ => agent.delete(url).force_send_body(),
    };
    let req = req.header("content-type", "application/json");
    let req = match token {
        Some(t) => req.header("authorization", &format!("Bearer {t}")),
        None => req,
    };
    answer(req.send(body))
}

/// (level, status of `check`) of svc-a under `basics`, once it has a result.
fn card_of(agent: &ureq::Agent, base: &str, name: &str) -> Option<Value> {
    let (s, v) = get(
        agent,
        &format!("{base}/api/scorecards/entity/component/default/{name}"),
    );
    if s != 200 {
        return None;
    }
    v["scorecards"]
        .as_array()?
        .iter()
        .find(|c| c["scorecard"] == "basics")
        .cloned()
}

fn check_status(card: &Value, check: &str) -> String {
    card["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == check)
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap()
}

/// Entities per level of one group's rollup: (none, bronze, silver).
fn levels(agent: &ureq::Agent, base: &str, group: &str) -> Option<(i64, i64, i64)> {
    let (s, v) = get(
        agent,
        &format!("{base}/api/scorecards/basics/rollup?by=owner"),
    );
    if s != 200 {
        return None;
    }
    let g = v["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group"] == group)?;
    let n = |i: usize| g["levels"][i]["entities"].as_i64().unwrap();
    Some((n(0), n(1), n(2)))
}

fn wait_level(agent: &ureq::Agent, base: &str, name: &str, level: &str) -> Value {
    wait_for(&format!("{name} at {level}"), WAIT, || {
        card_of(agent, base, name).filter(|c| c["level"] == level)
    })
}

/// Waits until `group`'s rollup is `want`: (none, bronze, silver).
fn wait_rollup(agent: &ureq::Agent, base: &str, group: &str, want: (i64, i64, i64)) {
    wait_eq(&format!("{group}'s rollup"), WAIT, Some(want), || {
        levels(agent, base, group)
    });
}

#[test]
fn scorecards_follow_changes_exemptions_and_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let org_dir = dir.path().join("org");
    org(&org_dir);
    let cards = dir.path().join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    std::fs::write(cards.join("basics.yaml"), CARD).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("org", &org_dir));
    cfg.ingest.scorecards.dir = Some(cards.clone());
    cfg.ingest.scorecards.poll_secs = 1;
    cfg.serve.write_token_file = Some(token_file);
    let dev = run_dev(cfg);
    let base = dev.base.clone();
    let agent = agent();

    // Definitions: ours and the built-in one.
    let (_, list) = wait_for("scorecards listed", WAIT, || {
        let (s, v) = get(&agent, &format!("{base}/api/scorecards"));
        (s == 200 && v["items"].as_array().is_some_and(|i| i.len() == 2)).then_some((s, v))
    });
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["basics", "production-readiness"]);

    // svc-a lacks a description: bronze, with the failing check and why.
    // Its owner and its domain come from different files: bronze can show
    // before the domain is in.
    let a = wait_for("svc-a at bronze, its domain found", WAIT, || {
        card_of(&agent, &base, "svc-a")
            .filter(|c| c["level"] == "bronze" && check_status(c, "domain") == "pass")
    });
    assert_eq!(check_status(&a, "description"), "fail");
    assert_eq!(check_status(&a, "domain"), "pass");
    let why = a["checks"][1]["reason"].as_str().unwrap();
    assert!(why.contains("metadata.description exists"), "{why}");
    assert_eq!(a["score"], 75);
    wait_level(&agent, &base, "svc-b", "silver");
    // Owner rollup, and the parent group through childOf.
    wait_rollup(&agent, &base, "group:default/team-a", (0, 1, 1));
    wait_rollup(&agent, &base, "group:default/platform", (0, 1, 1));
    let (_, page) = get(
        &agent,
        &format!("{base}/api/scorecards/basics/entities?level=silver&owner=platform"),
    );
    let refs: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["entityRef"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["component:default/svc-b"]);

    // Exemptions: writes need the token.
    let url = format!("{base}/api/scorecards/basics/exemptions");
    let grant = |expires: chrono::DateTime<chrono::Utc>| {
        json!({"entityRef": "component:default/svc-a", "check": "description",
               "reason": "description lands with the next release", "author": "alice",
               "expiresAt": expires})
        .to_string()
    };
    let now = chrono::Utc::now();
    let (s, _) = send(&agent, "POST", &url, None, &grant(now));
    assert_eq!(s, 401);
    let (s, _) = send(&agent, "POST", &url, Some("wrong"), &grant(now));
    assert_eq!(s, 401);
    let (s, v) = send(
        &agent,
        "POST",
        &url,
        Some(TOKEN),
        &json!({"entityRef": "component:default/svc-a", "check": "nope", "reason": "x", "author": "a"})
            .to_string(),
    );
    assert_eq!(s, 400, "{v}");
    // Expired already: recorded, but it does not count.
    let (s, expired) = send(
        &agent,
        "POST",
        &url,
        Some(TOKEN),
        &grant(now - chrono::Duration::hours(1)),
    );
    assert_eq!(s, 202, "{expired}");
    wait_for("expired exemption recorded", WAIT, || {
        let (_, v) = get(&agent, &url);
        (v["items"].as_array().map(Vec::len) == Some(1)).then_some(())
    });
    let a = card_of(&agent, &base, "svc-a").unwrap();
    assert_eq!(a["level"], "bronze");
    assert_eq!(check_status(&a, "description"), "fail");
    // A live one counts as passing until it expires.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(20);
    let (s, live) = send(&agent, "POST", &url, Some(TOKEN), &grant(expires));
    assert_eq!(s, 202, "{live}");
    let a = wait_level(&agent, &base, "svc-a", "silver");
    assert_eq!(check_status(&a, "description"), "exempt");
    assert_eq!(a["checks"][1]["exemption"]["exemption"]["author"], "alice");
    assert_eq!(
        levels(&agent, &base, "group:default/team-a"),
        Some((0, 0, 2))
    );
    let a = wait_level(&agent, &base, "svc-a", "bronze");
    assert_eq!(check_status(&a, "description"), "fail");
    assert!(chrono::Utc::now() >= expires);
    assert_eq!(a["cause"]["kind"], "time");
    // Revoking needs the token too, and an author.
    let rid = live["id"].as_str().unwrap();
    let (s, _) = send(
        &agent,
        "DELETE",
        &format!("{base}/api/scorecards/exemptions/{rid}"),
        None,
        "{\"author\":\"bob\"}",
    );
    assert_eq!(s, 401);
    let (s, v) = send(
        &agent,
        "DELETE",
        &format!("{base}/api/scorecards/exemptions/{rid}"),
        Some(TOKEN),
        "{\"author\":\"bob\",\"reason\":\"expired anyway\"}",
    );
    assert_eq!(s, 202, "{v}");

    // Editing the entity moves its level and the owners' rollups.
    std::fs::write(org_dir.join("svc-a.yaml"), svc("svc-a", Some("Pays"))).unwrap();
    let a = wait_level(&agent, &base, "svc-a", "silver");
    assert_eq!(a["score"], 100);
    assert_eq!(a["cause"]["kind"], "entity");
    // Rollups move in the batch that moves the result.
    assert_eq!(
        levels(&agent, &base, "group:default/team-a"),
        Some((0, 0, 2))
    );
    assert_eq!(
        levels(&agent, &base, "group:default/platform"),
        Some((0, 0, 2))
    );
    // History, newest first, names each cause: the edit, the expiry, the
    // exemption, then how the first evaluations went (the entity, its
    // system and the definition arrive in one batch or in several).
    let kinds: Vec<String> = a["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["cause"]["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.len() >= 4, "{a}");
    assert_eq!(kinds[..3], ["entity", "time", "exemption"], "{a}");
    for k in &kinds[3..] {
        assert!(
            ["entity", "related", "definition"].contains(&k.as_str()),
            "{a}"
        );
    }

    // The trend shows today's state in today's bucket.
    let today = chrono::Utc::now().date_naive();
    let (s, trend) = get(
        &agent,
        &format!(
            "{base}/api/scorecards/basics/trend?by=owner&group=team-a&interval=day&from={}",
            today - chrono::Duration::days(2)
        ),
    );
    assert_eq!(s, 200, "{trend}");
    let buckets = trend["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 3);
    assert!(buckets[0]["groups"].as_array().unwrap().is_empty());
    let last = &buckets[2];
    assert_eq!(last["start"], format!("{today}T00:00:00Z"));
    assert_eq!(last["groups"][0]["group"], "group:default/team-a");
    assert_eq!(last["groups"][0]["levels"][2]["entities"], 2);

    // A broken definition is rejected with file, check and reason; the
    // previous one keeps serving.
    std::fs::write(
        cards.join("basics.yaml"),
        CARD.replace("exists: true}", "exsts: true}"),
    )
    .unwrap();
    let rejected = wait_for("definition rejected", WAIT, || {
        let (_, v) = get(&agent, &format!("{base}/api/scorecards"));
        v["rejected"].as_array().and_then(|r| r.first().cloned())
    });
    assert_eq!(rejected["file"], "basics.yaml");
    assert_eq!(rejected["inForce"], "basics");
    let err = &rejected["errors"][0];
    assert_eq!(err["check"], "description");
    assert!(
        err["reason"].as_str().unwrap().contains("exsts"),
        "{rejected}"
    );
    let (_, one) = get(&agent, &format!("{base}/api/scorecards/basics"));
    assert_eq!(one["checks"][1]["id"], "description");
    assert_eq!(card_of(&agent, &base, "svc-a").unwrap()["level"], "silver");

    // Dry run: evaluated against the catalog now, nothing saved.
    let (s, run) = send(
        &agent,
        "POST",
        &format!("{base}/api/scorecards/dry-run"),
        None,
        "id: strict\nlevels: [gold]\napplies_to: {kind: component}\nchecks:\n  - id: tagged\n    rule: {field: metadata.tags, exists: true}\n",
    );
    assert_eq!(s, 200, "{run}");
    assert_eq!(run["evaluated"], 2);
    assert_eq!(run["total"]["levels"][0]["entities"], 2);
    let (s, bad) = send(
        &agent,
        "POST",
        &format!("{base}/api/scorecards/dry-run"),
        None,
        "id: strict\nlevels: [gold]\nchecks:\n  - id: tagged\n    rule: {field: metadata.tags, exist: true}\n",
    );
    assert_eq!(s, 400);
    let msg = bad["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("check `tagged`") && msg.contains("exist"),
        "{msg}"
    );
    let (_, list) = get(&agent, &format!("{base}/api/scorecards"));
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    dev.stop();
}

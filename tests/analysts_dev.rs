//! What analysts and their agents use, end to end on `catalog dev` over
//! the demo org: Parquet exports read by DuckDB (`scripts/duckdb-sql`)
//! agreeing with the API, and the MCP server at `/mcp` answering through
//! the API's own routes.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Waits until the demo org is in: the number of entities has held still
/// for two seconds.
fn settled(a: &ureq::Agent, base: &str) {
    let mut last = (0, std::time::Instant::now());
    wait_for("the demo org, all of it", WAIT, || {
        let n = total(a, base, "");
        if n != last.0 {
            last = (n, std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(200));
        (n > 0 && last.1.elapsed() > Duration::from_secs(2)).then_some(())
    });
}

/// The rows DuckDB answers for `sql`.
fn duckdb(sql: &str) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/duckdb-sql");
    let out = std::process::Command::new(script)
        .arg(sql)
        .output()
        .expect("scripts/duckdb-sql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{sql}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn one(sql: &str) -> Value {
    let rows = duckdb(sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows.into_iter().next().unwrap()
}

/// Downloads `path` of the API to `file`.
fn download(a: &ureq::Agent, url: &str, file: &Path) {
    let mut resp = a.get(url).call().unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    assert_eq!(&bytes[..4], b"PAR1", "{url} is Parquet");
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn parquet_exports_read_in_duckdb_agree_with_the_api() {
    let dev = dev_allowing_files();
    let a = agent();
    let base = dev.running.base.clone();
    let card = "production-readiness";
    settled(&a, &base);
    let services = wait_for("the scorecard results", WAIT, || {
        let n = total(&a, &base, "kind=component,spec.type=service");
        let (s, v) = get(&a, &format!("{base}/api/scorecards/{card}/rollup?by=all"));
        let scored = v["groups"][0]["entities"].as_u64().unwrap_or(0);
        let websites = total(&a, &base, "kind=component,spec.type=website");
        (s == 200 && n > 0 && scored == n + websites).then_some(n)
    });
    let dir = dev.tmp.path();
    let entities = dir.join("entities.parquet");
    let results = dir.join("results.parquet");
    let history = dir.join("history.parquet");
    download(
        &a,
        &format!("{base}/api/export/entities?format=parquet"),
        &entities,
    );
    download(
        &a,
        &format!("{base}/api/export/scorecard-results?format=parquet"),
        &results,
    );
    download(
        &a,
        &format!("{base}/api/export/history?format=parquet"),
        &history,
    );
    let (e, r, h) = (entities.display(), results.display(), history.display());

    // Counts: every served entity, every result, every change.
    let served = total(&a, &base, "");
    assert_eq!(
        one(&format!("select count(*) as n from '{e}'"))["n"],
        served
    );
    assert_eq!(
        one(&format!(
            "select count(*) as n from '{e}' where kind = 'Component' and type = 'service'"
        ))["n"],
        services
    );
    let (_, rollup) = get(&a, &format!("{base}/api/scorecards/{card}/rollup?by=all"));
    let scored = rollup["groups"][0]["entities"].as_u64().unwrap();
    assert_eq!(
        one(&format!(
            "select count(*) as n from '{r}' where scorecard = '{card}'"
        ))["n"],
        scored
    );
    let (_, feed) = get(&a, &format!("{base}/api/history/events?limit=1000"));
    let changes = feed["items"].as_array().unwrap().len();
    let row = one(&format!(
        "select count(*) as n, typeof(any_value(event_at)) as t from '{h}'"
    ));
    assert_eq!(row["n"], changes as u64);
    assert_eq!(row["t"], "TIMESTAMP WITH TIME ZONE");

    // A list column: entities with a tag, as the API's filter finds them.
    let (_, facets) = get(
        &a,
        &format!("{base}/api/catalog/entity-facets?facet=metadata.tags"),
    );
    let tag = facets["facets"]["metadata.tags"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        one(&format!(
            "select count(*) as n from '{e}' where list_contains(tags, '{tag}')"
        ))["n"],
        total(&a, &base, &format!("metadata.tags={tag}"))
    );

    // The join of entities to their results: levels per owner, as the
    // API's rollup counts them.
    let joined = duckdb(&format!(
        "select e.owner as owner, coalesce(r.level, '(none)') as level, count(*) as n \
         from '{e}' e join '{r}' r using (entity_ref) \
         where r.scorecard = '{card}' group by all order by all"
    ));
    assert_eq!(
        joined.iter().map(|j| j["n"].as_u64().unwrap()).sum::<u64>(),
        scored,
        "every result joins its entity"
    );
    let (_, by_owner) = get(&a, &format!("{base}/api/scorecards/{card}/rollup?by=owner"));
    let mut compared = 0;
    for g in by_owner["groups"].as_array().unwrap() {
        let group = g["group"].as_str().unwrap();
        for l in g["levels"].as_array().unwrap() {
            let level = l["level"].as_str().unwrap_or("(none)");
            // The rollup counts an entity under its owner and the owner's
            // ancestors; the export's owner column is the direct owner, so
            // only groups that own entities directly are compared.
            let direct: u64 = joined
                .iter()
                .filter(|j| j["owner"] == group && j["level"] == level)
                .map(|j| j["n"].as_u64().unwrap())
                .sum();
            let owns_directly = joined.iter().any(|j| j["owner"] == group);
            if owns_directly && g["entities"].as_u64() == Some(direct_total(&joined, group)) {
                assert_eq!(
                    l["entities"].as_u64().unwrap(),
                    direct,
                    "{group} at {level}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 0, "some group's levels were compared");

    // The feed records each result's outcome changes: every scored
    // entity got its first level from nothing.
    let (_, changes) = get(
        &a,
        &format!("{base}/api/history/events?kind=scorecard&limit=1000"),
    );
    let firsts: std::collections::BTreeSet<&str> = changes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["scorecard"]["id"] == card && i["scorecard"]["scoreBefore"].is_null())
        .map(|i| {
            assert_eq!(i["eventType"], "scorecard_changed");
            assert!(i["scorecard"]["scoreAfter"].is_u64(), "{i}");
            i["entityRef"].as_str().unwrap()
        })
        .collect();
    assert_eq!(firsts.len() as u64, scored);
    let (_, cart) = get(
        &a,
        &format!(
            "{base}/api/history/events?kind=scorecard&entityRef=component:default/cart-service"
        ),
    );
    assert!(
        cart["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["entityRef"] == "component:default/cart-service")
    );

    // The scorecard-levels metric ends where the rollups stand now.
    let metric = |q: &str| get(&a, &format!("{base}/api/metrics/{q}"));
    let last = |series: &Value, key: &str, measure: &str| -> f64 {
        series["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key && s["measure"] == measure)
            .unwrap_or_else(|| panic!("{key}/{measure} in {series}"))["values"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap()
    };
    let (s, levels) = metric(&format!(
        "scorecard-levels?scorecard={card}&interval=day&from=2026-01-01T00:00:00Z"
    ));
    assert_eq!(s, 200, "{levels}");
    assert_eq!(last(&levels, "all", "entities"), scored as f64);
    for l in rollup["groups"][0]["levels"].as_array().unwrap() {
        let name = l["level"].as_str().unwrap_or("(none)");
        assert_eq!(
            last(&levels, "all", &format!("level:{name}")),
            l["entities"].as_f64().unwrap(),
            "{name}"
        );
    }
    assert!(levels["movers"]["improved"].is_array());
    let (_, levels_by_owner) = metric(&format!(
        "scorecard-levels?scorecard={card}&by=owner&interval=week"
    ));
    for g in by_owner["groups"].as_array().unwrap() {
        let group = g["group"].as_str().unwrap();
        assert_eq!(
            last(&levels_by_owner, group, "entities"),
            g["entities"].as_f64().unwrap(),
            "{group}, with its child groups"
        );
    }
    assert_eq!(metric("scorecard-levels").0, 400);
    assert_eq!(metric("scorecard-levels?scorecard=nope").0, 404);

    // Rollups as of an instant come from the result history: now, the
    // stored rollups; before anything was ingested, nothing.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for by in ["all", "owner"] {
        let (s, then) = get(
            &a,
            &format!("{base}/api/scorecards/{card}/rollup?by={by}&asOf={now}"),
        );
        assert_eq!(s, 200, "{then}");
        let (_, stored) = get(&a, &format!("{base}/api/scorecards/{card}/rollup?by={by}"));
        assert_eq!(then, stored, "{by}");
    }
    let (_, before) = get(
        &a,
        &format!("{base}/api/scorecards/{card}/rollup?asOf=2000-01-01T00:00:00Z"),
    );
    assert_eq!(before["groups"], json!([]));

    // The results list as of an instant, from the same history: now, the
    // stored list, page by page and at one level; before, nothing.
    let list = |q: &str| -> Value {
        let (s, v) = get(&a, &format!("{base}/api/scorecards/{card}/entities?{q}"));
        assert_eq!(s, 200, "{q}: {v}");
        v
    };
    let stored = list("limit=1000");
    assert!(stored["items"].as_array().unwrap().len() >= 3, "{stored}");
    assert_eq!(
        list(&format!("limit=1000&asOf={now}"))["items"],
        stored["items"]
    );
    let first = list(&format!("limit=2&asOf={now}"));
    let cursor = first["pageInfo"]["nextCursor"].as_str().unwrap().to_owned();
    let second = list(&format!("limit=2&asOf={now}&cursor={cursor}"));
    assert_eq!(second["items"][0], stored["items"][2], "the cursor goes on");
    let level = stored["items"][0]["level"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    assert_eq!(
        list(&format!("limit=1000&level={level}&asOf={now}"))["items"],
        list(&format!("limit=1000&level={level}"))["items"],
        "{level}"
    );
    assert_eq!(
        list("limit=1000&asOf=2000-01-01T00:00:00Z")["items"],
        json!([])
    );
    // By owner, child groups included: the top group, a department and a
    // team of the demo org's tree, as of now the same as the stored list.
    let mut owned_somewhere = false;
    for owner in ["acme", "commerce-engineering", "fulfilment-engineering"] {
        let now_items = list(&format!("limit=1000&owner={owner}&asOf={now}"))["items"].clone();
        owned_somewhere |= !now_items.as_array().unwrap().is_empty();
        assert_eq!(
            now_items,
            list(&format!("limit=1000&owner={owner}"))["items"],
            "owner {owner}"
        );
    }
    assert!(owned_somewhere, "the demo org's groups own scored entities");

    // One entity's results as of an instant, from the same history: now,
    // the stored level, score and check statuses; before, no result.
    let cart = "component/default/cart-service";
    let (s, then) = get(
        &a,
        &format!("{base}/api/scorecards/entity/{cart}?asOf={now}"),
    );
    assert_eq!(s, 200, "{then}");
    let (_, stored) = get(&a, &format!("{base}/api/scorecards/entity/{cart}"));
    let outcome = |v: &Value| -> Vec<Value> {
        v["scorecards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let checks: Vec<Value> = c["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| json!([k["id"], k["status"]]))
                    .collect();
                json!([c["scorecard"], c["level"], c["score"], checks])
            })
            .collect()
    };
    assert!(!outcome(&stored).is_empty(), "{stored}");
    assert_eq!(outcome(&then), outcome(&stored));
    let (s, before) = get(
        &a,
        &format!("{base}/api/scorecards/entity/{cart}?asOf=2000-01-01T00:00:00Z"),
    );
    assert_eq!(s, 200, "{before}");
    assert_eq!(before["scorecards"], json!([]));

    // Technology: tags and API types, as the filters count them now.
    let (_, tags) = metric("technology?by=tag&interval=day");
    assert_eq!(
        last(&tags, &tag, "entities"),
        total(&a, &base, &format!("metadata.tags={tag}")) as f64
    );
    let (_, api_types) = metric("technology?by=api-type&interval=day");
    let apis: f64 = api_types["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["measure"] == "entities")
        .map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_f64()
                .unwrap()
        })
        .sum();
    assert_eq!(apis, total(&a, &base, "kind=api") as f64);
    let (s, coverage) = metric("catalog-coverage?by=org");
    assert_eq!(s, 200, "{coverage}");
    assert_eq!(metric("catalog-coverage?filter=kind=component").0, 400);
    assert_eq!(metric("technology?by=owner").0, 400);

    // The command line writes the same file format, beside the running
    // catalog, also as of an instant before anything was ingested.
    let out = dir.join("cli.parquet");
    let cli = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_catalog"))
            .arg("export")
            .args(args)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    cli(&["--what", "scorecard-results", "--format", "parquet"]);
    assert_eq!(
        one(&format!("select count(*) as n from '{}'", out.display()))["n"],
        scored
    );
    cli(&[
        "--what",
        "entities",
        "--format",
        "parquet",
        "--as-of",
        "2000-01-01T00:00:00Z",
    ]);
    assert_eq!(
        one(&format!("select count(*) as n from '{}'", out.display()))["n"],
        0
    );
    assert_eq!(
        get(
            &a,
            &format!(
                "{base}/api/export/scorecard-results?format=parquet&asOf=2000-01-01T00:00:00Z"
            )
        )
        .0,
        400
    );
    dev.running.stop();
}

/// Entities `group` owns directly, in the joined rows.
fn direct_total(joined: &[Value], group: &str) -> u64 {
    joined
        .iter()
        .filter(|j| j["owner"] == group)
        .map(|j| j["n"].as_u64().unwrap())
        .sum()
}

/// One JSON-RPC call to `/mcp`: the `result`, or the `error`.
fn mcp(a: &ureq::Agent, base: &str, id: u64, method: &str, params: Value) -> Value {
    let resp = a
        .post(&format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string());
    let (status, v) = answer(resp);
    assert_eq!(status, 200, "{method}: {v}");
    assert_eq!(v["id"], id, "{v}");
    v
}

/// A tool's answer: (is an error, the text it returned).
fn tool(a: &ureq::Agent, base: &str, name: &str, args: Value) -> (bool, String) {
    let v = mcp(
        a,
        base,
        7,
        "tools/call",
        json!({"name": name, "arguments": args}),
    );
    let result = &v["result"];
    assert!(result.is_object(), "{name}: {v}");
    let text = result["content"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (result["isError"] == true, text)
}

fn tool_json(a: &ureq::Agent, base: &str, name: &str, args: Value) -> Value {
    let (err, text) = tool(a, base, name, args);
    assert!(!err, "{name}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn agents_query_the_catalog_through_mcp() {
    let dev = dev_allowing_files();
    let a = agent();
    let base = dev.running.base.clone();
    // The walks below follow relations to entities of other files.
    settled(&a, &base);

    let init = mcp(
        &a,
        &base,
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "test", "version": "0"}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "catalog");
    assert!(init["result"]["capabilities"]["tools"].is_object());
    let tools = mcp(&a, &base, 2, "tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "search_entities",
        "get_entity",
        "entity_relations",
        "history",
        "scorecards",
        "adoption_metric",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }

    // A search answers what the API answers.
    let found = tool_json(
        &a,
        &base,
        "search_entities",
        json!({"filter": ["kind=component,spec.type=service"], "limit": 500}),
    );
    let services = total(&a, &base, "kind=component,spec.type=service");
    assert_eq!(found["items"].as_array().unwrap().len() as u64, services);
    assert_eq!(found["items"][0]["kind"], "Component");
    assert!(found["items"][0].get("relations").is_none(), "fields only");

    let cart = tool_json(
        &a,
        &base,
        "get_entity",
        json!({"entity_ref": "component:default/cart-service"}),
    );
    assert_eq!(cart["metadata"]["name"], "cart-service");
    let owner = cart["spec"]["owner"].as_str().unwrap().to_owned();

    // Relations two steps out reach the owner's own relations.
    let walk = tool_json(
        &a,
        &base,
        "entity_relations",
        json!({"entity_ref": "component:default/cart-service", "depth": 2}),
    );
    let edges = walk["edges"].as_array().unwrap();
    let owned_by = edges
        .iter()
        .find(|e| e["source"] == "component:default/cart-service" && e["type"] == "ownedBy")
        .expect("cart-service's owner");
    let owner_ref = owned_by["target"].as_str().unwrap().to_owned();
    assert!(owner_ref.ends_with(&owner), "{owner_ref} is {owner}");
    assert!(
        edges.iter().any(|e| e["source"] == owner_ref.as_str()),
        "the owner's relations at depth 2: {edges:?}"
    );
    let only = tool_json(
        &a,
        &base,
        "entity_relations",
        json!({"entity_ref": "component:default/cart-service", "types": ["ownedBy"]}),
    );
    assert_eq!(only["edges"].as_array().unwrap().len(), 1);

    let history = tool_json(
        &a,
        &base,
        "history",
        json!({"entity_ref": "component:default/cart-service"}),
    );
    assert_eq!(history["items"][0]["eventType"], "entity_created");

    let metric = tool_json(
        &a,
        &base,
        "adoption_metric",
        json!({"metric": "entities", "by": "kind", "interval": "day"}),
    );
    let components = metric["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "component")
        .unwrap();
    assert_eq!(
        components["values"].as_array().unwrap().last().unwrap(),
        &json!(total(&a, &base, "kind=component") as f64)
    );
    let cards = tool_json(&a, &base, "scorecards", json!({}));
    assert!(cards["items"].is_array() || cards.is_array(), "{cards}");

    // Mistakes come back as tool errors that say what is wrong.
    let (err, text) = tool(
        &a,
        &base,
        "get_entity",
        json!({"entity_ref": "cart-service"}),
    );
    assert!(err && text.contains("kind:namespace/name"), "{text}");
    let (err, text) = tool(
        &a,
        &base,
        "get_entity",
        json!({"entity_ref": "component:default/nope"}),
    );
    assert!(err && text.contains("404"), "{text}");
    let (err, text) = tool(&a, &base, "adoption_metric", json!({"metric": "colour"}));
    assert!(err && text.contains("404"), "{text}");
    dev.running.stop();
}

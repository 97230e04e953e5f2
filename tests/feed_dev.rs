//! The change feed end to end on `catalog dev`: every change of the demo
//! org's ingestion in commit order, pages that follow their cursor, a long
//! poll woken by an edited file, the body before and after (or its JSON
//! Patch), and the same changes as Server-Sent Events, resumed from
//! `Last-Event-ID` and live.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn events(a: &ureq::Agent, base: &str, query: &str) -> (Vec<Value>, String) {
    let (status, page) = get(a, &format!("{base}/api/history/events?{query}"));
    assert_eq!(status, 200, "{query}: {page}");
    let items = page["items"].as_array().unwrap().clone();
    let cursor = page["pageInfo"]["cursor"].as_str().unwrap().to_owned();
    (items, cursor)
}

fn seq(item: &Value) -> u64 {
    item["eventId"].as_str().unwrap().parse().unwrap()
}

/// Reads server-sent events until one of `ty` arrives: (id, data).
fn next_event(lines: &mut impl BufRead, ty: &str) -> (String, Value) {
    let (mut id, mut event) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(lines.read_line(&mut line).unwrap() > 0, "the stream ended");
        let line = line.trim_end();
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:")
            && event == ty
        {
            return (id, serde_json::from_str(v.trim()).unwrap());
        }
    }
}

#[test]
fn the_feed_pages_long_polls_diffs_and_streams_changes() {
    let dev = dev_allowing_files();
    let a = agent();
    let base = dev.running.base.clone();
    let org = dev.tmp.path().join("org");
    let cart = "component:default/cart-service";

    // Ingestion of the demo org shows as creations, cart-service among them.
    wait_for("cart-service's creation in the feed", WAIT, || {
        let (items, _) = events(&a, &base, &format!("entityRef={cart}"));
        items
            .iter()
            .any(|i| i["eventType"] == "entity_created")
            .then_some(())
    });
    // The whole org served, every kind of it: the scorecard outcomes of
    // cart-service follow its group, system and domain.
    wait_eq("the whole demo org", WAIT, demo_counts(&org), || {
        served_counts(&a, &base)
    });
    let served = total(&a, &base, "");

    // Pages of 7 follow their cursors without a gap or a repeat.
    let mut all = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (items, next) = events(&a, &base, &format!("after={cursor}&limit=7"));
        if items.is_empty() {
            assert_eq!(next, cursor, "an empty page keeps the cursor");
            break;
        }
        assert!(items.len() <= 7);
        all.extend(items);
        cursor = next;
    }
    // `after=now` starts at the feed's end: nothing already read comes again.
    let (items, now) = events(&a, &base, "after=now");
    let end: u64 = cursor.parse().unwrap();
    assert!(now.parse::<u64>().unwrap() >= end, "{now} < {end}");
    assert!(items.iter().all(|i| seq(i) > end), "after=now: {items:?}");
    let seqs: Vec<u64> = all.iter().map(seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "commit order, no gaps"
    );
    let created = all
        .iter()
        .filter(|i| i["eventType"] == "entity_created")
        .count() as u64;
    assert!(
        created >= served,
        "{created} creations for {served} entities"
    );
    let loc = all
        .iter()
        .find(|i| i["eventType"] == "location_created")
        .unwrap();
    assert!(
        loc["locationRef"].as_str().unwrap().starts_with("file:"),
        "{loc}"
    );
    let first = all.iter().find(|i| i["entityRef"] == cart).unwrap();
    assert_eq!(first["before"], Value::Null);
    assert_eq!(first["after"]["metadata"]["name"], "cart-service");
    assert_eq!(first["source"], "demo");

    // Selections: kinds of change, entity kinds, the filter language.
    let (locations, _) = events(&a, &base, "kind=location&limit=1000");
    assert!(!locations.is_empty());
    assert!(
        locations
            .iter()
            .all(|i| i["eventType"].as_str().unwrap().starts_with("location_"))
    );
    let (groups, _) = events(&a, &base, "kind=group&limit=1000");
    assert!(!groups.is_empty());
    assert!(
        groups
            .iter()
            .all(|i| i["entityRef"].as_str().unwrap().starts_with("group:"))
    );
    let (services, _) = events(
        &a,
        &base,
        "filter=kind=component,spec.type=service&limit=1000",
    );
    assert!(!services.is_empty());
    // Entity changes carry the body that matched; scorecard outcome
    // changes of the same entities come along (their entity matches now).
    for i in &services {
        match i["eventType"].as_str().unwrap() {
            "scorecard_changed" => {
                let (s, e) = get(
                    &a,
                    &format!(
                        "{base}/api/catalog/entities/by-name/{}",
                        i["entityRef"].as_str().unwrap().replacen(':', "/", 1)
                    ),
                );
                assert_eq!((s, &e["spec"]["type"]), (200, &json!("service")), "{i}");
            }
            _ => assert_eq!(i["after"]["spec"]["type"], "service", "{i}"),
        }
    }
    for bad in ["after=x", "diff=words", "entityRef=", "wait=-1", "filter=="] {
        let (status, body) = get(&a, &format!("{base}/api/history/events?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The catalog as of now, before the edit below.
    let t0 = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let components_t0 = total(&a, &base, "kind=component");
    std::thread::sleep(Duration::from_millis(50));

    // A long poll from the end is woken by an edit.
    let end = cursor.clone();
    let poll = {
        let (base, end) = (base.clone(), end.clone());
        std::thread::spawn(move || {
            let long = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(90)))
                .build()
                .into();
            events(
                &long,
                &base,
                &format!("after={end}&entityRef={cart}&kind=entity&wait=50"),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    set_title(&org, "cart-service", "Edited Cart");
    let (woken, next) = poll.join().unwrap();
    assert_eq!(woken.len(), 1, "{woken:?}");
    let change = &woken[0];
    assert_eq!(change["eventType"], "entity_updated");
    assert_eq!(change["entityRef"], cart);
    assert_eq!(change["before"]["metadata"].get("title"), None);
    assert_eq!(change["after"]["metadata"]["title"], "Edited Cart");
    assert!(seq(change) > end.parse().unwrap());
    assert_eq!(next, change["eventId"].as_str().unwrap());

    // Time travel: the routes answer as the catalog stood at t0.
    let at = |path: &str, t: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        get(
            &a,
            &format!(
                "{base}/api/catalog{path}{sep}asOf={}",
                t.replace('+', "%2B")
            ),
        )
    };
    let (status, now) = get(
        &a,
        &format!("{base}/api/catalog/entities/by-name/component/default/cart-service"),
    );
    assert_eq!(
        (status, &now["metadata"]["title"]),
        (200, &Value::from("Edited Cart"))
    );
    let (status, then) = at("/entities/by-name/component/default/cart-service", &t0);
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["metadata"].get("title"), None, "{then}");
    assert_eq!(then["metadata"]["uid"], now["metadata"]["uid"]);
    assert!(
        !then["relations"].as_array().unwrap().is_empty(),
        "relations as they stood"
    );
    let (status, _) = at(
        &format!(
            "/entities/by-uid/{}",
            now["metadata"]["uid"].as_str().unwrap()
        ),
        &t0,
    );
    assert_eq!(status, 200);
    let (_, page) = at("/entities/by-query?filter=kind=component&limit=1", &t0);
    assert_eq!(page["totalItems"].as_u64().unwrap(), components_t0);
    let (_, titled) = at(
        "/entities/by-query?filter=metadata.title=Edited%20Cart",
        &t0,
    );
    assert_eq!(titled["totalItems"], 0, "{titled}");
    let (_, titled) = get(
        &a,
        &format!("{base}/api/catalog/entities/by-query?filter=metadata.title=Edited%20Cart"),
    );
    assert_eq!(titled["totalItems"], 1, "{titled}");
    // A cursor keeps the instant it was made for.
    let (_, first) = at("/entities/by-query?filter=kind=component&limit=2", &t0);
    let next = first["pageInfo"]["nextCursor"].as_str().unwrap();
    let (_, second) = get(
        &a,
        &format!("{base}/api/catalog/entities/by-query?cursor={next}&limit=1000"),
    );
    assert_eq!(second["totalItems"].as_u64().unwrap(), components_t0);
    assert!(
        second["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["metadata"].get("title") != Some(&Value::from("Edited Cart")))
    );
    let (_, facets) = at("/entity-facets?facet=kind", &t0);
    let count: u64 = facets["facets"]["kind"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["value"] == "Component")
        .map(|f| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(count, components_t0);
    let (status, _) = at(
        "/entities/by-name/component/default/cart-service",
        "1970-01-01T00:00:00Z",
    );
    assert_eq!(status, 404, "nothing existed before the first change");
    let (_, empty) = at("/entities", "1970-01-01T00:00:00Z");
    assert_eq!(empty, Value::Array(vec![]));
    for bad in ["2999-01-01T00:00:00Z", "yesterday"] {
        let (status, body) = at("/entities", bad);
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The same change as a JSON Patch.
    let (patched, _) = events(
        &a,
        &base,
        &format!("after={end}&entityRef={cart}&kind=entity&diff=patch"),
    );
    assert_eq!(patched[0]["before"], Value::Null);
    let ops = patched[0]["patch"].as_array().unwrap();
    assert!(
        ops.iter().any(|op| op["op"] == "add"
            && op["path"] == "/metadata/title"
            && op["value"] == "Edited Cart"),
        "{ops:?}"
    );

    // The stream resumes after Last-Event-ID, then delivers live.
    let streaming: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
        .build()
        .into();
    let resp = streaming
        .get(&format!(
            "{base}/api/history/events/stream?entityRef={cart}"
        ))
        .header("Last-Event-ID", &end)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut lines = BufReader::new(resp.into_body().into_reader());
    let (id, replayed) = next_event(&mut lines, "entity_updated");
    assert_eq!(id, change["eventId"].as_str().unwrap());
    assert_eq!(replayed["after"]["metadata"]["title"], "Edited Cart");
    let file = org.join("components/checkout/cart-service.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("title: Edited Cart", "title: Live Cart"),
    )
    .unwrap();
    let (live_id, live) = next_event(&mut lines, "entity_updated");
    assert!(live_id.parse::<u64>().unwrap() > seq(change));
    assert_eq!(live["after"]["metadata"]["title"], "Live Cart");
    assert_eq!(live["before"]["metadata"]["title"], "Edited Cart");
    drop(lines);

    // Adoption over time: today's count of components is the catalog's.
    let from = (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%d");
    let metric = |q: &str| get(&a, &format!("{base}/api/metrics/{q}"));
    let (status, m) = metric(&format!("entities?interval=day&by=kind&from={from}"));
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["buckets"].as_array().unwrap().len(), 3);
    let series = m["series"].as_array().unwrap();
    let components = series.iter().find(|s| s["key"] == "component").unwrap();
    let last = components["values"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_f64()
        .unwrap();
    assert_eq!(last as u64, total(&a, &base, "kind=component"));
    let (_, own) = metric(&format!("ownership-coverage?interval=day&from={from}"));
    let coverage = own["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["measure"] == "coverage")
        .unwrap();
    let c = coverage["values"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        c > 0.5 && c <= 1.0,
        "the demo's components mostly have owners: {own}"
    );
    let (_, ch) = metric(&format!("changes?interval=day&by=change&from={from}"));
    let updated: f64 = ch["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["key"] == "entity_updated")
        .flat_map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
        })
        .sum();
    assert!(updated >= 2.0, "both edits: {ch}");
    let csv = a
        .get(&format!(
            "{base}/api/metrics/entities?interval=day&by=kind&from={from}"
        ))
        .header("Accept", "text/csv")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("start,end,key,measure,value"));
    assert!(rows.any(|r| r.contains(",component,entities,")), "{csv}");
    for (bad, status) in [
        ("nope", 404),
        ("entities?interval=hour", 400),
        ("entities?by=colour", 400),
        ("changes?by=owner", 400),
    ] {
        assert_eq!(metric(bad).0, status, "{bad}");
    }

    // Exports: the served catalog, line for line; the feed; the past.
    let text = |path: &str| {
        let mut resp = a.get(&format!("{base}/api/export/{path}")).call().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .unwrap()
    };
    let served = total(&a, &base, "");
    let lines = text("entities?format=jsonl");
    assert_eq!(lines.lines().count() as u64, served);
    for l in lines.lines() {
        let e: Value = serde_json::from_str(l).unwrap();
        assert!(e["metadata"]["uid"].is_string());
    }
    let csv = text("entities?format=csv");
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some(
            "entity_ref,kind,namespace,name,uid,title,type,lifecycle,owner,system,domain,tags,location"
        )
    );
    assert_eq!(rows.count() as u64, served);
    let cart_row = csv
        .lines()
        .find(|l| l.starts_with("component:default/cart-service,"))
        .unwrap();
    assert!(cart_row.contains(",Live Cart,"), "{cart_row}");
    let relations = text("relations?format=csv");
    assert!(
        relations
            .lines()
            .any(|l| l.starts_with("component:default/cart-service,ownedBy,group:")),
        "{relations}"
    );
    let past = text(&format!(
        "entities?format=csv&asOf={}",
        t0.replace('+', "%2B")
    ));
    assert!(!past.contains("Live Cart") && !past.contains("Edited Cart"));
    let (feed, cursor) = events(&a, &base, "after=0&limit=1000");
    assert!(feed.len() < 1000, "the demo's feed fits one page");
    let history = text("history?format=jsonl");
    assert_eq!(history.lines().count(), feed.len(), "every change, once");
    assert_eq!(cursor, feed.len().to_string());
    let first_line: Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    assert_eq!(first_line["event_id"], "1");
    let feed_len: u64 = history
        .lines()
        .last()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .unwrap();
    assert_eq!(
        feed_len,
        history.lines().count() as u64,
        "the whole feed, in order"
    );
    assert_eq!(get(&a, &format!("{base}/api/export/nope")).0, 404);
    assert_eq!(
        get(&a, &format!("{base}/api/export/entities?format=xml")).0,
        400
    );

    // The same export from the command line, beside the running catalog.
    let out = dev.tmp.path().join("entities.csv");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_catalog"))
        .args([
            "export",
            "--what",
            "entities",
            "--format",
            "csv",
            "--data-dir",
        ])
        .arg(dev.tmp.path().join("data"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        csv,
        "the file is the route's answer"
    );

    dev.running.stop();
}

/// A store that already holds two years of history: a component created
/// two years ago and deleted a year ago at a location of its own, folded
/// as the projector would have (a new store's markers first).
fn store_with_old_history(data: &std::path::Path) -> usize {
    use chrono::{Duration as Days, Utc};
    use projector::{Fold, RocksStore, Store};
    use proto::{EntityEvent, LocationKey, LocationOutcome, ProcessedEntity, SourceId};
    let store = RocksStore::open(&data.join("projections"), 8 << 20).unwrap();
    projector::postings::upgrade(&store).unwrap();
    projector::temporal::upgrade(&store).unwrap();
    let loc = LocationKey::new("file:/old/legacy.yaml");
    let entity: proto::Entity = serde_json::from_value(json!({
        "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": "retired-ledger", "namespace": "default"},
        "spec": {"type": "service", "lifecycle": "deprecated", "owner": "group:default/finance"}
    }))
    .unwrap();
    let created = Utc::now() - Days::days(730);
    let event = |n: u128, at, outcome| EntityEvent {
        event_id: uuid::Uuid::from_u128(n),
        source: SourceId::new("files"),
        observed_at: at,
        location: loc.clone(),
        origin: LocationKey::new("file:/old"),
        first_seen_at: created,
        observation_id: uuid::Uuid::from_u128(100 + n),
        outcome,
    };
    let events = [
        event(
            1,
            created,
            LocationOutcome::Processed {
                entities: vec![ProcessedEntity {
                    entity,
                    relations: vec![],
                }],
                errors: vec![],
            },
        ),
        event(2, Utc::now() - Days::days(365), LocationOutcome::Removed),
    ];
    for e in &events {
        let mut fold = Fold::new(&store);
        fold.apply(e).unwrap();
        store.write(fold.finish().unwrap()).unwrap();
    }
    projector::Catalog::new(std::sync::Arc::new(store))
        .feed_last()
        .unwrap() as usize
}

#[test]
fn feed_retention_drops_old_changes_and_keeps_history_and_the_numbering() {
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let old = store_with_old_history(&data);
    assert!(old >= 2, "the old history holds a creation and a deletion");
    let mut cfg = catalog::Config {
        data_dir: data,
        ..Default::default()
    };
    cfg.projector.feed_retention_days = Some(30);
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("demo", org));
    let running = run_dev(cfg);
    let a = agent();
    let base = running.base.clone();

    // The demo org is ingested; the changes older than 30 days leave the
    // feed, and the feed's numbering goes on after them.
    let items = wait_for("the old changes pruned from the feed", WAIT, || {
        let (items, _) = events(&a, &base, "limit=1000");
        let first = items.first()?;
        (seq(first) > old as u64).then_some(items)
    });
    let month_ago = chrono::Utc::now() - chrono::Duration::days(30);
    for i in &items {
        let at = chrono::DateTime::parse_from_rfc3339(i["eventAt"].as_str().unwrap()).unwrap();
        assert!(at > month_ago, "a change older than the retention: {i}");
        assert_ne!(i["entityRef"], "component:default/retired-ledger", "{i}");
    }
    wait_for("the demo org's changes in the feed", WAIT, || {
        let (items, _) = events(&a, &base, "entityRef=component:default/cart-service");
        (!items.is_empty()).then_some(())
    });

    // What the feed no longer lists is still the catalog's history: the
    // entity's own history and the catalog as of a year and a half ago.
    let (status, history) = get(
        &a,
        &format!("{base}/api/history/entities/component/default/retired-ledger"),
    );
    assert_eq!(status, 200, "{history}");
    assert!(history.to_string().contains("deprecated"), "{history}");
    let then = (chrono::Utc::now() - chrono::Duration::days(540))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, past) = get(
        &a,
        &format!(
            "{base}/api/catalog/entities/by-name/component/default/retired-ledger?asOf={then}"
        ),
    );
    assert_eq!(status, 200, "{past}");
    assert_eq!(past["spec"]["lifecycle"], "deprecated");
    let (status, _) = get(
        &a,
        &format!("{base}/api/catalog/entities/by-name/component/default/retired-ledger"),
    );
    assert_eq!(status, 404, "deleted a year ago");
    running.stop();
}

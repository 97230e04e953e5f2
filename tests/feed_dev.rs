//! The change feed end to end on `catalog dev`: every change of the demo
//! org's ingestion in commit order, pages that follow their cursor, a long
//! poll woken by an edited file, the body before and after (or its JSON
//! Patch), and the same changes as Server-Sent Events, resumed from
//! `Last-Event-ID` and live.

mod common;

use common::*;
use serde_json::Value;
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
    let served = wait_for("every file processed", WAIT, || {
        let n = total(&a, &base, "");
        (n > 0 && n == total(&a, &base, "")).then_some(n)
    });

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
    assert!(
        services
            .iter()
            .all(|i| i["after"]["spec"]["type"] == "service")
    );
    for bad in ["after=x", "diff=words", "entityRef=", "wait=-1", "filter=="] {
        let (status, body) = get(&a, &format!("{base}/api/history/events?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
    }

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
                &format!("after={end}&entityRef={cart}&wait=50"),
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

    // The same change as a JSON Patch.
    let (patched, _) = events(
        &a,
        &base,
        &format!("after={end}&entityRef={cart}&diff=patch"),
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

    dev.running.stop();
}

//! The HTTP API end to end: a real in-memory store filled through the real
//! fold, every route called through the router.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use projector::{Catalog, Fold, MemStore, Store};
use proto::{
    EntityEvent, EntityRef, ErrorKind, LocationKey, LocationOutcome, ProcessedEntity,
    ProcessingError, Relation, RelationType, SourceId,
};
use query::{AppState, router};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use uuid::Uuid;

// ---------------------------------------------------------------- fixture

fn entity(kind: &str, name: &str, meta: Value, spec: Value) -> ProcessedEntity {
    let mut metadata = json!({"name": name, "namespace": "default"});
    for (k, v) in meta.as_object().cloned().unwrap_or_default() {
        metadata[k] = v;
    }
    let mut doc =
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": metadata});
    if !spec.is_null() {
        doc["spec"] = spec.clone();
    }
    let entity: proto::Entity = serde_json::from_value(doc).unwrap();
    let me = entity.entity_ref();
    let mut relations = Vec::new();
    if let Some(owner) = spec.get("owner").and_then(Value::as_str) {
        let group = EntityRef::parse(owner, Some("group"), "default").unwrap();
        relations.push(Relation {
            source: me.clone(),
            relation_type: RelationType::OwnedBy,
            target: group.clone(),
        });
        relations.push(Relation {
            source: group,
            relation_type: RelationType::OwnerOf,
            target: me.clone(),
        });
    }
    ProcessedEntity { entity, relations }
}

fn component(name: &str, owner: &str, ty: &str, tags: &[&str]) -> ProcessedEntity {
    entity(
        "Component",
        name,
        json!({"tags": tags}),
        json!({"type": ty, "lifecycle": "production", "owner": owner}),
    )
}

fn event(
    loc: &str,
    first_seen: i64,
    at: i64,
    entities: Vec<ProcessedEntity>,
    errors: Vec<ProcessingError>,
) -> EntityEvent {
    EntityEvent {
        event_id: Uuid::now_v7(),
        source: SourceId::new("test"),
        observed_at: Utc.timestamp_opt(1_700_000_000 + at, 0).unwrap(),
        location: LocationKey::new(loc),
        origin: LocationKey::new("file:/org/root.yaml"),
        first_seen_at: Utc.timestamp_opt(first_seen, 0).unwrap(),
        observation_id: Uuid::now_v7(),
        outcome: LocationOutcome::Processed { entities, errors },
    }
}

fn apply(store: &MemStore, events: &[EntityEvent]) {
    let mut fold = Fold::new(store);
    for e in events {
        fold.apply(e).unwrap();
    }
    store.write(fold.finish().unwrap()).unwrap();
}

const A: &str = "file:/org/a.yaml";
const B: &str = "file:/org/b.yaml";
const BROKEN: &str = "file:/org/broken.yaml";
const DUP: &str = "file:/org/dup.yaml";
const MANY: &str = "file:/org/many.yaml";

fn pay(description: Option<&str>) -> ProcessedEntity {
    let mut meta = json!({"title": "Payments", "tags": ["java", "grpc"]});
    if let Some(d) = description {
        meta["description"] = json!(d);
    }
    entity(
        "Component",
        "pay",
        meta,
        json!({"type": "service", "lifecycle": "production", "owner": "team-a"}),
    )
}

/// The served catalog (13 entities):
/// - a.yaml: component pay (service, team-a, tags java+grpc, title
///   Payments; updated once), ledger (service, team-a, tag java); it also
///   yielded component web, since removed;
/// - b.yaml: group team-a, API pay-api (openapi, team-a), component Search
///   (library, team-b), system platform (team-a, no spec.type);
/// - many.yaml: components c1..c7 (website, team-c);
/// - broken.yaml: nothing, one YAML error;
/// - dup.yaml: a second copy of component pay, seen later: a conflict.
fn store() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let yaml_error = ProcessingError {
        location: LocationKey::new(BROKEN),
        kind: ErrorKind::Yaml,
        message: "did not find expected key".into(),
        document: Some(0),
        line: Some(3),
        column: Some(5),
        entity: None,
    };
    let many = (1..=7)
        .map(|i| component(&format!("c{i}"), "team-c", "website", &[]))
        .collect();
    apply(
        &store,
        &[
            event(
                A,
                1,
                1,
                vec![
                    pay(None),
                    component("ledger", "team-a", "service", &["java"]),
                    component("web", "team-b", "website", &[]),
                ],
                vec![],
            ),
            event(
                B,
                2,
                2,
                vec![
                    entity(
                        "Group",
                        "team-a",
                        json!({}),
                        json!({"type": "team", "children": []}),
                    ),
                    entity(
                        "API",
                        "pay-api",
                        json!({}),
                        json!({"type": "openapi", "owner": "team-a"}),
                    ),
                    component("Search", "team-b", "library", &[]),
                    entity("System", "platform", json!({}), json!({"owner": "team-a"})),
                ],
                vec![],
            ),
            event(MANY, 3, 3, many, vec![]),
            event(BROKEN, 4, 4, vec![], vec![yaml_error]),
            event(
                DUP,
                5,
                5,
                vec![entity(
                    "Component",
                    "pay",
                    json!({}),
                    json!({"type": "service", "owner": "team-z"}),
                )],
                vec![],
            ),
        ],
    );
    // Later: pay is updated and web goes away, in separate batches.
    apply(
        &store,
        &[event(
            A,
            1,
            10,
            vec![
                pay(Some("Takes money")),
                component("ledger", "team-a", "service", &["java"]),
                component("web", "team-b", "website", &[]),
            ],
            vec![],
        )],
    );
    apply(
        &store,
        &[event(
            A,
            1,
            20,
            vec![
                pay(Some("Takes money")),
                component("ledger", "team-a", "service", &["java"]),
            ],
            vec![],
        )],
    );
    store
}

fn state_with(
    lag: Option<i64>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> AppState {
    let store: Arc<dyn Store> = store();
    AppState {
        catalog: Catalog::new(store),
        lag: Arc::new(move || lag.ok_or_else(|| "lag unknown".to_owned())),
        metrics,
        log_writer: None,
        location_access: None,
        scorecard_writer: None,
        auth: Arc::new(query::Auth::new(true)),
        limits: query::Limits::default(),
    }
}

fn app() -> Router {
    router(state_with(Some(0), None))
}

const ALL_REFS: [&str; 13] = [
    "api:default/pay-api",
    "component:default/c1",
    "component:default/c2",
    "component:default/c3",
    "component:default/c4",
    "component:default/c5",
    "component:default/c6",
    "component:default/c7",
    "component:default/ledger",
    "component:default/pay",
    "component:default/search",
    "group:default/team-a",
    "system:default/platform",
];

// ---------------------------------------------------------------- helpers

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

async fn get(app: &Router, uri: &str) -> Resp {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, uri: &str, body: Value) -> Resp {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, req).await
}

async fn ok(app: &Router, uri: &str) -> Value {
    let r = get(app, uri).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
    r.body
}

/// Ref keys of an array of served entities, in order.
fn refs(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|e| {
            EntityRef::new(
                e["kind"].as_str().unwrap(),
                e["metadata"]["namespace"].as_str().unwrap_or("default"),
                e["metadata"]["name"].as_str().unwrap(),
            )
            .key()
        })
        .collect()
}

fn assert_error(r: &Resp, status: StatusCode, name: &str, method: &str, url: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"]["name"], name, "{}", r.text);
    assert!(r.body["error"]["message"].is_string(), "{}", r.text);
    assert_eq!(r.body["request"], json!({"method": method, "url": url}));
    assert_eq!(r.body["response"], json!({"statusCode": status.as_u16()}));
}

fn next_link(r: &Resp) -> Option<String> {
    let link = r.headers.get(header::LINK)?.to_str().unwrap().to_string();
    let url = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("bad link {link}"));
    Some(url.to_string())
}

// ---------------------------------------------------------------- entities

#[tokio::test]
async fn entities_lists_all_by_ref_key() {
    let app = app();
    let all = ok(&app, "/api/catalog/entities").await;
    assert_eq!(refs(&all), ALL_REFS);
    // Served as stored: uid, etag and stitched relations.
    let pay = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metadata"]["name"] == "pay")
        .unwrap();
    assert!(pay["metadata"]["uid"].is_string() && pay["metadata"]["etag"].is_string());
    assert_eq!(
        pay["spec"]["owner"], "team-a",
        "the first-seen location wins"
    );
    assert_eq!(pay["metadata"]["description"], "Takes money");
    assert!(
        pay["relations"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "ownedBy", "targetRef": "group:default/team-a"}))
    );
    let group = ok(&app, "/api/catalog/entities/by-name/group/default/team-a").await;
    assert!(
        group["relations"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "ownerOf", "targetRef": "component:default/pay"}))
    );
}

#[tokio::test]
async fn entities_filters() {
    let app = app();
    let q = |f: &str| format!("/api/catalog/entities?{f}");
    // AND within a filter, case-insensitive keys and values.
    assert_eq!(
        refs(&ok(&app, &q("filter=KIND=component,spec.TYPE=SERVICE")).await),
        ["component:default/ledger", "component:default/pay"]
    );
    // OR across filter parameters.
    assert_eq!(
        refs(&ok(&app, &q("filter=kind=group&filter=kind=api")).await),
        ["api:default/pay-api", "group:default/team-a"]
    );
    // Values of one key within a filter are OR'ed.
    assert_eq!(
        refs(&ok(&app, &q("filter=spec.type=library,spec.type=openapi")).await),
        ["api:default/pay-api", "component:default/search"]
    );
    // Exists-only.
    assert_eq!(
        refs(&ok(&app, &q("filter=metadata.tags")).await),
        ["component:default/ledger", "component:default/pay"]
    );
    assert_eq!(
        refs(&ok(&app, &q("filter=metadata.tags=grpc")).await),
        ["component:default/pay"]
    );
    // Relations.
    assert_eq!(
        refs(&ok(&app, &q("filter=relations.ownedby=group:default/team-a")).await),
        [
            "api:default/pay-api",
            "component:default/ledger",
            "component:default/pay",
            "system:default/platform"
        ]
    );
    assert_eq!(
        refs(
            &ok(
                &app,
                &q("filter=relations.ownedBy=GROUP:default/Team-B,kind=component")
            )
            .await
        ),
        ["component:default/search"]
    );
    // Nothing matches.
    assert_eq!(ok(&app, &q("filter=kind=template")).await, json!([]));
}

#[tokio::test]
async fn entities_fields_projection() {
    let app = app();
    let items = ok(
        &app,
        "/api/catalog/entities?filter=kind=group,kind=api&fields=kind,metadata.name&fields=spec.type",
    )
    .await;
    assert_eq!(
        items,
        json!([
            {"kind": "API", "metadata": {"name": "pay-api"}, "spec": {"type": "openapi"}},
            {"kind": "Group", "metadata": {"name": "team-a"}, "spec": {"type": "team"}},
        ])
    );
    let r = get(&app, "/api/catalog/entities?fields=spec.x[0]").await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "InputError",
        "GET",
        "/api/catalog/entities?fields=spec.x[0]",
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fields")
    );
}

#[tokio::test]
async fn entities_pages_with_limit_offset_and_after() {
    let app = app();
    let first = get(&app, "/api/catalog/entities?limit=5").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(refs(&first.body), ALL_REFS[..5]);
    // Follow the Link headers to the end.
    let mut seen = refs(&first.body);
    let mut link = next_link(&first);
    let mut pages = 1;
    while let Some(url) = link {
        assert!(
            url.starts_with("/api/catalog/entities?") && url.contains("limit=5"),
            "{url}"
        );
        let r = get(&app, &url).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text);
        seen.extend(refs(&r.body));
        link = next_link(&r);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ALL_REFS);

    // An exact last page has no Link.
    let r = get(&app, "/api/catalog/entities?limit=3&offset=10").await;
    assert_eq!(refs(&r.body), ALL_REFS[10..]);
    assert!(next_link(&r).is_none());

    // Offset, then after: the link drops offset and keeps filter.
    let r = get(
        &app,
        "/api/catalog/entities?filter=kind=component&offset=2&limit=3",
    )
    .await;
    assert_eq!(
        refs(&r.body),
        [
            "component:default/c3",
            "component:default/c4",
            "component:default/c5"
        ]
    );
    let url = next_link(&r).unwrap();
    assert!(
        !url.contains("offset=") && url.contains("filter=kind=component"),
        "{url}"
    );
    let r = get(&app, &url).await;
    assert_eq!(
        refs(&r.body),
        [
            "component:default/c6",
            "component:default/c7",
            "component:default/ledger"
        ]
    );
    let r = get(&app, &next_link(&r).unwrap()).await;
    assert_eq!(
        refs(&r.body),
        ["component:default/pay", "component:default/search"]
    );
    assert!(next_link(&r).is_none());
}

#[tokio::test]
async fn entities_order() {
    let app = app();
    let body = ok(
        &app,
        "/api/catalog/entities?filter=kind=component&order=desc:metadata.name&limit=4",
    )
    .await;
    assert_eq!(
        refs(&body),
        [
            "component:default/search",
            "component:default/pay",
            "component:default/ledger",
            "component:default/c7"
        ]
    );
    // spec.type ascending; entities without one (group has "team") last,
    // ties by ref key; paging keeps the order.
    let r = get(&app, "/api/catalog/entities?order=asc:spec.type&limit=7").await;
    let mut got = refs(&r.body);
    let r = get(&app, &next_link(&r).unwrap()).await;
    got.extend(refs(&r.body));
    assert!(next_link(&r).is_none());
    assert_eq!(
        got,
        [
            "component:default/search", // library
            "api:default/pay-api",      // openapi
            "component:default/ledger", // service
            "component:default/pay",
            "group:default/team-a", // team
            "component:default/c1", // website
            "component:default/c2",
            "component:default/c3",
            "component:default/c4",
            "component:default/c5",
            "component:default/c6",
            "component:default/c7",
            "system:default/platform", // no spec.type: last
        ]
    );
}

#[tokio::test]
async fn by_query_pages_through_cursors() {
    let app = app();
    let mut url = "/api/catalog/entities/by-query?limit=4&fields=kind,metadata.name".to_string();
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        let body = ok(&app, &url).await;
        assert_eq!(body["totalItems"], 13, "{body}");
        let page = refs(&body["items"]);
        assert!(page.len() <= 4);
        assert_eq!(
            body["items"][0].as_object().unwrap().len(),
            2,
            "fields apply to every page"
        );
        seen.extend(page.clone());
        pages.push(body.clone());
        match body["pageInfo"]["nextCursor"].as_str() {
            // The cursor alone carries the query.
            Some(c) => {
                url = format!(
                    "/api/catalog/entities/by-query?limit=4&fields=kind,metadata.name&cursor={c}"
                )
            }
            None => break,
        }
    }
    assert_eq!(pages.len(), 4);
    assert_eq!(seen, ALL_REFS, "all items, in order, without duplicates");
    assert!(pages[0]["pageInfo"].get("prevCursor").is_none());
    // Back from the last page gives the third.
    let prev = pages[3]["pageInfo"]["prevCursor"].as_str().unwrap();
    let body = ok(
        &app,
        &format!("/api/catalog/entities/by-query?limit=4&cursor={prev}"),
    )
    .await;
    assert_eq!(refs(&body["items"]), refs(&pages[2]["items"]));
    assert!(body["pageInfo"]["nextCursor"].is_string());

    // With a filter, the cursor keeps it (the filter is not repeated).
    let body = ok(
        &app,
        "/api/catalog/entities/by-query?filter=kind=component,spec.type=website&limit=5",
    )
    .await;
    assert_eq!(body["totalItems"], 7);
    let c = body["pageInfo"]["nextCursor"].as_str().unwrap();
    let body = ok(&app, &format!("/api/catalog/entities/by-query?cursor={c}")).await;
    assert_eq!(
        refs(&body["items"]),
        ["component:default/c6", "component:default/c7"]
    );
    assert_eq!(body["totalItems"], 7);
    assert!(body["pageInfo"].get("nextCursor").is_none());

    // limit=0 counts only.
    let body = ok(
        &app,
        "/api/catalog/entities/by-query?limit=0&filter=kind=api",
    )
    .await;
    assert_eq!(body, json!({"items": [], "totalItems": 1, "pageInfo": {}}));
    // Offset on the first request.
    let body = ok(&app, "/api/catalog/entities/by-query?offset=11").await;
    assert_eq!(refs(&body["items"]), ALL_REFS[11..]);
}

#[tokio::test]
async fn by_query_order_field_desc_and_missing_last() {
    let app = app();
    let mut url = "/api/catalog/entities/by-query?orderField=spec.type,desc&limit=5".to_string();
    let mut seen = Vec::new();
    loop {
        let body = ok(&app, &url).await;
        seen.extend(refs(&body["items"]));
        match body["pageInfo"]["nextCursor"].as_str() {
            Some(c) => url = format!("/api/catalog/entities/by-query?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "component:default/c1", // website
            "component:default/c2",
            "component:default/c3",
            "component:default/c4",
            "component:default/c5",
            "component:default/c6",
            "component:default/c7",
            "group:default/team-a",     // team
            "component:default/ledger", // service
            "component:default/pay",
            "api:default/pay-api",      // openapi
            "component:default/search", // library
            "system:default/platform",  // none: last
        ]
    );
    let body = ok(&app, "/api/catalog/entities/by-query?orderField=metadata.name,desc&filter=kind=component&limit=3").await;
    assert_eq!(
        refs(&body["items"]),
        [
            "component:default/search",
            "component:default/pay",
            "component:default/ledger"
        ]
    );
}

#[tokio::test]
async fn by_query_full_text_filter() {
    let app = app();
    let body = ok(
        &app,
        "/api/catalog/entities/by-query?fullTextFilterTerm=PAY&fullTextFilterFields=metadata.name,metadata.title",
    )
    .await;
    assert_eq!(body["totalItems"], 2);
    assert_eq!(
        refs(&body["items"]),
        ["api:default/pay-api", "component:default/pay"]
    );
    // Matches the title too ("Payments"), and substrings anywhere.
    let body = ok(&app, "/api/catalog/entities/by-query?fullTextFilterTerm=ments&fullTextFilterFields=metadata.title").await;
    assert_eq!(refs(&body["items"]), ["component:default/pay"]);
    // Default field: the sort field.
    let body = ok(
        &app,
        "/api/catalog/entities/by-query?fullTextFilterTerm=edg&orderField=metadata.name,asc",
    )
    .await;
    assert_eq!(refs(&body["items"]), ["component:default/ledger"]);
    // Combined with a filter, paged with the cursor.
    let body = ok(
        &app,
        "/api/catalog/entities/by-query?filter=kind=component&fullTextFilterTerm=c&fullTextFilterFields=metadata.name&limit=6",
    )
    .await;
    assert_eq!(body["totalItems"], 8, "c1..c7 and search");
    let c = body["pageInfo"]["nextCursor"].as_str().unwrap();
    let body = ok(&app, &format!("/api/catalog/entities/by-query?cursor={c}")).await;
    assert_eq!(
        refs(&body["items"]),
        ["component:default/c7", "component:default/search"]
    );
}

#[tokio::test]
async fn by_name_and_its_404() {
    let app = app();
    let e = ok(
        &app,
        "/api/catalog/entities/by-name/COMPONENT/Default/search",
    )
    .await;
    assert_eq!(e["metadata"]["name"], "Search");
    let url = "/api/catalog/entities/by-name/component/default/nope";
    let r = get(&app, url).await;
    assert_error(&r, StatusCode::NOT_FOUND, "NotFoundError", "GET", url);
    assert_eq!(
        r.body["error"]["message"],
        "No entity named 'nope' found, with kind 'component' in namespace 'default'"
    );
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // The deleted entity is gone.
    let r = get(&app, "/api/catalog/entities/by-name/component/default/web").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn by_uid() {
    let app = app();
    let e = ok(&app, "/api/catalog/entities/by-name/api/default/pay-api").await;
    let uid = e["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        ok(&app, &format!("/api/catalog/entities/by-uid/{uid}")).await,
        e
    );
    let r = get(
        &app,
        "/api/catalog/entities/by-uid/00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "NotFoundError",
        "GET",
        "/api/catalog/entities/by-uid/00000000-0000-0000-0000-000000000000",
    );
}

#[tokio::test]
async fn by_refs_keeps_order_with_nulls() {
    let app = app();
    let r = post(
        &app,
        "/api/catalog/entities/by-refs",
        json!({"entityRefs": ["group:default/team-a", "component:default/missing", "Component:Default/PAY", "not a ref"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["metadata"]["name"], "team-a");
    assert!(items[1].is_null());
    assert_eq!(items[2]["metadata"]["name"], "pay");
    assert!(items[3].is_null());

    // fields in the body and in the query; filter in the query.
    let r = post(
        &app,
        "/api/catalog/entities/by-refs?fields=kind&filter=kind=component",
        json!({"entityRefs": ["component:default/ledger", "group:default/team-a"], "fields": ["metadata.name"]}),
    )
    .await;
    assert_eq!(
        r.body,
        json!({"items": [{"kind": "Component", "metadata": {"name": "ledger"}}, null]})
    );

    let r = post(&app, "/api/catalog/entities/by-refs", json!({"refs": []})).await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "InputError",
        "POST",
        "/api/catalog/entities/by-refs",
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entityRefs"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn ancestry_is_the_entity_itself() {
    let app = app();
    let body = ok(
        &app,
        "/api/catalog/entities/by-name/component/default/SEARCH/ancestry",
    )
    .await;
    assert_eq!(body["rootEntityRef"], "component:default/Search");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["entity"]["metadata"]["name"], "Search");
    assert_eq!(items[0]["parentEntityRefs"], json!([]));
    let r = get(
        &app,
        "/api/catalog/entities/by-name/component/default/nope/ancestry",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body["error"]["message"],
        "No such entity component:default/nope"
    );
}

#[tokio::test]
async fn facets_with_and_without_filter() {
    let app = app();
    let body = ok(
        &app,
        "/api/catalog/entity-facets?facet=kind&facet=spec.type",
    )
    .await;
    assert_eq!(
        body["facets"]["kind"],
        json!([
            {"value": "Component", "count": 10},
            {"value": "API", "count": 1},
            {"value": "Group", "count": 1},
            {"value": "System", "count": 1},
        ])
    );
    assert_eq!(
        body["facets"]["spec.type"],
        json!([
            {"value": "website", "count": 7},
            {"value": "service", "count": 2},
            {"value": "library", "count": 1},
            {"value": "openapi", "count": 1},
            {"value": "team", "count": 1},
        ])
    );
    let body = ok(
        &app,
        "/api/catalog/entity-facets?facet=spec.type&facet=metadata.tags&filter=relations.ownedby=group:default/team-a",
    )
    .await;
    assert_eq!(
        body,
        json!({"facets": {
            "spec.type": [{"value": "service", "count": 2}, {"value": "openapi", "count": 1}],
            "metadata.tags": [{"value": "java", "count": 2}, {"value": "grpc", "count": 1}],
        }})
    );
    let r = get(&app, "/api/catalog/entity-facets").await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "InputError",
        "GET",
        "/api/catalog/entity-facets",
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("facet")
    );
}

// ---------------------------------------------------------------- locations

#[tokio::test]
async fn locations_and_their_errors() {
    let app = app();
    let list = ok(&app, "/api/catalog/locations").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 5);
    let by_target = |t: &str| {
        list.iter()
            .map(|l| &l["data"])
            .find(|d| d["target"] == t)
            .unwrap_or_else(|| panic!("no location {t}"))
            .clone()
    };
    let a = by_target("/org/a.yaml");
    assert_eq!(a["type"], "file");
    assert_eq!(a.as_object().unwrap().len(), 4);
    assert!(
        a["entityRef"]
            .as_str()
            .unwrap()
            .starts_with("location:default/generated-")
    );
    let id = a["id"].as_str().unwrap();
    assert!(Uuid::parse_str(id).is_ok());
    assert_eq!(ok(&app, &format!("/api/catalog/locations/{id}")).await, a);
    assert_eq!(
        ok(&app, &format!("/api/catalog/locations/{id}/errors")).await,
        json!({"location": a, "errors": []})
    );

    let broken = by_target("/org/broken.yaml");
    let body = ok(
        &app,
        &format!(
            "/api/catalog/locations/{}/errors",
            broken["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(body["location"], broken);
    assert_eq!(
        body["errors"],
        json!([{"location": BROKEN, "kind": "yaml", "message": "did not find expected key",
                "document": 0, "line": 3, "column": 5}])
    );

    // The later copy of pay conflicts.
    let dup = by_target("/org/dup.yaml");
    let body = ok(
        &app,
        &format!(
            "/api/catalog/locations/{}/errors",
            dup["id"].as_str().unwrap()
        ),
    )
    .await;
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["kind"], "conflict");
    assert_eq!(errors[0]["entity"], "component:default/pay");
    assert!(errors[0]["message"].as_str().unwrap().contains(A));

    // All errors: exactly the two locations with errors.
    let all = ok(&app, "/api/catalog/errors").await;
    let targets: BTreeSet<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["location"]["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from(["/org/broken.yaml", "/org/dup.yaml"])
    );

    let url = "/api/catalog/locations/3f1b2c4d-0000-0000-0000-000000000000";
    let r = get(&app, url).await;
    assert_error(&r, StatusCode::NOT_FOUND, "NotFoundError", "GET", url);
    assert_eq!(
        r.body["error"]["message"],
        "Found no location with ID 3f1b2c4d-0000-0000-0000-000000000000"
    );
    let r = get(&app, &format!("{url}/errors")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- history

#[tokio::test]
async fn history_after_update_and_deletion() {
    let app = app();
    let body = ok(&app, "/api/history/entities/component/default/PAY").await;
    assert_eq!(body["entityRef"], "component:default/pay");
    let changes = body["changes"].as_array().unwrap();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["created", "updated"],
        "the losing copy changes nothing served"
    );
    assert!(
        changes[0]["entity"]["metadata"]
            .get("description")
            .is_none()
    );
    assert_eq!(
        changes[1]["entity"]["metadata"]["description"],
        "Takes money"
    );
    assert_eq!(changes[1]["location"], A);
    assert!(changes[0]["at"].as_str().unwrap() < changes[1]["at"].as_str().unwrap());

    let body = ok(&app, "/api/history/entities/component/default/web").await;
    let changes = body["changes"].as_array().unwrap();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "deleted"]);
    assert!(changes[1].get("entity").is_none());

    let url = "/api/history/entities/component/default/never";
    let r = get(&app, url).await;
    assert_error(&r, StatusCode::NOT_FOUND, "NotFoundError", "GET", url);
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter() {
    let app = app();
    for (url, param) in [
        ("/api/catalog/entities?filter=%3Dx", "filter"),
        ("/api/catalog/entities?limit=ten", "limit"),
        ("/api/catalog/entities?limit=0", "limit"),
        ("/api/catalog/entities?limit=1&limit=2", "limit"),
        ("/api/catalog/entities?offset=-1", "offset"),
        (
            "/api/catalog/entities?order=sideways:metadata.name",
            "order",
        ),
        ("/api/catalog/entities?after=zz", "after"),
        ("/api/catalog/entities?after=7b7d", "after"),
        ("/api/catalog/entities/by-query?cursor=nothex", "cursor"),
        ("/api/catalog/entities/by-query?cursor=7b7d", "cursor"),
        ("/api/catalog/entities/by-query?limit=-1", "limit"),
        (
            "/api/catalog/entities/by-query?orderField=metadata.name,up",
            "orderField",
        ),
        (
            "/api/catalog/entities/by-query?filter=kind=a,%3Db",
            "filter",
        ),
        ("/api/catalog/entity-facets?facet=kind&filter=%3D", "filter"),
    ] {
        let r = get(&app, url).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "InputError", "GET", url);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(param), "{url}: {message}");
    }
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_same_shape() {
    let r = get(&app(), "/api/catalog/nope?x=1").await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "NotFoundError",
        "GET",
        "/api/catalog/nope?x=1",
    );
}

#[tokio::test]
async fn pages_of_the_ui_answer_html_and_the_api_keeps_its_404() {
    let app = app();
    // Any client route of the UI answers the UI's page (or, in a build
    // without the UI, a page saying how to build it).
    for path in [
        "/",
        "/catalog/default/component/a",
        "/scorecards/x?by=owner",
    ] {
        let r = send(
            &app,
            Request::get(path)
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let ty = r.headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ty.starts_with("text/html"), "{path}: {ty}");
        assert!(r.text.contains("<html"), "{path}");
    }
    // A missing file, an API path and a write are not pages.
    for (method, path) in [
        ("GET", "/assets/nope.js"),
        ("GET", "/api/nope"),
        ("POST", "/catalog/default/component/a"),
    ] {
        let r = send(
            &app,
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_error(&r, StatusCode::NOT_FOUND, "NotFoundError", method, path);
    }
}

// ---------------------------------------------------------------- operations

#[tokio::test]
async fn readyz_follows_the_lag() {
    let r = get(&router(state_with(None, None)), "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["ready"], false);
    let r = get(&router(state_with(Some(42), None)), "/readyz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"ready": true, "lag": 42}));
    let r = get(&router(state_with(None, None)), "/livez").await;
    assert_eq!(r.status, StatusCode::OK);
}

fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .unwrap()
        })
        .clone()
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let r = get(&app(), "/metrics").await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "NotFoundError",
        "GET",
        "/metrics",
    );

    let app = router(state_with(Some(0), Some(prometheus())));
    ok(&app, "/api/catalog/entities/by-name/component/default/pay").await;
    get(&app, "/api/catalog/entities/by-name/component/default/nope").await;
    let r = get(&app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let line = |status: &str| {
        r.text.lines().any(|l| {
            l.starts_with("catalog_http_requests_total{")
                && l.contains("route=\"/api/catalog/entities/by-name/{kind}/{namespace}/{name}\"")
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(line("200") && line("404"), "{}", r.text);
    assert!(
        r.text.contains("catalog_http_request_seconds"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn openapi_documents_every_route_and_nothing_else() {
    let doc: Value = serde_json::from_str(query::openapi_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = query::routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
    assert!(served.len() >= 16);

    // Every $ref resolves.
    fn refs_in(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(s)) => out.push(s.clone()),
                        _ => refs_in(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs_in(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs_in(&doc, &mut all);
    for r in all {
        let pointer = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
    // Path parameters are declared for every templated path.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let declared: BTreeSet<String> = ops
            .as_object()
            .unwrap()
            .values()
            .flat_map(|op| op["parameters"].as_array().cloned().unwrap_or_default())
            .map(|p| match p.get("$ref").and_then(Value::as_str) {
                Some(r) => doc.pointer(r.strip_prefix('#').unwrap()).unwrap().clone(),
                None => p,
            })
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        let templated: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        assert_eq!(declared, templated, "{path}");
    }

    // And it is what the API serves.
    let served_doc = ok(&app(), "/api/openapi.json").await;
    assert_eq!(served_doc, doc);
}

/// The generated document, as reviewed: a change to a handler's
/// annotations or to a view type that changes the document shows in the
/// diff of `query/tests/snapshots/openapi.json`.
#[test]
fn openapi_document_matches_its_snapshot() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    let generated = format!("{}\n", query::openapi_json());
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    if stored != generated {
        let line = stored
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| stored.lines().count().min(generated.lines().count()));
        panic!(
            "the generated OpenAPI document differs from {} (first at line {}); \
             if the change is meant, update the snapshot with \
             `UPDATE_SNAPSHOTS=1 cargo test --workspace --test api openapi_document` \
             and review its diff",
            path.display(),
            line + 1
        );
    }
}

#[tokio::test]
async fn serve_answers_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(query::serve(
        listener,
        state_with(Some(0), None),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}

#[test]
fn routes_use_only_known_methods() {
    for (m, p) in query::routes() {
        // DELETE revokes exemptions, unregisters locations and deletes
        // entities; PUT only changes a registered location; everything
        // else reads or posts.
        assert!(
            m == Method::GET
                || m == Method::POST
                || (m == Method::DELETE
                    && (p.starts_with("/api/scorecards/exemptions/")
                        || p == "/api/catalog/locations/{id}"
                        || p == "/api/catalog/entities/by-uid/{uid}"))
                || (m == Method::PUT && p == "/api/catalog/locations/{id}"),
            "{m} {p}"
        );
        assert!(p.starts_with('/'));
    }
}

#[tokio::test]
async fn refresh_writes_a_refresh_of_the_entitys_location() {
    type Written = Vec<(String, String, Vec<u8>)>;
    let written: Arc<std::sync::Mutex<Written>> = Arc::default();
    let seen = written.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let mut state = state_with(Some(0), None);
    state.log_writer = Some(Arc::new(move |topic: &str, key: &[u8], value: &[u8]| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        seen.lock().unwrap().push((
            topic.to_owned(),
            String::from_utf8_lossy(key).into_owned(),
            value.to_vec(),
        ));
        Ok(())
    }));
    state.auth =
        Arc::new(query::Auth::new(true).with_token("ops", "w", &[query::Scope::CatalogWrite]));
    let app = router(state);
    let anonymous = app
        .clone()
        .oneshot(
            axum::http::Request::post("/api/catalog/refresh")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    r#"{"entityRef":"component:default/c1"}"#,
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "a refresh needs catalog.write");
    let post = |body: &str| {
        axum::http::Request::post("/api/catalog/refresh")
            .header("content-type", "application/json")
            .header("authorization", "Bearer w")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    };
    let ok = app
        .clone()
        .oneshot(post(r#"{"entityRef":"component:default/c1"}"#))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    {
        let written = written.lock().unwrap();
        let (topic, key, value) = &written[0];
        assert_eq!(topic, proto::topics::LOCATIONS);
        let cmd = <proto::LocationCommand as proto::Versioned>::decode(value).unwrap();
        assert_eq!(key, cmd.location.as_str());
        assert_eq!(cmd.change, proto::LocationChange::Refresh);
        assert_eq!(cmd.by.as_deref(), Some("ops"));
        let served = Catalog::new(store());
        assert_eq!(
            served.claimants("component:default/c1").unwrap(),
            vec![cmd.location.clone()]
        );
    }
    let missing = app
        .clone()
        .oneshot(post(r#"{"entityRef":"component:default/nope"}"#))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = app.clone().oneshot(post(r#"{"ref":"x"}"#)).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the valid request wrote"
    );
    // A process that cannot write says so.
    let mut without_ingest = state_with(Some(0), None);
    without_ingest.auth =
        Arc::new(query::Auth::new(true).with_token("ops", "w", &[query::Scope::CatalogWrite]));
    let none = router(without_ingest)
        .oneshot(post(r#"{"entityRef":"component:default/c1"}"#))
        .await
        .unwrap();
    assert_eq!(none.status(), 503);
}

/// A scorecard over the test catalog: components need a description.
fn with_scorecard(store: &MemStore) {
    let event = proto::ScorecardEvent {
        event_id: uuid::Uuid::from_u128(42),
        source: proto::SourceId::new("cards"),
        at: chrono::Utc::now(),
        by: None,
        change: proto::ScorecardChange::DefinitionsPublished {
            files: [(
                "d.yaml".to_string(),
                "id: described\napplies_to: {kind: component}\nlevels: [ok]\nchecks:\n  - id: description\n    rule: {field: metadata.description, exists: true}\n".to_string(),
            )]
            .into_iter()
            .collect(),
        },
    };
    let mut fold = Fold::new(store);
    fold.apply_scorecard(&event).unwrap();
    store.write(fold.finish().unwrap()).unwrap();
}

#[tokio::test]
async fn scorecard_routes_read_validate_and_guard_writes() {
    let store = store();
    with_scorecard(&store);
    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = written.clone();
    let mut state = state_with(Some(0), None);
    state.catalog = Catalog::new(store.clone());
    let app = router(state.clone());
    let list = ok(&app, "/api/scorecards").await;
    assert_eq!(list["items"][0]["id"], "described");
    let rollup = ok(&app, "/api/scorecards/described/rollup").await;
    let total = &rollup["groups"][0];
    assert_eq!(total["group"], "*");
    let page = ok(&app, "/api/scorecards/described/entities?limit=2").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["pageInfo"]["nextCursor"].as_str().unwrap().to_string();
    let next = ok(
        &app,
        &format!("/api/scorecards/described/entities?limit=2&cursor={cursor}"),
    )
    .await;
    assert_ne!(next["items"][0]["entityRef"], page["items"][0]["entityRef"]);
    let failing = ok(&app, "/api/scorecards/described/entities?level=none").await;
    for item in failing["items"].as_array().unwrap() {
        assert_eq!(item["failing"], json!(["description"]));
    }
    let r = get(&app, "/api/scorecards/nope/rollup").await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "NotFoundError",
        "GET",
        "/api/scorecards/nope/rollup",
    );
    let r = get(&app, "/api/scorecards/described/rollup?by=team").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = get(&app, "/api/scorecards/described/entities?level=gold").await;
    assert!(r.text.contains("not a level"), "{}", r.text);
    let r = get(&app, "/api/scorecards/described/trend?interval=month").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = get(&app, "/api/scorecards/entity/component/default/nobody").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Dry run: a bad definition names the check and the reason.
    let r = send(
        &app,
        Request::post("/api/scorecards/dry-run")
            .body(Body::from(
                "id: x\nlevels: [a]\nchecks:\n  - id: c\n    rule: {field: a, bogus: 1}\n",
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text.contains("check `c`") && r.text.contains("bogus"),
        "{}",
        r.text
    );
    // Writes: refused without a configured token, then without the right one.
    let grant = json!({"entityRef": "component:default/c1", "check": "description",
                       "reason": "soon", "author": "ann"});
    let r = post(&app, "/api/scorecards/described/exemptions", grant.clone()).await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "NotAllowedError",
        "POST",
        "/api/scorecards/described/exemptions",
    );
    state.auth = Arc::new(query::Auth::new(true).with_token(
        "tester",
        "tok",
        &[query::Scope::ScorecardsWrite],
    ));
    state.scorecard_writer = Some(Arc::new(move |e: &proto::ScorecardEvent| {
        sink.lock().unwrap().push(e.clone());
        Ok(())
    }));
    let app = router(state);
    let r = post(&app, "/api/scorecards/described/exemptions", grant.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let with_token = |body: &Value| {
        Request::post("/api/scorecards/described/exemptions")
            .header(header::AUTHORIZATION, "Bearer tok")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let r = send(&app, with_token(&grant)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["author"], "ann");
    let mut bad = grant.clone();
    bad["check"] = json!("nope");
    let r = send(&app, with_token(&bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let events = written.lock().unwrap();
    assert_eq!(events.len(), 1);
    assert!(matches!(
        &events[0].change,
        proto::ScorecardChange::ExemptionGranted { exemption } if exemption.check == "description"
    ));
    assert_eq!(
        events[0].by.as_deref(),
        Some("tester"),
        "the event names the token that wrote it"
    );
}

// ---------------------------------------------------------------- predicates

/// The refs a predicate selects, through `POST /entities/by-query`.
async fn by_predicate(app: &Router, query: Value) -> Vec<String> {
    let r = post(
        app,
        "/api/catalog/entities/by-query",
        json!({ "query": query, "limit": 1000 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    assert_eq!(
        r.body["totalItems"].as_u64().unwrap() as usize,
        r.body["items"].as_array().unwrap().len(),
        "{query}"
    );
    refs(&r.body["items"])
}

#[tokio::test]
async fn predicates_agree_with_get_filters_on_the_same_data() {
    let app = app();
    for (filters, predicate) in [
        ("filter=kind=component", json!({"kind": "component"})),
        (
            "filter=kind=component,spec.type=service",
            json!({"kind": "Component", "spec.type": "SERVICE"}),
        ),
        (
            "filter=kind=component,spec.type=service",
            json!({"$all": [{"kind": "component"}, {"spec.type": "service"}]}),
        ),
        (
            "filter=kind=api&filter=spec.type=website",
            json!({"$any": [{"kind": "api"}, {"spec.type": "website"}]}),
        ),
        (
            "filter=spec.type=service,spec.type=library",
            json!({"spec.type": {"$in": ["service", "library"]}}),
        ),
        (
            "filter=metadata.tags=java",
            json!({"metadata.tags": "java"}),
        ),
        (
            "filter=metadata.tags=java",
            json!({"metadata.tags": {"$contains": "java"}}),
        ),
        (
            "filter=spec.owner",
            json!({"spec.owner": {"$exists": true}}),
        ),
        (
            "filter=relations.ownedby=group:default/team-a",
            json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": "group:default/team-a"}}}),
        ),
        (
            "filter=relations.ownedby",
            json!({"relations": {"$contains": {"type": "ownedBy"}}}),
        ),
        ("filter=kind=nothing", json!({"kind": "nothing"})),
    ] {
        let got = by_predicate(&app, predicate.clone()).await;
        let want = refs(&ok(&app, &format!("/api/catalog/entities?{filters}")).await);
        assert_eq!(got, want, "{filters} vs {predicate}");
        assert!(
            !got.is_empty() || filters.contains("nothing"),
            "{filters}: an agreement on nothing proves little"
        );
    }
    // What filters cannot say, against what the catalog holds.
    let all: Vec<String> = ALL_REFS.iter().map(|r| r.to_string()).collect();
    let components = by_predicate(&app, json!({"kind": "component"})).await;
    let not_components = by_predicate(&app, json!({"$not": {"kind": "component"}})).await;
    let expected: Vec<String> = all
        .iter()
        .filter(|r| !components.contains(r))
        .cloned()
        .collect();
    assert_eq!(not_components, expected);
    let neither: Vec<String> = expected
        .iter()
        .filter(|r| !r.starts_with("api:"))
        .cloned()
        .collect();
    assert_eq!(
        by_predicate(
            &app,
            json!({"$all": [{"$not": {"kind": "component"}}, {"$not": {"kind": "API"}}]})
        )
        .await,
        neither
    );
    assert_eq!(
        by_predicate(
            &app,
            json!({"$all": [{"kind": "component"}, {"$not": {"spec.type": "website"}}]})
        )
        .await,
        by_predicate(
            &app,
            json!({"kind": "component", "spec.type": {"$in": ["service", "library"]}})
        )
        .await,
    );
    assert_eq!(
        by_predicate(&app, json!({"metadata.name": {"$hasPrefix": "C"}})).await,
        (1..=7)
            .map(|i| format!("component:default/c{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(by_predicate(&app, json!({})).await, all);
    assert_eq!(by_predicate(&app, json!({"$all": []})).await, all);
    assert!(by_predicate(&app, json!({"$any": []})).await.is_empty());
    assert!(
        by_predicate(&app, json!({"spec.type": {"$in": []}}))
            .await
            .is_empty()
    );
    let owned = by_predicate(&app, json!({"spec.owner": {"$exists": true}})).await;
    let unowned = by_predicate(&app, json!({"spec.owner": {"$exists": false}})).await;
    assert!(!owned.is_empty() && !unowned.is_empty());
    assert_eq!(owned.len() + unowned.len(), all.len());
    assert!(unowned.iter().all(|r| !owned.contains(r)));
}

#[tokio::test]
async fn predicate_queries_page_sort_count_and_refuse_bad_input() {
    let app = app();
    // Sorted by name, two at a time, following the cursors.
    let first = post(
        &app,
        "/api/catalog/entities/by-query",
        json!({
            "query": {"kind": "component"},
            "orderBy": [{"field": "metadata.name", "order": "desc"}],
            "limit": 2,
            "fields": ["kind", "metadata.name"],
        }),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let total = first.body["totalItems"].as_u64().unwrap();
    let mut names: Vec<String> = Vec::new();
    let mut page = first.body;
    loop {
        for item in page["items"].as_array().unwrap() {
            assert!(item.get("spec").is_none(), "fields apply: {item}");
            names.push(item["metadata"]["name"].as_str().unwrap().to_lowercase());
        }
        let Some(next) = page["pageInfo"]["nextCursor"].as_str() else {
            break;
        };
        // A cursor carries the query; the body's other fields are ignored.
        let r = post(
            &app,
            "/api/catalog/entities/by-query",
            json!({"cursor": next, "limit": 2, "fields": ["kind", "metadata.name"], "query": {"kind": "api"}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["totalItems"].as_u64().unwrap(), total);
        page = r.body;
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(names, sorted);
    assert_eq!(names.len() as u64, total);
    let get = ok(&app, "/api/catalog/entities?filter=kind=component").await;
    assert_eq!(names.len(), get.as_array().unwrap().len());

    // totalItems, offset and full text.
    let r = post(
        &app,
        "/api/catalog/entities/by-query",
        json!({"query": {"kind": "component"}, "totalItems": "exclude", "offset": 3, "limit": 1,
               "fullTextFilter": {"term": "C", "fields": ["metadata.name"]}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["totalItems"], 0);
    assert_eq!(refs(&r.body["items"]), ["component:default/c4"]);

    // No body: everything (Backstage's default page).
    let r = send(
        &app,
        Request::post("/api/catalog/entities/by-query")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["totalItems"].as_u64().unwrap() as usize,
        ALL_REFS.len()
    );

    for (body, says) in [
        (
            json!({"query": {"spec.type": {"$startsWith": "s"}}}),
            "unknown operator $startsWith",
        ),
        (
            json!({"query": {"kind": "a", "$not": {"kind": "b"}}}),
            "only key",
        ),
        (json!({"query": "kind=component"}), "expected an object"),
        (
            json!({"query": {"kind": "a"}, "totalItems": "some"}),
            "totalItems",
        ),
        (json!({"cursor": ""}), "Cursor cannot be empty"),
        (json!({"cursor": "bm90IGEgY3Vyc29y"}), "cursor"),
        (
            json!({"orderBy": [{"field": "metadata.name", "order": "up"}]}),
            "Malformed request body",
        ),
        (json!({"limit": "10"}), "Malformed request body"),
    ] {
        let r = post(&app, "/api/catalog/entities/by-query", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["name"], "InputError", "{body}");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
}

#[tokio::test]
async fn facets_by_predicate_equal_facets_by_filter() {
    let app = app();
    let r = post(
        &app,
        "/api/catalog/entity-facets",
        json!({"facets": ["spec.type", "metadata.tags"], "query": {"kind": "component"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let by_filter = ok(
        &app,
        "/api/catalog/entity-facets?facet=spec.type&facet=metadata.tags&filter=kind=component",
    )
    .await;
    assert_eq!(r.body, by_filter);
    assert!(!r.body["facets"]["spec.type"].as_array().unwrap().is_empty());
    // Beyond filters: components that are not websites.
    let r = post(
        &app,
        "/api/catalog/entity-facets",
        json!({"facets": ["spec.type"], "query": {"$all": [{"kind": "component"}, {"$not": {"spec.type": "website"}}]}}),
    )
    .await;
    let types: Vec<&str> = r.body["facets"]["spec.type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    assert!(
        !types.is_empty() && !types.contains(&"website"),
        "{types:?}"
    );
    // Without a query: over everything, as GET without a filter.
    let all = post(
        &app,
        "/api/catalog/entity-facets",
        json!({"facets": ["kind"]}),
    )
    .await;
    assert_eq!(
        all.body,
        ok(&app, "/api/catalog/entity-facets?facet=kind").await
    );
    for body in [
        json!({}),
        json!({"facets": []}),
        json!({"facets": ["kind"], "query": {"$nope": 1}}),
    ] {
        let r = post(&app, "/api/catalog/entity-facets", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
}

#[tokio::test]
async fn validate_entity_checks_as_ingestion_does_and_writes_nothing() {
    let app = app();
    let valid = json!({
        "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": "new-service"},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
    });
    let r = post(
        &app,
        "/api/catalog/validate-entity",
        json!({"entity": valid, "location": "url:https://github.com/acme/new/blob/main/catalog-info.yaml"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(
            &app,
            "/api/catalog/entities/by-name/component/default/new-service"
        )
        .await
        .status,
        StatusCode::NOT_FOUND,
        "nothing is written"
    );
    let mut bad_name = valid.clone();
    bad_name["metadata"]["name"] = json!("not a valid name!");
    let mut no_version = valid.clone();
    no_version.as_object_mut().unwrap().remove("apiVersion");
    for entity in [bad_name, no_version] {
        let r = post(
            &app,
            "/api/catalog/validate-entity",
            json!({"entity": entity, "location": "url:https://example.com/x.yaml"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{entity}: {}", r.text);
        let errors = r.body["errors"].as_array().unwrap();
        assert!(!errors.is_empty(), "{}", r.text);
        assert!(
            errors
                .iter()
                .all(|e| !e["message"].as_str().unwrap().is_empty()),
            "{}",
            r.text
        );
    }
    for body in [
        json!({"entity": valid}),
        json!({"location": "url:https://example.com/x.yaml"}),
        json!({"entity": valid, "location": "nothing"}),
        json!({"entity": [1], "location": "url:https://example.com/x.yaml"}),
    ] {
        let r = post(&app, "/api/catalog/validate-entity", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["name"], "InputError", "{body}");
    }
}

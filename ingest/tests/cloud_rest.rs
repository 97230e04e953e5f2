//! The `gcp` and `azure` sources against a local server answering as Cloud
//! Asset Inventory, Google's token endpoint, Resource Graph and Microsoft
//! Entra ID do in their documented examples: pagination, an expired token,
//! a throttled answer, and a project (subscription) that fails while the
//! others are listed.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, Reader};
use ingest::config::SourceKind;
use ingest::sources::azure::AzureConfig;
use ingest::sources::gcp::GcpConfig;
use ingest::{Ingest, IngestConfig, SourceConfig, SyncReport};
use proto::{Content, Observation, ObservedContent, Versioned};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SUB_A: &str = "00000000-0000-0000-0000-00000000000a";
const SUB_B: &str = "00000000-0000-0000-0000-00000000000b";

#[derive(Default)]
struct World {
    /// Tokens issued; the last one is valid unless `revoked`.
    tokens: AtomicUsize,
    revoked: Mutex<bool>,
    /// Answer this many listing calls with 429.
    throttle: AtomicUsize,
    /// Projects / subscriptions whose calls are denied.
    denied: Mutex<Vec<String>>,
    /// Resources by project or subscription.
    resources: Mutex<HashMap<String, Vec<Value>>>,
    /// Listing calls answered (any status).
    calls: AtomicUsize,
}

type Shared = Arc<World>;

fn authorised(w: &World, headers: &HeaderMap) -> bool {
    let n = w.tokens.load(Ordering::SeqCst);
    let want = format!("Bearer tok-{n}");
    n > 0
        && !*w.revoked.lock().unwrap()
        && headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

fn issue(w: &World) -> String {
    *w.revoked.lock().unwrap() = false;
    format!("tok-{}", w.tokens.fetch_add(1, Ordering::SeqCst) + 1)
}

/// Google's token endpoint: a signed JWT for a token.
async fn google_token(
    State(w): State<Shared>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let public = include_bytes!("fixtures/gcp-test-key.pub.pem");
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&["TOKEN_URI"]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let ok = form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        && form.get("assertion").is_some_and(|a| {
            // The audience is the token URI itself; checked loosely here.
            let mut v = v.clone();
            v.validate_aud = false;
            jsonwebtoken::decode::<Value>(a, &key, &v).is_ok_and(|d| {
                d.claims["iss"] == "catalog@acme-prod.iam.gserviceaccount.com"
                    && d.claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
            })
        });
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
        )
            .into_response();
    }
    Json(json!({"access_token": issue(&w), "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

/// `GET /v1/projects/{project}:searchAllResources`, two results a page.
async fn search(
    State(w): State<Shared>,
    Path(path): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    w.calls.fetch_add(1, Ordering::SeqCst);
    let Some(project) = path.strip_suffix(":searchAllResources") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !authorised(&w, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "status": "UNAUTHENTICATED"}})),
        )
            .into_response();
    }
    if w.throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"code": 429, "message": "Quota exceeded for quota metric 'Search requests'.", "status": "RESOURCE_EXHAUSTED"}})),
        )
            .into_response();
    }
    if w.denied.lock().unwrap().iter().any(|d| d == project) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}})),
        )
            .into_response();
    }
    let all = w
        .resources
        .lock()
        .unwrap()
        .get(project)
        .cloned()
        .unwrap_or_default();
    let start: usize = q.get("pageToken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(start).take(2).cloned().collect();
    let mut body = json!({"results": page});
    if start + 2 < all.len() {
        body["nextPageToken"] = json!((start + 2).to_string());
    }
    Json(body).into_response()
}

/// Entra ID's token endpoint: client credentials for a token.
async fn entra_token(
    State(w): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let ok = tenant == "tenant-1"
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some("client-1")
        && form.get("client_secret").map(String::as_str) == Some("s3cret")
        && form.get("scope").map(String::as_str) == Some("https://management.azure.com/.default");
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})),
        )
            .into_response();
    }
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": issue(&w)}))
        .into_response()
}

/// `POST /providers/Microsoft.ResourceGraph/resources`, two rows a page.
async fn graph(State(w): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    w.calls.fetch_add(1, Ordering::SeqCst);
    if !authorised(&w, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "ExpiredAuthenticationToken", "message": "The access token expiry UTC time is earlier than current UTC time."}})),
        )
            .into_response();
    }
    if w.throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(json!({"error": {"code": "RateLimiting", "message": "Please provide below info when asking for support: timestamp = ..."}})),
        )
            .into_response();
    }
    let sub = body["subscriptions"][0].as_str().unwrap_or("").to_string();
    if w.denied.lock().unwrap().contains(&sub) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization to perform action 'Microsoft.ResourceGraph/resources/read'."}})),
        )
            .into_response();
    }
    let all = w
        .resources
        .lock()
        .unwrap()
        .get(&sub)
        .cloned()
        .unwrap_or_default();
    let start: usize = body["options"]["$skipToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(start).take(2).cloned().collect();
    let mut answer = json!({
        "totalRecords": all.len(),
        "count": page.len(),
        "resultTruncated": "false",
        "facets": [],
        "data": page,
    });
    if start + 2 < all.len() {
        answer["$skipToken"] = json!((start + 2).to_string());
    }
    Json(answer).into_response()
}

fn serve(w: Shared) -> String {
    let app = Router::new()
        .route("/token", post(google_token))
        .route("/v1/projects/{path}", get(search))
        .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
        .route("/providers/Microsoft.ResourceGraph/resources", post(graph))
        .with_state(w);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app).await.unwrap();
            })
    });
    format!("http://{addr}")
}

fn gcp_resource(project: &str, name: &str, owner: Option<&str>) -> Value {
    let mut labels = json!({"env": "prod"});
    if let Some(o) = owner {
        labels["owner"] = json!(o);
    }
    json!({
        "name": format!("//sqladmin.googleapis.com/projects/{project}/instances/{name}"),
        "assetType": "sqladmin.googleapis.com/Instance",
        "project": "projects/123456",
        "displayName": name,
        "location": "europe-west1",
        "labels": labels,
        "state": "RUNNABLE",
    })
}

fn azure_resource(sub: &str, name: &str, public: bool) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/rg-prod/providers/Microsoft.Storage/storageAccounts/{name}"),
        "name": name,
        "type": "microsoft.storage/storageaccounts",
        "location": "westeurope",
        "tags": {"owner": "group:default/billing"},
        "subscriptionId": sub,
        "resourceGroup": "rg-prod",
        "properties": {
            "provisioningState": "Succeeded",
            "allowBlobPublicAccess": public,
            "encryption": {"services": {"blob": {"enabled": true}}, "keySource": "Microsoft.Storage"}
        }
    })
}

struct Harness {
    _dir: tempfile::TempDir,
    world: Shared,
    obs: Box<dyn Reader>,
    ingest: Ingest,
    id: &'static str,
}

impl Harness {
    fn new(id: &'static str, kind: impl FnOnce(&str, &std::path::Path) -> SourceKind) -> Self {
        let world = Shared::default();
        let base = serve(world.clone());
        let dir = tempfile::tempdir().unwrap();
        let log =
            Arc::new(EmbeddedLog::open(&dir.path().join("log"), &proto::topics::ALL, 2).unwrap());
        let obs = log.subscribe(proto::topics::OBSERVATIONS, "t").unwrap();
        let source = SourceConfig::cloud(id, kind(&base, dir.path()));
        let ingest = Ingest::open(
            IngestConfig {
                sources: vec![source],
                ..IngestConfig::default()
            },
            log as Arc<dyn EventLog>,
            &dir.path().join("state"),
        )
        .unwrap();
        Harness {
            _dir: dir,
            world,
            obs,
            ingest,
            id,
        }
    }

    fn sync(&self) -> SyncReport {
        self.ingest.sync_now(Some(self.id)).unwrap().pop().unwrap()
    }

    fn observed(&mut self) -> BTreeMap<String, Observation> {
        let mut out = BTreeMap::new();
        while let Ok(batch) = self.obs.poll(Duration::from_millis(50)) {
            if batch.is_empty() {
                break;
            }
            for rec in batch {
                let o = Observation::decode(&rec.value).unwrap();
                out.insert(o.location.as_str().to_string(), o);
            }
        }
        out
    }

    fn details(&self) -> Value {
        serde_json::to_value(self.ingest.status()).unwrap()[0]["details"].clone()
    }
}

fn entity(o: &Observation) -> Value {
    match &o.content {
        ObservedContent::Present {
            content: Content::Utf8 { text },
        } => serde_json::from_str(text).unwrap(),
        other => panic!("not present: {other:?}"),
    }
}

/// The same story for both clouds: a paginated first listing, a re-poll
/// that ships nothing, a token that expired (renewed, the call repeated), a
/// throttled answer (retried), and a failing scope that removes nothing.
fn story(mut h: Harness, scopes: [&str; 2], make: fn(&str, usize) -> Value, provider: &str) {
    {
        let mut r = h.world.resources.lock().unwrap();
        r.insert(
            scopes[0].into(),
            (0..5).map(|i| make(scopes[0], i)).collect(),
        );
        r.insert(
            scopes[1].into(),
            (0..2).map(|i| make(scopes[1], 10 + i)).collect(),
        );
    }
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{r:?}");
    assert_eq!(r.emitted_new, 7, "{r:?}");
    let seen = h.observed();
    assert_eq!(seen.len(), 7);
    assert!(
        seen.keys().all(|k| k.starts_with(&format!("{provider}:"))),
        "{:?}",
        seen.keys()
    );
    // Five results at two a page: three pages, plus one for the other scope.
    assert_eq!(h.world.calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        h.world.tokens.load(Ordering::SeqCst),
        1,
        "one token for everything"
    );

    // Nothing changed: nothing ships.
    let r = h.sync();
    assert_eq!((r.emitted(), r.facts_emitted), (0, 0), "{r:?}");

    // The token expired early: a new one is fetched and the call repeated.
    *h.world.revoked.lock().unwrap() = true;
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{r:?}");
    assert_eq!(h.world.tokens.load(Ordering::SeqCst), 2);
    assert_eq!(h.details()["tokens"], 2);

    // Throttled, then answered.
    h.world.throttle.store(2, Ordering::SeqCst);
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{r:?}");
    assert_eq!(r.emitted(), 0);
    assert_eq!(h.details()["throttled"], 2, "{}", h.details());

    // A change in the first scope and a removal in the second, while the
    // second is denied: the change ships, the removal waits.
    {
        let mut r = h.world.resources.lock().unwrap();
        let first = r.get_mut(scopes[0]).unwrap();
        first[0]["tags"] = json!({"owner": "group:default/platform"});
        first[0]["labels"] = json!({"owner": "group:default/platform"});
        r.get_mut(scopes[1]).unwrap().pop();
    }
    h.world.denied.lock().unwrap().push(scopes[1].into());
    let r = h.sync();
    assert_eq!((r.emitted_changed, r.emitted_removed), (1, 0), "{r:?}");
    assert!(r.problems.iter().any(|p| p.contains(scopes[1])), "{r:?}");
    let changed = h.observed();
    let e = entity(changed.values().next().unwrap());
    assert_eq!(e["spec"]["owner"], "group:default/platform");
    assert!(
        h.details()["failed_scopes"][0]
            .as_str()
            .unwrap()
            .contains(scopes[1])
    );
    h.world.denied.lock().unwrap().clear();
    let r = h.sync();
    assert_eq!(r.emitted_removed, 1, "{r:?}");
}

#[test]
fn gcp_projects_are_listed_through_cloud_asset_inventory() {
    let h = Harness::new("gcp", |base, dir| {
        let key_file = dir.join("sa.json");
        std::fs::write(
            &key_file,
            json!({
                "type": "service_account",
                "project_id": "acme-prod",
                "private_key_id": "k1",
                "private_key": String::from_utf8(include_bytes!("fixtures/gcp-test-key.pem").to_vec()).unwrap(),
                "client_email": "catalog@acme-prod.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": format!("{base}/token"),
            })
            .to_string(),
        )
        .unwrap();
        let mut g = GcpConfig::new(&["acme-prod", "acme-data"], key_file);
        g.endpoint_url = Some(base.to_string());
        g.initial_backoff_ms = 5;
        SourceKind::Gcp(Box::new(g))
    });
    story(
        h,
        ["acme-prod", "acme-data"],
        |p, i| {
            gcp_resource(
                p,
                &format!("db-{i}"),
                (i % 2 == 0).then_some("group:default/data"),
            )
        },
        "gcp",
    );
}

#[test]
fn azure_subscriptions_are_listed_through_resource_graph() {
    let h = Harness::new("azure", |base, dir| {
        let secret = dir.join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        SourceKind::Azure(Box::new(AzureConfig {
            subscriptions: vec![SUB_A.into(), SUB_B.into()],
            tenant_id: "tenant-1".into(),
            client_id: "client-1".into(),
            client_secret_file: secret,
            endpoint_url: Some(base.to_string()),
            login_url: Some(base.to_string()),
            max_attempts: 5,
            initial_backoff_ms: 5,
            mapping: Default::default(),
        }))
    });
    story(
        h,
        [SUB_A, SUB_B],
        |s, i| azure_resource(s, &format!("store{i}"), i == 0),
        "azure",
    );
}

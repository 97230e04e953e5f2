//! What the fuzz targets share: a small catalog (processed from YAML by the
//! real processor and folded into the in-memory store), the API serving it,
//! and a runtime to call the API on.

use axum::Router;
use chrono::{TimeZone, Utc};
use projector::{Catalog, Fold, MemStore, Store};
use proto::{Content, LocationKey, Observation, ObservedContent, SourceId};
use std::sync::{Arc, OnceLock};

/// The organisation the catalog holds: groups, a system, components of
/// several types, tags and owners (some dangling), an API.
const ORG: &str = r#"
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-a}
spec: {type: team, children: [team-b]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-b}
spec: {type: team, parent: team-a, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata: {name: payments, tags: [core]}
spec: {owner: team-a}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: pay, tags: [java, grpc], annotations: {github.com/project-slug: acme/pay}}
spec: {type: service, lifecycle: production, owner: team-a, system: payments, providesApis: [pay-api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: ledger, tags: [java]}
spec: {type: service, lifecycle: experimental, owner: team-b, system: payments, consumesApis: [pay-api], dependsOn: [component:pay]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: site, namespace: web, tags: [ts]}
spec: {type: website, lifecycle: production, owner: nobody}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: pay-api}
spec: {type: openapi, lifecycle: production, owner: team-a, definition: "openapi: 3.0.0"}
"#;

fn store() -> Arc<MemStore> {
    let location = "file:/org/catalog-info.yaml";
    let obs = Observation {
        event_id: uuid::Uuid::from_u128(1),
        source: SourceId::new("fuzz"),
        observed_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        location: LocationKey::new(location),
        origin: LocationKey::new(location),
        first_seen_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        content: ObservedContent::Present {
            content: Content::Utf8 { text: ORG.into() },
        },
    };
    let event = processor::process(&obs, &processor::ProcessorConfig::default());
    let store = Arc::new(MemStore::new());
    let mut fold = Fold::new(store.as_ref());
    fold.apply(&event).expect("the sample folds");
    let set = fold.finish().expect("the sample folds");
    store.write(set).expect("the memory store writes");
    store
}

/// The catalog of [`ORG`].
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let store: Arc<dyn Store> = store();
        Catalog::new(store)
    })
}

/// The token with every scope that [`app`] accepts.
pub const ADMIN_TOKEN: &str = "fuzz-admin-token";

/// The API over [`catalog`]: reads open, writes with [`ADMIN_TOKEN`]. Log
/// writes fail (a 503 after the input was parsed), so no write waits for
/// an effect that cannot come.
pub fn app() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        let auth = query::Auth::new(true).with_token("fuzz", ADMIN_TOKEN, &[query::Scope::Admin]);
        let writer: query::LogWriter =
            Arc::new(|_, _, _| Err("the fuzz target keeps no log".into()));
        query::router(query::AppState {
            catalog: catalog().clone(),
            lag: Arc::new(|| Ok(0)),
            metrics: None,
            log_writer: Some(writer),
            location_access: None,
            scorecard_writer: None,
            auth: Arc::new(auth),
            // A long poll (`wait`) is capped a second under the request
            // time: none waits here.
            limits: query::Limits {
                request_timeout: std::time::Duration::from_secs(1),
                ..query::Limits::default()
            },
        })
    })
}

/// The runtime the API runs on (one thread, as the fuzzer's).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime starts")
    })
}

/// Evaluates a scorecard definition on an entity with nothing else known.
pub fn evaluate(
    definition: &projector::scorecard::Definition,
    entity: &serde_json::Value,
) -> projector::scorecard::lang::Evaluation {
    struct Nothing;
    impl projector::scorecard::lang::Context for Nothing {
        fn entity(&mut self, _: &str) -> Option<Arc<serde_json::Value>> {
            None
        }
        fn facts(
            &mut self,
            _: &serde_json::Value,
            _: projector::scorecard::lang::FactProvider,
        ) -> (Option<String>, Option<Arc<serde_json::Value>>) {
            (None, None)
        }
    }
    definition.evaluate(entity, &mut Nothing, Utc::now())
}

/// A served entity of the sample (the component `pay`).
pub fn sample_entity() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "pay", "namespace": "default", "tags": ["java", "grpc"]},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
        "relations": [{"type": "ownedBy", "targetRef": "group:default/team-a"}]
    })
}

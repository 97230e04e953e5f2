//! Who may call what: static tokens and their scopes, reads open or not,
//! JWTs of an OIDC issuer (served here from a discovery document and a
//! JWKS, keys rotated), rate limits and body limits. (The attribution of
//! writes to the caller is checked with the exemption routes in api.rs.)

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use projector::{Catalog, MemStore};
use query::auth::Oidc;
use query::{AppState, Auth, Limits, Scope, router};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

fn state(auth: Auth) -> AppState {
    AppState {
        catalog: Catalog::new(Arc::new(MemStore::new())),
        lag: Arc::new(|| Ok(0)),
        metrics: None,
        log_writer: None,
        location_access: None,
        scorecard_writer: None,
        auth: Arc::new(auth),
        limits: Limits::default(),
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const GRANT: &str = r#"{"entityRef":"component:default/c1","check":"x","reason":"r","author":"a"}"#;

#[tokio::test]
async fn reads_open_or_behind_a_token_and_writes_never_open() {
    // Reads open, no token known: writes are refused for everybody.
    let app = router(state(Auth::new(true)));
    assert_eq!(
        call(&app, "GET", "/api/catalog/entities", None, "").await.0,
        StatusCode::OK
    );
    let (status, body) = call(&app, "POST", "/api/scorecards/c/exemptions", None, GRANT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["name"], "NotAllowedError");

    // Reads need catalog.read.
    let auth = Auth::new(false)
        .with_token("reader", "r-secret", &[Scope::CatalogRead])
        .with_token("ops", "o-secret", &[Scope::Admin]);
    let app = router(state(auth));
    let (status, body) = call(&app, "GET", "/api/catalog/entities", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["name"], "AuthenticationError");
    assert_eq!(body["request"]["url"], "/api/catalog/entities");
    assert_eq!(
        call(&app, "GET", "/api/catalog/entities", Some("r-secre"), "")
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "a prefix of a token is no token"
    );
    assert_eq!(
        call(&app, "GET", "/api/catalog/entities", Some("r-secret"), "")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/api/catalog/entities", Some("o-secret"), "")
            .await
            .0,
        StatusCode::OK,
        "admin holds every scope"
    );
    // Health and the API document stay public.
    for path in ["/livez", "/readyz", "/api/openapi.json"] {
        assert_eq!(
            call(&app, "GET", path, None, "").await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    // A reader cannot write; the error names the scope.
    let (status, body) = call(
        &app,
        "POST",
        "/api/scorecards/c/exemptions",
        Some("r-secret"),
        GRANT,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scorecards.write"),
        "{body}"
    );
    // A malformed header is an authentication error, not a pass.
    let resp = app
        .clone()
        .oneshot(
            Request::get("/api/catalog/entities")
                .header(header::AUTHORIZATION, "Basic cjpy")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
}

#[tokio::test]
async fn every_route_declares_its_access_and_writes_need_a_scope() {
    for (method, path, access) in query::route_access() {
        // Reads that take their question in a body.
        let post_reads = [
            "/api/catalog/entities/by-refs",
            "/api/catalog/entities/by-query",
            "/api/catalog/entity-facets",
            "/api/catalog/validate-entity",
            "/api/catalog/locations/by-query",
            "/api/scorecards/dry-run",
        ];
        let post_read = post_reads.contains(&path.as_str());
        let write = method != axum::http::Method::GET && !post_read;
        if post_read {
            assert_eq!(access, query::Access::Read, "{method} {path}");
        }
        if write {
            assert!(
                matches!(access, query::Access::Need(_)),
                "{method} {path} writes and must need a scope"
            );
        }
        if path.starts_with("/api/") && path != "/api/openapi.json" {
            assert_ne!(access, query::Access::Public, "{method} {path} is public");
        }
    }
}

#[tokio::test]
async fn callers_beyond_their_rate_get_429_with_retry_after() {
    let auth = Auth::new(true)
        .with_token("a", "ta", &[Scope::CatalogRead])
        .with_token("b", "tb", &[Scope::CatalogRead])
        .with_rate_limit(1.try_into().unwrap(), 2.try_into().unwrap());
    let app = router(state(auth));
    for _ in 0..2 {
        assert_eq!(
            call(&app, "GET", "/api/catalog/entities", Some("ta"), "")
                .await
                .0,
            StatusCode::OK
        );
    }
    let resp = app
        .clone()
        .oneshot(
            Request::get("/api/catalog/entities")
                .header(header::AUTHORIZATION, "Bearer ta")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    // Another principal has its own rate; health is never limited.
    assert_eq!(
        call(&app, "GET", "/api/catalog/entities", Some("tb"), "")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/livez", Some("ta"), "").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let mut st = state(Auth::new(true));
    st.limits.max_body_bytes = 1024;
    let app = router(st);
    let refs: Vec<String> = (0..200)
        .map(|i| format!("component:default/c{i}"))
        .collect();
    let body = json!({ "entityRefs": refs }).to_string();
    assert!(body.len() > 1024);
    let (status, _) = call(&app, "POST", "/api/catalog/entities/by-refs", None, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let small = json!({ "entityRefs": ["component:default/c1"] }).to_string();
    assert_eq!(
        call(&app, "POST", "/api/catalog/entities/by-refs", None, &small)
            .await
            .0,
        StatusCode::OK
    );
}

/// An OIDC issuer on loopback: discovery document and JWKS, whose keys a
/// test can replace (rotation).
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<Mutex<usize>>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks = Arc::new(Mutex::new(json!({ "keys": [] })));
    let fetches = Arc::new(Mutex::new(0usize));
    let (j, f, u) = (jwks.clone(), fetches.clone(), url.clone());
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let u = u.clone();
                async move { axum::Json(json!({ "issuer": u, "jwks_uri": format!("{u}/keys") })) }
            }),
        )
        .route(
            "/keys",
            axum::routing::get(move || {
                let (j, f) = (j.clone(), f.clone());
                async move {
                    *f.lock().unwrap() += 1;
                    axum::Json(j.lock().unwrap().clone())
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer { url, jwks, fetches }
}

/// An ES256 key: its encoding key and its public JWK under `kid`.
fn key(seed: u8, kid: &str) -> (EncodingKey, Value) {
    let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    let der = secret.to_pkcs8_der().unwrap();
    let point = secret.public_key().to_encoded_point(false);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    });
    (EncodingKey::from_ec_der(der.as_bytes()), jwk)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(key: &EncodingKey, kid: &str, claims: Value) -> String {
    let mut head = Header::new(Algorithm::ES256);
    head.kid = Some(kid.to_string());
    jsonwebtoken::encode(&head, &claims, key).unwrap()
}

#[tokio::test]
async fn jwts_of_the_issuer_are_verified_against_its_rotating_keys() {
    let iss = issuer().await;
    let (k1, jwk1) = key(7, "k1");
    *iss.jwks.lock().unwrap() = json!({ "keys": [jwk1] });
    let oidc = Oidc::new(&iss.url, vec!["catalog".into()], "scp")
        .with_mapping("platform-team", vec![Scope::ScorecardsWrite]);
    let app = router(state(Auth::new(false).with_oidc(oidc)));
    let claims = |extra: Value| {
        let mut c = json!({
            "iss": iss.url, "aud": "catalog", "sub": "user:default/ada",
            "exp": now() + 600, "iat": now(), "scp": "catalog.read"
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let get = |t: String| {
        let app = app.clone();
        async move {
            call(&app, "GET", "/api/catalog/entities", Some(&t), "")
                .await
                .0
        }
    };
    assert_eq!(get(jwt(&k1, "k1", claims(json!({})))).await, StatusCode::OK);
    // The keys were fetched once and are cached.
    assert_eq!(get(jwt(&k1, "k1", claims(json!({})))).await, StatusCode::OK);
    assert_eq!(*iss.fetches.lock().unwrap(), 1);
    // Expired, another audience, another issuer, no read scope.
    let bad = [
        json!({"exp": now() - 600}),
        json!({"aud": "billing"}),
        json!({"iss": "https://elsewhere.example"}),
        json!({"scp": "profile email"}),
    ];
    let expected = [
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
    ];
    for (extra, want) in bad.iter().zip(expected) {
        assert_eq!(
            get(jwt(&k1, "k1", claims(extra.clone()))).await,
            want,
            "{extra}"
        );
    }
    // Signed by a key the issuer does not publish.
    let (rogue, _) = key(9, "k1");
    assert_eq!(
        get(jwt(&rogue, "k1", claims(json!({})))).await,
        StatusCode::UNAUTHORIZED
    );
    // An HMAC token keyed with anything is refused whatever it claims.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(b"k1"),
    )
    .unwrap();
    assert_eq!(get(hs).await, StatusCode::UNAUTHORIZED);

    // A made-up key id does not fetch the keys again right away.
    assert_eq!(
        get(jwt(&rogue, "k9", claims(json!({})))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(*iss.fetches.lock().unwrap(), 1);

    // Rotation: the issuer now signs with k2; its first token fetches the
    // keys again (here as soon as it is seen).
    let (k2, jwk2) = key(8, "k2");
    *iss.jwks.lock().unwrap() = json!({ "keys": [jwk2] });
    let oidc = Oidc::new(&iss.url, vec!["catalog".into()], "scp")
        .with_mapping("platform-team", vec![Scope::ScorecardsWrite])
        .with_min_refetch(std::time::Duration::ZERO);
    let app = router(state(Auth::new(false).with_oidc(oidc)));
    let get = |t: String| {
        let app = app.clone();
        async move {
            call(&app, "GET", "/api/catalog/entities", Some(&t), "")
                .await
                .0
        }
    };
    assert_eq!(get(jwt(&k2, "k2", claims(json!({})))).await, StatusCode::OK);
    assert_eq!(
        get(jwt(&k1, "k1", claims(json!({})))).await,
        StatusCode::UNAUTHORIZED,
        "k1 is retired"
    );

    // A mapped claim value grants its scopes: a write passes the guard
    // (and fails on, here, the missing log writer).
    let (status, body) = call(
        &app,
        "POST",
        "/api/scorecards/c/exemptions",
        Some(&jwt(
            &k2,
            "k2",
            claims(json!({"scp": ["catalog.read", "platform-team"]})),
        )),
        GRANT,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot write"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        "POST",
        "/api/scorecards/c/exemptions",
        Some(&jwt(&k2, "k2", claims(json!({})))),
        GRANT,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lacks the scope"),
        "{body}"
    );
}

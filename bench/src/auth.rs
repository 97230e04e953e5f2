//! `--auth`: what authenticating a request costs. An OIDC issuer on
//! loopback serves its keys (ES256); the API's authenticator verifies
//! bearer tokens as every request does: JWTs of many users (each used many
//! times, as a signed-in browser or a service does for the token's
//! lifetime), and a static token. It prints the cost per request of a
//! token's first use (signature checked), of later uses (the verified
//! token remembered), and of a static token.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use query::auth::Oidc;
use query::{Auth, Scope};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Distinct users, hence distinct tokens.
const USERS: usize = 2_000;
/// Times each token is used after its first use.
const ROUNDS: usize = 50;
/// Requests with the static token.
const STATIC_REQUESTS: usize = 200_000;

/// Runs the measurement and prints its figures.
pub async fn run() -> anyhow::Result<()> {
    let (key, jwk) = signing_key(7, "bench-1")?;
    let (url, fetches) = issuer(json!({ "keys": [jwk] })).await?;
    let auth = Auth::new(false)
        .with_oidc(Oidc::new(&url, vec!["catalog".into()], "scp"))
        .with_token("ci", "bench-static-secret", &[Scope::CatalogWrite]);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut head = Header::new(Algorithm::ES256);
    head.kid = Some("bench-1".into());
    let mut requests = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let claims = json!({
            "iss": url, "aud": "catalog", "sub": format!("user:default/u{i}"),
            "iat": now, "exp": now + 3600, "scp": "catalog.read", "jti": i,
        });
        requests.push(bearer(&jsonwebtoken::encode(&head, &claims, &key)?)?);
    }
    // The first request fetches the issuer's keys; it is not counted.
    verify(&auth, &requests[0]).await?;
    let first = per_request(requests.len() - 1, || async {
        for h in &requests[1..] {
            verify(&auth, h).await?;
        }
        Ok(())
    })
    .await?;
    let again = per_request(requests.len() * ROUNDS, || async {
        for _ in 0..ROUNDS {
            for h in &requests {
                verify(&auth, h).await?;
            }
        }
        Ok(())
    })
    .await?;
    let fixed = bearer("bench-static-secret")?;
    let static_cost = per_request(STATIC_REQUESTS, || async {
        for _ in 0..STATIC_REQUESTS {
            verify(&auth, &fixed).await?;
        }
        Ok(())
    })
    .await?;
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!("token verification per request ({USERS} users' ES256 JWTs, issuer keys cached):");
    println!(
        "  JWT, first use (signature and claims checked): {:>8.2} µs",
        micros(first)
    );
    println!(
        "  JWT, later uses (verified token remembered):   {:>8.2} µs",
        micros(again)
    );
    println!(
        "  JWT, averaged over a token used {} times:      {:>8.2} µs",
        ROUNDS + 1,
        micros((first + again * ROUNDS as u32) / (ROUNDS as u32 + 1))
    );
    println!(
        "  static token:                                   {:>8.2} µs",
        micros(static_cost)
    );
    println!("  issuer key fetches: {}", fetches.load(Ordering::Relaxed));
    Ok(())
}

/// Time per item of `n` items done by `work`.
async fn per_request<F, Fut>(n: usize, work: F) -> anyhow::Result<Duration>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    work().await?;
    Ok(start.elapsed() / n.max(1) as u32)
}

/// Authenticates one request's headers; a refusal ends the benchmark.
async fn verify(auth: &Auth, headers: &HeaderMap) -> anyhow::Result<()> {
    match auth.principal(headers).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => anyhow::bail!("a bearer token was not read"),
        Err(e) => anyhow::bail!("a token was refused: {e:?}"),
    }
}

fn bearer(token: &str) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    Ok(h)
}

/// An ES256 signing key made from `seed`, and its public JWK under `kid`.
fn signing_key(seed: u8, kid: &str) -> anyhow::Result<(EncodingKey, Value)> {
    let secret = p256::SecretKey::from_slice(&[seed; 32])?;
    let der = secret
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("encode the key: {e}"))?;
    let point = secret.public_key().to_encoded_point(false);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        anyhow::bail!("the public key has no coordinates");
    };
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(x), "y": b64(y),
    });
    Ok((EncodingKey::from_ec_der(der.as_bytes()), jwk))
}

/// An OIDC issuer on loopback serving `jwks`: its URL and how many times
/// its keys were fetched.
async fn issuer(jwks: Value) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let fetches = Arc::new(AtomicUsize::new(0));
    let (f, u) = (fetches.clone(), url.clone());
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
                let (f, jwks) = (f.clone(), jwks.clone());
                async move {
                    f.fetch_add(1, Ordering::Relaxed);
                    axum::Json(jwks)
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, fetches))
}

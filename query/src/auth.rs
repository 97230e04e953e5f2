//! Who may call what.
//!
//! A caller is a [`Principal`]: a subject and its [`Scope`]s, from the
//! request's bearer token, which is either one of the configured static
//! tokens or a JWT of an OIDC issuer, verified against the issuer's JWKS
//! (cached, fetched again when a key id is unknown or the cache is old).
//! Each route asks for an [`Access`]: nothing (health), read (open to
//! anyone when the deployment says so), or a scope. Writes never are open.
//! Each principal (or, without a token, each client address) may be held
//! to a rate, answered with `429` and `Retry-After` beyond it.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read the catalog, its history and scorecards.
    CatalogRead,
    /// Register and remove locations, delete entities, refresh.
    CatalogWrite,
    /// Grant and revoke scorecard exemptions.
    ScorecardsWrite,
    /// Everything.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::CatalogRead,
        Scope::CatalogWrite,
        Scope::ScorecardsWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CatalogRead => "catalog.read",
            Scope::CatalogWrite => "catalog.write",
            Scope::ScorecardsWrite => "scorecards.write",
            Scope::Admin => "admin",
        }
    }

    /// A scope by name; the error names the known ones.
    pub fn parse(name: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope {name:?} (known: {})", known.join(", "))
            })
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metrics, the API document).
    Public,
    /// `catalog.read`, or anyone when reads are open.
    Read,
    /// This scope (writes: never open).
    Need(Scope),
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The static token's name, or the JWT's subject claim.
    pub subject: String,
    pub scopes: BTreeSet<Scope>,
}

impl Principal {
    /// Whether the principal holds `scope` (`admin` holds every scope).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// A static token, kept as its SHA-256 digest.
struct StaticToken {
    name: String,
    digest: [u8; 32],
    scopes: BTreeSet<Scope>,
}

/// How the API authenticates and limits its callers.
pub struct Auth {
    read_open: bool,
    tokens: Vec<StaticToken>,
    oidc: Option<Oidc>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl Auth {
    /// No token known: reads open or not, writes refused.
    pub fn new(read_open: bool) -> Self {
        Auth {
            read_open,
            tokens: Vec::new(),
            oidc: None,
            limiter: None,
        }
    }

    /// Accepts `secret` as the token of `name`, with `scopes`.
    pub fn with_token(mut self, name: &str, secret: &str, scopes: &[Scope]) -> Self {
        self.tokens.push(StaticToken {
            name: name.to_string(),
            digest: Sha256::digest(secret.as_bytes()).into(),
            scopes: scopes.iter().copied().collect(),
        });
        self
    }

    /// Accepts JWTs of an OIDC issuer.
    pub fn with_oidc(mut self, oidc: Oidc) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// Holds each principal (each client address without a token) to
    /// `per_second` requests a second, with bursts of `burst`.
    pub fn with_rate_limit(mut self, per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        self.limiter = Some(governor::RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ));
        self
    }

    /// Whether reads need no token.
    pub fn read_open(&self) -> bool {
        self.read_open
    }

    /// Whether any caller could hold a scope (a token or an issuer is
    /// configured).
    pub fn accepts_tokens(&self) -> bool {
        !self.tokens.is_empty() || self.oidc.is_some()
    }

    /// The principal of `headers`' bearer token; `None` without one.
    pub async fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        if let Some(p) = self.static_principal(token) {
            return Ok(Some(p));
        }
        match &self.oidc {
            Some(oidc) if token.split('.').count() == 3 => oidc
                .verify(token)
                .await
                .map(Some)
                .map_err(|e| ApiError::Unauthorized(format!("the token is not valid: {e}"))),
            _ => Err(ApiError::Unauthorized("the token is not valid".into())),
        }
    }

    /// Compares the digest of `token` with every static token's, in
    /// constant time, without stopping at a match.
    fn static_principal(&self, token: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.digest.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        found.map(|t| Principal {
            subject: t.name.clone(),
            scopes: t.scopes.clone(),
        })
    }

    /// Whether the caller may pass `access`: its principal, if any.
    pub async fn check(
        &self,
        access: Access,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, ApiError> {
        if access == Access::Public {
            return Ok(None);
        }
        let principal = self.principal(headers).await?;
        let needed = match access {
            Access::Public => return Ok(principal),
            Access::Read if self.read_open => return Ok(principal),
            Access::Read => Scope::CatalogRead,
            Access::Need(scope) => scope,
        };
        match &principal {
            Some(p) if p.has(needed) => Ok(principal),
            Some(p) => Err(ApiError::Forbidden(format!(
                "{:?} lacks the scope {}",
                p.subject,
                needed.as_str()
            ))),
            None if !self.accepts_tokens() => Err(ApiError::Forbidden(format!(
                "this deployment accepts no token (auth.tokens, auth.oidc), so nobody holds {}",
                needed.as_str()
            ))),
            None => Err(ApiError::Unauthorized(format!(
                "a bearer token with the scope {} is required",
                needed.as_str()
            ))),
        }
    }

    /// Takes one request of `key` from its rate; `Err` with the seconds
    /// until the next one is allowed.
    fn take(&self, key: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// Middleware state: the deployment's [`Auth`] and a route's [`Access`].
#[derive(Clone)]
pub(crate) struct Guard {
    pub auth: Arc<Auth>,
    pub access: Access,
}

/// Middleware: authenticates the caller, checks the route's access and the
/// caller's rate, and leaves the [`Principal`] (if any) in the request's
/// extensions for handlers that attribute what they write.
pub(crate) async fn guard(
    State(guard): State<Guard>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = guard.auth.check(guard.access, req.headers()).await?;
    if guard.access != Access::Public {
        let key = match &principal {
            Some(p) => format!("principal:{}", p.subject),
            None => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => format!("address:{}", addr.ip()),
                None => "address:unknown".to_string(),
            },
        };
        guard
            .auth
            .take(&key)
            .map_err(|secs| ApiError::TooManyRequests {
                message: "too many requests; retry later".into(),
                retry_after_secs: secs.max(1),
            })?;
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    Ok(next.run(req).await)
}

/// Verifies JWTs of one issuer against its JWKS.
pub struct Oidc {
    issuer: String,
    audiences: Vec<String>,
    /// Where the keys are; `None`: from the issuer's discovery document.
    jwks_uri: Option<String>,
    scopes_claim: String,
    /// Claim values -> scopes, besides values that name a scope.
    scope_map: BTreeMap<String, Vec<Scope>>,
    refresh_after: Duration,
    min_refetch: Duration,
    keys: Mutex<KeyCache>,
    /// Tokens verified already, by SHA-256 of the token: a caller's token
    /// is checked once (an ES256 signature costs ~0.8 ms here), then looked
    /// up until it expires, its key leaves the JWKS, or
    /// [`VERIFIED_FOR`] passes.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    agent: ureq::Agent,
}

/// A token verified already.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    kid: String,
    /// Unix seconds until which the verification stands.
    until: i64,
}

/// Longest a verification stands without checking the signature again
/// (scope mappings and revocations by key rotation apply within it).
const VERIFIED_FOR: i64 = 300;
/// Most verified tokens remembered.
const VERIFIED_MAX: usize = 10_000;

#[derive(Default)]
struct KeyCache {
    fetched: Option<Instant>,
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
}

/// The asymmetric algorithms an issuer may sign with (never `none` or an
/// HMAC, whose key would be the public JWKS).
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// By default, an unknown key id fetches the JWKS again at most this
/// often (tokens with made-up key ids must not make the catalog hammer
/// the issuer).
const MIN_REFETCH: Duration = Duration::from_secs(30);

impl Oidc {
    /// Tokens of `issuer` for any of `audiences` (none: any audience),
    /// with scopes in the claim `scopes_claim` (a space-separated string or
    /// an array).
    pub fn new(issuer: &str, audiences: Vec<String>, scopes_claim: &str) -> Self {
        Oidc {
            issuer: issuer.trim_end_matches('/').to_string(),
            audiences,
            jwks_uri: None,
            scopes_claim: scopes_claim.to_string(),
            scope_map: BTreeMap::new(),
            refresh_after: Duration::from_secs(600),
            min_refetch: MIN_REFETCH,
            keys: Mutex::default(),
            verified: Mutex::default(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into(),
        }
    }

    /// Reads the keys from `uri` instead of the discovery document's.
    pub fn with_jwks_uri(mut self, uri: &str) -> Self {
        self.jwks_uri = Some(uri.to_string());
        self
    }

    /// Claim value `value` grants `scopes`.
    pub fn with_mapping(mut self, value: &str, scopes: Vec<Scope>) -> Self {
        self.scope_map.insert(value.to_string(), scopes);
        self
    }

    /// Keys older than this are fetched again.
    pub fn with_refresh(mut self, after: Duration) -> Self {
        self.refresh_after = after;
        self
    }

    /// An unknown key id fetches the keys again at most this often.
    pub fn with_min_refetch(mut self, every: Duration) -> Self {
        self.min_refetch = every;
        self
    }

    async fn verify(&self, token: &str) -> Result<Principal, String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        let known = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .filter(|v| v.until > now)
            .cloned();
        if let Some(v) = known {
            let cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if pick(&cache.keys, &v.kid).is_some() {
                return Ok(v.principal);
            }
        }
        let head = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if !ALGORITHMS.contains(&head.alg) {
            return Err(format!("algorithm {:?} is not accepted", head.alg));
        }
        let kid = head.kid.clone().unwrap_or_default();
        let (key, alg) = self.key(&kid).await?;
        if alg.is_some_and(|a| a != head.alg) {
            return Err(format!(
                "key {kid:?} is for {:?}, the token says {:?}",
                alg.unwrap_or(head.alg),
                head.alg
            ));
        }
        let mut validation = Validation::new(head.alg);
        validation.set_issuer(&[&self.issuer, &format!("{}/", self.issuer)]);
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
        }
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| e.to_string())?;
        let claims = data.claims;
        let subject = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .ok_or("the token has no `sub` claim")?
            .to_string();
        let values: Vec<&str> = match claims.get(&self.scopes_claim) {
            Some(serde_json::Value::String(s)) => s.split_whitespace().collect(),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let mut scopes = BTreeSet::new();
        for v in values {
            if let Ok(s) = Scope::parse(v) {
                scopes.insert(s);
            }
            if let Some(mapped) = self.scope_map.get(v) {
                scopes.extend(mapped.iter().copied());
            }
        }
        let principal = Principal { subject, scopes };
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(now);
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, v| v.until > now);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(
            digest,
            Verified {
                principal: principal.clone(),
                kid,
                until: exp.min(now + VERIFIED_FOR),
            },
        );
        Ok(principal)
    }

    /// The key of `kid` (a token without a kid: the only key), fetching
    /// the JWKS when it is old or does not know the kid.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Option<Algorithm>), String> {
        let (fresh, may_refetch) = {
            let cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = pick(&cache.keys, kid)
                && cache
                    .fetched
                    .is_some_and(|at| at.elapsed() < self.refresh_after)
            {
                return Ok(found);
            }
            (
                cache
                    .fetched
                    .is_none_or(|at| at.elapsed() >= self.refresh_after),
                cache
                    .fetched
                    .is_none_or(|at| at.elapsed() >= self.min_refetch),
            )
        };
        if fresh || may_refetch {
            let keys = self.fetch().await;
            let mut cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            match keys {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched = Some(Instant::now());
                }
                // Keys known before keep serving while the issuer is away.
                Err(e) if cache.keys.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(issuer = %self.issuer, error = %e, "cannot refresh the JWKS")
                }
            }
        }
        let cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        pick(&cache.keys, kid).ok_or_else(|| format!("no key {kid:?} in the issuer's JWKS"))
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Option<Algorithm>)>, String> {
        let agent = self.agent.clone();
        let issuer = self.issuer.clone();
        let jwks_uri = self.jwks_uri.clone();
        tokio::task::spawn_blocking(move || {
            let get = |url: &str| -> Result<String, String> {
                agent
                    .get(url)
                    .call()
                    .map_err(|e| format!("GET {url}: {e}"))?
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_string()
                    .map_err(|e| format!("GET {url}: {e}"))
            };
            let uri = match jwks_uri {
                Some(u) => u,
                None => {
                    let url = format!("{issuer}/.well-known/openid-configuration");
                    let doc: serde_json::Value =
                        serde_json::from_str(&get(&url)?).map_err(|e| format!("{url}: {e}"))?;
                    doc.get("jwks_uri")
                        .and_then(|u| u.as_str())
                        .ok_or_else(|| format!("{url}: no jwks_uri"))?
                        .to_string()
                }
            };
            let set: JwkSet =
                serde_json::from_str(&get(&uri)?).map_err(|e| format!("{uri}: {e}"))?;
            let mut keys = HashMap::new();
            for jwk in &set.keys {
                let Ok(key) = DecodingKey::from_jwk(jwk) else {
                    continue;
                };
                let alg = jwk
                    .common
                    .key_algorithm
                    .and_then(|a| a.to_string().parse::<Algorithm>().ok());
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), (key, alg));
            }
            Ok(keys)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// The key of `kid`; without a kid, the only key of the set.
fn pick(
    keys: &HashMap<String, (DecodingKey, Option<Algorithm>)>,
    kid: &str,
) -> Option<(DecodingKey, Option<Algorithm>)> {
    if kid.is_empty() && keys.len() == 1 {
        return keys.values().next().cloned();
    }
    keys.get(kid).cloned()
}

/// A random token for `catalog dev`: 256 bits from the system's random
/// source, URL-safe base64.
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

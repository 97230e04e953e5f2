//! Calls to a cloud's REST API with an OAuth2 bearer token, for the `gcp`
//! and `azure` sources: the token is fetched when needed and kept until a
//! minute before it expires; a `401` fetches a new one and tries once more
//! (a token revoked or expired early); `429` and `5xx` answers and
//! transport errors are retried with exponential backoff and full jitter,
//! honouring `Retry-After`, up to `max_attempts`.

use super::cloud::{self, CloudResource, Mapping};
use super::gcp::CloudDetails;
use crate::source::Listing;
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a token is obtained: the form to post to the token endpoint.
pub trait TokenSource: Send + Sync {
    /// `(token URL, form fields)`, or why the request cannot be made.
    fn token_request(&self) -> Result<(String, Vec<(String, String)>), String>;
}

/// Calls made, for the status API and the benchmark.
#[derive(Debug, Default)]
pub struct CallCounters {
    pub calls: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub tokens: AtomicU64,
}

/// A REST client with a bearer token.
pub struct RestClient {
    agent: ureq::Agent,
    tokens: Box<dyn TokenSource>,
    token: Mutex<Option<(String, Instant)>>,
    max_attempts: u32,
    initial_backoff: Duration,
    pub counters: CallCounters,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError(pub String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl RestClient {
    pub fn new(tokens: Box<dyn TokenSource>, max_attempts: u32, initial_backoff: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        RestClient {
            agent,
            tokens,
            token: Mutex::new(None),
            max_attempts: max_attempts.max(1),
            initial_backoff,
            counters: CallCounters::default(),
        }
    }

    fn token(&self, fresh: bool) -> Result<String, CallError> {
        let mut slot = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if !fresh
            && let Some((t, until)) = slot.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let (url, form) = self.tokens.token_request().map_err(CallError)?;
        let answer = self.send(|| {
            let fields: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.agent.post(&url).send_form(fields)
        })?;
        self.counters.tokens.fetch_add(1, Ordering::Relaxed);
        let (status, body) = answer;
        if status != 200 {
            return Err(CallError(format!(
                "token endpoint {url} answered {status}: {}",
                short(&body)
            )));
        }
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| CallError(format!("token endpoint {url}: no access_token")))?
            .to_string();
        let lifetime = body["expires_in"]
            .as_u64()
            .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3600);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
        *slot = Some((token.clone(), until));
        Ok(token)
    }

    /// Runs `call` until it gets an answer that is not worth retrying:
    /// `(status, body as JSON or Null)`.
    fn send(
        &self,
        call: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), CallError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
            let (retry, wait, why) = match call() {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let retry_after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body: Value = r
                        .body_mut()
                        .with_config()
                        .limit(256 << 20)
                        .read_json()
                        .unwrap_or(Value::Null);
                    if status == 429 || status >= 500 {
                        if status == 429 {
                            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        (true, retry_after, format!("{status}: {}", short(&body)))
                    } else {
                        return Ok((status, body));
                    }
                }
                Err(e) => (true, None, e.to_string()),
            };
            if !retry || attempt >= self.max_attempts {
                return Err(CallError(format!("after {attempt} attempts: {why}")));
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(
                wait.unwrap_or_else(|| self.backoff(attempt))
                    .min(Duration::from_secs(60)),
            );
        }
    }

    /// Full jitter: a random wait below `initial * 2^(attempt-1)`.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(10));
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let r = u64::from_le_bytes(seed) as f64 / u64::MAX as f64;
        cap.mul_f64(r.max(0.1))
    }

    /// A GET or POST (with a JSON body) with the bearer token; a `401`
    /// fetches a new token and tries once more.
    pub fn call(&self, url: &str, body: Option<&Value>) -> Result<Value, CallError> {
        let mut fresh = false;
        loop {
            let token = self.token(fresh)?;
            let auth = format!("Bearer {token}");
            let (status, answer) = self.send(|| match body {
                Some(b) => self
                    .agent
                    .post(url)
                    .header("authorization", &auth)
                    .send_json(b),
                None => self.agent.get(url).header("authorization", &auth).call(),
            })?;
            match status {
                200 => return Ok(answer),
                401 if !fresh => fresh = true,
                _ => {
                    return Err(CallError(format!(
                        "{url} answered {status}: {}",
                        short(&answer)
                    )));
                }
            }
        }
    }
}

/// Lists every scope (project, subscription) of a REST cloud source with
/// `list_one`, each whole or not at all (a scope that fails is left out of
/// the listing's scope: nothing in it is removed), and records the
/// source's status in `last`.
pub fn list_scopes(
    provider: &str,
    scopes: &[String],
    list_one: impl Fn(&str) -> Result<Vec<CloudResource>, CallError>,
    mapping: &Mapping,
    client: &RestClient,
    last: &Mutex<CloudDetails>,
) -> Listing {
    let mut resources = Vec::new();
    let mut listed = Vec::new();
    let mut failed = Vec::new();
    for scope in scopes {
        // Keys hold the scope as the resources do (Azure's in lower case).
        let prefix = cloud::scope_prefix(provider, &scope.to_ascii_lowercase(), "-");
        match list_one(scope) {
            Ok(mut rs) => {
                listed.push(prefix);
                resources.append(&mut rs);
            }
            Err(e) => failed.push((prefix, e.0)),
        }
    }
    let c = &client.counters;
    *last.lock().unwrap_or_else(|e| e.into_inner()) = CloudDetails {
        scopes: scopes.to_vec(),
        resources: resources.len(),
        unowned: resources
            .iter()
            .filter(|r| cloud::is_unowned(r, mapping))
            .count(),
        calls: c.calls.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
        throttled: c.throttled.load(Ordering::Relaxed),
        tokens: c.tokens.load(Ordering::Relaxed),
        failed_scopes: failed.iter().map(|(s, e)| format!("{s}: {e}")).collect(),
    };
    cloud::listing(&resources, mapping, &listed, &failed)
}

/// The error message of an answer, or the start of it.
fn short(body: &Value) -> String {
    let msg = body
        .pointer("/error/message")
        .or_else(|| body.get("error_description"))
        .or_else(|| body.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    msg.chars().take(300).collect()
}

//! GitHub's REST API through octocrab, made cheap and polite:
//!
//! - **Conditional requests.** Every GET carries the `ETag` of the last
//!   answer to the same path as `If-None-Match`; a `304 Not Modified` costs
//!   no rate-limit point, and the client answers from what it extracted
//!   last time. Validators and extracts live in the ingest state store, so
//!   they survive restarts; only the small extract is kept, not the body.
//! - **Rate limits.** `x-ratelimit-remaining`/`-reset` of every answer are
//!   tracked (and exported as a gauge). When the quota is spent, requests
//!   wait for the reset; a secondary limit's `retry-after` is honoured, and
//!   without one the client backs off exponentially with jitter. A wait
//!   longer than `max_wait` is not taken: the request fails as rate limited,
//!   and the listing that needed it is incomplete (it removes nothing).
//! - **Server errors and timeouts** are retried with backoff, a few times.
//!
//! octocrab's own retry layer is off: it cannot tell the listing that a
//! wait would be hours long, nor stop waiting when the service shuts down.

use crate::state::StateStore;
use octocrab::Octocrab;
use proto::SourceId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Namespace of cached validators in the state store.
const CACHE_NS: &str = "http";

/// How the client treats limits and failures.
#[derive(Debug, Clone, PartialEq)]
pub struct Politeness {
    /// The longest single wait for a rate limit to lift.
    pub max_wait: Duration,
    /// First backoff after a secondary limit without `retry-after`
    /// (GitHub asks for at least a minute), doubled on every repeat.
    pub secondary_backoff: Duration,
    /// First backoff after a server error or timeout, doubled on repeats.
    pub error_backoff: Duration,
    /// Attempts per request beyond the first.
    pub max_retries: u32,
    /// Time allowed for one request.
    pub request_timeout: Duration,
}

impl Default for Politeness {
    fn default() -> Self {
        Politeness {
            max_wait: Duration::from_secs(15 * 60),
            secondary_backoff: Duration::from_secs(60),
            error_backoff: Duration::from_secs(1),
            max_retries: 4,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a request produced no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{path}: not found")]
    NotFound { path: String, message: String },
    #[error("{path}: forbidden: {message}")]
    Forbidden { path: String, message: String },
    #[error("{path}: rate limited; would have to wait {wait_secs} s (more than allowed)")]
    RateLimited { path: String, wait_secs: u64 },
    #[error("{path}: HTTP {status}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    #[error("{path}: {message}")]
    Transport { path: String, message: String },
    #[error("{path}: unexpected response: {message}")]
    Decode { path: String, message: String },
    #[error("stopped while waiting")]
    Stopped,
}

/// An answer: what was extracted from it, and where the next page is.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub value: T,
    /// Path and query of the next page (`Link: <..>; rel="next"`).
    pub next: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Cached<T> {
    etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    value: T,
}

/// What the client knows of its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Unix seconds.
    pub reset: Option<i64>,
}

/// Request counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub not_modified: AtomicU64,
    /// Answers that cost a rate-limit point (all but 304s).
    pub points: AtomicU64,
    pub rate_limited: AtomicU64,
    pub retries: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    pub requests: u64,
    pub not_modified: u64,
    pub points: u64,
    pub rate_limited: u64,
    pub retries: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            points: self.points.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// A GitHub API client for one source instance.
pub struct Client {
    crab: Octocrab,
    source: SourceId,
    state: Arc<StateStore>,
    politeness: Politeness,
    quota: Mutex<Quota>,
    pub counters: Counters,
    stop: Mutex<Option<Arc<AtomicBool>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("source", &self.source)
            .field("quota", &self.quota())
            .finish()
    }
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The `rel="next"` target of a `Link` header, as path and query.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        if !is_next {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        Some(path_and_query(url))
    })
}

/// `https://host/api/v3/x?y` -> `/api/v3/x?y`; a path stays as it is.
fn path_and_query(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        },
        None => url.to_string(),
    }
}

/// A GitHub error body's `message`.
fn message_of(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Msg {
        message: Option<String>,
    }
    serde_json::from_slice::<Msg>(body)
        .ok()
        .and_then(|m| m.message)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// A pseudo-random fraction in [0, 1) for jitter (UUIDv7 random bits).
fn jitter() -> f64 {
    (uuid::Uuid::now_v7().as_u128() as u64 % 10_000) as f64 / 10_000.0
}

enum Step<T> {
    Done(Result<Answer<T>, ApiError>),
    Wait(Duration, String),
}

impl Client {
    pub fn new(
        crab: Octocrab,
        source: SourceId,
        state: Arc<StateStore>,
        politeness: Politeness,
    ) -> Self {
        Client {
            crab,
            source,
            state,
            politeness,
            quota: Mutex::new(Quota::default()),
            counters: Counters::default(),
            stop: Mutex::new(None),
        }
    }

    pub fn octocrab(&self) -> &Octocrab {
        &self.crab
    }

    pub fn set_stop(&self, stop: Arc<AtomicBool>) {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
    }

    fn stopped(&self) -> bool {
        self.stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }

    pub fn quota(&self) -> Quota {
        *self.quota.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps `d` in slices, ending early (with an error) at shutdown.
    async fn sleep(&self, d: Duration) -> Result<(), ApiError> {
        let until = tokio::time::Instant::now() + d;
        loop {
            if self.stopped() {
                return Err(ApiError::Stopped);
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
        }
    }

    fn note_quota(&self, h: &http::HeaderMap) {
        let num = |n: &str| header(h, n).and_then(|v| v.parse::<i64>().ok());
        let mut q = self.quota.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = num("x-ratelimit-remaining") {
            q.remaining = Some(r.max(0) as u64);
            metrics::gauge!("catalog_github_ratelimit_remaining", "source" => self.source.to_string())
                .set(r as f64);
        }
        if let Some(l) = num("x-ratelimit-limit") {
            q.limit = Some(l.max(0) as u64);
        }
        if let Some(r) = num("x-ratelimit-reset") {
            q.reset = Some(r);
        }
    }

    /// How long until the quota is back, if it is spent now.
    fn quota_wait(&self) -> Option<Duration> {
        let q = self.quota();
        if q.remaining != Some(0) {
            return None;
        }
        let reset = q.reset?;
        let now = chrono::Utc::now().timestamp();
        // One second beyond the reset: clocks differ.
        (reset >= now).then(|| Duration::from_secs((reset - now + 1) as u64))
    }

    /// GETs `path` (path and query, relative to the API base) with the
    /// cached validator, and extracts a `T` from a fresh body.
    pub async fn get<T, F>(&self, path: &str, extract: F) -> Result<Answer<T>, ApiError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(&[u8]) -> Result<T, String>,
    {
        self.get_keyed(path, path, extract).await
    }

    /// Like [`Client::get`], with the extract cached under `cache_key`
    /// (for extracts that depend on more than the path, such as a filter).
    pub async fn get_keyed<T, F>(
        &self,
        path: &str,
        cache_key: &str,
        extract: F,
    ) -> Result<Answer<T>, ApiError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(&[u8]) -> Result<T, String>,
    {
        let mut cached: Option<Cached<T>> = self
            .state
            .aux_get(&self.source, CACHE_NS, cache_key)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok());
        let mut backoff_errors = self.politeness.error_backoff;
        let mut backoff_secondary = self.politeness.secondary_backoff;
        let mut attempt = 0u32;
        loop {
            if let Some(w) = self.quota_wait() {
                if w > self.politeness.max_wait {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::RateLimited {
                        path: path.into(),
                        wait_secs: w.as_secs(),
                    });
                }
                tracing::warn!(source = %self.source, wait_s = w.as_secs(), "rate limit spent; waiting for the reset");
                self.sleep(w).await?;
                // Assume the reset happened; the next answer says otherwise.
                self.quota
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remaining = None;
            }
            let step = self
                .attempt(path, cache_key, &mut cached, &extract, attempt)
                .await;
            match step {
                Step::Done(r) => return r,
                Step::Wait(w, why) => {
                    attempt += 1;
                    if attempt > self.politeness.max_retries {
                        return Err(ApiError::Transport {
                            path: path.into(),
                            message: format!("gave up after {attempt} attempts; last: {why}"),
                        });
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let w = if w.is_zero() {
                        let b = backoff_errors;
                        backoff_errors *= 2;
                        b
                    } else if w == Duration::MAX {
                        let b = backoff_secondary;
                        backoff_secondary *= 2;
                        b
                    } else {
                        w
                    };
                    let w = w.mul_f64(1.0 + 0.25 * jitter());
                    if w > self.politeness.max_wait {
                        self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                        return Err(ApiError::RateLimited {
                            path: path.into(),
                            wait_secs: w.as_secs(),
                        });
                    }
                    self.sleep(w).await?;
                }
            }
        }
    }

    /// One request. `Step::Wait(ZERO)` asks for an error backoff,
    /// `Wait(MAX)` for a secondary-limit backoff, anything else is the
    /// exact wait GitHub asked for.
    async fn attempt<T, F>(
        &self,
        path: &str,
        cache_key: &str,
        cached: &mut Option<Cached<T>>,
        extract: &F,
        attempt: u32,
    ) -> Step<T>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(&[u8]) -> Result<T, String>,
    {
        let err = |e: ApiError| Step::Done(Err(e));
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            http::HeaderValue::from_static("2022-11-28"),
        );
        if let Some(c) = &cached
            && let Ok(v) = http::HeaderValue::from_str(&c.etag)
        {
            headers.insert(http::header::IF_NONE_MATCH, v);
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let sent = tokio::time::timeout(
            self.politeness.request_timeout,
            self.crab._get_with_headers(path, Some(headers)),
        )
        .await;
        let resp = match sent {
            Err(_) => {
                tracing::warn!(source = %self.source, path, attempt, "request timed out");
                return Step::Wait(Duration::ZERO, "timed out".into());
            }
            Ok(Err(e)) => {
                tracing::warn!(source = %self.source, path, attempt, error = %e, "request failed");
                return Step::Wait(Duration::ZERO, e.to_string());
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        self.note_quota(&h);
        metrics::counter!("catalog_github_requests_total", "source" => self.source.to_string(), "status" => status.to_string()).increment(1);
        if status == 304 {
            self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
            return match cached.take() {
                Some(c) => Step::Done(Ok(Answer {
                    value: c.value,
                    next: c.next,
                })),
                None => err(ApiError::Decode {
                    path: path.into(),
                    message: "304 without a cached answer".into(),
                }),
            };
        }
        let body = match tokio::time::timeout(
            self.politeness.request_timeout,
            self.crab.body_to_string(resp),
        )
        .await
        {
            Ok(Ok(b)) => b.into_bytes(),
            _ => return Step::Wait(Duration::ZERO, "reading the body failed".into()),
        };
        let limited = matches!(status, 403 | 429)
            && (h.contains_key("retry-after") || header(&h, "x-ratelimit-remaining") == Some("0"));
        if !limited && status < 500 {
            self.counters.points.fetch_add(1, Ordering::Relaxed);
        }
        match status {
            200..=299 => {
                let value = match extract(&body) {
                    Ok(v) => v,
                    Err(message) => {
                        return err(ApiError::Decode {
                            path: path.into(),
                            message,
                        });
                    }
                };
                let next = header(&h, "link").and_then(next_link);
                if let Some(etag) = header(&h, "etag") {
                    let entry = Cached {
                        etag: etag.to_string(),
                        next: next.clone(),
                        value: &value,
                    };
                    if let Ok(bytes) = serde_json::to_vec(&entry) {
                        let _ = self.state.aux_write(
                            &self.source,
                            CACHE_NS,
                            [(cache_key, Some(bytes.as_slice()))],
                        );
                    }
                }
                Step::Done(Ok(Answer { value, next }))
            }
            404 | 410 => err(ApiError::NotFound {
                path: path.into(),
                message: message_of(&body),
            }),
            403 | 429 => {
                let message = message_of(&body);
                if let Some(secs) = header(&h, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(source = %self.source, path, retry_after_s = secs, "secondary rate limit");
                    return Step::Wait(
                        Duration::from_secs(secs.max(1)),
                        format!("HTTP {status} retry-after {secs}"),
                    );
                }
                if header(&h, "x-ratelimit-remaining") == Some("0") {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    // The loop waits for the reset before the next attempt.
                    let why = format!("HTTP {status}: {message}");
                    return match self.quota_wait() {
                        Some(_) => Step::Wait(Duration::from_millis(1), why),
                        None => Step::Wait(Duration::ZERO, why),
                    };
                }
                if status == 429 || message.to_lowercase().contains("secondary rate limit") {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    return Step::Wait(Duration::MAX, format!("HTTP {status}: {message}"));
                }
                err(ApiError::Forbidden {
                    path: path.into(),
                    message,
                })
            }
            500..=599 => {
                tracing::warn!(source = %self.source, path, status, attempt, "server error");
                Step::Wait(Duration::ZERO, format!("HTTP {status}"))
            }
            _ => err(ApiError::Status {
                path: path.into(),
                status,
                message: message_of(&body),
            }),
        }
    }

    /// Every page of a list, following `Link: rel="next"`.
    pub async fn get_all<T, F>(&self, first: &str, extract: F) -> Result<Vec<T>, ApiError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(&[u8]) -> Result<Vec<T>, String>,
    {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(path) = next {
            pages += 1;
            if pages > 10_000 {
                return Err(ApiError::Decode {
                    path,
                    message: "more than 10000 pages".into(),
                });
            }
            let a = self.get(&path, &extract).await?;
            out.extend(a.value);
            next = a.next;
        }
        Ok(out)
    }
}

/// Decodes a JSON body into `T`, naming the reason when it does not fit.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_others() {
        let l = r#"<https://api.github.com/repositories/1000/issues?per_page=3&page=1>; rel="prev", <https://api.github.com/repositories/1000/issues?per_page=3&page=3>; rel="next", <https://api.github.com/repositories/1000/issues?per_page=3&page=5>; rel="last""#;
        assert_eq!(
            next_link(l).as_deref(),
            Some("/repositories/1000/issues?per_page=3&page=3")
        );
        let last = r#"<https://api.github.com/x?page=4>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(next_link(last), None);
        assert_eq!(
            next_link(r#"<https://ghe.example.com/api/v3/orgs/a/repos?page=2>; rel="next""#)
                .as_deref(),
            Some("/api/v3/orgs/a/repos?page=2")
        );
    }

    #[test]
    fn error_messages_come_from_the_body() {
        assert_eq!(
            message_of(br#"{"message":"Branch not protected","documentation_url":"x"}"#),
            "Branch not protected"
        );
        assert_eq!(message_of(b"oops"), "oops");
    }
}

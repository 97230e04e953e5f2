//! Request handling: the per-request pipeline (faults, authentication, rate
//! limit, conditional requests, headers) and the GitHub endpoints with their
//! response bodies.

use std::fmt::Display;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::world::{Entry, Lookup, Name, Org, Repo, State, Team, Tree, User, iso, wall_now};
use crate::{Fault, Protection, Sim};

/// The API root that bodies are rendered (and ETags computed) with; it is
/// replaced by the simulator's base URL when a body is sent.
const CANON_API: &str = "https://api.github.com";
const WEB: &str = "https://github.com";
const DOCS: &str = "https://docs.github.com/rest";
const RATE_DOCS: &str =
    "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting";
const SECONDARY_DOCS: &str = "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";
const SECONDARY_MESSAGE: &str =
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
const NOT_ACCESSIBLE: &str = "Resource not accessible by integration";

struct Ctx {
    sim: Sim,
    base: String,
}

pub(crate) fn router(sim: Sim, base: String) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(Ctx { sim, base }))
}

async fn handle(
    AxState(ctx): AxState<Arc<Ctx>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    let (delay, fault) = {
        let mut st = ctx.sim.lock();
        st.stats.requests += 1;
        st.stats.paths.push(path_and_query.clone());
        (st.page_delay, st.take_fault(&path_and_query))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(Fault::Timeout(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    let req = Req {
        method,
        path: uri.path().to_string(),
        query: Query::parse(uri.query()),
        headers,
    };
    let response = {
        let mut st = ctx.sim.lock();
        process(&mut st, &ctx.base, &req, fault)
    };
    tracing::debug!(method = %req.method, path = %path_and_query, status = response.status().as_u16(), "githubsim");
    response
}

struct Req {
    method: Method,
    path: String,
    query: Query,
    headers: HeaderMap,
}

/// A query string, kept raw (for `Link` URLs) and decoded on lookup.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (p.to_string(), String::new()),
            })
            .collect();
        Query { pairs }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, _)| decode(k, true) == name)
            .map(|(_, v)| decode(v, true))
    }

    fn number(&self, name: &str) -> Option<usize> {
        self.get(name)?.parse().ok().filter(|n| *n > 0)
    }

    /// The query string with `page` set to `page`.
    fn with_page(&self, page: usize) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut seen = false;
        for (k, v) in &self.pairs {
            if k == "page" {
                if !seen {
                    out.push(format!("page={page}"));
                    seen = true;
                }
            } else {
                out.push(format!("{k}={v}"));
            }
        }
        if !seen {
            out.push(format!("page={page}"));
        }
        out.join("&")
    }
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| char::from(c).to_digit(16);
                if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a path for use in a URL, keeping `/`.
fn enc(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response before the common headers are added.
struct Reply {
    status: u16,
    /// Rendered with [`CANON_API`] as the API root.
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// Whether answering costs a rate-limit point.
    charge: bool,
    /// `(remaining, used, reset)` to report instead of the quota's.
    rate_override: Option<(u64, u64, i64)>,
}

impl Reply {
    fn bytes(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body,
            headers: Vec::new(),
            charge: true,
            rate_override: None,
        }
    }

    fn json(status: u16, v: &Value) -> Reply {
        Reply::bytes(status, serde_json::to_vec(v).unwrap_or_default())
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::error_doc(status, message, DOCS)
    }

    fn error_doc(status: u16, message: &str, docs: &str) -> Reply {
        Reply::json(
            status,
            &json!({"message": message, "documentation_url": docs, "status": status.to_string()}),
        )
    }

    fn not_found() -> Reply {
        Reply::error(404, "Not Found")
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn free(mut self) -> Reply {
        self.charge = false;
        self
    }
}

fn process(st: &mut State, base: &str, req: &Req, fault: Option<Fault>) -> Response {
    let now = wall_now();
    st.quota.refill_if_due(now);
    st.request_seq += 1;
    let mut reply = match fault {
        Some(Fault::Status(code)) => Reply::error(code, "Server Error").free(),
        Some(Fault::SecondaryLimit {
            retry_after_secs,
            status,
        }) => Reply::error_doc(status, SECONDARY_MESSAGE, SECONDARY_DOCS)
            .header("retry-after", retry_after_secs.to_string())
            .free(),
        Some(Fault::PrimaryExhausted { reset_in_secs }) => {
            let mut r = rate_exceeded(1);
            let reset = now.saturating_add_unsigned(reset_in_secs);
            r.rate_override = Some((0, st.quota.limit, reset));
            r
        }
        Some(Fault::Timeout(_)) | None => serve(st, base, req, now),
    };

    let mut etag = None;
    if req.method == Method::GET && reply.status == 200 {
        let digest = Sha256::digest(&reply.body);
        let tag = hex::encode(&digest[..16]);
        let matches = req
            .headers
            .get_all("if-none-match")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| etag_matches(v, &tag));
        if matches {
            reply = Reply::bytes(304, Vec::new()).free();
            st.stats.not_modified += 1;
        }
        etag = Some(tag);
    }

    *st.stats.by_status.entry(reply.status).or_default() += 1;
    if reply.charge && st.quota.remaining > 0 {
        st.quota.remaining -= 1;
        st.stats.points += 1;
    }
    let (remaining, used, reset) =
        reply
            .rate_override
            .unwrap_or((st.quota.remaining, st.quota.used(), st.quota.reset));

    let mut builder = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-github-media-type", "github.v3; format=json")
        .header("x-github-api-version-selected", "2022-11-28")
        .header("x-github-request-id", request_id(st.request_seq))
        .header("x-ratelimit-limit", st.quota.limit.to_string())
        .header("x-ratelimit-remaining", remaining.to_string())
        .header("x-ratelimit-used", used.to_string())
        .header("x-ratelimit-reset", reset.to_string())
        .header("x-ratelimit-resource", "core")
        .header("x-content-type-options", "nosniff")
        .header("access-control-allow-origin", "*")
        .header(
            "access-control-expose-headers",
            "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, \
             X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, \
             X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, \
             X-GitHub-SSO, X-GitHub-Request-Id, Deprecation, Sunset",
        );
    if let Some(tag) = etag {
        builder = builder
            .header("etag", format!("W/\"{tag}\""))
            .header("cache-control", "private, max-age=60, s-maxage=60")
            .header("vary", "Accept, Authorization, Cookie, X-GitHub-OTP");
    }
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            builder = builder.header(HeaderName::from_static(name), v);
        }
    }
    let body = if reply.body.is_empty() || base == CANON_API {
        reply.body
    } else {
        String::from_utf8_lossy(&reply.body)
            .replace(CANON_API, base)
            .into_bytes()
    };
    builder
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn etag_matches(header: &str, tag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).trim_matches('"') == tag)
}

fn request_id(seq: u64) -> String {
    let mix = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:04X}:{:04X}:{:06X}:{:06X}:{:08X}",
        (mix >> 48) & 0xFFFF,
        (mix >> 32) & 0xFFFF,
        seq & 0xFF_FFFF,
        (mix >> 8) & 0xFF_FFFF,
        (crate::world::CLOCK_START as u64).wrapping_add(seq) & 0xFFFF_FFFF
    )
}

fn rate_exceeded(installation: u64) -> Reply {
    Reply::error_doc(
        403,
        &format!("API rate limit exceeded for installation ID {installation}."),
        RATE_DOCS,
    )
    .free()
}

fn bad_credentials() -> Reply {
    Reply::error(401, "Bad credentials").free()
}

/// The credential of an `Authorization: Bearer <t>` / `token <t>` header.
fn credential(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.trim())
}

/// Checks a request's token; returns the installation it belongs to, if any.
fn authenticate(st: &State, headers: &HeaderMap, now: i64) -> Result<Option<u64>, Reply> {
    let token = credential(headers);
    if let Some(minted) = token.and_then(|t| st.auth.minted.get(t)) {
        return if now >= minted.expires_at {
            Err(bad_credentials())
        } else {
            Ok(Some(minted.installation_id))
        };
    }
    match &st.auth.required {
        Some(required) if token != Some(required.as_str()) => Err(bad_credentials()),
        _ => Ok(None),
    }
}

fn serve(st: &mut State, base: &str, req: &Req, now: i64) -> Reply {
    let raw: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let segs: Vec<String> = raw.iter().map(|s| decode(s, false)).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();

    let is_app = matches!(s.as_slice(), ["app", ..] | ["orgs", _, "installation"]);
    if is_app {
        return app_route(st, req, &s, now).free();
    }
    let installation = match authenticate(st, &req.headers, now) {
        Ok(i) => i,
        Err(reply) => return reply,
    };
    if s == ["rate_limit"] && req.method == Method::GET {
        return rate_limit(st, now).free();
    }
    if st.quota.remaining == 0 {
        return rate_exceeded(installation.unwrap_or(1));
    }
    if req.method != Method::GET {
        return Reply::not_found();
    }
    match s.as_slice() {
        ["orgs", org] => match st.org(org) {
            Some(o) => Reply::json(200, &org_json(o)),
            None => Reply::not_found(),
        },
        ["orgs", org, "repos"] => org_repos(st, base, req, org),
        ["orgs", org, "teams"] => match st.org(org) {
            Some(o) => {
                let teams = o.teams.values().map(|t| team_json(o, t)).collect();
                paginate(teams, req, base)
            }
            None => Reply::not_found(),
        },
        ["orgs", org, "teams", slug] => {
            match st.org(org).and_then(|o| Some((o, o.teams.get(*slug)?))) {
                Some((o, t)) => Reply::json(200, &team_full(o, t)),
                None => Reply::not_found(),
            }
        }
        ["orgs", org, "teams", slug, "members"] => {
            match st.org(org).and_then(|o| o.teams.get(*slug)) {
                Some(t) => {
                    let users = t
                        .spec
                        .members
                        .iter()
                        .filter_map(|l| st.user(l))
                        .map(simple_user)
                        .collect();
                    paginate(users, req, base)
                }
                None => Reply::not_found(),
            }
        }
        ["orgs", org, "members"] => match st.org(org) {
            Some(o) => {
                let users = o
                    .members
                    .values()
                    .filter_map(|l| st.user(l))
                    .map(simple_user)
                    .collect();
                paginate(users, req, base)
            }
            None => Reply::not_found(),
        },
        ["users", login] => match (st.user(login), st.org(login)) {
            (Some(u), _) => Reply::json(200, &full_user(u)),
            (None, Some(o)) => Reply::json(200, &org_as_user(o)),
            _ => Reply::not_found(),
        },
        ["repos", owner, name, rest @ ..] => match st.resolve(owner, name) {
            Some(Name::Live(id)) => repo_route(st, base, req, id, rest),
            Some(Name::Moved(id)) => {
                let tail: String = raw[3..].iter().map(|r| format!("/{r}")).collect();
                let query = req.path_query_suffix();
                let location = format!("{base}/repositories/{id}{tail}{query}");
                let canon = format!("{CANON_API}/repositories/{id}{tail}{query}");
                Reply::json(
                    301,
                    &json!({
                        "message": "Moved Permanently",
                        "url": canon,
                        "documentation_url": "https://docs.github.com/v3/#http-redirects",
                    }),
                )
                .header("location", location)
            }
            None => Reply::not_found(),
        },
        ["repositories", id, rest @ ..] => match id.parse::<u64>() {
            Ok(id) if st.repos.contains_key(&id) => repo_route(st, base, req, id, rest),
            _ => Reply::not_found(),
        },
        _ => Reply::not_found(),
    }
}

impl Req {
    fn path_query_suffix(&self) -> String {
        if self.query.pairs.is_empty() {
            String::new()
        } else {
            let q: Vec<String> = self
                .query
                .pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("?{}", q.join("&"))
        }
    }
}

/// A page of `items` per `per_page`/`page`, with GitHub's `Link` header.
fn paginate(items: Vec<Value>, req: &Req, base: &str) -> Reply {
    paginate_with(items, req, base, |v| v)
}

/// Like [`paginate`], rendering only the items of the requested page (a
/// page of a 5,000-repository org must not render all 5,000).
fn paginate_with<T>(items: Vec<T>, req: &Req, base: &str, render: impl Fn(T) -> Value) -> Reply {
    let per_page = req.query.number("per_page").unwrap_or(30).min(100);
    let page = req.query.number("page").unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page);
    let slice: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(per_page)
        .map(render)
        .collect();
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(("prev", page - 1));
    }
    if page < last {
        rels.push(("next", page + 1));
        rels.push(("last", last));
    }
    if page > 1 {
        rels.push(("first", 1));
    }
    let reply = Reply::json(200, &Value::Array(slice));
    if rels.is_empty() {
        return reply;
    }
    let link = rels
        .iter()
        .map(|(rel, n)| {
            format!(
                "<{base}{}?{}>; rel=\"{rel}\"",
                req.path,
                req.query.with_page(*n)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    reply.header("link", link)
}

// --- rate limit ---

fn rate_limit(st: &State, now: i64) -> Reply {
    let q = &st.quota;
    let core = json!({
        "limit": q.limit, "used": q.used(), "remaining": q.remaining, "reset": q.reset,
        "resource": "core",
    });
    let fresh = |limit: u64, resource: &str, window: i64| json!({"limit": limit, "used": 0, "remaining": limit, "reset": now + window, "resource": resource});
    Reply::json(
        200,
        &json!({
            "resources": {
                "core": core,
                "search": fresh(30, "search", 60),
                "graphql": fresh(5000, "graphql", 3600),
                "integration_manifest": fresh(5000, "integration_manifest", 3600),
                "code_search": fresh(10, "code_search", 60),
            },
            "rate": core,
        }),
    )
}

// --- GitHub App endpoints ---

/// The app id (`iss`) of the request's JWT.
fn jwt_app(headers: &HeaderMap, now: i64) -> Result<u64, Reply> {
    let undecodable = || Reply::error(401, "A JSON web token could not be decoded");
    let token = credential(headers).ok_or_else(undecodable)?;
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(undecodable());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| undecodable())?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| undecodable())?;
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp <= now
    {
        return Err(Reply::error(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ));
    }
    match claims.get("iss") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Reply::error(401, "'Issuer' claim ('iss') must be an Integer"))
}

fn app_route(st: &mut State, req: &Req, s: &[&str], now: i64) -> Reply {
    let app_id = match jwt_app(&req.headers, now) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let get = req.method == Method::GET;
    let post = req.method == Method::POST;
    let find = |st: &State, id: &str| {
        let id: u64 = id.parse().ok()?;
        st.auth
            .installs
            .iter()
            .position(|i| i.installation_id == id && i.app_id == app_id)
    };
    match s {
        ["orgs", org, "installation"] if get => {
            let org = org.to_ascii_lowercase();
            match st
                .auth
                .installs
                .iter()
                .find(|i| i.org == org && i.app_id == app_id)
            {
                Some(i) => Reply::json(200, &installation_json(st, i)),
                None => Reply::not_found(),
            }
        }
        ["app", "installations"] if get => {
            let all: Vec<Value> = st
                .auth
                .installs
                .iter()
                .filter(|i| i.app_id == app_id)
                .map(|i| installation_json(st, i))
                .collect();
            Reply::json(200, &Value::Array(all))
        }
        ["app", "installations", id] if get => match find(st, id) {
            Some(at) => Reply::json(200, &installation_json(st, &st.auth.installs[at])),
            None => Reply::not_found(),
        },
        ["app", "installations", id, "access_tokens"] if post => match find(st, id) {
            Some(at) => {
                let installation_id = st.auth.installs[at].installation_id;
                let (token, expires_at) = st.mint_token(installation_id);
                Reply::json(
                    201,
                    &json!({
                        "token": token,
                        "expires_at": iso(expires_at),
                        "permissions": installation_permissions(),
                        "repository_selection": "all",
                    }),
                )
            }
            None => Reply::not_found(),
        },
        _ => Reply::not_found(),
    }
}

fn installation_permissions() -> Value {
    json!({
        "administration": "read",
        "contents": "read",
        "members": "read",
        "metadata": "read",
        "vulnerability_alerts": "read",
    })
}

fn installation_json(st: &State, i: &crate::world::Install) -> Value {
    let account = st.orgs.get(&i.org).map_or(Value::Null, |o| {
        account_json(&o.login, o.id, "Organization")
    });
    let login = account["login"].as_str().unwrap_or_default().to_string();
    let target_id = account["id"].clone();
    json!({
        "id": i.installation_id,
        "client_id": format!("Iv1.{:016x}", i.app_id),
        "account": account,
        "repository_selection": "all",
        "access_tokens_url": format!("{CANON_API}/app/installations/{}/access_tokens", i.installation_id),
        "repositories_url": format!("{CANON_API}/installation/repositories"),
        "html_url": format!("{WEB}/organizations/{login}/settings/installations/{}", i.installation_id),
        "app_id": i.app_id,
        "app_slug": format!("app-{}", i.app_id),
        "target_id": target_id,
        "target_type": "Organization",
        "permissions": installation_permissions(),
        "events": [],
        "created_at": iso(i.created_at),
        "updated_at": iso(i.created_at),
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null,
    })
}

// --- accounts ---

/// GitHub's legacy global node id: base64 of `0{len}:{Type}{id}`.
fn node_id(kind: &str, id: impl Display) -> String {
    STANDARD.encode(format!("0{}:{kind}{id}", kind.len()))
}

/// A "simple user" (also the shape of repository owners).
fn account_json(login: &str, id: u64, kind: &str) -> Value {
    let u = format!("{CANON_API}/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": node_id(if kind == "User" { "User" } else { "Organization" }, id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": u,
        "html_url": format!("{WEB}/{login}"),
        "followers_url": format!("{u}/followers"),
        "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"),
        "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"),
        "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"),
        "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false,
    })
}

fn simple_user(u: &User) -> Value {
    account_json(&u.spec.login, u.id, "User")
}

fn profile(
    mut v: Value,
    name: Option<&str>,
    email: Option<&str>,
    created: i64,
    updated: i64,
) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("name".into(), json!(name));
        m.insert("company".into(), Value::Null);
        m.insert("blog".into(), json!(""));
        m.insert("location".into(), Value::Null);
        m.insert("email".into(), json!(email));
        m.insert("hireable".into(), Value::Null);
        m.insert("bio".into(), Value::Null);
        m.insert("twitter_username".into(), Value::Null);
        m.insert("public_repos".into(), json!(0));
        m.insert("public_gists".into(), json!(0));
        m.insert("followers".into(), json!(0));
        m.insert("following".into(), json!(0));
        m.insert("created_at".into(), json!(iso(created)));
        m.insert("updated_at".into(), json!(iso(updated)));
    }
    v
}

fn full_user(u: &User) -> Value {
    profile(
        simple_user(u),
        u.spec.name.as_deref(),
        u.spec.email.as_deref(),
        u.created_at,
        u.updated_at,
    )
}

fn org_as_user(o: &Org) -> Value {
    profile(
        account_json(&o.login, o.id, "Organization"),
        None,
        None,
        o.created_at,
        o.created_at,
    )
}

fn org_json(o: &Org) -> Value {
    let u = format!("{CANON_API}/orgs/{}", o.login);
    json!({
        "login": o.login,
        "id": o.id,
        "node_id": node_id("Organization", o.id),
        "url": u,
        "repos_url": format!("{u}/repos"),
        "events_url": format!("{u}/events"),
        "hooks_url": format!("{u}/hooks"),
        "issues_url": format!("{u}/issues"),
        "members_url": format!("{u}/members{{/member}}"),
        "public_members_url": format!("{u}/public_members{{/member}}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", o.id),
        "description": null,
        "is_verified": false,
        "has_organization_projects": true,
        "has_repository_projects": true,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "html_url": format!("{WEB}/{}", o.login),
        "created_at": iso(o.created_at),
        "updated_at": iso(o.created_at),
        "archived_at": null,
        "type": "Organization",
    })
}

fn team_json(o: &Org, t: &Team) -> Value {
    let mut v = team_summary(o, t);
    let parent = t
        .spec
        .parent
        .as_deref()
        .and_then(|slug| o.teams.get(slug))
        .map_or(Value::Null, |p| team_summary(o, p));
    if let Value::Object(m) = &mut v {
        m.insert("parent".into(), parent);
    }
    v
}

/// The single-team shape: the summary plus counts, times and organisation.
fn team_full(o: &Org, t: &Team) -> Value {
    let mut v = team_json(o, t);
    if let Value::Object(m) = &mut v {
        m.insert("members_count".into(), json!(t.spec.members.len()));
        m.insert("repos_count".into(), json!(0));
        m.insert("created_at".into(), json!(iso(t.created_at)));
        m.insert("updated_at".into(), json!(iso(t.updated_at)));
        m.insert("organization".into(), org_json(o));
    }
    v
}

fn team_summary(o: &Org, t: &Team) -> Value {
    let u = format!("{CANON_API}/organizations/{}/team/{}", o.id, t.id);
    json!({
        "name": t.spec.name,
        "id": t.id,
        "node_id": node_id("Team", t.id),
        "slug": t.spec.slug,
        "description": t.spec.description,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "url": u,
        "html_url": format!("{WEB}/orgs/{}/teams/{}", o.login, t.spec.slug),
        "members_url": format!("{u}/members{{/member}}"),
        "repositories_url": format!("{u}/repos"),
        "permission": "pull",
    })
}

/// Repository roles, weakest first: each grants the ones before it.
const ROLES: [&str; 5] = ["pull", "triage", "push", "maintain", "admin"];

/// The `permissions` object of a role on a repository.
fn role_permissions(role: &str) -> Value {
    let rank = ROLES.iter().position(|r| *r == role);
    let m: Map<String, Value> = ROLES
        .iter()
        .enumerate()
        .map(|(i, r)| (r.to_string(), json!(rank.is_some_and(|k| i <= k))))
        .collect();
    Value::Object(m)
}

/// `GET /repos/{owner}/{repo}/teams`: the teams with access to the
/// repository, in the team shape with the team's role on the repository as
/// `permission` and the `permissions` it grants.
fn repo_teams(st: &State, base: &str, req: &Req, repo: &Repo) -> Reply {
    let Some(o) = st.orgs.get(&repo.org) else {
        return Reply::not_found();
    };
    let items = repo
        .teams
        .iter()
        .filter_map(|(slug, role)| {
            let mut v = team_json(o, o.teams.get(slug)?);
            if let Value::Object(m) = &mut v {
                m.insert("permission".into(), json!(role));
                m.insert("permissions".into(), role_permissions(role));
            }
            Some(v)
        })
        .collect();
    paginate(items, req, base)
}

// --- repositories ---

const REPO_URL_TEMPLATES: &[(&str, &str)] = &[
    ("forks_url", "/forks"),
    ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("teams_url", "/teams"),
    ("hooks_url", "/hooks"),
    ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"),
    ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"),
    ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"),
    ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"),
    ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"),
    ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"),
    ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"),
    ("milestones_url", "/milestones{/number}"),
    (
        "notifications_url",
        "/notifications{?since,all,participating}",
    ),
    ("labels_url", "/labels{/name}"),
    ("releases_url", "/releases{/id}"),
    ("deployments_url", "/deployments"),
];

fn repo_json(st: &State, repo: &Repo, full: bool) -> Value {
    let full_name = st.full_name(repo);
    let owner = st.orgs.get(&repo.org).map_or(Value::Null, |o| {
        account_json(&o.login, o.id, "Organization")
    });
    let api = format!("{CANON_API}/repos/{full_name}");
    let language = repo
        .languages
        .iter()
        .fold(None::<&(String, u64)>, |best, l| match best {
            Some(b) if b.1 >= l.1 => Some(b),
            _ => Some(l),
        })
        .map(|l| l.0.clone());
    let bytes: usize = repo.files.values().map(String::len).sum();
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("id", json!(repo.id));
    put("node_id", json!(node_id("Repository", repo.id)));
    put("name", json!(repo.name));
    put("full_name", json!(full_name));
    put("private", json!(repo.visibility != "public"));
    put("owner", owner.clone());
    put("html_url", json!(format!("{WEB}/{full_name}")));
    put("description", json!(repo.description));
    put("fork", json!(false));
    put("url", json!(api));
    for (field, suffix) in REPO_URL_TEMPLATES {
        put(field, json!(format!("{api}{suffix}")));
    }
    put("created_at", json!(iso(repo.created_at)));
    put("updated_at", json!(iso(repo.updated_at)));
    put(
        "pushed_at",
        if repo.has_commits {
            json!(iso(repo.pushed_at))
        } else {
            Value::Null
        },
    );
    put(
        "git_url",
        json!(format!("git://github.com/{full_name}.git")),
    );
    put("ssh_url", json!(format!("git@github.com:{full_name}.git")));
    put("clone_url", json!(format!("{WEB}/{full_name}.git")));
    put("svn_url", json!(format!("{WEB}/{full_name}")));
    put("homepage", Value::Null);
    put("size", json!(bytes.div_ceil(1024)));
    put("stargazers_count", json!(0));
    put("watchers_count", json!(0));
    put("language", json!(language));
    put("has_issues", json!(true));
    put("has_projects", json!(true));
    put("has_downloads", json!(true));
    put("has_wiki", json!(true));
    put("has_pages", json!(false));
    put("has_discussions", json!(false));
    put("forks_count", json!(0));
    put("mirror_url", Value::Null);
    put("archived", json!(repo.archived));
    put("disabled", json!(false));
    put("open_issues_count", json!(0));
    put("license", Value::Null);
    put("allow_forking", json!(true));
    put("is_template", json!(false));
    put("web_commit_signoff_required", json!(false));
    put("topics", json!(repo.topics));
    put("visibility", json!(repo.visibility));
    put("forks", json!(0));
    put("open_issues", json!(0));
    put("watchers", json!(0));
    put("default_branch", json!(repo.default_branch));
    put(
        "permissions",
        json!({"admin": false, "maintain": false, "push": false, "triage": false, "pull": true}),
    );
    if full {
        put("temp_clone_token", json!(""));
        put("allow_squash_merge", json!(true));
        put("allow_merge_commit", json!(true));
        put("allow_rebase_merge", json!(true));
        put("allow_auto_merge", json!(false));
        put("delete_branch_on_merge", json!(false));
        put("organization", owner);
        put("network_count", json!(0));
        put("subscribers_count", json!(0));
    }
    Value::Object(m)
}

fn org_repos(st: &State, base: &str, req: &Req, org: &str) -> Reply {
    let Some(o) = st.org(org) else {
        return Reply::not_found();
    };
    let org_key = o.login.to_ascii_lowercase();
    let kind = req.query.get("type").unwrap_or_else(|| "all".into());
    let sort = req.query.get("sort").unwrap_or_else(|| "created".into());
    let ascending = match req.query.get("direction").as_deref() {
        Some("asc") => true,
        Some("desc") => false,
        _ => sort == "full_name",
    };
    let mut repos: Vec<&Repo> = st
        .repos
        .values()
        .filter(|r| r.org == org_key)
        .filter(|r| match kind.as_str() {
            "public" => r.visibility == "public",
            "private" => r.visibility != "public",
            "forks" => false,
            _ => true,
        })
        .collect();
    repos.sort_by(|a, b| {
        let ord = match sort.as_str() {
            "full_name" => a
                .name
                .to_ascii_lowercase()
                .cmp(&b.name.to_ascii_lowercase()),
            "updated" => a.updated_at.cmp(&b.updated_at),
            "pushed" => a.pushed_at.cmp(&b.pushed_at),
            _ => std::cmp::Ordering::Equal,
        };
        let ord = ord.then(a.id.cmp(&b.id));
        if ascending { ord } else { ord.reverse() }
    });
    paginate_with(repos, req, base, |r| repo_json(st, r, false))
}

fn repo_route(st: &State, base: &str, req: &Req, id: u64, rest: &[&str]) -> Reply {
    let Some(repo) = st.repos.get(&id) else {
        return Reply::not_found();
    };
    match rest {
        [] => Reply::json(200, &repo_json(st, repo, true)),
        ["contents", path @ ..] => contents(st, repo, &path.join("/"), &req.query),
        ["git", "trees", r @ ..] if !r.is_empty() => git_tree(st, repo, &r.join("/"), &req.query),
        ["git", "blobs", sha] => git_blob(st, repo, sha),
        ["languages"] => languages(repo),
        ["branches", branch @ .., "protection"] if !branch.is_empty() => {
            protection(st, repo, &branch.join("/"))
        }
        ["dependabot", "alerts"] => alerts(st, base, req, repo),
        ["teams"] => repo_teams(st, base, req, repo),
        _ => Reply::not_found(),
    }
}

/// Base64 with a newline after every 60 characters, as GitHub sends it.
fn wrapped_base64(text: &str) -> String {
    let encoded = STANDARD.encode(text.as_bytes());
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 60 + 1);
    for chunk in encoded.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn contents(st: &State, repo: &Repo, path: &str, q: &Query) -> Reply {
    let asked = q.get("ref");
    if let Some(r) = &asked
        && !repo.is_head_ref(r)
    {
        return Reply::error(404, &format!("No commit found for the ref {r}"));
    }
    if !repo.has_commits {
        return Reply::error(404, "This repository is empty.");
    }
    let r = asked.unwrap_or_else(|| repo.default_branch.clone());
    let full_name = st.full_name(repo);
    let tree = Tree::build(&repo.files);
    let path = path.trim_matches('/');
    match tree.lookup(path) {
        None => Reply::not_found(),
        Some(Lookup::Blob { sha, size }) => {
            let mut v = content_entry(&full_name, &r, path, sha, size, false);
            if let Value::Object(m) = &mut v {
                let text = repo.files.get(path).map_or("", String::as_str);
                m.insert("content".into(), json!(wrapped_base64(text)));
                m.insert("encoding".into(), json!("base64"));
            }
            Reply::json(200, &v)
        }
        Some(Lookup::Tree(t)) => {
            let items: Vec<Value> = t
                .entries
                .iter()
                .map(|(name, e)| {
                    let p = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}/{name}")
                    };
                    match e {
                        Entry::Blob { sha, size } => {
                            content_entry(&full_name, &r, &p, sha, *size, false)
                        }
                        Entry::Tree(sub) => content_entry(&full_name, &r, &p, &sub.sha, 0, true),
                    }
                })
                .collect();
            Reply::json(200, &Value::Array(items))
        }
    }
}

fn content_entry(full_name: &str, r: &str, path: &str, sha: &str, size: u64, dir: bool) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let api = format!("{CANON_API}/repos/{full_name}");
    let url = format!("{api}/contents/{}?ref={}", enc(path), enc(r));
    let (git_url, html_url, download_url) = if dir {
        (
            format!("{api}/git/trees/{sha}"),
            format!("{WEB}/{full_name}/tree/{}/{}", enc(r), enc(path)),
            Value::Null,
        )
    } else {
        (
            format!("{api}/git/blobs/{sha}"),
            format!("{WEB}/{full_name}/blob/{}/{}", enc(r), enc(path)),
            json!(format!(
                "https://raw.githubusercontent.com/{full_name}/{}/{}",
                enc(r),
                enc(path)
            )),
        )
    };
    json!({
        "type": if dir { "dir" } else { "file" },
        "size": size,
        "name": name,
        "path": path,
        "sha": sha,
        "url": url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": download_url,
        "_links": {"self": url, "git": git_url, "html": html_url},
    })
}

fn git_tree(st: &State, repo: &Repo, r: &str, q: &Query) -> Reply {
    if !repo.has_commits {
        return Reply::error(409, "Git Repository is empty.");
    }
    let api = format!("{CANON_API}/repos/{}", st.full_name(repo));
    let root = Tree::build(&repo.files);
    let tree = if repo.is_head_ref(r) {
        Some(&root)
    } else {
        root.find(r)
    };
    let Some(tree) = tree else {
        return Reply::not_found();
    };
    let mut entries = Vec::new();
    if q.get("recursive").is_some() {
        tree.walk("", &mut entries);
    } else {
        entries.extend(tree.entries.iter().map(|(n, e)| (n.clone(), e)));
    }
    let items: Vec<Value> = entries
        .into_iter()
        .map(|(path, e)| match e {
            Entry::Blob { sha, size } => json!({
                "path": path, "mode": "100644", "type": "blob", "sha": sha, "size": size,
                "url": format!("{api}/git/blobs/{sha}"),
            }),
            Entry::Tree(t) => json!({
                "path": path, "mode": "040000", "type": "tree", "sha": t.sha,
                "url": format!("{api}/git/trees/{}", t.sha),
            }),
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "sha": tree.sha,
            "url": format!("{api}/git/trees/{}", tree.sha),
            "tree": items,
            "truncated": false,
        }),
    )
}

fn git_blob(st: &State, repo: &Repo, sha: &str) -> Reply {
    let Some(text) = repo.blobs.get(sha) else {
        return Reply::not_found();
    };
    Reply::json(
        200,
        &json!({
            "sha": sha,
            "node_id": node_id("Blob", format!("{}:{sha}", repo.id)),
            "size": text.len(),
            "url": format!("{CANON_API}/repos/{}/git/blobs/{sha}", st.full_name(repo)),
            "content": wrapped_base64(text),
            "encoding": "base64",
        }),
    )
}

/// The languages object, in the order given (not sorted by key).
fn languages(repo: &Repo) -> Reply {
    let fields: Vec<String> = repo
        .languages
        .iter()
        .map(|(name, bytes)| format!("{}:{bytes}", Value::String(name.clone())))
        .collect();
    Reply::bytes(200, format!("{{{}}}", fields.join(",")).into_bytes())
}

fn protection(st: &State, repo: &Repo, branch: &str) -> Reply {
    if branch != repo.default_branch {
        return Reply::error(404, "Branch not found");
    }
    let (reviews, enforce_admins, checks) = match &repo.protection {
        Protection::None => return Reply::error(404, "Branch not protected"),
        Protection::Forbidden => return Reply::error(403, NOT_ACCESSIBLE),
        Protection::Protected {
            required_reviews,
            enforce_admins,
            required_status_checks,
        } => (*required_reviews, *enforce_admins, required_status_checks),
    };
    let u = format!(
        "{CANON_API}/repos/{}/branches/{}/protection",
        st.full_name(repo),
        enc(branch)
    );
    let checks_objs: Vec<Value> = checks
        .iter()
        .map(|c| json!({"context": c, "app_id": null}))
        .collect();
    Reply::json(
        200,
        &json!({
            "url": u,
            "required_status_checks": {
                "url": format!("{u}/required_status_checks"),
                "strict": true,
                "contexts": checks,
                "contexts_url": format!("{u}/required_status_checks/contexts"),
                "checks": checks_objs,
            },
            "required_pull_request_reviews": {
                "url": format!("{u}/required_pull_request_reviews"),
                "dismiss_stale_reviews": false,
                "require_code_owner_reviews": false,
                "require_last_push_approval": false,
                "required_approving_review_count": reviews,
            },
            "required_signatures": {"url": format!("{u}/required_signatures"), "enabled": false},
            "enforce_admins": {"url": format!("{u}/enforce_admins"), "enabled": enforce_admins},
            "required_linear_history": {"enabled": false},
            "allow_force_pushes": {"enabled": false},
            "allow_deletions": {"enabled": false},
            "block_creations": {"enabled": false},
            "required_conversation_resolution": {"enabled": false},
            "lock_branch": {"enabled": false},
            "allow_fork_syncing": {"enabled": false},
        }),
    )
}

// --- Dependabot alerts ---

const PACKAGES: &[(&str, &str, &str)] = &[
    ("npm", "lodash", "package-lock.json"),
    ("pip", "requests", "requirements.txt"),
    (
        "maven",
        "com.fasterxml.jackson.core:jackson-databind",
        "pom.xml",
    ),
    ("rubygems", "nokogiri", "Gemfile.lock"),
    ("go", "golang.org/x/net", "go.sum"),
    ("rust", "openssl", "Cargo.lock"),
];

fn advisory_ids(repo_id: u64, number: u64) -> (String, String) {
    const ALPHABET: &[u8] = b"23456789cfghjmpqrvwx";
    let digest = Sha256::digest(format!("{repo_id}/{number}").as_bytes());
    let chars: Vec<char> = digest[..12]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    let group = |i: usize| chars[i * 4..i * 4 + 4].iter().collect::<String>();
    let ghsa = format!("GHSA-{}-{}-{}", group(0), group(1), group(2));
    let cve = format!(
        "CVE-2023-{}",
        10_000 + u32::from_be_bytes([digest[12], digest[13], digest[14], digest[15]]) % 90_000
    );
    (ghsa, cve)
}

fn alert_json(st: &State, repo: &Repo, a: &crate::world::Alert) -> Value {
    let full_name = st.full_name(repo);
    let (ecosystem, name, manifest) = PACKAGES[(a.number as usize - 1) % PACKAGES.len()];
    let package = json!({"ecosystem": ecosystem, "name": name});
    let (ghsa, cve) = advisory_ids(repo.id, a.number);
    let score = match a.severity.as_str() {
        "critical" => 9.8,
        "high" => 7.5,
        "medium" => 5.3,
        _ => 3.1,
    };
    let vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    let vulnerability = json!({
        "package": package,
        "severity": a.severity,
        "vulnerable_version_range": "< 1.0.1",
        "first_patched_version": {"identifier": "1.0.1"},
    });
    let created = iso(a.created_at);
    json!({
        "number": a.number,
        "state": "open",
        "dependency": {"package": package, "manifest_path": manifest, "scope": "runtime", "relationship": "direct"},
        "security_advisory": {
            "ghsa_id": ghsa,
            "cve_id": cve,
            "summary": format!("{} vulnerability in {name}", a.severity),
            "description": format!("A {} severity vulnerability was found in {name}.", a.severity),
            "vulnerabilities": [vulnerability],
            "severity": a.severity,
            "cvss": {"vector_string": vector, "score": score},
            "cvss_severities": {"cvss_v3": {"vector_string": vector, "score": score}, "cvss_v4": null},
            "epss": {"percentage": 0.001, "percentile": 0.5},
            "cwes": [{"cwe_id": "CWE-400", "name": "Uncontrolled Resource Consumption"}],
            "identifiers": [{"type": "GHSA", "value": ghsa}, {"type": "CVE", "value": cve}],
            "references": [{"url": format!("https://nvd.nist.gov/vuln/detail/{cve}")}],
            "published_at": created,
            "updated_at": created,
            "withdrawn_at": null,
        },
        "security_vulnerability": vulnerability,
        "url": format!("{CANON_API}/repos/{full_name}/dependabot/alerts/{}", a.number),
        "html_url": format!("{WEB}/{full_name}/security/dependabot/{}", a.number),
        "created_at": created,
        "updated_at": created,
        "dismissed_at": null,
        "dismissed_by": null,
        "dismissed_reason": null,
        "dismissed_comment": null,
        "fixed_at": null,
        "auto_dismissed_at": null,
    })
}

fn alerts(st: &State, base: &str, req: &Req, repo: &Repo) -> Reply {
    if repo.alerts_forbidden {
        return Reply::error(403, NOT_ACCESSIBLE);
    }
    let list = |name: &str| {
        req.query.get(name).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
    };
    let states = list("state");
    let severities = list("severity");
    let open_wanted = states.is_none_or(|s| s.iter().any(|x| x == "open"));
    let mut chosen: Vec<&crate::world::Alert> = repo
        .alerts
        .iter()
        .filter(|_| open_wanted)
        .filter(|a| severities.as_ref().is_none_or(|s| s.contains(&a.severity)))
        .collect();
    chosen.sort_by_key(|a| (a.created_at, a.number));
    if req.query.get("direction").as_deref() != Some("asc") {
        chosen.reverse();
    }
    let items = chosen
        .into_iter()
        .map(|a| alert_json(st, repo, a))
        .collect();
    paginate(items, req, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_follow_githubs_legacy_format() {
        assert_eq!(node_id("User", 1), "MDQ6VXNlcjE=");
        assert_eq!(
            node_id("Repository", 1296269),
            "MDEwOlJlcG9zaXRvcnkxMjk2MjY5"
        );
    }

    #[test]
    fn base64_is_wrapped_like_githubs() {
        assert_eq!(wrapped_base64("# hello-world"), "IyBoZWxsby13b3JsZA==\n");
        assert_eq!(wrapped_base64(""), "");
        let long = wrapped_base64(&"a".repeat(90));
        assert_eq!(long.lines().map(str::len).collect::<Vec<_>>(), [60, 60]);
    }

    #[test]
    fn if_none_match_forms() {
        let tag = "0123456789abcdef0123456789abcdef";
        assert!(etag_matches(&format!("W/\"{tag}\""), tag));
        assert!(etag_matches(&format!("\"{tag}\""), tag));
        assert!(etag_matches(&format!("\"x\", W/\"{tag}\""), tag));
        assert!(etag_matches("*", tag));
        assert!(!etag_matches("W/\"other\"", tag));
    }

    #[test]
    fn repository_teams_carry_their_role_and_paginate() {
        let mut st = State::new();
        let mut spec = crate::RepoSpec::new("api");
        spec.teams = vec![
            ("payments".into(), "maintain".into()),
            ("gone".into(), "admin".into()),
            ("sre".into(), "pull".into()),
        ];
        st.add_repo("acme", spec);
        st.add_repo("acme", crate::RepoSpec::new("bare"));
        for slug in ["payments", "sre"] {
            st.put_team(
                "acme",
                crate::TeamSpec {
                    slug: slug.into(),
                    name: slug.to_uppercase(),
                    description: None,
                    parent: None,
                    members: vec![],
                },
            );
        }
        let get = |st: &mut State, path: &str, query: &str| {
            let req = Req {
                method: Method::GET,
                path: path.into(),
                query: Query::parse(Some(query)),
                headers: HeaderMap::new(),
            };
            let r = serve(st, CANON_API, &req, wall_now());
            let link = r
                .headers
                .iter()
                .find(|(n, _)| *n == "link")
                .map(|(_, v)| v.clone());
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, body, link)
        };
        // A team that is not one of the org's is left out: two teams, one a page.
        let (status, first, link) = get(&mut st, "/repos/acme/api/teams", "per_page=1");
        assert_eq!(status, 200);
        assert_eq!(first.as_array().unwrap().len(), 1);
        assert_eq!(first[0]["slug"], "payments");
        assert_eq!(first[0]["name"], "PAYMENTS");
        assert_eq!(first[0]["permission"], "maintain");
        assert_eq!(
            first[0]["permissions"],
            json!({"pull": true, "triage": true, "push": true, "maintain": true, "admin": false})
        );
        let link = link.expect("a Link header");
        assert!(
            link.contains("/repos/acme/api/teams?per_page=1&page=2>; rel=\"next\""),
            "{link}"
        );
        assert!(link.contains("page=2>; rel=\"last\""), "{link}");
        let (_, second, _) = get(&mut st, "/repos/acme/api/teams", "per_page=1&page=2");
        assert_eq!(second[0]["slug"], "sre");
        assert_eq!(second[0]["permission"], "pull");
        assert_eq!(
            second[0]["permissions"],
            json!({"pull": true, "triage": false, "push": false, "maintain": false, "admin": false})
        );
        // No teams: an empty list; no repository: 404.
        let (status, none, link) = get(&mut st, "/repos/acme/bare/teams", "");
        assert_eq!((status, none, link), (200, json!([]), None));
        assert_eq!(get(&mut st, "/repos/acme/nope/teams", "").0, 404);
        // Access changes later.
        st.set_repo_teams("acme", "api", vec![("sre".into(), "admin".into())]);
        let (_, now, _) = get(&mut st, "/repos/acme/api/teams", "");
        assert_eq!(now.as_array().unwrap().len(), 1);
        assert_eq!(now[0]["permissions"]["admin"], true);
    }

    #[test]
    fn queries_decode_and_keep_order_when_paging() {
        let q = Query::parse(Some("per_page=2&q=a%20b+c&page=3"));
        assert_eq!(q.get("q").as_deref(), Some("a b c"));
        assert_eq!(q.number("per_page"), Some(2));
        assert_eq!(q.with_page(4), "per_page=2&q=a%20b+c&page=4");
        assert_eq!(Query::parse(None).with_page(2), "page=2");
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%e2%9c%93", false), "\u{2713}");
        assert_eq!(enc("a b/c.md"), "a%20b/c.md");
    }
}

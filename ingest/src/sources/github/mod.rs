//! The `github` source: catalog descriptors from every repository of one or
//! more organizations, teams and members as Groups and Users, repository
//! facts for scorecards, and webhooks that make a change visible at once.
//!
//! A full sync lists each organization's repositories (paginated, each
//! page a conditional request), and reads only the repositories whose
//! `pushed_at` or settings moved since the last committed sync: a re-poll
//! of an unchanged organization is one `304` per page of 100 repositories.
//! Webhooks queue the repositories or organizations they name, and a
//! [`SyncMode::Pending`] sync re-reads just those, scoped so that nothing
//! outside them can be removed.
//!
//! Safety: an organization whose listing failed or was cut short makes the
//! whole listing incomplete (removes nothing); a repository that could not
//! be read keeps what it had.

pub mod client;
pub mod config;
pub mod org;
pub mod repos;
pub mod webhook;

/// The REST answers this source decodes, by name: what [`decode_answer`]
/// takes, for fuzzing every decoder with any body.
pub const ANSWERS: [&str; 11] = [
    "contents-file",
    "contents-dir",
    "languages",
    "branch-protection",
    "code-scanning-alerts",
    "repo-teams",
    "org-repos",
    "repository",
    "org-teams",
    "members",
    "user",
];

/// Decodes `body` as the answer named `answer` (one of [`ANSWERS`]) the way
/// the source reads it: it decodes, or says why it does not; nothing
/// panics.
pub fn decode_answer(answer: &str, body: &[u8]) -> Result<(), String> {
    match answer {
        "contents-file" => repos::decode_file(body).map(drop),
        "contents-dir" => repos::decode_dir(body).map(drop),
        "languages" => json::<BTreeMap<String, u64>>(body).map(drop),
        "branch-protection" => repos::decode_protection(body).map(drop),
        "code-scanning-alerts" => repos::decode_alerts(body).map(drop),
        "repo-teams" => repos::decode_team_access(body).map(drop),
        "org-repos" => json::<Vec<RepoSummary>>(body).map(drop),
        "repository" => json::<RepoSummary>(body).map(drop),
        "org-teams" => json::<Vec<org::Team>>(body).map(drop),
        "members" => json::<Vec<org::Member>>(body).map(drop),
        "user" => json::<org::UserDetail>(body).map(drop),
        other => Err(format!("no answer named {other:?}")),
    }
}

use crate::source::{
    Fetched, Known, Listed, ListedFacts, Listing, ScopeEntry, Source, SourceError,
};
use crate::state::StateStore;
use chrono::Utc;
use client::{ApiError, Client, Politeness, json};
use config::GithubConfig;
use octocrab::Octocrab;
use proto::{SourceId, SubjectKey};
use repos::{RepoCtx, RepoMemo, RepoOutcome, RepoSummary, RepoTask};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use webhook::{Delivery, RepositoryAction};

/// Namespace of repository memos in the state store (key: repository id).
const MEMO_NS: &str = "repo";
/// Namespace of org-data memos (key: `refreshed_at`).
const ORG_NS: &str = "org";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What webhooks asked to re-read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pending {
    /// Repositories by id, with every (owner, name) they were known by.
    pub repos: BTreeMap<u64, BTreeSet<(String, String)>>,
    pub org_data: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.repos.is_empty() && !self.org_data
    }
    fn merge(&mut self, other: Pending) {
        for (id, names) in other.repos {
            self.repos.entry(id).or_default().extend(names);
        }
        self.org_data |= other.org_data;
    }
}

/// Memos a listing read, written when the sync that used it commits.
#[derive(Debug, Default)]
struct Staged {
    memos: Vec<(u64, Option<RepoMemo>)>,
    org_refreshed_at: Option<i64>,
}

/// A GitHub source's status: its organizations, the quota of each client
/// (GitHub's rate limit) and the requests made since start.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GithubDetails {
    pub organizations: Vec<String>,
    pub rate_limit: Vec<client::Quota>,
    pub requests: client::CounterSnapshot,
    /// Whether webhooks queued changes not yet synced.
    pub pending: bool,
}

/// A `github` source instance.
pub struct GithubSource {
    id: SourceId,
    cfg: GithubConfig,
    max_file_bytes: u64,
    state: Arc<StateStore>,
    /// `Some` until drop (see the `Drop` impl).
    rt: Option<tokio::runtime::Runtime>,
    auth: Auth,
    clients: Mutex<HashMap<String, Arc<Client>>>,
    repo_filter: Option<regex::Regex>,
    glob: Option<globset::GlobMatcher>,
    pending: Mutex<Pending>,
    staged: Mutex<Staged>,
    webhook_secret: Option<Vec<u8>>,
    stop: Mutex<Option<Arc<AtomicBool>>>,
}

impl std::fmt::Debug for GithubSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubSource")
            .field("id", &self.id)
            .field("organizations", &self.cfg.organizations)
            .finish()
    }
}

enum Auth {
    /// One client for every organization.
    Token(Arc<Client>),
    /// A GitHub App: a client per organization's installation.
    App {
        app: Octocrab,
        installation: Option<u64>,
    },
}

/// Why a `github` source could not be set up; names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SetupError {
    pub field: String,
    pub message: String,
}

fn setup(field: &str, message: impl Into<String>) -> SetupError {
    SetupError {
        field: format!("github.{field}"),
        message: message.into(),
    }
}

fn env(field: &str, var: &str) -> Result<String, SetupError> {
    std::env::var(var).map_err(|_| setup(field, format!("environment variable {var} is not set")))
}

fn file(field: &str, path: &std::path::Path) -> Result<String, SetupError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| setup(field, format!("{}: {e}", path.display())))
}

impl GithubSource {
    pub fn new(
        id: SourceId,
        cfg: GithubConfig,
        max_file_bytes: u64,
        state: Arc<StateStore>,
    ) -> Result<Self, SetupError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("github-{id}"))
            .enable_all()
            .build()
            .map_err(|e| setup("", format!("runtime: {e}")))?;
        let base = cfg.api_base();
        let politeness = politeness(&cfg);
        let builder = || -> Result<_, SetupError> {
            Octocrab::builder()
                .base_uri(base.as_str())
                .map_err(|e| setup("api_base_url", e.to_string()))
                .map(|b| {
                    b.add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
                        .set_connect_timeout(Some(Duration::from_secs(10)))
                        .set_read_timeout(Some(politeness.request_timeout))
                })
        };
        let auth = {
            let _enter = rt.enter();
            let token = match (&cfg.auth.token_env, &cfg.auth.token_file) {
                (Some(var), _) => Some(env("auth.token_env", var)?),
                (None, Some(path)) => Some(file("auth.token_file", path)?),
                (None, None) => None,
            };
            if let Some(token) = token {
                let crab = builder()?
                    .personal_token(token)
                    .build()
                    .map_err(|e| setup("auth", e.to_string()))?;
                Auth::Token(Arc::new(Client::new(
                    crab,
                    id.clone(),
                    state.clone(),
                    politeness.clone(),
                )))
            } else {
                let app_id = cfg
                    .auth
                    .app_id
                    .ok_or_else(|| setup("auth.app_id", "missing"))?;
                let pem = match (&cfg.auth.private_key_path, &cfg.auth.private_key_env) {
                    (Some(p), _) => std::fs::read(p).map_err(|e| {
                        setup("auth.private_key_path", format!("{}: {e}", p.display()))
                    })?,
                    (None, Some(var)) => env("auth.private_key_env", var)?.into_bytes(),
                    (None, None) => return Err(setup("auth", "a GitHub App needs a private key")),
                };
                let key = octocrab::EncodingKey::from_rsa_pem(&pem).map_err(|e| {
                    setup("auth.private_key_path", format!("not an RSA PEM key: {e}"))
                })?;
                let app = builder()?
                    .app(octocrab::models::AppId(app_id), key)
                    .build()
                    .map_err(|e| setup("auth", e.to_string()))?;
                Auth::App {
                    app,
                    installation: cfg.auth.installation_id,
                }
            }
        };
        let repo_filter = cfg
            .filters
            .repository
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| setup("filters.repository", e.to_string()))?;
        let glob = if cfg.catalog_path_is_glob() {
            Some(
                crate::files::compile_glob(cfg.catalog_path())
                    .map_err(|e| setup("catalog_path", e.to_string()))?
                    .compile_matcher(),
            )
        } else {
            None
        };
        let webhook_secret = match (&cfg.webhook_secret_env, &cfg.webhook_secret_file) {
            (Some(var), _) => Some(env("webhook_secret_env", var)?.into_bytes()),
            (None, Some(path)) => Some(file("webhook_secret_file", path)?.into_bytes()),
            (None, None) => None,
        };
        Ok(GithubSource {
            id,
            cfg,
            max_file_bytes,
            state,
            rt: Some(rt),
            auth,
            clients: Mutex::new(HashMap::new()),
            repo_filter,
            glob,
            pending: Mutex::new(Pending::default()),
            staged: Mutex::new(Staged::default()),
            webhook_secret,
            stop: Mutex::new(None),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives until drop")
    }

    /// Reads the file a GitHub URL of this source's host names
    /// (`https://{host}/{owner}/{repo}/blob/{ref}/{path}`) through this
    /// source's client and credentials. `None`: the URL is not one of this
    /// host's file URLs. Blocks; call it off any async runtime's workers.
    pub fn read_url(&self, url: &url::Url) -> Option<Fetched> {
        if url.host_str() != Some(self.cfg.host.as_str()) {
            return None;
        }
        let segments: Vec<&str> = url.path_segments()?.collect();
        let [owner, repo, "blob", git_ref, path @ ..] = segments.as_slice() else {
            return None;
        };
        if path.is_empty() || owner.is_empty() || repo.is_empty() {
            return None;
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let path: Vec<String> = path.iter().map(|p| decode(p)).collect();
        let path = path.join("/");
        let (owner, repo, git_ref) = (decode(owner), decode(repo), decode(git_ref));
        let req = format!(
            "/repos/{owner}/{repo}/contents/{}?ref={}",
            repos::encode_path(&path),
            repos::encode_path(&git_ref)
        );
        let limit = self.max_file_bytes;
        Some(self.runtime().block_on(async {
            let client = match self.client(&owner).await {
                Ok(c) => c,
                Err(e) => {
                    return Fetched::Unreadable {
                        reason: e.to_string(),
                    };
                }
            };
            match client.get(&req, repos::decode_file).await {
                Ok(a) => repos::fetched_of(a.value, limit),
                Err(ApiError::NotFound { .. }) => Fetched::Unreadable {
                    reason: format!("{url}: not found"),
                },
                Err(e) => Fetched::Unreadable {
                    reason: e.to_string(),
                },
            }
        }))
    }

    pub fn config(&self) -> &GithubConfig {
        &self.cfg
    }

    /// The secret webhook deliveries are signed with, if configured.
    pub fn webhook_secret(&self) -> Option<&[u8]> {
        self.webhook_secret.as_deref()
    }

    /// The client for `org`: the token's, or the org's App installation's
    /// (whose tokens octocrab mints and renews before they expire).
    async fn client(&self, org: &str) -> Result<Arc<Client>, ApiError> {
        match &self.auth {
            Auth::Token(c) => Ok(c.clone()),
            Auth::App { app, installation } => {
                if let Some(c) = lock(&self.clients).get(org) {
                    return Ok(c.clone());
                }
                let id = match installation {
                    Some(id) => *id,
                    None => {
                        app.apps()
                            .get_org_installation(org)
                            .await
                            .map_err(|e| ApiError::Transport {
                                path: format!("/orgs/{org}/installation"),
                                message: e.to_string(),
                            })?
                            .id
                            .0
                    }
                };
                let crab = app
                    .installation(octocrab::models::InstallationId(id))
                    .map_err(|e| ApiError::Transport {
                        path: format!("installation {id}"),
                        message: e.to_string(),
                    })?;
                let client = Arc::new(Client::new(
                    crab,
                    self.id.clone(),
                    self.state.clone(),
                    politeness(&self.cfg),
                ));
                if let Some(stop) = lock(&self.stop).clone() {
                    client.set_stop(stop);
                }
                lock(&self.clients).insert(org.to_string(), client.clone());
                Ok(client)
            }
        }
    }

    fn all_clients(&self) -> Vec<Arc<Client>> {
        match &self.auth {
            Auth::Token(c) => vec![c.clone()],
            Auth::App { .. } => lock(&self.clients).values().cloned().collect(),
        }
    }

    /// Counters summed over the source's clients.
    pub fn counters(&self) -> client::CounterSnapshot {
        let mut t = client::CounterSnapshot::default();
        for c in self.all_clients() {
            let s = c.counters.snapshot();
            t.requests += s.requests;
            t.not_modified += s.not_modified;
            t.points += s.points;
            t.rate_limited += s.rate_limited;
            t.retries += s.retries;
        }
        t
    }

    /// Queues what a webhook delivery says changed; `true` when something
    /// was queued for a [`SyncMode::Pending`] sync.
    pub fn note(&self, d: &Delivery) -> bool {
        let tracked = |owner: &str| {
            self.cfg
                .organizations
                .iter()
                .any(|o| o.eq_ignore_ascii_case(owner))
        };
        let mut p = Pending::default();
        match d {
            Delivery::Push { repo, branch, .. } => {
                let wanted = self.cfg.branch.as_deref().unwrap_or(&repo.default_branch);
                if !tracked(&repo.owner) || branch != wanted {
                    return false;
                }
                p.repos
                    .entry(repo.id)
                    .or_default()
                    .insert((repo.owner.clone(), repo.name.clone()));
            }
            Delivery::Repository { action, repo } => {
                let mut names = BTreeSet::from([(repo.owner.clone(), repo.name.clone())]);
                match action {
                    RepositoryAction::Renamed { from } => {
                        names.insert((repo.owner.clone(), from.clone()));
                    }
                    RepositoryAction::Transferred {
                        from_owner: Some(o),
                    } => {
                        names.insert((o.clone(), repo.name.clone()));
                    }
                    _ => {}
                }
                if !names.iter().any(|(o, _)| tracked(o)) {
                    return false;
                }
                p.repos.entry(repo.id).or_default().extend(names);
            }
            Delivery::Team { org, .. }
            | Delivery::Membership { org, .. }
            | Delivery::Organization { org, .. } => {
                if !tracked(org) || !self.cfg.org_data {
                    return false;
                }
                p.org_data = true;
            }
            Delivery::Ping { .. } | Delivery::Ignored { .. } => return false,
        }
        lock(&self.pending).merge(p);
        true
    }

    fn included(&self, s: &RepoSummary) -> bool {
        let f = &self.cfg.filters;
        if s.archived && !f.archived {
            return false;
        }
        if s.fork && !f.forks {
            return false;
        }
        if !f.visibility.iter().any(|v| v == s.visibility()) {
            return false;
        }
        if let Some(r) = &self.repo_filter
            && !r.is_match(&s.name)
        {
            return false;
        }
        if !f.topics_include.is_empty() && !s.topics.iter().any(|t| f.topics_include.contains(t)) {
            return false;
        }
        !s.topics.iter().any(|t| f.topics_exclude.contains(t))
    }

    fn memos(&self) -> HashMap<u64, RepoMemo> {
        self.state
            .aux_scan(&self.id, MEMO_NS)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, serde_json::from_slice(&v).ok()?)))
            .collect()
    }

    fn ctx(&self) -> RepoCtx {
        RepoCtx {
            cfg: self.cfg.clone(),
            max_file_bytes: self.max_file_bytes,
            glob: self.glob.clone(),
            now: Utc::now(),
        }
    }

    /// Reads `tasks` with at most `concurrency` repositories in flight.
    async fn read_all(&self, client: Arc<Client>, tasks: Vec<RepoTask>) -> Vec<(u64, RepoOutcome)> {
        let ctx = Arc::new(self.ctx());
        let sem = Arc::new(tokio::sync::Semaphore::new(self.cfg.concurrency));
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (ctx, sem, client) = (ctx.clone(), sem.clone(), client.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let id = t.summary.id;
                (i, id, repos::read_repo(&client, &ctx, t).await)
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                out.push(r);
            }
        }
        out.sort_by_key(|(i, _, _)| *i);
        out.into_iter().map(|(_, id, o)| (id, o)).collect()
    }

    fn task(
        &self,
        s: RepoSummary,
        memos: &HashMap<u64, RepoMemo>,
        known: &Known,
        force: bool,
    ) -> RepoTask {
        let memo = memos.get(&s.id).cloned();
        let memo_trusted = memo.as_ref().is_some_and(|m| {
            m.descriptors.iter().all(|d| {
                known
                    .get(&d.location)
                    .is_some_and(|k| match (&k.content, &d.sha256) {
                        (crate::state::ContentState::Present { sha256 }, Some(s)) => sha256 == s,
                        (crate::state::ContentState::Present { .. }, None) => false,
                        (_, None) => true,
                        (_, Some(_)) => false,
                    })
            })
        });
        RepoTask {
            summary: s,
            memo,
            memo_trusted,
            force,
        }
    }

    fn absorb(&self, listing: &mut Listing, staged: &mut Staged, results: Vec<(u64, RepoOutcome)>) {
        for (id, o) in results {
            listing.locations.extend(o.locations);
            listing.facts.extend(o.facts);
            listing.problems.extend(o.problems);
            if let Some(m) = o.memo {
                staged.memos.push((id, Some(m)));
            }
        }
    }

    /// Re-lists known org-data locations as unchanged.
    fn keep_org_data(&self, listing: &mut Listing, known: &Known) {
        let prefixes = org::prefixes(&self.cfg.host);
        for (k, rec) in known {
            if prefixes.iter().any(|p| k.as_str().starts_with(p.as_str())) {
                listing
                    .locations
                    .push(repos::unchanged(k.clone(), rec.origin.clone()));
            }
        }
    }

    /// Reads teams and members of every organization into `listing`; on
    /// failure keeps the known ones.
    async fn read_org_data(&self, listing: &mut Listing, staged: &mut Staged, known: &Known) {
        let mut orgs = Vec::new();
        for o in &self.cfg.organizations {
            let data = match self.client(o).await {
                Ok(c) => org::read_org(&c, o).await.map(|d| (c, d)),
                Err(e) => Err(e),
            };
            match data {
                Ok(d) => orgs.push(d),
                Err(e) => {
                    listing
                        .problems
                        .push(format!("organization {o}: teams: {e}"));
                    self.keep_org_data(listing, known);
                    return;
                }
            }
        }
        let mut users = BTreeMap::new();
        for (c, d) in &orgs {
            for m in &d.members {
                if users.contains_key(&m.login) {
                    continue;
                }
                match org::read_user(c, &m.login).await {
                    Ok(u) => {
                        users.insert(m.login.clone(), u);
                    }
                    Err(e) => listing.problems.push(format!("user {}: {e}", m.login)),
                }
            }
        }
        let data: Vec<org::OrgData> = orgs.into_iter().map(|(_, d)| d).collect();
        for (location, origin, text) in org::entities(&self.cfg.host, &data, &users) {
            let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
            listing.locations.push(Listed {
                location,
                origin,
                fetched: Fetched::Present {
                    content: proto::Content::Utf8 { text },
                    sha256,
                },
                fingerprint: None,
                targets: Vec::new(),
            });
        }
        staged.org_refreshed_at = Some(Utc::now().timestamp());
    }

    async fn list_full(&self, known: &Known) -> Listing {
        let mut listing = Listing {
            complete: true,
            ..Listing::default()
        };
        let mut staged = Staged::default();
        let memos = self.memos();
        let mut seen_ids = BTreeSet::new();
        for org in &self.cfg.organizations {
            let client = match self.client(org).await {
                Ok(c) => c,
                Err(e) => {
                    listing.complete = false;
                    listing.problems.push(format!("organization {org}: {e}"));
                    continue;
                }
            };
            let first =
                format!("/orgs/{org}/repos?type=all&sort=created&direction=asc&per_page=100");
            let repos = match client.get_all(&first, json::<Vec<RepoSummary>>).await {
                Ok(r) => r,
                Err(e) => {
                    listing.complete = false;
                    listing
                        .problems
                        .push(format!("organization {org}: repository listing: {e}"));
                    // Keep the organization's known repositories as they are.
                    for m in memos.values().filter(|m| m.owner.eq_ignore_ascii_case(org)) {
                        for d in &m.descriptors {
                            listing.locations.push(repos::unchanged(
                                d.location.clone(),
                                repos::origin(&self.cfg.host, &m.owner),
                            ));
                        }
                        listing.facts.push(ListedFacts {
                            subject: SubjectKey::github_repository(
                                &self.cfg.host,
                                &m.owner,
                                &m.name,
                            ),
                            facts: None,
                        });
                    }
                    continue;
                }
            };
            let tasks: Vec<RepoTask> = repos
                .into_iter()
                .filter(|s| self.included(s))
                .filter(|s| seen_ids.insert(s.id))
                .map(|s| self.task(s, &memos, known, false))
                .collect();
            let results = self.read_all(client, tasks).await;
            self.absorb(&mut listing, &mut staged, results);
        }
        // Memos of repositories no longer listed go with their locations.
        if listing.complete {
            for id in memos.keys() {
                if !seen_ids.contains(id) {
                    staged.memos.push((*id, None));
                }
            }
        }
        if self.cfg.org_data {
            let last = self
                .state
                .aux_get(&self.id, ORG_NS, "refreshed_at")
                .ok()
                .flatten()
                .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok());
            let due = last
                .is_none_or(|t| Utc::now().timestamp() - t >= self.cfg.org_interval_secs as i64);
            if due || lock(&self.pending).org_data {
                lock(&self.pending).org_data = false;
                self.read_org_data(&mut listing, &mut staged, known).await;
            } else {
                self.keep_org_data(&mut listing, known);
            }
        }
        *lock(&self.staged) = staged;
        listing
    }

    async fn list_scoped(&self, known: &Known, pending: Pending) -> Listing {
        let host = self.cfg.host.clone();
        let mut scope = Vec::new();
        let mut listing = Listing {
            complete: true,
            ..Listing::default()
        };
        let mut staged = Staged::default();
        let memos = self.memos();
        let mut failed = Pending::default();
        let repo_scope = |o: &str, n: &str| {
            [
                ScopeEntry::Prefix(repos::location_prefix(&host, o, n)),
                ScopeEntry::Exact(SubjectKey::github_repository(&host, o, n).as_str().into()),
            ]
        };
        for (id, names) in &pending.repos {
            let mut names = names.clone();
            if let Some(m) = memos.get(id) {
                names.insert((m.owner.clone(), m.name.clone()));
            }
            let owner = names.iter().map(|(o, _)| o).find(|o| {
                self.cfg
                    .organizations
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(o))
            });
            let Some(owner) = owner else { continue };
            // By id: a renamed or transferred repository answers under its
            // new name; a deleted one is gone.
            let summary = match self.client(owner).await {
                Ok(c) => match c
                    .get(&format!("/repositories/{id}"), json::<RepoSummary>)
                    .await
                {
                    Ok(a) => Ok((c, Some(a.value))),
                    Err(ApiError::NotFound { .. }) => Ok((c, None)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            let (client, summary) = match summary {
                Ok(x) => x,
                Err(e) => {
                    // Retried on the next pending sync; nothing of it is
                    // in scope, so nothing of it is removed now.
                    listing.problems.push(format!("repository {id}: {e}"));
                    failed.repos.insert(*id, names);
                    continue;
                }
            };
            for (o, n) in &names {
                scope.extend(repo_scope(o, n));
            }
            let keep = summary.filter(|s| {
                self.cfg
                    .organizations
                    .iter()
                    .any(|o| o.eq_ignore_ascii_case(&s.owner.login))
                    && self.included(s)
            });
            match keep {
                None => staged.memos.push((*id, None)),
                Some(s) => {
                    scope.extend(repo_scope(&s.owner.login, &s.name));
                    let task = self.task(s, &memos, known, true);
                    let results = self.read_all(client, vec![task]).await;
                    self.absorb(&mut listing, &mut staged, results);
                }
            }
        }
        if pending.org_data {
            scope.extend(org::prefixes(&host).into_iter().map(ScopeEntry::Prefix));
            self.read_org_data(&mut listing, &mut staged, known).await;
        }
        listing.scope = Some(scope);
        *lock(&self.staged) = staged;
        lock(&self.pending).merge(failed);
        listing
    }
}

impl Drop for GithubSource {
    /// The last reference may go away inside another runtime (an HTTP
    /// handler's state), where dropping a runtime would block; let it wind
    /// down in the background instead.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn politeness(cfg: &GithubConfig) -> Politeness {
    let r = &cfg.rate_limit;
    Politeness {
        max_wait: Duration::from_secs(r.max_wait_secs),
        secondary_backoff: Duration::from_secs(r.secondary_backoff_secs),
        error_backoff: Duration::from_millis(r.error_backoff_ms),
        max_retries: r.max_retries,
        request_timeout: Duration::from_secs(r.request_timeout_secs),
    }
}

impl Source for GithubSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn list(&self, known: &Known) -> Result<Listing, SourceError> {
        Ok(self.runtime().block_on(self.list_full(known)))
    }

    fn list_pending(&self, known: &Known) -> Result<Listing, SourceError> {
        let pending = std::mem::take(&mut *lock(&self.pending));
        Ok(self.runtime().block_on(self.list_scoped(known, pending)))
    }

    fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    fn commit(&self) {
        let staged = std::mem::take(&mut *lock(&self.staged));
        let encoded: Vec<(String, Option<Vec<u8>>)> = staged
            .memos
            .iter()
            .map(|(id, m)| {
                (
                    id.to_string(),
                    m.as_ref()
                        .map(|m| serde_json::to_vec(m).expect("memo serialises")),
                )
            })
            .collect();
        let entries = encoded.iter().map(|(k, v)| (k.as_str(), v.as_deref()));
        if let Err(e) = self.state.aux_write(&self.id, MEMO_NS, entries) {
            tracing::warn!(source = %self.id, error = %e, "could not store repository memos");
        }
        if let Some(t) = staged.org_refreshed_at {
            let v = t.to_string();
            let _ = self
                .state
                .aux_write(&self.id, ORG_NS, [("refreshed_at", Some(v.as_bytes()))]);
        }
    }

    fn discard(&self) {
        *lock(&self.staged) = Staged::default();
    }

    fn bind_stop(&self, stop: Arc<AtomicBool>) {
        *lock(&self.stop) = Some(stop.clone());
        for c in self.all_clients() {
            c.set_stop(stop.clone());
        }
    }

    fn details(&self) -> crate::source::SourceDetails {
        crate::source::SourceDetails::Github(GithubDetails {
            organizations: self.cfg.organizations.clone(),
            rate_limit: self.all_clients().iter().map(|c| c.quota()).collect(),
            requests: self.counters(),
            pending: !lock(&self.pending).is_empty(),
        })
    }
}

#[cfg(test)]
mod answer_tests {
    use super::{ANSWERS, decode_answer};

    #[test]
    fn every_answer_named_is_decoded_and_a_bad_body_says_why() {
        for answer in ANSWERS {
            let e = decode_answer(answer, b"{not json").unwrap_err();
            assert!(!e.contains("no answer named"), "{answer}: {e}");
        }
        decode_answer("repo-teams", br#"[{"slug":"web","permission":"push"}]"#).unwrap();
        decode_answer("languages", br#"{"Rust":120,"Go":3}"#).unwrap();
        assert!(
            decode_answer("repo-teams", br#"[{"permission":"push"}]"#)
                .unwrap_err()
                .contains("slug")
        );
        assert!(
            decode_answer("nothing", b"[]")
                .unwrap_err()
                .contains("no answer named")
        );
    }
}

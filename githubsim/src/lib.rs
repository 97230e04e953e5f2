//! `githubsim`: a stateful, in-process simulator of the GitHub REST API, for
//! tests and benchmarks of code that reads from GitHub. It is not part of any
//! production path.
//!
//! A [`Sim`] holds a small world (organisations, repositories with files on
//! their default branch, teams and their access to repositories, members,
//! Dependabot alerts, branch protection), an authentication setup (a static token and/or a GitHub App
//! installation that mints tokens), a rate-limit quota and a queue of injected
//! faults. [`Sim::spawn`] serves it over HTTP on `127.0.0.1` with GitHub's
//! response shapes and headers: `Link` pagination, weak `ETag`s with
//! `If-None-Match` → `304`, `x-ratelimit-*` accounting, `301` redirects for
//! renamed repositories and GitHub's error bodies.
//!
//! Bodies are deterministic: timestamps come from a logical clock that starts
//! at `2024-01-01T00:00:00Z` and advances one second per mutation of the
//! world, and ETags are computed over the body as it would read with
//! `https://api.github.com` as the API root, so they do not depend on the
//! port the simulator listens on. API URLs inside bodies point at the
//! simulator itself, so a client can follow them. The wall clock is only used
//! for rate-limit reset times and installation-token expiry.
//!
//! Git object ids (blob, tree and commit SHAs) are 40 hex digits derived from
//! SHA-256 rather than real SHA-1 git ids: their shape matters, not the
//! algorithm.
//!
//! ```no_run
//! use githubsim::{RepoSpec, Sim};
//! let sim = Sim::new();
//! let mut spec = RepoSpec::new("api");
//! spec.files.insert("catalog-info.yaml".into(), "kind: Component\n".into());
//! sim.add_repo("acme", spec);
//! let server = sim.spawn();
//! let _url = format!("{}/orgs/acme/repos", server.base_url());
//! ```

mod routes;
mod server;
mod world;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use server::SimServer;

/// A simulated GitHub. Cheap to clone: clones share the same world.
#[derive(Clone)]
pub struct Sim {
    state: Arc<Mutex<world::State>>,
}

/// A repository to create with [`Sim::add_repo`].
#[derive(Clone, Debug)]
pub struct RepoSpec {
    pub name: String,
    pub default_branch: String,
    /// `public`, `private` or `internal`.
    pub visibility: String,
    pub archived: bool,
    pub topics: Vec<String>,
    /// Language name and bytes, served in this order by `/languages`; the
    /// largest is the repository's `language`.
    pub languages: Vec<(String, u64)>,
    pub description: Option<String>,
    /// Path -> text of the files on the default branch. A repository created
    /// without files is empty (no commit) until a first [`Sim::set_file`].
    pub files: BTreeMap<String, String>,
    pub protection: Protection,
    /// Severities of open Dependabot alerts (`critical`, `high`, `medium`,
    /// `low`).
    pub alerts: Vec<String>,
    /// Teams with access to the repository: slug and permission (`pull`,
    /// `triage`, `push`, `maintain` or `admin`), served in this order by
    /// `/repos/{owner}/{repo}/teams`. A slug that is not (or no longer) a
    /// team of the organisation is left out.
    pub teams: Vec<(String, String)>,
}

impl RepoSpec {
    /// A public, unarchived repository on `main` without files, protection,
    /// alerts or teams.
    pub fn new(name: &str) -> Self {
        RepoSpec {
            name: name.to_string(),
            default_branch: "main".to_string(),
            visibility: "public".to_string(),
            archived: false,
            topics: Vec::new(),
            languages: Vec::new(),
            description: None,
            files: BTreeMap::new(),
            protection: Protection::None,
            alerts: Vec::new(),
            teams: Vec::new(),
        }
    }
}

/// Protection of a repository's default branch.
#[derive(Clone, Debug)]
pub enum Protection {
    /// `404 {"message":"Branch not protected"}`.
    None,
    /// `403 {"message":"Resource not accessible by integration"}`.
    Forbidden,
    /// `200` with GitHub's branch-protection object.
    Protected {
        required_reviews: u32,
        enforce_admins: bool,
        required_status_checks: Vec<String>,
    },
}

/// A team to create or replace with [`Sim::put_team`].
#[derive(Clone, Debug)]
pub struct TeamSpec {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    /// Slug of the parent team, if any.
    pub parent: Option<String>,
    /// Logins of the members, served in this order.
    pub members: Vec<String>,
}

/// A user, made an organisation member with [`Sim::put_member`].
#[derive(Clone, Debug)]
pub struct UserSpec {
    pub login: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A fault injected with [`Sim::fail_next`].
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status with `{"message":"Server Error"}`; costs no point.
    Status(u16),
    /// A secondary rate limit: `status` (403 or 429) with `retry-after`;
    /// costs no point.
    SecondaryLimit { retry_after_secs: u64, status: u16 },
    /// A primary rate-limit refusal: 403 with `x-ratelimit-remaining: 0` and
    /// `x-ratelimit-reset` this many seconds on. One response only: the quota
    /// itself is untouched.
    PrimaryExhausted { reset_in_secs: u64 },
    /// Wait this long, then answer normally.
    Timeout(Duration),
}

/// What the simulator has served since it was created or
/// [`Sim::reset_stats`] was last called.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Every request received.
    pub requests: u64,
    /// Requests answered `304 Not Modified`.
    pub not_modified: u64,
    /// Requests that cost a rate-limit point (decremented the quota).
    pub points: u64,
    pub by_status: BTreeMap<u16, u64>,
    /// Path and query of every request, in order of arrival.
    pub paths: Vec<String>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Sim")
            .field("orgs", &st.orgs.len())
            .field("repos", &st.repos.len())
            .field("users", &st.users.len())
            .field("requests", &st.stats.requests)
            .finish()
    }
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// An empty world with a quota of 5000 points per hour and no
    /// authentication required.
    pub fn new() -> Sim {
        Sim {
            state: Arc::new(Mutex::new(world::State::new())),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, world::State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts serving on `127.0.0.1:0` on a dedicated thread with its own
    /// tokio runtime; returns once the socket is listening. Dropping the
    /// returned [`SimServer`] stops it.
    pub fn spawn(&self) -> SimServer {
        SimServer::start(self.clone())
    }

    // --- world ---

    /// Creates a repository (and its organisation if new); returns its id.
    /// Ids count up from 1000. Panics if the name is taken.
    pub fn add_repo(&self, org: &str, repo: RepoSpec) -> u64 {
        self.lock().add_repo(org, repo)
    }

    /// A push to the default branch: `Some` adds or replaces the file, `None`
    /// deletes it. Bumps `pushed_at` and `updated_at`.
    pub fn set_file(&self, org: &str, repo: &str, path: &str, content: Option<&str>) {
        self.lock().set_file(org, repo, path, content);
    }

    /// Renames a repository. The old name then answers `301` with
    /// `Location: {base}/repositories/{id}...`.
    pub fn rename_repo(&self, org: &str, old: &str, new: &str) {
        self.lock().rename_repo(org, old, new);
    }

    /// Deletes a repository: its name and id answer 404 from then on.
    pub fn delete_repo(&self, org: &str, name: &str) {
        self.lock().delete_repo(org, name);
    }

    pub fn set_archived(&self, org: &str, name: &str, archived: bool) {
        let mut st = self.lock();
        let now = st.tick();
        let repo = st.repo_mut(org, name);
        repo.archived = archived;
        repo.updated_at = now;
    }

    pub fn set_protection(&self, org: &str, name: &str, p: Protection) {
        let mut st = self.lock();
        st.tick();
        st.repo_mut(org, name).protection = p;
    }

    /// Replaces the open Dependabot alerts. Alerts whose position and
    /// severity are unchanged keep their number.
    pub fn set_alerts(&self, org: &str, name: &str, severities: Vec<String>) {
        self.lock().set_alerts(org, name, severities);
    }

    /// When set, the Dependabot alerts endpoint answers `403 {"message":
    /// "Resource not accessible by integration"}`.
    pub fn set_alerts_forbidden(&self, org: &str, name: &str, forbidden: bool) {
        let mut st = self.lock();
        st.tick();
        st.repo_mut(org, name).alerts_forbidden = forbidden;
    }

    /// Replaces the teams with access to a repository: slug and permission
    /// (`pull`, `triage`, `push`, `maintain` or `admin`), as
    /// [`RepoSpec::teams`].
    pub fn set_repo_teams(&self, org: &str, name: &str, teams: Vec<(String, String)>) {
        self.lock().set_repo_teams(org, name, teams);
    }

    /// Creates or replaces a team (keeping its id when it exists).
    pub fn put_team(&self, org: &str, team: TeamSpec) {
        self.lock().put_team(org, team);
    }

    pub fn remove_team(&self, org: &str, slug: &str) {
        self.lock().remove_team(org, slug);
    }

    /// Creates or updates the user and makes it a member of the organisation.
    pub fn put_member(&self, org: &str, user: UserSpec) {
        self.lock().put_member(org, user);
    }

    /// Ends the user's membership of the organisation (the user still exists).
    pub fn remove_member(&self, org: &str, login: &str) {
        self.lock().remove_member(org, login);
    }

    // --- auth ---

    /// From now on every request except the App endpoints needs
    /// `Authorization: Bearer <t>` or `token <t>` with this token or an
    /// unexpired installation token; otherwise `401 Bad credentials`.
    pub fn require_token(&self, token: &str) {
        self.lock().auth.required = Some(token.to_string());
    }

    /// Installs GitHub App `app_id` on `org` as installation
    /// `installation_id`: `GET /orgs/{org}/installation` and
    /// `POST /app/installations/{id}/access_tokens` accept a JWT whose `iss`
    /// is `app_id` (the signature is not checked).
    pub fn enable_app(&self, app_id: u64, installation_id: u64, org: &str) {
        self.lock().enable_app(app_id, installation_id, org);
    }

    /// Lifetime of installation tokens minted from now on (default 3600 s).
    pub fn set_installation_token_ttl(&self, secs: i64) {
        self.lock().auth.ttl = secs;
    }

    /// Installation tokens minted so far.
    pub fn tokens_minted(&self) -> u64 {
        self.lock().auth.minted_count
    }

    // --- faults and limits ---

    /// Queues a fault for the next request whose path (and query) starts
    /// with `path_prefix`. Faults are consumed one per matching request, in
    /// the order queued.
    pub fn fail_next(&self, path_prefix: &str, fault: Fault) {
        self.lock()
            .faults
            .push_back((path_prefix.to_string(), fault));
    }

    /// Sets the primary rate limit: `remaining` points of `limit` until
    /// `reset_in_secs` from now, when it refills to `limit` for an hour.
    pub fn set_quota(&self, limit: u64, remaining: u64, reset_in_secs: u64) {
        self.lock().quota.set(limit, remaining, reset_in_secs);
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn reset_stats(&self) {
        self.lock().stats = Stats::default();
    }

    /// Artificial latency added to every request (default none).
    pub fn set_page_delay(&self, d: Duration) {
        self.lock().page_delay = d;
    }
}

//! The simulated world and the simulator's bookkeeping: organisations,
//! repositories, users, authentication, quota, faults and statistics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{Fault, Protection, RepoSpec, Stats, TeamSpec, UserSpec};

/// The logical clock's origin: 2024-01-01T00:00:00Z.
pub(crate) const CLOCK_START: i64 = 1_704_067_200;

/// Seconds since the Unix epoch, by the wall clock.
pub(crate) fn wall_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `2024-05-01T12:00:00Z`.
pub(crate) fn iso(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A 40-hex-digit object id shaped like a git SHA-1, derived from SHA-256
/// over git's object header and payload (`"{kind} {len}\0" + bytes`).
pub(crate) fn object_id(kind: &str, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{kind} {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    let mut id = hex::encode(h.finalize());
    id.truncate(40);
    id
}

fn key(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn repo_key(org: &str, name: &str) -> String {
    format!("{}/{}", key(org), key(name))
}

pub(crate) struct Org {
    pub login: String,
    pub id: u64,
    pub created_at: i64,
    /// Member user id -> lowercase login.
    pub members: BTreeMap<u64, String>,
    /// Slug -> team.
    pub teams: BTreeMap<String, Team>,
}

pub(crate) struct Team {
    pub id: u64,
    pub spec: TeamSpec,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) struct User {
    pub id: u64,
    pub spec: UserSpec,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) struct Alert {
    pub number: u64,
    pub severity: String,
    pub created_at: i64,
}

pub(crate) struct Repo {
    pub id: u64,
    /// Lowercase login of the owning organisation.
    pub org: String,
    pub name: String,
    pub default_branch: String,
    pub visibility: String,
    pub archived: bool,
    pub topics: Vec<String>,
    pub languages: Vec<(String, u64)>,
    pub description: Option<String>,
    pub files: BTreeMap<String, String>,
    /// Every blob ever pushed, by id, as git keeps them.
    pub blobs: HashMap<String, String>,
    /// False until the first commit (a repository created without files).
    pub has_commits: bool,
    pub head: String,
    pub protection: Protection,
    pub alerts: Vec<Alert>,
    pub next_alert: u64,
    pub alerts_forbidden: bool,
    /// Teams with access: slug and permission, in the order served.
    pub teams: Vec<(String, String)>,
    pub created_at: i64,
    pub updated_at: i64,
    pub pushed_at: i64,
}

impl Repo {
    /// Is `r` a name for the head commit (branch, `HEAD`, full ref or SHA)?
    pub fn is_head_ref(&self, r: &str) -> bool {
        let r = r.strip_prefix("refs/").unwrap_or(r);
        let r = r.strip_prefix("heads/").unwrap_or(r);
        r == self.default_branch || r == "HEAD" || r == self.head
    }

    fn commit(&mut self, now: i64) {
        let tree = Tree::build(&self.files);
        let payload = format!("tree {}\nparent {}\ntime {now}\n", tree.sha, self.head);
        self.head = object_id("commit", payload.as_bytes());
        self.has_commits = true;
        self.pushed_at = now;
        self.updated_at = now;
    }
}

/// What a `owner/name` resolves to.
#[derive(Clone, Copy)]
pub(crate) enum Name {
    Live(u64),
    Moved(u64),
}

pub(crate) struct Install {
    pub app_id: u64,
    pub installation_id: u64,
    /// Lowercase login of the organisation.
    pub org: String,
    pub created_at: i64,
}

pub(crate) struct Minted {
    pub expires_at: i64,
    pub installation_id: u64,
}

pub(crate) struct Auth {
    pub required: Option<String>,
    pub installs: Vec<Install>,
    pub ttl: i64,
    pub minted: HashMap<String, Minted>,
    pub minted_count: u64,
}

pub(crate) struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds (wall clock).
    pub reset: i64,
}

impl Quota {
    pub fn set(&mut self, limit: u64, remaining: u64, reset_in_secs: u64) {
        self.limit = limit;
        self.remaining = remaining.min(limit);
        self.reset = wall_now().saturating_add_unsigned(reset_in_secs);
    }

    pub fn used(&self) -> u64 {
        self.limit - self.remaining
    }

    /// Starts a new window when the reset time has passed.
    pub fn refill_if_due(&mut self, now: i64) {
        if now >= self.reset {
            self.remaining = self.limit;
            self.reset = now + 3600;
        }
    }
}

pub(crate) struct State {
    clock: i64,
    next_repo_id: u64,
    next_account_id: u64,
    next_team_id: u64,
    /// Lowercase login -> organisation.
    pub orgs: BTreeMap<String, Org>,
    pub repos: BTreeMap<u64, Repo>,
    /// Lowercase `org/name` -> repository.
    pub names: HashMap<String, Name>,
    /// Lowercase login -> user.
    pub users: BTreeMap<String, User>,
    pub auth: Auth,
    pub quota: Quota,
    pub faults: VecDeque<(String, Fault)>,
    pub stats: Stats,
    pub page_delay: Duration,
    pub request_seq: u64,
}

impl State {
    pub fn new() -> State {
        State {
            clock: CLOCK_START,
            next_repo_id: 1000,
            next_account_id: 1,
            next_team_id: 1,
            orgs: BTreeMap::new(),
            repos: BTreeMap::new(),
            names: HashMap::new(),
            users: BTreeMap::new(),
            auth: Auth {
                required: None,
                installs: Vec::new(),
                ttl: 3600,
                minted: HashMap::new(),
                minted_count: 0,
            },
            quota: Quota {
                limit: 5000,
                remaining: 5000,
                reset: wall_now() + 3600,
            },
            faults: VecDeque::new(),
            stats: Stats::default(),
            page_delay: Duration::ZERO,
            request_seq: 0,
        }
    }

    /// Advances the logical clock by one second and returns the new time.
    pub fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn org_entry(&mut self, org: &str) -> &mut Org {
        let k = key(org);
        if !self.orgs.contains_key(&k) {
            let id = self.next_account_id;
            self.next_account_id += 1;
            let created_at = self.clock;
            self.orgs.insert(
                k.clone(),
                Org {
                    login: org.to_string(),
                    id,
                    created_at,
                    members: BTreeMap::new(),
                    teams: BTreeMap::new(),
                },
            );
        }
        self.orgs.get_mut(&k).expect("inserted above")
    }

    fn org_mut(&mut self, org: &str) -> &mut Org {
        self.orgs
            .get_mut(&key(org))
            .unwrap_or_else(|| panic!("githubsim: no organisation {org}"))
    }

    pub fn org(&self, org: &str) -> Option<&Org> {
        self.orgs.get(&key(org))
    }

    pub fn user(&self, login: &str) -> Option<&User> {
        self.users.get(&key(login))
    }

    pub fn resolve(&self, org: &str, name: &str) -> Option<Name> {
        self.names.get(&repo_key(org, name)).copied()
    }

    fn live_id(&self, org: &str, name: &str) -> u64 {
        match self.resolve(org, name) {
            Some(Name::Live(id)) => id,
            _ => panic!("githubsim: no repository {org}/{name}"),
        }
    }

    pub fn repo_mut(&mut self, org: &str, name: &str) -> &mut Repo {
        let id = self.live_id(org, name);
        self.repos.get_mut(&id).expect("names point at live repos")
    }

    /// Full name (`Org/name`) of a repository, with the organisation's login
    /// as it was created.
    pub fn full_name(&self, repo: &Repo) -> String {
        let login = self
            .orgs
            .get(&repo.org)
            .map_or(repo.org.as_str(), |o| &o.login);
        format!("{login}/{}", repo.name)
    }

    pub fn add_repo(&mut self, org: &str, spec: RepoSpec) -> u64 {
        if let Some(Name::Live(_)) = self.resolve(org, &spec.name) {
            panic!("githubsim: repository {org}/{} exists", spec.name);
        }
        let now = self.tick();
        let org_key = key(org);
        self.org_entry(org);
        let id = self.next_repo_id;
        self.next_repo_id += 1;
        let mut repo = Repo {
            id,
            org: org_key,
            name: spec.name.clone(),
            default_branch: spec.default_branch,
            visibility: spec.visibility,
            archived: spec.archived,
            topics: spec.topics,
            languages: spec.languages,
            description: spec.description,
            files: BTreeMap::new(),
            blobs: HashMap::new(),
            has_commits: false,
            head: String::new(),
            protection: spec.protection,
            alerts: Vec::new(),
            next_alert: 1,
            alerts_forbidden: false,
            teams: spec.teams,
            created_at: now,
            updated_at: now,
            pushed_at: now,
        };
        for (path, text) in spec.files {
            put_file(&mut repo, &path, text);
        }
        if !repo.files.is_empty() {
            repo.commit(now);
        }
        for severity in spec.alerts {
            let number = repo.next_alert;
            repo.next_alert += 1;
            repo.alerts.push(Alert {
                number,
                severity,
                created_at: now,
            });
        }
        self.repos.insert(id, repo);
        self.names.insert(repo_key(org, &spec.name), Name::Live(id));
        id
    }

    pub fn set_file(&mut self, org: &str, name: &str, path: &str, content: Option<&str>) {
        let now = self.tick();
        let repo = self.repo_mut(org, name);
        let path = path.trim_matches('/');
        match content {
            Some(text) => put_file(repo, path, text.to_string()),
            None => {
                repo.files.remove(path);
            }
        }
        repo.commit(now);
    }

    pub fn rename_repo(&mut self, org: &str, old: &str, new: &str) {
        let id = self.live_id(org, old);
        if let Some(Name::Live(other)) = self.resolve(org, new)
            && other != id
        {
            panic!("githubsim: repository {org}/{new} exists");
        }
        let now = self.tick();
        let repo = self.repos.get_mut(&id).expect("live");
        repo.name = new.to_string();
        repo.updated_at = now;
        self.names.insert(repo_key(org, old), Name::Moved(id));
        self.names.insert(repo_key(org, new), Name::Live(id));
    }

    pub fn delete_repo(&mut self, org: &str, name: &str) {
        let id = self.live_id(org, name);
        self.tick();
        self.repos.remove(&id);
        self.names
            .retain(|_, n| !matches!(*n, Name::Live(x) | Name::Moved(x) if x == id));
    }

    pub fn set_alerts(&mut self, org: &str, name: &str, severities: Vec<String>) {
        let now = self.tick();
        let repo = self.repo_mut(org, name);
        let old = std::mem::take(&mut repo.alerts);
        let mut old = old.into_iter();
        for severity in severities {
            match old.next() {
                Some(a) if a.severity == severity => repo.alerts.push(a),
                _ => {
                    let number = repo.next_alert;
                    repo.next_alert += 1;
                    repo.alerts.push(Alert {
                        number,
                        severity,
                        created_at: now,
                    });
                }
            }
        }
    }

    /// Replaces the teams with access to a repository. Neither `pushed_at`
    /// nor `updated_at` moves: a repository listing does not show it.
    pub fn set_repo_teams(&mut self, org: &str, name: &str, teams: Vec<(String, String)>) {
        self.tick();
        self.repo_mut(org, name).teams = teams;
    }

    /// Returns the user's id, creating the user if unknown.
    fn user_entry(&mut self, login: &str, now: i64) -> u64 {
        let k = key(login);
        if let Some(u) = self.users.get(&k) {
            return u.id;
        }
        let id = self.next_account_id;
        self.next_account_id += 1;
        let spec = UserSpec {
            login: login.to_string(),
            name: None,
            email: None,
        };
        self.users.insert(
            k,
            User {
                id,
                spec,
                created_at: now,
                updated_at: now,
            },
        );
        id
    }

    pub fn put_team(&mut self, org: &str, team: TeamSpec) {
        let now = self.tick();
        for login in &team.members {
            self.user_entry(login, now);
        }
        let existing = self
            .org_entry(org)
            .teams
            .get(&team.slug)
            .map(|t| (t.id, t.created_at));
        let (id, created_at) = existing.unwrap_or_else(|| {
            let id = self.next_team_id;
            self.next_team_id += 1;
            (id, now)
        });
        let slug = team.slug.clone();
        self.org_entry(org).teams.insert(
            slug,
            Team {
                id,
                spec: team,
                created_at,
                updated_at: now,
            },
        );
    }

    pub fn remove_team(&mut self, org: &str, slug: &str) {
        self.tick();
        self.org_mut(org).teams.remove(slug);
    }

    pub fn put_member(&mut self, org: &str, user: UserSpec) {
        let now = self.tick();
        let id = self.user_entry(&user.login, now);
        let u = self
            .users
            .get_mut(&key(&user.login))
            .expect("created above");
        if u.spec.name != user.name || u.spec.email != user.email || u.spec.login != user.login {
            u.spec = user.clone();
            u.updated_at = now;
        }
        self.org_entry(org).members.insert(id, key(&user.login));
    }

    pub fn remove_member(&mut self, org: &str, login: &str) {
        self.tick();
        let k = key(login);
        self.org_mut(org).members.retain(|_, l| *l != k);
    }

    pub fn enable_app(&mut self, app_id: u64, installation_id: u64, org: &str) {
        let now = self.tick();
        self.org_entry(org);
        self.auth
            .installs
            .retain(|i| i.installation_id != installation_id);
        self.auth.installs.push(Install {
            app_id,
            installation_id,
            org: key(org),
            created_at: now,
        });
    }

    /// Mints an installation token valid for the configured lifetime.
    pub fn mint_token(&mut self, installation_id: u64) -> (String, i64) {
        self.auth.minted_count += 1;
        let token = format!("ghs_{:036}", self.auth.minted_count);
        let expires_at = wall_now() + self.auth.ttl;
        self.auth.minted.insert(
            token.clone(),
            Minted {
                expires_at,
                installation_id,
            },
        );
        (token, expires_at)
    }

    /// Removes and returns the first queued fault matching the request.
    pub fn take_fault(&mut self, path_and_query: &str) -> Option<Fault> {
        let at = self
            .faults
            .iter()
            .position(|(prefix, _)| path_and_query.starts_with(prefix.as_str()))?;
        self.faults.remove(at).map(|(_, f)| f)
    }
}

/// Adds or replaces a file, removing whatever a file and a directory of the
/// same path would conflict with (as git does).
fn put_file(repo: &mut Repo, path: &str, text: String) {
    let path = path.trim_matches('/').to_string();
    let dir_prefix = format!("{path}/");
    repo.files.retain(|p, _| !p.starts_with(&dir_prefix));
    let mut parent = path.as_str();
    while let Some((up, _)) = parent.rsplit_once('/') {
        repo.files.remove(up);
        parent = up;
    }
    let sha = object_id("blob", text.as_bytes());
    repo.blobs.insert(sha, text.clone());
    repo.files.insert(path, text);
}

/// A git tree built from a repository's files.
pub(crate) struct Tree {
    pub sha: String,
    pub entries: BTreeMap<String, Entry>,
}

pub(crate) enum Entry {
    Blob { sha: String, size: u64 },
    Tree(Tree),
}

impl Entry {
    pub fn sha(&self) -> &str {
        match self {
            Entry::Blob { sha, .. } => sha,
            Entry::Tree(t) => &t.sha,
        }
    }
}

impl Tree {
    pub fn build(files: &BTreeMap<String, String>) -> Tree {
        #[derive(Default)]
        struct Dir<'a> {
            files: BTreeMap<&'a str, &'a str>,
            dirs: BTreeMap<&'a str, Dir<'a>>,
        }
        fn seal(dir: Dir<'_>) -> Tree {
            let mut entries = BTreeMap::new();
            for (name, text) in dir.files {
                let sha = object_id("blob", text.as_bytes());
                let size = text.len() as u64;
                entries.insert(name.to_string(), Entry::Blob { sha, size });
            }
            for (name, sub) in dir.dirs {
                entries.insert(name.to_string(), Entry::Tree(seal(sub)));
            }
            let mut listing = String::new();
            for (name, e) in &entries {
                let mode = if matches!(e, Entry::Blob { .. }) {
                    "100644"
                } else {
                    "40000"
                };
                listing.push_str(&format!("{mode} {name} {}\n", e.sha()));
            }
            Tree {
                sha: object_id("tree", listing.as_bytes()),
                entries,
            }
        }
        let mut root = Dir::default();
        for (path, text) in files {
            let mut dir = &mut root;
            let mut parts = path.split('/').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    dir.files.insert(part, text);
                } else {
                    dir = dir.dirs.entry(part).or_default();
                }
            }
        }
        seal(root)
    }

    /// The entry at a slash-separated path; `""` is the root itself.
    pub fn lookup(&self, path: &str) -> Option<Lookup<'_>> {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Some(Lookup::Tree(self));
        }
        let mut tree = self;
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            let entry = tree.entries.get(part)?;
            match (entry, parts.peek().is_none()) {
                (Entry::Blob { sha, size }, true) => {
                    return Some(Lookup::Blob { sha, size: *size });
                }
                (Entry::Tree(t), true) => return Some(Lookup::Tree(t)),
                (Entry::Tree(t), false) => tree = t,
                (Entry::Blob { .. }, false) => return None,
            }
        }
        None
    }

    /// The tree (this one or a subtree) with this id.
    pub fn find(&self, sha: &str) -> Option<&Tree> {
        if self.sha == sha {
            return Some(self);
        }
        self.entries.values().find_map(|e| match e {
            Entry::Tree(t) => t.find(sha),
            Entry::Blob { .. } => None,
        })
    }

    /// Every entry under this tree in pre-order, with its path relative to
    /// this tree.
    pub fn walk<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Entry)>) {
        for (name, e) in &self.entries {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            out.push((path.clone(), e));
            if let Entry::Tree(t) = e {
                t.walk(&path, out);
            }
        }
    }
}

pub(crate) enum Lookup<'a> {
    Blob { sha: &'a str, size: u64 },
    Tree(&'a Tree),
}

//! Reading one repository: its catalog descriptors and its facts.
//!
//! Every request goes through the caching client, so an unchanged answer
//! is a free `304`. Beyond that, a repository whose `pushed_at` and
//! settings equal those of the last committed sync is not read at all: its
//! descriptors stand as last shipped (the memo says what they were), and
//! its facts are re-read only when older than `facts_interval_secs`.

use super::client::{ApiError, Client, json};
use super::config::GithubConfig;
use crate::source::{Fetched, Listed, ListedFacts};
use base64::Engine;
use chrono::{DateTime, Utc};
use proto::facts::{RepoTeam, RepoTeams};
use proto::{
    Access, AlertCounts, BranchProtection, Content, Facts, LocationKey, RepositoryFacts, SubjectKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What the repository listing says about a repository (all a re-poll
/// reads of an unchanged repository).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoSummary {
    pub id: u64,
    pub name: String,
    pub owner: Owner,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub fork: bool,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub pushed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub login: String,
}

impl RepoSummary {
    pub fn visibility(&self) -> &str {
        match &self.visibility {
            Some(v) => v,
            None if self.private => "private",
            None => "public",
        }
    }

    /// A hash of everything in the summary that facts depend on.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).expect("summary serialises");
        hex::encode(&Sha256::digest(&json)[..12])
    }
}

/// What the last committed sync read of a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoMemo {
    pub owner: String,
    pub name: String,
    pub branch: String,
    /// [`RepoSummary::fingerprint`] when last read.
    pub summary: String,
    /// The descriptors found, with the SHA-256 of their content (or
    /// `None` when too large or unreadable) and the git blob sha.
    pub descriptors: Vec<MemoDescriptor>,
    /// When facts were last read (Unix seconds); `None`: never.
    pub facts_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoDescriptor {
    pub location: LocationKey,
    pub sha256: Option<String>,
    pub blob: String,
}

/// The result of reading one repository.
#[derive(Debug, Default)]
pub struct RepoOutcome {
    pub locations: Vec<Listed>,
    pub facts: Option<ListedFacts>,
    pub memo: Option<RepoMemo>,
    pub problems: Vec<String>,
}

/// The settings a repository read needs, shared by the tasks of a sync.
#[derive(Debug, Clone)]
pub struct RepoCtx {
    pub cfg: GithubConfig,
    pub max_file_bytes: u64,
    pub glob: Option<globset::GlobMatcher>,
    pub now: DateTime<Utc>,
}

/// How a repository is to be read.
#[derive(Debug, Clone)]
pub struct RepoTask {
    pub summary: RepoSummary,
    pub memo: Option<RepoMemo>,
    /// The memo's descriptors are all in the committed sync state (so
    /// "unchanged" really means "as shipped").
    pub memo_trusted: bool,
    /// Read even if nothing seems to have changed (a webhook said so).
    pub force: bool,
}

/// `https://{host}/{owner}/{name}`.
pub fn repo_url(host: &str, owner: &str, name: &str) -> String {
    format!("https://{host}/{owner}/{name}")
}

/// The location key of a descriptor, as Backstage writes it.
pub fn descriptor_location(
    host: &str,
    owner: &str,
    name: &str,
    branch: &str,
    path: &str,
) -> LocationKey {
    LocationKey::new(format!(
        "url:{}/blob/{branch}/{path}",
        repo_url(host, owner, name)
    ))
}

/// The prefix of every descriptor location of a repository.
pub fn location_prefix(host: &str, owner: &str, name: &str) -> String {
    format!("url:{}/blob/", repo_url(host, owner, name))
}

/// The location that a repository's descriptors are reached from.
pub fn origin(host: &str, org: &str) -> LocationKey {
    LocationKey::new(format!("url:https://{host}/{org}"))
}

/// Percent-encodes what a path segment of a URL may not hold.
pub fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The branch a repository is read from.
pub fn branch_of(cfg: &GithubConfig, s: &RepoSummary) -> String {
    cfg.branch
        .clone()
        .or_else(|| s.default_branch.clone())
        .unwrap_or_else(|| "main".into())
}

/// A file as the contents and blob APIs return it, reduced to what the
/// catalog keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileBody {
    pub sha: String,
    pub size: u64,
    /// Decoded bytes as text (UTF-8) or hex; `None` when GitHub did not
    /// inline the content (too large).
    pub content: Option<Content>,
    pub sha256: Option<String>,
}

pub(crate) fn decode_file(body: &[u8]) -> Result<FileBody, String> {
    #[derive(Deserialize)]
    struct Raw {
        sha: String,
        #[serde(default)]
        size: u64,
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        encoding: Option<String>,
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    let raw: Raw = json(body)?;
    if raw.kind.as_deref().is_some_and(|k| k != "file") {
        return Err(format!("not a file but a {}", raw.kind.unwrap_or_default()));
    }
    let (content, sha256) = match (raw.encoding.as_deref(), raw.content) {
        (Some("base64"), Some(c)) => {
            let compact: String = c.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| format!("content is not base64: {e}"))?;
            let sha = hex::encode(Sha256::digest(&bytes));
            let content = match String::from_utf8(bytes) {
                Ok(text) => Content::Utf8 { text },
                Err(e) => Content::Hex {
                    data: hex::encode(e.into_bytes()),
                },
            };
            (Some(content), Some(sha))
        }
        _ => (None, None),
    };
    Ok(FileBody {
        sha: raw.sha,
        size: raw.size,
        content,
        sha256,
    })
}

pub(crate) fn fetched_of(f: FileBody, limit: u64) -> Fetched {
    if f.size > limit {
        return Fetched::TooLarge {
            size: f.size,
            limit,
        };
    }
    match (f.content, f.sha256) {
        (Some(content), Some(sha256)) => Fetched::Present { content, sha256 },
        _ => Fetched::Unreadable {
            reason: format!("GitHub did not return the content ({} bytes)", f.size),
        },
    }
}

fn memo_sha(f: &Fetched) -> Option<String> {
    match f {
        Fetched::Present { sha256, .. } => Some(sha256.clone()),
        _ => None,
    }
}

/// A directory listing entry (contents API), reduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
}

pub(crate) fn decode_dir(body: &[u8]) -> Result<Vec<DirEntry>, String> {
    json(body)
}

/// A blob of a tree, reduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeBlob {
    pub path: String,
    pub sha: String,
    pub size: u64,
}

/// Reads a repository per `task`.
pub async fn read_repo(client: &Client, ctx: &RepoCtx, task: RepoTask) -> RepoOutcome {
    let s = &task.summary;
    let host = ctx.cfg.host.as_str();
    let (owner, name) = (s.owner.login.as_str(), s.name.as_str());
    let branch = branch_of(&ctx.cfg, s);
    let summary = s.fingerprint();
    let mut out = RepoOutcome::default();
    let memo = task
        .memo
        .as_ref()
        .filter(|m| m.owner == owner && m.name == name && m.branch == branch);
    let pushed_same = memo.is_some_and(|m| m.summary == summary);
    let skip_descriptors = !task.force && task.memo_trusted && pushed_same;

    // Descriptors.
    let descriptors: Vec<MemoDescriptor>;
    if skip_descriptors {
        let m = memo.expect("skip implies a memo");
        for d in &m.descriptors {
            out.locations
                .push(unchanged(d.location.clone(), origin(host, owner)));
        }
        descriptors = m.descriptors.clone();
    } else {
        match read_descriptors(client, ctx, s, &branch, memo, task.memo_trusted).await {
            Ok((listed, memo_desc)) => {
                out.locations = listed;
                descriptors = memo_desc;
            }
            Err(e) => {
                // Keep what was known: nothing of this repository is removed.
                out.problems
                    .push(format!("{owner}/{name}: descriptors: {e}"));
                if let Some(m) = task.memo.as_ref() {
                    for d in &m.descriptors {
                        out.locations
                            .push(unchanged(d.location.clone(), origin(host, owner)));
                    }
                }
                out.facts = Some(ListedFacts {
                    subject: SubjectKey::github_repository(host, owner, name),
                    facts: None,
                });
                return out;
            }
        }
    }

    // Facts.
    let subject = SubjectKey::github_repository(host, owner, name);
    let mut facts_at = memo.and_then(|m| m.facts_at);
    if ctx.cfg.facts {
        let stale =
            facts_at.is_none_or(|t| ctx.now.timestamp() - t >= ctx.cfg.facts_interval_secs as i64);
        if task.force || !pushed_same || stale || !task.memo_trusted {
            match read_facts(client, ctx, s, &branch, &descriptors).await {
                Ok(f) => {
                    out.facts = Some(ListedFacts {
                        subject,
                        facts: Some(Facts::GithubRepository(f)),
                    });
                    facts_at = Some(ctx.now.timestamp());
                }
                Err(e) => {
                    out.problems.push(format!("{owner}/{name}: facts: {e}"));
                    out.facts = Some(ListedFacts {
                        subject,
                        facts: None,
                    });
                }
            }
        } else {
            out.facts = Some(ListedFacts {
                subject,
                facts: None,
            });
        }
    }
    out.memo = Some(RepoMemo {
        owner: owner.into(),
        name: name.into(),
        branch,
        summary,
        descriptors,
        facts_at,
    });
    out
}

/// A location listed as it stands (not read again).
pub(crate) fn unchanged(location: LocationKey, origin: LocationKey) -> Listed {
    Listed {
        location,
        origin,
        fetched: Fetched::Unchanged,
        fingerprint: None,
        targets: Vec::new(),
    }
}

async fn read_descriptors(
    client: &Client,
    ctx: &RepoCtx,
    s: &RepoSummary,
    branch: &str,
    memo: Option<&RepoMemo>,
    memo_trusted: bool,
) -> Result<(Vec<Listed>, Vec<MemoDescriptor>), ApiError> {
    let host = ctx.cfg.host.as_str();
    let (owner, name) = (s.owner.login.as_str(), s.name.as_str());
    let origin = origin(host, owner);
    let mut listed = Vec::new();
    let mut memo_out = Vec::new();
    let Some(glob) = &ctx.glob else {
        let path = ctx.cfg.catalog_path();
        let req = format!(
            "/repos/{owner}/{name}/contents/{}?ref={}",
            encode_path(path),
            encode_path(branch)
        );
        match client.get(&req, decode_file).await {
            Ok(a) => {
                let location = descriptor_location(host, owner, name, branch, path);
                let blob = a.value.sha.clone();
                let fetched = fetched_of(a.value, ctx.max_file_bytes);
                memo_out.push(MemoDescriptor {
                    location: location.clone(),
                    sha256: memo_sha(&fetched),
                    blob,
                });
                listed.push(Listed {
                    location,
                    origin,
                    fetched,
                    fingerprint: None,
                    targets: Vec::new(),
                });
            }
            // No descriptor (or an empty repository): nothing to list.
            Err(ApiError::NotFound { .. }) => {}
            Err(ApiError::Status { status: 409, .. }) => {}
            Err(e) => return Err(e),
        }
        return Ok((listed, memo_out));
    };
    // A glob: the tree tells which files match and their blob shas.
    let req = format!(
        "/repos/{owner}/{name}/git/trees/{}?recursive=1",
        encode_path(branch)
    );
    let matcher = glob.clone();
    let tree = client
        .get_keyed(
            &req,
            &format!("{req}#{}", ctx.cfg.catalog_path()),
            move |b| {
                #[derive(Deserialize)]
                struct Tree {
                    tree: Vec<Entry>,
                    #[serde(default)]
                    truncated: bool,
                }
                #[derive(Deserialize)]
                struct Entry {
                    path: String,
                    #[serde(rename = "type")]
                    kind: String,
                    sha: String,
                    #[serde(default)]
                    size: u64,
                }
                let t: Tree = json(b)?;
                if t.truncated {
                    return Err("the tree is truncated (too many files for one request)".into());
                }
                Ok(t.tree
                    .into_iter()
                    .filter(|e| e.kind == "blob" && matcher.is_match(&e.path))
                    .map(|e| TreeBlob {
                        path: e.path,
                        sha: e.sha,
                        size: e.size,
                    })
                    .collect::<Vec<_>>())
            },
        )
        .await;
    let blobs = match tree {
        Ok(a) => a.value,
        Err(ApiError::NotFound { .. }) | Err(ApiError::Status { status: 409, .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    for b in blobs {
        let location = descriptor_location(host, owner, name, branch, &b.path);
        let known = memo.filter(|_| memo_trusted).and_then(|m| {
            m.descriptors
                .iter()
                .find(|d| d.location == location && d.blob == b.sha)
        });
        if let Some(d) = known {
            memo_out.push(d.clone());
            listed.push(unchanged(location, origin.clone()));
            continue;
        }
        let fetched = if b.size > ctx.max_file_bytes {
            Fetched::TooLarge {
                size: b.size,
                limit: ctx.max_file_bytes,
            }
        } else {
            let a = client
                .get(
                    &format!("/repos/{owner}/{name}/git/blobs/{}", b.sha),
                    decode_file,
                )
                .await?;
            fetched_of(a.value, ctx.max_file_bytes)
        };
        memo_out.push(MemoDescriptor {
            location: location.clone(),
            sha256: memo_sha(&fetched),
            blob: b.sha,
        });
        listed.push(Listed {
            location,
            origin: origin.clone(),
            fetched,
            fingerprint: None,
            targets: Vec::new(),
        });
    }
    Ok((listed, memo_out))
}

/// The well-known files, by kind, and the names that count for each.
fn file_kind(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    let stem = n.split('.').next().unwrap_or("");
    match stem {
        "readme" => Some("README"),
        "license" | "licence" | "copying" => Some("LICENSE"),
        "codeowners" if n == "codeowners" => Some("CODEOWNERS"),
        "security" => Some("SECURITY"),
        _ => None,
    }
}

async fn read_facts(
    client: &Client,
    ctx: &RepoCtx,
    s: &RepoSummary,
    branch: &str,
    descriptors: &[MemoDescriptor],
) -> Result<RepositoryFacts, ApiError> {
    let host = ctx.cfg.host.as_str();
    let (owner, name) = (s.owner.login.as_str(), s.name.as_str());
    let r = encode_path(branch);

    // Well-known files: the root, then .github/ and docs/ (where GitHub
    // also looks for CODEOWNERS, SECURITY.md and READMEs).
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let root = match client
        .get(
            &format!("/repos/{owner}/{name}/contents/?ref={r}"),
            decode_dir,
        )
        .await
    {
        Ok(a) => a.value,
        Err(ApiError::NotFound { .. }) | Err(ApiError::Status { status: 409, .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for e in &root {
        if e.kind == "dir" && (e.name == ".github" || e.name == "docs") {
            dirs.push(e.name.clone());
        }
    }
    // GitHub's order of precedence: .github/, root, docs/ for CODEOWNERS;
    // the root first for the others.
    let mut listings: Vec<(String, Vec<DirEntry>)> = vec![(String::new(), root)];
    dirs.sort_by_key(|d| if d == ".github" { 0 } else { 1 });
    for d in dirs {
        match client
            .get(
                &format!("/repos/{owner}/{name}/contents/{d}?ref={r}"),
                decode_dir,
            )
            .await
        {
            Ok(a) => listings.push((d, a.value)),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for (_, entries) in &listings {
        for e in entries {
            if e.kind != "file" {
                continue;
            }
            if let Some(kind) = file_kind(&e.name) {
                let better = kind == "CODEOWNERS" && e.path.starts_with(".github/");
                if better || !files.contains_key(kind) {
                    files.insert(kind.to_string(), e.path.clone());
                }
            }
        }
    }

    let languages: BTreeMap<String, u64> = match client
        .get(
            &format!("/repos/{owner}/{name}/languages"),
            json::<BTreeMap<String, u64>>,
        )
        .await
    {
        Ok(a) => a.value,
        Err(ApiError::NotFound { .. }) => BTreeMap::new(),
        Err(e) => return Err(e),
    };

    let branch_protection = match client
        .get(
            &format!("/repos/{owner}/{name}/branches/{r}/protection"),
            decode_protection,
        )
        .await
    {
        Ok(a) => Access::Granted(a.value),
        Err(ApiError::NotFound { message, .. }) if message == "Branch not protected" => {
            Access::Granted(BranchProtection::default())
        }
        Err(ApiError::NotFound { message, .. }) | Err(ApiError::Forbidden { message, .. }) => {
            Access::Denied { reason: message }
        }
        Err(e) => return Err(e),
    };

    let dependabot_alerts = match client
        .get_all(
            &format!("/repos/{owner}/{name}/dependabot/alerts?state=open&per_page=100"),
            decode_alerts,
        )
        .await
    {
        Ok(severities) => {
            let mut c = AlertCounts::default();
            for sev in severities {
                match sev.as_str() {
                    "critical" => c.critical += 1,
                    "high" => c.high += 1,
                    "medium" | "moderate" => c.medium += 1,
                    _ => c.low += 1,
                }
                c.total += 1;
            }
            Access::Granted(c)
        }
        Err(ApiError::NotFound { message, .. }) | Err(ApiError::Forbidden { message, .. }) => {
            Access::Denied { reason: message }
        }
        Err(e) => return Err(e),
    };

    let namespace = team_namespace(&ctx.cfg, owner);
    let teams = match client
        .get_all(
            &format!("/repos/{owner}/{name}/teams?per_page=100"),
            decode_team_access,
        )
        .await
    {
        Ok(access) => {
            let mut teams: Vec<RepoTeam> = access
                .into_iter()
                .map(|t| RepoTeam {
                    group: format!("group:{namespace}/{}", t.slug).to_lowercase(),
                    slug: t.slug,
                    permission: t.permission,
                })
                .collect();
            teams.sort_by(|a, b| a.slug.cmp(&b.slug));
            Access::Granted(RepoTeams { teams })
        }
        Err(ApiError::NotFound { message, .. }) | Err(ApiError::Forbidden { message, .. }) => {
            Access::Denied { reason: message }
        }
        Err(e) => return Err(e),
    };

    Ok(RepositoryFacts {
        host: host.into(),
        owner: owner.into(),
        name: name.into(),
        id: s.id,
        url: repo_url(host, owner, name),
        default_branch: s.default_branch.clone().unwrap_or_else(|| branch.into()),
        branch: branch.into(),
        visibility: s.visibility().into(),
        archived: s.archived,
        fork: s.fork,
        topics: s.topics.clone(),
        primary_language: s.language.clone(),
        languages,
        pushed_at: s.pushed_at,
        files,
        descriptors: descriptors.iter().map(|d| d.location.clone()).collect(),
        branch_protection,
        dependabot_alerts,
        teams,
    })
}

/// The namespace of the Groups the org data makes of an organisation's
/// teams (`org::entities`): `default` with one organisation, else the
/// organisation's name, lower case.
pub fn team_namespace(cfg: &GithubConfig, org: &str) -> String {
    if cfg.organizations.len() > 1 {
        org.to_lowercase()
    } else {
        "default".to_string()
    }
}

/// A team's access to a repository, as `/repos/{owner}/{repo}/teams`
/// lists it (the extract kept with the answer's validator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamAccess {
    pub slug: String,
    /// `pull`, `triage`, `push`, `maintain` or `admin`.
    pub permission: String,
}

pub(crate) fn decode_team_access(body: &[u8]) -> Result<Vec<TeamAccess>, String> {
    #[derive(Deserialize)]
    struct Raw {
        slug: String,
        #[serde(default)]
        permission: Option<String>,
        #[serde(default)]
        permissions: BTreeMap<String, bool>,
    }
    let raw: Vec<Raw> = json(body)?;
    Ok(raw
        .into_iter()
        .map(|t| {
            // `permission` names the role; failing that, the strongest of
            // the `permissions` granted.
            let permission = t.permission.filter(|p| !p.is_empty()).unwrap_or_else(|| {
                ["admin", "maintain", "push", "triage", "pull"]
                    .into_iter()
                    .find(|r| t.permissions.get(*r) == Some(&true))
                    .unwrap_or("pull")
                    .to_string()
            });
            TeamAccess {
                slug: t.slug,
                permission,
            }
        })
        .collect())
}

pub(crate) fn decode_protection(body: &[u8]) -> Result<BranchProtection, String> {
    #[derive(Deserialize)]
    struct Enabled {
        #[serde(default)]
        enabled: bool,
    }
    #[derive(Deserialize)]
    struct Reviews {
        #[serde(default)]
        required_approving_review_count: u32,
        #[serde(default)]
        require_code_owner_reviews: bool,
        #[serde(default)]
        dismiss_stale_reviews: bool,
    }
    #[derive(Deserialize)]
    struct Check {
        context: String,
    }
    #[derive(Deserialize)]
    struct Checks {
        #[serde(default)]
        contexts: Vec<String>,
        #[serde(default)]
        checks: Vec<Check>,
    }
    #[derive(Deserialize)]
    struct Raw {
        required_pull_request_reviews: Option<Reviews>,
        enforce_admins: Option<Enabled>,
        required_status_checks: Option<Checks>,
        allow_force_pushes: Option<Enabled>,
        allow_deletions: Option<Enabled>,
    }
    let r: Raw = json(body)?;
    let mut checks: Vec<String> = r
        .required_status_checks
        .map(|c| {
            c.contexts
                .into_iter()
                .chain(c.checks.into_iter().map(|c| c.context))
                .collect()
        })
        .unwrap_or_default();
    checks.sort();
    checks.dedup();
    let reviews = r.required_pull_request_reviews;
    Ok(BranchProtection {
        protected: true,
        required_reviews: reviews
            .as_ref()
            .map_or(0, |r| r.required_approving_review_count),
        require_code_owner_reviews: reviews
            .as_ref()
            .is_some_and(|r| r.require_code_owner_reviews),
        dismiss_stale_reviews: reviews.as_ref().is_some_and(|r| r.dismiss_stale_reviews),
        enforce_admins: r.enforce_admins.is_some_and(|e| e.enabled),
        required_status_checks: checks,
        allow_force_pushes: r.allow_force_pushes.is_some_and(|e| e.enabled),
        allow_deletions: r.allow_deletions.is_some_and(|e| e.enabled),
    })
}

pub(crate) fn decode_alerts(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Adv {
        severity: Option<String>,
    }
    #[derive(Deserialize)]
    struct Alert {
        security_advisory: Option<Adv>,
        security_vulnerability: Option<Adv>,
    }
    let alerts: Vec<Alert> = json(body)?;
    Ok(alerts
        .into_iter()
        .map(|a| {
            a.security_vulnerability
                .and_then(|v| v.severity)
                .or_else(|| a.security_advisory.and_then(|v| v.severity))
                .unwrap_or_else(|| "low".into())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_bodies_decode_like_github_sends_them() {
        // The contents API wraps base64 every 60 characters.
        let text =
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: payments\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(text);
        let wrapped: Vec<String> = b64
            .as_bytes()
            .chunks(60)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let body = serde_json::json!({
            "type": "file", "encoding": "base64", "size": text.len(),
            "name": "catalog-info.yaml", "path": "catalog-info.yaml",
            "sha": "3d21ec53a331a6f037a91c368710b99387d012c1",
            "content": wrapped.join("\n") + "\n"
        });
        let f = decode_file(body.to_string().as_bytes()).unwrap();
        assert_eq!(f.content, Some(Content::Utf8 { text: text.into() }));
        assert_eq!(f.sha, "3d21ec53a331a6f037a91c368710b99387d012c1");
        assert_eq!(
            fetched_of(f.clone(), 10),
            Fetched::TooLarge {
                size: text.len() as u64,
                limit: 10
            }
        );
        assert!(matches!(fetched_of(f, 1 << 20), Fetched::Present { .. }));
        let dir = serde_json::json!([{"type": "dir", "name": "src", "path": "src"}]);
        let e = decode_file(dir.to_string().as_bytes()).unwrap_err();
        assert!(
            e.contains("invalid type") || e.contains("not a file"),
            "{e}"
        );
    }

    #[test]
    fn protection_reads_the_fields_scorecards_use() {
        let body = br#"{"url":"x","required_status_checks":{"strict":true,"contexts":["ci/build"],"checks":[{"context":"ci/build","app_id":null}]},
          "required_pull_request_reviews":{"dismiss_stale_reviews":true,"require_code_owner_reviews":true,"required_approving_review_count":2},
          "enforce_admins":{"url":"x","enabled":true},"allow_force_pushes":{"enabled":false},"allow_deletions":{"enabled":false}}"#;
        let p = decode_protection(body).unwrap();
        assert_eq!(
            p,
            BranchProtection {
                protected: true,
                required_reviews: 2,
                require_code_owner_reviews: true,
                dismiss_stale_reviews: true,
                enforce_admins: true,
                required_status_checks: vec!["ci/build".into()],
                allow_force_pushes: false,
                allow_deletions: false,
            }
        );
    }

    #[test]
    fn team_access_reads_the_role_or_the_strongest_permission() {
        let body = br#"[{"slug":"payments","name":"Payments","permission":"maintain",
            "permissions":{"pull":true,"triage":true,"push":true,"maintain":true,"admin":false}},
          {"slug":"sre","name":"SRE","permissions":{"pull":true,"triage":true,"push":true,"maintain":false,"admin":false}}]"#;
        assert_eq!(
            decode_team_access(body).unwrap(),
            vec![
                TeamAccess {
                    slug: "payments".into(),
                    permission: "maintain".into()
                },
                TeamAccess {
                    slug: "sre".into(),
                    permission: "push".into()
                },
            ]
        );
    }

    /// A team's Group ref in the facts is the one the org data gives the
    /// team, with one organisation and with several.
    #[test]
    fn team_groups_live_where_the_org_data_puts_them() {
        use super::super::org::{OrgData, Team, entities};
        let team = |slug: &str| Team {
            slug: slug.into(),
            name: slug.into(),
            description: None,
            parent: None,
        };
        let data = |org: &str| OrgData {
            org: org.into(),
            teams: vec![(team("Payments"), vec![])],
            members: vec![],
        };
        let token = std::path::Path::new("/nonexistent/token");
        for orgs in [vec!["Acme"], vec!["Acme", "Acme-Labs"]] {
            let cfg = GithubConfig::new(&orgs, None, token);
            let all: Vec<OrgData> = orgs.iter().map(|o| data(o)).collect();
            let made = entities("github.com", &all, &BTreeMap::new());
            for org in &orgs {
                let ns = team_namespace(&cfg, org);
                let wanted = format!("group:{ns}/payments").to_lowercase();
                let found = made.iter().any(|(location, _, text)| {
                    let e: serde_json::Value = serde_json::from_str(text).unwrap();
                    location.as_str()
                        == format!("github-team:github.com/{org}/payments").to_lowercase()
                        && format!(
                            "group:{}/{}",
                            e["metadata"]["namespace"].as_str().unwrap(),
                            e["metadata"]["name"].as_str().unwrap()
                        )
                        .to_lowercase()
                            == wanted
                });
                assert!(found, "{wanted} among {made:?}");
            }
        }
    }

    #[test]
    fn well_known_files_are_recognised() {
        assert_eq!(file_kind("README.md"), Some("README"));
        assert_eq!(file_kind("readme"), Some("README"));
        assert_eq!(file_kind("LICENSE.txt"), Some("LICENSE"));
        assert_eq!(file_kind("CODEOWNERS"), Some("CODEOWNERS"));
        assert_eq!(file_kind("CODEOWNERS.md"), None);
        assert_eq!(file_kind("SECURITY.md"), Some("SECURITY"));
        assert_eq!(file_kind("main.rs"), None);
        assert_eq!(encode_path("a b/c.yaml"), "a%20b/c.yaml");
    }
}

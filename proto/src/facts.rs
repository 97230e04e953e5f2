//! `catalog.facts.v1`: what a source knows about a subject (a repository,
//! later a cloud resource) that is not an entity: the inputs of scorecards
//! and coverage metrics.
//!
//! Key: the [`SubjectKey`]. Like observations, the topic is a snapshot: a
//! subject's latest message is what its source knows about it now, and a
//! subject that left a complete listing gets [`FactState::Removed`].

use crate::envelope::Versioned;
use crate::refs::{LocationKey, SourceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// What facts are about: `github:github.com/acme/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectKey(String);

impl SubjectKey {
    pub fn new(s: impl Into<String>) -> Self {
        SubjectKey(s.into())
    }
    /// The key of a GitHub repository: `github:{host}/{owner}/{name}`,
    /// lowercased as GitHub matches names without regard to case.
    pub fn github_repository(host: &str, owner: &str, name: &str) -> Self {
        SubjectKey(format!("github:{host}/{owner}/{name}").to_lowercase())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message of `catalog.facts.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactEvent {
    pub event_id: Uuid,
    pub source: SourceId,
    pub observed_at: DateTime<Utc>,
    pub subject: SubjectKey,
    pub state: FactState,
}

impl Versioned for FactEvent {
    const SCHEMA: &'static str = "catalog.fact-event";
    const VERSION: u32 = 1;
}

/// What is known about a subject now.
// Messages are handled one at a time; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FactState {
    Present {
        facts: Facts,
    },
    /// The subject is gone from a complete listing of its source.
    Removed,
}

/// The facts, by kind of subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Facts {
    GithubRepository(RepositoryFacts),
    /// A resource of a cloud provider (AWS, GCP, Azure). Its subject key
    /// is its location key (`aws:{account}/{region}/{arn}`), so the entity
    /// made of it links to it through `backstage.io/managed-by-location`.
    CloudResource(CloudResourceFacts),
}

/// What a cloud source read about one resource. Fields a provider or a
/// resource type does not have, or that the source's credentials may not
/// read, are absent (`None`): a check of them is then unknown, not failed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloudResourceFacts {
    /// `aws`, `gcp` or `azure`.
    pub provider: String,
    /// The AWS account, GCP project or Azure subscription.
    pub account: String,
    /// The region (or location) the resource lives in, if it has one.
    pub region: Option<String>,
    /// The provider's service (`rds`, `s3`, `compute.googleapis.com`,
    /// `microsoft.storage`).
    pub service: String,
    /// The resource type within the service (`db`, `bucket`, `Instance`,
    /// `storageaccounts`).
    pub resource_type: String,
    /// The provider's id: ARN, full resource name, resource id.
    pub id: String,
    /// Tags (AWS, Azure) or labels (GCP), as read.
    pub tags: BTreeMap<String, String>,
    /// Encrypted at rest.
    pub encrypted: Option<bool>,
    /// Reachable from the internet (public access not blocked, a public
    /// endpoint or address).
    pub public: Option<bool>,
    /// Automated backups (or point-in-time recovery) on.
    pub backups: Option<bool>,
    /// A function's runtime (`python3.12`, `nodejs20.x`).
    pub runtime: Option<String>,
    /// A database's or cluster's engine (`postgres`, `kubernetes`).
    pub engine: Option<String>,
    /// Its version.
    pub engine_version: Option<String>,
    /// The provider's state of the resource (`running`, `available`).
    pub status: Option<String>,
}

/// Facts about one GitHub repository, read from its default (or the
/// configured) branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryFacts {
    /// `github.com`, or the host of a GitHub Enterprise Server.
    pub host: String,
    pub owner: String,
    pub name: String,
    /// GitHub's numeric id: stable across renames and transfers.
    pub id: u64,
    /// `https://{host}/{owner}/{name}`.
    pub url: String,
    pub default_branch: String,
    /// The branch descriptors and files were read from.
    pub branch: String,
    /// `public`, `private` or `internal`.
    pub visibility: String,
    pub archived: bool,
    pub fork: bool,
    pub topics: Vec<String>,
    /// GitHub's primary language of the repository, if it has one.
    pub primary_language: Option<String>,
    /// Bytes of code per language, as GitHub counts them.
    pub languages: BTreeMap<String, u64>,
    pub pushed_at: Option<DateTime<Utc>>,
    /// Well-known files that exist, by kind (`README`, `CODEOWNERS`,
    /// `LICENSE`, `SECURITY`), with the path where each was found.
    pub files: BTreeMap<String, String>,
    /// The catalog descriptors of the repository (empty: not in the
    /// catalog; that is what coverage metrics count).
    pub descriptors: Vec<LocationKey>,
    pub branch_protection: Access<BranchProtection>,
    pub dependabot_alerts: Access<AlertCounts>,
    /// The GitHub teams with access to the repository and their
    /// permission. Facts written before this field was read carry
    /// [`teams_not_read`] when decoded.
    #[serde(default = "teams_not_read")]
    pub teams: Access<RepoTeams>,
}

/// The value of [`RepositoryFacts::teams`] in facts that predate it.
pub fn teams_not_read() -> Access<RepoTeams> {
    Access::Denied {
        reason: "not read by this version".into(),
    }
}

/// A fact the source's credentials may or may not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "access", rename_all = "snake_case")]
pub enum Access<T> {
    /// Read; the value's fields sit beside `access`.
    Granted(T),
    /// The credentials may not read it (or the feature is off).
    Denied { reason: String },
}

/// Protection of the branch the catalog reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BranchProtection {
    pub protected: bool,
    /// Approving reviews required before a merge (0: none).
    pub required_reviews: u32,
    pub require_code_owner_reviews: bool,
    pub dismiss_stale_reviews: bool,
    pub enforce_admins: bool,
    pub required_status_checks: Vec<String>,
    pub allow_force_pushes: bool,
    pub allow_deletions: bool,
}

/// The teams with access to a repository (a struct, not a bare list, as
/// [`Access`] puts its fields beside `access`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RepoTeams {
    pub teams: Vec<RepoTeam>,
}

/// One team's access to a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoTeam {
    /// The team's slug in its organisation.
    pub slug: String,
    /// GitHub's role of the team on the repository: `pull`, `triage`,
    /// `push`, `maintain` or `admin`.
    pub permission: String,
    /// The catalog `Group` the GitHub source makes of the team
    /// (`group:default/payments`), lower case.
    pub group: String,
}

/// Open Dependabot alerts by severity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub total: u32,
}

//! Verification and parsing of GitHub webhook deliveries.
//!
//! A delivery is an HTTP POST whose `X-GitHub-Event` header names the event,
//! whose body is the JSON payload, and whose `X-Hub-Signature-256` header is
//! `sha256=` followed by the hex HMAC-SHA256 of the raw body under the
//! webhook's secret. [`verify_signature`] checks that header in constant
//! time; only a body that passed it should reach [`parse`].
//!
//! [`parse`] turns the deliveries the catalog cares about (pushes to
//! branches, repository life-cycle changes, teams, team memberships,
//! organization membership, pings) into typed [`Delivery`] values that name
//! what must be re-read from GitHub; every other event or action becomes
//! [`Delivery::Ignored`]. A delivery is a hint, not the state: it describes
//! the moment GitHub queued it, deliveries can arrive late, twice or out of
//! order, so the caller re-reads what a delivery names instead of trusting
//! the payload's contents.
//!
//! This module is pure: it does no I/O, does not call GitHub and emits
//! nothing itself. It expects the `application/json` content type (the
//! form-encoded one wraps the JSON in a `payload` field, which the caller
//! would have to unwrap first).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use std::collections::BTreeSet;

/// What precedes the hex digest in an `X-Hub-Signature-256` value.
const SIGNATURE_PREFIX: &str = "sha256=";

/// The ref prefix of branches; other refs (tags, notes, ...) are ignored.
const BRANCH_REF_PREFIX: &str = "refs/heads/";

/// GitHub caps the commit list of some push payloads at this many entries,
/// so a list this long may have lost commits.
const PUSH_COMMIT_CAP: usize = 20;

/// Why an `X-Hub-Signature-256` header does not vouch for a body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the payload")]
    Mismatch,
}

/// Checks that `header` (the `X-Hub-Signature-256` value, if the request had
/// one) is `sha256=<hex>` with `<hex>` the HMAC-SHA256 of `body` under
/// `secret`.
///
/// The digest comparison is constant-time (hmac's `verify_slice`), so the
/// time taken does not tell an attacker how much of a forged digest was
/// right. Hex digits may be of either case. `body` must be the raw bytes as
/// received, before any decoding or re-serialisation.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let digits = header
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(SignatureError::Malformed)?;
    let mut claimed = [0u8; 32];
    // Fails unless `digits` is exactly 64 hex digits.
    hex::decode_to_slice(digits, &mut claimed).map_err(|_| SignatureError::Malformed)?;
    keyed_mac(secret, body)
        .verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value GitHub would send for `body` under
/// `secret` (lower-case hex), for tests and tools that forge deliveries.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let digest = keyed_mac(secret, body).finalize().into_bytes();
    format!("{SIGNATURE_PREFIX}{}", hex::encode(digest))
}

/// An HMAC-SHA256 under `secret` that has absorbed `body`.
fn keyed_mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    // HMAC hashes long keys and pads short ones: no key length is invalid.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(body);
    mac
}

/// Why the payload of an event the catalog acts on could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The body is not JSON, or a field has the wrong JSON type.
    #[error(
        "payload of a {event} event is not valid JSON at line {line} column {column}: {message}"
    )]
    Json {
        event: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A field the delivery needs is absent or null; `field` is its dotted
    /// path from the payload's root, e.g. `repository.owner.login`.
    #[error("payload of a {event} event lacks {field}")]
    Missing { event: String, field: &'static str },
}

/// The repository a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// GitHub's numeric id, stable across renames and transfers.
    pub id: u64,
    /// The owning user's or organization's login (`repository.owner.login`).
    pub owner: String,
    pub name: String,
    pub default_branch: String,
}

/// What a delivery asks the catalog to look at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// GitHub checking the webhook after it was set up.
    Ping { zen: Option<String> },
    /// A push to a branch (`ref` = `refs/heads/<branch>`), including one that
    /// creates, force-moves or deletes the branch. Pushes of tags and other
    /// refs are [`Delivery::Ignored`].
    Push {
        repo: RepoRef,
        branch: String,
        /// The union of the added, modified and removed paths of every
        /// listed commit and of `head_commit`, sorted and deduplicated.
        paths: Vec<String>,
        /// `paths` may not cover everything the push changed, so the caller
        /// must re-read the branch: the commit list may have been truncated
        /// (absent, 20 or more entries, or fewer than a `size` field
        /// counts), a commit's file lists are absent or all empty (GitHub
        /// leaves them empty for commits too large to diff in time), or the
        /// push created, deleted or force-moved the branch (the commits then
        /// do not describe the difference from what the catalog knew).
        paths_incomplete: bool,
    },
    /// A repository was created, deleted, archived, renamed, transferred,
    /// ...; `repo` is its state after the change.
    Repository {
        action: RepositoryAction,
        repo: RepoRef,
    },
    /// A team was created, deleted or edited, or gained or lost access to a
    /// repository. `org` is `organization.login`, `slug` is `team.slug`.
    Team {
        action: String,
        org: String,
        slug: String,
    },
    /// A user was `added` to or `removed` from a team.
    Membership {
        action: String,
        org: String,
        /// The team's slug.
        team: String,
        /// The member's login.
        login: String,
    },
    /// An organization member was added, removed or invited, or the
    /// organization was renamed or deleted. `org` is `organization.login`
    /// (after a rename, the new login).
    Organization {
        action: String,
        org: String,
        /// The member concerned: `membership.user.login`, or for an
        /// invitation `user.login`; `None` when the payload names nobody
        /// (renames, deletions, invitations by e-mail address).
        login: Option<String>,
    },
    /// An event, or an action of an event, the catalog does not act on.
    Ignored {
        /// The `X-GitHub-Event` value.
        event: String,
        /// The payload's `action`, if it has one.
        action: Option<String>,
    },
}

/// The `action` of a `repository` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryAction {
    Created,
    Deleted,
    Archived,
    Unarchived,
    /// Renamed; `from` is the previous name (`changes.repository.name.from`).
    Renamed {
        from: String,
    },
    /// Moved to another owner; `from_owner` is the previous owner's login
    /// when the payload names it.
    Transferred {
        from_owner: Option<String>,
    },
    Publicized,
    Privatized,
    Edited,
    /// An action this module does not know by name.
    Other(String),
}

/// Reads the payload of a delivery of the event `event` (the
/// `X-GitHub-Event` header).
///
/// Events the catalog does not act on become `Ok(Delivery::Ignored)`
/// whatever their body holds (their `action` is picked up if the body
/// allows it). For the events it does act on (`ping`, `push`,
/// `repository`, `team`, `membership`, `organization`), a body that is not
/// JSON, or has a needed field of the wrong type, is a
/// [`PayloadError::Json`], and a needed field that is absent or null a
/// [`PayloadError::Missing`] naming that field's path. Fields not needed
/// are not looked at.
pub fn parse(event: &str, body: &[u8]) -> Result<Delivery, PayloadError> {
    match event {
        "ping" => parse_ping(body),
        "push" => parse_push(body),
        "repository" => parse_repository(body),
        "team" => parse_team(body),
        "membership" => parse_membership(body),
        "organization" => parse_organization(body),
        _ => Ok(ignored(event, action_if_any(body))),
    }
}

/// A user or organization as payloads embed them.
#[derive(Deserialize)]
struct AccountPayload {
    login: Option<String>,
}

/// The parts of a payload's `repository` object that make a [`RepoRef`].
#[derive(Deserialize)]
struct RepositoryPayload {
    id: Option<u64>,
    name: Option<String>,
    owner: Option<AccountPayload>,
    default_branch: Option<String>,
}

/// A team as `team` and `membership` payloads embed it.
#[derive(Deserialize)]
struct TeamPayload {
    slug: Option<String>,
    /// Set (and `slug` absent) when the team no longer exists.
    deleted: Option<bool>,
}

/// `{ "from": ... }`, GitHub's shape for a previous value in `changes`.
#[derive(Deserialize)]
struct PreviousValue<T> {
    from: Option<T>,
}

#[derive(Deserialize)]
struct PingPayload {
    zen: Option<String>,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    created: Option<bool>,
    deleted: Option<bool>,
    forced: Option<bool>,
    commits: Option<Vec<CommitPayload>>,
    head_commit: Option<CommitPayload>,
    /// Only in payloads whose commit list may be capped (the events API);
    /// webhook deliveries usually lack it.
    size: Option<usize>,
    repository: Option<RepositoryPayload>,
}

#[derive(Deserialize)]
struct CommitPayload {
    added: Option<Vec<String>>,
    modified: Option<Vec<String>>,
    removed: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RepositoryEventPayload {
    action: Option<String>,
    repository: Option<RepositoryPayload>,
    changes: Option<RepositoryChanges>,
}

#[derive(Deserialize)]
struct RepositoryChanges {
    /// `renamed`: `{ "name": { "from": <old name> } }`.
    repository: Option<RenamedRepository>,
    /// `transferred`: `{ "from": { "user" | "organization": <account> } }`.
    owner: Option<PreviousValue<PreviousOwner>>,
}

#[derive(Deserialize)]
struct RenamedRepository {
    name: Option<PreviousValue<String>>,
}

#[derive(Deserialize)]
struct PreviousOwner {
    user: Option<AccountPayload>,
    organization: Option<AccountPayload>,
}

#[derive(Deserialize)]
struct TeamEventPayload {
    action: Option<String>,
    team: Option<TeamPayload>,
    organization: Option<AccountPayload>,
}

#[derive(Deserialize)]
struct MembershipEventPayload {
    action: Option<String>,
    scope: Option<String>,
    member: Option<AccountPayload>,
    team: Option<TeamPayload>,
    organization: Option<AccountPayload>,
}

#[derive(Deserialize)]
struct OrganizationEventPayload {
    action: Option<String>,
    organization: Option<AccountPayload>,
    membership: Option<OrganizationMembership>,
    /// The invitee of `member_invited`, when they have an account.
    user: Option<AccountPayload>,
}

#[derive(Deserialize)]
struct OrganizationMembership {
    user: Option<AccountPayload>,
}

/// Just the `action` of a payload of an event this module does not know.
#[derive(Deserialize)]
struct ActionOnly {
    action: Option<String>,
}

fn parse_ping(body: &[u8]) -> Result<Delivery, PayloadError> {
    let payload: PingPayload = decode("ping", body)?;
    Ok(Delivery::Ping { zen: payload.zen })
}

fn parse_push(body: &[u8]) -> Result<Delivery, PayloadError> {
    const EVENT: &str = "push";
    let payload: PushPayload = decode(EVENT, body)?;
    let git_ref = required(payload.git_ref, EVENT, "ref")?;
    let Some(branch) = git_ref.strip_prefix(BRANCH_REF_PREFIX) else {
        return Ok(ignored(EVENT, None));
    };
    let repo = repo_ref(payload.repository, EVENT)?;

    let moved = [payload.created, payload.deleted, payload.forced]
        .into_iter()
        .any(|flag| flag == Some(true));
    let commits = payload.commits;
    let truncated = match &commits {
        None => true,
        Some(list) => {
            list.is_empty()
                || list.len() >= PUSH_COMMIT_CAP
                || payload.size.is_some_and(|size| size > list.len())
        }
    };
    let mut paths = BTreeSet::new();
    let mut undiffed = false;
    for commit in commits.into_iter().flatten().chain(payload.head_commit) {
        undiffed |= !commit.collect_paths(&mut paths);
    }

    Ok(Delivery::Push {
        repo,
        branch: branch.to_owned(),
        paths: paths.into_iter().collect(),
        paths_incomplete: moved || truncated || undiffed,
    })
}

impl CommitPayload {
    /// Adds the commit's paths to `into`; false when its file lists are
    /// absent or all empty, i.e. when they may not tell what it changed.
    fn collect_paths(self, into: &mut BTreeSet<String>) -> bool {
        let mut complete = true;
        let mut any = false;
        for list in [self.added, self.modified, self.removed] {
            match list {
                None => complete = false,
                Some(list) => {
                    any |= !list.is_empty();
                    into.extend(list);
                }
            }
        }
        complete && any
    }
}

fn parse_repository(body: &[u8]) -> Result<Delivery, PayloadError> {
    const EVENT: &str = "repository";
    let payload: RepositoryEventPayload = decode(EVENT, body)?;
    let action = required(payload.action, EVENT, "action")?;
    let repo = repo_ref(payload.repository, EVENT)?;
    let changes = payload.changes;
    let action = match action.as_str() {
        "created" => RepositoryAction::Created,
        "deleted" => RepositoryAction::Deleted,
        "archived" => RepositoryAction::Archived,
        "unarchived" => RepositoryAction::Unarchived,
        "publicized" => RepositoryAction::Publicized,
        "privatized" => RepositoryAction::Privatized,
        "edited" => RepositoryAction::Edited,
        "renamed" => {
            let from = changes
                .and_then(|changes| changes.repository)
                .and_then(|repository| repository.name)
                .and_then(|name| name.from);
            RepositoryAction::Renamed {
                from: required(from, EVENT, "changes.repository.name.from")?,
            }
        }
        "transferred" => {
            let from = changes
                .and_then(|changes| changes.owner)
                .and_then(|owner| owner.from);
            let from_owner = from.and_then(|from| {
                from.user
                    .and_then(|user| user.login)
                    .or_else(|| from.organization.and_then(|org| org.login))
            });
            RepositoryAction::Transferred { from_owner }
        }
        _ => RepositoryAction::Other(action),
    };
    Ok(Delivery::Repository { action, repo })
}

fn parse_team(body: &[u8]) -> Result<Delivery, PayloadError> {
    const EVENT: &str = "team";
    const ACTED_ON: [&str; 5] = [
        "created",
        "deleted",
        "edited",
        "added_to_repository",
        "removed_from_repository",
    ];
    let payload: TeamEventPayload = decode(EVENT, body)?;
    let action = required(payload.action, EVENT, "action")?;
    if !ACTED_ON.contains(&action.as_str()) {
        return Ok(ignored(EVENT, Some(action)));
    }
    let org = required(payload.organization, EVENT, "organization")?;
    let team = required(payload.team, EVENT, "team")?;
    Ok(Delivery::Team {
        action,
        org: required(org.login, EVENT, "organization.login")?,
        slug: required(team.slug, EVENT, "team.slug")?,
    })
}

fn parse_membership(body: &[u8]) -> Result<Delivery, PayloadError> {
    const EVENT: &str = "membership";
    let payload: MembershipEventPayload = decode(EVENT, body)?;
    let action = required(payload.action, EVENT, "action")?;
    let team_scope = payload.scope.as_deref().is_none_or(|scope| scope == "team");
    if !matches!(action.as_str(), "added" | "removed") || !team_scope {
        return Ok(ignored(EVENT, Some(action)));
    }
    let org = required(payload.organization, EVENT, "organization")?;
    let team = required(payload.team, EVENT, "team")?;
    if team.slug.is_none() && team.deleted == Some(true) {
        // GitHub names a deleted team only by id and name; its own `team`
        // `deleted` delivery is what tells the catalog about it.
        return Ok(ignored(EVENT, Some(action)));
    }
    let member = required(payload.member, EVENT, "member")?;
    Ok(Delivery::Membership {
        action,
        org: required(org.login, EVENT, "organization.login")?,
        team: required(team.slug, EVENT, "team.slug")?,
        login: required(member.login, EVENT, "member.login")?,
    })
}

fn parse_organization(body: &[u8]) -> Result<Delivery, PayloadError> {
    const EVENT: &str = "organization";
    const ACTED_ON: [&str; 5] = [
        "member_added",
        "member_removed",
        "member_invited",
        "renamed",
        "deleted",
    ];
    let payload: OrganizationEventPayload = decode(EVENT, body)?;
    let action = required(payload.action, EVENT, "action")?;
    if !ACTED_ON.contains(&action.as_str()) {
        return Ok(ignored(EVENT, Some(action)));
    }
    let org = required(payload.organization, EVENT, "organization")?;
    let login = payload
        .membership
        .and_then(|membership| membership.user)
        .or(payload.user)
        .and_then(|user| user.login);
    Ok(Delivery::Organization {
        action,
        org: required(org.login, EVENT, "organization.login")?,
        login,
    })
}

/// The [`RepoRef`] of a payload's `repository` object.
fn repo_ref(repository: Option<RepositoryPayload>, event: &str) -> Result<RepoRef, PayloadError> {
    let repository = required(repository, event, "repository")?;
    let owner = required(repository.owner, event, "repository.owner")?;
    Ok(RepoRef {
        id: required(repository.id, event, "repository.id")?,
        owner: required(owner.login, event, "repository.owner.login")?,
        name: required(repository.name, event, "repository.name")?,
        default_branch: required(
            repository.default_branch,
            event,
            "repository.default_branch",
        )?,
    })
}

/// Deserializes the payload of an `event` delivery.
fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(body).map_err(|err| {
        let (line, column) = (err.line(), err.column());
        // serde_json appends the position, which the error carries apart.
        let text = err.to_string();
        let position = format!(" at line {line} column {column}");
        let message = text.strip_suffix(&position).unwrap_or(&text).to_owned();
        PayloadError::Json {
            event: event.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// `value`, or the error naming `field` as absent from an `event` payload.
fn required<T>(value: Option<T>, event: &str, field: &'static str) -> Result<T, PayloadError> {
    value.ok_or_else(|| PayloadError::Missing {
        event: event.to_owned(),
        field,
    })
}

/// The `action` of a payload nobody validated; `None` when there is none
/// or the body is not a JSON object.
fn action_if_any(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ActionOnly>(body)
        .ok()
        .and_then(|payload| payload.action)
}

fn ignored(event: &str, action: Option<String>) -> Delivery {
    Delivery::Ignored {
        event: event.to_owned(),
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- signatures -------------------------------------------------------

    /// The example GitHub's documentation gives for checking an
    /// implementation of the signature.
    const DOC_SECRET: &[u8] = b"It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn sign_matches_the_documented_example() {
        assert_eq!(sign(DOC_SECRET, DOC_BODY), DOC_SIGNATURE);
    }

    #[test]
    fn a_good_signature_passes() {
        assert_eq!(
            verify_signature(DOC_SECRET, DOC_BODY, Some(DOC_SIGNATURE)),
            Ok(())
        );
        let upper = format!("sha256={}", DOC_SIGNATURE["sha256=".len()..].to_uppercase());
        assert_eq!(verify_signature(DOC_SECRET, DOC_BODY, Some(&upper)), Ok(()));
    }

    #[test]
    fn sign_round_trips() {
        for (secret, body) in [
            (&b"s3cr3t"[..], PING.as_bytes()),
            (b"", b""),
            (&[0xffu8; 200][..], PUSH_TO_BRANCH.as_bytes()),
        ] {
            let header = sign(secret, body);
            assert!(header.starts_with("sha256="));
            assert_eq!(header.len(), "sha256=".len() + 64);
            assert_eq!(verify_signature(secret, body, Some(&header)), Ok(()));
        }
    }

    #[test]
    fn wrong_secret_or_tampered_body_is_a_mismatch() {
        assert_eq!(
            verify_signature(b"It's a secret to everybody", DOC_BODY, Some(DOC_SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(DOC_SECRET, b"Hello, World?", Some(DOC_SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(DOC_SECRET, b"Hello, World!\n", Some(DOC_SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = DOC_SIGNATURE.to_owned();
        flipped.replace_range(flipped.len() - 1.., "6");
        assert_eq!(
            verify_signature(DOC_SECRET, DOC_BODY, Some(&flipped)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_missing_header_is_missing() {
        assert_eq!(
            verify_signature(DOC_SECRET, DOC_BODY, None),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn malformed_headers_are_malformed() {
        let digits = &DOC_SIGNATURE["sha256=".len()..];
        let no_prefix = digits.to_owned();
        let sha1_prefix = format!("sha1={digits}");
        let upper_prefix = format!("SHA256={digits}");
        let bad_hex = format!("sha256=zz{}", &digits[2..]);
        let short = format!("sha256={}", &digits[..62]);
        let long = format!("sha256={digits}00");
        let padded = format!(" sha256={digits}");
        for header in [
            "",
            "sha256=",
            no_prefix.as_str(),
            &sha1_prefix,
            &upper_prefix,
            &bad_hex,
            &short,
            &long,
            &padded,
        ] {
            assert_eq!(
                verify_signature(DOC_SECRET, DOC_BODY, Some(header)),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }

    // --- payloads, in the shape GitHub sends them (trimmed) ---------------

    const PING: &str = r#"{
  "zen": "Keep it logically awesome.",
  "hook_id": 4242,
  "hook": {"type": "Organization", "id": 4242, "name": "web", "active": true,
           "events": ["push", "repository"], "config": {"content_type": "json", "insecure_ssl": "0"}},
  "organization": {"login": "acme", "id": 9001},
  "sender": {"login": "alice", "id": 11, "type": "User"}
}"#;

    const PUSH_TO_BRANCH: &str = r#"{
  "ref": "refs/heads/main",
  "before": "9c0d3e2a4b1f5e6d7c8b9a0f1e2d3c4b5a697887",
  "after": "1f2e3d4c5b6a79880099aabbccddeeff00112233",
  "repository": {
    "id": 186853002,
    "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
    "name": "payments",
    "full_name": "acme/payments",
    "private": true,
    "owner": {"name": "acme", "email": null, "login": "acme", "id": 9001, "type": "Organization"},
    "default_branch": "main",
    "master_branch": "main",
    "archived": false
  },
  "pusher": {"name": "alice", "email": "alice@example.com"},
  "sender": {"login": "alice", "id": 11, "type": "User"},
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/acme/payments/compare/9c0d3e2a4b1f...1f2e3d4c5b6a",
  "commits": [
    {
      "id": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
      "tree_id": "aa1b2c3d4e5f60718293a4b5c6d7e8f901234567",
      "distinct": true,
      "message": "Describe the service",
      "timestamp": "2024-05-02T10:00:00+02:00",
      "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
      "committer": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
      "added": ["catalog-info.yaml"],
      "removed": [],
      "modified": ["README.md"]
    },
    {
      "id": "1f2e3d4c5b6a79880099aabbccddeeff00112233",
      "tree_id": "bb2e3d4c5b6a79880099aabbccddeeff00112233",
      "distinct": true,
      "message": "Drop the old descriptor",
      "timestamp": "2024-05-02T10:05:00+02:00",
      "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
      "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
      "added": [],
      "removed": ["docs/old-catalog.yaml"],
      "modified": ["README.md", "api/openapi.yaml"]
    }
  ],
  "head_commit": {
    "id": "1f2e3d4c5b6a79880099aabbccddeeff00112233",
    "tree_id": "bb2e3d4c5b6a79880099aabbccddeeff00112233",
    "distinct": true,
    "message": "Drop the old descriptor",
    "timestamp": "2024-05-02T10:05:00+02:00",
    "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
    "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
    "added": [],
    "removed": ["docs/old-catalog.yaml"],
    "modified": ["README.md", "api/openapi.yaml"]
  }
}"#;

    const PUSH_OF_TAG: &str = r#"{
  "ref": "refs/tags/v1.4.0",
  "before": "0000000000000000000000000000000000000000",
  "after": "1f2e3d4c5b6a79880099aabbccddeeff00112233",
  "repository": {"id": 186853002, "name": "payments", "full_name": "acme/payments",
                 "owner": {"name": "acme", "login": "acme", "id": 9001}, "default_branch": "main"},
  "pusher": {"name": "alice", "email": "alice@example.com"},
  "sender": {"login": "alice", "id": 11},
  "created": true,
  "deleted": false,
  "forced": false,
  "base_ref": "refs/heads/main",
  "compare": "https://github.com/acme/payments/compare/v1.4.0",
  "commits": [],
  "head_commit": {"id": "1f2e3d4c5b6a79880099aabbccddeeff00112233", "distinct": true,
                  "message": "Drop the old descriptor", "added": [], "removed": ["docs/old-catalog.yaml"],
                  "modified": ["README.md"]}
}"#;

    const PUSH_DELETING_BRANCH: &str = r#"{
  "ref": "refs/heads/main",
  "before": "1f2e3d4c5b6a79880099aabbccddeeff00112233",
  "after": "0000000000000000000000000000000000000000",
  "repository": {"id": 186853002, "name": "payments", "full_name": "acme/payments",
                 "owner": {"name": "acme", "login": "acme", "id": 9001}, "default_branch": "main"},
  "pusher": {"name": "alice", "email": "alice@example.com"},
  "sender": {"login": "alice", "id": 11},
  "created": false,
  "deleted": true,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/acme/payments/compare/1f2e3d4c5b6a...000000000000",
  "commits": [],
  "head_commit": null
}"#;

    /// `repository` deliveries share everything but `action` and `changes`.
    fn repository_event(action: &str, changes: &str) -> String {
        let repository = r#"{
    "id": 186853261,
    "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMyNjE=",
    "name": "ledger",
    "full_name": "acme/ledger",
    "private": false,
    "owner": {"login": "acme", "id": 9001, "type": "Organization", "site_admin": false},
    "fork": false,
    "default_branch": "trunk",
    "archived": false,
    "visibility": "public"
  }"#;
        format!(
            r#"{{
  "action": "{action}",
  {changes}
  "repository": {repository},
  "organization": {{"login": "acme", "id": 9001}},
  "sender": {{"login": "alice", "id": 11, "type": "User"}}
}}"#
        )
    }

    const TEAM_CREATED: &str = r#"{
  "action": "created",
  "team": {"name": "Platform Ops", "id": 3253328, "node_id": "MDQ6VGVhbTMyNTMzMjg=",
           "slug": "platform-ops", "description": null, "privacy": "closed",
           "notification_setting": "notifications_enabled", "permission": "pull", "parent": null},
  "organization": {"login": "acme", "id": 9001, "description": ""},
  "sender": {"login": "alice", "id": 11, "type": "User"}
}"#;

    const MEMBERSHIP_ADDED: &str = r#"{
  "action": "added",
  "scope": "team",
  "member": {"login": "bob", "id": 12, "type": "User", "site_admin": false},
  "sender": {"login": "alice", "id": 11, "type": "User"},
  "team": {"name": "Platform Ops", "id": 3253328, "slug": "platform-ops", "privacy": "closed",
           "permission": "pull"},
  "organization": {"login": "acme", "id": 9001}
}"#;

    const MEMBERSHIP_REMOVED_WITH_TEAM: &str = r#"{
  "action": "removed",
  "scope": "team",
  "member": {"login": "bob", "id": 12, "type": "User"},
  "sender": {"login": "alice", "id": 11, "type": "User"},
  "team": {"id": 3253328, "name": "Platform Ops", "deleted": true},
  "organization": {"login": "acme", "id": 9001}
}"#;

    const ORGANIZATION_MEMBER_ADDED: &str = r#"{
  "action": "member_added",
  "membership": {"state": "active", "role": "member",
                 "user": {"login": "carol", "id": 13, "type": "User"}},
  "organization": {"login": "acme", "id": 9001},
  "sender": {"login": "alice", "id": 11, "type": "User"}
}"#;

    const ORGANIZATION_MEMBER_INVITED: &str = r#"{
  "action": "member_invited",
  "invitation": {"id": 39652351, "login": "dave", "email": null, "role": "direct_member",
                 "inviter": {"login": "alice", "id": 11}, "team_count": 0},
  "user": {"login": "dave", "id": 14, "type": "User"},
  "organization": {"login": "acme", "id": 9001},
  "sender": {"login": "alice", "id": 11, "type": "User"}
}"#;

    const ORGANIZATION_RENAMED: &str = r#"{
  "action": "renamed",
  "changes": {"login": {"from": "acme-old"}},
  "organization": {"login": "acme", "id": 9001},
  "sender": {"login": "alice", "id": 11, "type": "User"}
}"#;

    const STAR_CREATED: &str = r#"{
  "action": "created",
  "starred_at": "2024-05-02T10:00:00Z",
  "repository": {"id": 186853002, "name": "payments"},
  "sender": {"login": "erin", "id": 15}
}"#;

    fn payments() -> RepoRef {
        RepoRef {
            id: 186853002,
            owner: "acme".to_owned(),
            name: "payments".to_owned(),
            default_branch: "main".to_owned(),
        }
    }

    fn ledger() -> RepoRef {
        RepoRef {
            id: 186853261,
            owner: "acme".to_owned(),
            name: "ledger".to_owned(),
            default_branch: "trunk".to_owned(),
        }
    }

    /// `PUSH_TO_BRANCH` with its fields edited (tests only; the module
    /// itself reads typed payloads).
    fn edited_push(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut value: serde_json::Value = serde_json::from_str(PUSH_TO_BRANCH).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    fn push_parts(delivery: Delivery) -> (RepoRef, String, Vec<String>, bool) {
        match delivery {
            Delivery::Push {
                repo,
                branch,
                paths,
                paths_incomplete,
            } => (repo, branch, paths, paths_incomplete),
            other => panic!("not a push: {other:?}"),
        }
    }

    // --- ping, unknown events ---------------------------------------------

    #[test]
    fn ping_carries_the_zen() {
        assert_eq!(
            parse("ping", PING.as_bytes()).unwrap(),
            Delivery::Ping {
                zen: Some("Keep it logically awesome.".to_owned())
            }
        );
        assert_eq!(
            parse("ping", br#"{"hook_id": 1}"#).unwrap(),
            Delivery::Ping { zen: None }
        );
    }

    #[test]
    fn unknown_events_are_ignored_whatever_their_body() {
        assert_eq!(
            parse("star", STAR_CREATED.as_bytes()).unwrap(),
            Delivery::Ignored {
                event: "star".to_owned(),
                action: Some("created".to_owned())
            }
        );
        assert_eq!(
            parse("fork", b"not json at all").unwrap(),
            Delivery::Ignored {
                event: "fork".to_owned(),
                action: None
            }
        );
    }

    // --- push ---------------------------------------------------------------

    #[test]
    fn a_branch_push_names_the_union_of_its_paths() {
        let (repo, branch, paths, incomplete) =
            push_parts(parse("push", PUSH_TO_BRANCH.as_bytes()).unwrap());
        assert_eq!(repo, payments());
        assert_eq!(branch, "main");
        assert_eq!(
            paths,
            [
                "README.md",
                "api/openapi.yaml",
                "catalog-info.yaml",
                "docs/old-catalog.yaml"
            ]
        );
        assert!(!incomplete);
    }

    #[test]
    fn head_commit_paths_count_too() {
        let body = edited_push(|push| {
            push["commits"] = serde_json::json!([]);
            push["head_commit"]["added"] = serde_json::json!(["services/new.yaml"]);
        });
        let (_, _, paths, incomplete) = push_parts(parse("push", &body).unwrap());
        assert_eq!(
            paths,
            [
                "README.md",
                "api/openapi.yaml",
                "docs/old-catalog.yaml",
                "services/new.yaml"
            ]
        );
        // No listed commits on an existing branch: the list cannot be trusted.
        assert!(incomplete);
    }

    #[test]
    fn a_tag_push_is_ignored() {
        assert_eq!(
            parse("push", PUSH_OF_TAG.as_bytes()).unwrap(),
            Delivery::Ignored {
                event: "push".to_owned(),
                action: None
            }
        );
    }

    #[test]
    fn twenty_or_more_commits_make_the_paths_incomplete() {
        let with_commits = |count: usize| {
            edited_push(|push| {
                let commit = push["commits"][0].clone();
                push["commits"] = serde_json::Value::Array(vec![commit; count]);
            })
        };
        let (_, _, paths, incomplete) = push_parts(parse("push", &with_commits(19)).unwrap());
        assert!(!incomplete);
        assert!(paths.contains(&"catalog-info.yaml".to_owned()));
        for count in [20, 21, 40] {
            let (_, _, _, incomplete) = push_parts(parse("push", &with_commits(count)).unwrap());
            assert!(incomplete, "{count} commits");
        }
    }

    #[test]
    fn a_size_beyond_the_list_makes_the_paths_incomplete() {
        let body = edited_push(|push| push["size"] = serde_json::json!(2));
        assert!(!push_parts(parse("push", &body).unwrap()).3);
        let body = edited_push(|push| push["size"] = serde_json::json!(3));
        assert!(push_parts(parse("push", &body).unwrap()).3);
    }

    #[test]
    fn commits_without_file_lists_make_the_paths_incomplete() {
        let body = edited_push(|push| {
            let commit = push["commits"][0].as_object_mut().unwrap();
            commit.remove("added");
            commit.remove("removed");
            commit.remove("modified");
        });
        assert!(push_parts(parse("push", &body).unwrap()).3);
        let body = edited_push(|push| {
            for list in ["added", "removed", "modified"] {
                push["commits"][1][list] = serde_json::json!([]);
            }
        });
        assert!(push_parts(parse("push", &body).unwrap()).3);
    }

    #[test]
    fn created_forced_and_deleted_branches_make_the_paths_incomplete() {
        for flag in ["created", "forced"] {
            let body = edited_push(|push| push[flag] = serde_json::json!(true));
            let (_, branch, paths, incomplete) = push_parts(parse("push", &body).unwrap());
            assert_eq!(branch, "main");
            assert_eq!(paths.len(), 4);
            assert!(incomplete, "{flag}");
        }
        let (repo, branch, paths, incomplete) =
            push_parts(parse("push", PUSH_DELETING_BRANCH.as_bytes()).unwrap());
        assert_eq!(repo, payments());
        assert_eq!(branch, "main");
        assert!(paths.is_empty());
        assert!(incomplete);
    }

    #[test]
    fn a_push_without_ref_names_the_field() {
        let body = edited_push(|push| {
            push.as_object_mut().unwrap().remove("ref");
        });
        let err = parse("push", &body).unwrap_err();
        assert_eq!(
            err,
            PayloadError::Missing {
                event: "push".to_owned(),
                field: "ref"
            }
        );
    }

    // --- repository ---------------------------------------------------------

    #[test]
    fn repository_life_cycle_actions() {
        for (action, expected) in [
            ("created", RepositoryAction::Created),
            ("deleted", RepositoryAction::Deleted),
            ("archived", RepositoryAction::Archived),
            ("unarchived", RepositoryAction::Unarchived),
            ("publicized", RepositoryAction::Publicized),
            ("privatized", RepositoryAction::Privatized),
            ("edited", RepositoryAction::Edited),
            (
                "renamed_twice",
                RepositoryAction::Other("renamed_twice".to_owned()),
            ),
        ] {
            let body = repository_event(action, "");
            assert_eq!(
                parse("repository", body.as_bytes()).unwrap(),
                Delivery::Repository {
                    action: expected,
                    repo: ledger()
                },
                "{action}"
            );
        }
    }

    #[test]
    fn a_renamed_repository_names_its_old_name() {
        let body = repository_event(
            "renamed",
            r#""changes": {"repository": {"name": {"from": "ledger-legacy"}}},"#,
        );
        assert_eq!(
            parse("repository", body.as_bytes()).unwrap(),
            Delivery::Repository {
                action: RepositoryAction::Renamed {
                    from: "ledger-legacy".to_owned()
                },
                repo: ledger()
            }
        );
        let body = repository_event("renamed", "");
        assert_eq!(
            parse("repository", body.as_bytes()).unwrap_err(),
            PayloadError::Missing {
                event: "repository".to_owned(),
                field: "changes.repository.name.from"
            }
        );
    }

    #[test]
    fn a_transferred_repository_names_its_old_owner() {
        let from_user = repository_event(
            "transferred",
            r#""changes": {"owner": {"from": {"user": {"login": "octocat", "id": 1, "type": "User"}}}},"#,
        );
        let from_org = repository_event(
            "transferred",
            r#""changes": {"owner": {"from": {"organization": {"login": "initech", "id": 2}}}},"#,
        );
        for (body, from_owner) in [
            (from_user, Some("octocat")),
            (from_org, Some("initech")),
            (repository_event("transferred", ""), None),
        ] {
            assert_eq!(
                parse("repository", body.as_bytes()).unwrap(),
                Delivery::Repository {
                    action: RepositoryAction::Transferred {
                        from_owner: from_owner.map(str::to_owned)
                    },
                    repo: ledger()
                }
            );
        }
    }

    #[test]
    fn a_missing_owner_login_is_named() {
        let body = repository_event("created", "").replace(
            r#""login": "acme", "id": 9001, "type""#,
            r#""id": 9001, "type""#,
        );
        let err = parse("repository", body.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            PayloadError::Missing {
                event: "repository".to_owned(),
                field: "repository.owner.login"
            }
        );
        assert_eq!(
            err.to_string(),
            "payload of a repository event lacks repository.owner.login"
        );
        let body =
            edited_push(|push| push["repository"]["owner"]["login"] = serde_json::Value::Null);
        assert_eq!(
            parse("push", &body).unwrap_err(),
            PayloadError::Missing {
                event: "push".to_owned(),
                field: "repository.owner.login"
            }
        );
    }

    #[test]
    fn malformed_json_reports_where() {
        let body =
            b"{\n  \"action\": \"created\",\n  \"repository\": {\"id\": 1,, \"name\": \"x\"}\n}";
        let err = parse("repository", body).unwrap_err();
        let PayloadError::Json {
            event,
            line,
            column,
            message,
        } = &err
        else {
            panic!("not a JSON error: {err:?}");
        };
        assert_eq!(event, "repository");
        assert_eq!((*line, *column), (3, 26));
        assert!(!message.contains("at line"), "{message}");
        assert_eq!(
            err.to_string(),
            format!(
                "payload of a repository event is not valid JSON at line 3 column 26: {message}"
            )
        );
        // A needed field of the wrong type is a JSON error too.
        let err = parse("push", br#"{"ref": 7}"#).unwrap_err();
        assert!(matches!(err, PayloadError::Json { line: 1, .. }), "{err:?}");
    }

    // --- team, membership, organization ---------------------------------------

    #[test]
    fn team_actions() {
        assert_eq!(
            parse("team", TEAM_CREATED.as_bytes()).unwrap(),
            Delivery::Team {
                action: "created".to_owned(),
                org: "acme".to_owned(),
                slug: "platform-ops".to_owned()
            }
        );
        let unknown_action = TEAM_CREATED.replace(r#""created""#, r#""archived""#);
        assert_eq!(
            parse("team", unknown_action.as_bytes()).unwrap(),
            Delivery::Ignored {
                event: "team".to_owned(),
                action: Some("archived".to_owned())
            }
        );
        let without_slug = TEAM_CREATED.replace(r#""slug": "platform-ops","#, "");
        assert_eq!(
            parse("team", without_slug.as_bytes()).unwrap_err(),
            PayloadError::Missing {
                event: "team".to_owned(),
                field: "team.slug"
            }
        );
    }

    #[test]
    fn membership_names_team_and_member() {
        assert_eq!(
            parse("membership", MEMBERSHIP_ADDED.as_bytes()).unwrap(),
            Delivery::Membership {
                action: "added".to_owned(),
                org: "acme".to_owned(),
                team: "platform-ops".to_owned(),
                login: "bob".to_owned()
            }
        );
        // The team itself is gone; its `team` `deleted` delivery covers it.
        assert_eq!(
            parse("membership", MEMBERSHIP_REMOVED_WITH_TEAM.as_bytes()).unwrap(),
            Delivery::Ignored {
                event: "membership".to_owned(),
                action: Some("removed".to_owned())
            }
        );
        let without_member = MEMBERSHIP_ADDED.replace(r#""login": "bob""#, r#""name": "bob""#);
        assert_eq!(
            parse("membership", without_member.as_bytes()).unwrap_err(),
            PayloadError::Missing {
                event: "membership".to_owned(),
                field: "member.login"
            }
        );
    }

    #[test]
    fn organization_actions() {
        assert_eq!(
            parse("organization", ORGANIZATION_MEMBER_ADDED.as_bytes()).unwrap(),
            Delivery::Organization {
                action: "member_added".to_owned(),
                org: "acme".to_owned(),
                login: Some("carol".to_owned())
            }
        );
        assert_eq!(
            parse("organization", ORGANIZATION_MEMBER_INVITED.as_bytes()).unwrap(),
            Delivery::Organization {
                action: "member_invited".to_owned(),
                org: "acme".to_owned(),
                login: Some("dave".to_owned())
            }
        );
        assert_eq!(
            parse("organization", ORGANIZATION_RENAMED.as_bytes()).unwrap(),
            Delivery::Organization {
                action: "renamed".to_owned(),
                org: "acme".to_owned(),
                login: None
            }
        );
        let removed = ORGANIZATION_MEMBER_ADDED.replace("member_added", "member_removed");
        assert_eq!(
            parse("organization", removed.as_bytes()).unwrap(),
            Delivery::Organization {
                action: "member_removed".to_owned(),
                org: "acme".to_owned(),
                login: Some("carol".to_owned())
            }
        );
        let other =
            ORGANIZATION_MEMBER_ADDED.replace("member_added", "member_invitation_cancelled");
        assert_eq!(
            parse("organization", other.as_bytes()).unwrap(),
            Delivery::Ignored {
                event: "organization".to_owned(),
                action: Some("member_invitation_cancelled".to_owned())
            }
        );
    }
}

//! What every source is: the [`Source`] trait, the listing a source
//! returns and the modes of a sync. Each kind of source lives under
//! [`crate::sources`]; the scheduler ([`crate::Ingest`]) runs every
//! configured instance on its own thread.

use crate::state::Fingerprint;
use crate::state::LocationRecord;
use proto::{Content, Facts, LocationKey, SourceId, SubjectKey};
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a source could not produce a listing at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Other(String),
}

/// What the last sync remembers of a source's locations, offered to the
/// source so that it can skip reading what has not changed.
pub type Known = BTreeMap<LocationKey, LocationRecord>;

/// What a location holds, as far as the source looked.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// Read: the content, and the SHA-256 (hex) of its raw bytes.
    Present { content: Content, sha256: String },
    /// Larger than the limit; not read.
    TooLarge { size: u64, limit: u64 },
    /// Exists but could not be read.
    Unreadable { reason: String },
    /// Its fingerprint equals the prior one: not read, same as before.
    Unchanged,
}

/// One location of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub location: LocationKey,
    pub origin: LocationKey,
    pub fetched: Fetched,
    /// The fingerprint to remember, when it can be trusted.
    pub fingerprint: Option<Fingerprint>,
    /// Absolute paths/globs of the Location targets in the content.
    pub targets: Vec<String>,
}

/// Facts about one subject, as far as the source looked.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedFacts {
    pub subject: SubjectKey,
    /// `None`: the source did not read them again because nothing that
    /// feeds them changed; they stand as last shipped.
    pub facts: Option<Facts>,
}

/// Everything a source holds now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listing {
    /// Whether every location (and subject) in scope was seen. Only a
    /// complete listing may remove locations that it lacks.
    pub complete: bool,
    pub locations: Vec<Listed>,
    /// Why the listing is incomplete (or what else went wrong on the way).
    pub problems: Vec<String>,
    /// Facts about the source's subjects (empty for sources without any).
    pub facts: Vec<ListedFacts>,
    /// `None`: the listing covers the whole source. `Some(prefixes)`: it
    /// covers only the locations and subjects whose keys start with one of
    /// the prefixes (a webhook's targeted re-read); nothing outside them is
    /// removed.
    pub scope: Option<Vec<ScopeEntry>>,
    /// Origins whose removal a user asked for (a location unregistered
    /// through the API): what the listing lacks from them is removed
    /// whatever the removal guard says.
    pub released: Vec<LocationKey>,
}

/// Part of a scoped listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeEntry {
    /// Every key that starts with this.
    Prefix(String),
    /// This key only.
    Exact(String),
}

impl Listing {
    /// Whether `key` is a location or subject key this listing covers.
    pub fn covers(&self, key: &str) -> bool {
        match &self.scope {
            None => true,
            Some(entries) => entries.iter().any(|e| match e {
                ScopeEntry::Prefix(p) => key.starts_with(p.as_str()),
                ScopeEntry::Exact(k) => key == k,
            }),
        }
    }
}

/// What a sync is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// List everything (a scheduled poll).
    Full,
    /// Re-read only what the source was told changed (webhooks); a source
    /// with nothing pending returns an empty scoped listing.
    Pending,
}

/// A source of locations.
pub trait Source: Send + Sync {
    fn id(&self) -> &SourceId;
    /// Lists every location with its content; `known` lets the source skip
    /// locations that have not changed since the last sync.
    fn list(&self, known: &Known) -> Result<Listing, SourceError>;

    /// Lists like [`Source::list`], but hands each location to `each` as
    /// soon as it is read and returns the rest of the listing (its
    /// `locations` empty): a sync then ships a location's content and drops
    /// it before the next is read, so a first listing of half a million
    /// files never holds them all. The default lists whole, then hands out.
    fn list_each(
        &self,
        known: &Known,
        each: &mut dyn FnMut(Listed),
    ) -> Result<Listing, SourceError> {
        let mut listing = self.list(known)?;
        for l in std::mem::take(&mut listing.locations) {
            each(l);
        }
        Ok(listing)
    }

    /// Lists what webhooks or other hints said changed. The default (a
    /// source without hints) lists nothing.
    fn list_pending(&self, _known: &Known) -> Result<Listing, SourceError> {
        Ok(Listing {
            complete: true,
            scope: Some(Vec::new()),
            ..Listing::default()
        })
    }

    /// Whether a [`SyncMode::Pending`] sync has anything to do.
    fn has_pending(&self) -> bool {
        false
    }

    /// The sync that used the last listing is committed (its observations
    /// are stored and the sync state written): the source may now remember
    /// what it skipped reading on the strength of that listing.
    fn commit(&self) {}

    /// The sync that used the last listing failed: forget what it read.
    fn discard(&self) {}

    /// Hands the source the flag that stops the service, so that long waits
    /// (a rate limit's reset) end at shutdown.
    fn bind_stop(&self, _stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {}

    /// What the source reports beyond its syncs (quota, what it covers),
    /// for the status API.
    fn details(&self) -> SourceDetails {
        SourceDetails::None
    }

    /// Hands the source a way to wake the scheduler when it learns of a
    /// change by itself (a watched tree); [`Source::has_pending`] then
    /// says there is something to sync.
    fn bind_waker(&self, _waker: crate::watch::Waker) {}

    /// While the source hears of changes by itself, how often a full
    /// listing should still run (instead of the cron schedule).
    fn full_listing_every(&self) -> Option<Duration> {
        None
    }
}

/// What a source reports beyond its syncs, by kind. Serialised without a
/// tag: the source's `kind` beside it says which it is.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[serde(untagged)]
pub enum SourceDetails {
    #[default]
    None,
    Files(FilesDetails),
    Github(crate::github::GithubDetails),
    Aws(crate::sources::aws::AwsDetails),
    /// A `gcp` or `azure` source.
    Cloud(crate::sources::gcp::CloudDetails),
    Registered(RegisteredDetails),
    Scorecards(ScorecardsDetails),
    Retired(RetiredDetails),
}

/// A `files` source.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FilesDetails {
    pub root: std::path::PathBuf,
    /// Whether changes are heard of by a watch of the tree (else: polled).
    pub watching: bool,
}

/// The locations registered through the API.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegisteredDetails {
    pub registered: usize,
    /// Whether every registration in the log so far has been read.
    pub caught_up: bool,
}

/// The scorecard definition publisher.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScorecardsDetails {
    pub dir: Option<std::path::PathBuf>,
    /// Definition files in the last set published.
    pub files: usize,
    pub published_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A source no longer in the configuration whose locations and facts are
/// being removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RetiredDetails {
    /// Whether `ingest.retired_sources` lists it (removal without the
    /// removal guard).
    pub confirmed: bool,
    /// What the next sync would still remove: locations, then subjects.
    pub remaining_locations: usize,
    pub remaining_subjects: usize,
}

//! A source that was in the configuration and is no longer: its listing is
//! complete and empty, so that a sync removes what it yielded (locations
//! and facts) instead of leaving them in the catalog forever.
//!
//! The removal guard applies as to any sync, so that an id mistyped in the
//! configuration does not wipe a source's entities: the removals are held
//! back and reported (status, log, metric) until the id is listed under
//! `ingest.retired_sources`, which confirms them.

use crate::source::{Known, Listing, Source, SourceDetails, SourceError};
use crate::state::StateStore;
use proto::SourceId;
use std::sync::Arc;

/// How often a retired source's removals are tried again.
pub const SCHEDULE: &str = "0 * * * * *";

/// A source id found in the sync state and not in the configuration.
pub struct RetiredSource {
    id: SourceId,
    confirmed: bool,
    state: Arc<StateStore>,
}

impl std::fmt::Debug for RetiredSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetiredSource")
            .field("id", &self.id)
            .field("confirmed", &self.confirmed)
            .finish()
    }
}

impl RetiredSource {
    pub fn new(id: SourceId, confirmed: bool, state: Arc<StateStore>) -> Self {
        RetiredSource {
            id,
            confirmed,
            state,
        }
    }

    /// Whether the confirmation bypasses the removal guard.
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// Whether nothing of the source is left in the state.
    pub fn is_gone(&self) -> bool {
        let locations = self.state.load(&self.id).map(|r| r.len()).unwrap_or(1);
        let subjects = self.state.facts(&self.id).map(|f| f.len()).unwrap_or(1);
        locations == 0 && subjects == 0
    }
}

impl Source for RetiredSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn list(&self, _known: &Known) -> Result<Listing, SourceError> {
        Ok(Listing {
            complete: true,
            ..Listing::default()
        })
    }

    fn commit(&self) {
        if self.is_gone()
            && let Err(e) = self.state.aux_clear(&self.id)
        {
            tracing::warn!(source = %self.id, error = %e, "could not clear a retired source's own state");
        }
    }

    fn details(&self) -> SourceDetails {
        SourceDetails::Retired(crate::source::RetiredDetails {
            confirmed: self.confirmed,
            remaining_locations: self.state.load(&self.id).map(|r| r.len()).unwrap_or(0),
            remaining_subjects: self.state.facts(&self.id).map(|f| f.len()).unwrap_or(0),
        })
    }
}

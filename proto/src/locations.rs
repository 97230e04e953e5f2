//! `catalog.locations.v1`: what users asked of locations through the API.
//!
//! A location registered through the API (`POST /api/catalog/locations`)
//! is an event here, not a row written beside the log, so every ingest
//! replica and every replay agrees on what is registered, and the log
//! records who registered or removed what, and when. Ingest folds this
//! topic into the set of registered locations, reads each through the
//! source that can (a file under an allowed root, a GitHub URL through the
//! GitHub source's client), and observes them like any other location.
//!
//! Key: the location key, so every command about one location is applied
//! in order.

use crate::envelope::Versioned;
use crate::refs::LocationKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One message of `catalog.locations.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationCommand {
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    /// The subject of the caller's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The location (`file:/abs/path.yaml`, `url:https://...`).
    pub location: LocationKey,
    pub change: LocationChange,
}

impl Versioned for LocationCommand {
    const SCHEMA: &'static str = "catalog.location-command";
    const VERSION: u32 = 1;
}

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocationChange {
    /// Observe this location (and what its `Location` entities name) from
    /// now on, as the origin of what it yields.
    Registered,
    /// Stop observing it: what only it yielded goes.
    Unregistered,
    /// Read it again now and ship what it holds even if unchanged (an
    /// entity deleted through the API comes back if the location still
    /// yields it).
    Refresh,
}

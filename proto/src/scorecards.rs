//! `catalog.scorecards.v1`: what scorecards exist and who exempted what.
//!
//! Definitions travel as the YAML text of their files, so every projector
//! compiles the same text the same way and a bad file is reported (and the
//! previous good one kept) by the projector, the one place that evaluates.
//! Exemptions are events with their author and reason, so who exempted
//! what, and when, is in the log.
//!
//! Keys: `definitions:{source}` for a definition set (one message holds
//! every file of one source, so a deleted file is simply absent), and
//! `exemption:{id}` for an exemption's grant and revocation (one key, one
//! partition: a revocation is never applied before its grant).

use crate::envelope::Versioned;
use crate::refs::{EntityRef, SourceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One message of `catalog.scorecards.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorecardEvent {
    pub event_id: Uuid,
    pub source: SourceId,
    pub at: DateTime<Utc>,
    /// Who caused it through the API: the subject of the caller's token
    /// (absent in events of sources, and in events written before this
    /// field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub change: ScorecardChange,
}

impl Versioned for ScorecardEvent {
    const SCHEMA: &'static str = "catalog.scorecard-event";
    const VERSION: u32 = 1;
}

impl ScorecardEvent {
    /// The message key: which events must stay in order.
    pub fn key(&self) -> String {
        match &self.change {
            ScorecardChange::DefinitionsPublished { .. } => format!("definitions:{}", self.source),
            ScorecardChange::ExemptionGranted { exemption } => {
                format!("exemption:{}", exemption.id)
            }
            ScorecardChange::ExemptionRevoked { id, .. } => format!("exemption:{id}"),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScorecardChange {
    /// The complete set of definition files of one source now: file name
    /// -> YAML text. A file absent here is no longer defined.
    DefinitionsPublished { files: BTreeMap<String, String> },
    /// A check counts as passing for one entity until `expires_at`.
    ExemptionGranted { exemption: Exemption },
    /// An exemption ends before its expiry.
    ExemptionRevoked {
        id: Uuid,
        author: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// An exemption of one check of one scorecard for one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemption {
    pub id: Uuid,
    pub scorecard: String,
    pub entity: EntityRef,
    pub check: String,
    pub reason: String,
    pub author: String,
    /// `None`: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

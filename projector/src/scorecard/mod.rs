//! Scorecards: definitions compiled from YAML ([`lang`]), evaluated
//! incrementally inside the fold ([`step`]) on every entity, relation, fact,
//! exemption or definition change, with results, rollups and a history of
//! every result change stored next to the catalog ([`records`]), and read
//! back for the API ([`read`]).

pub mod lang;
#[cfg(test)]
mod lang_tests;
pub mod read;
pub mod records;
pub mod step;

pub use lang::{Definition, DefinitionError, compile};
pub use read::{
    DefinitionInfo, DryRun, EntityCard, ExemptionInfo, RevocationInfo, RollupBy, RollupView,
    TrendBucket, TrendInterval, TrendQuery,
};
pub use records::{CheckStatus, ResultRecord, Rollup};

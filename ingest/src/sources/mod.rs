//! Every kind of source, one module each. A configured instance of any of
//! them runs on its own thread ([`crate::Ingest::run`]), so that one
//! source's wait (a GitHub rate limit's reset, a slow cloud API) never
//! delays another's sync or a webhook.
//!
//! - [`files`]: a directory of descriptor files (watched or polled);
//! - [`github`]: repositories of GitHub organizations, with webhooks and
//!   repository facts;
//! - [`registered`]: the locations registered through the API;
//! - [`scorecards`]: the scorecard definition files, published to
//!   `catalog.scorecards.v1`;
//! - [`retired`]: a source taken out of the configuration, whose
//!   locations and facts are removed.

pub mod files;
pub mod github;
pub mod registered;
pub mod retired;
pub mod scorecards;

//! Every kind of source, one module each. A configured instance of any of
//! them runs on its own thread ([`crate::Ingest::run`]), so that one
//! source's wait (a GitHub rate limit's reset, a slow cloud API) never
//! delays another's sync or a webhook.
//!
//! - [`aws`]: the resources of AWS accounts and regions (through
//!   [`cloud`], shared with the other clouds);
//! - [`gcp`]: the resources of GCP projects (Cloud Asset Inventory), and
//!   [`azure`]: of Azure subscriptions (Resource Graph), both over REST
//!   ([`rest`]);
//! - [`files`]: a directory of descriptor files (watched or polled);
//! - [`github`]: repositories of GitHub organizations, with webhooks and
//!   repository facts;
//! - [`registered`]: the locations registered through the API;
//! - [`scorecards`]: the scorecard definition files, published to
//!   `catalog.scorecards.v1`;
//! - [`retired`]: a source taken out of the configuration, whose
//!   locations and facts are removed.

pub mod aws;
pub mod azure;
pub mod cloud;
pub mod files;
pub mod gcp;
pub mod github;
pub mod registered;
#[cfg(feature = "clouds")]
pub mod rest;
pub mod retired;
pub mod scorecards;

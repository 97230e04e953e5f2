//! The scorecard language: a definition file (YAML) compiled into typed
//! rules, and their evaluation against one entity.
//!
//! - [`syntax`]: the compiled tree (definition, checks, rules) and how a
//!   rule reads in a reason;
//! - [`compile`]: YAML to that tree, collecting every error;
//! - [`paths`]: field and fact paths, parsed and resolved;
//! - [`applies`]: which entities a scorecard applies to (`applies_to`);
//! - [`eval`]: a definition's checks evaluated against one entity.
//!
//! ```yaml
//! id: production-readiness
//! title: Production readiness
//! applies_to: {kind: component, spec.lifecycle: production}
//! levels: [bronze, silver, gold]
//! checks:
//!   - id: owner-is-group
//!     level: bronze
//!     weight: 3
//!     rule: {relation: ownedBy, target_kind: group}
//!   - id: reviews
//!     level: gold
//!     rule: {fact: github.branch_protection.required_reviews, gte: 2}
//! ```
//!
//! A rule is exactly one of: `all: [rules]`, `any: [rules]`, `not: rule`,
//! `field: PATH` or `fact: PROVIDER.PATH` with one operator (`exists`,
//! `equals`, `in`, `matches`, `gt`, `gte`, `lt`, `lte`, `within`), or
//! `relation: TYPE` with an optional `target_kind` and an optional `target`
//! rule that a related entity must pass. Paths are dotted, with bracketed
//! keys (`metadata.annotations["pagerduty.com/service-id"]`), indexes
//! (`[0]`) and `[*]` (any item). Text compares without regard to case.
//!
//! Compilation collects every error, each naming the file, the check and
//! the reason. Evaluation is a pure function of the entity, what it reads
//! through [`Context`] (related entities, facts) and the evaluation time.

pub mod applies;
#[cfg(test)]
mod applies_tests;
pub mod compile;
pub mod eval;
pub mod paths;
pub mod syntax;

pub use applies::EntityMatch;
pub use compile::{MAX_DEFINITION_BYTES, compile, compile_rule, parse_duration};
pub use eval::{Context, Evaluation, Outcome, Recall, Remembered};
pub use paths::{Path, Resolved, Segment};
pub use syntax::RelationsRead;
pub use syntax::{Check, Cmp, Definition, DefinitionError, FactProvider, Rule, Test, ValueSource};

//! The types the API serves and accepts, as its OpenAPI document describes
//! them (`/api/openapi.json`, generated from these and the handlers'
//! `#[utoipa::path]` annotations).
//!
//! Most handlers build their answers as JSON values from the read model's
//! records; these types say what those answers look like. They are
//! described, never built: field names follow the wire (camelCase for the
//! Backstage-shaped answers, snake_case for stored records), `Option` marks
//! a nullable field and `required = false` one that may be absent.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::{ToResponse, ToSchema};

/// An error, in Backstage's error body shape.
#[derive(ToResponse)]
pub struct ErrorResponse(Error);

/// `AuthenticationError`: no bearer token, or not one this process accepts.
#[derive(ToResponse)]
pub struct Unauthorized(Error);

/// `NotAllowedError`: the token lacks the scope the operation needs (or
/// no token may write).
#[derive(ToResponse)]
pub struct Forbidden(Error);

#[derive(ToSchema)]
pub enum ErrorErrorName {
    #[schema(rename = "NotFoundError")]
    NotFoundError,
    #[schema(rename = "InputError")]
    InputError,
    #[schema(rename = "ConflictError")]
    ConflictError,
    #[schema(rename = "AuthenticationError")]
    AuthenticationError,
    #[schema(rename = "NotAllowedError")]
    NotAllowedError,
    #[schema(rename = "ServiceUnavailableError")]
    ServiceUnavailableError,
    #[schema(rename = "Error")]
    Error,
}

#[derive(ToSchema)]
pub struct ErrorError {
    #[schema(inline)]
    pub name: ErrorErrorName,
    pub message: String,
}

#[derive(ToSchema)]
pub struct ErrorRequest {
    pub method: String,
    pub url: String,
}

#[derive(ToSchema)]
pub struct ErrorStatus {
    #[serde(rename = "statusCode")]
    pub status_code: i64,
}

#[derive(ToSchema)]
pub struct Error {
    #[schema(inline)]
    pub error: ErrorError,
    #[schema(inline)]
    pub request: ErrorRequest,
    #[schema(inline)]
    pub response: ErrorStatus,
}

#[derive(ToSchema)]
pub struct EntityRelation {
    #[schema(examples(json!("ownedBy")))]
    pub r#type: String,
    #[serde(rename = "targetRef")]
    #[schema(examples(json!("group:default/team-a")))]
    pub target_ref: String,
}

#[derive(ToSchema)]
pub struct EntityMetaLinksItem {
    pub url: String,
    #[schema(required = false)]
    pub title: String,
    #[schema(required = false)]
    pub icon: String,
    #[schema(required = false)]
    pub r#type: String,
}

#[derive(ToSchema)]
pub struct EntityMeta {
    pub name: String,
    #[schema(required = false)]
    pub namespace: String,
    #[schema(required = false)]
    pub uid: String,
    #[schema(required = false)]
    pub etag: String,
    #[schema(required = false)]
    pub title: String,
    #[schema(required = false)]
    pub description: String,
    #[schema(required = false)]
    pub labels: BTreeMap<String, String>,
    #[schema(required = false)]
    pub annotations: BTreeMap<String, String>,
    #[schema(required = false)]
    pub tags: Vec<String>,
    #[schema(required = false, inline)]
    pub links: Vec<EntityMetaLinksItem>,
    /// Any other fields.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A served entity (or, with `fields`, the parts asked for).
#[derive(ToSchema)]
pub struct Entity {
    #[serde(rename = "apiVersion")]
    #[schema(required = false)]
    pub api_version: String,
    #[schema(required = false)]
    pub kind: String,
    #[schema(required = false)]
    pub metadata: EntityMeta,
    #[schema(required = false)]
    pub spec: BTreeMap<String, Value>,
    #[schema(required = false)]
    pub relations: Vec<EntityRelation>,
}

#[derive(ToSchema)]
pub struct EntitiesQueryResponsePageInfo {
    #[serde(rename = "nextCursor")]
    #[schema(required = false)]
    pub next_cursor: String,
    #[serde(rename = "prevCursor")]
    #[schema(required = false)]
    pub prev_cursor: String,
}

#[derive(ToSchema)]
pub struct EntitiesQueryResponse {
    pub items: Vec<Entity>,
    #[serde(rename = "totalItems")]
    pub total_items: i64,
    #[serde(rename = "pageInfo")]
    #[schema(inline)]
    pub page_info: EntitiesQueryResponsePageInfo,
}

#[derive(ToSchema)]
pub struct EntitiesBatchRequest {
    #[serde(rename = "entityRefs")]
    pub entity_refs: Vec<String>,
    #[schema(required = false)]
    pub fields: Vec<String>,
}

#[derive(ToSchema)]
pub struct EntitiesBatchResponse {
    /// In request order; null where no entity has that ref (or it does not match the filter).
    pub items: Vec<Option<Entity>>,
}

#[derive(ToSchema)]
pub struct EntityAncestryResponseItemsItem {
    pub entity: Entity,
    #[serde(rename = "parentEntityRefs")]
    pub parent_entity_refs: Vec<String>,
}

#[derive(ToSchema)]
pub struct EntityAncestryResponse {
    #[serde(rename = "rootEntityRef")]
    pub root_entity_ref: String,
    #[schema(inline)]
    pub items: Vec<EntityAncestryResponseItemsItem>,
}

#[derive(ToSchema)]
pub struct EntityFacetsResponseFacetsValueItem {
    pub value: String,
    pub count: i64,
}

#[derive(ToSchema)]
pub struct EntityFacetsResponse {
    #[schema(inline)]
    pub facets: BTreeMap<String, Vec<EntityFacetsResponseFacetsValueItem>>,
}

#[derive(ToSchema)]
pub struct Location {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(examples(json!("file")))]
    pub r#type: String,
    #[schema(examples(json!("/catalog/payments.yaml")))]
    pub target: String,
    /// Backstage's name for the location's own Location entity: location:default/generated-<sha1 of type:target>.
    #[serde(rename = "entityRef")]
    #[schema(examples(json!("location:default/generated-0123456789abcdef0123456789abcdef01234567")))]
    pub entity_ref: String,
}

#[derive(ToSchema)]
pub enum ProcessingErrorKind {
    #[schema(rename = "yaml")]
    Yaml,
    #[schema(rename = "encoding")]
    Encoding,
    #[schema(rename = "too_large")]
    TooLarge,
    #[schema(rename = "budget")]
    Budget,
    #[schema(rename = "validation")]
    Validation,
    #[schema(rename = "unknown_kind")]
    UnknownKind,
    #[schema(rename = "unreadable")]
    Unreadable,
    #[schema(rename = "conflict")]
    Conflict,
}

#[derive(ToSchema)]
pub struct ProcessingError {
    /// Location key, `<type>:<target>`.
    pub location: String,
    #[schema(inline)]
    pub kind: ProcessingErrorKind,
    pub message: String,
    /// 0-based index of the YAML document.
    #[schema(required = false)]
    pub document: i64,
    #[schema(required = false)]
    pub line: i64,
    #[schema(required = false)]
    pub column: i64,
    /// The entity ref the error is about.
    #[schema(required = false)]
    pub entity: String,
}

#[derive(ToSchema)]
pub struct LocationErrors {
    pub location: Location,
    pub errors: Vec<ProcessingError>,
}

#[derive(ToSchema)]
pub enum HistoryRecordChange {
    #[schema(rename = "created")]
    Created,
    #[schema(rename = "updated")]
    Updated,
    #[schema(rename = "deleted")]
    Deleted,
}

#[derive(ToSchema)]
pub struct HistoryRecord {
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(format = "uuid")]
    pub event_id: String,
    pub location: String,
    #[schema(inline)]
    pub change: HistoryRecordChange,
    /// The entity as its location yielded it after the change (no relations, uid or etag); absent for a deletion.
    #[schema(required = false)]
    pub entity: Entity,
    /// Who caused the change through the API (the token's subject), for deletions through the API.
    #[schema(required = false)]
    pub by: String,
}

#[derive(ToSchema)]
pub struct EntityHistory {
    #[serde(rename = "entityRef")]
    pub entity_ref: String,
    pub changes: Vec<HistoryRecord>,
}

/// Exactly one of: `all: [rules]`, `any: [rules]`, `not: rule`; `field: PATH` (a dotted path into the entity, with bracketed keys such as `metadata.annotations["pagerduty.com/service-id"]`, indexes `[0]` and `[*]` for any item) or `fact: PROVIDER.PATH` (e.g. `github.branch_protection.required_reviews`) with exactly one operator; or `relation: TYPE` with an optional `target_kind` and an optional `target` rule that a related entity must pass. Text compares without regard to case. Rules nest at most 8 deep.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(no_recursion)]
pub struct ScorecardRule {
    #[schema(required = false, min_items = 1)]
    pub all: Vec<ScorecardRule>,
    #[schema(required = false, min_items = 1)]
    pub any: Vec<ScorecardRule>,
    #[schema(required = false)]
    pub not: Box<ScorecardRule>,
    #[schema(required = false, examples(json!("spec.lifecycle")))]
    pub field: String,
    #[schema(required = false, examples(json!("github.branch_protection.required_reviews")))]
    pub fact: String,
    #[schema(required = false, examples(json!("ownedBy")))]
    pub relation: String,
    #[schema(required = false, examples(json!("group")))]
    pub target_kind: String,
    #[schema(required = false)]
    pub target: Box<ScorecardRule>,
    #[schema(required = false)]
    pub exists: bool,
    /// A string, number or boolean.
    #[schema(required = false)]
    pub equals: Value,
    /// Strings, numbers or booleans.
    #[schema(required = false, min_items = 1)]
    pub r#in: Vec<Value>,
    /// A regular expression.
    #[schema(required = false)]
    pub matches: String,
    #[schema(required = false)]
    pub gt: f64,
    #[schema(required = false)]
    pub gte: f64,
    #[schema(required = false)]
    pub lt: f64,
    #[schema(required = false)]
    pub lte: f64,
    /// A time at most this long ago: a number and a unit (s, m, h, d, w).
    #[schema(required = false, examples(json!("90d")))]
    pub within: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScorecardDefinitionSourceChecksItem {
    #[schema(pattern = "^[a-z0-9._-]{1,100}$")]
    pub id: String,
    /// Default: the id.
    #[schema(required = false)]
    pub title: String,
    #[schema(required = false)]
    pub description: String,
    /// One of `levels`; default the lowest.
    #[schema(required = false)]
    pub level: String,
    #[schema(required = false, minimum = 1, maximum = 1000, default = json!(1))]
    pub weight: i64,
    pub rule: ScorecardRule,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "A scorecard definition file (YAML, or the same as JSON), at most 256 KiB. Example:\n\n```yaml\nid: production-readiness\ntitle: Production readiness\napplies_to: {kind: component, spec.lifecycle: production}\nlevels: [bronze, silver, gold]\nchecks:\n  - id: owner-is-group\n    level: bronze\n    weight: 3\n    rule: {relation: ownedBy, target_kind: group}\n  - id: reviews\n    level: gold\n    rule: {fact: github.branch_protection.required_reviews, gte: 2}\n```\n\nAn entity reaches a level when every check of that level and the levels below passes (or is exempt); its score is the weighted share of passing checks, 0 to 100."
)]
pub struct ScorecardDefinitionSource {
    #[schema(pattern = "^[a-z0-9._-]{1,100}$")]
    pub id: String,
    /// Default: the id.
    #[schema(required = false)]
    pub title: String,
    #[schema(required = false)]
    pub description: String,
    /// Which entities it applies to: filter keys (as in the catalog's `filter`) to a value or a list of values; every key must match one of its values. Default: every entity. Example: `{"kind": "component", "spec.lifecycle": "production"}`.
    #[schema(required = false)]
    pub applies_to: BTreeMap<String, Value>,
    /// Distinct level names, lowest first.
    #[schema(min_items = 1)]
    pub levels: Vec<String>,
    #[schema(inline)]
    pub checks: Vec<ScorecardDefinitionSourceChecksItem>,
}

#[derive(ToSchema)]
pub struct ScorecardCheck {
    pub id: String,
    pub title: String,
    #[schema(required = false)]
    pub description: String,
    /// The level this check is needed for.
    pub level: String,
    #[schema(minimum = 1)]
    pub weight: i64,
    /// The rule, written out.
    pub rule: String,
}

/// A scorecard in force.
#[derive(ToSchema)]
pub struct ScorecardDefinition {
    #[schema(examples(json!("production-readiness")))]
    pub id: String,
    pub title: String,
    #[schema(required = false)]
    pub description: String,
    /// Filter key (lower-cased) -> the values it may have (any of them); an empty list: the key must exist. Example: `{"kind": ["component"], "spec.lifecycle": ["production"]}`.
    #[serde(rename = "appliesTo")]
    pub applies_to: BTreeMap<String, Vec<String>>,
    /// Lowest first.
    pub levels: Vec<String>,
    pub checks: Vec<ScorecardCheck>,
    /// The source that published the definition file.
    pub source: String,
    pub file: String,
    #[serde(rename = "updatedAt")]
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(ToSchema)]
pub struct DefinitionError {
    pub file: String,
    /// The check the error is in, if any (its id, or `#n`).
    #[schema(required = false)]
    pub check: String,
    pub reason: String,
}

/// A definition file whose last text did not compile; its previous text stays in force.
#[derive(ToSchema)]
pub struct RejectedDefinitionFile {
    pub source: String,
    pub file: String,
    #[serde(rename = "rejectedAt")]
    #[schema(format = DateTime, required = true)]
    pub rejected_at: Option<String>,
    /// The scorecard the file's last good text defines, still in force.
    #[serde(rename = "inForce")]
    #[schema(required = true)]
    pub in_force: Option<String>,
    pub errors: Vec<DefinitionError>,
}

#[derive(ToSchema)]
pub struct ScorecardList {
    pub items: Vec<ScorecardDefinition>,
    pub rejected: Vec<RejectedDefinitionFile>,
}

/// `exempt`: failing, but exempted; counts as passing until the exemption ends.
#[derive(ToSchema)]
pub enum CheckStatus {
    #[schema(rename = "pass")]
    Pass,
    #[schema(rename = "fail")]
    Fail,
    #[schema(rename = "exempt")]
    Exempt,
}

#[derive(ToSchema)]
pub enum CauseKind {
    #[schema(rename = "entity")]
    Entity,
    #[schema(rename = "related")]
    Related,
    #[schema(rename = "fact")]
    Fact,
    #[schema(rename = "definition")]
    Definition,
    #[schema(rename = "exemption")]
    Exemption,
    #[schema(rename = "time")]
    Time,
}

/// What caused an evaluation (a stored record: snake_case fields).
#[derive(ToSchema)]
pub struct Cause {
    /// `entity`: the entity or its relations changed; `related`: a related entity (owner, system, relation target) changed; `time`: a time-bound rule or an exemption's expiry came due.
    #[schema(inline)]
    pub kind: CauseKind,
    /// The event that caused it (absent for a time-bound change).
    #[schema(format = "uuid", required = false)]
    pub event_id: String,
    /// The location, subject, file, exemption or deadline.
    pub detail: String,
}

/// One change of a result (a stored record: snake_case fields).
#[derive(ToSchema)]
pub struct ResultChange {
    #[schema(format = DateTime)]
    pub at: String,
    pub cause: Cause,
    /// null: no level, or no result.
    #[schema(required = true)]
    pub level_before: Option<String>,
    /// null: no level, or no result.
    #[schema(required = true)]
    pub level_after: Option<String>,
    #[schema(required = true)]
    pub score_before: Option<i64>,
    #[schema(required = true)]
    pub score_after: Option<i64>,
    /// Whether the scorecard applies after the change.
    pub applies: bool,
    /// Checks whose status changed: check id -> [before, after] (null: no result).
    #[schema(required = false, schema_with = check_changes)]
    pub checks: BTreeMap<String, Vec<Option<CheckStatus>>>,
    /// Owner group and its ancestor groups after the change.
    #[schema(required = false)]
    pub groups: Vec<String>,
    #[schema(required = false)]
    pub system: String,
    #[schema(required = false)]
    pub domain: String,
    /// The level after the change, as an index into the levels.
    #[schema(required = false, minimum = 0)]
    pub level_index: i64,
}

/// An exemption of one check of one scorecard for one entity (snake_case fields).
#[derive(ToSchema)]
pub struct Exemption {
    #[schema(format = "uuid")]
    pub id: String,
    pub scorecard: String,
    /// The entity ref.
    #[schema(examples(json!("component:default/pay")))]
    pub entity: String,
    pub check: String,
    pub reason: String,
    pub author: String,
    /// Absent: until revoked.
    #[schema(format = DateTime, required = false)]
    pub expires_at: String,
}

#[derive(ToSchema)]
pub struct Revocation {
    #[schema(format = DateTime)]
    pub at: String,
    pub author: String,
    #[schema(required = false)]
    pub reason: String,
    #[schema(format = "uuid")]
    pub event_id: String,
}

/// An exemption as stored, revoked ones included (snake_case fields).
#[derive(ToSchema)]
pub struct ExemptionRecord {
    pub exemption: Exemption,
    #[schema(format = DateTime)]
    pub granted_at: String,
    #[schema(format = "uuid")]
    pub event_id: String,
    #[schema(required = false)]
    pub revoked: Revocation,
}

#[derive(ToSchema)]
pub struct ExemptionList {
    pub items: Vec<ExemptionRecord>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExemptionRequest {
    #[serde(rename = "entityRef")]
    #[schema(examples(json!("component:default/pay")))]
    pub entity_ref: String,
    /// A check id of the scorecard.
    pub check: String,
    #[schema(min_length = 1)]
    pub reason: String,
    #[schema(min_length = 1)]
    pub author: String,
    /// Absent: until revoked.
    #[serde(rename = "expiresAt")]
    #[schema(format = DateTime, required = false)]
    pub expires_at: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[schema(min_length = 1)]
    pub author: String,
    #[schema(required = false)]
    pub reason: String,
}

#[derive(ToSchema)]
pub struct RevokeResponse {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(schema_with = always_true)]
    pub revoked: bool,
}

#[derive(ToSchema)]
pub struct CheckOutcome {
    pub id: String,
    pub title: String,
    pub level: String,
    #[schema(minimum = 1)]
    pub weight: i64,
    pub status: CheckStatus,
    /// The value the rule looked at, when there is one.
    #[schema(required = false)]
    pub value: Value,
    /// Why it failed.
    #[schema(required = false)]
    pub reason: String,
    #[schema(required = false)]
    pub exemption: ExemptionRecord,
}

/// One scorecard's result for one entity.
#[derive(ToSchema)]
pub struct EntityScorecard {
    pub scorecard: String,
    pub title: String,
    #[serde(rename = "entityRef")]
    pub entity_ref: String,
    /// The highest level reached; null: none.
    #[schema(required = true)]
    pub level: Option<String>,
    /// Weighted share of passing (or exempt) checks.
    #[schema(minimum = 0, maximum = 100)]
    pub score: i64,
    pub checks: Vec<CheckOutcome>,
    /// Owner group and its ancestor groups, nearest first.
    pub owners: Vec<String>,
    #[schema(required = true)]
    pub system: Option<String>,
    #[schema(required = true)]
    pub domain: Option<String>,
    /// When the outcome last changed (from the history); null when no history is recorded.
    #[serde(rename = "changedAt")]
    #[schema(format = DateTime)]
    pub changed_at: Option<String>,
    /// Why the outcome last changed (from the history).
    pub cause: Option<Cause>,
    /// When a time-bound rule or exemption will change the outcome.
    #[serde(rename = "nextChange")]
    #[schema(format = DateTime, required = false)]
    pub next_change: String,
    /// Most recent result changes first; absent when none.
    #[schema(required = false)]
    pub history: Vec<ResultChange>,
}

#[derive(ToSchema)]
pub struct EntityScorecards {
    #[serde(rename = "entityRef")]
    pub entity_ref: String,
    pub scorecards: Vec<EntityScorecard>,
}

#[derive(ToSchema)]
pub struct ResultItem {
    #[serde(rename = "entityRef")]
    pub entity_ref: String,
    /// null: no level reached.
    #[schema(required = true)]
    pub level: Option<String>,
    #[schema(minimum = 0, maximum = 100)]
    pub score: i64,
    /// Ids of failing checks.
    pub failing: Vec<String>,
    /// Ids of exempt checks.
    pub exempt: Vec<String>,
    pub owners: Vec<String>,
}

#[derive(ToSchema)]
pub struct ResultsPagePageInfo {
    /// null on the last page.
    #[serde(rename = "nextCursor")]
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct ResultsPage {
    /// By entity ref.
    pub items: Vec<ResultItem>,
    #[serde(rename = "pageInfo")]
    #[schema(inline)]
    pub page_info: ResultsPagePageInfo,
}

#[derive(ToSchema)]
pub struct LevelCount {
    /// null: no level reached.
    #[schema(required = true)]
    pub level: Option<String>,
    pub entities: i64,
}

#[derive(ToSchema)]
pub struct CheckRate {
    pub id: String,
    pub passing: i64,
    pub exempt: i64,
    /// (passing + exempt) / entities, rounded to 3 decimals.
    #[serde(rename = "passRate")]
    pub pass_rate: f64,
}

#[derive(ToSchema)]
pub struct GroupRollup {
    /// The group, system or domain ref key; `*` for all.
    pub group: String,
    pub entities: i64,
    /// `null` (no level) first, then each level, lowest first.
    pub levels: Vec<LevelCount>,
    #[serde(rename = "meanScore")]
    pub mean_score: f64,
    /// Per check; absent in trends.
    #[schema(required = false)]
    pub checks: Vec<CheckRate>,
}

#[derive(ToSchema)]
pub enum RollupBy {
    #[schema(rename = "all")]
    All,
    #[schema(rename = "owner")]
    Owner,
    #[schema(rename = "system")]
    System,
    #[schema(rename = "domain")]
    Domain,
}

#[derive(ToSchema)]
pub struct Rollup {
    pub scorecard: String,
    #[schema(inline)]
    pub by: RollupBy,
    pub groups: Vec<GroupRollup>,
}

#[derive(ToSchema)]
pub struct TrendBucket {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    /// The state at the end of the interval (without per-check rates).
    pub groups: Vec<GroupRollup>,
}

#[derive(ToSchema)]
pub enum TrendBy {
    #[schema(rename = "all")]
    All,
    #[schema(rename = "owner")]
    Owner,
    #[schema(rename = "system")]
    System,
    #[schema(rename = "domain")]
    Domain,
}

#[derive(ToSchema)]
pub enum TrendInterval {
    #[schema(rename = "day")]
    Day,
    #[schema(rename = "week")]
    Week,
}

#[derive(ToSchema)]
pub struct Trend {
    pub scorecard: String,
    #[schema(inline)]
    pub by: TrendBy,
    #[schema(inline)]
    pub interval: TrendInterval,
    pub buckets: Vec<TrendBucket>,
}

/// What a definition would give against the catalog now; nothing is saved.
#[derive(ToSchema)]
pub struct DryRun {
    pub scorecard: ScorecardDefinition,
    /// Entities it applies to.
    pub evaluated: i64,
    pub total: GroupRollup,
    /// The first results, by entity ref.
    pub entities: Vec<EntityScorecard>,
}

/// A filter predicate (@backstage/filter-predicates): field paths to values ({"kind": "Component"}), or {"$all": [..]}, {"$any": [..]}, {"$not": ..}; values are primitives or {"$exists": bool}, {"$in": [..]}, {"$hasPrefix": ".."}, {"$contains": ..}. Matching is case-insensitive and an array matches when an item does.
#[derive(ToSchema)]
pub struct FilterPredicate {}

#[derive(ToSchema)]
pub enum EntitiesPredicateQueryOrderByItemOrder {
    #[schema(rename = "asc")]
    Asc,
    #[schema(rename = "desc")]
    Desc,
}

#[derive(ToSchema)]
pub struct EntitiesPredicateQueryOrderByItem {
    pub field: String,
    #[schema(inline)]
    pub order: EntitiesPredicateQueryOrderByItemOrder,
}

#[derive(ToSchema)]
pub struct EntitiesPredicateQueryFullTextFilter {
    #[schema(required = false)]
    pub term: String,
    #[schema(required = false)]
    pub fields: Vec<String>,
}

#[derive(ToSchema)]
pub enum EntitiesPredicateQueryTotalItems {
    #[schema(rename = "include")]
    Include,
    #[schema(rename = "exclude")]
    Exclude,
}

#[derive(ToSchema)]
pub struct EntitiesPredicateQuery {
    #[schema(required = false)]
    pub query: FilterPredicate,
    #[schema(min_length = 1)]
    pub cursor: Option<String>,
    #[schema(required = false, minimum = 0)]
    pub limit: i64,
    #[schema(required = false, minimum = 0)]
    pub offset: i64,
    #[serde(rename = "orderBy")]
    #[schema(required = false, inline)]
    pub order_by: Vec<EntitiesPredicateQueryOrderByItem>,
    #[serde(rename = "fullTextFilter")]
    #[schema(required = false, inline)]
    pub full_text_filter: EntitiesPredicateQueryFullTextFilter,
    #[schema(required = false)]
    pub fields: Vec<String>,
    #[serde(rename = "totalItems")]
    #[schema(required = false, inline)]
    pub total_items: EntitiesPredicateQueryTotalItems,
}

#[derive(ToSchema)]
pub struct EntityFacetsPredicateQuery {
    #[schema(min_items = 1)]
    pub facets: Vec<String>,
    #[schema(required = false)]
    pub query: FilterPredicate,
}

#[derive(ToSchema)]
pub struct ValidateEntityRequest {
    pub entity: BTreeMap<String, Value>,
    /// A location reference, type:target (url:https://...).
    pub location: String,
}

#[derive(ToSchema)]
pub struct ValidateEntityErrorsErrorsItem {
    pub name: String,
    pub message: String,
    #[schema(required = false)]
    pub kind: String,
    #[schema(required = false)]
    pub line: i64,
    #[schema(required = false)]
    pub column: i64,
}

#[derive(ToSchema)]
pub struct ValidateEntityErrors {
    #[schema(inline)]
    pub errors: Vec<ValidateEntityErrorsErrorsItem>,
}

#[derive(ToSchema)]
pub enum LocationInputPresence {
    #[schema(rename = "required")]
    Required,
    #[schema(rename = "optional")]
    Optional,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationInput {
    /// `url` (GitHub file URLs, read through the GitHub source), or `file` under `locations.allow_file_roots`.
    #[schema(examples(json!("url")), min_length = 1)]
    pub r#type: String,
    #[schema(examples(json!("https://github.com/acme/payments/blob/main/catalog-info.yaml")), min_length = 1)]
    pub target: String,
    #[schema(required = false, inline)]
    pub presence: LocationInputPresence,
}

/// The location; in a dry run its id is `type:target`.
#[derive(ToSchema)]
pub struct CreateLocationResponseLocation {
    pub id: String,
    pub r#type: String,
    pub target: String,
    #[serde(rename = "entityRef")]
    #[schema(required = false)]
    pub entity_ref: String,
}

#[derive(ToSchema)]
pub struct CreateLocationResponse {
    /// The location; in a dry run its id is `type:target`.
    #[schema(inline)]
    pub location: CreateLocationResponseLocation,
    /// Empty when registered; in a dry run, the location's own Location entity followed by what it yields.
    pub entities: Vec<Entity>,
    /// Dry runs only: whether the location is already known.
    #[schema(required = false)]
    pub exists: bool,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationsQuery {
    #[schema(min_length = 1)]
    pub cursor: Option<String>,
    #[schema(required = false, minimum = 1, default = json!(1000))]
    pub limit: i64,
    #[schema(required = false)]
    pub query: FilterPredicate,
}

#[derive(ToSchema)]
pub struct LocationsQueryResponsePageInfo {
    #[serde(rename = "nextCursor")]
    #[schema(required = false)]
    pub next_cursor: String,
}

#[derive(ToSchema)]
pub struct LocationsQueryResponse {
    pub items: Vec<Location>,
    #[serde(rename = "totalItems")]
    pub total_items: i64,
    #[serde(rename = "pageInfo")]
    #[schema(inline)]
    pub page_info: LocationsQueryResponsePageInfo,
}

#[derive(ToSchema)]
pub struct AnalyzeLocationRequest {
    pub location: LocationInput,
    #[serde(rename = "catalogFilename")]
    #[schema(default = json!("catalog-info.yaml"))]
    pub catalog_filename: Option<String>,
}

#[derive(ToSchema)]
pub struct AnalyzeLocationResponseExistingEntityFilesItemLocation {
    #[schema(required = false)]
    pub r#type: String,
    #[schema(required = false)]
    pub target: String,
}

#[derive(ToSchema)]
pub struct AnalyzeLocationResponseExistingEntityFilesItem {
    #[schema(inline)]
    pub location: AnalyzeLocationResponseExistingEntityFilesItemLocation,
    #[serde(rename = "isRegistered")]
    pub is_registered: bool,
    pub entity: Entity,
}

#[derive(ToSchema)]
pub struct AnalyzeLocationResponseGenerateEntitiesItem {
    #[schema(value_type = Object)]
    pub entity: Value,
    pub fields: Vec<BTreeMap<String, Value>>,
}

#[derive(ToSchema)]
pub struct AnalyzeLocationResponse {
    #[serde(rename = "existingEntityFiles")]
    #[schema(inline)]
    pub existing_entity_files: Vec<AnalyzeLocationResponseExistingEntityFilesItem>,
    #[serde(rename = "generateEntities")]
    #[schema(inline)]
    pub generate_entities: Vec<AnalyzeLocationResponseGenerateEntitiesItem>,
}

#[derive(ToSchema)]
pub enum HistoryEventEventType {
    #[schema(rename = "entity_created")]
    EntityCreated,
    #[schema(rename = "entity_updated")]
    EntityUpdated,
    #[schema(rename = "entity_deleted")]
    EntityDeleted,
    #[schema(rename = "location_created")]
    LocationCreated,
    #[schema(rename = "location_updated")]
    LocationUpdated,
    #[schema(rename = "location_deleted")]
    LocationDeleted,
}

#[derive(ToSchema)]
pub struct HistoryEvent {
    /// The change's number in commit order; the cursor that continues after it.
    #[serde(rename = "eventId")]
    pub event_id: String,
    #[serde(rename = "eventAt")]
    #[schema(format = DateTime)]
    pub event_at: String,
    #[serde(rename = "eventType")]
    #[schema(inline)]
    pub event_type: HistoryEventEventType,
    #[serde(rename = "entityRef")]
    #[schema(required = false)]
    pub entity_ref: String,
    #[serde(rename = "entityId")]
    #[schema(required = false)]
    pub entity_id: String,
    #[serde(rename = "locationRef")]
    pub location_ref: String,
    #[serde(rename = "locationId")]
    pub location_id: String,
    pub source: String,
    /// The id of the log event that caused it.
    #[serde(rename = "logEventId")]
    pub log_event_id: String,
    /// Who caused it through the API (a token's subject).
    #[schema(required = false)]
    pub by: String,
    /// Processing errors of the location after the change.
    #[schema(required = false)]
    pub errors: i64,
    pub before: Option<BTreeMap<String, Value>>,
    pub after: Option<BTreeMap<String, Value>>,
    #[schema(required = false)]
    pub patch: Vec<BTreeMap<String, Value>>,
}

#[derive(ToSchema)]
pub struct HistoryEventPagePageInfo {
    /// The eventId to continue after (the last change read, selected or not).
    pub cursor: String,
}

#[derive(ToSchema)]
pub struct HistoryEventPage {
    pub items: Vec<HistoryEvent>,
    #[serde(rename = "pageInfo")]
    #[schema(inline)]
    pub page_info: HistoryEventPagePageInfo,
}

#[derive(ToSchema)]
pub enum MetricSeriesInterval {
    #[schema(rename = "day")]
    Day,
    #[schema(rename = "week")]
    Week,
    #[schema(rename = "month")]
    Month,
}

#[derive(ToSchema)]
pub struct MetricSeriesBucketsItem {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
}

#[derive(ToSchema)]
pub struct MetricSeriesSeriesItem {
    /// The value of the `by` dimension (`(none)` for entities without one).
    pub key: String,
    /// entities; owned, orphaned, total, coverage; changes
    pub measure: String,
    /// One per bucket.
    pub values: Vec<f64>,
}

#[derive(ToSchema)]
pub struct MetricSeries {
    pub metric: String,
    #[schema(inline)]
    pub interval: MetricSeriesInterval,
    pub by: String,
    #[schema(inline)]
    pub buckets: Vec<MetricSeriesBucketsItem>,
    #[schema(inline)]
    pub series: Vec<MetricSeriesSeriesItem>,
}

#[derive(ToSchema)]
pub enum RollupByBy {
    #[schema(rename = "all")]
    All,
    #[schema(rename = "owner")]
    Owner,
    #[schema(rename = "system")]
    System,
    #[schema(rename = "domain")]
    Domain,
}

#[derive(ToSchema)]
pub enum TrendIntervalInterval {
    #[schema(rename = "day")]
    Day,
    #[schema(rename = "week")]
    Week,
}

#[derive(ToSchema)]
pub struct GetLocationsResponseItem {
    pub data: Location,
}

#[derive(ToSchema)]
pub enum CreateLocationQueryOnConflict {
    #[schema(rename = "reject")]
    Reject,
    #[schema(rename = "refresh")]
    Refresh,
}

#[derive(ToSchema)]
pub struct LivezResponse {
    #[schema(required = false)]
    pub live: bool,
}

#[derive(ToSchema)]
pub struct ReadyzResponse {
    pub ready: bool,
    pub lag: i64,
}

#[derive(ToSchema)]
pub struct ReadyzResponse503 {
    #[schema(required = false)]
    pub ready: bool,
    pub lag: Option<i64>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshEntityBody {
    #[serde(rename = "entityRef")]
    pub entity_ref: String,
    #[serde(rename = "authorizationToken")]
    #[schema(required = false)]
    pub authorization_token: String,
}

#[derive(ToSchema)]
pub enum HistoryEventsDiff {
    #[schema(rename = "full")]
    Full,
    #[schema(rename = "patch")]
    Patch,
}

#[derive(ToSchema)]
pub enum GetMetricPathMetric {
    #[schema(rename = "entities")]
    Entities,
    #[schema(rename = "ownership-coverage")]
    OwnershipCoverage,
    #[schema(rename = "catalog-coverage")]
    CatalogCoverage,
    #[schema(rename = "scorecard-levels")]
    ScorecardLevels,
    #[schema(rename = "technology")]
    Technology,
    #[schema(rename = "changes")]
    Changes,
}

#[derive(ToSchema)]
pub enum GetMetricQueryInterval {
    #[schema(rename = "day")]
    Day,
    #[schema(rename = "week")]
    Week,
    #[schema(rename = "month")]
    Month,
}

#[derive(ToSchema)]
pub enum GetMetricQueryBy {
    #[schema(rename = "all")]
    All,
    #[schema(rename = "kind")]
    Kind,
    #[schema(rename = "type")]
    Type,
    #[schema(rename = "lifecycle")]
    Lifecycle,
    #[schema(rename = "tag")]
    Tag,
    #[schema(rename = "owner")]
    Owner,
    #[schema(rename = "system")]
    System,
    #[schema(rename = "domain")]
    Domain,
    #[schema(rename = "namespace")]
    Namespace,
    #[schema(rename = "source")]
    Source,
    #[schema(rename = "change")]
    Change,
    #[schema(rename = "org")]
    Org,
    #[schema(rename = "team")]
    Team,
    #[schema(rename = "language")]
    Language,
    #[schema(rename = "topic")]
    Topic,
    #[schema(rename = "api-type")]
    ApiType,
    #[schema(rename = "dependency")]
    Dependency,
}

#[derive(ToSchema)]
pub enum GetMetricQueryFormat {
    #[schema(rename = "json")]
    Json,
    #[schema(rename = "csv")]
    Csv,
}

#[derive(ToSchema)]
pub enum ExportPathWhat {
    #[schema(rename = "entities")]
    Entities,
    #[schema(rename = "relations")]
    Relations,
    #[schema(rename = "history")]
    History,
    #[schema(rename = "scorecard-results")]
    ScorecardResults,
}

#[derive(ToSchema)]
pub enum ExportQueryFormat {
    #[schema(rename = "jsonl")]
    Jsonl,
    #[schema(rename = "csv")]
    Csv,
    #[schema(rename = "parquet")]
    Parquet,
}

/// What `POST /api/catalog/validate-entity` answers with 400: the
/// entity's errors, or an error when the request is not a validation
/// request at all.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ValidateEntityFailure {
    Invalid(ValidateEntityErrors),
    Malformed(Error),
}

/// A Parquet file.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ParquetFile(Vec<u8>);

/// `true`, the only value.
fn always_true() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

/// Check id -> `[before, after]`, each a [`CheckStatus`] or null.
fn check_changes() -> Object {
    let status = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([
            Value::from("pass"),
            Value::from("fail"),
            Value::from("exempt"),
            Value::Null,
        ]));
    let pair = ArrayBuilder::new()
        .items(status)
        .min_items(Some(2))
        .max_items(Some(2));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Checks whose status changed: check id -> [before, after] (null: no result).",
        ))
        .additional_properties(Some(pair))
        .build()
}

/// Parameters of the operations.
pub mod params {
    use super::*;
    use utoipa::IntoParams;

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct Kind {
        /// Entity kind, case-insensitive.
        pub kind: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct Namespace {
        /// Entity namespace, case-insensitive.
        pub namespace: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct Name {
        /// Entity name, case-insensitive.
        pub name: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct Uid {
        /// The entity's metadata.uid.
        pub uid: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct LocationId {
        /// The location's id (a UUID).
        pub id: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Filter {
        /// Filter sets, OR'ed across parameters. Each is comma-separated conditions, AND'ed: `key=value` (values of the same key OR'ed) or `key` alone (the key exists). Keys are dotted paths into the entity, `relations.<type>` for relations (e.g. `relations.ownedby=group:default/team-a`). Case-insensitive.
        #[param(example = json!(["kind=component,spec.type=service", "kind=group"]), style = Form, explode)]
        pub filter: Option<Vec<String>>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Fields {
        /// Comma-separated dotted paths to keep of each entity (repeatable); the rest is pruned. A path naming a subtree keeps all of it.
        #[param(example = json!(["kind", "metadata.name"]), style = Form, explode = false)]
        pub fields: Option<Vec<String>>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Limit {
        /// Number of entities to return.
        #[param(minimum = 1)]
        pub limit: Option<i64>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct QueryLimit {
        /// Number of entities to return (200 when not given; 0 returns only totalItems).
        #[param(minimum = 0, default = json!(200))]
        pub limit: Option<i64>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Offset {
        /// Number of entities to skip.
        #[param(minimum = 0)]
        pub offset: Option<i64>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct After {
        /// Opaque cursor from the `Link: <...>; rel="next"` header of the previous page.
        #[param(min_length = 1)]
        pub after: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Order {
        /// Sort keys, `asc:<field>` or `desc:<field>` (repeatable). Entities without the field come last. Default: by entity ref.
        #[param(example = json!(["asc:metadata.name"]), style = Form, explode)]
        pub order: Option<Vec<String>>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct OrderField {
        /// Sort keys, `<field>,asc` or `<field>,desc` (repeatable; direction defaults to asc). Entities without the field come last; ties by entity ref. Default: by entity ref.
        #[param(rename = "orderField", example = json!(["metadata.name,desc"]), style = Form, explode)]
        pub order_field: Option<Vec<String>>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Cursor {
        /// Opaque cursor from `pageInfo.nextCursor` or `pageInfo.prevCursor`. It carries the original filter, orderField and full-text filter, which are ignored when a cursor is given.
        #[param(min_length = 1)]
        pub cursor: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct FullTextFilterTerm {
        /// Case-insensitive substring to look for in the values of `fullTextFilterFields`.
        #[param(rename = "fullTextFilterTerm")]
        pub full_text_filter_term: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct FullTextFilterFields {
        /// Comma-separated fields the full-text term is matched against; default the first orderField, else metadata.uid (as in Backstage).
        #[param(rename = "fullTextFilterFields", style = Form, explode = false)]
        pub full_text_filter_fields: Option<Vec<String>>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Facet {
        /// Dotted paths to count values of (repeatable).
        #[param(example = json!(["kind", "spec.type"]), style = Form, explode)]
        pub facet: Vec<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct ScorecardId {
        /// The scorecard's id (the `id` of its definition).
        #[param(example = json!("production-readiness"))]
        pub id: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct ExemptionId {
        /// The exemption's id (a UUID).
        #[param(rename = "exemptionId", format = "uuid")]
        pub exemption_id: String,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ScorecardLevel {
        /// Only entities at this level (a level name of the scorecard), or `none` for those that reached no level.
        #[param(example = json!("silver"))]
        pub level: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ScorecardOwner {
        /// Only entities owned by this group or one of its descendant groups: a group ref, `team-a` or `group:default/team-a`.
        #[param(example = json!("group:default/team-a"))]
        pub owner: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ResultsCursor {
        /// Opaque cursor from `pageInfo.nextCursor` of the previous page.
        #[param(min_length = 1)]
        pub cursor: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ResultsLimit {
        /// Results per page (default 100, at most 1000).
        #[param(minimum = 1, maximum = 1000, default = json!(100))]
        pub limit: Option<i64>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct RollupBy {
        /// How to group: by owner group (each entity counts in its owner and every ancestor group), system, domain, or `all` (one group, `*`).
        #[param(inline, default = json!("all"))]
        pub by: Option<RollupByBy>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct RollupGroup {
        /// Only this group (an owner group ref such as `team-a` or `group:default/team-a`, a system or domain ref, or `*` with by=all): a point lookup.
        pub group: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct TrendGroup {
        /// Only this group; needs `by` other than `all`. For `by=owner` a group ref (`team-a` or `group:default/team-a`), else a system or domain ref.
        pub group: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct TrendFrom {
        /// Start: a date (`2026-01-31`, midnight UTC) or an RFC 3339 time. Default: 29 days (interval=day) or 11 weeks (interval=week) before `to`. Years 1970 to 9000.
        #[param(example = json!("2026-01-01"))]
        pub from: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct TrendTo {
        /// End: a date (`2026-01-31`, midnight UTC) or an RFC 3339 time. Default: now. At most 400 intervals from `from`. Years 1970 to 9000.
        #[param(example = json!("2026-01-31T12:00:00Z"))]
        pub to: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct TrendInterval {
        /// Bucket size: days from midnight UTC, or weeks from Monday.
        #[param(inline, default = json!("day"))]
        pub interval: Option<TrendIntervalInterval>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct History {
        /// How many of the most recent result changes to include per scorecard (default 10, at most 1000; 0 for none).
        #[param(minimum = 0, maximum = 1000, default = json!(10))]
        pub history: Option<i64>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct DryRunLimit {
        /// How many entity results to return (default 50, at most 1000); all are evaluated and counted in `total`.
        #[param(minimum = 0, maximum = 1000, default = json!(50))]
        pub limit: Option<i64>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct RevokeAuthor {
        /// Who revokes, when there is no request body.
        #[param(min_length = 1)]
        pub author: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct RevokeReason {
        /// Why, when there is no request body.
        pub reason: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct RollupChecks {
        /// Whether to include the pass rate per check (default true); false makes answers for many groups smaller.
        #[param(default = json!(true))]
        pub checks: Option<bool>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct AsOf {
        /// Answer as the catalog stood at this instant (RFC 3339; not in the future). A time before the first change answers an empty catalog. Cursors made with it keep it.
        #[param(rename = "asOf", format = DateTime)]
        pub as_of: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct CreateLocationQuery {
        /// `true`: read and process the location now, register nothing.
        #[param(rename = "dryRun")]
        pub dry_run: Option<String>,
        /// `reject` (default): 409 when the location exists; `refresh`: refresh it and answer it.
        #[param(rename = "onConflict", inline)]
        pub on_conflict: Option<CreateLocationQueryOnConflict>,
    }

    /// The change feed's selection and paging, as a page and as a stream.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct HistoryEventsQuery {
        /// The eventId of the last change seen (0 or absent: from the start of history; `now`: only changes committed from now on). `cursor` is the same.
        #[param(pattern = "^([0-9]{1,20}|now)$")]
        pub after: Option<String>,
        /// Alias of `after`.
        #[param(pattern = "^[0-9]{1,20}$")]
        pub cursor: Option<String>,
        /// Changes per page (at most 1000).
        #[param(minimum = 1, maximum = 1000, default = json!(100))]
        pub limit: Option<i64>,
        /// Kinds of change (`entity`, `location`, `scorecard`, or an event type such as `entity_updated`), or entity kinds (`component`); comma-separated or repeated.
        #[param(style = Form, explode)]
        pub kind: Option<Vec<String>>,
        /// Changes of these entities only.
        #[param(rename = "entityRef", style = Form, explode)]
        pub entity_ref: Option<Vec<String>>,
        /// Changes from these location keys only (`file:/org/a.yaml`).
        #[param(style = Form, explode)]
        pub location: Option<Vec<String>>,
        /// `full` (default): the bodies before and after; `patch`: their RFC 6902 JSON Patch.
        #[param(inline)]
        pub diff: Option<HistoryEventsDiff>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct LongPoll {
        /// Seconds an empty page waits for a change (a long poll), at most 60 and under the request time limit.
        #[param(minimum = 0, maximum = 60)]
        pub wait: Option<f64>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Header)]
    pub struct StreamHistoryEventsHeader {
        #[param(rename = "Last-Event-ID", pattern = "^[0-9]{1,20}$")]
        pub last_event_id: Option<String>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct GetMetricPath {
        #[param(inline)]
        pub metric: GetMetricPathMetric,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct GetMetricQuery {
        /// A date or RFC 3339 time (default: 12 weeks before `to`).
        pub from: Option<String>,
        /// A date or RFC 3339 time (default: now).
        pub to: Option<String>,
        #[param(inline, default = json!("week"))]
        pub interval: Option<GetMetricQueryInterval>,
        #[param(inline)]
        pub by: Option<GetMetricQueryBy>,
        /// The GET filter language, on each entity as it stood (not for changes).
        #[param(style = Form, explode)]
        pub filter: Option<Vec<String>>,
        /// scorecard-levels: the scorecard's id.
        #[param(min_length = 1)]
        pub scorecard: Option<String>,
        /// technology by dependency: only entities depending on this ref.
        #[param(min_length = 1)]
        pub target: Option<String>,
        #[param(inline)]
        pub format: Option<GetMetricQueryFormat>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct ExportPath {
        #[param(inline)]
        pub what: ExportPathWhat,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ExportQuery {
        #[param(inline, default = json!("jsonl"))]
        pub format: Option<ExportQueryFormat>,
    }
}

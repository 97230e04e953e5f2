//! The `aws` source: every resource of a set of accounts and regions, read
//! with the official AWS SDK for Rust, as a Backstage `Resource` with its
//! facts ([`super::cloud`] maps them).
//!
//! ```yaml
//! - id: aws-prod
//!   type: aws
//!   schedule: "0 */10 * * * *"
//!   aws:
//!     accounts:                       # default: the credentials' own account
//!       - {id: "123456789012", role_arn: "arn:aws:iam::123456789012:role/catalog-reader", external_id: x}
//!     regions: [eu-west-1, us-east-1]
//!     credentials_file: /run/secrets/aws   # default: the SDK's chain (env, profile, web identity, IMDS)
//!     profile: catalog
//!     endpoint_url: http://127.0.0.1:5000  # tests only
//!     services: [ec2, lambda, s3, rds, dynamodb, sqs, sns, eks, ecs]
//!     tagging_api: true               # also every other tagged resource
//!     details_interval_secs: 3600     # per-resource calls are re-made this often
//!     max_attempts: 5                 # per call, throttling included
//!     mapping: {owner_tag: owner, system_tag: system, lifecycle_tag: env}
//! ```
//!
//! Per account and region: the Resource Groups Tagging API (`GetResources`,
//! paginated) gives every tagged resource with its tags; the listing calls
//! of each service give every resource of the types above, tagged or not
//! (an untagged resource is an entity too, owned by `mapping.default_owner`),
//! with what they say of it in bulk (RDS encryption and backups, EC2 state
//! and public address, Lambda runtime). Calls about one resource
//! (S3 encryption and public access block, DynamoDB encryption and
//! point-in-time recovery, SQS and SNS encryption, EKS version and endpoint)
//! are made when it is first seen and then every `details_interval_secs`,
//! so a re-poll costs the listing calls only.
//!
//! Throttling is the SDK's standard retry mode: exponential backoff with
//! jitter, up to `max_attempts` per call. An account or region where a
//! listing call fails is left out whole: it lists nothing and removes
//! nothing, and the failure is in the sync's problems.

use super::cloud::Mapping;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[cfg(feature = "clouds")]
mod sdk;
#[cfg(feature = "clouds")]
pub use sdk::AwsSource;

/// The services listed one by one (so that untagged resources are seen).
pub const SERVICES: [&str; 9] = [
    "ec2", "lambda", "s3", "rds", "dynamodb", "sqs", "sns", "eks", "ecs",
];

/// The `aws:` settings of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Accounts to read; empty: the account of the credentials themselves.
    #[serde(default)]
    pub accounts: Vec<AwsAccount>,
    pub regions: Vec<String>,
    /// A shared credentials file (`[profile]` sections) to read credentials
    /// from, instead of the SDK's default chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// The profile to use (of `credentials_file`, or of the default files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Sends every call here instead of AWS (a local emulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default = "default_services")]
    pub services: Vec<String>,
    /// Every other resource the Tagging API knows becomes an entity too.
    #[serde(default = "yes")]
    pub tagging_api: bool,
    #[serde(default = "default_details_interval")]
    pub details_interval_secs: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First backoff of a retried call (then exponential, with jitter).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default)]
    pub mapping: Mapping,
}

/// One account to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsAccount {
    pub id: String,
    /// Assumed (through STS) with the source's credentials; absent: the
    /// credentials are used as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

fn default_services() -> Vec<String> {
    SERVICES.iter().map(|s| s.to_string()).collect()
}
fn yes() -> bool {
    true
}
fn default_details_interval() -> u64 {
    3600
}
fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    200
}

impl AwsConfig {
    /// A configuration reading `regions` with the default credentials.
    pub fn new(regions: &[&str]) -> Self {
        AwsConfig {
            accounts: Vec::new(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            credentials_file: None,
            profile: None,
            endpoint_url: None,
            services: default_services(),
            tagging_api: true,
            details_interval_secs: default_details_interval(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            mapping: Mapping::default(),
        }
    }

    /// Checks the settings, naming the field (relative to `aws`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.regions.is_empty() {
            return Err(("regions".into(), "must list at least one region".into()));
        }
        for (i, r) in self.regions.iter().enumerate() {
            let ok = !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err((format!("regions[{i}]"), format!("{r:?} is not a region")));
            }
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if a.id.len() != 12 || !a.id.chars().all(|c| c.is_ascii_digit()) {
                return Err((
                    format!("accounts[{i}].id"),
                    format!("{:?} is not a 12-digit account id", a.id),
                ));
            }
            if let Some(role) = &a.role_arn
                && !role.starts_with("arn:")
            {
                return Err((
                    format!("accounts[{i}].role_arn"),
                    format!("{role:?} is not an ARN"),
                ));
            }
            if a.external_id.is_some() && a.role_arn.is_none() {
                return Err((
                    format!("accounts[{i}].external_id"),
                    "applies only with role_arn".into(),
                ));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            if !SERVICES.contains(&s.as_str()) {
                return Err((
                    format!("services[{i}]"),
                    format!("unknown service {s:?} (known: {})", SERVICES.join(", ")),
                ));
            }
        }
        if let Some(url) = &self.endpoint_url
            && url::Url::parse(url).is_err()
        {
            return Err(("endpoint_url".into(), format!("{url:?} is not a URL")));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts".into(), "must be at least 1".into()));
        }
        self.mapping
            .validate()
            .map_err(|(f, m)| (format!("mapping.{f}"), m))
    }
}

/// An AWS source's status.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AwsDetails {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    /// Resources in the last listing, and those without an owner tag.
    pub resources: usize,
    pub unowned: usize,
    /// Operations and HTTP requests since start (requests - operations =
    /// retries, throttling included).
    pub operations: u64,
    pub calls: u64,
    /// Account/region scopes the last listing could not read, with why.
    pub failed_scopes: Vec<String>,
}

/// Whether a service's listing covers resources of this type.
pub fn covered(service: &str, resource_type: &str) -> bool {
    matches!(
        (service, resource_type),
        ("ec2", "instance")
            | ("lambda", "function")
            | ("s3", "bucket")
            | ("rds", "db")
            | ("dynamodb", "table")
            | ("sqs", "queue")
            | ("sns", "topic")
            | ("eks", "cluster")
            | ("ecs", "service")
    )
}

/// (service, resource type, short name) of an ARN
/// (`arn:partition:service:region:account:resource`).
pub fn parse_arn(arn: &str) -> Option<(String, String, String)> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    let service = parts.next()?.to_string();
    let _region = parts.next()?;
    let _account = parts.next()?;
    let resource = parts.next()?;
    if service.is_empty() || resource.is_empty() {
        return None;
    }
    let (resource_type, id) = match service.as_str() {
        "s3" if !resource.contains('/') => ("bucket".to_string(), resource),
        "sqs" => ("queue".to_string(), resource),
        "sns" if !resource.contains(':') => ("topic".to_string(), resource),
        _ => match resource.find(['/', ':']) {
            Some(i) => (resource[..i].to_string(), &resource[i + 1..]),
            None => ("resource".to_string(), resource),
        },
    };
    let short = id.rsplit(['/', ':']).next().unwrap_or(id).to_string();
    Some((service, resource_type, short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_parsed() {
        let p = |a: &str| parse_arn(a).map(|(s, t, n)| format!("{s}|{t}|{n}"));
        assert_eq!(p("arn:aws:s3:::my-bucket").unwrap(), "s3|bucket|my-bucket");
        assert_eq!(
            p("arn:aws:sqs:eu-west-1:123456789012:orders").unwrap(),
            "sqs|queue|orders"
        );
        assert_eq!(
            p("arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc").unwrap(),
            "ec2|instance|i-0abc"
        );
        assert_eq!(
            p("arn:aws:rds:eu-west-1:123456789012:db:orders").unwrap(),
            "rds|db|orders"
        );
        assert_eq!(
            p("arn:aws:ecs:eu-west-1:123456789012:service/prod/web").unwrap(),
            "ecs|service|web"
        );
        assert_eq!(
            p("arn:aws:elasticache:eu-west-1:1:cluster:cache-1").unwrap(),
            "elasticache|cluster|cache-1"
        );
        assert_eq!(
            p("arn:aws:sns:eu-west-1:1:alerts").unwrap(),
            "sns|topic|alerts"
        );
        assert_eq!(p("arn:aws:iam::1:root").unwrap(), "iam|resource|root");
        for bad in ["", "arn", "arn:aws", "not:an:arn:x:y:z", "arn:aws:::1:"] {
            assert_eq!(parse_arn(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn config_is_checked_naming_the_field() {
        let mut c = AwsConfig::new(&["eu-west-1"]);
        assert!(c.validate().is_ok());
        c.regions.clear();
        assert_eq!(c.validate().unwrap_err().0, "regions");
        let mut c = AwsConfig::new(&["eu-west-1"]);
        c.accounts.push(AwsAccount {
            id: "12".into(),
            role_arn: None,
            external_id: None,
        });
        assert_eq!(c.validate().unwrap_err().0, "accounts[0].id");
        let mut c = AwsConfig::new(&["eu-west-1"]);
        c.services.push("glue".into());
        assert_eq!(c.validate().unwrap_err().0, "services[9]");
        let mut c = AwsConfig::new(&["EU West"]);
        assert_eq!(c.validate().unwrap_err().0, "regions[0]");
        c.regions = vec!["eu-west-1".into()];
        c.mapping.namespace = String::new();
        assert_eq!(c.validate().unwrap_err().0, "mapping.namespace");
    }
}

//! The AWS source's calls, through the official SDK.

use super::{AwsConfig, AwsDetails, covered, parse_arn};
use crate::source::{Known, Listing, Source, SourceDetails, SourceError};
use crate::sources::cloud::{self, CloudResource};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::SdkConfig;
use aws_types::region::Region;
use proto::{CloudResourceFacts, SourceId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Calls made, for the status API and the benchmark.
#[derive(Debug, Default)]
struct Counters {
    /// Operations (each may take several attempts).
    operations: AtomicU64,
    /// HTTP requests sent (attempts).
    calls: AtomicU64,
}

/// Counts operations and attempts of every client.
#[derive(Debug, Clone)]
struct Counting(Arc<Counters>);

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "catalog-call-counter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.operations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// What calls about one resource said, and when.
#[derive(Debug, Clone)]
struct Details {
    at: Instant,
    facts: CloudResourceFacts,
    /// The ARN when only the detail call gives it, and tags it gives.
    arn: Option<String>,
    tags: BTreeMap<String, String>,
    region: Option<String>,
}

impl Details {
    fn now() -> Self {
        Details {
            at: Instant::now(),
            facts: CloudResourceFacts::default(),
            arn: None,
            tags: BTreeMap::new(),
            region: None,
        }
    }
}

/// Per-resource calls in flight at once (per region).
const DETAIL_CONCURRENCY: usize = 16;

/// An `aws` source instance.
pub struct AwsSource {
    id: SourceId,
    cfg: AwsConfig,
    rt: tokio::runtime::Runtime,
    counters: Arc<Counters>,
    details: Mutex<HashMap<String, Details>>,
    /// The SDK configuration of each account (its credentials cache).
    configs: tokio::sync::Mutex<HashMap<String, SdkConfig>>,
    /// The credentials' own account, when no accounts are configured.
    own_account: tokio::sync::Mutex<Option<String>>,
    last: Mutex<AwsDetails>,
    stop: Mutex<Option<Arc<AtomicBool>>>,
}

impl std::fmt::Debug for AwsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSource")
            .field("id", &self.id)
            .field("regions", &self.cfg.regions)
            .finish()
    }
}

type Failure = String;

impl AwsSource {
    pub fn new(id: SourceId, cfg: AwsConfig) -> Result<Self, String> {
        cfg.validate().map_err(|(f, m)| format!("aws.{f}: {m}"))?;
        if let Some(path) = &cfg.credentials_file
            && !path.is_file()
        {
            return Err(format!(
                "aws.credentials_file: {} is not a readable file",
                path.display()
            ));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for the AWS SDK: {e}"))?;
        Ok(AwsSource {
            id,
            cfg,
            rt,
            counters: Arc::default(),
            details: Mutex::default(),
            configs: tokio::sync::Mutex::default(),
            own_account: tokio::sync::Mutex::default(),
            last: Mutex::default(),
            stop: Mutex::default(),
        })
    }

    /// Operations and HTTP requests made since start.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.counters.operations.load(Ordering::Relaxed),
            self.counters.calls.load(Ordering::Relaxed),
        )
    }

    fn stopped(&self) -> bool {
        lock(&self.stop)
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// The SDK configuration shared by every account: region, endpoint,
    /// credentials, retries and timeouts.
    async fn base_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.cfg.regions[0].clone()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.cfg.max_attempts)
                    .with_initial_backoff(Duration::from_millis(self.cfg.initial_backoff_ms))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(url) = &self.cfg.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(file) = &self.cfg.credentials_file {
            let files = aws_runtime::env_config::file::EnvConfigFiles::builder()
                .with_file(
                    aws_runtime::env_config::file::EnvConfigFileKind::Credentials,
                    file,
                )
                .build();
            let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_files(files)
                .profile_name(self.cfg.profile.as_deref().unwrap_or("default"))
                .build();
            loader = loader.credentials_provider(provider);
        } else if let Some(profile) = &self.cfg.profile {
            loader = loader.profile_name(profile);
        }
        loader.load().await
    }

    /// The accounts to read: (id, SDK configuration with its credentials).
    async fn accounts(&self) -> Vec<(String, Result<SdkConfig, Failure>)> {
        let mut configs = self.configs.lock().await;
        let base = match configs.get("") {
            Some(c) => c.clone(),
            None => {
                let c = self.base_config().await;
                configs.insert(String::new(), c.clone());
                c
            }
        };
        if self.cfg.accounts.is_empty() {
            let mut own = self.own_account.lock().await;
            if own.is_none() {
                let sts = aws_sdk_sts::Client::from_conf(
                    aws_sdk_sts::config::Builder::from(&base)
                        .interceptor(Counting(self.counters.clone()))
                        .build(),
                );
                match sts.get_caller_identity().send().await {
                    Ok(who) => *own = who.account().map(str::to_string),
                    Err(e) => {
                        return vec![(
                            "self".into(),
                            Err(format!(
                                "STS GetCallerIdentity: {}",
                                aws_sdk_sts::error::DisplayErrorContext(&e)
                            )),
                        )];
                    }
                }
            }
            return match own.as_ref() {
                Some(a) => vec![(a.clone(), Ok(base))],
                None => vec![(
                    "self".into(),
                    Err("STS GetCallerIdentity named no account".into()),
                )],
            };
        }
        let mut out = Vec::new();
        for a in &self.cfg.accounts {
            let Some(role) = &a.role_arn else {
                out.push((a.id.clone(), Ok(base.clone())));
                continue;
            };
            if let Some(c) = configs.get(&a.id) {
                out.push((a.id.clone(), Ok(c.clone())));
                continue;
            }
            let mut b = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("catalog-ingest")
                .configure(&base);
            if let Some(x) = &a.external_id {
                b = b.external_id(x);
            }
            let provider = b.build().await;
            let c = base
                .to_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
            configs.insert(a.id.clone(), c.clone());
            out.push((a.id.clone(), Ok(c)));
        }
        out
    }

    async fn list_all(&self) -> Listing {
        let mut resources = Vec::new();
        let mut listed = Vec::new();
        let mut failed: Vec<(String, String)> = Vec::new();
        let mut accounts = Vec::new();
        for (account, config) in self.accounts().await {
            accounts.push(account.clone());
            let config = match config {
                Ok(c) => c,
                Err(e) => {
                    for r in &self.cfg.regions {
                        failed.push((cloud::scope_prefix("aws", &account, r), e.clone()));
                    }
                    continue;
                }
            };
            // Buckets are listed once per account and fall into the scope
            // of their region.
            let buckets = if self.wants("s3") {
                Some(self.buckets(&config).await)
            } else {
                None
            };
            let regions = self.cfg.regions.iter().map(|region| {
                let config = config
                    .to_builder()
                    .region(Region::new(region.clone()))
                    .build();
                let buckets = buckets.as_ref();
                let account = account.clone();
                async move {
                    let r = match buckets {
                        Some(Err(e)) => Err(e.clone()),
                        _ => {
                            let mine: Vec<(String, Option<String>)> = buckets
                                .and_then(|b| b.as_ref().ok())
                                .map(|b| {
                                    b.iter()
                                        .filter(|(_, r)| r.as_deref() == Some(region.as_str()))
                                        .cloned()
                                        .collect()
                                })
                                .unwrap_or_default();
                            self.list_region(&config, &account, region, &mine).await
                        }
                    };
                    (region.clone(), r)
                }
            });
            for (region, r) in futures_util::future::join_all(regions).await {
                let prefix = cloud::scope_prefix("aws", &account, &region);
                match r {
                    Ok(mut rs) => {
                        listed.push(prefix);
                        resources.append(&mut rs);
                    }
                    Err(e) => failed.push((prefix, e)),
                }
            }
        }
        if self.stopped() {
            failed.push(("aws".into(), "stopped".into()));
        }
        let unowned = resources
            .iter()
            .filter(|r| cloud::is_unowned(r, &self.cfg.mapping))
            .count();
        let (operations, calls) = self.calls();
        *lock(&self.last) = AwsDetails {
            accounts,
            regions: self.cfg.regions.clone(),
            resources: resources.len(),
            unowned,
            operations,
            calls,
            failed_scopes: failed.iter().map(|(s, e)| format!("{s}: {e}")).collect(),
        };
        cloud::listing(&resources, &self.cfg.mapping, &listed, &failed)
    }

    fn wants(&self, service: &str) -> bool {
        self.cfg.services.iter().any(|s| s == service)
    }

    fn fresh(&self, key: &str) -> Option<Details> {
        let every = Duration::from_secs(self.cfg.details_interval_secs);
        lock(&self.details)
            .get(key)
            .filter(|d| d.at.elapsed() < every)
            .cloned()
    }

    fn remember(&self, key: String, d: Details) {
        lock(&self.details).insert(key, d);
    }

    /// Makes the per-resource calls of every key whose details are not
    /// fresh, [`DETAIL_CONCURRENCY`] at a time, and remembers what they
    /// said.
    async fn refresh_details<F, Fut>(&self, keys: impl IntoIterator<Item = String>, fetch: F)
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Details>,
    {
        use futures_util::StreamExt;
        let missing: Vec<String> = keys
            .into_iter()
            .filter(|k| self.fresh(k).is_none())
            .collect();
        let got: Vec<(String, Details)> = futures_util::stream::iter(missing)
            .map(|k| {
                let call = fetch(k.clone());
                async move { (k, call.await) }
            })
            .buffer_unordered(DETAIL_CONCURRENCY)
            .collect()
            .await;
        let mut all = lock(&self.details);
        for (k, d) in got {
            all.insert(k, d);
        }
    }

    /// What the per-resource calls said of `key` (nothing, if they were
    /// not made).
    fn details_of(&self, key: &str) -> Details {
        lock(&self.details)
            .get(key)
            .cloned()
            .unwrap_or_else(Details::now)
    }

    /// Every bucket of the account, with its region.
    async fn buckets(&self, config: &SdkConfig) -> Result<Vec<(String, Option<String>)>, Failure> {
        let s3 = self.s3(config);
        let mut out = Vec::new();
        let mut pages = s3.list_buckets().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                format!(
                    "S3 ListBuckets: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })?;
            for b in page.buckets() {
                let Some(name) = b.name() else { continue };
                let region = match b.bucket_region() {
                    Some(r) => Some(r.to_string()),
                    None => self.bucket_region(&s3, name).await,
                };
                out.push((name.to_string(), region));
            }
        }
        Ok(out)
    }

    async fn bucket_region(&self, s3: &aws_sdk_s3::Client, name: &str) -> Option<String> {
        let key = format!("s3-region:{name}");
        if let Some(d) = lock(&self.details).get(&key) {
            return d.region.clone();
        }
        let region = match s3.get_bucket_location().bucket(name).send().await {
            // An empty constraint is us-east-1.
            Ok(o) => Some(
                o.location_constraint()
                    .map(|c| c.as_str().to_string())
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "us-east-1".into()),
            ),
            Err(_) => None,
        };
        self.remember(
            key,
            Details {
                at: Instant::now(),
                facts: CloudResourceFacts::default(),
                arn: None,
                tags: BTreeMap::new(),
                region: region.clone(),
            },
        );
        region
    }

    fn s3(&self, config: &SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(config)
                .force_path_style(self.cfg.endpoint_url.is_some())
                .interceptor(Counting(self.counters.clone()))
                .build(),
        )
    }

    /// Everything in one account and region, or why not.
    async fn list_region(
        &self,
        config: &SdkConfig,
        account: &str,
        region: &str,
        buckets: &[(String, Option<String>)],
    ) -> Result<Vec<CloudResource>, Failure> {
        let counting = Counting(self.counters.clone());
        let tags = self.tagged(config, counting.clone()).await?;
        let mut out: BTreeMap<String, CloudResource> = BTreeMap::new();
        let new = |service: &str, resource_type: &str, arn: &str, short: &str| CloudResource {
            provider: "aws",
            account: account.to_string(),
            scope: region.to_string(),
            region: Some(region.to_string()),
            service: service.to_string(),
            resource_type: resource_type.to_string(),
            id: arn.to_string(),
            short_name: short.to_string(),
            tags: tags.get(arn).cloned().unwrap_or_default(),
            facts: CloudResourceFacts::default(),
        };
        let partition = "aws";
        if self.wants("ec2") {
            let ec2 = aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut pages = ec2.describe_instances().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "EC2 DescribeInstances: {}",
                        aws_sdk_ec2::error::DisplayErrorContext(&e)
                    )
                })?;
                for i in page.reservations().iter().flat_map(|r| r.instances()) {
                    let Some(id) = i.instance_id() else { continue };
                    let state = i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string());
                    if state.as_deref() == Some("terminated") {
                        continue;
                    }
                    let arn = format!("arn:{partition}:ec2:{region}:{account}:instance/{id}");
                    let mut r = new("ec2", "instance", &arn, id);
                    for t in i.tags() {
                        if let (Some(k), Some(v)) = (t.key(), t.value()) {
                            r.tags.insert(k.into(), v.into());
                        }
                    }
                    r.facts.status = state;
                    r.facts.public = Some(i.public_ip_address().is_some());
                    r.facts.runtime = i.instance_type().map(|t| t.as_str().to_string());
                    out.insert(arn, r);
                }
            }
        }
        if self.wants("lambda") {
            let lambda = aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut pages = lambda.list_functions().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "Lambda ListFunctions: {}",
                        aws_sdk_lambda::error::DisplayErrorContext(&e)
                    )
                })?;
                for f in page.functions() {
                    let (Some(arn), Some(name)) = (f.function_arn(), f.function_name()) else {
                        continue;
                    };
                    let mut r = new("lambda", "function", arn, name);
                    r.facts.runtime = f.runtime().map(|x| x.as_str().to_string());
                    r.facts.status = f.state().map(|s| s.as_str().to_string());
                    out.insert(arn.to_string(), r);
                }
            }
        }
        if self.wants("s3") {
            let s3 = self.s3(config);
            let arn_of = |name: &str| format!("arn:{partition}:s3:::{name}");
            self.refresh_details(buckets.iter().map(|(n, _)| arn_of(n)), |arn| {
                let s3 = s3.clone();
                async move {
                    let name = arn.rsplit(':').next().unwrap_or_default().to_string();
                    let encrypted = match s3.get_bucket_encryption().bucket(&name).send().await {
                        Ok(o) => Some(
                            o.server_side_encryption_configuration()
                                .is_some_and(|c| !c.rules().is_empty()),
                        ),
                        Err(e)
                            if error_code(&e)
                                == Some("ServerSideEncryptionConfigurationNotFoundError") =>
                        {
                            Some(false)
                        }
                        Err(_) => None,
                    };
                    let public = match s3.get_public_access_block().bucket(&name).send().await {
                        Ok(o) => o.public_access_block_configuration().map(|c| {
                            !(c.block_public_acls() == Some(true)
                                && c.ignore_public_acls() == Some(true)
                                && c.block_public_policy() == Some(true)
                                && c.restrict_public_buckets() == Some(true))
                        }),
                        Err(e)
                            if error_code(&e) == Some("NoSuchPublicAccessBlockConfiguration") =>
                        {
                            Some(true)
                        }
                        Err(_) => None,
                    };
                    Details {
                        facts: CloudResourceFacts {
                            encrypted,
                            public,
                            ..CloudResourceFacts::default()
                        },
                        ..Details::now()
                    }
                }
            })
            .await;
            for (name, _) in buckets {
                let arn = arn_of(name);
                let mut r = new("s3", "bucket", &arn, name);
                r.facts = self.details_of(&arn).facts;
                out.insert(arn, r);
            }
        }
        if self.wants("rds") {
            let rds = aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut pages = rds.describe_db_instances().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "RDS DescribeDBInstances: {}",
                        aws_sdk_rds::error::DisplayErrorContext(&e)
                    )
                })?;
                for db in page.db_instances() {
                    let (Some(arn), Some(name)) =
                        (db.db_instance_arn(), db.db_instance_identifier())
                    else {
                        continue;
                    };
                    let mut r = new("rds", "db", arn, name);
                    for t in db.tag_list() {
                        if let (Some(k), Some(v)) = (t.key(), t.value()) {
                            r.tags.insert(k.into(), v.into());
                        }
                    }
                    r.facts.encrypted = db.storage_encrypted();
                    r.facts.backups = db.backup_retention_period().map(|d| d > 0);
                    r.facts.public = db.publicly_accessible();
                    r.facts.engine = db.engine().map(str::to_string);
                    r.facts.engine_version = db.engine_version().map(str::to_string);
                    r.facts.status = db.db_instance_status().map(str::to_string);
                    out.insert(arn.to_string(), r);
                }
            }
        }
        if self.wants("dynamodb") {
            let ddb = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut names = Vec::new();
            let mut pages = ddb.list_tables().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "DynamoDB ListTables: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    )
                })?;
                names.extend(page.table_names().iter().cloned());
            }
            let arn_of =
                |name: &str| format!("arn:{partition}:dynamodb:{region}:{account}:table/{name}");
            self.refresh_details(names.iter().map(|n| arn_of(n)), |arn| {
                let ddb = ddb.clone();
                async move {
                    let name = arn.rsplit('/').next().unwrap_or_default().to_string();
                    let mut facts = CloudResourceFacts::default();
                    if let Ok(t) = ddb.describe_table().table_name(&name).send().await
                        && let Some(t) = t.table()
                    {
                        facts.status = t.table_status().map(|s| s.as_str().to_string());
                        // Tables are always encrypted at rest; the
                        // description names a customer key's kind when one
                        // is used.
                        facts.encrypted = Some(true);
                        facts.engine = t
                            .sse_description()
                            .and_then(|s| s.sse_type())
                            .map(|s| format!("sse-{}", s.as_str().to_ascii_lowercase()));
                    }
                    facts.backups = match ddb
                        .describe_continuous_backups()
                        .table_name(&name)
                        .send()
                        .await
                    {
                        Ok(o) => Some(
                            o.continuous_backups_description()
                                .and_then(|c| c.point_in_time_recovery_description())
                                .and_then(|p| p.point_in_time_recovery_status())
                                .is_some_and(|s| s.as_str() == "ENABLED"),
                        ),
                        Err(_) => None,
                    };
                    Details {
                        facts,
                        ..Details::now()
                    }
                }
            })
            .await;
            for name in &names {
                let arn = arn_of(name);
                let mut r = new("dynamodb", "table", &arn, name);
                r.facts = self.details_of(&arn).facts;
                out.insert(arn, r);
            }
        }
        if self.wants("sqs") {
            let sqs = aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut urls = Vec::new();
            let mut pages = sqs.list_queues().max_results(1000).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "SQS ListQueues: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    )
                })?;
                urls.extend(page.queue_urls().iter().cloned());
            }
            let name_of = |url: &str| url.rsplit('/').next().unwrap_or(url).to_string();
            let arn_of =
                |url: &str| format!("arn:{partition}:sqs:{region}:{account}:{}", name_of(url));
            let by_arn: HashMap<String, String> =
                urls.iter().map(|u| (arn_of(u), u.clone())).collect();
            self.refresh_details(by_arn.keys().cloned(), |arn| {
                let sqs = sqs.clone();
                let url = by_arn.get(&arn).cloned().unwrap_or_default();
                async move {
                    let mut facts = CloudResourceFacts::default();
                    if let Ok(o) = sqs
                        .get_queue_attributes()
                        .queue_url(url)
                        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                        .send()
                        .await
                    {
                        let attrs = o.attributes();
                        let get = |k: &str| {
                            attrs.and_then(|a| {
                                a.get(&aws_sdk_sqs::types::QueueAttributeName::from(k))
                            })
                        };
                        facts.encrypted = Some(
                            get("SqsManagedSseEnabled").is_some_and(|v| v == "true")
                                || get("KmsMasterKeyId").is_some_and(|v| !v.is_empty()),
                        );
                    }
                    Details {
                        facts,
                        ..Details::now()
                    }
                }
            })
            .await;
            for url in &urls {
                let arn = arn_of(url);
                let mut r = new("sqs", "queue", &arn, &name_of(url));
                r.facts = self.details_of(&arn).facts;
                out.insert(arn, r);
            }
        }
        if self.wants("sns") {
            let sns = aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut arns = Vec::new();
            let mut pages = sns.list_topics().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "SNS ListTopics: {}",
                        aws_sdk_sns::error::DisplayErrorContext(&e)
                    )
                })?;
                arns.extend(
                    page.topics()
                        .iter()
                        .filter_map(|t| t.topic_arn())
                        .map(str::to_string),
                );
            }
            self.refresh_details(arns.iter().cloned(), |arn| {
                let sns = sns.clone();
                async move {
                    let mut facts = CloudResourceFacts::default();
                    if let Ok(o) = sns.get_topic_attributes().topic_arn(&arn).send().await {
                        facts.encrypted = Some(
                            o.attributes()
                                .and_then(|a| a.get("KmsMasterKeyId"))
                                .is_some_and(|v| !v.is_empty()),
                        );
                    }
                    Details {
                        facts,
                        ..Details::now()
                    }
                }
            })
            .await;
            for arn in &arns {
                let name = arn.rsplit(':').next().unwrap_or(arn);
                let mut r = new("sns", "topic", arn, name);
                r.facts = self.details_of(arn).facts;
                out.insert(arn.clone(), r);
            }
        }
        if self.wants("eks") {
            let eks = aws_sdk_eks::Client::from_conf(
                aws_sdk_eks::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut names = Vec::new();
            let mut pages = eks.list_clusters().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "EKS ListClusters: {}",
                        aws_sdk_eks::error::DisplayErrorContext(&e)
                    )
                })?;
                names.extend(page.clusters().iter().cloned());
            }
            let key_of = |name: &str| format!("eks:{account}:{region}:{name}");
            self.refresh_details(names.iter().map(|n| key_of(n)), |key| {
                let eks = eks.clone();
                async move {
                    let name = key.rsplit(':').next().unwrap_or_default().to_string();
                    let mut d = Details::now();
                    if let Ok(o) = eks.describe_cluster().name(&name).send().await
                        && let Some(c) = o.cluster()
                    {
                        d.arn = c.arn().map(str::to_string);
                        d.facts.engine = Some("kubernetes".into());
                        d.facts.engine_version = c.version().map(str::to_string);
                        d.facts.status = c.status().map(|s| s.as_str().to_string());
                        d.facts.public =
                            c.resources_vpc_config().map(|v| v.endpoint_public_access());
                        d.facts.encrypted = Some(!c.encryption_config().is_empty());
                        if let Some(t) = c.tags() {
                            d.tags = t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                        }
                    }
                    d
                }
            })
            .await;
            for name in &names {
                let d = self.details_of(&key_of(name));
                let arn = d.arn.clone().unwrap_or_else(|| {
                    format!("arn:{partition}:eks:{region}:{account}:cluster/{name}")
                });
                let mut r = new("eks", "cluster", &arn, name);
                r.tags.extend(d.tags.clone());
                r.facts = d.facts;
                out.insert(arn, r);
            }
        }
        if self.wants("ecs") {
            let ecs = aws_sdk_ecs::Client::from_conf(
                aws_sdk_ecs::config::Builder::from(config)
                    .interceptor(counting.clone())
                    .build(),
            );
            let mut clusters = Vec::new();
            let mut pages = ecs.list_clusters().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    format!(
                        "ECS ListClusters: {}",
                        aws_sdk_ecs::error::DisplayErrorContext(&e)
                    )
                })?;
                clusters.extend(page.cluster_arns().iter().cloned());
            }
            for cluster in clusters {
                let mut arns = Vec::new();
                let mut pages = ecs
                    .list_services()
                    .cluster(&cluster)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| {
                        format!(
                            "ECS ListServices: {}",
                            aws_sdk_ecs::error::DisplayErrorContext(&e)
                        )
                    })?;
                    arns.extend(page.service_arns().iter().cloned());
                }
                for chunk in arns.chunks(10) {
                    let o = ecs
                        .describe_services()
                        .cluster(&cluster)
                        .set_services(Some(chunk.to_vec()))
                        .include(aws_sdk_ecs::types::ServiceField::Tags)
                        .send()
                        .await
                        .map_err(|e| {
                            format!(
                                "ECS DescribeServices: {}",
                                aws_sdk_ecs::error::DisplayErrorContext(&e)
                            )
                        })?;
                    for s in o.services() {
                        let (Some(arn), Some(name)) = (s.service_arn(), s.service_name()) else {
                            continue;
                        };
                        let mut r = new("ecs", "service", arn, name);
                        for t in s.tags() {
                            if let (Some(k), Some(v)) = (t.key(), t.value()) {
                                r.tags.insert(k.into(), v.into());
                            }
                        }
                        r.facts.status = s.status().map(str::to_string);
                        r.facts.runtime = s.launch_type().map(|l| l.as_str().to_string());
                        out.insert(arn.to_string(), r);
                    }
                }
            }
        }
        if self.cfg.tagging_api {
            for arn in tags.keys() {
                if out.contains_key(arn) {
                    continue;
                }
                let Some((service, resource_type, short)) = parse_arn(arn) else {
                    continue;
                };
                // What a service listing covers, it lists itself: a tagged
                // ARN it did not list is gone (the tag index lags).
                if self.wants(&service) && covered(&service, &resource_type) {
                    continue;
                }
                // Buckets belong to the scope of their own region.
                if service == "s3" {
                    continue;
                }
                let r = new(&service, &resource_type, arn, &short);
                out.insert(arn.clone(), r);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Every tagged resource of the region with its tags, by ARN.
    async fn tagged(
        &self,
        config: &SdkConfig,
        counting: Counting,
    ) -> Result<HashMap<String, BTreeMap<String, String>>, Failure> {
        let client = aws_sdk_resourcegroupstagging::Client::from_conf(
            aws_sdk_resourcegroupstagging::config::Builder::from(config)
                .interceptor(counting)
                .build(),
        );
        let mut out = HashMap::new();
        let mut pages = client
            .get_resources()
            .resources_per_page(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                format!(
                    "Tagging GetResources: {}",
                    aws_sdk_resourcegroupstagging::error::DisplayErrorContext(&e)
                )
            })?;
            for m in page.resource_tag_mapping_list() {
                let Some(arn) = m.resource_arn() else {
                    continue;
                };
                let tags = m
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect();
                out.insert(arn.to_string(), tags);
            }
        }
        Ok(out)
    }
}

/// The error code of a service error, if the service sent one.
fn error_code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Source for AwsSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn list(&self, _known: &Known) -> Result<Listing, SourceError> {
        Ok(self.rt.block_on(self.list_all()))
    }

    fn bind_stop(&self, stop: Arc<AtomicBool>) {
        *lock(&self.stop) = Some(stop);
    }

    fn details(&self) -> SourceDetails {
        let mut d = lock(&self.last).clone();
        let (operations, calls) = self.calls();
        d.operations = operations;
        d.calls = calls;
        if d.accounts.is_empty() {
            d.accounts = self.cfg.accounts.iter().map(|a| a.id.clone()).collect();
            d.regions = self.cfg.regions.clone();
        }
        SourceDetails::Aws(d)
    }
}

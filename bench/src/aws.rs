//! `catalog-bench --aws-resources N`: the AWS source against the `moto`
//! emulator holding N tagged resources (queues, topics and tables, created
//! through the SDK): the first full listing (time, operations, HTTP
//! requests), a re-poll of the unchanged account, and a re-poll after K
//! resources were retagged (requests, observations emitted).
//!
//! moto is started with `scripts/moto-server` (run from the repository), or
//! reached at `--aws-endpoint`.

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_types::region::Region;
use eventlog::EventLog;
use eventlog::embedded::EmbeddedLog;
use ingest::sources::aws::AwsConfig;
use ingest::{Ingest, IngestConfig, SourceConfig, SyncReport};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";

/// moto, started here or reached at a URL.
struct Emulator {
    url: String,
    child: Option<std::process::Child>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn emulator(endpoint: Option<String>) -> anyhow::Result<Emulator> {
    if let Some(url) = endpoint {
        return Ok(Emulator { url, child: None });
    }
    let script = std::path::Path::new("scripts/moto-server");
    anyhow::ensure!(
        script.exists(),
        "scripts/moto-server not found: run from the repository, or pass --aws-endpoint"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new(script)
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let e = Emulator {
        url: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(e)
}

fn owner(i: usize) -> String {
    format!("group:default/team-{}", i % 40)
}

/// The SDK's configuration for moto.
async fn sdk(url: &str) -> aws_types::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .load()
        .await
}

/// Creates `n` tagged resources: half queues, three in ten topics, the
/// rest tables, 16 calls at a time.
async fn populate(url: &str, n: usize) -> anyhow::Result<()> {
    let config = sdk(url).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let (sqs, sns, ddb) = (sqs.clone(), sns.clone(), ddb.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let name = format!("svc-{i:06}");
            match i % 10 {
                0..=4 => sqs
                    .create_queue()
                    .queue_name(&name)
                    .tags("owner", owner(i))
                    .tags("system", format!("system-{}", i % 97))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        anyhow::anyhow!(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                    }),
                5..=7 => sns
                    .create_topic()
                    .name(&name)
                    .tags(
                        aws_sdk_sns::types::Tag::builder()
                            .key("owner")
                            .value(owner(i))
                            .build()?,
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        anyhow::anyhow!(aws_sdk_sns::error::DisplayErrorContext(e).to_string())
                    }),
                _ => {
                    use aws_sdk_dynamodb::types as t;
                    ddb.create_table()
                        .table_name(&name)
                        .attribute_definitions(
                            t::AttributeDefinition::builder()
                                .attribute_name("id")
                                .attribute_type(t::ScalarAttributeType::S)
                                .build()?,
                        )
                        .key_schema(
                            t::KeySchemaElement::builder()
                                .attribute_name("id")
                                .key_type(t::KeyType::Hash)
                                .build()?,
                        )
                        .billing_mode(t::BillingMode::PayPerRequest)
                        .tags(t::Tag::builder().key("owner").value(owner(i)).build()?)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            anyhow::anyhow!(
                                aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
                            )
                        })
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Retags the first `k` queues (a new owner).
async fn retag(url: &str, k: usize) -> anyhow::Result<()> {
    let config = sdk(url).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    for i in (0..).filter(|i| i % 10 <= 4).take(k) {
        let url = sqs
            .get_queue_url()
            .queue_name(format!("svc-{i:06}"))
            .send()
            .await?
            .queue_url()
            .unwrap_or_default()
            .to_string();
        sqs.tag_queue()
            .queue_url(url)
            .tags("owner", "group:default/new-owner")
            .send()
            .await?;
    }
    Ok(())
}

fn calls(ingest: &Ingest) -> (u64, u64) {
    let s = serde_json::to_value(ingest.status()).unwrap_or_default();
    let d = &s[0]["details"];
    (
        d["operations"].as_u64().unwrap_or(0),
        d["calls"].as_u64().unwrap_or(0),
    )
}

fn line(what: &str, r: &SyncReport, secs: f64, before: (u64, u64), after: (u64, u64)) {
    println!(
        "{what}: {secs:.2} s, {} operations ({} HTTP requests), {} observations + {} fact messages emitted{}",
        after.0 - before.0,
        after.1 - before.1,
        r.emitted(),
        r.facts_emitted,
        if r.problems.is_empty() {
            String::new()
        } else {
            format!(" (PROBLEMS: {:?})", r.problems)
        },
    );
}

/// Runs the AWS benchmark.
pub fn run(resources: usize, changed: usize, endpoint: Option<String>) -> anyhow::Result<()> {
    let moto = emulator(endpoint)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let t = Instant::now();
    rt.block_on(populate(&moto.url, resources))?;
    println!(
        "created {resources} tagged resources in moto ({} queues, {} topics, {} tables) in {:.1} s",
        (0..resources).filter(|i| i % 10 <= 4).count(),
        (0..resources)
            .filter(|i| (5..=7).contains(&(i % 10)))
            .count(),
        (0..resources).filter(|i| i % 10 >= 8).count(),
        t.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir()?;
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(
        &dir.path().join("log"),
        &proto::topics::ALL,
        4,
    )?);
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = bench\naws_secret_access_key = bench\n",
    )?;
    let mut aws = AwsConfig::new(&[REGION]);
    aws.endpoint_url = Some(moto.url.clone());
    aws.credentials_file = Some(credentials);
    let ingest = Ingest::open(
        IngestConfig {
            sources: vec![SourceConfig::aws("aws", aws)],
            ..IngestConfig::default()
        },
        log,
        &dir.path().join("state"),
    )?;
    let sync = |what: &str| -> anyhow::Result<SyncReport> {
        let before = calls(&ingest);
        let t = Instant::now();
        let r = ingest
            .sync_now(Some("aws"))?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no report"))?;
        line(what, &r, t.elapsed().as_secs_f64(), before, calls(&ingest));
        Ok(r)
    };
    let first = sync("first full listing")?;
    println!(
        "  {} resources listed ({:.0} resources/s of listing)",
        first.listed,
        first.listed as f64 / first.duration.as_secs_f64().max(1e-9)
    );
    sync("re-poll, nothing changed")?;
    rt.block_on(retag(&moto.url, changed))?;
    sync(&format!("re-poll after {changed} resources were retagged"))?;
    Ok(())
}

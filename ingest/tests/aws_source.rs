//! The AWS source against the `moto` emulator, resources created through
//! the official SDK: first listing, a re-poll that ships nothing, a change,
//! a deletion, a throttled call followed by success, and a failing region
//! that removes nothing. A small proxy in front of moto throttles or denies
//! calls on demand.

#[path = "../../tests/support/moto.rs"]
mod moto;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_types::SdkConfig;
use aws_types::region::Region;
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, Reader};
use ingest::sources::aws::{AwsAccount, AwsConfig};
use ingest::{Ingest, IngestConfig, SourceConfig, SyncReport};
use moto::Moto;
use proto::{Content, FactEvent, FactState, Facts, Observation, ObservedContent, Versioned};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ACCOUNT: &str = "123456789012";

/// What the proxy does to the calls it sees.
#[derive(Default)]
struct Faults {
    /// Answer this many Tagging API calls with a throttling error.
    throttle_tagging: AtomicUsize,
    /// Deny every call signed for this region.
    deny_region: Mutex<Option<String>>,
    /// Calls throttled and denied so far.
    throttled: AtomicUsize,
    denied: AtomicUsize,
}

/// Forwards HTTP/1.1 requests to moto, one per connection, unless a fault
/// applies.
fn proxy(upstream: u16, faults: Arc<Faults>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let faults = faults.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, upstream, &faults);
            });
        }
    });
    port
}

fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Ok(None);
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

fn respond(conn: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         x-amzn-RequestId: test\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(mut conn: TcpStream, upstream: u16, faults: &Faults) -> std::io::Result<()> {
    let Some((head, body)) = read_request(&mut conn)? else {
        return Ok(());
    };
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    if let Some(region) = faults.deny_region.lock().unwrap().as_deref()
        && header("authorization").is_some_and(|a| a.contains(&format!("/{region}/")))
    {
        faults.denied.fetch_add(1, Ordering::SeqCst);
        respond(
            &mut conn,
            "403 Forbidden",
            "application/x-amz-json-1.1",
            r#"{"__type":"AccessDeniedException","message":"not in this region"}"#,
        );
        return Ok(());
    }
    let tagging = header("x-amz-target").is_some_and(|t| t.contains("GetResources"));
    if tagging
        && faults
            .throttle_tagging
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        faults.throttled.fetch_add(1, Ordering::SeqCst);
        respond(
            &mut conn,
            "400 Bad Request",
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        );
        return Ok(());
    }
    // Forward with `Connection: close`, and hand the answer back whole.
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut out = String::new();
    for line in head.trim_end().lines() {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    // The answer's own framing stands; the connection closes after it.
    conn.write_all(&answer)?;
    Ok(())
}

async fn sdk(moto: &Moto, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

/// Creates the resources of the test: in eu-west-1 a tagged queue, a
/// tagged bucket with encryption, an untagged table with point-in-time
/// recovery, an encrypted database with backups; in us-east-1 a topic.
async fn create(moto: &Moto) {
    let eu = sdk(moto, "eu-west-1").await;
    let us = sdk(moto, "us-east-1").await;
    let sqs = aws_sdk_sqs::Client::new(&eu);
    sqs.create_queue()
        .queue_name("orders")
        .tags("owner", "group:default/payments")
        .tags("system", "checkout")
        .tags("env", "production")
        .send()
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&eu)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("invoices")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_bucket_tagging()
        .bucket("invoices")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("owner")
                        .value("group:default/billing")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ddb = aws_sdk_dynamodb::Client::new(&eu);
    ddb.create_table()
        .table_name("sessions")
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    ddb.update_continuous_backups()
        .table_name("sessions")
        .point_in_time_recovery_specification(
            aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let rds = aws_sdk_rds::Client::new(&eu);
    rds.create_db_instance()
        .db_instance_identifier("ledger")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .engine_version("16.3")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("secret-password")
        .storage_encrypted(true)
        .backup_retention_period(7)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("owner")
                .value("group:default/payments")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sns = aws_sdk_sns::Client::new(&us);
    sns.create_topic().name("alerts").send().await.unwrap();
}

struct Harness {
    _dir: tempfile::TempDir,
    moto: Moto,
    faults: Arc<Faults>,
    obs: Box<dyn Reader>,
    facts: Box<dyn Reader>,
    ingest: Ingest,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Self {
        let moto = Moto::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(create(&moto));
        let faults = Arc::new(Faults::default());
        let port = proxy(moto.port, faults.clone());
        let dir = tempfile::tempdir().unwrap();
        let log =
            Arc::new(EmbeddedLog::open(&dir.path().join("log"), &proto::topics::ALL, 2).unwrap());
        let obs = log.subscribe(proto::topics::OBSERVATIONS, "t").unwrap();
        let facts = log.subscribe(proto::topics::FACTS, "t").unwrap();
        let mut aws = AwsConfig::new(&["eu-west-1", "us-east-1"]);
        aws.accounts = vec![AwsAccount {
            id: ACCOUNT.into(),
            role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/catalog-reader")),
            external_id: Some("catalog-test".into()),
        }];
        aws.endpoint_url = Some(format!("http://127.0.0.1:{port}"));
        aws.credentials_file = Some(Moto::credentials_file(dir.path()));
        aws.initial_backoff_ms = 10;
        aws.mapping.lifecycle_tag = "env".into();
        let ingest = Ingest::open(
            IngestConfig {
                sources: vec![SourceConfig::aws("aws-prod", aws)],
                ..IngestConfig::default()
            },
            log.clone() as Arc<dyn EventLog>,
            &dir.path().join("state"),
        )
        .unwrap();
        Harness {
            _dir: dir,
            moto,
            faults,
            obs,
            facts,
            ingest,
            rt,
        }
    }

    fn sync(&self) -> SyncReport {
        self.ingest
            .sync_now(Some("aws-prod"))
            .unwrap()
            .pop()
            .unwrap()
    }

    fn observed(&mut self) -> BTreeMap<String, Observation> {
        let mut out = BTreeMap::new();
        while let Ok(batch) = self.obs.poll(Duration::from_millis(50)) {
            if batch.is_empty() {
                break;
            }
            for rec in batch {
                let o = Observation::decode(&rec.value).unwrap();
                out.insert(o.location.as_str().to_string(), o);
            }
        }
        out
    }

    fn fact_events(&mut self) -> BTreeMap<String, FactEvent> {
        let mut out = BTreeMap::new();
        while let Ok(batch) = self.facts.poll(Duration::from_millis(50)) {
            if batch.is_empty() {
                break;
            }
            for rec in batch {
                let f = FactEvent::decode(&rec.value).unwrap();
                out.insert(f.subject.as_str().to_string(), f);
            }
        }
        out
    }

    fn calls(&self) -> (u64, u64) {
        let status = serde_json::to_value(self.ingest.status()).unwrap();
        let d = &status[0]["details"];
        (
            d["operations"].as_u64().unwrap(),
            d["calls"].as_u64().unwrap(),
        )
    }
}

fn entity(o: &Observation) -> serde_json::Value {
    match &o.content {
        ObservedContent::Present {
            content: Content::Utf8 { text },
        } => serde_json::from_str(text).unwrap(),
        other => panic!("not present: {other:?}"),
    }
}

fn find<'a>(m: &'a BTreeMap<String, Observation>, suffix: &str) -> &'a Observation {
    m.iter()
        .find(|(k, _)| k.ends_with(suffix))
        .map(|(_, o)| o)
        .unwrap_or_else(|| panic!("no location ending {suffix:?} in {:?}", m.keys()))
}

#[test]
fn aws_resources_become_entities_with_facts_and_only_changes_ship() {
    let mut h = Harness::new();

    // First listing: every resource, tagged or not, in both regions.
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{r:?}");
    let seen = h.observed();
    let queue = find(&seen, ":sqs:eu-west-1:123456789012:orders");
    assert_eq!(
        queue.location.as_str(),
        "aws:123456789012/eu-west-1/arn:aws:sqs:eu-west-1:123456789012:orders"
    );
    let e = entity(queue);
    assert_eq!(e["kind"], "Resource");
    assert_eq!(e["spec"]["type"], "queue");
    assert_eq!(e["spec"]["owner"], "group:default/payments");
    assert_eq!(e["spec"]["system"], "checkout");
    assert_eq!(e["spec"]["lifecycle"], "production");
    assert_eq!(
        e["metadata"]["annotations"]["amazonaws.com/account-id"],
        ACCOUNT
    );
    assert!(
        e["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("sqs-orders-")
    );
    let bucket = entity(find(&seen, "arn:aws:s3:::invoices"));
    assert_eq!(bucket["spec"]["type"], "s3-bucket");
    assert_eq!(bucket["spec"]["owner"], "group:default/billing");
    // Untagged resources are entities too, with the default owner.
    let table = entity(find(&seen, ":table/sessions"));
    assert_eq!(table["spec"]["owner"], "unowned");
    let db = entity(find(&seen, ":db:ledger"));
    assert_eq!(db["spec"]["type"], "database");
    let topic = find(&seen, ":sns:us-east-1:123456789012:alerts");
    assert!(
        topic
            .location
            .as_str()
            .starts_with("aws:123456789012/us-east-1/")
    );
    assert_eq!(r.emitted_new, seen.len());
    let status = serde_json::to_value(h.ingest.status()).unwrap();
    assert_eq!(status[0]["kind"], "aws");
    assert_eq!(status[0]["details"]["resources"], seen.len());
    assert!(
        status[0]["details"]["unowned"].as_u64().unwrap() >= 2,
        "{status}"
    );

    // Facts per resource, under the location's key.
    let facts = h.fact_events();
    assert_eq!(facts.len(), seen.len());
    let fact = |suffix: &str| match &facts
        .iter()
        .find(|(k, _)| k.ends_with(suffix))
        .unwrap()
        .1
        .state
    {
        FactState::Present {
            facts: Facts::CloudResource(f),
        } => f.clone(),
        other => panic!("{other:?}"),
    };
    let ledger = fact(":db:ledger");
    assert_eq!(
        (ledger.encrypted, ledger.backups, ledger.engine.as_deref()),
        (Some(true), Some(true), Some("postgres"))
    );
    assert_eq!(fact(":table/sessions").backups, Some(true));
    assert_eq!(fact("arn:aws:s3:::invoices").public, Some(true));
    assert_eq!(fact(":orders").tags["system"], "checkout");

    // A re-poll ships nothing, and costs no per-resource calls.
    let (ops_before, _) = h.calls();
    let r = h.sync();
    assert_eq!((r.emitted(), r.facts_emitted), (0, 0), "{r:?}");
    assert!(h.observed().is_empty());
    let (ops_after, _) = h.calls();
    let per_poll = ops_after - ops_before;

    // A change (a tag) and a deletion.
    h.rt.block_on(async {
        let eu = sdk(&h.moto, "eu-west-1").await;
        let sqs = aws_sdk_sqs::Client::new(&eu);
        let url = sqs
            .get_queue_url()
            .queue_name("orders")
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        sqs.tag_queue()
            .queue_url(url)
            .tags("owner", "group:default/logistics")
            .send()
            .await
            .unwrap();
        aws_sdk_dynamodb::Client::new(&eu)
            .delete_table()
            .table_name("sessions")
            .send()
            .await
            .unwrap();
    });
    let r = h.sync();
    assert_eq!(
        (r.emitted_new, r.emitted_changed, r.emitted_removed),
        (0, 1, 1),
        "{r:?}"
    );
    let seen = h.observed();
    assert_eq!(
        entity(find(&seen, ":orders"))["spec"]["owner"],
        "group:default/logistics"
    );
    assert!(matches!(
        find(&seen, ":table/sessions").content,
        ObservedContent::Removed
    ));

    // A throttled call is retried with backoff and the listing goes on.
    h.faults.throttle_tagging.store(1, Ordering::SeqCst);
    let (ops0, calls0) = h.calls();
    let r = h.sync();
    assert!(r.complete && r.problems.is_empty(), "{r:?}");
    assert_eq!(r.emitted(), 0);
    assert_eq!(h.faults.throttled.load(Ordering::SeqCst), 1);
    let (ops1, calls1) = h.calls();
    assert_eq!(ops1 - ops0, per_poll, "the same operations");
    assert_eq!(calls1 - calls0, per_poll + 1, "one more request: the retry");

    // A region that fails lists nothing and removes nothing: the topic in
    // us-east-1 is deleted, but while the region is denied it stays.
    h.rt.block_on(async {
        let us = sdk(&h.moto, "us-east-1").await;
        aws_sdk_sns::Client::new(&us)
            .delete_topic()
            .topic_arn(format!("arn:aws:sns:us-east-1:{ACCOUNT}:alerts"))
            .send()
            .await
            .unwrap();
    });
    *h.faults.deny_region.lock().unwrap() = Some("us-east-1".into());
    let r = h.sync();
    assert_eq!(r.emitted(), 0, "{r:?}");
    assert_eq!(r.facts_emitted, 0, "{r:?}");
    assert!(r.scoped);
    assert!(
        r.problems.iter().any(|p| p.contains("us-east-1")),
        "{:?}",
        r.problems
    );
    assert!(h.faults.denied.load(Ordering::SeqCst) > 0);
    let status = serde_json::to_value(h.ingest.status()).unwrap();
    assert!(
        status[0]["details"]["failed_scopes"][0]
            .as_str()
            .unwrap()
            .contains("us-east-1"),
        "{status}"
    );
    // Once the region answers again, the topic's removal goes out.
    *h.faults.deny_region.lock().unwrap() = None;
    let r = h.sync();
    assert_eq!(r.emitted_removed, 1, "{r:?}");
    assert_eq!(r.facts_emitted, 1, "{r:?}");
    let seen = h.observed();
    assert!(matches!(
        find(&seen, ":alerts").content,
        ObservedContent::Removed
    ));
}

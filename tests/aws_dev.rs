//! `catalog dev` with an `aws` source against the `moto` emulator, end to
//! end through HTTP: databases created through the SDK are served as
//! `Resource` entities, a scorecard checks their facts (encrypted and
//! backed up), and the resource without an owner tag counts as an orphan in
//! the ownership coverage metric.

mod common;
#[path = "support/moto.rs"]
mod moto;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_types::region::Region;
use catalog::Config;
use common::*;
use moto::Moto;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

const CARD: &str = "\
id: databases
title: Databases are safe
applies_to:
  kind: resource
  spec.type: database
levels: [safe]
checks:
  - id: encrypted
    title: Encrypted at rest
    level: safe
    rule: {fact: cloud.encrypted, equals: true}
  - id: backups
    title: Backed up
    level: safe
    rule: {fact: cloud.backups, equals: true}
";

const ORG: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: payments
spec:
  type: team
  children: []
";

fn create_databases(moto: &Moto) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&moto.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        let rds = aws_sdk_rds::Client::new(&config);
        for (name, safe) in [("ledger", true), ("scratch", false)] {
            let mut req = rds
                .create_db_instance()
                .db_instance_identifier(name)
                .db_instance_class("db.t3.micro")
                .engine("postgres")
                .allocated_storage(20)
                .master_username("admin")
                .master_user_password("secret-password")
                .storage_encrypted(safe)
                .backup_retention_period(if safe { 7 } else { 0 });
            if safe {
                req = req.tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key("owner")
                        .value("group:default/payments")
                        .build(),
                );
            }
            req.send().await.unwrap();
        }
    });
}

fn card(agent: &ureq::Agent, base: &str, name: &str) -> Option<Value> {
    let (s, v) = get(
        agent,
        &format!("{base}/api/scorecards/entity/resource/default/{name}"),
    );
    if s != 200 {
        return None;
    }
    v["scorecards"]
        .as_array()?
        .iter()
        .find(|c| c["scorecard"] == "databases")
        .cloned()
}

#[test]
fn aws_resources_are_served_scored_on_their_facts_and_counted_as_orphans() {
    let moto = Moto::start();
    create_databases(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    std::fs::create_dir_all(&org).unwrap();
    std::fs::write(org.join("groups.yaml"), ORG).unwrap();
    let cards = tmp.path().join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    std::fs::write(cards.join("databases.yaml"), CARD).unwrap();

    let mut aws = ingest::sources::aws::AwsConfig::new(&["eu-west-1"]);
    aws.endpoint_url = Some(moto.url.clone());
    aws.credentials_file = Some(Moto::credentials_file(tmp.path()));
    aws.services = vec!["rds".into()];
    let mut cfg = Config {
        data_dir: tmp.path().join("data"),
        ..Config::default()
    };
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("org", &org));
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::aws("aws", aws));
    cfg.ingest.scorecards.dir = Some(cards);
    cfg.ingest.scorecards.builtin = false;
    let run = run_dev(cfg);
    let agent = agent();
    let base = run.base.clone();

    wait_for("two databases", WAIT, || {
        (total(&agent, &base, "kind=resource,spec.type=database") == 2).then_some(())
    });
    let (_, page) = get(
        &agent,
        &format!(
            "{base}/api/catalog/entities/by-query?filter=kind=resource&fields=metadata.name,metadata.title,spec.owner,metadata.annotations"
        ),
    );
    let items = page["items"].as_array().unwrap();
    let by_title = |t: &str| {
        items
            .iter()
            .find(|e| e["metadata"]["title"] == t)
            .unwrap_or_else(|| panic!("no {t} in {page}"))
    };
    let ledger = by_title("ledger");
    let scratch = by_title("scratch");
    assert_eq!(ledger["spec"]["owner"], "group:default/payments");
    assert_eq!(scratch["spec"]["owner"], "unowned");
    assert_eq!(
        ledger["metadata"]["annotations"]["amazonaws.com/region"],
        "eu-west-1"
    );
    let ledger_name = ledger["metadata"]["name"].as_str().unwrap().to_string();
    let scratch_name = scratch["metadata"]["name"].as_str().unwrap().to_string();

    // The scorecard reads the facts of each database.
    let safe = wait_for("ledger scored", WAIT, || {
        card(&agent, &base, &ledger_name).filter(|c| c["level"] == "safe")
    });
    assert_eq!(safe["score"], 100);
    let unsafe_card = wait_for("scratch scored", WAIT, || {
        card(&agent, &base, &scratch_name)
            .filter(|c| c["checks"].as_array().is_some_and(|a| a.len() == 2))
    });
    assert_ne!(unsafe_card["level"], "safe", "{unsafe_card}");
    let checks = unsafe_card["checks"].as_array().unwrap();
    for id in ["encrypted", "backups"] {
        let c = checks.iter().find(|c| c["id"] == id).unwrap();
        assert_eq!(c["status"], "fail", "{c}");
    }

    // Ownership: of the two resources one is owned by a group, the other
    // (no owner tag) is an orphan. The group comes from the files source.
    wait_eq("group payments", WAIT, 200, || {
        get(
            &agent,
            &format!("{base}/api/catalog/entities/by-name/group/default/payments"),
        )
        .0
    });
    let (s, own) = get(
        &agent,
        &format!("{base}/api/metrics/ownership-coverage?interval=day&filter=kind=resource"),
    );
    assert_eq!(s, 200, "{own}");
    let last = |measure: &str| {
        own["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["measure"] == measure)
            .and_then(|s| s["values"].as_array()?.last()?.as_f64())
            .unwrap_or_else(|| panic!("no {measure} in {own}"))
    };
    assert_eq!(last("owned"), 1.0, "{own}");
    assert_eq!(last("orphaned"), 1.0, "{own}");
    assert_eq!(last("coverage"), 0.5, "{own}");

    // The source's status: resources, unowned, calls.
    let (_, status) = get(&agent, &format!("{base}/api/ingest/sources"));
    let aws = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "aws")
        .unwrap();
    assert_eq!(aws["kind"], "aws");
    assert_eq!(aws["details"]["resources"], 2, "{aws}");
    assert_eq!(aws["details"]["unowned"], 1, "{aws}");
    assert!(aws["details"]["calls"].as_u64().unwrap() > 0);
    drop(run);
}

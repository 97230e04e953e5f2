//! Every service as its own `catalog` process, talking Kafka through
//! rdkafka to Apache Kafka (the broker `scripts/test` starts; each test has
//! a topic prefix of its own), or to librdkafka's mock cluster when no
//! broker is given outside CI (see `support`).
//!
//! Checks the demo org is served by a separate `serve` process following the
//! projector's store as a RocksDB secondary, and that a projector killed with
//! SIGKILL mid-ingest and restarted ends byte-identical to an uninterrupted
//! one that consumed the same log.

mod common;

mod support;

use common::*;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

fn ready_with_lag_zero(a: &ureq::Agent, base: &str) -> bool {
    let (s, v) = get(a, &format!("{base}/readyz"));
    s == 200 && v["lag"] == 0
}

#[test]
fn separate_processes_serve_the_demo_org() {
    let b = Kafka::shared("separate");
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    let data = tmp.path().join("data");
    let (org_s, data_s) = (org.to_str().unwrap(), data.to_str().unwrap());
    let ingest_dir = tmp.path().join("ingest");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _ingest = Proc::spawn(
        "ingest",
        &["ingest", org_s, "--data-dir", ingest_dir.to_str().unwrap()],
        &b.env(),
    );
    let _process = Proc::spawn("process", &["process", "--brokers", &b.servers], &b.env());
    let project = Proc::spawn("project", &["project", "--data-dir", data_s], &b.env());
    let serve = Proc::spawn(
        "serve",
        &["serve", "--data-dir", data_s, "--listen", &listen],
        &b.env(),
    );
    let a = agent();
    let base = format!("http://{listen}");
    let expected = count_kind_in(&org, "Component") + 1;
    wait_for("demo org served by the serve process", WAIT, || {
        (total(&a, &base, "kind=component") == expected).then_some(())
    });
    // An edit travels through all four processes.
    set_title(&org, "cart-service", "Via Kafka");
    wait_for("edit visible", WAIT, || {
        let (_, e) = get(
            &a,
            &format!("{base}/api/catalog/entities/by-name/component/default/cart-service"),
        );
        (e["metadata"]["title"] == "Via Kafka").then_some(())
    });
    wait_for("lag known and zero", WAIT, || {
        ready_with_lag_zero(&a, &base).then_some(())
    });
    serve.terminate();
    project.terminate();
}

#[test]
fn projector_killed_mid_ingest_converges_to_the_uninterrupted_state() {
    let b = Kafka::shared("projector");
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    let n = 4000;
    catalog_bench::generate_org(&org, n, 10).unwrap();
    let (victim_dir, witness_dir) = (tmp.path().join("victim"), tmp.path().join("witness"));
    let (v_s, w_s) = (victim_dir.to_str().unwrap(), witness_dir.to_str().unwrap());
    let (wport, vport) = (free_port(), free_port());
    let (wlisten, vlisten) = (format!("127.0.0.1:{wport}"), format!("127.0.0.1:{vport}"));
    let ingest_dir = tmp.path().join("ingest");

    // The witness folds the whole log without interruption.
    let witness = Proc::spawn(
        "witness",
        &[
            "serve",
            "--with-projector",
            "--data-dir",
            w_s,
            "--listen",
            &wlisten,
        ],
        &b.env(),
    );
    let victim = Proc::spawn("victim", &["project", "--data-dir", v_s], &b.env());
    let _ingest = Proc::spawn(
        "ingest",
        &[
            "ingest",
            org.to_str().unwrap(),
            "--data-dir",
            ingest_dir.to_str().unwrap(),
        ],
        &b.env(),
    );
    let _process = Proc::spawn("process", &["process", "--brokers", &b.servers], &b.env());
    let a = agent();
    let wbase = format!("http://{wlisten}");

    // Kill the victim while entities are still arriving, once a follower
    // of its store shows it has applied some of them.
    let vbase = format!("http://{vlisten}");
    let early = Proc::spawn(
        "victim-early-follower",
        &["serve", "--data-dir", v_s, "--listen", &vlisten],
        &b.env(),
    );
    let applied = wait_for("victim applied something", WAIT, || {
        let t = total(&a, &vbase, "");
        (t > 0).then_some(t)
    });
    victim.sigkill();
    assert!(
        applied < n as u64,
        "the kill came after ingest finished ({applied} of {n}); make the org larger"
    );
    early.terminate();

    let victim = Proc::spawn("victim-again", &["project", "--data-dir", v_s], &b.env());
    wait_for("witness has everything", WAIT, || {
        (total(&a, &wbase, "") == n as u64 && ready_with_lag_zero(&a, &wbase)).then_some(())
    });
    let follower = Proc::spawn(
        "victim-follower",
        &["serve", "--data-dir", v_s, "--listen", &vlisten],
        &b.env(),
    );
    wait_for("victim caught up", WAIT, || {
        (total(&a, &vbase, "") == n as u64 && ready_with_lag_zero(&a, &vbase)).then_some(())
    });
    follower.terminate();
    victim.terminate();
    witness.terminate();

    let w = dump(&witness_dir.join("projections"));
    let v = dump(&victim_dir.join("projections"));
    assert!(w.len() > n, "witness store has {} keys", w.len());
    // Everything is equal byte for byte except the scorecard result
    // history (`a`): it records the path results took, and a replica that
    // restarted folded different batches (an entity and the system it reads
    // in one batch or in two). The results themselves are equal.
    assert!(
        w.keys().any(|k| k.first() == Some(&b'A')),
        "no scorecard results"
    );
    let differing = differing(&w, &v);
    assert!(differing.is_empty(), "stores differ at {differing:?}");
}

#[test]
fn dev_runs_the_same_pipeline_on_kafka() {
    let b = Kafka::shared("dev");
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    let data = tmp.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let dev = Proc::spawn(
        "dev-on-kafka",
        &[
            "dev",
            org.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &b.env(),
    );
    let a = agent();
    let base = format!("http://{listen}");
    let expected = count_kind_in(&org, "Component") + 1;
    wait_for("demo org served by dev on Kafka", WAIT, || {
        (total(&a, &base, "kind=component") == expected).then_some(())
    });
    // It used the broker, not an embedded log.
    assert!(
        !data.join("log").exists(),
        "dev --brokers must not open the embedded log"
    );
    dev.terminate();
}

/// Runs `catalog ARGS` to the end with `env`: (success, stdout, stderr).
fn run_catalog(args: &[&str], env: &[(&'static str, String)]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_catalog"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn topics_as_code_create_check_and_refuse_what_would_lose_data() {
    let b = Kafka::shared("topics");
    if !b.is_real() {
        eprintln!("skipped: the mock cluster cannot describe topic configs");
        return;
    }
    let env = b.env();
    // Nothing exists under this prefix yet.
    let (ok, out, err) = run_catalog(&["topics", "--check"], &env);
    assert!(!ok, "check passed with no topics: {out}");
    assert_eq!(
        out.matches("missing").count(),
        proto::topics::ALL.len(),
        "{out}"
    );
    assert!(err.contains("missing"), "{err}");
    // Apply creates them with the described settings; a check then passes.
    let (ok, out, err) = run_catalog(&["topics", "--apply"], &env);
    assert!(ok, "apply failed: {out}{err}");
    assert_eq!(
        out.matches("created").count(),
        proto::topics::ALL.len(),
        "{out}"
    );
    let (ok, out, err) = run_catalog(&["topics", "--check"], &env);
    assert!(ok, "check after apply failed: {out}{err}");
    assert_eq!(
        out.matches("ok ").count(),
        proto::topics::ALL.len(),
        "{out}"
    );
    // Asking for more than the topics have is a problem naming the setting.
    let mut stricter = env.clone();
    stricter.push(("CATALOG_PARTITIONS", "8".into()));
    let (ok, out, _) = run_catalog(&["topics", "--check"], &stricter);
    assert!(!ok);
    assert!(out.contains("partitions"), "{out}");

    // An entity store someone created compacted: every service refuses to
    // start, naming the topic and the setting.
    let bad = Kafka::shared("topics-bad");
    let log = eventlog::kafka::KafkaLog::connect(&bad.servers, &[])
        .unwrap()
        .with_topic_prefix(&bad.prefix);
    log.ensure_topics(
        &[(proto::topics::ENTITIES, 4, true)],
        Duration::from_secs(30),
    )
    .unwrap();
    let (ok, out, _) = run_catalog(&["topics", "--check"], &bad.env());
    assert!(!ok);
    let entities = format!("{}{}", bad.prefix, proto::topics::ENTITIES);
    assert!(
        out.lines().any(|l| l.starts_with("PROBLEM")
            && l.contains(&entities)
            && l.contains("cleanup.policy")),
        "{out}"
    );
    let (ok, _, err) = run_catalog(&["process"], &bad.env());
    assert!(!ok, "the processor started on a compacted entity store");
    assert!(
        err.contains(&entities) && err.contains("cleanup.policy"),
        "{err}"
    );
}

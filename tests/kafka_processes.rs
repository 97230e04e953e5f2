//! Every service as its own `catalog` process, talking Kafka through
//! rdkafka to librdkafka's mock cluster started here over TCP, one cluster
//! per test. Topic names are fixed, so these tests cannot share one real
//! broker; with `CATALOG_TEST_BROKERS` set they are skipped and the
//! real-broker coverage is the event-log conformance suite (unique topics).
//!
//! Checks the demo org is served by a separate `serve` process following the
//! projector's store as a RocksDB secondary, and that a projector killed with
//! SIGKILL mid-ingest and restarted ends byte-identical to an uninterrupted
//! one that consumed the same log.

mod common;

use common::*;
use projector::{RocksStore, Store};
use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

struct Broker {
    _mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    servers: String,
}

/// A mock cluster for this test, or `None` when the suite is pointed at a
/// real broker (see the module docs).
fn broker() -> Option<Broker> {
    if std::env::var_os("CATALOG_TEST_BROKERS").is_some() {
        eprintln!("skipped: process tests need a cluster of their own (fixed topic names)");
        return None;
    }
    let mock = MockCluster::new(1).expect("mock cluster");
    for t in proto::topics::ALL {
        mock.create_topic(t, 4, 1).expect("create topic");
    }
    let servers = mock.bootstrap_servers();
    Some(Broker {
        _mock: mock,
        servers,
    })
}

struct Proc(Child, &'static str);

impl Proc {
    fn spawn(name: &'static str, args: &[&str]) -> Proc {
        let log =
            std::env::temp_dir().join(format!("catalog-e2e-{}-{name}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_catalog"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc(child, name)
    }
    fn sigkill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
    fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let status = self.0.wait().unwrap();
        assert!(status.success(), "{} exited with {status}", self.1);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dump(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = RocksStore::open(path, 8 << 20).unwrap();
    let mut out = BTreeMap::new();
    store
        .scan(&[], None, &mut |k, v| {
            out.insert(k.to_vec(), v.to_vec());
            true
        })
        .unwrap();
    out
}

fn ready_with_lag_zero(a: &ureq::Agent, base: &str) -> bool {
    let (s, v) = get(a, &format!("{base}/readyz"));
    s == 200 && v["lag"] == 0
}

#[test]
fn separate_processes_serve_the_demo_org() {
    let Some(b) = broker() else { return };
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
        &[
            "ingest",
            org_s,
            "--brokers",
            &b.servers,
            "--data-dir",
            ingest_dir.to_str().unwrap(),
        ],
    );
    let _process = Proc::spawn("process", &["process", "--brokers", &b.servers]);
    let project = Proc::spawn(
        "project",
        &["project", "--brokers", &b.servers, "--data-dir", data_s],
    );
    let serve = Proc::spawn(
        "serve",
        &[
            "serve",
            "--brokers",
            &b.servers,
            "--data-dir",
            data_s,
            "--listen",
            &listen,
        ],
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
    let Some(b) = broker() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    let n = 4000;
    catalog::bench::generate_org(&org, n, 10).unwrap();
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
            "--brokers",
            &b.servers,
            "--data-dir",
            w_s,
            "--listen",
            &wlisten,
        ],
    );
    let victim = Proc::spawn(
        "victim",
        &["project", "--brokers", &b.servers, "--data-dir", v_s],
    );
    let _ingest = Proc::spawn(
        "ingest",
        &[
            "ingest",
            org.to_str().unwrap(),
            "--brokers",
            &b.servers,
            "--data-dir",
            ingest_dir.to_str().unwrap(),
        ],
    );
    let _process = Proc::spawn("process", &["process", "--brokers", &b.servers]);
    let a = agent();
    let wbase = format!("http://{wlisten}");

    // Kill the victim while entities are still arriving, once a follower
    // of its store shows it has applied some of them.
    let vbase = format!("http://{vlisten}");
    let early = Proc::spawn(
        "victim-early-follower",
        &[
            "serve",
            "--brokers",
            &b.servers,
            "--data-dir",
            v_s,
            "--listen",
            &vlisten,
        ],
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

    let victim = Proc::spawn(
        "victim-again",
        &["project", "--brokers", &b.servers, "--data-dir", v_s],
    );
    wait_for("witness has everything", WAIT, || {
        (total(&a, &wbase, "") == n as u64 && ready_with_lag_zero(&a, &wbase)).then_some(())
    });
    let follower = Proc::spawn(
        "victim-follower",
        &[
            "serve",
            "--brokers",
            &b.servers,
            "--data-dir",
            v_s,
            "--listen",
            &vlisten,
        ],
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
    let path_only = |k: &Vec<u8>| k.first() == Some(&b'a');
    assert!(
        w.keys().any(|k| k.first() == Some(&b'A')),
        "no scorecard results"
    );
    let differing: Vec<String> = w
        .keys()
        .chain(v.keys())
        .filter(|k| !path_only(k))
        .filter(|k| w.get(*k) != v.get(*k))
        .take(5)
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(differing.is_empty(), "stores differ at {differing:?}");
}

#[test]
fn dev_runs_the_same_pipeline_on_kafka() {
    let Some(b) = broker() else { return };
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
            "--brokers",
            &b.servers,
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ],
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

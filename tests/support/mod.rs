//! Kafka clusters and `catalog` processes for the multi-process tests.
//!
//! - [`Kafka::shared`]: the Apache Kafka broker that `scripts/test` starts
//!   (`CATALOG_TEST_BROKERS`), with a topic prefix of this test's own, so
//!   tests share the broker without seeing each other's topics or groups.
//!   Without the variable (a quick local `cargo test`), librdkafka's mock
//!   cluster stands in; under CI the variable is required.
//! - [`Kafka::private`]: a cluster of this test's own (`scripts/kafka up
//!   --brokers N`), for tests that stop or kill brokers.
#![allow(dead_code)]

use projector::{RocksStore, Store};
use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Kafka {
    pub servers: String,
    /// `log.topic_prefix` of every process of this test.
    pub prefix: String,
    _mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
    /// The state directory of a private cluster (stopped on drop).
    private: Option<tempfile::TempDir>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka")
}

fn unique_prefix(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "t{}-{nanos}-{}-{test}.",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Kafka {
    /// The shared broker (see the module docs), or the mock cluster.
    pub fn shared(test: &str) -> Kafka {
        match std::env::var("CATALOG_TEST_BROKERS") {
            Ok(servers) if !servers.trim().is_empty() => Kafka {
                servers,
                prefix: unique_prefix(test),
                _mock: None,
                private: None,
            },
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI runs the multi-process tests on Apache Kafka: CATALOG_TEST_BROKERS must \
                     be set (scripts/test starts the broker with scripts/kafka up)"
                );
                eprintln!(
                    "note: CATALOG_TEST_BROKERS is not set: {test} runs on librdkafka's mock \
                     cluster (scripts/test runs it on Apache Kafka)"
                );
                let mock = MockCluster::new(1).expect("mock cluster");
                for t in proto::topics::ALL {
                    mock.create_topic(t, 4, 1).expect("create topic");
                }
                let servers = mock.bootstrap_servers();
                Kafka {
                    servers,
                    prefix: String::new(),
                    _mock: Some(mock),
                    private: None,
                }
            }
        }
    }

    /// A cluster of `brokers` Apache Kafka nodes of this test's own, or
    /// `None` (skipped) when Java or Maven is missing outside CI.
    pub fn private(test: &str, brokers: u32) -> Option<Kafka> {
        let have_java = Command::new("java")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have_java {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs {test} on Apache Kafka: java is required"
            );
            eprintln!("skipped {test}: no java to run Apache Kafka");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("catalog-kafka-")
            .tempdir()
            .unwrap();
        let out = Command::new(script())
            .args(["up", "--brokers", &brokers.to_string(), "--dir"])
            .arg(dir.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/kafka");
        assert!(out.status.success(), "scripts/kafka up failed for {test}");
        let servers = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .expect("bootstrap address")
            .trim()
            .to_owned();
        Some(Kafka {
            servers,
            prefix: unique_prefix(test),
            _mock: None,
            private: Some(dir),
        })
    }

    fn node(&self, verb: &str, node: u32) {
        let dir = self.private.as_ref().expect("a private cluster").path();
        let status = Command::new(script())
            .args([verb, &node.to_string(), "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/kafka");
        assert!(status.success(), "scripts/kafka {verb} {node} failed");
    }

    /// SIGKILLs broker `node` (1-based) of a private cluster.
    pub fn kill_broker(&self, node: u32) {
        self.node("kill-broker", node);
    }
    /// Stops broker `node` of a private cluster cleanly.
    pub fn stop_broker(&self, node: u32) {
        self.node("stop-broker", node);
    }
    /// Starts broker `node` again (same ports and data) and waits for it.
    pub fn start_broker(&self, node: u32) {
        self.node("start-broker", node);
    }

    /// Whether this is Apache Kafka (not the mock cluster).
    pub fn is_real(&self) -> bool {
        self._mock.is_none()
    }

    /// The environment every `catalog` process of this test gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CATALOG_BROKERS", self.servers.clone()),
            ("CATALOG_TOPIC_PREFIX", self.prefix.clone()),
        ]
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(dir) = &self.private {
            let _ = Command::new(script())
                .args(["down", "--dir"])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A `catalog` process; killed when dropped.
pub struct Proc {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    /// Runs `catalog ARGS` with `env` (e.g. [`Kafka::env`]), output to a
    /// log file in the temp dir.
    pub fn spawn(name: &str, args: &[&str], env: &[(&'static str, String)]) -> Proc {
        static N: AtomicU32 = AtomicU32::new(0);
        let log = std::env::temp_dir().join(format!(
            "catalog-e2e-{}-{}-{name}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_catalog"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
            log,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and checks the process exited cleanly.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: String = tail
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            status.success(),
            "{} exited with {status}; log tail:\n{tail}",
            self.name
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every key and value of a stopped projector's store.
pub fn dump(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
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

/// `catalog checksum --data-dir DIR` (works while the projector runs).
pub fn checksum(data_dir: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_catalog"))
        .args(["checksum", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "catalog checksum {}: {}",
        data_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The keys on which two dumps differ (at most 5), leaving out the tables
/// that record the path state took (`projector::checksum::PATH_TABLES`:
/// the scorecard result history, served versions, the change feed and its
/// sequence).
pub fn differing(a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<String> {
    let feed_seq = projector::keys::meta(projector::keys::FEED_SEQ);
    let path_only = |k: &Vec<u8>| {
        k.first()
            .is_some_and(|t| projector::checksum::PATH_TABLES.contains(t))
            || *k == feed_seq
    };
    a.keys()
        .chain(b.keys())
        .filter(|k| !path_only(k))
        .filter(|k| a.get(*k) != b.get(*k))
        .take(5)
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// Changes the feed of a stopped store records twice (the same log event,
/// change and entity or location), at most 5: the feed is written with the
/// state, so a replay after a kill must not repeat it.
pub fn duplicated_feed(path: &Path) -> Vec<String> {
    let store = RocksStore::open(path, 8 << 20).unwrap();
    let (entries, _) =
        projector::feed::read(&store, 0, usize::MAX, usize::MAX, &mut |_| true).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    entries
        .into_iter()
        .map(|e| {
            let r = e.record;
            format!(
                "{} {} {:?} {} {:?}",
                r.event_id,
                r.kind.as_str(),
                r.entity,
                r.location,
                r.scorecard.map(|s| s.id)
            )
        })
        .filter(|k| !seen.insert(k.clone()))
        .take(5)
        .collect()
}

/// Entities of a stopped store whose history records one event twice
/// (what a replayed, non-idempotent fold would write), at most 5.
pub fn duplicated_history(path: &Path) -> Vec<String> {
    let store = std::sync::Arc::new(RocksStore::open(path, 8 << 20).unwrap());
    let mut refs = Vec::new();
    store
        .scan(b"E", None, &mut |k, _| {
            refs.push(String::from_utf8_lossy(&k[1..]).into_owned());
            true
        })
        .unwrap();
    let catalog = projector::Catalog::new(store);
    let mut out = Vec::new();
    for r in refs {
        let changes = catalog.history(&r).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        if changes.iter().any(|c| !seen.insert(c.event_id)) {
            out.push(r.clone());
        }
        if out.len() >= 5 {
            break;
        }
    }
    out
}

//! The stages on Apache Kafka, scaled and broken on purpose:
//!
//! - three processors in one consumer group (one added, one removed
//!   mid-ingest), two projector hosts, one `project` with two `serve`
//!   secondaries, on three brokers (replication 3, `min.insync.replicas`
//!   2), one broker killed mid-ingest: every projector ends equal to a
//!   witness that folded the finished log in one go;
//! - a single broker stopped for 30 s mid-ingest: `serve` keeps answering
//!   and `/readyz` says why it is not ready, ingest keeps what it could not
//!   publish, every service recovers by itself;
//! - every service kind SIGKILLed at random points, five times each (more
//!   with `CATALOG_CRASH_ROUNDS=N`, for a longer run outside CI), while
//!   an org ingests and files keep changing: the final state equals an
//!   uninterrupted run's and no entity history holds a change twice.

mod common;
mod support;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(240);

/// `(lag, total entities)` of an API, when ready.
fn state(a: &ureq::Agent, base: &str) -> Option<(i64, u64)> {
    let (s, v) = get(a, &format!("{base}/readyz"));
    if s != 200 {
        return None;
    }
    Some((v["lag"].as_i64()?, total(a, base, "")))
}

fn caught_up(a: &ureq::Agent, base: &str, n: u64) -> bool {
    state(a, base) == Some((0, n))
}

fn listen() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A projector host (`serve --with-projector`) on `dir`, answering on `listen`.
fn host(name: &str, dir: &Path, listen: &str, env: &[(&'static str, String)]) -> Proc {
    Proc::spawn(
        name,
        &[
            "serve",
            "--with-projector",
            "--data-dir",
            s(dir),
            "--listen",
            listen,
        ],
        env,
    )
}

/// Keeps rewriting the titles of `targets` (a new title each time) until
/// stopped; returns the last title of each edited component.
fn editor(
    targets: Vec<(PathBuf, String)>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<std::collections::BTreeMap<String, String>> {
    std::thread::spawn(move || {
        let originals: Vec<String> = targets
            .iter()
            .map(|(p, _)| std::fs::read_to_string(p).unwrap())
            .collect();
        let mut k = 0u64;
        let mut last = std::collections::BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            let i = (k as usize * 7919) % targets.len();
            let (path, r) = &targets[i];
            let name = r.rsplit('/').next().unwrap();
            let needle = format!("  name: {name}\n");
            let text = originals[i].replacen(&needle, &format!("{needle}  title: edit-{k}\n"), 1);
            std::fs::write(path, text).unwrap();
            last.insert(name.to_owned(), format!("edit-{k}"));
            k += 1;
            std::thread::sleep(Duration::from_millis(150));
        }
        last
    })
}

#[test]
fn stages_scale_and_survive_a_broker_loss_on_three_brokers() {
    let Some(k) = Kafka::private("scale", 3) else {
        return;
    };
    let mut env = k.env();
    env.push(("CATALOG_REPLICATION_FACTOR", "3".into()));
    env.push(("CATALOG_MIN_INSYNC_REPLICAS", "2".into()));
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    let n = 6000usize;
    catalog_bench::generate_org(&org, n, 10).unwrap();
    let d = |name: &str| tmp.path().join(name);

    let (la, lb, l1, l2) = (listen(), listen(), listen(), listen());
    let host_a = host("host-a", &d("a"), &la, &env);
    let host_b = host("host-b", &d("b"), &lb, &env);
    let project = Proc::spawn("project", &["project", "--data-dir", s(&d("p"))], &env);
    let serve1 = Proc::spawn(
        "serve-1",
        &["serve", "--data-dir", s(&d("p")), "--listen", &l1],
        &env,
    );
    let serve2 = Proc::spawn(
        "serve-2",
        &["serve", "--data-dir", s(&d("p")), "--listen", &l2],
        &env,
    );
    let p1 = Proc::spawn("process-1", &["process"], &env);
    let mut p2 = Proc::spawn("process-2", &["process"], &env);
    let ingest = Proc::spawn(
        "ingest",
        &["ingest", s(&org), "--data-dir", s(&d("ingest"))],
        &env,
    );
    let a = agent();
    let base = |l: &str| format!("http://{l}");

    // Mid-ingest: a third processor joins, the first leaves (two
    // rebalances), and a broker dies.
    wait_for("host a applied something", WAIT, || {
        (total(&a, &base(&la), "") > 0).then_some(())
    });
    let mut p3 = Proc::spawn("process-3", &["process"], &env);
    wait_for("a quarter ingested", WAIT, || {
        (total(&a, &base(&la), "") as usize >= n / 4).then_some(())
    });
    p1.terminate();
    k.kill_broker(2);
    let seen_at_kill = total(&a, &base(&la), "");

    for (what, l) in [
        ("host a", &la),
        ("host b", &lb),
        ("serve 1", &l1),
        ("serve 2", &l2),
    ] {
        wait_for(&format!("{what} has the whole org"), WAIT, || {
            caught_up(&a, &base(l), n as u64).then_some(())
        });
    }
    assert!(p2.running() && p3.running(), "a processor died");
    // The witness folds the finished log in one go.
    let lw = listen();
    let witness = host("witness", &d("w"), &lw, &env);
    wait_for("witness has the whole org", WAIT, || {
        caught_up(&a, &base(&lw), n as u64).then_some(())
    });

    for p in [
        serve1, serve2, host_a, host_b, project, witness, ingest, p2, p3,
    ] {
        p.terminate();
    }
    let sums: Vec<(String, serde_json::Value)> = ["a", "b", "p", "w"]
        .iter()
        .map(|x| ((*x).to_owned(), checksum(&d(x))))
        .collect();
    for (name, sum) in &sums {
        assert_eq!(
            sum["sha256"], sums[3].1["sha256"],
            "projector {name} differs from the witness: {sum} vs {}",
            sums[3].1
        );
    }
    assert!(sums[0].1["keys"].as_u64().unwrap() > n as u64);
    for x in ["a", "b", "p", "w"] {
        let dup = duplicated_history(&d(x).join("projections"));
        assert!(
            dup.is_empty(),
            "projector {x}: history records an event twice: {dup:?}"
        );
        let dup = duplicated_feed(&d(x).join("projections"));
        assert!(
            dup.is_empty(),
            "projector {x}: the change feed records a change twice: {dup:?}"
        );
    }
    eprintln!("broker 2 killed with {seen_at_kill} of {n} entities visible");
}

#[test]
fn a_broker_away_for_thirty_seconds_is_waited_out() {
    let Some(k) = Kafka::private("outage", 1) else {
        return;
    };
    let env = k.env();
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    let n = 3000usize;
    let targets = catalog_bench::generate_org(&org, n, 10).unwrap();
    let d = |name: &str| tmp.path().join(name);
    let lh = listen();
    let host = host("host", &d("h"), &lh, &env);
    let mut process = Proc::spawn("process", &["process"], &env);
    let mut ingest = Proc::spawn(
        "ingest",
        &["ingest", s(&org), "--data-dir", s(&d("ingest"))],
        &env,
    );
    let a = agent();
    let base = format!("http://{lh}");
    wait_for("host applied something", WAIT, || {
        (total(&a, &base, "") > 0).then_some(())
    });
    k.stop_broker(1);
    let down = Instant::now();
    // While the broker is away the API answers from its projections and
    // says why it is not ready.
    // (Generous: the end-offset probe that notices the outage waits out
    // its own timeouts, which a loaded machine stretches.)
    let reason = wait_for("readyz says why", Duration::from_secs(90), || {
        let (s, v) = get(&a, &format!("{base}/readyz"));
        (s == 503).then(|| v["reason"].as_str().unwrap_or_default().to_owned())
    });
    assert!(reason.contains("end offsets"), "{reason}");
    let visible = total(&a, &base, "");
    assert!(
        visible > 0,
        "the API stopped answering while the broker was away"
    );
    // Ingest observes an edit it cannot publish yet.
    let (path, r) = &targets[0];
    let name = r.rsplit('/').next().unwrap().to_owned();
    let needle = format!("  name: {name}\n");
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(
        path,
        text.replacen(&needle, &format!("{needle}  title: during-outage\n"), 1),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    assert!(
        process.running() && ingest.running(),
        "a service gave up while the broker was away"
    );
    let (s, _) = get(&a, &format!("{base}/api/catalog/entities?limit=1"));
    assert_eq!(
        s, 200,
        "the API stopped answering while the broker was away"
    );
    k.start_broker(1);

    wait_for("everything after the outage", WAIT, || {
        caught_up(&a, &base, n as u64).then_some(())
    });
    wait_for("the edit made during the outage", WAIT, || {
        let (_, e) = get(
            &a,
            &format!("{base}/api/catalog/entities/by-name/component/default/{name}"),
        );
        (e["metadata"]["title"] == "during-outage").then_some(())
    });
    for p in [host, process, ingest] {
        p.terminate();
    }
    let dup = duplicated_history(&d("h").join("projections"));
    assert!(dup.is_empty(), "history records an event twice: {dup:?}");
}

/// One service of the crash matrix: how to start it again.
struct Service {
    kind: &'static str,
    args: Vec<String>,
    proc: Option<Proc>,
}

impl Service {
    fn start(&mut self, env: &[(&'static str, String)]) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.proc = Some(Proc::spawn(self.kind, &args, env));
    }
}

#[test]
fn every_service_kind_killed_repeatedly_converges() {
    let k = Kafka::shared("crash");
    let env = k.env();
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    let n = 10_000usize;
    let targets = catalog_bench::generate_org(&org, n, 10).unwrap();
    let d = |name: &str| tmp.path().join(name);
    let lh = listen();
    let strings = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let mut services = vec![
        Service {
            kind: "ingest",
            args: strings(&["ingest", s(&org), "--data-dir", s(&d("ingest"))]),
            proc: None,
        },
        Service {
            kind: "process",
            args: strings(&["process"]),
            proc: None,
        },
        Service {
            kind: "project",
            args: strings(&["project", "--data-dir", s(&d("p"))]),
            proc: None,
        },
        Service {
            kind: "host",
            args: strings(&[
                "serve",
                "--with-projector",
                "--data-dir",
                s(&d("h")),
                "--listen",
                &lh,
            ]),
            proc: None,
        },
    ];
    for svc in &mut services {
        svc.start(&env);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let edits = editor(targets[..50].to_vec(), stop.clone());
    let a = agent();
    let base = format!("http://{lh}");
    wait_for("host applied something", WAIT, || {
        (total(&a, &base, "") > 0).then_some(())
    });

    // Five rounds; in each, every kind is SIGKILLed at a pseudo-random
    // moment and restarted.
    let seed = AtomicU64::new(u64::from(std::process::id()) * 2_654_435_761);
    let next = || {
        let x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 33
    };
    let mut kills = std::collections::BTreeMap::<&str, u32>::new();
    let mut seen_during = Vec::new();
    // Five rounds in CI; CATALOG_CRASH_ROUNDS asks for a longer run.
    let rounds: u32 = std::env::var("CATALOG_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(5);
    for _round in 0..rounds {
        seen_during.push(total(&a, &base, ""));
        for svc in &mut services {
            std::thread::sleep(Duration::from_millis(200 + next() % 1500));
            if let Some(p) = svc.proc.take() {
                p.sigkill();
            }
            *kills.entry(svc.kind).or_default() += 1;
            svc.start(&env);
        }
    }
    assert!(
        seen_during[0] < n as u64,
        "the kills began after ingest finished ({seen_during:?})"
    );
    stop.store(true, Ordering::Relaxed);
    let last_titles = edits.join().unwrap();
    assert!(kills.values().all(|&c| c >= rounds), "{kills:?}");

    // An uninterrupted witness folds the whole log.
    let lw = listen();
    let witness = host("witness", &d("w"), &lw, &env);
    let lp = listen();
    let follower = Proc::spawn(
        "project-follower",
        &["serve", "--data-dir", s(&d("p")), "--listen", &lp],
        &env,
    );
    for (name, title) in &last_titles {
        wait_for(&format!("last edit of {name}"), WAIT, || {
            let (_, e) = get(
                &a,
                &format!("{base}/api/catalog/entities/by-name/component/default/{name}"),
            );
            (e["metadata"]["title"] == title.as_str()).then_some(())
        });
    }
    // Settled: everyone caught up, twice in a row a few seconds apart (a
    // restarted ingest may re-ship what it published before its kill).
    let settled = |a: &ureq::Agent| {
        [&base, &format!("http://{lw}"), &format!("http://{lp}")]
            .iter()
            .all(|b| caught_up(a, b, n as u64))
    };
    wait_for("everyone settled", WAIT, || {
        if !settled(&a) {
            return None;
        }
        std::thread::sleep(Duration::from_secs(3));
        settled(&a).then_some(())
    });
    follower.terminate();
    witness.terminate();
    for svc in services {
        svc.proc.unwrap().terminate();
    }
    let w = dump(&d("w").join("projections"));
    for x in ["h", "p"] {
        let v = dump(&d(x).join("projections"));
        let diff = differing(&w, &v);
        assert!(
            diff.is_empty(),
            "store {x} differs from the witness at {diff:?}"
        );
        let dup = duplicated_history(&d(x).join("projections"));
        assert!(
            dup.is_empty(),
            "store {x}: history records an event twice: {dup:?}"
        );
    }
    eprintln!(
        "kills {kills:?}, {} components edited, visible during: {seen_during:?}",
        last_titles.len()
    );
}

//! Ingest of a directory of descriptor files into an embedded event log.

use chrono::Utc;
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, Reader};
use ingest::files::FilesSource;
use ingest::{
    HeldBack, Ingest, IngestConfig, RemovalGuard, SourceConfig, StateStore, SyncMode, SyncReport,
    sync_source,
};
use proto::{Content, LocationKey, Observation, ObservedContent, SourceId, Versioned};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Harness {
    _dir: tempfile::TempDir,
    /// Canonical temp dir; the source root is `base/root`.
    base: PathBuf,
    root: PathBuf,
    log: Arc<EmbeddedLog>,
    reader: Box<dyn Reader>,
    ingest: Ingest,
}

fn component(name: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

fn location(targets: &[&str]) -> String {
    let mut s = String::from(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: loc\nspec:\n  targets:\n",
    );
    for t in targets {
        s.push_str(&format!("    - {t}\n"));
    }
    s
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

impl Harness {
    fn new(configure: impl FnOnce(&mut SourceConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        fs::create_dir_all(&root).unwrap();
        let log = Arc::new(EmbeddedLog::open(&base.join("log"), &proto::topics::ALL, 3).unwrap());
        let reader = log.subscribe(proto::topics::OBSERVATIONS, "test").unwrap();
        let mut source = SourceConfig::files("files", &root);
        configure(&mut source);
        let ingest = Ingest::open(
            IngestConfig {
                sources: vec![source],
                ..IngestConfig::default()
            },
            log.clone(),
            &base.join("state"),
        )
        .unwrap();
        Harness {
            _dir: dir,
            base,
            root,
            log,
            reader,
            ingest,
        }
    }

    fn sync(&self) -> SyncReport {
        let mut r = self.ingest.sync_now(Some("files")).unwrap();
        assert_eq!(r.len(), 1);
        r.pop().unwrap()
    }

    fn end(&self) -> i64 {
        self.log
            .end_offsets(proto::topics::OBSERVATIONS)
            .unwrap()
            .iter()
            .sum()
    }

    /// Observations appended since the last call, sorted by location.
    fn observed(&mut self) -> Vec<Observation> {
        let mut out = Vec::new();
        loop {
            let batch = self.reader.poll(Duration::from_millis(50)).unwrap();
            if batch.is_empty() {
                break;
            }
            for rec in batch {
                let o = Observation::decode(&rec.value).unwrap();
                assert_eq!(rec.key, o.location.as_str().as_bytes(), "keyed by location");
                out.push(o);
            }
        }
        out.sort_by(|a, b| a.location.cmp(&b.location));
        out
    }

    fn key(&self, rel: &str) -> LocationKey {
        LocationKey::file(&self.base.join(rel))
    }
}

fn text(o: &Observation) -> &str {
    match &o.content {
        ObservedContent::Present {
            content: Content::Utf8 { text },
        } => text,
        other => panic!("not text: {other:?}"),
    }
}

#[test]
fn first_sync_emits_all_then_only_changes() {
    let mut h = Harness::new(|_| {});
    for name in ["a", "b", "c", "d"] {
        write(&h.root.join(format!("{name}.yaml")), component(name));
    }
    write(&h.root.join("nested/e.yml"), component("e"));
    write(&h.root.join("notes.txt"), "not a descriptor");

    let r = h.sync();
    assert!(r.complete);
    assert_eq!((r.listed, r.emitted_new, r.emitted()), (5, 5, 5));
    let obs = h.observed();
    let keys: Vec<_> = obs.iter().map(|o| o.location.clone()).collect();
    assert_eq!(
        keys,
        vec![
            h.key("root/a.yaml"),
            h.key("root/b.yaml"),
            h.key("root/c.yaml"),
            h.key("root/d.yaml"),
            h.key("root/nested/e.yml"),
        ]
    );
    assert!(keys[0].as_str().starts_with("file:/"));
    let root_key = LocationKey::file(&h.root);
    for o in &obs {
        assert_eq!(o.origin, root_key);
        assert_eq!(o.source, SourceId::new("files"));
        assert_eq!(o.first_seen_at, o.observed_at);
    }
    assert_eq!(text(&obs[0]), component("a"));

    // Nothing changed: nothing is appended at all.
    let end = h.end();
    let r = h.sync();
    assert_eq!((r.emitted(), r.unchanged), (0, 5));
    assert_eq!(h.end(), end);
    assert!(h.observed().is_empty());

    // An edit of the same size right after the last read is still seen
    // (the fingerprint of a just-written file is not trusted).
    let edited = component("a").replace("team-a", "team-b");
    assert_eq!(edited.len(), component("a").len());
    write(&h.root.join("a.yaml"), &edited);
    let r = h.sync();
    assert_eq!((r.emitted_changed, r.emitted()), (1, 1));
    let obs = h.observed();
    assert_eq!(obs[0].location, h.key("root/a.yaml"));
    assert_eq!(text(&obs[0]), edited);
    assert!(obs[0].first_seen_at < obs[0].observed_at, "first_seen kept");

    // One deletion goes out as Removed.
    fs::remove_file(h.root.join("b.yaml")).unwrap();
    let r = h.sync();
    assert_eq!((r.emitted_removed, r.emitted(), r.held_back), (1, 1, None));
    let obs = h.observed();
    assert_eq!(obs[0].location, h.key("root/b.yaml"));
    assert_eq!(obs[0].content, ObservedContent::Removed);
    assert_eq!(obs[0].origin, root_key);

    assert_eq!(h.sync().emitted(), 0);
}

#[test]
fn deleting_most_files_is_held_back() {
    let mut h = Harness::new(|_| {});
    for i in 0..6 {
        write(
            &h.root.join(format!("c{i}.yaml")),
            component(&format!("c{i}")),
        );
    }
    h.sync();
    h.observed();
    for i in 0..4 {
        fs::remove_file(h.root.join(format!("c{i}.yaml"))).unwrap();
    }
    write(&h.root.join("c5.yaml"), component("c5-renamed"));
    let r = h.sync();
    assert_eq!(
        r.held_back,
        Some(HeldBack {
            would_remove: 4,
            known: 6
        })
    );
    assert_eq!((r.emitted_removed, r.emitted_changed), (0, 1));
    let obs = h.observed();
    assert_eq!(obs.len(), 1, "the change goes out, no removal does");
    assert_eq!(obs[0].location, h.key("root/c5.yaml"));

    // Held back again on the next poll: the state was kept.
    let r = h.sync();
    assert_eq!(r.held_back.map(|h| h.would_remove), Some(4));
    assert!(h.observed().is_empty());

    // Files come back: nothing to remove, nothing changed.
    for i in 0..4 {
        write(
            &h.root.join(format!("c{i}.yaml")),
            component(&format!("c{i}")),
        );
    }
    let r = h.sync();
    assert_eq!((r.held_back, r.emitted()), (None, 0));

    // A single deletion is not held back.
    fs::remove_file(h.root.join("c0.yaml")).unwrap();
    let r = h.sync();
    assert_eq!((r.held_back, r.emitted_removed), (None, 1));
}

#[test]
fn a_missing_root_removes_nothing() {
    let mut h = Harness::new(|s| {
        s.removal_guard = RemovalGuard {
            max_share: 1.0,
            min_count: 0,
        }
    });
    write(&h.root.join("a.yaml"), component("a"));
    write(&h.root.join("b.yaml"), component("b"));
    h.sync();
    h.observed();
    let moved = h.base.join("moved");
    fs::rename(&h.root, &moved).unwrap();
    let r = h.sync();
    assert!(!r.complete);
    assert_eq!((r.listed, r.emitted(), r.held_back), (0, 0, None));
    assert!(r.problems[0].contains("root"), "{:?}", r.problems);
    assert!(h.observed().is_empty());
    fs::rename(&moved, &h.root).unwrap();
    let r = h.sync();
    assert!(r.complete);
    assert_eq!((r.emitted(), r.unchanged), (0, 2));
    // With the guard off, a complete listing without the files removes them.
    fs::remove_dir_all(&h.root).unwrap();
    fs::create_dir(&h.root).unwrap();
    assert_eq!(h.sync().emitted_removed, 2);
}

#[test]
fn too_large_and_non_utf8_content() {
    let mut h = Harness::new(|s| s.max_file_bytes = 100);
    write(&h.root.join("big.yaml"), "x".repeat(101));
    write(&h.root.join("exact.yaml"), "y".repeat(100));
    write(&h.root.join("latin1.yaml"), b"name: caf\xe9\n");
    let r = h.sync();
    assert_eq!(r.emitted_new, 3);
    let obs = h.observed();
    assert_eq!(obs[0].location, h.key("root/big.yaml"));
    assert_eq!(
        obs[0].content,
        ObservedContent::TooLarge {
            size: 101,
            limit: 100
        }
    );
    assert_eq!(text(&obs[1]), "y".repeat(100));
    assert_eq!(
        obs[2].content,
        ObservedContent::Present {
            content: Content::Hex {
                data: hex::encode(b"name: caf\xe9\n")
            }
        }
    );
    // Shrinking below the limit ships the content.
    write(&h.root.join("big.yaml"), "small");
    assert_eq!(h.sync().emitted_changed, 1);
    assert_eq!(text(&h.observed()[0]), "small");
}

#[cfg(unix)]
#[test]
fn unreadable_file_is_observed_as_unreadable() {
    let mut h = Harness::new(|_| {});
    // A dangling symlink matches the pattern but cannot be read.
    write(&h.root.join("ok.yaml"), component("ok"));
    std::os::unix::fs::symlink(h.base.join("nowhere.yaml"), h.root.join("dangling.yaml")).unwrap();
    let r = h.sync();
    assert_eq!(r.emitted_new, 2);
    let obs = h.observed();
    assert_eq!(obs[0].location, h.key("root/dangling.yaml"));
    assert!(
        matches!(&obs[0].content, ObservedContent::Unreadable { reason } if !reason.is_empty())
    );
    assert_eq!(
        h.sync().emitted(),
        0,
        "the same reason is not shipped twice"
    );
}

#[test]
fn location_targets_pull_in_files_beyond_the_walk() {
    let mut h = Harness::new(|_| {});
    // root/catalog-info.yaml -> ../shared/*.desc (outside root, not a pattern)
    //                        -> ./teams/list.txt  (inside root, not a pattern)
    // shared/one.desc -> ../root/catalog-info.yaml (cycle)
    write(
        &h.root.join("catalog-info.yaml"),
        location(&["../shared/*.desc", "./teams/list.txt"]),
    );
    write(&h.root.join("teams/list.txt"), component("teams"));
    write(
        &h.base.join("shared/one.desc"),
        location(&["../root/catalog-info.yaml"]),
    );
    write(&h.base.join("shared/two.desc"), component("two"));
    write(&h.base.join("shared/ignored.yaml"), component("ignored"));
    let r = h.sync();
    assert!(r.complete);
    let obs = h.observed();
    let keys: Vec<_> = obs.iter().map(|o| o.location.clone()).collect();
    assert_eq!(
        keys,
        vec![
            h.key("root/catalog-info.yaml"),
            h.key("root/teams/list.txt"),
            h.key("shared/one.desc"),
            h.key("shared/two.desc"),
        ]
    );
    let root_key = LocationKey::file(&h.root);
    assert!(obs.iter().all(|o| o.origin == root_key));

    // Unchanged: the targets are remembered, so nothing is removed.
    assert_eq!(h.sync().emitted(), 0);

    // Dropping a target removes what it pulled in.
    write(
        &h.root.join("catalog-info.yaml"),
        location(&["./teams/list.txt"]),
    );
    let r = h.sync();
    assert_eq!((r.emitted_changed, r.emitted_removed), (1, 2));
    let obs = h.observed();
    let removed: Vec<_> = obs
        .iter()
        .filter(|o| o.content == ObservedContent::Removed)
        .map(|o| o.location.clone())
        .collect();
    assert_eq!(
        removed,
        vec![h.key("shared/one.desc"), h.key("shared/two.desc")]
    );
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    write(&root.join("a.yaml"), component("a"));
    let open = || {
        let log: Arc<dyn EventLog> =
            Arc::new(EmbeddedLog::open(&base.join("log"), &proto::topics::ALL, 1).unwrap());
        let ingest = Ingest::open(
            IngestConfig {
                sources: vec![SourceConfig::files("files", &root)],
                ..IngestConfig::default()
            },
            log.clone(),
            &base.join("state"),
        )
        .unwrap();
        (log, ingest)
    };
    {
        let (_log, ingest) = open();
        assert_eq!(ingest.sync_now(None).unwrap()[0].emitted_new, 1);
    }
    let (log, ingest) = open();
    assert_eq!(ingest.sync_now(None).unwrap()[0].emitted(), 0);
    assert_eq!(
        log.end_offsets(proto::topics::OBSERVATIONS).unwrap(),
        vec![1]
    );
    assert!(matches!(
        ingest.sync_now(Some("other")),
        Err(ingest::IngestError::UnknownSource(_))
    ));
}

#[test]
fn unchanged_repoll_only_stats() {
    // 2,000 files of 10 entities each; fingerprints trusted at once.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    for f in 0..2000 {
        let doc: Vec<String> = (0..10).map(|e| component(&format!("c{f}-{e}"))).collect();
        write(
            &root.join(format!("d{}/f{f}.yaml", f % 50)),
            doc.join("---\n"),
        );
    }
    let log = EmbeddedLog::open(&base.join("log"), &proto::topics::ALL, 3).unwrap();
    let state = StateStore::open(&base.join("state")).unwrap();
    let source = FilesSource::new(
        SourceId::new("bench"),
        root.clone(),
        &["**/*.yaml".to_string()],
        1 << 20,
    )
    .unwrap()
    .with_racy_window(Duration::ZERO);
    let guard = RemovalGuard::default();

    let t = Instant::now();
    let first = sync_source(&source, &state, &log, &guard, Utc::now(), SyncMode::Full).unwrap();
    let first_took = t.elapsed();
    assert_eq!((first.emitted_new, first.fetched), (2000, 2000));

    let t = Instant::now();
    let again = sync_source(&source, &state, &log, &guard, Utc::now(), SyncMode::Full).unwrap();
    let again_took = t.elapsed();
    assert_eq!(
        (again.emitted(), again.unchanged, again.fetched),
        (0, 2000, 0)
    );
    eprintln!("first sync {first_took:?}, unchanged re-poll {again_took:?}");

    // One edit: one read, one observation.
    write(&root.join("d7/f7.yaml"), component("edited"));
    let third = sync_source(&source, &state, &log, &guard, Utc::now(), SyncMode::Full).unwrap();
    assert_eq!(
        (third.emitted_changed, third.emitted(), third.fetched),
        (1, 1, 1)
    );
}

#[test]
fn run_syncs_on_start_and_on_trigger_until_stopped() {
    let mut h = Harness::new(|s| {
        s.schedule = "0 0 0 1 1 * 2099".into();
        unwatched(s);
    });
    write(&h.root.join("a.yaml"), component("a"));
    let ingest = Arc::new(std::mem::replace(
        &mut h.ingest,
        Ingest::open(
            IngestConfig::default(),
            h.log.clone(),
            &h.base.join("state2"),
        )
        .unwrap(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let trigger = ingest.trigger();
    let runner = {
        let (ingest, stop) = (ingest.clone(), stop.clone());
        std::thread::spawn(move || ingest.run(stop))
    };
    let wait_for = |h: &mut Harness, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            got.extend(h.observed());
        }
        got
    };
    let got = wait_for(&mut h, 1);
    assert_eq!(got.len(), 1, "synced at start");
    assert_eq!(got[0].location, h.key("root/a.yaml"));

    // The schedule will not fire before 2099: only the trigger syncs.
    write(&h.root.join("b.yaml"), component("b"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        h.observed().is_empty(),
        "no sync without the schedule or a trigger"
    );
    trigger.sync_now();
    let got = wait_for(&mut h, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].location, h.key("root/b.yaml"));

    let stopped = Instant::now();
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(2));
}

fn unwatched(s: &mut SourceConfig) {
    if let ingest::config::SourceKind::Files(f) = &mut s.kind {
        f.watch = false;
    }
}

/// Runs the scheduler of `h` (its ingest moved out) until dropped.
struct Running {
    ingest: Arc<Ingest>,
    stop: Arc<AtomicBool>,
    runner: Option<std::thread::JoinHandle<Result<(), ingest::IngestError>>>,
}

impl Running {
    fn start(h: &mut Harness) -> Self {
        let ingest = Arc::new(std::mem::replace(
            &mut h.ingest,
            Ingest::open(
                IngestConfig::default(),
                h.log.clone(),
                &h.base.join(format!("state-{}", uuid_like())),
            )
            .unwrap(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let runner = {
            let (ingest, stop) = (ingest.clone(), stop.clone());
            std::thread::spawn(move || ingest.run(stop))
        };
        Running {
            ingest,
            stop,
            runner: Some(runner),
        }
    }

    fn last(&self) -> SyncReport {
        self.ingest.status()[0].last_sync.clone().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.runner.take() {
            r.join().unwrap().unwrap();
        }
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Observations until `n` arrived (or 10 s passed).
fn wait_for(h: &mut Harness, n: usize) -> Vec<Observation> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(h.observed());
    }
    got.sort_by(|a, b| a.location.cmp(&b.location));
    got
}

#[test]
fn a_watched_tree_ships_changes_as_they_happen_without_full_listings() {
    // The schedule (every second, the default) is not what drives a
    // watched tree: full listings run every rescan interval.
    let mut h = Harness::new(|_| {});
    write(&h.root.join("a.yaml"), component("a"));
    let running = Running::start(&mut h);
    let got = wait_for(&mut h, 1);
    assert_eq!(got.len(), 1, "the first full listing");
    assert!(!running.last().scoped);

    // A new file, an edit, a removal: each one scoped sync of that path.
    write(&h.root.join("sub/b.yaml"), component("b"));
    let got = wait_for(&mut h, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].location, h.key("root/sub/b.yaml"));
    write(&h.root.join("a.yaml"), component("a2"));
    let got = wait_for(&mut h, 1);
    assert_eq!(got[0].location, h.key("root/a.yaml"));
    assert!(
        matches!(&got[0].content, ObservedContent::Present { content: Content::Utf8 { text } } if text.contains("a2"))
    );
    fs::remove_file(h.root.join("a.yaml")).unwrap();
    let got = wait_for(&mut h, 1);
    assert_eq!(got[0].location, h.key("root/a.yaml"));
    assert_eq!(got[0].content, ObservedContent::Removed);
    let last = running.last();
    assert!(last.scoped, "{last:?}");

    // Files that do not match the patterns are ignored.
    write(&h.root.join("notes.txt"), "hello");
    std::thread::sleep(Duration::from_millis(300));
    assert!(h.observed().is_empty());

    // A directory moved in or removed as a whole: a full listing judges it.
    let outside = h.base.join("staging");
    write(&outside.join("c.yaml"), component("c"));
    write(&outside.join("d.yaml"), component("d"));
    fs::rename(&outside, h.root.join("moved")).unwrap();
    let got = wait_for(&mut h, 2);
    let keys: Vec<&LocationKey> = got.iter().map(|o| &o.location).collect();
    assert_eq!(
        keys,
        [&h.key("root/moved/c.yaml"), &h.key("root/moved/d.yaml")]
    );
    fs::remove_dir_all(h.root.join("sub")).unwrap();
    let got = wait_for(&mut h, 1);
    assert_eq!(got[0].location, h.key("root/sub/b.yaml"));
    assert_eq!(got[0].content, ObservedContent::Removed);

    // Idle: nothing is listed again while nothing changes (a full listing
    // would replace the last report within the one-second schedule).
    write(&h.root.join("moved/c.yaml"), component("c2"));
    wait_for(&mut h, 1);
    std::thread::sleep(Duration::from_millis(1500));
    let last = running.last();
    assert!(last.scoped && last.fetched == 1, "{last:?}");
    assert!(h.observed().is_empty());
}

#[test]
fn every_second_schedule_picks_up_changes() {
    let mut h = Harness::new(unwatched);
    let ingest = Arc::new(std::mem::replace(
        &mut h.ingest,
        Ingest::open(
            IngestConfig::default(),
            h.log.clone(),
            &h.base.join("state2"),
        )
        .unwrap(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (ingest, stop) = (ingest.clone(), stop.clone());
        std::thread::spawn(move || ingest.run(stop))
    };
    std::thread::sleep(Duration::from_millis(200));
    write(&h.root.join("late.yaml"), component("late"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        got = h.observed();
    }
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].location, h.key("root/late.yaml"));
}

/// Opens ingest on `h`'s state with `cfg`, closing the one it had first.
fn reopen(h: &mut Harness, cfg: IngestConfig) -> Result<(), ingest::IngestError> {
    let scratch = h.base.join(format!("scratch-{}", uuid_like()));
    let old = std::mem::replace(
        &mut h.ingest,
        Ingest::open(IngestConfig::default(), h.log.clone(), &scratch).unwrap(),
    );
    drop(old);
    h.ingest = Ingest::open(cfg, h.log.clone(), &h.base.join("state"))?;
    Ok(())
}

/// A source taken out of the configuration has what it yielded removed: at
/// once when it was little, held back by the removal guard (and reported)
/// when it was much, until `retired_sources` confirms it.
#[test]
fn a_source_gone_from_the_configuration_is_retired() {
    let mut h = Harness::new(unwatched);
    for name in ["a", "b"] {
        write(&h.root.join(format!("{name}.yaml")), component(name));
    }
    assert_eq!(h.sync().emitted_new, 2);
    h.observed();
    let other = h.base.join("other");
    fs::create_dir_all(&other).unwrap();
    reopen(
        &mut h,
        IngestConfig {
            sources: vec![SourceConfig::files("other", &other)],
            ..IngestConfig::default()
        },
    )
    .unwrap();
    assert_eq!(h.ingest.source_ids(), ["other", "files"]);
    let status = h.ingest.status();
    assert_eq!(status[1].kind, "retired");
    let r = h.ingest.sync_now(Some("files")).unwrap().pop().unwrap();
    assert_eq!((r.emitted_removed, r.held_back), (2, None));
    let removed = h.observed();
    assert_eq!(removed.len(), 2);
    assert!(
        removed
            .iter()
            .all(|o| matches!(o.content, ObservedContent::Removed))
    );
    // Nothing of it is left: the next start does not list it.
    reopen(&mut h, IngestConfig::default()).unwrap();
    assert!(
        h.ingest.source_ids().is_empty(),
        "{:?}",
        h.ingest.source_ids()
    );

    // A source with many locations: its removal is held back.
    let mut source = SourceConfig::files("files", &h.root);
    unwatched(&mut source);
    reopen(
        &mut h,
        IngestConfig {
            sources: vec![source],
            ..IngestConfig::default()
        },
    )
    .unwrap();
    for name in ["c", "d", "e"] {
        write(&h.root.join(format!("{name}.yaml")), component(name));
    }
    assert_eq!(h.sync().emitted_new, 5);
    h.observed();
    reopen(&mut h, IngestConfig::default()).unwrap();
    let r = h.ingest.sync_now(Some("files")).unwrap().pop().unwrap();
    assert_eq!(r.emitted_removed, 0);
    assert_eq!(
        r.held_back,
        Some(HeldBack {
            would_remove: 5,
            known: 5
        })
    );
    assert!(h.observed().is_empty(), "nothing removed");
    let status = serde_json::to_value(h.ingest.status()).unwrap();
    assert_eq!(status[0]["kind"], "retired", "{status}");
    assert_eq!(status[0]["last_sync"]["held_back"]["would_remove"], 5);
    assert_eq!(status[0]["details"]["confirmed"], false);
    assert_eq!(status[0]["details"]["remaining_locations"], 5);

    // A retirement named in the configuration is confirmed: no guard.
    let cfg = IngestConfig {
        retired_sources: vec!["files".into()],
        ..IngestConfig::default()
    };
    reopen(&mut h, cfg).unwrap();
    let r = h.ingest.sync_now(Some("files")).unwrap().pop().unwrap();
    assert_eq!((r.emitted_removed, r.held_back), (5, None));
    assert_eq!(h.observed().len(), 5);
    reopen(&mut h, IngestConfig::default()).unwrap();
    assert!(h.ingest.source_ids().is_empty());

    // Retiring a source that is still configured is a configuration error.
    let root = h.root.clone();
    let err = reopen(
        &mut h,
        IngestConfig {
            sources: vec![SourceConfig::files("files", &root)],
            retired_sources: vec!["files".into()],
            ..IngestConfig::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("ingest.retired_sources[0]"),
        "{err}"
    );
}

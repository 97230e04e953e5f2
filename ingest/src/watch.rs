//! Watching a files source's tree, so that an unchanged tree costs nothing
//! and an edit is shipped within moments.
//!
//! The watcher (inotify on Linux, through `notify`) records the paths that
//! changed and wakes the scheduler, which runs a scoped sync of just those
//! paths ([`crate::SyncMode::Pending`]). Whatever a scoped sync cannot
//! judge from one path (a directory created, moved or removed; a Location
//! whose targets changed; events the kernel dropped) asks for a full
//! listing instead. While the watch is healthy, full listings run only
//! every `rescan_interval_secs`, as a safety net; when it cannot be set up
//! (no root yet, out of inotify watches) the source falls back to its cron
//! schedule and tries again at the next full listing.

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Wakes the scheduler.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What the watcher saw since the last sync took it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Paths of files (or of what may have been files) that changed.
    pub paths: BTreeSet<PathBuf>,
    /// Something happened that only a full listing can judge.
    pub rescan: bool,
}

#[derive(Default)]
struct Shared {
    changes: Mutex<Changes>,
    waker: Mutex<Option<Waker>>,
    /// The watch is set up and no error was reported since.
    healthy: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(w) = waker {
            w();
        }
    }

    fn record(&self, event: notify::Result<notify::Event>) {
        match event {
            Ok(event) => {
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                {
                    let mut c = self.lock();
                    if event.need_rescan() || matches!(event.kind, EventKind::Other) {
                        c.rescan = true;
                    }
                    for p in event.paths {
                        use notify::event::{CreateKind, ModifyKind, RemoveKind};
                        let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
                        match (is_dir, event.kind) {
                            // A directory's own attributes: nothing below
                            // it changed.
                            (
                                true,
                                EventKind::Modify(
                                    ModifyKind::Data(_) | ModifyKind::Metadata(_) | ModifyKind::Any,
                                ),
                            ) => {}
                            // A directory created, moved or removed as a
                            // whole: files below it appeared or vanished.
                            (true, _)
                            | (
                                false,
                                EventKind::Create(CreateKind::Folder)
                                | EventKind::Remove(RemoveKind::Folder),
                            ) => c.rescan = true,
                            (false, _) => {
                                c.paths.insert(p);
                            }
                        }
                    }
                }
                self.wake();
            }
            Err(e) => {
                tracing::warn!(error = %e, "file watch: events may have been lost; a full listing follows");
                self.lock().rescan = true;
                self.wake();
            }
        }
    }
}

/// The watch of one files source.
pub struct TreeWatch {
    shared: Arc<Shared>,
    watcher: Mutex<Option<RecommendedWatcher>>,
}

impl std::fmt::Debug for TreeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeWatch")
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl Default for TreeWatch {
    fn default() -> Self {
        TreeWatch {
            shared: Arc::new(Shared::default()),
            watcher: Mutex::new(None),
        }
    }
}

impl TreeWatch {
    /// Sets who is woken on a change.
    pub fn bind(&self, waker: Waker) {
        *self
            .shared
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(waker);
    }

    /// Whether the tree is watched (changes are seen without a listing).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::SeqCst)
    }

    /// Watches `root` (recursively) and `extra` directories (not
    /// recursively: those of Location targets outside the root), unless
    /// already watching. Called before each full listing, so a watch that
    /// failed is retried; a listing that follows a (re)started watch sees
    /// every change made before it.
    pub fn ensure(&self, root: &Path, extra: &BTreeSet<PathBuf>) {
        let mut slot = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() && self.is_healthy() {
            // Directories of new outside targets.
            if let Some(w) = slot.as_mut() {
                for dir in extra {
                    if !dir.starts_with(root) {
                        let _ = w.watch(dir, RecursiveMode::NonRecursive);
                    }
                }
            }
            return;
        }
        *slot = None;
        let shared = self.shared.clone();
        let mut watcher = match notify::recommended_watcher(move |e| shared.record(e)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "file watch unavailable; polling on the schedule");
                self.shared.healthy.store(false, Ordering::SeqCst);
                return;
            }
        };
        if let Err(e) = watcher.watch(root, RecursiveMode::Recursive) {
            tracing::warn!(root = %root.display(), error = %e, "cannot watch the tree; polling on the schedule");
            self.shared.healthy.store(false, Ordering::SeqCst);
            return;
        }
        for dir in extra {
            if !dir.starts_with(root)
                && let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive)
            {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot watch a target directory");
            }
        }
        tracing::info!(root = %root.display(), "watching the tree");
        *slot = Some(watcher);
        // Whatever was recorded before is covered by the full listing that
        // called this.
        *self.shared.lock() = Changes::default();
        self.shared.healthy.store(true, Ordering::SeqCst);
    }

    /// Whether a scoped sync has anything to do.
    pub fn has_changes(&self) -> bool {
        let c = self.shared.lock();
        c.rescan || !c.paths.is_empty()
    }

    /// Takes what changed since the last call.
    pub fn take(&self) -> Changes {
        std::mem::take(&mut *self.shared.lock())
    }

    /// Puts changes back (the sync that took them failed).
    pub fn restore(&self, changes: Changes) {
        let mut c = self.shared.lock();
        c.rescan |= changes.rescan;
        c.paths.extend(changes.paths);
    }

    /// Marks the watch broken: the next full listing sets it up again.
    pub fn fail(&self) {
        self.shared.healthy.store(false, Ordering::SeqCst);
    }
}

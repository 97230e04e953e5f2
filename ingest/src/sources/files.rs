//! The `files` source: a directory of descriptor files.
//!
//! Every file under the root that matches the patterns is a location, and so
//! is every file that a `Location` entity in a location names as its target
//! (recursively, cycle-safe, even outside the root). Files are keyed by
//! their canonical absolute path (`file:/abs/path.yaml`).
//!
//! A listing is cheap when nothing changed: a file whose stat fingerprint
//! (size, mtime, ctime, inode) equals the one of the last sync is not read
//! again, and its `Location` targets come from the sync state. Fingerprints
//! of files modified within [`RACY_WINDOW`] of the stat are not trusted
//! (the "racily clean" problem of git): such files are read again next time.

use crate::source::{Fetched, Known, Listed, Listing, ScopeEntry, Source, SourceError};
use crate::state::{ContentState, Fingerprint, LocationRecord};
use crate::targets;
use crate::watch::TreeWatch;
use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use proto::{Content, LocationKey, SourceId};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file modified less than this before it was stat'ed may change again
/// without its fingerprint changing (coarse file system timestamps).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Compiles a pattern the way the files source matches it: `*` and `?` do
/// not cross `/`, `**` does.
pub fn compile_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

/// A directory of descriptor files.
#[derive(Debug)]
pub struct FilesSource {
    id: SourceId,
    root: PathBuf,
    patterns: GlobSet,
    max_file_bytes: u64,
    racy_window: Duration,
    /// The watch of the tree, with the interval of full listings.
    watch: Option<(TreeWatch, Duration)>,
    /// Whether files reached through a symbolic link that leads out of the
    /// root are read (else: an error on the location).
    links_outside_root: bool,
}

impl FilesSource {
    /// `root` should be absolute; it is canonicalised on every listing (it
    /// may appear or move between listings).
    pub fn new(
        id: SourceId,
        root: PathBuf,
        patterns: &[String],
        max_file_bytes: u64,
    ) -> Result<Self, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(compile_glob(p)?);
        }
        Ok(FilesSource {
            id,
            root,
            patterns: b.build()?,
            max_file_bytes,
            racy_window: RACY_WINDOW,
            watch: None,
            links_outside_root: false,
        })
    }

    /// Reads files that symbolic links in the tree lead to outside the
    /// root (by default such a link is an error on its location).
    pub fn following_links_outside_root(mut self, follow: bool) -> Self {
        self.links_outside_root = follow;
        self
    }

    /// Watches the tree: changes are listed as they happen, and full
    /// listings run every `rescan_interval`.
    pub fn with_watch(mut self, rescan_interval: Duration) -> Self {
        self.watch = Some((TreeWatch::default(), rescan_interval));
        self
    }

    /// Replaces [`RACY_WINDOW`]: fingerprints of files modified less than
    /// `window` before a listing are not trusted. Zero trusts every
    /// fingerprint at once (for tests and file systems with exact clocks).
    pub fn with_racy_window(mut self, window: Duration) -> Self {
        self.racy_window = window;
        self
    }
}

impl Source for FilesSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn list(&self, known: &Known) -> Result<Listing, SourceError> {
        let mut locations = Vec::new();
        let mut listing = self.list_each(known, &mut |l| locations.push(l))?;
        listing.locations = locations;
        Ok(listing)
    }

    fn list_each(
        &self,
        known: &Known,
        each: &mut dyn FnMut(Listed),
    ) -> Result<Listing, SourceError> {
        // Directories of listed files outside the root (reached through
        // Location targets), to watch too.
        let mut outside: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
        let canonical = fs::canonicalize(&self.root);
        let mut sink = |l: Listed| {
            if let (Ok(root), Some(p)) = (&canonical, l.location.as_str().strip_prefix("file:"))
                && let Some(dir) = Path::new(p).parent()
                && !dir.starts_with(root)
                && !outside.contains(dir)
            {
                outside.insert(dir.to_path_buf());
            }
            each(l);
        };
        let mut run = self.run(known);
        run.sink = Some(&mut sink);
        let root = match &canonical {
            Ok(r) if r.is_dir() => r.clone(),
            Ok(r) => {
                run.incomplete(format!("root {} is not a directory", r.display()));
                return Ok(run.listing);
            }
            Err(e) => {
                run.incomplete(format!("root {}: {e}", self.root.display()));
                return Ok(run.listing);
            }
        };
        if let Some((watch, _)) = &self.watch {
            // Set up (or keep) the watch before walking, and forget the
            // changes this listing covers: a change made during the walk
            // is recorded again and checked by a scoped sync. Known targets
            // outside the root are watched now too (not only after the walk,
            // below), so a change to one while the walk reads it is not lost.
            watch.ensure(&root, &outside_dirs(&root, known));
            watch.take();
        }
        let origin = LocationKey::file(&root);
        run.walk_root(&root, &self.patterns, &origin, self.links_outside_root);
        run.follow_targets();
        let listing = run.listing;
        if let Some((watch, _)) = &self.watch {
            watch.ensure(&root, &outside);
        }
        Ok(listing)
    }

    fn list_pending(&self, known: &Known) -> Result<Listing, SourceError> {
        let Some((watch, _)) = &self.watch else {
            return Ok(Listing {
                complete: true,
                scope: Some(Vec::new()),
                ..Listing::default()
            });
        };
        let changes = watch.take();
        let full = |why: &str| {
            tracing::debug!(why, "file watch: a full listing");
            self.list(known)
        };
        if changes.rescan {
            return full("a directory changed or events were lost");
        }
        let Ok(root) = fs::canonicalize(&self.root) else {
            return full("the root is gone");
        };
        let origin = LocationKey::file(&root);
        let globs = glob_targets(known);
        let mut run = self.run(known);
        let mut scope = Vec::new();
        for path in &changes.paths {
            let key = LocationKey::file(path);
            let prior = known.get(&key);
            // A path that is (or lies under) a symbolic link is keyed by
            // where it leads, and may lead out of the root: only a full
            // listing decides what to read there.
            if fs::canonicalize(path).is_ok_and(|c| c != *path) {
                return full("a symbolic link changed");
            }
            match fs::metadata(path) {
                Ok(m) if m.is_file() => {
                    let matches = path
                        .strip_prefix(&root)
                        .is_ok_and(|rel| self.patterns.is_match(rel));
                    if prior.is_none() && !matches {
                        if globs.iter().any(|g| g.is_match(path)) {
                            return full("a file a Location glob may name appeared");
                        }
                        continue;
                    }
                    let from = prior.map_or_else(|| origin.clone(), |p| p.origin.clone());
                    scope.push(ScopeEntry::Exact(key.as_str().to_owned()));
                    run.visit_file(path, &from);
                }
                Ok(_) => return full("a path turned into a directory"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match prior {
                    Some(p) if !p.targets.is_empty() => {
                        return full("a Location with targets was removed");
                    }
                    Some(_) => scope.push(ScopeEntry::Exact(key.as_str().to_owned())),
                    None => {
                        let below = format!("{}/", key.as_str());
                        if known
                            .range(key.clone()..)
                            .next()
                            .is_some_and(|(k, _)| k.as_str().starts_with(&below))
                        {
                            return full("a directory of locations moved away");
                        }
                    }
                },
                Err(e) => {
                    if let Some(p) = prior {
                        scope.push(ScopeEntry::Exact(key.as_str().to_owned()));
                        let from = p.origin.clone();
                        run.unreadable(path, &from, e.to_string());
                    }
                }
            }
        }
        // A Location whose targets changed adds or drops locations that
        // only a full listing follows.
        let targets_changed = run.listing.locations.iter().any(|l| {
            l.fetched != Fetched::Unchanged
                && known
                    .get(&l.location)
                    .map_or(!l.targets.is_empty(), |p| p.targets != l.targets)
        });
        if targets_changed {
            return full("a Location's targets changed");
        }
        run.listing.scope = Some(scope);
        Ok(run.listing)
    }

    fn has_pending(&self) -> bool {
        self.watch.as_ref().is_some_and(|(w, _)| w.has_changes())
    }

    fn bind_waker(&self, waker: crate::watch::Waker) {
        if let Some((watch, _)) = &self.watch {
            watch.bind(waker);
        }
    }

    fn full_listing_every(&self) -> Option<Duration> {
        self.watch
            .as_ref()
            .and_then(|(w, every)| w.is_healthy().then_some(*every))
    }

    fn details(&self) -> crate::source::SourceDetails {
        crate::source::SourceDetails::Files(crate::source::FilesDetails {
            root: self.root.clone(),
            watching: self.watch.as_ref().is_some_and(|(w, _)| w.is_healthy()),
        })
    }

    fn discard(&self) {
        // A failed sync may have taken changes it did not ship: the next
        // listing must be a full one.
        if let Some((watch, _)) = &self.watch {
            watch.fail();
        }
    }
}

impl FilesSource {
    fn run<'a>(&self, known: &'a Known) -> ListRun<'a> {
        ListRun::new(known, self.max_file_bytes, self.racy_window, None)
    }
}

/// Directories of known locations outside the root (Location targets), to
/// watch too.
fn outside_dirs(root: &Path, known: &Known) -> std::collections::BTreeSet<PathBuf> {
    known
        .keys()
        .filter_map(|k| k.as_str().strip_prefix("file:"))
        .map(Path::new)
        .filter(|p| !p.starts_with(root))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect()
}

/// The glob targets of known Locations, compiled.
fn glob_targets(known: &Known) -> Vec<GlobMatcher> {
    known
        .values()
        .flat_map(|r| r.targets.iter())
        .filter(|t| targets::is_glob(t))
        .filter_map(|t| compile_glob(t).ok().map(|g| g.compile_matcher()))
        .collect()
}

/// Nanoseconds since the epoch before which a modification is old enough
/// for its fingerprint to be trusted.
fn racy_cutoff(window: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.saturating_sub(window).as_nanos()).unwrap_or(i64::MAX)
}

/// The fingerprint of a file from its metadata.
pub fn fingerprint(meta: &fs::Metadata) -> Fingerprint {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
            inode: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(0);
        Fingerprint {
            size: meta.len(),
            mtime_ns,
            ctime_ns: 0,
            inode: 0,
        }
    }
}

/// Whether a prior record may stand in for reading the file again.
fn prior_still_valid(
    prior: &LocationRecord,
    origin: &LocationKey,
    fp: &Fingerprint,
    limit: u64,
) -> bool {
    prior.fingerprint == Some(*fp)
        && prior.origin == *origin
        && match &prior.content {
            ContentState::Present { .. } => fp.size <= limit,
            ContentState::TooLarge { limit: l, .. } => *l == limit,
            ContentState::Unreadable { .. } => false,
        }
}

/// Reads a file of at most `limit` bytes.
pub fn fetch(path: &Path, size_hint: u64, limit: u64) -> Fetched {
    if size_hint > limit {
        return Fetched::TooLarge {
            size: size_hint,
            limit,
        };
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size_hint).unwrap_or(0));
    let read =
        fs::File::open(path).and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Fetched::Unreadable {
            reason: e.to_string(),
        };
    }
    let len = bytes.len() as u64;
    if len > limit {
        // It grew since the stat.
        return Fetched::TooLarge {
            size: len.max(size_hint),
            limit,
        };
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let content = match String::from_utf8(bytes) {
        Ok(text) => Content::Utf8 { text },
        Err(e) => Content::Hex {
            data: hex::encode(e.into_bytes()),
        },
    };
    Fetched::Present { content, sha256 }
}

/// The state of one listing of files in progress.
pub(crate) struct ListRun<'a> {
    known: &'a Known,
    limit: u64,
    racy_before: i64,
    seen: HashSet<LocationKey>,
    pub(crate) listing: Listing,
    /// Where each listed location goes as it is read (`None`: into
    /// `listing.locations`).
    pub(crate) sink: Option<&'a mut dyn FnMut(Listed)>,
    /// The origin and targets of listed Locations whose targets are still
    /// to be followed.
    queue: VecDeque<(LocationKey, Vec<String>)>,
    /// `Some`: only files under these (canonical) directories may be read;
    /// any other is listed as unreadable, saying why.
    allowed: Option<Vec<PathBuf>>,
}

impl<'a> ListRun<'a> {
    pub(crate) fn new(
        known: &'a Known,
        limit: u64,
        racy_window: Duration,
        allowed: Option<Vec<PathBuf>>,
    ) -> Self {
        ListRun {
            known,
            limit,
            racy_before: racy_cutoff(racy_window),
            seen: HashSet::new(),
            listing: Listing {
                complete: true,
                ..Listing::default()
            },
            sink: None,
            queue: VecDeque::new(),
            allowed,
        }
    }
}

impl ListRun<'_> {
    fn incomplete(&mut self, problem: String) {
        self.listing.complete = false;
        self.listing.problems.push(problem);
    }

    fn walk_root(
        &mut self,
        root: &Path,
        patterns: &GlobSet,
        origin: &LocationKey,
        links_outside_root: bool,
    ) {
        // Directories reached through a symbolic link: paths below them are
        // not canonical and must be resolved.
        let mut linked_dirs: Vec<PathBuf> = Vec::new();
        let walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir() && e.depth() > 0 && e.file_name() == ".git")
            });
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.loop_ancestor().is_some() => {
                    // The files are reached through the ancestor already.
                    tracing::debug!(error = %e, "skipping a symbolic link loop");
                    continue;
                }
                Err(e) => {
                    let vanished = e.depth() > 0
                        && e.io_error()
                            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
                    match e.path() {
                        Some(p) if vanished => {
                            // A dangling symbolic link is a location that
                            // cannot be read; a file deleted during the walk
                            // is simply not there.
                            let dangling =
                                fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
                            let matches = p.strip_prefix(root).is_ok_and(|r| patterns.is_match(r));
                            if dangling && matches {
                                self.unreadable(p, origin, format!("dangling symbolic link: {e}"));
                            }
                        }
                        _ => self.incomplete(format!("walking {}: {e}", root.display())),
                    }
                    continue;
                }
            };
            let path = entry.path();
            if entry.file_type().is_dir() {
                if entry.path_is_symlink() {
                    linked_dirs.push(path.to_path_buf());
                }
                continue;
            }
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            if !patterns.is_match(rel) {
                continue;
            }
            let linked = entry.path_is_symlink() || linked_dirs.iter().any(|d| path.starts_with(d));
            let canonical = if linked {
                match fs::canonicalize(path) {
                    Ok(p) if p.starts_with(root) || links_outside_root => p,
                    Ok(p) => {
                        // Never read what a link placed in the tree points
                        // to elsewhere (a system file, another tree).
                        self.unreadable(
                            path,
                            origin,
                            format!(
                                "symbolic link leads outside the source's root {} (to {}); not read \
                                 (set follow_links_outside_root: true on the source to read it)",
                                root.display(),
                                p.display()
                            ),
                        );
                        continue;
                    }
                    Err(e) => {
                        self.unreadable(path, origin, e.to_string());
                        continue;
                    }
                }
            } else {
                path.to_path_buf()
            };
            self.visit_file(&canonical, origin);
        }
    }

    pub(crate) fn unreadable(&mut self, path: &Path, origin: &LocationKey, reason: String) {
        let location = LocationKey::file(path);
        if self.seen.insert(location.clone()) {
            self.push(Listed {
                location,
                origin: origin.clone(),
                fetched: Fetched::Unreadable { reason },
                fingerprint: None,
                targets: Vec::new(),
            });
        }
    }

    /// Lists one file (canonical path), once.
    pub(crate) fn visit_file(&mut self, path: &Path, origin: &LocationKey) {
        let location = LocationKey::file(path);
        if self.seen.contains(&location) {
            return;
        }
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|root| path.starts_with(root))
        {
            return self.unreadable(
                path,
                origin,
                "not under a directory of locations.allow_file_roots".into(),
            );
        }
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            // Gone between the walk and the stat: not listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => return self.unreadable(path, origin, e.to_string()),
        };
        if !meta.is_file() {
            return;
        }
        self.seen.insert(location.clone());
        let fp = fingerprint(&meta);
        let cutoff = self.racy_before;
        let trusted = |fp: &Fingerprint| fp.mtime_ns < cutoff && fp.ctime_ns < cutoff;

        if let Some(prior) = self.known.get(&location)
            && prior_still_valid(prior, origin, &fp, self.limit)
        {
            let targets = prior.targets.clone();
            self.push(Listed {
                location,
                origin: origin.clone(),
                fetched: Fetched::Unchanged,
                fingerprint: trusted(&fp).then_some(fp),
                targets,
            });
            return;
        }

        let fetched = fetch(path, fp.size, self.limit);
        // Trust the fingerprint only if the file did not change under us.
        let after = fs::metadata(path).ok().map(|m| fingerprint(&m));
        let fingerprint = (after == Some(fp) && trusted(&fp)).then_some(fp);
        let targets = match &fetched {
            Fetched::Present {
                content: Content::Utf8 { text },
                ..
            } => {
                let base = path.parent().unwrap_or(Path::new("/"));
                targets::location_targets(text)
                    .iter()
                    .filter_map(|t| targets::resolve_target(base, t))
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect()
            }
            _ => Vec::new(),
        };
        self.push(Listed {
            location,
            origin: origin.clone(),
            fetched,
            fingerprint,
            targets,
        });
    }

    pub(crate) fn push(&mut self, listed: Listed) {
        if !listed.targets.is_empty() {
            self.queue
                .push_back((listed.origin.clone(), listed.targets.clone()));
        }
        match &mut self.sink {
            Some(sink) => sink(listed),
            None => self.listing.locations.push(listed),
        }
    }

    /// Follows Location targets breadth-first; `seen` makes cycles finite.
    pub(crate) fn follow_targets(&mut self) {
        while let Some((origin, targets)) = self.queue.pop_front() {
            for t in targets {
                if targets::is_glob(&t) {
                    self.follow_glob(Path::new(&t), &origin);
                } else {
                    match fs::canonicalize(&t) {
                        Ok(p) if p.is_file() => self.visit_file(&p, &origin),
                        Ok(p) => {
                            tracing::debug!(target = %p.display(), "Location target is not a file")
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            tracing::debug!(target = %t, "Location target does not exist");
                        }
                        Err(e) => self.unreadable(Path::new(&t), &origin, e.to_string()),
                    }
                }
            }
        }
    }

    fn follow_glob(&mut self, pattern: &Path, origin: &LocationKey) {
        let matcher: GlobMatcher = match compile_glob(&pattern.to_string_lossy()) {
            Ok(g) => g.compile_matcher(),
            Err(e) => {
                tracing::debug!(pattern = %pattern.display(), error = %e, "invalid Location target glob");
                return;
            }
        };
        let (base, depth) = targets::glob_base(pattern);
        if !base.is_dir() {
            return;
        }
        let mut walker = walkdir::WalkDir::new(&base)
            .follow_links(true)
            .sort_by_file_name();
        if let Some(d) = depth {
            walker = walker.max_depth(d);
        }
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.loop_ancestor().is_some() => continue,
                Err(e) => {
                    self.incomplete(format!("walking {}: {e}", base.display()));
                    continue;
                }
            };
            if !entry.file_type().is_file() || !matcher.is_match(entry.path()) {
                continue;
            }
            match fs::canonicalize(entry.path()) {
                Ok(p) => self.visit_file(&p, origin),
                Err(e) => self.unreadable(entry.path(), origin, e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn source(root: &Path) -> FilesSource {
        FilesSource::new(
            SourceId::new("t"),
            root.to_path_buf(),
            &["**/*.yaml".to_string(), "**/*.yml".to_string()],
            1024,
        )
        .unwrap()
    }

    fn keys(l: &Listing) -> Vec<String> {
        let mut k: Vec<String> = l.locations.iter().map(|l| l.location.to_string()).collect();
        k.sort();
        k
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

    #[test]
    fn walks_patterns_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        write(&root.join("a.yaml"), "kind: Component\n");
        write(&root.join("sub/b.yml"), "kind: Component\n");
        write(&root.join("sub/c.json"), "{}");
        write(&root.join(".git/d.yaml"), "kind: Component\n");
        let l = source(&root).list(&Known::new()).unwrap();
        assert!(l.complete, "{:?}", l.problems);
        assert_eq!(
            keys(&l),
            vec![
                format!("file:{}/a.yaml", root.display()),
                format!("file:{}/sub/b.yml", root.display()),
            ]
        );
        let origin = LocationKey::file(&root);
        assert!(l.locations.iter().all(|x| x.origin == origin));
    }

    #[test]
    fn follows_targets_relative_globs_cycles_and_outside_root() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        // root/index.yaml -> ../outside/a.yaml, ./svc/*.txt (glob, not a walked pattern)
        write(
            &root.join("index.yaml"),
            &location(&["../outside/a.yaml", "./svc/*.txt", "./missing.yaml"]),
        );
        write(&root.join("svc/one.txt"), "kind: Component\n");
        write(&root.join("svc/two.txt"), "kind: Component\n");
        write(&root.join("svc/deep/three.txt"), "kind: Component\n");
        // outside/a.yaml -> ./b.yaml ; outside/b.yaml -> ./a.yaml (cycle) and ../root/index.yaml
        write(&outside.join("a.yaml"), &location(&["./b.yaml"]));
        write(
            &outside.join("b.yaml"),
            &location(&["./a.yaml", "../root/index.yaml"]),
        );
        let l = source(&root).list(&Known::new()).unwrap();
        assert!(l.complete, "{:?}", l.problems);
        assert_eq!(
            keys(&l),
            vec![
                format!("file:{}/outside/a.yaml", base.display()),
                format!("file:{}/outside/b.yaml", base.display()),
                format!("file:{}/root/index.yaml", base.display()),
                format!("file:{}/root/svc/one.txt", base.display()),
                format!("file:{}/root/svc/two.txt", base.display()),
            ]
        );
        let origin = LocationKey::file(&root);
        assert!(l.locations.iter().all(|x| x.origin == origin));
        let index = l
            .locations
            .iter()
            .find(|x| x.location.as_str().ends_with("index.yaml"))
            .unwrap();
        assert_eq!(
            index.targets,
            vec![
                format!("{}/outside/a.yaml", base.display()),
                format!("{}/root/svc/*.txt", base.display()),
                format!("{}/root/missing.yaml", base.display()),
            ]
        );
        // Handed out one by one: the same locations in the same order,
        // none of them kept in the listing returned.
        let mut each = Vec::new();
        let rest = source(&root)
            .list_each(&Known::new(), &mut |x| each.push(x))
            .unwrap();
        assert!(rest.complete && rest.locations.is_empty());
        assert_eq!(each, l.locations);
    }

    #[test]
    fn unchanged_files_are_not_read_and_keep_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        write(&root.join("index.yaml"), &location(&["../outside/x.yaml"]));
        write(&base.join("outside/x.yaml"), "kind: Component\n");
        let src = source(&root);
        let first = src.list(&Known::new()).unwrap();
        let mut known = Known::new();
        for l in &first.locations {
            let Fetched::Present { sha256, .. } = &l.fetched else {
                panic!("{l:?}")
            };
            let fp = fingerprint(
                &fs::metadata(l.location.as_str().strip_prefix("file:").unwrap()).unwrap(),
            );
            known.insert(
                l.location.clone(),
                LocationRecord {
                    origin: l.origin.clone(),
                    first_seen_at: chrono::Utc::now(),
                    fingerprint: Some(fp),
                    content: ContentState::Present {
                        sha256: sha256.clone(),
                    },
                    targets: l.targets.clone(),
                },
            );
        }
        let again = src.list(&known).unwrap();
        assert_eq!(again.locations.len(), 2);
        assert!(
            again
                .locations
                .iter()
                .all(|l| l.fetched == Fetched::Unchanged)
        );

        // The targets of an unchanged file come from the prior record: had
        // the file been read again, x.yaml would still be listed.
        let k = LocationKey::file(&root.join("index.yaml"));
        known.get_mut(&k).unwrap().targets.clear();
        let cached = src.list(&known).unwrap();
        assert_eq!(keys(&cached), vec![k.to_string()]);
        assert_eq!(cached.locations[0].fetched, Fetched::Unchanged);

        // A changed fingerprint means reading again (and finding the targets).
        known
            .get_mut(&k)
            .unwrap()
            .fingerprint
            .as_mut()
            .unwrap()
            .size += 1;
        let third = src.list(&known).unwrap();
        let idx = third.locations.iter().find(|l| l.location == k).unwrap();
        assert!(matches!(idx.fetched, Fetched::Present { .. }));
        assert_eq!(third.locations.len(), 2, "targets followed again");

        // So does a different origin.
        known
            .get_mut(&k)
            .unwrap()
            .fingerprint
            .as_mut()
            .unwrap()
            .size -= 1;
        known.get_mut(&k).unwrap().origin = LocationKey::new("file:/elsewhere");
        let fourth = src.list(&known).unwrap();
        let idx = fourth.locations.iter().find(|l| l.location == k).unwrap();
        assert!(matches!(idx.fetched, Fetched::Present { .. }));
    }

    #[test]
    fn fresh_files_have_untrusted_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        write(&root.join("a.yaml"), "kind: Component\n");
        let l = source(&root).list(&Known::new()).unwrap();
        assert_eq!(l.locations[0].fingerprint, None, "modified just now");
    }

    #[test]
    fn old_files_have_trusted_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let p = root.join("a.yaml");
        write(&p, "kind: Component\n");
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let l = source(&root).list(&Known::new()).unwrap();
        // ctime is always "now" after set_modified on Unix, so only
        // platforms without ctime would trust it at once.
        #[cfg(unix)]
        assert_eq!(l.locations[0].fingerprint, None);
        #[cfg(not(unix))]
        assert!(l.locations[0].fingerprint.is_some());
    }

    #[test]
    fn too_large_non_utf8_and_missing_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        write(&root.join("big.yaml"), &"x".repeat(1025));
        fs::write(root.join("bin.yaml"), [0x66u8, 0xff, 0xfe]).unwrap();
        let l = source(&root).list(&Known::new()).unwrap();
        let by = |name: &str| {
            l.locations
                .iter()
                .find(|x| x.location.as_str().ends_with(name))
                .unwrap()
                .fetched
                .clone()
        };
        assert_eq!(
            by("big.yaml"),
            Fetched::TooLarge {
                size: 1025,
                limit: 1024
            }
        );
        let Fetched::Present { content, sha256 } = by("bin.yaml") else {
            panic!()
        };
        assert_eq!(
            content,
            Content::Hex {
                data: "66fffe".into()
            }
        );
        assert_eq!(sha256, hex::encode(Sha256::digest([0x66u8, 0xff, 0xfe])));

        let gone = source(&root.join("nope")).list(&Known::new()).unwrap();
        assert!(!gone.complete);
        assert!(gone.locations.is_empty());
        assert!(gone.problems[0].contains("nope"), "{:?}", gone.problems);
    }

    #[test]
    fn fetch_stops_reading_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, "0123456789").unwrap();
        // A stale size hint below the limit: the read itself notices.
        assert_eq!(fetch(&p, 3, 5), Fetched::TooLarge { size: 6, limit: 5 });
        assert!(matches!(fetch(&p, 10, 10), Fetched::Present { .. }));
        assert!(matches!(
            fetch(&dir.path().join("missing"), 0, 10),
            Fetched::Unreadable { .. }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_files_are_keyed_by_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        write(&base.join("real/x.yaml"), "kind: Component\n");
        fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(base.join("real"), root.join("linked")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();
        write(&root.join("inside/y.yaml"), "kind: Component\n");
        std::os::unix::fs::symlink(root.join("inside"), root.join("alias")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.yaml")).unwrap();
        // Followed on request: keyed by the target.
        let l = source(&root)
            .following_links_outside_root(true)
            .list(&Known::new())
            .unwrap();
        assert!(l.complete, "{:?}", l.problems);
        assert_eq!(
            keys(&l),
            vec![
                "file:/etc/passwd".to_string(),
                format!("file:{}/real/x.yaml", base.display()),
                format!("file:{}/inside/y.yaml", root.display()),
            ]
        );
        // By default a link out of the root is an error on the link's
        // location and nothing outside is read; a link within the root is
        // keyed by its target.
        let l = source(&root).list(&Known::new()).unwrap();
        assert!(l.complete, "{:?}", l.problems);
        let mut got: Vec<(String, String)> = l
            .locations
            .iter()
            .map(|x| {
                let what = match &x.fetched {
                    Fetched::Unreadable { reason } => reason.clone(),
                    Fetched::Present { .. } => "read".into(),
                    other => format!("{other:?}"),
                };
                (x.location.as_str().to_string(), what)
            })
            .collect();
        got.sort();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, format!("file:{}/inside/y.yaml", root.display()));
        assert_eq!(got[0].1, "read");
        assert_eq!(got[1].0, format!("file:{}/linked/x.yaml", root.display()));
        assert!(got[1].1.contains("outside the source's root"), "{got:?}");
        assert_eq!(got[2].0, format!("file:{}/passwd.yaml", root.display()));
        assert!(got[2].1.contains("(to /etc/passwd)"), "{got:?}");
    }
}

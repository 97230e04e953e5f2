//! Locations registered through the API (`POST /api/catalog/locations`).
//!
//! The registrations are events of `catalog.locations.v1`; ingest folds
//! them, from the start of the topic at every start, into a [`Registry`],
//! and the [`RegisteredSource`] lists what is registered like any other
//! source lists its tree: `file` targets (only under
//! `locations.allow_file_roots`, following their `Location` entities'
//! targets within the same roots) and `url` targets of GitHub, read
//! through the configured GitHub source of that host. Each registered
//! location is the origin of what it reaches; unregistering it removes
//! what only it reached, whatever the removal guard says, because a user
//! asked for exactly that.
//!
//! Until the registry has read the topic to its end, listings are
//! incomplete, so that a restart never removes what it has not yet read
//! the registration of.

use crate::files::ListRun;
use crate::github::GithubSource;
use crate::source::{Fetched, Known, Listed, Listing, Source, SourceError};
use proto::{LocationChange, LocationCommand, LocationKey, SourceId, Versioned, topics};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The id of the source of registered locations (no configured source may
/// take it).
pub const SOURCE_ID: &str = "registered";

/// How often registered locations are read again without being asked (a
/// registration, an unregistration or a refresh reads them at once).
pub const SCHEDULE: &str = "0 */5 * * * *";

/// Who registered a location, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub at: chrono::DateTime<chrono::Utc>,
    pub by: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    registered: BTreeMap<LocationKey, Registration>,
    /// Unregistered since start (and not registered again).
    released: BTreeSet<LocationKey>,
    /// Refreshes asked for and not yet synced.
    refresh: BTreeSet<LocationKey>,
    /// Whether the registered set changed since the source last listed.
    dirty: bool,
}

/// The registered locations, as folded from `catalog.locations.v1`.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    caught_up: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// Folds one command.
    pub fn apply(&self, cmd: &LocationCommand) {
        let mut inner = lock(&self.inner);
        match cmd.change {
            LocationChange::Registered => {
                inner.released.remove(&cmd.location);
                let reg = Registration {
                    at: cmd.at,
                    by: cmd.by.clone(),
                };
                if inner.registered.insert(cmd.location.clone(), reg).is_none() {
                    inner.dirty = true;
                }
            }
            LocationChange::Unregistered => {
                if inner.registered.remove(&cmd.location).is_some() {
                    inner.released.insert(cmd.location.clone());
                    inner.dirty = true;
                }
            }
            LocationChange::Refresh => {
                inner.refresh.insert(cmd.location.clone());
            }
        }
    }

    /// The registered locations.
    pub fn registered(&self) -> BTreeMap<LocationKey, Registration> {
        lock(&self.inner).registered.clone()
    }

    /// Whether the topic was read to the end it had when reading began.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst)
    }

    /// The refreshes asked for since the last call.
    pub fn take_refresh(&self) -> BTreeSet<LocationKey> {
        std::mem::take(&mut lock(&self.inner).refresh)
    }

    fn take_dirty(&self) -> bool {
        std::mem::take(&mut lock(&self.inner).dirty)
    }

    fn has_work(&self) -> bool {
        let inner = lock(&self.inner);
        inner.dirty || !inner.refresh.is_empty()
    }

    /// Reads `catalog.locations.v1` from its start on the calling thread
    /// until `stop`, folding every command; `wake` is called after each
    /// poll that applied something (and once caught up). A message that is
    /// not a command is logged and skipped.
    pub fn follow(
        &self,
        log: &dyn eventlog::EventLog,
        stop: &AtomicBool,
        wake: &dyn Fn(),
    ) -> Result<(), eventlog::LogError> {
        let partitions = log.partitions(topics::LOCATIONS)?;
        let ends = log.end_offsets(topics::LOCATIONS)?;
        let starts: Vec<(u32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
        let mut reader = log.assign(topics::LOCATIONS, &starts)?;
        let mut next: Vec<i64> = vec![0; partitions as usize];
        let caught_up = |next: &[i64]| next.iter().zip(&ends).all(|(n, e)| n >= e);
        if caught_up(&next) {
            self.caught_up.store(true, Ordering::SeqCst);
            wake();
        }
        while !stop.load(Ordering::SeqCst) {
            let records = reader.poll(Duration::from_millis(200))?;
            if records.is_empty() {
                continue;
            }
            for r in &records {
                match LocationCommand::decode(&r.value) {
                    Ok(cmd) => self.apply(&cmd),
                    Err(e) => tracing::warn!(
                        partition = r.partition,
                        offset = r.offset,
                        error = %e,
                        "skipping a message of catalog.locations.v1 that is not a location command"
                    ),
                }
                if let Some(n) = next.get_mut(r.partition as usize) {
                    *n = r.next;
                }
            }
            if !self.caught_up() && caught_up(&next) {
                self.caught_up.store(true, Ordering::SeqCst);
            }
            wake();
        }
        Ok(())
    }
}

/// Where registered `file` locations may be.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocationsConfig {
    /// Directories under which `file` locations may be registered (and
    /// their `Location` targets read). Empty: only `url` locations, as
    /// Backstage allows by default.
    pub allow_file_roots: Vec<PathBuf>,
    /// Whether this ingest observes the registered locations (default
    /// true). With several ingest deployments, exactly one should.
    pub observe: bool,
}

impl Default for LocationsConfig {
    fn default() -> Self {
        LocationsConfig {
            allow_file_roots: Vec::new(),
            observe: true,
        }
    }
}

/// Why a location may not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The type is not one this catalog registers (`url`, and `file` with
    /// allowed roots), in Backstage's words.
    #[error("Registered locations must be of an allowed type {0}")]
    TypeNotAllowed(String),
    #[error("{0}")]
    Invalid(String),
}

impl LocationsConfig {
    /// The location types that may be registered.
    pub fn allowed_types(&self) -> Vec<&'static str> {
        if self.allow_file_roots.is_empty() {
            vec!["url"]
        } else {
            vec!["url", "file"]
        }
    }

    /// The canonical allowed roots that exist now.
    fn roots(&self) -> Vec<PathBuf> {
        self.allow_file_roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .collect()
    }

    /// The location key of a registration of `target` as `kind`, or why it
    /// may not be registered: a `url` must be an absolute http(s) URL; a
    /// `file` an absolute path under an allowed root (resolved, so `..` and
    /// symbolic links cannot leave it).
    pub fn key_of(&self, kind: &str, target: &str) -> Result<LocationKey, TargetError> {
        let allowed = self.allowed_types();
        if !allowed.contains(&kind) {
            let list = serde_json::to_string(&allowed).expect("strings serialise");
            return Err(TargetError::TypeNotAllowed(list));
        }
        match kind {
            "url" => {
                let url = url::Url::parse(target).map_err(|e| {
                    TargetError::Invalid(format!("Invalid url target {target:?}: {e}"))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(TargetError::Invalid(format!(
                        "Invalid url target {target:?}: only http and https URLs with a host"
                    )));
                }
                Ok(LocationKey::new(format!("url:{target}")))
            }
            _ => {
                let path = Path::new(target);
                if !path.is_absolute() {
                    return Err(TargetError::Invalid(format!(
                        "Invalid file target {target:?}: the path must be absolute"
                    )));
                }
                let resolved = resolve(path);
                let roots = self.roots();
                if !roots.iter().any(|r| resolved.starts_with(r)) {
                    return Err(TargetError::Invalid(format!(
                        "File location {target:?} is not under a directory of locations.allow_file_roots"
                    )));
                }
                Ok(LocationKey::file(&resolved))
            }
        }
    }
}

/// `path` with symbolic links resolved as far as it exists, and `.`/`..`
/// applied lexically beyond that.
fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let mut out = match path.parent() {
        Some(parent) if parent != path => resolve(parent),
        _ => PathBuf::from("/"),
    };
    match path.file_name() {
        Some(name) => out.push(name),
        None if path.ends_with("..") => {
            out.pop();
        }
        None => {}
    }
    out
}

/// Reads one registered location (and, for a file, what its `Location`
/// entities name within the allowed roots): what a listing of it holds.
pub struct LocationReader {
    config: LocationsConfig,
    github: Vec<Arc<GithubSource>>,
    max_file_bytes: u64,
}

impl std::fmt::Debug for LocationReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocationReader")
            .field("config", &self.config)
            .field("github", &self.github.len())
            .finish()
    }
}

impl LocationReader {
    pub fn new(
        config: LocationsConfig,
        github: Vec<Arc<GithubSource>>,
        max_file_bytes: u64,
    ) -> Self {
        LocationReader {
            config,
            github,
            max_file_bytes,
        }
    }

    pub fn config(&self) -> &LocationsConfig {
        &self.config
    }

    /// Lists `locations` (each its own origin) into one listing.
    pub fn list(&self, locations: &[LocationKey], known: &Known) -> Listing {
        let mut run = ListRun::new(
            known,
            self.max_file_bytes,
            crate::files::RACY_WINDOW,
            Some(self.config.roots()),
        );
        for key in locations {
            let (kind, target) = key.type_and_target();
            match kind {
                "file" => {
                    let path = Path::new(target);
                    match std::fs::metadata(path) {
                        Ok(m) if m.is_file() => run.visit_file(path, key),
                        Ok(_) => run.unreadable(path, key, "not a file".into()),
                        Err(e) => run.unreadable(path, key, e.to_string()),
                    }
                }
                "url" => {
                    let fetched = self.read_url(target);
                    run.listing.locations.push(Listed {
                        location: key.clone(),
                        origin: key.clone(),
                        fetched,
                        fingerprint: None,
                        targets: Vec::new(),
                    });
                }
                other => run.listing.locations.push(Listed {
                    location: key.clone(),
                    origin: key.clone(),
                    fetched: Fetched::Unreadable {
                        reason: format!("no source reads locations of type {other:?}"),
                    },
                    fingerprint: None,
                    targets: Vec::new(),
                }),
            }
        }
        run.follow_targets();
        run.listing
    }

    fn read_url(&self, target: &str) -> Fetched {
        let url = match url::Url::parse(target) {
            Ok(u) => u,
            Err(e) => {
                return Fetched::Unreadable {
                    reason: format!("{target}: {e}"),
                };
            }
        };
        for gh in &self.github {
            if let Some(f) = gh.read_url(&url) {
                return f;
            }
        }
        Fetched::Unreadable {
            reason: format!(
                "no configured source reads {target}: register a GitHub file URL \
                 (https://HOST/OWNER/REPO/blob/REF/PATH) of a host a github source is configured for"
            ),
        }
    }
}

/// The source of registered locations.
pub struct RegisteredSource {
    id: SourceId,
    registry: Arc<Registry>,
    reader: Arc<LocationReader>,
}

impl std::fmt::Debug for RegisteredSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredSource")
            .field("id", &self.id)
            .finish()
    }
}

impl RegisteredSource {
    pub fn new(registry: Arc<Registry>, reader: Arc<LocationReader>) -> Self {
        RegisteredSource {
            id: SourceId::new(SOURCE_ID),
            registry,
            reader,
        }
    }
}

impl Source for RegisteredSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn list(&self, known: &Known) -> Result<Listing, SourceError> {
        self.registry.take_dirty();
        let registered: Vec<LocationKey> = self.registry.registered().into_keys().collect();
        let mut listing = self.reader.list(&registered, known);
        if !self.registry.caught_up() {
            listing.complete = false;
            listing
                .problems
                .push("the registrations are still being read".into());
        }
        listing.released = lock(&self.registry.inner)
            .released
            .iter()
            .cloned()
            .collect();
        Ok(listing)
    }

    /// A registration or unregistration lists everything registered again
    /// (cheap: unchanged files are not read).
    fn list_pending(&self, known: &Known) -> Result<Listing, SourceError> {
        self.list(known)
    }

    fn has_pending(&self) -> bool {
        self.registry.caught_up() && self.registry.has_work()
    }

    fn details(&self) -> crate::source::SourceDetails {
        crate::source::SourceDetails::Registered(crate::source::RegisteredDetails {
            registered: lock(&self.registry.inner).registered.len(),
            caught_up: self.registry.caught_up(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(location: &str, change: LocationChange) -> LocationCommand {
        LocationCommand {
            event_id: uuid::Uuid::now_v7(),
            at: chrono::Utc::now(),
            by: Some("t".into()),
            location: LocationKey::new(location),
            change,
        }
    }

    #[test]
    fn the_registry_folds_commands_in_order() {
        let r = Registry::default();
        r.apply(&cmd("file:/a", LocationChange::Registered));
        r.apply(&cmd("file:/b", LocationChange::Registered));
        r.apply(&cmd("file:/a", LocationChange::Unregistered));
        r.apply(&cmd("file:/c", LocationChange::Refresh));
        let keys: Vec<String> = r
            .registered()
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(keys, vec!["file:/b"]);
        assert!(
            lock(&r.inner)
                .released
                .contains(&LocationKey::new("file:/a"))
        );
        assert_eq!(r.take_refresh().len(), 1);
        assert!(r.take_refresh().is_empty());
        // Registered again: no longer released.
        r.apply(&cmd("file:/a", LocationChange::Registered));
        assert!(lock(&r.inner).released.is_empty());
    }

    #[test]
    fn targets_are_checked_against_types_and_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("allowed");
        std::fs::create_dir_all(&root).unwrap();
        let none = LocationsConfig::default();
        let err = none.key_of("file", "/etc/passwd").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"Registered locations must be of an allowed type ["url"]"#
        );
        assert_eq!(
            none.key_of("url", "https://github.com/a/b/blob/main/c.yaml")
                .unwrap()
                .as_str(),
            "url:https://github.com/a/b/blob/main/c.yaml"
        );
        assert!(matches!(
            none.key_of("url", "not a url"),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            none.key_of("url", "ftp://x/y"),
            Err(TargetError::Invalid(_))
        ));
        let cfg = LocationsConfig {
            allow_file_roots: vec![root.clone()],
            ..LocationsConfig::default()
        };
        let inside = root.join("team/catalog-info.yaml");
        let canonical_root = std::fs::canonicalize(&root).unwrap();
        assert_eq!(
            cfg.key_of("file", inside.to_str().unwrap()).unwrap(),
            LocationKey::file(&canonical_root.join("team/catalog-info.yaml"))
        );
        // `..` cannot leave the root, nor can a relative path name it.
        let escape = format!("{}/../outside.yaml", root.display());
        assert!(matches!(
            cfg.key_of("file", &escape),
            Err(TargetError::Invalid(m)) if m.contains("allow_file_roots")
        ));
        assert!(matches!(
            cfg.key_of("file", "relative.yaml"),
            Err(TargetError::Invalid(m)) if m.contains("absolute")
        ));
        assert!(matches!(
            cfg.key_of("gitlab", "x"),
            Err(TargetError::TypeNotAllowed(_))
        ));
    }

    #[test]
    fn a_registered_file_is_read_with_its_targets_inside_the_roots_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("allowed");
        let outside = std::fs::canonicalize(dir.path()).unwrap().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.yaml"), "kind: Component\n").unwrap();
        std::fs::write(root.join("svc.yaml"), "kind: Component\n").unwrap();
        std::fs::write(
            root.join("all.yaml"),
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {{name: all}}\n\
                 spec:\n  targets: [./svc.yaml, {}]\n",
                outside.join("secret.yaml").display()
            ),
        )
        .unwrap();
        let reader = LocationReader::new(
            LocationsConfig {
                allow_file_roots: vec![root.clone()],
                ..LocationsConfig::default()
            },
            Vec::new(),
            1 << 20,
        );
        let all = LocationKey::file(&root.join("all.yaml"));
        let missing = LocationKey::file(&root.join("missing.yaml"));
        let listing = reader.list(&[all.clone(), missing.clone()], &Known::new());
        let by_key: BTreeMap<&str, &Listed> = listing
            .locations
            .iter()
            .map(|l| (l.location.as_str(), l))
            .collect();
        assert_eq!(by_key.len(), 4, "{by_key:?}");
        let svc = by_key[LocationKey::file(&root.join("svc.yaml")).as_str()];
        assert_eq!(svc.origin, all);
        assert!(matches!(svc.fetched, Fetched::Present { .. }));
        let secret = by_key[LocationKey::file(&outside.join("secret.yaml")).as_str()];
        assert!(
            matches!(&secret.fetched, Fetched::Unreadable { reason } if reason.contains("allow_file_roots"))
        );
        assert!(matches!(
            by_key[missing.as_str()].fetched,
            Fetched::Unreadable { .. }
        ));
        // A url no source reads is unreadable, saying so.
        let url = LocationKey::new("url:https://gitlab.example.com/a/b/-/raw/main/c.yaml");
        let listing = reader.list(std::slice::from_ref(&url), &Known::new());
        assert!(matches!(
            &listing.locations[0].fetched,
            Fetched::Unreadable { reason } if reason.contains("no configured source")
        ));
    }
}

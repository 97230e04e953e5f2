//! Finding the targets of `Location` entities, as Backstage's location
//! processor does for `file` locations: `spec.target` and `spec.targets`,
//! relative paths resolved against the directory of the file that holds the
//! entity, globs allowed.
//!
//! Parsing here is lenient on purpose: a file that is not valid YAML simply
//! has no targets. Reporting what is wrong with it is the processor's job.

use serde_json::Value;
use std::path::{Component, Path, PathBuf};

/// The raw `spec.target` / `spec.targets` strings of every `Location`
/// entity in `text` whose `spec.type` is absent or `file`.
pub fn location_targets(text: &str) -> Vec<String> {
    // Cheap pre-filter: most descriptor files hold no Location at all, and
    // a YAML parse per file is the expensive part of a first sync.
    if !text
        .as_bytes()
        .windows(8)
        .any(|w| w.eq_ignore_ascii_case(b"location"))
    {
        return Vec::new();
    }
    // Budgets in proportion to the text: a Location listing every
    // repository of a large org (hundreds of thousands of targets, tens of
    // megabytes) is ordinary, while alias expansion stays bounded.
    let nodes = 200_000usize.max(text.len());
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            flow_nesting_limit: 64,
            max_nodes: nodes,
            max_events: nodes.saturating_mul(3),
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_documents: text.len() / 4 + 16,
            max_merge_keys: 1_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 8,
        },
    };
    let docs = match serde_saphyr::from_multiple_with_options::<Value>(text, options) {
        Ok(docs) => docs,
        Err(e) => {
            tracing::warn!(error = %e, "a file naming a Location could not be read for its targets");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for doc in &docs {
        let is_location = doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.eq_ignore_ascii_case("location"));
        if !is_location {
            continue;
        }
        let Some(spec) = doc.get("spec") else {
            continue;
        };
        if let Some(t) = spec.get("type").and_then(Value::as_str)
            && !t.eq_ignore_ascii_case("file")
        {
            continue;
        }
        if let Some(t) = spec.get("target").and_then(Value::as_str) {
            out.push(t.to_string());
        }
        if let Some(ts) = spec.get("targets").and_then(Value::as_array) {
            out.extend(ts.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    out.retain(|t| !t.trim().is_empty());
    out
}

/// Resolves `target` against `base_dir` (the directory of the file holding
/// the Location) into an absolute, lexically normalised path or glob.
/// A `file:` prefix is accepted; other URL-like targets yield `None`.
pub fn resolve_target(base_dir: &Path, target: &str) -> Option<PathBuf> {
    let target = target.trim();
    let target = target.strip_prefix("file:").unwrap_or(target);
    if target.contains("://") {
        return None;
    }
    Some(normalize(&base_dir.join(target)))
}

/// Removes `.` and resolves `..` without touching the file system (the
/// target may not exist yet, and may be a glob).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // `/..` is `/`: pop() on the root is a no-op.
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether a path holds glob syntax.
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// Splits an absolute glob into the longest directory without glob syntax
/// and the number of components after it (`None` when a `**` allows any
/// depth). The walk for the glob starts at that directory.
pub fn glob_base(pattern: &Path) -> (PathBuf, Option<usize>) {
    let mut base = PathBuf::new();
    let mut rest = 0usize;
    let mut unbounded = false;
    let mut in_glob = false;
    for c in pattern.components() {
        let s = c.as_os_str().to_string_lossy();
        if !in_glob && !is_glob(&s) {
            base.push(c.as_os_str());
        } else {
            in_glob = true;
            rest += 1;
            if s.contains("**") {
                unbounded = true;
            }
        }
    }
    (base, if unbounded { None } else { Some(rest) })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_location_listing_hundreds_of_thousands_of_targets_is_read_whole() {
        let mut text = String::from(
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: all\nspec:\n  targets:\n",
        );
        for i in 0..300_000 {
            text.push_str(&format!("    - ../repos/r{:03}/repo-{i}.yaml\n", i / 1000));
        }
        let targets = location_targets(&text);
        assert_eq!(targets.len(), 300_000);
        assert_eq!(targets[299_999], "../repos/r299/repo-299999.yaml");
    }
    use super::*;

    #[test]
    fn finds_target_and_targets_of_locations_only() {
        let yaml = r#"
apiVersion: backstage.io/v1alpha1
kind: Location
metadata: { name: root }
spec:
  target: ./a.yaml
  targets:
    - ../b.yaml
    - ./services/*.yaml
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: { name: c }
spec:
  target: ./not-a-location.yaml
---
kind: location
spec:
  type: file
  target: /abs/c.yaml
---
kind: Location
spec:
  type: url
  target: https://github.com/a/b/blob/main/catalog-info.yaml
"#;
        assert_eq!(
            location_targets(yaml),
            vec!["./a.yaml", "../b.yaml", "./services/*.yaml", "/abs/c.yaml"]
        );
    }

    #[test]
    fn broken_yaml_has_no_targets() {
        assert!(location_targets("kind: Location\nspec: [unclosed\n").is_empty());
        assert!(location_targets("kind: Location\nspec:\n  target: 3\n").is_empty());
        assert!(location_targets("kind: Component\n").is_empty());
        assert!(location_targets("").is_empty());
    }

    #[test]
    fn resolves_relative_to_the_files_directory() {
        let base = Path::new("/cat/team");
        assert_eq!(
            resolve_target(base, "./a.yaml"),
            Some(PathBuf::from("/cat/team/a.yaml"))
        );
        assert_eq!(
            resolve_target(base, "../../elsewhere/b.yaml"),
            Some(PathBuf::from("/elsewhere/b.yaml"))
        );
        assert_eq!(
            resolve_target(base, "sub/./x/../c.yaml"),
            Some(PathBuf::from("/cat/team/sub/c.yaml"))
        );
        assert_eq!(
            resolve_target(base, "/abs/d.yaml"),
            Some(PathBuf::from("/abs/d.yaml"))
        );
        assert_eq!(
            resolve_target(base, "file:./e.yaml"),
            Some(PathBuf::from("/cat/team/e.yaml"))
        );
        assert_eq!(
            resolve_target(base, "../../../../x.yaml"),
            Some(PathBuf::from("/x.yaml"))
        );
        assert_eq!(resolve_target(base, "https://example.com/x.yaml"), None);
    }

    #[test]
    fn glob_base_and_depth() {
        assert_eq!(
            glob_base(Path::new("/cat/services/*.yaml")),
            (PathBuf::from("/cat/services"), Some(1))
        );
        assert_eq!(
            glob_base(Path::new("/cat/*/x/*.yaml")),
            (PathBuf::from("/cat"), Some(3))
        );
        assert_eq!(
            glob_base(Path::new("/cat/**/*.yaml")),
            (PathBuf::from("/cat"), None)
        );
        assert!(is_glob("./services/*.yaml"));
        assert!(is_glob("a/{b,c}.yaml"));
        assert!(!is_glob("./services/a.yaml"));
    }
}

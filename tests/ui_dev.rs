//! The web UI end to end: `catalog dev` on a copy of the demo org serves
//! the embedded UI at `/` (its pages for any client route, its hashed
//! assets cached and gzipped, the API's JSON 404 kept), and the Playwright
//! suite in `ui/tests` drives every page in Debian's Chromium against it,
//! comparing what the pages show with the API, editing files to see pages
//! update live, checking accessibility with axe-core and saving a
//! screenshot of every page in `ui/test-output/screenshots`; then the same
//! UI on a catalog whose reads need a token.

mod common;

use catalog::Config;
use common::*;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// (status, headers we look at, body bytes) of a GET with `headers`.
fn raw(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut res = req.call().unwrap();
    let status = res.status().as_u16();
    let hs = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let mut body = Vec::new();
    res.body_mut().as_reader().read_to_end(&mut body).unwrap();
    (status, hs, body)
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_web_ui_is_served_and_its_pages_pass_the_browser_suite() {
    assert!(
        query::ui_built(),
        "this build has no web UI: scripts/ui builds ui/dist, which the binary embeds"
    );
    let dev = dev_allowing_files();
    let base = dev.running.base.clone();
    let org = dev.tmp.path().join("org");
    let a = agent();
    // The suite compares pages with what the API answered a moment
    // before: the whole org is in first, every kind of it.
    wait_eq("the whole demo org", WAIT, demo_counts(&org), || {
        served_counts(&a, &base)
    });

    // Any page of the UI answers its HTML; the API keeps its JSON 404.
    let (s, hs, body) = raw(
        &a,
        &format!("{base}/catalog/default/component/cart-service"),
        &[("accept", "text/html")],
    );
    assert_eq!(s, 200);
    assert!(
        header(&hs, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        header(&hs, "content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );
    let html = String::from_utf8(body).unwrap();
    let script = html
        .split("src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("index.html names its script: {html}"));
    let (s, hs, plain) = raw(
        &a,
        &format!("{base}{script}"),
        &[("accept-encoding", "identity")],
    );
    assert_eq!(s, 200);
    assert!(header(&hs, "cache-control").unwrap().contains("immutable"));
    assert!(
        header(&hs, "content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(header(&hs, "content-encoding"), None);
    let (s, hs, packed) = raw(
        &a,
        &format!("{base}{script}"),
        &[("accept-encoding", "gzip")],
    );
    assert_eq!(s, 200);
    assert_eq!(header(&hs, "content-encoding"), Some("gzip"));
    assert!(packed.len() < plain.len());
    let (s, _, _) = raw(&a, &format!("{base}/assets/missing-file.js"), &[]);
    assert_eq!(s, 404);
    let (s, v) = get(&a, &format!("{base}/api/catalog/no-such-route"));
    assert_eq!(s, 404);
    assert_eq!(v["error"]["name"], "NotFoundError", "{v}");

    // The browser suite.
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let runner = ui.join("node_modules/.bin/playwright");
    assert!(
        runner.is_file(),
        "the UI's packages are missing: scripts/ui installs them (npm ci in ui/) and builds the UI"
    );
    let shots = ui.join("test-output/screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    playwright(
        &ui,
        &[],
        &[
            ("CATALOG_URL", &base),
            ("CATALOG_ORG", &org.to_string_lossy()),
        ],
        "the UI's Playwright suite",
    );

    // Every page left its screenshot for people to look at.
    for page in [
        "catalog",
        "entity-component",
        "entity-api",
        "scorecards",
        "scorecard-production-readiness",
        "adoption",
        "operations",
    ] {
        let png = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", png.display());
    }
    dev.running.stop();

    // A catalog whose reads need a token: the UI asks for one and uses it
    // for every request, the change feed included.
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    let secret = "ui-reader-token-0123456789abcdef";
    let token_file = tmp.path().join("reader-token");
    std::fs::write(&token_file, secret).unwrap();
    let mut cfg = Config {
        data_dir: tmp.path().join("data"),
        ..Config::default()
    };
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("demo", &org));
    cfg.auth = Some(catalog::config::AuthConfig {
        read: catalog::config::ReadAccess::Token,
        tokens: vec![catalog::config::TokenConfig {
            name: "ui-reader".into(),
            token_file: Some(token_file),
            token_env: None,
            scopes: vec!["catalog.read".into()],
        }],
        ..Default::default()
    });
    let running = run_dev(cfg);
    let a = agent();
    wait_eq(
        "the whole demo org, read with the token",
        WAIT,
        demo_counts(&org),
        || served_counts_as(&a, &running.base, Some(secret)),
    );
    let stdout = playwright(
        &ui,
        &["tests/auth.spec.ts"],
        &[("CATALOG_URL", &running.base), ("CATALOG_TOKEN", secret)],
        "the UI's sign-in suite",
    );
    assert!(
        stdout.contains("1 passed"),
        "the sign-in test ran: {stdout}"
    );
    running.stop();
}

/// Runs `playwright test` in `ui` on `files` (all when empty) with `env`,
/// prints its output and fails unless it passed; returns its stdout.
fn playwright(ui: &Path, files: &[&str], env: &[(&str, &str)], what: &str) -> String {
    let out = std::process::Command::new(ui.join("node_modules/.bin/playwright"))
        .arg("test")
        .args(files)
        .current_dir(ui)
        .envs(env.iter().copied())
        .env("CI", "1")
        .output()
        .expect("node runs Playwright");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed (above)");
    stdout
}

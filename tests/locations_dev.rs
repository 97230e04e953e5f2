//! Locations registered through the API, end to end on `catalog dev`:
//! registration is an event that ingest acts on, a deleted entity stays
//! away until its location is processed again, unregistering removes what
//! only the location yielded, and Backstage's own catalog client drives
//! every route.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn start() -> DevWithFiles {
    dev_allowing_files()
}

fn send(
    a: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    answer(a.run(req.body(body).unwrap()))
}

fn component(dir: &Path, file: &str, name: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n\
             spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn registration_deletion_refresh_and_unregistration_are_events() {
    let dev = start();
    let a = agent();
    let base = dev.running.base.clone();
    let tok = Some(dev.token.as_str());
    let api = |p: &str| format!("{base}/api/catalog{p}");
    // The demo org's cart-service, read below, is in.
    wait_eq("the demo org's cart-service", WAIT, 200, || {
        get(&a, &api("/entities/by-name/component/default/cart-service")).0
    });
    // A Location file naming two component files, one of them shared with
    // nothing else.
    let one = component(&dev.files, "team/one.yaml", "reg-one");
    component(&dev.files, "team/two.yaml", "reg-two");
    let root = dev.files.join("team/catalog-info.yaml");
    std::fs::write(
        &root,
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: team}\n\
         spec:\n  targets: [./one.yaml, ./two.yaml]\n",
    )
    .unwrap();
    let target = root.to_str().unwrap().to_string();
    let body = json!({"type": "file", "target": target});

    // Writes need a token; file targets outside the roots are refused.
    assert_eq!(
        send(&a, "POST", &api("/locations"), None, Some(body.clone())).0,
        401
    );
    let (s, e) = send(
        &a,
        "POST",
        &api("/locations"),
        tok,
        Some(json!({"type": "file", "target": "/etc/hostname"})),
    );
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_file_roots"),
        "{e}"
    );
    let (s, e) = send(
        &a,
        "POST",
        &api("/locations"),
        tok,
        Some(json!({"type": "gitlab", "target": "x"})),
    );
    assert_eq!(s, 400);
    assert_eq!(
        e["error"]["message"],
        r#"Registered locations must be of an allowed type ["url","file"]"#
    );

    // A dry run yields the Location entity and both components, and
    // registers nothing.
    let (s, dry) = send(
        &a,
        "POST",
        &api("/locations?dryRun=true"),
        tok,
        Some(body.clone()),
    );
    assert_eq!(s, 201, "{dry}");
    assert_eq!(dry["exists"], false);
    let names: Vec<&str> = dry["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(names[0].starts_with("generated-"), "{names:?}");
    assert!(
        names.contains(&"reg-one") && names.contains(&"reg-two"),
        "{names:?}"
    );
    assert_eq!(
        get(&a, &api("/entities/by-name/component/default/reg-one")).0,
        404
    );

    // Registered: the answer comes once the location is readable.
    let (s, created) = send(&a, "POST", &api("/locations"), tok, Some(body.clone()));
    assert_eq!(s, 201, "{created}");
    let id = created["location"]["id"].as_str().unwrap().to_string();
    let location = wait_for("the registered location", WAIT, || {
        let (s, l) = get(&a, &api(&format!("/locations/{id}")));
        (s == 200).then_some(l)
    });
    assert_eq!(location["target"], target);
    let one_entity = wait_for("registered entities", WAIT, || {
        let (s, e) = get(&a, &api("/entities/by-name/component/default/reg-one"));
        (s == 200).then_some(e)
    });
    assert_eq!(
        one_entity["metadata"]["annotations"]["backstage.io/managed-by-origin-location"],
        format!("file:{target}")
    );
    // The same again is a conflict; by-entity names the registered root.
    let (s, e) = send(&a, "POST", &api("/locations"), tok, Some(body.clone()));
    assert_eq!(s, 409);
    assert_eq!(e["error"]["name"], "ConflictError");
    let (s, by_entity) = get(&a, &api("/locations/by-entity/component/default/reg-one"));
    assert_eq!(s, 200);
    assert_eq!(by_entity["id"], id.as_str());
    // The root and the two targets it lists are locations. Each target is
    // read on its own, so reg-one being visible says nothing of two.yaml:
    // wait until all three are listed (a fourth would be a failure).
    let by_prefix = json!({"query": {"target": {"$hasPrefix": dev.files.to_str().unwrap()}}});
    let q = wait_for("the root and both targets as locations", WAIT, || {
        let (_, q) = send(
            &a,
            "POST",
            &api("/locations/by-query"),
            None,
            Some(by_prefix.clone()),
        );
        (q["totalItems"].as_u64() >= Some(3)).then_some(q)
    });
    assert_eq!(q["totalItems"], 3, "{q}");

    // A deletion stays until the location is processed again.
    let uid = one_entity["metadata"]["uid"].as_str().unwrap();
    let (s, _) = send(
        &a,
        "DELETE",
        &api(&format!("/entities/by-uid/{uid}")),
        tok,
        None,
    );
    assert_eq!(s, 204);
    wait_eq("the deletion visible", WAIT, 404, || {
        get(&a, &api("/entities/by-name/component/default/reg-one")).0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        get(&a, &api("/entities/by-name/component/default/reg-one")).0,
        404
    );
    let (_, history) = get(
        &a,
        &format!("{base}/api/history/entities/component/default/reg-one"),
    );
    let last = history["changes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["change"], "deleted");
    assert_eq!(last["by"], "dev", "{last}");
    // An unknown uid is no error, as Backstage's.
    assert_eq!(
        send(&a, "DELETE", &api("/entities/by-uid/nope"), tok, None).0,
        204
    );
    // Refreshing by the deleted entity's ref is a 404, as Backstage's;
    // refreshing its location (registering it again with
    // onConflict=refresh) processes the unchanged file again, and the
    // entity comes back.
    let (s, e) = send(
        &a,
        "POST",
        &api("/refresh"),
        tok,
        Some(json!({"entityRef": "component:default/reg-one"})),
    );
    assert_eq!(
        s, 404,
        "a deleted entity cannot be refreshed by its ref: {e}"
    );
    assert_eq!(
        e["error"]["message"],
        "Entity component:default/reg-one not found"
    );
    let (s, _) = send(
        &a,
        "POST",
        &api("/locations?onConflict=refresh"),
        tok,
        Some(json!({"type": "file", "target": one.to_str().unwrap()})),
    );
    assert_eq!(s, 201, "the component's own file is a location already");
    wait_for("the deleted entity back after a refresh", WAIT, || {
        (get(&a, &api("/entities/by-name/component/default/reg-one")).0 == 200).then_some(())
    });

    // Only registered roots can be unregistered.
    let (_, demo) = get(
        &a,
        &api("/locations/by-entity/component/default/cart-service"),
    );
    let demo_id = demo["id"].as_str().unwrap();
    assert_eq!(
        send(
            &a,
            "DELETE",
            &api(&format!("/locations/{demo_id}")),
            tok,
            None
        )
        .0,
        403
    );
    // Unregistering removes what only it yielded.
    assert_eq!(
        send(&a, "DELETE", &api(&format!("/locations/{id}")), tok, None).0,
        204
    );
    wait_eq("the location unregistered", WAIT, 404, || {
        get(&a, &api(&format!("/locations/{id}"))).0
    });
    wait_for("unregistered entities gone", WAIT, || {
        let gone = ["reg-one", "reg-two"].iter().all(|n| {
            get(
                &a,
                &api(&format!("/entities/by-name/component/default/{n}")),
            )
            .0 == 404
        });
        gone.then_some(())
    });
    assert_eq!(
        get(&a, &api("/entities/by-name/component/default/cart-service")).0,
        200
    );
    dev.running.stop();
}

/// `tests/catalog-client/run.mjs` through `@backstage/catalog-client`
/// 1.16.4: every client method against `catalog dev`, with and without a
/// token.
#[test]
fn backstages_catalog_client_drives_every_route() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/catalog-client");
    if !dir.join("node_modules/@backstage/catalog-client").is_dir() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js 20) runs the catalog-client test; scripts/setup installs it");
        assert!(status.success(), "npm ci in {}", dir.display());
    }
    let dev = start();
    // The client's checks compare answers with ones read when it starts:
    // the whole org is in first, every kind of it.
    let a = agent();
    wait_eq(
        "the whole demo org",
        WAIT,
        demo_counts(&dev.tmp.path().join("org")),
        || served_counts(&a, &dev.running.base),
    );
    let out = std::process::Command::new("node")
        .arg(dir.join("run.mjs"))
        .env("CATALOG_TEST_BASE_URL", &dev.running.base)
        .env("CATALOG_TEST_TOKEN", &dev.token)
        .env("CATALOG_TEST_FILE_ROOT", &dev.files)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the catalog-client checks failed:\n{}",
        stdout
            .lines()
            .filter(|l| l.starts_with("not ok"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stdout.contains("ok - addLocation: register file location"));
    dev.running.stop();
}

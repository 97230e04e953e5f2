//! `catalog dev` on the embedded log, end to end through HTTP: the demo org
//! is served, edits and deletions show, a broken file shows its error and
//! affects nothing else, hostile input costs nothing else, and a restart
//! serves the same catalog with its history.

mod common;

use catalog::Config;
use common::*;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn start(org: &Path, data: &Path) -> Running {
    start_with_schedule(org, data, None)
}

fn start_with_schedule(org: &Path, data: &Path, schedule: Option<&str>) -> Running {
    let mut cfg = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    let mut source = ingest::SourceConfig::files("demo", org);
    if let Some(s) = schedule {
        // Polled on this schedule only: the tree is not watched.
        source.schedule = s.to_string();
        if let ingest::config::SourceKind::Files(f) = &mut source.kind {
            f.watch = false;
        }
    }
    cfg.ingest.sources.push(source);
    run_dev(cfg)
}

fn entity(agent: &ureq::Agent, base: &str, kind: &str, name: &str) -> (u16, serde_json::Value) {
    get(
        agent,
        &format!("{base}/api/catalog/entities/by-name/{kind}/default/{name}"),
    )
}

#[test]
fn demo_org_edits_deletions_errors_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    let data = tmp.path().join("data");
    let expected_components = count_kind_in(&org, "Component") + 1; // + the valid one in broken/
    let expected_groups = count_kind_in(&org, "Group");
    assert!(
        expected_components > 30,
        "demo org too small: {expected_components}"
    );

    let dev = start(&org, &data);
    let a = agent();
    let base = dev.base.clone();

    // The demo org is served, every kind of it (each file arrives on its
    // own).
    wait_eq("the whole demo org", WAIT, demo_counts(&org), || {
        served_counts(&a, &base)
    });
    assert_eq!(total(&a, &base, "kind=component"), expected_components);
    assert_eq!(total(&a, &base, "kind=group"), expected_groups);
    let (s, _) = get(&a, &format!("{base}/readyz"));
    assert_eq!(s, 200);

    // The broken file: its valid entity is served, its error is reported,
    // nothing else is affected.
    let (s, legacy) = entity(&a, &base, "component", "legacy-billing");
    assert_eq!(s, 200, "{legacy}");
    let (_, errors) = get(&a, &format!("{base}/api/catalog/errors"));
    let text = errors.to_string();
    assert!(text.contains("legacy-billing.yaml"), "{text}");
    assert!(
        text.contains("Legacy Billing!"),
        "error names the bad value: {text}"
    );

    // Relations are stitched in both directions.
    let owner_ref = legacy["spec"]["owner"].as_str().unwrap().to_string();
    let owner_name = owner_ref.rsplit('/').next().unwrap();
    let (s, group) = entity(&a, &base, "group", owner_name);
    assert_eq!(s, 200, "owner group {owner_ref} exists");
    assert!(
        group["relations"].as_array().unwrap().iter().any(|r| r["type"] == "ownerOf"
            && r["targetRef"] == "component:default/legacy-billing"),
        "{group}"
    );

    // An edit shows.
    set_title(&org, "cart-service", "Edited Cart");
    wait_for("edit visible", WAIT, || {
        let (_, e) = entity(&a, &base, "component", "cart-service");
        (e["metadata"]["title"] == "Edited Cart").then_some(())
    });

    // A deleted file removes its entities, and only those.
    let victim = walk(&org)
        .into_iter()
        .find(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            t.matches("kind: Component").count() == 1
                && !t.contains("---")
                && !p.to_string_lossy().contains("broken")
        })
        .expect("a single-component file");
    let victim_text = std::fs::read_to_string(&victim).unwrap();
    let victim_name = victim_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("name: "))
        .unwrap()
        .to_string();
    std::fs::remove_file(&victim).unwrap();
    wait_for("deletion visible", WAIT, || {
        (entity(&a, &base, "component", &victim_name).0 == 404).then_some(())
    });
    assert_eq!(total(&a, &base, "kind=component"), expected_components - 1);

    // Hostile input: a YAML bomb and invalid UTF-8 become errors; a good
    // file written after them is still ingested.
    std::fs::write(
        org.join("bomb.yaml"),
        "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
    )
    .unwrap();
    std::fs::write(
        org.join("latin1.yaml"),
        b"kind: Component\nmetadata:\n  name: caf\xe9\n",
    )
    .unwrap();
    std::fs::write(
        org.join("after.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: after-bomb\nspec:\n  type: service\n  lifecycle: production\n  owner: platform\n",
    )
    .unwrap();
    wait_for("file after the bomb", WAIT, || {
        (entity(&a, &base, "component", "after-bomb").0 == 200).then_some(())
    });
    let errors = wait_for("bomb and encoding errors", WAIT, || {
        let (_, e) = get(&a, &format!("{base}/api/catalog/errors"));
        let t = e.to_string();
        (t.contains("bomb.yaml") && t.contains("latin1.yaml")).then_some(t)
    });
    assert!(errors.contains("budget"), "bomb error kind: {errors}");
    assert!(errors.contains("encoding"), "utf-8 error kind: {errors}");

    // History of the edited entity has its creation and the edit.
    let (s, hist) = get(
        &a,
        &format!("{base}/api/history/entities/component/default/cart-service"),
    );
    assert_eq!(s, 200);
    let changes = hist["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{hist}");
    assert_eq!(changes[0]["change"], "created");
    assert_eq!(changes[1]["change"], "updated");
    let served_before = served_names(&a, &base);

    // A restart serves the same catalog and history.
    dev.stop();
    let dev = start(&org, &data);
    let base = dev.base.clone();
    wait_for("ready after restart", WAIT, || {
        (get(&a, &format!("{base}/readyz")).0 == 200).then_some(())
    });
    let after = served_names(&a, &base);
    assert_eq!(served_before, after);
    let (_, hist2) = get(
        &a,
        &format!("{base}/api/history/entities/component/default/cart-service"),
    );
    assert_eq!(hist, hist2);
    dev.stop();
}

#[test]
fn refresh_syncs_now_instead_of_at_the_next_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    // Polled once at start, then once a year: only a refresh can sync.
    let dev = start_with_schedule(&org, &tmp.path().join("data"), Some("0 0 0 1 1 *"));
    let a = agent();
    let base = dev.base.clone();
    wait_for("demo org", WAIT, || {
        (entity(&a, &base, "component", "cart-service").0 == 200).then_some(())
    });
    set_title(&org, "cart-service", "Refreshed");
    std::thread::sleep(Duration::from_millis(1500));
    let (_, before) = entity(&a, &base, "component", "cart-service");
    assert!(
        before["metadata"]["title"].is_null(),
        "no poll should have run: {before}"
    );
    // Without an auth section, dev made a token with every scope; a refresh
    // needs it.
    let token = std::fs::read_to_string(tmp.path().join("data/dev-token")).unwrap();
    let refresh = |token: Option<&str>| {
        let mut req = a
            .post(format!("{base}/api/catalog/refresh"))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        req.send(r#"{"entityRef":"component:default/cart-service"}"#)
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(refresh(None), 401);
    assert_eq!(refresh(Some("not-the-token")), 401);
    assert_eq!(refresh(Some(token.trim())), 200);
    wait_for("refreshed entity", WAIT, || {
        let (_, e) = entity(&a, &base, "component", "cart-service");
        (e["metadata"]["title"] == "Refreshed").then_some(())
    });
    dev.stop();
}

//! The API under schemathesis (`scripts/api-fuzz`): requests derived from
//! the API document, valid and invalid, to every operation of a running
//! `catalog dev` with an admin token, for a bounded number of cases. No
//! input may make the server answer 5xx.

mod common;

use catalog::Config;
use common::*;
use std::path::Path;

#[test]
fn no_request_the_document_allows_or_breaks_gets_a_server_error() {
    let tmp = tempfile::tempdir().unwrap();
    let org = tmp.path().join("org");
    copy_dir(&demo_org(), &org);
    let files = tmp.path().join("registered");
    std::fs::create_dir_all(&files).unwrap();
    let data = tmp.path().join("data");
    let mut cfg = Config {
        data_dir: data.clone(),
        ..Config::default()
    };
    cfg.ingest
        .sources
        .push(ingest::SourceConfig::files("demo", &org));
    cfg.locations.allow_file_roots = vec![files];
    let dev = run_dev(cfg);
    let a = agent();
    wait_for("the demo org", std::time::Duration::from_secs(60), || {
        (get(
            &a,
            &format!(
                "{}/api/catalog/entities/by-name/component/default/cart-service",
                dev.base
            ),
        )
        .0 == 200)
            .then_some(())
    });
    let token = std::fs::read_to_string(data.join("dev-token")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/api-fuzz");
    let out = std::process::Command::new(script)
        .args([dev.base.as_str(), token.trim()])
        .output()
        .expect("scripts/api-fuzz runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}"
    );
    dev.stop();
}

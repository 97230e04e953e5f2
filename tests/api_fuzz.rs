//! The API under schemathesis (`scripts/api-fuzz`): requests derived from
//! the API document, valid and invalid, to every operation of a running
//! `catalog dev` with an admin token, for a bounded number of cases. No
//! input may make the server answer 5xx.

mod common;

use common::*;
use std::path::Path;

#[test]
fn no_request_the_document_allows_or_breaks_gets_a_server_error() {
    let dev = dev_allowing_files();
    let a = agent();
    wait_for("the demo org", std::time::Duration::from_secs(60), || {
        (get(
            &a,
            &format!(
                "{}/api/catalog/entities/by-name/component/default/cart-service",
                dev.running.base
            ),
        )
        .0 == 200)
            .then_some(())
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/api-fuzz");
    let out = std::process::Command::new(script)
        .args([dev.running.base.as_str(), dev.token.as_str()])
        .output()
        .expect("scripts/api-fuzz runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}"
    );
    dev.running.stop();
}

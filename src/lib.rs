//! `catalog`: one binary, a subcommand per service. This library holds the
//! wiring (configuration, services, the benchmark) so that `main` stays
//! thin and tests can run services in-process.

pub mod bench;
pub mod bench_github;
pub mod bench_scorecards;
pub mod config;
pub mod services;

pub use config::Config;
pub use services::Shutdown;

/// The bundled demo organisation (examples/acme in the source tree).
pub fn demo_org_dir() -> std::path::PathBuf {
    let local = std::path::PathBuf::from("examples/acme");
    if local.is_dir() {
        return local;
    }
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/acme")
}

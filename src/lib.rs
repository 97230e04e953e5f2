//! `catalog`: one binary, a subcommand per service. This library holds the
//! wiring (configuration, services) so that `main` stays thin and tests
//! (and the benchmark, `catalog-bench`) can run services in-process.

pub mod memory;
pub mod services;

pub use catalog_config as config;
pub use config::Config;
pub use services::Shutdown;

/// Upper bounds (seconds) of every latency histogram: from a cached read
/// (sub-millisecond) to a full scorecard evaluation or a GitHub sync.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 120.0,
];

/// The Prometheus exporter of every service. Latencies export as
/// histograms with [`LATENCY_BUCKETS`] (not summaries: quantiles of
/// summaries cannot be added up across the replicas of a deployment, bucket
/// counts can).
pub fn prometheus_builder() -> metrics_exporter_prometheus::PrometheusBuilder {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .expect("the bucket list is not empty")
}

/// The bundled demo organisation (examples/acme in the source tree).
pub fn demo_org_dir() -> std::path::PathBuf {
    let local = std::path::PathBuf::from("examples/acme");
    if local.is_dir() {
        return local;
    }
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/acme")
}

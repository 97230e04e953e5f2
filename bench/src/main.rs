//! `catalog-bench`: parse the command line and run the benchmark it names
//! (see the library's documentation).

use anyhow::Context;
use clap::Parser;

// As in `catalog`: the measured services allocate the same way there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "catalog-bench",
    version,
    about = "Generate an org of N entities, run the catalog's pipeline, print throughput and latencies"
)]
struct Cli {
    #[command(flatten)]
    args: catalog_bench::BenchArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // As in `catalog`, whose services this runs.
    catalog::memory::return_freed_memory(catalog::memory::TRIM_EVERY);
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async move {
        // A benchmark has nothing to keep and may be blocked in a
        // measurement, so a signal ends it at once (with the status a shell
        // gives a process ended by SIGTERM).
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("benchmark interrupted");
            std::process::exit(143);
        });
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt().with_env_filter(filter).init();
        catalog::prometheus_builder().install_recorder().ok();
        catalog_bench::run(cli.args).await
    })
}

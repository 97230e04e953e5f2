//! The full re-evaluation of `catalog-bench --scorecards`' card inside the
//! fold, alone, on a store that card's run left (its `data/projections`),
//! for profiling: publishes the card with a new weight, folds, writes (in
//! parts of 5,000 results, as the projector does; 0: in one write), once
//! the store has no compaction left from an earlier run.
//!
//! ```text
//! cargo run -p catalog-bench --example reeval -- DIR/data/projections [WEIGHT [PART_RESULTS]]
//! ```

use projector::RocksStore;

// As in `catalog`, whose projector this measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    catalog::memory::return_freed_memory(catalog::memory::TRIM_EVERY);
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        anyhow::bail!("usage: reeval DIR/data/projections [WEIGHT [PART_RESULTS]]");
    };
    let weight: u32 = args.next().map_or(Ok(7), |w| w.parse())?;
    let parts: usize = args.next().map_or(Ok(5_000), |w| w.parse())?;
    let store = RocksStore::open(std::path::Path::new(&path), 256 << 20)?;
    // What an earlier run left to compact is compacted first, so that runs
    // one after another measure alike.
    let quiet = catalog_bench::scorecards::until_quiet(std::time::Duration::from_secs(600));
    println!("store settled after {:.0} s", quiet.as_secs_f64());
    let (evaluated, written, keys) = catalog_bench::scorecards::reevaluate(&store, weight, parts)?;
    println!(
        "evaluated in {:.2} s; wrote {keys} keys in {:.2} s",
        evaluated.as_secs_f64(),
        written.as_secs_f64()
    );
    Ok(())
}

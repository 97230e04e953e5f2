//! Where a projection store's keys and bytes go: per table (the first byte
//! of each key), how many keys, how many bytes of key and of value; then
//! the posting lists (`x`) per search key, most lists first.
//!
//! Reads a store another process may be writing (as a secondary, in a
//! scratch directory of its own):
//!
//! ```text
//! cargo run -p catalog-bench --example tables -- DIR/data/projections
//! ```

use projector::keys;
use projector::store::{RocksStore, Store};
use std::collections::BTreeMap;

/// Keys, key bytes and value bytes.
#[derive(Default)]
struct Tally {
    keys: u64,
    key_bytes: u64,
    value_bytes: u64,
}

impl Tally {
    fn add(&mut self, k: &[u8], v: &[u8]) {
        self.keys += 1;
        self.key_bytes += k.len() as u64;
        self.value_bytes += v.len() as u64;
    }

    fn bytes(&self) -> u64 {
        self.key_bytes + self.value_bytes
    }
}

fn main() -> anyhow::Result<()> {
    let Some(path) = std::env::args().nth(1) else {
        anyhow::bail!("usage: tables DIR/data/projections");
    };
    let scratch = tempfile::tempdir()?;
    let store = RocksStore::open_secondary(std::path::Path::new(&path), scratch.path(), 64 << 20)?;
    let mut tables: BTreeMap<u8, Tally> = BTreeMap::new();
    let mut lists: BTreeMap<Vec<u8>, Tally> = BTreeMap::new();
    store.scan(b"", None, &mut |k, v| {
        tables.entry(k[0]).or_default().add(k, v);
        if k[0] == keys::POSTING {
            // The search key is the key's first part, up to its separator.
            let rest = &k[1..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            lists.entry(rest[..end].to_vec()).or_default().add(k, v);
        }
        true
    })?;
    let keys_in_all: u64 = tables.values().map(|t| t.keys).sum();
    let bytes_in_all: u64 = tables.values().map(Tally::bytes).sum();
    let share = |part: u64, all: u64| 100.0 * part as f64 / all.max(1) as f64;
    println!("table       keys  (share)   key MiB  value MiB  (share of bytes)");
    for (table, t) in &tables {
        println!(
            "{}     {:>10} {:5.1}% {:>9} {:>10} {:5.1}%",
            *table as char,
            t.keys,
            share(t.keys, keys_in_all),
            t.key_bytes >> 20,
            t.value_bytes >> 20,
            share(t.bytes(), bytes_in_all)
        );
    }
    println!("all   {keys_in_all:>10} keys, {} MiB", bytes_in_all >> 20);
    let mut lists: Vec<(Vec<u8>, Tally)> = lists.into_iter().collect();
    lists.sort_by_key(|(_, t)| std::cmp::Reverse(t.keys));
    println!("\nposting lists per search key (most first)");
    for (name, t) in lists.iter().take(30) {
        println!(
            "{:>10} lists {:>8} KiB  {}",
            t.keys,
            t.bytes() >> 10,
            String::from_utf8_lossy(name)
        );
    }
    Ok(())
}

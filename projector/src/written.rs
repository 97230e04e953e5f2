//! The keys a store was ever written, as a Bloom filter: a point read of a
//! key never written is answered "absent" without asking RocksDB.
//!
//! A bulk load (the first ingest of an org, a rebuild by replay) mostly
//! reads keys it is about to create: every posting list of a value first
//! seen, its history segment, every relation row, each entity's served
//! JSON, claims, body and marks. In a 100k replay 3.5M of 4.2M point reads
//! found nothing, and each such miss cost 1.1-2.2 µs: a search of every
//! memtable, then a filter probe of every L0 file and one per level (the
//! filter probes alone were 5% of the replay's samples). A probe here is
//! one cache line.
//!
//! The filter is only sound for a store it saw every write of, so a store
//! keeps one only when it was empty when opened (see
//! [`crate::store::RocksStore::open`]), and every write adds its keys
//! before RocksDB applies them: a reader that sees a write also sees its
//! keys here. Deletes add nothing (a deleted key reads as absent either
//! way), so a key once written stays "maybe" for good; a false "maybe"
//! only costs the read RocksDB would have done anyway.
//!
//! Tables the fold only ever scans (history, versions, the feed: a third
//! of the keys a new entity brings) are left out: a point read of one of
//! their keys always goes to RocksDB.
//!
//! It grows in steps, each a filter twice the size of the one before, as
//! many keys as it was sized for get added (about 8 bits per key, 2% false
//! "maybe" each), and stops past [`MAX_BYTES`] of them (28 MiB, about 29M
//! keys: a store of 1M entities writes about 33M of the tables kept): from
//! then on every read goes to RocksDB, as for a store opened with content.

use crate::keys;
use crate::scorecard::records as rk;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Tables whose keys are read by scans alone: written per change (each
/// entity's history, versions, relation history, feed records, scorecard
/// result history and dependencies), never looked up one by one by the
/// fold, so not worth a place in the filter.
const SCANNED: &[u8] = &[
    keys::HISTORY,
    keys::VERSION,
    keys::RELATION_HISTORY,
    keys::FEED,
    keys::UID_EVER,
    keys::ORDINAL_REF,
    rk::RESULT_HISTORY,
    rk::DEPENDENCY,
    rk::BY_LEVEL,
    rk::DUE,
    rk::FACT_HISTORY,
];

/// Whether the filter keeps `key`'s table.
fn kept(key: &[u8]) -> bool {
    key.first().is_some_and(|t| !SCANNED.contains(t))
}

/// Bits of the first filter (4 MiB); each next one doubles. Few steps keep
/// reads cheap: a key never written is looked for in every one.
const FIRST_BITS: usize = 1 << 25;
/// Bits per key a filter is sized for.
const BITS_PER_KEY: usize = 8;
/// Bits set (and probed) per key, all within one 512-bit block.
const PROBES: u32 = 5;
/// The most steps ([`MAX_BYTES`] stops it before).
const STEPS: usize = 6;
/// The most memory the filters may take together; past it the filter
/// stops answering (see the module's comment). Steps of 4, 8 and 16 MiB
/// fit; the next would not.
const MAX_BYTES: usize = 32 << 20;

/// One filter: blocks of 512 bits (a cache line each).
struct Step {
    words: Box<[AtomicU64]>,
    /// Keys it was sized for, and keys added to it.
    capacity: usize,
    added: AtomicUsize,
}

impl Step {
    fn new(bits: usize) -> Self {
        Step {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            capacity: bits / BITS_PER_KEY,
            added: AtomicUsize::new(0),
        }
    }

    /// The words of `hash`'s block and the bits to set in each.
    fn masks(&self, hash: u64) -> (usize, [u64; 8]) {
        let blocks = self.words.len() / 8;
        // The high half picks the block (a multiply maps it onto the
        // count without a division), the low half the bits inside.
        let block = (((hash >> 32) * blocks as u64) >> 32) as usize;
        let mut masks = [0u64; 8];
        let (mut h, step) = (hash as u32, (hash as u32).rotate_left(15) | 1);
        for _ in 0..PROBES {
            let bit = h & 511;
            masks[(bit >> 6) as usize] |= 1 << (bit & 63);
            h = h.wrapping_add(step);
        }
        (block * 8, masks)
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (at, masks) = self.masks(hash);
        masks
            .iter()
            .enumerate()
            .all(|(i, &m)| m == 0 || self.words[at + i].load(Ordering::Acquire) & m == m)
    }

    /// Sets `hash`'s bits; whether any was not set before.
    fn insert(&self, hash: u64) -> bool {
        let (at, masks) = self.masks(hash);
        let mut new = false;
        for (i, &m) in masks.iter().enumerate() {
            let word = &self.words[at + i];
            if m != 0 && word.load(Ordering::Relaxed) & m != m {
                word.fetch_or(m, Ordering::Release);
                new = true;
            }
        }
        new
    }
}

/// The filter of a store's written keys (see the module's comment).
pub struct Written {
    hasher: ahash::RandomState,
    steps: [OnceLock<Step>; STEPS],
    /// Steps in use; only [`Written::add`] (under the store's write)
    /// moves it on.
    used: AtomicUsize,
    /// Past [`MAX_BYTES`]: every key may have been written.
    full: AtomicBool,
    /// Reads answered here, for tests and the benchmark.
    answered: AtomicU64,
    max_bytes: usize,
}

impl Default for Written {
    fn default() -> Self {
        Self::new()
    }
}

impl Written {
    pub fn new() -> Self {
        Self::sized(FIRST_BITS, MAX_BYTES)
    }

    /// A filter whose first step has `first_bits` and whose steps stop
    /// past `max_bytes` together.
    fn sized(first_bits: usize, max_bytes: usize) -> Self {
        let w = Written {
            hasher: ahash::RandomState::new(),
            steps: Default::default(),
            used: AtomicUsize::new(1),
            full: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            max_bytes,
        };
        let _ = w.steps[0].set(Step::new(first_bits));
        w
    }

    /// Whether `key` was never written (false: it may have been).
    pub fn never_written(&self, key: &[u8]) -> bool {
        if !kept(key) || self.full.load(Ordering::Acquire) {
            return false;
        }
        let hash = self.hasher.hash_one(key);
        let used = self.used.load(Ordering::Acquire);
        // Newest first: a key read again was mostly written lately.
        let absent = self.steps[..used]
            .iter()
            .rev()
            .filter_map(OnceLock::get)
            .all(|s| !s.may_contain(hash));
        if absent {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        absent
    }

    /// Records that `key` is written. Called before the write lands.
    pub fn add(&self, key: &[u8]) {
        if !kept(key) || self.full.load(Ordering::Relaxed) {
            return;
        }
        let hash = self.hasher.hash_one(key);
        let used = self.used.load(Ordering::Relaxed);
        let step = |i: usize| self.steps[i].get().expect("steps in use are set");
        // Into the newest step only, without asking the older ones whether
        // they hold it already: each probe of a filter this large is a
        // cache miss, and a key written again in a later step (a posting
        // list changed again, a served entity updated) only counts a
        // little early towards the next step.
        let last = step(used - 1);
        if !last.insert(hash) || last.added.fetch_add(1, Ordering::Relaxed) + 1 < last.capacity {
            return;
        }
        // This step holds what it was sized for: the next, twice as large,
        // takes new keys from now on; past the budget, stop answering.
        let next_bits = last.words.len() * 64 * 2;
        if used == STEPS || self.bytes() + next_bits / 8 > self.max_bytes {
            self.full.store(true, Ordering::Release);
            return;
        }
        let _ = self.steps[used].set(Step::new(next_bits));
        self.used.store(used + 1, Ordering::Release);
    }

    /// Point reads answered "never written" so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Whether the filter still answers (it stops past [`MAX_BYTES`]).
    pub fn answering(&self) -> bool {
        !self.full.load(Ordering::Relaxed)
    }

    /// Memory the filters take, in bytes.
    pub fn bytes(&self) -> usize {
        self.steps
            .iter()
            .filter_map(OnceLock::get)
            .map(|s| s.words.len() * 8)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("x\0metadata.name\0component-{i}").into_bytes()
    }

    #[test]
    fn every_key_written_may_be_there_and_few_others_seem_to_be() {
        let first = 1 << 18;
        let w = Written::sized(first, 1 << 20);
        // More than the first step was sized for: the filter grows.
        let n = first / BITS_PER_KEY * 3;
        for i in 0..n {
            w.add(&key(i));
        }
        assert!(w.answering());
        assert!(w.bytes() > first / 8, "it grew: {}", w.bytes());
        assert!((0..n).all(|i| !w.never_written(&key(i))));
        let false_maybe = (n..n + 100_000)
            .filter(|&i| !w.never_written(&key(i)))
            .count();
        // About 2% per step; three steps in use.
        assert!(
            false_maybe < 10_000,
            "{false_maybe} of 100000 unwritten keys seemed written"
        );
        assert_eq!(w.answered(), 100_000 - false_maybe as u64);
    }

    #[test]
    fn keys_of_tables_read_by_scans_are_always_asked_for() {
        let w = Written::new();
        let history = keys::key(keys::HISTORY, &[b"component:default/a"]);
        let served = keys::entity("component:default/a");
        assert!(w.never_written(&served));
        assert!(!w.never_written(&history));
        w.add(&history);
        w.add(&served);
        assert!(!w.never_written(&served));
        // The history key added nothing: the filter is as empty as before
        // for every other key of its table and of the kept ones.
        assert!(w.never_written(&keys::entity("component:default/b")));
        assert_eq!(w.steps[0].get().unwrap().added.load(Ordering::Relaxed), 1);
        assert!(!w.never_written(b""));
    }

    #[test]
    fn past_its_budget_the_filter_answers_nothing() {
        let budget = 1 << 16;
        let w = Written::sized(1 << 16, budget);
        let mut i = 0;
        while w.answering() {
            w.add(&key(i));
            i += 1;
            assert!(i < 1 << 20, "the filter never filled");
        }
        // Steps of 8, 16 and 32 KiB; the next would pass the budget.
        assert_eq!(w.bytes(), (8 + 16 + 32) << 10);
        assert!(w.bytes() <= budget);
        // Sized at 8 bits per key: at least as many keys as that went in.
        assert!(i >= w.bytes() * 8 / BITS_PER_KEY, "stopped after {i} keys");
        assert!(!w.never_written(b"never"));
        assert_eq!(w.answered(), 0);
    }
}

//! Returning freed memory to the system.
//!
//! RocksDB (C++) allocates through the C library's `malloc`, not through
//! the Rust allocator: its block cache, memtables and table readers churn
//! blocks of a few kilobytes from a dozen threads. glibc keeps what such a
//! workload frees inside its per-thread arenas and gives pages back only
//! from the top of each one, so over a rebuild of 1M entities its arenas
//! grew to 1.3 GB while the Rust heap stayed near 0.7 GB. `malloc_trim`
//! releases every whole free page wherever it sits; calling it once a
//! second bounds that retention for the cost of a walk over the free lists
//! (well under a millisecond to a few milliseconds).

use std::time::Duration;

/// How often freed memory is handed back.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Hands the whole free pages `malloc` holds back to the system; returns
/// whether any were. Does nothing (and returns false) where the C library
/// is not glibc.
#[allow(unsafe_code)]
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointers; glibc serialises it with
        // every other allocator call, so any thread may call it any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// mimalloc's option number of its purge delay. Option numbers are its
/// ABI: retired options keep their slots, and this one sits just before
/// `mi_option_use_numa_nodes`, which the bindings name (see the test).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has the Rust heap (mimalloc, where it is the global allocator) hand
/// freed pages back to the system after [`PURGE_DELAY_MS`] rather than a
/// second later. The fold makes and drops hundreds of megabytes per batch
/// (a Location listing 544k targets changes as many posting lists at
/// once): freed pages kept for a second were held alongside the next
/// batch's. At 1M entities the rebuild peaked at 2,068-2,305 MiB with the
/// default, and at 1,882, 2,291 and 2,319 MiB in three runs with 100 ms
/// (ingest 1,983-1,986 -> 1,837-1,849 MiB), at no cost in speed: the
/// delay lowers the peak only some of the time. (That peak is the batch
/// folding the Location that lists 544k targets; since that batch holds
/// less, see `postings::Changes`, two 1M rebuilds peaked at 1,967 and
/// 1,977 MiB.) With no delay at all the
/// peaks were about the same but every query faulted fresh pages in (a
/// filtered page 8.8 -> 13.4 ms).
/// `MIMALLOC_PURGE_DELAY`, when set, is left to rule.
pub fn purge_freed_soon() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        set_purge_delay(PURGE_DELAY_MS);
    }
}

/// The purge delay set, milliseconds: shorter than a batch of the fold
/// (so a batch's pages are back before the next one's), longer than the
/// pause between two requests under load (so a query does not fault in
/// fresh pages for each answer, as it did with no delay).
const PURGE_DELAY_MS: i32 = 100;

/// Sets mimalloc's purge delay, milliseconds.
#[allow(unsafe_code)]
fn set_purge_delay(ms: i32) {
    // SAFETY: sets one integer option; mimalloc reads options atomically
    // and allows setting them at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms.into()) };
}

/// Starts a thread that calls [`trim`] every `every` for the life of the
/// process, after [`purge_freed_soon`].
pub fn return_freed_memory(every: Duration) {
    purge_freed_soon();
    let started = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                trim();
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start the thread that returns freed memory");
    }
}

#[cfg(test)]
mod option_tests {
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_is_the_option_set() {
        // The number is the one before the option the bindings name.
        assert_eq!(
            super::MI_OPTION_PURGE_DELAY + 1,
            libmimalloc_sys::mi_option_use_numa_nodes
        );
        for ms in [250, 0] {
            super::set_purge_delay(ms);
            // SAFETY: reads one integer option.
            let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(delay, i64::from(ms));
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// This process's anonymous resident memory, KiB.
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// What RocksDB's block churn leaves behind: many small blocks
    /// allocated on a thread of their own (hence in an arena of their
    /// own), most freed, a few kept in between. The freed pages stay
    /// resident until a trim gives them back.
    #[test]
    #[allow(unsafe_code)]
    fn freed_pages_between_live_blocks_go_back_to_the_system() {
        const BLOCKS: usize = 64 * 1024;
        const BLOCK: usize = 4096;
        let kept = std::thread::spawn(|| {
            let mut all = Vec::with_capacity(BLOCKS);
            for i in 0..BLOCKS {
                // SAFETY: plain allocations of BLOCK bytes, each written
                // to (so resident) and freed once below or by the caller.
                let p = unsafe { libc::malloc(BLOCK) } as *mut u8;
                assert!(!p.is_null());
                unsafe { std::ptr::write_bytes(p, (i % 251) as u8, BLOCK) };
                all.push(p as usize);
            }
            // One block in 64 stays: 256 MiB stays mapped around them.
            let mut kept = Vec::new();
            for (i, p) in all.into_iter().enumerate() {
                if i % 64 == 0 {
                    kept.push(p);
                } else {
                    // SAFETY: allocated above, freed once.
                    unsafe { libc::free(p as *mut libc::c_void) };
                }
            }
            kept
        })
        .join()
        .unwrap();
        let before = rss_anon_kib();
        super::trim();
        let after = rss_anon_kib();
        for p in kept {
            // SAFETY: allocated above, freed once.
            unsafe { libc::free(p as *mut libc::c_void) };
        }
        // 252 MiB were freed between the kept blocks; most must go.
        assert!(
            before.saturating_sub(after) > 128 * 1024,
            "RssAnon {before} KiB before the trim, {after} KiB after"
        );
    }
}

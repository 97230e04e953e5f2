//! One large record at a time in a process. A stage that turns a large
//! record into its decoded form (the observation of a 68 MB org file, the
//! entity event of its 300,000 users) holds several times its size while
//! it works. When the processor and the projector share a process
//! (`catalog dev`) and each met the same large location at once, their
//! peaks added up: so each takes the process's one [`LargePermit`] for a
//! record of [`LARGE_RECORD_BYTES`] or more, and holds it until it is done
//! with the record. Small records never wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Records at least this long (encoded) take the permit.
pub const LARGE_RECORD_BYTES: usize = 4 << 20;

/// Whether the permit is taken, and the wake-up of those waiting for it.
static TAKEN: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

/// Whether a record of `len` bytes (encoded) is large: one that takes the
/// permit, and that a stage expects to hold several times over.
pub fn is_large(len: usize) -> bool {
    len >= LARGE_RECORD_BYTES
}

/// The right to work on a large record, given back when dropped; empty for
/// a small record.
#[derive(Debug)]
pub struct LargePermit {
    held: bool,
}

impl LargePermit {
    /// Whether this is the process's one permit (taken for a large record)
    /// rather than the empty one of a small record.
    pub fn held(&self) -> bool {
        self.held
    }
}

impl Drop for LargePermit {
    fn drop(&mut self) {
        if self.held {
            *TAKEN.lock().unwrap_or_else(|e| e.into_inner()) = false;
            FREED.notify_one();
        }
    }
}

/// The permit for a record of `len` bytes: at once for a small one;
/// otherwise once no other large record is being worked on. `None` when
/// `stop` is set while waiting (a stage must stop within seconds; the
/// record is left for later).
pub fn permit(len: usize, stop: &AtomicBool) -> Option<LargePermit> {
    if !is_large(len) {
        return Some(LargePermit { held: false });
    }
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    while *taken {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        taken = FREED
            .wait_timeout(taken, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    *taken = true;
    Some(LargePermit { held: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Large records are worked on one at a time; small ones never wait;
    /// a waiter gives up when told to stop.
    #[test]
    fn one_large_record_at_a_time() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let never = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (running, most, never) = (running.clone(), most.clone(), never.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let _p = permit(LARGE_RECORD_BYTES, &never).expect("no stop");
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);

        let held = permit(LARGE_RECORD_BYTES * 2, &never).unwrap();
        // A small record goes ahead while a large one is worked on.
        assert!(permit(LARGE_RECORD_BYTES - 1, &never).is_some());
        let stop = Arc::new(AtomicBool::new(false));
        let waiter = {
            let stop = stop.clone();
            std::thread::spawn(move || permit(LARGE_RECORD_BYTES, &stop).is_none())
        };
        std::thread::sleep(Duration::from_millis(150));
        stop.store(true, Ordering::SeqCst);
        assert!(waiter.join().unwrap(), "a stopped waiter gives up");
        drop(held);
        assert!(permit(LARGE_RECORD_BYTES, &never).is_some(), "given back");
    }
}

//! The process's allocator, counting allocations while asked to (for `sluice bench-planner`); otherwise one
//! relaxed load per allocation. With glibc, [`one_arena`] keeps every thread on one malloc arena.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
};

/// The system allocator, counting allocations while [`counting`] is on.
pub struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Asks glibc's malloc for a single arena. By default each thread that allocates while another holds the main
/// arena gets one of its own (up to eight per core), and memory freed in one is not reused by the others: the
/// controller's tasks move between the runtime's threads, and peak memory at 1000 Rollouts was 8 % higher and
/// idle memory 4 MiB higher with them. The tasks hold the lock only for the allocation itself.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc setting; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// How often [`return_freed`] gives freed memory back.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Gives the pages malloc holds free back to the system, wherever they lie in the heap (glibc's own trimming
/// returns only the top of the heap, so a burst of work, such as listing every object when the caches fill,
/// would otherwise stay resident). Every [`TRIM_EVERY`] until the process ends; a no-op elsewhere.
pub async fn return_freed() {
    let mut every = tokio::time::interval(TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        trim();
    }
}

/// One pass of [`return_freed`]: returns whether any memory was given back.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks malloc's own free lists, under the arena's lock.
    unsafe {
        libc::malloc_trim(0) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Turns counting on or off.
pub fn counting(on: bool) {
    COUNTING.store(on, Relaxed);
}

/// Allocations counted so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Relaxed)
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_counted_only_while_counting() {
        // The test binary's allocator is this one too: other tests' threads allocate meanwhile.
        counting(true);
        let before = allocations();
        // SAFETY: a valid layout, freed below.
        let p = unsafe { Counting.alloc(Layout::from_size_align(64, 8).unwrap()) };
        assert!(allocations() > before);
        counting(false);
        // SAFETY: allocated above with this layout.
        unsafe { Counting.dealloc(p, Layout::from_size_align(64, 8).unwrap()) };
        let off = allocations();
        // SAFETY: a valid layout, freed below.
        let q = unsafe { Counting.alloc(Layout::from_size_align(8, 8).unwrap()) };
        assert_eq!(allocations(), off);
        // SAFETY: allocated above with this layout.
        unsafe { Counting.dealloc(q, Layout::from_size_align(8, 8).unwrap()) };
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_pages_in_the_middle_of_the_heap_are_given_back() {
        // 16 MiB in small blocks, all freed but the last, which keeps the heap's top where it is.
        let blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let pin = vec![1u8; 1024];
        drop(blocks);
        assert!(trim(), "malloc_trim gave nothing back");
        assert_eq!(pin[0], 1);
    }
}

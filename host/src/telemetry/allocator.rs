//! The process' allocator: jemalloc for everything Rust allocates, in the binary and in
//! whatever links this library (its tests and benchmarks measure what the binary runs).
//!
//! Why not glibc's: under a burst (the Discord benchmark: 10 000 messages in flight at
//! once) glibc's malloc and free took a fifth of the CPU, most of it walking and
//! consolidating its free lists; jemalloc gave about 1.5× the messages per second (see
//! BENCHMARKS.md, issue 20). jemalloc also counts what it holds, so the memory figures stay
//! exact. C libraries (SQLite) still allocate from glibc, whose arenas are capped too.

use tikv_jemalloc_ctl::{epoch, stats};

use crate::telemetry::memory::AllocatorMemory;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What the allocator holds now; none if it cannot say.
pub(crate) fn figures() -> Option<AllocatorMemory> {
    // jemalloc's statistics are a snapshot taken when the epoch advances.
    epoch::advance().ok()?;
    let allocated = stats::allocated::read().ok()? as u64;
    let resident = stats::resident::read().ok()? as u64;
    let mapped = stats::mapped::read().ok()? as u64;
    Some(AllocatorMemory {
        allocated_bytes: allocated,
        free_bytes: resident.saturating_sub(allocated),
        mapped_bytes: mapped,
    })
}

/// Hands the allocator's free pages back to the system (jemalloc's and glibc's), so what
/// shedding freed shows in the resident figure the levels are judged on.
pub(crate) fn give_back() {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`: every arena's unused dirty pages.
    let name = c"arena.4096.purge";
    // SAFETY: a void control, called with no old or new value as jemalloc documents.
    let purged = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if purged != 0 {
        tracing::debug!(error = purged, "jemalloc did not purge its arenas");
    }
    trim_glibc();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_glibc() {
    // SAFETY: malloc_trim only releases free heap pages; it takes no pointers.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_glibc() {}

/// Caps glibc's malloc arenas at one per core; call it first thing in `main`. What still
/// allocates from glibc (SQLite, other C code) would otherwise get up to eight arenas per
/// core, and memory freed into one stays there. (Measured with the soak benchmark when
/// all of the process allocated from glibc: 118 MiB resident by default, 92 MiB capped.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn cap_glibc_arenas() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets one of the allocator's parameters; it takes no pointers.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
}

/// Nothing to cap where the C allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn cap_glibc_arenas() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_count_what_is_allocated() {
        let before = figures().expect("jemalloc's statistics");
        let held = std::hint::black_box(vec![1u8; 64 << 20]);
        let during = figures().expect("jemalloc's statistics");
        assert!(
            during.allocated_bytes >= before.allocated_bytes + (60 << 20),
            "{before:?} then {during:?}"
        );
        assert!(during.mapped_bytes >= during.allocated_bytes);
        drop(held);
        give_back();
        let after = figures().expect("jemalloc's statistics");
        assert!(after.allocated_bytes < during.allocated_bytes);
    }
}

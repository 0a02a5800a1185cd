//! The I/O thread's scheduling policy: `SCHED_BATCH`, so that waking it never preempts a shard.
//!
//! Every tier call wakes the I/O thread, and on Linux a woken normal thread usually preempts the
//! thread running on its core. The I/O thread shares cores with the shards, so each tier hit cost
//! a switch away from the shard and one back, for a few microseconds of work. Under
//! `SCHED_BATCH` a woken thread waits until its core's thread blocks or the next scheduler tick,
//! and then takes every request queued meanwhile in one turn: one switch per batch instead of
//! per request. Measured (`bench/fetch-tails.sh`, one shard and the I/O thread on one core, 38%
//! tier hits, two alternated pairs): 73.6–74.1k against 54.7–57.5k req/s at 64 connections,
//! p50 0.36 against 0.87–0.93 ms, p99 2.82–2.84 against 3.23–3.43 ms
//! (`bench/results/2026-12-05-nvme-batch-policy.md`).
//!
//! This is the crate's only `unsafe` outside `uring.rs`: one FFI call. A thread that may not
//! change its policy (a seccomp filter) keeps the default one.
#![allow(unsafe_code)]

use std::io;

/// Puts the calling thread under `SCHED_BATCH`.
pub(crate) fn run_as_batch() -> io::Result<()> {
    // SAFETY: `set_policy` has no precondition beyond being called on a thread, which it is.
    unsafe { set_policy(libc::SCHED_BATCH) }
}

/// Sets the calling thread's scheduling policy, at priority 0 (the only one non-real-time
/// policies take).
///
/// # Safety
///
/// `sched_setscheduler` reads one `sched_param` through the pointer it is given; the pointer is
/// to a local that outlives the call. With pid 0 Linux changes the calling thread only (not the
/// process), so no other thread of the gateway is affected. Nothing else is touched.
unsafe fn set_policy(policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: see the function's `# Safety`: a valid pointer to an initialised local.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

//! The io_uring submission/completion wrapper — the only `unsafe` code in the crate.
//!
//! `SubmissionQueue::push` is `unsafe` because the kernel uses the entry's buffer pointer and file
//! descriptor after `push` returns, until the completion is posted. The engine upholds that: every
//! submitted buffer and `File` is owned by its in-flight slot (`engine::InFlight`) and is dropped
//! only after the matching completion has been reaped, and the engine drains all in-flight
//! operations before the ring is dropped (`Engine::shutdown`).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, opcode, squeue, types};

use super::io::Completion;

pub(crate) struct Ring {
    ring: IoUring,
    /// Entries pushed but not yet completed; capped at the ring size so the completion queue
    /// (twice the submission queue) can never overflow.
    in_flight: usize,
    cap: usize,
    ready: VecDeque<Completion>,
}

impl Ring {
    pub(crate) fn new(entries: u32) -> io::Result<Ring> {
        let ring = IoUring::new(entries)?;
        let cap = ring.params().sq_entries() as usize;
        Ok(Ring {
            ring,
            in_flight: 0,
            cap,
            ready: VecDeque::new(),
        })
    }

    /// Queues a read of `len` bytes at `offset` into `ptr`. See the module docs for the lifetime
    /// contract on `ptr` and `file`.
    pub(crate) fn read(&mut self, file: &File, ptr: *mut u8, len: u32, offset: u64, ud: u64) {
        let e = opcode::Read::new(types::Fd(file.as_raw_fd()), ptr, len)
            .offset(offset)
            .build()
            .user_data(ud);
        self.push(e);
    }

    /// Queues a write of `len` bytes at `offset` from `ptr`. Same contract as [`Ring::read`].
    pub(crate) fn write(&mut self, file: &File, ptr: *const u8, len: u32, offset: u64, ud: u64) {
        let e = opcode::Write::new(types::Fd(file.as_raw_fd()), ptr, len)
            .offset(offset)
            .build()
            .user_data(ud);
        self.push(e);
    }

    fn push(&mut self, entry: squeue::Entry) {
        // Keep the number of outstanding operations within what the completion queue holds.
        while self.in_flight >= self.cap {
            if let Err(e) = self.ring.submit_and_wait(1) {
                tracing::warn!(error = %e, "nvme cache: io_uring submit failed");
            }
            self.reap();
        }
        loop {
            // SAFETY: the entry's buffer and fd are owned by the engine's in-flight slot for this
            // `user_data` and stay alive until its completion is reaped (module docs).
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                self.in_flight += 1;
                return;
            }
            // Submission queue full: hand the queued entries to the kernel to make room.
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "nvme cache: io_uring submit failed");
            }
        }
    }

    /// Submits queued entries; with `wait`, blocks until at least one completion is available.
    pub(crate) fn submit(&mut self, wait: bool) -> io::Result<()> {
        let want = usize::from(wait && self.in_flight > 0 && self.ready.is_empty());
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            // Interrupted or the kernel is busy: completions are reaped next round.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            let r = cqe.result();
            self.in_flight -= 1;
            self.ready.push_back(Completion {
                user_data: cqe.user_data(),
                result: if r < 0 {
                    Err(io::Error::from_raw_os_error(-r))
                } else {
                    Ok(r as usize)
                },
            });
        }
    }

    pub(crate) fn complete(&mut self, out: &mut Vec<Completion>) {
        self.reap();
        out.extend(self.ready.drain(..));
    }
}

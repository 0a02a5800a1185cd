//! The io_uring submission/completion wrapper — the only `unsafe` code in the crate.
//!
//! `SubmissionQueue::push` is `unsafe` because the kernel uses the entry's buffer pointer and file
//! descriptor after `push` returns, until the completion is posted. [`Ring`] upholds that itself,
//! so its API is safe: [`Ring::read`] and [`Ring::write`] take the buffer and the `Arc<File>` by
//! value and hold them in one of the ring's own slots (whose index is the entry's `user_data`)
//! until the completion is reaped; a read's buffer then comes back in its [`Completion`]. The
//! buffers are [`AlignedBuf`]s, whose heap storage never moves or grows, so the pointer stays
//! valid while the slot (and with it the buffer) is moved around. Dropping the ring waits for
//! every operation still in flight, and leaks their buffers if it cannot wait, so the kernel never
//! touches freed memory.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{IoUring, opcode, squeue, types};

use super::buf::AlignedBuf;
use super::completion::Completion;

/// What the kernel uses while an operation is in flight, held by the ring until its completion.
struct Held {
    /// The caller's `user_data`, reported back in the [`Completion`].
    user_data: u64,
    _file: Arc<File>,
    buf: HeldBuf,
}

enum HeldBuf {
    /// The kernel writes into it; handed back in the completion.
    Read(AlignedBuf),
    /// The kernel reads from it; shared read-only with the engine (which serves reads of a chunk
    /// being written from it), so nobody can write to it meanwhile. Only kept alive.
    Write { _shared: Arc<AlignedBuf> },
}

pub(crate) struct Ring {
    ring: IoUring,
    /// Entries pushed but not yet completed; capped at the ring size so the completion queue
    /// (twice the submission queue) can never overflow.
    in_flight: usize,
    cap: usize,
    ready: VecDeque<Completion>,
    /// Buffers and files of the operations in flight, by slot (the entry's `user_data`). A slot
    /// is emptied only when its completion has been reaped.
    held: Vec<Option<Held>>,
    free: Vec<usize>,
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
            held: Vec::new(),
            free: Vec::new(),
        })
    }

    /// Queues a read of `buf.len()` bytes at `offset` into `buf`. The ring keeps `file` and `buf`
    /// until the read completes; `buf` comes back in the [`Completion`] for `ud`.
    pub(crate) fn read(&mut self, file: Arc<File>, mut buf: AlignedBuf, offset: u64, ud: u64) {
        let dest = buf.as_mut_slice();
        // Capping only shortens the read, which stays in bounds (buffers are far below 4 GiB).
        let (ptr, len) = (
            dest.as_mut_ptr(),
            u32::try_from(dest.len()).unwrap_or(u32::MAX),
        );
        let fd = types::Fd(file.as_raw_fd());
        let slot = self.hold(Held {
            user_data: ud,
            _file: file,
            buf: HeldBuf::Read(buf),
        });
        let e = opcode::Read::new(fd, ptr, len)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        // SAFETY: the entry points into the buffer and at the file that `hold` just moved into
        // slot `slot`, its `user_data`. Moving an `AlignedBuf` moves only its handle: the heap
        // window `ptr` points into stays put, and no one touches it until the slot is reaped.
        unsafe { self.push(e) };
    }

    /// Queues a write of the first `len` bytes of `buf` at `offset`. The ring keeps `file` and
    /// `buf` until the write completes. Panics if `len` exceeds the buffer.
    pub(crate) fn write(
        &mut self,
        file: Arc<File>,
        buf: Arc<AlignedBuf>,
        len: usize,
        offset: u64,
        ud: u64,
    ) {
        let data = &buf.as_slice()[..len];
        let (ptr, len) = (data.as_ptr(), u32::try_from(data.len()).unwrap_or(u32::MAX));
        let fd = types::Fd(file.as_raw_fd());
        let slot = self.hold(Held {
            user_data: ud,
            _file: file,
            buf: HeldBuf::Write { _shared: buf },
        });
        let e = opcode::Write::new(fd, ptr, len)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        // SAFETY: the entry points into the buffer and at the file that `hold` just moved into
        // slot `slot`, its `user_data`. Moving the `Arc` did not move the bytes `ptr` points
        // into, and while the slot holds a clone of the `Arc` no one can get `&mut` to the buffer.
        unsafe { self.push(e) };
    }

    /// Stores an operation's buffer and file in a free slot; returns the slot.
    fn hold(&mut self, held: Held) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.held[i] = Some(held);
                i
            }
            None => {
                self.held.push(Some(held));
                self.held.len() - 1
            }
        }
    }

    /// Pushes one entry onto the submission queue, first making room if the ring is full.
    ///
    /// # Safety
    ///
    /// Every buffer and file descriptor `entry` refers to must be owned by
    /// `self.held[entry.user_data]` (so they stay alive and unmoved until that slot's completion
    /// is reaped, or forever if the ring cannot drain on drop), and nothing else may write to a
    /// buffer the kernel reads from or access a buffer the kernel writes into meanwhile.
    unsafe fn push(&mut self, entry: squeue::Entry) {
        // Keep the number of outstanding operations within what the completion queue holds.
        while self.in_flight >= self.cap {
            if let Err(e) = self.ring.submit_and_wait(1) {
                tracing::warn!(error = %e, "nvme cache: io_uring submit failed");
            }
            self.reap();
        }
        loop {
            // SAFETY: the caller guarantees the entry's buffer and fd live in the ring's `held`
            // slot for its `user_data`, which `reap` empties only after the completion is posted.
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

    /// Moves posted completions to `ready`, releasing their slots (the kernel is done with them).
    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            let r = cqe.result();
            self.in_flight -= 1;
            let slot = cqe.user_data() as usize;
            let Some(held) = self.held.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            self.free.push(slot);
            self.ready.push_back(Completion {
                user_data: held.user_data,
                result: if r < 0 {
                    Err(io::Error::from_raw_os_error(-r))
                } else {
                    Ok(r as usize)
                },
                buf: match held.buf {
                    HeldBuf::Read(buf) => Some(buf),
                    HeldBuf::Write { .. } => None,
                },
            });
        }
    }

    pub(crate) fn complete(&mut self, out: &mut Vec<Completion>) {
        self.reap();
        out.extend(self.ready.drain(..));
    }
}

impl Drop for Ring {
    /// Waits for the operations still in flight (the engine normally drains them first), so their
    /// buffers are freed only once the kernel is done with them. If the ring cannot wait, the
    /// buffers are leaked instead.
    fn drop(&mut self) {
        while self.in_flight > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        in_flight = self.in_flight,
                        "nvme cache: io_uring drain failed; leaking the in-flight buffers"
                    );
                    std::mem::forget(std::mem::take(&mut self.held));
                    return;
                }
            }
            self.reap();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::nvme::record::ALIGN;

    fn ring_or_skip() -> Option<Ring> {
        match Ring::new(8) {
            Ok(r) => Some(r),
            Err(e) => {
                println!("note: io_uring unavailable here ({e}); skipped");
                None
            }
        }
    }

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, Arc<File>) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write");
        let file = Arc::new(f.reopen().expect("reopen"));
        (f, file)
    }

    #[test]
    fn a_read_hands_its_buffer_back_filled() {
        let Some(mut ring) = ring_or_skip() else {
            return;
        };
        let data: Vec<u8> = (0..ALIGN).map(|i| i as u8).collect();
        let (_tmp, file) = file_with(&data);
        ring.read(file, AlignedBuf::zeroed(ALIGN), 0, 7);
        let mut out = Vec::new();
        while out.is_empty() {
            ring.submit(true).expect("submit");
            ring.complete(&mut out);
        }
        let c = out.pop().expect("one completion");
        assert_eq!(c.user_data, 7);
        assert_eq!(c.result.expect("read"), ALIGN);
        assert_eq!(c.buf.expect("buffer back").as_slice(), &data[..]);
    }

    #[test]
    fn dropping_the_ring_with_operations_in_flight_drains_them() {
        let Some(mut ring) = ring_or_skip() else {
            return;
        };
        let (_tmp, file) = file_with(&vec![1u8; 4 * ALIGN]);
        let shared = Arc::new(AlignedBuf::zeroed(ALIGN));
        for i in 0..4u64 {
            ring.read(
                Arc::clone(&file),
                AlignedBuf::zeroed(ALIGN),
                i * ALIGN as u64,
                i,
            );
        }
        ring.write(Arc::clone(&file), Arc::clone(&shared), ALIGN, 0, 9);
        ring.submit(false).expect("submit");
        drop(ring);
        // Drained, not leaked: the ring let go of the write buffer (after reaping its completion).
        assert_eq!(Arc::strong_count(&shared), 1);
    }
}

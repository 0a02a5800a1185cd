//! The tier thread's I/O backend: io_uring when the kernel allows it, otherwise plain
//! `pread`/`pwrite` with the same submit/complete shape, so the engine has one code path.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::uring::Ring;

/// One finished operation: the `user_data` it was submitted with and bytes transferred.
#[derive(Debug)]
pub(crate) struct Completion {
    pub user_data: u64,
    pub result: io::Result<usize>,
}

pub(crate) enum Io {
    /// Boxed: the ring is large and there is one `Io` per tier, so the indirection is free.
    Uring(Box<Ring>),
    /// Synchronous fallback; operations run at submission and complete immediately.
    Plain(VecDeque<Completion>),
}

impl Io {
    /// io_uring unless `force_plain` or the ring cannot be set up (seccomp `EPERM`,
    /// `io_uring_disabled`, old kernel `ENOSYS`, memlock limits): then plain I/O, logged.
    pub(crate) fn new(force_plain: bool, entries: u32) -> Io {
        if force_plain {
            tracing::info!("nvme cache: plain I/O forced by config");
            return Io::Plain(VecDeque::new());
        }
        match Ring::new(entries) {
            Ok(r) => Io::Uring(Box::new(r)),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    errno = e.raw_os_error().unwrap_or(0),
                    "nvme cache: io_uring unavailable, falling back to pread/pwrite"
                );
                Io::Plain(VecDeque::new())
            }
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Io::Uring(_) => "io_uring",
            Io::Plain(_) => "plain",
        }
    }

    /// Reads `buf.len()` bytes at `offset`. For io_uring the caller must keep `file` and `buf`
    /// alive and unmoved (heap storage) until the completion for `ud` is returned.
    pub(crate) fn read(&mut self, file: &File, buf: &mut [u8], offset: u64, ud: u64) {
        match self {
            Io::Uring(r) => r.read(file, buf.as_mut_ptr(), buf.len() as u32, offset, ud),
            Io::Plain(done) => done.push_back(Completion {
                user_data: ud,
                result: read_full_at(file, buf, offset),
            }),
        }
    }

    /// Writes `buf` at `offset`; same lifetime contract as [`Io::read`].
    pub(crate) fn write(&mut self, file: &File, buf: &[u8], offset: u64, ud: u64) {
        match self {
            Io::Uring(r) => r.write(file, buf.as_ptr(), buf.len() as u32, offset, ud),
            Io::Plain(done) => done.push_back(Completion {
                user_data: ud,
                result: file.write_all_at(buf, offset).map(|()| buf.len()),
            }),
        }
    }

    /// Submits queued operations; with `wait`, blocks until one completes.
    pub(crate) fn submit(&mut self, wait: bool) -> io::Result<()> {
        match self {
            Io::Uring(r) => r.submit(wait),
            Io::Plain(_) => Ok(()),
        }
    }

    /// Moves finished operations into `out`.
    pub(crate) fn complete(&mut self, out: &mut Vec<Completion>) {
        match self {
            Io::Uring(r) => r.complete(out),
            Io::Plain(done) => out.extend(done.drain(..)),
        }
    }
}

/// `pread` until the buffer is full or end of file (a short count at EOF is returned as is).
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

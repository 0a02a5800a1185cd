//! The tier thread's I/O backend: io_uring when the kernel allows it, otherwise plain
//! `pread`/`pwrite` with the same submit/complete shape, so the engine has one code path.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::buf::AlignedBuf;
use super::completion::Completion;
use super::uring::Ring;

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

    /// Reads `buf.len()` bytes at `offset` into `buf`. The backend owns `file` and `buf` until
    /// the operation completes; `buf` comes back in the [`Completion`] for `ud`.
    pub(crate) fn read(&mut self, file: Arc<File>, mut buf: AlignedBuf, offset: u64, ud: u64) {
        match self {
            Io::Uring(r) => r.read(file, buf, offset, ud),
            Io::Plain(done) => {
                let result = read_full_at(&file, buf.as_mut_slice(), offset);
                done.push_back(Completion {
                    user_data: ud,
                    result,
                    buf: Some(buf),
                });
            }
        }
    }

    /// Writes the first `len` bytes of `buf` at `offset`. The backend holds `file` and `buf`
    /// until the operation completes. Panics if `len` exceeds the buffer.
    pub(crate) fn write(
        &mut self,
        file: Arc<File>,
        buf: Arc<AlignedBuf>,
        len: usize,
        offset: u64,
        ud: u64,
    ) {
        match self {
            Io::Uring(r) => r.write(file, buf, len, offset, ud),
            Io::Plain(done) => {
                let data = &buf.as_slice()[..len];
                done.push_back(Completion {
                    user_data: ud,
                    result: file.write_all_at(data, offset).map(|()| data.len()),
                    buf: None,
                });
            }
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

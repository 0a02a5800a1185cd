//! [`Completion`]: one finished disk operation as every I/O backend reports it (io_uring in
//! `uring.rs`, plain `pread`/`pwrite` in `io.rs`). Its own module so that both backends and the
//! engine depend on it and `uring` does not depend back on `io`.

use std::io;

use super::buf::AlignedBuf;

/// One finished operation: the `user_data` it was submitted with, bytes transferred, and for a
/// read the buffer it filled, handed back now that the backend no longer uses it.
#[derive(Debug)]
pub(crate) struct Completion {
    pub user_data: u64,
    pub result: io::Result<usize>,
    /// The read's buffer (`Some` for every read, `None` for writes).
    pub buf: Option<AlignedBuf>,
}

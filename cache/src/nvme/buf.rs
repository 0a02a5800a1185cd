//! [`AlignedBuf`]: a heap buffer whose start address, length and file offset are 4 KiB aligned,
//! as O_DIRECT requires. Built without `unsafe`: over-allocate by one alignment unit and use the
//! aligned window (the `Vec` never grows, so the window never moves — io_uring relies on that).
//! [`ReadBufs`] keeps the buffers of finished point reads for the next ones.

use super::record::ALIGN;

#[derive(Debug)]
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (rounded up to the alignment).
    pub(crate) fn zeroed(len: usize) -> Self {
        let len = super::record::align_up(len.max(1));
        let raw = vec![0u8; len + ALIGN];
        // For a `u8` pointer `align_offset` is always computable and below ALIGN.
        let off = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, off, len }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Buffers for point reads, reused: a read takes one and a successful read's completion gives it
/// back, so a tier hit does not allocate or zero a read buffer. Up to [`ReadBufs::KEEP`] buffers
/// of [`ReadBufs::SIZE`] are made, once each; a read that finds none free (more reads in flight
/// than that, or a buffer lost to a failed read, which is dropped), and a read larger than `SIZE`,
/// gets a buffer of exactly its length as before. What a read's bytes are used for is copied out
/// before the buffer comes back (a value must not pin a buffer many times its size in a hot
/// cache that charges its length).
#[derive(Debug, Default)]
pub(crate) struct ReadBufs {
    free: Vec<AlignedBuf>,
    /// Buffers of `SIZE` made so far.
    made: usize,
}

impl ReadBufs {
    /// Size of a reused buffer: rows up to ~28 KiB fit.
    pub(crate) const SIZE: usize = 32 << 10;
    /// Buffers made and kept at most (36 KiB each with the alignment slack: 2.25 MiB): one read
    /// in flight per connection at P2's 64 connections.
    const KEEP: usize = 64;

    /// A buffer for reading `len` bytes (its length is `len` rounded up to the alignment). A
    /// reused one holds whatever an earlier read left in it: only the bytes a read reports are to
    /// be used.
    pub(crate) fn take(&mut self, len: usize) -> AlignedBuf {
        let want = super::record::align_up(len.max(1));
        if want > Self::SIZE {
            return AlignedBuf::zeroed(want);
        }
        let mut buf = match self.free.pop() {
            Some(buf) => buf,
            None if self.made < Self::KEEP => {
                self.made += 1;
                AlignedBuf::zeroed(Self::SIZE)
            }
            None => return AlignedBuf::zeroed(want),
        };
        buf.len = want;
        buf
    }

    /// Gives a finished read's buffer back (dropped when it is not a reusable size or enough are
    /// kept).
    pub(crate) fn give(&mut self, buf: AlignedBuf) {
        // One of ours, made by `AlignedBuf::zeroed(SIZE)` (its window may be one unit longer
        // when the allocation happened to start aligned).
        let ours = buf.raw.len() == Self::SIZE + ALIGN;
        if ours && self.free.len() < Self::KEEP {
            self.free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_aligned_and_zeroed() {
        for n in [1, 100, 4096, 10_000] {
            let b = AlignedBuf::zeroed(n);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.len() % ALIGN, 0);
            assert!(b.len() >= n);
            assert!(b.as_slice().iter().all(|x| *x == 0));
        }
    }

    #[test]
    fn read_buffers_are_reused_at_the_asked_length() {
        let mut bufs = ReadBufs::default();
        let mut a = bufs.take(100);
        assert_eq!(a.len(), ALIGN);
        a.as_mut_slice()[0] = 7;
        let at = a.as_slice().as_ptr();
        bufs.give(a);
        let b = bufs.take(ALIGN + 1);
        assert_eq!(b.as_slice().as_ptr(), at, "the same allocation again");
        assert_eq!(b.len(), 2 * ALIGN);
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_slice()[0], 7, "not zeroed again");
        // Larger reads get their own buffer, which is not kept.
        let big = bufs.take(ReadBufs::SIZE + 1);
        assert_eq!(big.len(), ReadBufs::SIZE + ALIGN);
        bufs.give(big);
        bufs.give(b);
        assert_eq!(bufs.free.len(), 1);
        // Kept by the length of its allocation, whatever the window's offset.
        for off in [0, 1] {
            let raw = vec![0u8; ReadBufs::SIZE + ALIGN];
            let off = if off == 0 {
                0
            } else {
                raw.as_ptr().align_offset(ALIGN).max(1)
            };
            bufs.give(AlignedBuf {
                raw,
                off,
                len: ALIGN,
            });
        }
        assert_eq!(bufs.free.len(), 3);
        for _ in 0..2 * ReadBufs::KEEP {
            bufs.give(AlignedBuf::zeroed(ReadBufs::SIZE));
        }
        assert_eq!(bufs.free.len(), ReadBufs::KEEP);
    }

    #[test]
    fn at_most_keep_reusable_buffers_are_made() {
        let mut bufs = ReadBufs::default();
        let held: Vec<AlignedBuf> = (0..ReadBufs::KEEP).map(|_| bufs.take(100)).collect();
        assert!(held.iter().all(|b| b.raw.len() == ReadBufs::SIZE + ALIGN));
        // More reads in flight than that: a buffer of the read's own length, as before the pool.
        let extra = bufs.take(100);
        assert_eq!(extra.raw.len(), 2 * ALIGN);
        bufs.give(extra);
        assert!(bufs.free.is_empty(), "not kept");
        for b in held {
            bufs.give(b);
        }
        assert_eq!(bufs.free.len(), ReadBufs::KEEP);
        assert_eq!(bufs.take(100).raw.len(), ReadBufs::SIZE + ALIGN);
    }
}

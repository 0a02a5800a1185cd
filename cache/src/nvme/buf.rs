//! [`AlignedBuf`]: a heap buffer whose start address, length and file offset are 4 KiB aligned,
//! as O_DIRECT requires. Built without `unsafe`: over-allocate by one alignment unit and use the
//! aligned window (the `Vec` never grows, so the window never moves — io_uring relies on that).

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
}

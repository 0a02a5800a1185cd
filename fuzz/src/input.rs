//! A byte cursor for structure-aware targets: each call takes the next input byte (0 once the
//! input is used up), so libFuzzer's mutations map to small structural changes.

/// Reads choices from fuzz input bytes.
#[derive(Debug, Clone)]
pub struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Gen<'a> {
    /// A cursor at the start of `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Gen { data, pos: 0 }
    }

    /// The next byte, 0 when the input is exhausted.
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Whether the input has bytes left.
    #[must_use]
    pub fn more(&self) -> bool {
        self.pos < self.data.len()
    }

    /// The bytes not read yet.
    #[must_use]
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }
}

//! The byte splicer: a list of edits against the original body, applied in one pass into an
//! exactly pre-sized buffer.
//!
//! An edit removes `remove` bytes at offset `at` (usually zero) and inserts a piece there. Pieces
//! live in a shared arena so one stamp text can be referenced by thousands of rows without being
//! copied per row until the final write. Everything between edits is copied verbatim.

use std::ops::Range;

use smallvec::SmallVec;
use sonic_rs::LazyValue;

use crate::RewriteError;

/// Where a lazily parsed value sits in `body`, as a byte range.
///
/// sonic-rs hands out sub-slices of the input it was given, so the offset is a pointer
/// difference; its bounds are checked (never trusted) so that a mismatch becomes
/// [`RewriteError::Internal`] instead of a wrong splice.
///
/// The range is trimmed of trailing whitespace: sonic-rs's raw text of a number inside an array
/// can include the whitespace that follows it (`[1 ]` yields `"1 "`).
pub(crate) fn span_of(body: &[u8], value: &LazyValue<'_>) -> Result<Range<usize>, RewriteError> {
    span_in(body, raw_trimmed(value))
}

/// Where `raw`, a slice of `body`'s text ([`crate::raw`] hands those out), sits in `body`: the
/// same checked pointer difference as [`span_of`].
pub(crate) fn span_in(body: &[u8], raw: &str) -> Result<Range<usize>, RewriteError> {
    let raw = raw.as_bytes();
    let start = (raw.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let end = start.checked_add(raw.len());
    match end {
        // In bounds, `body[start..end]` is the very memory `raw` lies in (no compare needed).
        Some(end) if end <= body.len() => Ok(start..end),
        _ => Err(RewriteError::Internal {
            message: "value does not lie inside the body",
        }),
    }
}

/// A value's raw JSON text without the trailing whitespace sonic-rs may leave on numbers.
pub(crate) fn raw_trimmed<'v>(value: &'v LazyValue<'_>) -> &'v str {
    value.as_raw_str().trim_end_matches([' ', '\t', '\n', '\r'])
}

/// Whether a value is the literal `null`.
pub(crate) fn is_null(value: &LazyValue<'_>) -> bool {
    raw_trimmed(value) == "null"
}

#[derive(Debug)]
struct Edit {
    at: usize,
    remove: usize,
    piece: Range<usize>,
}

/// The pieces' bytes. A query's pieces (a predicate and its wrappers) fit inline, so a
/// request's splice allocates only its output; a write's stamps spill over to the heap.
pub(crate) type Arena = SmallVec<[u8; 192]>;

/// Accumulates edits against `src`; [`Splice::finish`] materialises the output.
#[derive(Debug)]
pub(crate) struct Splice<'a> {
    src: &'a [u8],
    edits: SmallVec<[Edit; 4]>,
    arena: Arena,
}

impl<'a> Splice<'a> {
    pub(crate) fn new(src: &'a [u8]) -> Self {
        Self {
            src,
            edits: SmallVec::new(),
            arena: Arena::new(),
        }
    }

    /// Appends bytes to the arena and returns their range, for use by [`Splice::insert_piece`].
    pub(crate) fn piece(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        start..self.arena.len()
    }

    /// Direct access to the arena, for building a piece in place; pair with [`Splice::mark`].
    pub(crate) fn arena(&mut self) -> &mut Arena {
        &mut self.arena
    }

    /// The arena range written since `start` (an earlier `arena().len()`).
    pub(crate) fn mark(&self, start: usize) -> Range<usize> {
        start..self.arena.len()
    }

    /// Inserts an arena piece at `at`. Edits at the same offset keep the order they were added.
    pub(crate) fn insert_piece(&mut self, at: usize, piece: Range<usize>) {
        self.edits.push(Edit {
            at,
            remove: 0,
            piece,
        });
    }

    /// Inserts `bytes` at `at`.
    pub(crate) fn insert(&mut self, at: usize, bytes: &[u8]) {
        let piece = self.piece(bytes);
        self.insert_piece(at, piece);
    }

    /// Replaces `range` of the source with an arena piece.
    pub(crate) fn replace_piece(&mut self, range: Range<usize>, piece: Range<usize>) {
        self.edits.push(Edit {
            at: range.start,
            remove: range.end.saturating_sub(range.start),
            piece,
        });
    }

    /// Whether any edit was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Applies the edits, in offset order, into a buffer allocated once at its final size.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, RewriteError> {
        // Callers add edits in document order already; the stable sort is a cheap safety net.
        self.edits.sort_by_key(|e| e.at);
        let mut len = self.src.len();
        for e in &self.edits {
            len = len
                .checked_add(e.piece.len())
                .and_then(|l| l.checked_sub(e.remove))
                .ok_or(RewriteError::Internal {
                    message: "splice length overflow",
                })?;
        }
        let mut out = Vec::with_capacity(len);
        let mut cursor = 0usize;
        for e in &self.edits {
            let (Some(keep), Some(piece)) =
                (self.src.get(cursor..e.at), self.arena.get(e.piece.clone()))
            else {
                return Err(RewriteError::Internal {
                    message: "overlapping or out-of-range splice",
                });
            };
            out.extend_from_slice(keep);
            out.extend_from_slice(piece);
            cursor = e.at + e.remove;
        }
        let rest = self.src.get(cursor..).ok_or(RewriteError::Internal {
            message: "splice past the end of the body",
        })?;
        out.extend_from_slice(rest);
        debug_assert_eq!(out.len(), len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_edits_in_offset_order() {
        let src = b"0123456789";
        let mut s = Splice::new(src);
        let p = s.piece(b"<x>");
        s.insert(5, b"[a]");
        s.insert_piece(2, p.clone());
        s.insert_piece(5, p);
        s.replace_piece(8..10, 0..0);
        assert_eq!(s.finish().unwrap(), b"01<x>234[a]<x>567");
    }

    #[test]
    fn empty_splice_copies() {
        let s = Splice::new(b"abc");
        assert!(s.is_empty());
        assert_eq!(s.finish().unwrap(), b"abc");
    }

    #[test]
    fn overlapping_edits_are_an_error_not_a_panic() {
        let mut s = Splice::new(b"abcdef");
        let p = s.piece(b"x");
        s.replace_piece(1..4, p.clone());
        s.insert_piece(2, p);
        assert!(matches!(s.finish(), Err(RewriteError::Internal { .. })));
        let mut s = Splice::new(b"abc");
        s.insert(10, b"x");
        assert!(matches!(s.finish(), Err(RewriteError::Internal { .. })));
    }
}

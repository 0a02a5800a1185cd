//! The byte splicer: a list of edits against the original body, applied in one pass into an
//! exactly pre-sized buffer.
//!
//! An edit removes `remove` bytes at offset `at` (usually zero) and inserts a piece there. Pieces
//! live in a shared arena so one stamp text can be referenced by thousands of rows without being
//! copied per row until the final write. Everything between edits is copied verbatim.

use std::ops::Range;

use bytes::Bytes;
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

    /// Puts the edits in offset order and returns the output's length.
    fn sort_and_measure(&mut self) -> Result<usize, RewriteError> {
        // Callers add edits in document order already; the stable sort is a cheap safety net.
        self.edits.sort_by_key(|e| e.at);
        self.edits.iter().try_fold(self.src.len(), |len, e| {
            len.checked_add(e.piece.len())
                .and_then(|l| l.checked_sub(e.remove))
                .ok_or(RewriteError::Internal {
                    message: "splice length overflow",
                })
        })
    }

    /// Calls `run` with the output's runs in order (empty ones too): the source between edits
    /// and the edits' pieces, each edit checked on the way. The edits must be sorted
    /// ([`Splice::sort_and_measure`]).
    fn each_run(&self, mut run: impl FnMut(Run)) -> Result<(), RewriteError> {
        let mut cursor = 0usize;
        for e in &self.edits {
            if cursor > e.at || e.at > self.src.len() || self.arena.get(e.piece.clone()).is_none() {
                return Err(RewriteError::Internal {
                    message: "overlapping or out-of-range splice",
                });
            }
            run(Run::Source(cursor..e.at));
            run(Run::Piece(e.piece.clone()));
            cursor = e.at + e.remove;
        }
        if cursor > self.src.len() {
            return Err(RewriteError::Internal {
                message: "splice past the end of the body",
            });
        }
        run(Run::Source(cursor..self.src.len()));
        Ok(())
    }

    /// Applies the edits, in offset order, into a buffer allocated once at its final size,
    /// copying each run as it comes (not collected first: on a short body that bookkeeping cost
    /// more than the copy).
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, RewriteError> {
        let len = self.sort_and_measure()?;
        let mut out = Vec::with_capacity(len);
        self.each_run(|r| out.extend_from_slice(r.of(self.src, &self.arena)))?;
        debug_assert_eq!(out.len(), len);
        Ok(out)
    }

    /// The output without materialising it: the runs over `src` (the very buffer this splice
    /// reads, shared) and the pieces. `src` must be the source this splice was made over.
    pub(crate) fn into_spliced(mut self, src: &Bytes) -> Result<Spliced, RewriteError> {
        if src.as_ptr() != self.src.as_ptr() || src.len() != self.src.len() {
            return Err(RewriteError::Internal {
                message: "splice kept over another buffer",
            });
        }
        let len = self.sort_and_measure()?;
        let mut runs = Runs::new();
        self.each_run(|r| {
            if !r.range().is_empty() {
                runs.push(r);
            }
        })?;
        Ok(Spliced {
            src: src.clone(),
            arena: self.arena,
            runs,
            len,
        })
    }
}

/// One run of a splice's output.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    /// Bytes of the source.
    Source(Range<usize>),
    /// Bytes of the arena.
    Piece(Range<usize>),
}

impl Run {
    fn range(&self) -> &Range<usize> {
        match self {
            Run::Source(r) | Run::Piece(r) => r,
        }
    }

    /// The run's bytes (its range was checked against both when the run was made).
    fn of<'s>(&self, src: &'s [u8], arena: &'s [u8]) -> &'s [u8] {
        match self {
            Run::Source(r) => &src[r.clone()],
            Run::Piece(r) => &arena[r.clone()],
        }
    }
}

/// A single query's stable-read splice makes at most seven runs (source, `["And",[`, the
/// filters, `,predicate]]`, source, consistency, source); a multi-query's more.
type Runs = SmallVec<[Run; 8]>;

/// A splice's output kept as the runs it is made of, over the shared source buffer and the
/// splice's pieces: what [`Splice::finish`] would copy into one buffer, written out run by run
/// instead (a vectored write sends it without that copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spliced {
    src: Bytes,
    arena: Arena,
    runs: Runs,
    len: usize,
}

impl Spliced {
    /// The output's length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the output is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The output's runs, in order (none empty).
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.runs.iter().map(|r| r.of(&self.src, &self.arena))
    }

    /// The output in one buffer (what [`Splice::finish`] gives).
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for s in self.slices() {
            out.extend_from_slice(s);
        }
        out
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

    /// The runs are what `finish` writes, none empty, over the shared source (not a copy);
    /// they are refused over a buffer the splice was not made over, and bad edits are the
    /// same errors as `finish`'s.
    #[test]
    fn runs_are_the_finished_output_over_the_shared_source() {
        let src = Bytes::from_static(b"{\"a\":1,\"b\":2}");
        let build = || {
            let mut s = Splice::new(&src);
            s.insert(1, b"\"c\":0,");
            let p = s.piece(b"9");
            s.replace_piece(5..6, p);
            s.insert(src.len() - 1, b"");
            s
        };
        let out = build().into_spliced(&src).unwrap();
        assert_eq!(out.to_vec(), build().finish().unwrap());
        assert_eq!(out.to_vec(), b"{\"c\":0,\"a\":9,\"b\":2}");
        assert_eq!(out.len(), out.to_vec().len());
        let slices: Vec<&[u8]> = out.slices().collect();
        assert!(slices.iter().all(|s| !s.is_empty()), "{slices:?}");
        assert_eq!(slices[0].as_ptr(), src.as_ptr(), "the source is not copied");
        let other = Bytes::copy_from_slice(&src);
        assert!(build().into_spliced(&other).is_err());
        let mut bad = Splice::new(&src);
        bad.insert(src.len() + 1, b"x");
        assert!(matches!(
            bad.into_spliced(&src),
            Err(RewriteError::Internal { .. })
        ));
    }

    proptest::proptest! {
        /// Any edits, in any order, overlapping or out of range or not: the runs hold what
        /// `finish` writes, none empty, or both refuse the splice.
        #[test]
        fn runs_and_finish_agree(
            len in 0usize..40,
            edits in proptest::collection::vec((0usize..48, 0usize..6, 0usize..5), 0..6),
        ) {
            let src = Bytes::from((0..len).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
            let build = || {
                let mut s = Splice::new(&src);
                for (i, &(at, remove, piece)) in edits.iter().enumerate() {
                    let p = s.piece(&vec![b'0' + i as u8; piece]);
                    s.replace_piece(at..at + remove, p);
                }
                s
            };
            match (build().finish(), build().into_spliced(&src)) {
                (Ok(whole), Ok(runs)) => {
                    proptest::prop_assert_eq!(runs.len(), whole.len());
                    proptest::prop_assert!(runs.slices().all(|r| !r.is_empty()));
                    proptest::prop_assert_eq!(runs.to_vec(), whole);
                }
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                (a, b) => proptest::prop_assert!(false, "finish {:?}, runs {:?}", a, b),
            }
        }
    }
}

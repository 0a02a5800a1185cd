//! A number read from a 32-byte window by masks: the fast path of `raw::number_end` for the
//! numbers a vector holds (`-0.012345678901234567`, 21 bytes as clients print a float). One
//! SSE2 compare marks every digit of the window; the number's parts are then runs of that mask,
//! measured by trailing-zero counts instead of byte by byte or word by word (61 instructions per
//! such number, against 87 through the word-at-a-time path;
//! `bench/results/2026-12-07-number-window.md`).
//! The loads are the crate's only `unsafe` (`digit_mask_at`). Start at [`number_in_window`].

/// Bytes a window holds.
pub(super) const WINDOW: usize = 32;

/// The end of the number starting at `w[0]` when the whole of it, and the byte after it, sit in
/// the window and it reads as JSON's grammar; `None` otherwise (an invalid number, a leading
/// zero before digits, or one that may run past the window), and the caller reads it the long
/// way, which decides.
#[inline]
pub(super) fn number_in_window(w: &[u8; WINDOW]) -> Option<usize> {
    // Bit `k` set: `w[k]` is not a digit; set above the window too, so every run ends by 32.
    let stops = !digit_mask(w);
    let run = |from: usize| (stops >> from).trailing_zeros() as usize;
    let mut j = usize::from(w[0] == b'-');
    let int = run(j);
    // No digit, or a leading zero followed by more digits (`01`): the long way rejects it.
    if int == 0 || (w[j] == b'0' && int > 1) {
        return None;
    }
    j += int;
    if j < WINDOW && w[j] == b'.' {
        let frac = run(j + 1);
        if frac == 0 {
            return None;
        }
        j += 1 + frac;
    }
    if j < WINDOW && matches!(w[j], b'e' | b'E') {
        let mut k = j + 1;
        if k < WINDOW && matches!(w[k], b'+' | b'-') {
            k += 1;
        }
        let exp = run(k);
        if exp == 0 {
            return None;
        }
        j = k + exp;
    }
    // At the window's end the number may go on: only a stop inside it is an end.
    (j < WINDOW).then_some(j)
}

/// Bit `k` set when `w[k]` is an ASCII digit.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
fn digit_mask(w: &[u8; WINDOW]) -> u64 {
    // SAFETY: `w` is 32 readable bytes, all `digit_mask_at` reads.
    unsafe { digit_mask_at(w.as_ptr()) }
}

/// Bit `k` set when `w[k]` is an ASCII digit (one byte at a time where there is no SSE2).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn digit_mask(w: &[u8; WINDOW]) -> u64 {
    portable_digit_mask(w)
}

#[cfg(any(test, not(target_arch = "x86_64")))]
fn portable_digit_mask(w: &[u8; WINDOW]) -> u64 {
    w.iter()
        .enumerate()
        .fold(0, |m, (k, c)| m | u64::from(c.is_ascii_digit()) << k)
}

/// The digit mask of the 32 bytes at `p`: two unaligned 16-byte loads, each moved so that `'0'`
/// to `'9'` become the ten smallest signed bytes, compared against the eleventh, and gathered
/// one bit per byte.
///
/// # Safety
///
/// `p` must point to 32 readable bytes; no alignment is needed (the loads are unaligned). SSE2
/// is part of every x86_64 target, so no CPU check is needed (`target_feature` only lets the
/// compiler know, so the arithmetic intrinsics need no `unsafe` of their own).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "sse2")]
#[inline]
unsafe fn digit_mask_at(p: *const u8) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // `'0' + 0x50` is 0x80 (`i8::MIN`), so the digits become -128..=-119 and nothing else does.
    let shift = _mm_set1_epi8(0x50);
    let limit = _mm_set1_epi8(i8::MIN + 10);
    // SAFETY: the caller promises 32 readable bytes at `p`: these read `p[0..16]` and
    // `p[16..32]`.
    let (lo, hi) = unsafe {
        (
            _mm_loadu_si128(p.cast::<__m128i>()),
            _mm_loadu_si128(p.add(16).cast::<__m128i>()),
        )
    };
    let lo = _mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(lo, shift), limit));
    let hi = _mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(hi, shift), limit));
    // Each mask is 16 bits in the low half of an `i32`.
    u64::from(lo as u16) | u64::from(hi as u16) << 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SIMD mask marks exactly the digits, for any bytes (0x80 and up among them).
        #[test]
        fn the_mask_marks_exactly_the_digits(w in prop::array::uniform32(any::<u8>())) {
            prop_assert_eq!(digit_mask(&w), portable_digit_mask(&w));
        }

        /// A window of digits and number characters: it reads a number exactly when the long
        /// way ends one inside the window, and ends it at the same place (so it neither accepts
        /// more nor gives up on more than a run to the window's end).
        #[test]
        fn a_window_ends_numbers_where_the_long_way_does(
            w in prop::array::uniform32(prop::sample::select(b"0123456789.eE+-,]x".to_vec())),
        ) {
            let long = super::super::number_end_long(&w, 0).filter(|&end| end < WINDOW);
            prop_assert_eq!(number_in_window(&w), long);
        }
    }

    #[test]
    fn a_float_as_clients_print_it_is_read_in_the_window() {
        let mut w = [b' '; WINDOW];
        w[..22].copy_from_slice(b"-0.012345678901234567,");
        assert_eq!(number_in_window(&w), Some(21));
        w[..11].copy_from_slice(b"1.5e-7]    ");
        assert_eq!(number_in_window(&w), Some(6));
        // Runs to the window's end: the long way decides.
        assert_eq!(number_in_window(&[b'7'; WINDOW]), None);
        // Invalid or leading zero: the long way rejects it.
        for bad in [&b"01"[..], b"-", b"1.", b"1e", b"1e+", b"-x", b".5"] {
            let mut w = [b','; WINDOW];
            w[..bad.len()].copy_from_slice(bad);
            assert_eq!(
                number_in_window(&w),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! On-disk record format of the NVMe segment log, the check of a record read back ([`verify`]),
//! and the recovery scanner.
//!
//! A segment file is a sequence of records, each:
//!
//! ```text
//! 0   magic     u32 LE  0x4C59_5243 ("LYRC")
//! 4   kind      u8      1 = put, 2 = delete (tombstone), 3 = clear namespace
//! 5   set       u8      Set tag
//! 6   ns_len    u16 LE
//! 8   id_len    u16 LE
//! 10  flags     u16 LE  bit 0: the writer vouched for the value (`Tier::put_vouched`); others 0
//! 12  value_len u32 LE
//! 16  crc32     u32 LE  over bytes 0..16 and the body
//! 20  body      ns ++ id ++ value
//! ```
//!
//! The flags sit under the checksum, so a flipped bit fails the record rather than vouching for a
//! value nobody vouched for. Before the flags existed this field was always zero, which reads as
//! "not vouched": records of an older build are checked by their reader like any other value.
//!
//! Records are packed back to back inside a write chunk; a chunk is zero-padded to the 4 KiB
//! alignment O_DIRECT needs, so a zero magic means "skip to the next 4 KiB boundary". Anything
//! else that does not parse (bad magic, length past the end of the file, checksum mismatch) is a
//! torn tail: the scan of that segment stops there.

use bytes::Bytes;

use crate::{CacheError, Set, Stored};

pub(crate) const MAGIC: u32 = 0x4C59_5243;
pub(crate) const HEADER_LEN: usize = 20;
/// O_DIRECT alignment for offsets, lengths and buffer addresses (covers 512 B and 4 KiB devices).
pub(crate) const ALIGN: usize = 4096;
/// Bit 0 of the flags field: the writer vouched for the value.
const VOUCHED: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Put = 1,
    Delete = 2,
    Clear = 3,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Put),
            2 => Some(Kind::Delete),
            3 => Some(Kind::Clear),
            _ => None,
        }
    }
}

/// Encoded length of a record.
pub(crate) fn record_len(ns: &str, id: &str, value_len: usize) -> usize {
    HEADER_LEN + ns.len() + id.len() + value_len
}

/// The value of one record and whether its writer vouched for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Value<'a> {
    pub bytes: &'a [u8],
    pub vouched: bool,
}

impl<'a> Value<'a> {
    /// A value nobody vouched for (deletes and clears carry an empty one).
    pub fn plain(bytes: &'a [u8]) -> Self {
        Value {
            bytes,
            vouched: false,
        }
    }
}

/// Writes a record into `out` (which must be exactly `record_len` long). Key lengths are
/// checked by the caller (`key::check_key`), value length by the tier's `max_value_bytes`.
pub(crate) fn encode(out: &mut [u8], kind: Kind, set: Set, ns: &str, id: &str, value: Value<'_>) {
    let flags = if value.vouched { VOUCHED } else { 0 };
    let value = value.bytes;
    let (ns_b, id_b) = (ns.as_bytes(), id.as_bytes());
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4] = kind as u8;
    out[5] = set.tag();
    out[6..8].copy_from_slice(&(ns_b.len() as u16).to_le_bytes());
    out[8..10].copy_from_slice(&(id_b.len() as u16).to_le_bytes());
    out[10..12].copy_from_slice(&flags.to_le_bytes());
    out[12..16].copy_from_slice(&(value.len() as u32).to_le_bytes());
    let mut body = HEADER_LEN;
    for part in [ns_b, id_b, value] {
        out[body..body + part.len()].copy_from_slice(part);
        body += part.len();
    }
    let crc = checksum(&out[..16], &out[HEADER_LEN..body]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(body);
    h.finalize()
}

/// A parsed, checksum-verified record borrowing from the buffer it was read from.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub kind: Kind,
    pub set: Set,
    pub ns: &'a str,
    pub id: &'a str,
    /// Offset of the value within the parsed slice, and its length.
    pub value_at: usize,
    pub value_len: usize,
    /// The writer vouched for the value (flags bit 0).
    pub vouched: bool,
    /// Total encoded length.
    pub len: usize,
}

/// Outcome of parsing at one position.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    Record(Record<'a>),
    /// Zero magic: chunk padding.
    Padding,
    /// Not a valid record (torn write or garbage).
    Invalid(&'static str),
}

/// Parses the record that starts at `buf[0]`.
pub(crate) fn parse(buf: &[u8]) -> Parsed<'_> {
    // A record starts with the magic, whose first byte is not zero; a zero byte is chunk padding.
    // Checking one byte (not four) matters: padding can be 1-3 bytes long when a chunk ends just
    // short of the alignment, and then the next chunk's magic follows within four bytes.
    if buf.first().is_none_or(|b| *b == 0) {
        return Parsed::Padding;
    }
    if buf.len() < HEADER_LEN {
        return Parsed::Invalid("truncated header");
    }
    let u16_at = |i: usize| usize::from(u16::from_le_bytes([buf[i], buf[i + 1]]));
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    if u32_at(0) != MAGIC {
        return Parsed::Invalid("bad magic");
    }
    let (Some(kind), Some(set)) = (Kind::from_u8(buf[4]), Set::from_tag(buf[5])) else {
        return Parsed::Invalid("bad kind or set");
    };
    let (ns_len, id_len, value_len) = (u16_at(6), u16_at(8), u32_at(12) as usize);
    let len = HEADER_LEN + ns_len + id_len + value_len;
    if buf.len() < len {
        return Parsed::Invalid("record runs past the end");
    }
    if checksum(&buf[..16], &buf[HEADER_LEN..len]) != u32_at(16) {
        return Parsed::Invalid("checksum mismatch");
    }
    let ns_end = HEADER_LEN + ns_len;
    let (Ok(ns), Ok(id)) = (
        std::str::from_utf8(&buf[HEADER_LEN..ns_end]),
        std::str::from_utf8(&buf[ns_end..ns_end + id_len]),
    ) else {
        return Parsed::Invalid("key is not utf-8");
    };
    Parsed::Record(Record {
        kind,
        set,
        ns,
        id,
        value_at: ns_end + id_len,
        value_len,
        vouched: u16_at(10) as u16 & VOUCHED != 0,
        len,
    })
}

/// Where a verified record's value lies within it, and whether its writer vouched for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verified {
    at: usize,
    len: usize,
    vouched: bool,
}

impl Verified {
    /// The value copied out of `record` (the bytes [`verify`] checked).
    pub(crate) fn value(self, record: &[u8]) -> Bytes {
        Bytes::copy_from_slice(&record[self.at..self.at + self.len])
    }

    /// [`Verified::value`] with the writer's mark.
    pub(crate) fn stored(self, record: &[u8]) -> Stored {
        Stored {
            value: self.value(record),
            vouched: self.vouched,
        }
    }
}

/// Checks a record read back for `id` and says where its value is.
pub(crate) fn verify(bytes: &[u8], ns: &(Set, Box<str>), id: &str) -> Result<Verified, CacheError> {
    match parse(bytes) {
        Parsed::Record(r)
            if r.kind == Kind::Put && r.set == ns.0 && r.ns == &*ns.1 && r.id == id =>
        {
            Ok(Verified {
                at: r.value_at,
                len: r.value_len,
                vouched: r.vouched,
            })
        }
        Parsed::Record(_) => Err(CacheError::Corrupt("record key mismatch".into())),
        Parsed::Padding => Err(CacheError::Corrupt("record is zeroed".into())),
        Parsed::Invalid(why) => Err(CacheError::Corrupt(why.into())),
    }
}

/// Result of scanning one segment file's bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Where valid data ends.
    pub valid_end: usize,
    /// Whether the scan stopped at an invalid record (a torn tail) rather than the end.
    pub torn: bool,
}

/// Walks every valid record of a segment, calling `f(offset, record)` in log order.
pub(crate) fn scan(buf: &[u8], mut f: impl FnMut(usize, &Record<'_>)) -> ScanEnd {
    let mut pos = 0;
    while pos < buf.len() {
        match parse(&buf[pos..]) {
            Parsed::Record(r) => {
                f(pos, &r);
                pos += r.len;
            }
            Parsed::Padding => pos = (pos / ALIGN + 1) * ALIGN,
            Parsed::Invalid(why) => {
                tracing::warn!(
                    offset = pos,
                    why,
                    "nvme cache: torn record skipped on recovery"
                );
                return ScanEnd {
                    valid_end: pos,
                    torn: true,
                };
            }
        }
    }
    ScanEnd {
        valid_end: buf.len(),
        torn: false,
    }
}

/// Rounds up to the O_DIRECT alignment.
pub(crate) fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind, ns: &str, id: &str, v: &[u8]) -> Vec<u8> {
        let mut out = vec![0; record_len(ns, id, v.len())];
        encode(&mut out, kind, Set::Chunks, ns, id, Value::plain(v));
        out
    }

    #[test]
    fn encode_parse_round_trip() {
        let b = rec(Kind::Put, "ns", "id-1", b"hello");
        let Parsed::Record(r) = parse(&b) else {
            panic!("parse failed")
        };
        assert_eq!(
            (r.kind, r.set, r.ns, r.id),
            (Kind::Put, Set::Chunks, "ns", "id-1")
        );
        assert_eq!(&b[r.value_at..r.value_at + r.value_len], b"hello");
        assert_eq!(r.len, b.len());
        assert!(!r.vouched);
    }

    #[test]
    fn the_vouched_flag_round_trips_under_the_checksum() {
        let value = Value {
            bytes: b"{}",
            vouched: true,
        };
        let mut b = vec![0; record_len("ns", "id", 2)];
        encode(&mut b, Kind::Put, Set::Documents, "ns", "id", value);
        let Parsed::Record(r) = parse(&b) else {
            panic!("parse failed")
        };
        assert!(r.vouched);
        // A record written before the flags existed (the field zero) reads as not vouched, and a
        // flag turned on after writing breaks the checksum instead of vouching.
        let mut plain = rec(Kind::Put, "n", "a", b"{}");
        let Parsed::Record(r) = parse(&plain) else {
            panic!("parse failed")
        };
        assert!(!r.vouched);
        plain[10] |= 1;
        assert!(matches!(
            parse(&plain),
            Parsed::Invalid("checksum mismatch")
        ));
    }

    #[test]
    fn scan_skips_padding_and_stops_at_torn_tail() {
        let mut seg = rec(Kind::Put, "n", "a", b"1");
        seg.resize(ALIGN, 0); // padded chunk
        seg.extend(rec(Kind::Put, "n", "b", b"22"));
        let good_end = seg.len();
        let mut torn = rec(Kind::Put, "n", "c", b"333333");
        torn.truncate(torn.len() - 2); // the write was cut short
        seg.extend(torn);
        let mut seen = Vec::new();
        let end = scan(&seg, |off, r| seen.push((off, r.id.to_string())));
        assert_eq!(seen, vec![(0, "a".into()), (ALIGN, "b".into())]);
        assert_eq!(
            end,
            ScanEnd {
                valid_end: good_end,
                torn: true
            }
        );
    }

    #[test]
    fn padding_shorter_than_the_magic_is_skipped() {
        // A chunk whose records end 1-3 bytes before the alignment boundary.
        for pad in 1..=3 {
            let first = rec(
                Kind::Put,
                "n",
                "a",
                &vec![b'x'; ALIGN - HEADER_LEN - 2 - pad],
            );
            assert_eq!(first.len() + pad, ALIGN);
            let mut seg = first;
            seg.resize(ALIGN, 0);
            seg.extend(rec(Kind::Put, "n", "b", b"2"));
            let mut seen = Vec::new();
            let end = scan(&seg, |off, r| seen.push((off, r.id.to_string())));
            assert_eq!(
                seen,
                vec![(0, "a".into()), (ALIGN, "b".into())],
                "pad {pad}"
            );
            assert!(!end.torn, "pad {pad}");
        }
        assert!(matches!(parse(&[0, 7, 7]), Parsed::Padding));
        assert!(matches!(parse(&[7, 7, 7]), Parsed::Invalid(_)));
    }

    #[test]
    fn flipped_bit_fails_checksum() {
        let mut b = rec(Kind::Put, "n", "a", b"value");
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(parse(&b), Parsed::Invalid("checksum mismatch")));
    }
}

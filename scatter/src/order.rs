//! Row ordering for the gather/merge: which key ranks a row, derived from `rank_by`, and the
//! total order used to compare rows from different shards.
//!
//! | `rank_by` | [`RowOrder`] | key |
//! |---|---|---|
//! | `[attr, "ANN" \| "kNN", ...]` | [`RowOrder::DistAsc`] | `$dist`, ascending |
//! | `[attr, "asc" \| "desc"]`, `[[attr, dir], ...]` | [`RowOrder::Attributes`] | the attribute values; nulls first ascending, last descending (as upstream) |
//! | anything else (BM25, Sum, Max, Product, SparseKNN, filter-as-score, ...) and RRF output | [`RowOrder::ScoreDesc`] | `$score` (RRF rows) or `$dist`, whichever the row carries first, descending |
//!
//! A row without its numeric key sorts after every row that has one. Ties are broken by id,
//! ascending: u64 ids numerically, then string ids by UTF-8 bytes, then anything else by raw
//! text. Attribute values compare by type first (null < bool < number < string < other), then
//! by value: integers exactly (`i128`), mixed integer/float numerically, strings by bytes
//! after unescaping, arrays/objects by raw text (upstream cannot order those anyway).

use std::borrow::Cow;
use std::cmp::Ordering;

use sonic_rs::LazyValue;

use crate::IdValue;
use crate::splice::raw_trimmed;

/// Sort direction of one attribute key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending; nulls first.
    Asc,
    /// Descending; nulls last.
    Desc,
}

/// How merged rows are ordered (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOrder {
    /// Vector distance, smallest first.
    DistAsc,
    /// Score (`$score`, else `$dist`), largest first.
    ScoreDesc,
    /// Attribute values, in key order.
    Attributes(Vec<(String, Direction)>),
}

/// Derives the row order from a `rank_by` value (see the module docs).
#[must_use]
pub fn order_of_rank_by(rank_by: &LazyValue<'_>) -> RowOrder {
    let Some(items) = array_raws(rank_by) else {
        return RowOrder::ScoreDesc;
    };
    if let (Some(first), Some(second)) = (items.first(), items.get(1))
        && first.starts_with('"')
    {
        match second.as_str() {
            "\"ANN\"" | "\"kNN\"" => return RowOrder::DistAsc,
            "\"asc\"" | "\"desc\"" if items.len() == 2 => {
                if let Some(key) = attr_key(first, second) {
                    return RowOrder::Attributes(vec![key]);
                }
            }
            _ => {}
        }
        return RowOrder::ScoreDesc;
    }
    // A list of `[attr, dir]` pairs (multi-key ordering).
    if items.first().is_some_and(|f| f.starts_with('[')) {
        let mut keys = Vec::new();
        for item in &items {
            let Ok(pair) = sonic_rs::from_str::<Vec<String>>(item) else {
                return RowOrder::ScoreDesc;
            };
            match pair.as_slice() {
                [attr, dir] if dir == "asc" || dir == "desc" => keys.push((
                    attr.clone(),
                    if dir == "asc" {
                        Direction::Asc
                    } else {
                        Direction::Desc
                    },
                )),
                _ => return RowOrder::ScoreDesc,
            }
        }
        return RowOrder::Attributes(keys);
    }
    RowOrder::ScoreDesc
}

fn attr_key(attr_raw: &str, dir_raw: &str) -> Option<(String, Direction)> {
    let attr = sonic_rs::from_str::<String>(attr_raw).ok()?;
    let dir = if dir_raw == "\"asc\"" {
        Direction::Asc
    } else {
        Direction::Desc
    };
    Some((attr, dir))
}

/// The trimmed raw text of each element of an array, or `None` for a non-array.
pub(crate) fn array_raws(v: &LazyValue<'_>) -> Option<Vec<String>> {
    let iter = v.clone().into_array_iter()?;
    let mut out = Vec::new();
    for item in iter {
        out.push(raw_trimmed(&item.ok()?).to_owned());
    }
    Some(out)
}

/// A value's trimmed raw text with the lifetime of the parsed input (sonic-rs only copies for
/// `FastStr` inputs, which this crate never uses; those read as `""`).
pub(crate) fn raw_of<'a>(v: &LazyValue<'a>) -> &'a str {
    match v.as_raw_cow() {
        Cow::Borrowed(s) => s.trim_end_matches([' ', '\t', '\n', '\r']),
        Cow::Owned(_) => "",
    }
}

/// A JSON value reduced to what ordering needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OrdVal<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Other(&'a str),
}

impl<'a> OrdVal<'a> {
    /// Classifies a value's trimmed raw JSON text.
    pub(crate) fn from_raw(raw: &'a str) -> Self {
        match raw.as_bytes().first() {
            None => Self::Null,
            Some(b'n') if raw == "null" => Self::Null,
            Some(b't') if raw == "true" => Self::Bool(true),
            Some(b'f') if raw == "false" => Self::Bool(false),
            Some(b'"') => match unescape(raw) {
                Some(s) => Self::Str(s),
                None => Self::Other(raw),
            },
            Some(b'-' | b'0'..=b'9') => {
                if let Ok(i) = raw.parse::<i128>() {
                    Self::Int(i)
                } else {
                    raw.parse::<f64>().map_or(Self::Other(raw), Self::Float)
                }
            }
            _ => Self::Other(raw),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Null => 0,
            Self::Bool(_) => 1,
            Self::Int(_) | Self::Float(_) => 2,
            Self::Str(_) => 3,
            Self::Other(_) => 4,
        }
    }

    /// The total order described in the module docs.
    pub(crate) fn cmp_total(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
            (Self::Int(a), Self::Int(b)) => a.cmp(b),
            (Self::Float(a), Self::Float(b)) => cmp_floats(*a, *b),
            (Self::Int(a), Self::Float(b)) => cmp_int_float(*a, *b),
            (Self::Float(a), Self::Int(b)) => cmp_int_float(*b, *a).reverse(),
            (Self::Str(a), Self::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Self::Other(a), Self::Other(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Floats numerically (`-0.0 == 0.0`, as against an integer `0`); NaNs (which JSON cannot carry
/// but a lenient parse could produce) sort after everything when positive, before when negative.
fn cmp_floats(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or_else(|| a.total_cmp(&b))
}

/// An integer against a float, exactly: converting the integer to `f64` rounds past 2^53, which
/// made `2^53 + 1 == 2^53 as float == 2^53` while `2^53 + 1 > 2^53`, not a total order (sorting
/// with it can panic). Compares the integer with the float's integral part, then the fraction.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    /// 2^127: every `i128` is below it, and every float at or above it is above every `i128`.
    const TWO_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.is_nan() {
        return if f.is_sign_negative() {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    if f >= TWO_127 {
        return Ordering::Less;
    }
    if f < -TWO_127 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // Exact: `whole` is integral and within [-2^127, 2^127).
    #[allow(clippy::cast_possible_truncation)]
    let w = whole as i128;
    i.cmp(&w).then_with(|| {
        if f > whole {
            Ordering::Less
        } else if f < whole {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    })
}

/// Unescapes a JSON string literal, borrowing when it has no escapes.
pub(crate) fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('\\') {
        return raw
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(Cow::Borrowed);
    }
    sonic_rs::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// The id tie-break: u64 ids numerically, then strings by bytes, then anything else.
pub(crate) fn cmp_ids(a: &IdValue<'_>, a_raw: &str, b: &IdValue<'_>, b_raw: &str) -> Ordering {
    let rank = |v: &IdValue<'_>| match v {
        IdValue::Uint(_) => 0u8,
        IdValue::Str(_) => 1,
        IdValue::Other => 2,
    };
    match (a, b) {
        (IdValue::Uint(x), IdValue::Uint(y)) => x.cmp(y),
        (IdValue::Str(x), IdValue::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (IdValue::Other, IdValue::Other) => a_raw.cmp(b_raw),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Compares two optional numeric keys, missing last, in the given direction.
pub(crate) fn cmp_num(a: Option<f64>, b: Option<f64>, desc: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if desc => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(raw: &str) -> RowOrder {
        let v = sonic_rs::get(raw, &[] as &[&str]).unwrap();
        order_of_rank_by(&v)
    }

    #[test]
    fn derives_order_from_rank_by() {
        assert_eq!(order(r#"["vector","ANN",[0.1,0.2]]"#), RowOrder::DistAsc);
        assert_eq!(order(r#"["vector","kNN","AAAA"]"#), RowOrder::DistAsc);
        assert_eq!(order(r#"["title","BM25","fox"]"#), RowOrder::ScoreDesc);
        assert_eq!(
            order(r#"["Sum",[["a","BM25","x"],["b","BM25","y"]]]"#),
            RowOrder::ScoreDesc
        );
        assert_eq!(order(r#"["t","Fuzzy","x",{}]"#), RowOrder::ScoreDesc);
        assert_eq!(
            order(r#"["price","desc"]"#),
            RowOrder::Attributes(vec![("price".into(), Direction::Desc)])
        );
        assert_eq!(
            order(r#"[["a","asc"],["id","desc"]]"#),
            RowOrder::Attributes(vec![
                ("a".into(), Direction::Asc),
                ("id".into(), Direction::Desc)
            ])
        );
        assert_eq!(order(r#"[["a","up"]]"#), RowOrder::ScoreDesc);
        assert_eq!(order("17"), RowOrder::ScoreDesc);
    }

    #[test]
    fn values_order_by_type_then_value() {
        let vals = [
            "null",
            "false",
            "true",
            "-3",
            "1.5",
            "2",
            "18446744073709551616",
            r#""a""#,
            r#""a\u0062""#,
            r#""b""#,
            "[1]",
        ];
        for w in vals.windows(2) {
            assert_eq!(
                OrdVal::from_raw(w[0]).cmp_total(&OrdVal::from_raw(w[1])),
                Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn numbers_compare_exactly_and_transitively() {
        // Past 2^53 an i128 → f64 conversion rounds; the comparison must not.
        let two53 = 9_007_199_254_740_992i128;
        let f = OrdVal::Float(two53 as f64);
        assert_eq!(OrdVal::Int(two53 + 1).cmp_total(&f), Ordering::Greater);
        assert_eq!(OrdVal::Int(two53).cmp_total(&f), Ordering::Equal);
        assert_eq!(f.cmp_total(&OrdVal::Int(two53 + 1)), Ordering::Less);
        assert_eq!(
            OrdVal::Int(0).cmp_total(&OrdVal::Float(-0.0)),
            Ordering::Equal
        );
        assert_eq!(
            OrdVal::Float(-0.0).cmp_total(&OrdVal::Float(0.0)),
            Ordering::Equal
        );
        assert_eq!(
            OrdVal::Int(-3).cmp_total(&OrdVal::Float(-2.5)),
            Ordering::Less
        );
        assert_eq!(
            OrdVal::Int(-2).cmp_total(&OrdVal::Float(-2.5)),
            Ordering::Greater
        );
        assert_eq!(
            OrdVal::Int(i128::MAX).cmp_total(&OrdVal::Float(1e300)),
            Ordering::Less
        );
        assert_eq!(
            OrdVal::Int(i128::MIN).cmp_total(&OrdVal::Float(-1e300)),
            Ordering::Greater
        );
        // Transitivity over a mixed set: sorting must not panic and must agree pairwise.
        let mut vals: Vec<OrdVal<'_>> = Vec::new();
        for d in -3i128..=3 {
            vals.push(OrdVal::Int(two53 + d));
            vals.push(OrdVal::Float((two53 + d) as f64));
            vals.push(OrdVal::Int(d));
            vals.push(OrdVal::Float(d as f64 + 0.5));
        }
        vals.push(OrdVal::Float(-0.0));
        vals.sort_by(OrdVal::cmp_total);
        for a in 0..vals.len() {
            for b in a..vals.len() {
                assert_ne!(
                    vals[a].cmp_total(&vals[b]),
                    Ordering::Greater,
                    "{:?} {:?}",
                    vals[a],
                    vals[b]
                );
            }
        }
    }

    #[test]
    fn ids_u64_before_strings() {
        let a = IdValue::Uint(u64::MAX);
        let b = IdValue::Str("0".into());
        assert_eq!(cmp_ids(&a, "", &b, ""), Ordering::Less);
        assert_eq!(
            cmp_ids(&IdValue::Uint(2), "", &IdValue::Uint(10), ""),
            Ordering::Less
        );
    }
}

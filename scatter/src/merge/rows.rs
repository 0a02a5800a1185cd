//! The merge's rows: every leg's rows become candidates (their sort keys read once), the best
//! `top_k` are selected and written verbatim (or with [`MergeSpec::strip`]'s attributes
//! removed). Start at [`write_rows`].
//!
//! A candidate's keys are read in place while the row's leading members are scalars
//! ([`crate::leading`]: `id` and `$dist` lead upstream rows), else by sonic-rs's object iterator.

use std::cmp::Ordering;

use super::{MergeSpec, Resp, raw};
use crate::leading::{Scan, leading_scalars};
use crate::order::{Direction, OrdVal, RowOrder, cmp_ids, cmp_num};
use crate::shard::json_string;
use crate::{IdRef, IdValue, QueryError};

struct Cand<'a> {
    part: usize,
    pos: usize,
    row: &'a str,
    id: IdValue<'a>,
    id_raw: &'a str,
    num: Option<f64>,
    attrs: Vec<OrdVal<'a>>,
}

pub(super) fn write_rows(
    parts: &[Resp<'_>],
    spec: &MergeSpec,
    out: &mut Vec<u8>,
) -> Result<(), QueryError> {
    let attr_keys: &[(String, Direction)] = match &spec.order {
        RowOrder::Attributes(keys) => keys,
        _ => &[],
    };
    let mut cands = Vec::new();
    for (pi, part) in parts.iter().enumerate() {
        for (pos, row) in part.rows.iter().flatten().enumerate() {
            cands.push(candidate(pi, pos, raw(row)?, &spec.order, attr_keys)?);
        }
    }
    if parts.len() > 1 {
        let cmp = |a: &Cand<'_>, b: &Cand<'_>| compare(a, b, &spec.order, attr_keys);
        if cands.len() > spec.top_k {
            // Partial selection, then a sort of the survivors only.
            cands.select_nth_unstable_by(spec.top_k, cmp);
            cands.truncate(spec.top_k);
        }
        cands.sort_unstable_by(cmp);
    } else {
        cands.truncate(spec.top_k);
    }
    out.push(b'[');
    for (i, c) in cands.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if spec.strip.is_empty() {
            out.extend_from_slice(c.row.as_bytes());
        } else {
            write_stripped(c.row, &spec.strip, out)?;
        }
    }
    out.push(b']');
    Ok(())
}

fn candidate<'a>(
    part: usize,
    pos: usize,
    row: &'a str,
    order: &RowOrder,
    attr_keys: &[(String, Direction)],
) -> Result<Cand<'a>, QueryError> {
    // Stop as soon as the keys are known: `id` and `$dist` usually lead the row, and the
    // attributes behind them are never looked at (most of the merge's cost otherwise).
    let mut keys = SortKeys::new(attr_keys);
    let scan = leading_scalars(row, |key, text| {
        keys.take(key, text, attr_keys);
        !keys.complete(order)
    });
    if scan == Scan::Fallback {
        // Something in front of the keys is not a plain scalar member: read the row properly.
        keys = SortKeys::new(attr_keys);
        for item in sonic_rs::to_object_iter(row) {
            if keys.complete(order) {
                break;
            }
            let (key, value) =
                item.map_err(|_| QueryError::upstream("a row is not a valid JSON object"))?;
            keys.take(&key, raw(&value)?, attr_keys);
        }
    }
    let SortKeys {
        id_raw,
        dist,
        score,
        mut attrs,
        ..
    } = keys;
    if let Some(i) = attr_keys.iter().position(|(a, _)| a == "id")
        && let Some(slot) = attrs.get_mut(i)
    {
        *slot = OrdVal::from_raw(id_raw);
    }
    Ok(Cand {
        part,
        pos,
        row,
        id: IdRef::parse(id_raw).value().clone(),
        id_raw,
        num: match order {
            RowOrder::DistAsc => dist,
            RowOrder::ScoreDesc => score.or(dist),
            RowOrder::Attributes(_) => None,
        },
        attrs,
    })
}

/// A row's sort keys, as far as they were read.
struct SortKeys<'a> {
    id_raw: &'a str,
    dist: Option<f64>,
    score: Option<f64>,
    attrs: Vec<OrdVal<'a>>,
    found_attrs: usize,
    wanted_attrs: usize,
}

impl<'a> SortKeys<'a> {
    fn new(attr_keys: &[(String, Direction)]) -> Self {
        SortKeys {
            id_raw: "",
            dist: None,
            score: None,
            attrs: vec![OrdVal::Null; attr_keys.len()],
            found_attrs: 0,
            wanted_attrs: attr_keys.iter().filter(|(a, _)| a != "id").count(),
        }
    }

    /// Reads one member (`text`: its value's JSON text).
    fn take(&mut self, key: &str, text: &'a str, attr_keys: &[(String, Direction)]) {
        match key {
            "id" => self.id_raw = text,
            "$dist" => self.dist = text.parse::<f64>().ok(),
            "$score" => self.score = text.parse::<f64>().ok(),
            k => {
                if let Some(i) = attr_keys.iter().position(|(a, _)| a == k)
                    && let Some(slot) = self.attrs.get_mut(i)
                {
                    *slot = OrdVal::from_raw(text);
                    self.found_attrs += 1;
                }
            }
        }
    }

    /// Whether everything `order` sorts by is known.
    fn complete(&self, order: &RowOrder) -> bool {
        let have_num = match order {
            RowOrder::DistAsc => self.dist.is_some(),
            RowOrder::ScoreDesc => self.dist.is_some() || self.score.is_some(),
            RowOrder::Attributes(_) => true,
        };
        !self.id_raw.is_empty() && have_num && self.found_attrs == self.wanted_attrs
    }
}

fn compare(a: &Cand<'_>, b: &Cand<'_>, order: &RowOrder, keys: &[(String, Direction)]) -> Ordering {
    let primary = match order {
        RowOrder::DistAsc => cmp_num(a.num, b.num, false),
        RowOrder::ScoreDesc => cmp_num(a.num, b.num, true),
        RowOrder::Attributes(_) => {
            let mut ord = Ordering::Equal;
            for (i, (_, dir)) in keys.iter().enumerate() {
                let (Some(x), Some(y)) = (a.attrs.get(i), b.attrs.get(i)) else {
                    break;
                };
                ord = x.cmp_total(y);
                if *dir == Direction::Desc {
                    ord = ord.reverse();
                }
                if ord != Ordering::Equal {
                    break;
                }
            }
            ord
        }
    };
    primary
        .then_with(|| cmp_ids(&a.id, a.id_raw, &b.id, b.id_raw))
        // Same id twice (cannot happen across disjoint shards): keep input order, for determinism.
        .then_with(|| (a.part, a.pos).cmp(&(b.part, b.pos)))
}

fn write_stripped(row: &str, strip: &[String], out: &mut Vec<u8>) -> Result<(), QueryError> {
    out.push(b'{');
    let mut first = true;
    for item in sonic_rs::to_object_iter(row) {
        let (key, value) =
            item.map_err(|_| QueryError::upstream("a row is not a valid JSON object"))?;
        if strip.iter().any(|s| s == key.as_ref()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(json_string(&key).as_bytes());
        out.push(b':');
        out.extend_from_slice(raw(&value)?.as_bytes());
    }
    out.push(b'}');
    Ok(())
}

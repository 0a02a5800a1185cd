//! Filter evaluation: [`Filter::matches`] on one document with the live service's null semantics
//! (`Lt`/`Lte` match null, `Eq null` means missing), `$ref_new` operands of write conditions, glob,
//! regex, fuzzy (bounded [`levenshtein`]) and token operators, plus [`Filter::id_candidates`] for
//! id lookups. Parsing (and the types evaluated here) is in the parent module.

use std::cmp::Ordering;

use serde_json::Value;

use super::{Cond, EvalCtx, Extra, Filter, Op, Operand};
use crate::model::{Doc, Id, cmp_values, values_equal};

impl Filter {
    /// Evaluates the filter on one document.
    pub fn matches(&self, id: &Id, doc: &Doc, ctx: EvalCtx<'_>) -> bool {
        match self {
            Filter::And(parts) => parts.iter().all(|f| f.matches(id, doc, ctx)),
            Filter::Or(parts) => parts.iter().any(|f| f.matches(id, doc, ctx)),
            Filter::Not(inner) => !inner.matches(id, doc, ctx),
            Filter::Cond(c) => c.matches(id, doc, ctx),
        }
    }

    /// When the filter pins `id` to a set (`id Eq x`, `id In [...]`, possibly inside an And),
    /// the candidate ids, so the engine can look them up instead of scanning.
    pub fn id_candidates(&self) -> Option<Vec<Id>> {
        match self {
            Filter::Cond(c) if c.attr == "id" => match (&c.op, &c.operand) {
                (Op::Eq, Operand::Lit(v)) => Some(Id::from_value(v).into_iter().collect()),
                (Op::In, Operand::Lit(Value::Array(items))) => {
                    Some(items.iter().filter_map(Id::from_value).collect())
                }
                _ => None,
            },
            Filter::And(parts) => parts.iter().find_map(Filter::id_candidates),
            _ => None,
        }
    }
}

impl Cond {
    fn matches(&self, id: &Id, doc: &Doc, ctx: EvalCtx<'_>) -> bool {
        let mut scratch = None;
        let value = doc.get(id, &self.attr, &mut scratch);
        let mut ref_scratch = None;
        let operand: &Value = match &self.operand {
            Operand::Lit(v) => v,
            Operand::RefNew(attr) => match ctx.new_doc {
                Some((nid, ndoc)) => ndoc
                    .get(nid, attr, &mut ref_scratch)
                    .unwrap_or(&Value::Null),
                None => &Value::Null,
            },
        };
        match self.op {
            Op::Eq => eq(value, operand),
            Op::NotEq => !eq(value, operand),
            Op::In => in_list(value, operand),
            Op::NotIn => !in_list(value, operand),
            Op::Contains => elements(value).any(|e| values_equal(e, operand)),
            Op::NotContains => !elements(value).any(|e| values_equal(e, operand)),
            Op::ContainsAny => contains_any(value, operand),
            Op::NotContainsAny => !contains_any(value, operand),
            Op::Lt | Op::Lte | Op::Gt | Op::Gte => match (value, operand) {
                (_, Value::Null) => false,
                // The live service's documented quirk: Lt/Lte match documents where the attribute is null.
                (None, _) => matches!(self.op, Op::Lt | Op::Lte),
                (Some(v), o) => ordered(self.op, v, o),
            },
            Op::AnyLt | Op::AnyLte | Op::AnyGt | Op::AnyGte => {
                let base = match self.op {
                    Op::AnyLt => Op::Lt,
                    Op::AnyLte => Op::Lte,
                    Op::AnyGt => Op::Gt,
                    _ => Op::Gte,
                };
                elements(value).any(|e| ordered(base, e, operand))
            }
            Op::Glob | Op::IGlob | Op::NotGlob | Op::NotIGlob => {
                let Extra::Glob(m) = &self.extra else {
                    return false;
                };
                let hit = strings(value).any(|s| m.is_match(s));
                if matches!(self.op, Op::Glob | Op::IGlob) {
                    hit
                } else {
                    !hit
                }
            }
            Op::Regex => {
                let Extra::Regex(re) = &self.extra else {
                    return false;
                };
                strings(value).any(|s| re.is_match(s))
            }
            Op::Fuzzy => self.fuzzy(value, doc),
            Op::ContainsAllTokens | Op::ContainsAnyToken | Op::ContainsTokenSequence => {
                self.tokens(doc)
            }
        }
    }

    fn fuzzy(&self, value: Option<&Value>, doc: &Doc) -> bool {
        let Extra::Fuzzy {
            query,
            distance,
            case_sensitive,
        } = &self.extra
        else {
            return false;
        };
        let Some(max) = *distance else { return false };
        let fold = |s: &str| {
            if *case_sensitive {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let mut candidates: Vec<String> = strings(value).map(fold).collect();
        if let Some(toks) = doc.tokens.get(&self.attr) {
            candidates.extend(toks.iter().flatten().map(|t| fold(t)));
        } else {
            let words: Vec<String> = candidates
                .iter()
                .flat_map(|c| c.split_whitespace().map(str::to_string))
                .collect();
            candidates.extend(words);
        }
        candidates.iter().any(|c| levenshtein(query, c, max) <= max)
    }

    fn tokens(&self, doc: &Doc) -> bool {
        let Extra::Tokens {
            tokens,
            last_as_prefix,
        } = &self.extra
        else {
            return false;
        };
        let Some(doc_tokens) = doc.tokens.get(&self.attr) else {
            return false;
        };
        if tokens.is_empty() {
            return false;
        }
        let term_hit = |i: usize, t: &str, cand: &str| {
            if *last_as_prefix && i + 1 == tokens.len() {
                cand.starts_with(t)
            } else {
                cand == t
            }
        };
        match self.op {
            Op::ContainsAllTokens => tokens
                .iter()
                .enumerate()
                .all(|(i, t)| doc_tokens.iter().flatten().any(|c| term_hit(i, t, c))),
            Op::ContainsAnyToken => tokens
                .iter()
                .enumerate()
                .any(|(i, t)| doc_tokens.iter().flatten().any(|c| term_hit(i, t, c))),
            _ => doc_tokens.iter().any(|el| {
                el.windows(tokens.len()).any(|w| {
                    w.iter()
                        .zip(tokens)
                        .enumerate()
                        .all(|(i, (c, t))| term_hit(i, t, c))
                })
            }),
        }
    }
}

fn eq(value: Option<&Value>, operand: &Value) -> bool {
    match (value, operand) {
        (None, Value::Null) => true,
        (None, _) | (Some(_), Value::Null) => false,
        (Some(v), o) => values_equal(v, o),
    }
}

fn in_list(value: Option<&Value>, operand: &Value) -> bool {
    let Value::Array(list) = operand else {
        // `In x` with a scalar (accepted only on array attributes): the array contains `x`.
        return elements(value).any(|e| values_equal(e, operand));
    };
    match value {
        None => list.iter().any(Value::is_null),
        Some(Value::Array(items)) => items
            .iter()
            .any(|i| list.iter().any(|l| values_equal(i, l))),
        Some(v) => list.iter().any(|l| values_equal(v, l)),
    }
}

fn contains_any(value: Option<&Value>, operand: &Value) -> bool {
    let Value::Array(list) = operand else {
        return false;
    };
    elements(value).any(|e| list.iter().any(|l| values_equal(e, l)))
}

fn ordered(op: Op, v: &Value, o: &Value) -> bool {
    match cmp_values(v, o) {
        Some(ord) => match op {
            Op::Lt => ord == Ordering::Less,
            Op::Lte => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            _ => ord != Ordering::Less,
        },
        None => false,
    }
}

/// The elements of an array attribute, or the scalar itself.
fn elements(value: Option<&Value>) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        None => Box::new(std::iter::empty()),
        Some(Value::Array(items)) => Box::new(items.iter()),
        Some(v) => Box::new(std::iter::once(v)),
    }
}

fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    elements(value).filter_map(Value::as_str)
}

/// Levenshtein distance in chars, stopping early once it exceeds `max`.
pub fn levenshtein(a: &str, b: &str, max: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > max {
            return max + 1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

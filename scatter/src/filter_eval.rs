//! Evaluates a Turbopuffer `filters` array against one row in the gateway (cache-sourced scans),
//! with the same semantics as the upstream evaluator (the emulator's `filter/eval.rs`, which
//! follows the live service).
//!
//! Supported operators: `Eq`, `NotEq`, `Gt`, `Gte`, `Lt`, `Lte`, `In`, `NotIn`, and the
//! combinators `And`, `Or`, `Not`; the legacy object form `{"attr": ["Eq", v], ...}` is an
//! implicit `And`. Any other Turbopuffer operator (`Contains`, `Glob`, `Regex`, token
//! operators, ...) is [`FilterEvalError::Unsupported`], so an explicit `source: cache` scan can
//! refuse rather than return partial results, and `auto` can fall back to origin. A filter that
//! upstream would reject (unknown operator, wrong shape, `In` without a list, ...) is
//! [`FilterEvalError::Invalid`].
//!
//! Semantics (identical to upstream):
//! - a missing attribute and an explicit `null` are the same ("null");
//! - `Eq null` matches null, `Eq x` never matches null; `NotEq` is its negation;
//! - `In` matches when the value (or, for an array attribute, any element) equals a list member;
//!   a null attribute matches a list containing `null`; `NotIn` is the negation;
//! - `Lt`/`Lte` **match null attributes** (the service's documented quirk), `Gt`/`Gte` do not; an
//!   ordering against a `null` operand never matches; orderings compare numbers with numbers
//!   (integers exactly, otherwise as f64), strings with strings (bytewise), booleans with
//!   booleans, and anything else never matches (an array attribute never orders);
//! - equality is numeric across integer and float spellings (`1 == 1.0`), element-wise on
//!   arrays, structural on objects; `id` is an ordinary key of the row.
//!
//! What the gateway cannot reproduce without the namespace schema: upstream converts datetime
//! operands to epoch milliseconds and lower-cases uuid operands for attributes typed that way,
//! and rejects filters on non-filterable attributes. The cache evaluator compares the JSON values
//! as stored in the cached rows.

use std::cmp::Ordering;

use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value};

/// Why a filter cannot be evaluated by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterEvalError {
    /// A valid Turbopuffer operator the cache evaluator does not implement.
    #[error("filter operator {0} is not supported by the cache evaluator")]
    Unsupported(String),
    /// A filter Turbopuffer itself would reject.
    #[error("invalid filter: {0}")]
    Invalid(String),
}

/// A comparison operator the evaluator implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `Eq`
    Eq,
    /// `NotEq`
    NotEq,
    /// `Gt`
    Gt,
    /// `Gte`
    Gte,
    /// `Lt`
    Lt,
    /// `Lte`
    Lte,
    /// `In`
    In,
    /// `NotIn`
    NotIn,
}

impl CmpOp {
    fn parse(s: &str) -> Option<CmpOp> {
        Some(match s {
            "Eq" => CmpOp::Eq,
            "NotEq" => CmpOp::NotEq,
            "Gt" => CmpOp::Gt,
            "Gte" => CmpOp::Gte,
            "Lt" => CmpOp::Lt,
            "Lte" => CmpOp::Lte,
            "In" => CmpOp::In,
            "NotIn" => CmpOp::NotIn,
            _ => return None,
        })
    }

    fn is_ordering(self) -> bool {
        matches!(self, CmpOp::Gt | CmpOp::Gte | CmpOp::Lt | CmpOp::Lte)
    }
}

/// Turbopuffer operators this evaluator deliberately does not implement (they are valid upstream).
const UNSUPPORTED_OPS: &[&str] = &[
    "Contains",
    "NotContains",
    "ContainsAny",
    "NotContainsAny",
    "AnyLt",
    "AnyLte",
    "AnyGt",
    "AnyGte",
    "Glob",
    "NotGlob",
    "IGlob",
    "NotIGlob",
    "Regex",
    "Fuzzy",
    "ContainsAllTokens",
    "ContainsAnyToken",
    "ContainsTokenSequence",
];

/// A compiled filter; build it once per scan and call [`RowFilter::matches`] per row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowFilter {
    /// Every part matches (empty: always true).
    And(Vec<RowFilter>),
    /// Some part matches (empty: never).
    Or(Vec<RowFilter>),
    /// The inner filter does not match.
    Not(Box<RowFilter>),
    /// `[attr, op, operand]`.
    Cond {
        /// Attribute name (`id` included).
        attr: String,
        /// The operator.
        op: CmpOp,
        /// The operand (an array for `In`/`NotIn`).
        operand: Value,
    },
}

impl RowFilter {
    /// Compiles a `filters` value (array form or legacy object form).
    pub fn parse(v: &Value) -> Result<RowFilter, FilterEvalError> {
        if let Some(obj) = v.as_object() {
            let mut parts = Vec::with_capacity(obj.len());
            for (attr, cond) in obj.iter() {
                let Some(arr) = cond.as_array() else {
                    return Err(invalid(v));
                };
                let mut full = vec![Value::from(attr)];
                full.extend(arr.iter().cloned());
                parts.push(RowFilter::parse(&Value::from(full))?);
            }
            return Ok(RowFilter::And(parts));
        }
        let Some(items) = v.as_array() else {
            return Err(invalid(v));
        };
        let items = items.as_slice();
        match items {
            [c, subs] if subs.is_array() && matches!(c.as_str(), Some("And" | "Or")) => {
                let parts = subs
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(RowFilter::parse)
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .transpose()?
                    .unwrap_or_default();
                Ok(if c.as_str() == Some("And") {
                    RowFilter::And(parts)
                } else {
                    RowFilter::Or(parts)
                })
            }
            [n, inner] if n.as_str() == Some("Not") => {
                Ok(RowFilter::Not(Box::new(RowFilter::parse(inner)?)))
            }
            [attr, op, rest @ ..] if attr.is_str() && op.is_str() && rest.len() <= 2 => {
                let (attr, op_name) = (attr.as_str().unwrap_or(""), op.as_str().unwrap_or(""));
                let Some(op) = CmpOp::parse(op_name) else {
                    return Err(if UNSUPPORTED_OPS.contains(&op_name) {
                        FilterEvalError::Unsupported(op_name.to_string())
                    } else {
                        FilterEvalError::Invalid(format!("unknown filter operator '{op_name}'"))
                    });
                };
                let operand = rest.first().cloned().unwrap_or_default();
                if operand.get("$ref_new").is_some() {
                    return Err(FilterEvalError::Invalid(
                        "$ref_new is only allowed in write conditions".into(),
                    ));
                }
                if matches!(op, CmpOp::In | CmpOp::NotIn) && !operand.is_array() {
                    return Err(FilterEvalError::Invalid(format!(
                        "filter error in key `{attr}`: type mismatch for {op:?}: {}",
                        sonic_rs::to_string(&operand).unwrap_or_default()
                    )));
                }
                if op.is_ordering() && operand.is_array() {
                    return Err(invalid(v));
                }
                Ok(RowFilter::Cond {
                    attr: attr.to_string(),
                    op,
                    operand,
                })
            }
            _ => Err(invalid(v)),
        }
    }

    /// Compiles a `filters` value from its JSON text.
    pub fn parse_json(text: &str) -> Result<RowFilter, FilterEvalError> {
        let v: Value = sonic_rs::from_str(text)
            .map_err(|e| FilterEvalError::Invalid(format!("filters is not JSON: {e}")))?;
        RowFilter::parse(&v)
    }

    /// Whether `row` (a JSON object holding `id` and the attributes) satisfies the filter.
    pub fn matches(&self, row: &Value) -> bool {
        match self {
            RowFilter::And(parts) => parts.iter().all(|f| f.matches(row)),
            RowFilter::Or(parts) => parts.iter().any(|f| f.matches(row)),
            RowFilter::Not(inner) => !inner.matches(row),
            RowFilter::Cond { attr, op, operand } => {
                let value = row.get(attr.as_str()).filter(|v| !v.is_null());
                cond(*op, value, operand)
            }
        }
    }

    /// When the filter is one leaf `Eq` or `In` condition (what a snapshot facet can answer),
    /// its attribute and the values it accepts.
    pub fn single_leaf(&self) -> Option<(&str, Vec<&Value>)> {
        match self {
            RowFilter::Cond {
                attr,
                op: CmpOp::Eq,
                operand,
            } => Some((attr, vec![operand])),
            RowFilter::Cond {
                attr,
                op: CmpOp::In,
                operand,
            } => Some((attr, operand.as_array()?.iter().collect())),
            _ => None,
        }
    }
}

fn invalid(v: &Value) -> FilterEvalError {
    FilterEvalError::Invalid(sonic_rs::to_string(v).unwrap_or_default())
}

fn cond(op: CmpOp, value: Option<&Value>, operand: &Value) -> bool {
    match op {
        CmpOp::Eq => eq(value, operand),
        CmpOp::NotEq => !eq(value, operand),
        CmpOp::In => in_list(value, operand),
        CmpOp::NotIn => !in_list(value, operand),
        CmpOp::Lt | CmpOp::Lte | CmpOp::Gt | CmpOp::Gte => match (value, operand.is_null()) {
            (_, true) => false,
            (None, false) => matches!(op, CmpOp::Lt | CmpOp::Lte),
            (Some(v), false) => match cmp_values(v, operand) {
                Some(ord) => match op {
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Lte => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    _ => ord != Ordering::Less,
                },
                None => false,
            },
        },
    }
}

fn eq(value: Option<&Value>, operand: &Value) -> bool {
    match value {
        None => operand.is_null(),
        Some(_) if operand.is_null() => false,
        Some(v) => values_equal(v, operand),
    }
}

fn in_list(value: Option<&Value>, operand: &Value) -> bool {
    let Some(list) = operand.as_array() else {
        return false;
    };
    match value {
        None => list.iter().any(JsonValueTrait::is_null),
        Some(v) => match v.as_array() {
            Some(items) => items
                .iter()
                .any(|i| list.iter().any(|l| values_equal(i, l))),
            None => list.iter().any(|l| values_equal(v, l)),
        },
    }
}

/// Upstream's ordering: integers exactly (i64, then u64), otherwise f64; strings bytewise;
/// booleans; `None` for anything else (including mixed kinds).
pub fn cmp_values(a: &Value, b: &Value) -> Option<Ordering> {
    match (a.get_type(), b.get_type()) {
        (JsonType::Number, JsonType::Number) => {
            if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                return Some(x.cmp(&y));
            }
            if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                return Some(x.cmp(&y));
            }
            a.as_f64()?.partial_cmp(&b.as_f64()?)
        }
        (JsonType::String, JsonType::String) => Some(a.as_str()?.cmp(b.as_str()?)),
        (JsonType::Boolean, JsonType::Boolean) => Some(a.as_bool()?.cmp(&b.as_bool()?)),
        _ => None,
    }
}

/// Upstream's equality: numeric across spellings, element-wise on arrays, structural otherwise.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.get_type(), b.get_type()) {
        (JsonType::Number, JsonType::Number) => cmp_values(a, b) == Some(Ordering::Equal),
        (JsonType::Array, JsonType::Array) => match (a.as_array(), b.as_array()) {
            (Some(x), Some(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| values_equal(a, b))
            }
            _ => false,
        },
        _ => a == b,
    }
}

#[cfg(test)]
#[path = "filter_eval_tests.rs"]
mod tests;

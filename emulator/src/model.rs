//! Documents, ids and attribute values as the emulator stores them.
//!
//! A document is an id, its scalar/array attributes (JSON values, datetimes as epoch ms) and its
//! vector columns (decoded `f32`s). Ids are u64 or strings (UUIDs are canonicalised strings);
//! u64 ids keep full 64-bit precision.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A document id. `Uint` sorts before `Str`, each in natural order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Id {
    Uint(u64),
    Str(String),
}

impl Id {
    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Uint(n) => Value::from(*n),
            Id::Str(s) => Value::String(s.clone()),
        }
    }

    /// Reads an id from a JSON value (filter operands, `$ref_new`).
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => n.as_u64().map(Id::Uint),
            Value::String(s) => Some(Id::Str(s.clone())),
            _ => None,
        }
    }

    /// Which id kind this is, for the one-kind-per-namespace rule.
    pub fn kind(&self) -> IdKind {
        match self {
            Id::Uint(_) => IdKind::Uint,
            Id::Str(_) => IdKind::Str,
        }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Uint(n) => write!(f, "{n}"),
            Id::Str(s) => f.write_str(s),
        }
    }
}

/// The id kind a namespace was created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdKind {
    Uint,
    Str,
    Uuid,
}

/// A list of ids as sent in `deletes` and in column writes (one kind per list).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum IdVec {
    Uint(Vec<u64>),
    Str(Vec<String>),
}

impl IdVec {
    pub fn into_ids(self) -> Vec<Id> {
        match self {
            IdVec::Uint(v) => v.into_iter().map(Id::Uint).collect(),
            IdVec::Str(v) => v.into_iter().map(Id::Str).collect(),
        }
    }
}

/// One stored document.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Doc {
    /// Non-vector attributes (never contains `id`). Datetimes are stored as epoch ms.
    pub attrs: BTreeMap<String, Value>,
    /// Dense vector columns by attribute name.
    pub vectors: BTreeMap<String, Arc<[f32]>>,
    /// Analysed tokens of full-text-search attributes (one list per array element; scalars have one).
    #[serde(skip)]
    pub tokens: BTreeMap<String, Vec<Vec<String>>>,
    /// Approximate logical size in bytes, for metadata and billing stubs.
    pub bytes: u64,
}

impl Doc {
    /// The value of an attribute as filters see it (`id` included); `None` means null/missing.
    pub fn get<'a>(
        &'a self,
        id: &Id,
        attr: &str,
        scratch: &'a mut Option<Value>,
    ) -> Option<&'a Value> {
        if attr == "id" {
            *scratch = Some(id.to_value());
            return scratch.as_ref();
        }
        match self.attrs.get(attr) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        }
    }

    /// Recomputes `bytes` from the content.
    pub fn recompute_size(&mut self, id: &Id) {
        let mut n = match id {
            Id::Uint(_) => 8,
            Id::Str(s) => s.len() as u64,
        };
        for (k, v) in &self.attrs {
            n += k.len() as u64 + value_size(v);
        }
        for (k, v) in &self.vectors {
            n += k.len() as u64 + 4 * v.len() as u64;
        }
        self.bytes = n;
    }
}

fn value_size(v: &Value) -> u64 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 8,
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(value_size).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() as u64 + value_size(v)).sum(),
    }
}

/// Decodes a dense vector given as a JSON array of numbers or a base64 string of LE f32s.
pub fn decode_vector(v: &Value) -> Result<Vec<f32>, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| "vector elements must be numbers".to_string())
            })
            .collect(),
        Value::String(s) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("invalid base64 vector: {e}"))?;
            if bytes.len() % 4 != 0 {
                return Err("base64 vector length is not a multiple of 4 bytes".into());
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }
        _ => Err("vector must be an array of numbers or a base64 string".into()),
    }
}

/// Encodes a vector as base64 LE f32 (`vector_encoding: "base64"`).
pub fn encode_vector_base64(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Renders a vector as a JSON array of numbers, each printed as Turbopuffer prints an f32: the
/// shortest decimal that round-trips as f32 (`0.7`, not the f64 widening `0.699999988079071`).
pub fn vector_to_json(v: &[f32]) -> Value {
    Value::Array(v.iter().map(|x| f32_to_json(*x)).collect())
}

/// One f32 as a JSON number with its shortest round-trip decimal, as a Rust service serialising
/// the f32 with serde_json prints it: ryu's f32 digits (serde_json's own f32 formatting; on an
/// exact tie between two shortest candidates ryu picks the even digit, e.g. `1109012.2` where
/// `f32`'s `Display` says `1109012.3`). Parsing those digits as f64 gives the f64 nearest to that
/// decimal, whose shortest round-trip rendering (what serde_json prints for a `Value`) is the same
/// digits. Non-finite values, which JSON cannot carry, become `null`.
pub fn f32_to_json(x: f32) -> Value {
    serde_json::to_string(&x)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Orders two JSON scalars of the same kind; `None` when they are not comparable.
pub fn cmp_values(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Some(x.cmp(&y));
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return Some(x.cmp(&y));
            }
            x.as_f64()?.partial_cmp(&y.as_f64()?)
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Equality with numeric normalisation (1 == 1.0).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => cmp_values(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        _ => a == b,
    }
}

/// Total order used for sorting rows by attribute: nulls first, then by kind, then by value.
pub fn sort_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => cmp_values(x, y).unwrap_or_else(|| kind_rank(x).cmp(&kind_rank(y))),
    }
}

fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_vectors_round_trip() {
        // The SDK's documented encoding of [0.1, 0.2, 0.3].
        let v = decode_vector(&json!("zczMPc3MTD6amZk+")).unwrap();
        assert_eq!(v, vec![0.1f32, 0.2, 0.3]);
        assert_eq!(encode_vector_base64(&v), "zczMPc3MTD6amZk+");
    }

    #[test]
    fn vectors_render_as_shortest_f32_decimals() {
        let v = decode_vector(&json!([0.7, 0.1, 1.0, -2.5, 1e-7, 3.4e38])).unwrap();
        assert_eq!(
            vector_to_json(&v).to_string(),
            "[0.7,0.1,1.0,-2.5,1e-7,3.4e+38]"
        );
        // The widened f64 digits never appear.
        assert_ne!(vector_to_json(&[0.7]).to_string(), "[0.699999988079071]");
        assert_eq!(f32_to_json(f32::NAN), Value::Null);
        // An exact tie between two 8-digit candidates: ryu's (serde_json's) even choice.
        assert_eq!(
            f32_to_json(f32::from_bits(1233608866)).to_string(),
            "1109012.2"
        );
    }

    proptest::proptest! {
        /// Every finite f32 prints the same decimal as serde_json prints the f32 itself (ryu's
        /// shortest f32 digits; only where exponent notation starts, below 1e-5 and from 1e13,
        /// may the spelling differ) and reads back as the same f32.
        #[test]
        fn f32_rendering_is_shortest_and_round_trips(bits in proptest::prelude::any::<u32>()) {
            let x = f32::from_bits(bits);
            proptest::prop_assume!(x.is_finite());
            let ours = f32_to_json(x).to_string();
            let ryu_f32 = serde_json::to_string(&x).unwrap();
            proptest::prop_assert_eq!(
                ours.parse::<f64>().unwrap().to_bits(),
                ryu_f32.parse::<f64>().unwrap().to_bits(),
                "{} vs {}", ours, ryu_f32
            );
            if x == 0.0 || (1e-5..1e13).contains(&x.abs()) {
                proptest::prop_assert_eq!(&ours, &ryu_f32);
            }
            proptest::prop_assert_eq!(ours.parse::<f32>().unwrap().to_bits(), x.to_bits());
        }
    }

    #[test]
    fn ids_keep_u64_precision_and_order() {
        let big: Id = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(big, Id::Uint(u64::MAX));
        assert!(Id::Uint(5) < Id::Str("a".into()));
        assert_eq!(serde_json::to_string(&big).unwrap(), "18446744073709551615");
    }

    #[test]
    fn numeric_comparison_mixes_ints_and_floats() {
        assert_eq!(cmp_values(&json!(1), &json!(1.5)), Some(Ordering::Less));
        assert!(values_equal(&json!(2), &json!(2.0)));
        assert_eq!(sort_cmp(None, Some(&json!(0))), Ordering::Less);
    }
}

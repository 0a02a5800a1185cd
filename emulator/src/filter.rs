//! The filter grammar of `filters`, write conditions and filter-as-score: parsing against the
//! namespace schema (datetime operands, type checks, index requirements) and evaluation with the
//! live service's null semantics (`Lt`/`Lte` match null, `Eq null` means missing).
//!
//! Start at [`parse`]; evaluation ([`Filter::matches`]) lives in `filter/eval.rs`.

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::fts;
use crate::model::{Doc, Id};
use crate::schema::{AttrType, FtsConfig, Scalar, Schema};

mod eval;

pub use eval::levenshtein;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Contains,
    NotContains,
    ContainsAny,
    NotContainsAny,
    Lt,
    Lte,
    Gt,
    Gte,
    AnyLt,
    AnyLte,
    AnyGt,
    AnyGte,
    Glob,
    NotGlob,
    IGlob,
    NotIGlob,
    Regex,
    Fuzzy,
    ContainsAllTokens,
    ContainsAnyToken,
    ContainsTokenSequence,
}

impl Op {
    /// Parses an operator name; `None` when the string is not a filter operator.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "Eq" => Op::Eq,
            "NotEq" => Op::NotEq,
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Contains" => Op::Contains,
            "NotContains" => Op::NotContains,
            "ContainsAny" => Op::ContainsAny,
            "NotContainsAny" => Op::NotContainsAny,
            "Lt" => Op::Lt,
            "Lte" => Op::Lte,
            "Gt" => Op::Gt,
            "Gte" => Op::Gte,
            "AnyLt" => Op::AnyLt,
            "AnyLte" => Op::AnyLte,
            "AnyGt" => Op::AnyGt,
            "AnyGte" => Op::AnyGte,
            "Glob" => Op::Glob,
            "NotGlob" => Op::NotGlob,
            "IGlob" => Op::IGlob,
            "NotIGlob" => Op::NotIGlob,
            "Regex" => Op::Regex,
            "Fuzzy" => Op::Fuzzy,
            "ContainsAllTokens" => Op::ContainsAllTokens,
            "ContainsAnyToken" => Op::ContainsAnyToken,
            "ContainsTokenSequence" => Op::ContainsTokenSequence,
            _ => return None,
        })
    }

    fn wants_array(self) -> bool {
        matches!(
            self,
            Op::In | Op::NotIn | Op::ContainsAny | Op::NotContainsAny
        )
    }
}

/// A parsed filter.
#[derive(Debug)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cond(Box<Cond>),
}

/// One `[attr, op, value(, params)]` condition.
#[derive(Debug)]
pub struct Cond {
    pub attr: String,
    pub op: Op,
    operand: Operand,
    extra: Extra,
}

#[derive(Debug)]
enum Operand {
    Lit(Value),
    /// `{"$ref_new": attr}` in write conditions: the value of `attr` in the new document.
    RefNew(String),
}

#[derive(Debug)]
enum Extra {
    None,
    Glob(GlobMatcher),
    Regex(Regex),
    Fuzzy {
        query: String,
        distance: Option<usize>,
        case_sensitive: bool,
    },
    Tokens {
        tokens: Vec<String>,
        last_as_prefix: bool,
    },
}

/// The document a write condition compares against (`$ref_new`).
#[derive(Clone, Copy, Default)]
pub struct EvalCtx<'a> {
    pub new_doc: Option<(&'a Id, &'a Doc)>,
}

/// Parses `filters`. `allow_ref_new` is true for write conditions.
pub fn parse(v: &Value, schema: &Schema, allow_ref_new: bool) -> ApiResult<Filter> {
    let p = Parser {
        schema,
        allow_ref_new,
    };
    p.parse(v)
}

/// Parses an optional `filters` value (JSON null or absent means no filter).
pub fn parse_opt(v: Option<&Value>, schema: &Schema) -> ApiResult<Option<Filter>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse(v, schema, false).map(Some),
    }
}

/// Whether a value looks like a filter (used to tell filters from other rank_by shapes).
pub fn looks_like_filter(v: &Value) -> bool {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(c), Value::Array(_)]) => c == "And" || c == "Or",
        Some([Value::String(n), _]) => n == "Not",
        Some([Value::String(_), Value::String(op), ..]) => Op::parse(op).is_some(),
        _ => false,
    }
}

struct Parser<'a> {
    schema: &'a Schema,
    allow_ref_new: bool,
}

fn invalid_filter(v: &Value) -> ApiError {
    ApiError::invalid(format!("invalid filter: {v}"))
}

impl Parser<'_> {
    fn parse(&self, v: &Value) -> ApiResult<Filter> {
        match v {
            Value::Object(o) => {
                // Legacy v1 form: {"attr": ["Eq", v], ...} with an implicit And.
                let mut parts = Vec::with_capacity(o.len());
                for (attr, cond) in o {
                    let arr = cond.as_array().ok_or_else(|| invalid_filter(v))?;
                    let mut full = vec![Value::String(attr.clone())];
                    full.extend(arr.iter().cloned());
                    parts.push(self.parse(&Value::Array(full))?);
                }
                Ok(Filter::And(parts))
            }
            Value::Array(items) => match items.as_slice() {
                [Value::String(c), Value::Array(subs)] if c == "And" || c == "Or" => {
                    let parts = subs
                        .iter()
                        .map(|s| self.parse(s))
                        .collect::<ApiResult<Vec<_>>>()?;
                    Ok(if c == "And" {
                        Filter::And(parts)
                    } else {
                        Filter::Or(parts)
                    })
                }
                [Value::String(n), inner] if n == "Not" => {
                    Ok(Filter::Not(Box::new(self.parse(inner)?)))
                }
                [Value::String(attr), Value::String(op), rest @ ..] if rest.len() <= 2 => {
                    let op = Op::parse(op).ok_or_else(|| {
                        ApiError::invalid(format!("unknown filter operator '{op}'"))
                    })?;
                    let operand = rest.first().cloned().unwrap_or(Value::Null);
                    self.cond(attr, op, operand, rest.get(1))
                        .map(|c| Filter::Cond(Box::new(c)))
                }
                _ => Err(invalid_filter(v)),
            },
            _ => Err(invalid_filter(v)),
        }
    }

    fn cond(&self, attr: &str, op: Op, operand: Value, params: Option<&Value>) -> ApiResult<Cond> {
        let schema = self.schema.get(attr);
        if let Value::Object(o) = &operand
            && let Some(Value::String(r)) = o.get("$ref_new")
        {
            if !self.allow_ref_new {
                return Err(ApiError::invalid(
                    "$ref_new is only allowed in write conditions",
                ));
            }
            return Ok(Cond {
                attr: attr.into(),
                op,
                operand: Operand::RefNew(r.clone()),
                extra: Extra::None,
            });
        }
        let elem = schema.and_then(|s| s.ty.element());
        let type_err = |expected: String| {
            ApiError::BadRequest(format!(
                "filter error in key `{attr}`: type mismatch, {op:?} expects {expected}, but got '{operand}'"
            ))
        };
        let elem_name = match elem {
            Some(Scalar::Int) => "int",
            Some(Scalar::Uint) => "uint",
            Some(Scalar::Float) => "float",
            Some(Scalar::Bool) => "bool",
            Some(Scalar::Datetime) => "datetime",
            Some(Scalar::Uuid) => "uuid",
            _ => "string",
        };
        // A scalar against an array attribute. Contract §4.3 lists `In`/`NotIn` with an array
        // operand ("membership; on array attrs historically = intersection") and says values must
        // match the attribute type, yet Turbopuffer accepts `["tags", "In", "x"]` on a `[]string`
        // attribute. Our reading: the scalar stands for the one-element set, so `In x` on an array
        // attribute is true when the array contains `x` (the intersection with `[x]` is not
        // empty) and `NotIn x` is its negation. `Eq`/`NotEq` keep comparing the whole value (a scalar never
        // equals an array): the contract has `Contains` for element-wise matching and no array
        // rule for `Eq`, and the gateway's cache evaluator reads `Eq` the same way. `ContainsAny`
        // keeps its documented 400 for a scalar and `Contains` for an array (§4.3, live).
        let array_attr = schema.is_some_and(|s| matches!(s.ty, AttrType::Array(_)));
        let scalar_on_array = array_attr
            && matches!(op, Op::In | Op::NotIn)
            && !operand.is_array()
            && !operand.is_null();
        if op.wants_array() && !operand.is_array() && !scalar_on_array {
            return Err(type_err(format!("[]{elem_name}")));
        }
        if matches!(
            op,
            Op::Contains
                | Op::NotContains
                | Op::Lt
                | Op::Lte
                | Op::Gt
                | Op::Gte
                | Op::AnyLt
                | Op::AnyLte
                | Op::AnyGt
                | Op::AnyGte
        ) && operand.is_array()
        {
            return Err(type_err(elem_name.to_string()));
        }
        if let Some(s) = schema {
            let is_token_op = matches!(
                op,
                Op::ContainsAllTokens | Op::ContainsAnyToken | Op::ContainsTokenSequence
            );
            if !is_token_op && !matches!(op, Op::Regex | Op::Fuzzy) && !s.is_filterable() && !s.glob
            {
                return Err(ApiError::invalid(format!(
                    "attribute \"{attr}\" is not filterable; set `filterable: true` in its schema to filter on it"
                )));
            }
            if let Some(e) = elem {
                let scalar_ok = |v: &Value| match e {
                    Scalar::String | Scalar::Uuid => v.is_string(),
                    Scalar::Datetime => v.is_string() || v.is_number(),
                    Scalar::Int | Scalar::Uint | Scalar::Float => v.is_number(),
                    Scalar::Bool => v.is_boolean(),
                };
                let ok = match &operand {
                    Value::Null => true,
                    Value::Array(items) => items.iter().all(|i| i.is_null() || scalar_ok(i)),
                    other => scalar_ok(other),
                };
                if !ok
                    && !matches!(
                        op,
                        Op::Glob | Op::NotGlob | Op::IGlob | Op::NotIGlob | Op::Regex | Op::Fuzzy
                    )
                {
                    return Err(type_err(if op.wants_array() && !scalar_on_array {
                        format!("[]{elem_name}")
                    } else {
                        elem_name.into()
                    }));
                }
            }
        }
        let operand = normalize_operand(operand, elem)?;
        let extra = self.extra(attr, op, &operand, params)?;
        Ok(Cond {
            attr: attr.into(),
            op,
            operand: Operand::Lit(operand),
            extra,
        })
    }

    fn extra(
        &self,
        attr: &str,
        op: Op,
        operand: &Value,
        params: Option<&Value>,
    ) -> ApiResult<Extra> {
        let schema = self.schema.get(attr);
        let text = || {
            operand.as_str().map(str::to_string).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "filter error in key `{attr}`: type mismatch, {op:?} expects string, but got '{operand}'"
                ))
            })
        };
        Ok(match op {
            Op::Glob | Op::NotGlob | Op::IGlob | Op::NotIGlob => {
                let pattern = text()?;
                let ci = matches!(op, Op::IGlob | Op::NotIGlob);
                let glob = GlobBuilder::new(&pattern)
                    .case_insensitive(ci)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| {
                        ApiError::invalid(format!("invalid glob pattern '{pattern}': {e}"))
                    })?;
                Extra::Glob(glob.compile_matcher())
            }
            Op::Regex => {
                if schema.is_some_and(|s| !s.regex) {
                    return Err(ApiError::invalid(format!(
                        "Regex filter on attribute '{attr}' requires `regex: true` in its schema"
                    )));
                }
                let pattern = text()?;
                let re = Regex::new(&pattern)
                    .map_err(|e| ApiError::invalid(format!("invalid regex '{pattern}': {e}")))?;
                Extra::Regex(re)
            }
            Op::Fuzzy => {
                if schema.is_some_and(|s| !s.fuzzy) {
                    return Err(ApiError::invalid(format!(
                        "Fuzzy filter on attribute '{attr}' requires `fuzzy: true` in its schema"
                    )));
                }
                fuzzy_extra(attr, text()?, params)?
            }
            Op::ContainsAllTokens | Op::ContainsAnyToken | Op::ContainsTokenSequence => {
                let cfg = schema.and_then(|s| s.fts.as_ref()).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{op:?} filter on attribute '{attr}' requires full_text_search to be enabled"
                    ))
                })?;
                let last_as_prefix = params
                    .and_then(|p| p.get("last_as_prefix"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                Extra::Tokens {
                    tokens: query_tokens(cfg, operand, attr)?,
                    last_as_prefix,
                }
            }
            _ => Extra::None,
        })
    }
}

/// Analyses a token-filter or BM25 operand with the attribute's pipeline.
pub fn query_tokens(cfg: &FtsConfig, operand: &Value, attr: &str) -> ApiResult<Vec<String>> {
    let pre = cfg.tokenizer == "pre_tokenized_array";
    match operand {
        Value::String(s) if !pre => Ok(fts::analyze(cfg, s)),
        Value::Array(items) if pre => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "invalid input '{operand}' for rank_by field \"{attr}\", expecting []string"
                ))
            }),
        Value::Array(items) => {
            let shown: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect();
            Err(ApiError::invalid(format!(
                "invalid input '[{}]' for rank_by field \"{attr}\", expecting string",
                shown.join(", ")
            )))
        }
        other if pre => Err(ApiError::invalid(format!(
            "invalid input '{other}' for rank_by field \"{attr}\", expecting []string"
        ))),
        other => Err(ApiError::invalid(format!(
            "invalid input '{other}' for rank_by field \"{attr}\", expecting string"
        ))),
    }
}

fn fuzzy_extra(attr: &str, query: String, params: Option<&Value>) -> ApiResult<Extra> {
    let mut rules: Vec<(usize, usize)> = vec![(3, 0), (6, 1), (9, 2)];
    let mut case_sensitive = true;
    if let Some(p) = params {
        if let Some(cs) = p.get("case_sensitive").and_then(Value::as_bool) {
            case_sensitive = cs;
        }
        if let Some(list) = p.get("max_edit_distance").and_then(Value::as_array) {
            rules.clear();
            for r in list {
                let min = r
                    .get("min_query_chars")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as usize;
                let d = r.get("distance").and_then(Value::as_u64).unwrap_or(0) as usize;
                if d > 2 || min < 3 * (d + 1) {
                    return Err(ApiError::invalid(format!(
                        "invalid Fuzzy params for '{attr}': distance must be 0..2 and min_query_chars >= 3 * (distance + 1)"
                    )));
                }
                rules.push((min, d));
            }
        }
    }
    let chars = query.chars().count();
    let distance = rules
        .iter()
        .filter(|(min, _)| chars >= *min)
        .map(|(_, d)| *d)
        .max();
    let query = if case_sensitive {
        query
    } else {
        query.to_lowercase()
    };
    Ok(Extra::Fuzzy {
        query,
        distance,
        case_sensitive,
    })
}

fn normalize_operand(v: Value, elem: Option<Scalar>) -> ApiResult<Value> {
    match (elem, v) {
        (Some(Scalar::Datetime), Value::String(s)) => Ok(Value::from(parse_datetime(&s)?)),
        (Some(Scalar::Datetime), Value::Array(items)) => items
            .into_iter()
            .map(|i| normalize_operand(i, Some(Scalar::Datetime)))
            .collect::<ApiResult<Vec<_>>>()
            .map(Value::Array),
        (Some(Scalar::Uuid), Value::String(s)) => Ok(Value::String(s.to_lowercase())),
        (_, v) => Ok(v),
    }
}

/// Parses an ISO-8601 datetime (date mandatory) to epoch milliseconds, UTC.
pub fn parse_datetime(s: &str) -> ApiResult<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis()));
    }
    Err(ApiError::invalid(format!(
        "invalid datetime '{s}': expected ISO 8601 with a date"
    )))
}

/// Whether the attribute type is a vector column (used by include/exclude handling).
pub fn is_vector_attr(schema: &Schema, attr: &str) -> bool {
    schema
        .get(attr)
        .is_some_and(|s| s.ty.is_vector() || s.ty == AttrType::Sparse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(attrs: Value) -> Doc {
        let mut d = Doc::default();
        for (k, v) in attrs.as_object().unwrap() {
            d.attrs.insert(k.clone(), v.clone());
        }
        d
    }

    fn check(f: Value, d: &Doc) -> bool {
        parse(&f, &Schema::new(), false)
            .unwrap()
            .matches(&Id::Uint(1), d, EvalCtx::default())
    }

    #[test]
    fn null_semantics_follow_the_live_service() {
        let d = doc(json!({"a": 5}));
        assert!(check(json!(["b", "Lt", 3]), &d), "Lt matches null");
        assert!(check(json!(["b", "Lte", 3]), &d), "Lte matches null");
        assert!(!check(json!(["b", "Gt", 3]), &d));
        assert!(check(json!(["b", "Eq", null]), &d));
        assert!(check(json!(["a", "NotEq", null]), &d));
        assert!(!check(json!(["a", "Lt", null]), &d));
    }

    #[test]
    fn combinators_and_sets() {
        let d = doc(json!({"tags": ["x", "y"], "n": 4, "s": "Hello World"}));
        assert!(check(
            json!(["And", [["tags", "Contains", "x"], ["n", "Gte", 4]]]),
            &d
        ));
        assert!(check(
            json!([
                "Or",
                [
                    ["tags", "Contains", "z"],
                    ["tags", "ContainsAny", ["z", "y"]]
                ]
            ]),
            &d
        ));
        assert!(check(json!(["Not", ["n", "In", [1, 2]]]), &d));
        assert!(check(json!(["tags", "AnyGt", "x"]), &d));
        assert!(check(json!(["s", "IGlob", "hello*"]), &d));
        assert!(!check(json!(["s", "Glob", "hello*"]), &d));
        assert!(check(json!(["id", "Eq", 1]), &d));
        assert!(check(json!({"n": ["Eq", 4]}), &d), "legacy object form");
    }

    #[test]
    fn type_mismatch_texts() {
        let mut schema = Schema::new();
        crate::schema::apply_change(
            &mut schema,
            "tags",
            crate::schema::parse_attr("tags", &json!("[]string")).unwrap(),
        )
        .unwrap();
        let err = parse(&json!(["tags", "Contains", ["a", "b"]]), &schema, false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("filter error in key `tags`: type mismatch, Contains expects string")
        );
        let err = parse(&json!(["tags", "ContainsAny", "a"]), &schema, false).unwrap_err();
        assert!(err.to_string().contains("ContainsAny expects []string"));
    }

    #[test]
    fn a_scalar_against_an_array_attribute_means_contains() {
        let mut schema = Schema::new();
        crate::schema::apply_change(
            &mut schema,
            "tags",
            crate::schema::parse_attr("tags", &json!("[]string")).unwrap(),
        )
        .unwrap();
        let check = |f: Value, d: &Doc| {
            parse(&f, &schema, false)
                .unwrap()
                .matches(&Id::Uint(1), d, EvalCtx::default())
        };
        let red_blue = doc(json!({"tags": ["red", "blue"]}));
        let green = doc(json!({"tags": ["green"]}));
        let empty = doc(json!({"tags": []}));
        let missing = doc(json!({}));
        for (f, want) in [
            (json!(["tags", "In", "red"]), [true, false, false, false]),
            (json!(["tags", "NotIn", "red"]), [false, true, true, true]),
            // Eq/NotEq compare the whole value: the contract has `Contains` for element-wise
            // matching and no array rule for `Eq` (a scalar never equals an array).
            (json!(["tags", "Eq", "blue"]), [false, false, false, false]),
            (json!(["tags", "NotEq", "blue"]), [true, true, true, true]),
            // The array forms keep their meanings: In = intersection, Eq = the whole array.
            (
                json!(["tags", "In", ["green", "x"]]),
                [false, true, false, false],
            ),
            (
                json!(["tags", "Eq", ["green"]]),
                [false, true, false, false],
            ),
            (json!(["tags", "Eq", null]), [false, false, false, true]),
        ] {
            let got = [&red_blue, &green, &empty, &missing].map(|d| check(f.clone(), d));
            assert_eq!(got, want, "{f}");
        }
        // Still rejected: a scalar ContainsAny (live text), an array Contains, a wrong element
        // type, and a scalar In on a scalar attribute.
        let err = parse(&json!(["tags", "ContainsAny", "a"]), &schema, false).unwrap_err();
        assert!(
            err.to_string().contains("ContainsAny expects []string"),
            "{err}"
        );
        let err = parse(&json!(["tags", "In", 5]), &schema, false).unwrap_err();
        assert!(
            err.to_string().contains("type mismatch, In expects string"),
            "{err}"
        );
        crate::schema::apply_change(
            &mut schema,
            "color",
            crate::schema::parse_attr("color", &json!("string")).unwrap(),
        )
        .unwrap();
        let err = parse(&json!(["color", "In", "red"]), &schema, false).unwrap_err();
        assert!(err.to_string().contains("In expects []string"), "{err}");
    }

    #[test]
    fn levenshtein_is_bounded() {
        assert_eq!(levenshtein("kitten", "sitting", 3), 3);
        assert_eq!(levenshtein("timout", "timeout", 1), 1);
        assert!(levenshtein("abc", "xyzxyz", 1) > 1);
    }

    #[test]
    fn datetimes_parse_to_millis() {
        assert_eq!(parse_datetime("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(parse_datetime("yesterday").is_err());
    }
}

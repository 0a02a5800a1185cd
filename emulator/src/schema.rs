//! Namespace schemas: attribute types, index flags, inference from written values, updates, and
//! the two renderings the wire uses (verbose for `GET /v1/.../schema`, compact for metadata).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::model::IdKind;

/// Scalar element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scalar {
    String,
    Int,
    Uint,
    Float,
    Uuid,
    Datetime,
    Bool,
}

impl Scalar {
    fn name(self) -> &'static str {
        match self {
            Scalar::String => "string",
            Scalar::Int => "int",
            Scalar::Uint => "uint",
            Scalar::Float => "float",
            Scalar::Uuid => "uuid",
            Scalar::Datetime => "datetime",
            Scalar::Bool => "bool",
        }
    }

    fn parse(s: &str) -> Option<Scalar> {
        Some(match s {
            "string" => Scalar::String,
            "int" => Scalar::Int,
            "uint" => Scalar::Uint,
            "float" => Scalar::Float,
            "uuid" => Scalar::Uuid,
            "datetime" => Scalar::Datetime,
            "bool" => Scalar::Bool,
            _ => return None,
        })
    }
}

/// An attribute's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrType {
    Scalar(Scalar),
    Array(Scalar),
    Vector { dims: usize, f16: bool },
    MultiVector { dims: usize, f16: bool },
    Sparse,
}

impl AttrType {
    /// Parses the wire type string (`string`, `[]int`, `[768]f32`, `[][128]f16`, `{}f16`).
    pub fn parse(s: &str) -> Option<AttrType> {
        if s == "{}f16" {
            return Some(AttrType::Sparse);
        }
        if let Some(rest) = s.strip_prefix("[]") {
            if rest.starts_with('[') {
                let (dims, f16) = parse_vector(rest)?;
                return Some(AttrType::MultiVector { dims, f16 });
            }
            return Scalar::parse(rest).map(AttrType::Array);
        }
        if s.starts_with('[') {
            let (dims, f16) = parse_vector(s)?;
            return Some(AttrType::Vector { dims, f16 });
        }
        Scalar::parse(s).map(AttrType::Scalar)
    }

    /// The wire type string.
    pub fn render(self) -> String {
        match self {
            AttrType::Scalar(s) => s.name().to_string(),
            AttrType::Array(s) => format!("[]{}", s.name()),
            AttrType::Vector { dims, f16 } => {
                format!("[{dims}]{}", if f16 { "f16" } else { "f32" })
            }
            AttrType::MultiVector { dims, f16 } => {
                format!("[][{dims}]{}", if f16 { "f16" } else { "f32" })
            }
            AttrType::Sparse => "{}f16".into(),
        }
    }

    pub fn is_vector(self) -> bool {
        matches!(self, AttrType::Vector { .. } | AttrType::MultiVector { .. })
    }

    /// The element type of scalars and arrays.
    pub fn element(self) -> Option<Scalar> {
        match self {
            AttrType::Scalar(s) | AttrType::Array(s) => Some(s),
            _ => None,
        }
    }
}

fn parse_vector(s: &str) -> Option<(usize, bool)> {
    let rest = s.strip_prefix('[')?;
    let (dims, ty) = rest.split_once(']')?;
    let dims: usize = dims.parse().ok()?;
    let f16 = match ty {
        "f32" => false,
        "f16" => true,
        _ => return None,
    };
    (dims > 0).then_some((dims, f16))
}

/// Full-text-search settings of one attribute, with the documented defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FtsConfig {
    pub tokenizer: String,
    pub case_sensitive: bool,
    pub language: String,
    pub stemming: bool,
    pub remove_stopwords: bool,
    pub ascii_folding: bool,
    pub max_token_length: u32,
    pub k1: f64,
    pub b: f64,
    pub k3: f64,
}

impl Default for FtsConfig {
    fn default() -> Self {
        FtsConfig {
            tokenizer: "word_v4".into(),
            case_sensitive: false,
            language: "english".into(),
            stemming: false,
            remove_stopwords: true,
            ascii_folding: false,
            max_token_length: 39,
            k1: 1.2,
            b: 0.75,
            k3: 8.0,
        }
    }
}

const TOKENIZERS: &[&str] = &[
    "word_v0",
    "word_v1",
    "word_v2",
    "word_v3",
    "word_v4",
    "pre_tokenized_array",
];
const LANGUAGES: &[&str] = &[
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
];

impl FtsConfig {
    fn from_json(attr: &str, v: &Value) -> ApiResult<Option<FtsConfig>> {
        let obj = match v {
            Value::Bool(false) | Value::Null => return Ok(None),
            Value::Bool(true) => return Ok(Some(FtsConfig::default())),
            Value::Object(o) => o,
            _ => {
                return Err(ApiError::deserialize(format!(
                    "schema.{attr}.full_text_search: expected a boolean or an object"
                )));
            }
        };
        let mut cfg = FtsConfig::default();
        for (k, v) in obj {
            let bad = || {
                ApiError::invalid(format!(
                    "invalid full_text_search.{k} for attribute '{attr}'"
                ))
            };
            match k.as_str() {
                "tokenizer" => {
                    let t = v
                        .as_str()
                        .filter(|t| TOKENIZERS.contains(t))
                        .ok_or_else(bad)?;
                    cfg.tokenizer = t.into();
                }
                "language" => {
                    let l = v
                        .as_str()
                        .filter(|l| LANGUAGES.contains(l))
                        .ok_or_else(bad)?;
                    cfg.language = l.into();
                }
                "case_sensitive" => cfg.case_sensitive = v.as_bool().ok_or_else(bad)?,
                "stemming" => cfg.stemming = v.as_bool().ok_or_else(bad)?,
                "remove_stopwords" => cfg.remove_stopwords = v.as_bool().ok_or_else(bad)?,
                "ascii_folding" => cfg.ascii_folding = v.as_bool().ok_or_else(bad)?,
                "max_token_length" => {
                    let n = v
                        .as_u64()
                        .filter(|n| (1..=254).contains(n))
                        .ok_or_else(bad)?;
                    cfg.max_token_length = n as u32;
                }
                "k1" => cfg.k1 = v.as_f64().filter(|x| *x >= 0.0).ok_or_else(bad)?,
                "b" => {
                    cfg.b = v
                        .as_f64()
                        .filter(|x| (0.0..=1.0).contains(x))
                        .ok_or_else(bad)?
                }
                "k3" => cfg.k3 = v.as_f64().filter(|x| *x >= 0.0).ok_or_else(bad)?,
                _ => {}
            }
        }
        Ok(Some(cfg))
    }

    fn to_json(&self) -> Value {
        json!({
            "k1": self.k1, "b": self.b, "k3": self.k3,
            "language": self.language, "stemming": self.stemming,
            "remove_stopwords": self.remove_stopwords, "case_sensitive": self.case_sensitive,
            "tokenizer": self.tokenizer, "max_token_length": self.max_token_length,
            "ascii_folding": self.ascii_folding,
        })
    }
}

/// One attribute's schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttrSchema {
    pub ty: AttrType,
    pub filterable: Option<bool>,
    pub fts: Option<FtsConfig>,
    pub regex: bool,
    pub glob: bool,
    pub fuzzy: bool,
    pub ann: bool,
    pub late_interaction: bool,
    pub sparse_knn: Option<Value>,
    pub embed: Option<Value>,
}

impl AttrSchema {
    pub fn new(ty: AttrType) -> Self {
        AttrSchema {
            ty,
            filterable: None,
            fts: None,
            regex: false,
            glob: false,
            fuzzy: false,
            ann: false,
            late_interaction: false,
            sparse_knn: None,
            embed: None,
        }
    }

    /// Whether filters may use this attribute.
    pub fn is_filterable(&self) -> bool {
        if self.ty.is_vector() || self.ty == AttrType::Sparse {
            return false;
        }
        self.filterable.unwrap_or(self.fts.is_none() && !self.regex)
    }

    fn verbose(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.ty.render()));
        if self.ty.is_vector() {
            m.insert("ann".into(), Value::Bool(self.ann));
            m.insert("filterable".into(), Value::Null);
            m.insert("full_text_search".into(), Value::Null);
            return Value::Object(m);
        }
        let filterable = if self.ty == AttrType::Sparse {
            Value::Null
        } else {
            Value::Bool(self.is_filterable())
        };
        m.insert("filterable".into(), filterable);
        m.insert(
            "full_text_search".into(),
            self.fts.as_ref().map_or(Value::Null, FtsConfig::to_json),
        );
        self.flags(&mut m);
        Value::Object(m)
    }

    fn compact(&self, metric: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.ty.render()));
        if self.ty.is_vector() {
            let mut ann = Map::new();
            if let Some(metric) = metric {
                ann.insert("distance_metric".into(), Value::String(metric.into()));
            }
            if self.late_interaction {
                ann.insert("late_interaction".into(), Value::Bool(true));
            }
            m.insert("ann".into(), Value::Object(ann));
            return Value::Object(m);
        }
        if self.ty != AttrType::Sparse {
            m.insert("filterable".into(), Value::Bool(self.is_filterable()));
        }
        if let Some(fts) = &self.fts {
            m.insert("full_text_search".into(), fts.to_json());
        }
        self.flags(&mut m);
        Value::Object(m)
    }

    fn flags(&self, m: &mut Map<String, Value>) {
        if self.regex {
            m.insert("regex".into(), Value::Bool(true));
        }
        if self.glob {
            m.insert("glob".into(), Value::Bool(true));
        }
        if self.fuzzy {
            m.insert("fuzzy".into(), Value::Bool(true));
        }
        if let Some(s) = &self.sparse_knn {
            m.insert("sparse_knn".into(), s.clone());
        }
        if let Some(e) = &self.embed {
            m.insert("embed".into(), e.clone());
        }
    }
}

/// What a schema update asks for one attribute.
pub enum SchemaChange {
    Set(Box<AttrSchemaUpdate>),
    Drop,
}

/// A parsed attribute schema from a request: the type plus only the flags the caller set.
pub struct AttrSchemaUpdate {
    pub ty: AttrType,
    pub filterable: Option<bool>,
    pub fts: Option<Option<FtsConfig>>,
    pub regex: Option<bool>,
    pub glob: Option<bool>,
    pub fuzzy: Option<bool>,
    pub ann: Option<bool>,
    pub late_interaction: bool,
    pub ann_has_metric: bool,
    pub sparse_knn: Option<Value>,
    pub embed: Option<Option<Value>>,
}

/// Parses one attribute's schema from a write's `schema` or the schema route.
pub fn parse_attr(attr: &str, v: &Value) -> ApiResult<SchemaChange> {
    let bad_type =
        |t: &str| ApiError::invalid(format!("invalid type '{t}' for attribute '{attr}'"));
    match v {
        Value::String(t) => {
            let ty = AttrType::parse(t).ok_or_else(|| bad_type(t))?;
            Ok(SchemaChange::Set(Box::new(AttrSchemaUpdate::of_type(ty))))
        }
        Value::Object(o) => {
            if o.get("drop") == Some(&Value::Bool(true)) {
                if o.len() > 1 {
                    return Err(ApiError::invalid(format!(
                        "attribute '{attr}': drop cannot be combined with other settings"
                    )));
                }
                return Ok(SchemaChange::Drop);
            }
            let t = match o.get("type") {
                Some(Value::String(t)) => t,
                Some(_) => {
                    return Err(ApiError::deserialize(format!(
                        "schema.{attr}.type: expected a string"
                    )));
                }
                None => {
                    return Err(ApiError::deserialize(format!(
                        "schema.{attr}: missing field `type`"
                    )));
                }
            };
            let ty = AttrType::parse(t).ok_or_else(|| bad_type(t))?;
            let mut u = AttrSchemaUpdate::of_type(ty);
            let flag = |k: &str| -> ApiResult<Option<bool>> {
                match o.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Bool(b)) => Ok(Some(*b)),
                    Some(_) => Err(ApiError::deserialize(format!(
                        "schema.{attr}.{k}: expected a boolean"
                    ))),
                }
            };
            u.filterable = flag("filterable")?;
            u.regex = flag("regex")?;
            u.glob = flag("glob")?;
            u.fuzzy = flag("fuzzy")?;
            if let Some(f) = o.get("full_text_search") {
                u.fts = Some(FtsConfig::from_json(attr, f)?);
            }
            match o.get("ann") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => u.ann = Some(*b),
                Some(Value::Object(a)) => {
                    u.ann = Some(true);
                    u.ann_has_metric = a.contains_key("distance_metric");
                    u.late_interaction = a.get("late_interaction") == Some(&Value::Bool(true));
                }
                Some(_) => {
                    return Err(ApiError::deserialize(format!(
                        "schema.{attr}.ann: expected a boolean or an object"
                    )));
                }
            }
            u.sparse_knn = o.get("sparse_knn").filter(|v| !v.is_null()).cloned();
            if let Some(e) = o.get("embed") {
                u.embed = Some((!e.is_null()).then(|| e.clone()));
            }
            Ok(SchemaChange::Set(Box::new(u)))
        }
        _ => Err(ApiError::deserialize(format!(
            "schema.{attr}: data did not match any variant of untagged enum AttributeSchema"
        ))),
    }
}

impl AttrSchemaUpdate {
    fn of_type(ty: AttrType) -> Self {
        AttrSchemaUpdate {
            ty,
            filterable: None,
            fts: None,
            regex: None,
            glob: None,
            fuzzy: None,
            ann: None,
            late_interaction: false,
            ann_has_metric: false,
            sparse_knn: None,
            embed: None,
        }
    }
}

/// A namespace's attribute schemas (never includes `id`).
pub type Schema = BTreeMap<String, AttrSchema>;

/// Most attribute names a namespace may have (contract §3.4 / §9, current docs).
pub const MAX_ATTRIBUTES: usize = 1024;

/// Largest value of a filterable attribute, in bytes (contract §9: "filterable value 4 KiB").
pub const MAX_FILTERABLE_VALUE_BYTES: usize = 4096;

/// Attribute names are at most 128 bytes and must not start with `$` (contract §3.4, §9), whether
/// declared in `schema` or inferred from a written document.
pub fn check_attr_name(attr: &str) -> ApiResult<()> {
    if attr.starts_with('$') {
        return Err(ApiError::invalid(format!(
            "attribute name '{attr}' must not start with '$'"
        )));
    }
    if attr.len() > 128 {
        return Err(ApiError::invalid(format!(
            "attribute name '{attr}' is longer than 128 bytes"
        )));
    }
    Ok(())
}

/// Applies one parsed change to the schema; returns whether an FTS config changed (re-tokenize).
pub fn apply_change(schema: &mut Schema, attr: &str, change: SchemaChange) -> ApiResult<bool> {
    check_attr_name(attr)?;
    let u = match change {
        SchemaChange::Drop => {
            schema.remove(attr);
            return Ok(false);
        }
        SchemaChange::Set(u) => u,
    };
    if u.ann_has_metric {
        return Err(ApiError::invalid(
            "`distance_metric` must be specified as a field at the top level of the write request, not in the `ann` configuration for an attribute",
        ));
    }
    if u.ty.is_vector() && u.ann != Some(true) && schema.get(attr).is_none_or(|s| !s.ann) {
        return Err(if attr == "vector" {
            ApiError::invalid(
                "the `vector` attribute must have `ann` set to `true`, eg: `\"vector\": { \"type\": \"[1024]f32\", \"ann\": true }`",
            )
        } else {
            ApiError::invalid(format!("vector attribute '{attr}' must have ann:true"))
        });
    }
    let entry = match schema.get_mut(attr) {
        Some(existing) => {
            if existing.ty != u.ty {
                return Err(ApiError::SchemaChange {
                    message: format!(
                        "🙅 invalid schema update for attribute '{attr}': cannot change attribute type from {} to {}",
                        existing.ty.render(),
                        u.ty.render()
                    ),
                    attribute: attr.to_string(),
                });
            }
            existing
        }
        None => {
            if u.ty.is_vector() && schema.values().filter(|s| s.ty.is_vector()).count() >= 2 {
                return Err(ApiError::invalid(
                    "a namespace may have at most 2 vector attributes",
                ));
            }
            schema
                .entry(attr.to_string())
                .or_insert_with(|| AttrSchema::new(u.ty))
        }
    };
    let mut fts_changed = false;
    if let Some(f) = u.filterable {
        entry.filterable = Some(f);
    }
    if let Some(fts) = u.fts {
        fts_changed = entry.fts != fts;
        entry.fts = fts;
    }
    if let Some(r) = u.regex {
        entry.regex = r;
    }
    if let Some(g) = u.glob {
        entry.glob = g;
    }
    if let Some(f) = u.fuzzy {
        entry.fuzzy = f;
    }
    if let Some(a) = u.ann {
        entry.ann = a;
        entry.late_interaction = u.late_interaction;
    }
    if u.sparse_knn.is_some() {
        entry.sparse_knn = u.sparse_knn;
    }
    if let Some(e) = u.embed {
        entry.embed = e;
    }
    Ok(fts_changed)
}

/// Infers a type from a written value; `None` for nulls and empty arrays.
pub fn infer_type(attr: &str, v: &Value) -> Option<AttrType> {
    let scalar = |v: &Value| match v {
        Value::String(_) => Some(Scalar::String),
        Value::Bool(_) => Some(Scalar::Bool),
        Value::Number(n) if n.is_f64() => Some(Scalar::Float),
        Value::Number(_) => Some(Scalar::Int),
        _ => None,
    };
    match v {
        Value::Array(items) if attr == "vector" => Some(AttrType::Vector {
            dims: items.len(),
            f16: false,
        }),
        Value::Array(items) => items.iter().find_map(scalar).map(AttrType::Array),
        other => scalar(other).map(AttrType::Scalar),
    }
}

/// Verbose rendering (`GET /v1/namespaces/{ns}/schema`).
pub fn render_verbose(schema: &Schema, id_kind: Option<IdKind>) -> Value {
    let mut m = Map::new();
    m.insert(
        "id".into(),
        json!({"type": id_type_name(id_kind), "filterable": null, "full_text_search": null}),
    );
    for (k, s) in schema {
        m.insert(k.clone(), s.verbose());
    }
    Value::Object(m)
}

/// Compact rendering (metadata `schema`).
pub fn render_compact(schema: &Schema, id_kind: Option<IdKind>, metric: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!({"type": id_type_name(id_kind)}));
    for (k, s) in schema {
        m.insert(k.clone(), s.compact(metric));
    }
    Value::Object(m)
}

fn id_type_name(kind: Option<IdKind>) -> &'static str {
    match kind {
        Some(IdKind::Str) => "string",
        Some(IdKind::Uuid) => "uuid",
        Some(IdKind::Uint) | None => "uint",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_round_trip() {
        for t in [
            "string",
            "[]int",
            "[768]f32",
            "[][128]f16",
            "{}f16",
            "datetime",
            "[]uuid",
        ] {
            assert_eq!(AttrType::parse(t).unwrap().render(), t);
        }
        assert!(AttrType::parse("[0]f32").is_none());
        assert!(AttrType::parse("text").is_none());
    }

    #[test]
    fn type_change_is_rejected_with_attribute() {
        let mut s = Schema::new();
        apply_change(&mut s, "n", parse_attr("n", &json!("int")).unwrap()).unwrap();
        let err =
            apply_change(&mut s, "n", parse_attr("n", &json!("string")).unwrap()).unwrap_err();
        match err {
            ApiError::SchemaChange { message, attribute } => {
                assert_eq!(attribute, "n");
                assert!(message.contains("cannot change attribute type from int to string"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn fts_disables_default_filterable() {
        let mut s = Schema::new();
        let c = parse_attr("t", &json!({"type": "string", "full_text_search": true})).unwrap();
        apply_change(&mut s, "t", c).unwrap();
        assert!(!s["t"].is_filterable());
        assert_eq!(
            render_verbose(&s, None)["t"]["full_text_search"]["k3"],
            json!(8.0)
        );
    }

    #[test]
    fn vector_without_ann_is_rejected() {
        let mut s = Schema::new();
        let c = parse_attr("vector", &json!({"type": "[2]f32"})).unwrap();
        assert!(
            apply_change(&mut s, "vector", c)
                .unwrap_err()
                .to_string()
                .contains("`ann` set to `true`")
        );
    }
}

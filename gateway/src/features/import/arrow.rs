//! Arrow record batches as Turbopuffer writes: the stream's schema checked once
//! ([`check_schema`]), then each slice of rows encoded as one columnar upsert ([`encode`]),
//! written straight into the request body bytes (no JSON tree).
//!
//! Column mapping (every column but `id` becomes an attribute of the same name):
//!
//! | Arrow | JSON |
//! |---|---|
//! | `Utf8`, `LargeUtf8`, `Utf8View` | string |
//! | `Int8`…`Int64`, `UInt8`…`UInt64` | integer |
//! | `Float32`, `Float64` | number (NaN and infinities are refused: JSON has none) |
//! | `Boolean` | `true` / `false` |
//! | `List`, `LargeList`, `FixedSizeList` of any of these | array (`vector`: `FixedSizeList` or `List` of `Float32`/`Float64`) |
//! | `Dictionary` of any of these (a column, e.g. a pandas categorical) | the value |
//! | `Null`, or a null slot | `null` |
//!
//! `id` is required, a string or integer column, never null. Names starting with `_hevlayer_`
//! are the gateway's own and refused, like a JSON write's; duplicate names are refused (a JSON
//! object cannot hold them). Anything else (dates, decimals, structs, nested dictionaries,
//! binary) is refused naming the column.

use std::io::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};

/// The id column's name.
pub const ID: &str = "id";
/// The vector column's name (the one that needs a `distance_metric`).
pub const VECTOR: &str = "vector";

/// Whether `t` is a type [`encode`] writes.
fn supported(t: &DataType) -> bool {
    use DataType as T;
    match t {
        T::Null
        | T::Boolean
        | T::Int8
        | T::Int16
        | T::Int32
        | T::Int64
        | T::UInt8
        | T::UInt16
        | T::UInt32
        | T::UInt64
        | T::Float32
        | T::Float64
        | T::Utf8
        | T::LargeUtf8
        | T::Utf8View => true,
        T::List(f) | T::LargeList(f) | T::FixedSizeList(f, _) => supported(f.data_type()),
        _ => false,
    }
}

/// Checks a stream's schema before any of its rows is written. `Err` is the message.
pub fn check_schema(schema: &Schema) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    let mut id = None;
    for f in schema.fields() {
        let name = f.name();
        if !seen.insert(name.as_str()) {
            return Err(format!("column {name:?} appears twice"));
        }
        if name.starts_with(scatter::RESERVED_PREFIX) {
            return Err(format!(
                "column {name:?}: attributes starting with {} are reserved for the gateway",
                scatter::RESERVED_PREFIX
            ));
        }
        let plain = match f.data_type() {
            DataType::Dictionary(_, values) => values.as_ref(),
            t => t,
        };
        if !supported(plain) {
            return Err(format!(
                "column {name:?} has type {}, which import does not map (strings, integers, \
                 floats, booleans and lists of them)",
                f.data_type()
            ));
        }
        if name == ID {
            id = Some(f.data_type());
        }
    }
    match id {
        None => Err("the stream has no `id` column".into()),
        Some(t)
            if t.is_integer()
                || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) =>
        {
            Ok(())
        }
        Some(t) => Err(format!(
            "column \"id\" has type {t}; ids are strings or integers"
        )),
    }
}

/// Whether the schema has the vector column (the write then names a `distance_metric`).
pub fn has_vector(schema: &Schema) -> bool {
    schema.column_with_name(VECTOR).is_some()
}

/// A column ready to be written: a dictionary column is read through its keys, decoded once
/// per record batch.
pub enum Column<'a> {
    Plain(&'a dyn Array),
    Dictionary {
        column: &'a dyn Array,
        values: &'a dyn Array,
        keys: Vec<usize>,
    },
}

/// A record batch's columns, ready for [`encode`] (prepared once, encoded slice by slice).
pub struct Prepared<'a> {
    names: Vec<&'a str>,
    columns: Vec<Column<'a>>,
    rows: usize,
}

impl Prepared<'_> {
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Prepares `batch` (its schema checked).
pub fn prepare(batch: &RecordBatch) -> Prepared<'_> {
    let names = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.as_any_dictionary_opt() {
            Some(d) => Column::Dictionary {
                column: c.as_ref(),
                values: d.values().as_ref(),
                keys: d.normalized_keys(),
            },
            None => Column::Plain(c.as_ref()),
        })
        .collect();
    Prepared {
        names,
        columns,
        rows: batch.num_rows(),
    }
}

/// Encodes rows `offset .. offset + len` of a prepared batch as one write body:
/// `{"upsert_columns": {"id": [...], "<column>": [...], ...}, "distance_metric": ...}`
/// (the metric only when given). `Err` names the row and column that cannot be written.
pub fn encode(
    batch: &Prepared<'_>,
    offset: usize,
    len: usize,
    distance_metric: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    out.extend_from_slice(b"{\"upsert_columns\":{");
    for (c, (name, column)) in batch.names.iter().zip(&batch.columns).enumerate() {
        if c > 0 {
            out.push(b',');
        }
        json_str(out, name);
        out.push(b':');
        out.push(b'[');
        let is_id = *name == ID;
        for row in offset..offset + len {
            if row > offset {
                out.push(b',');
            }
            let (array, i) = match column {
                Column::Plain(a) => (*a, row),
                Column::Dictionary { column, .. } if column.is_null(row) => (*column, row),
                Column::Dictionary { values, keys, .. } => (*values, keys[row]),
            };
            if is_id && array.is_null(i) {
                return Err(format!("row {row}: id is null"));
            }
            value(out, array, i).map_err(|e| format!("row {row}, column {name:?}: {e}"))?;
        }
        out.push(b']');
    }
    out.push(b'}');
    if let Some(m) = distance_metric {
        out.extend_from_slice(b",\"distance_metric\":");
        json_str(out, m);
    }
    out.push(b'}');
    Ok(())
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn int(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn float(out: &mut Vec<u8>, v: f64, shortest: impl FnOnce(&mut Vec<u8>)) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("{v} is not a JSON number"));
    }
    shortest(out);
    Ok(())
}

fn mismatch() -> String {
    "the column's data does not match its type".into()
}

/// Writes slot `i` of `a` as JSON.
fn value(out: &mut Vec<u8>, a: &dyn Array, i: usize) -> Result<(), String> {
    use DataType as T;
    if a.is_null(i) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    macro_rules! ints {
        ($t:ty) => {{
            let p = a.as_primitive_opt::<$t>().ok_or_else(mismatch)?;
            int(out, p.value(i));
        }};
    }
    match a.data_type() {
        T::Null => out.extend_from_slice(b"null"),
        T::Boolean => {
            let b = a.as_boolean_opt().ok_or_else(mismatch)?.value(i);
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        T::Int8 => ints!(Int8Type),
        T::Int16 => ints!(Int16Type),
        T::Int32 => ints!(Int32Type),
        T::Int64 => ints!(Int64Type),
        T::UInt8 => ints!(UInt8Type),
        T::UInt16 => ints!(UInt16Type),
        T::UInt32 => ints!(UInt32Type),
        T::UInt64 => ints!(UInt64Type),
        T::Float32 => {
            let v = a
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(mismatch)?
                .value(i);
            // The shortest text that reads back as this f32 (what a vector stores).
            float(out, f64::from(v), |out| {
                let _ = serde_json::to_writer(out, &v);
            })?;
        }
        T::Float64 => {
            let v = a
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(mismatch)?
                .value(i);
            float(out, v, |out| {
                let _ = serde_json::to_writer(out, &v);
            })?;
        }
        T::Utf8 => json_str(out, a.as_string_opt::<i32>().ok_or_else(mismatch)?.value(i)),
        T::LargeUtf8 => json_str(out, a.as_string_opt::<i64>().ok_or_else(mismatch)?.value(i)),
        T::Utf8View => json_str(out, a.as_string_view_opt().ok_or_else(mismatch)?.value(i)),
        T::List(_) => list(out, &a.as_list_opt::<i32>().ok_or_else(mismatch)?.value(i))?,
        T::LargeList(_) => list(out, &a.as_list_opt::<i64>().ok_or_else(mismatch)?.value(i))?,
        T::FixedSizeList(..) => list(
            out,
            &a.as_fixed_size_list_opt().ok_or_else(mismatch)?.value(i),
        )?,
        t => return Err(format!("type {t} is not mapped")),
    }
    Ok(())
}

fn list(out: &mut Vec<u8>, items: &dyn Array) -> Result<(), String> {
    out.push(b'[');
    for j in 0..items.len() {
        if j > 0 {
            out.push(b',');
        }
        value(out, items, j)?;
    }
    out.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder, StringBuilder};
    use arrow_array::types::Int8Type;
    use arrow_array::{
        ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, StringArray, UInt64Array,
    };
    use arrow_schema::Field;
    use serde_json::{Value, json};

    use super::*;

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    fn encoded(b: &RecordBatch, offset: usize, len: usize, metric: Option<&str>) -> Value {
        let mut out = Vec::new();
        encode(&prepare(b), offset, len, metric, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn columns_become_upsert_columns() {
        let mut vec = FixedSizeListBuilder::new(Float32Builder::new(), 2);
        for (x, y) in [(0.1f32, 0.2f32), (1.5, -2.0), (3.0, 4.25)] {
            vec.values().append_value(x);
            vec.values().append_value(y);
            vec.append(true);
        }
        let mut tags = ListBuilder::new(StringBuilder::new());
        tags.append_value([Some("a"), Some("b")]);
        tags.append_null();
        tags.append_value([Some("c\"q")]);
        let b = batch(vec![
            ("id", Arc::new(UInt64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("vector", Arc::new(vec.finish())),
            (
                "title",
                Arc::new(StringArray::from(vec![Some("x"), None, Some("é")])),
            ),
            ("n", Arc::new(Int64Array::from(vec![-1, 0, 1 << 40]))),
            ("f", Arc::new(Float64Array::from(vec![0.5, 1e300, -0.0]))),
            ("ok", Arc::new(BooleanArray::from(vec![true, false, true]))),
            ("tags", Arc::new(tags.finish())),
        ]);
        check_schema(&b.schema()).unwrap();
        assert!(has_vector(&b.schema()));
        let v = encoded(&b, 1, 2, Some("cosine_distance"));
        assert_eq!(
            v,
            json!({"upsert_columns": {
                "id": [2, 3], "vector": [[1.5, -2.0], [3.0, 4.25]], "title": [null, "é"],
                "n": [0, 1u64 << 40], "f": [1e300, -0.0], "ok": [false, true],
                "tags": [null, ["c\"q"]],
            }, "distance_metric": "cosine_distance"})
        );
        // f32 values keep their shortest form (0.1f32 is written `0.1`, not 0.10000000149…).
        let mut out = Vec::new();
        encode(&prepare(&b), 0, 1, None, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("[[0.1,0.2]]"), "{text}");
        assert!(!text.contains("distance_metric"));
    }

    #[test]
    fn dictionary_columns_write_their_values() {
        let cat: DictionaryArray<Int8Type> = vec![Some("red"), None, Some("blue"), Some("red")]
            .into_iter()
            .collect();
        let b = batch(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
            ),
            ("color", Arc::new(cat)),
        ]);
        check_schema(&b.schema()).unwrap();
        assert_eq!(
            encoded(&b, 1, 3, None),
            json!({"upsert_columns": {"id": [2, 3, 4], "color": [null, "blue", "red"]}})
        );
    }

    #[test]
    fn schemas_the_import_cannot_write_are_refused() {
        let ids = || Arc::new(StringArray::from(vec!["a"])) as ArrayRef;
        let no_id = batch(vec![("x", ids())]);
        assert!(
            check_schema(&no_id.schema())
                .unwrap_err()
                .contains("no `id`")
        );
        let reserved = batch(vec![("id", ids()), ("_hevlayer_shard", ids())]);
        assert!(
            check_schema(&reserved.schema())
                .unwrap_err()
                .contains("reserved")
        );
        let float_id = batch(vec![(
            "id",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        )]);
        assert!(check_schema(&float_id.schema()).is_err());
        let dup = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("id", DataType::Utf8, false),
        ]);
        assert!(check_schema(&dup).unwrap_err().contains("twice"));
        let date = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("d", DataType::Date32, true),
        ]);
        assert!(check_schema(&date).unwrap_err().contains("\"d\""));
    }

    #[test]
    fn null_ids_and_non_finite_floats_name_the_row() {
        let b = batch(vec![(
            "id",
            Arc::new(StringArray::from(vec![Some("a"), None])) as ArrayRef,
        )]);
        let mut out = Vec::new();
        assert_eq!(
            encode(&prepare(&b), 0, 2, None, &mut out).unwrap_err(),
            "row 1: id is null"
        );
        let b = batch(vec![
            ("id", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("f", Arc::new(Float64Array::from(vec![f64::NAN]))),
        ]);
        let e = encode(&prepare(&b), 0, 1, None, &mut out).unwrap_err();
        assert!(e.starts_with("row 0, column \"f\""), "{e}");
    }
}

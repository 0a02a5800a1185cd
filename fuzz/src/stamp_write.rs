//! The write stamper (`scatter::stamp_write_with`) on arbitrary bytes, against the serde_json DOM
//! reference (`scatter::reference::check_stamp`): never a panic, the same result or the same
//! error, and an output that validates. Checked twice per input: the plain stamp, and with a shard
//! function and the largest timestamp. The ids the stamper reports as touched
//! (`scatter::stamp_write_touched`) are checked against the same DOM: the same ids (as JSON
//! values, as multisets) and the same whole-namespace verdict.

use scatter::reference::check_stamp;
use scatter::{IdRef, IdValue, Limits, StampOptions, TouchedIds};
use serde_json::Value;

fn shard(id: &IdRef<'_>) -> u32 {
    match id.value() {
        IdValue::Uint(n) => (n % 13) as u32,
        IdValue::Str(s) => s.len() as u32 % 13,
        IdValue::Other => 13,
    }
}

/// The target (module docs).
pub fn run(data: &[u8]) {
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_depth: 32,
    };
    if let Err(msg) = check_stamp(data, &StampOptions::new(1_700_000_000_000), &limits) {
        panic!("{msg}");
    }
    let opts = StampOptions {
        now_ms: u64::MAX,
        shard: Some(&shard),
        own_reserved: &[],
    };
    if let Err(msg) = check_stamp(data, &opts, &limits) {
        panic!("{msg}");
    }
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok((_, touched)) = scatter::stamp_write_touched(&body, &StampOptions::new(1), &limits)
        && let Ok(dom) = serde_json::from_slice::<Value>(data)
        && let Err(msg) = check_touched(&touched, &dom)
    {
        panic!("{msg}");
    }
}

/// The ids a write touches, read from its DOM (a body the stamper accepted).
fn reference(dom: &Value) -> (Vec<Value>, Vec<Value>, bool) {
    let (mut written, mut deleted, mut whole) = (Vec::new(), Vec::new(), false);
    let Some(top) = dom.as_object() else {
        return (written, deleted, true);
    };
    for (key, v) in top {
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "upsert_rows" | "patch_rows" => {
                for row in v.as_array().into_iter().flatten() {
                    if let Some(id) = row.get("id") {
                        written.push(id.clone());
                    }
                }
            }
            "upsert_columns" | "patch_columns" => {
                if let Some(ids) = v.get("id").and_then(Value::as_array) {
                    written.extend(ids.iter().cloned());
                }
            }
            "deletes" => match v.as_array() {
                Some(ids) => deleted.extend(ids.iter().cloned()),
                None => whole = true,
            },
            "patch_by_filter"
            | "delete_by_filter"
            | "copy_from_namespace"
            | "branch_from_namespace" => whole = true,
            _ => {}
        }
    }
    (written, deleted, whole)
}

fn check_touched(t: &TouchedIds<'_>, dom: &Value) -> Result<(), String> {
    let decode = |raws: &[&str]| -> Result<Vec<Value>, String> {
        raws.iter()
            .map(|r| serde_json::from_str::<Value>(r).map_err(|e| format!("raw id {r:?}: {e}")))
            .collect()
    };
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(Value::to_string);
        v
    };
    let (written, deleted, whole) = reference(dom);
    let got_written = sorted(decode(&t.written)?);
    let got_deleted = sorted(decode(&t.deleted)?);
    if got_written != sorted(written.clone()) {
        return Err(format!(
            "written ids {got_written:?}, reference {written:?}"
        ));
    }
    if got_deleted != sorted(deleted.clone()) {
        return Err(format!(
            "deleted ids {got_deleted:?}, reference {deleted:?}"
        ));
    }
    if t.whole_namespace != whole {
        return Err(format!(
            "whole_namespace {}, reference {whole}",
            t.whole_namespace
        ));
    }
    Ok(())
}

//! Computing a snapshot: one histogram pass ([`super::facets::Facets`]) over the rows a source
//! yields. Origin passes use [`crate::sources::origin::scan`] — the same paginated shard fan-out as scans,
//! bounded by the namespace's `scan.threads` — at a stable cut: the watcher's watermark when
//! there is one (the body's `watermark_ms`), else a strong read stamped with the start time.

use std::ops::ControlFlow;

use serde_json::Value;

use super::Job;
use super::Snapshots;
use super::facets::Facets;
use crate::core::error::GatewayError;
use crate::core::http::now_ms;
use crate::core::upstream::Upstream;
use crate::sources::origin::{self, OriginScan};
use crate::sources::snapshot_store::SnapshotBody;

/// The cut a snapshot is taken at: `(predicate watermark, watermark_ms of the body)`.
pub fn cut(snaps: &Snapshots, ns: &str) -> (Option<u64>, u64) {
    match snaps.core.watcher.snapshot(ns).1 {
        Some(wm) => (Some(wm), wm),
        None => (None, now_ms()),
    }
}

/// A histogram of `fields` over origin, optionally filtered.
pub async fn from_origin(
    snaps: &Snapshots,
    upstream: &Upstream,
    ns: &str,
    fields: &[String],
    filters: Option<Value>,
    page_size: usize,
    job: Option<&Job>,
) -> Result<SnapshotBody, GatewayError> {
    let (predicate, watermark_ms) = cut(snaps, ns);
    let total = match job {
        Some(_) => origin::approx_rows(upstream, ns).await,
        None => None,
    };
    let spec = OriginScan {
        namespace: ns.to_string(),
        filters,
        include_attributes: Value::from(fields.to_vec()),
        page_size,
        threads: origin::threads_for(&snaps.core, ns, None) as usize,
        shards: snaps.core.shards_of(ns),
        watermark: predicate,
    };
    let mut facets = Facets::new(fields, snaps.field_cap);
    origin::scan(upstream, &spec, |page| {
        for row in &page.rows {
            facets.add_row(row);
        }
        if let Some(j) = job {
            j.add_scanned(page.rows.len() as u64);
            if let Some(t) = total.filter(|t| *t > 0) {
                j.set_progress((facets.rows() as f64 / t as f64).min(0.99));
            }
            if j.is_cancelled() {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })
    .await?;
    let (rows, hist, skipped) = facets.finish();
    Ok(SnapshotBody::new(ns, watermark_ms, rows, hist, skipped))
}

/// Whether an unfiltered manual job's body joins the namespace's history, and the body to store:
/// `(merged, true)` when both it and the latest body saw the same data ([`merge_same_data`]);
/// else `(new, true)` when it covers every configured field, since it can then stand as the
/// latest view on its own, as an automatic body would (the case when there is no body yet, e.g.
/// the object store was down when the writer tried, or when the data moved on); else
/// `(new, false)`, stored by sha only. A body that covers only some configured fields over other
/// data stays out, so the latest view never loses one; so does an empty body when there is no
/// latest one (as for the writer, a namespace's first entry has rows).
pub fn history_body(
    configured: &[String],
    latest: Option<&SnapshotBody>,
    new: SnapshotBody,
    last_write_ms: u64,
) -> (SnapshotBody, bool) {
    if let Some(merged) = merge_same_data(latest, &new, last_write_ms) {
        return (merged, true);
    }
    let has = |name: &str| {
        new.fields.iter().any(|f| f.name == name)
            || new.fields_skipped.iter().any(|f| f.name == name)
    };
    let first_and_empty = latest.is_none() && new.row_count == 0;
    let joins = !first_and_empty && configured.iter().all(|c| has(c));
    (new, joins)
}

/// Merges a freshly computed body into the latest one when both saw the same data — no write
/// through this gateway after the latest body's cut (`last_write_ms`) and the same row count — so
/// a manual single-field job does not hide the other configured fields from the latest view. The
/// merged body takes the new cut. `None` when the data may differ.
pub fn merge_same_data(
    latest: Option<&SnapshotBody>,
    new: &SnapshotBody,
    last_write_ms: u64,
) -> Option<SnapshotBody> {
    let l = latest.filter(|l| {
        l.watermark_ms >= last_write_ms
            && l.watermark_ms <= new.watermark_ms
            && l.row_count == new.row_count
    })?;
    let names: Vec<&str> = new
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .chain(new.fields_skipped.iter().map(|f| f.name.as_str()))
        .collect();
    let mut fields = new.fields.clone();
    fields.extend(
        l.fields
            .iter()
            .filter(|f| !names.contains(&f.name.as_str()))
            .cloned(),
    );
    let mut skipped = new.fields_skipped.clone();
    skipped.extend(
        l.fields_skipped
            .iter()
            .filter(|f| !names.contains(&f.name.as_str()))
            .cloned(),
    );
    Some(SnapshotBody::new(
        &new.namespace,
        new.watermark_ms,
        new.row_count,
        fields,
        skipped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::snapshot_store::{FacetValue, FieldHistogram, SkippedField};

    fn body(wm: u64, rows: u64, fields: &[&str], skipped: &[&str]) -> SnapshotBody {
        let hist = |name: &&str| FieldHistogram {
            name: name.to_string(),
            values: vec![FacetValue {
                v: "x".into(),
                n: rows,
            }],
        };
        let skip = |name: &&str| SkippedField {
            name: name.to_string(),
            reason: "too_many_values".into(),
            distinct_observed: 9,
            cap: 1,
        };
        SnapshotBody::new(
            "ns",
            wm,
            rows,
            fields.iter().map(hist).collect(),
            skipped.iter().map(skip).collect(),
        )
    }

    fn configured(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn names(b: &SnapshotBody) -> Vec<&str> {
        b.fields.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn a_body_over_the_latest_data_is_merged_with_it() {
        let latest = body(10, 3, &["a", "b"], &[]);
        let new = body(12, 3, &["b"], &[]);
        let (joined, joins) = history_body(&configured(&["a", "b"]), Some(&latest), new, 9);
        assert!(joins);
        assert_eq!(names(&joined), ["a", "b"]);
        assert_eq!(joined.watermark_ms, 12);
    }

    #[test]
    fn without_a_latest_body_a_body_covering_every_configured_field_joins() {
        let new = body(12, 3, &["a"], &["b"]);
        let joins = |latest: Option<&SnapshotBody>, new: &SnapshotBody, last_write_ms| {
            let (body, joins) =
                history_body(&configured(&["a", "b"]), latest, new.clone(), last_write_ms);
            assert_eq!(&body, new, "stored as it is");
            joins
        };
        assert!(joins(None, &new, 9));
        // Not as a namespace's first entry without rows.
        let empty = body(12, 0, &["a", "b"], &[]);
        assert!(!joins(None, &empty, 9));
        // Over data the latest body did not see, too.
        let latest = body(10, 2, &["a", "b"], &[]);
        assert!(joins(Some(&latest), &new, 11));
    }

    #[test]
    fn a_body_missing_a_configured_field_stays_out_unless_it_can_be_merged() {
        let new = body(12, 3, &["a"], &[]);
        let joins = |latest: Option<&SnapshotBody>, last_write_ms| {
            let (body, joins) =
                history_body(&configured(&["a", "b"]), latest, new.clone(), last_write_ms);
            assert_eq!(body, new, "stored as it is");
            joins
        };
        assert!(!joins(None, 9));
        // The latest body saw other data (a write after its cut): no merge.
        let latest = body(10, 3, &["a", "b"], &[]);
        assert!(!joins(Some(&latest), 11));
        // A different row count: no merge.
        let latest = body(10, 2, &["a", "b"], &[]);
        assert!(!joins(Some(&latest), 9));
    }
}

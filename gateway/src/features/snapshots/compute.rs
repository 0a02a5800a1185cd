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

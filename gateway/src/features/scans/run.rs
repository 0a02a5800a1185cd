//! Ids and values jobs: the background passes behind `202 Accepted`, on the control runtime.
//!
//! - origin, filter selector: [`crate::origin::scan`] (keyset pages of `page_size` rows per
//!   shard, at most `threads` in flight, at the stable cut), `include_attributes: false` for ids
//!   and `[field]` for values;
//! - origin, `fts`/`ann` (values only): [`super::ranked`] with `[field]`;
//! - cache: [`super::cache::scan_rows`].
//!
//! Jobs update `documents_scanned` (rows read: origin rows fetched, cached documents read) and
//! `progress` (against the namespace's approximate row count when upstream reports one) after
//! every page, and stop between pages when deleted. Results are kept in memory with the job
//! ([`super::Scans`]); a values listing is capped at `gateway.scan.valuesCap` after the full pass
//! (exact counts, `truncated: true` when values were dropped). An ids job reserves the bytes of
//! the ids it gathered against the results budget after every page ([`super::results`]) and
//! fails, naming the budget, when they cannot fit.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scatter::values::{ValuesError, ValuesHistogram};
use serde_json::{Value, json};

use super::ranked::{self, RankedSpec};
use super::request::{Mode, Ranked, ScanRequest};
use super::resolve::Plan;
use super::results::id_bytes;
use super::{Job, ScanOutcome};
use super::{Reservation, ScanResults, Scans};
use crate::core::error::GatewayError;
use crate::core::upstream::Upstream;
use crate::sources::cache_rows::scan_rows;
use crate::sources::documents::wire_id;
use crate::sources::origin::{self, MAX_PAGE, OriginScan};

/// What a pass accumulates.
enum Acc<'a> {
    Ids {
        ids: Vec<String>,
        /// Estimated bytes of `ids` ([`super::results::id_bytes`]).
        bytes: usize,
        /// `bytes`, held against the results budget (grown page by page).
        reservation: Reservation<'a>,
        /// Why the ids no longer fit the budget.
        over: Option<String>,
    },
    Values {
        field: String,
        hist: ValuesHistogram,
        error: Option<ValuesError>,
    },
}

impl<'a> Acc<'a> {
    fn new(req: &ScanRequest, scans: &'a Scans) -> Acc<'a> {
        match (req.mode, &req.field) {
            (Mode::Values, Some(f)) => Acc::Values {
                field: f.clone(),
                hist: ValuesHistogram::new(),
                error: None,
            },
            _ => Acc::Ids {
                ids: Vec::new(),
                bytes: 0,
                reservation: scans.reservation(),
                over: None,
            },
        }
    }

    /// `include_attributes` for upstream pages.
    fn include(&self) -> Value {
        match self {
            Acc::Ids { .. } => json!(false),
            Acc::Values { field, .. } => json!([field]),
        }
    }

    fn push_id(&mut self, id: String) {
        if let Acc::Ids { ids, bytes, .. } = self {
            *bytes += id_bytes(&id);
            ids.push(id);
        }
    }

    fn add_json_row(&mut self, row: &Value) {
        match self {
            Acc::Ids { .. } => {
                if let Some(id) = row.get("id").and_then(wire_id) {
                    self.push_id(id);
                }
            }
            Acc::Values { field, hist, error } => {
                if error.is_some() {
                    return;
                }
                let value = row
                    .get(field.as_str())
                    .and_then(|v| sonic_rs::to_value(v).ok());
                if let Err(e) = hist.add(value.as_ref()) {
                    *error = Some(e);
                }
            }
        }
    }

    /// After a page: holds the ids gathered so far against the results budget (evicting the
    /// oldest kept results as needed); records the failure when they cannot fit.
    fn charge(&mut self, scans: &Scans) {
        if let Acc::Ids {
            bytes,
            reservation,
            over,
            ..
        } = self
            && over.is_none()
        {
            match reservation.grow_to(*bytes) {
                Ok(evicted) => scans.mark_evicted(&evicted),
                Err(total) => *over = Some(scans.over_budget(total)),
            }
        }
    }

    fn failed(&self) -> Option<String> {
        match self {
            Acc::Values {
                error: Some(e),
                field,
                ..
            } => Some(format!("field {field:?}: {e}")),
            Acc::Ids { over, .. } => over.clone(),
            _ => None,
        }
    }
}

fn progress(job: &Job, total: Option<u64>) {
    if let Some(t) = total.filter(|t| *t > 0) {
        job.set_progress((job.documents_scanned() as f64 / t as f64).min(0.99));
    }
}

/// Runs an ids or values job to completion (or failure), storing its results.
pub async fn run(
    scans: Arc<Scans>,
    upstream: Upstream,
    ns: String,
    req: ScanRequest,
    plan: Plan,
    job: Arc<Job>,
) {
    let started = Instant::now();
    let (mode, filtered, served_by) =
        (req.mode.as_str(), req.filters.is_some(), plan.source_name());
    let finished = |status: &str| {
        super::scan_finished(&ns, mode, filtered, served_by, status, started.elapsed())
    };
    let outcome = pass(&scans, &upstream, &ns, &req, plan, &job).await;
    if job.is_cancelled() {
        return;
    }
    match outcome {
        Ok((acc, mut extra)) => {
            if let Some(why) = acc.failed() {
                crate::core::metrics::feature_event(
                    "layer_scan_events_total",
                    "event",
                    "job_failed",
                    1,
                );
                finished("failed");
                job.fail(why);
                return;
            }
            let (results, reservation) = match acc {
                Acc::Ids {
                    mut ids,
                    reservation,
                    ..
                } => {
                    extra.total = Some(ids.len());
                    ids.shrink_to_fit();
                    (ScanResults::Ids(ids), reservation)
                }
                Acc::Values { hist, .. } => {
                    let listing = hist.finish(scans.values_cap());
                    extra.unique_values = Some(listing.distinct);
                    extra.truncated = Some(listing.truncated);
                    extra.total = Some(listing.values.len());
                    (ScanResults::Values(listing), scans.reservation())
                }
            };
            if let Err(why) = scans.store_results(&ns, &job.id, results, reservation) {
                crate::core::metrics::feature_event(
                    "layer_scan_events_total",
                    "event",
                    "job_failed",
                    1,
                );
                finished("failed");
                job.fail(why);
                return;
            }
            crate::core::metrics::feature_event(
                "layer_scan_events_total",
                "event",
                "job_completed",
                1,
            );
            finished("ok");
            job.complete(|o| {
                let evicted = o.results_evicted;
                *o = extra;
                o.results_evicted = evicted;
            });
        }
        Err(e) => {
            crate::core::metrics::feature_event(
                "layer_scan_events_total",
                "event",
                "job_failed",
                1,
            );
            finished("failed");
            job.fail(e.to_string());
        }
    }
}

async fn pass<'a>(
    scans: &'a Scans,
    upstream: &Upstream,
    ns: &str,
    req: &ScanRequest,
    plan: Plan,
    job: &Job,
) -> Result<(Acc<'a>, ScanOutcome), GatewayError> {
    let mut acc = Acc::new(req, scans);
    let mut extra = ScanOutcome::default();
    let total = crate::sources::origin::approx_rows(upstream, ns).await;
    match plan {
        Plan::Cache {
            filter,
            warmed_through,
        } => {
            let mut seen = 0;
            scan_rows(&scans.core.cache.tier, ns, &filter, None, |page, stats| {
                job.add_scanned(stats.scanned - seen);
                seen = stats.scanned;
                for m in page {
                    match &mut acc {
                        Acc::Ids { .. } => acc.push_id(m.id),
                        Acc::Values { field, hist, error } => {
                            if error.is_none()
                                && let Err(e) = hist.add_row(&m.row, field)
                            {
                                *error = Some(e);
                            }
                        }
                    }
                }
                acc.charge(scans);
                progress(job, total);
                stop_if(job.is_cancelled() || acc.failed().is_some())
            })
            .await
            .map_err(|e| GatewayError::CacheCold(format!("the document cache failed: {e}")))?;
            if let Some(w) = warmed_through {
                extra.stable_as_of = Some(w);
            }
        }
        Plan::Origin {
            threads,
            shards,
            cut,
        } => {
            match &req.ranked {
                None => {
                    let spec = OriginScan {
                        namespace: ns.to_string(),
                        filters: req.filters.clone(),
                        include_attributes: acc.include(),
                        page_size: req.page_size,
                        threads: threads as usize,
                        shards,
                        watermark: cut,
                    };
                    origin::scan(upstream, &spec, |page| {
                        job.add_scanned(page.rows.len() as u64);
                        for row in &page.rows {
                            acc.add_json_row(row);
                        }
                        acc.charge(scans);
                        progress(job, total);
                        stop_if(job.is_cancelled() || acc.failed().is_some())
                    })
                    .await?;
                }
                Some(ranked) => {
                    let spec = RankedSpec {
                        namespace: ns,
                        ranked,
                        filters: req.filters.as_ref(),
                        include_attributes: acc.include(),
                        shards,
                        threads: threads as usize,
                        exhaustive: req.exhaustive,
                        deadline: Instant::now() + Duration::from_secs(req.timeout_seconds),
                        cut,
                        page: MAX_PAGE,
                    };
                    let out = ranked::run(upstream, &spec, |rows| {
                        job.add_scanned(rows.len() as u64);
                        for row in rows {
                            acc.add_json_row(row);
                        }
                    })
                    .await?;
                    extra.bounded = Some(out.bounded());
                    extra.timed_out = Some(out.timed_out);
                    extra.shards_saturated = Some(out.shards_saturated);
                    if matches!(ranked, Ranked::Ann { .. }) {
                        extra.approximate = Some(true);
                    }
                }
            }
            if let Some(w) = cut {
                extra.stable_as_of = Some(w);
            }
        }
        Plan::SnapshotCount(_) | Plan::SnapshotValues(_) => {
            return Err(GatewayError::Internal(
                "snapshot plans complete at creation".into(),
            ));
        }
    }
    Ok((acc, extra))
}

fn stop_if(stop: bool) -> ControlFlow<()> {
    if stop {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

//! Listing a feed newest first: the recent window merged with the objects in the store. Start at
//! [`list`].
//!
//! The walk reads date directories newest first and, inside each, objects by the timestamp in
//! their name (their newest record) descending. Because a stored batch never spans more than
//! [`MAX_BATCH_SPAN_NANOS`], the name bounds every record in the object, which gives three cuts
//! that stay exact when several gateways write the same prefix with overlapping batches:
//!
//! - an object named before `from` ends the walk (every later object is older still);
//! - an object whose oldest possible record is at or past the upper bound (`to` / `before`) is
//!   skipped unread, so deep pagination does not re-read newer objects;
//! - once `limit + 1` candidates are in hand and the `limit + 1`-th is newer than the next
//!   object's name, nothing left can make the page, and the walk stops.
//!
//! Objects this gateway wrote whose records are all still in the recent window are not read.
//! Records seen twice (in the window and in an object) are merged by timestamp, trace id and
//! document id.
//!
//! **Bounded work per call.** A selective filter (a `trace_id`, a rare tag) without `from` could
//! otherwise read the whole history before `limit + 1` matches turn up. Each call reads at most
//! [`MAX_OBJECTS_READ`] objects and stops starting new store requests after [`SOFT_TIME`]; a
//! store request that fails, or is still running at [`HARD_TIME`], also ends the walk. The walk
//! then stops *in front of* the next object: every record newer than that object's name has been
//! seen, so the page holds the matches at or after that point and `next_cursor` is that point (a
//! `before` value: the next call continues strictly older). **A page may therefore hold fewer
//! than `limit` entries — even none — while `next_cursor` is present**; only a missing
//! `next_cursor` means the listing is complete. Pages followed by their cursors always add up to
//! exactly the full answer. The walk never stops where the cursor could not move past the
//! request's own upper bound (objects straddling `before` must all be read first, whatever the
//! budget); a failure there, or before anything was read (e.g. the store is unreachable), is the
//! call's error (the routes answer 502).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::{
    Feed, MAX_BATCH_SPAN_NANOS, Record, date_dir, date_dir_end, is_date_dir, key_nanos,
};
use super::params::ListQuery;
use super::window::View;
use crate::core::store::{ObjectStore, StoreError};

/// Objects one list call reads at most before it answers with what it found and a cursor.
pub const MAX_OBJECTS_READ: usize = 64;

/// After this long a list call starts no new store request where it can stop with a cursor.
pub const SOFT_TIME: Duration = Duration::from_secs(5);

/// Longest a list call may spend on the store: an unreachable S3 endpoint is retried by
/// `object_store` for a long time, and clients give up after 30 s.
pub const HARD_TIME: Duration = Duration::from_secs(20);

/// How much store work one list call may do (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Objects read at most (listings are not counted).
    pub max_reads: usize,
    /// No new store request after this instant, where the walk can stop with a cursor.
    pub soft: Instant,
    /// Every store request is abandoned at this instant.
    pub hard: Instant,
}

impl Budget {
    /// [`MAX_OBJECTS_READ`], [`SOFT_TIME`] and [`HARD_TIME`] from now.
    pub fn standard() -> Self {
        let now = Instant::now();
        Budget {
            max_reads: MAX_OBJECTS_READ,
            soft: now + SOFT_TIME,
            hard: now + HARD_TIME,
        }
    }

    fn spent(&self, reads: usize) -> bool {
        reads >= self.max_reads || Instant::now() >= self.soft
    }

    /// Whether the walk may stop with cursor `here`: it must have read something, and the
    /// cursor must move past the request's own upper bound.
    fn can_stop(reads: usize, here: u64, upper: u64) -> bool {
        reads > 0 && here < upper
    }
}

/// Why a list call has no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the object store did not answer within {} s", HARD_TIME.as_secs())]
    TimedOut,
}

/// One page of a feed.
#[derive(Debug)]
pub struct Page<R> {
    /// Newest first, at most `limit` (possibly fewer, even none, when the walk's budget ran out:
    /// see the module docs).
    pub records: Vec<Arc<R>>,
    /// The `before` of the next page, when there is one.
    pub next_cursor: Option<u64>,
}

/// Reading statistics of one list call (tests and tracing).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// Objects read (successfully; a vanished object counts as read).
    pub objects_read: usize,
    pub objects_skipped: usize,
    pub unparseable_lines: usize,
    /// The walk stopped on its budget (or a store failure) before the listing was complete.
    pub cut_short: bool,
}

/// Lists `ns`'s records of feed `R` matching `q`: the window's view merged with the store,
/// within the [`Budget::standard`] budget.
pub async fn list<R: Record>(
    store: &ObjectStore,
    ns: &str,
    q: &ListQuery,
    view: View<R>,
) -> Result<(Page<R>, Walk), ListError> {
    list_within(store, ns, q, view, Budget::standard()).await
}

/// [`list`] within an explicit budget.
pub async fn list_within<R: Record>(
    store: &ObjectStore,
    ns: &str,
    q: &ListQuery,
    view: View<R>,
    budget: Budget,
) -> Result<(Page<R>, Walk), ListError> {
    let want = q.limit + 1;
    let mut walk = Walk::default();
    let mut found = Candidates::new(want, view.records);
    if q.until == Some(0) || matches!((q.from, q.until), (Some(f), Some(u)) if f >= u) {
        return Ok((found.into_page(q.limit, None), walk));
    }
    let upper = q.until.unwrap_or(u64::MAX);
    // Every record at or after `seen` (and before `upper`) is in `found` or was filtered out.
    // The walk may stop with a cursor only where that cursor is below `upper` (progress).
    let mut seen = upper;
    let mut cut = None;
    let root = format!("{}/{ns}/", R::FEED.prefix());
    let first_date = q.from.map(date_dir);
    // The newest date that can hold a record older than `until`: objects are filed under the
    // date of their newest record, which is at most one batch span past the oldest.
    let last_date = q
        .until
        .map(|u| date_dir(u.saturating_sub(1).saturating_add(MAX_BATCH_SPAN_NANOS)));
    let mut dates = timed(&budget, store.list_dirs(&root)).await?;
    dates.retain(|d| {
        is_date_dir(d)
            && first_date.as_deref().is_none_or(|f| d.as_str() >= f)
            && last_date.as_deref().is_none_or(|l| d.as_str() <= l)
    });
    'dates: for date in dates.iter().rev() {
        // Every record of this date and older ones is older than the date's end.
        let here = date_dir_end(date).map_or(seen, |end| seen.min(end));
        let can_stop = Budget::can_stop(walk.objects_read, here, upper);
        if can_stop && budget.spent(walk.objects_read) {
            cut = Some(here);
            break;
        }
        let listed = match timed(&budget, store.list(&format!("{root}{date}/"))).await {
            Ok(listed) => listed,
            Err(e) if can_stop => {
                warn_cut_short(R::FEED, ns, &e);
                cut = Some(here);
                break;
            }
            Err(e) => return Err(e),
        };
        let mut objects: Vec<(u64, String)> = listed
            .into_iter()
            .filter_map(|o| key_nanos(&o.key).map(|n| (n, o.key)))
            .collect();
        objects.sort_unstable_by(|a, b| b.cmp(a));
        for (newest, key) in objects {
            if q.from.is_some_and(|f| newest < f) {
                break 'dates;
            }
            if found.complete_above(newest) {
                break 'dates;
            }
            let oldest_possible = newest.saturating_sub(MAX_BATCH_SPAN_NANOS);
            if q.until.is_some_and(|u| oldest_possible >= u) || view.covered.contains(&key) {
                walk.objects_skipped += 1;
                seen = seen.min(newest);
                continue;
            }
            // Every object named after this one has been read or skipped.
            let here = seen.min(newest.saturating_add(1));
            let can_stop = Budget::can_stop(walk.objects_read, here, upper);
            if can_stop && budget.spent(walk.objects_read) {
                cut = Some(here);
                break 'dates;
            }
            let body = match timed(&budget, store.get(&key)).await {
                Ok(Some(body)) => body,
                // Gone between the listing and the read (e.g. a lifecycle rule): nothing to add.
                Ok(None) => {
                    walk.objects_read += 1;
                    seen = seen.min(newest);
                    continue;
                }
                Err(e) if can_stop => {
                    warn_cut_short(R::FEED, ns, &e);
                    cut = Some(here);
                    break 'dates;
                }
                Err(e) => return Err(e),
            };
            walk.objects_read += 1;
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<R>(line) {
                    Ok(r) if q.accepts(&r) => found.push(Arc::new(r)),
                    Ok(_) => {}
                    Err(_) => walk.unparseable_lines += 1,
                }
            }
            found.settle();
            seen = seen.min(newest);
        }
    }
    if walk.unparseable_lines > 0 {
        tracing::warn!(
            feed = R::FEED.prefix(),
            ns,
            lines = walk.unparseable_lines,
            "unparseable history lines skipped"
        );
    }
    walk.cut_short = cut.is_some();
    Ok((found.into_page(q.limit, cut), walk))
}

/// A store failure the walk answers around (a page with a cursor) instead of failing.
fn warn_cut_short(feed: Feed, ns: &str, e: &ListError) {
    tracing::warn!(
        feed = feed.prefix(),
        ns,
        error = %e,
        "history listing cut short by a store failure; next_cursor continues it"
    );
}

/// One store request, abandoned at the budget's hard deadline.
async fn timed<T>(
    budget: &Budget,
    request: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, ListError> {
    match tokio::time::timeout_at(budget.hard, request).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ListError::TimedOut),
    }
}

/// The best `want` records seen so far.
struct Candidates<R> {
    want: usize,
    records: Vec<Arc<R>>,
}

impl<R: Record> Candidates<R> {
    fn new(want: usize, window: Vec<Arc<R>>) -> Self {
        let mut c = Candidates {
            want,
            records: window,
        };
        c.settle();
        c
    }

    fn push(&mut self, r: Arc<R>) {
        self.records.push(r);
    }

    /// Newest first, duplicates merged, at most `want`.
    fn settle(&mut self) {
        self.records.sort_by(|a, b| {
            b.nanos()
                .cmp(&a.nanos())
                .then_with(|| b.trace_id().cmp(&a.trace_id()))
                .then_with(|| b.discriminator().cmp(a.discriminator()))
        });
        self.records.dedup_by(|a, b| {
            a.nanos() == b.nanos()
                && a.trace_id() == b.trace_id()
                && a.discriminator() == b.discriminator()
        });
        self.records.truncate(self.want);
    }

    /// Whether no record at or before `newest` can enter the page any more.
    fn complete_above(&self, newest: u64) -> bool {
        self.records.len() >= self.want
            && self
                .records
                .last()
                .is_some_and(|last| last.nanos() > newest)
    }

    /// The page. `cut`: the walk stopped early and only records at or after it are complete;
    /// older ones are left to the next page, which starts there.
    fn into_page(mut self, limit: usize, cut: Option<u64>) -> Page<R> {
        self.settle();
        if let Some(c) = cut {
            self.records.retain(|r| r.nanos() >= c);
        }
        let next_cursor = if self.records.len() > limit {
            self.records.get(limit.saturating_sub(1)).map(|r| r.nanos())
        } else {
            cut
        };
        self.records.truncate(limit);
        Page {
            records: self.records,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests;

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

use std::sync::Arc;

use super::entry::{MAX_BATCH_SPAN_NANOS, Record, date_dir, is_date_dir, key_nanos};
use super::params::ListQuery;
use super::window::View;
use crate::store::{ObjectStore, StoreError};

/// One page of a feed.
#[derive(Debug)]
pub struct Page<R> {
    /// Newest first, at most `limit`.
    pub records: Vec<Arc<R>>,
    /// The `before` of the next page, when there is one.
    pub next_cursor: Option<u64>,
}

/// Reading statistics of one list call (tests and tracing).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    pub objects_read: usize,
    pub objects_skipped: usize,
    pub unparseable_lines: usize,
}

/// Lists `ns`'s records of feed `R` matching `q`: the window's view merged with the store.
pub async fn list<R: Record>(
    store: &ObjectStore,
    ns: &str,
    q: &ListQuery,
    view: View<R>,
) -> Result<(Page<R>, Walk), StoreError> {
    let want = q.limit + 1;
    let mut walk = Walk::default();
    let mut found = Candidates::new(want, view.records);
    if q.until == Some(0) || matches!((q.from, q.until), (Some(f), Some(u)) if f >= u) {
        return Ok((found.into_page(q.limit), walk));
    }
    let root = format!("{}/{ns}/", R::FEED.prefix());
    let first_date = q.from.map(date_dir);
    // The newest date that can hold a record older than `until`: objects are filed under the
    // date of their newest record, which is at most one batch span past the oldest.
    let last_date = q
        .until
        .map(|u| date_dir(u.saturating_sub(1).saturating_add(MAX_BATCH_SPAN_NANOS)));
    let mut dates = store.list_dirs(&root).await?;
    dates.retain(|d| {
        is_date_dir(d)
            && first_date.as_deref().is_none_or(|f| d.as_str() >= f)
            && last_date.as_deref().is_none_or(|l| d.as_str() <= l)
    });
    'dates: for date in dates.iter().rev() {
        let mut objects: Vec<(u64, String)> = store
            .list(&format!("{root}{date}/"))
            .await?
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
                continue;
            }
            // Gone between the listing and the read (e.g. a lifecycle rule): nothing to add.
            let Some(body) = store.get(&key).await? else {
                continue;
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
    Ok((found.into_page(q.limit), walk))
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

    fn into_page(mut self, limit: usize) -> Page<R> {
        self.settle();
        let next_cursor = (self.records.len() > limit)
            .then(|| self.records.get(limit.saturating_sub(1)).map(|r| r.nanos()))
            .flatten();
        self.records.truncate(limit);
        Page {
            records: self.records,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use bytes::Bytes;

    use super::super::entry::{ClickEvent, Feed, object_key, rfc3339};
    use super::*;

    const DAY: u64 = 86_400_000_000_000;
    /// 2025-05-22T00:00:00Z.
    const T0: u64 = 1_747_872_000_000_000_000;

    fn click(n: u64, trace: &str, doc: &str, tags: &[&str]) -> ClickEvent {
        ClickEvent {
            timestamp: rfc3339(n),
            timestamp_nanos: n,
            trace_id: trace.into(),
            namespace: "ns".into(),
            doc_id: doc.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            source: "fetch".into(),
            served_from: "origin".into(),
        }
    }

    fn memory() -> ObjectStore {
        ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory")
    }

    async fn put(store: &ObjectStore, records: &[ClickEvent]) -> String {
        let newest = records.iter().map(|r| r.timestamp_nanos).max().unwrap();
        let key = object_key(Feed::Clickstream, "ns", newest);
        let mut body = Vec::new();
        for r in records {
            serde_json::to_writer(&mut body, r).unwrap();
            body.push(b'\n');
        }
        store.put(&key, Bytes::from(body)).await.unwrap();
        key
    }

    fn empty() -> View<ClickEvent> {
        View {
            records: Vec::new(),
            covered: HashSet::new(),
        }
    }

    fn nanos(p: &Page<ClickEvent>) -> Vec<u64> {
        p.records.iter().map(|r| r.timestamp_nanos).collect()
    }

    /// Two writers whose batches overlap in time, across a date boundary, plus junk keys.
    async fn fixture() -> (ObjectStore, Vec<u64>) {
        let s = memory();
        let mut all = Vec::new();
        for writer in 0..2u64 {
            for batch in 0..6u64 {
                let base = T0 - DAY / 2 + batch * (DAY / 4) + writer * 7;
                let records: Vec<ClickEvent> = (0..5)
                    .map(|i| click(base + i * 1000, "t", &format!("w{writer}"), &["a"]))
                    .collect();
                all.extend(records.iter().map(|r| r.timestamp_nanos));
                put(&s, &records).await;
            }
        }
        s.put(
            "clickstream/ns/2025-05-22/notes.txt",
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
        s.put("clickstream/ns/misc/1.jsonl", Bytes::from_static(b"x"))
            .await
            .unwrap();
        all.sort_unstable_by(|a, b| b.cmp(a));
        (s, all)
    }

    #[tokio::test]
    async fn paging_visits_every_record_once_in_order() {
        let (s, all) = fixture().await;
        for limit in [1, 3, 7, 50] {
            let mut seen = Vec::new();
            let mut q = ListQuery {
                limit,
                ..ListQuery::default()
            };
            loop {
                let (page, _) = list(&s, "ns", &q, empty()).await.unwrap();
                assert!(page.records.len() <= limit);
                seen.extend(nanos(&page));
                match page.next_cursor {
                    Some(c) => {
                        assert_eq!(Some(&c), seen.last(), "the cursor is the last record");
                        q.until = Some(c);
                    }
                    None => break,
                }
            }
            assert_eq!(seen, all, "limit {limit}");
        }
    }

    #[tokio::test]
    async fn bounds_skip_objects_and_stop_early() {
        let (s, all) = fixture().await;
        // The newest page reads only the newest objects.
        let q = ListQuery {
            limit: 3,
            ..ListQuery::default()
        };
        let (page, walk) = list(&s, "ns", &q, empty()).await.unwrap();
        assert_eq!(nanos(&page), all[..3]);
        assert!(walk.objects_read <= 2, "{walk:?}");
        // A deep cursor skips the newer objects without reading them.
        let q = ListQuery {
            limit: 2,
            until: Some(all[all.len() - 3]),
            ..ListQuery::default()
        };
        let (page, walk) = list(&s, "ns", &q, empty()).await.unwrap();
        assert_eq!(nanos(&page), all[all.len() - 2..]);
        assert_eq!(page.next_cursor, None);
        // Newer dates are not even listed; newer objects of the cursor's date are skipped unread.
        assert_eq!(walk.objects_read, 2, "{walk:?}");
        assert!(walk.objects_skipped >= 2, "{walk:?}");
        // A window in time.
        let q = ListQuery {
            from: Some(T0),
            until: Some(T0 + DAY / 4 + 8),
            limit: 500,
            ..ListQuery::default()
        };
        let (page, _) = list(&s, "ns", &q, empty()).await.unwrap();
        let want: Vec<u64> = all
            .iter()
            .copied()
            .filter(|n| *n >= T0 && *n < T0 + DAY / 4 + 8)
            .collect();
        assert_eq!(nanos(&page), want);
        assert!(!want.is_empty());
        // Empty ranges never touch the store.
        let q = ListQuery {
            from: Some(5),
            until: Some(5),
            ..ListQuery::default()
        };
        assert!(
            list(&s, "ns", &q, empty())
                .await
                .unwrap()
                .0
                .records
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_window_merges_without_duplicates_and_covers_its_objects() {
        let s = memory();
        let stored: Vec<ClickEvent> = (0..4).map(|i| click(T0 + i, "t1", "d", &["a"])).collect();
        let key = put(&s, &stored).await;
        // Not yet flushed: only in the window.
        let pending = click(T0 + 10, "t1", "d", &["a"]);
        let mut records: Vec<Arc<ClickEvent>> =
            stored.iter().cloned().map(Arc::new).rev().collect();
        records.insert(0, Arc::new(pending));
        let view = View {
            records: records.clone(),
            covered: HashSet::new(),
        };
        let q = ListQuery::default();
        let (page, walk) = list(&s, "ns", &q, view).await.unwrap();
        assert_eq!(nanos(&page), [T0 + 10, T0 + 3, T0 + 2, T0 + 1, T0]);
        assert_eq!(walk.objects_read, 1);
        let view = View {
            records,
            covered: HashSet::from([key]),
        };
        let (page, walk) = list(&s, "ns", &q, view).await.unwrap();
        assert_eq!(page.records.len(), 5);
        assert_eq!((walk.objects_read, walk.objects_skipped), (0, 1));
    }

    #[tokio::test]
    async fn filters_apply_to_stored_records_and_junk_lines_are_skipped() {
        let s = memory();
        let key = put(
            &s,
            &[
                click(T0 + 1, "t1", "a", &["x", "y"]),
                click(T0 + 2, "t2", "b", &["x"]),
                click(T0 + 3, "t1", "c", &["y"]),
            ],
        )
        .await;
        let mut body = s.get(&key).await.unwrap().unwrap().to_vec();
        body.extend_from_slice(b"{not json\n");
        s.put(&key, Bytes::from(body)).await.unwrap();
        let q = ListQuery::parse("trace_id=t1&tag=y").unwrap();
        let (page, walk) = list(&s, "ns", &q, empty()).await.unwrap();
        let docs: Vec<&str> = page.records.iter().map(|r| r.doc_id.as_str()).collect();
        assert_eq!(docs, ["c", "a"]);
        assert_eq!(walk.unparseable_lines, 1);
        // Another namespace and an empty store list nothing.
        let (page, _) = list(&s, "other", &q, empty()).await.unwrap();
        assert!(page.records.is_empty());
    }
}

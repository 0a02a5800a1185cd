//! Tests of the feed listing: ordering, cuts, merging with the window, paging and the
//! bounded-work cursor.

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
    let mut records: Vec<Arc<ClickEvent>> = stored.iter().cloned().map(Arc::new).rev().collect();
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

/// A budget of `max_reads` objects and no time limit to speak of.
fn reads(max_reads: usize) -> Budget {
    let far = Instant::now() + Duration::from_secs(3600);
    Budget {
        max_reads,
        soft: far,
        hard: far,
    }
}

/// Four days of history from one writer, six objects a day of five records each (batches do
/// not overlap). Trace "rare" has one record in the oldest object and one mid-history; every
/// third record carries tag "b". Also returns a window that holds (and covers) the two
/// newest objects, as the writing gateway's would.
async fn long_history() -> (ObjectStore, Vec<ClickEvent>, View<ClickEvent>) {
    let s = memory();
    let mut all = Vec::new();
    let mut window = View {
        records: Vec::new(),
        covered: HashSet::new(),
    };
    let mut i = 0u64;
    for day in 0..4u64 {
        for batch in 0..6u64 {
            let base = T0 + day * DAY + batch * (DAY / 6);
            let records: Vec<ClickEvent> = (0..5u64)
                .map(|r| {
                    i += 1;
                    let trace = if i == 1 || i == 61 { "rare" } else { "t" };
                    let tags: &[&str] = if i.is_multiple_of(3) {
                        &["a", "b"]
                    } else {
                        &["a"]
                    };
                    click(base + r * 1000, trace, &format!("d{i}"), tags)
                })
                .collect();
            let key = put(&s, &records).await;
            if day == 3 && batch >= 4 {
                window.covered.insert(key);
                window.records.extend(records.iter().cloned().map(Arc::new));
            }
            all.extend(records);
        }
    }
    window.records.reverse();
    all.reverse();
    (s, all, window)
}

/// Follows the cursor from `q` to the end under `budget` (fresh each call); returns every
/// record in order, the pages, and how many pages were short but had a cursor.
async fn follow(
    s: &ObjectStore,
    mut q: ListQuery,
    window: &View<ClickEvent>,
    budget: impl Fn() -> Budget,
    max_reads: Option<usize>,
) -> (Vec<u64>, usize, usize) {
    let (mut seen, mut pages, mut short) = (Vec::new(), 0, 0);
    loop {
        pages += 1;
        assert!(pages < 1000, "the cursor does not move: {q:?}");
        let view = View {
            records: window
                .records
                .iter()
                .filter(|r| q.accepts(&***r))
                .cloned()
                .collect(),
            covered: window.covered.clone(),
        };
        let (page, walk) = list_within(s, "ns", &q, view, budget()).await.unwrap();
        if let Some(max) = max_reads {
            assert!(walk.objects_read <= max, "{walk:?} {q:?}");
        }
        assert!(page.records.len() <= q.limit);
        let got = nanos(&page);
        assert!(got.iter().all(|n| q.until.is_none_or(|u| *n < u)));
        seen.extend(got);
        match page.next_cursor {
            Some(c) => {
                assert!(q.until.is_none_or(|u| c < u), "the cursor moves on");
                if page.records.len() < q.limit {
                    assert!(walk.cut_short, "{walk:?}");
                    short += 1;
                }
                q.until = Some(c);
            }
            None => break,
        }
    }
    (seen, pages, short)
}

#[tokio::test]
async fn a_spent_budget_answers_with_a_cursor_and_the_pages_add_up() {
    let (s, all, window) = long_history().await;
    for max_reads in [1, 2, 5] {
        for limit in [1, 2, 50] {
            for filter in [
                "",
                "trace_id=rare",
                "tag=b",
                "tag=b&from=2025-05-23T12:00:00Z",
            ] {
                let mut q = ListQuery::parse(filter).unwrap();
                q.limit = limit;
                let want: Vec<u64> = all
                    .iter()
                    .filter(|r| q.accepts(*r))
                    .map(|r| r.timestamp_nanos)
                    .collect();
                assert!(!want.is_empty());
                let (got, pages, short) =
                    follow(&s, q, &window, || reads(max_reads), Some(max_reads)).await;
                assert_eq!(got, want, "{filter:?} limit {limit} reads {max_reads}");
                if filter == "trace_id=rare" {
                    // 22 objects to read for two matches: the budget cut pages short.
                    assert!(short > 0, "{pages} pages");
                    assert!(pages >= 22usize.div_ceil(max_reads), "{pages} pages");
                }
            }
        }
    }
    // The standard budget finds both rare records in one call here, with no cursor.
    let q = ListQuery::parse("trace_id=rare").unwrap();
    let (page, walk) = list(&s, "ns", &q, empty()).await.unwrap();
    assert_eq!(
        nanos(&page),
        [all[59].timestamp_nanos, all[119].timestamp_nanos]
    );
    assert_eq!((page.next_cursor, walk.cut_short), (None, false));
}

#[tokio::test]
async fn overlapping_writers_page_exactly_under_a_tiny_budget() {
    let (s, all) = fixture().await;
    let window = empty();
    for limit in [1, 3, 50] {
        for max_reads in [1, 2, 3] {
            let q = ListQuery {
                limit,
                ..ListQuery::default()
            };
            // Objects straddling a cursor must all be read, so the budget may be exceeded.
            let (got, _, _) = follow(&s, q, &window, || reads(max_reads), None).await;
            assert_eq!(got, all, "limit {limit} reads {max_reads}");
        }
    }
}

#[tokio::test]
async fn a_failing_read_ends_the_page_with_a_cursor_unless_nothing_was_read() {
    let (s, all, _) = long_history().await;
    let q = ListQuery {
        limit: 500,
        ..ListQuery::default()
    };
    // A deadline the hung read cannot make (it never completes).
    let soon = || {
        let now = Instant::now();
        Budget {
            max_reads: MAX_OBJECTS_READ,
            soft: now + Duration::from_secs(3600),
            hard: now + Duration::from_millis(100),
        }
    };
    for hang in [false, true] {
        // The newest object fails: nothing read, nothing to answer with.
        let broken = Broken::new(&s, all[0].timestamp_nanos, hang).await;
        let b = ObjectStore::from_inner(broken, "memory");
        let e = list_within(&b, "ns", &q, empty(), soon())
            .await
            .unwrap_err();
        if hang {
            assert!(matches!(e, ListError::TimedOut), "{e}");
        } else {
            assert!(matches!(e, ListError::Store(_)), "{e}");
        }

        // The fourth newest object (named by its newest record) fails: the page ends in
        // front of it, with a cursor.
        let broken = Broken::new(&s, all[15].timestamp_nanos, hang).await;
        let b = ObjectStore::from_inner(broken, "memory");
        let (page, walk) = list_within(&b, "ns", &q, empty(), soon()).await.unwrap();
        assert!(walk.cut_short);
        assert_eq!(walk.objects_read, 3);
        let newest: Vec<u64> = all[..15].iter().map(|r| r.timestamp_nanos).collect();
        assert_eq!(nanos(&page), newest, "the three newest objects");
        assert_eq!(page.next_cursor, Some(all[15].timestamp_nanos + 1));
        // Continuing there, the failing object is the first read: an error again.
        let q = ListQuery {
            until: page.next_cursor,
            ..q.clone()
        };
        assert!(list_within(&b, "ns", &q, empty(), soon()).await.is_err());
    }
}

/// An in-memory copy of a store whose reads of one object fail, or never finish.
#[derive(Debug)]
struct Broken {
    inner: object_store::memory::InMemory,
    key: String,
    hang: bool,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Broken")
    }
}

impl Broken {
    /// A copy of `source`'s clickstream objects; reading the one named `nanos` breaks.
    async fn new(source: &ObjectStore, nanos: u64, hang: bool) -> Arc<Self> {
        let store = Broken {
            inner: object_store::memory::InMemory::new(),
            key: object_key(Feed::Clickstream, "ns", nanos),
            hang,
        };
        for o in source.list("clickstream/ns/").await.unwrap() {
            let body = source.get(&o.key).await.unwrap().unwrap();
            object_store::ObjectStoreExt::put(
                &store.inner,
                &object_store::path::Path::from(o.key.as_str()),
                body.into(),
            )
            .await
            .unwrap();
        }
        Arc::new(store)
    }
}

type Fut<'a, T> = futures_util::future::BoxFuture<'a, object_store::Result<T>>;
type Stream<T> = futures_util::stream::BoxStream<'static, object_store::Result<T>>;
type ObjPath = object_store::path::Path;

impl object_store::ObjectStore for Broken {
    fn put_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> Fut<'c, object_store::PutResult>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.put_opts(location, payload, opts)
    }

    fn put_multipart_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> Fut<'c, Box<dyn object_store::MultipartUpload>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b object_store::path::Path,
        options: object_store::GetOptions,
    ) -> Fut<'c, object_store::GetResult>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        if location.as_ref() == self.key {
            let hang = self.hang;
            return Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Err(object_store::Error::Generic {
                    store: "Broken",
                    source: "injected read failure".into(),
                })
            });
        }
        self.inner.get_opts(location, options)
    }

    fn delete_stream(&self, locations: Stream<ObjPath>) -> Stream<ObjPath> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjPath>) -> Stream<object_store::ObjectMeta> {
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'a, 'b, 'c>(
        &'a self,
        prefix: Option<&'b object_store::path::Path>,
    ) -> Fut<'c, object_store::ListResult>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'a, 'b, 'c, 'd>(
        &'a self,
        from: &'b object_store::path::Path,
        to: &'c object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> Fut<'d, ()>
    where
        'a: 'd,
        'b: 'd,
        'c: 'd,
        Self: 'd,
    {
        self.inner.copy_opts(from, to, options)
    }
}

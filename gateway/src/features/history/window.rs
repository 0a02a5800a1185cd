//! The recent window: the newest records of each namespace this gateway produced, kept in memory
//! (one [`Window`] per feed). It is a mirror, not the write buffer: the writer appends every
//! record here as it batches it, so a list call sees a query the moment its response was sent
//! (before the batch is flushed), and objects this gateway wrote whose records are all still in
//! the window are not read back from the object store.
//!
//! Only the writer (control runtime) and the list routes touch it — never the query path — so a
//! plain mutex is fine. Memory is bounded twice: `recentWindow` records per namespace, and
//! [`MAX_TOTAL`] records per feed overall (the least recently written namespaces are forgotten
//! first; their history is still in the object store).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::entry::Record;

/// Records kept per feed across every namespace.
pub const MAX_TOTAL: usize = 100_000;

/// One namespace's window.
#[derive(Debug)]
struct Ring<R> {
    /// Oldest first; appended in timestamp order (the writer stamps monotonically). Never empty:
    /// a ring is created by the push of its first record.
    records: VecDeque<Arc<R>>,
    /// Objects this gateway wrote: key → oldest record's timestamp.
    own_objects: HashMap<String, u64>,
    /// Last append, for the overall bound's least-recently-written eviction.
    touched: u64,
}

impl<R: Record> Ring<R> {
    fn new() -> Self {
        Ring {
            records: VecDeque::new(),
            own_objects: HashMap::new(),
            touched: 0,
        }
    }

    /// Every record this gateway produced for the namespace at or after this timestamp is in
    /// the ring: its oldest record. Records are appended in timestamp order and only ever leave
    /// from the front, so this holds whether or not older records were evicted — and for a ring
    /// recreated after the overall bound forgot the namespace, whose older records (perhaps in
    /// a batch still being written) are gone from memory: objects holding them are older than
    /// the floor, so they are never covered and a list call reads them back.
    fn floor(&self) -> u64 {
        self.records.front().map_or(u64::MAX, |r| r.nanos())
    }
}

/// What a list call reads from the window.
#[derive(Debug)]
pub struct View<R> {
    /// Newest first.
    pub records: Vec<Arc<R>>,
    /// Object keys whose records are all in the ring (reading them back would add nothing).
    pub covered: HashSet<String>,
}

#[derive(Debug)]
struct Inner<R> {
    rings: HashMap<String, Ring<R>>,
    total: usize,
    clock: u64,
}

/// One feed's recent windows.
#[derive(Debug)]
pub struct Window<R> {
    per_namespace: usize,
    max_total: usize,
    inner: Mutex<Inner<R>>,
}

impl<R: Record> Window<R> {
    pub fn new(per_namespace: usize) -> Self {
        Self::with_total(per_namespace, MAX_TOTAL)
    }

    fn with_total(per_namespace: usize, max_total: usize) -> Self {
        Window {
            per_namespace,
            max_total,
            inner: Mutex::new(Inner {
                rings: HashMap::new(),
                total: 0,
                clock: 0,
            }),
        }
    }

    /// Appends a record (called by the writer, in timestamp order).
    pub fn push(&self, ns: &str, record: Arc<R>) {
        if self.per_namespace == 0 {
            return;
        }
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.clock += 1;
        let ring = match inner.rings.get_mut(ns) {
            Some(r) => r,
            None => inner.rings.entry(ns.to_string()).or_insert_with(Ring::new),
        };
        ring.touched = inner.clock;
        ring.records.push_back(record);
        let mut removed = 0;
        while ring.records.len() > self.per_namespace {
            ring.records.pop_front();
            removed += 1;
        }
        if removed > 0 {
            let floor = ring.floor();
            ring.own_objects.retain(|_, oldest| *oldest >= floor);
        }
        inner.total = inner.total + 1 - removed;
        if inner.total > self.max_total {
            // Forget whole namespaces, least recently written first, down to 90% of the bound
            // (so the linear scan for the oldest runs rarely, not on every append).
            while inner.total > self.max_total / 10 * 9 {
                let Some(ns) = inner
                    .rings
                    .iter()
                    .min_by_key(|(_, r)| r.touched)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                let freed = inner.rings.remove(&ns).map_or(0, |r| r.records.len());
                inner.total -= freed;
            }
        }
    }

    /// Notes that this gateway stored the object `key` whose oldest record is `oldest`; it is
    /// covered (not read back) only while the ring holds every record from `oldest` on.
    pub fn wrote(&self, ns: &str, key: String, oldest: u64) {
        let mut inner = self.inner.lock();
        if let Some(ring) = inner.rings.get_mut(ns)
            && oldest >= ring.floor()
        {
            ring.own_objects.insert(key, oldest);
        }
    }

    /// The records of `ns` that `keep` accepts, newest first, and the objects they cover.
    pub fn view(&self, ns: &str, keep: impl Fn(&R) -> bool) -> View<R> {
        let inner = self.inner.lock();
        let Some(ring) = inner.rings.get(ns) else {
            return View {
                records: Vec::new(),
                covered: HashSet::new(),
            };
        };
        let floor = ring.floor();
        View {
            records: ring
                .records
                .iter()
                .rev()
                .filter(|r| keep(r))
                .cloned()
                .collect(),
            covered: ring
                .own_objects
                .iter()
                .filter(|(_, oldest)| **oldest >= floor)
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    /// Records held now across every namespace.
    pub fn len(&self) -> usize {
        self.inner.lock().total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::{ClickEvent, rfc3339};
    use super::*;

    fn click(n: u64) -> Arc<ClickEvent> {
        Arc::new(ClickEvent {
            timestamp: rfc3339(n),
            timestamp_nanos: n,
            trace_id: "t".into(),
            namespace: "ns".into(),
            doc_id: format!("d{n}"),
            tags: vec![],
            source: "fetch".into(),
            served_from: "origin".into(),
        })
    }

    #[test]
    fn newest_first_and_bounded_per_namespace() {
        let w = Window::new(3);
        for n in 1..=5 {
            w.push("ns", click(n));
        }
        w.push("other", click(9));
        let v = w.view("ns", |_| true);
        let got: Vec<u64> = v.records.iter().map(|r| r.timestamp_nanos).collect();
        assert_eq!(got, [5, 4, 3]);
        assert_eq!(w.len(), 4);
        let v = w.view("ns", |r| r.timestamp_nanos % 2 == 1);
        assert_eq!(v.records.len(), 2);
        assert!(w.view("missing", |_| true).records.is_empty());
    }

    #[test]
    fn objects_are_covered_only_while_all_their_records_are_held() {
        let w = Window::new(3);
        w.push("ns", click(1));
        w.push("ns", click(2));
        // Nothing evicted yet: an object of the ring's records is covered.
        w.wrote("ns", "k12".into(), 1);
        w.push("ns", click(3));
        w.wrote("ns", "k3".into(), 3);
        assert_eq!(w.view("ns", |_| true).covered.len(), 2);
        // Record 1 leaves the ring: object k12 must be read back from the store again.
        w.push("ns", click(4));
        let covered = w.view("ns", |_| true).covered;
        assert_eq!(covered, HashSet::from(["k3".to_string()]));
        // An object older than the ring's floor is never marked covered.
        w.wrote("ns", "k0".into(), 0);
        assert!(!w.view("ns", |_| true).covered.contains("k0"));
    }

    #[test]
    fn the_overall_bound_forgets_least_recently_written_namespaces() {
        let w = Window::with_total(10, 15);
        for n in 0..10 {
            w.push("a", click(n));
        }
        for n in 0..10 {
            w.push("b", click(n));
        }
        // The 16th record went over the bound: "a", written least recently, was forgotten.
        assert!(w.view("a", |_| true).records.is_empty());
        assert_eq!(w.view("b", |_| true).records.len(), 10);
        assert_eq!(w.len(), 10);
    }

    #[test]
    fn a_ring_recreated_after_the_overall_bound_covers_none_of_its_older_objects() {
        let w = Window::with_total(10, 12);
        for n in 1..=5 {
            w.push("a", click(n));
        }
        // "a"'s batch of records 1..=5 is being written while "b" pushes the feed over the
        // bound: "a" is forgotten whole.
        for n in 10..18 {
            w.push("b", click(n));
        }
        assert!(w.view("a", |_| true).records.is_empty());
        assert_eq!(w.len(), 8);
        // "a" is written again: a new ring, holding record 30 only.
        w.push("a", click(30));
        // The batch write finishes: records 1..=5 are no longer in memory, so the object must
        // stay uncovered (read back); an object of the new ring's records is covered.
        w.wrote("a", "k1-5".into(), 1);
        w.wrote("a", "k30".into(), 30);
        assert_eq!(
            w.view("a", |_| true).covered,
            HashSet::from(["k30".to_string()])
        );
    }

    /// The same through a list call: the forgotten namespace's stored records are listed.
    #[tokio::test]
    async fn a_listing_after_the_overall_bound_keeps_the_forgotten_records() {
        use super::super::entry::{Feed, object_key};
        use super::super::list::list;
        use super::super::params::ListQuery;
        use crate::core::store::ObjectStore;

        let store =
            ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
        let w = Window::with_total(10, 12);
        let batch: Vec<Arc<ClickEvent>> = (1..=5).map(click).collect();
        for r in &batch {
            w.push("ns", r.clone());
        }
        for n in 10..18 {
            w.push("other", click(n));
        }
        assert!(w.view("ns", |_| true).records.is_empty(), "forgotten");
        w.push("ns", click(30));
        let key = object_key(Feed::Clickstream, "ns", 5);
        let mut body = Vec::new();
        for r in &batch {
            serde_json::to_writer(&mut body, &**r).unwrap();
            body.push(b'\n');
        }
        store.put(&key, body.into()).await.unwrap();
        w.wrote("ns", key, 1);
        let q = ListQuery::default();
        let (page, walk) = list(&store, "ns", &q, w.view("ns", |r| q.accepts(r)))
            .await
            .unwrap();
        let got: Vec<u64> = page.records.iter().map(|r| r.timestamp_nanos).collect();
        assert_eq!(got, [30, 5, 4, 3, 2, 1]);
        assert_eq!(walk.objects_read, 1);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn a_zero_window_holds_nothing() {
        let w = Window::new(0);
        w.push("ns", click(1));
        assert!(w.is_empty());
        assert!(w.view("ns", |_| true).records.is_empty());
    }
}

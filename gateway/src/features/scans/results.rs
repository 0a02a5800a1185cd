//! Completed scan results, kept in gateway memory under one gateway-wide byte budget
//! ([`RESULTS_BUDGET_BYTES`]), and the results route's body.
//!
//! - Every completed ids or values job keeps its results here until its job is deleted, dropped
//!   from the job registry ([`crate::jobs::MAX_FINISHED_PER_NAMESPACE`]), or evicted.
//! - Running ids jobs reserve the bytes of the ids they have gathered so far ([`Reservation`]),
//!   page by page, so kept results plus ids being gathered stay within the budget. Values jobs
//!   are not charged while they run: their histogram is bounded by the field's cardinality and
//!   the spec has them complete (truncated) rather than fail; their capped listing is charged
//!   when kept.
//! - Room is made by evicting the results of the jobs that completed first, so kept results plus
//!   reservations stay within the budget (a values listing kept while other jobs' reservations
//!   hold the room can overshoot by what they reserve, until they finish). An evicted job stays
//!   listed, carries `results_evicted: true`, and its results route answers 404 `not_found` with a
//!   message saying the results were evicted. A job whose own results do not fit in the budget
//!   (even with everything else evicted) fails with a message naming the budget.
//!
//! Sizes are estimates of the heap the results hold (string bytes plus per-entry overhead), not
//! allocator-exact.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use scatter::values::{FacetValue, ValuesListing};

/// Bytes of completed scan results (and ids being gathered) the gateway keeps at most, over all
/// namespaces.
pub const RESULTS_BUDGET_BYTES: usize = 256 << 20;

/// A completed job's results.
#[derive(Debug)]
pub enum ScanResults {
    Ids(Vec<String>),
    Values(ValuesListing),
}

impl ScanResults {
    /// Estimated heap bytes.
    pub fn bytes(&self) -> usize {
        match self {
            ScanResults::Ids(ids) => ids.iter().map(|id| id_bytes(id)).sum(),
            ScanResults::Values(l) => l
                .values
                .iter()
                .map(|fv| size_of::<FacetValue>() + fv.v.len())
                .sum(),
        }
    }
}

/// Estimated heap bytes one kept id costs.
pub fn id_bytes(id: &str) -> usize {
    size_of::<String>() + id.len()
}

type Key = (String, String);

#[derive(Debug)]
struct Kept {
    results: Arc<ScanResults>,
    bytes: usize,
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    kept: HashMap<Key, Kept>,
    /// Completion order (oldest first) of the kept results.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
    kept_bytes: usize,
    reserved_bytes: usize,
}

impl Inner {
    /// Evicts the oldest kept results until `extra` more bytes fit, or nothing is kept.
    fn make_room(&mut self, limit: usize, extra: usize, evicted: &mut Vec<Key>) {
        while self.kept_bytes + self.reserved_bytes + extra > limit {
            let Some((_, key)) = self.order.pop_first() else {
                return;
            };
            if let Some(k) = self.kept.remove(&key) {
                self.kept_bytes -= k.bytes;
                evicted.push(key);
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(k) = self.kept.remove(key) {
            self.kept_bytes -= k.bytes;
            self.order.remove(&k.seq);
        }
    }
}

/// The kept results of every namespace's completed scan jobs.
#[derive(Debug)]
pub struct ResultStore {
    limit: usize,
    inner: Mutex<Inner>,
}

/// Bytes a running job holds against the budget; released when dropped (or handed to
/// [`ResultStore::insert`]).
#[derive(Debug)]
pub struct Reservation<'a> {
    store: &'a ResultStore,
    bytes: usize,
}

impl Reservation<'_> {
    /// Grows the reservation to `total` bytes, evicting the oldest kept results as needed.
    /// Returns the evicted `(namespace, job id)` keys, or `Err(total)` when `total` does not fit
    /// even with nothing kept (the reservation is unchanged then).
    pub fn grow_to(&mut self, total: usize) -> Result<Vec<(String, String)>, usize> {
        let Some(extra) = total.checked_sub(self.bytes).filter(|e| *e > 0) else {
            return Ok(Vec::new());
        };
        let mut inner = self.store.inner.lock();
        // Never fits, even with nothing kept: fail without evicting anyone's results.
        if inner.reserved_bytes + extra > self.store.limit {
            return Err(total);
        }
        let mut evicted = Vec::new();
        inner.make_room(self.store.limit, extra, &mut evicted);
        inner.reserved_bytes += extra;
        self.bytes = total;
        Ok(evicted)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut inner = self.store.inner.lock();
            inner.reserved_bytes = inner.reserved_bytes.saturating_sub(self.bytes);
        }
    }
}

impl ResultStore {
    pub fn new(limit: usize) -> Self {
        ResultStore {
            limit,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// An empty reservation for a running job.
    pub fn reservation(&self) -> Reservation<'_> {
        Reservation {
            store: self,
            bytes: 0,
        }
    }

    /// Keeps `results` for `(ns, id)`, releasing the job's reservation and evicting the oldest
    /// kept results to make room. Returns the evicted keys, or `Err(bytes)` when the results
    /// alone exceed the budget (nothing is kept then, and nothing evicted).
    pub fn insert(
        &self,
        ns: &str,
        id: &str,
        results: ScanResults,
        reservation: Reservation<'_>,
    ) -> Result<Vec<(String, String)>, usize> {
        let bytes = results.bytes();
        let mut inner = self.inner.lock();
        inner.reserved_bytes = inner.reserved_bytes.saturating_sub(reservation.bytes);
        std::mem::forget(reservation);
        if bytes > self.limit {
            return Err(bytes);
        }
        let key = (ns.to_string(), id.to_string());
        inner.remove(&key);
        let mut evicted = Vec::new();
        // Reservations of other running jobs can hold the room; their own growth evicts too, so
        // results that fit the budget are kept even if that overshoots by what is reserved.
        inner.make_room(self.limit, bytes, &mut evicted);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, key.clone());
        inner.kept_bytes += bytes;
        inner.kept.insert(
            key,
            Kept {
                results: Arc::new(results),
                bytes,
                seq,
            },
        );
        Ok(evicted)
    }

    pub fn get(&self, ns: &str, id: &str) -> Option<Arc<ScanResults>> {
        self.inner
            .lock()
            .kept
            .get(&(ns.to_string(), id.to_string()))
            .map(|k| k.results.clone())
    }

    pub fn forget(&self, ns: &str, id: &str) {
        self.inner.lock().remove(&(ns.to_string(), id.to_string()));
    }

    /// `(kept bytes, reserved bytes)`.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.kept_bytes, inner.reserved_bytes)
    }
}

/// Appends `s` as a JSON string.
fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&s.as_bytes()[start..i]);
        if esc.is_empty() {
            buf.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&s.as_bytes()[start..]);
    buf.push(b'"');
}

/// `{"ids": [...], "total": N}`, written straight to bytes (no intermediate JSON tree).
pub fn ids_body(ids: &[String], total: usize) -> Bytes {
    let mut buf = Vec::with_capacity(32 + ids.iter().map(|i| i.len() + 3).sum::<usize>());
    buf.extend_from_slice(b"{\"ids\":[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_str(&mut buf, id);
    }
    buf.extend_from_slice(format!("],\"total\":{total}}}").as_bytes());
    Bytes::from(buf)
}

/// `{"values": [{"v", "n"}...], "total": N, "truncated": bool}`, written straight to bytes.
pub fn values_body(values: &[FacetValue], total: usize, truncated: bool) -> Bytes {
    let mut buf = Vec::with_capacity(48 + values.iter().map(|fv| fv.v.len() + 32).sum::<usize>());
    buf.extend_from_slice(b"{\"values\":[");
    for (i, fv) in values.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"v\":");
        push_str(&mut buf, &fv.v);
        buf.extend_from_slice(format!(",\"n\":{}}}", fv.n).as_bytes());
    }
    buf.extend_from_slice(format!("],\"total\":{total},\"truncated\":{truncated}}}").as_bytes());
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn ids(prefix: &str, n: usize) -> ScanResults {
        ScanResults::Ids((0..n).map(|i| format!("{prefix}{i:04}")).collect())
    }

    #[test]
    fn oldest_results_are_evicted_first_to_stay_within_the_budget() {
        let one = ids("a", 10).bytes();
        let store = ResultStore::new(one * 3);
        for job in ["j1", "j2", "j3"] {
            let evicted = store
                .insert("ns", job, ids("a", 10), store.reservation())
                .unwrap();
            assert!(evicted.is_empty());
        }
        assert_eq!(store.usage(), (one * 3, 0));
        // A fourth evicts the oldest only.
        let evicted = store
            .insert("other", "j4", ids("a", 10), store.reservation())
            .unwrap();
        assert_eq!(evicted, vec![("ns".to_string(), "j1".to_string())]);
        assert!(store.get("ns", "j1").is_none());
        assert!(store.get("ns", "j2").is_some() && store.get("other", "j4").is_some());
        // A forgotten (deleted) job frees its bytes and is not evicted later.
        store.forget("ns", "j2");
        assert_eq!(store.usage().0, one * 2);
        let evicted = store
            .insert("ns", "j5", ids("a", 10), store.reservation())
            .unwrap();
        assert!(evicted.is_empty());
        let evicted = store
            .insert("ns", "j6", ids("a", 10), store.reservation())
            .unwrap();
        assert_eq!(evicted, vec![("ns".to_string(), "j3".to_string())]);
        // Results larger than the whole budget are refused, and evict nothing.
        assert_eq!(
            store.insert("ns", "big", ids("a", 40), store.reservation()),
            Err(ids("a", 40).bytes())
        );
        assert_eq!(store.usage().0, one * 3);
    }

    #[test]
    fn reservations_evict_kept_results_and_are_released() {
        let one = ids("a", 10).bytes();
        let store = ResultStore::new(one * 2);
        store
            .insert("ns", "old", ids("a", 10), store.reservation())
            .unwrap();
        store
            .insert("ns", "new", ids("a", 10), store.reservation())
            .unwrap();
        let mut r = store.reservation();
        assert_eq!(
            r.grow_to(one / 2).unwrap(),
            vec![("ns".to_string(), "old".to_string())]
        );
        assert_eq!(store.usage(), (one, one / 2));
        assert_eq!(r.grow_to(one * 3), Err(one * 3), "never fits");
        assert_eq!(
            store.usage(),
            (one, one / 2),
            "a reservation that cannot fit evicts nothing"
        );
        drop(r);
        assert_eq!(store.usage(), (one, 0));
        // Handing a reservation to insert releases it (no double counting): nothing is evicted.
        let mut r = store.reservation();
        assert!(r.grow_to(one).unwrap().is_empty());
        assert!(
            store
                .insert("ns", "done", ids("a", 10), r)
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.usage(), (one * 2, 0));
        assert!(store.get("ns", "new").is_some());
    }

    #[test]
    fn bodies_are_the_json_the_client_parses() {
        let ids = vec!["a".to_string(), "q\"\\\n\u{1}é".to_string()];
        let v: Value = serde_json::from_slice(&ids_body(&ids, 9)).unwrap();
        assert_eq!(v, json!({"ids": ["a", "q\"\\\n\u{1}é"], "total": 9}));
        let v: Value = serde_json::from_slice(&ids_body(&[], 0)).unwrap();
        assert_eq!(v, json!({"ids": [], "total": 0}));
        let values = vec![
            FacetValue {
                v: "x\ty".into(),
                n: 3,
            },
            FacetValue {
                v: "7".into(),
                n: 1,
            },
        ];
        let v: Value = serde_json::from_slice(&values_body(&values, 2, true)).unwrap();
        assert_eq!(
            v,
            json!({"values": [{"v": "x\ty", "n": 3}, {"v": "7", "n": 1}], "total": 2, "truncated": true})
        );
    }
}

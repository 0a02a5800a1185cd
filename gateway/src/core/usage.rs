//! Upstream usage as Turbopuffer bills it, measured by the gateway: queries sent, bytes of the
//! namespaces they queried, bytes they returned, and bytes written, in 5-minute buckets over the
//! last 30 days, in memory (a restart starts from zero; readers report the measurement's start).
//!
//! Every upstream client ([`super::upstream::Upstream`]) records into its thread's [`Ring`] — one
//! per shard (shared by its clients of every store) and one for the control runtime, so writers
//! never share a cache line — with relaxed atomics; no lock on the request path. A ring is 8,641
//! buckets of 40 bytes (about 340 KiB), allocated at start. A bucket is claimed for a new 5-minute slot by the
//! first writer that sees a stale slot (compare-and-swap on its slot number). Readers sum every
//! ring. The only lossy case is two threads writing one ring across a slot boundary (the
//! work-stealing runtime): an increment made between the claim and the reset can be lost.
//!
//! What is counted (successful upstream answers only, 2xx):
//!
//! | counter | upstream call | amount |
//! |---|---|---|
//! | `queries` | `POST /v1|v2/namespaces/{ns}/query` (every scatter leg is its own query) | 1 |
//! | `queried_bytes` | the same | the namespace's logical bytes as last read from its metadata ([`Usage::set_sizes`]); 0 before the first read |
//! | `returned_bytes` | the same | the response body's bytes |
//! | `written_bytes` | `POST /v2/namespaces/{ns}` (writes, branch/copy overloads) | the request body's bytes as sent (compressed when the client compressed it) |

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// Bucket width.
pub const BUCKET_MS: u64 = 300_000;
/// How far back usage is kept (30 days, the longest cost window).
pub const KEEP_MS: u64 = 30 * 86_400_000;
const SLOTS: usize = (KEEP_MS / BUCKET_MS) as usize + 1;

/// The measured quantities, summed over a span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub queries: u64,
    pub queried_bytes: u64,
    pub returned_bytes: u64,
    pub written_bytes: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.queries += o.queries;
        self.queried_bytes += o.queried_bytes;
        self.returned_bytes += o.returned_bytes;
        self.written_bytes += o.written_bytes;
    }
}

struct Bucket {
    /// The 5-minute slot number (`ms / BUCKET_MS`) the counters belong to.
    slot: AtomicU64,
    queries: AtomicU64,
    queried: AtomicU64,
    returned: AtomicU64,
    written: AtomicU64,
}

/// One writer's buckets.
pub struct Ring {
    buckets: Box<[Bucket]>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            buckets: (0..SLOTS)
                .map(|_| Bucket {
                    slot: AtomicU64::new(u64::MAX),
                    queries: AtomicU64::new(0),
                    queried: AtomicU64::new(0),
                    returned: AtomicU64::new(0),
                    written: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    fn bucket(&self, now_ms: u64) -> &Bucket {
        let slot = now_ms / BUCKET_MS;
        let b = &self.buckets[(slot % SLOTS as u64) as usize];
        let seen = b.slot.load(Ordering::Acquire);
        if seen != slot
            && b.slot
                .compare_exchange(seen, slot, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for c in [&b.queries, &b.queried, &b.returned, &b.written] {
                c.store(0, Ordering::Relaxed);
            }
        }
        b
    }

    /// Adds one measurement at `now_ms`.
    pub fn record(&self, now_ms: u64, t: &Totals) {
        let b = self.bucket(now_ms);
        for (c, v) in [
            (&b.queries, t.queries),
            (&b.queried, t.queried_bytes),
            (&b.returned, t.returned_bytes),
            (&b.written, t.written_bytes),
        ] {
            if v > 0 {
                c.fetch_add(v, Ordering::Relaxed);
            }
        }
    }

    fn read(&self, slot: u64) -> Totals {
        let b = &self.buckets[(slot % SLOTS as u64) as usize];
        if b.slot.load(Ordering::Acquire) != slot {
            return Totals::default();
        }
        Totals {
            queries: b.queries.load(Ordering::Relaxed),
            queried_bytes: b.queried.load(Ordering::Relaxed),
            returned_bytes: b.returned.load(Ordering::Relaxed),
            written_bytes: b.written.load(Ordering::Relaxed),
        }
    }
}

/// The gateway's usage: every writer's ring and the namespace sizes queries are charged with.
pub struct Usage {
    rings: Mutex<Vec<Arc<Ring>>>,
    sizes: ArcSwap<HashMap<String, u64>>,
    /// When measuring started (the gateway's start).
    pub since_ms: u64,
}

impl Usage {
    pub fn new(since_ms: u64) -> Arc<Usage> {
        Arc::new(Usage {
            rings: Mutex::new(Vec::new()),
            sizes: ArcSwap::from_pointee(HashMap::new()),
            since_ms,
        })
    }

    /// A new writer's ring (taken once per shard and for the control runtime, at start).
    pub fn ring(&self) -> Arc<Ring> {
        let r = Arc::new(Ring::new());
        self.rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r.clone());
        r
    }

    /// Publishes the namespaces' logical sizes (read from their metadata).
    pub fn set_sizes(&self, sizes: HashMap<String, u64>) {
        self.sizes.store(Arc::new(sizes));
    }

    /// The logical bytes last read for `ns` (0 when never read).
    pub fn size_of(&self, ns: &str) -> u64 {
        self.sizes.load().get(ns).copied().unwrap_or(0)
    }

    /// The usage of the 5-minute buckets overlapping `[from_ms, to_ms)`, whole buckets.
    pub fn sum(&self, from_ms: u64, to_ms: u64) -> Totals {
        let mut t = Totals::default();
        if to_ms <= from_ms {
            return t;
        }
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let first = from_ms / BUCKET_MS;
        let last = (to_ms - 1) / BUCKET_MS;
        for slot in first..=last {
            for r in &rings {
                t.add(&r.read(slot));
            }
        }
        t
    }
}

/// What an upstream call counts as, from its method, path and outcome (see the module doc).
/// `path` is the gateway-relative path, with or without a query string.
pub fn measure(
    usage: &Usage,
    method: &http::Method,
    path_and_query: &str,
    req_bytes: usize,
    resp_bytes: usize,
) -> Option<Totals> {
    if method != http::Method::POST {
        return None;
    }
    // Byte scans: `str::split(char)` sets up a searcher per call (~180 instructions each, on
    // every upstream call, `bench/profile.sh`).
    let at = |s: &str, c: u8| s.bytes().position(|b| b == c);
    let path = at(path_and_query, b'?').map_or(path_and_query, |i| &path_and_query[..i]);
    let rest = path
        .strip_prefix("/v2/namespaces/")
        .or_else(|| path.strip_prefix("/v1/namespaces/"))?;
    match at(rest, b'/').map(|i| (&rest[..i], &rest[i + 1..])) {
        Some((ns, "query")) => Some(Totals {
            queries: 1,
            queried_bytes: usage.size_of(ns),
            returned_bytes: resp_bytes as u64,
            written_bytes: 0,
        }),
        None if path.starts_with("/v2/") && !rest.is_empty() => Some(Totals {
            written_bytes: req_bytes as u64,
            ..Totals::default()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_sum_and_expire() {
        let u = Usage::new(0);
        let (a, b) = (u.ring(), u.ring());
        let q = |n| Totals {
            queries: n,
            ..Totals::default()
        };
        let t0 = 1_000 * BUCKET_MS;
        a.record(t0, &q(1));
        b.record(t0 + 1, &q(2));
        a.record(t0 + BUCKET_MS, &q(4));
        assert_eq!(u.sum(t0, t0 + 1).queries, 3);
        assert_eq!(u.sum(t0, t0 + 2 * BUCKET_MS).queries, 7);
        assert_eq!(u.sum(t0 + BUCKET_MS, t0 + 2 * BUCKET_MS).queries, 4);
        // The slot comes round again 30 days later: the old counts are gone.
        a.record(t0 + SLOTS as u64 * BUCKET_MS, &q(8));
        assert_eq!(u.sum(t0, t0 + 1).queries, 2);
        assert_eq!(
            u.sum(
                t0 + SLOTS as u64 * BUCKET_MS,
                t0 + SLOTS as u64 * BUCKET_MS + 1
            )
            .queries,
            8
        );
    }

    #[test]
    fn what_counts() {
        let u = Usage::new(0);
        u.set_sizes(HashMap::from([("shop".to_string(), 500)]));
        let post = http::Method::POST;
        let q = measure(&u, &post, "/v2/namespaces/shop/query?x=1", 10, 70).unwrap();
        assert_eq!((q.queries, q.queried_bytes, q.returned_bytes), (1, 500, 70));
        let q = measure(&u, &post, "/v1/namespaces/other/query", 10, 70).unwrap();
        assert_eq!((q.queries, q.queried_bytes), (1, 0));
        let w = measure(&u, &post, "/v2/namespaces/shop", 123, 9).unwrap();
        assert_eq!((w.written_bytes, w.queries), (123, 0));
        assert!(measure(&u, &http::Method::GET, "/v2/namespaces/shop/query", 1, 1).is_none());
        assert!(measure(&u, &post, "/v2/namespaces/shop/explain_query", 1, 1).is_none());
        assert!(measure(&u, &post, "/v1/namespaces/shop", 1, 1).is_none());
        assert!(measure(&u, &post, "/v2/namespaces/?q", 1, 1).is_none());
        assert!(measure(&u, &post, "/v2/namespaces/shop/query/x", 1, 1).is_none());
        let w = measure(&u, &post, "/v2/namespaces/shop?x=/query", 7, 1).unwrap();
        assert_eq!((w.written_bytes, w.queries), (7, 0));
    }
}

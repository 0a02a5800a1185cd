//! The per-shard hot cache: in memory, single-threaded (`&mut self`), bounded in bytes.
//!
//! One [`HotCache`] lives on each shard thread; nothing in it is shared, so the hit path is a hash
//! lookup, a frequency bump and a `Bytes` clone (a refcount increment) with no lock and no atomic
//! beyond that (plus one atomic load when an [`Invalidations`] record is attached).
//!
//! # Policy: S3-FIFO (default) or LRU
//!
//! S3-FIFO keeps a small FIFO (10% of the bytes) for new keys, a main FIFO for keys seen twice,
//! and a ghost list of keys recently dropped from the small queue. A hit only bumps a 2-bit
//! counter (no list reordering, unlike LRU); eviction from the small queue promotes accessed
//! entries to main, eviction from main reinserts entries whose counter is non-zero. One-hit
//! wonders are filtered out quickly, which is what a Zipf-skewed document workload rewards.
//!
//! Chosen by `benches/hit_ratio.rs` (Zipf s=1.0 over 100k keys, 1M requests, values 64–2048 B;
//! capacity as a share of the working-set bytes; full table in `cache/BENCH.md`):
//!
//! Chosen by `benches/hit_ratio.rs` (Zipf s=1.0 over 100k keys, 2M read-through requests,
//! values 64–2048 B; capacity as a share of the 110 MiB working set; same byte charge for all):
//!
//! | capacity | LRU    | S3-FIFO (this) | quick_cache 0.7 (baseline) |
//! |---------:|-------:|---------------:|---------------------------:|
//! |     0.5% | 43.90% |         54.14% |                     54.97% |
//! |       1% | 50.56% |         59.77% |                     60.59% |
//! |       5% | 66.46% |         72.80% |                     73.43% |
//! |      10% | 73.63% |         78.33% |                     78.84% |
//! |      25% | 83.30% |         85.59% |                     85.93% |
//!
//! S3-FIFO beats LRU by 2–10 points and stays within 0.3–0.8 points of quick_cache; its hit path
//! is ~53 ns vs LRU's ~62 ns (no list move on a hit). Promoting at 2 accesses instead of 1 was
//! slightly worse at every size. Full numbers and the machine: `cache/BENCH.md`.
//!
//! # Byte bound
//!
//! Each entry is charged `value.len() + id.len() + ENTRY_OVERHEAD`; the sum never exceeds
//! `capacity_bytes` after an operation returns (checked by a proptest below). Entries larger than
//! `max_entry_bytes` are not admitted.
//!
//! # Invalidation
//!
//! `clear_namespace(set, ns)` bumps a per-namespace generation; entries remember the generation
//! they were inserted under and a mismatch makes them a miss (and frees them on the spot). No scan.

mod invalidations;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::{HashSet, HashTable};

pub use invalidations::{Invalidations, ReadMark, TierUpdate, TierWrite};

use crate::Set;

/// Bookkeeping bytes charged per entry on top of the id and value (slot, table and list links,
/// namespace reference). An estimate; it keeps a cache of many tiny values honest about memory.
pub const ENTRY_OVERHEAD: usize = 96;

/// A link value meaning "none".
const NIL: u32 = u32::MAX;
/// Saturation of the S3-FIFO access counter (2 bits, as in the paper).
const MAX_FREQ: u8 = 3;
/// Accesses needed in the small queue to be promoted to main rather than ghosted.
const PROMOTE_FREQ: u8 = 1;

/// Admission/eviction policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// S3-FIFO: small + main FIFO + ghost. The default (best hit ratio in the benchmark).
    #[default]
    S3Fifo,
    /// Classic least-recently-used; kept as the benchmark's reference point.
    Lru,
}

/// Configuration of one shard's hot cache.
#[derive(Clone, Debug)]
pub struct HotCacheConfig {
    /// Upper bound on the charged bytes of all entries.
    pub capacity_bytes: usize,
    /// Eviction policy.
    pub policy: Policy,
    /// Share of the capacity for S3-FIFO's small queue, in percent (paper: 10).
    pub small_percent: u8,
    /// Largest charged entry admitted; `None` = a quarter of the capacity.
    pub max_entry_bytes: Option<usize>,
}

impl HotCacheConfig {
    /// S3-FIFO with the paper's 10% small queue.
    pub fn new(capacity_bytes: usize) -> Self {
        HotCacheConfig {
            capacity_bytes,
            policy: Policy::S3Fifo,
            small_percent: 10,
            max_entry_bytes: None,
        }
    }

    /// Same, with another policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
}

/// Counters of one hot cache (per shard; the gateway sums them on scrape).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HotStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that found nothing (or only an invalidated entry).
    pub misses: u64,
    /// New entries admitted.
    pub inserts: u64,
    /// Existing entries overwritten.
    pub updates: u64,
    /// Values refused because they exceed `max_entry_bytes`.
    pub rejected: u64,
    /// Entries dropped to stay within the byte bound.
    pub evictions: u64,
    /// Entries found unreachable after a namespace clear.
    pub invalidated: u64,
    /// Live entries now.
    pub entries: usize,
    /// Charged bytes now.
    pub bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

#[derive(Debug)]
struct Entry {
    hash: u64,
    set: Set,
    /// Index into `Namespaces::slots`.
    ns: u32,
    /// Generation of the namespace when inserted.
    gen_: u64,
    id: Box<str>,
    value: Bytes,
    charge: usize,
    freq: u8,
    queue: Queue,
    prev: u32,
    next: u32,
}

/// Intrusive doubly linked list over slab indices (O(1) unlink for removes and LRU moves).
#[derive(Debug)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
    bytes: usize,
}

impl List {
    const fn new() -> Self {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }
}

fn entry_mut(slab: &mut [Option<Entry>], idx: u32) -> Option<&mut Entry> {
    slab.get_mut(idx as usize).and_then(Option::as_mut)
}

fn push_tail(list: &mut List, slab: &mut [Option<Entry>], idx: u32) {
    let old_tail = list.tail;
    let Some(e) = entry_mut(slab, idx) else {
        return;
    };
    e.prev = old_tail;
    e.next = NIL;
    list.bytes += e.charge;
    list.len += 1;
    if let Some(t) = entry_mut(slab, old_tail) {
        t.next = idx;
    } else {
        list.head = idx;
    }
    list.tail = idx;
}

fn unlink(list: &mut List, slab: &mut [Option<Entry>], idx: u32) {
    let Some(e) = entry_mut(slab, idx) else {
        return;
    };
    let (prev, next, charge) = (e.prev, e.next, e.charge);
    e.prev = NIL;
    e.next = NIL;
    match entry_mut(slab, prev) {
        Some(p) => p.next = next,
        None => list.head = next,
    }
    match entry_mut(slab, next) {
        Some(n) => n.prev = prev,
        None => list.tail = prev,
    }
    list.len -= 1;
    list.bytes -= charge;
}

/// Keys (by hash) recently evicted from the small queue. A re-inserted ghost goes straight to
/// main. Approximate by design: a hash collision or a stale FIFO slot only misplaces one entry.
#[derive(Debug, Default)]
struct Ghost {
    set: HashSet<u64>,
    fifo: VecDeque<u64>,
}

impl Ghost {
    fn push(&mut self, hash: u64, cap: usize) {
        if self.set.insert(hash) {
            self.fifo.push_back(hash);
        }
        while self.fifo.len() > cap {
            if let Some(old) = self.fifo.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn take(&mut self, hash: u64) -> bool {
        self.set.remove(&hash)
    }
}

#[derive(Debug)]
struct NsSlot {
    set: Set,
    name: Box<str>,
    gen_: u64,
}

/// Interned `(set, namespace)` pairs with their generation. Entries hold a `u32` slot, so the
/// generation check on a hit is an array index, not a second hash lookup. Slots are never freed
/// (namespaces are few — see `limits.md`).
#[derive(Debug, Default)]
struct Namespaces {
    table: HashTable<u32>,
    slots: Vec<NsSlot>,
}

impl Namespaces {
    fn find(&self, hash: u64, set: Set, ns: &str) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(hash, |&i| {
                let s = &slots[i as usize];
                s.set == set && &*s.name == ns
            })
            .copied()
    }

    fn intern(&mut self, hasher: &foldhash::fast::RandomState, set: Set, ns: &str) -> u32 {
        let hash = ns_hash(hasher, set, ns);
        if let Some(i) = self.find(hash, set, ns) {
            return i;
        }
        let i = self.slots.len() as u32;
        self.slots.push(NsSlot {
            set,
            name: ns.into(),
            gen_: 0,
        });
        let slots = &self.slots;
        self.table.insert_unique(hash, i, |&j| {
            let s = &slots[j as usize];
            ns_hash(hasher, s.set, &s.name)
        });
        i
    }

    fn bump(&mut self, hasher: &foldhash::fast::RandomState, set: Set, ns: &str) {
        if let Some(i) = self.find(ns_hash(hasher, set, ns), set, ns) {
            self.slots[i as usize].gen_ += 1;
        }
    }

    fn current(&self, slot: u32) -> u64 {
        self.slots.get(slot as usize).map_or(u64::MAX, |s| s.gen_)
    }
}

fn ns_hash(hasher: &foldhash::fast::RandomState, set: Set, ns: &str) -> u64 {
    hasher.hash_one((set.tag(), ns))
}

/// A byte-bounded, single-threaded document cache. See the [module docs](self).
#[derive(Debug)]
pub struct HotCache {
    policy: Policy,
    capacity: usize,
    small_target: usize,
    max_entry: usize,
    hasher: foldhash::fast::RandomState,
    table: HashTable<u32>,
    slab: Vec<Option<Entry>>,
    free: Vec<u32>,
    small: List,
    main: List,
    ghost: Ghost,
    namespaces: Namespaces,
    invalidations: Option<(Arc<Invalidations>, u64)>,
    stats: HotStats,
}

impl HotCache {
    /// An empty cache.
    pub fn new(cfg: HotCacheConfig) -> Self {
        let capacity = cfg.capacity_bytes;
        HotCache {
            policy: cfg.policy,
            capacity,
            small_target: capacity / 100 * usize::from(cfg.small_percent.min(100)),
            max_entry: cfg.max_entry_bytes.unwrap_or(capacity / 4).min(capacity),
            hasher: foldhash::fast::RandomState::default(),
            table: HashTable::new(),
            slab: Vec::new(),
            free: Vec::new(),
            small: List::new(),
            main: List::new(),
            ghost: Ghost::default(),
            namespaces: Namespaces::default(),
            invalidations: None,
            stats: HotStats::default(),
        }
    }

    /// Follows namespace clears published on `inv` (share one `Arc` across all shards).
    pub fn with_invalidations(mut self, inv: Arc<Invalidations>) -> Self {
        let seen = inv.epoch();
        self.invalidations = Some((inv, seen));
        self
    }

    /// The cached value, if present and not invalidated. Counts a hit or a miss.
    pub fn get(&mut self, set: Set, ns: &str, id: &str) -> Option<Bytes> {
        self.sync_invalidations();
        let hash = self.key_hash(set, ns, id);
        let Some(idx) = self.find(hash, set, ns, id) else {
            self.stats.misses += 1;
            return None;
        };
        if self.is_stale(idx) {
            self.remove_idx(idx);
            self.stats.invalidated += 1;
            self.stats.misses += 1;
            return None;
        }
        if self.policy == Policy::Lru {
            unlink(&mut self.main, &mut self.slab, idx);
            push_tail(&mut self.main, &mut self.slab, idx);
        }
        let e = entry_mut(&mut self.slab, idx)?;
        e.freq = (e.freq + 1).min(MAX_FREQ);
        self.stats.hits += 1;
        Some(e.value.clone())
    }

    /// Whether a live entry exists (no hit/miss accounting, no frequency bump).
    pub fn contains(&mut self, set: Set, ns: &str, id: &str) -> bool {
        self.sync_invalidations();
        let hash = self.key_hash(set, ns, id);
        self.find(hash, set, ns, id)
            .is_some_and(|idx| !self.is_stale(idx))
    }

    /// Inserts or replaces a value. Returns `false` when the value is too large to admit (any
    /// older value for the key is removed then, so a stale body is never served).
    pub fn insert(&mut self, set: Set, ns: &str, id: &str, value: Bytes) -> bool {
        self.sync_invalidations();
        let charge = value.len() + id.len() + ENTRY_OVERHEAD;
        let hash = self.key_hash(set, ns, id);
        let existing = self.find(hash, set, ns, id);
        if charge > self.max_entry {
            if let Some(idx) = existing {
                self.remove_idx(idx);
            }
            self.stats.rejected += 1;
            return false;
        }
        if let Some(idx) = existing {
            if self.is_stale(idx) {
                self.remove_idx(idx);
            } else {
                self.replace(idx, value, charge);
                self.evict();
                return true;
            }
        }
        let ns_slot = self.namespaces.intern(&self.hasher, set, ns);
        let queue = match self.policy {
            Policy::Lru => Queue::Main,
            Policy::S3Fifo if self.ghost.take(hash) => Queue::Main,
            Policy::S3Fifo => Queue::Small,
        };
        let entry = Entry {
            hash,
            set,
            ns: ns_slot,
            gen_: self.namespaces.current(ns_slot),
            id: id.into(),
            value,
            charge,
            freq: 0,
            queue,
            prev: NIL,
            next: NIL,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(entry);
                i
            }
            None => {
                self.slab.push(Some(entry));
                (self.slab.len() - 1) as u32
            }
        };
        let slab = &self.slab;
        self.table.insert_unique(hash, idx, |&i| {
            slab[i as usize].as_ref().map_or(0, |e| e.hash)
        });
        match queue {
            Queue::Small => push_tail(&mut self.small, &mut self.slab, idx),
            Queue::Main => push_tail(&mut self.main, &mut self.slab, idx),
        }
        self.stats.inserts += 1;
        self.evict();
        true
    }

    /// Removes one key; returns whether a live entry was removed.
    pub fn remove(&mut self, set: Set, ns: &str, id: &str) -> bool {
        self.sync_invalidations();
        let hash = self.key_hash(set, ns, id);
        match self.find(hash, set, ns, id) {
            Some(idx) => {
                let live = !self.is_stale(idx);
                self.remove_idx(idx);
                live
            }
            None => false,
        }
    }

    /// Makes every entry of `(set, ns)` unreachable in O(1) (generation bump; entries are freed
    /// lazily when looked up or evicted). For all shards at once use [`Invalidations`].
    pub fn clear_namespace(&mut self, set: Set, ns: &str) {
        self.namespaces.bump(&self.hasher, set, ns);
    }

    /// Drops everything (counters are kept).
    pub fn clear(&mut self) {
        self.table.clear();
        self.slab.clear();
        self.free.clear();
        self.small = List::new();
        self.main = List::new();
        self.ghost = Ghost::default();
    }

    /// Counters and current size.
    pub fn stats(&self) -> HotStats {
        HotStats {
            entries: self.small.len + self.main.len,
            bytes: self.bytes(),
            ..self.stats
        }
    }

    /// Charged bytes now (always `<= capacity()` between calls).
    pub fn bytes(&self) -> usize {
        self.small.bytes + self.main.bytes
    }

    /// Entries now (including invalidated ones not yet freed).
    pub fn len(&self) -> usize {
        self.small.len + self.main.len
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured byte bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn key_hash(&self, set: Set, ns: &str, id: &str) -> u64 {
        self.hasher.hash_one((set.tag(), ns, id))
    }

    fn find(&self, hash: u64, set: Set, ns: &str, id: &str) -> Option<u32> {
        let slab = &self.slab;
        let names = &self.namespaces.slots;
        self.table
            .find(hash, |&i| {
                slab[i as usize].as_ref().is_some_and(|e| {
                    e.hash == hash
                        && e.set == set
                        && &*e.id == id
                        && names.get(e.ns as usize).is_some_and(|n| &*n.name == ns)
                })
            })
            .copied()
    }

    fn is_stale(&self, idx: u32) -> bool {
        self.slab[idx as usize]
            .as_ref()
            .is_none_or(|e| e.gen_ != self.namespaces.current(e.ns))
    }

    fn replace(&mut self, idx: u32, value: Bytes, charge: usize) {
        let Some(e) = entry_mut(&mut self.slab, idx) else {
            return;
        };
        let old = std::mem::replace(&mut e.charge, charge);
        e.value = value;
        let list = match e.queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        };
        list.bytes = list.bytes - old + charge;
        self.stats.updates += 1;
    }

    fn remove_idx(&mut self, idx: u32) {
        let Some((hash, queue)) = self.slab[idx as usize].as_ref().map(|e| (e.hash, e.queue))
        else {
            return;
        };
        match queue {
            Queue::Small => unlink(&mut self.small, &mut self.slab, idx),
            Queue::Main => unlink(&mut self.main, &mut self.slab, idx),
        }
        if let Ok(found) = self.table.find_entry(hash, |&i| i == idx) {
            found.remove();
        }
        self.slab[idx as usize] = None;
        self.free.push(idx);
    }

    /// Evicts until the byte bound holds. Terminates: every main-queue pass either frees an
    /// entry or decrements a 2-bit counter.
    fn evict(&mut self) {
        while self.bytes() > self.capacity {
            let from_small = self.policy == Policy::S3Fifo
                && self.small.len > 0
                && (self.small.bytes > self.small_target || self.main.len == 0);
            if from_small {
                let idx = self.small.head;
                let Some(e) = entry_mut(&mut self.slab, idx) else {
                    return;
                };
                if e.freq >= PROMOTE_FREQ {
                    e.freq = 0;
                    e.queue = Queue::Main;
                    unlink(&mut self.small, &mut self.slab, idx);
                    push_tail(&mut self.main, &mut self.slab, idx);
                } else {
                    // The ghost remembers about as many keys as main holds (S3-FIFO paper).
                    let cap = self.main.len.max(16);
                    self.ghost.push(e.hash, cap);
                    self.evict_idx(idx);
                }
            } else {
                let idx = self.main.head;
                let Some(e) = entry_mut(&mut self.slab, idx) else {
                    return;
                };
                if self.policy == Policy::S3Fifo && e.freq > 0 {
                    e.freq -= 1;
                    unlink(&mut self.main, &mut self.slab, idx);
                    push_tail(&mut self.main, &mut self.slab, idx);
                } else {
                    self.evict_idx(idx);
                }
            }
        }
    }

    fn evict_idx(&mut self, idx: u32) {
        if self.is_stale(idx) {
            self.stats.invalidated += 1;
        } else {
            self.stats.evictions += 1;
        }
        self.remove_idx(idx);
    }

    /// Applies clears published on the shared [`Invalidations`] since we last looked.
    fn sync_invalidations(&mut self) {
        let Some((inv, seen)) = &self.invalidations else {
            return;
        };
        if inv.epoch() == *seen {
            return;
        }
        let inv = Arc::clone(inv);
        let namespaces = &mut self.namespaces;
        let hasher = &self.hasher;
        let now = inv.apply_since(*seen, |set, ns| namespaces.bump(hasher, set, ns));
        self.invalidations = Some((inv, now));
    }

    /// Walks both queues and checks the bookkeeping (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
        for (list, q) in [(&self.small, Queue::Small), (&self.main, Queue::Main)] {
            let (mut n, mut bytes, mut idx, mut prev) = (0, 0, list.head, NIL);
            while idx != NIL {
                let e = self.slab[idx as usize]
                    .as_ref()
                    .expect("linked slot is live");
                assert_eq!(e.queue, q);
                assert_eq!(e.prev, prev);
                n += 1;
                bytes += e.charge;
                prev = idx;
                idx = e.next;
            }
            assert_eq!(list.tail, prev);
            assert_eq!((n, bytes), (list.len, list.bytes));
        }
        assert_eq!(self.table.len(), self.len());
        assert!(self.bytes() <= self.capacity);
    }
}

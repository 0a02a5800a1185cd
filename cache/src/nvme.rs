//! The NVMe tier: a log-structured cache on local disk, shared by all shards of a node.
//!
//! [`NvmeTier`] is the front end (cheap to clone, `Send + Sync`, implements [`Tier`]); every call
//! becomes a message on a bounded channel to one dedicated I/O thread (`engine.rs`) that owns the
//! in-memory index (`(set, namespace, id)` → segment, offset, length), the segment files and the
//! io_uring. Answers come back through `futures-channel` oneshots, so the futures run on any
//! executor. Start reading at [`NvmeTier::open`] and [`NvmeConfig`]; the on-disk format is in
//! `nvme/record.rs`, the io_uring code in `nvme/uring.rs`; the crate's only `unsafe` is there
//! and in `nvme/sched.rs` (the thread's `SCHED_BATCH` policy, so waking it does not preempt a
//! shard).
//!
//! Never blocks a shard: a full queue fails the call at once (`Unavailable`), which the gateway
//! treats like any other cache error (serve from origin).

mod buf;
mod completion;
mod engine;
mod io;
mod record;
#[cfg(test)]
mod scan_tests;
mod sched;
#[cfg(test)]
mod tests;
mod uring;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use bytes::Bytes;
use futures_channel::oneshot;

use crate::key::check_key;
use crate::tier::TierFuture;
use crate::{CacheError, CacheState, Health, HealthCell, ScanCursor, ScanPage, Set, Stored, Tier};
use engine::{Engine, Request};

/// What to do with segment files found at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartMode {
    /// Delete them: start empty (the default; the cache is ephemeral by design).
    #[default]
    Clear,
    /// Rebuild the index by scanning them; torn tails are detected by checksum and skipped.
    Recover,
}

/// Configuration of the NVMe tier.
#[derive(Clone, Debug)]
pub struct NvmeConfig {
    /// Directory holding the segment files (created if missing; owned by the tier).
    pub dir: PathBuf,
    /// Upper bound on the bytes of all segment files; oldest segments are dropped first.
    /// At least two segments are kept.
    pub max_bytes: u64,
    /// Size of one segment file.
    pub segment_bytes: usize,
    /// Write buffer (one disk write) size; also the unit lost on a crash.
    pub write_buffer_bytes: usize,
    /// Clear or recover on start.
    pub start: StartMode,
    /// Open segments with `O_DIRECT` (bypass the page cache); falls back to buffered I/O, with a
    /// warning, when the filesystem refuses it (tmpfs, some overlay filesystems).
    pub direct_io: bool,
    /// Skip io_uring and use pread/pwrite on the tier thread (also the automatic fallback).
    pub force_plain_io: bool,
    /// io_uring submission-queue size (bounds in-flight disk operations).
    pub ring_entries: u32,
    /// Largest value stored.
    pub max_value_bytes: usize,
    /// Requests queued for the tier thread before calls fail fast with `Unavailable`.
    pub queue_depth: usize,
    /// Consecutive I/O failures before health reports `cold`.
    pub error_threshold: u32,
}

impl NvmeConfig {
    /// Defaults: 64 MiB segments, 1 MiB write buffer, clear on start, O_DIRECT, io_uring.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        NvmeConfig {
            dir: dir.into(),
            max_bytes,
            segment_bytes: 64 << 20,
            write_buffer_bytes: 1 << 20,
            start: StartMode::Clear,
            direct_io: true,
            force_plain_io: false,
            ring_entries: 256,
            max_value_bytes: 16 << 20,
            queue_depth: 4096,
            error_threshold: 8,
        }
    }
}

/// Counters and state of the tier thread (a snapshot from [`NvmeTier::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NvmeStats {
    /// `"io_uring"` or `"plain"`.
    pub backend: &'static str,
    /// Whether segment files are open with O_DIRECT.
    pub direct_io: bool,
    /// Live index entries.
    pub entries: u64,
    /// Segment files now.
    pub segments: u64,
    /// Bytes in segment files plus the write buffer.
    pub disk_bytes: u64,
    /// `get` requests.
    pub gets: u64,
    /// `put` requests stored.
    pub puts: u64,
    /// Keys removed by `delete` / batch deletes (present or not).
    pub deletes: u64,
    /// Tombstones appended (deletes of keys with a live entry; absent keys need none).
    pub tombstones: u64,
    /// Gets answered from the write buffer / chunks in flight.
    pub memory_reads: u64,
    /// Gets that needed a disk read.
    pub disk_reads: u64,
    /// Chunk writes submitted.
    pub chunk_writes: u64,
    /// Segments dropped by the size bound.
    pub evicted_segments: u64,
    /// Records replayed at start (recover mode).
    pub recovered_records: u64,
    /// Index entries live after recovery.
    pub recovered_entries: u64,
    /// Segments whose scan stopped at a torn record.
    pub torn_records: u64,
    /// Failed disk operations.
    pub io_errors: u64,
    /// Scan pages served.
    pub scan_pages: u64,
    /// Disk reads issued by scans (one per run of nearby records).
    pub scan_reads: u64,
}

/// Front end of the NVMe tier. Clones share the thread; the thread flushes and exits when the
/// last clone is dropped (that drop blocks until the write buffer is on disk).
#[derive(Clone)]
pub struct NvmeTier {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
    health: Arc<HealthCell>,
    fail_next: AtomicU64,
    max_value: usize,
    backend: &'static str,
    direct_io: bool,
    /// Which namespaces may hold entries ([`MayHold`]).
    may_hold: MayHold,
}

/// Which `(set, namespace)`s may hold entries: one flag per hash bucket, set before a put is
/// sent to the tier thread (and for every namespace a recovery found entries of), never cleared. A delete for a
/// namespace whose bucket is clear has nothing to remove: it is answered at once, without a
/// message to the tier thread. That is the common case for writes: a write invalidates its ids
/// before and after it is forwarded, and most written namespaces were never read through the
/// cache. A put racing such a delete is ordered after it, as it would be had its message been
/// sent second.
struct MayHold(Box<[AtomicBool]>);

impl MayHold {
    const BUCKETS: usize = 4096;

    fn new() -> Self {
        MayHold((0..Self::BUCKETS).map(|_| AtomicBool::new(false)).collect())
    }

    fn bucket(&self, set: Set, ns: &str) -> &AtomicBool {
        // FNV-1a: short keys, no allocation, stable.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(set as u8);
        for b in ns.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.0[(h % Self::BUCKETS as u64) as usize]
    }

    fn mark(&self, set: Set, ns: &str) {
        self.bucket(set, ns).store(true, Ordering::SeqCst);
    }

    fn may_hold(&self, set: Set, ns: &str) -> bool {
        self.bucket(set, ns).load(Ordering::SeqCst)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel tells the thread to flush and exit; wait so the data is on disk.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl NvmeTier {
    /// Starts the tier thread, clears or recovers the directory, and returns once the tier
    /// serves. Blocks for the recovery scan: call it at start-up, off the shard threads.
    pub fn open(cfg: NvmeConfig) -> Result<NvmeTier, CacheError> {
        let health = Arc::new(HealthCell::new(CacheState::Warm, cfg.error_threshold));
        let (tx, rx) = mpsc::sync_channel(cfg.queue_depth.max(1));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_health = Arc::clone(&health);
        let thread_cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("layer-nvme-cache".into())
            .spawn(move || {
                if let Err(e) = sched::run_as_batch() {
                    tracing::debug!(error = %e, "nvme cache: SCHED_BATCH refused, default policy kept");
                }
                match Engine::open(&thread_cfg, Arc::clone(&thread_health)) {
                    Ok(engine) => {
                        let info = (
                            engine.backend_name(),
                            engine.direct_io(),
                            engine.namespaces_held(),
                        );
                        let _ = ready_tx.send(Ok(info));
                        engine.run(rx);
                    }
                    Err(e) => {
                        thread_health.mark_cold();
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| CacheError::io("spawn", &e))?;
        let (backend, direct_io, held) = match ready_rx.recv() {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(CacheError::Unavailable(
                    "nvme tier thread died at start".into(),
                ));
            }
        };
        tracing::info!(dir = %cfg.dir.display(), backend, direct_io, "nvme cache tier started");
        let may_hold = MayHold::new();
        for (set, ns) in &held {
            may_hold.mark(*set, ns);
        }
        Ok(NvmeTier {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
                health,
                fail_next: AtomicU64::new(0),
                max_value: cfg.max_value_bytes,
                backend,
                direct_io,
                may_hold,
            }),
        })
    }

    /// Test hook: the next `n` calls fail with [`CacheError::Injected`] without reaching disk.
    pub fn fail_next(&self, n: u64) {
        self.inner.fail_next.store(n, Ordering::SeqCst);
    }

    /// `"io_uring"` or `"plain"` — what this tier actually uses.
    pub fn backend(&self) -> &'static str {
        self.inner.backend
    }

    /// Whether segment files are open with O_DIRECT.
    pub fn direct_io(&self) -> bool {
        self.inner.direct_io
    }

    /// Writes the write buffer out and waits for every outstanding disk operation.
    pub fn flush(&self) -> TierFuture<()> {
        self.call(Request::Flush)
    }

    /// A snapshot of the tier thread's counters.
    pub fn stats(&self) -> TierFuture<NvmeStats> {
        let (tx, rx) = oneshot::channel();
        match self.send(Request::Stats(tx)) {
            Ok(()) => Box::pin(async move { rx.await.map_err(|_| CacheError::Cancelled) }),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    /// Whether a delete in `(set, ns)` can be answered without the tier thread: nothing was
    /// ever put there ([`MayHold`]). An injected failure is still consumed and reported.
    fn nothing_to_delete(&self, set: Set, ns: &str) -> bool {
        self.inner.fail_next.load(Ordering::SeqCst) == 0 && !self.inner.may_hold.may_hold(set, ns)
    }

    fn injected(&self) -> bool {
        self.inner
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn send(&self, req: Request) -> Result<(), CacheError> {
        let Some(tx) = &self.inner.tx else {
            return Err(CacheError::Unavailable("nvme tier closed".into()));
        };
        match tx.try_send(req) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(CacheError::Unavailable("nvme queue full".into())),
            Err(TrySendError::Disconnected(_)) => {
                self.inner.health.mark_cold();
                Err(CacheError::Unavailable("nvme tier thread stopped".into()))
            }
        }
    }

    fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(engine::Reply<T>) -> Request,
    ) -> TierFuture<T> {
        self.call_then(make, |answer| answer)
    }

    /// [`NvmeTier::call`] with the thread's answer mapped by `then` (in the same boxed future).
    fn call_then<T: Send + 'static, U: Send + 'static>(
        &self,
        make: impl FnOnce(engine::Reply<T>) -> Request,
        then: impl FnOnce(T) -> U + Send + 'static,
    ) -> TierFuture<U> {
        if self.injected() {
            return Box::pin(std::future::ready(Err(CacheError::Injected)));
        }
        let (tx, rx) = oneshot::channel();
        match self.send(make(tx)) {
            Ok(()) => {
                Box::pin(async move { rx.await.unwrap_or(Err(CacheError::Cancelled)).map(then) })
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    /// [`Tier::put`] and [`Tier::put_vouched`].
    fn store(&self, set: Set, ns: &str, id: &str, value: Bytes, vouched: bool) -> TierFuture<()> {
        if let Err(e) = check_key(ns, id) {
            return fail(e);
        }
        if value.len() > self.inner.max_value {
            return fail(CacheError::ValueTooLarge {
                len: value.len(),
                max: self.inner.max_value,
            });
        }
        // Marked before the message is sent: a delete that finds the mark clear is ordered
        // before this put.
        self.inner.may_hold.mark(set, ns);
        self.call(|r| Request::Put(set, ns.into(), id.into(), value, vouched, r))
    }
}

fn fail<T: Send + 'static>(e: CacheError) -> TierFuture<T> {
    Box::pin(std::future::ready(Err(e)))
}

impl Tier for NvmeTier {
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>> {
        if let Err(e) = check_key(ns, id) {
            return fail(e);
        }
        self.call_then(
            |r| Request::Get(set, ns.into(), id.into(), r),
            |got: Option<Stored>| got.map(|s| s.value),
        )
    }

    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        self.store(set, ns, id, value, false)
    }

    /// The mark is kept in the record's flags, under its checksum (`nvme/record.rs`).
    fn put_vouched(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        self.store(set, ns, id, value, true)
    }

    fn get_stored(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Stored>> {
        if let Err(e) = check_key(ns, id) {
            return fail(e);
        }
        self.call(|r| Request::Get(set, ns.into(), id.into(), r))
    }

    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        if let Err(e) = check_key(ns, id) {
            return fail(e);
        }
        if self.nothing_to_delete(set, ns) {
            return Box::pin(std::future::ready(Ok(())));
        }
        self.call(|r| Request::Delete(set, ns.into(), id.into(), r))
    }

    /// One message to the tier thread for all of `ids` (a write's invalidation), not one each.
    fn delete_batch(&self, set: Set, ns: &str, ids: &[String]) -> Option<TierFuture<()>> {
        if self.nothing_to_delete(set, ns) {
            return Some(Box::pin(std::future::ready(Ok(()))));
        }
        // A key the tier cannot hold is not in it: the others are still removed, and the
        // batch reports the error (as one delete after another would).
        let mut bad = None;
        let ids = ids
            .iter()
            .filter(|id| match check_key(ns, id) {
                Ok(()) => true,
                Err(e) => {
                    bad = Some(e);
                    false
                }
            })
            .map(|id| Box::<str>::from(id.as_str()))
            .collect();
        let sent = self.call(|r| Request::DeleteMany(set, ns.into(), ids, r));
        Some(match bad {
            None => sent,
            Some(e) => Box::pin(async move {
                let _ = sent.await;
                Err(e)
            }),
        })
    }

    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        if let Err(e) = check_key(ns, "") {
            return fail(e);
        }
        self.call(|r| Request::Clear(set, ns.into(), r))
    }

    fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> TierFuture<ScanPage> {
        if let Err(e) = check_key(ns, "") {
            return fail(e);
        }
        let after = ScanCursor::after_id(cursor.as_ref()).map(Box::<str>::from);
        self.call(|r| Request::Scan(set, ns.into(), after, limit, r))
    }

    fn health(&self) -> Health {
        self.inner.health.snapshot()
    }

    fn name(&self) -> &'static str {
        "nvme"
    }
}

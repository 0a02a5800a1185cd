//! The NVMe tier's I/O thread: owns the index, the segment files, the write buffer and the
//! io_uring (or plain-I/O) backend. Nothing here is shared; requests arrive over a channel and
//! answers leave through oneshots, so there are no locks.
//!
//! Write path: records are appended to a 4 KiB-aligned write buffer (`write_buffer_bytes`); the
//! `put` is answered at once (readable from memory), and the buffer is written to the active
//! segment when full, after `IDLE_FLUSH` without requests, on `flush` and on shutdown. A crash
//! loses at most the unflushed buffer — acceptable for a cache.
//!
//! Read path: index lookup → memory (write buffer or a chunk still being written) or one aligned
//! disk read → checksum and key verified → value handed out zero-copy as a `Bytes` slice of the
//! read buffer.
//!
//! Scan path (`scan.rs`): each namespace slot keeps its live ids in a sorted set next to the
//! hash index, so a page of `(id, value)` entries is a range over that set; the page's records are
//! read with one disk read per run of nearby records instead of one per record.
//!
//! Size bound: segments are dropped oldest first (FIFO) before a new one would exceed
//! `max_bytes`; their index entries go with them. Tombstones and namespace clears are ordinary
//! records, so recovery replays them in log order; FIFO eviction cannot resurrect a deleted
//! entry because a tombstone is always newer than the put it cancels, so the put is dropped first.

mod scan;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use hashbrown::HashMap;

use super::buf::{AlignedBuf, ReadBufs};
use super::completion::Completion;
use super::io::Io;
use super::record::{self, ALIGN, Kind, Value, align_up, verify};
use super::{NvmeConfig, NvmeStats, StartMode};
use crate::{CacheError, HealthCell, Set, Stored};

/// Quiet period after which a partly filled write buffer is written out.
const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// Requests handled per loop turn before submitting (batches many requests into one syscall).
const BATCH: usize = 256;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, CacheError>>;

/// A request from the front end ([`super::NvmeTier`]).
pub(crate) enum Request {
    Get(Set, Box<str>, Box<str>, Reply<Option<Stored>>),
    /// The last field: the writer vouched for the value (`Tier::put_vouched`).
    Put(Set, Box<str>, Box<str>, Bytes, bool, Reply<()>),
    Delete(Set, Box<str>, Box<str>, Reply<()>),
    /// Several deletes of one namespace (a write's invalidation), answered once.
    DeleteMany(Set, Box<str>, Vec<Box<str>>, Reply<()>),
    Clear(Set, Box<str>, Reply<()>),
    /// One page of `(set, ns)`: ids after the given one, at most `limit` entries.
    Scan(
        Set,
        Box<str>,
        Option<Box<str>>,
        usize,
        Reply<crate::ScanPage>,
    ),
    Flush(Reply<()>),
    Stats(oneshot::Sender<NvmeStats>),
}

struct Segment {
    file: Arc<File>,
    path: PathBuf,
    /// Bytes on disk (or being written), including chunk padding.
    size: u64,
}

/// Where a record lives, and the namespace generation it was written under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    seg: u64,
    off: u64,
    len: u32,
    gen_: u64,
}

/// A chunk handed to the backend but not yet confirmed written; reads of its records are
/// served from this memory meanwhile.
struct PendingChunk {
    seg: u64,
    start: u64,
    used: usize,
    buf: Arc<AlignedBuf>,
    done: bool,
}

/// What the engine needs to finish an operation once the backend completes it. The backend owns
/// the operation's buffer and file meanwhile (a read's buffer comes back in its [`Completion`]).
enum InFlight {
    Read {
        reply: Reply<Option<Stored>>,
        key: (u32, Box<str>),
        loc: Loc,
        rel: usize,
    },
    Write {
        seg: u64,
        start: u64,
        used: usize,
    },
    /// One read covering a run of records of a scan page (`scan.rs`).
    ScanRead(scan::RunRead),
}

pub(crate) struct Engine {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    buffer_bytes: usize,
    direct: bool,
    io: Io,
    segments: BTreeMap<u64, Segment>,
    active: u64,
    /// File offset where the write buffer starts (everything before it is submitted).
    active_end: u64,
    wbuf: AlignedBuf,
    wlen: usize,
    pending: VecDeque<PendingChunk>,
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
    in_flight: usize,
    index: HashMap<(u32, Box<str>), Loc>,
    namespaces: HashMap<(Set, Box<str>), u32>,
    /// Per namespace slot: current generation and (set, name), for verifying reads.
    gens: Vec<u64>,
    names: Vec<(Set, Box<str>)>,
    /// Per namespace slot: the live ids (current generation) in order, for paged scans.
    ids: Vec<BTreeSet<Box<str>>>,
    /// Scan pages waiting for their disk reads (`scan.rs`).
    scans: scan::Pages,
    read_bufs: ReadBufs,
    health: Arc<HealthCell>,
    stats: NvmeStats,
}

impl Engine {
    /// Prepares the directory (clear or recover) and the backend. Runs on the tier thread.
    pub(crate) fn open(cfg: &NvmeConfig, health: Arc<HealthCell>) -> Result<Engine, CacheError> {
        fs::create_dir_all(&cfg.dir).map_err(|e| CacheError::io("create dir", &e))?;
        let segment_bytes = align_up(cfg.segment_bytes.max(cfg.write_buffer_bytes)) as u64;
        let io = Io::new(cfg.force_plain_io, cfg.ring_entries);
        let mut eng = Engine {
            dir: cfg.dir.clone(),
            max_bytes: cfg.max_bytes.max(2 * segment_bytes),
            segment_bytes,
            buffer_bytes: align_up(cfg.write_buffer_bytes.max(ALIGN)),
            direct: cfg.direct_io,
            stats: NvmeStats {
                backend: io.name(),
                ..NvmeStats::default()
            },
            io,
            segments: BTreeMap::new(),
            active: 0,
            active_end: 0,
            wbuf: AlignedBuf::zeroed(cfg.write_buffer_bytes.max(ALIGN)),
            wlen: 0,
            pending: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
            index: HashMap::new(),
            namespaces: HashMap::new(),
            gens: Vec::new(),
            names: Vec::new(),
            ids: Vec::new(),
            scans: scan::Pages::default(),
            read_bufs: ReadBufs::default(),
            health,
        };
        let existing = list_segments(&cfg.dir).map_err(|e| CacheError::io("list", &e))?;
        match cfg.start {
            StartMode::Clear => {
                for (_, path) in &existing {
                    fs::remove_file(path).map_err(|e| CacheError::io("clear", &e))?;
                }
            }
            StartMode::Recover => eng.recover(existing)?,
        }
        let next = eng.segments.keys().next_back().map_or(1, |s| s + 1);
        eng.start_segment(next)?;
        eng.stats.direct_io = eng.direct;
        Ok(eng)
    }

    /// Rebuilds the index by replaying every segment in log order.
    fn recover(&mut self, existing: Vec<(u64, PathBuf)>) -> Result<(), CacheError> {
        for (seq, path) in existing {
            let data = fs::read(&path).map_err(|e| CacheError::io("recover read", &e))?;
            let end = record::scan(&data, |off, r| {
                self.stats.recovered_records += 1;
                let slot = self.ns_slot(r.set, r.ns);
                match r.kind {
                    Kind::Put => {
                        let loc = Loc {
                            seg: seq,
                            off: off as u64,
                            len: r.len as u32,
                            gen_: self.gens[slot as usize],
                        };
                        self.index.insert((slot, r.id.into()), loc);
                    }
                    Kind::Delete => {
                        self.index.remove(&(slot, Box::<str>::from(r.id)));
                    }
                    Kind::Clear => self.gens[slot as usize] += 1,
                }
            });
            if end.torn {
                self.stats.torn_records += 1;
            }
            let file = self.open_file(&path, false)?;
            let size = align_up(data.len()) as u64;
            self.segments.insert(seq, Segment { file, path, size });
        }
        // Entries written before a later clear of their namespace are unreachable: drop them now.
        let gens = &self.gens;
        self.index
            .retain(|(slot, _), loc| loc.gen_ == gens[*slot as usize]);
        for (slot, id) in self.index.keys() {
            self.ids[*slot as usize].insert(id.clone());
        }
        self.stats.recovered_entries = self.index.len() as u64;
        Ok(())
    }

    fn ns_slot(&mut self, set: Set, ns: &str) -> u32 {
        if let Some(s) = self.namespaces.get(&(set, Box::<str>::from(ns))) {
            return *s;
        }
        let s = self.gens.len() as u32;
        self.gens.push(0);
        self.names.push((set, ns.into()));
        self.ids.push(BTreeSet::new());
        self.namespaces.insert((set, ns.into()), s);
        s
    }

    fn open_file(&mut self, path: &Path, create: bool) -> Result<Arc<File>, CacheError> {
        let open = |direct: bool| {
            let mut o = OpenOptions::new();
            o.read(true).write(true).create(create).truncate(create);
            if direct {
                o.custom_flags(libc::O_DIRECT);
            }
            o.open(path)
        };
        let file = open_with_fallback(path, &mut self.direct, open)?;
        self.stats.direct_io = self.direct;
        Ok(Arc::new(file))
    }

    fn start_segment(&mut self, seq: u64) -> Result<(), CacheError> {
        let path = self.dir.join(format!("{seq:016x}.seg"));
        let file = self.open_file(&path, true)?;
        self.segments.insert(
            seq,
            Segment {
                file,
                path,
                size: 0,
            },
        );
        self.active = seq;
        self.active_end = 0;
        self.evict_segments();
        Ok(())
    }

    /// Drops the oldest segments until one more full segment fits under `max_bytes`.
    fn evict_segments(&mut self) {
        while self.disk_bytes() + self.segment_bytes > self.max_bytes && self.segments.len() > 1 {
            let Some((seq, seg)) = self.segments.pop_first() else {
                return;
            };
            // In-flight reads keep the fd (and so the data) alive after the unlink.
            if let Err(e) = fs::remove_file(&seg.path) {
                tracing::warn!(error = %e, path = %seg.path.display(), "nvme cache: segment unlink failed");
            }
            // O(index) per dropped segment, i.e. O(segments) per entry over its lifetime.
            let ids = &mut self.ids;
            self.index.retain(|(slot, id), loc| {
                let keep = loc.seg != seq;
                if !keep {
                    ids[*slot as usize].remove(id);
                }
                keep
            });
            self.stats.evicted_segments += 1;
        }
    }

    fn disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum::<u64>() + self.wlen as u64
    }

    /// The thread's main loop; returns when every front-end handle is gone.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let mut done = Vec::new();
        loop {
            let mut disconnected = false;
            if self.in_flight == 0 {
                let first = if self.wlen > 0 {
                    match rx.recv_timeout(IDLE_FLUSH) {
                        Ok(r) => Some(r),
                        Err(RecvTimeoutError::Timeout) => {
                            self.flush_buffer();
                            None
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                } else {
                    match rx.recv() {
                        Ok(r) => Some(r),
                        Err(_) => break,
                    }
                };
                if let Some(r) = first {
                    self.handle(r);
                }
            }
            let mut idle = false;
            for _ in 0..BATCH {
                match rx.try_recv() {
                    Ok(r) => self.handle(r),
                    Err(TryRecvError::Empty) => {
                        idle = true;
                        break;
                    }
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            // Block on the disk only when no request is waiting for the CPU.
            self.pump(idle, &mut done);
            if disconnected {
                break;
            }
        }
        self.shutdown();
    }

    fn pump(&mut self, wait: bool, done: &mut Vec<Completion>) {
        if let Err(e) = self.io.submit(wait) {
            tracing::warn!(error = %e, "nvme cache: submit failed");
            self.health.record_err();
        }
        self.io.complete(done);
        for c in done.drain(..) {
            self.on_complete(c);
        }
    }

    /// Writes the buffer and waits for every outstanding operation.
    fn shutdown(&mut self) {
        self.flush_buffer();
        let mut done = Vec::new();
        while self.in_flight > 0 {
            self.pump(true, &mut done);
        }
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Get(set, ns, id, reply) => self.get(set, ns, id, reply),
            Request::Put(set, ns, id, value, vouched, reply) => {
                let value = Value {
                    bytes: &value,
                    vouched,
                };
                let _ = reply.send(self.put(set, &ns, id, value));
            }
            Request::Delete(set, ns, id, reply) => {
                let _ = reply.send(self.delete(set, &ns, id));
            }
            Request::DeleteMany(set, ns, ids, reply) => {
                let mut r = Ok(());
                for id in ids {
                    if let Err(e) = self.delete(set, &ns, id) {
                        r = Err(e);
                    }
                }
                let _ = reply.send(r);
            }
            Request::Clear(set, ns, reply) => {
                let slot = self.ns_slot(set, &ns);
                let r = self
                    .append(Kind::Clear, set, &ns, "", Value::plain(&[]))
                    .map(|_| ());
                // Bump even if the record could not be written: memory must not serve old data.
                self.gens[slot as usize] += 1;
                self.ids[slot as usize].clear();
                let _ = reply.send(r);
            }
            Request::Scan(set, ns, after, limit, reply) => {
                self.scan(set, &ns, after.as_deref(), limit, reply);
            }
            Request::Flush(reply) => {
                self.flush_buffer();
                let mut done = Vec::new();
                while self.in_flight > 0 {
                    self.pump(true, &mut done);
                }
                let _ = reply.send(Ok(()));
            }
            Request::Stats(reply) => {
                let mut s = self.stats.clone();
                s.entries = self.index.len() as u64;
                s.segments = self.segments.len() as u64;
                s.disk_bytes = self.disk_bytes();
                let _ = reply.send(s);
            }
        }
    }

    /// Removes one key. A tombstone is appended only when the key has a live entry: an absent
    /// key has no record that recovery could bring back (its last put was already cancelled by
    /// a tombstone or a namespace clear, both newer, or went with an evicted segment), so a write
    /// to ids that were never cached costs no log bytes.
    fn delete(&mut self, set: Set, ns: &str, id: Box<str>) -> Result<(), CacheError> {
        self.stats.deletes += 1;
        let Some(&slot) = self.namespaces.get(&(set, Box::<str>::from(ns))) else {
            return Ok(());
        };
        self.ids[slot as usize].remove(&id);
        let key = (slot, id);
        match self.index.remove(&key) {
            Some(loc) if loc.gen_ == self.gens[slot as usize] => {
                self.stats.tombstones += 1;
                self.append(Kind::Delete, set, ns, &key.1, Value::plain(&[]))
                    .map(|_| ())
            }
            _ => Ok(()),
        }
    }

    fn put(
        &mut self,
        set: Set,
        ns: &str,
        id: Box<str>,
        value: Value<'_>,
    ) -> Result<(), CacheError> {
        let slot = self.ns_slot(set, ns);
        let (seg, off, len) = self.append(Kind::Put, set, ns, &id, value)?;
        let loc = Loc {
            seg,
            off,
            len,
            gen_: self.gens[slot as usize],
        };
        let ids = &mut self.ids[slot as usize];
        if !ids.contains(&id) {
            ids.insert(id.clone());
        }
        self.index.insert((slot, id), loc);
        self.stats.puts += 1;
        Ok(())
    }

    fn get(&mut self, set: Set, ns: Box<str>, id: Box<str>, reply: Reply<Option<Stored>>) {
        self.stats.gets += 1;
        let Some(&slot) = self.namespaces.get(&(set, ns)) else {
            let _ = reply.send(Ok(None));
            return;
        };
        let key = (slot, id);
        let Some(loc) = self.index.get(&key).copied() else {
            let _ = reply.send(Ok(None));
            return;
        };
        if loc.gen_ != self.gens[slot as usize] {
            self.index.remove(&key);
            let _ = reply.send(Ok(None));
            return;
        }
        let in_memory = self.memory_record(loc).map(|bytes| {
            verify(bytes, &self.names[slot as usize], &key.1).map(|v| v.stored(bytes))
        });
        if let Some(r) = in_memory {
            self.stats.memory_reads += 1;
            let _ = reply.send(r.map(Some));
            return;
        }
        let Some(file) = self.segments.get(&loc.seg).map(|s| Arc::clone(&s.file)) else {
            self.drop_entry(&key, loc);
            let _ = reply.send(Ok(None));
            return;
        };
        let start = loc.off & !(ALIGN as u64 - 1);
        let rel = (loc.off - start) as usize;
        let buf = self.read_bufs.take(rel + loc.len as usize);
        let slot_idx = self.alloc(InFlight::Read {
            reply,
            key,
            loc,
            rel,
        });
        self.io.read(file, buf, start, slot_idx as u64);
        self.stats.disk_reads += 1;
    }

    /// The record's bytes if it is still in memory (write buffer or a chunk being written).
    fn memory_record(&self, loc: Loc) -> Option<&[u8]> {
        let (off, len) = (loc.off, loc.len as usize);
        if loc.seg == self.active && off >= self.active_end {
            let at = (off - self.active_end) as usize;
            return self.wbuf.as_slice().get(at..at + len);
        }
        self.pending
            .iter()
            .find(|p| p.seg == loc.seg && off >= p.start && off < p.start + p.used as u64)
            .and_then(|p| {
                let at = (off - p.start) as usize;
                p.buf.as_slice().get(at..at + len)
            })
    }

    /// Appends one record; returns (segment, offset, length).
    fn append(
        &mut self,
        kind: Kind,
        set: Set,
        ns: &str,
        id: &str,
        value: Value<'_>,
    ) -> Result<(u64, u64, u32), CacheError> {
        let len = record::record_len(ns, id, value.bytes.len());
        let used = self.active_end + self.wlen as u64;
        if used > 0 && used + len as u64 > self.segment_bytes {
            self.flush_buffer();
            self.start_segment(self.active + 1)?;
        }
        if len > self.buffer_bytes {
            // Larger than a chunk: give it its own aligned buffer.
            self.flush_buffer();
            let mut big = AlignedBuf::zeroed(len);
            record::encode(&mut big.as_mut_slice()[..len], kind, set, ns, id, value);
            let start = self.active_end;
            let padded = big.len();
            self.submit_chunk(Arc::new(big), start, len, padded);
            return Ok((self.active, start, len as u32));
        }
        if self.wlen + len > self.buffer_bytes {
            self.flush_buffer();
        }
        let off = self.active_end + self.wlen as u64;
        let slice = &mut self.wbuf.as_mut_slice()[self.wlen..self.wlen + len];
        record::encode(slice, kind, set, ns, id, value);
        self.wlen += len;
        Ok((self.active, off, len as u32))
    }

    /// Hands the write buffer to the backend (padded to the alignment) and starts a new one.
    fn flush_buffer(&mut self) {
        if self.wlen == 0 {
            return;
        }
        let used = self.wlen;
        let buf = std::mem::replace(&mut self.wbuf, AlignedBuf::zeroed(self.buffer_bytes));
        self.wlen = 0;
        let start = self.active_end;
        self.submit_chunk(Arc::new(buf), start, used, align_up(used));
    }

    fn submit_chunk(&mut self, buf: Arc<AlignedBuf>, start: u64, used: usize, write_len: usize) {
        let seg = self.active;
        self.active_end = start + write_len as u64;
        let Some(file) = self.segments.get_mut(&seg).map(|s| {
            s.size = start + write_len as u64;
            Arc::clone(&s.file)
        }) else {
            return;
        };
        self.pending.push_back(PendingChunk {
            seg,
            start,
            used,
            buf: Arc::clone(&buf),
            done: false,
        });
        let ud = self.alloc(InFlight::Write { seg, start, used });
        self.io.write(file, buf, write_len, start, ud as u64);
        self.stats.chunk_writes += 1;
    }

    fn alloc(&mut self, op: InFlight) -> usize {
        self.in_flight += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(op);
                i
            }
            None => {
                self.slots.push(Some(op));
                self.slots.len() - 1
            }
        }
    }

    fn on_complete(&mut self, c: Completion) {
        let i = c.user_data as usize;
        let Some(op) = self.slots.get_mut(i).and_then(Option::take) else {
            return;
        };
        self.free.push(i);
        self.in_flight -= 1;
        match op {
            InFlight::Read {
                reply,
                key,
                loc,
                rel,
            } => {
                let need = rel + loc.len as usize;
                let r = match c.result {
                    Ok(n) if n >= need => {
                        self.health.record_ok();
                        let name = &self.names[key.0 as usize];
                        match c.buf {
                            Some(buf) => {
                                let got = &buf.as_slice()[rel..need];
                                let r = verify(got, name, &key.1).map(|v| Some(v.stored(got)));
                                self.read_bufs.give(buf);
                                r
                            }
                            None => Err(CacheError::Corrupt(
                                "read completed without its buffer".into(),
                            )),
                        }
                    }
                    Ok(n) => Err(CacheError::Corrupt(format!(
                        "short read: {n} of {need} bytes"
                    ))),
                    Err(e) => {
                        self.health.record_err();
                        self.stats.io_errors += 1;
                        Err(CacheError::io("read", &e))
                    }
                };
                if matches!(r, Err(CacheError::Corrupt(_))) {
                    self.drop_entry(&key, loc);
                }
                let _ = reply.send(r);
            }
            InFlight::Write {
                seg, start, used, ..
            } => {
                match c.result {
                    Ok(_) => self.health.record_ok(),
                    Err(e) => {
                        tracing::warn!(error = %e, seg, start, "nvme cache: chunk write failed; its records are dropped");
                        self.health.record_err();
                        self.stats.io_errors += 1;
                        let end = start + used as u64;
                        let ids = &mut self.ids;
                        self.index.retain(|(slot, id), l| {
                            let keep = !(l.seg == seg && l.off >= start && l.off < end);
                            if !keep {
                                ids[*slot as usize].remove(id);
                            }
                            keep
                        });
                    }
                }
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .find(|p| p.seg == seg && p.start == start)
                {
                    p.done = true;
                }
                while self.pending.front().is_some_and(|p| p.done) {
                    self.pending.pop_front();
                }
            }
            InFlight::ScanRead(run) => self.on_scan_read(run, c.buf, c.result),
        }
    }

    /// Forgets an entry whose record turned out unreadable, if the index still points there.
    fn drop_entry(&mut self, key: &(u32, Box<str>), loc: Loc) {
        if self.index.get(key) == Some(&loc) {
            self.index.remove(key);
            self.ids[key.0 as usize].remove(&key.1);
        }
    }
}

/// Opens with O_DIRECT while `direct` holds; on `EINVAL` (the filesystem refuses O_DIRECT) logs,
/// clears `direct` for good and opens buffered. Separate from the engine so the fallback can be
/// tested with a fake opener (every filesystem on the dev machines accepts O_DIRECT).
fn open_with_fallback(
    path: &Path,
    direct: &mut bool,
    open: impl Fn(bool) -> io::Result<File>,
) -> Result<File, CacheError> {
    if *direct {
        match open(true) {
            Ok(f) => return Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(
                    path = %path.display(),
                    "nvme cache: O_DIRECT not supported here, using buffered I/O"
                );
                *direct = false;
            }
            Err(e) => return Err(CacheError::io("open", &e)),
        }
    }
    open(false).map_err(|e| CacheError::io("open", &e))
}

/// Segment files in `dir` as (sequence, path), oldest first.
fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Engine {
    pub(crate) fn backend_name(&self) -> &'static str {
        self.io.name()
    }

    pub(crate) fn direct_io(&self) -> bool {
        self.direct
    }

    /// The `(set, namespace)`s holding live entries (after a recovery).
    pub(crate) fn namespaces_held(&self) -> Vec<(Set, Box<str>)> {
        self.names
            .iter()
            .zip(&self.ids)
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o_direct_einval_falls_back_to_buffered_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.seg");
        let calls = std::cell::RefCell::new(Vec::new());
        let mut direct = true;
        let opener = |d: bool| {
            calls.borrow_mut().push(d);
            if d {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                File::create(&path)
            }
        };
        open_with_fallback(&path, &mut direct, opener).expect("buffered open");
        assert!(!direct);
        open_with_fallback(&path, &mut direct, opener).expect("buffered open");
        assert_eq!(*calls.borrow(), vec![true, false, false]);
        // Other errors are not papered over.
        let mut direct = true;
        let denied = |_: bool| Err(io::Error::from_raw_os_error(libc::EACCES));
        assert!(open_with_fallback(&path, &mut direct, denied).is_err());
    }
}

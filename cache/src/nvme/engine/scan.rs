//! Paged scans on the NVMe tier thread: enumerate the live `(id, value)` entries of one
//! `(set, namespace)` without blocking the thread on the disk.
//!
//! A page is a range over the slot's sorted id set (`Engine::ids`, kept in step with the hash
//! index on put, delete, clear, eviction and dropped records), so paging is `O(log n + limit)`
//! and the cursor is simply the last id returned. Records still in memory (the write buffer or
//! a chunk being written) are copied at once; the rest are sorted by position and grouped into
//! runs of nearby records (gaps up to [`RUN_GAP`], at most [`RUN_MAX`] bytes), each fetched with
//! one aligned read. The page is answered when its last run completes. Values are copied out of
//! the run buffer, so a caller holding one value never pins a whole run.
//!
//! A record that fails its checksum or key check is dropped from the index and left out of the
//! page (the same as an evicted entry); a failed disk read fails the page with the I/O error.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashMap;

use super::{Engine, InFlight, Loc, Reply, verify};
use crate::nvme::buf::AlignedBuf;
use crate::nvme::record::ALIGN;
use crate::{CacheError, ScanCursor, ScanPage, Set};

/// Records closer than this on disk share one read (the bytes between them are read and dropped).
const RUN_GAP: u64 = 64 << 10;
/// Longest single read of a run.
const RUN_MAX: u64 = 1 << 20;

/// Scan pages waiting for disk reads, by page number.
#[derive(Default)]
pub(crate) struct Pages {
    next: u64,
    open: HashMap<u64, Page>,
}

struct Page {
    reply: Reply<ScanPage>,
    /// One slot per picked id, in id order; `None` until read (or when dropped as corrupt).
    entries: Vec<Option<(Box<str>, Bytes)>>,
    /// Run reads still outstanding.
    waiting: usize,
    /// The id the next page starts after; `None` when this page reaches the end.
    next: Option<Box<str>>,
    error: Option<CacheError>,
}

struct Member {
    pos: usize,
    id: Box<str>,
    loc: Loc,
}

/// One in-flight read covering a run of records of one page.
pub(crate) struct RunRead {
    page: u64,
    slot: u32,
    start: u64,
    members: Vec<Member>,
}

impl Engine {
    /// Starts one scan page; the reply is sent now (everything in memory) or when the last run
    /// read completes ([`Engine::on_scan_read`]).
    pub(super) fn scan(
        &mut self,
        set: Set,
        ns: &str,
        after: Option<&str>,
        limit: usize,
        reply: Reply<ScanPage>,
    ) {
        self.stats.scan_pages += 1;
        let limit = limit.max(1);
        let Some(&slot) = self.namespaces.get(&(set, Box::<str>::from(ns))) else {
            let _ = reply.send(Ok(ScanPage::default()));
            return;
        };
        let ids = &self.ids[slot as usize];
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut range = ids.range::<str, _>((lower, Bound::Unbounded));
        let picked: Vec<Box<str>> = range.by_ref().take(limit).cloned().collect();
        let next = if range.next().is_some() {
            picked.last().cloned()
        } else {
            None
        };
        let mut page = Page {
            reply,
            entries: Vec::with_capacity(picked.len()),
            waiting: 0,
            next,
            error: None,
        };
        let mut on_disk = Vec::new();
        for id in picked {
            let key = (slot, id);
            let loc = self.index.get(&key).copied();
            let id = key.1;
            let pos = page.entries.len();
            page.entries.push(None);
            let Some(loc) = loc.filter(|l| l.gen_ == self.gens[slot as usize]) else {
                continue;
            };
            match self.memory_record(loc) {
                Some(bytes) => match verify(bytes, &self.names[slot as usize], &id) {
                    Ok(v) => {
                        page.entries[pos] = Some((id, v.value(bytes)));
                        self.stats.memory_reads += 1;
                    }
                    Err(_) => self.drop_entry(&(slot, id), loc),
                },
                None => on_disk.push(Member { pos, id, loc }),
            }
        }
        on_disk.sort_unstable_by_key(|m| (m.loc.seg, m.loc.off));
        let id = self.scans.next;
        self.scans.next += 1;
        for run in runs(on_disk) {
            if self.submit_run(id, slot, run) {
                page.waiting += 1;
            }
        }
        if page.waiting == 0 {
            finish(page);
        } else {
            self.scans.open.insert(id, page);
        }
    }

    /// Issues one read for a run; `false` when its segment is gone (its entries are dropped).
    fn submit_run(&mut self, page: u64, slot: u32, members: Vec<Member>) -> bool {
        let (Some(first), Some(last)) = (members.first(), members.last()) else {
            return false;
        };
        let seg = first.loc.seg;
        let start = first.loc.off & !(ALIGN as u64 - 1);
        let end = last.loc.off + u64::from(last.loc.len);
        let Some(file) = self.segments.get(&seg).map(|s| Arc::clone(&s.file)) else {
            for m in members {
                self.drop_entry(&(slot, m.id), m.loc);
            }
            return false;
        };
        let buf = AlignedBuf::zeroed((end - start) as usize);
        let ud = self.alloc(InFlight::ScanRead(RunRead {
            page,
            slot,
            start,
            members,
        }));
        self.io.read(file, buf, start, ud as u64);
        self.stats.disk_reads += 1;
        self.stats.scan_reads += 1;
        true
    }

    /// A run read finished (`buf` is the run's buffer, handed back by the backend): fill its
    /// page's entries, answer the page when it was the last run.
    pub(super) fn on_scan_read(
        &mut self,
        run: RunRead,
        buf: Option<AlignedBuf>,
        result: std::io::Result<usize>,
    ) {
        let mut corrupt = Vec::new();
        let Some(page) = self.scans.open.get_mut(&run.page) else {
            return;
        };
        match (result, buf) {
            (Ok(n), Some(buf)) => {
                self.health.record_ok();
                let data = buf.as_slice();
                let name = &self.names[run.slot as usize];
                for m in run.members {
                    let rel = (m.loc.off - run.start) as usize;
                    let need = rel + m.loc.len as usize;
                    let checked = if n >= need {
                        verify(&data[rel..need], name, &m.id).ok()
                    } else {
                        None
                    };
                    match checked {
                        Some(v) => {
                            page.entries[m.pos] = Some((m.id, v.value(&data[rel..need])));
                        }
                        None => corrupt.push(((run.slot, m.id), m.loc)),
                    }
                }
            }
            (Ok(_), None) => {
                page.error.get_or_insert(CacheError::Corrupt(
                    "scan read completed without its buffer".into(),
                ));
            }
            (Err(e), _) => {
                self.health.record_err();
                self.stats.io_errors += 1;
                page.error.get_or_insert(CacheError::io("scan read", &e));
            }
        }
        page.waiting -= 1;
        if page.waiting == 0
            && let Some(page) = self.scans.open.remove(&run.page)
        {
            finish(page);
        }
        for (key, loc) in corrupt {
            self.drop_entry(&key, loc);
        }
    }
}

/// Groups position-sorted records into runs one read can cover.
fn runs(sorted: Vec<Member>) -> Vec<Vec<Member>> {
    let mut out: Vec<Vec<Member>> = Vec::new();
    for m in sorted {
        let joins = out
            .last()
            .and_then(|run| run.first().zip(run.last()))
            .is_some_and(|(first, last)| {
                let end = last.loc.off + u64::from(last.loc.len);
                m.loc.seg == first.loc.seg
                    && m.loc.off <= end + RUN_GAP
                    && m.loc.off + u64::from(m.loc.len) - first.loc.off <= RUN_MAX
            });
        match out.last_mut() {
            Some(run) if joins => run.push(m),
            _ => out.push(vec![m]),
        }
    }
    out
}

fn finish(page: Page) {
    let reply = match page.error {
        Some(e) => Err(e),
        None => Ok(ScanPage {
            entries: page
                .entries
                .into_iter()
                .flatten()
                .map(|(id, v)| (String::from(id), v))
                .collect(),
            next: page.next.as_deref().map(ScanCursor::after),
        }),
    };
    let _ = page.reply.send(reply);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(seg: u64, off: u64, len: u32) -> Member {
        Member {
            pos: 0,
            id: "x".into(),
            loc: Loc {
                seg,
                off,
                len,
                gen_: 0,
            },
        }
    }

    fn shape(runs: &[Vec<Member>]) -> Vec<usize> {
        runs.iter().map(Vec::len).collect()
    }

    #[test]
    fn runs_split_on_segment_gap_and_size() {
        let near = vec![member(1, 0, 100), member(1, 200, 100), member(1, 5000, 10)];
        assert_eq!(shape(&runs(near)), vec![3]);
        let gap = vec![member(1, 0, 100), member(1, 100 + RUN_GAP + 1, 10)];
        assert_eq!(shape(&runs(gap)), vec![1, 1]);
        let segs = vec![member(1, 0, 100), member(2, 0, 100)];
        assert_eq!(shape(&runs(segs)), vec![1, 1]);
        let big = vec![member(1, 0, 600_000), member(1, 600_000, 600_000)];
        assert_eq!(shape(&runs(big)), vec![1, 1]);
        assert!(runs(Vec::new()).is_empty());
    }
}

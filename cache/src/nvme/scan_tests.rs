//! Scan tests for the NVMe tier: pages agree with a model map after puts, overwrites, deletes,
//! clears, eviction and recovery, on both I/O backends.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_executor::block_on;
use proptest::prelude::*;

use super::*;
use crate::scan_all;

fn cfg(dir: &std::path::Path, plain: bool) -> NvmeConfig {
    let mut c = NvmeConfig::new(dir, 64 << 20);
    c.force_plain_io = plain;
    c.segment_bytes = 1 << 20;
    c.write_buffer_bytes = 64 << 10;
    c
}

fn both(test: impl Fn(bool)) {
    test(false);
    test(true);
}

fn val(id: &str, round: usize, len: usize) -> Bytes {
    let seed = format!("{id}/{round};");
    Bytes::from(seed.repeat(len / seed.len() + 1)[..len].to_string())
}

fn put(t: &NvmeTier, ns: &str, id: &str, v: Bytes) {
    block_on(t.put(Set::Documents, ns, id, v)).expect("put");
}

fn scan(t: &NvmeTier, ns: &str, page: usize) -> BTreeMap<String, Bytes> {
    let all = block_on(scan_all(t, Set::Documents, ns, page)).expect("scan");
    let ids: Vec<&String> = all.iter().map(|(id, _)| id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ids come back once each, in order");
    all.into_iter().collect()
}

#[test]
fn scan_returns_live_entries_across_memory_and_disk() {
    both(|plain| {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = NvmeTier::open(cfg(dir.path(), plain)).expect("open");
        let mut want = BTreeMap::new();
        for i in 0..300 {
            let id = format!("doc-{i:04}");
            // Mixed sizes, including values larger than the write buffer and far-apart records.
            let len = match i % 50 {
                0 => 200_000,
                7 => 9_000,
                _ => 40 + i,
            };
            let v = val(&id, 0, len);
            put(&t, "ns", &id, v.clone());
            want.insert(id, v);
            if i == 150 {
                block_on(t.flush()).expect("flush");
            }
        }
        for i in (0..300).step_by(9) {
            let id = format!("doc-{i:04}");
            let v = val(&id, 1, 77);
            put(&t, "ns", &id, v.clone());
            want.insert(id, v);
        }
        for i in (0..300).step_by(13) {
            let id = format!("doc-{i:04}");
            block_on(t.delete(Set::Documents, "ns", &id)).expect("delete");
            want.remove(&id);
        }
        put(&t, "other", "doc-0001", val("x", 0, 10));
        block_on(t.put(Set::Chunks, "ns", "chunk", val("c", 0, 10))).expect("put");
        for page in [1, 7, 64, 10_000] {
            assert_eq!(scan(&t, "ns", page), want, "page {page} plain {plain}");
        }
        block_on(t.flush()).expect("flush");
        assert_eq!(scan(&t, "ns", 50), want);
        assert_eq!(scan(&t, "missing", 50), BTreeMap::new());
        let s = block_on(t.stats()).expect("stats");
        assert!(s.scan_reads > 0 && s.scan_pages > 0, "{s:?}");
        // Runs: far fewer reads than records once everything is on disk.
        let before = s.scan_reads;
        scan(&t, "ns", 10_000);
        let after = block_on(t.stats()).expect("stats").scan_reads;
        assert!(
            after - before < want.len() as u64 / 4,
            "{} reads",
            after - before
        );
    });
}

#[test]
fn scan_after_clear_sees_only_the_new_generation() {
    both(|plain| {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = NvmeTier::open(cfg(dir.path(), plain)).expect("open");
        for i in 0..20 {
            put(&t, "ns", &format!("{i}"), val("a", i, 30));
        }
        block_on(t.flush()).expect("flush");
        block_on(t.clear_namespace(Set::Documents, "ns")).expect("clear");
        assert!(scan(&t, "ns", 5).is_empty());
        put(&t, "ns", "3", val("3", 9, 30));
        assert_eq!(
            scan(&t, "ns", 5),
            BTreeMap::from([("3".to_string(), val("3", 9, 30))])
        );
    });
}

#[test]
fn scan_after_recovery_matches_what_get_serves() {
    both(|plain| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut want = BTreeMap::new();
        {
            let t = NvmeTier::open(cfg(dir.path(), plain)).expect("open");
            for i in 0..100 {
                let id = format!("{i:03}");
                put(&t, "ns", &id, val(&id, 0, 100 + i));
                want.insert(id, val(&format!("{i:03}"), 0, 100 + i));
            }
            block_on(t.delete(Set::Documents, "ns", "050")).expect("delete");
            want.remove("050");
            put(&t, "gone", "x", val("x", 0, 10));
            block_on(t.clear_namespace(Set::Documents, "gone")).expect("clear");
        }
        let mut c = cfg(dir.path(), plain);
        c.start = StartMode::Recover;
        let t = NvmeTier::open(c).expect("recover");
        assert_eq!(scan(&t, "ns", 16), want);
        assert!(scan(&t, "gone", 16).is_empty());
    });
}

#[test]
fn scan_after_eviction_agrees_with_get() {
    both(|plain| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = cfg(dir.path(), plain);
        c.segment_bytes = 64 << 10;
        c.write_buffer_bytes = 16 << 10;
        c.max_bytes = 256 << 10;
        let t = NvmeTier::open(c).expect("open");
        for i in 0..400 {
            put(&t, "ns", &format!("{i:03}"), val("x", i, 2000));
        }
        block_on(t.flush()).expect("flush");
        let scanned = scan(&t, "ns", 33);
        assert!(
            !scanned.is_empty() && scanned.len() < 400,
            "{}",
            scanned.len()
        );
        for i in 0..400 {
            let id = format!("{i:03}");
            let got = block_on(t.get(Set::Documents, "ns", &id)).expect("get");
            assert_eq!(got.as_ref(), scanned.get(&id), "{id}");
        }
    });
}

#[test]
fn paging_survives_concurrent_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = NvmeTier::open(cfg(dir.path(), false)).expect("open");
    for i in 0..50 {
        put(&t, "ns", &format!("{i:02}"), val("a", i, 20));
    }
    let first = block_on(t.scan(Set::Documents, "ns", None, 10)).expect("page");
    assert_eq!(first.entries.len(), 10);
    // Writes between pages: a new id behind the cursor, a delete ahead of it.
    put(&t, "ns", "00a", val("new", 0, 5));
    block_on(t.delete(Set::Documents, "ns", "30")).expect("delete");
    let mut ids: Vec<String> = first.entries.into_iter().map(|(id, _)| id).collect();
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let p = block_on(t.scan(Set::Documents, "ns", Some(c), 10)).expect("page");
        ids.extend(p.entries.into_iter().map(|(id, _)| id));
        cursor = p.next;
    }
    let want: Vec<String> = (0..50)
        .filter(|i| *i != 30)
        .map(|i| format!("{i:02}"))
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn scan_failures_are_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = NvmeTier::open(cfg(dir.path(), true)).expect("open");
    t.fail_next(1);
    assert!(matches!(
        block_on(t.scan(Set::Documents, "ns", None, 10)),
        Err(CacheError::Injected)
    ));
    let long = "n".repeat(crate::MAX_NAMESPACE_LEN + 1);
    assert!(matches!(
        block_on(t.scan(Set::Documents, &long, None, 10)),
        Err(CacheError::KeyTooLong { .. })
    ));
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8, usize),
    Delete(u8, u8),
    Clear(u8),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..2, 0u8..40, 1usize..3000).prop_map(|(n, i, l)| Op::Put(n, i, l)),
        2 => (0u8..2, 0u8..40).prop_map(|(n, i)| Op::Delete(n, i)),
        1 => (0u8..2).prop_map(Op::Clear),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Model check: after any sequence of operations (and after a recovering restart), every
    /// namespace scans to exactly the model's live entries, whatever the page size.
    #[test]
    fn scan_matches_a_model(ops in proptest::collection::vec(op(), 1..120), page in 1usize..50) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut model: [BTreeMap<String, Bytes>; 2] = Default::default();
        {
            let t = NvmeTier::open(cfg(dir.path(), true)).expect("open");
            for (round, op) in ops.iter().enumerate() {
                match *op {
                    Op::Put(n, i, l) => {
                        let (ns, id) = (format!("ns{n}"), format!("id{i}"));
                        let v = val(&id, round, l);
                        put(&t, &ns, &id, v.clone());
                        model[n as usize].insert(id, v);
                    }
                    Op::Delete(n, i) => {
                        let id = format!("id{i}");
                        block_on(t.delete(Set::Documents, &format!("ns{n}"), &id)).expect("delete");
                        model[n as usize].remove(&id);
                    }
                    Op::Clear(n) => {
                        block_on(t.clear_namespace(Set::Documents, &format!("ns{n}"))).expect("clear");
                        model[n as usize].clear();
                    }
                    Op::Flush => block_on(t.flush()).expect("flush"),
                }
            }
            for (n, want) in model.iter().enumerate() {
                prop_assert_eq!(&scan(&t, &format!("ns{n}"), page), want);
            }
        }
        let mut c = cfg(dir.path(), true);
        c.start = StartMode::Recover;
        let t = NvmeTier::open(c).expect("recover");
        for (n, want) in model.iter().enumerate() {
            prop_assert_eq!(&scan(&t, &format!("ns{n}"), page), want);
        }
    }
}

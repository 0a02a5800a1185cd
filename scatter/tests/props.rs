//! Property tests: the splicer against the serde_json DOM reference on random write and query
//! bodies, plus byte-level checks that untouched values are copied verbatim.

mod common;

use std::collections::BTreeMap;

use common::{J, Rng, add_duplicate, filter, query_body, render, write_body};
use proptest::prelude::*;
use scatter::layer_query::{QueryContext, QueryPlan, hide_and_plan, plan_query, plan_validated};
use scatter::page::{Pageable, page_body, paging_of};
use scatter::reference::{check_inject, check_stamp, hide_then_plan};
use scatter::{
    IdRef, IdValue, KEEP_RUNS_FROM, Limits, RewriteError, StampOptions, Validated, hide_reserved,
    inject_filter, plan_shards, plan_stable_parts, plan_stable_read, stamp_write, stamp_write_with,
    validate,
};
use serde_json::value::RawValue;

type RawMap = BTreeMap<String, Box<RawValue>>;

const NOW: u64 = 1_700_000_000_123;

fn raw_map(text: &[u8]) -> RawMap {
    serde_json::from_slice(text).expect("object of raw values")
}

fn is_subsequence(needle: &[u8], hay: &[u8]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|b| it.any(|h| h == b))
}

/// Every attribute of `inp` (an object) has byte-identical text in `out`; `out` may only add
/// `_hevlayer_*` keys.
fn same_fields(inp: &RawValue, out: &RawValue) -> Result<(), TestCaseError> {
    let inp = raw_map(inp.get().as_bytes());
    let out = raw_map(out.get().as_bytes());
    for (k, v) in &inp {
        let o = out
            .get(k)
            .ok_or_else(|| TestCaseError::fail(format!("lost key {k}")))?;
        prop_assert_eq!(o.get(), v.get(), "value of {} changed", k);
    }
    for k in out.keys() {
        prop_assert!(
            inp.contains_key(k) || k.starts_with("_hevlayer_"),
            "new key {}",
            k
        );
    }
    Ok(())
}

/// Byte-level check of a stamped write against its input.
fn verbatim_write(input: &[u8], output: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        is_subsequence(input, output),
        "stamping must only insert bytes"
    );
    let inp = raw_map(input);
    let out = raw_map(output);
    prop_assert_eq!(inp.len(), out.len());
    for (k, v) in &inp {
        let o = &out[k];
        match k.as_str() {
            _ if v.get() == "null" => prop_assert_eq!(o.get(), "null"),
            "upsert_rows" | "patch_rows" => {
                let rows_in: Vec<Box<RawValue>> = serde_json::from_str(v.get()).unwrap();
                let rows_out: Vec<Box<RawValue>> = serde_json::from_str(o.get()).unwrap();
                prop_assert_eq!(rows_in.len(), rows_out.len());
                for (a, b) in rows_in.iter().zip(&rows_out) {
                    same_fields(a, b)?;
                }
            }
            "upsert_columns" | "patch_columns" => same_fields(v, o)?,
            "patch_by_filter" => {
                let a = raw_map(v.get().as_bytes());
                let b = raw_map(o.get().as_bytes());
                prop_assert_eq!(a["filters"].get(), b["filters"].get());
                same_fields(&a["patch"], &b["patch"])?;
            }
            _ => prop_assert_eq!(o.get(), v.get(), "top-level {} changed", k),
        }
    }
    Ok(())
}

/// Byte-level check of one query object (root or sub-query) after injection.
fn verbatim_query(inp: &RawValue, out: &RawValue, pred: &str) -> Result<(), TestCaseError> {
    let inp = raw_map(inp.get().as_bytes());
    let out = raw_map(out.get().as_bytes());
    for (k, v) in &inp {
        if k != "filters" {
            prop_assert_eq!(out[k].get(), v.get(), "{} changed", k);
        }
    }
    let want = match inp.get("filters") {
        Some(old) if old.get() != "null" => format!("[\"And\",[{},{pred}]]", old.get()),
        _ => pred.to_owned(),
    };
    prop_assert_eq!(out["filters"].get(), want.as_str());
    Ok(())
}

fn verbatim_inject(input: &[u8], output: &[u8], pred: &str) -> Result<(), TestCaseError> {
    let inp = raw_map(input);
    let out = raw_map(output);
    match inp.get("queries") {
        Some(q) if q.get() != "null" => {
            for (k, v) in &inp {
                if k != "queries" {
                    prop_assert_eq!(out[k].get(), v.get(), "root {} changed", k);
                }
            }
            let subs_in: Vec<Box<RawValue>> = serde_json::from_str(q.get()).unwrap();
            let subs_out: Vec<Box<RawValue>> = serde_json::from_str(out["queries"].get()).unwrap();
            prop_assert_eq!(subs_in.len(), subs_out.len());
            for (a, b) in subs_in.iter().zip(&subs_out) {
                verbatim_query(a, b, pred)?;
            }
            Ok(())
        }
        _ => {
            let a = RawValue::from_string(String::from_utf8(input.to_vec()).unwrap()).unwrap();
            let b = RawValue::from_string(String::from_utf8(output.to_vec()).unwrap()).unwrap();
            verbatim_query(&a, &b, pred)
        }
    }
}

/// A shard function over the decoded id (FNV-1a into 16 buckets).
fn shard(id: &IdRef<'_>) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    match id.value() {
        IdValue::Uint(n) => eat(&n.to_le_bytes()),
        IdValue::Str(s) => eat(s.as_bytes()),
        IdValue::Other => eat(b"?"),
    }
    (h % 16) as u32
}

/// Inserts a reserved attribute where a caller could set one; false if the body has no place.
fn add_reserved(j: &mut J, rng: &mut Rng) -> bool {
    let J::Obj(top) = j else { return false };
    let mut targets: Vec<&mut Vec<(String, J)>> = Vec::new();
    for (k, v) in top.iter_mut() {
        match (k.as_str(), v) {
            ("upsert_rows" | "patch_rows", J::Arr(rows)) => {
                for row in rows {
                    if let J::Obj(f) = row {
                        targets.push(f);
                    }
                }
            }
            ("upsert_columns" | "patch_columns" | "schema", J::Obj(f)) => targets.push(f),
            ("patch_by_filter", J::Obj(pbf)) => {
                for (pk, pv) in pbf {
                    if let ("patch", J::Obj(f)) = (pk.as_str(), pv) {
                        targets.push(f);
                    }
                }
            }
            _ => {}
        }
    }
    if targets.is_empty() {
        return false;
    }
    let n = targets.len() as u64;
    let fields = &mut targets[rng.below(n) as usize];
    let at = rng.below(fields.len() as u64 + 1) as usize;
    fields.insert(
        at,
        ("_hevlayer_upserted_at".to_owned(), J::Num("1".to_owned())),
    );
    true
}

fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..=rng.below(3) {
        if bytes.is_empty() {
            bytes.push(b'{');
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(4) {
            0 => {
                let end = (at + 1 + rng.below(8) as usize).min(bytes.len());
                bytes.drain(at..end);
            }
            1 => bytes[at] = rng.next() as u8,
            2 => {
                let pick = [
                    &b"{"[..],
                    b"}",
                    b"[",
                    b"]",
                    b",",
                    b"\"",
                    b"\\",
                    b":",
                    b"null",
                    b"\"id\":1",
                ];
                let ins = pick[rng.below(pick.len() as u64) as usize];
                bytes.splice(at..at, ins.iter().copied());
            }
            _ => bytes.truncate(at),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn stamp_matches_reference_and_keeps_bytes(body in write_body(), seed in any::<u64>()) {
        let text = render(&body, &mut Rng(seed));
        check_stamp(text.as_bytes(), &StampOptions::new(NOW), &Limits::default())
            .map_err(TestCaseError::fail)?;
        match stamp_write(text.as_bytes(), NOW, &Limits::default()) {
            Ok(out) => verbatim_write(text.as_bytes(), &out)?,
            Err(e) => prop_assert_eq!(e, RewriteError::NoWriteOperation),
        }
    }

    #[test]
    fn shard_stamp_matches_reference(body in write_body(), seed in any::<u64>()) {
        let text = render(&body, &mut Rng(seed));
        let opts = StampOptions { now_ms: NOW, shard: Some(&shard), own_reserved: &[] };
        check_stamp(text.as_bytes(), &opts, &Limits::default()).map_err(TestCaseError::fail)?;
        match stamp_write_with(text.as_bytes(), &opts, &Limits::default()) {
            Ok(out) => verbatim_write(text.as_bytes(), &out)?,
            Err(e) => prop_assert!(
                matches!(e, RewriteError::NoWriteOperation | RewriteError::Malformed { .. }),
                "{e}"
            ),
        }
    }

    #[test]
    fn reserved_attributes_are_always_rejected(mut body in write_body(), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        prop_assume!(add_reserved(&mut body, &mut rng));
        let text = render(&body, &mut rng);
        check_stamp(text.as_bytes(), &StampOptions::new(NOW), &Limits::default())
            .map_err(TestCaseError::fail)?;
        let got = stamp_write(text.as_bytes(), NOW, &Limits::default());
        prop_assert!(matches!(got, Err(RewriteError::ReservedAttribute { .. })), "{got:?}");
    }

    #[test]
    fn inject_matches_reference_and_keeps_bytes(
        body in query_body(),
        pred in filter(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let text = render(&body, &mut rng);
        let pred = render(&pred, &mut rng);
        check_inject(text.as_bytes(), pred.as_bytes(), &Limits::default())
            .map_err(TestCaseError::fail)?;
        let out = inject_filter(text.as_bytes(), pred.as_bytes(), &Limits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        verbatim_inject(text.as_bytes(), &out, &pred)?;
    }

    #[test]
    fn duplicates_anywhere_are_rejected(
        body in prop_oneof![write_body(), query_body()],
        seed in any::<u64>(),
    ) {
        let mut body = body;
        let mut rng = Rng(seed);
        prop_assume!(add_duplicate(&mut body, &mut rng));
        let text = render(&body, &mut rng);
        let limits = Limits::default();
        let is_dup = |r: Result<Vec<u8>, RewriteError>| {
            matches!(r, Err(RewriteError::DuplicateKey { .. }))
        };
        let validated = validate(text.as_bytes(), &limits);
        prop_assert!(
            matches!(validated, Err(RewriteError::DuplicateKey { .. })),
            "{validated:?}"
        );
        prop_assert!(is_dup(stamp_write(text.as_bytes(), NOW, &limits)), "stamp_write");
        let injected = inject_filter(text.as_bytes(), b"[\"a\",\"Eq\",1]", &limits);
        prop_assert!(is_dup(injected), "inject_filter");
    }

    /// The gateway's query passes validate a body once and then trust what is spliced from it
    /// (`Validated`): planning a checked body gives the plan `plan_query` gives, and every body
    /// made after the check (the plan's, the stable read's, each shard leg) validates whole.
    #[test]
    fn bodies_spliced_from_a_validated_query_validate(
        body in query_body(),
        seed in any::<u64>(),
        shards in 1u32..5,
        mutated in any::<bool>(),
    ) {
        let mut rng = Rng(seed);
        let mut bytes = render(&body, &mut rng).into_bytes();
        // Layer keys and nulls beside the keys they replace: translation, projection hiding
        // and paging rewrite these, and must not repeat a key.
        let extra: &[u8] = match seed % 6 {
            0 => br#""rank_by":null,"vector":[0.5,1],"#,
            1 => br#""include_attributes":true,"exclude_attributes":null,"#,
            2 => br#""include_attributes":null,"cursor":null,"#,
            3 => br#""nearest_to_id":["a"],"rank_by":null,"#,
            _ => b"",
        };
        if let Some(open) = bytes.iter().position(|&b| b == b'{') {
            bytes.splice(open + 1..open + 1, extra.iter().copied());
        }
        if mutated {
            mutate(&mut bytes, &mut rng);
        }
        let ctx = QueryContext { shards, ..QueryContext::default() };
        let bytes = bytes::Bytes::from(bytes);
        // Splices nest a few levels deeper than the limit the input was checked under.
        let relaxed = Limits { max_depth: ctx.limits.max_depth + 8, ..Limits::default() };
        // The gateway's path for a body naming a projection: hidden, then planned as checked,
        // in one call that reads the top level once; the same as the two calls it replaces.
        prop_assert_eq!(hide_and_plan(bytes.clone(), &ctx), hide_then_plan(bytes.clone(), &ctx));
        if let Ok(hidden) = hide_reserved(bytes.clone(), &ctx.limits) {
            prop_assert!(validate(&hidden, &relaxed).is_ok(), "the hidden projection");
            if let Ok(QueryPlan::Upstream(q)) = plan_validated(&hidden, &ctx) {
                prop_assert!(validate(&q.body, &relaxed).is_ok(), "the hidden plan's body");
            }
        }
        let plan = plan_query(&bytes, &ctx);
        let Ok(valid) = Validated::check(bytes, &ctx.limits) else {
            prop_assert!(plan.is_err(), "an invalid body was planned");
            return Ok(());
        };
        prop_assert_eq!(&plan, &plan_validated(&valid, &ctx));
        let Ok(QueryPlan::Upstream(q)) = plan else {
            return Ok(());
        };
        prop_assert!(validate(&q.body, &relaxed).is_ok(), "the plan's body");
        if let Ok(Pageable::Yes(p)) = paging_of(&q.body) {
            let page = page_body(&q.body, &p, 3, Some(r#"["id","asc"]"#), Some(b"[\"n\",\"Gt\",1]"));
            let page = page.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(validate(&page, &relaxed).is_ok(), "a page's body");
        }
        let pred = br#"["_hevlayer_upserted_at","Lte",12]"#;
        for p in [None, Some(pred.as_slice())] {
            let planned = plan_stable_read(&q.body, p);
            // The planner's note of the root members gives what a walk of the body gives.
            prop_assert_eq!(&q.plan_stable_read(p), &planned);
            // The runs a vectored write sends are the planned body, byte for byte.
            let parts = q.plan_stable_parts(p).map(|s| {
                let bytes = s.body.slices().concat();
                (bytes, s.caller_strong, s.injected)
            });
            let whole = planned
                .as_ref()
                .map(|s| (s.body.to_vec(), s.caller_strong, s.injected))
                .map_err(Clone::clone);
            prop_assert_eq!(parts, whole);
            // The same body made long enough to be kept as runs: its runs are what the
            // one-buffer splice writes for it.
            if let Some(rest) = q.body.trim_ascii_start().strip_prefix(b"{") {
                let pad = "x".repeat(KEEP_RUNS_FROM);
                let comma = if rest.trim_ascii_start().starts_with(b"}") { "" } else { "," };
                let long = [format!(r#"{{"pad":"{pad}"{comma}"#).as_bytes(), rest].concat();
                let long = Validated::check(bytes::Bytes::from(long), &relaxed)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let runs = plan_stable_parts(&long, p)
                    .map(|s| (s.body.slices().concat(), s.caller_strong, s.injected));
                let copied = plan_stable_read(&long, p)
                    .map(|s| (s.body.to_vec(), s.caller_strong, s.injected));
                prop_assert_eq!(runs, copied);
            }
            // One splice writes what the two passes it replaced wrote: the consistency edit,
            // then the predicate injected into that output (a failure on either side is a
            // difference too).
            if let (Some(p), Ok(eventual)) = (p, plan_stable_read(&q.body, None))
                && !eventual.caller_strong
            {
                let two_passes = inject_filter(&eventual.body, p, &relaxed).ok();
                let one = planned.as_ref().ok().map(|s| &s.body[..]);
                prop_assert_eq!(two_passes.as_deref(), one);
            }
            let Ok(stable) = planned else {
                continue;
            };
            prop_assert!(validate(&stable.body, &relaxed).is_ok(), "the stable read's body");
            if let Ok(legs) = plan_shards(&stable.body, shards, None) {
                prop_assert_eq!(legs.legs.len(), shards as usize);
                for leg in &legs.legs {
                    prop_assert!(validate(leg, &relaxed).is_ok(), "a shard leg");
                }
            }
        }
    }

    #[test]
    fn mutated_bodies_never_panic_or_disagree(
        body in prop_oneof![write_body(), query_body()],
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let mut bytes = render(&body, &mut rng).into_bytes();
        mutate(&mut bytes, &mut rng);
        let limits = Limits { max_depth: 16, ..Limits::default() };
        let opts = StampOptions { now_ms: NOW, shard: Some(&shard), own_reserved: &[] };
        check_stamp(&bytes, &StampOptions::new(NOW), &limits).map_err(TestCaseError::fail)?;
        check_stamp(&bytes, &opts, &limits).map_err(TestCaseError::fail)?;
        check_inject(&bytes, b"[\"_hevlayer_upserted_at\",\"Lte\",1]", &limits)
            .map_err(TestCaseError::fail)?;
    }
}

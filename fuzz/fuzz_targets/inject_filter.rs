//! Fuzzes `scatter::inject_filter` on arbitrary bytes: it must never panic, and whenever it
//! succeeds (or fails semantically) it must agree with the serde_json DOM reference.
//!
//! The first input byte picks the injected predicate; the rest is the query body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scatter::Limits;
use scatter::reference::check_inject;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let predicate = match pick % 4 {
        0 => json!(["_hevlayer_upserted_at", "Lte", u64::MAX]),
        1 => json!([
            "And",
            [
                ["_hevlayer_upserted_at", "NotEq", null],
                ["_hevlayer_upserted_at", "Lte", 1]
            ]
        ]),
        2 => json!(["tenant_id", "Eq", "t_\"42\"\\\u{1}é"]),
        _ => json!(["_hevlayer_shard", "In", [0, 1, 2]]),
    };
    let predicate = predicate.to_string();
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_depth: 32,
        prevalidated: false,
    };
    if let Err(msg) = check_inject(body, predicate.as_bytes(), &limits) {
        panic!("{msg}");
    }
});

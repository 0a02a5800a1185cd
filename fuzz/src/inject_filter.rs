//! The filter injection (`scatter::inject_filter`) on arbitrary bytes, against the serde_json DOM
//! reference (`scatter::reference::check_inject`): never a panic, the same result or the same
//! error, and an output that validates. The first byte picks the injected predicate (the
//! watermark, a compound one, a string with escapes, the shard predicate); the rest is the body.

use scatter::Limits;
use scatter::reference::check_inject;
use serde_json::json;

/// The target (module docs).
pub fn run(data: &[u8]) {
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
    };
    if let Err(msg) = check_inject(body, predicate.as_bytes(), &limits) {
        panic!("{msg}");
    }
}

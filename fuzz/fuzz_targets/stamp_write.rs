//! Fuzzes `scatter::stamp_write_with` on arbitrary bytes: it must never panic, and whenever it
//! succeeds (or fails semantically) it must agree with the serde_json DOM reference.

#![no_main]

use libfuzzer_sys::fuzz_target;
use scatter::reference::check_stamp;
use scatter::{IdRef, IdValue, Limits, StampOptions};

fn shard(id: &IdRef<'_>) -> u32 {
    match id.value() {
        IdValue::Uint(n) => (n % 13) as u32,
        IdValue::Str(s) => s.len() as u32 % 13,
        IdValue::Other => 13,
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_depth: 32,
        prevalidated: false,
    };
    if let Err(msg) = check_stamp(data, &StampOptions::new(1_700_000_000_000), &limits) {
        panic!("{msg}");
    }
    let opts = StampOptions {
        now_ms: u64::MAX,
        shard: Some(&shard),
    };
    if let Err(msg) = check_stamp(data, &opts, &limits) {
        panic!("{msg}");
    }
});

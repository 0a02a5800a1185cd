//! The write stamper (`scatter::stamp_write_with`) on arbitrary bytes, against the serde_json DOM
//! reference (`scatter::reference::check_stamp`): never a panic, the same result or the same
//! error, and an output that validates. Checked twice per input: the plain stamp, and with a shard
//! function and the largest timestamp.

use scatter::reference::check_stamp;
use scatter::{IdRef, IdValue, Limits, StampOptions};

fn shard(id: &IdRef<'_>) -> u32 {
    match id.value() {
        IdValue::Uint(n) => (n % 13) as u32,
        IdValue::Str(s) => s.len() as u32 % 13,
        IdValue::Other => 13,
    }
}

/// The target (module docs).
pub fn run(data: &[u8]) {
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
}

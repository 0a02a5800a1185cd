//! The `blobs` step of `hint_cache_warm`: pages through the namespace's documents, collects the
//! blob refs (`sha256:<hex>` string values, alone or in arrays) their attributes hold, and copies
//! those blobs from the object store into the cache tier until `blob_budget_bytes` is spent.
//! Answers the contract's `WarmBlobsResponse`: `documents_scanned`, `refs_seen` (distinct refs),
//! `objects` and `bytes` copied (already cached ones count too, without a copy), `missing` (refs
//! with no object), `invalid_refs` (`sha256:` values that are not a hash), `budget_exhausted`.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde_json::{Value, json};

use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::sources::blobs;
use crate::sources::origin::{self, OriginScan};

/// The default budget: 256 MiB.
pub const DEFAULT_BUDGET: u64 = 256 << 20;

fn collect(v: &Value, refs: &mut BTreeSet<String>, invalid: &mut u64) {
    match v {
        Value::String(s) if s.starts_with(blobs::REF_PREFIX) => match blobs::sha_of_ref(s) {
            Some(sha) => {
                refs.insert(sha.to_string());
            }
            None => *invalid += 1,
        },
        Value::Array(a) => a.iter().for_each(|x| collect(x, refs, invalid)),
        _ => {}
    }
}

/// Runs the step.
pub async fn run(
    ctx: &ShardCtx,
    ns: &str,
    budget: u64,
    page_size: usize,
) -> Result<Value, GatewayError> {
    let core = &ctx.core;
    let spec = OriginScan {
        namespace: ns.to_string(),
        filters: None,
        include_attributes: json!(true),
        page_size,
        threads: origin::configured_threads(core, ns, None) as usize,
        shards: core.shards_of(ns),
        watermark: None,
    };
    let mut refs = BTreeSet::new();
    let (mut scanned, mut invalid) = (0u64, 0u64);
    origin::scan(&ctx.upstream(ns), &spec, |page| {
        for row in &page.rows {
            scanned += 1;
            if let Some(o) = row.as_object() {
                for (k, v) in o {
                    if k != "id" && k != "vector" {
                        collect(v, &mut refs, &mut invalid);
                    }
                }
            }
        }
        ControlFlow::Continue(())
    })
    .await?;
    let (mut objects, mut bytes, mut missing, mut exhausted) = (0u64, 0u64, 0u64, false);
    for sha in &refs {
        if blobs::cached(core, ns, sha).await {
            objects += 1;
            continue;
        }
        let got = core
            .store
            .get(&blobs::key(ns, sha))
            .await
            .map_err(|e| GatewayError::ObjectStore(e.to_string()))?;
        let Some(b) = got else {
            missing += 1;
            continue;
        };
        if bytes + b.len() as u64 > budget {
            exhausted = true;
            break;
        }
        bytes += b.len() as u64;
        if blobs::warm(core, ns, sha, b).await {
            objects += 1;
        }
    }
    Ok(json!({
        "enabled": true,
        "status": if exhausted { "budget_exhausted" } else { "completed" },
        "documents_scanned": scanned,
        "refs_seen": refs.len(),
        "objects": objects,
        "bytes": bytes,
        "missing": missing,
        "invalid_refs": invalid,
        "budget_exhausted": exhausted,
        "budget_bytes": budget,
    }))
}

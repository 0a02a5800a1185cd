//! The query planner (`scatter::plan_query`: Layer single-query shapes, multi-query rules,
//! `HybridText`, `Auto`, `nearest_to_id`) and the passes the gateway runs on its output (the
//! stable read's watermark injection, the shard legs), on arbitrary bodies.
//!
//! The first byte picks the context (shard count, threads, known vector dimensionality); the rest
//! is the body. Checked:
//! - never a panic; planning is deterministic; a body that fails whole-body validation is
//!   refused, and a body that passes plans the same through `plan_validated` (the gateway's
//!   path when `hide_reserved` validated the body first: only the top level is walked again),
//!   and `hide_and_plan` (both in one read of the top level) gives what the two calls give;
//! - an upstream body is one JSON object that validates (no duplicate key); a single-shaped
//!   translation carries no Layer-only key (`vector`, `nearest_to_id`, `include_leg_breakdown`,
//!   `cursor`, `as_of`, `between`), and a body without them and without an expansion is sent
//!   byte for byte;
//! - a deferral is `{"rows":[], "routing":{..., "executed": false}}`;
//! - `nearest_to_id` resolves with centroids to a plan that needs none, and refuses a wrong count;
//! - on the upstream body (a `Validated` the planner spliced: later passes trust it), the stable
//!   read and the shard legs walk only its top level, so what the planner and they produce must
//!   validate whole (one leg per shard): this is the check that makes that trust sound.

use scatter::layer_query::{
    QueryContext, QueryPlan, UpstreamQuery, hide_and_plan, plan_query, plan_validated,
};
use scatter::reference::hide_then_plan;
use scatter::respond::{Echo, UpstreamShape};
use scatter::{
    Limits, QueryError, RewriteError, Validated, plan_shards, plan_stable_read, validate,
};

const LAYER_ONLY: [&str; 6] = [
    "vector",
    "nearest_to_id",
    "include_leg_breakdown",
    "cursor",
    "as_of",
    "between",
];
const WATERMARK: &[u8] = br#"["_hevlayer_upserted_at","Lte",1700000000000]"#;

fn limits() -> Limits {
    Limits {
        max_body_bytes: 1 << 20,
        max_depth: 32,
    }
}

/// Output limits: the planner and the injections nest a few levels deeper than the input.
fn relaxed() -> Limits {
    Limits {
        max_body_bytes: usize::MAX,
        max_depth: 48,
    }
}

/// The top-level keys of `body`, which must validate as one JSON object. Read lazily: serde_json
/// and sonic-rs's DOM refuse numbers that sonic-rs's validation and upstream accept (`1e400`).
fn object(body: &[u8], what: &str) -> Vec<(String, String)> {
    if let Err(e) = validate(body, &relaxed()) {
        panic!(
            "{what} does not validate ({e}): {}",
            String::from_utf8_lossy(body)
        );
    }
    let mut out = Vec::new();
    for item in sonic_rs::to_object_iter(body) {
        let (k, v) = item.unwrap_or_else(|e| panic!("{what} is not a JSON object ({e})"));
        out.push((k.into_owned(), v.as_raw_str().trim().to_owned()));
    }
    out
}

fn has(members: &[(String, String)], key: &str) -> bool {
    members.iter().any(|(k, v)| k == key && v != "null")
}

fn check_upstream(input: &[u8], q: &UpstreamQuery, ctx: &QueryContext) {
    let out = object(&q.body, "the upstream body");
    let input_keys = validate(input, &ctx.limits)
        .is_ok()
        .then(|| object(input, "the input"));
    let single_input = input_keys.as_ref().is_some_and(|o| !has(o, "queries"));
    if q.shape == UpstreamShape::Single && single_input {
        for k in LAYER_ONLY {
            assert!(!out.iter().any(|(o, _)| o == k), "`{k}` forwarded: {out:?}");
        }
        let layer_free = input_keys
            .as_ref()
            .is_some_and(|o| !o.iter().any(|(k, _)| LAYER_ONLY.contains(&k.as_str())));
        if layer_free && q.echo == Echo::default() {
            assert_eq!(
                q.body.as_bytes(),
                input,
                "a body without Layer keys must be sent as is"
            );
        }
    }
    let walked = plan_stable_read(&q.body, Some(WATERMARK));
    // The planner's note of where the root members are gives what a walk of the body gives.
    assert_eq!(
        q.plan_stable_read(Some(WATERMARK)),
        walked,
        "the stable read with the planner's root hint differs from one without"
    );
    // The runs a vectored write sends are the planned body, byte for byte.
    assert_eq!(
        q.plan_stable_parts(Some(WATERMARK))
            .map(|s| s.body.slices().concat()),
        walked
            .as_ref()
            .map(|s| s.body.to_vec())
            .map_err(Clone::clone),
        "the stable read's runs differ from its body"
    );
    let stable = match walked {
        Ok(stable) => stable,
        // An internal error is a disagreement inside the gateway (a planned body the stable
        // read could not walk whole, say), never the caller's mistake.
        Err(RewriteError::Internal { message }) => {
            panic!("the stable read failed on a planned body: {message}")
        }
        Err(_) => return,
    };
    object(&stable.body, "the stable-read body");
    if ctx.shards > 1
        && let Ok(plan) = plan_shards(&stable.body, ctx.shards, Some(WATERMARK))
    {
        assert_eq!(plan.legs.len(), ctx.shards as usize);
        for leg in &plan.legs {
            object(leg, "a shard leg");
        }
    }
}

fn check_plan(input: &[u8], plan: QueryPlan, ctx: &QueryContext, dims: usize) {
    match plan {
        QueryPlan::Upstream(q) => check_upstream(input, &q, ctx),
        QueryPlan::Deferred { body, routing } => {
            let o = object(&body, "the deferral");
            let rows = o.iter().find(|(k, _)| k == "rows").map(|(_, v)| v.as_str());
            assert_eq!(rows, Some("[]"), "{o:?}");
            assert!(!routing.executed && has(&o, "routing"), "{o:?}");
        }
        QueryPlan::NeedsCentroids(p) => {
            let n = p.requests().len();
            assert!(n > 0 && p.requests().iter().all(|r| !r.ids.is_empty()));
            assert_eq!(
                p.clone().resolve(&vec![vec![0.5; dims]; n + 1]),
                Err(QueryError::BadCentroid)
            );
            match p.resolve(&vec![vec![0.5; dims]; n]) {
                Ok(QueryPlan::NeedsCentroids(_)) => panic!("resolved centroids asked again"),
                Ok(plan) => check_plan(input, plan, ctx, dims),
                Err(_) => {}
            }
        }
    }
}

/// A plan without what legitimately differs between two contexts (a pending plan keeps its
/// context): the plan itself, or the centroid requests.
fn comparable(plan: &Result<QueryPlan, QueryError>) -> String {
    match plan {
        Ok(QueryPlan::NeedsCentroids(p)) => format!("centroids {:?}", p.requests()),
        other => format!("{other:?}"),
    }
}

/// The target (module docs).
pub fn run(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let dims = [None, Some(2), Some(3)][usize::from(pick % 3)];
    let ctx = QueryContext {
        limits: limits(),
        vector_dims: dims,
        shards: [1, 2, 3, 8][usize::from(pick >> 2) % 4],
        threads: u32::from(pick >> 4) % 5,
        ..QueryContext::default()
    };
    let owned = bytes::Bytes::copy_from_slice(body);
    let plan = plan_query(&owned, &ctx);
    assert_eq!(plan, plan_query(&owned, &ctx), "planning is deterministic");
    if let Ok(valid) = Validated::check(owned.clone(), &ctx.limits) {
        let again = plan_validated(&valid, &ctx);
        assert_eq!(
            comparable(&plan),
            comparable(&again),
            "planning a validated body differs: {plan:?} vs {again:?}"
        );
    } else {
        assert!(plan.is_err(), "an invalid body was planned: {plan:?}");
    }
    assert_eq!(
        hide_and_plan(owned.clone(), &ctx),
        hide_then_plan(owned.clone(), &ctx),
        "hide_and_plan differs from hide_reserved then plan_validated"
    );
    if let Ok(plan) = plan {
        check_plan(body, plan, &ctx, dims.unwrap_or(2));
    }
}

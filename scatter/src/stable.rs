//! Stable-read planning for query bodies (single and multi-query).
//!
//! [`plan_stable_read`] decides and rewrites in one place:
//!
//! - a caller that explicitly asks for `consistency: {"level": "strong"}` gets its body back
//!   untouched ([`StablePlan::caller_strong`]): stable reads are the default, not a prison;
//! - otherwise the root `consistency` becomes `{"level":"eventual"}` (inserted as the first key
//!   when absent or `null`; an explicit eventual consistency, with its `max_staleness_seconds`, is
//!   kept verbatim; any other shape is left for upstream to reject) and, when a predicate is
//!   given, it is ANDed into the query or into every sub-query ([`crate::inject_filter`]).
//!
//! Both edits are splices: every other byte of the body is copied verbatim.

use bytes::Bytes;
use smallvec::SmallVec;

use crate::filter::{Root, RootHint, text_of};
use crate::raw;
use crate::splice::{Splice, Spliced, span_in};
use crate::validate::skip_ws;
use crate::{RewriteError, Validated};

/// The outcome of planning a stable read.
#[derive(Debug, PartialEq, Eq)]
pub struct StablePlan {
    /// The body to send upstream (the input's own buffer when it needed no edit).
    pub body: Validated<Bytes>,
    /// The caller asked for a strong read: the body is unchanged and no predicate was added.
    pub caller_strong: bool,
    /// The predicate was injected.
    pub injected: bool,
}

/// Plans a stable read of `body` (validated: this walks its top level only) with the optional
/// watermark `predicate` (raw JSON filter).
///
/// # Errors
/// An invalid predicate, or a `queries` that is not an array of objects (see
/// [`crate::inject_filter`]).
pub fn plan_stable_read(
    valid: &Validated<Bytes>,
    predicate: Option<&[u8]>,
) -> Result<StablePlan, RewriteError> {
    plan_hinted(valid, &RootHint::default(), predicate)
}

/// [`plan_stable_read`] with a spliced body of at least [`KEEP_RUNS_FROM`] bytes kept as runs
/// over `valid`'s buffer ([`StableBody::Spliced`]).
///
/// # Errors
/// As [`plan_stable_read`].
pub fn plan_stable_parts(
    valid: &Validated<Bytes>,
    predicate: Option<&[u8]>,
) -> Result<StableParts, RewriteError> {
    parts_hinted(valid, &RootHint::default(), predicate)
}

/// From this many bytes on, a spliced body is kept as runs ([`StableBody::Spliced`]); below
/// it, copying the body costs less than the runs' bookkeeping (a 90-byte point query cost ~0.4k
/// more instructions kept as runs, a 33 KB ANN query ~33k fewer: `bench/profile.sh`).
pub const KEEP_RUNS_FROM: usize = 4 << 10;

/// A stable read's body as [`StableParts`] gives it: the input's own buffer, another buffer,
/// or the input's buffer with edits, kept as runs.
#[derive(Debug, PartialEq, Eq)]
pub enum StableBody {
    /// One buffer (the input's own when it needed no edit).
    Whole(Validated<Bytes>),
    /// The input's buffer with the consistency edit and the predicate, as the runs of the
    /// output (never copied into one buffer unless asked: [`StableBody::into_validated`]).
    /// Boxed: the one allocation a splice's output buffer took, and the request's future
    /// that holds this stays as small as with one buffer.
    Spliced(Box<Spliced>),
}

impl StableBody {
    /// The body's bytes, in order, as a few slices.
    #[must_use]
    pub fn slices(&self) -> SmallVec<[&[u8]; 8]> {
        match self {
            StableBody::Whole(b) => smallvec::smallvec![b.as_bytes()],
            StableBody::Spliced(s) => s.slices().collect(),
        }
    }

    /// The body in one buffer (a copy when spliced).
    #[must_use]
    pub fn into_validated(self) -> Validated<Bytes> {
        match self {
            StableBody::Whole(b) => b,
            // The edits put whole values (a validated predicate, a fixed object) between or in
            // place of whole members of a validated body.
            StableBody::Spliced(s) => Validated::spliced(Bytes::from(s.to_vec())),
        }
    }
}

/// [`StablePlan`] with the body kept as runs where it was spliced
/// ([`crate::UpstreamQuery::plan_stable_parts`]).
#[derive(Debug, PartialEq, Eq)]
pub struct StableParts {
    /// The body to send upstream.
    pub body: StableBody,
    /// As [`StablePlan::caller_strong`].
    pub caller_strong: bool,
    /// As [`StablePlan::injected`].
    pub injected: bool,
}

impl StableParts {
    /// The plan with its body in one buffer.
    #[must_use]
    pub fn into_plan(self) -> StablePlan {
        StablePlan {
            body: self.body.into_validated(),
            caller_strong: self.caller_strong,
            injected: self.injected,
        }
    }
}

/// [`plan_stable_read`] with the planner's note of where the root members are
/// ([`crate::UpstreamQuery::plan_stable_read`]); a hint for another buffer is not used.
pub(crate) fn plan_hinted(
    valid: &Validated<Bytes>,
    hint: &RootHint,
    predicate: Option<&[u8]>,
) -> Result<StablePlan, RewriteError> {
    planned(valid, hint, predicate, false).map(StableParts::into_plan)
}

/// [`plan_hinted`], a long spliced body kept as runs.
pub(crate) fn parts_hinted(
    valid: &Validated<Bytes>,
    hint: &RootHint,
    predicate: Option<&[u8]>,
) -> Result<StableParts, RewriteError> {
    planned(valid, hint, predicate, true)
}

/// The stable read; `keep_runs`: a spliced body of at least [`KEEP_RUNS_FROM`] bytes is kept as
/// runs (else every body is written into one buffer by [`Splice::finish`], so the two ways
/// can be held to each other).
fn planned(
    valid: &Validated<Bytes>,
    hint: &RootHint,
    predicate: Option<&[u8]>,
    keep_runs: bool,
) -> Result<StableParts, RewriteError> {
    let body = valid.as_bytes();
    // The root from the planner's hint, else read in place, in one walk (no parser is set up
    // for a stable read).
    let text = text_of(body)?;
    let root = match hint.root(text) {
        Some(root) => root,
        None => Root::read(text)?,
    };
    let consistency = root.consistency;
    match consistency.map(level_of) {
        Some(Some(Level::Strong)) => {
            return Ok(StableParts {
                body: StableBody::Whole(valid.clone()),
                caller_strong: true,
                injected: false,
            });
        }
        Some(Some(Level::Eventual)) | Some(Some(Level::Other)) => {
            // Already eventual (kept verbatim) or a shape upstream will reject: no consistency edit.
            let (body, injected) = match predicate {
                Some(p) => (inject(valid, p)?, true),
                None => (valid.clone(), false),
            };
            return Ok(StableParts {
                body: StableBody::Whole(body),
                caller_strong: false,
                injected,
            });
        }
        Some(None) | None => {}
    }
    // Absent or null consistency: force eventual and inject the predicate, in one splice (one
    // output buffer). The injection's edits go first: an absent root `filters` and an absent
    // `consistency` are both inserted just past the `{`, in that order (as the two passes this
    // replaced wrote them).
    let mut splice = Splice::new(body);
    if let Some(p) = predicate {
        crate::filter::check_predicate(p)?;
        // The root is never empty here: `consistency` is in it or about to be.
        crate::filter::add_injection(&mut splice, body, &root, p, false)?;
    }
    match consistency {
        Some(v) => {
            let range = span_in(body, v)?;
            let piece = splice.piece(br#"{"level":"eventual"}"#);
            splice.replace_piece(range, piece);
        }
        None => {
            let open = skip_ws(body, 0);
            let piece: &[u8] = if root.empty {
                br#""consistency":{"level":"eventual"}"#
            } else {
                br#""consistency":{"level":"eventual"},"#
            };
            splice.insert(open + 1, piece);
        }
    }
    // A short body is copied into one buffer (cheaper than keeping its runs); a long one is
    // kept as runs over the caller's buffer.
    let body = if !keep_runs || body.len() < KEEP_RUNS_FROM {
        StableBody::Whole(Validated::spliced(Bytes::from(splice.finish()?)))
    } else {
        StableBody::Spliced(Box::new(splice.into_spliced(valid.get_ref())?))
    };
    Ok(StableParts {
        body,
        caller_strong: false,
        injected: predicate.is_some(),
    })
}

fn inject<B: AsRef<[u8]>>(
    body: &Validated<B>,
    predicate: &[u8],
) -> Result<Validated<Bytes>, RewriteError> {
    crate::filter::inject_filter_validated(body, predicate).map(Validated::convert)
}

enum Level {
    Strong,
    Eventual,
    Other,
}

/// `None` for a `null` consistency; the level for an object with a string `level`; `Other` for
/// every other shape.
fn level_of(v: &str) -> Option<Level> {
    if v == "null" {
        return None;
    }
    for (key, value) in raw::members(v) {
        if key == "level" {
            return Some(match value {
                "\"strong\"" => Level::Strong,
                "\"eventual\"" => Level::Eventual,
                _ => Level::Other,
            });
        }
    }
    Some(Level::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    const PRED: &[u8] = br#"["_hevlayer_upserted_at","Lte",42]"#;

    /// The planner's root hint serves the buffer it was noted for, and only that one: a query
    /// whose body is replaced by another of the same length, its members elsewhere, is read
    /// by a walk (the hint's places would splice the predicate into the wrong bytes).
    #[test]
    fn a_root_hint_is_used_only_for_its_own_buffer() {
        let ctx = crate::QueryContext::default();
        let a = Bytes::from_static(br#"{"filters":["a","Eq",1],"rank_by":["id","asc"],"top_k":1}"#);
        let Ok(crate::QueryPlan::Upstream(q)) = crate::plan_query(&a, &ctx) else {
            panic!("planned");
        };
        assert_eq!(q.body.as_bytes().as_ptr(), a.as_ptr(), "sent as it is");
        for p in [None, Some(PRED)] {
            assert_eq!(q.plan_stable_read(p), plan_stable_read(&q.body, p));
        }
        let b = br#"{"rank_by":["id","asc"],"top_k":1,"filters":["a","Eq",2]}"#;
        assert_eq!(a.len(), b.len());
        let b = Validated::check(Bytes::from_static(b), &Limits::default()).unwrap();
        let replaced = crate::UpstreamQuery {
            body: b.clone(),
            ..q
        };
        let p = replaced.plan_stable_read(Some(PRED)).unwrap();
        assert_eq!(p, plan_stable_read(&b, Some(PRED)).unwrap());
        assert!(
            p.body.as_bytes().ends_with(
                br#""filters":["And",[["a","Eq",2],["_hevlayer_upserted_at","Lte",42]]]}"#
            ),
            "{}",
            String::from_utf8_lossy(p.body.as_bytes())
        );
    }

    /// A body validated at the deepest nesting allowed, then spliced a few levels deeper (as an
    /// expansion or a page does), still reads whole: the predicate reaches its filters.
    #[test]
    fn a_spliced_body_past_the_depth_ceiling_still_reads_whole() {
        let depth = crate::MAX_DEPTH_CEILING + 2;
        let filters = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let body = format!(r#"{{"queries":[{{"filters":{filters}}}],"top_k":1}}"#);
        let valid = Validated::spliced(Bytes::from(body));
        let p = plan_stable_read(&valid, Some(PRED)).unwrap();
        let out = String::from_utf8(p.body.into_inner().to_vec()).unwrap();
        assert!(out.contains(&format!(
            r#"["And",[{filters},["_hevlayer_upserted_at","Lte",42]]]"#
        )));
        assert!(p.injected);
    }

    fn plan(body: &str, pred: Option<&[u8]>) -> (String, bool, bool) {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let body = Validated::check(body, &Limits::default()).unwrap();
        let p = plan_stable_read(&body, pred).unwrap();
        // The runs a vectored write sends are the same bytes, and the same decision.
        let parts = parts_hinted(&body, &RootHint::default(), pred).unwrap();
        assert_eq!(
            (parts.caller_strong, parts.injected),
            (p.caller_strong, p.injected)
        );
        assert_eq!(parts.body.slices().concat(), p.body.as_bytes());
        assert!(parts.body.slices().iter().all(|s| !s.is_empty()));
        if let StableBody::Spliced(_) = parts.body {
            assert!(body.len() >= KEEP_RUNS_FROM, "a short body kept as runs");
        }
        (
            String::from_utf8(p.body.into_inner().to_vec()).unwrap(),
            p.caller_strong,
            p.injected,
        )
    }

    #[test]
    fn caller_strong_is_untouched() {
        let body = r#"{"rank_by":["id","asc"],"top_k":1,"consistency":{"level":"strong"}}"#;
        assert_eq!(plan(body, Some(PRED)), (body.to_string(), true, false));
    }

    #[test]
    fn absent_consistency_becomes_eventual_and_predicate_is_anded() {
        let (b, strong, injected) = plan(
            r#"{"rank_by":["id","asc"],"top_k":1,"filters":["a","Eq",1]}"#,
            Some(PRED),
        );
        assert!(!strong && injected);
        assert_eq!(
            b,
            r#"{"consistency":{"level":"eventual"},"rank_by":["id","asc"],"top_k":1,"filters":["And",[["a","Eq",1],["_hevlayer_upserted_at","Lte",42]]]}"#
        );
        let (b, _, injected) = plan(r#"{"rank_by":["id","asc"],"consistency":null}"#, None);
        assert!(!injected);
        assert_eq!(
            b,
            r#"{"rank_by":["id","asc"],"consistency":{"level":"eventual"}}"#
        );
        assert_eq!(
            plan("{}", None).0,
            r#"{"consistency":{"level":"eventual"}}"#
        );
    }

    #[test]
    fn one_splice_writes_what_the_consistency_edit_then_the_injection_wrote() {
        // The stable read used to write the consistency edit, then inject the predicate into
        // that output (two buffers); it now records both in one splice. Same bytes.
        for body in [
            "{}",
            "{ }",
            r#"{"top_k":1}"#,
            r#" { "consistency" : null , "top_k":1}"#,
            r#"{"filters":null,"consistency":null}"#,
            r#"{"rank_by":["id","asc"],"filters":["a","Eq",1],"top_k":1}"#,
            r#"{"queries":[{"top_k":1},{},{"filters":["x","Eq","y"]}],"consistency":null}"#,
            r#"{"queries":[{"filters":null}]}"#,
        ] {
            let (eventual, ..) = plan(body, None);
            let two_steps =
                crate::filter::inject_filter(eventual.as_bytes(), PRED, &Limits::default())
                    .unwrap();
            let (one, strong, injected) = plan(body, Some(PRED));
            assert_eq!(one.as_bytes(), &two_steps[..], "{body}");
            assert!(!strong && injected);
            assert!(Validated::check(Bytes::from(one), &Limits::default()).is_ok());
        }
        assert_eq!(
            plan("{}", Some(PRED)).0,
            r#"{"filters":["_hevlayer_upserted_at","Lte",42],"consistency":{"level":"eventual"}}"#
        );
    }

    /// Long bodies are kept as runs wherever the stable read splices them (consistency absent
    /// or null, with or without the predicate, single or multi-query), and the runs are the
    /// bytes the short-body path writes for the same query.
    #[test]
    fn long_bodies_are_kept_as_runs_of_the_same_bytes() {
        let pad = "x".repeat(KEEP_RUNS_FROM);
        for body in [
            r#"{"top_k":1}"#,
            r#" { "consistency" : null , "top_k":1}"#,
            r#"{"rank_by":["id","asc"],"filters":["a","Eq",1],"top_k":1}"#,
            r#"{"queries":[{"top_k":1},{"filters":["x","Eq","y"]}],"consistency":null}"#,
        ] {
            let body = body.trim_start();
            let long = format!(r#"{{"pad":"{pad}",{}"#, &body[1..]);
            for pred in [None, Some(PRED)] {
                let valid = Validated::check(Bytes::from(long.clone()), &Limits::default());
                let valid = valid.unwrap();
                let parts = parts_hinted(&valid, &RootHint::default(), pred).unwrap();
                let StableBody::Spliced(runs) = &parts.body else {
                    panic!("{long} was copied");
                };
                // The first run is the caller's buffer itself, not a copy.
                assert_eq!(runs.slices().next().unwrap().as_ptr(), valid.as_ptr());
                let (short, ..) = plan(body, pred);
                let written = String::from_utf8(parts.body.slices().concat()).unwrap();
                assert_eq!(written.replace(&format!(r#""pad":"{pad}","#), ""), short);
            }
        }
    }

    #[test]
    fn explicit_eventual_is_kept_verbatim() {
        let body = r#"{"top_k":1,"consistency":{"level":"eventual","max_staleness_seconds":5}}"#;
        let (b, _, _) = plan(body, None);
        assert_eq!(b, body);
    }

    #[test]
    fn multi_query_gets_one_root_consistency_and_every_leg_the_predicate() {
        let body = r#"{"queries":[{"rank_by":["id","asc"],"top_k":1},{"rank_by":["id","desc"],"top_k":1,"filters":["x","Eq",2]}]}"#;
        let (b, _, injected) = plan(body, Some(PRED));
        assert!(injected);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["consistency"]["level"], "eventual");
        assert_eq!(
            v["queries"][0]["filters"],
            serde_json::json!(["_hevlayer_upserted_at", "Lte", 42])
        );
        assert_eq!(v["queries"][1]["filters"][0], "And");
        assert!(v["queries"][0].get("consistency").is_none());
    }

    #[test]
    fn bad_predicates_and_queries_are_rejected() {
        let valid = |b: &'static [u8]| Validated::check(Bytes::from_static(b), &Limits::default());
        let body = valid(br#"{"top_k":1}"#).unwrap();
        assert!(plan_stable_read(&body, Some(b"[1,")).is_err());
        let multi = valid(br#"{"queries":{"top_k":1}}"#).unwrap();
        assert!(plan_stable_read(&multi, Some(PRED)).is_err());
    }
}

//! Filter injection for query bodies (`POST /v2/namespaces/{ns}/query`).
//!
//! [`inject_filter`] validates the whole body ([`crate::validate()`]) and then ANDs a
//! gateway-chosen predicate (a watermark `["_hevlayer_upserted_at","Lte",wm]`, a tenant filter,
//! ...) into the query:
//!
//! - single query: `filters` becomes `["And",[<old filters, verbatim>,<predicate>]]`; when
//!   `filters` is absent (or `null`) it becomes `<predicate>`, inserted as the first key of the
//!   object (`{"filters":<predicate>,...}`);
//! - multi-query (a non-null top-level `queries`): the same for **every** sub-query object; the
//!   root is left alone (upstream ignores root query fields when `queries` is present). `queries`
//!   must be an array of objects, otherwise [`RewriteError::Malformed`].
//!
//! The old filter is never re-serialised: the wrapper is two insertions around its bytes.

use crate::raw;
use crate::splice::{Splice, span_in};
use crate::validated::Input;
use crate::{Limits, RewriteError, Validated};

/// ANDs `predicate` (raw JSON, e.g. `["_hevlayer_upserted_at","Lte",123]`) into a query body's
/// `filters`, or into every sub-query's `filters` for a multi-query body.
///
/// # Errors
/// Any validation error for the body; [`RewriteError::Malformed`] when `queries` is not an array
/// of objects; [`RewriteError::InvalidPredicate`] when `predicate` is not one valid JSON value.
pub fn inject_filter(
    body: &[u8],
    predicate: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, RewriteError> {
    inject_into(Input::Unchecked(body, *limits), predicate)
}

/// [`inject_filter`] on a validated body: the result is one too.
///
/// # Errors
/// As [`inject_filter`], less the body's validation.
pub fn inject_filter_validated<B: AsRef<[u8]>>(
    body: &Validated<B>,
    predicate: &[u8],
) -> Result<Validated, RewriteError> {
    inject_into(Input::of(body), predicate).map(Validated::spliced)
}

fn inject_into(input: Input<'_>, predicate: &[u8]) -> Result<Vec<u8>, RewriteError> {
    check_predicate(predicate)?;
    let body = input.bytes();
    if let Input::Unchecked(body, limits) = input {
        crate::validate(body, &limits)?;
    }
    let root = Root::read(text_of(body)?)?;
    let mut splice = Splice::new(body);
    add_injection(&mut splice, body, &root, predicate, root.empty)?;
    splice.finish()
}

/// A validated body's text (valid UTF-8 by validation; the check is one SIMD pass, where the
/// standard library's reads a word at a time: most of a long vector's body).
pub(crate) fn text_of(body: &[u8]) -> Result<&str, RewriteError> {
    simdutf8::basic::from_utf8(body).map_err(|_| RewriteError::Internal {
        message: "a validated body is not UTF-8",
    })
}

/// Where a planned body's root members `queries`, `filters` and `consistency` are, noted by the
/// planner from the top-level read it made anyway, so that [`crate::plan_stable_read`] need not
/// walk the body again ([`crate::UpstreamQuery::root`]).
///
/// A hint holds the body's buffer (a reference count) and is used only for that very buffer:
/// the same pointer and length, which a live `Bytes` never shares with other contents. A body
/// replaced after planning (the query's fields are public) gets no use of a stale hint: the
/// stable read walks it as before. A hint carries no meaning of the plan, so any two compare
/// equal.
#[derive(Clone, Debug, Default)]
pub struct RootHint(Option<Spans>);

/// The places as `u32` offsets (a plan is moved a few times per query; a body past 4 GiB gets
/// no hint).
#[derive(Clone, Debug)]
struct Spans {
    of: bytes::Bytes,
    queries: Option<(u32, u32)>,
    filters: Option<(u32, u32)>,
    consistency: Option<(u32, u32)>,
    empty: bool,
}

impl PartialEq for RootHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RootHint {}

impl RootHint {
    /// The hint for `body` from its top-level members as the planner read them (`span` gives a
    /// member value's place in `body`): the first member of each name, as [`Root::read`] takes.
    pub(crate) fn of<'v, V: 'v>(
        body: &bytes::Bytes,
        members: impl IntoIterator<Item = (&'v str, &'v V)>,
        span: impl Fn(&V) -> Result<std::ops::Range<usize>, RewriteError>,
    ) -> Result<RootHint, RewriteError> {
        let mut s = Spans {
            of: body.clone(),
            queries: None,
            filters: None,
            consistency: None,
            empty: true,
        };
        for (key, value) in members {
            s.empty = false;
            let slot = match key {
                "queries" => &mut s.queries,
                "filters" => &mut s.filters,
                "consistency" => &mut s.consistency,
                _ => continue,
            };
            if slot.is_none() {
                let r = span(value)?;
                match (u32::try_from(r.start), u32::try_from(r.end)) {
                    (Ok(start), Ok(end)) => *slot = Some((start, end)),
                    _ => return Ok(RootHint::default()),
                }
            }
        }
        Ok(RootHint(Some(s)))
    }

    /// The root of `text` from the hint, when the hint is for that very buffer.
    pub(crate) fn root<'a>(&self, text: &'a str) -> Option<Root<'a>> {
        let s = self.0.as_ref()?;
        if s.of.as_ptr() != text.as_ptr() || s.of.len() != text.len() {
            return None;
        }
        let at = |r: Option<(u32, u32)>| match r {
            Some((start, end)) => text.get(start as usize..end as usize).map(Some),
            None => Some(None),
        };
        Some(Root {
            queries: at(s.queries)?,
            filters: at(s.filters)?,
            consistency: at(s.consistency)?,
            empty: s.empty,
        })
    }
}

/// The root members of a validated query body that filter injection and the stable read look
/// at, as raw text inside the body, read in one walk without a parser ([`crate::raw`]).
pub(crate) struct Root<'a> {
    pub queries: Option<&'a str>,
    pub filters: Option<&'a str>,
    pub consistency: Option<&'a str>,
    /// The root has no member.
    pub empty: bool,
}

impl<'a> Root<'a> {
    /// Reads `text`, which must have been validated whole: a walk that does not read every
    /// member is an internal error, never a body with a member unseen.
    pub(crate) fn read(text: &'a str) -> Result<Self, RewriteError> {
        let mut root = Root {
            queries: None,
            filters: None,
            consistency: None,
            empty: true,
        };
        let mut walk = raw::members(text);
        for (key, value) in walk.by_ref() {
            root.empty = false;
            let slot = match &*key {
                "queries" => &mut root.queries,
                "filters" => &mut root.filters,
                "consistency" => &mut root.consistency,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        if !walk.ended_whole() {
            return Err(unread());
        }
        Ok(root)
    }
}

fn unread() -> RewriteError {
    RewriteError::Internal {
        message: "a validated body did not read whole",
    }
}

/// Records the edits that AND `predicate` into `body` (whose root members are `root`) in
/// `splice`, beside other edits: the stable read adds its consistency edit to the same splice,
/// so a body gets one output buffer for both. An absent root `filters` is inserted just past the
/// root's `{`, before any insertion added there later; `root_empty` says whether the root has no
/// other member once every edit is applied (then it is written without a trailing comma).
/// `predicate` must have passed [`check_predicate`] (callers check it before reading the body,
/// so a bad predicate is the error whatever the body).
pub(crate) fn add_injection<'a>(
    splice: &mut Splice<'a>,
    body: &'a [u8],
    root: &Root<'a>,
    predicate: &[u8],
    root_empty: bool,
) -> Result<(), RewriteError> {
    let pred = splice.piece(predicate);
    let mut inj = Injector {
        body,
        splice,
        pred,
        wrap_open: 0..0,
        wrap_close: 0..0,
        absent: 0..0,
        absent_comma: 0..0,
    };
    inj.prepare(predicate);

    match root.queries.filter(|q| *q != "null") {
        Some(queries) => {
            if !queries.starts_with('[') {
                return Err(RewriteError::malformed(
                    "`queries` must be an array of query objects",
                ));
            }
            let mut subs = raw::items(queries);
            for (i, sub) in subs.by_ref().enumerate() {
                if !sub.starts_with('{') {
                    return Err(RewriteError::malformed(format!(
                        "`queries[{i}]` must be a query object"
                    )));
                }
                let mut fields = raw::members(sub);
                let mut empty = true;
                let mut filters = None;
                for (key, value) in fields.by_ref() {
                    empty = false;
                    if key == "filters" {
                        filters.get_or_insert(value);
                    }
                }
                if !fields.ended_whole() {
                    return Err(unread());
                }
                let at = span_in(body, sub)?.start + 1;
                inj.inject_at(at, empty, filters)?;
            }
            if !subs.ended_whole() {
                return Err(unread());
            }
        }
        None => {
            let filters = root.filters;
            let open = body
                .iter()
                .position(|&b| b == b'{')
                .ok_or(RewriteError::NotAnObject)?;
            inj.inject_at(open + 1, root_empty, filters)?;
        }
    }
    Ok(())
}

/// The predicate comes from the gateway, but a bad one would corrupt every body it touches, so
/// it must parse as exactly one JSON value. Checked in place ([`raw::is_value`]: no parser is
/// set up per request); only a predicate that fails is parsed again, for sonic-rs's message.
pub(crate) fn check_predicate(predicate: &[u8]) -> Result<(), RewriteError> {
    if std::str::from_utf8(predicate).is_ok_and(raw::is_value) {
        return Ok(());
    }
    check_predicate_slow(predicate)?;
    // sonic-rs took what the walk refused (nesting past the validator's ceiling, say).
    Err(RewriteError::InvalidPredicate {
        message: "not one JSON value".into(),
    })
}

/// The check with sonic-rs's strict skip and the escape scan, for their error messages.
fn check_predicate_slow(predicate: &[u8]) -> Result<(), RewriteError> {
    // Validated without building a tree (sonic-rs's strict skip, which does not check `\u`
    // digits: those are checked by the escape scan).
    sonic_rs::from_slice::<serde::de::IgnoredAny>(predicate).map_err(|e| {
        RewriteError::InvalidPredicate {
            message: e.to_string().lines().next().unwrap_or_default().to_owned(),
        }
    })?;
    crate::validate::check_escapes(predicate).map_err(|_| RewriteError::InvalidPredicate {
        message: "invalid string escape".into(),
    })
}

struct Injector<'s, 'a> {
    body: &'a [u8],
    splice: &'s mut Splice<'a>,
    pred: std::ops::Range<usize>,
    /// `["And",[` — goes before the old filter.
    wrap_open: std::ops::Range<usize>,
    /// `,<predicate>]]` — goes after the old filter.
    wrap_close: std::ops::Range<usize>,
    /// `"filters":<predicate>` for an empty object, and with a trailing comma otherwise.
    absent: std::ops::Range<usize>,
    absent_comma: std::ops::Range<usize>,
}

impl<'a> Injector<'_, 'a> {
    /// Builds the shared pieces once; every sub-query references them.
    fn prepare(&mut self, predicate: &[u8]) {
        self.wrap_open = self.splice.piece(b"[\"And\",[");
        let start = self.splice.arena().len();
        let arena = self.splice.arena();
        arena.push(b',');
        arena.extend_from_slice(predicate);
        arena.extend_from_slice(b"]]");
        self.wrap_close = self.splice.mark(start);
        let start = self.splice.arena().len();
        let arena = self.splice.arena();
        arena.extend_from_slice(b"\"filters\":");
        arena.extend_from_slice(predicate);
        self.absent = self.splice.mark(start);
        self.splice.arena().push(b',');
        self.absent_comma = self.splice.mark(start);
    }

    /// `after_open` is the offset just past the object's `{`.
    fn inject_at(
        &mut self,
        after_open: usize,
        empty: bool,
        filters: Option<&'a str>,
    ) -> Result<(), RewriteError> {
        match filters {
            Some(old) if old != "null" => {
                let span = span_in(self.body, old)?;
                self.splice.insert_piece(span.start, self.wrap_open.clone());
                self.splice.insert_piece(span.end, self.wrap_close.clone());
            }
            Some(null) => {
                let span = span_in(self.body, null)?;
                self.splice.replace_piece(span, self.pred.clone());
            }
            None => {
                let piece = if empty {
                    self.absent.clone()
                } else {
                    self.absent_comma.clone()
                };
                self.splice.insert_piece(after_open, piece);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRED: &[u8] = br#"["_hevlayer_upserted_at","Lte",123]"#;

    fn inject(body: &str) -> Result<String, RewriteError> {
        inject_filter(body.as_bytes(), PRED, &Limits::default())
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn wraps_existing_filters_verbatim() {
        let out = inject(
            r#"{"rank_by":["v","ANN",[0.10,1e-3]], "filters" : ["a","Eq",1.50], "top_k":10}"#,
        );
        assert_eq!(
            out.unwrap(),
            r#"{"rank_by":["v","ANN",[0.10,1e-3]], "filters" : ["And",[["a","Eq",1.50],["_hevlayer_upserted_at","Lte",123]]], "top_k":10}"#
        );
    }

    #[test]
    fn adds_filters_when_absent_or_null() {
        assert_eq!(
            inject(r#" {"top_k":1}"#).unwrap(),
            r#" {"filters":["_hevlayer_upserted_at","Lte",123],"top_k":1}"#
        );
        assert_eq!(
            inject("{ }").unwrap(),
            r#"{"filters":["_hevlayer_upserted_at","Lte",123] }"#
        );
        assert_eq!(
            inject(r#"{"filters":null,"top_k":1}"#).unwrap(),
            r#"{"filters":["_hevlayer_upserted_at","Lte",123],"top_k":1}"#
        );
    }

    #[test]
    fn multi_query_injects_into_every_sub_query_not_the_root() {
        let out = inject(
            r#"{"queries":[{"top_k":1},{"filters":["x","Eq","y"]},{}],"filters":["r","Eq",1],"limit":5}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"queries":[{"filters":["_hevlayer_upserted_at","Lte",123],"top_k":1},{"filters":["And",[["x","Eq","y"],["_hevlayer_upserted_at","Lte",123]]]},{"filters":["_hevlayer_upserted_at","Lte",123]}],"filters":["r","Eq",1],"limit":5}"#
        );
    }

    #[test]
    fn rejects_bad_multi_query_shapes() {
        for body in [
            r#"{"queries":{}}"#,
            r#"{"queries":[1]}"#,
            r#"{"queries":"x"}"#,
        ] {
            assert!(
                matches!(inject(body), Err(RewriteError::Malformed { .. })),
                "{body}"
            );
        }
        // `queries: null` is a single query.
        assert_eq!(
            inject(r#"{"queries":null}"#).unwrap(),
            r#"{"filters":["_hevlayer_upserted_at","Lte",123],"queries":null}"#
        );
    }

    #[test]
    fn duplicate_filters_is_rejected_before_injection() {
        assert!(matches!(
            inject(r#"{"filters":["a","Eq",1],"filters":["b","Eq",2]}"#),
            Err(RewriteError::DuplicateKey { .. })
        ));
        assert!(matches!(
            inject(r#"{"queries":[{"filters":1,"filters":2}]}"#),
            Err(RewriteError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn rejects_bad_predicates() {
        for pred in [
            &b""[..],
            b"[1",
            b"[1] [2]",
            b"nul",
            b"[\"a\",\"Eq\",\"\\u00g1\"]",
            b"[1,]",
            b"[\"\xff\"]",
            b"{\"a\" 1}",
        ] {
            // Whatever the body: the predicate is checked before the body is read.
            for body in [&b"{}"[..], b"[]", b"{\"queries\":5}"] {
                assert!(matches!(
                    inject_filter(body, pred, &Limits::default()),
                    Err(RewriteError::InvalidPredicate { .. })
                ));
            }
        }
    }

    #[test]
    fn rejects_invalid_bodies() {
        assert!(matches!(inject("[]"), Err(RewriteError::NotAnObject)));
        assert!(matches!(
            inject("{} {}"),
            Err(RewriteError::InvalidJson { .. })
        ));
    }
}

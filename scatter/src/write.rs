//! Write stamping for `POST /v2/namespaces/{ns}` bodies.
//!
//! [`stamp_write`] validates the whole body ([`crate::validate()`]), then:
//!
//! - rejects any caller-set attribute named `_hevlayer_*` ([`RewriteError::ReservedAttribute`],
//!   422) except a UDF's `_hevlayer_udf_<name>_stale_after` ([`caller_settable`]): keys of every `upsert_rows` / `patch_rows` row, keys of `upsert_columns` /
//!   `patch_columns`, keys of `patch_by_filter.patch` and keys of `schema`. Keys are compared
//!   after unescaping, so `"\u005fhevlayer_x"` is caught too;
//! - rejects a body with none of the recognised write keys ([`RewriteError::NoWriteOperation`],
//!   422): `upsert_rows`, `upsert_columns`, `patch_rows`, `patch_columns`, `deletes`,
//!   `delete_by_filter`, `patch_by_filter`, `copy_from_namespace`, `branch_from_namespace`,
//!   `schema`. A key whose value is `null` counts as absent (upstream's optional fields treat it
//!   so);
//! - stamps `"_hevlayer_upserted_at":<now_ms>` into every `upsert_rows` / `patch_rows` row and into
//!   `patch_by_filter.patch`, and adds a full column `"_hevlayer_upserted_at":[now_ms, ...]` (as
//!   long as the `id` column) to `upsert_columns` / `patch_columns`. Deletes, filter deletes,
//!   copy/branch and schema-only writes are not stamped. Callers cannot send the attribute (see
//!   above), so a stamp never overwrites anything;
//! - optionally stamps `_hevlayer_shard` (see [`StampOptions::shard`]) into every row and as a
//!   column, computed from each row's `id`. `patch_by_filter` has no ids and gets no shard.
//!
//! **Where the stamp goes:** right after the opening `{` of each row / columns object / patch
//! object, so it is that object's *first* key: `{"_hevlayer_upserted_at":1700000000000,"id":1,...}`
//! (`{"_hevlayer_upserted_at":1700000000000}` for an empty object). With a shard it is
//! `{"_hevlayer_upserted_at":N,"_hevlayer_shard":S,...}`. Every other byte of the body is copied
//! verbatim.
//!
//! Shapes the stamper must edit are checked and rejected with [`RewriteError::Malformed`] (422)
//! rather than forwarded unstamped: `upsert_rows`/`patch_rows` must be an array of objects,
//! `*_columns` an object with an `id` array, `patch_by_filter` an object with a `patch` object,
//! `schema` an object; with a shard function every row must have an `id`.

use std::borrow::Cow;

use bytes::Bytes;
use smallvec::SmallVec;
use sonic_rs::LazyValue;

use crate::raw::{self, skip_ws};
use crate::splice::{Splice, is_null, span_in, span_of};
use crate::validate::{json_error, object_members};
use crate::validated::Input;
use crate::{Limits, RESERVED_PREFIX, RewriteError, Validated};

/// A row's `id`, as handed to the shard function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRef<'a> {
    raw: &'a str,
    value: IdValue<'a>,
}

/// The decoded form of an id. Hash this, not [`IdRef::raw`]: `"ab"` and `"a\u0062"` are the same
/// id with different raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdValue<'a> {
    /// A JSON integer that fits in `u64` (full precision, never via `f64`).
    Uint(u64),
    /// A JSON string, unescaped. UUID strings are not canonicalised.
    Str(Cow<'a, str>),
    /// Anything else (negative or fractional numbers, objects, ...); upstream rejects these ids.
    Other,
}

impl<'a> IdRef<'a> {
    /// Builds an id from its raw JSON text, decoding it.
    #[must_use]
    pub fn parse(raw: &'a str) -> Self {
        let value = match raw.as_bytes().first() {
            Some(b'"') if !raw.contains('\\') => raw
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .map_or(IdValue::Other, |s| IdValue::Str(Cow::Borrowed(s))),
            Some(b'"') => sonic_rs::from_str::<String>(raw)
                .map_or(IdValue::Other, |s| IdValue::Str(Cow::Owned(s))),
            Some(b'0'..=b'9') => raw.parse::<u64>().map_or(IdValue::Other, IdValue::Uint),
            _ => IdValue::Other,
        };
        Self { raw, value }
    }

    /// Builds an id from parts (for callers that decoded it themselves, e.g. a DOM reference).
    #[must_use]
    pub fn from_parts(raw: &'a str, value: IdValue<'a>) -> Self {
        Self { raw, value }
    }

    /// The id's JSON text exactly as the caller sent it.
    #[must_use]
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded id.
    #[must_use]
    pub fn value(&self) -> &IdValue<'a> {
        &self.value
    }
}

/// What to stamp into a write.
#[derive(Clone, Copy)]
pub struct StampOptions<'a> {
    /// Value of `_hevlayer_upserted_at`, epoch milliseconds.
    pub now_ms: u64,
    /// When set, also stamp `_hevlayer_shard` = `shard(id)` into every row (and as a column for
    /// columnar writes). Unset for unsharded namespaces.
    pub shard: Option<&'a dyn Fn(&IdRef<'_>) -> u32>,
    /// Reserved attributes this write may set: the gateway's own markers in a write it builds
    /// (a UDF completion's version marker). Empty for every caller's write.
    pub own_reserved: &'a [&'a str],
}

impl std::fmt::Debug for StampOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampOptions")
            .field("now_ms", &self.now_ms)
            .field("shard", &self.shard.is_some())
            .field("own_reserved", &self.own_reserved)
            .finish()
    }
}

impl StampOptions<'_> {
    /// Stamp the write time only.
    #[must_use]
    pub fn new(now_ms: u64) -> Self {
        Self {
            now_ms,
            shard: None,
            own_reserved: &[],
        }
    }
}

/// Validates a write body and stamps `_hevlayer_upserted_at = now_ms` (see the module docs).
///
/// # Errors
/// Any validation error, [`RewriteError::ReservedAttribute`], [`RewriteError::NoWriteOperation`]
/// or [`RewriteError::Malformed`].
pub fn stamp_write(body: &[u8], now_ms: u64, limits: &Limits) -> Result<Vec<u8>, RewriteError> {
    stamp_write_with(body, &StampOptions::new(now_ms), limits)
}

/// [`stamp_write`] with all options (shard stamping).
///
/// # Errors
/// As [`stamp_write`], plus [`RewriteError::Malformed`] for a row without `id` when a shard
/// function is set.
pub fn stamp_write_with(
    body: &[u8],
    opts: &StampOptions<'_>,
    limits: &Limits,
) -> Result<Vec<u8>, RewriteError> {
    plan(Input::Unchecked(body, *limits), opts)?.0.finish()
}

/// The ids a write touches, as their raw JSON text borrowed from the body: read while stamping,
/// so a caller that needs them (cache invalidation) does not walk the body again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TouchedIds<'a> {
    /// The ids of `upsert_rows` / `patch_rows` rows (rows without one are skipped) and of the
    /// `upsert_columns` / `patch_columns` `id` columns, in body order.
    pub written: Vec<&'a str>,
    /// The ids of `deletes`.
    pub deleted: Vec<&'a str>,
    /// `patch_by_filter`, `delete_by_filter`, `copy_from_namespace` or `branch_from_namespace`
    /// is set (not `null`), or `deletes` is not an array: any row may change.
    pub whole_namespace: bool,
}

/// [`stamp_write_bytes`] that also returns the ids the write touches ([`TouchedIds`]).
///
/// # Errors
/// As [`stamp_write_with`].
pub fn stamp_write_touched<'a>(
    body: &'a Bytes,
    opts: &StampOptions<'_>,
    limits: &Limits,
) -> Result<(Bytes, TouchedIds<'a>), RewriteError> {
    stamp_touched(body, Input::Unchecked(body, *limits), opts)
}

/// [`stamp_write_touched`] for a body validated before, or built by a serializer
/// ([`Validated::serialized`]): only its top level is walked, and only the size cap of
/// `limits` applies.
///
/// # Errors
/// As [`stamp_write_with`], less the body's validation ([`RewriteError::Oversize`] still).
pub fn stamp_validated_touched<'a>(
    body: &'a Validated<Bytes>,
    opts: &StampOptions<'_>,
    limits: &Limits,
) -> Result<(Bytes, TouchedIds<'a>), RewriteError> {
    if body.len() > limits.max_body_bytes {
        return Err(RewriteError::Oversize {
            len: body.len(),
            max: limits.max_body_bytes,
        });
    }
    stamp_touched(body.get_ref(), Input::of(body), opts)
}

fn stamp_touched<'a>(
    body: &'a Bytes,
    input: Input<'a>,
    opts: &StampOptions<'_>,
) -> Result<(Bytes, TouchedIds<'a>), RewriteError> {
    let (splice, touched) = plan(input, opts)?;
    if splice.is_empty() {
        return Ok((body.clone(), touched));
    }
    Ok((Bytes::from(splice.finish()?), touched))
}

/// [`stamp_write_with`] for a `Bytes` body: when nothing needs stamping (deletes, copy, schema
/// only) the body itself is returned (a reference-count bump, no copy).
///
/// # Errors
/// As [`stamp_write_with`].
pub fn stamp_write_bytes(
    body: &Bytes,
    opts: &StampOptions<'_>,
    limits: &Limits,
) -> Result<Bytes, RewriteError> {
    let (splice, _) = plan(Input::Unchecked(body, *limits), opts)?;
    if splice.is_empty() {
        return Ok(body.clone());
    }
    splice.finish().map(Bytes::from)
}

fn plan<'a>(
    input: Input<'a>,
    opts: &StampOptions<'_>,
) -> Result<(Splice<'a>, TouchedIds<'a>), RewriteError> {
    let body = input.bytes();
    let entries = input.members()?;
    let mut st = Stamper::new(body, opts);
    let mut any_op = false;
    for (key, value) in &entries {
        if is_null(value) {
            continue;
        }
        match key.as_ref() {
            op @ ("upsert_rows" | "patch_rows") => {
                any_op = true;
                st.rows(op, value)?;
            }
            op @ ("upsert_columns" | "patch_columns") => {
                any_op = true;
                st.columns(op, value)?;
            }
            "patch_by_filter" => {
                any_op = true;
                st.patch_by_filter(value)?;
            }
            "schema" => {
                any_op = true;
                st.schema(value)?;
            }
            "deletes" => {
                any_op = true;
                st.deletes(value);
            }
            "delete_by_filter" | "copy_from_namespace" | "branch_from_namespace" => {
                any_op = true;
                st.touched.whole_namespace = true;
            }
            _ => {}
        }
    }
    if !any_op {
        return Err(RewriteError::NoWriteOperation);
    }
    Ok((st.splice, st.touched))
}

/// The one reserved family a caller may write: a UDF's `stale_after` marker
/// (`_hevlayer_udf_<name>_stale_after`), which is how a row is marked for its UDF to run again.
pub fn caller_settable(key: &str) -> bool {
    key.strip_prefix("_hevlayer_udf_")
        .and_then(|rest| rest.strip_suffix("_stale_after"))
        .is_some_and(|name| !name.is_empty())
}

fn reserved(key: &str, own: &[&str]) -> Result<(), RewriteError> {
    if key.starts_with(RESERVED_PREFIX) && !own.contains(&key) && !caller_settable(key) {
        return Err(RewriteError::ReservedAttribute {
            attribute: key.to_owned(),
        });
    }
    Ok(())
}

/// Appends the decimal text of `n` (no allocation).
fn push_u64<const N: usize>(buf: &mut SmallVec<[u8; N]>, n: u64) {
    buf.extend_from_slice(decimal(n, &mut [0; 20]));
}

/// The decimal text of `n`, written at the end of `digits` (no allocation, no formatter).
pub fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

struct Stamper<'a, 'o> {
    body: &'a [u8],
    splice: Splice<'a>,
    opts: &'o StampOptions<'o>,
    /// `"_hevlayer_upserted_at":N,` and the same without the comma, shared by every row.
    stamp_comma: std::ops::Range<usize>,
    stamp_bare: std::ops::Range<usize>,
    /// The ids seen on the way.
    touched: TouchedIds<'a>,
}

impl<'a, 'o> Stamper<'a, 'o> {
    fn new(body: &'a [u8], opts: &'o StampOptions<'o>) -> Self {
        let mut splice = Splice::new(body);
        let start = splice.arena().len();
        let arena = splice.arena();
        arena.extend_from_slice(b"\"_hevlayer_upserted_at\":");
        push_u64(arena, opts.now_ms);
        let stamp_bare = splice.mark(start);
        splice.arena().push(b',');
        let stamp_comma = splice.mark(start);
        Self {
            body,
            splice,
            opts,
            stamp_comma,
            stamp_bare,
            touched: TouchedIds::default(),
        }
    }

    /// Inserts the stamp as the first key of the object `object` (a row or a patch).
    fn stamp_object(
        &mut self,
        object: &LazyValue<'a>,
        empty: bool,
        id: Option<&IdRef<'_>>,
    ) -> Result<(), RewriteError> {
        let at = span_of(self.body, object)?.start + 1;
        self.stamp_at(at, empty, id);
        Ok(())
    }

    /// Inserts the stamp at `at`, just inside an object's `{` (`empty`: the object has no
    /// member, so no comma follows the stamp).
    fn stamp_at(&mut self, at: usize, empty: bool, id: Option<&IdRef<'_>>) {
        match (self.opts.shard, id) {
            (Some(shard), Some(id)) => {
                let start = self.splice.arena().len();
                let arena = self.splice.arena();
                arena.extend_from_slice(b"\"_hevlayer_upserted_at\":");
                push_u64(arena, self.opts.now_ms);
                arena.extend_from_slice(b",\"_hevlayer_shard\":");
                push_u64(arena, u64::from(shard(id)));
                if !empty {
                    arena.push(b',');
                }
                let piece = self.splice.mark(start);
                self.splice.insert_piece(at, piece);
            }
            _ => {
                let piece = if empty {
                    self.stamp_bare.clone()
                } else {
                    self.stamp_comma.clone()
                };
                self.splice.insert_piece(at, piece);
            }
        }
    }

    /// Stamps every row of `upsert_rows` / `patch_rows` and notes its id, in one walk of the
    /// array: each row's members are read where they lie, their values skipped by structure
    /// ([`raw::members_of_checked`]: the body was validated whole before, by
    /// [`Input::members`] or by whoever made the [`Validated`] body), instead of sonic-rs
    /// skipping each row to find its end and a second walk checking every value again.
    fn rows(&mut self, op: &str, value: &LazyValue<'a>) -> Result<(), RewriteError> {
        let text = raw_of(self.body, value)?;
        let b = text.as_bytes();
        if b.first() != Some(&b'[') {
            return Err(RewriteError::malformed(format!(
                "`{op}` must be an array of row objects"
            )));
        }
        let unread = || RewriteError::Internal {
            message: "a validated row did not read whole",
        };
        let mut at = skip_ws(b, 1);
        if b.get(at) == Some(&b']') {
            return Ok(());
        }
        for i in 0.. {
            let rest = &text[at..];
            if !rest.starts_with('{') {
                return Err(RewriteError::malformed(format!(
                    "`{op}[{i}]` must be an object"
                )));
            }
            let mut fields = raw::members_of_checked(rest);
            let mut empty = true;
            let mut id_raw: Option<&'a str> = None;
            for (key, v) in fields.by_ref() {
                empty = false;
                reserved(&key, self.opts.own_reserved)?;
                if key == "id" {
                    id_raw = Some(v);
                }
            }
            let end = at + fields.end().ok_or_else(unread)?;
            if let Some(raw) = id_raw {
                self.touched.written.push(raw);
            }
            let id = id_raw.map(IdRef::parse);
            if self.opts.shard.is_some() && id.is_none() {
                return Err(RewriteError::malformed(format!(
                    "`{op}[{i}]` has no `id` (needed to assign a shard)"
                )));
            }
            let row = span_in(self.body, &text[at..end])?;
            self.stamp_at(row.start + 1, empty, id.as_ref());
            at = skip_ws(b, end);
            match b.get(at) {
                Some(b',') => at = skip_ws(b, at + 1),
                Some(b']') => break,
                _ => return Err(unread()),
            }
        }
        Ok(())
    }

    fn columns(&mut self, op: &str, value: &LazyValue<'a>) -> Result<(), RewriteError> {
        let fields = object_members(self.body, value)?.ok_or_else(|| {
            RewriteError::malformed(format!("`{op}` must be an object of attribute columns"))
        })?;
        let mut id_column = None;
        for (key, v) in fields {
            reserved(&key, self.opts.own_reserved)?;
            if key == "id" {
                id_column = Some(v);
            }
        }
        let ids = id_column
            .and_then(LazyValue::into_array_iter)
            .ok_or_else(|| RewriteError::malformed(format!("`{op}.id` must be an array of ids")))?;

        let mut shards = Vec::new();
        let start = self.splice.arena().len();
        self.splice
            .arena()
            .extend_from_slice(b"\"_hevlayer_upserted_at\":[");
        for (i, id) in ids.enumerate() {
            let id = id.map_err(|e| json_error(&e, true))?;
            let raw = raw_of(self.body, &id)?;
            self.touched.written.push(raw);
            if let Some(shard) = self.opts.shard {
                shards.push(shard(&IdRef::parse(raw)));
            }
            let arena = self.splice.arena();
            if i > 0 {
                arena.push(b',');
            }
            push_u64(arena, self.opts.now_ms);
        }
        let arena = self.splice.arena();
        arena.push(b']');
        if self.opts.shard.is_some() {
            arena.extend_from_slice(b",\"_hevlayer_shard\":[");
            for (i, s) in shards.into_iter().enumerate() {
                if i > 0 {
                    arena.push(b',');
                }
                push_u64(arena, u64::from(s));
            }
            arena.push(b']');
        }
        // The object holds at least `id`, so a comma always follows.
        arena.push(b',');
        let piece = self.splice.mark(start);
        let at = span_of(self.body, value)?.start + 1;
        self.splice.insert_piece(at, piece);
        Ok(())
    }

    fn patch_by_filter(&mut self, value: &LazyValue<'a>) -> Result<(), RewriteError> {
        let fields = object_members(self.body, value)?.ok_or_else(|| {
            RewriteError::malformed(
                "`patch_by_filter` must be an object with `filters` and `patch`",
            )
        })?;
        let patch = fields
            .into_iter()
            .find(|(key, _)| key == "patch")
            .map(|(_, v)| v);
        let patch = patch
            .ok_or_else(|| RewriteError::malformed("`patch_by_filter` has no `patch` object"))?;
        self.touched.whole_namespace = true;
        let attrs = object_members(self.body, &patch)?.ok_or_else(|| {
            RewriteError::malformed("`patch_by_filter.patch` must be an object of attributes")
        })?;
        let empty = attrs.is_empty();
        for (key, _) in &attrs {
            reserved(key, self.opts.own_reserved)?;
        }
        self.stamp_object(&patch, empty, None)
    }

    /// Records the ids of `deletes` (not stamped; a shape upstream will refuse counts as touching
    /// the whole namespace).
    fn deletes(&mut self, value: &LazyValue<'a>) {
        let Some(ids) = value.clone().into_array_iter() else {
            self.touched.whole_namespace = true;
            return;
        };
        for id in ids {
            match id.ok().and_then(|id| raw_of(self.body, &id).ok()) {
                Some(raw) => self.touched.deleted.push(raw),
                None => {
                    self.touched.whole_namespace = true;
                    return;
                }
            }
        }
    }

    fn schema(&mut self, value: &LazyValue<'a>) -> Result<(), RewriteError> {
        let fields = object_members(self.body, value)?.ok_or_else(|| {
            RewriteError::malformed("`schema` must be an object of attribute schemas")
        })?;
        for (key, _) in &fields {
            reserved(key, self.opts.own_reserved)?;
        }
        Ok(())
    }
}

/// The raw text of a value, borrowed from the body itself (so it outlives the iterator).
fn raw_of<'a>(body: &'a [u8], value: &LazyValue<'_>) -> Result<&'a str, RewriteError> {
    let span = span_of(body, value)?;
    body.get(span)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or(RewriteError::Internal {
            message: "a value is not valid UTF-8",
        })
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;

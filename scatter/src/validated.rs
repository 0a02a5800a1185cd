//! [`Validated`]: a body that passed whole-body validation, as a type instead of a flag.
//!
//! A request's JSON body is validated whole once ([`Validated::check`], every rule in
//! [`mod@crate::validate`]). Every later pass over it, and over the bodies this crate splices from
//! it (the stable read's predicate, a page's `top_k`, a shard leg's filter), only walks the top
//! level. The proof travels with the bytes: a rewriter that takes a `&Validated` cannot be handed
//! bytes a caller sent and nobody checked, and one that takes plain bytes always validates them.
//!
//! Three things make one: [`Validated::check`]; this crate's own rewriters, which return what
//! they spliced from a validated body (pieces they write are JSON by construction, and
//! gateway-supplied pieces such as a predicate are checked to be one JSON value first; such a
//! piece must not repeat a key itself, which the gateway's predicates, built from fixed text or
//! a serializer's map, never do; the fuzz target `plan_query` and the property tests validate
//! every such output again); and
//! [`Validated::serialized`], for bytes a program wrote itself with a serializer, named at the
//! place they are built (never for bytes received). [`Validated::kept`] re-attaches the proof to
//! such bytes read back from the program's own store (the gateway's hot document cache).
//!
//! A backslash-free validated object's members can be listed without any check
//! ([`Validated::plain_members`], a `memchr` scan of the structural bytes, `validated/plain.rs`).
//!
//! Start at [`Validated::check`]; the rewriters that take one are
//! [`crate::layer_query::plan_validated`], [`crate::plan_stable_read`], [`crate::plan_shards`],
//! [`crate::page::paging_of`], [`crate::page::page_body`] and [`crate::MergeSpec::for_body`].

mod plain;

use std::ops::Deref;

pub use plain::PlainMembers;

use crate::validate::{Entries, parse_top, top_members};
use crate::{Limits, RewriteError};

/// JSON text that is one object, valid to its last byte, with no key repeated at any depth and
/// its nesting bounded: checked under some [`Limits`] by [`Validated::check`], or spliced by this
/// crate from such a text (a splice may nest a few levels deeper than the limit it was checked
/// under: a predicate ANDed into `filters` adds two).
///
/// `B` holds the bytes (`Vec<u8>` by default; `bytes::Bytes` or a slice work too). Reads go
/// through [`Deref`] to `[u8]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated<B = Vec<u8>>(B);

impl<B: AsRef<[u8]>> Validated<B> {
    /// Validates `body` whole under `limits`.
    ///
    /// # Errors
    /// As [`crate::validate()`].
    pub fn check(body: B, limits: &Limits) -> Result<Self, RewriteError> {
        parse_top(body.as_ref(), limits)?;
        Ok(Validated(body))
    }

    /// Bytes this crate spliced from a validated body (see the module docs for why they are).
    pub(crate) fn spliced(body: B) -> Self {
        Validated(body)
    }

    /// Bytes the caller serialized itself (serde_json's `to_vec` of a map, an encoder over a
    /// checked schema, validated rows joined into an array): one JSON object with no key twice,
    /// by construction. Never for bytes that came from a client or from upstream; check those.
    pub fn serialized(body: B) -> Self {
        Validated(body)
    }

    /// Bytes read back from the caller's own store, which it fills only with bytes that were
    /// [checked](Self::check) or [serialized](Self::serialized) (a cache whose every insert is
    /// one of those), or marked so by the program that wrote them (a store shared by the
    /// program's processes, which keeps that mark under a checksum, such as the gateway's NVMe
    /// tier, whose records may outlive the process that wrote them). Named at the place they are
    /// read; never for a store others write.
    pub fn kept(body: B) -> Self {
        Validated(body)
    }

    /// The top-level members as `(key, value)` text spans (the key without its quotes, the value
    /// as written), found without checking anything again ([`PlainMembers`]); `None` when the
    /// text holds a backslash anywhere (a key may then be escaped, and this does not decode).
    #[must_use]
    pub fn plain_members(&self) -> Option<PlainMembers<'_>> {
        let text = self.0.as_ref();
        memchr::memchr(b'\\', text)
            .is_none()
            .then(|| PlainMembers::new(text))
    }

    /// The container of the bytes.
    #[must_use]
    pub fn get_ref(&self) -> &B {
        &self.0
    }

    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// The same proof over borrowed bytes.
    #[must_use]
    pub fn as_slice(&self) -> Validated<&[u8]> {
        Validated(self.0.as_ref())
    }

    /// The bytes, giving up the proof.
    #[must_use]
    pub fn into_inner(self) -> B {
        self.0
    }

    /// The same bytes in another container (`Vec<u8>` into `Bytes`, say), keeping the proof.
    #[must_use]
    pub fn convert<C: From<B> + AsRef<[u8]>>(self) -> Validated<C> {
        Validated(C::from(self.0))
    }

    /// The top-level members in document order, without validating again.
    pub(crate) fn members(&self) -> Result<Entries<'_>, RewriteError> {
        top_members(self.0.as_ref())
    }
}

impl<B: AsRef<[u8]>> Deref for Validated<B> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for Validated<B> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// A body a rewriter reads: either bytes to validate under limits, or a proof that they were.
/// Crate-internal: the public functions take one or the other by type.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// Validate whole under these limits.
    Unchecked(&'a [u8], Limits),
    /// Already validated: walk the top level only.
    Checked(&'a [u8]),
}

impl<'a> Input<'a> {
    pub(crate) fn of<B: AsRef<[u8]>>(body: &'a Validated<B>) -> Self {
        Input::Checked(body.as_bytes())
    }

    pub(crate) fn bytes(self) -> &'a [u8] {
        match self {
            Input::Unchecked(b, _) | Input::Checked(b) => b,
        }
    }

    /// The top-level members, validating first when unchecked.
    pub(crate) fn members(self) -> Result<Entries<'a>, RewriteError> {
        match self {
            Input::Unchecked(body, limits) => parse_top(body, &limits),
            Input::Checked(body) => top_members(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_validates_whole_and_members_walk_the_top_level_only() {
        let limits = Limits::default();
        // A nested duplicate key fails the check: no proof is made.
        let nested_dup = br#"{"filters":{"a":1,"a":2},"top_k":3}"#.as_slice();
        assert!(matches!(
            Validated::check(nested_dup, &limits),
            Err(RewriteError::DuplicateKey { .. })
        ));
        assert!(Validated::check(br#"{"a":1} x"#.as_slice(), &limits).is_err());
        let tiny = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        assert!(matches!(
            Validated::check(br#"{"a":1}"#.as_slice(), &tiny),
            Err(RewriteError::Oversize { .. })
        ));

        let ok = Validated::check(br#" {"b":[1,{"c":2}],"a":"x"} "#.to_vec(), &limits).unwrap();
        let keys: Vec<String> = ok
            .members()
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(&*ok, br#" {"b":[1,{"c":2}],"a":"x"} "#);
        let moved: Validated<bytes::Bytes> = ok.clone().convert();
        assert_eq!(moved.as_bytes(), ok.as_bytes());
        assert_eq!(ok.as_slice().members().unwrap().len(), 2);
    }

    #[test]
    fn an_unchecked_input_validates_and_a_checked_one_does_not() {
        let limits = Limits::default();
        let body = br#"{"filters":{"a":1,"a":2},"top_k":3}"#;
        assert!(Input::Unchecked(body, limits).members().is_err());
        // Only this crate can claim such bytes were checked; it walks the top level then.
        assert_eq!(Input::Checked(body).members().unwrap().len(), 2);
        assert!(Input::Checked(b"[1]").members().is_err());
    }
}

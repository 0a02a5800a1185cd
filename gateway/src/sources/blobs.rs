//! Content-addressed blobs of a namespace: where they live in the object store, their refs, and
//! reads that try the cache tier first. Shared by the blobs routes and the `blobs` step of
//! `hint_cache_warm`.
//!
//! ```text
//! blobs/{ns}/{sha256}        the bytes, as stored (object store; the cache tier's `blobs` set
//!                            mirrors them under the same (ns, sha256))
//! ```
//!
//! A blob's `ref` is `sha256:<64 lowercase hex>`: documents hold refs in their attributes.

use bytes::Bytes;
use layer_cache::Set;
use sha2::{Digest, Sha256};

use crate::core::Core;
use crate::core::store::StoreError;

/// The prefix of a blob ref.
pub const REF_PREFIX: &str = "sha256:";

/// The object store key of a blob.
pub fn key(ns: &str, sha: &str) -> String {
    format!("blobs/{ns}/{sha}")
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` is a SHA-256 as blobs are addressed (64 lowercase hex digits).
pub fn is_sha(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The sha of a ref (`sha256:<hex>`), or `None` for anything else.
pub fn sha_of_ref(r: &str) -> Option<&str> {
    r.strip_prefix(REF_PREFIX).filter(|s| is_sha(s))
}

/// Stores a blob in the object store (idempotent: the key is its content's hash).
pub async fn put(core: &Core, ns: &str, sha: &str, bytes: Bytes) -> Result<(), StoreError> {
    core.store.put(&key(ns, sha), bytes).await
}

/// Mirrors a blob into the cache tier (best-effort: a refusal is only reported).
pub async fn warm(core: &Core, ns: &str, sha: &str, bytes: Bytes) -> bool {
    core.cache
        .tier
        .put(Set::Blobs, ns, sha, bytes)
        .await
        .is_ok()
}

/// Where a read was served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Cache,
    ObjectStore,
}

/// A blob's bytes: the cache tier first (its failures are soft), the object store behind it.
pub async fn get(core: &Core, ns: &str, sha: &str) -> Result<Option<(Bytes, Served)>, StoreError> {
    if let Ok(Some(b)) = core.cache.tier.get(Set::Blobs, ns, sha).await {
        return Ok(Some((b, Served::Cache)));
    }
    Ok(core
        .store
        .get(&key(ns, sha))
        .await?
        .map(|b| (b, Served::ObjectStore)))
}

/// Whether the cache tier holds the blob.
pub async fn cached(core: &Core, ns: &str, sha: &str) -> bool {
    matches!(core.cache.tier.get(Set::Blobs, ns, sha).await, Ok(Some(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_hashes() {
        let h = sha256(b"abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha(&h));
        assert_eq!(sha_of_ref(&format!("sha256:{h}")), Some(h.as_str()));
        assert_eq!(sha_of_ref(&h), None);
        assert!(!is_sha(&h.to_uppercase()));
        assert!(!is_sha("abc"));
    }
}

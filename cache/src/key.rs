//! Cache keys: a logical [`Set`] plus `(namespace, id)` strings.
//!
//! Ids are strings on the wire; numeric (u64) document ids are cached under their decimal
//! rendering ([`render_u64_id`]) so a fetch by `"42"` and by `42` share one entry.

use crate::CacheError;

/// Longest namespace accepted (bytes). Turbopuffer caps names far below this; the bound exists
/// because the NVMe record header stores the length in 16 bits.
pub const MAX_NAMESPACE_LEN: usize = u16::MAX as usize;
/// Longest id accepted (bytes); same reason as [`MAX_NAMESPACE_LEN`].
pub const MAX_ID_LEN: usize = u16::MAX as usize;

/// The logical sets one cache serves (Aerospike `set`s in the Aerospike tier). Entries in
/// different sets never collide, and each set is invalidated separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Set {
    /// Fetch-by-id document bodies.
    Documents = 1,
    /// Pipeline chunk handoff between CPU and GPU stages.
    Chunks = 2,
    /// Snapshot bodies / field values mirrored from the object store.
    Snapshots = 3,
    /// Content-addressed blobs (by SHA-256) mirrored from the object store.
    Blobs = 4,
}

impl Set {
    /// Every set, in tag order.
    pub const ALL: [Set; 4] = [Set::Documents, Set::Chunks, Set::Snapshots, Set::Blobs];

    /// Stable lowercase name (metrics labels, Aerospike set name).
    pub fn as_str(self) -> &'static str {
        match self {
            Set::Documents => "documents",
            Set::Chunks => "chunks",
            Set::Snapshots => "snapshots",
            Set::Blobs => "blobs",
        }
    }

    /// The on-disk tag (the `#[repr(u8)]` discriminant).
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Set::tag`]; `None` for an unknown tag (a corrupt record).
    pub fn from_tag(tag: u8) -> Option<Set> {
        match tag {
            1 => Some(Set::Documents),
            2 => Some(Set::Chunks),
            3 => Some(Set::Snapshots),
            4 => Some(Set::Blobs),
            _ => None,
        }
    }
}

/// Renders a numeric id the way it is keyed in the cache (decimal, no padding).
pub fn render_u64_id(id: u64) -> String {
    id.to_string()
}

/// Rejects keys the NVMe record format cannot represent; called by every tier entry point so
/// all tiers accept the same keys.
pub(crate) fn check_key(ns: &str, id: &str) -> Result<(), CacheError> {
    if ns.len() > MAX_NAMESPACE_LEN || id.len() > MAX_ID_LEN {
        return Err(CacheError::KeyTooLong {
            len: ns.len().max(id.len()),
            max: MAX_ID_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_tags_round_trip() {
        for s in Set::ALL {
            assert_eq!(Set::from_tag(s.tag()), Some(s));
        }
        assert_eq!(Set::from_tag(0), None);
        assert_eq!(
            render_u64_id(18_446_744_073_709_551_615),
            "18446744073709551615"
        );
    }

    #[test]
    fn long_keys_rejected() {
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(check_key("ns", &long).is_err());
        assert!(check_key("ns", "ok").is_ok());
    }
}

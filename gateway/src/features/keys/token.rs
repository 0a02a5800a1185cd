//! Tokens and key ids, from the operating system's CSPRNG.
//!
//! A token is `hvl_` and 43 characters of `[0-9A-Za-z]`, each drawn uniformly (rejection
//! sampling on OS random bytes): 43 × log2(62) ≈ 256.03 bits. Only its SHA-256 is kept
//! (`crate::core::auth::lookup_hash`). A key id is a random (version 4) UUID.

use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::core::error::GatewayError;

/// The documented token prefix.
pub const PREFIX: &str = "hvl_";
/// Characters after the prefix.
pub const LEN: usize = 43;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random(buf: &mut [u8]) -> Result<(), GatewayError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| GatewayError::Internal(format!("the OS random source failed: {e}")))
}

/// A new token.
pub fn token() -> Result<String, GatewayError> {
    let mut out = String::with_capacity(PREFIX.len() + LEN);
    out.push_str(PREFIX);
    let mut buf = [0u8; 64];
    while out.len() < PREFIX.len() + LEN {
        random(&mut buf)?;
        // 248 = 4 × 62: bytes at or above it are dropped, so every character is uniform.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == PREFIX.len() + LEN {
                break;
            }
            out.push(ALPHABET[(*b % 62) as usize] as char);
        }
    }
    Ok(out)
}

/// A new key id: a version 4 UUID.
pub fn key_id() -> Result<String, GatewayError> {
    let mut b = [0u8; 16];
    random(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_distinct_and_in_the_alphabet() {
        let a = token().unwrap();
        let b = token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + LEN);
        assert!(a.starts_with("hvl_"));
        assert!(a[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(LEN as f64 * 62f64.log2() >= 256.0);
        let id = key_id().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}

//! Facts about Turbopuffer schema types the features share.

/// The dimension of a vector type (`[768]f32`, `[384]f16`); `None` for other types.
pub fn vector_dim(t: &str) -> Option<u64> {
    let inner = t.strip_prefix('[')?;
    let (n, rest) = inner.split_once(']')?;
    (rest == "f32" || rest == "f16")
        .then(|| n.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_types() {
        assert_eq!(vector_dim("[768]f16"), Some(768));
        assert_eq!(vector_dim("[3]f32"), Some(3));
        assert_eq!(vector_dim("[]string"), None);
        assert_eq!(vector_dim("string"), None);
    }
}

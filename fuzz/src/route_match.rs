//! Route matching over the gateway's real route table (`layer_gateway::fuzzing::router`), against
//! a naive matcher written from the path rules: the request line is parsed as `http::Uri` (as
//! hyper does), and the router must pick the route the naive matcher picks (a leading `/`, no
//! empty segment, at most 12 segments, literal segments equal, `{param}` anything), with every
//! parameter the raw segment at its position. Matching happens on the raw path, so `%2F` never
//! creates a segment; the decoded `{ns}` follows the reference decoder; and a namespace the
//! gateway's check accepts has nothing to decode (no `%`, no `/`, not `.` or `..`).

use std::sync::OnceLock;

use http::{Method, Uri};
use layer_gateway::core::router::Router;
use layer_gateway::fuzzing::{check_namespace, decode_path_segment, router};

use crate::path_decode::reference_decode;

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
];

fn table() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(router)
}

/// The naive matcher: the index of the route whose pattern matches, and its `(name, raw
/// segment)` parameters.
fn naive<'p>(
    router: &Router,
    method: &Method,
    path: &'p str,
) -> Option<(usize, Vec<(&'static str, &'p str)>)> {
    let rest = path.strip_prefix('/')?;
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.len() > 12 || segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let mut found = None;
    for (i, route) in router.routes().iter().enumerate() {
        if route.method != *method {
            continue;
        }
        let pattern: Vec<&'static str> = route.pattern[1..].split('/').collect();
        if pattern.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        let fits = pattern.iter().zip(&segs).all(|(p, s)| {
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => {
                    params.push((name, *s));
                    true
                }
                None => p == s,
            }
        });
        if fits {
            assert!(found.is_none(), "two routes match {method} {path}");
            found = Some((i, params));
        }
    }
    found
}

/// The target (module docs).
pub fn run(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = &METHODS[usize::from(m) % METHODS.len()];
    let Ok(uri) = Uri::try_from(rest) else {
        return;
    };
    let path = uri.path();
    let router = table();
    let got = router.find(method, path);
    let want = naive(router, method, path);
    match (got, want) {
        (None, None) => {}
        (Some((route, params)), Some((i, want_params))) => {
            let expected = &router.routes()[i];
            assert!(
                std::ptr::eq(route, expected),
                "{method} {path}: router chose {}, the naive matcher {}",
                route.name,
                expected.name
            );
            for (name, raw) in want_params {
                assert_eq!(
                    params.raw(path, name),
                    Some(raw),
                    "{method} {path}: {{{name}}}"
                );
                assert!(!raw.contains('/'), "a parameter spans segments: {raw:?}");
                let decoded = decode_path_segment(raw);
                assert_eq!(decoded, reference_decode(raw, false), "decoding {raw:?}");
                if name == "ns" && check_namespace(raw).is_ok() {
                    assert_eq!(decoded, raw, "an accepted namespace decodes to itself");
                    assert!(raw != "." && raw != ".." && !raw.contains('%'), "{raw:?}");
                }
            }
        }
        (got, want) => panic!(
            "{method} {path}: router found {:?}, the naive matcher {:?}",
            got.map(|(r, _)| r.name),
            want.map(|(i, _)| router.routes()[i].name)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_matcher_reads_the_table() {
        let r = table();
        let (i, params) = naive(r, &Method::POST, "/v2/namespaces/a%2Fb/query").unwrap();
        assert_eq!(r.routes()[i].name, "query");
        assert_eq!(params, [("ns", "a%2Fb")]);
        assert!(check_namespace("a%2Fb").is_err());
        assert!(naive(r, &Method::POST, "/v2/namespaces/a/b/query").is_none());
        assert!(naive(r, &Method::GET, "/health/").is_none());
    }
}

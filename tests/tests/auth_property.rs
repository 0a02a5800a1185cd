//! A property over the whole auth table: generated requests (every route shape, methods, valid,
//! tricky and foreign namespaces, path tricks, every kind of bearer) against a gateway in `keys`
//! mode, and then the upstream request log: no request reached upstream without a key holding
//! the scope its route needs and a grant covering the namespace upstream saw, and no request
//! without a valid key reached it at all. Each generated request carries its own `traceparent`,
//! which the gateway forwards, so upstream's log says which request it came from.

use std::collections::HashMap;

use http::Method;
use layer_e2e::Stack;
use layer_gateway::config::{AuthMode, KeyConfig, Scope};

/// A key of the test: token, scopes, namespace globs (as prefixes: `shop-` = `shop-*`).
struct Key {
    token: &'static str,
    write: bool,
    prefix: Option<&'static str>,
}

const KEYS: [Key; 4] = [
    Key {
        token: "k-shop-read",

        write: false,
        prefix: Some("shop-"),
    },
    Key {
        token: "k-shop-rw",

        write: true,
        prefix: Some("shop-"),
    },
    Key {
        token: "k-all-read",

        write: false,
        prefix: None,
    },
    Key {
        token: "k-admin",

        write: true,
        prefix: None,
    },
];

/// Every route shape with its own method (`{ns}` filled in); a fifth of the requests get another
/// method instead.
const TEMPLATES: [(&str, &str); 22] = [
    ("POST", "/v2/namespaces/{ns}"),
    ("DELETE", "/v2/namespaces/{ns}"),
    ("POST", "/v2/namespaces/{ns}/query"),
    ("POST", "/v1/namespaces/{ns}/query"),
    ("POST", "/v2/namespaces/{ns}/async"),
    ("GET", "/v1/namespaces"),
    ("GET", "/v2/namespaces"),
    ("GET", "/v1/namespaces/{ns}/metadata"),
    ("GET", "/v2/namespaces/{ns}/metadata"),
    ("PATCH", "/v2/namespaces/{ns}/metadata"),
    ("GET", "/v1/namespaces/{ns}/schema"),
    ("POST", "/v1/namespaces/{ns}/schema"),
    ("POST", "/v2/namespaces/{ns}/explain_query"),
    ("POST", "/v1/namespaces/{ns}/_debug/recall"),
    ("GET", "/v1/namespaces/{ns}/operations/op_1"),
    ("GET", "/v2/namespaces/{ns}/documents/1"),
    ("POST", "/v2/namespaces/{ns}/documents"),
    ("GET", "/v1/namespaces/{ns}/hint_cache_warm"),
    ("POST", "/v2/namespaces/{ns}/scans"),
    ("POST", "/v2/namespaces/{ns}/warm"),
    ("HEAD", "/v2/namespaces/{ns}/metadata"),
    ("GET", "/health"),
];

const NAMESPACES: [&str; 12] = [
    "shop-1",
    "shop-2",
    "orders",
    "shop-",
    "SHOP-1",
    "shop-1%2F..%2Forders",
    "..",
    "shop-1%00",
    "shop-%6Frders",
    "shop-1/../orders",
    "shop-1/",
    "",
];

const BODIES: [&str; 5] = [
    r#"{"upsert_rows":[{"id":1,"t":"x"}]}"#,
    r#"{"rank_by":["id","asc"],"top_k":1}"#,
    r#"{"ids":["1"]}"#,
    r#"{"mode":"count"}"#,
    "",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// Whether upstream treats `method path` as a write (the scope the gateway must have checked).
fn upstream_needs_write(method: &str, path: &str) -> bool {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        (method, segs.as_slice()),
        ("POST", ["v2", "namespaces", _])
            | ("DELETE", ["v2", "namespaces", _])
            | ("POST", ["v2", "namespaces", _, "async"])
            | ("PATCH", [_, "namespaces", _, "metadata"])
            | ("POST", ["v1", "namespaces", _, "schema"])
    )
}

#[test]
fn no_request_reaches_upstream_without_the_scope_and_grant_its_route_needs() {
    let stack = Stack::start_with(|c| {
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = KEYS
            .iter()
            .map(|k| KeyConfig {
                name: k.token.into(),
                scopes: if k.token == "k-admin" {
                    vec![Scope::Admin]
                } else if k.write {
                    vec![Scope::Read, Scope::Write]
                } else {
                    vec![Scope::Read]
                },
                namespaces: k.prefix.map(|p| vec![format!("{p}*")]).unwrap_or_default(),
                token: Some(k.token.into()),
                token_env: None,
            })
            .collect();
    });
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
    ];
    let bearers: Vec<Option<String>> = KEYS
        .iter()
        .map(|k| Some(format!("Bearer {}", k.token)))
        .chain([None, Some("Bearer k-shop".into()), Some("Bearer ".into())])
        .collect();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    // trace id → (key index, or None for an invalid / missing token)
    let mut sent: HashMap<String, Option<usize>> = HashMap::new();
    for i in 0..800u32 {
        let (natural, template) = *rng.pick(&TEMPLATES);
        let method = if rng.next().is_multiple_of(5) {
            rng.pick(&methods).clone()
        } else {
            natural.parse::<Method>().expect("method")
        };
        let ns = *rng.pick(&NAMESPACES);
        let mut path = template.replace("{ns}", ns);
        match rng.next() % 10 {
            0 => path = path.replacen('/', "//", 1),
            1 => path.push('/'),
            _ => {}
        }
        let body = *rng.pick(&BODIES);
        let bearer_ix = (rng.next() % bearers.len() as u64) as usize;
        let trace = format!(
            "{:032x}",
            0xabc0_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(i)
        );
        let traceparent = format!("00-{trace}-00000000000000aa-01");
        let mut headers = vec![("traceparent", traceparent.as_str())];
        if let Some(b) = &bearers[bearer_ix] {
            headers.push(("authorization", b.as_str()));
        }
        let _ = stack.http.send(
            method,
            &format!("{}{path}", stack.gateway_url),
            &headers,
            body.to_string(),
        );
        let key = (bearer_ix < KEYS.len()).then_some(bearer_ix);
        sent.insert(trace, key);
    }
    let mut checked = 0;
    for r in stack.upstream_requests() {
        let Some(tp) = r["headers"]["traceparent"].as_str() else {
            continue; // the gateway's own requests (watcher polls, jobs, the mirror)
        };
        let Some(trace) = tp.split('-').nth(1) else {
            continue;
        };
        let Some(key) = sent.get(trace) else {
            continue; // a traceparent the gateway generated for its own work
        };
        let (method, path) = (
            r["method"].as_str().unwrap_or_default(),
            r["path"].as_str().unwrap_or_default(),
        );
        let key = key
            .map(|k| &KEYS[k])
            .unwrap_or_else(|| panic!("{method} {path} reached upstream without a valid key"));
        if upstream_needs_write(method, path) {
            assert!(
                key.write,
                "{method} {path} needs write; {} has none",
                key.token
            );
        }
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["v1" | "v2", "namespaces", ns, ..] = segs.as_slice()
            && let Some(prefix) = key.prefix
        {
            assert!(
                ns.starts_with(prefix) && !ns.contains('%') && *ns != "..",
                "{method} {path} reached upstream for {}, whose grant is {prefix}*",
                key.token
            );
        }
        checked += 1;
    }
    assert!(
        checked > 50,
        "the property saw only {checked} forwarded requests"
    );
}

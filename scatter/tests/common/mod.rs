//! Generators for the property tests: random write and query bodies as a small JSON tree ([`J`])
//! that is rendered to text with random whitespace, random string escaping and varied number
//! spellings, so the splicer meets the byte-level variety real clients send.

#![allow(dead_code)]

use proptest::prelude::*;

/// A JSON tree whose numbers keep their exact text.
#[derive(Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// A tiny deterministic generator driving the rendering choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0 | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn ws(out: &mut String, rng: &mut Rng) {
    match rng.below(8) {
        0 => out.push(' '),
        1 => out.push_str("\n  "),
        2 => out.push('\t'),
        3 => out.push_str(" \r\n"),
        _ => {}
    }
}

/// Writes `s` as a JSON string literal, escaping randomly (always where JSON requires it).
pub fn render_str(s: &str, out: &mut String, rng: &mut Rng) {
    out.push('"');
    for c in s.chars() {
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        if !must && rng.below(6) != 0 {
            out.push(c);
            continue;
        }
        match (c, rng.below(2)) {
            ('"', 0) => out.push_str("\\\""),
            ('\\', 0) => out.push_str("\\\\"),
            ('\n', 0) => out.push_str("\\n"),
            ('\t', 0) => out.push_str("\\t"),
            ('/', 0) => out.push_str("\\/"),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Renders a tree to JSON text with random formatting.
pub fn render(j: &J, rng: &mut Rng) -> String {
    let mut out = String::new();
    render_into(j, &mut out, rng);
    out
}

fn render_into(j: &J, out: &mut String, rng: &mut Rng) {
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => render_str(s, out, rng),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, rng);
                render_into(item, out, rng);
                ws(out, rng);
            }
            out.push(']');
        }
        J::Obj(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, rng);
                render_str(k, out, rng);
                ws(out, rng);
                out.push(':');
                ws(out, rng);
                render_into(v, out, rng);
                ws(out, rng);
            }
            out.push('}');
        }
    }
}

/// Numbers in the spellings that break naive rewriters: u64 near the top, negatives, floats in
/// plain, exponent and "lossy in f32" forms.
pub fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..2000).prop_map(|k| (u64::MAX - k).to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (-1e12f64..1e12).prop_map(|f| format!("{f}")),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        prop::sample::select(vec![
            "0.1", "1.10", "-0.0", "1E+2", "2.5e-3", "0.7", "0", "1e308"
        ])
        .prop_map(str::to_owned),
    ]
}

/// Strings with quotes, backslashes, control characters, non-ASCII and astral characters.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,12}",
        "\\PC{0,10}",
        prop::collection::vec(
            prop::sample::select(vec![
                '"', '\\', '\n', '\u{1}', '/', 'é', '€', '😀', '{', ']', 'a'
            ]),
            0..8
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

/// A scalar attribute value.
pub fn scalar() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        number().prop_map(J::Num),
        text().prop_map(J::Str),
        // base64 vector text
        "[A-Za-z0-9+/]{4,24}={0,2}".prop_map(J::Str),
    ]
}

/// Any attribute value: scalars, vectors, string arrays, sparse maps, a little nesting.
pub fn value() -> impl Strategy<Value = J> {
    scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec(number().prop_map(J::Num), 0..8).prop_map(J::Arr),
            fields(inner, 0..4).prop_map(J::Obj),
        ]
    })
}

/// Attribute names, never reserved, never `id`, unique after unescaping.
pub fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,8}",
        "[a-zé€😀 \"\\\\]{1,6}",
        Just("vector".to_owned()),
        Just("_hevlayer".to_owned()),
    ]
    .prop_filter("not id, not reserved", |k| {
        k != "id" && !k.starts_with("_hevlayer_")
    })
}

/// Unique-keyed object fields with values from `values`.
pub fn fields(
    values: impl Strategy<Value = J>,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<(String, J)>> {
    prop::collection::vec((attr_name(), values), len).prop_map(dedup)
}

pub fn dedup(mut v: Vec<(String, J)>) -> Vec<(String, J)> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|(k, _)| seen.insert(k.clone()));
    v
}

/// Document ids: u64 (often near `u64::MAX`) or strings.
pub fn id() -> impl Strategy<Value = J> {
    prop_oneof![
        (0u64..1000).prop_map(|k| J::Num((u64::MAX - k).to_string())),
        any::<u64>().prop_map(|n| J::Num(n.to_string())),
        "[a-z0-9-]{1,12}".prop_map(J::Str),
        text().prop_map(J::Str),
    ]
}

/// Turbopuffer filters, nested through And/Or/Not.
pub fn filter() -> impl Strategy<Value = J> {
    let leaf = (
        prop_oneof![
            attr_name(),
            Just("id".to_owned()),
            Just("_hevlayer_upserted_at".to_owned())
        ],
        prop::sample::select(vec![
            "Eq",
            "NotEq",
            "In",
            "Lt",
            "Lte",
            "Gt",
            "Glob",
            "ContainsAny",
        ]),
        value(),
    )
        .prop_map(|(a, op, v)| J::Arr(vec![J::Str(a), J::Str(op.to_owned()), v]));
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec!["And", "Or"]),
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(op, fs)| J::Arr(vec![J::Str(op.to_owned()), J::Arr(fs)])),
            inner.prop_map(|f| J::Arr(vec![J::Str("Not".to_owned()), f])),
        ]
    })
}

fn row() -> impl Strategy<Value = J> {
    (
        id(),
        fields(value(), 0..5),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(id, mut attrs, at, with_id)| {
            if with_id {
                let at = at.index(attrs.len() + 1);
                attrs.insert(at, ("id".to_owned(), id));
            }
            J::Obj(attrs)
        })
}

fn columns() -> impl Strategy<Value = J> {
    (0usize..5).prop_flat_map(|n| {
        (
            prop::collection::vec(id(), n),
            prop::collection::vec((attr_name(), prop::collection::vec(value(), n)), 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(ids, cols, at)| {
                let mut cols = dedup(cols.into_iter().map(|(k, v)| (k, J::Arr(v))).collect());
                let at = at.index(cols.len() + 1);
                cols.insert(at, ("id".to_owned(), J::Arr(ids)));
                J::Obj(cols)
            })
    })
}

fn maybe_null(s: impl Strategy<Value = J>) -> impl Strategy<Value = J> {
    prop_oneof![8 => s, 1 => Just(J::Null)]
}

/// A write body: a random subset of write operations and passthrough keys, in random order.
pub fn write_body() -> impl Strategy<Value = J> {
    let ops = vec![
        maybe_null(prop::collection::vec(row(), 0..4).prop_map(J::Arr))
            .prop_map(|v| ("upsert_rows", v))
            .boxed(),
        maybe_null(prop::collection::vec(row(), 0..4).prop_map(J::Arr))
            .prop_map(|v| ("patch_rows", v))
            .boxed(),
        maybe_null(columns())
            .prop_map(|v| ("upsert_columns", v))
            .boxed(),
        maybe_null(columns())
            .prop_map(|v| ("patch_columns", v))
            .boxed(),
        prop::collection::vec(id(), 0..4)
            .prop_map(|v| ("deletes", J::Arr(v)))
            .boxed(),
        filter().prop_map(|f| ("delete_by_filter", f)).boxed(),
        (filter(), fields(value(), 0..4), any::<bool>())
            .prop_map(|(f, patch, swap)| {
                let mut pbf = vec![
                    ("filters".to_owned(), f),
                    ("patch".to_owned(), J::Obj(patch)),
                ];
                if swap {
                    pbf.reverse();
                }
                ("patch_by_filter", J::Obj(pbf))
            })
            .boxed(),
        fields(Just(J::Str("string".to_owned())), 0..3)
            .prop_map(|f| ("schema", J::Obj(f)))
            .boxed(),
        text()
            .prop_map(|s| ("copy_from_namespace", J::Str(s)))
            .boxed(),
        Just(("distance_metric", J::Str("cosine_distance".to_owned()))).boxed(),
        filter().prop_map(|f| ("upsert_condition", f)).boxed(),
        any::<bool>()
            .prop_map(|b| ("return_affected_ids", J::Bool(b)))
            .boxed(),
        value().prop_map(|v| ("x_unknown", v)).boxed(),
    ];
    (prop::sample::subsequence(ops, 0..=13), any::<u64>()).prop_flat_map(|(chosen, seed)| {
        chosen.prop_map(move |entries| {
            let mut entries: Vec<(String, J)> = entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            shuffle(&mut entries, seed);
            J::Obj(entries)
        })
    })
}

fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = Rng(seed);
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

fn sub_query() -> impl Strategy<Value = J> {
    (
        prop_oneof![
            prop::collection::vec(number().prop_map(J::Num), 1..6).prop_map(|v| J::Arr(vec![
                J::Str("vector".to_owned()),
                J::Str("ANN".to_owned()),
                J::Arr(v)
            ])),
            text().prop_map(|q| J::Arr(vec![
                J::Str("title".to_owned()),
                J::Str("BM25".to_owned()),
                J::Str(q)
            ])),
        ],
        prop_oneof![2 => filter().prop_map(Some), 1 => Just(Some(J::Null)), 2 => Just(None)],
        (1u64..100).prop_map(|n| J::Num(n.to_string())),
        any::<u64>(),
    )
        .prop_map(|(rank_by, filters, top_k, seed)| {
            let mut q = vec![
                ("rank_by".to_owned(), rank_by),
                ("top_k".to_owned(), top_k),
                ("include_attributes".to_owned(), J::Bool(true)),
            ];
            if let Some(f) = filters {
                q.push(("filters".to_owned(), f));
            }
            shuffle(&mut q, seed);
            if seed % 5 == 0 {
                q.clear();
            }
            J::Obj(q)
        })
}

/// A query body: single (`filters` present, null or absent; `consistency` eventual, null or
/// absent) or multi-query (`queries`).
pub fn query_body() -> impl Strategy<Value = J> {
    prop_oneof![
        (sub_query(), 0u8..3).prop_map(|(q, consistency)| {
            let J::Obj(mut fields) = q else {
                unreachable!()
            };
            let level = J::Obj(vec![("level".to_owned(), J::Str("eventual".to_owned()))]);
            match consistency {
                0 => fields.push(("consistency".to_owned(), level)),
                1 => fields.push(("consistency".to_owned(), J::Null)),
                _ => {}
            }
            J::Obj(fields)
        }),
        (
            prop::collection::vec(sub_query(), 0..4),
            prop::option::of(filter()),
            any::<u64>()
        )
            .prop_map(|(subs, root_filter, seed)| {
                let mut fields = vec![
                    ("queries".to_owned(), J::Arr(subs)),
                    ("limit".to_owned(), J::Num("10".to_owned())),
                    (
                        "rerank_by".to_owned(),
                        J::Arr(vec![J::Str("RRF".to_owned())]),
                    ),
                ];
                if let Some(f) = root_filter {
                    fields.push(("filters".to_owned(), f));
                }
                shuffle(&mut fields, seed);
                J::Obj(fields)
            }),
    ]
}

/// Adds a second copy of an existing key to one object somewhere in the tree. Returns false if
/// the tree has no non-empty object.
pub fn add_duplicate(j: &mut J, rng: &mut Rng) -> bool {
    let mut count = 0usize;
    count_objects(j, &mut count);
    if count == 0 {
        return false;
    }
    let mut target = rng.below(count as u64) as usize;
    dup_nth(j, &mut target, rng)
}

fn count_objects(j: &J, count: &mut usize) {
    match j {
        J::Obj(fields) => {
            if !fields.is_empty() {
                *count += 1;
            }
            fields.iter().for_each(|(_, v)| count_objects(v, count));
        }
        J::Arr(items) => items.iter().for_each(|v| count_objects(v, count)),
        _ => {}
    }
}

fn dup_nth(j: &mut J, target: &mut usize, rng: &mut Rng) -> bool {
    match j {
        J::Obj(fields) => {
            if !fields.is_empty() {
                if *target == 0 {
                    let pick = rng.below(fields.len() as u64) as usize;
                    let (k, _) = fields[pick].clone();
                    let at = rng.below(fields.len() as u64 + 1) as usize;
                    fields.insert(at, (k, J::Num("0".to_owned())));
                    return true;
                }
                *target -= 1;
            }
            fields.iter_mut().any(|(_, v)| dup_nth(v, target, rng))
        }
        J::Arr(items) => items.iter_mut().any(|v| dup_nth(v, target, rng)),
        _ => false,
    }
}

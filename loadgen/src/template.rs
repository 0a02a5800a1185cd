//! Request templates: `${name}` placeholders in the path, header values and body.
//!
//! Syntax:
//!
//! * `${name}` is replaced by a variable. Names are `[A-Za-z_][A-Za-z0-9_]*`.
//! * `$$` is a literal `$`. Any other `$` (for example in `"$dist"`) is literal too, so JSON
//!   bodies need no escaping.
//! * Two names are built in and change per request:
//!   * `${zipf}`: a Zipf-distributed id; **every occurrence draws independently** (so
//!     `["id","In",[${zipf},${zipf}]]` asks for two ids). Needs a `zipf:` block in the scenario.
//!   * `${seq}`: the request's sequence number (0-based, shared by all occurrences in one request).
//!   * `${leg}`: the request's place in its fan-out group (`0..fanout`, see
//!     [`crate::scenario`]); always 0 without `fanout`.
//! * Every other name must be defined in the scenario's `vars:` or with `--var name=value`; an
//!   undefined name is an error when the scenario is loaded, not at run time.
//!
//! Static variables are substituted once at load time, so a template without `${zipf}` or
//! `${seq}` renders to one fixed byte string that is reused for every request.

use std::collections::BTreeMap;
use std::fmt;

use crate::zipf::{SplitMix64, Zipf};

/// A placeholder that changes per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dynamic {
    /// A fresh Zipf draw.
    Zipf,
    /// The request sequence number.
    Seq,
    /// The request's place in its fan-out group.
    Leg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Vec<u8>),
    Dyn(Dynamic),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segs: Vec<Seg>,
}

/// Template errors, reported with the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// Per-request inputs for rendering.
pub struct RenderCtx<'a> {
    /// The request's sequence number.
    pub seq: u64,
    /// The request's place in its fan-out group (0 without fan-out).
    pub leg: u64,
    /// The worker's generator.
    pub rng: &'a mut SplitMix64,
    /// The scenario's Zipf sampler, if it has one.
    pub zipf: Option<&'a Zipf>,
}

/// Whether `name` is a valid variable name.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names that cannot be set as variables.
pub const RESERVED: [&str; 3] = ["zipf", "seq", "leg"];

impl Template {
    /// Compiles `src`, substituting `vars`. `zipf_enabled` says whether `${zipf}` is allowed.
    pub fn compile(
        src: &str,
        vars: &BTreeMap<String, String>,
        zipf_enabled: bool,
    ) -> Result<Template, TemplateError> {
        let mut segs = Vec::new();
        let mut lit = Vec::new();
        let bytes = src.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'$' && bytes.get(i + 1) == Some(&b'$') {
                lit.push(b'$');
                i += 2;
            } else if b == b'$' && bytes.get(i + 1) == Some(&b'{') {
                let rest = &src[i + 2..];
                let close = rest.find('}').ok_or_else(|| {
                    TemplateError(format!("unterminated `${{` at byte {i} in `{src}`"))
                })?;
                let name = &rest[..close];
                if !is_valid_name(name) {
                    return Err(TemplateError(format!(
                        "invalid variable name `{name}` in `{src}`"
                    )));
                }
                match name {
                    "zipf" if !zipf_enabled => {
                        return Err(TemplateError(
                            "`${zipf}` is used but the scenario has no `zipf:` block".into(),
                        ));
                    }
                    "zipf" | "seq" | "leg" => {
                        if !lit.is_empty() {
                            segs.push(Seg::Lit(std::mem::take(&mut lit)));
                        }
                        segs.push(Seg::Dyn(match name {
                            "zipf" => Dynamic::Zipf,
                            "seq" => Dynamic::Seq,
                            _ => Dynamic::Leg,
                        }));
                    }
                    _ => {
                        let v = vars.get(name).ok_or_else(|| {
                            TemplateError(format!(
                                "variable `{name}` is not defined (add it under `vars:` or pass \
                                 --var {name}=VALUE)"
                            ))
                        })?;
                        lit.extend_from_slice(v.as_bytes());
                    }
                }
                i += 2 + close + 1;
            } else {
                lit.push(b);
                i += 1;
            }
        }
        if !lit.is_empty() || segs.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Ok(Template { segs })
    }

    /// The fixed rendering, when the template has no per-request placeholder.
    pub fn as_static(&self) -> Option<&[u8]> {
        match self.segs.as_slice() {
            [Seg::Lit(l)] => Some(l),
            _ => None,
        }
    }

    /// Whether a per-request placeholder of kind `d` occurs.
    pub fn uses(&self, d: Dynamic) -> bool {
        self.segs.contains(&Seg::Dyn(d))
    }

    /// Appends one rendering to `out`.
    pub fn render(&self, ctx: &mut RenderCtx<'_>, out: &mut Vec<u8>) {
        for seg in &self.segs {
            match seg {
                Seg::Lit(l) => out.extend_from_slice(l),
                Seg::Dyn(Dynamic::Seq) => push_u64(out, ctx.seq),
                Seg::Dyn(Dynamic::Leg) => push_u64(out, ctx.leg),
                Seg::Dyn(Dynamic::Zipf) => {
                    // `compile` refuses `${zipf}` without a sampler; 0 is a harmless fallback.
                    let v = ctx.zipf.map_or(0, |z| z.sample(ctx.rng));
                    push_u64(out, v);
                }
            }
        }
    }

    /// Renders to a fresh buffer.
    pub fn render_vec(&self, ctx: &mut RenderCtx<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        self.render(ctx, &mut out);
        out
    }
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn render(t: &Template, seq: u64, zipf: Option<&Zipf>) -> String {
        let mut rng = SplitMix64::new(1, 2);
        let mut ctx = RenderCtx {
            leg: 0,
            seq,
            rng: &mut rng,
            zipf,
        };
        String::from_utf8(t.render_vec(&mut ctx)).unwrap()
    }

    #[test]
    fn static_substitution_and_literal_dollars() {
        let v = vars(&[("ns", "bench"), ("k", "x")]);
        let t = Template::compile("/v2/namespaces/${ns}/query", &v, false).unwrap();
        assert_eq!(t.as_static(), Some(&b"/v2/namespaces/bench/query"[..]));
        let t =
            Template::compile(r#"{"rank_by":["$dist","asc"],"p":"$$${k}$$"}"#, &v, false).unwrap();
        assert_eq!(
            t.as_static()
                .map(|b| String::from_utf8(b.to_vec()).unwrap()),
            Some(r#"{"rank_by":["$dist","asc"],"p":"$x$"}"#.to_string())
        );
        let t = Template::compile("", &v, false).unwrap();
        assert_eq!(t.as_static(), Some(&b""[..]));
        let t = Template::compile("trailing $", &v, false).unwrap();
        assert_eq!(t.as_static(), Some(&b"trailing $"[..]));
    }

    #[test]
    fn dynamic_placeholders() {
        let v = vars(&[("ns", "n1")]);
        let t = Template::compile("/x/${ns}/${seq}/${seq}", &v, false).unwrap();
        assert!(t.as_static().is_none());
        assert!(t.uses(Dynamic::Seq));
        assert!(!t.uses(Dynamic::Zipf));
        assert_eq!(render(&t, 0, None), "/x/n1/0/0");
        assert_eq!(render(&t, 18_446_744_073_709_551_615, None), {
            "/x/n1/18446744073709551615/18446744073709551615"
        });
        let z = Zipf::new(1000, 1.0, 100).unwrap();
        let t = Template::compile(r#"["id","In",[${zipf},${zipf},${zipf}]]"#, &v, true).unwrap();
        let s = render(&t, 5, Some(&z));
        let inner = s
            .trim_start_matches(r#"["id","In",["#)
            .trim_end_matches("]]");
        let ids: Vec<u64> = inner.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|id| (100..1100).contains(id)), "{ids:?}");
    }

    #[test]
    fn errors_are_caught_at_compile_time() {
        let v = vars(&[]);
        let e = Template::compile("/${ns}", &v, false).unwrap_err();
        assert!(e.0.contains("--var ns=VALUE"), "{e}");
        let e = Template::compile("${zipf}", &v, false).unwrap_err();
        assert!(e.0.contains("no `zipf:` block"), "{e}");
        assert!(Template::compile("${unterminated", &v, false).is_err());
        assert!(Template::compile("${bad-name}", &v, false).is_err());
        assert!(Template::compile("${}", &v, false).is_err());
        assert!(Template::compile("${9x}", &v, false).is_err());
    }

    #[test]
    fn names() {
        assert!(is_valid_name("ns"));
        assert!(is_valid_name("_a1"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("1a"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name("ä"));
    }
}

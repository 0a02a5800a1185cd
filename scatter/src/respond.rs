//! Response finishing for Layer queries: the `hybrid` / `routing` echo blocks, the guaranteed
//! `rows` member, unwrapping a fused expansion into the single-query shape, and the deferral
//! body.
//!
//! - [`ensure_rows`] — hevlayer's `QueryResponse.rows` is required; upstream omits it on
//!   aggregation-only queries. Adds `"rows":[]` as the first member when absent; otherwise the
//!   body is returned byte-for-byte, borrowed (no copy of the answer).
//! - [`finish_response`] — what the gateway calls on every successful query response (after the
//!   gather, on sharded namespaces). For [`UpstreamShape::Single`] it is [`ensure_rows`] plus
//!   the echo blocks appended as the last members; for [`UpstreamShape::Expansion`] the fused
//!   `{"results":[{"rows":[...]}],"billing":..,"performance":..}` becomes
//!   `{"rows":[...],"billing":..,"performance":..,"hybrid":..,"routing":..}` (the entry's and
//!   the root's members copied verbatim); [`UpstreamShape::MultiQuery`] bodies are returned
//!   unchanged (native multi-query responses stay upstream-shaped). An unchanged body comes back
//!   borrowed, so the gateway relays the upstream buffer it already holds.
//! - [`deferral_body`] — `{"rows":[],"routing":{...,"executed":false}}`.

use std::borrow::Cow;

use sonic_rs::to_object_iter;

use crate::QueryError;
use crate::shard::json_string;
use crate::splice::raw_trimmed;

/// The `fuzziness` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fuzziness {
    /// 1 for tokens of at most 5 characters, 2 for longer ones.
    Auto,
    /// 0, 1 or 2 for every token.
    Fixed(u8),
}

/// The `hybrid` echo block (hevlayer `HybridEcho`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridEcho {
    /// Tokens that produced fuzzy legs.
    pub tokens: Vec<String>,
    /// Tokens cut by the cap.
    pub tokens_dropped: usize,
    /// The requested fuzziness.
    pub fuzziness: Fuzziness,
    /// The RRF constant.
    pub rank_constant: u64,
    /// Sub-queries sent upstream per fused query (fuzzy legs + BM25 leg, + ANN leg when fused).
    pub legs: usize,
    /// Depth of each leg.
    pub per_leg_limit: u64,
    /// Fan-out width, only on sharded namespaces.
    pub threads: Option<u32>,
}

/// A route of the `Auto` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The hybrid text expansion.
    HybridText,
    /// ANN over the supplied vector.
    Semantic,
    /// Hybrid text legs plus one ANN leg, fused by RRF.
    Fused,
}

impl Route {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HybridText => "hybrid_text",
            Self::Semantic => "semantic",
            Self::Fused => "fused",
        }
    }

    /// Whether executing the route needs a query vector.
    #[must_use]
    pub fn needs_vector(self) -> bool {
        !matches!(self, Self::HybridText)
    }
}

/// The `routing` echo block (hevlayer `RoutingEcho`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingEcho {
    /// The chosen or forced route.
    pub route: Route,
    /// `"v1"`, or `"forced"` when the caller supplied `route`.
    pub policy: &'static str,
    /// Token count the policy read (post tokenizer policy, cap 15).
    pub tokens: usize,
    /// `false` on a deferral.
    pub executed: bool,
}

/// Echo blocks to add to a response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Echo {
    /// `hybrid`, on HybridText responses and Auto responses that ran hybrid legs.
    pub hybrid: Option<HybridEcho>,
    /// `routing`, on every Auto response.
    pub routing: Option<RoutingEcho>,
}

impl HybridEcho {
    /// The block as JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        let tokens: Vec<String> = self.tokens.iter().map(|t| json_string(t)).collect();
        let fuzziness = match self.fuzziness {
            Fuzziness::Auto => "\"auto\"".to_owned(),
            Fuzziness::Fixed(d) => d.to_string(),
        };
        let mut s = format!(
            "{{\"tokens\":[{}],\"tokens_dropped\":{},\"fuzziness\":{fuzziness},\"rank_constant\":{},\"legs\":{},\"per_leg_limit\":{}",
            tokens.join(","),
            self.tokens_dropped,
            self.rank_constant,
            self.legs,
            self.per_leg_limit
        );
        if let Some(t) = self.threads {
            s.push_str(&format!(",\"threads\":{t}"));
        }
        s.push('}');
        s
    }
}

impl RoutingEcho {
    /// The block as JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        format!(
            "{{\"route\":\"{}\",\"policy\":\"{}\",\"tokens\":{},\"executed\":{}}}",
            self.route.as_str(),
            self.policy,
            self.tokens,
            self.executed
        )
    }
}

/// What an upstream (or merged) response looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamShape {
    /// A single query: `{"rows":...}`.
    Single,
    /// A Layer expansion (HybridText / Auto hybrid_text / fused): a fused multi-query whose
    /// `results` holds one entry. A merged (sharded) response is already single-shaped.
    Expansion,
    /// A native multi-query: returned as upstream sent it.
    MultiQuery,
}

/// Adds `"rows":[]` when the top-level object has no `rows`; otherwise returns `body` as is.
///
/// # Errors
/// 502 when the body is not a JSON object.
pub fn ensure_rows(body: &[u8]) -> Result<Cow<'_, [u8]>, QueryError> {
    let (has_rows, empty) = scan(body)?;
    if has_rows {
        return Ok(Cow::Borrowed(body));
    }
    let open = body
        .iter()
        .position(|&b| b == b'{')
        .ok_or_else(|| QueryError::upstream("response is not a JSON object"))?;
    let mut out = Vec::with_capacity(body.len() + 10);
    out.extend_from_slice(body.get(..=open).unwrap_or_default());
    out.extend_from_slice(if empty {
        b"\"rows\":[]"
    } else {
        b"\"rows\":[],"
    });
    out.extend_from_slice(body.get(open + 1..).unwrap_or_default());
    Ok(Cow::Owned(out))
}

/// Whether the top-level object has `rows`, and whether it is empty.
fn scan(body: &[u8]) -> Result<(bool, bool), QueryError> {
    let mut empty = true;
    let mut has_rows = false;
    if body.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return Err(QueryError::upstream("response is not a JSON object"));
    }
    // Keys lent from the text (`to_object_iter` would copy each into a `String`).
    let members = crate::validate::members(body)
        .map_err(|_| QueryError::upstream("response is not valid JSON"))?;
    for (key, _) in &members {
        empty = false;
        if key == "rows" {
            has_rows = true;
        }
    }
    Ok((has_rows, empty))
}

/// Finishes a successful response for the caller (see the module docs).
///
/// # Errors
/// 502 when the body is not a JSON object, or an expansion response has no single result.
pub fn finish_response<'a>(
    body: &'a [u8],
    shape: UpstreamShape,
    echo: &Echo,
) -> Result<Cow<'a, [u8]>, QueryError> {
    let single = match shape {
        UpstreamShape::MultiQuery => return Ok(Cow::Borrowed(body)),
        UpstreamShape::Single => ensure_rows(body)?,
        UpstreamShape::Expansion => unwrap_fused(body)?,
    };
    if echo.hybrid.is_none() && echo.routing.is_none() {
        return Ok(single);
    }
    let close = single
        .iter()
        .rposition(|&b| b == b'}')
        .ok_or_else(|| QueryError::upstream("response is not a JSON object"))?;
    let mut out = Vec::with_capacity(single.len() + 256);
    out.extend_from_slice(single.get(..close).unwrap_or_default());
    // `single` always has `rows` by now, so a comma is always needed.
    if let Some(h) = &echo.hybrid {
        out.extend_from_slice(b",\"hybrid\":");
        out.extend_from_slice(h.to_json().as_bytes());
    }
    if let Some(r) = &echo.routing {
        out.extend_from_slice(b",\"routing\":");
        out.extend_from_slice(r.to_json().as_bytes());
    }
    out.extend_from_slice(single.get(close..).unwrap_or_default());
    Ok(Cow::Owned(out))
}

/// `{"results":[E],"billing":B,...}` → `{<members of E>,"billing":B,...}` with `rows` ensured;
/// an already single-shaped (merged) body just gets `rows` ensured.
fn unwrap_fused(body: &[u8]) -> Result<Cow<'_, [u8]>, QueryError> {
    let mut results = None;
    let mut rest: Vec<(String, String)> = Vec::new();
    for item in to_object_iter(body) {
        let (key, value) = item.map_err(|_| QueryError::upstream("response is not valid JSON"))?;
        if key == "results" {
            results = Some(value);
        } else {
            rest.push((key.into_owned(), raw_trimmed(&value).to_owned()));
        }
    }
    let Some(results) = results else {
        return ensure_rows(body);
    };
    let mut entries = results
        .into_array_iter()
        .ok_or_else(|| QueryError::upstream("`results` is not an array"))?;
    let entry = match (entries.next(), entries.next()) {
        (Some(Ok(e)), None) => e,
        _ => {
            return Err(QueryError::upstream(
                "a fused response must have exactly one result",
            ));
        }
    };
    let mut out = Vec::with_capacity(body.len());
    out.push(b'{');
    let mut has_rows = false;
    let mut first = true;
    let fields = entry
        .into_object_iter()
        .ok_or_else(|| QueryError::upstream("a result is not an object"))?;
    for item in fields {
        let (key, value) = item.map_err(|_| QueryError::upstream("result is not valid JSON"))?;
        has_rows |= key == "rows";
        push_member(&mut out, &mut first, &key, raw_trimmed(&value));
    }
    if !has_rows {
        push_member(&mut out, &mut first, "rows", "[]");
    }
    for (key, value) in &rest {
        push_member(&mut out, &mut first, key, value);
    }
    out.push(b'}');
    Ok(Cow::Owned(out))
}

fn push_member(out: &mut Vec<u8>, first: &mut bool, key: &str, raw: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.extend_from_slice(json_string(key).as_bytes());
    out.push(b':');
    out.extend_from_slice(raw.as_bytes());
}

/// The response to a deferred `Auto` query: `{"rows":[],"routing":{...}}`.
#[must_use]
pub fn deferral_body(routing: &RoutingEcho) -> Vec<u8> {
    format!("{{\"rows\":[],\"routing\":{}}}", routing.to_json()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: Cow<'_, [u8]>) -> String {
        String::from_utf8(b.into_owned()).unwrap()
    }

    #[test]
    fn ensure_rows_adds_only_when_missing() {
        assert_eq!(
            s(ensure_rows(br#"{"aggregations":{"n":3}}"#).unwrap()),
            r#"{"rows":[],"aggregations":{"n":3}}"#
        );
        assert_eq!(s(ensure_rows(b" { } ").unwrap()), r#" {"rows":[] } "#);
        let body = br#"{"rows":[{"id":1}],"billing":{}}"#;
        // Unchanged: the same bytes, borrowed rather than copied.
        assert!(matches!(ensure_rows(body).unwrap(), Cow::Borrowed(b) if b == body));
        assert!(ensure_rows(b"[1]").is_err());
        assert!(ensure_rows(b"{\"a\":").is_err());
    }

    #[test]
    fn expansion_is_unwrapped_with_echo() {
        let echo = Echo {
            hybrid: Some(HybridEcho {
                tokens: vec!["timout".into()],
                tokens_dropped: 0,
                fuzziness: Fuzziness::Auto,
                rank_constant: 60,
                legs: 2,
                per_leg_limit: 50,
                threads: None,
            }),
            routing: Some(RoutingEcho {
                route: Route::HybridText,
                policy: "v1",
                tokens: 1,
                executed: true,
            }),
        };
        let up = br#"{"results":[{"rows":[{"id":"t-1","$score":0.0164}]}],"billing":{"b":1},"performance":{"p":2}}"#;
        assert_eq!(
            s(finish_response(up, UpstreamShape::Expansion, &echo).unwrap()),
            r#"{"rows":[{"id":"t-1","$score":0.0164}],"billing":{"b":1},"performance":{"p":2},"hybrid":{"tokens":["timout"],"tokens_dropped":0,"fuzziness":"auto","rank_constant":60,"legs":2,"per_leg_limit":50},"routing":{"route":"hybrid_text","policy":"v1","tokens":1,"executed":true}}"#
        );
        // A merged (already single-shaped) body works too.
        let merged = br#"{"rows":[],"billing":{}}"#;
        let out = s(finish_response(merged, UpstreamShape::Expansion, &echo).unwrap());
        assert!(out.starts_with(r#"{"rows":[],"billing":{},"hybrid":"#));
        assert!(
            finish_response(br#"{"results":[{},{}]}"#, UpstreamShape::Expansion, &echo).is_err()
        );
    }

    #[test]
    fn single_and_multi_shapes() {
        let body = br#"{"rows":[{"id":1}]}"#;
        assert_eq!(
            finish_response(body, UpstreamShape::Single, &Echo::default()).unwrap(),
            body.to_vec()
        );
        let multi = br#"{"results":[{"rows":[]},{"rows":[]}]}"#;
        assert_eq!(
            finish_response(multi, UpstreamShape::MultiQuery, &Echo::default()).unwrap(),
            multi.to_vec()
        );
        let r = RoutingEcho {
            route: Route::Semantic,
            policy: "v1",
            tokens: 8,
            executed: false,
        };
        assert_eq!(
            s(Cow::Owned(deferral_body(&r))),
            r#"{"rows":[],"routing":{"route":"semantic","policy":"v1","tokens":8,"executed":false}}"#
        );
    }

    /// Upstream bytes that are not UTF-8 are a 502 here (sonic-rs's object iterator checks
    /// keys; its serde path did not, which the `merge` fuzz target found in the gather).
    #[test]
    fn responses_that_are_not_utf8_are_502() {
        let bad = b"{\"rows\":[],\"billi\xeeg\":{}}".as_slice();
        assert_eq!(ensure_rows(bad).unwrap_err().status_code(), 502);
        for shape in [UpstreamShape::Single, UpstreamShape::Expansion] {
            let e = finish_response(bad, shape, &Echo::default()).unwrap_err();
            assert_eq!(e.status_code(), 502, "{shape:?}");
        }
        let fused = b"{\"results\":[{\"rows\":[{\"\xd7\":1}]}]}".as_slice();
        let e = finish_response(fused, UpstreamShape::Expansion, &Echo::default()).unwrap_err();
        assert_eq!(e.status_code(), 502);
    }
}

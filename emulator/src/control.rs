//! The `/_emu/...` control plane: indexer knobs, fault injection and the request log that lets
//! gateway tests assert the exact bytes that reached the upstream. Never under `/v1` or `/v2`.
//!
//! | route | body / query | effect |
//! |---|---|---|
//! | `POST /_emu/indexer` | `{"namespace"?, "paused": bool, "rows_per_sec"?}` | pause/resume/throttle indexing |
//! | `POST /_emu/indexer/flush` | `{"namespace"?}` | index everything now |
//! | `POST /_emu/ns/{ns}/index/step` | `{"rows"?}` (default 1) | index that many rows now |
//! | `GET /_emu/ns/{ns}/wal` | | unindexed WAL entries |
//! | `POST /_emu/faults` | `{"rules":[FaultRule...]}` | append fault rules |
//! | `DELETE /_emu/faults` | | clear all rules |
//! | `POST /_emu/faults/release` | | answer every request a `hold_until_released` rule holds |
//! | `GET /_emu/requests?limit=N` | | the last N logged requests, oldest first |
//! | `DELETE /_emu/requests` | | clear the log |
//! | `GET/POST /_emu/config` | partial [`Knobs`] | read / change simulation knobs |
//! | `DELETE /_emu/namespaces` | | drop every namespace |

use std::collections::{BTreeMap, VecDeque};

use http::HeaderMap;
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, parse_body};
use crate::routes::Reply;
use crate::store::{Knobs, Store};

/// One fault-injection rule.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Route name: `write`, `query`, `metadata`, `update_metadata`, `list`, `schema`,
    /// `update_schema`, `delete`, `hint_cache_warm`, `recall`, `explain`, `operation`,
    /// `copy_async`, or `*` for any.
    pub route: String,
    pub namespace: Option<String>,
    pub method: Option<String>,
    /// Request headers the rule needs: it fires only on a request carrying each of them with
    /// exactly this value (names are case-insensitive; a repeated header matches if any of its
    /// values does). A test that sends a header of its own (`x-test-fault: <token>`) aims a rule
    /// at its requests alone, when other clients hit the same route and namespace (a gateway's
    /// metadata polls and write read-backs).
    pub match_headers: Option<BTreeMap<String, String>>,
    /// Status to answer with. Without one the rule only delays the request.
    pub status: Option<u16>,
    /// Fire this many times, then disappear (sticky when absent).
    pub count: Option<u64>,
    /// Fire with this probability (every time when absent).
    pub probability: Option<f64>,
    pub delay_ms: Option<u64>,
    /// Holds the answer this long after the request was executed (a response in flight while
    /// other requests run: the answer reflects the data as it was before them). Ignored with
    /// `status`.
    pub hold_ms: Option<u64>,
    /// Holds the answer after the request was executed until `POST /_emu/faults/release` (or
    /// 60 s): a test then decides when the answer leaves, instead of guessing a duration.
    /// Ignored with `status`.
    pub hold_until_released: Option<bool>,
    /// Response body (JSON); defaults to an error envelope naming the fault.
    pub body: Option<Value>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// What a matching rule does to a request.
pub struct FaultAction {
    pub delay_ms: u64,
    pub hold_ms: u64,
    /// Set for a `hold_until_released` rule: resolves at the next release after the match.
    pub gate: Option<tokio::sync::watch::Receiver<u64>>,
    pub respond: Option<(u16, Value, BTreeMap<String, String>)>,
}

/// A logged upstream request.
#[derive(Clone, Debug, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    /// The body after gzip decoding, as text (lossy for invalid UTF-8).
    pub body: String,
    pub content_encoding: Option<String>,
}

const LOG_CAPACITY: usize = 10_000;

/// Fault rules and the request log.
pub struct Control {
    faults: Mutex<Vec<FaultRule>>,
    log: Mutex<VecDeque<LoggedRequest>>,
    /// Counts `POST /_emu/faults/release` calls; held requests wait for it to change.
    releases: tokio::sync::watch::Sender<u64>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            faults: Mutex::default(),
            log: Mutex::default(),
            releases: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Control {
    /// Records a request.
    pub fn record(&self, req: LoggedRequest) {
        let mut log = self.log.lock();
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(req);
    }

    /// Finds the first rule matching this request, consuming one use of a counted rule.
    pub fn fault_for(
        &self,
        route: &str,
        namespace: Option<&str>,
        method: &str,
        headers: &HeaderMap,
    ) -> Option<FaultAction> {
        let mut rules = self.faults.lock();
        let idx = rules.iter().position(|r| {
            (r.route == route || r.route == "*")
                && r.namespace.as_deref().is_none_or(|n| Some(n) == namespace)
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && r.match_headers
                    .as_ref()
                    .is_none_or(|want| carries(headers, want))
                && r.probability
                    .is_none_or(|p| rand::rng().random::<f64>() < p)
        })?;
        let rule = rules[idx].clone();
        if let Some(n) = rules[idx].count.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rules.remove(idx);
            }
        }
        let respond = rule.status.map(|s| {
            let body = rule.body.clone().unwrap_or_else(
                || json!({"status": "error", "error": format!("injected fault ({s})")}),
            );
            (s, body, rule.headers.clone().unwrap_or_default())
        });
        Some(FaultAction {
            delay_ms: rule.delay_ms.unwrap_or(0),
            hold_ms: rule.hold_ms.unwrap_or(0),
            gate: (rule.hold_until_released == Some(true)).then(|| self.releases.subscribe()),
            respond,
        })
    }

    /// Serves a `/_emu/...` route.
    pub fn handle(
        &self,
        store: &Store,
        method: &str,
        segs: &[&str],
        query: &str,
        body: &[u8],
    ) -> ApiResult<Reply> {
        match (method, segs) {
            ("POST", ["indexer"]) => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Req {
                    namespace: Option<String>,
                    paused: bool,
                    rows_per_sec: Option<u64>,
                }
                let r: Req = parse_body(body)?;
                store.set_indexer(r.namespace.as_deref(), r.paused, r.rows_per_sec)?;
                Ok(Reply::ok(json!({"status": "OK"})))
            }
            ("POST", ["indexer", "flush"]) => {
                #[derive(Deserialize, Default)]
                #[serde(deny_unknown_fields)]
                struct Req {
                    namespace: Option<String>,
                }
                let r: Req = if body.is_empty() {
                    Req::default()
                } else {
                    parse_body(body)?
                };
                store.flush(r.namespace.as_deref())?;
                Ok(Reply::ok(json!({"status": "OK"})))
            }
            ("POST", ["ns", ns, "index", "step"]) => {
                let rows = if body.is_empty() {
                    1
                } else {
                    parse_body::<Value>(body)?
                        .get("rows")
                        .and_then(Value::as_u64)
                        .unwrap_or(1)
                };
                let indexed = store.get(ns)?.state.write().index_step(rows);
                Ok(Reply::ok(json!({"indexed_rows": indexed})))
            }
            ("GET", ["ns", ns, "wal"]) => {
                let ns = store.get(ns)?;
                let st = ns.state.read();
                let entries: Vec<Value> = st
                    .wal
                    .iter()
                    .map(|e| json!({"bytes": e.bytes, "rows": e.rows}))
                    .collect();
                Ok(Reply::ok(
                    json!({"unindexed_rows": st.unindexed_rows, "unindexed_bytes": st.unindexed_bytes, "entries": entries}),
                ))
            }
            ("POST", ["faults"]) => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Req {
                    rules: Vec<FaultRule>,
                }
                let r: Req = parse_body(body)?;
                let mut faults = self.faults.lock();
                faults.extend(r.rules);
                Ok(Reply::ok(json!({"status": "OK", "rules": faults.len()})))
            }
            ("POST", ["faults", "release"]) => {
                self.releases.send_modify(|n| *n += 1);
                Ok(Reply::ok(json!({"status": "OK"})))
            }
            ("GET", ["faults"]) => Ok(Reply::ok(json!({"rules": *self.faults.lock()}))),
            ("DELETE", ["faults"]) => {
                self.faults.lock().clear();
                Ok(Reply::ok(json!({"status": "OK"})))
            }
            ("GET", ["requests"]) => {
                let limit = query_param(query, "limit")
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(100);
                let log = self.log.lock();
                let skip = log.len().saturating_sub(limit);
                let list: Vec<&LoggedRequest> = log.iter().skip(skip).collect();
                Ok(Reply::ok(json!({"requests": list})))
            }
            ("DELETE", ["requests"]) => {
                self.log.lock().clear();
                Ok(Reply::ok(json!({"status": "OK"})))
            }
            ("GET", ["config"]) => Ok(Reply::ok(
                serde_json::to_value(&*store.knobs.read()).unwrap_or(Value::Null),
            )),
            ("POST", ["config"]) => {
                let mut current = serde_json::to_value(&*store.knobs.read()).unwrap_or(Value::Null);
                let patch: serde_json::Map<String, Value> = parse_body(body)?;
                for (k, v) in patch {
                    current[k] = v;
                }
                let knobs: Knobs =
                    serde_json::from_value(current).map_err(ApiError::deserialize)?;
                let old_permits = store.knobs.read().query_permits;
                store.resize_permits(old_permits, knobs.query_permits);
                *store.knobs.write() = knobs.clone();
                Ok(Reply::ok(
                    serde_json::to_value(knobs).unwrap_or(Value::Null),
                ))
            }
            ("DELETE", ["namespaces"]) => {
                store.reset();
                Ok(Reply::ok(json!({"status": "OK"})))
            }
            _ => Err(ApiError::NotFound(format!(
                "🤷 no control route {method} /_emu/{}",
                segs.join("/")
            ))),
        }
    }
}

/// Whether `headers` carry every `name: value` of `want` (names case-insensitive, values exact).
fn carries(headers: &HeaderMap, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(name, value)| {
        headers
            .get_all(name.to_ascii_lowercase().as_str())
            .iter()
            .any(|v| v.as_bytes() == value.as_bytes())
    })
}

/// Reads one query-string parameter (no percent-decoding needed for the values used here).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn add(control: &Control, rule: Value) {
        let body = json!({ "rules": [rule] }).to_string();
        let store = Store::new(None, None, Vec::new()).unwrap();
        control
            .handle(&store, "POST", &["faults"], "", body.as_bytes())
            .unwrap();
    }

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for &(k, v) in pairs {
            h.append(k, HeaderValue::from_static(v));
        }
        h
    }

    /// A rule with `match_headers` skips requests without the header (or with another value),
    /// so a gateway's own requests on the same route and namespace cannot consume it.
    #[test]
    fn a_rule_with_match_headers_fires_only_on_requests_carrying_them() {
        let control = Control::default();
        add(
            &control,
            json!({"route": "query", "namespace": "ns", "status": 503, "count": 1,
                   "match_headers": {"X-Test-Fault": "t1"}}),
        );
        let fired = |h: &HeaderMap| {
            control
                .fault_for("query", Some("ns"), "POST", h)
                .and_then(|a| a.respond)
                .map(|(status, _, _)| status)
        };
        assert_eq!(
            fired(&HeaderMap::new()),
            None,
            "a request without the header"
        );
        assert_eq!(
            fired(&with(&[("x-test-fault", "t2")])),
            None,
            "another token"
        );
        assert_eq!(
            fired(&with(&[("x-test-fault", "t2"), ("x-test-fault", "t1")])),
            Some(503),
            "one of a repeated header's values"
        );
        assert_eq!(
            fired(&with(&[("x-test-fault", "t1")])),
            None,
            "count 1 is used up"
        );
        // Without match_headers a rule matches whatever the headers are.
        add(
            &control,
            json!({"route": "query", "status": 500, "count": 1}),
        );
        assert_eq!(fired(&HeaderMap::new()), Some(500));
    }
}

//! The OpenAI-compatible provider: plans and grades through `POST {baseUrl}/chat/completions`
//! (OpenAI, OpenRouter, or any server speaking that wire), over the gateway's own upstream
//! client ([`Upstream`]: hyper with rustls, the model key as bearer, `layer_upstream_*`
//! metrics under route `agent_model`).
//!
//! Both calls send `temperature: 0` and `response_format: {"type": "json_object"}`, a system
//! prompt stating the JSON wanted, and one user message holding the input as JSON. The
//! assistant's `content` is parsed as JSON (a fenced ```json block is unwrapped). A planner
//! answer that does not parse, or plans nothing usable, falls back to the built-in plan; a
//! scorer answer that does not parse falls back to fused rank; both say so in the trace.
//! `usage.prompt_tokens` / `completion_tokens` are reported as [`Usage`].

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::provider::{
    Candidate, PlanInput, Planned, PlannedQuery, Provider, Scored, Usage, builtin_plan, layer_query,
};
use crate::core::config::AgentRankBy;
use crate::core::upstream::Upstream;

const PLANNER_PROMPT: &str = "You are the query planner of a retrieval agent. Turn the user's question into search queries over the listed indexes. Answer with one JSON object: {\"queries\": [{\"namespaces\": [index names], \"text\": \"search text\", \"rank_by\": \"auto\" | \"hybridText\" | \"semantic\", \"filters\": optional Turbopuffer filter array}]}. Use only the listed indexes. When `previous` is given, the first attempt found too little: plan different queries.";

const SCORER_PROMPT: &str = "You grade search results for a retrieval agent. For each candidate, in order, give its relevance to the question from 0 (unrelated) to 1 (answers it). Answer with one JSON object: {\"relevance\": [numbers, one per candidate, in order]}.";

/// A chat-completions client for one agent.
pub struct ChatModel {
    upstream: Upstream,
    model: String,
}

impl ChatModel {
    pub fn new(upstream: Upstream, model: String) -> ChatModel {
        ChatModel { upstream, model }
    }

    /// One chat completion: the assistant's content parsed as JSON (`None` when it is not) and
    /// the tokens used.
    async fn complete(&self, system: &str, user: Value) -> Result<(Option<Value>, Usage), String> {
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user.to_string()},
            ],
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let up = self
            .upstream
            .send(
                "agent_model",
                Method::POST,
                "/chat/completions",
                &headers,
                Bytes::from(body.to_string()),
            )
            .await
            .map_err(|e| format!("model unreachable: {e}"))?;
        let answer: Value = serde_json::from_slice(&up.body).unwrap_or(Value::Null);
        if !up.status.is_success() {
            let why = answer
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(&up.body)
                        .chars()
                        .take(300)
                        .collect()
                });
            return Err(format!("model answered {}: {why}", up.status.as_u16()));
        }
        let count = |k: &str| {
            answer
                .pointer(&format!("/usage/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let usage = Usage {
            prompt: count("prompt_tokens"),
            completion: count("completion_tokens"),
        };
        let content = answer
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok((parse_content(content), usage))
    }
}

/// The JSON in an assistant message: the whole text, or a fenced block inside it.
fn parse_content(content: &str) -> Option<Value> {
    let t = content.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let start = t.find('{')?;
    let end = t.rfind('}')?;
    serde_json::from_str(t.get(start..=end)?).ok()
}

impl Provider for ChatModel {
    fn name(&self) -> &'static str {
        "chat-completions"
    }

    fn plan<'a>(&'a self, input: PlanInput<'a>) -> BoxFuture<'a, Result<Planned, String>> {
        Box::pin(async move {
            let a = input.agent;
            let mut user = json!({
                "question": input.question,
                "turn": input.turn,
                "indexes": a.indices,
                "max_queries": a.retrieval.fanout,
            });
            if let Some((queries, found)) = input.previous {
                user["previous"] = json!({
                    "queries": queries.iter().map(|q| q.echo(1)).collect::<Vec<_>>(),
                    "found": found.iter().take(10).map(|c| json!({
                        "namespace": c.namespace, "id": c.id, "relevance": c.relevance, "text": c.text,
                    })).collect::<Vec<_>>(),
                });
            }
            let (content, usage) = self.complete(PLANNER_PROMPT, user).await?;
            let queries = content
                .as_ref()
                .map(|c| queries_of(c, &input))
                .unwrap_or_default();
            if queries.is_empty() {
                return Ok(Planned {
                    queries: builtin_plan(&input),
                    usage,
                    note: "model plan unusable: builtin plan".into(),
                });
            }
            Ok(Planned {
                note: format!("model planned {} queries", queries.len()),
                queries,
                usage,
            })
        })
    }

    fn score<'a>(
        &'a self,
        question: &'a str,
        candidates: &'a [Candidate],
    ) -> BoxFuture<'a, Result<Scored, String>> {
        Box::pin(async move {
            let user = json!({
                "question": question,
                "candidates": candidates.iter().map(|c| json!({
                    "namespace": c.namespace, "id": c.id, "text": c.text,
                })).collect::<Vec<_>>(),
            });
            let (content, usage) = self.complete(SCORER_PROMPT, user).await?;
            let relevance = content
                .as_ref()
                .and_then(|c| c.get("relevance"))
                .and_then(Value::as_array)
                .map(|scores| {
                    (0..candidates.len())
                        .map(|i| {
                            scores
                                .get(i)
                                .and_then(Value::as_f64)
                                .unwrap_or(0.0)
                                .clamp(0.0, 1.0)
                        })
                        .collect::<Vec<_>>()
                });
            let note = if relevance.is_some() {
                "model graded the candidates".to_string()
            } else {
                "model grades unusable: fused rank".to_string()
            };
            Ok(Scored {
                relevance,
                usage,
                note,
            })
        })
    }
}

/// The usable queries of a model's plan: namespaces limited to the agent's (none or none
/// usable: all of them), a non-empty text, at most `fanout` queries.
fn queries_of(plan: &Value, input: &PlanInput<'_>) -> Vec<PlannedQuery> {
    let a = input.agent;
    let Some(items) = plan.get("queries").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for q in items.iter().take(a.retrieval.fanout as usize) {
        let Some(text) = q
            .get("text")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
        else {
            continue;
        };
        let mut namespaces: Vec<String> = q
            .get("namespaces")
            .and_then(Value::as_array)
            .map(|ns| {
                ns.iter()
                    .filter_map(Value::as_str)
                    .filter(|n| a.indices.iter().any(|i| i == n))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        namespaces.dedup();
        if namespaces.is_empty() {
            namespaces = a.indices.clone();
        }
        let rank_by = match q.get("rank_by").and_then(Value::as_str) {
            Some("hybridText") => AgentRankBy::HybridText,
            Some("semantic") => AgentRankBy::Semantic,
            Some("auto") => AgentRankBy::Auto,
            _ => a.retrieval.rank_by,
        };
        let mut body = layer_query(rank_by, &a.retrieval.text_field, text, input.vector);
        if let Some(f) = q.get("filters").filter(|f| f.is_array()) {
            body.insert("filters".into(), f.clone());
        }
        out.push(PlannedQuery { namespaces, body });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::AgentConfig;

    #[test]
    fn plans_keep_the_agent_s_indexes_and_fanout() {
        let mut a = AgentConfig {
            name: "a".into(),
            indices: vec!["x".into(), "y".into()],
            ..Default::default()
        };
        a.retrieval.fanout = 2;
        let input = PlanInput {
            agent: &a,
            question: "q",
            vector: None,
            turn: 1,
            previous: None,
        };
        let plan = json!({"queries": [
            {"namespaces": ["x", "secret"], "text": "one", "rank_by": "hybridText", "filters": ["k", "Eq", 1]},
            {"namespaces": ["secret"], "text": "two"},
            {"text": "three"},
        ]});
        let q = queries_of(&plan, &input);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].namespaces, ["x"]);
        assert_eq!(q[0].body["rank_by"], json!(["text", "HybridText", "one"]));
        assert_eq!(q[0].body["filters"], json!(["k", "Eq", 1]));
        assert_eq!(q[1].namespaces, ["x", "y"]);
        assert!(queries_of(&json!({"queries": [{"text": " "}]}), &input).is_empty());
        assert_eq!(
            parse_content("```json\n{\"a\": 1}\n```"),
            Some(json!({"a": 1}))
        );
        assert_eq!(parse_content("no"), None);
    }
}

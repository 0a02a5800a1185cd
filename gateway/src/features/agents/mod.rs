//! Agents: `POST /v2/agents/{name}/query` answers a question with the agent's indexes (the
//! `agents` of `layer.yaml`, the `Agent` CRD's spec; an unknown name is 404).
//!
//! Turn 1: the [`Provider`]'s planner turns the question into Layer queries over the agent's
//! indexes, every query runs on each of its namespaces as one federated query (the
//! [`Federation`] handle: RRF, `recallDepth` rows per leg and candidates), and the scorer grades
//! the candidates' relevance (`0..=1`). Turn 2 runs exactly when the best relevance is below
//! `retrieval.threshold`, the token budget (`budget.maxTokens`, when set) is not spent, and the
//! deadline (`budget.deadlineMs`) has not passed: the planner re-plans with turn 1's queries
//! and graded candidates. The answer is the turn with the better best relevance (turn 2 on a
//! tie), ordered by `relevanceWeight · relevance + (1 − relevanceWeight) · rrf / best rrf`, cut
//! to `top_k`, each row with `$relevance`, plus the `agent` echo (`turns`, `deadlineHit`,
//! `recallDepth`, `relevanceWeight`, `queries`, `trace`).
//!
//! Providers: [`provider::Builtin`] (the default: no model) and [`openai::ChatModel`] (any
//! OpenAI-compatible chat-completions endpoint). Model tokens are counted into
//! `hevlayer_agent_tokens_total{agent,turn,token_type}` as each call returns; requests into
//! `hevlayer_agent_queries_total{agent,status,deadline_hit}` and
//! `hevlayer_agent_query_duration_seconds{agent,status}`.

pub mod openai;
pub mod provider;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::core::config::{AgentConfig, AgentProvider, Config, ConfigError, OnDeadline, Scope};
use crate::core::error::GatewayError;
use crate::core::federation::{Federation, Fused, Fusion, Leg, leg_headers, require_read};
use crate::core::fields::{invalid_field, object, opt_uint};
use crate::core::http::{Resp, json_response};
use crate::core::labeled::{self, Kind, labels};
use crate::core::router::{Req, Route, handler};
use crate::core::upstream::Upstream;
use crate::core::{Core, ShardCtx};
use provider::{Builtin, Candidate, PlanInput, PlannedQuery, Provider, Usage, rank_relevance};

/// Most legs (query × namespace) one turn runs; a plan beyond it is cut (noted in the trace).
pub const MAX_LEGS: usize = 64;
/// RRF's `k` for an agent's federated queries.
pub const RANK_CONSTANT: u64 = 60;

const TOKENS: &str = "hevlayer_agent_tokens_total";
const QUERIES: &str = "hevlayer_agent_queries_total";
const DURATION: &str = "hevlayer_agent_query_duration_seconds";

/// The agents feature: each agent's provider, and the federation its turns run on.
pub struct Agents {
    core: Arc<Core>,
    federation: Arc<dyn Federation>,
    providers: HashMap<String, Arc<dyn Provider>>,
}

impl Agents {
    /// Builds every configured agent's provider (model clients are created here, connections on
    /// first use).
    pub fn new(
        core: Arc<Core>,
        federation: Arc<dyn Federation>,
    ) -> Result<Arc<Agents>, ConfigError> {
        labeled::describe(
            TOKENS,
            Kind::Counter,
            "Model tokens agents used, by agent, turn and token type (prompt, completion).",
        );
        labeled::describe(
            QUERIES,
            Kind::Counter,
            "Agent queries answered, by agent, status and whether the deadline was hit.",
        );
        labeled::describe(
            DURATION,
            Kind::Histogram,
            "Agent query latency, by agent and status.",
        );
        let providers = core
            .config
            .agents
            .iter()
            .map(|a| Ok((a.name.clone(), provider_for(&core.config, a)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Arc::new(Agents {
            core,
            federation,
            providers,
        }))
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![Route::new(
            Method::POST,
            "/v2/agents/{name}/query",
            "agent_query",
            Scope::Read,
            handler(self.clone(), Agents::serve),
        )]
    }

    async fn serve(self: Arc<Self>, ctx: Arc<ShardCtx>, req: Req) -> Result<Resp, GatewayError> {
        let name = req.decoded("name").into_owned();
        let core = self.core.clone();
        let Some(agent) = core.config.agents.iter().find(|a| a.name == name) else {
            return Err(GatewayError::Missing(format!("agent {name:?} not found")));
        };
        let provider = self
            .providers
            .get(&name)
            .cloned()
            .ok_or_else(|| GatewayError::Internal(format!("agent {name:?} has no provider")))?;
        require_read(&req.principal, &agent.indices)?;
        let ask = parse(&req.json_body(&ctx.core.limits)?)?;
        let headers = leg_headers(&req.parts.headers);
        let started = Instant::now();
        let run = Run {
            ctx: &ctx,
            headers: &headers,
            agent,
            provider: provider.as_ref(),
            federation: self.federation.as_ref(),
            ask: &ask,
        };
        let answer = run.answer().await;
        let (status, hit) = match &answer {
            Ok((_, hit)) => ("200".to_string(), *hit),
            Err(e) => (
                e.status().as_u16().to_string(),
                e.code() == "agent_deadline",
            ),
        };
        labeled::count(
            QUERIES,
            labels(&[
                ("agent", &name),
                ("status", &status),
                ("deadline_hit", if hit { "true" } else { "false" }),
            ]),
            1,
        );
        labeled::observe(
            DURATION,
            labels(&[("agent", &name), ("status", &status)]),
            started.elapsed(),
        );
        answer.map(|(body, _)| json_response(StatusCode::OK, &body))
    }
}

/// The provider an agent's `model` names.
fn provider_for(cfg: &Config, a: &AgentConfig) -> Result<Arc<dyn Provider>, ConfigError> {
    if a.model.provider == AgentProvider::Builtin {
        return Ok(Arc::new(Builtin));
    }
    let base = a
        .model
        .base_url
        .as_deref()
        .or(a.model.provider.default_base_url())
        .unwrap_or_default();
    let key = a
        .model
        .credential
        .value
        .as_deref()
        .filter(|k| !k.trim().is_empty());
    let upstream = Upstream::new(
        base,
        key,
        Duration::from_millis(cfg.vector_store.connect_timeout_ms.max(1)),
        Duration::from_millis(a.model_timeout_ms()),
    )
    .map_err(|e| ConfigError::Invalid(format!("agent {:?}: {e}", a.name)))?;
    Ok(Arc::new(openai::ChatModel::new(
        upstream,
        a.model.model.clone().unwrap_or_default(),
    )))
}

/// An `AgentQueryRequest`.
struct Ask {
    question: String,
    vector: Option<Vec<Value>>,
    top_k: u64,
}

fn parse(body: &Value) -> Result<Ask, GatewayError> {
    let o = object(body)?;
    let question = match o.get("query") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(invalid_field("query", "required: a non-empty string")),
    };
    let vector = match o.get("vector") {
        None | Some(Value::Null) => None,
        Some(Value::Array(v)) if !v.is_empty() && v.iter().all(Value::is_number) => Some(v.clone()),
        Some(_) => {
            return Err(invalid_field(
                "vector",
                "must be a non-empty list of numbers",
            ));
        }
    };
    let top_k = match opt_uint(o, "top_k")? {
        Some(0) => return Err(invalid_field("top_k", "must be a positive integer")),
        v => v.unwrap_or(10),
    };
    Ok(Ask {
        question,
        vector,
        top_k,
    })
}

/// One finished turn.
struct Turn {
    queries: Vec<PlannedQuery>,
    fused: Fused,
    /// Graded candidates, in fused order (one per `fused.rows` entry).
    candidates: Vec<Candidate>,
    best: f64,
    tokens: u64,
}

/// One request's run.
struct Run<'a> {
    ctx: &'a ShardCtx,
    headers: &'a HeaderMap,
    agent: &'a AgentConfig,
    provider: &'a dyn Provider,
    federation: &'a dyn Federation,
    ask: &'a Ask,
}

impl Run<'_> {
    /// The response body and whether the deadline was hit.
    async fn answer(&self) -> Result<(Value, bool), GatewayError> {
        let a = self.agent;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(a.budget.deadline_ms);
        let mut trace: Vec<String> = Vec::new();
        let mut turns: Vec<Turn> = Vec::new();
        let mut started = 0u8;
        let mut deadline_hit = false;
        for n in 1..=2u8 {
            if let Some(first) = turns.first() {
                if first.best >= a.retrieval.threshold {
                    trace.push(format!(
                        "turn 1 best relevance {:.3} >= threshold {:.3}: no second turn",
                        first.best, a.retrieval.threshold
                    ));
                    break;
                }
                if let Some(max) = a.budget.max_tokens
                    && first.tokens >= max
                {
                    trace.push(format!(
                        "turn 1 used {} tokens of a budget of {max}: no second turn",
                        first.tokens
                    ));
                    break;
                }
                trace.push(format!(
                    "turn 1 best relevance {:.3} < threshold {:.3}: re-planning",
                    first.best, a.retrieval.threshold
                ));
            } else if n == 2 {
                break;
            }
            started = n;
            match tokio::time::timeout_at(deadline, self.turn(n, turns.first())).await {
                Ok(Ok((t, line))) => {
                    trace.push(line);
                    turns.push(t);
                }
                Ok(Err(e)) if n == 1 => return Err(e),
                Ok(Err(e)) => {
                    trace.push(format!("turn 2 failed ({e}): answering with turn 1"));
                    break;
                }
                Err(_) => {
                    deadline_hit = true;
                    trace.push(format!(
                        "turn {n}: deadline of {} ms hit",
                        a.budget.deadline_ms
                    ));
                    break;
                }
            }
        }
        if deadline_hit && a.budget.on_deadline == OnDeadline::Error {
            return Err(GatewayError::Rejected {
                status: StatusCode::GATEWAY_TIMEOUT,
                code: "agent_deadline",
                message: format!(
                    "agent {:?} did not finish within budget.deadlineMs {}",
                    a.name, a.budget.deadline_ms
                ),
            });
        }
        // The better turn; turn 2 on a tie.
        let chosen = turns
            .iter()
            .enumerate()
            .max_by(|(i, x), (j, y)| x.best.total_cmp(&y.best).then(i.cmp(j)))
            .map(|(_, t)| t);
        let mut body = match chosen {
            Some(t) => {
                let mut body = t.fused.to_json();
                body.insert("rows".into(), Value::Array(self.final_rows(t)));
                body
            }
            None => Fused::default().to_json(),
        };
        let queries: Vec<Value> = turns
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.queries.iter().map(move |q| q.echo(i as u8 + 1)))
            .collect();
        body.insert(
            "agent".into(),
            json!({
                "turns": started.max(1),
                "deadlineHit": deadline_hit,
                "recallDepth": a.retrieval.recall_depth,
                "relevanceWeight": a.retrieval.relevance_weight,
                "queries": queries,
                "trace": trace.join("\n"),
                "provider": self.provider.name(),
            }),
        );
        Ok((Value::Object(body), deadline_hit))
    }

    /// Plans, runs the federated query and grades: one turn, with its trace line.
    async fn turn(&self, n: u8, previous: Option<&Turn>) -> Result<(Turn, String), GatewayError> {
        let a = self.agent;
        let model_error = |e: String| GatewayError::Rejected {
            status: StatusCode::BAD_GATEWAY,
            code: "agent_model_error",
            message: format!("agent {:?} turn {n}: {e}", a.name),
        };
        let planned = self
            .provider
            .plan(PlanInput {
                agent: a,
                question: &self.ask.question,
                vector: self.ask.vector.as_deref(),
                turn: n,
                previous: previous.map(|p| (p.queries.as_slice(), p.candidates.as_slice())),
            })
            .await
            .map_err(model_error)?;
        self.count_tokens(n, planned.usage);
        let depth = u64::from(a.retrieval.recall_depth);
        let mut legs: Vec<Leg> = planned
            .queries
            .iter()
            .flat_map(|q| {
                q.namespaces.iter().map(|ns| {
                    let mut body = q.body.clone();
                    body.insert("top_k".into(), json!(depth));
                    // The scorer reads the text field.
                    body.entry("include_attributes")
                        .or_insert_with(|| json!([a.retrieval.text_field]));
                    Leg {
                        namespace: ns.clone(),
                        body,
                    }
                })
            })
            .collect();
        let planned_legs = legs.len();
        legs.truncate(MAX_LEGS);
        let fusion = Fusion {
            rank_constant: RANK_CONSTANT,
            per_namespace_limit: depth,
            top_k: depth,
            strict: false,
        };
        let fused = self
            .federation
            .run(self.ctx, self.headers, legs, fusion)
            .await?;
        let field = &a.retrieval.text_field;
        let mut candidates: Vec<Candidate> = fused
            .rows
            .iter()
            .map(|r| Candidate {
                namespace: r["$namespace"].as_str().unwrap_or_default().to_string(),
                id: r.get("id").cloned().unwrap_or(Value::Null),
                text: text_of(r.get(field)),
                relevance: 0.0,
            })
            .collect();
        let (relevance, usage, note) = if candidates.is_empty() {
            (Vec::new(), Usage::default(), "nothing to grade".to_string())
        } else {
            let s = self
                .provider
                .score(&self.ask.question, &candidates)
                .await
                .map_err(model_error)?;
            let r = s
                .relevance
                .unwrap_or_else(|| rank_relevance(candidates.len()));
            (r, s.usage, s.note)
        };
        self.count_tokens(n, usage);
        for (c, r) in candidates.iter_mut().zip(&relevance) {
            c.relevance = *r;
        }
        let best = candidates.iter().map(|c| c.relevance).fold(0.0, f64::max);
        let cut = if planned_legs > MAX_LEGS {
            format!(" (cut from {planned_legs})")
        } else {
            String::new()
        };
        let line = format!(
            "turn {n}: {}; {} queries, {} legs{cut}; {} candidates; {note}; best relevance {best:.3}",
            planned.note,
            planned.queries.len(),
            planned_legs.min(MAX_LEGS),
            candidates.len(),
        );
        let tokens = planned.usage.total() + usage.total();
        Ok((
            Turn {
                queries: planned.queries,
                fused,
                candidates,
                best,
                tokens,
            },
            line,
        ))
    }

    /// A turn's candidates ordered by the weighted relevance and fused rank, cut to `top_k`,
    /// each with `$relevance`.
    fn final_rows(&self, t: &Turn) -> Vec<Value> {
        let w = self.agent.retrieval.relevance_weight;
        let rrf = |r: &Value| r["$rrf_score"].as_f64().unwrap_or(0.0);
        let top = t.fused.rows.iter().map(rrf).fold(0.0, f64::max);
        let mut scored: Vec<(f64, Value)> = t
            .fused
            .rows
            .iter()
            .zip(&t.candidates)
            .map(|(row, c)| {
                let rank = if top > 0.0 { rrf(row) / top } else { 0.0 };
                let mut row = row.clone();
                if let Some(o) = row.as_object_mut() {
                    o.insert("$relevance".into(), json!(c.relevance));
                }
                (w * c.relevance + (1.0 - w) * rank, row)
            })
            .collect();
        // Stable: equal scores keep fused order.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(usize::try_from(self.ask.top_k).unwrap_or(usize::MAX))
            .map(|(_, r)| r)
            .collect()
    }

    fn count_tokens(&self, turn: u8, u: Usage) {
        let turn = turn.to_string();
        for (kind, n) in [("prompt", u.prompt), ("completion", u.completion)] {
            if n > 0 {
                labeled::count(
                    TOKENS,
                    labels(&[
                        ("agent", &self.agent.name),
                        ("turn", &turn),
                        ("token_type", kind),
                    ]),
                    n,
                );
            }
        }
    }
}

/// A candidate's text for the scorer: a string attribute, or any other value as JSON, cut to
/// [`provider::TEXT_CHARS`] characters.
fn text_of(v: Option<&Value>) -> String {
    let s = match v {
        None | Some(Value::Null) => return String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    s.chars().take(provider::TEXT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_with_the_client_s_defaults() {
        let a = parse(&json!({"query": "q", "top_k": 10})).unwrap();
        assert_eq!((a.question.as_str(), a.top_k, a.vector), ("q", 10, None));
        assert_eq!(parse(&json!({"query": "q"})).unwrap().top_k, 10);
        for bad in [
            json!({}),
            json!({"query": ""}),
            json!({"query": 3}),
            json!({"query": "q", "vector": ["x"]}),
            json!({"query": "q", "top_k": 0}),
        ] {
            let e = parse(&bad).err().unwrap();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
    }
}

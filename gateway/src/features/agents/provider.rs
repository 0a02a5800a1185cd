//! The planner and scorer behind one [`Provider`] trait, the deterministic [`Builtin`] provider
//! (no model: plan = the question over every index, score = fused rank), and the query shapes
//! both build plans from ([`layer_query`]).
//!
//! A plan is a list of [`PlannedQuery`]s (namespaces plus a Layer single-query body without
//! `top_k`); the agent runs every query on every one of its namespaces as one federated query.
//! A score is one relevance in `0..=1` per candidate, in candidate order.

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use crate::core::config::{AgentConfig, AgentRankBy};

/// Model tokens one call used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

impl Usage {
    pub fn total(self) -> u64 {
        self.prompt + self.completion
    }
}

/// One planned Layer query.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedQuery {
    pub namespaces: Vec<String>,
    /// The Layer single-query body (`rank_by` or `vector`, `filters`, ...), without `top_k`.
    pub body: Map<String, Value>,
}

impl PlannedQuery {
    /// The `queries` entry of the `agent` echo.
    pub fn echo(&self, turn: u8) -> Value {
        let mut o = self.body.clone();
        o.insert("namespaces".into(), json!(self.namespaces));
        o.insert("turn".into(), json!(turn));
        Value::Object(o)
    }
}

/// A candidate shown to the scorer (and, summarised, to the turn-2 planner).
#[derive(Clone, Debug)]
pub struct Candidate {
    pub namespace: String,
    pub id: Value,
    /// The agent's text field, cut to [`TEXT_CHARS`] characters (empty when absent).
    pub text: String,
    /// Graded relevance, once scored.
    pub relevance: f64,
}

/// Characters of a candidate's text a model sees.
pub const TEXT_CHARS: usize = 400;

/// What the planner is given.
pub struct PlanInput<'a> {
    pub agent: &'a AgentConfig,
    pub question: &'a str,
    pub vector: Option<&'a [Value]>,
    /// 1 or 2.
    pub turn: u8,
    /// Turn 1's queries and graded candidates (best first) when planning turn 2.
    pub previous: Option<(&'a [PlannedQuery], &'a [Candidate])>,
}

/// A planner's answer: the queries (empty = "use the built-in plan"), tokens used, and a note for
/// the trace.
pub struct Planned {
    pub queries: Vec<PlannedQuery>,
    pub usage: Usage,
    pub note: String,
}

/// A scorer's answer: one relevance per candidate (`None` = "grade by fused rank").
pub struct Scored {
    pub relevance: Option<Vec<f64>>,
    pub usage: Usage,
    pub note: String,
}

/// Plans and scores. Errors are the provider's failures (unreachable, non-2xx), as text.
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    fn plan<'a>(&'a self, input: PlanInput<'a>) -> BoxFuture<'a, Result<Planned, String>>;
    fn score<'a>(
        &'a self,
        question: &'a str,
        candidates: &'a [Candidate],
    ) -> BoxFuture<'a, Result<Scored, String>>;
}

/// The deterministic provider.
pub struct Builtin;

impl Provider for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn plan<'a>(&'a self, input: PlanInput<'a>) -> BoxFuture<'a, Result<Planned, String>> {
        Box::pin(async move {
            let queries = builtin_plan(&input);
            let note = format!(
                "builtin plan: {} over every index",
                if input.turn == 1 {
                    "the question"
                } else {
                    "the question, typo-tolerant (HybridText fuzziness 2)"
                }
            );
            Ok(Planned {
                queries,
                usage: Usage::default(),
                note,
            })
        })
    }

    fn score<'a>(
        &'a self,
        _question: &'a str,
        candidates: &'a [Candidate],
    ) -> BoxFuture<'a, Result<Scored, String>> {
        Box::pin(async move {
            Ok(Scored {
                relevance: Some(rank_relevance(candidates.len())),
                usage: Usage::default(),
                note: "builtin score: fused rank".into(),
            })
        })
    }
}

/// Relevance by fused rank: `1 / (1 + position)` (the first candidate 1.0, then 0.5, 0.33, ...).
pub fn rank_relevance(n: usize) -> Vec<f64> {
    (0..n).map(|i| 1.0 / (1.0 + i as f64)).collect()
}

/// The built-in plan. Turn 1: the question over every index, ranked as `retrieval.rankBy` says.
/// Turn 2 (turn 1 graded below the threshold, which by fused rank means it found nothing): the
/// question as HybridText with fuzziness 2 over every index, plus a semantic query when the
/// request has a vector.
pub fn builtin_plan(input: &PlanInput<'_>) -> Vec<PlannedQuery> {
    let a = input.agent;
    let all = a.indices.clone();
    let field = &a.retrieval.text_field;
    if input.turn >= 2 {
        let mut out = vec![PlannedQuery {
            namespaces: all.clone(),
            body: hybrid(field, input.question, Some(2)),
        }];
        if let Some(v) = input.vector {
            out.push(PlannedQuery {
                namespaces: all,
                body: semantic(v),
            });
        }
        return out;
    }
    vec![PlannedQuery {
        namespaces: all,
        body: layer_query(a.retrieval.rank_by, field, input.question, input.vector),
    }]
}

/// A Layer query for `text` ranked the agent's way. `semantic` without a vector falls back to
/// HybridText (the request had no vector to rank by).
pub fn layer_query(
    rank_by: AgentRankBy,
    field: &str,
    text: &str,
    vector: Option<&[Value]>,
) -> Map<String, Value> {
    match (rank_by, vector) {
        (AgentRankBy::Semantic, Some(v)) => semantic(v),
        (AgentRankBy::Auto, v) => {
            let mut rank = vec![json!(field), json!("Auto"), json!(text)];
            if let Some(v) = v {
                rank.push(json!({ "vector": v }));
            }
            let mut o = Map::new();
            o.insert("rank_by".into(), Value::Array(rank));
            o
        }
        _ => hybrid(field, text, None),
    }
}

fn hybrid(field: &str, text: &str, fuzziness: Option<u8>) -> Map<String, Value> {
    let mut rank = vec![json!(field), json!("HybridText"), json!(text)];
    if let Some(f) = fuzziness {
        rank.push(json!({ "fuzziness": f }));
    }
    let mut o = Map::new();
    o.insert("rank_by".into(), Value::Array(rank));
    o
}

fn semantic(v: &[Value]) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("vector".into(), Value::Array(v.to_vec()));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentConfig {
        AgentConfig {
            name: "a".into(),
            indices: vec!["x".into(), "y".into()],
            ..Default::default()
        }
    }

    #[test]
    fn builtin_plans_the_question_over_every_index() {
        let a = agent();
        let input = PlanInput {
            agent: &a,
            question: "reset password",
            vector: None,
            turn: 1,
            previous: None,
        };
        let p = builtin_plan(&input);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].namespaces, ["x", "y"]);
        assert_eq!(
            p[0].body["rank_by"],
            json!(["text", "Auto", "reset password"])
        );
        let v = [json!(1.0), json!(0.0)];
        let p2 = builtin_plan(&PlanInput {
            turn: 2,
            vector: Some(&v),
            ..input
        });
        assert_eq!(p2.len(), 2);
        assert_eq!(
            p2[0].body["rank_by"],
            json!(["text", "HybridText", "reset password", {"fuzziness": 2}])
        );
        assert_eq!(p2[1].body["vector"], json!([1.0, 0.0]));
        assert_eq!(rank_relevance(3), [1.0, 0.5, 1.0 / 3.0]);
    }
}

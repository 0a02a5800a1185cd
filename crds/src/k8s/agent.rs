//! `Agent` (`hevlayer.com/v1alpha1`): a named retrieval agent served at
//! `POST /v2/agents/{name}/query` — the indexes it searches, the model that plans and grades, its
//! budget, retrieval settings and output options.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, SecretKeyRef, no};

/// The spec of an `Agent`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1alpha1",
    kind = "Agent",
    doc = "A retrieval agent served at POST /v2/agents/{name}/query: indexes, model, budget, retrieval and output settings.",
    namespaced,
    status = "AgentStatus",
    category = "hevlayer",
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.model.provider"
    ),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.model"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpec {
    #[serde(default)]
    pub budget: Budget,
    /// The Secret key holding the model provider's API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_key_secret_ref: Option<SecretKeyRef>,
    /// The indexes (namespaces) the agent searches.
    #[serde(default)]
    pub indices: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    #[serde(default)]
    pub output: Output,
    #[serde(default)]
    pub retrieval: Retrieval,
}

/// The time a query may take (`deadlineMs`) and what happens at the deadline.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    #[serde(default = "sixty_seconds")]
    #[schemars(range(min = 1))]
    pub deadline_ms: u64,
    #[serde(default)]
    pub on_deadline: OnDeadline,
    /// Most model tokens one request may use; unset: no token budget (a Layer extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            deadline_ms: sixty_seconds(),
            on_deadline: OnDeadline::BestEffort,
            max_tokens: None,
        }
    }
}

fn sixty_seconds() -> u64 {
    60_000
}

/// At the deadline: `bestEffort` answers with what finished, `error` answers 504.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OnDeadline {
    /// Answer with what the finished turns found.
    #[default]
    BestEffort,
    /// Answer 504.
    Error,
}

/// The model that plans and grades: provider, model name, base URL, per-call timeout.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Model {
    pub provider: Provider,
    /// The model name sent to the provider (required unless `builtin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Chat-completions base URL; unset = the provider's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Per-call timeout of the model, within the deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `spec.model.provider`: the documented product's `openrouter`, plus Layer's `openai` and
/// `builtin` (no model: fused-rank planning and scoring), as in layer.yaml.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Provider {
    Openrouter,
    Openai,
    Builtin,
}

/// Extras in the answer: `provenance` (where each hit came from) and `trace` (the turns).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Output {
    #[serde(default = "no")]
    pub provenance: bool,
    #[serde(default = "no")]
    pub trace: bool,
}

/// Retrieval: queries per plan (`fanout`), ranking, rows per leg (`recallDepth`), relevance weight.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retrieval {
    #[serde(default = "eight")]
    #[schemars(range(min = 1))]
    pub fanout: u32,
    #[serde(default)]
    pub rank_by: RankBy,
    #[serde(default = "fifty")]
    #[schemars(range(min = 1))]
    pub recall_depth: u32,
    #[serde(default = "point_six")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub relevance_weight: f64,
    /// Minimum grade a hit needs (a Layer extension, as in layer.yaml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The attribute holding a document's text (a Layer extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_field: Option<String>,
}

impl Default for Retrieval {
    fn default() -> Self {
        Retrieval {
            fanout: eight(),
            rank_by: RankBy::Auto,
            recall_depth: fifty(),
            relevance_weight: point_six(),
            threshold: None,
            text_field: None,
        }
    }
}

fn eight() -> u32 {
    8
}

fn fifty() -> u32 {
    50
}

fn point_six() -> f64 {
    0.6
}

/// How the built-in plan ranks: `auto`, `hybridText` or `semantic`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RankBy {
    #[default]
    Auto,
    HybridText,
    Semantic,
}

/// What the operator reports (the indexes resolved, readiness).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

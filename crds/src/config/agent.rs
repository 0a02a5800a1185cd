//! `agents`: the `Agent` CRD's spec — a named retrieval agent served at
//! `POST /v2/agents/{name}/query`: the indexes it searches, the model that plans and grades
//! (`builtin` needs none), its budget and its retrieval settings. The model's key is a
//! [`Credential`] (`value` or `env`), shown redacted.

use serde::Deserialize;

use super::ConfigError;
use super::store::Credential;

/// Which provider plans and scores.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AgentProvider {
    /// Deterministic, no model: plan = the question over every index, score = fused rank.
    #[default]
    Builtin,
    /// An OpenAI-compatible chat-completions endpoint (`baseUrl`, default
    /// `https://api.openai.com/v1`).
    Openai,
    /// OpenRouter's OpenAI-compatible endpoint (`baseUrl`, default
    /// `https://openrouter.ai/api/v1`).
    Openrouter,
}

impl AgentProvider {
    /// The chat-completions base URL when `baseUrl` is unset (`None` for `builtin`).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            AgentProvider::Builtin => None,
            AgentProvider::Openai => Some("https://api.openai.com/v1"),
            AgentProvider::Openrouter => Some("https://openrouter.ai/api/v1"),
        }
    }
}

/// `model`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentModel {
    pub provider: AgentProvider,
    /// The model name sent as `model` (required unless `builtin`).
    pub model: Option<String>,
    /// Chat-completions base URL (`{baseUrl}/chat/completions` is called).
    pub base_url: Option<String>,
    /// The bearer key: `value`, or `env` (the name of a variable read at start).
    pub credential: Credential,
    /// Per-call timeout of the model, within the agent's deadline (default 30000).
    pub timeout_ms: u64,
}

/// `budget.onDeadline`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OnDeadline {
    /// Answer with what the finished turns found (`deadlineHit: true`).
    #[default]
    BestEffort,
    /// Answer 504 `agent_deadline`.
    Error,
}

/// `budget`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentBudget {
    pub deadline_ms: u64,
    pub on_deadline: OnDeadline,
    /// Most model tokens one request may use (prompt + completion); turn 2 only starts while
    /// turn 1 used less. Unset: no token budget.
    pub max_tokens: Option<u64>,
}

impl Default for AgentBudget {
    fn default() -> Self {
        AgentBudget {
            deadline_ms: 60_000,
            on_deadline: OnDeadline::BestEffort,
            max_tokens: None,
        }
    }
}

/// `retrieval.rankBy`: how the built-in planner (and a model's plan that names none) ranks.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AgentRankBy {
    #[default]
    Auto,
    HybridText,
    Semantic,
}

/// `retrieval`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentRetrieval {
    /// Most queries one turn's plan may hold.
    pub fanout: u32,
    pub rank_by: AgentRankBy,
    /// Rows asked of each leg, and candidates graded per turn.
    pub recall_depth: u32,
    /// Weight of the graded relevance against the fused rank in the final order (0..=1).
    pub relevance_weight: f64,
    /// Best relevance (0..=1) below which a second turn runs.
    pub threshold: f64,
    /// The text attribute the queries rank on and the scorer reads.
    pub text_field: String,
}

impl Default for AgentRetrieval {
    fn default() -> Self {
        AgentRetrieval {
            fanout: 8,
            rank_by: AgentRankBy::Auto,
            recall_depth: 50,
            relevance_weight: 0.6,
            threshold: 0.5,
            text_field: "text".into(),
        }
    }
}

/// One agent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentConfig {
    pub name: String,
    /// The namespaces it searches (`indexes` is accepted too).
    #[serde(alias = "indexes")]
    pub indices: Vec<String>,
    pub model: AgentModel,
    pub budget: AgentBudget,
    pub retrieval: AgentRetrieval,
}

impl AgentConfig {
    /// The model call timeout (ms).
    pub fn model_timeout_ms(&self) -> u64 {
        if self.model.timeout_ms == 0 {
            30_000
        } else {
            self.model.timeout_ms
        }
    }
}

/// Checks every agent: a unique non-empty name, 1..=32 indices, sane budget and retrieval
/// numbers, a model name and an http(s) base URL for model providers.
pub(super) fn validate(agents: &[AgentConfig]) -> Result<(), ConfigError> {
    let bad = |name: &str, why: &str| ConfigError::Invalid(format!("agent {name:?}: {why}"));
    let mut seen = std::collections::BTreeSet::new();
    for a in agents {
        if a.name.is_empty() || !seen.insert(a.name.as_str()) {
            return Err(ConfigError::Invalid(
                "every agent needs a name, unique among agents".into(),
            ));
        }
        if a.indices.is_empty() || a.indices.len() > 32 {
            return Err(bad(&a.name, "indices must name 1 to 32 namespaces"));
        }
        if a.budget.deadline_ms == 0 {
            return Err(bad(&a.name, "budget.deadlineMs must be positive"));
        }
        let r = &a.retrieval;
        if r.fanout == 0 || r.recall_depth == 0 || r.text_field.is_empty() {
            return Err(bad(
                &a.name,
                "retrieval.fanout, recallDepth and textField must be set",
            ));
        }
        if !(0.0..=1.0).contains(&r.relevance_weight) || !(0.0..=1.0).contains(&r.threshold) {
            return Err(bad(
                &a.name,
                "retrieval.relevanceWeight and threshold must be within 0..=1",
            ));
        }
        if a.model.provider != AgentProvider::Builtin {
            if a.model.model.as_deref().is_none_or(str::is_empty) {
                return Err(bad(&a.name, "model.model is required for a model provider"));
            }
            let url = a
                .model
                .base_url
                .as_deref()
                .or(a.model.provider.default_base_url())
                .unwrap_or_default();
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || super::has_userinfo(url)
            {
                return Err(bad(
                    &a.name,
                    "model.baseUrl must be http(s) without credentials",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Vec<AgentConfig> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_are_the_crd_s() {
        let a = &parse("- {name: a, indexes: [docs]}")[0];
        assert_eq!(a.indices, ["docs"]);
        assert_eq!(a.model.provider, AgentProvider::Builtin);
        assert_eq!(
            (a.budget.deadline_ms, a.budget.on_deadline),
            (60_000, OnDeadline::BestEffort)
        );
        let r = &a.retrieval;
        assert_eq!(
            (r.fanout, r.rank_by, r.recall_depth, r.relevance_weight),
            (8, AgentRankBy::Auto, 50, 0.6)
        );
        assert_eq!((r.threshold, r.text_field.as_str()), (0.5, "text"));
        assert_eq!(a.model_timeout_ms(), 30_000);
        assert!(validate(std::slice::from_ref(a)).is_ok());
    }

    #[test]
    fn bad_agents_are_refused_and_keys_stay_hidden() {
        for yaml in [
            "- {name: a, indices: []}",
            "- {name: a, indices: [x]}\n- {name: a, indices: [y]}",
            "- {name: a, indices: [x], retrieval: {threshold: 1.5}}",
            "- {name: a, indices: [x], model: {provider: openai}}",
            "- {name: a, indices: [x], model: {provider: openai, model: m, baseUrl: 'ftp://x'}}",
            "- {name: a, indices: [x], budget: {deadlineMs: 0}}",
        ] {
            assert!(validate(&parse(yaml)).is_err(), "{yaml}");
        }
        assert!(serde_yaml_ng::from_str::<Vec<AgentConfig>>("- {name: a, output: {}}").is_err());
        let a = parse(
            "- {name: a, indices: [x], model: {provider: openrouter, model: m, credential: {value: sk-secret}}}",
        );
        assert!(validate(&a).is_ok());
        assert!(!format!("{a:?}").contains("sk-secret"));
    }
}

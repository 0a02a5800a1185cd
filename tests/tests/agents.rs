//! Agents end to end (`POST /v2/agents/{name}/query`): the built-in provider (plan = the
//! question over every index, score = fused rank: its rows are the federated query's), a second
//! turn exactly when the best relevance is below the threshold (and never when the token budget
//! is spent), the OpenAI-compatible client driven against a scripted chat-completions server on
//! 127.0.0.1:0 in this test (plans, grades, turn 2 re-planned with turn 1's findings, token usage
//! counted into `hevlayer_agent_tokens_total`), 404 for an unknown agent, `read` on every index.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use layer_e2e::{Stack, configured_key, now_ms, pause};
use layer_gateway::config::{
    AgentConfig, AgentModel, AgentProvider, AuthMode, Credential, OnDeadline, Scope,
};
use serde_json::{Value, json};

const WORDS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];

fn seed(stack: &Stack, ns: &str, n: usize) {
    let rows: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{ns}-{i}"), "text": format!("{} {}", WORDS[i % 6], WORDS[(i / 6) % 6])}))
        .collect();
    stack.write(ns, json!({"upsert_rows": rows, "schema": {"text": {"type": "string", "full_text_search": true}}}));
}

/// A chat-completions server answering from `script(request body)`; every request body is logged.
struct Scripted {
    url: String,
    log: Arc<Mutex<Vec<Value>>>,
}

/// Usage every scripted answer reports.
const PROMPT_TOKENS: u64 = 100;
const COMPLETION_TOKENS: u64 = 7;

impl Scripted {
    fn start(script: fn(&Value) -> Value) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || serve_one(conn, script, &seen));
            }
        });
        Scripted { url, log }
    }

    fn requests(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }
}

/// One request on one connection: read it, log it, answer `script`'s content. A question
/// starting with `hang` is never answered in time (the deadline tests).
fn serve_one(mut conn: std::net::TcpStream, script: fn(&Value) -> Value, seen: &Mutex<Vec<Value>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push(request.clone());
    if user_of(&request)["question"]
        .as_str()
        .is_some_and(|q| q.starts_with("hang"))
    {
        pause(Duration::from_secs(30));
        return;
    }
    let content = script(&request);
    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS},
    })
    .to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// The user message of a logged request, parsed.
fn user_of(req: &Value) -> Value {
    serde_json::from_str(req["messages"][1]["content"].as_str().unwrap()).unwrap()
}

fn is_planner(req: &Value) -> bool {
    req["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("query planner")
}

/// Plans "alpha" on `ag-docs` in turn 1 and on `ag-tickets` in turn 2; grades every candidate
/// by the question's first word: `high` 0.9 for the first, `edge` 0.5, anything else 0.2.
fn script(req: &Value) -> Value {
    let user = user_of(req);
    if is_planner(req) {
        let ns = if user.get("previous").is_some() {
            "ag-tickets"
        } else {
            "ag-docs"
        };
        return json!({"queries": [{"namespaces": [ns], "text": "alpha", "rank_by": "hybridText"}]});
    }
    let n = user["candidates"].as_array().unwrap().len();
    let q = user["question"].as_str().unwrap();
    let grade = |i: usize| match q.split(':').next() {
        Some("high") => {
            if i == 0 {
                0.9
            } else {
                0.1
            }
        }
        Some("edge") => 0.5,
        _ => 0.2,
    };
    json!({"relevance": (0..n).map(grade).collect::<Vec<_>>()})
}

fn agent(name: &str, indices: &[&str], model: Option<&Scripted>) -> AgentConfig {
    let mut a = AgentConfig {
        name: name.into(),
        indices: indices.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    if let Some(s) = model {
        a.model = AgentModel {
            provider: AgentProvider::Openai,
            model: Some("scripted-model".into()),
            base_url: Some(s.url.clone()),
            credential: Credential {
                value: Some("sk-test".into()),
                env: None,
            },
            timeout_ms: 0,
        };
    }
    a
}

fn ask(stack: &Stack, name: &str, body: Value) -> (u16, Value) {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/agents/{name}/query"),
        body.to_string(),
    );
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn seeded(agents: Vec<AgentConfig>) -> Stack {
    let stack = Stack::start_with(move |c| c.agents = agents);
    seed(&stack, "ag-docs", 30);
    seed(&stack, "ag-tickets", 18);
    // Taken after the last seed: a cut past it covers every seeded row.
    let t = now_ms();
    stack.wait_watermark("ag-docs", t);
    stack.wait_watermark("ag-tickets", t);
    stack
}

fn ids(rows: &Value) -> Vec<(String, String)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["$namespace"].as_str().unwrap().into(),
                r["id"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn builtin_agent_answers_the_federated_query_and_re_plans_when_nothing_is_found() {
    let stack = seeded(vec![agent("helper", &["ag-docs", "ag-tickets"], None)]);
    let (s, v) = ask(&stack, "helper", json!({"query": "alpha", "top_k": 10}));
    assert_eq!(s, 200, "{v}");
    let echo = &v["agent"];
    assert_eq!(echo["turns"], 1, "{v}");
    assert_eq!(echo["deadlineHit"], false);
    assert_eq!(echo["recallDepth"], 50);
    assert_eq!(echo["relevanceWeight"], 0.6);
    assert_eq!(
        echo["queries"],
        json!([{"namespaces": ["ag-docs", "ag-tickets"], "rank_by": ["text", "Auto", "alpha"], "turn": 1}])
    );
    assert!(echo["trace"].as_str().unwrap().contains("turn 1"), "{echo}");
    // Score = fused rank: the rows are the federated query's, in its order.
    let (s, fed) = {
        let r = stack.gw(
            Method::POST,
            "/v2/query",
            json!({"namespaces": ["ag-docs", "ag-tickets"], "rank_by": ["text", "Auto", "alpha"],
                   "top_k": 50, "fusion": {"rank_constant": 60, "per_namespace_limit": 50}})
            .to_string(),
        );
        (r.status.as_u16(), r.json())
    };
    assert_eq!(s, 200, "{fed}");
    let want: Vec<_> = ids(&fed["rows"]).into_iter().take(10).collect();
    assert!(!want.is_empty());
    assert_eq!(ids(&v["rows"]), want);
    assert_eq!(v["rows"][0]["$relevance"], 1.0);
    let matched = |v: &Value| -> Vec<(Value, Value)> {
        v["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["namespace"].clone(), n["matched"].clone()))
            .collect()
    };
    assert_eq!(matched(&v), matched(&fed));
    assert!(v.get("routing").is_some(), "the Auto echo: {v}");

    // Nothing found: best relevance 0 < 0.5, so a second, typo-tolerant turn runs.
    let (s, v) = ask(&stack, "helper", json!({"query": "zzqqxx"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["turns"], 2, "{v}");
    let queries = v["agent"]["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[1]["turn"], 2);
    assert_eq!(
        queries[1]["rank_by"],
        json!(["text", "HybridText", "zzqqxx", {"fuzziness": 2}])
    );
    assert_eq!(v["rows"], json!([]));

    let (s, v) = ask(&stack, "nobody", json!({"query": "alpha"}));
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")), "{v}");
    let (s, v) = ask(&stack, "helper", json!({"top_k": 3}));
    assert_eq!(s, 422, "{v}");
}

#[test]
fn model_agent_takes_a_second_turn_exactly_when_the_threshold_says() {
    let model = Scripted::start(script);
    let mut budgeted = agent("model-budget", &["ag-docs", "ag-tickets"], Some(&model));
    // A token budget turn 1 alone spends (two calls of 107 tokens): never a second turn.
    budgeted.budget.max_tokens = Some(150);
    let stack = seeded(vec![
        agent("model", &["ag-docs", "ag-tickets"], Some(&model)),
        budgeted,
    ]);
    let tokens = |turn: &str, kind: &str| {
        stack.metric(&format!(
            "hevlayer_agent_tokens_total{{agent=\"model\",turn=\"{turn}\",token_type=\"{kind}\"}}"
        ))
    };

    // Best relevance 0.9 >= 0.5: one turn, one plan and one grading call.
    let (s, v) = ask(
        &stack,
        "model",
        json!({"query": "high: what is alpha", "top_k": 4}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["turns"], 1, "{v}");
    let calls = model.requests();
    assert_eq!(calls.len(), 2);
    assert!(is_planner(&calls[0]) && !is_planner(&calls[1]));
    assert_eq!(calls[0]["model"], "scripted-model");
    assert_eq!(user_of(&calls[0])["question"], "high: what is alpha");
    assert_eq!(
        v["agent"]["queries"],
        json!([{"namespaces": ["ag-docs"], "rank_by": ["text", "HybridText", "alpha"], "turn": 1}])
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["$namespace"] == "ag-docs"));
    // The graded-best candidate first; the grader saw every candidate's text.
    assert_eq!(rows[0]["$relevance"], 0.9);
    let graded = user_of(&calls[1])["candidates"].as_array().unwrap().clone();
    assert_eq!(graded[0]["id"], rows[0]["id"]);
    assert!(
        graded
            .iter()
            .all(|c| c["text"].as_str().unwrap().contains("alpha"))
    );
    assert_eq!(tokens("1", "prompt"), (2 * PROMPT_TOKENS) as f64);
    assert_eq!(tokens("1", "completion"), (2 * COMPLETION_TOKENS) as f64);
    assert_eq!(tokens("2", "prompt"), 0.0);

    // Exactly at the threshold: still one turn (turn 2 only below it).
    let (s, v) = ask(&stack, "model", json!({"query": "edge: alpha"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["turns"], 1, "{v}");
    assert_eq!(model.requests().len(), 4);

    // Best 0.2 < 0.5: turn 2 re-plans with turn 1's queries and graded findings.
    let (s, v) = ask(&stack, "model", json!({"query": "low: alpha"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["turns"], 2, "{v}");
    let calls = model.requests();
    assert_eq!(calls.len(), 8, "plan, grade, re-plan, grade");
    let replan = user_of(&calls[6]);
    assert!(is_planner(&calls[6]) && replan["turn"] == 2, "{replan}");
    let found = replan["previous"]["found"].as_array().unwrap();
    let graded1 = user_of(&calls[5]);
    let turn1_ids: Vec<&Value> = graded1["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|f| turn1_ids.contains(&&f["id"]) && f["relevance"] == 0.2),
        "{replan}"
    );
    let queries = v["agent"]["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(
        (queries[0]["turn"].clone(), queries[1]["turn"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(queries[1]["namespaces"], json!(["ag-tickets"]));
    // Equal best relevance: the later turn answers.
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["$namespace"] == "ag-tickets"),
        "{v}"
    );
    assert_eq!(tokens("2", "prompt"), (2 * PROMPT_TOKENS) as f64);

    // Below the threshold but the token budget is spent: one turn.
    let (s, v) = ask(&stack, "model-budget", json!({"query": "low: alpha"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["turns"], 1, "{v}");
    assert!(
        v["agent"]["trace"].as_str().unwrap().contains("budget"),
        "{v}"
    );
    assert_eq!(model.requests().len(), 10);
}

#[test]
fn read_is_needed_on_every_index_of_the_agent() {
    let stack = Stack::start_with(|c| {
        c.agents = vec![
            agent("mixed", &["shop-a", "other"], None),
            agent("shop", &["shop-a"], None),
        ];
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![configured_key(
            "shop-reader",
            vec![Scope::Read],
            &["shop-*"],
        )];
    });
    let as_reader = |name: &str| {
        let r = stack.gw_with(
            Method::POST,
            &format!("/v2/agents/{name}/query"),
            &[("authorization", "Bearer shop-reader")],
            json!({"query": "alpha"}).to_string(),
        );
        (
            r.status.as_u16(),
            serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        )
    };
    let (s, v) = as_reader("mixed");
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["namespace"], "other");
    // Its one index is granted (and missing upstream: an errors entry, not a failure).
    let (s, v) = as_reader("shop");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["errors"][0]["namespace"], "shop-a", "{v}");
}

#[test]
fn a_deadline_hit_answers_best_effort_or_504() {
    let model = Scripted::start(script);
    // A 300 ms budget (default 60 s) against a model that does not answer for 30 s.
    let mut best = agent("hurry", &["ag-docs"], Some(&model));
    best.budget.deadline_ms = 300;
    let mut strict = best.clone();
    strict.name = "hurry-strict".into();
    strict.budget.on_deadline = OnDeadline::Error;
    let stack = Stack::start_with(move |c| c.agents = vec![best, strict]);
    let (s, v) = ask(&stack, "hurry", json!({"query": "hang on"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["deadlineHit"], true, "{v}");
    assert_eq!(v["agent"]["turns"], 1);
    assert_eq!(v["rows"], json!([]));
    assert!(
        v["agent"]["trace"].as_str().unwrap().contains("deadline"),
        "{v}"
    );
    let (s, v) = ask(&stack, "hurry-strict", json!({"query": "hang on"}));
    assert_eq!(
        (s, v["error"].as_str()),
        (504, Some("agent_deadline")),
        "{v}"
    );
    assert_eq!(
        stack.metric(
            "hevlayer_agent_queries_total{agent=\"hurry\",status=\"200\",deadline_hit=\"true\"}"
        ),
        1.0
    );
    assert_eq!(
        stack.metric("hevlayer_agent_queries_total{agent=\"hurry-strict\",status=\"504\",deadline_hit=\"true\"}"),
        1.0
    );
}

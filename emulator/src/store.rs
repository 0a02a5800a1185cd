//! All namespaces, the simulation knobs, the background indexer and persistence.
//!
//! Start at [`Store`]. Each namespace has its own lock and a semaphore of query permits; the
//! namespace map has a short-lived lock of its own. The indexer and the persister are tokio
//! tasks started by [`Store::spawn_background`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult, parse_body};
use crate::namespace::{NsState, Persisted};
use crate::write::{self, WriteLimits, WriteRequest};

/// Simulation knobs (contract §13.3), settable at run time with `POST /_emu/config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Unindexed bytes an eventual query may search (128 MiB live).
    pub eventual_scan_limit_bytes: u64,
    /// Unindexed bytes beyond which even strong queries stop seeing newer writes.
    pub strong_visibility_limit_bytes: u64,
    /// Unindexed bytes beyond which writes get 429 (2 GB live).
    pub backpressure_threshold_bytes: u64,
    /// Query permits per namespace (16 live).
    pub query_permits: u32,
    /// How long a query waits for permits before 429 (800 ms live).
    pub permit_wait_ms: u64,
    /// Extra latency added to every query while it holds its permits.
    pub query_delay_ms: u64,
    pub patch_by_filter_limit: usize,
    pub delete_by_filter_limit: usize,
    /// Answer `prefer: respond-async` on copy writes with 202 + operation.
    pub honour_respond_async: bool,
    /// How long an async copy stays `running`.
    pub async_op_delay_ms: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            eventual_scan_limit_bytes: 128 << 20,
            strong_visibility_limit_bytes: 128 << 20,
            backpressure_threshold_bytes: 2_000_000_000,
            query_permits: 16,
            permit_wait_ms: 800,
            query_delay_ms: 0,
            patch_by_filter_limit: 50_000,
            delete_by_filter_limit: 5_000_000,
            honour_respond_async: true,
            async_op_delay_ms: 200,
        }
    }
}

/// Indexer settings, global or per namespace.
#[derive(Clone, Copy, Debug, Default)]
pub struct IndexerCfg {
    pub paused: bool,
    pub rows_per_sec: Option<u64>,
}

/// One namespace: its state, query permits and indexer settings.
pub struct Namespace {
    pub state: RwLock<NsState>,
    pub permits: Semaphore,
    indexer: Mutex<(Option<IndexerCfg>, f64)>,
}

impl Namespace {
    fn new(state: NsState, permits: u32) -> Arc<Self> {
        Arc::new(Namespace {
            state: RwLock::new(state),
            permits: Semaphore::new(permits as usize),
            indexer: Mutex::new((None, 0.0)),
        })
    }
}

/// An async operation (copy).
#[derive(Clone, Debug)]
pub struct Operation {
    pub namespace: String,
    pub start_ms: i64,
    pub finish_ms: Option<i64>,
    pub result: Option<Result<Value, Value>>,
}

/// The emulator's whole state.
pub struct Store {
    namespaces: RwLock<BTreeMap<String, Arc<Namespace>>>,
    pub knobs: RwLock<Knobs>,
    indexer: Mutex<IndexerCfg>,
    dirty: Mutex<BTreeSet<String>>,
    /// Serialises writes that create a namespace, so two concurrent first writes land in one
    /// namespace instead of one of them being acknowledged and then dropped.
    creating: Mutex<()>,
    data_dir: Option<PathBuf>,
    ops: Mutex<HashMap<String, Operation>>,
    rng: Mutex<StdRng>,
    /// Indexer settings for namespaces that do not exist yet (applied when they are created).
    pending_indexer: Mutex<HashMap<String, IndexerCfg>>,
    /// The fake KMS: key names customer-managed encryption may use (empty = CMEK not set up).
    pub cmek_keys: Vec<String>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// ISO-8601 rendering used by metadata and operations.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl Store {
    /// Creates a store, loading persisted namespaces from `data_dir` when given.
    pub fn new(
        data_dir: Option<PathBuf>,
        seed: Option<u64>,
        cmek_keys: Vec<String>,
    ) -> anyhow::Result<Arc<Self>> {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let store = Store {
            namespaces: RwLock::new(BTreeMap::new()),
            knobs: RwLock::new(Knobs::default()),
            indexer: Mutex::new(IndexerCfg::default()),
            dirty: Mutex::new(BTreeSet::new()),
            creating: Mutex::new(()),
            data_dir,
            ops: Mutex::new(HashMap::new()),
            rng: Mutex::new(rng),
            pending_indexer: Mutex::new(HashMap::new()),
            cmek_keys,
        };
        if let Some(dir) = &store.data_dir {
            let dir = dir.join("namespaces");
            std::fs::create_dir_all(&dir)?;
            let permits = store.knobs.read().query_permits;
            let mut map = store.namespaces.write();
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                else {
                    continue;
                };
                let persisted: Persisted = serde_json::from_slice(&std::fs::read(&path)?)?;
                map.insert(
                    name.to_string(),
                    Namespace::new(persisted.into_state(), permits),
                );
            }
            tracing::info!(namespaces = map.len(), dir = %dir.display(), "restored persisted namespaces");
        }
        Ok(Arc::new(store))
    }

    /// Starts the indexer and (with a data dir) the persister.
    pub fn spawn_background(self: &Arc<Self>) {
        let store = self.clone();
        tokio::spawn(async move {
            let tick = Duration::from_millis(50);
            loop {
                tokio::time::sleep(tick).await;
                store.index_tick(tick.as_secs_f64());
            }
        });
        if self.data_dir.is_some() {
            let store = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let store = store.clone();
                    if let Ok(Err(e)) =
                        tokio::task::spawn_blocking(move || store.persist_dirty()).await
                    {
                        tracing::warn!(error = %e, "persisting namespaces failed");
                    }
                }
            });
        }
    }

    fn index_tick(&self, secs: f64) {
        let global = *self.indexer.lock();
        let list: Vec<(String, Arc<Namespace>)> = self
            .namespaces
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, ns) in list {
            let budget = {
                let mut idx = ns.indexer.lock();
                let cfg = idx.0.unwrap_or(global);
                if cfg.paused {
                    continue;
                }
                match cfg.rows_per_sec {
                    None => u64::MAX,
                    Some(rate) => {
                        idx.1 += rate as f64 * secs;
                        let whole = idx.1.floor();
                        idx.1 -= whole;
                        whole as u64
                    }
                }
            };
            let mut st = ns.state.write();
            if st.wal.is_empty() || budget == 0 {
                continue;
            }
            st.index_step(budget);
            drop(st);
            self.dirty.lock().insert(name);
        }
    }

    /// Sets indexer settings globally or for one namespace.
    pub fn set_indexer(
        &self,
        namespace: Option<&str>,
        paused: bool,
        rows_per_sec: Option<u64>,
    ) -> ApiResult<()> {
        let cfg = IndexerCfg {
            paused,
            rows_per_sec,
        };
        match namespace {
            None => {
                *self.indexer.lock() = cfg;
                self.pending_indexer.lock().clear();
                // A global setting replaces per-namespace overrides.
                for ns in self.namespaces.read().values() {
                    ns.indexer.lock().0 = None;
                }
            }
            Some(name) => match self.namespaces.read().get(name) {
                Some(ns) => ns.indexer.lock().0 = Some(cfg),
                // Lets a test pause indexing before the namespace's first write.
                None => {
                    self.pending_indexer.lock().insert(name.to_string(), cfg);
                }
            },
        }
        Ok(())
    }

    /// Indexes everything now, globally or for one namespace.
    pub fn flush(&self, namespace: Option<&str>) -> ApiResult<()> {
        let list: Vec<Arc<Namespace>> = match namespace {
            Some(n) => vec![self.get(n)?],
            None => self.namespaces.read().values().cloned().collect(),
        };
        for ns in list {
            ns.state.write().flush();
        }
        Ok(())
    }

    /// A new namespace, with any indexer setting that was made for it before it existed.
    fn new_namespace(&self, name: &str, state: NsState, permits: u32) -> Arc<Namespace> {
        let ns = Namespace::new(state, permits);
        if let Some(cfg) = self.pending_indexer.lock().remove(name) {
            ns.indexer.lock().0 = Some(cfg);
        }
        ns
    }

    /// Looks up a namespace or 404s.
    pub fn get(&self, name: &str) -> ApiResult<Arc<Namespace>> {
        self.namespaces
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::namespace_not_found(name))
    }

    fn write_limits(&self) -> WriteLimits {
        let k = self.knobs.read();
        WriteLimits {
            patch_by_filter_rows: k.patch_by_filter_limit,
            delete_by_filter_rows: k.delete_by_filter_limit,
            backpressure_bytes: k.backpressure_threshold_bytes,
        }
    }

    /// `POST /v2/namespaces/{ns}` for documents and schema (copy/branch go through [`Store::copy`]).
    pub fn write(&self, name: &str, req: WriteRequest, body_len: u64) -> ApiResult<Value> {
        let limits = self.write_limits();
        let existing = self.namespaces.read().get(name).cloned();
        // Held until a namespace this write creates is in the map (see `creating`).
        let mut _creating = None;
        let existing = match existing {
            Some(ns) => Some(ns),
            None => {
                _creating = Some(self.creating.lock());
                self.namespaces.read().get(name).cloned()
            }
        };
        let (ns, existed) = match existing {
            Some(ns) => (ns, true),
            None => {
                if req.create_namespace == Some(false) {
                    return Err(ApiError::namespace_not_found(name));
                }
                let creates = req.create_namespace == Some(true)
                    || req.upsert_rows.as_ref().is_some_and(|r| !r.is_empty())
                    || req.upsert_columns.is_some()
                    || req.schema.is_some();
                if !creates {
                    // Deletes and patches against a missing namespace affect nothing.
                    if req.has_document_ops() {
                        return Err(ApiError::namespace_not_found(name));
                    }
                    return Err(ApiError::invalid("write request contains no operations"));
                }
                let permits = self.knobs.read().query_permits;
                (
                    self.new_namespace(name, NsState::new(now_ms()), permits),
                    false,
                )
            }
        };
        if !existed && req.create_namespace == Some(true) && !req.has_document_ops() {
            let has_id_type = req.schema.as_ref().is_some_and(|s| s.contains_key("id"));
            if !has_id_type {
                return Err(ApiError::invalid(
                    "create_namespace requires the `id` type in `schema`",
                ));
            }
        }
        if !req.has_document_ops()
            && req.schema.is_none()
            && req.create_namespace.is_none()
            && existed
        {
            return Err(ApiError::invalid("write request contains no operations"));
        }
        let result = {
            let mut st = ns.state.write();
            write::apply(&mut st, req, body_len, limits, now_ms(), existed)?
        };
        if !existed {
            self.namespaces.write().insert(name.to_string(), ns);
        }
        self.dirty.lock().insert(name.to_string());
        Ok(result)
    }

    /// Copy or branch `source` into `dest` (which must be empty) with the destination's
    /// `encryption` (already checked). Returns the WriteResult.
    pub fn copy(&self, dest: &str, source: &str, encryption: Value) -> ApiResult<Value> {
        let started = std::time::Instant::now();
        let src = self.get(source)?;
        let copied = {
            let s = src.state.read();
            let mut n = NsState::new(now_ms());
            n.schema = s.schema.clone();
            n.id_kind = s.id_kind;
            n.metric = s.metric;
            n.docs = s.docs.clone();
            n.indexed = s.docs.clone();
            n.last_write_at_ms = Some(now_ms());
            n.encryption = encryption;
            n
        };
        let rows = copied.docs.len();
        let permits = self.knobs.read().query_permits;
        {
            let mut map = self.namespaces.write();
            if map.get(dest).is_some_and(|d| !d.state.read().is_empty()) {
                return Err(ApiError::BadRequest(
                    "destination namespace already exists".into(),
                ));
            }
            map.insert(dest.to_string(), self.new_namespace(dest, copied, permits));
        }
        self.dirty.lock().insert(dest.to_string());
        Ok(json!({
            "status": "OK", "message": "namespace cloned successfully", "rows_affected": rows,
            "billing": {"billable_logical_bytes_written": 0},
            "performance": {"server_total_ms": millis_since(started)},
        }))
    }

    /// Starts an async copy and returns its token.
    pub fn start_copy(self: &Arc<Self>, dest: &str, source: String, encryption: Value) -> String {
        let token = {
            let mut rng = self.rng.lock();
            format!("op_{:016x}", rng.random::<u64>())
        };
        self.ops.lock().insert(
            token.clone(),
            Operation {
                namespace: dest.to_string(),
                start_ms: now_ms(),
                finish_ms: None,
                result: None,
            },
        );
        let store = self.clone();
        let (dest, tok) = (dest.to_string(), token.clone());
        let delay = self.knobs.read().async_op_delay_ms;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let result = store
                .copy(&dest, &source, encryption)
                .map_err(|e| json!({"status_code": e.status().as_u16(), "detail": e.envelope()}));
            if let Some(op) = store.ops.lock().get_mut(&tok) {
                op.finish_ms = Some(now_ms());
                op.result = Some(result);
            }
        });
        token
    }

    /// `GET /v1/namespaces/{ns}/operations/{token}`.
    pub fn operation(&self, ns: &str, token: &str) -> ApiResult<Value> {
        let ops = self.ops.lock();
        let op = ops
            .get(token)
            .filter(|o| o.namespace == ns)
            .ok_or_else(|| ApiError::NotFound(format!("🤷 operation '{token}' was not found")))?;
        Ok(match (&op.result, op.finish_ms) {
            (Some(r), Some(fin)) => {
                let result = match r {
                    Ok(success) => json!({"success": success}),
                    Err(error) => json!({"error": error}),
                };
                json!({"status": "finished", "start_time": iso(op.start_ms), "finish_time": iso(fin), "result": result})
            }
            _ => {
                json!({"status": "running", "start_time": iso(op.start_ms), "progress": "copying documents"})
            }
        })
    }

    /// `DELETE /v2/namespaces/{ns}`.
    pub fn delete(&self, name: &str) -> ApiResult<Value> {
        self.namespaces
            .write()
            .remove(name)
            .ok_or_else(|| ApiError::namespace_not_found(name))?;
        self.dirty.lock().insert(name.to_string());
        Ok(json!({"status": "OK"}))
    }

    /// `GET /v1/namespaces`.
    pub fn list(
        &self,
        prefix: Option<&str>,
        cursor: Option<&str>,
        page_size: Option<&str>,
    ) -> ApiResult<Value> {
        let page_size = match page_size {
            None => 1000,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "invalid page_size '{s}': must be between 1 and 1000"
                    ))
                })?,
        };
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(
                decode_cursor(c)
                    .ok_or_else(|| ApiError::invalid(format!("invalid cursor '{c}'")))?,
            ),
        };
        let map = self.namespaces.read();
        let mut names = map
            .keys()
            .filter(|n| prefix.is_none_or(|p| n.starts_with(p)))
            .filter(|n| after.as_ref().is_none_or(|a| n.as_str() > a.as_str()));
        let page: Vec<&String> = names.by_ref().take(page_size).collect();
        let more = names.next().is_some();
        let mut body =
            json!({"namespaces": page.iter().map(|n| json!({"id": n})).collect::<Vec<_>>()});
        if more && let Some(last) = page.last() {
            body["next_cursor"] = json!(encode_cursor(last));
        }
        Ok(body)
    }

    /// Applies a change of the `query_permits` knob to existing namespaces too.
    pub fn resize_permits(&self, old: u32, new: u32) {
        for ns in self.namespaces.read().values() {
            if new > old {
                ns.permits.add_permits((new - old) as usize);
            } else {
                ns.permits.forget_permits((old - new) as usize);
            }
        }
    }

    /// Removes every namespace (used by tests through `DELETE /_emu/namespaces`).
    pub fn reset(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.namespaces.write())
            .into_keys()
            .collect();
        self.dirty.lock().extend(names);
    }

    fn persist_dirty(&self) -> std::io::Result<()> {
        let Some(dir) = &self.data_dir else {
            return Ok(());
        };
        let dir = dir.join("namespaces");
        let names: Vec<String> = std::mem::take(&mut *self.dirty.lock())
            .into_iter()
            .collect();
        for name in names {
            let path = dir.join(format!("{name}.json"));
            let ns = self.namespaces.read().get(&name).cloned();
            match ns {
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
                Some(ns) => {
                    let bytes = serde_json::to_vec(&Persisted::from_state(&ns.state.read()))?;
                    let tmp = dir.join(format!("{name}.json.tmp"));
                    std::fs::write(&tmp, bytes)?;
                    std::fs::rename(tmp, path)?;
                }
            }
        }
        Ok(())
    }

    /// Parses a write body (shared by the sync and async routes).
    pub fn parse_write(body: &[u8]) -> ApiResult<WriteRequest> {
        parse_body(body)
    }
}

fn encode_cursor(name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_cursor(c: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Whole milliseconds since `started`, rounded up: the contract's `performance` timings are
/// integers (`"server_total_ms":190`, `"query_execution_ms":4`), and rounding up keeps a request
/// that took any time at all from reporting 0.
pub fn millis_since(started: std::time::Instant) -> u64 {
    started.elapsed().as_micros().div_ceil(1000) as u64
}

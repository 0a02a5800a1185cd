//! The Aerospike shared tier (cargo feature `aerospike`): same [`Tier`] contract as the NVMe tier,
//! backed by an Aerospike server (the product's production document cache).
//!
//! Layout: Aerospike namespace from config; Aerospike `set` = [`Set::as_str`] (`documents`,
//! `chunks`, `snapshots`); user key = `"{len(ns)}:{ns}:{generation}:{id}"`; a blob bin `v` with
//! the value, and bins `ns`, `gen`, `id` so [`Tier::scan`] can recover keys (Aerospike stores only
//! the key's digest). A scan is an Aerospike query over the set with a filter expression
//! `ns == <ns> && gen == <current generation>`, paged with the client's partition cursor
//! (`max_records` per page), so cleared generations and deleted records never come back.
//! Records written before these bins existed are invisible to scans (they still serve `get`).
//! Namespace clears bump a generation kept in the `layer_generations` set (bin `g`), so a clear
//! never scans: old records become unreachable and age out by the namespace's TTL / eviction.
//! Generations are cached in memory per gateway after the first read (single gateway writer per
//! Aerospike node, as `limits.md` states; another gateway's clear is seen after a restart).
//!
//! Needs a tokio runtime (the aerospike client's `rt-tokio`); the futures are `Send + 'static`.

use std::sync::Arc;

use aerospike::expressions::{and, eq, int_bin, int_val, string_bin, string_val};
use aerospike::{
    Bin, Bins, Client, ClientPolicy, Key, PartitionFilter, QueryPolicy, ReadPolicy, Record,
    ResultCode, Statement, Value, WritePolicy,
};
use bytes::Bytes;
use hashbrown::HashMap;
use parking_lot::Mutex;

use crate::key::check_key;
use crate::tier::{CursorPos, TierFuture};
use crate::{CacheError, CacheState, Health, HealthCell, ScanCursor, ScanPage, Set, Tier};

const VALUE_BIN: &str = "v";
const NS_BIN: &str = "ns";
const ID_BIN: &str = "id";
const RECORD_GEN_BIN: &str = "gen";
const GEN_BIN: &str = "g";
const GEN_SET: &str = "layer_generations";

/// Connection settings.
#[derive(Clone, Debug)]
pub struct AerospikeConfig {
    /// Seed hosts, `host:port[,host:port]` (what `AEROSPIKE_HOSTS` holds).
    pub hosts: String,
    /// Aerospike namespace holding the cache.
    pub namespace: String,
    /// Consecutive failures before health reports `cold`.
    pub error_threshold: u32,
}

impl AerospikeConfig {
    /// Defaults: namespace `layer`, cold after 8 consecutive failures.
    pub fn new(hosts: impl Into<String>) -> Self {
        AerospikeConfig {
            hosts: hosts.into(),
            namespace: "layer".into(),
            error_threshold: 8,
        }
    }
}

/// [`Tier`] over an Aerospike cluster. Cheap to clone.
#[derive(Clone)]
pub struct AerospikeTier {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    namespace: String,
    health: HealthCell,
    generations: Mutex<HashMap<(Set, String), u64>>,
}

fn backend(e: &aerospike::Error) -> CacheError {
    CacheError::Backend(e.to_string())
}

impl AerospikeTier {
    /// Connects (the client then maintains the cluster connection itself).
    pub async fn connect(cfg: AerospikeConfig) -> Result<AerospikeTier, CacheError> {
        let client = Client::new(&ClientPolicy::default(), &cfg.hosts)
            .await
            .map_err(|e| CacheError::Unavailable(format!("aerospike connect: {e}")))?;
        Ok(AerospikeTier {
            inner: Arc::new(Inner {
                client,
                namespace: cfg.namespace,
                health: HealthCell::new(CacheState::Warm, cfg.error_threshold),
                generations: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Inner {
    fn gen_key(&self, set: Set, ns: &str) -> Result<Key, CacheError> {
        Key::new(
            self.namespace.clone(),
            GEN_SET,
            Value::String(format!("{}:{ns}", set.as_str())),
        )
        .map_err(|e| backend(&e))
    }

    fn record_key(&self, set: Set, ns: &str, gen_: u64, id: &str) -> Result<Key, CacheError> {
        let user_key = format!("{}:{ns}:{gen_}:{id}", ns.len());
        Key::new(
            self.namespace.clone(),
            set.as_str(),
            Value::String(user_key),
        )
        .map_err(|e| backend(&e))
    }

    /// The namespace's current generation (cached after the first read).
    async fn generation(&self, set: Set, ns: &str) -> Result<u64, CacheError> {
        if let Some(g) = self.generations.lock().get(&(set, ns.to_string())) {
            return Ok(*g);
        }
        let key = self.gen_key(set, ns)?;
        let g = match self
            .client
            .get(&ReadPolicy::default(), &key, Bins::All)
            .await
        {
            Ok(rec) => match rec.bins.get(GEN_BIN) {
                Some(Value::Int(g)) => *g as u64,
                _ => 0,
            },
            Err(e) if e.server_result_code() == Some(ResultCode::KeyNotFoundError) => 0,
            Err(e) => return Err(backend(&e)),
        };
        self.generations.lock().insert((set, ns.to_string()), g);
        Ok(g)
    }

    fn observe<T>(&self, r: Result<T, CacheError>) -> Result<T, CacheError> {
        match &r {
            Ok(_) => self.health.record_ok(),
            Err(e) if e.is_tier_failure() => self.health.record_err(),
            Err(_) => {}
        }
        r
    }

    async fn get(&self, set: Set, ns: &str, id: &str) -> Result<Option<Bytes>, CacheError> {
        let key = self.record_key(set, ns, self.generation(set, ns).await?, id)?;
        match self
            .client
            .get(&ReadPolicy::default(), &key, Bins::All)
            .await
        {
            Ok(rec) => match rec.bins.get(VALUE_BIN) {
                Some(Value::Blob(b)) => Ok(Some(Bytes::copy_from_slice(b))),
                _ => Err(CacheError::Corrupt(
                    "aerospike record has no blob bin".into(),
                )),
            },
            Err(e) if e.server_result_code() == Some(ResultCode::KeyNotFoundError) => Ok(None),
            Err(e) => Err(backend(&e)),
        }
    }

    async fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> Result<(), CacheError> {
        let gen_ = self.generation(set, ns).await?;
        let key = self.record_key(set, ns, gen_, id)?;
        let bins = [
            Bin::new(VALUE_BIN, Value::Blob(value.to_vec())),
            Bin::new(NS_BIN, Value::String(ns.to_string())),
            Bin::new(ID_BIN, Value::String(id.to_string())),
            Bin::new(RECORD_GEN_BIN, Value::Int(gen_ as i64)),
        ];
        self.client
            .put(&WritePolicy::default(), &key, &bins)
            .await
            .map_err(|e| backend(&e))
    }

    async fn delete(&self, set: Set, ns: &str, id: &str) -> Result<(), CacheError> {
        let key = self.record_key(set, ns, self.generation(set, ns).await?, id)?;
        self.client
            .delete(&WritePolicy::default(), &key)
            .await
            .map(|_| ())
            .map_err(|e| backend(&e))
    }

    async fn clear_namespace(&self, set: Set, ns: &str) -> Result<(), CacheError> {
        let next = self.generation(set, ns).await? + 1;
        let key = self.gen_key(set, ns)?;
        let bins = [Bin::new(GEN_BIN, Value::Int(next as i64))];
        self.client
            .put(&WritePolicy::default(), &key, &bins)
            .await
            .map_err(|e| backend(&e))?;
        self.generations.lock().insert((set, ns.to_string()), next);
        Ok(())
    }

    /// One page of a scan: a query over the set filtered to the namespace's current generation,
    /// resumed from the partition cursor and stopped after `limit` records.
    async fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage, CacheError> {
        let gen_ = self.generation(set, ns).await?;
        let mut policy = QueryPolicy {
            max_records: limit.max(1) as u64,
            ..QueryPolicy::default()
        };
        policy.base_policy.filter_expression = Some(and(vec![
            eq(string_bin(NS_BIN), string_val(ns.to_string())),
            eq(int_bin(RECORD_GEN_BIN), int_val(gen_ as i64)),
        ]));
        let filter = match cursor {
            Some(ScanCursor(CursorPos::Partitions(f))) => f,
            _ => PartitionFilter::all(),
        };
        let statement = Statement::new(self.namespace.clone(), set.as_str(), Bins::All);
        let found: Arc<Mutex<Found>> = Arc::default();
        let sink = Arc::clone(&found);
        let mut handle = self
            .client
            .query_foreach(&policy, filter, statement, move |rec| {
                let sink = Arc::clone(&sink);
                async move {
                    let mut out = sink.lock();
                    match rec.map_err(|e| backend(&e)).and_then(|r| scanned(&r)) {
                        Ok(entry) => {
                            out.0.push(entry);
                            true
                        }
                        Err(e) => {
                            out.1.get_or_insert(e);
                            false
                        }
                    }
                }
            })
            .await
            .map_err(|e| backend(&e))?;
        handle.wait().await.map_err(|e| backend(&e))?;
        let next = handle
            .partition_filter()
            .filter(|f| !f.done())
            .map(|f| ScanCursor(CursorPos::Partitions(f)));
        let (entries, error) = std::mem::take(&mut *found.lock());
        match error {
            Some(e) => Err(e),
            None => Ok(ScanPage { entries, next }),
        }
    }
}

/// What a scan page's callback collected: entries, and the first error that stopped it.
type Found = (Vec<(String, Bytes)>, Option<CacheError>);

/// The `(id, value)` of one scanned record.
fn scanned(rec: &Record) -> Result<(String, Bytes), CacheError> {
    match (rec.bins.get(ID_BIN), rec.bins.get(VALUE_BIN)) {
        (Some(Value::String(id)), Some(Value::Blob(v))) => {
            Ok((id.clone(), Bytes::copy_from_slice(v)))
        }
        _ => Err(CacheError::Corrupt(
            "aerospike record lacks the id or value bin".into(),
        )),
    }
}

impl Tier for AerospikeTier {
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>> {
        let (inner, ns, id) = (Arc::clone(&self.inner), ns.to_string(), id.to_string());
        Box::pin(async move {
            check_key(&ns, &id)?;
            inner.observe(inner.get(set, &ns, &id).await)
        })
    }

    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        let (inner, ns, id) = (Arc::clone(&self.inner), ns.to_string(), id.to_string());
        Box::pin(async move {
            check_key(&ns, &id)?;
            inner.observe(inner.put(set, &ns, &id, value).await)
        })
    }

    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        let (inner, ns, id) = (Arc::clone(&self.inner), ns.to_string(), id.to_string());
        Box::pin(async move {
            check_key(&ns, &id)?;
            inner.observe(inner.delete(set, &ns, &id).await)
        })
    }

    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        let (inner, ns) = (Arc::clone(&self.inner), ns.to_string());
        Box::pin(async move {
            check_key(&ns, "")?;
            inner.observe(inner.clear_namespace(set, &ns).await)
        })
    }

    fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> TierFuture<ScanPage> {
        let (inner, ns) = (Arc::clone(&self.inner), ns.to_string());
        Box::pin(async move {
            check_key(&ns, "")?;
            inner.observe(inner.scan(set, &ns, cursor, limit).await)
        })
    }

    fn health(&self) -> Health {
        let h = self.inner.health.snapshot();
        if !self.inner.client.is_connected() {
            return Health {
                state: CacheState::Cold,
                ..h
            };
        }
        h
    }

    fn name(&self) -> &'static str {
        "aerospike"
    }
}

//! One namespace's state and the indexer model (contract §13.3).
//!
//! Every write appends a WAL entry (its serialised size, its row count and its resolved effect on
//! documents) and applies to `docs`, the latest state. The indexer drains the WAL into `indexed`.
//! While the WAL is non-empty the namespace reports `index.status: "updating"`; queries see
//! `indexed` plus as much unindexed WAL as their consistency level's visibility limit allows.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Doc, Id, IdKind};
use crate::schema::Schema;

/// Distance metrics. The variant list (and its order) reproduces the live service's 422 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    Unknown,
    #[serde(rename = "euclidean_squared")]
    EuclideanSquared,
    #[serde(rename = "cosine_distance")]
    CosineDistance,
    #[serde(rename = "euclidean")]
    Euclidean,
    Query,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Unknown => "Unknown",
            Metric::EuclideanSquared => "euclidean_squared",
            Metric::CosineDistance => "cosine_distance",
            Metric::Euclidean => "euclidean",
            Metric::Query => "Query",
        }
    }

    /// Distance between two vectors (smaller is closer).
    pub fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::CosineDistance => {
                let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (f64::from(*x), f64::from(*y));
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                if na == 0.0 || nb == 0.0 {
                    1.0
                } else {
                    1.0 - dot / (na.sqrt() * nb.sqrt())
                }
            }
            Metric::Euclidean => sq_dist(a, b).sqrt(),
            _ => sq_dist(a, b),
        }
    }
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y) * f64::from(x - y))
        .sum()
}

/// The effect of one write on one document: its new state, or `None` for a delete.
pub type Effect = (Id, Option<Arc<Doc>>);

/// One unindexed write.
#[derive(Debug)]
pub struct WalEntry {
    pub bytes: u64,
    pub rows: u64,
    pub effects: Vec<Effect>,
}

/// A namespace's full state, guarded by the namespace's lock.
#[derive(Debug)]
pub struct NsState {
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_write_at_ms: Option<i64>,
    pub schema: Schema,
    pub id_kind: Option<IdKind>,
    pub metric: Option<Metric>,
    /// Latest state: what strong reads see.
    pub docs: BTreeMap<Id, Arc<Doc>>,
    /// What the index holds.
    pub indexed: BTreeMap<Id, Arc<Doc>>,
    pub wal: VecDeque<WalEntry>,
    pub unindexed_bytes: u64,
    pub unindexed_rows: u64,
    pub pinning: Option<Value>,
    pub read_only: bool,
    pub sharding: Option<u64>,
    pub encryption: Value,
}

impl NsState {
    pub fn new(now_ms: i64) -> Self {
        NsState {
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            last_write_at_ms: None,
            schema: Schema::new(),
            id_kind: None,
            metric: None,
            docs: BTreeMap::new(),
            indexed: BTreeMap::new(),
            wal: VecDeque::new(),
            unindexed_bytes: 0,
            unindexed_rows: 0,
            pinning: None,
            read_only: false,
            sharding: None,
            encryption: serde_json::json!({"mode": "default"}),
        }
    }

    /// Appends a committed write to the WAL.
    pub fn append_wal(&mut self, bytes: u64, effects: Vec<Effect>) {
        let rows = effects.len() as u64;
        self.unindexed_bytes += bytes;
        self.unindexed_rows += rows;
        self.wal.push_back(WalEntry {
            bytes,
            rows,
            effects,
        });
    }

    /// Indexes up to `budget_rows` rows of the WAL, oldest first, splitting an entry when the
    /// budget ends inside it (so `rows_per_sec` throttles large writes too). Returns the rows
    /// indexed.
    pub fn index_step(&mut self, budget_rows: u64) -> u64 {
        let mut done = 0;
        while done < budget_rows {
            let Some(front) = self.wal.front_mut() else {
                break;
            };
            let room = budget_rows - done;
            let part = if front.rows <= room {
                let Some(entry) = self.wal.pop_front() else {
                    break;
                };
                entry
            } else {
                let take = room as usize;
                let effects: Vec<Effect> = front.effects.drain(..take).collect();
                let bytes = front.bytes * room / front.rows;
                front.rows -= room;
                front.bytes -= bytes;
                WalEntry {
                    bytes,
                    rows: room,
                    effects,
                }
            };
            for (id, doc) in part.effects {
                match doc {
                    Some(d) => self.indexed.insert(id, d),
                    None => self.indexed.remove(&id),
                };
            }
            self.unindexed_bytes -= part.bytes;
            self.unindexed_rows -= part.rows;
            done += part.rows.max(1);
        }
        done
    }

    /// Indexes everything now.
    pub fn flush(&mut self) {
        self.index_step(u64::MAX);
    }

    /// The documents a query sees when at most `limit_bytes` of unindexed WAL is searchable.
    pub fn view(&self, limit_bytes: u64) -> Cow<'_, BTreeMap<Id, Arc<Doc>>> {
        if self.unindexed_bytes <= limit_bytes {
            return Cow::Borrowed(&self.docs);
        }
        let mut view = self.indexed.clone();
        let mut used = 0;
        for entry in &self.wal {
            if used + entry.bytes > limit_bytes {
                break;
            }
            used += entry.bytes;
            for (id, doc) in &entry.effects {
                match doc {
                    Some(d) => view.insert(id.clone(), d.clone()),
                    None => view.remove(id),
                };
            }
        }
        Cow::Owned(view)
    }

    /// Rows and bytes the index holds (`approx_row_count`, `approx_logical_bytes`).
    pub fn indexed_size(&self) -> (u64, u64) {
        (
            self.indexed.len() as u64,
            self.indexed.values().map(|d| d.bytes).sum(),
        )
    }

    /// Whether the namespace holds nothing at all (a copy destination must be empty).
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty() && self.schema.is_empty() && self.wal.is_empty()
    }
}

/// The persisted form of a namespace (`--data-dir`).
#[derive(Serialize, Deserialize)]
pub struct Persisted {
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_write_at_ms: Option<i64>,
    pub schema: Schema,
    pub id_kind: Option<IdKind>,
    pub metric: Option<Metric>,
    pub docs: Vec<(Id, Doc)>,
    pub pinning: Option<Value>,
    pub read_only: bool,
    pub sharding: Option<u64>,
    pub encryption: Value,
}

impl Persisted {
    pub fn from_state(s: &NsState) -> Self {
        Persisted {
            created_at_ms: s.created_at_ms,
            updated_at_ms: s.updated_at_ms,
            last_write_at_ms: s.last_write_at_ms,
            schema: s.schema.clone(),
            id_kind: s.id_kind,
            metric: s.metric,
            docs: s
                .docs
                .iter()
                .map(|(id, d)| (id.clone(), (**d).clone()))
                .collect(),
            pinning: s.pinning.clone(),
            read_only: s.read_only,
            sharding: s.sharding,
            encryption: s.encryption.clone(),
        }
    }

    /// Restores a namespace; everything restored counts as indexed. Tokens are rebuilt.
    pub fn into_state(self) -> NsState {
        let mut s = NsState::new(self.created_at_ms);
        s.updated_at_ms = self.updated_at_ms;
        s.last_write_at_ms = self.last_write_at_ms;
        s.id_kind = self.id_kind;
        s.metric = self.metric;
        s.pinning = self.pinning;
        s.read_only = self.read_only;
        s.sharding = self.sharding;
        s.encryption = self.encryption;
        for (id, mut doc) in self.docs {
            crate::fts::tokenize_doc(&self.schema, &mut doc);
            s.docs.insert(id, Arc::new(doc));
        }
        s.schema = self.schema;
        s.indexed = s.docs.clone();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(id: u64) -> Effect {
        (Id::Uint(id), Some(Arc::new(Doc::default())))
    }

    #[test]
    fn indexer_drains_in_order_and_views_respect_limits() {
        let mut s = NsState::new(0);
        for i in 0..3 {
            let e = effect(i);
            s.docs.insert(e.0.clone(), e.1.clone().unwrap());
            s.append_wal(100, vec![e]);
        }
        assert_eq!((s.unindexed_rows, s.unindexed_bytes), (3, 300));
        assert_eq!(
            s.view(150).len(),
            1,
            "only the first entry fits in 150 bytes"
        );
        assert_eq!(s.view(1000).len(), 3);
        assert_eq!(s.index_step(2), 2);
        assert_eq!(s.indexed_size().0, 2);
        s.flush();
        assert_eq!((s.unindexed_rows, s.indexed.len()), (0, 3));
    }

    #[test]
    fn a_large_entry_is_indexed_in_parts() {
        let mut s = NsState::new(0);
        let effects: Vec<Effect> = (0..10).map(effect).collect();
        s.append_wal(1000, effects);
        assert_eq!(s.index_step(3), 3);
        assert_eq!(
            (s.indexed.len(), s.unindexed_rows, s.unindexed_bytes),
            (3, 7, 700)
        );
        s.flush();
        assert_eq!(
            (s.indexed.len(), s.unindexed_rows, s.unindexed_bytes),
            (10, 0, 0)
        );
    }

    #[test]
    fn metrics() {
        assert!((Metric::CosineDistance.distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-9);
        assert_eq!(
            Metric::EuclideanSquared.distance(&[0.0, 0.0], &[3.0, 4.0]),
            25.0
        );
    }
}

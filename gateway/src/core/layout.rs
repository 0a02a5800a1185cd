//! Namespace layouts set at run time: the Layer state `POST /v2/namespaces/{ns}/init` gives a
//! namespace (its Layer schema version and its scatter/gather shard count), published lock-free
//! so the write path's stamper and every scatter/gather planner read it through
//! [`super::Core::shards_of`]. A configured index's `shards` wins over a layout (init refuses a
//! different count); the durable copy lives in the object store (`crate::sources::layouts`).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// One namespace's Layer state, as init recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub schema_version: u32,
    /// Scatter/gather buckets (`_hevlayer_shard = xxh64(id) % shard_count`); 1 = unsharded.
    pub shard_count: u32,
    pub initialized_at_ms: u64,
}

/// Every namespace's layout, published with arc-swap (readers never lock).
#[derive(Default)]
pub struct Layouts {
    map: ArcSwap<HashMap<String, Layout>>,
}

impl Layouts {
    /// The layout of `ns`, if it was initialized.
    pub fn get(&self, ns: &str) -> Option<Layout> {
        self.map.load().get(ns).copied()
    }

    /// Publishes one namespace's layout.
    pub fn insert(&self, ns: &str, layout: Layout) {
        self.map.rcu(|m| {
            let mut next = HashMap::clone(m);
            next.insert(ns.to_string(), layout);
            next
        });
    }

    /// Publishes layouts read from the durable copy. A namespace already published keeps its
    /// layout: layouts never change once set, so only the missing ones are added.
    pub fn extend(&self, loaded: impl IntoIterator<Item = (String, Layout)>) {
        let loaded: Vec<(String, Layout)> = loaded.into_iter().collect();
        if loaded
            .iter()
            .all(|(ns, _)| self.map.load().contains_key(ns))
        {
            return;
        }
        self.map.rcu(|m| {
            let mut next = HashMap::clone(m);
            for (ns, l) in &loaded {
                next.entry(ns.clone()).or_insert(*l);
            }
            Arc::new(next)
        });
    }

    /// Number of initialized namespaces.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether no namespace was initialized.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

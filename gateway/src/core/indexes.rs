//! The indexes the gateway serves, by upstream namespace: the file's (`layer.yaml` `indexes`,
//! fixed at start) and, in a cluster, the `Index` resources a watch delivers (replaced whole on
//! every change). Readers take a snapshot without locks; a cluster `Index` for a namespace the
//! file also configures wins (the cluster is the desired state there).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::config::IndexConfig;

/// Indexes by upstream namespace.
pub type IndexTable = HashMap<String, Arc<IndexConfig>>;

/// The file's indexes plus the cluster's, published together.
pub struct Indexes {
    file: IndexTable,
    current: ArcSwap<IndexTable>,
}

impl Indexes {
    /// The file's indexes (the first entry for a namespace wins; `validate` refuses duplicates).
    pub fn new(file: &[IndexConfig]) -> Indexes {
        let mut table = IndexTable::with_capacity(file.len());
        for i in file {
            table
                .entry(i.namespace().to_string())
                .or_insert_with(|| Arc::new(i.clone()));
        }
        Indexes {
            current: ArcSwap::from_pointee(table.clone()),
            file: table,
        }
    }

    /// The index serving `ns` (a counted reference: for callers that keep it).
    pub fn get(&self, ns: &str) -> Option<Arc<IndexConfig>> {
        self.current.load().get(ns).cloned()
    }

    /// `f` of the index serving `ns`, borrowed: the request path's form (no reference count
    /// moves, so no cache line all shards share is written).
    pub fn with<R>(&self, ns: &str, f: impl FnOnce(Option<&IndexConfig>) -> R) -> R {
        f(self.current.load().get(ns).map(|i| &**i))
    }

    /// Every index now.
    pub fn snapshot(&self) -> Arc<IndexTable> {
        self.current.load_full()
    }

    /// Replaces the cluster's indexes (every `Index` the watch holds); returns the namespaces
    /// that are new, so the caller can register them with the consistency watcher.
    pub fn set_cluster(&self, cluster: Vec<IndexConfig>) -> Vec<String> {
        let before = self.current.load_full();
        let mut table = self.file.clone();
        for i in cluster {
            table.insert(i.namespace().to_string(), Arc::new(i));
        }
        let added = table
            .keys()
            .filter(|ns| !before.contains_key(*ns))
            .cloned()
            .collect();
        self.current.store(Arc::new(table));
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str, threads: Option<u32>) -> IndexConfig {
        let mut i = IndexConfig {
            name: name.into(),
            ..IndexConfig::default()
        };
        i.scan.threads = threads;
        i
    }

    #[test]
    fn cluster_indexes_join_and_override_the_file_and_leave_again() {
        let idx = Indexes::new(&[index("a", Some(2))]);
        assert_eq!(idx.get("a").unwrap().scan.threads, Some(2));
        let added = idx.set_cluster(vec![index("a", Some(5)), index("b", None)]);
        assert_eq!(added, vec!["b".to_string()]);
        assert_eq!(idx.get("a").unwrap().scan.threads, Some(5));
        assert!(idx.get("b").is_some());
        // The cluster's set shrinks: the file's index comes back, b is gone.
        assert!(idx.set_cluster(vec![]).is_empty());
        assert_eq!(idx.get("a").unwrap().scan.threads, Some(2));
        assert!(idx.get("b").is_none());
        assert_eq!(idx.snapshot().len(), 1);
    }
}

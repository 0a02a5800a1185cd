//! The indexes the gateway serves, by upstream namespace: the file's (`layer.yaml` `indexes`,
//! read at start and again on SIGHUP, see [`super::reload`]) and, in a cluster, the `Index`
//! resources a watch delivers. Each source's set is replaced whole on every change and the two
//! are combined again. Readers take a snapshot without locks; a cluster `Index` for a namespace
//! the file also configures wins (the cluster is the desired state there).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::config::IndexConfig;

/// Indexes by upstream namespace.
pub type IndexTable = HashMap<String, Arc<IndexConfig>>;

/// The file's indexes plus the cluster's, published together.
pub struct Indexes {
    /// `(file, cluster)`: the two sources' latest sets (writers serialize here).
    sources: Mutex<(IndexTable, IndexTable)>,
    current: ArcSwap<IndexTable>,
}

/// One source's indexes as a table (the first entry for a namespace wins; `validate` and the
/// watch refuse duplicates).
fn table(indexes: impl IntoIterator<Item = IndexConfig>) -> IndexTable {
    let mut table = IndexTable::new();
    for i in indexes {
        table
            .entry(i.namespace().to_string())
            .or_insert_with(|| Arc::new(i));
    }
    table
}

impl Indexes {
    /// The file's indexes.
    pub fn new(file: &[IndexConfig]) -> Indexes {
        let file = table(file.iter().cloned());
        Indexes {
            current: ArcSwap::from_pointee(file.clone()),
            sources: Mutex::new((file, IndexTable::new())),
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

    /// The file's indexes now (before the cluster's override them).
    pub fn file(&self) -> IndexTable {
        self.sources.lock().0.clone()
    }

    /// Replaces the cluster's indexes (every `Index` the watch holds); returns the namespaces
    /// that are new, so the caller can register them with the consistency watcher.
    pub fn set_cluster(&self, cluster: Vec<IndexConfig>) -> Vec<String> {
        let mut sources = self.sources.lock();
        sources.1 = table(cluster);
        self.publish(&sources)
    }

    /// Replaces the file's indexes (a `layer.yaml` re-read on SIGHUP); returns the namespaces
    /// that are new, as [`Indexes::set_cluster`] does.
    pub fn set_file(&self, file: Vec<IndexConfig>) -> Vec<String> {
        let mut sources = self.sources.lock();
        sources.0 = table(file);
        self.publish(&sources)
    }

    /// Combines the two sources (the cluster's win) and publishes the result; the namespaces
    /// the previous table did not have, sorted.
    fn publish(&self, (file, cluster): &(IndexTable, IndexTable)) -> Vec<String> {
        let before = self.current.load_full();
        let mut table = file.clone();
        for (ns, i) in cluster {
            table.insert(ns.clone(), i.clone());
        }
        let mut added: Vec<String> = table
            .keys()
            .filter(|ns| !before.contains_key(*ns))
            .cloned()
            .collect();
        added.sort();
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

    #[test]
    fn a_reloaded_file_changes_what_the_cluster_does_not_override() {
        let idx = Indexes::new(&[index("a", Some(2)), index("c", Some(1))]);
        idx.set_cluster(vec![index("a", Some(5))]);
        // The file changes a (the cluster's a still wins), drops c and adds d.
        let added = idx.set_file(vec![index("a", Some(3)), index("d", Some(7))]);
        assert_eq!(added, vec!["d".to_string()]);
        assert_eq!(idx.get("a").unwrap().scan.threads, Some(5));
        assert!(idx.get("c").is_none());
        assert_eq!(idx.get("d").unwrap().scan.threads, Some(7));
        assert_eq!(idx.file()["a"].scan.threads, Some(3));
        // The cluster lets go of a: the reloaded file's a shows, not the one from the start.
        idx.set_cluster(vec![]);
        assert_eq!(idx.get("a").unwrap().scan.threads, Some(3));
    }
}

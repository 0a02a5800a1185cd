//! `layer.yaml` re-read on SIGHUP (standalone mode; in a cluster the `Index` watch does this).
//!
//! [`Reloader::reload`] loads the file again the way the gateway started (the same path, the
//! same `LAYER_*` environment overrides and command-line flags: the caller's [`Loader`]),
//! validates it whole with the checks the gateway ran at start, and only then publishes the new
//! `indexes` section ([`super::indexes::Indexes::set_file`]; a cluster `Index` still wins for its
//! namespace). Namespaces new to the gateway join the consistency watcher.
//!
//! Every other section (`gateway`, `vectorStore`, `vectorStores`, `warehouses`, `agents`) is
//! read once, at start: a change there is logged as a warning naming the sections and is not
//! applied. An index whose `backend.storeRef` would route its namespace to another store than
//! the gateway started with keeps its previous entry (routing is fixed at start, as for the
//! cluster watch). A file that does not read, parse or validate changes nothing: the error
//! (with the line, for a parse error) is logged and the gateway keeps serving what it had.
//!
//! Metric: `layer_config_reloads_total{result="applied"|"invalid"}`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::Core;
use super::config::{Config, ConfigError, IndexConfig};
use super::labeled::{self, Kind};

/// The reload counter's family.
pub const RELOADS: &str = "layer_config_reloads_total";

/// Loads the configuration as the gateway did at start (file, environment, flags).
pub type Loader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// Resolves environment variables (credentials, `tokenEnv`) for validation.
pub type Env = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Declares the counter (at start, so `/metrics` lists it before the first reload).
pub fn describe() {
    labeled::describe(
        RELOADS,
        Kind::Counter,
        "layer.yaml reloads on SIGHUP, by result (applied, invalid).",
    );
}

fn count(result: &'static str) {
    labeled::count(RELOADS, labeled::labels(&[("result", result)]), 1);
}

/// What an applied reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Namespaces whose index is new, changed or gone.
    pub indexes_changed: Vec<String>,
    /// What changed in the file but needs a restart (section names, or
    /// `indexes[<name>].backend.storeRef`).
    pub not_applied: Vec<String>,
}

/// Re-reads `layer.yaml` and applies what may change while running.
pub struct Reloader {
    core: Arc<Core>,
    started: Config,
    load: Loader,
    env: Env,
}

impl Reloader {
    /// `started` is the configuration as loaded at start (before the gateway resolved anything
    /// in it); `load` loads it again.
    pub fn new(core: Arc<Core>, started: Config, load: Loader, env: Env) -> Reloader {
        Reloader {
            core,
            started,
            load,
            env,
        }
    }

    /// One reload: logs and counts its result. An `Err` changed nothing.
    pub fn reload(&self) -> Result<Applied, ConfigError> {
        let result = self.try_reload();
        match &result {
            Ok(a) => {
                count("applied");
                tracing::info!(
                    indexes_changed = ?a.indexes_changed,
                    "configuration reloaded: indexes applied"
                );
                if !a.not_applied.is_empty() {
                    tracing::warn!(
                        sections = ?a.not_applied,
                        "configuration reloaded, but these changes need a restart and were not applied"
                    );
                }
            }
            Err(e) => {
                count("invalid");
                tracing::error!(error = %e, "configuration reload refused; still serving the previous configuration");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Applied, ConfigError> {
        let cfg = (self.load)()?;
        cfg.validate(&*self.env)?;
        if cfg.gateway.cache.tier == super::config::CacheTierKind::Aerospike
            && !cfg!(feature = "aerospike")
        {
            return Err(ConfigError::Invalid(
                "cache.tier aerospike needs a gateway built with `--features aerospike`".into(),
            ));
        }
        let mut not_applied = restart_only(&self.started, &cfg);
        let routing = self.core.auth.routing().clone();
        let old = self.core.indexes.file();
        let new: HashMap<&str, &IndexConfig> =
            cfg.indexes.iter().map(|i| (i.namespace(), i)).collect();
        let all: BTreeSet<&str> = old
            .keys()
            .map(String::as_str)
            .chain(new.keys().copied())
            .collect();
        let mut next = Vec::with_capacity(new.len());
        let mut indexes_changed = Vec::new();
        for ns in all {
            let (before, after) = (old.get(ns).map(|i| &**i), new.get(ns).copied());
            let wants = after
                .and_then(|i| i.backend.store_ref.as_deref())
                .unwrap_or(&routing.default_store);
            let keep = if wants != routing.store_of(ns) {
                let name = after.or(before).map_or(ns, |i| i.name.as_str());
                not_applied.push(format!("indexes[{name}].backend.storeRef"));
                before
            } else {
                after
            };
            if keep.map(|i| format!("{i:?}")) != before.map(|i| format!("{i:?}")) {
                indexes_changed.push(ns.to_string());
            }
            next.extend(keep.cloned());
        }
        for ns in self.core.indexes.set_file(next) {
            self.core.watcher.register(&ns);
        }
        Ok(Applied {
            indexes_changed,
            not_applied,
        })
    }
}

/// The sections that differ between `a` and `b`, except `indexes`.
fn restart_only(a: &Config, b: &Config) -> Vec<String> {
    let differ =
        |x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| format!("{x:?}") != format!("{y:?}");
    [
        ("gateway", differ(&a.gateway, &b.gateway)),
        ("vectorStore", differ(&a.vector_store, &b.vector_store)),
        ("vectorStores", differ(&a.vector_stores, &b.vector_stores)),
        ("warehouses", differ(&a.warehouses, &b.warehouses)),
        ("agents", differ(&a.agents, &b.agents)),
    ]
    .into_iter()
    .filter(|(_, d)| *d)
    .map(|(s, _)| s.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    fn index(name: &str, label: &str, store_ref: Option<&str>) -> IndexConfig {
        let mut i = IndexConfig {
            name: name.into(),
            ..IndexConfig::default()
        };
        i.metadata.labels.insert("v".into(), label.into());
        i.backend.store_ref = store_ref.map(Into::into);
        i
    }

    fn label(core: &Core, ns: &str) -> Option<String> {
        core.indexes.get(ns).map(|i| i.metadata.labels["v"].clone())
    }

    #[test]
    fn a_reload_applies_valid_indexes_keeps_routing_and_refuses_a_bad_file_whole() {
        let core = crate::core::test_core();
        let started = core.config.clone();
        let file = Arc::new(Mutex::new(started.clone()));
        let f = file.clone();
        let r = Reloader::new(
            core.clone(),
            started.clone(),
            Box::new(move || Ok(f.lock().clone())),
            Box::new(|_| None),
        );
        // a is new; b would route its namespace to a store added to the file (itself a change
        // that needs a restart): not applied.
        {
            let mut f = file.lock();
            let mut other = f.vector_store.clone();
            other.name = "other".into();
            f.vector_stores.push(other);
            f.indexes = vec![index("a", "1", None), index("b", "1", Some("other"))];
        }
        let applied = r.reload().expect("valid");
        assert_eq!(applied.indexes_changed, vec!["a"]);
        assert_eq!(
            applied.not_applied,
            vec!["vectorStores", "indexes[b].backend.storeRef"]
        );
        assert_eq!(label(&core, "a").as_deref(), Some("1"));
        assert!(core.indexes.get("b").is_none());
        // Two indexes on one namespace: refused whole, a keeps its label.
        file.lock().indexes = vec![index("a", "2", None), index("a", "3", None)];
        assert!(r.reload().is_err());
        assert_eq!(label(&core, "a").as_deref(), Some("1"));
        // A loader error (an unparseable file) changes nothing either.
        let failing = Reloader::new(
            core.clone(),
            started.clone(),
            Box::new(|| Err(ConfigError::Invalid("bad".into()))),
            Box::new(|_| None),
        );
        assert!(failing.reload().is_err());
        assert_eq!(label(&core, "a").as_deref(), Some("1"));
        // A restart-only section changes with the index: the index applies, the section is named.
        {
            let mut f = file.lock();
            f.indexes = vec![index("a", "4", None)];
            f.gateway.shards = 9;
        }
        let applied = r.reload().expect("valid");
        assert_eq!(applied.not_applied, vec!["gateway", "vectorStores"]);
        assert_eq!(label(&core, "a").as_deref(), Some("4"));
        assert_eq!(core.config.gateway.shards, started.gateway.shards);
    }

    #[test]
    fn only_changed_sections_other_than_indexes_are_named() {
        let a = Config::default();
        let mut b = a.clone();
        b.indexes.push(IndexConfig {
            name: "x".into(),
            ..IndexConfig::default()
        });
        assert!(restart_only(&a, &b).is_empty());
        b.gateway.shards = 7;
        b.agents = a.agents.clone();
        b.vector_store.name = "other".into();
        assert_eq!(restart_only(&a, &b), vec!["gateway", "vectorStore"]);
    }
}

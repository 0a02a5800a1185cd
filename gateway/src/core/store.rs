//! The durable object store behind search history, clickstream and snapshot bodies: one
//! [`ObjectStore`] handle over the `object_store` crate, so S3 (production) and a local directory
//! (the embedded default, `<dataDir>/objects`) share every line of the callers.
//!
//! Keys are `/`-separated paths relative to the configured prefix, e.g.
//! `search-history/{ns}/{YYYY-MM-DD}/{timestamp_nanos}.jsonl`. Every call is async and runs on
//! whichever runtime awaits it (the control runtime's writers and the shards' list routes).
//! Failures are [`StoreError`]s; callers decide what they mean (history holds the batch and retries it,
//! snapshot jobs fail with the message, list routes answer 502).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};

use super::config::{Config, ObjectStoreBackend};

/// Something went wrong talking to the object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store ({backend}): {source}")]
    Backend {
        backend: &'static str,
        #[source]
        source: object_store::Error,
    },
    #[error("object store configuration: {0}")]
    Config(String),
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The key relative to the configured prefix.
    pub key: String,
    pub size: u64,
}

/// A cheap-to-clone handle on the configured store.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<dyn object_store::ObjectStore>,
    prefix: String,
    backend: &'static str,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ObjectStore {
    /// Opens the store `gateway.objectStore` describes. `env` supplies `AWS_*` fallbacks for the
    /// endpoint and region; credentials are read from the process environment by `object_store`.
    pub fn open(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ObjectStore, StoreError> {
        let c = &config.gateway.object_store;
        let prefix = c.prefix.trim_matches('/').to_string();
        match c.backend {
            ObjectStoreBackend::Local => {
                let dir = c
                    .dir
                    .clone()
                    .unwrap_or_else(|| config.gateway.data_dir.join("objects"));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StoreError::Config(format!("creating {}: {e}", dir.display())))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|source| StoreError::Backend {
                        backend: "local",
                        source,
                    })?
                    .with_automatic_cleanup(true);
                Ok(ObjectStore {
                    inner: Arc::new(fs),
                    prefix,
                    backend: "local",
                })
            }
            ObjectStoreBackend::S3 => {
                let bucket = c
                    .bucket
                    .clone()
                    .ok_or_else(|| StoreError::Config("objectStore.bucket is required".into()))?;
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(ep) = c.endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL")) {
                    b = b.with_endpoint(ep);
                }
                if let Some(r) = c.region.clone().or_else(|| env("AWS_REGION")) {
                    b = b.with_region(r);
                }
                // Bounded failure: history writers and snapshot jobs must learn that the store is
                // down in seconds, not after object_store's default three minutes of retries.
                b = b
                    .with_retry(object_store::RetryConfig {
                        backoff: Default::default(),
                        max_retries: 3,
                        retry_timeout: std::time::Duration::from_secs(10),
                    })
                    .with_client_options(
                        object_store::ClientOptions::new()
                            .with_connect_timeout(std::time::Duration::from_secs(2))
                            .with_timeout(std::time::Duration::from_secs(30))
                            .with_allow_http(c.allow_http),
                    );
                let s3 = b.build().map_err(|source| StoreError::Backend {
                    backend: "s3",
                    source,
                })?;
                Ok(ObjectStore {
                    inner: Arc::new(s3),
                    prefix,
                    backend: "s3",
                })
            }
        }
    }

    /// A store over any `object_store` implementation (tests use the in-memory one).
    pub fn from_inner(inner: Arc<dyn object_store::ObjectStore>, backend: &'static str) -> Self {
        ObjectStore {
            inner,
            prefix: String::new(),
            backend,
        }
    }

    /// `local` or `s3`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn err(&self, source: object_store::Error) -> StoreError {
        StoreError::Backend {
            backend: self.backend,
            source,
        }
    }

    /// Writes (or replaces) one object.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&self.path(key), PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Reads one object; `Ok(None)` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&self.path(key)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| self.err(e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Every object under `prefix` (a directory-like prefix such as `search-history/ns/`),
    /// sorted by key ascending.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let full = self.path(prefix.trim_end_matches('/'));
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out: Vec<Listed> = self
            .inner
            .list(Some(&full))
            .map_ok(|m| Listed {
                key: m
                    .location
                    .as_ref()
                    .get(strip..)
                    .unwrap_or_default()
                    .to_string(),
                size: m.size,
            })
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The immediate child "directories" of `prefix` (e.g. the dates under a namespace), sorted.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = self.path(prefix.trim_end_matches('/'));
        let r = self
            .inner
            .list_with_delimiter(Some(&full))
            .await
            .map_err(|e| self.err(e))?;
        let mut dirs: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Removes one object (absent is not an error).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(tag: &str) -> (ObjectStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "layer-store-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut cfg = Config::default();
        cfg.gateway.object_store.dir = Some(dir.clone());
        cfg.gateway.object_store.prefix = "pfx/".into();
        (ObjectStore::open(&cfg, &|_| None).unwrap(), dir)
    }

    #[tokio::test]
    async fn local_round_trip_list_and_delete() {
        let (s, dir) = local("rt");
        s.put("a/2026-01-02/2.jsonl", Bytes::from_static(b"two"))
            .await
            .unwrap();
        s.put("a/2026-01-01/1.jsonl", Bytes::from_static(b"one"))
            .await
            .unwrap();
        s.put("b/x.json", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(
            s.get("a/2026-01-01/1.jsonl").await.unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(s.get("a/missing").await.unwrap(), None);
        let keys: Vec<String> = s
            .list("a/")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(keys, ["a/2026-01-01/1.jsonl", "a/2026-01-02/2.jsonl"]);
        assert_eq!(
            s.list_dirs("a/").await.unwrap(),
            ["2026-01-01", "2026-01-02"]
        );
        assert!(s.list("nothing/").await.unwrap().is_empty());
        s.delete("b/x.json").await.unwrap();
        s.delete("b/x.json").await.unwrap();
        assert_eq!(s.get("b/x.json").await.unwrap(), None);
        // The prefix is a real directory level on disk.
        assert!(dir.join("pfx/a/2026-01-01/1.jsonl").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The reflector: LIST a collection, then WATCH it from the list's resource version with
//! bookmarks, keeping every object by name and handing the whole set to a sink after each
//! change. A watch that ends (its `timeoutSeconds`, a dropped connection) resumes from the last
//! version seen, after a backoff when it failed; `410 Gone` (as a status or an `ERROR` event)
//! lists again. Events arrive as JSON lines ([`WatchEvent::parse`], [`Lines`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use serde_json::Value;

use super::client::{ApiClient, ApiError};
use super::metrics::WatchMetrics;

/// One line of a watch stream.
#[derive(Debug, PartialEq)]
pub enum WatchEvent {
    Added(Value),
    Modified(Value),
    Deleted(Value),
    /// Only the resource version moved.
    Bookmark(String),
    /// A `Status` in the stream: `code` 410 means the version is too old.
    Error {
        code: u16,
        message: String,
    },
}

impl WatchEvent {
    /// Parses one line (`{"type": ..., "object": ...}`).
    pub fn parse(line: &[u8]) -> Result<WatchEvent, String> {
        let mut v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let object = v.get_mut("object").map(Value::take).unwrap_or(Value::Null);
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        Ok(match kind {
            "ADDED" => WatchEvent::Added(object),
            "MODIFIED" => WatchEvent::Modified(object),
            "DELETED" => WatchEvent::Deleted(object),
            "BOOKMARK" => WatchEvent::Bookmark(resource_version(&object).to_string()),
            "ERROR" => WatchEvent::Error {
                code: object.get("code").and_then(Value::as_u64).unwrap_or(0) as u16,
                message: object
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            },
            other => return Err(format!("unknown watch event type {other:?}")),
        })
    }

    /// The metrics label of the event.
    pub fn label(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "added",
            WatchEvent::Modified(_) => "modified",
            WatchEvent::Deleted(_) => "deleted",
            WatchEvent::Bookmark(_) => "bookmark",
            WatchEvent::Error { .. } => "error",
        }
    }
}

/// `metadata.name` of an object.
pub fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.resourceVersion` of an object.
pub fn resource_version(o: &Value) -> &str {
    o.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Splits a byte stream into lines (chunk boundaries fall anywhere; a line may span chunks).
#[derive(Default)]
pub struct Lines {
    buf: BytesMut,
}

/// The longest line held (a watch event is one object; 16 MiB is far above etcd's 1.5 MiB
/// object limit).
const MAX_LINE: usize = 16 << 20;

impl Lines {
    /// Adds a chunk; returns the complete, non-blank lines it finished.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line = self.buf.split_to(i).freeze();
            self.buf.advance(1);
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push(line);
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err(format!("a watch line longer than {MAX_LINE} bytes"));
        }
        Ok(out)
    }
}

/// The objects of one collection, by name, and the version they are at.
#[derive(Default, Debug)]
pub struct Cache {
    pub objects: BTreeMap<String, Value>,
    pub version: String,
}

/// What applying one event asks of the loop.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// The set changed: publish it.
    Changed,
    /// Only the version moved.
    Moved,
    /// The version is too old: list again.
    Relist,
    /// The server reported another error: watch again after a backoff.
    Failed(String),
}

impl Cache {
    /// Replaces the set with a list's answer.
    pub fn replace(&mut self, version: String, items: Vec<Value>) {
        self.objects = items
            .into_iter()
            .map(|o| (name_of(&o).to_string(), o))
            .filter(|(n, _)| !n.is_empty())
            .collect();
        self.version = version;
    }

    /// Applies one event.
    pub fn apply(&mut self, event: WatchEvent) -> Step {
        match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                self.version = resource_version(&o).to_string();
                let name = name_of(&o).to_string();
                if name.is_empty() {
                    return Step::Moved;
                }
                self.objects.insert(name, o);
                Step::Changed
            }
            WatchEvent::Deleted(o) => {
                self.version = resource_version(&o).to_string();
                self.objects.remove(name_of(&o));
                Step::Changed
            }
            WatchEvent::Bookmark(v) => {
                if !v.is_empty() {
                    self.version = v;
                }
                Step::Moved
            }
            WatchEvent::Error { code: 410, .. } => Step::Relist,
            WatchEvent::Error { code, message } => Step::Failed(format!("{code}: {message}")),
        }
    }
}

/// Receives the whole set after every change.
pub type Sink = Arc<dyn Fn(&BTreeMap<String, Value>) + Send + Sync>;

/// One watched collection.
pub struct Reflector {
    pub client: Arc<ApiClient>,
    /// The metrics label (`vectorstores`, `indexes`, `apikeys`).
    pub kind: &'static str,
    /// The collection's path (`/apis/hevlayer.com/v1/namespaces/layer/indexes`).
    pub path: String,
    pub sink: Sink,
    pub metrics: Arc<WatchMetrics>,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub watch_timeout_seconds: u64,
}

/// How one watch request ended.
enum End {
    /// The server closed it normally: watch again from the last version.
    Closed,
    Relist,
    Failed(ApiError),
}

impl Reflector {
    /// Lists and watches until the process ends.
    pub async fn run(self) {
        let mut cache = Cache::default();
        let mut wait = self.backoff;
        loop {
            match self.client.list(&self.path).await {
                Ok((version, items)) => {
                    cache.replace(version, items);
                    self.metrics.event(self.kind, "listed");
                    self.metrics.synced(self.kind, cache.objects.len());
                    (self.sink)(&cache.objects);
                    wait = self.backoff;
                }
                Err(e) => {
                    self.metrics.error(self.kind, e.reason());
                    tracing::warn!(kind = self.kind, error = %e, "listing failed; retrying");
                    wait = self.pause(wait).await;
                    continue;
                }
            }
            loop {
                let opened = std::time::Instant::now();
                match self.watch_once(&mut cache).await {
                    // A watch the server ends at once (not at its timeout) is retried after a
                    // backoff, so a misbehaving server is not asked in a tight loop.
                    End::Closed if opened.elapsed() < Duration::from_secs(1) => {
                        wait = self.pause(wait).await;
                    }
                    End::Closed => wait = self.backoff,
                    End::Relist => {
                        self.metrics.error(self.kind, "gone");
                        tracing::info!(kind = self.kind, "watch version expired; listing again");
                        break;
                    }
                    End::Failed(e) => {
                        self.metrics.error(self.kind, e.reason());
                        tracing::warn!(kind = self.kind, error = %e, "watch failed; reconnecting");
                        wait = self.pause(wait).await;
                    }
                }
            }
        }
    }

    /// Sleeps `wait`; returns the next wait (doubled, capped).
    async fn pause(&self, wait: Duration) -> Duration {
        tokio::time::sleep(wait).await;
        (wait * 2).min(self.max_backoff)
    }

    async fn watch_once(&self, cache: &mut Cache) -> End {
        let mut body = match self
            .client
            .watch(&self.path, &cache.version, self.watch_timeout_seconds)
            .await
        {
            Ok(b) => b,
            Err(ApiError::Gone) => return End::Relist,
            Err(e) => return End::Failed(e),
        };
        let mut lines = Lines::default();
        loop {
            let frame = match body.frame().await {
                None => return End::Closed,
                Some(Ok(f)) => f,
                Some(Err(e)) => return End::Failed(ApiError::Transport(e.to_string())),
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let ready = match lines.push(&chunk) {
                Ok(r) => r,
                Err(e) => return End::Failed(ApiError::Decode(e)),
            };
            let mut changed = false;
            for line in ready {
                let event = match WatchEvent::parse(&line) {
                    Ok(e) => e,
                    Err(e) => return End::Failed(ApiError::Decode(e)),
                };
                self.metrics.event(self.kind, event.label());
                match cache.apply(event) {
                    Step::Changed => changed = true,
                    Step::Moved => {}
                    Step::Relist => return End::Relist,
                    Step::Failed(m) => {
                        return End::Failed(ApiError::Status {
                            status: 0,
                            message: m,
                        });
                    }
                }
            }
            self.metrics.synced(self.kind, cache.objects.len());
            if changed {
                (self.sink)(&cache.objects);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(name: &str, rv: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "resourceVersion": rv}, "status": {"phase": phase}})
    }

    fn line(kind: &str, object: Value) -> String {
        format!("{}\n", json!({"type": kind, "object": object}))
    }

    #[test]
    fn every_event_type_parses() {
        let a = obj("k", "5", "Active");
        assert_eq!(
            WatchEvent::parse(line("ADDED", a.clone()).as_bytes()),
            Ok(WatchEvent::Added(a.clone()))
        );
        assert_eq!(
            WatchEvent::parse(line("MODIFIED", a.clone()).as_bytes()),
            Ok(WatchEvent::Modified(a.clone()))
        );
        assert_eq!(
            WatchEvent::parse(line("DELETED", a.clone()).as_bytes()),
            Ok(WatchEvent::Deleted(a))
        );
        let bookmark = json!({"kind": "ApiKey", "metadata": {"resourceVersion": "42"}});
        assert_eq!(
            WatchEvent::parse(line("BOOKMARK", bookmark).as_bytes()),
            Ok(WatchEvent::Bookmark("42".into()))
        );
        let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "too old resource version: 1 (7)", "reason": "Expired", "code": 410});
        assert_eq!(
            WatchEvent::parse(line("ERROR", gone).as_bytes()),
            Ok(WatchEvent::Error {
                code: 410,
                message: "too old resource version: 1 (7)".into()
            })
        );
        assert!(WatchEvent::parse(b"{\"type\":\"SURPRISE\",\"object\":{}}").is_err());
        assert!(WatchEvent::parse(b"not json").is_err());
    }

    #[test]
    fn lines_survive_any_chunking() {
        let text = format!(
            "{}{}\n{}",
            line("ADDED", obj("a", "1", "Active")),
            line("ADDED", obj("b", "2", "Active")),
            line("BOOKMARK", json!({"metadata": {"resourceVersion": "3"}}))
        );
        let bytes = text.as_bytes();
        for size in [1, 2, 7, 64, bytes.len()] {
            let mut lines = Lines::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(size) {
                got.extend(lines.push(chunk).unwrap());
            }
            assert_eq!(got.len(), 3, "chunk size {size}");
            assert!(WatchEvent::parse(&got[2]).is_ok());
        }
        // A line without its newline yet is held, not parsed.
        let mut lines = Lines::default();
        assert!(lines.push(b"{\"type\":").unwrap().is_empty());
    }

    #[test]
    fn the_cache_follows_events_and_asks_for_a_relist_on_410() {
        let mut c = Cache::default();
        c.replace(
            "10".into(),
            vec![obj("a", "9", "Active"), obj("b", "10", "Active")],
        );
        assert_eq!(c.objects.len(), 2);
        assert_eq!(
            c.apply(WatchEvent::Modified(obj("a", "11", "Revoked"))),
            Step::Changed
        );
        assert_eq!(c.objects["a"]["status"]["phase"], "Revoked");
        assert_eq!(c.version, "11");
        assert_eq!(
            c.apply(WatchEvent::Deleted(obj("b", "12", "Active"))),
            Step::Changed
        );
        assert!(!c.objects.contains_key("b"));
        assert_eq!(c.apply(WatchEvent::Bookmark("20".into())), Step::Moved);
        assert_eq!(c.version, "20");
        assert_eq!(
            c.apply(WatchEvent::Added(obj("c", "21", "Active"))),
            Step::Changed
        );
        assert_eq!(c.objects.len(), 2);
        assert_eq!(
            c.apply(WatchEvent::Error {
                code: 410,
                message: "gone".into()
            }),
            Step::Relist
        );
        assert!(matches!(
            c.apply(WatchEvent::Error {
                code: 500,
                message: "boom".into()
            }),
            Step::Failed(_)
        ));
        // A relist replaces everything (c is gone, d is new).
        c.replace("30".into(), vec![obj("d", "30", "Active")]);
        assert_eq!(c.objects.keys().collect::<Vec<_>>(), vec!["d"]);
        assert_eq!(c.version, "30");
    }
}

//! The VictoriaMetrics `scripts/vm-server` started for this test run: its URL
//! (`LAYER_TEST_VM_URL`) and the file_sd directory it scrapes targets from
//! (`LAYER_TEST_VM_TARGETS`). Same policy as [`crate::test_database`]: skipped (loudly) when unset,
//! a failure under CI.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::Http;

/// A running VictoriaMetrics for the tests.
pub struct TestVm {
    pub url: String,
    pub targets: PathBuf,
}

impl TestVm {
    /// `None` (after a loud message) when no VictoriaMetrics was started for this run; panics
    /// under CI (`CI=true`), which must never report the metrics suites run when they were not.
    pub fn from_env(tag: &str) -> Option<TestVm> {
        let url = std::env::var("LAYER_TEST_VM_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let targets = std::env::var("LAYER_TEST_VM_TARGETS")
            .ok()
            .filter(|u| !u.is_empty());
        match (url, targets) {
            (Some(url), Some(targets)) => Some(TestVm {
                url,
                targets: PathBuf::from(targets),
            }),
            _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
                "LAYER_TEST_VM_URL / LAYER_TEST_VM_TARGETS are unset under CI: start VictoriaMetrics with scripts/vm-server"
            ),
            _ => {
                eprintln!(
                    "\n!!! SKIPPED {tag}: LAYER_TEST_VM_URL is unset. Run \
                     `eval \"$(scripts/vm-server)\"` first (scripts/test does). !!!\n"
                );
                None
            }
        }
    }

    /// Has VictoriaMetrics scrape `addr` (`host:port`) every second with the extra target
    /// labels `labels`; the returned guard removes the target when dropped.
    pub fn scrape(&self, name: &str, addr: &str, labels: &[(&str, &str)]) -> ScrapeTarget {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let body = serde_json::json!([{"targets": [addr], "labels": labels}]);
        let path = self.targets.join(format!("{name}.json"));
        // Written whole, then renamed, so VictoriaMetrics never reads half a file.
        let tmp = self.targets.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, body.to_string()).expect("write the scrape target");
        std::fs::rename(&tmp, &path).expect("publish the scrape target");
        ScrapeTarget { path }
    }

    /// A GET straight to VictoriaMetrics (`path` with its query string): status and body.
    pub fn get(&self, http: &Http, path: &str) -> (u16, Bytes) {
        let r = http.send(
            Method::GET,
            &format!("{}{path}", self.url),
            &[],
            Bytes::new(),
        );
        (r.status.as_u16(), r.body)
    }
}

/// A scrape target file; removed on drop.
pub struct ScrapeTarget {
    path: PathBuf,
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How often [`crate::vm`] users poll while VictoriaMetrics catches up with a scrape.
pub const POLL: Duration = Duration::from_millis(250);

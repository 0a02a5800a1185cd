//! When a failed reconcile runs again: exponential backoff per object, reset by a success.
//! Start at [`Retries`]; `run` wires it into every controller.
//!
//! The first retry comes [`FIRST_RETRY`] after a failure and the pause doubles with each
//! consecutive failure of the same object, up to [`MAX_RETRY`]: a gateway or API server that is
//! down for a while is not hammered, and one that recovers is noticed within minutes. Objects
//! are independent: one failing object does not slow the others.

use std::collections::HashMap;
use std::time::Duration;

use kube::{Resource, ResourceExt};
use parking_lot::Mutex;

/// Pause before the first retry of a failed reconcile.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);

/// Longest pause between retries of an object that keeps failing.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// Consecutive failures per object (`kind/namespace/name`).
#[derive(Default)]
pub struct Retries {
    failures: Mutex<HashMap<String, u32>>,
}

impl Retries {
    /// Records a failure of `obj` and returns how long to wait before reconciling it again.
    pub fn failed<K: Resource<DynamicType = ()>>(&self, obj: &K) -> Duration {
        let mut failures = self.failures.lock();
        let n = failures.entry(key(obj)).or_insert(0);
        *n = n.saturating_add(1);
        let doublings = (*n - 1).min(16);
        FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
    }

    /// Records a success of `obj`: its next failure starts from [`FIRST_RETRY`] again.
    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        let mut failures = self.failures.lock();
        if !failures.is_empty() {
            failures.remove(&key(obj));
        }
    }
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn named<K: Resource<DynamicType = ()> + Default>(name: &str) -> K {
        let mut obj = K::default();
        obj.meta_mut().name = Some(name.into());
        obj.meta_mut().namespace = Some("default".into());
        obj
    }

    #[test]
    fn pauses_double_per_failure_up_to_the_cap_and_a_success_resets_them() {
        let r = Retries::default();
        let f: Deployment = named("embed");
        let secs: Vec<u64> = (0..9).map(|_| r.failed(&f).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        r.succeeded(&f);
        assert_eq!(r.failed(&f), FIRST_RETRY);
    }

    #[test]
    fn objects_back_off_independently() {
        let r = Retries::default();
        let a: Deployment = named("a");
        let b: Deployment = named("b");
        let same_name: ConfigMap = named("a");
        r.failed(&a);
        r.failed(&a);
        assert_eq!(r.failed(&b), FIRST_RETRY);
        assert_eq!(r.failed(&same_name), FIRST_RETRY);
        assert_eq!(r.failed(&a), FIRST_RETRY * 4);
    }
}

//! Single-flight for cache misses: N concurrent loads of one key cost one load.
//!
//! [`SharedCoalescer`] is `Send + Sync` (`Arc<Mutex<..>>`): the gateway's shard tasks must be
//! `Send` (hyper spawns connections with `tokio::spawn`), so one table is shared by every shard
//! and misses for a key are coalesced across shards too. The mutex is held only to join or leave a
//! flight, never across an `.await`, and only on a hot-cache miss.
//!
//! The first caller for a key (the leader) runs the load; the others await its result through a
//! `futures-channel` oneshot, so no async runtime is needed. If the leader's future is dropped
//! before finishing, its waiters wake up and one of them becomes the new leader (no caller hangs,
//! no result is invented).

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures_channel::oneshot;
use hashbrown::HashMap;
use parking_lot::Mutex;

type Waiters<K, V> = HashMap<K, Vec<oneshot::Sender<V>>>;

/// Thread-safe single flight. Cloning shares the in-flight table.
pub struct SharedCoalescer<K, V> {
    inner: Arc<Mutex<Waiters<K, V>>>,
}

impl<K, V> Clone for SharedCoalescer<K, V> {
    fn clone(&self) -> Self {
        SharedCoalescer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for SharedCoalescer<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes the leader's slot when dropped: on success after handing out the value, on
/// cancellation so that waiters see `Canceled` and retry.
struct LeaderGuard<'a, K: Eq + Hash, V> {
    inner: &'a Mutex<Waiters<K, V>>,
    key: &'a K,
    done: bool,
}

impl<K: Eq + Hash, V> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        if !self.done {
            drop(self.inner.lock().remove(self.key));
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SharedCoalescer<K, V> {
    /// An empty table.
    pub fn new() -> Self {
        SharedCoalescer {
            inner: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Returns `load()`'s value, running `load` only if no other caller is loading `key` now;
    /// otherwise waits for that caller's value. The returned future is `Send` when `K`, `V`, `L`
    /// and `Fut` are.
    pub async fn get_or_load<L, Fut>(&self, key: K, load: L) -> V
    where
        L: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        loop {
            let rx = {
                let mut map = self.inner.lock();
                match map.get_mut(&key) {
                    Some(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        rx
                    }
                    None => {
                        map.insert(key.clone(), Vec::new());
                        break;
                    }
                }
            };
            if let Ok(v) = rx.await {
                return v;
            }
            // The leader was dropped mid-load: try to lead ourselves.
        }
        let mut guard = LeaderGuard {
            inner: &self.inner,
            key: &key,
            done: false,
        };
        let v = load().await;
        guard.done = true;
        let waiters = self.inner.lock().remove(&key).unwrap_or_default();
        for w in waiters {
            let _ = w.send(v.clone());
        }
        v
    }

    /// Keys being loaded right now.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn n_concurrent_misses_one_load() {
        let rt = rt();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let c: SharedCoalescer<String, u32> = SharedCoalescer::new();
            let loads = Rc::new(Cell::new(0));
            let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
            let release_rx = Rc::new(RefCell::new(Some(release_rx)));
            let mut tasks = Vec::new();
            for _ in 0..16 {
                let (c, loads, release_rx) = (c.clone(), loads.clone(), release_rx.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    c.get_or_load("k".to_string(), || async move {
                        loads.set(loads.get() + 1);
                        let rx = release_rx.borrow_mut().take().expect("one leader");
                        let _ = rx.await;
                        42
                    })
                    .await
                }));
            }
            // Let every task join the flight before the load finishes.
            tokio::task::yield_now().await;
            assert_eq!(c.in_flight(), 1);
            let _ = release_tx.send(());
            for t in tasks {
                assert_eq!(t.await.expect("task"), 42);
            }
            assert_eq!(loads.get(), 1);
            assert_eq!(c.in_flight(), 0);
            // A later miss loads again.
            assert_eq!(c.get_or_load("k".into(), || async { 7 }).await, 7);
        });
    }

    #[test]
    fn cancelled_leader_hands_over_to_a_waiter() {
        let rt = rt();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let c: SharedCoalescer<u8, u8> = SharedCoalescer::new();
            let c2 = c.clone();
            let leader = tokio::task::spawn_local(async move {
                c2.get_or_load(1, std::future::pending::<u8>).await
            });
            tokio::task::yield_now().await;
            let c3 = c.clone();
            let follower =
                tokio::task::spawn_local(async move { c3.get_or_load(1, || async { 9 }).await });
            tokio::task::yield_now().await;
            leader.abort();
            assert_eq!(follower.await.expect("follower"), 9);
            assert_eq!(c.in_flight(), 0);
        });
    }

    #[test]
    fn shared_coalesces_across_threads() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let c: SharedCoalescer<u32, u32> = SharedCoalescer::new();
        let loads = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (c, loads, mut rx) = (c.clone(), loads.clone(), rx.clone());
                rt.spawn(async move {
                    c.get_or_load(5, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let _ = rx.wait_for(|v| *v).await;
                        55
                    })
                    .await
                })
            })
            .collect();
        rt.block_on(async {
            // Release the leader once the other seven wait on it.
            while c.inner.lock().get(&5).map_or(0, Vec::len) < 7 {
                tokio::task::yield_now().await;
            }
            let _ = tx.send(true);
            for h in handles {
                assert_eq!(h.await.expect("task"), 55);
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}

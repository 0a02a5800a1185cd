//! Single-flight for cache misses: N concurrent loads of one key cost one load.
//!
//! * [`LocalCoalescer`] — `Rc<RefCell<..>>`, `!Send`: one per shard, for tasks on that shard's
//!   `current_thread` runtime (the gateway's normal case: a hot-cache miss is coalesced on the
//!   shard that saw it, with no lock).
//! * [`SharedCoalescer`] — `Arc<Mutex<..>>`, `Send + Sync`: for loads shared across threads (e.g.
//!   the control runtime's warm jobs). The mutex is held only to join or leave, never across an
//!   `.await`.
//!
//! The first caller for a key (the leader) runs the load; the others await its result through a
//! `futures-channel` oneshot, so no async runtime is needed. If the leader's future is dropped
//! before finishing, its waiters wake up and one of them becomes the new leader (no caller hangs,
//! no result is invented).

use std::cell::RefCell;
use std::future::Future;
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::oneshot;
use hashbrown::HashMap;
use parking_lot::Mutex;

type Waiters<K, V> = HashMap<K, Vec<oneshot::Sender<V>>>;

enum Join<V> {
    Leader,
    Follower(oneshot::Receiver<V>),
}

/// Join/leave operations both coalescers share; the flight logic is written once in [`run`].
trait Flights<K, V> {
    fn join(&self, key: &K) -> Join<V>;
    fn leave(&self, key: &K) -> Vec<oneshot::Sender<V>>;
}

fn join_map<K: Eq + Hash + Clone, V>(map: &mut Waiters<K, V>, key: &K) -> Join<V> {
    match map.get_mut(key) {
        Some(waiters) => {
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            Join::Follower(rx)
        }
        None => {
            map.insert(key.clone(), Vec::new());
            Join::Leader
        }
    }
}

/// Removes the leader's slot when dropped: on success after handing out the value, on
/// cancellation so that waiters see `Canceled` and retry.
struct LeaderGuard<'a, K, V, F: Flights<K, V>> {
    flights: &'a F,
    key: &'a K,
    done: bool,
    _v: std::marker::PhantomData<V>,
}

impl<K, V, F: Flights<K, V>> Drop for LeaderGuard<'_, K, V, F> {
    fn drop(&mut self) {
        if !self.done {
            drop(self.flights.leave(self.key));
        }
    }
}

async fn run<K, V, F, L, Fut>(flights: &F, key: K, load: L) -> V
where
    V: Clone,
    F: Flights<K, V>,
    L: FnOnce() -> Fut,
    Fut: Future<Output = V>,
{
    loop {
        match flights.join(&key) {
            Join::Leader => break,
            Join::Follower(rx) => {
                if let Ok(v) = rx.await {
                    return v;
                }
                // The leader was dropped mid-load: try to lead ourselves.
            }
        }
    }
    let mut guard = LeaderGuard {
        flights,
        key: &key,
        done: false,
        _v: std::marker::PhantomData,
    };
    let v = load().await;
    guard.done = true;
    for w in flights.leave(&key) {
        let _ = w.send(v.clone());
    }
    v
}

/// Per-shard single flight (`!Send`). Cloning shares the in-flight table.
pub struct LocalCoalescer<K, V> {
    inner: Rc<RefCell<Waiters<K, V>>>,
}

impl<K, V> Clone for LocalCoalescer<K, V> {
    fn clone(&self) -> Self {
        LocalCoalescer {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for LocalCoalescer<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> for LocalCoalescer<K, V> {
    fn join(&self, key: &K) -> Join<V> {
        join_map(&mut self.inner.borrow_mut(), key)
    }
    fn leave(&self, key: &K) -> Vec<oneshot::Sender<V>> {
        self.inner.borrow_mut().remove(key).unwrap_or_default()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> LocalCoalescer<K, V> {
    /// An empty table.
    pub fn new() -> Self {
        LocalCoalescer {
            inner: Rc::new(RefCell::new(HashMap::new())),
        }
    }

    /// Returns `load()`'s value, running `load` only if no other caller is loading `key` now;
    /// otherwise waits for that caller's value.
    pub async fn get_or_load<L, Fut>(&self, key: K, load: L) -> V
    where
        L: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        run(self, key, load).await
    }

    /// Keys being loaded right now.
    pub fn in_flight(&self) -> usize {
        self.inner.borrow().len()
    }
}

/// Thread-safe single flight (`Send + Sync`). Cloning shares the in-flight table.
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

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> for SharedCoalescer<K, V> {
    fn join(&self, key: &K) -> Join<V> {
        join_map(&mut self.inner.lock(), key)
    }
    fn leave(&self, key: &K) -> Vec<oneshot::Sender<V>> {
        self.inner.lock().remove(key).unwrap_or_default()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SharedCoalescer<K, V> {
    /// An empty table.
    pub fn new() -> Self {
        SharedCoalescer {
            inner: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Same contract as [`LocalCoalescer::get_or_load`]; the returned future is `Send` when
    /// `K`, `V`, `L` and `Fut` are.
    pub async fn get_or_load<L, Fut>(&self, key: K, load: L) -> V
    where
        L: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        run(self, key, load).await
    }

    /// Keys being loaded right now.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn local_n_concurrent_misses_one_load() {
        let rt = rt();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let c: LocalCoalescer<String, u32> = LocalCoalescer::new();
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
            let c: LocalCoalescer<u8, u8> = LocalCoalescer::new();
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
            while c.in_flight() == 0 {
                tokio::task::yield_now().await;
            }
            // Give the other tasks time to join before releasing the leader.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let _ = tx.send(true);
            for h in handles {
                assert_eq!(h.await.expect("task"), 55);
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}

//! A shard's timer anchor: one short periodic timer per runtime, so that arming a request's
//! header-read timer does not wake the runtime's own I/O driver with a system call.
//!
//! Why: tokio's timer wheel remembers, each time its runtime parks, when it must wake next
//! (`next_wake`, `None` when no timer is armed). Arming a timer that fires earlier than that,
//! or any timer while it is `None`, "unparks" the driver: a `write` to the runtime's eventfd,
//! even when the arming thread *is* the runtime thread and is running. hyper arms a header-read
//! timer (`gateway.server.headerReadTimeoutMs`, 15 s) for every request it reads. On a busy
//! shard the runtime often parks while every connection waits on upstream, with no timer
//! armed, and then each following request paid a `write` system call and one extra
//! `epoll_wait` return (`bench/cpu-split.sh` with `STRACE=1`: 0.53 `write`s per query).
//!
//! The anchor keeps a timer armed at most [`period`] ahead at all times, so `next_wake` is
//! never `None` and never later than a new header timer's deadline. Its cost is one wake-up per
//! period per shard. Start it with [`spawn`] on each shard's runtime.

use std::time::Duration;

use tokio::task::JoinHandle;

/// The anchor's period for a header-read timeout: at most one second, and never longer than
/// the timeout itself (a new header timer is then never earlier than the anchor's next tick),
/// at least one millisecond (the wheel's resolution).
pub fn period(header_read_timeout: Duration) -> Duration {
    header_read_timeout
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(1))
}

/// Starts the anchor on the current runtime; abort the handle when the shard stops.
pub fn spawn(period: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's `write` system calls so far (Linux `/proc/thread-self/io`).
    fn writes() -> Option<u64> {
        let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
        io.lines()
            .find_map(|l| l.strip_prefix("syscw: "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Lets the runtime park with no timer of its own armed: it waits for a wake-up from
    /// another thread (the situation of a shard whose connections all wait on upstream).
    async fn park_without_timers() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            // A plain thread, not a runtime's: the wait gives the runtime time to park.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(20));
            let _ = tx.send(());
        });
        let _ = rx.await;
    }

    /// Arms and drops `n` header-read-like timers (15 s, the default) on the running runtime,
    /// as hyper does per request; the number of `write` calls it took.
    async fn arm_header_timers(n: usize) -> Option<u64> {
        let before = writes()?;
        for _ in 0..n {
            let mut sleep = std::pin::pin!(tokio::time::sleep(Duration::from_secs(15)));
            assert!(futures_util::poll!(&mut sleep).is_pending());
        }
        Some(writes()? - before)
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn without_an_anchor_arming_timers_writes_to_the_driver() {
        // The mechanism the anchor exists for: if this stops holding (a tokio change), the
        // anchor is no longer needed, and this test says so.
        current_thread().block_on(async {
            park_without_timers().await;
            let Some(n) = arm_header_timers(100).await else {
                return; // no /proc/thread-self/io here
            };
            assert!(n >= 100, "{n} writes for 100 timers");
        });
    }

    #[test]
    fn with_the_anchor_arming_timers_makes_no_system_call() {
        current_thread().block_on(async {
            let anchor = spawn(period(Duration::from_secs(15)));
            // Let the anchor arm its first tick, then park the way a shard does.
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            park_without_timers().await;
            let Some(n) = arm_header_timers(100).await else {
                return;
            };
            assert_eq!(n, 0, "{n} writes for 100 timers");
            anchor.abort();
        });
    }

    #[test]
    fn the_period_never_exceeds_the_timeout() {
        assert_eq!(period(Duration::from_secs(15)), Duration::from_secs(1));
        assert_eq!(
            period(Duration::from_millis(200)),
            Duration::from_millis(200)
        );
        assert_eq!(period(Duration::ZERO), Duration::from_millis(1));
    }
}

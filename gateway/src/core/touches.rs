//! Which document ids writes touched in the shared cache tier, per namespace, while someone is
//! watching: the record that lets a task copying origin rows into the tier (a warm) learn which
//! of the rows it just wrote a racing write may have made stale, instead of distrusting every row
//! whenever any write touched the namespace.
//!
//! Start with [`Touches::watch`] (a guard; recording stops for the namespace when the last guard
//! of it drops, so nothing is kept and the write path only pays a map lookup while no one
//! watches), read [`Touches::seq`] before reading origin, and ask [`Touches::touched_since`] which
//! of the ids you wrote were touched after that. The write path calls [`Touches::record`] when its
//! tier deletes have landed. The record of a namespace is bounded ([`MAX_IDS`]); past it, every
//! id counts as touched from then on (the caller falls back to re-reading everything).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Ids kept per watched namespace before the record gives up on precision.
pub const MAX_IDS: usize = 200_000;

/// The record: watched namespaces and, for each, the sequence number of each touched id.
#[derive(Default)]
pub struct Touches {
    by_ns: Mutex<HashMap<String, Record>>,
}

#[derive(Default)]
struct Record {
    watchers: usize,
    seq: u64,
    ids: HashMap<String, u64>,
    /// Set when the record overflowed or a whole-namespace change landed: every id counts as
    /// touched at this sequence number.
    all_at: u64,
}

/// Keeps recording the touches of one namespace while held.
pub struct Watch {
    touches: Arc<Touches>,
    ns: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut m = self.touches.by_ns.lock();
        if let Some(r) = m.get_mut(&self.ns) {
            r.watchers -= 1;
            if r.watchers == 0 {
                m.remove(&self.ns);
            }
        }
    }
}

impl Touches {
    /// Starts (or joins) recording the touches of `ns`.
    pub fn watch(self: &Arc<Self>, ns: &str) -> Watch {
        self.by_ns
            .lock()
            .entry(ns.to_string())
            .or_default()
            .watchers += 1;
        Watch {
            touches: Arc::clone(self),
            ns: ns.to_string(),
        }
    }

    /// Records that writes changed `ids` of `ns` in the tier (`None`: the whole namespace).
    /// A no-op unless someone watches `ns`.
    pub fn record(&self, ns: &str, ids: Option<&[String]>) {
        let mut m = self.by_ns.lock();
        let Some(r) = m.get_mut(ns) else {
            return;
        };
        r.seq += 1;
        let seq = r.seq;
        match ids {
            Some(ids) if r.ids.len() + ids.len() <= MAX_IDS => {
                for id in ids {
                    r.ids.insert(id.clone(), seq);
                }
            }
            _ => {
                r.ids.clear();
                r.all_at = seq;
            }
        }
    }

    /// The current sequence number of `ns` (0 when not watched): read it before reading origin.
    pub fn seq(&self, ns: &str) -> u64 {
        self.by_ns.lock().get(ns).map_or(0, |r| r.seq)
    }

    /// The ids among `ids` that a write touched after sequence number `since` (all of them when
    /// `ns` is not watched: nothing was recorded, so nothing can be ruled out).
    pub fn touched_since<'a>(&self, ns: &str, since: u64, ids: &'a [String]) -> Vec<&'a String> {
        let m = self.by_ns.lock();
        let Some(r) = m.get(ns) else {
            return ids.iter().collect();
        };
        if r.all_at > since {
            return ids.iter().collect();
        }
        ids.iter()
            .filter(|id| r.ids.get(id.as_str()).is_some_and(|s| *s > since))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_ids_touched_after_the_sequence_number_count() {
        let t = Arc::new(Touches::default());
        let _w = t.watch("ns");
        t.record("ns", Some(&ids(&["a", "b"])));
        let since = t.seq("ns");
        t.record("ns", Some(&ids(&["b", "c"])));
        t.record("other", Some(&ids(&["a"])));
        let page = ids(&["a", "b", "c", "d"]);
        assert_eq!(t.touched_since("ns", since, &page), vec!["b", "c"]);
        assert!(t.touched_since("ns", t.seq("ns"), &page).is_empty());
    }

    #[test]
    fn a_whole_namespace_change_or_an_overflow_touches_every_id() {
        let t = Arc::new(Touches::default());
        let _w = t.watch("ns");
        let since = t.seq("ns");
        t.record("ns", None);
        let page = ids(&["x", "y"]);
        assert_eq!(t.touched_since("ns", since, &page).len(), 2);
        let since = t.seq("ns");
        let many: Vec<String> = (0..=MAX_IDS).map(|i| i.to_string()).collect();
        t.record("ns", Some(&many));
        assert_eq!(t.touched_since("ns", since, &page).len(), 2);
    }

    #[test]
    fn nothing_is_kept_without_a_watcher_and_unwatched_means_unknown() {
        let t = Arc::new(Touches::default());
        t.record("ns", Some(&ids(&["a"])));
        assert_eq!(t.seq("ns"), 0);
        let page = ids(&["a", "b"]);
        assert_eq!(t.touched_since("ns", 0, &page).len(), 2);
        let w1 = t.watch("ns");
        let w2 = t.watch("ns");
        drop(w1);
        t.record("ns", Some(&ids(&["a"])));
        assert_eq!(t.touched_since("ns", 0, &page), vec!["a"]);
        drop(w2);
        assert!(t.by_ns.lock().is_empty());
    }
}

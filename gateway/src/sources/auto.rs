//! Source resolution: the Auto-mode policy table and the explicit sources, as pure functions
//! (the inputs are gathered by [`super::resolve`]).
//!
//! Auto ties cache freshness to the consistency watermark. Per namespace the gateway keeps
//! `cache_warmed_through` (the cut of the last successful origin warm, [`super::warmth`]), and the
//! watcher knows the stamp of the newest write acknowledged through this gateway:
//!
//! | cache | `cache_warmed_through` | action |
//! |---|---|---|
//! | empty | any | origin; start a background warm (it stamps `cache_warmed_through`) |
//! | populated | at or after the newest write through this gateway | cache |
//! | populated | before it (stale) | origin + background warm |
//! | populated | none yet (a gateway restarted over a recovered tier) | origin + background warm |
//!
//! A cached view is complete only at its cut: the tier holds one version per id, and a write
//! removes the ids it touches from it (the write-path mirror or a fetch puts them back at their new
//! version, past the cut), so once a write updated or deleted rows after `cache_warmed_through`,
//! the view at that cut lacks them. Serving it would answer partial counts and id lists without
//! saying so. The documented table serves a stale cache (with a background warm); Layer serves
//! origin until the warm lands instead, and says so in its docs (`docs/src/scans.md`). With no
//! write after the cut the view is the view at the current watermark too (`warmed_through` is
//! promoted), so a quiet namespace keeps its cache source as the watermark advances. Writes made
//! outside this gateway are not seen (documented; warm explicitly after bulk loads that bypass it).
//!
//! "Populated" means the tier holds a *completed* warm of the namespace (its marker, see
//! [`super::cache_rows`]): documents cached one by one by fetch or the write-path mirror are a
//! partial copy, so without a completed warm the cache counts as empty (origin, and a warm). A
//! first warm in progress is therefore "empty" too.
//!
//! Auto also uses origin when the cache tier is unavailable (cold or disabled: no warm is
//! started, a warm would fail with `cache_cold`) and when the filter is one the cache evaluator
//! cannot run (the warm decision of the table still applies). Ranked selectors always resolve to
//! origin. Snapshot eligibility is decided before this table (snapshot first under `auto`).

/// What the cache tier holds for the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheState {
    /// Cold or disabled: the tier cannot serve.
    Unavailable,
    /// Serving, no completed warm of the namespace in the tier.
    Empty,
    /// Serving, a completed warm of the namespace in the tier.
    Populated,
}

/// The inputs of the Auto table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoInput {
    pub cache: CacheState,
    pub warmed_through: Option<u64>,
    /// The stamp of the newest write acknowledged through this gateway (0: none since start).
    pub last_write_ms: u64,
    /// The filter compiles for the cache evaluator.
    pub cache_can_filter: bool,
}

/// Where a non-snapshot scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Live {
    Cache,
    Origin,
}

/// The Auto decision: the source, and whether to start a background origin warm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub source: Live,
    pub warm: bool,
}

/// The Auto-mode policy table (module docs).
pub fn auto(i: AutoInput) -> Decision {
    let table = match i.cache {
        CacheState::Unavailable => Decision {
            source: Live::Origin,
            warm: false,
        },
        CacheState::Empty => Decision {
            source: Live::Origin,
            warm: true,
        },
        CacheState::Populated => {
            let current = i.warmed_through.is_some_and(|w| w >= i.last_write_ms);
            Decision {
                source: if current { Live::Cache } else { Live::Origin },
                warm: !current,
            }
        }
    };
    if i.cache_can_filter {
        table
    } else {
        Decision {
            source: Live::Origin,
            ..table
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(cache: CacheState, warmed: Option<u64>, last_write: u64) -> (Live, bool) {
        let d = auto(AutoInput {
            cache,
            warmed_through: warmed,
            last_write_ms: last_write,
            cache_can_filter: true,
        });
        (d.source, d.warm)
    }

    #[test]
    fn every_row_of_the_auto_table() {
        use CacheState::*;
        // Empty, whatever was warmed or written: origin and a warm that stamps the cut.
        for (warmed, last_write) in [(None, 0), (None, 5), (Some(9), 5), (Some(1), 3)] {
            assert_eq!(decide(Empty, warmed, last_write), (Live::Origin, true));
        }
        // Populated, warmed at or after the newest write: cache.
        assert_eq!(decide(Populated, Some(10), 10), (Live::Cache, false));
        assert_eq!(decide(Populated, Some(11), 10), (Live::Cache, false));
        assert_eq!(decide(Populated, Some(11), 0), (Live::Cache, false));
        // Populated, a write after the cut: the view lacks what it changed; origin and a warm.
        assert_eq!(decide(Populated, Some(9), 10), (Live::Origin, true));
        // Populated, never warmed by this process (restart over a recovered tier): origin, warm.
        assert_eq!(decide(Populated, None, 0), (Live::Origin, true));
        assert_eq!(decide(Populated, None, 10), (Live::Origin, true));
        // A cold or disabled tier: origin, no warm.
        assert_eq!(decide(Unavailable, None, 1), (Live::Origin, false));
        assert_eq!(decide(Unavailable, Some(5), 1), (Live::Origin, false));
    }

    #[test]
    fn unsupported_filters_use_origin_but_keep_the_warm_decision() {
        let d = auto(AutoInput {
            cache: CacheState::Populated,
            warmed_through: Some(1),
            last_write_ms: 2,
            cache_can_filter: false,
        });
        assert_eq!(
            d,
            Decision {
                source: Live::Origin,
                warm: true
            }
        );
    }
}

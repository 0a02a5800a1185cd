//! Source resolution: the Auto-mode policy table and the explicit sources, as pure functions
//! (the inputs are gathered by [`super::resolve`]).
//!
//! Auto ties cache freshness to the consistency watermark. Per namespace the gateway keeps
//! `cache_warmed_through` (the cut of the last successful origin warm, [`super::warmth`]):
//!
//! | cache | watermark | action |
//! |---|---|---|
//! | empty | any | origin; start a background warm (it stamps `cache_warmed_through`) |
//! | populated, `cache_warmed_through >= watermark` | observed | cache |
//! | populated, `cache_warmed_through < watermark` | observed | cache + background warm |
//! | populated, no `cache_warmed_through` yet | observed | cache + background warm |
//! | populated | not yet observed | cache |
//!
//! "Populated" means the tier holds a *completed* warm of the namespace (its marker, see
//! [`super::cache`]): documents cached one by one by fetch or the write-path mirror are a partial
//! copy, and serving them would return partial results, so without a completed warm the cache
//! counts as empty (origin, and a warm). A first warm in progress is therefore "empty" too. The
//! "populated, no `cache_warmed_through` yet" row is a gateway restarted over a recovered tier.
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
    pub watermark: Option<u64>,
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
            let stale = match (i.watermark, i.warmed_through) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(wm), Some(warmed)) => warmed < wm,
            };
            Decision {
                source: Live::Cache,
                warm: stale,
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

    fn decide(cache: CacheState, warmed: Option<u64>, wm: Option<u64>) -> (Live, bool) {
        let d = auto(AutoInput {
            cache,
            warmed_through: warmed,
            watermark: wm,
            cache_can_filter: true,
        });
        (d.source, d.warm)
    }

    #[test]
    fn every_row_of_the_auto_table() {
        use CacheState::*;
        // Empty, any watermark state: origin and a warm that stamps cache_warmed_through.
        for (warmed, wm) in [
            (None, None),
            (None, Some(5)),
            (Some(9), Some(5)),
            (Some(1), None),
        ] {
            assert_eq!(decide(Empty, warmed, wm), (Live::Origin, true));
        }
        // Populated, warmed >= watermark (observed): cache.
        assert_eq!(decide(Populated, Some(10), Some(10)), (Live::Cache, false));
        assert_eq!(decide(Populated, Some(11), Some(10)), (Live::Cache, false));
        // Populated, warmed < watermark: cache and a background warm.
        assert_eq!(decide(Populated, Some(9), Some(10)), (Live::Cache, true));
        // Populated, never warmed, watermark observed: cache and a background warm.
        assert_eq!(decide(Populated, None, Some(10)), (Live::Cache, true));
        // Populated, watermark not yet observed: cache.
        assert_eq!(decide(Populated, None, None), (Live::Cache, false));
        assert_eq!(decide(Populated, Some(3), None), (Live::Cache, false));
        // A cold or disabled tier: origin, no warm.
        assert_eq!(decide(Unavailable, None, Some(1)), (Live::Origin, false));
    }

    #[test]
    fn unsupported_filters_use_origin_but_keep_the_warm_decision() {
        let d = auto(AutoInput {
            cache: CacheState::Populated,
            warmed_through: Some(1),
            watermark: Some(2),
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

//! Resolving a scan's source into a [`Plan`]: the Sources table (explicit sources) and, for
//! `auto`, snapshot first and then the Auto-mode policy of [`crate::sources::auto`].
//!
//! | source | ids | count | values |
//! |---|---|---|---|
//! | `auto` | cache when no write followed its warm, else origin | snapshot, then cache/origin | snapshot when eligible, then cache/origin |
//! | `snapshot` | 422 | latest snapshot, eligible `Eq`/`In` only (else 412) | facet listing of an unfiltered field in `fields[]` (else 412) |
//! | `cache` | cache only (503 `cache_cold` when cold/disabled, 422 for a filter the cache cannot evaluate) | same | same |
//! | `origin` | paginated upstream scan | upstream `Count` aggregation per shard | paginated upstream scan |
//!
//! `fts`/`ann` selectors always resolve to origin (the request parser already refused them with
//! `snapshot`/`cache`). Values scans refuse vector fields (422) once the field's schema type is
//! known, i.e. whenever the snapshot does not answer them.

use std::sync::Arc;

use scatter::filter_eval::{FilterEvalError, RowFilter};

use super::Scans;
use super::request::{Mode, ScanRequest, Source};
use super::snapshot::{self, Eligibility, SnapshotCount, is_vector_type};
use crate::core::error::GatewayError;
use crate::core::upstream::Upstream;
use crate::sources::auto::{self, AutoInput, CacheState, Live};
use crate::sources::cache_rows::{self, row_filter};
use crate::sources::origin;
use crate::sources::snapshot_store::SnapshotBody;

/// How a scan will be served.
#[derive(Debug)]
pub enum Plan {
    /// A count answered by the latest snapshot.
    SnapshotCount(SnapshotCount),
    /// A values listing answered by the latest snapshot (its `field` histogram).
    SnapshotValues(Arc<SnapshotBody>),
    /// The document cache, filtered by `filter` (cut predicate included).
    Cache {
        filter: RowFilter,
        warmed_through: Option<u64>,
    },
    /// Upstream scatter/gather.
    Origin {
        threads: u32,
        shards: u32,
        /// The stable cut (the watcher's watermark); `None` reads strongly.
        cut: Option<u64>,
    },
}

/// A plan, and whether the Auto table asks for a background warm. The executor starts the warm
/// once the scan is served ([`crate::warm::ensure_background`]), so the warm never changes
/// what the scan itself reads.
#[derive(Debug)]
pub struct Resolved {
    pub plan: Plan,
    pub warm: bool,
}

impl From<Plan> for Resolved {
    fn from(plan: Plan) -> Self {
        Resolved { plan, warm: false }
    }
}

impl Plan {
    /// The `effective_source` / `served_by` name.
    pub fn source_name(&self) -> &'static str {
        match self {
            Plan::SnapshotCount(_) | Plan::SnapshotValues(_) => Source::Snapshot.as_str(),
            Plan::Cache { .. } => Source::Cache.as_str(),
            Plan::Origin { .. } => Source::Origin.as_str(),
        }
    }
}

fn origin_plan(scans: &Scans, ns: &str, req: &ScanRequest) -> Plan {
    Plan::Origin {
        threads: origin::threads_for(&scans.core, ns, req.threads),
        shards: scans.core.shards_of(ns),
        cut: scans.core.watcher.snapshot(ns).1,
    }
}

fn cache_filter_error(e: FilterEvalError) -> GatewayError {
    GatewayError::Validation(match e {
        FilterEvalError::Unsupported(op) => format!(
            "source cache cannot evaluate filter operator {op} (the cache supports Eq, NotEq, \
             Gt, Gte, Lt, Lte, In, NotIn, And, Or, Not); use auto or origin"
        ),
        FilterEvalError::Invalid(m) => format!("invalid filter: {m}"),
    })
}

/// Resolves `req` on `ns`.
pub async fn plan(
    scans: &Arc<Scans>,
    upstream: &Upstream,
    ns: &str,
    req: &ScanRequest,
) -> Result<Resolved, GatewayError> {
    if req.ranked.is_some() || req.source == Source::Origin {
        check_values_field(upstream, ns, req).await?;
        return Ok(origin_plan(scans, ns, req).into());
    }
    let explicit_snapshot = req.source == Source::Snapshot;
    if matches!(req.source, Source::Auto | Source::Snapshot) {
        let answered = match req.mode {
            Mode::Count => {
                match snapshot::count(scans, upstream, ns, req.filters.as_ref(), explicit_snapshot)
                    .await?
                {
                    Eligibility::Served(c) => Ok(Plan::SnapshotCount(c)),
                    Eligibility::Ineligible(why) => Err(why),
                }
            }
            Mode::Values => match (&req.filters, &req.field) {
                (None, Some(field)) => {
                    match snapshot::values(scans, ns, field, explicit_snapshot).await? {
                        Eligibility::Served(b) => Ok(Plan::SnapshotValues(b)),
                        Eligibility::Ineligible(why) => Err(why),
                    }
                }
                _ => Err("snapshot values serve unfiltered scans only".to_string()),
            },
            Mode::Ids => Err("snapshots hold no ids".to_string()),
        };
        match answered {
            Ok(plan) => return Ok(plan.into()),
            Err(why) if explicit_snapshot => {
                return Err(GatewayError::PreconditionFailed(format!(
                    "source snapshot cannot serve this scan: {why}"
                )));
            }
            Err(_) => {}
        }
    }
    check_values_field(upstream, ns, req).await?;
    let warmed_through = scans.warmth.warmed_through(ns);
    if req.source == Source::Cache {
        if cache_rows::state_of(&scans.core.cache, ns).await == CacheState::Unavailable {
            return Err(GatewayError::CacheCold(
                "the document cache is unavailable (cold or disabled); use source auto or origin"
                    .into(),
            ));
        }
        let filter =
            row_filter(req.filters.as_ref(), warmed_through).map_err(cache_filter_error)?;
        return Ok(Plan::Cache {
            filter,
            warmed_through,
        }
        .into());
    }
    let filter = row_filter(req.filters.as_ref(), warmed_through);
    let decision = auto::auto(AutoInput {
        cache: cache_rows::state_of(&scans.core.cache, ns).await,
        warmed_through,
        last_write_ms: scans.core.watcher.last_write_ms(ns),
        cache_can_filter: filter.is_ok(),
    });
    let plan = match (decision.source, filter) {
        (Live::Cache, Ok(filter)) => Plan::Cache {
            filter,
            warmed_through,
        },
        _ => origin_plan(scans, ns, req),
    };
    Ok(Resolved {
        plan,
        warm: decision.warm,
    })
}

/// Values scans name a countable field: vectors (and other types a values scan cannot count)
/// are a 422 here rather than a failed job later. A field absent from the schema is accepted
/// (the listing is empty).
async fn check_values_field(
    upstream: &Upstream,
    ns: &str,
    req: &ScanRequest,
) -> Result<(), GatewayError> {
    let (Mode::Values, Some(field)) = (req.mode, &req.field) else {
        return Ok(());
    };
    if field == "id" {
        return Ok(());
    }
    let Some(ty) = snapshot::attr_type(upstream, ns, field).await? else {
        return Ok(());
    };
    if is_vector_type(&ty) {
        return Err(GatewayError::Validation(format!(
            "field {field:?} is a vector attribute ({ty}); values scans enumerate string and \
             integer attributes and arrays of strings"
        )));
    }
    if !matches!(
        ty.as_str(),
        "string" | "int" | "uint" | "uuid" | "[]string" | "[]uuid"
    ) {
        return Err(GatewayError::Validation(format!(
            "field {field:?} has type {ty}; values scans enumerate string and integer attributes \
             and arrays of strings"
        )));
    }
    Ok(())
}

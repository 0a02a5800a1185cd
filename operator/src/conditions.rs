//! Status conditions: building them, and merging a new set into the old one so that
//! `lastTransitionTime` only moves when a condition's status does (which also makes a second
//! reconcile of an unchanged resource write nothing).

use crds::k8s::common::{Condition, ConditionStatus};

/// A condition with `status` True or False.
pub fn condition(type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: None,
    }
}

/// The current time as RFC 3339 (seconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `new` stamped with `generation`, each keeping the old `lastTransitionTime` when its status did
/// not change (else now).
pub fn merge(old: &[Condition], new: Vec<Condition>, generation: Option<i64>) -> Vec<Condition> {
    new.into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            c.last_transition_time = old
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
                .and_then(|o| o.last_transition_time.clone())
                .or_else(|| Some(now()));
            c
        })
        .collect()
}

/// Whether the named condition is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_a_status_change() {
        let mut old = merge(&[], vec![condition("Ready", true, "Applied", "")], Some(1));
        old[0].last_transition_time = Some("2026-01-01T00:00:00Z".into());
        let same = merge(&old, vec![condition("Ready", true, "Applied", "")], Some(2));
        assert_eq!(
            same[0].last_transition_time.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &old,
            vec![condition("Ready", false, "PoolUnknown", "x")],
            Some(2),
        );
        assert_ne!(
            flipped[0].last_transition_time.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert!(!is_true(&flipped, "Ready"));
        assert!(is_true(&same, "Ready"));
    }
}

//! Leader election on a `coordination.k8s.io/v1` Lease (`layer-operator` in the operator's
//! namespace): only the holder runs the controllers.
//!
//! Every [`Elector::step`] reads the Lease and decides ([`decide`], pure): create it when there
//! is none, renew it when this replica holds it, take it over when its holder let it expire
//! (`renewTime + leaseDurationSeconds` in the past), else follow. Writes carry the
//! `resourceVersion` read, so two replicas racing for an expired Lease cannot both win (the
//! loser gets 409 Conflict and follows).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::Result;

/// What to do with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease: create it, holding it.
    Create,
    /// This replica holds it: renew.
    Renew,
    /// Its holder let it expire (or none holds it): take it over.
    TakeOver,
    /// Another replica holds it.
    Follow(String),
}

/// Decides from the Lease read (`None`: it does not exist) at `now`.
pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let expired = match spec.renew_time.or(spec.acquire_time) {
        Some(MicroTime(t)) => t + duration < now,
        None => true,
    };
    if holder.is_empty() || expired {
        Decision::TakeOver
    } else {
        Decision::Follow(holder)
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
    duration_seconds: i32,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        me: &str,
        duration_seconds: i32,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            me: me.into(),
            duration_seconds,
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.me.clone()),
            lease_duration_seconds: Some(self.duration_seconds),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Reads the Lease and acts on [`decide`]: whether this replica leads afterwards.
    pub async fn step(&self) -> Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let pp = PostParams::default();
        let written = match decide(current.as_ref(), &self.me, now) {
            Decision::Follow(_) => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                self.api.create(&pp, &lease).await.map(|_| ())
            }
            d @ (Decision::Renew | Decision::TakeOver) => {
                let mut lease = current.unwrap_or_default();
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(if d == Decision::Renew {
                    self.spec(now, old.acquire_time, old.lease_transitions.unwrap_or(0))
                } else {
                    self.spec(now, None, old.lease_transitions.unwrap_or(0) + 1)
                });
                self.api.replace(&self.name, &pp, &lease).await.map(|_| ())
            }
        };
        match written {
            Ok(()) => Ok(true),
            // Another replica wrote first (created it, or renewed/took it since our read).
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

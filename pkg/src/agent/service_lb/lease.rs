//! One node answers for each LoadBalancer Service: the holder of the Service's Lease
//! (coordination.k8s.io), renewed while the holder's agent runs and taken over by another
//! node's agent once it expires. Every write carries the resourceVersion that was read, so of
//! two agents reaching for the same Lease only one succeeds.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

/// How long a Lease stays valid without renewal: how long a Service is unanswered at worst
/// when its node dies (plus one pass of the agent).
pub const DURATION: Duration = Duration::from_secs(15);
/// Renewed once it is this old (a third of its life, as client-go's leader election does).
pub const RENEW_AFTER: Duration = Duration::from_secs(5);

/// What an agent does with a Service's Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it, held by us.
    Create,
    /// Ours and fresh: nothing to write.
    Held,
    /// Ours and due for renewal.
    Renew,
    /// Free (released or expired): take it over.
    TakeOver,
    /// Another node holds it.
    Follow(String),
}

impl Decision {
    /// Whether, once the write (if any) succeeds, we answer for the Service.
    pub fn leads(&self) -> bool {
        !matches!(self, Decision::Follow(_))
    }
}

pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    let age = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| now.duration_since(t.0).unsigned_abs());
    let duration = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(DURATION);
    let expired = age.is_none_or(|a| a > duration);
    match holder {
        "" => Decision::TakeOver,
        h if h == me && age.is_some_and(|a| a < RENEW_AFTER) => Decision::Held,
        h if h == me => Decision::Renew,
        _ if expired => Decision::TakeOver,
        h => Decision::Follow(h.to_string()),
    }
}

/// The spec after `decision` (for the writing decisions).
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: &Decision,
    me: &str,
    now: Timestamp,
) -> LeaseSpec {
    let mut spec = current.cloned().unwrap_or_default();
    let now = MicroTime(now);
    if matches!(decision, Decision::Create | Decision::TakeOver) {
        spec.acquire_time = Some(now.clone());
        if current.is_some() {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
    }
    spec.holder_identity = Some(me.to_string());
    spec.lease_duration_seconds = Some(DURATION.as_secs() as i32);
    spec.renew_time = Some(now);
    spec
}

/// The Service uid a Lease answers for, from its name.
pub fn service_uid(lease: &Lease, prefix: &str) -> Option<String> {
    lease
        .metadata
        .name
        .as_deref()?
        .strip_prefix(prefix)
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(
                now - k8s_openapi::jiff::SignedDuration::from_secs(renewed_secs_ago),
            )),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn leases_are_created_held_renewed_followed_and_taken_over() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&spec("a", 1, now)), "a", now), Decision::Held);
        assert_eq!(decide(Some(&spec("a", 6, now)), "a", now), Decision::Renew);
        assert_eq!(
            decide(Some(&spec("b", 6, now)), "a", now),
            Decision::Follow("b".into())
        );
        assert!(!decide(Some(&spec("b", 6, now)), "a", now).leads());
        assert_eq!(
            decide(Some(&spec("b", 16, now)), "a", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&spec("", 1, now)), "a", now),
            Decision::TakeOver
        );
        // A Lease without times is free.
        let bare = LeaseSpec {
            holder_identity: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(decide(Some(&bare), "a", now), Decision::TakeOver);
    }

    #[test]
    fn taking_over_counts_a_transition() {
        let now = Timestamp::now();
        let old = spec("b", 20, now);
        let new = next_spec(Some(&old), &Decision::TakeOver, "a", now);
        assert_eq!(new.holder_identity.as_deref(), Some("a"));
        assert_eq!(new.lease_transitions, Some(1));
        assert_eq!(new.acquire_time.as_ref().map(|t| t.0), Some(now));
        let renewed = next_spec(Some(&new), &Decision::Renew, "a", now);
        assert_eq!(renewed.lease_transitions, Some(1));
        let created = next_spec(None, &Decision::Create, "a", now);
        assert_eq!(created.lease_transitions, None);
        assert_eq!(created.lease_duration_seconds, Some(15));
    }
}

//! Names beside ids, in every output: the API's JSON, the dashboard's pages and CSV files
//! and the weekly report all show what an id stands for, read from the account's
//! [`Directory`] at answer time (so a renamed team shows its new name without a
//! reprocess). Where the replica has no name (or the server no replica), the text falls
//! back to the kind and the id: "Team 7".

use chrono_tz::Tz;
use mttx_facts::Fact;
use mttx_query::{Burst, GroupBy, Noise, Noisy};
use mttx_replica::{Directory, Kind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::body::RowBody;

/// The noisy-alerts view of `account`'s incidents in `period`, with what the replica at
/// `source` adds: each incident's dedup key and suppressed repeats (GoAlert's). Without such
/// a record (the contract keeps none), without a replica, or when it cannot be read right
/// now, the view counts incidents alone, and the log says why.
pub async fn noisy(
    engine: &mttx_query::Engine,
    source: Option<&mttx_replica::Source>,
    account: i64,
    period: &mttx_query::Period,
    filters: &mttx_query::Filters,
    options: &mttx_query::NoisyOptions,
) -> mttx_query::Result<Noisy> {
    let incidents = engine.noisy_incidents(account, period, filters).await?;
    let repeats = match source {
        None => mttx_query::Repeats::new(),
        Some(source) => match source.repeats(&incidents.ids()).await {
            Ok(r) => r
                .into_iter()
                .map(|(id, r)| (id, (r.dedup_key, r.repeats)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read alert repeats from the replica; counting incidents alone");
                mttx_query::Repeats::new()
            }
        },
    };
    Ok(incidents.view(&repeats, options))
}

/// The name of `id`, or "Team 7" style text where the replica has none.
pub fn label(d: &Directory, kind: Kind, id: i64) -> String {
    match d.name(kind, id) {
        Some(name) => name.to_owned(),
        None => {
            let what = match kind {
                Kind::Team => "Team",
                Kind::Service => "Service",
                Kind::EscalationPolicy => "Escalation policy",
                Kind::User => "User",
            };
            format!("{what} {id}")
        }
    }
}

/// The account's name, or "Account 1".
pub fn account_label(d: &Directory) -> String {
    d.account_name
        .clone()
        .unwrap_or_else(|| format!("Account {}", d.account_id))
}

/// The account's own time zone, if the replica has one that is an IANA name.
pub fn account_zone(d: &Directory) -> Option<Tz> {
    d.time_zone.as_deref()?.parse().ok()
}

/// What a breakdown's keys are ids of (None: urgency and priority are their own names).
pub fn group_kind(g: GroupBy) -> Option<Kind> {
    match g {
        GroupBy::Team => Some(Kind::Team),
        GroupBy::Service => Some(Kind::Service),
        GroupBy::EscalationPolicy => Some(Kind::EscalationPolicy),
        GroupBy::Responder => Some(Kind::User),
        GroupBy::Urgency | GroupBy::Priority => None,
    }
}

/// Gives each row of a `group_by` breakdown the name of its key.
pub fn name_rows(d: &Directory, group_by: GroupBy, rows: &mut [RowBody]) {
    let Some(kind) = group_kind(group_by) else {
        return;
    };
    for r in rows {
        r.name = r
            .key
            .as_deref()
            .and_then(|k| k.parse().ok())
            .map(|id| label(d, kind, id));
    }
}

/// One incident's facts with the names of its ids beside them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NamedFact {
    #[serde(flatten)]
    pub fact: Fact,
    pub service_name: String,
    pub team_name: Option<String>,
    pub escalation_policy_name: Option<String>,
    /// The names of `acknowledged_user_ids`, in the same order.
    pub acknowledged_user_names: Vec<String>,
    /// The names of `assigned_user_ids`, in the same order.
    pub assigned_user_names: Vec<String>,
}

impl NamedFact {
    pub fn new(d: &Directory, fact: Fact) -> Self {
        let users = |ids: &[i64]| ids.iter().map(|u| label(d, Kind::User, *u)).collect();
        Self {
            service_name: label(d, Kind::Service, fact.service_id),
            team_name: fact.team_id.map(|t| label(d, Kind::Team, t)),
            escalation_policy_name: fact
                .escalation_policy_id
                .map(|p| label(d, Kind::EscalationPolicy, p)),
            acknowledged_user_names: users(&fact.acknowledged_user_ids),
            assigned_user_names: users(&fact.assigned_user_ids),
            fact,
        }
    }

    /// Each of `facts`, named.
    pub fn all(d: &Directory, facts: Vec<Fact>) -> Vec<Self> {
        facts.into_iter().map(|f| Self::new(d, f)).collect()
    }
}

/// A service's or an alert's noise with the names of its services.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NamedNoise {
    #[serde(flatten)]
    pub noise: Noise,
    /// The service's name, where the key is a service id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The names of `service_ids`, in the same order.
    pub service_names: Vec<String>,
}

/// A burst with the names of its services.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NamedBurst {
    #[serde(flatten)]
    pub burst: Burst,
    /// The names of `service_ids`, in the same order.
    pub service_names: Vec<String>,
}

/// The noisy-alerts view with names beside the service ids.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NamedNoisy {
    /// Services with the most incidents.
    pub services: Vec<NamedNoise>,
    /// Alerts (title fingerprints) with the most incidents.
    pub titles: Vec<NamedNoise>,
    /// Services with the highest auto-resolve share.
    pub auto_resolving: Vec<NamedNoise>,
    /// Services with the most flaps.
    pub flapping: Vec<NamedNoise>,
    /// The largest bursts.
    pub bursts: Vec<NamedBurst>,
}

impl NamedNoisy {
    pub fn new(d: &Directory, view: Noisy) -> Self {
        let services = |ids: &[i64]| ids.iter().map(|s| label(d, Kind::Service, *s)).collect();
        let noise = |by_service: bool| {
            move |n: Noise| NamedNoise {
                name: by_service
                    .then(|| n.key.parse().ok().map(|id| label(d, Kind::Service, id)))
                    .flatten(),
                service_names: services(&n.service_ids),
                noise: n,
            }
        };
        Self {
            services: view.services.into_iter().map(noise(true)).collect(),
            titles: view.titles.into_iter().map(noise(false)).collect(),
            auto_resolving: view.auto_resolving.into_iter().map(noise(true)).collect(),
            flapping: view.flapping.into_iter().map(noise(true)).collect(),
            bursts: view
                .bursts
                .into_iter()
                .map(|b| NamedBurst {
                    service_names: services(&b.service_ids),
                    burst: b,
                })
                .collect(),
        }
    }
}

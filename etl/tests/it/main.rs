//! Tests of the fold: the golden set's hand-worked facts, and invariants over generated logs.
#![allow(clippy::unwrap_used, reason = "a test fails loudly where setup fails")]

mod append;
mod fold_golden;
mod fold_properties;
mod generations;
mod goalert;
mod leases;
mod oracle;
mod pagerduty;
mod pipeline;
mod reprocess;

use std::collections::BTreeMap;

use mttx_etl::{Context, Entry, IncidentRow};
use mttx_fixtures::model::Dataset;

/// The fold's inputs from an in-memory replica: context, incident rows, entries by incident.
pub fn inputs(data: &Dataset) -> (Context, Vec<IncidentRow>, BTreeMap<i64, Vec<Entry>>) {
    let mut ctx = Context::default();
    for a in &data.org.accounts {
        ctx.account_time_zones
            .insert(a.id, a.time_zone.parse().unwrap());
    }
    for u in &data.org.users {
        ctx.user_time_zones
            .insert(u.id, u.time_zone.parse().unwrap());
    }
    for p in &data.org.escalation_policies {
        ctx.policy_teams.insert(p.id, p.team_id);
    }
    for s in &data.org.services {
        ctx.service_teams.insert(s.id, s.team_id);
    }
    let incidents = data
        .incidents
        .iter()
        .map(|i| IncidentRow {
            id: i.id,
            account_id: i.account_id,
            incident_number: i.incident_number,
            service_id: i.service_id,
            escalation_policy_id: i.escalation_policy_id,
            title: i.title.clone(),
            urgency: i.urgency.to_string(),
            priority: i.priority.as_deref().map(str::to_owned),
            status: i.status.to_string(),
            created_at: i.created_at,
        })
        .collect();
    let mut entries: BTreeMap<i64, Vec<Entry>> = BTreeMap::new();
    for e in &data.entries {
        entries.entry(e.incident_id).or_default().push(Entry {
            id: e.id,
            incident_id: e.incident_id,
            entry_type: mttx_replica::rows::label(&e.entry_type),
            created_at: e.created_at,
            agent_type: e.agent_type.as_deref().map(mttx_replica::rows::label),
            agent_id: e.agent_id,
            channel: e.channel.as_deref().map(mttx_replica::rows::label),
            user_id: e.user_id,
            assignee_ids: e.assignee_ids.clone(),
            escalation_policy_id: e.escalation_policy_id,
            details: e.details.clone(),
        });
    }
    (ctx, incidents, entries)
}

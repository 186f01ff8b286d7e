//! Log entries, window by window: the incidents they need first (fetched where the replica
//! lacks them), then the entries new to the replica in time order, committed with the
//! progress.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::client::{Client, rfc3339};
use crate::import::{ACCOUNT, Summary, quarantine, replica_ts, write_incident};
use crate::map::{self, Problem, Reference};
use crate::org::{policy_id, user_id};
use crate::store::{Param, Store, Tx};
use crate::{Error, Result};

/// Entry types whose arrival may change an incident's current state.
const STATE_CHANGES: [&str; 8] = [
    "acknowledge",
    "unacknowledge",
    "resolve",
    "escalate",
    "delegate",
    "urgency_change",
    "priority_change",
    "reassign",
];

/// One window of log entries: the incidents they need first (fetched where the replica
/// does not have them), then the new entries in time order, with the progress. Returns the
/// incidents whose state may have changed since they were written: those with a
/// state-changing entry made after `written_before` (when the rows were read).
pub(crate) async fn entries_window(
    client: &Client,
    store: &Store,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    written_before: DateTime<Utc>,
    s: &mut Summary,
) -> Result<BTreeSet<String>> {
    let query = [
        ("include[]", "channels".to_owned()),
        ("is_overview", "false".to_owned()),
        ("time_zone", "UTC".to_owned()),
    ];
    let listed = client
        .list_window("log_entries", "log_entries", &query, from, to)
        .await?;
    // Read first, outside the write: which incidents the replica lacks.
    let mut read = store.begin().await?;
    let mut missing = BTreeSet::new();
    for v in &listed {
        if let Some(incident) = v.get("incident").and_then(map::reference)
            && read.id_of("incident", &incident.id).await?.is_none()
        {
            missing.insert(incident.id);
        }
    }
    read.commit().await?;
    let mut fetched = Vec::new();
    for id in &missing {
        match client.get(&format!("incidents/{id}"), &[]).await {
            Ok(body) => fetched.push((id.clone(), Some(body["incident"].clone()))),
            Err(Error::NotFound(_)) => fetched.push((id.clone(), None)),
            Err(e) => return Err(e),
        }
    }
    let mut entries: Vec<(map::Entry, &Value)> = Vec::new();
    let mut tx = store.begin().await?;
    let mut gone = BTreeSet::new();
    for (id, incident) in &fetched {
        let written = match incident {
            Some(v) if v.is_object() => write_incident(&mut tx, v, s).await?,
            _ => false,
        };
        if !written {
            gone.insert(id.clone());
        }
    }
    for v in &listed {
        match map::entry(v) {
            Ok(e) => entries.push((e, v)),
            Err(p) => {
                quarantine(&mut tx, "log_entry", v, &p).await?;
                s.quarantined += 1;
            }
        }
    }
    entries.sort_by(|a, b| (a.0.created_at, &a.0.id).cmp(&(b.0.created_at, &b.0.id)));
    let mut touched = BTreeSet::new();
    for (e, v) in entries {
        if tx.id_of("log_entry", &e.id).await?.is_some() {
            s.entries_known += 1;
            continue;
        }
        let Some(incident) = tx.id_of("incident", &e.incident).await? else {
            let problem = Problem {
                reason: "unknown_incident",
                detail: format!(
                    "incident {} cannot be read from PagerDuty{}",
                    e.incident,
                    if gone.contains(&e.incident) {
                        " (or is not importable)"
                    } else {
                        ""
                    }
                ),
            };
            quarantine(&mut tx, "log_entry", v, &problem).await?;
            s.quarantined += 1;
            continue;
        };
        if STATE_CHANGES.contains(&e.entry_type.as_str()) && e.created_at >= written_before {
            touched.insert(e.incident.clone());
        }
        write_entry(&mut tx, &e, incident).await?;
        s.entries += 1;
    }
    tx.set_progress("log_entries_until", &rfc3339(to)).await?;
    tx.commit().await?;
    Ok(touched)
}

async fn write_entry(tx: &mut Tx, e: &map::Entry, incident: i64) -> Result<()> {
    let (agent_type, agent_id) = match &e.agent {
        Some(a) => {
            let kind = a.kind.clone();
            let id = match (a.kind.as_deref(), &a.id) {
                (Some("user"), Some(id)) => Some(
                    user_id(
                        tx,
                        &Reference {
                            id: id.clone(),
                            summary: a.summary.clone(),
                        },
                    )
                    .await?,
                ),
                (Some("service"), Some(id)) => tx.id_of("service", id).await?,
                (None, Some(id)) => tx.id_of("user", id).await?,
                _ => None,
            };
            (kind, id)
        }
        None => (None, None),
    };
    let user = match &e.user {
        Some(u) => Some(user_id(tx, u).await?),
        None => None,
    };
    let assignees = match &e.assignees {
        Some(list) => {
            let mut ids = Vec::with_capacity(list.len());
            for r in list {
                ids.push(user_id(tx, r).await?);
            }
            Some(ids)
        }
        None => None,
    };
    let policy = match &e.policy {
        Some(p) => Some(policy_id(tx, p).await?),
        // The policy at trigger, where the trigger does not name it: the incident's.
        None if e.entry_type == "trigger" => {
            tx.int(
                "SELECT escalation_policy_id FROM incidents WHERE id = $1",
                &[incident.into()],
            )
            .await?
        }
        None => None,
    };
    let (id, _) = tx
        .id_for("log_entry", "incident_log_entries", &e.id)
        .await?;
    let postgres = tx.postgres();
    let array = assignees.map(|ids| {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        if postgres {
            format!("{{{}}}", list.join(","))
        } else {
            format!("[{}]", list.join(","))
        }
    });
    tx.exec(
        "INSERT INTO incident_log_entries (id, account_id, incident_id, type, created_at, agent_type, \
           agent_id, channel, user_id, assignee_ids, escalation_policy_id, details) \
         VALUES ($1, $2, $3, $4, {ts $5}, $6, $7, $8, $9, {arr $10}, $11, {json $12})",
        &[
            id.into(),
            ACCOUNT.into(),
            incident.into(),
            e.entry_type.as_str().into(),
            replica_ts(e.created_at).into(),
            agent_type.into(),
            agent_id.into(),
            e.channel.clone().into(),
            user.into(),
            Param::Text(array),
            policy.into(),
            e.details.clone().into(),
        ],
    )
    .await
    .map(drop)
}

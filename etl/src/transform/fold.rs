//! The fold: one incident's log entries in, one facts row out. This is where the metric
//! definitions live (docs/design.md "Metric definitions", and the readings of them fixed by
//! `fixtures/golden/README.md`). Pure and deterministic: no clock, no I/O, and the result
//! does not depend on the order the entries are given in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Timelike, Weekday};
use chrono_tz::Tz;

pub use mttx_facts::Fact;
pub use mttx_migrations::KNOWN_TYPES;

use super::{Context, Entry, IncidentRow, MetricsVersion, Ts};

/// Why an entry (or an incident, with entry id 0) went to quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    UnknownType,
    AckBeforeTrigger,
    ResolveBeforeTrigger,
    Duplicate,
    NullField,
    MissingTrigger,
    /// An entry whose incident has no row (reported by the caller, which has no row to fold).
    Orphan,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownType => "unknown_type",
            Reason::AckBeforeTrigger => "ack_before_trigger",
            Reason::ResolveBeforeTrigger => "resolve_before_trigger",
            Reason::Duplicate => "duplicate",
            Reason::NullField => "null_field",
            Reason::MissingTrigger => "missing_trigger",
            Reason::Orphan => "orphan",
        }
    }
}

/// A piece of bad input found while folding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Issue {
    pub incident_id: i64,
    /// 0 where the problem is the incident as a whole.
    pub entry_id: i64,
    pub reason: Reason,
    pub detail: String,
}

/// The fold's result: the facts row and the bad input it met.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    pub fact: Fact,
    pub issues: Vec<Issue>,
}

/// Notification channels that interrupt a person.
const INTERRUPTING: [&str; 3] = ["sms", "phone", "push"];
/// Entry types that move a resolved incident back into work: one of them after a resolve
/// reopens it. Notifications (resolve notices), notes, urgency and priority changes and the
/// escalation path's bookkeeping after a resolve do not.
pub const REOPENING: [&str; 7] = [
    "trigger",
    "acknowledge",
    "unacknowledge",
    "assign",
    "delegate",
    "escalate",
    "snooze",
];
/// Pages to one user closer than this to the last counted one are the same interruption.
const REPEAT_WINDOW_S: i64 = 60;

/// Time-of-day band of an interruption in the notified person's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// Monday to Friday, 08:00–18:00.
    Business,
    /// Monday to Friday 18:00–22:00, weekends 08:00–22:00.
    OffHours,
    /// 22:00–08:00, every day.
    Sleep,
}

pub fn band(at: Ts, tz: Tz) -> Band {
    let local = at.with_timezone(&tz);
    let hour = local.hour();
    let weekend = matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    match hour {
        h if !(8..22).contains(&h) => Band::Sleep,
        h if !weekend && h < 18 => Band::Business,
        _ => Band::OffHours,
    }
}

fn seconds(from: Ts, to: Ts) -> f64 {
    ((to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0)
}

/// One escalation as the log shows it: its time, agent (type and id) and channel. Its
/// entries (one per assignee) share all four.
type Escalation<'a> = (Ts, Option<&'a str>, Option<i64>, Option<&'a str>);

/// Folds one incident's entries into its facts row under `version`'s definitions.
pub fn fold(
    version: MetricsVersion,
    incident: &IncidentRow,
    entries: &[Entry],
    ctx: &Context,
) -> Folded {
    let mut issues = Vec::new();
    let mut issue = |entry_id: i64, reason: Reason, detail: String| {
        issues.push(Issue {
            incident_id: incident.id,
            entry_id,
            reason,
            detail,
        });
    };

    // Time order; ids break ties, so the input order never matters.
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let last_entry_id = sorted.iter().map(|e| e.id).max().unwrap_or(0);

    // Duplicates: keep the one with the lowest id. Equal events have equal times, so they
    // sit together in time order; compare within runs of equal time.
    let mut kept: Vec<&Entry> = Vec::with_capacity(sorted.len());
    for e in &sorted {
        let twin = kept
            .iter()
            .rev()
            .take_while(|k| k.created_at == e.created_at)
            .find(|k| k.same_event(e))
            .map(|k| k.id);
        match twin {
            Some(original) => issue(
                e.id,
                Reason::Duplicate,
                format!("same event as entry {original}"),
            ),
            None => kept.push(e),
        }
    }

    let trigger = kept.iter().find(|e| e.entry_type == "trigger");
    let (created_at, from_row) = match trigger {
        Some(t) => (t.created_at, false),
        None => {
            issue(
                0,
                Reason::MissingTrigger,
                "no trigger entry; created_at taken from the incident row".into(),
            );
            (incident.created_at, true)
        }
    };

    // v1: the policy at trigger — the trigger's, else the first entry that names one.
    let policy_at_trigger = trigger
        .and_then(|t| t.escalation_policy_id)
        .or_else(|| kept.iter().find_map(|e| e.escalation_policy_id));

    let mut fact = Fact {
        account_id: incident.account_id,
        incident_id: incident.id,
        incident_number: incident.incident_number,
        service_id: incident.service_id,
        title: incident.title.clone(),
        urgency: incident.urgency.clone(),
        priority: incident.priority.clone(),
        major: matches!(incident.priority.as_deref(), Some("P1" | "P2")),
        status: incident.status.clone(),
        escalation_policy_id: None,
        team_id: None,
        created_at,
        created_at_from_incident_row: from_row,
        acknowledged_at: None,
        resolved_at: None,
        seconds_to_first_ack: None,
        seconds_to_resolve: None,
        auto_resolved: false,
        escalation_count: 0,
        timeout_escalations: 0,
        manual_escalations: 0,
        reassignment_count: 0,
        ack_count: 0,
        notification_count: 0,
        interruptions: 0,
        interruptions_business: 0,
        interruptions_off_hours: 0,
        interruptions_sleep: 0,
        seconds_to_mobilize: None,
        acknowledged_user_ids: Vec::new(),
        assigned_user_ids: Vec::new(),
        unknown_entry_count: 0,
        metrics_version: version as i32,
        last_entry_id,
        reopen_count: Some(0),
        final_resolved_at: None,
    };

    let mut first_ack_by_user: BTreeMap<i64, Ts> = BTreeMap::new();
    let mut assigned: BTreeSet<i64> = BTreeSet::new();
    // Actions, not entries: PagerDuty writes one entry per assignee, and a delegation
    // writes its `assign` entries in the same second, so the entries of one action share
    // their time. Escalations are told apart by time, agent and channel; assignments by
    // time alone (a user's delegate and the service's assigns are one action).
    let mut escalations: BTreeMap<Escalation<'_>, bool> = BTreeMap::new();
    let mut assignments: BTreeSet<Ts> = BTreeSet::new();
    // Who acknowledged when: the service's `assign` of someone who acknowledges without
    // being assigned is part of that acknowledgement, not an assignment.
    let acked_at: BTreeSet<(Ts, i64)> = kept
        .iter()
        .filter(|e| e.entry_type == "acknowledge")
        .filter_map(|e| Some((e.created_at, e.agent_id?)))
        .collect();
    // (user, time) of every interrupting notification, in time order.
    let mut pages: Vec<(i64, Ts)> = Vec::new();

    // Reopenings: resolved since when (None: open), in time order with the work done at
    // the very instant of a resolve before it (so ids never decide); each open span after a
    // resolve is one reopening.
    // `kept` is in time order: only within a run of equal times do the resolves go last.
    let mut resolved_since: Option<Ts> = None;
    let mut reopenings = 0_i64;
    for instant in kept.chunk_by(|a, b| a.created_at == b.created_at) {
        for resolves in [false, true] {
            for e in instant
                .iter()
                .filter(|e| (e.entry_type == "resolve") == resolves)
            {
                match &*e.entry_type {
                    "resolve" if resolved_since.is_none() => {
                        resolved_since = Some(e.created_at.max(created_at));
                    }
                    t if REOPENING.contains(&t) && resolved_since.take().is_some() => {
                        reopenings += 1
                    }
                    _ => {}
                }
            }
        }
    }

    for e in &kept {
        let null = |field: &str| format!("{} entry without {field}", e.entry_type);
        match &*e.entry_type {
            "acknowledge" => {
                fact.ack_count += 1;
                let at = if e.created_at < created_at {
                    issue(
                        e.id,
                        Reason::AckBeforeTrigger,
                        format!(
                            "acknowledged {:.0} s before the trigger",
                            seconds(e.created_at, created_at)
                        ),
                    );
                    created_at
                } else {
                    e.created_at
                };
                if fact.acknowledged_at.is_none() {
                    fact.acknowledged_at = Some(at);
                }
                match e.agent_id {
                    Some(user) => {
                        first_ack_by_user.entry(user).or_insert(at);
                    }
                    None => issue(e.id, Reason::NullField, null("agent_id")),
                }
            }
            "resolve" if fact.resolved_at.is_none() => {
                let at = if e.created_at < created_at {
                    issue(
                        e.id,
                        Reason::ResolveBeforeTrigger,
                        "resolved before the trigger".into(),
                    );
                    created_at
                } else {
                    e.created_at
                };
                fact.resolved_at = Some(at);
                fact.auto_resolved = match e.agent_type.as_deref() {
                    Some("user") => false,
                    Some(_) => true,
                    None => {
                        issue(e.id, Reason::NullField, null("agent_type"));
                        false
                    }
                };
            }
            "escalate" => {
                if e.channel.is_none() {
                    issue(e.id, Reason::NullField, null("channel"));
                }
                // A timeout: channel `timeout`, or the service acting on its own (`auto`).
                let timeout = match e.channel.as_deref() {
                    Some("timeout") => true,
                    Some("auto") => e.agent_type.as_deref().is_some_and(|a| a != "user"),
                    _ => false,
                };
                let action = (
                    e.created_at,
                    e.agent_type.as_deref(),
                    e.agent_id,
                    e.channel.as_deref(),
                );
                escalations.entry(action).or_insert(timeout);
                match &e.assignee_ids {
                    Some(ids) => assigned.extend(ids),
                    None => issue(e.id, Reason::NullField, null("assignee_ids")),
                }
            }
            "assign" | "delegate" => {
                let part_of_an_ack = e.entry_type == "assign"
                    && e.agent_type.as_deref() != Some("user")
                    && e.assignee_ids.as_ref().is_some_and(|ids| {
                        !ids.is_empty()
                            && ids.iter().all(|u| acked_at.contains(&(e.created_at, *u)))
                    });
                if !part_of_an_ack {
                    assignments.insert(e.created_at);
                }
                match &e.assignee_ids {
                    Some(ids) => assigned.extend(ids),
                    None => issue(e.id, Reason::NullField, null("assignee_ids")),
                }
            }
            "notify" => {
                fact.notification_count += 1;
                match (e.user_id, e.channel.as_deref()) {
                    (Some(user), Some(channel)) => {
                        if INTERRUPTING.contains(&channel) {
                            pages.push((user, e.created_at));
                        }
                    }
                    (None, _) => issue(e.id, Reason::NullField, null("user_id")),
                    (_, None) => issue(e.id, Reason::NullField, null("channel")),
                }
            }
            t if !KNOWN_TYPES.contains(&t) => {
                fact.unknown_entry_count += 1;
                issue(
                    e.id,
                    Reason::UnknownType,
                    format!("entry type `{t}` is not in the contract"),
                );
            }
            _ => {}
        }
    }

    fact.reopen_count = Some(reopenings);
    fact.final_resolved_at = resolved_since;
    fact.escalation_count = escalations.len() as i64;
    fact.timeout_escalations = escalations.values().filter(|t| **t).count() as i64;
    fact.manual_escalations = fact.escalation_count - fact.timeout_escalations;
    fact.reassignment_count = (assignments.len() as i64 - 1).max(0);
    fact.seconds_to_first_ack = fact.acknowledged_at.map(|t| seconds(created_at, t));
    fact.seconds_to_resolve = fact.resolved_at.map(|t| seconds(created_at, t));
    fact.acknowledged_user_ids = first_ack_by_user.keys().copied().collect();
    fact.assigned_user_ids = assigned.into_iter().collect();
    if first_ack_by_user.len() >= 2 {
        fact.seconds_to_mobilize = first_ack_by_user
            .values()
            .max()
            .map(|&last| seconds(created_at, last));
    }

    // Interruptions: per user, a page counts unless a counted one came < 60 s before.
    pages.sort();
    let mut last_counted: Option<(i64, Ts)> = None;
    for (user, at) in pages {
        if let Some((u, t)) = last_counted
            && u == user
            && (at - t).num_seconds() < REPEAT_WINDOW_S
        {
            continue;
        }
        last_counted = Some((user, at));
        let tz = ctx
            .user_time_zones
            .get(&user)
            .or_else(|| ctx.account_time_zones.get(&incident.account_id))
            .copied()
            .unwrap_or(chrono_tz::UTC);
        fact.interruptions += 1;
        match band(at, tz) {
            Band::Business => fact.interruptions_business += 1,
            Band::OffHours => fact.interruptions_off_hours += 1,
            Band::Sleep => fact.interruptions_sleep += 1,
        }
    }

    let policy = match version {
        MetricsVersion::V1 => policy_at_trigger,
        MetricsVersion::V2 => Some(incident.escalation_policy_id),
    };
    fact.escalation_policy_id = policy;
    fact.team_id = ctx.team_of(policy, incident.service_id);

    issues.sort();
    Folded { fact, issues }
}

/// What folding a batch of incidents gave: facts rows, bad input, and each incident's
/// account (for its quarantine records).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub facts: Vec<Fact>,
    pub issues: Vec<Issue>,
    pub accounts: std::collections::HashMap<i64, i64>,
    /// Log entries folded (orphans included).
    pub entries: u64,
}

impl Batch {
    /// The account of an incident of the batch (0 if unknown).
    pub fn account_of(&self, incident_id: i64) -> i64 {
        self.accounts.get(&incident_id).copied().unwrap_or(0)
    }
}

/// Folds each incident of `ids` that has a log, in the order given, by its account's
/// metrics version: a facts row where the incident has a row, every entry quarantined as
/// an orphan where it has none.
pub fn fold_all(
    versions: &super::Versions,
    ids: impl IntoIterator<Item = i64>,
    incidents: &std::collections::HashMap<i64, IncidentRow>,
    logs: &mttx_replica::Logs,
    ctx: &Context,
) -> Batch {
    let mut batch = Batch::default();
    for id in ids {
        let Some((account, log)) = logs.get(&id) else {
            continue;
        };
        batch.entries += log.len() as u64;
        batch.accounts.insert(id, *account);
        match incidents.get(&id) {
            Some(row) => {
                let folded = fold(versions.of(*account), row, log, ctx);
                batch.issues.extend(folded.issues);
                batch.facts.push(folded.fact);
            }
            None => batch.issues.extend(log.iter().map(|e| Issue {
                incident_id: id,
                entry_id: e.id,
                reason: Reason::Orphan,
                detail: format!("incident {id} has no row in incidents"),
            })),
        }
    }
    batch
}

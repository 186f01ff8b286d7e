//! The replica contract's rows as mttx reads them, and what the fold needs to know of the
//! organisation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub type Ts = DateTime<Utc>;

/// A short text of the log that takes few values (an entry type, an agent type, a channel):
/// the usual values are static, so reading one allocates nothing; any other is kept as read.
pub type Label = std::borrow::Cow<'static, str>;

/// The values of [`Label`] fields besides the contract's entry types
/// ([`mttx_migrations::KNOWN_TYPES`]) that are read without allocating.
const LABELS: [&str; 15] = [
    // agent types
    "user",
    "service",
    "integration",
    "system",
    // channels
    "sms",
    "phone",
    "push",
    "email",
    "slack",
    "webhook",
    "website",
    "web",
    "api",
    "auto",
    "timeout",
];

/// The usual value spelt `bytes`, if it is one.
fn usual(bytes: &[u8]) -> Option<&'static str> {
    mttx_migrations::KNOWN_TYPES
        .iter()
        .chain(&LABELS)
        .copied()
        .find(|l| l.as_bytes() == bytes)
}

/// `text` as a [`Label`]: a static one where `text` is a usual value.
pub fn label(text: &str) -> Label {
    match usual(text.as_bytes()) {
        Some(l) => Label::Borrowed(l),
        None => Label::Owned(text.to_owned()),
    }
}

/// `bytes` as a [`Label`]: a usual value is found on its bytes, and only another is checked
/// as UTF-8 and kept as read (a backfill reads three labels per entry).
pub fn label_of(bytes: &[u8]) -> Result<Label, std::str::Utf8Error> {
    match usual(bytes) {
        Some(l) => Ok(Label::Borrowed(l)),
        None => std::str::from_utf8(bytes).map(|t| Label::Owned(t.to_owned())),
    }
}

/// One row of `incident_log_entries`, as read from the replica.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub incident_id: i64,
    pub entry_type: Label,
    pub created_at: Ts,
    pub agent_type: Option<Label>,
    pub agent_id: Option<i64>,
    pub channel: Option<Label>,
    pub user_id: Option<i64>,
    pub assignee_ids: Option<Vec<i64>>,
    pub escalation_policy_id: Option<i64>,
    /// JSON text as the replica returns it. A read to fold (`Source::logs_between`,
    /// `Source::logs_to_fold`) leaves it None unless another entry of the incident equals
    /// this one in everything else: the fold compares details only to tell a duplicate.
    pub details: Option<String>,
}

impl Entry {
    /// The same event written twice: equal in everything but the id.
    pub fn same_event(&self, other: &Entry) -> bool {
        self.same_but_details(other) && self.details == other.details
    }

    /// Equal in everything but the id and `details`: the only entries whose details decide
    /// whether they are the same event.
    pub fn same_but_details(&self, other: &Entry) -> bool {
        self.entry_type == other.entry_type
            && self.created_at == other.created_at
            && self.agent_type == other.agent_type
            && self.agent_id == other.agent_id
            && self.channel == other.channel
            && self.user_id == other.user_id
            && self.assignee_ids == other.assignee_ids
            && self.escalation_policy_id == other.escalation_policy_id
    }
}

/// The entries of `logs` that another entry of their incident equals in everything but the
/// id and details ([`Entry::same_but_details`]), as (incident, index in its log): the
/// entries a read without details must read the details of.
pub fn twins(logs: &Logs) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    let mut by_time: Vec<usize> = Vec::new();
    for (&incident, (_, log)) in logs {
        // Equal events have equal times: compare within runs of equal time.
        by_time.clear();
        by_time.extend(0..log.len());
        by_time.sort_unstable_by_key(|&i| log[i].created_at);
        for run in by_time.chunk_by(|&a, &b| log[a].created_at == log[b].created_at) {
            for &i in run {
                if run
                    .iter()
                    .any(|&j| j != i && log[i].same_but_details(&log[j]))
                {
                    out.push((incident, i));
                }
            }
        }
    }
    out
}

/// A map keyed by the replica's ids, hashed with foldhash rather than the standard SipHash:
/// a backfill files every entry it reads under its incident and looks up a time zone or a
/// team for many, and SipHash of an id costs about a hundred instructions each time
/// (callgrind: 5.8 % of a backfill's).
pub type IdMap<V> = HashMap<i64, V, foldhash::fast::RandomState>;

/// Log entries by incident, each incident with its account.
pub type Logs = IdMap<(i64, Vec<Entry>)>;

/// One row of `incidents`: the incident's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: i64,
    pub account_id: i64,
    pub incident_number: i64,
    pub service_id: i64,
    pub escalation_policy_id: i64,
    pub title: String,
    pub urgency: String,
    pub priority: Option<String>,
    pub status: String,
    pub created_at: Ts,
}

/// What the fold needs to know of the organisation.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Each user's time zone, for interruption bands.
    pub user_time_zones: IdMap<Tz>,
    /// Each account's time zone: the band of a notified user the replica does not know.
    pub account_time_zones: IdMap<Tz>,
    /// The team of each escalation policy (None: an account-wide policy).
    pub policy_teams: IdMap<Option<i64>>,
    /// The team of each service, used where the policy has no team.
    pub service_teams: IdMap<Option<i64>>,
}

impl Context {
    /// The team an incident is attributed to: its escalation policy's, else its service's.
    pub fn team_of(&self, policy: Option<i64>, service: i64) -> Option<i64> {
        policy
            .and_then(|p| self.policy_teams.get(&p).copied().flatten())
            .or_else(|| self.service_teams.get(&service).copied().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, minute: i64, channel: &str, details: &str) -> Entry {
        Entry {
            id,
            incident_id: 1,
            entry_type: label("notify"),
            created_at: DateTime::from_timestamp(1_800_000_000 + 60 * minute, 0).unwrap(),
            agent_type: None,
            agent_id: None,
            channel: Some(label(channel)),
            user_id: Some(3),
            assignee_ids: None,
            escalation_policy_id: None,
            details: Some(details.to_owned()),
        }
    }

    #[test]
    fn twins_are_equal_in_all_but_id_and_details() {
        let log = vec![
            entry(1, 0, "sms", "a"),
            entry(2, 1, "sms", "b"),
            // The same as 1 but its details, out of time order.
            entry(3, 0, "sms", "c"),
            // Same time as 1, another channel.
            entry(4, 0, "phone", "a"),
            // Same channel as 2, another time.
            entry(5, 2, "sms", "b"),
        ];
        let mut logs = Logs::default();
        logs.insert(1, (7, log));
        logs.insert(2, (7, vec![entry(6, 0, "sms", "a")]));
        let mut found = twins(&logs);
        found.sort();
        assert_eq!(found, vec![(1, 0), (1, 2)]);
        let log = &logs[&1].1;
        assert!(!log[0].same_event(&log[2]));
        assert!(log[0].same_but_details(&log[2]));
        let mut again = log[0].clone();
        again.id = 9;
        assert!(log[0].same_event(&again));
    }
}

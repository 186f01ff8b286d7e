//! PagerDuty's JSON read into the contract's rows, with no I/O: each reader returns the row
//! or the [`Problem`] that keeps it out (which the import quarantines with the raw JSON).
//! Outside ids stay strings here; the import gives them the contract's integer ids.
//!
//! A log entry: `<type>_log_entry` → `<type>`; its agent's type without `_reference`; on a
//! notify, the channel is the notification's method (`channel.notification.type`, present
//! with `include[]=channels`), else `channel.type`; the notify's `user`; `assignees` (or
//! `assigned_user`) of assign, escalate and delegate entries; `escalation_policy` where given; the summary is
//! kept in `details`. Types and channels outside the contract's lists are kept as they are.
//! Where a listing leaves out `assignees`, `user` or the notification (log entries embedded
//! in an incident, or fetched without `include[]=channels`), they are read from PagerDuty's
//! English summary ("Assigned to Kian Amini.", "Escalated to Keon Amini by Keon Amini.",
//! "Notified Kian Amini by email."), naming people by name ([`Reference::by_name`]).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Why an object is not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub detail: String,
}

fn missing(what: &str) -> Problem {
    Problem {
        reason: "missing_field",
        detail: format!("no `{what}`"),
    }
}

/// A reference to another object: its id and, where given, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub id: String,
    pub summary: Option<String>,
}

impl Reference {
    /// The prefix of a reference made from a person's name in a summary: the import looks
    /// the name up among the users.
    pub const BY_NAME: &'static str = "name:";

    pub fn by_name(name: &str) -> Self {
        Self {
            id: format!("{}{name}", Self::BY_NAME),
            summary: Some(name.to_owned()),
        }
    }
}

/// The text of `summary` between `after` and the first of `ends` that follows it.
fn between<'a>(summary: &'a str, after: &str, ends: &[&str]) -> Option<&'a str> {
    let rest = &summary[summary.find(after)? + after.len()..];
    let end = ends.iter().filter_map(|e| rest.find(e)).min()?;
    Some(rest[..end].trim()).filter(|s| !s.is_empty())
}

/// The reference in `v` (an object with an `id`), if any.
pub fn reference(v: &Value) -> Option<Reference> {
    Some(Reference {
        id: v.get("id")?.as_str()?.to_owned(),
        summary: v
            .get("summary")
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn time(v: &Value, field: &str) -> Result<DateTime<Utc>, Problem> {
    let t = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(field))?;
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Problem {
            reason: "bad_time",
            detail: format!("`{field}` = `{t}` is not a time: {e}"),
        })
}

/// The id of `v`, which every object must have.
pub fn id(v: &Value) -> Result<String, Problem> {
    text(v, "id").ok_or_else(|| missing("id"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub time_zone: String,
    pub teams: Vec<String>,
}

pub fn user(v: &Value) -> Result<User, Problem> {
    Ok(User {
        id: id(v)?,
        name: text(v, "name")
            .or_else(|| text(v, "summary"))
            .ok_or_else(|| missing("name"))?,
        email: text(v, "email").unwrap_or_default(),
        time_zone: text(v, "time_zone")
            .filter(|tz| tz.parse::<chrono_tz::Tz>().is_ok())
            .unwrap_or_else(|| "UTC".into()),
        teams: list_ids(v, "teams"),
    })
}

/// The ids of the references in `v[field]`.
fn list_ids(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| reference(t).map(|r| r.id))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
}

pub fn team(v: &Value) -> Result<Team, Problem> {
    Ok(Team {
        id: id(v)?,
        name: text(v, "name")
            .or_else(|| text(v, "summary"))
            .ok_or_else(|| missing("name"))?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub name: String,
    /// Its first team (the contract has one team per policy).
    pub team: Option<String>,
}

pub fn policy(v: &Value) -> Result<Policy, Problem> {
    Ok(Policy {
        id: id(v)?,
        name: text(v, "name")
            .or_else(|| text(v, "summary"))
            .ok_or_else(|| missing("name"))?,
        team: list_ids(v, "teams").into_iter().next(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub policy: Reference,
    pub team: Option<String>,
}

pub fn service(v: &Value) -> Result<Service, Problem> {
    Ok(Service {
        id: id(v)?,
        name: text(v, "name")
            .or_else(|| text(v, "summary"))
            .ok_or_else(|| missing("name"))?,
        policy: v
            .get("escalation_policy")
            .and_then(reference)
            .ok_or_else(|| missing("escalation_policy"))?,
        team: list_ids(v, "teams").into_iter().next(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub urgency: String,
    /// `P1`–`P5`; any other priority name is not in the contract.
    pub priority: Option<String>,
    /// A priority name outside `P1`–`P5`, which the contract cannot hold.
    pub other_priority: Option<String>,
    pub service: Reference,
    pub policy: Reference,
}

pub fn incident(v: &Value) -> Result<Incident, Problem> {
    let status = text(v, "status").ok_or_else(|| missing("status"))?;
    if !["triggered", "acknowledged", "resolved"].contains(&status.as_str()) {
        return Err(Problem {
            reason: "unknown_status",
            detail: format!("status `{status}` is not triggered, acknowledged or resolved"),
        });
    }
    let urgency = text(v, "urgency").unwrap_or_else(|| "high".into());
    if !["high", "low"].contains(&urgency.as_str()) {
        return Err(Problem {
            reason: "unknown_urgency",
            detail: format!("urgency `{urgency}` is not high or low"),
        });
    }
    let priority_name = v
        .get("priority")
        .and_then(|p| text(p, "summary").or_else(|| text(p, "name")));
    let in_contract = |p: &String| ["P1", "P2", "P3", "P4", "P5"].contains(&p.as_str());
    Ok(Incident {
        id: id(v)?,
        number: v
            .get("incident_number")
            .and_then(Value::as_i64)
            .ok_or_else(|| missing("incident_number"))?,
        title: text(v, "title")
            .or_else(|| text(v, "summary"))
            .unwrap_or_default(),
        created_at: time(v, "created_at")?,
        status,
        urgency,
        priority: priority_name.clone().filter(in_contract),
        other_priority: priority_name.filter(|p| !in_contract(p)),
        service: v
            .get("service")
            .and_then(reference)
            .ok_or_else(|| missing("service"))?,
        policy: v
            .get("escalation_policy")
            .and_then(reference)
            .ok_or_else(|| missing("escalation_policy"))?,
    })
}

/// Who acted: a user, a service, an integration… (`None` where PagerDuty names no type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub kind: Option<String>,
    pub id: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub incident: String,
    pub entry_type: String,
    pub created_at: DateTime<Utc>,
    pub agent: Option<Agent>,
    pub channel: Option<String>,
    pub user: Option<Reference>,
    pub assignees: Option<Vec<Reference>>,
    pub policy: Option<Reference>,
    pub details: Option<String>,
}

pub fn entry(v: &Value) -> Result<Entry, Problem> {
    let entry_type = text(v, "type").ok_or_else(|| missing("type"))?;
    let entry_type = entry_type
        .strip_suffix("_log_entry")
        .unwrap_or(&entry_type)
        .to_owned();
    let notify = entry_type == "notify";
    let channel = v.get("channel");
    let channel = if notify {
        channel
            .and_then(|c| c.get("notification"))
            .and_then(|n| text(n, "type"))
            .or_else(|| channel.and_then(|c| text(c, "type")))
    } else {
        channel.and_then(|c| text(c, "type"))
    };
    let agent = v.get("agent").filter(|a| a.is_object()).map(|a| Agent {
        kind: text(a, "type").map(|t| t.trim_end_matches("_reference").to_owned()),
        id: text(a, "id"),
        summary: text(a, "summary"),
    });
    let summary = text(v, "summary");
    let said = summary.as_deref().unwrap_or("");
    // `assignees` (as PagerDuty's own clients read it), or the one `assigned_user` of its
    // OpenAPI description.
    let listed = v
        .get("assignees")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(reference).collect::<Vec<_>>())
        .or_else(|| v.get("assigned_user").and_then(reference).map(|r| vec![r]));
    let assignees = match listed {
        Some(list) => Some(list),
        None => match entry_type.as_str() {
            "assign" | "escalate" => between(said, " to ", &[" by ", " through ", "."])
                .map(|name| vec![Reference::by_name(name)]),
            // Delegated to a policy: its assign entries name the people.
            "delegate" => Some(Vec::new()),
            _ => None,
        },
    };
    let channel = match channel {
        Some(c) if !(notify && c == "auto") => Some(c),
        // A notification's method only in its summary ("… by email.", "… by SMS.").
        other => between(said, " by ", &["."])
            .filter(|_| notify)
            .map(|m| m.to_lowercase())
            .or(other),
    };
    Ok(Entry {
        id: id(v)?,
        incident: v
            .get("incident")
            .and_then(reference)
            .map(|r| r.id)
            .ok_or_else(|| missing("incident"))?,
        entry_type,
        created_at: time(v, "created_at")?,
        agent,
        channel,
        user: if notify {
            v.get("user")
                .and_then(reference)
                .or_else(|| between(said, "Notified ", &[" by "]).map(Reference::by_name))
        } else {
            None
        },
        assignees,
        policy: v.get("escalation_policy").and_then(reference),
        details: summary.map(|s| json!({ "summary": s }).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notify_with_channels_names_its_method_and_user() {
        let v = json!({
            "id": "R1", "type": "notify_log_entry", "created_at": "2013-03-06T20:28:50Z",
            "channel": {"type": "auto", "notification": {"type": "phone", "address": "+1"}},
            "user": {"id": "PT23IWX", "type": "user_reference", "summary": "Tim"},
            "incident": {"id": "PIJ90N7"}, "summary": "Notified Tim by phone"
        });
        let e = entry(&v).unwrap();
        assert_eq!(e.entry_type, "notify");
        assert_eq!(e.channel.as_deref(), Some("phone"));
        assert_eq!(e.user.map(|u| u.id).as_deref(), Some("PT23IWX"));
        assert_eq!(e.incident, "PIJ90N7");
    }

    #[test]
    fn an_overview_entry_is_read_from_its_summary() {
        let notify = json!({"id": "R4", "type": "notify_log_entry", "created_at": "2022-11-03T07:02:38Z",
            "channel": {"type": "auto"}, "incident": {"id": "Q"}, "summary": "Notified Keon Amini by email."});
        let e = entry(&notify).unwrap();
        assert_eq!(e.channel.as_deref(), Some("email"));
        assert_eq!(e.user, Some(Reference::by_name("Keon Amini")));
        let escalate = json!({"id": "R5", "type": "escalate_log_entry", "created_at": "2022-11-03T07:02:36Z",
            "channel": {"type": "website"}, "incident": {"id": "Q"},
            "summary": "Escalated to Kian Amini by Keon Amini."});
        let e = entry(&escalate).unwrap();
        assert_eq!(e.assignees, Some(vec![Reference::by_name("Kian Amini")]));
        assert_eq!(e.channel.as_deref(), Some("website"));
        let timeout = json!({"id": "R6", "type": "escalate_log_entry", "created_at": "2022-11-03T06:44:58Z",
            "channel": {"type": "timeout"}, "incident": {"id": "Q"},
            "summary": "Escalated to Keon Amini through the API."});
        assert_eq!(
            entry(&timeout).unwrap().assignees,
            Some(vec![Reference::by_name("Keon Amini")])
        );
    }

    #[test]
    fn what_keeps_an_object_out_is_said() {
        let no_incident =
            json!({"id": "R2", "type": "trigger_log_entry", "created_at": "2022-11-03T06:23:06Z"});
        assert_eq!(entry(&no_incident).unwrap_err(), missing("incident"));
        let bad_time = json!({"id": "R3", "type": "trigger_log_entry", "created_at": "yesterday", "incident": {"id": "Q"}});
        assert_eq!(entry(&bad_time).unwrap_err().reason, "bad_time");
        let status = json!({"id": "Q", "incident_number": 1, "created_at": "2022-11-03T06:23:06Z",
            "status": "closed", "service": {"id": "S"}, "escalation_policy": {"id": "E"}});
        assert_eq!(incident(&status).unwrap_err().reason, "unknown_status");
    }

    #[test]
    fn a_priority_outside_p1_to_p5_is_kept_aside() {
        let v = json!({"id": "Q", "incident_number": 7, "created_at": "2022-11-03T06:23:06Z",
            "status": "resolved", "urgency": "low", "priority": {"id": "X", "summary": "SEV-1"},
            "service": {"id": "S"}, "escalation_policy": {"id": "E"}});
        let i = incident(&v).unwrap();
        assert_eq!(
            (i.priority, i.other_priority.as_deref()),
            (None, Some("SEV-1"))
        );
    }
}

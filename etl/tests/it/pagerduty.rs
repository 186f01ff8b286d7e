//! The fold on real PagerDuty logs (`../shared/data/pagerduty/`, provenance in its
//! SOURCES.md), each converted by hand into the contract as written below, against numbers
//! worked out by hand from the JSON. These logs have shapes our generator does not make: one
//! entry per assignee, a delegation's assigns in the same second, a first assignment to two
//! people, the service assigning someone who acknowledged unassigned, timeout escalations
//! on channel `auto`, channels outside our list.
//!
//! The conversion: `<type>_log_entry` → `<type>`; the agent's type without `_reference`,
//! users by the ids of `USERS`, the service as 1; `channel.type`, except for a notify, whose
//! channel is the notification's method (`channel.notification.type`, or in the DevLake
//! export, fetched without `include[]=channels`, the summary's "by email"); a notify's user
//! (`user`, else the summary's "Notified <name> by"); assignees from `assignees` /
//! `assigned_user`, else the summary's "Assigned to <name>." / "Escalated to <name> by|through";
//! a delegation to a policy has no assignees of its own (its assigns name them); the trigger
//! carries the incident's policy (1). Entry ids follow time, then the file's order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mttx_etl::{Context, Entry, Fact, IncidentRow, MetricsVersion, Reason, fold};
use serde_json::Value;

/// PagerDuty users as the contract numbers them (all in UTC).
const USERS: [(&str, &str, i64); 4] = [
    ("PQYACO3", "Keon Amini", 1),
    ("P25K520", "Kian Amini", 2),
    ("PT23IWX", "Tim", 3),
    ("PPSFHH7", "Bob", 4),
];

fn data(path: &str) -> String {
    let file = format!(
        "{}/../../shared/data/pagerduty/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn user_by_id(id: &str) -> Option<i64> {
    USERS.iter().find(|u| u.0 == id).map(|u| u.2)
}

fn user_by_name(name: &str) -> Option<i64> {
    USERS.iter().find(|u| u.1 == name).map(|u| u.2)
}

/// The text of `summary` between `after` and the first of `ends`.
fn between<'a>(summary: &'a str, after: &str, ends: &[&str]) -> Option<&'a str> {
    let rest = &summary[summary.find(after)? + after.len()..];
    let end = ends.iter().filter_map(|e| rest.find(e)).min()?;
    Some(&rest[..end])
}

fn ts(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// One incident's PagerDuty log entries as the contract's entries.
fn convert(incident_id: i64, entries: &[Value]) -> Vec<Entry> {
    let mut order: Vec<(DateTime<Utc>, usize)> = entries
        .iter()
        .enumerate()
        .map(|(n, e)| (ts(&e["created_at"]), n))
        .collect();
    order.sort();
    order
        .iter()
        .enumerate()
        .map(|(id, &(created_at, n))| {
            let e = &entries[n];
            let entry_type = e["type"].as_str().unwrap().trim_end_matches("_log_entry");
            let summary = e["summary"].as_str().unwrap_or("");
            let agent_type = e["agent"]["type"]
                .as_str()
                .map(|t| mttx_replica::rows::label(t.trim_end_matches("_reference")));
            let agent_id = match agent_type.as_deref() {
                Some("service") => Some(1),
                _ => e["agent"]["id"].as_str().and_then(user_by_id),
            };
            let notify = entry_type == "notify";
            let channel = if notify {
                e["channel"]["notification"]["type"]
                    .as_str()
                    .or_else(|| between(summary, " by ", &["."]))
            } else {
                e["channel"]["type"].as_str()
            };
            let user_id = notify
                .then(|| {
                    e["user"]["id"]
                        .as_str()
                        .and_then(user_by_id)
                        .or_else(|| between(summary, "Notified ", &[" by "]).and_then(user_by_name))
                })
                .flatten();
            let listed: Vec<i64> = e["assignees"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(e.get("assigned_user"))
                .filter_map(|a| a["id"].as_str().and_then(user_by_id))
                .collect();
            let assignee_ids = match entry_type {
                "delegate" => Some(listed),
                "assign" | "escalate" if !listed.is_empty() => Some(listed),
                "assign" | "escalate" => between(summary, " to ", &[" by ", " through ", "."])
                    .and_then(user_by_name)
                    .map(|u| vec![u]),
                _ => None,
            };
            Entry {
                id: id as i64 + 1,
                incident_id,
                entry_type: entry_type.to_owned().into(),
                created_at,
                agent_type,
                agent_id,
                channel: channel.map(|c| c.to_owned().into()),
                user_id,
                assignee_ids,
                escalation_policy_id: (entry_type == "trigger").then_some(1),
                details: None,
            }
        })
        .collect()
}

fn context() -> Context {
    let mut ctx = Context::default();
    for (_, _, id) in USERS {
        ctx.user_time_zones.insert(id, chrono_tz::UTC);
    }
    ctx.account_time_zones.insert(1, chrono_tz::UTC);
    ctx.policy_teams.insert(1, Some(1));
    ctx
}

fn row(id: i64, status: &str, urgency: &str, created_at: DateTime<Utc>) -> IncidentRow {
    IncidentRow {
        id,
        account_id: 1,
        incident_number: id,
        service_id: 1,
        escalation_policy_id: 1,
        title: format!("incident {id}"),
        urgency: urgency.into(),
        priority: None,
        status: status.into(),
        created_at,
    }
}

/// The numbers a facts row is checked on, worked out by hand.
#[derive(Debug, PartialEq)]
struct Want {
    seconds_to_first_ack: Option<f64>,
    seconds_to_resolve: Option<f64>,
    auto_resolved: bool,
    escalations: (i64, i64, i64),
    reassignment_count: i64,
    ack_count: i64,
    notification_count: i64,
    interruptions: (i64, i64, i64, i64),
    acknowledged_user_ids: Vec<i64>,
    assigned_user_ids: Vec<i64>,
}

fn got(f: &Fact) -> Want {
    Want {
        seconds_to_first_ack: f.seconds_to_first_ack,
        seconds_to_resolve: f.seconds_to_resolve,
        auto_resolved: f.auto_resolved,
        escalations: (
            f.escalation_count,
            f.timeout_escalations,
            f.manual_escalations,
        ),
        reassignment_count: f.reassignment_count,
        ack_count: f.ack_count,
        notification_count: f.notification_count,
        interruptions: (
            f.interruptions,
            f.interruptions_business,
            f.interruptions_off_hours,
            f.interruptions_sleep,
        ),
        acknowledged_user_ids: f.acknowledged_user_ids.clone(),
        assigned_user_ids: f.assigned_user_ids.clone(),
    }
}

/// DevLake's export of a real account (2022-11-03): incidents #4, #5 and #6.
#[test]
fn devlake_incidents_count_actions_not_entries() {
    let text = data("devlake/raw_tables/_raw_pagerduty_incidents.csv");
    let mut incidents = HashMap::new();
    for record in csv::Reader::from_reader(text.as_bytes()).records() {
        let record = record.unwrap();
        let d: Value = serde_json::from_str(&record[2]).unwrap();
        incidents.insert(d["incident_number"].as_i64().unwrap(), d);
    }
    let ctx = context();
    let fold_one = |n: i64| {
        let d = &incidents[&n];
        let entries = convert(n, d["log_entries"].as_array().unwrap());
        let incident = row(
            n,
            d["status"].as_str().unwrap(),
            d["urgency"].as_str().unwrap(),
            ts(&d["created_at"]),
        );
        fold(MetricsVersion::V1, &incident, &entries, &ctx)
    };

    // #4, triggered 06:23:06 by Keon, never resolved. Acks 06:23:07 (1 s), 06:34:25,
    // 06:34:53. Escalations: 06:34:35 (to both: 2 entries), 06:44:58 (timeout), 06:50:01
    // (2 entries), 07:00:01 (timeout), 07:02:36 (2 entries): 8 entries, 5 escalations, 2 by
    // timeout. Assignments: 06:23:06 (the first), 06:32:13 and 06:34:57 (each a delegation
    // and two assigns in one second): 7 entries, 3 assignments, 2 reassignments. 12
    // notifications, all email: no interruption.
    let four = fold_one(4);
    assert_eq!(
        got(&four.fact),
        Want {
            seconds_to_first_ack: Some(1.0),
            seconds_to_resolve: None,
            auto_resolved: false,
            escalations: (5, 2, 3),
            reassignment_count: 2,
            ack_count: 3,
            notification_count: 12,
            interruptions: (0, 0, 0, 0),
            acknowledged_user_ids: vec![1],
            assigned_user_ids: vec![1, 2],
        }
    );
    assert_eq!(four.issues, vec![]);

    // #5, triggered 06:44:28 and assigned to Kian; Keon, not assigned, acknowledges at
    // 06:44:37 (9 s) and the service assigns him in that second: part of his
    // acknowledgement, not a reassignment.
    let five = fold_one(5);
    assert_eq!(
        got(&five.fact),
        Want {
            seconds_to_first_ack: Some(9.0),
            seconds_to_resolve: None,
            auto_resolved: false,
            escalations: (0, 0, 0),
            reassignment_count: 0,
            ack_count: 1,
            notification_count: 1,
            interruptions: (0, 0, 0, 0),
            acknowledged_user_ids: vec![1],
            assigned_user_ids: vec![1, 2],
        }
    );

    // #6, triggered 06:45:36 and assigned to both in that second: one assignment, no
    // reassignment. Ack 06:45:46 (10 s), resolved by Keon 06:51:44 (368 s).
    let six = fold_one(6);
    assert_eq!(
        got(&six.fact),
        Want {
            seconds_to_first_ack: Some(10.0),
            seconds_to_resolve: Some(368.0),
            auto_resolved: false,
            escalations: (0, 0, 0),
            reassignment_count: 0,
            ack_count: 1,
            notification_count: 2,
            interruptions: (0, 0, 0, 0),
            acknowledged_user_ids: vec![1],
            assigned_user_ids: vec![1, 2],
        }
    );
    assert_eq!((six.fact.urgency.as_str(), six.issues.len()), ("low", 0));
}

/// PagerDuty's documented example, in both REST shapes: a timeout escalation is one
/// whether it is recorded on channel `timeout` (v1) or as the service acting on `auto` (v2).
#[test]
fn the_documented_example_folds_alike_in_both_shapes() {
    let ctx = context();
    let fold_file = |path: &str| {
        let d: Value = serde_json::from_str(&data(path)).unwrap();
        let entries = convert(7, d["log_entries"].as_array().unwrap());
        let created = entries
            .iter()
            .find(|e| e.entry_type == "trigger")
            .unwrap()
            .created_at;
        fold(
            MetricsVersion::V1,
            &row(7, "resolved", "high", created),
            &entries,
            &ctx,
        )
    };
    // Triggered 20:28:46 (Wed 6 Mar 2013, UTC), acknowledged by phone 20:29:30 (44 s),
    // un-acknowledged by timeout 20:59:30, escalated to Bob 21:00:30, resolved by Tim
    // 21:33:15 (3,869 s). Tim is paged by phone 20:28:50 and sms 20:59:31: two
    // interruptions, both off-hours (18–22 on a weekday); 6 notifications in all.
    let v2 = fold_file("remedy-integration/log_entries_v2_style.json");
    let want = Want {
        seconds_to_first_ack: Some(44.0),
        seconds_to_resolve: Some(3869.0),
        auto_resolved: false,
        escalations: (1, 1, 0),
        reassignment_count: 0,
        ack_count: 1,
        notification_count: 6,
        interruptions: (2, 0, 2, 0),
        acknowledged_user_ids: vec![3],
        assigned_user_ids: vec![3, 4],
    };
    assert_eq!(got(&v2.fact), want);
    assert_eq!(v2.issues, vec![]);
    // REST v1 names no notification method: six notifications, no interruption, each
    // quarantined for its missing channel.
    let v1 = fold_file("remedy-integration/log_entries_v1_style.json");
    assert_eq!(
        got(&v1.fact),
        Want {
            interruptions: (0, 0, 0, 0),
            ..want
        }
    );
    assert_eq!(v1.issues.len(), 6);
    assert!(v1.issues.iter().all(|i| i.reason == Reason::NullField));
}

/// The generator writing PagerDuty's shapes makes the same events, so the same facts: every
/// incident folds alike whether its log is written one entry per action or the way
/// PagerDuty writes it (the acknowledger who was not assigned is then assigned too).
#[test]
fn pagerduty_shaped_logs_fold_like_one_entry_per_action() {
    use mttx_fixtures::Config;
    use mttx_fixtures::generate::generate_all;

    let cfg = |pagerduty_share| Config {
        seed: 11,
        accounts: 2,
        incidents: 600,
        weeks: 3,
        bad_rate: 0.05,
        pagerduty_share,
        ..Config::default()
    };
    let (plain, _) = generate_all(cfg(0.0)).unwrap();
    let (shaped, _) = generate_all(cfg(1.0)).unwrap();
    // The shapes are there: more entries, entries of one action at one time.
    assert!(shaped.entries.len() > plain.entries.len());
    let same_time = |data: &mttx_fixtures::model::Dataset, kind: &str| {
        let mut seen = std::collections::HashMap::new();
        for e in data.entries.iter().filter(|e| e.entry_type == kind) {
            *seen.entry((e.incident_id, e.created_at)).or_insert(0) += 1;
        }
        seen.values().filter(|n| **n > 1).count()
    };
    assert!(same_time(&shaped, "escalate") > same_time(&plain, "escalate"));
    assert!(same_time(&shaped, "assign") > same_time(&plain, "assign"));

    let facts = |data| {
        let (ctx, incidents, entries) = crate::inputs(data);
        incidents
            .iter()
            .filter(|row| entries.contains_key(&row.id))
            .map(|row| {
                (
                    row.id,
                    fold(MetricsVersion::V1, row, &entries[&row.id], &ctx).fact,
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (facts(&plain), facts(&shaped));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut foreign_ackers = 0;
    for (id, p) in &a {
        let s = &b[id];
        assert!(
            p.assigned_user_ids
                .iter()
                .all(|u| s.assigned_user_ids.contains(u)),
            "{id}"
        );
        foreign_ackers += s.assigned_user_ids.len() - p.assigned_user_ids.len();
        let like = Fact {
            last_entry_id: p.last_entry_id,
            assigned_user_ids: p.assigned_user_ids.clone(),
            ..s.clone()
        };
        assert_eq!(&like, p, "incident {id}");
    }
    assert!(
        foreign_ackers > 0,
        "no acknowledgement by someone unassigned"
    );
}

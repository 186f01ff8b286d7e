//! GoAlert's own database as a replica (`--source-kind goalert`): its alerts, alert log and
//! organisation read as they are and mapped onto the contract's rows here, so that the fold
//! and everything after it stay as they are. The mapping is the table in the README ("From
//! GoAlert"); the decisions that need a whole alert's log (which `escalated` is the first
//! assignment, which escalation was asked for, which notification is a retry) are taken per
//! alert in [`map_log`], in (timestamp, id) order, so a late row changes only its alert.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::source::with_retries;
use crate::{Entry, Error, IncidentRow, Result};

/// The one account a GoAlert instance is.
pub const ACCOUNT: i64 = 1;

/// GoAlert's first migration: a database that has it in `gorp_migrations` is GoAlert's.
pub const FIRST_MIGRATION: &str = "20170426134008-init.sql";
/// The oldest GoAlert migration level this source reads (`gorp_migrations.id` is the
/// migration's file name): the alert log with subjects, classifiers and meta,
/// `duplicate_suppressed`, `escalation_request` and notification channels as subjects, and
/// no foreign keys on `alert_logs` (so a log row may outlive its alert). A newer GoAlert is
/// read as long as every column read is still there.
pub const OLDEST_MIGRATION: &str = "20201209112322-alert-logs-drop-fkeys.sql";

/// The tables and columns read, checked before anything else.
const COLUMNS: [(&str, &[&str]); 7] = [
    ("gorp_migrations", &["id"]),
    (
        "alerts",
        &[
            "id",
            "service_id",
            "summary",
            "status",
            "created_at",
            "dedup_key",
        ],
    ),
    (
        "alert_logs",
        &[
            "id",
            "alert_id",
            "timestamp",
            "event",
            "message",
            "sub_type",
            "sub_user_id",
            "sub_integration_key_id",
            "sub_hb_monitor_id",
            "sub_channel_id",
            "sub_classifier",
            "meta",
        ],
    ),
    ("services", &["id", "name", "escalation_policy_id"]),
    ("escalation_policies", &["id", "name"]),
    ("users", &["id", "name"]),
    ("integration_keys", &["id", "type"]),
];

/// How a GoAlert instance appears in mttx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoAlert {
    /// The account's name in every report.
    pub account_name: String,
    /// Every user's and the account's time zone (GoAlert keeps none per user).
    pub time_zone: Tz,
}

impl Default for GoAlert {
    fn default() -> Self {
        Self {
            account_name: "GoAlert".into(),
            time_zone: chrono_tz::UTC,
        }
    }
}

/// Our integer id of a GoAlert UUID: its first 13 hex digits (52 bits, so exact as a JSON
/// number). Stable across runs and machines; 0 for text that is not a UUID.
pub fn uuid_id(uuid: &str) -> i64 {
    let hex: String = uuid
        .chars()
        .filter(|c| *c != '-')
        .take(13)
        .collect::<String>();
    i64::from_str_radix(&hex, 16).unwrap_or(0)
}

/// Checks that `pg` is a GoAlert database this source can read; the error says what is
/// missing.
pub(crate) async fn check(pg: &PgPool) -> Result<()> {
    let present: Vec<(String, String)> = with_retries("checking GoAlert's schema", || {
        sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = ANY(current_schemas(false))",
        )
        .fetch_all(pg)
    })
    .await?;
    let present: HashSet<(String, String)> = present.into_iter().collect();
    let has_table = |t: &str| present.iter().any(|(table, _)| table == t);
    if !has_table("gorp_migrations") || !has_table("alert_logs") {
        let hint = if has_table("incident_log_entries") {
            "it holds mttx's replica contract (incident_log_entries): drop --source-kind goalert"
        } else {
            "name GoAlert's database in --source"
        };
        return Err(Error::NotGoAlert(format!(
            "it has no {} table; {hint}",
            if has_table("gorp_migrations") {
                "alert_logs"
            } else {
                "gorp_migrations (GoAlert's record of its migrations)"
            }
        )));
    }
    let missing: Vec<String> = COLUMNS
        .iter()
        .flat_map(|(table, cols)| cols.iter().map(move |c| (*table, *c)))
        .filter(|(t, c)| !present.contains(&((*t).to_owned(), (*c).to_owned())))
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    let (latest, first): (Option<String>, bool) =
        with_retries("reading GoAlert's migration level", || {
            sqlx::query_as("SELECT max(id), bool_or(id = $1) IS TRUE FROM gorp_migrations")
                .bind(FIRST_MIGRATION)
                .fetch_one(pg)
        })
        .await?;
    let Some(latest) = latest else {
        return Err(Error::NotGoAlert(
            "gorp_migrations is empty: GoAlert has not migrated this database yet (start GoAlert once against it)".into(),
        ));
    };
    if !first {
        return Err(Error::NotGoAlert(format!(
            "its gorp_migrations lacks GoAlert's first migration {FIRST_MIGRATION} (latest: {latest}); name GoAlert's database in --source"
        )));
    }
    // Migration ids begin with their date, so text order is their order.
    if latest.as_str() < OLDEST_MIGRATION || !missing.is_empty() {
        return Err(Error::GoAlertVersion {
            latest,
            oldest: OLDEST_MIGRATION,
            missing: if missing.is_empty() {
                "none".into()
            } else {
                missing.join(", ")
            },
        });
    }
    tracing::info!(migration = latest, "reading a GoAlert database");
    Ok(())
}

/// The account's single time zone, for the fold's context.
pub(crate) fn context(options: &GoAlert) -> crate::Context {
    crate::Context {
        account_time_zones: [(ACCOUNT, options.time_zone)].into_iter().collect(),
        ..crate::Context::default()
    }
}

/// The rows of `select` (ending in `WHERE `) whose `column` is one of `ids`, or, without
/// ids, in `[range.0, range.1)`.
async fn fetch<T>(
    pg: &PgPool,
    doing: &'static str,
    select: &str,
    column: &str,
    ids: Option<&[i64]>,
    range: (i64, i64),
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let sql = match ids {
        Some(_) => format!("{select}{column} = ANY($1)"),
        None => format!("{select}{column} >= $1 AND {column} < $2"),
    };
    with_retries(doing, || {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        match ids {
            Some(ids) => q.bind(ids),
            None => q.bind(range.0).bind(range.1),
        }
        .fetch_all(pg)
    })
    .await
}

/// The alerts with these ids, or with ids in `[from, to)`, as incident rows.
pub(crate) async fn incidents(
    pg: &PgPool,
    ids: Option<&[i64]>,
    range: (i64, i64),
) -> Result<HashMap<i64, IncidentRow>> {
    const COLS: &str = "SELECT a.id, CAST(a.service_id AS TEXT), CAST(s.escalation_policy_id AS TEXT), \
         a.summary, CAST(a.status AS TEXT), a.created_at \
         FROM alerts a LEFT JOIN services s ON s.id = a.service_id WHERE ";
    type Row = (
        i64,
        Option<String>,
        Option<String>,
        String,
        String,
        DateTime<Utc>,
    );
    let rows: Vec<Row> = fetch(pg, "reading alerts", COLS, "a.id", ids, range).await?;
    Ok(rows
        .into_iter()
        .map(|(id, service, policy, summary, status, created_at)| {
            let row = IncidentRow {
                id,
                account_id: ACCOUNT,
                incident_number: id,
                service_id: service.as_deref().map_or(0, uuid_id),
                escalation_policy_id: policy.as_deref().map_or(0, uuid_id),
                title: summary,
                urgency: "high".into(),
                priority: None,
                status: match status.as_str() {
                    "active" => "acknowledged".into(),
                    "closed" => "resolved".into(),
                    _ => status,
                },
                created_at,
            };
            (id, row)
        })
        .collect())
}

/// One `alert_logs` row as GoAlert wrote it, with what the mapping needs beside it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RawLog {
    pub id: i64,
    pub alert_id: i64,
    pub timestamp: DateTime<Utc>,
    pub event: String,
    pub message: String,
    pub sub_type: Option<String>,
    pub sub_user_id: Option<String>,
    pub sub_integration_key_id: Option<String>,
    pub sub_hb_monitor_id: Option<String>,
    pub sub_channel_id: Option<String>,
    pub sub_classifier: String,
    pub meta: Option<String>,
    /// The integration key's type (`email`, `generic`, …) where the subject is one.
    pub key_type: Option<String>,
    /// The escalation policy of the alert's service, now.
    pub policy_id: Option<String>,
}

/// A row without a timestamp (the column allows NULL) is placed at its alert's creation.
const LOG_SELECT: &str = "SELECT l.id, l.alert_id, \
     COALESCE(l.timestamp, a.created_at, TIMESTAMPTZ 'epoch') AS timestamp, CAST(l.event AS TEXT) AS event, \
     COALESCE(l.message, '') AS message, CAST(l.sub_type AS TEXT) AS sub_type, \
     CAST(l.sub_user_id AS TEXT) AS sub_user_id, \
     CAST(l.sub_integration_key_id AS TEXT) AS sub_integration_key_id, \
     CAST(l.sub_hb_monitor_id AS TEXT) AS sub_hb_monitor_id, \
     CAST(l.sub_channel_id AS TEXT) AS sub_channel_id, \
     COALESCE(l.sub_classifier, '') AS sub_classifier, CAST(l.meta AS TEXT) AS meta, \
     CAST(k.type AS TEXT) AS key_type, CAST(s.escalation_policy_id AS TEXT) AS policy_id \
     FROM alert_logs l \
     LEFT JOIN integration_keys k ON k.id = l.sub_integration_key_id \
     LEFT JOIN alerts a ON a.id = l.alert_id \
     LEFT JOIN services s ON s.id = a.service_id WHERE ";

/// Every log row of these alerts (or of the alerts with ids in `[from, to)`), mapped.
pub(crate) async fn logs(
    pg: &PgPool,
    ids: Option<&[i64]>,
    range: (i64, i64),
) -> Result<crate::Logs> {
    let raw: Vec<RawLog> = fetch(
        pg,
        "reading alert logs",
        LOG_SELECT,
        "l.alert_id",
        ids,
        range,
    )
    .await?;
    // Old installations named the subject in the message only: find those users by name.
    let legacy: BTreeSet<String> = raw
        .iter()
        .filter(|r| r.sub_type.is_none())
        .filter_map(|r| legacy_subject(r).and_then(|s| s.name))
        .collect();
    let by_name: HashMap<String, String> = if legacy.is_empty() {
        HashMap::new()
    } else {
        let names: Vec<String> = legacy.into_iter().collect();
        let rows: Vec<(String, String)> = with_retries("reading users by name", || {
            sqlx::query_as("SELECT name, CAST(id AS TEXT) FROM users WHERE name = ANY($1)")
                .bind(&names)
                .fetch_all(pg)
        })
        .await?;
        rows.into_iter().collect()
    };
    let mut per_alert: HashMap<i64, Vec<RawLog>> = HashMap::new();
    for r in raw {
        per_alert.entry(r.alert_id).or_default().push(r);
    }
    Ok(per_alert
        .into_iter()
        .map(|(alert, mut rows)| (alert, (ACCOUNT, map_log(&mut rows, &by_name))))
        .collect())
}

/// The dedup key and the number of suppressed duplicates of each of these alerts (those
/// that have either).
pub(crate) async fn repeats(pg: &PgPool, ids: &[i64]) -> Result<HashMap<i64, Repeats>> {
    let rows: Vec<(i64, Option<String>, i64)> = with_retries("reading alert repeats", || {
        sqlx::query_as(
            "SELECT a.id, a.dedup_key, \
             (SELECT count(*) FROM alert_logs l WHERE l.alert_id = a.id AND l.event = 'duplicate_suppressed') \
             FROM alerts a WHERE a.id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(pg)
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, key, n)| key.is_some() || *n > 0)
        .map(|(id, dedup_key, repeats)| (id, Repeats { dedup_key, repeats }))
        .collect())
}

/// What the noisy view needs beyond the facts of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Repeats {
    /// GoAlert's dedup key, while the alert holds one.
    pub dedup_key: Option<String>,
    /// Its `duplicate_suppressed` rows: the same alert raised again while open.
    pub repeats: i64,
}

/// The names of the instance's services, escalation policies and users, with their UUIDs as
/// the outside ids.
pub(crate) async fn names(pg: &PgPool, options: &GoAlert, d: &mut crate::Directory) -> Result<()> {
    use crate::Kind;
    d.account_name = Some(options.account_name.clone());
    d.time_zone = Some(options.time_zone.name().to_owned());
    for (kind, sql) in [
        (Kind::Service, "SELECT CAST(id AS TEXT), name FROM services"),
        (
            Kind::EscalationPolicy,
            "SELECT CAST(id AS TEXT), name FROM escalation_policies",
        ),
        (Kind::User, "SELECT CAST(id AS TEXT), name FROM users"),
    ] {
        let rows: Vec<(String, String)> =
            with_retries("reading names", || sqlx::query_as(sql).fetch_all(pg)).await?;
        for (uuid, name) in rows {
            d.add_outside(kind, uuid_id(&uuid), name, uuid);
        }
    }
    Ok(())
}

/// Who a log row is about, as GoAlert reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Subject {
    kind: Option<&'static str>,
    /// A user's, key's, monitor's or channel's UUID.
    id: Option<String>,
    /// A user named in a legacy message.
    name: Option<String>,
    classifier: String,
}

/// GoAlert's reading of a legacy row's type (`status_changed`, `response_received`): one of
/// `acknowledged`, `closed`, `escalated`, or the row's own event.
fn legacy_event(r: &RawLog) -> &str {
    let msg = r.message.as_str();
    match r.event.as_str() {
        "status_changed" => {
            if msg == "Status updated from active to triggered" {
                "escalated"
            } else if msg == "Status updated from triggered to active"
                || msg.starts_with("status changed to active")
            {
                "acknowledged"
            } else if msg.starts_with("status changed to closed") {
                "closed"
            } else {
                "status_changed"
            }
        }
        "response_received" => match response(msg) {
            Some(("Closed", _, _)) => "closed",
            Some(_) => "acknowledged",
            None => "response_received",
        },
        other => other,
    }
}

/// "(Closed|Acknowledged) by NAME via (SMS|VOICE)".
fn response(msg: &str) -> Option<(&str, &str, &str)> {
    let (verb, rest) = msg.split_once(" by ")?;
    if verb != "Closed" && verb != "Acknowledged" {
        return None;
    }
    let (name, via) = rest.rsplit_once(" via ")?;
    matches!(via, "SMS" | "VOICE").then_some((verb, name, via))
}

/// The subject of a row GoAlert wrote before subjects had columns, from its message.
fn legacy_subject(r: &RawLog) -> Option<Subject> {
    let msg = r.message.as_str();
    let user = |name: &str, classifier: &str| Subject {
        kind: Some("user"),
        id: None,
        name: Some(name.to_owned()),
        classifier: if classifier == "VOICE" {
            "Voice".into()
        } else {
            classifier.to_owned()
        },
    };
    match r.event.as_str() {
        "created" => {
            let via = msg.strip_prefix("Created via: ")?;
            Some(Subject {
                kind: Some(if via == "manual" {
                    "user"
                } else {
                    "integration_key"
                }),
                classifier: if via == "manual" {
                    "Web".into()
                } else {
                    via.into()
                },
                ..Subject::default()
            })
        }
        "notification_sent" => {
            let rest = msg.strip_prefix("Notification sent to ")?;
            let (name, via) = rest.rsplit_once(" via ")?;
            matches!(via, "SMS" | "VOICE").then(|| user(name, via))
        }
        "response_received" => response(msg).map(|(_, name, via)| user(name, via)),
        "status_changed" => {
            let rest = msg
                .strip_prefix("status changed to active by ")
                .or_else(|| msg.strip_prefix("status changed to closed by "))?;
            Some(user(rest.strip_suffix(" via UI").unwrap_or(rest), "Web"))
        }
        _ => None,
    }
}

fn subject(r: &RawLog) -> Subject {
    let Some(kind) = r.sub_type.as_deref() else {
        return legacy_subject(r).unwrap_or_default();
    };
    let (kind, id) = match kind {
        "user" => ("user", r.sub_user_id.clone()),
        "integration_key" => ("integration_key", r.sub_integration_key_id.clone()),
        "heartbeat_monitor" => ("heartbeat_monitor", r.sub_hb_monitor_id.clone()),
        "channel" => ("channel", r.sub_channel_id.clone()),
        _ => ("other", None),
    };
    Subject {
        kind: Some(kind),
        id,
        name: None,
        classifier: r.sub_classifier.clone(),
    }
}

/// The contract's channel for a classifier (its first part: "SMS, Ack-All" is by SMS).
fn channel_of(classifier: &str) -> &'static str {
    match classifier.split(',').next().unwrap_or("").trim() {
        "SMS" => "sms",
        "Voice" | "VOICE" => "phone",
        "Email" => "email",
        "Slack" => "slack",
        "Webhook" => "webhook",
        _ => "website",
    }
}

/// The agent of a row: (agent_type, agent_id, channel).
fn agent(
    s: &Subject,
    user: Option<i64>,
    key_type: Option<&str>,
) -> (&'static str, Option<i64>, &'static str) {
    let id = s.id.as_deref().map(uuid_id);
    match s.kind {
        Some("user") => ("user", user, channel_of(&s.classifier)),
        Some("integration_key") => (
            "integration",
            id,
            if key_type == Some("email") || s.classifier.starts_with("Email") {
                "email"
            } else {
                "api"
            },
        ),
        Some("heartbeat_monitor") => ("service", id, "auto"),
        Some("channel") => ("integration", id, "api"),
        _ => ("system", None, "auto"),
    }
}

/// The entry type of a mapped row, and whether it is an escalation that was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mapped {
    Trigger,
    Acknowledge,
    Resolve,
    Assign,
    Escalate { manual: bool, system: bool },
    Notify,
    Annotate,
}

/// One alert's log rows mapped onto the contract's entries (README, "From GoAlert").
/// `by_name` holds the UUIDs of users that legacy messages name.
pub fn map_log(rows: &mut [RawLog], by_name: &HashMap<String, String>) -> Vec<Entry> {
    rows.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
    let mut out: Vec<Entry> = Vec::with_capacity(rows.len());
    let mut seen_assignment = false;
    let mut policy_changed = false;
    // The user who asked for an escalation since the last one (Some(None): unknown user).
    let mut requested: Option<Option<i64>> = None;
    let mut messages: HashSet<String> = HashSet::new();
    for r in rows.iter() {
        let s = subject(r);
        let user_uuid =
            s.id.clone()
                .filter(|_| s.kind == Some("user"))
                .or_else(|| s.name.as_ref().and_then(|n| by_name.get(n).cloned()));
        let user = user_uuid.as_deref().map(uuid_id);
        let meta: Map<String, Value> = r
            .meta
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default();
        let flag = |k: &str| meta.get(k).and_then(Value::as_bool).unwrap_or(false);
        let event = legacy_event(r);
        let mapped = match event {
            "created" => Mapped::Trigger,
            "duplicate_suppressed" => Mapped::Trigger,
            "acknowledged" => Mapped::Acknowledge,
            "closed" => Mapped::Resolve,
            "escalated" => {
                let first = !seen_assignment || policy_changed;
                seen_assignment = true;
                policy_changed = false;
                if first && r.event == "escalated" {
                    requested = None;
                    Mapped::Assign
                } else {
                    let manual = flag("Forced") || requested.is_some();
                    Mapped::Escalate {
                        manual,
                        system: flag("Deleted"),
                    }
                }
            }
            "escalation_request" => {
                requested = Some(user);
                Mapped::Annotate
            }
            "policy_updated" => {
                policy_changed = true;
                Mapped::Annotate
            }
            "notification_sent" => {
                let retry = meta
                    .get("MessageID")
                    .and_then(Value::as_str)
                    .is_some_and(|id| !messages.insert(id.to_owned()));
                if retry {
                    Mapped::Annotate
                } else if s.kind == Some("user") {
                    Mapped::Notify
                } else {
                    Mapped::Annotate
                }
            }
            _ => Mapped::Annotate,
        };
        let (agent_type, agent_id, channel) = agent(&s, user, r.key_type.as_deref());
        let mut details = Map::new();
        details.insert("goalert_event".into(), json!(r.event));
        if !r.message.is_empty() {
            details.insert("message".into(), json!(r.message));
        }
        if !r.sub_classifier.is_empty() {
            details.insert("classifier".into(), json!(r.sub_classifier));
        }
        if !meta.is_empty() {
            details.insert("meta".into(), Value::Object(meta.clone()));
        }
        let policy = r.policy_id.as_deref().map(uuid_id);
        let base = Entry {
            id: r.id,
            incident_id: r.alert_id,
            entry_type: "".into(),
            created_at: r.timestamp,
            agent_type: Some(agent_type.into()),
            agent_id,
            channel: Some(channel.into()),
            user_id: None,
            assignee_ids: None,
            escalation_policy_id: None,
            details: Some(mttx_migrations::canonical_json(&Value::Object(details))),
        };
        let entry = match mapped {
            Mapped::Trigger => Entry {
                entry_type: "trigger".into(),
                escalation_policy_id: policy,
                ..base
            },
            Mapped::Acknowledge => Entry {
                entry_type: "acknowledge".into(),
                ..base
            },
            Mapped::Resolve => Entry {
                entry_type: "resolve".into(),
                ..base
            },
            Mapped::Assign => Entry {
                entry_type: "assign".into(),
                agent_type: Some("system".into()),
                agent_id: None,
                channel: Some("auto".into()),
                assignee_ids: Some(Vec::new()),
                escalation_policy_id: policy,
                ..base
            },
            Mapped::Escalate { manual, system } => {
                let (agent_type, agent_id, channel) = if manual {
                    ("user", requested.flatten(), "website")
                } else if system {
                    ("system", None, "auto")
                } else {
                    ("service", None, "timeout")
                };
                requested = None;
                Entry {
                    entry_type: "escalate".into(),
                    agent_type: Some(agent_type.into()),
                    agent_id,
                    channel: Some(channel.into()),
                    assignee_ids: Some(Vec::new()),
                    escalation_policy_id: policy,
                    ..base
                }
            }
            Mapped::Notify => Entry {
                entry_type: "notify".into(),
                agent_type: Some("system".into()),
                agent_id: None,
                user_id: user,
                channel: Some(channel_of(&s.classifier).into()),
                ..base
            },
            Mapped::Annotate => Entry {
                entry_type: "annotate".into(),
                ..base
            },
        };
        out.push(entry);
    }
    // The assignees of an assignment or escalation: whom GoAlert notified after it, before
    // the next one.
    let mut current: Option<usize> = None;
    for i in 0..out.len() {
        match &*out[i].entry_type {
            "assign" | "escalate" => current = Some(i),
            "notify" => {
                if let (Some(at), Some(user)) = (current, out[i].user_id)
                    && let Some(ids) = out[at].assignee_ids.as_mut()
                    && !ids.contains(&user)
                {
                    ids.push(user);
                    ids.sort_unstable();
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, minute: i64, event: &str) -> RawLog {
        RawLog {
            id,
            alert_id: 7,
            timestamp: DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap(),
            event: event.into(),
            message: String::new(),
            sub_type: None,
            sub_user_id: None,
            sub_integration_key_id: None,
            sub_hb_monitor_id: None,
            sub_channel_id: None,
            sub_classifier: String::new(),
            meta: None,
            key_type: None,
            policy_id: Some("0b5c2a7e-1111-4222-8333-444455556666".into()),
        }
    }

    fn by_user(mut r: RawLog, user: &str, classifier: &str) -> RawLog {
        r.sub_type = Some("user".into());
        r.sub_user_id = Some(user.into());
        r.sub_classifier = classifier.into();
        r
    }

    const ANN: &str = "9a3f1c20-0000-4000-8000-000000000001";

    #[test]
    fn uuid_ids_are_the_first_13_hex_digits() {
        assert_eq!(
            uuid_id("9a3f1c20-0000-4000-8000-000000000001"),
            0x9a3f1c2000004
        );
        assert_eq!(uuid_id("not a uuid"), 0);
        assert!(uuid_id("ffffffff-ffff-ffff-ffff-ffffffffffff") < 1 << 53);
    }

    #[test]
    fn the_first_escalated_assigns_and_a_forced_one_is_manual() {
        let esc = |id, minute, meta: &str| {
            let mut r = row(id, minute, "escalated");
            r.meta = Some(meta.into());
            r
        };
        let mut rows = vec![
            row(1, 0, "created"),
            esc(2, 0, r#"{"NewStepIndex":0}"#),
            esc(3, 5, r#"{"NewStepIndex":1,"OldDelayMinutes":5}"#),
            by_user(row(4, 6, "escalation_request"), ANN, "Web"),
            esc(5, 6, r#"{"NewStepIndex":2,"Forced":true}"#),
            esc(
                6,
                9,
                r#"{"NewStepIndex":0,"Repeat":true,"OldDelayMinutes":3}"#,
            ),
        ];
        let got = map_log(&mut rows, &HashMap::new());
        let kinds: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|e| (&*e.entry_type, e.channel.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("trigger", Some("auto")),
                ("assign", Some("auto")),
                ("escalate", Some("timeout")),
                ("annotate", Some("website")),
                ("escalate", Some("website")),
                ("escalate", Some("timeout")),
            ]
        );
        assert_eq!(got[4].agent_id, Some(uuid_id(ANN)));
    }

    #[test]
    fn a_retried_message_is_one_notification_and_legacy_rows_read_as_goalert_reads_them() {
        let sent = |id, minute, msg_id: &str, classifier| {
            let mut r = by_user(row(id, minute, "notification_sent"), ANN, classifier);
            r.meta = Some(format!(r#"{{"MessageID":"{msg_id}"}}"#));
            r
        };
        let mut legacy = row(5, 4, "response_received");
        legacy.message = "Acknowledged by Ann via SMS".into();
        let mut old_sent = row(6, 5, "notification_sent");
        old_sent.message = "Notification sent to Ann via VOICE".into();
        let mut closed = row(7, 9, "status_changed");
        closed.message = "status changed to closed by Ann via UI".into();
        let mut rows = vec![
            row(1, 0, "created"),
            sent(2, 1, "m1", "SMS"),
            sent(3, 2, "m1", "SMS"),
            sent(4, 3, "m2", "Email"),
            legacy,
            old_sent,
            closed,
        ];
        let names = HashMap::from([("Ann".to_owned(), ANN.to_owned())]);
        let got = map_log(&mut rows, &names);
        let kinds: Vec<(&str, Option<&str>, Option<i64>)> = got
            .iter()
            .map(|e| {
                (
                    &*e.entry_type,
                    e.channel.as_deref(),
                    e.user_id.or(e.agent_id),
                )
            })
            .collect();
        let ann = Some(uuid_id(ANN));
        assert_eq!(
            kinds,
            [
                ("trigger", Some("auto"), None),
                ("notify", Some("sms"), ann),
                ("annotate", Some("sms"), ann),
                ("notify", Some("email"), ann),
                ("acknowledge", Some("sms"), ann),
                ("notify", Some("phone"), ann),
                ("resolve", Some("website"), ann),
            ]
        );
    }
}

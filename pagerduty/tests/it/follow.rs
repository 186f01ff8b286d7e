//! `--follow`: entries PagerDuty adds later are picked up at the next poll, including one
//! listed late (made minutes before it appears) that resolves an old incident, whose row
//! then says resolved; and bad input is quarantined while the rest is imported.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use mttx_migrations::Location;
use mttx_pagerduty::{Options, import};
use serde_json::json;
use sqlx::Row as _;

use crate::server::{Account, TOKEN, Trouble, serve};

fn at(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn account(now: chrono::DateTime<Utc>) -> Account {
    let day_ago = now - chrono::Duration::days(1);
    Account {
        users: vec![
            json!({"id": "PU1", "name": "Ada", "email": "ada@example.com", "time_zone": "Europe/Berlin", "teams": [{"id": "PT1"}]}),
        ],
        teams: vec![json!({"id": "PT1", "name": "Identity"})],
        escalation_policies: vec![
            json!({"id": "PE1", "name": "Identity on-call", "teams": [{"id": "PT1"}]}),
        ],
        services: vec![
            json!({"id": "PS1", "name": "identity-db", "escalation_policy": {"id": "PE1"}, "teams": [{"id": "PT1"}]}),
        ],
        priorities: vec![],
        incidents: vec![
            json!({"id": "PI1", "incident_number": 1, "title": "Disk full", "created_at": at(day_ago),
            "status": "acknowledged", "urgency": "high", "priority": {"id": "PP", "summary": "SEV-1"},
            "service": {"id": "PS1"}, "escalation_policy": {"id": "PE1"}}),
        ],
        log_entries: vec![
            json!({"id": "L1", "type": "trigger_log_entry", "created_at": at(day_ago), "incident": {"id": "PI1"},
                   "agent": {"id": "PS1", "type": "service_reference"}, "channel": {"type": "nagios"}}),
            json!({"id": "L2", "type": "acknowledge_log_entry", "created_at": at(day_ago + chrono::Duration::minutes(3)),
                   "incident": {"id": "PI1"}, "agent": {"id": "PU1", "type": "user_reference"}, "channel": {"type": "web"}}),
            // Bad input: no incident, and a time that is not one.
            json!({"id": "L3", "type": "notify_log_entry", "created_at": at(day_ago)}),
            json!({"id": "L4", "type": "annotate_log_entry", "created_at": "last tuesday", "incident": {"id": "PI1"}}),
            // An entry of an incident PagerDuty no longer has.
            json!({"id": "L5", "type": "trigger_log_entry", "created_at": at(day_ago), "incident": {"id": "PI404"}}),
            // A type outside the contract: kept.
            json!({"id": "L6", "type": "custom_field_change_log_entry", "created_at": at(day_ago + chrono::Duration::minutes(4)),
                   "incident": {"id": "PI1"}}),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_picks_up_late_entries_and_bad_input_is_quarantined() {
    let now = Utc::now();
    let (addr, server) = serve(account(now), Trouble::default()).await;
    let dir = mttx_fixtures::testing::scratch("pagerduty-follow").unwrap();
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    let opts = Options {
        follow: true,
        poll: Duration::from_millis(200),
        ..Options::new(
            &format!("http://{addr}"),
            TOKEN.to_owned().into(),
            now - chrono::Duration::days(2),
        )
    };
    let shutdown = opts.shutdown.clone();
    let (rounds_tx, mut rounds) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn({
        let (opts, replica) = (opts.clone(), replica.clone());
        async move { import(&opts, &replica, move |s| drop(rounds_tx.send(s.clone()))).await }
    });
    let first = rounds.recv().await.unwrap();
    // L1, L2 and L6 (its type is kept); L3, L4 and L5 quarantined; the SEV-1 priority too.
    assert_eq!((first.entries, first.quarantined), (3, 4), "{first}");

    // PagerDuty lists a resolve made two minutes ago, after the last poll.
    server.account.lock().unwrap().log_entries.push(json!({
        "id": "L7", "type": "resolve_log_entry", "created_at": at(Utc::now() - chrono::Duration::minutes(2)),
        "incident": {"id": "PI1"}, "agent": {"id": "PU1", "type": "user_reference"}, "channel": {"type": "website"}}));
    server.account.lock().unwrap().incidents[0]["status"] = json!("resolved");
    let later = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let s = rounds.recv().await.unwrap();
            if s.entries == 4 {
                return s;
            }
        }
    })
    .await
    .expect("the late resolve was never imported");
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(later.entries, 4, "{later}");

    let Location::Sqlite(path) = &replica else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).fetch_one(&pool).await.unwrap() }
    };
    let row = one("SELECT status, priority FROM incidents WHERE incident_number = 1").await;
    assert_eq!(
        row.get::<String, _>(0),
        "resolved",
        "the old incident is read again"
    );
    assert_eq!(row.get::<Option<String>, _>(1), None);
    let types = one(
        "SELECT group_concat(type, ',') FROM (SELECT type FROM incident_log_entries ORDER BY id)",
    )
    .await;
    assert_eq!(
        types.get::<String, _>(0),
        "trigger,acknowledge,custom_field_change,resolve"
    );
    let reasons = one(
        "SELECT group_concat(reason, ',') FROM (SELECT reason FROM import_quarantine ORDER BY reason)",
    )
    .await;
    assert_eq!(
        reasons.get::<String, _>(0),
        "bad_time,missing_field,priority_not_in_contract,unknown_incident"
    );
    let names = one("SELECT (SELECT name FROM accounts), (SELECT time_zone FROM accounts), (SELECT name FROM teams), (SELECT name FROM services)").await;
    assert_eq!(
        (
            names.get::<String, _>(0),
            names.get::<String, _>(1),
            names.get::<String, _>(2),
            names.get::<String, _>(3)
        ),
        (
            "PagerDuty".into(),
            "Europe/Berlin".into(),
            "Identity".into(),
            "identity-db".into()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_page_that_is_not_json_is_a_clear_error() {
    let (addr, _server) = serve(
        Account::default(),
        Trouble {
            malformed: true,
            ..Trouble::default()
        },
    )
    .await;
    let dir = mttx_fixtures::testing::scratch("pagerduty-malformed").unwrap();
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    let opts = Options::new(
        &format!("http://{addr}"),
        TOKEN.to_owned().into(),
        Utc::now(),
    );
    let err = import(&opts, &replica, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not JSON"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

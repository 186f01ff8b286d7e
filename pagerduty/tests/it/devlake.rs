//! The real PagerDuty log of `../shared/data/pagerduty/devlake` (a test account, 2022-11-03:
//! incidents #4, #5, #6, provenance in SOURCES.md), served by the local PagerDuty with
//! rate limiting and failures, imported, then folded by `etl run`: each incident's facts
//! are the numbers worked out by hand from the JSON (in `etl/tests/it/pagerduty.rs` for
//! the same log converted by hand). These log entries are the overview form (no
//! `assignees`, no `user`, no notification): the import reads them from the summaries.

use std::collections::HashMap;

use chrono::TimeZone;
use mttx_etl::Fact;
use mttx_migrations::Location;
use mttx_pagerduty::{Options, import};
use serde_json::{Value, json};

use crate::server::{Account, TOKEN, Trouble, serve};

fn devlake() -> Account {
    let file = format!(
        "{}/../../shared/data/pagerduty/devlake/raw_tables/_raw_pagerduty_incidents.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut account = Account::default();
    for record in csv::Reader::from_reader(text.as_bytes()).records() {
        let mut incident: Value = serde_json::from_str(&record.unwrap()[2]).unwrap();
        let entries = incident["log_entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        incident.as_object_mut().unwrap().remove("log_entries");
        account.log_entries.extend(entries);
        account.incidents.push(incident);
    }
    // The people, policy and service the incidents name (the export has no /users etc.).
    account.users = vec![
        json!({"id": "PQYACO3", "type": "user", "name": "Keon Amini", "email": "keon@example.com",
               "time_zone": "Etc/UTC", "teams": []}),
        json!({"id": "P25K520", "type": "user", "name": "Kian Amini", "email": "kian@example.com",
               "time_zone": "Etc/UTC", "teams": []}),
    ];
    account.escalation_policies = vec![json!({"id": "PNJQLBU", "name": "Default", "teams": []})];
    account.services = vec![json!({"id": "PIKL83L", "name": "DevService",
        "escalation_policy": {"id": "PNJQLBU", "type": "escalation_policy_reference"}, "teams": []})];
    account
}

/// Folds the replica at `replica` with `etl run` into `<dir>/facts`: facts by number.
pub async fn folded(dir: &std::path::Path, replica: &Location) -> HashMap<i64, Fact> {
    let facts = dir.join("facts").display().to_string();
    let state = mttx_state::State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    let mut table = mttx_etl::sink::delta::FactsTable::open(&facts)
        .await
        .unwrap();
    let source = mttx_replica::Source::open(replica, 2).await.unwrap();
    mttx_etl::run::run(&source, &mut table, &state, &Default::default())
        .await
        .unwrap();
    table
        .read_all()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.incident_number, f))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devlake_account_imports_and_folds_to_the_hand_worked_numbers() {
    let dir = mttx_fixtures::testing::scratch("pagerduty-devlake").unwrap();
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    devlake_into(&dir, &replica).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same into a PostgreSQL replica.
#[sqlx::test(migrations = false)]
async fn the_devlake_account_imports_into_postgresql(pool: sqlx::PgPool) {
    let url = mttx_fixtures::testing::database_url(&pool).await.unwrap();
    let dir = mttx_fixtures::testing::scratch("pagerduty-devlake-pg").unwrap();
    devlake_into(&dir, &Location::Postgres(url)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn devlake_into(dir: &std::path::Path, replica: &Location) {
    let replica = replica.clone();
    let trouble = Trouble {
        throttle_every: Some(5),
        fail_every: Some(7),
        ..Trouble::default()
    };
    let (addr, server) = serve(devlake(), trouble).await;
    let since = chrono::Utc.with_ymd_and_hms(2022, 11, 1, 0, 0, 0).unwrap();
    let opts = Options {
        // One window from 2022 to now (this server sets no span).
        window: chrono::Duration::days(3650),
        ..Options::new(&format!("http://{addr}"), TOKEN.to_owned().into(), since)
    };
    let first = import(&opts, &replica, |_| {}).await.unwrap();
    assert_eq!((first.incidents >= 3, first.entries), (true, 44), "{first}");
    assert_eq!(first.quarantined, 0, "{first}");
    assert!(server.throttled.load(std::sync::atomic::Ordering::SeqCst) > 0);
    assert!(server.failed.load(std::sync::atomic::Ordering::SeqCst) > 0);
    // Importing again adds nothing: from where it stopped, and even looking back over all
    // of it (entries are known by PagerDuty's id).
    let again = import(&opts, &replica, |_| {}).await.unwrap();
    assert_eq!(again.entries, 0, "{again}");
    let all_over = Options {
        overlap: chrono::Utc::now() - since,
        ..opts.clone()
    };
    let again = import(&all_over, &replica, |_| {}).await.unwrap();
    assert_eq!((again.entries, again.entries_known), (0, 44), "{again}");

    let facts = folded(dir, &replica).await;
    let f = |n: i64| &facts[&n];
    // #4: 8 escalate entries are 5 escalations (2 by timeout); 7 assign/delegate entries
    // are 3 assignments, so 2 reassignments; first ack after 1 s; 12 email notifications.
    assert_eq!(f(4).seconds_to_first_ack, Some(1.0));
    assert_eq!(
        (
            f(4).escalation_count,
            f(4).timeout_escalations,
            f(4).manual_escalations
        ),
        (5, 2, 3)
    );
    assert_eq!((f(4).reassignment_count, f(4).ack_count), (2, 3));
    assert_eq!((f(4).notification_count, f(4).interruptions), (12, 0));
    assert_eq!(f(4).status, "triggered");
    // #5: Keon acknowledges unassigned after 9 s; the service's assign is no reassignment.
    assert_eq!(f(5).seconds_to_first_ack, Some(9.0));
    assert_eq!(
        (f(5).reassignment_count, f(5).assigned_user_ids.len()),
        (0, 2)
    );
    assert_eq!(f(5).status, "acknowledged");
    // #6: assigned to both at once; acked after 10 s, resolved by Keon after 368 s.
    assert_eq!(
        (f(6).seconds_to_first_ack, f(6).seconds_to_resolve),
        (Some(10.0), Some(368.0))
    );
    assert_eq!((f(6).reassignment_count, f(6).auto_resolved), (0, false));
    assert_eq!(f(6).urgency, "low");
    // Names, not ids: the people are the export's.
    for n in [4, 5, 6] {
        assert_eq!(f(n).acknowledged_user_ids.len(), 1, "#{n}");
    }
}

#[tokio::test]
async fn a_refused_token_is_a_clear_error() {
    let (addr, _server) = serve(devlake(), Trouble::default()).await;
    let dir = mttx_fixtures::testing::scratch("pagerduty-token").unwrap();
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    let opts = Options::new(
        &format!("http://{addr}"),
        "wrong".to_owned().into(),
        chrono::Utc::now(),
    );
    let err = import(&opts, &replica, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused the token (401)"), "{err}");
    assert!(!err.contains("wrong"), "the token is never shown: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

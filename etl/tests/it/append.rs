//! The backfill's blind appends: each range's facts land once, with their files' statistics,
//! a checkpoint is written at the table's interval, and a writer that read the log before
//! another's commit appends after it instead of failing.

use chrono::{TimeZone, Utc};
use mttx_etl::Fact;
use mttx_etl::sink::append::Appender;
use mttx_etl::sink::delta::FactsTable;
use serde_json::{Value, json};

use crate::pipeline::Scratch;

/// A fact of `account` created on 2026-`month`-`day` at noon UTC.
fn fact(account: i64, incident: i64, month: u32, day: u32) -> Fact {
    let created_at = Utc
        .with_ymd_and_hms(2026, month, day, 12, 0, 0)
        .single()
        .unwrap();
    Fact {
        account_id: account,
        incident_id: incident,
        incident_number: incident,
        service_id: 7,
        title: format!("incident {incident}"),
        urgency: "high".into(),
        priority: None,
        major: false,
        status: "resolved".into(),
        escalation_policy_id: Some(3),
        team_id: Some(5),
        created_at,
        created_at_from_incident_row: false,
        acknowledged_at: Some(created_at + chrono::Duration::seconds(60)),
        resolved_at: Some(created_at + chrono::Duration::seconds(600)),
        seconds_to_first_ack: Some(60.0),
        seconds_to_resolve: Some(600.0),
        auto_resolved: false,
        escalation_count: 0,
        timeout_escalations: 0,
        manual_escalations: 0,
        reassignment_count: 0,
        ack_count: 1,
        notification_count: 2,
        interruptions: 1,
        interruptions_business: 1,
        interruptions_off_hours: 0,
        interruptions_sleep: 0,
        seconds_to_mobilize: None,
        acknowledged_user_ids: vec![11],
        assigned_user_ids: vec![11, 12],
        unknown_entry_count: 0,
        metrics_version: 1,
        last_entry_id: incident * 10,
        reopen_count: Some(0),
        final_resolved_at: Some(created_at + chrono::Duration::seconds(600)),
    }
}

/// The actions of one log entry of the table at `facts`.
fn log_entry(facts: &str, version: u64) -> Vec<Value> {
    let path = format!("{facts}/_delta_log/{version:020}.json");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn each_range_lands_once_with_statistics_and_checkpoints() {
    let scratch = Scratch::new("append");
    let uri = scratch.facts();
    let mut table = FactsTable::open(&uri).await.unwrap();
    table
        .set_property_once("delta.checkpointInterval", "3")
        .await
        .unwrap();
    assert_eq!(table.version(), 1, "created, then the property");

    // Range a spans two accounts and, for account 1, two months: three files.
    let a = vec![
        fact(1, 1, 1, 5),
        fact(1, 2, 1, 20),
        fact(1, 3, 2, 2),
        fact(2, 4, 1, 9),
    ];
    let b = vec![fact(1, 5, 3, 1)];
    let c = vec![fact(2, 6, 3, 3)];
    let d = vec![fact(2, 7, 4, 4)];

    let mut appender = Appender::open(&uri).await.unwrap();
    let meta = |r: &str| json!({ "range": r });
    assert!(
        appender
            .append_once(&a, "range-a", meta("a"))
            .await
            .unwrap()
    );
    assert_eq!(appender.version(), 2);
    // Again: already committed, so nothing is written.
    assert!(
        !appender
            .append_once(&a, "range-a", meta("a"))
            .await
            .unwrap()
    );
    assert_eq!(appender.version(), 2);

    // One entry: the commit info with our metadata, three adds, the range's transaction.
    let entry = log_entry(&uri, 2);
    let info = entry.iter().find_map(|a| a.get("commitInfo")).unwrap();
    assert_eq!(info["operation"], "WRITE");
    assert_eq!(info["mttx.backfill"], meta("a"));
    let txns: Vec<&Value> = entry.iter().filter_map(|a| a.get("txn")).collect();
    assert_eq!(txns.len(), 1);
    assert_eq!(
        (&txns[0]["appId"], &txns[0]["version"]),
        (&json!("range-a"), &json!(1))
    );
    let mut adds: Vec<&Value> = entry.iter().filter_map(|a| a.get("add")).collect();
    adds.sort_by_key(|a| a["path"].as_str().unwrap().to_owned());
    let partitions: Vec<(&str, &str)> = adds
        .iter()
        .map(|a| {
            (
                a["partitionValues"]["account_id"].as_str().unwrap(),
                a["partitionValues"]["month"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        partitions,
        [("1", "2026-01"), ("1", "2026-02"), ("2", "2026-01")]
    );
    // Statistics, as queries prune files by them: worked out from the facts above.
    let stats: Vec<Value> = adds
        .iter()
        .map(|a| serde_json::from_str(a["stats"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(stats[0]["numRecords"], 2);
    assert_eq!(stats[0]["minValues"]["incident_id"], 1);
    assert_eq!(stats[0]["maxValues"]["incident_id"], 2);
    assert!(
        stats[0]["minValues"]["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-05T12:00:00"),
        "{}",
        stats[0]
    );
    assert!(
        stats[0]["maxValues"]["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-20T12:00:00"),
        "{}",
        stats[0]
    );
    assert_eq!(stats[0]["nullCount"]["priority"], 2);
    assert_eq!(stats[1]["numRecords"], 1);
    assert_eq!(stats[2]["minValues"]["incident_id"], 4);

    // A writer that read the log before b was committed appends c after it.
    let mut stale = Appender::open(&uri).await.unwrap();
    assert!(
        appender
            .append_once(&b, "range-b", meta("b"))
            .await
            .unwrap()
    );
    assert!(stale.append_once(&c, "range-c", meta("c")).await.unwrap());
    assert_eq!((appender.version(), stale.version()), (3, 4));
    // And finds b committed rather than committing it twice.
    assert!(!stale.append_once(&b, "range-b", meta("b")).await.unwrap());
    assert!(stale.append_once(&d, "range-d", meta("d")).await.unwrap());
    assert_eq!(stale.version(), 5);

    // Checkpoints where the interval of 3 falls: after versions 2 and 5.
    let log = std::path::Path::new(&uri).join("_delta_log");
    for v in [2, 5] {
        assert!(
            log.join(format!("{v:020}.checkpoint.parquet")).exists(),
            "no checkpoint of version {v}"
        );
    }
    assert!(!log.join(format!("{:020}.checkpoint.parquet", 3)).exists());

    // Every fact once, as a reader of the whole table sees them (through the checkpoint).
    let mut all: Vec<Fact> = [a, b, c, d].concat();
    all.sort_by_key(|f| (f.account_id, f.incident_id));
    let read = FactsTable::open(&uri)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    assert_eq!(read, all);
    let mut fresh = Appender::open(&uri).await.unwrap();
    for r in ["range-a", "range-b", "range-c", "range-d"] {
        assert_eq!(fresh.txn_version(r).await.unwrap(), Some(1), "{r}");
    }
    // A range checked and found missing, then committed by another writer, is found in the
    // commits made since the check.
    assert_eq!(fresh.txn_version("range-e").await.unwrap(), None);
    let e = vec![fact(3, 8, 4, 5)];
    assert!(
        appender
            .append_once(&e, "range-e", meta("e"))
            .await
            .unwrap()
    );
    fresh.refresh().await.unwrap();
    assert_eq!(fresh.txn_version("range-e").await.unwrap(), Some(1));
    assert!(!fresh.append_once(&e, "range-e", meta("e")).await.unwrap());
    assert_eq!(fresh.version(), 6);
}

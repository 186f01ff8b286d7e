//! A GoAlert database as the replica: the whole ETL (backfill, then follow) over GoAlert's own
//! tables equals the independent SQL oracle over those tables (`tests/sql/goalert_facts.sql`,
//! itself checked against the hand-worked golden facts in the fixtures crate), and GoAlert's
//! own `alert_metrics` reading differs from ours where it should.

use std::collections::BTreeMap;

use mttx_etl::Fact;
use mttx_etl::run::{RunOptions, run};
use mttx_etl::sink::delta::FactsTable;
use mttx_fixtures::goalert::{self, GoalertConfig, insert_alert_batch};
use mttx_migrations::Location;
use mttx_replica::{GoAlert, Source, SourceKind};
use mttx_state::State;
use sqlx::{FromRow, PgPool};

use crate::oracle::location;
use crate::pipeline::Scratch;

const ORACLE: &str = include_str!("../sql/goalert_facts.sql");
const GOALERT_METRICS: &str = include_str!("../sql/goalert_alert_metrics.sql");

/// The oracle's row (the columns the source's facts can be compared on).
#[derive(Debug, Clone, PartialEq, FromRow)]
struct Oracle {
    incident_id: i64,
    service_id: Option<i64>,
    escalation_policy_id: Option<i64>,
    created_at: chrono::DateTime<chrono::Utc>,
    seconds_to_first_ack: Option<f64>,
    seconds_to_resolve: Option<f64>,
    auto_resolved: bool,
    escalation_count: i64,
    timeout_escalations: i64,
    manual_escalations: i64,
    reassignment_count: i64,
    ack_count: i64,
    notification_count: i64,
    interruptions: i64,
    interruptions_business: i64,
    interruptions_off_hours: i64,
    interruptions_sleep: i64,
    seconds_to_mobilize: Option<f64>,
    acknowledged_user_ids: Vec<i64>,
    assigned_user_ids: Vec<i64>,
    last_entry_id: i64,
}

impl Oracle {
    /// The same columns of a facts row.
    fn of(f: &Fact) -> Self {
        Self {
            incident_id: f.incident_id,
            service_id: Some(f.service_id),
            escalation_policy_id: f.escalation_policy_id,
            created_at: f.created_at,
            seconds_to_first_ack: f.seconds_to_first_ack,
            seconds_to_resolve: f.seconds_to_resolve,
            auto_resolved: f.auto_resolved,
            escalation_count: f.escalation_count,
            timeout_escalations: f.timeout_escalations,
            manual_escalations: f.manual_escalations,
            reassignment_count: f.reassignment_count,
            ack_count: f.ack_count,
            notification_count: f.notification_count,
            interruptions: f.interruptions,
            interruptions_business: f.interruptions_business,
            interruptions_off_hours: f.interruptions_off_hours,
            interruptions_sleep: f.interruptions_sleep,
            seconds_to_mobilize: f.seconds_to_mobilize,
            acknowledged_user_ids: f.acknowledged_user_ids.clone(),
            assigned_user_ids: f.assigned_user_ids.clone(),
            last_entry_id: f.last_entry_id,
        }
    }
}

fn goalert() -> SourceKind {
    SourceKind::GoAlert(GoAlert::default())
}

/// Runs the ETL once (backfill or catching up) from GoAlert at `source`; returns the facts.
async fn etl_once(source: &Location, scratch: &Scratch, batch: i64) -> Vec<Fact> {
    let replica = Source::open_as(source, goalert(), 2).await.unwrap();
    let state = State::open(&scratch.state()).await.unwrap();
    let mut facts = FactsTable::open(&scratch.facts()).await.unwrap();
    let opts = RunOptions {
        batch_entries: batch,
        range_incidents: batch,
        ..RunOptions::default()
    };
    run(&replica, &mut facts, &state, &opts).await.unwrap();
    FactsTable::open(&scratch.facts())
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap()
}

/// Every alert's facts equal the oracle's row.
async fn assert_oracle(pool: &PgPool, facts: &[Fact]) -> usize {
    let oracle: Vec<Oracle> = sqlx::query_as(ORACLE).fetch_all(pool).await.unwrap();
    let got: BTreeMap<i64, Oracle> = facts
        .iter()
        .map(|f| (f.incident_id, Oracle::of(f)))
        .collect();
    assert_eq!(got.len(), oracle.len(), "one facts row per alert");
    for want in &oracle {
        assert_eq!(got.get(&want.incident_id), Some(want));
    }
    oracle.len()
}

#[sqlx::test(migrations = false)]
async fn golden_goalert_alerts_through_the_pipeline_equal_the_oracle(pool: PgPool) {
    goalert::load_golden(&pool).await.unwrap();
    let scratch = Scratch::new("goalert-golden");
    // Small batches: several backfill commits.
    let facts = etl_once(&location(&pool).await, &scratch, 5).await;
    assert_eq!(assert_oracle(&pool, &facts).await, 12);
    // Titles are the summaries, and every alert is in the one account.
    assert!(
        facts
            .iter()
            .all(|f| f.account_id == 1 && !f.title.is_empty())
    );
}

#[sqlx::test(migrations = false)]
async fn generated_goalert_data_backfilled_then_followed_out_of_id_order_equals_the_oracle(
    pool: PgPool,
) {
    let cfg = GoalertConfig {
        alerts: 3_000,
        ..GoalertConfig::default()
    };
    goalert::generate(&pool, &cfg).await.unwrap();
    let loc = location(&pool).await;
    let scratch = Scratch::new("goalert-follow");
    let facts = etl_once(&loc, &scratch, 500).await;
    assert_eq!(assert_oracle(&pool, &facts).await, 3_000);
    // New alerts whose upper log ids commit before the lower ones: a follow picks up both.
    insert_alert_batch(&pool, 7, 200).await.unwrap();
    let facts = etl_once(&loc, &scratch, 500).await;
    assert_eq!(assert_oracle(&pool, &facts).await, 3_200);
}

/// GoAlert's own reading counts an alert closed unacknowledged as acknowledged at close
/// (`coalesce(time_to_ack, time_to_close)`); ours leaves it unacknowledged. On the golden
/// set the two agree exactly where an alert was acknowledged.
#[sqlx::test(migrations = false)]
async fn goalert_own_metrics_differ_only_where_an_alert_closed_unacknowledged(pool: PgPool) {
    goalert::load_golden(&pool).await.unwrap();
    let scratch = Scratch::new("goalert-metrics");
    let facts = etl_once(&location(&pool).await, &scratch, 100).await;
    let sql = format!(
        "SELECT alert_id, goalert_time_to_ack, time_to_close FROM ({}) m ORDER BY 1",
        GOALERT_METRICS.trim().trim_end_matches(';')
    );
    let theirs: Vec<(i64, Option<f64>, Option<f64>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .fetch_all(&pool)
            .await
            .unwrap();
    let ours: BTreeMap<i64, &Fact> = facts.iter().map(|f| (f.incident_id, f)).collect();
    let mut differ = Vec::new();
    for (alert, ack, _) in theirs {
        let f = ours[&alert];
        if ack != f.seconds_to_first_ack {
            // Theirs is the close; ours is no acknowledgement at all.
            assert_eq!((f.seconds_to_first_ack, ack), (None, f.seconds_to_resolve));
            differ.push(alert);
        }
    }
    // Alerts 5 and 6 closed without an acknowledgement (fixtures/goalert/golden.md).
    assert_eq!(differ, [5, 6]);
}

/// Pointed at something that is not GoAlert, or at a GoAlert too old, the source says what
/// is missing.
#[sqlx::test(migrations = false)]
async fn the_source_says_what_is_missing(pool: PgPool) {
    let loc = location(&pool).await;
    let refused = |e: mttx_replica::Error| e.to_string();
    // An empty database.
    let e = refused(Source::open_as(&loc, goalert(), 1).await.unwrap_err());
    assert!(
        e.contains("not a GoAlert database") && e.contains("gorp_migrations"),
        "{e}"
    );
    // GoAlert at an older migration level, and one without a column read.
    goalert::create_schema(&pool).await.unwrap();
    Source::open_as(&loc, goalert(), 1).await.unwrap();
    sqlx::query("DELETE FROM gorp_migrations WHERE id > '2019'")
        .execute(&pool)
        .await
        .unwrap();
    let e = refused(Source::open_as(&loc, goalert(), 1).await.unwrap_err());
    assert!(
        e.contains("20201209112322-alert-logs-drop-fkeys.sql"),
        "{e}"
    );
    sqlx::query(
        "INSERT INTO gorp_migrations (id) VALUES ('20201209112322-alert-logs-drop-fkeys.sql')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE alert_logs DROP COLUMN sub_classifier")
        .execute(&pool)
        .await
        .unwrap();
    let e = refused(Source::open_as(&loc, goalert(), 1).await.unwrap_err());
    assert!(e.contains("alert_logs.sub_classifier"), "{e}");
    // Not PostgreSQL at all.
    let lite = Location::Sqlite("/nonexistent/goalert.sqlite".into());
    let e = refused(Source::open_as(&lite, goalert(), 1).await.unwrap_err());
    assert!(e.contains("PostgreSQL"), "{e}");
}

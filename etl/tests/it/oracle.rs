//! Differential tests: the fold against an independent SQL computation over the replica in
//! PostgreSQL (`tests/sql/facts.sql`), on the golden set and on a generated log with bad input.

use mttx_etl::{Fact, MetricsVersion, fold};
use mttx_fixtures::golden;
use mttx_fixtures::read::read_dataset;
use mttx_fixtures::{Config, generate_into, load_dataset};
use mttx_migrations::Location;
use sqlx::{FromRow, PgPool};

use crate::inputs;

pub const ORACLE: &str = include_str!("../sql/facts.sql");

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Oracle {
    pub incident_id: i64,
    pub account_id: i64,
    pub incident_number: i64,
    pub service_id: i64,
    pub escalation_policy_id_v1: Option<i64>,
    pub team_id_v1: Option<i64>,
    pub escalation_policy_id_v2: Option<i64>,
    pub team_id_v2: Option<i64>,
    pub urgency: String,
    pub priority: Option<String>,
    pub major: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_at_from_incident_row: bool,
    pub seconds_to_first_ack: Option<f64>,
    pub seconds_to_resolve: Option<f64>,
    pub auto_resolved: bool,
    pub escalation_count: i64,
    pub timeout_escalations: i64,
    pub manual_escalations: i64,
    pub reassignment_count: i64,
    pub ack_count: i64,
    pub notification_count: i64,
    pub interruptions: i64,
    pub interruptions_business: i64,
    pub interruptions_off_hours: i64,
    pub interruptions_sleep: i64,
    pub seconds_to_mobilize: Option<f64>,
    pub acknowledged_user_ids: Vec<i64>,
    pub assigned_user_ids: Vec<i64>,
    pub unknown_entry_count: i64,
    pub last_entry_id: i64,
    pub reopen_count: i64,
    pub final_resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The oracle's row in the fold's terms, for one metrics version.
pub fn as_fact(o: &Oracle, version: MetricsVersion, like: &Fact) -> Fact {
    let (policy, team) = match version {
        MetricsVersion::V1 => (o.escalation_policy_id_v1, o.team_id_v1),
        MetricsVersion::V2 => (o.escalation_policy_id_v2, o.team_id_v2),
    };
    Fact {
        account_id: o.account_id,
        incident_id: o.incident_id,
        incident_number: o.incident_number,
        service_id: o.service_id,
        urgency: o.urgency.clone(),
        priority: o.priority.clone(),
        major: o.major,
        escalation_policy_id: policy,
        team_id: team,
        created_at: o.created_at,
        created_at_from_incident_row: o.created_at_from_incident_row,
        seconds_to_first_ack: o.seconds_to_first_ack,
        seconds_to_resolve: o.seconds_to_resolve,
        auto_resolved: o.auto_resolved,
        escalation_count: o.escalation_count,
        timeout_escalations: o.timeout_escalations,
        manual_escalations: o.manual_escalations,
        reassignment_count: o.reassignment_count,
        ack_count: o.ack_count,
        notification_count: o.notification_count,
        interruptions: o.interruptions,
        interruptions_business: o.interruptions_business,
        interruptions_off_hours: o.interruptions_off_hours,
        interruptions_sleep: o.interruptions_sleep,
        seconds_to_mobilize: o.seconds_to_mobilize,
        acknowledged_user_ids: o.acknowledged_user_ids.clone(),
        assigned_user_ids: o.assigned_user_ids.clone(),
        unknown_entry_count: o.unknown_entry_count,
        last_entry_id: o.last_entry_id,
        reopen_count: Some(o.reopen_count),
        final_resolved_at: o.final_resolved_at,
        // Not part of the oracle: the incident's own columns and derived timestamps.
        title: like.title.clone(),
        status: like.status.clone(),
        acknowledged_at: like.acknowledged_at,
        resolved_at: like.resolved_at,
        metrics_version: version as i32,
    }
}

pub async fn location(pool: &PgPool) -> Location {
    mttx_fixtures::testing::database_url(pool)
        .await
        .unwrap()
        .parse()
        .unwrap()
}

/// Folds every incident of the replica and compares each row with the oracle's.
async fn differential(pool: &PgPool, location: &Location) -> usize {
    let replica = mttx_migrations::connect(location, &Default::default())
        .await
        .unwrap();
    let data = read_dataset(&replica).await.unwrap();
    let (ctx, incidents, entries) = inputs(&data);
    let oracle: Vec<Oracle> = sqlx::query_as(ORACLE).fetch_all(pool).await.unwrap();
    assert_eq!(oracle.len(), incidents.len());
    let empty = Vec::new();
    for (row, want) in incidents.iter().zip(&oracle) {
        assert_eq!(row.id, want.incident_id);
        let log = entries.get(&row.id).unwrap_or(&empty);
        for version in [MetricsVersion::V1, MetricsVersion::V2] {
            let got = fold(version, row, log, &ctx).fact;
            assert_eq!(
                got,
                as_fact(want, version, &got),
                "incident {} ({version:?})",
                row.id
            );
        }
    }
    oracle.len()
}

#[sqlx::test(migrations = false)]
async fn the_oracle_agrees_with_the_hand_worked_golden_facts(pool: PgPool) {
    let loc = location(&pool).await;
    load_dataset(&golden::dataset().unwrap(), &loc, false)
        .await
        .unwrap();
    let oracle: Vec<Oracle> = sqlx::query_as(ORACLE).fetch_all(&pool).await.unwrap();
    let expected = golden::expected_facts().unwrap();
    assert_eq!(oracle.len(), expected.len());
    for (o, want) in oracle.iter().zip(&expected) {
        let id = want.incident_id;
        assert_eq!(o.incident_id, id);
        assert_eq!(
            (o.escalation_policy_id_v1, o.team_id_v1),
            (want.escalation_policy_id_v1, want.team_id_v1),
            "{id}"
        );
        assert_eq!(
            (o.escalation_policy_id_v2, o.team_id_v2),
            (want.escalation_policy_id_v2, want.team_id_v2),
            "{id}"
        );
        assert_eq!(
            (o.created_at, o.created_at_from_incident_row),
            (want.created_at, want.created_at_from_incident_row),
            "{id}"
        );
        assert_eq!(
            (o.seconds_to_first_ack, o.seconds_to_resolve),
            (want.seconds_to_first_ack, want.seconds_to_resolve),
            "{id}"
        );
        assert_eq!(o.auto_resolved, want.auto_resolved, "{id}");
        assert_eq!(
            (
                o.escalation_count,
                o.timeout_escalations,
                o.manual_escalations,
                o.reassignment_count,
                o.ack_count,
                o.notification_count
            ),
            (
                want.escalation_count,
                want.timeout_escalations,
                want.manual_escalations,
                want.reassignment_count,
                want.ack_count,
                want.notification_count
            ),
            "{id}"
        );
        assert_eq!(
            (
                o.interruptions,
                o.interruptions_business,
                o.interruptions_off_hours,
                o.interruptions_sleep
            ),
            (
                want.interruptions,
                want.interruptions_business,
                want.interruptions_off_hours,
                want.interruptions_sleep
            ),
            "{id}"
        );
        assert_eq!(o.seconds_to_mobilize, want.seconds_to_mobilize, "{id}");
        assert_eq!(
            format!("{:?}", o.acknowledged_user_ids).replace(' ', ""),
            want.acknowledged_user_ids,
            "{id}"
        );
        assert_eq!(
            format!("{:?}", o.assigned_user_ids).replace(' ', ""),
            want.assigned_user_ids,
            "{id}"
        );
        assert_eq!(
            (o.unknown_entry_count, o.last_entry_id, o.major),
            (want.unknown_entry_count, want.last_entry_id, want.major),
            "{id}"
        );
        assert_eq!(
            (o.reopen_count, o.final_resolved_at),
            (want.reopen_count, want.final_resolved_at),
            "{id}"
        );
    }
    // And the fold agrees with both.
    assert_eq!(differential(&pool, &loc).await, 14);
}

/// On a generated log of more than 100k entries with bad input of every kind, every
/// incident's facts equal the oracle's.
#[sqlx::test(migrations = false)]
async fn the_fold_equals_sql_over_a_generated_replica(pool: PgPool) {
    let loc = location(&pool).await;
    let cfg = Config {
        seed: 99,
        accounts: 4,
        incidents: 14_000,
        weeks: 8,
        bad_rate: 0.03,
        ..Config::default()
    };
    let summary = generate_into(cfg, &loc, false).await.unwrap();
    assert!(
        summary.stats.entries >= 100_000,
        "only {} entries",
        summary.stats.entries
    );
    assert_eq!(
        summary.stats.defects.len(),
        7,
        "every kind of bad input: {:?}",
        summary.stats.defects
    );
    let n = differential(&pool, &loc).await;
    assert!(n >= 13_000);
}

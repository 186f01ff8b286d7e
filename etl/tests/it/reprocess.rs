//! Reprocessing into a new generation: version 2 changes exactly the incidents whose
//! escalation policy changed after trigger (SQL over the replica says which), and nothing
//! else of any incident; the switch serves the new generation and switching back the old.

use std::collections::{BTreeMap, BTreeSet};

use mttx_etl::reprocess::{dry_run, reprocess};
use mttx_etl::run::{RunOptions, run};
use mttx_etl::sink::delta::FactsTable;
use mttx_etl::{Fact, MetricsVersion};
use mttx_fixtures::{Config, generate_into};
use mttx_migrations::Location;
use mttx_replica::Source;
use mttx_state::{Generation, State};
use sqlx::PgPool;

use crate::oracle::{ORACLE, Oracle, location};

async fn facts_of(location: &str) -> BTreeMap<i64, Fact> {
    FactsTable::open(location)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.incident_id, f))
        .collect()
}

/// A generated replica, and its version 1 facts as `etl run` makes them, served as
/// generation 1 of `<dir>/facts`.
struct Served {
    dir: std::path::PathBuf,
    base: String,
    state: State,
    source: Source,
    first: Generation,
    v1: BTreeMap<i64, Fact>,
}

async fn served_v1(pool: &PgPool, cfg: Config, name: &str) -> Served {
    let replica = location(pool).await;
    generate_into(cfg, &replica, false).await.unwrap();
    let dir = mttx_fixtures::testing::scratch(name).unwrap();
    let base = dir.join("facts").display().to_string();
    let state = State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    let source = Source::open(&replica, 2).await.unwrap();
    let first = state.serving(&base).await.unwrap();
    assert_eq!(
        (first.location.as_str(), first.metrics_version.number()),
        (base.as_str(), 1)
    );
    let mut table = FactsTable::open(&base).await.unwrap();
    run(&source, &mut table, &state, &RunOptions::default())
        .await
        .unwrap();
    let v1 = facts_of(&base).await;
    Served {
        dir,
        base,
        state,
        source,
        first,
        v1,
    }
}

#[sqlx::test(migrations = false)]
async fn version_2_moves_exactly_the_incidents_whose_policy_changed(pool: PgPool) {
    let cfg = Config {
        seed: 62,
        accounts: 2,
        incidents: 2_000,
        weeks: 4,
        ..Config::default()
    };
    let Served {
        dir,
        base,
        state,
        source,
        first,
        v1,
    } = served_v1(&pool, cfg, "reprocess").await;

    // The dry run says how many incidents change team, and changes nothing.
    let served = FactsTable::open(&base)
        .await
        .unwrap()
        .read_attributions(None)
        .await
        .unwrap();
    assert_eq!(served.len(), v1.len());
    let moves = dry_run(&source, &served, MetricsVersion::V2).await.unwrap();
    assert_eq!(state.serving(&base).await.unwrap(), first);

    let opts = RunOptions {
        metrics_version: MetricsVersion::V2,
        range_incidents: 500,
        ..RunOptions::default()
    };
    let done = reprocess(&source, &state, &base, &opts, true)
        .await
        .unwrap();
    assert!(done.switched);
    assert_eq!(done.from, first);
    assert_ne!(done.to.location, base);
    let served = state.serving(&base).await.unwrap();
    assert_eq!(
        (served.id, served.metrics_version.number()),
        (done.to.id, 2)
    );
    let v2 = facts_of(&done.to.location).await;
    // The served generation was not touched.
    assert_eq!(facts_of(&base).await, v1);

    // SQL over the replica: which incidents end on another policy (or team) than at
    // trigger, and what version 2 attributes each incident to.
    let oracle: Vec<Oracle> = sqlx::query_as(ORACLE).fetch_all(&pool).await.unwrap();
    let oracle: BTreeMap<i64, &Oracle> = oracle.iter().map(|o| (o.incident_id, o)).collect();
    let policy_changed: BTreeSet<i64> = oracle
        .values()
        .filter(|o| {
            (o.escalation_policy_id_v1, o.team_id_v1) != (o.escalation_policy_id_v2, o.team_id_v2)
        })
        .map(|o| o.incident_id)
        .collect();
    assert!(
        policy_changed.len() >= 20,
        "only {} incidents change policy: nothing to compare",
        policy_changed.len()
    );
    assert_eq!(
        v1.keys().collect::<Vec<_>>(),
        v2.keys().collect::<Vec<_>>(),
        "the same incidents in both generations"
    );
    let mut changed = BTreeSet::new();
    for (id, new) in &v2 {
        let old = &v1[id];
        let o = oracle[id];
        assert_eq!(new.metrics_version, 2, "{id}");
        assert_eq!(
            (new.escalation_policy_id, new.team_id),
            (o.escalation_policy_id_v2, o.team_id_v2),
            "{id}: version 2's attribution"
        );
        if (old.escalation_policy_id, old.team_id) != (new.escalation_policy_id, new.team_id) {
            changed.insert(*id);
        }
        // Everything else is the same fact.
        let same = Fact {
            escalation_policy_id: old.escalation_policy_id,
            team_id: old.team_id,
            metrics_version: old.metrics_version,
            ..new.clone()
        };
        assert_eq!(&same, old, "{id}: only the attribution may change");
    }
    assert_eq!(changed, policy_changed);

    // The dry run's team movements are the generations' difference.
    let team_changed = v2
        .values()
        .filter(|f| f.team_id != v1[&f.incident_id].team_id)
        .count() as i64;
    assert_eq!(
        moves.values().map(|m| m.moved_out).sum::<i64>(),
        team_changed
    );
    for ((account, team), m) in &moves {
        let count = |facts: &BTreeMap<i64, Fact>| {
            facts
                .values()
                .filter(|f| f.account_id == *account && f.team_id == *team)
                .count() as i64
        };
        assert_eq!(
            (m.before.incidents, m.after.incidents),
            (count(&v1), count(&v2)),
            "account {account} team {team:?}"
        );
    }
    // And its MTTA/MTTR percentiles per team, before and after, are SQL's over the replica
    // grouped by each version's team.
    let ids: Vec<i64> = v1.keys().copied().collect();
    let mut teams = BTreeSet::new();
    for (column, after) in [("team_id_v1", false), ("team_id_v2", true)] {
        let sql = format!(
            "SELECT account_id, {column} AS team, count(*)::int8, \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_first_ack), \
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds_to_first_ack), \
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_resolve), \
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds_to_resolve) \
             FROM ({ORACLE}) o WHERE incident_id = ANY($1) GROUP BY 1, 2"
        );
        type Row = (
            i64,
            Option<i64>,
            i64,
            Option<f64>,
            Option<f64>,
            Option<f64>,
            Option<f64>,
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&ids)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(rows.len() >= 4, "{column}: {} teams", rows.len());
        for (account, team, n, a50, a90, r50, r90) in rows {
            teams.insert((account, team));
            let m = &moves[&(account, team)];
            let got = if after { &m.after } else { &m.before };
            assert_eq!(got.incidents, n, "{column} {account} {team:?}");
            for (what, got, want) in [
                ("mtta p50", got.mtta_p50, a50),
                ("mtta p90", got.mtta_p90, a90),
                ("mttr p50", got.mttr_p50, r50),
                ("mttr p90", got.mttr_p90, r90),
            ] {
                let close = match (got, want) {
                    (Some(g), Some(w)) => (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    (g, w) => g == w,
                };
                assert!(
                    close,
                    "{column} {account} {team:?} {what}: {got:?} vs SQL {want:?}"
                );
            }
        }
    }
    assert_eq!(teams, moves.keys().copied().collect(), "the same teams");
    // Some team's MTTR p50 does move: the comparison above compared movement, not sameness.
    assert!(
        moves
            .values()
            .any(|m| m.before.incidents > 0 && m.before.mttr_p50 != m.after.mttr_p50),
        "no team's MTTR p50 moves"
    );

    // A dry run back to version 1 from the version 2 facts is the same movement reversed.
    let served_v2 = FactsTable::open(&done.to.location)
        .await
        .unwrap()
        .read_attributions(None)
        .await
        .unwrap();
    let back = dry_run(&source, &served_v2, MetricsVersion::V1)
        .await
        .unwrap();
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        moves.keys().collect::<Vec<_>>()
    );
    for (key, m) in &back {
        let there = &moves[key];
        assert_eq!(
            (&m.before, &m.after, m.moved_in, m.moved_out),
            (&there.after, &there.before, there.moved_out, there.moved_in),
            "{key:?}"
        );
    }

    // Switching back serves version 1 again.
    state
        .switch_generation(&base, first.id, done.to.id)
        .await
        .unwrap();
    // A switch made from a generation no longer served changes nothing.
    let err = state
        .switch_generation(&base, done.to.id, done.to.id + 100)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no longer the one served"),
        "{err}"
    );
    assert_eq!(state.serving(&base).await.unwrap(), first);
    assert_eq!(
        state.previous_generation(&base).await.unwrap().unwrap().id,
        done.to.id
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `reprocess --account`: one account's facts change version, every other account's facts
/// stay exactly as they were; the new generation records which; and the incremental ETL
/// into it folds what arrives later by each account's own version.
#[sqlx::test(migrations = false)]
async fn one_account_alone_moves_to_version_2(pool: PgPool) {
    let cfg = Config {
        seed: 63,
        accounts: 3,
        incidents: 3_000,
        weeks: 4,
        ..Config::default()
    };
    let Served {
        dir,
        base,
        state,
        source,
        first,
        v1,
    } = served_v1(&pool, cfg, "reprocess-account").await;
    let account = v1.values().map(|f| f.account_id).max().unwrap();

    let opts = RunOptions {
        metrics_version: MetricsVersion::V1,
        account_versions: [(account, MetricsVersion::V2)].into(),
        range_incidents: 400,
        ..RunOptions::default()
    };
    let done = reprocess(&source, &state, &base, &opts, true)
        .await
        .unwrap();
    assert_eq!(done.from, first);
    let served = state.serving(&base).await.unwrap();
    assert_eq!(served.id, done.to.id);
    assert_eq!(
        (served.metrics_version, served.account_versions.clone()),
        (MetricsVersion::V1, [(account, MetricsVersion::V2)].into())
    );
    assert_eq!(
        served.describe_versions(),
        format!("1 (account {account}: 2)")
    );
    assert_eq!(
        (
            served.version_of(account).number(),
            served.version_of(-1).number()
        ),
        (2, 1)
    );

    // Later writes to one incident of each account: its policy changes after trigger.
    let oracle: Vec<Oracle> = sqlx::query_as(ORACLE).fetch_all(&pool).await.unwrap();
    let mut touched = Vec::new();
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('incident_log_entries', 'id'), max(id)) FROM incident_log_entries",
    )
    .execute(&pool)
    .await
    .unwrap();
    for a in v1.values().map(|f| f.account_id).collect::<BTreeSet<_>>() {
        let o = oracle
            .iter()
            .find(|o| o.account_id == a && o.escalation_policy_id_v1 == o.escalation_policy_id_v2)
            .unwrap();
        let (other,): (i64,) = sqlx::query_as(
            "SELECT id FROM escalation_policies WHERE account_id = $1 AND id <> $2 ORDER BY id LIMIT 1",
        )
        .bind(a)
        .bind(o.escalation_policy_id_v1)
        .fetch_one(&pool)
        .await
        .unwrap();
        sqlx::query("UPDATE incidents SET escalation_policy_id = $2 WHERE id = $1")
            .bind(o.incident_id)
            .bind(other)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id) \
             SELECT account_id, id, 'annotate', created_at + interval '1 hour', 'user', 1, 'note', NULL FROM incidents WHERE id = $1",
        )
        .bind(o.incident_id)
        .execute(&pool)
        .await
        .unwrap();
        touched.push(o.incident_id);
    }
    let mut table = FactsTable::open(&served.location).await.unwrap();
    run(&source, &mut table, &state, &opts).await.unwrap();

    // Every fact: that account's by version 2, every other account's by version 1, as SQL
    // over the replica says; the other accounts' untouched facts are exactly as before.
    let oracle: Vec<Oracle> = sqlx::query_as(ORACLE).fetch_all(&pool).await.unwrap();
    let now = facts_of(&served.location).await;
    assert_eq!(now.len(), v1.len());
    let mut moved = 0;
    for o in &oracle {
        let Some(f) = now.get(&o.incident_id) else {
            continue;
        };
        let want = if f.account_id == account {
            (o.escalation_policy_id_v2, o.team_id_v2, 2)
        } else {
            (o.escalation_policy_id_v1, o.team_id_v1, 1)
        };
        assert_eq!(
            (f.escalation_policy_id, f.team_id, f.metrics_version),
            want,
            "incident {} of account {}",
            o.incident_id,
            f.account_id
        );
        if f.account_id != account && !touched.contains(&o.incident_id) {
            assert_eq!(f, &v1[&o.incident_id], "untouched facts of other accounts");
        }
        if f.account_id == account
            && f.escalation_policy_id != v1[&o.incident_id].escalation_policy_id
        {
            moved += 1;
        }
    }
    assert!(
        moved >= 5,
        "only {moved} incidents of account {account} moved"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

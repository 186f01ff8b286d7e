//! The whole ETL: replica (PostgreSQL or SQLite) → fold → Delta facts table + quarantine.

use std::path::PathBuf;

use mttx_etl::run::{RunOptions, run};
use mttx_etl::sink::delta::FactsTable;
use mttx_etl::{Fact, MetricsVersion};
use mttx_fixtures::{Config, generate_into, golden, load_dataset};
use mttx_migrations::{Location, Pool};
use mttx_replica::Source;
use mttx_state::State;
use sqlx::PgPool;

use crate::oracle::{ORACLE, Oracle, as_fact, location};

pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mttx-etl-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    pub(crate) fn facts(&self) -> String {
        self.0.join("facts").display().to_string()
    }
    pub(crate) fn state(&self) -> Location {
        Location::Sqlite(self.0.join("state.sqlite"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the ETL once from `source` into the scratch folder's facts table; returns the facts.
async fn etl_once(
    source: &Location,
    scratch: &Scratch,
    batch: i64,
) -> (Vec<Fact>, mttx_etl::run::Summary, State) {
    let replica = Source::open(source, 2).await.unwrap();
    let state = State::open(&scratch.state()).await.unwrap();
    let mut facts = FactsTable::open(&scratch.facts()).await.unwrap();
    let opts = RunOptions {
        batch_entries: batch,
        range_incidents: batch,
        ..RunOptions::default()
    };
    let summary = run(&replica, &mut facts, &state, &opts).await.unwrap();
    let rows = FactsTable::open(&scratch.facts())
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    (rows, summary, state)
}

async fn quarantine_rows(state: &State) -> Vec<(i64, i64, String)> {
    let Pool::Sqlite(lite) = state.pool() else {
        unreachable!()
    };
    sqlx::query_as("SELECT incident_id, entry_id, reason FROM quarantine ORDER BY 1, 2, 3")
        .fetch_all(lite)
        .await
        .unwrap()
}

/// The golden set through the whole pipeline: exactly the hand-worked facts, and every bad
/// input in the quarantine with its reason.
#[sqlx::test(migrations = false)]
async fn golden_set_through_the_pipeline(pool: PgPool) {
    let loc = location(&pool).await;
    load_dataset(&golden::dataset().unwrap(), &loc, false)
        .await
        .unwrap();
    let scratch = Scratch::new("golden");
    // Small ranges: several backfill commits.
    let (facts, summary, state) = etl_once(&loc, &scratch, 7).await;
    assert_eq!(summary.backfill.as_ref().unwrap().ranges_committed, 2);
    assert_eq!(summary.entries_read, 116);
    let expected = golden::expected_facts().unwrap();
    assert_eq!(facts.len(), expected.len());
    for (got, want) in facts.iter().zip(&expected) {
        let id = want.incident_id;
        assert_eq!(got.incident_id, id);
        assert_eq!(
            (got.escalation_policy_id, got.team_id),
            (want.escalation_policy_id_v1, want.team_id_v1),
            "{id}"
        );
        assert_eq!(got.created_at, want.created_at, "{id}");
        assert_eq!(
            (got.seconds_to_first_ack, got.seconds_to_resolve),
            (want.seconds_to_first_ack, want.seconds_to_resolve),
            "{id}"
        );
        assert_eq!(got.auto_resolved, want.auto_resolved, "{id}");
        assert_eq!(
            (
                got.escalation_count,
                got.reassignment_count,
                got.ack_count,
                got.notification_count
            ),
            (
                want.escalation_count,
                want.reassignment_count,
                want.ack_count,
                want.notification_count
            ),
            "{id}"
        );
        assert_eq!(
            (
                got.interruptions_business,
                got.interruptions_off_hours,
                got.interruptions_sleep
            ),
            (
                want.interruptions_business,
                want.interruptions_off_hours,
                want.interruptions_sleep
            ),
            "{id}"
        );
        assert_eq!(got.seconds_to_mobilize, want.seconds_to_mobilize, "{id}");
        assert_eq!(got.last_entry_id, want.last_entry_id, "{id}");
        assert_eq!(got.metrics_version, 1);
    }
    let q = quarantine_rows(&state).await;
    let want: Vec<(i64, i64, String)> = [
        (7, 62, "unknown_type"),
        (7, 63, "duplicate"),
        (8, 75, "ack_before_trigger"),
        (9, 0, "missing_trigger"),
        (10, 74, "null_field"),
        (10, 76, "null_field"),
        (10, 78, "null_field"),
        (10, 79, "null_field"),
        (99, 80, "orphan"),
        (99, 81, "orphan"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a, b, c.to_owned()))
    .collect();
    assert_eq!(q, want);

    // A second run finds nothing new and changes nothing.
    let version = FactsTable::open(&scratch.facts()).await.unwrap().version();
    let (again, summary, _) = etl_once(&loc, &scratch, 7).await;
    assert_eq!(summary.entries_read, 0);
    assert_eq!(again, facts);
    assert_eq!(
        FactsTable::open(&scratch.facts()).await.unwrap().version(),
        version
    );
}

/// A generated replica with bad input, loaded into PostgreSQL and into SQLite: both give the
/// same facts, and those equal the SQL oracle computed over PostgreSQL.
#[sqlx::test(migrations = false)]
async fn postgres_and_sqlite_sources_give_identical_facts(pool: PgPool) {
    let loc = location(&pool).await;
    let cfg = Config {
        seed: 21,
        accounts: 3,
        incidents: 2_500,
        weeks: 4,
        bad_rate: 0.05,
        ..Config::default()
    };
    generate_into(cfg.clone(), &loc, false).await.unwrap();
    let lite_dir = Scratch::new("lite-replica");
    let lite = Location::Sqlite(lite_dir.0.join("replica.sqlite"));
    generate_into(cfg, &lite, false).await.unwrap();

    let (a, b) = (Scratch::new("pg"), Scratch::new("lite"));
    let (from_pg, s1, _) = etl_once(&loc, &a, 500).await;
    let (from_lite, s2, _) = etl_once(&lite, &b, 500).await;
    assert!(s1.batches > 1, "several batches: {s1:?}");
    assert_eq!(s1.entries_read, s2.entries_read);
    assert_eq!(from_pg.len(), from_lite.len());
    assert_eq!(from_pg, from_lite);

    let oracle: Vec<Oracle> = sqlx::query_as(ORACLE).fetch_all(&pool).await.unwrap();
    assert_eq!(oracle.len(), from_pg.len());
    let mut from_pg = from_pg;
    from_pg.sort_by_key(|f| f.incident_id);
    for (got, want) in from_pg.iter().zip(&oracle) {
        assert_eq!(
            got,
            &as_fact(want, MetricsVersion::V1, got),
            "incident {}",
            got.incident_id
        );
    }
}

/// Entries that commit out of id order: a transaction holding a lower id commits after the
/// ETL has read past it. The next run picks it up; the facts equal a fresh run's.
#[sqlx::test(migrations = false)]
async fn entries_committed_out_of_id_order_are_not_missed(pool: PgPool) {
    let loc = location(&pool).await;
    load_dataset(&golden::dataset().unwrap(), &loc, false)
        .await
        .unwrap();
    sqlx::query("SELECT setval('incident_log_entries_id_seq', 116)")
        .execute(&pool)
        .await
        .unwrap();
    let scratch = Scratch::new("late");
    etl_once(&loc, &scratch, 1000).await;

    // A writer takes id 1001 and holds its transaction open; another takes 1002 and commits.
    let mut slow = pool.begin().await.unwrap();
    let late_id: i64 = sqlx::query_scalar(
        "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id) \
         VALUES (1, 6, 'acknowledge', '2026-10-26T09:20:00Z', 'user', 3, 'push', 3) RETURNING id",
    )
    .fetch_one(&mut *slow)
    .await
    .unwrap();
    let fast_id: i64 = sqlx::query_scalar(
        "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel) \
         VALUES (1, 6, 'annotate', '2026-10-26T09:21:00Z', 'user', 3, 'note') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(late_id < fast_id);
    let (facts, summary, _) = etl_once(&loc, &scratch, 1000).await;
    assert_eq!(summary.entries_read, 1);
    assert_eq!(summary.open_gaps, 1, "id {late_id} is awaited");
    assert_eq!(
        facts.iter().find(|f| f.incident_id == 6).unwrap().ack_count,
        0
    );

    slow.commit().await.unwrap();
    let (facts, summary, _) = etl_once(&loc, &scratch, 1000).await;
    assert_eq!((summary.entries_read, summary.open_gaps), (1, 0));
    let six = facts.iter().find(|f| f.incident_id == 6).unwrap();
    assert_eq!(six.ack_count, 1);
    assert_eq!(six.seconds_to_first_ack, Some(1200.0));

    let fresh = Scratch::new("fresh");
    let (from_scratch, _, _) = etl_once(&loc, &fresh, 1000).await;
    assert_eq!(facts, from_scratch);
}

#[tokio::test]
async fn a_missing_sqlite_replica_is_a_clear_error() {
    let err = Source::open(&Location::Sqlite("/nonexistent/replica.sqlite".into()), 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// A PostgreSQL replica that cannot be reached is reported at once with the reason, not as
/// a pool's timeout half a minute later.
#[tokio::test]
async fn an_unreachable_replica_says_why_at_once() {
    let started = std::time::Instant::now();
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let err = Source::open(&"postgres://postgres@127.0.0.1:1/x".parse().unwrap(), 1)
        .await
        .unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// An SQLite replica written by another tool keeps the journal mode that tool chose (here
/// SQLite's default, a rollback journal): mttx only reads it, so it opens the file as it is
/// and folds it. A file without the contract's tables says what to check.
#[tokio::test]
async fn an_sqlite_replica_in_rollback_journal_mode_is_read_as_it_is() {
    use sqlx::{ConnectOptions, Connection, Row};
    let dir = Scratch::new("rollback");
    let path = dir.0.join("replica.sqlite");
    let loc = Location::Sqlite(path.clone());
    let cfg = Config {
        seed: 11,
        accounts: 1,
        incidents: 300,
        weeks: 2,
        ..Config::default()
    };
    generate_into(cfg, &loc, false).await.unwrap();
    // The generator has closed its connections when it returns (a journal mode cannot leave
    // WAL while another connection holds the file: "database is locked").
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "delete");
    let row = sqlx::query(
        "SELECT MAX(id), (SELECT COUNT(*) FROM incidents WHERE id IN \
         (SELECT incident_id FROM incident_log_entries)) FROM incident_log_entries",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let (max_id, with_entries): (i64, i64) = (row.get(0), row.get(1));
    conn.close().await.unwrap();

    let replica = Source::open(&loc, 2).await.unwrap();
    assert_eq!(replica.bounds().await.unwrap().0, max_id);
    drop(replica);
    let (facts, _, _) = etl_once(&loc, &dir, 100).await;
    assert_eq!(facts.len() as i64, with_entries);

    let other = dir.0.join("other.sqlite");
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display()))
            .await
            .unwrap();
    sqlx::query("CREATE TABLE notes (body TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let replica = Source::open(&Location::Sqlite(other), 1).await.unwrap();
    let err = replica.bounds().await.unwrap_err().to_string();
    assert!(
        err.contains("a table of the replica contract is missing")
            && err.contains("--source names the replica's database"),
        "{err}"
    );
}

/// Two ETL runs at once on the same replica, facts table and state database (a fleet of
/// two, three backfill workers each): every range is committed exactly once, by one or the
/// other, and the facts equal a single run's.
#[sqlx::test(migrations = false)]
async fn two_runs_at_once_give_the_facts_of_one(pool: PgPool) {
    let loc = location(&pool).await;
    let cfg = Config {
        seed: 5,
        accounts: 2,
        incidents: 3_000,
        weeks: 3,
        bad_rate: 0.03,
        ..Config::default()
    };
    generate_into(cfg, &loc, false).await.unwrap();
    let single = Scratch::new("single");
    let (want, _, _) = etl_once(&loc, &single, 100).await;

    let shared = Scratch::new("fleet");
    let state_loc = shared.state();
    let mut handles = Vec::new();
    for worker in ["one", "two"] {
        let (loc, facts_uri, state_loc) = (loc.clone(), shared.facts(), state_loc.clone());
        handles.push(tokio::spawn(async move {
            let replica = Source::open(&loc, 4).await.unwrap();
            let state = State::open(&state_loc).await.unwrap();
            let mut facts = FactsTable::open(&facts_uri).await.unwrap();
            let opts = RunOptions {
                batch_entries: 1_000,
                range_incidents: 100,
                workers: 3,
                worker_id: worker.into(),
                ..RunOptions::default()
            };
            run(&replica, &mut facts, &state, &opts).await.unwrap()
        }));
    }
    let mut committed = 0;
    let mut ranges = 0;
    for h in handles {
        let s = h.await.unwrap();
        let b = s.backfill.unwrap();
        committed += b.ranges_committed;
        ranges = b.ranges;
    }
    assert!(ranges >= 29, "{ranges} ranges");
    assert_eq!(committed, ranges, "each range committed once");
    let got = FactsTable::open(&shared.facts())
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

/// The Parquet files under the table at `dir`, in any folder but the log.
fn parquet_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("_delta_log") {
                files.extend(parquet_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files
}

/// Upkeep compacts the small files of many commits, checkpoints the log and deletes the
/// files no version needs any more; the facts stay exactly the same.
#[sqlx::test(migrations = false)]
async fn upkeep_compacts_checkpoints_and_vacuums_without_changing_facts(pool: PgPool) {
    let loc = location(&pool).await;
    load_dataset(&golden::dataset().unwrap(), &loc, false)
        .await
        .unwrap();
    let scratch = Scratch::new("upkeep");
    let (before, summary, _) = etl_once(&loc, &scratch, 1).await;
    assert!(summary.batches >= 10, "{summary:?}");
    let files_before = parquet_files(std::path::Path::new(&scratch.facts())).len();

    let mut table = FactsTable::open(&scratch.facts()).await.unwrap();
    let report = table.upkeep(std::time::Duration::ZERO).await.unwrap();
    assert!(report.files_compacted >= 5, "{report}");
    assert!(report.files_written < report.files_compacted, "{report}");
    assert_eq!(
        report.files_vacuumed as u64, report.files_compacted,
        "{report}"
    );
    let files_after = parquet_files(std::path::Path::new(&scratch.facts())).len();
    assert_eq!(
        files_after,
        files_before + report.files_written as usize - report.files_vacuumed
    );
    assert!(
        std::path::Path::new(&scratch.facts())
            .join("_delta_log/_last_checkpoint")
            .exists()
    );
    let after = FactsTable::open(&scratch.facts())
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    assert_eq!(after, before);
    // The ETL carries on after upkeep: nothing new, nothing changed.
    let (again, summary, _) = etl_once(&loc, &scratch, 1).await;
    assert_eq!(summary.entries_read, 0);
    assert_eq!(again, before);
}

/// An incident whose entries arrived before its row (quarantined as orphans) is folded once
/// the row appears, although no new entry touches it; its orphan records go away.
#[sqlx::test(migrations = false)]
async fn an_orphan_is_folded_when_its_incident_row_appears(pool: PgPool) {
    let loc = location(&pool).await;
    load_dataset(&golden::dataset().unwrap(), &loc, false)
        .await
        .unwrap();
    let scratch = Scratch::new("adopt");
    let (facts, _, state) = etl_once(&loc, &scratch, 100).await;
    assert!(!facts.iter().any(|f| f.incident_id == 99));
    sqlx::query(
        "INSERT INTO incidents (id, account_id, incident_number, service_id, escalation_policy_id, title, urgency, priority, status, created_at) \
         SELECT 99, account_id, 99, service_id, escalation_policy_id, 'Adopted', urgency, priority, 'acknowledged', '2026-10-27T11:00:00Z' \
         FROM incidents WHERE id = 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (facts, summary, _) = etl_once(&loc, &scratch, 100).await;
    assert_eq!(summary.entries_read, 0);
    let adopted = facts.iter().find(|f| f.incident_id == 99).unwrap();
    assert_eq!(adopted.seconds_to_first_ack, Some(120.0));
    let fresh = Scratch::new("adopt-fresh");
    let (from_scratch, _, _) = etl_once(&loc, &fresh, 100).await;
    assert_eq!(facts, from_scratch);
    let q = quarantine_rows(&state).await;
    assert!(!q.iter().any(|r| r.2 == "orphan"), "{q:?}");
}

/// Reads to fold leave out `details` except where they decide a duplicate, so the cases are
/// worked by hand on the golden set: entry 37 (incident 4) is a note; written again with the
/// same text it is a duplicate of 37, and with another text it is a second note. Through the
/// backfill and through following alike; the timeline's read keeps every entry's details.
#[sqlx::test(migrations = false)]
async fn entries_equal_but_for_their_details_are_two_events(pool: PgPool) {
    let loc = location(&pool).await;
    load_dataset(&golden::dataset().unwrap(), &loc, false)
        .await
        .unwrap();
    let copy_of_37 = |id: i64, details: &str| {
        sqlx::query(
            "INSERT INTO incident_log_entries (id, account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id, assignee_ids, escalation_policy_id, details) \
             SELECT $1, account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id, assignee_ids, escalation_policy_id, CAST($2 AS JSONB) \
             FROM incident_log_entries WHERE id = 37",
        )
        .bind(id)
        .bind(details.to_owned())
        .execute(&pool)
    };
    let followed = Scratch::new("details-follow");
    etl_once(&loc, &followed, 100).await;
    copy_of_37(1001, r#"{"content": "Handing to Platform"}"#)
        .await
        .unwrap();
    copy_of_37(1002, r#"{"content": "Platform took it"}"#)
        .await
        .unwrap();
    let (by_follow, summary, follow_state) = etl_once(&loc, &followed, 100).await;
    assert_eq!(summary.entries_read, 2);
    let backfilled = Scratch::new("details-backfill");
    let (by_backfill, _, backfill_state) = etl_once(&loc, &backfilled, 7).await;
    assert_eq!(by_follow, by_backfill);
    for state in [&follow_state, &backfill_state] {
        let of_4: Vec<_> = quarantine_rows(state)
            .await
            .into_iter()
            .filter(|q| q.0 == 4)
            .collect();
        assert_eq!(of_4, vec![(4, 1001, "duplicate".to_owned())]);
    }

    let replica = Source::open(&loc, 2).await.unwrap();
    let details = |logs: &mttx_replica::Logs, id: i64| {
        logs[&4]
            .1
            .iter()
            .find(|e| e.id == id)
            .unwrap()
            .details
            .clone()
    };
    let to_fold = replica.logs_between(4, 5).await.unwrap();
    assert_eq!(
        details(&to_fold, 1002).as_deref(),
        Some(r#"{"content": "Platform took it"}"#)
    );
    assert_eq!(details(&to_fold, 1001), details(&to_fold, 37));
    let timeline = replica.logs(&[4]).await.unwrap();
    assert_eq!(
        details(&timeline, 31).as_deref(),
        Some(r#"{"summary": "Certificate for checkout-api expires in 7 days"}"#)
    );
}

/// The binary caps tokio's blocking pool for a backfill (`mttx/src/cli/mod.rs`,
/// `blocking_threads`) on a bound: a Delta kernel call holds a blocking thread while it waits
/// for file operations that need another, and each backfill worker has one such call at a
/// time, as does a follow pass or the upkeep. So a pool of one thread more than the workers
/// finishes a backfill of many small ranges on a local folder, a follow pass and the upkeep,
/// where a larger share of waiting calls would hang until the timeout. The bound is tight:
/// this run takes about 5 s, and with a pool of 1 or 2 threads (the workers' count) it hung
/// until the timeout (tried with the timeout at 90 and 120 s, 2026-12-04).
#[sqlx::test(migrations = false)]
async fn a_blocking_pool_one_thread_above_the_workers_never_deadlocks(pool: PgPool) {
    const WORKERS: usize = 2;
    let loc = location(&pool).await;
    let cfg = Config {
        seed: 5,
        accounts: 3,
        incidents: 3_000,
        weeks: 4,
        ..Config::default()
    };
    generate_into(cfg, &loc, false).await.unwrap();
    let capped = Scratch::new("capped");
    let (facts, state) = (capped.facts(), capped.state());
    let (source, add) = (loc.clone(), pool.clone());
    let capped_run = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(WORKERS + 1)
            .enable_all()
            .build()
            .unwrap();
        let work = async {
            let replica = Source::open(&source, 2).await.unwrap();
            let state = State::open(&state).await.unwrap();
            let mut table = FactsTable::open(&facts).await.unwrap();
            let opts = RunOptions {
                workers: WORKERS,
                range_incidents: 60,
                read_incidents: Some(20),
                ..RunOptions::default()
            };
            let backfill = run(&replica, &mut table, &state, &opts).await.unwrap();
            // An entry written after the backfill, for the follow pass to MERGE.
            sqlx::query(
                "INSERT INTO incident_log_entries (id, account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id, assignee_ids, escalation_policy_id, details) \
                 SELECT id + 1000000, account_id, incident_id, 'annotate', created_at, 'user', user_id, 'note', NULL, NULL, NULL, NULL \
                 FROM incident_log_entries ORDER BY id DESC LIMIT 1",
            )
            .execute(&add)
            .await
            .unwrap();
            let follow = run(&replica, &mut table, &state, &opts).await.unwrap();
            table.upkeep(std::time::Duration::ZERO).await.unwrap();
            (backfill, follow)
        };
        let done = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(300), work).await
        });
        // Threads stuck in a deadlock are left behind rather than waited for.
        rt.shutdown_timeout(std::time::Duration::from_secs(1));
        done
    });
    let done = tokio::task::spawn_blocking(move || capped_run.join().unwrap())
        .await
        .unwrap();
    let (backfill, follow) = done.expect("the capped run hung: a deadlock of blocking threads");
    let ranges = backfill.backfill.as_ref().unwrap().ranges_committed;
    assert!(ranges >= 40, "{ranges} ranges");
    assert_eq!(follow.entries_read, 1);

    let got = FactsTable::open(&capped.facts())
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    let (want, _, _) = etl_once(&loc, &Scratch::new("uncapped"), 50_000).await;
    assert_eq!(got, want);
}

/// The rows of each data page of `column` in the Parquet file at `path`, from its page index.
fn page_rows(path: &std::path::Path, column: &str) -> Vec<i64> {
    use deltalake::parquet::basic::Compression;
    use deltalake::parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    let file = std::fs::File::open(path).unwrap();
    let meta = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(&file)
        .unwrap();
    let offsets = meta.offset_index().expect("the file has a page index");
    let mut rows = Vec::new();
    for (g, group) in meta.row_groups().iter().enumerate() {
        for c in group.columns() {
            let codec = c.compression();
            assert_eq!(codec, Compression::LZ4_RAW, "{path:?}: {}", c.column_path());
        }
        let c = (0..group.num_columns())
            .find(|&c| group.column(c).column_path().string() == column)
            .unwrap();
        let starts: Vec<i64> = offsets[g][c]
            .page_locations()
            .iter()
            .map(|p| p.first_row_index)
            .chain([group.num_rows()])
            .collect();
        rows.extend(starts.windows(2).map(|w| w[1] - w[0]));
    }
    rows
}

/// Upkeep's compacted files are cut into pages of about 2,048 rows, each in the page index
/// with its statistics, so a query of a few days of a month skips the other pages, and
/// compressed with LZ4 (LZ4_RAW) in every column. The
/// Parquet writer checks the limit between the batches it is given, so a page may run
/// over by part of one; a file of one page per column (the writer's default) fails here.
#[sqlx::test(migrations = false)]
async fn compacted_files_hold_pages_of_about_2048_rows(pool: PgPool) {
    let loc = location(&pool).await;
    let cfg = Config {
        accounts: 1,
        incidents: 6_000,
        weeks: 4,
        ..Config::default()
    };
    generate_into(cfg, &loc, false).await.unwrap();
    let scratch = Scratch::new("pages");
    etl_once(&loc, &scratch, 500).await;
    let mut table = FactsTable::open(&scratch.facts()).await.unwrap();
    let report = table.upkeep(std::time::Duration::ZERO).await.unwrap();
    assert!(report.files_written > 0, "{report}");
    // Only the live files are left (nothing retained).
    let mut largest = Vec::new();
    for month in std::fs::read_dir(PathBuf::from(scratch.facts()).join("account_id=1")).unwrap() {
        for file in std::fs::read_dir(month.unwrap().path()).unwrap() {
            let pages = page_rows(&file.unwrap().path(), "created_at");
            assert!(pages.iter().all(|&n| n < 2 * 2048), "{pages:?}");
            if pages.iter().sum::<i64>() > largest.iter().sum::<i64>() {
                largest = pages;
            }
        }
    }
    assert!(largest.iter().sum::<i64>() > 2 * 2048, "{largest:?}");
    assert!(largest.len() >= 2, "{largest:?}");
}

/// An append's files (before upkeep) are Snappy-compressed, and only the columns whose
/// values repeat within an account and month are dictionary-encoded: a dictionary costs
/// its writer a hash table per column per open file, and one on incident ids or times
/// holds nearly every value once.
#[sqlx::test(migrations = false)]
async fn appended_files_keep_dictionaries_for_repeating_columns_only(pool: PgPool) {
    use deltalake::parquet::basic::Compression;
    use deltalake::parquet::file::metadata::ParquetMetaDataReader;
    let loc = location(&pool).await;
    let cfg = Config {
        accounts: 2,
        incidents: 3_000,
        weeks: 6,
        ..Config::default()
    };
    generate_into(cfg, &loc, false).await.unwrap();
    let scratch = Scratch::new("dictionaries");
    etl_once(&loc, &scratch, 500).await;
    let repeating = [
        "service_id",
        "escalation_policy_id",
        "team_id",
        "title",
        "urgency",
        "priority",
        "status",
    ];
    let files = parquet_files(std::path::Path::new(&scratch.facts()));
    let mut dictionaries = 0;
    for path in &files {
        let file = std::fs::File::open(path).unwrap();
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        for group in meta.row_groups() {
            for c in group.columns() {
                let column = c.column_path().string();
                assert_eq!(c.compression(), Compression::SNAPPY, "{path:?}: {column}");
                let has_dictionary = c.dictionary_page_offset().is_some();
                if repeating.contains(&column.as_str()) {
                    dictionaries += usize::from(has_dictionary && column == "service_id");
                } else {
                    assert!(!has_dictionary, "{path:?}: {column} has a dictionary");
                }
            }
        }
    }
    let files = files.len();
    assert!(files > 2, "{files} files");
    // service_id is never null: every file's chunk of it has its dictionary.
    assert!(
        dictionaries >= files,
        "{dictionaries} service_id dictionaries in {files} files"
    );
}

/// A read of the log is planned as a bitmap scan, which visits each heap page once, rather
/// than the plain index scan the planner picks for it, which visits a page again for each of
/// its entries (`READ_PLAN` in `replica/src/source.rs`; BENCHMARKS.md: PostgreSQL's CPU for a
/// 10M backfill's reads fell by a sixth). PostgreSQL counts the rows a plain index scan
/// fetches through an index (`idx_tup_fetch`) and not those of a bitmap scan. The settings
/// last for the read's transaction only: the next statement on the same connection, the
/// follower's look-up of an entry's time, still uses the primary key's index.
#[sqlx::test(migrations = false)]
async fn the_log_is_read_by_bitmap_scans_and_only_the_read_is_planned_so(pool: PgPool) {
    let loc = location(&pool).await;
    let cfg = Config {
        seed: 5,
        accounts: 3,
        incidents: 3_000,
        weeks: 4,
        ..Config::default()
    };
    generate_into(cfg, &loc, false).await.unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    // Without the settings, this read would be a plain index scan (on this small replica
    // for a few incidents; on 10M entries for the backfill's 5,000): the counts below would
    // tell.
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT * FROM incident_log_entries WHERE incident_id >= 1000 AND incident_id < 1010",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(plan[0].starts_with("Index Scan"), "{plan:?}");
    let (entries, last_id): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE incident_id >= 1000 AND incident_id < 1010), max(id) \
         FROM incident_log_entries",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    // One connection: the look-up runs where the read ran.
    let replica = Source::open(&loc, 1).await.unwrap();
    sqlx::query("SELECT pg_stat_reset()")
        .execute(&pool)
        .await
        .unwrap();
    let logs = replica.logs_between(1000, 1010).await.unwrap();
    let read: usize = logs.values().map(|(_, log)| log.len()).sum();
    assert_eq!(read as i64, entries);
    assert!(replica.entry_time(last_id).await.unwrap().is_some());
    drop(replica);

    // A backend reports its counts when it goes idle, at most once a second.
    let counts = || {
        sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT indexrelname::text, idx_scan, idx_tup_fetch FROM pg_stat_user_indexes \
             WHERE relname = 'incident_log_entries' ORDER BY 1",
        )
        .fetch_all(&pool)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let by_index = loop {
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&pool)
            .await
            .unwrap();
        let rows = counts().await.unwrap();
        let scanned = |name: &str| {
            rows.iter()
                .any(|(n, scans, _)| n.ends_with(name) && *scans > 0)
        };
        if scanned("incident_idx") && scanned("pkey") {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no index scans counted: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let fetched = |name: &str| {
        by_index
            .iter()
            .find(|(n, _, _)| n.ends_with(name))
            .map(|(_, _, fetched)| *fetched)
            .unwrap()
    };
    assert_eq!(fetched("incident_idx"), 0, "{by_index:?}");
    assert!(fetched("pkey") > 0, "{by_index:?}");
}

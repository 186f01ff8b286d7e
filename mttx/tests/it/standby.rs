//! `etl run` against a real hot standby (scripts/ensure-standby.sh: a primary on 5433 and its
//! streaming replica on 5434, `max_standby_streaming_delay = 10ms`, `hot_standby_feedback =
//! off`). While the ETL backfills and follows the standby, the primary keeps appending log
//! entries, rewrites rows the ETL reads and vacuums them (recovery conflicts cancel the
//! standby's statements), and the standby is restarted once. The ETL retries, its counter
//! shows it, and the facts equal a fresh run's over the primary.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mttx_etl::Fact;
use mttx_etl::sink::delta::FactsTable;
use mttx_fixtures::{Config, generate_into};
use sqlx::{Connection, PgPool};

use crate::common::{Killed, metric, metrics_address, scratch, succeeded};

/// The admin URLs of the primary and of the standby, as scripts/test.sh exports them.
fn clusters() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the tests with scripts/test.sh, which starts the standby (scripts/ensure-standby.sh)")
        })
    };
    (var("MTTX_STANDBY_PRIMARY_URL"), var("MTTX_STANDBY_URL"))
}

fn on_database(admin: &str, db: &str) -> String {
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

fn restart_standby() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ensure-standby.sh");
    succeeded(Command::new("bash").args([script, "restart"]));
}

async fn facts(dir: &std::path::Path) -> Vec<Fact> {
    match FactsTable::open(&dir.join("facts").display().to_string()).await {
        Ok(t) => t.read_all().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Appends notes, rewrites a slice of the log and of the incidents without changing them,
/// and vacuums, round after round until `stop`: each VACUUM's cleanup, replayed on the
/// standby, cancels the standby statements whose snapshot still sees the removed rows.
/// Returns the entries appended.
async fn busy_primary(pool: PgPool, incidents: i64, stop: Arc<AtomicBool>) -> i64 {
    let mut written = 0;
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let incident = 1 + (round * 37) % incidents;
        written += sqlx::query(
            "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id) \
             SELECT account_id, id, 'annotate', created_at + interval '1 hour', 'user', 1, 'note', NULL FROM incidents WHERE id = $1",
        )
        .bind(incident)
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected() as i64;
        // A few incidents changed (as a status change would), then vacuumed at once: the
        // cleanup of the rows they replaced reaches the standby within milliseconds.
        sqlx::query("UPDATE incidents SET title = title WHERE id % 500 = $1")
            .bind(round % 500)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("VACUUM incidents")
            .execute(&pool)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        round += 1;
    }
    written
}

/// Waits until the standby has replayed everything the primary wrote so far.
async fn caught_up(primary: &PgPool, standby_url: &str) {
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(primary)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = sqlx::PgConnection::connect(standby_url).await {
            let behind: Option<bool> =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() < $1::pg_lsn")
                    .bind(&lsn)
                    .fetch_one(&mut c)
                    .await
                    .ok();
            if behind == Some(false) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the standby never replayed {lsn}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_hot_standby_through_conflicts_and_a_restart_misses_nothing() {
    let (primary_admin, standby_admin) = clusters();
    // One database of the primary's, made afresh (the standby follows it).
    let db = "mttx_standby_test";
    let mut admin = sqlx::PgConnection::connect(&primary_admin).await.unwrap();
    sqlx::query("DROP DATABASE IF EXISTS mttx_standby_test WITH (FORCE)")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE mttx_standby_test")
        .execute(&mut admin)
        .await
        .unwrap();
    let primary_url = on_database(&primary_admin, db);
    let standby_url = on_database(&standby_admin, db);
    let incidents = 10_000;
    let cfg = Config {
        seed: 18,
        accounts: 2,
        incidents,
        weeks: 3,
        bad_rate: 0.02,
        ..Config::default()
    };
    generate_into(cfg, &primary_url.parse().unwrap(), false)
        .await
        .unwrap();
    let primary = PgPool::connect(&primary_url).await.unwrap();
    sqlx::query(
        "SELECT setval('incident_log_entries_id_seq', (SELECT max(id) FROM incident_log_entries))",
    )
    .execute(&primary)
    .await
    .unwrap();
    caught_up(&primary, &standby_url).await;

    let root = scratch("standby");
    let live = root.join("live");
    std::fs::create_dir_all(&live).unwrap();
    // The primary is busy from before the ETL starts until it has backfilled and followed
    // for a while.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(busy_primary(
        primary.clone(),
        incidents as i64,
        stop.clone(),
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["etl", "run", "--source", &standby_url])
        .arg("--facts")
        .arg(live.join("facts"))
        .arg("--state")
        .arg(live.join("state.sqlite"))
        .args([
            "--workers",
            "2",
            "--range-incidents",
            "5000",
            "--poll-seconds",
            "0.2",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, rx) = metrics_address(&mut child);
    let mut follower = Killed(child);
    // A migration on the primary takes the log table's ACCESS EXCLUSIVE lock: replayed on
    // the standby, it cancels the ETL's statements running there and makes the next ones
    // wait. With one of them waiting, the standby restarts, and the primary commits.
    let began = Instant::now();
    while metric(&addr, "mttx_etl_backfill_ranges").unwrap_or(0.0) == 0.0 {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "no backfill plan"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut migration = primary.begin().await.unwrap();
    sqlx::query("LOCK TABLE incident_log_entries IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *migration)
        .await
        .unwrap();
    // The lock's WAL record reaches the standby once something flushes it: a commit does.
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&primary)
        .await
        .unwrap();
    let mut watch = sqlx::PgConnection::connect(&standby_url).await.unwrap();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mttx-etl' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        if let Some(status) = follower.0.try_wait().unwrap() {
            let log: Vec<String> = rx.try_iter().collect();
            panic!("the ETL stopped ({status}):\n{}", log.join("\n"));
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "no ETL statement ever waited for the migration's lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(watch);
    tokio::task::spawn_blocking(restart_standby).await.unwrap();
    migration.commit().await.unwrap();
    eprintln!(
        "standby restarted with an ETL statement waiting ({:?})",
        began.elapsed()
    );
    let all = loop {
        let all = metric(&addr, "mttx_etl_backfill_ranges").unwrap_or(f64::MAX);
        let done = metric(&addr, "mttx_etl_backfill_ranges_done").unwrap_or(0.0);
        if done >= all {
            break all;
        }
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "the backfill never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("backfill of {all} ranges done after {:?}", began.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written >= 10, "{written}");
    caught_up(&primary, &standby_url).await;

    let reference = root.join("reference");
    succeeded(
        Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(["etl", "run", "--once", "--source", &primary_url])
            .arg("--facts")
            .arg(reference.join("facts"))
            .arg("--state")
            .arg(reference.join("state.sqlite"))
            .env("RUST_LOG", "warn"),
    );
    let want = facts(&reference).await;
    assert!(want.len() > 9_500, "{}", want.len());

    let deadline = Instant::now() + Duration::from_secs(120);
    let got = loop {
        let got = facts(&live).await;
        if got == want {
            break got;
        }
        if let Some(status) = follower.0.try_wait().unwrap() {
            let mut log = String::new();
            while let Ok(line) = rx.try_recv() {
                log.push_str(&line);
                log.push('\n');
            }
            panic!("the follower stopped ({status}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "the follower has {} facts of {}; first difference at incident {:?}",
            got.len(),
            want.len(),
            got.iter()
                .zip(&want)
                .find(|(g, w)| g != w)
                .map(|(_, w)| w.incident_id)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(got.len(), want.len());
    let retries = metric(&addr, "mttx_etl_replica_retries_total").unwrap();
    // What the standby cancelled, as the ETL logged it while retrying.
    let log: Vec<String> = rx.try_iter().collect();
    let conflicts = log
        .iter()
        .filter(|l| l.contains("conflict with recovery"))
        .count();
    let cut = log
        .iter()
        .filter(|l| l.contains("retrying") && !l.contains("conflict with recovery"))
        .count();
    eprintln!(
        "standby: {retries} replica retries: {conflicts} statements cancelled by a recovery conflict, {cut} cut by the restart"
    );
    assert!(
        retries >= 1.0,
        "the ETL never retried a replica statement; its log:\n{}",
        log.iter()
            .filter(|l| !l.contains(" INFO "))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(follower);
    primary.close().await;
    sqlx::query("DROP DATABASE IF EXISTS mttx_standby_test WITH (FORCE)")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

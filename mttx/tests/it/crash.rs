//! kill -9 at random moments, then restart: the facts equal an uninterrupted run's. During a
//! backfill (several workers, many ranges) and while following a log that writers keep
//! appending to with transactions that commit out of id order.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mttx_etl::Fact;
use mttx_etl::sink::delta::FactsTable;
use mttx_fixtures::{Config, generate_into};
use sqlx::PgPool;

use crate::common::{self, Killed, appendable_replica, scratch, test_url};

/// A small deterministic generator of kill moments (the seed is printed on failure).
pub(crate) struct Moments(pub u64);

impl Moments {
    pub(crate) fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

fn etl(dir: &Path, url: &str, extra: &[&str]) -> Command {
    mttx_on(dir, url, &["etl", "run"], extra)
}

/// `mttx <command>` on the replica at `url` with the facts and state under `dir`.
fn mttx_on(dir: &Path, url: &str, command: &[&str], extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mttx"));
    cmd.args(command)
        .args(["--source", url])
        .arg("--facts")
        .arg(dir.join("facts"))
        .arg("--state")
        .arg(dir.join("state.sqlite"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `etl run --once` to its end; returns how long it took.
fn run_to_end(dir: &Path, url: &str, extra: &[&str]) -> Duration {
    let start = std::time::Instant::now();
    let out = etl(dir, url, extra).arg("--once").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// Starts the ETL, waits a random moment, and kills it with SIGKILL if it is still running.
/// Returns whether it was killed.
pub(crate) async fn kill_at_random(mut child: Child, wait_ms: u64) -> bool {
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    if let Some(status) = child.try_wait().unwrap() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "the ETL failed on its own: {err}");
        return false;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

/// Starts `command` up to 6 times, each killed at a random moment between a twentieth and a
/// quarter of `took` (how long an uninterrupted run took on this machine) after its start,
/// until a run ends by itself; returns how many were killed. Fixed moments let a fast
/// machine finish before the second kill; so did moments up to half of `took` when the
/// machine sped up after the reference run (a build beside the tests ending): a resumed
/// run has only the rest of the work left, and two kills within a quarter each leave it
/// at least half.
pub(crate) async fn kill_until_done(
    mut command: impl FnMut() -> Command,
    moments: &mut Moments,
    took: Duration,
) -> usize {
    let took = took.as_millis() as u64;
    let (from, to) = (took / 20, (took / 4).max(took / 20 + 1));
    let mut kills = 0;
    for _ in 0..6 {
        let child = command().spawn().unwrap();
        if kill_at_random(child, moments.next_ms(from, to)).await {
            kills += 1;
        } else {
            break;
        }
    }
    kills
}

async fn facts(dir: &Path) -> Vec<Fact> {
    FactsTable::open(&dir.join("facts").display().to_string())
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap()
}

async fn quarantine(dir: &Path) -> Vec<(i64, i64, String)> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("state.sqlite"));
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::query_as("SELECT incident_id, entry_id, reason FROM quarantine ORDER BY 1, 2, 3")
        .fetch_all(&pool)
        .await
        .unwrap()
}

pub(crate) fn assert_same(got: &[Fact], want: &[Fact], seed: u64) {
    assert_eq!(got.len(), want.len(), "row count (seed {seed:#x})");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "incident {} (seed {seed:#x})", w.incident_id);
    }
}

/// The replica the kill -9 tests interrupt work on: 3 accounts, 6,000 incidents, 3 % bad
/// input. Returns its URL.
async fn kill_test_replica(pool: &PgPool, seed: u64) -> String {
    let url = test_url(pool).await;
    let cfg = Config {
        seed,
        accounts: 3,
        incidents: 6_000,
        weeks: 4,
        bad_rate: 0.03,
        ..Config::default()
    };
    generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    url
}

/// Work cut into many small ranges with short leases, so that kills land mid-range and
/// leases of killed workers expire quickly.
pub(crate) const SMALL_RANGES: [&str; 6] = [
    "--workers",
    "3",
    "--range-incidents",
    "150",
    "--lease-seconds",
    "2",
];

#[sqlx::test(migrations = false)]
async fn kill_9_during_backfill_then_restart_gives_the_same_facts(pool: PgPool) {
    let url = kill_test_replica(&pool, 8).await;
    let root = scratch("crash-backfill");
    let args = SMALL_RANGES;
    let reference = root.join("reference");
    let took = run_to_end(&reference, &url, &args);

    let seed = 0x5eed_0001;
    let mut moments = Moments(seed);
    let crashed = root.join("crashed");
    let kills = kill_until_done(
        || {
            let mut once = etl(&crashed, &url, &args);
            once.arg("--once");
            once
        },
        &mut moments,
        took,
    )
    .await;
    assert!(kills >= 2, "the ETL was killed mid-run {kills} times");
    run_to_end(&crashed, &url, &args);
    assert_same(&facts(&crashed).await, &facts(&reference).await, seed);
    assert_eq!(quarantine(&crashed).await, quarantine(&reference).await);
    let _ = std::fs::remove_dir_all(&root);
}

/// Appends entries from two connections so that the lower id commits after the higher one.
pub(crate) async fn out_of_order_writer(pool: PgPool, rounds: usize, incidents: i64) -> usize {
    let mut written = 0;
    for i in 0..rounds {
        let incident = 1 + (i as i64 * 37) % incidents;
        let mut slow = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id) \
             SELECT account_id, id, 'annotate', created_at + interval '1 hour', 'user', 1, 'note', NULL FROM incidents WHERE id = $1",
        )
        .bind(incident)
        .execute(&mut *slow)
        .await
        .unwrap();
        let fast = sqlx::query(
            "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id) \
             SELECT account_id, id, 'notify', created_at + interval '2 minutes', 'service', 1, 'sms', NULL FROM incidents WHERE id = $1",
        )
        .bind(incident + 1)
        .execute(&pool)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
        slow.commit().await.unwrap();
        written += 1 + fast.rows_affected() as usize;
    }
    written
}

#[sqlx::test(migrations = false)]
async fn kill_9_while_following_out_of_order_writers_misses_nothing(pool: PgPool) {
    let cfg = Config {
        seed: 9,
        accounts: 2,
        incidents: 1_500,
        weeks: 2,
        bad_rate: 0.02,
        ..Config::default()
    };
    let url = appendable_replica(&pool, cfg).await;
    let root = scratch("crash-follow");
    let crashed = root.join("crashed");
    let follow = [
        "--poll-seconds",
        "0.2",
        "--lease-seconds",
        "2",
        "--batch-entries",
        "40",
    ];
    run_to_end(&crashed, &url, &follow);

    let before: i64 = sqlx::query_scalar("SELECT max(id) FROM incident_log_entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    let writer = tokio::spawn(out_of_order_writer(pool.clone(), 250, 1_400));
    let seed = 0x5eed_0002;
    let mut moments = Moments(seed);
    let mut kills = 0;
    while !writer.is_finished() {
        let child = etl(&crashed, &url, &follow).spawn().unwrap();
        if kill_at_random(child, moments.next_ms(400, 2_000)).await {
            kills += 1;
        }
    }
    let written = writer.await.unwrap();
    assert!(written >= 250, "{written}");
    assert!(kills >= 2, "killed {kills} times");
    run_to_end(&crashed, &url, &follow);

    let reference = root.join("reference");
    run_to_end(&reference, &url, &[]);
    let got = facts(&crashed).await;
    assert_same(&got, &facts(&reference).await, seed);
    // Every entry the writers added is in the facts: the newest entry id of each incident
    // they wrote to.
    let newest: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT incident_id, max(id) FROM incident_log_entries WHERE id > $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(before)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(newest.len() >= 250, "{}", newest.len());
    for (incident, id) in newest {
        let f = got.iter().find(|f| f.incident_id == incident).unwrap();
        assert_eq!(f.last_entry_id, id, "incident {incident}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Two `mttx etl run` processes started together on the same source, facts and state share
/// the backfill: the facts equal one process's, and the two summaries' committed ranges add
/// up to the plan (no range done twice).
#[sqlx::test(migrations = false)]
async fn two_processes_share_the_work(pool: PgPool) {
    let url = test_url(&pool).await;
    let cfg = Config {
        seed: 10,
        accounts: 2,
        incidents: 4_000,
        weeks: 3,
        bad_rate: 0.02,
        ..Config::default()
    };
    generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    let root = scratch("two-processes");
    let args = ["--once", "--workers", "2", "--range-incidents", "100"];
    let reference = root.join("reference");
    run_to_end(&reference, &url, &args[1..]);
    let shared = root.join("shared");
    let children: Vec<Child> = (0..2)
        .map(|_| {
            etl(&shared, &url, &args)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut committed = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        committed += common::committed(&String::from_utf8_lossy(&out.stdout));
    }
    assert_eq!(committed, 40, "each of the 40 ranges committed once");
    assert_same(&facts(&shared).await, &facts(&reference).await, 0);
    let _ = std::fs::remove_dir_all(&root);
}

/// `mttx reprocess` to version 2 (after version 1 was folded into `dir`).
fn reprocess(dir: &Path, url: &str, args: &[&str]) -> Command {
    mttx_on(dir, url, &["reprocess", "--metrics-version", "2"], args)
}

/// The facts of the generation `dir`'s state serves, and its metrics version.
async fn served_facts(dir: &Path) -> (Vec<Fact>, i32) {
    let state =
        mttx_state::State::open(&mttx_migrations::Location::Sqlite(dir.join("state.sqlite")))
            .await
            .unwrap();
    let served = state
        .serving(&dir.join("facts").display().to_string())
        .await
        .unwrap();
    let facts = FactsTable::open(&served.location)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    (facts, served.metrics_version.number())
}

#[sqlx::test(migrations = false)]
async fn kill_9_during_reprocess_then_resume_gives_the_same_generation(pool: PgPool) {
    let url = kill_test_replica(&pool, 9).await;
    let root = scratch("crash-reprocess");
    let args = SMALL_RANGES;
    let finish = |dir: &Path| {
        let start = std::time::Instant::now();
        let out = reprocess(dir, &url, &args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed()
    };
    let reference = root.join("reference");
    run_to_end(&reference, &url, &args);
    let took = finish(&reference);
    let (want, version) = served_facts(&reference).await;
    assert_eq!(version, 2);

    let seed = 0x5eed_0003;
    let mut moments = Moments(seed);
    let crashed = root.join("crashed");
    run_to_end(&crashed, &url, &args);
    let kills = kill_until_done(|| reprocess(&crashed, &url, &args), &mut moments, took).await;
    assert!(kills >= 2, "the reprocess was killed mid-run {kills} times");
    finish(&crashed);
    let (got, version) = served_facts(&crashed).await;
    assert_eq!(version, 2);
    assert_same(&got, &want, seed);
    let _ = std::fs::remove_dir_all(&root);
}

/// Entries keep arriving (out of id order) while a reprocess rebuilds history and an
/// `etl run` follows the log: after the switch the follower moves to the new generation,
/// and the served facts equal a reprocess made after every write.
#[sqlx::test(migrations = false)]
async fn nothing_that_arrives_during_a_reprocess_is_lost(pool: PgPool) {
    let url = test_url(&pool).await;
    let incidents = 6_000;
    let cfg = Config {
        seed: 10,
        accounts: 3,
        incidents,
        weeks: 4,
        ..Config::default()
    };
    generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    let root = scratch("reprocess-live");
    let args = ["--workers", "2", "--range-incidents", "300"];
    sqlx::query(
        "SELECT setval('incident_log_entries_id_seq', (SELECT max(id) FROM incident_log_entries))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let live = root.join("live");
    run_to_end(&live, &url, &args);
    let follower = Killed(
        etl(&live, &url, &["--poll-seconds", "0.2"])
            .spawn()
            .unwrap(),
    );
    let writer = tokio::spawn(out_of_order_writer(pool.clone(), 150, incidents as i64));
    let rebuild = {
        let (live, url) = (live.clone(), url.clone());
        tokio::task::spawn_blocking(move || reprocess(&live, &url, &args).output().unwrap())
    };
    let out = rebuild.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = writer.await.unwrap();
    assert!(written >= 150);
    // The follower moves to the new generation and reads what it has not.
    let (want, got) = {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let reference = root.join("reference");
        run_to_end(&reference, &url, &args);
        let out = reprocess(&reference, &url, &args).output().unwrap();
        assert!(out.status.success());
        (served_facts(&reference).await, served_facts(&live).await)
    };
    drop(follower);
    assert_eq!((want.1, got.1), (2, 2));
    assert_same(&got.0, &want.0, 0);
    let _ = std::fs::remove_dir_all(&root);
}

/// Following a live GoAlert database: new alerts keep arriving, each batch committing its
/// higher `alert_logs` ids before the lower ones, while the ETL is killed with SIGKILL at
/// random moments; after a last run the facts equal a fresh run's, and every row written
/// is in them.
#[sqlx::test(migrations = false)]
async fn kill_9_while_following_goalert_misses_nothing(pool: PgPool) {
    let url = test_url(&pool).await;
    let cfg = mttx_fixtures::goalert::GoalertConfig {
        alerts: 1_500,
        ..Default::default()
    };
    mttx_fixtures::goalert::generate(&pool, &cfg).await.unwrap();
    let root = scratch("crash-goalert");
    let crashed = root.join("crashed");
    let follow = [
        "--source-kind",
        "goalert",
        "--poll-seconds",
        "0.2",
        "--lease-seconds",
        "2",
        "--batch-entries",
        "40",
    ];
    run_to_end(&crashed, &url, &follow);
    let writer = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut rows = 0;
            for round in 0..30 {
                let s = mttx_fixtures::goalert::insert_alert_batch(&pool, 100 + round, 5)
                    .await
                    .unwrap();
                rows += s.log_rows;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            rows
        }
    });
    let seed = 0x5eed_0007;
    let mut moments = Moments(seed);
    let mut kills = 0;
    while !writer.is_finished() {
        let child = etl(&crashed, &url, &follow).spawn().unwrap();
        if kill_at_random(child, moments.next_ms(400, 2_000)).await {
            kills += 1;
        }
    }
    let written = writer.await.unwrap();
    assert!(written >= 150, "{written}");
    assert!(kills >= 1, "killed {kills} times");
    run_to_end(&crashed, &url, &follow);
    let reference = root.join("reference");
    run_to_end(&reference, &url, &["--source-kind", "goalert"]);
    let got = facts(&crashed).await;
    assert_eq!(got.len(), 1_650);
    assert_same(&got, &facts(&reference).await, seed);
    // The newest log row of every alert is in its facts.
    let newest: Vec<(i64, i64)> =
        sqlx::query_as("SELECT alert_id, max(id) FROM alert_logs GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (alert, id) in newest {
        let f = got.iter().find(|f| f.incident_id == alert).unwrap();
        assert_eq!(f.last_entry_id, id, "alert {alert}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

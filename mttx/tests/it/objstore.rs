//! Facts on object storage, for real: moto's S3 server and Azurite, Azure's storage emulator,
//! on loopback (scripts/ensure-objstores.sh, started by scripts/test.sh). mttx and this test
//! reach them through each store's usual environment variables (`AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`…; `AZURE_STORAGE_USE_EMULATOR`,
//! `AZURITE_BLOB_STORAGE_URL`), which scripts/test.sh exports. Each test writes under its own
//! prefix of the bucket (container) `mttx`. The facts written there are compared with a run
//! on local disk, every column of every row.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mttx_etl::Fact;
use mttx_etl::sink::delta::FactsTable;
use mttx_fixtures::Config;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::{
    Killed, appendable_replica, await_listening, committed, free_addr, get, metric,
    metrics_address, new_token_on, scratch, succeeded,
};
use crate::crash::{Moments, SMALL_RANGES, assert_same, kill_until_done, out_of_order_writer};

#[derive(Debug, Clone, Copy)]
enum Store {
    S3,
    Azure,
}

impl Store {
    /// A facts location of its own on this store: `<scheme>://mttx/<test>-<pid>-<nanos>/facts`.
    fn location(self, test: &str) -> String {
        let (scheme, variable) = match self {
            Store::S3 => ("s3", "AWS_ENDPOINT_URL"),
            Store::Azure => ("az", "AZURITE_BLOB_STORAGE_URL"),
        };
        assert!(
            std::env::var_os(variable).is_some(),
            "{variable} is not set: run the tests with scripts/test.sh, which starts moto and \
             Azurite (scripts/ensure-objstores.sh) and points the stores' variables at them"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!(
            "{scheme}://mttx/{test}-{}-{nanos}/facts",
            std::process::id()
        )
    }
}

/// `mttx <command>` in `dir` on the replica at `source`, with `facts` and `state`.
fn mttx(dir: &Path, source: &str, facts: &str, state: &str, command: &[&str]) -> Command {
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mttx"));
    cmd.args(command)
        .args(["--source", source, "--facts", facts, "--state", state])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A log file under `dir` for a process that runs on while the test goes on (a pipe nobody
/// reads would fill and stop it).
fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::File::create(dir.join(format!("{name}.log"))).unwrap()
}

/// `etl run --once` with facts and state under `dir` (the reference on local disk).
/// Runs `etl run --once` into local facts under `dir`; returns how long it took.
fn local_run(dir: &Path, source: &str, extra: &[&str]) -> std::time::Duration {
    let facts = dir.join("facts").display().to_string();
    let state = dir.join("state.sqlite").display().to_string();
    let mut args = vec!["etl", "run", "--once"];
    args.extend(extra);
    let start = std::time::Instant::now();
    succeeded(&mut mttx(dir, source, &facts, &state, &args));
    start.elapsed()
}

async fn facts(location: &str) -> Vec<Fact> {
    FactsTable::open(location)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap()
}

/// Deletes the table at `location` (the servers keep objects in memory, and run on).
async fn delete(location: &str) {
    mttx_etl::sink::delta::delete_table(location).await.unwrap();
}

/// Waits until the facts at `location` equal `want` (the ETL following there catches up),
/// for at most two minutes.
async fn await_facts(location: &str, want: &[Fact]) {
    let start = Instant::now();
    loop {
        let got = facts(location).await;
        if got == want {
            return;
        }
        if start.elapsed() > Duration::from_secs(120) {
            assert_same(&got, want, 0);
            panic!("the facts at {location} did not catch up");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A generated replica in the test's database, its id sequence set for appending: its URL.
async fn replica(pool: &PgPool, seed: u64, incidents: u64) -> String {
    let cfg = Config {
        seed,
        accounts: 2,
        incidents,
        weeks: 3,
        bad_rate: 0.02,
        ..Config::default()
    };
    appendable_replica(pool, cfg).await
}

/// Following: polls 5 times a second, 2 workers, leases of killed workers free after 3 s.
const FOLLOW: [&str; 6] = [
    "--poll-seconds",
    "0.2",
    "--workers",
    "2",
    "--lease-seconds",
    "3",
];

/// Backfill, then follow while entries are appended out of commit order, then upkeep: the
/// facts on the store equal a local run's over the same log at each step.
async fn backfill_follow_and_upkeep(pool: PgPool, store: Store) {
    let url = replica(&pool, 19, 1_500).await;
    let root = scratch(&format!("objstore-golden-{store:?}"));
    let location = store.location("golden");
    let state = root.join("state.sqlite").display().to_string();
    let follower = Killed(
        mttx(&root, &url, &location, &state, &["etl", "run"])
            .args(FOLLOW)
            .args(["--range-incidents", "300"])
            .stderr(log_file(&root, "follower"))
            .spawn()
            .unwrap(),
    );
    let reference = root.join("reference");
    local_run(&reference, &url, &[]);
    await_facts(
        &location,
        &facts(&reference.join("facts").display().to_string()).await,
    )
    .await;

    let written = out_of_order_writer(pool.clone(), 120, 1_400).await;
    assert!(written >= 120, "{written}");
    let after = root.join("after");
    local_run(&after, &url, &[]);
    let want = facts(&after.join("facts").display().to_string()).await;
    assert_ne!(
        want,
        facts(&reference.join("facts").display().to_string()).await
    );
    await_facts(&location, &want).await;
    drop(follower);

    // Upkeep on the store: compaction, checkpoint and vacuum change no fact.
    let out = succeeded(&mut mttx(
        &root,
        &url,
        &location,
        &state,
        &["etl", "upkeep", "--retain-hours", "0"],
    ));
    assert!(out.contains("checkpoint at version"), "{out}");
    assert_same(&facts(&location).await, &want, 0);
    delete(&location).await;
    let _ = std::fs::remove_dir_all(&root);
}

#[sqlx::test(migrations = false)]
async fn golden_facts_through_backfill_follow_and_upkeep_on_s3(pool: PgPool) {
    backfill_follow_and_upkeep(pool, Store::S3).await;
}

#[sqlx::test(migrations = false)]
async fn golden_facts_through_backfill_follow_and_upkeep_on_azurite(pool: PgPool) {
    backfill_follow_and_upkeep(pool, Store::Azure).await;
}

/// kill -9 at random moments of a backfill to the store, then a run to the end: the facts
/// equal an uninterrupted local run's.
async fn kill_9_during_backfill(pool: PgPool, store: Store) {
    let url = replica(&pool, 20, 3_000).await;
    let root = scratch(&format!("objstore-kill-{store:?}"));
    let reference = root.join("reference");
    // A run to the store takes longer than this local one, so kills within its first half
    // still land mid-run.
    let took = local_run(&reference, &url, &SMALL_RANGES);
    let location = store.location("kill");
    let state = root.join("state.sqlite").display().to_string();
    let seed = 0x5eed_0019;
    let kills = kill_until_done(
        || {
            let mut once = mttx(&root, &url, &location, &state, &["etl", "run", "--once"]);
            once.args(SMALL_RANGES).stdout(Stdio::null());
            once
        },
        &mut Moments(seed),
        took,
    )
    .await;
    assert!(kills >= 1, "the ETL was never killed mid-run");
    succeeded(mttx(&root, &url, &location, &state, &["etl", "run", "--once"]).args(SMALL_RANGES));
    assert_same(
        &facts(&location).await,
        &facts(&reference.join("facts").display().to_string()).await,
        seed,
    );
    delete(&location).await;
    let _ = std::fs::remove_dir_all(&root);
}

#[sqlx::test(migrations = false)]
async fn kill_9_during_a_backfill_to_s3_then_resume(pool: PgPool) {
    kill_9_during_backfill(pool, Store::S3).await;
}

#[sqlx::test(migrations = false)]
async fn kill_9_during_a_backfill_to_azurite_then_resume(pool: PgPool) {
    kill_9_during_backfill(pool, Store::Azure).await;
}

/// The objects under `prefix` of moto's bucket `mttx`: (key, ETag) pairs, sorted.
fn s3_objects(prefix: &str) -> Vec<(String, String)> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let mut objects = Vec::new();
    let mut token = String::new();
    loop {
        let path = format!("/mttx?list-type=2&prefix={prefix}/{token}");
        let (status, body) = get(addr, &path, None);
        let Value::String(xml) = body else {
            panic!("{body}")
        };
        assert_eq!(status, 200, "{xml}");
        let field = |item: &str, name: &str| {
            item.split(&format!("<{name}>"))
                .nth(1)
                .and_then(|r| r.split(&format!("</{name}>")).next())
                .map(str::to_owned)
        };
        for item in xml.split("<Contents>").skip(1) {
            objects.push((field(item, "Key").unwrap(), field(item, "ETag").unwrap()));
        }
        match field(&xml, "NextContinuationToken") {
            Some(next) => token = format!("&continuation-token={next}"),
            None => break,
        }
    }
    objects.sort();
    objects
}

/// A reprocess to metrics version 2 on S3 switches to a new generation beside the first;
/// dropping the first deletes every object of its table and touches none of the served one;
/// the served facts equal a local reprocess's.
#[sqlx::test(migrations = false)]
async fn reprocess_switch_and_drop_a_generation_on_s3(pool: PgPool) {
    let url = replica(&pool, 21, 1_500).await;
    let root = scratch("objstore-generations");
    let location = Store::S3.location("generations");
    let state = root.join("state.sqlite").display().to_string();
    let on_s3 = |args: &[&str]| succeeded(&mut mttx(&root, &url, &location, &state, args));
    on_s3(&["etl", "run", "--once"]);
    let out = on_s3(&["reprocess", "--metrics-version", "2"]);
    assert!(out.contains("now serving generation 2 (was 1)"), "{out}");
    let list = on_s3(&["generations", "list"]);
    let second = list.lines().nth(2).unwrap().split('\t').nth(4).unwrap();
    assert!(second.starts_with(&format!("{location}.v2-")), "{list}");

    let key = |location: &str| location.trim_start_matches("s3://mttx/").to_owned();
    let first_objects = s3_objects(&key(&location));
    let served_objects = s3_objects(&key(second));
    assert!(
        first_objects
            .iter()
            .any(|(k, _)| k.contains("/_delta_log/"))
            && served_objects.len() > 2,
        "{first_objects:?} {served_objects:?}"
    );
    let out = on_s3(&["generations", "drop", "--id", "1"]);
    assert!(out.contains("dropped generation 1"), "{out}");
    assert_eq!(s3_objects(&key(&location)), Vec::new(), "all of it is gone");
    assert_eq!(
        s3_objects(&key(second)),
        served_objects,
        "the served generation is untouched"
    );

    let reference = root.join("reference");
    local_run(&reference, &url, &[]);
    let local_state = reference.join("state.sqlite").display().to_string();
    succeeded(&mut mttx(
        &reference,
        &url,
        &reference.join("facts").display().to_string(),
        &local_state,
        &["reprocess", "--metrics-version", "2"],
    ));
    let local_list = succeeded(&mut mttx(
        &reference,
        &url,
        &reference.join("facts").display().to_string(),
        &local_state,
        &["generations", "list"],
    ));
    let local_second = local_list
        .lines()
        .nth(2)
        .unwrap()
        .split('\t')
        .nth(4)
        .unwrap();
    assert_same(
        &facts(second).await,
        &facts(&reference.join(local_second).display().to_string()).await,
        0,
    );
    // The ETL goes on with the served generation.
    let out = on_s3(&["etl", "run", "--once"]);
    assert!(out.contains("0 log entries read"), "{out}");
    delete(second).await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Two processes race on one S3 table (their own working folders, one PostgreSQL state):
/// every range is committed once, and the facts equal one local process's.
#[sqlx::test(migrations = false)]
async fn two_writers_racing_on_one_s3_table_commit_each_range_once(pool: PgPool) {
    let url = replica(&pool, 22, 3_000).await;
    let root = scratch("objstore-race");
    let location = Store::S3.location("race");
    let args = [
        "etl",
        "run",
        "--once",
        "--workers",
        "2",
        "--range-incidents",
        "100",
    ];
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            mttx(&root.join(name), &url, &location, &url, &args)
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        total += committed(&stdout);
    }
    assert_eq!(total, 30, "each of the 30 ranges committed once");
    let reference = root.join("reference");
    local_run(&reference, &url, &args[3..]);
    assert_same(
        &facts(&location).await,
        &facts(&reference.join("facts").display().to_string()).await,
        0,
    );
    delete(&location).await;
    let _ = std::fs::remove_dir_all(&root);
}

/// `mttx serve` in `dir` over the facts at `location`: the process and its address.
fn serve(dir: &Path, source: &str, location: &str, state: &str) -> (Killed, std::net::SocketAddr) {
    let addr = free_addr();
    let child = mttx(
        dir,
        source,
        location,
        state,
        &["serve", "--listen", &addr.to_string()],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let child = Killed(child);
    await_listening(addr, Duration::from_secs(60));
    (child, addr)
}

/// A fleet on one S3 table: two `etl run` processes, each in its own folder, share one
/// PostgreSQL state; one is killed with kill -9 mid-backfill and started again. Two `serve`
/// processes over the table give the same answers, and both serve the commits that follow
/// new entries.
#[sqlx::test(migrations = false)]
async fn a_fleet_of_etl_and_api_processes_on_one_s3_table(pool: PgPool) {
    let url = replica(&pool, 23, 3_000).await;
    let root = scratch("objstore-fleet");
    let location = Store::S3.location("fleet");
    let etl = |name: &str| {
        let mut cmd = mttx(&root.join(name), &url, &location, &url, &["etl", "run"]);
        cmd.args(FOLLOW)
            .args(["--range-incidents", "100", "--metrics-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "info");
        cmd
    };
    let mut victim = Killed(etl("a").spawn().unwrap());
    let (addr, _log) = metrics_address(&mut victim.0);
    let mut survivor = Killed(etl("b").spawn().unwrap());
    let (_, _survivor_log) = metrics_address(&mut survivor.0);
    // Killed once it has committed a range and before the plan is done.
    let start = Instant::now();
    loop {
        let done = metric(&addr, "mttx_etl_backfill_ranges_done").unwrap_or(0.0);
        let all = metric(&addr, "mttx_etl_backfill_ranges").unwrap_or(0.0);
        if done >= 1.0 {
            assert!(
                done < all,
                "the backfill ended before the kill: {done} of {all}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no range committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(victim); // SIGKILL
    let again = Killed(etl("a").stderr(log_file(&root, "a-again")).spawn().unwrap());

    let reference = root.join("reference");
    local_run(&reference, &url, &[]);
    let want = facts(&reference.join("facts").display().to_string()).await;
    await_facts(&location, &want).await;

    let token = new_token_on(&root, 1, &url);
    let (one, first) = serve(&root.join("api-1"), &url, &location, &url);
    let (two, second) = serve(&root.join("api-2"), &url, &location, &url);
    let report = "/api/v1/reports/incidents?from=2026-10-01&to=2026-11-30&group_by=team";
    let answers = || {
        [first, second].map(|addr| {
            let (status, body) = get(addr, report, Some(&token));
            assert_eq!(status, 200, "{body}");
            body
        })
    };
    let served_now = |want_version: i64| {
        let start = Instant::now();
        loop {
            let [a, b] = answers();
            if a["facts_version"].as_i64() >= Some(want_version) && a == b {
                return a;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "not both at version {want_version} or later: {a} / {b}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let before = served_now(FactsTable::open(&location).await.unwrap().version());
    assert!(
        before["groups"].as_array().is_some_and(|g| !g.is_empty()),
        "{before}"
    );

    // New entries: both ETLs follow, both servers serve the new commits.
    out_of_order_writer(pool.clone(), 60, 1_400).await;
    let after = root.join("after");
    local_run(&after, &url, &[]);
    let want = facts(&after.join("facts").display().to_string()).await;
    await_facts(&location, &want).await;
    let after = served_now(FactsTable::open(&location).await.unwrap().version());
    assert!(
        after["facts_version"].as_i64() > before["facts_version"].as_i64(),
        "{before} / {after}"
    );
    drop((survivor, again, one, two));
    delete(&location).await;
    let _ = std::fs::remove_dir_all(&root);
}

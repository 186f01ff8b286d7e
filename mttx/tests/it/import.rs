//! `mttx import pagerduty` as a user runs it, against the local PagerDuty of
//! `pagerduty/tests/it/server.rs`: killed with SIGKILL at random moments and run again until
//! it finishes, it leaves the same replica as an uninterrupted import; a second import adds
//! nothing; a missing token is a clear error.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mttx_fixtures::Config;
use mttx_fixtures::generate::generate_all;
use sqlx::Row as _;

use crate::common::{scratch, sigterm, stderr_lines};
use crate::pd_server::{TOKEN, Trouble, render, serve};

fn import(replica: &Path, api: &str, since: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mttx"));
    cmd.args(["import", "pagerduty", "--api-url", api, "--since", since])
        // A day at a time: many windows, each committed with its progress.
        .args(["--window-hours", "24"])
        .arg("--source")
        .arg(replica)
        .env("PAGERDUTY_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Every row of the replica's tables, as text, in id order.
async fn dump(replica: &Path) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", replica.display()))
        .await
        .unwrap();
    let mut out = Vec::new();
    for (table, order) in [
        ("accounts", "id"),
        ("teams", "id"),
        ("users", "id"),
        ("team_members", "team_id, user_id"),
        ("escalation_policies", "id"),
        ("services", "id"),
        ("incidents", "id"),
        ("incident_log_entries", "id"),
        ("import_ids", "kind, id"),
        ("import_quarantine", "kind, external_id, reason"),
    ] {
        // Each row as JSON text, so every column is compared whatever its type.
        let sql = format!("SELECT json_array(*) FROM (SELECT * FROM {table} ORDER BY {order})");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await;
        let rows = match rows {
            Ok(rows) => rows,
            // Older SQLite has no json_array(*): name the columns instead.
            Err(_) => {
                let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{table}')"
                )))
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
                let sql = format!(
                    "SELECT json_array({}) FROM {table} ORDER BY {order}",
                    cols.join(", ")
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        out.extend(
            rows.iter()
                .map(|r| format!("{table}: {}", r.get::<String, _>(0))),
        );
    }
    pool.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_import_then_again_leaves_the_same_replica() {
    let cfg = Config {
        seed: 9,
        accounts: 1,
        incidents: 1_500,
        weeks: 6,
        bad_rate: 0.02,
        pagerduty_share: 0.3,
        ..Config::default()
    };
    let (data, _) = generate_all(cfg.clone()).unwrap();
    let (addr, _server) = serve(render(&data), Trouble::default()).await;
    let api = format!("http://{addr}");
    let since = (cfg.start() - chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let dir = scratch("import-kill");

    let whole = dir.join("whole.sqlite");
    let out = import(&whole, &api, &since).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("new log entries"), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !String::from_utf8_lossy(&out.stderr).contains(TOKEN));

    let killed = dir.join("killed.sqlite");
    let mut moment = 0x9e37_79b9_u64;
    let mut kills = 0;
    loop {
        let mut child = import(&killed, &api, &since).spawn().unwrap();
        moment ^= moment << 13;
        moment ^= moment >> 7;
        moment ^= moment << 17;
        tokio::time::sleep(Duration::from_millis(150 + moment % 900)).await;
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "an import failed after {kills} kills");
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
        assert!(kills < 60, "never finished");
    }
    assert!(
        kills > 0,
        "the import finished before any kill: make it longer"
    );
    assert_eq!(
        dump(&killed).await,
        dump(&whole).await,
        "after {kills} kills"
    );

    // Again: nothing new.
    let out = import(&killed, &api, &since).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("0 new log entries"), "{stdout}");
    assert_eq!(dump(&killed).await, dump(&whole).await);

    // No token: says where to put one.
    let out = import(&dir.join("none.sqlite"), &api, &since)
        .env_remove("PAGERDUTY_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PAGERDUTY_TOKEN"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stop (SIGTERM, as Ctrl-C) while a request waits to be tried again ends the import at
/// once, not after the backoff (8 tries again, about a minute in all) or a rate limit's
/// wait (up to an hour). Nothing listens at the API's address here, so every request is
/// refused and waits to be tried again.
#[test]
fn a_stop_while_a_request_waits_to_be_tried_again_ends_the_import_at_once() {
    let dir = scratch("import-stop");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = format!("http://127.0.0.1:{port}");
    let mut child = import(&dir.join("replica.sqlite"), &api, "2026-01-01")
        .spawn()
        .unwrap();
    let heard = stderr_lines(&mut child);
    let mut said = Vec::new();
    // The second warning: the import is well into its backoff (tries again after 0.2 s,
    // 0.4 s, … 25.6 s).
    while said
        .iter()
        .filter(|l: &&String| l.contains("retrying"))
        .count()
        < 2
    {
        match heard.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => said.push(line),
            Err(e) => panic!("no retry warnings ({e}): {said:?}"),
        }
    }
    assert!(
        said.iter().any(|l| l.contains("Connection refused")),
        "{said:?}"
    );
    let stopped = std::time::Instant::now();
    sigterm(&child);
    let status = child.wait().unwrap();
    let took = stopped.elapsed();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    said.extend(heard.try_iter());
    assert!(status.success(), "{status:?}: {stdout}\n{said:?}");
    assert!(
        took < Duration::from_secs(5),
        "the import took {took:?} to stop: {said:?}"
    );
    assert!(
        stdout.contains("stopped on request before catching up"),
        "{stdout}"
    );
    assert!(!said.iter().any(|l| l.contains("gave up")), "{said:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

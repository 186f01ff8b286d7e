use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::PgPool;

use crate::common::{scratch, sigterm, test_url};

fn mttx(dir: &PathBuf, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(args)
        .current_dir(dir)
        .env_remove("MTTX_SOURCE")
        .env_remove("MTTX_FACTS")
        .env_remove("MTTX_STATE")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn generate_writes_the_default_replica_and_says_what_it_made() {
    let dir = scratch("default");
    let out = mttx(
        &dir,
        &["fixtures", "generate", "--incidents", "300", "--weeks", "2"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(dir.join(".mttx/replica.sqlite").exists());
    for needle in [
        "incidents 300",
        "log entries",
        "incidents with bad input",
        "entries/s",
        "size:",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
    // A second run would mix two data sets: refused, with what to do instead.
    let out = mttx(&dir, &["fixtures", "generate", "--incidents", "300"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("already holds") && stderr.contains("--replace"),
        "{stderr}"
    );
    let out = mttx(
        &dir,
        &["fixtures", "generate", "--incidents", "200", "--replace"],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("incidents 200"));
    // --facts naming a file is a bad argument: status 2, saying what to give instead.
    std::fs::write(dir.join("notes.txt"), "not a table").unwrap();
    let out = mttx(&dir, &["etl", "run", "--once", "--facts", "notes.txt"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--facts `notes.txt` is a file: give a folder"),
        "{stderr}"
    );
    // So is a store this build has not compiled in (Google Cloud Storage is opt-in).
    let out = mttx(
        &dir,
        &["etl", "run", "--once", "--facts", "gs://bucket/facts"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--features gcs"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_say_what_to_fix() {
    let dir = scratch("bad");
    for (args, needle) in [
        (
            vec!["fixtures", "generate", "--source", "mysql://db/x"],
            "PostgreSQL URL",
        ),
        (
            vec!["fixtures", "generate", "--accounts", "0"],
            "--accounts must be",
        ),
        (
            vec!["fixtures", "generate", "--until", "soon"],
            "--until `soon`",
        ),
        (
            vec!["fixtures", "generate", "--bad-rate", "0.9"],
            "--bad-rate",
        ),
        (
            vec!["report", "weekly", "--account", "1", "--week=-262143-W10"],
            "out of range",
        ),
        (
            vec!["report", "weekly", "--account", "1", "--week", "2026-W60"],
            "has no ISO week 60",
        ),
        (
            vec!["report", "weekly", "--account", "1", "--tz", "Mars/Olympus"],
            "not an IANA time zone",
        ),
        // Settings out of range, checked after parsing: the same status as clap's.
        (
            vec!["etl", "run", "--once", "--workers", "0"],
            "--workers must be between 1 and 64",
        ),
        (
            vec!["etl", "run", "--once", "--poll-seconds", "0"],
            "--poll-seconds must be",
        ),
        (
            vec!["etl", "run", "--once", "--range-incidents", "0"],
            "--range-incidents must be",
        ),
        (
            vec!["etl", "run", "--once", "--read-incidents", "0"],
            "--read-incidents must be",
        ),
        (
            vec!["etl", "run", "--once", "--batch-entries", "0"],
            "--batch-entries must be",
        ),
        (
            vec!["etl", "run", "--once", "--upkeep-minutes=-1"],
            "--upkeep-minutes must be",
        ),
        (
            vec!["etl", "upkeep", "--retain-hours=-1"],
            "--retain-hours must be",
        ),
        (
            vec![
                "reprocess",
                "--metrics-version",
                "2",
                "--lease-seconds",
                "0",
            ],
            "--lease-seconds must be",
        ),
        (
            vec!["import", "pagerduty", "--window-hours", "0"],
            "--window-hours must be",
        ),
        (
            vec!["fixtures", "goalert", "--source", "goalert.sqlite"],
            "give --source a PostgreSQL URL",
        ),
    ] {
        let out = mttx(&dir, &args);
        let (_, stderr) = text(&out);
        // A bad argument: status 2 with the fix, never a panic (101).
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: `{needle}` missing from {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A database that cannot be reached is a failure, not a usage error: status 1.
    let out = mttx(
        &dir,
        &[
            "fixtures",
            "generate",
            "--source",
            "postgres://nobody@127.0.0.1:1/none",
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // PostgreSQL's own words, said once, without sqlx's " at line N" (a line of PostgreSQL's
    // source code, not of anything the user wrote).
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let missing = format!("{}/mttx_no_such_database", url.rsplit_once('/').unwrap().0);
    let out = mttx(&dir, &["etl", "run", "--once", "--source", &missing]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert_eq!(
        said.matches("database \"mttx_no_such_database\" does not exist")
            .count(),
        1,
        "{stderr}"
    );
    assert!(!said.contains(" at line "), "{stderr}");
    // S3 without credentials: which variables to set, not only that loading them failed.
    let mut s3 = Command::new(env!("CARGO_BIN_EXE_mttx"));
    s3.args(["etl", "upkeep", "--facts", "s3://mttx/no-credentials"])
        .current_dir(&dir)
        .env("HOME", &dir)
        .env("AWS_CONFIG_FILE", dir.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("MTTX_STATE")
        .env_remove("MTTX_FACTS")
        .env("RUST_LOG", "off");
    for (var, _) in std::env::vars() {
        if var.starts_with("AWS_") && !var.ends_with("_FILE") && var != "AWS_EC2_METADATA_DISABLED"
        {
            s3.env_remove(var);
        }
    }
    let out = s3.output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_golden_set_loads_from_the_command_line() {
    let dir = scratch("golden");
    let out = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["fixtures", "golden"])
        .current_dir(&dir)
        .env("MTTX_SOURCE", "golden.sqlite")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("14 incidents, 116 log entries"), "{stdout}");
    assert!(
        dir.join("golden.sqlite").exists(),
        "MTTX_SOURCE is honoured"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Into PostgreSQL, the rows counted with SQL match what the command printed.
#[sqlx::test(migrations = false)]
async fn generate_into_postgres(pool: PgPool) {
    let url = test_url(&pool).await;
    let dir = scratch("pg");
    let out = mttx(
        &dir,
        &[
            "fixtures",
            "generate",
            "--incidents",
            "500",
            "--source",
            &url,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM incident_log_entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        stdout.contains(&format!("log entries {entries}\n")),
        "{entries} not in {stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The golden set through `mttx etl run --once` on the embedded default files: every incident
/// written, every bad input quarantined, and a second run has nothing to do.
#[test]
fn etl_run_once_folds_the_golden_set() {
    let dir = scratch("etl");
    let out = mttx(&dir, &["fixtures", "golden"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = mttx(&dir, &["etl", "run", "--once"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("116 log entries read, 14 incidents written"),
        "{stdout}"
    );
    assert!(stdout.contains("quarantined: 10"), "{stdout}");
    assert!(dir.join(".mttx/facts/_delta_log").exists());
    let out = mttx(&dir, &["etl", "run", "--once"]);
    assert!(
        text(&out).0.contains("0 log entries read"),
        "{:?}",
        text(&out)
    );
    let out = mttx(
        &dir,
        &["etl", "run", "--once", "--source", "missing.sqlite"],
    );
    assert!(text(&out).1.contains("does not exist"), "{:?}", text(&out));
    let out = mttx(&dir, &["etl", "upkeep", "--retain-hours", "0"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("upkeep of .mttx/facts: compacted")
            && stdout.contains("checkpoint at version"),
        "{stdout}"
    );
    let out = mttx(
        &dir,
        &["etl", "run", "--once", "--facts", "gs://bucket/facts"],
    );
    assert!(text(&out).1.contains("--features gcs"), "{:?}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mttx demo` on a fresh folder: makes the replica, runs the ETL, prints a token and a
/// working curl; the report it names answers for account 1. SIGTERM stops it.
#[test]
fn the_demo_serves_a_report_on_a_fresh_folder() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = scratch("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["demo", "--incidents", "600", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("mttx_"))
        .unwrap()
        .to_owned();
    let url = text
        .split('\'')
        .find(|p| p.starts_with("http://"))
        .unwrap()
        .to_owned();
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"account_id\":1"), "{answer}");
    assert!(answer.contains("\"incident_count\""), "{answer}");
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert!(
        dir.join(".mttx/replica.sqlite").exists() && dir.join(".mttx/facts/_delta_log").exists()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_create_prints_the_token_last() {
    let dir = scratch("token");
    let out = mttx(
        &dir,
        &["token", "create", "--account", "3", "--name", "wall"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let token = stdout.lines().last().unwrap();
    assert!(token.starts_with("mttx_") && token.len() == 53, "{stdout}");
    assert!(stderr.contains("account 3"), "{stderr}");
    let out = mttx(&dir, &["token", "create", "--account", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("--account must be"),
        "{:?}",
        text(&out)
    );

    // A dashboard token beside it; the list shows both, never a token.
    let out = mttx(
        &dir,
        &[
            "token",
            "create",
            "--account",
            "3",
            "--name",
            "screen",
            "--scope",
            "dashboard",
        ],
    );
    let screen = text(&out).0.lines().last().unwrap().to_owned();
    let out = mttx(&dir, &["token", "list", "--account", "3"]);
    let (list, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("id  name"), "{list}");
    assert!(
        lines[1].contains("wall") && lines[1].contains(" api ") && lines[1].contains(&token[..13]),
        "{list}"
    );
    assert!(
        lines[2].contains("screen") && lines[2].contains("dashboard"),
        "{list}"
    );
    assert!(!list.contains(token) && !list.contains(&screen), "{list}");
    let id = lines[1].split_whitespace().next().unwrap();
    says(
        &mttx(&dir, &["token", "revoke", "--id", id]),
        "revoked token",
    );
    let out = mttx(&dir, &["token", "list", "--account", "3"]);
    let revoked_line = text(&out).0.lines().nth(1).unwrap().to_owned();
    assert!(revoked_line.trim_end().ends_with("UTC"), "{revoked_line}");
    let out = mttx(&dir, &["token", "revoke", "--id", "4242"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no token 4242"), "{:?}", text(&out));
    let out = mttx(
        &dir,
        &["token", "create", "--account", "3", "--scope", "admin"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("use api or dashboard"),
        "{:?}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The command succeeded and its output says `needle`.
fn says(out: &Output, needle: &str) {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success() && stdout.contains(needle),
        "expected success and {needle:?} in:\n{stdout}\n{stderr}"
    );
}

/// The command failed and its error says `needle`.
fn fails(out: &Output, needle: &str) {
    let (stdout, stderr) = text(out);
    assert!(
        !out.status.success() && stderr.contains(needle),
        "expected failure and {needle:?} in:\n{stdout}\n{stderr}"
    );
}

/// Generations from the command line on the embedded default files: a dry run, a
/// reprocess, the list, a switch back and forth, and dropping: never the served one, nor
/// one being built without --force; once dropped a generation's table is gone and nothing
/// switches back to it; a drop interrupted after it started is finished by the next one.
#[test]
fn generations_are_listed_switched_and_dropped() {
    let dir = scratch("generations");
    for args in [&["fixtures", "golden"][..], &["etl", "run", "--once"]] {
        let out = mttx(&dir, args);
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
    }
    // The dry run: a header and one row per account and team, 15 columns each.
    let dry = |extra: &[&str]| {
        let mut args = vec!["reprocess", "--metrics-version", "2", "--dry-run"];
        args.extend(extra);
        let out = mttx(&dir, &args);
        says(&out, "would change team");
        let stdout = text(&out).0;
        let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
        assert!(
            lines[1].starts_with("account\tteam\tincidents_now"),
            "{stdout}"
        );
        let rows: Vec<Vec<String>> = lines[2..lines.len() - 1]
            .iter()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect();
        assert!(rows.iter().all(|r| r.len() == 15), "{stdout}");
        rows
    };
    let all = dry(&[]);
    assert!(all.iter().any(|r| r[0] == "2"), "{all:?}");
    let one = dry(&["--account", "1"]);
    assert!(
        !one.is_empty() && one.iter().all(|r| r[0] == "1"),
        "{one:?}"
    );
    fails(
        &mttx(
            &dir,
            &["reprocess", "--metrics-version", "2", "--account", "99"],
        ),
        "account 99 has no incidents",
    );
    says(
        &mttx(&dir, &["reprocess", "--metrics-version", "2"]),
        "now serving generation 2 (was 1)",
    );
    says(
        &mttx(&dir, &["reprocess", "--metrics-version", "2"]),
        "nothing to do",
    );

    let list = |dir: &PathBuf| {
        let out = mttx(dir, &["generations", "list"]);
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out)
            .0
            .lines()
            .skip(1)
            .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let short = |dir: &PathBuf| {
        list(dir)
            .iter()
            .map(|g| g[..4].join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(short(&dir), ["1 1 ready ", "2 2 ready yes"]);
    let second = list(&dir)[1][4].clone();
    assert!(dir.join(&second).join("_delta_log").exists(), "{second}");

    fails(
        &mttx(&dir, &["generations", "drop", "--id", "2"]),
        "is the one served",
    );
    fails(
        &mttx(&dir, &["generations", "drop", "--id", "9"]),
        "there is no generation 9",
    );

    // Back to version 1 and forth again: both tables are kept until dropped.
    says(
        &mttx(&dir, &["generations", "switch", "--previous"]),
        "now serving generation 1",
    );
    assert_eq!(short(&dir), ["1 1 ready yes", "2 2 ready "]);
    says(
        &mttx(&dir, &["generations", "switch", "--to", "2"]),
        "now serving generation 2",
    );

    let out = mttx(&dir, &["generations", "drop", "--id", "1"]);
    says(&out, "dropped generation 1");
    says(&out, "no generation to go back to");
    assert!(
        !dir.join(".mttx/facts").exists(),
        "the dropped table is deleted"
    );
    assert_eq!(short(&dir), ["2 2 ready yes"]);
    fails(
        &mttx(&dir, &["generations", "switch", "--previous"]),
        "no generation was served before",
    );
    // The served generation goes on: the ETL follows it.
    says(&mttx(&dir, &["etl", "run", "--once"]), "0 log entries read");
    assert!(dir.join(&second).join("_delta_log").exists());

    // A generation being built is dropped only with --force; a drop interrupted after it
    // started (here: started by hand, as a killed command leaves it) is listed as dropping
    // and finished by the next drop.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt
        .block_on(mttx_state::State::open(&mttx_migrations::Location::Sqlite(
            dir.join(".mttx/state.sqlite"),
        )))
        .unwrap();
    let building = rt
        .block_on(state.building(".mttx/facts", &mttx_etl::MetricsVersion::V1.into()))
        .unwrap();
    std::fs::create_dir_all(dir.join(&building.location).join("_delta_log")).unwrap();
    let id = building.id.to_string();
    fails(
        &mttx(&dir, &["generations", "drop", "--id", &id]),
        "is being built",
    );
    assert!(
        rt.block_on(state.start_drop(".mttx/facts", building.id))
            .unwrap()
    );
    assert_eq!(list(&dir)[1][2], "dropping");
    fails(
        &mttx(&dir, &["generations", "switch", "--to", &id]),
        &format!("there is no generation {id}"),
    );
    says(
        &mttx(&dir, &["generations", "drop", "--id", &id]),
        &format!("finished dropping generation {id}"),
    );
    assert!(!dir.join(&building.location).exists());
    assert_eq!(short(&dir), ["2 2 ready yes"]);

    // One account back to version 1: a generation whose versions say so.
    says(
        &mttx(
            &dir,
            &["reprocess", "--metrics-version", "1", "--account", "1"],
        ),
        "metrics version 2 (account 1: 1)",
    );
    assert_eq!(short(&dir), ["2 2 ready ", "4 2 (account 1: 1) ready yes"]);
    says(
        &mttx(
            &dir,
            &["reprocess", "--metrics-version", "1", "--account", "1"],
        ),
        "nothing to do",
    );

    // Later writes fold by each account's version however they reach a generation: by the
    // catch-up of `generations switch` and by `etl run`. An incident of account 1 moves to
    // the other escalation policy: version 2 (the previous generation) follows it, the
    // mixed generation (account 1 at version 1) keeps the policy at trigger.
    let mixed = list(&dir)[1][4].clone();
    let policy_in = |location: &str, incident: i64| {
        let facts = rt
            .block_on(async {
                mttx_etl::sink::delta::FactsTable::open(&dir.join(location).display().to_string())
                    .await
                    .unwrap()
                    .read_all()
                    .await
            })
            .unwrap();
        let f = facts.iter().find(|f| f.incident_id == incident).unwrap();
        (f.escalation_policy_id, f.metrics_version)
    };
    let replica = rt
        .block_on(sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            dir.join(".mttx/replica.sqlite").display()
        )))
        .unwrap();
    let moved = |incident: i64| {
        let (at_trigger, version) = policy_in(&mixed, incident);
        assert_eq!(version, 1);
        let other = if at_trigger == Some(1) { 2 } else { 1 };
        rt.block_on(async {
            sqlx::query("UPDATE incidents SET escalation_policy_id = ? WHERE id = ? AND account_id = 1")
                .bind(other)
                .bind(incident)
                .execute(&replica)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel) \
                 SELECT account_id, id, 'annotate', created_at, 'user', 1, 'note' FROM incidents WHERE id = ?",
            )
            .bind(incident)
            .execute(&replica)
            .await
            .unwrap();
        });
        (at_trigger, Some(other))
    };
    let (kept, followed) = moved(1);
    says(
        &mttx(&dir, &["generations", "switch", "--previous"]),
        "now serving generation 2",
    );
    assert_eq!(policy_in(&second, 1), (followed, 2));
    says(
        &mttx(&dir, &["generations", "switch", "--to", "4"]),
        "entries caught up",
    );
    assert_eq!(policy_in(&mixed, 1), (kept, 1));
    let (kept, _) = moved(2);
    says(&mttx(&dir, &["etl", "run", "--once"]), "1 log entries read");
    assert_eq!(policy_in(&mixed, 2), (kept, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A GoAlert database end to end through the binary: made by `fixtures goalert`, folded by
/// `etl run --source-kind goalert`, and the weekly report over it names the instance, its
/// services and people, counts the hand-worked alerts (fixtures/goalert/golden.md) and the
/// suppressed duplicates in its noisy alerts.
#[sqlx::test(migrations = false)]
async fn a_goalert_database_folds_and_reports_end_to_end(pool: PgPool) {
    let url = test_url(&pool).await;
    let dir = scratch("goalert");
    let run = |args: &[&str]| {
        let mut all = vec!["--source", &url, "--source-kind", "goalert"];
        all.extend_from_slice(&["--account-name", "Acme on-call"]);
        all.extend_from_slice(args);
        let out = mttx(&dir, &all);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}\n{stdout}\n{stderr}");
        stdout
    };
    let made = run(&["fixtures", "goalert", "--golden"]);
    assert!(made.contains("12 alerts"), "{made}");
    run(&["etl", "run", "--once"]);
    let json = run(&[
        "report",
        "weekly",
        "--account",
        "1",
        "--week",
        "2026-W45",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["account_name"], "Acme on-call", "{json}");
    assert_eq!(report["team_id"], serde_json::Value::Null);
    let json = report.to_string();
    // By hand (golden.md): 12 alerts, 9 acknowledged (first acks 60 … 1200 s, median
    // 360 s), 10 closed.
    for needle in [
        "\"incident_count\":12",
        "\"acknowledged_count\":9",
        "\"resolved_count\":10",
        "checkout-api",
        "Alice Archer",
    ] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
    assert!(
        json.contains("\"repeat_count\":2") || json.contains("\"repeat_count\":3"),
        "suppressed duplicates in the noisy alerts: {json}"
    );
    // A contract replica read as GoAlert is refused with the fix.
    let contract = dir.join("replica.sqlite");
    let out = mttx(
        &dir,
        &[
            "--source-kind",
            "goalert",
            "--source",
            contract.to_str().unwrap(),
            "etl",
            "run",
            "--once",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).1.contains("PostgreSQL"), "{}", text(&out).1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Logs an operator can live with: a fresh table and a MERGE log no ERROR or WARN, no
/// colour codes when stderr is not a terminal, `--log-format json` writes one JSON object
/// a line, and a served request's lines carry its request id, which the answer says back.
#[test]
fn logs_are_quiet_plain_or_json_and_carry_request_ids() {
    use std::io::{Read as _, Write as _};
    let dir = scratch("logs");
    says(
        &mttx(&dir, &["fixtures", "golden"]),
        "loaded the golden set",
    );
    // As an operator runs it: the default log filter (no RUST_LOG).
    let logged = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(args)
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .env_remove("MTTX_LOG_FORMAT")
            .output()
            .unwrap()
    };
    let out = logged(&["etl", "run", "--once"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for bad in ["ERROR", "WARN", "\u{1b}["] {
        assert!(
            !stderr.contains(bad),
            "`{bad:?}` in a fresh run's log:\n{stderr}"
        );
    }
    // A MERGE: one more entry, folded into the table.
    let db = dir.join(".mttx/replica.sqlite");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("INSERT INTO incident_log_entries (account_id, incident_id, type, created_at, agent_type, agent_id, channel, user_id) VALUES (1, 6, 'acknowledge', '2026-10-26T09:20:00Z', 'user', 3, 'push', 3)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let out = logged(&["etl", "run", "--once", "--log-format", "json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The MERGE happened: the new entry folded into its incident's row.
    assert!(stdout.contains("1 incidents written"), "{stdout}");
    assert!(
        !stderr.contains("\"WARN\"") && !stderr.contains("\"ERROR\""),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "{stderr}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }

    // A request's log lines carry its id; the answer says it back.
    let token = text(&mttx(&dir, &["token", "create", "--account", "1"]))
        .0
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let addr = crate::common::free_addr();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["serve", "--listen", &addr.to_string()])
        .current_dir(&dir)
        .env("RUST_LOG", "info,tower_http=debug")
        .stderr(log)
        .spawn()
        .unwrap();
    crate::common::await_listening(addr, std::time::Duration::from_secs(30));
    let ask = |extra: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /api/v1/reports/incidents?from=2026-10-26&to=2026-11-02 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer.to_ascii_lowercase()
    };
    let mine = ask("X-Request-Id: ops-ticket-4711\r\n");
    assert!(mine.starts_with("http/1.1 200"), "{mine}");
    assert!(mine.contains("x-request-id: ops-ticket-4711"), "{mine}");
    let made = ask("");
    let id = made
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(id.len() > 10, "{made}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    sigterm(&server);
    assert!(server.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(log.contains("id=ops-ticket-4711"), "{log}");
    assert!(log.contains(&format!("id={id}")), "{log}");
    assert!(!log.contains("\u{1b}["), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mttx completions SHELL` prints a script its shell accepts. Bash's, sourced, completes
/// the commands after `mttx ` and a command's flags (`etl run --wo` → `--workers`); zsh's
/// and fish's pass their shell's syntax check and name every command.
#[test]
fn completion_scripts_complete_commands_and_flags() {
    let dir = scratch("completions");
    let script = |shell: &str| {
        let out = mttx(&dir, &["completions", shell]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{shell}: {stderr}");
        let file = dir.join(format!("mttx.{shell}"));
        std::fs::write(&file, &stdout).unwrap();
        (file, stdout)
    };
    let (bash, _) = script("bash");
    let asked = r#"source "$1"
f=$(complete -p mttx | grep -oE -- '-F [^ ]+' | cut -d' ' -f2)
COMP_WORDS=(mttx ""); COMP_CWORD=1; COMP_LINE="mttx "; COMP_POINT=5
"$f" mttx "" mttx; echo "${COMPREPLY[*]}"
COMP_WORDS=(mttx etl run --wo); COMP_CWORD=3; COMP_LINE="mttx etl run --wo"; COMP_POINT=17
"$f" mttx --wo run; echo "${COMPREPLY[*]}""#;
    let out = Command::new("bash")
        .args(["-c", asked, "bash"])
        .arg(&bash)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}\n{stderr}");
    let commands: Vec<&str> = lines[0].split_whitespace().collect();
    for c in [
        "etl",
        "serve",
        "report",
        "token",
        "reprocess",
        "completions",
    ] {
        assert!(
            commands.contains(&c),
            "`mttx ` does not offer {c}: {stdout}"
        );
    }
    assert!(
        lines[1].split_whitespace().any(|w| w == "--workers"),
        "`mttx etl run --wo` does not offer --workers: {stdout}"
    );

    for (shell, check) in [("zsh", vec!["-n"]), ("fish", vec!["--no-execute"])] {
        let (file, text_) = script(shell);
        for c in ["etl", "serve", "reprocess", "generations"] {
            assert!(text_.contains(c), "{shell}'s script never names {c}");
        }
        let out = Command::new(shell).args(&check).arg(&file).output();
        let out = out.unwrap_or_else(|e| {
            panic!("{shell} not found ({e}): scripts/ensure-packages.sh installs it")
        });
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "{shell} refuses the script: {stdout}\n{stderr}"
        );
    }
}

/// `--config FILE` (or MTTX_CONFIG) gives every command's settings; the environment
/// overrides the file and a flag overrides both; `config show` says which gave each. A key
/// that names no setting is refused with its name, exit status 2.
#[test]
fn a_configuration_file_gives_settings_under_the_environment_and_flags() {
    let dir = scratch("config");
    std::fs::write(
        dir.join("mttx.toml"),
        "facts = \"./elsewhere\"\n[serve]\ncache_mib = 64\nlisten = \"127.0.0.1:9999\"\n",
    )
    .unwrap();
    let show = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mttx"));
        c.current_dir(&dir)
            .env_remove("MTTX_CACHE_MIB")
            .env_remove("MTTX_CONFIG")
            .env_remove("MTTX_FACTS");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.args(args).output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        stdout
    };
    let file = show(&[], &["--config", "mttx.toml", "config", "show", "serve"]);
    assert!(file.contains("serve.cache_mib = \"64\"  # file"), "{file}");
    assert!(
        file.contains("serve.listen = \"127.0.0.1:9999\"  # file"),
        "{file}"
    );
    assert!(file.contains("facts = \"./elsewhere\"  # file"), "{file}");
    let env = show(
        &[("MTTX_CONFIG", "mttx.toml"), ("MTTX_CACHE_MIB", "128")],
        &["config", "show", "serve"],
    );
    assert!(
        env.contains("serve.cache_mib = \"128\"  # environment MTTX_CACHE_MIB"),
        "{env}"
    );
    assert!(env.contains("facts = \"./elsewhere\"  # file"), "{env}");
    let flag = show(
        &[("MTTX_CONFIG", "mttx.toml"), ("MTTX_CACHE_MIB", "128")],
        &["config", "show", "serve", "--cache-mib", "32"],
    );
    assert!(flag.contains("serve.cache_mib = \"32\"  # flag"), "{flag}");
    // The shipped example works as it is.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mttx.example.toml");
    let shown = show(
        &[],
        &[
            "--config",
            example.to_str().unwrap(),
            "config",
            "show",
            "etl",
            "run",
        ],
    );
    assert!(shown.contains("etl.run.workers = \"3\"  # file"), "{shown}");

    std::fs::write(dir.join("bad.toml"), "[serve]\ncache_mb = 64\n").unwrap();
    let out = mttx(&dir, &["--config", "bad.toml", "serve"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("[serve] cache_mb"),
        "{stderr}"
    );
}

/// A backfill's threads stay within its cap however many files its flushes write at once:
/// the runtime's workers (one a core) and 8 + 4 per backfill worker of the blocking pool,
/// with the default number of backfill workers. Without the cap this run reached 29–56 tokio
/// threads. Counted from /proc while it runs.
#[cfg(target_os = "linux")]
#[sqlx::test(migrations = false)]
async fn a_backfill_keeps_its_threads_within_the_cap(pool: PgPool) {
    let url = test_url(&pool).await;
    let dir = scratch("threads");
    let generate = [
        "fixtures",
        "generate",
        "--incidents",
        "12000",
        "--accounts",
        "60",
        "--weeks",
        "26",
        "--source",
        &url,
    ];
    let out = mttx(&dir, &generate);
    assert!(out.status.success(), "{:?}", text(&out));
    let mut run = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["etl", "run", "--once", "--range-incidents", "200"])
        .args([
            "--source",
            &url,
            "--facts",
            "facts",
            "--state",
            "state.sqlite",
        ])
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .env_remove("TOKIO_WORKER_THREADS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tasks = PathBuf::from(format!("/proc/{}/task", run.id()));
    let mut most = 0;
    while run.try_wait().unwrap().is_none() {
        let tokio = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .filter(|name| name.starts_with("tokio-"))
            .count();
        most = most.max(tokio);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = run.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("incidents written"), "{stdout}");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(most > 0, "no thread of the run seen");
    let blocking = 8 + 4 * mttx_etl::backfill::WORKERS;
    assert!(
        most <= cores + blocking,
        "{most} tokio threads, more than {cores} workers and {blocking} blocking"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

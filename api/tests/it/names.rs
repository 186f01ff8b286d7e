//! Names beside ids: the report's groups and account, the drilldown and one incident, the
//! noisy view and the dashboard's CSV files carry the names the replica holds (read here
//! with SQL from the replica, not through the server's code), and a rename shows in the next
//! answer without a reprocess or a new facts version.

use std::time::Duration;

use axum::Router;
use mttx_api::App;
use mttx_fixtures::{golden, load_dataset};
use mttx_migrations::Location;
use mttx_replica::Source;
use serde_json::Value;
use sqlx::SqlitePool;

use crate::common::{folded, oneshot, oneshot_json, scratch};

const WEEK: &str = "from=2026-10-26&to=2026-11-02&tz=Europe/Berlin";

/// The name the replica holds for `id` in `table`.
async fn name_in(db: &SqlitePool, table: &str, id: i64) -> String {
    let sql = match table {
        "teams" => "SELECT name FROM teams WHERE id = ?",
        "services" => "SELECT name FROM services WHERE id = ?",
        "escalation_policies" => "SELECT name FROM escalation_policies WHERE id = ?",
        "users" => "SELECT name FROM users WHERE id = ?",
        "accounts" => "SELECT name FROM accounts WHERE id = ?",
        _ => unreachable!("{table}"),
    };
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The id in a JSON value or a string key.
fn id(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{v} is no id"))
}

struct Served {
    router: Router,
    one: String,
    db: SqlitePool,
    dir: std::path::PathBuf,
}

/// The golden set served with names read for every answer (no names TTL), and a writable
/// connection to its replica.
async fn served(name: &str) -> Served {
    let dir = scratch(name);
    let path = dir.join("replica.sqlite");
    let replica = Location::Sqlite(path.clone());
    load_dataset(&golden::dataset().unwrap(), &replica, false)
        .await
        .unwrap();
    let (facts, state) = folded(&dir, &replica).await;
    let one = state.create_token(1, "test", None).await.unwrap();
    let app = App::open(
        &facts,
        state,
        Some(Source::open(&replica, 2).await.unwrap()),
        mttx_api::AppOptions {
            names_ttl: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let db = SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    Served {
        router: mttx_api::app(app),
        one,
        db,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_name_what_their_ids_stand_for() {
    let Served {
        router,
        one,
        db,
        dir,
    } = served("api-names").await;
    let get = async |path: String| {
        let (status, body) = oneshot_json(&router, &path, Some(&one)).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    };

    // Report groups: each id's name as the replica holds it; the account's name.
    for (group_by, table) in [
        ("team", "teams"),
        ("service", "services"),
        ("escalation_policy", "escalation_policies"),
        ("responder", "users"),
    ] {
        let r = get(format!(
            "/api/v1/reports/incidents?{WEEK}&group_by={group_by}"
        ))
        .await;
        assert_eq!(r["account_name"], name_in(&db, "accounts", 1).await);
        let groups = r["groups"].as_array().unwrap();
        assert!(groups.iter().any(|g| g["key"].is_string()), "{group_by}");
        for g in groups.iter().filter(|g| g["key"].is_string()) {
            assert_eq!(
                g["name"],
                name_in(&db, table, id(&g["key"])).await,
                "{group_by} {}",
                g["key"]
            );
        }
    }
    // Urgencies are their own names.
    let r = get(format!("/api/v1/reports/incidents?{WEEK}&group_by=urgency")).await;
    assert!(r["groups"][0].get("name").is_none(), "{r}");

    // The drilldown: every incident's service, team, policy and acknowledgers by name.
    let drill =
        get("/api/v1/incidents?from=2026-01-01&to=2026-12-31&tz=UTC&limit=500".into()).await;
    let incidents = drill["incidents"].as_array().unwrap();
    assert_eq!(
        incidents.len(),
        10,
        "the golden account has 10 incidents: {drill}"
    );
    let mut acked = 0;
    for f in incidents {
        assert_eq!(
            f["service_name"],
            name_in(&db, "services", id(&f["service_id"])).await
        );
        if !f["team_id"].is_null() {
            assert_eq!(
                f["team_name"],
                name_in(&db, "teams", id(&f["team_id"])).await
            );
        }
        if !f["escalation_policy_id"].is_null() {
            assert_eq!(
                f["escalation_policy_name"],
                name_in(&db, "escalation_policies", id(&f["escalation_policy_id"])).await
            );
        }
        let ids = f["acknowledged_user_ids"].as_array().unwrap();
        let names = f["acknowledged_user_names"].as_array().unwrap();
        assert_eq!(ids.len(), names.len());
        for (u, n) in ids.iter().zip(names) {
            assert_eq!(*n, name_in(&db, "users", id(u)).await);
            acked += 1;
        }
    }
    assert!(acked > 0);
    // One incident.
    let first = &incidents[0];
    let detail = get(format!("/api/v1/incidents/{}", first["incident_id"])).await;
    assert_eq!(detail["facts"]["service_name"], first["service_name"]);
    assert_eq!(detail["facts"]["incident_id"], first["incident_id"]);

    // The noisy view: its services by name.
    let noisy = get(format!("/api/v1/reports/noisy?{WEEK}")).await;
    let services = noisy["services"].as_array().unwrap();
    assert!(!services.is_empty(), "{noisy}");
    for s in services {
        assert_eq!(s["name"], name_in(&db, "services", id(&s["key"])).await);
        for (sid, n) in s["service_ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(s["service_names"].as_array().unwrap())
        {
            assert_eq!(*n, name_in(&db, "services", id(sid)).await);
        }
    }

    // The dashboard's CSV files: a name column beside each id column.
    let csv = async |path: String| {
        let (status, _, body) = oneshot(&router, &path, Some(&one)).await;
        assert_eq!(status, 200, "{path}: {body}");
        let mut r = csv::Reader::from_reader(body.as_bytes());
        let head: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (head, rows)
    };
    for (table, names, extra) in [
        ("teams", "teams", ""),
        ("services", "services", "&team=1"),
        ("responders", "users", "&team=1"),
    ] {
        let (head, rows) = csv(format!(
            "/dashboard/table.csv?week=2026-W44&tz=Europe/Berlin&table={table}{extra}"
        ))
        .await;
        assert_eq!(&head[..2], ["key", "name"]);
        assert!(!rows.is_empty(), "{table}");
        for r in rows.iter().filter(|r| !r[0].is_empty()) {
            assert_eq!(r[1], name_in(&db, names, r[0].parse().unwrap()).await);
        }
    }
    let (head, rows) = csv(format!("/dashboard/incidents.csv?{WEEK}")).await;
    let at = |h: &str| head.iter().position(|x| x == h).unwrap();
    assert_eq!(at("service_name"), at("service_id") + 1);
    assert_eq!(at("team_name"), at("team_id") + 1);
    assert!(!rows.is_empty());
    for r in &rows {
        let service: i64 = r[at("service_id")].parse().unwrap();
        assert_eq!(
            r[at("service_name")],
            name_in(&db, "services", service).await
        );
        if let Ok(team) = r[at("team_id")].parse() {
            assert_eq!(r[at("team_name")], name_in(&db, "teams", team).await);
        }
        let p: i64 = r[at("escalation_policy_id")].parse().unwrap();
        assert_eq!(
            r[at("escalation_policy_name")],
            name_in(&db, "escalation_policies", p).await
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_shows_without_a_reprocess() {
    let Served {
        router,
        one,
        db,
        dir,
    } = served("api-rename").await;
    let path = format!("/api/v1/reports/incidents?{WEEK}&group_by=team");
    let ask = async || {
        let (status, headers, body) = oneshot(&router, &path, Some(&one)).await;
        assert_eq!(status, 200, "{body}");
        let cache = headers
            .iter()
            .find(|(k, _)| k == "x-mttx-cache")
            .map(|(_, v)| v.clone())
            .unwrap();
        let body: Value = serde_json::from_str(&body).unwrap();
        (cache, body)
    };
    let team_name = |body: &Value| {
        body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == "1")
            .unwrap()["name"]
            .clone()
    };
    let (_, before) = ask().await;
    let (cache, again) = ask().await;
    assert_eq!(
        cache, "hit",
        "the same question of the same names is cached"
    );
    assert_eq!(team_name(&again), name_in(&db, "teams", 1).await);

    sqlx::query("UPDATE teams SET name = 'Payments & Billing' WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    let (cache, after) = ask().await;
    assert_eq!(cache, "miss", "a rename is a new answer");
    assert_eq!(team_name(&after), name_in(&db, "teams", 1).await);
    assert_eq!(team_name(&after), "Payments & Billing");
    // Same facts, same numbers: nothing was reprocessed.
    assert_eq!(after["facts_version"], before["facts_version"]);
    assert_eq!(after["generation"], before["generation"]);
    assert_eq!(after["total"], before["total"]);

    // The drilldown and the account's name follow as well.
    sqlx::query("UPDATE accounts SET name = 'Golden Renamed' WHERE id = 1")
        .execute(&db)
        .await
        .unwrap();
    let (_, after) = ask().await;
    assert_eq!(after["account_name"], "Golden Renamed");
    let (status, drill) = oneshot_json(
        &router,
        &format!("/api/v1/incidents?{WEEK}&team=1"),
        Some(&one),
    )
    .await;
    assert_eq!(status, 200);
    for f in drill["incidents"].as_array().unwrap() {
        assert_eq!(f["team_name"], "Payments & Billing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! The dashboard in headless Chromium names what its ids stand for, as the replica holds
//! them now (read here with SQL): a team's page shows the team's and its services' names,
//! a rename in the replica shows on the next load without a reprocess, and a page asked
//! without a time zone is in the account's own.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::browser::{browser, chromedriver, js, sign_in, text_of, wait_for};
use crate::common::get;
use crate::dashboard::{FROM, Served, TO, TZ, WEEK, generated_server_with};

/// The name the replica holds for `id` in `table`.
async fn name_in(pool: &PgPool, table: &str, id: i64) -> String {
    let sql = match table {
        "teams" => "SELECT name FROM teams WHERE id = $1",
        "services" => "SELECT name FROM services WHERE id = $1",
        "accounts" => "SELECT name FROM accounts WHERE id = $1",
        _ => unreachable!("{table}"),
    };
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_shows_names_and_renames_without_a_reprocess(pool: PgPool) {
    let Served { addr, one, dir, .. } = generated_server_with(
        &pool,
        mttx_api::AppOptions {
            names_ttl: Duration::ZERO,
            ..Default::default()
        },
    )
    .await;
    let base = format!("http://{addr}");
    let by_team = {
        let one = one.clone();
        let path = format!("/api/v1/reports/incidents?from={FROM}&to={TO}&tz={TZ}&group_by=team");
        let (status, body) = tokio::task::spawn_blocking(move || get(addr, &path, Some(&one)))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        body
    };
    let team: i64 = by_team["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["key"].is_string())
        .max_by_key(|g| g["metrics"]["incident_count"]["value"].as_f64().unwrap() as i64)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let team_name = name_in(&pool, "teams", team).await;
    let account_name = name_in(&pool, "accounts", 1).await;

    let driver = chromedriver();
    let c = browser(&driver).await;
    sign_in(&c, &base, &one).await;
    let team_page = format!("{base}/dashboard?week={WEEK}&tz={TZ}&team={team}");
    c.goto(&team_page).await.unwrap();
    wait_for(&c, "#services").await;

    // The heading, the page title, the team picker and the account in the header.
    assert_eq!(
        text_of(&c, "main h1").await,
        format!("{team_name} — week {WEEK}")
    );
    assert!(
        c.title().await.unwrap().starts_with(&team_name),
        "{}",
        c.title().await.unwrap()
    );
    assert_eq!(
        js(
            &c,
            "const s = document.getElementById('team'); return s.options[s.selectedIndex].textContent"
        )
        .await,
        json!(team_name)
    );
    assert_eq!(text_of(&c, "header.top .note").await, account_name);

    // Each service row by its name, its id kept in data-key.
    let shown = js(
        &c,
        "return [...document.querySelectorAll('#services tbody tr[data-key]:not([data-key=\"\"])')].map(r => [r.dataset.key, r.querySelector('th').textContent])",
    )
    .await;
    let shown = shown.as_array().unwrap();
    assert!(!shown.is_empty());
    for row in shown {
        let id: i64 = row[0].as_str().unwrap().parse().unwrap();
        assert_eq!(row[1], json!(name_in(&pool, "services", id).await), "{row}");
    }

    // Rename the team in the replica; the next load shows it, with no reprocess.
    let renamed = format!("{team_name} (renamed)");
    sqlx::query("UPDATE teams SET name = $1 WHERE id = $2")
        .bind(&renamed)
        .bind(team)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(name_in(&pool, "teams", team).await, renamed);
    c.goto(&team_page).await.unwrap();
    wait_for(&c, "#services").await;
    assert_eq!(
        text_of(&c, "main h1").await,
        format!("{renamed} — week {WEEK}")
    );
    // The incidents behind the numbers name it too.
    c.goto(&format!(
        "{base}/dashboard/incidents?from={FROM}&to={TO}&tz={TZ}&team={team}"
    ))
    .await
    .unwrap();
    wait_for(&c, "#incidents").await;
    assert_eq!(
        text_of(&c, "main h1").await,
        format!("Incidents: {renamed}")
    );
    let teams_shown = js(
        &c,
        "return [...new Set([...document.querySelectorAll('#incidents td[data-team]')].map(td => td.textContent))]",
    )
    .await;
    assert_eq!(teams_shown, json!([renamed]));

    // Without a time zone, the page is in the account's own (as the replica holds it).
    let zone: String = sqlx::query_scalar("SELECT time_zone FROM accounts WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    c.goto(&format!("{base}/dashboard?week={WEEK}"))
        .await
        .unwrap();
    wait_for(&c, "#teams").await;
    assert_eq!(
        text_of(&c, "main h1").await,
        format!("{account_name} overview — week {WEEK}")
    );
    assert!(
        text_of(&c, "main p.note")
            .await
            .contains(&format!("(exclusive) in {zone},")),
        "the page says the account's zone {zone}"
    );
    assert_eq!(
        js(&c, "return document.getElementById('tz').value").await,
        Value::String(zone.clone())
    );
    // The teams table names every team.
    let teams = js(
        &c,
        "return [...document.querySelectorAll('#teams tbody tr[data-key]:not([data-key=\"\"])')].map(r => [r.dataset.key, r.querySelector('th').textContent])",
    )
    .await;
    for row in teams.as_array().unwrap() {
        let id: i64 = row[0].as_str().unwrap().parse().unwrap();
        assert_eq!(row[1], json!(name_in(&pool, "teams", id).await), "{row}");
    }

    c.close().await.unwrap();
    let _ = std::fs::remove_file(dir.join("state.sqlite"));
    let _ = std::fs::remove_dir_all(dir.join("facts"));
}

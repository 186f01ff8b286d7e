//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromedriver`),
//! served by a real server over facts the ETL made from a generated replica in PostgreSQL:
//! the numbers it shows are the report API's, a number leads to its incidents and an
//! incident to its timeline, the keyboard reaches everything with a visible focus, every
//! control has a label, and the empty and error states say what to do.

use std::net::SocketAddr;
use std::path::PathBuf;

use fantoccini::{Client, Locator};
use mttx_api::{App, serve};
use mttx_fixtures::{Config, generate_into};
use mttx_migrations::Location;
use mttx_replica::Source;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::browser::{
    browser, chromedriver, js, save, sign_in, sign_out, submit_token, tab, text_of, wait_for,
};
use crate::common::{folded, get, request, scratch, test_url};

pub(crate) const WEEK: &str = "2026-W46";
pub(crate) const FROM: &str = "2026-11-09";
pub(crate) const TO: &str = "2026-11-16";
pub(crate) const TZ: &str = "Europe/Berlin";

/// Seconds as the dashboard shows them (written here from the design, not taken from the
/// server's code): 45s, 12m 05s, 3h 20m, 2d 4h.
fn duration(v: f64) -> String {
    let s = v.round() as i64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h {:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
    }
}

fn shown(metric: &str, v: &Value) -> String {
    let Some(v) = v.as_f64() else {
        return "–".to_owned();
    };
    if metric.starts_with("mtt") {
        duration(v)
    } else if metric.ends_with("_rate") {
        format!("{:.1}%", v * 100.0)
    } else {
        format!("{v:.0}")
    }
}

fn same_number(shown: Option<String>, api: &Value) -> bool {
    match (shown.as_deref().filter(|s| !s.is_empty()), api.as_f64()) {
        (None, None) => true,
        (Some(s), Some(a)) => s
            .parse::<f64>()
            .is_ok_and(|s| (s - a).abs() <= 1e-9 * a.abs().max(1.0)),
        _ => false,
    }
}

/// `[key, shown incident count]` of every keyed row of a breakdown table.
async fn counts_shown(c: &Client, table: &str) -> Value {
    js(
        c,
        &format!(
            "return [...document.querySelectorAll('#{table} tbody tr[data-key]:not([data-key=\"\"])')].map(r => [r.dataset.key, r.querySelector(\"a[data-metric='incident_count']\").textContent])"
        ),
    )
    .await
}

/// The same from the API's groups.
fn counts_of(groups: &Value) -> Value {
    groups
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["key"].is_string())
        .map(|g| {
            json!([
                g["key"],
                shown("incident_count", &g["metrics"]["incident_count"]["value"])
            ])
        })
        .collect()
}

pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    pub(crate) one: String,
    pub(crate) empty: String,
    pub(crate) expired: String,
    pub(crate) dir: PathBuf,
}

async fn generated_server(pool: &PgPool) -> Served {
    generated_server_with(pool, mttx_api::AppOptions::default()).await
}

/// A server over a generated replica in `pool`'s database, with tokens of account 1
/// (`one`, `expired`) and of an account without incidents (`empty`).
pub(crate) async fn generated_server_with(pool: &PgPool, options: mttx_api::AppOptions) -> Served {
    let url = test_url(pool).await;
    let replica: Location = url.parse().unwrap();
    let cfg = Config {
        seed: 46,
        accounts: 2,
        incidents: 3_000,
        weeks: 6,
        ..Config::default()
    };
    generate_into(cfg, &replica, false).await.unwrap();
    let dir = scratch("dashboard");
    let (facts, state) = folded(&dir, &replica).await;
    let one = state.create_token(1, "lead", None).await.unwrap();
    let empty = state.create_token(99, "new account", None).await.unwrap();
    let expired = state.create_token(1, "old", Some(0)).await.unwrap();
    let app = App::open(
        &facts,
        state,
        Some(Source::open(&replica, 2).await.unwrap()),
        options,
    )
    .await
    .unwrap();
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), mttx_api::app(app))
        .await
        .unwrap();
    Served {
        addr,
        one,
        empty,
        expired,
        dir,
    }
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_shows_the_api_numbers_in_chromium(pool: PgPool) {
    let Served {
        addr,
        one,
        empty,
        expired,
        dir,
    } = generated_server(&pool).await;
    let base = format!("http://{addr}");
    let api = {
        let one = one.clone();
        move |path: String| {
            let one = one.clone();
            async move {
                let (status, body) =
                    tokio::task::spawn_blocking(move || get(addr, &path, Some(&one)))
                        .await
                        .unwrap();
                assert_eq!(status, 200, "{body}");
                body
            }
        }
    };
    let period = format!("from={FROM}&to={TO}&tz={TZ}");
    let by_team = api(format!("/api/v1/reports/incidents?{period}&group_by=team")).await;
    // The team with the most incidents this week.
    let team_row = by_team["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["key"].is_string())
        .max_by_key(|g| g["metrics"]["incident_count"]["value"].as_f64().unwrap() as i64)
        .unwrap()
        .clone();
    let team = team_row["key"].as_str().unwrap().to_owned();

    let driver = chromedriver();
    let c = browser(&driver).await;

    // Not signed in: the dashboard sends to the sign-in page, which comes back after.
    let team_page = format!("{base}/dashboard?week={WEEK}&tz={TZ}&team={team}");
    c.goto(&team_page).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");
    assert_eq!(
        js(
            &c,
            "return document.getElementById('token').labels[0].textContent"
        )
        .await,
        json!("API token")
    );
    submit_token(&c, &one).await;
    let here = c.current_url().await.unwrap();
    assert_eq!(here.path(), "/dashboard");
    // How current the facts are: the created time of the replica's last entry (the
    // generator's ids have no holes, so none is awaited), in the answer and on the page.
    let (last, holes): (chrono::DateTime<chrono::Utc>, i64) = sqlx::query_as(
        "SELECT (SELECT created_at FROM incident_log_entries ORDER BY id DESC LIMIT 1), \
           max(id) - count(*) FROM incident_log_entries",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(holes, 0);
    let stated: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(by_team["data_as_of"].clone()).unwrap();
    assert_eq!(stated, last);
    let header = text_of(&c, "#data-as-of").await;
    assert!(
        header.starts_with("Data as of ") && header.ends_with(" ago"),
        "{header}"
    );
    assert!(
        here.query().unwrap().contains(&format!("team={team}")),
        "{here}"
    );

    // Every card: this week, last week and the company norm are the API's numbers, as
    // numbers (data-value) and as shown; the arrow's colour knows lower is better.
    let cards = c.find_all(Locator::Css("li.card")).await.unwrap();
    assert_eq!(cards.len(), 9);
    for card in &cards {
        let metric = card.attr("data-metric").await.unwrap().unwrap();
        let want = &team_row["metrics"][&metric];
        for (class, field) in [
            ("this", "value"),
            ("previous", "previous"),
            ("norm", "norm"),
        ] {
            let a = card
                .find(Locator::Css(&format!("a.{class}")))
                .await
                .unwrap();
            let value = a.attr("data-value").await.unwrap();
            assert!(
                same_number(value.clone(), &want[field]),
                "{metric} {field}: shows {value:?}, the API says {}",
                want[field]
            );
            assert_eq!(
                a.text().await.unwrap(),
                shown(&metric, &want[field]),
                "{metric} {field}"
            );
        }
        let judged = card
            .find(Locator::Css("p.better, p.worse, p.same"))
            .await
            .unwrap();
        // Arrows and colours only where the API's verdict is better or worse; within noise
        // or not enough data in words; a count or rate (no verdict) plain.
        let class = judged.attr("class").await.unwrap().unwrap();
        let verdict = want["verdict"].as_str();
        let expected = match verdict {
            Some("better") => "better",
            Some("worse") => "worse",
            _ => "same",
        };
        assert_eq!(class, expected, "{metric}: verdict {verdict:?}");
        let words = judged.text().await.unwrap();
        let arrow = words.contains('▲') || words.contains('▼');
        assert_eq!(arrow, expected != "same", "{metric}: {words}");
        match verdict {
            Some("no_clear_change") => assert!(words.contains("within noise"), "{words}"),
            Some("insufficient_data") => assert!(words.contains("not enough data"), "{words}"),
            _ => {}
        }
        if expected != "same" {
            let colour = judged.css_value("color").await.unwrap();
            let want_colour = if expected == "better" {
                "19, 115, 51"
            } else {
                "179, 38, 30"
            };
            assert!(colour.contains(want_colour), "{metric}: {colour}");
        }
    }

    // The 12-week trend: 12 bars per chart, each labelled with the API's week.
    let trend = api(format!(
        "/api/v1/reports/incidents?from=2026-08-24&to={TO}&tz={TZ}&team={team}&unit=week"
    ))
    .await;
    let bars = c
        .find_all(Locator::Css("figure[data-metric='incident_count'] svg a"))
        .await
        .unwrap();
    let buckets = trend["buckets"].as_array().unwrap();
    assert_eq!(bars.len(), 12);
    assert_eq!(buckets.len(), 12);
    for (bar, b) in bars.iter().zip(buckets) {
        let label = bar.attr("aria-label").await.unwrap().unwrap();
        let want = format!(
            "Week of {}: {}",
            b["start"].as_str().unwrap(),
            shown("incident_count", &b["metrics"]["incident_count"])
        );
        assert_eq!(label, want);
    }

    // By service: each row's numbers are the API's for the team's services.
    let services = api(format!(
        "/api/v1/reports/incidents?{period}&group_by=service&team={team}"
    ))
    .await;
    let rows = c
        .find_all(Locator::Css("#services tbody tr[data-key]"))
        .await
        .unwrap();
    let groups = services["groups"].as_array().unwrap();
    assert_eq!(rows.len(), groups.len());
    for (row, g) in rows.iter().zip(groups) {
        assert_eq!(
            row.attr("data-key").await.unwrap().as_deref(),
            g["key"].as_str()
        );
        let count = row
            .find(Locator::Css("a[data-metric='incident_count']"))
            .await
            .unwrap();
        assert_eq!(
            count.text().await.unwrap(),
            shown("incident_count", &g["metrics"]["incident_count"]["value"])
        );
        let mttr = row
            .find(Locator::Css("a[data-metric='mttr_p50']"))
            .await
            .unwrap();
        assert_eq!(
            mttr.text().await.unwrap(),
            shown("mttr_p50", &g["metrics"]["mttr_p50"]["value"])
        );
    }
    // Responders too.
    let responders = api(format!(
        "/api/v1/reports/incidents?{period}&group_by=responder&team={team}"
    ))
    .await;
    assert_eq!(
        counts_shown(&c, "responders").await,
        counts_of(&responders["groups"])
    );

    // Screenshot of the team's week.
    save(&dir.join("dashboard.png"), &c.screenshot().await.unwrap());

    // Keyboard: the first Tab reaches "Skip to content", shown with a visible outline;
    // every control has a label.
    c.goto(&team_page).await.unwrap();
    tab(&c).await;
    let focused = js(
        &c,
        "const e = document.activeElement; const s = getComputedStyle(e); return [e.textContent, s.outlineStyle, parseFloat(s.outlineWidth), e.getBoundingClientRect().left >= 0]",
    )
    .await;
    assert_eq!(focused[0], json!("Skip to content"), "{focused}");
    assert_ne!(focused[1], json!("none"), "{focused}");
    assert!(focused[2].as_f64().unwrap() >= 2.0, "{focused}");
    assert_eq!(focused[3], json!(true), "{focused}");
    let unlabelled = js(
        &c,
        "return [...document.querySelectorAll('input:not([type=hidden]), select, button')].filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.outerHTML)",
    )
    .await;
    assert_eq!(unlabelled, json!([]));
    // Tabbing on reaches the week picker, the time zone, the team and the first card.
    let mut reached = Vec::new();
    for _ in 0..24 {
        tab(&c).await;
        reached.push(
            js(
                &c,
                "return document.activeElement.id || document.activeElement.className",
            )
            .await,
        );
    }
    for id in ["week", "tz", "team", "this"] {
        assert!(
            reached.contains(&json!(id)),
            "Tab never reached {id}: {reached:?}"
        );
    }

    // A number leads to the incidents behind it: the first service's count.
    let first = c
        .find(Locator::Css(
            "#services tbody tr[data-key] a[data-metric='incident_count']",
        ))
        .await
        .unwrap();
    let clicked: i64 = first.text().await.unwrap().parse().unwrap();
    let service = groups[0]["key"].as_str().unwrap().to_owned();
    first.click().await.unwrap();
    wait_for(&c, "#total").await;
    let total = c
        .find(Locator::Id("total"))
        .await
        .unwrap()
        .attr("data-total")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(total, clicked.to_string());
    let shown_ids = js(
        &c,
        "return [...document.querySelectorAll('#incidents tbody tr')].map(r => Number(r.dataset.incident))",
    )
    .await;
    let drill = api(format!(
        "/api/v1/incidents?{period}&team={team}&service={service}&sort=-created_at"
    ))
    .await;
    let want_ids: Vec<Value> = drill["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["incident_id"].clone())
        .collect();
    assert_eq!(shown_ids, Value::Array(want_ids.clone()));
    assert_eq!(want_ids.len() as i64, clicked.min(50));

    // …and an incident to its timeline: the replica's entries, in order.
    c.find(Locator::Css("#incidents tbody tr a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#facts").await;
    let id = want_ids[0].as_i64().unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with(&format!("/{id}"))
    );
    let detail = api(format!("/api/v1/incidents/{id}")).await;
    let want_types: Vec<Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry_type"].clone())
        .collect();
    assert!(!want_types.is_empty());
    let shown_types = js(
        &c,
        "return [...document.querySelectorAll('#timeline tbody tr')].map(r => r.cells[2].textContent)",
    )
    .await;
    assert_eq!(shown_types, Value::Array(want_types));
    save(&dir.join("timeline.png"), &c.screenshot().await.unwrap());

    // Reopened incidents are marked with their count, and an incident list links to only
    // them: exactly the API's `reopened=true` drilldown.
    c.goto(&format!(
        "{base}/dashboard/incidents?{period}&sort=-created_at"
    ))
    .await
    .unwrap();
    wait_for(&c, "#reopened-filter").await;
    c.find(Locator::Id("reopened-filter"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#total").await;
    let shown = js(
        &c,
        "return [...document.querySelectorAll('#incidents tbody tr')].map(r => [Number(r.dataset.incident), r.classList.contains('reopened'), r.querySelector('.badge') !== null, Number(r.querySelector('[data-reopened]').dataset.reopened)])",
    )
    .await;
    let reopened = api(format!(
        "/api/v1/incidents?{period}&reopened=true&sort=-created_at"
    ))
    .await;
    let want: Vec<Value> = reopened["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::json!([f["incident_id"], true, true, f["reopen_count"]]))
        .collect();
    assert!(
        !want.is_empty(),
        "the generated week holds reopened incidents"
    );
    assert!(
        reopened["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["reopen_count"].as_i64().unwrap() >= 1)
    );
    assert_eq!(shown, Value::Array(want));

    // Every table exports as CSV: the services' counts are the API's, and the incidents
    // behind the number are all there.
    let csv_of = |path: String| {
        let one = one.clone();
        async move {
            tokio::task::spawn_blocking(move || request(addr, &path, Some(&one)))
                .await
                .unwrap()
        }
    };
    let (status, headers, body) = csv_of(format!(
        "/dashboard/table.csv?week={WEEK}&tz={TZ}&team={team}&table=services"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/csv"))
    );
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let head = reader.headers().unwrap().clone();
    let at = head.iter().position(|h| h == "incident_count").unwrap();
    let counts: Vec<(String, f64)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[at].parse().unwrap())
        })
        .collect();
    let want: Vec<(String, f64)> = groups
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap_or("").to_owned(),
                g["metrics"]["incident_count"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, want);
    let (status, _, body) = csv_of(format!(
        "/dashboard/incidents.csv?{period}&team={team}&service={service}"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body.lines().count() as i64, clicked + 1, "{body}");

    // The account overview: the account's cards and one row per team, as the API says.
    c.goto(&format!("{base}/dashboard?week={WEEK}&tz={TZ}"))
        .await
        .unwrap();
    wait_for(&c, "#teams").await;
    let total = c
        .find(Locator::Css("li.card[data-metric='incident_count'] a.this"))
        .await
        .unwrap()
        .attr("data-value")
        .await
        .unwrap();
    assert!(same_number(
        total,
        &by_team["total"]["metrics"]["incident_count"]["value"]
    ));
    assert_eq!(
        counts_shown(&c, "teams").await,
        counts_of(&by_team["groups"])
    );

    // Empty and error states that say what to do.
    c.goto(&format!("{base}/dashboard?week=2099-W01&tz={TZ}"))
        .await
        .unwrap();
    assert_eq!(text_of(&c, "main h1").await, "That week has not begun");
    assert!(text_of(&c, "#message").await.contains("has not begun yet"));
    c.goto(&format!("{base}/dashboard?week={WEEK}&tz={TZ}&team=9999"))
        .await
        .unwrap();
    assert_eq!(text_of(&c, "main h1").await, "No such team this week");
    let team_name: String = sqlx::query_scalar("SELECT name FROM teams WHERE id = $1")
        .bind(team.parse::<i64>().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        text_of(&c, "main ul").await.contains(&team_name),
        "the teams that do have incidents are offered by name"
    );
    c.goto(&format!("{base}/dashboard?week=46&tz={TZ}"))
        .await
        .unwrap();
    assert!(text_of(&c, "#message").await.contains("2026-W44"));
    sign_out(&c).await;
    sign_in(&c, &base, &empty).await;
    assert_eq!(text_of(&c, "main h1").await, "No incidents yet");
    assert!(text_of(&c, "#message").await.contains("mttx etl run"));
    sign_out(&c).await;
    sign_in(&c, &base, &expired).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/login");
    assert!(text_of(&c, "#login-error").await.contains("expired"));
    // Signed out, a page sends to the sign-in page again.
    c.goto(&format!("{base}/dashboard/incidents/{id}"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");

    c.close().await.unwrap();
    let _ = std::fs::remove_file(dir.join("state.sqlite"));
    let _ = std::fs::remove_dir_all(dir.join("facts"));
}

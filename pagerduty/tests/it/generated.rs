//! A generated account rendered as PagerDuty JSON (thousands of incidents, with the bad
//! input a real log has, and a share written PagerDuty's way: one entry per assignee and
//! so on), imported through the local PagerDuty (which throttles and fails now and then)
//! and folded: every incident's facts equal those of the same replica written directly,
//! once ids are translated through the import's id table.

use std::collections::HashMap;

use chrono::SecondsFormat;
use mttx_fixtures::Config;
use mttx_fixtures::generate::generate_all;
use mttx_fixtures::model::Dataset;
use mttx_migrations::Location;
use mttx_pagerduty::{Options, import};
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::devlake::folded;
use crate::server::{Account, TOKEN, Trouble, serve};

fn reference(prefix: &str, id: i64) -> Value {
    json!({ "id": format!("{prefix}{id}") })
}

/// The dataset's first account as PagerDuty's REST API shows it.
fn render(data: &Dataset) -> Account {
    let ts = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let teams = data
        .org
        .teams
        .iter()
        .map(|t| json!({"id": format!("PT{}", t.id), "name": t.name}))
        .collect();
    let users = data
        .org
        .users
        .iter()
        .map(|u| {
            let teams: Vec<Value> = data
                .org
                .team_members
                .iter()
                .filter(|m| m.user_id == u.id)
                .map(|m| reference("PT", m.team_id))
                .collect();
            json!({"id": format!("PU{}", u.id), "name": u.name, "email": u.email,
                   "time_zone": u.time_zone, "teams": teams})
        })
        .collect();
    let escalation_policies = data
        .org
        .escalation_policies
        .iter()
        .map(|p| {
            json!({"id": format!("PE{}", p.id), "name": p.name,
                   "teams": p.team_id.map(|t| vec![reference("PT", t)]).unwrap_or_default()})
        })
        .collect();
    let services = data
        .org
        .services
        .iter()
        .map(|s| {
            json!({"id": format!("PS{}", s.id), "name": s.name,
                   "escalation_policy": reference("PE", s.escalation_policy_id),
                   "teams": s.team_id.map(|t| vec![reference("PT", t)]).unwrap_or_default()})
        })
        .collect();
    let incidents = data
        .incidents
        .iter()
        .map(|i| {
            json!({"id": format!("PI{}", i.id), "type": "incident", "incident_number": i.incident_number,
                   "title": i.title, "created_at": ts(&i.created_at), "status": &*i.status,
                   "urgency": &*i.urgency,
                   "priority": i.priority.as_deref().map(|p| json!({"id": format!("PP{p}"), "summary": p})),
                   "service": reference("PS", i.service_id),
                   "escalation_policy": reference("PE", i.escalation_policy_id)})
        })
        .collect();
    let log_entries = data
        .entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "id": format!("PL{:08}", e.id),
                "type": format!("{}_log_entry", e.entry_type),
                "created_at": ts(&e.created_at),
                "incident": reference("PI", e.incident_id),
            });
            let prefix = match e.agent_type.as_deref() {
                Some("user") | None => "PU",
                Some("service") => "PS",
                Some(_) => "PX",
            };
            let mut agent = serde_json::Map::new();
            if let Some(t) = &e.agent_type {
                agent.insert("type".into(), json!(format!("{t}_reference")));
            }
            if let Some(id) = e.agent_id {
                agent.insert("id".into(), json!(format!("{prefix}{id}")));
            }
            if !agent.is_empty() {
                v["agent"] = Value::Object(agent);
            }
            if let Some(c) = &e.channel {
                v["channel"] = if e.entry_type == "notify" {
                    json!({"type": "auto", "notification": {"type": &**c}})
                } else {
                    json!({"type": &**c})
                };
            }
            if let Some(u) = e.user_id {
                v["user"] = reference("PU", u);
            }
            if let Some(ids) = &e.assignee_ids {
                v["assignees"] = ids.iter().map(|u| reference("PU", *u)).collect();
            }
            if let Some(p) = e.escalation_policy_id {
                v["escalation_policy"] = reference("PE", p);
            }
            if let Some(d) = &e.details {
                v["summary"] = json!(d);
            }
            v
        })
        .collect();
    Account {
        users,
        teams,
        escalation_policies,
        services,
        incidents,
        log_entries,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_account_imports_to_the_same_facts() {
    let cfg = Config {
        seed: 5,
        accounts: 1,
        incidents: 2_500,
        weeks: 4,
        bad_rate: 0.03,
        pagerduty_share: 0.3,
        ..Config::default()
    };
    let (data, _) = generate_all(cfg.clone()).unwrap();
    let dir = mttx_fixtures::testing::scratch("pagerduty-generated").unwrap();
    let plain = Location::Sqlite(dir.join("plain.sqlite"));
    mttx_fixtures::generate_into(cfg.clone(), &plain, false)
        .await
        .unwrap();
    let trouble = Trouble {
        throttle_every: Some(97),
        fail_every: Some(89),
        ..Trouble::default()
    };
    let (addr, _server) = serve(render(&data), trouble).await;
    let imported = Location::Sqlite(dir.join("imported.sqlite"));
    let opts = Options::new(
        &format!("http://{addr}"),
        TOKEN.to_owned().into(),
        cfg.start() - chrono::Duration::days(1),
    );
    let summary = import(&opts, &imported, |_| {}).await.unwrap();
    assert!(
        summary.entries as usize > data.entries.len() * 9 / 10,
        "{summary}"
    );

    // The import's ids for the dataset's.
    let Location::Sqlite(path) = &imported else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let ids: HashMap<String, i64> = sqlx::query("SELECT external_id, id FROM import_ids")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    let id = |prefix: &str, v: i64| ids[&format!("{prefix}{v}")];

    let plain_dir = dir.join("plain");
    let imported_dir = dir.join("imported");
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::create_dir_all(&imported_dir).unwrap();
    let want = folded(&plain_dir, &plain).await;
    let got = folded(&imported_dir, &imported).await;
    assert_eq!(
        want.keys().collect::<std::collections::BTreeSet<_>>(),
        got.keys().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(want.len() > 2_000);
    for (number, w) in &want {
        let g = &got[number];
        let users = |list: &[i64]| {
            let mut out: Vec<i64> = list.iter().map(|u| id("PU", *u)).collect();
            out.sort_unstable();
            out
        };
        let translated = mttx_etl::Fact {
            incident_id: id("PI", w.incident_id),
            service_id: id("PS", w.service_id),
            escalation_policy_id: w.escalation_policy_id.map(|p| id("PE", p)),
            team_id: w.team_id.map(|t| id("PT", t)),
            acknowledged_user_ids: users(&w.acknowledged_user_ids),
            assigned_user_ids: users(&w.assigned_user_ids),
            last_entry_id: g.last_entry_id,
            ..w.clone()
        };
        assert_eq!(g, &translated, "incident #{number}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! A local PagerDuty: the REST v2 listings an import uses (`/users`, `/teams`,
//! `/escalation_policies`, `/services`, `/incidents`, `/incidents/{id}`, `/log_entries`),
//! with PagerDuty's documented limits: a token in `Authorization: Token token=…` (401
//! without), `limit` at most 100 and `offset + limit` at most 10,000 (400 beyond), `more`
//! and `total`, windows by `since`/`until` on `created_at`; and, when asked, a 429 with
//! `ratelimit-reset` every so many requests and a 500 every so many others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use mttx_fixtures::model::Dataset;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-not-real";

/// What the account holds.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub users: Vec<Value>,
    pub teams: Vec<Value>,
    pub escalation_policies: Vec<Value>,
    pub services: Vec<Value>,
    pub priorities: Vec<Value>,
    pub incidents: Vec<Value>,
    pub log_entries: Vec<Value>,
}

/// Injected trouble.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trouble {
    /// Every n-th request is answered 429.
    pub throttle_every: Option<u64>,
    /// Every n-th request is answered 500.
    pub fail_every: Option<u64>,
    /// Every answer is a body that is not JSON.
    pub malformed: bool,
}

#[derive(Debug)]
pub struct Server {
    pub account: Mutex<Account>,
    trouble: Trouble,
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub failed: AtomicU64,
}

fn error(status: StatusCode, message: &str, code: u32) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "code": code}})),
    )
        .into_response()
}

fn params(query: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn created(v: &Value) -> Option<DateTime<Utc>> {
    v["created_at"].as_str()?.parse().ok()
}

impl Server {
    /// The checks every request goes through: the token, then injected trouble.
    fn gate(&self, headers: &HeaderMap) -> Option<Response> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Token token={TOKEN}")) {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "Authentication required",
                2006,
            ));
        }
        if self
            .trouble
            .throttle_every
            .is_some_and(|k| n.is_multiple_of(k))
        {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        ("ratelimit-limit", "960"),
                        ("ratelimit-remaining", "0"),
                        ("ratelimit-reset", "0"),
                    ],
                    axum::Json(json!({"error": {"message": "Too many requests", "code": 2020}})),
                )
                    .into_response(),
            );
        }
        if self.trouble.malformed {
            return Some((StatusCode::OK, "<html>maintenance</html>").into_response());
        }
        if self.trouble.fail_every.is_some_and(|k| n.is_multiple_of(k)) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Some(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                2000,
            ));
        }
        None
    }

    /// One page of `items` (those created in the asked window, in time order).
    fn listing(&self, key: &str, items: &[Value], q: &HashMap<String, String>) -> Response {
        let number = |name: &str, default: u64| -> Option<u64> {
            q.get(name).map_or(Some(default), |v| v.parse().ok())
        };
        let (Some(limit), Some(offset)) = (number("limit", 25), number("offset", 0)) else {
            return error(StatusCode::BAD_REQUEST, "Invalid limit or offset", 2001);
        };
        if limit > 100 {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid Input Provided: limit must be at most 100",
                2001,
            );
        }
        if offset + limit > 10_000 {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid Input Provided: Offset must be less than 10000",
                2001,
            );
        }
        let bound = |name: &str| q.get(name).and_then(|s| s.parse::<DateTime<Utc>>().ok());
        let (since, until) = (bound("since"), bound("until"));
        let mut listed: Vec<(Option<DateTime<Utc>>, &str, &Value)> = items
            .iter()
            .map(|v| (created(v), v["id"].as_str().unwrap_or(""), v))
            .filter(|(at, _, _)| match at {
                Some(t) => since.is_none_or(|s| *t >= s) && until.is_none_or(|u| *t < u),
                None => true,
            })
            .collect();
        listed.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let total = listed.len() as u64;
        let page: Vec<Value> = listed
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|(_, _, v)| (*v).clone())
            .collect();
        let mut body = json!({
            key: page, "limit": limit, "offset": offset, "more": offset + limit < total,
            "total": Value::Null,
        });
        if q.get("total").is_some_and(|t| t == "true") {
            body["total"] = json!(total);
        }
        axum::Json(body).into_response()
    }
}

type Shared = Arc<Server>;

macro_rules! listing {
    ($field:ident) => {
        get(
            |State(s): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery| async move {
                if let Some(r) = s.gate(&headers) {
                    return r;
                }
                let account = s.account.lock().unwrap();
                s.listing(stringify!($field), &account.$field, &params(q))
            },
        )
    };
}

async fn incident(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = s.gate(&headers) {
        return r;
    }
    let found = s
        .account
        .lock()
        .unwrap()
        .incidents
        .iter()
        .find(|i| i["id"] == id.as_str())
        .cloned();
    match found {
        Some(i) => axum::Json(json!({ "incident": i })).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found", 2100),
    }
}

/// Serves `account` on a free local port until the test ends.
pub async fn serve(account: Account, trouble: Trouble) -> (SocketAddr, Shared) {
    let server = Arc::new(Server {
        account: Mutex::new(account),
        trouble,
        requests: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/users", listing!(users))
        .route("/teams", listing!(teams))
        .route("/escalation_policies", listing!(escalation_policies))
        .route("/services", listing!(services))
        .route("/priorities", listing!(priorities))
        .route("/incidents", listing!(incidents))
        .route("/incidents/{id}", get(incident))
        .route("/log_entries", listing!(log_entries))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, server)
}

fn reference(prefix: &str, id: i64) -> Value {
    json!({ "id": format!("{prefix}{id}") })
}

/// The dataset's first account as PagerDuty's REST API shows it.
pub fn render(data: &Dataset) -> Account {
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
                   // A bare reference: the name comes from /priorities.
                   "priority": i.priority.as_deref().map(|p| json!({"id": format!("PP{p}"), "type": "priority_reference"})),
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
        priorities: ["P1", "P2", "P3", "P4", "P5"]
            .iter()
            .map(|p| json!({"id": format!("PP{p}"), "name": p, "summary": p}))
            .collect(),
        incidents,
        log_entries,
    }
}

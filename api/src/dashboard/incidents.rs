//! `/dashboard/incidents`: the incidents behind a number (the API's drilldown, one page at
//! a time, with links to sort, page and download), and `/dashboard/incidents/{id}`: one
//! incident's facts and its timeline from the replica, in the page's time zone (by default
//! the account's), with teams, services, policies and people by name.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Days;
use mttx_query::Filters;
use mttx_replica::{Directory, Kind};
use serde::Serialize;

use super::session::SignedIn;
use super::{
    Drill, Week, dashboard_href, drill, error_page, home_zone, html, local, page_params, week_of,
};
use crate::http::incidents::{incident_fact, timeline};
use crate::http::wire::Entry;
use crate::http::{ApiError, App};
use crate::named::{NamedFact, account_label, label};
use crate::weekly::{self, duration};

/// The filters in words (things by name), for the page's heading.
fn describe(f: &Filters, names: &Directory) -> Vec<String> {
    let mut out = Vec::new();
    let mut id = |what: &str, kind: Kind, v: Option<i64>| {
        if let Some(v) = v {
            let name = label(names, kind, v);
            out.push(if what.is_empty() {
                name
            } else {
                format!("{what} {name}")
            });
        }
    };
    id("", Kind::Team, f.team);
    id("", Kind::Service, f.service);
    id("", Kind::EscalationPolicy, f.escalation_policy);
    id("acknowledged by", Kind::User, f.responder);
    if let Some(u) = &f.urgency {
        out.push(format!("{u} urgency"));
    }
    if let Some(p) = &f.priority {
        out.push(format!("priority {p}"));
    }
    let mut flag = |v: Option<bool>, yes: &str, no: &str| {
        if let Some(v) = v {
            out.push(if v { yes } else { no }.to_owned());
        }
    };
    flag(f.major, "major", "not major");
    flag(f.escalated, "escalated", "never escalated");
    flag(f.interrupted_sleep, "woke someone up", "woke nobody up");
    flag(f.reopened, "reopened", "never reopened");
    if let Some(a) = &f.alert {
        out.push(format!("alert “{a}”"));
    }
    out
}

/// One incident as a row of the incidents page.
#[derive(Debug, Serialize)]
struct IncidentRow<'a> {
    fact: &'a NamedFact,
    created: String,
    href: String,
}

pub(super) async fn incidents_page(
    State(app): State<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    incidents_of(&app, account, query.as_deref())
        .await
        .unwrap_or_else(error_page)
}

#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
async fn incidents_of(app: &App, account: i64, query: Option<&str>) -> Result<Response, ApiError> {
    let names = app.directory(account).await;
    let Drill {
        period,
        filters,
        page,
        params,
    } = drill(app, query, home_zone(&names))?;
    let engine = app.engine.read().await;
    let total = engine
        .report(account, &period, None, &filters)
        .await?
        .account
        .current
        .incident_count;
    let found = engine.drilldown(account, &period, &filters, &page).await?;
    let data_as_of = engine.data_as_of();
    drop(engine);
    let tz = period.tz;
    let facts = NamedFact::all(&names, found.facts);
    let rows: Vec<IncidentRow> = facts
        .iter()
        .map(|f| IncidentRow {
            fact: f,
            created: f
                .fact
                .created_at
                .with_timezone(&tz)
                .format("%a %Y-%m-%d %H:%M")
                .to_string(),
            href: format!(
                "/dashboard/incidents/{}?tz={}",
                f.fact.incident_id,
                tz.name()
            ),
        })
        .collect();
    // The same question without order or page: the base of sort, CSV and next links.
    let mut base = url::form_urlencoded::Serializer::new(String::new());
    let mut keys: Vec<&String> = params
        .keys()
        .filter(|k| !["sort", "after", "limit"].contains(&k.as_str()))
        .collect();
    keys.sort();
    for k in keys {
        base.append_pair(k, &params[k]);
    }
    let base = base.finish();
    // A link to the same incidents that were reopened (or, from there, to those never).
    let (reopened_value, reopened_label) = match filters.reopened {
        Some(true) => ("false", "Only those never reopened"),
        _ => ("true", "Only reopened ones"),
    };
    let mut reopened_href =
        url::form_urlencoded::Serializer::new("/dashboard/incidents?".to_owned());
    let mut keys: Vec<&String> = params
        .keys()
        .filter(|k| !["after", "reopened"].contains(&k.as_str()))
        .collect();
    keys.sort();
    for k in keys {
        reopened_href.append_pair(k, &params[k]);
    }
    reopened_href.append_pair("reopened", reopened_value);
    let reopened_href = reopened_href.finish();
    let sort = params.get("sort").map_or("-created_at", String::as_str);
    let next_href = found.next.as_ref().map(|n| {
        let mut q = url::form_urlencoded::Serializer::new(format!("/dashboard/incidents?{base}&"));
        q.append_pair("sort", sort).append_pair("after", n);
        if let Some(l) = params.get("limit") {
            q.append_pair("limit", l);
        }
        q.finish()
    });
    let days = (period.to - period.from).num_days();
    let back_href = (days == 7 && chrono::Datelike::weekday(&period.from) == chrono::Weekday::Mon)
        .then(|| dashboard_href(period.from, tz, filters.team));
    Ok(html(
        StatusCode::OK,
        "incidents.html",
        minijinja::context! {
            signed_in => true,
            freshness => super::freshness(data_as_of, tz),
            account_id => account,
            account_name => account_label(&names),
            from => period.from.to_string(),
            to => (period.to - Days::new(1)).to_string(),
            tz => tz.name(),
            what => describe(&filters, &names),
            total,
            rows,
            sort,
            base,
            next_href,
            back_href,
            reopened_href,
            reopened_label,
            first_page => page.after.is_none(),
        },
    ))
}

/// One entry of the timeline as shown.
#[derive(Debug, Serialize)]
struct Step<'a> {
    entry: &'a Entry,
    at: String,
    since_trigger: String,
    /// The names of the entry's user, assignees and escalation policy.
    user: Option<String>,
    assignees: Vec<String>,
    escalation_policy: Option<String>,
}

pub(super) async fn incident_page(
    State(app): State<Arc<App>>,
    SignedIn(account): SignedIn,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let id = id.map_or_else(|_| String::new(), |Path(id)| id);
    incident_of(&app, account, &id, query.as_deref())
        .await
        .unwrap_or_else(error_page)
}

#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
async fn incident_of(
    app: &App,
    account: i64,
    id: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let params = page_params(query, &["tz"])?;
    let names = app.directory(account).await;
    let Week { tz, .. } = week_of(&params, home_zone(&names))?;
    let fact = incident_fact(app, account, id).await?;
    let id = fact.incident_id;
    let entries = timeline(app, id).await?;
    let steps: Option<Vec<Step>> = entries.as_ref().map(|es| {
        es.iter()
            .map(|e| Step {
                entry: e,
                at: e
                    .created_at
                    .with_timezone(&tz)
                    .format("%a %Y-%m-%d %H:%M:%S")
                    .to_string(),
                since_trigger: {
                    let s = (e.created_at - fact.created_at).num_milliseconds() as f64 / 1000.0;
                    if s < 0.0 {
                        format!("−{}", duration(Some(-s)))
                    } else {
                        format!("+{}", duration(Some(s)))
                    }
                },
                user: e.user_id.map(|u| label(&names, Kind::User, u)),
                assignees: e
                    .assignee_ids
                    .iter()
                    .flatten()
                    .map(|u| label(&names, Kind::User, *u))
                    .collect(),
                escalation_policy: e
                    .escalation_policy_id
                    .map(|p| label(&names, Kind::EscalationPolicy, p)),
            })
            .collect()
    });
    let monday = weekly::monday_of(fact.created_at.with_timezone(&tz).date_naive());
    Ok(html(
        StatusCode::OK,
        "incident.html",
        minijinja::context! {
            signed_in => true,
            freshness => super::freshness(app.engine.read().await.data_as_of(), tz),
            account_id => account,
            account_name => account_label(&names),
            tz => tz.name(),
            fact => NamedFact::new(&names, fact.clone()),
            created => local(fact.created_at, tz),
            acknowledged => fact.acknowledged_at.map(|t| local(t, tz)),
            resolved => fact.resolved_at.map(|t| local(t, tz)),
            final_resolved => fact.final_resolved_at.map(|t| local(t, tz)),
            steps,
            week_href => dashboard_href(monday, tz, fact.team_id),
        },
    ))
}

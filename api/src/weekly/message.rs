//! The weekly report as a message: a subject line and a short summary with the team's
//! headline numbers (incidents, MTTA and MTTR p50, each beside last week), and the chat
//! webhook's JSON — Slack's incoming-webhook shape (`text`, with `blocks` for clients that
//! show them), which Mattermost, Rocket.Chat and Teams' Slack-compatible connectors take.

use serde_json::{Value, json};

use super::{Weekly, duration};
use crate::body::ComparedBody;

/// Who the report is about: the team's name, or the account's.
fn whose(report: &Weekly) -> String {
    match &report.team_name {
        Some(team) => team.clone(),
        None => report.account_name.clone(),
    }
}

/// The metric `key` of the team's row (None: not in the report).
fn metric<'a>(report: &'a Weekly, key: &str) -> Option<&'a ComparedBody> {
    report.team.metrics.get(key)
}

/// `value` as a duration or a count, and the change against last week in words.
fn with_change(m: Option<&ComparedBody>, as_duration: bool) -> String {
    let Some(m) = m else { return "–".into() };
    let show = |v: Option<f64>| {
        if as_duration {
            duration(v)
        } else {
            v.map_or("–".into(), |v| format!("{v:.0}"))
        }
    };
    let change = match (m.delta_ratio, m.previous) {
        (Some(r), _) => format!("{:+.0}% vs last week", r * 100.0),
        (None, Some(p)) => format!("last week {}", show(Some(p))),
        (None, None) => "none last week".into(),
    };
    format!("{} ({change})", show(m.value))
}

/// The subject of the weekly mail: `Weekly incident report: Payments, 2026-W44`.
pub fn subject(report: &Weekly) -> String {
    format!("Weekly incident report: {}, {}", whose(report), report.week)
}

/// The headline numbers, one per line: incidents, MTTA p50, MTTR p50 and escalations, each
/// beside last week.
pub fn headline(report: &Weekly) -> Vec<(&'static str, String)> {
    vec![
        (
            "Incidents",
            with_change(metric(report, "incident_count"), false),
        ),
        ("MTTA p50", with_change(metric(report, "mtta_p50"), true)),
        ("MTTR p50", with_change(metric(report, "mttr_p50"), true)),
        (
            "Escalated",
            with_change(metric(report, "escalated_count"), false),
        ),
    ]
}

/// The chat webhook's JSON: a plain `text` summary (what notifications and clients
/// without blocks show) and blocks with the headline numbers and a link to the dashboard
/// (`link`, when given).
pub fn chat(report: &Weekly, link: Option<&str>) -> Value {
    let lines: Vec<String> = headline(report)
        .into_iter()
        .map(|(label, v)| format!("{label}: {v}"))
        .collect();
    let title = subject(report);
    let mut text = format!("{title}\n{}", lines.join("\n"));
    if let Some(link) = link {
        text.push_str(&format!("\n<{link}|Open the dashboard>"));
    }
    let fields: Vec<Value> = headline(report)
        .into_iter()
        .map(|(label, v)| json!({"type": "mrkdwn", "text": format!("*{label}*\n{v}")}))
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title}}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "{} to {} ({}), {}",
            report.period.from, report.period.to, report.period.tz, report.account_name
        )}]}),
    ];
    if let Some(link) = link {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("<{link}|Open the dashboard>")}}));
    }
    json!({"text": text, "blocks": blocks})
}

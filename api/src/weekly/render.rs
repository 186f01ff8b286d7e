//! The weekly report written out: JSON, CSV (one row per number), or Markdown and HTML
//! from the templates beside this file; and the template filters (`duration`, `pct`,
//! `rate`, `num`) the dashboard's pages share.

use chrono::{DateTime, Utc};

use super::Weekly;
use crate::body::RowBody;

/// What `mttx report weekly` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Md,
    Csv,
    Json,
}

/// Maps a writer's error to [`crate::Error::Render`] of `format`.
fn failed<E: std::error::Error + Send + Sync + 'static>(
    format: &'static str,
) -> impl FnOnce(E) -> crate::Error {
    move |e| crate::Error::Render {
        format,
        source: Box::new(e),
    }
}

/// The report in `format`.
pub fn render(report: &Weekly, format: Format) -> crate::Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(report).map_err(failed("JSON"))? + "\n"),
        Format::Csv => csv(report).map_err(|source| crate::Error::Render {
            format: "CSV",
            source,
        }),
        Format::Md => {
            template("weekly.md", include_str!("weekly.md.j2"), report).map_err(failed("Markdown"))
        }
        Format::Html => {
            template("weekly.html", include_str!("weekly.html.j2"), report).map_err(failed("HTML"))
        }
    }
}

/// One row per number: section, key, metric, value, previous, delta, delta_ratio, norm;
/// for a mean or percentile n, previous_n, the delta's 95% interval (delta_low,
/// delta_high) and verdict; and last the name of the key (the team's, service's or
/// responder's; an incident's title). A first `freshness` row holds `data_as_of`.
fn csv(report: &Weekly) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    const HEAD: [&str; 14] = [
        "section",
        "key",
        "metric",
        "value",
        "previous",
        "delta",
        "delta_ratio",
        "norm",
        "n",
        "previous_n",
        "delta_low",
        "delta_high",
        "verdict",
        "name",
    ];
    let mut w = crate::export::Csv::new();
    w.write_record(HEAD)?;
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let count = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    // A row with a value and a name only (freshness, trend, escalated incidents).
    let plain = |w: &mut crate::export::Csv, [section, key, metric, value, name]: [&str; 5]| {
        let mut line = [""; HEAD.len()];
        line[..4].copy_from_slice(&[section, key, metric, value]);
        line[HEAD.len() - 1] = name;
        w.write_record(line)
    };
    // How current the numbers are: UNIX seconds as the value, the time as the name.
    if let Some(t) = report.data_as_of {
        let (secs, at) = (t.timestamp().to_string(), t.to_rfc3339());
        plain(&mut w, ["freshness", "", "data_as_of", &secs, &at])?;
    }
    let mut rows = |section: &str, row: &RowBody| -> csv::Result<()> {
        for (metric, c) in &row.metrics {
            let interval = c.interval.flatten();
            w.write_record([
                section,
                row.key.as_deref().unwrap_or(""),
                metric,
                &num(c.value),
                &num(c.previous),
                &num(c.delta),
                &num(c.delta_ratio),
                &num(c.norm.flatten()),
                &count(c.n),
                &count(c.previous_n),
                &num(interval.map(|i| i[0])),
                &num(interval.map(|i| i[1])),
                c.verdict.map_or("", |v| v.as_str()),
                row.name.as_deref().unwrap_or(""),
            ])?;
        }
        Ok(())
    };
    rows("team", &report.team)?;
    for r in &report.services {
        rows("service", r)?;
    }
    for r in &report.responders {
        rows("responder", r)?;
    }
    for b in &report.trend {
        let start = b.start.to_string();
        for (metric, v) in &b.metrics {
            plain(&mut w, ["trend", &start, metric, &num(*v), ""])?;
        }
    }
    for f in &report.escalated {
        let id = f.fact.incident_id.to_string();
        for (metric, v) in [
            ("seconds_to_first_ack", f.fact.seconds_to_first_ack),
            ("seconds_to_resolve", f.fact.seconds_to_resolve),
            ("escalation_count", Some(f.fact.escalation_count as f64)),
        ] {
            plain(
                &mut w,
                ["escalated_incident", &id, metric, &num(v), &f.fact.title],
            )?;
        }
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Seconds as a short duration: 45s, 12m 05s, 3h 20m, 2d 4h.
pub(crate) fn duration(v: Option<f64>) -> String {
    let Some(s) = v else { return "–".into() };
    let s = s.round() as i64;
    match s {
        ..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// How long before `now` an instant was, in words: "40 s ago", "12 min ago", "3 h 5 min
/// ago", "2 days ago"; "just now" for an instant not before it.
pub(crate) fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - at).num_seconds();
    match s {
        ..1 => "just now".into(),
        1..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h {} min ago", s / 3600, s % 3600 / 60),
        86_400..172_800 => "1 day ago".into(),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// `data_as_of` in words: the instant in UTC and how long before now it was; what it
/// means when the ETL has recorded nothing.
pub(crate) fn as_of(at: Option<DateTime<Utc>>) -> String {
    match at {
        Some(t) => format!(
            "{} ({})",
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            ago(t, Utc::now())
        ),
        None => "unknown (no ETL run has recorded it yet)".into(),
    }
}

fn attr_str(m: &minijinja::Value, name: &str) -> Option<String> {
    m.get_attr(name)
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_none())
        .map(|v| v.to_string())
}

/// A compared metric's verdict in words, after its change: ", better", ", worse",
/// ", within noise", ", not enough data (n = 6 vs 4)"; nothing for a count or rate, which
/// has no verdict.
fn verdict_words(m: minijinja::Value) -> String {
    let n = |name| attr_str(&m, name).unwrap_or_else(|| "0".into());
    match attr_str(&m, "verdict").as_deref() {
        Some("better") => ", better".into(),
        Some("worse") => ", worse".into(),
        Some("no_clear_change") => ", within noise".into(),
        Some("insufficient_data") => {
            format!(", not enough data (n = {} vs {})", n("n"), n("previous_n"))
        }
        _ => String::new(),
    }
}

/// The filters the templates share: `duration`, `pct` (a signed change), `rate` (a share
/// as a percentage), `num`, `as_of` (an RFC 3339 time in words, see [`as_of`]), and for a
/// compared metric `verdict` (its verdict in words) and `arrow` (▲ or ▼ only when the
/// verdict is better or worse).
pub(crate) fn filters(env: &mut minijinja::Environment<'_>) {
    env.add_filter("as_of", |v: Option<String>| {
        as_of(
            v.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.to_utc()),
        )
    });
    env.add_filter("duration", duration);
    env.add_filter("verdict", verdict_words);
    env.add_filter("arrow", |m: minijinja::Value| -> String {
        let judged = matches!(attr_str(&m, "verdict").as_deref(), Some("better" | "worse"));
        match m.get_attr("delta").ok().and_then(|d| f64::try_from(d).ok()) {
            Some(d) if judged && d > 0.0 => "▲ ".into(),
            Some(d) if judged && d < 0.0 => "▼ ".into(),
            _ => String::new(),
        }
    });
    env.add_filter("pct", |v: Option<f64>| {
        v.map_or("–".to_owned(), |v| format!("{:+.0}%", v * 100.0))
    });
    env.add_filter("rate", |v: Option<f64>| {
        v.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0))
    });
    env.add_filter("num", |v: Option<f64>| {
        v.map_or("–".to_owned(), |v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
    });
}

fn template(name: &str, source: &str, report: &Weekly) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    filters(&mut env);
    if name.ends_with(".md") {
        // Every value written into the Markdown is text, never markup: titles and names
        // come from alert sources anyone can write to.
        env.set_formatter(|out, _state, value| {
            if !value.is_undefined() && !value.is_none() {
                out.write_str(&crate::export::markdown(&value.to_string()))?;
            }
            Ok(())
        });
    }
    env.add_template(name, source)?;
    env.get_template(name)?.render(report)
}

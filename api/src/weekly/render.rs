//! The weekly report written out: JSON, CSV (one row per number), or Markdown and HTML
//! from the templates beside this file; and the template filters (`duration`, `pct`,
//! `rate`, `num`) the dashboard's pages share.

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

/// One row per number: section, key, metric, value, previous, delta, delta_ratio, norm,
/// and the name of the key (the team's, service's or responder's; an incident's title).
fn csv(report: &Weekly) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "section",
        "key",
        "metric",
        "value",
        "previous",
        "delta",
        "delta_ratio",
        "norm",
        "name",
    ])?;
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut rows = |section: &str, row: &RowBody| -> csv::Result<()> {
        for (metric, c) in &row.metrics {
            w.write_record([
                section,
                row.key.as_deref().unwrap_or(""),
                metric,
                &num(c.value),
                &num(c.previous),
                &num(c.delta),
                &num(c.delta_ratio),
                &num(c.norm.flatten()),
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
        for (metric, v) in &b.metrics {
            w.write_record([
                "trend",
                &b.start.to_string(),
                metric,
                &num(*v),
                "",
                "",
                "",
                "",
                "",
            ])?;
        }
    }
    for f in &report.escalated {
        for (metric, v) in [
            ("seconds_to_first_ack", f.fact.seconds_to_first_ack),
            ("seconds_to_resolve", f.fact.seconds_to_resolve),
            ("escalation_count", Some(f.fact.escalation_count as f64)),
        ] {
            w.write_record([
                "escalated_incident",
                &f.fact.incident_id.to_string(),
                metric,
                &num(v),
                "",
                "",
                "",
                "",
                &f.fact.title,
            ])?;
        }
    }
    Ok(String::from_utf8(
        w.into_inner().map_err(csv::IntoInnerError::into_error)?,
    )?)
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

/// The filters the templates share: `duration`, `pct` (a signed change), `rate` (a share
/// as a percentage) and `num`.
pub(crate) fn filters(env: &mut minijinja::Environment<'_>) {
    env.add_filter("duration", duration);
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
    env.add_template(name, source)?;
    env.get_template(name)?.render(report)
}

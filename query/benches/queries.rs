//! Warm latency of the two questions dashboards ask most, straight from the engine: the
//! team weekly report (a week against the one before, by team, with the account norm) and
//! a 12-week weekly trend. `benches/query.sh` runs it beside DuckDB and PostgreSQL. Then
//! the cost of the changes' intervals and verdicts: the team weekly report with every row
//! compared (as the API answers it), with the intervals and without them (a threshold no
//! sample reaches), run alternately.
//!
//!   cargo bench -p mttx-query --bench queries -- FACTS ACCOUNT MONDAY TZ [RUNS]
//!
//! Prints one line per query: `name runs p50_ms p99_ms incidents`.

use std::time::Instant;

use chrono::{Days, NaiveDate};
use mttx_query::{Engine, Filters, GroupBy, Period, Unit};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    mttx_query::percentile_cont(sorted, p).unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [facts, account, monday, tz, rest @ ..] = &args[..] else {
        eprintln!("usage: queries FACTS ACCOUNT MONDAY TZ [RUNS]");
        std::process::exit(2);
    };
    let account: i64 = account.parse()?;
    let monday: NaiveDate = monday.parse()?;
    let tz: chrono_tz::Tz = tz.parse().map_err(|_| "unknown time zone")?;
    let runs: usize = rest.first().map_or(Ok(50), |r| r.parse())?;
    let engine = Engine::open(facts).await?;
    let week = Period::new(tz, monday, monday + Days::new(7), 400)?;
    let twelve = Period::new(tz, monday - Days::new(77), monday + Days::new(7), 400)?;
    let filters = Filters::default();

    let mut weekly = Vec::new();
    let mut count = 0;
    for i in 0..runs + 3 {
        let t = Instant::now();
        let r = engine
            .report(account, &week, Some(GroupBy::Team), &filters)
            .await?;
        // The first runs warm the caches (file metadata, page cache).
        if i >= 3 {
            weekly.push(t.elapsed().as_secs_f64() * 1e3);
        }
        count = r.account.current.incident_count;
    }
    weekly.sort_by(f64::total_cmp);
    println!(
        "team_weekly {runs} {:.2} {:.2} {count}",
        percentile(&weekly, 0.5),
        percentile(&weekly, 0.99)
    );

    // The intervals' cost: each run compares every row, once judged, once not.
    let unjudged = engine.clone().with_min_sample(usize::MAX);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let mut judged = 0;
    for i in 0..runs + 3 {
        for (e, out) in [(&engine, &mut with), (&unjudged, &mut without)] {
            let t = Instant::now();
            let r = e
                .report(account, &week, Some(GroupBy::Team), &filters)
                .await?;
            let verdicts = std::iter::once(&r.account)
                .chain(&r.groups)
                .flat_map(|row| row.compared())
                .filter(|(_, c)| c.interval.is_some())
                .count();
            std::hint::black_box(verdicts);
            if i >= 3 {
                out.push(t.elapsed().as_secs_f64() * 1e3);
            }
            if e.min_sample() != usize::MAX {
                judged = verdicts;
            }
        }
    }
    for (name, v) in [("with", &mut with), ("without", &mut without)] {
        v.sort_by(f64::total_cmp);
        println!(
            "team_weekly_compared_{name}_intervals {runs} {:.2} {:.2} {judged}",
            percentile(v, 0.5),
            percentile(v, 0.99)
        );
    }

    let mut trend = Vec::new();
    let mut total = 0;
    for i in 0..runs + 3 {
        let t = Instant::now();
        let buckets = engine.trend(account, &twelve, Unit::Week, &filters).await?;
        if i >= 3 {
            trend.push(t.elapsed().as_secs_f64() * 1e3);
        }
        total = buckets.iter().map(|(_, m)| m.incident_count).sum();
    }
    trend.sort_by(f64::total_cmp);
    println!(
        "trend_12_weeks {runs} {:.2} {:.2} {total}",
        percentile(&trend, 0.5),
        percentile(&trend, 0.99)
    );
    Ok(())
}

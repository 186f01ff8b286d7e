//! `mttx demo`: the embedded demo, end to end — a sample replica in SQLite (made if
//! absent), the ETL, a token for account 1, and the API and dashboard.

use std::net::SocketAddr;

use chrono::Utc;
use clap::Args;
use mttx_fixtures::Config;
use mttx_migrations::Location;

use super::Places;
use super::serve::{StopArgs, serve_until_stopped};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Incidents in the sample replica (when it is made).
    #[arg(long, default_value_t = 20_000)]
    incidents: u64,
    #[command(flatten)]
    stop: StopArgs,
}

pub async fn run(places: &Places, args: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs {
        listen,
        incidents,
        stop,
    } = args;
    let source = places.source()?;
    let fresh = match &source {
        Location::Sqlite(path) => !path.exists(),
        Location::Postgres(_) => false,
    };
    if fresh {
        let today = Utc::now().date_naive();
        let cfg = Config {
            seed: 42,
            accounts: 3,
            incidents,
            weeks: 12,
            until: today.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            ..Config::default()
        };
        eprintln!(
            "making a sample replica ({incidents} incidents, 3 accounts, 12 weeks up to {today}) in {source}"
        );
        let summary = mttx_fixtures::generate_into(cfg, &source, false).await?;
        eprintln!("{summary}");
    }
    let replica = places.replica(4).await?;
    let state = places.open_state().await?;
    let mut facts = mttx_etl::sink::delta::FactsTable::open(&places.facts).await?;
    let summary = mttx_etl::run::run(&replica, &mut facts, &state, &Default::default()).await?;
    eprintln!("etl into {}\n{summary}", facts.uri());
    let token = state.create_token(1, "demo", Some(30 * 86_400)).await?;
    // The ETL ran in this process: its counters are served beside the API's.
    let options = mttx_api::AppOptions {
        extra_metrics: Some(mttx_etl::metrics::render),
        min_sample: places.min_sample,
        cookie_secure: stop.cookie_secure,
        trust_proxy: stop.trust_proxy,
        ..Default::default()
    };
    let app = mttx_api::App::open(&places.facts, state, Some(replica), options).await?;
    let monday = mttx_api::weekly::monday_of(Utc::now().date_naive());
    let last_monday = monday - chrono::Days::new(7);
    serve_until_stopped(app, listen, stop, |bound| {
        println!(
            "\nmttx demo is serving at http://{bound}\n\n\
             token for account 1 (valid 30 days):\n  {token}\n\n\
             the dashboard: open http://{bound}/dashboard and sign in with the token\n\n\
             last week's report by team, in Berlin time:\n  \
             curl -H 'Authorization: Bearer {token}' \\\n    \
             'http://{bound}/api/v1/reports/incidents?from={last_monday}&to={monday}&tz=Europe/Berlin&group_by=team'\n\n\
             noisy alerts of that week: /api/v1/reports/noisy?from={last_monday}&to={monday}&tz=Europe/Berlin\n\
             every endpoint and parameter: http://{bound}/openapi.json\n\n\
             Ctrl-C stops it."
        );
    })
    .await
}

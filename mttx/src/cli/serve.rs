//! `mttx serve`: the report API and dashboard over the served facts generation.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{Places, shutdown_on_signal};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "MTTX_LISTEN")]
    listen: SocketAddr,
    /// Memory for cached answers, in MiB (0: compute every answer). Answers are keyed
    /// by account, parameters and facts table version, so none is ever stale.
    #[arg(long, default_value_t = 256, env = "MTTX_CACHE_MIB")]
    cache_mib: u64,
}

pub async fn run(places: &Places, args: ServeArgs) -> anyhow::Result<()> {
    let state = places.open_state().await?;
    let replica = places.replica(4).await?;
    let options = mttx_api::AppOptions {
        cache_bytes: args.cache_mib << 20,
        extra_metrics: Some(mttx_etl::metrics::render),
        min_sample: places.min_sample,
        ..Default::default()
    };
    let app = mttx_api::App::open(&places.facts, state, Some(replica), options).await?;
    let (bound, task) = start(app, args.listen).await?;
    tracing::info!(
        "serving the report API at http://{bound}/api/v1/reports/incidents (document: /openapi.json)"
    );
    eprintln!("listening on http://{bound}");
    until_stopped(task).await;
    Ok(())
}

/// Serves `app` at `listen`, following the served facts: the bound address and the task.
pub async fn start(
    app: std::sync::Arc<mttx_api::App>,
    listen: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    app.follow(Duration::from_secs(1));
    mttx_api::serve(listen, mttx_api::app(app))
        .await
        .context("--listen")
}

/// Until SIGINT/SIGTERM, or the server stops by itself.
pub async fn until_stopped(task: tokio::task::JoinHandle<()>) {
    let shutdown = shutdown_on_signal("stopping the server");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = task => {}
    }
}

//! The outward face of mttx: the `mttx` command line (and, with issue 4, the report API).

pub mod body;
pub mod cache;
pub mod cli;
pub mod dashboard;
pub mod http_metrics;
pub mod metrics_server;
pub mod openapi;
pub mod server;
pub mod weekly;

//! The outward face of mttx: the `mttx` command line (and, with issue 4, the report API).

pub mod body;
pub mod cli;
pub mod dashboard;
pub mod http;
pub mod metrics_server;
pub mod weekly;

//! The `mttx` binary as a user runs it.
#![allow(clippy::unwrap_used, reason = "a test fails loudly where setup fails")]

mod analytics;
mod cli;
mod common;
mod crash;
mod import;
mod metrics;
mod monitoring;
mod notebooks;
mod objstore;
/// The local PagerDuty of the import's own tests.
#[path = "../../../pagerduty/tests/it/server.rs"]
mod pd_server;
mod reprocess;
mod schemathesis;
mod send;
mod serve;
mod standby;
mod weekly;

//! The `mttx` binary as a user runs it.
#![allow(clippy::unwrap_used, reason = "a test fails loudly where setup fails")]

mod cli;
mod common;
mod crash;
mod metrics;
mod reprocess;
mod weekly;

//! `mttx import pagerduty` against a local server that speaks PagerDuty's REST shapes and
//! enforces its limits, serving real logs and generated accounts.
#![allow(clippy::unwrap_used, reason = "a test fails loudly where setup fails")]

mod devlake;
mod follow;
mod generated;

mod server;

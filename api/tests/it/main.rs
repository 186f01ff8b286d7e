//! The report API, dashboard and weekly report.
#![allow(clippy::unwrap_used, reason = "a test fails loudly where setup fails")]

mod api;
mod browser;
mod common;
mod csv_answers;
mod dashboard;
mod dashboard_names;
mod docs;
mod exports;
mod freshness;
mod goalert;
mod names;
mod pagerduty;
mod web;

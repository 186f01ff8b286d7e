//! The errors of the api crate's plain functions (opening the served facts, binding a
//! socket, gathering and writing the weekly report). A request's failure is an
//! [`ApiError`](crate::http::ApiError) instead, made from these where needed.

use std::net::SocketAddr;

/// Errors of the api crate's library functions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The week asked for cannot be reported; the message says what to pick instead.
    #[error(transparent)]
    Refused(#[from] crate::weekly::Refusal),
    #[error("`{0}` is not a week: write an ISO week like 2026-W44")]
    BadWeek(String),
    #[error("`{text}`: {year} has no ISO week {week}")]
    NoSuchWeek { text: String, year: i32, week: u32 },
    #[error("`{0}` is out of range: ask for a week of the years 1900 to 9999")]
    WeekOutOfRange(String),
    #[error(transparent)]
    Query(#[from] mttx_query::Error),
    #[error(transparent)]
    State(#[from] mttx_state::Error),
    #[error(transparent)]
    Location(#[from] mttx_facts::LocationError),
    #[error("cannot listen on {addr} (is another server using the port? pick another address)")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the weekly report as {format}")]
    Render {
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

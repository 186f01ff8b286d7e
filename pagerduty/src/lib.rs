//! `mttx import pagerduty`: a PagerDuty account, read through its REST API v2, kept as a
//! replica in mttx's contract (SQLite by default, or PostgreSQL), which `mttx etl run`
//! then folds like any other replica.
//!
//! - [`client`]: GETs with the token, retries, rate limits, pagination and windows.
//! - [`map`]: PagerDuty's JSON read into the contract's rows (pure).
//! - [`store`]: the replica, with stable ids, progress and quarantine beside the contract.
//! - [`import`]: the orchestration — the organisation (`org`), then incidents and log
//!   entries (`entries`) window by window, each window committed with its progress;
//!   `--follow` keeps going.

pub mod client;
mod entries;
pub mod import;
pub mod map;
mod org;
pub mod store;

pub use import::{Options, Summary, import};

/// Errors of an import.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PagerDuty refused the token ({status}): check PAGERDUTY_TOKEN or --token-file (a read-only REST API key is enough)"
    )]
    Unauthorized { status: u16 },
    #[error("PagerDuty has nothing at {0}")]
    NotFound(String),
    #[error("PagerDuty answered {status} to {path}: {message}")]
    Api {
        status: u16,
        path: String,
        message: String,
    },
    #[error("PagerDuty's answer to {path} is not JSON")]
    Malformed {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("PagerDuty's answer to {path} has an unexpected shape: {what}")]
    Shape { path: String, what: String },
    #[error("gave up on {path}: {why}")]
    GaveUp { path: String, why: String },
    /// A stop was asked for while a request waited to be tried again.
    #[error("stopped while waiting to ask {path} again")]
    Stopped { path: String },
    #[error("{path} lists more than PagerDuty can page through")]
    TooMany { path: String },
    #[error("`{url}` is not a URL")]
    BadUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Open(#[from] mttx_migrations::Error),
    #[error("replica error while {doing}")]
    Replica {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the import's progress in the replica (`{0}`) is not a time")]
    Progress(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

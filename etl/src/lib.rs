//! The ETL: extract incident log entries from the replica, fold each incident's entries
//! into one facts row (metric definitions, version 1), and commit facts with the ETL's
//! progress in one Delta transaction. Built under issue 3; this crate holds its place in
//! the layout (`api → query → facts`, `etl → facts`).

//! The state database on both backends, over real connections: PostgreSQL (`#[sqlx::test]`,
//! a database of its own per test, on the server `DATABASE_URL` names) and an SQLite file.
#![allow(clippy::unwrap_used, reason = "a test fails loudly where setup fails")]

mod deliveries;

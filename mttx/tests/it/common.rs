//! Helpers shared by the binary's tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use mttx_migrations::Location;
use mttx_state::State;
use serde_json::Value;
use sqlx::PgPool;

/// A fresh folder under the system's temp dir.
pub fn scratch(name: &str) -> PathBuf {
    mttx_fixtures::testing::scratch(&format!("cli-{name}")).unwrap()
}

/// `replica` folded by the ETL (default options) into `<dir>/facts`, with the state in
/// `<dir>/state.sqlite`: the facts location and the state.
pub async fn folded(dir: &std::path::Path, replica: &Location) -> (String, State) {
    let facts = dir.join("facts").display().to_string();
    let state = State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    let mut table = mttx_etl::sink::delta::FactsTable::open(&facts)
        .await
        .unwrap();
    mttx_etl::run::run(
        &mttx_replica::Source::open(replica, 2).await.unwrap(),
        &mut table,
        &state,
        &Default::default(),
    )
    .await
    .unwrap();
    (facts, state)
}

/// The URL of the per-test database behind `pool`.
pub async fn test_url(pool: &PgPool) -> String {
    mttx_fixtures::testing::database_url(pool).await.unwrap()
}

/// One GET over a fresh connection: status and body (JSON where it parses).
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    )
}

/// Sends `request` (a whole HTTP/1.1 request with `Connection: close`) over a fresh
/// connection: status and body (JSON where it parses).
pub fn exchange(addr: SocketAddr, request: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

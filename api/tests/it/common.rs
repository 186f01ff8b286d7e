//! Helpers shared by the binary's tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

/// A fresh folder under the system's temp dir.
pub fn scratch(name: &str) -> PathBuf {
    mttx_fixtures::testing::scratch(&format!("cli-{name}")).unwrap()
}

/// `replica` folded by the ETL (default options) into `<dir>/facts`, with the state in
/// `<dir>/state.sqlite`: the facts location and the state.
pub async fn folded(
    dir: &std::path::Path,
    replica: &mttx_migrations::Location,
) -> (String, mttx_state::State) {
    let facts = dir.join("facts").display().to_string();
    let state =
        mttx_state::State::open(&mttx_migrations::Location::Sqlite(dir.join("state.sqlite")))
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

/// The golden set in `<scratch name>/replica.sqlite`, folded by the ETL: the folder, the
/// replica, the facts location and the state.
pub async fn golden_folded(
    name: &str,
) -> (
    PathBuf,
    mttx_migrations::Location,
    String,
    mttx_state::State,
) {
    let dir = scratch(name);
    let replica = mttx_migrations::Location::Sqlite(dir.join("replica.sqlite"));
    mttx_fixtures::load_dataset(&mttx_fixtures::golden::dataset().unwrap(), &replica, false)
        .await
        .unwrap();
    let (facts, state) = folded(&dir, &replica).await;
    (dir, replica, facts, state)
}

/// The URL of the per-test database behind `pool`.
pub async fn test_url(pool: &PgPool) -> String {
    mttx_fixtures::testing::database_url(pool).await.unwrap()
}

/// One GET over a fresh connection: status, headers (lower-case names), body.
pub fn request(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = out[9..12].parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let (status, _, body) = request(addr, path, token);
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// One GET through `app` in the process, no socket: status, headers (lower-case names),
/// body.
pub async fn oneshot(
    app: &Router,
    path: &str,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut request = Request::get(path);
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

/// Any request through `app` in the process: status, headers (lower-case names), body.
pub async fn send(app: &Router, request: Request<Body>) -> (u16, Vec<(String, String)>, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// [`oneshot`], with the body as JSON (or as a JSON string when it is not JSON).
pub async fn oneshot_json(app: &Router, path: &str, token: Option<&str>) -> (u16, Value) {
    let (status, _, body) = oneshot(app, path, token).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

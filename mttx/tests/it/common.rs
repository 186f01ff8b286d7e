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

/// `mttx <args>` run in `dir`, which must succeed: its standard output.
pub fn mttx_in(dir: &std::path::Path, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mttx"));
    command.args(args).current_dir(dir);
    succeeded(&mut command)
}

/// Runs `command`, which must succeed (else the test fails with its output): its standard
/// output.
pub fn succeeded(command: &mut std::process::Command) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A child process killed (SIGKILL) however the test ends.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends SIGTERM to `child`, as Ctrl-C or a deploy's stop would (`kill -TERM`).
pub fn sigterm(child: &std::process::Child) {
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success(), "kill -TERM {}: {term}", child.id());
}

/// A child's standard error (piped), line by line as it comes, read by a thread of its own.
pub fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The address an `mttx … --metrics-addr 127.0.0.1:0` announces on its standard error
/// (logged at info), and the rest of its standard error, line by line.
pub fn metrics_address(
    child: &mut std::process::Child,
) -> (String, std::sync::mpsc::Receiver<String>) {
    let rx = stderr_lines(child);
    let mut seen = Vec::new();
    loop {
        let line = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => line,
            Err(e) => panic!(
                "no metrics address announced ({e}); the process said:\n{}",
                seen.join("\n")
            ),
        };
        if let Some(rest) = line.split("metrics at http://").nth(1) {
            return (rest.trim_end_matches("/metrics").to_owned(), rx);
        }
        seen.push(line);
    }
}

/// A loopback address with a port free right now, for a server the test starts.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits until something accepts connections at `addr`, for at most `limit`.
pub fn await_listening(addr: SocketAddr, limit: std::time::Duration) {
    let start = std::time::Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(start.elapsed() < limit, "nothing listens at {addr}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A new API token of `account`, made by `mttx token create` in `dir`.
pub fn new_token(dir: &std::path::Path, account: u32) -> String {
    new_token_on(dir, account, ".mttx/state.sqlite")
}

/// A new API token of `account` in the state database `state`, made by `mttx token create`
/// in `dir`.
pub fn new_token_on(dir: &std::path::Path, account: u32, state: &str) -> String {
    let account = account.to_string();
    let created = mttx_in(
        dir,
        &["token", "create", "--account", &account, "--state", state],
    );
    created.lines().last().unwrap().trim().to_owned()
}

/// The value of the series `series` (name and labels as written) on the Prometheus page at
/// `addr`, if it answers and has it.
pub fn metric(addr: &str, series: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A replica generated by `cfg` in the database behind `pool`, its log's id sequence set past
/// the generated entries so that a test can append more: its URL.
pub async fn appendable_replica(pool: &PgPool, cfg: mttx_fixtures::Config) -> String {
    let url = test_url(pool).await;
    mttx_fixtures::generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    sqlx::query(
        "SELECT setval('incident_log_entries_id_seq', (SELECT max(id) FROM incident_log_entries))",
    )
    .execute(pool)
    .await
    .unwrap();
    url
}

/// The committed ranges an `etl run --once` reports: "backfill: N ranges in the plan; this
/// process committed M (…)".
pub fn committed(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("backfill:"))
        .unwrap_or_else(|| panic!("no backfill line in {stdout}"));
    line.split("committed ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap()
}

/// The Python of the virtualenv scripts/ensure-python.sh makes: the folder `var` names, else
/// `~/.cache/<default>`. Fails the test, saying how to make it, when it is missing.
pub fn venv_python(var: &str, default: &str) -> String {
    let venv = std::env::var(var).unwrap_or_else(|_| {
        format!(
            "{}/.cache/{default}",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let python = format!("{venv}/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run the tests with scripts/test.sh (scripts/ensure-python.sh makes it)"
    );
    python
}

//! Monitoring mttx itself with what ships in `deploy/`: the alert rules pass `promtool check
//! rules`, and a real Prometheus (Debian's) scrapes a running `etl run` and `serve`: every
//! metric the Grafana dashboard and the alert rules query is among what it scraped, and every
//! rule evaluates without error. A request over the server's timeout is answered 503 with
//! the JSON error and counted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{
    Killed, await_listening, exchange, free_addr, get, metric, metrics_address, mttx_in as mttx,
    new_token, scratch,
};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every metric name (`mttx_…`, `process_…`) in `text`'s queries.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("mttx_") || w.starts_with("process_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A GET to Prometheus' HTTP API (HTTP/1.0: a body without chunks): its JSON `data`.
fn prometheus(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = exchange(addr, &format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n"));
    assert_eq!(status, 200, "{path}: {body}");
    body["data"].clone()
}

/// Waits up to `limit` for `ready` to hold, saying `what` was awaited if it never does.
fn eventually(limit: Duration, what: &str, mut ready: impl FnMut() -> Option<String>) {
    let start = Instant::now();
    loop {
        let Some(missing) = ready() else { return };
        assert!(start.elapsed() < limit, "{what}: {missing}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn spawn_mttx(dir: &Path, args: &[&str]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn prometheus_scrapes_every_metric_the_dashboard_and_the_alerts_query() {
    let rules = repository().join("deploy/prometheus/mttx-alerts.yml");
    let dashboard = repository().join("deploy/grafana/mttx-dashboard.json");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool (Debian's prometheus; scripts/ensure-packages.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let board: Value = serde_json::from_str(&std::fs::read_to_string(&dashboard).unwrap()).unwrap();
    let queries: Vec<String> = board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    let mut wanted = metric_names(&queries.join("\n"));
    wanted.extend(metric_names(&std::fs::read_to_string(&rules).unwrap()));
    wanted.sort();
    wanted.dedup();
    assert!(wanted.len() >= 15, "{wanted:?}");

    let dir = scratch("monitoring");
    mttx(
        &dir,
        &[
            "fixtures",
            "generate",
            "--incidents",
            "800",
            "--weeks",
            "4",
            "--bad-rate",
            "0.05",
        ],
    );
    let mut etl = spawn_mttx(
        &dir,
        &[
            "etl",
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--poll-seconds",
            "0.5",
        ],
    );
    let (etl_addr, _etl_log) = metrics_address(&mut etl.0);
    eventually(Duration::from_secs(120), "the ETL never caught up", || {
        let high = metric(&etl_addr, "mttx_etl_high_water").unwrap_or(0.0);
        let max = metric(&etl_addr, "mttx_etl_replica_max_id").unwrap_or(-1.0);
        (high <= 0.0 || high != max).then(|| format!("high water {high}, replica {max}"))
    });
    let token = new_token(&dir, 1);
    let api = free_addr();
    let _serve = spawn_mttx(&dir, &["serve", "--listen", &api.to_string()]);
    await_listening(api, Duration::from_secs(60));
    // Reports (computed, then from the cache), a drilldown, a refusal.
    let report = "/api/v1/reports/incidents?from=2026-10-05&to=2026-11-02&group_by=team&unit=week";
    for path in [
        report,
        report,
        "/api/v1/incidents?from=2026-10-26&to=2026-11-02",
    ] {
        let (status, body) = get(api, path, Some(&token));
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_eq!(get(api, report, None).0, 401);

    let prom = free_addr();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}']\n\
             scrape_configs:\n\
             - job_name: mttx-etl\n  static_configs: [{{targets: ['{etl_addr}']}}]\n\
             - job_name: mttx-api\n  static_configs: [{{targets: ['{api}']}}]\n",
            rules.display()
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's; scripts/ensure-packages.sh installs it)"),
    );
    await_listening(prom, Duration::from_secs(60));
    // Its API answers 503 until the storage is open.
    eventually(
        Duration::from_secs(60),
        "Prometheus never got ready",
        || {
            let (status, body) = exchange(prom, "GET /-/ready HTTP/1.0\r\nHost: x\r\n\r\n");
            (status != 200).then(|| format!("{status} {body}"))
        },
    );
    eventually(
        Duration::from_secs(60),
        "Prometheus never scraped both",
        || {
            let up = prometheus(prom, "/api/v1/query?query=up");
            let jobs: Vec<(String, String)> = up["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["metric"]["job"].as_str().unwrap_or("").to_owned(),
                        r["value"][1].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            let both = ["mttx-etl", "mttx-api"]
                .iter()
                .all(|job| jobs.iter().any(|(j, v)| j == job && v == "1"));
            (!both).then(|| format!("{jobs:?}"))
        },
    );
    eventually(
        Duration::from_secs(60),
        "metrics the dashboard or the alerts query were never scraped",
        || {
            let names = prometheus(prom, "/api/v1/label/__name__/values");
            let have: Vec<&str> = names
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|w| !have.contains(&w.as_str()))
                .collect();
            (!missing.is_empty()).then(|| format!("{missing:?}"))
        },
    );
    // Each process says which version it runs.
    let info = prometheus(prom, "/api/v1/query?query=mttx_build_info");
    let versions: Vec<&str> = info["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["metric"]["version"].as_str())
        .collect();
    assert_eq!(versions, [env!("CARGO_PKG_VERSION"); 2], "{info}");
    // Every alert rule evaluates (no unknown function, no bad vector matching).
    eventually(Duration::from_secs(30), "alert rules failing", || {
        let groups = prometheus(prom, "/api/v1/rules");
        let rules: Vec<&Value> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .collect();
        let bad: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{} {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        (rules.len() < 10 || !bad.is_empty()).then(|| format!("{} rules; {bad:?}", rules.len()))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request that takes longer than `--request-timeout-seconds` is answered 503 with the JSON
/// error, and counted by route: in the timeouts and in the requests as a 5xx.
#[test]
fn a_request_over_the_timeout_is_answered_503_and_counted() {
    let dir = scratch("timeout");
    mttx(
        &dir,
        &[
            "fixtures",
            "generate",
            "--incidents",
            "4000",
            "--weeks",
            "8",
        ],
    );
    mttx(&dir, &["etl", "run", "--once"]);
    let token = new_token(&dir, 1);
    let api = free_addr();
    let _serve = spawn_mttx(
        &dir,
        &[
            "serve",
            "--listen",
            &api.to_string(),
            "--cache-mib",
            "0",
            "--request-timeout-seconds",
            "0.002",
        ],
    );
    await_listening(api, Duration::from_secs(60));
    // A daily trend of eight weeks by responder: far more than 2 ms of work.
    let slow =
        "/api/v1/reports/incidents?from=2026-09-28&to=2026-11-23&group_by=responder&unit=day";
    let (status, body) = get(api, slow, Some(&token));
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("took longer than"), "{body}");
    let route = "route=\"/api/v1/reports/incidents\"";
    // /metrics may itself time out at 2 ms: ask until it answers.
    let addr = api.to_string();
    eventually(Duration::from_secs(30), "no timeout counted", || {
        let timeouts = metric(
            &addr,
            &format!("mttx_api_request_timeouts_total{{{route}}}"),
        );
        let failed = metric(
            &addr,
            &format!("mttx_api_requests_total{{{route},status=\"5xx\"}}"),
        );
        (timeouts.unwrap_or(0.0) < 1.0 || failed.unwrap_or(0.0) < 1.0)
            .then(|| format!("timeouts {timeouts:?}, 5xx {failed:?}"))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

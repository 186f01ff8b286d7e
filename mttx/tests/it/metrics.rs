//! `mttx etl run --metrics-addr`: Prometheus counters while the ETL follows the log; the
//! numbers are the golden set's (116 entries, 14 incidents, 10 bad inputs by reason).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{metrics_address, scratch, sigterm};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_etl_serves_prometheus_counters_while_following() {
    let dir = scratch("metrics");
    let out = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["fixtures", "golden"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args([
            "etl",
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--poll-seconds",
            "0.2",
            // Upkeep every 0.3 s while idle: the schedule shows in the counters.
            "--upkeep-minutes",
            "0.005",
        ])
        .current_dir(&dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, _log) = metrics_address(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let page = get(&addr, "/metrics");
        if value(&page, "mttx_etl_entries_read_total") == Some(116.0)
            && value(&page, "mttx_etl_high_water") == Some(116.0)
            && value(&page, "mttx_etl_upkeeps_total").is_some_and(|n| n >= 1.0)
        {
            break page;
        }
        assert!(Instant::now() < deadline, "never caught up:\n{page}");
        std::thread::sleep(Duration::from_millis(200));
    };
    // SIGTERM: the follower stops at a batch boundary, gives up its lead and prints its
    // summary.
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read up to entry 116"), "{stdout}");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("openmetrics-text"), "{page}");
    for (series, want) in [
        ("mttx_etl_incidents_written_total", 14.0),
        ("mttx_etl_quarantined_total{reason=\"null_field\"}", 4.0),
        ("mttx_etl_quarantined_total{reason=\"orphan\"}", 2.0),
        ("mttx_etl_quarantined_total{reason=\"duplicate\"}", 1.0),
        (
            "mttx_etl_quarantined_total{reason=\"missing_trigger\"}",
            1.0,
        ),
        ("mttx_etl_backfill_ranges_done", 1.0),
        ("mttx_etl_high_water", 116.0),
        ("mttx_etl_replica_max_id", 116.0),
    ] {
        assert_eq!(value(&page, series), Some(want), "{series} in\n{page}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! `mttx serve` stopped by SIGTERM under load, as a deploy stops it: every request already
//! received is answered, new connections are refused, and the process exits 0 within
//! `--shutdown-seconds`. `/readyz` says whether to send it requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::{
    await_listening, free_addr, get, mttx_in as mttx, new_token, scratch, sigterm,
};

/// The status and body of a response read to its end.
fn response(mut s: TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

#[test]
fn sigterm_under_load_answers_every_request_in_flight() {
    let dir = scratch("graceful");
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
    let addr = free_addr();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["serve", "--listen", &addr.to_string(), "--cache-mib", "0"])
        .args(["--shutdown-seconds", "20"])
        // tower-http's request lines: the test sees when every request has begun.
        .env("RUST_LOG", "info,tower_http=debug")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    await_listening(addr, Duration::from_secs(60));
    let (status, body) = get(addr, "/readyz", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("ready"), "{body}");

    // 32 clients each send an uncached report (a daily trend by responder, tens of
    // milliseconds of work each in a debug build), and all 32 are on the wire when the
    // server gets SIGTERM.
    const CLIENTS: usize = 32;
    let sent = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (sent, token) = (sent.clone(), token.clone());
            std::thread::spawn(move || {
                let path = format!(
                    "/api/v1/reports/incidents?from=2026-09-28&to=2026-11-23&tz=Europe/Berlin&group_by=responder&unit=day&team={}", i + 1
                );
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(
                    format!(
                        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .unwrap();
                sent.wait();
                let answer = response(s);
                (answer, Instant::now())
            })
        })
        .collect();
    sent.wait();
    // Once the server has begun every request (its log says so), stop it: the requests'
    // work, tens of milliseconds each on two cores, is still ahead of it.
    let begun = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
        let started = log
            .lines()
            .filter(|l| l.contains("started processing request") && l.contains("reports/incidents"))
            .count();
        if started >= CLIENTS {
            break;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(30),
            "the server began {started} of {CLIENTS} requests in 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    sigterm(&server);
    let termed = Instant::now();

    let mut after_term = 0;
    for c in clients {
        let ((status, body), done) = c.join().unwrap();
        assert_eq!(status, 200, "a request in flight failed: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["total"]["metrics"].is_object(), "{body}");
        if done > termed {
            after_term += 1;
        }
    }
    // The drain was exercised: requests were still being answered after the signal.
    assert!(
        after_term > 0,
        "every request finished before SIGTERM; the test proves nothing"
    );
    let code = loop {
        if let Some(code) = server.try_wait().unwrap() {
            break code;
        }
        assert!(
            termed.elapsed() < Duration::from_secs(25),
            "serve did not exit within --shutdown-seconds"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert_eq!(code.code(), Some(0), "{log}");
    assert!(log.contains("every request received was answered"), "{log}");
    assert!(TcpStream::connect(addr).is_err(), "still accepting");
    eprintln!(
        "{CLIENTS} in flight at SIGTERM, {after_term} answered after it, exit 0 in {:?}",
        termed.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

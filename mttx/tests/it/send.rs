//! `mttx report send` as a user runs it: the weekly mail reaches a real SMTP server
//! (aiosmtpd, scripts/ensure-python.sh) over STARTTLS with the API's numbers and the CSV
//! attached, the chat webhook gets its JSON, a failed send is retried and never sent twice,
//! and a schedule missed while mttx was down sends once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{free_addr, get};
use crate::weekly::golden_server;

/// The SMTP server of `smtp_sink.py`, killed when dropped.
struct Sink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority and a certificate for 127.0.0.1 signed by it, made with
/// openssl in `dir`: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mttx test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

impl Sink {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let out = dir.join(format!("mail-{}", rand_suffix()));
        std::fs::create_dir_all(&out).unwrap();
        let port = free_addr().port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_sink.py");
        let mut child = Command::new(crate::common::venv_python("MTTX_VENV", "mttx-venv"))
            .arg(script)
            .args(["--port", &port.to_string(), "--out", out.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Self { child, port, out }
    }

    /// The messages accepted so far, in order.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
            .collect()
    }

    /// Waits until `n` messages arrived (at most `limit`), then a little longer to see that
    /// no more come: the messages.
    fn await_messages(&self, n: usize, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        while self.messages().len() < n {
            assert!(
                start.elapsed() < limit,
                "{} of {n} messages after {limit:?}",
                self.messages().len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(2));
        self.messages()
    }
}

fn rand_suffix() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A chat's incoming webhook on loopback: keeps each JSON body it gets, answering 503 to
/// the first `fail_first`.
async fn webhook(fail_first: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let keep = got.clone();
    let router = axum::Router::new().route(
        "/services/T000/B000/secret",
        axum::routing::post(move |body: String| {
            let keep = keep.clone();
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy");
                }
                keep.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/services/T000/B000/secret"), got)
}

/// `mttx report send --account 1 …` over the golden set in `dir`: whether it succeeded,
/// stdout and stderr.
fn send(dir: &Path, facts: &str, envs: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["report", "send", "--account", "1"])
        .args(["--source", dir.join("replica.sqlite").to_str().unwrap()])
        .args(["--facts", facts])
        .args(["--state", dir.join("state.sqlite").to_str().unwrap()])
        .args(args)
        .env_remove("MTTX_WEBHOOK_URL")
        .env_remove("MTTX_CONFIG")
        .env_remove("MTTX_SMTP")
        .env_remove("MTTX_MAIL_FROM")
        .env_remove("MTTX_SMTP_USER")
        .env_remove("MTTX_SMTP_PASSWORD")
        .env_remove("MTTX_DASHBOARD_URL")
        .envs(envs.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CSV attachment's rows: (section, key, metric) → the value fields.
fn csv_rows(csv: &str) -> HashMap<(String, String, String), csv::StringRecord> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            ((r[0].to_owned(), r[1].to_owned(), r[2].to_owned()), r)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_mail_and_chat_message_carry_the_apis_numbers_once() {
    let served = golden_server("send-mail").await;
    let dir = served.dir.clone();
    let (ca, cert, key) = certificates(&dir);
    // The first message is refused for now (451): mttx tries again, and it arrives once.
    let sink = Sink::start(
        &dir,
        &[
            "--fail-first",
            "1",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let (hook, posted) = webhook(1).await;
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let args = [
        "--team",
        "Payments",
        "--week",
        "2026-W44",
        "--smtp",
        smtp.as_str(),
        "--smtp-ca-file",
        ca.to_str().unwrap(),
        "--from",
        "mttx <mttx@example.com>",
        "--to",
        "Payments=lead@example.com",
        "--to",
        "*=ops@example.com",
        "--dashboard-url",
        "https://mttx.example.com",
    ];
    let envs = [("MTTX_WEBHOOK_URL", hook.as_str())];
    let (ok, out, err) = tokio::task::block_in_place(|| send(&dir, &served.facts, &envs, &args));
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("2026-W44 of Payments (team 1) by email failed")
            && err.contains("451")
            && err.contains("trying again")
            && err.contains("by webhook failed")
            && err.contains("503"),
        "the refused first tries are logged: {err}"
    );
    assert!(
        !out.contains("B000/secret") && !err.contains("B000/secret"),
        "the webhook URL is a secret: {out}\n{err}"
    );
    let mails = sink.await_messages(1, Duration::from_secs(30));
    assert_eq!(mails.len(), 1, "one mail, not one per try: {mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["tls"], true, "STARTTLS was offered, so it was used");
    assert_eq!(mail["content_type"], "multipart/mixed");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["lead@example.com", "ops@example.com"])
    );
    assert_eq!(
        mail["subject"],
        "Weekly incident report: Payments, 2026-W44"
    );
    assert_eq!(mail["message_id"], "<mttx-weekly.1.1.2026-W44@example.com>");
    let plain = mail["plain"].as_str().unwrap();
    assert!(
        plain.contains(
            "Open the dashboard: https://mttx.example.com/dashboard?week=2026-W44&tz=Europe%2FBerlin&team=1"
        ) && plain.contains("| Incidents | 5 | "),
        "{plain}"
    );
    let html = mail["html"].as_str().unwrap();
    assert!(
        html.contains("<th scope=\"row\">Incidents</th><td>5</td>"),
        "{html}"
    );
    let attachment = &mail["attachments"][0];
    assert_eq!(attachment["content_type"], "text/csv");
    assert_eq!(attachment["filename"], "mttx-weekly-payments-2026-W44.csv");
    let rows = csv_rows(attachment["content"].as_str().unwrap());

    // The attachment's team numbers are the API's for the same week.
    let (addr, one) = (served.addr, served.one.clone());
    let (status, by_team) = tokio::task::spawn_blocking(move || {
        get(
            addr,
            "/api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin&group_by=team",
            Some(&one),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    let team = by_team["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "1")
        .unwrap();
    let mut compared = 0;
    for (metric, c) in team["metrics"].as_object().unwrap() {
        let row = &rows[&("team".into(), "1".into(), metric.clone())];
        for (i, field) in ["value", "previous"].iter().enumerate() {
            let got: Option<f64> = row[3 + i].parse().ok();
            let want = c[*field].as_f64();
            assert!(
                got == want || (got.unwrap_or(f64::NAN) - want.unwrap_or(f64::NAN)).abs() < 1e-9,
                "{metric} {field}: mail {got:?}, API {want:?}"
            );
            compared += 1;
        }
    }
    assert!(compared > 30, "{compared}");
    assert_eq!(team["metrics"]["incident_count"]["value"], 5.0);

    // The chat got Slack's webhook JSON once, after one 503.
    let posts = posted.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = posts[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Weekly incident report: Payments, 2026-W44")
            && text.contains("Incidents: 5 (")
            && text.contains("<https://mttx.example.com/dashboard?week=2026-W44&tz=Europe%2FBerlin&team=1|Open the dashboard>"),
        "{text}"
    );
    assert_eq!(posts[0]["blocks"][0]["type"], "header");

    // Again: nothing is sent twice.
    let (ok, out, err) = tokio::task::block_in_place(|| send(&dir, &served.facts, &envs, &args));
    assert!(ok, "{err}");
    assert!(
        out.contains("already sent 2026-W44 of Payments (team 1) by email")
            && out.contains("by webhook"),
        "{out}"
    );
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(posted.lock().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_schedule_sends_once_and_the_next_slot_sends_its_week() {
    let served = golden_server("send-schedule").await;
    let dir = served.dir.clone();
    let sink = Sink::start(&dir, &[]);
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    // Monday 2026-11-02, 07:59:56 in Berlin: every Monday 08:00 slot so far was missed (the
    // last one, 2026-10-26, reports week 43); the next, in 4 seconds, reports week 44.
    let schedule = |now: &str| {
        Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(["report", "send", "--account", "1", "--every", "mon 08:00"])
            .args(["--source", dir.join("replica.sqlite").to_str().unwrap()])
            .args(["--facts", &served.facts])
            .args(["--state", dir.join("state.sqlite").to_str().unwrap()])
            .args(["--smtp", smtp.as_str(), "--from", "mttx@example.com"])
            .args([
                "--to",
                "1=payments@example.com",
                "--to",
                "Platform=platform@example.com",
            ])
            .args(["--now", now])
            .env_remove("MTTX_WEBHOOK_URL")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let stop = |mut child: Child| {
        let _ = child.kill();
        child.wait_with_output().unwrap()
    };
    let running = schedule("2026-11-02T07:59:56+01:00");
    let mails = tokio::task::block_in_place(|| sink.await_messages(4, Duration::from_secs(60)));
    let out = stop(running);
    let log = String::from_utf8_lossy(&out.stderr);
    let mut sent: Vec<(String, String)> = mails
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap().to_owned(),
                m["rcpt_tos"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (
                "Weekly incident report: Payments, 2026-W43".to_owned(),
                "payments@example.com".to_owned()
            ),
            (
                "Weekly incident report: Payments, 2026-W44".to_owned(),
                "payments@example.com".to_owned()
            ),
            (
                "Weekly incident report: Platform, 2026-W43".to_owned(),
                "platform@example.com".to_owned()
            ),
            (
                "Weekly incident report: Platform, 2026-W44".to_owned(),
                "platform@example.com".to_owned()
            ),
        ],
        "one mail per team for the missed slot and one for the next, no more: {log}"
    );
    // Week 43 went out at once, week 44 only at its slot.
    let first_two: Vec<&str> = mails[..2]
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert!(
        first_two.iter().all(|s| s.ends_with("2026-W43")),
        "{first_two:?}"
    );

    // Down over the next slot, then started again: its week (45) goes once, and nothing
    // sent before goes again.
    let running = schedule("2026-11-12T12:00:00+01:00");
    let mails = tokio::task::block_in_place(|| sink.await_messages(6, Duration::from_secs(60)));
    let out = stop(running);
    let later: Vec<&str> = mails[4..]
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        later.len(),
        2,
        "{later:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        later.iter().all(|s| s.ends_with("2026-W45")),
        "the slot of Monday 2026-11-09 reports week 45: {later:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_fails_the_send_and_says_why() {
    let served = golden_server("send-refused").await;
    let dir = served.dir.clone();
    let sink = Sink::start(&dir, &["--reject", "gone.example"]);
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let args = [
        "--team",
        "1",
        "--week",
        "2026-W44",
        "--smtp",
        smtp.as_str(),
        "--from",
        "mttx@example.com",
        "--to",
        "1=lead@gone.example",
    ];
    let (ok, out, err) = tokio::task::block_in_place(|| send(&dir, &served.facts, &[], &args));
    assert!(!ok, "{out}");
    assert!(
        err.contains("1 send(s) of 2026-W44 did not go through")
            && err.contains("Payments (team 1) by email")
            && err.contains("no such mailbox")
            && !err.contains("trying again"),
        "a permanent refusal is not retried, and says why: {err}"
    );
    assert!(sink.messages().is_empty());
    // Fixed, the same command sends it: a failed send is tried again.
    let args = [
        "--team",
        "1",
        "--week",
        "2026-W44",
        "--smtp",
        smtp.as_str(),
        "--from",
        "mttx@example.com",
        "--to",
        "1=lead@example.com",
    ];
    let (ok, out, err) = tokio::task::block_in_place(|| send(&dir, &served.facts, &[], &args));
    assert!(ok, "{err}");
    assert!(
        out.contains("sent 2026-W44 of Payments (team 1) by email"),
        "{out}"
    );
    assert_eq!(sink.await_messages(1, Duration::from_secs(10)).len(), 1);
    // Nowhere to send is a usage error that says what to give.
    let (ok, _, err) =
        tokio::task::block_in_place(|| send(&dir, &served.facts, &[], &["--week", "2026-W44"]));
    assert!(!ok && err.contains("nowhere to send"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_teams_named_every_team_of_the_week_is_sent() {
    let served = golden_server("send-every-team").await;
    let dir = served.dir.clone();
    let (hook, posted) = webhook(0).await;
    let envs = [("MTTX_WEBHOOK_URL", hook.as_str())];
    let (ok, out, err) =
        tokio::task::block_in_place(|| send(&dir, &served.facts, &envs, &["--week", "2026-W44"]));
    assert!(ok, "{out}\n{err}");
    // Both teams of account 1 had incidents in week 44 (golden set: Payments 5, Platform 1).
    let mut titles: Vec<String> = posted
        .lock()
        .unwrap()
        .iter()
        .map(|p| p["blocks"][0]["text"]["text"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "Weekly incident report: Payments, 2026-W44",
            "Weekly incident report: Platform, 2026-W44"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

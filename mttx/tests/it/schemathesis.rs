//! schemathesis (from PyPI) against a live `mttx serve` with a token, every check on,
//! deterministic (a fixed seed) and bounded (a few examples per operation): 0 failures.
//! The one documented exception is in api/tests/schemathesis.toml.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Killed, await_listening, free_addr, mttx_in as mttx, new_token, scratch};

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../api/tests/schemathesis.toml"
);

/// schemathesis's `st` (scripts/ensure-python.sh installs it).
fn st() -> String {
    std::env::var("MTTX_SCHEMATHESIS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/mttx-st/bin/st",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

#[test]
fn schemathesis_with_every_check_finds_nothing() {
    let st = st();
    assert!(
        Path::new(&st).exists(),
        "{st} is missing: run the tests with scripts/test.sh (scripts/ensure-python.sh installs schemathesis)"
    );
    let dir = scratch("schemathesis");
    mttx(
        &dir,
        &["fixtures", "generate", "--incidents", "600", "--weeks", "4"],
    );
    mttx(&dir, &["etl", "run", "--once"]);
    let token = new_token(&dir, 1);
    let addr = free_addr();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(["serve", "--listen", &addr.to_string()])
            .current_dir(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    await_listening(addr, Duration::from_secs(60));
    let out = Command::new(&st)
        .args(["--config-file", CONFIG, "run"])
        .arg(format!("http://{addr}/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-examples", "15", "--seed", "18"])
        // One worker thread: with two, Hypothesis once crashed in Python 3.11's `ast` module,
        // which keeps its recursion-depth count in state shared by every thread ("AST
        // constructor recursion depth mismatch" while describing a lambda; CPython gh-95185,
        // gh-106905). A crash of the tool, not a finding against the API.
        .args(["--workers", "1", "--request-timeout", "30", "--no-shrink"])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary line, e.g. "1234 test cases generated, 1234 passed".
    let summary = stdout
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

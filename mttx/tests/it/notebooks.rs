//! The Python example (`examples/python/team_weekly.py`) run as a user runs it: against the
//! facts table the ETL made from a generated replica, compacted with the rewritten files
//! still on disk, and a live `mttx serve`. Its polars and deltalake numbers equal the API's
//! to the last bit, and it shows the glob's double count.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{
    Killed, await_listening, free_addr, mttx_in as mttx, new_token, scratch, succeeded,
};

#[test]
fn the_python_example_computes_the_apis_numbers() {
    let python = crate::common::venv_python("MTTX_NB_VENV", "mttx-nb");
    let dir = scratch("notebook");
    mttx(
        &dir,
        &[
            "fixtures",
            "generate",
            "--incidents",
            "3000",
            "--weeks",
            "6",
            "--accounts",
            "2",
        ],
    );
    // Small commits, then a compaction whose rewritten files stay until vacuum.
    mttx(
        &dir,
        &[
            "etl",
            "run",
            "--once",
            "--batch-entries",
            "2000",
            "--range-incidents",
            "500",
        ],
    );
    mttx(&dir, &["etl", "upkeep", "--retain-hours", "24"]);
    let token = new_token(&dir, 1);
    let addr = free_addr();
    let _serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(["serve", "--listen", &addr.to_string()])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    await_listening(addr, Duration::from_secs(60));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/team_weekly.py");
    let out = succeeded(
        Command::new(&python)
            .arg(&script)
            .args(["--facts", ".mttx/facts", "--api", &format!("http://{addr}")])
            .args(["--token", &token, "--account", "1", "--week", "2026-W47"])
            .args(["--tz", "Europe/Berlin"])
            .current_dir(&dir),
    );
    assert!(
        out.contains("equal: polars, deltalake and the mttx API agree"),
        "{out}"
    );
    assert!(out.contains("of rewritten files twice"), "{out}");
    assert!(out.contains("accounts in the table: [1, 2]"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

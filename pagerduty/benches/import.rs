//! Import throughput: a generated account served by the local PagerDuty of the tests
//! (`tests/it/server.rs`, no throttling), imported into a fresh SQLite replica, beside the
//! same rows written directly by the fixtures' writer (the peer: the replica's own write
//! path). Prints medians of three runs, entries per second and the ratio; then what
//! PagerDuty's rate limit (960 requests a minute, pages of 100) implies for 1M and 10M
//! entries. Run: `cargo bench --workspace --bench import`.

use std::time::Instant;

use mttx_fixtures::Config;
use mttx_fixtures::generate::generate_all;
use mttx_migrations::Location;
use mttx_pagerduty::{Options, import};

#[allow(
    dead_code,
    clippy::unwrap_used,
    reason = "the tests' server: helpers beyond serve(), and a bench fails loudly"
)]
#[path = "../tests/it/server.rs"]
mod server;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let cfg = Config {
        seed: 3,
        accounts: 1,
        incidents: 4_000,
        weeks: 8,
        bad_rate: 0.0,
        ..Config::default()
    };
    let (data, _) = generate_all(cfg.clone()).expect("generate");
    let entries = data.entries.len() as f64;
    let (addr, server) = server::serve(server::render(&data), server::Trouble::default()).await;
    let dir = std::env::temp_dir().join(format!("mttx-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut imports, mut directs, mut requests) = (Vec::new(), Vec::new(), 0);
    for run in 0..3 {
        let replica = Location::Sqlite(dir.join(format!("imported-{run}.sqlite")));
        let opts = Options::new(
            &format!("http://{addr}"),
            server::TOKEN.to_owned().into(),
            cfg.start() - chrono::Duration::days(1),
        );
        let before = server.requests.load(std::sync::atomic::Ordering::SeqCst);
        let t = Instant::now();
        import(&opts, &replica, |_| {}).await.expect("import");
        imports.push(t.elapsed().as_secs_f64());
        requests = server.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
        let direct = Location::Sqlite(dir.join(format!("direct-{run}.sqlite")));
        let t = Instant::now();
        mttx_fixtures::generate_into(cfg.clone(), &direct, false)
            .await
            .expect("direct write");
        directs.push(t.elapsed().as_secs_f64());
    }
    let (import_s, direct_s) = (median(imports), median(directs));
    println!(
        "{} incidents, {entries} log entries, {requests} requests per import",
        data.incidents.len()
    );
    println!(
        "import from the local PagerDuty: median {import_s:.2} s, {:.0} entries/s",
        entries / import_s
    );
    println!(
        "direct write (generate + write, the peer): median {direct_s:.2} s, {:.0} entries/s; import / direct = {:.1}",
        entries / direct_s,
        import_s / direct_s
    );
    let per_entry = requests as f64 / entries;
    for n in [1e6, 10e6] {
        let calls = n * per_entry;
        println!(
            "{n:.0} entries: about {calls:.0} requests, {:.0} minutes at PagerDuty's 960 requests a minute",
            calls / 960.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

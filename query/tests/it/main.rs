//! The query engine against the golden set's hand-worked aggregates.
#![allow(clippy::unwrap_used, reason = "a test fails loudly where setup fails")]

use std::path::PathBuf;

use mttx_etl::run::{RunOptions, run};
use mttx_etl::sink::delta::FactsTable;
use mttx_fixtures::{golden, load_dataset};
use mttx_migrations::Location;
use mttx_query::{Compared, Engine, GroupBy, Period};
use mttx_replica::Source;
use mttx_state::State;

fn scratch(name: &str) -> PathBuf {
    mttx_fixtures::testing::scratch(&format!("query-{name}")).unwrap()
}

mod differential;
mod noisy;
mod reopened;
mod zones;

/// The golden set, through the ETL, into a facts table; returns its location.
async fn golden_facts(dir: &std::path::Path) -> String {
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    load_dataset(&golden::dataset().unwrap(), &replica, false)
        .await
        .unwrap();
    etl_into(&replica, dir).await
}

/// Runs the ETL from `replica` into `dir/facts`; returns the table's location.
pub async fn etl_into(replica: &Location, dir: &std::path::Path) -> String {
    let facts = dir.join("facts").display().to_string();
    let source = Source::open(replica, 2).await.unwrap();
    let state = State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    let mut table = FactsTable::open(&facts).await.unwrap();
    run(&source, &mut table, &state, &RunOptions::default())
        .await
        .unwrap();
    facts
}

fn close(got: Option<f64>, want: Option<f64>) -> bool {
    match (got, want) {
        (None, None) => true,
        // The CSV rounds ratios to 6 decimals.
        (Some(g), Some(w)) => (g - w).abs() <= 5e-6 * w.abs().max(1.0),
        _ => false,
    }
}

/// Every aggregate of `expected_aggregates.csv` (account 1, ISO week 2026-W44 in
/// Europe/Berlin against W43, account-wide and by team) equals the hand-worked value.
#[tokio::test]
async fn golden_aggregates_are_exact() {
    let dir = scratch("golden");
    let engine = Engine::open(&golden_facts(&dir).await).await.unwrap();
    let expected = golden::expected_aggregates().unwrap();
    let first = &expected[0];
    let period = Period::new(
        first.time_zone.parse().unwrap(),
        first.from.parse().unwrap(),
        first.to.parse().unwrap(),
        400,
    )
    .unwrap();
    assert_eq!(period.previous().from.to_string(), first.previous_from);
    let report = engine
        .report(
            first.account_id,
            &period,
            Some(GroupBy::Team),
            &Default::default(),
        )
        .await
        .unwrap();
    let mut checked = 0;
    for want in &expected {
        let row = match (&want.group_by, &want.group_key) {
            (None, _) => &report.account,
            (Some(g), key) => {
                assert_eq!(g, "team");
                report
                    .groups
                    .iter()
                    .find(|r| r.key == *key)
                    .unwrap_or_else(|| panic!("no group {key:?} in {:?}", report.groups))
            }
        };
        let got: Compared = row
            .compared()
            .into_iter()
            .find(|(name, _)| *name == want.metric)
            .unwrap_or_else(|| panic!("no metric {}", want.metric))
            .1;
        let what = format!(
            "{:?}/{:?} {}: got {got:?}, want {want:?}",
            want.group_by, want.group_key, want.metric
        );
        assert!(close(got.value, want.value), "{what}");
        assert!(close(got.previous, want.previous), "{what}");
        assert!(close(got.delta, want.delta), "{what}");
        assert!(close(got.delta_ratio, want.delta_ratio), "{what}");
        checked += 1;
    }
    assert_eq!(checked, expected.len());
    assert!(checked >= 57);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_periods_and_group_bys_say_what_to_fix() {
    let tz = "Europe/Berlin".parse().unwrap();
    let d = |s: &str| s.parse().unwrap();
    let e = Period::new(tz, d("2026-11-02"), d("2026-10-26"), 400).unwrap_err();
    assert!(e.to_string().contains("must be before"), "{e}");
    let e = Period::new(tz, d("2024-01-01"), d("2026-01-01"), 400).unwrap_err();
    assert!(e.to_string().contains("at most 400"), "{e}");
    let e = "colour".parse::<GroupBy>().unwrap_err();
    assert!(e.to_string().contains("team, service"), "{e}");
}

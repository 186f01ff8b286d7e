//! The generations' orchestration as a library, without the binary: following the served
//! generation, what a reprocess has to do (the per-account version arithmetic), switching
//! and dropping — on the golden set (14 incidents, 116 log entries).

use mttx_etl::generations::{Refusal, Target, drop, list, switch};
use mttx_etl::reprocess::{plan, reprocess, target_versions};
use mttx_etl::run::RunOptions;
use mttx_etl::{Error, MetricsVersion, Shutdown};
use mttx_fixtures::{golden, load_dataset};
use mttx_migrations::Location;
use mttx_replica::Source;
use mttx_state::{GenerationStatus, State};

/// The refusal an orchestration call answered with.
fn refused<T: std::fmt::Debug>(r: Result<T, Error>) -> Refusal {
    match r {
        Err(Error::Generations(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_follow_switch_and_drop_through_the_library() {
    let dir = mttx_fixtures::testing::scratch("etl-generations").unwrap();
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    load_dataset(&golden::dataset().unwrap(), &replica, false)
        .await
        .unwrap();
    let source = Source::open(&replica, 2).await.unwrap();
    let state = State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    let base = dir.join("facts").display().to_string();

    // Following with --once: one run, on generation 1 (the base itself).
    let mut runs = Vec::new();
    mttx_etl::follow::follow_served(
        &source,
        &state,
        &base,
        &RunOptions::default(),
        |g, uri, s| runs.push((g.id, uri.to_owned(), s.entries_read, s.incidents_written)),
    )
    .await
    .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].0, 1);
    assert_eq!((runs[0].2, runs[0].3), (116, 14));

    let (served, all) = list(&state, &base).await.unwrap();
    assert_eq!((served.id, all.len()), (1, 1));
    assert_eq!(served.location, base);

    // Version arithmetic: the served versions again is nothing to do; one account to v2
    // keeps the others at v1; every account to v1 again drops that account's exception.
    let same = target_versions(&served, MetricsVersion::V1, None);
    assert_eq!(
        plan(&state, &base, &served, same, false).await.unwrap(),
        None
    );
    let rebuild = target_versions(&served, MetricsVersion::V1, None);
    assert!(
        plan(&state, &base, &served, rebuild, true)
            .await
            .unwrap()
            .is_some()
    );
    let one = target_versions(&served, MetricsVersion::V2, Some(2));
    assert_eq!(one.describe(), "1 (account 2: 2)");
    assert_eq!(
        (one.of(2), one.of(1)),
        (MetricsVersion::V2, MetricsVersion::V1)
    );

    // Nothing to switch back to, and the served generation is never dropped.
    assert!(matches!(
        refused(switch(&source, &state, &base, Target::Previous, Shutdown::new()).await),
        Refusal::NoPrevious
    ));
    assert!(matches!(
        refused(drop(&state, &base, 1, false).await),
        Refusal::DropServed(1)
    ));
    assert!(matches!(
        refused(drop(&state, &base, 7, false).await),
        Refusal::NoSuchGeneration(7)
    ));

    // Version 2 for every account, switched to; then back, and the new one dropped.
    let opts = RunOptions {
        metrics_version: MetricsVersion::V2,
        ..RunOptions::default()
    };
    let done = reprocess(&source, &state, &base, &opts, true)
        .await
        .unwrap();
    assert_eq!((done.from.id, done.to.id), (1, 2));
    assert_eq!(done.to.status, GenerationStatus::Ready);
    assert_eq!(done.summary.incidents_written, 14);
    assert!(matches!(
        refused(switch(&source, &state, &base, Target::Id(2), Shutdown::new()).await),
        Refusal::AlreadyServed(2)
    ));
    let back = switch(&source, &state, &base, Target::Previous, Shutdown::new())
        .await
        .unwrap();
    assert_eq!((back.from.id, back.to.id), (2, 1));
    assert_eq!(back.caught_up.entries_read, 0, "nothing new to catch up");
    assert_eq!(state.serving(&base).await.unwrap().id, 1);

    let dropped = drop(&state, &base, 2, false).await.unwrap();
    let (g, files) = dropped.dropped.unwrap();
    assert_eq!(g.id, 2);
    assert!(files > 0);
    assert!(dropped.was_previous);
    assert!(!std::path::Path::new(&g.location).exists());
    assert_eq!(list(&state, &base).await.unwrap().1.len(), 1);

    // A cancelled shutdown token stops a follower at once, without error.
    let stopped = Shutdown::new();
    stopped.cancel();
    let follow = RunOptions {
        once: false,
        shutdown: stopped,
        ..RunOptions::default()
    };
    let mut ran = 0;
    mttx_etl::follow::follow_served(&source, &state, &base, &follow, |_, _, _| ran += 1)
        .await
        .unwrap();
    assert_eq!(ran, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

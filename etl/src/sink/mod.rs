//! Loading: the facts table (Delta Lake), committed together with the ETL's progress. The
//! service's own records (quarantine, runs, leases) go to the state database, `mttx-state`.

pub mod append;
pub mod delta;

use mttx_state::{Quarantined, State};

use crate::Result;
use crate::transform::fold::Batch;

/// Upserts the bad input a folded batch met into the state's quarantine (idempotent, so a
/// crash before the facts commit only repeats it).
pub async fn quarantine(state: &State, run: i64, batch: &Batch) -> Result<()> {
    let records: Vec<Quarantined<'_>> = batch
        .issues
        .iter()
        .map(|i| Quarantined {
            account_id: batch.account_of(i.incident_id),
            incident_id: i.incident_id,
            entry_id: i.entry_id,
            reason: i.reason.as_str(),
            detail: &i.detail,
        })
        .collect();
    Ok(state.quarantine(run, &records).await?)
}

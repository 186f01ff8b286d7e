//! Loading: the facts table (Delta Lake) and the service's state (quarantine, run records).

pub mod delta;
pub mod state;

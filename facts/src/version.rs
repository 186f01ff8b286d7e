//! Which metric definitions a facts row was made with: a [`MetricsVersion`] per row, and
//! per generation of the table a default with per-account exceptions ([`Versions`]).

use std::collections::BTreeMap;
use std::fmt;

/// Which definitions a facts row was made with (docs/design.md, "Metric definitions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "i32")]
pub enum MetricsVersion {
    /// Version 1: attribution at trigger.
    V1 = 1,
    /// As v1, but attributed to the escalation policy the incident ended on.
    V2 = 2,
}

impl MetricsVersion {
    /// The number stored in the facts table and the state database.
    pub fn number(self) -> i32 {
        self as i32
    }
}

impl From<MetricsVersion> for i32 {
    fn from(v: MetricsVersion) -> i32 {
        v.number()
    }
}

impl fmt::Display for MetricsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// A metrics version number that names no version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "metrics version {0} does not exist: use 1 (attribution at trigger) or 2 (to the escalation policy the incident ended on)"
)]
pub struct UnknownVersion(pub i32);

impl TryFrom<i32> for MetricsVersion {
    type Error = UnknownVersion;

    fn try_from(v: i32) -> Result<Self, UnknownVersion> {
        match v {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            _ => Err(UnknownVersion(v)),
        }
    }
}

/// The metrics version of each account's facts in one generation: one version for all
/// accounts, except those reprocessed on their own (`mttx reprocess --account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub default: MetricsVersion,
    pub accounts: BTreeMap<i64, MetricsVersion>,
}

impl Versions {
    /// The version `account`'s incidents are folded with.
    pub fn of(&self, account: i64) -> MetricsVersion {
        self.accounts.get(&account).copied().unwrap_or(self.default)
    }

    /// The same versions with `account`'s set to `version` (no exception is kept for an
    /// account at the default version).
    pub fn with_account(&self, account: i64, version: MetricsVersion) -> Self {
        let mut out = self.clone();
        if version == out.default {
            out.accounts.remove(&account);
        } else {
            out.accounts.insert(account, version);
        }
        out
    }

    /// "2", or "1 (account 7: 2)" when accounts differ.
    pub fn describe(&self) -> String {
        let mut out = self.default.to_string();
        if !self.accounts.is_empty() {
            let accounts: Vec<String> = self
                .accounts
                .iter()
                .map(|(a, v)| format!("account {a}: {v}"))
                .collect();
            out.push_str(&format!(" ({})", accounts.join(", ")));
        }
        out
    }
}

impl From<MetricsVersion> for Versions {
    fn from(default: MetricsVersion) -> Self {
        Self {
            default,
            accounts: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_ones_are_refused() {
        assert_eq!(MetricsVersion::try_from(2), Ok(MetricsVersion::V2));
        assert_eq!(MetricsVersion::V1.number(), 1);
        assert_eq!(MetricsVersion::try_from(3), Err(UnknownVersion(3)));
        assert!(UnknownVersion(0).to_string().contains("use 1"));
    }

    #[test]
    fn an_account_at_the_default_version_is_no_exception() {
        let v = Versions::from(MetricsVersion::V1).with_account(7, MetricsVersion::V2);
        assert_eq!(v.of(7), MetricsVersion::V2);
        assert_eq!(v.of(8), MetricsVersion::V1);
        assert_eq!(v.describe(), "1 (account 7: 2)");
        let back = v.with_account(7, MetricsVersion::V1);
        assert!(back.accounts.is_empty());
        assert_eq!(back.describe(), "1");
    }
}

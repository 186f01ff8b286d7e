//! What the ids in an answer stand for: each account's [`Directory`] (names, time zone, an
//! importer's outside ids) read from the replica and kept for [`NAMES_TTL`] (or
//! [`super::AppOptions::names_ttl`]), so a renamed team shows its new name within that time,
//! without a reprocess. A server without a replica, or one that cannot read it right now,
//! answers with ids alone (and "Team 7" where a name is shown).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mttx_replica::Directory;
use quick_cache::sync::Cache;

use super::App;

/// How long an account's names are kept before they are read again.
pub const NAMES_TTL: Duration = Duration::from_secs(15);

/// Directories by account, kept for a while ([`NAMES_TTL`] by default).
#[derive(Debug)]
pub struct Names {
    cache: Cache<i64, (Arc<Directory>, Instant)>,
    ttl: Duration,
}

impl Names {
    /// Keeps each account's directory for `ttl` (zero: read it for every answer).
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::new(1_000),
            ttl,
        }
    }
}

impl Default for Names {
    fn default() -> Self {
        Self::new(NAMES_TTL)
    }
}

impl App {
    /// The names and outside ids of `account`'s things; an empty directory (ids only) when
    /// the server has no replica or cannot read it now (logged).
    pub async fn directory(&self, account: i64) -> Arc<Directory> {
        if let Some((d, at)) = self.names.cache.get(&account)
            && at.elapsed() < self.names.ttl
        {
            return d;
        }
        let Some(source) = &self.source else {
            return Arc::new(Directory::empty(account));
        };
        match source.directory(account).await {
            Ok(d) => {
                let d = Arc::new(d);
                self.names
                    .cache
                    .insert(account, (d.clone(), Instant::now()));
                d
            }
            Err(e) => {
                tracing::warn!(account, error = %e, "cannot read names from the replica; answering with ids");
                // The last known names beat none.
                self.names
                    .cache
                    .get(&account)
                    .map(|(d, _)| d)
                    .unwrap_or_else(|| Arc::new(Directory::empty(account)))
            }
        }
    }
}

//! The answer cache: answers kept by account, endpoint, parameters and the facts table
//! version. A repeated dashboard query is served without touching the table, and a new table
//! version is a new key, so nothing stale is ever served. Bounded by bytes (S3-FIFO
//! eviction).

use std::collections::HashMap;

use axum::body::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

#[derive(Debug, Clone)]
struct BytesWeight;

impl Weighter<String, Bytes> for BytesWeight {
    fn weight(&self, key: &String, value: &Bytes) -> u64 {
        (key.len() + value.len() + 64) as u64
    }
}

/// Answers by request.
#[derive(Debug)]
pub struct Answers {
    cache: Option<Cache<String, Bytes, BytesWeight>>,
}

impl Answers {
    /// A cache of at most `bytes` (0: no caching).
    pub fn new(bytes: u64) -> Self {
        let cache = (bytes > 0).then(|| {
            // quick_cache sizes its table from an estimate of the entry count.
            let items = (bytes / 8192).clamp(16, 1 << 20) as usize;
            Cache::with_weighter(items, bytes, BytesWeight)
        });
        Self { cache }
    }

    /// The key of a request: every part that can change the answer.
    pub fn key(
        endpoint: &str,
        account: i64,
        (generation, version): (i64, i64),
        params: &HashMap<String, String>,
    ) -> String {
        let mut p: Vec<(&String, &String)> = params.iter().collect();
        p.sort();
        let mut key = format!("{endpoint}\u{1f}{account}\u{1f}{generation}.{version}");
        for (k, v) in p {
            key.push('\u{1f}');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        key
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.cache.as_ref()?.get(key)
    }

    pub fn put(&self, key: String, body: Bytes) {
        if let Some(c) = &self.cache {
            c.insert(key, body);
        }
    }
}


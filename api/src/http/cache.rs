//! The answer cache: a handler's JSON answer, kept by account, endpoint, parameters, the
//! facts table version and, for answers that show names, the fingerprint of the names
//! ([`mttx_replica::Directory::fingerprint`]), and the facts' stated freshness. A repeated dashboard query is served without
//! touching the table, and a new table version or a rename is a new key, so nothing stale
//! is ever served. Bounded by
//! bytes (S3-FIFO eviction). Every answer says whether it came from the cache
//! (`x-mttx-cache: hit` or `miss`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mttx_query::Engine;
use mttx_replica::Directory;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde::Serialize;

use super::{ApiError, App};

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

    /// The key of a request: every part that can change the answer (`names`: the
    /// fingerprint of the names it shows, if any).
    pub fn key(
        endpoint: &str,
        account: i64,
        (generation, version, as_of): (i64, i64, Option<i64>),
        names: Option<u64>,
        params: &HashMap<String, String>,
    ) -> String {
        let mut p: Vec<(&String, &String)> = params.iter().collect();
        p.sort();
        let as_of = as_of.map_or_else(String::new, |t| t.to_string());
        let mut key = format!("{endpoint}\u{1f}{account}\u{1f}{generation}.{version}.{as_of}");
        if let Some(n) = names {
            key.push_str(&format!("\u{1f}names={n:x}"));
        }
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

/// Answers from the cache when the same account asked the same of the same table version;
/// otherwise computes with `make` (under the same engine read lock, so the version in the
/// key is the version of the answer) and keeps the answer.
#[allow(
    dead_code,
    reason = "for answers that show no names; those that do use cached_named"
)]
pub(crate) async fn cached<T, F>(
    app: &App,
    endpoint: &str,
    account: i64,
    params: &HashMap<String, String>,
    make: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce(&Engine) -> Result<T, ApiError>,
{
    cached_named(app, endpoint, account, None, params, make).await
}

/// [`cached`] for an answer that shows the names of `names`: a rename is a new answer
/// even while the facts stay as they were.
#[tracing::instrument(skip_all, fields(endpoint = endpoint, account = account))]
pub(crate) async fn cached_named<T, F>(
    app: &App,
    endpoint: &str,
    account: i64,
    names: Option<&Directory>,
    params: &HashMap<String, String>,
    make: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce(&Engine) -> Result<T, ApiError>,
{
    let engine = app.engine.read().await;
    let key = Answers::key(
        endpoint,
        account,
        (
            engine.generation(),
            engine.version(),
            engine.data_as_of().map(|t| t.timestamp_micros()),
        ),
        names.map(Directory::fingerprint),
        params,
    );
    if let Some(body) = app.answers.get(&key) {
        return Ok(json_response(body, true));
    }
    let body = to_json(&make(&engine).await?)?;
    app.answers.put(key, body.clone());
    Ok(json_response(body, false))
}

/// A JSON answer, and whether it came from the cache.
fn json_response(body: Bytes, hit: bool) -> Response {
    super::metrics::cache(hit);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("x-mttx-cache"),
                HeaderValue::from_static(if hit { "hit" } else { "miss" }),
            ),
        ],
        body,
    )
        .into_response()
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        ApiError::internal(
            "the answer could not be encoded; the server log says why",
            e,
        )
    })
}

//! PagerDuty's REST API v2, read-only: one GET at a time, with the token, retried on 5xx and
//! dropped connections (with backoff), waiting out 429s as the rate-limit headers say, and
//! classic pagination (`limit` ≤ 100, `offset + limit` ≤ 10,000) over time windows that are
//! split in two whenever they hold more than one listing can page through.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// Items per page: PagerDuty's maximum.
pub const PAGE: u64 = 100;
/// PagerDuty answers no page whose `offset + limit` is beyond this.
pub const MAX_OFFSET: u64 = 10_000;

/// A client of one PagerDuty account.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: SecretString,
    /// Requests sent (each retry counts): what the import costs.
    calls: AtomicU64,
    /// Requests answered 429 (rate limited).
    throttled: AtomicU64,
    /// Cancelled to stop: a request waiting to be tried again is not tried again.
    stop: CancellationToken,
}

/// Why one request failed, and whether trying again may help.
#[derive(Debug)]
enum Attempt {
    /// 429: wait this long (from `ratelimit-reset` or `Retry-After`), then try again.
    Throttled(Option<Duration>),
    /// 5xx, a dropped connection or a timeout: try again after a backoff.
    Transient(String),
    /// Anything else: stop.
    Fatal(Error),
    /// A stop was asked for while this request waited to be tried again.
    Stopped,
}

impl Client {
    /// A client of the API at `base` (`https://api.pagerduty.com`, or a local server).
    pub fn new(base: &str, token: SecretString) -> Result<Self> {
        let mut base = url::Url::parse(base).map_err(|source| Error::BadUrl {
            url: base.into(),
            source,
        })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("mttx/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Self {
            http,
            base,
            token,
            calls: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            stop: CancellationToken::new(),
        })
    }

    /// This client, stopping when `stop` is cancelled: a request waiting to be tried again
    /// (a backoff, or a rate limit's wait of up to an hour) ends at once with
    /// [`Error::Stopped`]; a request under way finishes.
    pub fn stopping_on(mut self, stop: CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// Requests sent so far, and how many of them were rate limited.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }

    async fn attempt(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Attempt> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|source| {
                Attempt::Fatal(Error::BadUrl {
                    url: path.into(),
                    source,
                })
            })?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .http
            .get(url)
            .query(query)
            .header("Accept", "application/vnd.pagerduty+json;version=2")
            .header(
                "Authorization",
                format!("Token token={}", self.token.expose_secret()),
            )
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // The error names the URL, never the headers: the token stays out of it.
            Err(e) => return Err(Attempt::Transient(with_causes(&e))),
        };
        let status = response.status();
        let header_secs = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(3600.0)))
        };
        if status.as_u16() == 429 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            let wait = header_secs("ratelimit-reset").or_else(|| header_secs("retry-after"));
            return Err(Attempt::Throttled(wait));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| Attempt::Transient(with_causes(&e)))?;
        if status.is_server_error() {
            return Err(Attempt::Transient(format!("{status} from {path}")));
        }
        let message = || {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect())
        };
        match status.as_u16() {
            401 | 403 => {
                return Err(Attempt::Fatal(Error::Unauthorized {
                    status: status.as_u16(),
                }));
            }
            404 => return Err(Attempt::Fatal(Error::NotFound(path.to_owned()))),
            s if !status.is_success() => {
                return Err(Attempt::Fatal(Error::Api {
                    status: s,
                    path: path.to_owned(),
                    message: message(),
                }));
            }
            _ => {}
        }
        serde_json::from_slice(&body).map_err(|source| {
            Attempt::Fatal(Error::Malformed {
                path: path.to_owned(),
                source,
            })
        })
    }

    /// One GET, retried: 5xx and dropped connections up to 8 times with backoff, 429s as
    /// long as PagerDuty asks (at most 30 times in a row), until a stop is asked for.
    #[tracing::instrument(skip_all, fields(path), err)]
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(30)
            .with_jitter();
        let transient = AtomicU32::new(0);
        let tries = AtomicU32::new(0);
        let stop = &self.stop;
        let result = (|| async {
            // A first try goes out whatever happens (the import finishes its window); a try
            // again does not once a stop is asked for.
            if tries.fetch_add(1, Ordering::Relaxed) > 0 && stop.is_cancelled() {
                return Err(Attempt::Stopped);
            }
            self.attempt(path, query).await
        })
        .retry(backoff)
        .sleep({
            let stop = stop.clone();
            move |wait| {
                let stop = stop.clone();
                async move {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => {}
                    }
                }
            }
        })
        .when(|a| match a {
            Attempt::Throttled(_) => !stop.is_cancelled(),
            Attempt::Transient(_) => {
                !stop.is_cancelled() && transient.fetch_add(1, Ordering::Relaxed) < 8
            }
            Attempt::Fatal(_) | Attempt::Stopped => false,
        })
        .adjust(|a, backoff| match a {
            Attempt::Throttled(Some(wait)) => Some(*wait + Duration::from_millis(50)),
            _ => backoff,
        })
        .notify(|a, wait| match a {
            Attempt::Throttled(_) => {
                tracing::info!(
                    path,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited by PagerDuty; waiting"
                )
            }
            Attempt::Transient(why) => {
                tracing::warn!(
                    path,
                    error = why.as_str(),
                    wait_ms = wait.as_millis() as u64,
                    "PagerDuty request failed; retrying"
                )
            }
            Attempt::Fatal(_) | Attempt::Stopped => {}
        })
        .await;
        result.map_err(|a| match a {
            Attempt::Fatal(e) => e,
            Attempt::Stopped => Error::Stopped {
                path: path.to_owned(),
            },
            // Not tried again because a stop was asked for.
            Attempt::Throttled(_) | Attempt::Transient(_) if stop.is_cancelled() => {
                Error::Stopped {
                    path: path.to_owned(),
                }
            }
            Attempt::Throttled(_) => Error::GaveUp {
                path: path.to_owned(),
                why: "still rate limited after 30 waits".into(),
            },
            Attempt::Transient(why) => Error::GaveUp {
                path: path.to_owned(),
                why,
            },
        })
    }

    /// Every item of a listing (`key` holds the page's items), page by page.
    pub async fn list(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>> {
        let first = self.page(path, key, query, 0).await?;
        self.rest(path, key, query, first).await
    }

    /// The items of `first` and of every page after it.
    async fn rest(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
        first: Page,
    ) -> Result<Vec<Value>> {
        let mut offset = first.items.len() as u64;
        let mut more = first.more && offset > 0;
        let mut out = first.items;
        while more {
            if offset + PAGE > MAX_OFFSET {
                return Err(Error::TooMany {
                    path: path.to_owned(),
                });
            }
            let page = self.page(path, key, query, offset).await?;
            let n = page.items.len() as u64;
            out.extend(page.items);
            more = page.more && n > 0;
            offset += n;
        }
        Ok(out)
    }

    async fn page(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
        offset: u64,
    ) -> Result<Page> {
        let mut q = query.to_vec();
        q.push(("limit", PAGE.to_string()));
        q.push(("offset", offset.to_string()));
        if offset == 0 {
            q.push(("total", "true".into()));
        }
        let body = self.get(path, &q).await?;
        let items = match body.get(key) {
            Some(Value::Array(items)) => items.clone(),
            _ => {
                return Err(Error::Shape {
                    path: path.to_owned(),
                    what: format!("no `{key}` list in the answer"),
                });
            }
        };
        Ok(Page {
            items,
            more: body["more"].as_bool().unwrap_or(false),
            total: body["total"].as_u64(),
        })
    }

    /// Every item of a listing created in `[since, until)`, splitting the window in two
    /// (recursively) where it holds more than pagination reaches: nothing is ever cut off.
    pub async fn list_window(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Value>> {
        let mut pending = vec![(since, until)];
        let mut out = Vec::new();
        while let Some((from, to)) = pending.pop() {
            let mut q = query.to_vec();
            q.push(("since", rfc3339(from)));
            q.push(("until", rfc3339(to)));
            let first = self.page(path, key, &q, 0).await?;
            let too_many = first.total.is_some_and(|t| t > MAX_OFFSET);
            let listed = if too_many {
                Err(Error::TooMany { path: path.into() })
            } else {
                self.rest(path, key, &q, first).await
            };
            match listed {
                Ok(items) => out.extend(items),
                Err(Error::TooMany { .. }) if to - from > chrono::Duration::seconds(1) => {
                    let mid = from + (to - from) / 2;
                    tracing::debug!(path, %from, %to, "window too full to page through; splitting it");
                    // Later half first on the stack, so windows are taken in time order.
                    pending.push((mid, to));
                    pending.push((from, mid));
                }
                Err(Error::TooMany { .. }) => {
                    return Err(Error::TooMany {
                        path: format!("{path} (more than {MAX_OFFSET} in one second from {from})"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

struct Page {
    items: Vec<Value>,
    more: bool,
    total: Option<u64>,
}

/// A time as PagerDuty takes it.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An HTTP error with what caused it ("error sending request for url (…): client error
/// (Connect): tcp connect error: Connection refused (os error 111)"): reqwest's own text
/// names only the request, and the reason to fix is in its causes.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reqwest says only which request failed; the reason is in its causes.
    #[tokio::test]
    async fn a_refused_connection_says_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // bound, then closed when the listener is dropped: nothing listens
        let err = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/teams"))
            .send()
            .await
            .unwrap_err();
        assert!(!err.to_string().to_lowercase().contains("refused"));
        let text = with_causes(&err);
        assert!(text.to_lowercase().contains("connection refused"), "{text}");
        assert!(text.contains("/teams"), "{text}");
    }
}

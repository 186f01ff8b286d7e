//! A request id on every request: the client's `X-Request-Id` when it sends a sane one,
//! else one made here; every log line of the request carries it (a `request{id=…}` span)
//! and the answer says it back in `X-Request-Id`, so a report of a failed call finds its
//! log lines.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The header both ways.
pub const HEADER: &str = "x-request-id";

/// This process's prefix: random (std's hasher seeds are drawn from the OS), so ids of
/// several servers do not collide.
static PREFIX: LazyLock<String> = LazyLock::new(|| {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
});
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A client's id is kept when it is 1 to 64 characters of letters, digits, `-`, `_`, `.`.
fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn tag(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}-{}", *PREFIX, NEXT.fetch_add(1, Ordering::Relaxed)));
    let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"));
    request.headers_mut().insert(HEADER, value.clone());
    let span = tracing::info_span!("request", id = %id);
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(HEADER, value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_client_ids_are_kept() {
        assert!(sane("abc-123_x.y"));
        assert!(!sane(""));
        assert!(!sane("a b"));
        assert!(!sane("a\r\nb"));
        assert!(!sane(&"a".repeat(65)));
    }
}

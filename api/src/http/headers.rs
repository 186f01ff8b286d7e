//! Security headers on every answer: `nosniff` and a referrer policy everywhere; on pages,
//! a content security policy that allows no script (but this server's own on the API
//! reference, `/docs`), no frame and no foreign form target,
//! and `X-Frame-Options: DENY` for older browsers; `Cache-Control: no-store` on anything
//! that carries an account's data; HSTS when the server is reached over HTTPS.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::App;

/// Pages: styles of their own `<style>` block, images of their own (inline SVG charts), no
/// script, forms only to this server, never inside a frame.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Paths whose answers hold an account's data (or a sign-in): never stored by a cache.
fn private(path: &str) -> bool {
    ["/api/", "/analytics/", "/dashboard", "/login", "/logout"]
        .iter()
        .any(|p| path.starts_with(p))
}

pub async fn secure(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let private = private(request.uri().path());
    let docs = request.uri().path().starts_with("/docs");
    let https = app.reach.https(request.headers());
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if docs {
                super::docs::POLICY
            } else {
                PAGE_POLICY
            }),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if private && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

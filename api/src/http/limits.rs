//! One error shape for everything the server answers, not only what handlers answer: a
//! request too large in its URL (414) or its headers (431) is refused here with the JSON
//! error, and an error answered without a body by the router or a layer (405 wrong method,
//! 413 body too large, a timeout) gets the JSON error with a message that says what to do.
//! HTML pages (the dashboard's own error pages) pass as they are.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::json_error;

/// The longest URL taken, in bytes.
pub const MAX_URI: usize = 8 * 1024;
/// The most request headers taken.
pub const MAX_HEADERS: usize = 100;
/// The most bytes of request headers taken.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// What to tell a client whose request a layer or the router refused without a body.
fn message(status: StatusCode) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "this method is not allowed here; the Allow header and /openapi.json list the allowed ones".into()
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is too large: send at most 64 KiB".into()
        }
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
            "the answer took too long or the server is stopping; try again, or ask for a shorter period or fewer groups".into()
        }
        s => format!(
            "{} {}",
            s.as_u16(),
            s.canonical_reason().unwrap_or("error")
        ),
    }
}

/// Refuses oversized requests with the JSON error, and gives every bodiless error answer
/// the JSON error.
pub async fn one_error_shape(request: Request, next: Next) -> Response {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI {
        return json_error(
            StatusCode::URI_TOO_LONG,
            format!("the URL is {uri} bytes long; send at most {MAX_URI}"),
        );
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request has {} headers, {bytes} bytes; send at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes",
                headers.len()
            ),
        );
    }
    let response = next.run(request).await;
    let status = response.status();
    let typed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || typed {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let mut answer = json_error(status, message(status));
    // Keep what the refusal said in headers (Allow, Retry-After), not its body's.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.remove(header::CONTENT_TYPE);
    for (k, v) in &parts.headers {
        answer.headers_mut().insert(k.clone(), v.clone());
    }
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

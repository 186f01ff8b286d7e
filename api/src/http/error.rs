//! How a request fails: every handler of the API and the dashboard returns an [`ApiError`],
//! and it becomes an answer in one place. The client gets the status and a message that
//! says what to fix (`{"error": {"status", "message"}}` from the API; the dashboard shows
//! the same message on a page). A server-side failure's source chain goes to the log, never
//! into the answer.

use std::error::Error as StdError;
use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::wire::{ErrorBody, ErrorDetail};

/// Why a server-side failure happened: kept for the log.
pub type Source = Box<dyn StdError + Send + Sync>;

/// A request the API cannot answer as asked.
#[derive(Debug)]
pub enum ApiError {
    /// 400: a parameter to fix; the message says how.
    BadRequest(String),
    /// 401: no usable token; the message says what to do.
    Unauthorized(String),
    /// 403: a token whose scope does not reach this endpoint.
    Forbidden(String),
    /// 404: nothing there, or not in the token's account.
    NotFound(String),
    /// 503: a store cannot be read right now; asking again may work.
    Unavailable {
        message: &'static str,
        source: Source,
    },
    /// 500: the server's own failure.
    Internal {
        message: &'static str,
        source: Source,
    },
}

/// A 400 with `message`.
pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

impl ApiError {
    /// A 500 whose `source` goes to the log and `message` to the client.
    pub(crate) fn internal(message: &'static str, source: impl Into<Source>) -> Self {
        Self::Internal {
            message,
            source: source.into(),
        }
    }

    /// A 503 whose `source` goes to the log and `message` to the client.
    pub(crate) fn unavailable(message: &'static str, source: impl Into<Source>) -> Self {
        Self::Unavailable {
            message,
            source: source.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told.
    pub fn message(&self) -> &str {
        match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m) => m,
            Self::Unavailable { message, .. } | Self::Internal { message, .. } => message,
        }
    }

    /// The status and message to answer with. A server-side failure is logged here, with
    /// its source chain, and only here: every answer, JSON or page, goes through this.
    pub(crate) fn answer(self) -> (StatusCode, String) {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                error = %Chain(&self),
                "answering with a server error"
            );
        }
        (status, self.message().to_owned())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl StdError for ApiError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Unavailable { source, .. } | Self::Internal { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.answer();
        json_error(status, message)
    }
}

/// The JSON error answer, `{"error": {"status", "message"}}`, as is (nothing logged): what
/// every refusal of the API looks like.
pub(crate) fn json_error(status: StatusCode, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            status: status.as_u16(),
            message,
        },
    };
    (status, axum::Json(body)).into_response()
}

/// A query the engine refuses is the client's to fix (400); any other engine failure is
/// the server's (500).
impl From<mttx_query::Error> for ApiError {
    fn from(e: mttx_query::Error) -> Self {
        match e {
            mttx_query::Error::BadRequest(m) => bad(m),
            other => ApiError::internal("the query failed; the server log says why", other),
        }
    }
}

/// An error and its sources, `outer: inner: innermost`, for the log.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_error_answers_its_message_never_its_source() {
        let source = std::io::Error::other("password authentication failed for user mttx");
        let e = ApiError::unavailable("cannot check tokens right now; try again", source);
        assert_eq!(e.to_string(), "cannot check tokens right now; try again");
        let answer = e.into_response();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"status": 503, "message": "cannot check tokens right now; try again"}})
        );
    }
}

//! The service's one error type at the HTTP boundary, and its mapping to
//! status codes and stable error codes (the only place that does this).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genuine_protocol::evidence::MalformedEvidence;
use genuine_protocol::wire::ErrorBody;

use crate::keys::KeyError;
use crate::policy::PolicyError;
use crate::replay::ReplayError;
use crate::store::StoreError;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not JSON (syntax error, too deep, empty).
    #[error("request body is not valid JSON: {0}")]
    BodyNotJson(String),
    /// The body is over the limit.
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The JSON has the wrong shape (names the field).
    #[error("request body has the wrong shape: {0}")]
    InvalidRequest(String),
    /// A field has an invalid value.
    #[error("invalid {field}: {message}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The evidence is structurally malformed.
    #[error("{0}")]
    Evidence(#[from] MalformedEvidence),
    /// No such account.
    #[error("no such account")]
    AccountUnknown,
    /// Missing or unknown admin token.
    #[error("missing or invalid admin token (send Authorization: Bearer <token>)")]
    Unauthorized,
    /// The token may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// No such thing.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// It exists already.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A policy change was refused.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// The store cannot be reached: no valid token is issued without it.
    #[error("the store is unavailable; retry later")]
    StoreUnavailable,
    /// Single use cannot be guaranteed right now.
    #[error("the replay guard is unavailable; retry later")]
    ReplayUnavailable,
    /// The client address asked for too many challenges in this window.
    #[error("too many challenges from this address; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the window ends (the `Retry-After` value).
        retry_after_secs: u64,
    },
    /// The rate limiter cannot be reached: challenges are refused (fail closed).
    #[error("the rate limiter is unavailable; retry later")]
    RateLimiterUnavailable,
    /// A fault of the service itself (never caused by input).
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable machine code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::BodyNotJson(_) => "body-not-json",
            Self::BodyTooLarge(_) => "body-too-large",
            Self::InvalidRequest(_) => "invalid-request",
            Self::InvalidField { .. } => "invalid-field",
            Self::Evidence(e) => match e {
                MalformedEvidence::TooLarge => "evidence-too-large",
                MalformedEvidence::NotCompact => "evidence-not-compact",
                MalformedEvidence::BadBase64(_) => "evidence-bad-base64",
                MalformedEvidence::HeaderNotJson => "evidence-header-not-json",
                MalformedEvidence::UnsupportedAlg => "evidence-alg-unsupported",
                MalformedEvidence::BadType => "evidence-typ-invalid",
                MalformedEvidence::BadKey(_) => "evidence-key-invalid",
                _ => "evidence-header-invalid",
            },
            Self::AccountUnknown => "account-unknown",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::Conflict(_) => "conflict",
            Self::Policy(_) => "policy-invalid",
            Self::StoreUnavailable => "store-unavailable",
            Self::ReplayUnavailable => "replay-unavailable",
            Self::RateLimited { .. } => "rate-limited",
            Self::RateLimiterUnavailable => "rate-limiter-unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BodyNotJson(_)
            | Self::InvalidRequest(_)
            | Self::InvalidField { .. }
            | Self::Evidence(_)
            | Self::Policy(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::AccountUnknown | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::StoreUnavailable | Self::ReplayUnavailable | Self::RateLimiterUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::StoreUnavailable
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "store data corrupt");
                Self::Internal
            }
            StoreError::Conflict => Self::Conflict("record"),
            StoreError::NotFound => Self::NotFound("record"),
        }
    }
}

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> Self {
        tracing::warn!(error = %e, "replay guard failed; refusing to attest");
        Self::ReplayUnavailable
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        tracing::error!(error = %e, "key operation failed");
        Self::Internal
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            Self::RateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        resp
    }
}

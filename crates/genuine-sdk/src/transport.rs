//! HTTP to the attestation service: JSON POSTs, blocking, no async runtime.
//!
//! [`HttpTransport`] uses `ureq` (HTTP/1.1, rustls on ring, the webpki root
//! certificates): no OpenSSL and no tokio, so the same code builds for
//! Android and iOS. [`Transport`] is the seam for tests and for apps that
//! must route through their own HTTP stack.

use std::time::Duration;

/// Largest answer read from the service.
const MAX_BODY: u64 = 64 * 1024;

/// An answer of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, when given as a number.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

/// The request did not get an answer (DNS, connection, TLS, timeout, or a
/// broken answer). The message names the cause, never the request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct TransportError {
    message: String,
}

impl TransportError {
    /// An error with this message (which must not hold the request body or
    /// any credential).
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Sends JSON to the service.
pub trait Transport: Send + Sync {
    /// POSTs `body` (JSON) to `url` and returns the answer, whatever its status.
    ///
    /// # Errors
    /// [`TransportError`] when no answer arrived.
    fn post_json(&self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError>;
}

/// The default transport (ureq, rustls + ring, webpki roots).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    agent: ureq::Agent,
}

impl HttpTransport {
    /// A transport whose every request ends within `timeout`.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("genuine-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self { agent }
    }
}

impl Transport for HttpTransport {
    fn post_json(&self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError> {
        let mut resp = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .send(body)
            .map_err(|e| TransportError::new(e.to_string()))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| TransportError::new(format!("reading the answer: {e}")))?;
        Ok(HttpResponse {
            status,
            retry_after,
            body,
        })
    }
}

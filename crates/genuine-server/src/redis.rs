//! The connection to Redis for cluster mode, and the error type of the
//! shared-state boundary (replay guard, rate limiter, device counter).
//!
//! One [`ConnectionManager`] is shared by every user: it multiplexes requests
//! over one connection and, when a request finds the connection dropped,
//! reconnects in the background. It is tuned to fail fast: a connection
//! attempt and a response each time out after [`TIMEOUT`], and a failed
//! reconnection is not retried in a loop (the next request starts the next
//! attempt), so during an outage every call returns an error within about a
//! second and the service answers 503 (fail closed). When Redis is back the
//! next request reconnects, without a new manager.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{IntoConnectionInfo, RedisError};

use crate::store::StoreError;

/// How long a connection attempt or a response may take.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// Why shared state (Redis, or the store behind the embedded counters) could
/// not be used. Messages never contain a URL or a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// The Redis URL is not valid (the URL itself is not repeated, as it
    /// may hold a password).
    #[error("the Redis URL is invalid: {0}")]
    InvalidUrl(String),
    /// The engine could not be reached or failed; the operation may be
    /// retried. The service answers 503.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
}

impl From<RedisError> for SharedError {
    fn from(e: RedisError) -> Self {
        Self::Unavailable(describe(&e))
    }
}

impl From<StoreError> for SharedError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// A Redis error as text for logs and error messages: its kind and detail,
/// never the connection's address or credentials.
pub(crate) fn describe(e: &RedisError) -> String {
    e.to_string()
}

/// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`).
///
/// The first connection is made before this returns; later outages are
/// survived by the returned manager (see the module documentation).
///
/// # Errors
/// [`SharedError::InvalidUrl`] if `url` does not parse, and
/// [`SharedError::Unavailable`] if Redis cannot be reached or refuses the
/// credentials. Neither repeats the URL or the password.
pub async fn connect(url: &str) -> Result<ConnectionManager, SharedError> {
    let info = url
        .into_connection_info()
        .map_err(|e| SharedError::InvalidUrl(redact(&describe(&e), url)))?;
    let password = info.redis_settings().password().map(str::to_owned);
    let client = ::redis::Client::open(info)
        .map_err(|e| SharedError::InvalidUrl(redact(&describe(&e), url)))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(0)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| {
            let mut text = redact(&describe(&e), url);
            if let Some(p) = password.as_deref().filter(|p| !p.is_empty()) {
                text = text.replace(p, "***");
            }
            SharedError::Unavailable(text)
        })
}

/// `text` with any occurrence of `url` (which may hold a password) removed.
fn redact(text: &str, url: &str) -> String {
    if url.is_empty() {
        text.to_owned()
    } else {
        text.replace(url, "<redis url>")
    }
}

/// `url` with its password replaced by `***`, for logs.
#[must_use]
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid redis url>".to_owned();
    };
    // The userinfo ends at the last '@' before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                // `redis://secret@host` carries a password without a user.
                "***".to_owned()
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_passwords() {
        assert_eq!(
            redacted_url("redis://user:s3cret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redacted_url("redis://:s3cret@host"), "redis://:***@host");
        assert_eq!(redacted_url("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redacted_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(redacted_url("not a url"), "<invalid redis url>");
    }

    #[tokio::test]
    async fn errors_never_repeat_the_url_or_password() {
        for url in [
            "redis://user:s3cret@[not-an-address",
            "nonsense://user:s3cret@host",
            "redis://user:s3cret@127.0.0.1:1/0",
        ] {
            let e = connect(url).await.err().map(|e| e.to_string());
            let text = e.unwrap_or_default();
            assert!(!text.is_empty(), "{url} must fail");
            assert!(!text.contains("s3cret"), "{text}");
        }
    }
}

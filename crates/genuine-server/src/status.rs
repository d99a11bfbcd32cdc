//! Google's Key Attestation status list (revoked and suspended attestation
//! certificates), from a file or a URL, held in [`Revocations`] for the
//! Android checks.
//!
//! A URL is fetched at start (the start fails if it cannot be, so a node
//! never runs without the list it was told to use) and again every
//! `android_status_refresh_secs`; a failed refresh keeps the last list and
//! logs a warning, so an outage of Google's endpoint never drops
//! revocations already known.

use std::sync::Arc;
use std::time::Duration;

use genuine_platform::android::RevocationList;

use crate::platform::Revocations;

/// The largest status list accepted (Google's is about 50 KiB).
const MAX_STATUS_BYTES: usize = 16 * 1024 * 1024;

/// Where the list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSource {
    /// A local file, read once at start.
    File(std::path::PathBuf),
    /// An `http(s)://` URL, fetched at start and then periodically.
    Url(String),
}

impl StatusSource {
    /// Reads the `android_status` setting.
    #[must_use]
    pub fn parse(setting: &str) -> Self {
        if setting.starts_with("https://") || setting.starts_with("http://") {
            Self::Url(setting.to_owned())
        } else {
            Self::File(setting.into())
        }
    }
}

fn client() -> Result<reqwest::Client, String> {
    // TLS through rustls with ring: no OpenSSL.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<RevocationList, String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP status {}", resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_STATUS_BYTES as u64)
    {
        return Err("larger than 16 MiB".into());
    }
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > MAX_STATUS_BYTES {
        return Err("larger than 16 MiB".into());
    }
    RevocationList::from_json(&bytes).map_err(|e| e.to_string())
}

/// Loads the list once.
///
/// # Errors
/// A message saying why the list could not be read or parsed.
pub async fn load(source: &StatusSource) -> Result<RevocationList, String> {
    match source {
        StatusSource::File(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            RevocationList::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))
        }
        StatusSource::Url(url) => fetch(&client()?, url).await,
    }
}

/// Fetches `url` every `every`, replacing the held list on success; runs
/// until aborted.
pub async fn refresh(url: String, every: Duration, into: Arc<Revocations>) {
    let http = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for the status list");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match fetch(&http, &url).await {
            Ok(list) => {
                tracing::debug!(
                    entries = list.len(),
                    "Key Attestation status list refreshed"
                );
                into.set(list);
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "could not refresh the Key Attestation status list; keeping the last one");
            }
        }
    }
}

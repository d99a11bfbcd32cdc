//! Keys from the service's JWKS URL (feature `remote`).
//!
//! [`RemoteJwks`] fetches the JWKS when it is created, refreshes it in the
//! background ([`RemoteJwks::spawn_refresh`]), and fetches it again when a
//! token names a `kid` it does not know — at most once per
//! [`RemoteOptions::min_refetch`], so a flood of made-up `kid`s cannot turn a
//! backend into a load generator against the service. Rotating keys on the
//! service therefore needs no restart of any backend.
//!
//! The verification itself stays the pure [`Verifier`]: this module only
//! decides which `Verifier` is current. A refresh that brings the same keys
//! keeps the current one (and its verified-token cache).

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use crate::{Claims, Jwks, Verifier, VerifyError};

/// Largest JWKS document accepted.
const MAX_JWKS: usize = 1024 * 1024;

/// Builds a [`Verifier`] from fetched keys (expectations, cache, required claims).
pub type BuildVerifier = dyn Fn(&Jwks) -> Result<Verifier, VerifyError> + Send + Sync;

/// Tuning of a [`RemoteJwks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Least time between two fetches triggered by unknown `kid`s (10 s).
    pub min_refetch: Duration,
    /// Timeout of one fetch (5 s).
    pub timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            min_refetch: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why the keys could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The request failed (names the cause).
    #[error("fetching the JWKS failed: {0}")]
    Http(String),
    /// The service answered with another status than 200.
    #[error("the JWKS URL answered HTTP {0}")]
    Status(u16),
    /// The body is not a JWKS (names the problem).
    #[error("the JWKS is invalid: {0}")]
    Body(String),
    /// The keys could not be turned into a verifier.
    #[error("the JWKS keys are unusable: {0}")]
    Keys(#[from] VerifyError),
}

struct Current {
    jwks: Jwks,
    verifier: Arc<Verifier>,
}

/// A verifier whose keys come from a JWKS URL.
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    build: Box<BuildVerifier>,
    options: RemoteOptions,
    current: RwLock<Arc<Current>>,
    /// Serialises fetches; holds the time of the last one.
    last_fetch: tokio::sync::Mutex<Instant>,
    /// Itself, for background fetches started from a `&self`.
    me: Weak<RemoteJwks>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// Fetches the JWKS at `url` and builds the first verifier with `build`.
    ///
    /// # Errors
    /// [`RemoteError`] if the first fetch or build fails: a backend should not
    /// start without keys.
    pub async fn connect(
        url: impl Into<String>,
        options: RemoteOptions,
        build: impl Fn(&Jwks) -> Result<Verifier, VerifyError> + Send + Sync + 'static,
    ) -> Result<Arc<Self>, RemoteError> {
        // TLS through rustls with ring: no OpenSSL.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| RemoteError::Http(e.to_string()))?;
        let url = url.into();
        let jwks = fetch(&http, &url).await?;
        let verifier = Arc::new(build(&jwks)?);
        Ok(Arc::new_cyclic(|me| Self {
            url,
            http,
            build: Box::new(build),
            options,
            current: RwLock::new(Arc::new(Current { jwks, verifier })),
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
            me: me.clone(),
        }))
    }

    fn current(&self) -> Arc<Current> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The verifier in use now.
    #[must_use]
    pub fn verifier(&self) -> Arc<Verifier> {
        self.current().verifier.clone()
    }

    /// Fetches the JWKS now; `Ok(true)` if the keys changed.
    ///
    /// # Errors
    /// [`RemoteError`]; the current keys stay in use.
    pub async fn refresh(&self) -> Result<bool, RemoteError> {
        let mut last = self.last_fetch.lock().await;
        self.refresh_locked(&mut last).await
    }

    async fn refresh_locked(&self, last: &mut Instant) -> Result<bool, RemoteError> {
        *last = Instant::now();
        let jwks = fetch(&self.http, &self.url).await?;
        if jwks == self.current().jwks {
            return Ok(false);
        }
        let verifier = Arc::new((self.build)(&jwks)?);
        let next = Arc::new(Current { jwks, verifier });
        match self.current.write() {
            Ok(mut c) => *c = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        tracing::info!(url = %self.url, "JWKS changed; new keys in use");
        Ok(true)
    }

    /// Verifies a token; an unknown `kid` triggers one (rate-limited) fetch
    /// and a second try.
    ///
    /// # Errors
    /// [`VerifyError`] naming the failed check.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Arc<Claims>, VerifyError> {
        let before = self.current();
        match before.verifier.verify_shared(token, now) {
            Err(VerifyError::UnknownKey) => {}
            other => return other,
        }
        if self.refetch_after_unknown_kid(&before).await {
            self.verifier().verify_shared(token, now)
        } else {
            Err(VerifyError::UnknownKey)
        }
    }

    /// After a token named an unknown `kid` under the keys `before`: fetches
    /// the JWKS unless another fetch replaced those keys meanwhile or the last
    /// fetch was less than [`RemoteOptions::min_refetch`] ago. `true` when
    /// other keys than `before` are now in use.
    async fn refetch_after_unknown_kid(&self, before: &Arc<Current>) -> bool {
        let mut last = self.last_fetch.lock().await;
        if !Arc::ptr_eq(before, &self.current()) {
            return true;
        }
        if last.elapsed() < self.options.min_refetch {
            return false;
        }
        match self.refresh_locked(&mut last).await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS refetch for an unknown kid failed");
                false
            }
        }
    }

    /// Refreshes every `every` in the background until the last `Arc` to this
    /// `RemoteJwks` is dropped. Needs a tokio runtime.
    #[must_use]
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                if let Err(e) = this.refresh().await {
                    tracing::warn!(url = %this.url, error = %e, "JWKS refresh failed; keeping the current keys");
                }
            }
        })
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Jwks, RemoteError> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| RemoteError::Http(e.to_string()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(RemoteError::Status(resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_JWKS as u64) {
        return Err(RemoteError::Body("larger than 1 MiB".into()));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| RemoteError::Http(e.to_string()))?;
    if bytes.len() > MAX_JWKS {
        return Err(RemoteError::Body("larger than 1 MiB".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| RemoteError::Body(e.to_string()))
}

#[cfg(feature = "tower")]
impl crate::layer::KeySource for RemoteJwks {
    fn current(&self) -> Arc<Verifier> {
        self.verifier()
    }

    /// Starts a rate-limited fetch in the background (needs a tokio runtime).
    fn unknown_kid(&self) {
        let (Some(this), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let before = self.current();
        rt.spawn(async move {
            this.refetch_after_unknown_kid(&before).await;
        });
    }
}

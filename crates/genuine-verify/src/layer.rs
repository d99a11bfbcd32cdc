//! The tower [`Layer`] for axum and hyper services.
//!
//! [`GenuineLayer`] reads the token from a request header (`Genuine-Token` by
//! default), verifies it with a shared [`Verifier`], optionally checks its
//! binding to other request headers, and then either
//!
//! - **enforce** mode (the default): answers `401 Unauthorized` with the body
//!   `{}` and `content-type: application/json` — nothing for an attacker to
//!   learn — without calling the inner service; or
//! - **monitor** mode (for rollout): logs the reason and lets the request
//!   through without claims, with the [`Refusal`] in the request extensions.
//!
//! A verified token's [`Claims`] go into the request extensions, so an axum
//! handler takes them with `Extension<genuine_verify::Claims>`.
//!
//! The reason of a refusal goes to `tracing` (`warn` in monitor mode, `debug`
//! in enforce mode, field `reason`); the token itself is never logged. Every
//! request counts once in [`Stats`]: valid, missing, invalid, or binding
//! failed.
//!
//! # Token binding
//!
//! [`GenuineLayer::bind_to`] names the headers a token is bound to (such as
//! `Authorization`). The layer concatenates their raw values in the order
//! given (every value of a repeated header, in order; a missing header
//! contributes nothing) and compares `b64url(SHA-256(data))` with the token's
//! `pay` claim. A token without `pay` is accepted unless
//! [`GenuineLayer::binding_required`] is set, in which case it is refused.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::{Extension, Router, routing::get};
//! use genuine_verify::{Claims, Expectations, Verifier, layer::GenuineLayer};
//! use http::header::AUTHORIZATION;
//!
//! async fn hello(Extension(claims): Extension<Claims>) -> String {
//!     format!("hello {}", claims.sub.unwrap_or_default())
//! }
//!
//! # fn main() -> Result<(), genuine_verify::VerifyError> {
//! let verifier = Verifier::from_hs256_secret("k1", &[7u8; 32], Expectations {
//!     issuer: "https://genuine.example.com/v1/accounts/default".into(),
//!     audiences: vec!["api.example.com".into()],
//!     leeway_secs: 5,
//! })?
//! .with_cache(10_000);
//! let layer = GenuineLayer::new(Arc::new(verifier))
//!     .enforce()
//!     .bind_to(vec![AUTHORIZATION]);
//! let stats = layer.stats();
//! let app: Router = Router::new().route("/hello", get(hello)).layer(layer);
//! # let _ = (app, stats);
//! # Ok(())
//! # }
//! ```
//!
//! The response future is an enum over the inner service's future and the
//! ready `401` (no `Box` per request).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Claims, Verifier, VerifyError};

/// The header that carries the token unless [`GenuineLayer::header_name`]
/// says otherwise (`Genuine-Token`; header names are case-insensitive).
pub const DEFAULT_HEADER: &str = "genuine-token";

/// What the layer does with a request whose token is missing or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer `401` with the body `{}`; the inner service is not called.
    #[default]
    Enforce,
    /// Log the reason and pass the request on without claims (for rollout).
    Monitor,
}

/// Why the layer refused a request's token.
///
/// In monitor mode it is put in the request extensions of a refused request.
/// Its `Display` is what is logged as `reason`; it never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request has no token header.
    #[error("token missing")]
    Missing,
    /// The token header is not visible ASCII.
    #[error("token header is not visible ASCII")]
    NotAscii,
    /// The token header appears more than once.
    #[error("token header appears more than once")]
    Repeated,
    /// The token failed verification or its binding check.
    #[error("{0}")]
    Invalid(VerifyError),
}

impl Refusal {
    /// Whether the token verified but its binding did not.
    #[must_use]
    pub fn is_binding(&self) -> bool {
        matches!(
            self,
            Self::Invalid(VerifyError::BindingMissing | VerifyError::BindingMismatch)
        )
    }
}

/// Counters of the layer's decisions; each request counts in exactly one.
#[derive(Debug, Default)]
pub struct Stats {
    valid: AtomicU64,
    missing: AtomicU64,
    invalid: AtomicU64,
    binding_failed: AtomicU64,
}

impl Stats {
    /// Requests with a token that verified (and whose binding held).
    #[must_use]
    pub fn valid(&self) -> u64 {
        self.valid.load(Ordering::Relaxed)
    }

    /// Requests without the token header.
    #[must_use]
    pub fn missing(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }

    /// Requests whose token header was present but unreadable or failed
    /// verification (binding failures are counted apart).
    #[must_use]
    pub fn invalid(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }

    /// Requests whose token verified but whose binding was missing (when
    /// required) or did not match.
    #[must_use]
    pub fn binding_failed(&self) -> u64 {
        self.binding_failed.load(Ordering::Relaxed)
    }

    fn count(&self, outcome: Result<(), &Refusal>) {
        let counter = match outcome {
            Ok(()) => &self.valid,
            Err(Refusal::Missing) => &self.missing,
            Err(r) if r.is_binding() => &self.binding_failed,
            Err(_) => &self.invalid,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The current time in Unix seconds, as the layer reads it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where the layer's keys come from: a fixed [`Verifier`]
/// ([`GenuineLayer::new`]), or keys that follow the service's JWKS URL
/// ([`RemoteJwks`](crate::remote::RemoteJwks), feature `remote`).
pub trait KeySource: Send + Sync + 'static {
    /// The verifier to use for this request.
    fn current(&self) -> Arc<Verifier>;
    /// A token named a `kid` the current keys lack: fetch keys soon. Must not
    /// block; the request itself is answered with the keys it had.
    fn unknown_kid(&self) {}
}

/// A fixed verifier as a [`KeySource`].
struct Fixed(Arc<Verifier>);

impl KeySource for Fixed {
    fn current(&self) -> Arc<Verifier> {
        self.0.clone()
    }
}

#[derive(Clone)]
struct Shared {
    keys: Arc<dyn KeySource>,
    mode: Mode,
    header: HeaderName,
    bind_to: Vec<HeaderName>,
    binding_required: bool,
    clock: Clock,
    stats: Arc<Stats>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenuineLayer")
            .field("keys", &"KeySource")
            .field("mode", &self.mode)
            .field("header", &self.header)
            .field("bind_to", &self.bind_to)
            .field("binding_required", &self.binding_required)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Verifies the request's token; counts the outcome.
    fn check(&self, headers: &HeaderMap) -> Result<Claims, Refusal> {
        let outcome = self.check_uncounted(headers);
        self.stats.count(outcome.as_ref().map(|_| ()));
        outcome
    }

    fn check_uncounted(&self, headers: &HeaderMap) -> Result<Claims, Refusal> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next().ok_or(Refusal::Missing)?;
        if values.next().is_some() {
            return Err(Refusal::Repeated);
        }
        let token = value.to_str().map_err(|_| Refusal::NotAscii)?;
        let claims = match self.keys.current().verify(token, (self.clock)()) {
            Ok(claims) => claims,
            Err(VerifyError::UnknownKey) => {
                self.keys.unknown_kid();
                return Err(Refusal::Invalid(VerifyError::UnknownKey));
            }
            Err(e) => return Err(Refusal::Invalid(e)),
        };
        if self.binding_required || (!self.bind_to.is_empty() && claims.pay.is_some()) {
            let mut data = Vec::new();
            for name in &self.bind_to {
                for v in headers.get_all(name) {
                    data.extend_from_slice(v.as_bytes());
                }
            }
            Verifier::check_binding(&claims, &data).map_err(Refusal::Invalid)?;
        }
        Ok(claims)
    }
}

/// A tower [`Layer`] that verifies Genuine tokens in front of a service.
///
/// Cloning is cheap. Clones share one [`Stats`], even when a builder method
/// then configures one of them apart (the configuration itself is copied on
/// write).
#[derive(Debug, Clone)]
pub struct GenuineLayer {
    shared: Arc<Shared>,
}

impl GenuineLayer {
    /// A layer in enforce mode reading the `Genuine-Token` header, without
    /// binding, using the system clock.
    #[must_use]
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self::with_keys(Arc::new(Fixed(verifier)))
    }

    /// A layer whose keys come from `keys`, e.g. an `Arc<RemoteJwks>` that
    /// follows the service's JWKS URL: a token with a `kid` the keys lack is
    /// refused and triggers a (rate-limited) fetch in the background, so keys
    /// rotated on the service are picked up without a restart. Otherwise as
    /// [`GenuineLayer::new`].
    #[must_use]
    pub fn with_keys(keys: Arc<dyn KeySource>) -> Self {
        Self {
            shared: Arc::new(Shared {
                keys,
                mode: Mode::Enforce,
                header: HeaderName::from_static(DEFAULT_HEADER),
                bind_to: Vec::new(),
                binding_required: false,
                clock: Arc::new(system_clock),
                stats: Arc::new(Stats::default()),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Sets the [`Mode`].
    #[must_use]
    pub fn mode(self, mode: Mode) -> Self {
        self.edit(|s| s.mode = mode)
    }

    /// Enforce mode: a request without a valid token gets `401` with `{}`.
    #[must_use]
    pub fn enforce(self) -> Self {
        self.mode(Mode::Enforce)
    }

    /// Monitor mode: a request without a valid token is logged and passed on
    /// without claims.
    #[must_use]
    pub fn monitor(self) -> Self {
        self.mode(Mode::Monitor)
    }

    /// The header that carries the token (default `Genuine-Token`).
    #[must_use]
    pub fn header_name(self, name: HeaderName) -> Self {
        self.edit(|s| s.header = name)
    }

    /// The headers a token is bound to, concatenated in this order (every
    /// value of a repeated header, in order; a missing header contributes
    /// nothing). A token with `pay` must match `b64url(SHA-256(data))`.
    #[must_use]
    pub fn bind_to(self, headers: Vec<HeaderName>) -> Self {
        self.edit(|s| s.bind_to = headers)
    }

    /// Whether a token must carry `pay` (default `false`: a token without
    /// `pay` is accepted). With no [`GenuineLayer::bind_to`] headers, the
    /// bound data is empty.
    #[must_use]
    pub fn binding_required(self, required: bool) -> Self {
        self.edit(|s| s.binding_required = required)
    }

    /// The clock, in Unix seconds (default: the system time).
    #[must_use]
    pub fn clock(self, clock: Clock) -> Self {
        self.edit(|s| s.clock = clock)
    }

    /// The counters of this layer's decisions.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }
}

impl<S> Layer<S> for GenuineLayer {
    type Service = GenuineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GenuineService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`GenuineLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct GenuineService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> GenuineService<S> {
    /// The counters of this service's decisions.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }
}

fn unauthorized<B: From<&'static str>>() -> Response<B> {
    let mut response = Response::new(B::from("{}"));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GenuineService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.shared.check(req.headers()) {
            Ok(claims) => {
                req.extensions_mut().insert(claims);
            }
            Err(refusal) => match self.shared.mode {
                Mode::Enforce => {
                    tracing::debug!(reason = %refusal, "genuine token refused");
                    return ResponseFuture {
                        state: State::Refused { _body: PhantomData },
                    };
                }
                Mode::Monitor => {
                    tracing::warn!(reason = %refusal, "genuine token refused (monitor)");
                    req.extensions_mut().insert(refusal);
                }
            },
        }
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project! {
    /// The response future of [`GenuineService`]: the inner service's future,
    /// or the ready `401` of enforce mode.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
        },
        Refused {
            _body: PhantomData<fn() -> B>,
        },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Inner { .. } => "Inner",
            State::Refused { .. } => "Refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<&'static str>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Refused { .. } => Poll::Ready(Ok(unauthorized())),
        }
    }
}

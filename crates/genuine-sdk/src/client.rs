//! The client: token cache, one attestation in flight, backoff.
//!
//! All decisions happen under one mutex in [`step`], a function of the
//! state and the time, shared by the blocking and the async API:
//!
//! 1. a cached token for the current binding with more than the margin of
//!    life left is returned (no network);
//! 2. a caller that joined a flight takes that flight's result;
//! 3. if an attestation is in flight, the caller waits for it (condvar for
//!    blocking callers, a waker for async ones) — one attestation, shared by
//!    all concurrent callers;
//! 4. during the backoff after a network failure the last error (or a cached
//!    token that has not expired yet) is returned without a network call;
//! 5. otherwise this caller starts the flight: on its own thread for
//!    [`Client::token_blocking`], on a new thread for [`Client::token`].
//!
//! Token lifetimes are measured from the moment the attest request was sent,
//! so the cache can only err on the early side, on two clocks: the
//! monotonic one (`CLOCK_BOOTTIME` by default, which counts suspend) and the
//! wall clock (as an interval: the device's clock may be off, but it keeps
//! running while the device sleeps, where some monotonic clocks stop). A
//! token is handed out only while both say it has life left. The lifetime is
//! the least of the service's `expires_in`, the token's own `exp − iat` and
//! one day, so no answer of the service can overflow the arithmetic.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use genuine_protocol::b64;
use genuine_protocol::evidence::{
    EvidenceClaims, MeasurementClaim, SignWithError, Signals, sign_evidence_with,
};
use genuine_protocol::measure::proof;
use genuine_protocol::wire::{
    AttestRequest, AttestResponse, ChallengeRequest, ChallengeResponse, ErrorBody,
};
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Status};
use crate::keystore::{DeviceKeyStore, DeviceSigner, FileKeyStore};
use crate::probe::{Probe, default_probe};
use crate::transport::{HttpResponse, HttpTransport, Transport};

/// A token whose stale copy is still handed out during an outage must have
/// at least this much life left.
const STALE_SAFETY: Duration = Duration::from_secs(5);

/// The longest lifetime a token is cached for, whatever the service says.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// An attestation token (a JWT) for the `Genuine-Token` header.
///
/// Its `Debug` does not show it: tokens are credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    value: Arc<str>,
    lifetime: Duration,
}

impl Token {
    /// The compact JWT.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Its lifetime as issued: the least of the service's `expires_in`, the
    /// token's `exp − iat` and one day.
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes>)", self.value.len())
    }
}

/// Builds a [`Client`] with other parts than the defaults: a hardware key
/// store, an app's own HTTP stack, or test doubles.
pub struct ClientBuilder {
    config: Config,
    transport: Option<Arc<dyn Transport>>,
    key_store: Option<Box<dyn DeviceKeyStore>>,
    probe: Option<Box<dyn Probe>>,
    clock: Option<Arc<dyn Clock>>,
}

impl ClientBuilder {
    /// Use this transport instead of [`HttpTransport`].
    #[must_use]
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }

    /// Use this key store instead of [`FileKeyStore`] in the data dir.
    #[must_use]
    pub fn key_store(mut self, k: Box<dyn DeviceKeyStore>) -> Self {
        self.key_store = Some(k);
        self
    }

    /// Use this probe instead of the platform's.
    #[must_use]
    pub fn probe(mut self, p: Box<dyn Probe>) -> Self {
        self.probe = Some(p);
        self
    }

    /// Use this clock instead of the system's.
    #[must_use]
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = Some(c);
        self
    }

    /// Checks the configuration and loads (or creates) the device key.
    ///
    /// # Errors
    /// [`Error::Config`] naming a wrong setting; [`Error::DeviceKey`] when
    /// the key can be neither loaded nor created.
    pub fn build(self) -> Result<Client, Error> {
        self.config.validate()?;
        let store = self
            .key_store
            .unwrap_or_else(|| Box::new(FileKeyStore::new(self.config.data_dir.clone())));
        let signer = store.load_or_create()?;
        let device_id = signer.public_key().device_id();
        let base = self.config.base_url().to_owned();
        let transport = self
            .transport
            .unwrap_or_else(|| Arc::new(HttpTransport::new(self.config.request_timeout)));
        Ok(Client {
            inner: Arc::new(Inner {
                challenge_url: format!("{base}/v1/challenge"),
                attest_url: format!("{base}/v1/attest"),
                config: self.config,
                transport,
                signer,
                probe: self.probe.unwrap_or_else(default_probe),
                clock: self
                    .clock
                    .unwrap_or_else(|| Arc::new(SystemClock::default())),
                rng: SystemRandom::new(),
                device_id,
                state: Mutex::new(State::default()),
                done: Condvar::new(),
            }),
        })
    }
}

/// The SDK's entry point: hands out attestation tokens for one app and API.
///
/// Cheap to clone (the clones share the cache and the key); `Send + Sync`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("app_id", &self.inner.config.app_id)
            .field("api", &self.inner.config.api)
            .field("device_id", &self.inner.device_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: Config,
    challenge_url: String,
    attest_url: String,
    transport: Arc<dyn Transport>,
    signer: Arc<dyn DeviceSigner>,
    probe: Box<dyn Probe>,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    device_id: String,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// `b64url(SHA-256(bound data))`.
    binding: Option<String>,
    binding_gen: u64,
    in_flight: Option<u64>,
    next_flight: u64,
    finished: Option<Finished>,
    status: Option<Status>,
    /// Consecutive flights that ended in a retryable error.
    failures: u32,
    cooldown_until: Option<Duration>,
    wakers: Vec<Waker>,
    /// The signals of the last evidence built (what was, or was about to
    /// be, sent).
    last_signals: Option<Signals>,
}

struct Cached {
    token: Token,
    /// Returned from the cache until then (monotonic clock) …
    fresh_until: Duration,
    /// … and until then (wall clock, Unix seconds).
    wall_fresh_until: i64,
    /// Still handed out during an outage until then (monotonic) …
    usable_until: Duration,
    /// … and until then (wall clock).
    wall_usable_until: i64,
    binding_gen: u64,
}

/// The time of one decision, on both clocks.
#[derive(Debug, Clone, Copy)]
struct Now {
    mono: Duration,
    wall: i64,
}

struct Finished {
    id: u64,
    binding_gen: u64,
    result: Result<Token, Error>,
}

/// What the flight that a caller starts attests with.
struct Ticket {
    id: u64,
    binding: Option<String>,
    binding_gen: u64,
}

enum Step {
    Ready(Result<Token, Error>),
    Wait(u64),
    Start(Ticket),
}

impl State {
    fn usable_stale(&self, now: Now) -> Option<Token> {
        self.cached
            .as_ref()
            .filter(|c| {
                c.binding_gen == self.binding_gen
                    && now.mono < c.usable_until
                    && now.wall < c.wall_usable_until
            })
            .map(|c| c.token.clone())
    }

    /// A flight's error, or during an outage a token that has not expired.
    fn settle(&self, result: &Result<Token, Error>, now: Now) -> Result<Token, Error> {
        match result {
            Err(e) if e.is_retryable() => self.usable_stale(now).ok_or_else(|| e.clone()),
            other => other.clone(),
        }
    }
}

/// The decision for one caller (see the module docs).
fn step(st: &mut State, now: Now, joined: Option<u64>) -> Step {
    if let Some(c) = &st.cached
        && c.binding_gen == st.binding_gen
        && now.mono < c.fresh_until
        && now.wall < c.wall_fresh_until
    {
        return Step::Ready(Ok(c.token.clone()));
    }
    if let (Some(j), Some(f)) = (joined, &st.finished)
        && f.id == j
        && f.binding_gen == st.binding_gen
    {
        return Step::Ready(st.settle(&f.result, now));
    }
    if let Some(id) = st.in_flight {
        return Step::Wait(id);
    }
    if let (Some(until), Some(f)) = (st.cooldown_until, &st.finished)
        && now.mono < until
        && f.result.is_err()
    {
        return Step::Ready(st.settle(&f.result, now));
    }
    let id = st.next_flight;
    st.next_flight += 1;
    st.in_flight = Some(id);
    Step::Start(Ticket {
        id,
        binding: st.binding.clone(),
        binding_gen: st.binding_gen,
    })
}

impl Client {
    /// A client with the platform's defaults: the device key in
    /// `config.data_dir`, HTTPS through [`HttpTransport`], this platform's
    /// measurement and signals, the system clock.
    ///
    /// # Errors
    /// See [`ClientBuilder::build`].
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::builder(config).build()
    }

    /// A builder to replace some of the default parts.
    #[must_use]
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            config,
            transport: None,
            key_store: None,
            probe: None,
            clock: None,
        }
    }

    /// This installation's device id (22 characters; protocol §2).
    #[must_use]
    pub fn device_id(&self) -> &str {
        &self.inner.device_id
    }

    /// The outcome of the last attestation, for the [`STATUS_HEADER`] a
    /// request without a token carries.
    ///
    /// [`STATUS_HEADER`]: crate::STATUS_HEADER
    #[must_use]
    pub fn status(&self) -> Status {
        self.inner.lock().status.unwrap_or(Status::Pending)
    }

    /// Binds the next tokens to `data` (their `pay` claim is
    /// `b64url(SHA-256(data))`). A change drops the cached token, so the
    /// next call attests afresh; setting the same data again changes nothing.
    pub fn set_binding(&self, data: impl AsRef<[u8]>) {
        let hash = ring::digest::digest(&ring::digest::SHA256, data.as_ref());
        self.inner.rebind(Some(b64::encode(hash.as_ref())));
    }

    /// Stops binding tokens (drops the cached token if it was bound).
    pub fn clear_binding(&self) {
        self.inner.rebind(None);
    }

    /// Drops the cached token, e.g. after the API refused it: the next call
    /// attests afresh.
    pub fn invalidate(&self) {
        self.inner.lock().cached = None;
    }

    /// The signals of the last evidence this client built (and sent, unless
    /// signing or the network failed): exactly what the service was told,
    /// e.g. to show a user what the SDK saw. `None` before the first
    /// attestation that got as far as observing. Not secret.
    #[must_use]
    pub fn last_signals(&self) -> Option<Signals> {
        self.inner.lock().last_signals.clone()
    }

    /// A token, blocking the calling thread while an attestation runs. Needs
    /// no async runtime.
    ///
    /// # Errors
    /// [`Error`]: retryable network or service errors, a revealed rejection,
    /// or a configuration, key or measurement problem.
    pub fn token_blocking(&self) -> Result<Token, Error> {
        let inner = &self.inner;
        let mut joined = None;
        let mut st = inner.lock();
        loop {
            let now = inner.now();
            match step(&mut st, now, joined) {
                Step::Ready(r) => return r,
                Step::Wait(id) => {
                    joined = Some(id);
                    st = inner.done.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
                Step::Start(ticket) => {
                    drop(st);
                    return Inner::run_flight(inner, ticket);
                }
            }
        }
    }

    /// A token, without blocking the caller. Works on any executor: a cache
    /// hit is answered in place; an attestation runs on a thread of its own
    /// (one for all concurrent callers) that wakes the waiting tasks.
    ///
    /// # Errors
    /// As [`Client::token_blocking`].
    pub async fn token(&self) -> Result<Token, Error> {
        let mut joined = None;
        std::future::poll_fn(|cx| self.poll_token(cx, &mut joined)).await
    }

    fn poll_token(
        &self,
        cx: &mut Context<'_>,
        joined: &mut Option<u64>,
    ) -> Poll<Result<Token, Error>> {
        let inner = &self.inner;
        let mut st = inner.lock();
        let now = inner.now();
        match step(&mut st, now, *joined) {
            Step::Ready(r) => Poll::Ready(r),
            Step::Wait(id) => {
                *joined = Some(id);
                register(&mut st, cx.waker());
                Poll::Pending
            }
            Step::Start(ticket) => {
                let (id, binding_gen) = (ticket.id, ticket.binding_gen);
                *joined = Some(id);
                register(&mut st, cx.waker());
                drop(st);
                let flight = inner.clone();
                let spawned = std::thread::Builder::new()
                    .name("genuine-attest".into())
                    .spawn(move || {
                        let _ = Inner::run_flight(&flight, ticket);
                    });
                match spawned {
                    Ok(_) => Poll::Pending,
                    Err(e) => {
                        let err = Error::Internal(format!("cannot start a thread: {e}"));
                        let mut guard = FlightGuard::new(inner, id, binding_gen);
                        let _ = inner.finish(&mut guard, Err(err.clone()), None);
                        Poll::Ready(Err(err))
                    }
                }
            }
        }
    }
}

fn register(st: &mut State, waker: &Waker) {
    if !st.wakers.iter().any(|w| w.will_wake(waker)) {
        st.wakers.push(waker.clone());
    }
}

/// Ends a flight whatever happens: when dropped — after `finish`, or while
/// the flight unwinds from a panic anywhere (the probe, the transport, or
/// `finish` itself) — it publishes an error if `finish` did not publish the
/// result, and always wakes every waiter (condvar and wakers), so no
/// waiter ever hangs. Its drop cannot panic (a poisoned lock is taken over;
/// a waker that panics is contained).
struct FlightGuard<'a> {
    inner: &'a Inner,
    id: u64,
    binding_gen: u64,
    published: bool,
}

impl<'a> FlightGuard<'a> {
    fn new(inner: &'a Inner, id: u64, binding_gen: u64) -> Self {
        Self {
            inner,
            id,
            binding_gen,
            published: false,
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        if !self.published {
            if st.in_flight == Some(self.id) {
                st.in_flight = None;
            }
            // Unless a later flight already published its result.
            if st.finished.as_ref().is_none_or(|f| f.id <= self.id) {
                st.status = Some(Status::Internal);
                st.finished = Some(Finished {
                    id: self.id,
                    binding_gen: self.binding_gen,
                    result: Err(Error::Internal("the attestation stopped abnormally".into())),
                });
            }
        }
        let wakers = std::mem::take(&mut st.wakers);
        drop(st);
        self.inner.done.notify_all();
        for w in wakers {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn rebind(&self, binding: Option<String>) {
        let mut st = self.lock();
        if st.binding != binding {
            st.binding = binding;
            st.binding_gen += 1;
            st.cached = None;
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.clock.monotonic(),
            wall: self.clock.unix_secs(),
        }
    }

    /// Runs one flight to its end and publishes the result; the guard wakes
    /// the waiters when it drops, also if anything here panics.
    fn run_flight(this: &Inner, ticket: Ticket) -> Result<Token, Error> {
        let mut guard = FlightGuard::new(this, ticket.id, ticket.binding_gen);
        let (result, sent_at) = this.attest(ticket.binding.as_deref());
        this.finish(&mut guard, result, sent_at)
    }

    /// Publishes a flight's result: cache, status, backoff (the guard then
    /// wakes every waiter). Returns what the flight's own caller gets.
    fn finish(
        &self,
        guard: &mut FlightGuard<'_>,
        result: Result<Token, Error>,
        sent_at: Option<Now>,
    ) -> Result<Token, Error> {
        let (id, binding_gen) = (guard.id, guard.binding_gen);
        let now = self.now();
        let mut st = self.lock();
        if st.in_flight == Some(id) {
            st.in_flight = None;
        }
        match &result {
            Ok(token) => {
                st.status = Some(Status::Ok);
                st.failures = 0;
                st.cooldown_until = None;
                if binding_gen == st.binding_gen
                    && let Some(sent) = sent_at
                {
                    // `lifetime` is at most a day (`token_lifetime`) and the
                    // margins were checked by `Config::validate`; saturating
                    // all the same: no answer may overflow this.
                    let life = token.lifetime.min(MAX_TOKEN_LIFETIME);
                    let expires = sent.mono.saturating_add(life);
                    let wall_expires = sent.wall.saturating_add(secs_i64(life));
                    let margin = self.config.refresh_margin;
                    st.cached = Some(Cached {
                        token: token.clone(),
                        fresh_until: expires.saturating_sub(margin),
                        wall_fresh_until: wall_expires.saturating_sub(secs_i64(margin)),
                        usable_until: expires.saturating_sub(STALE_SAFETY),
                        wall_usable_until: wall_expires.saturating_sub(secs_i64(STALE_SAFETY)),
                        binding_gen,
                    });
                }
            }
            Err(e) => {
                st.status = Some(e.status());
                if e.is_retryable() {
                    let delay = self.backoff(st.failures);
                    st.failures = st.failures.saturating_add(1);
                    let hint = retry_after(e).unwrap_or_default();
                    let wait = delay.max(hint.min(self.config.backoff_max));
                    st.cooldown_until = Some(now.mono.saturating_add(wait));
                } else {
                    st.failures = 0;
                    st.cooldown_until = None;
                    // A rejection or a broken setup: the old token must not
                    // outlive it.
                    st.cached = None;
                }
            }
        }
        let out = st.settle(&result, now);
        st.finished = Some(Finished {
            id,
            binding_gen,
            result,
        });
        guard.published = true;
        out
    }

    /// Exponential backoff with equal jitter ([`backoff_delay`]).
    fn backoff(&self, n: u32) -> Duration {
        let mut r = [0u8; 4];
        let frac = if self.rng.fill(&mut r).is_ok() {
            f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)
        } else {
            1.0
        };
        backoff_delay(self.config.backoff_base, self.config.backoff_max, n, frac)
    }

    /// One attestation with up to `attempts` tries on retryable errors.
    fn attest(&self, binding: Option<&str>) -> (Result<Token, Error>, Option<Now>) {
        let attempts = self.config.attempts.max(1);
        let mut attempt = 0;
        loop {
            match self.attest_once(binding) {
                Ok((token, sent)) => return (Ok(token), Some(sent)),
                Err(e) if e.is_retryable() && attempt + 1 < attempts => {
                    let hint = retry_after(&e).unwrap_or_default();
                    let delay = self.backoff(attempt).max(hint.min(self.config.backoff_max));
                    self.clock.sleep(delay);
                    attempt += 1;
                }
                Err(e) => return (Err(e), None),
            }
        }
    }

    fn attest_once(&self, binding: Option<&str>) -> Result<(Token, Now), Error> {
        let c = &self.config;
        let challenge = ChallengeRequest {
            account: c.account.clone(),
            app_id: c.app_id.clone(),
        };
        let ch: ChallengeResponse = self.post(&self.challenge_url, &challenge)?;
        let nonce_bytes = b64::decode(&ch.nonce)
            .map_err(|_| Error::Protocol("the nonce is not base64url".into()))?;
        let obs = self.probe.observe()?;
        self.lock().last_signals = Some(obs.signals.clone());
        let claims = EvidenceClaims {
            nonce: ch.nonce,
            account: c.account.clone(),
            app_id: c.app_id.clone(),
            app_version: c.app_version.clone(),
            platform: obs.platform.to_owned(),
            api: c.api.clone(),
            iat: self.clock.unix_secs(),
            measurement: MeasurementClaim {
                alg: obs.alg.to_owned(),
                proof: b64::encode(&proof(&nonce_bytes, &obs.digest)),
            },
            signals: obs.signals,
            binding: binding.map(str::to_owned),
            platform_evidence: None,
        };
        let evidence = build_evidence(self.signer.as_ref(), &claims)?;
        let sent = self.now();
        let resp: AttestResponse = self.post(&self.attest_url, &AttestRequest { evidence })?;
        if let Some(r) = resp.rejection {
            return Err(Error::Rejected {
                reasons: r.reasons,
                arc: r.arc,
            });
        }
        if !looks_like_jwt(&resp.token) {
            return Err(Error::Protocol("the token is not a compact JWT".into()));
        }
        let lifetime = token_lifetime(&resp.token, resp.expires_in)?;
        Ok((
            Token {
                value: Arc::from(resp.token),
                lifetime,
            },
            sent,
        ))
    }

    fn post<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, Error> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::Internal(format!("encoding a request: {e}")))?;
        let resp = self
            .transport
            .post_json(url, &body)
            .map_err(|e| Error::Network(e.message().to_owned()))?;
        decode(resp)
    }
}

fn retry_after(e: &Error) -> Option<Duration> {
    match e {
        Error::ServiceUnavailable {
            retry_after: Some(s),
            ..
        } => Some(Duration::from_secs(*s)),
        _ => None,
    }
}

/// Maps an answer onto the protocol: 2xx JSON, 429/5xx unavailable, other
/// 4xx refused (with the service's stable code).
fn decode<T: DeserializeOwned>(resp: HttpResponse) -> Result<T, Error> {
    match resp.status {
        200..=299 => serde_json::from_slice(&resp.body)
            .map_err(|e| Error::Protocol(format!("HTTP {}: {e}", resp.status))),
        429 | 500..=599 => Err(Error::ServiceUnavailable {
            status: resp.status,
            retry_after: resp.retry_after,
        }),
        400..=499 => {
            let body: Option<ErrorBody> = serde_json::from_slice(&resp.body).ok();
            let (code, message) = body.map_or_else(
                || ("-".to_owned(), "no error body".to_owned()),
                |b| (b.error, b.message),
            );
            Err(Error::Refused {
                status: resp.status,
                code,
                message,
            })
        }
        s => Err(Error::Protocol(format!("unexpected HTTP status {s}"))),
    }
}

/// Three non-empty base64url parts separated by dots.
fn looks_like_jwt(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}

/// The lifetime a token is cached for: the least of the service's
/// `expires_in`, the token's own `exp − iat` and [`MAX_TOKEN_LIFETIME`].
/// A token without integer `iat` and `exp` claims is a protocol error
/// (protocol §5 gives every token both). The message never holds the token.
fn token_lifetime(token: &str, expires_in: u64) -> Result<Duration, Error> {
    #[derive(serde::Deserialize)]
    struct Times {
        iat: i64,
        exp: i64,
    }
    let bad = || Error::Protocol("the token's claims have no integer iat and exp".into());
    let payload = token.split('.').nth(1).ok_or_else(bad)?;
    let bytes = b64::decode(payload).map_err(|_| bad())?;
    let t: Times = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let ttl = u64::try_from(t.exp.saturating_sub(t.iat)).unwrap_or(0);
    Ok(Duration::from_secs(expires_in.min(ttl)).min(MAX_TOKEN_LIFETIME))
}

/// Whole seconds of `d` (rounded up, so a deadline errs early), as `i64`.
fn secs_i64(d: Duration) -> i64 {
    let s = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// Exponential backoff with equal jitter: a delay in `[d/2, d]` with
/// `d = min(max, base · 2ⁿ)`, placed by `frac` in `[0, 1]`.
pub(crate) fn backoff_delay(base: Duration, max: Duration, n: u32, frac: f64) -> Duration {
    let d = base.checked_mul(1u32 << n.min(20)).unwrap_or(max).min(max);
    let frac = if frac.is_nan() {
        1.0
    } else {
        frac.clamp(0.0, 1.0)
    };
    d / 2 + (d / 2).mul_f64(frac)
}

/// The evidence JWS (protocol §2), signed by any [`DeviceSigner`] through
/// `genuine_protocol::evidence::sign_evidence_with` (a hardware key never
/// leaves its store).
pub(crate) fn build_evidence(
    signer: &dyn DeviceSigner,
    claims: &EvidenceClaims,
) -> Result<String, Error> {
    sign_evidence_with(signer.public_key(), claims, |input| {
        signer.sign_es256(input)
    })
    .map_err(|e| match e {
        SignWithError::Sign(e) => Error::from(e),
        _ => Error::Internal("encoding evidence failed".into()),
    })
}

#[cfg(test)]
mod tests {
    use genuine_protocol::device::DeviceKey;
    use genuine_protocol::evidence::{ParsedEvidence, Signals, sign_evidence};

    use super::*;
    use crate::keystore::SoftwareKey;

    fn claims() -> EvidenceClaims {
        EvidenceClaims {
            nonce: "bm9uY2U".into(),
            account: "default".into(),
            app_id: "com.example.shop".into(),
            app_version: "1.0".into(),
            platform: "linux".into(),
            api: "api.example.com".into(),
            iat: 1,
            measurement: MeasurementClaim {
                alg: "elf-exec-segments-sha256/v1".into(),
                proof: b64::encode(&[3; 32]),
            },
            signals: Signals {
                debugger: true,
                preload: vec!["/tmp/x.so".into()],
                ..Signals::default()
            },
            binding: Some(b64::encode(&[9; 32])),
            platform_evidence: None,
        }
    }

    #[test]
    fn evidence_is_what_the_protocol_crate_builds_and_verifies() {
        let (key, pkcs8) = SoftwareKey::generate().unwrap();
        let jws = build_evidence(&key, &claims()).unwrap();
        let verified = ParsedEvidence::parse(&jws).unwrap().verify().unwrap();
        assert_eq!(verified.claims, claims());
        assert_eq!(verified.device_id, key.public_key().device_id());
        // Header and payload byte for byte as `sign_evidence` (whose ECDSA
        // signature is randomized, so only the signed parts compare).
        let rng = SystemRandom::new();
        let same = DeviceKey::from_pkcs8(&pkcs8, &rng).unwrap();
        let reference = sign_evidence(&same, &rng, &claims()).unwrap();
        let signed = |s: &str| s.rsplit_once('.').unwrap().0.to_owned();
        assert_eq!(signed(&jws), signed(&reference));
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            retry_after: (status == 429).then_some(7),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_map_onto_error_kinds() {
        let ok: Result<ChallengeResponse, _> =
            decode(resp(200, r#"{"nonce":"n","expires_in":60}"#));
        assert_eq!(ok.unwrap().nonce, "n");
        let e = decode::<ChallengeResponse>(resp(429, "")).unwrap_err();
        assert_eq!(
            e,
            Error::ServiceUnavailable {
                status: 429,
                retry_after: Some(7)
            }
        );
        assert!(e.is_retryable());
        assert_eq!(e.status().as_str(), "service-unavailable");
        let e = decode::<ChallengeResponse>(resp(503, "")).unwrap_err();
        assert!(e.is_retryable());
        let e =
            decode::<ChallengeResponse>(resp(400, r#"{"error":"body-not-json","message":"m"}"#))
                .unwrap_err();
        assert!(matches!(&e, Error::Refused { status: 400, code, .. } if code == "body-not-json"));
        assert!(!e.is_retryable());
        let e = decode::<ChallengeResponse>(resp(200, "{")).unwrap_err();
        assert!(matches!(e, Error::Protocol(_)));
        let e = decode::<ChallengeResponse>(resp(302, "")).unwrap_err();
        assert!(matches!(e, Error::Protocol(_)));
    }

    #[test]
    fn token_debug_hides_the_token() {
        let t = Token {
            value: Arc::from("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
            lifetime: Duration::from_secs(300),
        };
        assert_eq!(format!("{t:?}"), "Token(<29 bytes>)");
        assert!(looks_like_jwt(t.as_str()));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c\r\n"));
        for empty_part in ["..", "a..c", "a.b.", ".b.c", "", "a.b.c.d", "a.b+.c"] {
            assert!(!looks_like_jwt(empty_part), "{empty_part:?}");
        }
        assert!(looks_like_jwt("a.b.c"));
    }

    fn jwt(claims: &str) -> String {
        format!(
            "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
            b64::encode(claims.as_bytes())
        )
    }

    #[test]
    fn token_lifetime_is_the_least_and_at_most_a_day() {
        let day = Duration::from_secs(86_400);
        let t = jwt(r#"{"iat":1000,"exp":1300}"#);
        assert_eq!(token_lifetime(&t, 300).unwrap(), Duration::from_secs(300));
        assert_eq!(token_lifetime(&t, 60).unwrap(), Duration::from_secs(60));
        assert_eq!(
            token_lifetime(&t, u64::MAX).unwrap(),
            Duration::from_secs(300)
        );
        let long = jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, i64::MIN, i64::MAX));
        assert_eq!(token_lifetime(&long, u64::MAX).unwrap(), day);
        let backwards = jwt(r#"{"iat":1300,"exp":1000}"#);
        assert_eq!(token_lifetime(&backwards, 300).unwrap(), Duration::ZERO);
        for bad in [
            jwt(r#"{"iat":1000}"#),
            jwt(r#"{"iat":1000,"exp":"1300"}"#),
            jwt(r#"{"iat":1000,"exp":1300.5}"#),
            jwt("not json"),
            "eyJ.!!.c2ln".to_owned(),
        ] {
            let e = token_lifetime(&bad, 300).unwrap_err();
            assert!(matches!(e, Error::Protocol(_)), "{e:?}");
            assert!(
                !e.to_string().contains(&bad),
                "the token is not in the message"
            );
        }
    }

    #[test]
    fn backoff_delay_has_equal_jitter_and_a_cap() {
        let (base, max) = (Duration::from_millis(250), Duration::from_secs(60));
        assert_eq!(backoff_delay(base, max, 0, 0.0), Duration::from_millis(125));
        assert_eq!(backoff_delay(base, max, 0, 1.0), Duration::from_millis(250));
        assert_eq!(backoff_delay(base, max, 2, 0.5), Duration::from_millis(750));
        assert_eq!(backoff_delay(base, max, 40, 1.0), max);
        assert_eq!(backoff_delay(base, max, u32::MAX, 0.0), max / 2);
        assert_eq!(
            backoff_delay(base, max, 3, f64::NAN),
            Duration::from_secs(2)
        );
        assert_eq!(backoff_delay(base, max, 3, 7.0), Duration::from_secs(2));
    }
}

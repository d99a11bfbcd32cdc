//! The service: account snapshots, the attestation plane and token minting.
//! Admin operations are in [`crate::admin`]; HTTP wiring in [`crate::http`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use genuine_protocol::evidence::{ParsedEvidence, is_identifier};
use genuine_protocol::measure::AppDigest;
use genuine_protocol::nonce::{NonceError, NonceKey};
use genuine_protocol::platform::{PlatformEvidence, platform_challenge};
use genuine_protocol::wire::{
    AttestRequest, AttestResponse, ChallengeRequest, ChallengeResponse, Rejection,
};
use genuine_protocol::{ArcKey, ReasonSet, b64};
use genuine_verify::{Algorithm, Jwks};
use ring::rand::SystemRandom;
use serde::Serialize;

use crate::clientip::TrustedProxies;
use crate::devices::DeviceCounter;
use crate::error::ApiError;
use crate::keys::{KeyError, MasterKey, SigningKey, phantom_kid};
use crate::metrics::Metrics;
use crate::platform::{
    self, AndroidSettings, AppPlatform, AppleSettings, Checked, KeyUpdate, Outcome, PlatformRoots,
    PlaySettings, Revocations,
};
use crate::policy::Policy;
use crate::ratelimit::{RateDecision, RateLimiter};
use crate::replay::ReplayGuard;
use crate::store::{ApiRow, AppAttestKeyRow, Store};
use crate::verdict::{self, DeviceAction, NonceStatus, Registration, VerdictContext};

/// The source of time. Everything that decides reads time from here.
pub trait Clock: Send + Sync + 'static {
    /// Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// One API domain's keys, loaded and decrypted.
#[derive(Debug)]
pub struct ApiState {
    /// The stored row.
    pub row: ApiRow,
    /// The key that signs valid tokens now.
    pub active: Arc<SigningKey>,
    /// The never-published key that signs decoys.
    pub decoy: Arc<SigningKey>,
    /// All signing keys with the time until which each stays published
    /// (`None`: active).
    pub signing: Vec<(Arc<SigningKey>, Option<i64>)>,
}

/// An account's state as the attestation plane needs it, cached in memory
/// and dropped on every admin write to the account.
#[derive(Debug)]
pub struct AccountState {
    /// Account name.
    pub name: String,
    /// The tokens' `iss`.
    pub issuer: String,
    /// The key of this account's `arc` values.
    pub arc_key: ArcKey,
    /// The policy.
    pub policy: Policy,
    /// API domains.
    pub apis: HashMap<String, ApiState>,
    /// Registrations by (app id, platform).
    pub registrations: HashMap<(String, String), Vec<Registration>>,
    /// Device overrides.
    pub devices: HashMap<String, DeviceAction>,
    /// Platform attestation settings by app id.
    pub platforms: HashMap<String, AppPlatform>,
}

/// The claims of every token, valid or decoy: the same names in the same order.
#[derive(Debug, Serialize)]
pub(crate) struct TokenClaims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) aud: &'a str,
    pub(crate) sub: &'a str,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) jti: String,
    pub(crate) did: &'a str,
    pub(crate) arc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ip: Option<String>,
}

/// The outcome of one load of an account's state.
enum Loaded {
    Missing,
    /// A concurrent admin write was seen half-done: load again.
    Inconsistent,
    State(Arc<AccountState>),
}

/// The attestation service.
pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) master: MasterKey,
    nonce_key: NonceKey,
    nonce_ttl: u64,
    replay: Arc<dyn ReplayGuard>,
    pub(crate) rng: SystemRandom,
    public_url: String,
    cache: RwLock<HashMap<String, Arc<AccountState>>>,
    /// Bumped by every invalidation: a load that raced a write is not cached.
    epoch: AtomicU64,
    /// Whether cached state may be used: in cluster mode only while this node
    /// hears every change (its change listener is connected and the store
    /// answers); otherwise every request loads from the store.
    cache_live: AtomicBool,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
    devices: Arc<dyn DeviceCounter>,
    trusted_proxies: TrustedProxies,
    /// Serialises read-modify-write of policies in this process.
    policy_lock: tokio::sync::Mutex<()>,
    phantom: SigningKey,
    platform_roots: PlatformRoots,
    revocations: Arc<Revocations>,
    pub(crate) metrics: Metrics,
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// The parts a [`Service`] is built from.
pub struct ServiceParts {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The master key.
    pub master: MasterKey,
    /// The replay guard.
    pub replay: Arc<dyn ReplayGuard>,
    /// Public base URL (no trailing slash).
    pub public_url: String,
    /// Nonce lifetime, seconds.
    pub nonce_ttl_secs: u64,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The nonce key; `None` draws a fresh random one (embedded mode: a
    /// restart invalidates outstanding nonces). Cluster nodes share one.
    pub nonce_key: Option<NonceKey>,
    /// The per-client-address limit on challenges; `None`: no limit.
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    /// Unique devices per hour, day and month.
    pub devices: Arc<dyn DeviceCounter>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Trust roots of platform attestation.
    pub platform_roots: PlatformRoots,
    /// Google's Key Attestation status list (kept fresh by the caller).
    pub revocations: Arc<Revocations>,
}

pub(crate) fn random_id(rng: &SystemRandom, prefix: &str, len: usize) -> Result<String, KeyError> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; len];
    rng.fill(&mut b).map_err(|_| KeyError::Random)?;
    Ok(format!("{prefix}{}", b64::encode(&b)))
}

impl Service {
    /// Builds a service.
    ///
    /// # Errors
    /// [`KeyError::Random`] if the random source fails.
    pub fn new(parts: ServiceParts) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let nonce_key = match parts.nonce_key {
            Some(k) => k,
            None => NonceKey::generate(&rng).map_err(|_| KeyError::Random)?,
        };
        let (phantom, _) = SigningKey::generate(Algorithm::Es256, String::new(), &rng)?;
        Ok(Self {
            store: parts.store,
            master: parts.master,
            nonce_key,
            nonce_ttl: parts.nonce_ttl_secs,
            replay: parts.replay,
            rng,
            public_url: parts.public_url,
            cache: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            cache_live: AtomicBool::new(true),
            rate_limiter: parts.rate_limiter,
            devices: parts.devices,
            trusted_proxies: parts.trusted_proxies,
            policy_lock: tokio::sync::Mutex::new(()),
            phantom,
            platform_roots: parts.platform_roots,
            revocations: parts.revocations,
            metrics: Metrics::new(),
            clock: parts.clock,
        })
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The `iss` of an account's tokens.
    #[must_use]
    pub fn issuer(&self, account: &str) -> String {
        format!("{}/v1/accounts/{account}", self.public_url)
    }

    pub(crate) fn arc_key(&self, account: &str) -> ArcKey {
        let mut label = b"genuine/arc/v1\0".to_vec();
        label.extend_from_slice(account.as_bytes());
        ArcKey::from_bytes(&self.master.derive(&label))
    }

    /// Drops the cached state of an account (after every admin write to it).
    pub fn invalidate(&self, account: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = self.cache.write() {
            c.remove(account);
        }
    }

    /// Drops every cached account state.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }

    /// Allows or forbids the use of cached account state. Cluster nodes turn
    /// it off while they may miss changes made through other nodes (change
    /// listener disconnected, store unreachable) and on again, with an empty
    /// cache, once they hear every change again.
    pub fn set_cache_live(&self, live: bool) {
        let was = self.cache_live.swap(live, Ordering::SeqCst);
        self.metrics.set_cache_live(live);
        if was != live {
            self.invalidate_all();
            if live {
                tracing::info!("account cache in use again: this node hears every change");
            } else {
                tracing::warn!(
                    "account cache off: changes from other nodes may be missed; reading the store on every request"
                );
            }
        }
    }

    /// Whether cached account state is in use.
    #[must_use]
    pub fn cache_live(&self) -> bool {
        self.cache_live.load(Ordering::SeqCst)
    }

    /// Writes buffered attestation counters and unique-device observations
    /// to the store or Redis (every second, and at shutdown). Failures are
    /// counted and logged; the data is kept for the next try.
    pub async fn flush_counters(&self) {
        if let Err(e) = self.metrics.flush(self.store.as_ref()).await {
            tracing::warn!(error = %e, "could not flush attestation counters; will retry");
        }
        if let Err(e) = self.devices.flush().await {
            self.metrics.shared_state_error();
            tracing::warn!(error = %e, "could not flush unique-device counts; will retry");
        }
    }

    /// Proxies whose `X-Forwarded-For` names the client.
    #[must_use]
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    /// The replay guard.
    #[must_use]
    pub fn replay(&self) -> &dyn ReplayGuard {
        self.replay.as_ref()
    }

    /// Unique devices per hour, day and month.
    #[must_use]
    pub fn devices(&self) -> &dyn DeviceCounter {
        self.devices.as_ref()
    }

    /// Serialises policy read-modify-write in this process.
    pub(crate) async fn policy_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.policy_lock.lock().await
    }

    /// The account's state, from the cache or loaded from the store.
    ///
    /// A load that raced an admin write is used for this request but not
    /// cached, so a stale snapshot never outlives the write that replaced it.
    ///
    /// # Errors
    /// [`ApiError::StoreUnavailable`] if the store fails.
    pub async fn state(&self, account: &str) -> Result<Option<Arc<AccountState>>, ApiError> {
        let live = self.cache_live();
        if live && let Some(s) = self.cache.read().ok().and_then(|c| c.get(account).cloned()) {
            return Ok(Some(s));
        }
        self.metrics.cache_miss();
        for _ in 0..3 {
            let epoch = self.epoch.load(Ordering::SeqCst);
            let loaded = self
                .load_state(account)
                .await
                .inspect_err(|_| self.metrics.store_error())?;
            match loaded {
                Loaded::Missing => return Ok(None),
                Loaded::Inconsistent => continue,
                Loaded::State(s) => {
                    if self.cache_live()
                        && self.epoch.load(Ordering::SeqCst) == epoch
                        && let Ok(mut c) = self.cache.write()
                    {
                        c.insert(account.to_owned(), s.clone());
                    }
                    return Ok(Some(s));
                }
            }
        }
        tracing::error!(
            account,
            "account state stayed inconsistent over three loads"
        );
        Err(ApiError::Internal)
    }

    async fn load_state(&self, account: &str) -> Result<Loaded, ApiError> {
        let Some(row) = self.store.account(account).await? else {
            return Ok(Loaded::Missing);
        };
        let policy: Policy = serde_json::from_str(&row.policy).map_err(|e| {
            tracing::error!(account, error = %e, "stored policy is corrupt");
            ApiError::Internal
        })?;
        let mut apis = HashMap::new();
        // APIs before keys: an API added in between is simply not seen yet; one
        // removed in between shows as inconsistent and the load is retried.
        let api_rows = self.store.apis(account).await?;
        let keys = self.store.keys(account).await?;
        for api in api_rows {
            let alg = Algorithm::from_name(&api.alg).ok_or(ApiError::Internal)?;
            let mut active = None;
            let mut decoy = None;
            let mut signing = Vec::new();
            for k in keys.iter().filter(|k| k.domain == api.domain) {
                let doc = self
                    .master
                    .open(&seal_context(&k.kid, &k.purpose), &k.private_enc)?;
                let key = Arc::new(SigningKey::load(alg, k.kid.clone(), &doc, &self.rng)?);
                match (k.purpose.as_str(), k.retired_at) {
                    ("decoy", _) => decoy = Some(key),
                    ("signing", None) => {
                        active = Some(key.clone());
                        signing.push((key, None));
                    }
                    ("signing", Some(_)) => signing.push((key, k.publish_until)),
                    _ => return Err(ApiError::Internal),
                }
            }
            let (Some(active), Some(decoy)) = (active, decoy) else {
                tracing::debug!(account, domain = %api.domain, "API without keys: a concurrent change; reloading");
                return Ok(Loaded::Inconsistent);
            };
            apis.insert(
                api.domain.clone(),
                ApiState {
                    row: api,
                    active,
                    decoy,
                    signing,
                },
            );
        }
        let mut registrations: HashMap<(String, String), Vec<Registration>> = HashMap::new();
        for r in self.store.registrations(account, None).await? {
            let digest: [u8; 32] = r
                .digest
                .as_slice()
                .try_into()
                .map_err(|_| ApiError::Internal)?;
            registrations
                .entry((r.app_id, r.platform))
                .or_default()
                .push(Registration {
                    id: r.id,
                    alg: r.alg,
                    digest: AppDigest(digest),
                    expires_at: r.expires_at,
                });
        }
        let devices = self
            .store
            .devices(account)
            .await?
            .into_iter()
            .map(|d| {
                let action = if d.action == "allow" {
                    DeviceAction::Allow
                } else {
                    DeviceAction::Block
                };
                (d.device_id, action)
            })
            .collect();
        let mut platforms: HashMap<String, AppPlatform> = HashMap::new();
        for p in self.store.app_platforms(account).await? {
            let entry = platforms.entry(p.app_id.clone()).or_default();
            let corrupt = |e: &dyn std::fmt::Display| {
                tracing::error!(account, app_id = %p.app_id, kind = %p.kind, error = %e,
                    "stored platform settings are corrupt");
                ApiError::Internal
            };
            match p.kind.as_str() {
                platform::APPLE => {
                    let s: AppleSettings =
                        serde_json::from_str(&p.settings).map_err(|e| corrupt(&e))?;
                    entry.apple = Some(s.validate().map_err(|e| corrupt(&e))?);
                }
                platform::ANDROID => {
                    let s: AndroidSettings =
                        serde_json::from_str(&p.settings).map_err(|e| corrupt(&e))?;
                    entry.android = Some(s.validate().map_err(|e| corrupt(&e))?);
                }
                platform::PLAY => {
                    let s: PlaySettings =
                        serde_json::from_str(&p.settings).map_err(|e| corrupt(&e))?;
                    let sealed = p.secret_enc.as_deref().ok_or_else(|| corrupt(&"no key"))?;
                    let key = self
                        .master
                        .open(&platform::play_secret_context(account, &p.app_id), sealed)?;
                    entry.play = Some(s.validate(&key).map_err(|e| corrupt(&e))?);
                }
                other => return Err(corrupt(&format!("unknown kind {other}"))),
            }
        }
        Ok(Loaded::State(Arc::new(AccountState {
            name: row.name,
            issuer: self.issuer(account),
            arc_key: self.arc_key(account),
            policy,
            apis,
            registrations,
            devices,
            platforms,
        })))
    }

    /// `POST /v1/challenge` from `client` (the address rate limits apply to).
    ///
    /// # Errors
    /// [`ApiError`] for bad fields, an unknown account, a client over its
    /// rate limit (429) or an unavailable store or rate limiter (503).
    pub async fn challenge(
        &self,
        req: &ChallengeRequest,
        client: Option<IpAddr>,
    ) -> Result<ChallengeResponse, ApiError> {
        let started = Instant::now();
        if let (Some(limiter), Some(ip)) = (&self.rate_limiter, client) {
            let now_ms = self.clock.now().saturating_mul(1000);
            match limiter.check(ip, now_ms).await {
                Ok(RateDecision::Allow) => {}
                Ok(RateDecision::Limited { retry_after_secs }) => {
                    self.metrics.rate_limited();
                    return Err(ApiError::RateLimited { retry_after_secs });
                }
                Err(e) => {
                    self.metrics.shared_state_error();
                    tracing::warn!(error = %e, "rate limiter unavailable; refusing challenges");
                    return Err(ApiError::RateLimiterUnavailable);
                }
            }
        }
        for (field, v) in [("account", &req.account), ("app_id", &req.app_id)] {
            if !is_identifier(v) {
                return Err(ApiError::InvalidField {
                    field,
                    message: "must be 1 to 255 characters, no control characters".into(),
                });
            }
        }
        if self.state(&req.account).await?.is_none() {
            return Err(ApiError::AccountUnknown);
        }
        let now = u64::try_from(self.clock.now()).unwrap_or(0);
        let issued = self
            .nonce_key
            .issue(&self.rng, &req.account, &req.app_id, now, self.nonce_ttl)
            .map_err(|_| ApiError::Internal)?;
        self.metrics.challenge();
        self.metrics
            .challenge_seconds(started.elapsed().as_secs_f64());
        Ok(ChallengeResponse {
            nonce: issued.nonce,
            expires_in: self.nonce_ttl,
        })
    }

    /// `POST /v1/attest`: always a token for well-formed evidence, valid or decoy.
    ///
    /// # Errors
    /// [`ApiError`] for malformed evidence (400) or an unavailable store or
    /// replay guard (503: no token is issued without the checks).
    pub async fn attest(
        &self,
        req: &AttestRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<AttestResponse, ApiError> {
        let started = Instant::now();
        let parsed = ParsedEvidence::parse(&req.evidence)?;
        let verified = parsed.verify();
        if let Err(e) = &verified {
            tracing::debug!(error = %e, "evidence invalid");
        }
        let verified = verified.ok();
        let (account, app_id, api, nonce) = match &verified {
            Some(v) => (
                v.claims.account.clone(),
                v.claims.app_id.clone(),
                v.claims.api.clone(),
                Some(v.claims.nonce.clone()),
            ),
            None => {
                // Only a failed verification needs the untrusted reading.
                // Untrusted: keep only plausible identifiers (no control
                // characters to forge log lines, at most 255 bytes).
                let routing = parsed.routing();
                let ident = |v: Option<String>| v.filter(|v| is_identifier(v)).unwrap_or_default();
                (
                    ident(routing.account),
                    ident(routing.app_id),
                    ident(routing.api),
                    routing.nonce,
                )
            }
        };
        let now = self.clock.now();
        let state = self.state(&account).await?;

        // Nonce: MAC (binds account and app), expiry, then single use.
        let mut nonce_bytes = None;
        let nonce_status = match nonce.as_deref() {
            None => NonceStatus::Invalid,
            Some(n) => {
                nonce_bytes = b64::decode(n).ok();
                match self
                    .nonce_key
                    .check(n, &account, &app_id, u64::try_from(now).unwrap_or(0))
                {
                    Ok(c) => {
                        let exp = i64::try_from(c.expires_at).unwrap_or(i64::MAX);
                        let first = self
                            .replay
                            .first_use(c.id, exp, now)
                            .await
                            .inspect_err(|_| self.metrics.shared_state_error())?;
                        if first {
                            NonceStatus::Fresh
                        } else {
                            NonceStatus::Replayed
                        }
                    }
                    Err(NonceError::Expired) => NonceStatus::Expired,
                    Err(_) => NonceStatus::Invalid,
                }
            }
        };

        // Platform attestation: checked whenever present (so App Attest keys
        // are learnt before the policy requires them), a reason only when
        // the policy requires it.
        let platform_checked = match (&verified, &state) {
            (Some(v), Some(s)) => match &v.platform {
                Some(pe) => Some(
                    self.check_platform(s, v, pe, nonce_bytes.as_deref(), nonce_status, now)
                        .await?,
                ),
                None => None,
            },
            _ => None,
        };

        let api_state = state.as_ref().and_then(|s| s.apis.get(&api));
        let ctx = VerdictContext {
            policy: state.as_ref().map(|s| s.policy.clone()).unwrap_or_default(),
            api_known: api_state.is_some(),
            registrations: state.as_ref().map(|s| &s.registrations),
            devices: state.as_ref().map(|s| &s.devices),
            platform: platform_checked.as_ref().map(|c| &c.outcome),
        };
        let verdict = verdict::evaluate(
            &ctx,
            nonce_status,
            nonce_bytes.as_deref(),
            verified.as_ref(),
            now,
        );

        let did = verified
            .as_ref()
            .map_or_else(|| parsed.key().device_id(), |v| v.device_id.clone());
        let pay = verified
            .as_ref()
            .and_then(|v| v.binding.map(|b| b64::encode(&b)));
        let ip = (ctx.policy.token.ip)
            .then(|| client_ip.map(|i| i.to_string()))
            .flatten();
        let ttl = api_state.map_or(300, |a| a.row.ttl_secs);
        // The account's issuer and arc key come from its cached state; only an
        // unknown account (a decoy anyway) derives them on the spot.
        let (issuer, arc) = match &state {
            Some(s) => (
                std::borrow::Cow::Borrowed(s.issuer.as_str()),
                s.arc_key.encode(&self.rng, verdict.reasons),
            ),
            None => (
                std::borrow::Cow::Owned(self.issuer(&account)),
                self.arc_key(&account).encode(&self.rng, verdict.reasons),
            ),
        };
        let arc = arc.map_err(|_| ApiError::Internal)?;
        let claims = TokenClaims {
            iss: &issuer,
            aud: &api,
            sub: &app_id,
            iat: now,
            exp: now.saturating_add(ttl),
            jti: random_id(&self.rng, "", 16)?,
            did: &did,
            arc: arc.clone(),
            pay,
            ip,
        };
        let token = match api_state {
            Some(a) if verdict.valid => a.active.mint(&self.rng, a.active.kid(), &claims)?,
            Some(a) => a.decoy.mint(&self.rng, a.active.kid(), &claims)?,
            None => self.phantom.mint(
                &self.rng,
                &phantom_kid(&self.master, &account, &api),
                &claims,
            )?,
        };

        let names = verdict.reasons.names();
        if let Some(v) = &verified {
            self.metrics.unknown_signals(v.claims.signals.other.keys());
            // Unique devices: only keys that proved possession, only known
            // accounts, valid and decoy alike.
            if let Some(s) = &state {
                self.devices.observe(&s.name, &v.device_id, now);
            }
        }
        self.metrics.attestation(
            state.as_ref().map(|s| s.name.as_str()),
            verdict.valid,
            &names,
            now.div_euclid(3600),
            started.elapsed().as_secs_f64(),
        );
        let platform_log = platform_checked.as_ref().map(|c| match &c.outcome {
            Outcome::Passed => format!("{}: pass", c.kind),
            Outcome::Failed(codes) => format!("{}: {}", c.kind, codes.join(",")),
        });
        tracing::info!(
            account = %account, app_id = %app_id, api = %api, did = %did,
            outcome = if verdict.valid { "valid" } else { "decoy" },
            allowed = verdict.allowed, reasons = ?names, platform = ?platform_log, "attestation"
        );
        let rejection = (!verdict.valid && ctx.policy.reveal_reasons).then(|| Rejection {
            arc,
            reasons: names.iter().map(|s| (*s).to_owned()).collect(),
        });
        Ok(AttestResponse {
            token,
            expires_in: u64::try_from(ttl).unwrap_or(0),
            rejection,
        })
    }

    /// Checks one piece of platform evidence for an account's app and
    /// stores what a passed App Attest check changed (only for a fresh
    /// nonce: a replayed request must not move key state).
    ///
    /// # Errors
    /// [`ApiError::StoreUnavailable`]: no token without the check.
    async fn check_platform(
        &self,
        state: &AccountState,
        v: &genuine_protocol::evidence::VerifiedEvidence,
        evidence: &Result<PlatformEvidence, genuine_protocol::platform::PlatformEvidenceError>,
        nonce_bytes: Option<&[u8]>,
        nonce: NonceStatus,
        now: i64,
    ) -> Result<Checked, ApiError> {
        let challenge = platform_challenge(nonce_bytes.unwrap_or_default(), &v.key);
        let stored = match evidence {
            Ok(PlatformEvidence::AppleAppAttestAssertion { .. }) => self
                .store
                .appattest_key(&state.name, &v.device_id)
                .await
                .inspect_err(|_| self.metrics.store_error())?
                // A key attested for another app of this device id is not this app's.
                .filter(|k| k.app_id == v.claims.app_id),
            _ => None,
        };
        let revocations = self.revocations.get();
        let mut checked = platform::check(
            evidence,
            &platform::CheckInput {
                challenge: &challenge,
                settings: state.platforms.get(&v.claims.app_id),
                stored_key: stored.as_ref(),
                roots: &self.platform_roots,
                revocations: revocations.as_deref(),
                now,
            },
        );
        if checked.outcome == Outcome::Passed
            && nonce == NonceStatus::Fresh
            && let Some(update) = &checked.update
        {
            match update {
                KeyUpdate::Attested {
                    key_id,
                    public_key,
                    environment,
                } => {
                    let row = AppAttestKeyRow {
                        account: state.name.clone(),
                        device_id: v.device_id.clone(),
                        app_id: v.claims.app_id.clone(),
                        key_id: key_id.to_vec(),
                        public_key: public_key.clone(),
                        counter: 0,
                        environment: environment.as_str().to_owned(),
                        created_at: now,
                        updated_at: now,
                    };
                    self.store
                        .put_appattest_key(&row)
                        .await
                        .inspect_err(|_| self.metrics.store_error())?;
                }
                KeyUpdate::Counter { key_id, counter } => {
                    let moved = self
                        .store
                        .advance_appattest_counter(
                            &state.name,
                            &v.device_id,
                            key_id,
                            i64::from(*counter),
                            now,
                        )
                        .await
                        .inspect_err(|_| self.metrics.store_error())?;
                    if !moved {
                        // A concurrent assertion took this counter first.
                        checked.outcome = Outcome::Failed(vec!["counter-not-increasing"]);
                    }
                }
            }
        }
        match &checked.outcome {
            Outcome::Passed => self.metrics.platform(checked.kind, "pass"),
            Outcome::Failed(codes) => {
                for code in codes {
                    self.metrics.platform(checked.kind, code);
                }
            }
        }
        Ok(checked)
    }

    /// The published JWKS of an account: every API's active signing key and
    /// retired ones until their last token has expired. Never HS256 secrets,
    /// never decoy keys.
    ///
    /// # Errors
    /// [`ApiError::AccountUnknown`] or [`ApiError::StoreUnavailable`].
    pub async fn jwks(&self, account: &str) -> Result<Jwks, ApiError> {
        let state = self.state(account).await?.ok_or(ApiError::AccountUnknown)?;
        let now = self.clock.now();
        let mut keys = Vec::new();
        for api in state.apis.values() {
            for (k, until) in &api.signing {
                if until.is_none_or(|u| u > now) {
                    keys.extend(k.public_jwk());
                }
            }
        }
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Ok(Jwks { keys })
    }

    /// Encodes reasons for an example token.
    pub(crate) fn example_arc(
        &self,
        account: &str,
        reasons: ReasonSet,
    ) -> Result<String, ApiError> {
        self.arc_key(account)
            .encode(&self.rng, reasons)
            .map_err(|_| ApiError::Internal)
    }
}

/// Associated data binding a sealed private key to its id and purpose.
pub(crate) fn seal_context(kid: &str, purpose: &str) -> String {
    format!("genuine/key/v1/{purpose}/{kid}")
}

//! The peer: a bare axum handler doing the same cryptography as the service
//! without the product around it — no store, no account state, no policy, no
//! metrics, no logging.
//!
//! `POST /v1/challenge` issues an HMAC nonce. `POST /v1/attest` parses the
//! JSON body, parses and verifies the evidence (ES256 device key), checks the
//! nonce MAC and expiry, records the nonce in a bounded `HashMap` replay set,
//! matches the measurement proof against the one registered digest, encodes an
//! `arc` and a random `jti` as the service does, and signs an ES256 token with
//! the same claim names. `GET /jwks.json` publishes the signing key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use genuine_protocol::evidence::ParsedEvidence;
use genuine_protocol::measure::{AppDigest, ProofVerifier};
use genuine_protocol::nonce::NonceKey;
use genuine_protocol::wire::{AttestRequest, AttestResponse, ChallengeRequest, ChallengeResponse};
use genuine_protocol::{ArcKey, ReasonSet, b64};
use genuine_server::keys::SigningKey;
use genuine_verify::{Algorithm, Jwks};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Nonce lifetime, seconds (the service's default).
const NONCE_TTL: u64 = 60;
/// Token lifetime, seconds.
const TOKEN_TTL: i64 = 300;
/// Hard limit of the replay set (the service's default when this was
/// written; the service now keeps up to 2,000,000 ids in two generations).
/// When full, expired ids are purged under the lock.
const REPLAY_CAPACITY: usize = 1_000_000;

/// What the bare handler knows: one account, one app, one API, one digest.
struct Bare {
    nonce_key: NonceKey,
    rng: SystemRandom,
    replay: Mutex<HashMap<[u8; 16], i64>>,
    digest: AppDigest,
    key: SigningKey,
    arc: ArcKey,
    issuer: String,
    account: String,
    app_id: String,
    api: String,
}

/// The running bare server.
pub(crate) struct BareServer {
    /// The bound address.
    pub(crate) addr: SocketAddr,
    /// The tokens' `iss`.
    pub(crate) issuer: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl BareServer {
    /// Stops the server and waits for it.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the bare server on `127.0.0.1:0` on the current runtime.
pub(crate) async fn start(
    account: &str,
    app_id: &str,
    api: &str,
    digest: AppDigest,
) -> anyhow::Result<BareServer> {
    let rng = SystemRandom::new();
    let nonce_key = NonceKey::generate(&rng).map_err(|e| anyhow::anyhow!("bare nonce key: {e}"))?;
    let mut kid = [0u8; 12];
    rng.fill(&mut kid)
        .map_err(|_| anyhow::anyhow!("random source failed"))?;
    let (key, _) = SigningKey::generate(Algorithm::Es256, b64::encode(&kid), &rng)?;
    let mut arc_secret = [0u8; 32];
    rng.fill(&mut arc_secret)
        .map_err(|_| anyhow::anyhow!("random source failed"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let issuer = format!("http://{addr}/v1/accounts/{account}");
    let state = Arc::new(Bare {
        nonce_key,
        rng,
        replay: Mutex::new(HashMap::new()),
        digest,
        key,
        arc: ArcKey::from_bytes(&arc_secret),
        issuer: issuer.clone(),
        account: account.to_owned(),
        app_id: app_id.to_owned(),
        api: api.to_owned(),
    });
    let app = Router::new()
        .route("/v1/challenge", post(challenge))
        .route("/v1/attest", post(attest))
        .route("/jwks.json", get(jwks))
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            eprintln!("bare server failed: {e}");
        }
    });
    Ok(BareServer {
        addr,
        issuer,
        stop,
        task,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn refuse(status: StatusCode, what: &'static str) -> Response {
    (status, what).into_response()
}

async fn challenge(State(s): State<Arc<Bare>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<ChallengeRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "body");
    };
    let now = u64::try_from(now()).unwrap_or(0);
    match s
        .nonce_key
        .issue(&s.rng, &req.account, &req.app_id, now, NONCE_TTL)
    {
        Ok(n) => axum::Json(ChallengeResponse {
            nonce: n.nonce,
            expires_in: NONCE_TTL,
        })
        .into_response(),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "random"),
    }
}

async fn attest(State(s): State<Arc<Bare>>, body: Bytes) -> Response {
    match attest_inner(&s, &body) {
        Ok(r) => axum::Json(r).into_response(),
        Err((status, what)) => refuse(status, what),
    }
}

fn attest_inner(s: &Bare, body: &[u8]) -> Result<AttestResponse, (StatusCode, &'static str)> {
    let bad = |what| (StatusCode::BAD_REQUEST, what);
    let denied = |what| (StatusCode::FORBIDDEN, what);
    let req: AttestRequest = serde_json::from_slice(body).map_err(|_| bad("body"))?;
    let parsed = ParsedEvidence::parse(&req.evidence).map_err(|_| bad("evidence"))?;
    let ev = parsed.verify().map_err(|_| denied("evidence-invalid"))?;
    let c = &ev.claims;
    if c.account != s.account || c.app_id != s.app_id || c.api != s.api {
        return Err(denied("unknown account, app or api"));
    }
    let now = now();
    let checked = s
        .nonce_key
        .check(
            &c.nonce,
            &c.account,
            &c.app_id,
            u64::try_from(now).unwrap_or(0),
        )
        .map_err(|_| denied("nonce-invalid"))?;
    {
        let exp = i64::try_from(checked.expires_at).unwrap_or(i64::MAX);
        let mut seen = s
            .replay
            .lock()
            .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "replay"))?;
        if seen.get(&checked.id).is_some_and(|e| *e > now) {
            return Err(denied("nonce-replayed"));
        }
        if seen.len() >= REPLAY_CAPACITY {
            seen.retain(|_, e| *e > now);
            if seen.len() >= REPLAY_CAPACITY {
                return Err((StatusCode::SERVICE_UNAVAILABLE, "replay full"));
            }
        }
        seen.insert(checked.id, exp);
    }
    if !ProofVerifier::new(&checked.bytes).matches(&s.digest, &ev.proof) {
        return Err(denied("app-not-registered"));
    }
    let internal = |_| (StatusCode::INTERNAL_SERVER_ERROR, "internal");
    let arc = s
        .arc
        .encode(&s.rng, ReasonSet::empty())
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "arc"))?;
    let mut jti = [0u8; 16];
    s.rng
        .fill(&mut jti)
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "random"))?;
    let mut claims = serde_json::json!({
        "iss": s.issuer,
        "aud": c.api,
        "sub": c.app_id,
        "iat": now,
        "exp": now.saturating_add(TOKEN_TTL),
        "jti": b64::encode(&jti),
        "did": ev.device_id,
        "arc": arc,
    });
    if let (Some(b), Some(map)) = (ev.binding, claims.as_object_mut()) {
        map.insert("pay".into(), b64::encode(&b).into());
    }
    let token = s.key.mint(&s.rng, s.key.kid(), &claims).map_err(internal)?;
    Ok(AttestResponse {
        token,
        expires_in: u64::try_from(TOKEN_TTL).unwrap_or(0),
        rejection: None,
    })
}

async fn jwks(State(s): State<Arc<Bare>>) -> Response {
    axum::Json(Jwks {
        keys: s.key.public_jwk().into_iter().collect(),
    })
    .into_response()
}

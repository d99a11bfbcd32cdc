//! Shared harness for the integration tests: an in-process service on an
//! ephemeral port with an injected clock, a subprocess service for kill tests,
//! and a test device that builds evidence with `genuine-protocol` (the SDK's
//! job in production).

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use genuine_protocol::b64;
use genuine_protocol::device::DeviceKey;
use genuine_protocol::evidence::{EvidenceClaims, MeasurementClaim, Signals, sign_evidence};
use genuine_protocol::measure::{AppDigest, ELF_EXEC_SEGMENTS_SHA256_V1, proof};
use genuine_protocol::wire::AttestResponse;
use genuine_server::config::Config;
use genuine_server::service::Clock;
use genuine_server::{Running, start_embedded};
use genuine_verify::{Expectations, Jwks, Verifier};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An HTTP client (rustls with the ring provider, as the CLI uses).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

/// One JSON request with a generous timeout; returns the status and the JSON
/// body (`Null` when empty or not JSON). Every test's HTTP goes through here.
pub async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http
        .request(method, url)
        .timeout(std::time::Duration::from_secs(60));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Unix seconds on the wall clock (for tests that hand tokens to libraries
/// that check `exp` against it).
pub fn unix_now() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_secs()).unwrap()
}

/// Sleeps into the next wall-clock second. A cluster node starts the Redis
/// replay set's epoch at its start second and refuses nonces issued within
/// that second (their single use cannot be told from before the epoch), so
/// tests wait it out before their first attestation.
pub async fn next_second() {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = 1_000_000_000 - u64::from(since.subsec_nanos());
    tokio::time::sleep(std::time::Duration::from_nanos(left + 1_000_000)).await;
}

/// Whether a test that needs an optional tool may run: prints that it was
/// skipped when the tool is absent, and fails instead under CI.
pub fn tool_present(present: bool, tool: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required under CI"
        );
        eprintln!("SKIPPED: {tool} not found; install it to run this interop test");
    }
    present
}

/// A service on the wall clock with the app `com.example.shop` registered
/// (digest 1) and one API per algorithm; each API comes with how a library
/// gets its key: `jwks`, or `hs256:<secret>` for the exported HS256 secret.
pub async fn service_with_three_algs() -> (TestService, Vec<(&'static str, String)>) {
    let svc = TestService::start_at(unix_now()).await;
    svc.register("com.example.shop", &digest(1)).await;
    svc.add_api("es.example.com", "ES256", 300).await;
    svc.add_api("ed.example.com", "EdDSA", 300).await;
    let hs = svc.add_api("hs.example.com", "HS256", 300).await;
    let apis = vec![
        ("es.example.com", "jwks".to_owned()),
        ("ed.example.com", "jwks".to_owned()),
        (
            "hs.example.com",
            format!("hs256:{}", hs["secret"].as_str().unwrap()),
        ),
    ];
    (svc, apis)
}

/// Runs an interop script (`program script`) on `{"jwks": …, "cases": …}`
/// written to a file, and returns its JSON list of results, one per case.
pub fn run_interop(
    svc: &TestService,
    program: &str,
    script: &std::path::Path,
    jwks: &Value,
    cases: &[Value],
) -> Vec<Value> {
    let input = svc.dir.path().join("interop-cases.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&json!({"jwks": jwks, "cases": cases})).unwrap(),
    )
    .unwrap();
    let out = Command::new(program)
        .arg(script)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), cases.len(), "one result per case");
    results
}

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

pub struct TestService {
    pub running: Option<Running>,
    pub url: String,
    pub admin: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl TestService {
    pub async fn start() -> Self {
        Self::start_at(T0).await
    }

    /// A service whose clock starts at `now` (Unix seconds).
    pub async fn start_at(now: i64) -> Self {
        Self::start_with(now, |_| {}).await
    }

    /// A service whose clock starts at `now`, with settings changed by `set`.
    pub async fn start_with(now: i64, set: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock(AtomicI64::new(now)));
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        set(&mut config);
        let running = start_embedded(&config, clock.clone()).await.unwrap();
        let admin = std::fs::read_to_string(&running.admin_token_file)
            .unwrap()
            .trim()
            .to_owned();
        Self {
            url: format!("http://{}", running.addr),
            running: Some(running),
            admin,
            clock,
            http: client(),
            dir,
        }
    }

    pub fn issuer(&self, account: &str) -> String {
        format!("{}/v1/accounts/{account}", self.url)
    }

    /// Any request; returns status and JSON body (Null when empty or not JSON).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        call(
            &self.http,
            &format!("{}{path}", self.url),
            method,
            token,
            body,
        )
        .await
    }

    /// Raw body request (for malformed input).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// An admin call on the default account with the bootstrap token; asserts 2xx.
    pub async fn admin(&self, method: &str, rest: &str, body: Option<Value>) -> Value {
        self.admin_as("default", &self.admin.clone(), method, rest, body)
            .await
    }

    pub async fn admin_as(
        &self,
        account: &str,
        token: &str,
        method: &str,
        rest: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, v) = self
            .request(
                method,
                &format!("/admin/v1/accounts/{account}/{rest}"),
                Some(token),
                body.as_ref(),
            )
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {rest}: {status} {v}"
        );
        v
    }

    pub async fn add_api(&self, domain: &str, alg: &str, ttl: i64) -> Value {
        self.admin(
            "POST",
            "apis",
            Some(json!({"domain": domain, "alg": alg, "ttl": ttl})),
        )
        .await
    }

    pub async fn register(&self, app_id: &str, digest: &AppDigest) -> String {
        let v = self
            .admin(
                "POST",
                "registrations",
                Some(json!({"app_id": app_id, "digest": digest.to_hex(), "version": "1.0"})),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn policy(&self, key: &str, value: bool) {
        self.admin(
            "PUT",
            &format!("policy/{key}"),
            Some(json!({"value": value})),
        )
        .await;
    }

    pub async fn jwks(&self, account: &str) -> Jwks {
        let (status, v) = self
            .request(
                "GET",
                &format!("/v1/accounts/{account}/jwks.json"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn verifier(&self, account: &str, api: &str) -> Verifier {
        Verifier::from_jwks(
            &self.jwks(account).await,
            Expectations {
                issuer: self.issuer(account),
                audiences: vec![api.to_owned()],
                leeway_secs: 0,
            },
        )
        .unwrap()
    }

    pub async fn challenge(&self, account: &str, app_id: &str) -> String {
        let (status, v) = self
            .request(
                "POST",
                "/v1/challenge",
                None,
                Some(&json!({"account": account, "app_id": app_id})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["nonce"].as_str().unwrap().to_owned()
    }

    pub async fn attest_evidence(&self, evidence: &str) -> (u16, Value) {
        self.request(
            "POST",
            "/v1/attest",
            None,
            Some(&json!({"evidence": evidence})),
        )
        .await
    }

    /// Token check through the admin API.
    pub async fn check(&self, token: &str) -> Value {
        self.admin("POST", "tokens/check", Some(json!({"token": token})))
            .await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// What a test app sends.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub account: String,
    pub app_id: String,
    pub api: String,
    pub digest: AppDigest,
    pub signals: Signals,
    pub binding: Option<Vec<u8>>,
    pub platform_evidence: Option<serde_json::Map<String, Value>>,
}

impl Attempt {
    pub fn new(app_id: &str, api: &str, digest: AppDigest) -> Self {
        Self {
            account: "default".into(),
            app_id: app_id.into(),
            api: api.into(),
            digest,
            signals: Signals {
                sdk_version: Some("test".into()),
                os: Some("linux".into()),
                ..Signals::default()
            },
            binding: None,
            platform_evidence: None,
        }
    }
}

/// A device with its own key, as an installed app would have.
pub struct TestDevice {
    pub key: DeviceKey,
    pub rng: SystemRandom,
}

impl TestDevice {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        Self { key, rng }
    }

    pub fn did(&self) -> String {
        self.key.public_key().device_id()
    }

    /// Evidence answering `nonce` for `a`.
    pub fn evidence(&self, nonce: &str, a: &Attempt) -> String {
        let nonce_bytes = b64::decode(nonce).unwrap_or_default();
        let claims = EvidenceClaims {
            nonce: nonce.into(),
            account: a.account.clone(),
            app_id: a.app_id.clone(),
            app_version: "1.0".into(),
            platform: "linux".into(),
            api: a.api.clone(),
            iat: T0,
            measurement: MeasurementClaim {
                alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
                proof: b64::encode(&proof(&nonce_bytes, &a.digest)),
            },
            signals: a.signals.clone(),
            binding: a
                .binding
                .as_ref()
                .map(|d| b64::encode(ring::digest::digest(&ring::digest::SHA256, d).as_ref())),
            platform_evidence: a.platform_evidence.clone(),
        };
        sign_evidence(&self.key, &self.rng, &claims).unwrap()
    }

    /// Challenge, then attest; asserts HTTP 200.
    pub async fn attest(&self, svc: &TestService, a: &Attempt) -> AttestResponse {
        let nonce = svc.challenge(&a.account, &a.app_id).await;
        let (status, v) = svc.attest_evidence(&self.evidence(&nonce, a)).await;
        assert_eq!(status, 200, "{v}");
        serde_json::from_value(v).unwrap()
    }
}

/// Header and claims of a compact JWS, unverified.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let mut p = token.split('.');
    let h = serde_json::from_slice(&b64::decode(p.next().unwrap()).unwrap()).unwrap();
    let c = serde_json::from_slice(&b64::decode(p.next().unwrap()).unwrap()).unwrap();
    (h, c)
}

pub fn digest(seed: u8) -> AppDigest {
    AppDigest([seed; 32])
}

/// The `genuine` binary built for these tests.
pub fn genuine_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genuine"))
}

/// `genuine serve` as a child process on an ephemeral port.
pub struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_log: PathBuf,
}

impl ServeProcess {
    /// Starts `genuine serve --listen 127.0.0.1:0 --data DIR`; stderr goes to `DIR/../serve-N.log`.
    pub fn start(data: &Path, log_name: &str, rust_log: &str) -> Self {
        Self::start_with_env(data, log_name, rust_log, &[])
    }

    /// [`Self::start`] with `GENUINE_*` settings in the environment (cluster
    /// mode when they name a database and a Redis).
    pub fn start_with_env(
        data: &Path,
        log_name: &str,
        rust_log: &str,
        env: &[(&str, String)],
    ) -> Self {
        let stderr_log = data.parent().unwrap().join(log_name);
        let log = std::fs::File::create(&stderr_log).unwrap();
        let mut cmd = Command::new(genuine_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", rust_log)
            .env_remove("GENUINE_DATABASE_URL")
            .env_remove("GENUINE_REDIS_URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("serve exited before listening; its log:\n{log}");
            };
            let line = line.unwrap();
            if let Some(a) = line.strip_prefix("genuine: listening on http://") {
                break a.parse().unwrap();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            stderr_log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

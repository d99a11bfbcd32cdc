//! Shared harness: a real attestation service in process (its own tokio
//! runtime, ephemeral port, temp data dir), admin calls over HTTP, a fake
//! service answering raw HTTP as a test scripts it, a clock the test moves
//! by hand, and a transport that counts requests.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use genuine_sdk::clock::Clock;
use genuine_sdk::transport::{HttpResponse, HttpTransport, Transport, TransportError};
use serde_json::{Value, json};

pub const APP: &str = "com.example.sdktest";
pub const API: &str = "api.example.com";

pub struct Service {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<genuine_server::Running>,
    pub url: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

impl Service {
    /// A service with the API added, this test binary's digest registered
    /// for [`APP`], and the policy made to accept root (the sandbox and CI
    /// run as root).
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(listen: std::net::SocketAddr) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = genuine_server::config::Config {
            listen,
            data_dir: dir.path().join("data"),
            ..genuine_server::config::Config::default()
        };
        let running = rt
            .block_on(genuine_server::start_embedded(
                &config,
                Arc::new(genuine_server::service::SystemClock),
            ))
            .unwrap();
        let admin = std::fs::read_to_string(&running.admin_token_file)
            .unwrap()
            .trim()
            .to_owned();
        let svc = Self {
            url: format!("http://{}", running.addr),
            running: Some(running),
            rt,
            admin,
            dir,
        };
        svc.admin_call(
            "POST",
            "apis",
            &json!({"domain": API, "alg": "ES256", "ttl": 300}),
        );
        svc.register(APP, &own_digest());
        svc.policy("reject.root", false);
        svc
    }

    pub fn admin_call(&self, method: &str, rest: &str, body: &Value) -> Value {
        let url = format!("{}/admin/v1/accounts/default/{rest}", self.url);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let auth = format!("Bearer {}", self.admin);
        let mut resp = match method {
            "GET" => agent.get(&url).header("authorization", &auth).call(),
            "PUT" => agent
                .put(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes()),
            _ => agent
                .post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes()),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        assert!(
            (200..300).contains(&status),
            "{method} {rest}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn register(&self, app: &str, digest: &genuine_protocol::measure::AppDigest) {
        self.admin_call(
            "POST",
            "registrations",
            &json!({"app_id": app, "digest": digest.to_hex(), "version": "1.0"}),
        );
    }

    pub fn policy(&self, key: &str, value: bool) {
        self.admin_call("PUT", &format!("policy/{key}"), &json!({"value": value}));
    }

    /// `tokens/check` from the admin side.
    pub fn check(&self, token: &str) -> Value {
        self.admin_call("POST", "tokens/check", &json!({"token": token}))
    }

    pub fn stop(mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

/// `elf-exec-segments-sha256/v1` of this test binary's file (what
/// `genuine app register` would register).
pub fn own_digest() -> genuine_protocol::measure::AppDigest {
    let bytes = std::fs::read("/proc/self/exe").unwrap();
    genuine_protocol::measure::elf_exec_segments_digest(&bytes).unwrap()
}

/// The wall clock a [`TestClock`] starts at.
pub const WALL_START: i64 = 1_767_225_600;

/// A clock the test moves; `sleep` advances it at once and is recorded.
#[derive(Debug)]
pub struct TestClock {
    pub now: Mutex<Duration>,
    /// The wall clock, Unix seconds.
    pub wall: Mutex<i64>,
    pub sleeps: Mutex<Vec<Duration>>,
}

impl Default for TestClock {
    fn default() -> Self {
        Self {
            now: Mutex::new(Duration::ZERO),
            wall: Mutex::new(WALL_START),
            sleeps: Mutex::new(Vec::new()),
        }
    }
}

impl TestClock {
    /// Both clocks move by `d`.
    pub fn advance(&self, d: Duration) {
        *self.now.lock().unwrap() += d;
        *self.wall.lock().unwrap() += i64::try_from(d.as_secs()).unwrap();
    }
    /// Only the wall clock moves: the device was suspended, and the
    /// monotonic clock (on platforms where it stops then) did not count it.
    pub fn suspend(&self, d: Duration) {
        *self.wall.lock().unwrap() += i64::try_from(d.as_secs()).unwrap();
    }
}

impl Clock for TestClock {
    fn monotonic(&self) -> Duration {
        *self.now.lock().unwrap()
    }
    fn unix_secs(&self) -> i64 {
        *self.wall.lock().unwrap()
    }
    fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap().push(d);
        self.advance(d);
    }
}

/// The real HTTP transport, counting requests.
pub struct Counting {
    pub inner: HttpTransport,
    pub requests: AtomicUsize,
}

impl Counting {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: HttpTransport::new(Duration::from_secs(10)),
            requests: AtomicUsize::new(0),
        })
    }
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Transport for Counting {
    fn post_json(&self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.post_json(url, body)
    }
}

/// The token's claims, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&genuine_protocol::b64::decode(payload).unwrap()).unwrap()
}

/// Whether the service's admin side calls the token valid.
pub fn is_valid(svc: &Service, token: &str) -> bool {
    svc.check(token)["valid"] == json!(true)
}

/// Reasons the admin side decodes from the token's `arc`.
pub fn reasons(svc: &Service, token: &str) -> Vec<String> {
    svc.check(token)["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A compact JWT-shaped token with these claims (not signed: for the
/// client's cache, which does not verify tokens).
pub fn fake_token(claims: &Value) -> String {
    let b = |v: &[u8]| genuine_protocol::b64::encode(v);
    format!(
        "{}.{}.{}",
        b(br#"{"alg":"ES256","typ":"JWT","kid":"k"}"#),
        b(claims.to_string().as_bytes()),
        b(&[7u8; 64])
    )
}

/// One answer of a [`FakeService`].
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }
}

/// A service that answers raw HTTP/1.1 on loopback as `script` says, for
/// answers the real service never gives. `script` gets the path and the
/// request number (from 0).
pub struct FakeService {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

impl FakeService {
    pub fn start(script: impl Fn(&str, usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let n = count.fetch_add(1, Ordering::SeqCst);
                let a = script(&path, n);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    a.status,
                    a.body.len()
                );
                for (k, v) in &a.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(a.body.as_bytes());
            }
        });
        Self { url, requests }
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A challenge answer of a [`FakeService`].
pub fn fake_challenge() -> Answer {
    Answer::json(
        200,
        &serde_json::json!({"nonce": genuine_protocol::b64::encode(&[7u8; 57]), "expires_in": 60}),
    )
}

/// A transport that keeps the bodies of the requests it sends.
pub struct Recording {
    pub inner: HttpTransport,
    pub bodies: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Recording {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: HttpTransport::new(Duration::from_secs(10)),
            bodies: Mutex::new(Vec::new()),
        })
    }
}

impl Transport for Recording {
    fn post_json(&self, url: &str, body: &[u8]) -> Result<HttpResponse, TransportError> {
        self.bodies
            .lock()
            .unwrap()
            .push((url.to_owned(), body.to_vec()));
        self.inner.post_json(url, body)
    }
}

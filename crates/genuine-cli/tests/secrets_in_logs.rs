//! No secret in logs: a flow run with logs captured (stderr at
//! `debug,genuine_server=trace`, and stdout) contains no admin token, HS256
//! secret, master key or private key; the secret files and the data dir are
//! private to the service's user.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Attempt, ServeProcess, TestDevice, client, digest};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER, HEXUPPER};
use genuine_protocol::b64;
use serde_json::{Value, json};

const APP: &str = "com.example.shop";
const ES: &str = "es.example.com";
const HS: &str = "hs.example.com";

/// `genuine serve` like [`ServeProcess::start`], but with stdout kept in a file too.
fn start_capturing(data: &Path, rust_log: &str) -> (ServeProcess, PathBuf) {
    let parent = data.parent().unwrap();
    let stderr_log = parent.join("serve.stderr.log");
    let stdout_log = parent.join("serve.stdout.log");
    let child = Command::new(common::genuine_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", rust_log)
        .env_remove("GENUINE_DATABASE_URL")
        .env_remove("GENUINE_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&stdout_log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr_log).unwrap()))
        .spawn()
        .unwrap();
    let mut serve = ServeProcess {
        child,
        addr: "127.0.0.1:1".parse().unwrap(),
        stderr_log,
    };
    let start = Instant::now();
    serve.addr = loop {
        let out = std::fs::read_to_string(&stdout_log).unwrap();
        if let Some(addr) = out
            .lines()
            .find_map(|l| l.strip_prefix("genuine: listening on http://"))
        {
            break addr.parse().unwrap();
        }
        if let Some(status) = serve.child.try_wait().unwrap() {
            panic!(
                "serve exited ({status}): {}",
                std::fs::read_to_string(&serve.stderr_log).unwrap()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "serve did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (serve, stdout_log)
}

/// Stops the service with SIGTERM (a graceful shutdown that flushes and logs),
/// falling back to SIGKILL after a generous wait.
fn stop(serve: &mut ServeProcess) {
    let term = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let start = Instant::now();
    while serve.child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            serve.child.kill().unwrap();
            serve.child.wait().unwrap();
            panic!("serve did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Plane {
    http: reqwest::Client,
    base: String,
}

impl Plane {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        common::call(
            &self.http,
            &format!("{}{path}", self.base),
            method,
            token,
            body.as_ref(),
        )
        .await
    }

    /// An admin call on the default account; asserts 2xx.
    async fn admin(&self, token: &str, method: &str, rest: &str, body: Option<Value>) -> Value {
        let (status, v) = self
            .call(
                method,
                &format!("/admin/v1/accounts/default/{rest}"),
                Some(token),
                body,
            )
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {rest}: {status} {v}"
        );
        v
    }

    async fn attest(&self, dev: &TestDevice, a: &Attempt) -> Value {
        let (status, v) = self
            .call(
                "POST",
                "/v1/challenge",
                None,
                Some(json!({"account": a.account, "app_id": a.app_id})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let nonce = v["nonce"].as_str().unwrap();
        let (status, v) = self
            .call(
                "POST",
                "/v1/attest",
                None,
                Some(json!({"evidence": dev.evidence(nonce, a)})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }
}

/// The text forms a secret could take in a log.
fn forms(bytes: &[u8]) -> Vec<String> {
    vec![
        HEXLOWER.encode(bytes),
        HEXUPPER.encode(bytes),
        BASE64URL_NOPAD.encode(bytes),
        BASE64.encode(bytes),
        // The start of a Debug dump of the bytes: `[12, 200, 7, ...`.
        format!(
            "[{}",
            bytes[..8]
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ]
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)]
async fn a_flow_with_trace_logs_leaks_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut serve, stdout_log) = start_capturing(&data, "debug,genuine_server=trace");
    let p = Plane {
        http: client(),
        base: serve.url(),
    };
    let boot = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let mut hs_secrets: Vec<String> = Vec::new();

    // Admin plane: APIs, a dev token, registrations, rotation, policy, accounts.
    let es = p
        .admin(
            &boot,
            "POST",
            "apis",
            Some(json!({"domain": ES, "alg": "ES256"})),
        )
        .await;
    assert_eq!(es["alg"], "ES256");
    p.admin(
        &boot,
        "POST",
        "apis",
        Some(json!({"domain": "ed.example.com", "alg": "EdDSA"})),
    )
    .await;
    let hs = p
        .admin(
            &boot,
            "POST",
            "apis",
            Some(json!({"domain": HS, "alg": "HS256"})),
        )
        .await;
    hs_secrets.push(hs["secret"].as_str().unwrap().to_owned());
    let created = p
        .admin(
            &boot,
            "POST",
            "tokens",
            Some(json!({"role": "dev", "label": "ci"})),
        )
        .await;
    let dev_token = created["token"].as_str().unwrap().to_owned();
    assert!(dev_token.starts_with("gat_"), "{created}");
    p.admin(
        &dev_token,
        "POST",
        "registrations",
        Some(json!({"app_id": APP, "digest": digest(1).to_hex(), "version": "1.0"})),
    )
    .await;
    p.admin(&dev_token, "GET", "registrations", None).await;
    p.admin(&boot, "POST", &format!("apis/{ES}/rotate"), None)
        .await;
    let rotated = p
        .admin(&boot, "POST", &format!("apis/{HS}/rotate"), None)
        .await;
    hs_secrets.push(rotated["secret"].as_str().unwrap().to_owned());
    p.admin(
        &boot,
        "PUT",
        "policy/reveal_reasons",
        Some(json!({"value": true})),
    )
    .await;
    let (status, tenant) = p
        .call(
            "POST",
            "/admin/v1/accounts",
            Some(&boot),
            Some(json!({"name": "tenant2"})),
        )
        .await;
    assert_eq!(status, 201, "{tenant}");
    let tenant_token = tenant["admin_token"].as_str().unwrap().to_owned();

    // Example tokens and checks.
    for (api, invalid) in [(ES, false), (ES, true), (HS, false), (HS, true)] {
        let v = p
            .admin(
                &boot,
                "POST",
                "tokens/example",
                Some(json!({"api": api, "invalid": invalid, "binding": "Bearer session-1"})),
            )
            .await;
        let report = p
            .admin(
                &dev_token,
                "POST",
                "tokens/check",
                Some(json!({"token": v["token"]})),
            )
            .await;
        assert_eq!(report["valid"], !invalid, "{api}: {report}");
    }

    // Play Integrity settings hold a secret decryption key: accepted once,
    // refused once (with a bad verification key), shown never.
    let mut play_key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut play_key).unwrap();
    let spki = TestDevice::new().key.public_key().spki_der();
    for (verification_key, expected) in [
        (data_encoding::BASE64.encode(&spki), 200),
        ("AAAA".to_owned(), 400),
    ] {
        let (status, v) = p
            .call(
                "PUT",
                "/admin/v1/accounts/default/apps/com.example.secret/platform/play",
                Some(&boot),
                Some(json!({
                    "package": "com.example.secret",
                    "decryption_key": data_encoding::BASE64.encode(&play_key),
                    "verification_key": verification_key,
                })),
            )
            .await;
        assert_eq!(status, expected, "{v}");
    }

    // Failed admin authentication.
    let wrong = "gat_this-is-a-wrong-token-0123456789abcdef";
    let (status, v) = p
        .call("GET", "/admin/v1/accounts/default/apis", Some(wrong), None)
        .await;
    assert_eq!(status, 401, "{v}");
    let (status, v) = p
        .call("GET", "/admin/v1/accounts/default/apis", None, None)
        .await;
    assert_eq!(status, 401, "{v}");
    let (status, v) = p
        .call(
            "PUT",
            "/admin/v1/accounts/default/policy/reject.debugger",
            Some(&dev_token),
            Some(json!({"value": false})),
        )
        .await;
    assert_eq!(status, 403, "{v}");

    // Attestation plane: a valid attestation, a rejected one, an HS256 one.
    let dev = TestDevice::new();
    let ok = p.attest(&dev, &Attempt::new(APP, ES, digest(1))).await;
    assert!(ok.get("rejection").is_none(), "{ok}");
    let mut debugged = Attempt::new(APP, HS, digest(1));
    debugged.signals.debugger = true;
    let bad = p.attest(&dev, &debugged).await;
    assert_eq!(bad["rejection"]["reasons"], json!(["debugger"]), "{bad}");
    let unregistered = p.attest(&dev, &Attempt::new(APP, HS, digest(2))).await;
    assert!(unregistered.get("rejection").is_some(), "{unregistered}");
    let (status, v) = p
        .call(
            "POST",
            "/v1/attest",
            None,
            Some(json!({"evidence": "a.b.c"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = p
        .call("GET", "/v1/accounts/default/jwks.json", None, None)
        .await;
    assert_eq!(status, 200);
    let text = p
        .http
        .get(format!("{}/metrics", p.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("genuine_attestations_total"), "{text}");

    stop(&mut serve);

    // The logs: non-empty, from this flow, and free of secrets.
    let stderr = std::fs::read_to_string(&serve.stderr_log).unwrap();
    let stdout = std::fs::read_to_string(&stdout_log).unwrap();
    assert!(
        stderr.contains("API added"),
        "the flow was logged: {stderr}"
    );
    assert!(
        stderr.contains("key rotated"),
        "the flow was logged: {stderr}"
    );
    assert!(
        stderr.lines().count() > 20,
        "debug logs were captured: {stderr}"
    );
    assert!(stdout.contains("genuine: listening on"), "{stdout}");
    assert!(stdout.contains("admin.token"), "{stdout}");
    let master = std::fs::read(data.join("master.key")).unwrap();
    assert_eq!(master.len(), 32);
    let mut secrets: Vec<(String, String)> = vec![
        ("bootstrap admin token".into(), boot.clone()),
        ("dev admin token".into(), dev_token.clone()),
        ("tenant2 admin token".into(), tenant_token.clone()),
        ("wrong admin token".into(), wrong.into()),
    ];
    for t in [&boot, &dev_token, &tenant_token] {
        // The token's random part alone, without its prefix.
        secrets.push(("admin token body".into(), t["gat_".len()..].to_owned()));
    }
    for (i, s) in hs_secrets.iter().enumerate() {
        secrets.push((format!("HS256 secret {i}"), s.clone()));
        for f in forms(&b64::decode(s).unwrap()) {
            secrets.push((format!("HS256 secret {i} (another encoding)"), f));
        }
    }
    for f in forms(&play_key) {
        secrets.push(("Play decryption key (some encoding)".into(), f));
    }
    for f in forms(&master) {
        secrets.push(("master key (some encoding)".into(), f));
    }
    for (name, log) in [("stderr", &stderr), ("stdout", &stdout)] {
        for (what, secret) in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "the {name} log contains the {what}"
            );
        }
        assert!(
            !log.contains("PRIVATE KEY"),
            "the {name} log contains a PEM private key"
        );
        assert!(
            !log.contains("\"d\":"),
            "the {name} log contains a private JWK"
        );
    }

    // The secret files and the data dir are private.
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("master.key")), 0o600, "master.key");
    assert_eq!(mode(&data.join("admin.token")), 0o600, "admin.token");
}

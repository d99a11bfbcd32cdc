//! The whole attestation flow over real HTTP against an in-process service on
//! an ephemeral port, with evidence built by the protocol crate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Attempt, T0, TestDevice, TestService, decode_jwt, digest};
use genuine_protocol::b64;
use genuine_protocol::evidence::sign_compact;
use serde_json::{Value, json};

const APP: &str = "com.example.shop";
const API: &str = "api.example.com";

async fn setup() -> TestService {
    let svc = TestService::start().await;
    svc.add_api(API, "ES256", 300).await;
    svc.register(APP, &digest(1)).await;
    svc
}

fn claim_names(token: &str) -> Vec<String> {
    let (_, c) = decode_jwt(token);
    let mut names: Vec<String> = c.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

#[tokio::test]
async fn valid_token_verifies_and_carries_the_expected_claims() {
    let svc = setup().await;
    let dev = TestDevice::new();
    let resp = dev.attest(&svc, &Attempt::new(APP, API, digest(1))).await;
    assert_eq!(resp.expires_in, 300);
    assert!(resp.rejection.is_none());
    let claims = svc
        .verifier("default", API)
        .await
        .verify(&resp.token, svc.clock.get())
        .unwrap();
    assert_eq!(claims.sub.as_deref(), Some(APP));
    assert_eq!(claims.did.as_deref(), Some(dev.did().as_str()));
    assert_eq!(claims.exp - claims.iat.unwrap(), 300);
    assert_eq!(claims.arc.as_ref().map(String::len), Some(16));
    assert_eq!(claims.jti.as_ref().map(String::len), Some(22));
    let (h, _) = decode_jwt(&resp.token);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["typ"], "JWT");
    let report = svc.check(&resp.token).await;
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["reasons"], json!([]));
    svc.stop().await;
}

#[tokio::test]
async fn unregistered_digest_gets_a_decoy_that_looks_the_same() {
    let svc = setup().await;
    let dev = TestDevice::new();
    let good = dev.attest(&svc, &Attempt::new(APP, API, digest(1))).await;
    let bad = dev.attest(&svc, &Attempt::new(APP, API, digest(2))).await;
    assert!(
        bad.rejection.is_none(),
        "reasons are not revealed by default"
    );
    let (gh, _) = decode_jwt(&good.token);
    let (bh, _) = decode_jwt(&bad.token);
    assert_eq!(gh, bh, "same header, same kid");
    assert_eq!(claim_names(&good.token), claim_names(&bad.token));
    assert_eq!(
        good.token.len(),
        bad.token.len(),
        "same length for same-length inputs"
    );
    let verifier = svc.verifier("default", API).await;
    assert_eq!(
        verifier.verify(&bad.token, svc.clock.get()).unwrap_err(),
        genuine_verify::VerifyError::BadSignature
    );
    let report = svc.check(&bad.token).await;
    assert_eq!(report["decoy"], true, "{report}");
    assert_eq!(report["reasons"], json!(["app-not-registered"]));
    svc.stop().await;
}

#[tokio::test]
async fn nonce_is_single_use_and_bound_to_account_and_app() {
    let svc = setup().await;
    svc.register("com.example.other", &digest(1)).await;
    svc.policy("reveal_reasons", true).await;
    let dev = TestDevice::new();
    let a = Attempt::new(APP, API, digest(1));
    let nonce = svc.challenge("default", APP).await;
    let ev = dev.evidence(&nonce, &a);
    let (_, first) = svc.attest_evidence(&ev).await;
    assert!(first.get("rejection").is_none(), "{first}");
    let (status, second) = svc.attest_evidence(&ev).await;
    assert_eq!(status, 200);
    assert_eq!(second["rejection"]["reasons"], json!(["nonce-replayed"]));
    // Same evidence re-signed with a fresh device key: still replayed.
    let (_, third) = svc
        .attest_evidence(&TestDevice::new().evidence(&nonce, &a))
        .await;
    assert_eq!(third["rejection"]["reasons"], json!(["nonce-replayed"]));

    // A nonce issued for another app.
    let other_app_nonce = svc.challenge("default", "com.example.other").await;
    let (_, v) = svc
        .attest_evidence(&dev.evidence(&other_app_nonce, &a))
        .await;
    assert_eq!(v["rejection"]["reasons"], json!(["nonce-invalid"]));

    // A nonce issued for another account.
    let admin = svc.admin.clone();
    let (status, created) = svc
        .request(
            "POST",
            "/admin/v1/accounts",
            Some(&admin),
            Some(&json!({"name": "tenant2"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let other_account_nonce = svc.challenge("tenant2", APP).await;
    let (_, v) = svc
        .attest_evidence(&dev.evidence(&other_account_nonce, &a))
        .await;
    assert_eq!(v["rejection"]["reasons"], json!(["nonce-invalid"]));

    // Forged and expired nonces.
    let (_, v) = svc
        .attest_evidence(&dev.evidence(&b64::encode(&[1u8; 57]), &a))
        .await;
    assert_eq!(v["rejection"]["reasons"], json!(["nonce-invalid"]));
    let nonce = svc.challenge("default", APP).await;
    svc.clock.advance(61);
    let (_, v) = svc.attest_evidence(&dev.evidence(&nonce, &a)).await;
    assert_eq!(v["rejection"]["reasons"], json!(["nonce-expired"]));
    svc.stop().await;
}

#[tokio::test]
async fn each_signal_gives_its_reason_when_the_policy_rejects_it() {
    let svc = setup().await;
    svc.policy("reveal_reasons", true).await;
    svc.policy("reject.virtualized", true).await;
    let dev = TestDevice::new();
    type Set = fn(&mut genuine_protocol::evidence::Signals);
    let cases: [(&str, &str, Set); 7] = [
        ("debugger", "reject.debugger", |s| s.debugger = true),
        ("preload", "reject.preload", |s| {
            s.preload = vec!["/tmp/libhook.so".into()]
        }),
        ("injected-code", "reject.injected", |s| {
            s.injected = vec!["memfd:frida-agent-64.so".into()]
        }),
        ("code-patched", "reject.code_patched", |s| {
            s.code_patched = vec!["libc.so.6:open".into()]
        }),
        ("emulator", "reject.emulator", |s| s.emulator = true),
        ("virtualized", "reject.virtualized", |s| {
            s.virtualized = true
        }),
        ("rooted", "reject.root", |s| s.root = true),
    ];
    for (reason, key, set) in cases {
        let mut a = Attempt::new(APP, API, digest(1));
        set(&mut a.signals);
        let r = dev.attest(&svc, &a).await;
        let rejection = r
            .rejection
            .unwrap_or_else(|| panic!("{reason}: no rejection"));
        assert_eq!(rejection.reasons, vec![reason.to_owned()]);
        assert_eq!(svc.check(&r.token).await["decoy"], true);
        // The same signal passes once the policy accepts it.
        svc.policy(key, false).await;
        let r = dev.attest(&svc, &a).await;
        assert!(r.rejection.is_none(), "{reason} with {key}=false");
        svc.verifier("default", API)
            .await
            .verify(&r.token, svc.clock.get())
            .unwrap();
        svc.policy(key, true).await;
    }
    // All reasons that apply are recorded, not only the first.
    let mut a = Attempt::new(APP, API, digest(9));
    a.signals.debugger = true;
    a.signals.root = true;
    let r = dev.attest(&svc, &a).await;
    assert_eq!(
        r.rejection.unwrap().reasons,
        vec!["app-not-registered", "debugger", "rooted"]
    );
    // Unknown signals are kept, never an error, and shown in metrics.
    let mut a = Attempt::new(APP, API, digest(1));
    a.signals
        .other
        .insert("frida_port_open".into(), json!(true));
    assert!(dev.attest(&svc, &a).await.rejection.is_none());
    let (_, text) = (
        0,
        svc.http
            .get(format!("{}/metrics", svc.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        text.contains("genuine_unknown_signals_total{name=\"frida_port_open\"} 1"),
        "{text}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn allow_and_block_lists() {
    let svc = setup().await;
    svc.policy("reveal_reasons", true).await;
    let dev = TestDevice::new();
    let mut debugged = Attempt::new(APP, API, digest(1));
    debugged.signals.debugger = true;

    svc.admin(
        "PUT",
        &format!("devices/{}", dev.did()),
        Some(json!({"action": "allow", "note": "my laptop"})),
    )
    .await;
    let nonce = svc.challenge("default", APP).await;
    let evidence = dev.evidence(&nonce, &debugged);
    let (_, r) = svc.attest_evidence(&evidence).await;
    assert!(
        r.get("rejection").is_none(),
        "allow-listed device passes: {r}"
    );
    // ...but never a replay of its evidence: the allow list waives integrity, not freshness.
    let (_, replayed) = svc.attest_evidence(&evidence).await;
    assert_eq!(
        replayed["rejection"]["reasons"],
        json!(["nonce-replayed", "debugger"])
    );
    let r = dev.attest(&svc, &debugged).await;
    let report = svc.check(&r.token).await;
    assert_eq!(report["valid"], true);
    assert_eq!(
        report["reasons"],
        json!(["debugger"]),
        "reasons still recorded"
    );
    assert!(
        TestDevice::new()
            .attest(&svc, &debugged)
            .await
            .rejection
            .is_some(),
        "other devices do not"
    );

    svc.admin(
        "PUT",
        &format!("devices/{}", dev.did()),
        Some(json!({"action": "block"})),
    )
    .await;
    let r = dev.attest(&svc, &Attempt::new(APP, API, digest(1))).await;
    assert_eq!(r.rejection.unwrap().reasons, vec!["device-blocked"]);

    svc.admin("DELETE", &format!("devices/{}", dev.did()), None)
        .await;
    assert!(
        dev.attest(&svc, &Attempt::new(APP, API, digest(1)))
            .await
            .rejection
            .is_none()
    );
    let list = svc.admin("GET", "devices", None).await;
    assert_eq!(list, json!([]));
    svc.stop().await;
}

#[tokio::test]
async fn binding_ip_and_unknown_api() {
    let svc = setup().await;
    svc.policy("reveal_reasons", true).await;
    svc.policy("token.ip", true).await;
    let dev = TestDevice::new();
    let mut a = Attempt::new(APP, API, digest(1));
    a.binding = Some(b"Bearer user-session-123".to_vec());
    let r = dev.attest(&svc, &a).await;
    let claims = svc
        .verifier("default", API)
        .await
        .verify(&r.token, svc.clock.get())
        .unwrap();
    genuine_verify::Verifier::check_binding(&claims, b"Bearer user-session-123").unwrap();
    assert_eq!(
        genuine_verify::Verifier::check_binding(&claims, b"Bearer other").unwrap_err(),
        genuine_verify::VerifyError::BindingMismatch
    );
    assert_eq!(claims.ip.as_deref(), Some("127.0.0.1"));

    let r = dev
        .attest(&svc, &Attempt::new(APP, "unknown.example.com", digest(1)))
        .await;
    assert_eq!(r.rejection.unwrap().reasons, vec!["api-unknown"]);
    let (h, _) = decode_jwt(&r.token);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["kid"].as_str().map(str::len), Some(16));
    svc.stop().await;
}

#[tokio::test]
async fn expired_registration() {
    let svc = TestService::start().await;
    svc.add_api(API, "ES256", 300).await;
    svc.policy("reveal_reasons", true).await;
    svc.admin(
        "POST",
        "registrations",
        Some(json!({"app_id": APP, "digest": digest(3).to_hex(), "expire_after_secs": 100})),
    )
    .await;
    let dev = TestDevice::new();
    assert!(
        dev.attest(&svc, &Attempt::new(APP, API, digest(3)))
            .await
            .rejection
            .is_none()
    );
    svc.clock.advance(101);
    let r = dev.attest(&svc, &Attempt::new(APP, API, digest(3))).await;
    assert_eq!(r.rejection.unwrap().reasons, vec!["registration-expired"]);
    // Registering the same digest again without expiry makes it valid again.
    svc.register(APP, &digest(3)).await;
    assert!(
        dev.attest(&svc, &Attempt::new(APP, API, digest(3)))
            .await
            .rejection
            .is_none()
    );
    svc.stop().await;
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_they_expire() {
    let svc = setup().await;
    let dev = TestDevice::new();
    let a = Attempt::new(APP, API, digest(1));
    let old = dev.attest(&svc, &a).await.token;
    let (old_h, _) = decode_jwt(&old);
    let rotated = svc.admin("POST", &format!("apis/{API}/rotate"), None).await;
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(old_h["kid"], new_kid);

    svc.clock.advance(200);
    let new = dev.attest(&svc, &a).await.token;
    let (new_h, _) = decode_jwt(&new);
    assert_eq!(new_h["kid"], new_kid, "new tokens carry the new kid");
    let jwks = svc.jwks("default").await;
    assert_eq!(jwks.keys.len(), 2, "old key still published");
    let v = svc.verifier("default", API).await;
    v.verify(&old, svc.clock.get()).unwrap();
    v.verify(&new, svc.clock.get()).unwrap();

    // Still published after its last token expired, for the grace (JWKS
    // cache max-age plus leeway); withdrawn after that.
    svc.clock.advance(101);
    assert_eq!(svc.jwks("default").await.keys.len(), 2);
    svc.clock
        .advance(genuine_server::admin::ROTATION_GRACE_SECS);
    let jwks = svc.jwks("default").await;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid.as_deref(), Some(new_kid.as_str()));
    let v = svc.verifier("default", API).await;
    assert_eq!(
        v.verify(&old, svc.clock.get()).unwrap_err(),
        genuine_verify::VerifyError::UnknownKey
    );
    v.verify(&new, svc.clock.get()).unwrap();
    svc.stop().await;
}

#[tokio::test]
async fn evidence_invalid_gets_a_decoy_not_an_error() {
    let svc = setup().await;
    svc.policy("reveal_reasons", true).await;
    let dev = TestDevice::new();
    let a = Attempt::new(APP, API, digest(1));
    let nonce = svc.challenge("default", APP).await;
    // Signature made over other bytes.
    let ev = dev.evidence(&nonce, &a);
    let mut parts: Vec<&str> = ev.split('.').collect();
    let other = dev.evidence(&svc.challenge("default", APP).await, &a);
    let other_sig = other.split('.').nth(2).unwrap();
    parts[2] = other_sig;
    let (status, v) = svc.attest_evidence(&parts.join(".")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rejection"]["reasons"], json!(["evidence-invalid"]));
    // A payload missing fields, correctly signed.
    let header = json!({"alg": "ES256", "typ": "genuine-evidence+jwt", "jwk": dev.key.public_key().to_jwk()});
    let payload = json!({"nonce": svc.challenge("default", APP).await, "account": "default", "app_id": APP, "api": API});
    let ev = sign_compact(
        &dev.key,
        &dev.rng,
        header.to_string().as_bytes(),
        payload.to_string().as_bytes(),
    )
    .unwrap();
    let (status, v) = svc.attest_evidence(&ev).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rejection"]["reasons"], json!(["evidence-invalid"]));
    let (h, _) = decode_jwt(v["token"].as_str().unwrap());
    let kid = svc.admin("GET", "apis", None).await[0]["kid"].clone();
    assert_eq!(h["kid"], kid, "decoy under the API's kid");
    svc.stop().await;
}

#[tokio::test]
async fn eddsa_and_hs256_apis() {
    let svc = TestService::start().await;
    svc.register(APP, &digest(1)).await;
    let ed = svc.add_api("ed.example.com", "EdDSA", 60).await;
    let hs = svc.add_api("hs.example.com", "HS256", 60).await;
    let secret = b64::decode(hs["secret"].as_str().unwrap()).unwrap();
    let dev = TestDevice::new();
    let t = dev
        .attest(&svc, &Attempt::new(APP, "ed.example.com", digest(1)))
        .await
        .token;
    assert_eq!(decode_jwt(&t).0["alg"], "EdDSA");
    assert_eq!(decode_jwt(&t).0["kid"], ed["kid"]);
    svc.verifier("default", "ed.example.com")
        .await
        .verify(&t, svc.clock.get())
        .unwrap();
    let expect = genuine_verify::Expectations {
        issuer: svc.issuer("default"),
        audiences: vec!["hs.example.com".into()],
        leeway_secs: 0,
    };
    let hv =
        genuine_verify::Verifier::from_hs256_secret(hs["kid"].as_str().unwrap(), &secret, expect)
            .unwrap();
    let t = dev
        .attest(&svc, &Attempt::new(APP, "hs.example.com", digest(1)))
        .await
        .token;
    hv.verify(&t, svc.clock.get()).unwrap();
    let decoy = dev
        .attest(&svc, &Attempt::new(APP, "hs.example.com", digest(7)))
        .await
        .token;
    assert_eq!(decode_jwt(&decoy).0, decode_jwt(&t).0);
    assert_eq!(
        hv.verify(&decoy, svc.clock.get()).unwrap_err(),
        genuine_verify::VerifyError::BadSignature
    );
    // HS256 secrets are never published.
    let jwks = svc.jwks("default").await;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kty, "OKP");
    assert!(
        svc.admin("GET", "apis", None)
            .await
            .to_string()
            .find("secret")
            .is_none()
    );
    svc.stop().await;
}

#[tokio::test]
async fn metrics_count_outcomes_and_reasons() {
    let svc = setup().await;
    let dev = TestDevice::new();
    dev.attest(&svc, &Attempt::new(APP, API, digest(1))).await;
    dev.attest(&svc, &Attempt::new(APP, API, digest(1))).await;
    let mut a = Attempt::new(APP, API, digest(1));
    a.signals.debugger = true;
    dev.attest(&svc, &a).await;
    // A second device; and one whose evidence signature is broken, which
    // does not count (it proved no key).
    let other = TestDevice::new();
    other.attest(&svc, &Attempt::new(APP, API, digest(1))).await;
    let third = TestDevice::new();
    let a = Attempt::new(APP, API, digest(1));
    let ev = third.evidence(&svc.challenge("default", APP).await, &a);
    let mut parts: Vec<&str> = ev.split('.').collect();
    let again = third.evidence(&svc.challenge("default", APP).await, &a);
    parts[2] = again.split('.').nth(2).unwrap();
    let (s, v) = svc.attest_evidence(&parts.join(".")).await;
    assert_eq!(s, 200, "{v}");
    let m = svc.admin("GET", "metrics?since=3600", None).await;
    assert_eq!(m["outcomes"], json!({"valid": 3, "decoy": 2}), "{m}");
    assert_eq!(m["reasons"]["debugger"], json!(1), "{m}");
    assert_eq!(
        m["unique_devices"],
        json!({"hour": 2, "day": 2, "month": 2}),
        "{m}"
    );
    // The next hour is a new bucket; the day and month keep counting.
    svc.clock.advance(3600);
    TestDevice::new()
        .attest(&svc, &Attempt::new(APP, API, digest(1)))
        .await;
    let m = svc.admin("GET", "metrics?since=3600", None).await;
    assert_eq!(
        m["unique_devices"],
        json!({"hour": 1, "day": 3, "month": 3}),
        "{m}"
    );
    let text = svc
        .http
        .get(format!("{}/metrics", svc.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("genuine_attestations_total{outcome=\"valid\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("genuine_attestation_reasons_total{reason=\"debugger\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("genuine_attest_duration_seconds_count 6"),
        "{text}"
    );
    assert!(
        text.contains("genuine_challenge_duration_seconds_count 7"),
        "{text}"
    );
    assert!(text.contains("genuine_account_cache_live 1"), "{text}");
    let (s, v) = svc.request("GET", "/readyz", None, None).await;
    assert_eq!((s, v), (200, json!({"status": "ready"})));
    svc.stop().await;
}

/// Challenges per client address are limited; the answer is 429 with
/// `Retry-After`; a forwarded address counts only from a trusted proxy.
#[tokio::test]
async fn challenges_are_rate_limited_per_client_address() {
    let svc = TestService::start_with(T0 - T0 % 60, |c| {
        c.challenge_rate_limit = 3;
        c.challenge_rate_window_secs = 60;
    })
    .await;
    let body = json!({"account": "default", "app_id": APP});
    let challenge = |xff: Option<&'static str>| {
        let (http, url, body) = (svc.http.clone(), svc.url.clone(), body.clone());
        async move {
            let mut req = http.post(format!("{url}/v1/challenge")).json(&body);
            if let Some(x) = xff {
                req = req.header("x-forwarded-for", x);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let v: Value = resp.json().await.unwrap();
            (status, retry, v)
        }
    };
    for _ in 0..3 {
        assert_eq!(challenge(None).await.0, 200);
    }
    let (status, retry, v) = challenge(None).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"], "rate-limited", "{v}");
    assert_eq!(
        retry.as_deref(),
        Some("60"),
        "the window's remaining seconds"
    );
    // A client cannot escape by naming another address: loopback is no
    // trusted proxy here.
    assert_eq!(challenge(Some("203.0.113.9")).await.0, 429);
    // The next window.
    svc.clock.advance(30);
    assert_eq!(challenge(None).await.1.as_deref(), Some("30"));
    svc.clock.advance(30);
    assert_eq!(challenge(None).await.0, 200);
    let text = svc
        .http
        .get(format!("{}/metrics", svc.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("genuine_challenges_rate_limited_total 3"),
        "{text}"
    );
    svc.stop().await;

    // Behind a trusted proxy each forwarded client has its own budget.
    let svc = TestService::start_with(T0, |c| {
        c.challenge_rate_limit = 1;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let challenge = |xff: &'static str| {
        let (http, url, body) = (svc.http.clone(), svc.url.clone(), body.clone());
        async move {
            http.post(format!("{url}/v1/challenge"))
                .header("x-forwarded-for", xff)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(challenge("198.51.100.1").await, 200);
    assert_eq!(challenge("198.51.100.1").await, 429);
    assert_eq!(challenge("198.51.100.2").await, 200);
    // The client is the rightmost untrusted hop, not what it wrote itself.
    assert_eq!(challenge("198.51.100.3, 198.51.100.2").await, 429);
    svc.stop().await;
}

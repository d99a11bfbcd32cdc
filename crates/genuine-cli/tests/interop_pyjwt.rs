//! Tokens are plain JWTs, both ways: tokens from the running service verify
//! with PyJWT against the published JWKS (ES256, EdDSA) or the exported secret
//! (HS256), and decoys do not; tokens minted by PyJWT verify with
//! `genuine-verify`.
//!
//! Needs `python3` with `pyjwt[crypto]`; the test installs it with pip when it
//! is missing. Without python3 it reports that it was skipped, except under CI
//! (`CI` set), where a missing interpreter is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{Attempt, TestDevice, TestService, digest};
use serde_json::{Value, json};

fn python_with_pyjwt() -> Option<()> {
    let has = |py: &str| {
        Command::new(py)
            .args(["-c", "import jwt, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if Command::new("python3").arg("--version").output().is_err() {
        return None;
    }
    if !has("python3") {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "pyjwt[crypto]"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install pyjwt[crypto] failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        has("python3"),
        "pyjwt still not importable after pip install"
    );
    Some(())
}

#[tokio::test]
async fn pyjwt_verifies_valid_tokens_and_refuses_decoys() {
    if python_with_pyjwt().is_none() {
        common::tool_present(false, "python3");
        return;
    }
    let (svc, apis) = common::service_with_three_algs().await;
    let dev = TestDevice::new();
    let issuer = svc.issuer("default");
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (api, key) in apis {
        let valid = dev
            .attest(&svc, &Attempt::new("com.example.shop", api, digest(1)))
            .await
            .token;
        let decoy = dev
            .attest(&svc, &Attempt::new("com.example.shop", api, digest(2)))
            .await
            .token;
        let mut debugged = Attempt::new("com.example.shop", api, digest(1));
        debugged.signals.debugger = true;
        let decoy2 = dev.attest(&svc, &debugged).await.token;
        for (token, ok) in [(valid, true), (decoy, false), (decoy2, false)] {
            cases.push(json!({"token": token, "key": key, "audience": api, "issuer": issuer}));
            expected.push(ok);
        }
    }
    // A valid token checked against the wrong audience fails in PyJWT too.
    let t = dev
        .attest(
            &svc,
            &Attempt::new("com.example.shop", "es.example.com", digest(1)),
        )
        .await
        .token;
    cases.push(
        json!({"token": t, "key": "jwks", "audience": "other.example.com", "issuer": issuer}),
    );
    expected.push(false);

    let jwks = svc
        .request("GET", "/.well-known/jwks.json", None, None)
        .await
        .1;
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "ES256 and EdDSA published, HS256 never"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/verify_pyjwt.py");
    let results = common::run_interop(&svc, "python3", std::path::Path::new(script), &jwks, &cases);
    for (i, (r, ok)) in results.iter().zip(&expected).enumerate() {
        assert_eq!(r["ok"], json!(ok), "case {i}: {r}");
        if !ok && i < 9 {
            assert_eq!(
                r["error"], "InvalidSignatureError",
                "decoys fail on the signature: {r}"
            );
        }
    }
    svc.stop().await;
}

#[tokio::test]
async fn genuine_verify_accepts_tokens_minted_by_pyjwt() {
    if python_with_pyjwt().is_none() {
        common::tool_present(false, "python3");
        return;
    }
    let now = common::unix_now();
    let svc = TestService::start_at(now).await;
    let hs = svc.add_api("hs.example.com", "HS256", 300).await;
    let (kid, secret) = (hs["kid"].as_str().unwrap(), hs["secret"].as_str().unwrap());
    let issuer = svc.issuer("default");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/mint_pyjwt.py");
    let out = Command::new("python3")
        .args([script, &issuer, "hs.example.com", kid, secret])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let jwks: genuine_verify::Jwks = serde_json::from_value(minted["jwks"].clone()).unwrap();
    let expect = genuine_verify::Expectations {
        issuer: issuer.clone(),
        audiences: vec!["hs.example.com".into()],
        leeway_secs: 0,
    };
    let asym = genuine_verify::Verifier::from_jwks(&jwks, expect.clone())
        .unwrap()
        .expect_typ("JWT")
        .require_claims(&["sub", "iat", "jti", "did", "arc"]);
    let secret = genuine_protocol::b64::decode(secret).unwrap();
    let hmac = genuine_verify::Verifier::from_hs256_secret(kid, &secret, expect)
        .unwrap()
        .expect_typ("JWT");
    let mut seen = Vec::new();
    for t in minted["tokens"].as_array().unwrap() {
        let (alg, token) = (t["alg"].as_str().unwrap(), t["token"].as_str().unwrap());
        let verifier = if alg == "HS256" { &hmac } else { &asym };
        let claims = verifier
            .verify(token, common::unix_now())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.sub.as_deref(), Some("com.example.shop"));
        seen.push(alg.to_owned());
    }
    assert_eq!(seen, ["ES256", "EdDSA", "HS256"]);
    // The service's own check agrees for the token made with its exported secret.
    let hs_token = minted["tokens"][2]["token"].as_str().unwrap();
    assert_eq!(svc.check(hs_token).await["valid"], true);
    svc.stop().await;
}

//! Tokens verify with the npm package `jose` (Node) against the published JWKS
//! or the exported HS256 secret; decoys do not.
//!
//! Needs `node` and `npm`; the test installs `jose` once into cargo's
//! per-target temporary directory. Without node it reports that it was
//! skipped, except under CI (`CI` set), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Attempt, TestDevice, digest};
use serde_json::json;

/// A directory with `jose` installed and the verification script beside it.
fn jose_dir() -> Option<PathBuf> {
    if Command::new("node").arg("--version").output().is_err() {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jose-interop");
    std::fs::create_dir_all(&dir).unwrap();
    if !dir.join("node_modules/jose/package.json").exists() {
        let out = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("jose@6")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm install jose failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/verify_jose.mjs"),
        dir.join("verify.mjs"),
    )
    .unwrap();
    Some(dir)
}

#[tokio::test]
async fn jose_verifies_valid_tokens_and_refuses_decoys() {
    let Some(dir) = jose_dir() else {
        common::tool_present(false, "node");
        return;
    };
    let (svc, apis) = common::service_with_three_algs().await;
    let dev = TestDevice::new();
    let issuer = svc.issuer("default");
    let (mut cases, mut expected) = (Vec::new(), Vec::new());
    for (api, key) in apis {
        let valid = dev
            .attest(&svc, &Attempt::new("com.example.shop", api, digest(1)))
            .await
            .token;
        let decoy = dev
            .attest(&svc, &Attempt::new("com.example.shop", api, digest(2)))
            .await
            .token;
        for (token, ok) in [(valid, true), (decoy, false)] {
            cases.push(json!({"token": token, "key": key, "audience": api, "issuer": issuer}));
            expected.push(ok);
        }
    }
    let jwks = svc
        .request("GET", "/.well-known/jwks.json", None, None)
        .await
        .1;
    let results = common::run_interop(&svc, "node", &dir.join("verify.mjs"), &jwks, &cases);
    for (i, (r, ok)) in results.iter().zip(&expected).enumerate() {
        assert_eq!(r["ok"], json!(ok), "case {i}: {r}");
        if !ok {
            assert_eq!(
                r["error"], "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
                "case {i}: {r}"
            );
        }
    }
    svc.stop().await;
}

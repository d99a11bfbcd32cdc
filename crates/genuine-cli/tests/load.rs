//! A bounded load run (seconds, not minutes): concurrent clients attest
//! against one service with zero errors, every token valid, every nonce
//! single-use. The long run is the benchmark (`BENCHMARKS.md`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Attempt, TestDevice, TestService, digest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attestations_have_zero_errors() {
    let svc = Arc::new(TestService::start().await);
    svc.add_api("api.example.com", "ES256", 300).await;
    svc.register("com.example.shop", &digest(1)).await;
    let verifier = Arc::new(svc.verifier("default", "api.example.com").await);
    let (clients, per_client) = (16, 25);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let svc = svc.clone();
        let verifier = verifier.clone();
        tasks.push(tokio::spawn(async move {
            let dev = TestDevice::new();
            let a = Attempt::new("com.example.shop", "api.example.com", digest(1));
            let mut jtis = Vec::new();
            for _ in 0..per_client {
                let r = dev.attest(&svc, &a).await;
                let claims = verifier.verify(&r.token, svc.clock.get()).unwrap();
                jtis.push(claims.jti.unwrap());
            }
            jtis
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for jti in t.await.unwrap() {
            assert!(all.insert(jti), "token ids are unique");
        }
    }
    assert_eq!(all.len(), clients * per_client);
    let m = svc.admin("GET", "metrics?since=3600", None).await;
    assert_eq!(m["outcomes"]["valid"], clients * per_client, "{m}");
    assert!(m["outcomes"].get("decoy").is_none(), "{m}");
}

//! Rotation end to end: a backend verifying against the service's JWKS URL
//! keeps accepting old tokens until they expire and accepts tokens under the
//! new key, without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Attempt, TestDevice, TestService, digest};
use genuine_verify::remote::{RemoteJwks, RemoteOptions};
use genuine_verify::{Expectations, Verifier, VerifyError};

const APP: &str = "com.example.shop";
const API: &str = "api.example.com";

/// A service with one ES256 API and a registered app, and a backend whose keys
/// come from the service's JWKS URL.
async fn service_and_backend(min_refetch: Duration) -> (TestService, Arc<RemoteJwks>) {
    let svc = TestService::start().await;
    svc.add_api(API, "ES256", 300).await;
    svc.register(APP, &digest(1)).await;
    let expect = Expectations {
        issuer: svc.issuer("default"),
        audiences: vec![API.into()],
        leeway_secs: 0,
    };
    let options = RemoteOptions {
        min_refetch,
        ..RemoteOptions::default()
    };
    let backend = RemoteJwks::connect(
        format!("{}/v1/accounts/default/jwks.json", svc.url),
        options,
        move |jwks| Ok(Verifier::from_jwks(jwks, expect.clone())?.with_cache(1000)),
    )
    .await
    .unwrap();
    (svc, backend)
}

#[tokio::test]
async fn a_backend_on_the_jwks_url_follows_rotation_without_restart() {
    let (svc, backend) = service_and_backend(Duration::ZERO).await;

    let dev = TestDevice::new();
    let a = Attempt::new(APP, API, digest(1));
    let old = dev.attest(&svc, &a).await.token;
    backend.verify(&old, svc.clock.get()).await.unwrap();

    svc.admin("POST", &format!("apis/{API}/rotate"), None).await;
    let new = dev.attest(&svc, &a).await.token;
    // The new kid is unknown to the backend's keys: it fetches the JWKS once and accepts.
    backend.verify(&new, svc.clock.get()).await.unwrap();
    backend.verify(&old, svc.clock.get()).await.unwrap();

    // Decoys never verify, with the old or the new keys.
    let decoy = dev
        .attest(&svc, &Attempt::new(APP, API, digest(2)))
        .await
        .token;
    assert_eq!(
        backend.verify(&decoy, svc.clock.get()).await.unwrap_err(),
        VerifyError::BadSignature
    );

    // Once the old tokens have expired the service withdraws the old key, and
    // a periodic refresh drops it; new tokens keep verifying.
    svc.clock
        .advance(300 + genuine_server::admin::ROTATION_GRACE_SECS);
    assert_eq!(
        backend.verify(&old, svc.clock.get()).await.unwrap_err(),
        VerifyError::Expired
    );
    assert!(backend.refresh().await.unwrap(), "the key set changed");
    assert_eq!(
        backend
            .verifier()
            .verify(&old, svc.clock.get())
            .unwrap_err(),
        VerifyError::UnknownKey
    );
    let fresh = dev.attest(&svc, &a).await.token;
    backend.verify(&fresh, svc.clock.get()).await.unwrap();
    svc.stop().await;
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let (svc, backend) = service_and_backend(Duration::from_secs(3600)).await;
    svc.admin("POST", &format!("apis/{API}/rotate"), None).await;
    let new = TestDevice::new()
        .attest(&svc, &Attempt::new(APP, API, digest(1)))
        .await
        .token;
    // The JWKS was fetched at connect, less than an interval ago: no refetch.
    assert_eq!(
        backend.verify(&new, svc.clock.get()).await.unwrap_err(),
        VerifyError::UnknownKey
    );
    // An explicit refresh (as the background task does) picks the new key up.
    assert!(backend.refresh().await.unwrap());
    backend.verify(&new, svc.clock.get()).await.unwrap();
    // A backend does not start without keys.
    let err = RemoteJwks::connect(
        format!("{}/v1/accounts/nope/jwks.json", svc.url),
        RemoteOptions::default(),
        |j| {
            Verifier::from_jwks(
                j,
                Expectations {
                    issuer: String::new(),
                    audiences: vec![],
                    leeway_secs: 0,
                },
            )
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "the JWKS URL answered HTTP 404");
    svc.stop().await;
}

#[tokio::test]
async fn the_tower_layer_on_remote_keys_follows_rotation() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use genuine_verify::layer::GenuineLayer;
    use tower::ServiceExt;

    let (svc, keys) = service_and_backend(Duration::ZERO).await;
    let clock = svc.clock.clone();
    let layer = GenuineLayer::with_keys(keys).clock(std::sync::Arc::new(move || clock.get()));
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hi" }))
        .layer(layer.clone());
    let call = |token: String| {
        let app = app.clone();
        async move {
            let req = Request::get("/hello")
                .header("genuine-token", token)
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        }
    };
    let dev = TestDevice::new();
    let a = Attempt::new(APP, API, digest(1));
    let old = dev.attest(&svc, &a).await.token;
    assert_eq!(call(old.clone()).await, StatusCode::OK);

    svc.admin("POST", &format!("apis/{API}/rotate"), None).await;
    let new = dev.attest(&svc, &a).await.token;
    // The first request with the new kid is answered with the keys in hand and
    // starts a fetch in the background; the keys follow within moments.
    let mut status = call(new.clone()).await;
    for _ in 0..100 {
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = call(new.clone()).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "the layer picked up the rotated key without a restart"
    );
    assert_eq!(
        call(old).await,
        StatusCode::OK,
        "old tokens verify until they expire"
    );
    let decoy = dev
        .attest(&svc, &Attempt::new(APP, API, digest(2)))
        .await
        .token;
    assert_eq!(call(decoy).await, StatusCode::UNAUTHORIZED);
    assert!(layer.stats().valid() >= 3);
    svc.stop().await;
}

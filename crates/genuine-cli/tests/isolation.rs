//! Tenant isolation: a second account's tokens, keys and admin token are
//! worthless for the first, and the other way round.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Attempt, TestDevice, TestService, digest};
use serde_json::json;

const APP: &str = "com.example.shop";
const API: &str = "api.example.com";

#[tokio::test]
async fn accounts_are_isolated() {
    let svc = TestService::start().await;
    let root = svc.admin.clone();
    let (status, v) = svc
        .request(
            "POST",
            "/admin/v1/accounts",
            Some(&root),
            Some(&json!({"name": "tenant2"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let t2 = v["admin_token"].as_str().unwrap().to_owned();
    let (status, v) = svc
        .request(
            "POST",
            "/admin/v1/accounts",
            Some(&root),
            Some(&json!({"name": "tenant2"})),
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (409, Some("conflict")));

    // Same API domain and app id in both accounts, different digests.
    svc.add_api(API, "ES256", 300).await;
    svc.register(APP, &digest(1)).await;
    svc.admin_as("tenant2", &t2, "POST", "apis", Some(json!({"domain": API})))
        .await;
    svc.admin_as(
        "tenant2",
        &t2,
        "POST",
        "registrations",
        Some(json!({"app_id": APP, "digest": digest(2).to_hex()})),
    )
    .await;

    // Admin tokens work only on their own account.
    for (account, token) in [("default", &t2), ("tenant2", &root)] {
        for (method, rest) in [
            ("GET", "apis"),
            ("GET", "registrations"),
            ("GET", "policy"),
            ("GET", "devices"),
            ("POST", "apis/api.example.com/rotate"),
        ] {
            let (status, v) = svc
                .request(
                    method,
                    &format!("/admin/v1/accounts/{account}/{rest}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(
                (status, v["error"].as_str()),
                (403, Some("forbidden")),
                "{method} {account}/{rest}"
            );
        }
    }
    // Only the operator (admin of `default`) creates accounts.
    let (status, _) = svc
        .request(
            "POST",
            "/admin/v1/accounts",
            Some(&t2),
            Some(&json!({"name": "tenant3"})),
        )
        .await;
    assert_eq!(status, 403);
    let dev_token = svc
        .admin("POST", "tokens", Some(json!({"role": "dev"})))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = svc
        .request(
            "POST",
            "/admin/v1/accounts",
            Some(&dev_token),
            Some(&json!({"name": "tenant3"})),
        )
        .await;
    assert_eq!(status, 403, "a dev token is not the operator");
    let (status, _) = svc
        .request(
            "POST",
            "/admin/v1/accounts/default/apis",
            Some(&dev_token),
            Some(&json!({"domain": "x.example.com"})),
        )
        .await;
    assert_eq!(status, 403, "dev role cannot manage keys");
    let (status, _) = svc
        .request(
            "GET",
            "/admin/v1/accounts/default/registrations",
            Some(&dev_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "dev role manages registrations");

    // Tokens and keys: a tenant2 token is worthless for default.
    let dev = TestDevice::new();
    let mut a2 = Attempt::new(APP, API, digest(2));
    a2.account = "tenant2".into();
    let t2_token = dev.attest(&svc, &a2).await.token;
    svc.verifier("tenant2", API)
        .await
        .verify(&t2_token, svc.clock.get())
        .unwrap();
    let default_verifier = svc.verifier("default", API).await;
    assert_eq!(
        default_verifier
            .verify(&t2_token, svc.clock.get())
            .unwrap_err(),
        genuine_verify::VerifyError::UnknownKey
    );
    let report = svc.check(&t2_token).await;
    assert_eq!(
        (report["valid"].clone(), report["decoy"].clone()),
        (json!(false), json!(false)),
        "{report}"
    );
    let d_jwks = svc.jwks("default").await;
    let t_jwks = svc.jwks("tenant2").await;
    assert!(
        d_jwks.keys.iter().all(|k| !t_jwks.keys.contains(k)),
        "no shared keys"
    );

    // Registrations do not cross: tenant2's digest is unknown to default and vice versa.
    svc.policy("reveal_reasons", true).await;
    let r = dev.attest(&svc, &Attempt::new(APP, API, digest(2))).await;
    assert_eq!(r.rejection.unwrap().reasons, vec!["app-not-registered"]);
    let mut a1_in_t2 = Attempt::new(APP, API, digest(1));
    a1_in_t2.account = "tenant2".into();
    let t = dev.attest(&svc, &a1_in_t2).await.token;
    assert!(
        svc.verifier("tenant2", API)
            .await
            .verify(&t, svc.clock.get())
            .is_err(),
        "decoy in tenant2"
    );

    // A device blocked in tenant2 still passes in default.
    svc.admin_as(
        "tenant2",
        &t2,
        "PUT",
        &format!("devices/{}", dev.did()),
        Some(json!({"action": "block"})),
    )
    .await;
    assert!(
        dev.attest(&svc, &Attempt::new(APP, API, digest(1)))
            .await
            .rejection
            .is_none()
    );
    svc.stop().await;
}

//! The Key Attestation status list from a URL: loaded at start, refreshed in
//! the background, the last good list kept while the endpoint fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use genuine_server::platform::Revocations;
use genuine_server::status::{StatusSource, load, refresh};

/// A local endpoint serving whatever `body` holds (`None`: HTTP 503).
async fn endpoint(body: Arc<Mutex<Option<String>>>) -> String {
    let app = Router::new().route(
        "/attestation/status",
        get(move || {
            let body = body.clone();
            async move {
                match body.lock().unwrap().clone() {
                    Some(b) => (StatusCode::OK, b),
                    None => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/attestation/status")
}

fn list(serials: &[&str]) -> String {
    let entries: serde_json::Map<String, serde_json::Value> = serials
        .iter()
        .map(|s| {
            (
                (*s).to_owned(),
                serde_json::json!({"status": "REVOKED", "reason": "KEY_COMPROMISE"}),
            )
        })
        .collect();
    serde_json::json!({ "entries": entries }).to_string()
}

async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 2 s");
}

#[tokio::test]
async fn a_url_is_loaded_refreshed_and_kept_through_failures() {
    let body = Arc::new(Mutex::new(Some(list(&["a1"]))));
    let url = endpoint(body.clone()).await;
    let source = StatusSource::parse(&url);
    assert_eq!(source, StatusSource::Url(url.clone()));
    let first = load(&source).await.unwrap();
    assert!(first.get("a1").is_some());

    let held = Arc::new(Revocations::new(Some(first)));
    let task = tokio::spawn(refresh(url, Duration::from_millis(20), held.clone()));
    *body.lock().unwrap() = Some(list(&["a1", "b2"]));
    until(|| held.get().is_some_and(|l| l.get("b2").is_some())).await;

    // The endpoint fails, then serves garbage: the last good list stays.
    *body.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_millis(100)).await;
    *body.lock().unwrap() = Some("not json".into());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let kept = held.get().unwrap();
    assert!(kept.get("a1").is_some() && kept.get("b2").is_some());

    // Back: the next list replaces it.
    *body.lock().unwrap() = Some(list(&["c3"]));
    until(|| {
        held.get()
            .is_some_and(|l| l.get("c3").is_some() && l.get("a1").is_none())
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn loading_fails_clearly() {
    let body = Arc::new(Mutex::new(None));
    let url = endpoint(body.clone()).await;
    let e = load(&StatusSource::parse(&url)).await.unwrap_err();
    assert!(e.contains("503"), "{e}");
    *body.lock().unwrap() = Some("[]".into());
    assert!(load(&StatusSource::parse(&url)).await.is_err());
    let e = load(&StatusSource::parse("/nonexistent/status.json"))
        .await
        .unwrap_err();
    assert!(e.contains("/nonexistent/status.json"), "{e}");
}

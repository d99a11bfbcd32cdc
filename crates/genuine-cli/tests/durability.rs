//! Durability: a test kills the service with SIGKILL during a stream of
//! registrations and finds every acknowledged one after the restart; API keys
//! (sealed with the master key) and the admin token survive the restart too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ServeProcess, client, decode_jwt};
use genuine_protocol::b64;
use genuine_verify::{Expectations, Jwks, Verifier};
use serde_json::{Value, json};

const APP: &str = "com.example.durable";
const ES: &str = "es.example.com";
const HS: &str = "hs.example.com";
const WRITERS: usize = 6;

/// What the writers saw.
#[derive(Default)]
struct Stream {
    /// Ids of registrations whose POST answered 201 with a body.
    acked: Mutex<Vec<String>>,
    /// POSTs sent (acknowledged or not).
    attempted: AtomicUsize,
    /// Answers other than 201, and transport errors before the kill.
    unexpected: Mutex<Vec<String>>,
    /// Set just before the SIGKILL.
    killed: AtomicBool,
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    common::call(http, url, method.as_str(), Some(token), body.as_ref()).await
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

async fn jwks(http: &reqwest::Client, base: &str) -> Jwks {
    let resp = http
        .get(format!("{base}/v1/accounts/default/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

fn kids(jwks: &Jwks) -> HashSet<String> {
    jwks.keys.iter().filter_map(|k| k.kid.clone()).collect()
}

async fn writer(http: reqwest::Client, url: String, token: String, n: usize, s: Arc<Stream>) {
    let mut seq: usize = 0;
    while !s.killed.load(Ordering::SeqCst) {
        seq += 1;
        let body = json!({
            "app_id": APP,
            "digest": format!("{n:032x}{seq:032x}"),
            "version": format!("{n}.{seq}"),
        });
        s.attempted.fetch_add(1, Ordering::SeqCst);
        let sent = http
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if !s.killed.load(Ordering::SeqCst) {
                    s.unexpected.lock().unwrap().push(format!("send: {e}"));
                }
                return;
            }
        };
        let status = resp.status().as_u16();
        // Acknowledged means: 201 and the whole body with the id received.
        let Ok(bytes) = resp.bytes().await else {
            if !s.killed.load(Ordering::SeqCst) {
                s.unexpected.lock().unwrap().push("body cut short".into());
            }
            return;
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match (status, v["id"].as_str()) {
            (201, Some(id)) => s.acked.lock().unwrap().push(id.to_owned()),
            _ => {
                s.unexpected.lock().unwrap().push(format!("{status} {v}"));
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_registrations_and_keys_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = ServeProcess::start(&data, "serve-1.log", "info");
    let token_file = data.join("admin.token");
    let token_text = std::fs::read_to_string(&token_file).unwrap();
    let token = token_text.trim().to_owned();
    let http = client();
    let base = first.url();
    let admin = |base: &str, rest: &str| format!("{base}/admin/v1/accounts/default/{rest}");

    // Keys made before the kill: an ES256 API and an HS256 API.
    let (status, es) = call(
        &http,
        reqwest::Method::POST,
        &admin(&base, "apis"),
        &token,
        Some(json!({"domain": ES, "alg": "ES256"})),
    )
    .await;
    assert_eq!(status, 201, "{es}");
    let (status, hs) = call(
        &http,
        reqwest::Method::POST,
        &admin(&base, "apis"),
        &token,
        Some(json!({"domain": HS, "alg": "HS256"})),
    )
    .await;
    assert_eq!(status, 201, "{hs}");
    let hs_secret = b64::decode(hs["secret"].as_str().unwrap()).unwrap();
    let kids_before = kids(&jwks(&http, &base).await);
    assert!(kids_before.contains(es["kid"].as_str().unwrap()));
    let (status, v) = call(
        &http,
        reqwest::Method::POST,
        &admin(&base, "tokens/example"),
        &token,
        Some(json!({"api": ES})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let token_before = v["token"].as_str().unwrap().to_owned();
    let issuer_before = es["issuer"].as_str().unwrap().to_owned();

    // A stream of registrations from several writers.
    let stream = Arc::new(Stream::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            tokio::spawn(writer(
                http.clone(),
                admin(&base, "registrations"),
                token.clone(),
                n,
                stream.clone(),
            ))
        })
        .collect();
    let acked = || stream.acked.lock().unwrap().len();
    let start = Instant::now();
    while acked() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no registration acknowledged in 60 s: {:?}",
            stream.unexpected.lock().unwrap()
        );
        assert!(
            stream.unexpected.lock().unwrap().is_empty(),
            "{:?}",
            stream.unexpected.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let streaming = Instant::now();
    while acked() < 300 && streaming.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // SIGKILL with requests in flight.
    stream.killed.store(true, Ordering::SeqCst);
    first.child.kill().unwrap();
    let status = first.child.wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    for w in writers {
        tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("writers stop once the service is gone")
            .unwrap();
    }
    let unexpected = stream.unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "answers other than 201 before the kill: {unexpected:?}"
    );
    let acked_ids: Vec<String> = stream.acked.lock().unwrap().clone();
    let attempted = stream.attempted.load(Ordering::SeqCst);
    assert!(!acked_ids.is_empty());
    assert!(
        attempted > acked_ids.len(),
        "the kill hit requests in flight"
    );
    assert_eq!(
        acked_ids.iter().collect::<HashSet<_>>().len(),
        acked_ids.len(),
        "ids are unique"
    );

    // Restart on the same data dir: the same token, no new bootstrap.
    let second = ServeProcess::start(&data, "serve-2.log", "info");
    let base = second.url();
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        token_text,
        "the admin token file is kept"
    );
    let (status, list) = call(
        &http,
        reqwest::Method::GET,
        &format!("{}?app_id={APP}", admin(&base, "registrations")),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let listed: HashSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acked_ids
        .iter()
        .filter(|id| !listed.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged registrations lost after SIGKILL: {lost:?}",
        lost.len(),
        acked_ids.len()
    );
    assert!(
        listed.len() <= attempted,
        "{} listed but only {attempted} sent",
        listed.len()
    );
    eprintln!(
        "{} acknowledged, {attempted} sent, {} found after the restart",
        acked_ids.len(),
        listed.len()
    );

    // The keys survived: the same kids are published, and they still sign.
    let jwks_after = jwks(&http, &base).await;
    assert_eq!(kids(&jwks_after), kids_before);
    // A token signed before the kill verifies against the JWKS served after it
    // (the issuer names the old address: the port changed).
    let v = Verifier::from_jwks(
        &jwks_after,
        Expectations {
            issuer: issuer_before,
            audiences: vec![ES.into()],
            leeway_secs: 0,
        },
    )
    .unwrap();
    v.verify(&token_before, now()).unwrap();
    for (api, kid) in [(ES, &es["kid"]), (HS, &hs["kid"])] {
        let (status, v) = call(
            &http,
            reqwest::Method::POST,
            &admin(&base, "tokens/example"),
            &token,
            Some(json!({"api": api})),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        let t = v["token"].as_str().unwrap().to_owned();
        assert_eq!(&decode_jwt(&t).0["kid"], kid, "{api}");
        let (status, report) = call(
            &http,
            reqwest::Method::POST,
            &admin(&base, "tokens/check"),
            &token,
            Some(json!({"token": t})),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["valid"], true, "{api}: {report}");
        if api == HS {
            // The HS256 secret handed out before the kill still verifies.
            let hv = Verifier::from_hs256_secret(
                kid.as_str().unwrap(),
                &hs_secret,
                Expectations {
                    issuer: format!("{base}/v1/accounts/default"),
                    audiences: vec![HS.into()],
                    leeway_secs: 0,
                },
            )
            .unwrap();
            hv.verify(&t, now()).unwrap();
        }
    }
    drop(second);
}

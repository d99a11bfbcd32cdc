//! Cluster mode: two `genuine serve` processes on loopback sharing the
//! PostgreSQL and Redis named by `GENUINE_TEST_DATABASE_URL` and
//! `GENUINE_TEST_REDIS_URL` (each test in its own schema and key prefix).
//!
//! - a nonce issued by one node is accepted once at the other and refused on
//!   any later use at either;
//! - registrations, device overrides, policy and key rotations made through
//!   one node take effect on the other within a second;
//! - `kill -9` of one node under load: the other keeps serving and nothing
//!   the killed node acknowledged is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Attempt, ServeProcess, TestDevice, client, digest};
use genuine_protocol::wire::AttestResponse;
use genuine_verify::{Expectations, Jwks, Verifier};
use serde_json::{Value, json};

const APP: &str = "com.example.cluster";
const API: &str = "api.cluster.test";
const PUBLIC_URL: &str = "http://cluster.test";

/// The engines from the environment, or `None` (the test says it skipped).
fn engines(test: &str) -> Option<(String, String)> {
    let db = std::env::var("GENUINE_TEST_DATABASE_URL").ok();
    let redis = std::env::var("GENUINE_TEST_REDIS_URL").ok();
    match (db, redis) {
        (Some(db), Some(redis)) => Some((db, redis)),
        _ => {
            eprintln!(
                "SKIPPED {test}: set GENUINE_TEST_DATABASE_URL and GENUINE_TEST_REDIS_URL (as .ci/run does) to run the cluster tests"
            );
            None
        }
    }
}

fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    data_encoding::HEXLOWER.encode(&b)
}

/// A cluster under test: its own PostgreSQL schema and Redis key prefix, the
/// master key of its first node shared with the others.
struct Cluster {
    dir: tempfile::TempDir,
    base_db: String,
    schema: String,
    db_url: String,
    redis_url: String,
    prefix: String,
}

impl Cluster {
    async fn new(base_db: String, redis_url: String) -> Self {
        use sqlx::Connection;
        let schema = format!("genuine_c_{}", random_hex(6));
        let mut conn = sqlx::PgConnection::connect(&base_db).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if base_db.contains('?') { '&' } else { '?' };
        let db_url = format!("{base_db}{sep}options=-c%20search_path%3D{schema}");
        Self {
            dir: tempfile::tempdir().unwrap(),
            base_db,
            schema,
            db_url,
            redis_url,
            prefix: format!("genuine-test-{}:", random_hex(6)),
        }
    }

    fn master_key_file(&self) -> std::path::PathBuf {
        self.dir.path().join("master.key")
    }

    /// Starts node `name`. The first node creates the master key file; the
    /// others read the same file (as operators copy it to every node).
    fn node(&self, name: &str) -> ServeProcess {
        self.node_with(name, &[])
    }

    fn node_with(&self, name: &str, extra: &[(&str, String)]) -> ServeProcess {
        let mut env = vec![
            ("GENUINE_DATABASE_URL", self.db_url.clone()),
            ("GENUINE_REDIS_URL", self.redis_url.clone()),
            ("GENUINE_REDIS_KEY_PREFIX", self.prefix.clone()),
            (
                "GENUINE_MASTER_KEY_FILE",
                self.master_key_file().display().to_string(),
            ),
            ("GENUINE_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ];
        env.extend(extra.iter().cloned());
        ServeProcess::start_with_env(
            &self.dir.path().join(format!("data-{name}")),
            &format!("serve-{name}.log"),
            "info",
            &env,
        )
    }

    /// The bootstrap admin token, written by whichever node created `default`.
    fn admin_token(&self) -> String {
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = entry.unwrap().path().join("admin.token");
            if let Ok(t) = std::fs::read_to_string(&p) {
                return t.trim().to_owned();
            }
        }
        panic!("no node wrote admin.token");
    }

    /// Best-effort cleanup (the nodes are gone; a failure here is reported,
    /// not a test failure: the schema has a random name).
    async fn drop_schema(self) {
        use sqlx::Connection;
        for _ in 0..5 {
            let result = async {
                let mut conn = sqlx::PgConnection::connect(&self.base_db).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA {} CASCADE",
                    self.schema
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            }
            .await;
            match result {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("could not drop schema {}: {e}; retrying", self.schema);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// An admin call to one node.
async fn admin(
    http: &reqwest::Client,
    node: &ServeProcess,
    token: &str,
    method: &str,
    rest: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}/admin/v1/accounts/default/{rest}", node.url());
    common::call(http, &url, method, Some(token), body.as_ref()).await
}

/// Challenge at `at`, attest at `to`: the evidence and the answer.
async fn attest_across(
    http: &reqwest::Client,
    at: &ServeProcess,
    to: &ServeProcess,
    device: &TestDevice,
    a: &Attempt,
) -> (String, u16, Value) {
    let (s, v) = common::call(
        http,
        &format!("{}/v1/challenge", at.url()),
        "POST",
        None,
        Some(&json!({"account": a.account, "app_id": a.app_id})),
    )
    .await;
    assert_eq!(s, 200, "challenge: {v}");
    let evidence = device.evidence(v["nonce"].as_str().unwrap(), a);
    let (s, v) = post_evidence(http, to, &evidence).await;
    (evidence, s, v)
}

async fn post_evidence(http: &reqwest::Client, to: &ServeProcess, evidence: &str) -> (u16, Value) {
    common::call(
        http,
        &format!("{}/v1/attest", to.url()),
        "POST",
        None,
        Some(&json!({"evidence": evidence})),
    )
    .await
}

/// The reasons a decoy answer reveals (the policy reveals them); empty for a
/// valid token.
fn reasons(v: &Value) -> Vec<String> {
    let r: AttestResponse = serde_json::from_value(v.clone()).unwrap();
    r.rejection.map(|r| r.reasons).unwrap_or_default()
}

async fn jwks(http: &reqwest::Client, node: &ServeProcess) -> Jwks {
    let (s, v) = common::call(
        http,
        &format!("{}/v1/accounts/default/jwks.json", node.url()),
        "GET",
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

/// Polls `check` against `node` until it holds; returns how long it took.
async fn within_a_second<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            let took = start.elapsed();
            eprintln!("{what}: took effect on the other node after {took:?}");
            return took;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{what}: not in effect on the other node after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_nonces_registrations_and_changes() {
    let Some((db, redis)) = engines("two_nodes_share_nonces_registrations_and_changes") else {
        return;
    };
    let cluster = Cluster::new(db, redis).await;
    let a = cluster.node("a");
    let b = cluster.node("b");
    let http = client();
    let token = cluster.admin_token();
    common::next_second().await;

    // Both nodes answer ready.
    for n in [&a, &b] {
        let (s, v) = common::call(&http, &format!("{}/readyz", n.url()), "GET", None, None).await;
        assert_eq!(s, 200, "{v}");
    }

    let (s, v) = admin(
        &http,
        &a,
        &token,
        "POST",
        "apis",
        Some(json!({"domain": API, "alg": "ES256", "ttl": 300})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = admin(
        &http,
        &a,
        &token,
        "PUT",
        "policy/reveal_reasons",
        Some(json!({"value": true})),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    let device = TestDevice::new();
    let attempt = Attempt::new(APP, API, digest(9));

    // B serves the account before the app is registered (and caches it).
    let (_, s, v) = attest_across(&http, &a, &b, &device, &attempt).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(reasons(&v), ["app-not-registered"]);

    // A registration made through A is honoured by B within a second.
    let (s, v) = admin(
        &http,
        &a,
        &token,
        "POST",
        "registrations",
        Some(json!({"app_id": APP, "platform": "linux", "digest": data_encoding::HEXLOWER.encode(&digest(9).0)})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    within_a_second("registration via A", || async {
        let (_, s, v) = attest_across(&http, &a, &b, &device, &attempt).await;
        s == 200 && reasons(&v).is_empty()
    })
    .await;

    // A nonce from A is accepted once at B and refused on any later use at either.
    let (evidence, s, v) = attest_across(&http, &a, &b, &device, &attempt).await;
    assert_eq!((s, reasons(&v)), (200, vec![]), "{v}");
    let token_b: AttestResponse = serde_json::from_value(v).unwrap();
    for node in [&b, &a, &b] {
        let (s, v) = post_evidence(&http, node, &evidence).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(reasons(&v), ["nonce-replayed"], "{v}");
    }

    // Tokens from either node verify against the JWKS of either node.
    let expect = Expectations {
        issuer: format!("{PUBLIC_URL}/v1/accounts/default"),
        audiences: vec![API.to_owned()],
        leeway_secs: 0,
    };
    let verifier = Verifier::from_jwks(&jwks(&http, &a).await, expect.clone()).unwrap();
    verifier.verify(&token_b.token, common::unix_now()).unwrap();

    // A device blocked through B is refused by A within a second.
    let did = device.did();
    let (s, v) = admin(
        &http,
        &b,
        &token,
        "PUT",
        &format!("devices/{did}"),
        Some(json!({"action": "block"})),
    )
    .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    within_a_second("device block via B", || async {
        let (_, _, v) = attest_across(&http, &b, &a, &device, &attempt).await;
        reasons(&v).contains(&"device-blocked".to_owned())
    })
    .await;
    let (s, v) = admin(&http, &a, &token, "DELETE", &format!("devices/{did}"), None).await;
    assert!(s == 200 || s == 204, "{s} {v}");
    within_a_second("device clear via A", || async {
        let (_, _, v) = attest_across(&http, &a, &b, &device, &attempt).await;
        reasons(&v).is_empty()
    })
    .await;

    // A policy change through B takes effect on A within a second.
    let mut debugged = attempt.clone();
    debugged.signals.debugger = true;
    let (s, v) = admin(
        &http,
        &b,
        &token,
        "PUT",
        "policy/reject.debugger",
        Some(json!({"value": false})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    within_a_second("policy via B", || async {
        let (_, _, v) = attest_across(&http, &b, &a, &device, &debugged).await;
        reasons(&v).is_empty()
    })
    .await;

    // A key rotation through A: B signs with the new key and publishes it.
    let old_kid = jwks(&http, &b).await.keys[0].kid.clone().unwrap();
    let (s, v) = admin(
        &http,
        &a,
        &token,
        "POST",
        &format!("apis/{API}/rotate"),
        Some(json!({})),
    )
    .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    within_a_second("rotation via A", || async {
        let (_, _, v) = attest_across(&http, &a, &b, &device, &attempt).await;
        let r: AttestResponse = serde_json::from_value(v).unwrap();
        let (h, _) = common::decode_jwt(&r.token);
        h["kid"].as_str() != Some(old_kid.as_str())
    })
    .await;
    assert_eq!(
        jwks(&http, &b).await.keys.len(),
        2,
        "old and new key published"
    );

    drop((a, b));
    cluster.drop_schema().await;
}

/// What the attesters saw.
#[derive(Default)]
struct Tally {
    valid: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_node_under_load_loses_nothing() {
    let Some((db, redis)) = engines("kill_9_of_one_node_under_load_loses_nothing") else {
        return;
    };
    let cluster = Cluster::new(db, redis).await;
    // All load comes from one address: no rate limit here.
    let off = [("GENUINE_CHALLENGE_RATE_LIMIT", "0".to_owned())];
    let mut a = cluster.node_with("a", &off);
    let b = cluster.node_with("b", &off);
    let http = client();
    let token = cluster.admin_token();
    common::next_second().await;
    let (s, v) = admin(
        &http,
        &a,
        &token,
        "POST",
        "apis",
        Some(json!({"domain": API, "alg": "ES256", "ttl": 300})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let reg = json!({"app_id": APP, "platform": "linux", "digest": data_encoding::HEXLOWER.encode(&digest(3).0)});
    let (s, v) = admin(&http, &b, &token, "POST", "registrations", Some(reg)).await;
    assert_eq!(s, 201, "{v}");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let b_url = b.url();
    // Attesters on B for the whole run.
    let mut attesters = Vec::new();
    for _ in 0..4 {
        let (stop, tally, http, url) = (stop.clone(), tally.clone(), http.clone(), b_url.clone());
        attesters.push(tokio::spawn(async move {
            let device = TestDevice::new();
            let attempt = Attempt::new(APP, API, digest(3));
            while !stop.load(Ordering::SeqCst) {
                let (s, v) = common::call(
                    &http,
                    &format!("{url}/v1/challenge"),
                    "POST",
                    None,
                    Some(&json!({"account": "default", "app_id": APP})),
                )
                .await;
                if s != 200 {
                    tally
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("challenge {s} {v}"));
                    continue;
                }
                let ev = device.evidence(v["nonce"].as_str().unwrap(), &attempt);
                let (s, v) = common::call(
                    &http,
                    &format!("{url}/v1/attest"),
                    "POST",
                    None,
                    Some(&json!({"evidence": ev})),
                )
                .await;
                let (_, claims) = if s == 200 {
                    common::decode_jwt(v["token"].as_str().unwrap())
                } else {
                    (Value::Null, Value::Null)
                };
                if s == 200 && v.get("rejection").is_none() && claims["sub"] == APP {
                    tally.valid.fetch_add(1, Ordering::SeqCst);
                } else {
                    tally
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("attest {s} {v}"));
                }
            }
        }));
    }
    // Registration writers on A until it dies: every 201 is acknowledged.
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..3u8 {
        let (acked, http, url, token) = (acked.clone(), http.clone(), a.url(), token.clone());
        writers.push(tokio::spawn(async move {
            for i in 0u32.. {
                let body = json!({"app_id": format!("app.{w}.{i}"), "platform": "linux", "digest": random_hex(32)});
                let resp = http
                    .post(format!("{url}/admin/v1/accounts/default/registrations"))
                    .bearer_auth(&token)
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let Ok(resp) = resp else { return };
                if resp.status().as_u16() != 201 {
                    return;
                }
                let Ok(v) = resp.json::<Value>().await else { return };
                acked.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = tally.valid.load(Ordering::SeqCst);
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for t in attesters {
        t.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    let valid = tally.valid.load(Ordering::SeqCst);
    eprintln!(
        "B served {valid} valid attestations ({before_kill} before the kill of A), failures: {}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "B failed while A was killed: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(valid > before_kill, "B kept serving after the kill");

    // Every registration A acknowledged is there, read through B.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "the writers made progress: {}",
        acked.len()
    );
    let (s, v) = admin(&http, &b, &token, "GET", "registrations", None).await;
    assert_eq!(s, 200, "{v}");
    let present: std::collections::HashSet<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = acked.iter().filter(|id| !present.contains(*id)).collect();
    eprintln!(
        "{} registrations acknowledged by A before its kill; missing: {}",
        acked.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    drop(b);
    cluster.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_challenge_rate_limit_is_shared_by_the_nodes() {
    let Some((db, redis)) = engines("the_challenge_rate_limit_is_shared_by_the_nodes") else {
        return;
    };
    let cluster = Cluster::new(db, redis).await;
    let limit = [("GENUINE_CHALLENGE_RATE_LIMIT", "5".to_owned())];
    let a = cluster.node_with("a", &limit);
    let b = cluster.node_with("b", &limit);
    let http = client();
    let challenge = |node: &ServeProcess| {
        let (http, url) = (http.clone(), node.url());
        async move {
            let resp = http
                .post(format!("{url}/v1/challenge"))
                .json(&json!({"account": "default", "app_id": APP}))
                .send()
                .await
                .unwrap();
            let retry = resp.headers().get("retry-after").cloned();
            (resp.status().as_u16(), retry)
        }
    };
    // The window is a fixed minute: start right after a boundary so the
    // five allowed requests cannot straddle two windows.
    let second = common::unix_now() % 60;
    if second > 50 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap())).await;
    }
    for node in [&a, &b, &a, &b, &a] {
        assert_eq!(challenge(node).await.0, 200);
    }
    for node in [&b, &a] {
        let (status, retry) = challenge(node).await;
        assert_eq!(status, 429);
        let secs: u64 = retry.unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&secs), "Retry-After {secs}");
    }
    drop((a, b));
    cluster.drop_schema().await;
}

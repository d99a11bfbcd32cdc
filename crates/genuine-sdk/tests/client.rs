//! The client against a real service in process: valid tokens for the
//! untouched test binary, one attestation for many concurrent callers, cache
//! hits without network, binding, revealed rejections, configuration
//! errors, and an outage with backoff and recovery. The client's clock is
//! moved by hand: no test sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use common::{
    API, APP, Answer, Counting, FakeService, Recording, Service, TestClock, WALL_START, claims,
    fake_challenge, fake_token, is_valid, reasons,
};
use genuine_sdk::{Client, Config, Error, Observation, Probe, ProbeError, Status};
use serde_json::json;

fn config(svc_url: &str, dir: &std::path::Path) -> Config {
    Config::new(svc_url, APP, API, dir)
}

struct Fixture {
    client: Client,
    transport: Arc<Counting>,
    clock: Arc<TestClock>,
    _dir: tempfile::TempDir,
}

fn client_for(url: &str, tweak: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(url, dir.path());
    tweak(&mut cfg);
    let transport = Counting::new();
    let clock = Arc::new(TestClock::default());
    let client = Client::builder(cfg)
        .transport(transport.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    Fixture {
        client,
        transport,
        clock,
        _dir: dir,
    }
}

#[test]
fn untouched_app_gets_a_valid_token_and_cache_hits_make_no_request() {
    let svc = Service::start();
    let f = client_for(&svc.url, |_| {});
    assert_eq!(f.client.status(), Status::Pending);
    let token = f.client.token_blocking().unwrap();
    assert_eq!(f.transport.count(), 2, "one challenge, one attest");
    assert_eq!(f.client.status(), Status::Ok);
    let report = svc.check(token.as_str());
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["reasons"], serde_json::json!([]));
    let c = claims(token.as_str());
    assert_eq!(c["sub"], APP);
    assert_eq!(c["aud"], API);
    assert_eq!(c["did"], f.client.device_id());
    assert_eq!(token.lifetime(), Duration::from_secs(300));

    // Cache hits, up to the margin: 300 s lifetime - 30 s margin.
    for _ in 0..1000 {
        assert_eq!(f.client.token_blocking().unwrap(), token);
    }
    f.clock.advance(Duration::from_secs(269));
    assert_eq!(f.client.token_blocking().unwrap(), token);
    assert_eq!(f.transport.count(), 2, "cache hits made no request");

    // Inside the margin: a fresh attestation, a new token.
    f.clock.advance(Duration::from_secs(2));
    let fresh = f.client.token_blocking().unwrap();
    assert_ne!(fresh, token);
    assert_eq!(f.transport.count(), 4);
    assert!(is_valid(&svc, fresh.as_str()));

    // The device key is the same installation's: same device id next start.
    let again = Client::new(config(&svc.url, f._dir.path())).unwrap();
    assert_eq!(again.device_id(), f.client.device_id());
    svc.stop();
}

#[test]
fn many_concurrent_callers_cause_exactly_one_attestation() {
    let svc = Service::start();
    let f = client_for(&svc.url, |_| {});
    let n = 32;
    let barrier = Arc::new(Barrier::new(n));
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let c = f.client.clone();
                let b = barrier.clone();
                s.spawn(move || {
                    b.wait();
                    c.token_blocking().unwrap().as_str().to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(
        f.transport.count(),
        2,
        "exactly one attestation for {n} threads"
    );

    // The async API on a runtime: 32 tasks after the cache was dropped, one
    // attestation again; then cache hits without a thread or a request.
    f.client.invalidate();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let async_tokens: Vec<String> = rt.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let c = f.client.clone();
                tokio::spawn(async move { c.token().await.unwrap().as_str().to_owned() })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(async_tokens.iter().all(|t| *t == async_tokens[0]));
    assert_ne!(async_tokens[0], tokens[0]);
    assert_eq!(f.transport.count(), 4, "one more attestation for {n} tasks");
    let hit = rt.block_on(f.client.token()).unwrap();
    assert_eq!(hit.as_str(), async_tokens[0]);
    assert_eq!(f.transport.count(), 4);
    assert!(is_valid(&svc, &async_tokens[0]));
    svc.stop();
}

#[test]
fn binding_change_forces_a_fresh_attestation() {
    let svc = Service::start();
    let f = client_for(&svc.url, |_| {});
    let unbound = f.client.token_blocking().unwrap();
    assert!(claims(unbound.as_str()).get("pay").is_none());
    f.client.set_binding(b"Bearer alice");
    let alice = f.client.token_blocking().unwrap();
    let expected = genuine_protocol::b64::encode(
        ring::digest::digest(&ring::digest::SHA256, b"Bearer alice").as_ref(),
    );
    assert_eq!(claims(alice.as_str())["pay"], expected);
    assert_eq!(f.transport.count(), 4);
    // The same data again: the cached token stays.
    f.client.set_binding(b"Bearer alice");
    assert_eq!(f.client.token_blocking().unwrap(), alice);
    assert_eq!(f.transport.count(), 4);
    f.client.set_binding(b"Bearer bob");
    let bob = f.client.token_blocking().unwrap();
    assert_ne!(claims(bob.as_str())["pay"], expected);
    f.client.clear_binding();
    assert!(
        claims(f.client.token_blocking().unwrap().as_str())
            .get("pay")
            .is_none()
    );
    assert_eq!(f.transport.count(), 8);
    assert!(is_valid(&svc, bob.as_str()));
    svc.stop();
}

#[test]
fn rejection_reasons_when_revealed_and_decoy_when_not() {
    let svc = Service::start();
    let dir = tempfile::tempdir().unwrap();
    let other = Config::new(&svc.url, "com.example.unregistered", API, dir.path());
    // Not revealed (the default): the app gets a decoy that looks valid.
    let client = Client::new(other.clone()).unwrap();
    let decoy = client.token_blocking().unwrap();
    assert_eq!(client.status(), Status::Ok, "the app cannot tell");
    assert!(!is_valid(&svc, decoy.as_str()));
    assert_eq!(reasons(&svc, decoy.as_str()), vec!["app-not-registered"]);
    // Revealed: a typed rejection with the reasons, and the status word.
    svc.policy("reveal_reasons", true);
    client.invalidate();
    let err = client.token_blocking().unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { reasons, arc } if reasons == &["app-not-registered"] && arc.len() == 16),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(client.status().as_str(), "rejected");
    svc.stop();
}

#[test]
fn configuration_errors_are_typed_and_not_retried() {
    let svc = Service::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::new(&svc.url, APP, API, dir.path());
    c.account = "no-such-account".into();
    let f_transport = Counting::new();
    let client = Client::builder(c)
        .transport(f_transport.clone())
        .build()
        .unwrap();
    let err = client.token_blocking().unwrap_err();
    assert!(
        matches!(&err, Error::Refused { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(f_transport.count(), 1, "not retried");
    assert_eq!(client.status().as_str(), "refused");
    let bad = Config::new("ftp://x", APP, API, dir.path());
    assert!(matches!(Client::new(bad), Err(Error::Config(m)) if m.contains("service_url")));
    svc.stop();
}

#[test]
fn unreachable_service_backs_off_then_recovers() {
    // A port with nothing listening (taken, then released).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let f = client_for(&url, |c| {
        c.attempts = 3;
        c.backoff_base = Duration::from_millis(200);
        c.backoff_max = Duration::from_secs(10);
    });
    let calls_before = f.transport.count();
    let err = f.client.token_blocking().unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(f.client.status().as_str(), "no-network");
    assert_eq!(f.transport.count() - calls_before, 3, "three attempts");
    // Exponential backoff with jitter between the attempts: [d/2, d].
    let sleeps = f.clock.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 2);
    assert!(sleeps[0] >= Duration::from_millis(100) && sleeps[0] <= Duration::from_millis(200));
    assert!(sleeps[1] >= Duration::from_millis(200) && sleeps[1] <= Duration::from_millis(400));

    // Within the cool-down after a failed flight: the error at once, no request.
    let again = f.client.token_blocking().unwrap_err();
    assert_eq!(again, err);
    assert_eq!(f.transport.count(), 3);
    // After it: tried again (and the next cool-down is longer).
    f.clock.advance(Duration::from_millis(201));
    assert!(f.client.token_blocking().is_err());
    assert_eq!(f.transport.count(), 6);

    // The service comes back on that port: the client recovers by itself.
    let svc = Service::start_on(addr);
    f.clock.advance(Duration::from_secs(11));
    let token = f.client.token_blocking().unwrap();
    assert_eq!(f.client.status(), Status::Ok);
    assert!(is_valid(&svc, token.as_str()));

    // Down again: a token that has not expired is still handed out past
    // the refresh margin, never one that has.
    svc.stop();
    f.clock.advance(Duration::from_secs(280));
    assert_eq!(
        f.client.token_blocking().unwrap(),
        token,
        "stale but unexpired"
    );
    assert_eq!(f.client.status().as_str(), "no-network");
    f.clock.advance(Duration::from_secs(20));
    assert!(matches!(f.client.token_blocking(), Err(Error::Network(_))));
}

#[test]
fn backoff_is_jittered() {
    // Twelve attempts against nothing: after the first two the delay is at
    // its cap `d` = 400 ms, so each later sleep is drawn from [200, 400] ms.
    // Equal jitter means they differ (a constant would pass a range check).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = client_for(&format!("http://{addr}"), |c| {
        c.attempts = 12;
        c.backoff_base = Duration::from_millis(100);
        c.backoff_max = Duration::from_millis(400);
    });
    assert!(f.client.token_blocking().is_err());
    let sleeps = f.clock.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 11);
    let capped = &sleeps[2..];
    for d in capped {
        assert!(
            *d >= Duration::from_millis(200) && *d <= Duration::from_millis(400),
            "{d:?}"
        );
    }
    let mut distinct = capped.to_vec();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 5, "jitter: {capped:?}");
}

/// Runs `f` on a thread and fails the test if it does not end within 20 s
/// (a hang would otherwise hang the test run).
fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("hung, or panicked")
}

/// Answers a token with these claims and `expires_in`.
fn token_answer(claims: &serde_json::Value, expires_in: &str) -> Answer {
    Answer {
        status: 200,
        headers: Vec::new(),
        body: format!(
            r#"{{"token":"{}","expires_in":{expires_in}}}"#,
            fake_token(claims)
        ),
    }
}

/// A probe that observes a fixed digest, instantly.
struct FixedProbe;

impl Probe for FixedProbe {
    fn observe(&self) -> Result<Observation, ProbeError> {
        Ok(Observation {
            digest: genuine_protocol::measure::AppDigest([1; 32]),
            alg: genuine_protocol::measure::ELF_EXEC_SEGMENTS_SHA256_V1,
            platform: "linux",
            signals: Default::default(),
        })
    }
}

fn fake_client(
    url: &str,
    tweak: impl FnOnce(&mut Config),
) -> (Client, Arc<TestClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(url, dir.path());
    tweak(&mut cfg);
    let clock = Arc::new(TestClock::default());
    let client = Client::builder(cfg)
        .clock(clock.clone())
        .probe(Box::new(FixedProbe))
        .build()
        .unwrap();
    (client, clock, dir)
}

#[test]
fn an_endless_expires_in_neither_panics_nor_hangs_the_waiters() {
    let svc = FakeService::start(|path, n| {
        if path.ends_with("/v1/challenge") {
            // Slow enough that the other callers join this flight and wait.
            std::thread::sleep(Duration::from_millis(300));
            fake_challenge()
        } else {
            token_answer(
                &json!({"iat": 1, "exp": i64::MAX, "jti": n}),
                "18446744073709551615",
            )
        }
    });
    let (client, clock, _dir) = fake_client(&svc.url, |_| {});
    // A monotonic clock past its origin, as a real one always is.
    clock.advance(Duration::from_secs(3600));
    let c = client.clone();
    let tokens = within_20s(move || {
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (c, b) = (c.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    c.token_blocking()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let first = tokens[0].clone().unwrap();
    assert!(
        tokens.iter().all(|t| t.as_ref() == Ok(&first)),
        "{tokens:?}"
    );
    assert_eq!(svc.count(), 2, "one attestation for all eight");
    // Cached for at most a day, whatever the service says.
    assert_eq!(first.lifetime(), Duration::from_secs(24 * 3600));
    clock.advance(Duration::from_secs(24 * 3600 - 31));
    assert_eq!(client.token_blocking().unwrap(), first);
    clock.advance(Duration::from_secs(2));
    assert_ne!(client.token_blocking().unwrap(), first);
    assert_eq!(svc.count(), 4);
}

#[test]
fn an_endless_retry_after_is_capped_at_backoff_max() {
    let svc = FakeService::start(|_, _| Answer {
        status: 503,
        headers: vec![("Retry-After".into(), "18446744073709551615".into())],
        body: "{}".into(),
    });
    let (client, clock, _dir) = fake_client(&svc.url, |c| {
        c.attempts = 2;
        c.backoff_max = Duration::from_secs(30);
    });
    let c = client.clone();
    let err = within_20s(move || c.token_blocking()).unwrap_err();
    assert_eq!(
        err,
        Error::ServiceUnavailable {
            status: 503,
            retry_after: Some(u64::MAX)
        }
    );
    assert_eq!(svc.count(), 2);
    assert_eq!(
        *clock.sleeps.lock().unwrap(),
        vec![Duration::from_secs(30)],
        "between the attempts: Retry-After, capped"
    );
    // The cool-down is capped too: within it no request, after it one.
    clock.advance(Duration::from_secs(29));
    assert_eq!(client.token_blocking().unwrap_err(), err);
    assert_eq!(svc.count(), 2);
    clock.advance(Duration::from_secs(2));
    assert!(client.token_blocking().is_err());
    assert_eq!(svc.count(), 4);
}

/// A service issuing distinct 300 s tokens, or 503 while `down` is set.
fn token_service(down: Arc<AtomicBool>) -> FakeService {
    FakeService::start(move |path, n| {
        if down.load(Ordering::SeqCst) {
            Answer::json(503, &json!({}))
        } else if path.ends_with("/v1/challenge") {
            fake_challenge()
        } else {
            // `iat`/`exp` by the service's clock, which the client never
            // compares with its own.
            token_answer(&json!({"iat": 1000, "exp": 1300, "jti": n}), "300")
        }
    })
}

#[test]
fn a_token_is_not_returned_after_the_device_slept_past_its_expiry() {
    let down = Arc::new(AtomicBool::new(false));
    let svc = token_service(down.clone());
    let (client, clock, _dir) = fake_client(&svc.url, |c| c.attempts = 1);
    let token = client.token_blocking().unwrap();
    assert_eq!(token.lifetime(), Duration::from_secs(300));
    assert_eq!(client.token_blocking().unwrap(), token);
    assert_eq!(svc.count(), 2);

    // The device sleeps 300 s; the monotonic clock did not count it (as
    // CLOCK_MONOTONIC does not), the wall clock did: a fresh token.
    clock.suspend(Duration::from_secs(300));
    let fresh = client.token_blocking().unwrap();
    assert_ne!(fresh, token);
    assert_eq!(svc.count(), 4);

    // During an outage an old token is handed out only while it has life
    // left by both clocks: after a sleep past its expiry, the error.
    down.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(280));
    assert_eq!(
        client.token_blocking().unwrap(),
        fresh,
        "stale but unexpired"
    );
    clock.suspend(Duration::from_secs(20));
    clock.advance(Duration::from_secs(60));
    assert!(matches!(
        client.token_blocking(),
        Err(Error::ServiceUnavailable { .. })
    ));
}

#[test]
fn a_device_clock_that_is_off_does_not_defeat_the_cache() {
    // The device's clock is a day ahead of the service's (whose `exp` is in
    // the device's past): the token is still cached for its lifetime.
    let svc = token_service(Arc::new(AtomicBool::new(false)));
    let (client, clock, _dir) = fake_client(&svc.url, |_| {});
    *clock.wall.lock().unwrap() = WALL_START + 86_400;
    let token = client.token_blocking().unwrap();
    clock.advance(Duration::from_secs(269));
    assert_eq!(client.token_blocking().unwrap(), token);
    assert_eq!(svc.count(), 2);
    // The wall clock set back by a day: the monotonic clock still expires it.
    *clock.wall.lock().unwrap() = WALL_START;
    clock.advance(Duration::from_secs(2));
    assert_ne!(client.token_blocking().unwrap(), token);
}

/// A probe that waits until told, then panics.
struct PanickingProbe(std::sync::Mutex<mpsc::Receiver<()>>);

impl Probe for PanickingProbe {
    fn observe(&self) -> Result<Observation, ProbeError> {
        let _ = self.0.lock().unwrap().recv_timeout(Duration::from_secs(10));
        panic!("a probe that breaks");
    }
}

#[test]
fn a_flight_that_panics_releases_every_waiter() {
    let svc = FakeService::start(|_, _| fake_challenge());
    let dir = tempfile::tempdir().unwrap();
    let (go, wait) = mpsc::channel();
    let client = Client::builder(config(&svc.url, dir.path()))
        .clock(Arc::new(TestClock::default()))
        .probe(Box::new(PanickingProbe(std::sync::Mutex::new(wait))))
        .build()
        .unwrap();
    let c = client.clone();
    let results = within_20s(move || {
        // One blocking flight (it panics on its caller's thread), three
        // blocking waiters and one async waiter.
        let flight = {
            let c = c.clone();
            std::thread::spawn(move || c.token_blocking())
        };
        std::thread::sleep(Duration::from_millis(200));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || c.token_blocking())
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let c2 = c.clone();
        let task = std::thread::spawn(move || rt.block_on(c2.token()));
        std::thread::sleep(Duration::from_millis(200));
        go.send(()).unwrap();
        assert!(flight.join().is_err(), "the flight's own caller panicked");
        let mut out: Vec<_> = waiters.into_iter().map(|h| h.join().unwrap()).collect();
        out.push(task.join().unwrap());
        out
    });
    for r in results {
        assert!(matches!(r, Err(Error::Internal(_))), "{r:?}");
    }
    assert_eq!(client.status(), Status::Internal);
}

#[test]
fn last_signals_are_those_of_the_evidence_sent() {
    let svc = token_service(Arc::new(AtomicBool::new(false)));
    let dir = tempfile::tempdir().unwrap();
    let transport = Recording::new();
    let client = Client::builder(config(&svc.url, dir.path()))
        .transport(transport.clone())
        .build()
        .unwrap();
    assert!(client.last_signals().is_none());
    client.token_blocking().unwrap();
    let bodies = transport.bodies.lock().unwrap().clone();
    let (url, body) = bodies.last().unwrap();
    assert!(url.ends_with("/v1/attest"));
    let req: serde_json::Value = serde_json::from_slice(body).unwrap();
    let jws = req["evidence"].as_str().unwrap();
    let payload = genuine_protocol::b64::decode(jws.split('.').nth(1).unwrap()).unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let last = serde_json::to_value(client.last_signals().unwrap()).unwrap();
    assert_eq!(sent["signals"], last);
    assert_eq!(last["os"], "linux");
}

//! One suite per shared-state trait (replay guard, rate limiter, device
//! counter), run against the in-process implementation and, when
//! `GENUINE_TEST_REDIS_URL` is set, against Redis. Every test uses its own
//! random key prefix, so tests never see each other's keys. The outage test
//! starts a private `redis-server` of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use genuine_server::devices::{DeviceCounter, MemoryDevices, Period, RedisDevices};
use genuine_server::ratelimit::{
    MemoryRateLimiter, RateDecision, RateLimit, RateLimiter, RedisRateLimiter,
};
use genuine_server::redis::connect;
use genuine_server::replay::{MemoryReplay, RedisReplay, ReplayGuard};
use genuine_server::store::SqliteStore;
use redis::aio::ConnectionManager;
use ring::rand::SecureRandom;

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A key prefix no other test uses.
fn prefix() -> String {
    format!("genuine-test:{}:", random_hex(8))
}

fn random_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The shared Redis, or `None` (and a note) without `GENUINE_TEST_REDIS_URL`.
async fn redis() -> Option<ConnectionManager> {
    match std::env::var("GENUINE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(connect(&url).await.expect("connect to Redis")),
        _ => {
            println!("skipped: GENUINE_TEST_REDIS_URL not set");
            None
        }
    }
}

// ---------------------------------------------------------------- replay

/// First use, second use, independent ids, expiry (waits 1.2 s of real time:
/// Redis forgets by `PX`), and ping.
async fn replay_suite(g: &dyn ReplayGuard) {
    g.ping().await.unwrap();
    let now = unix_now();
    let id = random_id();
    assert_eq!(g.first_use(id, now + 60, now).await, Ok(true), "first use");
    assert_eq!(
        g.first_use(id, now + 60, now).await,
        Ok(false),
        "second use"
    );
    assert_eq!(
        g.first_use(id, now + 60, now + 30).await,
        Ok(false),
        "later"
    );
    let other = random_id();
    assert_eq!(
        g.first_use(other, now + 60, now).await,
        Ok(true),
        "another id"
    );

    // A nonce already past its expiry is kept for the minimum (1 ms).
    let stale = random_id();
    assert_eq!(g.first_use(stale, now - 5, now).await, Ok(true));

    let short = random_id();
    assert_eq!(g.first_use(short, now + 1, now).await, Ok(true));
    assert_eq!(g.first_use(short, now + 1, now).await, Ok(false));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = unix_now();
    assert!(later > now);
    assert_eq!(
        g.first_use(short, now + 1, later).await,
        Ok(true),
        "forgotten once expired"
    );
    assert_eq!(
        g.first_use(id, now + 60, later).await,
        Ok(false),
        "still kept"
    );
}

#[tokio::test]
async fn replay_memory() {
    replay_suite(&MemoryReplay::new(1000, 60)).await;
}

#[tokio::test]
async fn replay_redis() {
    let Some(conn) = redis().await else { return };
    let g = RedisReplay::new(conn, prefix(), 60);
    // As on a Redis that has recorded every use for the last hour.
    g.start_epoch(unix_now() - 3600).await.unwrap();
    replay_suite(&g).await;
}

/// Many concurrent first uses of one id: exactly one wins.
async fn replay_race(g: Arc<dyn ReplayGuard>) {
    let now = unix_now();
    let id = random_id();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.first_use(id, now + 60, now).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn replay_race_memory() {
    replay_race(Arc::new(MemoryReplay::new(1000, 60))).await;
}

#[tokio::test]
async fn replay_race_redis() {
    let Some(conn) = redis().await else { return };
    let g = RedisReplay::new(conn, prefix(), 60);
    g.start_epoch(unix_now() - 3600).await.unwrap();
    replay_race(Arc::new(g)).await;
}

// ------------------------------------------------------------ rate limit

/// 2026-11-22T10:00:00Z in ms: a window boundary for windows of 60 s.
const T0_MS: i64 = 1_795_341_600_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn retry_after(d: RateDecision) -> u64 {
    match d {
        RateDecision::Limited { retry_after_secs } => retry_after_secs,
        RateDecision::Allow => panic!("expected Limited"),
    }
}

async fn ratelimit_suite(make: &dyn Fn(RateLimit) -> Box<dyn RateLimiter>) {
    let l = make(RateLimit {
        limit: 3,
        window_secs: 60,
    });
    let a = ip("192.0.2.1");
    for i in 0..3 {
        assert_eq!(
            l.check(a, T0_MS + i * 1000).await,
            Ok(RateDecision::Allow),
            "request {i}"
        );
    }
    assert_eq!(retry_after(l.check(a, T0_MS + 10_000).await.unwrap()), 50);
    assert_eq!(retry_after(l.check(a, T0_MS + 59_500).await.unwrap()), 1);
    // Another address has its own count.
    assert_eq!(
        l.check(ip("192.0.2.2"), T0_MS + 10_000).await,
        Ok(RateDecision::Allow)
    );
    // The IPv4-mapped form is the same client.
    assert!(matches!(
        l.check(ip("::ffff:192.0.2.1"), T0_MS + 10_000).await,
        Ok(RateDecision::Limited { .. })
    ));
    // A new window starts afresh.
    for i in 0..3 {
        assert_eq!(
            l.check(a, T0_MS + 60_000 + i).await,
            Ok(RateDecision::Allow),
            "next window, request {i}"
        );
    }
    let r = retry_after(l.check(a, T0_MS + 60_000 + 3).await.unwrap());
    assert!((59..=60).contains(&r), "retry after {r}");

    // IPv6: one /64 is one client.
    let v6 = make(RateLimit {
        limit: 2,
        window_secs: 10,
    });
    assert_eq!(
        v6.check(ip("2001:db8:5:6::1"), T0_MS).await,
        Ok(RateDecision::Allow)
    );
    assert_eq!(
        v6.check(ip("2001:db8:5:6:ffff:ffff:ffff:ffff"), T0_MS)
            .await,
        Ok(RateDecision::Allow)
    );
    assert_eq!(
        retry_after(
            v6.check(ip("2001:db8:5:6:1234::77"), T0_MS + 2500)
                .await
                .unwrap()
        ),
        8
    );
    assert_eq!(
        v6.check(ip("2001:db8:5:7::1"), T0_MS).await,
        Ok(RateDecision::Allow),
        "the next /64 is another client"
    );
}

#[tokio::test]
async fn ratelimit_memory() {
    ratelimit_suite(&|limit| Box::new(MemoryRateLimiter::new(limit, 10_000))).await;
}

#[tokio::test]
async fn ratelimit_redis() {
    let Some(conn) = redis().await else { return };
    let p = prefix();
    ratelimit_suite(&|limit| Box::new(RedisRateLimiter::new(conn.clone(), p.clone(), limit))).await;
}

#[tokio::test]
async fn ratelimit_redis_counts_across_nodes_and_expires() {
    let Some(conn) = redis().await else { return };
    let p = prefix();
    let limit = RateLimit {
        limit: 2,
        window_secs: 60,
    };
    // Two "nodes" sharing Redis apply one limit.
    let n1 = RedisRateLimiter::new(conn.clone(), p.clone(), limit);
    let n2 = RedisRateLimiter::new(conn.clone(), p.clone(), limit);
    let now_ms = unix_now() * 1000;
    let a = ip("198.51.100.9");
    assert_eq!(n1.check(a, now_ms).await, Ok(RateDecision::Allow));
    assert_eq!(n2.check(a, now_ms).await, Ok(RateDecision::Allow));
    assert!(matches!(
        n1.check(a, now_ms).await,
        Ok(RateDecision::Limited { .. })
    ));
    // The counter carries an expiry of at most the window plus 1 s.
    let window = now_ms.div_euclid(60_000);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{p}rl:{window}:198.51.100.9"))
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 61_000, "pttl {ttl}");
}

// --------------------------------------------------------- unique devices

/// 2026-11-22T10:00:00Z.
const T0: i64 = 1_795_341_600;

fn within(estimate: u64, truth: u64, pct: f64) -> bool {
    let e = estimate as f64;
    let t = truth as f64;
    (e - t).abs() <= t * pct / 100.0
}

async fn devices_suite(d: &dyn DeviceCounter) {
    let acct = format!("acct-{}", random_hex(4));
    let ids: Vec<String> = (0..1000).map(|i| format!("device-{i:04}")).collect();
    for id in &ids {
        d.observe(&acct, id, T0);
    }
    d.flush().await.unwrap();
    for period in Period::ALL {
        let n = d.unique(&acct, period, period.bucket(T0)).await.unwrap();
        assert!(within(n, 1000, 3.0), "{period:?}: {n}");
    }
    let before = d
        .unique(&acct, Period::Day, Period::Day.bucket(T0))
        .await
        .unwrap();

    // Repeats do not count (unique() includes unflushed observations).
    for id in &ids {
        d.observe(&acct, id, T0 + 60);
    }
    assert_eq!(
        d.unique(&acct, Period::Day, Period::Day.bucket(T0))
            .await
            .unwrap(),
        before
    );

    // The next hour is another hour bucket but the same day and month.
    for id in &ids[..10] {
        d.observe(&acct, &format!("{id}-new"), T0 + 3600);
    }
    d.flush().await.unwrap();
    assert_eq!(
        d.unique(&acct, Period::Hour, Period::Hour.bucket(T0 + 3600))
            .await
            .unwrap(),
        10
    );
    let day = d
        .unique(&acct, Period::Day, Period::Day.bucket(T0))
        .await
        .unwrap();
    assert!(within(day, 1010, 3.0), "day {day}");
    assert!(day >= before, "{day} < {before}");
    let hour = d
        .unique(&acct, Period::Hour, Period::Hour.bucket(T0))
        .await
        .unwrap();
    assert!(within(hour, 1000, 3.0), "hour {hour}");

    // Month buckets of known dates: 2026-11-22 is month 2026*12+10.
    assert_eq!(Period::Month.bucket(T0), 2026 * 12 + 10);
    let month = d
        .unique(&acct, Period::Month, 2026 * 12 + 10)
        .await
        .unwrap();
    assert!(within(month, 1010, 3.0), "month {month}");
    assert_eq!(
        d.unique(&acct, Period::Month, 2026 * 12 + 11)
            .await
            .unwrap(),
        0
    );
    // 2026-12-01T00:00:00Z and 2027-01-01T00:00:00Z.
    d.observe(&acct, "december", 1_796_083_200);
    d.observe(&acct, "january", 1_798_761_600);
    d.flush().await.unwrap();
    assert_eq!(
        d.unique(&acct, Period::Month, 2026 * 12 + 11)
            .await
            .unwrap(),
        1
    );
    assert_eq!(d.unique(&acct, Period::Month, 2027 * 12).await.unwrap(), 1);
    assert_eq!(
        d.unique(&acct, Period::Day, Period::Day.bucket(1_796_083_200))
            .await
            .unwrap(),
        1
    );

    // Accounts are isolated, also from names built to look like keys.
    let hour_bucket = Period::Hour.bucket(T0);
    for other in [
        format!("{acct}x"),
        format!("{acct}:h:{hour_bucket}"),
        format!("{}:{acct}", acct.len()),
        String::new(),
    ] {
        assert_eq!(
            d.unique(&other, Period::Hour, hour_bucket).await.unwrap(),
            0,
            "{other:?}"
        );
        d.observe(&other, "someone", T0);
    }
    d.flush().await.unwrap();
    let hour_after = d.unique(&acct, Period::Hour, hour_bucket).await.unwrap();
    assert_eq!(hour_after, hour, "others' devices did not reach {acct}");
    assert_eq!(d.dropped(), 0);
}

#[tokio::test]
async fn devices_memory() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    devices_suite(&MemoryDevices::new(store)).await;
}

#[tokio::test]
async fn devices_redis() {
    let Some(conn) = redis().await else { return };
    devices_suite(&RedisDevices::new(conn, prefix())).await;
}

#[tokio::test]
async fn devices_memory_persist_through_the_store() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let first = MemoryDevices::new(store.clone());
    for i in 0..500 {
        first.observe("acme", &format!("d{i}"), T0);
    }
    first.observe("small", "only", T0);
    first.flush().await.unwrap();
    let hour = first
        .unique("acme", Period::Hour, Period::Hour.bucket(T0))
        .await
        .unwrap();
    drop(first);

    let second = MemoryDevices::new(store.clone());
    assert_eq!(
        second
            .unique("acme", Period::Hour, Period::Hour.bucket(T0))
            .await
            .unwrap(),
        hour
    );
    assert_eq!(
        second
            .unique("small", Period::Month, Period::Month.bucket(T0))
            .await
            .unwrap(),
        1
    );
    // New devices add to the loaded sketch; old ones do not count again.
    for i in 250..750 {
        second.observe("acme", &format!("d{i}"), T0 + 10);
    }
    second.flush().await.unwrap();
    let n = second
        .unique("acme", Period::Day, Period::Day.bucket(T0))
        .await
        .unwrap();
    assert!(within(n, 750, 3.0), "{n}");

    // A sketch of a past bucket is answered from the store.
    let third = MemoryDevices::with_limits(store, 3, 10);
    third.observe("later", "x", T0 + 86_400 * 40);
    third.flush().await.unwrap();
    let n = third
        .unique("acme", Period::Day, Period::Day.bucket(T0))
        .await
        .unwrap();
    assert!(within(n, 750, 3.0), "{n}");
}

#[tokio::test]
async fn devices_memory_bounded() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    // At most 3 sketches in memory and 5 observations pending.
    let d = MemoryDevices::with_limits(store, 3, 5);
    for i in 0..8 {
        d.observe(&format!("acct{i}"), "dev", T0);
    }
    assert_eq!(d.dropped(), 3, "the three oldest were dropped");
    d.flush().await.unwrap();
    for i in 0..3 {
        assert_eq!(
            d.unique(&format!("acct{i}"), Period::Day, Period::Day.bucket(T0))
                .await
                .unwrap(),
            0
        );
    }
    for i in 3..8 {
        assert_eq!(
            d.unique(&format!("acct{i}"), Period::Day, Period::Day.bucket(T0))
                .await
                .unwrap(),
            1
        );
    }
}

#[tokio::test]
async fn devices_redis_keys_expire() {
    let Some(conn) = redis().await else { return };
    let p = prefix();
    let d = RedisDevices::new(conn.clone(), p.clone());
    d.observe("ttl", "dev", T0);
    d.flush().await.unwrap();
    let mut c = conn.clone();
    for (code, bucket, max) in [
        ("h", Period::Hour.bucket(T0), 3 * 86_400),
        ("d", Period::Day.bucket(T0), 400 * 86_400),
        ("m", Period::Month.bucket(T0), 1827 * 86_400),
    ] {
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{p}u:3:ttl:{code}:{bucket}"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl > max - 60 && ttl <= max, "{code}: ttl {ttl}");
    }
}

// ----------------------------------------------------------------- outage

/// A private `redis-server`, killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
}

impl PrivateRedis {
    const BIN: &'static str = "/usr/bin/redis-server";

    fn start(port: u16) -> Self {
        let child = std::process::Command::new(Self::BIN)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child }
    }

    /// Sends `signal` (`STOP`, `CONT`) to this server only, by its pid.
    fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_and_recovers_on_the_same_connection() {
    if !std::path::Path::new(PrivateRedis::BIN).exists() {
        println!("skipped: {} not installed", PrivateRedis::BIN);
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = PrivateRedis::start(port);
    let conn = connect(&format!("redis://127.0.0.1:{port}")).await.unwrap();
    let p = prefix();
    // Nonce lifetime 0: the ids below count as issued at their expiry, a
    // minute from now, after any epoch the restarts below set.
    let replay = RedisReplay::new(conn.clone(), p.clone(), 0);
    let limit = RedisRateLimiter::new(
        conn.clone(),
        p.clone(),
        RateLimit {
            limit: 100,
            window_secs: 60,
        },
    );
    let devices = RedisDevices::new(conn.clone(), p.clone());
    let now = unix_now();
    assert_eq!(replay.first_use(random_id(), now + 60, now).await, Ok(true));
    devices.observe("a", "before", now);
    devices.flush().await.unwrap();

    // A hung server: answers time out after about a second.
    server.signal("STOP");
    let t = Instant::now();
    assert!(replay.first_use(random_id(), now + 60, now).await.is_err());
    let took = t.elapsed();
    println!("hung server: error after {took:?}");
    assert!(took < Duration::from_secs(2), "hung server: {took:?}");
    server.signal("CONT");
    let t = Instant::now();
    while replay.first_use(random_id(), now + 60, now).await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no recovery after CONT"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A dead server: refused at once. Let the background reconnection
    // fail first, as in a real outage.
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..3 {
        let t = Instant::now();
        assert!(replay.first_use(random_id(), now + 60, now).await.is_err());
        assert!(replay.ping().await.is_err());
        assert!(limit.check(ip("192.0.2.1"), now * 1000).await.is_err());
        devices.observe("a", &format!("during-{round}"), now);
        assert!(devices.flush().await.is_err());
        let took = t.elapsed();
        println!("dead server, round {round}: 5 calls failed in {took:?}");
        assert!(took < Duration::from_secs(2), "round {round} took {took:?}");
    }

    let _server = PrivateRedis::start(port);
    let t = Instant::now();
    let mut failures = 0;
    loop {
        match replay.first_use(random_id(), now + 60, now).await {
            Ok(fresh) => {
                assert!(fresh);
                break;
            }
            Err(_) => {
                failures += 1;
                assert!(t.elapsed() < Duration::from_secs(5), "no recovery");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    println!(
        "recovered after {failures} failed call(s) in {:?}",
        t.elapsed()
    );
    replay.ping().await.unwrap();
    assert_eq!(
        limit.check(ip("192.0.2.1"), now * 1000).await,
        Ok(RateDecision::Allow)
    );
    // Observations kept through the failed flushes arrive now ("before" was
    // lost with the server's memory: it ran without persistence).
    devices.flush().await.unwrap();
    assert_eq!(
        devices
            .unique("a", Period::Hour, Period::Hour.bucket(now))
            .await
            .unwrap(),
        3
    );
    assert_eq!(devices.dropped(), 0);
}

/// Round trip of one `RedisReplay::first_use` on the shared Redis
/// (`cargo test --release --test shared_state -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "measurement"]
async fn measure_redis_replay_round_trip() {
    let Some(conn) = redis().await else { return };
    let g = RedisReplay::new(conn, prefix(), 60);
    g.start_epoch(unix_now() - 3600).await.unwrap();
    let now = unix_now();
    for _ in 0..1000 {
        g.first_use(random_id(), now + 5, now).await.unwrap();
    }
    let n = 20_000;
    let mut samples = Vec::with_capacity(n);
    let all = Instant::now();
    for _ in 0..n {
        let id = random_id();
        let t = Instant::now();
        g.first_use(id, now + 5, now).await.unwrap();
        samples.push(t.elapsed());
    }
    let total = all.elapsed();
    samples.sort();
    println!(
        "first_use sequential x{n}: mean {:?}, p50 {:?}, p99 {:?}",
        total / u32::try_from(n).unwrap(),
        samples[n / 2],
        samples[n * 99 / 100]
    );
}

/// Redis loses its data (here: the guard's keys are deleted, as a restart
/// without persistence would): a nonce used before the loss, or merely
/// issued before it, is refused; one issued after is accepted once.
#[tokio::test]
async fn replay_redis_refuses_nonces_from_before_a_data_loss() {
    let Some(conn) = redis().await else { return };
    let p = prefix();
    let g = RedisReplay::new(conn.clone(), p.clone(), 60);
    let t0 = unix_now() - 100;
    assert_eq!(g.start_epoch(t0).await.unwrap(), t0);
    assert_eq!(g.start_epoch(t0 + 50).await.unwrap(), t0, "kept");
    // Issued at t0 + 10 (expires t0 + 70), used at t0 + 20.
    let used = random_id();
    let unused = random_id();
    assert_eq!(g.first_use(used, t0 + 70, t0 + 20).await, Ok(true));
    // A nonce issued at the epoch itself is refused: it may predate it.
    assert_eq!(g.first_use(random_id(), t0 + 60, t0 + 20).await, Ok(false));

    // The loss.
    let mut c = conn.clone();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{p}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = ::redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut c)
        .await
        .unwrap();

    // First use after it, at t0 + 30: the epoch restarts there.
    assert_eq!(
        g.first_use(used, t0 + 70, t0 + 30).await,
        Ok(false),
        "replay after the loss"
    );
    assert_eq!(
        g.first_use(unused, t0 + 75, t0 + 30).await,
        Ok(false),
        "issued before"
    );
    let fresh = random_id();
    assert_eq!(
        g.first_use(fresh, t0 + 91, t0 + 32).await,
        Ok(true),
        "issued after"
    );
    assert_eq!(g.first_use(fresh, t0 + 91, t0 + 33).await, Ok(false));
}

//! Engine outages in cluster mode, on private PostgreSQL and Redis instances
//! this test starts itself (`initdb` + `pg_ctl` on a free port in a temp dir,
//! `redis-server` on a free port), so stopping them disturbs no other test.
//!
//! Under a steady load of attestations and registration writes, each engine
//! is stopped and started again: while it is down `/v1/attest` and `/readyz`
//! answer 503 and no valid token is issued; the node recovers by itself when
//! the engine returns; no acknowledged write is lost; and a nonce used before
//! Redis lost its data cannot be used again after.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Attempt, ServeProcess, TestDevice, client, digest};
use serde_json::{Value, json};

const APP: &str = "com.example.outage";
const API: &str = "api.outage.test";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The directory holding `initdb` and `pg_ctl`: on the PATH, or Debian's.
fn pg_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|d| d.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

fn redis_server() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("redis-server"))
            .find(|f| f.is_file())
    })
}

/// uid and gid of `postgres` when running as root (initdb refuses root).
fn postgres_ids() -> Option<(u32, u32)> {
    let out = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A PostgreSQL server of this test's own.
struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    port: u16,
    ids: Option<(u32, u32)>,
}

impl PrivatePostgres {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.ids {
            c.uid(uid).gid(gid);
        }
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c
    }

    fn init(bin: PathBuf, dir: &Path) -> Self {
        let ids = postgres_ids();
        let dir = dir.join("pg");
        std::fs::create_dir(&dir).unwrap();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            // The temp dir above must be traversable by postgres.
            let parent = dir.parent().unwrap();
            std::fs::set_permissions(parent, std::os::unix::fs::PermissionsExt::from_mode(0o711))
                .unwrap();
        }
        let pg = Self {
            bin,
            data: dir.join("data"),
            dir,
            port: free_port(),
            ids,
        };
        let out = pg
            .command("initdb")
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(&pg.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.display()
        );
        let out = self
            .command("pg_ctl")
            .args(["-w", "-t", "30", "-o", &opts, "-l"])
            .arg(self.dir.join("server.log"))
            .arg("-D")
            .arg(&self.data)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

/// A Redis server of this test's own (no persistence, like the machine's).
struct PrivateRedis {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn new(bin: PathBuf) -> Self {
        Self {
            bin,
            port: free_port(),
            child: None,
        }
    }

    fn start(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Valid,
    Decoy(Vec<String>),
    Unavailable,
    Other(u16, String),
}

struct Probe {
    http: reqwest::Client,
    url: String,
    device: TestDevice,
    attempt: Attempt,
}

impl Probe {
    fn new(url: String) -> Self {
        Self {
            http: client(),
            url,
            device: TestDevice::new(),
            attempt: Attempt::new(APP, API, digest(5)),
        }
    }

    /// Challenge and attest; returns the evidence (when a nonce was had) too.
    async fn attest(&self) -> (Outcome, Option<String>) {
        let (s, v) = self
            .call(
                "/v1/challenge",
                &json!({"account": "default", "app_id": APP}),
            )
            .await;
        if s != 200 {
            return (classify(s, &v), None);
        }
        let evidence = self
            .device
            .evidence(v["nonce"].as_str().unwrap(), &self.attempt);
        (self.post(&evidence).await, Some(evidence))
    }

    async fn post(&self, evidence: &str) -> Outcome {
        let (s, v) = self
            .call("/v1/attest", &json!({"evidence": evidence}))
            .await;
        classify(s, &v)
    }

    async fn call(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match resp {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!(e.to_string())),
        }
    }

    async fn ready(&self) -> u16 {
        match self
            .http
            .get(format!("{}/readyz", self.url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

fn classify(status: u16, v: &Value) -> Outcome {
    match status {
        200 => match v.get("rejection") {
            None | Some(Value::Null) => Outcome::Valid,
            Some(r) => Outcome::Decoy(
                r["reasons"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        },
        503 => Outcome::Unavailable,
        s => Outcome::Other(s, v.to_string()),
    }
}

/// What the load saw: each probe's start and end time and outcome.
#[derive(Default)]
struct Log {
    probes: Mutex<Vec<(Instant, Instant, Outcome)>>,
    acked: Mutex<Vec<String>>,
}

async fn wait_until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f().await {
            let took = start.elapsed();
            eprintln!("{what} after {took:?}");
            return took;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_stop_and_return_under_load() {
    let (Some(pg_bin), Some(redis_bin)) = (pg_bin_dir(), redis_server()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "initdb/pg_ctl and redis-server are required under CI"
        );
        eprintln!(
            "SKIPPED engines_stop_and_return_under_load: initdb/pg_ctl or redis-server not found"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pg = PrivatePostgres::init(pg_bin, dir.path());
    pg.start();
    let mut redis = PrivateRedis::new(redis_bin);
    redis.start();

    let env = [
        ("GENUINE_DATABASE_URL", pg.url()),
        ("GENUINE_REDIS_URL", redis.url()),
        ("GENUINE_PUBLIC_URL", "http://outage.test".to_owned()),
    ];
    let node = ServeProcess::start_with_env(&dir.path().join("node"), "serve.log", "info", &env);
    let token = std::fs::read_to_string(dir.path().join("node/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let http = client();
    let admin = |method: &'static str, rest: &'static str, body: Value| {
        let (http, url, token) = (http.clone(), node.url(), token.clone());
        async move {
            common::call(
                &http,
                &format!("{url}/admin/v1/accounts/default/{rest}"),
                method,
                Some(&token),
                Some(&body),
            )
            .await
        }
    };
    let (s, v) = admin(
        "POST",
        "apis",
        json!({"domain": API, "alg": "ES256", "ttl": 300}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = admin("PUT", "policy/reveal_reasons", json!({"value": true})).await;
    assert_eq!(s, 200, "{v}");
    let reg = json!({"app_id": APP, "platform": "linux", "digest": data_encoding::HEXLOWER.encode(&digest(5).0)});
    let (s, v) = admin("POST", "registrations", reg).await;
    assert_eq!(s, 201, "{v}");

    let probe = Probe::new(node.url());
    common::next_second().await;
    assert_eq!(probe.attest().await.0, Outcome::Valid);

    // The load: attestations and registration writes, all the way through.
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Log::default());
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (stop, log, url) = (stop.clone(), log.clone(), node.url());
        tasks.push(tokio::spawn(async move {
            let p = Probe::new(url);
            while !stop.load(Ordering::SeqCst) {
                let at = Instant::now();
                let (o, _) = p.attest().await;
                log.probes.lock().unwrap().push((at, Instant::now(), o));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    {
        let (stop, log, url, token, http) = (
            stop.clone(),
            log.clone(),
            node.url(),
            token.clone(),
            http.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let body = json!({"app_id": format!("w.{i}"), "platform": "linux", "digest": data_encoding::HEXLOWER.encode(&[7u8; 32])});
                let (s, v) = common::call(&http, &format!("{url}/admin/v1/accounts/default/registrations"), "POST", Some(&token), Some(&body)).await;
                if s == 201 {
                    log.acked.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    // PostgreSQL stops.
    pg.stop();
    let pg_stopped = Instant::now();
    wait_until(
        "PostgreSQL down: /readyz answers 503",
        Duration::from_secs(5),
        async || probe.ready().await == 503,
    )
    .await;
    wait_until(
        "PostgreSQL down: /v1/attest answers 503",
        Duration::from_secs(5),
        async || probe.attest().await.0 == Outcome::Unavailable,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(probe.ready().await, 503);
    let pg_restart = Instant::now();
    pg.start();
    wait_until(
        "PostgreSQL back: /readyz answers 200",
        Duration::from_secs(20),
        async || probe.ready().await == 200,
    )
    .await;
    wait_until(
        "PostgreSQL back: a valid token again",
        Duration::from_secs(20),
        async || probe.attest().await.0 == Outcome::Valid,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A nonce used before Redis loses its data.
    let (o, used) = probe.attest().await;
    assert_eq!(o, Outcome::Valid);
    let used = used.unwrap();

    // Redis stops (and comes back empty: it keeps nothing on disk).
    redis.stop();
    let redis_stopped = Instant::now();
    wait_until(
        "Redis down: /readyz answers 503",
        Duration::from_secs(5),
        async || probe.ready().await == 503,
    )
    .await;
    wait_until(
        "Redis down: /v1/attest answers 503",
        Duration::from_secs(5),
        async || probe.attest().await.0 == Outcome::Unavailable,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let redis_restart = Instant::now();
    redis.start();
    wait_until(
        "Redis back: /readyz answers 200",
        Duration::from_secs(20),
        async || probe.ready().await == 200,
    )
    .await;
    wait_until(
        "Redis back: a valid token again",
        Duration::from_secs(20),
        async || probe.attest().await.0 == Outcome::Valid,
    )
    .await;
    // The nonce used before the loss is still refused.
    let again = probe.post(&used).await;
    assert!(
        matches!(&again, Outcome::Decoy(r) if r.contains(&"nonce-replayed".to_owned())),
        "a nonce used before Redis lost its data was accepted again: {again:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    // No valid token while an engine was down: every probe that started
    // more than 100 ms after a stop (the node may answer one in flight
    // before it notices) and was answered before the restart began got 503.
    let probes = log.probes.lock().unwrap().clone();
    let grace = Duration::from_millis(100);
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for (at, end, o) in &probes {
        let down = (*at > pg_stopped + grace && *end < pg_restart)
            || (*at > redis_stopped + grace && *end < redis_restart);
        let key = match o {
            Outcome::Valid => "valid",
            Outcome::Decoy(_) => "decoy",
            Outcome::Unavailable => "503",
            Outcome::Other(..) => "other",
        };
        *counts.entry(key).or_default() += 1;
        if down && !matches!(o, Outcome::Unavailable) {
            let log = std::fs::read_to_string(&node.stderr_log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("attestation")).collect();
            eprintln!(
                "node log (without attestation lines):\n{}",
                lines.join("\n")
            );
        }
        if down {
            assert!(
                matches!(o, Outcome::Unavailable),
                "an engine was down and the node answered {o:?} to a probe started {:?} after the PostgreSQL stop / {:?} after the Redis stop (restarts at {:?} / {:?})",
                at.saturating_duration_since(pg_stopped),
                at.saturating_duration_since(redis_stopped),
                pg_restart - pg_stopped,
                redis_restart - redis_stopped,
            );
        } else {
            assert!(!matches!(o, Outcome::Other(..)), "unexpected answer: {o:?}");
        }
        // The only decoys: nonces issued before Redis lost its data (or in
        // the second its new epoch began), refused as possibly used.
        if let Outcome::Decoy(reasons) = o {
            assert_eq!(reasons, &["nonce-replayed"], "unexpected decoy");
            assert!(*end > redis_restart, "a decoy before Redis lost its data");
        }
    }
    eprintln!("load outcomes: {counts:?}");
    assert!(
        counts.get("valid").copied().unwrap_or(0) > 20,
        "the load ran"
    );

    // Every acknowledged registration is there.
    let acked = log.acked.lock().unwrap().clone();
    let (s, v) = common::call(
        &http,
        &format!("{}/admin/v1/accounts/default/registrations", node.url()),
        "GET",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let present: std::collections::HashSet<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !present.contains(id.as_str()))
        .collect();
    eprintln!(
        "{} registrations acknowledged during the run; missing: {}",
        acked.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    drop(node);
}

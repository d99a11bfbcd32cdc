//! `genuine-loadbench`: full attestations per second over HTTP on this machine.
//!
//! In one process and one run it starts the real embedded service
//! ([`genuine_server::start_embedded`], SQLite in a temporary data dir, the
//! system clock) and a bare axum handler doing the same cryptography
//! (`bare.rs`), each on a server runtime whose threads are named `lb-server`,
//! and drives both with the same client loop on a second runtime whose
//! threads are named `lb-client`:
//!
//! 1. `POST /v1/challenge`;
//! 2. build evidence with a device key from a pre-generated pool (ES256
//!    signing: the client's cost, measured and reported apart);
//! 3. `POST /v1/attest`, expect 200; every Nth token is verified with
//!    `genuine-verify` against the target's JWKS (a decoy fails there).
//!
//! The closed-loop phase runs `--concurrency` tasks for `--duration` seconds
//! per target (after `--warmup`) and reports the peak rate, p50 and p99. Then,
//! unless `--open-loop-fraction 0`, an open-loop phase offers a fixed rate of
//! that fraction of each target's peak and reports the latency there
//! (measured from the scheduled start, so a stall is not hidden).
//! `--rate R` runs only the open-loop phase at R attestations per second.
//! Tokio's timer has a 1 ms resolution, so an open-loop arrival may leave up
//! to about 1 ms after it was due; that delay is counted in its latency.
//!
//! CPU time is read per thread from `/proc/self/task/*/schedstat`, so the
//! report shows how the two shared cores were split between server and load
//! generator.

mod bare;
mod cpu;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use genuine_protocol::b64;
use genuine_protocol::device::DeviceKey;
use genuine_protocol::evidence::{EvidenceClaims, MeasurementClaim, Signals, sign_evidence};
use genuine_protocol::measure::{
    AppDigest, ELF_EXEC_SEGMENTS_SHA256_V1, elf_exec_segments_digest, proof,
};
use genuine_protocol::wire::{AttestRequest, AttestResponse, ChallengeRequest, ChallengeResponse};
use genuine_server::config::Config;
use genuine_server::service::SystemClock;
use genuine_verify::{Expectations, Jwks, Verifier};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

const ACCOUNT: &str = "default";
const APP_ID: &str = "com.example.loadbench";
const API: &str = "api.loadbench.example";

/// Full attestations per second over HTTP: the embedded service next to a bare
/// axum handler doing the same cryptography, in the same run.
#[derive(Debug, Parser)]
#[command(name = "genuine-loadbench", version)]
struct Args {
    /// Concurrent client tasks in the closed-loop phase.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds measured per target and phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before each measurement, not counted.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Closed-loop rounds; the targets alternate (genuine, bare, genuine, ...)
    /// and the medians are compared.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Open loop only, at this fixed rate (attestations per second) for each target.
    #[arg(long)]
    rate: Option<f64>,
    /// After the closed loop, an open-loop phase at this fraction of each
    /// target's peak; 0 skips it.
    #[arg(long, default_value_t = 0.8)]
    open_loop_fraction: f64,
    /// Client tasks (connections) of the open loop; an arrival that finds
    /// them all busy waits, and its latency counts from when it was due.
    #[arg(long, default_value_t = 64)]
    open_loop_tasks: usize,
    /// Verify every Nth token against the JWKS (0: never).
    #[arg(long, default_value_t = 20)]
    verify_every: u64,
    /// Device keys generated before the run.
    #[arg(long, default_value_t = 256)]
    devices: usize,
    /// Worker threads of the server runtime (default: the number of CPUs).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Worker threads of the load generator runtime (default: the number of CPUs).
    #[arg(long)]
    client_threads: Option<usize>,
    /// Which targets to run.
    #[arg(long, value_enum, default_value_t = Only::Both)]
    only: Only,
    /// Install a `tracing` subscriber at `info` writing to a sink, as
    /// `genuine serve` logs every attestation (formatting cost, no I/O).
    #[arg(long)]
    log: bool,
}

/// Which targets to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    /// The service and the bare handler.
    Both,
    /// The service only.
    Genuine,
    /// The bare handler only.
    Bare,
}

/// One server under load.
struct Target {
    name: &'static str,
    challenge_url: String,
    attest_url: String,
    verifier: Verifier,
}

/// What every client task shares.
struct Load {
    http: reqwest::Client,
    devices: Vec<DeviceKey>,
    digest: AppDigest,
    verify_every: u64,
    counter: AtomicU64,
}

/// One finished attestation.
struct Sample {
    start: Instant,
    done: Instant,
    attest: Duration,
    client_crypto: Duration,
}

/// What a phase collected.
#[derive(Default)]
struct Record {
    ok: Vec<Sample>,
    errors: Vec<(Instant, Instant, String)>,
}

impl Record {
    fn push(&mut self, start: Instant, done: Instant, r: Result<(Duration, Duration), String>) {
        match r {
            Ok((attest, client_crypto)) => self.ok.push(Sample {
                start,
                done,
                attest,
                client_crypto,
            }),
            Err(e) => self.errors.push((start, done, e)),
        }
    }

    fn merge(&mut self, other: Self) {
        self.ok.extend(other.ok);
        self.errors.extend(other.errors);
    }
}

/// The figures of one phase.
struct Phase {
    target: &'static str,
    mode: String,
    window: Duration,
    ok: usize,
    errors: usize,
    error_kinds: BTreeMap<String, usize>,
    unserved: u64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    attest_p50_ms: f64,
    attest_p99_ms: f64,
    client_crypto_us: f64,
    cpu: Option<cpu::CpuTimes>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Evidence for `nonce`, as the SDK builds it.
fn evidence(
    device: &DeviceKey,
    rng: &SystemRandom,
    nonce: &str,
    digest: &AppDigest,
) -> Result<String, String> {
    let nonce_bytes = b64::decode(nonce).map_err(|_| "nonce is not base64url".to_owned())?;
    let claims = EvidenceClaims {
        nonce: nonce.to_owned(),
        account: ACCOUNT.into(),
        app_id: APP_ID.into(),
        app_version: "1.0.0".into(),
        platform: "linux".into(),
        api: API.into(),
        iat: unix_now(),
        measurement: MeasurementClaim {
            alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
            proof: b64::encode(&proof(&nonce_bytes, digest)),
        },
        signals: Signals {
            sdk_version: Some("0.1.0".into()),
            os: Some("linux".into()),
            ..Signals::default()
        },
        binding: None,
        platform_evidence: None,
    };
    sign_evidence(device, rng, &claims).map_err(|e| format!("evidence: {e}"))
}

async fn refused(what: &str, resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(120).collect();
    format!("{what}: HTTP {status} {body}")
}

/// One attestation: challenge, evidence, attest, maybe verify. Returns the
/// attest request's latency and the client's crypto time.
async fn attest_once(
    load: &Load,
    t: &Target,
    rng: &SystemRandom,
) -> Result<(Duration, Duration), String> {
    let n = load.counter.fetch_add(1, Ordering::Relaxed);
    let device = load
        .devices
        .get(usize::try_from(n).unwrap_or(0) % load.devices.len().max(1))
        .ok_or("no device keys")?;
    let resp = load
        .http
        .post(&t.challenge_url)
        .json(&ChallengeRequest {
            account: ACCOUNT.into(),
            app_id: APP_ID.into(),
        })
        .send()
        .await
        .map_err(|e| format!("challenge: {e}"))?;
    if !resp.status().is_success() {
        return Err(refused("challenge", resp).await);
    }
    let ch: ChallengeResponse = resp
        .json()
        .await
        .map_err(|e| format!("challenge body: {e}"))?;

    let crypto = Instant::now();
    let ev = evidence(device, rng, &ch.nonce, &load.digest)?;
    let mut client_crypto = crypto.elapsed();

    let sent = Instant::now();
    let resp = load
        .http
        .post(&t.attest_url)
        .json(&AttestRequest { evidence: ev })
        .send()
        .await
        .map_err(|e| format!("attest: {e}"))?;
    if !resp.status().is_success() {
        return Err(refused("attest", resp).await);
    }
    let body: AttestResponse = resp.json().await.map_err(|e| format!("attest body: {e}"))?;
    let attest = sent.elapsed();

    if load.verify_every > 0 && n.is_multiple_of(load.verify_every) {
        let v = Instant::now();
        t.verifier
            .verify(&body.token, unix_now())
            .map_err(|e| format!("token does not verify (decoy?): {e}"))?;
        client_crypto += v.elapsed();
    }
    Ok((attest, client_crypto))
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within a Vec's length"
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted
        .get(rank - 1)
        .map_or(f64::NAN, |us| *us as f64 / 1000.0)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Which samples a phase counts.
#[derive(Clone, Copy)]
enum Window {
    /// Closed loop: completions within the window.
    Completed,
    /// Open loop: arrivals scheduled within the window (latency from the schedule).
    Scheduled,
}

#[allow(clippy::too_many_arguments, reason = "one summary, called twice")]
fn summarize(
    target: &'static str,
    mode: String,
    rec: &Record,
    from: Instant,
    to: Instant,
    which: Window,
    unserved: u64,
    cpu: Option<cpu::CpuTimes>,
) -> Phase {
    let inside = |start: Instant, done: Instant| match which {
        Window::Completed => done >= from && done <= to,
        Window::Scheduled => start >= from && start < to,
    };
    let ok: Vec<&Sample> = rec.ok.iter().filter(|s| inside(s.start, s.done)).collect();
    let mut error_kinds = BTreeMap::new();
    let mut errors = 0;
    for (start, done, e) in &rec.errors {
        if inside(*start, *done) {
            errors += 1;
            *error_kinds.entry(e.clone()).or_default() += 1;
        }
    }
    let window = to - from;
    let completed = rec
        .ok
        .iter()
        .filter(|s| s.done >= from && s.done <= to)
        .count();
    let mut total: Vec<u64> = ok.iter().map(|s| micros(s.done - s.start)).collect();
    let mut attest: Vec<u64> = ok.iter().map(|s| micros(s.attest)).collect();
    total.sort_unstable();
    attest.sort_unstable();
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let (rate, client_crypto_us) = (
        completed as f64 / window.as_secs_f64(),
        ok.iter()
            .map(|s| s.client_crypto.as_secs_f64())
            .sum::<f64>()
            * 1e6
            / ok.len().max(1) as f64,
    );
    Phase {
        target,
        mode,
        window,
        ok: ok.len(),
        errors,
        error_kinds,
        unserved,
        rate,
        p50_ms: percentile_ms(&total, 0.50),
        p99_ms: percentile_ms(&total, 0.99),
        attest_p50_ms: percentile_ms(&attest, 0.50),
        attest_p99_ms: percentile_ms(&attest, 0.99),
        client_crypto_us,
        cpu,
    }
}

/// Reads CPU times at `from` and `to`.
async fn cpu_window(from: Instant, to: Instant) -> Option<cpu::CpuTimes> {
    tokio::time::sleep_until(from.into()).await;
    let a = cpu::read();
    tokio::time::sleep_until(to.into()).await;
    let b = cpu::read();
    Some(b?.since(&a?))
}

async fn closed_loop(
    load: &Arc<Load>,
    t: &Arc<Target>,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let from = start + warmup;
    let to = from + duration;
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (load, t) = (load.clone(), t.clone());
        handles.push(tokio::spawn(async move {
            let rng = SystemRandom::new();
            let mut rec = Record::default();
            while Instant::now() < to {
                let begun = Instant::now();
                let r = attest_once(&load, &t, &rng).await;
                rec.push(begun, Instant::now(), r);
            }
            rec
        }));
    }
    let cpu = cpu_window(from, to).await;
    let mut rec = Record::default();
    for h in handles {
        rec.merge(h.await?);
    }
    Ok(summarize(
        t.name,
        format!("closed, {tasks} tasks"),
        &rec,
        from,
        to,
        Window::Completed,
        0,
        cpu,
    ))
}

/// Open loop at a fixed rate: arrival `k` is due at `start + k / rate`. A
/// fixed pool of tasks (each with its own kept-alive connection) takes the
/// arrivals in order; when every task is busy an arrival waits, and since its
/// latency counts from when it was due, the wait is in the figures.
#[allow(clippy::too_many_arguments, reason = "the phase's parameters")]
async fn open_loop(
    load: &Arc<Load>,
    t: &Arc<Target>,
    rate: f64,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Phase> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("the open-loop rate must be a positive number, not {rate}");
    }
    let start = Instant::now() + Duration::from_millis(10);
    let from = start + warmup;
    let to = from + duration;
    // An overloaded target gets this long after the window to drain its backlog.
    let hard_stop = to + Duration::from_secs(10);
    let next = Arc::new(AtomicU64::new(0));
    let unserved = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (load, t, next, unserved) = (load.clone(), t.clone(), next.clone(), unserved.clone());
        handles.push(tokio::spawn(async move {
            let rng = SystemRandom::new();
            let mut rec = Record::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                #[allow(clippy::cast_precision_loss, reason = "arrival numbers far below 2^52")]
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                if due >= to {
                    break;
                }
                if Instant::now() >= hard_stop {
                    if due >= from {
                        unserved.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let r = attest_once(&load, &t, &rng).await;
                rec.push(due, Instant::now(), r);
            }
            rec
        }));
    }
    let cpu = cpu_window(from, to).await;
    let mut rec = Record::default();
    for h in handles {
        rec.merge(h.await?);
    }
    Ok(summarize(
        t.name,
        format!("open, {rate:.0}/s offered"),
        &rec,
        from,
        to,
        Window::Scheduled,
        unserved.load(Ordering::Relaxed),
        cpu,
    ))
}

fn print_header() {
    println!(
        "{:<8} {:<21} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>5}",
        "target",
        "mode",
        "att/s",
        "p50 ms",
        "p99 ms",
        "att p50",
        "att p99",
        "ok",
        "errors",
        "srv µs",
        "cli µs",
        "cryp",
        "us %",
        "oth %",
        "stl %"
    );
}

fn print_phase(p: &Phase, ncpu: usize) {
    let per = |d: Duration| {
        if p.ok == 0 {
            return "-".to_owned();
        }
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let v = d.as_secs_f64() * 1e6 / p.ok as f64;
        format!("{v:.0}")
    };
    #[allow(clippy::cast_precision_loss, reason = "a CPU count")]
    let share = |d: Duration| {
        format!(
            "{:.0}",
            d.as_secs_f64() / p.window.as_secs_f64() / ncpu as f64 * 100.0
        )
    };
    let na = || "n/a".to_owned();
    let (srv, cli, ours, foreign, steal) = match &p.cpu {
        Some(c) => (
            per(c.server),
            per(c.client),
            share(c.process()),
            share(c.foreign()),
            share(c.machine_steal),
        ),
        None => (na(), na(), na(), na(), na()),
    };
    println!(
        "{:<8} {:<21} {:>7.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7} {:>6} {:>6} {:>6} {:>5.0} {:>5} {:>5} {:>5}",
        p.target,
        p.mode,
        p.rate,
        p.p50_ms,
        p.p99_ms,
        p.attest_p50_ms,
        p.attest_p99_ms,
        p.ok,
        p.errors,
        srv,
        cli,
        p.client_crypto_us,
        ours,
        foreign,
        steal
    );
    for (e, n) in &p.error_kinds {
        println!("         error x{n}: {e}");
    }
    if p.unserved > 0 {
        println!(
            "         {} arrivals never sent: the target was still behind 10 s after the window",
            p.unserved
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(f64::NAN),
        n => {
            (v.get(n / 2 - 1).copied().unwrap_or(f64::NAN)
                + v.get(n / 2).copied().unwrap_or(f64::NAN))
                / 2.0
        }
    }
}

/// An admin call on the default account; the JSON answer.
async fn admin(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    rest: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = http
        .request(method, format!("{base}/admin/v1/accounts/{ACCOUNT}/{rest}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("admin {rest}: HTTP {status} {v}");
    }
    Ok(v)
}

async fn jwks(http: &reqwest::Client, url: &str) -> anyhow::Result<Jwks> {
    let resp = http.get(url).send().await?.error_for_status()?;
    Ok(resp.json().await?)
}

/// Addresses and secrets of the two servers.
struct Servers {
    genuine: String,
    genuine_admin: String,
    bare: String,
    bare_issuer: String,
}

#[allow(clippy::too_many_lines, reason = "the run, in order")]
async fn run(args: &Args, servers: Servers, digest: AppDigest, ncpu: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;

    // The service: an ES256 API and the app's digest, through the admin API.
    let g = &servers.genuine;
    let token = &servers.genuine_admin;
    admin(
        &http,
        g,
        token,
        reqwest::Method::POST,
        "apis",
        Some(json!({"domain": API, "alg": "ES256", "ttl": 300})),
    )
    .await?;
    admin(
        &http,
        g,
        token,
        reqwest::Method::POST,
        "registrations",
        Some(json!({"app_id": APP_ID, "digest": digest.to_hex(), "version": "1.0.0"})),
    )
    .await?;
    let genuine_jwks = jwks(&http, &format!("{g}/v1/accounts/{ACCOUNT}/jwks.json")).await?;
    let bare_jwks = jwks(&http, &format!("{}/jwks.json", servers.bare)).await?;
    let expect = |issuer: String| Expectations {
        issuer,
        audiences: vec![API.to_owned()],
        leeway_secs: 5,
    };
    let genuine = Arc::new(Target {
        name: "genuine",
        challenge_url: format!("{g}/v1/challenge"),
        attest_url: format!("{g}/v1/attest"),
        verifier: Verifier::from_jwks(&genuine_jwks, expect(format!("{g}/v1/accounts/{ACCOUNT}")))?,
    });
    let bare = Arc::new(Target {
        name: "bare",
        challenge_url: format!("{}/v1/challenge", servers.bare),
        attest_url: format!("{}/v1/attest", servers.bare),
        verifier: Verifier::from_jwks(&bare_jwks, expect(servers.bare_issuer.clone()))?,
    });
    let targets: Vec<Arc<Target>> = match args.only {
        Only::Both => vec![genuine.clone(), bare.clone()],
        Only::Genuine => vec![genuine.clone()],
        Only::Bare => vec![bare.clone()],
    };

    let rng = SystemRandom::new();
    let devices = (0..args.devices.max(1))
        .map(|_| DeviceKey::generate(&rng).map(|(k, _)| k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("device key: {e}"))?;
    // Sanity: one strictly verified attestation per target before timing.
    for t in &targets {
        let (device, _) =
            DeviceKey::generate(&rng).map_err(|e| anyhow::anyhow!("device key: {e}"))?;
        let strict = Load {
            http: http.clone(),
            devices: vec![device],
            digest,
            verify_every: 1,
            counter: AtomicU64::new(0),
        };
        attest_once(&strict, t, &rng)
            .await
            .map_err(|e| anyhow::anyhow!("{}: first attestation failed: {e}", t.name))?;
    }
    let load = Arc::new(Load {
        http,
        devices,
        digest,
        verify_every: args.verify_every,
        counter: AtomicU64::new(0),
    });

    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    println!(
        "genuine-loadbench: {ncpu} CPUs; server runtime {} threads, client runtime {} threads; \
         {} device keys; every {}th token verified; warm-up {:.1} s, window {:.1} s",
        args.server_threads.unwrap_or(ncpu),
        args.client_threads.unwrap_or(ncpu),
        args.devices.max(1),
        args.verify_every,
        warmup.as_secs_f64(),
        duration.as_secs_f64()
    );
    println!(
        "p50/p99 ms: challenge + client evidence signing + attest (open loop: from when it was due); \
         att p50/p99: the attest request alone; srv/cli µs: CPU per attestation of the server and \
         load-generator threads; cryp: client signing + token verification, µs per attestation; \
         us/oth/stl %: CPU share of this process, of other processes, and stolen by the hypervisor \
         (% of all CPUs)"
    );
    print_header();

    let mut peaks: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut all = Vec::new();
    if args.rate.is_none() {
        for _ in 0..args.rounds.max(1) {
            for t in &targets {
                let p = closed_loop(&load, t, args.concurrency.max(1), warmup, duration).await?;
                print_phase(&p, ncpu);
                peaks.entry(t.name).or_default().push(p.rate);
                all.push(p);
            }
        }
    }
    let open_rate = |t: &Target| match args.rate {
        Some(r) => Some(r),
        None if args.open_loop_fraction > 0.0 => peaks
            .get(t.name)
            .map(|v| median(v.clone()) * args.open_loop_fraction),
        None => None,
    };
    for t in &targets {
        if let Some(rate) = open_rate(t) {
            let p = open_loop(
                &load,
                t,
                rate,
                args.open_loop_tasks.max(1),
                warmup,
                duration,
            )
            .await?;
            print_phase(&p, ncpu);
            all.push(p);
        }
    }

    println!();
    let g_peak = peaks.get("genuine").map(|v| median(v.clone()));
    let b_peak = peaks.get("bare").map(|v| median(v.clone()));
    if let (Some(g_rate), Some(b_rate)) = (g_peak, b_peak) {
        println!(
            "closed loop, median of {} round(s): genuine {g_rate:.0}/s, bare {b_rate:.0}/s, \
             ratio genuine/bare = {:.3} (target >= 0.7)",
            args.rounds.max(1),
            g_rate / b_rate
        );
    }
    for p in all.iter().filter(|p| p.mode.starts_with("open")) {
        println!(
            "open loop {}: {} -> p99 {:.2} ms (target <= 20 ms), achieved {:.0}/s, errors {}, never sent {}",
            p.target, p.mode, p.p99_ms, p.rate, p.errors, p.unserved
        );
    }
    if args.only != Only::Bare {
        let report = admin(
            &load.http,
            g,
            token,
            reqwest::Method::GET,
            "metrics?since=3600",
            None,
        )
        .await?;
        println!(
            "service's own count of outcomes during the run: {}",
            report.get("outcomes").unwrap_or(&Value::Null)
        );
    }
    let errors: usize = all.iter().map(|p| p.errors).sum();
    if errors > 0 {
        println!("{errors} errors in measured windows (see above)");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // TLS is not used (loopback HTTP), but reqwest's rustls needs a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.log {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::sink)
            .init();
    }
    let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.unwrap_or(ncpu).max(1))
        .thread_name(cpu::SERVER_THREAD)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.unwrap_or(ncpu).max(1))
        .thread_name(cpu::CLIENT_THREAD)
        .enable_all()
        .build()?;

    // The registered app is this very executable, measured as `genuine measure` does.
    let exe = std::env::current_exe()?;
    let digest = elf_exec_segments_digest(&std::fs::read(&exe)?)
        .map_err(|e| anyhow::anyhow!("measuring {}: {e}", exe.display()))?;

    let dir = tempfile::tempdir()?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let running = server_rt.block_on(genuine_server::start_embedded(
        &config,
        Arc::new(SystemClock),
    ))?;
    let bare = server_rt.block_on(bare::start(ACCOUNT, APP_ID, API, digest))?;
    let admin_token = std::fs::read_to_string(&running.admin_token_file)?
        .trim()
        .to_owned();
    let servers = Servers {
        genuine: format!("http://{}", running.addr),
        genuine_admin: admin_token,
        bare: format!("http://{}", bare.addr),
        bare_issuer: bare.issuer.clone(),
    };
    let result = client_rt.block_on(run(&args, servers, digest, ncpu));
    server_rt.block_on(async {
        bare.shutdown().await;
        running.shutdown().await;
    });
    result
}

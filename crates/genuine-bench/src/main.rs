//! `genuine-loadbench`: full attestations per second over HTTP on this machine.
//!
//! In one process and one run it starts up to three targets, each on a server
//! runtime whose threads are named `lb-server`, and drives them all with the
//! same client loop on a second runtime whose threads are named `lb-client`:
//!
//! - `genuine`: the real service in embedded mode ([`genuine_server::start`]
//!   without a database: SQLite in a temporary data dir, the system clock);
//! - `bare`: a bare axum handler doing the same cryptography (`bare.rs`);
//! - `cluster` (with `--cluster`): two nodes in cluster mode, started with
//!   [`genuine_server::start`] in this process and sharing PostgreSQL and
//!   Redis (`cluster.rs`): the same `public_url` and master key file, a data
//!   dir each, a PostgreSQL schema `genuine_bench_<hex>` and a Redis key
//!   prefix `genuine-bench-<hex>:` of this run's own, both removed at the end.
//!   The client sends each challenge to one node and its attest to the other,
//!   alternating (a → b, then b → a): every nonce crosses nodes, the honest
//!   worst case (the shared nonce key, single use through Redis).
//!
//! Both service targets run with `challenge_rate_limit = u32::MAX`: the
//! per-client-address challenge limiter still runs (in memory, or a Redis
//! `INCR` per challenge in the cluster), so its cost is in the figures, but it
//! never refuses — the load generator is a single client address, which the
//! default limit (1000 per 60 s) would throttle.
//!
//! One attestation is:
//!
//! 1. `POST /v1/challenge`;
//! 2. build evidence with a device key from a pre-generated pool (ES256
//!    signing: the client's cost, measured and reported apart);
//! 3. `POST /v1/attest`, expect 200; every Nth token is verified with
//!    `genuine-verify` against the target's JWKS (a decoy fails there). On
//!    the cluster the verified tokens come in pairs, one minted by each node;
//!    its issuer is the nodes' shared `public_url`.
//!
//! The closed-loop phase runs `--concurrency` tasks for `--duration` seconds
//! per target (after `--warmup`) and reports the peak rate, p50 and p99; with
//! `--rounds N` the targets take turns N times and the medians are compared
//! (genuine/bare, target ≥ 0.7; cluster/bare, target ≥ 0.5). Then, unless
//! `--open-loop-fraction 0`, an open-loop phase offers a fixed rate of that
//! fraction of each target's peak and reports the latency there (measured
//! from the scheduled start, so a stall is not hidden; target p99 ≤ 20 ms at
//! 80 %). `--rate R` runs only the open-loop phase at R attestations per
//! second. Tokio's timer has a 1 ms resolution, so an open-loop arrival may
//! leave up to about 1 ms after it was due; that delay is counted in its
//! latency.
//!
//! CPU time is read per thread from `/proc/self/task/*/schedstat`, so the
//! report shows how the two shared cores were split between server and load
//! generator; the CPU of the machine's PostgreSQL and Redis processes
//! (`/proc/*/stat`) is reported apart from that of other processes.
//!
//! Memory: the process's `VmRSS` (`/proc/self/status`) is sampled every
//! 250 ms, and each phase reports it at its start, its peak and its end
//! (warm-up and drain included). The servers run in this process, so this is
//! the memory of every target started (the idle ones too) plus the load
//! generator's, whose per-phase sample buffers take about 64 bytes per
//! attestation (about 6 MB in a 10 s phase). `--soak SECONDS` then runs one
//! target (`--soak-target`) open-loop at the same fraction of its peak (or
//! at `--rate`) for that long without keeping samples, printing the rate,
//! latency and RSS every `--soak-every` seconds, to show whether memory
//! plateaus (the replay set, rate limiter and caches are bounded; the
//! embedded replay set keeps ids for one to two nonce lifetimes, 60–120 s
//! with the defaults, so it fills during the first two minutes).

mod bare;
mod cluster;
mod cpu;
mod mem;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
use genuine_server::Running;
use genuine_server::config::Config;
use genuine_server::service::SystemClock;
use genuine_verify::{Expectations, Jwks, Verifier};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

const ACCOUNT: &str = "default";
const APP_ID: &str = "com.example.loadbench";
const API: &str = "api.loadbench.example";

/// Full attestations per second over HTTP: the embedded service (and with
/// `--cluster` a two-node cluster) next to a bare axum handler doing the same
/// cryptography, in the same run; per phase the process's resident memory.
#[derive(Debug, Parser)]
#[command(
    name = "genuine-loadbench",
    version,
    after_help = "Both service targets run with challenge_rate_limit = u32::MAX: the per-client-address \
                  limiter runs (its cost is measured) but never refuses the load generator's single \
                  address. Every server runs in this process, so the RSS figures (VmRSS, sampled every \
                  250 ms) are those of all targets started plus the load generator.\n\
                  Examples: genuine-loadbench --cluster --duration 10 --rounds 3\n          \
                  genuine-loadbench --cluster --only cluster --soak 60"
)]
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
    /// Closed-loop rounds; the targets take turns (genuine, bare, cluster,
    /// genuine, ...) and the medians are compared.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Open loop only, at this fixed rate (attestations per second) for each
    /// target (and for the soak).
    #[arg(long)]
    rate: Option<f64>,
    /// After the closed loop, an open-loop phase at this fraction of each
    /// target's peak (also the soak's rate); 0 skips it.
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
    /// Which targets to run (`cluster` implies `--cluster`).
    #[arg(long, value_enum, default_value_t = Only::All)]
    only: Only,
    /// Add the target `cluster`: two cluster-mode nodes in this process
    /// sharing PostgreSQL and Redis, each challenge sent to one node and its
    /// attest to the other. The run creates its own PostgreSQL schema and
    /// Redis key prefix and removes them at the end.
    #[arg(long)]
    cluster: bool,
    /// PostgreSQL for `--cluster` (a database where the run may create a schema).
    #[arg(long, env = "GENUINE_BENCH_DATABASE_URL", hide_env_values = true,
          default_value = cluster::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Redis for `--cluster`.
    #[arg(long, env = "GENUINE_BENCH_REDIS_URL", hide_env_values = true,
          default_value = cluster::DEFAULT_REDIS_URL)]
    redis_url: String,
    /// After the other phases, run one target open-loop at
    /// `--open-loop-fraction` of its closed-loop peak (or at `--rate`) for
    /// this many seconds, printing rate, latency and RSS every
    /// `--soak-every` seconds; 0: no soak.
    #[arg(long, default_value_t = 0.0)]
    soak: f64,
    /// The soak's target (default: `cluster` with `--cluster`, else `genuine`).
    #[arg(long, value_enum)]
    soak_target: Option<Kind>,
    /// Seconds between the soak's reports.
    #[arg(long, default_value_t = 5.0)]
    soak_every: f64,
    /// Install a `tracing` subscriber at `info` writing to a sink, as
    /// `genuine serve` logs every attestation (formatting cost, no I/O).
    #[arg(long)]
    log: bool,
}

/// Which targets to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    /// The service, the bare handler, and the cluster with `--cluster`.
    #[value(alias = "both")]
    All,
    /// The embedded service only.
    Genuine,
    /// The bare handler only.
    Bare,
    /// The cluster only.
    Cluster,
}

/// A target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Kind {
    /// The embedded service.
    Genuine,
    /// The bare handler.
    Bare,
    /// The two-node cluster.
    Cluster,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Genuine => "genuine",
            Self::Bare => "bare",
            Self::Cluster => "cluster",
        }
    }
}

impl Args {
    /// The targets this run starts, in their order of turns.
    fn kinds(&self) -> Vec<Kind> {
        match self.only {
            Only::All if self.cluster => vec![Kind::Genuine, Kind::Bare, Kind::Cluster],
            Only::All => vec![Kind::Genuine, Kind::Bare],
            Only::Genuine => vec![Kind::Genuine],
            Only::Bare => vec![Kind::Bare],
            Only::Cluster => vec![Kind::Cluster],
        }
    }

    /// The soak's target, if there is a soak.
    fn soak_kind(&self) -> anyhow::Result<Option<Kind>> {
        if self.soak <= 0.0 {
            return Ok(None);
        }
        let kinds = self.kinds();
        let kind = self
            .soak_target
            .unwrap_or(if kinds.contains(&Kind::Cluster) {
                Kind::Cluster
            } else if kinds.contains(&Kind::Genuine) {
                Kind::Genuine
            } else {
                Kind::Bare
            });
        if !kinds.contains(&kind) {
            bail!(
                "--soak-target {} is not among this run's targets (see --only and --cluster)",
                kind.name()
            );
        }
        if self.rate.is_none() && self.open_loop_fraction <= 0.0 {
            bail!("--soak needs --rate or a positive --open-loop-fraction");
        }
        Ok(Some(kind))
    }
}

/// One target under load: one server, or the nodes of the cluster.
struct Target {
    name: &'static str,
    /// Attestation `n` asks `challenge_urls[n % nodes]` for its nonce and
    /// sends its evidence to `attest_urls[n % nodes]` (on the cluster: the
    /// other node).
    challenge_urls: Vec<String>,
    attest_urls: Vec<String>,
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
    rss: Option<mem::Rss>,
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
    let nodes = t.challenge_urls.len().max(1);
    let route = usize::try_from(n).unwrap_or(0) % nodes;
    let (Some(challenge_url), Some(attest_url)) =
        (t.challenge_urls.get(route), t.attest_urls.get(route))
    else {
        return Err("target without nodes".into());
    };
    let resp = load
        .http
        .post(challenge_url)
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
        .post(attest_url)
        .json(&AttestRequest { evidence: ev })
        .send()
        .await
        .map_err(|e| format!("attest: {e}"))?;
    if !resp.status().is_success() {
        return Err(refused("attest", resp).await);
    }
    let body: AttestResponse = resp.json().await.map_err(|e| format!("attest body: {e}"))?;
    let attest = sent.elapsed();

    // With several nodes, attestations n..n+nodes are verified together, so
    // that tokens minted by every node are checked.
    let round = n / u64::try_from(nodes).unwrap_or(1);
    if load.verify_every > 0 && round.is_multiple_of(load.verify_every) {
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

/// What a phase measured besides its samples.
struct Measured {
    unserved: u64,
    cpu: Option<cpu::CpuTimes>,
    rss: Option<mem::Rss>,
}

fn summarize(
    target: &'static str,
    mode: String,
    rec: &Record,
    (from, to): (Instant, Instant),
    which: Window,
    m: Measured,
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
        unserved: m.unserved,
        rate,
        p50_ms: percentile_ms(&total, 0.50),
        p99_ms: percentile_ms(&total, 0.99),
        attest_p50_ms: percentile_ms(&attest, 0.50),
        attest_p99_ms: percentile_ms(&attest, 0.99),
        client_crypto_us,
        cpu: m.cpu,
        rss: m.rss,
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
    (warmup, duration): (Duration, Duration),
    rss: &mem::Sampler,
) -> anyhow::Result<Phase> {
    let start = rss.mark();
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
    let end = rss.mark();
    Ok(summarize(
        t.name,
        format!("closed, {tasks} tasks"),
        &rec,
        (from, to),
        Window::Completed,
        Measured {
            unserved: 0,
            cpu,
            rss: rss.window(start, end),
        },
    ))
}

/// Open loop at a fixed rate: arrival `k` is due at `start + k / rate`. A
/// fixed pool of tasks (each with its own kept-alive connection) takes the
/// arrivals in order; when every task is busy an arrival waits, and since its
/// latency counts from when it was due, the wait is in the figures.
async fn open_loop(
    load: &Arc<Load>,
    t: &Arc<Target>,
    (rate, tasks): (f64, usize),
    (warmup, duration): (Duration, Duration),
    rss: &mem::Sampler,
) -> anyhow::Result<Phase> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("the open-loop rate must be a positive number, not {rate}");
    }
    let begun = rss.mark();
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
    let end = rss.mark();
    Ok(summarize(
        t.name,
        format!("open, {rate:.0}/s offered"),
        &rec,
        (from, to),
        Window::Scheduled,
        Measured {
            unserved: unserved.load(Ordering::Relaxed),
            cpu,
            rss: rss.window(begun, end),
        },
    ))
}

fn print_header() {
    println!(
        "{:<8} {:<21} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>15}",
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
        "eng %",
        "oth %",
        "stl %",
        "RSS MiB s/pk/e"
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
    let (srv, cli, ours, engines, foreign, steal) = match &p.cpu {
        Some(c) => (
            per(c.server),
            per(c.client),
            share(c.process()),
            share(c.engines),
            share(c.foreign()),
            share(c.machine_steal),
        ),
        None => (na(), na(), na(), na(), na(), na()),
    };
    let rss = p.rss.map_or_else(na, |r| {
        format!(
            "{:.0}/{:.0}/{:.0}",
            mem::mib(r.start),
            mem::mib(r.peak),
            mem::mib(r.end)
        )
    });
    println!(
        "{:<8} {:<21} {:>7.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7} {:>6} {:>6} {:>6} {:>5.0} {:>5} {:>5} {:>5} {:>5} {:>15}",
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
        engines,
        foreign,
        steal,
        rss
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

/// What the soak's tasks collected since the last report.
#[derive(Default)]
struct SoakInterval {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// The soak's reporting side: one line per interval, and the readings for
/// the summary.
struct SoakReport {
    shared: Arc<Mutex<SoakInterval>>,
    /// The buffer swapped with the tasks' at each report (its capacity is
    /// kept, so the soak's own memory does not grow).
    spare: Vec<u32>,
    start: Instant,
    last: Instant,
    last_cpu: Option<cpu::CpuTimes>,
    ncpu: usize,
    done: u64,
    errors: u64,
    worst_p99_ms: f64,
    /// (seconds since the start, RSS over the interval)
    points: Vec<(f64, mem::Rss)>,
}

impl SoakReport {
    /// Whether anything completed since the last report.
    fn pending(&self) -> bool {
        let iv = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        !iv.latencies_us.is_empty() || iv.errors > 0
    }

    async fn report(&mut self, rss: &mem::Sampler, engines: Option<&cluster::Engines>) {
        let now = rss.mark();
        let cpu_now = cpu::read();
        let cpu = match (&cpu_now, &self.last_cpu) {
            (Some(b), Some(a)) => Some(b.since(a)),
            _ => None,
        };
        self.last_cpu = cpu_now;
        let (errors, first_error) = {
            let mut iv = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut iv.latencies_us, &mut self.spare);
            (std::mem::take(&mut iv.errors), iv.first_error.take())
        };
        self.spare.sort_unstable();
        let pct = |q: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a rank within a Vec's length"
            )]
            let rank = ((q * self.spare.len() as f64).ceil() as usize).clamp(1, self.spare.len());
            self.spare
                .get(rank - 1)
                .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
        };
        let (p50, p99) = if self.spare.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (pct(0.50), pct(0.99))
        };
        let n = self.spare.len() as u64;
        self.spare.clear();
        self.done += n;
        self.errors += errors;
        if p99 > self.worst_p99_ms {
            self.worst_p99_ms = p99;
        }
        let secs = (now - self.last).as_secs_f64().max(1e-3);
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let rate = n as f64 / secs;
        let interval = rss.window(self.last, now);
        rss.forget_before(now);
        self.last = now;
        let elapsed = (now - self.start).as_secs_f64();
        let (cur, peak) = interval.map_or_else(
            || ("n/a".to_owned(), "n/a".to_owned()),
            |r| {
                self.points.push((elapsed, r));
                (
                    format!("{:.1}", mem::mib(r.end)),
                    format!("{:.1}", mem::mib(r.peak)),
                )
            },
        );
        #[allow(clippy::cast_precision_loss, reason = "a CPU count")]
        let share = |d: Duration| {
            format!(
                "{:.0}",
                d.as_secs_f64() / secs / self.ncpu.max(1) as f64 * 100.0
            )
        };
        let (srv, us, eng, oth) = cpu.map_or_else(
            || {
                (
                    "n/a".to_owned(),
                    "n/a".to_owned(),
                    "n/a".to_owned(),
                    "n/a".to_owned(),
                )
            },
            |c| {
                #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
                let per = if n == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.0}", c.server.as_secs_f64() * 1e6 / n as f64)
                };
                (
                    per,
                    share(c.process()),
                    share(c.engines),
                    share(c.foreign()),
                )
            },
        );
        let redis = match engines {
            Some(e) => e
                .redis_used_memory()
                .await
                .map_or_else(|| "n/a".to_owned(), |b| format!("{:.1}", mem::mib(b))),
            None => "-".to_owned(),
        };
        println!(
            "{elapsed:>7.0} {rate:>8.0} {p50:>7.2} {p99:>7.2} {errors:>6} {srv:>6} {us:>5} {eng:>5} {oth:>5} {cur:>8} {peak:>8} {redis:>9}"
        );
        if let Some(e) = first_error {
            println!("        first error in this interval: {e}");
        }
    }
}

/// The soak: an open loop at `rate` for `length`, keeping no samples (only
/// the current interval's latencies); every `every` a line with the
/// interval's rate, latency, errors and RSS.
async fn soak(
    load: &Arc<Load>,
    t: &Arc<Target>,
    (rate, tasks): (f64, usize),
    (length, every): (Duration, Duration),
    (rss, ncpu): (&mem::Sampler, usize),
    engines: Option<&cluster::Engines>,
) -> anyhow::Result<()> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("the soak's rate must be a positive number, not {rate}");
    }
    let every = every.max(Duration::from_secs(1));
    let start = Instant::now() + Duration::from_millis(10);
    let to = start + length;
    let hard_stop = to + Duration::from_secs(10);
    let shared = Arc::new(Mutex::new(SoakInterval::default()));
    let next = Arc::new(AtomicU64::new(0));
    let unserved = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (load, t, next, unserved, shared) = (
            load.clone(),
            t.clone(),
            next.clone(),
            unserved.clone(),
            shared.clone(),
        );
        handles.push(tokio::spawn(async move {
            let rng = SystemRandom::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                #[allow(clippy::cast_precision_loss, reason = "arrival numbers far below 2^52")]
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                if due >= to {
                    break;
                }
                if Instant::now() >= hard_stop {
                    unserved.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let r = attest_once(&load, &t, &rng).await;
                let latency = micros(Instant::now().saturating_duration_since(due));
                let mut iv = shared.lock().unwrap_or_else(PoisonError::into_inner);
                match r {
                    Ok(_) => iv
                        .latencies_us
                        .push(u32::try_from(latency).unwrap_or(u32::MAX)),
                    Err(e) => {
                        iv.errors += 1;
                        if iv.first_error.is_none() {
                            iv.first_error = Some(e);
                        }
                    }
                }
            }
        }));
    }
    println!();
    println!(
        "soak: {} open loop at {rate:.0}/s offered for {:.0} s, {tasks} connections; a line every {:.0} s \
         (latency of the attestations completed in the interval, from when they were due; srv µs and \
         us/eng/oth % as above; RSS: VmRSS of this process, all targets and the load generator, at the \
         interval's end and its peak; redis: Redis's used_memory)",
        t.name,
        length.as_secs_f64(),
        every.as_secs_f64()
    );
    println!(
        "{:>7} {:>8} {:>7} {:>7} {:>6} {:>6} {:>5} {:>5} {:>5} {:>8} {:>8} {:>9}",
        "t s",
        "att/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "srv µs",
        "us %",
        "eng %",
        "oth %",
        "RSS MiB",
        "peak",
        "redis MiB"
    );
    let first = rss.mark();
    let mut report = SoakReport {
        shared,
        spare: Vec::new(),
        start: first,
        last: first,
        last_cpu: cpu::read(),
        ncpu,
        done: 0,
        errors: 0,
        worst_p99_ms: 0.0,
        points: Vec::new(),
    };
    let mut at = start + every;
    while at <= to {
        tokio::time::sleep_until(at.into()).await;
        report.report(rss, engines).await;
        at += every;
    }
    for h in handles {
        h.await?;
    }
    // Arrivals still in flight at the end (a short last interval: its
    // rate and CPU shares are over a few milliseconds).
    if report.pending() {
        println!("  drain: the attestations still in flight at the end");
        report.report(rss, engines).await;
    }

    let length_s = length.as_secs_f64();
    let half = |second: bool| {
        report
            .points
            .iter()
            .filter(|(at, _)| (*at > length_s / 2.0) == second)
            .map(|(_, r)| r.peak)
            .max()
    };
    let start_rss = report.points.first().map(|(_, r)| r.start);
    let end_rss = report.points.last().map(|(_, r)| r.end);
    let peak_rss = report.points.iter().map(|(_, r)| r.peak).max();
    let show =
        |b: Option<u64>| b.map_or_else(|| "n/a".to_owned(), |b| format!("{:.1}", mem::mib(b)));
    println!(
        "soak {}: {} attestations, {} errors, {} never sent; worst interval p99 {:.2} ms; \
         RSS start {} MiB, peak {} MiB, end {} MiB; highest reading in the first half {} MiB, \
         in the second half {} MiB",
        t.name,
        report.done,
        report.errors,
        unserved.load(Ordering::Relaxed),
        report.worst_p99_ms,
        show(start_rss),
        show(peak_rss),
        show(end_rss),
        show(half(false)),
        show(half(true)),
    );
    Ok(())
}

/// Where a service target is reached.
struct ServiceAddr {
    /// Base URLs of its nodes (one for the embedded service).
    nodes: Vec<String>,
    admin_token: String,
    /// Its `public_url`.
    issuer_base: String,
}

/// Addresses and secrets of the servers started.
#[derive(Default)]
struct Servers {
    genuine: Option<ServiceAddr>,
    /// Base URL and issuer.
    bare: Option<(String, String)>,
    cluster: Option<ServiceAddr>,
}

fn expectations(issuer: String) -> Expectations {
    Expectations {
        issuer,
        audiences: vec![API.to_owned()],
        leeway_secs: 5,
    }
}

/// Registers an ES256 API and the app's digest through the admin API of the
/// first node, and builds the target.
async fn service_target(
    http: &reqwest::Client,
    name: &'static str,
    s: &ServiceAddr,
    digest: AppDigest,
) -> anyhow::Result<Target> {
    let first = s.nodes.first().context("a service without nodes")?;
    admin(
        http,
        first,
        &s.admin_token,
        reqwest::Method::POST,
        "apis",
        Some(json!({"domain": API, "alg": "ES256", "ttl": 300})),
    )
    .await?;
    admin(
        http,
        first,
        &s.admin_token,
        reqwest::Method::POST,
        "registrations",
        Some(json!({"app_id": APP_ID, "digest": digest.to_hex(), "version": "1.0.0"})),
    )
    .await?;
    let keys = jwks(http, &format!("{first}/v1/accounts/{ACCOUNT}/jwks.json")).await?;
    let n = s.nodes.len();
    Ok(Target {
        name,
        challenge_urls: s
            .nodes
            .iter()
            .map(|u| format!("{u}/v1/challenge"))
            .collect(),
        // Node i's challenges are answered at node i + 1.
        attest_urls: (0..n)
            .filter_map(|i| s.nodes.get((i + 1) % n))
            .map(|u| format!("{u}/v1/attest"))
            .collect(),
        verifier: Verifier::from_jwks(
            &keys,
            expectations(format!("{}/v1/accounts/{ACCOUNT}", s.issuer_base)),
        )?,
    })
}

/// One strictly verified attestation on every route of `t` before timing.
/// Retried for a few seconds: a cluster node's cache may lag the admin
/// writes made through the other node by a moment.
async fn sanity(
    http: &reqwest::Client,
    t: &Target,
    digest: AppDigest,
    rng: &SystemRandom,
) -> anyhow::Result<()> {
    let (device, _) = DeviceKey::generate(rng).map_err(|e| anyhow::anyhow!("device key: {e}"))?;
    let strict = Load {
        http: http.clone(),
        devices: vec![device],
        digest,
        verify_every: 1,
        counter: AtomicU64::new(0),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    let mut failed: Vec<String> = Vec::new();
    while in_a_row < t.challenge_urls.len().max(1) {
        match attest_once(&strict, t, rng).await {
            Ok(_) => in_a_row += 1,
            Err(e) if Instant::now() >= deadline => {
                bail!("{}: first attestations failed: {e}", t.name)
            }
            Err(e) => {
                in_a_row = 0;
                failed.push(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if let Some(first) = failed.first() {
        // Not timed; said so that the service's outcome counts add up.
        println!(
            "{}: {} attestation(s) of the check before timing failed and were retried \
             (a node's cache catching up with the admin writes?); the first: {first}",
            t.name,
            failed.len()
        );
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

#[allow(clippy::too_many_lines, reason = "the run, in order")]
async fn run(
    args: &Args,
    servers: &Servers,
    engines: Option<&cluster::Engines>,
    digest: AppDigest,
    ncpu: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;

    let mut targets: Vec<Arc<Target>> = Vec::new();
    if let Some(g) = &servers.genuine {
        targets.push(Arc::new(service_target(&http, "genuine", g, digest).await?));
    }
    if let Some((base, issuer)) = &servers.bare {
        let keys = jwks(&http, &format!("{base}/jwks.json")).await?;
        targets.push(Arc::new(Target {
            name: "bare",
            challenge_urls: vec![format!("{base}/v1/challenge")],
            attest_urls: vec![format!("{base}/v1/attest")],
            verifier: Verifier::from_jwks(&keys, expectations(issuer.clone()))?,
        }));
    }
    if let Some(c) = &servers.cluster {
        targets.push(Arc::new(service_target(&http, "cluster", c, digest).await?));
    }

    let rng = SystemRandom::new();
    let devices = (0..args.devices.max(1))
        .map(|_| DeviceKey::generate(&rng).map(|(k, _)| k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("device key: {e}"))?;
    for t in &targets {
        sanity(&http, t, digest, &rng).await?;
    }
    let load = Arc::new(Load {
        http,
        devices,
        digest,
        verify_every: args.verify_every,
        counter: AtomicU64::new(0),
    });
    let rss = mem::Sampler::start();

    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    println!(
        "genuine-loadbench: targets {}; {ncpu} CPUs; server runtime {} threads, client runtime {} threads; \
         {} device keys; every {}th token verified; warm-up {:.1} s, window {:.1} s; RSS after start {} MiB",
        names.join(", "),
        args.server_threads.unwrap_or(ncpu),
        args.client_threads.unwrap_or(ncpu),
        args.devices.max(1),
        args.verify_every,
        warmup.as_secs_f64(),
        duration.as_secs_f64(),
        mem::rss_bytes().map_or_else(|| "n/a".to_owned(), |b| format!("{:.1}", mem::mib(b)))
    );
    if let Some(e) = engines {
        println!(
            "cluster: two nodes in this process, public_url {}, PostgreSQL schema {}, Redis key prefix {}; \
             each challenge at one node, its attest at the other, alternating",
            cluster::PUBLIC_URL,
            e.schema,
            e.prefix
        );
    }
    if servers.genuine.is_some() || servers.cluster.is_some() {
        println!(
            "challenge_rate_limit = u32::MAX: the per-client-address limiter runs (its cost is measured) \
             but never refuses the load generator's single address"
        );
    }
    println!(
        "p50/p99 ms: challenge + client evidence signing + attest (open loop: from when it was due); \
         att p50/p99: the attest request alone; srv/cli µs: CPU per attestation of the server and \
         load-generator threads; cryp: client signing + token verification, µs per attestation; \
         us/eng/oth/stl %: CPU share of this process, of PostgreSQL + Redis, of other processes, and stolen \
         by the hypervisor (% of all CPUs); RSS: VmRSS of this process (every target started and the \
         load generator) at the phase's start, peak, end"
    );
    print_header();

    let mut peaks: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut all = Vec::new();
    if args.rate.is_none() {
        for _ in 0..args.rounds.max(1) {
            for t in &targets {
                let p = closed_loop(&load, t, args.concurrency.max(1), (warmup, duration), &rss)
                    .await?;
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
                (rate, args.open_loop_tasks.max(1)),
                (warmup, duration),
                &rss,
            )
            .await?;
            print_phase(&p, ncpu);
            all.push(p);
        }
    }

    println!();
    let peak = |name: &str| peaks.get(name).map(|v| median(v.clone()));
    if !peaks.is_empty() {
        let rates: Vec<String> = names
            .iter()
            .filter_map(|n| peak(n).map(|r| format!("{n} {r:.0}/s")))
            .collect();
        println!(
            "closed loop, median of {} round(s): {}",
            args.rounds.max(1),
            rates.join(", ")
        );
    }
    if let Some(b_rate) = peak("bare") {
        for (name, target) in [("genuine", 0.7), ("cluster", 0.5)] {
            if let Some(rate) = peak(name) {
                let ratio = rate / b_rate;
                println!(
                    "ratio {name}/bare = {ratio:.3} (target >= {target}): {}",
                    verdict(ratio >= target)
                );
            }
        }
    }
    for p in all.iter().filter(|p| p.mode.starts_with("open")) {
        let at = if args.rate.is_some() {
            String::new()
        } else {
            format!(" ({:.0} % of its peak)", args.open_loop_fraction * 100.0)
        };
        println!(
            "open loop {}: {}{at} -> p99 {:.2} ms (target <= 20 ms at 80 %): {}, achieved {:.0}/s, errors {}, never sent {}",
            p.target,
            p.mode,
            p.p99_ms,
            verdict(p.p99_ms <= 20.0),
            p.rate,
            p.errors,
            p.unserved
        );
    }
    let errors: usize = all.iter().map(|p| p.errors).sum();
    if errors > 0 {
        println!("{errors} errors in measured windows (see above)");
    }

    if let Some(kind) = args.soak_kind()? {
        let t = targets
            .iter()
            .find(|t| t.name == kind.name())
            .context("the soak's target is not running")?;
        let rate = open_rate(t).context("no rate for the soak (no closed loop for its target)")?;
        soak(
            &load,
            t,
            (rate, args.open_loop_tasks.max(1)),
            (
                Duration::from_secs_f64(args.soak),
                Duration::from_secs_f64(args.soak_every),
            ),
            (&rss, ncpu),
            engines.filter(|_| kind == Kind::Cluster),
        )
        .await?;
    }

    println!();
    for (name, s) in [("genuine", &servers.genuine), ("cluster", &servers.cluster)] {
        let Some(s) = s else { continue };
        let Some(first) = s.nodes.first() else {
            continue;
        };
        let report = admin(
            &load.http,
            first,
            &s.admin_token,
            reqwest::Method::GET,
            "metrics?since=3600",
            None,
        )
        .await?;
        println!(
            "{name}: the service's own count of outcomes during the run: {}",
            report.get("outcomes").unwrap_or(&Value::Null)
        );
    }
    Ok(())
}

/// The servers started for this run, stopped at the end whatever happened.
#[derive(Default)]
struct Started {
    genuine: Option<Running>,
    bare: Option<bare::BareServer>,
    cluster: Option<cluster::Cluster>,
}

impl Started {
    async fn shutdown(self) {
        if let Some(b) = self.bare {
            b.shutdown().await;
        }
        if let Some(g) = self.genuine {
            g.shutdown().await;
        }
        if let Some(c) = self.cluster {
            for node in c.nodes {
                node.shutdown().await;
            }
        }
    }
}

/// What `start_and_run` works with.
struct Ctx<'a> {
    server_rt: &'a tokio::runtime::Runtime,
    client_rt: &'a tokio::runtime::Runtime,
    dir: &'a std::path::Path,
    engines: Option<&'a cluster::Engines>,
    digest: AppDigest,
    ncpu: usize,
}

/// Starts the targets (recorded in `started`, so that they are stopped even
/// when this fails) and runs the load on the client runtime.
fn start_and_run(args: &Args, ctx: &Ctx<'_>, started: &mut Started) -> anyhow::Result<()> {
    let kinds = args.kinds();
    let mut servers = Servers::default();
    if kinds.contains(&Kind::Genuine) {
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: ctx.dir.join("embedded"),
            // The limiter runs (its cost is measured) but never refuses.
            challenge_rate_limit: u32::MAX,
            ..Config::default()
        };
        let running = ctx
            .server_rt
            .block_on(genuine_server::start(&config, Arc::new(SystemClock)))?;
        let admin_token = std::fs::read_to_string(&running.admin_token_file)?
            .trim()
            .to_owned();
        let base = format!("http://{}", running.addr);
        servers.genuine = Some(ServiceAddr {
            nodes: vec![base.clone()],
            admin_token,
            issuer_base: base,
        });
        started.genuine = Some(running);
    }
    if kinds.contains(&Kind::Bare) {
        let b = ctx
            .server_rt
            .block_on(bare::start(ACCOUNT, APP_ID, API, ctx.digest))?;
        servers.bare = Some((format!("http://{}", b.addr), b.issuer.clone()));
        started.bare = Some(b);
    }
    if kinds.contains(&Kind::Cluster) {
        let engines = ctx.engines.context("the cluster needs its engines")?;
        let c = ctx
            .server_rt
            .block_on(cluster::start(engines, &ctx.dir.join("cluster")))?;
        servers.cluster = Some(ServiceAddr {
            nodes: c
                .nodes
                .iter()
                .map(|n| format!("http://{}", n.addr))
                .collect(),
            admin_token: c.admin_token.clone(),
            issuer_base: cluster::PUBLIC_URL.to_owned(),
        });
        started.cluster = Some(c);
    }
    ctx.client_rt.block_on(async {
        tokio::select! {
            r = run(args, &servers, ctx.engines, ctx.digest, ctx.ncpu) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.soak_kind()?;
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
    let engines = if args.kinds().contains(&Kind::Cluster) {
        Some(client_rt.block_on(cluster::Engines::create(
            &args.database_url,
            &args.redis_url,
        ))?)
    } else {
        None
    };
    let mut started = Started::default();
    let ctx = Ctx {
        server_rt: &server_rt,
        client_rt: &client_rt,
        dir: dir.path(),
        engines: engines.as_ref(),
        digest,
        ncpu,
    };
    let result = start_and_run(&args, &ctx, &mut started);
    server_rt.block_on(started.shutdown());
    if let Some(e) = &engines {
        match client_rt.block_on(e.remove()) {
            Ok(n) => println!(
                "removed PostgreSQL schema {} and {n} Redis keys under {}",
                e.schema, e.prefix
            ),
            Err(err) => eprintln!(
                "could not remove PostgreSQL schema {} or the Redis keys under {}: {err:#}",
                e.schema, e.prefix
            ),
        }
    }
    result
}

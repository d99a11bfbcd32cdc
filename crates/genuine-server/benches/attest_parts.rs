//! The server-side cost of one attestation, split into its parts.
//!
//! Run with `cargo bench -p genuine-server --bench attest_parts`. Groups:
//! `nonce` (issue, check), `evidence` (parse, verify, parse+verify, the raw
//! P-256 verification for reference, and the client's signing for reference),
//! `measurement` (proof match against 1 and 10 registrations), `verdict`
//! (`verdict::evaluate` with a realistic context), `arc` (encode),
//! `token` (ES256, EdDSA, HS256 minting) and `service` (the whole
//! `Service::attest` in process over an in-memory SQLite store, with and
//! without the client's challenge and evidence building, and the bookkeeping
//! around the checks: cached account state, replay guard, metrics), and
//! `replay` (the insert that finds the replay guard full and purges it).

// A benchmark's setup either works or the benchmark is meaningless: aborting
// with the message is the right response to a failure here.
#![allow(clippy::expect_used, reason = "benchmark setup aborts on failure")]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use genuine_protocol::device::DeviceKey;
use genuine_protocol::evidence::{
    EvidenceClaims, MeasurementClaim, ParsedEvidence, Signals, sign_evidence,
};
use genuine_protocol::measure::{AppDigest, ELF_EXEC_SEGMENTS_SHA256_V1, ProofVerifier, proof};
use genuine_protocol::nonce::NonceKey;
use genuine_protocol::wire::{AttestRequest, ChallengeRequest};
use genuine_protocol::{ArcKey, ReasonSet, b64};
use genuine_server::admin::NewRegistration;
use genuine_server::keys::{MasterKey, SigningKey};
use genuine_server::policy::Policy;
use genuine_server::replay::{MemoryReplay, ReplayGuard};
use genuine_server::service::{Clock, Service, ServiceParts, SystemClock};
use genuine_server::store::SqliteStore;
use genuine_server::verdict::{self, DeviceAction, NonceStatus, Registration, VerdictContext};
use genuine_verify::Algorithm;
use ring::rand::SystemRandom;
use serde_json::json;

const ACCOUNT: &str = "default";
const APP_ID: &str = "com.example.shop";
const API: &str = "api.example.com";

fn now() -> i64 {
    SystemClock.now()
}

/// Short runs: the whole file takes about a minute and a half.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// Claims as the SDK sends them for `nonce` and `digest`.
fn claims(nonce: &str, digest: &AppDigest) -> EvidenceClaims {
    let nonce_bytes = b64::decode(nonce).unwrap_or_default();
    EvidenceClaims {
        nonce: nonce.into(),
        account: ACCOUNT.into(),
        app_id: APP_ID.into(),
        app_version: "1.4.2".into(),
        platform: "linux".into(),
        api: API.into(),
        iat: now(),
        measurement: MeasurementClaim {
            alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
            proof: b64::encode(&proof(&nonce_bytes, digest)),
        },
        signals: Signals {
            sdk_version: Some("0.1.0".into()),
            os: Some("linux".into()),
            os_version: Some("6.8.0".into()),
            virtualized: true,
            ..Signals::default()
        },
        binding: Some(b64::encode(&[9; 32])),
        platform_evidence: None,
    }
}

/// Registrations for the app: `n` digests, the last of which is `digest`.
fn registrations(n: u8, digest: &AppDigest) -> HashMap<(String, String), Vec<Registration>> {
    let mut regs: Vec<Registration> = (1..n)
        .map(|i| Registration {
            id: format!("reg_{i}"),
            alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
            digest: AppDigest([i; 32]),
            expires_at: None,
        })
        .collect();
    regs.push(Registration {
        id: "reg_match".into(),
        alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
        digest: *digest,
        expires_at: Some(now() + 86_400),
    });
    let mut map = HashMap::new();
    map.insert((APP_ID.to_owned(), "linux".to_owned()), regs);
    // Another app of the same account, as a realistic account has.
    map.insert(
        ("com.example.other".to_owned(), "linux".to_owned()),
        vec![Registration {
            id: "reg_other".into(),
            alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
            digest: AppDigest([200; 32]),
            expires_at: None,
        }],
    );
    map
}

fn parts(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let nonce_key = NonceKey::generate(&rng).expect("nonce key");
    let t = u64::try_from(now()).unwrap_or(0);
    let digest = AppDigest([42; 32]);
    let issued = nonce_key
        .issue(&rng, ACCOUNT, APP_ID, t, 60)
        .expect("issue");
    let nonce_bytes = b64::decode(&issued.nonce).expect("nonce is base64url");
    let (device, _) = DeviceKey::generate(&rng).expect("device key");
    let evidence_claims = claims(&issued.nonce, &digest);
    let jws = sign_evidence(&device, &rng, &evidence_claims).expect("sign evidence");
    let parsed = ParsedEvidence::parse(&jws).expect("parse");
    let verified = parsed.verify().expect("verify");

    let mut g = c.benchmark_group("nonce");
    g.bench_function("issue", |b| {
        b.iter(|| nonce_key.issue(&rng, black_box(ACCOUNT), black_box(APP_ID), t, 60));
    });
    g.bench_function("check", |b| {
        b.iter(|| nonce_key.check(black_box(&issued.nonce), ACCOUNT, APP_ID, t));
    });
    g.finish();

    let mut g = c.benchmark_group("evidence");
    g.bench_function("parse", |b| {
        b.iter(|| ParsedEvidence::parse(black_box(&jws)))
    });
    g.bench_function("verify", |b| b.iter(|| black_box(&parsed).verify()));
    g.bench_function("parse+verify_es256", |b| {
        b.iter(|| ParsedEvidence::parse(black_box(&jws)).map(|p| p.verify()));
    });
    // What the service does besides verify: the untrusted routing read.
    g.bench_function("routing", |b| b.iter(|| black_box(&parsed).routing()));
    // Reference: the bare P-256 verification inside `verify`.
    let signing_input = jws.rsplit_once('.').map(|(s, _)| s).unwrap_or_default();
    let signature = b64::decode(jws.rsplit('.').next().unwrap_or_default()).expect("signature");
    g.bench_function("raw_p256_verify", |b| {
        b.iter(|| {
            device
                .public_key()
                .verify_es256(black_box(signing_input.as_bytes()), &signature)
        });
    });
    // Reference, client side: what the SDK pays to build evidence.
    g.bench_function("client_sign_evidence", |b| {
        b.iter(|| sign_evidence(&device, &rng, black_box(&evidence_claims)));
    });
    g.finish();

    let mut g = c.benchmark_group("measurement");
    let one = [digest];
    let ten: Vec<AppDigest> = (1..10).map(|i| AppDigest([i; 32])).chain(one).collect();
    for (name, candidates) in [
        ("match_1_registration", &one[..]),
        ("match_10_registrations", &ten),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let v = ProofVerifier::new(black_box(&nonce_bytes));
                candidates
                    .iter()
                    .fold(false, |hit, d| v.matches(d, &verified.proof) | hit)
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("verdict");
    let devices: HashMap<String, DeviceAction> = (0..20)
        .map(|i| (format!("device-{i:02}-xxxxxxxxxxxx"), DeviceAction::Block))
        .collect();
    let now_s = now();
    for (name, n) in [
        ("evaluate_1_registration", 1),
        ("evaluate_10_registrations", 10),
    ] {
        let regs = registrations(n, &digest);
        let ctx = VerdictContext {
            policy: Policy::default(),
            api_known: true,
            registrations: Some(&regs),
            devices: Some(&devices),
            platform: None,
        };
        assert!(
            verdict::evaluate(
                &ctx,
                NonceStatus::Fresh,
                Some(&nonce_bytes),
                Some(&verified),
                now_s
            )
            .valid,
            "the benchmark's evidence must pass"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                verdict::evaluate(
                    black_box(&ctx),
                    NonceStatus::Fresh,
                    Some(&nonce_bytes),
                    Some(&verified),
                    now_s,
                )
            });
        });
    }
    // The service clones the policy into the context on every attestation.
    let policy = Policy::default();
    g.bench_function("policy_clone", |b| b.iter(|| black_box(&policy).clone()));
    g.finish();

    let mut g = c.benchmark_group("arc");
    let arc_key = ArcKey::from_bytes(&[7; 32]);
    g.bench_function("encode", |b| {
        b.iter(|| arc_key.encode(&rng, black_box(ReasonSet::empty())));
    });
    let master = MasterKey::from_bytes(&[3; 32]).expect("master key");
    // The service derives the account's arc key on every attestation.
    g.bench_function("derive_key+encode", |b| {
        b.iter(|| {
            let mut label = b"genuine/arc/v1\0".to_vec();
            label.extend_from_slice(black_box(ACCOUNT).as_bytes());
            ArcKey::from_bytes(&master.derive(&label)).encode(&rng, ReasonSet::empty())
        });
    });
    g.finish();

    let mut g = c.benchmark_group("token");
    let token_claims = json!({
        "iss": format!("http://127.0.0.1:8080/v1/accounts/{ACCOUNT}"),
        "aud": API,
        "sub": APP_ID,
        "iat": now_s,
        "exp": now_s + 300,
        "jti": b64::encode(&[5; 16]),
        "did": verified.device_id,
        "arc": arc_key.encode(&rng, ReasonSet::empty()).expect("arc"),
        "pay": b64::encode(&[9; 32]),
    });
    for (name, alg) in [
        ("mint_es256", Algorithm::Es256),
        ("mint_eddsa", Algorithm::EdDsa),
        ("mint_hs256", Algorithm::Hs256),
    ] {
        let (key, _) = SigningKey::generate(alg, "kid-0123456789ab".into(), &rng).expect("key");
        g.bench_function(name, |b| {
            b.iter(|| key.mint(&rng, key.kid(), black_box(&token_claims)));
        });
    }
    g.finish();
}

/// A service over an in-memory store with one ES256 API and `n` registrations.
async fn service(n: u8, digest: &AppDigest) -> Arc<Service> {
    let store: Arc<dyn genuine_server::store::Store> =
        Arc::new(SqliteStore::in_memory().await.expect("in-memory store"));
    let service = Arc::new(
        Service::new(ServiceParts {
            store: store.clone(),
            master: MasterKey::from_bytes(&[1; 32]).expect("master key"),
            replay: Arc::new(MemoryReplay::new(50_000_000, 60)),
            public_url: "http://127.0.0.1:8080".into(),
            nonce_ttl_secs: 600,
            clock: Arc::new(SystemClock),
            nonce_key: None,
            rate_limiter: None,
            devices: Arc::new(genuine_server::devices::MemoryDevices::new(store)),
            trusted_proxies: genuine_server::clientip::TrustedProxies::default(),
            platform_roots: genuine_server::platform::PlatformRoots::default(),
            revocations: Default::default(),
        })
        .expect("service"),
    );
    service.bootstrap().await.expect("bootstrap");
    service
        .add_api(ACCOUNT, API, "ES256", 300)
        .await
        .expect("add API");
    for i in 1..n {
        let other = AppDigest([i; 32]);
        service
            .add_registration(ACCOUNT, registration(&other))
            .await
            .expect("add registration");
    }
    service
        .add_registration(ACCOUNT, registration(digest))
        .await
        .expect("add registration");
    service
}

fn registration(digest: &AppDigest) -> NewRegistration {
    NewRegistration {
        app_id: APP_ID.into(),
        digest: digest.to_hex(),
        alg: None,
        platform: None,
        version: Some("1.4.2".into()),
        expire_after_secs: None,
        expires_at: None,
    }
}

async fn challenge(service: &Service) -> String {
    service
        .challenge(
            &ChallengeRequest {
                account: ACCOUNT.into(),
                app_id: APP_ID.into(),
            },
            None,
        )
        .await
        .expect("challenge")
        .nonce
}

fn whole(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rng = SystemRandom::new();
    let digest = AppDigest([42; 32]);
    let (device, _) = DeviceKey::generate(&rng).expect("device key");
    let ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));

    // Sanity: the benchmarked attestation is valid, not a decoy.
    let check = rt.block_on(async {
        let s = service(1, &digest).await;
        let nonce = challenge(&s).await;
        let evidence = sign_evidence(&device, &rng, &claims(&nonce, &digest)).expect("sign");
        let token = s
            .attest(&AttestRequest { evidence }, ip)
            .await
            .expect("attest")
            .token;
        let report = s
            .check_token(ACCOUNT, &token, Some(API))
            .await
            .expect("check");
        report.valid
    });
    assert!(check, "the benchmark's attestation must be valid");

    let mut g = c.benchmark_group("service");
    for n in [1u8, 10] {
        let s = rt.block_on(service(n, &digest));
        let attest_name = if n == 1 {
            "attest_1_registration".to_owned()
        } else {
            format!("attest_{n}_registrations")
        };
        // Server only: challenge and evidence are built outside the timing.
        g.bench_function(&attest_name, |b| {
            b.iter_batched(
                || {
                    let nonce = rt.block_on(challenge(&s));
                    let evidence =
                        sign_evidence(&device, &rng, &claims(&nonce, &digest)).expect("sign");
                    AttestRequest { evidence }
                },
                |req| rt.block_on(s.attest(&req, ip)),
                BatchSize::SmallInput,
            );
        });
        if n == 1 {
            g.bench_function("challenge", |b| b.iter(|| rt.block_on(challenge(&s))));
            g.bench_function("state_lookup_cached", |b| {
                b.iter(|| rt.block_on(s.state(black_box(ACCOUNT))));
            });
            // The bookkeeping every attestation does besides the checks.
            let hour = now().div_euclid(3600);
            g.bench_function("metrics_attestation", |b| {
                b.iter(|| {
                    s.metrics()
                        .attestation(Some(black_box(ACCOUNT)), true, &[], hour, 0.000_1);
                });
            });
            let replay = MemoryReplay::new(50_000_000, 60);
            let mut id = 0u128;
            g.bench_function("replay_first_use", |b| {
                b.iter(|| {
                    id += 1;
                    rt.block_on(replay.first_use(id.to_be_bytes(), now() + 600, now()))
                });
            });
            // One whole attestation as the two sides see it: challenge, the
            // client's evidence (signing included), attest.
            g.bench_function("challenge+evidence+attest", |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let nonce = challenge(&s).await;
                        let evidence =
                            sign_evidence(&device, &rng, &claims(&nonce, &digest)).expect("sign");
                        s.attest(&AttestRequest { evidence }, ip).await
                    })
                });
            });
        }
    }
    g.finish();
}

/// The replay guard at its default hard limit (1,000,000 live nonces): the
/// insert that finds it full purges expired entries under the lock, in the
/// request path. Half the entries are expired here. Only that one insert is
/// timed; filling the guard is not.
fn replay_purge(c: &mut Criterion) {
    const CAPACITY: u128 = 1_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut g = c.benchmark_group("replay");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1));
    g.bench_function("insert_that_drops_full_generations_1m", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let t = now();
                let guard = MemoryReplay::new(1_000_000, 60);
                rt.block_on(async {
                    for i in 0..CAPACITY {
                        let _ = guard.first_use(i.to_be_bytes(), t - 60, t - 120).await;
                    }
                });
                let started = Instant::now();
                let fresh = rt.block_on(guard.first_use(u128::MAX.to_be_bytes(), t + 60, t));
                timed += started.elapsed();
                assert_eq!(
                    fresh,
                    Ok(true),
                    "dropping the old generations must make room"
                );
            }
            timed
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = parts, whole, replay_purge
}
criterion_main!(benches);

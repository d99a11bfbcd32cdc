//! SDK benchmarks (figures in BENCHMARKS.md).
//!
//! - `token/cache_hit_*`: `token_blocking()` and `token()` on a cached token.
//! - `measure/*`: the app digest of this bench binary read from memory, next
//!   to the same digest of its file and raw SHA-256 over the same number of
//!   bytes (peers in one run). The binary carries a 16 MiB block in its
//!   executable segment (`PAD` below): about 20 MB of executable segments.
//! - `attest/fresh_client_work`: a whole fresh attestation with an
//!   in-memory transport: challenge parse, measurement, all signals,
//!   evidence JSON and ES256 signing, token parse — the client's work
//!   without the network.
//! - `signal/*`: each signal check alone.

#![allow(
    missing_docs,
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use genuine_sdk::linux::{LinuxProbe, measure, signals};
use genuine_sdk::transport::{HttpResponse, Transport, TransportError};
use genuine_sdk::{Client, Config, Probe};

/// 16 MiB in the executable segment: with the code of the SDK, ring, serde
/// and criterion it makes this binary's executable segments about 20 MB,
/// the target's executable size. The linker places `.text.*`
/// input sections in `.text` (checked by `exec_bytes` at start). The
/// `link_section` attribute is "unsafe" only because a wrong section could
/// break the program; this one holds plain bytes that are never executed.
#[used]
#[unsafe(link_section = ".text.genuine_bench_pad")]
static PAD: [u8; 16 << 20] = [0xcc; 16 << 20];

/// Answers the two attestation requests from memory.
struct Canned;

impl Transport for Canned {
    fn post_json(&self, url: &str, _body: &[u8]) -> Result<HttpResponse, TransportError> {
        let body = if url.ends_with("/v1/challenge") {
            // 57 bytes of nonce, as the service issues.
            format!(
                r#"{{"nonce":"{}","expires_in":60}}"#,
                genuine_protocol::b64::encode(&[7u8; 57])
            )
        } else {
            // A token of the service's shape and size: claims with `iat` and
            // `exp` (the client caches by them), about 400 characters of
            // payload, an 86-character signature.
            let claims = format!(
                r#"{{"iss":"https://attest.example.com/v1/accounts/default","aud":"api.example.com","sub":"com.example.bench","iat":1767225600,"exp":1767225900,"jti":"{}","did":"{}","arc":"ABCDEFGHIJKLMNOP"}}"#,
                "j".repeat(22),
                "d".repeat(22)
            );
            format!(
                r#"{{"token":"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ.{}.{}","expires_in":300}}"#,
                genuine_protocol::b64::encode(claims.as_bytes()),
                "s".repeat(86)
            )
        };
        Ok(HttpResponse {
            status: 200,
            retry_after: None,
            body: body.into_bytes(),
        })
    }
}

fn client(dir: &std::path::Path) -> Client {
    Client::builder(Config::new(
        "https://attest.example.com",
        "com.example.bench",
        "api.example.com",
        dir,
    ))
    .transport(Arc::new(Canned))
    .build()
    .unwrap()
}

/// Total `p_filesz` of this binary's executable PT_LOAD segments.
fn exec_bytes() -> u64 {
    use object::read::elf::{FileHeader, ProgramHeader};
    let data = std::fs::read("/proc/self/exe").unwrap();
    let header = object::elf::FileHeader64::<object::Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    header
        .program_headers(endian, &*data)
        .unwrap()
        .iter()
        .filter(|p| {
            p.p_type(endian) == object::elf::PT_LOAD
                && p.p_flags(endian).0 & object::elf::PF_X.0 != 0
        })
        .map(|p| p.p_filesz(endian))
        .sum()
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future that is ready at once (a cache hit).
fn poll_ready<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not a cache hit"),
    }
}

fn benches(c: &mut Criterion) {
    black_box(&PAD);
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    client.token_blocking().unwrap();

    let mut g = c.benchmark_group("token");
    g.bench_function("cache_hit_blocking", |b| {
        b.iter(|| black_box(client.token_blocking().unwrap()))
    });
    g.bench_function("cache_hit_async", |b| {
        b.iter(|| black_box(poll_ready(client.token()).unwrap()))
    });
    g.finish();

    let bytes = exec_bytes();
    eprintln!("executable segments of this binary: {bytes} bytes");
    assert!(
        bytes >= 16 << 20,
        "the pad did not land in the executable segment"
    );
    let mut g = c.benchmark_group("measure");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("exe_from_memory", |b| {
        b.iter(|| black_box(measure::executable_digest().unwrap()))
    });
    let file = std::fs::read("/proc/self/exe").unwrap();
    g.bench_function("exe_from_file_bytes_in_memory", |b| {
        b.iter(|| black_box(genuine_protocol::measure::elf_exec_segments_digest(&file).unwrap()))
    });
    let raw = vec![0x5au8; usize::try_from(bytes).unwrap()];
    g.bench_function("sha256_same_bytes", |b| {
        b.iter(|| black_box(ring::digest::digest(&ring::digest::SHA256, &raw)))
    });
    g.bench_function("observe_all", |b| {
        b.iter(|| black_box(LinuxProbe.observe().unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("attest");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("fresh_client_work", |b| {
        b.iter(|| {
            client.invalidate();
            black_box(client.token_blocking().unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("signal");
    g.bench_function("debugger", |b| b.iter(|| black_box(signals::debugger())));
    g.bench_function("root", |b| b.iter(|| black_box(signals::root())));
    g.bench_function("preload", |b| b.iter(|| black_box(signals::preload())));
    g.bench_function("injected", |b| b.iter(|| black_box(signals::injected())));
    g.bench_function("virtualized", |b| {
        b.iter(|| black_box(signals::virtualized()))
    });
    g.bench_function("os_version", |b| {
        b.iter(|| black_box(signals::os_version()))
    });
    g.sample_size(20);
    g.bench_function("code_patched", |b| {
        b.iter(|| black_box(signals::code_patched()))
    });
    g.finish();
}

criterion_group!(sdk, benches);
criterion_main!(sdk);

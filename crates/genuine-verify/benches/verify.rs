//! Token verification per token: `genuine-verify` next to the `jsonwebtoken`
//! crate, on the same tokens and keys, in the same run.
//!
//! Run with `cargo bench -p genuine-verify --bench verify`. Groups:
//! `hs256` (`genuine`, `genuine_shared`, `jsonwebtoken`), `hs256_300b` (the
//! shortest realistic token, 359 bytes: `genuine`, `jsonwebtoken`) and `es256`
//! (`genuine_miss` without cache, `genuine_hit` and `genuine_hit_owned` with
//! the verified-token cache, `jsonwebtoken`, and `raw_ring_p256`: ring's
//! P-256 verification of the same signing input and signature, the baseline
//! for "a cache miss costs no more than 1.2× a raw verification").
//! `hs256_parts` gives reference costs, not a comparison. `layer` drives an
//! axum router with and without the tower layer; `layer_tower` calls a bare
//! tower service with and without the layer (no router, no runtime), on an
//! ES256 token served from the cache and on an HS256 token.
//!
//! The tokens are shaped like the service's (418 bytes HS256, 461 ES256): header
//! `{"alg","typ":"JWT","kid"}`, claims `iss aud sub iat exp jti did arc` in
//! the order `genuine-server` mints them.

// A benchmark's setup either works or the benchmark is meaningless: aborting
// with the message is the right response to a failure here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup aborts on failure"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use data_encoding::BASE64URL_NOPAD;
use genuine_verify::{Expectations, Jwks, Verifier};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::Deserialize;

const ISS: &str = "https://genuine.example.com/v1/accounts/default";
const AUD: &str = "api.example.com";
const NOW: i64 = 1_763_000_000;
const EXP: i64 = 4_102_444_800; // 2100-01-01, far in the future for both peers.
const HS_KID: &str = "Zk3q9LmT0aXw7bRe"; // 16 chars, as the service's `new_kid`.
const ES_KID: &str = "Qp4n8VcY2sHj6uKd";

/// The same claims, for `jsonwebtoken` (owned strings, as `genuine_verify::Claims`).
#[derive(Debug, Deserialize)]
#[allow(dead_code, reason = "fields are decoded, not read")]
struct JwtClaims {
    iss: String,
    aud: String,
    sub: Option<String>,
    iat: Option<i64>,
    exp: i64,
    jti: Option<String>,
    did: Option<String>,
    arc: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// `b64(header).b64(claims)` for `alg` and `kid`.
fn signing_input(alg: &str, kid: &str) -> String {
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
    let claims = format!(
        concat!(
            r#"{{"iss":"{iss}","aud":"{aud}","sub":"com.example.shop","iat":{iat},"#,
            r#""exp":{exp},"jti":"q3V0cZ8mRk2xTgY7wLpN4a","did":"Hs8fK2mQ9vLx3TzR7bWc1e","#,
            r#""arc":"AAEAAgADAAQABQAG"}}"#
        ),
        iss = ISS,
        aud = AUD,
        iat = NOW - 60,
        exp = EXP,
    );
    format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()))
}

fn expectations() -> Expectations {
    Expectations {
        issuer: ISS.into(),
        audiences: vec![AUD.into()],
        leeway_secs: 0,
    }
}

fn jwt_validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.leeway = 0;
    v
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(2500))
}

fn hs256(c: &mut Criterion) {
    let secret = [0x5au8; 32];
    let input = signing_input("HS256", HS_KID);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", b64(tag.as_ref()));
    println!("HS256 token: {} bytes", token.len());

    let genuine = Verifier::from_hs256_secret(HS_KID, &secret, expectations()).unwrap();
    let jwt_key = jsonwebtoken::DecodingKey::from_secret(&secret);
    let jwt_validation = jwt_validation(jsonwebtoken::Algorithm::HS256);

    // Both peers accept the token before anything is timed.
    let claims = genuine.verify(&token, NOW).unwrap();
    assert_eq!(claims.exp, EXP);
    let data = jsonwebtoken::decode::<JwtClaims>(&token, &jwt_key, &jwt_validation).unwrap();
    assert_eq!(data.claims.exp, EXP);

    let mut g = c.benchmark_group("hs256");
    g.bench_function("genuine", |b| {
        b.iter(|| genuine.verify(black_box(&token), black_box(NOW)).unwrap());
    });
    g.bench_function("genuine_shared", |b| {
        b.iter(|| {
            genuine
                .verify_shared(black_box(&token), black_box(NOW))
                .unwrap()
        });
    });
    g.bench_function("jsonwebtoken", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<JwtClaims>(black_box(&token), &jwt_key, &jwt_validation).unwrap()
        });
    });
    g.finish();
}

/// Reference costs next to one uncached HS256 verification (not a peer
/// comparison): the HMAC the verifier computes (the same `ring` call), the
/// strict serde parser that claims not in the compact form go to (Genuine's
/// own claims take a direct reader instead), and copying and dropping the
/// claims (what `verify` costs over `verify_shared` on a cache hit). Where
/// the rest of the time goes is counted in instructions with the
/// `verify_loop` example (see BENCHMARKS.md).
fn hs256_parts(c: &mut Criterion) {
    let secret = [0x5au8; 32];
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let input = signing_input("HS256", HS_KID);
    let tag = hmac::sign(&key, input.as_bytes());
    let token = format!("{input}.{}", b64(tag.as_ref()));
    let mut it = token.split('.');
    let (_, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let payload = BASE64URL_NOPAD.decode(p.as_bytes()).unwrap();
    let sig = BASE64URL_NOPAD.decode(s.as_bytes()).unwrap();
    let claims: genuine_verify::Claims = serde_json::from_slice(&payload).unwrap();
    let claims = std::sync::Arc::new(claims);
    let payload_text = std::str::from_utf8(&payload).unwrap();

    let mut g = c.benchmark_group("hs256_parts");
    g.bench_function("hmac_verify", |b| {
        b.iter(|| hmac::verify(&key, black_box(input.as_bytes()), black_box(&sig)).unwrap());
    });
    g.bench_function("claims_json_strict", |b| {
        b.iter(|| serde_json::from_str::<genuine_verify::Claims>(black_box(payload_text)).unwrap());
    });
    g.bench_function("claims_clone_drop", |b| {
        b.iter(|| black_box(&*claims).clone());
    });
    g.finish();
}

fn es256(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let point = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));

    let input = signing_input("ES256", ES_KID);
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    let sig = sig.as_ref().to_vec(); // r || s, 64 bytes
    let token = format!("{input}.{}", b64(&sig));
    println!("ES256 token: {} bytes", token.len());

    // The JWKS as the service publishes it (parsed, so new optional `Jwk`
    // fields don't break the bench).
    let jwks: Jwks = serde_json::from_value(serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": ES_KID, "alg": "ES256", "use": "sig",
        "x": x, "y": y,
    }]}))
    .unwrap();
    let miss = Verifier::from_jwks(&jwks, expectations()).unwrap();
    let hit = Verifier::from_jwks(&jwks, expectations())
        .unwrap()
        .with_cache(1024);
    let jwt_key = jsonwebtoken::DecodingKey::from_ec_components(&x, &y).unwrap();
    let jwt_validation = jwt_validation(jsonwebtoken::Algorithm::ES256);
    let raw = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point);

    // Every peer accepts the token before anything is timed; this also fills
    // the cache for the hit benchmarks.
    assert_eq!(miss.verify(&token, NOW).unwrap().exp, EXP);
    assert_eq!(hit.verify_shared(&token, NOW).unwrap().exp, EXP);
    let data = jsonwebtoken::decode::<JwtClaims>(&token, &jwt_key, &jwt_validation).unwrap();
    assert_eq!(data.claims.exp, EXP);
    raw.verify(input.as_bytes(), &sig).unwrap();

    let mut g = c.benchmark_group("es256");
    g.bench_function("genuine_miss", |b| {
        b.iter(|| miss.verify(black_box(&token), black_box(NOW)).unwrap());
    });
    g.bench_function("genuine_hit", |b| {
        b.iter(|| {
            hit.verify_shared(black_box(&token), black_box(NOW))
                .unwrap()
        });
    });
    g.bench_function("genuine_hit_owned", |b| {
        b.iter(|| hit.verify(black_box(&token), black_box(NOW)).unwrap());
    });
    g.bench_function("jsonwebtoken", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<JwtClaims>(black_box(&token), &jwt_key, &jwt_validation).unwrap()
        });
    });
    g.bench_function("raw_ring_p256", |b| {
        b.iter(|| {
            raw.verify(black_box(input.as_bytes()), black_box(&sig))
                .unwrap();
        });
    });
    g.finish();
}

/// The target's own size: a ~300-byte HS256 token (short issuer and ids, the
/// same claim names), for both peers.
fn hs256_300b(c: &mut Criterion) {
    const ISS_S: &str = "https://g.example/v1/accounts/a";
    const AUD_S: &str = "api.example";
    let secret = [0x5au8; 32];
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    let claims = format!(
        r#"{{"iss":"{ISS_S}","aud":"{AUD_S}","sub":"com.ex","iat":{iat},"exp":{EXP},"jti":"q3V0cZ8mRk2xTgY7wLpN4a","did":"Hs8fK2mQ9vLx3TzR7bWc1e","arc":"AAEAAgADAAQABQAG"}}"#,
        iat = NOW - 60
    );
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", b64(tag.as_ref()));
    println!("HS256 short token: {} bytes", token.len());
    let expect = Expectations {
        issuer: ISS_S.into(),
        audiences: vec![AUD_S.into()],
        leeway_secs: 0,
    };
    let genuine = Verifier::from_hs256_secret("k1", &secret, expect).unwrap();
    genuine.verify(&token, NOW).unwrap();
    let jwt_key = jsonwebtoken::DecodingKey::from_secret(&secret);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[ISS_S]);
    validation.set_audience(&[AUD_S]);
    validation.leeway = 0;
    jsonwebtoken::decode::<JwtClaims>(&token, &jwt_key, &validation).unwrap();
    let mut g = c.benchmark_group("hs256_300b");
    g.bench_function("genuine", |b| {
        b.iter(|| genuine.verify(black_box(&token), black_box(NOW)).unwrap())
    });
    g.bench_function("jsonwebtoken", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<JwtClaims>(black_box(&token), &jwt_key, &validation).unwrap()
        })
    });
    g.finish();
}

/// The latency the tower layer adds to a request in an axum server: the same
/// router driven in process (no network, so only the layer's work differs),
/// without the layer, and with it in enforce mode on a valid HS256 token and
/// on a request without a token (answered 401 by the layer).
fn layer(c: &mut Criterion) {
    use axum::body::Body;
    use axum::http::Request;
    use genuine_verify::layer::GenuineLayer;
    use std::sync::Arc;
    use tower::ServiceExt;

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let secret = [0x5au8; 32];
    let input = signing_input("HS256", HS_KID);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let hs_token = format!("{input}.{}", b64(tag.as_ref()));
    let hs = Arc::new(Verifier::from_hs256_secret(HS_KID, &secret, expectations()).unwrap());
    let clock: genuine_verify::layer::Clock = Arc::new(|| NOW);
    let route = || axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
    let bare = route();
    let with_hs = route().layer(GenuineLayer::new(hs).clock(clock.clone()));
    let request = |token: Option<&str>| {
        let mut r = Request::get("/hello");
        if let Some(t) = token {
            r = r.header("genuine-token", t);
        }
        r.body(Body::empty()).unwrap()
    };
    let mut g = c.benchmark_group("layer");
    g.bench_function("axum_without_layer", |b| {
        b.iter(|| {
            rt.block_on(bare.clone().oneshot(request(Some(&hs_token))))
                .unwrap()
        })
    });
    g.bench_function("axum_with_layer_hs256", |b| {
        b.iter(|| {
            rt.block_on(with_hs.clone().oneshot(request(Some(&hs_token))))
                .unwrap()
        })
    });
    g.bench_function("axum_with_layer_missing_token_401", |b| {
        b.iter(|| rt.block_on(with_hs.clone().oneshot(request(None))).unwrap())
    });
    g.finish();
}

/// The latency the layer adds around a tower service, without a router or
/// a runtime: a service that answers at once, called bare and wrapped in
/// `GenuineLayer` (enforce mode, the system clock), its future polled once.
/// Requests are built outside the timed part; dropping the request (with the
/// claims the layer put in its extensions) is timed, the response is dropped
/// outside it.
fn layer_tower(c: &mut Criterion) {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use axum::http::{Request, Response};
    use criterion::BatchSize;
    use genuine_verify::layer::GenuineLayer;
    use tower::{Layer, Service};

    /// Calls `svc` once and polls the future once (it is ready at once).
    fn call<S>(svc: &mut S, req: Request<()>) -> Response<&'static str>
    where
        S: Service<Request<()>, Response = Response<&'static str>, Error = Infallible>,
    {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(svc.poll_ready(&mut cx).is_ready());
        match pin!(svc.call(req)).as_mut().poll(&mut cx) {
            Poll::Ready(Ok(res)) => res,
            Poll::Ready(Err(e)) => match e {},
            Poll::Pending => unreachable!("the inner service answers at once"),
        }
    }

    // An ES256 token and a verifier with the cache, as in `es256`.
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let input = signing_input("ES256", ES_KID);
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    let es_token = format!("{input}.{}", b64(sig.as_ref()));
    let jwks: Jwks = serde_json::from_value(serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": ES_KID, "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]}))
    .unwrap();
    let es = Arc::new(
        Verifier::from_jwks(&jwks, expectations())
            .unwrap()
            .with_cache(1024),
    );
    // An HS256 token and a verifier without cache, as in `hs256`.
    let secret = [0x5au8; 32];
    let input = signing_input("HS256", HS_KID);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let hs_token = format!("{input}.{}", b64(tag.as_ref()));
    let hs = Arc::new(Verifier::from_hs256_secret(HS_KID, &secret, expectations()).unwrap());

    let inner =
        tower::service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new("hi")) });
    let mut bare = inner;
    let es_layer = GenuineLayer::new(es.clone());
    let es_stats = es_layer.stats();
    let mut with_es = es_layer.layer(inner);
    let hs_layer = GenuineLayer::new(hs);
    let hs_stats = hs_layer.stats();
    let mut with_hs = hs_layer.layer(inner);
    let request = |token: &str| {
        Request::get("/hello")
            .header("genuine-token", token)
            .body(())
            .unwrap()
    };
    // Both layers accept their token before anything is timed (this also
    // fills the ES256 cache).
    assert_eq!(call(&mut with_es, request(&es_token)).status(), 200);
    assert_eq!(call(&mut with_hs, request(&hs_token)).status(), 200);
    assert_eq!((es_stats.valid(), hs_stats.valid()), (1, 1));

    let mut g = c.benchmark_group("layer_tower");
    g.bench_function("bare_service", |b| {
        b.iter_batched(
            || request(&es_token),
            |req| call(&mut bare, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("with_layer_es256_cache_hit", |b| {
        b.iter_batched(
            || request(&es_token),
            |req| call(&mut with_es, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("with_layer_hs256", |b| {
        b.iter_batched(
            || request(&hs_token),
            |req| call(&mut with_hs, req),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    // Every timed call through a layer was accepted.
    assert_eq!(es_stats.invalid() + hs_stats.invalid(), 0);
    assert_eq!(es_stats.missing() + hs_stats.missing(), 0);
}

criterion_group! {
    name = benches;
    config = config();
    targets = hs256, hs256_300b, es256, hs256_parts, layer, layer_tower
}
criterion_main!(benches);

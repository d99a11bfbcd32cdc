//! Verifies one token in a loop, for instruction counts (not a benchmark).
//!
//! ```sh
//! cargo build --release -p genuine-verify --example verify_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/verify_loop hs256_359 10001
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/verify_loop hs256_359 1
//! ```
//!
//! The difference of the two totals (`Collected`), divided by 10 000, is the
//! instruction count of one verification, without the setup. Tokens:
//! `hs256_359` (the 359-byte HS256 token of the `hs256_300b` bench group),
//! `hs256_418` (the `hs256` group's), `es256_hit` (an ES256 token served from
//! the verified-token cache, `verify_shared`) and `es256_hit_owned` (the same
//! with `verify`, which clones the claims). `layer_es256_hit` and `bare`
//! call a tower service that answers at once, wrapped in `GenuineLayer` (the
//! ES256 token from the cache) or bare, with a new request each time (built
//! in both, so the difference is the layer's work).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a profiling harness aborts on a bad setup"
)]

use std::hint::black_box;

use data_encoding::BASE64URL_NOPAD;
use genuine_verify::{Expectations, Jwks, Verifier};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};

const NOW: i64 = 1_763_000_000;
const EXP: i64 = 4_102_444_800;

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

fn claims(iss: &str, aud: &str, sub: &str) -> String {
    format!(
        concat!(
            r#"{{"iss":"{iss}","aud":"{aud}","sub":"{sub}","iat":{iat},"exp":{exp},"#,
            r#""jti":"q3V0cZ8mRk2xTgY7wLpN4a","did":"Hs8fK2mQ9vLx3TzR7bWc1e","arc":"AAEAAgADAAQABQAG"}}"#
        ),
        iss = iss,
        aud = aud,
        sub = sub,
        iat = NOW - 60,
        exp = EXP,
    )
}

fn expect(iss: &str, aud: &str) -> Expectations {
    Expectations {
        issuer: iss.into(),
        audiences: vec![aud.into()],
        leeway_secs: 0,
    }
}

fn hs256(kid: &str, iss: &str, aud: &str, sub: &str) -> (Verifier, String) {
    let secret = [0x5au8; 32];
    let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims(iss, aud, sub).as_bytes())
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", b64(tag.as_ref()));
    let v = Verifier::from_hs256_secret(kid, &secret, expect(iss, aud)).unwrap();
    (v, token)
}

fn es256(iss: &str, aud: &str) -> (Verifier, String) {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let kid = "Qp4n8VcY2sHj6uKd";
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}"}}"#);
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims(iss, aud, "com.example.shop").as_bytes())
    );
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", b64(sig.as_ref()));
    let jwks: Jwks = serde_json::from_value(serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]}))
    .unwrap();
    let v = Verifier::from_jwks(&jwks, expect(iss, aud))
        .unwrap()
        .with_cache(1024);
    v.verify_shared(&token, NOW).unwrap();
    (v, token)
}

/// Calls a tower service `n` times with a request carrying `token`, through
/// `GenuineLayer` over `verifier` or (without one) bare.
#[cfg(feature = "tower")]
fn serve(verifier: Option<Verifier>, token: &str, n: u64) {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use genuine_verify::layer::GenuineLayer;
    use http::{Request, Response};
    use tower::{Layer, Service};

    fn call<S>(svc: &mut S, req: Request<()>) -> bool
    where
        S: Service<Request<()>, Response = Response<&'static str>, Error = Infallible>,
    {
        let mut cx = Context::from_waker(Waker::noop());
        if svc.poll_ready(&mut cx).is_pending() {
            return false;
        }
        match pin!(svc.call(req)).as_mut().poll(&mut cx) {
            Poll::Ready(Ok(res)) => res.status() == 200,
            Poll::Ready(Err(e)) => match e {},
            Poll::Pending => false,
        }
    }

    let inner =
        tower::service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new("hi")) });
    let request = || {
        Request::get("/hello")
            .header("genuine-token", token)
            .body(())
            .unwrap()
    };
    match verifier {
        Some(v) => {
            let mut svc = GenuineLayer::new(Arc::new(v)).layer(inner);
            for _ in 0..n {
                assert!(call(&mut svc, black_box(request())));
            }
        }
        None => {
            let mut svc = inner;
            for _ in 0..n {
                assert!(call(&mut svc, black_box(request())));
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "hs256_359".into());
    let n: u64 = args.next().map_or(10_001, |a| a.parse().unwrap());
    let (long_iss, long_aud) = (
        "https://genuine.example.com/v1/accounts/default",
        "api.example.com",
    );
    #[cfg(feature = "tower")]
    if let "layer_es256_hit" | "bare" = which.as_str() {
        let (long_iss, long_aud) = (
            "https://genuine.example.com/v1/accounts/default",
            "api.example.com",
        );
        let (v, token) = es256(long_iss, long_aud);
        println!("{which}: {} bytes, {n} requests", token.len());
        serve((which != "bare").then_some(v), &token, n);
        return;
    }
    let (v, token) = match which.as_str() {
        "hs256_359" => hs256(
            "k1",
            "https://g.example/v1/accounts/a",
            "api.example",
            "com.ex",
        ),
        "hs256_418" => hs256("Zk3q9LmT0aXw7bRe", long_iss, long_aud, "com.example.shop"),
        "es256_hit" | "es256_hit_owned" => es256(long_iss, long_aud),
        other => panic!("unknown token {other:?}"),
    };
    println!("{which}: {} bytes, {n} verifications", token.len());
    let owned = which != "es256_hit";
    for _ in 0..n {
        if owned {
            black_box(v.verify(black_box(&token), black_box(NOW)).unwrap());
        } else {
            black_box(v.verify_shared(black_box(&token), black_box(NOW)).unwrap());
        }
    }
}

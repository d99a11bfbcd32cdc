//! An axum API protected by the Genuine tower layer in enforce mode.
//!
//! It listens on `127.0.0.1:3000` and serves one route, `GET /hello`, which
//! answers with the `sub` (app id) and `did` (device id) of the request's
//! verified token. A request without a valid `Genuine-Token` header gets
//! `401` with the body `{}`.
//!
//! Configuration, from the environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `GENUINE_JWKS_FILE` | path of the service's JWKS (ES256 / EdDSA keys), or … |
//! | `GENUINE_HS256_SECRET` + `GENUINE_KID` | … an HS256 secret (base64url, as `genuine api add --alg HS256` prints it) and its key id |
//! | `GENUINE_ISSUER` | the expected `iss`, e.g. `http://127.0.0.1:8080/v1/accounts/default` |
//! | `GENUINE_AUDIENCE` | the expected `aud` (your API domain); several separated by commas |
//! | `GENUINE_BIND_AUTHORIZATION` | if set to `1`, tokens must be bound to the `Authorization` header |
//!
//! # Trying it against a local service
//!
//! ```sh
//! genuine serve &                         # the service on 127.0.0.1:8080
//! genuine api add api.example.com         # an ES256 key set; prints the issuer
//! curl -s http://127.0.0.1:8080/.well-known/jwks.json > jwks.json
//!
//! GENUINE_JWKS_FILE=jwks.json \
//! GENUINE_ISSUER=http://127.0.0.1:8080/v1/accounts/default \
//! GENUINE_AUDIENCE=api.example.com \
//!   cargo run -p genuine-verify --example protected_api &
//!
//! # A valid token: 200 with the app and device ids.
//! curl -H "Genuine-Token: $(genuine token example api.example.com)" http://127.0.0.1:3000/hello
//! # A decoy, no token, or garbage: 401 with {}.
//! curl -i -H "Genuine-Token: $(genuine token example api.example.com --invalid)" http://127.0.0.1:3000/hello
//! curl -i http://127.0.0.1:3000/hello
//! ```
//!
//! With `GENUINE_BIND_AUTHORIZATION=1`, mint the token bound to the header you
//! send: `genuine token example api.example.com --binding 'Bearer abc'` and
//! `curl -H 'Authorization: Bearer abc' -H "Genuine-Token: …" …`.
//!
//! For an HS256 API (`genuine api add api.example.com --alg HS256`), set
//! `GENUINE_HS256_SECRET` to the printed secret and `GENUINE_KID` to the key
//! id instead of `GENUINE_JWKS_FILE`.

use std::error::Error;
use std::sync::Arc;

use axum::http::header::AUTHORIZATION;
use axum::{Extension, Json, Router, routing::get};
use data_encoding::BASE64URL_NOPAD;
use genuine_verify::layer::GenuineLayer;
use genuine_verify::{Claims, Expectations, Jwks, Verifier};
use serde_json::{Value, json};

/// Reads a required environment variable.
fn env(name: &str) -> Result<String, Box<dyn Error>> {
    std::env::var(name).map_err(|_| format!("set {name}").into())
}

/// Builds the verifier from the environment.
fn verifier_from_env() -> Result<Verifier, Box<dyn Error>> {
    let expect = Expectations {
        issuer: env("GENUINE_ISSUER")?,
        audiences: env("GENUINE_AUDIENCE")?
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect(),
        leeway_secs: 5,
    };
    let verifier = if let Ok(path) = std::env::var("GENUINE_JWKS_FILE") {
        let jwks: Jwks = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| format!("{path} is not a JWKS: {e}"))?;
        Verifier::from_jwks(&jwks, expect)?
    } else if let Ok(secret) = std::env::var("GENUINE_HS256_SECRET") {
        let secret = BASE64URL_NOPAD
            .decode(secret.trim().trim_end_matches('=').as_bytes())
            .map_err(|_| "GENUINE_HS256_SECRET is not base64url")?;
        Verifier::from_hs256_secret(&env("GENUINE_KID")?, &secret, expect)?
    } else {
        return Err("set GENUINE_JWKS_FILE, or GENUINE_HS256_SECRET and GENUINE_KID".into());
    };
    Ok(verifier.with_cache(10_000))
}

/// `GET /hello`: only reached with a verified token.
async fn hello(Extension(claims): Extension<Claims>) -> Json<Value> {
    Json(json!({
        "hello": "genuine app",
        "sub": claims.sub,
        "did": claims.did,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let verifier = Arc::new(verifier_from_env()?);
    let mut layer = GenuineLayer::new(verifier).enforce();
    if std::env::var("GENUINE_BIND_AUTHORIZATION").as_deref() == Ok("1") {
        layer = layer.bind_to(vec![AUTHORIZATION]).binding_required(true);
    }
    let app = Router::new().route("/hello", get(hello)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("protected API on http://127.0.0.1:3000/hello (Genuine-Token required)");
    axum::serve(listener, app).await?;
    Ok(())
}

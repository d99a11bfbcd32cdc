//! The tower layer in front of an axum router: enforce and monitor modes,
//! missing versus invalid tokens, binding, claims in the extensions, stats,
//! and logs that never carry the token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt::{Debug, Write as _};
use std::sync::{Arc, Once};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use data_encoding::BASE64URL_NOPAD;
use genuine_verify::layer::{GenuineLayer, Mode, Refusal, Stats};
use genuine_verify::{Claims, Expectations, Jwks, Verifier, VerifyError};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use ring::{digest, hmac};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

const ISS: &str = "https://genuine.example.com/v1/accounts/default";
const AUD: &str = "api.example.com";
const SECRET: [u8; 32] = [7; 32];
const NOW: i64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

fn pay(data: &[u8]) -> String {
    b64(digest::digest(&digest::SHA256, data).as_ref())
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "app.demo",
        "did": "device-1",
        "jti": "jti-1",
        "iat": NOW - 10,
        "exp": NOW + 300,
        "arc": "AAAA",
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn hs256_with(claims: &Value, secret: &[u8]) -> String {
    let header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    let payload = b64(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn hs256(claims: &Value) -> String {
    hs256_with(claims, &SECRET)
}

fn verifier() -> Arc<Verifier> {
    let expect = Expectations {
        issuer: ISS.into(),
        audiences: vec![AUD.into()],
        leeway_secs: 0,
    };
    Arc::new(Verifier::from_hs256_secret("k1", &SECRET, expect).unwrap())
}

/// A layer over the HS256 verifier with the clock fixed at `NOW`.
fn layer() -> GenuineLayer {
    install_capture();
    GenuineLayer::new(verifier()).clock(Arc::new(|| NOW))
}

/// Reached only with verified claims.
async fn whoami(Extension(claims): Extension<Claims>) -> String {
    format!(
        "{} {}",
        claims.sub.unwrap_or_default(),
        claims.did.unwrap_or_default()
    )
}

/// Tells what the layer left in the extensions.
async fn raw(req: Request) -> String {
    let claims = req.extensions().get::<Claims>().map(|c| c.jti.clone());
    let refusal = req.extensions().get::<Refusal>().map(ToString::to_string);
    format!("claims={claims:?} refusal={refusal:?}")
}

fn app(layer: GenuineLayer) -> Router {
    install_capture();
    Router::new()
        .route("/", get(whoami))
        .route("/raw", get(raw))
        .layer(layer)
}

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: String,
}

async fn call(app: &Router, path: &str, headers: &[(&str, &[u8])]) -> Answer {
    let mut req = Request::builder().uri(path);
    for (name, value) in headers {
        req = req.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn with_token(app: &Router, token: &str) -> Answer {
    call(app, "/", &[("genuine-token", token.as_bytes())]).await
}

fn assert_refused(a: &Answer) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body, "{}");
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
}

fn counts(stats: &Stats) -> [u64; 4] {
    [
        stats.valid(),
        stats.missing(),
        stats.invalid(),
        stats.binding_failed(),
    ]
}

#[tokio::test]
async fn enforce_passes_a_valid_token_with_its_claims() {
    let layer = layer();
    let stats = layer.stats();
    let app = app(layer);
    let a = with_token(&app, &hs256(&claims())).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "app.demo device-1");
    // The header name is case-insensitive.
    let a = call(
        &app,
        "/raw",
        &[("Genuine-Token", hs256(&claims()).as_bytes())],
    )
    .await;
    assert_eq!(a.body, r#"claims=Some(Some("jti-1")) refusal=None"#);
    assert_eq!(counts(&stats), [2, 0, 0, 0]);
}

#[tokio::test]
async fn enforce_refuses_a_missing_token_with_an_empty_object() {
    let layer = layer().enforce();
    let stats = layer.stats();
    let app = app(layer);
    assert_refused(&call(&app, "/", &[]).await);
    assert_refused(&call(&app, "/raw", &[("authorization", b"Bearer x")]).await);
    assert_eq!(counts(&stats), [0, 2, 0, 0]);
}

#[tokio::test]
async fn enforce_refuses_invalid_tokens_and_counts_them_apart() {
    let layer = layer();
    let stats = layer.stats();
    let app = app(layer);
    let bad = [
        "garbage".to_owned(),
        String::new(),
        "e30.e30.AAAA".to_owned(),
        hs256_with(&claims(), &[8; 32]),
        hs256(&with(claims(), "aud", json!("other.example.com"))),
        hs256(&with(claims(), "iss", json!("https://evil.example.com"))),
        hs256(&with(claims(), "exp", json!(NOW))),
        hs256(&with(claims(), "exp", json!("soon"))),
    ];
    for token in &bad {
        let a = with_token(&app, token).await;
        assert_refused(&a);
    }
    // Not visible ASCII, and a repeated header: present, so invalid.
    assert_refused(&call(&app, "/", &[("genuine-token", b"tok\xffen")]).await);
    let good = hs256(&claims());
    assert_refused(
        &call(
            &app,
            "/",
            &[
                ("genuine-token", good.as_bytes()),
                ("genuine-token", good.as_bytes()),
            ],
        )
        .await,
    );
    assert_eq!(counts(&stats), [0, 0, bad.len() as u64 + 2, 0]);
}

#[tokio::test]
async fn expiry_follows_the_injected_clock() {
    let token = hs256(&claims()); // exp = NOW + 300
    let at = |now: i64| app(layer().clock(Arc::new(move || now)));
    assert_eq!(
        with_token(&at(NOW + 299), &token).await.status,
        StatusCode::OK
    );
    assert_refused(&with_token(&at(NOW + 300), &token).await);
    assert_refused(&with_token(&at(NOW + 10_000), &token).await);
}

#[tokio::test]
async fn monitor_lets_everything_through_but_only_valid_tokens_carry_claims() {
    let layer = layer().monitor();
    let stats = layer.stats();
    let app = app(layer);

    let a = call(&app, "/raw", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, r#"claims=None refusal=Some("token missing")"#);

    let forged = hs256_with(&claims(), &[9; 32]);
    let a = call(&app, "/raw", &[("genuine-token", forged.as_bytes())]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        r#"claims=None refusal=Some("token signature does not verify")"#
    );

    let a = call(
        &app,
        "/raw",
        &[("genuine-token", hs256(&claims()).as_bytes())],
    )
    .await;
    assert_eq!(a.body, r#"claims=Some(Some("jti-1")) refusal=None"#);

    // A handler that requires the claims still refuses on its own.
    let a = call(&app, "/", &[]).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(counts(&stats), [1, 2, 1, 0]);
}

#[tokio::test]
async fn mode_can_be_set_by_value() {
    let app = app(layer().monitor().mode(Mode::Enforce));
    assert_refused(&call(&app, "/raw", &[]).await);
    let app = self::app(layer().mode(Mode::Monitor));
    assert_eq!(call(&app, "/raw", &[]).await.status, StatusCode::OK);
    assert_eq!(Mode::default(), Mode::Enforce);
}

#[tokio::test]
async fn binding_to_authorization() {
    let layer = layer().bind_to(vec![AUTHORIZATION]);
    let stats = layer.stats();
    let app = app(layer);
    let bound = hs256(&with(claims(), "pay", json!(pay(b"Bearer abc"))));

    let ok = call(
        &app,
        "/",
        &[
            ("genuine-token", bound.as_bytes()),
            ("authorization", b"Bearer abc"),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, "app.demo device-1");

    // Another Authorization, or none: mismatch.
    let other = call(
        &app,
        "/",
        &[
            ("genuine-token", bound.as_bytes()),
            ("authorization", b"Bearer xyz"),
        ],
    )
    .await;
    assert_refused(&other);
    assert_refused(&with_token(&app, &bound).await);

    // Binding not required: a token without pay passes.
    let unbound = hs256(&claims());
    let a = call(
        &app,
        "/",
        &[
            ("genuine-token", unbound.as_bytes()),
            ("authorization", b"Bearer abc"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(counts(&stats), [2, 0, 0, 2]);
}

#[tokio::test]
async fn required_binding_refuses_a_token_without_pay() {
    let layer = layer().bind_to(vec![AUTHORIZATION]).binding_required(true);
    let stats = layer.stats();
    let app = self::app(layer.clone().monitor());
    let unbound = hs256(&claims());
    let headers: &[(&str, &[u8])] = &[
        ("genuine-token", unbound.as_bytes()),
        ("authorization", b"Bearer abc"),
    ];
    // Monitor shows the reason; enforce refuses.
    let a = call(&app, "/raw", headers).await;
    assert_eq!(
        a.body,
        format!(
            "claims=None refusal=Some({:?})",
            VerifyError::BindingMissing.to_string()
        )
    );
    let enforce = self::app(layer);
    assert_refused(&call(&enforce, "/", headers).await);

    let bound = hs256(&with(claims(), "pay", json!(pay(b"Bearer abc"))));
    let a = call(
        &enforce,
        "/",
        &[
            ("genuine-token", bound.as_bytes()),
            ("authorization", b"Bearer abc"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    // Clones of a layer share their counters, even when configured apart.
    assert_eq!(counts(&stats), [1, 0, 0, 2]);
}

#[tokio::test]
async fn binding_concatenates_several_headers_in_order() {
    let request_id = HeaderName::from_static("x-request-id");
    let app = app(layer()
        .bind_to(vec![AUTHORIZATION, request_id])
        .binding_required(true));
    let token = hs256(&with(claims(), "pay", json!(pay(b"Bearer abcreq-1"))));
    let a = call(
        &app,
        "/",
        &[
            ("x-request-id", b"req-1"),
            ("genuine-token", token.as_bytes()),
            ("authorization", b"Bearer abc"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    // The same values in another order hash differently.
    let swapped = hs256(&with(claims(), "pay", json!(pay(b"req-1Bearer abc"))));
    let a = call(
        &app,
        "/",
        &[
            ("x-request-id", b"req-1"),
            ("genuine-token", swapped.as_bytes()),
            ("authorization", b"Bearer abc"),
        ],
    )
    .await;
    assert_refused(&a);
    // A missing header contributes nothing.
    let only_auth = hs256(&with(claims(), "pay", json!(pay(b"Bearer abc"))));
    let a = call(
        &app,
        "/",
        &[
            ("genuine-token", only_auth.as_bytes()),
            ("authorization", b"Bearer abc"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn custom_header_name() {
    let layer = layer().header_name(HeaderName::from_static("x-app-token"));
    let stats = layer.stats();
    let app = app(layer);
    let token = hs256(&claims());
    let a = call(&app, "/", &[("X-App-Token", token.as_bytes())]).await;
    assert_eq!(a.status, StatusCode::OK);
    // The default header is not read any more.
    assert_refused(&with_token(&app, &token).await);
    assert_eq!(counts(&stats), [1, 1, 0, 0]);
}

#[tokio::test]
async fn es256_tokens_from_a_jwks() {
    let rng = SystemRandom::new();
    let key = |rng: &SystemRandom| {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng).unwrap()
    };
    let (published, decoy) = (key(&rng), key(&rng));
    let point = published.public_key().as_ref();
    // As the service publishes it.
    let jwks: Jwks = serde_json::from_value(json!({"keys": [{
        "kty": "EC",
        "crv": "P-256",
        "kid": "es1",
        "alg": "ES256",
        "use": "sig",
        "x": b64(&point[1..33]),
        "y": b64(&point[33..65]),
    }]}))
    .unwrap();
    let expect = Expectations {
        issuer: ISS.into(),
        audiences: vec![AUD.into()],
        leeway_secs: 0,
    };
    let verifier = Verifier::from_jwks(&jwks, expect).unwrap().with_cache(16);
    let sign = |pair: &EcdsaKeyPair| {
        let header = b64(br#"{"alg":"ES256","typ":"JWT","kid":"es1"}"#);
        let input = format!("{header}.{}", b64(claims().to_string().as_bytes()));
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let layer = GenuineLayer::new(Arc::new(verifier)).clock(Arc::new(|| NOW));
    let stats = layer.stats();
    let app = app(layer);
    let token = sign(&published);
    for _ in 0..2 {
        // The second time comes from the verifier's cache.
        let a = with_token(&app, &token).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, "app.demo device-1");
    }
    // A decoy: same header and claims, a key no JWKS publishes.
    assert_refused(&with_token(&app, &sign(&decoy)).await);
    assert_eq!(counts(&stats), [2, 0, 1, 0]);
}

#[tokio::test]
async fn works_on_a_plain_tower_service() {
    let inner = tower::service_fn(|req: axum::http::Request<()>| async move {
        let sub = req
            .extensions()
            .get::<Claims>()
            .and_then(|c| c.sub.clone())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(sub))
    });
    let service = layer().layer(inner);
    let stats = service.stats();
    let req = axum::http::Request::builder()
        .header("genuine-token", hs256(&claims()))
        .body(())
        .unwrap();
    let res = service.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "app.demo");
    let res = service.oneshot(axum::http::Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.body(), "{}");
    assert_eq!(counts(&stats), [1, 1, 0, 0]);
}

thread_local! {
    /// The events logged on this thread while a test captures them.
    static LOGS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// A global `tracing` subscriber that keeps, as text, the events of the
/// threads that capture them. Global (installed before any test logs), so no
/// callsite's interest can be cached as "never" by a test running meanwhile.
struct Capture;

fn install_capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Capture);
    });
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::always()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        LOGS.with_borrow_mut(|logs| {
            if let Some(logs) = logs {
                let mut fields = Fields(format!("{} ", event.metadata().level()));
                event.record(&mut fields);
                logs.push(fields.0);
            }
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn logs_carry_the_reason_never_the_token() {
    install_capture();
    LOGS.set(Some(Vec::new()));

    let forged = hs256_with(&claims(), &[9; 32]);
    let signature = forged.rsplit('.').next().unwrap().to_owned();
    let unbound = hs256(&claims());
    let monitor = app(layer().monitor());
    let enforce = app(layer().bind_to(vec![AUTHORIZATION]).binding_required(true));
    call(&monitor, "/raw", &[("genuine-token", forged.as_bytes())]).await;
    call(&monitor, "/raw", &[]).await;
    call(&enforce, "/raw", &[("genuine-token", forged.as_bytes())]).await;
    call(&enforce, "/raw", &[("genuine-token", unbound.as_bytes())]).await;

    let lines = LOGS.take().unwrap();
    let text = lines.join("\n");
    assert!(
        lines.iter().any(|l| l.starts_with("WARN ")
            && l.contains("genuine token refused (monitor)")
            && l.contains("reason=token signature does not verify")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARN ") && l.contains("reason=token missing")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("DEBUG ")
            && l.contains("reason=token has no binding (pay) but one is required")),
        "{text}"
    );
    for token in [&forged, &unbound] {
        for part in token.split('.') {
            assert!(!text.contains(part), "{part} logged: {text}");
        }
    }
    assert!(!text.contains(&signature));
}

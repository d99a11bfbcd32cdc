//! Bad input: a corpus of malformed requests for every endpoint (not JSON,
//! wrong types, bad base64, `alg: none`, HS256-signed evidence, oversized
//! bodies, deeply nested JSON, bad tokens, bad path and query parameters)
//! gets a 4xx with a stable error code and a JSON `{error, message}` body,
//! never a 5xx and never a panic (protocol §6, interfaces "HTTP API").
//!
//! A second test walks the served OpenAPI document and proves that every
//! documented admin route exists and refuses a request without a token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Attempt, TestDevice, TestService, digest};
use genuine_protocol::b64;
use genuine_protocol::evidence::{EVIDENCE_TYP, sign_compact};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};

const APP: &str = "com.example.shop";
const API: &str = "api.example.com";
/// The service's body limit (`genuine_server::http::MAX_BODY`).
const MAX_BODY: usize = 1024 * 1024;
/// The evidence limit (`genuine_protocol::evidence::MAX_EVIDENCE_LEN`).
const MAX_EVIDENCE: usize = 64 * 1024;
/// Deep enough for any recursive parser to notice.
const DEEP: usize = 10_000;
/// The base64url alphabet, in value order.
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// The stable error codes (crates/genuine-server/src/error.rs).
const NOT_JSON: &str = "body-not-json";
const SHAPE: &str = "invalid-request";
const FIELD: &str = "invalid-field";
const TOO_LARGE: &str = "body-too-large";
const NOT_COMPACT: &str = "evidence-not-compact";
const BASE64: &str = "evidence-bad-base64";
const HEADER_NOT_JSON: &str = "evidence-header-not-json";
const ALG: &str = "evidence-alg-unsupported";
const TYP: &str = "evidence-typ-invalid";
const HEADER: &str = "evidence-header-invalid";
const KEY: &str = "evidence-key-invalid";
const EVIDENCE_TOO_LARGE: &str = "evidence-too-large";
const POLICY: &str = "policy-invalid";
const NOT_FOUND: &str = "not-found";
const METHOD: &str = "method-not-allowed";
const UNAUTHORIZED: &str = "unauthorized";
const FORBIDDEN: &str = "forbidden";
/// Valid JSON nested beyond any sane depth may be called either "not JSON"
/// (too deep) or "wrong shape" (not the expected object): both are stable.
const DEEP_CODES: &str = "body-not-json|invalid-request";

// ---------------------------------------------------------------------------
// Requests, expectations and the runner
// ---------------------------------------------------------------------------

/// Which `Authorization` header a request carries.
#[derive(Debug, Clone)]
enum Auth {
    None,
    /// `Bearer <bootstrap admin token of default>`.
    Admin,
    /// `Bearer <a dev token of default>`.
    Dev,
    /// This exact header value.
    Raw(Vec<u8>),
}

/// One request, built fluently: `req("POST", "/v1/attest").json(..)`.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: String,
    auth: Auth,
    body: Option<Vec<u8>>,
}

fn req(method: &'static str, path: impl Into<String>) -> Req {
    Req {
        method,
        path: path.into(),
        auth: Auth::None,
        body: None,
    }
}

/// An admin-plane request on the `default` account with the admin token.
fn admin(method: &'static str, rest: &str) -> Req {
    req(method, format!("/admin/v1/accounts/default/{rest}")).auth(Auth::Admin)
}

impl Req {
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    fn json(self, v: &Value) -> Self {
        self.body(v.to_string())
    }
}

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This 4xx status and a JSON error body with this code (or one of
    /// several codes separated by `|`).
    Error(u16, &'static str),
    /// This 2xx status: odd but acceptable input, handled without an error.
    Ok(u16),
}

struct Case {
    name: String,
    req: Req,
    expect: Expect,
}

#[derive(Default)]
struct Corpus(Vec<Case>);

impl Corpus {
    fn err(&mut self, name: impl Into<String>, req: Req, status: u16, code: &'static str) {
        let expect = Expect::Error(status, code);
        self.0.push(Case {
            name: name.into(),
            req,
            expect,
        });
    }
    fn ok(&mut self, name: impl Into<String>, req: Req, status: u16) {
        let expect = Expect::Ok(status);
        self.0.push(Case {
            name: name.into(),
            req,
            expect,
        });
    }
    /// Cases against one endpoint: `make` builds its request.
    fn at<F: Fn() -> Req>(&mut self, label: &'static str, make: F) -> Endpoint<'_, F> {
        Endpoint {
            c: self,
            label,
            make,
        }
    }
}

/// Adds cases against one endpoint, each a name, a body and the expectation.
struct Endpoint<'a, F> {
    c: &'a mut Corpus,
    label: &'static str,
    make: F,
}

impl<F: Fn() -> Req> Endpoint<'_, F> {
    fn name(&self, name: &str) -> String {
        format!("{}: {name}", self.label)
    }
    /// Raw body bytes, 400 with `code`.
    fn bytes(&mut self, name: &str, body: impl Into<Vec<u8>>, code: &'static str) {
        self.status(name, body, 400, code);
    }
    /// Raw body bytes, `status` with `code`.
    fn status(&mut self, name: &str, body: impl Into<Vec<u8>>, status: u16, code: &'static str) {
        let r = (self.make)().body(body);
        self.c.err(self.name(name), r, status, code);
    }
    /// A JSON body, 400 with `code`.
    fn bad(&mut self, name: &str, body: Value, code: &'static str) {
        self.err(name, body, 400, code);
    }
    /// A JSON body, `status` with `code`.
    fn err(&mut self, name: &str, body: Value, status: u16, code: &'static str) {
        let r = (self.make)().json(&body);
        self.c.err(self.name(name), r, status, code);
    }
    /// A JSON body that must be accepted with `status`.
    fn ok(&mut self, name: &str, body: Value, status: u16) {
        let r = (self.make)().json(&body);
        self.c.ok(self.name(name), r, status);
    }
    /// `{"evidence": ev}`, 400 with `code`.
    fn evidence(&mut self, name: &str, ev: &str, code: &'static str) {
        self.bad(name, json!({ "evidence": ev }), code);
    }
    /// `{"evidence": ev}` that is well-formed: 200 with a (decoy) token.
    fn decoy(&mut self, name: &str, ev: &str) {
        self.ok(name, json!({ "evidence": ev }), 200);
    }
}

/// Tokens the corpus refers to.
struct Tokens {
    admin: String,
    dev: String,
}

/// Status, `Content-Type` and body of an answer.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn send(svc: &TestService, tokens: &Tokens, r: &Req) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut rb = svc.http.request(method, format!("{}{}", svc.url, r.path));
    let auth = match &r.auth {
        Auth::None => None,
        Auth::Admin => Some(format!("Bearer {}", tokens.admin).into_bytes()),
        Auth::Dev => Some(format!("Bearer {}", tokens.dev).into_bytes()),
        Auth::Raw(v) => Some(v.clone()),
    };
    if let Some(a) = auth {
        rb = rb.header(AUTHORIZATION, HeaderValue::from_bytes(&a).unwrap());
    }
    if let Some(b) = &r.body {
        rb = rb.header(CONTENT_TYPE, "application/json").body(b.clone());
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| format!("request failed: {e:?}"))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the body failed: {e:?}"))?;
    Ok(Answer {
        status,
        content_type,
        body: body.to_vec(),
    })
}

fn is_kebab(code: &str) -> bool {
    code.split('-').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Checks an answer against an expectation; `Err` says what is wrong.
fn check(a: &Answer, expect: Expect) -> Result<(), String> {
    let shown: String = String::from_utf8_lossy(&a.body).chars().take(300).collect();
    let status = a.status;
    if status >= 500 {
        return Err(format!("server error {status} {shown}"));
    }
    let (want, codes) = match expect {
        Expect::Ok(want) if status == want => return Ok(()),
        Expect::Ok(want) => return Err(format!("want {want}, got {status} {shown}")),
        Expect::Error(want, codes) => (want, codes),
    };
    if !(400..500).contains(&status) {
        return Err(format!("want {want} {codes}, got {status} {shown}"));
    }
    if !a.content_type.starts_with("application/json") {
        let ct = &a.content_type;
        return Err(format!(
            "error body is not JSON (content-type {ct:?}): {status} {shown}"
        ));
    }
    let v: Value = serde_json::from_slice(&a.body)
        .map_err(|e| format!("error body does not parse ({e}): {status} {shown}"))?;
    let (Some(code), Some(message)) = (v["error"].as_str(), v["message"].as_str()) else {
        return Err(format!(
            "error body lacks string error and message: {status} {v}"
        ));
    };
    if !is_kebab(code) || message.is_empty() {
        return Err(format!(
            "error code not kebab-case or empty message: {status} {v}"
        ));
    }
    if status != want || !codes.split('|').any(|c| c == code) {
        return Err(format!("want {want} {codes}, got {status} {v}"));
    }
    Ok(())
}

/// Sends every case; returns the failures, one line each.
async fn run(svc: &TestService, tokens: &Tokens, corpus: &Corpus) -> Vec<String> {
    let mut failures = Vec::new();
    for c in &corpus.0 {
        let outcome = match send(svc, tokens, &c.req).await {
            Ok(a) => check(&a, c.expect),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            let path: String = c.req.path.chars().take(100).collect();
            failures.push(format!("{} {path} [{}]: {e}", c.req.method, c.name));
        }
    }
    failures
}

// ---------------------------------------------------------------------------
// Evidence builders
// ---------------------------------------------------------------------------

/// Builds evidence (valid structure or not) signed by a real device key.
struct Forge {
    dev: TestDevice,
    jwk: Value,
}

/// A payload naming the service's account, app and API (structural cases
/// never get as far as reading it).
fn payload() -> Vec<u8> {
    let p = json!({"nonce": "AAAA", "account": "default", "app_id": APP, "api": API});
    p.to_string().into_bytes()
}

impl Forge {
    fn new() -> Self {
        let dev = TestDevice::new();
        let jwk = serde_json::to_value(dev.key.public_key().to_jwk()).unwrap();
        Self { dev, jwk }
    }

    /// The well-formed header.
    fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": EVIDENCE_TYP, "jwk": self.jwk})
    }

    /// Arbitrary header and payload bytes, ES256-signed by the device key.
    fn sign(&self, header: &[u8], payload: &[u8]) -> String {
        sign_compact(&self.dev.key, &self.dev.rng, header, payload).unwrap()
    }

    /// The well-formed header over `payload`.
    fn good_with_payload(&self, payload: &[u8]) -> String {
        self.sign(self.header().to_string().as_bytes(), payload)
    }

    /// Arbitrary header bytes over [`payload`].
    fn raw_header(&self, header: &[u8]) -> String {
        self.sign(header, &payload())
    }

    fn header_with(&self, f: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut h = self.header();
        f(h.as_object_mut().unwrap());
        self.raw_header(h.to_string().as_bytes())
    }

    /// The well-formed header with member `k` set to `v`.
    fn set(&self, k: &str, v: Value) -> String {
        self.header_with(|h| _ = h.insert(k.into(), v))
    }

    /// The well-formed header without member `k`.
    fn without(&self, k: &str) -> String {
        self.header_with(|h| _ = h.remove(k))
    }

    /// The well-formed header with `jwk` member `k` set to `v`.
    fn jwk_set(&self, k: &str, v: Value) -> String {
        self.jwk_with(&[(k, v)])
    }

    /// The well-formed header with several `jwk` members set.
    fn jwk_with(&self, members: &[(&str, Value)]) -> String {
        self.header_with(|h| {
            let jwk = h.get_mut("jwk").unwrap().as_object_mut().unwrap();
            for (k, v) in members {
                jwk.insert((*k).into(), v.clone());
            }
        })
    }

    /// The well-formed header without `jwk` member `k`.
    fn jwk_without(&self, k: &str) -> String {
        self.header_with(|h| _ = h.get_mut("jwk").unwrap().as_object_mut().unwrap().remove(k))
    }

    /// Evidence whose three parts all end in a character carrying unused
    /// bits (encoded length 2 mod 4), so non-canonical forms can be made.
    fn with_trailing_bits(&self) -> String {
        let pad = |mut b: Vec<u8>| {
            while b.len() % 3 != 1 {
                b.push(b' '); // JSON allows trailing whitespace
            }
            b
        };
        let ev = self.sign(
            &pad(self.header().to_string().into_bytes()),
            &pad(payload()),
        );
        assert!(ev.split('.').all(|p| p.len() % 4 == 2), "{ev}");
        ev
    }
}

/// Replaces part `i` (0 header, 1 payload, 2 signature) of a compact JWS.
fn with_part(ev: &str, i: usize, f: impl FnOnce(&str) -> String) -> String {
    let mut parts: Vec<String> = ev.split('.').map(str::to_owned).collect();
    parts[i] = f(&parts[i]);
    parts.join(".")
}

/// Sets the lowest (always unused) bit of the last character: the same bytes
/// to a lenient decoder, a non-canonical encoding to a strict one.
fn non_canonical(part: &str) -> String {
    assert!(matches!(part.len() % 4, 2 | 3), "{part}");
    let last = *part.as_bytes().last().unwrap();
    let idx = B64URL.iter().position(|&c| c == last).unwrap();
    assert_eq!(idx & 1, 0, "canonical encodings have zero unused bits");
    format!("{}{}", &part[..part.len() - 1], char::from(B64URL[idx | 1]))
}

/// A compact JWS with an HMAC-SHA256 signature.
fn hs256(secret: &[u8], header: &Value, payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(payload)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64::encode(tag.as_ref()))
}

/// A compact JWS with an empty signature, as `alg: none` has.
fn unsigned(header: &Value, payload: &[u8]) -> String {
    format!(
        "{}.{}.",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(payload)
    )
}

fn nested_array(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_object(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

// ---------------------------------------------------------------------------
// The corpus, per endpoint. One case a line, so these functions are not
// reformatted (rustfmt would spread every call over five lines).
// ---------------------------------------------------------------------------

#[rustfmt::skip]
fn attest_body_corpus(c: &mut Corpus, good: &str) {
    let mut e = c.at("attest body", || req("POST", "/v1/attest"));
    e.bytes("empty", "", NOT_JSON);
    e.bytes("whitespace only", "  \n ", NOT_JSON);
    e.bytes("form-encoded", "evidence=a.b.c", NOT_JSON);
    e.bytes("truncated", r#"{"evidence": "a.b"#, NOT_JSON);
    e.bytes("trailing garbage", r#"{"evidence": "a.b.c"} x"#, NOT_JSON);
    e.bytes("two documents", r#"{"evidence": "a.b.c"}{}"#, NOT_JSON);
    e.bytes("byte order mark", b"\xef\xbb\xbf{\"evidence\": \"a.b.c\"}".to_vec(), NOT_JSON);
    e.bytes("invalid UTF-8 in a string", b"{\"evidence\": \"\xff\xfe.a.b\"}".to_vec(), NOT_JSON);
    e.bytes("invalid UTF-8 outside strings", b"\xc3\x28".to_vec(), NOT_JSON);
    e.bytes("lone high surrogate escape", r#"{"evidence": "\ud800"}"#, NOT_JSON);
    e.bytes("lone low surrogate escape", r#"{"evidence": "a\udc00.b.c"}"#, NOT_JSON);
    e.bytes("raw NUL in a string", b"{\"evidence\": \"a\0.b.c\"}".to_vec(), NOT_JSON);
    e.bytes("single quotes", "{'evidence': 'a.b.c'}", NOT_JSON);
    e.bytes("null", "null", SHAPE);
    e.bytes("empty array", "[]", SHAPE);
    e.bytes("a number", "5", SHAPE);
    e.bytes("a bare string", format!("{good:?}"), SHAPE);
    e.bytes("an array holding the evidence", format!("[{good:?}]"), SHAPE);
    e.bytes("missing evidence", "{}", SHAPE);
    e.bytes("evidence a number", r#"{"evidence": 5}"#, SHAPE);
    e.bytes("evidence null", r#"{"evidence": null}"#, SHAPE);
    e.bytes("evidence true", r#"{"evidence": true}"#, SHAPE);
    e.bytes("evidence an array", r#"{"evidence": ["a", "b", "c"]}"#, SHAPE);
    e.bytes("evidence an object", r#"{"evidence": {"a": 1}}"#, SHAPE);
    e.bytes("extra field", r#"{"evidence": "a.b.c", "debug": true}"#, SHAPE);
    e.bytes("duplicate field", r#"{"evidence": "a.b.c", "evidence": "d.e.f"}"#, SHAPE);
    e.bytes("misspelled field", r#"{"Evidence": "a.b.c"}"#, SHAPE);
    e.bytes("10 000 nested arrays", nested_array(DEEP), DEEP_CODES);
    e.bytes("10 000 unclosed arrays", "[".repeat(DEEP), DEEP_CODES);
    e.bytes("10 000 nested objects", nested_object(DEEP), DEEP_CODES);
    e.bytes("evidence 10 000 arrays deep", format!(r#"{{"evidence": {}}}"#, nested_array(DEEP)), DEEP_CODES);
    e.status("over 1 MiB of spaces", vec![b' '; MAX_BODY + 1], 413, TOO_LARGE);
    let long = json!({ "evidence": "a".repeat(MAX_BODY) }).to_string();
    e.status("over 1 MiB in one evidence string", long, 413, TOO_LARGE);
}

#[rustfmt::skip]
fn attest_evidence_corpus(c: &mut Corpus, f: &Forge, good: &str) {
    let mut e = c.at("evidence", || req("POST", "/v1/attest"));
    e.evidence("empty", "", NOT_COMPACT);
    e.evidence("one part", "abc", NOT_COMPACT);
    e.evidence("two parts", "abc.def", NOT_COMPACT);
    e.evidence("four parts", &format!("{good}.abc"), NOT_COMPACT);
    e.evidence("five parts, as a JWE has", &format!("{good}.a.b"), NOT_COMPACT);
    e.evidence("five empty parts", "....", NOT_COMPACT);
    e.evidence("64 KiB without dots", &"a".repeat(MAX_EVIDENCE), NOT_COMPACT);
    e.evidence("over 64 KiB without dots", &"a".repeat(MAX_EVIDENCE + 1), EVIDENCE_TOO_LARGE);
    let big = f.good_with_payload(&vec![b' '; MAX_EVIDENCE]);
    e.evidence("over 64 KiB, validly signed", &big, EVIDENCE_TOO_LARGE);
    e.evidence("three empty parts", "..", HEADER_NOT_JSON);
    e.evidence("non-ASCII characters", "é.é.é", BASE64);
    e.evidence("leading space", &format!(" {good}"), BASE64);
    e.evidence("newline inside", &with_part(good, 1, |p| format!("{}\n{}", &p[..4], &p[4..])), BASE64);

    // Bad base64 in each part. The fixture's parts have unused bits to flip.
    let tb = f.with_trailing_bits();
    for (i, part) in ["header", "payload", "signature"].into_iter().enumerate() {
        let mut bad = |what: &str, g: &dyn Fn(&str) -> String| {
            e.evidence(&format!("{part} {what}"), &with_part(&tb, i, g), BASE64);
        };
        bad("with = padding", &|p| format!("{p}=="));
        bad("in the +/ alphabet", &|p| format!("+/{}", &p[2..]));
        bad("with non-canonical unused bits", &non_canonical);
        bad("of an impossible length", &|p| format!("{p}AAA"));
        bad("with a percent sign", &|p| format!("%{}", &p[1..]));
    }
    e.decoy("control: the unused-bits fixture as it is", &tb);
}

#[rustfmt::skip]
fn attest_header_corpus(c: &mut Corpus, f: &Forge) {
    let mut e = c.at("evidence header", || req("POST", "/v1/attest"));
    let jwk = &f.jwk;
    let typ = EVIDENCE_TYP;

    e.evidence("not JSON", &f.raw_header(b"not json"), HEADER_NOT_JSON);
    e.evidence("empty", &f.raw_header(b""), HEADER_NOT_JSON);
    e.evidence("a JSON array", &f.raw_header(br#"["ES256"]"#), HEADER_NOT_JSON);
    e.evidence("a JSON string", &f.raw_header(br#""ES256""#), HEADER_NOT_JSON);
    e.evidence("JSON null", &f.raw_header(b"null"), HEADER_NOT_JSON);
    e.evidence("invalid UTF-8", &f.raw_header(b"{\"alg\":\"ES256\xff\"}"), HEADER_NOT_JSON);
    e.evidence("a lone surrogate", &f.raw_header(br#"{"alg":"\ud800"}"#), HEADER_NOT_JSON);
    let deep = format!(r#"{{"alg":"ES256","typ":"{typ}","jwk":{jwk},"x":{}}}"#, nested_array(DEEP));
    e.evidence("10 000 arrays deep", &f.raw_header(deep.as_bytes()), HEADER_NOT_JSON);

    // alg: only ES256, by exact string.
    e.evidence("alg none", &f.set("alg", json!("none")), ALG);
    let none = json!({"alg": "none", "typ": typ, "jwk": jwk});
    e.evidence("alg none, empty signature", &unsigned(&none, &payload()), ALG);
    e.evidence("alg None", &f.set("alg", json!("None")), ALG);
    let hs = json!({"alg": "HS256", "typ": typ, "jwk": jwk});
    let sec1 = f.dev.key.public_key().sec1().to_vec();
    e.evidence("alg HS256, HMAC keyed with the public key", &hs256(&sec1, &hs, &payload()), ALG);
    let jwk_text = jwk.to_string().into_bytes();
    e.evidence("alg HS256, HMAC keyed with the JWK", &hs256(&jwk_text, &hs, &payload()), ALG);
    let plain = json!({"alg": "HS256", "typ": "JWT"});
    e.evidence("alg HS256, a plain JWT", &hs256(b"secret", &plain, &payload()), ALG);
    e.evidence("alg missing", &f.without("alg"), ALG);
    e.evidence("alg null", &f.set("alg", Value::Null), ALG);
    e.evidence("alg a number", &f.set("alg", json!(256)), ALG);
    e.evidence("alg an array", &f.set("alg", json!(["ES256"])), ALG);
    e.evidence("alg lower case", &f.set("alg", json!("es256")), ALG);
    e.evidence("alg ES384", &f.set("alg", json!("ES384")), ALG);
    e.evidence("alg RS256", &f.set("alg", json!("RS256")), ALG);
    e.evidence("alg EdDSA", &f.set("alg", json!("EdDSA")), ALG);
    e.evidence("alg with a NUL", &f.set("alg", json!("ES256\u{0}")), ALG);
    let dup = format!(r#"{{"alg":"ES256","alg":"none","typ":"{typ}","jwk":{jwk}}}"#);
    e.evidence("alg twice, none last", &f.raw_header(dup.as_bytes()), ALG);
    let dup = format!(r#"{{"alg":"none","alg":"ES256","typ":"{typ}","jwk":{jwk}}}"#);
    e.evidence("alg twice, none first", &f.raw_header(dup.as_bytes()), HEADER);

    // typ.
    e.evidence("typ JWT", &f.set("typ", json!("JWT")), TYP);
    e.evidence("typ upper case", &f.set("typ", json!(typ.to_uppercase())), TYP);
    e.evidence("typ empty", &f.set("typ", json!("")), TYP);
    e.evidence("typ missing", &f.without("typ"), HEADER);
    e.evidence("typ a number", &f.set("typ", json!(1)), HEADER);

    // Members that would say where to find a key, or change the processing.
    e.evidence("crit", &f.set("crit", json!(["exp"])), HEADER);
    e.evidence("jku", &f.set("jku", json!("https://evil.example/jwks.json")), HEADER);
    e.evidence("x5u", &f.set("x5u", json!("https://evil.example/cert.pem")), HEADER);
    e.evidence("x5c", &f.set("x5c", json!(["MIIB"])), HEADER);
    e.evidence("kid", &f.set("kid", json!("../../etc/passwd")), HEADER);
    e.evidence("b64 false", &f.set("b64", json!(false)), HEADER);
    e.evidence("zip", &f.set("zip", json!("DEF")), HEADER);

    // The jwk.
    e.evidence("jwk missing", &f.without("jwk"), HEADER);
    e.evidence("jwk a string", &f.set("jwk", json!(jwk.to_string())), HEADER);
    e.evidence("jwk null", &f.set("jwk", Value::Null), HEADER);
    e.evidence("jwk with a private d", &f.jwk_set("d", json!(b64::encode(&[7; 32]))), HEADER);
    e.evidence("jwk with a kid", &f.jwk_set("kid", json!("k1")), HEADER);
    e.evidence("jwk without y", &f.jwk_without("y"), HEADER);
    e.evidence("jwk x a number", &f.jwk_set("x", json!(5)), HEADER);
    let p384 = [
        ("crv", json!("P-384")),
        ("x", json!(b64::encode(&[1; 48]))),
        ("y", json!(b64::encode(&[2; 48]))),
    ];
    e.evidence("jwk on P-384", &f.jwk_with(&p384), KEY);
    e.evidence("jwk labelled P-384", &f.jwk_set("crv", json!("P-384")), KEY);
    e.evidence("jwk kty RSA", &f.jwk_set("kty", json!("RSA")), KEY);
    e.evidence("jwk kty OKP", &f.jwk_set("kty", json!("OKP")), KEY);
    e.evidence("jwk with a 31-byte x", &f.jwk_set("x", json!(b64::encode(&[1; 31]))), KEY);
    e.evidence("jwk with a 33-byte y", &f.jwk_set("y", json!(b64::encode(&[1; 33]))), KEY);
    e.evidence("jwk with an empty x", &f.jwk_set("x", json!("")), KEY);
    let x = jwk["x"].as_str().unwrap();
    e.evidence("jwk with a padded x", &f.jwk_set("x", json!(format!("{x}="))), KEY);
    e.evidence("jwk with a non-canonical x", &f.jwk_set("x", json!(non_canonical(x))), KEY);
}

/// Well-formed evidence that fails later is a verdict, not an error: 200
/// with a (decoy) token. These prove the structural checks let it through and
/// that nothing downstream breaks on it.
#[rustfmt::skip]
fn attest_decoy_corpus(c: &mut Corpus, f: &Forge, good: &str) {
    let mut e = c.at("decoy", || req("POST", "/v1/attest"));
    e.decoy("control: well-formed, unknown nonce", good);
    let other = Forge::new().good_with_payload(b"{}");
    let other_sig = other.split('.').nth(2).unwrap();
    e.decoy("another key's signature", &with_part(good, 2, |_| other_sig.to_owned()));
    e.decoy("empty signature", &with_part(good, 2, |_| String::new()));
    e.decoy("1 KiB signature", &with_part(good, 2, |_| b64::encode(&[9; 1024])));
    e.decoy("payload not JSON", &f.good_with_payload(b"not json"));
    e.decoy("payload empty", &f.good_with_payload(b""));
    e.decoy("payload null", &f.good_with_payload(b"null"));
    e.decoy("payload 10 000 arrays deep", &f.good_with_payload(nested_array(DEEP).as_bytes()));
    e.decoy("payload with invalid UTF-8", &f.good_with_payload(b"{\"account\":\"\xff\"}"));
    let long = json!({"account": "a".repeat(40 * 1024), "api": API}).to_string();
    e.decoy("payload with a 40 KiB account name", &f.good_with_payload(long.as_bytes()));
    e.decoy("payload naming no account", &f.good_with_payload(br#"{"account":"nope"}"#));
    let zero = json!(b64::encode(&[0; 32]));
    e.decoy("jwk point not on the curve", &f.jwk_with(&[("x", zero.clone()), ("y", zero)]));
    c.err("GET /v1/attest", req("GET", "/v1/attest"), 405, METHOD);
    c.err("PUT /v1/attest", req("PUT", "/v1/attest").body(good), 405, METHOD);
}

#[rustfmt::skip]
fn challenge_corpus(c: &mut Corpus) {
    let mut e = c.at("challenge", || req("POST", "/v1/challenge"));
    e.bytes("empty body", "", NOT_JSON);
    e.bytes("form-encoded", "account=default&app_id=x", NOT_JSON);
    e.bytes("truncated", r#"{"account": "default""#, NOT_JSON);
    e.bytes("invalid UTF-8", b"{\"account\": \"\xff\", \"app_id\": \"x\"}".to_vec(), NOT_JSON);
    e.bytes("lone surrogate", r#"{"account": "default", "app_id": "\udfff"}"#, NOT_JSON);
    e.bytes("null", "null", SHAPE);
    e.bytes("an array of the two fields", format!(r#"["default", "{APP}"]"#), SHAPE);
    e.bytes("empty object", "{}", SHAPE);
    e.bytes("10 000 nested arrays", nested_array(DEEP), DEEP_CODES);
    e.bytes("10 000 nested objects", nested_object(DEEP), DEEP_CODES);
    e.bad("missing app_id", json!({"account": "default"}), SHAPE);
    e.bad("missing account", json!({"app_id": APP}), SHAPE);
    e.bad("account a number", json!({"account": 1, "app_id": APP}), SHAPE);
    e.bad("app_id an object", json!({"account": "default", "app_id": {}}), SHAPE);
    e.bad("extra field", json!({"account": "default", "app_id": APP, "nonce": "AAAA"}), SHAPE);
    e.bad("empty account", json!({"account": "", "app_id": APP}), FIELD);
    e.bad("empty app_id", json!({"account": "default", "app_id": ""}), FIELD);
    e.bad("NUL in app_id", json!({"account": "default", "app_id": "a\u{0}b"}), FIELD);
    e.bad("newline in account", json!({"account": "default\n", "app_id": APP}), FIELD);
    e.bad("256-byte app_id", json!({"account": "default", "app_id": "a".repeat(256)}), FIELD);
    e.err("unknown account", json!({"account": "nope", "app_id": APP}), 404, "account-unknown");
    let big = json!({"account": "default", "app_id": "a".repeat(MAX_BODY)}).to_string();
    e.status("body over 1 MiB", big, 413, TOO_LARGE);
    c.err("GET /v1/challenge", req("GET", "/v1/challenge"), 405, METHOD);
}

#[rustfmt::skip]
fn public_corpus(c: &mut Corpus) {
    let jwks = |account: &str| req("GET", format!("/v1/accounts/{account}/jwks.json"));
    c.err("jwks of an unknown account", jwks("nope"), 404, "account-unknown");
    c.err("jwks of a blank account", jwks("%20"), 404, "account-unknown");
    c.err("jwks of a 10 KiB account name", jwks(&"a".repeat(10_000)), 404, "account-unknown");
    c.err("jwks with invalid UTF-8 in the path", jwks("%FF"), 400, SHAPE);
    c.err("POST jwks", req("POST", "/v1/accounts/default/jwks.json").body("{}"), 405, METHOD);
    c.err("DELETE /.well-known/jwks.json", req("DELETE", "/.well-known/jwks.json"), 405, METHOD);
    c.err("POST /healthz", req("POST", "/healthz").body("{}"), 405, METHOD);
    for path in [
        "/", "/nope", "/v1", "/v2/attest", "/v1/attest/", "/v1/accounts/default",
        "/v1/accounts/default/jwks", "/admin", "/admin/v1", "/admin/v2/accounts", "/%FF",
        "/admin/v1/openapi.json.bak",
    ] {
        c.err(format!("unknown route {path}"), req("GET", path), 404, NOT_FOUND);
    }
    c.err("unknown admin route, with a token", admin("GET", "nope"), 404, NOT_FOUND);
    c.err("too deep admin route", admin("GET", "apis/a/b/c/d"), 404, NOT_FOUND);
    c.err("empty policy key", admin("PUT", "policy/").json(&json!({"value": true})), 404, NOT_FOUND);
}

#[rustfmt::skip]
fn auth_corpus(c: &mut Corpus) {
    let apis = "/admin/v1/accounts/default/apis";
    let with = |v: &[u8]| req("GET", apis).auth(Auth::Raw(v.to_vec()));
    c.err("no Authorization", req("GET", apis), 401, UNAUTHORIZED);
    c.err("empty Authorization", with(b""), 401, UNAUTHORIZED);
    c.err("Bearer and nothing", with(b"Bearer "), 401, UNAUTHORIZED);
    c.err("Bearer and spaces", with(b"Bearer    "), 401, UNAUTHORIZED);
    c.err("unknown token", with(b"Bearer gat_not-a-real-token"), 401, UNAUTHORIZED);
    c.err("Basic scheme", with(b"Basic YWRtaW46YWRtaW4="), 401, UNAUTHORIZED);
    c.err("token without a scheme", with(b"gat_whatever"), 401, UNAUTHORIZED);
    c.err("token over 256 bytes", with(format!("Bearer {}", "a".repeat(300)).as_bytes()), 401, UNAUTHORIZED);
    c.err("token of 8 KiB", with(format!("Bearer {}", "a".repeat(8 * 1024)).as_bytes()), 401, UNAUTHORIZED);
    c.err("non-ASCII token", with(b"Bearer \xff\xfe"), 401, UNAUTHORIZED);
    c.err("no token on a write with a bad body", req("POST", apis).body("not json"), 401, UNAUTHORIZED);
    let create = req("POST", "/admin/v1/accounts").json(&json!({"name": "x"}));
    c.err("no token on account creation", create, 401, UNAUTHORIZED);

    // Authenticated but not allowed.
    let dev = |method, rest| admin(method, rest).auth(Auth::Dev);
    c.err("dev token adds an API", dev("POST", "apis").json(&json!({"domain": "d.example"})), 403, FORBIDDEN);
    c.err("dev token sets policy", dev("PUT", "policy/reveal_reasons").json(&json!({"value": true})), 403, FORBIDDEN);
    c.err("dev token creates an admin token", dev("POST", "tokens").json(&json!({"role": "admin"})), 403, FORBIDDEN);
    let create = req("POST", "/admin/v1/accounts").auth(Auth::Dev).json(&json!({"name": "x"}));
    c.err("dev token creates an account", create, 403, FORBIDDEN);
    let other = |rest| req("GET", format!("/admin/v1/accounts/other/{rest}")).auth(Auth::Admin);
    c.err("another account's APIs", other("apis"), 403, FORBIDDEN);
    c.err("another account's policy", other("policy"), 403, FORBIDDEN);
}

/// The bad bodies every admin endpoint with a body must refuse.
#[rustfmt::skip]
fn admin_body_corpus(c: &mut Corpus) {
    type Make = fn() -> Req;
    let endpoints: [(&'static str, Make); 8] = [
        ("accounts", || req("POST", "/admin/v1/accounts").auth(Auth::Admin)),
        ("tokens", || admin("POST", "tokens")),
        ("apis", || admin("POST", "apis")),
        ("registrations", || admin("POST", "registrations")),
        ("devices", || admin("PUT", "devices/AAAAAAAAAAAAAAAAAAAAAA")),
        ("policy", || admin("PUT", "policy/reveal_reasons")),
        ("tokens/check", || admin("POST", "tokens/check")),
        ("tokens/example", || admin("POST", "tokens/example")),
    ];
    for (label, make) in endpoints {
        let mut e = c.at(label, make);
        e.bytes("empty body", "", NOT_JSON);
        e.bytes("form-encoded", "name=x", NOT_JSON);
        e.bytes("an open brace", "{", NOT_JSON);
        e.bytes("truncated after a key", r#"{"x"#, NOT_JSON);
        e.bytes("invalid UTF-8 in a key", b"{\"\xff\": 1}".to_vec(), NOT_JSON);
        e.bytes("lone surrogate in a key", r#"{"\udc00": 1}"#, NOT_JSON);
        e.bytes("null", "null", SHAPE);
        e.bytes("empty array", "[]", SHAPE);
        e.bytes("a string", r#""x""#, SHAPE);
        e.bytes("empty object", "{}", SHAPE);
        e.bytes("10 000 nested arrays", nested_array(DEEP), DEEP_CODES);
        e.bytes("10 000 nested objects", nested_object(DEEP), DEEP_CODES);
        e.status("body over 1 MiB", vec![b' '; MAX_BODY + 1], 413, TOO_LARGE);
    }
}

#[rustfmt::skip]
fn admin_field_corpus(c: &mut Corpus) {
    let mut e = c.at("accounts", || req("POST", "/admin/v1/accounts").auth(Auth::Admin));
    e.bad("name a number", json!({"name": 5}), SHAPE);
    e.bad("name null", json!({"name": null}), SHAPE);
    e.bad("an array holding the name", json!(["acme"]), SHAPE);
    e.bad("unknown field", json!({"name": "acme", "plan": "free"}), SHAPE);
    e.bad("empty name", json!({"name": ""}), FIELD);
    e.bad("name with a space", json!({"name": "a b"}), FIELD);
    e.bad("name with a slash", json!({"name": "a/b"}), FIELD);
    e.bad("non-ASCII name", json!({"name": "ümlaut"}), FIELD);
    e.bad("256-byte name", json!({"name": "a".repeat(256)}), FIELD);
    e.err("existing name", json!({"name": "default"}), 409, "conflict");

    let mut e = c.at("tokens", || admin("POST", "tokens"));
    e.bad("unknown role", json!({"role": "root"}), SHAPE);
    e.bad("role upper case", json!({"role": "Admin"}), SHAPE);
    e.bad("role a number", json!({"role": 1}), SHAPE);
    e.bad("role null", json!({"role": null}), SHAPE);
    e.bad("label a number", json!({"role": "dev", "label": 5}), SHAPE);
    e.bad("unknown field", json!({"role": "dev", "account": "other"}), SHAPE);
    // Not JSON, even though its start already names an unknown field.
    e.bytes("truncated after an unknown field", r#"{"name": "#, NOT_JSON);

    let d = "d.example";
    let mut e = c.at("apis", || admin("POST", "apis"));
    e.bad("domain missing", json!({"alg": "ES256"}), SHAPE);
    e.bad("domain a number", json!({"domain": 5}), SHAPE);
    e.bad("alg a number", json!({"domain": d, "alg": 256}), SHAPE);
    e.bad("ttl a string", json!({"domain": d, "ttl": "300"}), SHAPE);
    e.bad("ttl a float", json!({"domain": d, "ttl": 300.5}), SHAPE);
    e.bad("ttl over i64", json!({"domain": d, "ttl": 9_223_372_036_854_775_808_u64}), SHAPE);
    e.bad("unknown field", json!({"domain": d, "kid": "mine"}), SHAPE);
    e.bad("empty domain", json!({"domain": ""}), FIELD);
    e.bad("domain with a slash", json!({"domain": "a/b"}), FIELD);
    e.bad("domain with a space", json!({"domain": "a b"}), FIELD);
    e.bad("256-byte domain", json!({"domain": "a".repeat(256)}), FIELD);
    e.bad("alg none", json!({"domain": d, "alg": "none"}), FIELD);
    e.bad("alg RS256", json!({"domain": d, "alg": "RS256"}), FIELD);
    e.bad("alg lower case", json!({"domain": d, "alg": "es256"}), FIELD);
    e.bad("alg empty", json!({"domain": d, "alg": ""}), FIELD);
    e.bad("ttl 0", json!({"domain": d, "ttl": 0}), FIELD);
    e.bad("ttl 9", json!({"domain": d, "ttl": 9}), FIELD);
    e.bad("ttl negative", json!({"domain": d, "ttl": -300}), FIELD);
    e.bad("ttl 86401", json!({"domain": d, "ttl": 86_401}), FIELD);
    e.bad("ttl i64::MAX", json!({"domain": d, "ttl": i64::MAX}), FIELD);
    e.bad("ttl i64::MIN", json!({"domain": d, "ttl": i64::MIN}), FIELD);
    e.err("existing domain", json!({"domain": API}), 409, "conflict");

    let hex = "ab".repeat(32);
    let reg = |more: Value| merged(json!({"app_id": APP, "digest": hex}), more);
    let mut e = c.at("registrations", || admin("POST", "registrations"));
    e.bad("digest missing", json!({"app_id": APP}), SHAPE);
    e.bad("app_id missing", json!({"digest": hex}), SHAPE);
    e.bad("digest a number", reg(json!({"digest": 5})), SHAPE);
    e.bad("digest an array of bytes", reg(json!({"digest": [1, 2, 3]})), SHAPE);
    e.bad("expire_after_secs negative", reg(json!({"expire_after_secs": -1})), SHAPE);
    e.bad("expires_at a string", reg(json!({"expires_at": "tomorrow"})), SHAPE);
    e.bad("unknown field", reg(json!({"sha256": hex})), SHAPE);
    e.bad("digest not hex", reg(json!({"digest": "zz".repeat(32)})), FIELD);
    e.bad("digest of 63 digits", reg(json!({"digest": &hex[..63]})), FIELD);
    e.bad("digest of 65 digits", reg(json!({"digest": format!("{hex}a")})), FIELD);
    e.bad("digest of 62 digits", reg(json!({"digest": &hex[..62]})), FIELD);
    e.bad("digest with 0x", reg(json!({"digest": format!("0x{}", &hex[2..])})), FIELD);
    e.bad("digest with spaces", reg(json!({"digest": format!(" {} ", &hex[..62])})), FIELD);
    e.bad("digest of 64 non-ASCII bytes", reg(json!({"digest": "é".repeat(32)})), FIELD);
    e.bad("digest empty", reg(json!({"digest": ""})), FIELD);
    e.bad("digest in base64", reg(json!({"digest": b64::encode(&[0xab; 32])})), FIELD);
    e.bad("app_id empty", reg(json!({"app_id": ""})), FIELD);
    e.bad("app_id with a space", reg(json!({"app_id": "a b"})), FIELD);
    e.bad("alg unknown", reg(json!({"alg": "sha1"})), FIELD);
    e.bad("platform with a slash", reg(json!({"platform": "linux/x86"})), FIELD);
    e.bad("version empty", reg(json!({"version": ""})), FIELD);
    e.bad("version with a control character", reg(json!({"version": "1\u{7}"})), FIELD);
    e.bad("version of 256 bytes", reg(json!({"version": "1".repeat(256)})), FIELD);
    e.bad("both expiries", reg(json!({"expire_after_secs": 60, "expires_at": 1})), FIELD);
    // Expiries outside 1970..=9999 are refused (the CLI prints them as dates).
    e.bad("expiring at i64::MIN", reg(json!({"expires_at": i64::MIN})), FIELD);
    e.bad("expiring at i64::MAX", reg(json!({"expires_at": i64::MAX})), FIELD);
    e.bad("expiring after u64::MAX seconds", reg(json!({"expire_after_secs": u64::MAX})), FIELD);
    // Odd but acceptable: an expiry already in the past is stored as expired.
    let odd = |more: Value| merged(reg(json!({"app_id": "com.example.odd"})), more);
    e.ok("expiring at the epoch", odd(json!({"expires_at": 0})), 201);

    // Platform settings: one body shape per kind, each value checked.
    let plat = |kind: &'static str| move || admin("PUT", &format!("apps/{APP}/platform/{kind}"));
    let mut e = c.at("platform apple", plat("apple"));
    e.bad("team_id missing", json!({"bundle_id": "b"}), SHAPE);
    e.bad("team_id a number", json!({"team_id": 1, "bundle_id": "b"}), SHAPE);
    e.bad("unknown field", json!({"team_id": "T", "bundle_id": "b", "x": 1}), SHAPE);
    e.bad("a JSON array", json!([1, 2]), SHAPE);
    e.bad("team_id empty", json!({"team_id": "", "bundle_id": "b"}), FIELD);
    e.bad("team_id with a newline", json!({"team_id": "T\n", "bundle_id": "b"}), FIELD);
    e.bad("bundle_id of 256 bytes", json!({"team_id": "T", "bundle_id": "b".repeat(256)}), FIELD);
    let mut e = c.at("platform android", plat("android"));
    let android = |more: Value| merged(json!({"package": "p", "signing_digest": hex}), more);
    e.bad("signing_digest missing", json!({"package": "p"}), SHAPE);
    e.bad("min_patch_level negative", android(json!({"min_patch_level": -1})), SHAPE);
    e.bad("allow_unlocked a string", android(json!({"allow_unlocked": "yes"})), SHAPE);
    e.bad("signing_digest short", android(json!({"signing_digest": &hex[..62]})), FIELD);
    e.bad("signing_digest base64", android(json!({"signing_digest": b64::encode(&[1; 32])})), FIELD);
    e.bad("min_patch_level YYYYMMDD", android(json!({"min_patch_level": 20240101})), FIELD);
    e.bad("package with a space", android(json!({"package": "a b"})), FIELD);
    let mut e = c.at("platform play", plat("play"));
    let key32 = data_encoding::BASE64.encode(&[7; 32]);
    let play = |more: Value| {
        merged(
            json!({"package": "p", "decryption_key": key32, "verification_key": b64::encode(&[4; 91])}),
            more,
        )
    };
    e.bad("decryption_key missing", json!({"package": "p", "verification_key": "AA"}), SHAPE);
    e.bad("max_age_secs a string", play(json!({"max_age_secs": "5m"})), SHAPE);
    e.bad("unknown field", play(json!({"decryption_keys": "x"})), SHAPE);
    e.bad("decryption_key of 16 bytes", play(json!({"decryption_key": b64::encode(&[1; 16])})), FIELD);
    e.bad("decryption_key not base64", play(json!({"decryption_key": "!!"})), FIELD);
    e.bad("verification_key not an SPKI", play(json!({})), FIELD);
    e.bad("device label lower case", play(json!({"device_labels": ["meets"]})), FIELD);
    e.bad("max_age_secs 0", play(json!({"max_age_secs": 0})), FIELD);
    e.bad("certificate_digest short", play(json!({"certificate_digest": "ab"})), FIELD);
    let mut e = c.at("platform kind", plat("safetynet"));
    e.err("unknown kind", json!({}), 404, NOT_FOUND);

    let did = b64::encode(&[5; 16]);
    let mut e = c.at("devices", || admin("PUT", &format!("devices/{did}")));
    e.bad("action missing", json!({"note": "x"}), SHAPE);
    e.bad("action a bool", json!({"action": true}), SHAPE);
    e.bad("note a number", json!({"action": "block", "note": 5}), SHAPE);
    e.bad("unknown field", json!({"action": "block", "until": 5}), SHAPE);
    e.bad("action deny", json!({"action": "deny"}), FIELD);
    e.bad("action upper case", json!({"action": "BLOCK"}), FIELD);
    e.bad("action clear", json!({"action": "clear"}), FIELD);
    for (name, id) in [
        ("short", "abc".to_owned()),
        ("of 23 characters", format!("{did}A")),
        ("of 21 characters", did[..21].to_owned()),
        ("in the +/ alphabet", format!("+%2F{}", &did[2..])),
        ("with non-canonical unused bits", non_canonical(&did)),
        ("padded", format!("{did}==")),
        ("non-ASCII", "%C3%A9".repeat(11)),
        ("of 10 KiB", "A".repeat(10_000)),
    ] {
        let r = admin("PUT", &format!("devices/{id}")).json(&json!({"action": "block"}));
        c.err(format!("devices: device id {name}"), r, 400, FIELD);
    }
    let r = admin("PUT", "devices/%FF%FE").json(&json!({"action": "block"}));
    c.err("devices: device id of invalid UTF-8", r, 400, SHAPE);

    let mut e = c.at("policy", || admin("PUT", "policy/reject.debugger"));
    e.bad("value missing", json!({}), SHAPE);
    e.bad("unknown field", json!({"value": true, "key": "reveal_reasons"}), SHAPE);
    e.bad("value yes", json!({"value": "yes"}), POLICY);
    e.bad("value TRUE", json!({"value": "TRUE"}), POLICY);
    e.bad("value 1", json!({"value": 1}), POLICY);
    e.bad("value null", json!({"value": null}), POLICY);
    e.bad("value an object", json!({"value": {"enabled": true}}), POLICY);
    e.bad("value an array", json!({"value": [true]}), POLICY);
    e.bad("value empty", json!({"value": ""}), POLICY);
    // `value` takes any JSON, so here the depth limit itself refuses it.
    e.bytes("value 10 000 arrays deep", format!(r#"{{"value": {}}}"#, nested_array(DEEP)), NOT_JSON);
    e.bytes("value 10 000 objects deep", format!(r#"{{"value": {}}}"#, nested_object(DEEP)), NOT_JSON);
    for key in ["reject.nope", "reject", "reject.debugger.x", "REJECT.DEBUGGER", "%00", "a%2Fb"] {
        let r = admin("PUT", &format!("policy/{key}")).json(&json!({"value": true}));
        c.err(format!("policy: key {key}"), r, 400, POLICY);
    }
    let r = admin("PUT", "policy/%FF%FE").json(&json!({"value": true}));
    c.err("policy: key of invalid UTF-8", r, 400, SHAPE);

    let mut e = c.at("tokens/check", || admin("POST", "tokens/check"));
    e.bad("token a number", json!({"token": 5}), SHAPE);
    e.bad("token null", json!({"token": null}), SHAPE);
    e.bad("api a number", json!({"token": "a.b.c", "api": 5}), SHAPE);
    e.bad("unknown field", json!({"token": "a.b.c", "verbose": true}), SHAPE);
    e.bad("token over 8 KiB", json!({"token": "a".repeat(8 * 1024 + 1)}), FIELD);
    // A bad token is a report, not an error.
    let none = json!({"alg": "none", "kid": "x"});
    let deep = [nested_array(1000), nested_object(600)].map(|p| b64::encode(p.as_bytes()));
    for (name, token) in [
        ("garbage", "garbage".to_owned()),
        ("empty", String::new()),
        ("dots", "....".to_owned()),
        ("header not JSON", format!("{}.{}.", b64::encode(b"nope"), b64::encode(b"{}"))),
        ("deeply nested", format!("{}.{}.AAAA", deep[0], deep[1])),
        ("alg none", unsigned(&none, json!({"aud": API, "arc": "AAAA"}).to_string().as_bytes())),
    ] {
        e.ok(&format!("a {name} token"), json!({ "token": token }), 200);
    }

    let mut e = c.at("tokens/example", || admin("POST", "tokens/example"));
    e.bad("api missing", json!({"invalid": true}), SHAPE);
    e.bad("invalid a string", json!({"api": API, "invalid": "yes"}), SHAPE);
    e.bad("binding a number", json!({"api": API, "binding": 5}), SHAPE);
    e.bad("ttl a string", json!({"api": API, "ttl": "60"}), SHAPE);
    e.bad("unknown field", json!({"api": API, "sub": "me"}), SHAPE);
    e.err("unknown API", json!({"api": "nope.example"}), 404, NOT_FOUND);
    e.bad("ttl 0", json!({"api": API, "ttl": 0}), FIELD);
    e.bad("ttl negative", json!({"api": API, "ttl": -1}), FIELD);
    e.bad("ttl 86401", json!({"api": API, "ttl": 86_401}), FIELD);
    e.bad("ttl i64::MAX", json!({"api": API, "ttl": i64::MAX}), FIELD);
    e.bad("ttl i64::MIN", json!({"api": API, "ttl": i64::MIN}), FIELD);
}

/// The object `base` with the members of `more` added or replaced.
fn merged(mut base: Value, more: Value) -> Value {
    let Value::Object(more) = more else {
        panic!("not an object: {more}")
    };
    base.as_object_mut().unwrap().extend(more);
    base
}

#[rustfmt::skip]
fn admin_path_query_corpus(c: &mut Corpus) {
    // Path parameters naming nothing.
    c.err("remove an unknown API", admin("DELETE", "apis/nope.example"), 404, NOT_FOUND);
    c.err("remove an API named a/b", admin("DELETE", "apis/a%2Fb"), 404, NOT_FOUND);
    c.err("rotate an unknown API", admin("POST", "apis/nope.example/rotate"), 404, NOT_FOUND);
    c.err("remove an unknown registration", admin("DELETE", "registrations/reg_nope"), 404, NOT_FOUND);
    let r = admin("DELETE", &format!("registrations/{}", "r".repeat(10_000)));
    c.err("remove a registration with a 10 KiB id", r, 404, NOT_FOUND);
    let r = admin("DELETE", &format!("devices/{}", b64::encode(&[5; 16])));
    c.err("clear an unknown device", r, 404, NOT_FOUND);
    c.err("clear a malformed device id", admin("DELETE", "devices/not-an-id"), 404, NOT_FOUND);
    let r = req("GET", "/admin/v1/accounts/%FF/apis").auth(Auth::Admin);
    c.err("account of invalid UTF-8", r, 400, SHAPE);
    let r = admin("POST", &format!("apis/{API}/rotate")).body("\u{0}garbage");
    c.ok("rotate ignores a junk body", r, 200);

    // Query parameters.
    for q in [
        "since=abc", "since=", "since=1.5", "since=1e3", "since=0x10",
        "since=99999999999999999999", "since=1&since=2",
    ] {
        c.err(format!("metrics?{q}"), admin("GET", &format!("metrics?{q}")), 400, SHAPE);
    }
    let r = admin("GET", "registrations?app_id=a&app_id=b");
    c.err("registrations with app_id twice", r, 400, SHAPE);
    // Odd but acceptable: handled, no error.
    for q in [
        "since=-1", "since=0", "since=9223372036854775807", "since=-9223372036854775808",
        "unknown=1",
    ] {
        c.ok(format!("metrics?{q}"), admin("GET", &format!("metrics?{q}")), 200);
    }
    c.ok("registrations with app_id of invalid UTF-8", admin("GET", "registrations?app_id=%FF"), 200);
    let r = admin("GET", &format!("registrations?app_id={}", "a".repeat(10_000)));
    c.ok("registrations with a 10 KiB app_id", r, 200);

    // Wrong methods.
    c.err("GET /admin/v1/accounts", req("GET", "/admin/v1/accounts").auth(Auth::Admin), 405, METHOD);
    c.err("PATCH policy", admin("PATCH", "policy").json(&json!({})), 405, METHOD);
    c.err("DELETE apis", admin("DELETE", "apis"), 405, METHOD);
    c.err("GET tokens/check", admin("GET", "tokens/check"), 405, METHOD);
    c.err("POST openapi.json", req("POST", "/admin/v1/openapi.json").body("{}"), 405, METHOD);
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_get_a_stable_4xx_and_never_a_5xx() {
    let svc = TestService::start().await;
    svc.add_api(API, "ES256", 300).await;
    svc.register(APP, &digest(1)).await;
    let dev = svc
        .admin(
            "POST",
            "tokens",
            Some(json!({"role": "dev", "label": "bad-input"})),
        )
        .await;
    let tokens = Tokens {
        admin: svc.admin.clone(),
        dev: dev["token"].as_str().unwrap().to_owned(),
    };

    let f = Forge::new();
    let good = f.good_with_payload(&payload());
    let mut corpus = Corpus::default();
    attest_body_corpus(&mut corpus, &good);
    attest_evidence_corpus(&mut corpus, &f, &good);
    attest_header_corpus(&mut corpus, &f);
    attest_decoy_corpus(&mut corpus, &f, &good);
    challenge_corpus(&mut corpus);
    public_corpus(&mut corpus);
    auth_corpus(&mut corpus);
    admin_body_corpus(&mut corpus);
    admin_field_corpus(&mut corpus);
    admin_path_query_corpus(&mut corpus);
    let total = corpus.0.len();
    let failures = run(&svc, &tokens, &corpus).await;
    assert!(
        failures.is_empty(),
        "{} of {total} bad-input cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} bad-input cases passed");

    // Still alive and still working after the whole corpus.
    let (status, v) = svc.request("GET", "/healthz", None, None).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = svc.request("GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{v}");
    assert!(!svc.challenge("default", APP).await.is_empty());
    let resp = TestDevice::new()
        .attest(&svc, &Attempt::new(APP, API, digest(1)))
        .await;
    assert!(resp.rejection.is_none());
    assert_eq!(svc.check(&resp.token).await["valid"], true);
    svc.stop().await;
}

/// Methods an OpenAPI path item may hold, as the document and as HTTP spell them.
const METHODS: [(&str, &str); 5] = [
    ("get", "GET"),
    ("post", "POST"),
    ("put", "PUT"),
    ("delete", "DELETE"),
    ("patch", "PATCH"),
];

/// A plausible value for an OpenAPI path parameter.
fn param_value(name: &str) -> String {
    match name {
        "account" => "default".into(),
        "domain" => API.into(),
        "id" => "reg_missing".into(),
        "device_id" => b64::encode(&[5; 16]),
        "key" => "reject.debugger".into(),
        other => format!("x-{other}"),
    }
}

/// `/a/{b}/c` with every `{name}` replaced by [`param_value`].
fn fill(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(&param_value(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_documented_admin_route_exists_and_needs_a_token() {
    let svc = TestService::start().await;
    let tokens = Tokens {
        admin: svc.admin.clone(),
        dev: String::new(),
    };
    let (status, doc) = svc
        .request("GET", "/admin/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200, "{doc}");
    let paths = doc["paths"].as_object().expect("paths");

    let mut corpus = Corpus::default();
    let mut documented = 0;
    for (template, item) in paths {
        assert!(template.starts_with("/admin/v1/"), "{template}");
        let path = fill(template);
        let item = item.as_object().expect("path item");
        for (method, m) in METHODS {
            let r = || {
                let r = req(m, path.clone());
                if matches!(m, "POST" | "PUT") {
                    r.body("{}")
                } else {
                    r
                }
            };
            if item.contains_key(method) {
                // Documented: routed, and refused without (or with a wrong) token.
                documented += 1;
                corpus.err(format!("{m} {template}: no token"), r(), 401, UNAUTHORIZED);
                let wrong = r().auth(Auth::Raw(b"Bearer gat_wrong".to_vec()));
                corpus.err(
                    format!("{m} {template}: wrong token"),
                    wrong,
                    401,
                    UNAUTHORIZED,
                );
            } else {
                // Not documented: not routed either, so the document lists
                // every method of the paths it has.
                corpus.err(format!("{m} {template}: undocumented"), r(), 405, METHOD);
            }
        }
    }
    assert!(documented >= 17, "only {documented} documented operations");
    let failures = run(&svc, &tokens, &corpus).await;
    assert!(
        failures.is_empty(),
        "{} of {} route cases failed:\n{}",
        failures.len(),
        corpus.0.len(),
        failures.join("\n")
    );
    svc.stop().await;
}

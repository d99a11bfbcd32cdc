//! The shared JWT test vectors, run in place from `shared/vectors/jwt/`
//! (beside the repository; see its `PROVENANCE.md`). Nothing is copied.
//!
//! - Wycheproof `json_web_signature_test.json`, `json_web_key_test.json` and
//!   `json_web_crypto_test.json` (the JWE groups are out of scope). Their
//!   payloads are not Genuine claims (`"foo"`, `"Test"`, …), so a token whose
//!   signature verifies is still refused by the claims checks. What is compared
//!   with the label is the *signature-stage* decision: a token "passes" when
//!   [`Verifier::verify`] returns `Ok` or a claims-level refusal
//!   (`BadClaims`, `Expired`, `NotYetValid`, `WrongIssuer`, `WrongAudience`,
//!   `MissingClaim`), which the verifier only reaches after the signature
//!   verified. A case labelled `invalid` must never pass; a `valid` case with
//!   a supported algorithm must pass; a `valid` case with any other algorithm
//!   must be refused. Every deviation is listed in [`WYCHEPROOF_EXCEPTIONS`]
//!   with its reason.
//! - The RFC 7520 cookbook (`jws/`, `curve25519/jws.json`, `rfc7797/`): the
//!   HS256 and EdDSA known answers verify, everything else is refused.
//! - The generated attack corpus under its stated policy: every case gives its
//!   expected outcome, refusals for a reason that fits the attack class.
//!
//! Keys reach the verifier the way an application would hand them over: EC and
//! OKP keys (and any other asymmetric ones) through [`Verifier::from_jwks`],
//! which ignores the types and members it does not support; a lone `oct` key
//! through [`Verifier::from_hs256_secret`], loaded only under the rules
//! `jwks.rs` applies to JWKS keys (`use` absent or `sig`, `alg` absent or
//! `HS256`). A key without `kid` is named `k` (the verifier ignores kid-less
//! JWKS keys; Genuine always publishes one). A keyset of several `oct` keys
//! cannot be held by one [`Verifier`] and refuses every token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use data_encoding::BASE64URL_NOPAD as B64;
use genuine_verify::{Expectations, Jwk, Jwks, MAX_TOKEN_LEN, Verifier, VerifyError};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

/// `shared/` sits beside the repository, locally and in CI.
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors/jwt");

/// The algorithms Genuine supports; a `valid` case with any other is refused.
const SUPPORTED_ALGS: &[&str] = &["ES256", "EdDSA", "HS256"];

/// Expectations for vectors whose payloads are not Genuine claims.
const ISSUER: &str = "https://wycheproof.invalid";
const AUDIENCE: &str = "vectors";
const NOW: i64 = 1_767_225_600;

const SIG: &str = "json_web_signature_test.json";
const KEY: &str = "json_web_key_test.json";
const CRYPTO: &str = "json_web_crypto_test.json";

fn path(rel: &str) -> PathBuf {
    Path::new(VECTORS).join(rel)
}

fn read_json(rel: &str) -> Value {
    let p = path(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); shared/ must be checked out beside the repository",
            p.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn expectations() -> Expectations {
    Expectations {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        leeway_secs: 0,
    }
}

/// The variant's name, for tables and messages.
fn name(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::TooLarge => "TooLarge",
        VerifyError::NotCompact => "NotCompact",
        VerifyError::BadBase64(_) => "BadBase64",
        VerifyError::BadHeader => "BadHeader",
        VerifyError::UnsupportedAlg => "UnsupportedAlg",
        VerifyError::UnknownKey => "UnknownKey",
        VerifyError::AlgMismatch => "AlgMismatch",
        VerifyError::BadSignature => "BadSignature",
        VerifyError::BadClaims(_) => "BadClaims",
        VerifyError::Expired => "Expired",
        VerifyError::NotYetValid => "NotYetValid",
        VerifyError::WrongIssuer => "WrongIssuer",
        VerifyError::WrongAudience => "WrongAudience",
        VerifyError::BindingMissing => "BindingMissing",
        VerifyError::BindingMismatch => "BindingMismatch",
        VerifyError::WrongType => "WrongType",
        VerifyError::MissingClaim(_) => "MissingClaim",
        VerifyError::BadKey(_) => "BadKey",
        VerifyError::MissingKid => "MissingKid",
        VerifyError::IssuedInFuture => "IssuedInFuture",
        VerifyError::LifetimeTooLong => "LifetimeTooLong",
        _ => "Other",
    }
}

/// A refusal the verifier only reaches after the signature verified.
fn claims_level(e: &VerifyError) -> bool {
    matches!(
        e,
        VerifyError::BadClaims(_)
            | VerifyError::Expired
            | VerifyError::NotYetValid
            | VerifyError::WrongIssuer
            | VerifyError::WrongAudience
            | VerifyError::MissingClaim(_)
    )
}

/// What the harness could build from a group's key material.
enum Keys {
    /// Verifiers; a token is accepted if one of them accepts it.
    Verifiers(Vec<Verifier>),
    /// The verifier refused the key material or cannot hold it (why).
    Unloadable(String),
}

impl Keys {
    /// The verdict on `token`. With several verifiers, the refusal reported is
    /// the one from the verifier that got furthest (past key selection).
    fn verify(&self, token: &str, now: i64) -> Result<(), VerifyError> {
        let vs = match self {
            Self::Verifiers(vs) => vs,
            Self::Unloadable(why) => return Err(VerifyError::BadKey(why.clone())),
        };
        let rank = |e: &VerifyError| match e {
            VerifyError::UnknownKey => 0,
            VerifyError::AlgMismatch => 1,
            _ => 2,
        };
        let mut best: Option<VerifyError> = None;
        for v in vs {
            match v.verify(token, now) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if best.as_ref().is_none_or(|b| rank(&e) > rank(b)) {
                        best = Some(e);
                    }
                }
            }
        }
        Err(best.unwrap_or(VerifyError::UnknownKey))
    }

    /// Whether `token` gets past the signature stage.
    fn passes(&self, token: &str, now: i64) -> (bool, Result<(), VerifyError>) {
        let r = self.verify(token, now);
        let passes = match &r {
            Ok(()) => true,
            Err(e) => claims_level(e),
        };
        (passes, r)
    }
}

/// A JWK as the public `Jwk` shape (private and unknown members dropped by
/// serde, as a JWKS fetched by an application would be).
fn to_jwk(v: &Value) -> Result<Jwk, String> {
    let mut v = v.clone();
    if v.get("kid").is_none()
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("kid".into(), "k".into());
    }
    serde_json::from_value(v).map_err(|e| format!("not a JWK: {e}"))
}

/// An `oct` JWK as an HS256 secret, under the rules `jwks.rs` applies.
fn hs_secret(v: &Value) -> Result<(String, Vec<u8>), String> {
    if let Some(u) = v.get("use")
        && u != "sig"
    {
        return Err(format!("oct key with use {u}"));
    }
    if let Some(a) = v.get("alg")
        && a != "HS256"
    {
        return Err(format!("oct key with alg {a}"));
    }
    let k = v
        .get("k")
        .and_then(Value::as_str)
        .ok_or("oct key without k")?;
    let secret = B64.decode(k.as_bytes()).map_err(|e| format!("k: {e}"))?;
    let kid = v.get("kid").and_then(Value::as_str).unwrap_or("k");
    Ok((kid.to_owned(), secret))
}

/// Loads a JWK, a JWK array, or a `{"keys": [...]}` set.
fn load(key: &Value, expect: &Expectations) -> Keys {
    let list: Vec<&Value> = match key {
        Value::Array(a) => a.iter().collect(),
        _ => match key.get("keys") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => vec![key],
        },
    };
    let octs = list
        .iter()
        .filter(|k| k.get("kty") == Some(&json!("oct")))
        .count();
    if octs == list.len() {
        if list.len() != 1 {
            return Keys::Unloadable(format!(
                "{} HMAC keys: a Verifier holds one HS256 secret",
                list.len()
            ));
        }
        return match hs_secret(list[0]) {
            Ok((kid, secret)) => match Verifier::from_hs256_secret(&kid, &secret, expect.clone()) {
                Ok(v) => Keys::Verifiers(vec![v]),
                Err(e) => Keys::Unloadable(e.to_string()),
            },
            Err(why) => Keys::Unloadable(why),
        };
    }
    // The JWKS path; `from_jwks` itself ignores `oct` and unsupported keys.
    let keys = match list.into_iter().map(to_jwk).collect::<Result<Vec<_>, _>>() {
        Ok(keys) => keys,
        Err(why) => return Keys::Unloadable(why),
    };
    match Verifier::from_jwks(&Jwks { keys }, expect.clone()) {
        Ok(v) => Keys::Verifiers(vec![v]),
        Err(e) => Keys::Unloadable(e.to_string()),
    }
}

/// The header's `alg`, read leniently (for classifying a case only).
fn header_alg(token: &str) -> Option<String> {
    let h = token.split('.').next()?;
    let cleaned: String = h
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let bytes = B64.decode(cleaned.as_bytes()).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_owned)
}

fn header_text(token: &str) -> String {
    token
        .split('.')
        .next()
        .and_then(|h| B64.decode(h.as_bytes()).ok())
        .map_or_else(
            || format!("(undecodable: {})", &token[..token.len().min(60)]),
            |b| String::from_utf8_lossy(&b).into_owned(),
        )
}

/// How a listed Wycheproof case deviates from its label.
#[derive(Debug, Clone, Copy)]
enum Deviation {
    /// Labelled `invalid` but byte-identical to a `valid` case: either outcome
    /// is accepted (PROVENANCE.md: "skip / known bad label").
    BadLabel,
    /// Labelled `valid`; this verifier must refuse it, with one of these errors.
    MustRefuse(&'static [&'static str]),
}

/// A Wycheproof case whose expected outcome is not its label.
struct Exception {
    file: &'static str,
    tc_id: u64,
    deviation: Deviation,
    reason: &'static str,
}

/// Every Wycheproof case whose outcome here differs from its label.
const WYCHEPROOF_EXCEPTIONS: &[Exception] = &[
    Exception {
        file: SIG,
        tc_id: 367,
        deviation: Deviation::BadLabel,
        reason: "invalidBase64Padding: byte-identical to valid tcId 357 (C2SP/wycheproof#236)",
    },
    Exception {
        file: SIG,
        tc_id: 370,
        deviation: Deviation::BadLabel,
        reason: "invalidBase64PaddingInPayload: byte-identical to valid tcId 357 (C2SP/wycheproof#236)",
    },
    Exception {
        file: SIG,
        tc_id: 372,
        deviation: Deviation::MustRefuse(&["BadBase64"]),
        reason: "'?' inserted in the header segment: strict base64url refuses it (PROVENANCE.md)",
    },
    Exception {
        file: SIG,
        tc_id: 373,
        deviation: Deviation::MustRefuse(&["BadBase64", "BadSignature"]),
        reason: "'?' inserted in the payload segment: strict base64url refuses it (PROVENANCE.md)",
    },
    Exception {
        file: KEY,
        tc_id: 2,
        deviation: Deviation::MustRefuse(&["BadKey"]),
        reason: "keyset of two HMAC keys: a Verifier holds a single HS256 secret (by design)",
    },
    Exception {
        file: CRYPTO,
        tc_id: 48,
        deviation: Deviation::MustRefuse(&["BadKey"]),
        reason: "keyset of two HMAC keys: a Verifier holds a single HS256 secret (by design)",
    },
];

#[derive(Default)]
struct Tally {
    accepted: usize,
    refused: usize,
    exceptions: usize,
    out_of_scope: usize,
    cases: usize,
}

fn run_wycheproof(file: &'static str, failures: &mut Vec<String>) -> Tally {
    let doc = read_json(&format!("wycheproof/testvectors_v1/{file}"));
    let expect = expectations();
    let mut tally = Tally::default();
    let mut seen_exceptions = Vec::new();
    for group in doc["testGroups"].as_array().expect("testGroups") {
        let key = group.get("public").unwrap_or(&group["private"]);
        let keys = load(key, &expect);
        for case in group["tests"].as_array().expect("tests") {
            let Some(jws) = case.get("jws") else {
                // JWE groups of json_web_crypto_test.json.
                tally.out_of_scope += 1;
                continue;
            };
            tally.cases += 1;
            let tc_id = case["tcId"].as_u64().expect("tcId");
            let token = match jws {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let label = case["result"].as_str().expect("result");
            let comment = case["comment"].as_str().unwrap_or("");
            let (passes, outcome) = keys.passes(&token, NOW);
            let what = |msg: &str| {
                format!(
                    "{file} tcId {tc_id} ({comment}, {label}): {msg}; header {}; got {outcome:?}",
                    header_text(&token)
                )
            };
            if let Some(x) = WYCHEPROOF_EXCEPTIONS
                .iter()
                .find(|x| x.file == file && x.tc_id == tc_id)
            {
                seen_exceptions.push(tc_id);
                tally.exceptions += 1;
                match x.deviation {
                    Deviation::BadLabel => {}
                    Deviation::MustRefuse(names) => {
                        let ok = matches!(&outcome, Err(e) if names.contains(&name(e)));
                        if passes || !ok {
                            failures.push(what(&format!(
                                "listed exception ({}) expects a refusal with {names:?}",
                                x.reason
                            )));
                        }
                    }
                }
                continue;
            }
            let alg = header_alg(&token);
            let supported = alg.as_deref().is_some_and(|a| SUPPORTED_ALGS.contains(&a));
            match label {
                "invalid" => {
                    if passes {
                        failures.push(what("labelled invalid but its signature was accepted"));
                    } else {
                        tally.refused += 1;
                    }
                }
                "valid" if supported => {
                    if passes {
                        tally.accepted += 1;
                    } else {
                        failures.push(what(
                            "labelled valid (supported alg) but refused for a signature/format/key reason",
                        ));
                    }
                }
                "valid" => {
                    if passes {
                        failures.push(what(&format!(
                            "alg {alg:?} is not supported but its signature was accepted"
                        )));
                    } else {
                        tally.refused += 1;
                    }
                }
                other => failures.push(what(&format!("unknown label {other}"))),
            }
        }
    }
    for x in WYCHEPROOF_EXCEPTIONS.iter().filter(|x| x.file == file) {
        if !seen_exceptions.contains(&x.tc_id) {
            failures.push(format!(
                "{file}: listed exception tcId {} not found",
                x.tc_id
            ));
        }
    }
    eprintln!(
        "{file}: {} accepted (signature verified), {} refused, {} exceptions, {} JWE out of scope",
        tally.accepted, tally.refused, tally.exceptions, tally.out_of_scope
    );
    tally
}

#[test]
fn wycheproof_jose_vectors() {
    let mut failures = Vec::new();
    let mut total = Tally::default();
    for file in [SIG, KEY, CRYPTO] {
        let t = run_wycheproof(file, &mut failures);
        total.accepted += t.accepted;
        total.refused += t.refused;
        total.exceptions += t.exceptions;
        total.cases += t.cases;
    }
    // Guards against a harness that silently skips: 476 JWS cases in all.
    assert_eq!(total.cases, 401 + 26 + 49, "every JWS case is run");
    assert!(
        failures.is_empty(),
        "{} Wycheproof case(s) disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What an RFC 7520 cookbook example must give.
enum Cookbook {
    /// The compact form's signature verifies (the payload is text, so the
    /// claims check refuses it: `BadClaims`).
    SignatureVerifies,
    /// The compact form, when there is one, is refused with one of these.
    Refused(&'static [&'static str]),
}

const COOKBOOK: &[(&str, Cookbook)] = &[
    (
        "jws/4_1.rsa_v15_signature.json",
        Cookbook::Refused(&["UnsupportedAlg"]),
    ),
    (
        "jws/4_2.rsa-pss_signature.json",
        Cookbook::Refused(&["UnsupportedAlg"]),
    ),
    (
        "jws/4_3.ecdsa_signature.json",
        Cookbook::Refused(&["UnsupportedAlg"]),
    ),
    (
        "jws/4_4.hmac-sha2_integrity_protection.json",
        Cookbook::SignatureVerifies,
    ),
    // Detached content: the compact form has an empty payload segment.
    (
        "jws/4_5.signature_with_detached_content.json",
        Cookbook::Refused(&["BadSignature"]),
    ),
    // JSON serialization only (unprotected header members).
    (
        "jws/4_6.protecting_specific_header_fields.json",
        Cookbook::Refused(&[]),
    ),
    (
        "jws/4_7.protecting_content_only.json",
        Cookbook::Refused(&[]),
    ),
    ("jws/4_8.multiple_signatures.json", Cookbook::Refused(&[])),
    // RFC 8037's Ed25519 example names no `kid`; Genuine tokens always do and
    // the verifier requires one, so it is refused before the signature.
    ("curve25519/jws.json", Cookbook::Refused(&["MissingKid"])),
    // RFC 7797 `b64: false` with `crit`: unsupported, so refused.
    (
        "rfc7797/hmac-sha2_b64_false.json",
        Cookbook::Refused(&["BadHeader"]),
    ),
    (
        "rfc7797/4.2.hmac-sha2_b64_false.json",
        Cookbook::Refused(&[]),
    ),
];

#[test]
fn rfc7520_cookbook() {
    let base = "jose-cookbook-rfc7520";
    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    // Every JWS example is listed, so none is skipped by accident.
    for dir in ["jws", "rfc7797"] {
        for entry in std::fs::read_dir(path(&format!("{base}/{dir}"))).expect("cookbook dir") {
            let file = format!(
                "{dir}/{}",
                entry.expect("entry").file_name().to_string_lossy()
            );
            if !COOKBOOK.iter().any(|(f, _)| *f == file) {
                failures.push(format!("{file}: not in the COOKBOOK table"));
            }
        }
    }
    let expect = expectations();
    for (file, want) in COOKBOOK {
        let doc = read_json(&format!("{base}/{file}"));
        let keys = load(&doc["input"]["key"], &expect);
        let output = &doc["output"];
        if let Some(compact) = output.get("compact").and_then(Value::as_str) {
            let outcome = keys.verify(compact, NOW);
            match want {
                Cookbook::SignatureVerifies => {
                    if matches!(outcome, Err(VerifyError::BadClaims(_))) {
                        accepted += 1;
                    } else {
                        failures.push(format!(
                            "{file}: signature should verify (then BadClaims); got {outcome:?}"
                        ));
                    }
                    // Control: the same token with its signature altered.
                    let (input, sig) = compact.rsplit_once('.').expect("three parts");
                    let mut sig = B64.decode(sig.as_bytes()).expect("sig");
                    sig[0] ^= 1;
                    let forged = format!("{input}.{}", B64.encode(&sig));
                    let got = keys.verify(&forged, NOW);
                    if got != Err(VerifyError::BadSignature) {
                        failures.push(format!("{file}: altered signature gave {got:?}"));
                    }
                }
                Cookbook::Refused(names) => match &outcome {
                    Err(e) if names.contains(&name(e)) => refused += 1,
                    _ => failures.push(format!(
                        "{file}: compact form should be refused with {names:?}; got {outcome:?}"
                    )),
                },
            }
        } else if matches!(want, Cookbook::SignatureVerifies) {
            failures.push(format!("{file}: no compact form"));
        }
        // JSON serializations are not compact JWS: always refused.
        for form in ["json", "json_flat"] {
            if let Some(v) = output.get(form) {
                match keys.verify(&v.to_string(), NOW) {
                    Err(e) if !claims_level(&e) => refused += 1,
                    other => failures.push(format!("{file}: {form} form gave {other:?}")),
                }
            }
        }
    }
    eprintln!("RFC 7520 cookbook: {accepted} signatures verified, {refused} refused");
    assert!(
        failures.is_empty(),
        "{} cookbook example(s) disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Refusal reasons that fit each attack class of the generated corpus.
const CORPUS_REASONS: &[(&str, &[&str])] = &[
    ("alg-none", &["UnsupportedAlg", "NotCompact"]),
    (
        "alg-confusion",
        &["UnsupportedAlg", "AlgMismatch", "UnknownKey"],
    ),
    ("signature-format", &["BadSignature"]),
    (
        "structure",
        &["NotCompact", "BadSignature", "BadBase64", "TooLarge"],
    ),
    ("encoding", &["BadBase64", "BadSignature"]),
    ("json", &["BadHeader", "BadClaims"]),
    ("dos", &["TooLarge", "NotCompact", "BadClaims"]),
    ("claims", &["BadClaims", "MissingClaim", "WrongIssuer"]),
    (
        "time",
        &[
            "Expired",
            "NotYetValid",
            "IssuedInFuture",
            "LifetimeTooLong",
            "BadClaims",
        ],
    ),
    (
        "tenant",
        &["WrongAudience", "BadClaims", "MissingClaim", "UnknownKey"],
    ),
    ("typing", &["WrongType"]),
    ("kid", &["UnknownKey", "MissingKid", "BadHeader"]),
    ("header-key", &["BadHeader"]),
    ("crit", &["BadHeader"]),
    ("header", &["BadHeader"]),
];

/// Corpus cases this verifier cannot give the expected outcome for, by design.
const CORPUS_EXCEPTIONS: &[(&str, &[&str], &str)] = &[(
    "valid-rs256",
    &["UnsupportedAlg"],
    "RS256 is not a Genuine algorithm (ES256, EdDSA, HS256 only); refused by design",
)];

/// The acct-A verifiers, configured per the corpus policy: its clock, issuer,
/// audience (the account), leeway, `typ` and required claims. The account's
/// keyset mixes an HS256 secret with EC (and RSA) keys, which one `Verifier`
/// cannot hold: the HS256 key goes to `from_hs256_secret`, the others to
/// `from_jwks` (which ignores RSA), and a token is accepted if either accepts.
/// The header allow-list, strict base64url, the 8 KiB limit, a required `kid`
/// and the JSON depth limit of 32 are built in; `max_ttl_seconds` is
/// `Verifier::max_lifetime`.
fn corpus_keys(policy: &Value, key_doc: &Value, cache: bool) -> Keys {
    let account = policy["verifying_account"].as_str().expect("account");
    let expect = Expectations {
        issuer: policy["expected_issuer"].as_str().expect("issuer").into(),
        audiences: vec![account.into()],
        leeway_secs: policy["leeway_seconds"].as_u64().expect("leeway"),
    };
    let typ = policy["required_header"]["typ"].as_str().expect("typ");
    let required: Vec<&str> = policy["required_claims"]
        .as_array()
        .expect("required_claims")
        .iter()
        .map(|c| c.as_str().expect("claim"))
        .collect();
    let wanted: Vec<&Value> = policy["keyset_for_account"]
        .as_array()
        .expect("keyset")
        .iter()
        .collect();
    let keyset: Vec<&Value> = key_doc[account]
        .as_array()
        .expect("account keys")
        .iter()
        .filter(|k| wanted.contains(&&k["kid"]))
        .collect();
    assert_eq!(keyset.len(), wanted.len(), "every policy kid has a key");
    let tune = |v: Verifier| {
        let v = v
            .expect_typ(typ)
            .require_claims(&required)
            .max_lifetime(policy["max_ttl_seconds"].as_u64().expect("max_ttl_seconds"));
        if cache { v.with_cache(256) } else { v }
    };
    let (octs, others): (Vec<&Value>, Vec<&Value>) =
        keyset.into_iter().partition(|k| k["kty"] == "oct");
    let mut vs = Vec::new();
    for k in octs {
        let (kid, secret) = hs_secret(k).expect("HS256 key");
        vs.push(tune(
            Verifier::from_hs256_secret(&kid, &secret, expect.clone()).expect("HS256 secret"),
        ));
    }
    let jwks = Jwks {
        keys: others
            .into_iter()
            .map(|k| to_jwk(k).expect("jwk"))
            .collect(),
    };
    vs.push(tune(Verifier::from_jwks(&jwks, expect).expect("jwks")));
    Keys::Verifiers(vs)
}

#[test]
fn generated_attack_corpus() {
    let doc = read_json("generated/jwt_attack_corpus.json");
    let key_doc = read_json("generated/jwt_attack_corpus_keys.json");
    let policy = &doc["policy"];
    let now = policy["now"].as_i64().expect("now");
    assert_eq!(
        policy["max_token_bytes"].as_u64(),
        Some(MAX_TOKEN_LEN as u64),
        "the policy's size limit is the verifier's"
    );
    let keys = corpus_keys(policy, &key_doc, false);
    let cached = corpus_keys(policy, &key_doc, true);
    let mut failures = Vec::new();
    let (mut accepted, mut refused, mut exceptions) = (0, 0, 0);
    let cases = doc["cases"].as_array().expect("cases");
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let class = case["class"].as_str().expect("class");
        let want = case["expect"].as_str().expect("expect");
        let token = case["token"].as_str().expect("token");
        let outcome = keys.verify(token, now);
        let what = |msg: &str| {
            format!(
                "{id} ({class}, expect {want}, strict_policy_only {}): {msg}; header {}; got {outcome:?}",
                case["strict_policy_only"],
                header_text(token)
            )
        };
        // The cache must not change any outcome (second call is a hit).
        for round in 0..2 {
            let got = cached.verify(token, now);
            if got != outcome {
                failures.push(what(&format!("with the cache (call {round}) gave {got:?}")));
            }
        }
        if let Some((_, names, reason)) = CORPUS_EXCEPTIONS.iter().find(|(x, _, _)| *x == id) {
            exceptions += 1;
            if !matches!(&outcome, Err(e) if names.contains(&name(e))) {
                failures.push(what(&format!(
                    "listed exception ({reason}) expects {names:?}"
                )));
            }
            continue;
        }
        match (want, &outcome) {
            ("accept", Ok(())) => accepted += 1,
            ("accept", Err(_)) => failures.push(what("should be accepted")),
            ("reject", Ok(())) => failures.push(what("ACCEPTED but must be refused")),
            ("reject", Err(e)) => {
                refused += 1;
                let fits = CORPUS_REASONS
                    .iter()
                    .find(|(c, _)| *c == class)
                    .is_some_and(|(_, names)| names.contains(&name(e)));
                if !fits {
                    failures.push(what(
                        "refused, but for a reason that does not fit the class",
                    ));
                }
            }
            _ => failures.push(what("unknown expectation")),
        }
    }
    eprintln!(
        "attack corpus: {accepted} accepted, {refused} refused, {exceptions} exceptions of {}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} corpus case(s) disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The (public, else private) key material of every group with `comment`.
fn key_group<'a>(doc: &'a Value, comment: &str) -> Vec<&'a Value> {
    doc["testGroups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| g["comment"] == comment)
        .map(|g| g.get("public").unwrap_or(&g["private"]))
        .collect()
}

fn keys_of(set: &Value) -> Vec<Value> {
    set["keys"].as_array().expect("keys").clone()
}

/// An ES256 token with Genuine claims, signed with the Wycheproof EC key.
fn es256_token(private: &Value, kid: &str) -> String {
    let coord = |n: &str| {
        B64.decode(private[n].as_str().expect(n).as_bytes())
            .expect(n)
    };
    let mut point = vec![4];
    point.extend(coord("x"));
    point.extend(coord("y"));
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &coord("d"),
        &point,
        &rng,
    )
    .expect("EC key pair");
    let header = json!({"alg": "ES256", "kid": kid}).to_string();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 60}).to_string();
    let input = format!(
        "{}.{}",
        B64.encode(header.as_bytes()),
        B64.encode(claims.as_bytes())
    );
    let sig = pair.sign(&rng, input.as_bytes()).expect("sign");
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

/// An HS256 token with Genuine claims.
fn hs256_token(secret: &[u8], kid: &str) -> String {
    let header = json!({"alg": "HS256", "kid": kid}).to_string();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "iat": NOW, "exp": NOW + 60}).to_string();
    let input = format!(
        "{}.{}",
        B64.encode(header.as_bytes()),
        B64.encode(claims.as_bytes())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// The key-level expectations of `json_web_key_test.json`, checked with tokens
/// that carry valid Genuine claims (so only the key decides): for each flawed
/// key or keyset, `from_jwks`/`from_hs256_secret` refuses it, or no token is
/// ever accepted with it.
#[test]
fn wycheproof_key_expectations() {
    let doc = read_json(&format!("wycheproof/testvectors_v1/{KEY}"));
    let sig_doc = read_json(&format!("wycheproof/testvectors_v1/{SIG}"));
    let corpus_key_doc = read_json("generated/jwt_attack_corpus_keys.json");
    let expect = expectations();
    // The Wycheproof EC signing key (with `d`), and a token it signed.
    let ec: &Value = key_group(&sig_doc, "es256")[0];
    let ec_private = sig_doc["testGroups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["comment"] == "es256")
        .map(|g| g["private"].clone())
        .expect("es256 group");
    let token = es256_token(&ec_private, "kid-ec-sign");

    // Sanity: the unflawed key accepts the token, so refusals below are the key's.
    let good = load(ec, &expect);
    assert_eq!(good.verify(&token, NOW), Ok(()), "control token");

    let mut gaps = Vec::new();
    let check = |what: &str, keys: &Keys, token: &str| {
        let got = keys.verify(token, NOW);
        let loaded = !matches!(keys, Keys::Unloadable(_));
        eprintln!("key check {what}: verifier built {loaded}, token {got:?}");
        got.is_ok().then(|| {
            format!("{what}: a token with valid claims is accepted with this key material")
        })
    };

    // Flawed single EC keys from the key file.
    for comment in [
        "wrong_algorithm",
        "invalid_algorithm",
        "invalid_use",
        "invalid_point",
        "wrong_curve",
        "wrong_kty",
    ] {
        for set in key_group(&doc, comment) {
            gaps.extend(check(comment, &load(set, &expect), &token));
        }
    }
    // `key_ops: ["encrypt"]` (signature file, group ec_key_for_encryption).
    for set in key_group(&sig_doc, "ec_key_for_encryption") {
        gaps.extend(check(
            &format!(
                "ec_key_for_encryption {}",
                set.get("key_ops").unwrap_or(&set["use"])
            ),
            &load(set, &expect),
            &token,
        ));
    }
    // Duplicate kid: the Wycheproof EC key and another P-256 key under one kid.
    let mut other = corpus_key_doc["acct-A"]
        .as_array()
        .expect("acct-A")
        .iter()
        .find(|k| k["kty"] == "EC")
        .expect("EC key")
        .clone();
    other["kid"] = "kid-ec-sign".into();
    let mut first = ec.clone();
    if let Some(obj) = first.as_object_mut() {
        obj.remove("d");
    }
    if let Some(obj) = other.as_object_mut() {
        obj.remove("d");
    }
    let dup = json!({"keys": [first, other]});
    gaps.extend(check(
        "duplicate kid (EC keyset)",
        &load(&dup, &expect),
        &token,
    ));
    let other_token = es256_token(&corpus_key_doc["acct-A"][2], "kid-ec-sign");
    gaps.extend(check(
        "duplicate kid (EC keyset), token of the second key",
        &load(&dup, &expect),
        &other_token,
    ));

    // HMAC keys: too short, empty, AES keys, mixed and duplicate keysets.
    for comment in [
        "HS256",
        "invalid_aes_gcm_key",
        "invalid_aes_kw_key",
        "jws_mixedSymmetryKeyset",
        "jws_duplicate_kid",
    ] {
        for set in key_group(&doc, comment) {
            let ks = keys_of(set);
            let k0 = &ks[0];
            let secret = B64
                .decode(k0["k"].as_str().expect("k").as_bytes())
                .expect("k");
            let kid = k0["kid"].as_str().expect("kid");
            let label = format!("{comment} ({kid}, {} bytes)", secret.len());
            let keys = load(set, &expect);
            let token = hs256_token(&secret, kid);
            // A short or empty secret must be refused when loading.
            if secret.len() < 32 && !matches!(keys, Keys::Unloadable(_)) {
                gaps.push(format!("{label}: a short HMAC key was loaded"));
            }
            if kid.starts_with("long_") {
                // The valid long key: it must work.
                if keys.verify(&token, NOW).is_err() {
                    gaps.push(format!("{label}: the valid long key refuses a good token"));
                }
                continue;
            }
            gaps.extend(check(&label, &keys, &token));
        }
    }
    assert!(
        gaps.is_empty(),
        "{} key-level expectation(s) not met:\n{}",
        gaps.len(),
        gaps.join("\n")
    );
}

//! The verifier refuses what a strict verifier must refuse, one check at a
//! time, each next to a token that passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use data_encoding::BASE64URL_NOPAD as B64;
use genuine_verify::{Expectations, Jwk, Jwks, Verifier, VerifyError};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

const SECRET: [u8; 32] = [9; 32];
const NOW: i64 = 1_800_000_000;

fn expect() -> Expectations {
    Expectations {
        issuer: "https://g.example/v1/accounts/default".into(),
        audiences: vec!["api.example.com".into()],
        leeway_secs: 0,
    }
}

fn claims() -> Value {
    json!({"iss": "https://g.example/v1/accounts/default", "aud": "api.example.com", "sub": "app", "iat": NOW - 10, "exp": NOW + 290, "jti": "j", "did": "d", "arc": "A"})
}

fn hs(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.as_bytes()),
        B64.encode(payload.as_bytes())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &SECRET),
        input.as_bytes(),
    );
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

fn hs_verifier() -> Verifier {
    Verifier::from_hs256_secret("k1", &SECRET, expect()).unwrap()
}

#[test]
fn hs256_accepts_good_and_names_each_failure() {
    let v = hs_verifier();
    let good_header = r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    let good = hs(good_header, &claims().to_string());
    assert_eq!(v.verify(&good, NOW).unwrap().sub.as_deref(), Some("app"));

    let cases: Vec<(String, VerifyError)> = vec![
        (
            hs(r#"{"alg":"none","kid":"k1"}"#, &claims().to_string()),
            VerifyError::UnsupportedAlg,
        ),
        (
            hs(r#"{"alg":"RS256","kid":"k1"}"#, &claims().to_string()),
            VerifyError::UnsupportedAlg,
        ),
        (
            hs(r#"{"alg":"ES256","kid":"k1"}"#, &claims().to_string()),
            VerifyError::AlgMismatch,
        ),
        (
            hs(r#"{"alg":"HS256","kid":"k2"}"#, &claims().to_string()),
            VerifyError::UnknownKey,
        ),
        (
            hs(
                r#"{"alg":"HS256","kid":"k1","crit":["exp"]}"#,
                &claims().to_string(),
            ),
            VerifyError::BadHeader,
        ),
        (
            hs(
                r#"{"alg":"HS256","kid":"k1","jku":"https://evil"}"#,
                &claims().to_string(),
            ),
            VerifyError::BadHeader,
        ),
        (
            hs(
                r#"{"alg":"HS256","kid":"k1","jwk":{}}"#,
                &claims().to_string(),
            ),
            VerifyError::BadHeader,
        ),
        (
            hs(
                r#"{"alg":"HS256","kid":"k1","x5c":[]}"#,
                &claims().to_string(),
            ),
            VerifyError::BadHeader,
        ),
        (
            hs(
                r#"{"alg":"HS256","kid":"k1","x5u":"https://evil"}"#,
                &claims().to_string(),
            ),
            VerifyError::BadHeader,
        ),
        (
            hs(
                r#"{"alg":"HS256","alg":"HS256","kid":"k1"}"#,
                &claims().to_string(),
            ),
            VerifyError::BadHeader,
        ),
        (
            hs("not json", &claims().to_string()),
            VerifyError::BadHeader,
        ),
        (
            hs(good_header, &json!({"iss": "x"}).to_string()),
            VerifyError::BadClaims(String::new()),
        ),
        (
            hs(
                good_header,
                &{
                    let mut c = claims();
                    c["exp"] = json!("soon");
                    c
                }
                .to_string(),
            ),
            VerifyError::BadClaims(String::new()),
        ),
        (
            hs(
                good_header,
                &{
                    let mut c = claims();
                    c["exp"] = json!(1.5e9);
                    c
                }
                .to_string(),
            ),
            VerifyError::BadClaims(String::new()),
        ),
        (
            hs(
                good_header,
                &{
                    let mut c = claims();
                    c["exp"] = json!(NOW);
                    c
                }
                .to_string(),
            ),
            VerifyError::Expired,
        ),
        (
            hs(
                good_header,
                &{
                    let mut c = claims();
                    c["nbf"] = json!(NOW + 1);
                    c
                }
                .to_string(),
            ),
            VerifyError::NotYetValid,
        ),
        (
            hs(
                good_header,
                &{
                    let mut c = claims();
                    c["iss"] = json!("https://evil");
                    c
                }
                .to_string(),
            ),
            VerifyError::WrongIssuer,
        ),
        (
            hs(
                good_header,
                &{
                    let mut c = claims();
                    c["aud"] = json!("other.example.com");
                    c
                }
                .to_string(),
            ),
            VerifyError::WrongAudience,
        ),
        ("a.b".into(), VerifyError::NotCompact),
        ("a.b.c.d".into(), VerifyError::NotCompact),
        (format!("{good}="), VerifyError::BadBase64("signature")),
        ("x".repeat(9000), VerifyError::TooLarge),
    ];
    for (token, want) in cases {
        let got = v.verify(&token, NOW).unwrap_err();
        match want {
            VerifyError::BadClaims(_) => {
                assert!(matches!(got, VerifyError::BadClaims(_)), "{token}: {got:?}")
            }
            want => assert_eq!(got, want, "{token}"),
        }
    }
    // A flipped signature bit, and a signature over a changed payload.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut sig = B64.decode(parts[2].as_bytes()).unwrap();
    sig[0] ^= 1;
    parts[2] = B64.encode(&sig);
    assert_eq!(
        v.verify(&parts.join("."), NOW).unwrap_err(),
        VerifyError::BadSignature
    );
    // Non-canonical base64url: the last character of a 32-byte value carries 4 unused bits.
    let sig = good.rsplit('.').next().unwrap();
    let last = sig.chars().last().unwrap();
    let idx = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        .find(last)
        .unwrap();
    let noncanon = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        .chars()
        .nth(idx | 1)
        .unwrap();
    if noncanon != last {
        let t = format!("{}{noncanon}", &good[..good.len() - 1]);
        assert_eq!(
            v.verify(&t, NOW).unwrap_err(),
            VerifyError::BadBase64("signature")
        );
    }
}

#[test]
fn leeway_is_zero_by_default_and_configurable() {
    let good = hs(r#"{"alg":"HS256","kid":"k1"}"#, &claims().to_string());
    assert_eq!(
        hs_verifier().verify(&good, NOW + 290).unwrap_err(),
        VerifyError::Expired
    );
    let lenient = Verifier::from_hs256_secret(
        "k1",
        &SECRET,
        Expectations {
            leeway_secs: 5,
            ..expect()
        },
    )
    .unwrap();
    assert!(lenient.verify(&good, NOW + 294).is_ok());
    assert_eq!(
        lenient.verify(&good, NOW + 295).unwrap_err(),
        VerifyError::Expired
    );
    assert!(
        Verifier::from_hs256_secret("k1", &[1; 16], expect()).is_err(),
        "short secrets refused"
    );
}

#[test]
fn es256_from_jwks_and_key_confusion() {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let p = pair.public_key().as_ref();
    let jwk = Jwk {
        key_ops: None,
        kty: "EC".into(),
        crv: Some("P-256".into()),
        kid: Some("e1".into()),
        alg: Some("ES256".into()),
        use_: Some("sig".into()),
        x: Some(B64.encode(&p[1..33])),
        y: Some(B64.encode(&p[33..])),
    };
    let v = Verifier::from_jwks(
        &Jwks {
            keys: vec![jwk.clone()],
        },
        expect(),
    )
    .unwrap();
    let input = format!(
        "{}.{}",
        B64.encode(br#"{"alg":"ES256","typ":"JWT","kid":"e1"}"#),
        B64.encode(claims().to_string().as_bytes())
    );
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", B64.encode(sig.as_ref()));
    assert!(v.verify(&token, NOW).is_ok());
    // The classic confusion: HS256 "signed" with the public key bytes.
    let input = format!(
        "{}.{}",
        B64.encode(br#"{"alg":"HS256","kid":"e1"}"#),
        B64.encode(claims().to_string().as_bytes())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, p),
        input.as_bytes(),
    );
    assert_eq!(
        v.verify(&format!("{input}.{}", B64.encode(tag.as_ref())), NOW)
            .unwrap_err(),
        VerifyError::AlgMismatch
    );
    // A signature of the wrong length.
    assert_eq!(
        v.verify(
            &format!(
                "{}.{}",
                &token[..token.rfind('.').unwrap()],
                B64.encode(&[0; 63])
            ),
            NOW
        )
        .unwrap_err(),
        VerifyError::BadSignature
    );
    // Keys of other types are ignored, so their kid selects nothing.
    let rsa = Jwk {
        key_ops: None,
        kty: "RSA".into(),
        crv: None,
        kid: Some("r1".into()),
        alg: Some("RS256".into()),
        use_: None,
        x: None,
        y: None,
    };
    let v = Verifier::from_jwks(&Jwks { keys: vec![rsa] }, expect()).unwrap();
    assert_eq!(v.verify(&token, NOW).unwrap_err(), VerifyError::UnknownKey);
    // A malformed supported key is an error at construction.
    let bad = Jwk {
        key_ops: None,
        x: Some("AAAA".into()),
        ..jwk
    };
    assert!(matches!(
        Verifier::from_jwks(&Jwks { keys: vec![bad] }, expect()),
        Err(VerifyError::BadKey(_))
    ));
}

#[test]
fn binding() {
    let pay = B64.encode(ring::digest::digest(&ring::digest::SHA256, b"Bearer abc").as_ref());
    let with = hs(
        r#"{"alg":"HS256","kid":"k1"}"#,
        &{
            let mut c = claims();
            c["pay"] = json!(pay);
            c
        }
        .to_string(),
    );
    let c = hs_verifier().verify(&with, NOW).unwrap();
    assert!(Verifier::check_binding(&c, b"Bearer abc").is_ok());
    assert_eq!(
        Verifier::check_binding(&c, b"Bearer abd").unwrap_err(),
        VerifyError::BindingMismatch
    );
    let without = hs(r#"{"alg":"HS256","kid":"k1"}"#, &claims().to_string());
    let c = hs_verifier().verify(&without, NOW).unwrap();
    assert_eq!(
        Verifier::check_binding(&c, b"Bearer abc").unwrap_err(),
        VerifyError::BindingMissing
    );
}

#[test]
fn required_claims_and_typ() {
    let with_typ = hs(
        r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
        &claims().to_string(),
    );
    let no_typ = hs(r#"{"alg":"HS256","kid":"k1"}"#, &claims().to_string());
    let v = hs_verifier()
        .expect_typ("JWT")
        .require_claims(&["sub", "did", "jti", "iat", "arc"]);
    assert!(v.verify(&with_typ, NOW).is_ok());
    assert_eq!(v.verify(&no_typ, NOW).unwrap_err(), VerifyError::WrongType);
    let mut c = claims();
    c.as_object_mut().unwrap().remove("did");
    let no_did = hs(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#, &c.to_string());
    assert_eq!(
        v.verify(&no_did, NOW).unwrap_err(),
        VerifyError::MissingClaim("did".into())
    );
    let strange = hs_verifier().require_claims(&["not-a-genuine-claim"]);
    assert!(
        strange.verify(&with_typ, NOW).is_err(),
        "an unknown required claim is never present"
    );
}

#[test]
fn cache_serves_repeats_checks_expiry_and_stays_bounded() {
    let v = hs_verifier().with_cache(2);
    let t1 = hs(r#"{"alg":"HS256","kid":"k1"}"#, &claims().to_string());
    let first = v.verify_shared(&t1, NOW).unwrap();
    let again = v.verify_shared(&t1, NOW).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "a repeat is served from the cache"
    );
    assert_eq!(v.verify(&t1, NOW).unwrap(), *first);
    // Expiry is still checked on a hit, with the same leeway as a miss.
    assert_eq!(
        v.verify_shared(&t1, NOW + 290).unwrap_err(),
        VerifyError::Expired
    );
    assert!(
        v.verify_shared(&t1, NOW).is_ok(),
        "re-verified after the expired hit was dropped"
    );
    // Only verified tokens enter: a forged copy is refused every time.
    let mut forged = t1.clone();
    forged.pop();
    forged.push(if t1.ends_with('A') { 'Q' } else { 'A' });
    for _ in 0..2 {
        assert!(v.verify_shared(&forged, NOW).is_err());
    }
    // Hard limit: many distinct tokens never grow it past capacity.
    for i in 0..10 {
        let mut c = claims();
        c["jti"] = json!(format!("j{i}"));
        let t = hs(r#"{"alg":"HS256","kid":"k1"}"#, &c.to_string());
        assert!(v.verify_shared(&t, NOW).is_ok());
    }
    assert_eq!(v.verify_shared(&t1, NOW).unwrap().jti.as_deref(), Some("j"));
}

#[test]
fn iat_in_the_future_allows_clock_skew_but_not_more() {
    let at = |iat: i64| {
        let mut c = claims();
        c["iat"] = json!(iat);
        hs(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#, &c.to_string())
    };
    let v = hs_verifier();
    assert!(
        v.verify(&at(NOW + 30), NOW).is_ok(),
        "a backend clock 30 s behind the service"
    );
    assert!(
        v.verify(&at(NOW + genuine_verify::IAT_SKEW_SECS), NOW)
            .is_ok()
    );
    assert_eq!(
        v.verify(&at(NOW + genuine_verify::IAT_SKEW_SECS + 1), NOW)
            .unwrap_err(),
        VerifyError::IssuedInFuture
    );
    let lenient = Verifier::from_hs256_secret(
        "k1",
        &SECRET,
        Expectations {
            leeway_secs: 120,
            ..expect()
        },
    )
    .unwrap();
    assert!(
        lenient.verify(&at(NOW + 100), NOW).is_ok(),
        "a larger leeway widens it"
    );
    // A short lifetime limit refuses long-lived tokens and tokens without iat.
    let short = hs_verifier().max_lifetime(60);
    assert_eq!(
        short.verify(&at(NOW - 10), NOW).unwrap_err(),
        VerifyError::LifetimeTooLong
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iat");
    let no_iat = hs(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#, &c.to_string());
    assert_eq!(
        short.verify(&no_iat, NOW).unwrap_err(),
        VerifyError::MissingClaim("iat".into())
    );
}

#[test]
fn structure_is_checked_on_the_minted_header_path_too() {
    // The header the service mints for "k1" takes the fast path; the token
    // must still be exactly three parts, each canonical base64url.
    let v = hs_verifier();
    let good = hs(
        r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
        &claims().to_string(),
    );
    assert!(v.verify(&good, NOW).is_ok());
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let cases = [
        (format!("{h}.{p}"), VerifyError::NotCompact),
        (format!("{h}."), VerifyError::NotCompact),
        (format!("{h}.{p}.{s}."), VerifyError::NotCompact),
        (format!("{h}.{p}.{p}.{s}"), VerifyError::NotCompact),
        (format!("{h}..{p}.{s}"), VerifyError::NotCompact),
        (
            format!("{h}.{}.{}.{s}", &p[..8], &p[8..]),
            VerifyError::NotCompact,
        ),
        (format!("{h}.{p}=.{s}"), VerifyError::BadSignature),
        (format!("{h}.{p}.{s}A"), VerifyError::BadSignature),
        (
            format!("{h}.{p}.{s}AA"),
            VerifyError::BadBase64("signature"),
        ),
        (format!("{h}..{s}"), VerifyError::BadSignature),
        (format!("{h}A.{p}.{s}"), VerifyError::BadHeader),
        (format!("{h}AA.{p}.{s}"), VerifyError::BadBase64("header")),
    ];
    for (token, want) in cases {
        assert_eq!(v.verify(&token, NOW).unwrap_err(), want, "{token}");
    }
    // A payload that is not base64url, under a good signature: refused for
    // its payload, after the signature verified.
    let input = format!("{h}.{p}=");
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &SECRET),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", B64.encode(tag.as_ref()));
    assert_eq!(
        v.verify(&token, NOW).unwrap_err(),
        VerifyError::BadBase64("payload")
    );
}

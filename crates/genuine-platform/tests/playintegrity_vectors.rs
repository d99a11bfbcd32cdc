//! Play Integrity: the synthetic vectors of `shared/vectors/playintegrity`
//! (read in place), and tampered or re-made tokens built here with the same
//! test-only keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aes_kw::{KeyInit, KwAes256};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use genuine_platform::playintegrity::{
    Expectations, IntegrityPayload, KeyError, Keys, MEETS_DEVICE_INTEGRITY, MEETS_STRONG_INTEGRITY,
    PLAY_RECOGNIZED, Reason, TokenError, UNEVALUATED, UNRECOGNIZED_VERSION, Verdict,
    decrypt_and_verify, verify,
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::Value as Json;

/// `timestampMillis` of every vector: 2026-01-01T00:00:00Z.
const MADE_MS: u64 = 1_767_225_600_000;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/playintegrity")
}

fn index() -> Json {
    let text = std::fs::read_to_string(dir().join("vectors.json")).expect("vectors.json");
    serde_json::from_str(&text).unwrap()
}

fn field(index: &Json, name: &str) -> String {
    index[name].as_str().unwrap().to_owned()
}

fn token(id: &str) -> String {
    std::fs::read_to_string(dir().join(format!("{id}.token.txt"))).unwrap()
}

fn payload_json(id: &str) -> String {
    std::fs::read_to_string(dir().join(format!("{id}.payload.json"))).unwrap()
}

fn keys() -> Keys {
    let index = index();
    let aes = BASE64
        .decode(field(&index, "decryption_key_b64").as_bytes())
        .unwrap();
    let spki = BASE64
        .decode(field(&index, "verification_key_b64_der_spki").as_bytes())
        .unwrap();
    Keys::new(&aes, &spki).unwrap()
}

fn decryption_key() -> [u8; 32] {
    BASE64
        .decode(field(&index(), "decryption_key_b64").as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The instant of `verify_at`: 30 s after the tokens were made.
fn at() -> SystemTime {
    at_ms(MADE_MS + 30_000)
}

fn at_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn certificate_digest() -> [u8; 32] {
    let index = index();
    let hex = HEXLOWER
        .decode(field(&index, "expected_certificate_sha256_hex").as_bytes())
        .unwrap();
    let b64 = BASE64URL_NOPAD
        .decode(field(&index, "expected_certificate_sha256_b64url").as_bytes())
        .unwrap();
    assert_eq!(hex, b64, "the index's two forms of the digest agree");
    hex.try_into().unwrap()
}

/// Standard-request expectations of the index, with the certificate digest.
fn standard() -> Expectations {
    let index = index();
    let mut e = Expectations::standard(
        field(&index, "expected_package_name"),
        field(&index, "expected_request_hash"),
    );
    e.certificate_sha256 = Some(certificate_digest());
    e
}

fn classic() -> Expectations {
    let index = index();
    let mut e = Expectations::classic(
        field(&index, "expected_package_name"),
        field(&index, "expected_classic_nonce"),
    );
    e.certificate_sha256 = Some(certificate_digest());
    e
}

fn check(token: &str, expected: &Expectations) -> Result<Verdict, TokenError> {
    verify(token, &keys(), expected, at())
}

fn reasons(token: &str, expected: &Expectations) -> Vec<Reason> {
    check(token, expected).expect("an authentic token").reasons
}

// ---------------------------------------------------------------------------
// Token builders with the test-only keys of vectors.json.

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

fn pkcs8_of_pem(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    BASE64.decode(body.as_bytes()).unwrap()
}

/// A compact JWS over `payload` under `header`, signed with the index's
/// test-only signing key.
fn sign(header: &str, payload: &[u8]) -> String {
    let pkcs8 = pkcs8_of_pem(&field(&index(), "test_only_signing_private_key_pem"));
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload));
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", b64(sig.as_ref()))
}

fn sign_es256(payload: &str) -> String {
    sign(r#"{"alg":"ES256"}"#, payload.as_bytes())
}

/// A compact JWE of `plaintext` under `header` with the index's decryption key.
fn seal(header: &str, plaintext: &[u8]) -> String {
    let cek = [0x5a_u8; 32];
    let iv = [0x17_u8; 12];
    let kw = KwAes256::new(&decryption_key().into());
    let mut wrapped = [0u8; 40];
    kw.wrap_key(&cek, &mut wrapped).unwrap();
    let header_b64 = b64(header.as_bytes());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
    let mut data = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header_b64.as_bytes()),
            &mut data,
        )
        .unwrap();
    format!(
        "{header_b64}.{}.{}.{}.{}",
        b64(&wrapped),
        b64(&iv),
        b64(&data),
        b64(tag.as_ref())
    )
}

fn seal_a256(plaintext: &str) -> String {
    seal(r#"{"alg":"A256KW","enc":"A256GCM"}"#, plaintext.as_bytes())
}

/// A valid token of `payload` (JSON text), made here.
fn make(payload: &str) -> String {
    seal_a256(&sign_es256(payload))
}

/// Flips one bit of the decoded part `n` of a dot-separated token.
fn flip(token: &str, n: usize, byte: usize) -> String {
    let mut parts: Vec<String> = token.trim().split('.').map(str::to_owned).collect();
    let mut bytes = BASE64URL_NOPAD.decode(parts[n].as_bytes()).unwrap();
    let i = byte.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    parts[n] = b64(&bytes);
    parts.join(".")
}

fn standard_payload_with(edit: impl FnOnce(&mut Json)) -> String {
    let mut json: Json = serde_json::from_str(&payload_json("standard_valid")).unwrap();
    edit(&mut json);
    json.to_string()
}

// ---------------------------------------------------------------------------
// The vectors, each with its stated outcome.

#[test]
fn every_vector_gives_its_stated_outcome() {
    let index = index();
    let cases = index["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    assert!(
        field(&index, "verify_at").starts_with("2026-01-01T00:00:30Z"),
        "at() is the index's verify_at"
    );
    assert_eq!(at(), at_ms(1_767_225_630_000));
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let expected = case["expected"].as_str().unwrap();
        let token = token(id);
        let standard = standard();
        let got = check(&token, &standard);
        match id {
            "standard_valid" => {
                assert_eq!(expected, "valid");
                let v = got.unwrap();
                assert!(v.is_valid(), "{id}: {:?}", v.reasons);
            }
            "classic_valid" => {
                assert_eq!(expected, "valid");
                let v = check(&token, &classic()).unwrap();
                assert!(v.is_valid(), "{id}: {:?}", v.reasons);
                // Checked as a standard request, it lacks the request hash.
                assert_eq!(
                    got.unwrap().reasons,
                    [Reason::RequestHash { found: None }],
                    "{id}"
                );
            }
            "standard_requesthash_mismatch" => {
                assert!(expected.contains("requestHash"), "{expected}");
                assert_eq!(
                    got.unwrap().reasons,
                    [Reason::RequestHash {
                        found: Some("EW7u-DuHdTEKqgLyQ0AU34dbdro3bZuIj-k-W7KMhUo".into())
                    }],
                    "{id}"
                );
            }
            "standard_wrong_package" => {
                assert!(expected.contains("package"), "{expected}");
                assert_eq!(
                    got.unwrap().reasons,
                    [
                        Reason::RequestPackage {
                            found: "com.evil.clone".into()
                        },
                        Reason::AppPackage {
                            found: "com.evil.clone".into()
                        },
                    ],
                    "{id}"
                );
            }
            "standard_unrecognized_version" => {
                assert!(expected.contains("UNRECOGNIZED_VERSION"), "{expected}");
                assert_eq!(
                    got.unwrap().reasons,
                    [
                        Reason::CertificateDigest,
                        Reason::AppRecognition {
                            found: UNRECOGNIZED_VERSION.into(),
                            required: PLAY_RECOGNIZED.into()
                        },
                    ],
                    "{id}"
                );
            }
            "standard_no_device_integrity" => {
                assert!(expected.contains("deviceIntegrity"), "{expected}");
                assert_eq!(
                    got.unwrap().reasons,
                    [Reason::DeviceIntegrity {
                        missing: vec![MEETS_DEVICE_INTEGRITY.into()]
                    }],
                    "{id}"
                );
            }
            "standard_unevaluated" => {
                assert!(expected.contains("UNEVALUATED"), "{expected}");
                let v = got.unwrap();
                assert_eq!(
                    v.reasons,
                    [
                        Reason::CertificateDigest,
                        Reason::AppRecognition {
                            found: UNEVALUATED.into(),
                            required: PLAY_RECOGNIZED.into()
                        },
                    ],
                    "{id}"
                );
                // The optional fields are absent and parse.
                assert_eq!(v.payload.package_name, None);
                assert!(v.payload.certificate_sha256_digest.is_empty());
                assert_eq!(v.payload.version_code, None);
                // Without the digest expectation only the recognition fails.
                let mut e = standard.clone();
                e.certificate_sha256 = None;
                assert_eq!(reasons(&token, &e).len(), 1);
            }
            "standard_wrong_signing_key" => {
                assert!(expected.contains("signature"), "{expected}");
                assert_eq!(got.unwrap_err(), TokenError::Signature, "{id}");
            }
            "standard_tampered_ciphertext" => {
                assert!(expected.contains("tag"), "{expected}");
                assert_eq!(got.unwrap_err(), TokenError::Decryption, "{id}");
            }
            other => panic!("a case this test does not know: {other}"),
        }
    }
}

/// The decoded fields are the vectors' payload files.
#[test]
fn decoded_fields_match_the_payload_files() {
    for id in [
        "standard_valid",
        "classic_valid",
        "standard_requesthash_mismatch",
        "standard_wrong_package",
        "standard_unrecognized_version",
        "standard_no_device_integrity",
        "standard_unevaluated",
    ] {
        let p = decrypt_and_verify(&token(id), &keys()).unwrap();
        let j: Json = serde_json::from_str(&payload_json(id)).unwrap();
        let rd = &j["requestDetails"];
        assert_eq!(p.request_package_name, rd["requestPackageName"], "{id}");
        assert_eq!(
            p.request_hash.as_deref(),
            rd["requestHash"].as_str(),
            "{id}"
        );
        assert_eq!(p.nonce.as_deref(), rd["nonce"].as_str(), "{id}");
        assert_eq!(
            p.timestamp_millis.to_string(),
            rd["timestampMillis"].as_str().unwrap()
        );
        let ai = &j["appIntegrity"];
        assert_eq!(
            p.app_recognition_verdict, ai["appRecognitionVerdict"],
            "{id}"
        );
        assert_eq!(
            p.package_name.as_deref(),
            ai["packageName"].as_str(),
            "{id}"
        );
        let digests: Vec<String> = ai["certificateSha256Digest"]
            .as_array()
            .map(|a| a.iter().map(|d| d.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(p.certificate_sha256_digest, digests, "{id}");
        assert_eq!(
            p.version_code.map(|v| v.to_string()).as_deref(),
            ai["versionCode"].as_str(),
            "{id}"
        );
        let labels: Vec<String> = j["deviceIntegrity"]["deviceRecognitionVerdict"]
            .as_array()
            .map(|a| a.iter().map(|d| d.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(p.device_recognition_verdict, labels, "{id}");
        assert_eq!(
            p.app_licensing_verdict.as_deref(),
            j["accountDetails"]["appLicensingVerdict"].as_str(),
            "{id}"
        );
        assert_eq!(
            p.play_protect_verdict.as_deref(),
            j["environmentDetails"]["playProtectVerdict"].as_str(),
            "{id}"
        );
    }
    let p = decrypt_and_verify(&token("standard_valid"), &keys()).unwrap();
    assert_eq!(p.timestamp_millis, MADE_MS);
    assert_eq!(p.version_code, Some(42));
    assert_eq!(p.sdk_version, Some(35));
    assert_eq!(p.device_activity_level.as_deref(), Some("LEVEL_1"));
    assert_eq!(p.apps_detected, ["KNOWN_INSTALLED"]);
    assert_eq!(p.app_licensing_verdict.as_deref(), Some("LICENSED"));
}

#[test]
fn payload_serializes_with_googles_names() {
    let p: IntegrityPayload = decrypt_and_verify(&token("standard_valid"), &keys()).unwrap();
    let j = serde_json::to_value(&p).unwrap();
    assert_eq!(j["appRecognitionVerdict"], PLAY_RECOGNIZED);
    assert_eq!(j["deviceRecognitionVerdict"][0], MEETS_DEVICE_INTEGRITY);
    assert_eq!(j["appLicensingVerdict"], "LICENSED");
    assert_eq!(j["packageName"], "com.example.attest");
    assert_eq!(j["timestampMillis"], MADE_MS);
    assert_eq!(
        j["certificateSha256Digest"][0],
        "pcynIbs92yo8VWfgARumLv1iENj-DoBX43XI4Zq5iTk"
    );
}

#[test]
fn stable_codes_name_each_check() {
    let v = check(&token("standard_wrong_package"), &standard()).unwrap();
    let codes: Vec<&str> = v.reasons.iter().map(Reason::code).collect();
    assert_eq!(codes, ["request-package-mismatch", "app-package-mismatch"]);
    let e = check(&token("standard_wrong_signing_key"), &standard()).unwrap_err();
    assert_eq!(e.code(), "signature");
    assert_eq!(
        e.to_string(),
        "the JWS signature does not verify with the verification key"
    );
}

// ---------------------------------------------------------------------------
// Tampered copies of a valid vector.

#[test]
fn a_flipped_bit_anywhere_is_refused() {
    let t = token("standard_valid");
    // Encrypted key: the RFC 3394 integrity check fails.
    for byte in [0, 20, 39] {
        assert_eq!(
            check(&flip(&t, 1, byte), &standard()).unwrap_err(),
            TokenError::KeyUnwrap
        );
    }
    // IV, ciphertext, tag: AES-GCM authentication fails.
    for (part, byte) in [(2, 0), (2, 11), (3, 0), (3, 500), (4, 0), (4, 15)] {
        assert_eq!(
            check(&flip(&t, part, byte), &standard()).unwrap_err(),
            TokenError::Decryption,
            "part {part} byte {byte}"
        );
    }
    // The protected header is the AAD: an equivalent header with other bytes
    // fails authentication.
    let mut parts: Vec<&str> = t.trim().split('.').collect();
    let other = b64(br#"{"enc":"A256GCM","alg":"A256KW"}"#);
    parts[0] = &other;
    assert_eq!(
        check(&parts.join("."), &standard()).unwrap_err(),
        TokenError::Decryption
    );
}

#[test]
fn a_flipped_bit_of_the_jws_signature_is_refused() {
    let payload = payload_json("standard_valid");
    let jws = sign_es256(&payload);
    // The re-made token is valid: the builders are right.
    assert!(check(&seal_a256(&jws), &standard()).unwrap().is_valid());
    for byte in [0, 31, 32, 63] {
        let bad = flip(&jws, 2, byte);
        assert_eq!(
            check(&seal_a256(&bad), &standard()).unwrap_err(),
            TokenError::Signature
        );
    }
    // A modified payload under the original signature.
    let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
    parts[1] = b64(payload.replace("LICENSED", "UNLICENSED").as_bytes());
    assert_eq!(
        check(&seal_a256(&parts.join(".")), &standard()).unwrap_err(),
        TokenError::Signature
    );
}

#[test]
fn wrong_keys_are_refused() {
    let t = token("standard_valid");
    let index = index();
    let spki = BASE64
        .decode(field(&index, "verification_key_b64_der_spki").as_bytes())
        .unwrap();
    let wrong_aes = Keys::new(&[0x42; 32], &spki).unwrap();
    assert_eq!(
        verify(&t, &wrong_aes, &standard(), at()).unwrap_err(),
        TokenError::KeyUnwrap
    );
    // Another P-256 key for verification.
    let rng = SystemRandom::new();
    let other = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let other =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, other.as_ref(), &rng).unwrap();
    let mut other_spki = spki[..26].to_vec();
    other_spki.extend_from_slice(ring::signature::KeyPair::public_key(&other).as_ref());
    let wrong_ec = Keys::new(&decryption_key(), &other_spki).unwrap();
    assert_eq!(
        verify(&t, &wrong_ec, &standard(), at()).unwrap_err(),
        TokenError::Signature
    );
}

#[test]
fn keys_are_checked_and_never_printed() {
    let index = index();
    let spki = BASE64
        .decode(field(&index, "verification_key_b64_der_spki").as_bytes())
        .unwrap();
    let aes = decryption_key();
    assert_eq!(
        Keys::new(&aes[..31], &spki).unwrap_err(),
        KeyError::DecryptionKeyLength(31)
    );
    assert_eq!(
        Keys::new(&[aes.as_slice(), &[0]].concat(), &spki).unwrap_err(),
        KeyError::DecryptionKeyLength(33)
    );
    // The raw point, a PEM text, a compressed point, another curve's OID.
    assert_eq!(
        Keys::new(&aes, &spki[26..]).unwrap_err(),
        KeyError::VerificationKey
    );
    let pem = field(&index, "verification_key_pem");
    assert_eq!(
        Keys::new(&aes, pem.as_bytes()).unwrap_err(),
        KeyError::VerificationKey
    );
    let mut compressed = spki.clone();
    compressed[26] = 0x02;
    assert_eq!(
        Keys::new(&aes, &compressed).unwrap_err(),
        KeyError::VerificationKey
    );
    let mut other_curve = spki.clone();
    other_curve[22] = 0x08;
    assert_eq!(
        Keys::new(&aes, &other_curve).unwrap_err(),
        KeyError::VerificationKey
    );
    let keys = Keys::new(&aes, &spki).unwrap();
    let debug = format!("{keys:?}");
    assert_eq!(debug, "Keys { .. }");
}

// ---------------------------------------------------------------------------
// Headers.

#[test]
fn only_a256kw_and_a256gcm_are_accepted() {
    let jws = sign_es256(&payload_json("standard_valid"));
    for (header, err) in [
        (
            r#"{"alg":"A128KW","enc":"A256GCM"}"#,
            TokenError::JweAlgorithm("A128KW".into()),
        ),
        (
            r#"{"alg":"dir","enc":"A256GCM"}"#,
            TokenError::JweAlgorithm("dir".into()),
        ),
        (
            r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#,
            TokenError::JweAlgorithm("RSA-OAEP-256".into()),
        ),
        (
            r#"{"enc":"A256GCM"}"#,
            TokenError::JweAlgorithm(String::new()),
        ),
        (
            r#"{"alg":"A256KW","enc":"A128GCM"}"#,
            TokenError::JweEncryption("A128GCM".into()),
        ),
        (
            r#"{"alg":"A256KW","enc":"A256CBC-HS512"}"#,
            TokenError::JweEncryption("A256CBC-HS512".into()),
        ),
        (
            r#"{"alg":"A256KW","enc":"A256GCM","zip":"DEF"}"#,
            TokenError::RefusedHeader {
                header: "JWE",
                member: "zip",
            },
        ),
        (
            r#"{"alg":"A256KW","enc":"A256GCM","crit":["exp"],"exp":1}"#,
            TokenError::RefusedHeader {
                header: "JWE",
                member: "crit",
            },
        ),
        (
            r#"{"alg":"A256KW","enc":"A256GCM","crit":[]}"#,
            TokenError::RefusedHeader {
                header: "JWE",
                member: "crit",
            },
        ),
        (
            r#"{"alg":"A256KW","enc":"A256GCM","crit":null}"#,
            TokenError::RefusedHeader {
                header: "JWE",
                member: "crit",
            },
        ),
        (
            r#"{"alg":"A256KW","enc":"A256GCM","zip":null}"#,
            TokenError::RefusedHeader {
                header: "JWE",
                member: "zip",
            },
        ),
    ] {
        assert_eq!(
            check(&seal(header, jws.as_bytes()), &standard()).unwrap_err(),
            err,
            "{header}"
        );
    }
    // Other members are ignored (keys are never taken from the token).
    let t = seal(
        r#"{"alg":"A256KW","enc":"A256GCM","kid":"x","typ":"JWE"}"#,
        jws.as_bytes(),
    );
    assert!(check(&t, &standard()).unwrap().is_valid());
}

#[test]
fn malformed_protected_headers_are_refused() {
    let jws = sign_es256(&payload_json("standard_valid"));
    for header in [
        r#"{"alg":"A256KW","alg":"A256KW","enc":"A256GCM"}"#,
        r#"{"alg":"A256KW","enc":"A256GCM","zip":"DEF","zip":"DEF"}"#,
        r#"["A256KW","A256GCM"]"#,
        r#"{"alg":"A256KW","enc":"A256GCM""#,
        r#"{"alg":256,"enc":"A256GCM"}"#,
        "",
    ] {
        assert!(
            matches!(
                check(&seal(header, jws.as_bytes()), &standard()),
                Err(TokenError::MalformedJwe(_))
            ),
            "{header}"
        );
    }
}

#[test]
fn only_es256_is_accepted_inside() {
    let payload = payload_json("standard_valid");
    for (header, err) in [
        (
            r#"{"alg":"HS256"}"#,
            TokenError::JwsAlgorithm("HS256".into()),
        ),
        (r#"{"alg":"none"}"#, TokenError::JwsAlgorithm("none".into())),
        (
            r#"{"alg":"ES384"}"#,
            TokenError::JwsAlgorithm("ES384".into()),
        ),
        (r#"{"typ":"JWT"}"#, TokenError::JwsAlgorithm(String::new())),
        (
            r#"{"alg":"ES256","crit":["b64"],"b64":false}"#,
            TokenError::RefusedHeader {
                header: "JWS",
                member: "crit",
            },
        ),
        (
            r#"{"alg":"ES256","zip":"DEF"}"#,
            TokenError::RefusedHeader {
                header: "JWS",
                member: "zip",
            },
        ),
    ] {
        let t = seal_a256(&sign(header, payload.as_bytes()));
        assert_eq!(check(&t, &standard()).unwrap_err(), err, "{header}");
    }
    // An empty signature (alg none style) and a DER signature are refused.
    let jws = sign_es256(&payload);
    let (input, _) = jws.rsplit_once('.').unwrap();
    for sig in ["", &b64(&[0x30; 70])] {
        let t = seal_a256(&format!("{input}.{sig}"));
        assert!(
            matches!(check(&t, &standard()), Err(TokenError::MalformedJws(_))),
            "{sig}"
        );
    }
    // A plaintext that is not a JWS.
    for plain in ["", "a.b", "a.b.c.d", "{\"requestDetails\":{}}"] {
        assert!(
            matches!(
                check(&seal_a256(plain), &standard()),
                Err(TokenError::MalformedJws(_))
            ),
            "{plain}"
        );
    }
}

// ---------------------------------------------------------------------------
// Encoding.

#[test]
fn compact_encoding_is_strict() {
    let t = token("standard_valid");
    let t = t.trim();
    let parts: Vec<&str> = t.split('.').collect();
    // Surrounding whitespace (a file's newline) is fine.
    assert!(
        check(&format!("\n {t}\r\n"), &standard())
            .unwrap()
            .is_valid()
    );
    let with = |n: usize, part: &str| {
        let mut p = parts.clone();
        p[n] = part;
        p.join(".")
    };
    let padded_iv = format!("{}=", parts[2]);
    let std_alphabet = parts[3].replace('-', "+").replace('_', "/");
    assert_ne!(std_alphabet, parts[3], "the ciphertext has a - or _");
    let cases = [
        String::new(),
        parts[..4].join("."),
        format!("{t}.AAAA"),
        with(2, &padded_iv),
        with(3, &std_alphabet),
        with(1, ""),
        with(2, &b64(&[0; 16])),
        with(4, &b64(&[0; 12])),
        with(1, &b64(&[0; 48])),
        with(0, "e30"),
        format!("{t}\u{0}"),
        t.replace('.', " "),
    ];
    for bad in &cases {
        let err = check(bad, &standard()).unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::MalformedJwe(_) | TokenError::JweAlgorithm(_)
            ),
            "{bad:?}: {err:?}"
        );
    }
    // Non-canonical trailing bits of the last character of the tag.
    let tag = parts[4];
    let last = tag.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let pos = alphabet.find(last).unwrap();
    let sibling = alphabet.chars().nth(pos ^ 1).unwrap();
    let noncanonical = format!("{}{sibling}", &tag[..tag.len() - 1]);
    assert!(matches!(
        check(&with(4, &noncanonical), &standard()),
        Err(TokenError::MalformedJwe(_))
    ));
    // Too large.
    let huge = "a".repeat(64 * 1024 + 1);
    assert_eq!(check(&huge, &standard()).unwrap_err(), TokenError::TooLarge);
}

// ---------------------------------------------------------------------------
// The payload and the policy checks.

#[test]
fn payload_must_be_a_verdict() {
    for bad in [
        standard_payload_with(|j| j["requestDetails"]["timestampMillis"] = "-5".into()),
        standard_payload_with(|j| j["requestDetails"]["timestampMillis"] = "12a".into()),
        standard_payload_with(|j| j["requestDetails"]["timestampMillis"] = "".into()),
        standard_payload_with(|j| j["requestDetails"]["timestampMillis"] = (-5).into()),
        standard_payload_with(|j| {
            j.as_object_mut().unwrap().remove("requestDetails");
        }),
        standard_payload_with(|j| {
            j["appIntegrity"]
                .as_object_mut()
                .unwrap()
                .remove("appRecognitionVerdict");
        }),
        standard_payload_with(|j| {
            j["requestDetails"]
                .as_object_mut()
                .unwrap()
                .remove("requestPackageName");
        }),
        standard_payload_with(|j| j["deviceIntegrity"]["deviceRecognitionVerdict"] = "x".into()),
        r#"{"requestDetails":{"requestPackageName":"com.example.attest","requestPackageName":"com.example.attest","timestampMillis":"1"},"appIntegrity":{"appRecognitionVerdict":"PLAY_RECOGNIZED"}}"#.to_owned(),
        "[]".to_owned(),
        "null".to_owned(),
        "not json".to_owned(),
    ] {
        assert!(
            matches!(
                check(&make(&bad), &standard()),
                Err(TokenError::MalformedPayload(_))
            ),
            "{bad}"
        );
    }
    // proto3 JSON also allows numbers for int64; unknown members are ignored.
    let t = make(&standard_payload_with(|j| {
        j["requestDetails"]["timestampMillis"] = MADE_MS.into();
        j["appIntegrity"]["versionCode"] = 7.into();
        j["someFutureField"] = serde_json::json!({"a": [1]});
    }));
    let v = check(&t, &standard()).unwrap();
    assert!(v.is_valid(), "{:?}", v.reasons);
    assert_eq!(v.payload.version_code, Some(7));
}

#[test]
fn freshness_is_checked_at_the_given_instant() {
    let t = token("standard_valid");
    let e = standard();
    let age = |ms: u64| verify(&t, &keys(), &e, at_ms(ms)).unwrap().reasons;
    let max = 5 * 60 * 1000;
    assert!(age(MADE_MS).is_empty());
    assert!(age(MADE_MS + max).is_empty());
    assert_eq!(age(MADE_MS + max + 1), [Reason::Stale { age_ms: max + 1 }]);
    assert_eq!(
        age(MADE_MS + 86_400_000),
        [Reason::Stale { age_ms: 86_400_000 }]
    );
    assert!(age(MADE_MS - 60_000).is_empty());
    assert_eq!(
        age(MADE_MS - 60_001),
        [Reason::FromFuture { ahead_ms: 60_001 }]
    );
    // Before the epoch: far in the future, no overflow.
    let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
    assert_eq!(
        verify(&t, &keys(), &e, before).unwrap().reasons,
        [Reason::FromFuture {
            ahead_ms: MADE_MS + 10_000
        }]
    );
    // Adjustable.
    let mut short = e.clone();
    short.max_age = Duration::from_secs(10);
    assert_eq!(
        verify(&t, &keys(), &short, at()).unwrap().reasons,
        [Reason::Stale { age_ms: 30_000 }]
    );
    let mut huge = e.clone();
    huge.max_age = Duration::MAX;
    huge.max_future = Duration::MAX;
    assert!(
        verify(&t, &keys(), &huge, at_ms(u64::MAX))
            .unwrap()
            .is_valid()
    );
    assert!(verify(&t, &keys(), &huge, before).unwrap().is_valid());
}

#[test]
fn policy_defaults_and_adjustments() {
    let e = Expectations::standard("p", "h");
    assert_eq!(e.required_device_labels, [MEETS_DEVICE_INTEGRITY]);
    assert_eq!(e.required_app_recognition.as_deref(), Some(PLAY_RECOGNIZED));
    assert_eq!(e.certificate_sha256, None);
    assert!(!e.require_licensed);
    assert_eq!(e.max_age, Duration::from_secs(300));
    assert!(!e.allow_testing_response);

    // Stronger device labels.
    let valid = token("standard_valid");
    let mut strong = standard();
    strong.required_device_labels =
        vec![MEETS_DEVICE_INTEGRITY.into(), MEETS_STRONG_INTEGRITY.into()];
    assert_eq!(
        reasons(&valid, &strong),
        [Reason::DeviceIntegrity {
            missing: vec![MEETS_STRONG_INTEGRITY.into()]
        }]
    );
    // Relaxed: no device labels, any app recognition.
    let mut relaxed = standard();
    relaxed.required_device_labels.clear();
    relaxed.required_app_recognition = None;
    relaxed.certificate_sha256 = None;
    assert!(reasons(&token("standard_no_device_integrity"), &relaxed).is_empty());
    assert!(reasons(&token("standard_unrecognized_version"), &relaxed).is_empty());
    // Licensing on request.
    let mut licensed = standard();
    licensed.require_licensed = true;
    licensed.certificate_sha256 = None;
    licensed.required_app_recognition = None;
    assert!(reasons(&valid, &licensed).is_empty());
    assert_eq!(
        reasons(&token("standard_unevaluated"), &licensed),
        [Reason::Licensing {
            found: Some(UNEVALUATED.into())
        }]
    );
    // Another certificate digest.
    let mut other = standard();
    other.certificate_sha256 = Some([0; 32]);
    assert_eq!(reasons(&valid, &other), [Reason::CertificateDigest]);
    // A classic verdict with the wrong nonce; a standard one checked as classic.
    let mut nonce = classic();
    nonce.binding = genuine_platform::playintegrity::RequestBinding::Nonce("other".into());
    assert_eq!(
        reasons(&token("classic_valid"), &nonce),
        [Reason::Nonce {
            found: Some("Y2xhc3NpYy1yZXF1ZXN0LW5vbmNlLTAxMjM0NTY3ODlhYmNkZWY".into())
        }]
    );
    assert_eq!(reasons(&valid, &classic()), [Reason::Nonce { found: None }]);
}

#[test]
fn test_responses_are_refused_unless_allowed() {
    let t = make(&standard_payload_with(|j| {
        j["testingDetails"] = serde_json::json!({"isTestingResponse": true});
    }));
    let mut e = standard();
    let v = check(&t, &e).unwrap();
    assert!(v.payload.is_testing_response);
    assert_eq!(v.reasons, [Reason::TestingResponse]);
    assert_eq!(v.reasons[0].code(), "testing-response");
    e.allow_testing_response = true;
    assert!(check(&t, &e).unwrap().is_valid());
    assert!(
        !decrypt_and_verify(&token("standard_valid"), &keys())
            .unwrap()
            .is_testing_response
    );
}

#[test]
fn every_failed_check_is_reported() {
    let t = make(&standard_payload_with(|j| {
        j["requestDetails"]["requestPackageName"] = "a.b".into();
        j["requestDetails"]["requestHash"] = "x".into();
        j["appIntegrity"]["packageName"] = "a.b".into();
        j["appIntegrity"]["appRecognitionVerdict"] = UNRECOGNIZED_VERSION.into();
        j["appIntegrity"]["certificateSha256Digest"] = serde_json::json!(["AAAA", "!"]);
        j["deviceIntegrity"] = serde_json::json!({});
        j["accountDetails"]["appLicensingVerdict"] = "UNLICENSED".into();
        j["requestDetails"]["timestampMillis"] = "1".into();
    }));
    let mut e = standard();
    e.require_licensed = true;
    let codes: Vec<&str> = reasons(&t, &e).iter().map(Reason::code).collect();
    assert_eq!(
        codes,
        [
            "request-package-mismatch",
            "app-package-mismatch",
            "request-hash-mismatch",
            "certificate-digest-mismatch",
            "app-not-recognized",
            "device-integrity",
            "not-licensed",
            "stale",
        ]
    );
    // The digest also matches in padded or standard base64 (one of several).
    let t = make(&standard_payload_with(|j| {
        j["appIntegrity"]["certificateSha256Digest"] = serde_json::json!([
            "78WG_knjLlpMXjmX1e-vUZjlX9dSCcTxaJfyao8ukMI",
            "pcynIbs92yo8VWfgARumLv1iENj+DoBX43XI4Zq5iTk="
        ]);
    }));
    assert!(reasons(&t, &standard()).is_empty());
}

//! Apple App Attest vectors from `shared/vectors/appattest` (read in place):
//! every case gives the outcome `vectors.json` states at its `verify_at`
//! instant, and so does every derived negative case it lists, plus forged
//! and tampered certificates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use ciborium::value::Value as Cbor;
use genuine_platform::appattest::{
    AppAttestError, AssertionParams, AttestationParams, ClientData, Environment, EnvironmentPolicy,
    public_key_from_pem, verify_assertion, verify_attestation,
};
use genuine_platform::roots;
use genuine_platform::x509::{self, ChainError, ChainOptions, TrustAnchor};
use serde_json::Value as Json;

const DAY: i64 = 86_400;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

fn index() -> Vec<Json> {
    let text = std::fs::read_to_string(vectors_dir().join("appattest/vectors.json")).unwrap();
    let v: Json = serde_json::from_str(&text).unwrap();
    v["vectors"].as_array().unwrap().clone()
}

fn b64(s: &str) -> Vec<u8> {
    genuine_platform::value::decode_base64_any(s).unwrap()
}

fn sha256(d: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, d)
        .as_ref()
        .to_vec()
}

fn object(case: &Json) -> Vec<u8> {
    let path = vectors_dir()
        .join("appattest")
        .join(case["file"].as_str().unwrap());
    let bytes = b64(std::fs::read_to_string(path).unwrap().trim());
    assert_eq!(
        data_encoding::HEXLOWER.encode(&sha256(&bytes)),
        case["sha256_of_decoded_object"].as_str().unwrap(),
        "{}",
        case["id"]
    );
    bytes
}

/// RFC 3339 in UTC (`Z` or `+00:00`) → Unix seconds.
fn unix(s: &str) -> i64 {
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap();
    let (date, time) = s.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (H. Hinnant).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * DAY + t[0] * 3600 + t[1] * 60 + t[2]
}

fn policy_for(env: &str) -> EnvironmentPolicy {
    match env {
        "development" => EnvironmentPolicy::DevelopmentOnly,
        "production" => EnvironmentPolicy::ProductionOnly,
        other => panic!("environment {other}"),
    }
}

struct Att {
    id: String,
    object: Vec<u8>,
    app_id: String,
    cdh: Vec<u8>,
    key_id: Vec<u8>,
    env: String,
    at: i64,
    leaf_not_before: i64,
    leaf_not_after: i64,
    case: Json,
}

fn attestations() -> Vec<Att> {
    index()
        .into_iter()
        .filter(|c| c["type"] == "attestation")
        .map(|c| Att {
            id: c["id"].as_str().unwrap().to_owned(),
            object: object(&c),
            app_id: c["app_id"].as_str().unwrap().to_owned(),
            cdh: b64(c["client_data_hash_b64"].as_str().unwrap()),
            key_id: b64(c["key_id_b64"].as_str().unwrap()),
            env: c["environment"].as_str().unwrap().to_owned(),
            at: unix(c["verify_at"].as_str().unwrap()),
            leaf_not_before: unix(c["leaf_cert_validity"][0].as_str().unwrap()),
            leaf_not_after: unix(c["leaf_cert_validity"][1].as_str().unwrap()),
            case: c,
        })
        .collect()
}

impl Att {
    fn params(&self) -> AttestationParams<'_> {
        AttestationParams::new(&self.app_id, &self.cdh, self.at)
            .key_id(&self.key_id)
            .environment(policy_for(&self.env))
    }

    fn reasons(&self, object: &[u8], params: &AttestationParams<'_>) -> Vec<AppAttestError> {
        match verify_attestation(object, params) {
            Ok(v) => panic!("{}: accepted: {v:?}", self.id),
            Err(e) => e.reasons,
        }
    }
}

fn cbor(bytes: &[u8]) -> Cbor {
    ciborium::de::from_reader(bytes).unwrap()
}

fn encode(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn entry<'a>(map: &'a mut Cbor, key: &str) -> &'a mut Cbor {
    let Cbor::Map(m) = map else {
        panic!("not a map")
    };
    &mut m
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .unwrap()
        .1
}

/// The attestation object with its x5c replaced.
fn with_x5c(object: &[u8], chain: Vec<Vec<u8>>) -> Vec<u8> {
    let mut v = cbor(object);
    let stmt = entry(&mut v, "attStmt");
    *entry(stmt, "x5c") = Cbor::Array(chain.into_iter().map(Cbor::Bytes).collect());
    encode(&v)
}

fn x5c(object: &[u8]) -> Vec<Vec<u8>> {
    let mut v = cbor(object);
    let stmt = entry(&mut v, "attStmt");
    let Cbor::Array(a) = entry(stmt, "x5c").clone() else {
        panic!()
    };
    a.into_iter().map(|c| c.into_bytes().unwrap()).collect()
}

fn pem_file(rel: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(vectors_dir().join(rel)).unwrap();
    x509::pem_certificates(&text).unwrap().remove(0)
}

#[test]
fn built_in_apple_root_equals_the_vectors_copy() {
    let ours = include_bytes!("../roots/apple_app_attestation_root_ca.pem");
    let theirs =
        std::fs::read(vectors_dir().join("roots/apple_app_attestation_root_ca.pem")).unwrap();
    assert_eq!(&ours[..], &theirs[..]);
    assert_eq!(roots::apple_app_attestation().len(), 1);
}

#[test]
fn every_attestation_verifies_at_its_instant() {
    let atts = attestations();
    assert_eq!(atts.len(), 10, "attestation cases in vectors.json");
    let mut envs = (0, 0);
    for a in &atts {
        assert_eq!(a.case["expected"], "valid");
        let v = verify_attestation(&a.object, &a.params())
            .unwrap_or_else(|e| panic!("{}: {e} {:?}", a.id, e.reasons));
        assert_eq!(v.key_id.to_vec(), a.key_id, "{}", a.id);
        let pem = a.case["expected_public_key_pem"].as_str().unwrap();
        assert_eq!(v.public_key, public_key_from_pem(pem).unwrap(), "{}", a.id);
        assert_eq!(v.public_key.len(), 65);
        let spki = x509::pem_blocks(pem, "PUBLIC KEY").unwrap().remove(0);
        assert_eq!(v.public_key_spki, spki, "{}", a.id);
        assert_eq!(u64::from(v.counter), a.case["counter"].as_u64().unwrap());
        assert_eq!(v.environment.as_str(), a.env, "{}", a.id);
        assert_eq!(
            v.receipt.len() as u64,
            a.case["receipt_len"].as_u64().unwrap(),
            "{}",
            a.id
        );
        match v.environment {
            Environment::Development => envs.0 += 1,
            Environment::Production => envs.1 += 1,
        }
        // Without an expected key id, and with either environment allowed.
        let any =
            AttestationParams::new(&a.app_id, &a.cdh, a.at).environment(EnvironmentPolicy::Any);
        assert!(verify_attestation(&a.object, &any).is_ok(), "{}", a.id);
    }
    assert_eq!(envs, (9, 1));
}

#[test]
fn derived_attestation_negatives() {
    let mut count = 0;
    for a in attestations() {
        for text in a.case["derived_negative_cases"].as_array().unwrap() {
            let text = text.as_str().unwrap();
            let reasons = if text.starts_with("verify_at = leaf notAfter + 1 day") {
                let mut p = a.params();
                p.now = a.leaf_not_after + DAY;
                (
                    a.reasons(&a.object, &p),
                    vec![AppAttestError::Certificate(ChainError::Expired {
                        index: 0,
                        not_after: a.leaf_not_after,
                    })],
                )
            } else if text.starts_with("client_data_hash = SHA256(\"wrong\")") {
                let wrong = sha256(b"wrong");
                let mut p = a.params();
                p.client_data_hash = &wrong;
                (
                    a.reasons(&a.object, &p),
                    vec![AppAttestError::NonceMismatch],
                )
            } else if text.starts_with("app_id = ") {
                let team = a.app_id.split('.').next().unwrap();
                let wrong = format!("{team}.wrong.bundle");
                assert!(text.contains(&wrong), "{text}");
                let mut p = a.params();
                p.app_id = &wrong;
                (a.reasons(&a.object, &p), vec![AppAttestError::RpIdMismatch])
            } else if text.starts_with("key_id = base64(32 zero bytes)") {
                let zero = [0u8; 32];
                let p = a.params().key_id(&zero);
                (
                    a.reasons(&a.object, &p),
                    vec![AppAttestError::KeyIdMismatch],
                )
            } else if text.starts_with("environment policy = production only") {
                assert_eq!(a.env, "development");
                let p = a.params().environment(EnvironmentPolicy::ProductionOnly);
                (
                    a.reasons(&a.object, &p),
                    vec![AppAttestError::EnvironmentNotAllowed(
                        Environment::Development,
                    )],
                )
            } else if text.starts_with("environment policy = development only") {
                assert_eq!(a.env, "production");
                let p = a.params().environment(EnvironmentPolicy::DevelopmentOnly);
                (
                    a.reasons(&a.object, &p),
                    vec![AppAttestError::EnvironmentNotAllowed(
                        Environment::Production,
                    )],
                )
            } else {
                panic!("{}: derived case not covered: {text}", a.id);
            };
            assert_eq!(reasons.0, reasons.1, "{}: {text}", a.id);
            count += 1;
        }
    }
    assert_eq!(count, 50);
}

#[test]
fn more_attestation_negatives() {
    let google = TrustAnchor::from_pem(
        &std::fs::read_to_string(
            vectors_dir().join("roots/google_hw_attestation_root_rsa_2022_f1c172a699eaf51d.pem"),
        )
        .unwrap(),
    )
    .unwrap();
    for a in attestations() {
        // Before the leaf's notBefore.
        let mut p = a.params();
        p.now = a.leaf_not_before - 1;
        assert!(matches!(
            a.reasons(&a.object, &p).as_slice(),
            [AppAttestError::Certificate(ChainError::NotYetValid {
                index: 0,
                ..
            })]
        ));
        // Another root.
        let p = a.params().roots(&google);
        assert_eq!(
            a.reasons(&a.object, &p),
            vec![AppAttestError::Certificate(ChainError::Untrusted)],
            "{}",
            a.id
        );
        // No root at all.
        let p = a.params().roots(&[]);
        assert_eq!(
            a.reasons(&a.object, &p),
            vec![AppAttestError::Certificate(ChainError::Untrusted)]
        );
        let chain = x5c(&a.object);
        assert_eq!(chain.len(), 2, "{}", a.id);
        // Tampered leaf: a byte of the serial number (signed part).
        let mut leaf = chain[0].clone();
        leaf[15] ^= 1;
        let obj = with_x5c(&a.object, vec![leaf, chain[1].clone()]);
        assert_eq!(
            a.reasons(&obj, &a.params()),
            vec![AppAttestError::Certificate(ChainError::BadSignature {
                index: 0
            })],
            "{}",
            a.id
        );
        // Tampered leaf signature (last byte).
        let mut leaf = chain[0].clone();
        *leaf.last_mut().unwrap() ^= 1;
        let obj = with_x5c(&a.object, vec![leaf, chain[1].clone()]);
        assert_eq!(
            a.reasons(&obj, &a.params()),
            vec![AppAttestError::Certificate(ChainError::BadSignature {
                index: 0
            })]
        );
        // Tampered intermediate signature.
        let mut inter = chain[1].clone();
        *inter.last_mut().unwrap() ^= 1;
        let obj = with_x5c(&a.object, vec![chain[0].clone(), inter]);
        assert_eq!(
            a.reasons(&obj, &a.params()),
            vec![AppAttestError::Certificate(ChainError::BadSignature {
                index: 1
            })]
        );
        // The leaf alone.
        let obj = with_x5c(&a.object, vec![chain[0].clone()]);
        assert_eq!(
            a.reasons(&obj, &a.params()),
            vec![AppAttestError::Certificate(ChainError::Untrusted)]
        );
        // The root alone, or as the leaf.
        let root = pem_file("roots/apple_app_attestation_root_ca.pem");
        assert!(
            x509::verify_chain(
                &[&root],
                roots::apple_app_attestation(),
                a.at,
                &ChainOptions::strict()
            ) == Err(ChainError::LeafIsAnchor)
        );
        // The root appended: still valid (the anchor is in the chain).
        let root = pem_file("roots/apple_app_attestation_root_ca.pem");
        let obj = with_x5c(
            &a.object,
            vec![chain[0].clone(), chain[1].clone(), root.clone()],
        );
        assert!(verify_attestation(&obj, &a.params()).is_ok(), "{}", a.id);
        // Anything after the anchor is refused.
        let obj = with_x5c(
            &a.object,
            vec![chain[0].clone(), chain[1].clone(), root.clone(), root],
        );
        assert_eq!(
            a.reasons(&obj, &a.params()),
            vec![AppAttestError::Certificate(ChainError::BeyondAnchor {
                index: 2
            })]
        );
        // Tampered authData counter: the nonce no longer matches.
        let mut v = cbor(&a.object);
        let Cbor::Bytes(ad) = entry(&mut v, "authData") else {
            panic!()
        };
        ad[36] = 1;
        let obj = encode(&v);
        assert_eq!(
            a.reasons(&obj, &a.params()),
            vec![
                AppAttestError::NonceMismatch,
                AppAttestError::CounterNotZero(1)
            ]
        );
        // Wrong fmt.
        let mut v = cbor(&a.object);
        *entry(&mut v, "fmt") = Cbor::Text("packed".into());
        assert_eq!(
            a.reasons(&encode(&v), &a.params()),
            vec![AppAttestError::Format("packed".into())]
        );
        // Trailing bytes after the CBOR item.
        let mut obj = a.object.clone();
        obj.push(0);
        assert_eq!(a.reasons(&obj, &a.params()), vec![AppAttestError::Cbor]);
        // Every truncation is refused without a panic.
        for n in (0..a.object.len()).step_by(97) {
            assert!(verify_attestation(&a.object[..n], &a.params()).is_err());
        }
        // Several failures at once are all reported, with the decoded fields.
        let wrong = sha256(b"wrong");
        let mut p = a.params();
        p.client_data_hash = &wrong;
        p.app_id = "X.y";
        p.now = a.leaf_not_after + 1;
        let e = verify_attestation(&a.object, &p).unwrap_err();
        assert_eq!(e.reasons.len(), 3, "{:?}", e.reasons);
        assert_eq!(
            e.reasons
                .iter()
                .map(AppAttestError::code)
                .collect::<Vec<_>>(),
            ["certificate-expired", "nonce-mismatch", "rp-id-mismatch"]
        );
        assert_eq!(e.decoded.unwrap().key_id.to_vec(), a.key_id);
    }
}

#[test]
fn forged_certificates_are_refused() {
    let case = index()
        .into_iter()
        .find(|c| c["type"] == "negative-certificates")
        .unwrap();
    assert_eq!(case["expected"], "reject");
    let fake_leaf = pem_file("appattest/negative/uebelack_fake_credcert_selfsigned.pem");
    let fake_ca =
        pem_file("appattest/negative/uebelack_fake_subca_named_Apple_App_Attestation_CA_1.pem");
    let atts = attestations();
    let a = atts.iter().find(|a| a.id == "uebelack_production").unwrap();
    let real = x5c(&a.object);
    let chains = [
        vec![fake_leaf.clone(), real[1].clone()],
        vec![real[0].clone(), fake_ca.clone()],
        vec![fake_leaf.clone(), fake_ca.clone()],
        vec![fake_ca.clone()],
        vec![fake_leaf.clone()],
        vec![real[0].clone(), fake_ca.clone(), real[1].clone()],
    ];
    for (i, chain) in chains.into_iter().enumerate() {
        let obj = with_x5c(&a.object, chain.clone());
        let r = a.reasons(&obj, &a.params());
        assert!(
            r.iter()
                .any(|e| matches!(e, AppAttestError::Certificate(_))),
            "chain {i}: {r:?}"
        );
        // The chain check on its own refuses them too, also leniently.
        let lenient = ChainOptions::strict()
            .allow_ca_without_basic_constraints(true)
            .allow_ca_without_key_cert_sign(true)
            .allow_ecdsa_null_parameters(true);
        assert!(
            x509::verify_chain(&chain, roots::apple_app_attestation(), a.at, &lenient).is_err(),
            "chain {i}"
        );
    }
    // A fake CA passed as a root does not make the real chain trusted.
    let fake_root = TrustAnchor::from_certificate_der(&fake_ca).unwrap();
    let p = a.params().roots(std::slice::from_ref(&fake_root));
    assert_eq!(
        a.reasons(&a.object, &p),
        vec![AppAttestError::Certificate(ChainError::Untrusted)]
    );
}

struct Asr {
    id: String,
    object: Vec<u8>,
    app_id: String,
    client_data: Vec<u8>,
    key: Vec<u8>,
    previous: u32,
    counter: u32,
    case: Json,
}

fn assertions() -> Vec<Asr> {
    index()
        .into_iter()
        .filter(|c| c["type"] == "assertion")
        .map(|c| Asr {
            id: c["id"].as_str().unwrap().to_owned(),
            object: object(&c),
            app_id: c["app_id"].as_str().unwrap().to_owned(),
            client_data: b64(c["client_data_b64"].as_str().unwrap()),
            key: public_key_from_pem(c["public_key_pem"].as_str().unwrap()).unwrap(),
            previous: u32::try_from(c["previous_counter"].as_u64().unwrap()).unwrap(),
            counter: u32::try_from(c["expected_counter"].as_u64().unwrap()).unwrap(),
            case: c,
        })
        .collect()
}

impl Asr {
    fn params(&self) -> AssertionParams<'_> {
        AssertionParams::new(
            &self.app_id,
            ClientData::Raw(&self.client_data),
            &self.key,
            self.previous,
        )
    }

    fn reasons(&self, object: &[u8], params: &AssertionParams<'_>) -> Vec<AppAttestError> {
        match verify_assertion(object, params) {
            Ok(v) => panic!("{}: accepted: {v:?}", self.id),
            Err(e) => e.reasons,
        }
    }
}

#[test]
fn every_assertion_verifies() {
    let all = assertions();
    assert_eq!(all.len(), 9, "assertion cases in vectors.json");
    for s in &all {
        assert_eq!(s.case["expected"], "valid");
        assert_eq!(s.case["authenticator_data_len"], 37);
        let v =
            verify_assertion(&s.object, &s.params()).unwrap_or_else(|e| panic!("{}: {e}", s.id));
        assert_eq!(v.counter, s.counter, "{}", s.id);
        // The same with the client data hash given instead.
        let hash: [u8; 32] = sha256(&s.client_data).try_into().unwrap();
        assert_eq!(
            b64(s.case["client_data_hash_b64"].as_str().unwrap()),
            hash.to_vec()
        );
        let mut p = s.params();
        p.client_data = ClientData::Hash(&hash);
        assert_eq!(verify_assertion(&s.object, &p).unwrap().counter, s.counter);
    }
    // Assertion keys that come from an attestation vector match its key id.
    let atts = attestations();
    for s in &all {
        if let Some(a) = atts.iter().find(|a| s.id == format!("{}_assertion", a.id)) {
            let v = verify_assertion(&s.object, &s.params()).unwrap();
            assert_eq!(v.key_id.to_vec(), a.key_id, "{}", s.id);
        }
    }
}

#[test]
fn derived_assertion_negatives() {
    let all = assertions();
    let mut count = 0;
    for (i, s) in all.iter().enumerate() {
        for text in s.case["derived_negative_cases"].as_array().unwrap() {
            let text = text.as_str().unwrap();
            if text.starts_with("previous_counter >= ") {
                for previous in [s.counter, s.counter + 1, u32::MAX] {
                    let mut p = s.params();
                    p.previous_counter = previous;
                    assert_eq!(
                        s.reasons(&s.object, &p),
                        vec![AppAttestError::CounterNotIncreasing {
                            counter: s.counter,
                            previous
                        }]
                    );
                }
            } else if text.starts_with("client_data altered by one byte") {
                let mut cd = s.client_data.clone();
                cd[0] ^= 1;
                let mut p = s.params();
                p.client_data = ClientData::Raw(&cd);
                assert_eq!(
                    s.reasons(&s.object, &p),
                    vec![AppAttestError::SignatureInvalid]
                );
            } else if text.starts_with("app_id altered") {
                let wrong = format!("{}x", s.app_id);
                let mut p = s.params();
                p.app_id = &wrong;
                assert_eq!(s.reasons(&s.object, &p), vec![AppAttestError::RpIdMismatch]);
            } else if text.starts_with("public key of another vector") {
                let other = &all[(i + 1) % all.len()];
                assert_ne!(other.key, s.key);
                let mut p = s.params();
                p.public_key = &other.key;
                assert_eq!(
                    s.reasons(&s.object, &p),
                    vec![AppAttestError::SignatureInvalid]
                );
            } else {
                panic!("{}: derived case not covered: {text}", s.id);
            }
            count += 1;
        }
        // Structure: truncations, trailing bytes, a bad key.
        for n in 0..s.object.len() {
            assert!(verify_assertion(&s.object[..n], &s.params()).is_err());
        }
        let mut obj = s.object.clone();
        obj.push(0);
        assert_eq!(s.reasons(&obj, &s.params()), vec![AppAttestError::Cbor]);
        let mut p = s.params();
        p.public_key = &s.key[1..];
        assert_eq!(
            s.reasons(&s.object, &p),
            vec![AppAttestError::PublicKeyInvalid]
        );
    }
    assert_eq!(count, 36);
}

#[test]
fn flipped_bytes_never_panic_nor_pass() {
    let atts = attestations();
    let a = &atts[0];
    let receipt = verify_attestation(&a.object, &a.params()).unwrap().receipt;
    let start = a
        .object
        .windows(receipt.len())
        .position(|w| w == receipt)
        .unwrap();
    let opaque = start..start + receipt.len();
    for i in (0..a.object.len()).step_by(3) {
        let mut obj = a.object.clone();
        obj[i] ^= 0x5a;
        let r = verify_attestation(&obj, &a.params());
        // Only bytes of the opaque receipt (not verified here) may change.
        assert!(r.is_err() || opaque.contains(&i), "byte {i}");
    }
    let s = &assertions()[0];
    for i in 0..s.object.len() {
        let mut obj = s.object.clone();
        obj[i] ^= 0x5a;
        assert!(verify_assertion(&obj, &s.params()).is_err(), "byte {i}");
    }
}

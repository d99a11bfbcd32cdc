//! Platform attestation end to end through the service: App Attest
//! attestations and assertions, Android Key Attestation and Play Integrity,
//! with evidence built here under test roots that the service is configured
//! to trust in place of Apple's and Google's (real devices cannot be had in
//! CI). Proves the wiring, the binding of the platform challenge to the nonce
//! and the device key, the App Attest counter store, the revocation list and
//! the policy switch `require.platform_attestation`.
//!
//! Android leaves carry real KeyDescriptions from `shared/vectors/android`
//! (read in place) with only the challenge replaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use aes_kw::{KeyInit, KwAes256};
use ciborium::value::Value as Cbor;
use common::*;
use genuine_protocol::b64;
use genuine_protocol::platform::{PlatformEvidence, PlayRequest, platform_challenge};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, SerialNumber,
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
};
use serde_json::{Value, json};

const APP: &str = "com.example.shop";
const API: &str = "api.example.com";
const TEAM: &str = "TEAM123456";
const BUNDLE: &str = "com.example.shop.ios";

fn sha256(d: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, d).as_ref());
    out
}

fn vectors() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

// ------------------------------------------------------------ certificates

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

impl Ca {
    fn root(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    fn intermediate(&self, name: &str, serial: &[u8]) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.serial_number = Some(SerialNumber::from_slice(serial));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Self {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `key` with one custom extension.
    fn leaf(&self, key: &KeyPair, oid: &[u64], ext: Vec<u8>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "attested key");
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(oid, ext));
        params.signed_by(key, &self.issuer).unwrap().der().to_vec()
    }

    fn pem_file(&self, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let body = data_encoding::BASE64.encode(&self.der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            ),
        )
        .unwrap();
        path
    }
}

// ------------------------------------------------------------ DER helpers

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(contents.len()));
    out.extend_from_slice(contents);
    out
}

/// Splits DER into its top-level TLVs (whole encodings).
fn tlvs(mut der: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !der.is_empty() {
        let (len, hdr) = match der[1] {
            n @ 0..=0x7f => (usize::from(n), 2),
            0x81 => (usize::from(der[2]), 3),
            0x82 => ((usize::from(der[2]) << 8) | usize::from(der[3]), 4),
            other => panic!("length form {other:#x}"),
        };
        out.push(der[..hdr + len].to_vec());
        der = &der[hdr + len..];
    }
    out
}

fn contents(tlv: &[u8]) -> &[u8] {
    let hdr = match tlv[1] {
        0..=0x7f => 2,
        0x81 => 3,
        _ => 4,
    };
    &tlv[hdr..]
}

/// The KeyDescription of a vector chain's leaf, with its challenge replaced.
fn key_description(vector: &str, challenge: &[u8]) -> Vec<u8> {
    let pem = std::fs::read_to_string(vectors().join("android/chains").join(vector)).unwrap();
    let chain = genuine_platform::x509::pem_certificates(&pem).unwrap();
    let leaf = genuine_platform::x509::parse_leaf(&chain[0]).unwrap();
    let ext = leaf
        .extensions
        .iter()
        .find(|e| e.oid == "1.3.6.1.4.1.11129.2.1.17")
        .unwrap();
    let seq = tlvs(&ext.value);
    assert_eq!(seq.len(), 1);
    let mut fields = tlvs(contents(&seq[0]));
    assert_eq!(
        fields[4][0], 0x04,
        "attestationChallenge is an OCTET STRING"
    );
    fields[4] = tlv(0x04, challenge);
    tlv(0x30, &fields.concat())
}

const KEY_DESCRIPTION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17];
const APPLE_NONCE_OID: &[u64] = &[1, 2, 840, 113_635, 100, 8, 2];

// Nokia X10: a real, locked, verified-boot TEE device.
const NOKIA: &str = "warden_Nokia_X10.pem";
const NOKIA_PACKAGE: &str = "at.asitplus.attestation_client";
// Akita: Google's unlocked development device.
const AKITA: &str = "ka_akita_sdk34_TEE_EC_NONE.pem";

fn vector_field(vector: &str, f: impl Fn(&Value) -> Value) -> Value {
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(vectors().join("android/vectors.json")).unwrap(),
    )
    .unwrap();
    let id = vector.trim_end_matches(".pem");
    let case = index["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    f(case)
}

fn akita_package() -> Value {
    vector_field(AKITA, |c| {
        c["key_description"]["attestationApplicationId"]["packages"][0]["name"].clone()
    })
}

fn akita_digest() -> Value {
    vector_field(AKITA, |c| {
        c["key_description"]["attestationApplicationId"]["signatureDigestsSha256_hex"][0].clone()
    })
}

fn nokia_digest() -> String {
    vector_field(NOKIA, |c| {
        c["key_description"]["attestationApplicationId"]["signatureDigestsSha256_hex"][0].clone()
    })
    .as_str()
    .unwrap()
    .to_owned()
}

// ------------------------------------------------------------ App Attest

/// A device's App Attest key.
struct AppAttestKey {
    key: KeyPair,
    signer: EcdsaKeyPair,
    id: [u8; 32],
}

impl AppAttestKey {
    fn new() -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .unwrap();
        let point = ring::signature::KeyPair::public_key(&signer)
            .as_ref()
            .to_vec();
        Self {
            id: sha256(&point),
            key,
            signer,
        }
    }

    /// An attestation object for `client_data_hash` by `ca`.
    fn attestation(&self, ca: &Ca, client_data_hash: &[u8], aaguid: &[u8; 16]) -> Vec<u8> {
        let mut auth = sha256(format!("{TEAM}.{BUNDLE}").as_bytes()).to_vec();
        auth.push(0x40); // AT
        auth.extend_from_slice(&0u32.to_be_bytes());
        auth.extend_from_slice(aaguid);
        auth.extend_from_slice(&32u16.to_be_bytes());
        auth.extend_from_slice(&self.id);
        auth.extend_from_slice(&[0xa0]); // credential public key (not read)
        let mut msg = auth.clone();
        msg.extend_from_slice(client_data_hash);
        let nonce = sha256(&msg);
        let ext = tlv(0x30, &tlv(0xa1, &tlv(0x04, &nonce)));
        let leaf = ca.leaf(&self.key, APPLE_NONCE_OID, ext);
        let object = Cbor::Map(vec![
            (
                Cbor::Text("fmt".into()),
                Cbor::Text("apple-appattest".into()),
            ),
            (
                Cbor::Text("attStmt".into()),
                Cbor::Map(vec![
                    (
                        Cbor::Text("x5c".into()),
                        Cbor::Array(vec![Cbor::Bytes(leaf), Cbor::Bytes(ca.der.clone())]),
                    ),
                    (Cbor::Text("receipt".into()), Cbor::Bytes(vec![0x30, 0x00])),
                ]),
            ),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth)),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&object, &mut out).unwrap();
        out
    }

    /// An assertion over `client_data` with `counter`.
    fn assertion(&self, client_data: &[u8], counter: u32) -> Vec<u8> {
        let mut auth = sha256(format!("{TEAM}.{BUNDLE}").as_bytes()).to_vec();
        auth.push(0x40);
        auth.extend_from_slice(&counter.to_be_bytes());
        let mut msg = auth.clone();
        msg.extend_from_slice(&sha256(client_data));
        let nonce = sha256(&msg);
        let sig = self.signer.sign(&SystemRandom::new(), &nonce).unwrap();
        let object = Cbor::Map(vec![
            (
                Cbor::Text("signature".into()),
                Cbor::Bytes(sig.as_ref().to_vec()),
            ),
            (Cbor::Text("authenticatorData".into()), Cbor::Bytes(auth)),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&object, &mut out).unwrap();
        out
    }
}

const PRODUCTION: &[u8; 16] = b"appattest\0\0\0\0\0\0\0";
const DEVELOPMENT: &[u8; 16] = b"appattestdevelop";

// ------------------------------------------------------------ Play Integrity

struct PlayKeys {
    decryption: [u8; 32],
    signer: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl PlayKeys {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let mut decryption = [0u8; 32];
        rng.fill(&mut decryption).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
                .unwrap();
        Self {
            decryption,
            signer,
            spki: rcgen::PublicKeyData::subject_public_key_info(&key),
        }
    }

    /// A token of the vector payload with `edit` applied, sealed for these keys.
    fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut payload: Value = serde_json::from_str(
            &std::fs::read_to_string(vectors().join("playintegrity/standard_valid.payload.json"))
                .unwrap(),
        )
        .unwrap();
        edit(&mut payload);
        let rng = SystemRandom::new();
        let input = format!(
            "{}.{}",
            b64::encode(br#"{"alg":"ES256"}"#),
            b64::encode(payload.to_string().as_bytes())
        );
        let sig = self.signer.sign(&rng, input.as_bytes()).unwrap();
        let jws = format!("{input}.{}", b64::encode(sig.as_ref()));
        let mut cek = [0u8; 32];
        let mut iv = [0u8; 12];
        rng.fill(&mut cek).unwrap();
        rng.fill(&mut iv).unwrap();
        let mut wrapped = [0u8; 40];
        KwAes256::new(&self.decryption.into())
            .wrap_key(&cek, &mut wrapped)
            .unwrap();
        let header = b64::encode(br#"{"alg":"A256KW","enc":"A256GCM"}"#);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
        let mut data = jws.into_bytes();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(header.as_bytes()),
                &mut data,
            )
            .unwrap();
        format!(
            "{header}.{}.{}.{}.{}",
            b64::encode(&wrapped),
            b64::encode(&iv),
            b64::encode(&data),
            b64::encode(tag.as_ref())
        )
    }
}

// ------------------------------------------------------------ the flow

/// A service trusting the test roots, with the app registered and reasons
/// revealed.
struct Setup {
    svc: TestService,
    apple: Ca,
    android_root: Ca,
    android: Ca,
    _roots: tempfile::TempDir,
}

const ANDROID_INTERMEDIATE_SERIAL: [u8; 8] = [0x4e, 0x0b, 0x1a, 0x77, 0x21, 0x33, 0x05, 0x9c];

async fn setup(status: Option<Value>) -> Setup {
    let roots = tempfile::tempdir().unwrap();
    let apple_root = Ca::root("Test App Attestation Root CA");
    let apple = apple_root.intermediate("Test App Attestation CA 1", &[7]);
    let android_root = Ca::root("Test Key Attestation Root");
    let android =
        android_root.intermediate("Test Key Attestation CA", &ANDROID_INTERMEDIATE_SERIAL);
    let apple_file = apple_root.pem_file(roots.path(), "apple.pem");
    let android_file = android_root.pem_file(roots.path(), "android.pem");
    let status_file = status.map(|s| {
        let p = roots.path().join("status.json");
        std::fs::write(&p, s.to_string()).unwrap();
        p
    });
    let svc = TestService::start_with(T0, |c| {
        c.apple_roots_file = Some(apple_file);
        c.android_roots_file = Some(android_file);
        c.android_status = status_file.map(|p| p.display().to_string());
    })
    .await;
    svc.add_api(API, "ES256", 300).await;
    svc.register(APP, &digest(1)).await;
    svc.policy("reveal_reasons", true).await;
    Setup {
        svc,
        apple,
        android_root,
        android,
        _roots: roots,
    }
}

impl Setup {
    /// Challenge, then evidence whose platform part `platform` builds from
    /// the platform challenge; returns the verdict (`None`: valid) as the
    /// reasons the service revealed.
    async fn attest(
        &self,
        device: &TestDevice,
        platform: impl FnOnce(&[u8; 32]) -> Option<PlatformEvidence>,
    ) -> Option<Vec<String>> {
        let nonce = self.svc.challenge("default", APP).await;
        let challenge = platform_challenge(&b64::decode(&nonce).unwrap(), device.key.public_key());
        let mut attempt = Attempt::new(APP, API, digest(1));
        attempt.platform_evidence = platform(&challenge).map(|p| p.to_json());
        let (status, v) = self
            .svc
            .attest_evidence(&device.evidence(&nonce, &attempt))
            .await;
        assert_eq!(status, 200, "{v}");
        let verifier = self.svc.verifier("default", API).await;
        let token = v["token"].as_str().unwrap();
        match verifier.verify(token, self.svc.clock.get()) {
            Ok(_) => {
                assert!(v.get("rejection").is_none(), "{v}");
                None
            }
            Err(_) => Some(
                v["rejection"]["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
            ),
        }
    }

    /// [`Self::attest`], and the platform checks the service counted for
    /// this attestation (`kind:result`, from `/metrics` before and after).
    async fn attest_counted(
        &self,
        device: &TestDevice,
        platform: impl FnOnce(&[u8; 32]) -> Option<PlatformEvidence>,
    ) -> (Option<Vec<String>>, Vec<String>) {
        let before = platform_counts(&self.prometheus().await);
        let verdict = self.attest(device, platform).await;
        let after = platform_counts(&self.prometheus().await);
        let mut new = Vec::new();
        for (cell, n) in after {
            for _ in before.get(&cell).copied().unwrap_or(0)..n {
                new.push(cell.clone());
            }
        }
        (verdict, new)
    }

    async fn prometheus(&self) -> String {
        self.svc
            .http
            .get(format!("{}/metrics", self.svc.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A refusal for platform attestation, with the checks the service counted
/// (`kind:check`) for it.
fn refused(counted: &[&str]) -> (Option<Vec<String>>, Vec<String>) {
    (
        Some(vec!["platform-attestation-invalid".to_owned()]),
        counted.iter().map(|c| (*c).to_owned()).collect(),
    )
}

/// Every `genuine_platform_attestations_total` cell, as `kind:result` → count.
fn platform_counts(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("genuine_platform_attestations_total{kind=\""))
        .filter_map(|l| {
            let (kind, rest) = l.split_once("\",result=\"")?;
            let (result, n) = rest.split_once("\"} ")?;
            Some((format!("{kind}:{result}"), n.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn app_attest_attestation_then_assertions() {
    let s = setup(None).await;
    s.svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/apple"),
            Some(json!({"team_id": TEAM, "bundle_id": BUNDLE})),
        )
        .await;
    s.svc.policy("require.platform_attestation", true).await;
    let device = TestDevice::new();
    let key = AppAttestKey::new();

    // Nothing: missing.
    assert_eq!(
        s.attest(&device, |_| None).await,
        Some(vec!["platform-attestation-missing".to_owned()])
    );
    // An assertion before any attestation: the key is unknown.
    assert_eq!(
        s.attest_counted(&device, |c| Some(
            PlatformEvidence::AppleAppAttestAssertion {
                key_id: key.id,
                assertion: key.assertion(c, 1),
            }
        ))
        .await,
        refused(&["apple-app-attest-assertion:key-unknown"])
    );
    // The attestation of a key for this nonce and device key: valid.
    let mut kept = Vec::new();
    assert_eq!(
        s.attest(&device, |c| {
            let object = key.attestation(&s.apple, c, PRODUCTION);
            kept = object.clone();
            Some(PlatformEvidence::AppleAppAttest {
                key_id: key.id,
                attestation: object,
            })
        })
        .await,
        None
    );
    // The same object again with a new nonce: its challenge is the old one.
    assert_eq!(
        s.attest_counted(&device, |_| Some(PlatformEvidence::AppleAppAttest {
            key_id: key.id,
            attestation: kept.clone(),
        }))
        .await,
        refused(&["apple-app-attest:nonce-mismatch"])
    );
    // Assertions: the counter must climb.
    let assert_with = |counter: u32| {
        let key = &key;
        move |c: &[u8; 32]| {
            Some(PlatformEvidence::AppleAppAttestAssertion {
                key_id: key.id,
                assertion: key.assertion(c, counter),
            })
        }
    };
    assert_eq!(s.attest(&device, assert_with(1)).await, None);
    assert_eq!(
        s.attest_counted(&device, assert_with(1)).await,
        refused(&["apple-app-attest-assertion:counter-not-increasing"])
    );
    assert_eq!(s.attest(&device, assert_with(5)).await, None);
    assert_eq!(
        s.attest_counted(&device, assert_with(3)).await,
        refused(&["apple-app-attest-assertion:counter-not-increasing"])
    );
    // An assertion over another challenge (a replayed assertion): refused.
    assert_eq!(
        s.attest_counted(&device, |_| Some(
            PlatformEvidence::AppleAppAttestAssertion {
                key_id: key.id,
                assertion: key.assertion(&[0; 32], 9),
            }
        ))
        .await,
        refused(&["apple-app-attest-assertion:signature-invalid"])
    );

    // Another device key cannot use this device's attestation or key: the
    // challenge is bound to the device key, and keys are kept per device.
    let thief = TestDevice::new();
    let stolen = {
        let nonce = s.svc.challenge("default", APP).await;
        let c = platform_challenge(&b64::decode(&nonce).unwrap(), device.key.public_key());
        key.attestation(&s.apple, &c, PRODUCTION)
    };
    assert_eq!(
        s.attest_counted(&thief, |_| Some(PlatformEvidence::AppleAppAttest {
            key_id: key.id,
            attestation: stolen,
        }))
        .await,
        refused(&["apple-app-attest:nonce-mismatch"])
    );
    assert_eq!(
        s.attest_counted(&thief, assert_with(50)).await,
        refused(&["apple-app-attest-assertion:key-unknown"])
    );
    // The device's own key still works after the thief's attempts.
    assert_eq!(s.attest(&device, assert_with(6)).await, None);

    // A development key needs allow_development.
    let dev_key = AppAttestKey::new();
    let dev_attest = |c: &[u8; 32]| {
        Some(PlatformEvidence::AppleAppAttest {
            key_id: dev_key.id,
            attestation: dev_key.attestation(&s.apple, c, DEVELOPMENT),
        })
    };
    let dev_device = TestDevice::new();
    assert_eq!(
        s.attest_counted(&dev_device, dev_attest).await,
        refused(&["apple-app-attest:environment-not-allowed"])
    );
    s.svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/apple"),
            Some(json!({"team_id": TEAM, "bundle_id": BUNDLE, "allow_development": true})),
        )
        .await;
    assert_eq!(s.attest(&dev_device, dev_attest).await, None);
    // Another app id (team) in the settings: rpIdHash mismatch.
    s.svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/apple"),
            Some(json!({"team_id": "OTHERTEAM1", "bundle_id": BUNDLE})),
        )
        .await;
    assert_eq!(
        s.attest_counted(&device, assert_with(7)).await,
        refused(&["apple-app-attest-assertion:rp-id-mismatch"])
    );

    s.svc.stop().await;
}

#[tokio::test]
async fn replayed_requests_do_not_move_app_attest_state() {
    let s = setup(None).await;
    s.svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/apple"),
            Some(json!({"team_id": TEAM, "bundle_id": BUNDLE})),
        )
        .await;
    s.svc.policy("require.platform_attestation", true).await;
    let device = TestDevice::new();
    let key = AppAttestKey::new();
    let nonce = s.svc.challenge("default", APP).await;
    let c = platform_challenge(&b64::decode(&nonce).unwrap(), device.key.public_key());
    let mut a = Attempt::new(APP, API, digest(1));
    a.platform_evidence = Some(
        PlatformEvidence::AppleAppAttest {
            key_id: key.id,
            attestation: key.attestation(&s.apple, &c, PRODUCTION),
        }
        .to_json(),
    );
    let evidence = device.evidence(&nonce, &a);
    let (_, first) = s.svc.attest_evidence(&evidence).await;
    assert!(first.get("rejection").is_none(), "{first}");
    // The same request again: nonce-replayed, and no key state changes.
    let (_, again) = s.svc.attest_evidence(&evidence).await;
    assert_eq!(again["rejection"]["reasons"], json!(["nonce-replayed"]));

    // An assertion with counter 3 replayed: refused the second time, and
    // the stored counter stays 3 (an assertion with 4 still passes).
    let nonce = s.svc.challenge("default", APP).await;
    let c = platform_challenge(&b64::decode(&nonce).unwrap(), device.key.public_key());
    a.platform_evidence = Some(
        PlatformEvidence::AppleAppAttestAssertion {
            key_id: key.id,
            assertion: key.assertion(&c, 3),
        }
        .to_json(),
    );
    let evidence = device.evidence(&nonce, &a);
    let (_, ok) = s.svc.attest_evidence(&evidence).await;
    assert!(ok.get("rejection").is_none(), "{ok}");
    let (_, again) = s.svc.attest_evidence(&evidence).await;
    // The replayed assertion's counter was used up by the first request.
    assert_eq!(
        again["rejection"]["reasons"],
        json!(["nonce-replayed", "platform-attestation-invalid"])
    );
    assert_eq!(
        s.attest(&device, |c| Some(
            PlatformEvidence::AppleAppAttestAssertion {
                key_id: key.id,
                assertion: key.assertion(c, 4),
            }
        ))
        .await,
        None
    );
    s.svc.stop().await;
}

async fn set_android(s: &Setup, extra: Value) {
    let mut body = json!({"package": NOKIA_PACKAGE, "signing_digest": nokia_digest()});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    s.svc
        .admin("PUT", &format!("apps/{APP}/platform/android"), Some(body))
        .await;
}

fn android_chain(s: &Setup, vector: &str, challenge: &[u8]) -> PlatformEvidence {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = s.android.leaf(
        &key,
        KEY_DESCRIPTION_OID,
        key_description(vector, challenge),
    );
    PlatformEvidence::AndroidKeyAttestation {
        chain: vec![leaf, s.android.der.clone(), s.android_root.der.clone()],
    }
}

#[tokio::test]
async fn android_key_attestation() {
    let s = setup(None).await;
    set_android(&s, json!({})).await;
    s.svc.policy("require.platform_attestation", true).await;
    let device = TestDevice::new();

    assert_eq!(
        s.attest(&device, |c| Some(android_chain(&s, NOKIA, c)))
            .await,
        None
    );
    // A chain made for another challenge (another nonce, or another device key).
    assert_eq!(
        s.attest_counted(&device, |_| Some(android_chain(&s, NOKIA, &[1; 32])))
            .await,
        refused(&["android-key-attestation:challenge-mismatch"])
    );
    let other = TestDevice::new();
    let nonce = s.svc.challenge("default", APP).await;
    let for_device = platform_challenge(&b64::decode(&nonce).unwrap(), device.key.public_key());
    assert_eq!(
        s.attest_counted(&other, |_| Some(android_chain(&s, NOKIA, &for_device)))
            .await,
        refused(&["android-key-attestation:challenge-mismatch"])
    );
    // An unlocked development device, with its own package and digest
    // configured: refused for its boot state alone, and passes once allowed.
    let akita = json!({"package": akita_package(), "signing_digest": akita_digest()});
    s.svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/android"),
            Some(akita.clone()),
        )
        .await;
    assert_eq!(
        s.attest_counted(&device, |c| Some(android_chain(&s, AKITA, c)))
            .await,
        refused(&[
            "android-key-attestation:boot-not-verified",
            "android-key-attestation:bootloader-unlocked"
        ])
    );
    let mut relaxed = akita;
    relaxed["allow_unlocked"] = json!(true);
    s.svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/android"),
            Some(relaxed),
        )
        .await;
    assert_eq!(
        s.attest(&device, |c| Some(android_chain(&s, AKITA, c)))
            .await,
        None
    );
    set_android(&s, json!({})).await;
    // A chain under a root the service does not trust.
    let rogue_root = Ca::root("Rogue Root");
    let rogue = rogue_root.intermediate("Rogue CA", &[9]);
    assert_eq!(
        s.attest_counted(&device, |c| {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let leaf = rogue.leaf(&key, KEY_DESCRIPTION_OID, key_description(NOKIA, c));
            Some(PlatformEvidence::AndroidKeyAttestation {
                chain: vec![leaf, rogue.der.clone(), rogue_root.der.clone()],
            })
        })
        .await,
        refused(&["android-key-attestation:certificate-untrusted"])
    );
    // Settings: another package, then a patch level the device lacks.
    s.svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/android"),
            Some(json!({"package": "com.other", "signing_digest": nokia_digest()})),
        )
        .await;
    assert_eq!(
        s.attest_counted(&device, |c| Some(android_chain(&s, NOKIA, c)))
            .await,
        refused(&["android-key-attestation:package-mismatch"])
    );
    set_android(&s, json!({"min_patch_level": 209912})).await;
    assert_eq!(
        s.attest_counted(&device, |c| Some(android_chain(&s, NOKIA, c)))
            .await,
        refused(&["android-key-attestation:patch-level-too-old"])
    );
    s.svc.stop().await;
}

#[tokio::test]
async fn android_revoked_intermediate() {
    // The status list names the test intermediate: every chain through it fails.
    let serial = data_encoding::HEXLOWER.encode(&ANDROID_INTERMEDIATE_SERIAL);
    let status = json!({"entries": {serial: {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}});
    let s = setup(Some(status)).await;
    s.svc.policy("require.platform_attestation", true).await;
    let device = TestDevice::new();
    set_android(&s, json!({})).await;
    assert_eq!(
        s.attest_counted(&device, |c| Some(android_chain(&s, NOKIA, c)))
            .await,
        refused(&["android-key-attestation:certificate-revoked"])
    );
    s.svc.stop().await;
}

#[tokio::test]
async fn an_unreadable_status_list_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("status.json");
    std::fs::write(&bad, "[1, 2]").unwrap();
    let config = genuine_server::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        android_status: Some(bad.display().to_string()),
        ..genuine_server::config::Config::default()
    };
    let clock = std::sync::Arc::new(genuine_server::service::SystemClock);
    let e = genuine_server::start_embedded(&config, clock)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("android_status"), "{e}");
}

#[tokio::test]
async fn play_integrity() {
    let s = setup(None).await;
    let keys = PlayKeys::new();
    let cert = sha256(b"signing certificate");
    let v = s
        .svc
        .admin(
            "PUT",
            &format!("apps/{APP}/platform/play"),
            Some(json!({
                "package": "com.example.shop",
                "decryption_key": data_encoding::BASE64.encode(&keys.decryption),
                "verification_key": data_encoding::BASE64.encode(&keys.spki),
                "certificate_digest": data_encoding::HEXLOWER.encode(&cert),
            })),
        )
        .await;
    assert!(v["play"].get("decryption_key").is_none(), "{v}");
    assert!(
        !v.to_string()
            .contains(&data_encoding::BASE64.encode(&keys.decryption))
    );
    s.svc.policy("require.platform_attestation", true).await;
    let device = TestDevice::new();
    let now_ms = (T0 * 1000).to_string();
    let token = |c: &[u8; 32], classic: bool, edit: &dyn Fn(&mut Value)| {
        keys.token(|p| {
            p["requestDetails"]["requestPackageName"] = json!("com.example.shop");
            p["appIntegrity"]["packageName"] = json!("com.example.shop");
            p["appIntegrity"]["certificateSha256Digest"] = json!([b64::encode(&cert)]);
            p["requestDetails"]["timestampMillis"] = json!(now_ms);
            let details = p["requestDetails"].as_object_mut().unwrap();
            if classic {
                details.remove("requestHash");
                details.insert("nonce".into(), json!(b64::encode(c)));
            } else {
                details.insert("requestHash".into(), json!(b64::encode(c)));
            }
            edit(p);
        })
    };
    let play = |t: String, request| Some(PlatformEvidence::PlayIntegrity { token: t, request });
    assert_eq!(
        s.attest(&device, |c| play(
            token(c, false, &|_| {}),
            PlayRequest::Standard
        ))
        .await,
        None
    );
    assert_eq!(
        s.attest(&device, |c| play(
            token(c, true, &|_| {}),
            PlayRequest::Classic
        ))
        .await,
        None
    );
    // A verdict for another request, a device without integrity, a stale
    // verdict, another signing certificate, a tampered token.
    assert_eq!(
        s.attest_counted(&device, |_| play(
            token(&[3; 32], false, &|_| {}),
            PlayRequest::Standard
        ))
        .await,
        refused(&["play-integrity:request-hash-mismatch"])
    );
    assert_eq!(
        s.attest_counted(&device, |c| play(
            token(
                c,
                false,
                &|p| p["deviceIntegrity"]["deviceRecognitionVerdict"] = json!([])
            ),
            PlayRequest::Standard
        ))
        .await,
        refused(&["play-integrity:device-integrity"])
    );
    assert_eq!(
        s.attest_counted(&device, |c| play(
            token(c, false, &|p| p["requestDetails"]["timestampMillis"] =
                json!(((T0 - 3600) * 1000).to_string())),
            PlayRequest::Standard
        ))
        .await,
        refused(&["play-integrity:stale"])
    );
    assert_eq!(
        s.attest_counted(&device, |c| play(
            token(
                c,
                false,
                &|p| p["appIntegrity"]["certificateSha256Digest"] = json!([b64::encode(&[0; 32])])
            ),
            PlayRequest::Standard
        ))
        .await,
        refused(&["play-integrity:certificate-digest-mismatch"])
    );
    assert_eq!(
        s.attest_counted(&device, |c| {
            let t = token(c, false, &|_| {});
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            let mut ct = b64::decode(&parts[3]).unwrap();
            ct[5] ^= 1;
            parts[3] = b64::encode(&ct);
            play(parts.join("."), PlayRequest::Standard)
        })
        .await,
        refused(&["play-integrity:decryption"])
    );
    // A standard token presented as classic: the nonce is absent.
    assert_eq!(
        s.attest_counted(&device, |c| play(
            token(c, false, &|_| {}),
            PlayRequest::Classic
        ))
        .await,
        refused(&["play-integrity:nonce-mismatch"])
    );
    s.svc.stop().await;
}

#[tokio::test]
async fn platform_evidence_without_the_policy_and_malformed_evidence() {
    let s = setup(None).await;
    let device = TestDevice::new();
    // Not required, no settings: platform evidence that fails is counted,
    // and is no reason.
    assert_eq!(
        s.attest_counted(&device, |c| Some(android_chain(&s, NOKIA, c)))
            .await,
        (
            None,
            vec!["android-key-attestation:not-configured".to_owned()]
        )
    );
    s.svc.policy("require.platform_attestation", true).await;
    assert_eq!(
        s.attest_counted(&device, |c| Some(android_chain(&s, NOKIA, c)))
            .await,
        refused(&["android-key-attestation:not-configured"])
    );
    // Malformed or unknown platform evidence: still a token, reason invalid.
    for (bad, counted) in [
        (
            json!({"kind": "safetynet", "jws": "x"}),
            "unknown:kind-unknown",
        ),
        (
            json!({"kind": "android-key-attestation", "chain": "not a list"}),
            "unknown:evidence-malformed",
        ),
        (
            json!({"kind": "apple-app-attest", "key_id": "AA", "attestation": "AA"}),
            "unknown:evidence-base64",
        ),
        (json!({"no-kind": true}), "unknown:kind-missing"),
    ] {
        let before = platform_counts(&s.prometheus().await);
        let nonce = s.svc.challenge("default", APP).await;
        let mut a = Attempt::new(APP, API, digest(1));
        a.platform_evidence = bad.as_object().cloned();
        let (status, v) = s.svc.attest_evidence(&device.evidence(&nonce, &a)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["rejection"]["reasons"],
            json!(["platform-attestation-invalid"]),
            "{bad}"
        );
        let after = platform_counts(&s.prometheus().await);
        assert_eq!(
            after.get(counted).copied().unwrap_or(0),
            before.get(counted).copied().unwrap_or(0) + 1,
            "{bad}"
        );
    }
    s.svc.stop().await;
}

// Multi-threaded: the CLI runs as a blocking child process while the
// in-process service answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_settings_on_the_admin_plane() {
    let s = setup(None).await;
    let path = format!("/admin/v1/accounts/default/apps/{APP}/platform");
    let put = |kind: &str, body: Value| {
        let path = format!("{path}/{kind}");
        let svc = &s.svc;
        async move {
            svc.request("PUT", &path, Some(svc.admin.as_str()), Some(&body))
                .await
        }
    };
    // Refused values name the field.
    for (kind, body, field) in [
        (
            "apple",
            json!({"team_id": "T", "bundle_id": "a b"}),
            "bundle_id",
        ),
        (
            "android",
            json!({"package": "p", "signing_digest": "00"}),
            "signing_digest",
        ),
        (
            "android",
            json!({"package": "p", "signing_digest": nokia_digest(), "min_patch_level": 13}),
            "min_patch_level",
        ),
        (
            "play",
            json!({"package": "p", "decryption_key": "AAAA", "verification_key": "AAAA"}),
            "decryption_key",
        ),
    ] {
        let (status, v) = put(kind, body).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }
    let (status, v) = put("apple", json!({"team_id": "T"})).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid-request")),
        "{v}"
    );
    let (status, _) = put("safetynet", json!({})).await;
    assert_eq!(status, 404);

    // A dev token reads, but may not change the settings.
    let dev = s
        .svc
        .admin("POST", "tokens", Some(json!({"role": "dev"})))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = s
        .svc
        .request(
            "PUT",
            &format!("{path}/apple"),
            Some(dev.as_str()),
            Some(&json!({"team_id": TEAM, "bundle_id": BUNDLE})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, v) = s.svc.request("GET", &path, Some(dev.as_str()), None).await;
    assert_eq!((status, v), (200, json!({"app_id": APP})));

    // Through the CLI: set, show, clear.
    let genuine = |args: &[&str]| {
        let out = Command::new(genuine_bin())
            .env("GENUINE_SERVER", &s.svc.url)
            .env("GENUINE_ADMIN_TOKEN", &s.svc.admin)
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let keys = PlayKeys::new();
    let dk = format!("hex:{}", data_encoding::HEXLOWER.encode(&keys.decryption));
    let vk = format!("b64:{}", data_encoding::BASE64.encode(&keys.spki));
    let digest_v = format!("hex:{}", nokia_digest());
    for args in [
        vec![
            "app",
            "platform",
            "set",
            "apple",
            APP,
            "--team-id",
            TEAM,
            "--bundle-id",
            BUNDLE,
        ],
        vec![
            "app",
            "platform",
            "set",
            "android",
            APP,
            "--package",
            NOKIA_PACKAGE,
            "--signing-digest",
            &digest_v,
            "--min-patch-level",
            "202001",
        ],
        vec![
            "app",
            "platform",
            "set",
            "play",
            APP,
            "--package",
            APP,
            "--decryption-key",
            &dk,
            "--verification-key",
            &vk,
            "--device-label",
            "MEETS_STRONG_INTEGRITY",
        ],
    ] {
        let (code, out, err) = genuine(&args);
        assert_eq!(code, Some(0), "{args:?}: {out} {err}");
    }
    let (code, out, err) = genuine(&["app", "platform", "show", APP, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["apple"]["team_id"], TEAM);
    assert_eq!(shown["android"]["min_patch_level"], 202001);
    assert_eq!(
        shown["play"]["device_labels"],
        json!(["MEETS_STRONG_INTEGRITY"])
    );
    assert!(!out.contains(&data_encoding::BASE64.encode(&keys.decryption)));
    let (code, out, _) = genuine(&["app", "platform", "show", APP]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("production only") && out.contains("decryption key set"),
        "{out}"
    );
    let (code, _, err) = genuine(&["app", "platform", "clear", APP, "play"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = genuine(&["app", "platform", "clear", APP, "play"]);
    assert_eq!(code, Some(1), "{err}");
    let (code, _, err) = genuine(&[
        "app",
        "platform",
        "set",
        "android",
        APP,
        "--package",
        "p",
        "--signing-digest",
        "zz",
    ]);
    assert_eq!(code, Some(2), "{err}");
    let (_, v) = s.svc.request("GET", &path, Some(dev.as_str()), None).await;
    assert!(v.get("play").is_none() && v.get("apple").is_some(), "{v}");
    s.svc.stop().await;
}

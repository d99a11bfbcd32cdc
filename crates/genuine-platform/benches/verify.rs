//! The verification cost of each platform attestation kind, on the shared
//! vectors (read in place, each verified at its `verify_at` instant).
//!
//! Run with `cargo bench -p genuine-platform --bench verify`. Groups:
//!
//! - `appattest`: `attestation` (`verify_attestation` of the real iOS 14.2
//!   object `veehaitch_ios14_2`: CBOR, a 3-certificate P-384/P-256 chain to
//!   the Apple root, nonce, key id) and `assertion` (`verify_assertion` of
//!   `veehaitch_ios14_2_assertion`: one P-256 signature).
//! - `android`: `verify` of three real chains under the built-in Google
//!   roots: `ec_rkp_5_certs` (`ka_tegu_sdk36_SB_EC_2026_ROOT`: ECDSA P-256 and
//!   P-384 throughout, Key Attestation CA1), `rsa_factory_4_certs`
//!   (`gaka_algorithm_RSA_SecurityLevel_TEE`: RSA 2048/3072/4096 signatures
//!   throughout, the RSA root; an unlocked device, so `allow_unlocked`) and
//!   `mixed_factory_4_certs` (`warden_Nokia_X10`: RSA-4096 root, EC below;
//!   the strict policy); each with the 467-entry 2024 status list. Plus the
//!   parts: `key_description_parse` (the Nokia leaf's extension) and
//!   `status_list_parse_467` (the whole 2024 snapshot, what a server does on
//!   each refresh, not per attestation), and two baselines from the EC chain:
//!   `raw_ring_p384_sha384` (ring verifying Droid CA2's signature with the
//!   CA1 key) and `raw_ring_p256_sha256` (the leaf's signature with the
//!   attestation key).
//! - `play_integrity`: `verify` of `standard_valid` (JWE A256KW + A256GCM
//!   decryption, JWS ES256 verification, payload decode and checks).

// A benchmark's setup either works or the benchmark is meaningless: aborting
// with the message is the right response to a failure here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup aborts on failure"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use genuine_platform::android::{self, KeyAttestationParams, KeyDescription, Leniency};
use genuine_platform::appattest::{
    self, AssertionParams, AttestationParams, ClientData, EnvironmentPolicy,
};
use genuine_platform::playintegrity::{self, Expectations, Keys};
use genuine_platform::value::decode_base64_any;
use genuine_platform::x509;
use serde_json::Value as Json;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

fn read_json(rel: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir().join(rel)).unwrap()).unwrap()
}

/// RFC 3339 UTC (`…Z`, fractional seconds not used) → Unix seconds.
fn unix(s: &str) -> i64 {
    let s = s.strip_suffix('Z').unwrap();
    let (date, time) = s.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(2500))
}

fn case<'a>(index: &'a Json, id: &str) -> &'a Json {
    index["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

fn appattest(c: &mut Criterion) {
    let index = read_json("appattest/vectors.json");
    let object = |case: &Json| {
        let text =
            std::fs::read_to_string(dir().join("appattest").join(case["file"].as_str().unwrap()))
                .unwrap();
        decode_base64_any(text.trim()).unwrap()
    };
    let att = case(&index, "veehaitch_ios14_2");
    let att_object = object(att);
    let cdh = decode_base64_any(att["client_data_hash_b64"].as_str().unwrap()).unwrap();
    let key_id = decode_base64_any(att["key_id_b64"].as_str().unwrap()).unwrap();
    let app_id = att["app_id"].as_str().unwrap();
    let att_params = AttestationParams::new(app_id, &cdh, unix(att["verify_at"].as_str().unwrap()))
        .key_id(&key_id)
        .environment(EnvironmentPolicy::Any);
    assert!(appattest::verify_attestation(&att_object, &att_params).is_ok());

    let asr = case(&index, "veehaitch_ios14_2_assertion");
    let asr_object = object(asr);
    let client_data = decode_base64_any(asr["client_data_b64"].as_str().unwrap()).unwrap();
    let key = appattest::public_key_from_pem(asr["public_key_pem"].as_str().unwrap()).unwrap();
    let asr_params = AssertionParams::new(app_id, ClientData::Raw(&client_data), &key, 0);
    assert!(appattest::verify_assertion(&asr_object, &asr_params).is_ok());

    let mut g = c.benchmark_group("appattest");
    g.bench_function("attestation", |b| {
        b.iter(|| appattest::verify_attestation(black_box(&att_object), &att_params))
    });
    g.bench_function("assertion", |b| {
        b.iter(|| appattest::verify_assertion(black_box(&asr_object), &asr_params))
    });
    g.finish();
}

struct AndroidCase {
    chain: Vec<Vec<u8>>,
    challenge: Vec<u8>,
    package: String,
    digest: Vec<u8>,
    at: i64,
}

fn android_case(index: &Json, id: &str) -> AndroidCase {
    let c = case(index, id);
    let pem =
        std::fs::read_to_string(dir().join("android").join(c["file"].as_str().unwrap())).unwrap();
    let kd = &c["key_description"];
    let hex = |s: &str| data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap();
    AndroidCase {
        chain: x509::pem_certificates(&pem).unwrap(),
        challenge: hex(kd["attestationChallenge_hex"].as_str().unwrap()),
        package: kd["attestationApplicationId"]["packages"][0]["name"]
            .as_str()
            .unwrap()
            .to_owned(),
        digest: hex(
            kd["attestationApplicationId"]["signatureDigestsSha256_hex"][0]
                .as_str()
                .unwrap(),
        ),
        at: unix(c["verify_at"].as_str().unwrap()),
    }
}

fn android(c: &mut Criterion) {
    let index = read_json("android/vectors.json");
    let status_json = std::fs::read(
        dir().join("android/status/real_status_snapshot_2024-11-21_via_vvb2060.json"),
    )
    .unwrap();
    let list = android::RevocationList::from_json(&status_json).unwrap();
    assert_eq!(list.len(), 467);

    let mut g = c.benchmark_group("android");
    for (name, id, unlocked) in [
        ("ec_rkp_5_certs", "ka_tegu_sdk36_SB_EC_2026_ROOT", false),
        (
            "rsa_factory_4_certs",
            "gaka_algorithm_RSA_SecurityLevel_TEE",
            true,
        ),
        ("mixed_factory_4_certs", "warden_Nokia_X10", false),
    ] {
        let v = android_case(&index, id);
        let params = KeyAttestationParams::new(&v.challenge, v.at)
            .package(&v.package)
            .signing_digest(&v.digest)
            .allow_unlocked(unlocked)
            .revocations(&list);
        assert!(android::verify(&v.chain, &params).is_ok(), "{id}");
        g.bench_function(name, |b| {
            b.iter(|| android::verify(black_box(&v.chain), &params))
        });
    }
    let nokia = android_case(&index, "warden_Nokia_X10");
    let leaf = x509::parse_leaf(&nokia.chain[0]).unwrap();
    let ext = leaf
        .extensions
        .iter()
        .find(|e| e.oid == android::KEY_DESCRIPTION_OID)
        .unwrap()
        .value
        .clone();
    let leniency = Leniency::google();
    assert!(KeyDescription::parse(&ext, &leniency).is_ok());
    g.bench_function("key_description_parse", |b| {
        b.iter(|| KeyDescription::parse(black_box(&ext), &leniency))
    });
    g.bench_function("status_list_parse_467", |b| {
        b.iter(|| android::RevocationList::from_json(black_box(&status_json)))
    });
    // Baselines: one raw signature verification of each EC kind in the EC
    // chain (certificate i signed by certificate i + 1).
    let tegu = android_case(&index, "ka_tegu_sdk36_SB_EC_2026_ROOT");
    for (name, i, alg) in [
        (
            "raw_ring_p384_sha384",
            3,
            &ring::signature::ECDSA_P384_SHA384_ASN1,
        ),
        (
            "raw_ring_p256_sha256",
            0,
            &ring::signature::ECDSA_P256_SHA256_ASN1,
        ),
    ] {
        use x509_parser::prelude::FromDer;
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(&tegu.chain[i]).unwrap();
        let (_, issuer) =
            x509_parser::certificate::X509Certificate::from_der(&tegu.chain[i + 1]).unwrap();
        let key = ring::signature::UnparsedPublicKey::new(
            alg,
            issuer
                .tbs_certificate
                .subject_pki
                .subject_public_key
                .data
                .to_vec(),
        );
        let tbs = cert.tbs_certificate.as_ref().to_vec();
        let sig = cert.signature_value.data.to_vec();
        assert!(key.verify(&tbs, &sig).is_ok(), "{name}");
        g.bench_function(name, |b| b.iter(|| key.verify(black_box(&tbs), &sig)));
    }
    g.finish();
}

fn play_integrity(c: &mut Criterion) {
    let index = read_json("playintegrity/vectors.json");
    let field = |name: &str| index[name].as_str().unwrap().to_owned();
    let keys = Keys::new(
        &decode_base64_any(&field("decryption_key_b64")).unwrap(),
        &decode_base64_any(&field("verification_key_b64_der_spki")).unwrap(),
    )
    .unwrap();
    let mut expected = Expectations::standard(
        field("expected_package_name"),
        field("expected_request_hash"),
    );
    let digest = data_encoding::HEXLOWER
        .decode(field("expected_certificate_sha256_hex").as_bytes())
        .unwrap();
    expected.certificate_sha256 = Some(digest.try_into().unwrap());
    // verify_at: 2026-01-01T00:00:30Z.
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_630);
    let token =
        std::fs::read_to_string(dir().join("playintegrity/standard_valid.token.txt")).unwrap();
    assert!(
        playintegrity::verify(&token, &keys, &expected, at)
            .unwrap()
            .is_valid()
    );
    let mut g = c.benchmark_group("play_integrity");
    g.bench_function("verify", |b| {
        b.iter(|| playintegrity::verify(black_box(&token), &keys, &expected, at))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = appattest, android, play_integrity
}
criterion_main!(benches);

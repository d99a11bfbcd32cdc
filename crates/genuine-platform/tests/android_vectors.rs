//! Android Key Attestation vectors from `shared/vectors/android` (read in
//! place): every chain gives the chain outcome and the strict-policy outcome
//! `vectors.json` states at its `verify_at` instant; every leaf's
//! KeyDescription decodes to the index's `key_description` and to Google's
//! own decoding (`chains/*.google-decoding.json`); derived negative cases
//! (wrong challenge, package, digest, instant, roots; software and unlocked
//! chains; tampered leaves; revoked and suspended certificates; chain
//! layouts) are refused with the check that failed named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use genuine_platform::android::{
    self, AuthorizationList, KeyAttestationParams, KeyDescription, KeyDescriptionError, KeyOrigin,
    Leniency, ListKind, Quirk, Reason, RevocationList, RevocationStatus, SecurityLevel,
    VerifiedBootState,
};
use genuine_platform::roots;
use genuine_platform::x509::{self, ChainError, ChainOptions, KeyType, TrustAnchor};
use serde_json::{Value as Json, json};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

fn unhex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .unwrap()
}

fn b64(b: &[u8]) -> String {
    data_encoding::BASE64.encode(b)
}

/// RFC 3339 UTC (`…Z`) → Unix seconds.
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

struct Case {
    id: String,
    json: Json,
    chain: Vec<Vec<u8>>,
    at: i64,
}

impl Case {
    fn kd(&self) -> &Json {
        &self.json["key_description"]
    }

    fn challenge(&self) -> Vec<u8> {
        unhex(self.kd()["attestationChallenge_hex"].as_str().unwrap())
    }

    fn package(&self) -> String {
        self.kd()["attestationApplicationId"]["packages"][0]["name"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn digest(&self) -> Option<Vec<u8>> {
        self.kd()["attestationApplicationId"]["signatureDigestsSha256_hex"][0]
            .as_str()
            .map(unhex)
    }

    fn leaf_key_description(
        &self,
        leniency: &Leniency,
    ) -> Result<KeyDescription, KeyDescriptionError> {
        let leaf = x509::parse_leaf(&self.chain[0]).unwrap();
        let ext = leaf
            .extensions
            .iter()
            .find(|e| e.oid == android::KEY_DESCRIPTION_OID)
            .unwrap();
        KeyDescription::parse(&ext.value, leniency)
    }
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("android/vectors.json")).unwrap();
    let v: Json = serde_json::from_str(&text).unwrap();
    v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let file = dir().join("android").join(c["file"].as_str().unwrap());
            let pem = std::fs::read_to_string(file).unwrap();
            let at = c["verify_at"]
                .as_str()
                .or(c["upstream_test_time"].as_str())
                .map(unix)
                .unwrap();
            Case {
                id: c["id"].as_str().unwrap().to_owned(),
                json: c.clone(),
                chain: x509::pem_certificates(&pem).unwrap(),
                at,
            }
        })
        .collect()
}

fn case(id: &str) -> Case {
    cases().into_iter().find(|c| c.id == id).unwrap()
}

fn anchors(names: &[&str]) -> Vec<TrustAnchor> {
    names
        .iter()
        .flat_map(|n| {
            let pem = std::fs::read_to_string(dir().join("roots").join(n)).unwrap();
            TrustAnchor::from_pem(&pem).unwrap()
        })
        .collect()
}

const AOSP_ROOTS: [&str; 2] = [
    "aosp_software_attestation_root_ec_NOT_TRUSTED.pem",
    "aosp_software_attestation_root_rsa_NOT_TRUSTED.pem",
];

/// Google's roots and the AOSP software roots: the chains' own roots.
fn all_roots() -> Vec<TrustAnchor> {
    let mut r = roots::google_hardware_attestation().to_vec();
    r.extend(anchors(&AOSP_ROOTS));
    r
}

fn codes(r: &android::Rejected) -> Vec<&'static str> {
    r.reasons.iter().map(Reason::code).collect()
}

fn is_chain_reason(r: &Reason) -> bool {
    matches!(
        r,
        Reason::Chain(_)
            | Reason::ChainLength(_)
            | Reason::ChainLayout(_)
            | Reason::KeyDescriptionOutsideLeaf(_)
    )
}

#[test]
fn built_in_roots_are_the_vector_roots() {
    for (file, pem) in [
        (
            "google_hw_attestation_root_rsa_2016_e8fa196314d2fa18.pem",
            roots::GOOGLE_HW_ROOT_RSA_2016_PEM,
        ),
        (
            "google_hw_attestation_root_rsa_2019_d50ff25ba3f2d6b3.pem",
            roots::GOOGLE_HW_ROOT_RSA_2019_PEM,
        ),
        (
            "google_hw_attestation_root_rsa_2021_c36b7c44b9ae1831.pem",
            roots::GOOGLE_HW_ROOT_RSA_2021_PEM,
        ),
        (
            "google_hw_attestation_root_rsa_2022_f1c172a699eaf51d.pem",
            roots::GOOGLE_HW_ROOT_RSA_2022_PEM,
        ),
        (
            "google_key_attestation_ca1_ec_p384_2025.pem",
            roots::GOOGLE_KEY_ATTESTATION_CA1_PEM,
        ),
    ] {
        let copy = std::fs::read_to_string(dir().join("roots").join(file)).unwrap();
        assert_eq!(copy, pem, "{file}");
    }
    // The AOSP roots are recognised by key, never built in.
    let aosp = anchors(&AOSP_ROOTS);
    for a in &aosp {
        let digest = hex(ring::digest::digest(&ring::digest::SHA256, a.spki_der()).as_ref());
        assert!(android::AOSP_SOFTWARE_ROOT_SPKI_SHA256.contains(&digest.as_str()));
        assert!(
            roots::google_hardware_attestation()
                .iter()
                .all(|g| g.spki_der() != a.spki_der())
        );
    }
}

/// Every chain gives `expected_chain_result` against its own root (Google's
/// and the AOSP roots trusted, every policy relaxed), and
/// `expected_strict_policy` under the built-in roots and the strict policy.
#[test]
fn every_chain_gives_its_stated_outcomes() {
    let roots = all_roots();
    let (mut valid, mut refused, mut accept) = (0, 0, 0);
    for c in cases() {
        let challenge = c.challenge();
        let digest = c.digest();
        let package = c.package();
        let chain_expected = c.json["expected_chain_result"].as_str().unwrap();
        let policy_expected = c.json["expected_strict_policy"].as_str().unwrap();

        // The chain, everything else relaxed.
        let mut relaxed = KeyAttestationParams::new(&challenge, c.at)
            .roots(&roots)
            .allow_software(true)
            .allow_unlocked(true)
            .package(&package);
        if let Some(d) = &digest {
            relaxed = relaxed.signing_digest(d);
        }
        let got = android::verify(&c.chain, &relaxed);
        if chain_expected.starts_with("VALID") {
            let ok = got.unwrap_or_else(|e| panic!("{}: {e:?}", c.id));
            assert_eq!(ok.serials.len(), c.chain.len(), "{}", c.id);
            valid += 1;
        } else if c.id == "warden_Android_Emulator_RSA" {
            // "REJECT at any time: leaf validity window is empty". Google's
            // verifier does not check the leaf's validity (the device sets
            // it), and neither does this one: against its own (AOSP) root,
            // with every policy relaxed, the chain verifies. The stated
            // rejection rests on the leaf validity alone, as a strict PKIX
            // check shows; the strict policy refuses it (below).
            assert!(got.is_ok(), "{}: {got:?}", c.id);
            let strict_leaf = ChainOptions::strict()
                .allow_ca_without_basic_constraints(true)
                .allow_ca_without_key_cert_sign(true)
                .allow_legacy_rsa_1024(true);
            assert!(matches!(
                x509::verify_chain(&c.chain, &roots, c.at, &strict_leaf),
                Err(ChainError::Expired { index: 0, .. } | ChainError::NotYetValid { index: 0, .. })
            ));
            refused += 1;
        } else {
            assert!(chain_expected.starts_with("REJECT"), "{}", c.id);
            let e = got.expect_err(&c.id);
            assert!(e.reasons.iter().any(is_chain_reason), "{}: {e:?}", c.id);
            refused += 1;
        }

        // The strict policy, built-in roots.
        let mut strict = KeyAttestationParams::new(&challenge, c.at).package(&package);
        if let Some(d) = &digest {
            strict = strict.signing_digest(d);
        }
        let got = android::verify(&c.chain, &strict);
        if policy_expected.starts_with("ACCEPT") {
            let ok = got.unwrap_or_else(|e| panic!("{}: {e:?}", c.id));
            assert!(ok.hardware_backed, "{}", c.id);
            assert!(ok.security_level.is_hardware(), "{}", c.id);
            accept += 1;
            continue;
        }
        let e = got.expect_err(&c.id);
        let codes = codes(&e);
        if policy_expected.contains("verifiedBootState=Unverified deviceLocked=00") {
            assert_eq!(
                codes,
                ["boot-not-verified", "bootloader-unlocked"],
                "{}",
                c.id
            );
        } else if policy_expected.contains("software attestation") {
            for code in [
                "certificate-untrusted",
                "software-root",
                "security-level-software",
            ] {
                assert!(codes.contains(&code), "{}: {codes:?}", c.id);
            }
        } else {
            assert_eq!(policy_expected, "REJECT", "{}", c.id);
            assert!(
                e.reasons
                    .iter()
                    .any(|r| is_chain_reason(r) || matches!(r, Reason::SoftwareRoot)),
                "{}: {codes:?}",
                c.id
            );
        }
    }
    assert_eq!((valid, refused, accept), (26, 5, 6));
}

/// The decoded KeyDescription equals the index's `key_description`.
#[test]
fn key_descriptions_match_the_index() {
    let mut n = 0;
    for c in cases() {
        let kd = c
            .leaf_key_description(&Leniency::google())
            .unwrap_or_else(|e| panic!("{}: {e}", c.id));
        let want = c.kd();
        let level = |l: SecurityLevel| match l {
            SecurityLevel::Software => "Software",
            SecurityLevel::TrustedEnvironment => "TrustedEnvironment",
            SecurityLevel::StrongBox => "StrongBox",
        };
        let rot = kd.root_of_trust().map(|r| {
            json!({
                "verifiedBootKey_hex": hex(&r.verified_boot_key),
                "deviceLocked_raw_hex": if r.device_locked { "ff" } else { "00" },
                "verifiedBootState": match r.verified_boot_state {
                    VerifiedBootState::Verified => "Verified",
                    VerifiedBootState::SelfSigned => "SelfSigned",
                    VerifiedBootState::Unverified => "Unverified",
                    VerifiedBootState::Failed => "Failed",
                },
                "verifiedBootHash_hex": r.verified_boot_hash.as_deref().map(hex),
            })
        });
        let id = kd.attestation_application_id().unwrap();
        let (hw, sw) = (&kd.hardware_enforced, &kd.software_enforced);
        let leaf = x509::parse_leaf(&c.chain[0]).unwrap();
        let got = json!({
            "attestationVersion": kd.attestation_version,
            "attestationSecurityLevel": level(kd.attestation_security_level),
            "keyMintOrKeymasterVersion": kd.keymint_version,
            "keyMintSecurityLevel": level(kd.keymint_security_level),
            "attestationChallenge_hex": hex(&kd.attestation_challenge),
            "uniqueId_hex": hex(&kd.unique_id),
            "rootOfTrust": rot,
            "packages": id.packages.iter().map(|p| json!({"name": p.name, "version": p.version})).collect::<Vec<_>>(),
            "signatureDigestsSha256_hex": id.signature_digests.iter().map(|d| hex(d)).collect::<Vec<_>>(),
            "osVersion": kd.os_version(),
            "osPatchLevel": kd.os_patch_level().map(|p| p.raw),
            "vendorPatchLevel": kd.vendor_patch_level().map(|p| p.raw),
            "bootPatchLevel": kd.boot_patch_level().map(|p| p.raw),
            "algorithm": hw.algorithm.or(sw.algorithm),
            "origin": kd.origin().map(|o| match o { KeyOrigin::Generated => 0, KeyOrigin::Derived => 1, KeyOrigin::Imported => 2, KeyOrigin::Reserved => 3, KeyOrigin::SecurelyImported => 4 }),
            "creationDateTime_ms": sw.creation_date_time.or(hw.creation_date_time),
            "attestationIdModel": hw.attestation_id_model,
            "attestationIdBrand": hw.attestation_id_brand,
            "hardwareEnforced_tags_ascending": !kd.quirks.contains(&Quirk::TagsNotAscending(ListKind::HardwareEnforced)),
            "softwareEnforced_tags_ascending": !kd.quirks.contains(&Quirk::TagsNotAscending(ListKind::SoftwareEnforced)),
            "leaf_public_key_type": match (leaf.key_type, hw.algorithm) {
                (KeyType::Rsa, _) => "RSAPublicKey",
                (KeyType::EcP256 | KeyType::EcP384, _) => "ECPublicKey",
                (_, Some(4)) => "MLDSA65PublicKey",
                _ => "other",
            },
        });
        let mut expected = json!({});
        for key in got.as_object().unwrap().keys() {
            let v = match key.as_str() {
                "packages" => want["attestationApplicationId"]["packages"].clone(),
                "signatureDigestsSha256_hex" => {
                    want["attestationApplicationId"]["signatureDigestsSha256_hex"].clone()
                }
                k => want[k].clone(),
            };
            expected[key] = v;
        }
        assert_eq!(got, expected, "{}", c.id);
        n += 1;
    }
    assert_eq!(n, 31);
}

/// Google's JSON rendering of one AuthorizationList (numbers as strings,
/// byte strings in base64, flags `true`), as android/keyattestation prints.
fn google_list(l: &AuthorizationList) -> Json {
    let mut o = serde_json::Map::new();
    let s = |v: i64| Json::String(v.to_string());
    let set = |v: &[i64]| Json::Array(v.iter().map(|x| Json::String(x.to_string())).collect());
    let mut put = |k: &str, v: Json| {
        o.insert(k.to_owned(), v);
    };
    if let Some(v) = &l.purposes {
        put("purposes", set(v));
    }
    if let Some(v) = l.algorithm {
        put("algorithms", s(v));
    }
    if let Some(v) = l.key_size {
        put("keySize", s(v));
    }
    if let Some(v) = &l.block_modes {
        put("blockModes", set(v));
    }
    if let Some(v) = &l.digests {
        put("digests", set(v));
    }
    if let Some(v) = &l.paddings {
        put("paddings", set(v));
    }
    if let Some(v) = l.ec_curve {
        put("ecCurve", s(v));
    }
    if let Some(v) = l.ml_dsa_variant {
        put("mlDsaVariant", s(v));
    }
    if let Some(v) = l.rsa_public_exponent {
        put("rsaPublicExponent", s(v));
    }
    if let Some(v) = &l.rsa_oaep_mgf_digests {
        put("rsaOaepMgfDigests", set(v));
    }
    for (k, v) in [
        ("activeDateTime", l.active_date_time),
        ("originationExpireDateTime", l.origination_expire_date_time),
        ("usageExpireDateTime", l.usage_expire_date_time),
        ("usageCountLimit", l.usage_count_limit),
        ("userAuthType", l.user_auth_type),
        ("authTimeout", l.auth_timeout),
        ("creationDateTime", l.creation_date_time),
        ("osVersion", l.os_version),
    ] {
        if let Some(v) = v {
            put(k, s(v));
        }
    }
    for (k, v) in [
        ("noAuthRequired", l.no_auth_required),
        ("allowWhileOnBody", l.allow_while_on_body),
        (
            "trustedUserPresenceRequired",
            l.trusted_user_presence_required,
        ),
        (
            "trustedConfirmationRequired",
            l.trusted_confirmation_required,
        ),
        ("unlockedDeviceRequired", l.unlocked_device_required),
        ("rollbackResistant", l.rollback_resistant),
    ] {
        if v {
            put(k, Json::Bool(true));
        }
    }
    if let Some(o) = l.origin {
        put(
            "origin",
            Json::String(o.as_str().to_uppercase().replace('-', "_")),
        );
    }
    if let Some(r) = &l.root_of_trust {
        let mut rot = json!({
            "verifiedBootKey": b64(&r.verified_boot_key),
            "deviceLocked": r.device_locked,
            "verifiedBootState": r.verified_boot_state.as_str().to_uppercase().replace('-', "_"),
        });
        if let Some(h) = &r.verified_boot_hash {
            rot["verifiedBootHash"] = Json::String(b64(h));
        }
        put("rootOfTrust", rot);
    }
    for (k, v) in [
        ("osPatchLevel", l.os_patch_level),
        ("vendorPatchLevel", l.vendor_patch_level),
        ("bootPatchLevel", l.boot_patch_level),
    ] {
        if let Some(p) = v {
            put(k, s(p.raw));
        }
    }
    if let Some(id) = &l.attestation_application_id {
        put(
            "attestationApplicationId",
            json!({
                "packages": id.packages.iter().map(|p| json!({"name": p.name, "version": p.version.to_string()})).collect::<Vec<_>>(),
                "signatures": id.signature_digests.iter().map(|d| b64(d)).collect::<Vec<_>>(),
            }),
        );
    }
    for (k, v) in [
        ("attestationIdBrand", &l.attestation_id_brand),
        ("attestationIdDevice", &l.attestation_id_device),
        ("attestationIdProduct", &l.attestation_id_product),
        ("attestationIdSerial", &l.attestation_id_serial),
        ("attestationIdImei", &l.attestation_id_imei),
        ("attestationIdMeid", &l.attestation_id_meid),
        ("attestationIdManufacturer", &l.attestation_id_manufacturer),
        ("attestationIdModel", &l.attestation_id_model),
        ("attestationIdSecondImei", &l.attestation_id_second_imei),
    ] {
        if let Some(v) = v {
            put(k, Json::String(v.clone()));
        }
    }
    if let Some(h) = &l.module_hash {
        put("moduleHash", Json::String(b64(h)));
    }
    Json::Object(o)
}

fn google_level(l: SecurityLevel) -> &'static str {
    match l {
        SecurityLevel::Software => "SOFTWARE",
        SecurityLevel::TrustedEnvironment => "TRUSTED_ENVIRONMENT",
        SecurityLevel::StrongBox => "STRONG_BOX",
    }
}

/// The decoded KeyDescription equals Google's own decoding, field for field,
/// wherever the vectors carry one.
#[test]
fn key_descriptions_match_googles_decoding() {
    let mut n = 0;
    for c in cases() {
        let Some(file) = c.json["upstream_decoding_file"].as_str() else {
            continue;
        };
        let text = std::fs::read_to_string(dir().join("android").join(file)).unwrap();
        let stripped: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut google: Json = serde_json::from_str(&stripped).unwrap();
        let kd = c.leaf_key_description(&Leniency::google()).unwrap();
        for (list, kind) in [
            ("softwareEnforced", ListKind::SoftwareEnforced),
            ("hardwareEnforced", ListKind::HardwareEnforced),
        ] {
            if let Some(ordered) = google[list]
                .as_object_mut()
                .unwrap()
                .remove("areTagsOrdered")
            {
                assert_eq!(
                    ordered,
                    Json::Bool(!kd.quirks.contains(&Quirk::TagsNotAscending(kind))),
                    "{}",
                    c.id
                );
            }
        }
        let ours = json!({
            "attestationVersion": kd.attestation_version.to_string(),
            "attestationSecurityLevel": google_level(kd.attestation_security_level),
            "keyMintVersion": kd.keymint_version.to_string(),
            "keyMintSecurityLevel": google_level(kd.keymint_security_level),
            "attestationChallenge": b64(&kd.attestation_challenge),
            "uniqueId": b64(&kd.unique_id),
            "softwareEnforced": google_list(&kd.software_enforced),
            "hardwareEnforced": google_list(&kd.hardware_enforced),
        });
        assert_eq!(ours, google, "{}", c.id);
        n += 1;
    }
    let files = std::fs::read_dir(dir().join("android/chains"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".google-decoding.json")
        })
        .count();
    assert_eq!((n, files), (20, 20));
}

#[test]
fn quirks_are_named_and_opt_in() {
    // Tags out of order: Google accepts (and logs); the vector is refused
    // for its signature, not for the order.
    let c = case("ka_invalid_tags_not_in_ascending_order");
    let kd = c.leaf_key_description(&Leniency::google()).unwrap();
    assert_eq!(
        kd.quirks,
        [Quirk::TagsNotAscending(ListKind::HardwareEnforced)]
    );
    assert_eq!(kd.hardware_enforced.tags[..2], [2, 1]);
    assert_eq!(
        c.leaf_key_description(&Leniency::strict()),
        Err(KeyDescriptionError::TagsNotAscending(
            ListKind::HardwareEnforced
        ))
    );
    let e = android::verify(
        &c.chain,
        &KeyAttestationParams::new(&c.challenge(), c.at).allow_unlocked(true),
    )
    .unwrap_err();
    assert_eq!(codes(&e), ["certificate-signature-invalid"]);
    assert_eq!(
        e.key_description.unwrap().quirks,
        [Quirk::TagsNotAscending(ListKind::HardwareEnforced)]
    );

    // The real Nokia X10 chain: its `digest` SET is not in DER order.
    let c = case("warden_Nokia_X10");
    let kd = c.leaf_key_description(&Leniency::google()).unwrap();
    assert_eq!(
        kd.quirks,
        [Quirk::SetNotSorted {
            list: ListKind::HardwareEnforced,
            tag: 5
        }]
    );
    assert_eq!(
        c.leaf_key_description(&Leniency::strict()),
        Err(KeyDescriptionError::SetNotSorted {
            list: ListKind::HardwareEnforced,
            tag: 5
        })
    );
    // Every other chain is plain DER.
    for c in cases() {
        if c.id != "warden_Nokia_X10" && c.id != "ka_invalid_tags_not_in_ascending_order" {
            assert!(
                c.leaf_key_description(&Leniency::strict()).is_ok(),
                "{}",
                c.id
            );
        }
    }
}

fn nokia() -> (Case, Vec<u8>, Vec<u8>) {
    let c = case("warden_Nokia_X10");
    let (challenge, digest) = (c.challenge(), c.digest().unwrap());
    (c, challenge, digest)
}

#[test]
fn a_real_locked_device_passes_and_reports_its_fields() {
    let (c, challenge, digest) = nokia();
    let p = KeyAttestationParams::new(&challenge, c.at)
        .package("at.asitplus.attestation_client")
        .signing_digest(&digest)
        .min_os_patch_level(202_303);
    let ok = android::verify(&c.chain, &p).unwrap();
    assert!(ok.hardware_backed);
    assert_eq!(ok.security_level, SecurityLevel::TrustedEnvironment);
    assert_eq!(ok.key_type, KeyType::EcP256);
    assert_eq!(ok.serials[1], "b7655c8cfa44db91bdf418d40b31c08c");
    assert_eq!(ok.serials[2], "164ff16db38ad33d19045f7dc30c7fcc");
    let rot = ok.key_description.root_of_trust().unwrap();
    assert!(rot.device_locked);
    assert_eq!(rot.verified_boot_state, VerifiedBootState::Verified);
    assert_eq!(ok.key_description.os_version(), Some(130_000));
    assert_eq!(
        ok.key_description.os_patch_level().unwrap().year_month(),
        Some(202_303)
    );
    // The built-in roots, every issue of the RSA root and CA1.
    assert!(ok.anchor.contains("f92009e853b6b045"), "{}", ok.anchor);
}

#[test]
fn derived_negatives_name_the_failed_check() {
    let (c, challenge, digest) = nokia();
    let package = "at.asitplus.attestation_client";
    let run = |p: KeyAttestationParams<'_>| android::verify(&c.chain, &p).map(|_| ());
    let base = || {
        KeyAttestationParams::new(&challenge, c.at)
            .package(package)
            .signing_digest(&digest)
    };
    assert!(run(base()).is_ok());
    let fails = |p: KeyAttestationParams<'_>| codes(&run(p).unwrap_err());

    // Wrong challenge (one bit), wrong package, wrong digest: each alone.
    let mut wrong = challenge.clone();
    wrong[0] ^= 1;
    assert_eq!(
        fails(
            KeyAttestationParams::new(&wrong, c.at)
                .package(package)
                .signing_digest(&digest)
        ),
        ["challenge-mismatch"]
    );
    assert_eq!(
        fails(
            KeyAttestationParams::new(&challenge, c.at)
                .package("at.asitplus.attestation_clien")
                .signing_digest(&digest)
        ),
        ["package-mismatch"]
    );
    let mut bad_digest = digest.clone();
    bad_digest[31] ^= 0x80;
    assert_eq!(
        fails(
            KeyAttestationParams::new(&challenge, c.at)
                .package(package)
                .signing_digest(&bad_digest)
        ),
        ["signing-digest-mismatch"]
    );
    // All three at once: every failure reported.
    assert_eq!(
        fails(
            KeyAttestationParams::new(&wrong, c.at)
                .package("x")
                .signing_digest(&bad_digest)
        ),
        [
            "challenge-mismatch",
            "package-mismatch",
            "signing-digest-mismatch"
        ]
    );

    // Outside the validity window (the intermediates': 2020-09-28 → 2030-09-26).
    let at = |s: &str| {
        KeyAttestationParams::new(&challenge, unix(s))
            .package(package)
            .signing_digest(&digest)
    };
    assert_eq!(fails(at("2031-01-01T00:00:00Z")), ["certificate-expired"]);
    assert_eq!(
        fails(at("2020-01-01T00:00:00Z")),
        ["certificate-not-yet-valid"]
    );

    // Untrusted root: only Key Attestation CA1 trusted.
    let ca1 = anchors(&["google_key_attestation_ca1_ec_p384_2025.pem"]);
    assert_eq!(fails(base().roots(&ca1)), ["certificate-untrusted"]);

    // Minimum patch level (osPatchLevel 202303).
    assert!(run(base().min_os_patch_level(202_303)).is_ok());
    assert_eq!(
        fails(base().min_os_patch_level(202_304)),
        ["patch-level-too-old"]
    );
    let e = run(base().min_os_patch_level(202_401)).unwrap_err();
    assert_eq!(
        e.reasons,
        [Reason::PatchLevelTooOld {
            found: 202_303,
            minimum: 202_401
        }]
    );
}

#[test]
fn unlocked_devices_need_allow_unlocked() {
    let c = case("ka_akita_sdk34_TEE_EC_NONE");
    let challenge = c.challenge();
    let digest = c.digest().unwrap();
    let package = c.package();
    let p = KeyAttestationParams::new(&challenge, c.at)
        .package(&package)
        .signing_digest(&digest);
    let e = android::verify(&c.chain, &p).unwrap_err();
    assert_eq!(
        e.reasons,
        [
            Reason::BootNotVerified(VerifiedBootState::Unverified),
            Reason::BootloaderUnlocked
        ]
    );
    let ok = android::verify(&c.chain, &p.clone().allow_unlocked(true)).unwrap();
    assert!(ok.hardware_backed);
    assert!(!ok.key_description.root_of_trust().unwrap().device_locked);
    // A relaxed boot policy does not relax anything else.
    let mut wrong = challenge.clone();
    wrong.push(0);
    let e = android::verify(
        &c.chain,
        &KeyAttestationParams::new(&wrong, c.at).allow_unlocked(true),
    )
    .unwrap_err();
    assert_eq!(codes(&e), ["challenge-mismatch"]);
}

#[test]
fn software_chains_need_allow_software_and_never_pass_as_hardware() {
    let roots = all_roots();
    for id in [
        "ka_marlin_sdk29_TEE_EC_NONE",
        "ka_marlin_sdk29_TEE_RSA_NONE",
        "warden_bq_Aquaris_X_with_LineageOS",
        "webauthn_webauthn-rs_dc79b336705c",
    ] {
        let c = case(id);
        let challenge = c.challenge();
        let strict = KeyAttestationParams::new(&challenge, c.at).allow_unlocked(true);
        // Built-in roots: untrusted, whatever is relaxed.
        let e = android::verify(&c.chain, &strict.clone().allow_software(true)).unwrap_err();
        assert_eq!(codes(&e), ["certificate-untrusted"], "{id}");
        let e = android::verify(&c.chain, &strict).unwrap_err();
        assert_eq!(
            codes(&e),
            [
                "certificate-untrusted",
                "software-root",
                "security-level-software"
            ],
            "{id}"
        );
        // The AOSP root trusted explicitly: still software unless allowed.
        let trusting = strict.clone().roots(&roots);
        let e = android::verify(&c.chain, &trusting).unwrap_err();
        assert_eq!(
            codes(&e),
            ["software-root", "security-level-software"],
            "{id}"
        );
        let ok = android::verify(&c.chain, &trusting.allow_software(true)).unwrap();
        assert!(!ok.hardware_backed, "{id}");
        assert_eq!(ok.security_level, SecurityLevel::Software, "{id}");
        // And the boot policy applies to what the hardware list holds: none.
        let e = android::verify(
            &c.chain,
            &KeyAttestationParams::new(&challenge, c.at)
                .roots(&roots)
                .allow_software(true),
        )
        .unwrap_err();
        assert!(codes(&e).contains(&"root-of-trust-missing"), "{id}: {e:?}");
    }
}

/// Each real chain that verifies, with one byte of the leaf's signed part
/// changed (the last byte of its attestation challenge), is refused.
#[test]
fn tampered_leaves_are_refused() {
    let roots = all_roots();
    let mut n = 0;
    for c in cases() {
        if !c.json["expected_chain_result"]
            .as_str()
            .unwrap()
            .starts_with("VALID")
        {
            continue;
        }
        let challenge = c.challenge();
        let p = KeyAttestationParams::new(&challenge, c.at)
            .roots(&roots)
            .allow_software(true)
            .allow_unlocked(true);
        assert!(android::verify(&c.chain, &p).is_ok(), "{}", c.id);
        // Find the challenge's OCTET STRING in the leaf.
        let mut needle = vec![0x04, u8::try_from(challenge.len()).unwrap()];
        needle.extend_from_slice(&challenge);
        let at = c.chain[0]
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
            .unwrap();
        let mut tampered = c.chain.clone();
        tampered[0][at + needle.len() - 1] ^= 0x01;
        let mut flipped = challenge.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        let p = KeyAttestationParams::new(&flipped, c.at)
            .roots(&roots)
            .allow_software(true)
            .allow_unlocked(true);
        let e = android::verify(&tampered, &p).unwrap_err();
        assert_eq!(codes(&e), ["certificate-signature-invalid"], "{}", c.id);
        n += 1;
    }
    assert_eq!(n, 26);
}

/// No single-bit change anywhere in a real leaf passes (release: a few
/// seconds; every byte of the Nokia X10 leaf).
#[test]
fn no_bit_flip_of_a_leaf_passes() {
    let (c, challenge, digest) = nokia();
    let p = KeyAttestationParams::new(&challenge, c.at)
        .package("at.asitplus.attestation_client")
        .signing_digest(&digest);
    for i in 0..c.chain[0].len() {
        let mut chain = c.chain.clone();
        chain[0][i] ^= 0x01;
        assert!(android::verify(&chain, &p).is_err(), "byte {i}");
    }
}

#[test]
fn revoked_and_suspended_certificates_are_refused() {
    let (c, challenge, digest) = nokia();
    let base = || {
        KeyAttestationParams::new(&challenge, c.at)
            .package("at.asitplus.attestation_client")
            .signing_digest(&digest)
    };
    // A test-built list naming the Nokia X10 intermediate (in another case
    // and with a leading zero: serials compare as numbers).
    for key in [
        "b7655c8cfa44db91bdf418d40b31c08c",
        "00B7655C8CFA44DB91BDF418D40B31C08C",
    ] {
        let json = format!(
            r#"{{"entries": {{"{key}": {{"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}}}}"#
        );
        let list = RevocationList::from_json(json.as_bytes()).unwrap();
        let e = android::verify(&c.chain, &base().revocations(&list)).unwrap_err();
        assert_eq!(
            e.reasons,
            [Reason::Revoked {
                index: 1,
                serial: "b7655c8cfa44db91bdf418d40b31c08c".into(),
                status: RevocationStatus::Revoked
            }]
        );
        assert_eq!(codes(&e), ["certificate-revoked"]);
    }

    // Google's sample list and the real TEE intermediate it lists as
    // SUSPENDED.
    let sample = RevocationList::from_json(
        &std::fs::read(
            dir().join("android/status/google_android-key-attestation_sample_status.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sample.len(), 5);
    let pem =
        std::fs::read_to_string(dir().join("android/status/suspended_intermediate_cc66e9a9.pem"))
            .unwrap();
    let suspended = x509::pem_certificates(&pem).unwrap();
    let entry = sample.get("cc66e9a93713b6e643b26c15879786f7").unwrap();
    assert_eq!(entry.status, RevocationStatus::Suspended);
    assert_eq!(entry.comment.as_deref(), Some("Entry for testing only"));
    // Placed in a real chain's intermediate position, it is refused as
    // suspended (besides breaking the chain).
    let mut chain = c.chain.clone();
    chain[1] = suspended[0].clone();
    let e = android::verify(&chain, &base().revocations(&sample)).unwrap_err();
    assert!(
        e.reasons.contains(&Reason::Revoked {
            index: 1,
            serial: "cc66e9a93713b6e643b26c15879786f7".into(),
            status: RevocationStatus::Suspended
        }),
        "{e:?}"
    );
    assert!(codes(&e).contains(&"certificate-suspended"));
    // The sample list does not touch the valid chain.
    assert!(android::verify(&c.chain, &base().revocations(&sample)).is_ok());
}

#[test]
fn the_real_2024_status_snapshot_parses() {
    let list = RevocationList::from_json(
        &std::fs::read(
            dir().join("android/status/real_status_snapshot_2024-11-21_via_vvb2060.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(list.len(), 467);
    let count = |reason: &str| {
        list.iter()
            .filter(|(_, e)| {
                e.status == RevocationStatus::Revoked && e.reason.as_deref() == Some(reason)
            })
            .count()
    };
    assert_eq!((count("KEY_COMPROMISE"), count("SOFTWARE_FLAW")), (441, 26));
    // None of the vector chains is on it (PROVENANCE): the strict-ACCEPT
    // chains still pass with it.
    let mut passed = 0;
    for c in cases() {
        if !c.json["expected_strict_policy"]
            .as_str()
            .unwrap()
            .starts_with("ACCEPT")
        {
            continue;
        }
        let challenge = c.challenge();
        let digest = c.digest().unwrap();
        let package = c.package();
        let p = KeyAttestationParams::new(&challenge, c.at)
            .package(&package)
            .signing_digest(&digest)
            .revocations(&list);
        assert!(android::verify(&c.chain, &p).is_ok(), "{}", c.id);
        passed += 1;
    }
    assert_eq!(passed, 6);
}

#[test]
fn chain_layouts_google_refuses() {
    let (c, challenge, digest) = nokia();
    let p = KeyAttestationParams::new(&challenge, c.at)
        .package("at.asitplus.attestation_client")
        .signing_digest(&digest);
    // The attested leaf repeated above itself: a KeyDescription outside the
    // leaf (the chain-extension pattern), besides a broken signature.
    let mut extended = c.chain.clone();
    extended.insert(0, c.chain[0].clone());
    let e = android::verify(&extended, &p).unwrap_err();
    assert!(
        e.reasons.contains(&Reason::KeyDescriptionOutsideLeaf(1)),
        "{e:?}"
    );
    // Too short: leaf and root only; a 5-certificate chain that is not RKP.
    let e = android::verify(&[c.chain[0].clone(), c.chain[3].clone()], &p).unwrap_err();
    assert!(e.reasons.contains(&Reason::ChainLength(2)), "{e:?}");
    let mut five = c.chain.clone();
    five.insert(2, c.chain[2].clone());
    let e = android::verify(&five, &p).unwrap_err();
    assert!(codes(&e).contains(&"chain-layout"), "{e:?}");
    // A 3-certificate chain whose intermediate is a factory one.
    let three = [c.chain[0].clone(), c.chain[2].clone(), c.chain[3].clone()];
    let e = android::verify(&three, &p).unwrap_err();
    assert!(codes(&e).contains(&"chain-layout"), "{e:?}");
    // Every real 5-certificate chain is an RKP chain.
    for c in cases() {
        if c.chain.len() == 5 {
            let leaf1 = x509::parse_leaf(&c.chain[1]).unwrap();
            assert!(
                leaf1
                    .extensions
                    .iter()
                    .any(|e| e.oid == android::PROVISIONING_INFO_OID),
                "{}",
                c.id
            );
        }
    }
    // Garbage.
    let none: [&[u8]; 0] = [];
    assert_eq!(
        codes(&android::verify(&none, &p).unwrap_err()),
        ["certificate-invalid"]
    );
    let e = android::verify(&[&b"\x30\x00"[..]], &p).unwrap_err();
    assert_eq!(
        e.reasons,
        [Reason::Chain(ChainError::Malformed { index: 0 })]
    );
}

#[test]
fn an_rsa_and_an_ec_root_chain_with_the_strict_policy() {
    let distinct: BTreeSet<String> = cases()
        .iter()
        .filter(|c| {
            c.json["expected_strict_policy"]
                .as_str()
                .unwrap()
                .starts_with("ACCEPT")
        })
        .map(|c| {
            let challenge = c.challenge();
            let digest = c.digest().unwrap();
            let package = c.package();
            let p = KeyAttestationParams::new(&challenge, c.at)
                .package(&package)
                .signing_digest(&digest);
            android::verify(&c.chain, &p).unwrap().anchor
        })
        .collect();
    // Both Google roots anchor accepted chains.
    assert_eq!(distinct.len(), 2, "{distinct:?}");
}

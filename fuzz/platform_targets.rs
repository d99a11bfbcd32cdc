//! The bodies of the platform fuzz targets (`genuine-platform` parsers of
//! untrusted CBOR, DER and JWE), shared by the cargo-fuzz binaries and by the
//! stable replay test `crates/genuine-cli/tests/fuzz_corpus.rs`.
//!
//! Each returns whether the input's structure was decoded (verification
//! itself fails for almost every input: the parameters are fixed), and
//! asserts what must hold for every input: no panic, a refusal always names
//! at least one failed check, and nothing verifies under parameters no real
//! object can match.
//!
//! Only `genuine-platform` and `std` may be used here.

use genuine_platform::appattest::{
    self, AssertionParams, AttestationParams, ClientData, EnvironmentPolicy,
};
use genuine_platform::playintegrity::{self, Keys};
use genuine_platform::x509::{self, ChainOptions, TrustAnchor};

/// Verification instant: 2024-01-01.
const NOW: i64 = 1_704_067_200;

/// `appattest::verify_attestation` under the built-in Apple root.
pub(crate) fn appattest_attestation(data: &[u8]) -> bool {
    let params = AttestationParams::new("TEAM123456.com.example.fuzz", &[0u8; 32], NOW)
        .environment(EnvironmentPolicy::Any);
    match appattest::verify_attestation(data, &params) {
        // No real object attests this app with an all-zero clientDataHash.
        Ok(_) => panic!("an attestation verified for the fuzz app"),
        Err(rejected) => {
            assert!(!rejected.reasons.is_empty(), "a refusal without a reason");
            rejected.decoded.is_some()
        }
    }
}

/// `appattest::verify_assertion` against a fixed P-256 point.
pub(crate) fn appattest_assertion(data: &[u8]) -> bool {
    // A fixed P-256 point (the curve's generator). Whatever the signature,
    // the previous counter u32::MAX refuses every input.
    let mut key = vec![0x04];
    key.extend_from_slice(&[
        0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
        0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98,
        0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c,
        0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68,
        0x37, 0xbf, 0x51, 0xf5,
    ]);
    let params = AssertionParams::new(
        "TEAM123456.com.example.fuzz",
        ClientData::Raw(b"fuzz"),
        &key,
        u32::MAX,
    );
    match appattest::verify_assertion(data, &params) {
        Ok(_) => panic!("an assertion verified with counter above u32::MAX"),
        Err(rejected) => {
            assert!(!rejected.reasons.is_empty(), "a refusal without a reason");
            rejected.decoded.is_some()
        }
    }
}

/// `x509::verify_chain` over DER certificates: the input is split into
/// certificates by a 2-byte big-endian length prefix each (or is one
/// certificate); the anchor is a fixed key that signed no certificate.
pub(crate) fn x509_chain(data: &[u8]) -> bool {
    let mut certs = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && certs.len() < 6 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let Some(cert) = rest.get(2..2 + len) else {
            break;
        };
        certs.push(cert);
        rest = &rest[2 + len..];
    }
    if certs.is_empty() {
        certs.push(data);
    }
    let parsed = x509::parse_leaf(certs[0]).is_ok();
    let Ok(anchor) = TrustAnchor::from_spki_der(&FUZZ_ANCHOR_SPKI, "fuzz") else {
        panic!("the fuzz anchor must parse");
    };
    let lenient = ChainOptions::strict()
        .allow_ca_without_key_cert_sign(true)
        .allow_ecdsa_null_parameters(true)
        .allow_unknown_critical_extensions(true);
    for options in [ChainOptions::strict(), lenient] {
        if x509::verify_chain(&certs, std::slice::from_ref(&anchor), NOW, &options).is_ok() {
            panic!("a chain verified to a key that signed no certificate");
        }
    }
    parsed
}

/// A P-256 SubjectPublicKeyInfo of the generator point (see above). No
/// certificate in the corpora or the vectors is signed by it, and mutation
/// cannot make an ECDSA signature.
const FUZZ_ANCHOR_SPKI: [u8; 91] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1,
    0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d,
    0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe,
    0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b,
    0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
];

/// `playintegrity::decrypt_and_verify` with fixed test keys: the JWE
/// structure is parsed and refused (no input is encrypted under the key).
pub(crate) fn play_integrity(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(keys) = Keys::new(&[9u8; 32], &FUZZ_ANCHOR_SPKI) else {
        panic!("the fuzz keys must be accepted");
    };
    match playintegrity::decrypt_and_verify(text, &keys) {
        Ok(_) => panic!("a token decrypted under a key no input was made with"),
        // Structure accepted up to the key unwrap.
        Err(e) => matches!(e.code(), "key-unwrap" | "decryption"),
    }
}

/// `android::KeyDescription::parse` over the extension's value (the DER
/// inside its OCTET STRING), with Google's leniency and strict DER: what
/// strict DER accepts, the lenient parse accepts too, with the same value and
/// no quirk; an accepted lenient parse names every quirk it let through.
pub(crate) fn android_key_description(data: &[u8]) -> bool {
    use genuine_platform::android::{KeyDescription, Leniency};
    let google = KeyDescription::parse(data, &Leniency::google());
    let strict = KeyDescription::parse(data, &Leniency::strict());
    let unknown = KeyDescription::parse(data, &Leniency::google().unknown_tags(true));
    match (&google, &strict) {
        (Ok(g), Ok(s)) => {
            assert_eq!(g, s, "strict and lenient parses differ");
            assert!(g.quirks.is_empty(), "a strict parse with quirks");
        }
        (Err(_), Ok(_)) => panic!("strict DER accepted what the lenient parse refused"),
        (Ok(g), Err(_)) => assert!(!g.quirks.is_empty(), "lenient-only input without a quirk"),
        (Err(e), Err(_)) => assert!(!e.code().is_empty()),
    }
    // Skipping unknown tags only ever accepts more.
    if google.is_ok() {
        assert_eq!(
            google, unknown,
            "unknown-tag leniency changed a known-tag parse"
        );
    }
    google.is_ok()
}

/// `android::RevocationList::from_json`: every listed serial is found again
/// by its own name, in upper case and with a leading zero.
pub(crate) fn android_revocation_list(data: &[u8]) -> bool {
    use genuine_platform::android::RevocationList;
    match RevocationList::from_json(data) {
        Ok(list) => {
            let mut n = 0;
            for (serial, entry) in list.iter() {
                n += 1;
                assert_eq!(list.get(serial), Some(entry));
                assert_eq!(
                    list.get(&format!("0{}", serial.to_uppercase())),
                    Some(entry)
                );
            }
            assert_eq!(n, list.len());
            true
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            false
        }
    }
}

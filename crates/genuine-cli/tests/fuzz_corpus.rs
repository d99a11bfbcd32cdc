//! Replays the fuzz corpora in `fuzz/corpus/<target>/` through the fuzz target
//! bodies in `fuzz/targets.rs` and `fuzz/platform_targets.rs`, as ordinary
//! tests on the stable toolchain (no libfuzzer). Fuzzing itself is
//! `cargo +nightly fuzz run <target>` in `fuzz/`.
//!
//! The test lives in this crate because it depends on both `genuine-protocol`
//! and `genuine-verify`, as the targets do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/targets.rs"]
mod targets;

#[path = "../../../fuzz/platform_targets.rs"]
mod platform_targets;

use std::path::PathBuf;

/// Runs `target` over every file of `fuzz/corpus/<name>/` and returns how many
/// inputs it accepted. Panics name the input that failed.
fn replay(name: &str, target: fn(&[u8]) -> bool) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    let mut accepted = 0;
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| target(&data));
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panic!("fuzz target {name} panicked on {}", path.display()),
        }
    }
    assert!(
        accepted < files.len(),
        "corpus {name} has no input that is refused"
    );
    accepted
}

#[test]
fn evidence() {
    assert!(
        replay("evidence", targets::evidence) > 0,
        "no valid evidence"
    );
}

#[test]
fn nonce() {
    assert!(replay("nonce", targets::nonce) > 0, "no valid nonce");
}

#[test]
fn elf_measure() {
    assert!(
        replay("elf_measure", targets::elf_measure) > 0,
        "no measurable ELF"
    );
}

#[test]
fn token() {
    assert!(replay("token", targets::token) > 0, "no valid token");
}

#[test]
fn arc() {
    assert!(replay("arc", targets::arc) > 0, "no valid arc");
}

#[test]
fn platform_evidence() {
    assert!(
        replay("platform_evidence", targets::platform_evidence) > 0,
        "no valid platform evidence"
    );
}

#[test]
fn jwks() {
    assert!(replay("jwks", targets::jwks) > 0, "no usable JWKS");
}

/// Runs `target` over shared vector files (read in place, never copied into
/// the corpus), decoded by `decode`; returns how many decoded structurally.
fn replay_vectors(
    dir: &str,
    suffix: &str,
    decode: fn(&[u8]) -> Vec<u8>,
    target: fn(&[u8]) -> bool,
) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors")
        .join(dir);
    let mut decoded = 0;
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(suffix) {
            continue;
        }
        seen += 1;
        let data = decode(&std::fs::read(&path).unwrap());
        match std::panic::catch_unwind(|| target(&data)) {
            Ok(true) => decoded += 1,
            Ok(false) => {}
            Err(_) => panic!("fuzz target panicked on {}", path.display()),
        }
    }
    assert!(
        seen > 0,
        "no vector ending in {suffix} in {}",
        dir.display()
    );
    decoded
}

fn base64_text(raw: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(raw).unwrap().trim();
    data_encoding::BASE64.decode(text.as_bytes()).unwrap()
}

/// The certificates of a PEM chain, each with the target's 2-byte length prefix.
fn pem_chain(raw: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(raw).unwrap();
    let mut out = Vec::new();
    for der in genuine_platform::x509::pem_certificates(text).unwrap() {
        out.extend_from_slice(&u16::try_from(der.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&der);
    }
    out
}

#[test]
fn appattest_attestation() {
    replay(
        "appattest_attestation",
        platform_targets::appattest_attestation,
    );
    let real = replay_vectors(
        "appattest/objects",
        ".attestation.b64",
        base64_text,
        platform_targets::appattest_attestation,
    );
    assert!(real >= 10, "real attestations decoded: {real}");
}

#[test]
fn appattest_assertion() {
    replay("appattest_assertion", platform_targets::appattest_assertion);
    let real = replay_vectors(
        "appattest/objects",
        ".assertion.b64",
        base64_text,
        platform_targets::appattest_assertion,
    );
    assert!(real >= 9, "real assertions decoded: {real}");
}

#[test]
fn x509_chain() {
    replay("x509_chain", platform_targets::x509_chain);
    let real = replay_vectors(
        "android/chains",
        ".pem",
        pem_chain,
        platform_targets::x509_chain,
    );
    assert!(real >= 25, "real leaf certificates parsed: {real}");
}

#[test]
fn play_integrity() {
    replay("play_integrity", platform_targets::play_integrity);
    let real = replay_vectors(
        "playintegrity",
        ".token.txt",
        <[u8]>::to_vec,
        platform_targets::play_integrity,
    );
    assert!(real >= 9, "real tokens parsed up to the key: {real}");
}

/// The KeyDescription extension value of a PEM chain's leaf.
fn leaf_key_description(raw: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(raw).unwrap();
    let chain = genuine_platform::x509::pem_certificates(text).unwrap();
    let leaf = genuine_platform::x509::parse_leaf(&chain[0]).unwrap();
    leaf.extensions
        .into_iter()
        .find(|e| e.oid == genuine_platform::android::KEY_DESCRIPTION_OID)
        .unwrap()
        .value
}

#[test]
fn android_key_description() {
    assert!(
        replay(
            "android_key_description",
            platform_targets::android_key_description
        ) > 0
    );
    let real = replay_vectors(
        "android/chains",
        ".pem",
        leaf_key_description,
        platform_targets::android_key_description,
    );
    assert_eq!(real, 31, "real KeyDescriptions parsed");
}

#[test]
fn android_revocation_list() {
    assert!(
        replay(
            "android_revocation_list",
            platform_targets::android_revocation_list
        ) > 0
    );
    let real = replay_vectors(
        "android/status",
        ".json",
        <[u8]>::to_vec,
        platform_targets::android_revocation_list,
    );
    assert_eq!(real, 2, "real status lists parsed");
}

//! Replays the fuzz corpora in `fuzz/corpus/<target>/` through the fuzz target
//! bodies in `fuzz/targets.rs`, as ordinary tests on the stable toolchain (no
//! libfuzzer). Fuzzing itself is `cargo +nightly fuzz run <target>` in `fuzz/`.
//!
//! The test lives in this crate because it depends on both `genuine-protocol`
//! and `genuine-verify`, as the targets do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/targets.rs"]
mod targets;

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
fn jwks() {
    assert!(replay("jwks", targets::jwks) > 0, "no usable JWKS");
}

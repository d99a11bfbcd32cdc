//! Fuzz target `appattest_attestation`: the body is `platform_targets::appattest_attestation` in
//! `fuzz/platform_targets.rs`, which the stable replay test runs over
//! `fuzz/corpus/appattest_attestation/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../platform_targets.rs"]
mod platform_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _decoded = platform_targets::appattest_attestation(data);
});

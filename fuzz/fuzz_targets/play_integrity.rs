//! Fuzz target `play_integrity`: the body is `platform_targets::play_integrity` in
//! `fuzz/platform_targets.rs`, which the stable replay test runs over
//! `fuzz/corpus/play_integrity/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../platform_targets.rs"]
mod platform_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _decoded = platform_targets::play_integrity(data);
});

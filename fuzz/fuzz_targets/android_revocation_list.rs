//! Fuzz target `android_revocation_list`: the body is `platform_targets::android_revocation_list` in
//! `fuzz/platform_targets.rs`, which the stable replay test runs over
//! `fuzz/corpus/android_revocation_list/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../platform_targets.rs"]
mod platform_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _decoded = platform_targets::android_revocation_list(data);
});

//! Fuzz target `x509_chain`: the body is `platform_targets::x509_chain` in
//! `fuzz/platform_targets.rs`, which the stable replay test runs over
//! `fuzz/corpus/x509_chain/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../platform_targets.rs"]
mod platform_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _decoded = platform_targets::x509_chain(data);
});

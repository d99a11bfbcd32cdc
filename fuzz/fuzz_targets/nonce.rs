//! Fuzz target `nonce`: the body is `targets::nonce` in `fuzz/targets.rs`,
//! which the stable replay test runs over `fuzz/corpus/nonce/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = targets::nonce(data);
});

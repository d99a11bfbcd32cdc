//! Fuzz target `jwks`: the body is `targets::jwks` in `fuzz/targets.rs`,
//! which the stable replay test runs over `fuzz/corpus/jwks/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = targets::jwks(data);
});

//! Fuzz target `platform_evidence`: the body is `targets::platform_evidence`
//! in `fuzz/targets.rs`, which the stable replay test runs over
//! `fuzz/corpus/platform_evidence/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = targets::platform_evidence(data);
});

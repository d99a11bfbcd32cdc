//! Fuzz target `evidence`: the body is `targets::evidence` in `fuzz/targets.rs`,
//! which the stable replay test runs over `fuzz/corpus/evidence/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = targets::evidence(data);
});

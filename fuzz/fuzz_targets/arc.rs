//! Fuzz target `arc`: the body is `targets::arc` in `fuzz/targets.rs`,
//! which the stable replay test runs over `fuzz/corpus/arc/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = targets::arc(data);
});

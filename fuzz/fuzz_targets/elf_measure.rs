//! Fuzz target `elf_measure`: the body is `targets::elf_measure` in `fuzz/targets.rs`,
//! which the stable replay test runs over `fuzz/corpus/elf_measure/` too.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = targets::elf_measure(data);
});

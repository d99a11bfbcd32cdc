//! Linux: measurement of the running ELF program from memory and the
//! integrity signals. Everything here is safe code over `/proc` and files;
//! the few calls that need `unsafe` are in the crate's `sys` module.

pub mod maps;
pub mod measure;
pub mod signals;

use genuine_protocol::evidence::Signals;
use genuine_protocol::measure::ELF_EXEC_SEGMENTS_SHA256_V1;

use crate::probe::{Observation, Probe, ProbeError, SDK_VERSION};
use crate::sys;

/// The Linux [`Probe`]: the digest of the program's executable segments
/// read from memory on the calling thread while a second thread compares the
/// code of the SDK's own object (the program, when the SDK is linked into
/// it) and of the C library with their files and reads the other signals —
/// the hashing is the long part, so the rest costs no wall time where a
/// second core is free.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxProbe;

impl Probe for LinuxProbe {
    fn observe(&self) -> Result<Observation, ProbeError> {
        let objects = sys::objects();
        let main = objects.first().ok_or(ProbeError::NoExecutable)?;
        let (digest, patched) = std::thread::scope(|s| {
            let compare = std::thread::Builder::new()
                .name("genuine-compare".into())
                .spawn_scoped(s, || signals::code_check_with(&objects).patched);
            let digest = measure::scan(main, true, false).map(|m| m.digest);
            let patched = match compare {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| vec!["compare:stopped-abnormally".to_owned()]),
                // No thread to be had: compare here.
                Err(_) => signals::code_check_with(&objects).patched,
            };
            (digest, patched)
        });
        let digest = digest?.ok_or(ProbeError::NoExecutable)?;
        let signals = Signals {
            sdk_version: Some(SDK_VERSION.to_owned()),
            os: Some("linux".to_owned()),
            os_version: signals::os_version(),
            debugger: signals::debugger(),
            preload: signals::preload_with(&objects),
            injected: signals::injected_with(&objects),
            code_patched: patched,
            virtualized: signals::virtualized(),
            root: signals::root(),
            emulator: false,
            other: Default::default(),
        };
        Ok(Observation {
            digest,
            alg: ELF_EXEC_SEGMENTS_SHA256_V1,
            platform: "linux",
            signals,
        })
    }
}

//! What the SDK observes on the device for one attestation: the app digest
//! and the integrity signals. [`Probe`] is the seam for other platforms
//! (Android, iOS) and for tests; [`default_probe`] is this platform's.

use genuine_protocol::evidence::Signals;
use genuine_protocol::measure::{AppDigest, MeasureError};

/// The SDK's version, sent in `signals.sdk_version`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One observation: the digest of the running code and the signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The app digest `D` (protocol §3).
    pub digest: AppDigest,
    /// The measurement algorithm's wire name.
    pub alg: &'static str,
    /// The wire name of the platform (`linux`).
    pub platform: &'static str,
    /// The signals (protocol §2).
    pub signals: Signals,
}

/// Why the running app could not be observed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// This platform has no measurement yet (only Linux for now).
    #[error("this platform is not supported yet (the SDK measures Linux ELF programs)")]
    Unsupported,
    /// The running executable's program headers were not found.
    #[error("the running executable's program headers were not found")]
    NoExecutable,
    /// Its code could not be read from memory.
    #[error("reading code from memory failed: {0}")]
    Read(String),
    /// The digest could not be computed.
    #[error("digest: {0}")]
    Digest(MeasureError),
}

/// Observes the running app. Implementations must read everything at the
/// time of the call: nothing observed may be cached between attestations.
pub trait Probe: Send + Sync {
    /// Measures the running code and gathers the signals.
    ///
    /// # Errors
    /// [`ProbeError`] when the code cannot be measured.
    fn observe(&self) -> Result<Observation, ProbeError>;
}

/// This platform's probe: the Linux one, or on other targets one that
/// answers [`ProbeError::Unsupported`].
#[must_use]
pub fn default_probe() -> Box<dyn Probe> {
    #[cfg(target_os = "linux")]
    {
        Box::new(crate::linux::LinuxProbe)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Box::new(Unsupported)
    }
}

#[cfg(not(target_os = "linux"))]
struct Unsupported;

#[cfg(not(target_os = "linux"))]
impl Probe for Unsupported {
    fn observe(&self) -> Result<Observation, ProbeError> {
        Err(ProbeError::Unsupported)
    }
}

//! Pure verifiers of platform attestations: bytes, the expected parameters,
//! trust roots and the time in; a typed verdict or an error naming the failed
//! check out. No network, no clock, no file access.
//!
//! - [`appattest`]: Apple App Attest attestation objects and assertions.
//! - [`android`]: Android Key Attestation certificate chains (the
//!   KeyDescription extension, Google's roots, the status list).
//! - [`playintegrity`]: Play Integrity tokens verified locally (JWE
//!   A256KW + A256GCM around a JWS ES256).
//!
//! Revocation lists, roots and keys are parameters: callers fetch and cache
//! them (for Android, Google's status list as a parsed
//! [`android::RevocationList`]).
//!
//! # Example
//!
//! ```
//! use genuine_platform::value::Value;
//!
//! // Values on the command line are `hex:…`, `b64:…` or `utf8:…`.
//! let v: Value = "hex:00ff".parse().expect("a hex value");
//! assert_eq!(v.bytes(), &[0x00, 0xff]);
//! ```

#![forbid(unsafe_code)]

pub mod android;
pub mod appattest;
pub mod playintegrity;
pub mod roots;
pub mod value;
pub mod x509;

//! The Genuine client SDK: what an app integrates to prove to its API that
//! it is the genuine, untampered build.
//!
//! One call for the app: [`Client::token`] (async, any executor) or
//! [`Client::token_blocking`] (no runtime needed). Behind it the SDK
//!
//! - keeps a per-install **device key** (P-256; on Linux a 0600 file in the
//!   data dir, behind [`DeviceKeyStore`] so hardware stores plug in);
//! - asks the service for a **challenge**, **measures** the running
//!   executable from memory (`elf-exec-segments-sha256/v1`, the digest
//!   `genuine measure` prints for the file), gathers the **signals**
//!   (debugger, preloaded libraries, injected or patched code, VM, root) and
//!   sends the signed **evidence**;
//! - **caches** the token until it has less than a margin (30 s) of life
//!   left, runs **one attestation at a time** for all concurrent callers,
//!   and backs off exponentially with jitter when the network or the service
//!   fails.
//!
//! Errors tell a retryable outage ([`Error::Network`],
//! [`Error::ServiceUnavailable`]) from a [`Error::Rejected`] attestation
//! (when the policy reveals reasons) and from configuration problems;
//! [`Client::status`] gives a short word for a request header
//! ([`STATUS_HEADER`]) so the backend can log why a request has no token.
//!
//! # Example
//!
//! ```no_run
//! use genuine_sdk::{Client, Config, STATUS_HEADER, TOKEN_HEADER};
//!
//! # fn main() -> Result<(), genuine_sdk::Error> {
//! let client = Client::new(Config::new(
//!     "https://attest.example.com",
//!     "com.example.shop",
//!     "api.example.com",
//!     "/var/lib/example-shop",
//! ))?;
//! // Optional: bind tokens to the request's credentials.
//! client.set_binding(b"Bearer user-session-token");
//! let header = match client.token_blocking() {
//!     Ok(token) => (TOKEN_HEADER, token.as_str().to_owned()),
//!     // No token: say why, so the backend can log it.
//!     Err(e) => (STATUS_HEADER, e.status().as_str().to_owned()),
//! };
//! # let _ = header;
//! println!("device {}", client.device_id());
//! # Ok(())
//! # }
//! ```
//!
//! # Platforms
//!
//! Linux (`x86_64`, `aarch64`) is implemented. On other Unix targets
//! (Android, macOS, iOS) the crate builds and [`Client::new`] works (the
//! [`FileKeyStore`] key file), but attestation answers
//! [`ProbeError::Unsupported`] until a [`Probe`] for the platform is given
//! to [`ClientBuilder::probe`]. On non-Unix targets the default
//! [`FileKeyStore`] cannot check who may read its file, so [`Client::new`]
//! fails with [`Error::DeviceKey`]`(`[`KeyStoreError::Unsupported`]`)`: give
//! [`ClientBuilder::key_store`] a store for the platform. All `unsafe` code
//! is in one private module (`sys`, Unix only) with a safety argument per
//! block; the crate denies `unsafe` everywhere else.

#![deny(unsafe_code)]

// The unit tests share the integration tests' service harness
// (`tests/common`), which names this crate by its name.
#[cfg(test)]
extern crate self as genuine_sdk;

mod client;
pub mod clock;
mod config;
mod error;
pub mod keystore;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod probe;
#[cfg(unix)]
mod sys;
#[cfg(all(test, target_os = "linux"))]
mod tamper;
#[cfg(all(test, target_os = "linux"))]
#[path = "../tests/common/mod.rs"]
mod test_common;
pub mod transport;

pub use client::{Client, ClientBuilder, Token};
pub use config::Config;
pub use error::{Error, STATUS_HEADER, Status};
/// The signals of an evidence ([`Client::last_signals`]).
pub use genuine_protocol::evidence::Signals;
pub use keystore::{DeviceKeyStore, DeviceSigner, FileKeyStore, KeyStoreError};
pub use probe::{Observation, Probe, ProbeError};

/// The request header that carries the token to the API (`Genuine-Token`).
pub const TOKEN_HEADER: &str = "Genuine-Token";

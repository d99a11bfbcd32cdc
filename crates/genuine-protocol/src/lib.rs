//! The Genuine attestation protocol, version 1: wire types and the codecs both
//! sides share. Pure functions over bytes; randomness and time are passed in,
//! nothing here reads a clock, a file or the network.
//!
//! - [`nonce`]: stateless MAC'd challenge nonces (protocol §1).
//! - [`evidence`] and [`device`]: the device-key-signed evidence JWS (§2).
//! - [`measure`]: the app digest `elf-exec-segments-sha256/v1` and its proof (§3).
//! - [`platform`]: typed `platform_evidence` and the platform challenge
//!   derived from the nonce and the device key.
//! - [`arc`]: verdict reasons and the opaque `arc` claim (§4, §5).
//! - [`wire`]: JSON bodies of the attestation plane.
//!
//! # Example: a client answers a challenge, the service checks the answer
//!
//! ```
//! use genuine_protocol::{b64, device::DeviceKey, evidence, measure, nonce::NonceKey};
//! use ring::rand::SystemRandom;
//!
//! let rng = SystemRandom::new();
//! let service_key = NonceKey::generate(&rng)?;
//! let issued = service_key.issue(&rng, "default", "com.example.shop", 1_000, 60)?;
//!
//! // The app measured its code into `digest` and answers with evidence.
//! let digest = measure::AppDigest([42; 32]);
//! let nonce_bytes = b64::decode(&issued.nonce)?;
//! let (device, _pkcs8) = DeviceKey::generate(&rng)?;
//! let claims = evidence::EvidenceClaims {
//!     nonce: issued.nonce.clone(),
//!     account: "default".into(),
//!     app_id: "com.example.shop".into(),
//!     app_version: "1.0.0".into(),
//!     platform: "linux".into(),
//!     api: "api.example.com".into(),
//!     iat: 1_000,
//!     measurement: evidence::MeasurementClaim {
//!         alg: measure::ELF_EXEC_SEGMENTS_SHA256_V1.into(),
//!         proof: b64::encode(&measure::proof(&nonce_bytes, &digest)),
//!     },
//!     signals: Default::default(),
//!     binding: None,
//!     platform_evidence: None,
//! };
//! let jws = evidence::sign_evidence(&device, &rng, &claims)?;
//!
//! // The service parses, verifies, checks the nonce and matches the proof.
//! let verified = evidence::ParsedEvidence::parse(&jws)?.verify()?;
//! let checked = service_key.check(&verified.claims.nonce, "default", "com.example.shop", 1_010)?;
//! assert!(measure::ProofVerifier::new(&checked.bytes).matches(&digest, &verified.proof));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod arc;
pub mod b64;
pub mod device;
pub mod evidence;
pub mod measure;
pub mod nonce;
pub mod platform;
pub mod wire;

pub use arc::{ArcKey, Reason, ReasonSet};

//! Platform evidence (protocol §2, `platform_evidence`) and the platform
//! challenge.
//!
//! An app on Android or iOS adds a hardware-backed platform attestation to
//! its evidence. The challenge it asks the platform to sign is never chosen
//! by the app: it is derived from the service's nonce and the device key that
//! signs the evidence,
//!
//! ```text
//! platform_challenge = SHA-256("genuine/platform-challenge/v1" || 0x00
//!                              || u32be(len(nonce bytes)) || nonce bytes
//!                              || SHA-256(DER SubjectPublicKeyInfo of the device key))
//! ```
//!
//! so a platform attestation answers exactly one nonce (and the nonce is
//! single-use) and cannot be moved under another device key: the service
//! recomputes the challenge from the nonce and key of the evidence it holds.
//!
//! How each kind carries the 32 challenge bytes:
//!
//! | `kind` | members (base64url, no padding) | the challenge is |
//! |---|---|---|
//! | `android-key-attestation` | `chain`: DER certificates, leaf first | the KeyDescription `attestationChallenge` |
//! | `apple-app-attest` | `key_id` (32 bytes), `attestation` (CBOR) | the `clientDataHash` given to `attestKey` |
//! | `apple-app-attest-assertion` | `key_id` (32 bytes), `assertion` (CBOR) | the client data given to `generateAssertion` |
//! | `play-integrity` | `token` (the JWE text, as Play returns it), `request` (`standard` or `classic`, default `standard`) | `requestHash` (standard) or `nonce` (classic) = base64url of the challenge |
//!
//! [`PlatformEvidence::parse`] turns the untrusted JSON object into one typed
//! value; anything else is a [`PlatformEvidenceError`] naming the problem.

use serde::Deserialize;

use crate::b64;
use crate::device::DevicePublicKey;

/// Wire name of Android Key Attestation evidence.
pub const ANDROID_KEY_ATTESTATION: &str = "android-key-attestation";
/// Wire name of an Apple App Attest attestation (first use of a key).
pub const APPLE_APP_ATTEST: &str = "apple-app-attest";
/// Wire name of an Apple App Attest assertion (later uses of an attested key).
pub const APPLE_APP_ATTEST_ASSERTION: &str = "apple-app-attest-assertion";
/// Wire name of a Play Integrity verdict.
pub const PLAY_INTEGRITY: &str = "play-integrity";

/// Every known kind.
pub const KINDS: &[&str] = &[
    ANDROID_KEY_ATTESTATION,
    APPLE_APP_ATTEST,
    APPLE_APP_ATTEST_ASSERTION,
    PLAY_INTEGRITY,
];

/// The most certificates an Android chain may hold.
pub const MAX_CHAIN_CERTS: usize = 10;

const CHALLENGE_DOMAIN: &[u8] = b"genuine/platform-challenge/v1\0";

/// The platform challenge for a nonce (its decoded bytes) and a device key.
#[must_use]
pub fn platform_challenge(nonce_bytes: &[u8], device_key: &DevicePublicKey) -> [u8; 32] {
    let key_hash = ring::digest::digest(&ring::digest::SHA256, &device_key.spki_der());
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(CHALLENGE_DOMAIN);
    // Nonces are 57 bytes; a longer input is cut to u32::MAX, never reached.
    let len = u32::try_from(nonce_bytes.len()).unwrap_or(u32::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(nonce_bytes);
    ctx.update(key_hash.as_ref());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Which Play Integrity request the token answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlayRequest {
    /// A standard request: `requestHash` = base64url(challenge).
    #[default]
    Standard,
    /// A classic request: `nonce` = base64url(challenge).
    Classic,
}

impl PlayRequest {
    /// `standard` or `classic`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Classic => "classic",
        }
    }
}

/// Typed platform evidence.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlatformEvidence {
    /// An Android Key Attestation certificate chain (DER, leaf first).
    AndroidKeyAttestation {
        /// The certificates.
        chain: Vec<Vec<u8>>,
    },
    /// An App Attest attestation object for a new key.
    AppleAppAttest {
        /// The key id (SHA-256 of the key's public point).
        key_id: [u8; 32],
        /// The CBOR attestation object.
        attestation: Vec<u8>,
    },
    /// An App Attest assertion by a key attested before.
    AppleAppAttestAssertion {
        /// The key id.
        key_id: [u8; 32],
        /// The CBOR assertion object.
        assertion: Vec<u8>,
    },
    /// A Play Integrity token.
    PlayIntegrity {
        /// The JWE compact text.
        token: String,
        /// Standard or classic request.
        request: PlayRequest,
    },
}

impl std::fmt::Debug for PlatformEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sizes only: the objects are large and say nothing in a log.
        match self {
            Self::AndroidKeyAttestation { chain } => f
                .debug_struct("AndroidKeyAttestation")
                .field("certificates", &chain.len())
                .finish(),
            Self::AppleAppAttest { attestation, .. } => f
                .debug_struct("AppleAppAttest")
                .field("bytes", &attestation.len())
                .finish_non_exhaustive(),
            Self::AppleAppAttestAssertion { assertion, .. } => f
                .debug_struct("AppleAppAttestAssertion")
                .field("bytes", &assertion.len())
                .finish_non_exhaustive(),
            Self::PlayIntegrity { token, request } => f
                .debug_struct("PlayIntegrity")
                .field("bytes", &token.len())
                .field("request", request)
                .finish(),
        }
    }
}

/// Why `platform_evidence` could not be read. The verdict reason is
/// `platform-attestation-invalid` with [`Self::code`] as the sub-reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformEvidenceError {
    /// `kind` is missing or not a string.
    #[error("platform_evidence.kind is missing or not a string")]
    MissingKind,
    /// `kind` names no known kind.
    #[error("platform_evidence.kind is not one of {}", KINDS.join(", "))]
    UnknownKind,
    /// The members do not fit the kind (missing, unknown, duplicated or of
    /// the wrong type).
    #[error("platform_evidence does not have the members of its kind: {0}")]
    Shape(String),
    /// A member is not canonical unpadded base64url; names it.
    #[error("platform_evidence.{0} is not canonical unpadded base64url")]
    Base64(&'static str),
    /// The chain is empty or longer than [`MAX_CHAIN_CERTS`].
    #[error("platform_evidence.chain must hold 1 to {MAX_CHAIN_CERTS} certificates")]
    ChainLength,
    /// `request` is neither `standard` nor `classic`.
    #[error("platform_evidence.request must be standard or classic")]
    Request,
}

impl PlatformEvidenceError {
    /// A stable kebab-case name (metrics label).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingKind => "kind-missing",
            Self::UnknownKind => "kind-unknown",
            Self::Shape(_) => "evidence-malformed",
            Self::Base64(_) => "evidence-base64",
            Self::ChainLength => "chain-length",
            Self::Request => "request-unknown",
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
enum Wire {
    #[serde(rename = "android-key-attestation")]
    Android { chain: Vec<String> },
    #[serde(rename = "apple-app-attest")]
    Attest { key_id: String, attestation: String },
    #[serde(rename = "apple-app-attest-assertion")]
    Assert { key_id: String, assertion: String },
    #[serde(rename = "play-integrity")]
    Play {
        token: String,
        #[serde(default)]
        request: Option<String>,
    },
}

impl PlatformEvidence {
    /// Reads the `platform_evidence` object.
    ///
    /// # Errors
    /// [`PlatformEvidenceError`] naming what is wrong.
    pub fn parse(
        object: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, PlatformEvidenceError> {
        let kind = object
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .ok_or(PlatformEvidenceError::MissingKind)?;
        if !KINDS.contains(&kind) {
            return Err(PlatformEvidenceError::UnknownKind);
        }
        let wire: Wire = serde_json::from_value(serde_json::Value::Object(object.clone()))
            .map_err(|e| PlatformEvidenceError::Shape(e.to_string()))?;
        let key_id = |s: &str| {
            b64::decode_array::<32>(s).map_err(|_| PlatformEvidenceError::Base64("key_id"))
        };
        Ok(match wire {
            Wire::Android { chain } => {
                if chain.is_empty() || chain.len() > MAX_CHAIN_CERTS {
                    return Err(PlatformEvidenceError::ChainLength);
                }
                let chain = chain
                    .iter()
                    .map(|c| b64::decode(c).map_err(|_| PlatformEvidenceError::Base64("chain")))
                    .collect::<Result<_, _>>()?;
                Self::AndroidKeyAttestation { chain }
            }
            Wire::Attest {
                key_id: k,
                attestation,
            } => Self::AppleAppAttest {
                key_id: key_id(&k)?,
                attestation: b64::decode(&attestation)
                    .map_err(|_| PlatformEvidenceError::Base64("attestation"))?,
            },
            Wire::Assert {
                key_id: k,
                assertion,
            } => Self::AppleAppAttestAssertion {
                key_id: key_id(&k)?,
                assertion: b64::decode(&assertion)
                    .map_err(|_| PlatformEvidenceError::Base64("assertion"))?,
            },
            Wire::Play { token, request } => Self::PlayIntegrity {
                token,
                request: match request.as_deref() {
                    None | Some("standard") => PlayRequest::Standard,
                    Some("classic") => PlayRequest::Classic,
                    Some(_) => return Err(PlatformEvidenceError::Request),
                },
            },
        })
    }

    /// The wire name of the kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AndroidKeyAttestation { .. } => ANDROID_KEY_ATTESTATION,
            Self::AppleAppAttest { .. } => APPLE_APP_ATTEST,
            Self::AppleAppAttestAssertion { .. } => APPLE_APP_ATTEST_ASSERTION,
            Self::PlayIntegrity { .. } => PLAY_INTEGRITY,
        }
    }

    /// The JSON object an app puts in `platform_evidence`.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value::String as S;
        let mut m = serde_json::Map::new();
        m.insert("kind".into(), S(self.kind().into()));
        match self {
            Self::AndroidKeyAttestation { chain } => {
                m.insert(
                    "chain".into(),
                    serde_json::Value::Array(chain.iter().map(|c| S(b64::encode(c))).collect()),
                );
            }
            Self::AppleAppAttest {
                key_id,
                attestation,
            } => {
                m.insert("key_id".into(), S(b64::encode(key_id)));
                m.insert("attestation".into(), S(b64::encode(attestation)));
            }
            Self::AppleAppAttestAssertion { key_id, assertion } => {
                m.insert("key_id".into(), S(b64::encode(key_id)));
                m.insert("assertion".into(), S(b64::encode(assertion)));
            }
            Self::PlayIntegrity { token, request } => {
                m.insert("token".into(), S(token.clone()));
                m.insert("request".into(), S(request.as_str().into()));
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceKey;
    use ring::rand::SystemRandom;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn challenge_binds_nonce_and_key() {
        let rng = SystemRandom::new();
        let (a, _) = DeviceKey::generate(&rng).unwrap();
        let (b, _) = DeviceKey::generate(&rng).unwrap();
        let c = platform_challenge(b"nonce-1", a.public_key());
        assert_eq!(c, platform_challenge(b"nonce-1", a.public_key()));
        assert_ne!(c, platform_challenge(b"nonce-2", a.public_key()));
        assert_ne!(c, platform_challenge(b"nonce-1", b.public_key()));
        // The length prefix keeps nonce and key hash apart.
        assert_ne!(
            platform_challenge(b"", a.public_key()),
            platform_challenge(b"\0", a.public_key())
        );
    }

    #[test]
    fn kinds_round_trip() {
        for e in [
            PlatformEvidence::AndroidKeyAttestation {
                chain: vec![vec![0x30, 0], vec![1, 2, 3]],
            },
            PlatformEvidence::AppleAppAttest {
                key_id: [7; 32],
                attestation: vec![0xa0],
            },
            PlatformEvidence::AppleAppAttestAssertion {
                key_id: [8; 32],
                assertion: vec![0xa1],
            },
            PlatformEvidence::PlayIntegrity {
                token: "a.b.c.d.e".into(),
                request: PlayRequest::Classic,
            },
        ] {
            assert_eq!(PlatformEvidence::parse(&e.to_json()).unwrap(), e);
        }
        let play = PlatformEvidence::parse(&obj(json!({"kind": "play-integrity", "token": "t"})));
        assert!(matches!(
            play,
            Ok(PlatformEvidence::PlayIntegrity {
                request: PlayRequest::Standard,
                ..
            })
        ));
    }

    #[test]
    fn malformed_evidence_is_named() {
        let cases = [
            (json!({}), "kind-missing"),
            (json!({"kind": 3}), "kind-missing"),
            (json!({"kind": "safetynet"}), "kind-unknown"),
            (
                json!({"kind": "android-key-attestation"}),
                "evidence-malformed",
            ),
            (
                json!({"kind": "android-key-attestation", "chain": [], "x": 1}),
                "evidence-malformed",
            ),
            (
                json!({"kind": "android-key-attestation", "chain": []}),
                "chain-length",
            ),
            (
                json!({"kind": "android-key-attestation", "chain": vec!["AA"; 11]}),
                "chain-length",
            ),
            (
                json!({"kind": "android-key-attestation", "chain": ["AA=="]}),
                "evidence-base64",
            ),
            (
                json!({"kind": "apple-app-attest", "key_id": "AAAA", "attestation": "oA"}),
                "evidence-base64",
            ),
            (
                json!({"kind": "apple-app-attest-assertion", "key_id": [1], "assertion": "oA"}),
                "evidence-malformed",
            ),
            (
                json!({"kind": "play-integrity", "token": "t", "request": "fast"}),
                "request-unknown",
            ),
        ];
        for (v, code) in cases {
            let got = PlatformEvidence::parse(&obj(v.clone()));
            assert_eq!(got.err().map(|e| e.code()), Some(code), "{v}");
        }
    }
}

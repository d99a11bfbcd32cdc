//! Play Integrity tokens verified locally, with the per-app keys Google shows
//! in Play Console ("manage response encryption").
//!
//! A token is a compact JWE (`alg` `A256KW`, `enc` `A256GCM`, nothing else)
//! whose plaintext is a compact JWS (`alg` `ES256`, nothing else) whose
//! payload is the integrity verdict JSON. [`verify`] takes the token, the
//! [`Keys`], the [`Expectations`] and the instant of verification, and
//!
//! 1. decrypts the JWE with the decryption key and verifies the JWS with the
//!    verification key; any failure there is a [`TokenError`] (nothing in the
//!    token can be trusted);
//! 2. checks the authenticated verdict against the expectations and returns a
//!    [`Verdict`]: the decoded fields ([`IntegrityPayload`]) and every failed
//!    check as a [`Reason`] (none: the token is valid).
//!
//! No clock is read: the instant is a parameter.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use genuine_platform::playintegrity::{Expectations, Keys};
//!
//! let keys = Keys::new(&[7; 32], &[0; 91]);
//! assert!(keys.is_err()); // not a P-256 SubjectPublicKeyInfo
//!
//! let mut expected = Expectations::standard("com.example.attest", "StRcRf");
//! expected.max_age = Duration::from_secs(120);
//! assert_eq!(expected.required_device_labels, ["MEETS_DEVICE_INTEGRITY"]);
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use aes_kw::{KeyInit, KwAes256};
use data_encoding::BASE64URL_NOPAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

/// `appRecognitionVerdict` of an app installed from Play, unmodified.
pub const PLAY_RECOGNIZED: &str = "PLAY_RECOGNIZED";
/// `appRecognitionVerdict` of a build Play does not know (re-signed, sideloaded).
pub const UNRECOGNIZED_VERSION: &str = "UNRECOGNIZED_VERSION";
/// `appRecognitionVerdict` (and `appLicensingVerdict`) when Play did not evaluate.
pub const UNEVALUATED: &str = "UNEVALUATED";
/// Device label: a genuine, certified Android device.
pub const MEETS_DEVICE_INTEGRITY: &str = "MEETS_DEVICE_INTEGRITY";
/// Device label: a device that passes basic integrity checks.
pub const MEETS_BASIC_INTEGRITY: &str = "MEETS_BASIC_INTEGRITY";
/// Device label: device integrity with hardware-backed proof of boot integrity.
pub const MEETS_STRONG_INTEGRITY: &str = "MEETS_STRONG_INTEGRITY";
/// Device label: a Play-recognised emulator.
pub const MEETS_VIRTUAL_INTEGRITY: &str = "MEETS_VIRTUAL_INTEGRITY";
/// `appLicensingVerdict` of a user who installed or bought the app on Play.
pub const LICENSED: &str = "LICENSED";

/// Largest token accepted (real tokens are 1-4 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Length of the DER SubjectPublicKeyInfo of an uncompressed P-256 key.
const P256_SPKI_LEN: usize = 91;
/// The DER prefix of every SubjectPublicKeyInfo of an uncompressed P-256 key:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused) … },
/// followed by the point `0x04 || x || y`.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The two per-app keys of Play Console's response encryption.
///
/// `Debug` prints no key material.
pub struct Keys {
    decryption: [u8; 32],
    /// The uncompressed point `0x04 || x || y` (65 bytes).
    verification: Vec<u8>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

/// Why [`Keys::new`] refused a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The decryption key is not 32 bytes (AES-256).
    #[error("the decryption key must be 32 bytes (AES-256), got {0}")]
    DecryptionKeyLength(usize),
    /// The verification key is not the DER SubjectPublicKeyInfo of an
    /// uncompressed EC P-256 key.
    #[error("the verification key must be a DER SubjectPublicKeyInfo of an EC P-256 key")]
    VerificationKey,
}

impl Keys {
    /// The raw 32-byte AES key ("decryption key") and the DER
    /// SubjectPublicKeyInfo of the EC P-256 key ("verification key", which
    /// Play Console shows base64-encoded).
    ///
    /// A point that is not on the curve is not detected here; every
    /// signature then fails to verify.
    ///
    /// # Errors
    /// [`KeyError`].
    pub fn new(decryption_key: &[u8], verification_key_spki: &[u8]) -> Result<Self, KeyError> {
        let decryption: [u8; 32] = decryption_key
            .try_into()
            .map_err(|_| KeyError::DecryptionKeyLength(decryption_key.len()))?;
        if verification_key_spki.len() != P256_SPKI_LEN {
            return Err(KeyError::VerificationKey);
        }
        let point = verification_key_spki
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .filter(|p| p.first() == Some(&0x04))
            .ok_or(KeyError::VerificationKey)?;
        Ok(Self {
            decryption,
            verification: point.to_vec(),
        })
    }
}

/// How the verdict must be bound to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestBinding {
    /// Standard request: `requestDetails.requestHash` equals this string.
    RequestHash(String),
    /// Classic request: `requestDetails.nonce` equals this string.
    Nonce(String),
}

/// What a verdict must show to be valid.
///
/// Built with [`Expectations::standard`] or [`Expectations::classic`] (the
/// defaults below), then adjusted through the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expectations {
    /// The app's package name: `requestDetails.requestPackageName` and, when
    /// present, `appIntegrity.packageName` must equal it.
    pub package_name: String,
    /// The request hash or nonce the verdict must carry.
    pub binding: RequestBinding,
    /// SHA-256 of the app's signing certificate; when set, one entry of
    /// `appIntegrity.certificateSha256Digest` must be it. Default: `None`.
    pub certificate_sha256: Option<[u8; 32]>,
    /// Labels that must all be in `deviceIntegrity.deviceRecognitionVerdict`.
    /// Default: [`MEETS_DEVICE_INTEGRITY`]. Empty: the device is not checked.
    pub required_device_labels: Vec<String>,
    /// The `appIntegrity.appRecognitionVerdict` required. Default:
    /// [`PLAY_RECOGNIZED`]. `None`: not checked.
    pub required_app_recognition: Option<String>,
    /// Require `accountDetails.appLicensingVerdict` = [`LICENSED`].
    /// Default: `false`.
    pub require_licensed: bool,
    /// Accept a test response (`testingDetails.isTestingResponse`: verdicts
    /// the developer chose in Play Console for testers' accounts).
    /// Default: `false`.
    pub allow_testing_response: bool,
    /// Oldest `requestDetails.timestampMillis` accepted, before the instant
    /// of verification. Default: 5 minutes.
    pub max_age: Duration,
    /// How far `timestampMillis` may lie after the instant of verification
    /// (clock skew). Default: 60 seconds.
    pub max_future: Duration,
}

impl Expectations {
    /// The default expectations for a standard request.
    #[must_use]
    pub fn standard(package_name: impl Into<String>, request_hash: impl Into<String>) -> Self {
        Self::new(
            package_name.into(),
            RequestBinding::RequestHash(request_hash.into()),
        )
    }

    /// The default expectations for a classic request.
    #[must_use]
    pub fn classic(package_name: impl Into<String>, nonce: impl Into<String>) -> Self {
        Self::new(package_name.into(), RequestBinding::Nonce(nonce.into()))
    }

    fn new(package_name: String, binding: RequestBinding) -> Self {
        Self {
            package_name,
            binding,
            certificate_sha256: None,
            required_device_labels: vec![MEETS_DEVICE_INTEGRITY.to_owned()],
            required_app_recognition: Some(PLAY_RECOGNIZED.to_owned()),
            require_licensed: false,
            allow_testing_response: false,
            max_age: Duration::from_secs(5 * 60),
            max_future: Duration::from_secs(60),
        }
    }
}

/// Why a token could not be decrypted, authenticated or decoded. Nothing in
/// such a token can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("the token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    /// Not a compact JWE of five base64url parts with a JSON protected header.
    #[error("not a compact JWE: {0}")]
    MalformedJwe(&'static str),
    /// The JWE `alg` is not `A256KW`.
    #[error("JWE alg {0:?} is not A256KW")]
    JweAlgorithm(String),
    /// The JWE `enc` is not `A256GCM`.
    #[error("JWE enc {0:?} is not A256GCM")]
    JweEncryption(String),
    /// The protected header carries a member this verifier refuses (`zip`,
    /// `crit`).
    #[error("the {header} protected header carries {member:?}, which is refused")]
    RefusedHeader {
        /// `"JWE"` or `"JWS"`.
        header: &'static str,
        /// The member's name.
        member: &'static str,
    },
    /// AES key unwrap of the content key failed (wrong decryption key or a
    /// modified encrypted key).
    #[error("the content key does not unwrap with the decryption key")]
    KeyUnwrap,
    /// AES-GCM authentication failed (modified IV, ciphertext, tag or header).
    #[error("AES-GCM decryption failed: the ciphertext is not authentic")]
    Decryption,
    /// The plaintext is not a compact JWS of three base64url parts with a
    /// JSON protected header.
    #[error("the plaintext is not a compact JWS: {0}")]
    MalformedJws(&'static str),
    /// The JWS `alg` is not `ES256`.
    #[error("JWS alg {0:?} is not ES256")]
    JwsAlgorithm(String),
    /// The ES256 signature does not verify with the verification key.
    #[error("the JWS signature does not verify with the verification key")]
    Signature,
    /// The signed payload is not a Play Integrity verdict.
    #[error("the payload is not a Play Integrity verdict: {0}")]
    MalformedPayload(String),
}

impl TokenError {
    /// A stable kebab-case name for the failure.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "token-too-large",
            Self::MalformedJwe(_) => "malformed-jwe",
            Self::JweAlgorithm(_) => "jwe-alg",
            Self::JweEncryption(_) => "jwe-enc",
            Self::RefusedHeader { .. } => "refused-header",
            Self::KeyUnwrap => "key-unwrap",
            Self::Decryption => "decryption",
            Self::MalformedJws(_) => "malformed-jws",
            Self::JwsAlgorithm(_) => "jws-alg",
            Self::Signature => "signature",
            Self::MalformedPayload(_) => "malformed-payload",
        }
    }
}

/// A check of an authentic verdict that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// `requestDetails.requestPackageName` is not the expected package.
    #[error("requestPackageName {found:?} is not the expected package")]
    RequestPackage {
        /// The name in the verdict.
        found: String,
    },
    /// `appIntegrity.packageName` is not the expected package.
    #[error("appIntegrity.packageName {found:?} is not the expected package")]
    AppPackage {
        /// The name in the verdict.
        found: String,
    },
    /// `requestDetails.requestHash` is absent or not the expected one.
    #[error("requestHash {found:?} is not the expected one")]
    RequestHash {
        /// The hash in the verdict.
        found: Option<String>,
    },
    /// `requestDetails.nonce` is absent or not the expected one.
    #[error("nonce {found:?} is not the expected one")]
    Nonce {
        /// The nonce in the verdict.
        found: Option<String>,
    },
    /// No `appIntegrity.certificateSha256Digest` entry is the expected digest.
    #[error("no certificateSha256Digest entry is the expected signing certificate")]
    CertificateDigest,
    /// `appIntegrity.appRecognitionVerdict` is not the required one.
    #[error("appRecognitionVerdict {found:?} is not {required:?}")]
    AppRecognition {
        /// The verdict found.
        found: String,
        /// The verdict required.
        required: String,
    },
    /// Required device labels are absent from `deviceRecognitionVerdict`.
    #[error("deviceRecognitionVerdict lacks {missing:?}")]
    DeviceIntegrity {
        /// The required labels that are absent.
        missing: Vec<String>,
    },
    /// `accountDetails.appLicensingVerdict` is not `LICENSED`.
    #[error("appLicensingVerdict {found:?} is not LICENSED")]
    Licensing {
        /// The verdict found (absent: `None`).
        found: Option<String>,
    },
    /// The verdict is a test response configured in Play Console
    /// (`testingDetails.isTestingResponse`).
    #[error("the verdict is a test response configured in Play Console")]
    TestingResponse,
    /// `timestampMillis` is older than the maximum age.
    #[error("timestampMillis is {age_ms} ms old, more than allowed")]
    Stale {
        /// Milliseconds between `timestampMillis` and the instant of verification.
        age_ms: u64,
    },
    /// `timestampMillis` lies after the instant of verification, beyond the
    /// allowed skew.
    #[error("timestampMillis is {ahead_ms} ms after the instant of verification")]
    FromFuture {
        /// Milliseconds by which `timestampMillis` is ahead.
        ahead_ms: u64,
    },
}

impl Reason {
    /// A stable kebab-case name for the failed check.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::RequestPackage { .. } => "request-package-mismatch",
            Self::AppPackage { .. } => "app-package-mismatch",
            Self::RequestHash { .. } => "request-hash-mismatch",
            Self::Nonce { .. } => "nonce-mismatch",
            Self::CertificateDigest => "certificate-digest-mismatch",
            Self::AppRecognition { .. } => "app-not-recognized",
            Self::DeviceIntegrity { .. } => "device-integrity",
            Self::Licensing { .. } => "not-licensed",
            Self::TestingResponse => "testing-response",
            Self::Stale { .. } => "stale",
            Self::FromFuture { .. } => "from-future",
        }
    }
}

/// The decoded fields of an authentic integrity verdict (names as in
/// Google's JSON when serialized).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IntegrityPayload {
    /// `requestDetails.requestPackageName`.
    pub request_package_name: String,
    /// `requestDetails.requestHash` (standard requests).
    pub request_hash: Option<String>,
    /// `requestDetails.nonce` (classic requests).
    pub nonce: Option<String>,
    /// `requestDetails.timestampMillis`: when the verdict was made (Unix ms).
    pub timestamp_millis: u64,
    /// `appIntegrity.appRecognitionVerdict`.
    pub app_recognition_verdict: String,
    /// `appIntegrity.packageName` (absent when unevaluated).
    pub package_name: Option<String>,
    /// `appIntegrity.certificateSha256Digest`: base64url SHA-256 digests of
    /// the app's signing certificates (absent: empty).
    pub certificate_sha256_digest: Vec<String>,
    /// `appIntegrity.versionCode`.
    pub version_code: Option<u64>,
    /// `deviceIntegrity.deviceRecognitionVerdict` (absent: empty, the device
    /// meets no integrity level).
    pub device_recognition_verdict: Vec<String>,
    /// `deviceIntegrity.recentDeviceActivity.deviceActivityLevel`.
    pub device_activity_level: Option<String>,
    /// `deviceIntegrity.deviceAttributes.sdkVersion`.
    pub sdk_version: Option<i64>,
    /// `accountDetails.appLicensingVerdict`.
    pub app_licensing_verdict: Option<String>,
    /// `environmentDetails.playProtectVerdict`.
    pub play_protect_verdict: Option<String>,
    /// `environmentDetails.appAccessRiskVerdict.appsDetected`.
    pub apps_detected: Vec<String>,
    /// `testingDetails.isTestingResponse`: a test response configured in
    /// Play Console.
    pub is_testing_response: bool,
}

/// The outcome of [`verify`] for an authentic token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The decoded fields.
    pub payload: IntegrityPayload,
    /// Every check that failed, in a fixed order; empty: valid.
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// No check failed.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Decrypts and authenticates `token`, then checks the verdict against
/// `expected` at the instant `at`.
///
/// Surrounding ASCII whitespace (a trailing newline of a file) is ignored.
///
/// # Errors
/// [`TokenError`] when the token cannot be decrypted, authenticated or
/// decoded; failed checks of an authentic verdict are [`Verdict::reasons`].
pub fn verify(
    token: &str,
    keys: &Keys,
    expected: &Expectations,
    at: SystemTime,
) -> Result<Verdict, TokenError> {
    let payload = decrypt_and_verify(token, keys)?;
    let reasons = payload.check(expected, at);
    Ok(Verdict { payload, reasons })
}

/// Decrypts the JWE, verifies the JWS and decodes the verdict, checking
/// nothing else.
///
/// # Errors
/// [`TokenError`].
pub fn decrypt_and_verify(token: &str, keys: &Keys) -> Result<IntegrityPayload, TokenError> {
    let jws = decrypt(token, keys)?;
    let payload = verify_jws(&jws, keys)?;
    if !is_json_object(&payload) {
        return Err(TokenError::MalformedPayload("not a JSON object".to_owned()));
    }
    let wire: WirePayload = serde_json::from_slice(&payload)
        .map_err(|e| TokenError::MalformedPayload(e.to_string()))?;
    Ok(wire.into())
}

impl IntegrityPayload {
    /// Every failed check of this (authentic) verdict against `expected` at
    /// the instant `at`, in a fixed order; empty: valid.
    #[must_use]
    pub fn check(&self, expected: &Expectations, at: SystemTime) -> Vec<Reason> {
        let mut reasons = Vec::new();
        if self.request_package_name != expected.package_name {
            reasons.push(Reason::RequestPackage {
                found: self.request_package_name.clone(),
            });
        }
        if let Some(name) = &self.package_name
            && *name != expected.package_name
        {
            reasons.push(Reason::AppPackage {
                found: name.clone(),
            });
        }
        match &expected.binding {
            RequestBinding::RequestHash(hash) => {
                if self.request_hash.as_deref() != Some(hash.as_str()) {
                    reasons.push(Reason::RequestHash {
                        found: self.request_hash.clone(),
                    });
                }
            }
            RequestBinding::Nonce(nonce) => {
                if self.nonce.as_deref() != Some(nonce.as_str()) {
                    reasons.push(Reason::Nonce {
                        found: self.nonce.clone(),
                    });
                }
            }
        }
        if let Some(digest) = &expected.certificate_sha256
            && !self
                .certificate_sha256_digest
                .iter()
                .any(|entry| decode_digest(entry).as_ref() == Some(digest))
        {
            reasons.push(Reason::CertificateDigest);
        }
        if let Some(required) = &expected.required_app_recognition
            && self.app_recognition_verdict != *required
        {
            reasons.push(Reason::AppRecognition {
                found: self.app_recognition_verdict.clone(),
                required: required.clone(),
            });
        }
        let missing: Vec<String> = expected
            .required_device_labels
            .iter()
            .filter(|label| !self.device_recognition_verdict.contains(label))
            .cloned()
            .collect();
        if !missing.is_empty() {
            reasons.push(Reason::DeviceIntegrity { missing });
        }
        if expected.require_licensed && self.app_licensing_verdict.as_deref() != Some(LICENSED) {
            reasons.push(Reason::Licensing {
                found: self.app_licensing_verdict.clone(),
            });
        }
        if self.is_testing_response && !expected.allow_testing_response {
            reasons.push(Reason::TestingResponse);
        }
        let at_ms = unix_millis(at);
        let made_ms = i128::from(self.timestamp_millis);
        if at_ms >= made_ms {
            let age = at_ms - made_ms;
            if age > expected.max_age.as_millis().try_into().unwrap_or(i128::MAX) {
                reasons.push(Reason::Stale {
                    age_ms: u64::try_from(age).unwrap_or(u64::MAX),
                });
            }
        } else {
            let ahead = made_ms - at_ms;
            if ahead
                > expected
                    .max_future
                    .as_millis()
                    .try_into()
                    .unwrap_or(i128::MAX)
            {
                reasons.push(Reason::FromFuture {
                    ahead_ms: u64::try_from(ahead).unwrap_or(u64::MAX),
                });
            }
        }
        reasons
    }
}

/// Milliseconds since the Unix epoch (negative before it).
fn unix_millis(at: SystemTime) -> i128 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_millis()).unwrap_or(i128::MAX),
        Err(e) => i128::try_from(e.duration().as_millis()).map_or(i128::MIN, |ms| -ms),
    }
}

/// A `certificateSha256Digest` entry: base64url (Google's form) or standard
/// base64, padding optional, 32 bytes.
fn decode_digest(entry: &str) -> Option<[u8; 32]> {
    crate::value::decode_base64_any(entry).ok()?.try_into().ok()
}

/// Strict base64url: the URL-safe alphabet, no padding, canonical trailing bits.
fn b64url(part: &str) -> Option<Vec<u8>> {
    BASE64URL_NOPAD.decode(part.as_bytes()).ok()
}

/// The members of a protected header this verifier reads. Duplicate members
/// are refused by the derived parser; others are ignored (never used: the
/// keys are configured, never taken from the token).
#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    enc: Option<String>,
    #[serde(default, deserialize_with = "present")]
    zip: bool,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// A member that is there, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

fn parse_header(part: &str) -> Result<Header, &'static str> {
    let bytes = b64url(part).ok_or("the protected header is not base64url")?;
    if !is_json_object(&bytes) {
        return Err("the protected header is not a JSON object");
    }
    serde_json::from_slice(&bytes).map_err(|_| "the protected header is not a valid JSON object")
}

/// The derived parsers also take a JSON array for a struct: refuse it.
fn is_json_object(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().first() == Some(&b'{')
}

fn refuse_members(header: &Header, kind: &'static str) -> Result<(), TokenError> {
    if header.zip {
        return Err(TokenError::RefusedHeader {
            header: kind,
            member: "zip",
        });
    }
    if header.crit {
        return Err(TokenError::RefusedHeader {
            header: kind,
            member: "crit",
        });
    }
    Ok(())
}

/// JWE compact serialization → the plaintext (a compact JWS).
fn decrypt(token: &str, keys: &Keys) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge);
    }
    let token = token.trim_ascii();
    let mut parts = token.split('.');
    let (Some(header_b64), Some(ek_b64), Some(iv_b64), Some(ct_b64), Some(tag_b64), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::MalformedJwe("not five dot-separated parts"));
    };
    let header = parse_header(header_b64).map_err(TokenError::MalformedJwe)?;
    match header.alg.as_deref() {
        Some("A256KW") => {}
        other => return Err(TokenError::JweAlgorithm(other.unwrap_or("").to_owned())),
    }
    match header.enc.as_deref() {
        Some("A256GCM") => {}
        other => return Err(TokenError::JweEncryption(other.unwrap_or("").to_owned())),
    }
    refuse_members(&header, "JWE")?;

    let wrapped = b64url(ek_b64).ok_or(TokenError::MalformedJwe("encrypted key not base64url"))?;
    if wrapped.len() != 40 {
        return Err(TokenError::MalformedJwe("encrypted key is not 40 bytes"));
    }
    let iv = b64url(iv_b64).ok_or(TokenError::MalformedJwe("IV not base64url"))?;
    let iv: [u8; 12] = iv
        .try_into()
        .map_err(|_| TokenError::MalformedJwe("IV is not 12 bytes"))?;
    let mut sealed = b64url(ct_b64).ok_or(TokenError::MalformedJwe("ciphertext not base64url"))?;
    let tag = b64url(tag_b64).ok_or(TokenError::MalformedJwe("tag not base64url"))?;
    if tag.len() != 16 {
        return Err(TokenError::MalformedJwe("tag is not 16 bytes"));
    }

    let kw = KwAes256::new(&keys.decryption.into());
    let mut cek = [0u8; 32];
    kw.unwrap_key(&wrapped, &mut cek)
        .map_err(|_| TokenError::KeyUnwrap)?;

    let key = UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| TokenError::KeyUnwrap)?;
    cek.fill(0);
    let key = LessSafeKey::new(key);
    sealed.extend_from_slice(&tag);
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header_b64.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| TokenError::Decryption)?
        .len();
    sealed.truncate(plain_len);
    Ok(sealed)
}

/// JWS compact serialization → the verified payload bytes.
fn verify_jws(jws: &[u8], keys: &Keys) -> Result<Vec<u8>, TokenError> {
    let jws = std::str::from_utf8(jws).map_err(|_| TokenError::MalformedJws("not UTF-8"))?;
    let jws = jws.trim_ascii();
    let mut parts = jws.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::MalformedJws("not three dot-separated parts"));
    };
    let header = parse_header(header_b64).map_err(TokenError::MalformedJws)?;
    match header.alg.as_deref() {
        Some("ES256") => {}
        other => return Err(TokenError::JwsAlgorithm(other.unwrap_or("").to_owned())),
    }
    refuse_members(&header, "JWS")?;
    let signature = b64url(sig_b64).ok_or(TokenError::MalformedJws("signature not base64url"))?;
    if signature.len() != 64 {
        return Err(TokenError::MalformedJws("signature is not 64 bytes"));
    }
    let payload = b64url(payload_b64).ok_or(TokenError::MalformedJws("payload not base64url"))?;
    // The signing input: the ASCII of the first two parts.
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    let signed = jws
        .get(..signed_len)
        .ok_or(TokenError::MalformedJws("truncated"))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &keys.verification)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| TokenError::Signature)?;
    Ok(payload)
}

/// A non-negative int64 in proto3 JSON: a string of digits (Google's form)
/// or a number.
fn de_uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(u64),
        Text(String),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(s) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(serde::de::Error::custom("expected a string of digits"));
            }
            s.parse().map_err(serde::de::Error::custom)
        }
    }
}

fn de_opt_uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_uint(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePayload {
    request_details: WireRequest,
    app_integrity: WireApp,
    #[serde(default)]
    device_integrity: WireDevice,
    #[serde(default)]
    account_details: WireAccount,
    #[serde(default)]
    environment_details: WireEnvironment,
    #[serde(default)]
    testing_details: WireTesting,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireTesting {
    #[serde(default)]
    is_testing_response: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest {
    request_package_name: String,
    #[serde(default)]
    request_hash: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(deserialize_with = "de_uint")]
    timestamp_millis: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireApp {
    app_recognition_verdict: String,
    #[serde(default)]
    package_name: Option<String>,
    #[serde(default)]
    certificate_sha256_digest: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_uint")]
    version_code: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireDevice {
    #[serde(default)]
    device_recognition_verdict: Vec<String>,
    #[serde(default)]
    recent_device_activity: Option<WireActivity>,
    #[serde(default)]
    device_attributes: Option<WireAttributes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireActivity {
    #[serde(default)]
    device_activity_level: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAttributes {
    #[serde(default)]
    sdk_version: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireAccount {
    #[serde(default)]
    app_licensing_verdict: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireEnvironment {
    #[serde(default)]
    play_protect_verdict: Option<String>,
    #[serde(default)]
    app_access_risk_verdict: Option<WireAccessRisk>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAccessRisk {
    #[serde(default)]
    apps_detected: Vec<String>,
}

impl From<WirePayload> for IntegrityPayload {
    fn from(w: WirePayload) -> Self {
        Self {
            request_package_name: w.request_details.request_package_name,
            request_hash: w.request_details.request_hash,
            nonce: w.request_details.nonce,
            timestamp_millis: w.request_details.timestamp_millis,
            app_recognition_verdict: w.app_integrity.app_recognition_verdict,
            package_name: w.app_integrity.package_name,
            certificate_sha256_digest: w.app_integrity.certificate_sha256_digest,
            version_code: w.app_integrity.version_code,
            device_recognition_verdict: w.device_integrity.device_recognition_verdict,
            device_activity_level: w
                .device_integrity
                .recent_device_activity
                .and_then(|a| a.device_activity_level),
            sdk_version: w
                .device_integrity
                .device_attributes
                .and_then(|a| a.sdk_version),
            app_licensing_verdict: w.account_details.app_licensing_verdict,
            play_protect_verdict: w.environment_details.play_protect_verdict,
            apps_detected: w
                .environment_details
                .app_access_risk_verdict
                .map(|r| r.apps_detected)
                .unwrap_or_default(),
            is_testing_response: w.testing_details.is_testing_response,
        }
    }
}

//! Platform attestation in the service: per-app settings, trust roots and
//! the status list, and [`check`], the pure decision over one piece of
//! `platform_evidence`.
//!
//! The challenge every platform attestation must answer is
//! [`genuine_protocol::platform::platform_challenge`] of the evidence's nonce
//! and device key (see that module), so a platform attestation is single-use
//! with its nonce and cannot be moved to another device key. App Attest key
//! state (key id, public key, counter) is kept per device in the store; the
//! caller reads it before [`check`] and applies the [`KeyUpdate`] after.

use std::sync::{Arc, RwLock};

use genuine_platform::android::{self, KeyAttestationParams, RevocationList};
use genuine_platform::appattest::{
    self, AssertionParams, AttestationParams, ClientData, Environment, EnvironmentPolicy,
};
use genuine_platform::playintegrity::{self, Expectations, Keys};
use genuine_platform::value::decode_base64_any;
use genuine_platform::x509::TrustAnchor;
use genuine_protocol::b64;
use genuine_protocol::platform::{PlatformEvidence, PlatformEvidenceError, PlayRequest};
use serde::{Deserialize, Serialize};

use crate::admin::check_name;
use crate::error::ApiError;
use crate::store::AppAttestKeyRow;

/// The settings families, as named on the admin plane and in the store.
pub const SETTINGS_KINDS: &[&str] = &[APPLE, ANDROID, PLAY];
/// Apple App Attest (attestations and assertions).
pub const APPLE: &str = "apple";
/// Android Key Attestation.
pub const ANDROID: &str = "android";
/// Play Integrity.
pub const PLAY: &str = "play";

/// The trust anchors of platform attestation (built in by default; tests
/// inject their own).
#[derive(Debug, Clone)]
pub struct PlatformRoots {
    /// App Attest roots.
    pub apple: Vec<TrustAnchor>,
    /// Android Key Attestation roots.
    pub android: Vec<TrustAnchor>,
}

impl Default for PlatformRoots {
    fn default() -> Self {
        Self {
            apple: genuine_platform::roots::apple_app_attestation().to_vec(),
            android: genuine_platform::roots::google_hardware_attestation().to_vec(),
        }
    }
}

/// Google's Key Attestation status list as the service holds it: replaced
/// whole by the loader (`lib.rs`), read by every Android check.
#[derive(Debug, Default)]
pub struct Revocations {
    list: RwLock<Option<Arc<RevocationList>>>,
}

impl Revocations {
    /// A holder with this list (`None`: revocation is not checked).
    #[must_use]
    pub fn new(list: Option<RevocationList>) -> Self {
        Self {
            list: RwLock::new(list.map(Arc::new)),
        }
    }

    /// The current list.
    #[must_use]
    pub fn get(&self) -> Option<Arc<RevocationList>> {
        self.list.read().ok().and_then(|l| l.clone())
    }

    /// Replaces the list.
    pub fn set(&self, list: RevocationList) {
        if let Ok(mut l) = self.list.write() {
            *l = Some(Arc::new(list));
        }
    }
}

/// `apple` settings: the App ID App Attest objects must name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppleSettings {
    /// The Apple Developer team id.
    pub team_id: String,
    /// The bundle id.
    pub bundle_id: String,
    /// Accept the App Attest development environment too.
    #[serde(default)]
    pub allow_development: bool,
}

/// `android` settings: what a Key Attestation must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidSettings {
    /// The package name; one attested package must be it.
    pub package: String,
    /// SHA-256 of the app's signing certificate, 64 hex digits.
    pub signing_digest: String,
    /// Accept an unlocked bootloader or a boot state other than verified.
    #[serde(default)]
    pub allow_unlocked: bool,
    /// Accept software (not TEE or StrongBox) attestation.
    #[serde(default)]
    pub allow_software: bool,
    /// Oldest acceptable `osPatchLevel`, `YYYYMM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_patch_level: Option<u32>,
}

/// `play` settings as stored and shown: everything but the decryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaySettings {
    /// The package name.
    pub package: String,
    /// The verification key from Play Console: base64 of the DER
    /// SubjectPublicKeyInfo (EC P-256).
    pub verification_key: String,
    /// SHA-256 of the app's signing certificate, 64 hex digits; `None`: not
    /// checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_digest: Option<String>,
    /// Labels that must all be in `deviceRecognitionVerdict`.
    #[serde(default = "default_labels")]
    pub device_labels: Vec<String>,
    /// Accept test responses configured in Play Console.
    #[serde(default)]
    pub allow_testing_response: bool,
    /// Oldest `timestampMillis` accepted, seconds before now.
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
}

fn default_labels() -> Vec<String> {
    vec![playintegrity::MEETS_DEVICE_INTEGRITY.to_owned()]
}

fn default_max_age() -> u64 {
    300
}

/// `PUT …/platform/play` body: the settings plus the decryption key, which
/// is sealed at rest and never shown again.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayInput {
    /// The settings.
    #[serde(flatten)]
    pub settings: PlaySettings,
    /// The AES-256 decryption key from Play Console (base64).
    pub decryption_key: String,
}

impl std::fmt::Debug for PlayInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayInput")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field,
        message: message.into(),
    }
}

fn hex32(field: &'static str, text: &str) -> Result<[u8; 32], ApiError> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| invalid(field, "must be 64 hexadecimal digits (a SHA-256)"))
}

/// Verified `apple` settings.
#[derive(Debug, Clone)]
pub struct Apple {
    /// The stored settings.
    pub settings: AppleSettings,
    /// `TEAMID.bundle.id`.
    pub app_id: String,
    /// Allowed environments.
    pub environment: EnvironmentPolicy,
}

impl AppleSettings {
    /// Checks the settings once.
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] naming the bad field.
    pub fn validate(&self) -> Result<Apple, ApiError> {
        check_name("team_id", &self.team_id)?;
        check_name("bundle_id", &self.bundle_id)?;
        Ok(Apple {
            settings: self.clone(),
            app_id: format!("{}.{}", self.team_id, self.bundle_id),
            environment: if self.allow_development {
                EnvironmentPolicy::Any
            } else {
                EnvironmentPolicy::ProductionOnly
            },
        })
    }
}

/// Verified `android` settings.
#[derive(Debug, Clone)]
pub struct Android {
    /// The stored settings.
    pub settings: AndroidSettings,
    /// The signing digest, decoded.
    pub signing_digest: [u8; 32],
}

impl AndroidSettings {
    /// Checks the settings once.
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] naming the bad field.
    pub fn validate(&self) -> Result<Android, ApiError> {
        check_name("package", &self.package)?;
        let signing_digest = hex32("signing_digest", &self.signing_digest)?;
        if let Some(p) = self.min_patch_level
            && !(190_001..=999_912).contains(&p)
        {
            return Err(invalid("min_patch_level", "must be YYYYMM"));
        }
        Ok(Android {
            settings: self.clone(),
            signing_digest,
        })
    }
}

/// Verified `play` settings with the keys.
pub struct Play {
    /// The stored settings.
    pub settings: PlaySettings,
    /// The decryption and verification keys.
    pub keys: Keys,
    /// The certificate digest, decoded.
    pub certificate_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for Play {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Play")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PlaySettings {
    /// Checks the settings once, with the decryption key (raw 32 bytes).
    ///
    /// # Errors
    /// [`ApiError::InvalidField`] naming the bad field.
    pub fn validate(&self, decryption_key: &[u8]) -> Result<Play, ApiError> {
        check_name("package", &self.package)?;
        let spki = decode_base64_any(&self.verification_key)
            .map_err(|_| invalid("verification_key", "must be base64"))?;
        let keys = Keys::new(decryption_key, &spki).map_err(|e| match e {
            playintegrity::KeyError::DecryptionKeyLength(_) => {
                invalid("decryption_key", "must be 32 bytes (AES-256), base64")
            }
            _ => invalid(
                "verification_key",
                "must be the DER SubjectPublicKeyInfo of an EC P-256 key, base64",
            ),
        })?;
        let certificate_digest = self
            .certificate_digest
            .as_deref()
            .map(|d| hex32("certificate_digest", d))
            .transpose()?;
        if self.device_labels.len() > 8
            || self
                .device_labels
                .iter()
                .any(|l| !l.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') || l.is_empty())
        {
            return Err(invalid(
                "device_labels",
                "must be at most 8 labels such as MEETS_DEVICE_INTEGRITY",
            ));
        }
        if !(1..=86_400).contains(&self.max_age_secs) {
            return Err(invalid("max_age_secs", "must be 1 to 86400"));
        }
        Ok(Play {
            settings: self.clone(),
            keys,
            certificate_digest,
        })
    }
}

/// An app's platform settings, checked, as the attestation plane uses them.
#[derive(Debug, Default)]
pub struct AppPlatform {
    /// App Attest.
    pub apple: Option<Apple>,
    /// Android Key Attestation.
    pub android: Option<Android>,
    /// Play Integrity.
    pub play: Option<Play>,
}

/// How one piece of platform evidence fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified.
    Passed,
    /// Failed; every failed check's stable code (never empty).
    Failed(Vec<&'static str>),
}

/// A change to the device's App Attest key state that a passed check asks
/// the caller to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUpdate {
    /// A newly attested key.
    Attested {
        /// The key id.
        key_id: [u8; 32],
        /// The public point.
        public_key: Vec<u8>,
        /// The environment.
        environment: Environment,
    },
    /// An assertion moved the counter.
    Counter {
        /// The key id.
        key_id: [u8; 32],
        /// The new counter.
        counter: u32,
    },
}

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The kind checked (`kind-unknown` evidence: `"unknown"`).
    pub kind: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// What to store when the outcome is [`Outcome::Passed`].
    pub update: Option<KeyUpdate>,
}

/// What [`check`] reads besides the evidence.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    /// The platform challenge of this evidence.
    pub challenge: &'a [u8; 32],
    /// The app's settings.
    pub settings: Option<&'a AppPlatform>,
    /// The device's stored App Attest key (read for assertions).
    pub stored_key: Option<&'a AppAttestKeyRow>,
    /// Trust roots.
    pub roots: &'a PlatformRoots,
    /// The status list, if any.
    pub revocations: Option<&'a RevocationList>,
    /// Unix seconds.
    pub now: i64,
}

fn passed(kind: &'static str, update: Option<KeyUpdate>) -> Checked {
    Checked {
        kind,
        outcome: Outcome::Passed,
        update,
    }
}

fn failed(kind: &'static str, codes: Vec<&'static str>) -> Checked {
    Checked {
        kind,
        outcome: Outcome::Failed(codes),
        update: None,
    }
}

/// Decides one piece of platform evidence. Pure: the caller has read the
/// app's settings and the device's App Attest key.
#[must_use]
pub fn check(
    evidence: &Result<PlatformEvidence, PlatformEvidenceError>,
    input: &CheckInput<'_>,
) -> Checked {
    let ev = match evidence {
        Ok(ev) => ev,
        Err(e) => return failed("unknown", vec![e.code()]),
    };
    let kind = ev.kind();
    let not_configured = || failed(kind, vec!["not-configured"]);
    match ev {
        PlatformEvidence::AppleAppAttest {
            key_id,
            attestation,
        } => {
            let Some(apple) = input.settings.and_then(|s| s.apple.as_ref()) else {
                return not_configured();
            };
            let params = AttestationParams::new(&apple.app_id, input.challenge, input.now)
                .key_id(key_id)
                .environment(apple.environment)
                .roots(&input.roots.apple);
            match appattest::verify_attestation(attestation, &params) {
                Ok(a) => passed(
                    kind,
                    Some(KeyUpdate::Attested {
                        key_id: a.key_id,
                        public_key: a.public_key,
                        environment: a.environment,
                    }),
                ),
                Err(r) => failed(kind, r.reasons.iter().map(|e| e.code()).collect()),
            }
        }
        PlatformEvidence::AppleAppAttestAssertion { key_id, assertion } => {
            let Some(apple) = input.settings.and_then(|s| s.apple.as_ref()) else {
                return not_configured();
            };
            let Some(stored) = input.stored_key else {
                return failed(kind, vec!["key-unknown"]);
            };
            if stored.key_id.as_slice() != key_id.as_slice() {
                return failed(kind, vec!["key-id-mismatch"]);
            }
            let previous = u32::try_from(stored.counter).unwrap_or(u32::MAX);
            let params = AssertionParams::new(
                &apple.app_id,
                ClientData::Raw(input.challenge),
                &stored.public_key,
                previous,
            );
            match appattest::verify_assertion(assertion, &params) {
                Ok(a) => passed(
                    kind,
                    Some(KeyUpdate::Counter {
                        key_id: *key_id,
                        counter: a.counter,
                    }),
                ),
                Err(r) => failed(kind, r.reasons.iter().map(|e| e.code()).collect()),
            }
        }
        PlatformEvidence::AndroidKeyAttestation { chain } => {
            let Some(a) = input.settings.and_then(|s| s.android.as_ref()) else {
                return not_configured();
            };
            let mut params = KeyAttestationParams::new(input.challenge, input.now)
                .package(&a.settings.package)
                .signing_digest(&a.signing_digest)
                .roots(&input.roots.android)
                .allow_software(a.settings.allow_software)
                .allow_unlocked(a.settings.allow_unlocked);
            params.revocations = input.revocations;
            params.min_os_patch_level = a.settings.min_patch_level;
            match android::verify(chain, &params) {
                Ok(_) => passed(kind, None),
                Err(r) => failed(kind, r.reasons.iter().map(|e| e.code()).collect()),
            }
        }
        PlatformEvidence::PlayIntegrity { token, request } => {
            let Some(p) = input.settings.and_then(|s| s.play.as_ref()) else {
                return not_configured();
            };
            let expected_value = b64::encode(input.challenge);
            let mut expected = match request {
                PlayRequest::Standard => {
                    Expectations::standard(&p.settings.package, expected_value)
                }
                PlayRequest::Classic => Expectations::classic(&p.settings.package, expected_value),
            };
            expected.certificate_sha256 = p.certificate_digest;
            expected
                .required_device_labels
                .clone_from(&p.settings.device_labels);
            expected.allow_testing_response = p.settings.allow_testing_response;
            expected.max_age = std::time::Duration::from_secs(p.settings.max_age_secs);
            let at = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(input.now).unwrap_or(0));
            match playintegrity::verify(token, &p.keys, &expected, at) {
                Ok(v) if v.is_valid() => passed(kind, None),
                Ok(v) => failed(kind, v.reasons.iter().map(|r| r.code()).collect()),
                Err(e) => failed(kind, vec![e.code()]),
            }
        }
        // A kind added to the protocol but not yet checked here.
        _ => failed(kind, vec!["kind-unsupported"]),
    }
}

/// The context binding Play's sealed decryption key to its account and app.
#[must_use]
pub fn play_secret_context(account: &str, app_id: &str) -> String {
    format!(
        "genuine/secret/v1/play/{}/{}",
        b64::encode(account.as_bytes()),
        b64::encode(app_id.as_bytes())
    )
}

//! Evidence (protocol §2): a compact JWS signed by the device key.
//!
//! Parsing happens in two steps, matching the two ways the service answers:
//! - [`ParsedEvidence::parse`] checks the structure (three base64url parts, a
//!   JSON header with `alg: ES256`, `typ: genuine-evidence+jwt` and an EC
//!   P-256 `jwk`, nothing else). A failure here is malformed input (HTTP 400).
//! - [`ParsedEvidence::verify`] checks the device-key signature and turns the
//!   payload into typed [`EvidenceClaims`]. A failure here is the verdict
//!   reason `evidence-invalid`: the client still gets a (decoy) token.

use std::collections::BTreeMap;

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::b64;
use crate::device::{DeviceKey, DeviceKeyError, DevicePublicKey, EcJwk};
use crate::platform::{PlatformEvidence, PlatformEvidenceError};

/// The JWS `typ` of evidence.
pub const EVIDENCE_TYP: &str = "genuine-evidence+jwt";
/// Largest accepted evidence, in bytes of compact JWS text.
pub const MAX_EVIDENCE_LEN: usize = 64 * 1024;
/// Largest accepted identifier (account, app id, API domain, platform, version).
pub const MAX_IDENT_LEN: usize = 255;

/// The protected header of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceHeader {
    /// Always `ES256`.
    pub alg: String,
    /// Always `genuine-evidence+jwt`.
    pub typ: String,
    /// The device public key.
    pub jwk: EcJwk,
}

/// The `measurement` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementClaim {
    /// Algorithm name, e.g. `elf-exec-segments-sha256/v1`.
    pub alg: String,
    /// The proof, 32 bytes base64url.
    pub proof: String,
}

/// What the SDK observed on the device. Unknown names are kept in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// SDK version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    /// Operating system name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Operating system version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// A debugger or tracer is attached.
    #[serde(default)]
    pub debugger: bool,
    /// Preloaded libraries found.
    #[serde(default)]
    pub preload: Vec<String>,
    /// Injected mappings or instrumentation found.
    #[serde(default)]
    pub injected: Vec<String>,
    /// Code found patched in memory.
    #[serde(default)]
    pub code_patched: Vec<String>,
    /// Running under a hypervisor.
    #[serde(default)]
    pub virtualized: bool,
    /// Running with root privileges / rooted device.
    #[serde(default)]
    pub root: bool,
    /// Running in an emulator.
    #[serde(default)]
    pub emulator: bool,
    /// Signals this version does not know: kept and shown in metrics, never an error.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The evidence payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceClaims {
    /// The nonce string as issued.
    pub nonce: String,
    /// Account name.
    pub account: String,
    /// App id.
    pub app_id: String,
    /// App version (diagnostics).
    pub app_version: String,
    /// Platform, e.g. `linux`.
    pub platform: String,
    /// The API domain the token is for.
    pub api: String,
    /// The device clock, Unix seconds (diagnostics only).
    pub iat: i64,
    /// The measurement.
    pub measurement: MeasurementClaim,
    /// Device-integrity signals.
    pub signals: Signals,
    /// `b64url(SHA-256(bound data))`, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// Platform attestation evidence, optional (an object with a `kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_evidence: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Evidence whose structure was checked, not yet its signature.
#[derive(Debug, Clone)]
pub struct ParsedEvidence {
    key: DevicePublicKey,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

/// Evidence whose signature and payload were checked.
#[derive(Debug, Clone)]
pub struct VerifiedEvidence {
    /// The device public key that signed it.
    pub key: DevicePublicKey,
    /// The device id derived from the key.
    pub device_id: String,
    /// The typed payload.
    pub claims: EvidenceClaims,
    /// The decoded measurement proof.
    pub proof: [u8; 32],
    /// The decoded binding hash, when given.
    pub binding: Option<[u8; 32]>,
    /// The typed `platform_evidence`, when given: parsed here once. A
    /// malformed one does not make the evidence invalid (its reason is
    /// `platform-attestation-invalid`, decided by the policy).
    pub platform: Option<Result<PlatformEvidence, PlatformEvidenceError>>,
}

/// Account, app and API named by a payload, read without trusting it, so that a
/// failed attestation can still be answered with a decoy for the right API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// The `account` member, if it is a string.
    pub account: Option<String>,
    /// The `app_id` member, if it is a string.
    pub app_id: Option<String>,
    /// The `api` member, if it is a string.
    pub api: Option<String>,
    /// The `nonce` member, if it is a string.
    pub nonce: Option<String>,
}

/// Structural errors: the request is malformed (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedEvidence {
    /// Over [`MAX_EVIDENCE_LEN`].
    #[error("evidence is larger than 64 KiB")]
    TooLarge,
    /// Not three dot-separated parts.
    #[error("evidence is not a compact JWS (three base64url parts separated by dots)")]
    NotCompact,
    /// A part is not canonical base64url.
    #[error("evidence {0} is not canonical unpadded base64url")]
    BadBase64(&'static str),
    /// The header is not a JSON object.
    #[error("evidence header is not a JSON object")]
    HeaderNotJson,
    /// `alg` is missing or not `ES256` (this refuses `none` and HS256).
    #[error("evidence alg must be ES256")]
    UnsupportedAlg,
    /// `typ` is not `genuine-evidence+jwt`.
    #[error("evidence typ must be genuine-evidence+jwt")]
    BadType,
    /// The header has members other than `alg`, `typ`, `jwk` (such as `crit`,
    /// `kid`, `jku`, `x5c`), a duplicate member, or a malformed `jwk`.
    #[error("evidence header must hold exactly alg, typ and an EC P-256 jwk")]
    BadHeader,
    /// The `jwk` is not a usable P-256 public key.
    #[error("evidence jwk: {0}")]
    BadKey(DeviceKeyError),
}

/// Verification errors: the verdict reason `evidence-invalid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvidence {
    /// The signature does not verify with the embedded key.
    #[error("device-key signature does not verify")]
    BadSignature,
    /// The payload is not JSON of the right shape; names the problem.
    #[error("evidence payload: {0}")]
    BadPayload(String),
    /// A field has a bad value; names the field.
    #[error("evidence field {0} has an invalid value")]
    BadField(&'static str),
}

impl ParsedEvidence {
    /// Checks the structure of a compact JWS.
    ///
    /// # Errors
    /// [`MalformedEvidence`] naming the failed check.
    pub fn parse(jws: &str) -> Result<Self, MalformedEvidence> {
        if jws.len() > MAX_EVIDENCE_LEN {
            return Err(MalformedEvidence::TooLarge);
        }
        let mut parts = jws.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedEvidence::NotCompact);
        };
        let header_bytes = b64::decode(h).map_err(|_| MalformedEvidence::BadBase64("header"))?;
        let payload = b64::decode(p).map_err(|_| MalformedEvidence::BadBase64("payload"))?;
        let signature = b64::decode(s).map_err(|_| MalformedEvidence::BadBase64("signature"))?;

        // First look only at `alg`, so that `none` or HS256 is named as such;
        // then parse strictly (unknown or duplicate members refused).
        let loose: serde_json::Value =
            serde_json::from_slice(&header_bytes).map_err(|_| MalformedEvidence::HeaderNotJson)?;
        let serde_json::Value::Object(loose) = loose else {
            return Err(MalformedEvidence::HeaderNotJson);
        };
        if loose.get("alg").and_then(|v| v.as_str()) != Some("ES256") {
            return Err(MalformedEvidence::UnsupportedAlg);
        }
        let header: EvidenceHeader =
            serde_json::from_slice(&header_bytes).map_err(|_| MalformedEvidence::BadHeader)?;
        if header.typ != EVIDENCE_TYP {
            return Err(MalformedEvidence::BadType);
        }
        let key = DevicePublicKey::from_jwk(&header.jwk).map_err(MalformedEvidence::BadKey)?;
        let signing_input = jws.as_bytes()[..h.len() + 1 + p.len()].to_vec();
        Ok(Self {
            key,
            signing_input,
            signature,
            payload,
        })
    }

    /// The device public key named in the header (not yet proven).
    #[must_use]
    pub fn key(&self) -> &DevicePublicKey {
        &self.key
    }

    /// Reads account, app id, API and nonce from the payload without trusting it.
    #[must_use]
    pub fn routing(&self) -> Routing {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&self.payload) else {
            return Routing::default();
        };
        let get = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Routing {
            account: get("account"),
            app_id: get("app_id"),
            api: get("api"),
            nonce: get("nonce"),
        }
    }

    /// Checks the signature with the embedded key, then the payload.
    ///
    /// # Errors
    /// [`InvalidEvidence`] naming the failed check.
    pub fn verify(&self) -> Result<VerifiedEvidence, InvalidEvidence> {
        if !self.key.verify_es256(&self.signing_input, &self.signature) {
            return Err(InvalidEvidence::BadSignature);
        }
        let claims: EvidenceClaims = serde_json::from_slice(&self.payload)
            .map_err(|e| InvalidEvidence::BadPayload(e.to_string()))?;
        for (name, value) in [
            ("account", &claims.account),
            ("app_id", &claims.app_id),
            ("app_version", &claims.app_version),
            ("platform", &claims.platform),
            ("api", &claims.api),
        ] {
            if !is_identifier(value) {
                return Err(InvalidEvidence::BadField(name));
            }
        }
        let proof: [u8; 32] = b64::decode_array(&claims.measurement.proof)
            .map_err(|_| InvalidEvidence::BadField("measurement.proof"))?;
        if !is_identifier(&claims.measurement.alg) {
            return Err(InvalidEvidence::BadField("measurement.alg"));
        }
        let binding = match &claims.binding {
            Some(b) => {
                Some(b64::decode_array::<32>(b).map_err(|_| InvalidEvidence::BadField("binding"))?)
            }
            None => None,
        };
        let platform = claims
            .platform_evidence
            .as_ref()
            .map(PlatformEvidence::parse);
        Ok(VerifiedEvidence {
            device_id: self.key.device_id(),
            key: self.key.clone(),
            claims,
            proof,
            binding,
            platform,
        })
    }
}

/// Whether `s` is an acceptable identifier: 1 to 255 bytes, no control characters.
#[must_use]
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_IDENT_LEN && !s.chars().any(char::is_control)
}

/// Signs arbitrary header and payload bytes as a compact JWS with the device
/// key. Tests use it to build malformed evidence; apps use [`sign_evidence`].
///
/// # Errors
/// [`DeviceKeyError::SigningFailed`] if the random source fails.
pub fn sign_compact(
    key: &DeviceKey,
    rng: &dyn SecureRandom,
    header: &[u8],
    payload: &[u8],
) -> Result<String, DeviceKeyError> {
    let mut out = b64::encode(header);
    out.push('.');
    out.push_str(&b64::encode(payload));
    let sig = key.sign(rng, out.as_bytes())?;
    out.push('.');
    out.push_str(&b64::encode(&sig));
    Ok(out)
}

/// Why [`sign_evidence_with`] could not build evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignWithError<E> {
    /// The header or claims could not be encoded as JSON.
    #[error("evidence could not be encoded")]
    Encode,
    /// The signer failed.
    #[error("signing the evidence failed: {0}")]
    Sign(E),
}

/// Builds evidence with any signer of the device key (a key in memory, or one
/// in Android Keystore or the Secure Enclave that never leaves it): the
/// header with `public_key` as its JWK and the claims, signed by `sign`,
/// which receives the JWS signing input and returns the fixed-size ES256
/// signature (`r || s`, 64 bytes).
///
/// # Errors
/// [`SignWithError::Sign`] with the signer's error, or
/// [`SignWithError::Encode`].
pub fn sign_evidence_with<E>(
    public_key: &DevicePublicKey,
    claims: &EvidenceClaims,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<String, SignWithError<E>> {
    let header = EvidenceHeader {
        alg: "ES256".into(),
        typ: EVIDENCE_TYP.into(),
        jwk: public_key.to_jwk(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| SignWithError::Encode)?;
    let payload = serde_json::to_vec(claims).map_err(|_| SignWithError::Encode)?;
    let mut out = b64::encode(&header);
    out.push('.');
    out.push_str(&b64::encode(&payload));
    let sig = sign(out.as_bytes()).map_err(SignWithError::Sign)?;
    out.push('.');
    out.push_str(&b64::encode(&sig));
    Ok(out)
}

/// Builds evidence: the header with the device's public JWK and the claims, signed.
///
/// # Errors
/// [`DeviceKeyError::SigningFailed`] if the random source fails.
pub fn sign_evidence(
    key: &DeviceKey,
    rng: &dyn SecureRandom,
    claims: &EvidenceClaims,
) -> Result<String, DeviceKeyError> {
    sign_evidence_with(key.public_key(), claims, |input| key.sign(rng, input))
        .map_err(|_| DeviceKeyError::SigningFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::ELF_EXEC_SEGMENTS_SHA256_V1;
    use ring::rand::SystemRandom;

    fn claims() -> EvidenceClaims {
        EvidenceClaims {
            nonce: "n".into(),
            account: "default".into(),
            app_id: "com.example.shop".into(),
            app_version: "1.0".into(),
            platform: "linux".into(),
            api: "api.example.com".into(),
            iat: 1,
            measurement: MeasurementClaim {
                alg: ELF_EXEC_SEGMENTS_SHA256_V1.into(),
                proof: b64::encode(&[1; 32]),
            },
            signals: Signals::default(),
            binding: None,
            platform_evidence: None,
        }
    }

    #[test]
    fn sign_parse_verify() {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        let jws = sign_evidence(&key, &rng, &claims()).unwrap();
        let parsed = ParsedEvidence::parse(&jws).unwrap();
        assert_eq!(parsed.routing().api.as_deref(), Some("api.example.com"));
        let v = parsed.verify().unwrap();
        assert_eq!(v.claims, claims());
        assert_eq!(v.device_id, key.public_key().device_id());
    }

    #[test]
    fn tampered_payload_fails_signature() {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        let jws = sign_evidence(&key, &rng, &claims()).unwrap();
        let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
        let mut c = claims();
        c.app_id = "com.evil".into();
        parts[1] = b64::encode(&serde_json::to_vec(&c).unwrap());
        let parsed = ParsedEvidence::parse(&parts.join(".")).unwrap();
        assert_eq!(parsed.verify().unwrap_err(), InvalidEvidence::BadSignature);
    }

    #[test]
    fn header_checks() {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        let jwk = serde_json::to_value(key.public_key().to_jwk()).unwrap();
        let p = serde_json::to_vec(&claims()).unwrap();
        let case = |h: serde_json::Value| {
            ParsedEvidence::parse(&sign_compact(&key, &rng, h.to_string().as_bytes(), &p).unwrap())
                .map(|_| ())
        };
        use serde_json::json;
        assert_eq!(
            case(json!({"alg":"none","typ":EVIDENCE_TYP,"jwk":jwk})),
            Err(MalformedEvidence::UnsupportedAlg)
        );
        assert_eq!(
            case(json!({"alg":"HS256","typ":EVIDENCE_TYP,"jwk":jwk})),
            Err(MalformedEvidence::UnsupportedAlg)
        );
        assert_eq!(
            case(json!({"typ":EVIDENCE_TYP,"jwk":jwk})),
            Err(MalformedEvidence::UnsupportedAlg)
        );
        assert_eq!(
            case(json!({"alg":"ES256","typ":"JWT","jwk":jwk})),
            Err(MalformedEvidence::BadType)
        );
        assert_eq!(
            case(json!({"alg":"ES256","typ":EVIDENCE_TYP,"jwk":jwk,"crit":["x"]})),
            Err(MalformedEvidence::BadHeader)
        );
        assert_eq!(
            case(json!({"alg":"ES256","typ":EVIDENCE_TYP,"jwk":jwk,"jku":"http://x"})),
            Err(MalformedEvidence::BadHeader)
        );
        assert_eq!(
            case(json!({"alg":"ES256","typ":EVIDENCE_TYP})),
            Err(MalformedEvidence::BadHeader)
        );
        let mut with_d = jwk.clone();
        with_d["d"] = json!("AAAA");
        assert_eq!(
            case(json!({"alg":"ES256","typ":EVIDENCE_TYP,"jwk":with_d})),
            Err(MalformedEvidence::BadHeader)
        );
        let dup = format!(r#"{{"alg":"ES256","alg":"ES256","typ":"{EVIDENCE_TYP}","jwk":{jwk}}}"#);
        assert_eq!(
            ParsedEvidence::parse(&sign_compact(&key, &rng, dup.as_bytes(), &p).unwrap())
                .map(|_| ()),
            Err(MalformedEvidence::BadHeader)
        );
        assert_eq!(
            ParsedEvidence::parse("a.b").map(|_| ()),
            Err(MalformedEvidence::NotCompact)
        );
        assert_eq!(
            ParsedEvidence::parse("a.b.c.d").map(|_| ()),
            Err(MalformedEvidence::NotCompact)
        );
        assert_eq!(
            ParsedEvidence::parse("a=.b.c").map(|_| ()),
            Err(MalformedEvidence::BadBase64("header"))
        );
    }

    #[test]
    fn payload_checks() {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        let sign = |v: serde_json::Value| {
            sign_compact(
                &key,
                &rng,
                serde_json::to_string(&EvidenceHeader {
                    alg: "ES256".into(),
                    typ: EVIDENCE_TYP.into(),
                    jwk: key.public_key().to_jwk(),
                })
                .unwrap()
                .as_bytes(),
                v.to_string().as_bytes(),
            )
            .unwrap()
        };
        let mut v = serde_json::to_value(claims()).unwrap();
        v["iat"] = serde_json::json!("yesterday");
        assert!(matches!(
            ParsedEvidence::parse(&sign(v)).unwrap().verify(),
            Err(InvalidEvidence::BadPayload(_))
        ));
        let mut v = serde_json::to_value(claims()).unwrap();
        v["measurement"]["proof"] = serde_json::json!("AAAA");
        assert_eq!(
            ParsedEvidence::parse(&sign(v))
                .unwrap()
                .verify()
                .unwrap_err(),
            InvalidEvidence::BadField("measurement.proof")
        );
        let mut v = serde_json::to_value(claims()).unwrap();
        v["signals"]["frida_server_port"] = serde_json::json!(27042);
        let ok = ParsedEvidence::parse(&sign(v)).unwrap().verify().unwrap();
        assert_eq!(ok.claims.signals.other["frida_server_port"], 27042);
        let mut v = serde_json::to_value(claims()).unwrap();
        v["account"] = serde_json::json!("");
        assert_eq!(
            ParsedEvidence::parse(&sign(v))
                .unwrap()
                .verify()
                .unwrap_err(),
            InvalidEvidence::BadField("account")
        );
    }
}

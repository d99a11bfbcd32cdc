//! Apple App Attest: attestation objects and assertions.
//!
//! [`verify_attestation`] checks an attestation object as Apple's
//! "Validating apps that connect to your server" describes:
//!
//! 1. the CBOR object `{fmt: "apple-appattest", attStmt: {x5c, receipt},
//!    authData}`;
//! 2. the `x5c` chain (credential certificate first) to a trust root (by
//!    default the built-in Apple App Attestation Root CA) at the given instant;
//! 3. nonce = SHA-256(authData ‖ clientDataHash) equals the OCTET STRING in
//!    the credential certificate's extension `1.2.840.113635.100.8.2`;
//! 4. key id = SHA-256 of the certificate's public key (the SEC1 point)
//!    equals the expected key id (when given) and the credential id;
//! 5. rpIdHash = SHA-256(team id "." bundle id);
//! 6. counter 0;
//! 7. aaguid `appattestdevelop` (development) or `appattest` + 7 NULs
//!    (production), allowed by the [`EnvironmentPolicy`].
//!
//! [`verify_assertion`] checks an assertion `{signature, authenticatorData}`:
//! ECDSA P-256 SHA-256 with the attested key over
//! nonce = SHA-256(authenticatorData ‖ SHA-256(clientData)), the rpIdHash and
//! a counter strictly above the stored one. Real assertions carry a 37-byte
//! authenticatorData with the AT flag set but no attested credential data;
//! that is accepted (the flags are not interpreted).
//!
//! Once the structure has parsed, every independent check runs and every
//! failure is reported ([`Rejected::reasons`]), with the decoded fields.

use ciborium::value::Value as Cbor;

use crate::x509::{self, ChainError, ChainOptions, KeyType, TrustAnchor};

/// aaguid of the development environment.
pub const AAGUID_DEVELOPMENT: [u8; 16] = *b"appattestdevelop";
/// aaguid of the production environment.
pub const AAGUID_PRODUCTION: [u8; 16] = *b"appattest\0\0\0\0\0\0\0";
/// The credential certificate extension holding the nonce.
pub const NONCE_EXTENSION_OID: &str = "1.2.840.113635.100.8.2";

const FLAG_AT: u8 = 0x40;
const AUTH_DATA_MIN: usize = 37;

/// The App Attest environment an object was made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// aaguid `appattestdevelop`.
    Development,
    /// aaguid `appattest` followed by seven NUL bytes.
    Production,
}

impl Environment {
    /// `development` or `production`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }

    /// The environment of an aaguid, if it is one of the two.
    #[must_use]
    pub fn from_aaguid(aaguid: &[u8]) -> Option<Self> {
        if aaguid == AAGUID_DEVELOPMENT {
            Some(Self::Development)
        } else if aaguid == AAGUID_PRODUCTION {
            Some(Self::Production)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which environments an attestation may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EnvironmentPolicy {
    /// Production only (the default).
    #[default]
    ProductionOnly,
    /// Development only (a test deployment that must not see store builds).
    DevelopmentOnly,
    /// Either (`--allow-development`).
    Any,
}

impl EnvironmentPolicy {
    /// Whether the policy admits `env`.
    #[must_use]
    pub fn allows(self, env: Environment) -> bool {
        matches!(
            (self, env),
            (Self::Any, _)
                | (Self::ProductionOnly, Environment::Production)
                | (Self::DevelopmentOnly, Environment::Development)
        )
    }
}

/// One failed check. [`Self::code`] gives a stable kebab-case name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppAttestError {
    /// The object is not one well-formed CBOR item.
    #[error("the object is not well-formed CBOR")]
    Cbor,
    /// A required field is absent (or appears twice).
    #[error("field {0} is missing or repeated")]
    MissingField(&'static str),
    /// A field has the wrong CBOR type.
    #[error("field {0} has the wrong type")]
    FieldType(&'static str),
    /// `fmt` is not `apple-appattest`.
    #[error("fmt is {0:?}, not \"apple-appattest\"")]
    Format(String),
    /// authenticatorData is shorter than its fixed part or its attested
    /// credential data.
    #[error("authenticator data is truncated")]
    AuthDataTruncated,
    /// The attestation's authenticatorData has no attested credential data.
    #[error("authenticator data carries no attested credential")]
    NoAttestedCredential,
    /// The certificate chain failed.
    #[error("certificate chain: {0}")]
    Certificate(ChainError),
    /// The credential certificate's key is not an EC P-256 key.
    #[error("the credential certificate's key is not EC P-256")]
    LeafKeyNotP256,
    /// The credential certificate lacks the nonce extension.
    #[error("the credential certificate has no nonce extension (1.2.840.113635.100.8.2)")]
    NonceExtensionMissing,
    /// The nonce extension is not `SEQUENCE { [1] EXPLICIT OCTET STRING (32) }`.
    #[error("the nonce extension is malformed")]
    NonceExtensionMalformed,
    /// SHA-256(authData ‖ clientDataHash) differs from the certificate's nonce
    /// (wrong challenge or client data hash).
    #[error("nonce mismatch: the attestation is not for this client data hash")]
    NonceMismatch,
    /// The certificate key's SHA-256 differs from the expected key id.
    #[error("key id mismatch")]
    KeyIdMismatch,
    /// The credential id in authData differs from the key id.
    #[error("credential id differs from the key id")]
    CredentialIdMismatch,
    /// rpIdHash differs from SHA-256 of the App ID (another app).
    #[error("rpIdHash mismatch: the object is for another app")]
    RpIdMismatch,
    /// An attestation's counter is not 0.
    #[error("attestation counter is {0}, not 0")]
    CounterNotZero(u32),
    /// An aaguid that is neither development nor production.
    #[error("unknown aaguid {}", x509::hex(.0))]
    UnknownAaguid([u8; 16]),
    /// The environment is not allowed by the policy.
    #[error("environment {0} is not allowed")]
    EnvironmentNotAllowed(Environment),
    /// The public key given for an assertion is not a P-256 key.
    #[error("the public key is not an EC P-256 key")]
    PublicKeyInvalid,
    /// The assertion's signature does not verify with the key.
    #[error("the assertion signature does not verify")]
    SignatureInvalid,
    /// The assertion counter is not above the stored one (replay).
    #[error("counter {counter} is not above the stored {previous}")]
    CounterNotIncreasing {
        /// The assertion's counter.
        counter: u32,
        /// The stored counter.
        previous: u32,
    },
}

impl AppAttestError {
    /// A stable kebab-case name for JSON `reasons`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Cbor => "cbor-malformed",
            Self::MissingField(_) => "field-missing",
            Self::FieldType(_) => "field-type",
            Self::Format(_) => "format-unknown",
            Self::AuthDataTruncated => "auth-data-truncated",
            Self::NoAttestedCredential => "no-attested-credential",
            Self::Certificate(ChainError::Expired { .. }) => "certificate-expired",
            Self::Certificate(ChainError::NotYetValid { .. }) => "certificate-not-yet-valid",
            Self::Certificate(ChainError::Untrusted) => "certificate-untrusted",
            Self::Certificate(ChainError::BadSignature { .. }) => "certificate-signature-invalid",
            Self::Certificate(_) => "certificate-invalid",
            Self::LeafKeyNotP256 => "leaf-key-not-p256",
            Self::NonceExtensionMissing => "nonce-extension-missing",
            Self::NonceExtensionMalformed => "nonce-extension-malformed",
            Self::NonceMismatch => "nonce-mismatch",
            Self::KeyIdMismatch => "key-id-mismatch",
            Self::CredentialIdMismatch => "credential-id-mismatch",
            Self::RpIdMismatch => "rp-id-mismatch",
            Self::CounterNotZero(_) => "counter-not-zero",
            Self::UnknownAaguid(_) => "aaguid-unknown",
            Self::EnvironmentNotAllowed(_) => "environment-not-allowed",
            Self::PublicKeyInvalid => "public-key-invalid",
            Self::SignatureInvalid => "signature-invalid",
            Self::CounterNotIncreasing { .. } => "counter-not-increasing",
        }
    }
}

/// A refused object: every failed check, and what could be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Rejected<T> {
    /// The failed checks (never empty).
    pub reasons: Vec<AppAttestError>,
    /// The decoded fields, when the structure parsed.
    pub decoded: Option<Box<T>>,
}

impl<T> Rejected<T> {
    fn one(reason: AppAttestError) -> Self {
        Self {
            reasons: vec![reason],
            decoded: None,
        }
    }
}

/// What to expect of an attestation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttestationParams<'a> {
    /// `TEAMID.bundle.id`.
    pub app_id: &'a str,
    /// The exact bytes the app passed to `attestKey` as clientDataHash.
    pub client_data_hash: &'a [u8],
    /// The key id the app reported, if any (32 bytes).
    pub key_id: Option<&'a [u8]>,
    /// Allowed environments.
    pub environment: EnvironmentPolicy,
    /// The instant of verification, Unix seconds.
    pub now: i64,
    /// Trust roots (default: [`crate::roots::apple_app_attestation`]).
    pub roots: &'a [TrustAnchor],
}

impl<'a> AttestationParams<'a> {
    /// Production only, the built-in Apple root, no expected key id.
    #[must_use]
    pub fn new(app_id: &'a str, client_data_hash: &'a [u8], now: i64) -> Self {
        Self {
            app_id,
            client_data_hash,
            key_id: None,
            environment: EnvironmentPolicy::default(),
            now,
            roots: crate::roots::apple_app_attestation(),
        }
    }

    /// Expects this key id.
    #[must_use]
    pub fn key_id(mut self, key_id: &'a [u8]) -> Self {
        self.key_id = Some(key_id);
        self
    }

    /// Sets the environment policy.
    #[must_use]
    pub fn environment(mut self, policy: EnvironmentPolicy) -> Self {
        self.environment = policy;
        self
    }

    /// Trusts these roots instead of the built-in one.
    #[must_use]
    pub fn roots(mut self, roots: &'a [TrustAnchor]) -> Self {
        self.roots = roots;
        self
    }
}

/// The fields of an attestation object (valid or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedAttestation {
    /// SHA-256 of the credential certificate's public key point.
    pub key_id: [u8; 32],
    /// The credential certificate's key: SEC1 point (uncompressed, 65 bytes
    /// for P-256).
    pub public_key: Vec<u8>,
    /// The credential certificate's DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    /// The authenticatorData counter.
    pub counter: u32,
    /// The aaguid.
    pub aaguid: [u8; 16],
    /// The environment the aaguid names, if known.
    pub environment: Option<Environment>,
    /// The credential id in authData.
    pub credential_id: Vec<u8>,
    /// The fraud-metric receipt (opaque PKCS#7 bytes).
    pub receipt: Vec<u8>,
}

/// A verified attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// SHA-256 of the public key point; store it with the key.
    pub key_id: [u8; 32],
    /// The attested key: SEC1 uncompressed point (65 bytes).
    pub public_key: Vec<u8>,
    /// The attested key as DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    /// The counter (always 0).
    pub counter: u32,
    /// The environment.
    pub environment: Environment,
    /// The fraud-metric receipt (opaque PKCS#7 bytes).
    pub receipt: Vec<u8>,
}

/// Verifies an App Attest attestation object (raw CBOR bytes).
///
/// # Errors
/// [`Rejected`] with every failed check.
pub fn verify_attestation(
    object: &[u8],
    params: &AttestationParams<'_>,
) -> Result<Attestation, Rejected<DecodedAttestation>> {
    let top = decode_map(object)?;
    let fmt = field(&top, "fmt")?
        .as_text()
        .ok_or(AppAttestError::FieldType("fmt"))
        .map_err(Rejected::one)?;
    if fmt != "apple-appattest" {
        return Err(Rejected::one(AppAttestError::Format(fmt.to_owned())));
    }
    let att_stmt = field(&top, "attStmt")?
        .as_map()
        .ok_or(AppAttestError::FieldType("attStmt"))
        .map_err(Rejected::one)?;
    let auth_data = bytes_field(&top, "authData")?;
    let x5c = field(att_stmt, "x5c")?
        .as_array()
        .ok_or(AppAttestError::FieldType("x5c"))
        .map_err(Rejected::one)?;
    let chain = x5c
        .iter()
        .map(|c| c.as_bytes().map(Vec::as_slice))
        .collect::<Option<Vec<&[u8]>>>()
        .ok_or(Rejected::one(AppAttestError::FieldType("x5c")))?;
    let receipt = bytes_field(att_stmt, "receipt")?.to_vec();

    let ad = parse_auth_data(auth_data).map_err(Rejected::one)?;
    let Some((aaguid, credential_id)) = ad.attested else {
        return Err(Rejected::one(AppAttestError::NoAttestedCredential));
    };
    let Some(leaf_der) = chain.first() else {
        return Err(Rejected::one(AppAttestError::Certificate(
            ChainError::Empty,
        )));
    };
    let x509::ParsedLeaf {
        spki,
        public_key: point,
        key_type,
        extensions,
    } = x509::parse_leaf(leaf_der).map_err(|e| Rejected::one(AppAttestError::Certificate(e)))?;

    let mut reasons = Vec::new();
    // 2. The chain.
    if let Err(e) = x509::verify_chain(&chain, params.roots, params.now, &ChainOptions::strict()) {
        reasons.push(AppAttestError::Certificate(e));
    }
    if key_type != KeyType::EcP256 {
        reasons.push(AppAttestError::LeafKeyNotP256);
    }
    // 3. The nonce.
    let mut nonce_input = Vec::with_capacity(auth_data.len() + params.client_data_hash.len());
    nonce_input.extend_from_slice(auth_data);
    nonce_input.extend_from_slice(params.client_data_hash);
    let nonce = x509::sha256(&nonce_input);
    match extensions.iter().find(|e| e.oid == NONCE_EXTENSION_OID) {
        None => reasons.push(AppAttestError::NonceExtensionMissing),
        Some(ext) => match nonce_from_extension(&ext.value) {
            None => reasons.push(AppAttestError::NonceExtensionMalformed),
            Some(n) if !ct_eq(n, &nonce) => reasons.push(AppAttestError::NonceMismatch),
            Some(_) => {}
        },
    }
    // 4. Key id and credential id.
    let key_id = x509::sha256(&point);
    if let Some(expected) = params.key_id
        && !ct_eq(expected, &key_id)
    {
        reasons.push(AppAttestError::KeyIdMismatch);
    }
    if credential_id != key_id {
        reasons.push(AppAttestError::CredentialIdMismatch);
    }
    // 5. rpIdHash.
    if !ct_eq(ad.rp_id_hash, &x509::sha256(params.app_id.as_bytes())) {
        reasons.push(AppAttestError::RpIdMismatch);
    }
    // 6. Counter.
    if ad.counter != 0 {
        reasons.push(AppAttestError::CounterNotZero(ad.counter));
    }
    // 7. Environment.
    let mut aaguid_arr = [0u8; 16];
    aaguid_arr.copy_from_slice(aaguid);
    let environment = Environment::from_aaguid(aaguid);
    match environment {
        None => reasons.push(AppAttestError::UnknownAaguid(aaguid_arr)),
        Some(env) if !params.environment.allows(env) => {
            reasons.push(AppAttestError::EnvironmentNotAllowed(env));
        }
        Some(_) => {}
    }

    match environment {
        Some(environment) if reasons.is_empty() => Ok(Attestation {
            key_id,
            public_key: point,
            public_key_spki: spki,
            counter: ad.counter,
            environment,
            receipt,
        }),
        _ => Err(Rejected {
            reasons,
            decoded: Some(Box::new(DecodedAttestation {
                key_id,
                public_key: point,
                public_key_spki: spki,
                counter: ad.counter,
                aaguid: aaguid_arr,
                environment,
                credential_id: credential_id.to_vec(),
                receipt,
            })),
        }),
    }
}

/// The client data of an assertion: the raw bytes (hashed here) or their
/// SHA-256.
#[derive(Debug, Clone, Copy)]
pub enum ClientData<'a> {
    /// The raw client data the app signed.
    Raw(&'a [u8]),
    /// SHA-256 of the client data.
    Hash(&'a [u8; 32]),
}

/// What to expect of an assertion.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AssertionParams<'a> {
    /// `TEAMID.bundle.id`.
    pub app_id: &'a str,
    /// The client data the app signed.
    pub client_data: ClientData<'a>,
    /// The attested key: SEC1 uncompressed point (see
    /// [`public_key_from_spki_der`] and [`public_key_from_pem`]).
    pub public_key: &'a [u8],
    /// The counter stored with the key (0 after the attestation).
    pub previous_counter: u32,
}

impl<'a> AssertionParams<'a> {
    /// The expectations of one assertion.
    #[must_use]
    pub fn new(
        app_id: &'a str,
        client_data: ClientData<'a>,
        public_key: &'a [u8],
        previous_counter: u32,
    ) -> Self {
        Self {
            app_id,
            client_data,
            public_key,
            previous_counter,
        }
    }
}

/// A verified assertion (also the decoded fields of a refused one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The new counter; store it.
    pub counter: u32,
    /// SHA-256 of the public key point (the key id).
    pub key_id: [u8; 32],
}

/// Verifies an App Attest assertion (raw CBOR bytes).
///
/// # Errors
/// [`Rejected`] with every failed check.
pub fn verify_assertion(
    object: &[u8],
    params: &AssertionParams<'_>,
) -> Result<Assertion, Rejected<Assertion>> {
    let top = decode_map(object)?;
    let sig = bytes_field(&top, "signature")?;
    let auth_data = bytes_field(&top, "authenticatorData")?;
    let ad = parse_auth_data(auth_data).map_err(Rejected::one)?;

    let mut reasons = Vec::new();
    let client_hash = match params.client_data {
        ClientData::Raw(d) => x509::sha256(d),
        ClientData::Hash(h) => *h,
    };
    let mut msg = Vec::with_capacity(auth_data.len() + 32);
    msg.extend_from_slice(auth_data);
    msg.extend_from_slice(&client_hash);
    let nonce = x509::sha256(&msg);
    if params.public_key.len() != 65 || params.public_key.first() != Some(&0x04) {
        reasons.push(AppAttestError::PublicKeyInvalid);
    } else {
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            params.public_key,
        );
        if key.verify(&nonce, sig).is_err() {
            reasons.push(AppAttestError::SignatureInvalid);
        }
    }
    if !ct_eq(ad.rp_id_hash, &x509::sha256(params.app_id.as_bytes())) {
        reasons.push(AppAttestError::RpIdMismatch);
    }
    if ad.counter <= params.previous_counter {
        reasons.push(AppAttestError::CounterNotIncreasing {
            counter: ad.counter,
            previous: params.previous_counter,
        });
    }
    let verdict = Assertion {
        counter: ad.counter,
        key_id: x509::sha256(params.public_key),
    };
    if reasons.is_empty() {
        Ok(verdict)
    } else {
        Err(Rejected {
            reasons,
            decoded: Some(Box::new(verdict)),
        })
    }
}

/// The SEC1 point of a P-256 SubjectPublicKeyInfo (DER).
///
/// # Errors
/// [`AppAttestError::PublicKeyInvalid`].
pub fn public_key_from_spki_der(spki: &[u8]) -> Result<Vec<u8>, AppAttestError> {
    use x509_parser::prelude::FromDer;
    let (rest, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|_| AppAttestError::PublicKeyInvalid)?;
    let curve = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    if !rest.is_empty()
        || info.algorithm.algorithm.to_id_string() != "1.2.840.10045.2.1"
        || curve.as_deref() != Some("1.2.840.10045.3.1.7")
    {
        return Err(AppAttestError::PublicKeyInvalid);
    }
    Ok(info.subject_public_key.data.to_vec())
}

/// The SEC1 point of a `-----BEGIN PUBLIC KEY-----` P-256 PEM.
///
/// # Errors
/// [`AppAttestError::PublicKeyInvalid`].
pub fn public_key_from_pem(pem: &str) -> Result<Vec<u8>, AppAttestError> {
    let blocks =
        x509::pem_blocks(pem, "PUBLIC KEY").map_err(|_| AppAttestError::PublicKeyInvalid)?;
    match blocks.as_slice() {
        [one] => public_key_from_spki_der(one),
        _ => Err(AppAttestError::PublicKeyInvalid),
    }
}

struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    counter: u32,
    /// (aaguid, credential id) when the AT flag is set and the data present.
    attested: Option<(&'a [u8], &'a [u8])>,
}

fn parse_auth_data(data: &[u8]) -> Result<AuthData<'_>, AppAttestError> {
    if data.len() < AUTH_DATA_MIN {
        return Err(AppAttestError::AuthDataTruncated);
    }
    let (rp_id_hash, rest) = data.split_at(32);
    let (flags, rest) = rest.split_at(1);
    let (counter, rest) = rest.split_at(4);
    let counter = u32::from_be_bytes([counter[0], counter[1], counter[2], counter[3]]);
    // Assertions set AT without attested data (37 bytes): only read the
    // credential when there is more than the fixed part.
    let attested = if flags[0] & FLAG_AT != 0 && !rest.is_empty() {
        if rest.len() < 18 {
            return Err(AppAttestError::AuthDataTruncated);
        }
        let (aaguid, rest) = rest.split_at(16);
        let (len, rest) = rest.split_at(2);
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if rest.len() < len {
            return Err(AppAttestError::AuthDataTruncated);
        }
        Some((aaguid, &rest[..len]))
    } else {
        None
    };
    Ok(AuthData {
        rp_id_hash,
        counter,
        attested,
    })
}

/// `SEQUENCE { [1] EXPLICIT OCTET STRING (32 bytes) }` → the 32 bytes.
fn nonce_from_extension(value: &[u8]) -> Option<&[u8]> {
    let seq = der_exact(value, 0x30)?;
    let tagged = der_exact(seq, 0xa1)?;
    let octets = der_exact(tagged, 0x04)?;
    (octets.len() == 32).then_some(octets)
}

/// The contents of one DER TLV with this tag that spans all of `input`.
fn der_exact(input: &[u8], tag: u8) -> Option<&[u8]> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&l, rest) = rest.split_first()?;
    let (len, rest) = match l {
        0..=0x7f => (usize::from(l), rest),
        0x81 => {
            let (&b, rest) = rest.split_first()?;
            if b < 0x80 {
                return None;
            }
            (usize::from(b), rest)
        }
        0x82 => {
            let (hi, rest) = (rest.first()?, rest.get(1..)?);
            let (lo, rest) = (rest.first()?, rest.get(1..)?);
            let len = usize::from(*hi) << 8 | usize::from(*lo);
            if len < 0x100 {
                return None;
            }
            (len, rest)
        }
        _ => return None,
    };
    (rest.len() == len).then_some(rest)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Map = Vec<(Cbor, Cbor)>;

fn decode_map<T>(object: &[u8]) -> Result<Map, Rejected<T>> {
    let mut reader = object;
    let value: Cbor =
        ciborium::de::from_reader(&mut reader).map_err(|_| Rejected::one(AppAttestError::Cbor))?;
    if !reader.is_empty() {
        return Err(Rejected::one(AppAttestError::Cbor));
    }
    match value {
        Cbor::Map(m) => Ok(m),
        _ => Err(Rejected::one(AppAttestError::Cbor)),
    }
}

fn optional<'m, T>(map: &'m Map, name: &'static str) -> Result<Option<&'m Cbor>, Rejected<T>> {
    let mut found = map.iter().filter(|(k, _)| k.as_text() == Some(name));
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some((_, v)), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(Rejected::one(AppAttestError::MissingField(name))),
    }
}

fn field<'m, T>(map: &'m Map, name: &'static str) -> Result<&'m Cbor, Rejected<T>> {
    optional(map, name)?.ok_or(Rejected::one(AppAttestError::MissingField(name)))
}

fn bytes_field<'m, T>(map: &'m Map, name: &'static str) -> Result<&'m [u8], Rejected<T>> {
    field(map, name)?
        .as_bytes()
        .map(Vec::as_slice)
        .ok_or(Rejected::one(AppAttestError::FieldType(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_extension_shapes() {
        let mut good = vec![0x30, 0x24, 0xa1, 0x22, 0x04, 0x20];
        good.extend_from_slice(&[7u8; 32]);
        assert_eq!(nonce_from_extension(&good), Some(&[7u8; 32][..]));
        let mut short = good.clone();
        short.pop();
        assert_eq!(nonce_from_extension(&short), None);
        let mut wrong_tag = good.clone();
        wrong_tag[2] = 0xa2;
        assert_eq!(nonce_from_extension(&wrong_tag), None);
        assert_eq!(nonce_from_extension(&[]), None);
    }

    #[test]
    fn auth_data_shapes() {
        assert_eq!(
            parse_auth_data(&[0u8; 36]).err(),
            Some(AppAttestError::AuthDataTruncated)
        );
        let mut ad = vec![0u8; 37];
        ad[32] = FLAG_AT;
        ad[36] = 5;
        let p = parse_auth_data(&ad).unwrap();
        assert_eq!(p.counter, 5);
        assert!(p.attested.is_none());
        ad.extend_from_slice(&[1u8; 16]);
        assert!(parse_auth_data(&ad).is_err());
        ad.extend_from_slice(&[0, 2, 9]);
        assert!(parse_auth_data(&ad).is_err());
        ad.push(9);
        let p = parse_auth_data(&ad).unwrap();
        assert_eq!(p.attested, Some((&[1u8; 16][..], &[9u8, 9][..])));
    }

    #[test]
    fn garbage_objects() {
        let p = AttestationParams::new("T.b", &[], 0);
        for obj in [&b""[..], b"\xff", b"\xa0\x00", b"\x01"] {
            let e = verify_attestation(obj, &p).unwrap_err();
            assert_eq!(e.reasons, vec![AppAttestError::Cbor], "{obj:?}");
        }
        let e = verify_attestation(b"\xa0", &p).unwrap_err();
        assert_eq!(e.reasons, vec![AppAttestError::MissingField("fmt")]);
    }

    #[test]
    fn policies() {
        use Environment::*;
        use EnvironmentPolicy::*;
        assert!(ProductionOnly.allows(Production) && !ProductionOnly.allows(Development));
        assert!(DevelopmentOnly.allows(Development) && !DevelopmentOnly.allows(Production));
        assert!(Any.allows(Development) && Any.allows(Production));
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        let p = AttestationParams::new("T.b", &[], 0);
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0];
        for head in [0x9bu8, 0xbb, 0x5b, 0x7b] {
            let mut obj = vec![head];
            obj.extend_from_slice(&huge);
            let e = verify_attestation(&obj, &p).unwrap_err();
            assert_eq!(e.reasons, vec![AppAttestError::Cbor]);
        }
        // Deep nesting.
        let deep = vec![0x81u8; 100_000];
        assert!(verify_attestation(&deep, &p).is_err());
    }
}

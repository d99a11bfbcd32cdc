//! Certificate-chain verification shared by the platform verifiers.
//!
//! [`verify_chain`] takes a DER chain (leaf first), the trust anchors, the
//! instant of verification and the [`ChainOptions`], and checks:
//!
//! - every certificate parses as DER X.509 with no trailing bytes;
//! - each certificate's signature verifies with the key of the next one
//!   (ECDSA P-256/P-384 with SHA-256/SHA-384, RSA PKCS#1 v1.5 with
//!   SHA-256/384/512, 2048 bits or more); anything else is refused by name;
//! - the outer signature algorithm equals the one inside the signed part;
//! - each issuer's subject name equals the issued certificate's issuer name;
//! - every issuing certificate is a CA (basic constraints `cA`, path length,
//!   key usage `keyCertSign` when a key usage is present);
//! - the chain ends in a trust anchor: either a certificate whose
//!   SubjectPublicKeyInfo is pinned, or a certificate signed by a pinned key;
//! - every certificate below the anchor is valid at the given instant (the
//!   anchor is trusted by its key, its own validity period is not checked:
//!   Google's 2016 root expired while factory chains still end in it);
//! - no certificate carries a critical extension this module does not know.
//!
//! Leniency for encodings real devices emit is opt-in through
//! [`ChainOptions`], never implicit.

use ring::signature;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, X509Name};

/// The most certificates a chain may hold.
pub const MAX_CHAIN_LEN: usize = 10;

/// A trusted public key, pinned by its DER SubjectPublicKeyInfo.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    spki: Vec<u8>,
    name: String,
    /// The DER subject name, when the anchor came from a certificate.
    subject: Option<Vec<u8>>,
}

impl std::fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("name", &self.name)
            .field("spki_sha256", &hex(&sha256(&self.spki)))
            .finish()
    }
}

impl TrustAnchor {
    /// An anchor from a DER SubjectPublicKeyInfo and a name for messages.
    ///
    /// # Errors
    /// [`ChainError::AnchorInvalid`] when the bytes are not one SPKI.
    pub fn from_spki_der(spki: &[u8], name: impl Into<String>) -> Result<Self, ChainError> {
        match x509_parser::x509::SubjectPublicKeyInfo::from_der(spki) {
            Ok(([], _)) => Ok(Self {
                spki: spki.to_vec(),
                name: name.into(),
                subject: None,
            }),
            _ => Err(ChainError::AnchorInvalid),
        }
    }

    /// An anchor from a DER certificate: its key is pinned, its subject
    /// becomes the name.
    ///
    /// # Errors
    /// [`ChainError::AnchorInvalid`] when the bytes are not one certificate.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, ChainError> {
        match X509Certificate::from_der(der) {
            Ok(([], cert)) => Ok(Self {
                spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
                name: cert.tbs_certificate.subject.to_string(),
                subject: Some(cert.tbs_certificate.subject.as_raw().to_vec()),
            }),
            _ => Err(ChainError::AnchorInvalid),
        }
    }

    /// Anchors from every certificate in a PEM text.
    ///
    /// # Errors
    /// [`ChainError::AnchorInvalid`] when the text holds no certificate or
    /// one that does not parse.
    pub fn from_pem(pem: &str) -> Result<Vec<Self>, ChainError> {
        let ders = pem_certificates(pem).map_err(|_| ChainError::AnchorInvalid)?;
        if ders.is_empty() {
            return Err(ChainError::AnchorInvalid);
        }
        ders.iter().map(|d| Self::from_certificate_der(d)).collect()
    }

    /// The pinned DER SubjectPublicKeyInfo.
    #[must_use]
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The anchor's name (the certificate subject, or the name given).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Opt-in leniency for encodings real devices emit. The default is strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ChainOptions {
    /// Accept an issuing certificate whose key usage extension lacks
    /// `keyCertSign` (some Android intermediates).
    pub allow_ca_without_key_cert_sign: bool,
    /// Accept an issuing certificate without basic constraints `cA = TRUE`
    /// (some Android attestation intermediates are plain certificates).
    pub allow_ca_without_basic_constraints: bool,
    /// Accept explicit NULL parameters in ECDSA signature algorithm
    /// identifiers (RFC 5758 says absent).
    pub allow_ecdsa_null_parameters: bool,
    /// Do not check the leaf's validity period (Google's Key Attestation
    /// verifier skips it: the device sets it, so it may be skewed).
    pub skip_leaf_validity: bool,
    /// Accept critical extensions this module does not process (Google's
    /// Key Attestation verifier does not check them).
    pub allow_unknown_critical_extensions: bool,
    /// Accept RSA issuer keys of 1024 to 2047 bits (AOSP software
    /// attestation chains; legacy only).
    pub allow_legacy_rsa_1024: bool,
}

impl ChainOptions {
    /// Strict PKIX-style checks (the default).
    #[must_use]
    pub fn strict() -> Self {
        Self::default()
    }

    /// Sets [`Self::allow_ca_without_key_cert_sign`].
    #[must_use]
    pub fn allow_ca_without_key_cert_sign(mut self, yes: bool) -> Self {
        self.allow_ca_without_key_cert_sign = yes;
        self
    }

    /// Sets [`Self::allow_ca_without_basic_constraints`].
    #[must_use]
    pub fn allow_ca_without_basic_constraints(mut self, yes: bool) -> Self {
        self.allow_ca_without_basic_constraints = yes;
        self
    }

    /// Sets [`Self::skip_leaf_validity`].
    #[must_use]
    pub fn skip_leaf_validity(mut self, yes: bool) -> Self {
        self.skip_leaf_validity = yes;
        self
    }

    /// Sets [`Self::allow_unknown_critical_extensions`].
    #[must_use]
    pub fn allow_unknown_critical_extensions(mut self, yes: bool) -> Self {
        self.allow_unknown_critical_extensions = yes;
        self
    }

    /// Sets [`Self::allow_legacy_rsa_1024`].
    #[must_use]
    pub fn allow_legacy_rsa_1024(mut self, yes: bool) -> Self {
        self.allow_legacy_rsa_1024 = yes;
        self
    }

    /// Sets [`Self::allow_ecdsa_null_parameters`].
    #[must_use]
    pub fn allow_ecdsa_null_parameters(mut self, yes: bool) -> Self {
        self.allow_ecdsa_null_parameters = yes;
        self
    }
}

/// Why a chain was refused. `index` counts from the leaf (0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain holds no certificate.
    #[error("the certificate chain is empty")]
    Empty,
    /// More than [`MAX_CHAIN_LEN`] certificates.
    #[error("the certificate chain holds {0} certificates (at most {MAX_CHAIN_LEN})")]
    TooLong(usize),
    /// A certificate is not DER X.509 (or has trailing bytes).
    #[error("certificate {index} does not parse as DER X.509")]
    Malformed {
        /// Position in the chain.
        index: usize,
    },
    /// A trust anchor is not a valid SPKI or certificate.
    #[error("a trust anchor does not parse")]
    AnchorInvalid,
    /// A signature algorithm outside the supported set.
    #[error("certificate {index}: unsupported signature algorithm {oid}")]
    UnsupportedSignatureAlgorithm {
        /// Position in the chain.
        index: usize,
        /// Dotted OID.
        oid: String,
    },
    /// An issuer key type or curve outside the supported set.
    #[error("certificate {index}: unsupported public key algorithm {oid}")]
    UnsupportedKey {
        /// Position in the chain of the certificate holding the key.
        index: usize,
        /// Dotted OID of the algorithm (or the curve).
        oid: String,
    },
    /// The algorithm identifier's parameters are not the permitted encoding.
    #[error("certificate {index}: signature algorithm parameters not permitted")]
    AlgorithmParameters {
        /// Position in the chain.
        index: usize,
    },
    /// The signature algorithm outside and inside the signed part differ.
    #[error("certificate {index}: signature algorithm differs from the signed one")]
    AlgorithmMismatch {
        /// Position in the chain.
        index: usize,
    },
    /// An RSA issuer key below 2048 bits.
    #[error("certificate {index}: RSA key of {bits} bits (at least 2048)")]
    KeyTooSmall {
        /// Position in the chain of the certificate holding the key.
        index: usize,
        /// The modulus size.
        bits: usize,
    },
    /// The signature does not verify with the issuer's key.
    #[error("certificate {index}: signature does not verify with the issuer's key")]
    BadSignature {
        /// Position in the chain.
        index: usize,
    },
    /// The issuer name does not match the next certificate's subject.
    #[error("certificate {index}: issuer name does not match the next certificate's subject")]
    IssuerMismatch {
        /// Position in the chain.
        index: usize,
    },
    /// An issuing certificate is not a CA (basic constraints).
    #[error("certificate {index} issues certificates but is not a CA")]
    NotCa {
        /// Position in the chain.
        index: usize,
    },
    /// An issuing certificate's key usage lacks `keyCertSign`.
    #[error("certificate {index} issues certificates but lacks keyCertSign")]
    NoKeyCertSign {
        /// Position in the chain.
        index: usize,
    },
    /// An issuing certificate's path length constraint is exceeded.
    #[error("certificate {index}: path length constraint exceeded")]
    PathLength {
        /// Position in the chain.
        index: usize,
    },
    /// A critical extension this module does not process.
    #[error("certificate {index}: unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// Position in the chain.
        index: usize,
        /// Dotted OID.
        oid: String,
    },
    /// A certificate's notBefore is after the instant.
    #[error("certificate {index} is not yet valid (notBefore {not_before})")]
    NotYetValid {
        /// Position in the chain.
        index: usize,
        /// notBefore, Unix seconds.
        not_before: i64,
    },
    /// A certificate's notAfter is before the instant.
    #[error("certificate {index} has expired (notAfter {not_after})")]
    Expired {
        /// Position in the chain.
        index: usize,
        /// notAfter, Unix seconds.
        not_after: i64,
    },
    /// Neither a certificate's key nor its issuer's key is a trust anchor.
    #[error("the chain does not end in a trusted root")]
    Untrusted,
    /// The leaf's own key is a trust anchor (a chain needs a certificate
    /// below the anchor).
    #[error("the leaf certificate is a trust anchor")]
    LeafIsAnchor,
    /// Certificates follow the one that is a trust anchor.
    #[error("certificates follow the trust anchor at {index}")]
    BeyondAnchor {
        /// Position of the anchor in the chain.
        index: usize,
    },
}

/// One X.509v3 extension of the leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Dotted OID, e.g. `1.2.840.113635.100.8.2`.
    pub oid: String,
    /// The critical flag.
    pub critical: bool,
    /// The extnValue contents (the DER inside the OCTET STRING).
    pub value: Vec<u8>,
}

/// The leaf's public key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// EC on P-256; key bytes are the SEC1 point.
    EcP256,
    /// EC on P-384; key bytes are the SEC1 point.
    EcP384,
    /// RSA; key bytes are the DER RSAPublicKey.
    Rsa,
    /// Another algorithm (e.g. ML-DSA); key bytes are the BIT STRING contents.
    Other,
}

/// A chain that verified: the leaf's key and extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The leaf certificate, DER.
    pub leaf_der: Vec<u8>,
    /// The leaf's DER SubjectPublicKeyInfo.
    pub leaf_spki: Vec<u8>,
    /// The leaf's subjectPublicKey BIT STRING contents (SEC1 point for EC).
    pub leaf_public_key: Vec<u8>,
    /// The leaf's key type.
    pub leaf_key_type: KeyType,
    /// The leaf's extensions, in certificate order.
    pub leaf_extensions: Vec<Extension>,
    /// The name of the trust anchor the chain ends in.
    pub anchor: String,
    /// The number of chain certificates checked up to the anchor (the
    /// anchor certificate itself included when it was in the chain).
    pub path_len: usize,
}

impl VerifiedChain {
    /// The leaf extension with this dotted OID (the first, if repeated).
    #[must_use]
    pub fn extension(&self, oid: &str) -> Option<&Extension> {
        self.leaf_extensions.iter().find(|e| e.oid == oid)
    }
}

/// A leaf certificate parsed but not verified: its key and extensions.
/// Verifiers use it to report their own findings when the chain failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLeaf {
    /// The DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// The subjectPublicKey BIT STRING contents (SEC1 point for EC).
    pub public_key: Vec<u8>,
    /// The key type.
    pub key_type: KeyType,
    /// The extensions, in certificate order.
    pub extensions: Vec<Extension>,
}

/// Parses a leaf certificate without verifying anything.
///
/// # Errors
/// [`ChainError::Malformed`] (index 0).
pub fn parse_leaf(der: &[u8]) -> Result<ParsedLeaf, ChainError> {
    let cert = parse_one(der, 0)?;
    let (key_type, public_key) = leaf_key(&cert);
    Ok(ParsedLeaf {
        spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
        public_key,
        key_type,
        extensions: extensions_of(&cert),
    })
}

/// Verifies a DER chain, leaf first, against `anchors` at `now` (Unix
/// seconds).
///
/// # Errors
/// The first failed check, as a [`ChainError`].
pub fn verify_chain<C: AsRef<[u8]>>(
    chain: &[C],
    anchors: &[TrustAnchor],
    now: i64,
    options: &ChainOptions,
) -> Result<VerifiedChain, ChainError> {
    if chain.is_empty() {
        return Err(ChainError::Empty);
    }
    if chain.len() > MAX_CHAIN_LEN {
        return Err(ChainError::TooLong(chain.len()));
    }
    let certs = chain
        .iter()
        .enumerate()
        .map(|(i, d)| parse_one(d.as_ref(), i))
        .collect::<Result<Vec<_>, _>>()?;

    // The first certificate whose key is pinned ends the path.
    let pinned = |c: &X509Certificate<'_>| {
        anchors
            .iter()
            .find(|a| a.spki == c.tbs_certificate.subject_pki.raw)
    };
    let anchor_at = certs.iter().position(|c| pinned(c).is_some());
    if let Some(k) = anchor_at
        && k + 1 < certs.len()
    {
        return Err(ChainError::BeyondAnchor { index: k });
    }
    if anchor_at == Some(0) {
        return Err(ChainError::LeafIsAnchor);
    }
    // Certificates checked for validity, extensions, signatures.
    let checked = anchor_at.unwrap_or(certs.len());

    for (i, cert) in certs.iter().enumerate().take(checked) {
        if i > 0 || !options.skip_leaf_validity {
            check_validity(cert, i, now)?;
        }
        if !options.allow_unknown_critical_extensions {
            check_critical(cert, i)?;
        }
        if i > 0 {
            check_ca(cert, i, options)?;
        }
    }
    // The anchor certificate (when in the chain) must still be allowed to
    // issue: its CA properties are checked, its validity is not.
    if let Some(k) = anchor_at
        && k > 0
        && let Some(a) = certs.get(k)
    {
        check_ca(a, k, options)?;
    }

    for i in 0..checked {
        let (Some(cert), next) = (certs.get(i), certs.get(i + 1)) else {
            break;
        };
        match next {
            Some(issuer) => {
                if !names_match(
                    &cert.tbs_certificate.issuer,
                    &issuer.tbs_certificate.subject,
                ) {
                    return Err(ChainError::IssuerMismatch { index: i });
                }
                check_signature(
                    cert,
                    i,
                    issuer.tbs_certificate.subject_pki.raw,
                    i + 1,
                    options,
                )?;
            }
            None => {
                // The last certificate is not pinned: an anchor must sign it.
                let mut last_err = ChainError::Untrusted;
                let mut found = None;
                for a in anchors {
                    match check_signature(cert, i, &a.spki, i + 1, options) {
                        Ok(()) => {
                            found = Some(a.name.clone());
                            break;
                        }
                        Err(e @ ChainError::UnsupportedSignatureAlgorithm { .. })
                        | Err(e @ ChainError::AlgorithmParameters { .. })
                        | Err(e @ ChainError::AlgorithmMismatch { .. }) => last_err = e,
                        // The anchor named as issuer does not verify it.
                        Err(e @ ChainError::BadSignature { .. })
                            if a.subject.as_deref()
                                == Some(cert.tbs_certificate.issuer.as_raw()) =>
                        {
                            last_err = e;
                        }
                        Err(_) => {}
                    }
                }
                return match found {
                    Some(name) => Ok(finish(&certs, name, i + 1)),
                    None => Err(last_err),
                };
            }
        }
    }
    match anchor_at {
        Some(k) => {
            let name = certs
                .get(k)
                .and_then(pinned)
                .map(|a| a.name.clone())
                .unwrap_or_default();
            Ok(finish(&certs, name, k + 1))
        }
        None => Err(ChainError::Untrusted),
    }
}

fn finish(certs: &[X509Certificate<'_>], anchor: String, path_len: usize) -> VerifiedChain {
    let (leaf_spki, leaf_public_key, leaf_key_type, leaf_extensions, leaf_der) = match certs.first()
    {
        Some(leaf) => {
            let (kt, key) = leaf_key(leaf);
            (
                leaf.tbs_certificate.subject_pki.raw.to_vec(),
                key,
                kt,
                extensions_of(leaf),
                leaf.as_raw().to_vec(),
            )
        }
        None => (
            Vec::new(),
            Vec::new(),
            KeyType::Other,
            Vec::new(),
            Vec::new(),
        ),
    };
    VerifiedChain {
        leaf_der,
        leaf_spki,
        leaf_public_key,
        leaf_key_type,
        leaf_extensions,
        anchor,
        path_len,
    }
}

fn parse_one(der: &[u8], index: usize) -> Result<X509Certificate<'_>, ChainError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(ChainError::Malformed { index }),
    }
}

fn extensions_of(cert: &X509Certificate<'_>) -> Vec<Extension> {
    cert.extensions()
        .iter()
        .map(|e| Extension {
            oid: e.oid.to_id_string(),
            critical: e.critical,
            value: e.value.to_vec(),
        })
        .collect()
}

fn leaf_key(cert: &X509Certificate<'_>) -> (KeyType, Vec<u8>) {
    let spki = &cert.tbs_certificate.subject_pki;
    let key = spki.subject_public_key.data.to_vec();
    let kt = match key_kind(&spki.algorithm) {
        Ok(KeyKind::P256) => KeyType::EcP256,
        Ok(KeyKind::P384) => KeyType::EcP384,
        Ok(KeyKind::Rsa) => KeyType::Rsa,
        Err(_) => KeyType::Other,
    };
    (kt, key)
}

fn check_validity(cert: &X509Certificate<'_>, index: usize, now: i64) -> Result<(), ChainError> {
    let v = &cert.tbs_certificate.validity;
    let not_before = v.not_before.timestamp();
    let not_after = v.not_after.timestamp();
    if now < not_before {
        return Err(ChainError::NotYetValid { index, not_before });
    }
    if now > not_after {
        return Err(ChainError::Expired { index, not_after });
    }
    Ok(())
}

/// Extensions whose semantics this module either checks or that carry no
/// constraint on path validation.
const KNOWN_CRITICAL: &[&str] = &[
    "2.5.29.15", // keyUsage
    "2.5.29.19", // basicConstraints
    "2.5.29.37", // extKeyUsage
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.17", // subjectAltName
];

fn check_critical(cert: &X509Certificate<'_>, index: usize) -> Result<(), ChainError> {
    for e in cert.extensions() {
        if e.critical {
            let oid = e.oid.to_id_string();
            if !KNOWN_CRITICAL.contains(&oid.as_str()) {
                return Err(ChainError::UnknownCriticalExtension { index, oid });
            }
        }
    }
    Ok(())
}

fn check_ca(
    cert: &X509Certificate<'_>,
    index: usize,
    options: &ChainOptions,
) -> Result<(), ChainError> {
    let bc = cert
        .basic_constraints()
        .map_err(|_| ChainError::Malformed { index })?;
    match bc {
        Some(bc) if bc.value.ca => {
            // Certificates between this one and the leaf, the leaf excluded.
            if let Some(max) = bc.value.path_len_constraint
                && (index - 1) as u64 > u64::from(max)
            {
                return Err(ChainError::PathLength { index });
            }
        }
        _ if options.allow_ca_without_basic_constraints => {}
        _ => return Err(ChainError::NotCa { index }),
    }
    let ku = cert
        .key_usage()
        .map_err(|_| ChainError::Malformed { index })?;
    if let Some(ku) = ku
        && !ku.value.key_cert_sign()
        && !options.allow_ca_without_key_cert_sign
    {
        return Err(ChainError::NoKeyCertSign { index });
    }
    Ok(())
}

enum KeyKind {
    P256,
    P384,
    Rsa,
}

fn key_kind(alg: &AlgorithmIdentifier<'_>) -> Result<KeyKind, String> {
    match alg.algorithm.to_id_string().as_str() {
        "1.2.840.10045.2.1" => {
            let curve = alg
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => Ok(KeyKind::P256),
                "1.3.132.0.34" => Ok(KeyKind::P384),
                _ => Err(if curve.is_empty() {
                    "1.2.840.10045.2.1".to_owned()
                } else {
                    curve
                }),
            }
        }
        "1.2.840.113549.1.1.1" => Ok(KeyKind::Rsa),
        other => Err(other.to_owned()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

fn is_null(p: Option<&x509_parser::der_parser::asn1_rs::Any<'_>>) -> bool {
    p.is_some_and(|a| {
        a.header.tag() == x509_parser::der_parser::asn1_rs::Tag::Null && a.data.is_empty()
    })
}

fn check_signature(
    cert: &X509Certificate<'_>,
    index: usize,
    issuer_spki_der: &[u8],
    issuer_index: usize,
    options: &ChainOptions,
) -> Result<(), ChainError> {
    let outer = &cert.signature_algorithm;
    // The unsigned outer AlgorithmIdentifier must be byte-equal to the
    // signed one (the parser alone tolerates some mis-encodings there).
    match raw_signature_algorithms(cert.as_raw(), &cert.signature_value.data) {
        Some((signed, unsigned)) if signed == unsigned => {}
        _ => return Err(ChainError::AlgorithmMismatch { index }),
    }
    let oid = outer.algorithm.to_id_string();
    let (ecdsa, hash) = match oid.as_str() {
        "1.2.840.10045.4.3.2" => (true, Hash::Sha256),
        "1.2.840.10045.4.3.3" => (true, Hash::Sha384),
        "1.2.840.113549.1.1.11" => (false, Hash::Sha256),
        "1.2.840.113549.1.1.12" => (false, Hash::Sha384),
        "1.2.840.113549.1.1.13" => (false, Hash::Sha512),
        _ => return Err(ChainError::UnsupportedSignatureAlgorithm { index, oid }),
    };
    let params = outer.parameters.as_ref();
    let params_ok = if ecdsa {
        params.is_none() || (options.allow_ecdsa_null_parameters && is_null(params))
    } else {
        // RFC 4055: NULL and absent are both legal for these.
        params.is_none() || is_null(params)
    };
    if !params_ok {
        return Err(ChainError::AlgorithmParameters { index });
    }

    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(issuer_spki_der).map_err(|_| {
            ChainError::Malformed {
                index: issuer_index,
            }
        })?;
    let kind = key_kind(&spki.algorithm).map_err(|oid| ChainError::UnsupportedKey {
        index: issuer_index,
        oid,
    })?;
    let mut legacy = false;
    if matches!(kind, KeyKind::Rsa)
        && let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = spki.parsed()
        && rsa.key_size() < 2048
    {
        if !options.allow_legacy_rsa_1024 || rsa.key_size() < 1024 {
            return Err(ChainError::KeyTooSmall {
                index: issuer_index,
                bits: rsa.key_size(),
            });
        }
        legacy = true;
    }
    let alg: &dyn signature::VerificationAlgorithm = match (kind, ecdsa, hash) {
        (KeyKind::Rsa, false, Hash::Sha256) if legacy => {
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
        }
        (KeyKind::Rsa, false, Hash::Sha512) if legacy => {
            &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
        }
        (KeyKind::Rsa, false, Hash::Sha384) if legacy => {
            return Err(ChainError::UnsupportedSignatureAlgorithm { index, oid });
        }
        (KeyKind::P256, true, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeyKind::P256, true, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
        (KeyKind::P384, true, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (KeyKind::P384, true, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (KeyKind::Rsa, false, Hash::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (KeyKind::Rsa, false, Hash::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (KeyKind::Rsa, false, Hash::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        // A supported algorithm that does not fit the issuer's key type.
        _ => return Err(ChainError::BadSignature { index }),
    };
    let key = signature::UnparsedPublicKey::new(alg, &spki.subject_public_key.data);
    key.verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
        .map_err(|_| ChainError::BadSignature { index })
}

/// One DER TLV: (tag, the whole TLV, its contents, what follows).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let (bytes, rest) = (rest.get(..n)?, rest.get(n..)?);
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            // DER: the shortest length form.
            if len < 0x80 || bytes.first() == Some(&0) {
                return None;
            }
            (len, rest)
        }
        _ => return None,
    };
    let header = input.len() - rest.len();
    let contents = rest.get(..len)?;
    let whole = input.get(..header + len)?;
    Some((tag, whole, contents, rest.get(len..)?))
}

/// The raw signed (inside tbsCertificate) and unsigned (outer)
/// AlgorithmIdentifiers of a DER certificate, after checking the unsigned
/// outer structure is DER: `SEQUENCE { SEQUENCE tbs, SEQUENCE alg,
/// BIT STRING (0 unused bits) signature }` and nothing else.
fn raw_signature_algorithms<'a>(cert: &'a [u8], signature: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let (0x30, _, body, []) = tlv(cert)? else {
        return None;
    };
    let (0x30, _, tbs, rest) = tlv(body)? else {
        return None;
    };
    let (0x30, outer, _, rest) = tlv(rest)? else {
        return None;
    };
    let (0x03, _, bits, []) = tlv(rest)? else {
        return None;
    };
    if bits.split_first() != Some((&0, signature)) {
        return None;
    }
    // tbsCertificate: [0] version (optional), serialNumber, signature.
    let (tag, _, _, mut after) = tlv(tbs)?;
    if tag == 0xa0 {
        after = tlv(after)?.3;
    }
    let (0x30, inner, _, _) = tlv(after)? else {
        return None;
    };
    Some((inner, outer))
}

/// Names match when their DER is equal, or when they hold the same
/// attributes in the same order with values equal after case folding and
/// whitespace collapsing (the RFC 5280 §7.1 comparison, simplified: string
/// types may differ, as in re-encoded device chains).
fn names_match(a: &X509Name<'_>, b: &X509Name<'_>) -> bool {
    if a.as_raw() == b.as_raw() {
        return true;
    }
    let (ra, rb): (Vec<_>, Vec<_>) = (a.iter().collect(), b.iter().collect());
    if ra.len() != rb.len() {
        return false;
    }
    ra.iter().zip(rb.iter()).all(|(x, y)| {
        let (xa, ya): (Vec<_>, Vec<_>) = (x.iter().collect(), y.iter().collect());
        xa.len() == ya.len()
            && xa.iter().zip(ya.iter()).all(|(p, q)| {
                p.attr_type() == q.attr_type()
                    && match (p.as_str(), q.as_str()) {
                        (Ok(s), Ok(t)) => fold(s) == fold(t),
                        _ => p.attr_value().data == q.attr_value().data,
                    }
            })
    })
}

fn fold(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The DER certificates of a PEM text (`-----BEGIN CERTIFICATE-----`
/// blocks; other blocks are skipped).
///
/// # Errors
/// [`PemError`] when a block is unterminated or its base64 is invalid.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, PemError> {
    pem_blocks(pem, "CERTIFICATE")
}

/// The DER contents of every `-----BEGIN {label}-----` block in a PEM text.
///
/// # Errors
/// [`PemError`] when a block is unterminated or its base64 is invalid.
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, PemError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after.find(&end).ok_or(PemError)?;
        let body: String = after[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = data_encoding::BASE64
            .decode(body.as_bytes())
            .map_err(|_| PemError)?;
        out.push(der);
        rest = &after[stop + end.len()..];
    }
    Ok(out)
}

/// A PEM text with an unterminated block or invalid base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid PEM")]
pub struct PemError;

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn hex(data: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip_and_errors() {
        assert_eq!(
            pem_certificates("no pem here").unwrap(),
            Vec::<Vec<u8>>::new()
        );
        assert_eq!(
            pem_certificates("-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n")
                .unwrap(),
            vec![vec![0, 1, 2]]
        );
        assert!(pem_certificates("-----BEGIN CERTIFICATE-----\nAAEC\n").is_err());
        assert!(
            pem_certificates("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err()
        );
    }

    #[test]
    fn empty_and_garbage_chains() {
        let none: [&[u8]; 0] = [];
        assert_eq!(
            verify_chain(&none, &[], 0, &ChainOptions::default()),
            Err(ChainError::Empty)
        );
        assert_eq!(
            verify_chain(&[&[0x30u8, 0x00][..]], &[], 0, &ChainOptions::default()),
            Err(ChainError::Malformed { index: 0 })
        );
        let many = vec![vec![0u8]; MAX_CHAIN_LEN + 1];
        assert_eq!(
            verify_chain(&many, &[], 0, &ChainOptions::default()),
            Err(ChainError::TooLong(MAX_CHAIN_LEN + 1))
        );
        assert_eq!(
            TrustAnchor::from_spki_der(&[1, 2, 3], "x"),
            Err(ChainError::AnchorInvalid)
        );
    }
}

#[cfg(test)]
mod android_chains {
    use super::*;

    fn dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
    }

    fn unix(s: &str) -> i64 {
        let s = s.trim_end_matches('Z');
        let (date, time) = s.split_once('T').unwrap();
        let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
        let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
        let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
    }

    fn anchors(names: &[&str]) -> Vec<TrustAnchor> {
        names
            .iter()
            .flat_map(|n| {
                let pem = std::fs::read_to_string(dir().join("roots").join(n)).unwrap();
                TrustAnchor::from_pem(&pem).unwrap()
            })
            .collect()
    }

    /// Google's roots (the RSA key in four issues, Key Attestation CA1) and,
    /// for recognising software chains only, the AOSP software roots.
    fn all_roots() -> Vec<TrustAnchor> {
        anchors(&[
            "google_hw_attestation_root_rsa_2016_e8fa196314d2fa18.pem",
            "google_hw_attestation_root_rsa_2019_d50ff25ba3f2d6b3.pem",
            "google_hw_attestation_root_rsa_2021_c36b7c44b9ae1831.pem",
            "google_hw_attestation_root_rsa_2022_f1c172a699eaf51d.pem",
            "google_key_attestation_ca1_ec_p384_2025.pem",
            "aosp_software_attestation_root_ec_NOT_TRUSTED.pem",
            "aosp_software_attestation_root_rsa_NOT_TRUSTED.pem",
        ])
    }

    /// Every Android chain gives the chain outcome `vectors.json` states
    /// (against its own root), with the leniency Google's verifier has.
    #[test]
    fn android_chains_give_their_stated_outcome() {
        let roots = all_roots();
        let google_only = &roots[..5];
        let lenient = ChainOptions::strict()
            .allow_ca_without_key_cert_sign(true)
            .allow_ca_without_basic_constraints(true)
            .allow_legacy_rsa_1024(true);
        let text = std::fs::read_to_string(dir().join("android/vectors.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let (mut valid, mut reject) = (0, 0);
        for c in v["vectors"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap();
            let file = dir().join("android").join(c["file"].as_str().unwrap());
            let chain = pem_certificates(&std::fs::read_to_string(file).unwrap()).unwrap();
            let at = c["verify_at"].as_str().map_or(0, unix);
            let expected = c["expected_chain_result"].as_str().unwrap();
            let got = verify_chain(&chain, &roots, at, &lenient);
            if expected.starts_with("VALID") {
                let ok = got.unwrap_or_else(|e| panic!("{id}: {e:?}"));
                assert_eq!(ok.path_len, chain.len(), "{id}");
                assert_eq!(ok.leaf_der, chain[0], "{id}");
                assert!(ok.extension("1.3.6.1.4.1.11129.2.1.17").is_some(), "{id}");
                let software = c["root"].as_str().unwrap().starts_with("aosp");
                assert_eq!(
                    verify_chain(&chain, google_only, at, &lenient).is_ok(),
                    !software,
                    "{id}"
                );
                valid += 1;
            } else {
                assert!(expected.starts_with("REJECT"), "{id}");
                assert!(got.is_err(), "{id}");
                reject += 1;
            }
        }
        assert_eq!((valid, reject), (26, 5));
    }

    /// The leniency is needed, and it is opt-in.
    #[test]
    fn quirks_need_their_options() {
        let roots = all_roots();
        let read = |name: &str| {
            let p = dir().join("android/chains").join(name);
            pem_certificates(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        // Sony: the attestation intermediate is CA:FALSE without keyCertSign.
        let sony = read("ka_sony-xperia10-iii_sdk33_TEE_EC.pem");
        let at = unix("2021-05-25T17:10:25Z");
        let strict = ChainOptions::strict();
        assert_eq!(
            verify_chain(&sony, &roots, at, &strict),
            Err(ChainError::NotCa { index: 1 })
        );
        assert_eq!(
            verify_chain(
                &sony,
                &roots,
                at,
                &strict.allow_ca_without_basic_constraints(true)
            ),
            Err(ChainError::NoKeyCertSign { index: 1 })
        );
        // The anchor (the 2016 root) expired in 2026: its validity is not checked.
        assert!(
            verify_chain(
                &sony,
                &roots,
                at,
                &strict
                    .allow_ca_without_basic_constraints(true)
                    .allow_ca_without_key_cert_sign(true)
            )
            .is_ok()
        );
        // Marlin RSA: AOSP software chain with a 1024-bit RSA intermediate.
        let marlin = read("ka_marlin_sdk29_TEE_RSA_NONE.pem");
        let at = unix("2019-10-29T00:22:50Z");
        assert_eq!(
            verify_chain(&marlin, &roots, at, &strict),
            Err(ChainError::KeyTooSmall {
                index: 1,
                bits: 1024
            })
        );
        assert!(verify_chain(&marlin, &roots, at, &strict.allow_legacy_rsa_1024(true)).is_ok());
        // A hardware chain: the leaf validity may be skipped, nothing else.
        let akita = read("ka_akita_sdk34_TEE_EC_NONE.pem");
        let later = unix("2040-01-01T00:00:00Z");
        assert!(matches!(
            verify_chain(&akita, &roots, later, &strict),
            Err(ChainError::Expired { .. })
        ));
        let skip = strict.skip_leaf_validity(true);
        assert!(matches!(
            verify_chain(&akita, &roots, later, &skip),
            Err(ChainError::Expired { index, .. }) if index > 0
        ));
        // Reordered: the intermediate's issuer is not the next subject.
        let mut swapped = akita.clone();
        swapped.swap(1, 2);
        assert!(verify_chain(&swapped, &roots, unix("2024-09-26T22:32:25Z"), &strict).is_err());
    }
}

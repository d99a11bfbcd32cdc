//! Android Key Attestation: a KeyStore certificate chain (leaf first, as
//! `KeyStore.getCertificateChain()` returns it) verified as Google's verifier
//! (android/keyattestation) does, then checked against a policy.
//!
//! [`verify`] takes the DER chain and the [`KeyAttestationParams`] (expected
//! challenge, package and signing-certificate digest, the instant, trust
//! roots, an optional parsed [`RevocationList`], policy relaxations) and
//! checks:
//!
//! 1. the chain ([`crate::x509::verify_chain`] with
//!    [`google_chain_options`]): every signature, issuer names, the root
//!    pinned by public key (default: [`crate::roots::google_hardware_attestation`],
//!    Google's RSA root in its four issues and Key Attestation CA1; the AOSP
//!    software roots are never built in), every certificate but the leaf
//!    valid at the instant;
//! 2. the chain's layout as Google's `KeyAttestationCertPathValidator`
//!    enforces it (3 to 5 certificates; only the leaf carries the
//!    KeyDescription, which defeats chain extension with an attested key; a
//!    5-certificate chain is a Remote Key Provisioning chain whose
//!    attestation certificate carries the provisioning-info extension; a
//!    3-certificate chain's intermediate is not a factory one);
//! 3. no certificate's serial is on the status list (REVOKED or SUSPENDED);
//! 4. the KeyDescription extension (OID 1.3.6.1.4.1.11129.2.1.17), parsed
//!    into a [`KeyDescription`], and the policy: challenge (always), package
//!    and signing digest (when expected), hardware security level (TEE or
//!    StrongBox, both levels equal; unless `allow_software`), key origin
//!    generated, verified boot and a locked bootloader (unless
//!    `allow_unlocked`), and an optional minimum OS patch level.
//!
//! When the certificates parse, every check runs and every failure is
//! reported ([`Rejected::reasons`]), with the decoded KeyDescription.
//!
//! The verifier is pure: no clock (the instant is a parameter), no file, no
//! network. Fetching Google's status list (from [`GOOGLE_STATUS_URL`] or a
//! file) and caching it is the caller's job; pass the parsed list.
//!
//! Policy values come from the hardware-enforced AuthorizationList (the
//! secure hardware vouches for them); only with `allow_software` may they
//! come from the software-enforced list when absent there.

mod der;
mod key_description;
mod revocation;

pub use key_description::{
    AttestationApplicationId, AuthorizationList, KEY_DESCRIPTION_OID, KNOWN_TAGS, KeyDescription,
    KeyDescriptionError, KeyOrigin, Leniency, ListKind, PackageInfo, PatchLevel, Quirk,
    RootOfTrust, SecurityLevel, VerifiedBootState,
};
pub use revocation::{
    GOOGLE_STATUS_URL, RevocationEntry, RevocationList, RevocationListError, RevocationStatus,
    serial_hex,
};

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::x509::{self, ChainError, ChainOptions, KeyType, TrustAnchor};

/// The provisioning-info extension of Remote Key Provisioning attestation
/// certificates.
pub const PROVISIONING_INFO_OID: &str = "1.3.6.1.4.1.11129.2.1.30";

/// SHA-256 of the SubjectPublicKeyInfo of the two AOSP software attestation
/// roots (EC, RSA). Their private keys are published in AOSP, so a chain
/// ending in them proves nothing; they are recognised only to name such
/// chains ([`Reason::SoftwareRoot`]), never trusted by default.
pub const AOSP_SOFTWARE_ROOT_SPKI_SHA256: [&str; 2] = [
    "d5100c7942ef2e8310dc30ef82729680cf48d690735c3f68179a33c7c370f286",
    "f2c4746f545946c100e72297f8f946344d7052f03a2f694221f9c893b0e6f711",
];

/// The chain leniency Google's Key Attestation verifier has: it checks
/// signatures, name chaining and validity only (its `BasicChecker`), so
///
/// - issuing certificates need neither basic constraints `cA` nor
///   `keyCertSign` (the real Sony Xperia 10 III intermediate has neither);
/// - unknown critical extensions are not refused;
/// - the leaf's validity is not checked (the device sets it; clocks skew);
/// - explicit NULL parameters in ECDSA signature algorithms are accepted
///   (Java does);
/// - RSA issuer keys of 1024 bits verify (AOSP software chains only; those
///   are untrusted unless a caller trusts them explicitly).
///
/// Path-length constraints, when present, are still enforced.
#[must_use]
pub fn google_chain_options() -> ChainOptions {
    ChainOptions::strict()
        .allow_ca_without_key_cert_sign(true)
        .allow_ca_without_basic_constraints(true)
        .allow_unknown_critical_extensions(true)
        .skip_leaf_validity(true)
        .allow_ecdsa_null_parameters(true)
        .allow_legacy_rsa_1024(true)
}

/// What to expect of a Key Attestation chain.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeyAttestationParams<'a> {
    /// The challenge the app passed to `setAttestationChallenge` (exact
    /// bytes; compared in constant time).
    pub challenge: &'a [u8],
    /// The app's package name: one of the attested packages must be it.
    /// `None`: not checked.
    pub package: Option<&'a str>,
    /// SHA-256 of the app's signing certificate: one attested digest must be
    /// it. `None`: not checked.
    pub signing_digest: Option<&'a [u8]>,
    /// The instant of verification, Unix seconds.
    pub now: i64,
    /// Trust roots (default: [`crate::roots::google_hardware_attestation`]).
    pub roots: &'a [TrustAnchor],
    /// Google's status list, parsed; `None`: revocation is not checked.
    pub revocations: Option<&'a RevocationList>,
    /// Accept software attestation (security level Software, or differing
    /// levels, or an AOSP software root when the caller trusts it).
    pub allow_software: bool,
    /// Accept an unlocked bootloader and a boot state other than Verified
    /// (and a missing RootOfTrust).
    pub allow_unlocked: bool,
    /// Oldest acceptable `osPatchLevel` as `YYYYMM`; `None`: not checked.
    pub min_os_patch_level: Option<u32>,
    /// KeyDescription encodings accepted (default: what Google accepts).
    pub leniency: Leniency,
}

impl<'a> KeyAttestationParams<'a> {
    /// The strict policy: hardware, verified boot, locked, the built-in
    /// Google roots, no package or digest check, no status list.
    #[must_use]
    pub fn new(challenge: &'a [u8], now: i64) -> Self {
        Self {
            challenge,
            package: None,
            signing_digest: None,
            now,
            roots: crate::roots::google_hardware_attestation(),
            revocations: None,
            allow_software: false,
            allow_unlocked: false,
            min_os_patch_level: None,
            leniency: Leniency::google(),
        }
    }

    /// Expects this package.
    #[must_use]
    pub fn package(mut self, package: &'a str) -> Self {
        self.package = Some(package);
        self
    }

    /// Expects this signing-certificate SHA-256.
    #[must_use]
    pub fn signing_digest(mut self, digest: &'a [u8]) -> Self {
        self.signing_digest = Some(digest);
        self
    }

    /// Trusts these roots instead of the built-in ones.
    #[must_use]
    pub fn roots(mut self, roots: &'a [TrustAnchor]) -> Self {
        self.roots = roots;
        self
    }

    /// Refuses certificates on this status list.
    #[must_use]
    pub fn revocations(mut self, list: &'a RevocationList) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Sets [`Self::allow_software`].
    #[must_use]
    pub fn allow_software(mut self, yes: bool) -> Self {
        self.allow_software = yes;
        self
    }

    /// Sets [`Self::allow_unlocked`].
    #[must_use]
    pub fn allow_unlocked(mut self, yes: bool) -> Self {
        self.allow_unlocked = yes;
        self
    }

    /// Sets [`Self::min_os_patch_level`] (`YYYYMM`).
    #[must_use]
    pub fn min_os_patch_level(mut self, yyyymm: u32) -> Self {
        self.min_os_patch_level = Some(yyyymm);
        self
    }

    /// Sets [`Self::leniency`].
    #[must_use]
    pub fn leniency(mut self, leniency: Leniency) -> Self {
        self.leniency = leniency;
        self
    }
}

/// One failed check. [`Self::code`] gives a stable kebab-case name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The certificate chain failed (signature, names, trust, validity).
    #[error("certificate chain: {0}")]
    Chain(ChainError),
    /// Not 3 to 5 certificates (root included), the layouts Google accepts.
    #[error("the chain holds {0} certificates (3 to 5, root included)")]
    ChainLength(usize),
    /// A layout Google's verifier refuses.
    #[error("chain layout: {0}")]
    ChainLayout(&'static str),
    /// The leaf has no KeyDescription extension.
    #[error("the leaf has no KeyDescription extension (1.3.6.1.4.1.11129.2.1.17)")]
    KeyDescriptionMissing,
    /// A certificate other than the leaf carries a KeyDescription (a chain
    /// extended with an attested key, or an attest-key chain).
    #[error("certificate {0} above the leaf carries a KeyDescription")]
    KeyDescriptionOutsideLeaf(usize),
    /// The KeyDescription does not parse.
    #[error("KeyDescription: {0}")]
    KeyDescription(KeyDescriptionError),
    /// The chain ends in an AOSP software attestation root.
    #[error("the chain ends in an AOSP software attestation root (not hardware)")]
    SoftwareRoot,
    /// A certificate's serial is on the status list.
    #[error("certificate {index} (serial {serial}) is {} on the status list", .status.as_str())]
    Revoked {
        /// Position in the chain (leaf 0).
        index: usize,
        /// The serial, as the list names it.
        serial: String,
        /// The listed status.
        status: RevocationStatus,
    },
    /// `attestationChallenge` is not the expected challenge.
    #[error("the attestation challenge is not the expected one")]
    ChallengeMismatch,
    /// No attestationApplicationId, but a package or digest is expected.
    #[error("no attestationApplicationId to check the package and signing digest against")]
    ApplicationIdMissing,
    /// None of the attested packages is the expected one.
    #[error("attested packages {found:?} do not include the expected package")]
    PackageMismatch {
        /// The attested package names.
        found: Vec<String>,
    },
    /// None of the attested signing digests is the expected one.
    #[error("no attested signing-certificate digest is the expected one")]
    SigningDigestMismatch,
    /// A security level is Software.
    #[error("software attestation (attestation {attestation}, key {keymint})")]
    SoftwareSecurityLevel {
        /// `attestationSecurityLevel`.
        attestation: SecurityLevel,
        /// `keyMintSecurityLevel`.
        keymint: SecurityLevel,
    },
    /// The attestation and key security levels differ.
    #[error("security levels differ (attestation {attestation}, key {keymint})")]
    SecurityLevelMismatch {
        /// `attestationSecurityLevel`.
        attestation: SecurityLevel,
        /// `keyMintSecurityLevel`.
        keymint: SecurityLevel,
    },
    /// The key was not generated in the device (imported, derived) or its
    /// origin is not attested.
    #[error("key origin {} is not generated", .0.map_or("absent", KeyOrigin::as_str))]
    KeyOrigin(Option<KeyOrigin>),
    /// No hardware-enforced RootOfTrust.
    #[error("no hardware-enforced RootOfTrust")]
    RootOfTrustMissing,
    /// `verifiedBootState` is not Verified.
    #[error("verified boot state is {0}, not verified")]
    BootNotVerified(VerifiedBootState),
    /// `deviceLocked` is false.
    #[error("the bootloader is unlocked")]
    BootloaderUnlocked,
    /// A minimum patch level is required and `osPatchLevel` is absent or
    /// invalid.
    #[error("no valid hardware-enforced osPatchLevel")]
    PatchLevelMissing,
    /// `osPatchLevel` is older than the minimum.
    #[error("osPatchLevel {found} is older than {minimum}")]
    PatchLevelTooOld {
        /// The attested `YYYYMM`.
        found: u32,
        /// The minimum `YYYYMM`.
        minimum: u32,
    },
}

impl Reason {
    /// A stable kebab-case name for JSON `reasons`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Chain(ChainError::Expired { .. }) => "certificate-expired",
            Self::Chain(ChainError::NotYetValid { .. }) => "certificate-not-yet-valid",
            Self::Chain(ChainError::Untrusted) => "certificate-untrusted",
            Self::Chain(ChainError::BadSignature { .. }) => "certificate-signature-invalid",
            Self::Chain(_) => "certificate-invalid",
            Self::ChainLength(_) => "chain-length",
            Self::ChainLayout(_) => "chain-layout",
            Self::KeyDescriptionMissing => "key-description-missing",
            Self::KeyDescriptionOutsideLeaf(_) => "key-description-outside-leaf",
            Self::KeyDescription(e) => e.code(),
            Self::SoftwareRoot => "software-root",
            Self::Revoked {
                status: RevocationStatus::Suspended,
                ..
            } => "certificate-suspended",
            Self::Revoked { .. } => "certificate-revoked",
            Self::ChallengeMismatch => "challenge-mismatch",
            Self::ApplicationIdMissing => "application-id-missing",
            Self::PackageMismatch { .. } => "package-mismatch",
            Self::SigningDigestMismatch => "signing-digest-mismatch",
            Self::SoftwareSecurityLevel { .. } => "security-level-software",
            Self::SecurityLevelMismatch { .. } => "security-level-mismatch",
            Self::KeyOrigin(_) => "key-origin-not-generated",
            Self::RootOfTrustMissing => "root-of-trust-missing",
            Self::BootNotVerified(_) => "boot-not-verified",
            Self::BootloaderUnlocked => "bootloader-unlocked",
            Self::PatchLevelMissing => "patch-level-missing",
            Self::PatchLevelTooOld { .. } => "patch-level-too-old",
        }
    }
}

/// A verified attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyAttestation {
    /// The leaf's KeyDescription.
    pub key_description: KeyDescription,
    /// The attested key: the leaf's DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    /// The attested key's subjectPublicKey bits (SEC1 point for EC).
    pub public_key: Vec<u8>,
    /// The attested key's type.
    pub key_type: KeyType,
    /// The trust anchor the chain ends in.
    pub anchor: String,
    /// The lower of the two security levels (as Google's verifier reports).
    pub security_level: SecurityLevel,
    /// Hardware-backed: both levels TEE or StrongBox and equal, and not an
    /// AOSP software root (`false` only when `allow_software` let it pass).
    pub hardware_backed: bool,
    /// The certificates' serials (leaf first), as the status list names
    /// them.
    pub serials: Vec<String>,
}

/// A refused chain: every failed check, and what could be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
#[non_exhaustive]
pub struct Rejected {
    /// The failed checks (never empty).
    pub reasons: Vec<Reason>,
    /// The leaf's KeyDescription, when it parsed (not trustworthy: the
    /// chain may have failed).
    pub key_description: Option<Box<KeyDescription>>,
    /// The certificates' serials (leaf first), when they parsed.
    pub serials: Vec<String>,
}

impl Rejected {
    fn one(reason: Reason) -> Self {
        Self {
            reasons: vec![reason],
            key_description: None,
            serials: Vec::new(),
        }
    }
}

/// Verifies a Key Attestation chain (DER certificates, leaf first, root
/// last) against `params`.
///
/// # Errors
/// [`Rejected`] with every failed check.
pub fn verify<C: AsRef<[u8]>>(
    chain: &[C],
    params: &KeyAttestationParams<'_>,
) -> Result<KeyAttestation, Rejected> {
    if chain.is_empty() {
        return Err(Rejected::one(Reason::Chain(ChainError::Empty)));
    }
    if chain.len() > x509::MAX_CHAIN_LEN {
        return Err(Rejected::one(Reason::Chain(ChainError::TooLong(
            chain.len(),
        ))));
    }
    let mut certs = Vec::with_capacity(chain.len());
    for (index, der) in chain.iter().enumerate() {
        match X509Certificate::from_der(der.as_ref()) {
            Ok(([], cert)) => certs.push(cert),
            _ => {
                return Err(Rejected::one(Reason::Chain(ChainError::Malformed {
                    index,
                })));
            }
        }
    }
    let serials: Vec<String> = certs
        .iter()
        .map(|c| serial_hex(c.tbs_certificate.raw_serial()))
        .collect();
    let mut reasons = Vec::new();

    // 1. The chain.
    let verified =
        match x509::verify_chain(chain, params.roots, params.now, &google_chain_options()) {
            Ok(v) => Some(v),
            Err(e) => {
                reasons.push(Reason::Chain(e));
                None
            }
        };

    // 2. Layout.
    layout(&certs, &mut reasons);
    let root_is_software = certs.last().is_some_and(|root| {
        let digest = x509::hex(&x509::sha256(root.tbs_certificate.subject_pki.raw));
        AOSP_SOFTWARE_ROOT_SPKI_SHA256.contains(&digest.as_str())
    });
    if root_is_software && !params.allow_software {
        reasons.push(Reason::SoftwareRoot);
    }

    // 3. Status list.
    if let Some(list) = params.revocations {
        for (index, cert) in certs.iter().enumerate() {
            if let Some(entry) = list.get_serial(cert.tbs_certificate.raw_serial()) {
                reasons.push(Reason::Revoked {
                    index,
                    serial: serials.get(index).cloned().unwrap_or_default(),
                    status: entry.status.clone(),
                });
            }
        }
    }

    // 4. The KeyDescription and the policy.
    let leaf_ext = certs.first().and_then(|leaf| {
        leaf.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == KEY_DESCRIPTION_OID)
    });
    let key_description = match leaf_ext {
        None => {
            reasons.push(Reason::KeyDescriptionMissing);
            None
        }
        Some(ext) => match KeyDescription::parse(ext.value, &params.leniency) {
            Ok(kd) => Some(kd),
            Err(e) => {
                reasons.push(Reason::KeyDescription(e));
                None
            }
        },
    };
    if let Some(kd) = &key_description {
        policy(kd, params, &mut reasons);
    }

    match (verified, key_description) {
        (Some(chain), Some(kd)) if reasons.is_empty() => {
            let levels_hardware = kd.attestation_security_level.is_hardware()
                && kd.attestation_security_level == kd.keymint_security_level;
            Ok(KeyAttestation {
                security_level: kd.attestation_security_level.min(kd.keymint_security_level),
                hardware_backed: levels_hardware && !root_is_software,
                key_description: kd,
                public_key_spki: chain.leaf_spki,
                public_key: chain.leaf_public_key,
                key_type: chain.leaf_key_type,
                anchor: chain.anchor,
                serials,
            })
        }
        (_, kd) => Err(Rejected {
            reasons,
            key_description: kd.map(Box::new),
            serials,
        }),
    }
}

/// The layouts Google's `KeyAttestationCertPathValidator` accepts (see the
/// module documentation).
fn layout(certs: &[X509Certificate<'_>], reasons: &mut Vec<Reason>) {
    let has = |c: &X509Certificate<'_>, oid: &str| {
        c.extensions().iter().any(|e| e.oid.to_id_string() == oid)
    };
    for (index, cert) in certs.iter().enumerate().skip(1) {
        if has(cert, KEY_DESCRIPTION_OID) {
            reasons.push(Reason::KeyDescriptionOutsideLeaf(index));
        }
    }
    match certs.len() {
        3 => {
            // Google reads a factory intermediate (serialNumber and title
            // TEE/StrongBox) directly under the root as the start of a
            // 4-certificate chain, which then has no room for the leaf.
            if certs.get(1).is_some_and(looks_factory) {
                reasons.push(Reason::ChainLayout(
                    "a factory intermediate directly under the root",
                ));
            }
        }
        4 => {}
        5 => {
            if !certs.get(1).is_some_and(|c| has(c, PROVISIONING_INFO_OID)) {
                reasons.push(Reason::ChainLayout(
                    "5 certificates without the provisioning-info extension (not an RKP chain)",
                ));
            }
        }
        n => reasons.push(Reason::ChainLength(n)),
    }
}

/// A subject with a serialNumber and the title `TEE` or `StrongBox`.
fn looks_factory(cert: &X509Certificate<'_>) -> bool {
    let subject = &cert.tbs_certificate.subject;
    let serial = subject
        .iter_attributes()
        .any(|a| a.attr_type().to_id_string() == "2.5.4.5");
    let title = subject.iter_attributes().any(|a| {
        a.attr_type().to_id_string() == "2.5.4.12" && matches!(a.as_str(), Ok("TEE" | "StrongBox"))
    });
    serial && title
}

fn policy(kd: &KeyDescription, params: &KeyAttestationParams<'_>, reasons: &mut Vec<Reason>) {
    if !ct_eq(&kd.attestation_challenge, params.challenge) {
        reasons.push(Reason::ChallengeMismatch);
    }
    if params.package.is_some() || params.signing_digest.is_some() {
        match kd.attestation_application_id() {
            None => reasons.push(Reason::ApplicationIdMissing),
            Some(id) => {
                if let Some(package) = params.package
                    && !id.packages.iter().any(|p| p.name == package)
                {
                    reasons.push(Reason::PackageMismatch {
                        found: id.packages.iter().map(|p| p.name.clone()).collect(),
                    });
                }
                if let Some(digest) = params.signing_digest
                    && !id.signature_digests.iter().any(|d| ct_eq(d, digest))
                {
                    reasons.push(Reason::SigningDigestMismatch);
                }
            }
        }
    }
    let (attestation, keymint) = (kd.attestation_security_level, kd.keymint_security_level);
    if !params.allow_software {
        if !attestation.is_hardware() || !keymint.is_hardware() {
            reasons.push(Reason::SoftwareSecurityLevel {
                attestation,
                keymint,
            });
        } else if attestation != keymint {
            reasons.push(Reason::SecurityLevelMismatch {
                attestation,
                keymint,
            });
        }
    }
    // Values the secure hardware vouches for; with allow_software, the
    // software-enforced ones stand in for absent ones.
    let hw = &kd.hardware_enforced;
    let sw = &kd.software_enforced;
    let fallback = params.allow_software;
    let origin = hw.origin.or(sw.origin.filter(|_| fallback));
    if origin != Some(KeyOrigin::Generated) {
        reasons.push(Reason::KeyOrigin(origin));
    }
    if !params.allow_unlocked {
        let rot = hw
            .root_of_trust
            .as_ref()
            .or(sw.root_of_trust.as_ref().filter(|_| fallback));
        match rot {
            None => reasons.push(Reason::RootOfTrustMissing),
            Some(rot) => {
                if rot.verified_boot_state != VerifiedBootState::Verified {
                    reasons.push(Reason::BootNotVerified(rot.verified_boot_state));
                }
                if !rot.device_locked {
                    reasons.push(Reason::BootloaderUnlocked);
                }
            }
        }
    }
    if let Some(minimum) = params.min_os_patch_level {
        let level = hw
            .os_patch_level
            .or(sw.os_patch_level.filter(|_| fallback))
            .and_then(|p| p.year_month());
        match level {
            None => reasons.push(Reason::PatchLevelMissing),
            Some(found) if found < minimum => {
                reasons.push(Reason::PatchLevelTooOld { found, minimum });
            }
            Some(_) => {}
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

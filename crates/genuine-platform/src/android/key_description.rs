//! The KeyDescription extension (OID 1.3.6.1.4.1.11129.2.1.17), parsed once
//! into typed values.
//!
//! Schema: <https://source.android.com/docs/security/features/keystore/attestation#schema>.
//! The parser follows what Google's verifier (android/keyattestation,
//! `Extension.kt`) accepts:
//!
//! - `KeyDescription` is a SEQUENCE of exactly eight elements;
//! - an AuthorizationList holds `[tag] EXPLICIT` elements whose tag numbers
//!   are known KeyMint tags ([`KNOWN_TAGS`], Google's list); an unknown tag
//!   refuses the extension (Google: `UNKNOWN_TAG_NUMBER`) unless
//!   [`Leniency::unknown_tags`] is set;
//! - tags out of ascending order are accepted and reported
//!   ([`Quirk::TagsNotAscending`]; Google logs them), a repeated tag is
//!   refused (Google silently keeps the last one: ambiguous, so refused);
//! - SET OF elements in any order are accepted and reported
//!   ([`Quirk::SetNotSorted`]; BouncyCastle does not check; the real Nokia X10
//!   chain has an unsorted `digest` set);
//! - security levels, verified boot states and origins outside their
//!   enumerations refuse the extension (as Google's does);
//! - a patch level that is not `YYYYMM` or `YYYYMMDD` is kept as its raw
//!   value and treated as absent by policies (Google logs and drops it);
//! - strings (package names, attestation ids) are UTF-8 in OCTET STRINGs;
//! - every other rule is DER (see `der.rs`), and nothing may follow an
//!   element.

use super::der::{self, Class, DerError, Tlv};

/// The KeyDescription extension's OID.
pub const KEY_DESCRIPTION_OID: &str = "1.3.6.1.4.1.11129.2.1.17";

/// The KeyMint tags Google's verifier knows (`KeyMintTag` in
/// android/keyattestation); any other tag refuses an AuthorizationList
/// unless [`Leniency::unknown_tags`] is set. Google leaves out on purpose
/// 7 (callerNonce), 8 (minMacLength), 303 (rollbackResistance), 305
/// (earlyBootOnly), 502 (userSecureId) and 720 (deviceUniqueAttestation).
pub const KNOWN_TAGS: [u32; 40] = [
    1, 2, 3, 4, 5, 6, 10, 11, 200, 203, 400, 401, 402, 405, 503, 504, 505, 506, 507, 508, 509, 701,
    702, 703, 704, 705, 706, 709, 710, 711, 712, 713, 714, 715, 716, 717, 718, 719, 723, 724,
];

/// Departures from DER that real devices emit and Google's verifier
/// accepts. [`Leniency::google`] (the default) accepts exactly the ones
/// Google accepts; [`Leniency::strict`] none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leniency {
    /// Accept AuthorizationList tags out of ascending order (X.680 §8.6).
    pub unordered_tags: bool,
    /// Accept SET OF elements that are not in DER (ascending encoding) order.
    pub unsorted_sets: bool,
    /// Accept a BOOLEAN byte other than 0x00/0xFF as TRUE (BER; BouncyCastle
    /// reads any non-zero byte as TRUE).
    pub nonzero_boolean_true: bool,
    /// Accept (and skip) AuthorizationList tags outside [`KNOWN_TAGS`].
    /// Google refuses them; off by default.
    pub unknown_tags: bool,
}

impl Default for Leniency {
    fn default() -> Self {
        Self::google()
    }
}

impl Leniency {
    /// What Google's verifier accepts: unordered tags, unsorted sets,
    /// non-zero BOOLEAN TRUE; unknown tags refused.
    #[must_use]
    pub fn google() -> Self {
        Self {
            unordered_tags: true,
            unsorted_sets: true,
            nonzero_boolean_true: true,
            unknown_tags: false,
        }
    }

    /// DER only: every quirk refused.
    #[must_use]
    pub fn strict() -> Self {
        Self {
            unordered_tags: false,
            unsorted_sets: false,
            nonzero_boolean_true: false,
            unknown_tags: false,
        }
    }

    /// Sets [`Self::unknown_tags`].
    #[must_use]
    pub fn unknown_tags(mut self, yes: bool) -> Self {
        self.unknown_tags = yes;
        self
    }
}

/// Which AuthorizationList.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `softwareEnforced` (enforced by Android, not the secure hardware).
    SoftwareEnforced,
    /// `hardwareEnforced` (`teeEnforced`: enforced by the TEE or StrongBox).
    HardwareEnforced,
}

impl ListKind {
    /// `softwareEnforced` or `hardwareEnforced`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SoftwareEnforced => "softwareEnforced",
            Self::HardwareEnforced => "hardwareEnforced",
        }
    }
}

/// A departure from DER that was accepted (see [`Leniency`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Quirk {
    /// An AuthorizationList's tags are not in ascending order.
    TagsNotAscending(ListKind),
    /// A SET OF is not in DER order (under this tag; 709 for the
    /// attestationApplicationId's sets).
    SetNotSorted {
        /// The list.
        list: ListKind,
        /// The tag number.
        tag: u32,
    },
    /// A BOOLEAN TRUE encoded as a byte other than 0xFF.
    NonCanonicalBoolean,
    /// A tag outside [`KNOWN_TAGS`] was skipped.
    UnknownTag {
        /// The list.
        list: ListKind,
        /// The tag number.
        tag: u32,
    },
}

impl Quirk {
    /// A stable kebab-case name.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TagsNotAscending(_) => "tags-not-ascending",
            Self::SetNotSorted { .. } => "set-not-sorted",
            Self::NonCanonicalBoolean => "non-canonical-boolean",
            Self::UnknownTag { .. } => "unknown-tag",
        }
    }
}

/// Why a KeyDescription was refused. `at` names the element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDescriptionError {
    /// Not DER (truncated, indefinite or non-minimal length, bad identifier).
    #[error("{at}: not DER")]
    Der {
        /// The element.
        at: &'static str,
    },
    /// An element of another type than the schema's.
    #[error("{at}: wrong ASN.1 type")]
    WrongType {
        /// The element.
        at: &'static str,
    },
    /// Bytes after an element that must end its container.
    #[error("{at}: trailing bytes")]
    Trailing {
        /// The element.
        at: &'static str,
    },
    /// A SEQUENCE with another number of elements than the schema's.
    #[error("{at}: {found} elements")]
    ElementCount {
        /// The element.
        at: &'static str,
        /// How many it has.
        found: usize,
    },
    /// An INTEGER or ENUMERATED outside `i64`.
    #[error("{at}: integer out of range")]
    IntegerRange {
        /// The element.
        at: &'static str,
    },
    /// A BOOLEAN byte other than 0x00 or 0xFF (strict leniency).
    #[error("{at}: BOOLEAN is neither 0x00 nor 0xFF")]
    Boolean {
        /// The element.
        at: &'static str,
    },
    /// A string that is not UTF-8.
    #[error("{at}: not UTF-8")]
    NotUtf8 {
        /// The element.
        at: &'static str,
    },
    /// A SecurityLevel outside {Software, TrustedEnvironment, StrongBox}.
    #[error("unknown security level {0}")]
    UnknownSecurityLevel(i64),
    /// A VerifiedBootState outside {Verified, SelfSigned, Unverified, Failed}.
    #[error("unknown verified boot state {0}")]
    UnknownBootState(i64),
    /// An origin outside KeyMint's KeyOrigin.
    #[error("unknown key origin {0}")]
    UnknownOrigin(i64),
    /// An AuthorizationList element that is not `[n] EXPLICIT` (context
    /// class, constructed).
    #[error("{0}: an element is not a context-specific [tag] EXPLICIT")]
    NotTagged(&'static str),
    /// A tag outside [`KNOWN_TAGS`].
    #[error("{list}: unknown tag {tag}", list = .list.as_str())]
    UnknownTag {
        /// The list.
        list: ListKind,
        /// The tag number.
        tag: u32,
    },
    /// A tag that appears twice in one list.
    #[error("{list}: tag {tag} repeated", list = .list.as_str())]
    DuplicateTag {
        /// The list.
        list: ListKind,
        /// The tag number.
        tag: u32,
    },
    /// Tags out of ascending order (strict leniency).
    #[error("{}: tags not in ascending order", .0.as_str())]
    TagsNotAscending(ListKind),
    /// A SET OF out of DER order (strict leniency).
    #[error("{list}: SET OF under tag {tag} not in DER order", list = .list.as_str())]
    SetNotSorted {
        /// The list.
        list: ListKind,
        /// The tag number.
        tag: u32,
    },
}

impl KeyDescriptionError {
    /// A stable kebab-case name.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTag { .. } => "key-description-unknown-tag",
            _ => "key-description-malformed",
        }
    }
}

/// `attestationSecurityLevel` / `keyMintSecurityLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityLevel {
    /// 0: Android's software Keystore.
    Software,
    /// 1: a Trusted Execution Environment.
    TrustedEnvironment,
    /// 2: a StrongBox secure element.
    StrongBox,
}

impl SecurityLevel {
    fn from_value(v: i64) -> Result<Self, KeyDescriptionError> {
        match v {
            0 => Ok(Self::Software),
            1 => Ok(Self::TrustedEnvironment),
            2 => Ok(Self::StrongBox),
            other => Err(KeyDescriptionError::UnknownSecurityLevel(other)),
        }
    }

    /// `software`, `tee` or `strongbox`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Software => "software",
            Self::TrustedEnvironment => "tee",
            Self::StrongBox => "strongbox",
        }
    }

    /// TEE or StrongBox.
    #[must_use]
    pub fn is_hardware(self) -> bool {
        !matches!(self, Self::Software)
    }
}

impl std::fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `RootOfTrust.verifiedBootState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifiedBootState {
    /// 0: the full chain of trust verified with a key in the device (locked,
    /// stock image).
    Verified,
    /// 1: verified with a user-installed key (custom OS, locked).
    SelfSigned,
    /// 2: not verified (bootloader unlocked).
    Unverified,
    /// 3: verification failed.
    Failed,
}

impl VerifiedBootState {
    fn from_value(v: i64) -> Result<Self, KeyDescriptionError> {
        match v {
            0 => Ok(Self::Verified),
            1 => Ok(Self::SelfSigned),
            2 => Ok(Self::Unverified),
            3 => Ok(Self::Failed),
            other => Err(KeyDescriptionError::UnknownBootState(other)),
        }
    }

    /// `verified`, `self-signed`, `unverified` or `failed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::SelfSigned => "self-signed",
            Self::Unverified => "unverified",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for VerifiedBootState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `origin` (KeyMint `KeyOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOrigin {
    /// 0: generated in the secure hardware (or Keystore).
    Generated,
    /// 1: derived.
    Derived,
    /// 2: imported from outside.
    Imported,
    /// 3: reserved.
    Reserved,
    /// 4: securely imported (wrapped key).
    SecurelyImported,
}

impl KeyOrigin {
    fn from_value(v: i64) -> Result<Self, KeyDescriptionError> {
        match v {
            0 => Ok(Self::Generated),
            1 => Ok(Self::Derived),
            2 => Ok(Self::Imported),
            3 => Ok(Self::Reserved),
            4 => Ok(Self::SecurelyImported),
            other => Err(KeyDescriptionError::UnknownOrigin(other)),
        }
    }

    /// `generated`, `derived`, `imported`, `reserved` or `securely-imported`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::Derived => "derived",
            Self::Imported => "imported",
            Self::Reserved => "reserved",
            Self::SecurelyImported => "securely-imported",
        }
    }
}

/// `RootOfTrust`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOfTrust {
    /// `verifiedBootKey`: digest of the key that verified the boot image
    /// (zeros on unlocked devices).
    pub verified_boot_key: Vec<u8>,
    /// `deviceLocked`: the bootloader is locked.
    pub device_locked: bool,
    /// `verifiedBootState`.
    pub verified_boot_state: VerifiedBootState,
    /// `verifiedBootHash` (attestation version 3 and later).
    pub verified_boot_hash: Option<Vec<u8>>,
}

/// One `AttestationPackageInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// `packageName`.
    pub name: String,
    /// `version` (the version code).
    pub version: i64,
}

/// `attestationApplicationId`: the app (packages sharing the uid) and the
/// SHA-256 digests of its signing certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationApplicationId {
    /// `package_infos`.
    pub packages: Vec<PackageInfo>,
    /// `signature_digests`: SHA-256 of each signing certificate.
    pub signature_digests: Vec<Vec<u8>>,
}

/// A patch level INTEGER: `YYYYMM` (osPatchLevel) or `YYYYMMDD` (vendor and
/// boot patch levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchLevel {
    /// The value as encoded.
    pub raw: i64,
    /// `(year, month, day)` when `raw` is a valid `YYYYMM` (day `None`) or
    /// `YYYYMMDD`; `None` otherwise (treated as absent by policies, as
    /// Google's verifier does).
    pub date: Option<(u16, u8, Option<u8>)>,
}

impl PatchLevel {
    /// Interprets a raw patch level.
    #[must_use]
    pub fn from_raw(raw: i64) -> Self {
        let date = match raw {
            100_000..=999_999 => ym(raw).map(|(y, m)| (y, m, None)),
            10_000_000..=99_999_999 => {
                // The last two digits are a day or a version (Google does
                // not check them further).
                let day = u8::try_from(raw % 100).ok();
                ym(raw / 100).and_then(|(y, m)| day.map(|d| (y, m, Some(d))))
            }
            _ => None,
        };
        Self { raw, date }
    }

    /// `YYYYMM`, when valid.
    #[must_use]
    pub fn year_month(&self) -> Option<u32> {
        self.date.map(|(y, m, _)| u32::from(y) * 100 + u32::from(m))
    }
}

fn ym(v: i64) -> Option<(u16, u8)> {
    let year = u16::try_from(v / 100).ok()?;
    let month = u8::try_from(v % 100).ok()?;
    (1..=12).contains(&month).then_some((year, month))
}

/// One AuthorizationList, every tag Google's verifier knows decoded. Flags
/// (`[n] EXPLICIT NULL`) are `true` when present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AuthorizationList {
    /// The tag numbers in encoded order.
    pub tags: Vec<u32>,
    /// Tag 1, `purpose`.
    pub purposes: Option<Vec<i64>>,
    /// Tag 2, `algorithm`.
    pub algorithm: Option<i64>,
    /// Tag 3, `keySize`.
    pub key_size: Option<i64>,
    /// Tag 4, `blockMode`.
    pub block_modes: Option<Vec<i64>>,
    /// Tag 5, `digest`.
    pub digests: Option<Vec<i64>>,
    /// Tag 6, `padding`.
    pub paddings: Option<Vec<i64>>,
    /// Tag 10, `ecCurve`.
    pub ec_curve: Option<i64>,
    /// Tag 11, `mlDsaVariant`.
    pub ml_dsa_variant: Option<i64>,
    /// Tag 200, `rsaPublicExponent`.
    pub rsa_public_exponent: Option<i64>,
    /// Tag 203, `rsaOaepMgfDigest`.
    pub rsa_oaep_mgf_digests: Option<Vec<i64>>,
    /// Tag 400, `activeDateTime` (Unix ms).
    pub active_date_time: Option<i64>,
    /// Tag 401, `originationExpireDateTime` (Unix ms).
    pub origination_expire_date_time: Option<i64>,
    /// Tag 402, `usageExpireDateTime` (Unix ms).
    pub usage_expire_date_time: Option<i64>,
    /// Tag 405, `usageCountLimit`.
    pub usage_count_limit: Option<i64>,
    /// Tag 503, `noAuthRequired`.
    pub no_auth_required: bool,
    /// Tag 504, `userAuthType`.
    pub user_auth_type: Option<i64>,
    /// Tag 505, `authTimeout` (seconds).
    pub auth_timeout: Option<i64>,
    /// Tag 506, `allowWhileOnBody`.
    pub allow_while_on_body: bool,
    /// Tag 507, `trustedUserPresenceRequired`.
    pub trusted_user_presence_required: bool,
    /// Tag 508, `trustedConfirmationRequired`.
    pub trusted_confirmation_required: bool,
    /// Tag 509, `unlockedDeviceRequired`.
    pub unlocked_device_required: bool,
    /// Tag 701, `creationDateTime` (Unix ms).
    pub creation_date_time: Option<i64>,
    /// Tag 702, `origin`.
    pub origin: Option<KeyOrigin>,
    /// Tag 703, `rollbackResistant`.
    pub rollback_resistant: bool,
    /// Tag 704, `rootOfTrust`.
    pub root_of_trust: Option<RootOfTrust>,
    /// Tag 705, `osVersion` (e.g. 140000 for Android 14).
    pub os_version: Option<i64>,
    /// Tag 706, `osPatchLevel` (`YYYYMM`).
    pub os_patch_level: Option<PatchLevel>,
    /// Tag 709, `attestationApplicationId`.
    pub attestation_application_id: Option<AttestationApplicationId>,
    /// Tag 710, `attestationIdBrand`.
    pub attestation_id_brand: Option<String>,
    /// Tag 711, `attestationIdDevice`.
    pub attestation_id_device: Option<String>,
    /// Tag 712, `attestationIdProduct`.
    pub attestation_id_product: Option<String>,
    /// Tag 713, `attestationIdSerial`.
    pub attestation_id_serial: Option<String>,
    /// Tag 714, `attestationIdImei`.
    pub attestation_id_imei: Option<String>,
    /// Tag 715, `attestationIdMeid`.
    pub attestation_id_meid: Option<String>,
    /// Tag 716, `attestationIdManufacturer`.
    pub attestation_id_manufacturer: Option<String>,
    /// Tag 717, `attestationIdModel`.
    pub attestation_id_model: Option<String>,
    /// Tag 718, `vendorPatchLevel` (`YYYYMMDD`).
    pub vendor_patch_level: Option<PatchLevel>,
    /// Tag 719, `bootPatchLevel` (`YYYYMMDD`).
    pub boot_patch_level: Option<PatchLevel>,
    /// Tag 723, `attestationIdSecondImei`.
    pub attestation_id_second_imei: Option<String>,
    /// Tag 724, `moduleHash`.
    pub module_hash: Option<Vec<u8>>,
}

/// A parsed KeyDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyDescription {
    /// `attestationVersion` (e.g. 3, 4, 100, 200, 300, 400).
    pub attestation_version: i64,
    /// `attestationSecurityLevel`: where the attestation was made.
    pub attestation_security_level: SecurityLevel,
    /// `keyMintVersion` (`keymasterVersion` before KeyMint).
    pub keymint_version: i64,
    /// `keyMintSecurityLevel`: where the key lives.
    pub keymint_security_level: SecurityLevel,
    /// `attestationChallenge`.
    pub attestation_challenge: Vec<u8>,
    /// `uniqueId`.
    pub unique_id: Vec<u8>,
    /// `softwareEnforced`.
    pub software_enforced: AuthorizationList,
    /// `hardwareEnforced`.
    pub hardware_enforced: AuthorizationList,
    /// The accepted departures from DER, in the order met.
    pub quirks: Vec<Quirk>,
}

impl KeyDescription {
    /// Parses the extension's value (the DER inside its OCTET STRING).
    ///
    /// # Errors
    /// [`KeyDescriptionError`] naming the first element that broke a rule.
    pub fn parse(der: &[u8], leniency: &Leniency) -> Result<Self, KeyDescriptionError> {
        let mut p = Parser {
            leniency: *leniency,
            quirks: Vec::new(),
        };
        let top = der::read_all(der).map_err(|e| err(e, "KeyDescription"))?;
        let items = top.sequence().map_err(|e| err(e, "KeyDescription"))?;
        let [v, asl, kv, ksl, challenge, unique, sw, hw] = items.as_slice() else {
            return Err(KeyDescriptionError::ElementCount {
                at: "KeyDescription",
                found: items.len(),
            });
        };
        let attestation_version = v.integer().map_err(|e| err(e, "attestationVersion"))?;
        let attestation_security_level = SecurityLevel::from_value(
            asl.enumerated()
                .map_err(|e| err(e, "attestationSecurityLevel"))?,
        )?;
        let keymint_version = kv.integer().map_err(|e| err(e, "keyMintVersion"))?;
        let keymint_security_level = SecurityLevel::from_value(
            ksl.enumerated()
                .map_err(|e| err(e, "keyMintSecurityLevel"))?,
        )?;
        let attestation_challenge = challenge
            .octets()
            .map_err(|e| err(e, "attestationChallenge"))?
            .to_vec();
        let unique_id = unique.octets().map_err(|e| err(e, "uniqueId"))?.to_vec();
        let software_enforced = p.list(sw, ListKind::SoftwareEnforced)?;
        let hardware_enforced = p.list(hw, ListKind::HardwareEnforced)?;
        Ok(Self {
            attestation_version,
            attestation_security_level,
            keymint_version,
            keymint_security_level,
            attestation_challenge,
            unique_id,
            software_enforced,
            hardware_enforced,
            quirks: p.quirks,
        })
    }

    /// The RootOfTrust: the hardware-enforced one, else the
    /// software-enforced one (software attestations).
    #[must_use]
    pub fn root_of_trust(&self) -> Option<&RootOfTrust> {
        self.hardware_enforced
            .root_of_trust
            .as_ref()
            .or(self.software_enforced.root_of_trust.as_ref())
    }

    /// The attestationApplicationId (Keystore puts it in
    /// softwareEnforced; else the hardware-enforced one).
    #[must_use]
    pub fn attestation_application_id(&self) -> Option<&AttestationApplicationId> {
        self.software_enforced
            .attestation_application_id
            .as_ref()
            .or(self.hardware_enforced.attestation_application_id.as_ref())
    }

    /// `osVersion`: hardware-enforced, else software-enforced.
    #[must_use]
    pub fn os_version(&self) -> Option<i64> {
        self.hardware_enforced
            .os_version
            .or(self.software_enforced.os_version)
    }

    /// `osPatchLevel`: hardware-enforced, else software-enforced.
    #[must_use]
    pub fn os_patch_level(&self) -> Option<PatchLevel> {
        self.hardware_enforced
            .os_patch_level
            .or(self.software_enforced.os_patch_level)
    }

    /// `vendorPatchLevel`: hardware-enforced, else software-enforced.
    #[must_use]
    pub fn vendor_patch_level(&self) -> Option<PatchLevel> {
        self.hardware_enforced
            .vendor_patch_level
            .or(self.software_enforced.vendor_patch_level)
    }

    /// `bootPatchLevel`: hardware-enforced, else software-enforced.
    #[must_use]
    pub fn boot_patch_level(&self) -> Option<PatchLevel> {
        self.hardware_enforced
            .boot_patch_level
            .or(self.software_enforced.boot_patch_level)
    }

    /// `origin`: hardware-enforced, else software-enforced.
    #[must_use]
    pub fn origin(&self) -> Option<KeyOrigin> {
        self.hardware_enforced
            .origin
            .or(self.software_enforced.origin)
    }
}

fn err(e: DerError, at: &'static str) -> KeyDescriptionError {
    match e {
        DerError::Malformed => KeyDescriptionError::Der { at },
        DerError::UnexpectedType => KeyDescriptionError::WrongType { at },
        DerError::IntegerRange => KeyDescriptionError::IntegerRange { at },
        DerError::Boolean => KeyDescriptionError::Boolean { at },
        DerError::Trailing => KeyDescriptionError::Trailing { at },
    }
}

/// The name of a known tag, for error messages.
fn tag_name(tag: u32) -> &'static str {
    match tag {
        1 => "purpose",
        2 => "algorithm",
        3 => "keySize",
        4 => "blockMode",
        5 => "digest",
        6 => "padding",
        10 => "ecCurve",
        11 => "mlDsaVariant",
        200 => "rsaPublicExponent",
        203 => "rsaOaepMgfDigest",
        400 => "activeDateTime",
        401 => "originationExpireDateTime",
        402 => "usageExpireDateTime",
        405 => "usageCountLimit",
        503 => "noAuthRequired",
        504 => "userAuthType",
        505 => "authTimeout",
        506 => "allowWhileOnBody",
        507 => "trustedUserPresenceRequired",
        508 => "trustedConfirmationRequired",
        509 => "unlockedDeviceRequired",
        701 => "creationDateTime",
        702 => "origin",
        703 => "rollbackResistant",
        704 => "rootOfTrust",
        705 => "osVersion",
        706 => "osPatchLevel",
        709 => "attestationApplicationId",
        710 => "attestationIdBrand",
        711 => "attestationIdDevice",
        712 => "attestationIdProduct",
        713 => "attestationIdSerial",
        714 => "attestationIdImei",
        715 => "attestationIdMeid",
        716 => "attestationIdManufacturer",
        717 => "attestationIdModel",
        718 => "vendorPatchLevel",
        719 => "bootPatchLevel",
        723 => "attestationIdSecondImei",
        724 => "moduleHash",
        _ => "AuthorizationList",
    }
}

struct Parser {
    leniency: Leniency,
    quirks: Vec<Quirk>,
}

impl Parser {
    fn list(
        &mut self,
        tlv: &Tlv<'_>,
        kind: ListKind,
    ) -> Result<AuthorizationList, KeyDescriptionError> {
        let at = kind.as_str();
        let items = tlv.sequence().map_err(|e| err(e, at))?;
        let mut out = AuthorizationList::default();
        for item in &items {
            if item.class != Class::Context || !item.constructed {
                return Err(KeyDescriptionError::NotTagged(at));
            }
            let tag = item.tag;
            if out.tags.contains(&tag) {
                return Err(KeyDescriptionError::DuplicateTag { list: kind, tag });
            }
            out.tags.push(tag);
            if !KNOWN_TAGS.contains(&tag) {
                if self.leniency.unknown_tags {
                    self.quirks.push(Quirk::UnknownTag { list: kind, tag });
                    continue;
                }
                return Err(KeyDescriptionError::UnknownTag { list: kind, tag });
            }
            let name = tag_name(tag);
            // `[tag] EXPLICIT`: exactly one element inside.
            let value = der::read_all(item.contents).map_err(|e| err(e, name))?;
            self.field(&mut out, kind, tag, name, &value)?;
        }
        if !out.tags.windows(2).all(|w| w[0] < w[1]) {
            if !self.leniency.unordered_tags {
                return Err(KeyDescriptionError::TagsNotAscending(kind));
            }
            self.quirks.push(Quirk::TagsNotAscending(kind));
        }
        Ok(out)
    }

    fn field(
        &mut self,
        out: &mut AuthorizationList,
        kind: ListKind,
        tag: u32,
        name: &'static str,
        v: &Tlv<'_>,
    ) -> Result<(), KeyDescriptionError> {
        let int = |v: &Tlv<'_>| v.integer().map_err(|e| err(e, name));
        let flag = |v: &Tlv<'_>| v.null().map(|()| true).map_err(|e| err(e, name));
        let string = |v: &Tlv<'_>| {
            let bytes = v.octets().map_err(|e| err(e, name))?;
            String::from_utf8(bytes.to_vec()).map_err(|_| KeyDescriptionError::NotUtf8 { at: name })
        };
        match tag {
            1 => out.purposes = Some(self.int_set(v, kind, tag, name)?),
            2 => out.algorithm = Some(int(v)?),
            3 => out.key_size = Some(int(v)?),
            4 => out.block_modes = Some(self.int_set(v, kind, tag, name)?),
            5 => out.digests = Some(self.int_set(v, kind, tag, name)?),
            6 => out.paddings = Some(self.int_set(v, kind, tag, name)?),
            10 => out.ec_curve = Some(int(v)?),
            11 => out.ml_dsa_variant = Some(int(v)?),
            200 => out.rsa_public_exponent = Some(int(v)?),
            203 => out.rsa_oaep_mgf_digests = Some(self.int_set(v, kind, tag, name)?),
            400 => out.active_date_time = Some(int(v)?),
            401 => out.origination_expire_date_time = Some(int(v)?),
            402 => out.usage_expire_date_time = Some(int(v)?),
            405 => out.usage_count_limit = Some(int(v)?),
            503 => out.no_auth_required = flag(v)?,
            504 => out.user_auth_type = Some(int(v)?),
            505 => out.auth_timeout = Some(int(v)?),
            506 => out.allow_while_on_body = flag(v)?,
            507 => out.trusted_user_presence_required = flag(v)?,
            508 => out.trusted_confirmation_required = flag(v)?,
            509 => out.unlocked_device_required = flag(v)?,
            701 => out.creation_date_time = Some(int(v)?),
            702 => out.origin = Some(KeyOrigin::from_value(int(v)?)?),
            703 => out.rollback_resistant = flag(v)?,
            704 => out.root_of_trust = Some(self.root_of_trust(v)?),
            705 => out.os_version = Some(int(v)?),
            706 => out.os_patch_level = Some(PatchLevel::from_raw(int(v)?)),
            709 => out.attestation_application_id = Some(self.application_id(v, kind)?),
            710 => out.attestation_id_brand = Some(string(v)?),
            711 => out.attestation_id_device = Some(string(v)?),
            712 => out.attestation_id_product = Some(string(v)?),
            713 => out.attestation_id_serial = Some(string(v)?),
            714 => out.attestation_id_imei = Some(string(v)?),
            715 => out.attestation_id_meid = Some(string(v)?),
            716 => out.attestation_id_manufacturer = Some(string(v)?),
            717 => out.attestation_id_model = Some(string(v)?),
            718 => out.vendor_patch_level = Some(PatchLevel::from_raw(int(v)?)),
            719 => out.boot_patch_level = Some(PatchLevel::from_raw(int(v)?)),
            723 => out.attestation_id_second_imei = Some(string(v)?),
            724 => out.module_hash = Some(v.octets().map_err(|e| err(e, name))?.to_vec()),
            // KNOWN_TAGS and this match list the same tags (tested).
            _ => return Err(KeyDescriptionError::UnknownTag { list: kind, tag }),
        }
        Ok(())
    }

    fn sorted(
        &mut self,
        sorted: bool,
        kind: ListKind,
        tag: u32,
    ) -> Result<(), KeyDescriptionError> {
        if !sorted {
            if !self.leniency.unsorted_sets {
                return Err(KeyDescriptionError::SetNotSorted { list: kind, tag });
            }
            self.quirks.push(Quirk::SetNotSorted { list: kind, tag });
        }
        Ok(())
    }

    fn int_set(
        &mut self,
        v: &Tlv<'_>,
        kind: ListKind,
        tag: u32,
        name: &'static str,
    ) -> Result<Vec<i64>, KeyDescriptionError> {
        let (items, sorted) = v.set().map_err(|e| err(e, name))?;
        self.sorted(sorted, kind, tag)?;
        items
            .iter()
            .map(|i| i.integer().map_err(|e| err(e, name)))
            .collect()
    }

    fn root_of_trust(&mut self, v: &Tlv<'_>) -> Result<RootOfTrust, KeyDescriptionError> {
        const AT: &str = "rootOfTrust";
        let items = v.sequence().map_err(|e| err(e, AT))?;
        let (key, locked, state, hash) = match items.as_slice() {
            [k, l, s] => (k, l, s, None),
            [k, l, s, h] => (k, l, s, Some(h)),
            _ => {
                return Err(KeyDescriptionError::ElementCount {
                    at: AT,
                    found: items.len(),
                });
            }
        };
        let (device_locked, canonical) = locked
            .boolean(self.leniency.nonzero_boolean_true)
            .map_err(|e| err(e, "deviceLocked"))?;
        if !canonical {
            self.quirks.push(Quirk::NonCanonicalBoolean);
        }
        Ok(RootOfTrust {
            verified_boot_key: key
                .octets()
                .map_err(|e| err(e, "verifiedBootKey"))?
                .to_vec(),
            device_locked,
            verified_boot_state: VerifiedBootState::from_value(
                state
                    .enumerated()
                    .map_err(|e| err(e, "verifiedBootState"))?,
            )?,
            verified_boot_hash: hash
                .map(|h| h.octets().map(<[u8]>::to_vec))
                .transpose()
                .map_err(|e| err(e, "verifiedBootHash"))?,
        })
    }

    fn application_id(
        &mut self,
        v: &Tlv<'_>,
        kind: ListKind,
    ) -> Result<AttestationApplicationId, KeyDescriptionError> {
        const AT: &str = "attestationApplicationId";
        // An OCTET STRING holding the DER of the SEQUENCE.
        let inner = v.octets().map_err(|e| err(e, AT))?;
        let seq = der::read_all(inner).map_err(|e| err(e, AT))?;
        let items = seq.sequence().map_err(|e| err(e, AT))?;
        let [infos, digests] = items.as_slice() else {
            return Err(KeyDescriptionError::ElementCount {
                at: AT,
                found: items.len(),
            });
        };
        let (infos, sorted) = infos.set().map_err(|e| err(e, "package_infos"))?;
        self.sorted(sorted, kind, 709)?;
        let packages = infos
            .iter()
            .map(|info| {
                const PI: &str = "AttestationPackageInfo";
                let fields = info.sequence().map_err(|e| err(e, PI))?;
                let [name, version] = fields.as_slice() else {
                    return Err(KeyDescriptionError::ElementCount {
                        at: PI,
                        found: fields.len(),
                    });
                };
                let name = name.octets().map_err(|e| err(e, "packageName"))?;
                Ok(PackageInfo {
                    name: String::from_utf8(name.to_vec())
                        .map_err(|_| KeyDescriptionError::NotUtf8 { at: "packageName" })?,
                    version: version.integer().map_err(|e| err(e, "version"))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (digests, sorted) = digests.set().map_err(|e| err(e, "signature_digests"))?;
        self.sorted(sorted, kind, 709)?;
        let signature_digests = digests
            .iter()
            .map(|d| {
                d.octets()
                    .map(<[u8]>::to_vec)
                    .map_err(|e| err(e, "signature_digests"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AttestationApplicationId {
            packages,
            signature_digests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_tag_has_a_field() {
        let mut sorted = KNOWN_TAGS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KNOWN_TAGS.len());
        for tag in KNOWN_TAGS {
            assert_ne!(tag_name(tag), "AuthorizationList", "{tag}");
        }
    }

    #[test]
    fn patch_levels() {
        assert_eq!(PatchLevel::from_raw(202_408).date, Some((2024, 8, None)));
        assert_eq!(PatchLevel::from_raw(202_408).year_month(), Some(202_408));
        assert_eq!(
            PatchLevel::from_raw(20_240_805).date,
            Some((2024, 8, Some(5)))
        );
        assert_eq!(PatchLevel::from_raw(20_240_805).year_month(), Some(202_408));
        for bad in [0, 2024, 202_413, 202_400, 2_024_080, 20_241_301, -202_408] {
            assert_eq!(PatchLevel::from_raw(bad).date, None, "{bad}");
        }
    }

    /// DER of one element: identifier bytes, then the contents.
    fn tlv(id: &[u8], contents: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        match contents.len() {
            n @ 0..=0x7f => v.push(u8::try_from(n).unwrap()),
            n @ 0x80..=0xff => v.extend_from_slice(&[0x81, u8::try_from(n).unwrap()]),
            n => v.extend_from_slice(&[
                0x82,
                u8::try_from(n >> 8).unwrap(),
                u8::try_from(n & 0xff).unwrap(),
            ]),
        }
        v.extend_from_slice(contents);
        v
    }

    fn seq(items: &[Vec<u8>]) -> Vec<u8> {
        tlv(&[0x30], &items.concat())
    }

    /// `[tag] EXPLICIT` (context, constructed) around `inner`.
    fn tagged(tag: u32, inner: &[u8]) -> Vec<u8> {
        let id = if tag < 31 {
            vec![0xa0 | u8::try_from(tag).unwrap()]
        } else {
            let mut id = vec![0xbf];
            let mut groups = vec![u8::try_from(tag & 0x7f).unwrap()];
            let mut t = tag >> 7;
            while t > 0 {
                groups.push(0x80 | u8::try_from(t & 0x7f).unwrap());
                t >>= 7;
            }
            groups.reverse();
            id.extend(groups);
            id
        };
        tlv(&id, inner)
    }

    fn int(v: u8) -> Vec<u8> {
        tlv(&[0x02], &[v])
    }

    fn rot(locked: u8, state: u8) -> Vec<u8> {
        seq(&[
            tlv(&[0x04], &[0; 32]),
            tlv(&[0x01], &[locked]),
            tlv(&[0x0a], &[state]),
            tlv(&[0x04], &[1; 32]),
        ])
    }

    fn description(levels: (u8, u8), sw: &[Vec<u8>], hw: &[Vec<u8>]) -> Vec<u8> {
        seq(&[
            int(100),
            tlv(&[0x0a], &[levels.0]),
            int(100),
            tlv(&[0x0a], &[levels.1]),
            tlv(&[0x04], b"nonce"),
            tlv(&[0x04], b""),
            seq(sw),
            seq(hw),
        ])
    }

    fn app_id(packages: &[(&str, u8)], digests: &[&[u8]]) -> Vec<u8> {
        let infos: Vec<Vec<u8>> = packages
            .iter()
            .map(|(n, v)| seq(&[tlv(&[0x04], n.as_bytes()), int(*v)]))
            .collect();
        let ds: Vec<Vec<u8>> = digests.iter().map(|d| tlv(&[0x04], d)).collect();
        let inner = seq(&[tlv(&[0x31], &infos.concat()), tlv(&[0x31], &ds.concat())]);
        tagged(709, &tlv(&[0x04], &inner))
    }

    fn parse(der: &[u8]) -> Result<KeyDescription, KeyDescriptionError> {
        KeyDescription::parse(der, &Leniency::google())
    }

    #[test]
    fn a_synthetic_description_decodes() {
        let hw = [
            tagged(1, &tlv(&[0x31], &[int(2), int(3)].concat())),
            tagged(503, &[0x05, 0x00]),
            tagged(702, &int(0)),
            tagged(704, &rot(0xff, 0)),
            tagged(705, &tlv(&[0x02], &[0x02, 0x22, 0xe0])),
            tagged(706, &tlv(&[0x02], &[0x03, 0x16, 0xa8])),
        ];
        let sw = [
            tagged(701, &tlv(&[0x02], &[0x01, 0x00])),
            app_id(&[("com.example", 7)], &[&[9; 32]]),
        ];
        let kd = parse(&description((1, 1), &sw, &hw)).unwrap();
        assert_eq!(kd.attestation_version, 100);
        assert_eq!(
            kd.attestation_security_level,
            SecurityLevel::TrustedEnvironment
        );
        assert_eq!(kd.attestation_challenge, b"nonce");
        let h = &kd.hardware_enforced;
        assert_eq!(h.tags, [1, 503, 702, 704, 705, 706]);
        assert_eq!(h.purposes.as_deref(), Some(&[2, 3][..]));
        assert!(h.no_auth_required);
        assert_eq!(h.origin, Some(KeyOrigin::Generated));
        let r = kd.root_of_trust().unwrap();
        assert!(r.device_locked);
        assert_eq!(r.verified_boot_state, VerifiedBootState::Verified);
        assert_eq!(kd.os_version(), Some(140_000));
        assert_eq!(kd.os_patch_level().unwrap().year_month(), Some(202_408));
        let id = kd.attestation_application_id().unwrap();
        assert_eq!(
            id.packages,
            [PackageInfo {
                name: "com.example".into(),
                version: 7
            }]
        );
        assert_eq!(id.signature_digests, [vec![9; 32]]);
        assert_eq!(kd.software_enforced.creation_date_time, Some(256));
        assert!(kd.quirks.is_empty());
    }

    #[test]
    fn synthetic_refusals_name_the_element() {
        let ok_hw = [tagged(704, &rot(0xff, 0))];
        let e = |levels, sw: &[Vec<u8>], hw: &[Vec<u8>]| {
            parse(&description(levels, sw, hw)).unwrap_err()
        };
        assert_eq!(
            e((3, 1), &[], &ok_hw),
            KeyDescriptionError::UnknownSecurityLevel(3)
        );
        assert_eq!(
            e((1, 1), &[], &[tagged(704, &rot(0xff, 4))]),
            KeyDescriptionError::UnknownBootState(4)
        );
        assert_eq!(
            e((1, 1), &[], &[tagged(702, &int(9))]),
            KeyDescriptionError::UnknownOrigin(9)
        );
        // Unknown tags: refused as Google does, skipped (and named) on request.
        let unknown = [tagged(720, &[0x05, 0x00])];
        assert_eq!(
            e((1, 1), &[], &unknown),
            KeyDescriptionError::UnknownTag {
                list: ListKind::HardwareEnforced,
                tag: 720
            }
        );
        let kd = KeyDescription::parse(
            &description((1, 1), &[], &unknown),
            &Leniency::google().unknown_tags(true),
        )
        .unwrap();
        assert_eq!(
            kd.quirks,
            [Quirk::UnknownTag {
                list: ListKind::HardwareEnforced,
                tag: 720
            }]
        );
        assert_eq!(
            e((1, 1), &[tagged(701, &int(1)), tagged(701, &int(1))], &[]),
            KeyDescriptionError::DuplicateTag {
                list: ListKind::SoftwareEnforced,
                tag: 701
            }
        );
        // Wrong types and shapes.
        assert_eq!(
            e((1, 1), &[], &[tagged(705, &tlv(&[0x04], &[1]))]),
            KeyDescriptionError::WrongType { at: "osVersion" }
        );
        assert_eq!(
            e((1, 1), &[], &[tagged(503, &tlv(&[0x01], &[0xff]))]),
            KeyDescriptionError::WrongType {
                at: "noAuthRequired"
            }
        );
        assert_eq!(
            e((1, 1), &[], &[tlv(&[0x02], &[1])]),
            KeyDescriptionError::NotTagged("hardwareEnforced")
        );
        assert_eq!(
            e((1, 1), &[], &[tagged(705, &[int(1), int(2)].concat())]),
            KeyDescriptionError::Trailing { at: "osVersion" }
        );
        assert_eq!(
            e((1, 1), &[], &[tagged(704, &seq(&[tlv(&[0x04], &[0])]))]),
            KeyDescriptionError::ElementCount {
                at: "rootOfTrust",
                found: 1
            }
        );
        let mut not_utf8 = app_id(&[("ab", 1)], &[]);
        let at = not_utf8.windows(2).position(|w| w == b"ab").unwrap();
        not_utf8[at] = 0xff;
        assert_eq!(
            e((1, 1), &[not_utf8], &[]),
            KeyDescriptionError::NotUtf8 { at: "packageName" }
        );
        // Seven elements; trailing bytes after the SEQUENCE; not DER.
        let seven = seq(&[int(1), int(1), int(1), int(1), int(1), int(1), int(1)]);
        assert_eq!(
            parse(&seven),
            Err(KeyDescriptionError::ElementCount {
                at: "KeyDescription",
                found: 7
            })
        );
        let mut trailing = description((1, 1), &[], &ok_hw);
        trailing.push(0);
        assert_eq!(
            parse(&trailing),
            Err(KeyDescriptionError::Trailing {
                at: "KeyDescription"
            })
        );
        assert_eq!(
            parse(&[0x30, 0x80, 0, 0]),
            Err(KeyDescriptionError::Der {
                at: "KeyDescription"
            })
        );
        assert_eq!(
            parse(&[]),
            Err(KeyDescriptionError::Der {
                at: "KeyDescription"
            })
        );
    }

    #[test]
    fn boolean_true_other_than_ff_is_a_named_quirk() {
        let der = description((1, 1), &[], &[tagged(704, &rot(0x01, 0))]);
        let kd = parse(&der).unwrap();
        assert!(kd.root_of_trust().unwrap().device_locked);
        assert_eq!(kd.quirks, [Quirk::NonCanonicalBoolean]);
        assert_eq!(
            KeyDescription::parse(&der, &Leniency::strict()),
            Err(KeyDescriptionError::Boolean { at: "deviceLocked" })
        );
    }

    #[test]
    fn every_prefix_and_every_byte_flip_is_handled() {
        let hw = [
            tagged(704, &rot(0xff, 0)),
            tagged(706, &tlv(&[0x02], &[0x03, 0x16, 0xa8])),
        ];
        let sw = [app_id(&[("com.example", 7)], &[&[9; 32]])];
        let der = description((2, 2), &sw, &hw);
        for n in 0..der.len() {
            assert!(parse(&der[..n]).is_err(), "prefix {n}");
        }
        for i in 0..der.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut d = der.clone();
                d[i] ^= mask;
                let _ = parse(&d);
            }
        }
    }
}

//! Verdict reasons (protocol §4) and the opaque `arc` claim (protocol §5).
//!
//! `arc` is 16 base32 characters (RFC 4648, no padding) of 10 bytes:
//! `r (5 random bytes) || mask (3) || tag (2)`, where
//! `mask = reasons bitmap XOR HMAC(key, "genuine/arc/v1" || 0x00 || "m" || r)[..3]` and
//! `tag = HMAC(key, "genuine/arc/v1" || 0x00 || "t" || r || reasons bitmap)[..2]`.
//! Fresh randomness makes every `arc` different, so a valid token's `arc` cannot be
//! told from a decoy's by the app; the service key decodes it.

use std::fmt;
use std::str::FromStr;

use ring::hmac;
use ring::rand::SecureRandom;

/// Length of an `arc` in characters.
pub const ARC_LEN: usize = 16;
const DOMAIN: &[u8] = b"genuine/arc/v1\0";

macro_rules! reasons {
    ($($variant:ident = $bit:literal, $name:literal, $doc:literal;)*) => {
        /// A verdict reason. The bit numbers are part of the `arc` encoding: never renumber.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Reason {
            $(#[doc = $doc] $variant = $bit,)*
        }

        impl Reason {
            /// Every reason, in the evaluation order of protocol §4.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The wire name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }
        }

        impl FromStr for Reason {
            type Err = UnknownReason;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($name => Ok(Reason::$variant),)* _ => Err(UnknownReason) }
            }
        }
    };
}

reasons! {
    NonceInvalid = 0, "nonce-invalid", "The nonce's MAC failed, or it was issued for another account or app.";
    NonceExpired = 1, "nonce-expired", "The nonce has expired.";
    NonceReplayed = 2, "nonce-replayed", "The nonce was already used.";
    EvidenceInvalid = 3, "evidence-invalid", "Device-key signature wrong, or payload fields missing or mistyped.";
    ApiUnknown = 4, "api-unknown", "No such API domain in the account.";
    AppNotRegistered = 5, "app-not-registered", "No active registration matches the proof.";
    RegistrationExpired = 6, "registration-expired", "The only matching registration has expired.";
    Debugger = 7, "debugger", "A debugger is attached and the policy rejects it.";
    Preload = 8, "preload", "Preloaded libraries were found and the policy rejects them.";
    InjectedCode = 9, "injected-code", "Injected code was found and the policy rejects it.";
    CodePatched = 10, "code-patched", "Patched code was found and the policy rejects it.";
    Emulator = 11, "emulator", "The app runs in an emulator and the policy rejects it.";
    Virtualized = 12, "virtualized", "The app runs in a virtual machine and the policy rejects it.";
    Rooted = 13, "rooted", "The device is rooted and the policy rejects it.";
    PlatformAttestationMissing = 14, "platform-attestation-missing", "Platform attestation is required and absent.";
    PlatformAttestationInvalid = 15, "platform-attestation-invalid", "Platform attestation is required and failed.";
    DeviceBlocked = 16, "device-blocked", "The device id is on the block list.";
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason name")]
pub struct UnknownReason;

/// A set of reasons (a 24-bit map).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReasonSet(u32);

impl ReasonSet {
    /// The empty set (a valid verdict).
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Adds a reason.
    pub fn insert(&mut self, r: Reason) {
        self.0 |= 1 << (r as u32);
    }

    /// Whether the reason is in the set.
    #[must_use]
    pub fn contains(&self, r: Reason) -> bool {
        self.0 & (1 << (r as u32)) != 0
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The reasons in evaluation order.
    pub fn iter(&self) -> impl Iterator<Item = Reason> + '_ {
        Reason::ALL.iter().copied().filter(|r| self.contains(*r))
    }

    /// The wire names in evaluation order.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Reason::as_str).collect()
    }

    /// The raw bitmap.
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.0
    }
}

impl FromIterator<Reason> for ReasonSet {
    fn from_iter<I: IntoIterator<Item = Reason>>(iter: I) -> Self {
        let mut s = Self::empty();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

/// Why an `arc` could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArcError {
    /// Not 16 characters of base32.
    #[error("arc is not 16 base32 characters")]
    Malformed,
    /// The tag does not match: made under another key, or altered.
    #[error("arc was not made by this account's key")]
    BadTag,
    /// The random source failed.
    #[error("random source failed")]
    Random,
}

/// The key under which `arc` values are encoded.
pub struct ArcKey(hmac::Key);

impl fmt::Debug for ArcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArcKey(<secret>)")
    }
}

impl ArcKey {
    /// A key from secret bytes.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    fn prf(&self, label: u8, r: &[u8], extra: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(DOMAIN);
        ctx.update(&[label]);
        ctx.update(r);
        ctx.update(extra);
        ctx.sign()
    }

    /// Encodes a reason set with fresh randomness.
    ///
    /// # Errors
    /// [`ArcError::Random`] if the random source fails.
    pub fn encode(&self, rng: &dyn SecureRandom, reasons: ReasonSet) -> Result<String, ArcError> {
        let mut out = [0u8; 10];
        rng.fill(&mut out[..5]).map_err(|_| ArcError::Random)?;
        let bits = reasons.bits().to_be_bytes();
        let mask = self.prf(b'm', &out[..5], &[]);
        for i in 0..3 {
            out[5 + i] = bits[1 + i] ^ mask.as_ref()[i];
        }
        let tag = self.prf(b't', &out[..5], &bits[1..]);
        out[8..].copy_from_slice(&tag.as_ref()[..2]);
        Ok(data_encoding::BASE32_NOPAD.encode(&out))
    }

    /// Decodes an `arc` made under this key.
    ///
    /// # Errors
    /// [`ArcError`] naming the failed check.
    pub fn decode(&self, arc: &str) -> Result<ReasonSet, ArcError> {
        if arc.len() != ARC_LEN {
            return Err(ArcError::Malformed);
        }
        let raw = data_encoding::BASE32_NOPAD
            .decode(arc.as_bytes())
            .map_err(|_| ArcError::Malformed)?;
        let raw: [u8; 10] = raw.try_into().map_err(|_| ArcError::Malformed)?;
        let mask = self.prf(b'm', &raw[..5], &[]);
        let mut bits = [0u8; 4];
        for i in 0..3 {
            bits[1 + i] = raw[5 + i] ^ mask.as_ref()[i];
        }
        let tag = self.prf(b't', &raw[..5], &bits[1..]);
        if ring_eq(&tag.as_ref()[..2], &raw[8..]) {
            Ok(ReasonSet(u32::from_be_bytes(bits)))
        } else {
            Err(ArcError::BadTag)
        }
    }
}

/// Constant-time equality of two short byte strings.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn names_round_trip() {
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>().unwrap(), *r);
        }
        assert!("nope".parse::<Reason>().is_err());
    }

    #[test]
    fn arc_round_trip_fresh_and_keyed() {
        let rng = SystemRandom::new();
        let key = ArcKey::from_bytes(b"k1");
        let set: ReasonSet = [Reason::Debugger, Reason::DeviceBlocked]
            .into_iter()
            .collect();
        let a = key.encode(&rng, set).unwrap();
        let b = key.encode(&rng, set).unwrap();
        assert_eq!(a.len(), ARC_LEN);
        assert_ne!(a, b, "arc is randomised");
        assert_eq!(key.decode(&a).unwrap(), set);
        assert_eq!(
            key.decode(&key.encode(&rng, ReasonSet::empty()).unwrap())
                .unwrap(),
            ReasonSet::empty()
        );
        assert!(ArcKey::from_bytes(b"k2").decode(&a).is_err());
        assert_eq!(key.decode("short"), Err(ArcError::Malformed));
        assert_eq!(key.decode("0000000000000000"), Err(ArcError::Malformed));
    }
}

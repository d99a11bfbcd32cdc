//! Stateless challenge nonces (protocol §1).
//!
//! Layout of the nonce bytes (57 bytes, 76 base64url characters):
//! `version (0x01) || random (16) || expiry (u64 big-endian, Unix seconds) || mac (32)`,
//! where `mac = HMAC-SHA256(nonce key, "genuine/nonce/v1" || 0x00 || random || expiry ||
//! u32be(len account) || account || u32be(len app id) || app id)`.
//! A nonce for one account or app fails the MAC for any other. Single use is
//! enforced by the service's replay guard, keyed by the random part.

use ring::hmac;
use ring::rand::SecureRandom;

use crate::b64;

const VERSION: u8 = 1;
const RANDOM_LEN: usize = 16;
const MAC_LEN: usize = 32;
/// Length of the decoded nonce bytes.
pub const NONCE_LEN: usize = 1 + RANDOM_LEN + 8 + MAC_LEN;
const DOMAIN: &[u8] = b"genuine/nonce/v1\0";

/// The service's nonce key (HMAC-SHA256).
pub struct NonceKey(hmac::Key);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(<secret>)")
    }
}

/// A nonce as issued to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedNonce {
    /// The base64url text sent to the client.
    pub nonce: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// A nonce whose MAC and expiry were checked. Single use is still to be enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedNonce {
    /// The random part: the key under which single use is recorded.
    pub id: [u8; RANDOM_LEN],
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// The decoded nonce bytes (the measurement key).
    pub bytes: Vec<u8>,
}

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// Not base64url, wrong length or unknown version.
    #[error("nonce is malformed")]
    Malformed,
    /// The MAC does not match: forged, or issued for another account or app.
    #[error("nonce MAC does not match this account and app")]
    BadMac,
    /// The MAC matches but the expiry has passed.
    #[error("nonce has expired")]
    Expired,
    /// The random source failed while issuing.
    #[error("random source failed")]
    Random,
}

impl NonceKey {
    /// A key from 32 secret bytes.
    #[must_use]
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// [`NonceError::Random`] if the random source fails.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, NonceError> {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).map_err(|_| NonceError::Random)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The MAC input: domain, random part, expiry and the length-prefixed account and app id.
    fn mac_input(random: &[u8], expiry: &[u8; 8], account: &str, app_id: &str) -> Vec<u8> {
        let mut input =
            Vec::with_capacity(DOMAIN.len() + RANDOM_LEN + 16 + account.len() + app_id.len());
        input.extend_from_slice(DOMAIN);
        input.extend_from_slice(random);
        input.extend_from_slice(expiry);
        for part in [account, app_id] {
            input.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            input.extend_from_slice(part.as_bytes());
        }
        input
    }

    /// Issues a nonce for `account` and `app_id`, valid for `ttl_secs` from `now`.
    ///
    /// # Errors
    /// [`NonceError::Random`] if the random source fails.
    pub fn issue(
        &self,
        rng: &dyn SecureRandom,
        account: &str,
        app_id: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<IssuedNonce, NonceError> {
        let mut random = [0u8; RANDOM_LEN];
        rng.fill(&mut random).map_err(|_| NonceError::Random)?;
        let expires_at = now.saturating_add(ttl_secs);
        let expiry = expires_at.to_be_bytes();
        let tag = hmac::sign(&self.0, &Self::mac_input(&random, &expiry, account, app_id));
        let mut bytes = Vec::with_capacity(NONCE_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&random);
        bytes.extend_from_slice(&expiry);
        bytes.extend_from_slice(tag.as_ref());
        Ok(IssuedNonce {
            nonce: b64::encode(&bytes),
            expires_at,
        })
    }

    /// Checks a nonce's form, MAC (constant time) and expiry at `now`.
    ///
    /// # Errors
    /// [`NonceError`] naming the failed check; the expiry is only trusted once the MAC matched.
    pub fn check(
        &self,
        nonce: &str,
        account: &str,
        app_id: &str,
        now: u64,
    ) -> Result<CheckedNonce, NonceError> {
        let bytes = b64::decode(nonce).map_err(|_| NonceError::Malformed)?;
        if bytes.len() != NONCE_LEN || bytes[0] != VERSION {
            return Err(NonceError::Malformed);
        }
        let (random, rest) = bytes[1..].split_at(RANDOM_LEN);
        let (expiry, mac) = rest.split_at(8);
        let expiry: [u8; 8] = expiry.try_into().map_err(|_| NonceError::Malformed)?;
        hmac::verify(
            &self.0,
            &Self::mac_input(random, &expiry, account, app_id),
            mac,
        )
        .map_err(|_| NonceError::BadMac)?;
        let expires_at = u64::from_be_bytes(expiry);
        if now >= expires_at {
            return Err(NonceError::Expired);
        }
        let id: [u8; RANDOM_LEN] = random.try_into().map_err(|_| NonceError::Malformed)?;
        Ok(CheckedNonce {
            id,
            expires_at,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn issue_then_check() {
        let rng = SystemRandom::new();
        let key = NonceKey::generate(&rng).unwrap();
        let n = key.issue(&rng, "default", "com.ex", 1000, 60).unwrap();
        assert_eq!(n.nonce.len(), 76);
        let c = key.check(&n.nonce, "default", "com.ex", 1059).unwrap();
        assert_eq!(c.expires_at, 1060);
        assert_eq!(c.bytes.len(), NONCE_LEN);
        assert_eq!(
            key.check(&n.nonce, "default", "com.ex", 1060),
            Err(NonceError::Expired)
        );
        assert_eq!(
            key.check(&n.nonce, "default", "com.other", 1000),
            Err(NonceError::BadMac)
        );
        assert_eq!(
            key.check(&n.nonce, "other", "com.ex", 1000),
            Err(NonceError::BadMac)
        );
        // Length-prefixing keeps ("ab","c") apart from ("a","bc").
        let n2 = key.issue(&rng, "ab", "c", 1000, 60).unwrap();
        assert_eq!(
            key.check(&n2.nonce, "a", "bc", 1000),
            Err(NonceError::BadMac)
        );
        let other = NonceKey::generate(&rng).unwrap();
        assert_eq!(
            other.check(&n.nonce, "default", "com.ex", 1000),
            Err(NonceError::BadMac)
        );
    }

    #[test]
    fn tampered_and_malformed() {
        let rng = SystemRandom::new();
        let key = NonceKey::generate(&rng).unwrap();
        let n = key.issue(&rng, "a", "b", 1000, 60).unwrap();
        let mut bytes = b64::decode(&n.nonce).unwrap();
        // Push the expiry forward: the MAC must catch it.
        bytes[17] ^= 0x01;
        assert_eq!(
            key.check(&b64::encode(&bytes), "a", "b", 1000),
            Err(NonceError::BadMac)
        );
        assert_eq!(key.check("", "a", "b", 1000), Err(NonceError::Malformed));
        assert_eq!(key.check("!!!", "a", "b", 1000), Err(NonceError::Malformed));
        assert_eq!(
            key.check(&n.nonce[..40], "a", "b", 1000),
            Err(NonceError::Malformed)
        );
    }
}

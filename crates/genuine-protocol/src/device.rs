//! The per-install device key: ECDSA P-256, and the device id derived from it.

use ring::rand::SecureRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::b64;

/// DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A P-256 public key as a JWK (`{"kty":"EC","crv":"P-256","x":…,"y":…}`), nothing else allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcJwk {
    /// Key type: always `EC`.
    pub kty: String,
    /// Curve: always `P-256`.
    pub crv: String,
    /// The x coordinate, 32 bytes base64url.
    pub x: String,
    /// The y coordinate, 32 bytes base64url.
    pub y: String,
}

/// A checked P-256 public key: the uncompressed SEC1 point `04 || x || y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePublicKey {
    point: [u8; 65],
}

/// Why a JWK is not an acceptable device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceKeyError {
    /// `kty` is not `EC` or `crv` is not `P-256`.
    #[error("device key must be kty EC on curve P-256")]
    WrongKeyType,
    /// `x` or `y` is not 32 bytes of canonical base64url.
    #[error("device key coordinate is not 32 bytes of canonical base64url")]
    BadCoordinate,
    /// The key could not be created or loaded.
    #[error("device key could not be created or loaded")]
    KeyRejected,
    /// Signing failed.
    #[error("signing with the device key failed")]
    SigningFailed,
}

impl DevicePublicKey {
    /// Parses a JWK into a public key. Whether the point lies on the curve is
    /// checked by the signature verification that follows.
    ///
    /// # Errors
    /// [`DeviceKeyError`] naming the failed check.
    pub fn from_jwk(jwk: &EcJwk) -> Result<Self, DeviceKeyError> {
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return Err(DeviceKeyError::WrongKeyType);
        }
        let x: [u8; 32] = b64::decode_array(&jwk.x).map_err(|_| DeviceKeyError::BadCoordinate)?;
        let y: [u8; 32] = b64::decode_array(&jwk.y).map_err(|_| DeviceKeyError::BadCoordinate)?;
        let mut point = [0u8; 65];
        point[0] = 0x04;
        point[1..33].copy_from_slice(&x);
        point[33..].copy_from_slice(&y);
        Ok(Self { point })
    }

    /// The uncompressed SEC1 point.
    #[must_use]
    pub fn sec1(&self) -> &[u8; 65] {
        &self.point
    }

    /// The DER SubjectPublicKeyInfo of the key.
    #[must_use]
    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(91);
        der.extend_from_slice(&P256_SPKI_PREFIX);
        der.extend_from_slice(&self.point);
        der
    }

    /// The device id: `b64url(first 16 bytes of SHA-256(DER SPKI))`, 22 characters.
    #[must_use]
    pub fn device_id(&self) -> String {
        let hash = ring::digest::digest(&ring::digest::SHA256, &self.spki_der());
        b64::encode(&hash.as_ref()[..16])
    }

    /// The key as a JWK.
    #[must_use]
    pub fn to_jwk(&self) -> EcJwk {
        EcJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64::encode(&self.point[1..33]),
            y: b64::encode(&self.point[33..]),
        }
    }

    /// Verifies an ES256 (fixed-size `r || s`) signature; `false` also for a
    /// point not on the curve.
    #[must_use]
    pub fn verify_es256(&self, message: &[u8], signature: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

/// A device key pair (ES256). On Linux the SDK keeps its PKCS#8 form in a 0600
/// file; tests create one in memory.
#[derive(Debug)]
pub struct DeviceKey {
    pair: EcdsaKeyPair,
    public: DevicePublicKey,
}

impl DeviceKey {
    /// Generates a new key and returns it with its PKCS#8 document (to be stored).
    ///
    /// # Errors
    /// [`DeviceKeyError::KeyRejected`] if the random source fails.
    pub fn generate(rng: &dyn SecureRandom) -> Result<(Self, Vec<u8>), DeviceKeyError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map_err(|_| DeviceKeyError::KeyRejected)?;
        let key = Self::from_pkcs8(pkcs8.as_ref(), rng)?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    /// Loads a key from its PKCS#8 document.
    ///
    /// # Errors
    /// [`DeviceKeyError::KeyRejected`] if the document is not a P-256 key.
    pub fn from_pkcs8(pkcs8: &[u8], rng: &dyn SecureRandom) -> Result<Self, DeviceKeyError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, rng)
                .map_err(|_| DeviceKeyError::KeyRejected)?;
        let point: [u8; 65] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| DeviceKeyError::KeyRejected)?;
        Ok(Self {
            pair,
            public: DevicePublicKey { point },
        })
    }

    /// The public half.
    #[must_use]
    pub fn public_key(&self) -> &DevicePublicKey {
        &self.public
    }

    /// Signs `message` with ES256 (fixed-size `r || s`).
    ///
    /// # Errors
    /// [`DeviceKeyError::SigningFailed`] if the random source fails.
    pub fn sign(&self, rng: &dyn SecureRandom, message: &[u8]) -> Result<Vec<u8>, DeviceKeyError> {
        self.pair
            .sign(rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| DeviceKeyError::SigningFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn device_id_is_22_chars_and_stable() {
        let rng = SystemRandom::new();
        let (key, pkcs8) = DeviceKey::generate(&rng).unwrap();
        let again = DeviceKey::from_pkcs8(&pkcs8, &rng).unwrap();
        let id = key.public_key().device_id();
        assert_eq!(id.len(), 22);
        assert_eq!(id, again.public_key().device_id());
        let jwk = key.public_key().to_jwk();
        assert_eq!(DevicePublicKey::from_jwk(&jwk).unwrap(), *key.public_key());
    }

    #[test]
    fn signature_round_trip_and_tamper() {
        let rng = SystemRandom::new();
        let (key, _) = DeviceKey::generate(&rng).unwrap();
        let sig = key.sign(&rng, b"hello").unwrap();
        assert!(key.public_key().verify_es256(b"hello", &sig));
        assert!(!key.public_key().verify_es256(b"hellp", &sig));
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(!key.public_key().verify_es256(b"hello", &bad));
    }

    #[test]
    fn wrong_jwk_refused() {
        let jwk = EcJwk {
            kty: "EC".into(),
            crv: "P-384".into(),
            x: String::new(),
            y: String::new(),
        };
        assert_eq!(
            DevicePublicKey::from_jwk(&jwk),
            Err(DeviceKeyError::WrongKeyType)
        );
    }
}

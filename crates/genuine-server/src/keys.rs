//! Token signing keys: generation, encryption at rest, signing, JWKS.
//!
//! Private keys (PKCS#8 for ES256 and EdDSA, 32-byte secrets for HS256) are
//! sealed with AES-256-GCM under the master key, with the key id and purpose
//! as associated data, before they reach the store.

use genuine_protocol::b64;
use genuine_verify::{Algorithm, Jwk};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use ring::{digest, hmac};

/// Why a key operation failed. These are server faults, never client input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The random source failed.
    #[error("random source failed")]
    Random,
    /// A sealed key could not be opened: wrong master key or corrupt data.
    #[error("sealed key could not be opened (wrong master key or corrupt data)")]
    Unseal,
    /// A key document could not be loaded.
    #[error("key document is not a valid {0} key")]
    BadKey(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

/// The data dir's master key: seals private keys and derives `arc` keys.
pub struct MasterKey {
    aead: LessSafeKey,
    derive: hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

impl MasterKey {
    /// A master key from 32 secret bytes.
    ///
    /// # Errors
    /// [`KeyError::BadKey`] never in practice (AES-256 takes any 32 bytes).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let enc = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, bytes),
            b"genuine/seal/v1",
        );
        let aead = UnboundKey::new(&aead::AES_256_GCM, enc.as_ref())
            .map_err(|_| KeyError::BadKey("AES-256"))?;
        let der = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, bytes),
            b"genuine/derive/v1",
        );
        Ok(Self {
            aead: LessSafeKey::new(aead),
            derive: hmac::Key::new(hmac::HMAC_SHA256, der.as_ref()),
        })
    }

    /// Seals `plain` bound to `context`: `nonce (12) || ciphertext || tag`.
    ///
    /// # Errors
    /// [`KeyError::Random`] if the random source fails.
    pub fn seal(
        &self,
        rng: &dyn SecureRandom,
        context: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut buf = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| KeyError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what [`MasterKey::seal`] sealed under the same `context`.
    ///
    /// # Errors
    /// [`KeyError::Unseal`] for a wrong key, context or corrupt data.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < 12 + 16 {
            return Err(KeyError::Unseal);
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal)?;
        let mut buf = ct.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| KeyError::Unseal)?;
        Ok(plain.to_vec())
    }

    /// Derives a 32-byte secret for `label` (e.g. an account's `arc` key).
    #[must_use]
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.derive, label).as_ref());
        out
    }
}

enum Inner {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Hs256 { key: hmac::Key, secret: Vec<u8> },
}

/// A loaded private key that signs tokens.
pub struct SigningKey {
    kid: String,
    inner: Inner,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg().as_str())
            .finish_non_exhaustive()
    }
}

/// A fresh random key id: 12 random bytes, base64url (16 characters).
///
/// # Errors
/// [`KeyError::Random`] if the random source fails.
pub fn new_kid(rng: &dyn SecureRandom) -> Result<String, KeyError> {
    let mut b = [0u8; 12];
    rng.fill(&mut b).map_err(|_| KeyError::Random)?;
    Ok(b64::encode(&b))
}

impl SigningKey {
    /// Generates a key; returns it with its private document (PKCS#8 or secret).
    ///
    /// # Errors
    /// [`KeyError`] if the random source fails.
    pub fn generate(
        alg: Algorithm,
        kid: String,
        rng: &SystemRandom,
    ) -> Result<(Self, Vec<u8>), KeyError> {
        let doc = match alg {
            Algorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, rng)
                    .map_err(|_| KeyError::Random)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(rng)
                .map_err(|_| KeyError::Random)?
                .as_ref()
                .to_vec(),
            Algorithm::Hs256 => {
                let mut s = vec![0u8; 32];
                rng.fill(&mut s).map_err(|_| KeyError::Random)?;
                s
            }
        };
        let key = Self::load(alg, kid, &doc, rng)?;
        Ok((key, doc))
    }

    /// Loads a key from its private document.
    ///
    /// # Errors
    /// [`KeyError::BadKey`] if the document does not hold a key of `alg`.
    pub fn load(
        alg: Algorithm,
        kid: String,
        doc: &[u8],
        rng: &SystemRandom,
    ) -> Result<Self, KeyError> {
        let inner = match alg {
            Algorithm::Es256 => Inner::Es256(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, doc, rng)
                    .map_err(|_| KeyError::BadKey("ES256"))?,
            ),
            Algorithm::EdDsa => Inner::EdDsa(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc)
                    .map_err(|_| KeyError::BadKey("EdDSA"))?,
            ),
            Algorithm::Hs256 => {
                if doc.len() < 32 {
                    return Err(KeyError::BadKey("HS256"));
                }
                Inner::Hs256 {
                    key: hmac::Key::new(hmac::HMAC_SHA256, doc),
                    secret: doc.to_vec(),
                }
            }
        };
        Ok(Self { kid, inner })
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        match self.inner {
            Inner::Es256(_) => Algorithm::Es256,
            Inner::EdDsa(_) => Algorithm::EdDsa,
            Inner::Hs256 { .. } => Algorithm::Hs256,
        }
    }

    /// Signs `message` (the JWS signing input).
    ///
    /// # Errors
    /// [`KeyError::Sign`] if signing fails.
    pub fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Es256(k) => k
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Inner::EdDsa(k) => Ok(k.sign(message).as_ref().to_vec()),
            Inner::Hs256 { key, .. } => Ok(hmac::sign(key, message).as_ref().to_vec()),
        }
    }

    /// The public JWK (`None` for HS256, which is never published).
    #[must_use]
    pub fn public_jwk(&self) -> Option<Jwk> {
        let (kty, crv, x, y) = match &self.inner {
            Inner::Es256(k) => {
                let p = k.public_key().as_ref();
                (
                    "EC",
                    "P-256",
                    b64::encode(p.get(1..33)?),
                    Some(b64::encode(p.get(33..65)?)),
                )
            }
            Inner::EdDsa(k) => ("OKP", "Ed25519", b64::encode(k.public_key().as_ref()), None),
            Inner::Hs256 { .. } => return None,
        };
        Some(Jwk {
            key_ops: None,
            kty: kty.into(),
            crv: Some(crv.into()),
            kid: Some(self.kid.clone()),
            alg: Some(self.alg().as_str().into()),
            use_: Some("sig".into()),
            x: Some(x),
            y,
        })
    }

    /// The HS256 secret (exported once to the operator); `None` for other algorithms.
    #[must_use]
    pub fn hs256_secret(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Hs256 { secret, .. } => Some(secret),
            _ => None,
        }
    }

    /// Mints a compact JWS: header `{"alg","typ":"JWT","kid"}` with `header_kid`
    /// (a decoy signs under the real key's `kid`) and the given claims.
    ///
    /// # Errors
    /// [`KeyError::Sign`] if signing or serialising fails.
    pub fn mint(
        &self,
        rng: &SystemRandom,
        header_kid: &str,
        claims: &impl serde::Serialize,
    ) -> Result<String, KeyError> {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let header = serde_json::to_vec(&Header {
            alg: self.alg().as_str(),
            typ: "JWT",
            kid: header_kid,
        })
        .map_err(|_| KeyError::Sign)?;
        let claims = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut out = b64::encode(&header);
        out.push('.');
        out.push_str(&b64::encode(&claims));
        let sig = self.sign(rng, out.as_bytes())?;
        out.push('.');
        out.push_str(&b64::encode(&sig));
        Ok(out)
    }
}

/// `kid` for decoys of an API that does not exist, stable per account and
/// domain so that probing API names shows nothing.
#[must_use]
pub fn phantom_kid(master: &MasterKey, account: &str, domain: &str) -> String {
    let mut label = b"genuine/phantom-kid/v1\0".to_vec();
    label.extend_from_slice(account.as_bytes());
    label.push(0);
    label.extend_from_slice(domain.as_bytes());
    b64::encode(&master.derive(&label)[..12])
}

/// SHA-256 of a secret, for storing admin tokens.
#[must_use]
pub fn hash_secret(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_bound_to_context() {
        let rng = SystemRandom::new();
        let m = MasterKey::from_bytes(&[1; 32]).unwrap();
        let s = m.seal(&rng, "kid1", b"secret").unwrap();
        assert_eq!(m.open("kid1", &s).unwrap(), b"secret");
        assert!(m.open("kid2", &s).is_err());
        assert!(
            MasterKey::from_bytes(&[2; 32])
                .unwrap()
                .open("kid1", &s)
                .is_err()
        );
        let mut t = s.clone();
        t[14] ^= 1;
        assert!(m.open("kid1", &t).is_err());
    }

    #[test]
    fn each_alg_mints_a_token_the_verifier_accepts() {
        let rng = SystemRandom::new();
        for alg in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Hs256] {
            let (k, doc) = SigningKey::generate(alg, "kid".into(), &rng).unwrap();
            let again = SigningKey::load(alg, "kid".into(), &doc, &rng).unwrap();
            let claims = serde_json::json!({"iss":"i","aud":"a","exp":2_000_000_000i64});
            let t = again.mint(&rng, "kid", &claims).unwrap();
            let expect = genuine_verify::Expectations {
                issuer: "i".into(),
                audiences: vec!["a".into()],
                leeway_secs: 0,
            };
            let v = match k.public_jwk() {
                Some(jwk) => genuine_verify::Verifier::from_jwks(
                    &genuine_verify::Jwks { keys: vec![jwk] },
                    expect,
                ),
                None => genuine_verify::Verifier::from_hs256_secret(
                    "kid",
                    k.hs256_secret().unwrap(),
                    expect,
                ),
            }
            .unwrap();
            assert_eq!(v.verify(&t, 1_000).unwrap().aud, "a", "{alg:?}");
        }
    }
}

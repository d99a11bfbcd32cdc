//! JSON Web Key Sets as the service publishes them.

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

use crate::{KeyMaterial, VerifyError};

/// A JWK Set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One public key of a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `EC` or `OKP` (others are ignored).
    pub kty: String,
    /// `P-256` or `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm, when stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use, `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Permitted operations; a key listing them without `verify` is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// x coordinate (EC) or public key (OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

fn coord<const N: usize>(v: Option<&String>, what: &str) -> Result<[u8; N], VerifyError> {
    let v = v.ok_or_else(|| VerifyError::BadKey(format!("{what} missing")))?;
    let bytes = BASE64URL_NOPAD
        .decode(v.as_bytes())
        .map_err(|_| VerifyError::BadKey(format!("{what} is not base64url")))?;
    bytes
        .try_into()
        .map_err(|_| VerifyError::BadKey(format!("{what} has the wrong length")))
}

impl Jwk {
    /// The key's material if it is an ES256 or EdDSA key; `None` for other types.
    pub(crate) fn to_material(&self) -> Result<Option<(String, KeyMaterial)>, VerifyError> {
        let Some(kid) = self.kid.clone() else {
            return Ok(None);
        };
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        if self
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
        {
            return Ok(None);
        }
        let material = match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) if self.alg.as_deref().is_none_or(|a| a == "ES256") => {
                let x: [u8; 32] = coord(self.x.as_ref(), "x")?;
                let y: [u8; 32] = coord(self.y.as_ref(), "y")?;
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Es256(point)
            }
            ("OKP", Some("Ed25519")) if self.alg.as_deref().is_none_or(|a| a == "EdDSA") => {
                let x: [u8; 32] = coord(self.x.as_ref(), "x")?;
                KeyMaterial::EdDsa(x.to_vec())
            }
            _ => return Ok(None),
        };
        Ok(Some((kid, material)))
    }
}

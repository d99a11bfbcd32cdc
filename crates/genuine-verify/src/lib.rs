//! Strict offline verification of Genuine tokens.
//!
//! A [`Verifier`] is built from the service's published JWKS (ES256 and EdDSA
//! keys) or from an HS256 secret, plus [`Expectations`] (issuer, audience,
//! leeway). [`Verifier::verify`] takes the token and the current time and
//! returns the [`Claims`] or a [`VerifyError`] naming the failed check.
//!
//! It is stricter than general JWT libraries: the algorithm comes from the key
//! that `kid` selects and the header's `alg` must equal it; `alg: none`,
//! `crit`, and keys offered in the header (`jku`, `x5u`, `jwk`, `x5c`) are
//! refused; base64url must be canonical; `exp`, `nbf`, `iat` must be integers;
//! tokens over 8 KiB are refused; HMAC tags are compared in constant time.
//!
//! # Example
//!
//! ```
//! use genuine_verify::{Expectations, Verifier};
//!
//! let secret = [7u8; 32];
//! let verifier = Verifier::from_hs256_secret("k1", &secret, Expectations {
//!     issuer: "https://genuine.example.com/v1/accounts/default".into(),
//!     audiences: vec!["api.example.com".into()],
//!     leeway_secs: 0,
//! })?;
//! // A token minted elsewhere; this one is not valid for the verifier.
//! let err = verifier.verify("e30.e30.AAAA", 1_700_000_000).unwrap_err();
//! assert_eq!(err.to_string(), "token header is invalid");
//! # Ok::<(), genuine_verify::VerifyError>(())
//! ```

#![forbid(unsafe_code)]

mod b64;
mod cache;
mod claims;
mod jwks;
#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "remote")]
pub mod remote;

pub use jwks::{Jwk, Jwks};

use std::sync::Arc;

use data_encoding::BASE64URL_NOPAD;
use ring::{hmac, signature};
use serde::Deserialize;

/// Clock skew always allowed on `iat` (seconds), whatever the leeway: a
/// token issued "in the future" by less than this is a clock difference
/// between the service and the backend, not an attack.
pub const IAT_SKEW_SECS: i64 = 60;

/// Largest accepted token, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A signing algorithm this verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256, fixed-size signature.
    Es256,
    /// Ed25519.
    EdDsa,
    /// HMAC-SHA256.
    Hs256,
}

impl Algorithm {
    /// The JOSE name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    /// Parses a JOSE name; only the three supported ones.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }
}

/// What a token must show besides a good signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (the token's audience must be one of them).
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds (0 by default).
    pub leeway_secs: u64,
}

enum KeyMaterial {
    Es256(Vec<u8>),
    EdDsa(Vec<u8>),
    Hs256(hmac::Key),
}

struct KeyRecord {
    kid: String,
    material: KeyMaterial,
    /// The header segment the service mints for this key,
    /// `b64url({"alg":…,"typ":"JWT","kid":…})`: a token carrying exactly it
    /// needs no header decoding or parsing (same decision, less work).
    minted_header: String,
}

impl KeyRecord {
    fn new(kid: String, material: KeyMaterial) -> Self {
        #[derive(serde::Serialize)]
        struct Minted<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let alg = match material {
            KeyMaterial::Es256(_) => Algorithm::Es256,
            KeyMaterial::EdDsa(_) => Algorithm::EdDsa,
            KeyMaterial::Hs256(_) => Algorithm::Hs256,
        };
        let minted = Minted {
            alg: alg.as_str(),
            typ: "JWT",
            kid: &kid,
        };
        let minted_header = serde_json::to_vec(&minted)
            .map(|h| BASE64URL_NOPAD.encode(&h))
            .unwrap_or_default();
        Self {
            kid,
            material,
            minted_header,
        }
    }
}

impl KeyRecord {
    fn alg(&self) -> Algorithm {
        match self.material {
            KeyMaterial::Es256(_) => Algorithm::Es256,
            KeyMaterial::EdDsa(_) => Algorithm::EdDsa,
            KeyMaterial::Hs256(_) => Algorithm::Hs256,
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Es256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::EdDsa(pk) => signature::UnparsedPublicKey::new(&signature::ED25519, pk)
                .verify(message, sig)
                .is_ok(),
            // ring compares the tags in constant time.
            KeyMaterial::Hs256(key) => hmac::verify(key, message, sig).is_ok(),
        }
    }
}

/// The claims of a Genuine token.
///
/// Parsed strictly (see [`claims`]): duplicate member names are refused at any
/// depth, also inside claims this type does not keep.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Claims {
    /// Issuer: the service's URL for the account.
    pub iss: String,
    /// Audience: the API domain.
    pub aud: String,
    /// Subject: the app id.
    pub sub: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: Option<i64>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Not before, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token id.
    pub jti: Option<String>,
    /// Device id.
    pub did: Option<String>,
    /// Attestation response code (opaque).
    pub arc: Option<String>,
    /// Binding: `b64url(SHA-256(bound data))`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay: Option<String>,
    /// Client address, when the policy asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl Claims {
    /// Whether the claim `name` is present.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        match name {
            "iss" | "aud" | "exp" => true,
            "sub" => self.sub.is_some(),
            "iat" => self.iat.is_some(),
            "nbf" => self.nbf.is_some(),
            "jti" => self.jti.is_some(),
            "did" => self.did.is_some(),
            "arc" => self.arc.is_some(),
            "pay" => self.pay.is_some(),
            "ip" => self.ip.is_some(),
            _ => false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Why a token was refused: one variant per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is over [`MAX_TOKEN_LEN`].
    #[error("token is larger than 8 KiB")]
    TooLarge,
    /// Not three dot-separated parts.
    #[error("token is not a compact JWS")]
    NotCompact,
    /// A part is not canonical unpadded base64url.
    #[error("token {0} is not canonical base64url")]
    BadBase64(&'static str),
    /// The header is not JSON, has a duplicate or unknown member (`crit`,
    /// `jku`, `x5u`, `jwk`, `x5c`, …), or a member of the wrong type.
    #[error("token header is invalid")]
    BadHeader,
    /// `alg` is not ES256, EdDSA or HS256 (refuses `none`).
    #[error("token alg is not supported")]
    UnsupportedAlg,
    /// No key with the token's `kid` (or no `kid` with several keys).
    #[error("token kid names no known key")]
    UnknownKey,
    /// The header names no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// The header's `alg` differs from the selected key's.
    #[error("token alg does not match its key")]
    AlgMismatch,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// The claims are not JSON of the right shape (names the problem).
    #[error("token claims are invalid: {0}")]
    BadClaims(String),
    /// `exp` has passed (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not yet valid")]
    NotYetValid,
    /// `iat` is in the future by more than the leeway and [`IAT_SKEW_SECS`].
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `exp - iat` exceeds the configured maximum lifetime.
    #[error("token lifetime is longer than allowed")]
    LifetimeTooLong,
    /// `iss` differs from the expected issuer.
    #[error("token issuer is not the expected one")]
    WrongIssuer,
    /// `aud` is none of the expected audiences.
    #[error("token audience is not an expected one")]
    WrongAudience,
    /// Binding is required and the token has no `pay`.
    #[error("token has no binding (pay) but one is required")]
    BindingMissing,
    /// `pay` does not equal the hash of the request data.
    #[error("token binding does not match the request")]
    BindingMismatch,
    /// The header `typ` is not the expected one.
    #[error("token typ is not the expected one")]
    WrongType,
    /// A required claim is absent (names it).
    #[error("token lacks the required claim {0}")]
    MissingClaim(String),
    /// A key could not be loaded (names the problem).
    #[error("key is not usable: {0}")]
    BadKey(String),
}

/// A verifier for tokens of one issuer.
pub struct Verifier {
    keys: Vec<KeyRecord>,
    expect: Expectations,
    required: Vec<String>,
    typ: Option<String>,
    max_lifetime: Option<i64>,
    cache: Option<cache::TokenCache>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("expect", &self.expect)
            .finish()
    }
}

impl Verifier {
    /// A verifier from a published JWKS. Keys of other types are ignored.
    ///
    /// # Errors
    /// [`VerifyError::BadKey`] if a supported key is malformed.
    pub fn from_jwks(jwks: &Jwks, expect: Expectations) -> Result<Self, VerifyError> {
        let mut keys: Vec<KeyRecord> = Vec::new();
        for jwk in &jwks.keys {
            if let Some((kid, material)) = jwk.to_material()? {
                if keys.iter().any(|k| k.kid == kid) {
                    return Err(VerifyError::BadKey(format!("duplicate kid {kid:?}")));
                }
                keys.push(KeyRecord::new(kid, material));
            }
        }
        Ok(Self::with_keys(keys, expect))
    }

    /// A verifier from an HS256 secret and its `kid`.
    ///
    /// # Errors
    /// [`VerifyError::BadKey`] if the secret is shorter than 32 bytes.
    pub fn from_hs256_secret(
        kid: &str,
        secret: &[u8],
        expect: Expectations,
    ) -> Result<Self, VerifyError> {
        if secret.len() < 32 {
            return Err(VerifyError::BadKey(
                "HS256 secret shorter than 32 bytes".into(),
            ));
        }
        let keys = vec![KeyRecord::new(
            kid.to_owned(),
            KeyMaterial::Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret)),
        )];
        Ok(Self::with_keys(keys, expect))
    }

    fn with_keys(keys: Vec<KeyRecord>, expect: Expectations) -> Self {
        Self {
            keys,
            expect,
            required: Vec::new(),
            typ: None,
            max_lifetime: None,
            cache: None,
        }
    }

    /// Claims that must be present besides `iss`, `aud` and `exp`, e.g.
    /// `["sub", "did", "jti", "iat"]`. Names other than the Genuine claims
    /// (`sub iat nbf jti did arc pay ip`) can never be present and so refuse
    /// every token.
    #[must_use]
    pub fn require_claims(mut self, names: &[&str]) -> Self {
        self.required = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// The header `typ` every token must carry (e.g. `JWT`).
    #[must_use]
    pub fn expect_typ(mut self, typ: &str) -> Self {
        self.typ = Some(typ.to_owned());
        self
    }

    /// Refuses tokens whose lifetime `exp - iat` exceeds `secs` (and tokens
    /// without `iat`). Genuine tokens live the API's TTL, 300 s by default.
    #[must_use]
    pub fn max_lifetime(mut self, secs: u64) -> Self {
        self.max_lifetime = Some(i64::try_from(secs).unwrap_or(i64::MAX));
        self
    }

    /// Keeps up to `capacity` verified tokens: a token seen again costs a
    /// lookup and the `exp` check instead of a signature verification.
    #[must_use]
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(cache::TokenCache::new(capacity));
        self
    }

    /// Verifies a token at `now` (Unix seconds) and returns its claims.
    ///
    /// # Errors
    /// [`VerifyError`] naming the first failed check.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        if self.cache.is_none() {
            let leeway = i64::try_from(self.expect.leeway_secs).unwrap_or(i64::MAX);
            return self.verify_uncached(token, now, leeway);
        }
        self.verify_shared(token, now).map(Arc::unwrap_or_clone)
    }

    /// [`Verifier::verify`] returning shared claims (no copy on a cache hit).
    ///
    /// # Errors
    /// [`VerifyError`] naming the first failed check.
    pub fn verify_shared(&self, token: &str, now: i64) -> Result<Arc<Claims>, VerifyError> {
        let leeway = i64::try_from(self.expect.leeway_secs).unwrap_or(i64::MAX);
        if let Some(cache) = &self.cache
            && let Some(claims) = cache.get(token)
        {
            if now >= claims.exp.saturating_add(leeway) {
                cache.remove(token);
                return Err(VerifyError::Expired);
            }
            if let Some(nbf) = claims.nbf
                && now.saturating_add(leeway) < nbf
            {
                return Err(VerifyError::NotYetValid);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_uncached(token, now, leeway)?);
        if let Some(cache) = &self.cache {
            cache.insert(token, claims.clone(), now, leeway);
        }
        Ok(claims)
    }

    /// Decodes and checks a header other than the minted one; returns the key
    /// its `kid` selects and whether its `typ` is the expected one.
    fn parse_header(&self, h: &str) -> Result<(&KeyRecord, bool), VerifyError> {
        let header = decode(h, "header")?;
        let header = json_text(&header).ok_or(VerifyError::BadHeader)?;
        let header: Header = serde_json::from_str(header).map_err(|_| VerifyError::BadHeader)?;
        let alg = Algorithm::from_name(&header.alg).ok_or(VerifyError::UnsupportedAlg)?;
        // Genuine always names the key: a token without `kid` is refused even
        // when the verifier holds a single key.
        let kid = header.kid.as_ref().ok_or(VerifyError::MissingKid)?;
        let key = self
            .keys
            .iter()
            .find(|k| &k.kid == kid)
            .ok_or(VerifyError::UnknownKey)?;
        if key.alg() != alg {
            return Err(VerifyError::AlgMismatch);
        }
        let typ_ok = self
            .typ
            .as_ref()
            .is_none_or(|want| header.typ.as_ref() == Some(want));
        Ok((key, typ_ok))
    }

    /// The header, payload and signature parts of a compact JWS, as
    /// `token.split('.')` gives them, except that a dot in the payload is left
    /// for the caller to find (the payload's decoding refuses it); and the key
    /// whose minted header the token starts with, if any. The header ends
    /// right after a minted header (no scan), else at the first dot; the
    /// signature starts after the last dot.
    fn split<'t>(
        &self,
        token: &'t str,
    ) -> Result<(Option<&KeyRecord>, &'t str, &'t str, &'t str), VerifyError> {
        let bytes = token.as_bytes();
        let minted = self.keys.iter().find(|k| {
            let m = k.minted_header.as_bytes();
            !m.is_empty() && bytes.get(m.len()) == Some(&b'.') && bytes.starts_with(m)
        });
        let h_end = match minted {
            Some(key) => key.minted_header.len(),
            None => token.find('.').ok_or(VerifyError::NotCompact)?,
        };
        let s_dot = token.rfind('.').ok_or(VerifyError::NotCompact)?;
        if s_dot == h_end {
            return Err(VerifyError::NotCompact);
        }
        match (
            token.get(..h_end),
            token.get(h_end + 1..s_dot),
            token.get(s_dot + 1..),
        ) {
            (Some(h), Some(p), Some(s)) => Ok((minted, h, p, s)),
            _ => Err(VerifyError::NotCompact),
        }
    }

    fn verify_uncached(&self, token: &str, now: i64, leeway: i64) -> Result<Claims, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::TooLarge);
        }
        let (minted, h, p, s) = self.split(token)?;
        // The payload is decoded first, so that a dot in it (a fourth part)
        // is refused as NotCompact before anything else, as a split would;
        // any other base64 fault in it is reported where it always was, after
        // the signature. A usual payload is decoded on the stack (zeroing
        // 1 KiB costs less than an allocation; a token-sized buffer, more).
        let mut payload_buf = [0u8; PAYLOAD_STACK_LEN];
        let mut payload_heap = Vec::new();
        let payload = decode_payload(p, &mut payload_buf, &mut payload_heap);
        if payload.is_none() && p.contains('.') {
            return Err(VerifyError::NotCompact);
        }
        let (key, typ_ok) = match minted {
            // The exact header the service mints for this key: its alg, typ
            // "JWT", nothing else.
            Some(key) => (key, self.typ.as_deref().is_none_or(|t| t == "JWT")),
            None => self.parse_header(h)?,
        };
        // The signature (at most 64 bytes) is decoded on the stack.
        let mut sig_buf = [0u8; 128];
        let sig = decode_signature(s, &mut sig_buf)?;
        let signing_input = token
            .as_bytes()
            .get(..h.len() + 1 + p.len())
            .ok_or(VerifyError::NotCompact)?;
        if !key.verify(signing_input, sig) {
            return Err(VerifyError::BadSignature);
        }
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        let claims = payload.ok_or(VerifyError::BadBase64("payload"))?;
        let claims =
            std::str::from_utf8(claims).map_err(|_| VerifyError::BadClaims("not UTF-8".into()))?;
        // Claims in the compact form JWT libraries write are read directly;
        // any other text goes to the strict parser, which refuses duplicate
        // members and nesting deeper than claims::MAX_DEPTH in the same pass.
        let claims: Claims = match claims::parse_compact(claims) {
            Some(claims) => claims,
            None => {
                serde_json::from_str(claims).map_err(|e| VerifyError::BadClaims(e.to_string()))?
            }
        };
        if let Some(missing) = self.required.iter().find(|n| !claims.has(n)) {
            return Err(VerifyError::MissingClaim(missing.clone()));
        }
        if now >= claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        // A backend's clock may trail the service's a little: leeway 0 must
        // not refuse fresh tokens, so `iat` gets at least IAT_SKEW_SECS.
        if let Some(iat) = claims.iat
            && iat > now.saturating_add(leeway.max(IAT_SKEW_SECS))
        {
            return Err(VerifyError::IssuedInFuture);
        }
        if let Some(max) = self.max_lifetime {
            let iat = claims
                .iat
                .ok_or_else(|| VerifyError::MissingClaim("iat".into()))?;
            if claims.exp.saturating_sub(iat) > max {
                return Err(VerifyError::LifetimeTooLong);
            }
        }
        if let Some(nbf) = claims.nbf
            && now.saturating_add(leeway) < nbf
        {
            return Err(VerifyError::NotYetValid);
        }
        if claims.iss != self.expect.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !self.expect.audiences.iter().any(|a| a == &claims.aud) {
            return Err(VerifyError::WrongAudience);
        }
        Ok(claims)
    }

    /// Checks a verified token's binding against the request data it is bound to.
    ///
    /// # Errors
    /// [`VerifyError::BindingMissing`] or [`VerifyError::BindingMismatch`].
    pub fn check_binding(claims: &Claims, bound_data: &[u8]) -> Result<(), VerifyError> {
        let pay = claims.pay.as_deref().ok_or(VerifyError::BindingMissing)?;
        let expected = ring::digest::digest(&ring::digest::SHA256, bound_data);
        let expected = BASE64URL_NOPAD.encode(expected.as_ref());
        let same = pay.len() == expected.len()
            && pay
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(VerifyError::BindingMismatch)
        }
    }
}

/// Deepest JSON nesting accepted in a header (objects and arrays), as in the
/// claims.
const MAX_DEPTH: usize = claims::MAX_DEPTH;

/// Decoded payloads up to this size are decoded on the stack.
const PAYLOAD_STACK_LEN: usize = 1024;

/// The bytes as JSON text if they are UTF-8 and nest no deeper than
/// [`MAX_DEPTH`] (the header; the claims parser checks its depth itself).
/// serde skips unknown members without looking inside them, so both are
/// checked here, over the whole document, before parsing.
fn json_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    // At most MAX_DEPTH openers anywhere cannot nest deeper: skip the scan.
    if bytecount_openers(bytes) <= MAX_DEPTH {
        return Some(text);
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(text)
}

fn bytecount_openers(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| matches!(b, b'{' | b'[')).count()
}

/// The signature, strict base64url, into `buf`. A signature that cannot fit
/// is no signature of a supported algorithm (at most 64 bytes): refused as a
/// bad signature.
fn decode_signature<'a>(part: &str, buf: &'a mut [u8]) -> Result<&'a [u8], VerifyError> {
    let len = b64::decoded_len(part.len()).ok_or(VerifyError::BadBase64("signature"))?;
    if len > buf.len() {
        return Err(VerifyError::BadSignature);
    }
    b64::decode(part.as_bytes(), buf).ok_or(VerifyError::BadBase64("signature"))
}

/// The payload, strict base64url, into `buf`, or into `heap` if it does not
/// fit there; `None` if it is not canonical base64url.
fn decode_payload<'a>(part: &str, buf: &'a mut [u8], heap: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let len = b64::decoded_len(part.len())?;
    if len > buf.len() {
        heap.resize(len, 0);
        return b64::decode(part.as_bytes(), heap);
    }
    b64::decode(part.as_bytes(), buf)
}

fn decode(part: &str, name: &'static str) -> Result<Vec<u8>, VerifyError> {
    BASE64URL_NOPAD
        .decode(part.as_bytes())
        .map_err(|_| VerifyError::BadBase64(name))
}

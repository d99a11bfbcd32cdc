//! Byte values as operators write them: `hex:…`, `b64:…` (standard or
//! url-safe alphabet, padding optional) or `utf8:…`.

/// Bytes given as `hex:…`, `b64:…` or `utf8:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(Vec<u8>);

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// No `hex:`, `b64:` or `utf8:` prefix.
    #[error("a value starts with hex:, b64: or utf8:")]
    NoPrefix,
    /// The hex digits are invalid.
    #[error("invalid hex after hex:")]
    Hex,
    /// The base64 text is invalid.
    #[error("invalid base64 after b64:")]
    Base64,
}

impl Value {
    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Decodes base64 in the standard or the url-safe alphabet, with or without
/// padding (App Attest objects and keys come in every variant).
///
/// # Errors
/// [`ValueError::Base64`].
pub fn decode_base64_any(text: &str) -> Result<Vec<u8>, ValueError> {
    let trimmed = text.trim().trim_end_matches('=');
    let spec = if trimmed.contains(['-', '_']) {
        &data_encoding::BASE64URL_NOPAD
    } else {
        &data_encoding::BASE64_NOPAD
    };
    spec.decode(trimmed.as_bytes())
        .map_err(|_| ValueError::Base64)
}

impl std::str::FromStr for Value {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(h) = s.strip_prefix("hex:") {
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(h.as_bytes())
                .map(Self)
                .map_err(|_| ValueError::Hex)
        } else if let Some(b) = s.strip_prefix("b64:") {
            decode_base64_any(b).map(Self)
        } else if let Some(u) = s.strip_prefix("utf8:") {
            Ok(Self(u.as_bytes().to_vec()))
        } else {
            Err(ValueError::NoPrefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form() {
        assert_eq!("hex:0aFF".parse::<Value>().unwrap().bytes(), &[10, 255]);
        assert_eq!("utf8:hé".parse::<Value>().unwrap().bytes(), "hé".as_bytes());
        for b in ["b64:+/8=", "b64:+/8", "b64:-_8", "b64:-_8="] {
            assert_eq!(b.parse::<Value>().unwrap().bytes(), &[0xfb, 0xff], "{b}");
        }
        assert_eq!("x:1".parse::<Value>(), Err(ValueError::NoPrefix));
        assert_eq!("hex:0".parse::<Value>(), Err(ValueError::Hex));
        assert_eq!("b64:!!".parse::<Value>(), Err(ValueError::Base64));
    }
}

//! Strict base64url (RFC 4648 §5, no padding) as used everywhere in the protocol.
//!
//! Decoding refuses padding, characters outside the URL-safe alphabet and
//! non-canonical encodings (non-zero trailing bits), so one byte string has
//! exactly one accepted text form.

use data_encoding::BASE64URL_NOPAD;

/// Encodes bytes as base64url without padding.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// Decodes strict, canonical base64url without padding.
///
/// # Errors
/// [`Base64Error`] when the text is not canonical unpadded base64url.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    BASE64URL_NOPAD
        .decode(text.as_bytes())
        .map_err(|_| Base64Error)
}

/// Decodes strict base64url into exactly `N` bytes.
///
/// # Errors
/// [`Base64Error`] when the text is not canonical base64url or has another length.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], Base64Error> {
    let bytes = decode(text)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| Base64Error)
}

/// The text was not canonical unpadded base64url (or not of the expected length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not canonical unpadded base64url of the expected length")]
pub struct Base64Error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(encode(b"\xff\xfe"), "__4");
        assert_eq!(decode("__4").unwrap(), b"\xff\xfe");
        assert!(decode("__4=").is_err(), "padding refused");
        assert!(decode("__5").is_err(), "non-zero trailing bits refused");
        assert!(decode("+/4").is_err(), "standard alphabet refused");
        assert!(decode_array::<3>("__4").is_err(), "wrong length refused");
    }
}

//! Google's attestation certificate status list.
//!
//! Google publishes it at <https://android.googleapis.com/attestation/status>
//! ([`GOOGLE_STATUS_URL`]) as `{"entries": {"<serial hex>": {"status":
//! "REVOKED" | "SUSPENDED", "reason": "KEY_COMPROMISE" | …, "comment"?,
//! "expires"?}}}`. This module only parses it: fetching and caching belong
//! to the caller (the CLI reads a file; a server refreshes it on a timer),
//! which keeps the verifier pure.
//!
//! A certificate whose serial is listed is refused whatever its status:
//! Google's sample verifier (google/android-key-attestation) refuses REVOKED
//! and SUSPENDED alike, and an unknown status is treated the same way
//! (fail closed).

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where Google publishes the status list.
pub const GOOGLE_STATUS_URL: &str = "https://android.googleapis.com/attestation/status";

/// A listed certificate's status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationStatus {
    /// `REVOKED`.
    Revoked,
    /// `SUSPENDED` (may be lifted later; refused meanwhile).
    Suspended,
    /// Another status string (refused too).
    Other(String),
}

impl RevocationStatus {
    /// `REVOKED`, `SUSPENDED` or the string found.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Revoked => "REVOKED",
            Self::Suspended => "SUSPENDED",
            Self::Other(s) => s,
        }
    }
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationEntry {
    /// `status`.
    pub status: RevocationStatus,
    /// `reason` (`KEY_COMPROMISE`, `CA_COMPROMISE`, `SUPERSEDED`,
    /// `SOFTWARE_FLAW`, `UNSPECIFIED`), if given.
    pub reason: Option<String>,
    /// `comment`, if given.
    pub comment: Option<String>,
    /// `expires`, if given (as written).
    pub expires: Option<String>,
}

/// Why a status list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationListError {
    /// Not JSON of the expected shape (`entries` object of objects with a
    /// string `status`).
    #[error("not a status list: {0}")]
    Json(String),
    /// A key of `entries` that is not a hexadecimal serial number.
    #[error("entry {0:?} is not a hexadecimal serial number")]
    Serial(String),
}

impl RevocationListError {
    /// A stable kebab-case name.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Json(_) => "revocation-list-malformed",
            Self::Serial(_) => "revocation-list-serial",
        }
    }
}

/// A parsed status list: serial (lowercase hex, no leading zeros) → entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationList {
    entries: BTreeMap<String, RevocationEntry>,
}

#[derive(Deserialize)]
struct Wire {
    entries: BTreeMap<String, WireEntry>,
}

#[derive(Deserialize)]
struct WireEntry {
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    expires: Option<String>,
}

impl RevocationList {
    /// Parses Google's JSON status list. Serial keys are compared case-
    /// insensitively and without leading zeros (Google writes
    /// `BigInteger.toString(16)`: lowercase, none).
    ///
    /// # Errors
    /// [`RevocationListError`]: the list is unusable as a whole (a verifier
    /// must then fail closed, not skip the check).
    pub fn from_json(json: &[u8]) -> Result<Self, RevocationListError> {
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(RevocationListError::Json("not a JSON object".to_owned()));
        }
        let wire: Wire =
            serde_json::from_slice(json).map_err(|e| RevocationListError::Json(e.to_string()))?;
        let mut entries = BTreeMap::new();
        for (key, e) in wire.entries {
            let serial = normalize(&key).ok_or_else(|| RevocationListError::Serial(key.clone()))?;
            let status = match e.status.as_str() {
                "REVOKED" => RevocationStatus::Revoked,
                "SUSPENDED" => RevocationStatus::Suspended,
                _ => RevocationStatus::Other(e.status),
            };
            entries.insert(
                serial,
                RevocationEntry {
                    status,
                    reason: e.reason,
                    comment: e.comment,
                    expires: e.expires,
                },
            );
        }
        Ok(Self { entries })
    }

    /// The number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of a serial given as hex (any case, leading zeros allowed).
    #[must_use]
    pub fn get(&self, serial_hex: &str) -> Option<&RevocationEntry> {
        self.entries.get(&normalize(serial_hex)?)
    }

    /// The entry of a certificate serial given as its DER INTEGER contents.
    #[must_use]
    pub fn get_serial(&self, serial: &[u8]) -> Option<&RevocationEntry> {
        self.entries.get(&serial_hex(serial))
    }

    /// The listed serials and their entries, in serial order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RevocationEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Lowercase hex without leading zeros (`"0"` for zero); `None` when not hex.
fn normalize(hex: &str) -> Option<String> {
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = hex.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_ascii_lowercase()
    })
}

/// A DER INTEGER's contents (a certificate serial) as Google names it:
/// `BigInteger.toString(16)`, lowercase, no leading zeros, `-` before the
/// magnitude of a negative value.
#[must_use]
pub fn serial_hex(serial: &[u8]) -> String {
    let negative = serial.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut m: Vec<u8> = serial.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        serial.to_vec()
    };
    let hex = data_encoding::HEXLOWER.encode(&magnitude);
    let trimmed = hex.trim_start_matches('0');
    let digits = if trimmed.is_empty() { "0" } else { trimmed };
    if negative {
        format!("-{digits}")
    } else {
        digits.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_as_google_writes_them() {
        assert_eq!(serial_hex(&[0x00, 0xcc, 0x66]), "cc66");
        assert_eq!(serial_hex(&[0x10, 0x01]), "1001");
        assert_eq!(serial_hex(&[0x01]), "1");
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[0xff]), "-1");
        assert_eq!(serial_hex(&[0x80]), "-80");
        assert_eq!(serial_hex(&[0xfe, 0xff]), "-101");
        assert_eq!(normalize("00ABc").as_deref(), Some("abc"));
        assert_eq!(normalize("000").as_deref(), Some("0"));
        assert_eq!(normalize("-1"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn shapes() {
        let l = RevocationList::from_json(
            br#"{"entries": {"0A": {"status": "REVOKED", "reason": "KEY_COMPROMISE"},
                 "b": {"status": "SUSPENDED"}, "c": {"status": "LATER", "x": 1}}}"#,
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l.get("a").unwrap().status, RevocationStatus::Revoked);
        assert_eq!(
            l.get_serial(&[0x0b]).unwrap().status,
            RevocationStatus::Suspended
        );
        assert_eq!(
            l.get("C").unwrap().status,
            RevocationStatus::Other("LATER".into())
        );
        assert!(l.get("d").is_none());
        for bad in [
            &b"[]"[..],
            b"{}",
            b"{\"entries\": []}",
            b"{\"entries\": {\"a\": {}}}",
            b"{\"entries\": {\"a\": {\"status\": 1}}}",
            b"not json",
        ] {
            assert!(
                matches!(
                    RevocationList::from_json(bad),
                    Err(RevocationListError::Json(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            RevocationList::from_json(br#"{"entries": {"xyz": {"status": "REVOKED"}}}"#),
            Err(RevocationListError::Serial("xyz".into()))
        );
        assert!(
            RevocationList::from_json(br#"{"entries": {}}"#)
                .unwrap()
                .is_empty()
        );
    }
}

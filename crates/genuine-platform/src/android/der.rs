//! A small DER reader for the KeyDescription extension.
//!
//! Hand-written on purpose (the certificate itself is parsed by
//! `x509-parser`): the KeyDescription needs high tag numbers (up to 724), the
//! exact DER rules below, and two named departures from DER that Google's
//! verifier accepts and that must be *reported*, not silently absorbed
//! (AuthorizationList tags out of ascending order, SET OF elements out of DER
//! order; see [`super::Leniency`]). A generic decoder would either refuse
//! those or hide them. Every rule this reader enforces is spelled out here:
//!
//! - identifier: the low-tag form for tag numbers below 31, otherwise the
//!   high-tag form with no leading 0x80 byte and at most 4 subsequent bytes;
//! - length: definite only (no BER indefinite form), the shortest form, at
//!   most 4 length bytes, within the input;
//! - INTEGER and ENUMERATED: non-empty, minimal two's complement, fitting
//!   an `i64`;
//! - BOOLEAN: one byte, 0x00 or 0xFF (others only with
//!   `Leniency::nonzero_boolean_true`);
//! - primitive types in primitive form, SEQUENCE and SET in constructed form.
//!
//! No recursion on input: the KeyDescription grammar has a fixed depth.

/// The class of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Universal,
    Application,
    Context,
    Private,
}

/// One DER element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub(crate) class: Class,
    pub(crate) constructed: bool,
    pub(crate) tag: u32,
    /// The contents octets.
    pub(crate) contents: &'a [u8],
    /// The whole element (identifier, length and contents).
    pub(crate) whole: &'a [u8],
}

pub(crate) const BOOLEAN: u32 = 1;
pub(crate) const INTEGER: u32 = 2;
pub(crate) const OCTET_STRING: u32 = 4;
pub(crate) const NULL: u32 = 5;
pub(crate) const ENUMERATED: u32 = 10;
pub(crate) const SEQUENCE: u32 = 16;
pub(crate) const SET: u32 = 17;

/// Why the bytes are not the DER this reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DerError {
    /// Truncated, or an identifier or length outside the rules above.
    Malformed,
    /// A well-formed element of another type than expected.
    UnexpectedType,
    /// An INTEGER or ENUMERATED outside `i64`.
    IntegerRange,
    /// A BOOLEAN other than 0x00 or 0xFF (when not allowed).
    Boolean,
    /// Bytes after the element that should end the input.
    Trailing,
}

/// Reads one element; returns it and what follows.
pub(crate) fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (&first, mut rest) = input.split_first().ok_or(DerError::Malformed)?;
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    let constructed = first & 0x20 != 0;
    let mut tag = u32::from(first & 0x1f);
    if tag == 0x1f {
        tag = 0;
        let mut count = 0;
        loop {
            let (&b, r) = rest.split_first().ok_or(DerError::Malformed)?;
            rest = r;
            // Minimal: no leading 0x80; at most 4 bytes (28 bits).
            if (count == 0 && b == 0x80) || count == 4 {
                return Err(DerError::Malformed);
            }
            count += 1;
            tag = (tag << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        if tag < 0x1f {
            return Err(DerError::Malformed);
        }
    }
    let (&l, r) = rest.split_first().ok_or(DerError::Malformed)?;
    rest = r;
    let len = match l {
        0..=0x7f => usize::from(l),
        0x81..=0x84 => {
            let n = usize::from(l & 0x7f);
            let bytes = rest.get(..n).ok_or(DerError::Malformed)?;
            rest = rest.get(n..).ok_or(DerError::Malformed)?;
            if bytes.first() == Some(&0) {
                return Err(DerError::Malformed);
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(DerError::Malformed);
            }
            len
        }
        // 0x80: indefinite (BER); 0x85..: longer than any input here.
        _ => return Err(DerError::Malformed),
    };
    let contents = rest.get(..len).ok_or(DerError::Malformed)?;
    let after = rest.get(len..).ok_or(DerError::Malformed)?;
    let whole = input
        .get(..input.len() - after.len())
        .ok_or(DerError::Malformed)?;
    Ok((
        Tlv {
            class,
            constructed,
            tag,
            contents,
            whole,
        },
        after,
    ))
}

/// Reads one element that must span all of `input`.
pub(crate) fn read_all(input: &[u8]) -> Result<Tlv<'_>, DerError> {
    let (tlv, rest) = read(input)?;
    if rest.is_empty() {
        Ok(tlv)
    } else {
        Err(DerError::Trailing)
    }
}

/// The elements of a constructed element's contents, in order.
pub(crate) fn elements(mut contents: &[u8]) -> Result<Vec<Tlv<'_>>, DerError> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (tlv, rest) = read(contents)?;
        out.push(tlv);
        contents = rest;
    }
    Ok(out)
}

impl<'a> Tlv<'a> {
    fn universal(&self, tag: u32, constructed: bool) -> Result<&'a [u8], DerError> {
        if self.class == Class::Universal && self.tag == tag && self.constructed == constructed {
            Ok(self.contents)
        } else {
            Err(DerError::UnexpectedType)
        }
    }

    /// The elements of a SEQUENCE.
    pub(crate) fn sequence(&self) -> Result<Vec<Tlv<'a>>, DerError> {
        elements(self.universal(SEQUENCE, true)?)
    }

    /// The elements of a SET OF, and whether they are in DER order
    /// (ascending by their encodings).
    pub(crate) fn set(&self) -> Result<(Vec<Tlv<'a>>, bool), DerError> {
        let items = elements(self.universal(SET, true)?)?;
        let sorted = items.windows(2).all(|w| w[0].whole <= w[1].whole);
        Ok((items, sorted))
    }

    /// An OCTET STRING's bytes.
    pub(crate) fn octets(&self) -> Result<&'a [u8], DerError> {
        self.universal(OCTET_STRING, false)
    }

    /// An INTEGER.
    pub(crate) fn integer(&self) -> Result<i64, DerError> {
        int(self.universal(INTEGER, false)?)
    }

    /// An ENUMERATED.
    pub(crate) fn enumerated(&self) -> Result<i64, DerError> {
        int(self.universal(ENUMERATED, false)?)
    }

    /// A BOOLEAN: `(value, canonical)`; with `lenient`, any non-zero byte is
    /// TRUE (as BouncyCastle reads it) and `canonical` tells whether it was
    /// 0xFF.
    pub(crate) fn boolean(&self, lenient: bool) -> Result<(bool, bool), DerError> {
        match self.universal(BOOLEAN, false)? {
            [0x00] => Ok((false, true)),
            [0xff] => Ok((true, true)),
            [_] if lenient => Ok((true, false)),
            [_] => Err(DerError::Boolean),
            _ => Err(DerError::Malformed),
        }
    }

    /// A NULL.
    pub(crate) fn null(&self) -> Result<(), DerError> {
        match self.universal(NULL, false)? {
            [] => Ok(()),
            _ => Err(DerError::Malformed),
        }
    }
}

/// A DER INTEGER's contents as `i64`.
fn int(bytes: &[u8]) -> Result<i64, DerError> {
    let (&first, rest) = bytes.split_first().ok_or(DerError::Malformed)?;
    if let Some(&second) = rest.first()
        && ((first == 0x00 && second < 0x80) || (first == 0xff && second >= 0x80))
    {
        return Err(DerError::Malformed);
    }
    if bytes.len() > 8 {
        return Err(DerError::IntegerRange);
    }
    let init: i64 = if first >= 0x80 { -1 } else { 0 };
    Ok(bytes.iter().fold(init, |acc, b| (acc << 8) | i64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_lengths() {
        // [709] EXPLICIT, constructed, context: bf 85 45.
        let (t, rest) = read(&[0xbf, 0x85, 0x45, 0x02, 0x05, 0x00, 0xff]).unwrap();
        assert_eq!((t.class, t.constructed, t.tag), (Class::Context, true, 709));
        assert_eq!(t.contents, &[0x05, 0x00]);
        assert_eq!(rest, &[0xff]);
        // High form for a low tag number; leading 0x80; five tag bytes.
        assert!(read(&[0xbf, 0x1e, 0x00]).is_err());
        assert!(read(&[0xbf, 0x80, 0x05, 0x00]).is_err());
        assert!(read(&[0xbf, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00]).is_err());
        // Indefinite, non-minimal and overlong lengths; truncation.
        assert!(read(&[0x30, 0x80, 0x00, 0x00]).is_err());
        assert!(read(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).is_err());
        assert!(read(&[0x04, 0x82, 0x00, 0x80]).is_err());
        assert!(read(&[0x04, 0x85, 0, 0, 0, 0, 1, 0]).is_err());
        assert!(read(&[0x04, 0x03, 1, 2]).is_err());
        assert!(read(&[0x04]).is_err());
        assert!(read(&[]).is_err());
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend_from_slice(&[7; 0x80]);
        assert_eq!(read(&long).unwrap().0.contents.len(), 0x80);
        assert_eq!(
            read_all(&[0x05, 0x00, 0x00]).err(),
            Some(DerError::Trailing)
        );
    }

    #[test]
    fn integers() {
        let i = |b: &[u8]| {
            let mut v = vec![0x02, u8::try_from(b.len()).unwrap()];
            v.extend_from_slice(b);
            read_all(&v).unwrap().integer()
        };
        assert_eq!(i(&[0x00]), Ok(0));
        assert_eq!(i(&[0x7f]), Ok(127));
        assert_eq!(i(&[0x00, 0x80]), Ok(128));
        assert_eq!(i(&[0xff]), Ok(-1));
        assert_eq!(i(&[0x80]), Ok(-128));
        assert_eq!(i(&[0x03, 0x16, 0xa8]), Ok(202_408));
        assert_eq!(i(&[0x00, 0x7f]), Err(DerError::Malformed));
        assert_eq!(i(&[0xff, 0x80]), Err(DerError::Malformed));
        assert_eq!(i(&[]), Err(DerError::Malformed));
        assert_eq!(i(&[0x7f; 8]), Ok(0x7f7f_7f7f_7f7f_7f7f));
        assert_eq!(i(&[0x01; 9]), Err(DerError::IntegerRange));
        assert_eq!(i(&[0x80, 0, 0, 0, 0, 0, 0, 0]), Ok(i64::MIN));
        // An ENUMERATED is not an INTEGER.
        assert_eq!(
            read_all(&[0x0a, 0x01, 0x01]).unwrap().integer(),
            Err(DerError::UnexpectedType)
        );
    }

    #[test]
    fn booleans_and_sets() {
        let b = |v: u8, lenient| read_all(&[0x01, 0x01, v]).unwrap().boolean(lenient);
        assert_eq!(b(0xff, false), Ok((true, true)));
        assert_eq!(b(0x00, false), Ok((false, true)));
        assert_eq!(b(0x01, false), Err(DerError::Boolean));
        assert_eq!(b(0x01, true), Ok((true, false)));
        let set = read_all(&[0x31, 0x06, 0x02, 0x01, 0x03, 0x02, 0x01, 0x02]).unwrap();
        let (items, sorted) = set.set().unwrap();
        assert_eq!(items.len(), 2);
        assert!(!sorted);
        // A constructed OCTET STRING (BER) is refused.
        assert_eq!(
            read_all(&[0x24, 0x03, 0x04, 0x01, 0x00]).unwrap().octets(),
            Err(DerError::UnexpectedType)
        );
    }
}

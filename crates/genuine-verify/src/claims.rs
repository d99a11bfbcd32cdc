//! Strict parsing of [`Claims`]: every member name at most once, at any
//! depth, and no nesting deeper than [`MAX_DEPTH`].
//!
//! serde's derive refuses a duplicate of a field it knows but skips unknown
//! members unseen, so `{"exp":1,"x":1,"x":2}` would pass. This visitor keeps
//! the known claims, refuses duplicates among all members, and walks unknown
//! values with [`NoDuplicates`] instead of skipping them. Since every value is
//! walked, the depth limit is checked on the way, in the same pass. Member
//! names are compared where they lie in the input (copied only when an
//! unknown name has escapes). Genuine's own tokens have no unknown claims, so
//! the strictness costs them nothing.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::Claims;

/// Deepest JSON nesting accepted in the claims (objects and arrays; the
/// claims object itself is level 1).
pub(crate) const MAX_DEPTH: usize = 32;

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

fn once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, v: T) -> Result<(), E> {
    if slot.replace(v).is_some() {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}

/// A member name of the claims object: one of the claims [`Claims`] keeps,
/// or any other name (borrowed from the input when it has no escapes).
enum Member<'de> {
    Iss,
    Aud,
    Sub,
    Iat,
    Exp,
    Nbf,
    Jti,
    Did,
    Arc,
    Pay,
    Ip,
    Other(Cow<'de, str>),
}

impl Member<'_> {
    fn known(name: &str) -> Option<Self> {
        Some(match name {
            "iss" => Self::Iss,
            "aud" => Self::Aud,
            "sub" => Self::Sub,
            "iat" => Self::Iat,
            "exp" => Self::Exp,
            "nbf" => Self::Nbf,
            "jti" => Self::Jti,
            "did" => Self::Did,
            "arc" => Self::Arc,
            "pay" => Self::Pay,
            "ip" => Self::Ip,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl<'de> Visitor<'de> for MemberVisitor {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Member<'de>, E> {
                Ok(Member::known(v).unwrap_or(Member::Other(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Member<'de>, E> {
                Ok(Member::known(v).unwrap_or_else(|| Member::Other(Cow::Owned(v.to_owned()))))
            }
        }
        d.deserialize_str(MemberVisitor)
    }
}

/// A member name, borrowed from the input when it has no escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

fn too_deep<E: de::Error>() -> E {
    E::custom(format_args!("nested deeper than {MAX_DEPTH}"))
}

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let (mut iss, mut aud, mut sub, mut iat, mut exp, mut nbf) =
            (None, None, None, None, None, None);
        let (mut jti, mut did, mut arc, mut pay, mut ip) = (None, None, None, None, None);
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key::<Member<'de>>()? {
            match key {
                Member::Iss => once(&mut iss, "iss", map.next_value::<String>()?)?,
                Member::Aud => once(&mut aud, "aud", map.next_value::<String>()?)?,
                Member::Sub => once(&mut sub, "sub", map.next_value::<String>()?)?,
                Member::Iat => once(&mut iat, "iat", map.next_value::<i64>()?)?,
                Member::Exp => once(&mut exp, "exp", map.next_value::<i64>()?)?,
                Member::Nbf => once(&mut nbf, "nbf", map.next_value::<i64>()?)?,
                Member::Jti => once(&mut jti, "jti", map.next_value::<String>()?)?,
                Member::Did => once(&mut did, "did", map.next_value::<String>()?)?,
                Member::Arc => once(&mut arc, "arc", map.next_value::<String>()?)?,
                Member::Pay => once(&mut pay, "pay", map.next_value::<String>()?)?,
                Member::Ip => once(&mut ip, "ip", map.next_value::<String>()?)?,
                Member::Other(other) => {
                    if others.contains(&other) {
                        return Err(de::Error::custom(format!("duplicate member {other:?}")));
                    }
                    // The claims object is level 1: its members' values start at 2.
                    map.next_value_seed(NoDuplicates { depth: 2 })?;
                    others.push(other);
                }
            }
        }
        Ok(Claims {
            iss: iss.ok_or_else(|| de::Error::missing_field("iss"))?,
            aud: aud.ok_or_else(|| de::Error::missing_field("aud"))?,
            exp: exp.ok_or_else(|| de::Error::missing_field("exp"))?,
            sub,
            iat,
            nbf,
            jti,
            did,
            arc,
            pay,
            ip,
        })
    }
}

/// Any JSON value at nesting level `depth`, discarded, refusing duplicate
/// member names inside it and objects or arrays deeper than [`MAX_DEPTH`].
#[derive(Clone, Copy)]
pub(crate) struct NoDuplicates {
    /// The level of the value: an object or array here is nested this deep.
    pub(crate) depth: usize,
}

impl<'de> DeserializeSeed<'de> for NoDuplicates {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let inner = NoDuplicates {
            depth: self.depth + 1,
        };
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let inner = NoDuplicates {
            depth: self.depth + 1,
        };
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Name(key)) = map.next_key::<Name<'de>>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("duplicate member {key:?}")));
            }
            map.next_value_seed(inner)?;
            seen.push(key);
        }
        Ok(())
    }
}

/// The claims of `json` if it is in the compact form every JWT library
/// writes (Genuine's included), decided without serde; `None` otherwise, and
/// then [`Claims`]' strict parser decides.
///
/// It accepts only a subset of what that parser accepts, with the same
/// result: an object with no whitespace, whose members are known claims named
/// without escapes, each at most once, including `iss`, `aud` and `exp`;
/// string claims without escapes or control characters; integer claims
/// `0` or `[1-9][0-9]{0,17}` (so they fit an `i64`). Anything else (an
/// unknown or repeated member, an escape, a negative or long number, a space)
/// returns `None`. `json` is UTF-8 already, so a string's bytes are its text.
pub(crate) fn parse_compact(json: &str) -> Option<Claims> {
    let b = json.as_bytes();
    let (mut iss, mut aud, mut sub, mut iat, mut exp, mut nbf) =
        (None, None, None, None, None, None);
    let (mut jti, mut did, mut arc, mut pay, mut ip) = (None, None, None, None, None);
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut at = 1;
    loop {
        // A known name is two or three lowercase letters: no escape in it.
        let name = match (b.get(at), b.get(at + 3), b.get(at + 4)) {
            (Some(b'"'), Some(b'"'), _) => b.get(at + 1..at + 3)?,
            (Some(b'"'), _, Some(b'"')) => b.get(at + 1..at + 4)?,
            _ => return None,
        };
        at += name.len() + 2;
        if b.get(at) != Some(&b':') {
            return None;
        }
        at += 1;
        let slot = match name {
            b"iss" => &mut iss,
            b"aud" => &mut aud,
            b"sub" => &mut sub,
            b"jti" => &mut jti,
            b"did" => &mut did,
            b"arc" => &mut arc,
            b"pay" => &mut pay,
            b"ip" => &mut ip,
            number => {
                let slot = match number {
                    b"iat" => &mut iat,
                    b"exp" => &mut exp,
                    b"nbf" => &mut nbf,
                    _ => return None,
                };
                let (n, next) = plain_integer(b, at)?;
                if slot.replace(n).is_some() {
                    return None;
                }
                at = next;
                match b.get(at) {
                    Some(b',') => at += 1,
                    Some(b'}') if at + 1 == b.len() => break,
                    _ => return None,
                }
                continue;
            }
        };
        let (value, next) = plain_string(b, at)?;
        if slot.replace(json.get(value)?.to_owned()).is_some() {
            return None;
        }
        at = next;
        match b.get(at) {
            Some(b',') => at += 1,
            Some(b'}') if at + 1 == b.len() => break,
            _ => return None,
        }
    }
    Some(Claims {
        iss: iss?,
        aud: aud?,
        exp: exp?,
        sub,
        iat,
        nbf,
        jti,
        did,
        arc,
        pay,
        ip,
    })
}

/// A string at `at` with no escape and no control character: the range of
/// its text and the index after its closing quote.
fn plain_string(b: &[u8], at: usize) -> Option<(std::ops::Range<usize>, usize)> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = start + special_byte(b.get(start..)?)?;
    (b.get(end) == Some(&b'"')).then_some((start..end, end + 1))
}

/// The index of the first `"`, `\` or control character (below 0x20) in `s`,
/// eight bytes at a time (the test serde_json's reader uses).
fn special_byte(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGHS: u64 = ONES << 7;
    let mut chunks = s.chunks_exact(8);
    let mut done = 0;
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let x = u64::from_le_bytes(bytes);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set in each term if it is below 0x20, a quote
        // or a backslash; a false mark can only follow a true one.
        let marks = ((x.wrapping_sub(ONES * 0x20) & !x)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGHS;
        if marks != 0 {
            return Some(done + marks.trailing_zeros() as usize / 8);
        }
        done += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| done + i)
}

/// An integer at `at` written `0` or `[1-9][0-9]{0,17}` followed by a
/// non-digit: its value and the index after it.
fn plain_integer(b: &[u8], at: usize) -> Option<(i64, usize)> {
    let digits = b
        .get(at..)?
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(b.len() - at);
    let text = b.get(at..at + digits)?;
    match text {
        [b'0'] => Some((0, at + 1)),
        [b'1'..=b'9', ..] if digits <= 18 => {
            let n = text.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
            Some((n, at + digits))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Claims, String> {
        serde_json::from_str::<Claims>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn duplicates_refused_everywhere() {
        let base = r#""iss":"i","aud":"a","exp":5"#;
        assert!(parse(&format!("{{{base}}}")).is_ok());
        assert!(
            parse(&format!(r#"{{{base},"x":{{"k":[1,{{"y":2}}]}}}}"#)).is_ok(),
            "unknown members are fine"
        );
        assert!(
            parse(&format!(r#"{{{base},"exp":6}}"#))
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(
            parse(&format!(r#"{{{base},"x":1,"x":2}}"#))
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(
            parse(&format!(r#"{{{base},"x":{{"k":1,"k":2}}}}"#))
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(
            parse(&format!(r#"{{{base},"x":[{{"k":1,"k":2}}]}}"#))
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(
            parse(r#"{"iss":"i","aud":"a"}"#)
                .unwrap_err()
                .contains("exp")
        );
        assert!(
            parse(r#"{"iss":"i","aud":"a","exp":"5"}"#).is_err(),
            "exp must be an integer"
        );
        assert!(
            parse(r#"{"iss":"i","aud":"a","exp":5.0}"#).is_err(),
            "not a float either"
        );
        assert!(parse(r#"["i","a",5]"#).is_err(), "an array is not claims");
    }

    #[test]
    fn depth_limit_is_32_levels_with_the_claims_object() {
        let nest = |levels: usize| {
            format!(
                r#"{{"iss":"i","aud":"a","exp":5,"x":{}1{}}}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert!(parse(&nest(MAX_DEPTH)).is_ok());
        assert!(parse(&nest(MAX_DEPTH + 1)).unwrap_err().contains("deeper"));
        let objects = format!(
            r#"{{"iss":"i","aud":"a","exp":5,"x":{}1{}}}"#,
            r#"{"a":"#.repeat(MAX_DEPTH),
            "}".repeat(MAX_DEPTH)
        );
        assert!(parse(&objects).unwrap_err().contains("deeper"));
        // Brackets in strings are not nesting.
        let text = format!(
            r#"{{"iss":"i","aud":"a","exp":5,"x":"{}"}}"#,
            "[".repeat(99)
        );
        assert!(parse(&text).is_ok());
    }

    /// Whatever `parse_compact` accepts, the strict parser accepts with the
    /// same claims; and it does accept the compact form of Genuine's claims.
    #[test]
    fn compact_parse_agrees_with_strict_parser() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let names = [
            "iss",
            "aud",
            "sub",
            "iat",
            "exp",
            "nbf",
            "jti",
            "did",
            "arc",
            "pay",
            "ip",
            "x",
            "is",
            "ipp",
            "\\u0069ss",
            "",
        ];
        let strings = [
            "\"\"",
            "\"a\"",
            "\"https://g.example/v1/accounts/a\"",
            "\"a\\\"b\"",
            "\"\\u0041\"",
            "\"\\n\"",
            "\"\t\"",
            "\"\u{7f}\"",
            "\"\u{e9}\u{1F600}\"",
            "\"a\\\\\"",
            "1",
            "null",
            // Escapes and control characters past the first eight bytes.
            "\"https://g.example/\\u0041\"",
            "\"0123456789abcdef\\\"\"",
            "\"0123456789ab\u{1}\"",
        ];
        let numbers = [
            "0",
            "-0",
            "01",
            "7",
            "-7",
            "1.0",
            "1e3",
            "1800000000",
            "999999999999999999",
            "1000000000000000000",
            "9223372036854775807",
            "9223372036854775808",
            "\"5\"",
            "null",
        ];
        let odd_separators = [", ", " ,", ",,", ":", ""];
        let mut accepted = 0;
        for round in 0..200_000 {
            let mut doc = String::from(if next(50) == 0 { " {" } else { "{" });
            let members = if next(8) == 0 {
                1 + next(12)
            } else {
                5 + next(7)
            };
            for m in 0..members {
                if m > 0 {
                    doc.push_str(if next(32) == 0 {
                        odd_separators[next(odd_separators.len())]
                    } else {
                        ","
                    });
                }
                // Mostly the claims in Genuine's order, sometimes anything.
                let name = if next(24) == 0 {
                    names[next(names.len())]
                } else {
                    names[m % 11]
                };
                // Mostly values of the right type, often plain ones.
                let value = match (matches!(name, "iat" | "exp" | "nbf"), next(16)) {
                    (_, 0) => numbers[next(numbers.len())],
                    (_, 1) => strings[next(strings.len())],
                    (true, n) if n < 4 => numbers[next(numbers.len())],
                    (true, _) => numbers[7 + next(2)],
                    (false, n) if n < 4 => strings[next(strings.len())],
                    (false, _) => strings[next(3)],
                };
                doc.push_str(&format!("\"{name}\":{value}"));
            }
            doc.push_str(if next(16) == 0 {
                ["} ", "}}", ""][next(3)]
            } else {
                "}"
            });
            if round % 3 == 0 {
                // The well-formed Genuine shape, with a random value changed.
                doc = format!(
                    r#"{{"iss":"i","aud":{},"sub":"s","iat":{},"exp":{},"jti":"j"}}"#,
                    strings[next(strings.len())],
                    numbers[next(numbers.len())],
                    numbers[next(numbers.len())],
                );
            }
            if let Some(fast) = parse_compact(&doc) {
                accepted += 1;
                assert_eq!(Ok(fast), parse(&doc), "{doc}");
            }
        }
        assert!(
            accepted > 10_000,
            "the compact form is recognised ({accepted})"
        );
        let genuine = r#"{"iss":"https://g.example/v1/accounts/a","aud":"api.example","sub":"com.ex","iat":1762999940,"exp":4102444800,"jti":"q3V0cZ8mRk2xTgY7wLpN4a","did":"Hs8fK2mQ9vLx3TzR7bWc1e","arc":"AAEAAgADAAQABQAG","pay":"p","ip":"127.0.0.1","nbf":0}"#;
        assert_eq!(parse_compact(genuine), parse(genuine).ok());
        assert!(parse_compact(genuine).is_some());
    }
}

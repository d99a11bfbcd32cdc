//! Strict parsing of [`Claims`]: every member name at most once, at any depth.
//!
//! serde's derive refuses a duplicate of a field it knows but skips unknown
//! members unseen, so `{"exp":1,"x":1,"x":2}` would pass. This visitor keeps
//! the known claims, refuses duplicates among all members, and walks unknown
//! values with [`NoDuplicates`] instead of skipping them. Genuine's own tokens
//! have no unknown claims, so the strictness costs them nothing.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use crate::Claims;

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

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let (mut iss, mut aud, mut sub, mut iat, mut exp, mut nbf) =
            (None, None, None, None, None, None);
        let (mut jti, mut did, mut arc, mut pay, mut ip) = (None, None, None, None, None);
        let mut others: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "iss" => once(&mut iss, "iss", map.next_value::<String>()?)?,
                "aud" => once(&mut aud, "aud", map.next_value::<String>()?)?,
                "sub" => once(&mut sub, "sub", map.next_value::<String>()?)?,
                "iat" => once(&mut iat, "iat", map.next_value::<i64>()?)?,
                "exp" => once(&mut exp, "exp", map.next_value::<i64>()?)?,
                "nbf" => once(&mut nbf, "nbf", map.next_value::<i64>()?)?,
                "jti" => once(&mut jti, "jti", map.next_value::<String>()?)?,
                "did" => once(&mut did, "did", map.next_value::<String>()?)?,
                "arc" => once(&mut arc, "arc", map.next_value::<String>()?)?,
                "pay" => once(&mut pay, "pay", map.next_value::<String>()?)?,
                "ip" => once(&mut ip, "ip", map.next_value::<String>()?)?,
                other => {
                    if others.iter().any(|o| o == other) {
                        return Err(de::Error::custom(format!("duplicate member {other:?}")));
                    }
                    others.push(other.to_owned());
                    map.next_value::<NoDuplicates>()?;
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

/// Any JSON value, discarded, refusing duplicate member names inside it.
pub(crate) struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if seen.iter().any(|k| k == key.as_ref()) {
                return Err(de::Error::custom(format!("duplicate member {key:?}")));
            }
            seen.push(key.into_owned());
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
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
}

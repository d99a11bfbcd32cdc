//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries in
//! `fuzz/fuzz_targets/` and by the stable replay test
//! `crates/genuine-cli/tests/fuzz_corpus.rs`, so both run the very same code.
//!
//! Each function feeds one untrusted input to one parser, then asserts the
//! invariants that must hold for every input (a panic is a finding). Where it
//! is cheap, the verdict is checked against an independent reference model
//! written from the protocol text. Each returns whether the input was
//! accepted, so the replay test can check that a corpus reaches the accept
//! path as well as the refusals.
//!
//! Only `genuine-protocol`, `genuine-verify`, `serde_json`, `ring` and `std`
//! may be used here: this file is compiled without libfuzzer on stable.

use std::sync::LazyLock;

use genuine_protocol::arc::{ARC_LEN, ArcError, ArcKey};
use genuine_protocol::b64;
use genuine_protocol::evidence::{
    EVIDENCE_TYP, InvalidEvidence, MAX_EVIDENCE_LEN, MalformedEvidence, ParsedEvidence,
    is_identifier,
};
use genuine_protocol::measure::{DigestBuilder, MeasureError, elf_exec_segments_digest};
use genuine_protocol::nonce::{NONCE_LEN, NonceError, NonceKey};
use genuine_verify::{Claims, Expectations, Jwk, Jwks, MAX_TOKEN_LEN, Verifier, VerifyError};
use ring::{hmac, signature};

/// The fixed time at which nonces and tokens are checked.
const NOW: u64 = 1_000;
/// The nonce and HS256 secret of the targets.
const SECRET: [u8; 32] = [7; 32];
const ACCOUNT: &str = "default";
const APP_ID: &str = "com.example";
const ISSUER: &str = "https://genuine.example.com/v1/accounts/default";
const AUDIENCE: &str = "api.example.com";
/// A fixed P-256 public key (kid `ec`); its private half signed the ES256 seed
/// token and was then thrown away.
const EC_X: &str = "08VGzS5TDMLjJNf25RvtMsqDvRn4x_kaAb460MpuG_c";
const EC_Y: &str = "bGmJQBvRPj4X1p_7z9dYH-ICA334sB-BS0q94T3XNdE";
/// A fixed Ed25519 public key (kid `ed`), likewise.
const ED_X: &str = "GwyspuD_DhhV0Q48wrZkEeC-PFZiYI-HZyxD2NDKMnE";

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `b64url(JSON)` of one part of a compact JWS, as a JSON object.
fn json_part(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_slice(&b64::decode(part).ok()?).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

// ---------------------------------------------------------------- evidence

/// `ParsedEvidence::parse`, then `routing` and `verify`.
pub(crate) fn evidence(data: &[u8]) -> bool {
    let Some(jws) = text(data) else {
        return false;
    };
    let parsed = match ParsedEvidence::parse(jws) {
        Ok(parsed) => parsed,
        Err(e) => {
            if jws.len() > MAX_EVIDENCE_LEN {
                assert_eq!(e, MalformedEvidence::TooLarge);
            }
            return false;
        }
    };
    // Structure: three parts, a header with alg ES256 and the evidence typ.
    assert!(jws.len() <= MAX_EVIDENCE_LEN);
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "parsed evidence is not three parts");
    let header = json_part(parts[0]).expect("parsed evidence header is not a JSON object");
    assert_eq!(header.get("alg").and_then(|v| v.as_str()), Some("ES256"));
    assert_eq!(
        header.get("typ").and_then(|v| v.as_str()),
        Some(EVIDENCE_TYP)
    );
    let jwk = header.get("jwk").expect("parsed evidence has no jwk");
    let x = b64::decode_array::<32>(jwk["x"].as_str().expect("jwk x")).expect("jwk x");
    let y = b64::decode_array::<32>(jwk["y"].as_str().expect("jwk y")).expect("jwk y");
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    assert_eq!(
        &parsed.key().sec1()[..],
        &point[..],
        "key differs from the header jwk"
    );

    let routing = parsed.routing();

    // Reference: the signature over `header.payload` with the header's key.
    let signing_input = &jws.as_bytes()[..parts[0].len() + 1 + parts[1].len()];
    let sig_ok = b64::decode(parts[2]).is_ok_and(|sig| {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
            .verify(signing_input, &sig)
            .is_ok()
    });
    let verified = parsed.verify();
    assert_eq!(
        matches!(verified, Err(InvalidEvidence::BadSignature)),
        !sig_ok,
        "signature verdict differs from ring's"
    );
    let Ok(v) = verified else {
        return false;
    };
    let c = &v.claims;
    for ident in [
        &c.account,
        &c.app_id,
        &c.app_version,
        &c.platform,
        &c.api,
        &c.measurement.alg,
    ] {
        assert!(is_identifier(ident), "accepted a bad identifier {ident:?}");
    }
    assert_eq!(b64::encode(&v.proof), c.measurement.proof);
    assert_eq!(v.binding.map(|b| b64::encode(&b)), c.binding);
    assert_eq!(v.platform.is_some(), c.platform_evidence.is_some());
    if let Some(Ok(pe)) = &v.platform {
        // A typed value re-encodes to an object that parses to itself.
        assert_eq!(
            genuine_protocol::platform::PlatformEvidence::parse(&pe.to_json()).as_ref(),
            Ok(pe)
        );
    }
    assert_eq!(&v.key, parsed.key());
    assert_eq!(v.device_id, v.key.device_id());
    assert_eq!(v.device_id.len(), 22);
    // The routing read without trust names what the verified claims name.
    assert_eq!(routing.account.as_ref(), Some(&c.account));
    assert_eq!(routing.app_id.as_ref(), Some(&c.app_id));
    assert_eq!(routing.api.as_ref(), Some(&c.api));
    assert_eq!(routing.nonce.as_ref(), Some(&c.nonce));
    true
}

// ------------------------------------------------------------------- nonce

/// `NonceKey::check` of a text nonce for `default` / `com.example` at 1000.
pub(crate) fn nonce(data: &[u8]) -> bool {
    let Some(nonce) = text(data) else {
        return false;
    };
    let key = NonceKey::from_bytes(&SECRET);
    let result = key.check(nonce, ACCOUNT, APP_ID, NOW);
    assert_eq!(
        result.as_ref().map(|_| ()),
        reference_nonce(nonce).as_ref().map(|_| ()),
        "nonce verdict differs from the reference for {nonce:?}"
    );
    let Ok(checked) = result else {
        return false;
    };
    let bytes = b64::decode(nonce).expect("accepted nonce is not base64url");
    assert_eq!(checked.bytes, bytes);
    assert_eq!(checked.bytes.len(), NONCE_LEN);
    assert_eq!(checked.id[..], bytes[1..17]);
    assert!(checked.expires_at > NOW);
    true
}

/// Protocol §1 as written: version 1, 57 bytes, HMAC over the domain, the
/// random part, the expiry and the length-prefixed account and app id.
fn reference_nonce(nonce: &str) -> Result<(), NonceError> {
    let bytes = b64::decode(nonce).map_err(|_| NonceError::Malformed)?;
    if bytes.len() != 57 || bytes[0] != 1 {
        return Err(NonceError::Malformed);
    }
    let mut msg = b"genuine/nonce/v1\0".to_vec();
    msg.extend_from_slice(&bytes[1..25]);
    for part in [ACCOUNT, APP_ID] {
        msg.extend_from_slice(&(part.len() as u32).to_be_bytes());
        msg.extend_from_slice(part.as_bytes());
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, &SECRET);
    hmac::verify(&key, &msg, &bytes[25..]).map_err(|_| NonceError::BadMac)?;
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&bytes[17..25]);
    if u64::from_be_bytes(expiry) <= NOW {
        return Err(NonceError::Expired);
    }
    Ok(())
}

// ------------------------------------------------------------- elf_measure

/// `elf_exec_segments_digest` of arbitrary bytes.
pub(crate) fn elf_measure(data: &[u8]) -> bool {
    let result = elf_exec_segments_digest(data);
    // The digest does not depend on where the bytes sit in memory.
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    assert_eq!(elf_exec_segments_digest(&shifted[1..]), result);
    match result {
        Err(MeasureError::NotElf) => {
            assert!(data.is_empty() || !b"\x7fELF".starts_with(&data[..data.len().min(4)]));
            false
        }
        Err(MeasureError::Elf32Unsupported) => {
            assert!(data.starts_with(b"\x7fELF\x01"));
            false
        }
        Err(MeasureError::BadDigest) => panic!("measuring a file never parses hex"),
        Err(_) => {
            assert!(data.len() < 4 || data.starts_with(b"\x7fELF"));
            false
        }
        Ok(digest) => {
            assert!(data.starts_with(b"\x7fELF\x02"));
            if let Some(reference) = reference_elf_digest(data) {
                assert_eq!(digest, reference, "digest differs from the reference");
            } else {
                // Only an extended program header count is beyond the reference.
                assert_eq!(
                    &data[56..58],
                    b"\xff\xff",
                    "reference refused an accepted file"
                );
            }
            true
        }
    }
}

/// Protocol §3 as written, for 64-bit files with fewer than 0xffff program
/// headers: SHA-256 over `u64le(p_vaddr) || u64le(p_filesz) || bytes` of each
/// executable `PT_LOAD`, in file order.
fn reference_elf_digest(f: &[u8]) -> Option<genuine_protocol::measure::AppDigest> {
    if f.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let big = match f.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let field = |off: u64, len: usize| -> Option<u64> {
        let start = usize::try_from(off).ok()?;
        let bytes = f.get(start..start.checked_add(len)?)?;
        let mut v = 0u64;
        for i in 0..len {
            let b = if big { bytes[i] } else { bytes[len - 1 - i] };
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    };
    let phoff = field(32, 8)?;
    let phnum = field(56, 2)?;
    if phnum == 0xffff {
        return None;
    }
    let mut builder = DigestBuilder::new();
    for i in 0..phnum {
        let ph = phoff.checked_add(i * 56)?;
        let at = |rel: u64, len: usize| field(ph.checked_add(rel)?, len);
        if at(0, 4)? != 1 || at(4, 4)? & 1 == 0 {
            continue;
        }
        let offset = usize::try_from(at(8, 8)?).ok()?;
        let vaddr = at(16, 8)?;
        let filesz = usize::try_from(at(32, 8)?).ok()?;
        let bytes = if filesz == 0 {
            &[][..]
        } else {
            f.get(offset..offset.checked_add(filesz)?)?
        };
        builder.add_segment(vaddr, bytes);
    }
    builder.finish().ok()
}

// ------------------------------------------------------------------- token

fn expectations() -> Expectations {
    Expectations {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        leeway_secs: 0,
    }
}

const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec","use":"sig","alg":"ES256","#;
const ED_JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","x":""#;

fn jwks_verifier(json: &str) -> Verifier {
    let jwks: Jwks = serde_json::from_str(json).expect("fixed JWKS");
    Verifier::from_jwks(&jwks, expectations()).expect("fixed JWKS")
}

/// HS256 with kid `k`; a JWKS of the EC key alone; a JWKS of the EC and Ed25519 keys.
static VERIFIERS: LazyLock<[Verifier; 3]> = LazyLock::new(|| {
    let ec = format!(r#"{EC_JWK}"x":"{EC_X}","y":"{EC_Y}"}}"#);
    [
        Verifier::from_hs256_secret("k", &SECRET, expectations()).expect("32-byte secret"),
        jwks_verifier(&format!(r#"{{"keys":[{ec}]}}"#)),
        jwks_verifier(&format!(r#"{{"keys":[{ec},{ED_JWK}{ED_X}"}}]}}"#)),
    ]
});

/// `Verifier::verify` at 1000 by an HS256 verifier and two JWKS verifiers.
pub(crate) fn token(data: &[u8]) -> bool {
    let Some(token) = text(data) else {
        return false;
    };
    let now = i64::try_from(NOW).unwrap_or(i64::MAX);
    let results = VERIFIERS.each_ref().map(|v| v.verify(token, now));
    for r in &results {
        match r {
            Ok(claims) => check_accepted_token(token, claims),
            Err(e) => {
                if token.len() > MAX_TOKEN_LEN {
                    assert_eq!(*e, VerifyError::TooLarge);
                }
            }
        }
    }
    // A token the HS256 secret verifies is no token for the public keys.
    if results[0].is_ok() {
        assert!(results[1].is_err() && results[2].is_err(), "alg confusion");
    }
    for claims in results.iter().flatten() {
        let _ = Verifier::check_binding(claims, data);
    }
    results.iter().any(Result::is_ok)
}

fn check_accepted_token(token: &str, claims: &Claims) {
    assert!(token.len() <= MAX_TOKEN_LEN);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = json_part(parts[0]).expect("accepted header is not a JSON object");
    for refused in ["crit", "jku", "x5u", "jwk", "x5c"] {
        assert!(
            !header.contains_key(refused),
            "accepted a header with {refused}"
        );
    }
    let alg = header.get("alg").and_then(|a| a.as_str());
    let signing_input = &token.as_bytes()[..parts[0].len() + 1 + parts[1].len()];
    let sig = b64::decode(parts[2]).expect("accepted signature is not base64url");
    let key = |x: &str| b64::decode(x).expect("fixed key");
    let verified = match alg {
        Some("HS256") => hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, &SECRET),
            signing_input,
            &sig,
        )
        .is_ok(),
        Some("ES256") => {
            let mut point = vec![4u8];
            point.extend_from_slice(&key(EC_X));
            point.extend_from_slice(&key(EC_Y));
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signing_input, &sig)
                .is_ok()
        }
        Some("EdDSA") => signature::UnparsedPublicKey::new(&signature::ED25519, key(ED_X))
            .verify(signing_input, &sig)
            .is_ok(),
        other => panic!("accepted a token with alg {other:?}"),
    };
    assert!(verified, "accepted a token ring does not verify");
    let payload: Claims = serde_json::from_slice(&b64::decode(parts[1]).expect("payload"))
        .expect("accepted claims do not parse");
    assert_eq!(&payload, claims);
    let now = i64::try_from(NOW).unwrap_or(i64::MAX);
    assert!(claims.exp > now, "accepted an expired token");
    assert!(
        claims.nbf.is_none_or(|nbf| nbf <= now),
        "accepted a token before nbf"
    );
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, AUDIENCE);
}

// --------------------------------------------------------------------- arc

/// `ArcKey::decode` under the key `k`.
pub(crate) fn arc(data: &[u8]) -> bool {
    let Some(arc) = text(data) else {
        return false;
    };
    let result = ArcKey::from_bytes(b"k").decode(arc);
    let reference = reference_arc(arc);
    match (&result, reference) {
        (Ok(set), Ok(bits)) => {
            assert_eq!(set.bits(), bits);
            assert!(set.bits() < 1 << 24);
            assert!(set.iter().all(|r| set.contains(r)));
            true
        }
        (Err(ArcError::Malformed), Err(ArcError::Malformed))
        | (Err(ArcError::BadTag), Err(ArcError::BadTag)) => false,
        (got, want) => panic!("arc {arc:?}: decoded {got:?}, reference {want:?}"),
    }
}

/// Protocol §5 as written: 16 characters of RFC 4648 base32 (upper case, no
/// padding) of `r (5) || mask (3) || tag (2)`.
fn reference_arc(arc: &str) -> Result<u32, ArcError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    if arc.len() != ARC_LEN {
        return Err(ArcError::Malformed);
    }
    let mut acc = 0u128;
    for c in arc.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(ArcError::Malformed)?;
        acc = (acc << 5) | v as u128;
    }
    let raw = &acc.to_be_bytes()[6..];
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
    let prf = |label: u8, extra: &[u8]| {
        let mut msg = b"genuine/arc/v1\0".to_vec();
        msg.push(label);
        msg.extend_from_slice(&raw[..5]);
        msg.extend_from_slice(extra);
        hmac::sign(&key, &msg)
    };
    let mask = prf(b'm', &[]);
    let bits: Vec<u8> = (0..3).map(|i| raw[5 + i] ^ mask.as_ref()[i]).collect();
    if prf(b't', &bits).as_ref()[..2] != raw[8..] {
        return Err(ArcError::BadTag);
    }
    Ok(u32::from_be_bytes([0, bits[0], bits[1], bits[2]]))
}

// -------------------------------------------------------------------- jwks

/// Whether `Verifier::from_jwks` is meant to load this key (and refuse it if malformed).
fn supported(k: &Jwk) -> bool {
    let alg = k.alg.as_deref();
    k.kid.is_some()
        && k.use_.as_deref().is_none_or(|u| u == "sig")
        && match (k.kty.as_str(), k.crv.as_deref()) {
            ("EC", Some("P-256")) => alg.is_none_or(|a| a == "ES256"),
            ("OKP", Some("Ed25519")) => alg.is_none_or(|a| a == "EdDSA"),
            _ => false,
        }
}

/// `serde_json::from_slice::<Jwks>`, then `Verifier::from_jwks`.
pub(crate) fn jwks(data: &[u8]) -> bool {
    let Ok(jwks) = serde_json::from_slice::<Jwks>(data) else {
        return false;
    };
    let again: Jwks = serde_json::from_slice(&serde_json::to_vec(&jwks).expect("serialize JWKS"))
        .expect("a serialized JWKS parses");
    assert_eq!(again, jwks, "JWKS does not round-trip");
    let verifier = match Verifier::from_jwks(&jwks, expectations()) {
        Ok(v) => v,
        Err(e) => {
            assert!(
                matches!(e, VerifyError::BadKey(_)),
                "from_jwks failed with {e:?}"
            );
            assert!(
                jwks.keys.iter().any(supported),
                "refused a JWKS with no usable key"
            );
            return false;
        }
    };
    // No key verifies a 3-byte signature, whatever kid and alg the header names.
    let claims =
        b64::encode(format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":2000}}"#).as_bytes());
    let kids = jwks.keys.iter().take(4).map(|k| k.kid.as_deref());
    for kid in kids.chain([None]) {
        for alg in ["ES256", "EdDSA", "HS256"] {
            let header = serde_json::json!({ "alg": alg, "kid": kid });
            let token = format!(
                "{}.{claims}.AAAA",
                b64::encode(header.to_string().as_bytes())
            );
            let now = i64::try_from(NOW).unwrap_or(i64::MAX);
            match verifier.verify(&token, now) {
                Err(
                    VerifyError::UnknownKey
                    | VerifyError::MissingKid
                    | VerifyError::AlgMismatch
                    | VerifyError::BadSignature,
                ) => {}
                other => panic!("forged token under {kid:?}/{alg}: {other:?}"),
            }
        }
    }
    true
}

// -------------------------------------------------------- platform evidence

/// `PlatformEvidence::parse` of a JSON object: a typed value re-encodes to
/// an object that parses to the same value, and every refusal has its code.
pub(crate) fn platform_evidence(data: &[u8]) -> bool {
    use genuine_protocol::platform::{KINDS, MAX_CHAIN_CERTS, PlatformEvidence};
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) else {
        return false;
    };
    match PlatformEvidence::parse(&map) {
        Ok(pe) => {
            assert!(KINDS.contains(&pe.kind()));
            assert_eq!(map.get("kind").and_then(|k| k.as_str()), Some(pe.kind()));
            if let PlatformEvidence::AndroidKeyAttestation { chain } = &pe {
                assert!((1..=MAX_CHAIN_CERTS).contains(&chain.len()));
            }
            assert_eq!(PlatformEvidence::parse(&pe.to_json()).as_ref(), Ok(&pe));
            true
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            false
        }
    }
}

//! Measurement (protocol §3): the app digest `elf-exec-segments-sha256/v1` and
//! the nonce-seeded proof.
//!
//! The digest feeds, for each executable `PT_LOAD` program header in file
//! order, `u64le(p_vaddr) || u64le(p_filesz) || the p_filesz segment bytes`
//! into SHA-256. Registration reads the bytes from the file at `p_offset`
//! ([`elf_exec_segments_digest`]); the SDK reads them from memory at the load
//! bias plus `p_vaddr` and feeds them through [`DigestBuilder`], so both agree
//! on an unmodified binary.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use ring::{digest, hmac};

/// Wire name of the ELF measurement algorithm.
pub const ELF_EXEC_SEGMENTS_SHA256_V1: &str = "elf-exec-segments-sha256/v1";

const PROOF_DOMAIN: &[u8] = b"genuine/measure/v1\0";

/// An app digest `D` (32 bytes of SHA-256).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppDigest(pub [u8; 32]);

impl AppDigest {
    /// Lower-case hex, as printed by `genuine measure`.
    #[must_use]
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// Parses 64 hex digits (either case).
    ///
    /// # Errors
    /// [`MeasureError::BadDigest`] when the text is not 32 bytes of hex.
    pub fn from_hex(text: &str) -> Result<Self, MeasureError> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|_| MeasureError::BadDigest)?;
        Ok(Self(bytes.try_into().map_err(|_| MeasureError::BadDigest)?))
    }
}

impl std::fmt::Debug for AppDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppDigest({})", self.to_hex())
    }
}

/// Why a file could not be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// The file does not start with the ELF magic.
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    /// A 32-bit ELF: `elf-exec-segments-sha256/v1` covers 64-bit objects only.
    #[error("32-bit ELF files are not supported; build a 64-bit binary")]
    Elf32Unsupported,
    /// The ELF header names an unknown class or byte order.
    #[error("ELF header has an unknown class or data encoding")]
    BadHeader,
    /// The program header table or a segment runs past the end of the file.
    #[error("ELF file is truncated: a header or segment runs past the end of the file")]
    Truncated,
    /// The object has no executable `PT_LOAD` segment.
    #[error("ELF file has no executable PT_LOAD segment")]
    NoExecutableSegment,
    /// A digest given as text is not 32 bytes of hex.
    #[error("digest is not 64 hexadecimal digits")]
    BadDigest,
    /// A segment fed in pieces got more or fewer bytes than its declared
    /// length, or a segment was begun before the previous one was complete.
    #[error("segment bytes fed to the digest do not match the segment's length")]
    SegmentLength,
}

/// Streaming computation of the app digest, one executable segment at a time.
///
/// A segment is given whole ([`Self::add_segment`], the file path) or in
/// pieces ([`Self::begin_segment`] then [`Self::update_segment`], the SDK's
/// path, which copies memory through a small buffer); both feed SHA-256 the
/// same bytes, so the two paths share this one implementation.
pub struct DigestBuilder {
    ctx: digest::Context,
    segments: usize,
    /// Bytes still owed to the segment begun last.
    pending: u64,
}

impl Default for DigestBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestBuilder {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        Self {
            ctx: digest::Context::new(&digest::SHA256),
            segments: 0,
            pending: 0,
        }
    }

    /// Feeds one executable segment: its `p_vaddr` and its `p_filesz` bytes.
    ///
    /// If a segment begun with [`Self::begin_segment`] is still incomplete,
    /// this one is not added and [`Self::finish`] fails.
    pub fn add_segment(&mut self, vaddr: u64, bytes: &[u8]) {
        if self.begin_segment(vaddr, bytes.len() as u64).is_ok() {
            // Cannot fail: exactly the declared length follows.
            let _ = self.update_segment(bytes);
        }
    }

    /// Begins an executable segment at `vaddr` whose `len` (`p_filesz`)
    /// bytes follow through [`Self::update_segment`], in order, in pieces of
    /// any size.
    ///
    /// # Errors
    /// [`MeasureError::SegmentLength`] if the previous segment is incomplete.
    pub fn begin_segment(&mut self, vaddr: u64, len: u64) -> Result<(), MeasureError> {
        if self.pending != 0 {
            return Err(MeasureError::SegmentLength);
        }
        self.ctx.update(&vaddr.to_le_bytes());
        self.ctx.update(&len.to_le_bytes());
        self.segments += 1;
        self.pending = len;
        Ok(())
    }

    /// Feeds the next bytes of the segment begun last.
    ///
    /// # Errors
    /// [`MeasureError::SegmentLength`] if they exceed what the segment still owes.
    pub fn update_segment(&mut self, bytes: &[u8]) -> Result<(), MeasureError> {
        let n = bytes.len() as u64;
        if n > self.pending {
            // Poison the builder: `finish` fails from now on.
            self.pending = u64::MAX;
            return Err(MeasureError::SegmentLength);
        }
        self.ctx.update(bytes);
        self.pending -= n;
        Ok(())
    }

    /// The digest.
    ///
    /// # Errors
    /// [`MeasureError::NoExecutableSegment`] if no segment was added;
    /// [`MeasureError::SegmentLength`] if a segment is incomplete or got too
    /// many bytes.
    pub fn finish(self) -> Result<AppDigest, MeasureError> {
        if self.pending != 0 {
            return Err(MeasureError::SegmentLength);
        }
        if self.segments == 0 {
            return Err(MeasureError::NoExecutableSegment);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(self.ctx.finish().as_ref());
        Ok(AppDigest(out))
    }
}

/// Computes `elf-exec-segments-sha256/v1` of a 64-bit ELF file held in memory.
///
/// # Errors
/// [`MeasureError`] for a non-ELF, 32-bit, malformed or truncated file.
pub fn elf_exec_segments_digest(file: &[u8]) -> Result<AppDigest, MeasureError> {
    // e_ident: 4 magic bytes, then the class at index 4; 16 bytes in all.
    if file.len() < 4 || file[..4] != elf::ELFMAG {
        return Err(if !file.is_empty() && elf::ELFMAG.starts_with(file) {
            MeasureError::Truncated
        } else {
            MeasureError::NotElf
        });
    }
    let class = *file.get(4).ok_or(MeasureError::Truncated)?;
    if class == elf::ELFCLASS32.0 {
        return Err(MeasureError::Elf32Unsupported);
    }
    if class != elf::ELFCLASS64.0 {
        return Err(MeasureError::BadHeader);
    }
    let header = elf::FileHeader64::<object::Endianness>::parse(file)
        .map_err(|_| MeasureError::Truncated)?;
    let endian = header.endian().map_err(|_| MeasureError::BadHeader)?;
    let phdrs = header
        .program_headers(endian, file)
        .map_err(|_| MeasureError::Truncated)?;
    let mut builder = DigestBuilder::new();
    for ph in phdrs {
        if ph.p_type(endian) != elf::PT_LOAD || ph.p_flags(endian).0 & elf::PF_X.0 == 0 {
            continue;
        }
        let bytes = ph
            .data(endian, file)
            .map_err(|()| MeasureError::Truncated)?;
        builder.add_segment(ph.p_vaddr(endian), bytes);
    }
    builder.finish()
}

/// The measurement proof: `HMAC-SHA256(key = nonce bytes, "genuine/measure/v1" || 0x00 || D)`.
#[must_use]
pub fn proof(nonce_bytes: &[u8], digest: &AppDigest) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, nonce_bytes);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(PROOF_DOMAIN);
    ctx.update(&digest.0);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// A verifier of proofs for one nonce: holds the HMAC key so each candidate
/// digest costs one HMAC, compared in constant time.
pub struct ProofVerifier {
    key: hmac::Key,
}

impl ProofVerifier {
    /// A verifier for proofs made with these nonce bytes.
    #[must_use]
    pub fn new(nonce_bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, nonce_bytes),
        }
    }

    /// Whether `proof` was computed from `digest`, compared in constant time.
    #[must_use]
    pub fn matches(&self, digest: &AppDigest, proof: &[u8]) -> bool {
        let mut msg = [0u8; PROOF_DOMAIN.len() + 32];
        msg[..PROOF_DOMAIN.len()].copy_from_slice(PROOF_DOMAIN);
        msg[PROOF_DOMAIN.len()..].copy_from_slice(&digest.0);
        hmac::verify(&self.key, &msg, proof).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF with one R-X and one RW- PT_LOAD.
    fn tiny_elf() -> Vec<u8> {
        let mut f = vec![0u8; 64 + 2 * 56];
        f[..4].copy_from_slice(&elf::ELFMAG);
        f[4] = elf::ELFCLASS64.0;
        f[5] = elf::ELFDATA2LSB.0;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        f[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        let text_off = f.len() as u64;
        f.extend_from_slice(b"CODECODE");
        f.extend_from_slice(b"DATA");
        let mut ph = |i: usize, flags: u32, off: u64, vaddr: u64, size: u64| {
            let b = 64 + i * 56;
            f[b..b + 4].copy_from_slice(&elf::PT_LOAD.0.to_le_bytes());
            f[b + 4..b + 8].copy_from_slice(&flags.to_le_bytes());
            f[b + 8..b + 16].copy_from_slice(&off.to_le_bytes());
            f[b + 16..b + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[b + 32..b + 40].copy_from_slice(&size.to_le_bytes());
            f[b + 40..b + 48].copy_from_slice(&size.to_le_bytes());
        };
        ph(0, elf::PF_R.0 | elf::PF_X.0, text_off, 0x1000, 8);
        ph(1, elf::PF_R.0 | elf::PF_W.0, text_off + 8, 0x2000, 4);
        f
    }

    #[test]
    fn digest_covers_exec_segments_only() {
        let f = tiny_elf();
        let mut b = DigestBuilder::new();
        b.add_segment(0x1000, b"CODECODE");
        assert_eq!(elf_exec_segments_digest(&f).unwrap(), b.finish().unwrap());
        let mut data_patched = f.clone();
        let n = data_patched.len();
        data_patched[n - 1] ^= 1;
        assert_eq!(
            elf_exec_segments_digest(&data_patched).unwrap(),
            elf_exec_segments_digest(&f).unwrap()
        );
        let mut code_patched = f.clone();
        code_patched[n - 6] ^= 1;
        assert_ne!(
            elf_exec_segments_digest(&code_patched).unwrap(),
            elf_exec_segments_digest(&f).unwrap()
        );
    }

    #[test]
    fn segments_fed_in_pieces_give_the_same_digest() {
        let code: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = DigestBuilder::new();
        whole.add_segment(0x1000, &code);
        whole.add_segment(0x9000, b"more");
        let whole = whole.finish().unwrap();
        for piece in [1, 7, 4096, 10_000] {
            let mut b = DigestBuilder::new();
            b.begin_segment(0x1000, code.len() as u64).unwrap();
            for chunk in code.chunks(piece) {
                b.update_segment(chunk).unwrap();
            }
            b.begin_segment(0x9000, 4).unwrap();
            b.update_segment(b"mo").unwrap();
            b.update_segment(b"re").unwrap();
            assert_eq!(b.finish().unwrap(), whole, "pieces of {piece}");
        }
        // Too few bytes, too many, or a new segment before the last is done.
        let mut short = DigestBuilder::new();
        short.begin_segment(0, 3).unwrap();
        short.update_segment(b"ab").unwrap();
        assert_eq!(short.finish(), Err(MeasureError::SegmentLength));
        let mut long = DigestBuilder::new();
        long.begin_segment(0, 1).unwrap();
        assert_eq!(long.update_segment(b"ab"), Err(MeasureError::SegmentLength));
        assert_eq!(long.finish(), Err(MeasureError::SegmentLength));
        let mut early = DigestBuilder::new();
        early.begin_segment(0, 1).unwrap();
        assert_eq!(early.begin_segment(8, 1), Err(MeasureError::SegmentLength));
        early.add_segment(8, b"x");
        assert_eq!(early.finish(), Err(MeasureError::SegmentLength));
    }

    #[test]
    fn bad_files_get_clear_errors() {
        let f = tiny_elf();
        assert_eq!(elf_exec_segments_digest(b""), Err(MeasureError::NotElf));
        assert_eq!(
            elf_exec_segments_digest(b"#!/bin/sh\necho hi\n"),
            Err(MeasureError::NotElf)
        );
        assert_eq!(
            elf_exec_segments_digest(&f[..10]),
            Err(MeasureError::Truncated)
        );
        assert_eq!(
            elf_exec_segments_digest(&f[..100]),
            Err(MeasureError::Truncated)
        );
        assert_eq!(
            elf_exec_segments_digest(&f[..f.len() - 6]),
            Err(MeasureError::Truncated)
        );
        let mut f32 = f.clone();
        f32[4] = elf::ELFCLASS32.0;
        assert_eq!(
            elf_exec_segments_digest(&f32),
            Err(MeasureError::Elf32Unsupported)
        );
    }

    #[test]
    fn measures_this_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(exe).unwrap();
        assert!(elf_exec_segments_digest(&bytes).is_ok());
    }

    #[test]
    fn proof_matches_only_its_digest_and_nonce() {
        let d = AppDigest([7; 32]);
        let p = proof(b"nonce-one", &d);
        assert!(ProofVerifier::new(b"nonce-one").matches(&d, &p));
        assert!(!ProofVerifier::new(b"nonce-two").matches(&d, &p));
        assert!(!ProofVerifier::new(b"nonce-one").matches(&AppDigest([8; 32]), &p));
        assert!(!ProofVerifier::new(b"nonce-one").matches(&d, &p[..31]));
        assert_eq!(AppDigest::from_hex(&d.to_hex()).unwrap(), d);
    }
}

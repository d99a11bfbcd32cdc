//! The app digest from memory, and the comparison of loaded code with the
//! file it came from.
//!
//! One pass over an object's executable `PT_LOAD` segments copies each
//! 64 KiB piece out of memory (the crate's `sys::CodeReader`), feeds it to the
//! digest (`elf-exec-segments-sha256/v1`, the same [`DigestBuilder`] that
//! `genuine measure` uses on the file) and, when asked, compares it with the
//! same bytes of the file at `p_offset`. Differences are named by the
//! nearest dynamic symbol (`libc.so.6:open+0x0`) or by their virtual address
//! in the object (`exe+0x4f2a0`), as `nm` and `objdump` show them.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use genuine_protocol::measure::{AppDigest, DigestBuilder};

use crate::linux::maps::{self, Mapping};
use crate::probe::ProbeError;
use crate::sys::{self, CodeReader, Object};

/// Bytes copied out of memory at a time.
const CHUNK: usize = 64 * 1024;
/// At most this many patched places are named per object.
pub(crate) const MAX_PATCHES: usize = 16;
/// Differences closer than this are reported as one patched place.
const MERGE_GAP: u64 = 64;

/// What one pass over an object found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The digest, when asked for.
    pub(crate) digest: Option<AppDigest>,
    /// Named places where memory differs from the file, and why the file
    /// could not be compared (`exe:file-unavailable`, …).
    pub(crate) patches: Vec<String>,
    /// Bytes of code compared with the file.
    pub(crate) compared: u64,
}

/// The digest of the running executable, read from memory. Equals
/// `genuine measure` of its file while the code in memory is untouched.
///
/// # Errors
/// [`ProbeError`] when the executable cannot be found or read.
pub fn executable_digest() -> Result<AppDigest, ProbeError> {
    let objects = sys::objects();
    let main = objects.first().ok_or(ProbeError::NoExecutable)?;
    let scan = scan(main, true, false)?;
    scan.digest.ok_or(ProbeError::NoExecutable)
}

/// Where the comparison of an object's code finds the bytes it came from.
#[derive(Debug)]
pub(crate) enum Backing {
    /// The very file that is mapped, opened.
    File(File),
    /// The file was replaced on disk in a way that is expected (the C
    /// library after a package upgrade): nothing to compare with, nothing
    /// reported.
    Benign,
    /// No trustworthy file: reported in `code_patched` as `<obj>:<why>`.
    Missing(&'static str),
}

/// The canonical path of a loaded object's file (the main program's from
/// `/proc/self/exe`), without a `" (deleted)"` suffix; `None` if it has no
/// absolute path.
pub(crate) fn object_path(object: &Object) -> Option<String> {
    if object.is_main {
        let link = std::fs::read_link("/proc/self/exe").ok()?;
        let link = link.to_string_lossy();
        return Some(link.strip_suffix(DELETED).unwrap_or(&link).to_owned());
    }
    let path = Path::new(&object.name);
    if !path.is_absolute() {
        return None;
    }
    if let Ok(full) = std::fs::canonicalize(path) {
        return Some(full.to_string_lossy().into_owned());
    }
    // Gone from disk: its dir, resolved, and its name.
    let dir = std::fs::canonicalize(path.parent()?).ok()?;
    Some(dir.join(path.file_name()?).to_string_lossy().into_owned())
}

/// What `/proc/self/maps` appends to the path of a file that was unlinked.
pub(crate) const DELETED: &str = " (deleted)";

/// The file to compare `object`'s code with, or why there is none.
///
/// - The main program: `/proc/self/exe`, which opens the very file the
///   kernel mapped even if it was deleted or replaced since. Unopenable (no
///   `/proc`, an execute-only file): `file-unavailable`.
/// - Other objects (the C library, the SDK's own library): compared with
///   the file at the object's path (as the loader named it, resolved), and
///   only if every mapping over a code segment is of the inode that path
///   opens now. Otherwise: its file unlinked since it was loaded
///   (`file-replaced`, except for the C library, whose file a package
///   upgrade replaces under every running program: benign, not compared);
///   a deleted file of another path mapped over its code, or another inode
///   there (`file-replaced`, always reported); its path not openable
///   (`file-unavailable`).
pub(crate) fn backing_file(object: &Object, mappings: &[Mapping]) -> Backing {
    if object.is_main {
        return match File::open("/proc/self/exe") {
            Ok(f) => Backing::File(f),
            Err(_) => Backing::Missing("file-unavailable"),
        };
    }
    let Some(path) = object_path(object) else {
        return Backing::Missing("file-unavailable");
    };
    let over_code: Vec<&Mapping> = mappings
        .iter()
        .filter(|m| {
            object.phdrs.iter().filter(|p| p.is_code()).any(|p| {
                let start = object.bias.wrapping_add(p.p_vaddr);
                m.start < start.saturating_add(p.p_filesz) && start < m.end
            })
        })
        .collect();
    let file = File::open(&path);
    let inode = file
        .as_ref()
        .ok()
        .and_then(|f| f.metadata().ok())
        .map(|m| m.ino());
    match decide_backing(&path, inode, &over_code, object.is_libc) {
        Ok(()) => file.map_or(Backing::Missing("file-unavailable"), Backing::File),
        Err(b) => b,
    }
}

/// The rules of [`backing_file`] for an object other than the main
/// program, over its path, the inode that path opens now (`None`: cannot
/// be opened) and the mappings over its code.
pub(crate) fn decide_backing(
    path: &str,
    inode: Option<u64>,
    over_code: &[&Mapping],
    is_libc: bool,
) -> Result<(), Backing> {
    if over_code.is_empty() {
        return Err(Backing::Missing("file-unavailable"));
    }
    // A live mapping's path is not compared with `path`: in some
    // containers the kernel shows it from the host's side
    // (`/var/lib/docker/…/merged/usr/lib/…`). Its inode is, below; and the
    // bytes are compared with the file at `path` in any case, so a foreign
    // file mapped over the code cannot pass. A deleted mapping must be of
    // `path` itself to count as an upgrade.
    let mut deleted = false;
    for m in over_code {
        if let Some(p) = m.path.strip_suffix(DELETED) {
            if p != path {
                return Err(Backing::Missing("file-replaced"));
            }
            deleted = true;
        }
    }
    if deleted {
        return Err(if is_libc {
            Backing::Benign
        } else {
            Backing::Missing("file-replaced")
        });
    }
    match inode {
        None => Err(Backing::Missing("file-unavailable")),
        Some(ino) if over_code.iter().any(|m| m.inode != ino) => {
            Err(Backing::Missing("file-replaced"))
        }
        Some(_) => Ok(()),
    }
}

/// Names the patched place at runtime address `addr` of `object`.
fn name_patch(object: &Object, addr: u64) -> String {
    let short = object.short_name();
    if let Some((sym, saddr)) = sys::describe(object, addr)
        && object.contains(saddr)
        && let Some(off) = addr.checked_sub(saddr).filter(|d| *d < 1 << 20)
    {
        return format!("{short}:{sym}+{off:#x}");
    }
    format!("{short}+{:#x}", addr.wrapping_sub(object.bias))
}

/// One pass over `object`'s code segments: the digest if `digest`, the
/// places that differ from the file if `compare` (see [`backing_file`] for
/// when there is no file to compare with).
pub(crate) fn scan(object: &Object, digest: bool, compare: bool) -> Result<Scan, ProbeError> {
    let reader = CodeReader::new(object).map_err(|e| ProbeError::Read(format!("{e:?}")))?;
    let mut patches = Vec::new();
    let file = if compare {
        let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        match backing_file(object, &maps::parse(&text)) {
            Backing::File(f) => Some(f),
            Backing::Benign => None,
            Backing::Missing(why) => {
                patches.push(format!("{}:{why}", object.short_name()));
                None
            }
        }
    } else {
        None
    };
    let mut builder = digest.then(DigestBuilder::new);
    if builder.is_none() && file.is_none() {
        // Nothing to hash and nothing to compare with.
        return Ok(Scan {
            digest: None,
            patches,
            compared: 0,
        });
    }
    let mut mem = vec![0u8; CHUNK];
    let mut disk = vec![0u8; if file.is_some() { CHUNK } else { 0 }];
    let mut diffs: Vec<(u64, u64)> = Vec::new();
    let mut file_ok = file.is_some();
    let mut compared = 0u64;
    for ph in object.phdrs.iter().filter(|p| p.is_exec_load()) {
        let base = object.bias.wrapping_add(ph.p_vaddr);
        if let Some(b) = builder.as_mut() {
            b.begin_segment(ph.p_vaddr, ph.p_filesz)
                .map_err(ProbeError::Digest)?;
        }
        let mut done = 0u64;
        while done < ph.p_filesz {
            let n = usize::try_from((ph.p_filesz - done).min(CHUNK as u64)).unwrap_or(CHUNK);
            let addr = base + done;
            reader.read(addr, &mut mem[..n]).map_err(|e| {
                ProbeError::Read(format!("{e:?} at {:#x}", addr.wrapping_sub(object.bias)))
            })?;
            if let Some(b) = builder.as_mut() {
                b.update_segment(&mem[..n]).map_err(ProbeError::Digest)?;
            }
            if let (true, Some(f)) = (file_ok, file.as_ref()) {
                let at = ph.p_offset.checked_add(done);
                if at.is_none_or(|at| f.read_exact_at(&mut disk[..n], at).is_err()) {
                    // The file is shorter than the segment, or unreadable:
                    // the rest is not compared, and that is said.
                    file_ok = false;
                    patches.push(format!("{}:file-read-failed", object.short_name()));
                } else {
                    compared += n as u64;
                    if mem[..n] != disk[..n] && diffs.len() <= MAX_PATCHES {
                        record_diffs(&mem[..n], &disk[..n], addr, &mut diffs);
                    }
                }
            }
            done += n as u64;
        }
    }
    let digest = match builder {
        Some(b) => Some(b.finish().map_err(ProbeError::Digest)?),
        None => None,
    };
    patches.extend(
        diffs
            .iter()
            .take(MAX_PATCHES)
            .map(|&(start, _)| name_patch(object, start)),
    );
    if diffs.len() > MAX_PATCHES {
        patches.push(format!("{}:more", object.short_name()));
    }
    Ok(Scan {
        digest,
        patches,
        compared,
    })
}

/// Adds the differing runs of `a` and `b` (at runtime address `at`) to
/// `runs`, merging differences closer than [`MERGE_GAP`].
fn record_diffs(a: &[u8], b: &[u8], at: u64, runs: &mut Vec<(u64, u64)>) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x == y {
            continue;
        }
        let addr = at + i as u64;
        match runs.last_mut() {
            Some(last) if addr <= last.1 + MERGE_GAP => last.1 = addr,
            _ => {
                if runs.len() > MAX_PATCHES {
                    return;
                }
                runs.push((addr, addr));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_digest_equals_file_digest() {
        let file = std::fs::read("/proc/self/exe").unwrap();
        let from_file = genuine_protocol::measure::elf_exec_segments_digest(&file).unwrap();
        assert_eq!(executable_digest().unwrap(), from_file);
    }

    #[test]
    fn untouched_code_matches_its_files() {
        let objects = sys::objects();
        let mut seen = 0;
        for o in objects.iter().filter(|o| o.is_main || o.is_libc) {
            let s = scan(o, false, true).unwrap();
            assert!(s.patches.is_empty(), "{}: {:?}", o.short_name(), s.patches);
            // Every byte of code was compared, none skipped.
            let code: u64 = o
                .phdrs
                .iter()
                .filter(|p| p.is_exec_load())
                .map(|p| p.p_filesz)
                .sum();
            assert!(code > 0);
            assert_eq!(s.compared, code, "{}", o.short_name());
            seen += 1;
        }
        assert_eq!(seen, 2, "the program and the C library");
    }

    fn mapping(path: &str, inode: u64) -> Mapping {
        Mapping {
            start: 0x1000,
            end: 0x2000,
            read: true,
            write: false,
            exec: true,
            offset: 0,
            inode,
            path: path.into(),
        }
    }

    #[test]
    fn a_file_that_cannot_be_compared_is_reported_unless_benign() {
        const P: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        let kind = |r: Result<(), Backing>| match r {
            Ok(()) => "compare",
            Err(Backing::Benign) => "benign",
            Err(Backing::Missing(why)) => why,
            Err(Backing::File(_)) => "file",
        };
        let same = mapping(P, 7);
        assert_eq!(kind(decide_backing(P, Some(7), &[&same], true)), "compare");
        // Another inode at the path now (replaced, the mapping not marked
        // deleted: a bind mount over it, say).
        assert_eq!(
            kind(decide_backing(P, Some(8), &[&same], true)),
            "file-replaced"
        );
        // The path cannot be opened.
        assert_eq!(
            kind(decide_backing(P, None, &[&same], false)),
            "file-unavailable"
        );
        // A mapping of another file over the code.
        let other = mapping("/tmp/evil.so", 9);
        assert_eq!(
            kind(decide_backing(P, Some(7), &[&same, &other], true)),
            "file-replaced"
        );
        // The same file shown by the kernel under the host's path (some
        // containers): compared.
        let host = mapping("/var/lib/docker/overlay2/x/merged/usr/lib/libc.so.6", 7);
        assert_eq!(kind(decide_backing(P, Some(7), &[&host], true)), "compare");
        let other_deleted = mapping("/tmp/libc.so.6 (deleted)", 9);
        assert_eq!(
            kind(decide_backing(P, Some(7), &[&other_deleted], true)),
            "file-replaced"
        );
        // Unlinked since it was loaded: benign for the C library (a package
        // upgrade), reported for the SDK's own library.
        let upgraded = mapping(&format!("{P}{DELETED}"), 7);
        assert_eq!(
            kind(decide_backing(P, Some(8), &[&upgraded], true)),
            "benign"
        );
        assert_eq!(
            kind(decide_backing(P, Some(8), &[&upgraded], false)),
            "file-replaced"
        );
        // No mapping found over the code at all.
        assert_eq!(
            kind(decide_backing(P, Some(7), &[], true)),
            "file-unavailable"
        );
    }

    #[test]
    fn objects_without_a_file_are_reported_not_skipped() {
        // The SDK's own object (here: the program) when it is a library with
        // no file: reported, never silently passed.
        let objects = sys::objects();
        let mut own = objects.iter().find(|o| o.holds_sdk).unwrap().clone();
        own.is_main = false;
        // Its path holds another file now (another inode).
        own.name = "/bin/sh".into();
        let s = scan(&own, false, true).unwrap();
        assert_eq!(s.compared, 0);
        assert_eq!(s.patches, vec!["sh:file-replaced"]);
        // Its path holds nothing.
        own.name = "/tmp/libgenuine_sdk_gone.so".into();
        let s = scan(&own, false, true).unwrap();
        assert_eq!(s.compared, 0);
        assert_eq!(s.patches, vec!["libgenuine_sdk_gone.so:file-unavailable"]);
        // No absolute path at all.
        own.name = "libgenuine_sdk.so".into();
        let s = scan(&own, false, true).unwrap();
        assert_eq!(s.patches, vec!["libgenuine_sdk.so:file-unavailable"]);
    }

    #[test]
    fn diff_runs_merge_and_cap() {
        let a = vec![0u8; 1000];
        let mut b = a.clone();
        b[10] = 1;
        b[20] = 1;
        b[500] = 1;
        let mut runs = Vec::new();
        record_diffs(&a, &b, 0x1000, &mut runs);
        assert_eq!(runs, vec![(0x100a, 0x1014), (0x11f4, 0x11f4)]);
        let c: Vec<u8> = (0..100_000u32).map(|i| u8::from(i % 200 == 0)).collect();
        let mut runs = Vec::new();
        record_diffs(&vec![0u8; 100_000], &c, 0, &mut runs);
        assert_eq!(runs.len(), MAX_PATCHES + 1);
    }
}

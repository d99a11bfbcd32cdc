//! The only module of the SDK with `unsafe` code: the calls into the C
//! library and (Linux) the reads of the process's own code.
//!
//! What it offers, each a safe function whose safety argument sits next to
//! its `unsafe` block:
//!
//! - [`effective_uid`] (every Unix) and [`boottime`] (Linux, Android).
//! - [`objects`] (Linux): the loaded ELF objects with their load bias and
//!   program headers (`dl_iterate_phdr`), each classified by *address*,
//!   never by file name: the main program (reported first), the SDK's own
//!   object (holds the code of this module), the C library (holds most of
//!   the C functions this module is bound to), the dynamic loader
//!   (`getauxval(AT_BASE)`) and the vDSO (`getauxval(AT_SYSINFO_EHDR)`).
//! - [`CodeReader`] (Linux): copies bytes of a *pinned* object's code
//!   segments out of memory, after checking against `/proc/self/maps` that
//!   they are mapped readable.
//! - [`resolve`] and [`describe`] (Linux): `dlsym(RTLD_DEFAULT, name)` and
//!   `dladdr` (the latter only for addresses of pinned objects).
//! - [`flip_code_byte`] (Linux, only in this crate's own unit-test binary,
//!   `cfg(test)`): patches a byte of code through `mprotect`, for the test
//!   that needs a real in-memory patch.
//!
//! Everything it returns is plain owned data; no pointer leaves the module.
//! Everything that can be done without `unsafe` (parsing `/proc`, CPUID,
//! reading files) lives elsewhere.

#![allow(unsafe_code)]

/// The effective uid of the process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no
    // memory of ours.
    unsafe { libc::geteuid() }
}

/// `CLOCK_BOOTTIME`: monotonic, and unlike `CLOCK_MONOTONIC` (what
/// `std::time::Instant` reads) it keeps counting while the device is
/// suspended. `None` if the kernel refuses it (older than 2.6.39).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn boottime() -> Option<std::time::Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call;
    // clock_gettime writes only to it and has no other preconditions.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    Some(std::time::Duration::new(secs, nanos))
}

#[cfg(target_os = "linux")]
pub(crate) use elf::*;

#[cfg(target_os = "linux")]
mod elf {
    use std::ffi::{CStr, CString, c_int, c_void};

    use crate::linux::maps;

    /// `PT_LOAD`.
    pub(crate) const PT_LOAD: u32 = 1;
    /// `PF_X`.
    pub(crate) const PF_X: u32 = 1;
    /// `PF_W`.
    pub(crate) const PF_W: u32 = 2;

    /// One program header of a loaded object, as the loader holds it in memory.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Phdr {
        pub(crate) p_type: u32,
        pub(crate) p_flags: u32,
        pub(crate) p_offset: u64,
        pub(crate) p_vaddr: u64,
        pub(crate) p_filesz: u64,
        pub(crate) p_memsz: u64,
    }

    impl Phdr {
        /// An executable `PT_LOAD` segment.
        pub(crate) fn is_exec_load(&self) -> bool {
            self.p_type == PT_LOAD && self.p_flags & PF_X != 0
        }

        /// An executable, non-writable `PT_LOAD` segment: code, which no Rust
        /// code of this process writes (a writable segment holds data, e.g.
        /// Rust statics, that other threads may be writing).
        pub(crate) fn is_code(&self) -> bool {
            self.is_exec_load() && self.p_flags & PF_W == 0
        }
    }

    /// A loaded ELF object (the main program first).
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Object {
        /// The loader's name for it: empty for the main program, a path for
        /// shared objects (`linux-vdso.so.1` for the vDSO). Only for
        /// messages: nothing is decided by it.
        pub(crate) name: String,
        /// The load bias: runtime address = bias + `p_vaddr`.
        pub(crate) bias: u64,
        /// Its program headers.
        pub(crate) phdrs: Vec<Phdr>,
        /// Whether it is the main program.
        pub(crate) is_main: bool,
        /// Whether this object holds the code of this module (the SDK's own
        /// object: the main program when the SDK is linked statically, a
        /// shared library when it is loaded from Kotlin, Swift or C).
        pub(crate) holds_sdk: bool,
        /// Whether it is the C library: the object holding most of the C
        /// functions this module calls (see [`Anchors`]).
        pub(crate) is_libc: bool,
        /// Whether it is the dynamic loader (`getauxval(AT_BASE)`).
        pub(crate) is_loader: bool,
        /// Whether it is the vDSO (`getauxval(AT_SYSINFO_EHDR)`).
        pub(crate) is_vdso: bool,
        /// Whether it is glibc's `libpthread` before glibc 2.34 (it defines
        /// cancellation wrappers of `read`, `write`, `open`, …): the object
        /// holding `pthread_create`, in the C library's directory.
        pub(crate) is_libc_part: bool,
    }

    impl Object {
        /// Whether the object stays mapped for the rest of the process's life,
        /// which is what makes reading its memory sound (see [`CodeReader`]):
        ///
        /// - the main program is never unloaded;
        /// - the SDK's own object cannot be unloaded while its code runs (that
        ///   would break the program whatever we do);
        /// - the C library is, by its definition here, the object the SDK's
        ///   own object is *bound to* for the C functions it calls (the
        ///   addresses come from the SDK's own relocations, see [`Anchors`]).
        ///   glibc's loader never unloads an object while an object bound to
        ///   it stays loaded (`dl-lookup.c`: a binding to an object outside
        ///   the binder's dependencies adds a dependency, or makes the bound
        ///   object `NODELETE` when the binder can never be unloaded); musl
        ///   never unloads anything. A `dlopen`ed library *named* `libc.so…`
        ///   is not the C library here, and is not pinned;
        /// - the dynamic loader implements `dlclose` and is never unloaded;
        /// - the vDSO is mapped by the kernel for the life of the process.
        pub(crate) fn is_pinned(&self) -> bool {
            self.is_main || self.holds_sdk || self.is_libc || self.is_loader || self.is_vdso
        }

        /// Whether runtime address `addr` lies in one of its `PT_LOAD` segments.
        pub(crate) fn contains(&self, addr: u64) -> bool {
            self.phdrs.iter().any(|p| {
                let start = self.bias.wrapping_add(p.p_vaddr);
                p.p_type == PT_LOAD && addr >= start && addr - start < p.p_memsz
            })
        }

        /// The file name the object was loaded from, for messages.
        pub(crate) fn short_name(&self) -> String {
            if self.is_main {
                return "exe".to_owned();
            }
            self.name
                .rsplit('/')
                .next()
                .unwrap_or(&self.name)
                .to_owned()
        }
    }

    /// The addresses that classify the loaded objects.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Anchors {
        /// A function of this module: it lies in the SDK's own object.
        pub(crate) own: u64,
        /// C library functions as the SDK's own object is bound to them (its
        /// GOT entries): the object holding most of them is the C library.
        /// Several, so that interposing one of them (a preloaded library
        /// defining `getpid`, say) does not make the interposer "libc"; none
        /// of them is commonly interposed (unlike `malloc`).
        pub(crate) libc: Vec<u64>,
        /// `pthread_create` (in `libpthread` before glibc 2.34).
        pub(crate) pthread: u64,
        /// `getauxval(AT_BASE)`: the dynamic loader's base (0 when static).
        pub(crate) at_base: u64,
        /// `getauxval(AT_SYSINFO_EHDR)`: the vDSO's ELF header (0 if none).
        pub(crate) vdso: u64,
    }

    // `c_ulong` is 32-bit on 32-bit targets: `u64::from` widens it there.
    #[allow(clippy::useless_conversion)]
    fn auxv(kind: libc::c_ulong) -> u64 {
        // SAFETY: getauxval has no preconditions; it reads the auxiliary
        // vector the kernel passed and returns 0 for an absent entry.
        u64::from(unsafe { libc::getauxval(kind) })
    }

    impl Anchors {
        /// This process's anchors.
        pub(crate) fn here() -> Self {
            Self {
                own: own_code_address(),
                libc: vec![
                    libc::getauxval as *const () as usize as u64,
                    libc::sysconf as *const () as usize as u64,
                    libc::uname as *const () as usize as u64,
                    libc::dl_iterate_phdr as *const () as usize as u64,
                    libc::getppid as *const () as usize as u64,
                ],
                pthread: libc::pthread_create as *const () as usize as u64,
                at_base: auxv(libc::AT_BASE),
                vdso: auxv(libc::AT_SYSINFO_EHDR),
            }
        }
    }

    /// Classifies `objects` (the main program first) by `anchors`.
    pub(crate) fn classify(objects: &mut [Object], anchors: &Anchors) {
        let owner = |objs: &[Object], addr: u64| {
            (addr != 0)
                .then(|| objs.iter().position(|o| o.contains(addr) || o.bias == addr))
                .flatten()
        };
        for o in objects.iter_mut() {
            o.holds_sdk = o.contains(anchors.own);
        }
        // The C library: the object holding a strict majority of the anchors.
        let mut votes = vec![0usize; objects.len()];
        for &a in &anchors.libc {
            if let Some(i) = owner(objects, a)
                && let Some(v) = votes.get_mut(i)
            {
                *v += 1;
            }
        }
        let libc = votes
            .iter()
            .position(|&v| v * 2 > anchors.libc.len())
            // In a dynamically linked non-PIE program the addresses of C
            // functions are the program's own PLT slots: the C library is
            // then not identified. (A static program holds it.)
            .filter(|&i| !(objects[i].is_main && anchors.at_base != 0));
        if let Some(i) = libc {
            objects[i].is_libc = true;
        }
        if let Some(i) = owner(objects, anchors.at_base).filter(|&i| !objects[i].is_main) {
            objects[i].is_loader = true;
        }
        if let Some(i) = owner(objects, anchors.vdso).filter(|&i| !objects[i].is_main) {
            objects[i].is_vdso = true;
        }
        if let (Some(l), Some(p)) = (libc, owner(objects, anchors.pthread))
            && p != l
            && !objects[p].is_main
            && same_dir(&objects[l].name, &objects[p].name)
        {
            objects[p].is_libc_part = true;
        }
    }

    fn same_dir(a: &str, b: &str) -> bool {
        let dir = |p: &str| {
            let parent = std::path::Path::new(p).parent()?.to_path_buf();
            Some(std::fs::canonicalize(&parent).unwrap_or(parent))
        };
        matches!((dir(a), dir(b)), (Some(x), Some(y)) if x == y && x.is_absolute())
    }

    /// The address of a function of this module: it lies in the SDK's object.
    /// (A Rust function, referenced PC-relative: no relocation can redirect it.)
    fn own_code_address() -> u64 {
        objects as fn() -> Vec<Object> as usize as u64
    }

    struct Collected {
        objects: Vec<Object>,
    }

    /// The `dl_iterate_phdr` callback. It must not panic: a panic cannot
    /// unwind out of an `extern "C"` function, the process would abort. It
    /// only copies plain data (an allocation failure aborts anyway).
    // The ELF types are 32-bit on 32-bit targets: `u64::from` widens them there.
    #[allow(clippy::useless_conversion)]
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `dl_iterate_phdr` calls this with `data` = the `&mut
        // Collected` that `objects` passed, alive and exclusively ours for the
        // whole call, and with `info` pointing to a valid `dl_phdr_info` for
        // the duration of this callback. `dlpi_name` is a NUL-terminated
        // string (or null) and `dlpi_phdr` points to `dlpi_phnum` program
        // headers, both owned by the loader and valid while the callback runs
        // (the loader lock is held, so no object is unloaded meanwhile). We
        // copy what we need and keep no pointer.
        unsafe {
            let (Some(info), Some(out)) = (info.as_ref(), data.cast::<Collected>().as_mut()) else {
                return 0;
            };
            let name = if info.dlpi_name.is_null() {
                String::new()
            } else {
                CStr::from_ptr(info.dlpi_name)
                    .to_string_lossy()
                    .into_owned()
            };
            let mut phdrs = Vec::with_capacity(usize::from(info.dlpi_phnum));
            if !info.dlpi_phdr.is_null() {
                for ph in std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) {
                    phdrs.push(Phdr {
                        p_type: ph.p_type,
                        p_flags: ph.p_flags,
                        p_offset: u64::from(ph.p_offset),
                        p_vaddr: u64::from(ph.p_vaddr),
                        p_filesz: u64::from(ph.p_filesz),
                        p_memsz: u64::from(ph.p_memsz),
                    });
                }
            }
            let is_main = out.objects.is_empty();
            out.objects.push(Object {
                name,
                bias: u64::from(info.dlpi_addr),
                phdrs,
                is_main,
                ..Object::default()
            });
            0
        }
    }

    /// The loaded objects, the main program first (glibc, musl and bionic all
    /// report it first), classified ([`classify`]).
    pub(crate) fn objects() -> Vec<Object> {
        let mut out = Collected {
            objects: Vec::new(),
        };
        // SAFETY: `collect` matches the callback type `dl_iterate_phdr`
        // expects, does not panic (see its doc), and only touches `out`
        // through the pointer we pass, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(Some(collect), std::ptr::from_mut(&mut out).cast::<c_void>());
        }
        classify(&mut out.objects, &Anchors::here());
        out.objects
    }

    /// Why bytes could not be read from memory.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum ReadError {
        /// The object may be unloaded at any time: its memory is not read.
        NotPinned,
        /// The range is not inside one of the object's code segments
        /// (executable, not writable `PT_LOAD`, within `p_filesz`).
        OutsideCode,
        /// The kernel does not report the range as mapped readable.
        NotReadable,
        /// `/proc/self/maps` could not be read.
        NoMaps,
    }

    /// Held while code is read, and taken exclusively by [`flip_code_byte`]:
    /// the test patch never writes a byte while the SDK reads it. (Only in
    /// this crate's unit-test binary, the only one with `flip_code_byte`.)
    #[cfg(test)]
    static CODE_PATCH: std::sync::RwLock<()> = std::sync::RwLock::new(());

    /// Copies bytes of a pinned object's code segments out of memory.
    pub(crate) struct CodeReader<'a> {
        object: &'a Object,
        /// Readable mappings `[start, end)` as the kernel listed them when the
        /// reader was made, sorted and merged.
        readable: Vec<(u64, u64)>,
    }

    impl<'a> CodeReader<'a> {
        /// A reader for `object`, which must be pinned ([`Object::is_pinned`]).
        pub(crate) fn new(object: &'a Object) -> Result<Self, ReadError> {
            if !object.is_pinned() {
                return Err(ReadError::NotPinned);
            }
            let text = std::fs::read_to_string("/proc/self/maps").map_err(|_| ReadError::NoMaps)?;
            let mut readable: Vec<(u64, u64)> = maps::parse(&text)
                .into_iter()
                .filter(|m| m.read)
                .map(|m| (m.start, m.end))
                .collect();
            readable.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(readable.len());
            for (s, e) in readable {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            Ok(Self {
                object,
                readable: merged,
            })
        }

        fn check(&self, addr: u64, len: u64) -> Result<(), ReadError> {
            let end = addr.checked_add(len).ok_or(ReadError::OutsideCode)?;
            let in_code = self.object.phdrs.iter().any(|p| {
                let start = self.object.bias.wrapping_add(p.p_vaddr);
                p.is_code() && addr >= start && end <= start.saturating_add(p.p_filesz)
            });
            if !in_code {
                return Err(ReadError::OutsideCode);
            }
            let covered = self.readable.iter().any(|&(s, e)| addr >= s && end <= e);
            if !covered {
                return Err(ReadError::NotReadable);
            }
            Ok(())
        }

        /// Fills `buf` with the bytes at runtime address `addr`.
        pub(crate) fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            self.check(addr, buf.len() as u64)?;
            let Ok(base) = usize::try_from(addr) else {
                return Err(ReadError::OutsideCode);
            };
            #[cfg(test)]
            let _no_patch = CODE_PATCH
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = buf.len();
            let head = base.next_multiple_of(8).saturating_sub(base).min(n);
            // SAFETY: `check` established that [addr, addr + n) lies inside a
            // code segment (executable, not writable PT_LOAD, within p_filesz,
            // so backed by the file, never past the mapping) of a pinned
            // object, and that the kernel lists the whole range as mapped
            // readable. A pinned object is never unmapped while the process
            // runs (see `Object::is_pinned`), so every address read below is
            // valid for reads of the size read.
            //
            // No Rust code of this process writes these bytes: they are not a
            // Rust object (not a static, not on a heap or stack), and in this
            // crate's unit tests the only writer, `flip_code_byte`, holds
            // `CODE_PATCH` exclusively, which we hold shared here. The only
            // other writers are outside the Rust abstract machine (a
            // debugger's ptrace, a hooking framework's C code, the loader
            // before `main`). We therefore never form a `&[u8]` over that
            // memory: each load is a volatile read of a `u8` or an aligned
            // `u64`, which the compiler may not elide, merge or assume stable,
            // and whose value is whatever the memory holds at that instant.
            // `buf` is ours.
            let (first, rest) = buf.split_at_mut(head);
            let mut words = rest.chunks_exact_mut(8);
            unsafe {
                for (i, b) in first.iter_mut().enumerate() {
                    *b = std::ptr::read_volatile((base + i) as *const u8);
                }
                let aligned = base + head;
                for (k, w) in words.by_ref().enumerate() {
                    let v = std::ptr::read_volatile((aligned + 8 * k) as *const u64);
                    w.copy_from_slice(&v.to_ne_bytes());
                }
                let tail_at = aligned + (n - head) / 8 * 8;
                for (i, b) in words.into_remainder().iter_mut().enumerate() {
                    *b = std::ptr::read_volatile((tail_at + i) as *const u8);
                }
            }
            Ok(())
        }
    }

    /// `dlsym(RTLD_DEFAULT, name)`: where the dynamic linker resolves a global
    /// symbol for this process (an interposing preloaded library comes first).
    pub(crate) fn resolve(name: &str) -> Option<u64> {
        let name = CString::new(name).ok()?;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the
        // call; RTLD_DEFAULT is a valid handle; dlsym only looks the name up
        // and returns an address (or null), which we do not dereference.
        let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        (!addr.is_null()).then_some(addr as usize as u64)
    }

    /// The nearest dynamic symbol at or before `addr` in `object`, with its
    /// address (`dladdr`). `None` unless `object` is pinned and `addr` lies in
    /// it: the name `dladdr` returns lives in the object's string table, which
    /// a concurrent `dlclose` of an unpinned object could unmap.
    pub(crate) fn describe(object: &Object, addr: u64) -> Option<(String, u64)> {
        if !object.is_pinned() || !object.contains(addr) {
            return None;
        }
        let ptr = usize::try_from(addr).ok()? as *const c_void;
        let mut info = libc::Dl_info {
            dli_fname: std::ptr::null(),
            dli_fbase: std::ptr::null_mut(),
            dli_sname: std::ptr::null(),
            dli_saddr: std::ptr::null_mut(),
        };
        // SAFETY: dladdr only compares `ptr` with the loaded objects' ranges
        // and never dereferences it; `info` is a valid, writable Dl_info.
        // `addr` lies in a PT_LOAD segment of `object`, and loaded objects do
        // not overlap, so dladdr describes `object`: on success `dli_sname` is
        // null or a NUL-terminated name in `object`'s dynamic string table,
        // which stays mapped as long as `object` does — for the life of the
        // process, since it is pinned (`Object::is_pinned`). We copy it at
        // once. `dli_fname` is not read (for the main program it may be
        // `argv[0]`, which the program may rewrite).
        unsafe {
            if libc::dladdr(ptr, &mut info) == 0 || info.dli_sname.is_null() {
                return None;
            }
            let name = CStr::from_ptr(info.dli_sname)
                .to_string_lossy()
                .into_owned();
            Some((name, info.dli_saddr as usize as u64))
        }
    }

    /// Flips (XOR 0xff) the byte at `addr`, which must lie in a code segment
    /// of the SDK's own object, by making its page writable and executable
    /// for the write and read-and-executable again afterwards. Only in this
    /// crate's unit-test binary: it exists to create a real in-memory patch.
    #[cfg(test)]
    pub(crate) fn flip_code_byte(addr: u64) -> std::io::Result<()> {
        use std::io::{Error, ErrorKind};
        let own = objects().into_iter().find(|o| o.holds_sdk);
        let in_own_code = own.is_some_and(|o| {
            o.phdrs.iter().any(|p| {
                let start = o.bias.wrapping_add(p.p_vaddr);
                p.is_code() && addr >= start && addr - start < p.p_filesz
            })
        });
        if !in_own_code {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "not an address of the SDK's own code",
            ));
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = u64::try_from(page)
            .ok()
            .filter(|p| p.is_power_of_two())
            .ok_or_else(|| Error::other("no page size"))?;
        let start = usize::try_from(addr & !(page - 1)).map_err(Error::other)?;
        let byte = usize::try_from(addr).map_err(Error::other)? as *mut u8;
        let len = usize::try_from(page).map_err(Error::other)?;
        let _exclusive = CODE_PATCH
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: [start, start + page) is a page of the SDK's own code
        // segment (checked above), mapped for the process's life. Keeping
        // PROT_EXEC while it is writable means other threads running code on
        // that page keep running. The byte belongs to a function that is never
        // called (`tamper::target`), so no thread executes it. The only Rust
        // code that reads code bytes is `CodeReader::read`, which holds
        // `CODE_PATCH` shared while it reads; we hold it exclusively, so the
        // volatile read and write below race with no Rust access.
        unsafe {
            let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
            if libc::mprotect(start as *mut c_void, len, rwx) != 0 {
                return Err(Error::last_os_error());
            }
            std::ptr::write_volatile(byte, std::ptr::read_volatile(byte) ^ 0xff);
            if libc::mprotect(start as *mut c_void, len, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                return Err(Error::last_os_error());
            }
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn main_program_first_and_each_part_found_by_address() {
            let objs = objects();
            assert!(objs[0].is_main && objs[0].name.is_empty());
            assert_eq!(objs.iter().filter(|o| o.holds_sdk).count(), 1);
            assert_eq!(objs.iter().filter(|o| o.is_libc).count(), 1, "{objs:?}");
            assert_eq!(objs.iter().filter(|o| o.is_loader).count(), 1, "{objs:?}");
            assert_eq!(objs.iter().filter(|o| o.is_vdso).count(), 1, "{objs:?}");
            assert!(objs[0].phdrs.iter().any(Phdr::is_code));
            // The one found by address is the one the dynamic linker resolves
            // libc's functions into.
            let libc = objs.iter().find(|o| o.is_libc).unwrap();
            if std::env::var_os("LD_PRELOAD").is_none() {
                assert!(libc.contains(resolve("getpid").unwrap()));
            }
            // Libraries that are none of these are not pinned (the test
            // binary links libgcc_s).
            for o in &objs {
                let known = o.is_main || o.holds_sdk || o.is_libc || o.is_loader || o.is_vdso;
                assert_eq!(o.is_pinned(), known, "{o:?}");
            }
        }

        fn obj(name: &str, base: u64, main: bool) -> Object {
            Object {
                name: name.into(),
                bias: base,
                phdrs: vec![Phdr {
                    p_type: PT_LOAD,
                    p_flags: PF_X | 4,
                    p_offset: 0,
                    p_vaddr: 0,
                    p_filesz: 0x1000,
                    p_memsz: 0x1000,
                }],
                is_main: main,
                ..Object::default()
            }
        }

        #[test]
        fn classification_ignores_names() {
            // A preloaded interposer named like the C library, defining one
            // of the anchors (as an interposer of `getpid` would).
            let mut objs = vec![
                obj("", 0x10000, true),
                obj("/tmp/libc.so.hook", 0x20000, false),
                obj("/usr/lib/x86_64-linux-gnu/libc.so.6", 0x30000, false),
                obj("/lib64/ld-linux-x86-64.so.2", 0x40000, false),
                obj("linux-vdso.so.1", 0x50000, false),
                obj("/tmp/libdl.so.2", 0x60000, false),
            ];
            let anchors = Anchors {
                own: 0x10010,
                libc: vec![0x20010, 0x30010, 0x30020, 0x30030, 0x30040],
                pthread: 0x60010,
                at_base: 0x40000,
                vdso: 0x50000,
            };
            classify(&mut objs, &anchors);
            let flags = |o: &Object| {
                (
                    o.holds_sdk,
                    o.is_libc,
                    o.is_loader,
                    o.is_vdso,
                    o.is_libc_part,
                )
            };
            assert_eq!(flags(&objs[0]), (true, false, false, false, false));
            assert_eq!(flags(&objs[1]), (false, false, false, false, false));
            assert!(!objs[1].is_pinned(), "the look-alike is not pinned");
            assert_eq!(flags(&objs[2]), (false, true, false, false, false));
            assert_eq!(flags(&objs[3]), (false, false, true, false, false));
            assert_eq!(flags(&objs[4]), (false, false, false, true, false));
            // `pthread_create` outside the C library's dir: not glibc's part.
            assert_eq!(flags(&objs[5]), (false, false, false, false, false));
            // In its dir (glibc before 2.34): its `libpthread`.
            let mut old_glibc = objs.clone();
            old_glibc[5].name = "/usr/lib/x86_64-linux-gnu/libpthread.so.0".into();
            classify(&mut old_glibc, &anchors);
            assert_eq!(flags(&old_glibc[5]), (false, false, false, false, true));
            assert!(!old_glibc[5].is_pinned());

            // No strict majority: no C library.
            let mut objs2 = objs.clone();
            objs2.iter_mut().for_each(|o| o.is_libc = false);
            let split = Anchors {
                libc: vec![0x20010, 0x20020, 0x30010, 0x30020],
                ..anchors.clone()
            };
            classify(&mut objs2, &split);
            assert!(objs2.iter().all(|o| !o.is_libc));
            // Non-PIE: the anchors land in the program's PLT; a dynamically
            // linked program is not its own C library. A static one is.
            let mut objs3 = vec![obj("", 0x10000, true)];
            let plt = Anchors {
                libc: vec![0x10020; 5],
                ..anchors.clone()
            };
            classify(&mut objs3, &plt);
            assert!(!objs3[0].is_libc);
            let static_prog = Anchors { at_base: 0, ..plt };
            classify(&mut objs3, &static_prog);
            assert!(objs3[0].is_libc);
        }

        #[test]
        fn reader_refuses_outside_code() {
            let objs = objects();
            let main = &objs[0];
            let r = CodeReader::new(main).unwrap();
            let seg = main.phdrs.iter().find(|p| p.is_code()).unwrap();
            let start = main.bias + seg.p_vaddr;
            let mut buf = [0u8; 16];
            r.read(start, &mut buf).unwrap();
            let end = start + seg.p_filesz;
            assert_eq!(r.read(end - 8, &mut buf), Err(ReadError::OutsideCode));
            assert_eq!(r.read(8, &mut buf), Err(ReadError::OutsideCode));
            // A readable data segment (Rust statics live there) is not code.
            let data = main
                .phdrs
                .iter()
                .find(|p| p.p_type == PT_LOAD && p.p_flags & PF_W != 0 && p.p_filesz >= 16)
                .unwrap();
            let at = main.bias + data.p_vaddr;
            assert_eq!(r.read(at, &mut buf), Err(ReadError::OutsideCode));
            let unpinned = objs.iter().find(|o| !o.is_pinned()).unwrap();
            assert!(matches!(
                CodeReader::new(unpinned),
                Err(ReadError::NotPinned)
            ));
        }

        #[test]
        fn dlsym_and_dladdr_agree_on_libc_and_unpinned_is_refused() {
            let objs = objects();
            let addr = resolve("getpid").unwrap();
            let libc = objs.iter().find(|o| o.is_libc).unwrap();
            let (name, saddr) = describe(libc, addr).unwrap();
            assert_eq!(saddr, addr);
            assert!(name.contains("getpid"), "{name}");
            assert!(resolve("no_such_symbol_genuine").is_none());
            // An address outside the object, or in an unpinned object: no
            // answer (dladdr is not even called).
            let main = &objs[0];
            assert_eq!(describe(main, addr), None);
            let unpinned = objs.iter().find(|o| !o.is_pinned()).unwrap();
            let code = unpinned.phdrs.iter().find(|p| p.is_code()).unwrap();
            assert_eq!(
                describe(unpinned, unpinned.bias + code.p_vaddr + code.p_filesz / 2),
                None
            );
        }

        #[test]
        fn boottime_runs_and_uid_matches_proc() {
            let a = crate::sys::boottime().unwrap();
            let b = crate::sys::boottime().unwrap();
            assert!(b >= a);
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let euid = crate::linux::maps::status_fields(&status, "Uid").unwrap()[1];
            assert_eq!(u64::from(crate::sys::effective_uid()), euid);
        }
    }
}

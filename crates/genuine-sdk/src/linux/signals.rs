//! Device-integrity signals on Linux, each a real check read at the moment
//! it is called (protocol §2 `signals`). Every list is bounded
//! ([`MAX_ITEMS`] entries of at most [`MAX_ITEM_LEN`] bytes) so evidence
//! stays far below the service's 64 KiB limit whatever the process holds.

use std::collections::BTreeSet;

use crate::linux::maps::{self, Mapping};
use crate::linux::measure::{self, DELETED};
use crate::sys::{self, Object};

/// Most entries one signal list carries.
pub const MAX_ITEMS: usize = 32;
/// Longest entry, in bytes (longer ones are cut at a character boundary).
pub const MAX_ITEM_LEN: usize = 256;

/// C library functions that hooking tools interpose; each must resolve into
/// the C library itself.
const WATCHED_SYMBOLS: &[&str] = &[
    "open",
    "open64",
    "openat",
    "read",
    "write",
    "close",
    "stat",
    "access",
    "readlink",
    "fopen",
    "connect",
    "send",
    "recv",
    "getenv",
    "ptrace",
    "getpid",
    "getuid",
    "geteuid",
    "execve",
    "fork",
    "mmap",
    "mprotect",
    "strcmp",
    "strncmp",
    "memcmp",
    "strstr",
    "time",
    "gettimeofday",
    "clock_gettime",
    "dl_iterate_phdr",
];

/// Names of instrumentation toolkits as they appear in mapping paths and
/// thread names.
const INSTRUMENTATION: &[&str] = &["frida", "gum-js", "linjector"];

/// At most [`MAX_ITEMS`] distinct entries, each cut to [`MAX_ITEM_LEN`]
/// bytes, in their first order.
pub(crate) fn bounded(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for mut item in items {
        if item.len() > MAX_ITEM_LEN {
            let mut cut = MAX_ITEM_LEN;
            while !item.is_char_boundary(cut) {
                cut -= 1;
            }
            item.truncate(cut);
        }
        if seen.insert(item.clone()) {
            out.push(item);
            if out.len() == MAX_ITEMS {
                break;
            }
        }
    }
    out
}

/// `debugger`: some thread of the process is traced (`TracerPid` in
/// `/proc/self/task/*/status` is not 0): gdb, strace, ltrace, or anything
/// else attached with ptrace — also when attached to one thread only
/// (`strace -p TID`), which `/proc/self/status` (the main thread's) does not
/// show.
#[must_use]
pub fn debugger() -> bool {
    let mut statuses = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            // A thread that ended meanwhile has no status any more.
            if let Ok(s) = std::fs::read_to_string(task.path().join("status")) {
                statuses.push(s);
            }
        }
    }
    if statuses.is_empty()
        && let Ok(s) = std::fs::read_to_string("/proc/self/status")
    {
        statuses.push(s);
    }
    any_traced(statuses.iter().map(String::as_str))
}

/// Whether any of these `/proc/…/status` texts names a tracer.
pub(crate) fn any_traced<'a>(statuses: impl IntoIterator<Item = &'a str>) -> bool {
    statuses
        .into_iter()
        .any(|s| maps::status_field(s, "TracerPid").is_some_and(|pid| pid != 0))
}

/// `root`: the effective uid is 0.
#[must_use]
pub fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| maps::status_fields(&s, "Uid"))
        .and_then(|uids| uids.get(1).copied())
        .is_some_and(|euid| euid == 0)
}

/// `preload`: libraries forced into the process: the `LD_PRELOAD`
/// environment variable, `/etc/ld.so.preload`, and any object other than the
/// C library (and the program itself) that the watched C library functions
/// resolve into — which catches a preloaded library even after it removed
/// itself from the environment, whatever it is named: the C library is the
/// object the SDK's own code is bound to (`sys::classify`), not a file name.
#[must_use]
pub fn preload() -> Vec<String> {
    let objects = sys::objects();
    preload_with(&objects)
}

pub(crate) fn preload_with(objects: &[Object]) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(v) = std::env::var_os("LD_PRELOAD") {
        found.extend(ld_preload_env(&v.to_string_lossy()));
    }
    if let Ok(bytes) = std::fs::read("/etc/ld.so.preload") {
        found.extend(ld_so_preload(&String::from_utf8_lossy(&bytes)));
    }
    for name in WATCHED_SYMBOLS {
        let Some(addr) = sys::resolve(name) else {
            continue;
        };
        let Some(owner) = objects.iter().find(|o| o.contains(addr)) else {
            // Resolved into memory no loaded object claims.
            found.push(format!("{name}@{addr:#x}"));
            continue;
        };
        if !defines_libc_symbols(owner) {
            found.push(owner.name.clone());
        }
    }
    bounded(found)
}

/// The names in `LD_PRELOAD`, as glibc's loader splits them (spaces and
/// colons; no escapes).
pub(crate) fn ld_preload_env(v: &str) -> Vec<String> {
    v.split([':', ' '])
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The names in `/etc/ld.so.preload`, as glibc's loader reads them
/// (`elf/rtld.c`): a `#` starts a comment that runs to the end of its line;
/// names are separated by spaces, tabs, newlines and colons (nothing else:
/// a `\r` is part of a name, as for the loader).
pub(crate) fn ld_so_preload(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split([' ', '\t', ':']))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The objects that legitimately define some watched symbols, each known
/// by address (`sys::classify`), never by file name: the C library, the
/// program itself, the dynamic loader, the vDSO (the time functions) and,
/// before glibc 2.34, `libpthread` (cancellation wrappers of `read`,
/// `write`, `open`, `connect`, …).
fn defines_libc_symbols(o: &Object) -> bool {
    o.is_libc || o.is_main || o.is_loader || o.is_vdso || o.is_libc_part
}

fn mentions_instrumentation(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    INSTRUMENTATION.iter().any(|n| lower.contains(n))
}

/// `injected`: executable memory that no file on disk backs — mappings of a
/// memfd, of a deleted file, or anonymous — and instrumentation toolkits
/// (Frida's agent and gadget, …) by mapping path or thread name. (Frida 17
/// injects its agent as `/memfd:frida-agent-64.so` plus anonymous code, which
/// the mapping checks find; its threads keep the process's name, so the
/// thread-name check only catches tools that name theirs, such as older
/// Frida releases' `gum-js-loop`.)
///
/// A deleted file is flagged only when it is not a loaded object at that
/// address, by that path: after a package upgrade the C library and other
/// libraries show as deleted in every running program (`code_patched` then
/// compares their code or, for the C library, says why it cannot; see
/// [`code_check`]). A memfd is always flagged, loaded object or not.
///
/// Programs that generate code at run time (JIT compilers) have anonymous
/// executable memory legitimately; a policy for them turns
/// `reject.injected` off.
#[must_use]
pub fn injected() -> Vec<String> {
    injected_with(&sys::objects())
}

pub(crate) fn injected_with(objects: &[Object]) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut found = injected_in_maps(&maps::parse(&text), objects, measure::object_path);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) {
                let comm = comm.trim();
                if mentions_instrumentation(comm) {
                    found.push(format!("thread:{comm}"));
                }
            }
        }
    }
    bounded(found)
}

/// The maps part of [`injected`], over parsed mappings, the loaded objects
/// and how to find an object's file path.
pub(crate) fn injected_in_maps(
    mappings: &[Mapping],
    objects: &[Object],
    path_of: impl Fn(&Object) -> Option<String>,
) -> Vec<String> {
    let mut found = Vec::new();
    for m in mappings {
        let p = m.path.as_str();
        if mentions_instrumentation(p) {
            found.push(p.to_owned());
            continue;
        }
        if !m.exec {
            continue;
        }
        if p.starts_with("/memfd:") {
            found.push(p.to_owned());
        } else if let Some(file) = p.strip_suffix(DELETED) {
            let loaded = objects
                .iter()
                .any(|o| o.contains(m.start) && path_of(o).is_some_and(|op| op == file));
            if !loaded {
                found.push(p.to_owned());
            }
        } else if p.is_empty() {
            found.push(format!("anonymous-exec@{:#x}-{:#x}", m.start, m.end));
        } else if p.starts_with('[') && !matches!(p, "[vdso]" | "[vsyscall]" | "[uprobes]") {
            found.push(p.to_owned());
        }
    }
    found
}

/// `code_patched`: places where the executable code in memory of the C
/// library and of the SDK's own object (the program, when the SDK is linked
/// into it) differs from its file on disk — how inline hooks and software
/// breakpoints show up. Each is named `object:symbol+offset` or
/// `object+vaddr`. A file that cannot be compared is named too:
/// `exe:file-unavailable`, `libgenuine.so:file-replaced`,
/// `…:file-read-failed`, `libc:unidentified` (the one benign case, not
/// reported, is a C library whose file a package upgrade replaced; see
/// `measure::backing_file`).
#[must_use]
pub fn code_patched() -> Vec<String> {
    code_check().patched
}

/// What the `code_patched` comparison did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodeCheck {
    /// The `code_patched` list.
    pub patched: Vec<String>,
    /// Each object compared (its file name, `exe` for the program) and how
    /// many bytes of its code were compared with its file.
    pub compared: Vec<(String, u64)>,
}

/// The `code_patched` comparison, with what it compared.
#[must_use]
pub fn code_check() -> CodeCheck {
    code_check_with(&sys::objects())
}

pub(crate) fn code_check_with(objects: &[Object]) -> CodeCheck {
    let mut patched = Vec::new();
    let mut compared = Vec::new();
    if !objects.iter().any(|o| o.is_libc) && objects.iter().any(|o| o.is_loader) {
        // Dynamically linked, yet no C library found by address.
        patched.push("libc:unidentified".to_owned());
    }
    for o in objects.iter().filter(|o| o.is_libc || o.holds_sdk) {
        match measure::scan(o, false, true) {
            Ok(s) => {
                patched.extend(s.patches);
                compared.push((o.short_name(), s.compared));
            }
            Err(e) => patched.push(format!("{}:unreadable({e})", o.short_name())),
        }
    }
    CodeCheck {
        patched: bounded(patched),
        compared,
    }
}

/// DMI strings (`/sys/class/dmi/id/*`), as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dmi {
    pub(crate) sys_vendor: String,
    pub(crate) product_name: String,
    pub(crate) bios_vendor: String,
    pub(crate) board_vendor: String,
}

impl Dmi {
    fn read() -> Self {
        let f = |name: &str| {
            std::fs::read_to_string(format!("/sys/class/dmi/id/{name}")).unwrap_or_default()
        };
        Self {
            sys_vendor: f("sys_vendor"),
            product_name: f("product_name"),
            bios_vendor: f("bios_vendor"),
            board_vendor: f("board_vendor"),
        }
    }
}

/// Words in DMI strings that only hypervisors use (matched as whole words,
/// ignoring case).
const HYPERVISOR_WORDS: &[&str] = &[
    "qemu",
    "kvm",
    "vmware",
    "virtualbox",
    "innotek",
    "xen",
    "bochs",
    "parallels",
    "bhyve",
    "openstack",
    "firecracker",
    "cloud hypervisor",
    "google compute engine",
    "apple virtualization",
];

/// `virtualized`: the CPU reports a hypervisor (CPUID leaf 1, ECX bit 31, on
/// x86: the primary check), or `/sys/hypervisor/type` names one, or DMI
/// names a hypervisor. DMI vendors that also sell hardware count only with
/// their virtual product names: Microsoft only for `Virtual Machine`
/// (Hyper-V; a Surface is not), Amazon EC2 only for instance types that are
/// not `.metal` (bare-metal instances).
#[must_use]
pub fn virtualized() -> bool {
    if cpuid_hypervisor() {
        // The primary check decides alone: nothing else to read.
        return true;
    }
    let hv_type = std::fs::read_to_string("/sys/hypervisor/type").ok();
    virtualized_from(false, &Dmi::read(), hv_type.as_deref())
}

/// The decision of [`virtualized`] over what it reads.
pub(crate) fn virtualized_from(cpuid: bool, dmi: &Dmi, hypervisor_type: Option<&str>) -> bool {
    if cpuid || hypervisor_type.is_some_and(|t| !t.trim().is_empty()) {
        return true;
    }
    let fields = [
        &dmi.sys_vendor,
        &dmi.product_name,
        &dmi.bios_vendor,
        &dmi.board_vendor,
    ]
    .map(|f| f.trim().to_ascii_lowercase());
    let product = &fields[1];
    let any = |word: &str| fields.iter().any(|f| has_word(f, word));
    if HYPERVISOR_WORDS.iter().any(|w| any(w)) {
        return true;
    }
    if any("microsoft corporation") && has_word(product, "virtual machine") {
        return true;
    }
    if any("amazon ec2") && !product.is_empty() && !product.contains(".metal") {
        return true;
    }
    false
}

/// Whether `word` occurs in `text` with no letter or digit right before or
/// after it.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(target_arch = "x86_64")]
fn cpuid_hypervisor() -> bool {
    (std::arch::x86_64::__cpuid(1).ecx >> 31) & 1 == 1
}

#[cfg(target_arch = "x86")]
fn cpuid_hypervisor() -> bool {
    (std::arch::x86::__cpuid(1).ecx >> 31) & 1 == 1
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
fn cpuid_hypervisor() -> bool {
    false
}

/// The kernel release (`/proc/sys/kernel/osrelease`), e.g. `6.1.0-18-amd64`.
#[must_use]
pub fn os_version() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{PF_X, PT_LOAD, Phdr};

    fn m(exec: bool, path: &str) -> Mapping {
        Mapping {
            start: 0x1000,
            end: 0x2000,
            read: true,
            write: false,
            exec,
            offset: 0,
            inode: 0,
            path: path.into(),
        }
    }

    fn loaded(name: &str) -> Object {
        Object {
            name: name.into(),
            bias: 0x1000,
            phdrs: vec![Phdr {
                p_type: PT_LOAD,
                p_flags: PF_X | 4,
                p_offset: 0,
                p_vaddr: 0,
                p_filesz: 0x1000,
                p_memsz: 0x1000,
            }],
            ..Object::default()
        }
    }

    #[test]
    fn maps_findings() {
        let found = injected_in_maps(
            &[
                m(true, "/usr/lib/libc.so.6"),
                m(true, "[vdso]"),
                m(false, ""),
                m(true, ""),
                m(true, "/memfd:jit (deleted)"),
                m(true, "/tmp/evil.so (deleted)"),
                m(false, "/tmp/frida-gadget.so"),
            ],
            &[],
            |o| Some(o.name.clone()),
        );
        assert_eq!(
            found,
            vec![
                "anonymous-exec@0x1000-0x2000",
                "/memfd:jit (deleted)",
                "/tmp/evil.so (deleted)",
                "/tmp/frida-gadget.so"
            ]
        );
    }

    #[test]
    fn deleted_loaded_objects_are_not_injected_but_memfds_are() {
        let path_of = |o: &Object| Some(o.name.clone());
        // After an upgrade: a loaded object's file deleted.
        let libc = loaded("/usr/lib/x86_64-linux-gnu/libc.so.6");
        let maps = [m(true, "/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)")];
        assert!(injected_in_maps(&maps, std::slice::from_ref(&libc), path_of).is_empty());
        // The same mapping with no loaded object there, or one of another
        // path (a file mapped over the object's code): flagged.
        assert_eq!(injected_in_maps(&maps, &[], path_of).len(), 1);
        let other = loaded("/usr/lib/x86_64-linux-gnu/libm.so.6");
        assert_eq!(injected_in_maps(&maps, &[other], path_of).len(), 1);
        let mut elsewhere = libc.clone();
        elsewhere.bias = 0x10_0000;
        assert_eq!(injected_in_maps(&maps, &[elsewhere], path_of).len(), 1);
        // A memfd stays flagged even when loaded as an object.
        let memfd = loaded("/memfd:agent.so");
        let maps = [m(true, "/memfd:agent.so (deleted)")];
        assert_eq!(injected_in_maps(&maps, &[memfd], path_of).len(), 1);
    }

    #[test]
    fn ld_so_preload_is_parsed_as_glibc_does() {
        let text = "/lib/a.so # a comment /lib/not.so\n\
                    #/lib/commented-out.so\n\
                    /lib/b.so:/lib/c.so\t/lib/d.so#trailing\n\
                    \n   /lib/e.so\r\n";
        assert_eq!(
            ld_so_preload(text),
            vec![
                "/lib/a.so",
                "/lib/b.so",
                "/lib/c.so",
                "/lib/d.so",
                "/lib/e.so\r"
            ]
        );
        assert!(ld_so_preload("# only a comment\n").is_empty());
        assert_eq!(
            ld_preload_env(" /a.so::/b.so /c.so "),
            vec!["/a.so", "/b.so", "/c.so"]
        );
    }

    #[test]
    fn traced_in_any_thread() {
        let main = "Name:\tapp\nTracerPid:\t0\n";
        let traced = "Name:\tworker\nTracerPid:\t4242\n";
        assert!(!any_traced([main, main]));
        assert!(any_traced([main, traced]));
        assert!(!any_traced([]));
    }

    fn dmi(sys_vendor: &str, product_name: &str, bios_vendor: &str) -> Dmi {
        Dmi {
            sys_vendor: format!("{sys_vendor}\n"),
            product_name: format!("{product_name}\n"),
            bios_vendor: format!("{bios_vendor}\n"),
            board_vendor: String::new(),
        }
    }

    #[test]
    fn virtualized_from_fixture_strings() {
        let vm = |d: &Dmi| virtualized_from(false, d, None);
        // Hardware of vendors that also run clouds.
        let surface = dmi(
            "Microsoft Corporation",
            "Surface Pro 7",
            "Microsoft Corporation",
        );
        assert!(!vm(&surface));
        let hyperv = dmi(
            "Microsoft Corporation",
            "Virtual Machine",
            "Microsoft Corporation",
        );
        assert!(vm(&hyperv));
        assert!(vm(&dmi("Amazon EC2", "m5.large", "Amazon EC2")));
        assert!(!vm(&dmi("Amazon EC2", "m5.metal", "Amazon EC2")));
        assert!(!vm(&dmi("Amazon EC2", "m7i.metal-24xl", "Amazon EC2")));
        // Hypervisors.
        assert!(vm(&dmi(
            "QEMU",
            "Standard PC (Q35 + ICH9, 2009)",
            "SeaBIOS"
        )));
        assert!(vm(&dmi("innotek GmbH", "VirtualBox", "innotek GmbH")));
        assert!(vm(&dmi("VMware, Inc.", "VMware7,1", "VMware, Inc.")));
        assert!(vm(&dmi("Xen", "HVM domU", "Xen")));
        assert!(vm(&dmi("Google", "Google Compute Engine", "Google")));
        // Physical machines, and words that merely contain a hypervisor's.
        assert!(!vm(&dmi("Dell Inc.", "PowerEdge R740", "Dell Inc.")));
        assert!(!vm(&dmi("LENOVO", "20XW0026GE", "LENOVO")));
        assert!(!vm(&dmi(
            "Xenon Systems",
            "Workstation",
            "American Megatrends"
        )));
        assert!(!vm(&Dmi::default()));
        // CPUID and /sys/hypervisor/type decide alone.
        assert!(virtualized_from(true, &surface, None));
        assert!(virtualized_from(false, &surface, Some("xen\n")));
        assert!(!virtualized_from(false, &surface, Some("\n")));
    }

    #[test]
    fn lists_are_bounded_and_deduplicated() {
        let many = (0..100).map(|i| format!("x{i}"));
        assert_eq!(bounded(many).len(), MAX_ITEMS);
        assert_eq!(bounded(["a".into(), "a".into()]), vec!["a"]);
        let long = "é".repeat(300);
        assert!(bounded([long]).first().unwrap().len() <= MAX_ITEM_LEN);
    }

    #[test]
    fn code_patched_as_observed_is_bounded() {
        // Forty look-alikes of the SDK's own object, with long names and no
        // file: each is reported, and the list that `LinuxProbe::observe`
        // sends (`code_check_with`) is deduplicated, cut and capped.
        let objects = sys::objects();
        let own = objects.iter().find(|o| o.holds_sdk).unwrap();
        let many: Vec<Object> = (0..40)
            .map(|i| {
                let mut o = own.clone();
                o.is_main = false;
                o.name = format!("{:02}{}.so", i % 35, "x".repeat(300));
                o
            })
            .collect();
        let check = code_check_with(&many);
        assert_eq!(check.patched.len(), MAX_ITEMS, "{:?}", check.patched);
        assert!(check.patched.iter().all(|p| p.len() <= MAX_ITEM_LEN));
        let distinct: BTreeSet<&String> = check.patched.iter().collect();
        assert_eq!(distinct.len(), check.patched.len());
    }

    #[test]
    fn this_test_process_is_clean() {
        // The test runner is neither preloaded nor instrumented, and its code
        // and libc are as on disk. (Debugger and root depend on how the tests
        // are run; they have their own tests with real tracers.)
        if std::env::var_os("LD_PRELOAD").is_none() {
            assert_eq!(preload(), Vec::<String>::new());
        }
        assert_eq!(injected(), Vec::<String>::new());
        let check = code_check();
        assert_eq!(check.patched, Vec::<String>::new());
        // The comparison really ran, over the program and the C library.
        assert_eq!(check.compared.len(), 2, "{check:?}");
        assert!(check.compared.iter().all(|(_, n)| *n > 0), "{check:?}");
        assert!(os_version().is_some());
    }
}

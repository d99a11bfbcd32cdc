//! Test-only (`cfg(test)`: it exists only in this crate's own unit-test
//! binary, never in a library another crate links): a real in-memory code
//! patch.
//!
//! [`flip_own_code_byte`] flips one byte of [`target`], a function of the
//! SDK that nothing calls, through `mprotect` — what an inline hook does to
//! the code it patches. Afterwards the app digest read from memory differs
//! from the file's, and `code_patched` names the place. The patch stays for
//! the rest of the process, so the test runs it in a child process (this
//! test binary again) and the other tests of this binary never see it.

use std::hint::black_box;

/// The function whose code is patched. Never call it after
/// [`flip_own_code_byte`]: its code is then broken.
#[inline(never)]
#[must_use]
pub(crate) fn target(x: u64) -> u64 {
    black_box(x).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x005e_ed0f_6e75_696e
}

/// The runtime address of the byte that [`flip_own_code_byte`] flips.
#[must_use]
pub(crate) fn patched_address() -> u64 {
    // Past the first bytes (an `endbr64` under CET), inside the function.
    (target as fn(u64) -> u64 as usize as u64) + 4
}

/// Flips the byte at [`patched_address`] in memory (the file is untouched).
///
/// # Errors
/// The `mprotect` failure, e.g. where the system forbids writable code.
pub(crate) fn flip_own_code_byte() -> std::io::Result<()> {
    crate::sys::flip_code_byte(patched_address())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;
    use std::process::Command;

    use crate::linux::{measure, signals};
    use crate::test_common::{API, APP, Service, is_valid, own_digest, reasons};
    use crate::{Client, Config};

    const CHILD: &str = "GENUINE_SDK_TAMPER_CHILD";
    const DONE: &str = "GENUINE-TAMPER-CHILD-DONE";

    /// Runs [`patched_in_memory_child`] in a child process (this test binary)
    /// and requires it to have run to its end.
    #[test]
    fn code_patched_in_memory_gets_a_decoy() {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "--exact",
                "tamper::tests::patched_in_memory_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env_remove("LD_PRELOAD")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(DONE),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The child: attests untouched, patches its own code in memory, and
    /// attests again (a decoy, `app-not-registered` and `code-patched`).
    #[test]
    #[ignore = "the child of code_patched_in_memory_gets_a_decoy; patches this process"]
    fn patched_in_memory_child() {
        assert!(std::env::var_os(CHILD).is_some(), "run by its parent test");
        let svc = Service::start();
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(Config::new(&svc.url, APP, API, dir.path())).unwrap();
        let before = client.token_blocking().unwrap();
        assert!(is_valid(&svc, before.as_str()));
        assert_eq!(measure::executable_digest().unwrap(), own_digest());
        assert!(signals::code_patched().is_empty());

        super::flip_own_code_byte().unwrap();

        // The file is untouched; the code in memory is not.
        let exe = std::fs::read(Path::new("/proc/self/exe")).unwrap();
        assert_eq!(
            genuine_protocol::measure::elf_exec_segments_digest(&exe).unwrap(),
            own_digest()
        );
        assert_ne!(measure::executable_digest().unwrap(), own_digest());
        let patched = signals::code_patched();
        assert_eq!(patched.len(), 1, "{patched:?}");
        assert!(patched[0].starts_with("exe+0x"), "{patched:?}");

        client.invalidate();
        let after = client.token_blocking().unwrap();
        assert!(!is_valid(&svc, after.as_str()), "a decoy");
        let r = reasons(&svc, after.as_str());
        assert!(r.contains(&"app-not-registered".to_owned()), "{r:?}");
        assert!(r.contains(&"code-patched".to_owned()), "{r:?}");
        // What was sent is what the client says it sent.
        let sent = client.last_signals().unwrap();
        assert_eq!(sent.code_patched, patched);
        svc.stop();
        println!("{DONE}");
    }
}

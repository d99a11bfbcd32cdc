//! Signals under the real hostile conditions: this test binary runs itself
//! as a child (the `child_report` entry point) under `strace -f`, under gdb
//! in batch mode, with one thread traced by `strace -p TID`, with
//! `LD_PRELOAD` of libraries compiled here with `cc` (an interposer, also
//! one named like the C library; one mapping a memfd and anonymous memory
//! executable; one whose file is deleted while it is loaded), and reads the
//! signals the SDK reported. A missing tool prints `SKIPPED: …` and passes,
//! except under CI, where `.ci/run` installs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use genuine_sdk::Probe;
use genuine_sdk::linux::LinuxProbe;
use genuine_sdk::linux::signals;
use serde_json::{Value, json};

const CHILD: &str = "GENUINE_SDK_SIGNALS_CHILD";
/// Set: the child starts a worker thread, prints `READY <pid> <tid of the
/// worker>` and waits for a line on stdin before it observes.
const WAIT: &str = "GENUINE_SDK_SIGNALS_WAIT";
const MARK: &str = "GENUINE-SIGNALS:";

/// Entry point of the child runs: prints the signals and what the
/// `code_patched` comparison compared as one JSON line. Run directly
/// (without the variable) it checks that a report is made.
#[test]
fn child_report() {
    let worker = if std::env::var_os(WAIT).is_some() {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let h = std::thread::Builder::new()
            .name("signals-worker".into())
            .spawn(move || {
                let me = std::fs::read_link("/proc/thread-self").unwrap();
                let tid = me.file_name().unwrap().to_string_lossy().into_owned();
                ready_tx.send(tid).unwrap();
                let _ = stop_rx.recv();
            })
            .unwrap();
        let tid = ready_rx.recv().unwrap();
        println!("READY {} {tid}", std::process::id());
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).unwrap();
        Some((h, stop_tx))
    } else {
        None
    };
    let obs = LinuxProbe.observe().unwrap();
    let check = signals::code_check();
    if std::env::var_os(CHILD).is_some() {
        let report = json!({"signals": obs.signals, "compared": check.compared});
        println!("{MARK}{report}");
    }
    if let Some((h, stop)) = worker {
        drop(stop);
        h.join().unwrap();
    }
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// `prefix… <this test binary> --exact child_report` with `env`.
fn child_command(prefix: &[&str], env: &[(&str, &str)]) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(exe.to_str().unwrap()));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(&exe);
    }
    cmd.args(["--exact", "child_report", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove(WAIT)
        .env_remove("LD_PRELOAD")
        .env_remove("DEBUGINFOD_URLS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn report_of(stdout: &str, stderr: &str) -> Value {
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no report:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap()
}

/// Runs the child to its end and returns its report.
fn run_child_report(prefix: &[&str], env: &[(&str, &str)]) -> Value {
    let out = child_command(prefix, env).output().unwrap();
    report_of(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

/// The signals a child reported.
fn run_child(prefix: &[&str], env: &[(&str, &str)]) -> Value {
    run_child_report(prefix, env)["signals"].clone()
}

/// A child waiting before it observes, with its stdout read by a thread.
struct Waiting {
    child: Child,
    lines: mpsc::Receiver<String>,
    pid: u32,
    tid: u32,
}

impl Waiting {
    fn start(env: &[(&str, &str)]) -> Self {
        let mut child = child_command(&[], env)
            .env(WAIT, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (pid, tid) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = lines.recv_timeout(left).expect("the child never got ready");
            // libtest may have printed `test child_report ... ` before it.
            if let Some((_, rest)) = l.split_once("READY ") {
                let (p, t) = rest.split_once(' ').unwrap();
                break (p.parse().unwrap(), t.parse().unwrap());
            }
        };
        Self {
            child,
            lines,
            pid,
            tid,
        }
    }

    /// Lets the child observe, and returns its report.
    fn report(mut self) -> Value {
        writeln!(self.child.stdin.take().unwrap()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = String::new();
        let report = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(MARK) => break report_of(&l, ""),
                Ok(l) => {
                    seen.push_str(&l);
                    seen.push('\n');
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no report from the child:\n{seen}");
                }
            }
        };
        assert!(self.child.wait().unwrap().success());
        report
    }
}

fn tracer_of(pid: u32, task: Option<u32>) -> u64 {
    let path = match task {
        Some(t) => format!("/proc/{pid}/task/{t}/status"),
        None => format!("/proc/{pid}/status"),
    };
    let s = std::fs::read_to_string(path).unwrap();
    genuine_sdk::linux::maps::status_field(&s, "TracerPid").unwrap()
}

#[test]
fn plain_child_is_clean() {
    let r = run_child_report(&[], &[]);
    let s = &r["signals"];
    assert_eq!(s["debugger"], false, "{s}");
    assert_eq!(s["preload"], json!([]), "{s}");
    assert_eq!(s["injected"], json!([]), "{s}");
    assert_eq!(s["code_patched"], json!([]), "{s}");
    // The comparison ran: the program and the C library, bytes compared.
    let compared = r["compared"].as_array().unwrap();
    assert_eq!(compared.len(), 2, "{r}");
    assert!(
        compared
            .iter()
            .any(|c| c[0] == "exe" && c[1].as_u64() > Some(0)),
        "{r}"
    );
    assert!(
        compared
            .iter()
            .any(|c| c[0] == "libc.so.6" && c[1].as_u64() > Some(0)),
        "{r}"
    );
}

#[test]
fn under_strace_the_debugger_is_reported() {
    if !have("strace") {
        return;
    }
    let s = run_child(&["strace", "-f", "-o", "/dev/null"], &[]);
    assert_eq!(s["debugger"], true, "{s}");
}

#[test]
fn a_tracer_on_one_thread_only_is_reported() {
    if !have("strace") {
        return;
    }
    let w = Waiting::start(&[]);
    // Attach to the worker thread only (no -f): the main thread's status,
    // /proc/PID/status, still says TracerPid 0.
    let mut strace = Command::new("strace")
        .args(["-o", "/dev/null", "-p"])
        .arg(w.tid.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracer_of(w.pid, Some(w.tid)) == 0 {
        if strace.try_wait().unwrap().is_some() {
            // Attaching to a process that is not its child needs root (or
            // CAP_SYS_PTRACE) where Yama's ptrace_scope is 1.
            assert!(
                std::env::var_os("CI").is_none(),
                "strace -p could not attach under CI"
            );
            eprintln!("SKIPPED: strace -p could not attach (ptrace not permitted)");
            drop(w.report());
            return;
        }
        assert!(Instant::now() < deadline, "strace did not attach");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(tracer_of(w.pid, None), 0, "only the worker is traced");
    let report = w.report();
    let _ = strace.kill();
    let _ = strace.wait();
    assert_eq!(report["signals"]["debugger"], true, "{report}");
}

#[test]
fn under_gdb_the_debugger_is_reported() {
    if !have("gdb") {
        return;
    }
    let s = run_child(
        &[
            "gdb",
            "-nx",
            "-batch",
            "-readnever",
            "-iex",
            "set debuginfod enabled off",
            "-ex",
            "run",
            "--args",
        ],
        &[],
    );
    assert_eq!(s["debugger"], true, "{s}");
}

/// Compiles `src` into the shared library `dir/file` with `cc`.
fn compile_library(dir: &Path, file: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{file}.c"));
    let so = dir.join(file);
    std::fs::write(&c, src).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&c)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// Interposes `getpid` and passes the call on.
const INTERPOSER: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
pid_t getpid(void) {
    static pid_t (*real)(void);
    if (!real) real = (pid_t (*)(void))dlsym(RTLD_NEXT, "getpid");
    return real();
}
#ifdef HIDE
__attribute__((constructor)) static void hide(void) { unsetenv("LD_PRELOAD"); }
#endif
"#;

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn with_ld_preload_the_library_is_reported() {
    if !have("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Named plainly, and named like the C library: the name decides nothing.
    for file in ["interpose.so", "libc.so.hook"] {
        let so = compile_library(dir.path(), file, INTERPOSER);
        let so_path = so.to_str().unwrap();
        let r = run_child_report(&[], &[("LD_PRELOAD", so_path)]);
        let s = &r["signals"];
        assert_eq!(
            strings(&s["preload"]),
            vec![so_path],
            "named once, from the variable and the symbol: {s}"
        );
        assert_eq!(s["injected"], json!([]), "{s}");
        assert_eq!(s["code_patched"], json!([]), "{s}");
        // The C library compared is the real one, not the look-alike.
        assert!(
            r["compared"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c[0] == "libc.so.6" && c[1].as_u64() > Some(0)),
            "{r}"
        );

        // A library that removes itself from the environment is still
        // found: getpid resolves into it.
        let hidden_dir = dir.path().join("hidden");
        std::fs::create_dir_all(&hidden_dir).unwrap();
        let hidden = compile_library(&hidden_dir, file, &format!("#define HIDE\n{INTERPOSER}"));
        let s = run_child(&[], &[("LD_PRELOAD", hidden.to_str().unwrap())]);
        assert_eq!(s["preload"], json!([hidden.to_str().unwrap()]), "{s}");
    }
}

/// At load, maps a memfd and a page of anonymous memory executable, as JIT
/// engines and injectors (Frida's agent lives in a memfd) do.
const EXEC_MAPPER: &str = r#"
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>
__attribute__((constructor)) static void map_exec(void) {
    long page = sysconf(_SC_PAGESIZE);
    void *anon = mmap(0, page, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = memfd_create("genuine-test-jit", 0);
    if (fd < 0 || ftruncate(fd, page) != 0) _exit(71);
    void *code = mmap(0, page, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    if (anon == MAP_FAILED || code == MAP_FAILED) _exit(72);
}
"#;

#[test]
fn memfd_and_anonymous_executable_memory_are_injected() {
    if !have("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let so = compile_library(dir.path(), "libmapper.so", EXEC_MAPPER);
    let s = run_child(&[], &[("LD_PRELOAD", so.to_str().unwrap())]);
    let injected = strings(&s["injected"]);
    assert!(
        injected.contains(&"/memfd:genuine-test-jit (deleted)"),
        "{s}"
    );
    assert!(
        injected.iter().any(|i| i.starts_with("anonymous-exec@0x")),
        "{s}"
    );
}

#[test]
fn a_loaded_library_deleted_from_disk_is_not_injected() {
    if !have("cc") {
        return;
    }
    // What a package upgrade does to the libraries of running programs.
    let dir = tempfile::tempdir().unwrap();
    let so = compile_library(
        dir.path(),
        "libupgraded.so",
        "int genuine_test_upgraded(void) { return 42; }\n",
    );
    let so_path = so.to_str().unwrap().to_owned();
    let w = Waiting::start(&[("LD_PRELOAD", &so_path)]);
    std::fs::remove_file(&so).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", w.pid)).unwrap();
    assert!(
        maps.lines()
            .any(|l| l.contains("r-xp") && l.ends_with(&format!("{so_path} (deleted)"))),
        "{maps}"
    );
    let report = w.report();
    let s = &report["signals"];
    assert_eq!(s["injected"], json!([]), "{s}");
    assert_eq!(strings(&s["preload"]), vec![so_path.as_str()], "{s}");
}

#[test]
fn root_is_the_effective_uid() {
    let out = Command::new("id").arg("-u").output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(genuine_sdk::linux::signals::root(), uid == 0);
}

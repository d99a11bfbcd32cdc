//! `genuine demo` end to end: the real binary starts its throw-away service
//! and demo API, runs itself as the demo app untouched (200), as a tampered
//! copy, under gdb, under strace, with LD_PRELOAD of a library it compiles
//! with `cc`, and with Frida attached — each refused (401) with its reason
//! recorded on the admin side. A step whose tool is missing is skipped by
//! the demo itself; under CI (`.ci/run` installs gdb, strace and
//! frida-tools) every step must have run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::{Value, json};

fn step<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == key)
        .unwrap_or_else(|| panic!("no step {key} in {report}"))
}

#[test]
fn demo_tells_the_whole_story() {
    let out = Command::new(env!("CARGO_BIN_EXE_genuine"))
        .args(["--json", "demo"])
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["as_expected"], true, "{report:#}");

    let untouched = step(&report, "untouched");
    assert_eq!(untouched["api_status"], 200, "{untouched}");
    assert_eq!(untouched["token_valid"], true);
    assert_eq!(untouched["reasons"], json!([]));
    // The findings are those of the evidence sent (the demo machine may be
    // a VM, or run as root: those are the only findings an untouched run
    // may show).
    for f in untouched["findings"].as_array().unwrap() {
        assert!(
            matches!(f.as_str(), Some("virtualized" | "root")),
            "{untouched}"
        );
    }

    let tampered = step(&report, "tampered-copy");
    assert_eq!(tampered["api_status"], 401, "{tampered}");
    assert_eq!(tampered["token_valid"], false);
    assert_eq!(tampered["reasons"], json!(["app-not-registered"]));

    let ci = std::env::var_os("CI").is_some();
    for (key, reason) in [
        ("gdb", "debugger"),
        ("strace", "debugger"),
        ("preload", "preload"),
        ("frida", "injected-code"),
    ] {
        let s = step(&report, key);
        if let Some(why) = s["skipped"].as_str() {
            assert!(!ci, "step {key} must run under CI: {why}");
            eprintln!("SKIPPED: demo step {key}: {why}");
            continue;
        }
        assert_eq!(s["api_status"], 401, "{s}");
        assert_eq!(s["token_valid"], false, "{s}");
        let reasons: Vec<&str> = s["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert!(reasons.contains(&reason), "{key}: {reasons:?}");
        let findings = s["findings"].to_string();
        match key {
            "gdb" | "strace" => assert!(findings.contains("debugger"), "{findings}"),
            "preload" => assert!(findings.contains("libinterpose.so"), "{findings}"),
            _ => {}
        }
        if key == "frida" {
            // Frida's agent lives in a memfd and its hooks patch libc.
            let findings = s["findings"].to_string();
            assert!(findings.contains("frida-agent"), "{findings}");
            assert!(reasons.contains(&"code-patched"), "{reasons:?}");
        }
    }
    // The admin side counted one valid attestation and a decoy per hostile run.
    let ran_hostile = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] != "untouched" && s.get("skipped").is_none())
        .count();
    assert_eq!(report["metrics"]["outcomes"]["valid"], 1, "{report:#}");
    assert_eq!(
        report["metrics"]["outcomes"]["decoy"],
        json!(ran_hostile),
        "{report:#}"
    );
}

#[test]
fn demo_app_without_a_service_reports_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = dir.path().join("report.json");
    // A report file left from before, readable by everyone: the new report
    // (it would hold a token) must not inherit that mode.
    std::fs::write(&report, b"old").unwrap();
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_genuine"))
        .args(["demo-app", "--service-url"])
        .arg(format!("http://{port}"))
        .arg("--api-url")
        .arg(format!("http://{port}/hello"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    // No token, a typed network error and the status word; the API (not
    // there either) is reported as unreachable. No panic.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("calling the demo API"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["sdk_status"], "no-network", "{report}");
    assert_eq!(report["token"], Value::Null);
    // The signals shown are those sent; with no challenge, none were.
    assert_eq!(report["signals"], Value::Null, "{report}");
    let mode = std::fs::metadata(dir.path().join("report.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach the attestation service"),
        "{report}"
    );
}
